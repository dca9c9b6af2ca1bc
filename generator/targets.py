"""Firmware families: from a board's SoC to the module that renders its project.

Each family module provides `render(project, target, board, analysis,
tflite_bytes, out_dir) -> list[Path]` and `output_files(project, target,
board) -> list[str]` (paths relative to out_dir, known before rendering so the
build graph can declare every output).
"""

from __future__ import annotations

import importlib
from pathlib import Path

from .boards import Board
from .spec import Project, Target

FAMILIES = {"rp2040": "generator.firmware.rp2040", "imxrt1062": "generator.firmware.imxrt"}


def family(board: Board):
    return importlib.import_module(FAMILIES[board.soc])


def output_files(project: Project, target: Target, board: Board) -> list[str]:
    return family(board).output_files(project, target, board)


def render_target(project: Project, target: Target, board: Board, analysis: dict,
                  tflite_bytes: bytes, out_dir: Path) -> list[Path]:
    return family(board).render(project, target, board, analysis, tflite_bytes, out_dir)
