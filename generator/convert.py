"""int8 conversion: a trained Keras model in, a fully int8 TFLite flatbuffer out.

`to_tflite(project, keras_path, features_npz, out_tflite)` quantizes the model stage's
model per `quantization.mode` and writes the flatbuffer; `int8_tflite(project, model,
data)` does the same for a model in memory (a cross-validation fold's).

- `ptq`: post-training quantization of the trained model.
- `qat`: quantization-aware training (qat.py): the trained model is fine-tuned with fake
  quantization in a separate process (tf_keras with tensorflow-model-optimization, which
  rejects Keras 3 models), which converts it with this module's `convert` and returns the
  bytes. That process runs `python -m generator.convert qat JOB_DIR` (see `_main`): the
  converter lives here, and qat.py must not import this module back (no import cycles).

Both modes convert with `convert`: TFLITE_BUILTINS_INT8 only, int8 input and output
tensors, a batch of 1. The representative set is `quantization.representative_samples`
training clips (a seeded choice), plus one calibration sample holding both ends of the
int8 feature range (-1 and 127/128 after the / 128 scaling). That pins the input tensor
to scale 1/128 and zero point 0 (under qat the input quantizer is pinned to the same
range), so the device feeds its int8 features unchanged; every converted model is checked
for exactly those parameters. The parameters are read with LiteRT's interpreter
(ai_edge_litert), not TensorFlow's deprecated tf.lite.Interpreter.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from .features import INPUT_SCALE, INPUT_ZERO_POINT
from .fileio import write_if_changed
from .spec import Project
from .train import load_features


def representative_set(project: Project, x_train: np.ndarray) -> np.ndarray:
    """Calibration inputs: a seeded subset of the training clips plus one range-pinning sample."""
    n = min(project.spec.quantization.representative_samples, len(x_train))
    rng = np.random.default_rng(project.spec.training.seed)
    chosen = x_train[np.sort(rng.choice(len(x_train), size=n, replace=False))]
    pin = chosen[:1].copy() if n else np.zeros((1,) + x_train.shape[1:], np.float32)
    flat = pin.reshape(-1)
    flat[0] = -128 * INPUT_SCALE  # the int8 extremes, so the input range is exactly [-1, 127/128]
    flat[1] = 127 * INPUT_SCALE
    return np.concatenate([chosen, pin]).astype(np.float32)


def convert(model, calibration: np.ndarray, keras_api=None) -> bytes:
    """Full-integer TFLite flatbuffer of `model` calibrated on `calibration`.

    `keras_api`: the Keras that built `model`: Keras 3 (`keras`, the default) or, for a
    quantization-aware model, `tf_keras`."""
    import tensorflow as tf

    if keras_api is None:
        import keras as keras_api

    def samples():
        for row in calibration:
            yield [row[None, ...]]

    # A fixed batch of 1: with Keras 3's dynamic batch, Flatten converts to
    # SHAPE/STRIDED_SLICE/PACK/RESHAPE; a static shape folds it to one RESHAPE.
    inputs = keras_api.Input(shape=model.input_shape[1:], batch_size=1, name="features")
    conv = tf.lite.TFLiteConverter.from_keras_model(keras_api.Model(inputs, model(inputs)))
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = samples
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    return bytes(conv.convert())


def io_quantization(tflite: bytes) -> dict:
    """{'input'|'output': {'dtype', 'shape', 'scale', 'zero_point'}} from LiteRT's interpreter."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_content=tflite)
    out = {}
    for key, details in (("input", interp.get_input_details()), ("output", interp.get_output_details())):
        d = details[0]
        scale, zero = d["quantization"]
        out[key] = {"dtype": np.dtype(d["dtype"]).name, "shape": [int(v) for v in d["shape"]],
                    "scale": float(scale), "zero_point": int(zero)}
    return out


def check_input_contract(tflite: bytes) -> None:
    """Raise unless input and output are int8 and the input is scale 1/128, zero point 0."""
    q = io_quantization(tflite)
    i, o = q["input"], q["output"]
    problems = []
    if i["dtype"] != "int8" or o["dtype"] != "int8":
        problems.append(f"input/output types are {i['dtype']}/{o['dtype']}, not int8/int8")
    if i["scale"] != INPUT_SCALE or i["zero_point"] != INPUT_ZERO_POINT:
        problems.append(f"input quantization is scale {i['scale']!r}, zero point {i['zero_point']} "
                        f"instead of {INPUT_SCALE!r}, {INPUT_ZERO_POINT}: the device's int8 "
                        f"features would be misread")
    if problems:
        raise RuntimeError("converted model breaks the feature contract: " + "; ".join(problems))


def int8_tflite(project: Project, model, data: dict) -> bytes:
    """The int8 flatbuffer of the trained Keras 3 `model` per `quantization.mode`; `data` as
    train.load_features returns it (qat fine-tunes on its training and validation splits)."""
    x_train = data["train"][0]
    if len(x_train) == 0:
        raise ValueError("no training clips to calibrate with")
    calibration = representative_set(project, x_train)
    if project.spec.quantization.mode == "qat":
        from .qat import quantize_aware
        tflite = quantize_aware(project, model, data, calibration)
    else:
        tflite = convert(model, calibration)
    check_input_contract(tflite)
    return tflite


def to_tflite(project: Project, keras_path: Path, features_npz: Path, out_tflite: Path) -> None:
    """Quantize the Keras model at `keras_path` to int8 and write `out_tflite` (if changed)."""
    import keras

    model = keras.saving.load_model(keras_path, compile=False)
    data = load_features(Path(features_npz))
    if len(data["train"][1]) == 0:
        raise ValueError(f"{features_npz} has no training clips to calibrate with")
    write_if_changed(out_tflite, int8_tflite(project, model, data))


def _main(argv: list[str]) -> int:
    """`python -m generator.convert qat JOB_DIR`: the quantization-aware half of qat.py, in the
    process qat.quantize_aware starts (TF_USE_LEGACY_KERAS=1: tf_keras, not Keras 3)."""
    if len(argv) != 2 or argv[0] != "qat":
        print("usage: python -m generator.convert qat JOB_DIR (started by generator.qat)",
              file=sys.stderr)
        return 2
    from . import qat

    try:
        qat.run_job(Path(argv[1]), convert)
    except KeyboardInterrupt:
        return 130  # the build reports the interruption; no second traceback from here
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
