"""Host build of the rendered C front end, and the bit-exact parity check against Python.

`render_sources(fe, out_dir, spec_name)` renders templates/common/mf_features.{h,c},
mf_stream.{h,c} (the firmware's files, unchanged) and templates/host/harness.c into
out_dir. `build_library(src_dir)` compiles them with the CMSIS-DSP sources from
generator.cmsis into a shared library with host gcc (-Wall -Werror on our
files), cached under <cache>/hostc/<hash of every input>. `HostFrontEnd` loads
it with ctypes and computes features of clips and of streams.

Variants: "portable" is CMSIS-DSP's portable C (what the Python cmsisdsp package
and a Cortex-M0+ run); "dsp" is its ARM_MATH_DSP code as a Cortex-M7 runs it,
with the DSP instructions given by CMSIS-DSP's C models of them
(templates/host/dsp_prelude.h), built the way the firmware must build it (see
cmsis.PORTABLE_SOURCES). The models are CMSIS's, not the silicon: an M7 run is
the final word, but a rounding difference in CMSIS's own DSP code shows here.

`verify(project, clips)` and `verify_stream(project, samples)` raise
`ParityError` when any C value differs from generator.features by even one LSB;
`verify_project(project, index, max_clips)` (micforge verify) checks the
dataset's clips and a stream made of them, and returns the figures;
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import features as F
from .cmsis import HOST_DEFINES, CmsisDsp, cache_root, cmsis_dsp
from .render import content_hash, environment, header, render_file
from .paths import TEMPLATES
from .spec import Project

MODULE_FILES = ("mf_features.h", "mf_features.c", "mf_stream.h", "mf_stream.c")
HARNESS = "harness.c"
VARIANTS = ("portable", "dsp", "dsp_all")
CC = os.environ.get("CC", "gcc")
OUR_FLAGS = ("-std=c99", "-O2", "-fPIC", "-Wall", "-Wextra", "-Werror")
# The sdist's own setup.py flags for CMSIS-DSP on a Linux host.
CMSIS_FLAGS = ("-O2", "-fPIC", "-Wno-attributes", "-Wno-unused-function", "-Wno-unused-variable",
               "-Wno-implicit-function-declaration")


class ParityError(AssertionError):
    """The C front end and the Python reference disagree."""


class BuildError(RuntimeError):
    """The host compiler rejected the rendered module."""


def render_sources(fe: F.FrontEnd, out_dir: Path, spec_name: str) -> list[Path]:
    """Render the firmware's feature module plus the host harness into out_dir."""
    env = environment()
    ctx = {"fe": F.template_values(fe),
           "c_header": header("//", spec_name, content_hash(fe.constants()))}
    out = []
    for name in MODULE_FILES:
        render_file(env, f"common/{name}.j2", out_dir / name, ctx)
        out.append(out_dir / name)
    render_file(env, f"host/{HARNESS}.j2", out_dir / HARNESS, ctx)
    return out + [out_dir / HARNESS]


def _run(cmd: list[str], what: str) -> None:
    run = subprocess.run(cmd, capture_output=True, text=True)
    if run.returncode != 0:
        raise BuildError(f"{what} failed:\n{' '.join(cmd)}\n{run.stderr.strip()[-4000:]}")


def _prelude(cache: Path) -> Path:
    """templates/host/dsp_prelude.h rendered once into the cache (the "dsp" variants)."""
    text = (TEMPLATES / "host" / "dsp_prelude.h.j2").read_text()
    path = cache / "hostc" / f"prelude-{content_hash(text)}" / "dsp_prelude.h"
    render_file(environment(), "host/dsp_prelude.h.j2", path,
                {"c_header": header("//", "the micforge host build", content_hash(text))})
    return path


def _dsp_path(variant: str, source: Path, dsp: CmsisDsp) -> bool:
    """Whether `source` is compiled with CMSIS-DSP's ARM_MATH_DSP paths in `variant`."""
    return variant == "dsp_all" or (variant == "dsp" and source not in dsp.portable_sources)


def build_library(src_dir: Path, cache: Path | None = None, variant: str = "portable") -> Path:
    """Compile src_dir's module + harness and CMSIS-DSP into a cached shared library.

    variant "portable": CMSIS-DSP's portable C, as the Python cmsisdsp package and the
    Cortex-M0+ run it. "dsp": its ARM_MATH_DSP paths as a Cortex-M7 runs them (the DSP
    instructions by CMSIS's C models), except cmsis.PORTABLE_SOURCES, as the firmware
    builds them. "dsp_all": every source on its DSP path.
    """
    return compile_library(src_dir, ("mf_features.c", "mf_stream.c", HARNESS), "hostc",
                           "libmf_features.so", cache, variant)


def compile_library(src_dir: Path, sources: tuple[str, ...], kind: str, lib_name: str,
                    cache: Path | None = None, variant: str = "portable") -> Path:
    """`sources` of src_dir (our code: -Wall -Wextra -Werror) linked with CMSIS-DSP's `variant`
    archive into <cache>/<kind>/<hash>/<lib_name>, a shared library; the hash covers the
    compiler, the flags, the archive and every file of src_dir, so a cached library is reused
    only for the same inputs. Used by build_library and by generator.simulate."""
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, not {variant!r}")
    cache = cache or cache_root()
    dsp = cmsis_dsp(cache)
    archive = _cmsis_archive(dsp, cache, variant)
    forced = ["-include", str(_prelude(cache))] if variant != "portable" else []
    digest = hashlib.sha256()
    for part in (CC, " ".join(OUR_FLAGS), str(archive), " ".join(forced), " ".join(sources)):
        digest.update(part.encode() + b"\0")
    for path in sorted(p for p in Path(src_dir).iterdir() if p.is_file()):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    lib = cache / kind / digest.hexdigest()[:20] / lib_name
    if lib.is_file():
        return lib
    lib.parent.mkdir(parents=True, exist_ok=True)
    includes = [f"-I{src_dir}"] + [f"-I{d}" for d in dsp.include_dirs]
    defines = [f"-D{d}" for d in HOST_DEFINES]
    with tempfile.TemporaryDirectory(dir=lib.parent) as tmp:
        objects = []
        for name in sources:
            obj = Path(tmp) / (name + ".o")
            _run([CC, *OUR_FLAGS, *defines, *forced, *includes, "-c", str(Path(src_dir) / name),
                  "-o", str(obj)], f"compiling {name}")
            objects.append(str(obj))
        tmp_lib = Path(tmp) / lib.name
        _run([CC, "-shared", "-Wl,--no-undefined", "-o", str(tmp_lib), *objects, str(archive),
              "-lm"], "linking")
        os.replace(tmp_lib, lib)
    return lib


def _cmsis_archive(dsp: CmsisDsp, cache: Path, variant: str) -> Path:
    """The CMSIS-DSP objects the module needs, compiled once per version and variant."""
    prelude = _prelude(cache) if variant != "portable" else None
    key = hashlib.sha256("\0".join([CC, *CMSIS_FLAGS, *HOST_DEFINES, variant, str(prelude),
                                    *map(str, dsp.sources)]).encode()).hexdigest()[:16]
    archive = cache / "hostc" / f"cmsis-dsp-{dsp.version}-{variant}-{key}" / "libcmsisdsp.a"
    if archive.is_file():
        return archive
    archive.parent.mkdir(parents=True, exist_ok=True)
    includes = [f"-I{d}" for d in dsp.include_dirs]
    with tempfile.TemporaryDirectory(dir=archive.parent) as tmp:
        objects = []
        for src in dsp.sources:
            obj = Path(tmp) / (src.stem + ".o")
            forced = ["-include", str(prelude)] if _dsp_path(variant, src, dsp) else []
            _run([CC, *CMSIS_FLAGS, *[f"-D{d}" for d in HOST_DEFINES], *forced, *includes,
                  "-c", str(src), "-o", str(obj)], f"compiling CMSIS-DSP {src.name}")
            objects.append(str(obj))
        tmp_archive = Path(tmp) / archive.name
        _run(["ar", "rcs", str(tmp_archive), *objects], "archiving CMSIS-DSP")
        os.replace(tmp_archive, archive)
    return archive


@dataclass
class HostFrontEnd:
    """The host-compiled C front end of `fe`, called through ctypes."""

    fe: F.FrontEnd
    library: Path

    def __post_init__(self) -> None:
        lib = ctypes.CDLL(str(self.library))
        lib.mfh_clips.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_void_p]
        lib.mfh_clips.restype = ctypes.c_int
        lib.mfh_stream.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_void_p,
                                   ctypes.c_uint32, ctypes.c_void_p]
        lib.mfh_stream.restype = ctypes.c_long
        self._lib = lib

    def clips(self, clips: np.ndarray) -> np.ndarray:
        """int8 [N, num_frames, num_bins] of int16 clips [N, clip_samples], computed in C."""
        fe = self.fe
        clips = np.ascontiguousarray(clips, dtype=np.int16)
        if clips.ndim != 2 or clips.shape[1] != fe.clip_samples:
            raise ValueError(f"clips must be int16 [N, {fe.clip_samples}], got {clips.shape}")
        out = np.zeros((len(clips), fe.num_frames, fe.num_bins), dtype=np.int8)
        if self._lib.mfh_clips(clips.ctypes.data, len(clips), out.ctypes.data) != 0:
            raise BuildError("mf_features_init failed in the host build")
        return out

    def stream(self, samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Every column the C stream produces for `samples` pushed hop by hop, and its last map.

        Samples beyond a whole number of hops are not pushed.
        """
        fe = self.fe
        samples = np.ascontiguousarray(samples, dtype=np.int16)
        blocks = len(samples) // fe.hop_samples
        most = blocks * fe.hop_frames + 1
        columns = np.zeros((most, fe.num_bins), dtype=np.int8)
        final = np.zeros((fe.num_frames, fe.num_bins), dtype=np.int8)
        n = self._lib.mfh_stream(samples.ctypes.data, blocks, columns.ctypes.data, most,
                                 final.ctypes.data)
        if n < 0:
            raise BuildError("mfh_stream failed in the host build")
        if n > most:  # more columns than frames fit: report the count, not the values
            return np.zeros((n, fe.num_bins), dtype=np.int8), final
        return columns[:n], final


def host_front_end(project: Project, cache: Path | None = None, src_dir: Path | None = None,
                   variant: str = "portable") -> HostFrontEnd:
    """Render (into src_dir, default the cache) and build the C front end of `project`."""
    fe = F.design(project.spec)
    cache = cache or cache_root()
    if src_dir is None:
        templates = [(TEMPLATES / "common" / f"{n}.j2").read_text() for n in MODULE_FILES]
        templates.append((TEMPLATES / "host" / f"{HARNESS}.j2").read_text())
        src_dir = cache / "hostc" / "src" / content_hash([fe.constants(), templates])
    render_sources(fe, src_dir, project.path.name)
    return HostFrontEnd(fe, build_library(src_dir, cache, variant))


def wav_features(project: Project, path: Path, host: HostFrontEnd | None = None) -> np.ndarray:
    """int8 features [frames, bins] of a whole WAV file (any rate/channels), as the device's
    stream computes them: decoded like the dataset (mono, resampled), pushed hop by hop."""
    from .audio import decode
    host = host or host_front_end(project)
    samples = decode(Path(path).read_bytes(), host.fe.sample_rate).samples
    return host.stream(samples)[0]


def _first_mismatches(a: np.ndarray, b: np.ndarray, limit: int = 5) -> str:
    where = np.argwhere(a != b)[:limit]
    return "; ".join(f"at {tuple(int(i) for i in w)}: C {int(a[tuple(w)])} vs Python "
                     f"{int(b[tuple(w)])}" for w in where)


def compare_clips(host: HostFrontEnd, clips: np.ndarray) -> dict:
    """C vs Python (compute_batch) features of int16 clips: counts and the first differences."""
    c = host.clips(clips)
    py = F.compute_batch(host.fe, clips)
    bad = int(np.count_nonzero(c != py))
    return {"clips": len(clips), "values": int(py.size), "mismatches": bad,
            "first": _first_mismatches(c, py) if bad else ""}


def compare_stream(host: HostFrontEnd, samples: np.ndarray) -> dict:
    """Every column of the C stream fed hop by hop vs the offline Python features."""
    fe = host.fe
    samples = np.asarray(samples, dtype=np.int16)
    pushed = samples[:len(samples) // fe.hop_samples * fe.hop_samples]
    columns, final = host.stream(pushed)
    if len(pushed) < fe.frame_length:  # not one whole frame: the stream must stay silent
        return {"stream_samples": len(pushed), "columns": len(columns), "values": 0,
                "mismatches": len(columns) * fe.num_bins,
                "first": f"{len(columns)} columns from less than a frame" if len(columns) else ""}
    offline = F.compute(fe, pushed)
    report = {"stream_samples": len(pushed), "columns": len(columns), "values": int(offline.size)}
    if columns.shape != offline.shape:
        report.update(mismatches=int(offline.size),
                      first=f"the C stream produced {len(columns)} columns for {len(pushed)} "
                            f"samples; offline there are {len(offline)} frames")
        return report
    bad = int(np.count_nonzero(columns != offline))
    if len(offline) >= fe.num_frames:
        bad += int(np.count_nonzero(final != offline[-fe.num_frames:]))
    report.update(mismatches=bad, first=_first_mismatches(columns, offline) if bad else "")
    return report


def verify(project: Project, clips: np.ndarray, host: HostFrontEnd | None = None) -> dict:
    """C features of int16 clips equal Python's exactly; raises ParityError otherwise."""
    report = compare_clips(host or host_front_end(project), clips)
    if report["mismatches"]:
        raise ParityError(f"{report['mismatches']} of {report['values']} feature values of "
                          f"{report['clips']} clips differ between the C front end and "
                          f"generator.features: {report['first']}")
    return report


def verify_stream(project: Project, samples: np.ndarray,
                  host: HostFrontEnd | None = None) -> dict:
    """Every column of the C stream equals the offline Python features; raises ParityError."""
    report = compare_stream(host or host_front_end(project), samples)
    if report["mismatches"]:
        raise ParityError(f"{report['mismatches']} streamed feature values differ from the "
                          f"offline features of the same {report['stream_samples']} samples: "
                          f"{report['first']}")
    return report


def verify_project(project: Project, index: dict, max_clips: int | None = None,
                   stream_clips: int = 8, variants: tuple[str, ...] = ("portable", "dsp")) -> dict:
    """`micforge verify`: C == Python on the dataset's clips and on a stream of them,
    for the portable (Cortex-M0+) and DSP (Cortex-M7) builds of CMSIS-DSP.

    Returns figures: clips checked, values compared (clips and stream, all variants),
    stream columns, mismatches, and the first differences; mismatches are reported,
    not raised.
    """
    from .dataset import SPLITS, load_split
    clips = np.concatenate([load_split(project, index, s)[0] for s in SPLITS])
    if max_clips is not None:
        clips = clips[:max_clips]
    result = {"clips": len(clips), "values": 0, "stream_columns": 0, "mismatches": 0,
              "errors": [], "variants": list(variants)}
    for variant in variants:
        host = host_front_end(project, variant=variant)
        c = compare_clips(host, clips)
        s = compare_stream(host, clips[:stream_clips].reshape(-1))
        result["values"] += c["values"] + s["values"]
        result["stream_columns"] += s["columns"]
        result["mismatches"] += c["mismatches"] + s["mismatches"]
        result["errors"] += [f"{variant} {what}: {r['first']}" for what, r in
                             (("clips", c), ("stream", s)) if r["mismatches"]]
    return result
