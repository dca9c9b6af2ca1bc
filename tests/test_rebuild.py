"""End-to-end SCons tests: build, 'up to date', then edit one field and see exactly
the dependent stages re-run (the SCons test/Value habit)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO

pytestmark = pytest.mark.slow

# "[demo] stage[ variant]" (a dry run), or the same, its time and what it did (a build)
STAGE_LINE = re.compile(r"^\[demo\] (\w+)(?: (\w+))?(?: +\d+\.\d s(?:  .*)?)?$", re.M)


def _scons(spec: Path, build: Path, *flags: str) -> tuple[set[str], str]:
    options = [f for f in flags if "=" in f]
    switches = [f for f in flags if "=" not in f]
    proc = subprocess.run(
        [sys.executable, "-m", "SCons", "-C", str(REPO), "-Q", *switches, f"spec={spec}",
         f"build_dir={build}", *options, "demo"],
        capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ran = {" ".join(filter(None, m.groups())) for m in STAGE_LINE.finditer(proc.stdout)}
    return ran, proc.stdout


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("rebuild")
    spec = tmp / "demo.yaml"
    shutil.copy(REPO / "projects" / "demo.yaml", spec)
    ran, _ = _scons(spec, tmp / "build")
    return spec, tmp / "build", ran


def test_first_build_runs_every_stage(built):
    _, build, ran = built
    assert {"index", "features", "model", "tflite", "analysis", "evaluation",
            "firmware pico", "firmware teensy", "report"} <= ran
    assert (build / "demo" / "tflite" / "model.tflite").stat().st_size > 1000


def test_second_run_is_up_to_date(built):
    spec, build, _ = built
    ran, out = _scons(spec, build)
    assert ran == set()
    assert "is up to date" in out


def test_led_pin_edit_rebuilds_only_that_firmware(built):
    spec, build, _ = built
    model = build / "demo" / "model" / "model.keras"
    before = model.stat().st_mtime_ns
    text = spec.read_text()
    spec.write_text(text.replace("{name: pico, board: rpi_pico}",
                                 "{name: pico, board: rpi_pico, led_pin: 15}"))
    ran, _ = _scons(spec, build)
    assert ran == {"firmware pico", "capture pico", "report"}  # the capture firmware lights it too
    assert model.stat().st_mtime_ns == before
    main = (build / "demo" / "firmware" / "pico" / "mf_board.c").read_text()
    assert "#define LED_PIN (15U)" in main
    capture = (build / "demo" / "firmware" / "pico-capture" / "capture_main.c").read_text()
    assert "#define LED_PIN (15U)" in capture


def test_threshold_edit_does_not_retrain(built):
    spec, build, _ = built
    spec.write_text(spec.read_text().replace("classes: [beep]", "classes: [beep]\n  threshold: 0.7"))
    ran, _ = _scons(spec, build)
    # the streaming evaluation replays the detector at the new threshold; nothing retrains
    assert ran == {"streaming", "firmware pico", "firmware teensy", "report"}


def test_class_list_edit_retrains(built):
    spec, build, _ = built
    spec.write_text(spec.read_text().replace("classes: [beep, background]", "classes: [background, beep]"))
    ran, _ = _scons(spec, build)
    assert {"index", "features", "model", "tflite", "analysis", "evaluation",
            "firmware pico", "firmware teensy", "report"} <= ran


@pytest.mark.parametrize("module", ["report.py", "zoo.py", "tflm_ops.py", "uf2.py", "dataset.py"])
def test_editing_a_module_reruns_exactly_the_stages_that_run_it(built, module):
    """A dry run after editing one generator module lists the stages whose derived code
    (pipeline.stage_modules) holds it, and no other."""
    from generator import pipeline

    spec, build, _ = built
    _scons(spec, build)  # whatever earlier tests left, up to date first
    path = REPO / "generator" / module
    expected = set()
    for stage in pipeline.STAGE_SECTIONS:
        if path in pipeline.stage_modules(stage) and stage not in ("folds", "crossval"):
            expected |= {"firmware": {"firmware pico", "firmware teensy"},
                         "capture": {"capture pico", "capture teensy"}}.get(stage, {stage})
    text = path.read_text()
    try:
        path.write_text(text + "\n# edited by test_rebuild\n")
        ran, _ = _scons(spec, build, "-n")
    finally:
        path.write_text(text)
    assert ran == expected


def test_state_lives_in_the_build_folder(built):
    _, build, _ = built
    assert (build / ".sconsign.dblite").is_file()
    assert (build / ".cache" / "features").is_dir()
    assert (build / ".micforge.lock").is_file()


def test_a_second_build_of_the_same_folder_refuses(built):
    from generator.buildstate import try_lock
    spec, build, _ = built
    held = try_lock(build)  # as if a build were running
    try:
        proc = subprocess.run([sys.executable, "-m", "SCons", "-C", str(REPO), "-Q", f"spec={spec}",
                               f"build_dir={build}", "demo"], capture_output=True, text=True)
    finally:
        held.close()
    assert proc.returncode == 2
    assert "another micforge build is running in this build folder" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout


def test_a_spec_edit_during_a_build_does_not_reach_that_build(built, tmp_path):
    """Classes swapped while the model trains: the firmware still names them in the order the
    model was trained in (every stage reads the graph's snapshot), and the next build redoes it."""
    import json
    import time
    spec = tmp_path / "demo.yaml"
    shutil.copy(REPO / "projects" / "demo.yaml", spec)
    build = tmp_path / "build"
    proc = subprocess.Popen([sys.executable, "-m", "SCons", "-C", str(REPO), "-Q", f"spec={spec}",
                             f"build_dir={build}", "demo"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if line.startswith("[demo] model"):
            spec.write_text(spec.read_text().replace("classes: [beep, background]",
                                                     "classes: [background, beep]"))
            break
    rest = proc.communicate(timeout=600)[0]
    assert proc.returncode == 0, "".join(seen) + rest
    trained = json.loads((build / "demo" / "model" / "history.json").read_text())["classes"]
    config = (build / "demo" / "firmware" / "pico" / "config.h").read_text()
    assert trained == ["beep", "background"]
    assert '#define MF_CLASS_NAMES { "beep", "background" }' in config
    time.sleep(1.1)  # the next build sees the edit and redoes the stages
    ran, _ = _scons(spec, build)
    assert {"index", "features", "model", "firmware pico"} <= ran


def test_a_team_cache_serves_a_second_build_folder(tmp_path):
    """Two build folders (two clones, or CI) sharing a cache dir: the second runs no stage."""
    spec = tmp_path / "demo.yaml"
    shutil.copy(REPO / "projects" / "demo.yaml", spec)
    cache = tmp_path / "team-cache"
    ran1, _ = _scons(spec, tmp_path / "a", f"cache_dir={cache}")
    assert {"features", "model", "firmware pico"} <= ran1
    ran2, out = _scons(spec, tmp_path / "b", f"cache_dir={cache}")
    assert ran2 == set(), out
    for rel in ("tflite/model.tflite", "firmware/pico/config.h", "features/features.npz"):
        assert (tmp_path / "a" / "demo" / rel).read_bytes() == (tmp_path / "b" / "demo" / rel).read_bytes()


def test_a_truncated_or_corrupt_artifact_is_built_again_not_fed_on(built):
    """A truncated features.npz used to reach the model stage (BadZipFile on every rerun, the
    model deleted); a corrupt model.keras used to delete model.tflite. Now each is remade."""
    spec, build, _ = built
    _scons(spec, build)
    npz = build / "demo" / "features" / "features.npz"
    good = npz.read_bytes()
    npz.write_bytes(good[:len(good) // 3])
    ran, out = _scons(spec, build)
    assert "features" in ran and f"{npz}: changed since it was built" in out
    assert npz.read_bytes() == good and "model" not in ran
    keras = build / "demo" / "model" / "model.keras"
    keras.write_bytes(b"not a zip")
    ran, _ = _scons(spec, build)
    assert "model" in ran and (build / "demo" / "tflite" / "model.tflite").is_file()
    assert _scons(spec, build)[0] == set()


@pytest.fixture(scope="module")
def cross_validated(tmp_path_factory):
    """The demo with a 2-fold cross-validation and a short training, built once."""
    tmp = tmp_path_factory.mktemp("rebuild_cv")
    spec = tmp / "demo.yaml"
    spec.write_text((REPO / "projects" / "demo.yaml").read_text()
                    .replace("epochs: 40", "epochs: 4")
                    .replace("streaming: {minutes: 10}",
                             "streaming: {minutes: 2}\n  cross_validation: "
                             "{method: group_kfold, folds: 2}"))
    ran, _ = _scons(spec, tmp / "build")
    assert {"folds", "crossval"} <= ran
    return spec, tmp / "build"


def test_a_threshold_edit_rescores_the_folds_without_training_them(cross_validated):
    spec, build = cross_validated
    folds = build / "demo" / "analysis" / "crossval_folds.npz"
    before = folds.stat().st_mtime_ns
    spec.write_text(spec.read_text().replace("classes: [beep]", "classes: [beep]\n  threshold: 0.7"))
    ran, _ = _scons(spec, build)
    assert ran == {"crossval", "streaming", "firmware pico", "firmware teensy", "report"}
    assert folds.stat().st_mtime_ns == before
    assert '"threshold": 0.7' in (build / "demo" / "analysis" / "crossval.json").read_text()
    # the streams' length is not the folds' business either
    spec.write_text(spec.read_text().replace("streaming: {minutes: 2}", "streaming: {minutes: 3}"))
    ran, _ = _scons(spec, build)
    assert ran == {"streaming", "report"}
