"""`micforge diff`: two build folders rendered from a real spec and the tiny fixed model.

Each build holds what the diff reads: analysis/analysis.json and the firmware of fire_alarm's
pico variant (and its capture project) and teensy variant, rendered with targets.render_target
from conftest.tiny_model, as the golden firmware tests do; no training.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess

import pytest

from generator import diff
from generator.boards import load_board
from generator.features import design
from generator.fileio import write_json
from generator.spec import load_spec
from generator.targets import render_capture, render_target

from conftest import REPO, tiny_model

SPEC = REPO / "projects" / "fire_alarm.yaml"
VARIANTS = ("pico", "teensy")
OPS = [{"op": "CONV_2D", "resolver": "AddConv2D", "version": 3, "count": 1},
       {"op": "FULLY_CONNECTED", "resolver": "AddFullyConnected", "version": 4, "count": 1},
       {"op": "MAX_POOL_2D", "resolver": "AddMaxPool2D", "version": 2, "count": 1},
       {"op": "RESHAPE", "resolver": "AddReshape", "version": 1, "count": 1},
       {"op": "SOFTMAX", "resolver": "AddSoftmax", "version": 2, "count": 1}]


def write_spec(folder, threshold="0.8", pico_led=None, epochs=60):
    """fire_alarm.yaml in `folder` (the spec's file name is in every generated header)."""
    text = re.sub(r"^  threshold: \S+", f"  threshold: {threshold}", SPEC.read_text(), count=1,
                  flags=re.M)
    text = text.replace("epochs: 60", f"epochs: {epochs}")
    text = text.replace("root: ../../shared/data/fire_alarm", "root: data")
    if pico_led is not None:
        text = text.replace("{name: pico, board: rpi_pico}",
                            f"{{name: pico, board: rpi_pico, led_pin: {pico_led}}}")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / SPEC.name).write_text(text)
    return folder / SPEC.name


def build(root, spec_path):
    """A build folder <root>/fire_alarm/ as the pipeline lays it out (the parts diff reads)."""
    project = load_spec(spec_path, spec_path.name)
    fe = design(project.spec)
    blob = tiny_model(fe.num_frames, fe.num_bins, len(project.spec.classes))
    analysis = {"arena": {"measured_bytes": 4321, "margin": 512}, "model_bytes": len(blob),
                "macs": 60000, "params": 1000, "ops": OPS,
                "resolver": sorted(o["resolver"] for o in OPS),
                "input": {"dtype": "int8", "shape": [1, fe.num_frames, fe.num_bins, 1]}}
    out = root / project.name
    write_json(out / "analysis" / "analysis.json", analysis)
    for target in project.spec.targets:
        if target.name in VARIANTS:
            board = load_board(target.board)
            render_target(project, target, board, analysis, blob, out / "firmware" / target.name)
            if target.name == "pico":
                render_capture(project, target, board, out / "firmware" / "pico-capture")
    return out


def run(*argv):
    parser = argparse.ArgumentParser()
    diff.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["diff", *map(str, argv)])
    return args.func(args)


@pytest.fixture(scope="module")
def builds(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("diff")
    old_spec = write_spec(tmp / "spec_old")
    new_spec = write_spec(tmp / "spec_new", threshold="0.7", pico_led=15)
    return tmp, old_spec, new_spec, build(tmp / "old", old_spec), build(tmp / "new", new_spec)


def test_threshold_and_led_pin_change(builds, capsys):
    tmp, old_spec, new_spec, old, new = builds
    assert run(old, new, "--old-spec", old_spec, "--spec", new_spec) == diff.CHANGED
    md = capsys.readouterr().out
    assert "**Firmware changed** (exit status 1): fire_alarm: pico, pico-capture, teensy." in md
    # the changed constants, old -> new, each once per firmware that has it
    assert ("| config.h | MF_THRESHOLD_Q15 | `(26214) /* threshold 0.8 */` | "
            "`(22938) /* threshold 0.7 */` |") in md
    assert "| config.h | MF_RELEASE_Q15 | `(22938) /* threshold - hysteresis 0.1 */` | " in md
    assert "| mf_board.c | LED_PIN | `(25U)` | `(15U)` |" in md
    assert "| capture_main.c | LED_PIN | `(25U)` | `(15U)` |" in md  # the capture firmware's LED
    assert md.count("| LED_PIN |") == 2  # the teensy's LED is a pad: no pin constant
    # the hunks, with the hash lines masked
    assert "--- old/pico/config.h\n+++ new/pico/config.h\n" in md
    assert "-#define MF_THRESHOLD_Q15       (26214)  /* threshold 0.8 */\n" in md
    assert "+#define MF_THRESHOLD_Q15       (22938)  /* threshold 0.7 */\n" in md
    assert "-#define LED_PIN (25U)\n+#define LED_PIN (15U)\n" in md
    assert "--- old/pico-capture/" in md  # the capture firmware lights the LED too
    assert not any(line[:1] in "+-" and "Inputs hash" in line for line in md.splitlines())
    # the estimates come from the build's estimators, and each spec reproduces its build
    assert "| RAM, estimated: tensor arena, firmware .data/.bss, heap, stacks, PDM DMA ring" in md
    assert "| hop budget, estimated (us) |" in md
    assert "| DTCM, estimated:" in md
    assert "does not reproduce" not in md
    assert "| op CONV_2D (AddConv2D) | v3 x1 | v3 x1 |  |" in md
    assert "### pico-capture: firmware changed\n\nFiles: changed: `capture_main.c`;" in md


def test_identical_builds_exit_0(builds, capsys):
    tmp, old_spec, _, old, _ = builds
    assert run(old, old, "--spec", old_spec) == diff.SAME
    md = capsys.readouterr().out
    assert "**No firmware change** (exit status 0)" in md
    assert "### pico: no firmware change" in md and "```diff" not in md


def test_hash_only_differences_are_no_firmware_change(builds, tmp_path, capsys):
    """A spec edit the firmware does not read (training epochs) changes every file's inputs
    hash and nothing else."""
    _, old_spec, _, old, _ = builds
    spec = write_spec(tmp_path / "spec", epochs=30)
    new = build(tmp_path / "b", spec)
    assert run(old, new, "--old-spec", old_spec, "--spec", spec) == diff.SAME
    md = capsys.readouterr().out
    assert "**No firmware change**" in md
    hashes = [line for line in md.splitlines() if "differ in their inputs-hash line alone" in line]
    assert hashes and "(config.h: " in hashes[0]


def test_build_roots_and_a_project_against_a_root(builds, capsys):
    tmp, old_spec, new_spec, old, new = builds
    assert run(tmp / "old", tmp / "new", "--old-spec", old_spec, "--spec", new_spec) == 1
    roots = capsys.readouterr().out
    assert "## fire_alarm" in roots and "MF_THRESHOLD_Q15" in roots
    assert run(old, tmp / "new", "--old-spec", old_spec, "--spec", new_spec) == 1
    mixed = capsys.readouterr().out
    assert mixed.split("## fire_alarm")[1] == roots.split("## fire_alarm")[1]


def test_model_array_is_summarised(builds, tmp_path, capsys):
    _, old_spec, _, old, _ = builds
    new = tmp_path / "fire_alarm"
    shutil.copytree(old, new)
    cc = new / "firmware" / "pico" / "model_data.cc"
    cc.write_text(cc.read_text().replace("0x1c, 0x00", "0x1d, 0x00", 1))
    assert run(old, new, "--spec", old_spec) == diff.CHANGED
    md = capsys.readouterr().out
    hunk = md.split("```diff\n")[1].split("```")[0]
    assert "0x1c" not in hunk and "0x1d" not in hunk
    lines = [ln for ln in hunk.splitlines() if ln.startswith(("-    /*", "+    /*"))]
    assert len(lines) == 2 and all(" bytes, sha256 " in ln for ln in lines)


def test_without_a_spec_the_estimates_are_left_out(builds, capsys):
    _, _, _, old, new = builds
    assert run(old, new) == diff.CHANGED
    md = capsys.readouterr().out
    assert "no spec given" in md and "hop budget" not in md
    assert "| DTCM, planned (flexram_plan.json):" in md  # the teensy's plan, as built


def test_rev_takes_the_old_spec_from_git(builds, tmp_path, capsys):
    _, old_spec, new_spec, old, new = builds
    repo = tmp_path / "repo"
    repo.mkdir()
    spec = repo / "fire_alarm.yaml"
    spec.write_text(old_spec.read_text())
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(git[:3] + ["init", "-q"], check=True)
    subprocess.run(git + ["add", "."], check=True)
    subprocess.run(git + ["commit", "-qm", "old"], check=True)
    spec.write_text(new_spec.read_text())
    assert run(old, new, "--rev", "HEAD", "--spec", spec) == diff.CHANGED
    md = capsys.readouterr().out
    assert "(git revision `HEAD`)" in md and "Specs: old `HEAD:" in md
    assert "does not reproduce" not in md
    assert run(old, new, "--rev", "no-such-rev", "--spec", spec) == diff.USAGE
    assert "not a git revision" in capsys.readouterr().err


def test_usage_errors(builds, tmp_path, capsys):
    _, _, _, old, _ = builds
    assert run(old, tmp_path / "missing") == diff.USAGE
    assert "missing: NEW is not a folder" in capsys.readouterr().err
    assert run(tmp_path, tmp_path) == diff.USAGE
    assert "hold no build" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nsampel_rate: 1\n")
    assert run(old, old, "--spec", bad) == diff.USAGE
    assert "bad.yaml:" in capsys.readouterr().err


def test_output_file(builds, tmp_path, capsys):
    _, old_spec, new_spec, old, new = builds
    out = tmp_path / "d.md"
    assert run(old, new, "--old-spec", old_spec, "--spec", new_spec, "-o", out) == 1
    assert capsys.readouterr().out == ""
    assert out.read_text().startswith("# micforge diff\n")


def test_fence_and_masking_helpers():
    assert diff._fence("a ````` b")[0] == "``````"
    text = "// Inputs hash: 0123456789abcdef. Re-run\n<!-- inputs hash 0123456789abcdef -->\n"
    assert "0123456789abcdef" not in diff.comparable("x.h", text.encode())
    assert diff.comparable("x.bin", b"\0\1") is None
    assert json.loads(json.dumps(diff.defines({"a.h": b"#define A (1)\n#define A (2)\n"})
                                 .get(("a.h", "A#2")))) == "(2)"
