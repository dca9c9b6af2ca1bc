"""Cross-validation by whole recordings: what the model does on sources it never heard.

`cross_validate(project, index, out_json)` takes a project whose spec sets
`evaluation.cross_validation` and its dataset index, and writes (and returns) a
JSON-able dict with, per fold, the TFLM int8 figures on the fold's held-out
clips: accuracy, per-class precision/recall, recall per held-out source, and
the detector's figures: recall of every detect class and the false-positive rate
of every other class, a window counting as a detection when a detect class's
probability reaches `detection.threshold` (the device's rule before smoothing and
hysteresis), and the detector's recall per held-out source. `format_crossval`
prints it.

Folds are made of sources (`dataset.source_id`: a recording, or a speaker for
Speech Commands names), over every clip of the index, whatever its split:
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

import math
from collections import defaultdict
from pathlib import Path

import numpy as np

from .dataset import SPLITS, _unit, group_key, load_split, recording
from .errors import SpecError
from .fileio import write_json
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


def cross_validate(project: Project, index: dict, out_json: Path) -> dict:
    """Train and score one model per fold (see the module docstring); write and return."""
    from .augment import augment
    from .convert import int8_tflite
    from .evaluate import (detection_hits, detection_recalls, false_positive_rates, metrics,
                           run_tflm, tflm_probabilities)
    from .features import INPUT_SCALE, design
    from .featurestage import augment_roles, cache_dir, cached_features
    from .train import train_model
    from .variant import detection_threshold

    spec = project.spec
    cv = spec.evaluation.cross_validation
    classes = list(spec.classes)
    clips, audio, labels = [], [], []
    for split in SPLITS:  # load_split's row order is the index's order within the split
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
    cache = cache_dir(Path(out_json).parents[2])
    # threshold: auto is calibrated after training, on the full model's streams: folds use 0.5
    threshold = detection_threshold(project) or 0.5

    def floats(q):
        return (q.astype(np.float32) * INPUT_SCALE)[..., None]

    results = []
    for k, name in enumerate(names):
        test = folds == k
        train, val = ~test & ~in_val, ~test & in_val
        missing = [classes[i] for i in range(len(classes)) if not np.any(labels[train] == i)]
        if missing or not test.any():
            results.append({"fold": name, "skipped": f"no training clips of {', '.join(missing)}"
                            if missing else "no held-out clips"})
            continue
        xa, ya = augment(audio[train], labels[train], spec.augmentation, spec.audio.sample_rate,
                         **roles)
        data = {"train": (floats(cached_features(fe, xa, cache)[0]), ya),
                "validation": (floats(cached_features(fe, audio[val], cache)[0]), labels[val])}
        q_test, y_test = cached_features(fe, audio[test], cache)[0], labels[test]
        model, _ = train_model(project, data, out_json)
        tflite = int8_tflite(project, model, data)  # quantization.mode: ptq or qat
        scores = tflm_probabilities(tflite, run_tflm(tflite, q_test))
        pred = scores.argmax(1)
        float_pred = model.predict(floats(q_test), batch_size=256, verbose=0).argmax(1)
        held = [c for c, t in zip(clips, test) if t]
        m = metrics(y_test, pred, classes)
        rule = (classes, spec.detect_classes, threshold)
        results.append({
            "fold": name, "train_windows": int(train.sum()), "validation_windows": int(val.sum()),
            "test_windows": int(test.sum()), "accuracy": m["accuracy"],
            "float_accuracy": float(np.mean(float_pred == y_test)),
            "per_class": m["per_class"], "confusion": m["confusion"],
            "detection_recalls": detection_recalls(scores, y_test, *rule),
            "false_positive_rates": false_positive_rates(scores, y_test, *rule),
            "per_source": _per_source(held, detection_hits(scores, y_test, *rule)),
            "threshold_sweep": _sweep(scores, y_test, classes, spec.detect_classes),
        })
    done = [r for r in results if "accuracy" in r]
    result = {"method": cv.method, "classes": classes, "detect_classes": spec.detect_classes,
              "held_out_classes": (cv.classes or spec.detect_classes)
              if cv.method == "leave_one_recording_out" else classes,
              "runtime": "tflm int8", "threshold": threshold, "folds": results,
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
    lines = [f"cross-validation ({how}; {len(result['folds'])} folds, int8 under TFLM, "
             f"on recordings each fold's model never heard; a window is detected when a detect "
             f"class's score reaches detection.threshold {result['threshold']:g}, before "
             f"smoothing):"]
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
