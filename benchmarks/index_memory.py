"""Peak memory and time of indexing one long recording (generator.dataset.build_index).

    python benchmarks/index_memory.py [--minutes 60] [--rate 44100] [--channels 2] [--keep DIR]

Writes, in a temporary folder (--keep: in DIR), a WAV of --minutes of seeded noise and tones
at --rate with --channels channels (16-bit PCM, written block by block, never held in memory)
into class folder `recording/`, and five 1 s 16 kHz clips into `clip/`; then indexes that dataset
with the default spec audio (16 kHz, 1 s windows) in a child process and prints the child's
peak RSS (resource.getrusage ru_maxrss, so the figure is the indexing's own and not this
script's), its RSS after imports (the floor), the indexing's wall time and the windows indexed.
The WAV is 16 bit: 60 min at 44.1 kHz stereo is 635 MB.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent

SPEC = """name: index_memory
classes: [recording, clip]
dataset:
  root: data
  split: {validation: 0, test: 0}
model: {architecture: compact_cnn}
targets:
  - {name: pico, board: rpi_pico}
"""


def write_long_wav(path: Path, minutes: float, rate: int, channels: int) -> int:
    """Seeded noise plus a tone whose frequency steps every second, written 10 s at a time."""
    import soundfile as sf

    total = int(round(minutes * 60 * rate))
    rng = np.random.default_rng(0)
    block = 10 * rate
    with sf.SoundFile(path, "w", rate, channels, "PCM_16", format="WAV") as f:
        for start in range(0, total, block):
            n = min(block, total - start)
            t = (start + np.arange(n)) / rate
            tone = 0.2 * np.sin(2 * np.pi * (300 + 100 * (np.floor(t) % 20)) * t)
            x = tone[:, None] + 0.05 * rng.standard_normal((n, channels))
            f.write(np.clip(x, -1, 1))
    return total


def write_short_clips(folder: Path, n: int = 5) -> None:
    import soundfile as sf

    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        x = 0.1 * np.random.default_rng(100 + i).uniform(-1, 1, 16000)
        sf.write(folder / f"short_{i}.wav", x, 16000, subtype="PCM_16")


def child(spec: Path) -> int:
    """Runs in the child: index, then print one JSON line of figures."""
    sys.path.insert(0, str(REPO))
    from generator import dataset
    from generator.spec import load_spec

    project = load_spec(spec)
    floor_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    index = dataset.build_index(project)
    seconds = time.perf_counter() - t0
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    summary = index["summary"]
    print(json.dumps({"peak_kb": peak_kb, "floor_kb": floor_kb, "seconds": seconds,
                      "clips": summary["clips"], "converted": summary["converted"]}))
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=60.0)
    ap.add_argument("--rate", type=int, default=44100)
    ap.add_argument("--channels", type=int, default=2)
    ap.add_argument("--keep", type=Path, help="folder for the dataset (kept), else a temp folder")
    ap.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args.child)
    with tempfile.TemporaryDirectory(prefix="micforge-index-memory-") as tmp:
        base = args.keep or Path(tmp)
        data = base / "data"
        (data / "recording").mkdir(parents=True, exist_ok=True)
        wav = data / "recording" / "long.wav"
        t0 = time.perf_counter()
        frames = write_long_wav(wav, args.minutes, args.rate, args.channels)
        written = time.perf_counter() - t0
        write_short_clips(data / "clip")
        spec = base / "spec.yaml"
        spec.write_text(SPEC)
        proc = subprocess.run([sys.executable, __file__, "--child", str(spec)],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            print(proc.stdout[-2000:], proc.stderr[-4000:], sep="\n")
            return 1
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        size = wav.stat().st_size
        print(f"WAV: {args.minutes:g} min, {args.rate} Hz, {args.channels} ch, 16 bit: "
              f"{frames:,} frames, {size / 2**20:,.0f} MiB (written in {written:.1f} s)")
        print(f"indexed: {r['clips']['recording']['train']} windows of long.wav + "
              f"{r['clips']['clip']['train']} short clips; converted: {r['converted']}")
        print(f"peak RSS {r['peak_kb'] / 1024:,.0f} MiB (after imports {r['floor_kb'] / 1024:,.0f} "
              f"MiB; the file is {size / 2**20:,.0f} MiB); indexing time {r['seconds']:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
