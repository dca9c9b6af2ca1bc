"""Shared test fixtures: repository paths and the golden-file helper."""

from __future__ import annotations

import difflib
import functools
import os
from collections import Counter, defaultdict
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


def _diff(base_path: str, base: str, path: str, text: str) -> str:
    return "".join(difflib.unified_diff(base.splitlines(keepends=True),
                                        text.splitlines(keepends=True), base_path, path, n=2))


def golden_layout(rendered: dict[tuple[str, str], dict[str, str]]) -> dict[str, str]:
    """{golden path: text} of rendered trees {(spec, variant): {file: text}}, each text once.

    A file rendered alike everywhere it is rendered is stored whole under all/. Otherwise each of
    its texts is stored where it is shared: <spec>/<file> when every variant of the spec renders
    it, else <spec>/<variant>/<file>. The most common text is stored whole; every other one as a
    unified diff (<path>.diff, its header naming the file it applies to) against the stored
    whole text it differs least from, when that diff is under half the text's size, else whole.
    So a change to a shared template shows once, and what makes a variant different is exactly
    what its .diff says: the golden tree holds no near-identical copies."""
    by_name: dict[str, dict[tuple[str, str], str]] = defaultdict(dict)
    for key, files in rendered.items():
        for name, text in files.items():
            by_name[name][key] = text
    out = {}
    for name, texts in sorted(by_name.items()):
        if len(set(texts.values())) == 1:
            out[f"all/{name}"] = next(iter(texts.values()))
            continue
        places = {}  # golden path (without .diff) -> text
        specs = defaultdict(dict)
        for (spec, variant), text in texts.items():
            specs[spec][variant] = text
        for spec, variants in sorted(specs.items()):
            spec_variants = [v for s, v in rendered if s == spec and name in rendered[(s, v)]]
            if len(set(variants.values())) == 1 and len(variants) == len(spec_variants):
                places[f"{spec}/{name}"] = next(iter(variants.values()))
            else:
                places.update({f"{spec}/{v}/{name}": t for v, t in sorted(variants.items())})
        counts = Counter(places.values())
        whole: dict[str, str] = {}  # text -> the path it is stored whole at
        for path, text in sorted(places.items(), key=lambda pt: (-counts[pt[1]], pt[0])):
            if text in whole:
                if whole[text] != path:
                    out[path + ".diff"] = _diff(whole[text], text, path, text) or \
                        f"same as {whole[text]}\n"
                continue
            best = min(((len(d), d) for d in (_diff(bp, out[bp], path, text) for bp in
                                               whole.values())), default=None)
            if best is not None and best[0] < len(text) / 2:
                out[path + ".diff"] = best[1]
            else:
                out[path] = text
                whole[text] = path
    return out
