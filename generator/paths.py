"""Where each stage's artifacts live: build/<project>/<stage>/...

One place names every artifact path, so the SCons graph, the stages and the
tests agree on them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TEMPLATES = REPO / "templates"


def template_names(tree: str, root: Path = TEMPLATES) -> list[str]:
    """Output paths (relative) of the templates under templates/<tree>/, sorted."""
    base = root / tree
    if not base.is_dir():
        return []
    return sorted(str(p.relative_to(base))[:-3] for p in base.rglob("*.j2"))


@dataclass(frozen=True)
class Artifacts:
    root: Path  # build/<project>

    @classmethod
    def for_project(cls, name: str, build_dir: Path | None = None) -> "Artifacts":
        return cls((build_dir or REPO / "build") / name)

    # stage: dataset index
    @property
    def dataset_index(self) -> Path:
        return self.root / "dataset" / "index.json"

    # stage: features (int8 model inputs for every split, plus labels)
    @property
    def features(self) -> Path:
        return self.root / "features" / "features.npz"

    # stage: model (trained Keras model and its training history)
    @property
    def keras_model(self) -> Path:
        return self.root / "model" / "model.keras"

    @property
    def history(self) -> Path:
        return self.root / "model" / "history.json"

    # stage: tflite (int8 flatbuffer)
    @property
    def tflite(self) -> Path:
        return self.root / "tflite" / "model.tflite"

    # stage: analysis (ops, MACs, measured arena) and evaluation (float/int8/TFLM)
    @property
    def analysis(self) -> Path:
        return self.root / "analysis" / "analysis.json"

    @property
    def evaluation(self) -> Path:
        return self.root / "analysis" / "evaluation.json"

    # stage: folds (one model per fold of whole recordings, its held-out clips scored with
    # TFLM), then crossval (the folds' figures at the detection threshold)
    @property
    def crossval_folds(self) -> Path:
        return self.root / "analysis" / "crossval_folds.npz"

    @property
    def crossval(self) -> Path:
        return self.root / "analysis" / "crossval.json"

    # stage: streaming (the deployed detector on long streams; threshold calibration)
    @property
    def streaming(self) -> Path:
        return self.root / "analysis" / "streaming.json"

    # stage: firmware, one folder per variant
    def firmware(self, variant: str) -> Path:
        return self.root / "firmware" / variant

    def capture_firmware(self, variant: str) -> Path:
        """The variant's capture project (streams the microphone for `micforge capture`)."""
        return self.root / "firmware" / f"{variant}-capture"

    @property
    def report(self) -> Path:
        return self.root / "report.md"
