"""Board catalogue: SoC file + board file merged into one Board; a new board is one YAML file;
mistakes in either file reported at their file:line:col; register addresses from the SoC file."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from conftest import REPO
from generator import boards
from generator.boards import BOARDS_DIR, SOC_SUBDIR, all_boards, board_files, board_ids, load_board, load_soc
from generator.errors import SpecError
from generator.spec import load_spec
from generator.targets import output_files, render_target

ANALYSIS = {"arena": {"measured_bytes": 4321}, "model_bytes": 64, "macs": 60000,
            "input": {"dtype": "int8", "shape": [1, 31, 32, 1]},
            "resolver": ["AddConv2D", "AddFullyConnected", "AddMaxPool2D", "AddReshape", "AddSoftmax"]}
MODEL = b"\0" * 64  # the renderers copy the bytes; no test here runs the model

FEATHER = """\
# Adafruit Feather RP2040 with a PDM microphone on D24/D25: everything else is the SoC's.
id: feather_rp2040
title: Adafruit Feather RP2040 + PDM microphone
soc: rp2040
sdk_board: adafruit_feather_rp2040
flash_size: 0x800000          # GD25Q64C, 8 MB
reserved_pins: [13, 16]       # LED, NeoPixel
led_pin: 13
microphone:
  interface: pdm
  data_pin: 24
  clock_pin: 25
  peripheral: pio0
  min_clock_hz: 1000000
  max_clock_hz: 3250000
  part: PDM MEMS breakout
arena_region: RAM
"""


@pytest.fixture
def boards_dir(tmp_path: Path) -> Path:
    """An empty board catalogue with the repository's SoC files."""
    shutil.copytree(BOARDS_DIR / SOC_SUBDIR, tmp_path / "boards" / SOC_SUBDIR)
    return tmp_path / "boards"


def _write(boards_dir: Path, name: str, text: str) -> Path:
    path = boards_dir / f"{name}.yaml"
    path.write_text(text)
    return path


def _errors(board_id: str, boards_dir: Path) -> list[str]:
    with pytest.raises(SpecError) as exc:
        load_board(board_id, boards_dir)
    return [str(p) for p in exc.value.problems]


# ------------------------------------------------------------------ the catalogue

def test_catalogue_boards_take_the_chip_facts_from_their_soc():
    for b in all_boards():
        soc = load_soc(b.soc)
        assert (b.core, b.fpu, b.dsp_extensions) == (soc.core, soc.fpu, soc.dsp_extensions)
        assert b.flexram == soc.flexram
        assert {r.name for r in soc.regions()} | {"FLASH"} == {r.name for r in b.memory}
        flash = b.region("FLASH")
        assert (flash.origin, flash.length) == (soc.xip.origin, b.flash_size)
        assert [r.origin for r in b.memory] == sorted(r.origin for r in b.memory)
    assert "rp2040" not in board_ids() and "imxrt1062" not in board_ids()


def test_flexram_windows_are_derived_from_the_pool():
    b = load_board("teensy41")
    pool = b.flexram
    assert (b.region("ITCM").origin, b.region("DTCM").origin, b.region("OCRAM_FLEX").origin) == \
        (pool.itcm_origin, pool.dtcm_origin, pool.ocram_origin)
    assert {b.region(n).length for n in ("ITCM", "DTCM", "OCRAM_FLEX")} == {pool.total} == {512 * 1024}
    assert (pool.iomuxc_gpr.base, pool.iomuxc_gpr.gpr17) == (0x400AC000, 0x44)


def test_board_files_name_the_board_and_its_soc():
    assert board_files("teensy41") == [BOARDS_DIR / "teensy41.yaml", BOARDS_DIR / "soc" / "imxrt1062.yaml"]


def test_rt1062_boards_name_their_sdk_folder():
    evkb, teensy = load_board("mimxrt1060_evkb"), load_board("teensy41")
    assert evkb.sdk_board == "evkbmimxrt1060" and evkb.imxrt.sdk_files_from is None
    assert teensy.sdk_board is None and teensy.imxrt.sdk_files_from == "evkbmimxrt1060"
    assert "MIMXRT1060-EVKB" in teensy.imxrt.sdk_files_note


# ------------------------------------------------------------------ a new board is one file

def test_a_new_rp2040_board_is_one_file(boards_dir):
    _write(boards_dir, "feather_rp2040", FEATHER)
    assert board_ids(boards_dir) == ["feather_rp2040"]
    b = load_board("feather_rp2040", boards_dir)
    pico = load_board("rpi_pico")
    # The chip's facts come from boards/soc/rp2040.yaml ...
    assert (b.core, b.clock_hz, b.fpu, b.gpio_count) == (pico.core, pico.clock_hz, pico.fpu, pico.gpio_count)
    assert [r for r in b.memory if r.name != "FLASH"] == [r for r in pico.memory if r.name != "FLASH"]
    assert b.region("RAM").length == 256 * 1024
    # ... the flash from the board's size at the SoC's XIP address.
    assert (b.region("FLASH").origin, b.region("FLASH").length) == (0x10000000, 8 * 1024 * 1024)


def test_a_new_rp2040_board_renders(boards_dir, tmp_path):
    # The firmware takes the Board object, so a board outside boards/ renders like any other; the
    # spec's target still names rpi_pico (the spec checks look boards up in boards/).
    _write(boards_dir, "feather_rp2040", FEATHER)
    board = load_board("feather_rp2040", boards_dir)
    project = load_spec(REPO / "projects" / "fire_alarm.yaml")
    target = next(t for t in project.spec.targets if t.name == "pico")
    out = tmp_path / "fw"
    files = render_target(project, target, board, ANALYSIS, MODEL, out)
    assert sorted(str(f.relative_to(out)) for f in files) == output_files(project, target, board)
    cmake = (out / "CMakeLists.txt").read_text()
    assert 'set(PICO_BOARD adafruit_feather_rp2040 CACHE STRING "pico-sdk board (Adafruit Feather' in cmake
    assert "--base 0x10000000" in cmake
    main = (out / "mf_board.c").read_text()
    assert "#define LED_PIN (13U)" in main


def test_a_board_may_set_its_own_clock_and_gpio_count(boards_dir):
    _write(boards_dir, "fast", FEATHER.replace("id: feather_rp2040", "id: fast")
           .replace("soc: rp2040\n", "soc: rp2040\nclock_hz: 200000000\ngpio_count: 26\n")
           .replace("data_pin: 24", "data_pin: 20").replace("clock_pin: 25", "clock_pin: 21"))
    b = load_board("fast", boards_dir)
    assert (b.clock_hz, b.gpio_count) == (200_000_000, 26)


# ------------------------------------------------------------------ mistakes, at their lines

def test_board_overriding_a_chip_fact_is_an_error_at_its_line(boards_dir):
    path = _write(boards_dir, "bad", FEATHER.replace("id: feather_rp2040", "id: bad")
                  .replace("soc: rp2040\n", "soc: rp2040\ncore: cortex-m7\nmemory: []\n"))
    assert _errors("bad", boards_dir) == [
        f"{path}:5:1: 'core' is a fact of the Raspberry Pi RP2040, set in "
        f"{boards_dir / 'soc' / 'rp2040.yaml'}: cortex-m0plus; a board may not override it: remove it",
        f"{path}:6:1: 'memory' is not a board key: the chip's regions come from "
        f"{boards_dir / 'soc' / 'rp2040.yaml'} and FLASH from flash_size; remove it"]


def test_catalogue_files_are_named_as_in_the_repository():
    # Errors in the repository's own files name them boards/..., as spec errors name projects/...
    assert boards._display(BOARDS_DIR / SOC_SUBDIR / "rp2040.yaml", BOARDS_DIR) == "boards/soc/rp2040.yaml"
    assert boards._display(BOARDS_DIR / "teensy41.yaml", BOARDS_DIR) == "boards/teensy41.yaml"
    with pytest.raises(KeyError):
        load_soc("nrf52")


def test_unknown_soc_suggests_one(boards_dir):
    path = _write(boards_dir, "bad", FEATHER.replace("id: feather_rp2040", "id: bad")
                  .replace("soc: rp2040", "soc: rp2044"))
    assert _errors("bad", boards_dir) == [f"{path}:4:6: unknown soc 'rp2044' (did you mean 'rp2040'?)"]


def test_unknown_board_key_is_reported_with_a_hint(boards_dir):
    path = _write(boards_dir, "bad", FEATHER.replace("id: feather_rp2040", "id: bad")
                  .replace("led_pin: 13", "led_pin: 13\nled_pwm: true"))
    assert _errors("bad", boards_dir) == [f"{path}:9:1: unknown key 'led_pwm' (did you mean 'led_pin'?)"]


def test_flash_larger_than_the_xip_window(boards_dir):
    path = _write(boards_dir, "bad", FEATHER.replace("id: feather_rp2040", "id: bad")
                  .replace("flash_size: 0x800000", "flash_size: 0x2000000"))
    (msg,) = _errors("bad", boards_dir)
    assert msg.startswith(f"{path}:6:13: flash_size 0x2000000 is larger than the rp2040's XIP window")


def test_cross_checks_point_at_the_board_line(boards_dir):
    path = _write(boards_dir, "bad", FEATHER.replace("id: feather_rp2040", "id: bad")
                  .replace("arena_region: RAM", "arena_region: SRAM"))
    (msg,) = _errors("bad", boards_dir)
    assert msg.startswith(f"{path}:17:15: arena_region 'SRAM' is not a memory region (FLASH, RAM,")
    path = _write(boards_dir, "pins", FEATHER.replace("id: feather_rp2040", "id: pins")
                  .replace("led_pin: 13", "led_pin: 30"))
    assert _errors("pins", boards_dir) == [f"{path}:8:10: led_pin 30 is beyond gpio_count 30"]


def test_rp2040_board_needs_its_pico_board_name(boards_dir):
    path = _write(boards_dir, "bad", FEATHER.replace("id: feather_rp2040", "id: bad")
                  .replace("sdk_board: adafruit_feather_rp2040\n", ""))
    (msg,) = _errors("bad", boards_dir)
    assert msg.startswith(f"{path}:") and "PICO_BOARD" in msg


def test_error_in_the_soc_file_names_the_soc_file(boards_dir):
    soc = boards_dir / SOC_SUBDIR / "rp2040.yaml"
    soc.write_text(soc.read_text().replace("fpu: none", "fpu: vfpv4"))
    _write(boards_dir, "feather_rp2040", FEATHER)
    (msg,) = _errors("feather_rp2040", boards_dir)
    assert msg.startswith(f"{soc}:6:6: 'vfpv4' is not allowed here")


def test_soc_regions_may_not_overlap(boards_dir):
    soc = boards_dir / SOC_SUBDIR / "rp2040.yaml"
    soc.write_text(soc.read_text().replace("origin: 0x20040000", "origin: 0x2003F000"))
    _write(boards_dir, "feather_rp2040", FEATHER)
    (msg,) = _errors("feather_rp2040", boards_dir)
    assert msg.startswith(f"{soc}:") and "RAM and SCRATCH_X overlap" in msg


def _teensy_in(boards_dir: Path, edit=lambda s: s) -> str:
    text = edit((BOARDS_DIR / "teensy41.yaml").read_text())
    _write(boards_dir, "teensy41", text)
    return str(boards_dir / "teensy41.yaml")


def test_borrowed_sdk_files_need_a_reason(boards_dir):
    path = _teensy_in(boards_dir, lambda s: s[:s.index("  sdk_files_note:")] + s[s.index("arena_region:"):])
    (msg,) = _errors("teensy41", boards_dir)
    assert msg.startswith(f"{path}:") and "sdk_files_note must say why" in msg


def test_rt1062_board_without_gpio_count_is_told(boards_dir):
    path = _teensy_in(boards_dir, lambda s: s.replace("gpio_count: 55                # Teensy pin numbers 0..54\n", ""))
    assert _errors("teensy41", boards_dir) == [f"{path}:2:1: missing required key 'gpio_count'"]


# ------------------------------------------------------------------ register addresses are data

def test_startup_registers_come_from_the_soc_file(boards_dir, tmp_path):
    soc = boards_dir / SOC_SUBDIR / "imxrt1062.yaml"
    soc.write_text(soc.read_text().replace("base: 0x400AC000", "base: 0x400AD000")
                   .replace("gpr17: 0x44", "gpr17: 0x48"))
    _teensy_in(boards_dir)
    board = load_board("teensy41", boards_dir)
    project = load_spec(REPO / "projects" / "fire_alarm.yaml")
    target = next(t for t in project.spec.targets if t.name == "teensy")
    out = tmp_path / "fw"
    render_target(project, target, board, dict(ANALYSIS, arena={"measured_bytes": 30000}), MODEL, out)
    startup = (out / "startup_flexram.c").read_text()
    assert "#define MICFORGE_GPR_BASE     0x400AD000U" in startup
    assert '"str   r1, [r0, #0x48]\\n"' in startup and "#0x44" not in startup
    cmake = (out / "CMakeLists.txt").read_text()
    assert "${MCUX_SDK_PATH}/boards/evkbmimxrt1060/clock_config.c" in cmake
    assert "PJRC Teensy 4.1 has no folder there" in cmake
    assert "evkbmimxrt1060_flexspi_nor_config.h" in (out / "flash_config.c").read_text()
