"""micforge's own minimal CMSIS-Core header (cmsis_compiler.h) for Cortex-M builds with GCC.

CMSIS-DSP's arm_math_types.h includes "cmsis_compiler.h" on every Cortex-M build,
and the cmsisdsp sdist does not carry it. `core_include(override)` returns the
folder to put on the include path: `override` (e.g. the CMSIS_CORE_PATH a caller
read from the environment: an SDK's CMSIS/Core/Include) when given, else this
folder, whose header defines only what the CMSIS-DSP sources in generator.cmsis
need, on GCC's <arm_acle.h> (see the header's opening comment).
"""

from __future__ import annotations

from pathlib import Path

INCLUDE_DIR = Path(__file__).resolve().parent


def core_include(override: str | Path | None = None) -> Path:
    """The CMSIS-Core include folder: `override` if set (it must hold cmsis_compiler.h), else ours."""
    if not override:
        return INCLUDE_DIR
    path = Path(override)
    if not (path / "cmsis_compiler.h").is_file():
        raise FileNotFoundError(f"{path} has no cmsis_compiler.h; point it at CMSIS-Core's "
                                f"Include/ folder, or leave it unset to use {INCLUDE_DIR}")
    return path
