"""`micforge simulate`: the device's loop on the host, over audio of any length.

Takes a built project (build/<project>/tflite/model.tflite and analysis/analysis.json,
plus analysis/streaming.json when `detection.threshold: auto`), one of its variants and
int16 audio at the spec's sample rate (`simulate_stream`), or audio files (the CLI:
decoded by generator.audio.decode, mono, resampled, int16). Produces what the firmware's
main loop (templates/common/main.cpp) computes and prints per hop:

    hop=<n> t_ms=<ms> top=<class> score=<q15> det=<class|-> dsp_us=0 inf_us=0 ovr=0 q=<int8,...>

How. The variant's firmware core -- config.h, mf_features.*, mf_stream.*, frontend.*,
detection.* -- is rendered from templates/common with the variant's family context, as
the firmware stage renders build/<project>/firmware/<variant>/ (that folder is not read;
when it exists and its code, header lines aside, differs from the render, or its
model_data.cc is not the built model, the files are listed in `Simulator.stale` and the
CLI says the firmware is out of date), compiled for the host
with gcc together with CMSIS-DSP (portable C for a Cortex-M0+ board, its DSP paths for
a Cortex-M7 one, as generator.hostc builds them) and a small harness (HARNESS_C below)
into a shared library cached under <cache>/simulate/, and called with ctypes:

  front end   mf_frontend_push per hop of MF_HOP_SAMPLES, as main.cpp calls it; every
              hop whose map is full yields a copy of the model input (chunks of hops);
  model       the int8 model under the real TFLM runtime (generator.evaluate.run_tflm,
              tflite_micro's Python interpreter) on those maps, one Invoke per map;
  scores      mf_score_q15 with the output zero point and the q31 multiplier / shift
              derived by model.cpp's own statements (MODEL_SCALE_CODE, pasted into the
              harness; a test checks they are still model.cpp's);
  detector    mf_detector_update / _top / _smoothed, hop after hop.

The front end and the model are computed chunk by chunk ahead of the detector, which
is sequential: the same values as the device's hop-by-hop order (nothing feeds back).

Numbering. `hop` counts printed hops from 0, as main.cpp does: hops before the feature
map is full print nothing and are not counted. `t_ms` is the stream time at the END of
the hop, in whole milliseconds: floor((k + 1) * MF_HOP_SAMPLES * 1000 / sample_rate) for
the k-th hop pushed into the stream (k from 0, counting the silent fill-up hops). It is
NOT the device's t_ms, which is its microsecond timer since boot after Invoke (it grows
with boot time and with hops not kept up with); dsp_us, inf_us and ovr (the samples the
microphone driver lost) are printed as 0. Samples after the last whole hop are dropped.

Several files (the CLI) replay like a clip build (MICFORGE_CLIP_HEADER): each file is
its own stream (front end and detector reset, hop from 0, t_ms from the file's start),
its lines carry `clip=<i> `, and `clip=<i> end` follows each file, then `mf done` after
the last one. One file prints like the microphone build: no prefix, no end line. The
boot line ("mf ready ...") is not printed. A variant without the `serial` output prints
no hop lines on the device, so the CLI prints none either (the JSON has them all).

`simulate_stream(project, variant, samples)` returns the per-hop records as dicts (no
printing); `simulator(project, variant)` (memoised `load`) and `Simulator.run` give the
same as arrays (StreamResult), for long streams. The CLI decodes every file before it
prints anything; a file it cannot read is one line naming it (SimulateError, exit 2).
`reference_detector` / `reference_score_q15` are Python statements of detection.c's
integer arithmetic, for tests and offline sweeps; the simulator never uses them.

Not thread-safe: the library keeps main.cpp's static state (frontend.c's stream, the
harness's detector) and `Simulator.run` resets and uses it for one stream at a time.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import hostc
from .cmsis import cache_root
from .features import FrontEnd
from .paths import Artifacts
from .render import environment
from .spec import Project

CORE_FILES = ("config.h", "detection.h", "detection.c", "frontend.h", "frontend.c",
              "mf_features.h", "mf_features.c", "mf_stream.h", "mf_stream.c")
CORE_SOURCES = ("mf_features.c", "mf_stream.c", "frontend.c", "detection.c")
HARNESS = "mf_simulate.c"
CHUNK_HOPS = 2048  # hops per front-end / model batch (about 2 MB of maps for a 31 x 32 map)

# model.cpp's mf_model_init derives the output scale's q31 multiplier and shift with exactly
# these statements (tests/test_simulate.py checks they are in templates/common/model.cpp.j2).
MODEL_SCALE_CODE = """\
    int exponent = 0;
    const float mantissa = frexpf(output->params.scale, &exponent);
    out_scale_q31 = (int32_t)lroundf(mantissa * 2147483648.0f * 0.5f);
    out_shift = -exponent - 1;
"""

HARNESS_C = """\
/* Host-only entry points of micforge simulate (generator/simulate.py, through ctypes): the
 * per-hop steps of main.cpp over the firmware's own front end and detector. Not firmware. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "config.h"
#include "detection.h"
#include "frontend.h"
#include "mf_features.h"

static mf_detector_t detector;  /* main.cpp's */

void mfs_constants(uint32_t out[9])
{
    out[0] = MF_SAMPLE_RATE_HZ;
    out[1] = MF_HOP_SAMPLES;
    out[2] = MF_NUM_FRAMES;
    out[3] = MF_NUM_BINS;
    out[4] = MF_NUM_CLASSES;
    out[5] = MF_SMOOTHING;
    out[6] = (uint32_t)MF_THRESHOLD_Q15;
    out[7] = (uint32_t)MF_RELEASE_Q15;
    out[8] = MF_FE_MAP_SIZE;
}

/* A new stream: main.cpp's mf_frontend_reset() and mf_detector_reset(). */
int mfs_reset(void)
{
    mf_detector_reset(&detector);
    return mf_frontend_reset();
}

/* Push `blocks` hops of MF_HOP_SAMPLES; each hop whose map is full writes the model input
 * to maps[k] and its block index to hops[k]. Returns k, the number of full maps. */
uint32_t mfs_push(const int16_t *samples, uint32_t blocks, int8_t *maps, uint32_t *hops)
{
    uint32_t b, k = 0U;
    for (b = 0U; b < blocks; b++) {
        if (mf_frontend_push(&samples[b * MF_HOP_SAMPLES], MF_HOP_SAMPLES,
                             &maps[k * MF_FE_MAP_SIZE])) {
            hops[k++] = b;
        }
    }
    return k;
}

/* The output scale as model.cpp's mf_model_init derives it. */
typedef struct {
    struct {
        float scale;
    } params;
} mfs_tensor_t;

void mfs_output_scale(float scale, int32_t *scale_q31, int *shift)
{
    mfs_tensor_t tensor;
    const mfs_tensor_t *output = &tensor;
    int32_t out_scale_q31;
    int out_shift;
    tensor.params.scale = scale;
@MODEL_SCALE_CODE@    *scale_q31 = out_scale_q31;
    *shift = out_shift;
}

/* mf_model_run's score conversion of n rows of MF_NUM_CLASSES raw outputs. */
void mfs_scores(const int8_t *raw, uint32_t n, int32_t zero_point, int32_t scale_q31, int shift,
                int16_t *scores)
{
    uint32_t i;
    for (i = 0U; i < n * MF_NUM_CLASSES; i++) {
        scores[i] = mf_score_q15(raw[i], zero_point, scale_q31, shift);
    }
}

void mfs_detector_reset(void)
{
    mf_detector_reset(&detector);
}

/* main.cpp's detector steps for n hops of scores: the detected class (or -1), the top class
 * and every class's smoothed score after each hop. */
void mfs_detect(const int16_t *scores, uint32_t n, int32_t *det, int32_t *top, int16_t *smoothed)
{
    uint32_t i, c;
    for (i = 0U; i < n; i++) {
        det[i] = mf_detector_update(&detector, &scores[i * MF_NUM_CLASSES]);
        top[i] = (int32_t)mf_detector_top(&detector);
        for (c = 0U; c < MF_NUM_CLASSES; c++) {
            smoothed[i * MF_NUM_CLASSES + c] = mf_detector_smoothed(&detector, c);
        }
    }
}
""".replace("@MODEL_SCALE_CODE@", MODEL_SCALE_CODE)


class SimulateError(Exception):
    """A user-facing problem (no build, unknown variant, unreadable file): one line, exit 2."""


# ------------------------------------------------------------------------ the C build

def cmsis_variant(board) -> str:
    """hostc's CMSIS-DSP build of the board's core: 'dsp' with the DSP extension (Cortex-M7),
    else 'portable' (Cortex-M0+)."""
    return "dsp" if board.dsp_extensions else "portable"


def core_texts(variant, analysis: dict, tflite: bytes) -> dict[str, str]:
    """The variant's firmware core files as the firmware stage renders them (its family's
    context, templates/common), plus the simulation harness."""
    from .targets import family
    ctx = family(variant.board).context(variant, analysis, tflite)
    env = environment()
    texts = {name: env.get_template(f"common/{name}.j2").render(**ctx) for name in CORE_FILES}
    texts[HARNESS] = HARNESS_C
    return texts


def _write_tree(texts: dict[str, str], out_dir: Path) -> Path:
    if all((out_dir / n).is_file() and (out_dir / n).read_text() == t for n, t in texts.items()):
        return out_dir
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir.parent, prefix=".src-") as tmp:
        for name, text in texts.items():
            (Path(tmp) / name).write_text(text)
        out_dir.mkdir(exist_ok=True)
        for name in texts:
            os.replace(Path(tmp) / name, out_dir / name)
    return out_dir


def build_library(texts: dict[str, str], variant: str = "portable",
                  cache: Path | None = None) -> Path:
    """Compile the core + harness with CMSIS-DSP into a shared library (hostc.compile_library:
    the same compiler, flags and CMSIS-DSP build as the parity checks), its sources kept under
    <cache>/simulate/src/<hash of the texts>/."""
    cache = cache or cache_root()
    digest = hashlib.sha256()
    for name in sorted(texts):
        digest.update(name.encode() + b"\0" + texts[name].encode() + b"\0")
    src = _write_tree(texts, cache / "simulate" / "src" / digest.hexdigest()[:20])
    return hostc.compile_library(src, CORE_SOURCES + (HARNESS,), "simulate",
                                 "libmf_simulate.so", cache, variant)


class HostCore:
    """The compiled core (front end, score conversion, detector) through ctypes.

    The library holds one stream and one detector (static, as on the device): reset()
    starts a new stream. `constants` are config.h's values as compiled.
    """

    NAMES = ("sample_rate", "hop_samples", "num_frames", "num_bins", "num_classes",
             "smoothing", "threshold_q15", "release_q15", "map_size")

    def __init__(self, library: Path):
        lib = ctypes.CDLL(str(library))
        p = ctypes.c_void_p
        for name, args, res in (
                ("mfs_constants", [p], None), ("mfs_reset", [], ctypes.c_int),
                ("mfs_push", [p, ctypes.c_uint32, p, p], ctypes.c_uint32),
                ("mfs_output_scale", [ctypes.c_float, p, p], None),
                ("mfs_scores", [p, ctypes.c_uint32, ctypes.c_int32, ctypes.c_int32, ctypes.c_int,
                                p], None),
                ("mfs_detector_reset", [], None),
                ("mfs_detect", [p, ctypes.c_uint32, p, p, p], None)):
            fn = getattr(lib, name)
            fn.argtypes, fn.restype = args, res
        self._lib = lib
        self.library = Path(library)
        values = np.zeros(len(self.NAMES), dtype=np.uint32)
        lib.mfs_constants(values.ctypes.data)
        self.constants = {k: int(v) for k, v in zip(self.NAMES, values)}
        self.hop_samples = self.constants["hop_samples"]
        self.num_classes = self.constants["num_classes"]
        self.map_shape = (self.constants["num_frames"], self.constants["num_bins"])

    def reset(self) -> None:
        """mf_frontend_reset + mf_detector_reset."""
        if self._lib.mfs_reset() != 0:
            raise hostc.BuildError("mf_frontend_reset failed in the host build (FFT set-up)")

    def push(self, samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Push whole hops of int16 `samples` (a tail short of a hop is not pushed): the model
        inputs [k, frames, bins] of the hops whose map was full, and those hops' indices
        (from 0 at the first sample given)."""
        samples = np.ascontiguousarray(samples, dtype=np.int16)
        blocks = len(samples) // self.hop_samples
        maps = np.empty((blocks, *self.map_shape), dtype=np.int8)
        hops = np.empty(blocks, dtype=np.uint32)
        k = self._lib.mfs_push(samples.ctypes.data, blocks, maps.ctypes.data, hops.ctypes.data)
        return maps[:k], hops[:k].astype(np.int64)

    def output_scale(self, scale: float) -> tuple[int, int]:
        """(scale_q31, shift) of an output scale, by model.cpp's statements."""
        q31, shift = ctypes.c_int32(), ctypes.c_int()
        self._lib.mfs_output_scale(float(np.float32(scale)), ctypes.byref(q31), ctypes.byref(shift))
        return q31.value, shift.value

    def scores(self, raw: np.ndarray, zero_point: int, scale_q31: int, shift: int) -> np.ndarray:
        """mf_score_q15 of raw int8 outputs [n, classes]: int16 [n, classes]."""
        raw = np.ascontiguousarray(raw, dtype=np.int8).reshape(-1, self.num_classes)
        out = np.empty(raw.shape, dtype=np.int16)
        self._lib.mfs_scores(raw.ctypes.data, len(raw), zero_point, scale_q31, shift,
                             out.ctypes.data)
        return out

    def detector_reset(self) -> None:
        self._lib.mfs_detector_reset()

    def detect(self, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The detector over q15 scores [n, classes], continuing from its state: per hop the
        detected class (-1 for none), the top class and the smoothed scores [n, classes]."""
        scores = np.ascontiguousarray(scores, dtype=np.int16).reshape(-1, self.num_classes)
        n = len(scores)
        det = np.empty(n, dtype=np.int32)
        top = np.empty(n, dtype=np.int32)
        smoothed = np.empty((n, self.num_classes), dtype=np.int16)
        self._lib.mfs_detect(scores.ctypes.data, n, det.ctypes.data, top.ctypes.data,
                             smoothed.ctypes.data)
        return det, top, smoothed


# ------------------------------------------------------------------------ the simulator

@dataclass
class StreamResult:
    """Per printed hop of one stream, as arrays (row i is the line with hop=i)."""

    stream_hop: np.ndarray  # int64 [n]: index of the hop among all hops pushed (from 0)
    t_ms: np.ndarray        # int64 [n]: stream time at the end of the hop, ms (floor)
    raw: np.ndarray         # int8 [n, classes]: the model's outputs (q=)
    scores: np.ndarray      # int16 [n, classes]: their q15 probabilities (mf_score_q15)
    smoothed: np.ndarray    # int16 [n, classes]: the detector's smoothed scores after the hop
    top: np.ndarray         # int32 [n]: mf_detector_top
    det: np.ndarray         # int32 [n]: mf_detector_update's result, -1 for none
    hops_pushed: int        # whole hops pushed, including those before the map was full
    samples: int            # samples given (a tail short of a hop is not pushed)

    def __len__(self) -> int:
        return len(self.t_ms)

    @property
    def score(self) -> np.ndarray:
        """The printed score: the smoothed score of the top class."""
        return self.smoothed[np.arange(len(self)), self.top]

    def records(self, classes: list[str]) -> list[dict]:
        """One dict per printed hop (see simulate_stream)."""
        raw, scores, smoothed = self.raw.tolist(), self.scores.tolist(), self.smoothed.tolist()
        out = []
        for i, (t, top, det) in enumerate(zip(self.t_ms.tolist(), self.top.tolist(),
                                              self.det.tolist())):
            out.append({"hop": i, "t_ms": t, "top": classes[top], "score": smoothed[i][top],
                        "det": classes[det] if det >= 0 else None, "q": raw[i],
                        "scores": scores[i], "smoothed": smoothed[i]})
        return out


@dataclass
class Simulator:
    """One built variant of a project, ready to run streams (see the module docstring)."""

    project: Project
    variant: object          # generator.variant.Variant
    tflite: bytes
    core: HostCore
    classes: list[str]
    zero_point: int
    scale: float             # the output tensor's scale (float32)
    scale_q31: int
    shift: int
    cmsis: str               # "portable" or "dsp"
    firmware_dir: Path
    stale: list[str] = field(default_factory=list)  # firmware files differing from a fresh render

    @property
    def sample_rate(self) -> int:
        return self.core.constants["sample_rate"]

    @property
    def hop_samples(self) -> int:
        return self.core.hop_samples

    @property
    def serial(self) -> bool:
        """Whether the device prints hop lines (MF_OUTPUT_SERIAL)."""
        return "serial" in self.variant.outputs

    def run(self, samples: np.ndarray, chunk_hops: int = CHUNK_HOPS) -> StreamResult:
        """One stream from a reset front end and detector, as arrays."""
        from .evaluate import run_tflm

        samples = _int16(samples)
        core, hop, c = self.core, self.hop_samples, len(self.classes)
        blocks = len(samples) // hop
        core.reset()
        parts = {k: [] for k in ("hop", "raw", "scores", "det", "top", "smoothed")}
        for start in range(0, blocks, chunk_hops):
            stop = min(blocks, start + chunk_hops)
            maps, hops = core.push(samples[start * hop:stop * hop])
            if not len(maps):
                continue
            raw = run_tflm(self.tflite, maps)
            scores = core.scores(raw, self.zero_point, self.scale_q31, self.shift)
            det, top, smoothed = core.detect(scores)
            for k, v in (("hop", hops + start), ("raw", raw), ("scores", scores), ("det", det),
                         ("top", top), ("smoothed", smoothed)):
                parts[k].append(v)
        empty = {"hop": np.zeros(0, np.int64), "raw": np.zeros((0, c), np.int8),
                 "scores": np.zeros((0, c), np.int16), "det": np.zeros(0, np.int32),
                 "top": np.zeros(0, np.int32), "smoothed": np.zeros((0, c), np.int16)}
        arr = {k: np.concatenate(v) if v else empty[k] for k, v in parts.items()}
        stream_hop = arr["hop"].astype(np.int64)
        t_ms = (stream_hop + 1) * hop * 1000 // self.sample_rate
        return StreamResult(stream_hop=stream_hop, t_ms=t_ms, raw=arr["raw"],
                            scores=arr["scores"], smoothed=arr["smoothed"], top=arr["top"],
                            det=arr["det"], hops_pushed=blocks, samples=len(samples))


def _int16(samples) -> np.ndarray:
    """1-D int16 samples; integers that fit are converted, anything else is refused (float
    audio in [-1, 1] would silently become zeros)."""
    x = np.asarray(samples)
    if x.ndim != 1:
        raise ValueError(f"samples must be 1-D int16, got shape {x.shape}")
    if x.dtype == np.int16:
        return x
    if x.dtype.kind not in "iu" or (x.size and (x.min() < -32768 or x.max() > 32767)):
        raise ValueError(f"samples must be int16 (or integers in its range), got {x.dtype}")
    return x.astype(np.int16)


def _variant_names(project: Project) -> list[str]:
    return [t.name for t in project.spec.targets]


def _resolve(project: Project, name: str, analysis: dict, calibration: dict | None):
    from .boards import load_board
    from .variant import resolve
    target = next(t for t in project.spec.targets if t.name == name)
    board = load_board(target.board)
    if calibration is not None:
        return resolve(project, target, board, analysis, calibration)
    return resolve(project, target, board, analysis)


def _stale_files(texts: dict[str, str], firmware: Path, project: Project,
                 tflite: bytes) -> list[str]:
    """The core files (and model_data.cc) of a rendered firmware folder whose code (the
    header lines aside) differs from a fresh render; [] when the folder is absent."""
    if not firmware.is_dir():
        return []
    from .model_c import model_source
    want = {n: texts[n] for n in CORE_FILES}
    want["model_data.cc"] = model_source(project, tflite)[1]
    return [n for n, text in want.items()
            if not (firmware / n).is_file() or _code(firmware / n) != _strip_header(text)]


_HEADER_LINE = re.compile(r"^// (Generated by micforge from .*; do not edit\.|Inputs hash: .*)\n",
                          re.MULTILINE)


def _strip_header(text: str) -> str:
    """A generated file without its header lines (their hash covers every input of the
    variant, e.g. LED pins, so it changes when the code does not)."""
    return _HEADER_LINE.sub("", text)


def _code(path: Path) -> str:
    return _strip_header(path.read_text())


def _shown_path(path: Path) -> str:
    """A path relative to the working directory when it is under it (as the CLI shows paths)."""
    path = Path(path).resolve()
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def load(project: Project, variant: str, build_dir: Path | None = None,
         spec_display: str | None = None, calibration: dict | None = None) -> Simulator:
    """The simulator of a built variant (rendered, compiled, model loaded); SimulateError
    naming `spec_display` when the build is missing or the variant unknown. `calibration`
    stands in for analysis/streaming.json (the streaming stage, which makes that file,
    runs the front end and scores before any threshold exists)."""
    shown = spec_display or str(project.path)
    names = _variant_names(project)
    if variant not in names:
        raise SimulateError(f"{shown}: no variant '{variant}'; variants: {', '.join(names)}")
    art = Artifacts.for_project(project.name, build_dir)
    needed = [(art.tflite, "built model"), (art.analysis, "model analysis")]
    if project.spec.detection.threshold == "auto" and calibration is None:
        needed.append((art.streaming, "threshold calibration (threshold: auto)"))
    for path, what in needed:
        if not path.is_file():
            raise SimulateError(f"{shown}: no {what} at {_shown_path(path)}; "
                                f"run micforge build {shown} first")
    tflite = art.tflite.read_bytes()
    analysis = json.loads(art.analysis.read_text())
    if calibration is None and project.spec.detection.threshold == "auto":
        calibration = json.loads(art.streaming.read_text())
    v = _resolve(project, variant, analysis, calibration)
    zero_point, scale, in_shape = _model_io(tflite)
    fe: FrontEnd = v.frontend
    want = [1, fe.num_frames, fe.num_bins, 1]
    if in_shape != want:
        raise SimulateError(f"{shown}: the built model at {_shown_path(art.tflite)} takes "
                            f"{in_shape}, the spec's features are {want}; "
                            f"run micforge build {shown} first")
    if analysis.get("model_bytes", len(tflite)) != len(tflite):
        raise SimulateError(f"{shown}: {_shown_path(art.analysis)} is not the analysis of "
                            f"{_shown_path(art.tflite)}; run micforge build {shown} first")
    texts = core_texts(v, analysis, tflite)
    cmsis = cmsis_variant(v.board)
    core = HostCore(build_library(texts, cmsis))
    classes = list(project.spec.classes)
    expect = {"sample_rate": fe.sample_rate, "hop_samples": fe.hop_samples,
              "num_frames": fe.num_frames, "num_bins": fe.num_bins,
              "num_classes": len(classes), "map_size": fe.num_frames * fe.num_bins}
    wrong = {k: (core.constants[k], w) for k, w in expect.items() if core.constants[k] != w}
    if wrong:  # the rendered C and generator.features disagree: a micforge bug
        raise AssertionError(f"rendered config.h / mf_features.h disagree with the spec: {wrong}")
    q31, shift = core.output_scale(scale)
    firmware = art.firmware(variant)
    return Simulator(project=project, variant=v, tflite=tflite, core=core, classes=classes,
                     zero_point=zero_point, scale=scale, scale_q31=q31, shift=shift,
                     cmsis=cmsis, firmware_dir=firmware,
                     stale=_stale_files(texts, firmware, project, tflite))


def _model_io(tflite: bytes) -> tuple[int, float, list[int]]:
    """(output zero point, output scale as float32, input shape) as TFLM reads the model."""
    from tflite_micro.python.tflite_micro import runtime

    from .evaluate import TFLM_ARENA
    interp = runtime.Interpreter.from_bytes(tflite, arena_size=TFLM_ARENA)
    out = interp.get_output_details(0)["quantization_parameters"]
    shape = [int(s) for s in interp.get_input_details(0)["shape"]]
    return int(out["zero_points"][0]), float(np.float32(out["scales"][0])), shape


_CACHE: dict[tuple, Simulator] = {}
CACHED_SIMULATORS = 8


def simulator(project: Project, variant: str, build_dir: Path | None = None) -> Simulator:
    """`load`, memoised on the spec's values, the variant and the build's model files."""
    art = Artifacts.for_project(project.name, build_dir)
    stamp = tuple((p.stat().st_mtime_ns, p.stat().st_size) if p.is_file() else None
                  for p in (art.tflite, art.analysis, art.streaming))
    key = (str(project.path), json.dumps(project.spec.model_dump(mode="json"), sort_keys=True),
           variant, str(art.root.resolve()), stamp)
    if key not in _CACHE:
        while len(_CACHE) >= CACHED_SIMULATORS:
            _CACHE.pop(next(iter(_CACHE)))
        _CACHE[key] = load(project, variant, build_dir)
    return _CACHE[key]


def simulate_stream(project: Project, variant: str, samples: np.ndarray,
                    build_dir: Path | None = None) -> list[dict]:
    """The device's per-hop results for one stream of int16 samples at the spec's rate.

    One dict per printed hop: hop (from 0 at the first full map), t_ms (stream time at
    the end of the hop), q (raw int8 outputs), scores (their q15 probabilities), top (class
    name), score (smoothed q15 of top, as printed), det (class name or None), smoothed
    (every class's smoothed q15). Raises SimulateError without a built model. For long
    streams `simulator(...).run(samples)` gives the same as arrays, without the dicts.
    """
    sim = simulator(project, variant, build_dir)
    return sim.run(samples).records(sim.classes)


# ------------------------------------------------------------------------ lines and files

def format_line(hop: int, t_ms: int, top: str, score: int, det: str | None, raw,
                clip: int | None = None) -> str:
    """main.cpp's serial line, with dsp_us, inf_us and ovr at 0."""
    prefix = f"clip={clip} " if clip is not None else ""
    return (f"{prefix}hop={hop} t_ms={t_ms} top={top} score={score} det={det or '-'} "
            f"dsp_us=0 inf_us=0 ovr=0 q={','.join(str(int(v)) for v in raw)}")


def result_lines(result: StreamResult, classes: list[str], clip: int | None = None) -> list[str]:
    score, raw = result.score.tolist(), result.raw.tolist()
    return [format_line(i, t, classes[top], score[i], classes[det] if det >= 0 else None,
                        raw[i], clip)
            for i, (t, top, det) in enumerate(zip(result.t_ms.tolist(), result.top.tolist(),
                                                  result.det.tolist()))]


def decode_file(path: Path, sample_rate: int) -> np.ndarray:
    """A whole audio file as mono int16 at `sample_rate`; SimulateError naming it otherwise."""
    from .audio import AudioError, decode
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise SimulateError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        return decode(data, sample_rate).samples
    except AudioError as exc:
        raise SimulateError(f"{path}: {exc}") from None


def simulate_files(sim: Simulator, files: list[Path], shown: list[str] | None = None,
                   emit=print) -> dict:
    """The CLI's work: decode every file (all before any output), run each as its own
    stream, `emit` the device's lines, and return the JSON-able record of it all."""
    shown = shown or [str(f) for f in files]
    audio = [decode_file(Path(f), sim.sample_rate) for f in files]
    clips = len(files) > 1
    out = {"spec": str(sim.project.path.name), "variant": sim.variant.name,
           "board": sim.variant.board.id, "cmsis_dsp": sim.cmsis, "classes": sim.classes,
           "sample_rate": sim.sample_rate, "hop_samples": sim.hop_samples,
           "output_zero_point": sim.zero_point, "output_scale": sim.scale,
           "scale_q31": sim.scale_q31, "shift": sim.shift, "serial": sim.serial,
           "t_ms": "stream time at the end of each hop (not the device's time since boot)",
           "files": []}
    for i, (name, samples) in enumerate(zip(shown, audio)):
        result = sim.run(samples)
        if sim.serial:
            for line in result_lines(result, sim.classes, i if clips else None):
                emit(line)
        if clips:
            emit(f"clip={i} end")
        out["files"].append({"file": name, "clip": i if clips else None,
                             "samples": int(len(samples)), "hops_pushed": result.hops_pushed,
                             "hops": result.records(sim.classes)})
    if clips:
        emit("mf done")
    return out


# ------------------------------------------------------------------------ references

def _c_div(a: int, b: int) -> int:
    """C's integer division (truncation toward zero)."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


def reference_score_q15(q: int, zero_point: int, scale_q31: int, shift: int) -> int:
    """detection.c's mf_score_q15 in Python integers (>> on int64 is a floor shift)."""
    v = ((q - zero_point) * scale_q31) >> (16 + shift)
    return 0 if v < 0 else min(v, 32767)


def detector_settings(project: Project, threshold: float | None = None) -> dict:
    """reference_detector's settings from a spec (config.h's values): smoothing, threshold and
    release in q15, and which classes detect. `threshold` overrides the spec's (auto)."""
    from .firmware.common import detect_classes, q15
    det = project.spec.detection
    thr = float(det.threshold) if threshold is None else float(threshold)
    return {"smoothing": det.smoothing, "threshold_q15": q15(thr),
            "release_q15": q15(thr - det.hysteresis), "detects": detect_classes(project)}


def reference_detector(scores, smoothing: int, threshold_q15: int, release_q15: int,
                       detects) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """detection.c's detector in Python integers, from a reset: for q15 scores [n, classes]
    (int16), per step the detected class (-1 for none), the top class and every class's
    smoothed score (mean of the last `smoothing` steps, C integer division).

    The ring of the last `smoothing` scores starts at 0 and a running int32 sum per class is
    kept (sum += new - oldest), divided by the filled count (up to `smoothing`). A detecting
    class turns on at smoothed >= threshold_q15 and stays on while smoothed >= release_q15;
    the result is the on class with the highest smoothed score (the first on a tie). The top
    class is the highest sum (the first on a tie).
    """
    scores = np.asarray(scores, dtype=np.int64)
    n, k = scores.shape
    history = [[0] * k for _ in range(smoothing)]
    sums, active = [0] * k, [False] * k
    pos = count = 0
    dets = np.empty(n, dtype=np.int32)
    tops = np.empty(n, dtype=np.int32)
    smoothed = np.empty((n, k), dtype=np.int16)
    for i, row in enumerate(scores.tolist()):
        slot = history[pos]
        for c in range(k):
            sums[c] += row[c] - slot[c]
            slot[c] = row[c]
        pos = (pos + 1) % smoothing
        count = min(count + 1, smoothing)
        best, best_score = -1, 0
        for c in range(k):
            s = _c_div(sums[c], count)
            smoothed[i, c] = s
            if not detects[c]:
                continue
            active[c] = s >= (release_q15 if active[c] else threshold_q15)
            if active[c] and (best < 0 or s > best_score):
                best, best_score = c, s
        top = 0
        for c in range(1, k):
            if sums[c] > sums[top]:
                top = c
        dets[i], tops[i] = best, top
    return dets, tops, smoothed
