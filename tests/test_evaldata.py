"""`micforge evaluate`: scoring a labelled folder with a built int8 model under TFLM.

The model is built without training (fixed Keras seed, int8 conversion on a fixed
calibration set), so it is deterministic and fast; its accuracy means nothing,
the report's content and format are what is checked (golden file).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import REPO, assert_golden
from generator.cli import main
from generator.errors import SpecError
from generator.evaldata import evaluate_folder, format_folder_report
from generator.paths import Artifacts
from generator.spec import load_spec

GOLDEN = REPO / "tests" / "golden" / "evaldata" / "report.txt"
SR = 16000
SPEC = """\
name: evaltest
audio: {sample_rate: 16000, clip_seconds: 1.0}
features: {frame_length: 512, frame_step: 512, fft_size: 512, mel_bands: 16}
classes: [beep, siren, background, _silence_]
dataset: {layout: folders, root: data}
model: {architecture: compact_cnn, filters: [4], first_stride: 4}
quantization: {representative_samples: 16}
detection: {classes: [beep, siren]}
targets:
  - {name: pico, board: rpi_pico}
"""


@pytest.fixture(autouse=True)
def _feature_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MICFORGE_CACHE", str(tmp_path / "cache"))


def _tone(freq: float, seconds: float, level: float = 0.3, rate: int = SR) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return level * np.sin(2 * np.pi * freq * t)


def make_folder(root: Path) -> Path:
    """A small labelled folder: good clips, bad files, a non-class folder (siren has none)."""
    rng = np.random.default_rng(0)
    for d in ("beep", "background", "_silence_", "notes"):
        (root / d).mkdir(parents=True)
    beeping = _tone(3000, 2.5) * (np.arange(int(2.5 * SR)) // (SR // 4) % 2)
    sf.write(root / "beep" / "beep_a.wav", beeping, SR, subtype="PCM_16")  # 2 windows + a tail
    sf.write(root / "beep" / "beep_b_t001.5.wav", _tone(2500, 1.0), SR, subtype="PCM_16")
    stereo = np.stack([_tone(3500, 1.0, rate=44100)] * 2, axis=1)
    sf.write(root / "beep" / "beep_b_t002.5.wav", stereo, 44100, subtype="PCM_16")
    sf.write(root / "beep" / "short.wav", _tone(3000, 0.3), SR, subtype="PCM_16")
    sf.write(root / "beep" / ".hidden.wav", _tone(3000, 1.0), SR, subtype="PCM_16")
    (root / "beep" / "broken.wav").write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(range(40)))
    (root / "beep" / "readme.txt").write_text("not audio\n")
    sf.write(root / "background" / "noise_1.wav", 0.1 * rng.standard_normal(SR), SR, subtype="PCM_16")
    t = np.arange(int(1.2 * SR)) / SR
    hum = sum(0.1 / k * np.sin(2 * np.pi * 50 * k * t) for k in (1, 2, 3))
    sf.write(root / "background" / "hum_x.wav", hum, SR, subtype="PCM_16")  # tail 0.2 s dropped
    sf.write(root / "background" / "quiet.wav", np.zeros(SR), SR, subtype="PCM_16")
    door = np.concatenate([0.2 * rng.standard_normal(SR), np.zeros(SR)])  # window 1 is silent
    sf.write(root / "background" / "door_t000.0.wav", door, SR, subtype="PCM_16")
    for n in (0, 1):
        chirp = 0.2 * np.sin(2 * np.pi * (200 + 1500 * n) * t[:SR] * (1 + t[:SR]))
        sf.write(root / "background" / f"yes_abcd1234_nohash_{n}.wav", chirp, SR, subtype="PCM_16")
    sf.write(root / "_silence_" / "room.wav", 1e-4 * rng.standard_normal(SR), SR, subtype="PCM_16")
    (root / "notes" / "todo.wav").write_bytes(b"")
    (root / "info.txt").write_text("recorded on a phone\n")
    (root / ".DS_Store").write_bytes(b"\0")
    return root


def build_tflite(project) -> bytes:
    """An untrained, seeded compact_cnn converted to int8 on a fixed calibration set."""
    import keras

    from generator.convert import convert, representative_set
    from generator.zoo import input_shape, build_model

    keras.backend.clear_session()  # layer names (kept in the flatbuffer) restart from scratch
    keras.utils.set_random_seed(0)
    model = build_model(project.spec)
    rng = np.random.default_rng(0)
    x = rng.integers(-128, 128, size=(16, *input_shape(project.spec)))
    return convert(model, representative_set(project, (x / 128).astype(np.float32)))


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """(spec path, project, tflite bytes, data folder), built once for the module."""
    base = tmp_path_factory.mktemp("evaldata")
    spec_path = base / "evaltest.yaml"
    spec_path.write_text(SPEC)
    project = load_spec(spec_path)
    return spec_path, project, build_tflite(project), make_folder(base / "data")


def _model_file(tmp_path: Path, tflite: bytes, build_dir: Path | None = None) -> Path:
    path = Artifacts.for_project("evaltest", build_dir or tmp_path / "build").tflite
    path.parent.mkdir(parents=True)
    path.write_bytes(tflite)
    return path


def test_model_is_deterministic(built):
    _, project, tflite, _ = built
    assert build_tflite(project) == tflite


def test_report_golden(built, tmp_path):
    _, project, tflite, data = built
    result = evaluate_folder(project, _model_file(tmp_path, tflite), data)
    text = json.dumps(result)
    assert str(tmp_path) not in text and str(data) not in text  # relative names only
    assert (result["windows"], result["files"], result["skipped_files"], result["dropped_windows"]) \
        == (11, 9, 6, 1)
    assert sum(v["support"] for v in result["per_class"].values()) == 11
    assert result["per_class"]["siren"]["support"] == 0
    correct = sum(row[i] for i, row in enumerate(result["confusion"]))
    assert len(result["failed"]) == 11 - correct
    assert {r["recording"] for r in result["recordings"]} >= {"beep/beep_b", "background/speaker:abcd1234",
                                                             "background/door"}
    assert set(result["false_positives"]) == {"background", "_silence_"}
    reasons = {(s["file"], s["reason"]) for s in result["skipped"]}
    assert {("notes/", "folder is not a class"), ("info.txt", "not in a class folder"),
            ("beep/short.wav", "too short"), ("background/quiet.wav", "silent window"),
            ("beep/readme.txt", "not an audio file")} <= reasons
    assert not any(".hidden" in f or ".DS_Store" in f for f, _ in reasons)
    assert_golden(GOLDEN, format_folder_report(result) + "\n")


def test_failed_list_capped_in_text_not_json(built, tmp_path):
    _, project, tflite, data = built
    result = evaluate_folder(project, _model_file(tmp_path, tflite), data)
    fake = dict(result, failed=[dict(file=f"beep/x{i}.wav", window=0, true="beep",
                                     predicted="background", score=5) for i in range(23)])
    text = format_folder_report(fake)
    assert "beep/x19.wav" in text and "beep/x20.wav" not in text and "... 3 more" in text


def test_empty_or_missing_folder_is_a_spec_error(built, tmp_path):
    _, project, tflite, _ = built
    model = _model_file(tmp_path, tflite)
    with pytest.raises(SpecError, match="no such folder"):
        evaluate_folder(project, model, tmp_path / "nope")
    (tmp_path / "empty" / "cats").mkdir(parents=True)
    with pytest.raises(SpecError, match=r"no window to score.*1 folder is not a class"):
        evaluate_folder(project, model, tmp_path / "empty")


def test_model_for_another_spec_is_refused(built, tmp_path):
    _, project, tflite, data = built
    other = tmp_path / "other.yaml"
    other.write_text(SPEC.replace("mel_bands: 16", "mel_bands: 20"))
    wrong = r"model input is int8 \[1, 31, 16, 1\], not the int8 \[1, 31, 20, 1\]"
    with pytest.raises(SpecError, match=wrong):
        evaluate_folder(load_spec(other), _model_file(tmp_path, tflite), data)


def test_cli(built, tmp_path, capsys):
    spec_path, _, tflite, data = built
    build_dir = tmp_path / "b"
    out_json = tmp_path / "out" / "eval.json"
    base = ["evaluate", str(spec_path), "--data", str(data), "--build-dir", str(build_dir)]

    assert main(base) == 2  # no model yet
    err = capsys.readouterr().err
    model = Artifacts.for_project("evaltest", build_dir).tflite.resolve()
    spec_shown = str(spec_path)  # outside the working directory: shown absolute
    assert err == (f"{spec_shown}: no built model at {model}; run micforge build {spec_shown} first\n")

    _model_file(tmp_path, tflite, build_dir)
    assert main(base + ["--json", str(out_json)]) == 0
    printed = capsys.readouterr().out
    saved = json.loads(out_json.read_text())
    assert printed == format_folder_report(saved) + "\n"
    m = re.match(r"evaltest: (\d+) windows? scored from (\d+) files?; (\d+) files? skipped, "
                 r"(\d+) silent windows? dropped\naccuracy .* \((\d+)/(\d+)\)", printed)
    assert m, printed
    assert [int(v) for v in m.groups()] == [
        saved["windows"], saved["files"], saved["skipped_files"], saved["dropped_windows"],
        saved["windows"] - len(saved["failed"]), saved["windows"]]
    assert f"failed windows: {len(saved['failed'])}\n" in printed
    assert f"skipped: {len(saved['skipped'])}\n" in printed

    missing = tmp_path / "no_such_dir"
    assert main(["evaluate", str(spec_path), "--data", str(missing), "--build-dir", str(build_dir)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == f"{missing}: no such folder of recordings\n"
