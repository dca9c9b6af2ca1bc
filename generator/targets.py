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
    # The capture project (firmware/<variant>-capture/): templates/capture/common/ and
    # templates/capture/<templates>/, plus these templates of the detector's trees (the same
    # microphone driver), and the extra files.
    capture_shared: tuple[str, ...] = ()
    capture_extra: tuple[str, ...] = ()
    capture_baud: int = 115200  # the capture link's serial rate (USB CDC ignores it)


FAMILIES = {
    "rp2040": Family("generator.firmware.rp2040", "rp2040", (UF2_SCRIPT,), (UF2_SCRIPT,),
                     capture_shared=("rp2040/audio_in.c", "rp2040/pico_sdk_import.cmake",
                                     "common/audio_in.h"),
                     capture_extra=(UF2_SCRIPT,)),
    # The capture link is the board's LPUART (imx.uart) at capture_baud: a standard rate of
    # USB-serial bridges and NXP's MCU-Link VCOM, fast enough for the frames (34 KB/s at 16 kHz).
    # generator.firmware.imxrt derives the LPUART divider, its error and the time a frame is on
    # the wire from it, checks them per variant and states them in the rendered project.
    "imxrt1062": Family("generator.firmware.imxrt", "imxrt1062", (PLAN_FILE,),
                        capture_shared=("imxrt1062/audio_in.c", "imxrt1062/board.c",
                                        "imxrt1062/board.h", "imxrt1062/board_mpu.c",
                                        "imxrt1062/flash_config.c", "imxrt1062/linker.ld",
                                        "imxrt1062/pin_mux.c", "imxrt1062/startup_flexram.c",
                                        "common/audio_in.h"),
                        capture_extra=(PLAN_FILE,), capture_baud=921_600),
}


def family(board: Board):
    return importlib.import_module(FAMILIES[board.soc].module)


def output_files(project: Project, target: Target, board: Board) -> list[str]:
    fam = FAMILIES[board.soc]
    return sorted(template_names(fam.templates) + template_names("common") + list(fam.extra_files))


def has_capture(board: Board) -> bool:
    """Whether the board's family has a capture project (RP2040: USB CDC; i.MX RT1062: the
    board's LPUART at the family's capture_baud)."""
    return bool(FAMILIES[board.soc].capture_shared)


def capture_templates(board: Board) -> list[tuple[str, str]]:
    """(template tree, output path) of every template the capture project renders."""
    fam = FAMILIES[board.soc]
    pairs = [(f"capture/{tree}", rel) for tree in ("common", fam.templates)
             for rel in template_names(f"capture/{tree}")]
    pairs += [tuple(shared.rsplit("/", 1)) for shared in fam.capture_shared]
    return sorted(pairs, key=lambda p: p[1])


def capture_output_files(board: Board) -> list[str]:
    """Every file of a variant's capture project (firmware/<variant>-capture/)."""
    fam = FAMILIES[board.soc]
    return sorted([rel for _, rel in capture_templates(board)] + list(fam.capture_extra))


def render_capture(project: Project, target: Target, board: Board, out_dir: Path) -> list[Path]:
    """Render one variant's capture project: it needs no model, so it can be built (and
    record data) before anything is trained."""
    from .variant import resolve
    return family(board).render_capture(resolve(project, target, board), out_dir)


def render_target(project: Project, target: Target, board: Board, analysis: dict,
                  tflite_bytes: bytes, out_dir: Path, calibration: dict | None = None) -> list[Path]:
    """Render one variant; `calibration` is the streaming evaluation (threshold: auto)."""
    from .variant import resolve
    return family(board).render(resolve(project, target, board, analysis, calibration), analysis,
                                tflite_bytes, out_dir)
