"""Cross-checks of a parsed spec against the boards its targets name.

`check_project(project)` runs every check that needs only the spec and the
board files (board exists, pins exist and are free, the microphone clock is
reachable, a numeric arena fits its RAM region), then the firmware family's
own `check_target` (RP2040: PIO clock, hop budget; RT1062: SAI clock, FlexRAM plan). Checks that need the trained
model (the measured arena, the real-time budget) run again at build time with
the model analysis: `check_project(project, analysis)`.
All problems are collected and reported together, each at its line in the spec.
Every derived value (pins after overrides, the microphone clock, the arena) comes
from generator.variant.resolve.
"""

from __future__ import annotations

import dataclasses
import difflib

from . import modelcost
from .boards import board_ids, load_board
from .errors import Problem, SpecError
from .spec import Project
from .targets import family
from .variant import Variant, resolve


def _check_pins(v: Variant) -> list[Problem]:
    out = []
    project, board = v.project, v.board
    for key, pin in v.pins.items():
        if key not in v.overridden:
            continue
        if pin >= board.gpio_count:
            out.append(project.positions.problem(
                v.loc(*key.split(".")), f"{board.title} has no pin {pin} (pins are 0..{board.gpio_count - 1})"))
        elif pin in board.reserved_pins and pin != board.led_pin:
            out.append(project.positions.problem(
                v.loc(*key.split(".")), f"pin {pin} is used by the {board.title} itself "
                                        f"(reserved: {board.reserved_pins}); choose another"))
    by_pin: dict[int, str] = {}
    for key, pin in v.pins.items():
        other = by_pin.get(pin)
        if other is not None and (key in v.overridden or other in v.overridden):
            where = key if key in v.overridden else other
            out.append(project.positions.problem(
                v.loc(*where.split(".")), f"{key} and {other} are both on pin {pin}; give each its own pin"))
        by_pin[pin] = key
    return out


def _check_audio(v: Variant) -> list[Problem]:
    mic = v.board.microphone
    clock = v.mic_clock_hz
    if mic.min_clock_hz <= clock <= mic.max_clock_hz:
        return []
    rate = v.frontend.sample_rate
    factor = clock // rate
    lo, hi = -(-mic.min_clock_hz // factor), mic.max_clock_hz // factor
    return [v.project.positions.problem(
        ("audio", "sample_rate"),
        f"sample_rate {rate} Hz needs a {clock / 1e6:.3f} MHz microphone clock on target "
        f"'{v.name}' ({mic.part}: {mic.min_clock_hz / 1e6:g}-"
        f"{mic.max_clock_hz / 1e6:g} MHz); use a rate from {lo} to {hi} Hz")]


def _check_model(v: Variant, analysis: dict | None) -> list[Problem]:
    """A numeric arena must hold what TFLM measured, and the model must leave flash for code;
    whether the arena fits the board's RAM is the firmware family's check, which knows what
    else lives there."""
    out = []
    too_small = v.arena.problem(v.project)
    if too_small is not None:
        out.append(too_small)
    elif analysis is None and v.arena.setting != "auto" and v.project.spec.transfer is None:
        floor = modelcost.arena_lower_bound(v.project.spec)
        if int(v.arena.setting) < floor:
            out.append(v.project.positions.problem(
                v.arena.where, f"arena of {v.arena.setting} bytes is too small: the model's "
                               f"largest layer alone holds {floor} bytes of int8 input and "
                               f"output (TFLM needs more); set size: auto"))
    spec = v.project.spec
    if analysis is not None:
        model_bytes = int(analysis["model_bytes"])
        what = "needs at least" if analysis.get("lower_bounds") else "is"
    elif spec.transfer is None:  # before training: its weights and biases at least
        model_bytes, what = modelcost.model_bytes_lower_bound(spec), "needs at least"
    else:
        return out
    flash = v.board.flash_size
    if model_bytes > flash // 2:
        out.append(v.project.positions.problem(
            ("model",), f"the model {what} {model_bytes:,} bytes, more than half of the "
                        f"{flash:,} bytes of flash on {v.board.title} (code needs the rest); "
                        f"make the model smaller"))
    return out


def _check_transfer(project: Project) -> list[Problem]:
    """A transfer base that does not exist (a spec or a .keras file, relative to the spec)."""
    transfer = project.spec.transfer
    if transfer is None or project.resolve(transfer.base).is_file():
        return []
    what = "base spec" if transfer.base.endswith((".yaml", ".yml")) else "base model"
    return [project.positions.problem(
        ("transfer", "base"), f"{what} {transfer.base} does not exist (paths are relative to the "
                              f"spec file); name an existing spec or a trained .keras file")]


def check_project(project: Project, analysis: dict | None = None) -> None:
    """Raise SpecError listing every problem found; return quietly when all is well.

    Without `analysis` (micforge validate, before training) the model's MACs come from its
    architecture (generator.modelcost), so a board's real-time budget is checked already."""
    problems: list[Problem] = _check_transfer(project)
    known = board_ids()
    for i, target in enumerate(project.spec.targets):
        if target.board not in known:
            hint = difflib.get_close_matches(target.board, known, n=1)
            extra = f" (did you mean '{hint[0]}'?)" if hint else f"; known boards: {', '.join(known)}"
            problems.append(project.positions.problem(
                ("targets", i, "board"), f"unknown board '{target.board}'{extra}"))
            continue
        board = load_board(target.board)
        v = resolve(project, target, board, analysis)
        if analysis is None and project.spec.transfer is None:
            # before training: the model's MACs follow from its architecture
            v = dataclasses.replace(v, macs=modelcost.macs(project.spec))
        problems += _check_pins(v)
        problems += _check_audio(v)
        problems += _check_model(v, analysis)
        problems += family(board).check_target(v)
    if problems:
        raise SpecError(problems)
