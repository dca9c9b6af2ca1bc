"""Quantization-aware training: a trained Keras 3 model in, an int8 TFLite flatbuffer out.

`quantize_aware(project, model, data, calibration)` fine-tunes the model stage's float
model with fake quantization for `quantization.qat.epochs` at `qat.learning_rate` and
returns it converted to int8 exactly as post-training quantization is (convert.convert:
int8 input and output, builtins only, a batch of 1).

tensorflow-model-optimization (tfmot) quantizes only tf_keras (Keras 2) models and
refuses Keras 3 ones, and a process picks its Keras when TensorFlow is first imported
(TF_USE_LEGACY_KERAS). So the fine-tuning runs in a process of its own, and the Keras 3
path (training, PTQ, evaluation) never sees tf_keras:

- here, in the build's process: the model is flattened into its layers (a transfer
  model's body included) as class name, config and weights; the layer classes are those
  of the model zoo (`SUPPORTED`), anything else is refused at `quantization.mode`. The
  layers, the splits (int8), the calibration set, probe outputs of the Keras 3 model and
  the settings go to a temporary job folder;
- `python -m generator.convert qat JOB` (TF_USE_LEGACY_KERAS=1, set before TensorFlow
  loads) runs `run_job`: the same layers are rebuilt in tf_keras and must reproduce the
  probe outputs; tfmot's default 8-bit scheme is applied (AVERAGE_POOL_2D keeps its
  input's quantization, as int8 TFLite requires, instead of a requantizing QUANTIZE op);
  the input quantizer is pinned to [-1, 127/128], i.e. scale 1/128 and zero point 0,
  the features' contract (its all-values range never moves, as int8 / 128 stays inside
  it); the model fine-tunes with training.seed, TensorFlow op determinism, the training
  batches of train.epoch_plan (same shuffles and SpecAugment masks) and the class
  weights; the weights of the epoch with the best validation loss are kept; then it is
  converted and written to the job folder.

The converter lives in convert.py, which imports this module: `run_job` gets it as an
argument, so the package keeps no import cycle.
"""

from __future__ import annotations

import inspect
import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from .errors import SpecError
from .features import INPUT_SCALE
from .spec import Project, Qat, SpecAugment, Training
from .train import batch_sequence, class_weights, sample_weights

# Layer classes the fine-tuning rebuilds in tf_keras: every layer the model zoo makes.
SUPPORTED = ("Activation", "AveragePooling2D", "BatchNormalization", "Conv2D", "Dense",
             "DepthwiseConv2D", "Dropout", "Flatten", "MaxPooling2D", "ReLU")
INPUT_RANGE = (-128 * INPUT_SCALE, 127 * INPUT_SCALE)  # int8 features / 128
PROBE_CLIPS = 32
PROBE_TOLERANCE = 1e-4  # float32 round-off between the two Keras implementations
CHILD = ["-m", "generator.convert", "qat"]  # the converter's module (see the docstring)


# ----------------------------------------------------------- the build's process (Keras 3)

def model_layers(model) -> list:
    """The layers of a Keras 3 model in order, nested models (a transfer body) flattened."""
    import keras

    out = []
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            out += model_layers(layer)
        elif not isinstance(layer, keras.layers.InputLayer):
            out.append(layer)
    return out


def _refuse_unsupported(project: Project, layers: list) -> None:
    for layer in layers:
        kind = type(layer).__name__
        if kind not in SUPPORTED or not type(layer).__module__.startswith("keras."):
            raise SpecError(project.positions.problem(
                ("quantization", "mode"),
                f"mode: qat cannot fine-tune layer '{layer.name}' ({kind}): it rebuilds the "
                f"model zoo's layers only ({', '.join(SUPPORTED)}); use mode: ptq"))


def _int8(x: np.ndarray) -> np.ndarray:
    """Features as load_features returns them (float [N, frames, bins, 1]) back to int8."""
    return np.rint(x[..., 0] / INPUT_SCALE).astype(np.int8)


def write_job(project: Project, model, data: dict, calibration: np.ndarray, job: Path) -> None:
    """Everything the fine-tuning process reads, into the folder `job`."""
    import keras

    layers = model_layers(model)
    _refuse_unsupported(project, layers)
    spec = project.spec
    arrays = {"calibration": calibration.astype(np.float32)}
    probe = calibration[:PROBE_CLIPS].astype(np.float32)
    arrays["probe_x"] = probe
    arrays["probe_y"] = keras.ops.convert_to_numpy(model(probe, training=False)).astype(np.float32)
    for split in ("train", "validation"):
        x, y = data[split]
        arrays[f"x_{split}"], arrays[f"y_{split}"] = _int8(x), y.astype(np.int64)
    meta = []
    for i, layer in enumerate(layers):
        weights = layer.get_weights()
        for j, w in enumerate(weights):
            arrays[f"w{i}_{j}"] = w
        meta.append({"class_name": type(layer).__name__, "config": layer.get_config(),
                     "weights": len(weights)})
    np.savez(job / "arrays.npz", **arrays)
    (job / "job.json").write_text(json.dumps({
        "name": spec.name, "input_shape": list(model.input_shape[1:]),
        "classes": len(spec.classes), "layers": meta,
        "training": spec.training.model_dump(mode="json"),
        "spec_augment": spec.augmentation.spec_augment.model_dump(mode="json"),
        "qat": (spec.quantization.qat or Qat()).model_dump(mode="json"),
    }, indent=1, default=_json_default))


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot write {type(value).__name__} into the QAT job")


def quantize_aware(project: Project, model, data: dict, calibration: np.ndarray) -> bytes:
    """The int8 flatbuffer of `model` fine-tuned with fake quantization (see the docstring)."""
    with tempfile.TemporaryDirectory(prefix="micforge-qat-") as tmp:
        job = Path(tmp)
        write_job(project, model, data, calibration, job)
        env = dict(os.environ, TF_USE_LEGACY_KERAS="1")
        # The child imports this very package, whichever checkout or install runs the build.
        package_root = str(Path(__file__).resolve().parent.parent)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
        sys.stdout.flush()
        sys.stderr.flush()
        code = subprocess.run([sys.executable, *CHILD, str(job)], env=env,
                              cwd=package_root).returncode
        if code in (130, -signal.SIGINT):
            raise KeyboardInterrupt
        if code != 0:
            raise RuntimeError(f"quantization-aware fine-tuning of '{project.name}' failed "
                               f"(exit status {code}); its messages are above")
        return (job / "model.tflite").read_bytes()


# ------------------------------------------------ the fine-tuning process (tf_keras + tfmot)

def _tf_keras_config(cls, config: dict) -> dict:
    """A Keras 3 layer config as the tf_keras class's arguments: the keys it takes, without
    initializers, regularizers, constraints and dtype policies (weights are copied; the
    probe check catches anything that changes what the layer computes)."""
    takes = inspect.signature(cls.__init__).parameters
    return {k: v for k, v in config.items()
            if (k in takes or k in ("name", "trainable"))
            and not k.endswith(("initializer", "regularizer", "constraint")) and k != "dtype"}


def _pass_through_config(tfmot):
    """A QuantizeConfig that quantizes nothing: AVERAGE_POOL_2D's int8 output keeps its
    input's scale in TFLite, so a range of its own would only add a QUANTIZE op."""
    base = tfmot.quantization.keras.QuantizeConfig

    class PassThroughQuantizeConfig(base):
        def get_weights_and_quantizers(self, layer):
            return []

        def get_activations_and_quantizers(self, layer):
            return []

        def set_quantize_weights(self, layer, quantize_weights):
            pass

        def set_quantize_activations(self, layer, quantize_activations):
            pass

        def get_output_quantizers(self, layer):
            return []

        def get_config(self):
            return {}

    return PassThroughQuantizeConfig


def rebuild(tf_keras, tfmot, job: dict, arrays, pass_through) -> object:
    """The job's layers as a tf_keras model annotated for quantization, with their weights."""
    annotate = tfmot.quantization.keras.quantize_annotate_layer
    inputs = tf_keras.Input(shape=tuple(job["input_shape"]), name="features")
    x, built = inputs, []
    for i, meta in enumerate(job["layers"]):
        cls = getattr(tf_keras.layers, meta["class_name"])
        layer = cls(**_tf_keras_config(cls, meta["config"]))
        config = pass_through() if meta["class_name"] == "AveragePooling2D" else None
        x = annotate(layer, quantize_config=config)(x)
        built.append((layer, [arrays[f"w{i}_{j}"] for j in range(meta["weights"])]))
    model = tf_keras.Model(inputs, x, name=job["name"])
    for layer, weights in built:
        layer.set_weights(weights)
    return model


def _input_quantizer(model):
    """The min/max variables of the quantizer tfmot puts on the model input."""
    found = [layer for layer in model.layers if type(layer).__name__ == "QuantizeLayer"]
    if len(found) != 1:
        raise RuntimeError(f"expected one input QuantizeLayer, found {len(found)}")
    v = found[0].quantizer_vars
    return v["min_var"], v["max_var"]


def _finetune(tf_keras, model, job: dict, arrays) -> dict:
    training = Training.model_validate(job["training"])
    sa = SpecAugment.model_validate(job["spec_augment"])
    qat = Qat.model_validate(job["qat"])
    features = {s: (arrays[f"x_{s}"].astype(np.float32) * INPUT_SCALE)[..., None]
                for s in ("train", "validation")}
    x, y = features["train"], arrays["y_train"]
    xv, yv = features["validation"], arrays["y_validation"]
    weights = class_weights(y, job["classes"]) if training.class_weights == "balanced" else None
    w, size = sample_weights(y, weights), training.batch_size

    has_val = len(yv) > 0
    monitor = "val_loss" if has_val else "loss"
    model.compile(optimizer=tf_keras.optimizers.Adam(qat.learning_rate),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    # patience = epochs: never stops early, but restores the best epoch's weights at the end
    best = tf_keras.callbacks.EarlyStopping(monitor=monitor, patience=qat.epochs,
                                            restore_best_weights=True)
    batches = batch_sequence(tf_keras.utils.Sequence, x, y, w, sa, training.seed, size)
    hist = model.fit(batches, validation_data=(xv, yv) if has_val else None,
                     epochs=qat.epochs, shuffle=False, callbacks=[best], verbose=2)
    metrics = {k: [float(v) for v in vals] for k, vals in hist.history.items()}
    return {"epochs_run": len(hist.epoch), "best_epoch": int(np.argmin(metrics[monitor])) + 1,
            "monitor": monitor, "metrics": metrics}


def run_job(job_dir: Path, convert) -> None:
    """The fine-tuning process: read the job, fine-tune, convert with `convert`, write
    model.tflite and history.json into `job_dir`."""
    if os.environ.get("TF_USE_LEGACY_KERAS") != "1":
        raise RuntimeError("the QAT process needs TF_USE_LEGACY_KERAS=1 before TensorFlow "
                           "loads; it is started by generator.qat.quantize_aware")
    import warnings

    import tensorflow as tf
    import tensorflow_model_optimization as tfmot
    import tf_keras

    warnings.filterwarnings("ignore", message="Statistics for quantized inputs")
    job = json.loads((job_dir / "job.json").read_text())
    with np.load(job_dir / "arrays.npz") as npz:
        arrays = dict(npz)
    tf_keras.utils.set_random_seed(Training.model_validate(job["training"]).seed)
    tf.config.experimental.enable_op_determinism()

    pass_through = _pass_through_config(tfmot)
    model = rebuild(tf_keras, tfmot, job, arrays, pass_through)
    got = model(arrays["probe_x"], training=False).numpy()
    diff = float(np.max(np.abs(got - arrays["probe_y"])))
    if not diff <= PROBE_TOLERANCE:
        raise RuntimeError(f"the tf_keras rebuild of '{job['name']}' computes other outputs "
                           f"than the trained Keras 3 model (max difference {diff:.3g}): a "
                           f"micforge bug in qat.rebuild")
    with tfmot.quantization.keras.quantize_scope(
            {"PassThroughQuantizeConfig": pass_through}):
        qmodel = tfmot.quantization.keras.quantize_apply(model)
    low, high = _input_quantizer(qmodel)
    low.assign(INPUT_RANGE[0])
    high.assign(INPUT_RANGE[1])
    history = _finetune(tf_keras, qmodel, job, arrays)
    if (float(low.numpy()), float(high.numpy())) != INPUT_RANGE:
        raise RuntimeError(f"the input quantizer moved to [{float(low.numpy())}, "
                           f"{float(high.numpy())}]; the features' contract is {INPUT_RANGE}")
    tflite = convert(qmodel, arrays["calibration"], keras_api=tf_keras)
    (job_dir / "history.json").write_text(json.dumps(history, indent=1))
    (job_dir / "model.tflite").write_bytes(tflite)
    m = history["metrics"]
    val = f", val_accuracy {m['val_accuracy'][history['best_epoch'] - 1]:.4f}" \
        if "val_accuracy" in m else ""
    print(f"qat: {history['epochs_run']} epochs of fine-tuning with fake quantization; kept "
          f"epoch {history['best_epoch']} ({history['monitor']} "
          f"{m[history['monitor']][history['best_epoch'] - 1]:.4f}{val})", flush=True)
