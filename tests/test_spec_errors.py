"""Golden error tests: each broken spec gives exactly its expected message at line:col."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO, assert_golden
from generator import cli
from generator.checks import check_project
from generator.errors import SpecError
from generator.spec import load_spec

INVALID = sorted((REPO / "tests" / "specs" / "invalid").glob("*.yaml"))


def _errors(path: Path) -> str:
    display = str(path.relative_to(REPO))
    try:
        check_project(load_spec(path, display))
    except SpecError as exc:
        return str(exc) + "\n"
    pytest.fail(f"{display} was accepted")


def test_there_are_enough_broken_specs():
    assert len(INVALID) >= 15


@pytest.mark.parametrize("path", INVALID, ids=[p.stem for p in INVALID])
def test_broken_spec_message(path: Path):
    assert_golden(path.with_suffix(".expected"), _errors(path))


def test_every_message_has_a_position():
    for path in INVALID:
        for line in _errors(path).splitlines():
            assert line.startswith(f"tests/specs/invalid/{path.name}"), line


def test_cli_prints_message_without_traceback():
    path = INVALID[0]
    proc = subprocess.run([sys.executable, "-m", "generator.cli", "validate", str(path.relative_to(REPO))],
                          cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr == _errors(path)


def test_cli_prints_every_broken_spec_without_traceback():
    paths = [str(p.relative_to(REPO)) for p in INVALID]
    proc = subprocess.run([sys.executable, "-m", "generator.cli", "validate", *paths],
                          cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr == "".join(_errors(p) for p in INVALID)


def _interrupt_training(command: list[str], build: Path) -> tuple[subprocess.Popen, str, float]:
    """Start `command` (a build of projects/demo.yaml into `build`), wait until its model stage
    runs (its log, build/demo/logs/model.log, appears when it starts), send SIGINT to that
    process alone (as kill -INT or a CI runner does), and return the process, its stderr (and
    the end of its stdout) and the seconds it took to exit."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            # as a shell starts a command (a background pytest ignores SIGINT)
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    log = build / "demo" / "logs" / "model.log"
    deadline = time.monotonic() + 300
    while not log.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    if not log.exists():
        pytest.fail(f"the build ended before training: {proc.communicate()[1]}")
    time.sleep(2)  # inside TensorFlow's import or the first epochs
    start = time.monotonic()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=300)
    return proc, f"{err}\n--- stdout after the signal:\n{out[-1500:]}", time.monotonic() - start


@pytest.mark.slow
@pytest.mark.parametrize("how", ["micforge build", "scons"])
def test_sigint_during_training_stops_at_once_and_resumes(tmp_path, how):
    # Before: SCons (running the stages in its own process) only noted the signal, trained to
    # the end and exited 2 without a word; `micforge build` died with a traceback.
    build = tmp_path / "build"
    if how == "scons":
        command = [sys.executable, "-m", "SCons", "-Q", f"spec={REPO / 'projects/demo.yaml'}",
                   f"build_dir={build}", "demo"]
    else:
        command = [sys.executable, "-m", "generator.cli", "build", "projects/demo.yaml",
                   "--build-dir", str(build)]
    proc, output, seconds = _interrupt_training(command, build)
    assert proc.returncode == 130, output
    assert seconds < 5, output
    assert "Traceback" not in output and "Exception ignored" not in output, output
    lines = [line for line in output.splitlines() if "interrupted" in line or "scons:" in line]
    assert lines == [cli.INTERRUPTED], output
    assert not (build / "demo" / "model" / "model.keras").exists()
    # Resume: SCons recorded the stages that finished before the signal.
    explain = subprocess.run([sys.executable, "-m", "SCons", "-Q", "-n", "--debug=explain",
                              f"spec={REPO / 'projects/demo.yaml'}", f"build_dir={build}", "demo"],
                             cwd=REPO, capture_output=True, text=True, timeout=120).stdout
    for done in ("dataset/index.json", "features/features.npz"):
        assert (build / "demo" / done).is_file()
        assert not any(done in line and ("No previous build information" in line
                                         or "doesn't exist" in line)
                       for line in explain.splitlines()), explain
    assert f"`{build / 'demo/model/model.keras'}' because it doesn't exist" in explain
