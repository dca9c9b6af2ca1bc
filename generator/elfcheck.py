"""After an i.MX RT1062 build: check the ELF against the FlexRAM plan it was linked for.

`check_elf(elf_path, plan, board) -> ElfReport` reads the ELF's sections and
symbols (pyelftools) and checks that:
- the FlexSPI configuration block (tag "FCFB") sits at the flash offset the
  boot ROM reads, and the image vector table (tag 0xD1) with its boot data at
  its offset (an SDK build without them links fine and never boots);
- the tensor arena symbol lies in the plan's DTCM (a capture image, `arena=False`, has none:
  its absence is then required);
- the code placed in ITCM fits the plan's ITCM banks;
- no two sections overlap, in run addresses or in flash load addresses;
- every allocated section lies in a memory region of the plan.
`plan` is a flexram.Plan or its JSON (flexram_plan.json). The report also
gives the bytes used per region. `format_report(report)` prints it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from elftools.elf.constants import SH_FLAGS
from elftools.elf.elffile import ELFFile

from .boards import Board
from .flexram import Plan

ARENA_SYMBOL = "mf_tensor_arena"
FCB_TAG = 0x42464346  # "FCFB", little-endian word
IVT_TAG = 0xD1
FCB_OFFSET, IVT_OFFSET = 0x0, 0x1000


@dataclass
class ElfReport:
    problems: list[str] = field(default_factory=list)
    usage: dict[str, tuple[int, int]] = field(default_factory=dict)  # region -> (used, size)
    arena: tuple[int, int] | None = None  # (address, size)
    itcm_code: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems


def _plan_values(plan: Plan | dict) -> dict:
    data = plan.to_json() if isinstance(plan, Plan) else dict(plan)
    return {k: int(v, 16) if isinstance(v, str) and v.startswith("0x") else v for k, v in data.items()}


def regions(plan: Plan | dict, board: Board) -> dict[str, tuple[int, int]]:
    """Name -> (origin, size) of every memory the image may use under `plan`."""
    p = _plan_values(plan)
    out = {}
    for r in board.memory:
        if r.kind == "itcm":
            out[r.name] = (p["itcm_origin"], p["itcm_size"])
        elif r.kind == "dtcm":
            out[r.name] = (p["dtcm_origin"], p["dtcm_size"])
        elif r.kind == "flexram":
            out[r.name] = (p["ocram_flex_origin"], p["ocram_flex_size"])
        else:
            out[r.name] = (r.origin, r.length)
    return {k: v for k, v in out.items() if v[1] > 0}


def _region_of(addr: int, size: int, mems: dict[str, tuple[int, int]]) -> str | None:
    for name, (origin, length) in mems.items():
        if origin <= addr and addr + size <= origin + length:
            return name
    return None


def _word_at(elf: ELFFile, addr: int) -> int | None:
    """The 32-bit word the image holds at flash address `addr` (via the load segments)."""
    for seg in elf.iter_segments():
        if seg["p_type"] != "PT_LOAD":
            continue
        start = seg["p_paddr"]
        if start <= addr and addr + 4 <= start + seg["p_filesz"]:
            data = seg.data()[addr - start: addr - start + 4]
            return int.from_bytes(data, "little")
    return None


def check_elf(elf_path: str | Path, plan: Plan | dict, board: Board,
              arena: bool = True) -> ElfReport:
    report = ElfReport()
    p = _plan_values(plan)
    mems = regions(plan, board)
    flash = board.region("FLASH")
    with open(elf_path, "rb") as f:
        elf = ELFFile(f)
        sections = [s for s in elf.iter_sections()
                    if s["sh_flags"] & SH_FLAGS.SHF_ALLOC and s["sh_size"] > 0]
        by_name = {s.name: s for s in sections}

        # Boot headers.
        for name, offset, check, what in (
                (".flash_config", FCB_OFFSET, lambda w: w == FCB_TAG, "FlexSPI configuration block"),
                (".ivt", IVT_OFFSET, lambda w: (w & 0xFF) == IVT_TAG, "image vector table")):
            sec = by_name.get(name)
            where = flash.origin + offset
            if sec is None:
                report.problems.append(f"{what} ({name}) is missing: the image would never boot")
                continue
            if sec["sh_addr"] != where:
                report.problems.append(f"{what} ({name}) is at 0x{sec['sh_addr']:08X}, "
                                       f"the boot ROM reads it at 0x{where:08X}")
            word = _word_at(elf, where)
            if word is None or not check(word):
                report.problems.append(f"{what} at 0x{where:08X} does not start with its tag "
                                       f"(found {word if word is None else hex(word)})")
        ivt = by_name.get(".ivt")
        if ivt is not None and ivt["sh_size"] < 32 + 12:
            report.problems.append(f".ivt holds {ivt['sh_size']} bytes: no room for the IVT (32) "
                                   f"and boot data (12); boot data is missing")

        # Arena in DTCM.
        symtab = elf.get_section_by_name(".symtab")
        syms = symtab.get_symbol_by_name(ARENA_SYMBOL) if symtab is not None else None
        if not arena:
            if syms:
                report.problems.append(f"symbol {ARENA_SYMBOL} is in an image checked as having "
                                       f"no model (a capture image)")
        elif not syms:
            report.problems.append(f"symbol {ARENA_SYMBOL} not found")
        else:
            addr, size = syms[0]["st_value"], syms[0]["st_size"]
            report.arena = (addr, size)
            lo, hi = p["dtcm_origin"], p["dtcm_origin"] + p["dtcm_size"]
            if not (lo <= addr and addr + size <= hi):
                report.problems.append(f"{ARENA_SYMBOL} (0x{addr:08X}, {size} bytes) is not in DTCM "
                                       f"0x{lo:08X}-0x{hi - 1:08X}")
            arena_sec = next((s for s in sections if s["sh_addr"] <= addr < s["sh_addr"] + s["sh_size"]), None)
            if arena_sec is not None and arena_sec["sh_type"] != "SHT_NOBITS":
                report.problems.append(f"{ARENA_SYMBOL} is in {arena_sec.name}, an initialised "
                                       f"section: it would take {size} bytes of flash")

        # ITCM code fits the ITCM banks.
        itcm = by_name.get(".itcm_text")
        report.itcm_code = itcm["sh_size"] if itcm is not None else 0
        if report.itcm_code > p["itcm_size"]:
            report.problems.append(f"ITCM code is {report.itcm_code} bytes; the plan's ITCM is "
                                   f"{p['itcm_size']} bytes ({p['itcm_banks']} banks)")

        # Every section in a region; per-region usage.
        used = {name: 0 for name in mems}
        for s in sections:
            region = _region_of(s["sh_addr"], s["sh_size"], mems)
            if region is None:
                report.problems.append(f"section {s.name} (0x{s['sh_addr']:08X}, {s['sh_size']} bytes) "
                                       f"lies outside the plan's memory regions")
            else:
                used[region] += s["sh_size"]
        # Load images in flash count too.
        for seg in elf.iter_segments():
            if seg["p_type"] == "PT_LOAD" and seg["p_filesz"] and seg["p_paddr"] != seg["p_vaddr"]:
                region = _region_of(seg["p_paddr"], seg["p_filesz"], mems)
                if region is not None:
                    used[region] += seg["p_filesz"]
        report.usage = {name: (used[name], mems[name][1]) for name in mems}

        # No overlaps: run addresses, then flash load addresses.
        spans = sorted((s["sh_addr"], s["sh_addr"] + s["sh_size"], s.name) for s in sections)
        for a, b in zip(spans, spans[1:]):
            if a[1] > b[0]:
                report.problems.append(f"sections {a[2]} and {b[2]} overlap at 0x{b[0]:08X}")
        loads = sorted((seg["p_paddr"], seg["p_paddr"] + seg["p_filesz"]) for seg in elf.iter_segments()
                       if seg["p_type"] == "PT_LOAD" and seg["p_filesz"])
        for a, b in zip(loads, loads[1:]):
            if a[1] > b[0]:
                report.problems.append(f"load images overlap in flash at 0x{b[0]:08X}")
    return report


def format_report(report: ElfReport) -> str:
    lines = ["region        used / size"]
    for name, (used, size) in report.usage.items():
        pct = 100.0 * used / size if size else 0.0
        lines.append(f"{name:<12} {used:>8} / {size:<8} ({pct:5.1f}%)")
    if report.arena:
        lines.append(f"arena: 0x{report.arena[0]:08X}, {report.arena[1]} bytes")
    lines.append(f"ITCM code: {report.itcm_code} bytes")
    lines += [f"PROBLEM: {p}" for p in report.problems] or ["ELF checks passed"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """python -m generator.elfcheck FIRMWARE.elf BOARD_ID flexram_plan.json [--no-arena]
    (--no-arena: a capture image, which holds no model)"""
    import json
    import sys

    from .boards import load_board
    args = list(sys.argv[1:] if argv is None else argv)
    arena = "--no-arena" not in args
    args = [a for a in args if a != "--no-arena"]
    if len(args) != 3:
        print(main.__doc__, file=sys.stderr)
        return 2
    report = check_elf(args[0], json.loads(Path(args[2]).read_text()), load_board(args[1]),
                       arena)
    print(format_report(report))
    return 0 if report.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
