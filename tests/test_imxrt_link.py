"""Link a small Cortex-M7 program with rendered RT1062 linker scripts (arm-none-eabi-gcc)
and check the ELF with generator.elfcheck: boot headers, arena in DTCM, ITCM code,
overlaps; and that a missing FlexSPI configuration block stops the link."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from generator.boards import load_board
from generator.elfcheck import check_elf, format_report
from generator.firmware import imxrt
from generator.flexram import Sizes, plan

KB = 1024
GCC = shutil.which("arm-none-eabi-gcc")
pytestmark = pytest.mark.skipif(GCC is None, reason="needs gcc-arm-none-eabi (apt)")
CPU = ["-mcpu=cortex-m7", "-mfpu=fpv5-d16", "-mfloat-abi=hard", "-mthumb", "-O2",
       "-ffunction-sections", "-fdata-sections"]

HOT_C = """
int hot_dot(const short *a, const short *b, int n) {
    int acc = 0;
    for (int i = 0; i < n; i++) acc += a[i] * b[i];
    return acc;
}
"""

MAIN_C = """
#include <stdint.h>
extern int hot_dot(const short *a, const short *b, int n);
extern uint32_t __StackTop[];
#ifndef NO_FCB
__attribute__((section(".boot_hdr.conf"), used)) const uint32_t fcb[128] = {0x42464346u, 0x56010000u};
#endif
__attribute__((section(".boot_hdr.ivt"), used)) const uint32_t ivt[8] = {0x412000D1u, 0x60002000u};
__attribute__((section(".boot_hdr.boot_data"), used)) const uint32_t boot_data[4] = {0x60000000u, 0x800000u};
#ifndef NO_ARENA
__attribute__((section(".tensor_arena"), aligned(16))) uint8_t mf_tensor_arena[ARENA];
#define ARENA_BYTE mf_tensor_arena[3]
#else
#define ARENA_BYTE 0  /* a capture image: no model, no arena */
#endif
short table[64] = {1, 2, 3};
short zeros[64];
NONCACHE int32_t dma[256];
void Reset_Handler(void);
__attribute__((section(".isr_vector"), used)) const void *vectors[2] = {__StackTop, Reset_Handler};
int main(void) { return hot_dot(table, zeros, 64) + ARENA_BYTE + (int)dma[1]; }
void Reset_Handler(void) { main(); for (;;) {} }
"""


def _link(tmp: Path, board_id: str, sizes: Sizes, arena: int, *defines: str) -> tuple:
    board = load_board(board_id)
    fp = plan(board, sizes)
    (tmp / "linker.ld").write_text(imxrt.render_linker(board, fp, 1024, "link_test",
                                                       "-DNO_ARENA" not in defines))
    (tmp / "hot.c").write_text(HOT_C)
    (tmp / "main.c").write_text(MAIN_C)
    subprocess.run([GCC, *CPU, "-c", "hot.c", "-o", "hot.o"], cwd=tmp, check=True)
    subprocess.run(["arm-none-eabi-ar", "rcs", "libcmsis_nn.a", "hot.o"], cwd=tmp, check=True)
    cmd = [GCC, *CPU, f"-DARENA={arena}", '-DNONCACHE=__attribute__((section("NonCacheable")))',
           *defines, "main.c", "-L.", "-lcmsis_nn", "-T", "linker.ld", "-nostartfiles",
           "--specs=nosys.specs", "-Wl,--gc-sections", "-o", "fw.elf"]
    result = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True)
    return board, fp, result


def test_linked_image_passes_the_elf_checks(tmp_path):
    board, fp, result = _link(tmp_path, "teensy41", Sizes(40 * KB, 100_000, 8 * KB), 64 * KB)
    assert result.returncode == 0, result.stderr
    report = check_elf(tmp_path / "fw.elf", fp, board)
    assert report.ok, format_report(report)
    assert report.itcm_code > 0  # hot_dot from libcmsis_nn.a went to ITCM
    assert fp.dtcm_origin <= report.arena[0] < fp.dtcm_origin + fp.dtcm_size
    assert report.arena[1] == 64 * KB
    used, size = report.usage["DTCM"]
    assert 64 * KB + 8 * KB <= used <= size  # arena + stack at least


def test_a_capture_image_is_checked_without_an_arena(tmp_path):
    board, fp, result = _link(tmp_path, "mimxrt1060_evkb", Sizes(0, 20_000, 8 * KB), 0,
                              "-DNO_ARENA")
    assert result.returncode == 0, result.stderr
    report = check_elf(tmp_path / "fw.elf", fp, board, arena=False)
    assert report.ok and report.arena is None, format_report(report)
    assert check_elf(tmp_path / "fw.elf", fp, board).problems == [
        "symbol mf_tensor_arena not found"]


def test_an_arena_in_an_image_checked_as_capture_is_a_problem(tmp_path):
    board, fp, result = _link(tmp_path, "teensy41", Sizes(0, 60_000, 8 * KB), 16 * KB)
    assert result.returncode == 0, result.stderr
    assert check_elf(tmp_path / "fw.elf", fp, board, arena=False).problems == [
        "symbol mf_tensor_arena is in an image checked as having no model (a capture image)"]


def test_elf_check_catches_a_plan_the_image_was_not_linked_for(tmp_path):
    board, fp, result = _link(tmp_path, "teensy41", Sizes(40 * KB, 200 * KB, 8 * KB), 150 * KB)
    assert result.returncode == 0, result.stderr
    smaller = plan(board, Sizes(0, 100_000, 8 * KB))  # 128 KB DTCM, no ITCM
    report = check_elf(tmp_path / "fw.elf", smaller, board)
    text = "\n".join(report.problems)
    assert "mf_tensor_arena" in text and "not in DTCM" in text
    assert "ITCM code is" in text
    assert "outside the plan's memory regions" in text


def test_link_without_flash_config_block_fails(tmp_path):
    _, _, result = _link(tmp_path, "mimxrt1060_evkb", Sizes(0, 60_000, 8 * KB), 16 * KB, "-DNO_FCB")
    assert result.returncode != 0
    assert "FlexSPI configuration block (.boot_hdr.conf) is missing" in result.stderr


def test_arena_larger_than_planned_dtcm_does_not_link(tmp_path):
    # Plan for 100 KB of DTCM needs, then link a 200 KB arena: the linker refuses.
    _, _, result = _link(tmp_path, "teensy41", Sizes(0, 100_000, 8 * KB), 200 * KB)
    assert result.returncode != 0
    assert "DTCM" in result.stderr and "overflow" in result.stderr
