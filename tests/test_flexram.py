"""FlexRAM planner: the bank split, register values and refusals, with golden plans
and linker scripts (MICFORGE_UPDATE_GOLDEN=1 rewrites the golden files)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import assert_golden
from generator import flexram
from generator.boards import load_board
from generator.firmware import imxrt
from generator.flexram import PlanError, Sizes, plan

GOLDEN = Path(__file__).parent / "golden" / "imxrt1062"
KB = 1024

# name -> (board, sizes); DMA buffers of 4 KB for the linker scripts.
CASES = {
    "typical": ("teensy41", Sizes(itcm_code=40 * KB, dtcm=100_000, ocram=8 * KB)),
    "fuse_default_split": ("mimxrt1060_evkb", Sizes(itcm_code=100 * KB, dtcm=100 * KB, ocram=0)),
    "arena_needs_all_dtcm": ("teensy41", Sizes(itcm_code=0, dtcm=512 * KB, ocram=8 * KB)),
    "no_itcm_code": ("mimxrt1060_evkb", Sizes(itcm_code=0, dtcm=60_000, ocram=8 * KB)),
    "hot_code_left_in_flash": ("teensy41", Sizes(itcm_code=300 * KB, dtcm=200 * KB, ocram=8 * KB)),
}
REFUSED = {
    "dtcm_too_big": ("teensy41", Sizes(itcm_code=0, dtcm=600 * KB, ocram=0)),
    "ocram_too_big": ("mimxrt1060_evkb", Sizes(itcm_code=0, dtcm=512 * KB, ocram=600 * KB)),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_plan_and_linker_scriptassert_golden(name):
    board_id, sizes = CASES[name]
    board = load_board(board_id)
    fp = plan(board, sizes)
    assert_golden(GOLDEN / f"plan_{name}.json", json.dumps(fp.to_json(), indent=2, sort_keys=True) + "\n")
    assert_golden(GOLDEN / f"linker_{name}.ld", imxrt.render_linker(board, fp, 4 * KB, name))


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_refusalassert_golden(name):
    board_id, sizes = REFUSED[name]
    with pytest.raises(PlanError) as err:
        plan(load_board(board_id), sizes)
    assert_golden(GOLDEN / f"refused_{name}.txt", str(err.value) + "\n")


def test_fuse_default_split_gives_the_documented_gpr17():
    # IMXRT1060RM: the fuse default is 128 KB ITCM / 128 KB DTCM / 256 KB OCRAM, FLEXRAM_BANK_CFG 0xFFAA5555.
    fp = plan(load_board("mimxrt1060_evkb"), CASES["fuse_default_split"][1])
    assert (fp.itcm_banks, fp.dtcm_banks, fp.ocram_banks) == (4, 4, 8)
    assert fp.gpr17 == 0xFFAA5555
    assert fp.gpr14_set == (8 << 16) | (8 << 20)  # 128 KB -> code 8
    assert fp.gpr16_set == 0b111 and fp.gpr16_clear == 0


@pytest.mark.parametrize("size,code", [(0, 0), (4 * KB, 3), (32 * KB, 6), (128 * KB, 8), (512 * KB, 10)])
def test_tcm_size_codes(size, code):
    assert flexram.tcm_size_code(size) == code


@pytest.mark.parametrize("size", [3 * KB, 96 * KB, 1024 * KB])
def test_tcm_size_must_be_power_of_two(size):
    with pytest.raises(ValueError):
        flexram.tcm_size_code(size)


@pytest.mark.parametrize("dtcm", [1, 30 * KB, 33 * KB, 70 * KB, 200 * KB, 300 * KB, 470 * KB, 512 * KB])
@pytest.mark.parametrize("itcm", [0, 1, 31 * KB, 100 * KB, 250 * KB])
def test_every_plan_is_consistent(dtcm, itcm):
    board = load_board("teensy41")
    fp = plan(board, Sizes(itcm_code=itcm, dtcm=dtcm, ocram=16 * KB))
    assert fp.itcm_banks + fp.dtcm_banks + fp.ocram_banks == 16
    for n in (fp.itcm_banks, fp.dtcm_banks):
        assert n in (0, 1, 2, 4, 8, 16)
    assert fp.dtcm_size >= dtcm
    assert fp.itcm_code_in_itcm == (itcm > 0 and fp.itcm_size >= itcm)
    if not fp.itcm_code_in_itcm:
        assert fp.itcm_banks == 0
    # GPR17 says the same split, two bits a bank.
    kinds = [(fp.gpr17 >> (2 * i)) & 3 for i in range(16)]
    assert kinds.count(flexram.BANK_ITCM) == fp.itcm_banks
    assert kinds.count(flexram.BANK_DTCM) == fp.dtcm_banks
    assert kinds.count(flexram.BANK_OCRAM) == fp.ocram_banks
    # GPR14 sizes agree with the banks.
    assert (fp.gpr14_set >> 16) & 0xF == flexram.tcm_size_code(fp.itcm_size)
    assert (fp.gpr14_set >> 20) & 0xF == flexram.tcm_size_code(fp.dtcm_size)
    json.dumps(fp.to_json())


def test_refusal_says_by_how_much():
    with pytest.raises(PlanError, match=r"90112 bytes \(3 banks\) too many"):
        plan(load_board("teensy41"), Sizes(itcm_code=0, dtcm=600 * KB, ocram=0))


def test_headroom_dropped_only_when_needed():
    board = load_board("teensy41")
    assert plan(board, Sizes(0, 120 * KB, 0)).dtcm_banks == 8  # 120 KB + 12.5% > 128 KB
    assert plan(board, Sizes(0, 500 * KB, 0)).dtcm_banks == 16  # fits only without headroom


def test_mpu_regions_follow_the_plan():
    board = load_board("teensy41")
    fp = plan(board, CASES["typical"][1])
    regions = imxrt.mpu_regions(board, fp, 0x20200000, 4 * KB)
    by_why = {r["why"].split(",")[0]: r for r in regions}
    assert by_why["ITCM"]["size"] == fp.itcm_size and by_why["DTCM"]["size"] == fp.dtcm_size
    ncache = by_why["DMA audio buffers: normal"]
    assert (ncache["tex"], ncache["c"], ncache["b"]) == (1, 0, 0)
    assert ncache["number"] > by_why["OCRAM2: dedicated OCRAM"]["number"]  # higher number wins
    flex = by_why["FlexRAM OCRAM"]
    assert flex["srd"] == 0b11100000  # 10 banks = 320 KB -> 5 of 8 subregions of 64 KB
