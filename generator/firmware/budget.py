"""What a variant's loop costs per hop, and what its firmware puts in each memory region:
the estimates every consumer reads (the families' checks, the build summary, report.html,
`micforge diff`, `micforge tune`), computed in one place.

Time per hop: the front end (per new frame: the FFT's cycles per point), Invoke (the model's
MACs times the cycles per MAC), reading the microphone (the family's cycles per sample: the
RP2040's PDM decimation, the RT1062's copy of SAI words) and printing the serial line (its
characters at the board's baud rate). The cycle figures were measured in rp2040js on the
RP2040's Cortex-M0+ at 125 MHz (generator/firmware/rp2040.py says on which builds); the RT1062
applies them at its own clock, an upper bound for a Cortex-M7 (dual issue, CMSIS-NN's SIMD
multiply-accumulate) that nothing here has measured.

Memory per region: each family's `memory(v, model_bytes, plan)` lists what the estimates put in
each of its board's regions (RegionUse); code in flash is not counted (it is known after linking).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..variant import Variant

# Measured in rp2040js at 125 MHz (pico-sdk 2.2, pico-tflmicro's CMSIS-NN plain-C path):
# - Invoke: 2,686 us for fire_alarm's compact_cnn (18,528 MACs: 18.1 cycles per MAC, overhead
#   included), 110,610 us for keywords' ds_cnn (678,672 MACs: 20.4), 70,872 us for
#   keywords_mfcc's (494,784 MACs: 17.9); earlier 319,590 us for a 2.19 M-MAC ds_cnn (18.2).
#   The largest, rounded up, is used.
# - front end: 1,256 us per new 512-point log-mel frame (307 cycles per FFT point).
CYCLES_PER_MAC = 20.5
DSP_CYCLES_PER_FFT_POINT = 310
SERIAL_LINE_CHARS = 72  # "hop=... q=" without the outputs; each class adds about 5
SERIAL_CHARS_PER_CLASS = 5
BITS_PER_CHAR = 10  # 8N1
PACK_CYCLES_PER_BYTE = 20  # a capture frame's CRC-32, a nibble table at a time (mf_capture.c)
CALIBRATION = (f"calibrated in rp2040js: {CYCLES_PER_MAC:g} cycles/MAC, "
               f"{DSP_CYCLES_PER_FFT_POINT} cycles per FFT point")


def frame_dsp_us(v: Variant) -> float:
    """Estimated front-end microseconds per new frame."""
    return v.frontend.fft_size * DSP_CYCLES_PER_FFT_POINT * 1e6 / v.board.clock_hz


def inference_us(v: Variant) -> float | None:
    """Estimated Invoke microseconds from the model's MACs, or None without them."""
    return None if v.macs is None else v.macs * CYCLES_PER_MAC * 1e6 / v.board.clock_hz


def serial_line_us(v: Variant, baud: int) -> float:
    """Printing one hop line at `baud` (0 when the variant does not print)."""
    if "serial" not in v.outputs:
        return 0.0
    chars = SERIAL_LINE_CHARS + SERIAL_CHARS_PER_CLASS * len(v.project.spec.classes)
    return chars * BITS_PER_CHAR * 1e6 / baud


@dataclass(frozen=True)
class HopBudget:
    """The loop's estimated microseconds per hop, by part, against the hop."""

    hop_us: int
    front_us: float
    invoke_us: float | None  # None: the model's MACs are not known yet
    audio_us: float          # reading the microphone
    serial_us: float         # printing the hop line
    audio_what: str          # what reading the microphone is on this board
    source: str              # where the figures come from

    @property
    def total_us(self) -> float:
        """The loop's time per hop; without the MACs a lower bound (everything but Invoke)."""
        return self.front_us + (self.invoke_us or 0.0) + self.audio_us + self.serial_us

    @property
    def known(self) -> bool:
        return self.invoke_us is not None


def hop_budget(v: Variant, audio_cycles_per_sample: float, baud: int, audio_what: str,
               source: str) -> HopBudget:
    """A family's budget from its microphone's cost per sample and its serial line's rate."""
    fe = v.frontend
    return HopBudget(
        hop_us=fe.hop_us, front_us=fe.hop_frames * frame_dsp_us(v), invoke_us=inference_us(v),
        audio_us=fe.hop_samples * audio_cycles_per_sample * 1e6 / v.board.clock_hz,
        serial_us=serial_line_us(v, baud), audio_what=audio_what, source=source)


@dataclass(frozen=True)
class RegionUse:
    """A board region, its size (for a FlexRAM window: what the plan gives it) and what the
    estimates put in it."""

    name: str
    origin: int
    size: int
    parts: tuple[tuple[str, int], ...]
    note: str = ""
    estimated: bool = True  # False: the estimates say nothing about this region

    @property
    def used(self) -> int:
        return sum(n for _, n in self.parts)


# The names of the parts (report.html colours them, diff lists them).
ARENA, MODEL, TABLES = "tensor arena", "model flatbuffer", "PDM decimator tables"
FIRMWARE, RING, BUFFERS = ("firmware .data/.bss, heap, stacks", "PDM DMA ring, twice (.bss aligned to it)",
                           "feature and audio buffers")
CODE, STACK, DATA = "CMSIS-NN/DSP hot code (estimate)", "stack", ".data/.bss (estimate)"
FFT, HEAP, DMA = "feature and FFT buffers", "heap", "eDMA audio buffers (non-cacheable)"


def flash_use(board, model_bytes: int, extra: list[tuple[str, int]], how: str) -> RegionUse:
    r = board.region("FLASH")
    return RegionUse(r.name, r.origin, r.length, ((MODEL, model_bytes), *extra),
                     f"code (SDK, TFLM kernels, CMSIS) not counted: it is known after linking "
                     f"({how})")
