"""The package's import graph: no cycles, firmware never imports the validator, and each
build stage depends on exactly the code it runs (derived, not hand-listed)."""

from __future__ import annotations

from pathlib import Path

from generator import depgraph, pipeline

FIRMWARE = ["generator.firmware.common", "generator.firmware.rp2040", "generator.firmware.imxrt",
            "generator.targets", "generator.variant", "generator.tflm_ops"]


def _package(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "pkg"
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (root / "__init__.py").touch()
    return root


def test_generator_has_no_import_cycle():
    assert depgraph.find_cycle(depgraph.module_graph()) is None


def test_a_cycle_is_found_with_its_path(tmp_path):
    root = _package(tmp_path, {"a.py": "from .b import x\n", "b.py": "def f():\n    from . import c\n",
                               "c.py": "import pkg.a\n", "d.py": "from .a import y\n"})
    graph = depgraph.module_graph(root)
    assert graph["pkg.b"] == {"pkg.c"}  # a function-level import counts
    assert depgraph.find_cycle(graph) == ["pkg.a", "pkg.b", "pkg.c", "pkg.a"]


def test_firmware_never_imports_the_validator():
    reached = depgraph.closure(depgraph.module_graph(), FIRMWARE)
    assert "generator.checks" not in reached
    assert "generator.pipeline" not in reached


def test_the_firmware_check_fails_when_firmware_imports_checks(tmp_path):
    root = _package(tmp_path, {"checks.py": "", "firmware/rp2040.py": "from ..checks import x\n"})
    assert "pkg.checks" in depgraph.closure(depgraph.module_graph(root), ["pkg.firmware.rp2040"])


def _names(stage: str) -> set[str]:
    return {str(p.relative_to(pipeline.REPO / "generator")) for p in pipeline.stage_modules(stage)}


def test_stage_modules_are_what_each_stage_runs():
    assert {"dataset.py", "audio.py", "synthetic.py"} <= _names("index")
    assert {"featurestage.py", "augment.py", "features.py", "dataset.py"} <= _names("features")
    assert {"train.py", "zoo.py"} <= _names("model")
    assert "train.py" in _names("tflite")  # convert reads the features through train
    assert {"analyze.py", "checks.py", "tflm_ops.py", "variant.py",
            "firmware/rp2040.py", "firmware/imxrt.py"} <= _names("analysis")
    assert {"evaluate.py", "convert.py"} <= _names("evaluation")
    assert {"targets.py", "firmware/common.py", "firmware/rp2040.py", "firmware/imxrt.py",
            "render.py", "model_c.py", "flexram.py", "cmsis.py", "uf2.py"} <= _names("firmware")
    assert "train.py" not in _names("firmware") and "zoo.py" not in _names("index")
    assert "pipeline.py" not in _names("report")


def test_every_action_is_a_stage():
    assert set(pipeline.action_imports()) == set(pipeline.STAGE_SECTIONS)
