"""Shared test fixtures: repository paths and the golden-file helper."""

from __future__ import annotations

import functools
import os
from collections import defaultdict
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"
UPDATE_GOLDEN = os.environ.get("MICFORGE_UPDATE_GOLDEN") == "1"


def assert_golden(path: Path, actual: str) -> None:
    """Compare `actual` with the golden file; MICFORGE_UPDATE_GOLDEN=1 rewrites it."""
    if UPDATE_GOLDEN or not path.exists():
        if not UPDATE_GOLDEN:
            pytest.fail(f"golden file {path} is missing; run with MICFORGE_UPDATE_GOLDEN=1 to create it")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual)
        return
    expected = path.read_text()
    assert actual == expected, f"{path} differs; MICFORGE_UPDATE_GOLDEN=1 refreshes it deliberately"


@functools.lru_cache(maxsize=None)
def tiny_model(num_frames: int, num_bins: int, num_classes: int) -> bytes:
    """A fixed-weight int8 CNN of the spec's input shape (deterministic bytes)."""
    import numpy as np
    import tensorflow as tf

    # Tensor names reach the flatbuffer: name every layer, so the bytes do not depend on
    # how many Keras models other tests built before this one.
    tf.keras.utils.set_random_seed(0)
    inp = tf.keras.Input((num_frames, num_bins, 1), batch_size=1, name="features")
    x = tf.keras.layers.Conv2D(4, 3, strides=2, padding="same", activation="relu", name="conv")(inp)
    x = tf.keras.layers.MaxPooling2D(2, name="pool")(x)
    x = tf.keras.layers.Flatten(name="flatten")(x)
    out = tf.keras.layers.Dense(num_classes, activation="softmax", name="head")(x)
    model = tf.keras.Model(inp, out, name="tiny")
    rng = np.random.default_rng(0)
    reps = [rng.uniform(-1, 1, (1, num_frames, num_bins, 1)).astype(np.float32) for _ in range(4)]
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ([r] for r in reps)
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    return conv.convert()



@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not beside the repository")
    return SHARED_DATA


def golden_layout(rendered: dict[tuple[str, str], dict[str, str]]) -> dict[str, str]:
    """{golden path: text}: each file where its text is shared (see the module docstring)."""
    by_name: dict[str, dict[tuple[str, str], str]] = defaultdict(dict)
    for key, files in rendered.items():
        for name, text in files.items():
            by_name[name][key] = text
    out = {}
    for name, texts in sorted(by_name.items()):
        if len(texts) == len(rendered) and len(set(texts.values())) == 1:
            out[f"all/{name}"] = next(iter(texts.values()))
            continue
        specs = defaultdict(dict)
        for (spec, variant), text in texts.items():
            specs[spec][variant] = text
        for spec, variants in sorted(specs.items()):
            spec_variants = [v for s, v in rendered if s == spec]
            if len(variants) == len(spec_variants) and len(set(variants.values())) == 1:
                out[f"{spec}/{name}"] = next(iter(variants.values()))
            else:
                out.update({f"{spec}/{v}/{name}": t for v, t in sorted(variants.items())})
    return out
