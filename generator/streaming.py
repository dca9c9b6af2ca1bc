"""Streaming evaluation: the deployed detector on long streams, scored as events.

`make_stream(project, index, split, settings)` builds a seeded test stream from one
split of the dataset: a background bed of the split's clips of classes that do not
detect (shuffled, each at a gain drawn from `bed_gain_db`, 10 ms crossfades), with
clips of the detect classes laid over it at known times (gaps drawn from
`event_gap_seconds`, each at an SNR drawn from `snr_db` against the bed under it).
The bed repeats its clips as often as the duration needs (a short split repeats).

`hop_scores(project, build_dir, samples)` runs the device's per-hop computation on it
through the firmware twin (generator.simulate): the rendered C front end and score
conversion compiled for the host, the int8 model under the real TFLM runtime.
`detector_onsets(...)` replays the firmware's detector (simulate.reference_detector,
detection.c's integer arithmetic: running mean over `smoothing` hops, threshold and
release in q15, hysteresis) and returns the hops where the printed `det=` turns to a
class.

Scoring rules (after the MLPerf Tiny streaming wake-word benchmark): an event of
class c is detected when an onset of c falls between its start and its end plus
`tolerance_seconds`; the first such onset gives the latency (onset - start). Each
event is matched once; any other onset during an event or within `tolerance_seconds`
after it ends (a repeat, or another class firing on the event) is neither a hit nor a
false alarm. Every other onset is a false alarm. Onsets of one class closer than
`debounce_seconds` to the previous one are merged. False alarms per hour count
over the stream's duration with a 95% Poisson (Garwood) interval.

`evaluate_streams(...)` sweeps thresholds and smoothing values over the same
scores (the model runs once per stream) and, for `detection.threshold: auto`,
picks the lowest threshold whose false alarms per hour on the validation stream
meet `detection.false_alarms_per_hour`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .spec import Project

Q15_ONE = 32768
CROSSFADE_SECONDS = 0.01
THRESHOLDS = tuple(round(0.05 * k, 2) for k in range(6, 20))  # 0.30 .. 0.95


@dataclass(frozen=True)
class Event:
    label: int
    start: float  # seconds
    end: float


@dataclass(frozen=True)
class Stream:
    samples: np.ndarray      # int16
    sample_rate: int
    events: tuple[Event, ...]

    @property
    def seconds(self) -> float:
        return len(self.samples) / self.sample_rate


# ----------------------------------------------------------------------- streams

def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if len(x) else 0.0


def make_stream(project: Project, clips: np.ndarray, labels: np.ndarray, settings,
                seed_offset: int = 0) -> Stream:
    """A seeded stream from int16 `clips` [N, samples] and their labels (see the docstring)."""
    spec = project.spec
    rate = spec.audio.sample_rate
    detect = [spec.classes.index(c) for c in spec.detect_classes]
    rng = np.random.default_rng([settings.seed, seed_offset])
    bed_idx = np.flatnonzero(~np.isin(labels, detect))
    event_idx = np.flatnonzero(np.isin(labels, detect))
    if not len(bed_idx) or not len(event_idx):
        raise ValueError("a stream needs clips of a detect class and of another class")
    total = int(settings.minutes * 60 * rate)
    fade = int(CROSSFADE_SECONDS * rate)
    ramp = np.linspace(0.0, 1.0, fade, endpoint=False)
    bed = np.zeros(total + clips.shape[1], dtype=np.float64)
    pos = 0
    while pos < total:
        for i in rng.permutation(bed_idx):
            if pos >= total:
                break
            gain = 10 ** (rng.uniform(settings.bed_gain_db.min, settings.bed_gain_db.max) / 20)
            x = clips[i].astype(np.float64) * gain
            x[:fade] *= ramp
            x[-fade:] *= ramp[::-1]
            start = max(0, pos - fade)
            bed[start:start + len(x)] += x
            pos = start + len(x)
    bed = bed[:total]
    events = []
    t = rng.uniform(settings.event_gap_seconds.min, settings.event_gap_seconds.max)
    n = clips.shape[1]
    while True:
        start = int(t * rate)
        if start + n > total:
            break
        i = event_idx[rng.integers(len(event_idx))]
        x = clips[i].astype(np.float64)
        snr = rng.uniform(settings.snr_db.min, settings.snr_db.max)
        under = max(_rms(bed[start:start + n]), 1.0)
        bed[start:start + n] += x * (under * 10 ** (snr / 20) / max(_rms(x), 1.0))
        events.append(Event(int(labels[i]), start / rate, (start + n) / rate))
        t += n / rate + rng.uniform(settings.event_gap_seconds.min, settings.event_gap_seconds.max)
    samples = np.clip(np.rint(bed), -32768, 32767).astype(np.int16)
    return Stream(samples, rate, tuple(events))


# ------------------------------------------------------------- the device, per hop

def hop_scores(project: Project, build_dir, samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(end time of each inference hop in seconds, q15 scores [hops, classes]) of a stream,
    from the firmware twin (generator.simulate): the rendered C front end and score
    conversion compiled for the host, the model under TFLM. The first variant's build is
    used: every family computes the same features (the parity tests)."""
    from .simulate import load

    variant = project.spec.targets[0].name
    sim = load(project, variant, build_dir, calibration={"threshold": 0.5})  # scores only
    result = sim.run(samples)
    return result.t_ms / 1000.0, result.scores.astype(np.int64)


def detector_onsets(scores: np.ndarray, detect: list[int], smoothing: int, threshold_q15: int,
                    release_q15: int) -> list[list[int]]:
    """Per detect class, the hops where the device's `det=` turns to it (detection.c's
    detector, replayed by simulate.reference_detector: equal to the C, tested there)."""
    from .simulate import reference_detector

    flags = [c in detect for c in range(scores.shape[1])]
    det, _, _ = reference_detector(scores, smoothing, threshold_q15, release_q15, flags)
    prev = np.concatenate([[-1], det[:-1]])
    return [np.flatnonzero((det == c) & (prev != c)).tolist() for c in detect]


# --------------------------------------------------------------------- scoring

def _garwood(k: int, hours: float) -> tuple[float, float]:
    from scipy.stats import chi2
    lo = 0.0 if k == 0 else chi2.ppf(0.025, 2 * k) / 2
    hi = chi2.ppf(0.975, 2 * k + 2) / 2
    return lo / hours, hi / hours


def score_events(stream: Stream, times: np.ndarray, onsets: list[list[int]], detect: list[int],
                 tolerance: float, debounce: float) -> dict:
    """Detection rate, false alarms per hour (95% interval) and latency of one detector run."""
    merged = []
    for cls, hops in zip(detect, onsets):
        last = -math.inf
        for h in hops:
            t = float(times[h])
            if t - last >= debounce:
                merged.append((t, cls))
            last = t
    merged.sort()
    events = sorted(stream.events, key=lambda e: e.start)
    matched = [None] * len(events)
    false = 0
    for t, cls in merged:
        hit = next((i for i, e in enumerate(events) if e.label == cls and matched[i] is None
                    and e.start <= t <= e.end + tolerance), None)
        if hit is not None:
            matched[hit] = t - events[hit].start
            continue
        excused = any(e.start <= t <= e.end + tolerance for e in events)
        if not excused:
            false += 1
    hours = stream.seconds / 3600
    latencies = [m for m in matched if m is not None]
    lo, hi = _garwood(false, hours)
    return {"events": len(events), "detected": len(latencies),
            "detection_rate": len(latencies) / len(events) if events else None,
            "false_alarms": false, "hours": hours, "false_alarms_per_hour": false / hours,
            "false_alarms_per_hour_95": [lo, hi],
            "latency_median_s": float(np.median(latencies)) if latencies else None,
            "latency_p95_s": float(np.percentile(latencies, 95)) if latencies else None}


def run_detector(stream: Stream, times: np.ndarray, scores: np.ndarray, detect: list[int],
                 smoothing: int, threshold: float, hysteresis: float, settings) -> dict:
    from .firmware.common import q15
    onsets = detector_onsets(scores, detect, smoothing, q15(threshold), q15(threshold - hysteresis))
    return score_events(stream, times, onsets, detect, settings.tolerance_seconds,
                        settings.debounce_seconds)


# ------------------------------------------------------------------- the stage

def _split_stream(project: Project, index: dict, split: str, seed_offset: int) -> Stream:
    from .dataset import load_split
    clips, labels = load_split(project, index, split)
    return make_stream(project, clips, labels, project.spec.evaluation.streaming, seed_offset)


def _sweep(stream: Stream, times, scores, project: Project) -> list[dict]:
    spec = project.spec
    st = spec.evaluation.streaming
    detect = [spec.classes.index(c) for c in spec.detect_classes]
    rows = []
    for smoothing in sorted(set(st.smoothing) | {spec.detection.smoothing}):
        for t in THRESHOLDS:
            if t <= spec.detection.hysteresis:
                continue
            r = run_detector(stream, times, scores, detect, smoothing, t, spec.detection.hysteresis, st)
            rows.append({"threshold": t, "smoothing": smoothing, **r})
    return rows


def evaluate_streaming(project: Project, index: dict, build_dir) -> dict:
    """The streaming evaluation of a built model (see the module docstring), JSON-able."""
    spec = project.spec
    det = spec.detection
    result: dict = {"classes": list(spec.classes), "detect_classes": spec.detect_classes,
                    "minutes": spec.evaluation.streaming.minutes, "hysteresis": det.hysteresis,
                    "smoothing": det.smoothing, "auto": det.threshold == "auto"}
    if det.threshold == "auto":
        stream = _split_stream(project, index, "validation", 1)
        times, scores = hop_scores(project, build_dir, stream.samples)
        rows = [r for r in _sweep(stream, times, scores, project) if r["smoothing"] == det.smoothing]
        ok = [r for r in rows if r["false_alarms_per_hour"] <= det.false_alarms_per_hour]
        chosen = min(ok, key=lambda r: r["threshold"]) if ok else max(rows, key=lambda r: r["threshold"])
        result.update(threshold=chosen["threshold"], target_false_alarms_per_hour=det.false_alarms_per_hour,
                      target_met=bool(ok), validation={"events": len(stream.events), "sweep": rows,
                                                       "chosen": chosen})
    else:
        result["threshold"] = det.threshold
    stream = _split_stream(project, index, "test", 0)
    times, scores = hop_scores(project, build_dir, stream.samples)
    rows = _sweep(stream, times, scores, project)
    result["test"] = {"events": len(stream.events), "hops": int(len(times)), "sweep": rows,
                      "at_threshold": next(r for r in rows if r["smoothing"] == det.smoothing
                                           and abs(r["threshold"] - result["threshold"]) < 1e-9)
                      if result["threshold"] in THRESHOLDS else
                      {"threshold": result["threshold"], "smoothing": det.smoothing,
                       **run_detector(stream, times, scores,
                                      [spec.classes.index(c) for c in spec.detect_classes],
                                      det.smoothing, result["threshold"], det.hysteresis,
                                      spec.evaluation.streaming)}}
    return result


def _pct(v) -> str:
    return "n/a" if v is None else f"{100 * v:.1f}%"


def _line(r: dict) -> str:
    lo, hi = r["false_alarms_per_hour_95"]
    lat = ("n/a" if r["latency_median_s"] is None else
           f"{1000 * r['latency_median_s']:.0f} ms (p95 {1000 * r['latency_p95_s']:.0f} ms)")
    return (f"detection rate {_pct(r['detection_rate'])} ({r['detected']}/{r['events']}), "
            f"false alarms {r['false_alarms_per_hour']:.2f}/h (95% {lo:.2f}-{hi:.2f}, "
            f"{r['false_alarms']} in {r['hours']:.2f} h), onset latency median {lat}")


def format_streaming(d: dict) -> str:
    """A human summary: the chosen threshold, the test stream's figures, the trade-off curve."""
    lines = []
    if d["auto"]:
        v = d["validation"]["chosen"]
        lines.append(f"threshold auto: {d['threshold']:g}, the lowest with at most "
                     f"{d['target_false_alarms_per_hour']:g} false alarms/h on the validation "
                     f"stream ({v['false_alarms_per_hour']:.2f}/h there)"
                     + ("" if d["target_met"] else "; NOT MET by any threshold: the highest is used"))
    t = d["test"]["at_threshold"]
    lines.append(f"test stream ({d['minutes']:g} min, {d['test']['events']} events, threshold "
                 f"{t['threshold']:g}, smoothing {t['smoothing']}): " + _line(t))
    lines.append("  threshold sweep (smoothing " + str(d["smoothing"]) + "): " + ", ".join(
        f"{r['threshold']:g}: {_pct(r['detection_rate'])} / {r['false_alarms_per_hour']:.1f} FA/h"
        for r in d["test"]["sweep"] if r["smoothing"] == d["smoothing"]))
    return "\n".join(lines)


def write_streaming(project: Project, index: dict, out_json) -> dict:
    """Evaluate the model built in the build folder holding `out_json` (analysis/streaming.json)."""
    from pathlib import Path

    from .fileio import write_json
    result = evaluate_streaming(project, index, Path(out_json).parents[2])
    write_json(out_json, result)
    return result
