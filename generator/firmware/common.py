"""Target-neutral firmware context shared by every firmware family.

`common_context(variant, analysis, tflite_bytes)` returns the values the
portable C modules (templates/common: config.h, detection.h/.c) and each
family's templates read: spec constants in C form, class names and identifiers,
detection thresholds in q15, the resolver's Add* calls and the TFLM kernels to
compile (generator.tflm_ops), the arena (from the resolved Variant), and the
generated-file headers. Nothing here knows about a particular SoC or SDK.
"""

from __future__ import annotations

from pathlib import Path

from .. import model_c, tflm_ops, wire
from ..features import template_values
from ..fileio import write_if_changed
from ..render import content_hash, environment, header, render_file, template_names
from ..errors import SpecError
from ..spec import Project, c_identifier
from ..variant import Variant

Q15_ONE = 32768


def q15(value: float) -> int:
    """A probability in [0, 1) as a q15 integer (rounded, clamped to 32767)."""
    return min(Q15_ONE - 1, max(0, round(value * Q15_ONE)))


def resolver_ops(analysis: dict) -> list[str]:
    """The MicroMutableOpResolver Add* method names the model needs, sorted and unique."""
    return sorted(set(analysis["resolver"]))


def block_comment(line_comment_header: str) -> str:
    """A `//` header turned into a /* ... */ block, for files without line comments. The header's
    free text is escaped already (render.header); a `*/` is broken again here so that no line
    can end the block whatever made it."""
    lines = [line[3:].replace("*/", "*\\/") for line in line_comment_header.splitlines()]
    return "/*\n" + "".join(f" * {line}\n" for line in lines) + " */\n"


def detect_classes(project: Project) -> list[bool]:
    spec = project.spec
    return [c in spec.detect_classes for c in spec.classes]


def common_context(v: Variant, analysis: dict, tflite_bytes: bytes,
                   extra: dict | None = None) -> dict:
    """Template values shared by all families; `extra` (JSON-able) joins the inputs hash."""
    project, spec, fe = v.project, v.project.spec, v.frontend
    if v.threshold is None:
        raise SpecError(project.positions.problem(
            ("detection", "threshold"), "threshold: auto has no calibrated value yet: the "
                                        "streaming stage chooses it (micforge build SPEC)"))
    values = {
        "spec": spec.model_dump(mode="json"), "target": v.target.model_dump(mode="json"),
        "board": v.board.model_dump(mode="json"), "model": content_hash(tflite_bytes.hex()),
        "analysis": analysis, "extra": extra or {},
    }
    digest = content_hash(values)
    spec_name = project.path.name
    det = spec.detection
    c_header = header("//", spec_name, digest)
    return dict(
        project=spec, target=v.target, board=v.board, name=spec.name,
        digest=digest, spec_name=spec_name,
        c_header=c_header, hash_header=header("#", spec_name, digest),
        block_header=block_comment(c_header),
        arena_bytes=v.arena.bytes, measured_arena=v.arena.measured, arena_margin=v.arena.margin,
        resolver_ops=resolver_ops(analysis),
        model_bytes=tflite_bytes, model_len=len(tflite_bytes),
        model_symbol=f"{spec.name}_model_data",
        classes=list(spec.classes),
        class_idents=[c_identifier(c) for c in spec.classes],
        detect_flags=detect_classes(project),
        threshold=v.threshold, hysteresis=det.hysteresis,
        threshold_q15=q15(v.threshold), release_q15=q15(v.threshold - det.hysteresis),
        smoothing=det.smoothing, hop_frames=fe.hop_frames, hop_samples=fe.hop_samples,
        hop_us=fe.hop_us, num_frames=fe.num_frames, num_bins=fe.num_bins,
        fe=template_values(fe),  # templates/common/mf_features.*, mf_stream.*
        use_led="led" in v.outputs, use_serial="serial" in v.outputs,
        **tflm_ops.kernel_context(analysis, resolver_ops(analysis)),
    )


def crc32_nibble_table() -> list[int]:
    """The 16-entry table of the reflected CRC-32 (0xEDB88320) the capture packer uses."""
    table = []
    for i in range(16):
        c = i
        for _ in range(4):
            c = (c >> 1) ^ (wire.CRC32_POLY if c & 1 else 0)
        table.append(c)
    return table


def capture_context(v: Variant, extra: dict | None = None) -> dict:
    """Template values of the capture project (templates/capture/): the spec's audio, the
    board, the wire format (generator.wire). No model: it records before one exists."""
    project, spec = v.project, v.project.spec
    rate = spec.audio.sample_rate
    values = {"audio": spec.audio.model_dump(mode="json"),
              "target": v.target.model_dump(mode="json"),
              "board": v.board.model_dump(mode="json"), "wire": wire.SYNC.decode(),
              "frame": wire.FRAME_SAMPLES, "extra": extra or {}}
    digest = content_hash(values)
    spec_name = project.path.name
    c_header = header("//", spec_name, digest)
    frame_bytes = wire.frame_bytes()
    return dict(
        project=spec, target=v.target, board=v.board, name=spec.name, digest=digest,
        spec_name=spec_name, c_header=c_header, hash_header=header("#", spec_name, digest),
        sample_rate=rate, seconds=spec.audio.clip_seconds,
        frame_samples=wire.FRAME_SAMPLES, frame_us=wire.FRAME_SAMPLES * 1_000_000 // rate,
        frame_bytes=frame_bytes, link_kbps=frame_bytes * rate / wire.FRAME_SAMPLES / 1000,
        header_bytes=wire.HEADER.size, sync=wire.SYNC.decode(), sync_bytes=list(wire.SYNC),
        flag_gap=wire.FLAG_GAP, crc_poly=wire.CRC32_POLY, crc_table=crc32_nibble_table(),
        use_led="led" in v.outputs,
    )


def render_capture_tree(board_templates: list[tuple[str, str]], ctx: dict,
                        out_dir: Path) -> list[Path]:
    """Render the capture project's templates ((tree, path) pairs) into out_dir."""
    env = environment()
    written = []
    for tree, rel in board_templates:
        render_file(env, f"{tree}/{rel}.j2", out_dir / rel, ctx)
        written.append(out_dir / rel)
    return written


def render_tree(project: Project, family: str, ctx: dict, tflite_bytes: bytes,
                out_dir: Path) -> list[Path]:
    """Render templates/<family>/ and templates/common/ into out_dir.

    The model array comes from `model_c` (the one emitter of the model bytes); every
    other file is its template rendered with `ctx`.
    """
    env = environment()
    model_h, model_cc = model_c.model_source(project, tflite_bytes)
    by_model_c = {"model_data.h": model_h, "model_data.cc": model_cc}
    written = []
    for tree in (family, "common"):
        for rel in template_names(tree):
            if tree == "common" and rel in by_model_c:
                write_if_changed(out_dir / rel, by_model_c[rel])
            else:
                render_file(env, f"{tree}/{rel}.j2", out_dir / rel, ctx)
            written.append(out_dir / rel)
    return written
