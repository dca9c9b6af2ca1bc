"""The build report as one self-contained web page: build/<project>/report.html.

`build_report_html(project, art) -> str` reads what the stages wrote (dataset index,
features, training history, model analysis, evaluation, cross-validation, streams, the
firmware folders) and renders templates/report/report.html.j2 (Jinja2, autoescaped, strict)
with figures drawn by matplotlib (Agg) as SVG inline in the page. Nothing is fetched from
elsewhere (no script, style sheet, font or image link), so the page works offline and can
be mailed. `write_report_html(project, art, out)` writes it, only when it changed.

A variant's memory per board region and its loop's time per hop come from the firmware
families' own estimators (generator.firmware.rp2040 / imxrt, the FlexRAM plan in the
variant's flexram_plan.json) through generator.variant.resolve: a build holds no measured
figure, so the page says "estimated" and what calibrated the estimate. Figures are
deterministic (fixed SVG hash salt, no date, no version): the same artifacts give
byte-identical pages.
"""

from __future__ import annotations

import io
import json
import re
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from .firmware.budget import (ARENA, BUFFERS, CODE, DATA, DMA, FFT, FIRMWARE, HEAP, MODEL, RING, STACK,
                              TABLES, RegionUse)
from .boards import load_board
from .dataset import SPLITS
from .fileio import read_json, write_if_changed
from .paths import TEMPLATES, Artifacts
from .spec import Project

TEMPLATE = "report.html.j2"  # under templates/report/
RUNTIMES = (("float", "float (Keras)"), ("int8", "int8 (TFLite)"), ("tflm", "int8 (TFLM, the device)"))
PHASES = ("train", "head", "finetune")  # generator.train's phases in the order they run
MAX_SOURCES = 40  # recordings drawn per class; the rest are summed in the title
MAX_LABEL = 48    # characters of a file or recording name in a figure
# Matplotlib's settings for every figure: SVG text as text (selectable, small), ids hashed with a
# fixed salt, and names drawn literally (a class or file name with '$' is not mathtext).
RC = {"svg.hashsalt": "micforge", "svg.fonttype": "none", "text.parse_math": False,
      "font.size": 9, "axes.titlesize": 10, "axes.labelsize": 9, "legend.fontsize": 8,
      "xtick.labelsize": 8, "ytick.labelsize": 8, "axes.spines.top": False,
      "axes.spines.right": False, "image.interpolation": "nearest"}
SVG_METADATA = {"Creator": None, "Date": None, "Format": None, "Type": None}
COLORS = {"train": "#4e79a7", "validation": "#f28e2b", "test": "#59a14f",
          "float": "#9c9c9c", "int8": "#4e79a7", "tflm": "#e15759"}
PART_COLORS = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1"]
# What the estimates put in a memory region (generator.firmware.budget), one colour each in
# every variant's figure.
PART_COLOR = {ARENA: "#e15759", MODEL: "#4e79a7", TABLES: "#76b7b2", FIRMWARE: "#bab0ac",
              RING: "#f28e2b", BUFFERS: "#59a14f", CODE: "#b07aa1", STACK: "#edc948",
              DATA: "#bab0ac", FFT: "#59a14f", HEAP: "#9c755f", DMA: "#f28e2b"}


# ----------------------------------------------------------------- figures as inline SVG

@contextmanager
def _plotting():
    """Matplotlib's settings (RC) while the figures of one page are drawn."""
    import matplotlib
    with matplotlib.rc_context(RC):
        yield


def _figure(width: float, height: float):
    """A figure on the Agg canvas. No pyplot: no backend switched for the whole process, no
    global list of figures to close."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _plain_ticks(axis) -> None:
    """Tick labels as plain numbers (0.001, 10): matplotlib's own on a log or symlog axis are
    mathtext, which RC turns off, and on a linear one may move a factor to an offset."""
    from matplotlib.ticker import FuncFormatter, NullFormatter
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


def _outside(ax, **kw) -> None:
    """The axes' legend to its right, clear of the data."""
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, **kw)


def _label(text: str, limit: int = MAX_LABEL) -> str:
    """A name as drawn in a figure: control characters (invalid in SVG text) replaced, long
    names cut in the middle."""
    text = "".join(ch if ch.isprintable() else "\ufffd" for ch in str(text))
    return text if len(text) <= limit else text[:limit // 2 - 1] + "\u2026" + text[-(limit // 2):]


def svg(fig, key: str, title: str):
    """`fig` as an inline <svg> element: the XML declaration and DOCTYPE (an external DTD) cut,
    every id prefixed with `key` so figures of one page never share an id."""
    from markupsafe import Markup, escape

    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata=SVG_METADATA)
    text = buf.getvalue()
    text = text[text.index("<svg"):].strip()
    ids = set(re.findall(r'\bid="([^"]+)"', text))
    text = re.sub(r'(\bid="|url\(#|href="#)([^")]+)',
                  lambda m: m.group(1) + (f"{key}-{m.group(2)}" if m.group(2) in ids else m.group(2)),
                  text)
    return Markup(text.replace("<svg ", f'<svg role="img" aria-label="{escape(title)}" ', 1))


# ----------------------------------------------------------------- dataset and features

def dataset_tables(index: dict) -> dict:
    """Clips per class and split, and per class its recordings (sources): how many, the largest
    one's share, and test recordings unheard in training (the index's own summary)."""
    s = index["summary"]
    rows = [{"name": c, **{x: s["clips"][c][x] for x in SPLITS},
             "total": sum(s["clips"][c].values())} for c in index["classes"]]
    per_source = _clips_per_source(index)
    sources = []
    for c in index["classes"]:
        counts = [sum(v.values()) for v in per_source[c].values()]
        u = s.get("unheard_test_sources", {}).get(c)
        sources.append({"name": c, "recordings": len(counts), "clips": sum(counts),
                        "largest": max(counts, default=0) / max(1, sum(counts)),
                        "unheard": u})
    return {"splits": rows, "sources": sources, "total": s["total"],
            "skipped": s.get("skipped", {}), "groups": s["groups"]}


def _clips_per_source(index: dict) -> dict[str, dict[str, dict[str, int]]]:
    """{class: {source: {split: clips}}}, sources in the index's order."""
    out: dict[str, dict[str, dict[str, int]]] = {c: {} for c in index["classes"]}
    for clip in index["clips"]:
        per = out[clip["label"]].setdefault(clip.get("source", clip["file"]), dict.fromkeys(SPLITS, 0))
        per[clip["split"]] += 1
    return out


def fig_splits(index: dict):
    classes = index["classes"]
    fig = _figure(5.2, 0.45 * len(classes) + 1.2)
    ax = fig.add_subplot()
    left = np.zeros(len(classes))
    y = np.arange(len(classes))
    for split in SPLITS:
        n = np.array([index["summary"]["clips"][c][split] for c in classes])
        ax.barh(y, n, left=left, color=COLORS[split], label=split)
        left += n
    ax.set_yticks(y, [_label(c) for c in classes])
    ax.invert_yaxis()
    ax.set_xlabel("clips")
    ax.set_title("Clips per class and split")
    _outside(ax)
    return fig


def fig_sources(index: dict):
    """Per class, clips per source recording (largest first), stacked by split."""
    per_source = _clips_per_source(index)
    classes = index["classes"]
    cols = 2 if len(classes) > 1 else 1
    rows = -(-len(classes) // cols)
    fig = _figure(9.6, 1.9 * rows + 0.3)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, c in zip(axes, classes):
        items = sorted(per_source[c].items(), key=lambda kv: (-sum(kv[1].values()), kv[0]))
        shown, rest = items[:MAX_SOURCES], items[MAX_SOURCES:]
        x = np.arange(len(shown))
        bottom = np.zeros(len(shown))
        for split in SPLITS:
            n = np.array([v[split] for _, v in shown], dtype=float)
            ax.bar(x, n, bottom=bottom, color=COLORS[split], width=0.8, label=split)
            bottom += n
        title = f"{_label(c, 24)}: {len(items)} recordings, {sum(sum(v.values()) for _, v in items)} clips"
        if rest:
            title += f"\n(the {MAX_SOURCES} largest; {sum(sum(v.values()) for _, v in rest)} clips in the rest)"
        ax.set_title(title, fontsize=9)
        if len(shown) <= 12:
            ax.set_xticks(x, [_label(k, 20) for k, _ in shown], rotation=30, ha="right")
        else:
            ax.set_xticks([])
            ax.set_xlabel("recordings, largest first")
        ax.set_ylabel("clips")
    for ax in axes[len(classes):]:
        ax.set_visible(False)
    axes[0].legend(frameon=False, fontsize=7)
    return fig


def feature_examples(index: dict, features: dict) -> list[dict]:
    """Per class one int8 feature map as the model gets it: of its test clips (else validation,
    else training) the one of median mean level, with the clip's file when the index names it
    (the npz holds each split's clips in the index's order; training rows are augmented)."""
    out = []
    for i, c in enumerate(index["classes"]):
        for split in ("test", "validation", "train"):
            x, y = features[f"x_{split}"], features[f"y_{split}"]
            rows = np.flatnonzero(y == i)
            if len(rows):
                break
        else:
            continue
        levels = x[rows].reshape(len(rows), -1).mean(axis=1)
        row = int(rows[np.argsort(levels, kind="stable")[len(rows) // 2]])
        files = [clip["file"] for clip in index["clips"] if clip["split"] == split]
        named = split != "train" and len(files) == len(y)
        out.append({"name": c, "map": x[row], "split": split,
                    "file": files[row] if named else f"row {row} of x_{split}"})
    return out


def fig_features(examples: list[dict], kind: str):
    cols = min(3, len(examples))
    rows = -(-len(examples) // cols)
    fig = _figure(9.6, 2.6 * rows + 0.3)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    image = None
    for ax, e in zip(axes, examples):
        image = ax.imshow(e["map"].T.astype(np.int16), origin="lower", aspect="auto",
                          cmap="magma", vmin=-128, vmax=127)
        ax.set_title(f"{_label(e['name'], 24)}\n{_label(e['file'])} ({e['split']})", fontsize=8)
        ax.set_xlabel("frame")
        ax.set_ylabel(f"{kind} bin")
    for ax in axes[len(examples):]:
        ax.set_visible(False)
    if image is not None:
        fig.colorbar(image, ax=axes[:len(examples)].tolist(), label="int8 value", shrink=0.8)
    return fig


# ----------------------------------------------------------------- training and evaluation

def phase_order(history: dict) -> list[str]:
    """The history's phases in the order they ran (history.json sorts its keys)."""
    return [p for p in PHASES if p in history["phases"]] + sorted(set(history["phases"]) - set(PHASES))


def fig_history(history: dict):
    """Loss, accuracy and learning rate per epoch over every phase, best epochs marked."""
    phases = phase_order(history)
    fig = _figure(9.6, 2.6)
    axes = fig.subplots(1, 3)
    start = 0
    for n, name in enumerate(phases):
        ph = history["phases"][name]
        m = ph["metrics"]
        epochs = np.arange(start + 1, start + ph["epochs_run"] + 1)
        for ax, key in ((axes[0], "loss"), (axes[1], "accuracy")):
            for metric, style, what in ((key, "-", "training"), (f"val_{key}", "--", "validation")):
                if metric in m:
                    ax.plot(epochs[:len(m[metric])], m[metric], style, color=PART_COLORS[n % 7],
                            label=f"{name}: {what}")
            ax.set_title(key)
        if "learning_rate" in m:
            axes[2].plot(epochs[:len(m["learning_rate"])], m["learning_rate"], color=PART_COLORS[n % 7],
                         label=name)
        best = start + ph["best_epoch"]
        for ax in axes:
            ax.axvline(best, color=PART_COLORS[n % 7], lw=0.8, ls=":")
        start += ph["epochs_run"]
    rates = [r for p in phases for r in history["phases"][p]["metrics"].get("learning_rate", []) if r > 0]
    if rates and max(rates) / min(rates) > 30:  # a schedule over decades: log, else linear
        axes[2].set_yscale("log")
    _plain_ticks(axes[2].yaxis)
    axes[2].set_title("learning rate")
    for ax in axes:
        ax.set_xlabel("epoch")
    axes[0].legend(frameon=False)
    return fig


def fig_confusion(evaluation: dict):
    """The three runtimes' confusion matrices, coloured by the share of each true class."""
    classes = evaluation["classes"]
    k = len(classes)
    size = 2.2 + 0.35 * k
    fig = _figure(min(9.6, 3 * size), size)
    axes = fig.subplots(1, 3)
    for ax, (key, title) in zip(axes, RUNTIMES):
        r = evaluation["runtimes"][key]
        cm = np.asarray(r["confusion"], dtype=float)
        share = cm / np.maximum(1, cm.sum(axis=1, keepdims=True))
        ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
        for i in range(k):
            for j in range(k):
                ax.text(j, i, f"{int(cm[i, j])}", ha="center", va="center", fontsize=8,
                        color="white" if share[i, j] > 0.6 else "black")
        names = [_label(c, 12) for c in classes]
        ax.set_xticks(range(k), names, rotation=45 if k > 3 else 0, ha="right" if k > 3 else "center")
        ax.set_yticks(range(k), names)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(f"{title}\naccuracy {100 * r['accuracy']:.1f}%", fontsize=9)
        for side in ("top", "right"):
            ax.spines[side].set_visible(True)
    return fig


def fig_precision_recall(evaluation: dict):
    classes = evaluation["classes"]
    fig = _figure(9.6, 2.6)
    axes = fig.subplots(1, 2)
    x = np.arange(len(classes))
    width = 0.8 / len(RUNTIMES)
    for ax, what in zip(axes, ("precision", "recall")):
        for n, (key, title) in enumerate(RUNTIMES):
            per = evaluation["runtimes"][key]["per_class"]
            v = [np.nan if per[c][what] is None else 100 * per[c][what] for c in classes]
            ax.bar(x + (n - 1) * width, v, width, color=COLORS[key], label=title)
        ax.set_xticks(x, [_label(c, 12) for c in classes])
        ax.set_ylim(0, 105)
        ax.set_ylabel("%")
        ax.set_title(f"{what} per class (test split)")
    _outside(axes[1])
    return fig


def evaluation_rows(evaluation: dict) -> list[dict]:
    """Per class: support and precision/recall of each runtime (None where undefined)."""
    r = evaluation["runtimes"]
    return [{"name": c, "support": r["tflm"]["per_class"][c]["support"],
             **{f"{k}_{m}": r[k]["per_class"][c][m] for k, _ in RUNTIMES for m in ("precision", "recall")}}
            for c in evaluation["classes"]]


# ----------------------------------------------------------------- generalisation and streams

def fig_crossval(crossval: dict):
    """Per fold: detect-class recall on recordings the fold's model never heard, false-positive
    rate of the other classes, accuracy float/int8; and each fold's threshold sweep."""
    folds = [f for f in crossval["folds"] if "skipped" not in f]
    names = [_label(f["fold"], 20) for f in folds]
    x = np.arange(len(folds))
    fig = _figure(9.6, 3.0)
    axes = fig.subplots(1, 3)
    detect = crossval["detect_classes"]
    width = 0.8 / max(1, len(detect))
    for n, c in enumerate(detect):
        v = [100 * f["detection_recalls"][c]["recall"] if f["detection_recalls"].get(c, {}).get("windows")
             else np.nan for f in folds]
        axes[0].bar(x + (n - (len(detect) - 1) / 2) * width, v, width, label=_label(c, 16),
                    color=PART_COLORS[n % 7])
    axes[0].set_title(f"detected (score >= {crossval['threshold']:g})"
                      + (f": {_label(detect[0], 16)}" if len(detect) == 1 else ""))
    others = sorted({c for f in folds for c in f["false_positive_rates"]})
    width = 0.8 / max(1, len(others))
    for n, c in enumerate(others):
        v = [100 * f["false_positive_rates"][c]["rate"]
             if f["false_positive_rates"].get(c, {}).get("rate") is not None else np.nan for f in folds]
        axes[1].bar(x + (n - (len(others) - 1) / 2) * width, v, width, label=_label(c, 16),
                    color=PART_COLORS[(n + 3) % 7])
    axes[1].set_title("false positives" + (f": {_label(others[0], 16)}" if len(others) == 1
                                           else " (other classes)"))
    for ax, keys in ((axes[0], detect), (axes[1], others)):
        ax.set_xticks(x, names, rotation=30 if len(folds) > 3 else 0, ha="right" if len(folds) > 3 else "center")
        ax.set_ylabel("% of windows")
        if len(keys) > 1:
            ax.legend(frameon=False, fontsize=7, loc="lower center", bbox_to_anchor=(0.5, 1.08),
                      ncol=min(4, len(keys)))
    axes[0].set_ylim(0, 105)
    for n, f in enumerate(folds):
        sweep = f.get("threshold_sweep", [])
        if sweep:
            axes[2].plot([100 * s["false_positive_rate"] for s in sweep], [100 * s["recall"] for s in sweep],
                         "o-", ms=3, color=PART_COLORS[n % 7], label=names[n])
            at = [s for s in sweep if abs(s["threshold"] - crossval["threshold"]) < 1e-9]
            if at:
                axes[2].plot(100 * at[0]["false_positive_rate"], 100 * at[0]["recall"], "k*", ms=9)
    axes[2].set_xlabel("false positives, % of other windows")
    axes[2].set_ylabel("recall, %")
    axes[2].set_title(f"threshold sweep (* at {crossval['threshold']:g})")
    if any(f.get("threshold_sweep") for f in folds):
        _outside(axes[2], fontsize=7)
    return fig


def crossval_rows(crossval: dict) -> list[dict]:
    out = []
    for f in crossval["folds"]:
        if "skipped" in f:
            out.append({"fold": f["fold"], "skipped": f["skipped"]})
            continue
        out.append({"fold": f["fold"], "skipped": None, "windows": f["test_windows"],
                    "accuracy": f["accuracy"], "float_accuracy": f["float_accuracy"],
                    "recalls": {c: v for c, v in f["detection_recalls"].items() if v["windows"]},
                    "false_positives": {c: v for c, v in f["false_positive_rates"].items() if v["windows"]}})
    return out


def fig_streaming(streaming: dict):
    """Detection rate against false alarms per hour on the test stream, one curve per smoothing
    (the validation stream's too when the threshold is auto), and onset latency."""
    t = streaming["test"]
    fig = _figure(9.6, 3.0)
    axes = fig.subplots(1, 2, width_ratios=[3, 2])
    smoothings = sorted({r["smoothing"] for r in t["sweep"]})
    for n, s in enumerate(smoothings):
        rows = [r for r in t["sweep"] if r["smoothing"] == s]
        axes[0].plot([r["false_alarms_per_hour"] for r in rows], [100 * r["detection_rate"] for r in rows],
                     "o-", ms=3, lw=1.8 if s == streaming["smoothing"] else 0.9,
                     color=PART_COLORS[n % 7], label=f"smoothing {s}")
    if streaming.get("auto"):
        v = streaming["validation"]
        axes[0].plot([r["false_alarms_per_hour"] for r in v["sweep"]], [100 * r["detection_rate"] for r in v["sweep"]],
                     "--", color="#666666", lw=0.9, label=f"validation, smoothing {streaming['smoothing']}")
        axes[0].axvline(streaming["target_false_alarms_per_hour"], color="#666666", lw=0.8, ls=":")
    at = t["at_threshold"]
    axes[0].plot(at["false_alarms_per_hour"], 100 * at["detection_rate"], "k*", ms=11,
                 label=f"in force: threshold {at['threshold']:g}, smoothing {at['smoothing']}")
    axes[0].set_xscale("symlog", linthresh=1)
    axes[0].set_xlim(left=-0.3)  # points at 0 false alarms clear of the axis
    _plain_ticks(axes[0].xaxis)
    axes[0].set_xlabel("false alarms per hour")
    axes[0].set_ylabel("events detected, %")
    axes[0].set_title(f"test stream: {streaming['minutes']:g} min, {t['events']} events")
    _outside(axes[0], fontsize=7)
    rows = [r for r in t["sweep"] if r["smoothing"] == streaming["smoothing"]]
    for key, style, name in (("latency_median_s", "o-", "median"), ("latency_p95_s", "s--", "95th percentile")):
        v = [np.nan if r.get(key) is None else 1000 * r[key] for r in rows]
        axes[1].plot([r["threshold"] for r in rows], v, style, ms=3, color="#4e79a7", label=name)
    axes[1].axvline(at["threshold"], color="black", lw=0.8, ls=":")
    axes[1].set_xlabel("threshold")
    axes[1].set_ylabel("onset latency, ms")
    axes[1].set_title(f"latency (smoothing {streaming['smoothing']})")
    axes[1].legend(frameon=False)
    return fig


# ----------------------------------------------------------------- the model

def fig_layers(analysis: dict):
    from matplotlib.ticker import FuncFormatter, MaxNLocator
    layers = analysis["layers"]
    names = [f"{x['index']} {x['op']} {'x'.join(map(str, x['output_shape']))}" for x in layers]
    fig = _figure(9.6, 0.24 * len(layers) + 1.1)
    axes = fig.subplots(1, 2, sharey=True)
    y = np.arange(len(layers))
    for ax, key, title, color in ((axes[0], "macs", "MACs per inference", "#4e79a7"),
                                  (axes[1], "params", "parameters", "#f28e2b")):
        v = [x[key] for x in layers]
        ax.barh(y, v, color=color)
        total = max(1, sum(v))
        for i, n in enumerate(v):
            if n:
                ax.text(n, i, f" {n:,} ({100 * n / total:.0f}%)", va="center", fontsize=7)
        ax.set_title(f"{title}: {sum(v):,}")
        ax.set_xlim(0, max(v + [1]) * 1.45)
        ax.xaxis.set_major_locator(MaxNLocator(5, integer=True))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda n, _: f"{n / 1000:g}k" if n >= 10_000 else f"{n:g}"))
    axes[0].set_yticks(y, names)
    axes[0].invert_yaxis()
    return fig


# ----------------------------------------------------------------- variants: memory and hop

def flexram_banks(plan: dict, banks: int) -> list[str]:
    """Each bank's kind from the plan's IOMUXC_GPR17 value (2 bits a bank)."""
    gpr17 = int(plan["gpr17"], 16)
    kinds = {0: "unused", 1: "OCRAM", 2: "DTCM", 3: "ITCM"}
    return [kinds[(gpr17 >> (2 * i)) & 3] for i in range(banks)]


def hop_budget(v) -> dict:
    """The loop's estimated microseconds per hop (front end, Invoke, the rest) against the hop,
    from the family's budget (generator.firmware.budget), and what calibrated it."""
    from .targets import family
    b = family(v.board).budget(v)
    return {"front_us": b.front_us, "invoke_us": b.invoke_us or 0.0,
            "other_us": b.audio_us + b.serial_us, "total_us": b.total_us, "hop_us": b.hop_us,
            "hop_frames": v.frontend.hop_frames, "source": b.source,
            "other_what": f"{b.audio_what} + serial line"}


def fig_memory(regions: list[RegionUse]):
    """Each region's estimated use, by part, as a share of its size."""
    fig = _figure(9.6, 0.42 * len(regions) + 1.0)
    ax = fig.add_subplot()
    drawn = set()
    for i, r in enumerate(regions):
        left = 0.0
        for what, n in r.parts:
            share = 100 * n / r.size if r.size else 0
            ax.barh(i, share, left=left, color=PART_COLOR.get(what, "#888888"),
                    label=None if what in drawn else what)
            drawn.add(what)
            left += share
        text = (" not estimated" if not r.estimated else " 0 banks" if not r.size
                else f" {_kb(r.used)} of {_kb(r.size)} ({100 * r.used / r.size:.1f}%)")
        ax.text(min(left, 100), i, text, va="center", fontsize=7)
    ax.set_yticks(range(len(regions)), [f"{r.name} {_kb(r.size)}" for r in regions])
    ax.invert_yaxis()
    ax.set_xlim(0, 130)
    ax.set_xticks([0, 25, 50, 75, 100])
    ax.axvline(100, color="black", lw=0.8)
    ax.set_xlabel("% of the region (estimated)")
    _outside(ax, fontsize=7)
    return fig


def fig_hop(budgets: list[tuple[str, dict]]):
    """Per variant, front end + Invoke + the rest of the loop against the hop."""
    fig = _figure(9.6, 0.45 * len(budgets) + 1.1)
    ax = fig.add_subplot()
    parts = (("front_us", "front end", "#4e79a7"), ("invoke_us", "Invoke", "#e15759"),
             ("other_us", "microphone + serial line", "#bab0ac"))
    for i, (name, b) in enumerate(budgets):
        left = 0.0
        for key, label, color in parts:
            ax.barh(i, b[key] / 1000, left=left, color=color, label=label if i == 0 else None)
            left += b[key] / 1000
        ax.text(left, i, f" {left:.2f} ms = {100 * b['total_us'] / b['hop_us']:.0f}% of the hop",
                va="center", fontsize=7)
    hop = max(b["hop_us"] for _, b in budgets) / 1000
    ax.axvline(hop, color="black", lw=1)
    ax.text(hop, -0.6, f" hop {hop:g} ms", fontsize=7, va="bottom")
    ax.set_yticks(range(len(budgets)), [_label(n, 20) for n, _ in budgets])
    ax.invert_yaxis()
    ax.set_xlim(0, max(hop, max(b["total_us"] for _, b in budgets) / 1000) * 1.35)
    ax.set_xlabel("ms per hop (estimated)")
    _outside(ax, fontsize=7)
    return fig


def _kb(n: int) -> str:
    return f"{n / 1024:.1f} KB" if n < 1024 * 1024 else f"{n / (1024 * 1024):g} MB"


def variants(project: Project, art: Artifacts, analysis: dict, calibration: dict | None) -> list[dict]:
    """Per target: its board, memory per region and hop budget (estimates through resolve)."""
    from .firmware.imxrt import estimate_sizes
    from .flexram import plan as plan_flexram
    from .targets import family
    from .variant import resolve
    out = []
    for target in project.spec.targets:
        board = load_board(target.board)
        v = resolve(project, target, board, analysis, calibration)
        plan, banks = None, []
        if board.soc == "imxrt1062":
            plan_file = art.firmware(target.name) / "flexram_plan.json"
            plan = (json.loads(plan_file.read_text()) if plan_file.exists()
                    else plan_flexram(board, estimate_sizes(v, v.arena.bytes)).to_json())
            banks = flexram_banks(plan, board.flexram.banks)
        regions = family(board).memory(v, analysis["model_bytes"], plan)
        out.append({"name": target.name, "board": board, "regions": regions, "plan": plan,
                    "banks": banks, "hop": hop_budget(v), "arena": v.arena,
                    "folder": f"{art.firmware(target.name).relative_to(art.root).as_posix()}/"})
    return out


# ----------------------------------------------------------------- the page

SECTIONS = (("summary", "Summary"), ("dataset", "Dataset"), ("features", "Features"),
            ("training", "Training"), ("evaluation", "Evaluation"),
            ("generalisation", "Generalisation"), ("streams", "Streams"), ("model", "Model"),
            ("variants", "Variants: memory and hop budget"))


def context(project: Project, art: Artifacts) -> dict:
    """Everything the template shows, figures drawn (call inside _plotting())."""
    from .dataset import memory_warnings
    from .features import design

    spec = project.spec
    index = json.loads(art.dataset_index.read_text())
    analysis = json.loads(art.analysis.read_text())
    evaluation = json.loads(art.evaluation.read_text())
    history = read_json(art.history)
    crossval = read_json(art.crossval) if spec.evaluation.cross_validation else None
    streaming = read_json(art.streaming) if spec.evaluation.streaming else None
    with np.load(art.features) as npz:
        features = {k: npz[k] for k in npz.files}
    fe = design(spec)
    figs: dict = {}

    def draw(key: str, title: str, fig) -> None:
        figs[key] = {"svg": svg(fig, key, title), "title": title}

    draw("splits", "Clips per class and split", fig_splits(index))
    draw("sources", "Clips per source recording", fig_sources(index))
    examples = feature_examples(index, features)
    draw("features", "One int8 feature map per class", fig_features(examples, fe.kind))
    if history is not None:
        draw("history", "Training curves", fig_history(history))
    draw("confusion", "Confusion matrices", fig_confusion(evaluation))
    draw("precision_recall", "Precision and recall per class", fig_precision_recall(evaluation))
    if crossval is not None:
        draw("crossval", "Cross-validation on unheard recordings", fig_crossval(crossval))
    if streaming is not None:
        draw("streaming", "Detection rate against false alarms per hour", fig_streaming(streaming))
    draw("layers", "MACs and parameters per layer", fig_layers(analysis))
    vs = variants(project, art, analysis, streaming)
    for v in vs:
        draw(f"memory_{v['name']}", f"Memory of {v['name']} per region", fig_memory(v["regions"]))
    if vs:
        draw("hop", "Hop budget per variant", fig_hop([(v["name"], v["hop"]) for v in vs]))
    return dict(
        spec=spec, frontend=fe.describe(), sections=SECTIONS, index=index,
        data=dataset_tables(index), warnings=memory_warnings(index), features_seen=examples,
        history=history, phases=phase_order(history) if history else [], evaluation=evaluation, eval_rows=evaluation_rows(evaluation),
        runtimes=RUNTIMES, crossval=crossval, crossval_rows=crossval_rows(crossval) if crossval else [],
        streaming=streaming, analysis=analysis, variants=vs, figs=figs, splits=SPLITS)


def _printable(value):
    """What the page prints of a value: text with its control characters (bidi overrides
    included) replaced, then autoescaped; figures (Markup) and numbers as they are."""
    from markupsafe import Markup
    if isinstance(value, str) and not isinstance(value, Markup):
        return _label(value.replace("\n", " ").replace("\t", " "), limit=len(value))
    return value


def environment():
    import jinja2
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES / "report")),
                             undefined=jinja2.StrictUndefined, autoescape=True, finalize=_printable,
                             trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    env.filters.update(
        pct=lambda v, digits=1: "n/a" if v is None else f"{100 * v:.{digits}f}%",
        num=lambda v: f"{v:,}", kb=_kb, ms=lambda us: f"{us / 1000:.2f} ms",
        hex=lambda v, width=8: f"0x{v:0{width}X}")
    return env


def build_report_html(project: Project, art: Artifacts) -> str:
    with _plotting():
        ctx = context(project, art)
    return environment().get_template(TEMPLATE).render(**ctx)


def write_report_html(project: Project, art: Artifacts, out: Path) -> None:
    write_if_changed(out, build_report_html(project, art))
