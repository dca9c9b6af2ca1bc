"""`micforge simulate`: the firmware core (rendered C, host build) and TFLM over a stream.

The detector and score conversion are the rendered detection.c, checked against the Python
statement of its arithmetic (simulate.reference_detector) on random score streams of every
example spec's detection settings. End to end, a tiny fixed-weight model (conftest.tiny_model)
is placed in a temporary build of projects/demo.yaml (analysis and pico firmware rendered
as the build does) and the CLI runs synthetic WAV files: the lines follow main.cpp's format
and clip mode, and q= equals run_tflm on the offline features (generator.features) of the
windows each hop sees. Nothing here runs the device or an emulator.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import REPO, tiny_model
from generator import features as F
from generator import simulate as S
from generator.audio import decode
from generator.boards import load_board
from generator.cli import main
from generator.evaluate import run_tflm
from generator.paths import TEMPLATES, Artifacts
from generator.spec import load_spec
from generator.variant import resolve

# The serial line as simulate prints it (main.cpp's printf, timings and overruns at 0).
LINE = re.compile(r"(?:clip=(?P<clip>\d+) )?hop=(?P<hop>\d+) t_ms=(?P<t_ms>\d+) "
                  r"top=(?P<top>\S+) score=(?P<score>-?\d+) det=(?P<det>\S+) "
                  r"dsp_us=(?P<dsp>\d+) inf_us=(?P<inf>\d+) ovr=(?P<ovr>\d+) "
                  r"q=(?P<q>-?\d+(?:,-?\d+)*)")
END = re.compile(r"clip=(\d+) end")
FAKE_ANALYSIS = {"arena": {"measured_bytes": 4096}, "model_bytes": 4, "macs": 1000,
                 "input": {"dtype": "int8", "shape": [1, 31, 32, 1]},
                 "resolver": ["AddConv2D", "AddFullyConnected", "AddMaxPool2D", "AddReshape",
                              "AddSoftmax"]}
SPECS = sorted(p.stem for p in (REPO / "projects").glob("*.yaml"))


CALIBRATED = 0.55  # the threshold of a `threshold: auto` spec here (analysis/streaming.json)


def _core(project):
    """The HostCore of a spec's first RP2040 target, rendered with a placeholder analysis
    (headers aside, the core's code does not depend on it)."""
    target = next(t for t in project.spec.targets if load_board(t.board).soc == "rp2040")
    board = load_board(target.board)
    if project.spec.detection.threshold == "auto":
        v = resolve(project, target, board, FAKE_ANALYSIS, {"threshold": CALIBRATED})
    else:
        v = resolve(project, target, board, FAKE_ANALYSIS)
    texts = S.core_texts(v, FAKE_ANALYSIS, b"\0" * 4)
    return S.HostCore(S.build_library(texts, S.cmsis_variant(board)))


# ------------------------------------------------------------------ detector and scores

def _score_streams(rng, n: int, k: int, threshold_q15: int) -> list[np.ndarray]:
    """Uniform q15 scores; slow random walks around the threshold (on/off/hysteresis); the
    full int16 range (the C division's truncation toward zero)."""
    uniform = rng.integers(0, 32768, (n, k))
    walk = np.cumsum(rng.integers(-2500, 2501, (n, k)), axis=0) + threshold_q15
    walk = np.clip(walk, 0, 32767)
    bursts = np.where(rng.random((n, k)) < 0.3, 32767, rng.integers(0, 8000, (n, k)))
    full = rng.integers(-32768, 32768, (n, k))
    return [s.astype(np.int16) for s in (uniform, walk, bursts, full)]


@pytest.mark.parametrize("spec", SPECS)
def test_reference_detector_equals_the_rendered_c(spec):
    project = load_spec(REPO / "projects" / f"{spec}.yaml")
    core = _core(project)
    auto = project.spec.detection.threshold == "auto"
    settings = S.detector_settings(project, CALIBRATED if auto else None)
    c = core.constants
    assert (c["smoothing"], c["threshold_q15"], c["release_q15"]) == (
        settings["smoothing"], settings["threshold_q15"], settings["release_q15"])
    k = core.num_classes
    changes = 0
    for seed in range(3):
        rng = np.random.default_rng(seed)
        for scores in _score_streams(rng, 1500, k, settings["threshold_q15"]):
            core.detector_reset()
            det_c, top_c, sm_c = core.detect(scores)
            det_py, top_py, sm_py = S.reference_detector(scores, **settings)
            np.testing.assert_array_equal(sm_c, sm_py)
            np.testing.assert_array_equal(top_c, top_py)
            np.testing.assert_array_equal(det_c, det_py)
            changes += int(np.count_nonzero(np.diff(det_c)))
    if any(settings["detects"]):
        assert changes > 50  # the streams switch detections on and off, not a constant


def test_reference_detector_continues_across_calls():
    """The C detector keeps its state between mfs_detect calls (chunks of a long stream)."""
    project = load_spec(REPO / "projects" / "fire_alarm.yaml")
    core = _core(project)
    settings = S.detector_settings(project)
    scores = _score_streams(np.random.default_rng(7), 3000, 2, settings["threshold_q15"])[1]
    core.detector_reset()
    parts = [core.detect(scores[a:b]) for a, b in ((0, 1), (1, 1000), (1000, 3000))]
    ref = S.reference_detector(scores, **settings)
    for i in range(3):
        np.testing.assert_array_equal(np.concatenate([p[i] for p in parts]), ref[i])


def test_score_conversion_equals_the_reference_and_model_cpp():
    template = (TEMPLATES / "common" / "model.cpp.j2").read_text()
    assert S.MODEL_SCALE_CODE in template  # the harness derives the multiplier as model.cpp does
    core = _core(load_spec(REPO / "projects" / "fire_alarm.yaml"))
    raw = np.arange(-128, 128, dtype=np.int8).repeat(2)
    for scale, zp in ((1 / 256, -128), (0.00390625, -128), (0.0031, -100), (0.0125, 3),
                      (1.7e-5, 0), (0.9, 127)):
        q31, shift = core.output_scale(scale)
        mantissa, exponent = np.frexp(np.float32(scale))
        assert (q31, shift) == (int(mantissa * 2 ** 30), -int(exponent) - 1)
        got = core.scores(raw, zp, q31, shift)
        want = [S.reference_score_q15(int(q), zp, q31, shift) for q in raw]
        assert got.reshape(-1).tolist() == want
        probs = (raw.astype(np.float64) - zp) * float(np.float32(scale))
        want_probs = np.clip(probs, 0, 32767 / 32768)
        assert np.all(np.abs(got.reshape(-1) / 32768 - want_probs) <= 1 / 32768)


# ------------------------------------------------------------------ end to end (CLI)

SR = 16000


def _wav(path: Path, samples: np.ndarray, rate: int = SR) -> Path:
    sf.write(path, samples, rate, subtype="PCM_16")
    return path


def _beeps(seconds: float, rate: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    on = (t % 0.5) < 0.25
    return 0.3 * np.sin(2 * np.pi * 3000 * t) * on + 0.02 * rng.standard_normal(len(t))


def _demo_variant(base: Path) -> Path:
    """projects/demo.yaml with overlapping frames and a 3-frame hop (768 samples, 61 x 32
    map), and a threshold the tiny model's scores cross (detections on and off)."""
    text = (REPO / "projects" / "demo.yaml").read_text()
    for old, new in (("frame_step: 512", "frame_step: 256"),
                     ("detection:\n", "detection:\n  hop_frames: 3\n  smoothing: 2\n  "
                                      "threshold: 0.55\n  hysteresis: 0.01\n")):
        assert old in text
        text = text.replace(old, new)
    path = base / "demo.yaml"
    path.write_text(text)
    return path


@pytest.fixture(scope="module", params=["demo", "demo_hop3"])
def demo_build(request, tmp_path_factory):
    """projects/demo.yaml (or _demo_variant) built into a temporary folder: the tiny model,
    its analysis and the pico firmware, as the build renders them."""
    from generator.analyze import analyze
    from generator.targets import render_target

    base = tmp_path_factory.mktemp("simdemo")
    spec_path = REPO / "projects" / "demo.yaml" if request.param == "demo" else _demo_variant(base)
    project = load_spec(spec_path)
    fe = F.design(project.spec)
    art = Artifacts.for_project(project.name, base / "build")
    art.tflite.parent.mkdir(parents=True)
    tflite = tiny_model(fe.num_frames, fe.num_bins, len(project.spec.classes))
    art.tflite.write_bytes(tflite)
    analysis = analyze(project, art.tflite, art.analysis)
    target = project.spec.targets[0]
    render_target(project, target, load_board(target.board), analysis, tflite,
                  art.firmware(target.name))
    files = {
        "a": _wav(base / "beeps.wav", _beeps(2.3, SR, 0)),
        # 44.1 kHz stereo: decoded to mono and resampled to 16 kHz, as the dataset is
        "b": base / "stereo.wav",
        "c": _wav(base / "short.wav", _beeps(0.5, SR, 2)),  # less than one map: no hop line
    }
    stereo = np.stack([_beeps(1.7, 44100, 1), 0.5 * _beeps(1.7, 44100, 3)], axis=1)
    sf.write(files["b"], stereo, 44100, subtype="PCM_16")
    return spec_path, project, base / "build", tflite, files


def _expected_hops(fe: F.FrontEnd, n_samples: int) -> list[int]:
    """Stream hop indices k whose map is full after pushing k + 1 hops (main.cpp prints those)."""
    out = []
    for k in range(n_samples // fe.hop_samples):
        pushed = (k + 1) * fe.hop_samples
        frames = 0 if pushed < fe.frame_length else 1 + (pushed - fe.frame_length) // fe.frame_step
        if frames >= fe.num_frames:
            out.append(k)
    return out


def _offline_maps(fe: F.FrontEnd, samples: np.ndarray, hops: list[int]) -> np.ndarray:
    """The model input of each stream hop, from the offline features of the whole stream."""
    whole = F.compute(fe, samples[:len(samples) // fe.hop_samples * fe.hop_samples])
    maps = []
    for k in hops:
        pushed = (k + 1) * fe.hop_samples
        count = 1 + (pushed - fe.frame_length) // fe.frame_step
        maps.append(whole[count - fe.num_frames:count])
    return np.stack(maps)


@pytest.mark.slow
def test_cli_clip_mode_lines_equal_offline_features_and_tflm(demo_build, tmp_path, capsys):
    spec_path, project, build_dir, tflite, files = demo_build
    fe, classes = F.design(project.spec), list(project.spec.classes)
    out_json = tmp_path / "sim.json"
    order = [files["a"], files["c"], files["b"]]
    args = ["simulate", str(spec_path), "--variant", "pico", *map(str, order),
            "--build-dir", str(build_dir), "--json", str(out_json)]
    assert main(args) == 0
    captured = capsys.readouterr()
    assert captured.err == ""  # the firmware folder is the current render: no note
    lines = captured.out.splitlines()
    assert lines[-1] == "mf done"

    sim = S.load(project, "pico", build_dir)
    assert sim.stale == []
    saved = json.loads(out_json.read_text())
    pos = 0
    for i, path in enumerate(order):
        samples = decode(path.read_bytes(), fe.sample_rate).samples
        hops = _expected_hops(fe, len(samples))
        mine = lines[pos:pos + len(hops)]
        pos += len(hops)
        assert lines[pos] == f"clip={i} end"
        pos += 1
        parsed = [LINE.fullmatch(ln) for ln in mine]
        assert all(parsed), mine
        assert [int(m["clip"]) for m in parsed] == [i] * len(hops)
        assert [int(m["hop"]) for m in parsed] == list(range(len(hops)))
        assert [int(m["t_ms"]) for m in parsed] == [
            (k + 1) * fe.hop_samples * 1000 // fe.sample_rate for k in hops]
        assert all(m["dsp"] == m["inf"] == m["ovr"] == "0" for m in parsed)
        if not hops:
            assert path == files["c"]
            continue
        # q= is TFLM on the offline features of the window each hop sees
        raw = np.array([[int(v) for v in m["q"].split(",")] for m in parsed], dtype=np.int8)
        offline = _offline_maps(fe, samples, hops)
        np.testing.assert_array_equal(raw, run_tflm(tflite, offline))
        # top / score / det follow from q by the Python statement of detection.c
        scores = np.array([[S.reference_score_q15(int(q), sim.zero_point, sim.scale_q31,
                                                  sim.shift) for q in row] for row in raw])
        det, top, smoothed = S.reference_detector(scores, **S.detector_settings(project))
        assert [m["top"] for m in parsed] == [classes[t] for t in top]
        assert [int(m["score"]) for m in parsed] == [int(smoothed[j, t]) for j, t in enumerate(top)]
        assert [m["det"] for m in parsed] == [classes[d] if d >= 0 else "-" for d in det]
        record = saved["files"][i]
        assert record["clip"] == i and record["samples"] == len(samples)
        assert [h["q"] for h in record["hops"]] == raw.tolist()
        assert [h["scores"] for h in record["hops"]] == scores.tolist()
    assert pos == len(lines) - 1
    assert saved["variant"] == "pico" and saved["classes"] == classes
    if fe.hop_frames == 3:  # demo_hop3: the detector switches on and off
        dets = [LINE.fullmatch(ln)["det"] for ln in lines if LINE.fullmatch(ln)]
        assert "beep" in dets and "-" in dets


@pytest.mark.slow
def test_cli_one_file_prints_like_the_microphone_build(demo_build, capsys):
    spec_path, project, build_dir, tflite, files = demo_build
    assert main(["simulate", str(spec_path), "--variant", "pico", str(files["a"]),
                 "--build-dir", str(build_dir)]) == 0
    lines = capsys.readouterr().out.splitlines()
    fe = F.design(project.spec)
    hops = _expected_hops(fe, int(2.3 * SR))
    assert len(lines) == len(hops) > 0
    assert all(LINE.fullmatch(ln) and not ln.startswith("clip=") for ln in lines)
    first = (hops[0] + 1) * fe.hop_samples * 1000 // fe.sample_rate
    assert lines[0].startswith(f"hop=0 t_ms={first} ")
    if fe.hop_samples == 512:
        assert first == 992  # 31 hops of 32 ms fill the 31-frame map of projects/demo.yaml


def test_line_format_is_main_cpps():
    """The keys of simulate's line are main.cpp's printf's, and its clip-mode lines too; the
    emulator benchmark's parser reads simulate's lines."""
    import importlib.util

    main_cpp = (TEMPLATES / "common" / "main.cpp.j2").read_text()
    fmt = re.search(r'printf\("(hop=%lu[^"]*)"', main_cpp).group(1)
    line = S.format_line(3, 1088, "beep", 30000, "beep", [120, -120], clip=2)
    assert [k.split("=")[0] for k in fmt.split()] == [k.split("=")[0] for k in line.split()[1:]]
    assert 'printf("clip=%u ", clip);' in main_cpp
    assert 'printf("clip=%u end\\n", clip);' in main_cpp and 'printf("mf done\\n");' in main_cpp
    assert LINE.fullmatch(line)["q"] == "120,-120"
    spec = importlib.util.spec_from_file_location("rp2040_emulator",
                                                  REPO / "benchmarks" / "rp2040_emulator.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    m = bench.LINE.fullmatch(line)
    assert m and m.group("clip") == "2" and m.group("q") == "120,-120"


@pytest.mark.slow
def test_simulate_stream_records(demo_build):
    _, project, build_dir, tflite, _ = demo_build
    fe = F.design(project.spec)
    samples = (_beeps(3.0, SR, 5) * 32767).astype(np.int16)
    records = S.simulate_stream(project, "pico", samples, build_dir)
    hops = _expected_hops(fe, len(samples))
    assert [r["hop"] for r in records] == list(range(len(hops)))
    assert set(records[0]) == {"hop", "t_ms", "top", "score", "det", "q", "scores", "smoothed"}
    np.testing.assert_array_equal(np.array([r["q"] for r in records], dtype=np.int8),
                                  run_tflm(tflite, _offline_maps(fe, samples, hops)))
    # chunking does not change anything: the detector and the stream carry over
    sim = S.simulator(project, "pico", build_dir)
    small = sim.run(samples, chunk_hops=7)
    whole = sim.run(samples)
    for name in ("t_ms", "raw", "scores", "smoothed", "top", "det"):
        np.testing.assert_array_equal(getattr(small, name), getattr(whole, name))
    assert small.records(sim.classes) == records


@pytest.mark.slow
def test_cli_errors(demo_build, tmp_path, capsys):
    spec_path, project, build_dir, _, files = demo_build
    base = ["simulate", str(spec_path), "--variant", "pico"]
    shown = str(spec_path.relative_to(Path.cwd())) if spec_path.is_relative_to(Path.cwd()) \
        else str(spec_path)

    assert main(base + [str(files["a"]), "--build-dir", str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"{shown}: no built model at ") and err.endswith(
        f"; run micforge build {shown} first\n")

    assert main(["simulate", str(spec_path), "--variant", "nano", str(files["a"]),
                 "--build-dir", str(build_dir)]) == 2
    assert capsys.readouterr().err == f"{shown}: no variant 'nano'; variants: pico, teensy\n"

    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"not audio at all")
    missing = tmp_path / "missing.wav"
    for bad, why in ((junk, "not an audio file"), (missing, "cannot read")):
        assert main(base + [str(files["a"]), str(bad), "--build-dir", str(build_dir)]) == 2
        captured = capsys.readouterr()
        assert captured.out == ""  # every file is decoded before anything is printed
        assert captured.err.startswith(f"{bad}: {why}") and captured.err.count("\n") == 1


@pytest.mark.slow
def test_teensy_variant_uses_the_dsp_build(demo_build, capsys):
    """The Cortex-M7 variant renders its own core (no firmware folder) on CMSIS-DSP's DSP
    paths; on these files its q= equals the pico's (the front end is bit-exact on both)."""
    spec_path, project, build_dir, _, files = demo_build
    sim = S.load(project, "teensy", build_dir)
    assert sim.cmsis == "dsp" and sim.stale == [] and not sim.firmware_dir.exists()
    samples = decode(files["a"].read_bytes(), SR).samples
    a, b = sim.run(samples), S.load(project, "pico", build_dir).run(samples)
    np.testing.assert_array_equal(a.raw, b.raw)


@pytest.mark.slow
def test_out_of_date_firmware_is_noted_and_the_current_render_simulated(demo_build, tmp_path,
                                                                         capsys):
    import shutil

    spec_path, project, build_dir, _, files = demo_build
    base = ["simulate", str(spec_path), "--variant", "pico", str(files["a"])]
    assert main(base + ["--build-dir", str(build_dir)]) == 0
    fresh = capsys.readouterr()
    copy = tmp_path / "build"
    shutil.copytree(build_dir, copy)
    det_c = Artifacts.for_project(project.name, copy).firmware("pico") / "detection.c"
    det_c.write_text(det_c.read_text().replace("s >= MF_THRESHOLD_Q15", "s > MF_THRESHOLD_Q15"))
    assert main(base + ["--build-dir", str(copy)]) == 0
    stale = capsys.readouterr()
    assert stale.out == fresh.out and fresh.err == ""
    assert stale.err.count("\n") == 1
    assert "firmware/pico is out of date (detection.c differ" in stale.err
    assert stale.err.rstrip().endswith(" to update it") and "run micforge build " in stale.err


@pytest.mark.slow
def test_simulate_stream_refuses_float_audio(demo_build):
    _, project, build_dir, _, _ = demo_build
    with pytest.raises(ValueError, match="int16"):
        S.simulate_stream(project, "pico", np.zeros(16000, dtype=np.float32), build_dir)
    assert S.simulate_stream(project, "pico", np.zeros(100, dtype=np.int32), build_dir) == []
