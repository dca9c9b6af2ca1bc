"""Quantization-aware training (generator/qat.py) on small generated features.

The settings' validation is fast; everything that fine-tunes starts the tf_keras +
tensorflow-model-optimization process (about 10 s each) and is marked slow.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from generator import analyze as A
from generator.convert import io_quantization, to_tflite
from generator.errors import SpecError
from generator.evaluate import evaluate
from generator.features import INPUT_SCALE, INPUT_ZERO_POINT
from generator.spec import Qat, load_spec
from generator.train import train
from generator.zoo import build_model
from test_model import FRAMES, BINS, make_features, write_spec

QAT = "quantization: {mode: qat, qat: {epochs: 2}}\n"


def _ops(tflite: bytes) -> list[str]:
    return [x["op"] for x in A.read_layers(tflite)[0]]


def test_qat_settings_default_and_validate(tmp_path):
    spec = load_spec(write_spec(tmp_path / "a", extra="quantization: {mode: qat}\n")).spec
    assert spec.quantization.mode == "qat" and spec.quantization.qat is None  # Qat() defaults
    assert (Qat().epochs, Qat().learning_rate) == (5, 1e-4)
    spec = load_spec(write_spec(tmp_path / "b", extra="quantization:\n  mode: qat\n"
                                "  qat: {epochs: 3, learning_rate: 0.0005}\n")).spec
    assert spec.quantization.qat == Qat(epochs=3, learning_rate=5e-4)
    path = write_spec(tmp_path / "c", extra="quantization:\n  qat: {epochs: 3}\n")
    with pytest.raises(SpecError) as err:
        load_spec(path)
    assert str(err.value) == (f"{path}:8:8: qat settings are given but mode is 'ptq': they apply "
                              f"to mode: qat only; set mode: qat or remove qat")


def test_a_layer_qat_cannot_rebuild_is_refused_at_the_mode_line(tmp_path):
    import keras
    project = load_spec(write_spec(tmp_path, extra="quantization:\n  mode: qat\n"))
    inputs = keras.Input((FRAMES, BINS, 1))
    x = keras.layers.Conv2D(4, 3, strides=2, name="conv")(inputs)
    x = keras.layers.LayerNormalization(name="norm")(x)
    x = keras.layers.Flatten()(x)
    keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(x)).save(tmp_path / "m.keras")
    with pytest.raises(SpecError) as err:
        to_tflite(project, tmp_path / "m.keras", make_features(tmp_path / "f.npz", per_class=8),
                  tmp_path / "m.tflite")
    assert re.fullmatch(rf"{re.escape(str(tmp_path))}/t.yaml:8:9: mode: qat cannot fine-tune layer "
                        r"'norm' \(LayerNormalization\): .*; use mode: ptq", str(err.value)), err.value
    assert not (tmp_path / "m.tflite").exists()


def test_model_layers_flattens_a_transfer_body(tmp_path):
    import keras
    from generator.qat import model_layers
    spec = load_spec(write_spec(tmp_path, model="{architecture: ds_cnn, filters: 8, blocks: 1}")).spec
    base = build_model(spec)
    body = keras.Model(base.inputs, base.get_layer("head").input, name="body")
    inputs = keras.Input((FRAMES, BINS, 1))
    model = keras.Model(inputs, keras.layers.Dense(3, name="new_head")(body(inputs)))
    assert [layer.name for layer in model_layers(model)] == [
        "conv0", "conv0_bn", "conv0_relu", "dw1", "dw1_bn", "dw1_relu", "pw1", "pw1_bn",
        "pw1_relu", "pool", "flatten", "dropout", "new_head"]


@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    """A small compact_cnn trained once, converted by ptq and (twice) by qat."""
    tmp = tmp_path_factory.mktemp("qat")
    npz = make_features(tmp / "features.npz")
    ptq = load_spec(write_spec(tmp / "ptq"))
    qat = load_spec(write_spec(tmp / "qat", extra=QAT))
    model = tmp / "model.keras"
    train(ptq, npz, model, tmp / "history.json")
    to_tflite(ptq, model, npz, tmp / "ptq.tflite")
    for name in ("qat.tflite", "qat_again.tflite"):
        to_tflite(qat, model, npz, tmp / name)
    return dict(tmp=tmp, npz=npz, model=model, project=qat,
                **{k: (tmp / f"{k}.tflite").read_bytes() for k in ("ptq", "qat", "qat_again")})


@pytest.mark.slow
def test_qat_keeps_the_int8_contract_and_the_ptq_ops(tuned):
    q = io_quantization(tuned["qat"])
    assert q["input"] == {"dtype": "int8", "shape": [1, FRAMES, BINS, 1], "scale": INPUT_SCALE,
                          "zero_point": INPUT_ZERO_POINT}
    assert q["output"] == io_quantization(tuned["ptq"])["output"]
    assert _ops(tuned["qat"]) == _ops(tuned["ptq"])
    assert tuned["qat"] != tuned["ptq"]  # the weights were fine-tuned, not just re-converted


@pytest.mark.slow
def test_qat_is_deterministic(tuned):
    assert tuned["qat"] == tuned["qat_again"]


@pytest.mark.slow
def test_qat_model_is_evaluated_like_ptq(tuned):
    tmp = tuned["tmp"]
    ev = evaluate(tuned["project"], tuned["model"], tmp / "qat.tflite", tuned["npz"], tmp / "e.json")
    for runtime in ("float", "int8", "tflm"):
        assert ev["runtimes"][runtime]["accuracy"] >= 0.9, (runtime, ev["runtimes"][runtime])
    assert ev["int8_tflm_mismatches"] == 0
    assert A.analyze(tuned["project"], tmp / "qat.tflite", tmp / "a.json")["arena"]["measured_bytes"] > 0


@pytest.mark.slow
def test_qat_of_a_batch_norm_model_folds_and_adds_no_requantize(tmp_path, capfd):
    """ds_cnn: conv + batch norm + ReLU blocks and an average pool over the whole map. The
    rebuilt tf_keras model must compute what the Keras 3 one does (checked in the QAT
    process), batch norm folds into the convolutions, and the pool adds no QUANTIZE."""
    import keras
    npz = make_features(tmp_path / "f.npz", per_class=8)
    model = "{architecture: ds_cnn, filters: 8, blocks: 2}"
    keras.utils.set_random_seed(0)
    build_model(load_spec(write_spec(tmp_path / "p", model=model)).spec).save(tmp_path / "m.keras")
    for mode, extra in (("ptq", ""), ("qat", "quantization: {mode: qat, qat: {epochs: 1}}\n")):
        to_tflite(load_spec(write_spec(tmp_path / mode, model=model, extra=extra)),
                  tmp_path / "m.keras", npz, tmp_path / f"{mode}.tflite")
    ops = _ops((tmp_path / "qat.tflite").read_bytes())
    assert ops == _ops((tmp_path / "ptq.tflite").read_bytes())
    assert "QUANTIZE" not in ops and "MUL" not in ops and "ADD" not in ops
    assert "qat: 1 epochs of fine-tuning with fake quantization; kept epoch 1" in capfd.readouterr().out
