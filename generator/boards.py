"""Board catalogue: one YAML file per board under boards/, validated by `Board`.

A board file is the single statement of a board's facts (core, clock, memory
map, microphone wiring, LED). Linker scripts, CMake flags and budget checks
derive from it; nothing else repeats these numbers.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from . import yamlpos
from .errors import Problem, SpecError
from .validate import validate

BOARDS_DIR = Path(__file__).resolve().parent.parent / "boards"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Region(_Strict):
    name: str = Field(description="Linker MEMORY name, e.g. FLASH, SRAM, DTCM.", pattern=r"^[A-Z][A-Z0-9_]*$")
    origin: int = Field(ge=0, description="Start address.")
    length: int = Field(gt=0, description="Size in bytes.")
    kind: Literal["flash", "ram", "itcm", "dtcm", "ocram", "flexram"] = Field(
        description="What the region is; 'flexram' is the RT1062's configurable bank pool.")
    note: str = Field("", description="Where the fact comes from, or what uses the region.")

    @property
    def end(self) -> int:
        return self.origin + self.length


class FlexRam(_Strict):
    banks: int = Field(ge=1, le=32, description="Number of FlexRAM banks.")
    bank_size: int = Field(gt=0, description="Bytes per bank.")
    itcm_origin: int = Field(description="Address of ITCM.")
    dtcm_origin: int = Field(description="Address of DTCM.")
    ocram_origin: int = Field(description="Address of FlexRAM banks configured as OCRAM.")
    fuse_itcm_banks: int = Field(ge=0, description="ITCM banks in the fuse default split.")
    fuse_dtcm_banks: int = Field(ge=0, description="DTCM banks in the fuse default split.")

    @property
    def total(self) -> int:
        return self.banks * self.bank_size


class Microphone(_Strict):
    interface: Literal["pdm", "i2s"] = Field(description="Digital microphone bus.")
    data_pin: int = Field(ge=0, description="Data GPIO (PDM DATA or I2S SD).")
    clock_pin: int = Field(ge=0, description="Clock GPIO (PDM CLK or I2S BCLK).")
    word_select_pin: int | None = Field(None, ge=0, description="I2S LRCLK/WS GPIO (i2s only).")
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
    """Facts only an i.MX RT board needs: pads, GPIO ports, UART, flash chip, stack/heap."""

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


class Board(_Strict):
    id: str = Field(description="Board id; the file name without .yaml.", pattern=r"^[a-z][a-z0-9_]*$")
    title: str = Field(description="Human name.")
    soc: Literal["rp2040", "imxrt1062"] = Field(description="Chip; selects the firmware family.")
    core: Literal["cortex-m0plus", "cortex-m7"] = Field(description="CPU core (-mcpu).")
    clock_hz: int = Field(gt=0, description="Core clock the firmware runs at.")
    fpu: Literal["none", "fpv5-d16"] = Field(description="FPU (-mfpu), 'none' for soft float.")
    dsp_extensions: bool = Field(description="Whether the core has the Armv7E-M DSP instructions.")
    sdk: Literal["pico-sdk", "mcuxpresso"] = Field(description="SDK the firmware builds with.")
    sdk_board: str = Field(description="The SDK's own board name (PICO_BOARD, or MCUXpresso board folder).")
    flash_size: int = Field(gt=0, description="Bytes of program flash.")
    memory: list[Region] = Field(min_length=1, description="Memory map, one entry per region.")
    flexram: FlexRam | None = Field(None, description="FlexRAM bank pool (i.MX RT only).")
    imxrt: Imxrt | None = Field(None, description="Pads, UART and flash chip (i.MX RT only).")
    gpio_count: int = Field(gt=0, description="GPIOs usable as pin numbers 0..gpio_count-1.")
    reserved_pins: list[int] = Field(default_factory=list, description="Pins the board uses itself.")
    led_pin: int = Field(ge=0, description="On-board LED GPIO.")
    led_pwm: bool = Field(True, description="Whether the LED pin can be driven by PWM.")
    microphone: Microphone = Field(description="Microphone wiring of the default carrier.")
    arena_region: str = Field(description="Memory region the tensor arena is placed in.")
    notes: str = Field("", description="Anything a user should know.")

    @model_validator(mode="after")
    def _consistent(self) -> "Board":
        names = [r.name for r in self.memory]
        if len(set(names)) != len(names):
            raise ValueError("memory region names must be unique")
        if self.arena_region not in names:
            raise ValueError(f"arena_region '{self.arena_region}' is not a memory region ({', '.join(names)})")
        ordered = sorted(self.memory, key=lambda r: r.origin)
        for a, b in zip(ordered, ordered[1:]):
            if a.end > b.origin:
                raise ValueError(f"memory regions {a.name} and {b.name} overlap")
        for pin in [self.led_pin, self.microphone.data_pin, self.microphone.clock_pin]:
            if pin >= self.gpio_count:
                raise ValueError(f"pin {pin} is beyond gpio_count {self.gpio_count}")
        return self

    def region(self, name: str) -> Region:
        for r in self.memory:
            if r.name == name:
                return r
        raise KeyError(name)

    def regions(self, kind: str) -> list[Region]:
        return [r for r in self.memory if r.kind == kind]

    @property
    def family(self) -> str:
        return self.soc


def board_ids(boards_dir: Path = BOARDS_DIR) -> list[str]:
    return sorted(p.stem for p in boards_dir.glob("*.yaml"))


@functools.lru_cache(maxsize=None)
def load_board(board_id: str, boards_dir: Path = BOARDS_DIR) -> Board:
    """Load boards/<board_id>.yaml; SpecError (with file:line:col) when it is malformed.

    Boards are immutable and read many times while the build graph is declared,
    so each file is parsed once per process.
    """
    path = boards_dir / f"{board_id}.yaml"
    display = f"boards/{board_id}.yaml"
    if not path.exists():
        raise KeyError(board_id)
    data, pos = yamlpos.load(path, display)
    if not isinstance(data, dict):
        raise SpecError(Problem(display, 1, 1, "a board file must be a YAML mapping"))
    board = validate(Board, data, pos)
    if board.id != board_id:
        raise SpecError(pos.problem(("id",), f"id '{board.id}' must match the file name '{board_id}'"))
    return board


def all_boards(boards_dir: Path = BOARDS_DIR) -> list[Board]:
    return [load_board(b, boards_dir) for b in board_ids(boards_dir)]
