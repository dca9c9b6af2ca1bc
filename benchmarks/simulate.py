"""`micforge simulate` throughput: seconds of audio simulated per second (x real time), one core.

    python benchmarks/simulate.py [--spec projects/fire_alarm.yaml] [--variant pico]
                                  [--minutes 10] [--repeat 3] [--build-dir DIR]

Needs the spec's built model (micforge build SPEC). The stream is the fire_alarm
recordings of ../shared/data concatenated in a seeded order (alarm and background
mixed) until --minutes, or seeded noise with 3 kHz beeps when that folder is absent.
Times `Simulator.run` (front end in C, TFLM Invoke per hop, score conversion and
detector in C) on the whole stream, best of --repeat, after one warm-up run; then
the three stages separately, for where the time goes. Loading (render, compile,
model) is reported apart: it is paid once per process. The target is >= 100x.
Pin it to one core with `taskset -c 0 python benchmarks/simulate.py`.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from generator import simulate as S  # noqa: E402
from generator.audio import decode  # noqa: E402
from generator.spec import load_spec  # noqa: E402

DATA = REPO.parent / "shared" / "data" / "fire_alarm"


def stream(sample_rate: int, seconds: float) -> tuple[np.ndarray, str]:
    n = int(seconds * sample_rate)
    files = sorted(DATA.glob("*/*.wav")) if DATA.is_dir() else []
    if files:
        rng = np.random.default_rng(0)
        clips = [decode(f.read_bytes(), sample_rate).samples for f in files]
        parts, total = [], 0
        while total < n:
            for i in rng.permutation(len(clips)):
                parts.append(clips[i])
                total += len(clips[i])
                if total >= n:
                    break
        return np.concatenate(parts)[:n], f"fire_alarm recordings ({len(files)} files, shuffled)"
    rng = np.random.default_rng(0)
    t = np.arange(n) / sample_rate
    beeps = 8000 * np.sin(2 * np.pi * 3000 * t) * ((t % 4) < 1)
    x = rng.normal(0, 1500, n) + beeps
    return np.clip(x, -32768, 32767).astype(np.int16), "synthetic noise and 3 kHz beeps"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--spec", default=str(REPO / "projects" / "fire_alarm.yaml"))
    ap.add_argument("--variant", default="pico")
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--build-dir")
    args = ap.parse_args(argv)

    project = load_spec(args.spec)
    t0 = time.perf_counter()
    try:
        sim = S.load(project, args.variant, Path(args.build_dir) if args.build_dir else None)
    except S.SimulateError as exc:
        print(exc, file=sys.stderr)
        return 2
    load_s = time.perf_counter() - t0
    samples, what = stream(sim.sample_rate, 60 * args.minutes)
    seconds = len(samples) / sim.sample_rate
    print(f"{project.name}/{args.variant}: {seconds / 60:.1f} min of {what}; hop "
          f"{sim.hop_samples} samples; CMSIS-DSP {sim.cmsis}; load {load_s:.2f} s "
          f"(render, compile or cache, model)")

    sim.run(samples[:sim.sample_rate * 5])  # warm-up
    best, result = float("inf"), None
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        result = sim.run(samples)
        best = min(best, time.perf_counter() - t0)
    print(f"Simulator.run: {len(result)} hops in {best:.3f} s = {1e6 * best / len(result):.1f} "
          f"us/hop, {seconds / best:.0f}x real time (best of {args.repeat})")
    dets = int(np.count_nonzero(np.diff(np.concatenate([[-1], result.det])) != 0))
    print(f"  detector changes: {dets}; hops with a detection: {int((result.det >= 0).sum())}")

    # Where the time goes: the same stages, timed one by one.
    from generator.evaluate import run_tflm
    core = sim.core
    core.reset()
    t0 = time.perf_counter()
    maps, _ = core.push(samples)
    t1 = time.perf_counter()
    raw = run_tflm(sim.tflite, maps)
    t2 = time.perf_counter()
    scores = core.scores(raw, sim.zero_point, sim.scale_q31, sim.shift)
    core.detector_reset()
    core.detect(scores)
    t3 = time.perf_counter()
    n = len(maps)
    for name, dt in (("front end (C)", t1 - t0), ("TFLM Invoke (Python runtime)", t2 - t1),
                     ("scores + detector (C)", t3 - t2)):
        print(f"  {name:30s} {dt:7.3f} s  {1e6 * dt / n:6.1f} us/hop")
    return 0


if __name__ == "__main__":
    sys.exit(main())
