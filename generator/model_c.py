"""The model as C: an aligned const array and its header.

`model_source(project, tflite_bytes)` returns (header_text, source_text) of
model_data.h / model_data.cc: `alignas(16) const uint8_t <name>_model_data[]`
and `<name>_model_data_len`, named from the project (the class names reach C
through config.h's MF_CLASS_NAMES). Rendered from
templates/common/{model_data.h,model_data.cc}.j2; the headers name the
spec and hash their inputs (no timestamps), so equal inputs give equal files.
"""

from __future__ import annotations

from .render import content_hash, environment, header
from .spec import Project

HEADER_NAME = "model_data.h"


def _context(project: Project, values) -> dict:
    name = project.spec.name
    return {"c_header": header("//", project.path.name, content_hash(values)),
            "spec_name": project.path.name, "guard": name.upper(), "symbol": f"{name}_model_data"}


def model_source(project: Project, tflite_bytes: bytes) -> tuple[str, str]:
    """(model_data.h, model_data.cc) text holding `tflite_bytes`."""
    env = environment()
    ctx = _context(project, {"name": project.spec.name, "model": tflite_bytes.hex()})
    ctx.update(model_len=len(tflite_bytes), model_bytes=tflite_bytes, header_name=HEADER_NAME)
    return (env.get_template("common/model_data.h.j2").render(**ctx),
            env.get_template("common/model_data.cc.j2").render(**ctx))
