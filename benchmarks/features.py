"""Feature throughput: 1 s clips per second through generator.features.compute_batch
(target >= 200 clips/s on the 2-core machine), for both kinds, in one process and
in a pool of --workers processes; and the C front end (host build) for comparison.

    python benchmarks/features.py [--clips 600] [--workers 2] [--levels]

Clips are the fire_alarm recordings in ../shared/data when present, else seeded
noise and tones. --levels prints the band-level percentiles (dB re full scale)
of alarm and background clips, the figures behind the default floor_db/ceiling_db.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from generator import features as F  # noqa: E402
from generator.spec import ProjectSpec, load_spec  # noqa: E402

DATA = REPO.parent / "shared" / "data" / "fire_alarm"


def project(kind: str):
    p = load_spec(REPO / "projects" / "fire_alarm.yaml")
    data = p.spec.model_dump(mode="json")
    data["features"]["kind"] = kind
    return dataclasses.replace(p, spec=ProjectSpec.model_validate(data))


def clips(n: int, fe: F.FrontEnd, label: str = "*") -> tuple[np.ndarray, str]:
    files = sorted(DATA.glob(f"{label}/*.wav")) if DATA.is_dir() else []
    if files:
        import soundfile as sf
        rows = [sf.read(f, dtype="int16")[0][:fe.clip_samples] for f in files]
        rows = (rows * (n // len(rows) + 1))[:n]
        return np.stack(rows), f"fire_alarm recordings ({len(files)} files)"
    rng = np.random.default_rng(0)
    t = np.arange(fe.clip_samples) / fe.sample_rate
    x = rng.normal(0, 2000, (n, fe.clip_samples)) + 8000 * np.sin(2 * np.pi * 3000 * t)
    return np.clip(x, -32768, 32767).astype(np.int16), "synthetic noise and tones"


def _work(args) -> int:
    kind, chunk = args
    return len(F.compute_batch(F.design(project(kind).spec), chunk))


def rate(kind: str, x: np.ndarray, workers: int) -> float:
    fe = F.design(project(kind).spec)
    F.compute_batch(fe, x[:4])  # warm up tables and the FFT instance
    if workers <= 1:
        t0 = time.perf_counter()
        F.compute_batch(fe, x)
        return len(x) / (time.perf_counter() - t0)
    with ProcessPoolExecutor(workers) as pool:
        list(pool.map(_work, [(kind, x[:4])] * workers))  # start and warm the workers
        t0 = time.perf_counter()
        done = sum(pool.map(_work, [(kind, c) for c in np.array_split(x, workers * 4)]))
        return done / (time.perf_counter() - t0)


def c_rate(kind: str, x: np.ndarray) -> float:
    from generator import hostc
    host = hostc.host_front_end(project(kind))
    t0 = time.perf_counter()
    host.clips(x)
    return len(x) / (time.perf_counter() - t0)


def levels(n: int) -> None:
    fe = F.design(project("log_mel").spec)
    ref = F._full_scale_level(fe.window, fe.fft_size, fe.kind)
    for label in ("alarm", "background"):
        x, _ = clips(n, fe, label)
        idx = np.arange(fe.num_frames)[:, None] * fe.frame_step + np.arange(fe.frame_length)
        lv = F.batch_levels(fe, x[:, idx].reshape(-1, fe.frame_length))
        db = (lv[lv > 0] / (1 << fe.log_frac_bits) - ref) * F.DB_PER_OCTAVE
        pct = np.percentile(db, [0.5, 5, 50, 95, 100])
        q = F.compute_batch(fe, x)
        print(f"{label:10s} dB re full scale: p0.5 {pct[0]:.0f}, p5 {pct[1]:.0f}, median "
              f"{pct[2]:.0f}, p95 {pct[3]:.0f}, max {pct[4]:.0f}; energy 0: {np.mean(lv == 0):.1%}; "
              f"int8 at -128: {np.mean(q == -128):.1%}, at 127: {np.mean(q == 127):.2%}")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clips", type=int, default=600)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--levels", action="store_true")
    args = ap.parse_args()
    if args.levels:
        levels(args.clips)
    x, source = clips(args.clips, F.design(project("log_mel").spec))
    print(f"{len(x)} clips of 1 s from {source}")
    for kind in ("log_mel", "spectrogram"):
        one = rate(kind, x, 1)
        pool = rate(kind, x, args.workers)
        print(f"{kind:12s} python: {one:6.0f} clips/s (1 process), {pool:6.0f} clips/s "
              f"({args.workers} processes); C host build: {c_rate(kind, x):6.0f} clips/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
