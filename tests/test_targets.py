"""Rendered firmware trees of both families against golden files, the shared parts once.

Each example variant is rendered (targets.render_target) from a tiny fixed-weight int8 model
(conftest.tiny_model, bytes independent of training) and a fixed analysis. The outputs of
templates/common/ are the same for every variant of a spec but for the inputs-hash line, so
they are stored once per spec (tests/golden/firmware/<spec>/common/) and every variant is
compared with them; the family's own files are stored per variant
(tests/golden/firmware/<spec>/<variant>/). Hash lines are masked: a hash changes with any
input, and test_render_is_deterministic checks the hashes themselves.
MICFORGE_UPDATE_GOLDEN=1 refreshes the files deliberately.
"""

from __future__ import annotations

import re

import pytest

from generator.boards import load_board
from generator.features import design
from generator.paths import template_names
from generator.spec import load_spec
from generator.targets import FAMILIES, output_files, render_target

from conftest import REPO, assert_golden, tiny_model

GOLDEN = REPO / "tests" / "golden" / "firmware"
EXAMPLES = [("fire_alarm", "pico"), ("fire_alarm", "micromod"), ("fire_alarm", "teensy"),
            ("fire_alarm", "evkb"), ("keywords", "pico"), ("keywords", "evkb"), ("demo", "pico"),
            ("demo", "teensy")]
ANALYSIS = {"arena": {"measured_bytes": 4321}, "model_bytes": 0, "macs": 60000,
            "input": {"dtype": "int8", "shape": [1, 31, 32, 1]},
            "resolver": ["AddConv2D", "AddFullyConnected", "AddMaxPool2D", "AddReshape", "AddSoftmax"]}
HASH = re.compile(r"([Ii]nputs hash:? )[0-9a-f]{16}")


def _masked(text: str) -> str:
    return HASH.sub(r"\1<hash>", text)


def _render(spec: str, variant: str, out):
    project = load_spec(REPO / "projects" / f"{spec}.yaml")
    target = next(t for t in project.spec.targets if t.name == variant)
    board = load_board(target.board)
    fe = design(project.spec)
    blob = tiny_model(fe.num_frames, fe.num_bins, len(project.spec.classes))
    analysis = dict(ANALYSIS, model_bytes=len(blob),
                    input={"dtype": "int8", "shape": [1, fe.num_frames, fe.num_bins, 1]})
    calibration = {"threshold": 0.7} if project.spec.detection.threshold == "auto" else None
    files = render_target(project, target, board, analysis, blob, out, calibration)
    return project, target, board, files


@pytest.mark.slow
@pytest.mark.parametrize("spec,variant", EXAMPLES)
def test_rendered_tree_matches_golden(tmp_path, spec, variant):
    project, target, board, files = _render(spec, variant, tmp_path)
    names = sorted(str(f.relative_to(tmp_path)) for f in files)
    assert names == output_files(project, target, board)
    common = set(template_names("common"))
    for name in names:
        where = "common" if name in common else variant
        assert_golden(GOLDEN / spec / where / name, _masked((tmp_path / name).read_text()))
    assert all(HASH.search((tmp_path / n).read_text()) for n in names
               if n.endswith((".c", ".h", ".cpp", ".txt")) and n != "model_data.cc")


@pytest.mark.slow
def test_render_is_deterministic_and_writes_nothing_the_second_time(tmp_path):
    _, _, _, files = _render("fire_alarm", "teensy", tmp_path)
    before = {f: (f.read_bytes(), f.stat().st_mtime_ns) for f in files}
    _render("fire_alarm", "teensy", tmp_path)
    assert before == {f: (f.read_bytes(), f.stat().st_mtime_ns) for f in files}


def test_no_template_includes_another_familys():
    for family in FAMILIES.values():
        for path in (REPO / "templates" / family.templates).rglob("*.j2"):
            text = path.read_text()
            for other in FAMILIES.values():
                if other is not family:
                    assert f'"{other.templates}/' not in text, f"{path} includes {other.templates}"
