"""Full model build time of an example (target < 5 min for fire_alarm on the 2-core machine):
dataset index -> features (augmented, cold feature cache) -> train -> int8 convert ->
analyze (TFLM arena bisection) -> evaluate (float / int8 / TFLM) -> cross-validation (one model
per fold, then their figures, when the spec sets evaluation.cross_validation), with the spec's
real settings.

    python benchmarks/train.py [projects/fire_alarm.yaml] [--warm] [--keep DIR]

Artifacts go to a temporary build folder (--keep: to DIR/<project>/...); --warm
uses the shared feature cache (build/.cache) instead of a fresh one. Prints each stage's seconds, the total,
and the analysis and evaluation summaries.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("spec", nargs="?", default=str(REPO / "projects" / "fire_alarm.yaml"))
    parser.add_argument("--warm", action="store_true", help="use the shared feature cache")
    parser.add_argument("--keep", type=Path, help="build folder to keep the artifacts in")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="micforge-bench-") as tmp:
        if not args.warm:
            os.environ["MICFORGE_CACHE"] = str(Path(tmp) / "cache")
        from generator.analyze import analyze, format_analysis
        from generator.convert import to_tflite
        from generator.dataset import write_index
        from generator.evaluate import evaluate, format_evaluation
        from generator.featurestage import build_features
        from generator.paths import Artifacts
        from generator.spec import load_spec
        from generator.train import train

        project = load_spec(args.spec)
        art = Artifacts.for_project(project.name, args.keep or Path(tmp) / "build")
        times: dict[str, float] = {}
        results: dict[str, dict] = {}

        def stage(name, fn, *a):
            t0 = time.perf_counter()
            results[name] = fn(*a)
            times[name] = time.perf_counter() - t0

        stage("index", write_index, project, art.dataset_index)
        stage("features", build_features, project, results["index"], art.features)
        stage("train", train, project, art.features, art.keras_model, art.history)
        stage("convert", to_tflite, project, art.keras_model, art.features, art.tflite)
        stage("analyze", analyze, project, art.tflite, art.analysis)
        stage("evaluate", evaluate, project, art.keras_model, art.tflite, art.features, art.evaluation)
        if project.spec.evaluation.cross_validation is not None:
            from generator.crossval import format_crossval, score_folds, train_folds
            stage("folds", train_folds, project, results["index"], art.crossval_folds)
            stage("crossval", score_folds, project, art.crossval_folds, art.crossval)
        print()
        print(format_analysis(results["analyze"]))
        print(format_evaluation(results["evaluate"]))
        if "crossval" in results:
            print(format_crossval(results["crossval"]))
        print()
        for name, seconds in times.items():
            print(f"{name:>9}: {seconds:7.1f} s")
        total = sum(times.values())
        print(f"{'total':>9}: {total:7.1f} s ({project.path.name}, target < 300 s for fire_alarm)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
