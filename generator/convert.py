"""int8 conversion: a trained Keras model in, a fully int8 TFLite flatbuffer out.

`to_tflite(project, keras_path, features_npz, out_tflite)` runs post-training
quantization with TFLITE_BUILTINS_INT8 only and int8 input and output tensors.
The representative set is `quantization.representative_samples` training clips
(a seeded choice), plus one calibration sample holding both ends of the int8
feature range (-1 and 127/128 after the / 128 scaling). That pins the input
tensor to scale 1/128 and zero point 0, so the device feeds its int8 features
unchanged; the converted model is checked for exactly those parameters.

`quantization.mode: qat` is refused: tensorflow-model-optimization (0.8.1, the
current release) quantizes only tf-keras (Keras 2) models, and its
quantize_model raises "`to_quantize` can only either be a keras Sequential or
Functional model" on the Keras 3 models this project trains.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import SpecError
from .features import INPUT_SCALE, INPUT_ZERO_POINT
from .fileio import write_if_changed
from .spec import Project
from .train import load_features

QAT_REFUSAL = ("quantization-aware training is not available: tensorflow-model-optimization "
               "quantizes only tf-keras (Keras 2) models, not the Keras 3 models micforge "
               "trains; use mode: ptq (int8 post-training quantization)")


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


def convert(model, calibration: np.ndarray) -> bytes:
    """Full-integer TFLite flatbuffer of `model` calibrated on `calibration`."""
    import tensorflow as tf

    def samples():
        for row in calibration:
            yield [row[None, ...]]

    # A fixed batch of 1: with Keras 3's dynamic batch, Flatten converts to
    # SHAPE/STRIDED_SLICE/PACK/RESHAPE; a static shape folds it to one RESHAPE.
    import keras
    inputs = keras.Input(shape=model.input_shape[1:], batch_size=1, name="features")
    conv = tf.lite.TFLiteConverter.from_keras_model(keras.Model(inputs, model(inputs)))
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = samples
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    return bytes(conv.convert())


def io_quantization(tflite: bytes) -> dict:
    """{'input'|'output': {'dtype', 'shape', 'scale', 'zero_point'}} from the TFLite interpreter."""
    import tensorflow as tf

    interp = tf.lite.Interpreter(model_content=tflite)
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


def to_tflite(project: Project, keras_path: Path, features_npz: Path, out_tflite: Path) -> None:
    """Quantize the Keras model at `keras_path` to int8 and write `out_tflite` (if changed)."""
    import keras

    if project.spec.quantization.mode == "qat":
        raise SpecError(project.positions.problem(("quantization", "mode"), QAT_REFUSAL))
    model = keras.saving.load_model(keras_path, compile=False)
    x_train, _ = load_features(Path(features_npz))["train"]
    if len(x_train) == 0:
        raise ValueError(f"{features_npz} has no training clips to calibrate with")
    tflite = convert(model, representative_set(project, x_train))
    check_input_contract(tflite)
    write_if_changed(out_tflite, tflite)
