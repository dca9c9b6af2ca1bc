"""Rendered firmware trees of both families against golden files, each shared part once.

Every example variant below is rendered (targets.render_target), with its capture project
(targets.render_capture, as <variant>-capture), from a tiny fixed-weight
int8 model (conftest.tiny_model, bytes independent of training) and a fixed analysis.
Hash lines are masked (a hash changes with any input; the determinism test checks them).
Each text is stored once (conftest.golden_layout): under all/ when every tree renders it
alike, else where it is shared (<spec>/ or <spec>/<variant>/), whole, or as a unified diff
against the stored text it differs least from; so a change to a shared template shows as one
golden diff, and the golden tree has no near-identical copies. MICFORGE_UPDATE_GOLDEN=1
rewrites the tree.
"""

from __future__ import annotations

import re
import shutil

import pytest

from generator.boards import load_board
from generator.features import design
from generator.spec import load_spec
from generator.targets import (FAMILIES, UF2_SCRIPT, capture_output_files, output_files,
                               render_capture, render_target)

from conftest import REPO, UPDATE_GOLDEN, golden_layout, tiny_model

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


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    out = {}
    for spec, variant in EXAMPLES:
        tmp = tmp_path_factory.mktemp(f"{spec}_{variant}")
        project, target, board, files = _render(spec, variant, tmp)
        names = sorted(str(f.relative_to(tmp)) for f in files)
        assert names == output_files(project, target, board)
        out[(spec, variant)] = _texts(tmp, names)
        cap = tmp_path_factory.mktemp(f"{spec}_{variant}_capture")
        files = render_capture(project, target, board, cap)
        names = sorted(str(f.relative_to(cap)) for f in files)
        assert names == capture_output_files(board)
        out[(spec, f"{variant}-capture")] = _texts(cap, names)
    return out


def _texts(folder, names) -> dict[str, str]:
    """Rendered files, hash lines masked; files copied verbatim from the repository (uf2.py)
    are checked against their source here rather than stored as goldens."""
    out = {}
    for n in names:
        if n == UF2_SCRIPT:
            assert (folder / n).read_bytes() == (REPO / "generator" / UF2_SCRIPT).read_bytes()
            continue
        out[n] = _masked((folder / n).read_text())
    return out


@pytest.mark.slow
def test_rendered_trees_match_golden(rendered):
    layout = golden_layout(rendered)
    if UPDATE_GOLDEN:
        shutil.rmtree(GOLDEN, ignore_errors=True)
        for rel, text in layout.items():
            (GOLDEN / rel).parent.mkdir(parents=True, exist_ok=True)
            (GOLDEN / rel).write_text(text)
        return
    have = {str(p.relative_to(GOLDEN)) for p in GOLDEN.rglob("*") if p.is_file()}
    assert have == set(layout), (f"golden tree layout differs (missing {sorted(set(layout) - have)}, "
                                 f"extra {sorted(have - set(layout))}); MICFORGE_UPDATE_GOLDEN=1 "
                                 f"refreshes it deliberately")
    for rel, text in layout.items():
        assert (GOLDEN / rel).read_text() == text, \
            f"{GOLDEN / rel} differs; MICFORGE_UPDATE_GOLDEN=1 refreshes it deliberately"


def test_layout_stores_shared_text_once():
    long = "".join(f"line {i} of a generated file\n" for i in range(40))
    rendered = {("a", "x"): {"f": "1\n", "g": "s\n", "h": long},
                ("a", "y"): {"f": "1\n", "g": "s\n", "h": long.replace("line 7", "seven")},
                ("b", "x"): {"f": "1\n", "g": "t\n", "h": long}}
    layout = golden_layout(rendered)
    assert layout == {
        "all/f": "1\n", "a/g": "s\n", "b/g": "t\n",  # short texts: whole
        "a/x/h": long, "b/h.diff": "same as a/x/h\n",
        "a/y/h.diff": "--- a/x/h\n+++ a/y/h\n@@ -6,5 +6,5 @@\n line 5 of a generated file\n"
                      " line 6 of a generated file\n-line 7 of a generated file\n"
                      "+seven of a generated file\n line 8 of a generated file\n"
                      " line 9 of a generated file\n"}


@pytest.mark.slow
def test_every_hash_line_is_there_and_rendering_is_deterministic(tmp_path):
    _, _, _, files = _render("fire_alarm", "teensy", tmp_path)
    assert all(HASH.search(f.read_text()) for f in files
               if f.suffix in (".c", ".h", ".cpp", ".txt") and f.name != "model_data.cc")
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
