"""The rendered front end, cross-compiled and run under QEMU, equals the Python reference bit for bit:
on a Cortex-M7 (mps2-an500) with CMSIS-DSP's DSP-instruction paths when the sources in
cmsis.PORTABLE_SOURCES are built with cmsis.PORTABLE_FLAGS (and not without that rule), and on
a Cortex-M0 (micro:bit; ARMv6-M like the RP2040's M0+), on real fire_alarm recordings and
synthetic clips; and every intrinsic of the CMSIS-Core header the builds use equals the Arm
architecture's definition of its instruction, on both cores.

CMSIS-DSP's arm_math_types.h includes CMSIS-Core's cmsis_compiler.h on Cortex-M, which the
cmsisdsp sdist lacks: the builds use micforge's own (generator/cmsis_core), or the folder
CMSIS_CORE_PATH names (e.g. pico-sdk's src/rp2_common/cmsis/stub/CMSIS/Core/Include or CMSIS_5's
CMSIS/Core/Include). Start-up code and the C programs are in tests/qemu/. Skipped only without
arm-none-eabi-gcc or qemu-system-arm (the clip tests also without ../shared/data).
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
from generator.audio import decode
from generator.cmsis_core import core_include
from generator.spec import load_spec

from conftest import REPO

TOOLS = [shutil.which(t) for t in ("arm-none-eabi-gcc", "qemu-system-arm")]
# About 10 s for the whole file, so not marked slow.
pytestmark = pytest.mark.skipif(None in TOOLS, reason="needs arm-none-eabi-gcc and qemu-system-arm")

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
QEMU_DIR = REPO / "tests" / "qemu"
OUR_FLAGS = ["-std=c99", "-Wall", "-Wextra", "-Werror"]


def _core_include() -> Path:
    return core_include(os.environ.get("CMSIS_CORE_PATH"))


def _build_and_run(core: dict, work: Path, compiles: list[tuple[Path, list[str]]]) -> str:
    """Compile each (source, flags) for `core`, link with tests/qemu/semihost.c, run under
    QEMU; the program's semihosting output."""
    (work / "link.ld").write_text(LINKER % core)
    gcc = [TOOLS[0], *core["cpu"], "-O2", "-ffunction-sections", "-fdata-sections"]
    objects = []
    for src, flags in compiles + [(QEMU_DIR / "semihost.c", OUR_FLAGS)]:
        obj = work / (src.name + ".o")
        run = subprocess.run([*gcc, *flags, "-c", str(src), "-o", str(obj)], capture_output=True, text=True)
        assert run.returncode == 0, run.stderr
        objects.append(str(obj))
    elf = work / "test.elf"
    run = subprocess.run([TOOLS[0], *core["cpu"], "-nostartfiles", "-T", str(work / "link.ld"), "-Wl,--gc-sections",
                          "-specs=nano.specs", "-specs=nosys.specs", "-o", str(elf), *objects, "-lm"],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    run = subprocess.run([TOOLS[1], *core["qemu"], "-nographic",
                          "-monitor", "none", "-serial", "none",
                          "-semihosting-config", "enable=on,target=native", "-kernel", str(elf)],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    return run.stderr  # the semihosting console


def _clips(fe: F.FrontEnd, n: int) -> np.ndarray:
    """Synthetic clips over four decades of level: noise plus a tone."""
    rng = np.random.default_rng(7)
    t = np.arange(fe.clip_samples) / fe.sample_rate
    out = [10 ** rng.uniform(-4, 0) * (rng.normal(0, 6000, fe.clip_samples)
                                       + 25000 * np.sin(2 * np.pi * rng.uniform(100, 7000) * t))
           for _ in range(n)]
    return np.clip(np.round(np.stack(out)), -32768, 32767).astype(np.int16)


def _real_clips(fe: F.FrontEnd, data: Path, per_class: int) -> np.ndarray:
    """`per_class` recordings of each fire_alarm class, spread over the sorted file list."""
    out = []
    for label in ("alarm", "background"):
        files = sorted((data / "fire_alarm" / label).glob("*.wav"))
        for path in files[::max(1, len(files) // per_class)][:per_class]:
            samples = decode(path.read_bytes(), fe.sample_rate).samples[:fe.clip_samples]
            out.append(np.pad(samples, (0, fe.clip_samples - len(samples))))
    return np.stack(out).astype(np.int16)


def _features(core: dict, fe: F.FrontEnd, clips: np.ndarray, work: Path, portable_rule: bool,
              defines: tuple[str, ...] = ()) -> np.ndarray:
    """Feature maps of `clips` from the front end built for `core` and run under QEMU.

    portable_rule: compile cmsis.PORTABLE_SOURCES with cmsis.PORTABLE_FLAGS, as the firmware does.
    """
    work.mkdir(parents=True)
    hostc.render_sources(fe, work, "fire_alarm.yaml")
    rows = ",\n".join("{" + ",".join(map(str, c)) + "}" for c in clips)
    (work / "clips.h").write_text(f"#define NUM_CLIPS {len(clips)}U\nstatic const int16_t "
                                  f"clips[NUM_CLIPS][MF_FE_CLIP_SAMPLES] = {{\n{rows}\n}};\n")
    dsp = cmsis.cmsis_dsp()
    common = [*[f"-D{d}" for d in defines], f"-I{work}", f"-I{QEMU_DIR}", f"-I{_core_include()}",
              *[f"-I{d}" for d in dsp.include_dirs]]
    compiles = [(src, common + (list(cmsis.PORTABLE_FLAGS)
                                if portable_rule and src in dsp.portable_sources else []))
                for src in dsp.sources]
    compiles += [(work / "mf_features.c", common + OUR_FLAGS),
                 (QEMU_DIR / "features_main.c", common + OUR_FLAGS)]
    lines = _build_and_run(core, work, compiles).split()
    assert len(lines) == len(clips), " ".join(lines)[-2000:]
    maps = np.stack([np.frombuffer(bytes.fromhex(x), dtype=np.int8) for x in lines])
    return maps.reshape(len(clips), fe.num_frames, fe.num_bins)


@pytest.fixture(scope="module", params=["log_mel", "mfcc"])
def front_end(request) -> F.FrontEnd:
    """fire_alarm's front end, and the same with MFCCs (13 coefficients of its mel bands)."""
    spec = load_spec(REPO / "projects" / "fire_alarm.yaml").spec
    features = spec.features.model_copy(update={"kind": request.param, "mfcc_coefficients": 13})
    return F._design(spec.audio, features, spec.detection.hop_frames)


@pytest.mark.shared
@pytest.mark.parametrize("defines", [(), ("ARM_MATH_LOOPUNROLL",)], ids=["plain", "loopunroll"])
def test_cortex_m7_under_qemu_equals_python(tmp_path, shared_data, front_end, defines):
    fe = front_end
    clips = np.concatenate([_real_clips(fe, shared_data, 3), _clips(fe, 2)])
    expected = F.compute_batch(fe, clips)
    m7 = _features(M7, fe, clips, tmp_path / "rule", portable_rule=True, defines=defines)
    assert np.count_nonzero(m7 != expected) == 0
    all_dsp = _features(M7, fe, clips, tmp_path / "all_dsp", portable_rule=False, defines=defines)
    assert np.count_nonzero(all_dsp != expected) > expected.size // 20, \
        "the DSP radix-4 butterfly rounds differently: building it without the rule must fail"


@pytest.mark.shared
def test_cortex_m0_under_qemu_equals_python(tmp_path, shared_data, front_end):
    fe = front_end
    clips = _real_clips(fe, shared_data, 2)  # the micro:bit has 256 KiB of flash for code and clips
    m0 = _features(M0, fe, clips, tmp_path / "m0", portable_rule=True)
    assert np.count_nonzero(m0 != F.compute_batch(fe, clips)) == 0


# ---- The CMSIS-Core header's intrinsics against the Arm architecture's definitions ----

def _operands(n: int) -> tuple[np.ndarray, ...]:
    """uint32 a, b, c and uint64 d: edge values (halfword and byte extremes) then random."""
    edges = [0, 1, 0xFFFFFFFF, 0x7FFFFFFF, 0x80000000, 0x7FFF7FFF, 0x80008000, 0x80007FFF,
             0x7FFF8000, 0x00008000, 0x7F7F7F7F, 0x80808080, 0x0000FFFF, 0xFFFF0000, 0x00010000]
    rng = np.random.default_rng(11)
    pick = lambda: np.concatenate([np.array(edges, dtype=np.uint64),
                                   rng.integers(0, 2 ** 32, n - len(edges), dtype=np.uint64)])
    a, b = pick(), np.roll(pick(), 3)
    c = rng.integers(0, 2 ** 32, n, dtype=np.uint64)
    d = rng.integers(0, 2 ** 63, n, dtype=np.uint64) * 2 + rng.integers(0, 2, n, dtype=np.uint64)
    return a, b, c, d


def _s(x: int, bits: int) -> int:
    """x's low `bits` bits as a signed number."""
    x &= (1 << bits) - 1
    return x - (1 << bits) if x >> (bits - 1) else x


def _sat(v: int, bits: int) -> int:
    return max(-(1 << (bits - 1)), min((1 << (bits - 1)) - 1, v))


def _lanes(a: int, width: int) -> list[int]:
    return [_s(a >> s, width) for s in range(0, 32, width)]


def _pack(values: list[int], width: int) -> int:
    return sum((v & ((1 << width) - 1)) << (i * width) for i, v in enumerate(values))


def _reference(name: str, a: int, b: int, c: int, d: int) -> int:
    """The instruction `name` per the Armv7-M Architecture Reference Manual (A7.7)."""
    (alo, ahi), (blo, bhi) = _lanes(a, 16), _lanes(b, 16)
    lane2 = {"QADD16": lambda x, y: _sat(x + y, 16), "QSUB16": lambda x, y: _sat(x - y, 16),
             "SHADD16": lambda x, y: (x + y) >> 1, "SHSUB16": lambda x, y: (x - y) >> 1}
    if name in lane2:
        return _pack([lane2[name](x, y) for x, y in zip((alo, ahi), (blo, bhi))], 16)
    if name in ("QADD8", "QSUB8"):
        sign = 1 if name == "QADD8" else -1
        return _pack([_sat(x + sign * y, 8) for x, y in zip(_lanes(a, 8), _lanes(b, 8))], 8)
    exchange = {  # (bottom, top) of the exchanging forms: ASX adds on top, SAX subtracts
        "QASX": (_sat(alo - bhi, 16), _sat(ahi + blo, 16)),
        "QSAX": (_sat(alo + bhi, 16), _sat(ahi - blo, 16)),
        "SHASX": ((alo - bhi) >> 1, (ahi + blo) >> 1),
        "SHSAX": ((alo + bhi) >> 1, (ahi - blo) >> 1)}
    if name in exchange:
        return _pack(list(exchange[name]), 16)
    dual = {"SMUAD": alo * blo + ahi * bhi, "SMUADX": alo * bhi + ahi * blo,
            "SMUSD": alo * blo - ahi * bhi, "SMUSDX": alo * bhi - ahi * blo}
    if name in dual:
        return dual[name] & 0xFFFFFFFF
    if name in ("SMLAD", "SMLADX", "SMLSD", "SMLSDX"):
        return (dual[name.replace("SML", "SMU")] + _s(c, 32)) & 0xFFFFFFFF
    if name in ("SMLALD", "SMLALDX"):
        return (dual[name.replace("SMLALD", "SMUAD")] + d) & 0xFFFFFFFFFFFFFFFF
    shift = {"PKHBT0": 0, "PKHBT16": 16, "PKHTB0": 0, "PKHTB16": 16, "PKHTB5": 5}.get(name)
    if name.startswith("PKHBT"):
        return (a & 0xFFFF) | ((b << shift) & 0xFFFF0000)
    if name.startswith("PKHTB"):
        return (a & 0xFFFF0000) | ((_s(b, 32) >> shift) & 0xFFFF)
    other = {
        "QADD": lambda: _sat(_s(a, 32) + _s(b, 32), 32) & 0xFFFFFFFF,
        "QSUB": lambda: _sat(_s(a, 32) - _s(b, 32), 32) & 0xFFFFFFFF,
        "SMMLA": lambda: (((_s(c, 32) << 32) + _s(a, 32) * _s(b, 32)) >> 32) & 0xFFFFFFFF,
        "SXTB16": lambda: _pack([_s(a, 8), _s(a >> 16, 8)], 16),
        "CLZ": lambda: 32 - a.bit_length(),
        "ROR": lambda: ((a >> (b % 32)) | (a << (32 - b % 32))) & 0xFFFFFFFF,
        "SSAT16": lambda: _sat(_s(a, 32), 16) & 0xFFFFFFFF,
        "SSAT8": lambda: _sat(_s(a, 32), 8) & 0xFFFFFFFF,
        "SSAT32": lambda: a,
        "USAT16": lambda: max(0, min(0xFFFF, _s(a, 32))),
        "USAT0": lambda: 0}
    return other[name]()


CORE_INTRINSICS = ("CLZ", "ROR", "SSAT16", "SSAT8", "SSAT32", "USAT16", "USAT0")
DSP_INTRINSICS = ("QADD16", "QSUB16", "SHADD16", "SHSUB16", "QASX", "QSAX", "SHASX", "SHSAX",
                  "QADD8", "QSUB8", "QADD", "QSUB", "SMUAD", "SMUADX", "SMUSD", "SMUSDX", "SMLAD",
                  "SMLADX", "SMLSD", "SMLSDX", "SMMLA", "SXTB16", "PKHBT0", "PKHBT16", "PKHTB0",
                  "PKHTB16", "PKHTB5", "SMLALD", "SMLALDX")


@pytest.mark.parametrize("core, names", [(M7, CORE_INTRINSICS + DSP_INTRINSICS), (M0, CORE_INTRINSICS)],
                         ids=["cortex_m7", "cortex_m0"])
def test_cmsis_core_intrinsics_match_the_architecture(tmp_path, core, names):
    a, b, c, d = _operands(48)
    arrays = "\n".join(f"static const {t} op_{k}[NUM_OPERANDS] = {{{', '.join(f'{int(x)}U' for x in v)}}};"
                       for k, t, v in (("a", "uint32_t", a), ("b", "uint32_t", b), ("c", "uint32_t", c),
                                       ("d", "uint64_t", d)))
    (tmp_path / "operands.h").write_text(f"#include <stdint.h>\n#define NUM_OPERANDS {len(a)}U\n{arrays}\n")
    flags = [f"-I{tmp_path}", f"-I{QEMU_DIR}", f"-I{_core_include()}", *OUR_FLAGS]
    out = _build_and_run(core, tmp_path, [(QEMU_DIR / "intrinsics.c", flags)])
    got = {line.split()[0]: [int(x, 16) for x in line.split()[1:]] for line in out.splitlines() if line}
    assert sorted(got) == sorted(names), out[-2000:]
    wrong = [f"{n}(a={a[i]:#x}, b={b[i]:#x}, c={c[i]:#x}, d={d[i]:#x}) = {got[n][i]:#x}, "
             f"the architecture says {_reference(n, int(a[i]), int(b[i]), int(c[i]), int(d[i])):#x}"
             for n in names for i in range(len(a))
             if got[n][i] != _reference(n, int(a[i]), int(b[i]), int(c[i]), int(d[i]))]
    assert not wrong, f"{len(wrong)} wrong results:\n" + "\n".join(wrong[:20])
