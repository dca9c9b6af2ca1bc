"""Firmware families: from a board's SoC to the module that renders its project.

Each family module provides `render(variant, analysis, tflite_bytes, out_dir)
-> list[Path]` and `check_target(variant) -> list[Problem]`, both on a
generator.variant.Variant. The files a
family writes are known here, without importing it (the build graph lists them
on every run, and a no-op build must stay fast): its template tree mirrored,
templates/common/, and the family's extra files.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

from .boards import Board
from .paths import template_names
from .spec import Project, Target

UF2_SCRIPT = "uf2.py"  # RP2040: the UF2 writer copied into each project
PLAN_FILE = "flexram_plan.json"  # RT1062: the FlexRAM plan the firmware was rendered from


@dataclass(frozen=True)
class Family:
    module: str
    templates: str  # folder under templates/
    extra_files: tuple[str, ...]  # written besides the templates
    data_files: tuple[str, ...] = ()  # files of generator/ the family copies into its projects


FAMILIES = {
    "rp2040": Family("generator.firmware.rp2040", "rp2040", (UF2_SCRIPT,), (UF2_SCRIPT,)),
    "imxrt1062": Family("generator.firmware.imxrt", "imxrt1062", (PLAN_FILE,)),
}


def family(board: Board):
    return importlib.import_module(FAMILIES[board.soc].module)


def output_files(project: Project, target: Target, board: Board) -> list[str]:
    fam = FAMILIES[board.soc]
    return sorted(template_names(fam.templates) + template_names("common") + list(fam.extra_files))


def render_target(project: Project, target: Target, board: Board, analysis: dict,
                  tflite_bytes: bytes, out_dir: Path, calibration: dict | None = None) -> list[Path]:
    """Render one variant; `calibration` is the streaming evaluation (threshold: auto)."""
    from .variant import resolve
    return family(board).render(resolve(project, target, board, analysis, calibration), analysis,
                                tflite_bytes, out_dir)
