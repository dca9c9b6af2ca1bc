"""Resolve once, then render: every derived fact of one firmware variant, in one frozen object.

`resolve(project, target, board, analysis=None) -> Variant` takes a validated
spec, one of its targets, that target's board and (once a model exists) the
model analysis, and computes what the checks and both firmware families read:
the front end (features.FrontEnd: frames, bins, hop), the pins after the
target's overrides, the outputs, the microphone clock, and the tensor arena
(measured, margin, the bytes the firmware gets, and the spec line to blame).
Nothing downstream recomputes any of them.

`arena_size(setting, margin, measured, where)` is the one statement of
"measured + margin, 16-byte aligned"; the analysis stage calls it for the
project-level figure, `resolve` for each target (a target may override the arena).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Mapping

from .boards import Board
from .errors import Problem
from .features import FrontEnd, design
from .spec import Arena, Project, Target

ARENA_ALIGN = 16  # TFLM aligns arena allocations to 16 bytes; the size is kept a multiple
# A PDM microphone is clocked at sample_rate x decimation; I2S at sample_rate x 64 (2 x 32-bit slots).
PDM_DECIMATION = 64
I2S_BITS_PER_FRAME = 64


def align(n: int) -> int:
    return -(-n // ARENA_ALIGN) * ARENA_ALIGN


@dataclass(frozen=True)
class ArenaSize:
    """The tensor arena of a variant (or of the project, for the analysis)."""

    setting: str | int        # "auto" or the bytes the spec asks for
    margin: int
    measured: int | None      # what the TFLM runtime needed; None before a model exists
    where: tuple              # spec path of the setting to change

    @property
    def needed(self) -> int | None:
        return None if self.measured is None else self.measured + self.margin

    @property
    def bytes(self) -> int | None:
        """What the firmware gets: measured + margin (auto) or the setting, 16-byte aligned;
        None while the size is auto and no model has been measured."""
        if self.setting == "auto":
            return None if self.needed is None else align(self.needed)
        return align(int(self.setting))

    def problem(self, project: Project) -> Problem | None:
        """A numeric setting below what the model needs, at its spec line."""
        if self.setting == "auto" or self.needed is None or int(self.setting) >= self.needed:
            return None
        return project.positions.problem(
            self.where, f"arena of {self.setting} bytes is too small: the model needs "
                        f"{self.needed} ({self.measured} measured with the TFLM runtime + "
                        f"{self.margin} margin); set size: auto or at least {self.needed}")


def detection_threshold(project: Project, calibration: dict | None = None) -> float | None:
    """The detection threshold in force: the spec's number, or for `threshold: auto` the one
    the streaming evaluation chose (analysis/streaming.json); None while auto is uncalibrated."""
    det = project.spec.detection
    if det.threshold != "auto":
        return float(det.threshold)
    return None if calibration is None else float(calibration["threshold"])


def arena_size(arena: Arena, measured: int | None, where: tuple) -> ArenaSize:
    return ArenaSize(setting=arena.size, margin=arena.margin, measured=measured, where=where)


@dataclass(frozen=True)
class Variant:
    """One target of a project on its board, with every derived fact resolved."""

    project: Project
    target: Target
    board: Board
    index: int                   # position in spec.targets (error locations)
    frontend: FrontEnd
    arena: ArenaSize
    outputs: tuple[str, ...]
    pins: Mapping[str, int]      # "led_pin", "mic.data_pin", "mic.clock_pin" after overrides
    overridden: frozenset[str]   # which of `pins` the target sets itself
    mic_clock_hz: int
    macs: int | None             # the model's, from the analysis
    threshold: float | None      # detection threshold in force (detection_threshold)

    @property
    def name(self) -> str:
        return self.target.name

    def loc(self, *path) -> tuple:
        """A spec location inside this variant's `targets` entry."""
        return ("targets", self.index) + path


def _pins(target: Target, board: Board) -> tuple[dict[str, int], frozenset[str]]:
    mic = board.microphone
    chosen = {
        "led_pin": (target.led_pin, board.led_pin),
        "mic.data_pin": (target.mic.data_pin, mic.data_pin),
        "mic.clock_pin": (target.mic.clock_pin, mic.clock_pin),
    }
    pins = {k: own if own is not None else default for k, (own, default) in chosen.items()}
    return pins, frozenset(k for k, (own, _) in chosen.items() if own is not None)


def mic_clock_hz(sample_rate: int, board: Board) -> int:
    factor = PDM_DECIMATION if board.microphone.interface == "pdm" else I2S_BITS_PER_FRAME
    return sample_rate * factor


def resolve(project: Project, target: Target, board: Board, analysis: dict | None = None,
            calibration: dict | None = None) -> Variant:
    """Every derived fact of `target` on `board` (see the module docstring)."""
    spec = project.spec
    index = next(i for i, t in enumerate(spec.targets) if t.name == target.name)
    own_arena = target.arena is not None
    arena = arena_size(target.arena if own_arena else spec.arena,
                       int(analysis["arena"]["measured_bytes"]) if analysis else None,
                       ("targets", index, "arena", "size") if own_arena else ("arena", "size"))
    pins, overridden = _pins(target, board)
    return Variant(
        project=project, target=target, board=board, index=index, frontend=design(spec),
        arena=arena,
        outputs=tuple(target.outputs if target.outputs is not None else spec.detection.outputs),
        pins=MappingProxyType(pins), overridden=overridden,
        mic_clock_hz=mic_clock_hz(spec.audio.sample_rate, board),
        macs=int(analysis["macs"]) if analysis and "macs" in analysis else None,
        threshold=detection_threshold(project, calibration))
