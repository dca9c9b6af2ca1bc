"""The model stages end to end on the real fire_alarm recordings (../shared/data).

The example spec with fewer epochs: index -> int8 features (the device's
fixed-point front end) -> train -> int8 convert -> analyze -> evaluate. Checks
accuracy of all three runtimes, the int8 drop, int8 == TFLM on every clip, and
that the measured arena is the smallest that runs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from generator import analyze as A
from generator.convert import to_tflite
from generator.dataset import build_index, load_split
from generator.evaluate import evaluate
from generator.features import compute_batch, design
from generator.zoo import input_shape
from generator.spec import load_spec
from generator.train import train

REPO = Path(__file__).resolve().parent.parent


def features_npz(project, out: Path) -> Path:
    """The features of every split, computed with the real front end (no augmentation)."""
    index = build_index(project)
    fe = design(project.spec)
    arrays = {}
    for split in ("train", "validation", "test"):
        clips, labels = load_split(project, index, split)
        arrays[f"x_{split}"], arrays[f"y_{split}"] = compute_batch(fe, clips), labels
    np.savez(out, **arrays)
    return out


@pytest.mark.slow
@pytest.mark.shared
def test_fire_alarm_end_to_end(shared_data, tmp_path):
    text = (REPO / "projects" / "fire_alarm.yaml").read_text()
    text = text.replace("root: ../../shared/data/fire_alarm", f"root: {shared_data / 'fire_alarm'}")
    text = text.replace("epochs: 60", "epochs: 12")
    assert "epochs: 12" in text and str(shared_data) in text
    spec = tmp_path / "fire_alarm.yaml"
    spec.write_text(text)
    project = load_spec(spec)
    npz = features_npz(project, tmp_path / "features.npz")
    out = tmp_path / "build" / "fire_alarm"
    model, tflite = out / "model" / "model.keras", out / "tflite" / "model.tflite"
    train(project, npz, model, out / "model" / "history.json")
    to_tflite(project, model, npz, tflite)
    analysis = A.analyze(project, tflite, out / "analysis.json")
    ev = evaluate(project, model, tflite, npz, out / "evaluation.json")

    acc = {r: ev["runtimes"][r]["accuracy"] for r in ("float", "int8", "tflm")}
    assert acc["float"] >= 0.9 and acc["int8"] >= 0.9, acc
    assert ev["int8_drop_points"] <= 2.0, ev["int8_drop_points"]
    assert ev["int8_tflm_mismatches"] == 0 and acc["int8"] == acc["tflm"]
    assert ev["runtimes"]["int8"]["per_class"]["alarm"]["recall"] >= 0.75

    data = tflite.read_bytes()
    measured = analysis["arena"]["measured_bytes"]
    assert A.runs_with_arena(data, measured, analysis["input"]["shape"])[0]
    assert not A.runs_with_arena(data, measured - A.ARENA_ALIGN, analysis["input"]["shape"])[0]
    assert analysis["input"]["shape"] == [1, *input_shape(project.spec)]
    assert analysis["macs"] < 1_000_000
