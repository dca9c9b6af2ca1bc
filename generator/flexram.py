"""FlexRAM planner for the i.MX RT1062: from memory needs to a bank split.

`plan(board, sizes)` takes a board (its `flexram` pool and memory map) and
`Sizes` (bytes wanted in ITCM, DTCM and OCRAM) and returns a `Plan`: how many
32 KB banks become ITCM, DTCM and OCRAM, the IOMUXC_GPR17/GPR16/GPR14 values
that make that split, and the address ranges the linker script and the MPU
use. `PlanError` (with the shortfall in bytes and banks) when it cannot fit.

The rule, in order:
1. DTCM holds the arena, stack, .data and .bss; it is required. It gets the
   smallest power-of-two bank count (the CM7 TCM size fields only take powers
   of two) holding `dtcm` bytes plus HEADROOM; if the headroom does not fit,
   the count without it.
2. ITCM holds hot code (CMSIS-NN, CMSIS-DSP) copied from flash at boot; it is
   an optimisation. It gets the smallest power-of-two bank count holding
   `itcm_code` plus HEADROOM from the banks left; if that does not fit, the
   code stays in flash (run through the I-cache) and ITCM is 0 banks.
3. Every other bank is OCRAM. OCRAM needs are met first by the board's
   dedicated OCRAM, then by the FlexRAM OCRAM banks.

Register facts (IMXRT1060RM; MCUXpresso SDK 2.10 MIMXRT1062.h, whose later
versions dropped the GPR14 size and GPR16 enable fields from the header):
GPR17 holds 2 bits per bank (00 unused, 01 OCRAM, 10 DTCM, 11 ITCM); GPR16
bit 0 INIT_ITCM_EN, bit 1 INIT_DTCM_EN, bit 2 FLEXRAM_BANK_CFG_SEL (use GPR17,
not the fuses); GPR14 bits 19:16 CM7_CFGITCMSZ and 23:20 CM7_CFGDTCMSZ, coded
0 = none, 3 = 4 KB ... 10 = 512 KB (log2(KB) + 1). Banks are assigned like the
SDK's FLEXRAM_AllocateRam(): OCRAM from bank 0, then DTCM, then ITCM. The
registers' addresses are the SoC's (boards/soc/imxrt1062.yaml, `flexram.iomuxc_gpr`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from .boards import Board

# Estimates of code and data sizes are rough before the first link; a plan
# keeps this fraction spare so a somewhat larger real build still fits. The
# ELF check after the build verifies the real sizes.
HEADROOM = 0.125

BANK_UNUSED, BANK_OCRAM, BANK_DTCM, BANK_ITCM = 0, 1, 2, 3
GPR14_ITCMSZ_SHIFT, GPR14_DTCMSZ_SHIFT = 16, 20
GPR14_TCMSZ_MASK = 0xFF << 16
GPR16_ITCM_EN, GPR16_DTCM_EN, GPR16_BANK_CFG_SEL = 1 << 0, 1 << 1, 1 << 2


class PlanError(Exception):
    """The needs cannot fit the FlexRAM pool; the message says by how much."""


@dataclass(frozen=True)
class Sizes:
    """Bytes each memory kind must hold."""

    itcm_code: int  # hot code to run from ITCM (0: none)
    dtcm: int  # arena + stack + .data/.bss
    ocram: int  # DMA audio buffers, heap, the rest


@dataclass(frozen=True)
class Plan:
    bank_size: int
    itcm_banks: int
    dtcm_banks: int
    ocram_banks: int
    itcm_origin: int
    itcm_size: int
    dtcm_origin: int
    dtcm_size: int
    ocram_flex_origin: int
    ocram_flex_size: int
    gpr17: int
    gpr16_set: int  # bits to set in GPR16 (the other bits, CM7_INIT_VTOR, are kept)
    gpr16_clear: int
    gpr14_set: int  # CFGITCMSZ/CFGDTCMSZ; other GPR14 bits kept
    gpr14_mask: int
    itcm_code_in_itcm: bool
    sizes: dict
    reasons: list[str]

    def to_json(self) -> dict:
        out = asdict(self)
        for key in ("gpr17", "gpr16_set", "gpr16_clear", "gpr14_set", "gpr14_mask"):
            out[key] = f"0x{out[key]:08X}"
        return out

    def summary(self) -> str:
        kb = self.bank_size // 1024
        lines = [f"FlexRAM plan: ITCM {self.itcm_banks} x {kb} KB = {self.itcm_size // 1024} KB, "
                 f"DTCM {self.dtcm_banks} x {kb} KB = {self.dtcm_size // 1024} KB, "
                 f"OCRAM {self.ocram_banks} x {kb} KB = {self.ocram_flex_size // 1024} KB",
                 f"  GPR17=0x{self.gpr17:08X} GPR16|=0x{self.gpr16_set:X} "
                 f"GPR14[23:16]=0x{self.gpr14_set >> 16:02X}"]
        lines += [f"  {r}" for r in self.reasons]
        return "\n".join(lines)


def _pow2_banks(need: int, bank: int, limit: int) -> int | None:
    """Smallest count in {0, 1, 2, 4, 8, ...} <= limit whose banks hold `need` bytes."""
    if need <= 0:
        return 0
    count = 1
    while count * bank < need:
        count *= 2
    return count if count <= limit else None


def tcm_size_code(size: int) -> int:
    """GPR14 CFGxTCMSZ code for a TCM of `size` bytes (0 or a power of two, 4 KB..512 KB)."""
    if size == 0:
        return 0
    kb = size // 1024
    if kb * 1024 != size or kb < 4 or kb > 512 or kb & (kb - 1):
        raise ValueError(f"TCM size {size} is not a power of two from 4 KB to 512 KB")
    return kb.bit_length()  # 4 KB -> 3, 512 KB -> 10


def gpr17_value(itcm: int, dtcm: int, ocram: int, banks: int) -> int:
    kinds = [BANK_OCRAM] * ocram + [BANK_DTCM] * dtcm + [BANK_ITCM] * itcm
    kinds += [BANK_UNUSED] * (banks - len(kinds))
    return sum(kind << (2 * i) for i, kind in enumerate(kinds))


def _with_headroom(n: int) -> int:
    return n + -(-n * int(HEADROOM * 1000) // 1000)


def plan(board: Board, sizes: Sizes) -> Plan:
    pool = board.flexram
    if pool is None:
        raise ValueError(f"{board.title} has no FlexRAM")
    bank, banks = pool.bank_size, pool.banks
    reasons = []

    dtcm = _pow2_banks(_with_headroom(sizes.dtcm), bank, banks)
    if dtcm is None:
        dtcm = _pow2_banks(sizes.dtcm, bank, banks)
        if dtcm is None:
            over = sizes.dtcm - banks * bank
            raise PlanError(
                f"DTCM needs {sizes.dtcm} bytes (arena + stack + .data/.bss) but FlexRAM is at most "
                f"{banks * bank} bytes ({banks} banks of {bank}); {over} bytes "
                f"({-(-over // bank)} banks) too many: shrink the model's arena")
        reasons.append(f"DTCM {dtcm} banks: {sizes.dtcm} bytes fit only without the "
                       f"{HEADROOM:.1%} headroom")
    else:
        reasons.append(f"DTCM {dtcm} banks: smallest power of two holding {sizes.dtcm} bytes "
                       f"+ {HEADROOM:.1%} headroom")

    left = banks - dtcm
    limit = 1 << (left.bit_length() - 1) if left else 0
    itcm = _pow2_banks(_with_headroom(sizes.itcm_code), bank, limit)
    if itcm is None:
        itcm = _pow2_banks(sizes.itcm_code, bank, limit)
    in_itcm = sizes.itcm_code > 0 and itcm is not None
    if sizes.itcm_code == 0:
        itcm = 0
        reasons.append("ITCM 0 banks: no hot code")
    elif itcm is None:
        itcm = 0
        reasons.append(f"ITCM 0 banks: {sizes.itcm_code} bytes of hot code do not fit the "
                       f"{left} banks DTCM leaves; it runs from flash through the I-cache")
    else:
        reasons.append(f"ITCM {itcm} banks: smallest power of two holding {sizes.itcm_code} "
                       f"bytes of hot code (+ headroom when it fits)")

    ocram = banks - dtcm - itcm
    dedicated = sum(r.length for r in board.regions("ocram"))
    have = dedicated + ocram * bank
    if sizes.ocram > have:
        over = sizes.ocram - have
        raise PlanError(
            f"OCRAM needs {sizes.ocram} bytes but only {have} remain ({dedicated} dedicated + "
            f"{ocram} FlexRAM banks after DTCM {dtcm} and ITCM {itcm}); {over} bytes "
            f"({-(-over // bank)} banks) too many")
    reasons.append(f"OCRAM {ocram} banks: the rest ({sizes.ocram} bytes of OCRAM needs fit "
                   f"{dedicated} dedicated + {ocram * bank} FlexRAM bytes)")

    itcm_size, dtcm_size = itcm * bank, dtcm * bank
    gpr16_set = GPR16_BANK_CFG_SEL | (GPR16_ITCM_EN if itcm else 0) | (GPR16_DTCM_EN if dtcm else 0)
    gpr16_clear = (0 if itcm else GPR16_ITCM_EN) | (0 if dtcm else GPR16_DTCM_EN)
    gpr14 = (tcm_size_code(itcm_size) << GPR14_ITCMSZ_SHIFT) | (tcm_size_code(dtcm_size) << GPR14_DTCMSZ_SHIFT)
    return Plan(
        bank_size=bank, itcm_banks=itcm, dtcm_banks=dtcm, ocram_banks=ocram,
        itcm_origin=pool.itcm_origin, itcm_size=itcm_size,
        dtcm_origin=pool.dtcm_origin, dtcm_size=dtcm_size,
        ocram_flex_origin=pool.ocram_origin, ocram_flex_size=ocram * bank,
        gpr17=gpr17_value(itcm, dtcm, ocram, banks), gpr16_set=gpr16_set, gpr16_clear=gpr16_clear,
        gpr14_set=gpr14, gpr14_mask=GPR14_TCMSZ_MASK, itcm_code_in_itcm=in_itcm,
        sizes=asdict(sizes), reasons=reasons)
