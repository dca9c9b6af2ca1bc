"""Cross-checks of a parsed spec against the boards its targets name.

`check_project(project)` runs every check that needs only the spec and the
board files (board exists, pins exist and are free, the microphone clock is
reachable, a numeric arena fits its RAM region), then the firmware family's
own `check_target` (RP2040: PIO clock, hop budget; RT1062: SAI clock, FlexRAM plan). Checks that need the trained
model (the measured arena, the real-time budget) run again at build time with
the model analysis: `check_project(project, analysis)`.
All problems are collected and reported together, each at its line in the spec.
"""

from __future__ import annotations

import difflib

from .boards import Board, board_ids, load_board
from .errors import Problem, SpecError
from .spec import Project, Target


def effective_arena(project: Project, target: Target):
    """The arena setting in force for a target: its override, else the project's."""
    return target.arena if target.arena is not None else project.spec.arena


def effective_outputs(project: Project, target: Target) -> list[str]:
    return list(target.outputs if target.outputs is not None else project.spec.detection.outputs)


def pins(target: Target, board: Board) -> dict[str, int]:
    """The pins a target uses, after its overrides."""
    mic = board.microphone
    used = {
        "led_pin": target.led_pin if target.led_pin is not None else board.led_pin,
        "mic.data_pin": target.mic.data_pin if target.mic.data_pin is not None else mic.data_pin,
        "mic.clock_pin": target.mic.clock_pin if target.mic.clock_pin is not None else mic.clock_pin,
    }
    return used


def _loc_of(i: int, key: str) -> tuple:
    return ("targets", i) + tuple(key.split("."))


def _check_pins(project: Project, i: int, target: Target, board: Board) -> list[Problem]:
    out = []
    used = pins(target, board)
    overridden = {k for k in used if (k == "led_pin" and target.led_pin is not None)
                  or (k.startswith("mic.") and getattr(target.mic, k[4:]) is not None)}
    for key, pin in used.items():
        if key not in overridden:
            continue
        if pin >= board.gpio_count:
            out.append(project.positions.problem(
                _loc_of(i, key), f"{board.title} has no pin {pin} (pins are 0..{board.gpio_count - 1})"))
        elif pin in board.reserved_pins and pin != board.led_pin:
            out.append(project.positions.problem(
                _loc_of(i, key), f"pin {pin} is used by the {board.title} itself "
                                 f"(reserved: {board.reserved_pins}); choose another"))
    by_pin: dict[int, str] = {}
    for key, pin in used.items():
        other = by_pin.get(pin)
        if other is not None and (key in overridden or other in overridden):
            where = key if key in overridden else other
            out.append(project.positions.problem(
                _loc_of(i, where), f"{key} and {other} are both on pin {pin}; give each its own pin"))
        by_pin[pin] = key
    return out


# A PDM microphone is clocked at sample_rate x decimation; I2S at sample_rate x 64 (2 x 32-bit slots).
PDM_DECIMATION = 64
I2S_BITS_PER_FRAME = 64


def mic_clock_hz(project: Project, board: Board) -> int:
    rate = project.spec.audio.sample_rate
    return rate * (PDM_DECIMATION if board.microphone.interface == "pdm" else I2S_BITS_PER_FRAME)


def _check_audio(project: Project, i: int, board: Board) -> list[Problem]:
    clock = mic_clock_hz(project, board)
    mic = board.microphone
    if mic.min_clock_hz <= clock <= mic.max_clock_hz:
        return []
    rate = project.spec.audio.sample_rate
    factor = clock // rate
    lo, hi = -(-mic.min_clock_hz // factor), mic.max_clock_hz // factor
    return [project.positions.problem(
        ("audio", "sample_rate"),
        f"sample_rate {rate} Hz needs a {clock / 1e6:.3f} MHz microphone clock on target "
        f"'{project.spec.targets[i].name}' ({mic.part}: {mic.min_clock_hz / 1e6:g}-"
        f"{mic.max_clock_hz / 1e6:g} MHz); use a rate from {lo} to {hi} Hz")]


def _check_arena(project: Project, i: int, target: Target, board: Board,
                 analysis: dict | None) -> list[Problem]:
    """A numeric arena must hold what TFLM measured; whether it fits the board's RAM is
    the firmware family's check, which knows what else lives there."""
    arena = effective_arena(project, target)
    loc = ("targets", i, "arena", "size") if target.arena is not None else ("arena", "size")
    out = []
    size = arena.size
    if analysis is not None:
        needed = int(analysis["arena"]["measured_bytes"]) + arena.margin
        if size != "auto" and size < needed:
            out.append(project.positions.problem(
                loc, f"arena of {size} bytes is too small: the model needs {needed} "
                     f"({analysis['arena']['measured_bytes']} measured + {arena.margin} margin); "
                     f"set size: auto or at least {needed}"))
    if analysis is not None:
        model_bytes = int(analysis["model_bytes"])
        flash = board.flash_size
        if model_bytes > flash // 2:
            out.append(project.positions.problem(
                ("model",), f"the model is {model_bytes} bytes; {board.title} has {flash} bytes of "
                            f"flash and needs room for code; make the model smaller"))
    return out


def family(board: Board):
    """The firmware family module of a board (imported late: it imports this module)."""
    from .targets import family as _family
    return _family(board)


def check_project(project: Project, analysis: dict | None = None) -> None:
    """Raise SpecError listing every problem found; return quietly when all is well."""
    problems: list[Problem] = []
    known = board_ids()
    for i, target in enumerate(project.spec.targets):
        if target.board not in known:
            hint = difflib.get_close_matches(target.board, known, n=1)
            extra = f" (did you mean '{hint[0]}'?)" if hint else f"; known boards: {', '.join(known)}"
            problems.append(project.positions.problem(
                ("targets", i, "board"), f"unknown board '{target.board}'{extra}"))
            continue
        board = load_board(target.board)
        problems += _check_pins(project, i, target, board)
        problems += _check_audio(project, i, board)
        problems += _check_arena(project, i, target, board, analysis)
        problems += family(board).check_target(project, target, board, analysis)
    if problems:
        raise SpecError(problems)
