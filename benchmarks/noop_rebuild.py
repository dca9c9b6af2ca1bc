"""Time a no-op `scons` over every example project and variant (target < 1 s),
and show that reading the build graph imports no TensorFlow.

    python benchmarks/noop_rebuild.py [--runs 5]

The first run builds whatever is out of date (it may train models: minutes);
the timed runs after it must find everything up to date.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def scons(*extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *extra, "-m", "SCons", "-C", str(REPO), "-Q"],
                          capture_output=True, text=True)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    first = scons()
    if first.returncode != 0:
        print(first.stdout[-2000:], first.stderr[-2000:], sep="\n")
        return 1
    times = []
    for _ in range(args.runs):
        t0 = time.perf_counter()
        proc = scons()
        times.append(time.perf_counter() - t0)
        if proc.returncode != 0 or "[" in proc.stdout:
            print("not a no-op: something rebuilt\n" + proc.stdout[-2000:])
            return 1
    imports = scons("-X", "importtime").stderr
    tf = [line for line in imports.splitlines() if "tensorflow" in line or "keras" in line]
    specs = sorted((REPO / "projects").glob("*.yaml"))
    print(f"no-op scons over {len(specs)} projects: median {statistics.median(times):.3f} s, "
          f"min {min(times):.3f} s, max {max(times):.3f} s ({args.runs} runs; target < 1 s)")
    print(f"tensorflow/keras modules imported while reading the graph: {len(tf)}")
    return 0 if not tf else 1


if __name__ == "__main__":
    sys.exit(main())
