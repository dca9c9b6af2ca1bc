"""Training batches: SpecAugment masks training batches only, reproducibly, per epoch."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from generator.spec import load_spec
from generator.train import _batches

REPO = Path(__file__).resolve().parent.parent


def _data(n=40):
    rng = np.random.default_rng(0)
    x = (rng.integers(-100, 100, size=(n, 31, 32, 1)) / 128).astype(np.float32)
    return x, np.arange(n) % 2


def _epoch(batches) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    parts = [batches[i] for i in range(len(batches))]
    return tuple(np.concatenate(p) for p in zip(*parts))


def test_training_batches_are_masked_shuffled_and_reproducible():
    project = load_spec(REPO / "projects" / "demo.yaml")
    x, y = _data()
    first = _batches(x, y, {0: 1.0, 1: 3.0}, project)
    xb, yb, wb = _epoch(first)
    assert sorted(yb.tolist()) == sorted(y.tolist()) and len(first) == 2  # batch size 32
    assert np.array_equal(wb, np.where(yb == 1, 3.0, 1.0))
    masked = (xb == -1.0).all(axis=1).any(axis=(1, 2)) | (xb == -1.0).all(axis=2).any(axis=(1, 2))
    assert 0 < masked.sum() < len(xb)  # probability 0.5: some examples, not all
    assert x.min() > -1.0  # the caller's array is never written
    again = _epoch(_batches(x, y, {0: 1.0, 1: 3.0}, project))
    assert all(np.array_equal(a, b) for a, b in zip((xb, yb, wb), again))
    first.on_epoch_end()
    xb2, yb2, _ = _epoch(first)
    assert not np.array_equal(yb2, yb) or not np.array_equal(xb2, xb)  # a new epoch, new draws


def test_spec_augment_off_leaves_training_batches_as_recorded():
    project = load_spec(REPO / "projects" / "demo.yaml")
    spec = project.spec.model_copy(update={"augmentation": project.spec.augmentation.model_copy(
        update={"spec_augment": project.spec.augmentation.spec_augment.model_copy(
            update={"probability": 0.0})})})
    off = type(project)(spec=spec, path=project.path, positions=project.positions)
    x, y = _data()
    xb, yb, _ = _epoch(_batches(x, y, None, off))
    order = [int(np.flatnonzero((x == row).all(axis=(1, 2, 3)))[0]) for row in xb]
    assert np.array_equal(xb, x[order]) and np.array_equal(yb, y[order])
