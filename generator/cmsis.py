"""CMSIS-DSP C sources for the feature front end, from the `cmsisdsp` sdist on PyPI.

`cmsis_dsp(cache=None) -> CmsisDsp` returns the unpacked source tree of the
same cmsisdsp version the Python reference runs (so Python and C are the same
code), downloading it once with `pip download --no-binary cmsisdsp` into
$MICFORGE_CACHE/cmsis-dsp-<version> or ~/.cache/micforge/cmsis-dsp-<version>.
Later calls reuse the cache and need no network. `CmsisDsp.sources` lists the
C files the generated mf_features.c/mf_stream.c need; `include_dirs` the headers.

Host builds follow the sdist's own setup.py, which builds CMSIS-DSP for the
host: it defines __GNUC_PYTHON__ (arm_math_types.h then supplies the compiler
macros itself instead of including CMSIS-Core's cmsis_compiler.h) and CMSISDSP
(`HOST_DEFINES`). Cortex-M builds need CMSIS-Core's Include/ folder
(cmsis_compiler.h, cmsis_gcc.h), which the sdist does NOT carry: the firmware
builds take it from their SDK (pico-sdk: src/rp2_common/cmsis/stub/CMSIS/Core/Include;
MCUXpresso SDK: CMSIS/Core/Include), passed as `core_include`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

# The CMSIS-DSP sources behind the functions mf_features.c calls, and what they call.
SOURCES = (
    "Source/BasicMathFunctions/arm_dot_prod_q15.c",
    "Source/BasicMathFunctions/arm_mult_q15.c",
    "Source/BasicMathFunctions/arm_shift_q15.c",
    "Source/StatisticsFunctions/arm_absmax_no_idx_q15.c",
    "Source/ComplexMathFunctions/arm_cmplx_mag_q15.c",
    "Source/FastMathFunctions/arm_sqrt_q31.c",
    "Source/TransformFunctions/arm_rfft_q15.c",
    "Source/TransformFunctions/arm_rfft_init_q15.c",
    "Source/TransformFunctions/arm_cfft_q15.c",
    "Source/TransformFunctions/arm_cfft_init_q15.c",
    "Source/TransformFunctions/arm_cfft_radix4_q15.c",
    "Source/TransformFunctions/arm_bitreversal.c",
    "Source/TransformFunctions/arm_bitreversal2.c",
    "Source/CommonTables/arm_common_tables.c",
    "Source/CommonTables/arm_const_structs.c",
)

HOST_DEFINES = ("__GNUC_PYTHON__", "CMSISDSP")

# On a core with the DSP extension (Cortex-M4/M7/M33: __ARM_FEATURE_DSP), CMSIS-DSP takes
# its ARM_MATH_DSP code paths. The radix-4 q15 butterfly's DSP path rounds differently
# from the portable C that the Python cmsisdsp package (and the Cortex-M0+) runs: with it,
# 19% of the fire_alarm feature values differ (hostc's "dsp" variant measures this). So
# firmware for such cores compiles PORTABLE_SOURCES with PORTABLE_FLAGS; every other
# source keeps its DSP path, which the "dsp" variant shows to be bit-identical.
PORTABLE_SOURCES = ("Source/TransformFunctions/arm_cfft_radix4_q15.c",)
PORTABLE_FLAGS = ("-U__ARM_FEATURE_DSP",)


class CmsisError(RuntimeError):
    """The CMSIS-DSP sources could not be obtained (no cache and pip failed)."""


@dataclass(frozen=True)
class CmsisDsp:
    version: str
    root: Path  # the unpacked sdist

    @property
    def include_dirs(self) -> list[Path]:
        return [self.root / "Include", self.root / "PrivateInclude"]

    @property
    def sources(self) -> list[Path]:
        return [self.root / s for s in SOURCES]

    @property
    def portable_sources(self) -> list[Path]:
        """The sources to compile with PORTABLE_FLAGS on a core with the DSP extension."""
        return [self.root / s for s in PORTABLE_SOURCES]


def cache_root() -> Path:
    env = os.environ.get("MICFORGE_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "micforge"


def installed_version() -> str:
    try:
        return metadata.version("cmsisdsp")
    except metadata.PackageNotFoundError:
        raise CmsisError("the cmsisdsp Python package is not installed; "
                         "`pip install cmsisdsp` (the version pinned in pyproject.toml)") from None


def _complete(root: Path) -> bool:
    return all((root / s).is_file() for s in SOURCES) and (root / "Include" / "arm_math.h").is_file()


def cmsis_dsp(cache: Path | None = None, version: str | None = None) -> CmsisDsp:
    """The CMSIS-DSP source tree of `version` (default: the installed cmsisdsp), cached."""
    version = version or installed_version()
    root = (cache or cache_root()) / f"cmsis-dsp-{version}"
    if _complete(root):
        return CmsisDsp(version, root)
    root.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root.parent, prefix=".cmsis-") as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", "cmsisdsp",
               f"cmsisdsp=={version}", "--dest", tmp, "--quiet"]
        run = subprocess.run(cmd, capture_output=True, text=True)
        archives = sorted(Path(tmp).glob(f"cmsisdsp-{version}.tar.gz"))
        if run.returncode != 0 or not archives:
            raise CmsisError(f"could not download the cmsisdsp {version} sources with pip "
                             f"(needed once, then cached in {root}):\n"
                             f"{' '.join(cmd)}\n{run.stderr.strip()[-2000:]}")
        unpack = Path(tmp) / "unpacked"
        with tarfile.open(archives[0]) as tar:
            try:
                tar.extractall(unpack, filter="data")  # refuses links and paths leaving unpack
            except TypeError:  # a Python without extraction filters (before 3.10.12/3.11.4)
                tar.extractall(unpack)
        (top,) = [p for p in unpack.iterdir() if p.is_dir()]
        if not _complete(top):
            raise CmsisError(f"the cmsisdsp {version} sdist lacks some of {', '.join(SOURCES)}")
        if root.exists() and not _complete(root):  # an interrupted earlier attempt
            shutil.rmtree(root)
        try:
            os.replace(top, root)  # atomic: a concurrent reader sees all or nothing
        except OSError:
            if not _complete(root):  # not a concurrent download that finished first
                raise
    return CmsisDsp(version, root)
