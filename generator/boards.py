"""Board catalogue: a SoC file per chip under boards/soc/, a board file per board under boards/.

`load_board(board_id, boards_dir)` reads boards/<board_id>.yaml, the SoC file it
names (`soc: rp2040` -> boards/soc/rp2040.yaml) and returns one merged `Board`.
As in Zephyr (an SoC .dtsi, a board .dts), each fact is stated once: the SoC
file holds what belongs to the chip (core, FPU, its RAM, the FlexRAM pool and
the registers that split it, where external flash is mapped); the board file
adds what is its own (title, flash size, LED, microphone, pads, UART, stack and
heap, notes). The FLASH region is derived from the board's `flash_size` at the
SoC's XIP address; the RT1062's ITCM/DTCM/OCRAM_FLEX windows from its FlexRAM
pool. A board may set a SoC default (`clock_hz`, `gpio_count`) but no other SoC
fact. Linker scripts, CMake flags and budget checks derive from the merged
`Board`; nothing else repeats these numbers. Mistakes in either file are
`SpecError`s at their file:line:col.
"""

from __future__ import annotations

import difflib
import functools
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from . import yamlpos
from .errors import Problem, SpecError
from .validate import validate

BOARDS_DIR = Path(__file__).resolve().parent.parent / "boards"
SOC_SUBDIR = "soc"  # SoC files live in <boards_dir>/soc/

Core = Literal["cortex-m0plus", "cortex-m7"]
Fpu = Literal["none", "fpv5-d16"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Region(_Strict):
    name: str = Field(description="Linker MEMORY name, e.g. FLASH, RAM, DTCM.", pattern=r"^[A-Z][A-Z0-9_]*$")
    origin: int = Field(ge=0, description="Start address.")
    length: int = Field(gt=0, description="Size in bytes.")
    kind: Literal["flash", "ram", "itcm", "dtcm", "ocram", "flexram"] = Field(
        description="What the region is; 'flexram' is the RT1062's configurable bank pool.")

    @property
    def end(self) -> int:
        return self.origin + self.length


class IomuxcGpr(_Strict):
    """The IOMUXC_GPR registers the reset handler writes to re-split FlexRAM."""

    base: int = Field(gt=0, description="Address of the IOMUXC_GPR block (MIMXRT1062.h IOMUXC_GPR_BASE).")
    # The reset handler loads `base` once and stores with immediate offsets (Thumb-2: 0..4095).
    gpr14: int = Field(ge=0, lt=0x1000, multiple_of=4,
                       description="Offset of GPR14 (CM7_CFGITCMSZ 19:16, CM7_CFGDTCMSZ 23:20).")
    gpr16: int = Field(ge=0, lt=0x1000, multiple_of=4,
                       description="Offset of GPR16 (INIT_ITCM_EN, INIT_DTCM_EN, FLEXRAM_BANK_CFG_SEL).")
    gpr17: int = Field(ge=0, lt=0x1000, multiple_of=4,
                       description="Offset of GPR17 (FLEXRAM_BANK_CFG, 2 bits a bank).")


class FlexRam(_Strict):
    banks: int = Field(ge=1, le=32, description="Number of FlexRAM banks.")
    bank_size: int = Field(gt=0, description="Bytes per bank.")
    itcm_origin: int = Field(ge=0, description="Address of the ITCM window (region ITCM).")
    dtcm_origin: int = Field(ge=0, description="Address of the DTCM window (region DTCM).")
    ocram_origin: int = Field(ge=0, description="Address of FlexRAM banks configured as OCRAM (region OCRAM_FLEX).")
    fuse_itcm_banks: int = Field(ge=0, description="ITCM banks in the fuse default split (what the "
                                                   "reset handler must undo before it uses the stack).")
    fuse_dtcm_banks: int = Field(ge=0, description="DTCM banks in the fuse default split.")
    iomuxc_gpr: IomuxcGpr = Field(description="Registers that set the split.")

    @property
    def total(self) -> int:
        return self.banks * self.bank_size

    @model_validator(mode="after")
    def _fuse_split_fits(self) -> "FlexRam":
        if self.fuse_itcm_banks + self.fuse_dtcm_banks > self.banks:
            raise ValueError(f"fuse_itcm_banks + fuse_dtcm_banks exceed the {self.banks} banks")
        return self

    def windows(self) -> list[Region]:
        """The three address windows the pool appears in, each as large as the whole pool."""
        return [Region(name="ITCM", origin=self.itcm_origin, length=self.total, kind="itcm"),
                Region(name="DTCM", origin=self.dtcm_origin, length=self.total, kind="dtcm"),
                Region(name="OCRAM_FLEX", origin=self.ocram_origin, length=self.total, kind="flexram")]


class Xip(_Strict):
    origin: int = Field(ge=0, description="Address the external flash is mapped at (execute in place); "
                                          "a board's FLASH region starts here.")
    max_size: int = Field(gt=0, description="Largest flash the window maps.")


class Soc(_Strict):
    """A chip's facts, shared by every board built on it (boards/soc/<id>.yaml)."""

    id: str = Field(description="SoC id; the file name without .yaml.", pattern=r"^[a-z][a-z0-9_]*$")
    title: str = Field(description="Human name of the chip.")
    core: Core = Field(description="CPU core (-mcpu).")
    fpu: Fpu = Field(description="FPU (-mfpu), 'none' for soft float.")
    dsp_extensions: bool = Field(description="Whether the core has the Armv7E-M DSP instructions.")
    clock_hz: int = Field(gt=0, description="Core clock the SDK's default clock setup gives; a board may set its own.")
    gpio_count: int | None = Field(None, gt=0, description="GPIOs usable as pin numbers 0..gpio_count-1; "
                                                           "a board numbering pins its own way sets its own.")
    xip: Xip = Field(description="Where external flash is mapped.")
    memory: list[Region] = Field(default_factory=list, description="The chip's own memories (RAM, OCRAM); "
                                 "FLASH comes from the board, ITCM/DTCM/OCRAM_FLEX from `flexram`.")
    flexram: FlexRam | None = Field(None, description="FlexRAM bank pool (i.MX RT only).")

    @model_validator(mode="after")
    def _consistent(self) -> "Soc":
        derived = {"FLASH"} | {r.name for r in (self.flexram.windows() if self.flexram else [])}
        for r in self.memory:
            if r.name in derived:
                raise ValueError(f"memory region {r.name} is derived (FLASH from a board's flash_size, "
                                 f"ITCM/DTCM/OCRAM_FLEX from flexram); remove it")
            if r.kind == "flash":
                raise ValueError(f"memory region {r.name}: flash is the board's (flash_size at xip.origin)")
        _check_regions(self.regions() + [Region(name="FLASH", origin=self.xip.origin,
                                                length=self.xip.max_size, kind="flash")])
        return self

    def regions(self) -> list[Region]:
        """Every memory of the chip: its own regions and the FlexRAM windows."""
        return list(self.memory) + (self.flexram.windows() if self.flexram else [])


def _check_regions(regions: list[Region]) -> None:
    names = [r.name for r in regions]
    if len(set(names)) != len(names):
        raise ValueError("memory region names must be unique")
    ordered = sorted(regions, key=lambda r: r.origin)
    for a, b in zip(ordered, ordered[1:]):
        if a.end > b.origin:
            raise ValueError(f"memory regions {a.name} and {b.name} overlap")


class Microphone(_Strict):
    interface: Literal["pdm", "i2s"] = Field(description="Digital microphone bus.")
    data_pin: int = Field(ge=0, description="Data GPIO (PDM DATA or I2S SD).")
    clock_pin: int = Field(ge=0, description="Clock GPIO (PDM CLK or I2S BCLK).")
    peripheral: str = Field(description="Peripheral instance used: 'pio0', 'SAI1', ...")
    dma_channel: int = Field(0, ge=0, description="DMA channel for the audio stream.")
    max_clock_hz: int = Field(description="Highest bit clock the microphone accepts.")
    min_clock_hz: int = Field(description="Lowest bit clock the microphone accepts.")
    part: str = Field("", description="Microphone part the defaults are for.")


class Pad(_Strict):
    pad: str = Field(description="i.MX RT IOMUXC pad name, e.g. GPIO_AD_B1_12.", pattern=r"^GPIO_[A-Z0-9_]+$")
    function: str = Field(description="Pad function (ALT mode) as fsl_iomuxc.h names it, e.g. "
                                      "SAI1_RX_DATA00; the pin-mux macro is IOMUXC_<pad>_<function>.",
                          pattern=r"^[A-Z][A-Z0-9_]*$")

    @property
    def macro(self) -> str:
        return f"IOMUXC_{self.pad}_{self.function}"


class Imxrt(_Strict):
    """Facts only an i.MX RT board needs: pads, GPIO ports, UART, flash chip, stack/heap, SDK files."""

    part: str = Field(description="Chip part number; the SDK's CPU_<part> define, e.g. MIMXRT1062DVL6B.",
                      pattern=r"^MIMXRT1062[A-Z0-9]+$")
    led: Pad = Field(description="Pad of the LED (function GPIOn_IOm).")
    led_gpio: str = Field(description="GPIO instance of the LED, e.g. GPIO1.", pattern=r"^GPIO[1-9]$")
    led_bit: int = Field(ge=0, le=31, description="Bit of the LED in its GPIO port.")
    led_active_high: bool = Field(description="Whether driving the pin high lights the LED.")
    mic_data: Pad = Field(description="Pad of the microphone data (SAIn_RX_DATA00).")
    mic_clock: Pad = Field(description="Pad of the bit clock (SAIn_RX_BCLK).")
    mic_word_select: Pad = Field(description="Pad of the word select (SAIn_RX_SYNC).")
    uart: str = Field(description="LPUART instance carrying the serial line, e.g. LPUART1.",
                      pattern=r"^LPUART[1-8]$")
    uart_tx: Pad = Field(description="Pad of the UART TX.")
    uart_rx: Pad = Field(description="Pad of the UART RX.")
    uart_baud: int = Field(115200, gt=0, description="Baud rate of the serial line.")
    flash_part: str = Field(description="QSPI NOR flash part, for the FlexSPI configuration block.")
    flash_serial_clk: int = Field(ge=1, le=9, description="FCB serialClkFreq code (kFlexSpiSerialClk_*: "
                                                          "1=30, 6=100, 7=120, 8=133 MHz).")
    flash_read_sample_clk: int = Field(ge=0, le=3, description="FCB readSampleClkSrc (0 internal loopback, "
                                                               "1 loopback from DQS pad, 2 from SCK pad, 3 external DQS).")
    flash_quad_read_dummy: int = Field(ge=0, le=32, description="Dummy cycles (mode bits included) of the "
                                                                "0xEB quad I/O fast read.")
    stack_bytes: int = Field(ge=1024, description="Main stack, placed at the top of DTCM.")
    heap_bytes: int = Field(ge=0, description="Heap for newlib, placed in OCRAM.")
    sdk_files_from: str | None = Field(
        None, pattern=r"^[a-z0-9_]+$",
        description="For a board mcux-sdk has no folder for (no sdk_board): the mcux-sdk boards/<folder> "
                    "whose clock_config.c/.h (BOARD_BootClockRUN) and xip/<folder>_flexspi_nor_config.h "
                    "(the FlexSPI NOR block's types) the firmware borrows. Boards with an sdk_board use "
                    "their own folder.")
    sdk_files_note: str = Field("", description="Why the borrowed folder fits this board (with "
                                                "sdk_files_from); the generated CMakeLists.txt and README say it.")


class BoardFile(_Strict):
    """What a board file states (boards/<id>.yaml): its own facts and the SoC it is built on."""

    id: str = Field(description="Board id; the file name without .yaml.", pattern=r"^[a-z][a-z0-9_]*$")
    title: str = Field(description="Human name.")
    soc: Literal["rp2040", "imxrt1062"] = Field(description="Chip: boards/soc/<soc>.yaml; selects the firmware family.")
    clock_hz: int | None = Field(None, gt=0, description="Core clock the firmware runs at (default: the SoC's).")
    sdk_board: str | None = Field(None, description="The SDK's own name for the board: PICO_BOARD (pico-sdk, "
                                                    "required), or the mcux-sdk boards/ folder (absent when "
                                                    "the SDK has none; see imxrt.sdk_files_from).")
    flash_size: int = Field(gt=0, description="Bytes of external program flash; FLASH is this much at the SoC's XIP address.")
    gpio_count: int | None = Field(None, gt=0, description="GPIOs usable as pin numbers 0..gpio_count-1 "
                                                           "(default: the SoC's).")
    reserved_pins: list[int] = Field(default_factory=list, description="Pins the board uses itself.")
    led_pin: int = Field(ge=0, description="On-board LED GPIO.")
    microphone: Microphone = Field(description="Microphone wiring of the default carrier.")
    imxrt: Imxrt | None = Field(None, description="Pads, UART, flash chip and SDK files (i.MX RT only).")
    arena_region: str = Field(description="Memory region the tensor arena is placed in.")
    notes: str = Field("", description="Anything a user should know.")


class Board(BoardFile):
    """A board file merged with its SoC file: the one object the generator reads."""

    core: Core = Field(description="CPU core (-mcpu), from the SoC.")
    fpu: Fpu = Field(description="FPU (-mfpu), from the SoC.")
    dsp_extensions: bool = Field(description="Armv7E-M DSP instructions, from the SoC.")
    clock_hz: int = Field(gt=0, description="Core clock the firmware runs at.")
    gpio_count: int = Field(gt=0, description="GPIOs usable as pin numbers 0..gpio_count-1.")
    memory: list[Region] = Field(min_length=1, description="Memory map by address: the SoC's regions and FLASH.")
    flexram: FlexRam | None = Field(None, description="FlexRAM bank pool (i.MX RT only), from the SoC.")

    @model_validator(mode="after")
    def _consistent(self) -> "Board":
        _check_regions(list(self.memory))
        names = [r.name for r in self.memory]
        if self.arena_region not in names:
            raise ValueError(f"arena_region '{self.arena_region}' is not a memory region ({', '.join(names)})")
        for what, pin in [("led_pin", self.led_pin), ("microphone data_pin", self.microphone.data_pin),
                          ("microphone clock_pin", self.microphone.clock_pin)]:
            if pin >= self.gpio_count:
                raise ValueError(f"{what} {pin} is beyond gpio_count {self.gpio_count}")
        if self.soc == "rp2040" and self.sdk_board is None:
            raise ValueError("sdk_board: pico-sdk needs the board's PICO_BOARD name (e.g. pico)")
        if self.soc == "imxrt1062":
            imx = self.imxrt
            if imx is None:
                raise ValueError("imxrt: an i.MX RT board needs its imxrt section (pads, UART, flash chip)")
            if (self.sdk_board is None) == (imx.sdk_files_from is None):
                raise ValueError("imxrt: set sdk_board (the board's mcux-sdk folder) or, for a board "
                                 "mcux-sdk has no folder for, imxrt.sdk_files_from and sdk_files_note")
            if imx.sdk_files_from is not None and not imx.sdk_files_note.strip():
                raise ValueError("imxrt: sdk_files_note must say why the borrowed SDK files fit this board")
        elif self.imxrt is not None:
            raise ValueError(f"imxrt: only i.MX RT boards have an imxrt section ({self.id} is {self.soc})")
        return self

    def region(self, name: str) -> Region:
        for r in self.memory:
            if r.name == name:
                return r
        raise KeyError(name)

    def regions(self, kind: str) -> list[Region]:
        return [r for r in self.memory if r.kind == kind]


# SoC facts a board may set for itself; every other SoC field is the chip's alone.
OVERRIDABLE = (frozenset(BoardFile.model_fields) & frozenset(Soc.model_fields)) - {"id", "title"}
FIXED_BY_SOC = frozenset(Soc.model_fields) - frozenset(BoardFile.model_fields)


def _display(path: Path, boards_dir: Path) -> str:
    """How a file is named in messages: repository-relative for the catalogue, else its path."""
    if boards_dir.resolve() == BOARDS_DIR:
        return f"boards/{path.relative_to(boards_dir).as_posix()}"
    return str(path)


def _load_mapping(path: Path, display: str, what: str) -> tuple[dict, yamlpos.Positions]:
    data, pos = yamlpos.load(path, display)
    if not isinstance(data, dict):
        raise SpecError(Problem(display, 1, 1, f"a {what} file must be a YAML mapping"))
    return data, pos


def soc_ids(boards_dir: Path = BOARDS_DIR) -> list[str]:
    return sorted(p.stem for p in (boards_dir / SOC_SUBDIR).glob("*.yaml"))


@functools.lru_cache(maxsize=None)
def load_soc(soc_id: str, boards_dir: Path = BOARDS_DIR) -> Soc:
    """Load <boards_dir>/soc/<soc_id>.yaml; SpecError (file:line:col) when malformed, KeyError if absent."""
    path = boards_dir / SOC_SUBDIR / f"{soc_id}.yaml"
    if not path.exists():
        raise KeyError(soc_id)
    display = _display(path, boards_dir)
    data, pos = _load_mapping(path, display, "SoC")
    soc = validate(Soc, data, pos)
    if soc.id != soc_id:
        raise SpecError(pos.problem(("id",), f"id '{soc.id}' must match the file name '{soc_id}'"))
    return soc


def _soc_of(data: dict, pos: yamlpos.Positions, boards_dir: Path) -> tuple[Soc, str]:
    """The SoC a board file names, loaded; SpecError at its `soc:` line when there is none."""
    name = data.get("soc")
    if name is None:
        raise SpecError(pos.problem((), "missing required key 'soc' (the chip: a file boards/soc/<soc>.yaml)"))
    known = soc_ids(boards_dir)
    if not isinstance(name, str) or name not in known:
        hint = difflib.get_close_matches(str(name), known, n=1)
        extra = f" (did you mean '{hint[0]}'?)" if hint else f"; known SoCs: {', '.join(known)}"
        raise SpecError(pos.problem(("soc",), f"unknown soc '{name}'{extra}"))
    path = boards_dir / SOC_SUBDIR / f"{name}.yaml"
    return load_soc(name, boards_dir), _display(path, boards_dir)


def _fixed_key_message(key: str, soc: Soc, soc_display: str) -> str:
    if key == "memory":
        return (f"'memory' is not a board key: the chip's regions come from {soc_display} and FLASH "
                f"from flash_size; remove it")
    value = getattr(soc, key)
    shown = ""
    if isinstance(value, bool):
        shown = f": {str(value).lower()}"
    elif isinstance(value, str):
        shown = f": {value}"
    return (f"'{key}' is a fact of the {soc.title}, set in {soc_display}{shown}; a board may not "
            f"override it: remove it")


def merge(soc: Soc, own: BoardFile, pos: yamlpos.Positions) -> Board:
    """The board's own facts on top of its SoC's, with FLASH derived from flash_size."""
    if own.flash_size > soc.xip.max_size:
        raise SpecError(pos.problem(("flash_size",), f"flash_size 0x{own.flash_size:X} is larger than the "
                                    f"{soc.id}'s XIP window (0x{soc.xip.max_size:X} bytes at "
                                    f"0x{soc.xip.origin:08X})"))
    flash = Region(name="FLASH", origin=soc.xip.origin, length=own.flash_size, kind="flash")
    merged = dict(core=soc.core, fpu=soc.fpu, dsp_extensions=soc.dsp_extensions, flexram=soc.flexram,
                  memory=sorted(soc.regions() + [flash], key=lambda r: r.origin))
    merged.update({k: getattr(soc, k) for k in OVERRIDABLE if getattr(soc, k) is not None})
    merged.update({k: getattr(own, k) for k in own.model_fields_set})
    # Defaults of what the board left out; a SoC default the chip does not give stays missing.
    merged.update({k: getattr(own, k) for k in BoardFile.model_fields
                   if k not in merged and k not in OVERRIDABLE})
    return validate(Board, merged, pos)


def board_ids(boards_dir: Path = BOARDS_DIR) -> list[str]:
    return sorted(p.stem for p in boards_dir.glob("*.yaml"))


def board_files(board_id: str, boards_dir: Path = BOARDS_DIR) -> list[Path]:
    """The files a board's facts come from (its board file and its SoC file), for build dependencies."""
    soc = load_board(board_id, boards_dir).soc
    return [boards_dir / f"{board_id}.yaml", boards_dir / SOC_SUBDIR / f"{soc}.yaml"]


@functools.lru_cache(maxsize=None)
def load_board(board_id: str, boards_dir: Path = BOARDS_DIR) -> Board:
    """Load boards/<board_id>.yaml merged with its SoC file; SpecError (file:line:col) when malformed.

    Boards are immutable and read many times while the build graph is declared,
    so each file is parsed once per process.
    """
    path = boards_dir / f"{board_id}.yaml"
    if not path.exists():
        raise KeyError(board_id)
    data, pos = _load_mapping(path, _display(path, boards_dir), "board")
    soc, soc_display = _soc_of(data, pos, boards_dir)
    problems = [pos.problem((key,), _fixed_key_message(key, soc, soc_display), at_key=True)
                for key in data if key in FIXED_BY_SOC]
    try:
        own = validate(BoardFile, {k: v for k, v in data.items() if k not in FIXED_BY_SOC}, pos)
    except SpecError as exc:
        raise SpecError(problems + exc.problems) from None
    if problems:
        raise SpecError(problems)
    if own.id != board_id:
        raise SpecError(pos.problem(("id",), f"id '{own.id}' must match the file name '{board_id}'"))
    return merge(soc, own, pos)


def all_boards(boards_dir: Path = BOARDS_DIR) -> list[Board]:
    return [load_board(b, boards_dir) for b in board_ids(boards_dir)]
