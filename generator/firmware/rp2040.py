"""RP2040 firmware: a pico-sdk + pico-tflmicro CMake project per target.

`render_rp2040(project, target, board, analysis, tflite_bytes, out_dir) -> list[Path]`
(alias `render`) checks the target, then renders templates/rp2040/*.j2 and the
portable templates/common/*.j2 from one context into out_dir, and copies the
UF2 writer (generator/uf2.py) next to them. `check_target(project, target,
board, analysis)` returns the spec problems (file:line) that make a target
impossible on its board: a microphone pin on a pin the PIO cannot use or the
board reserves, an arena that does not fit its RAM region next to the
firmware's own RAM, a hop shorter than the estimated DSP + inference time.
`output_files(project, target, board)` lists every file render writes.

The project compiles only the TFLM kernels of the model's ops (`kernel_stems`) and registers
int8-only kernels for int8 models (`registrations`); the PDM decimator's tables (`pdm_lut`) are
computed here and land in flash. Figures measured with these settings (rp2040js, 125 MHz) set
the budget constants below; benchmarks/rp2040_emulator.py reproduces them.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np

from .. import cmsis, features
from ..boards import Board
from ..checks import PDM_DECIMATION, effective_arena, mic_clock_hz, pins
from ..errors import Problem, SpecError
from ..fileio import write_if_changed
from ..spec import Project, Target
from ..render import template_names
from ..targets import UF2_SCRIPT, output_files  # noqa: F401  (output_files: the family's API)
from .common import arena_bytes, common_context, render_tree, target_index

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
RING_BYTES = 8192  # 64 ms of 1-bit PDM at 1.024 MHz: room for a late hop


# RAM the firmware needs besides the arena and the feature/audio buffers that static_ram_bytes
# adds: .data + .bss + heap + stacks of the fire_alarm Pico build (arm-none-eabi-gcc 12.2, pico-sdk
# 2.2.0, USB + UART stdio): 33,592 bytes of RAM in all, of which 5,776 arena, 8,192 PDM ring and
# ~6,700 stream/features state.
FIRMWARE_RAM_BYTES = 16 * 1024
# Time estimates for the budget check, measured in rp2040js at 125 MHz: inference 12,080 us for
# the fire_alarm model's 92,672 MACs (16.3 cycles per MAC: conv, pooling, dense, softmax) and
# 319,590 us for a keywords-shaped ds_cnn's 2,190,528 MACs (18.2: depthwise + 1x1 conv), both
# CMSIS-NN's plain-C path on the Cortex-M0+; the front end 1,500-2,150 us per 512-point frame,
# up to 526 cycles per FFT point (log-mel, q15).
CYCLES_PER_MAC = 18
DSP_CYCLES_PER_FFT_POINT = 530


# TFLM kernel source stems (tensorflow/lite/micro/kernels/[cmsis_nn/]<stem>[_common].cpp) of the
# resolver's Add* methods whose name is not simply the snake_case of the op.
KERNEL_STEMS = {"AddMaxPool2D": "pooling", "AddAveragePool2D": "pooling", "AddConv2D": "conv",
                "AddDepthwiseConv2D": "depthwise_conv", "AddRelu": "activations",
                "AddRelu6": "activations", "AddMean": "reduce", "AddReduceMax": "reduce",
                "AddSum": "reduce", "AddL2Normalization": "l2norm", "AddMaximum": "maximum_minimum",
                "AddMinimum": "maximum_minimum", "AddEqual": "comparisons", "AddLess": "comparisons",
                "AddGreater": "comparisons", "AddAbs": "elementwise", "AddSqrt": "elementwise",
                "AddRsqrt": "elementwise", "AddLogicalAnd": "logical", "AddLogicalOr": "logical"}


# Int8-only registrations (pico-tflmicro's CMSIS-NN kernels): with them the linker keeps only the
# int8 paths, not the int4-weight and int16 kernels the generic Register_* functions reach
# (about 12 KB of flash on the fire_alarm Pico build). Used when the model's input is int8.
INT8_REGISTRATIONS = {
    "AddAdd": ("add.h", "Register_ADD_INT8"),
    "AddAveragePool2D": ("pooling.h", "Register_AVERAGE_POOL_2D_INT8"),
    "AddConv2D": ("conv.h", "Register_CONV_2D_INT8"),
    "AddDepthwiseConv2D": ("depthwise_conv.h", "Register_DEPTHWISE_CONV_2D_INT8"),
    "AddFullyConnected": ("fully_connected.h", "Register_FULLY_CONNECTED_INT8"),
    "AddMaxPool2D": ("pooling.h", "Register_MAX_POOL_2D_INT8"),
    "AddMul": ("mul.h", "Register_MUL_INT8"),
    "AddSoftmax": ("softmax.h", "Register_SOFTMAX_INT8"),
}


def registrations(analysis: dict, ops: list[str]) -> dict[str, str]:
    """Add* method -> argument (an int8-only registration call, or '' for the default)."""
    if analysis.get("input", {}).get("dtype") != "int8":
        return {op: "" for op in ops}
    return {op: f"tflite::{INT8_REGISTRATIONS[op][1]}()" if op in INT8_REGISTRATIONS else ""
            for op in ops}


def kernel_context(analysis: dict, ops: list[str]) -> dict:
    """Template values naming the TFLM kernels to compile and register, for both families."""
    regs = registrations(analysis, ops)
    return dict(registrations=regs, kernel_stems=kernel_stems(ops),
                kernel_headers=sorted({INT8_REGISTRATIONS[op][0] for op, arg in regs.items() if arg}))


def kernel_stems(ops: list[str]) -> list[str]:
    """Kernel source stems for the resolver's Add* calls: only these kernels are compiled."""
    out = set()
    for op in ops:
        stem = KERNEL_STEMS.get(op) or re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", op[3:]).lower()
        out.add(re.sub(r"(\d)_d$", r"_\1d", stem))
    return sorted(out)


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


def frame_dsp_us(project: Project, board: Board) -> float:
    """Estimated front-end microseconds per new frame."""
    return project.spec.features.fft_size * DSP_CYCLES_PER_FFT_POINT * 1e6 / board.clock_hz


def inference_us(board: Board, analysis: dict | None) -> float | None:
    """Estimated inference microseconds from the model's MACs, or None without them."""
    if analysis is None or "macs" not in analysis:
        return None
    return int(analysis["macs"]) * CYCLES_PER_MAC * 1e6 / board.clock_hz


def estimated_hop_us(project: Project, board: Board, analysis: dict | None) -> float | None:
    """DSP + inference microseconds per hop, or None without the model's MACs."""
    inf = inference_us(board, analysis)
    if inf is None:
        return None
    return project.spec.detection.hop_frames * frame_dsp_us(project, board) + inf


def static_ram_bytes(project: Project) -> int:
    """RAM of the firmware besides the arena: code's data/stacks plus the feature buffers."""
    spec = project.spec
    return (FIRMWARE_RAM_BYTES + spec.num_frames * spec.num_bins
            + 4 * spec.features.fft_size + 2 * spec.hop_samples + RING_BYTES)


def check_target(project: Project, target: Target, board: Board,
                 analysis: dict | None) -> list[Problem]:
    """Problems that make `target` impossible on `board`, each at its place in the spec."""
    i = target_index(project, target)
    pos = project.positions
    out = []
    if board.microphone.interface != "pdm":
        out.append(pos.problem(("targets", i, "board"),
                               f"{board.title}'s microphone is {board.microphone.interface}; the "
                               f"RP2040 firmware reads a PDM microphone"))
    clock = mic_clock_hz(project, board)
    if clock * 2 > board.clock_hz:
        out.append(pos.problem(("audio", "sample_rate"),
                               f"a {clock} Hz PDM clock needs a PIO at twice that; "
                               f"{board.title} runs at {board.clock_hz} Hz"))
    if PDM_DECIMATION != 64:
        raise AssertionError("audio_in.c decimates two 32-bit words per sample")
    region = board.region(board.arena_region)
    if region.name not in ARENA_SECTIONS:
        out.append(pos.problem(("targets", i, "board"),
                               f"arena_region {region.name} of boards/{board.id}.yaml has no "
                               f"pico-sdk section; use one of {sorted(ARENA_SECTIONS)}"))
    arena = arena_bytes(project, target, analysis)
    if arena is not None:
        loc = ("targets", i, "arena", "size") if target.arena is not None else ("arena", "size")
        other = static_ram_bytes(project) if region.name == "RAM" else 0
        if arena + other > region.length:
            out.append(pos.problem(
                loc, f"target '{target.name}': an arena of {arena} bytes plus about {other} bytes "
                     f"of firmware RAM exceeds {board.title}'s {region.name} ({region.length} "
                     f"bytes); make the model smaller"))
    est = estimated_hop_us(project, board, analysis)
    spec = project.spec
    hop_us = spec.hop_samples * 1e6 / spec.audio.sample_rate
    if est is not None and est > hop_us:
        step_us = spec.features.frame_step * 1e6 / spec.audio.sample_rate
        spare = step_us - frame_dsp_us(project, board)  # per frame of hop, after its front end
        need = math.ceil(inference_us(board, analysis) / spare) if spare > 0 else None
        fix = (f"raise hop_frames to {need} or more, or make the model smaller"
               if need is not None and need <= 64 else
               "make the model smaller or the frames longer (frame_step)")
        out.append(pos.problem(
            ("detection", "hop_frames"),
            f"target '{target.name}': a hop of {hop_us:.0f} us is shorter than the estimated "
            f"{est:.0f} us of DSP + inference on {board.title}; {fix}"))
    return out


def context(project: Project, target: Target, board: Board, analysis: dict,
            tflite_bytes: bytes) -> dict:
    spec = project.spec
    used = pins(target, board)
    region = board.region(board.arena_region)
    rate = spec.audio.sample_rate
    lut = pdm_lut()
    extra = {"lut": CIC_ORDER, "gain": GAIN_SHIFT, "ring": RING_BYTES, "hpf": HPF_HZ}
    ctx = common_context(project, target, board, analysis, tflite_bytes, extra)
    ctx["fe"] = features.template_values(features.design(spec))
    ctx.update(
        exe=EXE,
        sources=sorted(["main.cpp", "model.cpp", "audio_in.c", "frontend.c"]
                       + [f for f in template_names("common") if f.endswith((".c", ".cc", ".cpp"))]),
        model_symbol=f"{spec.name}_model_data",
        flash=board.region("FLASH"), uf2_family=UF2_FAMILY_ID,
        arena_section=ARENA_SECTIONS[region.name],
        measured_arena=int(analysis["arena"]["measured_bytes"]),
        led_pin=used["led_pin"],
        mic={"data_pin": used["mic.data_pin"], "clock_pin": used["mic.clock_pin"]},
        pio_block=board.microphone.peripheral, pio_sm=0, dma_channel=board.microphone.dma_channel,
        pdm_clock_hz=mic_clock_hz(project, board), decimation=PDM_DECIMATION,
        ring_bytes=RING_BYTES, ring_bits=RING_BYTES.bit_length() - 1,
        lut=lut, lut_tables=len(lut), lut_bytes=len(lut) * 256 * 2, lut_divisor=LUT_DIVISOR,
        fir_taps=CIC_ORDER * (PDM_DECIMATION - 1) + 1, gain_shift=GAIN_SHIFT,
        hpf_hz=HPF_HZ, hpf_alpha_q15=round(32768 * math.exp(-2 * math.pi * HPF_HZ / rate)),
        cmsis_dsp_sources=list(cmsis.SOURCES),
        **kernel_context(analysis, ctx["resolver_ops"]),
        static_ram_estimate=static_ram_bytes(project),
        arena_margin=effective_arena(project, target).margin,
    )
    return ctx


def render(project: Project, target: Target, board: Board, analysis: dict,
           tflite_bytes: bytes, out_dir: Path) -> list[Path]:
    problems = check_target(project, target, board, analysis)
    if problems:
        raise SpecError(problems)
    ctx = context(project, target, board, analysis, tflite_bytes)
    written = render_tree(project, FAMILY, ctx, tflite_bytes, out_dir)
    write_if_changed(out_dir / UF2_SCRIPT, UF2_WRITER.read_bytes())
    written.append(out_dir / UF2_SCRIPT)
    return sorted(written)


render_rp2040 = render
