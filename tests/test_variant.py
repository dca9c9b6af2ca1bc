"""variant.resolve: every derived fact of a target once, and the one arena rule."""

from __future__ import annotations

from pathlib import Path

import pytest

from generator.boards import load_board
from generator.spec import Arena, load_spec
from generator.variant import align, arena_size, mic_clock_hz, resolve

REPO = Path(__file__).resolve().parent.parent


def _spec(tmp_path: Path, targets: str, arena: str = "") -> Path:
    path = tmp_path / "s.yaml"
    path.write_text("name: t\nclasses: [beep, background]\ndataset: {layout: synthetic}\n"
                    f"model: {{architecture: compact_cnn}}\n{arena}targets:\n{targets}")
    return path


def test_pins_outputs_and_clock_after_overrides(tmp_path):
    project = load_spec(_spec(tmp_path, "  - {name: a, board: rpi_pico, led_pin: 15, "
                                        "outputs: [serial], mic: {data_pin: 6}}\n"))
    target = project.spec.targets[0]
    board = load_board("rpi_pico")
    v = resolve(project, target, board)
    assert dict(v.pins) == {"led_pin": 15, "mic.data_pin": 6, "mic.clock_pin": board.microphone.clock_pin}
    assert v.overridden == {"led_pin", "mic.data_pin"}
    assert v.outputs == ("serial",) and v.index == 0 and v.loc("led_pin") == ("targets", 0, "led_pin")
    assert v.mic_clock_hz == 16000 * 64 == mic_clock_hz(16000, board)
    assert (v.frontend.num_frames, v.frontend.hop_samples) == (31, 512)
    assert v.arena.bytes is None and v.macs is None  # no model yet, size auto


def test_arena_is_measured_plus_margin_aligned_and_blames_the_right_line(tmp_path):
    project = load_spec(_spec(tmp_path, "  - {name: a, board: rpi_pico}\n"
                                        "  - {name: b, board: rpi_pico, arena: {size: 2048}}\n",
                              arena="arena: {margin: 100}\n"), "s.yaml")
    analysis = {"arena": {"measured_bytes": 4001}, "macs": 1234}
    a = resolve(project, project.spec.targets[0], load_board("rpi_pico"), analysis)
    assert a.arena.bytes == align(4101) == 4112 and a.arena.where == ("arena", "size")
    assert a.arena.problem(project) is None and a.macs == 1234
    b = resolve(project, project.spec.targets[1], load_board("rpi_pico"), analysis)
    assert b.arena.bytes == 2048 and b.arena.where == ("targets", 1, "arena", "size")
    problem = b.arena.problem(project)
    assert problem is not None and (problem.line, problem.col) == (8, 46)
    assert "arena of 2048 bytes is too small: the model needs 4513" in problem.message  # its own margin


@pytest.mark.parametrize("setting,measured,expected", [
    ("auto", None, None), ("auto", 3664, 4176), (5000, None, 5008), (8192, 3664, 8192)])
def test_arena_size_rule(setting, measured, expected):
    assert arena_size(Arena(size=setting) if setting != "auto" else Arena(), measured,
                      ("arena", "size")).bytes == expected
