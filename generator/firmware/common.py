"""Target-neutral firmware context shared by every firmware family.

`common_context(project, target, board, analysis, tflite_bytes)` returns the
values the portable C modules (templates/common: config.h, detection.h/.c)
and each family's templates read: spec constants in C form, class names and
identifiers, detection thresholds in q15, the resolver's Add* calls, the
arena size, and the generated-file headers. `arena_bytes` and `resolver_ops`
are the two facts both families derive from the model analysis. Nothing here
knows about a particular SoC or SDK.
"""

from __future__ import annotations

from pathlib import Path

from .. import model_c
from ..boards import Board
from ..features import design, template_values
from ..checks import effective_arena, effective_outputs
from ..fileio import write_if_changed
from ..render import content_hash, environment, header, render_file, template_names
from ..spec import Project, Target, c_identifier

Q15_ONE = 32768


def q15(value: float) -> int:
    """A probability in [0, 1) as a q15 integer (rounded, clamped to 32767)."""
    return min(Q15_ONE - 1, max(0, round(value * Q15_ONE)))


def arena_bytes(project: Project, target: Target, analysis: dict | None) -> int | None:
    """Arena for `target`: measured + margin (auto), or the fixed size if larger; None if unknown."""
    arena = effective_arena(project, target)
    if analysis is not None:
        needed = int(analysis["arena"]["measured_bytes"]) + arena.margin
        size = needed if arena.size == "auto" else max(int(arena.size), needed)
    elif arena.size == "auto":
        return None
    else:
        size = int(arena.size)
    return (size + 15) // 16 * 16  # the arena is 16-byte aligned; keep its size a multiple


def resolver_ops(analysis: dict) -> list[str]:
    """The MicroMutableOpResolver Add* method names the model needs, sorted and unique."""
    return sorted(set(analysis["resolver"]))


def target_index(project: Project, target: Target) -> int:
    """Where `target` stands in the spec's targets list (for error positions)."""
    return next(i for i, t in enumerate(project.spec.targets) if t.name == target.name)


def block_comment(line_comment_header: str) -> str:
    """A `//` header turned into a /* ... */ block, for files without line comments."""
    return "/*\n" + "".join(f" * {line[3:]}\n" for line in line_comment_header.splitlines()) + " */\n"


def detect_classes(project: Project) -> list[bool]:
    spec = project.spec
    return [c in spec.detect_classes for c in spec.classes]


def common_context(project: Project, target: Target, board: Board, analysis: dict,
                   tflite_bytes: bytes, extra: dict | None = None) -> dict:
    """Template values shared by all families; `extra` (JSON-able) joins the inputs hash."""
    spec = project.spec
    outputs = effective_outputs(project, target)
    values = {
        "spec": spec.model_dump(mode="json"), "target": target.model_dump(mode="json"),
        "board": board.model_dump(mode="json"), "model": content_hash(tflite_bytes.hex()),
        "analysis": analysis, "extra": extra or {},
    }
    digest = content_hash(values)
    spec_name = project.path.name
    det = spec.detection
    c_header = header("//", spec_name, digest)
    return dict(
        project=spec, target=target, board=board, name=spec.name,
        digest=digest, spec_name=spec_name,
        c_header=c_header, hash_header=header("#", spec_name, digest),
        block_header=block_comment(c_header),
        arena_bytes=arena_bytes(project, target, analysis),
        resolver_ops=resolver_ops(analysis),
        model_bytes=tflite_bytes, model_len=len(tflite_bytes),
        classes=list(spec.classes),
        class_idents=[c_identifier(c) for c in spec.classes],
        detect_flags=detect_classes(project),
        threshold_q15=q15(det.threshold), release_q15=q15(det.threshold - det.hysteresis),
        smoothing=det.smoothing, hop_frames=det.hop_frames, hop_samples=spec.hop_samples,
        hop_us=spec.hop_samples * 1_000_000 // spec.audio.sample_rate,
        num_frames=spec.num_frames, num_bins=spec.num_bins,
        fe=template_values(design(spec)),  # templates/common/mf_features.*, mf_stream.*
        use_led="led" in outputs, use_serial="serial" in outputs,
    )


def render_tree(project: Project, family: str, ctx: dict, tflite_bytes: bytes,
                out_dir: Path) -> list[Path]:
    """Render templates/<family>/ and templates/common/ into out_dir.

    The model array and labels come from `model_c` (the one emitter of the model
    bytes); every other file is its template rendered with `ctx`.
    """
    env = environment()
    model_h, model_cc = model_c.model_source(project, tflite_bytes)
    by_model_c = {"model_data.h": model_h, "model_data.cc": model_cc,
                  "labels.h": model_c.labels_header(project)}
    written = []
    for tree in (family, "common"):
        for rel in template_names(tree):
            if tree == "common" and rel in by_model_c:
                write_if_changed(out_dir / rel, by_model_c[rel])
            else:
                render_file(env, f"{tree}/{rel}.j2", out_dir / rel, ctx)
            written.append(out_dir / rel)
    return written
