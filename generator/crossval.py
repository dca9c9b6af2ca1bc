"""Cross-validation by whole recordings: what the model does on sources it never heard.

Two stages, so a new detection threshold re-scores the folds without training them again:
- `train_folds(project, index, out_npz)` trains one model per fold and writes, for every
  held-out clip, its fold, label, source, TFLM int8 probabilities and float prediction;
- `score_folds(project, folds_npz, out_json, calibration)` writes (and returns) per fold the
  accuracy, per-class precision/recall, and the detector's figures: recall of every detect
  class and the false-positive rate of every other class, a window counting as a detection
  when a detect class's probability reaches the detection threshold (the device's rule before
  smoothing and hysteresis), the detector's recall per held-out source, and a threshold
  sweep. `format_crossval` prints it.

Folds are made of sources (`dataset.source_id`: a recording, or a speaker for Speech
Commands names), over the clips of the training and validation splits; the test split stays
out (`include_test` adds it), because these figures choose thresholds and tune's trials:
- leave_one_recording_out: one fold per source of the held-out classes
  (`classes`, default the detect classes); the sources of the other classes are
  placed in the same number of folds by a seeded hash;
- group_kfold: every source placed in one of `folds` folds by a seeded hash.
Each fold's model trains on the other folds exactly as the model stage trains
(same augmentation, from those training clips only; same training settings and
seeds), with early stopping on a `validation` share of its training groups
(time segments of a recording, or speakers), and is converted to int8 exactly
as the tflite stage does. The held-out clips are never augmented.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path

import numpy as np

from .dataset import SPLITS, _unit, group_key, load_split, recording
from .errors import SpecError
from .fileio import write_if_changed, write_json
from .spec import Project

MAX_LORO_FOLDS = 20


def fold_of_sources(project: Project, clips: list[dict]) -> tuple[dict[str, int], list[str]]:
    """({source: fold}, names of the folds) for the spec's cross-validation method."""
    spec = project.spec
    cv = spec.evaluation.cross_validation
    sources = sorted({c["source"] for c in clips})
    if cv.method == "group_kfold":
        k = cv.folds
        if len(sources) < k:
            raise SpecError(project.positions.problem(
                ("evaluation", "cross_validation", "folds"),
                f"{k} folds need at least {k} recordings or speakers; the dataset has "
                f"{len(sources)}"))
        fold = {s: math.floor(_unit(cv.seed, f"cv\0{s}") * k) for s in sources}
        return fold, [f"fold {i + 1}" for i in range(k)]
    held = cv.classes or spec.detect_classes
    loro = sorted({c["source"] for c in clips if c["label"] in held})
    where = ("evaluation", "cross_validation", "method")
    if len(loro) < 2:
        raise SpecError(project.positions.problem(
            where, f"leave_one_recording_out needs at least 2 recordings of {', '.join(held)}; "
                   f"the dataset has {len(loro)}"))
    if len(loro) > MAX_LORO_FOLDS:
        raise SpecError(project.positions.problem(
            where, f"{', '.join(held)} come from {len(loro)} recordings or speakers: one fold "
                   f"each would train {len(loro)} models; use method: group_kfold"))
    k = len(loro)
    fold = {s: math.floor(_unit(cv.seed, f"cv\0{s}") * k) for s in sources}
    fold.update({s: i for i, s in enumerate(loro)})
    return fold, loro


def folded_splits(cv) -> list[str]:
    """The splits whose clips the folds share out: train and validation, and test only when
    `include_test` says so."""
    return [s for s in SPLITS if cv.include_test or s != "test"]


def _validation_group(c: dict, clip_seconds: float, segment_seconds: float) -> str:
    """A training clip's early-stopping group: its time segment (or speaker), so even a class
    with one training recording keeps most of it for training."""
    start = recording(c["file"])[1] + c["window"] * clip_seconds
    return group_key(c["file"], start, segment_seconds)


def _per_source(clips: list[dict], hits: np.ndarray) -> dict[str, dict]:
    """Per "<class>/<source>": windows, how many the detector got right, the share."""
    out: dict[str, dict] = defaultdict(lambda: {"windows": 0, "correct": 0})
    for c, hit in zip(clips, hits):
        row = out[f"{c['label']}/{c['source']}"]
        row["windows"] += 1
        row["correct"] += int(hit)
    return {k: {**v, "recall": v["correct"] / v["windows"]} for k, v in sorted(out.items())}


SWEEP = tuple(round(0.05 * k, 2) for k in range(10, 20))  # 0.5 .. 0.95


def _sweep(scores: np.ndarray, y: np.ndarray, classes: list[str], detect: list[str]) -> list[dict]:
    """Recall of all detect-class windows and false-positive rate of all the others, per
    threshold: the trade-off a different detection.threshold would buy."""
    from .evaluate import detection_hits

    is_detect = np.isin(y, [classes.index(c) for c in detect])
    out = []
    for t in SWEEP:
        hits = detection_hits(scores, y, classes, detect, t)
        out.append({"threshold": t,
                    "recall": float(hits[is_detect].mean()) if is_detect.any() else None,
                    "false_positive_rate": float(1 - hits[~is_detect].mean())
                    if (~is_detect).any() else None})
    return out


def train_folds(project: Project, index: dict, out_npz: Path) -> dict:
    """Train one model per fold and score its held-out clips under TFLM (see the module
    docstring); write the scores to `out_npz` and return the folds' description."""
    from .augment import augment
    from .convert import int8_tflite
    from .evaluate import run_tflm, tflm_probabilities
    from .features import INPUT_SCALE, design
    from .featurestage import augment_roles, cache_dir, cached_features, npz_bytes
    from .train import train_model

    spec = project.spec
    cv = spec.evaluation.cross_validation
    classes = list(spec.classes)
    splits = folded_splits(cv)
    clips, audio, labels = [], [], []
    for split in splits:  # load_split's row order is the index's order within the split
        x, y = load_split(project, index, split)
        clips += [c for c in index["clips"] if c["split"] == split]
        audio.append(x)
        labels.append(y)
    audio, labels = np.concatenate(audio), np.concatenate(labels)
    fold_of, names = fold_of_sources(project, clips)
    folds = np.array([fold_of[c["source"]] for c in clips])
    clip_seconds = spec.audio.clip_samples / spec.audio.sample_rate
    in_val = np.array([_unit(cv.seed, "val\0" + _validation_group(
        c, clip_seconds, spec.dataset.split.segment_seconds)) < cv.validation for c in clips])
    fe = design(spec)
    roles = augment_roles(project)
    cache = cache_dir(Path(out_npz).parents[2])

    def floats(q):
        return (q.astype(np.float32) * INPUT_SCALE)[..., None]

    described, rows = [], defaultdict(list)
    for k, name in enumerate(names):
        test = folds == k
        train, val = ~test & ~in_val, ~test & in_val
        missing = [classes[i] for i in range(len(classes)) if not np.any(labels[train] == i)]
        if missing or not test.any():
            described.append({"fold": name, "skipped": f"no training clips of "
                                                       f"{', '.join(missing)}"
                              if missing else "no held-out clips"})
            continue
        xa, ya = augment(audio[train], labels[train], spec.augmentation, spec.audio.sample_rate,
                         **roles)
        data = {"train": (floats(cached_features(fe, xa, cache)[0]), ya),
                "validation": (floats(cached_features(fe, audio[val], cache)[0]), labels[val])}
        q_test = cached_features(fe, audio[test], cache)[0]
        model, _ = train_model(project, data, out_npz)
        tflite = int8_tflite(project, model, data)  # quantization.mode: ptq or qat
        rows["fold"].append(np.full(int(test.sum()), k, dtype=np.int32))
        rows["label"].append(labels[test].astype(np.int32))
        rows["source"].append(np.array([c["source"] for c, t in zip(clips, test) if t]))
        rows["scores"].append(tflm_probabilities(tflite, run_tflm(tflite, q_test)))
        rows["float_pred"].append(
            model.predict(floats(q_test), batch_size=256, verbose=0).argmax(1).astype(np.int32))
        described.append({"fold": name, "train_windows": int(train.sum()),
                          "validation_windows": int(val.sum()), "test_windows": int(test.sum())})
    meta = {"method": cv.method, "classes": classes, "splits": splits,
            "held_out_classes": (cv.classes or spec.detect_classes)
            if cv.method == "leave_one_recording_out" else classes,
            "runtime": "tflm int8", "folds": described}
    arrays = {key: np.concatenate(parts) for key, parts in rows.items()}
    if not arrays:  # every fold skipped
        arrays = {"fold": np.zeros(0, np.int32), "label": np.zeros(0, np.int32),
                  "source": np.zeros(0, "<U1"), "scores": np.zeros((0, len(classes))),
                  "float_pred": np.zeros(0, np.int32)}
    arrays["meta"] = np.frombuffer(json.dumps(meta, sort_keys=True).encode(), dtype=np.uint8)
    write_if_changed(out_npz, npz_bytes(arrays))
    return meta


def score_folds(project: Project, folds_npz: Path, out_json: Path,
                calibration: dict | None = None) -> dict:
    """The figures of the folds' held-out scores at the detector's threshold (the spec's, or
    for threshold: auto the calibrated one, else 0.5); write and return them. Cheap: a new
    detection.threshold re-scores the folds without training them again."""
    from .evaluate import detection_hits, detection_recalls, false_positive_rates, metrics
    from .variant import detection_threshold

    spec = project.spec
    with np.load(folds_npz, allow_pickle=False) as z:
        saved = {key: z[key] for key in z.files}
    meta = json.loads(saved.pop("meta").tobytes())
    classes, detect = meta["classes"], spec.detect_classes
    threshold = detection_threshold(project, calibration) or 0.5
    rule = (classes, detect, threshold)
    results = []
    for k, fold in enumerate(meta["folds"]):
        if "skipped" in fold:
            results.append(fold)
            continue
        mine = saved["fold"] == k
        y, scores, sources = saved["label"][mine], saved["scores"][mine], saved["source"][mine]
        m = metrics(y, scores.argmax(1), classes)
        held = [{"label": classes[t], "source": str(s)} for t, s in zip(y, sources)]
        results.append({
            **fold, "accuracy": m["accuracy"],
            "float_accuracy": float(np.mean(saved["float_pred"][mine] == y)),
            "per_class": m["per_class"], "confusion": m["confusion"],
            "detection_recalls": detection_recalls(scores, y, *rule),
            "false_positive_rates": false_positive_rates(scores, y, *rule),
            "per_source": _per_source(held, detection_hits(scores, y, *rule)),
            "threshold_sweep": _sweep(scores, y, classes, detect),
        })
    done = [r for r in results if "accuracy" in r]
    result = {**meta, "detect_classes": detect, "threshold": threshold, "folds": results,
              "mean_accuracy": float(np.mean([r["accuracy"] for r in done])) if done else None}
    write_json(out_json, result)
    return result


def held_out_recalls(result: dict) -> list[tuple[str, str, dict]]:
    """(fold, source, figures) of every held-out source of the held-out classes."""
    out = []
    for r in result["folds"]:
        for key, v in r.get("per_source", {}).items():
            label = key.split("/", 1)[0]
            if label in result["held_out_classes"]:
                out.append((r["fold"], key, v))
    return out


def format_crossval(result: dict) -> str:
    """A human summary: per fold, the held-out recall and the false-positive rates."""
    how = ("leave one recording out of " + ", ".join(result["held_out_classes"])
           if result["method"] == "leave_one_recording_out" else "group k-fold by recording/speaker")
    splits = result["splits"]
    seen = ("the test split left out" if "test" not in splits else
            "the test split included: do not choose anything with these figures")
    lines = [f"cross-validation ({how}; {len(result['folds'])} folds of the "
             f"{' and '.join(splits)} clips, {seen}; int8 under TFLM, on recordings each fold's "
             f"model never heard; a window is detected when a detect class's score reaches the "
             f"detection threshold {result['threshold']:g}, before smoothing):"]
    fp_worst: dict[str, float] = {}
    for r in result["folds"]:
        if "skipped" in r:
            lines.append(f"  {r['fold']}: skipped ({r['skipped']})")
            continue
        recalls = ", ".join(f"{c} {_pct(v['recall'])} of {v['windows']}"
                            for c, v in r["detection_recalls"].items() if v["windows"])
        fps = ", ".join(f"{c} {_pct(v['rate'])} of {v['windows']}"
                        for c, v in r["false_positive_rates"].items() if v["windows"])
        lines.append(f"  {r['fold']}: {r['test_windows']} windows, accuracy "
                     f"{_pct(r['accuracy'])} (float {_pct(r['float_accuracy'])})")
        if recalls:
            lines.append(f"      detected: {recalls}")
        if fps:
            lines.append(f"      false positives: {fps}")
        for c, v in r["false_positive_rates"].items():
            if v["rate"] is not None:
                fp_worst[c] = max(fp_worst.get(c, 0.0), v["rate"])
    if result["method"] == "leave_one_recording_out":
        rec = held_out_recalls(result)
        if rec:
            lines.append("  held-out recordings: " + ", ".join(
                f"{key} {_pct(v['recall'])} ({v['correct']}/{v['windows']})" for _, key, v in rec))
            values = [v["recall"] for _, _, v in rec]
            lines.append(f"  recall on held-out recordings: mean {_pct(float(np.mean(values)))}, "
                         f"worst {_pct(min(values))}")
    if result["mean_accuracy"] is not None:
        lines.append(f"  mean accuracy over folds {_pct(result['mean_accuracy'])}"
                     + ("; worst false-positive rate " + ", ".join(
                         f"{c} {_pct(v)}" for c, v in fp_worst.items()) if fp_worst else ""))
    return "\n".join(lines)


def _pct(v) -> str:
    return "n/a" if v is None else f"{100 * v:.1f}%"
