"""Golden error tests: each broken spec gives exactly its expected message at line:col."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, assert_golden
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
