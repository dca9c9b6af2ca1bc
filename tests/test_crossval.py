"""Cross-validation by whole recordings: fold rules, errors at the spec, a tiny real run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from generator import crossval, dataset
from generator.errors import SpecError
from generator.spec import load_spec

RATE = 16000


def _beeps(hz: float, seconds: float, seed: int) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    on = (t % 0.5) < 0.25
    rng = np.random.default_rng(seed)
    return 0.3 * np.sin(2 * np.pi * hz * t) * on + 0.01 * rng.standard_normal(len(t))


def _dataset(root: Path, tones=(2000, 2500, 3000), windows: int = 6, noises: int = 24) -> None:
    """One beep recording per tone, cut into windows every 0.5 s; loose noise clips."""
    for r, hz in enumerate(tones):
        rec = _beeps(hz, windows / 2 + 1, r)
        for k in range(windows):
            path = root / "beep" / f"alarm_{r:04d}_t{k * 0.5:05.1f}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(path, rec[int(k * 0.5 * RATE):int(k * 0.5 * RATE) + RATE], RATE,
                     subtype="PCM_16")
    rng = np.random.default_rng(7)
    for k in range(noises):
        path = root / "background" / f"noise{k:02d}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        colour = np.cumsum(rng.standard_normal(RATE)) if k % 2 else rng.standard_normal(RATE)
        sf.write(path, 0.2 * colour / np.abs(colour).max(), RATE, subtype="PCM_16")


def _spec(tmp_path: Path, cv: str, training: str = "{epochs: 3, batch_size: 16}") -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(
        "name: t\nclasses: [beep, background]\n"
        "dataset: {root: data, split: {validation: 0, test: 0}, seed: 1}\n"
        "augmentation: {copies: 1, seed: 2}\n"
        "model: {architecture: compact_cnn, filters: [4], first_stride: 4}\n"
        f"training: {training}\n"
        f"evaluation:\n  cross_validation: {cv}\n"
        "targets: [{name: pico, board: rpi_pico}]\n")
    return path


def test_leave_one_recording_out_makes_one_fold_per_recording(tmp_path):
    _dataset(tmp_path / "data")
    project = load_spec(_spec(tmp_path, "{method: leave_one_recording_out}"))
    clips = dataset.build_index(project)["clips"]
    fold, names = crossval.fold_of_sources(project, clips)
    assert names == ["alarm_0000", "alarm_0001", "alarm_0002"]
    assert [fold[n] for n in names] == [0, 1, 2]
    assert set(fold.values()) <= {0, 1, 2}
    noise = [s for s in fold if s.startswith("noise")]
    assert len({fold[s] for s in noise}) == 3  # the backgrounds spread over the folds too
    again, _ = crossval.fold_of_sources(project, list(reversed(clips)))
    assert again == fold


def test_group_kfold_keeps_each_source_in_one_fold(tmp_path):
    _dataset(tmp_path / "data")
    project = load_spec(_spec(tmp_path, "{method: group_kfold, folds: 4}"))
    clips = dataset.build_index(project)["clips"]
    fold, names = crossval.fold_of_sources(project, clips)
    assert len(names) == 4 and sorted(fold) == sorted({c["source"] for c in clips})


def test_too_few_or_too_many_recordings_are_errors_at_the_spec(tmp_path):
    _dataset(tmp_path / "data", tones=(2000,))
    project = load_spec(_spec(tmp_path, "{method: leave_one_recording_out}"), "spec.yaml")
    with pytest.raises(SpecError, match=r"^spec.yaml:8:30: leave_one_recording_out needs at least "
                                        r"2 recordings of beep; the dataset has 1"):
        crossval.fold_of_sources(project, dataset.build_index(project)["clips"])
    project = load_spec(_spec(tmp_path, "{method: leave_one_recording_out, classes: [background]}"),
                        "spec.yaml")
    with pytest.raises(SpecError, match=r"background come from 24 recordings .* use method: "
                                        r"group_kfold"):
        crossval.fold_of_sources(project, dataset.build_index(project)["clips"])


def test_unknown_cross_validation_class_is_an_error_at_its_line(tmp_path):
    _dataset(tmp_path / "data")
    with pytest.raises(SpecError, match=r"^spec.yaml:8:71: 'siren' is not one of the classes"):
        load_spec(_spec(tmp_path, "{method: leave_one_recording_out, classes: [beep, siren]}"),
                  "spec.yaml")


def test_the_folds_leave_the_test_split_out_unless_asked():
    cv = load_spec(Path(__file__).parents[1] / "projects" / "fire_alarm.yaml"
                   ).spec.evaluation.cross_validation
    assert crossval.folded_splits(cv) == ["train", "validation"]
    assert crossval.folded_splits(cv.model_copy(update={"include_test": True})) == list(
        dataset.SPLITS)


@pytest.mark.slow
def test_cross_validation_trains_and_scores_every_fold(tmp_path):
    _dataset(tmp_path / "data")
    path = _spec(tmp_path, "{method: leave_one_recording_out}")
    path.write_text(path.read_text().replace("validation: 0, test: 0", "validation: 0, test: 0.3, segment_seconds: 1"))
    project = load_spec(path)
    index = dataset.build_index(project)
    folded = [c for c in index["clips"] if c["split"] != "test"]
    assert len(folded) < len(index["clips"])  # the hash split put some clips in test
    fold_of, names = crossval.fold_of_sources(project, folded)
    meta = crossval.train_folds(project, index, tmp_path / "folds.npz")
    assert meta["splits"] == ["train", "validation"]
    result = crossval.score_folds(project, tmp_path / "folds.npz", tmp_path / "crossval.json")
    assert (tmp_path / "crossval.json").exists()
    assert result["threshold"] == project.spec.detection.threshold
    assert [r["fold"] for r in result["folds"]] == ["alarm_0000", "alarm_0001", "alarm_0002"]
    for r in result["folds"]:
        held = [k for k in r["per_source"] if k.startswith("beep/")]
        assert held == [f"beep/{r['fold']}"]  # only its own recording is held out
        assert r["train_windows"] + r["validation_windows"] + r["test_windows"] == len(folded)
        assert r["test_windows"] == sum(fold_of[c["source"]] == names.index(r["fold"])
                                        for c in folded)
        assert 0 <= r["accuracy"] <= 1
        assert r["false_positive_rates"]["background"]["windows"] > 0
    text = crossval.format_crossval(result)
    assert "the test split left out" in text
    assert "held-out recordings: beep/alarm_0000" in text
    assert "recall on held-out recordings: mean" in text
    # Another threshold re-scores the same folds: accuracy (argmax) stays, detection follows.
    stricter = load_spec(path, text=path.read_text() + "detection: {threshold: 0.99}\n")
    again = crossval.score_folds(stricter, tmp_path / "folds.npz", tmp_path / "strict.json")
    assert again["threshold"] == 0.99
    for a, b in zip(result["folds"], again["folds"]):
        assert a["accuracy"] == b["accuracy"] and a["threshold_sweep"] == b["threshold_sweep"]
        ra, rb = a["detection_recalls"]["beep"], b["detection_recalls"]["beep"]
        assert rb["detected"] <= ra["detected"]


def test_a_new_threshold_rescores_the_folds_without_training_them():
    """The folds' stage reads no detection threshold and no stream setting; scoring reads the
    threshold: editing it re-runs the cheap stage only."""
    from generator.pipeline import spec_slice

    path = Path(__file__).parents[1] / "projects" / "fire_alarm.yaml"
    text = path.read_text()
    base = load_spec(path, text=text).spec
    threshold = load_spec(path, text=text.replace("threshold: 0.7", "threshold: 0.6")).spec
    minutes = load_spec(path, text=text.replace(
        "evaluation:\n", "evaluation:\n  streaming: {minutes: 10}\n")).spec
    assert spec_slice(threshold, "folds") == spec_slice(base, "folds")
    assert spec_slice(threshold, "crossval") != spec_slice(base, "crossval")
    assert spec_slice(minutes, "folds") == spec_slice(base, "folds")
    assert spec_slice(minutes, "crossval") == spec_slice(base, "crossval")
