"""Scoring a labelled folder of recordings with a project's built int8 model.

Takes a validated Project, its built int8 .tflite (build/<project>/tflite/model.tflite)
and a folder DIR holding one sub-folder per spec class (searched recursively, as
`dataset.layout: folders`), and produces a JSON-able dict (file names relative
to DIR, no absolute paths) of how the model does on it under the real TFLM
runtime, through exactly the project's feature path:

    {"project", "classes", "detect_classes",
     "windows", "files", "skipped_files", "dropped_windows",
     "accuracy", "per_class": {class: {"precision", "recall", "support"}},
     "confusion": [[...]],                    # rows true class, columns predicted
     "recordings": [{"recording", "class", "windows", "correct", "recall"}],
     "threshold": detection.threshold,
     "false_positives": {non-detect class: {"windows", "false_positives", "rate"}},
     "failed": [{"file", "window", "true", "predicted", "score"}],
     "skipped": [{"file", "reason", "detail"}]}

Files are decoded and cut into windows exactly as the dataset index does
(audio.windows); silent windows are dropped except in a class meant to be
silence (`_silence_` or `silence`). A sub-folder that is not a class, a file
outside the class folders, and every file or window that yields nothing to score
are listed in `skipped` with the reason; hidden files and folders are ignored.
A spec class without a folder simply has support 0. Accuracy, recall per class and per
recording are those of the top class (argmax); a false positive is a window of a
class that does not detect where a detect class's probability reaches
`detection.threshold` (the device's rule before smoothing). `files` counts the files
with at least one window scored, `skipped_files` the files and folders of which
nothing was scored, `dropped_windows` the silent windows of scored files.
A recording is `dataset.source_id(file)` (the recording, or "speaker:<id>" for a
Speech Commands name `<speaker>_nohash_<n>`) inside its folder: `alarm/alarm_0800`. `score` is
the predicted class's raw int8 output. DIR missing or without a single window to
score is a SpecError naming DIR.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from . import audio, dataset
from .errors import Problem, SpecError
from .evaluate import TFLM_ARENA, false_positive_rates, metrics, run_tflm, tflm_probabilities
from .features import INPUT_SCALE, INPUT_ZERO_POINT, design
from .featurestage import cache_dir, cached_features
from .spec import Project
from .variant import detection_threshold

FAILED_SHOWN = 20


def recording_id(file: str) -> str:
    """The recording (or speaker) a file relative to DIR was cut from, inside its folder:
    dataset.source_id, the rule the index and cross-validation group by."""
    return Path(file).with_name(dataset.source_id(file)).as_posix()


def _hidden(rel: Path) -> bool:
    return any(part.startswith(".") for part in rel.parts)


def _sources(project: Project, root: Path, skipped: list) -> list[tuple[str, str, Path]]:
    """(file relative to root, class, path) of every candidate file; the rest to `skipped`."""
    classes = project.spec.classes
    out = []
    for entry in sorted(root.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_dir() and entry.name in classes:
            out += [(p.relative_to(root).as_posix(), entry.name, p) for p in sorted(entry.rglob("*"))
                    if p.is_file() and not _hidden(p.relative_to(root))]
        elif entry.is_dir():
            skipped.append({"file": entry.name + "/", "reason": "folder is not a class",
                            "detail": f"not one of the spec's classes {classes}"})
        else:
            skipped.append({"file": entry.name, "reason": "not in a class folder",
                            "detail": "files go in a sub-folder named after their class"})
    return out


def _windows(project: Project, sources, skipped: list) -> tuple[list[np.ndarray], list[dict]]:
    """int16 windows to score and their {file, window, label}, as dataset.py cuts them."""
    a = project.spec.audio
    clips, rows = [], []
    for file, label, path in sources:
        try:
            data = path.read_bytes()
        except OSError as exc:
            skipped.append({"file": file, "reason": "unreadable file", "detail": exc.strerror or str(exc)})
            continue
        try:
            _, wins = audio.windows(data, a.sample_rate, a.clip_samples)
        except audio.AudioError as exc:
            skipped.append({"file": file, "reason": exc.reason, "detail": exc.detail})
            continue
        for k, w in enumerate(wins):
            if not dataset._is_silence_class(label) and audio.is_silent(w):
                skipped.append({"file": file, "reason": "silent window",
                                "detail": f"window {k}: {audio.rms_dbfs(w):.1f} dBFS, below "
                                          f"{audio.SILENCE_FLOOR_DBFS:g} dBFS"})
                continue
            clips.append(w)
            rows.append({"file": file, "window": k, "label": label})
    return clips, rows


def _check_model(project: Project, tflite: bytes, tflite_path: Path) -> None:
    """The model must take this spec's int8 features (TFLM's view; no TensorFlow import)."""
    from tflite_micro.python.tflite_micro import runtime

    spec = project.spec
    details = runtime.Interpreter.from_bytes(tflite, arena_size=TFLM_ARENA).get_input_details(0)
    shape = [int(v) for v in details["shape"]]
    q = details["quantization_parameters"]
    fe = design(spec)
    want = [1, fe.num_frames, fe.num_bins, 1]
    if (shape != want or details["dtype"] != np.int8 or list(q["scales"]) != [INPUT_SCALE]
            or list(q["zero_points"]) != [INPUT_ZERO_POINT]):
        raise SpecError(Problem(str(tflite_path), 0, 0, (
            f"model input is {np.dtype(details['dtype']).name} {shape}, not the int8 {want} "
            f"(scale 1/128) of {project.name}'s features; rebuild it with micforge build")))


def evaluate_folder(project: Project, tflite_path: Path, data_dir: Path,
                    calibration: dict | None = None) -> dict:
    """Score every window under `data_dir` with the model; the dict of the module docstring.
    `calibration` (analysis/streaming.json) gives the threshold of `threshold: auto`."""
    spec = project.spec
    threshold = detection_threshold(project, calibration) or 0.5
    classes = list(spec.classes)
    root = Path(data_dir)
    if not root.is_dir():
        what = "not a folder" if root.exists() else "no such folder of recordings"
        raise SpecError(Problem(str(data_dir), 0, 0, what))
    skipped: list[dict] = []
    sources = _sources(project, root, skipped)
    clips, rows = _windows(project, sources, skipped)
    skipped.sort(key=lambda s: s["file"])  # stable: a file's windows stay in order
    if not rows:
        why = Counter(s["reason"] for s in skipped)
        found = ", ".join(f"{n} {r}" for r, n in sorted(why.items())) or "nothing"
        raise SpecError(Problem(str(data_dir), 0, 0, (
            f"no window to score: expected a sub-folder per class ({', '.join(classes)}) holding "
            f"audio files; found {found}")))
    tflite = Path(tflite_path).read_bytes()
    _check_model(project, tflite, tflite_path)
    q, _ = cached_features(design(spec), np.stack(clips), cache_dir(Path(tflite_path).parents[2]))
    out = run_tflm(tflite, q)
    y = np.array([classes.index(r["label"]) for r in rows], dtype=np.int64)
    pred = out.argmax(1)
    result = {"project": project.name, "classes": classes, "detect_classes": list(spec.detect_classes),
              **metrics(y, pred, classes)}

    scored = {r["file"] for r in rows}
    result.update(windows=len(rows), files=len(scored),
                  skipped_files=len({s["file"] for s in skipped} - scored),
                  dropped_windows=sum(s["file"] in scored for s in skipped))

    per_rec: dict[tuple[int, str], list[int]] = {}
    for r, ok in zip(rows, pred == y):
        counts = per_rec.setdefault((classes.index(r["label"]), recording_id(r["file"])), [0, 0])
        counts[0] += 1
        counts[1] += int(ok)
    result["recordings"] = [{"recording": rec, "class": classes[c], "windows": n, "correct": k,
                             "recall": k / n} for (c, rec), (n, k) in sorted(per_rec.items())]

    result["threshold"] = threshold
    result["false_positives"] = false_positive_rates(tflm_probabilities(tflite, out), y, classes,
                                                     spec.detect_classes, threshold)

    result["failed"] = [{"file": r["file"], "window": r["window"], "true": r["label"],
                         "predicted": classes[p], "score": int(s.max())}
                        for r, p, t, s in zip(rows, pred, y, out) if p != t]
    result["skipped"] = skipped
    return result


def _pct(v) -> str:
    return "n/a" if v is None else f"{100 * v:.1f}%"


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")


def _table(header: list[str], body: list[list], left: tuple[int, ...] = (0,)) -> list[str]:
    """Indented rows; the columns in `left` aligned left, the others right."""
    cells = [[str(c) for c in row] for row in [header] + body]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    return ["  " + "  ".join(c.ljust(w) if i in left else c.rjust(w)
                             for i, (c, w) in enumerate(zip(row, widths))).rstrip()
            for row in cells]


def format_folder_report(result: dict) -> str:
    """The report printed by `micforge evaluate` (the dict of evaluate_folder, in text)."""
    r, classes = result, result["classes"]  # JSON sorts keys: `classes` keeps the spec order
    correct = sum(row[i] for i, row in enumerate(r["confusion"]))
    lines = [f"{r['project']}: {_n(r['windows'], 'window')} scored from {_n(r['files'], 'file')}; "
             f"{_n(r['skipped_files'], 'file')} skipped, "
             f"{_n(r['dropped_windows'], 'silent window')} dropped",
             f"accuracy {_pct(r['accuracy'])} ({correct}/{r['windows']})", ""]
    lines += _table(["class", "precision", "recall", "support"],
                    [[c, _pct(v["precision"]), _pct(v["recall"]), v["support"]]
                     for c, v in ((c, r["per_class"][c]) for c in classes)])
    lines += ["", "confusion (rows true class, columns predicted):"]
    lines += _table([""] + classes, [[c] + row for c, row in zip(classes, r["confusion"])])
    lines += ["", "recall per recording:"]
    lines += _table(["recording", "windows", "correct", "recall"],
                    [[x["recording"], x["windows"], x["correct"], _pct(x["recall"])]
                     for x in r["recordings"]])
    lines += ["", f"false positives (windows where {' or '.join(r['detect_classes'])} scores at "
                  f"least detection.threshold {r['threshold']:g}, before smoothing):"]
    lines += _table(["class", "windows", "false pos.", "rate"],
                    [[c, v["windows"], v["false_positives"], _pct(v["rate"])]
                     for c, v in ((c, r["false_positives"][c]) for c in classes
                                  if c in r["false_positives"])])
    lines += ["", f"failed windows: {len(r['failed'])}"]
    if r["failed"]:
        lines += _table(["file", "window", "true", "predicted", "score"],
                        [[f["file"], f["window"], f["true"], f["predicted"], f["score"]]
                         for f in r["failed"][:FAILED_SHOWN]], left=(0, 2, 3))
        if len(r["failed"]) > FAILED_SHOWN:
            lines.append(f"  ... {len(r['failed']) - FAILED_SHOWN} more")
    lines += ["", f"skipped: {len(r['skipped'])}"]
    lines += [f"  {s['file']}: {s['reason']}" + (f" ({s['detail']})" if s["detail"] else "")
              for s in r["skipped"]]
    return "\n".join(lines)
