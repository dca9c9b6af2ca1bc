"""The rendered front end, cross-compiled and run under QEMU, equals the Python reference bit for bit:
on a Cortex-M7 (mps2-an500) with CMSIS-DSP's DSP-instruction paths when the sources in
cmsis.PORTABLE_SOURCES are built with cmsis.PORTABLE_FLAGS (and not without that rule), and on
a Cortex-M0 (micro:bit; ARMv6-M like the RP2040's M0+).

CMSIS-DSP's arm_math_types.h includes CMSIS-Core's cmsis_compiler.h on Cortex-M, which the
cmsisdsp sdist lacks: the builds use micforge's own (generator/cmsis_core), or the folder
CMSIS_CORE_PATH names (e.g. pico-sdk's src/rp2_common/cmsis/stub/CMSIS/Core/Include or CMSIS_5's
CMSIS/Core/Include). Skipped only without arm-none-eabi-gcc or qemu-system-arm.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from generator import cmsis, hostc
from generator import features as F
from generator.cmsis_core import core_include
from generator.spec import load_spec

from conftest import REPO

TOOLS = [shutil.which(t) for t in ("arm-none-eabi-gcc", "qemu-system-arm")]
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(None in TOOLS, reason="needs arm-none-eabi-gcc and qemu-system-arm"),
]

M7 = dict(cpu=["-mcpu=cortex-m7", "-mthumb", "-mfpu=fpv5-d16", "-mfloat-abi=hard"],
          qemu=["-M", "mps2-an500", "-cpu", "cortex-m7"], code="4M", ram="4M")
# The RP2040's core is a Cortex-M0+; QEMU's nearest is the micro:bit's Cortex-M0 (ARMv6-M too).
M0 = dict(cpu=["-mcpu=cortex-m0plus", "-mthumb"], qemu=["-M", "microbit"], code="256K", ram="16K")
LINKER = """MEMORY { CODE (rx) : ORIGIN = 0x00000000, LENGTH = %(code)s
         RAM (rwx) : ORIGIN = 0x20000000, LENGTH = %(ram)s }
ENTRY(reset_handler)
SECTIONS {
  .text : { KEEP(*(.vectors)) *(.text*) *(.rodata*) } > CODE
  .ARM.exidx : { *(.ARM.exidx*) } > CODE
  .data : { *(.data*) } > RAM
  .bss (NOLOAD) : { __bss_start = .; *(.bss*) *(COMMON) . = ALIGN(4); __bss_end = .; } > RAM
  __stack_top = ORIGIN(RAM) + LENGTH(RAM);
}
"""
# Bare-metal main: feature maps of the clips in clips.h, one hex line each, over semihosting.
MAIN = r"""#include <stdint.h>
#include "mf_features.h"
#include "clips.h"
extern uint32_t __bss_start, __bss_end, __stack_top;
int main(void);
static int semihost(int op, const void *arg) {
    register int r0 __asm__("r0") = op;
    register const void *r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}
void reset_handler(void) {
    for (uint32_t *p = &__bss_start; p < &__bss_end; p++) { *p = 0; }
#if defined(__ARM_FP)
    *(volatile uint32_t *)0xE000ED88 |= (0xFU << 20);  /* CPACR: FPU on */
#endif
    main();
    semihost(0x18, (const void *)0x20026U);  /* SYS_EXIT, ADP_Stopped_ApplicationExit */
    for (;;) {}
}
__attribute__((section(".vectors"), used))
static const void *vectors[2] = {&__stack_top, (const void *)reset_handler};
static mf_features_t fe;
static int8_t map[MF_FE_MAP_SIZE];
static char line[MF_FE_MAP_SIZE * 2 + 2];
int main(void) {
    static const char hex[] = "0123456789abcdef";
    uint32_t c, i;
    if (mf_features_init(&fe) != 0) { semihost(0x04, "init failed\n"); return 1; }
    for (c = 0; c < NUM_CLIPS; c++) {
        mf_features_clip(&fe, clips[c], map);
        for (i = 0; i < MF_FE_MAP_SIZE; i++) {
            line[2 * i] = hex[(uint8_t)map[i] >> 4];
            line[2 * i + 1] = hex[(uint8_t)map[i] & 15U];
        }
        line[2 * MF_FE_MAP_SIZE] = '\n';
        line[2 * MF_FE_MAP_SIZE + 1] = 0;
        semihost(0x04, line);  /* SYS_WRITE0 */
    }
    return 0;
}
"""


def _clips(fe: F.FrontEnd, n: int) -> np.ndarray:
    rng = np.random.default_rng(7)
    t = np.arange(fe.clip_samples) / fe.sample_rate
    out = [10 ** rng.uniform(-4, 0) * (rng.normal(0, 6000, fe.clip_samples)
                                       + 25000 * np.sin(2 * np.pi * rng.uniform(100, 7000) * t))
           for _ in range(n)]
    return np.clip(np.round(np.stack(out)), -32768, 32767).astype(np.int16)


def _run(core: dict, fe: F.FrontEnd, clips: np.ndarray, work: Path, portable_rule: bool) -> np.ndarray:
    work.mkdir(parents=True)
    hostc.render_sources(fe, work, "fire_alarm.yaml")
    (work / "main.c").write_text(MAIN)
    (work / "link.ld").write_text(LINKER % core)
    rows = ",\n".join("{" + ",".join(map(str, c)) + "}" for c in clips)
    (work / "clips.h").write_text(f"#define NUM_CLIPS {len(clips)}U\nstatic const int16_t "
                                  f"clips[NUM_CLIPS][MF_FE_CLIP_SAMPLES] = {{\n{rows}\n}};\n")
    dsp = cmsis.cmsis_dsp()
    core_dir = core_include(os.environ.get("CMSIS_CORE_PATH"))
    inc = [f"-I{work}", f"-I{core_dir}", *[f"-I{d}" for d in dsp.include_dirs]]
    gcc = [TOOLS[0], *core["cpu"], "-O2", "-ffunction-sections", "-fdata-sections", *inc]
    objects = []
    for src in dsp.sources + [work / "mf_features.c", work / "main.c"]:
        obj = work / (src.name + ".o")
        flags = list(cmsis.PORTABLE_FLAGS) if portable_rule and src in dsp.portable_sources else []
        if src.parent == work:
            flags += ["-std=c99", "-Wall", "-Werror"]
        run = subprocess.run([*gcc, *flags, "-c", str(src), "-o", str(obj)], capture_output=True, text=True)
        assert run.returncode == 0, run.stderr
        objects.append(str(obj))
    elf = work / "fe.elf"
    run = subprocess.run([TOOLS[0], *core["cpu"], "-nostartfiles", "-T", str(work / "link.ld"), "-Wl,--gc-sections",
                          "-specs=nano.specs", "-specs=nosys.specs", "-o", str(elf), *objects, "-lm"],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    run = subprocess.run([TOOLS[1], *core["qemu"], "-nographic",
                          "-monitor", "none", "-serial", "none",
                          "-semihosting-config", "enable=on,target=native", "-kernel", str(elf)],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    lines = run.stderr.split()  # semihosting console output
    assert len(lines) == len(clips), run.stderr[-2000:]
    maps = np.stack([np.frombuffer(bytes.fromhex(x), dtype=np.int8) for x in lines])
    return maps.reshape(len(clips), fe.num_frames, fe.num_bins)


def test_cortex_m7_under_qemu_equals_python(tmp_path):
    fe = F.design(load_spec(REPO / "projects" / "fire_alarm.yaml").spec)
    clips = _clips(fe, 8)
    expected = F.compute_batch(fe, clips)
    m7 = _run(M7, fe, clips, tmp_path / "rule", portable_rule=True)
    assert np.count_nonzero(m7 != expected) == 0
    all_dsp = _run(M7, fe, clips, tmp_path / "all_dsp", portable_rule=False)
    assert np.count_nonzero(all_dsp != expected) > 0, "the DSP radix-4 butterfly rounds differently"


def test_cortex_m0_under_qemu_equals_python(tmp_path):
    fe = F.design(load_spec(REPO / "projects" / "fire_alarm.yaml").spec)
    clips = _clips(fe, 3)  # the micro:bit has 256 KiB of flash for code and clips
    m0 = _run(M0, fe, clips, tmp_path / "m0", portable_rule=True)
    assert np.count_nonzero(m0 != F.compute_batch(fe, clips)) == 0
