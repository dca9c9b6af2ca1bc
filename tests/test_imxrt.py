"""i.MX RT1062 firmware rendering: every declared file, one plan behind linker script,
reset prologue, MPU and README, and spec problems reported at their lines."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from conftest import REPO
from generator.boards import load_board
from generator.errors import SpecError
from generator.firmware import imxrt
from generator.variant import resolve
from generator.spec import load_spec

ANALYSIS = {"arena": {"measured_bytes": 30000}, "model_bytes": 4096,
            "resolver": ["AddConv2D", "AddFullyConnected", "AddMaxPool2D", "AddReshape", "AddSoftmax"]}
MODEL = bytes(range(256)) * 16


def _target(spec_path: Path, name: str):
    project = load_spec(spec_path)
    target = next(t for t in project.spec.targets if t.name == name)
    return project, target, load_board(target.board)


@pytest.mark.parametrize("name", ["evkb", "teensy"])
def test_render_writes_the_declared_files_from_one_plan(tmp_path, name):
    project, target, board = _target(REPO / "projects" / "fire_alarm.yaml", name)
    files = imxrt.render(resolve(project, target, board, ANALYSIS), ANALYSIS, MODEL, tmp_path)
    assert sorted(str(f.relative_to(tmp_path)) for f in files) == imxrt.output_files(project, target, board)
    plan = json.loads((tmp_path / imxrt.PLAN_FILE).read_text())
    dtcm, itcm, gpr17 = plan["dtcm_size"], plan["itcm_size"], plan["gpr17"]
    # The arena (30000 + margin) + stack + estimates decide DTCM; the plan holds them.
    assert dtcm >= 30000 + board.imxrt.stack_bytes and dtcm & (dtcm - 1) == 0
    linker = (tmp_path / "linker.ld").read_text()
    assert re.search(rf"DTCM\s+\(RW\)\s+: ORIGIN = 0x20000000, LENGTH = 0x{dtcm:08X}", linker)
    assert re.search(rf"ITCM\s+\(RWX\) : ORIGIN = 0x00000000, LENGTH = 0x{itcm:08X}", linker)
    assert ".tensor_arena (NOLOAD)" in linker
    startup = (tmp_path / "startup_flexram.c").read_text()
    assert f"#define MICFORGE_GPR17_VALUE  {gpr17}U" in startup
    assert "__attribute__((naked, noreturn)) void Reset_Handler(void)" in startup
    mpu = (tmp_path / "board_mpu.c").read_text()
    size_code = dtcm.bit_length() - 2
    assert f"ARM_MPU_RBAR(6U, 0x20000000U)" in mpu and f", {size_code}U);" in mpu
    cmake = (tmp_path / "CMakeLists.txt").read_text()
    assert f"-mcpu={board.core} -mfpu={board.fpu} -mfloat-abi=hard" in cmake
    assert f"CPU_{board.imxrt.part}" in cmake
    assert "arm_cfft_radix4_q15.c\n  PROPERTIES COMPILE_OPTIONS \"-U__ARM_FEATURE_DSP\"" in cmake
    for var in ("MCUX_SDK_PATH", "TFLM_PATH", "CMSIS_DSP_PATH"):
        assert f"set({var} " in cmake
    pins = (tmp_path / "pin_mux.c").read_text()
    for pad in (board.imxrt.mic_data, board.imxrt.mic_clock, board.imxrt.mic_word_select, board.imxrt.led):
        assert f"IOMUXC_SetPinMux({pad.macro}, 0U);" in pins
    fcb = (tmp_path / "flash_config.c").read_text()
    assert f".sflashA1Size         = {board.flash_size}u" in fcb
    assert "mf_tensor_arena" in (tmp_path / "model.cpp").read_text()
    assert "FlexRAM plan:" in (tmp_path / "README.md").read_text()


def test_render_is_deterministic(tmp_path):
    project, target, board = _target(REPO / "projects" / "fire_alarm.yaml", "teensy")
    a = {f.name: f.read_bytes() for f in imxrt.render(resolve(project, target, board, ANALYSIS), ANALYSIS, MODEL, tmp_path / "a")}
    b = {f.name: f.read_bytes() for f in imxrt.render(resolve(project, target, board, ANALYSIS), ANALYSIS, MODEL, tmp_path / "b")}
    assert a == b


def _spec(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(body)
    return path


BASE = """name: t
audio: {sample_rate: RATE}
classes: [alarm, background]
dataset: {layout: synthetic}
model: {architecture: compact_cnn}
targets:
  - name: teensy
    board: teensy41
ARENA"""


def test_big_arena_refused_at_its_line(tmp_path):
    spec = _spec(tmp_path, BASE.replace("RATE", "16000").replace(
        "ARENA", "    arena:\n      size: 600000\n"))
    project, target, board = _target(spec, "teensy")
    problems = imxrt.check_target(resolve(project, target, board))
    assert len(problems) == 1
    p = problems[0]
    assert (p.line, p.col) == (10, 13)
    assert "DTCM needs" in p.message and "too many" in p.message
    with pytest.raises(SpecError):
        big = {"arena": {"measured_bytes": 600000}, "resolver": []}
        imxrt.render(resolve(project, target, board, big), big, MODEL, tmp_path / "out")


def test_sample_rate_the_sai_clock_cannot_make(tmp_path):
    spec = _spec(tmp_path, BASE.replace("RATE", "44100").replace("ARENA", ""))
    project, target, board = _target(spec, "teensy")
    (p,) = imxrt.check_target(resolve(project, target, board))
    assert (p.line, p.col) == (2, 22)
    assert "16000" in p.message and "48000" in p.message


def test_pin_override_refused(tmp_path):
    spec = _spec(tmp_path, BASE.replace("RATE", "16000").replace("ARENA", "    led_pin: 3\n"))
    project, target, board = _target(spec, "teensy")
    (p,) = imxrt.check_target(resolve(project, target, board))
    assert "pin overrides are not supported" in p.message and p.line == 8


@pytest.mark.parametrize("rate,ok", [(8000, True), (16000, True), (32000, True), (48000, True),
                                     (44100, False), (22050, False)])
def test_bit_clock_divisible(rate, ok):
    assert imxrt.bclk_divisible(rate) is ok
