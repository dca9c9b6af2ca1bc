"""Evaluation on the test split, three ways: float Keras, int8 TFLite, real TFLM.

`evaluate(project, keras_path, tflite_path, features_npz, out_json)` runs the
test features through
  float  the trained Keras model (inputs int8 / 128),
  int8   the .tflite under LiteRT's interpreter (ai_edge_litert; TensorFlow's
         tf.lite.Interpreter is deprecated),
  tflm   the .tflite under tflite_micro's Python runtime (the TFLM kernels),
and reports, for each, accuracy, per-class precision and recall and the
confusion matrix (rows: true class, columns: predicted, in spec.classes order).
The int8 runtimes get the int8 features unchanged (the model's input contract:
scale 1/128, zero point 0). The raw int8 outputs of int8 and tflm must be
identical; every clip where they differ is counted and listed
(`int8_tflm_mismatches`, and how many change the predicted class) and
`format_evaluation` flags it loudly. Known cause (measured on the keywords
model): TFLite's FULLY_CONNECTED (TF 2.21, and LiteRT 2.3, whose outputs are
the same on that test split) requantizes with single rounding, TFLM (the
reference the device runs) with gemmlowp's double rounding, so a logit can
differ by an LSB or two; TFLM is the device's reference.
Writes the dict as JSON to `out_json` and returns it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .convert import check_input_contract
from .fileio import write_json
from .spec import Project

TFLM_ARENA = 4 * 1024 * 1024  # evaluation only; the firmware arena comes from analyze


def metrics(y: np.ndarray, pred: np.ndarray, classes: list[str]) -> dict:
    """Accuracy, per-class precision/recall and the confusion matrix of `pred` against `y`."""
    k = len(classes)
    cm = np.zeros((k, k), dtype=np.int64)
    np.add.at(cm, (y, pred), 1)
    per_class = {}
    for i, name in enumerate(classes):
        tp, predicted, actual = cm[i, i], cm[:, i].sum(), cm[i, :].sum()
        per_class[name] = {"precision": float(tp / predicted) if predicted else None,
                           "recall": float(tp / actual) if actual else None,
                           "support": int(actual)}
    return {"accuracy": float(np.trace(cm) / max(1, len(y))), "per_class": per_class,
            "confusion": cm.tolist()}


def detected(scores: np.ndarray, classes: list[str], detect: list[str],
             threshold: float) -> np.ndarray:
    """[N, len(detect)] booleans: which detect classes' scores (probabilities) reach the
    threshold in each window: the device's rule before smoothing and hysteresis."""
    return scores[:, [classes.index(c) for c in detect]] >= threshold


def detection_hits(scores: np.ndarray, y: np.ndarray, classes: list[str], detect: list[str],
                   threshold: float) -> np.ndarray:
    """Per window, whether the detector is right: a window of a detect class when its own
    class fires, a window of any other class when no detect class fires."""
    fired = detected(scores, classes, detect, threshold)
    own = np.array([detect.index(classes[t]) if classes[t] in detect else -1 for t in y])
    hit_own = fired[np.arange(len(y)), np.maximum(own, 0)]
    return np.where(own >= 0, hit_own, ~fired.any(axis=1))


def false_positive_rates(scores: np.ndarray, y: np.ndarray, classes: list[str],
                         detect: list[str], threshold: float) -> dict[str, dict]:
    """Per class that does not detect: its windows, and the share where a detect class fires
    (score >= threshold)."""
    fires = detected(scores, classes, detect, threshold).any(axis=1)
    out = {}
    for i, name in enumerate(classes):
        if name in detect:
            continue
        mine = y == i
        n = int(mine.sum())
        out[name] = {"windows": n, "false_positives": int((fires & mine).sum()),
                     "rate": float((fires & mine).sum() / n) if n else None}
    return out


def detection_recalls(scores: np.ndarray, y: np.ndarray, classes: list[str], detect: list[str],
                      threshold: float) -> dict[str, dict]:
    """Per detect class: its windows, and the share where its own score reaches the threshold."""
    fired = detected(scores, classes, detect, threshold)
    out = {}
    for j, name in enumerate(detect):
        mine = y == classes.index(name)
        n = int(mine.sum())
        out[name] = {"windows": n, "detected": int((fired[:, j] & mine).sum()),
                     "recall": float((fired[:, j] & mine).sum() / n) if n else None}
    return out


def run_keras(keras_path: Path, q: np.ndarray) -> np.ndarray:
    """Float scores [N, classes] of the Keras model on int8 features q [N, frames, bins]."""
    import keras
    from .features import INPUT_SCALE

    model = keras.saving.load_model(keras_path, compile=False)
    return model.predict((q.astype(np.float32) * INPUT_SCALE)[..., None], batch_size=256, verbose=0)


def run_tflite(tflite: bytes, q: np.ndarray) -> np.ndarray:
    """Raw int8 outputs [N, classes] of LiteRT's interpreter (ai_edge_litert)."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    # LiteRT's own builtin kernels, without the XNNPACK delegate it adds by default.
    interp = Interpreter(model_content=tflite,
                         experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    interp.allocate_tensors()
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    rows = []
    for clip in q:
        interp.set_tensor(inp["index"], clip.reshape(inp["shape"]))
        interp.invoke()
        rows.append(interp.get_tensor(out["index"]).reshape(-1).copy())
    return np.array(rows, dtype=np.int8).reshape(len(q), -1)


def tflm_probabilities(tflite: bytes, raw: np.ndarray) -> np.ndarray:
    """Raw int8 outputs as the probabilities the device compares with its threshold:
    (q - zero_point) * scale of the output tensor."""
    from tflite_micro.python.tflite_micro import runtime

    q = runtime.Interpreter.from_bytes(tflite, arena_size=TFLM_ARENA).get_output_details(0)
    params = q["quantization_parameters"]
    return (raw.astype(np.float64) - float(params["zero_points"][0])) * float(params["scales"][0])


def run_tflm(tflite: bytes, q: np.ndarray) -> np.ndarray:
    """Raw int8 outputs [N, classes] of the TFLM runtime (tflite_micro's Python interpreter)."""
    from tflite_micro.python.tflite_micro import runtime

    interp = runtime.Interpreter.from_bytes(tflite, arena_size=TFLM_ARENA)
    shape = interp.get_input_details(0)["shape"]
    rows = []
    for clip in q:
        interp.set_input(clip.reshape(shape), 0)
        interp.invoke()
        rows.append(np.array(interp.get_output(0)).reshape(-1).copy())
    return np.array(rows, dtype=np.int8).reshape(len(q), -1)


def evaluate(project: Project, keras_path: Path, tflite_path: Path, features_npz: Path,
             out_json: Path) -> dict:
    """Evaluate float / int8 / TFLM on the test split; write and return the results."""
    classes = list(project.spec.classes)
    with np.load(features_npz) as data:
        q, y = data["x_test"], data["y_test"].astype(np.int64)
    if len(y) == 0:
        raise ValueError(f"{features_npz} has no test clips to evaluate on")
    tflite = Path(tflite_path).read_bytes()
    check_input_contract(tflite)
    scores = run_keras(Path(keras_path), q)
    int8 = run_tflite(tflite, q)
    tflm = run_tflm(tflite, q)
    differ = np.flatnonzero((int8 != tflm).any(axis=1))
    preds = {"float": scores.argmax(1), "int8": int8.argmax(1), "tflm": tflm.argmax(1)}
    result = {
        "classes": classes, "test_clips": int(len(y)),
        "runtimes": {name: metrics(y, p, classes) for name, p in preds.items()},
        "int8_drop_points": 100.0 * (float(np.mean(preds["float"] == y))
                                     - float(np.mean(preds["int8"] == y))),
        "float_int8_agreement": float(np.mean(preds["float"] == preds["int8"])),
        "int8_tflm_mismatches": int(len(differ)),
        "int8_tflm_mismatch_clips": differ[:50].tolist(),
        "int8_tflm_max_abs_diff": int(np.abs(int8.astype(int) - tflm.astype(int)).max()),
        "int8_tflm_prediction_differences": int(np.sum(preds["int8"] != preds["tflm"])),
    }
    write_json(out_json, result)
    return result


def format_evaluation(d: dict) -> str:
    """A human summary: accuracy per runtime, per-class figures, confusion, the int8/TFLM check."""
    classes = d["classes"]
    width = max(8, max(len(c) for c in classes))
    r = d["runtimes"]
    lines = [f"test clips: {d['test_clips']}; accuracy float {r['float']['accuracy']:.4f}, "
             f"int8 {r['int8']['accuracy']:.4f}, TFLM {r['tflm']['accuracy']:.4f} "
             f"(int8 drop {d['int8_drop_points']:+.2f} points)"]
    for name in ("float", "int8", "tflm"):
        lines.append(f"  {name}: " + ", ".join(
            f"{c} P {_pct(v['precision'])} R {_pct(v['recall'])}" for c, v in r[name]["per_class"].items()))
    lines.append("  confusion (int8; rows true, columns predicted):")
    lines.append("  " + " " * width + "".join(f"{c[:8]:>9}" for c in classes))
    for c, row in zip(classes, r["int8"]["confusion"]):
        lines.append(f"  {c:<{width}}" + "".join(f"{v:>9}" for v in row))
    lines.append("  " + tflm_agreement(d))
    return "\n".join(lines)


# TFLM's reference kernels and LiteRT's optimised ones round some int8 results differently by a
# unit or two (requantisation order); outputs that differ by at most this and change no
# prediction are expected. More than that, or a changed prediction, is a real divergence.
EXPECTED_TFLM_LSB = 2


def tflm_agreement(d: dict) -> str:
    """How the device runtime (TFLM) agrees with int8 TFLite: calm when the difference is the
    expected rounding, a WARNING line (shown on the console) when it is not."""
    n, worst = d["int8_tflm_mismatches"], d["int8_tflm_max_abs_diff"]
    changed = d["int8_tflm_prediction_differences"]
    if not n:
        return "int8 TFLite and TFLM outputs identical on every test clip"
    what = (f"on {n} of {d['test_clips']} clips, by at most {worst} LSB, {changed} predicted "
            f"class{'es' if changed != 1 else ''} changed (clips {d['int8_tflm_mismatch_clips'][:10]})")
    if worst <= EXPECTED_TFLM_LSB and not changed:
        return (f"int8 TFLite and TFLM differ {what}: the expected kernel rounding; the device "
                f"figures are TFLM's")
    return f"WARNING: TFLM and int8 TFLite outputs differ {what}: more than kernel rounding"


def _pct(v) -> str:
    return "  n/a" if v is None else f"{100 * v:5.1f}%"
