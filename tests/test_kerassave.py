"""kerassave: a .keras file whose bytes depend on the model alone, and that loads back."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time
import zipfile

import h5py
import numpy as np
import pytest

from generator.kerassave import ZIP_DATE, canonical, canonical_config, canonical_h5, save_stable

from conftest import REPO

# Op determinism on, as every build trains (train.train_model): once any test turns it on in
# this process, kernels round differently from a fresh process without it.
MODEL = """
import keras, numpy as np, tensorflow as tf
def tiny():
    keras.utils.set_random_seed(0)
    tf.config.experimental.enable_op_determinism()
    inp = keras.Input((31, 32, 1), name="features")
    x = keras.layers.Conv2D(4, 3, strides=2, padding="same", activation="relu", name="conv")(inp)
    x = keras.layers.Flatten(name="flatten")(x)
    out = keras.layers.Dense(2, activation="softmax", name="head")(x)
    model = keras.Model(inp, out, name="tiny")
    model.compile(optimizer=keras.optimizers.Adam(1e-3, name="adam"),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    rng = np.random.default_rng(0)
    model.fit(rng.random((8, 31, 32, 1)), np.array([0, 1] * 4), epochs=1, verbose=0)
    return model
"""


def tiny():
    scope: dict = {}
    exec(MODEL, scope)  # the same source the other-process test runs
    return scope["tiny"]()


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A trained model and its saves: plain and stable, twice, 2.1 s apart (a zip entry's
    date has 2 s steps, Keras' date_saved 1 s)."""
    tmp = tmp_path_factory.mktemp("kerassave")
    model = tiny()
    model.save(tmp / "plain1.keras")
    save_stable(model, tmp / "stable1.keras")
    time.sleep(2.1)
    model.save(tmp / "plain2.keras")
    save_stable(model, tmp / "stable2.keras")
    return model, tmp


def test_two_saves_are_byte_identical(saved):
    _, tmp = saved
    assert (tmp / "plain1.keras").read_bytes() != (tmp / "plain2.keras").read_bytes()
    assert (tmp / "stable1.keras").read_bytes() == (tmp / "stable2.keras").read_bytes()


def test_archive_is_canonical(saved):
    _, tmp = saved
    data = (tmp / "stable1.keras").read_bytes()
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        infos = zf.infolist()
        assert [i.filename for i in infos] == sorted(i.filename for i in infos)
        assert {i.date_time for i in infos} == {ZIP_DATE}
        meta = json.loads(zf.read("metadata.json"))
        config = zf.read("config.json").decode()
    assert "date_saved" not in meta and "keras_version" in meta
    plain = zipfile.ZipFile(tmp / "plain1.keras").read("config.json").decode()
    assert "shared_object_id" in plain and "shared_object_id" not in config
    assert canonical(data) == data  # idempotent


def test_save_after_load_is_identical_and_the_model_equal(saved, tmp_path):
    import keras

    model, tmp = saved
    loaded = keras.saving.load_model(tmp / "stable1.keras")
    save_stable(loaded, tmp_path / "again.keras")
    assert (tmp_path / "again.keras").read_bytes() == (tmp / "stable1.keras").read_bytes()
    for a, b in zip(model.get_weights(), loaded.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(model.optimizer.variables, loaded.optimizer.variables, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    x = np.random.default_rng(1).random((3, 31, 32, 1)).astype(np.float32)
    np.testing.assert_array_equal(model.predict(x, verbose=0), loaded.predict(x, verbose=0))


def test_unchanged_file_is_not_rewritten(saved):
    model, tmp = saved
    before = (tmp / "stable1.keras").stat().st_mtime_ns
    assert save_stable(model, tmp / "stable1.keras") is False
    assert (tmp / "stable1.keras").stat().st_mtime_ns == before


@pytest.mark.slow
def test_a_save_in_another_process_is_identical(saved, tmp_path):
    """Two builds are two processes: object ids (shared_object_id) and times differ there."""
    _, tmp = saved
    out = tmp_path / "other.keras"
    script = (f"import os, sys\nos.environ['TF_CPP_MIN_LOG_LEVEL'] = '3'\n{MODEL}\n"
              f"from generator.kerassave import save_stable\nsave_stable(tiny(), sys.argv[1])\n")
    subprocess.run([sys.executable, "-c", script, str(out)], cwd=REPO, check=True,
                   capture_output=True)
    assert out.read_bytes() == (tmp / "stable1.keras").read_bytes()


def test_shared_object_ids_renumbered_policies_dropped():
    def config(a, b):
        policy = {"class_name": "DTypePolicy", "config": {"name": "float32"}}
        return json.dumps({"layers": [
            {"dtype": dict(policy, shared_object_id=a), "init": {"class_name": "Ones",
                                                                  "shared_object_id": b}},
            {"dtype": dict(policy, shared_object_id=a), "init": {"class_name": "Ones",
                                                                  "shared_object_id": b}}]})
    one = canonical_config(config(140001, 140002).encode())
    assert one == canonical_config(config(99, 77).encode())
    layers = json.loads(one)["layers"]
    assert [l["init"]["shared_object_id"] for l in layers] == [1, 1]  # still shared
    assert all("shared_object_id" not in l["dtype"] for l in layers)


def _h5(order, track_times):
    out = io.BytesIO()
    with h5py.File(out, "w", track_order=True) as f:
        for name in order:
            g = f.create_group(f"layers/{name}/vars")
            g.attrs["name"] = name
            g.create_dataset("0", data=np.arange(6, dtype=np.float32).reshape(2, 3),
                             track_times=track_times)
    return out.getvalue()


def test_weights_file_depends_on_its_content_alone():
    a, b = _h5(["conv", "head"], True), _h5(["head", "conv"], False)
    assert a != b
    assert canonical_h5(a) == canonical_h5(b)
    with h5py.File(io.BytesIO(canonical_h5(a)), "r") as f:
        assert f["layers/conv/vars"].attrs["name"] == "conv"
        np.testing.assert_array_equal(f["layers/head/vars/0"][()],
                                      np.arange(6, dtype=np.float32).reshape(2, 3))
