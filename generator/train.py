"""Training: the features of a project in, a trained Keras model and its history out.

`train(project, features_npz, out_model, out_history)` reads the features
stage's npz (x_* int8 [N, frames, bins], y_* int64 indices into spec.classes),
feeds the model float x / 128 (features.INPUT_SCALE, so the int8 TFLite input
takes the int8 features unchanged), and trains with Adam, early stopping on the
validation loss (best weights restored), a halving learning rate on plateaus
and, by default, 'balanced' class weights. Seeds are set and TensorFlow op
determinism is on, so the same inputs give the same weights.

With `transfer:` in the spec the guide's recipe runs instead: the base model's
body (everything before its last Dense layer) gets a new N-way softmax head;
the head trains with the body frozen (head_epochs), then every layer fine-tunes
at finetune_learning_rate (finetune_epochs). The base is a spec (.yaml, whose
model is taken from the same build folder as `out_model`) or a .keras file.

Writes `out_model` (.keras, atomically) and `out_history` (JSON: per phase, the
per-epoch metrics, the epochs run and the best epoch).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import SpecError
from .features import INPUT_SCALE
from .fileio import write_json
from .paths import Artifacts
from .spec import Project, SpecAugment, load_spec

def load_features(features_npz: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{split: (float x [N, frames, bins, 1], int64 y)} from the features stage's npz."""
    with np.load(features_npz) as data:
        out = {}
        for split in ("train", "validation", "test"):
            q = data[f"x_{split}"]
            if q.dtype != np.int8:
                raise ValueError(f"{features_npz}: x_{split} is {q.dtype}, expected int8 features")
            out[split] = ((q.astype(np.float32) * INPUT_SCALE)[..., None],
                          data[f"y_{split}"].astype(np.int64))
    return out


def class_weights(y: np.ndarray, n_classes: int) -> dict[int, float]:
    """'balanced' weights n / (k * count); a class absent from y gets 1."""
    counts = np.bincount(y, minlength=n_classes)
    return {i: (len(y) / (n_classes * c) if c else 1.0) for i, c in enumerate(counts)}


def _base_model_path(project: Project, out_model: Path) -> Path:
    base = project.spec.transfer.base
    path = project.resolve(base)
    if base.endswith((".yaml", ".yml")):
        if not path.is_file():
            raise SpecError(project.positions.problem(
                ("transfer", "base"), f"base spec {base} does not exist"))
        base_name = load_spec(path).name
        # The base is built into the same build folder as this project (build/<name>/model/...).
        path = Artifacts.for_project(base_name, out_model.parents[2]).keras_model
        hint = f"build project '{base_name}' first (micforge build {base})"
    else:
        hint = "give a trained .keras model or a spec (.yaml)"
    if not path.is_file():
        raise SpecError(project.positions.problem(
            ("transfer", "base"), f"base model {path} does not exist; {hint}"))
    return path


def transfer_model(project: Project, out_model: Path):
    """(body, model): the base model's body with a new head for this spec's classes."""
    import keras
    from .zoo import input_shape

    base = keras.saving.load_model(_base_model_path(project, out_model), compile=False)
    want = input_shape(project.spec)
    have = tuple(base.input_shape[1:])
    if have != want:
        raise SpecError(project.positions.problem(
            ("transfer", "base"), f"the base model takes input {have} but this spec's features "
                                  f"are {want} (frames, bins, 1); use the base's audio and "
                                  f"features settings"))
    dense = [i for i, layer in enumerate(base.layers) if isinstance(layer, keras.layers.Dense)]
    if not dense:
        raise SpecError(project.positions.problem(
            ("transfer", "base"), "the base model has no Dense layer to replace"))
    body = keras.Model(base.inputs, base.layers[dense[-1]].input, name="body")
    inputs = keras.Input(shape=want, name="features")
    outputs = keras.layers.Dense(len(project.spec.classes), activation="softmax",
                                 name="head")(body(inputs))
    return body, keras.Model(inputs, outputs, name=project.spec.name)


def sample_weights(y: np.ndarray, weights: dict[int, float] | None) -> np.ndarray:
    """Per-sample weights from class weights (all 1 without them)."""
    return (np.array([weights[int(v)] for v in y], dtype=np.float32) if weights
            else np.ones(len(y), dtype=np.float32))


def epoch_plan(x: np.ndarray, sa: SpecAugment, seed: int, epoch: int
               ) -> tuple[np.ndarray, np.ndarray]:
    """(order, masked x) of one epoch: a shuffle of the rows and x with SpecAugment masks
    (augment.spec_augment, floor -1.0 = int8 -128), both from a generator seeded with
    (seed, epoch), so a rebuild sees the same batches. Keras-free: the Keras 3 training loop
    here and the tf_keras quantization-aware fine-tuning (qat.py) both draw from it."""
    from .augment import spec_augment

    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(len(x))
    return order, (spec_augment(x, sa, rng, floor=-1.0) if sa.probability > 0 else x)


def batch_sequence(base, x: np.ndarray, y: np.ndarray, w: np.ndarray, sa: SpecAugment, seed: int,
                   size: int, **base_kwargs):
    """Training batches (x, y, per-sample weight) as a `base` subclass, one `epoch_plan` per
    epoch: keras.utils.PyDataset for training here, tf_keras.utils.Sequence for the
    quantization-aware fine-tuning (qat.py), so both see the same batches."""

    class Batches(base):
        def __init__(self):
            super().__init__(**base_kwargs)
            self.epoch = 0
            self._plan()

        def _plan(self):
            self.order, self.masked = epoch_plan(x, sa, seed, self.epoch)

        def __len__(self):
            return int(np.ceil(len(y) / size))

        def __getitem__(self, i):
            rows = self.order[i * size:(i + 1) * size]
            return self.masked[rows], y[rows], w[rows]

        def on_epoch_end(self):
            self.epoch += 1
            self._plan()

    return Batches()


def _batches(x: np.ndarray, y: np.ndarray, weights: dict[int, float] | None, project: Project):
    """Training batches as a keras PyDataset (seeded with training.seed). Class weights become
    per-sample weights."""
    import keras

    spec = project.spec
    return batch_sequence(keras.utils.PyDataset, x, y, sample_weights(y, weights),
                          spec.augmentation.spec_augment, spec.training.seed,
                          spec.training.batch_size, workers=1, use_multiprocessing=False)


def _fit(model, data, learning_rate: float, epochs: int, project: Project) -> dict:
    import keras

    from .console import progress

    class EpochBar(keras.callbacks.Callback):
        """The epochs as a progress bar on the terminal (the Keras lines go to the log)."""

        def on_train_begin(self, logs=None):
            self.bar = progress(epochs, f"[{project.spec.name}] model", "epoch")

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            self.bar.set_postfix({k: f"{logs[k]:.3f}" for k in ("loss", "val_accuracy")
                                  if k in logs})
            self.bar.update(1)

        def on_train_end(self, logs=None):
            self.bar.close()

    t = project.spec.training
    # A named optimizer: an unnamed one is adam, adam_1, ... by how many a process made before,
    # and the name is saved in model.keras (which must be the same bytes for the same inputs).
    model.compile(optimizer=keras.optimizers.Adam(learning_rate, name="adam"),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    x, y = data["train"]
    xv, yv = data["validation"]
    has_val = len(yv) > 0
    monitor = "val_loss" if has_val else "loss"
    callbacks = [
        keras.callbacks.EarlyStopping(monitor=monitor, patience=t.patience,
                                      restore_best_weights=True),
        keras.callbacks.ReduceLROnPlateau(monitor=monitor, factor=0.5,
                                          patience=max(1, t.patience // 2), min_lr=1e-6),
        EpochBar(),
    ]
    weights = class_weights(y, len(project.spec.classes)) if t.class_weights == "balanced" else None
    hist = model.fit(_batches(x, y, weights, project),
                     validation_data=(xv, yv) if has_val else None, epochs=epochs,
                     callbacks=callbacks, verbose=2)
    metrics = {k: [float(v) for v in vals] for k, vals in hist.history.items()}
    best = int(np.argmin(metrics[monitor])) if metrics.get(monitor) else 0
    return {"epochs_run": len(hist.epoch), "best_epoch": best + 1, "monitor": monitor,
            "metrics": metrics}


def train_model(project: Project, data: dict, out_model: Path):
    """The trained keras.Model and the history phases; no files written."""
    import keras
    import tensorflow as tf

    spec = project.spec
    keras.utils.set_random_seed(spec.training.seed)
    tf.config.experimental.enable_op_determinism()
    if spec.transfer is None:
        from .zoo import build_model
        model = build_model(spec)
        phases = {"train": _fit(model, data, spec.training.learning_rate, spec.training.epochs,
                                project)}
        return model, phases
    tr = spec.transfer
    body, model = transfer_model(project, out_model)
    phases = {}
    body.trainable = False
    if tr.head_epochs:
        phases["head"] = _fit(model, data, spec.training.learning_rate, tr.head_epochs, project)
    body.trainable = True
    if tr.finetune_epochs:
        phases["finetune"] = _fit(model, data, tr.finetune_learning_rate, tr.finetune_epochs,
                                  project)
    return model, phases


def train(project: Project, features_npz: Path, out_model: Path, out_history: Path) -> None:
    """Train the spec's model on `features_npz`; write the .keras model and history JSON."""
    from .kerassave import save_stable
    from .zoo import input_shape

    data = load_features(Path(features_npz))
    want = input_shape(project.spec)
    have = data["train"][0].shape[1:]
    if tuple(have) != want:
        raise ValueError(f"{features_npz} holds features of shape {have[:2]}, the spec makes "
                         f"{want[:2]}; rebuild the features stage")
    model, phases = train_model(project, data, Path(out_model))
    save_stable(model, Path(out_model))  # byte-stable: same inputs, same model.keras
    write_json(out_history, {"classes": list(project.spec.classes),
                             "params": int(model.count_params()), "phases": phases,
                             "samples": {s: int(len(y)) for s, (_, y) in data.items()}})
