"""i.MX RT1062 firmware: an MCUXpresso SDK (armgcc CMake) project per target.

`render(variant, analysis, tflite_bytes, out_dir) -> list[Path]` plans the
FlexRAM split from the build's size estimates
(generator.flexram), then renders templates/imxrt1062/*.j2 and the
target-neutral templates/common/*.j2 from one context, and writes the plan as
flexram_plan.json. `check_target(variant)` returns the
spec problems (file:line) that make a target impossible: a FlexRAM split that
cannot hold it, a sample rate the SAI clock cannot divide, pin overrides, a hop
whose audio the eDMA ping-pong cannot hold while the loop computes.
generator.targets.output_files lists every file render writes.

`render_capture(variant, out_dir)` writes the capture project (firmware/<variant>-capture/):
templates/capture/ plus the detector's board templates (generator.targets capture_shared),
rendered through the same board context (`board_context`) from a FlexRAM plan of its own (no
arena, no ITCM code), streaming frames over the board's LPUART at the family's capture_baud;
`check_capture(variant)` returns what makes it impossible (the link too slow for the rate).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from ..boards import Board
from ..features import CHEAPER_FRAMES, LONGER_FRAMES
from ..errors import Problem, SpecError
from ..flexram import Plan, PlanError, Sizes, plan
from ..render import content_hash, environment, header
from .. import cmsis, wire
from ..fileio import write_json
from ..targets import FAMILIES, PLAN_FILE, capture_output_files, capture_templates, output_files
from ..variant import Variant
from .common import (block_comment, capture_context, common_context, render_capture_tree,
                     render_tree)
from .budget import (ARENA, CALIBRATION, CODE, DATA, DMA, FFT, HEAP, PACK_CYCLES_PER_BYTE, STACK,
                     HopBudget, RegionUse, flash_use, frame_dsp_us, hop_budget)

FAMILY = "imxrt1062"
ARENA_SECTION = ".tensor_arena"  # linker.ld: NOLOAD, in DTCM

# Size estimates used before a real ELF exists (the ELF check verifies them after the build).
# CMSIS-NN + CMSIS-DSP .text that the linker script moves to ITCM: 27,192 bytes in the
# fire_alarm Teensy 4.1 build (arm-none-eabi-gcc 12.2, -O3, small compact_cnn test model);
# 40 KB leaves room for the depthwise/1x1 kernels of a ds_cnn.
ITCM_CODE_ESTIMATE = 40 * 1024
# .data + .bss besides the arena and feature buffers: TFLM interpreter and
# allocator objects, SDK driver handles, newlib-nano state (the same build: 9,004 bytes
# of .data + .bss in all, feature and stream state included).
DATA_BSS_ESTIMATE = 16 * 1024

# SAI1 master clock: audio PLL (PLL4) = 24 MHz x (32 + 768/1000) = 786.432 MHz,
# divided by (3 + 1) x (15 + 1) -> 12.288 MHz exactly (the SDK's SAI examples use
# 77/100, 12.28875 MHz); the bit clock divider (even, >= 2) then gives 8/12/16/
# 24/32/48 kHz x 64 exactly.
AUDIO_PLL = {"loop_divider": 32, "post_divider": 1, "numerator": 768, "denominator": 1000,
             "sai_prediv": 3, "sai_div": 15}
XTAL_HZ = 24_000_000
SAI_WORD_BITS = 32  # one 32-bit slot per channel, two channels a frame
NCACHE_MIN = 32  # smallest MPU region

# The first bytes of FlexSPI NOR flash as the boot ROM reads them.
BOOT_FCB_OFFSET, BOOT_IVT_OFFSET, BOOT_VECTORS_OFFSET = 0x0, 0x1000, 0x2000
VECTORS_SIZE = 0x400


def sai_mclk_hz() -> int:
    p = AUDIO_PLL
    pll = XTAL_HZ * (p["loop_divider"] * p["denominator"] + p["numerator"]) // p["denominator"]
    return pll // (p["sai_prediv"] + 1) // (p["sai_div"] + 1)


def bclk_divisible(rate: int) -> bool:
    """Whether the SAI bit clock divider (MCLK / (2 x (DIV + 1))) gives rate x 64 exactly."""
    ratio, rest = divmod(sai_mclk_hz(), rate * 2 * SAI_WORD_BITS)
    return rest == 0 and ratio >= 2 and ratio % 2 == 0


def _pow2_at_least(n: int) -> int:
    size = NCACHE_MIN
    while size < n:
        size *= 2
    return size


def dma_bytes(block_samples: int) -> int:
    """Two ping-pong buffers of one block (audio_in.c's MF_HOP_SAMPLES) of 32-bit I2S samples."""
    return 2 * block_samples * SAI_WORD_BITS // 8


def dma_buffer_bytes(v: Variant) -> int:
    """The detector's eDMA buffers: its block is a hop."""
    return dma_bytes(v.frontend.hop_samples)


# Reading the microphone: audio_in.c copies each 32-bit SAI word's top half into the hop (a load,
# a shift, a store and the loop: about 8 cycles a sample; not measured).
SAI_COPY_CYCLES_PER_SAMPLE = 8


def budget(v: Variant) -> HopBudget:
    """The loop's estimated time per hop (generator.firmware.budget): the RP2040's measured
    cycles per MAC and per FFT point at this board's clock, which a Cortex-M7 (dual issue,
    CMSIS-NN's SIMD multiply-accumulate) should not exceed; the serial line at the board's
    baud rate."""
    return hop_budget(v, SAI_COPY_CYCLES_PER_SAMPLE, v.board.imxrt.uart_baud, "SAI copy",
                      f"estimated with the RP2040's figures ({CALIBRATION}) at "
                      f"{v.board.clock_hz / 1e6:g} MHz: an upper bound for the {v.board.core}, "
                      f"not measured on one")


def compute_us(v: Variant) -> float:
    """Estimated loop microseconds per hop (without the model's MACs, everything but Invoke)."""
    return budget(v).total_us


def ping_pong_problem(v: Variant) -> str | None:
    """The eDMA fills buffer n + 1 (one hop) while the loop runs the front end and the model on
    buffer n, and starts overwriting buffer n one hop after it completed (audio_in.c): the loop
    keeps up only if what arrives during its compute fits the other buffer, i.e. the estimated
    compute is at most a hop. None when it is."""
    fe = v.frontend
    est = compute_us(v)
    if est <= fe.hop_us:
        return None
    what = ("DSP + inference" if budget(v).known
            else "front end alone (no model measured yet)")
    arriving = math.ceil(est * fe.sample_rate / 1e6)
    spare = fe.frame_us - frame_dsp_us(v)  # per frame of hop, after its front end
    inference = est - fe.hop_frames * frame_dsp_us(v)
    need = math.ceil(inference / spare) if spare > 0 and inference > 0 else None
    if spare <= 0:
        fix = (f"its {frame_dsp_us(v):.0f} us per frame exceed the {fe.frame_us} us a frame lasts; "
               f"{CHEAPER_FRAMES}")
    elif need is not None and need <= 64:
        fix = f"raise hop_frames to {need} or more, or make the model smaller"
    else:
        fix = f"make the model smaller or {LONGER_FRAMES}"
    return (f"target '{v.name}': {arriving} samples arrive during the estimated {est:.0f} us of "
            f"{what} on {v.board.title}, more than the eDMA buffer being filled meanwhile holds "
            f"(ping-pong of 2 x {fe.hop_samples} samples, one hop = {fe.hop_us} us); {fix}")


def estimate_sizes(v: Variant, arena: int) -> Sizes:
    fe = v.frontend
    # feature map + the FFT's q15 in/out buffers + a 32-bit word per frame of the clip
    features = fe.num_frames * fe.num_bins + 2 * fe.fft_size * 2 + fe.num_frames * 4
    dtcm = arena + v.board.imxrt.stack_bytes + DATA_BSS_ESTIMATE + features
    ocram = _pow2_at_least(dma_buffer_bytes(v)) + v.board.imxrt.heap_bytes
    return Sizes(itcm_code=ITCM_CODE_ESTIMATE, dtcm=dtcm, ocram=ocram)


def check_microphone(v: Variant) -> list[Problem]:
    """Problems of the pads and the SAI clock (detector and capture firmware alike)."""
    board, pos = v.board, v.project.positions
    out = []
    if v.overridden:
        out.append(pos.problem(
            v.loc("board"), f"pin overrides are not supported on {board.title}: its pins "
                            f"are pads with fixed functions (SAI1, GPIO); edit "
                            f"boards/{board.id}.yaml instead"))
    rate = v.frontend.sample_rate
    bclk = rate * 2 * SAI_WORD_BITS
    if not bclk_divisible(rate):
        ok = [r for r in range(4000, 48001, 1000) if bclk_divisible(r)]
        out.append(pos.problem(
            ("audio", "sample_rate"), f"{board.title}'s SAI1 clock ({sai_mclk_hz()} Hz) cannot be "
                                      f"divided to {bclk} Hz for {rate} Hz; use one of {ok}"))
    return out


def check_target(v: Variant) -> list[Problem]:
    """Problems that make variant `v` impossible on its board, each at its place in the spec."""
    board, pos = v.board, v.project.positions
    out = check_microphone(v)
    arena = v.arena.bytes
    if arena is not None:
        try:
            plan(board, estimate_sizes(v, arena))
        except PlanError as exc:
            out.append(pos.problem(v.arena.where, f"target '{v.name}': {exc}"))
    late = ping_pong_problem(v)
    if late is not None:
        out.append(pos.problem(("detection", "hop_frames"), late))
    return out


def _size_code(size: int) -> int:
    """ARM_MPU_REGION_SIZE_* value: log2(size) - 1."""
    if size < 32 or size & (size - 1):
        raise ValueError(f"MPU region size {size} is not a power of two >= 32")
    return size.bit_length() - 2


def mpu_regions(board: Board, fp: Plan, ncache_origin: int, ncache_size: int) -> list[dict]:
    """Cortex-M7 MPU regions (higher number wins), derived from the plan and memory map."""
    flash = board.region("FLASH")
    ocram2 = board.regions("ocram")[0]
    flex = board.regions("flexram")[0]
    normal = dict(tex=0, c=1, b=1)  # outer/inner write-back, no write-allocate
    device = dict(tex=2, c=0, b=0)
    regions = [
        dict(base=0x00000000, size=1 << 32, xn=1, ap="ARM_MPU_AP_NONE", tex=0, c=0, b=0, srd=0,
             why="background: no access (Arm errata 1013783, speculative prefetch)"),
        dict(base=0x80000000, size=0x20000000, xn=1, ap="ARM_MPU_AP_FULL", srd=0, **device,
             why="SEMC: device, never speculatively read (no SDRAM set up)"),
        dict(base=0x60000000, size=0x20000000, xn=1, ap="ARM_MPU_AP_FULL", srd=0, **device,
             why="FlexSPI window beyond the flash"),
        dict(base=flash.origin, size=_pow2_at_least(flash.length), xn=0, ap="ARM_MPU_AP_RO", srd=0,
             **normal, why="XIP flash: cacheable, read-only"),
        dict(base=0x00000000, size=0x40000000, xn=1, ap="ARM_MPU_AP_FULL", srd=0, **device,
             why="ROM and unused TCM/OCRAM windows: device"),
    ]
    if fp.itcm_size:
        regions.append(dict(base=fp.itcm_origin, size=fp.itcm_size, xn=0, ap="ARM_MPU_AP_FULL",
                            srd=0, **normal, why=f"ITCM, {fp.itcm_banks} banks"))
    if fp.dtcm_size:
        regions.append(dict(base=fp.dtcm_origin, size=fp.dtcm_size, xn=1, ap="ARM_MPU_AP_FULL",
                            srd=0, **normal, why=f"DTCM, {fp.dtcm_banks} banks"))
    regions.append(dict(base=ocram2.origin, size=ocram2.length, xn=1, ap="ARM_MPU_AP_FULL", srd=0,
                        **normal, why=f"{ocram2.name}: dedicated OCRAM"))
    if fp.ocram_flex_size:
        # 8 subregions of length/8; disable the ones past the OCRAM banks.
        sub = flex.length // 8
        used = -(-fp.ocram_flex_size // sub)
        srd = (0xFF << used) & 0xFF
        regions.append(dict(base=flex.origin, size=flex.length, xn=1, ap="ARM_MPU_AP_FULL",
                            srd=srd, **normal, why=f"FlexRAM OCRAM, {fp.ocram_banks} banks"))
    regions.append(dict(base=ncache_origin, size=ncache_size, xn=1, ap="ARM_MPU_AP_FULL", srd=0,
                        tex=1, c=0, b=0, why="DMA audio buffers: normal, non-cacheable"))
    regions += [
        dict(base=0x40000000, size=0x400000, xn=1, ap="ARM_MPU_AP_FULL", srd=0, **device,
             why="AIPS peripherals"),
        dict(base=0x42000000, size=0x100000, xn=1, ap="ARM_MPU_AP_FULL", srd=0, **device,
             why="GPIO6-9 (fast GPIO)"),
    ]
    if len(regions) > 16:
        raise ValueError("more than 16 MPU regions")
    for n, r in enumerate(regions):
        r["number"] = n
        r["size_code"] = _size_code(r["size"])
        if r["base"] % r["size"]:
            raise ValueError(f"MPU region {r['why']} base 0x{r['base']:X} is not size-aligned")
    return regions


def memory_context(board: Board, fp: Plan, dma_bytes: int, has_arena: bool = True) -> dict:
    """What the linker script, startup, MPU and build templates need: the plan, the memory map,
    the FlexRAM registers (SoC file) and the mcux-sdk board folder the clock setup and the
    FlexSPI NOR types come from (the board's own, or the one it borrows). `has_arena`: whether
    the image links a tensor arena (linker.ld then refuses to link without one)."""
    ocram2 = board.regions("ocram")[0]
    ncache_size = _pow2_at_least(dma_bytes)
    pool, borrowed = board.flexram, board.imxrt.sdk_files_from
    return dict(
        board=board, imx=board.imxrt, plan=fp, plan_summary=fp.summary(), has_arena=has_arena,
        mpu=mpu_regions(board, fp, ocram2.origin, ncache_size),
        ncache_origin=ocram2.origin, ncache_size=ncache_size,
        ocram=ocram2, ocram_flex=board.regions("flexram")[0], flash=board.region("FLASH"),
        boot=dict(fcb=BOOT_FCB_OFFSET, ivt=BOOT_IVT_OFFSET, vectors=BOOT_VECTORS_OFFSET,
                  vectors_size=VECTORS_SIZE),
        gpr=pool.iomuxc_gpr,
        fuse_kb=dict(itcm=pool.fuse_itcm_banks * pool.bank_size // 1024,
                     dtcm=pool.fuse_dtcm_banks * pool.bank_size // 1024),
        sdk_files=dict(folder=borrowed or board.sdk_board, borrowed=borrowed is not None,
                       note=board.imxrt.sdk_files_note))


def render_linker(board: Board, fp: Plan, dma_bytes: int, title: str,
                  has_arena: bool = True) -> str:
    """The linker script alone, for a plan (golden and link tests; `title` names it in the
    header; has_arena False: the capture image's script)."""
    ctx = memory_context(board, fp, dma_bytes, has_arena)
    ctx.update(block_header=block_comment(header("//", title, content_hash(fp.to_json()))),
               target={"name": title})
    return environment().get_template(f"{FAMILY}/linker.ld.j2").render(**ctx)


def board_context(board: Board, fp: Plan, sizes: Sizes, dma: int, has_arena: bool) -> dict:
    """What the board's templates (board, pads, MPU, startup, linker script, audio_in.c) need,
    for the detector and the capture firmware alike: the plan and memory map (memory_context),
    the needs the plan was made for, the audio clocks and the eDMA buffers' size."""
    ctx = memory_context(board, fp, dma, has_arena)
    ctx.update(sizes=sizes, audio_pll=AUDIO_PLL, sai_mclk_hz=sai_mclk_hz(),
               sai_word_bits=SAI_WORD_BITS, dma_buffer_bytes=dma)
    return ctx


def context(v: Variant, analysis: dict, tflite_bytes: bytes) -> dict:
    """The common firmware context plus the plan, memory map, pads and audio clocks."""
    sizes = estimate_sizes(v, v.arena.bytes)
    fp = plan(v.board, sizes)
    ctx = common_context(v, analysis, tflite_bytes, extra={"plan": fp.to_json()})
    ctx.update(board_context(v.board, fp, sizes, dma_buffer_bytes(v), has_arena=True))
    ctx.update(
        sources=[f for f in output_files(v.project, v.target, v.board)
                 if f.endswith((".c", ".cpp", ".cc"))],
        arena_section=ARENA_SECTION,
        ready_extra=f" flexram=itcm:{fp.itcm_banks},dtcm:{fp.dtcm_banks},ocram:{fp.ocram_banks}",
        cmsis_dsp_sources=list(cmsis.SOURCES),
        cmsis_portable_sources=list(cmsis.PORTABLE_SOURCES),
        cmsis_portable_flags=list(cmsis.PORTABLE_FLAGS))
    return ctx


def render(v: Variant, analysis: dict, tflite_bytes: bytes, out_dir: Path) -> list[Path]:
    problems = check_target(v)
    if problems:
        raise SpecError(problems)
    ctx = context(v, analysis, tflite_bytes)
    print(f"[{v.project.name}] {v.name}: {ctx['plan_summary']}")
    written = render_tree(v.project, FAMILY, ctx, tflite_bytes, out_dir)
    write_json(out_dir / PLAN_FILE, ctx["plan"].to_json())
    written.append(out_dir / PLAN_FILE)
    return sorted(written)


# The capture firmware (templates/capture/imxrt1062): frames over the board's LPUART at the
# family's capture_baud (generator.targets), 8N1, written with LPUART_WriteBlocking. board.c
# clocks the LPUART from PLL3 (480 MHz) / 6, undivided.
LPUART_CLOCK_HZ = 480_000_000 // 6
LPUART_BITS_PER_BYTE = 10  # start + 8 data + stop
LPUART_MAX_ERROR = 0.03  # the SDK's LPUART_Init refuses a divider further off than 3%
LPUART_OSR = range(4, 33)  # oversampling ratios the LPUART takes
LPUART_SBR_MAX = 0x1FFF
# .data + .bss of the capture build besides its two frame buffers: the SAI/eDMA handles, the
# driver state, newlib-nano's (no TFLM, no feature buffers): 880 bytes in the fire_alarm EVKB and
# Teensy 4.1 capture builds (arm-none-eabi-gcc 12.2, -O3, 1,936 bytes of .data + .bss in all).
CAPTURE_DATA_BSS_ESTIMATE = 4 * 1024


@dataclass(frozen=True)
class UartLink:
    """The capture link: the baud asked for and what the LPUART's divider makes of it."""

    baud: int    # asked for (the family's capture_baud)
    osr: int     # oversampling ratio
    sbr: int     # baud rate modulo divisor
    actual: int  # LPUART_CLOCK_HZ / (osr x sbr), as the SDK computes it

    @property
    def error(self) -> float:
        return (self.actual - self.baud) / self.baud

    def send_us(self, nbytes: int) -> float:
        """Microseconds `nbytes` take on the wire."""
        return nbytes * LPUART_BITS_PER_BYTE * 1e6 / self.actual


def uart_link(baud: int, clock_hz: int = LPUART_CLOCK_HZ) -> UartLink:
    """The divider the SDK's LPUART_Init picks (fsl_lpuart.c): for each OSR, the rounded SBR; the
    smallest error wins, the larger OSR on a tie."""
    best = None
    for osr in LPUART_OSR:
        sbr = min(max((clock_hz * 2 // (baud * osr) + 1) // 2, 1), LPUART_SBR_MAX)
        actual = clock_hz // (osr * sbr)
        if best is None or abs(actual - baud) <= abs(best.actual - baud):
            best = UartLink(baud=baud, osr=osr, sbr=sbr, actual=actual)
    return best


def capture_link(v: Variant) -> UartLink:
    """The capture link of variant `v`: its family's capture_baud on the LPUART's clock."""
    return uart_link(FAMILIES[v.board.soc].capture_baud)


def capture_compute_us(v: Variant) -> float:
    """Estimated microseconds of the capture loop per frame: packing (the CRC-32, counted at the
    Cortex-M0+'s cycles per byte, which the M7 does not exceed) and the blocking write of the
    frame. Reading is a copy out of the eDMA buffer; waiting for it is idle time."""
    n = wire.frame_bytes()
    return n * PACK_CYCLES_PER_BYTE * 1e6 / v.board.clock_hz + capture_link(v).send_us(n)


def check_capture(v: Variant) -> list[Problem]:
    """Problems that make the capture firmware of `v` impossible: the microphone's (as the
    detector's), a divider the LPUART cannot make, a link too slow for the sample rate.

    audio_in.c's eDMA fills two buffers of one frame in turn; the loop must take each before
    the next is complete, so it may spend at most a frame's time per frame."""
    pos, rate = v.project.positions, v.frontend.sample_rate
    out = check_microphone(v)
    link = capture_link(v)
    uart = v.board.imxrt.uart
    if abs(link.error) > LPUART_MAX_ERROR:
        out.append(pos.problem(v.loc("board"), (
            f"target '{v.name}': the LPUART's {LPUART_CLOCK_HZ} Hz clock cannot be divided to "
            f"{link.baud} baud (best {link.actual}, {100 * link.error:+.1f}%): no capture link "
            f"on {uart}")))
        return out
    loop = capture_compute_us(v)
    frame_us = wire.FRAME_SAMPLES * 1e6 / rate
    if loop > frame_us:
        fastest = wire.FRAME_SAMPLES * 1e6 / loop
        ok = [r for r in range(4000, 48001, 1000) if r <= fastest and bclk_divisible(r)]
        fix = f"record at {ok[-1]} Hz or less" if ok else "no sample rate fits"
        out.append(pos.problem(("audio", "sample_rate"), (
            f"target '{v.name}': the capture link ({uart} at {link.baud} baud) needs "
            f"{loop / 1000:.1f} ms per {wire.frame_bytes()}-byte frame, longer than the "
            f"{frame_us / 1000:.1f} ms of audio a frame of {wire.FRAME_SAMPLES} samples holds "
            f"at {rate} Hz; {fix}")))
    return out


def capture_sizes(v: Variant) -> Sizes:
    """The capture firmware's FlexRAM needs: no arena, no hot code (it runs from flash); DTCM
    for the stack, .data/.bss and its frame buffers (samples and packed frame), OCRAM for the
    eDMA buffers (non-cacheable, a power of two) and the heap."""
    imx = v.board.imxrt
    buffers = 2 * wire.FRAME_SAMPLES + wire.frame_bytes()
    return Sizes(itcm_code=0, dtcm=imx.stack_bytes + CAPTURE_DATA_BSS_ESTIMATE + buffers,
                 ocram=_pow2_at_least(dma_bytes(wire.FRAME_SAMPLES)) + imx.heap_bytes)


def capture_render_context(v: Variant) -> dict:
    """The capture context (firmware.common) plus the board context of a capture plan; the
    board's serial line runs at the capture link's rate (board.h's MICFORGE_UART_BAUD)."""
    link = capture_link(v)
    sizes = capture_sizes(v)
    fp = plan(v.board, sizes)
    ctx = capture_context(v, {"plan": fp.to_json(), "baud": link.baud})
    frame_us = wire.FRAME_SAMPLES * 1e6 / ctx["sample_rate"]
    send_us = link.send_us(ctx["frame_bytes"])
    loop_us = capture_compute_us(v)
    ctx.update(board_context(v.board, fp, sizes, dma_bytes(wire.FRAME_SAMPLES), has_arena=False))
    ctx.update(
        imx=v.board.imxrt.model_copy(update={"uart_baud": link.baud}),
        block_header=block_comment(ctx["c_header"]), hop_samples=wire.FRAME_SAMPLES,
        exe=f"{v.project.spec.name}_{v.name}_capture",
        sources=[f for f in capture_output_files(v.board) if f.endswith(".c")],
        capture_baud=link.baud, lpuart_clock_hz=LPUART_CLOCK_HZ, lpuart_osr=link.osr,
        lpuart_sbr=link.sbr, lpuart_baud=link.actual, lpuart_error_pct=100 * link.error,
        lpuart_max_error_pct=100 * LPUART_MAX_ERROR,
        link_bits=LPUART_BITS_PER_BYTE, send_ms=send_us / 1000, loop_ms=loop_us / 1000,
        frame_ms=frame_us / 1000, spare_ms=(frame_us - loop_us) / 1000,
        link_load_pct=100 * send_us / frame_us)
    return ctx


def render_capture(v: Variant, out_dir: Path) -> list[Path]:
    """The capture project of variant `v` (firmware/<variant>-capture/)."""
    problems = check_capture(v)
    if problems:
        raise SpecError(problems)
    ctx = capture_render_context(v)
    written = render_capture_tree(capture_templates(v.board), ctx, out_dir)
    write_json(out_dir / PLAN_FILE, ctx["plan"].to_json())
    written.append(out_dir / PLAN_FILE)
    return sorted(written)


def memory(v: Variant, model_bytes: int, plan: dict) -> list[RegionUse]:
    """What the estimates put in each region (generator.firmware.budget), FlexRAM windows at the
    sizes `plan` (flexram_plan.json) gives them."""
    board, imx = v.board, v.board.imxrt
    arena = v.arena.bytes or 0
    sizes = estimate_sizes(v, arena)
    out = [flash_use(board, model_bytes, [], "python -m generator.elfcheck")]
    itcm = board.regions("itcm")[0]
    code = ((CODE, sizes.itcm_code),) if plan["itcm_code_in_itcm"] else ()
    out.append(RegionUse(itcm.name, itcm.origin, plan["itcm_size"], code,
                         f"{plan['itcm_banks']} FlexRAM banks"
                         + ("" if code else "; hot code runs from flash")))
    dtcm = board.regions("dtcm")[0]
    fixed = arena + imx.stack_bytes + DATA_BSS_ESTIMATE
    out.append(RegionUse(dtcm.name, dtcm.origin, plan["dtcm_size"], (
        (ARENA, arena), (STACK, imx.stack_bytes), (DATA, DATA_BSS_ESTIMATE),
        (FFT, sizes.dtcm - fixed)), f"{plan['dtcm_banks']} FlexRAM banks"))
    # OCRAM needs go to the dedicated OCRAM first, then to the FlexRAM OCRAM banks (flexram).
    left = {HEAP: imx.heap_bytes, DMA: sizes.ocram - imx.heap_bytes}
    for r in board.regions("ocram") + list(board.regions("flexram")):
        size = r.length if r.kind == "ocram" else plan["ocram_flex_size"]
        room, parts = size, []
        for what in list(left):
            n = min(left[what], room)
            if n:
                parts.append((what, n))
                room -= n
                left[what] -= n
        note = "dedicated OCRAM" if r.kind == "ocram" else f"{plan['ocram_banks']} FlexRAM banks"
        out.append(RegionUse(r.name, r.origin, size, tuple(parts), note))
    return out
