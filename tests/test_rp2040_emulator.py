"""benchmarks/rp2040_emulator.py `size`: memory per board region from an ELF's sections.

Flash holds what runs from flash and the load image of every section copied to RAM at boot
(.data, scratch code), so flash = text + rodata + .data's image; RAM holds .data, .bss and
the stacks. Checked on a synthetic section list laid out as pico-sdk's memmap_default.ld lays
out a firmware, on `objdump -h` text, and on a small ELF linked with arm-none-eabi-gcc.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess

import pytest

from generator.boards import load_board

from conftest import REPO


def _bench():
    spec = importlib.util.spec_from_file_location("rp2040_emulator",
                                                  REPO / "benchmarks" / "rp2040_emulator.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


bench = _bench()
S = bench.Section


def test_flash_counts_text_rodata_and_the_data_load_image():
    pico = load_board("rpi_pico")
    sections = [
        S(".boot2", 0x100, 0x10000000, 0x10000000, alloc=True, load=True),
        S(".text", 0x9000, 0x10000100, 0x10000100, alloc=True, load=True),
        S(".rodata", 0x3000, 0x10009100, 0x10009100, alloc=True, load=True),
        S(".ram_vector_table", 0xC0, 0x20000000, 0x20000000, alloc=True, load=False),
        S(".data", 0x800, 0x200000C0, 0x1000C100, alloc=True, load=True),   # copied at boot
        S(".uninitialized_data", 0x1300, 0x200008C0, 0x200008C0, alloc=True, load=False),
        S(".bss", 0x2000, 0x20001BC0, 0x1000C900, alloc=True, load=False),  # NOBITS: no image
        S(".heap", 0x800, 0x20003BC0, 0x1000C900, alloc=True, load=False),
        S(".scratch_x", 0x40, 0x20040000, 0x1000C900, alloc=True, load=True),  # copied at boot
        S(".stack_dummy", 0x800, 0x20041000, 0x20041000, alloc=True, load=False),
        S(".flash_end", 0, 0x1000C940, 0x1000C940, alloc=True, load=True),
        S(".debug_info", 0x12345, 0, 0, alloc=False, load=False),
        S(".ARM.attributes", 0x2E, 0, 0, alloc=False, load=False),
    ]
    used, rows = bench.region_use(sections, pico.memory)
    assert used["FLASH"] == 0x100 + 0x9000 + 0x3000 + 0x800 + 0x40
    assert used["RAM"] == 0xC0 + 0x800 + 0x1300 + 0x2000 + 0x800
    assert used["SCRATCH_X"] == 0x40
    assert used["SCRATCH_Y"] == 0x800
    assert (".data (load image)", 0x800, "FLASH") in rows and (".data", 0x800, "RAM") in rows
    assert not any(name.startswith((".bss", ".heap", ".debug")) and region == "FLASH"
                   for name, _, region in rows)


OBJDUMP_H = """
firmware.elf:     file format elf32-littlearm

Sections:
Idx Name          Size      VMA       LMA       File off  Algn
  0 .boot2        00000100  10000000  10000000  00001000  2**0
                  CONTENTS, ALLOC, LOAD, READONLY, CODE
  1 .text         00009000  10000100  10000100  00001100  2**2
                  CONTENTS, ALLOC, LOAD, READONLY, CODE
  2 .data         00000800  200000c0  1000c100  000100c0  2**4
                  CONTENTS, ALLOC, LOAD, CODE
  3 .bss          00002000  20001bc0  1000c900  00011bc0  2**3
                  ALLOC
  4 .debug_info   00012345  00000000  00000000  00012000  2**0
                  CONTENTS, READONLY, DEBUGGING, OCTETS
"""


def test_objdump_sections_parse_with_their_flags():
    secs = bench.parse_sections(OBJDUMP_H)
    assert [s.name for s in secs] == [".boot2", ".text", ".data", ".bss", ".debug_info"]
    data = secs[2]
    assert (data.size, data.vma, data.lma, data.alloc, data.load) == (0x800, 0x200000C0,
                                                                      0x1000C100, True, True)
    assert (secs[3].alloc, secs[3].load) == (True, False)
    assert not secs[4].alloc
    used, _ = bench.region_use(secs, load_board("rpi_pico").memory)
    assert used["FLASH"] == 0x100 + 0x9000 + 0x800 and used["RAM"] == 0x800 + 0x2000


LINKER = """
MEMORY { FLASH (rx) : ORIGIN = 0x10000000, LENGTH = 2048K
         RAM (rwx) : ORIGIN = 0x20000000, LENGTH = 256K }
SECTIONS {
  .text : { *(.text*) *(.rodata*) } > FLASH
  .data : { *(.data*) } > RAM AT> FLASH
  .bss (NOLOAD) : { *(.bss*) *(COMMON) } > RAM
}
"""
SOURCE = """
int table[300] = {1, 2, 3};            /* .data: 1200 bytes, image in flash */
const char text[100] = "flash";        /* .rodata */
int zeros[500];                        /* .bss: no image */
int start(void) { return table[0] + text[0] + zeros[1]; }
"""


def test_size_of_a_linked_elf_puts_the_data_image_in_flash(tmp_path):
    gcc, objdump = shutil.which("arm-none-eabi-gcc"), shutil.which("arm-none-eabi-objdump")
    if gcc is None or objdump is None:
        pytest.skip("arm-none-eabi-gcc/objdump are not installed")
    (tmp_path / "t.c").write_text(SOURCE)
    (tmp_path / "t.ld").write_text(LINKER)
    elf = tmp_path / "t.elf"
    subprocess.run([gcc, "-mcpu=cortex-m0plus", "-mthumb", "-O1", "-nostdlib", "-e", "start",
                    "-T", str(tmp_path / "t.ld"), str(tmp_path / "t.c"), "-o", str(elf)],
                   check=True)
    text = subprocess.run([objdump, "-h", str(elf)], capture_output=True, text=True,
                          check=True).stdout
    secs = {s.name: s for s in bench.parse_sections(text)}
    used, _ = bench.region_use(list(secs.values()), load_board("rpi_pico").memory)
    assert secs[".data"].size == 1200 and secs[".bss"].size == 2000
    assert used["FLASH"] == secs[".text"].size + 1200
    assert used["RAM"] == 1200 + 2000
