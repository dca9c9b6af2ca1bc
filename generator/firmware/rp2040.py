"""RP2040 firmware: a pico-sdk + pico-tflmicro CMake project per target.

`render(variant, analysis, tflite_bytes, out_dir) -> list[Path]` checks the
resolved variant (generator.variant), then renders templates/rp2040/*.j2 and the
portable templates/common/*.j2 from one context into out_dir, and copies the
UF2 writer (generator/uf2.py) next to them. `check_target(variant)` returns the
spec problems (file:line) that make a target impossible on its board: a board
without a PDM microphone, a PDM clock the PIO cannot make, an arena that does
not fit its RAM region next to the firmware's own RAM, a hop shorter than the
estimated DSP + inference time, a PDM ring that would need more than the DMA's wrap
allows. generator.targets.output_files lists every file render writes.

The project compiles only the TFLM kernels of the model's ops and registers int8-only kernels
for int8 models (generator.tflm_ops); the PDM decimator's tables (`pdm_lut`) are computed here
and land in flash. Figures measured with these settings (rp2040js, 125 MHz) set
the budget constants below; benchmarks/rp2040_emulator.py reproduces them.

The PDM DMA ring is sized per variant (`pdm_ring`): it holds what arrives during the loop's
estimated time per hop (+ RING_MARGIN), rounded up to the power of two the DMA's address
wrap needs, at most RING_MAX_BYTES (the wrap's limit); the context, the RAM estimate and the
checks all read that one figure.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import cmsis, wire
from ..features import CHEAPER_FRAMES, LONGER_FRAMES
from ..errors import Problem, SpecError
from ..fileio import write_if_changed
from ..targets import (UF2_SCRIPT, capture_output_files, capture_templates,
                       output_files)
from ..variant import PDM_DECIMATION, Variant
from .budget import (ARENA, BUFFERS, CALIBRATION, FIRMWARE, PACK_CYCLES_PER_BYTE, RING, TABLES,
                     HopBudget, RegionUse, flash_use, frame_dsp_us, hop_budget)
from .common import capture_context, common_context, render_capture_tree, render_tree

FAMILY = "rp2040"
UF2_FAMILY_ID = 0xE48BFF56  # RP2040 in the UF2 family list (microsoft/uf2 utils/uf2families.json)
UF2_WRITER = Path(__file__).resolve().parent.parent / "uf2.py"
EXE = "firmware"

# The linker-script output section that lands in each RAM region of the pico-sdk's
# memmap_default.ld; the arena goes in the one its board names (NOLOAD: not zeroed at boot).
ARENA_SECTIONS = {"RAM": ".uninitialized_data.mf_tensor_arena",
                  "SCRATCH_X": ".scratch_x.mf_tensor_arena",
                  "SCRATCH_Y": ".scratch_y.mf_tensor_arena"}

# PDM front end. The sinc^3 decimator's byte tables are scaled down by LUT_DIVISOR so that a
# full-scale PDM stream (all ones) sums to 2^15 / 2^GAIN_SHIFT before the gain shift.
CIC_ORDER = 3
LUT_DIVISOR = 16
GAIN_SHIFT = 1
HPF_HZ = 20.0
# The PDM DMA ring (audio_in.c): the DMA writes it with an address wrap (CTRL.RING_SIZE, 4 bits:
# the low 1..15 address bits change), so it is a power of two of at most 2^15 bytes, aligned to
# its size. It must hold the PDM bits that arrive while the loop runs the front end, the model
# and the serial line (the estimate below, + RING_MARGIN for the estimate's error).
RING_MAX_BITS = 15
RING_MAX_BYTES = 1 << RING_MAX_BITS
RING_MIN_BYTES = 8192  # 64 ms: what every earlier firmware had
RING_MARGIN = 0.10
PDM_BYTES_PER_SAMPLE = PDM_DECIMATION // 8  # 1-bit PDM: decimation bits per output sample


# RAM the firmware needs besides the arena and the feature/audio buffers that static_ram_bytes
# adds: .data + .bss + heap + stacks of the fire_alarm Pico build (arm-none-eabi-gcc 12.2, pico-sdk
# 2.2.0, USB + UART stdio): 33,592 bytes of RAM in all, of which 5,776 arena, 8,192 PDM ring and
# ~6,700 stream/features state. The ring's alignment also leaves a gap before .bss (6,728 bytes
# in that build's plain firmware), counted in static_ram_bytes.
FIRMWARE_RAM_BYTES = 16 * 1024
# The loop's time per hop is generator.firmware.budget's (cycles per MAC and per FFT point,
# measured here in rp2040js); what is this family's own: reading the PDM microphone costs about
# 400 cycles per output sample in mf_audio_read (outside dsp_us), and the serial line is blocking
# UART stdio at 115200 baud.
DECIMATION_CYCLES_PER_SAMPLE = 400
SERIAL_BAUD = 115200


def pdm_lut(decimation: int = PDM_DECIMATION, order: int = CIC_ORDER,
            divisor: int = LUT_DIVISOR) -> list[list[int]]:
    """Byte tables of the sinc^order decimator: table t, entry b = sum_j +/-h[8t+j] / divisor."""
    h = np.ones(decimation, dtype=np.int64)
    for _ in range(order - 1):
        h = np.convolve(h, np.ones(decimation, dtype=np.int64))
    words = -(-len(h) // 32)
    h = np.concatenate([np.zeros(words * 32 - len(h), dtype=np.int64), h])  # newest bits last
    tables = []
    for t in range(len(h) // 8):
        taps = h[8 * t:8 * t + 8]
        row = []
        for byte in range(256):
            bits = np.array([(byte >> (7 - j)) & 1 for j in range(8)]) * 2 - 1  # MSB is oldest
            row.append(int(round(float((taps * bits).sum()) / divisor)))
        tables.append(row)
    return tables


def budget(v: Variant) -> HopBudget:
    """The loop's estimated time per hop on an RP2040 (generator.firmware.budget)."""
    return hop_budget(v, DECIMATION_CYCLES_PER_SAMPLE, SERIAL_BAUD, "PDM decimation",
                      f"estimated ({CALIBRATION}) at {v.board.clock_hz / 1e6:g} MHz")


def estimated_hop_us(v: Variant) -> float | None:
    """Microseconds the loop spends per hop (front end, Invoke, decimation, serial line), or
    None without the model's MACs."""
    b = budget(v)
    return b.total_us if b.known else None


def compute_us(v: Variant) -> float:
    """The loop's microseconds per hop; without the model's MACs (a spec checked before its
    model exists) a lower bound: everything but Invoke."""
    return budget(v).total_us


@dataclass(frozen=True)
class PdmRing:
    """The PDM DMA ring of a variant: what it must hold and the size it gets."""

    need_bytes: int     # the bits that arrive during compute_us x (1 + RING_MARGIN)
    bytes: int          # the power of two >= need_bytes (>= RING_MIN_BYTES), at most RING_MAX_BYTES
    compute_us: float   # the estimate it was sized for
    bytes_per_ms: float  # PDM bytes per millisecond (sample rate x decimation / 8)

    @property
    def bits(self) -> int:
        """log2(bytes): the DMA's ring size and the array's alignment."""
        return self.bytes.bit_length() - 1

    @property
    def fits(self) -> bool:
        return self.need_bytes <= self.bytes

    @property
    def ms(self) -> float:
        """Milliseconds of audio the ring holds."""
        return self.bytes / self.bytes_per_ms


def pdm_ring(v: Variant) -> PdmRing:
    """The ring the detector's audio_in.c gets (the one place its size is computed)."""
    return ring_for(v, compute_us(v))


def ring_for(v: Variant, compute: float) -> PdmRing:
    """A ring that holds what arrives while a loop computes for `compute` us per hop."""
    fe = v.frontend
    per_sample = PDM_BYTES_PER_SAMPLE
    # mf_audio_read decimates samples as they arrive, so the ring holds the backlog that piles
    # up while the loop computes, not a hop on top of it.
    late = math.ceil(compute * (1 + RING_MARGIN) * fe.sample_rate / 1e6)  # samples
    need = late * per_sample
    size = max(RING_MIN_BYTES, 1 << (need - 1).bit_length())
    return PdmRing(need_bytes=need, bytes=min(size, RING_MAX_BYTES), compute_us=compute,
                   bytes_per_ms=fe.sample_rate * per_sample / 1000)


def static_ram_bytes(v: Variant) -> int:
    """RAM of the firmware besides the arena: code's data/stacks, the feature buffers and the PDM
    ring, with up to as much again of padding (.bss is aligned to the ring's size)."""
    fe = v.frontend
    return (FIRMWARE_RAM_BYTES + fe.num_frames * fe.num_bins
            + 4 * fe.fft_size + 2 * fe.hop_samples + 2 * pdm_ring(v).bytes)


def _hop_frames_that_fit(v: Variant) -> list[int]:
    """hop_frames values (1..64) whose hop is at least the estimated compute and whose ring fits."""
    ok = []
    for h in range(1, 65):
        w = dataclasses.replace(v, frontend=dataclasses.replace(v.frontend, hop_frames=h))
        if compute_us(w) <= w.frontend.hop_us and pdm_ring(w).fits:
            ok.append(h)
    return ok


def _budget_problem(v: Variant) -> str | None:
    """Why the loop cannot keep up with the microphone, or None: the loop's estimated time
    must fit in a hop, and the PDM ring must hold what arrives meanwhile."""
    board, fe = v.board, v.frontend
    ring = pdm_ring(v)
    what = ("front end, Invoke, decimation and serial line" if estimated_hop_us(v) is not None
            else "front end, decimation and serial line (no model measured yet)")
    ok = _hop_frames_that_fit(v)
    if ring.compute_us > fe.hop_us:
        spare = fe.frame_us - frame_dsp_us(v)  # per frame of hop, after its front end
        if spare <= 0:
            fix = (f"its {frame_dsp_us(v):.0f} us per frame exceed the {fe.frame_us} us a frame "
                   f"lasts; {CHEAPER_FRAMES}")
        elif ok:
            fix = f"raise hop_frames to {ok[0]}"
            if ok[-1] < 64:
                fix += (f" (at most {ok[-1]}: the PDM ring holds {RING_MAX_BYTES} bytes, "
                        f"{RING_MAX_BYTES / ring.bytes_per_ms:.0f} ms)")
            fix += " or make the model smaller"
        else:
            fix = f"make the model smaller or {LONGER_FRAMES}"
        return (f"target '{v.name}': a hop of {fe.hop_us} us is shorter than the estimated "
                f"{ring.compute_us:.0f} us of {what} on {board.title}; {fix}")
    if not ring.fits:
        if ok:
            fix = f"lower hop_frames to {ok[-1]} or less"
        else:
            fix = "make the model smaller"
        return (f"target '{v.name}': the PDM DMA ring must hold what arrives during the "
                f"estimated {ring.compute_us:.0f} us of {what}, "
                f"+{RING_MARGIN:.0%}: {ring.need_bytes} bytes of 1-bit PDM at {v.mic_clock_hz} Hz; "
                f"the RP2040's DMA ring wraps at most {RING_MAX_BYTES} bytes "
                f"({RING_MAX_BYTES / ring.bytes_per_ms:.0f} ms); {fix}")
    return None


def check_microphone(v: Variant) -> list[Problem]:
    """Problems of the microphone driver (detector and capture firmware alike)."""
    board, pos = v.board, v.project.positions
    out = []
    if board.microphone.interface != "pdm":
        out.append(pos.problem(v.loc("board"),
                               f"{board.title}'s microphone is {board.microphone.interface}; the "
                               f"RP2040 firmware reads a PDM microphone"))
    if v.mic_clock_hz * 2 > board.clock_hz:
        out.append(pos.problem(("audio", "sample_rate"),
                               f"a {v.mic_clock_hz} Hz PDM clock needs a PIO at twice that; "
                               f"{board.title} runs at {board.clock_hz} Hz"))
    if PDM_DECIMATION != 64:
        raise AssertionError("audio_in.c decimates two 32-bit words per sample")
    return out


def check_target(v: Variant) -> list[Problem]:
    """Problems that make variant `v` impossible on its board, each at its place in the spec."""
    board, pos = v.board, v.project.positions
    out = check_microphone(v)
    region = board.region(board.arena_region)
    if region.name not in ARENA_SECTIONS:
        out.append(pos.problem(v.loc("board"),
                               f"arena_region {region.name} of boards/{board.id}.yaml has no "
                               f"pico-sdk section; use one of {sorted(ARENA_SECTIONS)}"))
    arena = v.arena.bytes
    if arena is not None:
        other = static_ram_bytes(v) if region.name == "RAM" else 0
        if arena + other > region.length:
            out.append(pos.problem(
                v.arena.where, f"target '{v.name}': an arena of {arena} bytes plus about {other} "
                               f"bytes of firmware RAM exceeds {board.title}'s {region.name} "
                               f"({region.length} bytes); make the model smaller"))
    problem = _budget_problem(v)
    if problem is not None:
        out.append(pos.problem(("detection", "hop_frames"), problem))
    return out


def context(v: Variant, analysis: dict, tflite_bytes: bytes) -> dict:
    board = v.board
    ring = pdm_ring(v)
    extra = {"lut": CIC_ORDER, "gain": GAIN_SHIFT, "ring": ring.bytes, "hpf": HPF_HZ}
    ctx = common_context(v, analysis, tflite_bytes, extra)
    ctx.update(
        exe=EXE,
        sources=[f for f in output_files(v.project, v.target, board)
                 if f.endswith((".c", ".cc", ".cpp"))],
        arena_section=ARENA_SECTIONS[board.arena_region],
        ready_extra="", ring_loop="front end + inference",
        cmsis_dsp_sources=list(cmsis.SOURCES),
        static_ram_estimate=static_ram_bytes(v),
        **microphone_context(v, ring),
    )
    return ctx


def microphone_context(v: Variant, ring: PdmRing) -> dict:
    """What audio_in.c (and the READMEs) need: pins, PIO, DMA, ring, decimator tables."""
    board, rate = v.board, v.frontend.sample_rate
    lut = pdm_lut()
    return dict(
        flash=board.region("FLASH"), uf2_family=UF2_FAMILY_ID, led_pin=v.pins["led_pin"],
        mic={"data_pin": v.pins["mic.data_pin"], "clock_pin": v.pins["mic.clock_pin"]},
        pio_block=board.microphone.peripheral, pio_sm=0, dma_channel=board.microphone.dma_channel,
        pdm_clock_hz=v.mic_clock_hz, decimation=PDM_DECIMATION,
        ring_bytes=ring.bytes, ring_bits=ring.bits, ring_ms=ring.ms,
        ring_need_bytes=ring.need_bytes, ring_compute_us=ring.compute_us,
        ring_margin=RING_MARGIN,
        lut=lut, lut_tables=len(lut), lut_bytes=len(lut) * 256 * 2, lut_divisor=LUT_DIVISOR,
        fir_taps=CIC_ORDER * (PDM_DECIMATION - 1) + 1, gain_shift=GAIN_SHIFT,
        hpf_hz=HPF_HZ, hpf_alpha_q15=round(32768 * math.exp(-2 * math.pi * HPF_HZ / rate)),
    )


def render(v: Variant, analysis: dict, tflite_bytes: bytes, out_dir: Path) -> list[Path]:
    problems = check_target(v)
    if problems:
        raise SpecError(problems)
    ctx = context(v, analysis, tflite_bytes)
    written = render_tree(v.project, FAMILY, ctx, tflite_bytes, out_dir)
    write_if_changed(out_dir / UF2_SCRIPT, UF2_WRITER.read_bytes())
    written.append(out_dir / UF2_SCRIPT)
    return sorted(written)


# The capture firmware (templates/capture/rp2040): USB CDC, a transmit buffer of CDC_TX_FRAMES
# frames; status on UART0. Its loop per frame: decimation, packing (a CRC-32 of the frame, about
# 20 cycles per byte), a copy into the CDC buffer.
CDC_TX_FRAMES = 8


def capture_compute_us(v: Variant) -> float:
    """Estimated microseconds of the capture loop per frame."""
    cycles = (wire.FRAME_SAMPLES * DECIMATION_CYCLES_PER_SAMPLE
              + wire.frame_bytes() * PACK_CYCLES_PER_BYTE)
    return cycles * 1e6 / v.board.clock_hz


def render_capture(v: Variant, out_dir: Path) -> list[Path]:
    """The capture project of variant `v` (firmware/<variant>-capture/)."""
    problems = check_microphone(v)
    if problems:
        raise SpecError(problems)
    ring = ring_for(v, capture_compute_us(v))
    ctx = capture_context(v, {"ring": ring.bytes, "cdc": CDC_TX_FRAMES})
    cdc_tx = CDC_TX_FRAMES * wire.frame_bytes()
    ctx.update(exe=EXE, uart_baud=SERIAL_BAUD, cdc_tx_bytes=cdc_tx, cdc_frames=CDC_TX_FRAMES,
               cdc_ms=CDC_TX_FRAMES * ctx["frame_us"] / 1000, hop_us=ctx["frame_us"],
               ring_loop="decimation + framing",
               sources=[f for f in capture_output_files(v.board) if f.endswith(".c")],
               **microphone_context(v, ring))
    written = render_capture_tree(capture_templates(v.board), ctx, out_dir)
    write_if_changed(out_dir / UF2_SCRIPT, UF2_WRITER.read_bytes())
    written.append(out_dir / UF2_SCRIPT)
    return sorted(written)


def memory(v: Variant, model_bytes: int, plan: dict | None = None) -> list[RegionUse]:
    """What the estimates put in each of the board's regions (generator.firmware.budget)."""
    board, ring = v.board, pdm_ring(v)
    static = static_ram_bytes(v)
    parts: dict[str, list[tuple[str, int]]] = {r.name: [] for r in board.regions("ram")}
    parts["RAM"] += [(FIRMWARE, FIRMWARE_RAM_BYTES), (RING, 2 * ring.bytes),
                     (BUFFERS, static - FIRMWARE_RAM_BYTES - 2 * ring.bytes)]
    if v.arena.bytes is not None:
        parts[board.arena_region].insert(0, (ARENA, v.arena.bytes))
    tables = len(pdm_lut()) * 256 * 2
    out = [flash_use(board, model_bytes, [(TABLES, tables)],
                     "benchmarks/rp2040_emulator.py size ELF BOARD")]
    out += [RegionUse(r.name, r.origin, r.length, tuple(parts[r.name]),
                      "" if parts[r.name] else "pico-sdk keeps a core's stack here",
                      estimated=bool(parts[r.name]))
            for r in board.regions("ram")]
    return out
