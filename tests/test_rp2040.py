"""RP2040 firmware renderer: context, target checks, UF2, PDM decimator, portable C modules.

(The rendered trees of both families are golden-tested in test_targets.py.) The portable C modules are compiled for cortex-m0plus with arm-none-eabi-gcc -Wall -Werror, and
the detector is run on the host through ctypes.
"""

from __future__ import annotations

import dataclasses

import ctypes
import math
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from generator import uf2
from generator.boards import load_board
from generator.errors import SpecError
from generator.firmware import rp2040
from generator.targets import output_files
from generator.variant import resolve
from generator.firmware.common import q15, template_names
from generator.features import design
from generator.spec import load_spec

from conftest import REPO, assert_golden



ANALYSIS = {"arena": {"measured_bytes": 4321}, "model_bytes": 0, "macs": 60000,
            "input": {"dtype": "int8", "shape": [1, 31, 32, 1]},
            "resolver": ["AddConv2D", "AddFullyConnected", "AddMaxPool2D", "AddReshape", "AddSoftmax"]}


def _project(name):
    return load_spec(REPO / "projects" / f"{name}.yaml")


def _target(project, name):
    return next(t for t in project.spec.targets if t.name == name)


def test_context_derives_every_constant_from_spec_and_board(models_free_blob=b"\0" * 64):
    project = _project("fire_alarm")
    t = _target(project, "micromod")
    board = load_board(t.board)
    analysis = dict(ANALYSIS, model_bytes=64)
    ctx = rp2040.context(resolve(project, t, board, analysis), analysis, models_free_blob)
    assert ctx["board"].sdk_board == "sparkfun_micromod"
    assert ctx["mic"] == {"data_pin": board.microphone.data_pin, "clock_pin": board.microphone.clock_pin}
    assert ctx["pdm_clock_hz"] == project.spec.audio.sample_rate * 64
    assert ctx["arena_bytes"] == 4321 + project.spec.arena.margin + 15 & ~15
    assert ctx["arena_section"] == ".uninitialized_data.mf_tensor_arena"
    det = project.spec.detection
    assert ctx["threshold_q15"] == q15(det.threshold)
    assert ctx["release_q15"] == q15(det.threshold - det.hysteresis)
    assert ctx["resolver_ops"] == sorted(ANALYSIS["resolver"])


# ------------------------------------------------------------------ target checks

def _problems(project, target_name, analysis, board=None):
    t = _target(project, target_name)
    return rp2040.check_target(resolve(project, t, board or load_board(t.board), analysis))


def test_arena_above_ram_region_is_a_spec_error_at_the_arena_line():
    project = _project("fire_alarm")
    probs = _problems(project, "pico", dict(ANALYSIS, arena={"measured_bytes": 250_000}))
    assert len(probs) == 1
    assert "exceeds" in probs[0].message and "RAM" in probs[0].message
    assert probs[0].path.endswith("fire_alarm.yaml") and probs[0].line > 0
    with pytest.raises(SpecError):
        big = dict(ANALYSIS, arena={"measured_bytes": 250_000})
        rp2040.render(resolve(project, _target(project, "pico"), load_board("rpi_pico"), big), big,
                      b"\0", Path("/nonexistent"))


def test_hop_shorter_than_estimated_budget_is_reported_at_hop_frames():
    project = _project("fire_alarm")
    # 600,000 MACs: ~98 ms of Invoke (+ front end, decimation, serial line: ~108 ms) against a
    # 32 ms hop. Hops of 4 to 43 frames are long enough and their backlog fits the largest ring.
    probs = _problems(project, "pico", dict(ANALYSIS, macs=600_000))
    assert len(probs) == 1
    text = (REPO / "projects" / "fire_alarm.yaml").read_text().splitlines()
    assert "hop_frames" in text[probs[0].line - 1]
    assert "estimated 108426 us of front end, Invoke, decimation and serial line" in probs[0].message
    assert "raise hop_frames to 4 (at most 43: the PDM ring holds 32768 bytes" in probs[0].message
    assert _problems(project, "pico", ANALYSIS) == []
    # When no hop both outlasts the compute and fits the ring, the only fix is a smaller model.
    for macs in (2_000_000, 50_000_000):
        huge = _problems(project, "pico", dict(ANALYSIS, macs=macs))
        assert "make the model smaller" in huge[0].message and "raise" not in huge[0].message


KEYWORDS_MACS = 678_672  # projects/keywords.yaml's ds_cnn (24 filters, first stride (2, 4))


def _with_hop(project, hop_frames):
    detection = project.spec.detection.model_copy(update={"hop_frames": hop_frames})
    return dataclasses.replace(project, spec=project.spec.model_copy(update={"detection": detection}))


def test_keywords_ds_cnn_on_the_pico_needs_its_9_frame_hop():
    # Measured in rp2040js: 111 ms Invoke + 10 ms front end per 8 frames; with decimation and
    # the serial line an 8-frame (128 ms) hop fell behind the microphone after 83 s.
    committed = _project("keywords")
    assert committed.spec.detection.hop_frames == 9
    macs = dict(ANALYSIS, macs=KEYWORDS_MACS)
    assert _problems(committed, "pico", macs) == []
    short = _problems(_with_hop(committed, 8), "pico", macs)
    assert len(short) == 1 and "raise hop_frames to 9 (at most 53" in short[0].message
    assert (short[0].line, short[0].col) == _line_col(committed, "hop_frames")
    # The old 2.19 M MAC model (320 ms measured): its backlog outgrows the 256 ms ring at any hop.
    old = _problems(_with_hop(committed, 24), "pico", dict(ANALYSIS, macs=2_190_528))
    assert len(old) == 1 and "make the model smaller" in old[0].message


def _line_col(project, key: str) -> tuple[int, int]:
    p = project.positions.problem(("detection", key), "")
    return p.line, p.col


def _calibration(project):
    return {"threshold": 0.7} if project.spec.detection.threshold == "auto" else None


def _variant(name, target, macs):
    project = _project(name)
    t = _target(project, target)
    return resolve(project, t, load_board(t.board), dict(ANALYSIS, macs=macs), _calibration(project))


@pytest.mark.parametrize("name,macs,ring,need", [
    ("fire_alarm", 18_528, 8192, 1840),         # 13 ms per hop (+10%): 1.8 KB -> the 8 KB floor
    ("keywords", KEYWORDS_MACS, 32768, 19568),  # 139 ms per hop (+10%): 19.6 KB -> 32 KB
])
def test_pdm_ring_holds_what_arrives_while_the_loop_computes(name, macs, ring, need):
    v = _variant(name, "pico", macs)
    r = rp2040.pdm_ring(v)
    assert (r.bytes, r.need_bytes, r.bits) == (ring, need, ring.bit_length() - 1)
    fe = v.frontend
    late = rp2040.estimated_hop_us(v) * (1 + rp2040.RING_MARGIN) * fe.sample_rate / 1e6
    assert r.need_bytes == math.ceil(late) * 8  # 64 PDM bits per sample
    assert r.need_bytes <= r.bytes <= rp2040.RING_MAX_BYTES == 32768
    # The context, the rendered driver and the RAM estimate use that one figure.
    ctx = rp2040.context(v, dict(ANALYSIS, macs=macs, model_bytes=4), b"\0" * 4)
    assert (ctx["ring_bytes"], ctx["ring_bits"]) == (ring, r.bits)
    without = rp2040.FIRMWARE_RAM_BYTES + fe.num_frames * fe.num_bins + 4 * fe.fft_size + 2 * fe.hop_samples
    assert ctx["static_ram_estimate"] == rp2040.static_ram_bytes(v) == without + 2 * ring


def test_rendered_driver_uses_the_derived_ring(tmp_path):
    project = _project("keywords")
    t = _target(project, "pico")
    analysis = dict(ANALYSIS, macs=KEYWORDS_MACS, model_bytes=4)
    rp2040.render(resolve(project, t, load_board(t.board), analysis, _calibration(project)), analysis,
                  b"\0" * 4, tmp_path)
    driver = (tmp_path / "audio_in.c").read_text()
    assert "#define PDM_RING_BYTES   (32768U)" in driver
    assert "#define PDM_RING_BITS    (15)" in driver
    assert "ring[PDM_RING_WORDS] __attribute__((aligned(32768)))" in driver
    assert "32768-byte ring" in (tmp_path / "README.md").read_text()


def test_rt1062_ping_pong_must_hold_what_arrives_during_compute():
    """The RT1062's eDMA fills one hop-long buffer while the loop computes on the other."""
    from generator.firmware import imxrt

    ok = _variant("keywords", "evkb", KEYWORDS_MACS)
    assert imxrt.check_target(ok) == []
    assert imxrt.compute_us(ok) < ok.frontend.hop_us / 3  # ~36 ms (M0+ cycle counts at 600 MHz)
    late = _variant("keywords", "evkb", 10_000_000)
    probs = imxrt.check_target(late)
    assert len(probs) == 1 and "ping-pong of 2 x 2304 samples" in probs[0].message
    assert "raise hop_frames to 23 or more" in probs[0].message
    assert (probs[0].line, probs[0].col) == _line_col(_project("keywords"), "hop_frames")


def test_board_without_pdm_microphone_is_refused():
    project = _project("fire_alarm")
    probs = _problems(project, "pico", ANALYSIS, board=load_board("teensy41"))
    assert any("PDM" in p.message for p in probs)


# ---------------------------------------------------------------------------- UF2

def test_uf2_blocks_round_trip_and_carry_the_rp2040_family():
    data = bytes(range(256)) * 3 + b"\x01\x02"
    blob = uf2.to_uf2(data, 0x10000000, rp2040.UF2_FAMILY_ID)
    assert len(blob) == 4 * 512
    assert blob[:4] == b"UF2\n" and blob[508:512] == bytes.fromhex("306fb10a")
    assert int.from_bytes(blob[28:32], "little") == 0xE48BFF56
    base, back, family = uf2.from_uf2(blob)
    assert (base, family) == (0x10000000, 0xE48BFF56)
    assert back[:len(data)] == data and back[len(data):] == bytes(256 * 4 - len(data))
    with pytest.raises(ValueError):
        uf2.to_uf2(data, 0x10000001, 1)


def test_uf2_cli_writes_file(tmp_path):
    (tmp_path / "a.bin").write_bytes(b"\xAA" * 300)
    assert uf2.main([str(tmp_path / "a.bin"), str(tmp_path / "a.uf2"), "--base", "0x10000000",
                     "--family", "0xe48bff56"]) == 0
    assert uf2.from_uf2((tmp_path / "a.uf2").read_bytes())[1][:300] == b"\xAA" * 300


# ------------------------------------------------------------------ PDM decimator

def _decimate(bits: np.ndarray, lut) -> np.ndarray:
    """What audio_in.c computes: per 64 bits, the tables over the last 6 words (MSB first)."""
    words = np.packbits(bits.reshape(-1, 8), axis=1, bitorder="big").reshape(-1)
    out = []
    for n in range(len(words) // 8):
        window = words[max(0, 8 * n - 16):8 * n + 8]
        window = np.concatenate([np.zeros(24 - len(window), np.uint8), window])
        out.append(sum(lut[t][b] for t, b in enumerate(window)))
    return np.array(out)


def test_pdm_lut_full_scale_and_a_sigma_delta_sine():
    lut = rp2040.pdm_lut()
    assert len(lut) == 24 and all(len(t) == 256 for t in lut)
    full = 64 ** 3 // rp2040.LUT_DIVISOR  # all ones: full scale, within the tables' rounding
    assert abs(sum(t[255] for t in lut) - full) <= len(lut) // 2
    assert sum(t[0] for t in lut) == -sum(t[255] for t in lut)
    # A first-order sigma-delta stream of a 500 Hz sine at half scale, 16 kHz x 64.
    n = 64 * 1600
    x = 0.5 * np.sin(2 * np.pi * 500 * np.arange(n) / (16000 * 64))
    bits, acc = np.zeros(n, np.uint8), 0.0
    for i, v in enumerate(x):
        b = 1 if acc + v >= 0 else 0
        acc += v - (2 * b - 1)
        bits[i] = b
    y = _decimate(bits, lut)[10:].astype(float) / (64 ** 3 // rp2040.LUT_DIVISOR)
    # Output n filters bits [64n - 128, 64n + 64); the symmetric FIR is centred at 64n - 31.5.
    ref = 0.5 * np.sin(2 * np.pi * 500 * (np.arange(10, 1600) * 64 - 31.5) / (16000 * 64))
    droop = np.sinc(500 / 16000) ** 3
    assert np.max(np.abs(y - ref * droop)) < 0.01


# ------------------------------------------------------------------ portable C modules

def _render_common(tmp_path, spec="fire_alarm", target="pico"):
    """The whole tree rendered; returns the portable (templates/common) files in it."""
    project = _project(spec)
    t = _target(project, target)
    analysis = dict(ANALYSIS, model_bytes=4)
    calibration = {"threshold": 0.7} if project.spec.detection.threshold == "auto" else None
    rp2040.render(resolve(project, t, load_board(t.board), analysis, calibration), analysis,
                  b"\0" * 4, tmp_path)
    return [tmp_path / rel for rel in template_names("common")]


@pytest.mark.parametrize("spec", ["fire_alarm", "keywords"])
def test_portable_modules_compile_for_cortex_m0plus_with_werror(tmp_path, spec):
    gcc = shutil.which("arm-none-eabi-gcc")
    if gcc is None:
        pytest.skip("arm-none-eabi-gcc is not installed (CI installs gcc-arm-none-eabi)")
    from generator import cmsis

    files = _render_common(tmp_path, spec)
    sources = [f for f in files if f.suffix in (".c", ".cc")]
    assert {"detection.c", "mf_features.c", "mf_stream.c"} <= {f.name for f in sources}
    # No CMSIS-Core here (it comes with the SDK): __GNUC_PYTHON__ makes arm_math_types.h define
    # the compiler macros itself, as the host build of the same sources does.
    incs = [f"-I{d}" for d in [tmp_path, *cmsis.cmsis_dsp().include_dirs]]
    for src in sources:
        std = "-std=c99" if src.suffix == ".c" else "-std=c++17"
        res = subprocess.run([gcc, "-mcpu=cortex-m0plus", "-mthumb", std, "-O2", "-Wall",
                              "-Wextra", "-Werror", "-D__GNUC_PYTHON__", *incs, "-c", str(src),
                              "-o", str(src.with_suffix(".o"))], capture_output=True, text=True)
        assert res.returncode == 0, res.stderr


@pytest.fixture(scope="module")
def detector_lib(tmp_path_factory):
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        pytest.skip("no host C compiler")
    tmp = tmp_path_factory.mktemp("det")
    _render_common(tmp)
    lib = tmp / "libdet.so"
    subprocess.run([cc, "-shared", "-fPIC", "-O2", "-Wall", "-Werror", "-I", str(tmp),
                    str(tmp / "detection.c"), "-o", str(lib)], check=True)
    return ctypes.CDLL(str(lib))


def test_detector_smooths_thresholds_and_holds_with_hysteresis(detector_lib):
    det = ctypes.create_string_buffer(4096)
    scores = ctypes.c_int16 * 2

    def step(alarm):
        return detector_lib.mf_detector_update(det, scores(q15(alarm), q15(1 - alarm)))

    # fire_alarm: smoothing 3, threshold 0.7, hysteresis 0.1; only 'alarm' (index 0) detects.
    detector_lib.mf_detector_reset(det)
    assert step(0.9) == 0      # mean 0.9 >= 0.7: on
    assert step(0.4) == 0      # mean 0.65, still >= 0.6 (threshold - hysteresis): held
    assert step(0.3) == -1     # mean 0.533 < 0.6: off
    assert step(0.8) == -1     # mean 0.5
    assert step(0.85) == -1    # mean 0.65: above the release level, below the threshold
    assert step(0.85) == 0     # mean 0.833: on
    detector_lib.mf_detector_reset(det)
    assert step(0.65) == -1    # above the release level but never reached the threshold
    assert step(0.0) == -1     # 'background' high, but it does not detect
    detector_lib.mf_detector_smoothed.restype = ctypes.c_int16
    assert detector_lib.mf_detector_smoothed(det, 1) == (q15(0.35) + q15(1.0)) // 2
    assert detector_lib.mf_detector_top(det) == 1


def test_documented_serial_line_parses_with_the_benchmark_regex(tmp_path):
    """The README's example line, the printf in main.cpp and the benchmark's parser agree."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("rp2040_emulator",
                                                  REPO / "benchmarks" / "rp2040_emulator.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    files = {f.name: f for f in _render_common(tmp_path) + list(tmp_path.iterdir())}
    readme = files["README.md"].read_text()
    example = next(ln for ln in readme.splitlines() if ln.startswith("hop="))
    m = bench.LINE.fullmatch("clip=0 " + example)
    assert m and m["clip"] == "0" and m["top"] == "alarm" and m["ovr"] == "0"
    assert m["q"] == "127,-128"
    live = bench.LINE.fullmatch(example)  # microphone builds print no clip=
    assert live and live["clip"] is None and live["q"] == "127,-128"
    main = files["main.cpp"].read_text()
    fmt = re.search(r'printf\("(hop=%lu[^"]*)"', main).group(1)
    keys = [k.split("=")[0] for k in fmt.split()]
    assert keys == [k.split("=")[0] for k in example.split()]
    assert keys == ["hop", "t_ms", "top", "score", "det", "dsp_us", "inf_us", "ovr", "q"]
    assert "(unsigned long)mf_audio_overruns()" in main
    # The repository README shows the same line.
    top = next(ln for ln in (REPO / "README.md").read_text().splitlines() if ln.startswith("hop="))
    assert [k.split("=")[0] for k in top.split()] == keys and bench.LINE.fullmatch(top)
