"""Model analysis: an int8 .tflite in, what the firmware needs to know about it out.

`analyze(project, tflite_path, out_json)` reads the flatbuffer with the schema
module that ships with TFLM (tflite_micro's schema_py_generated, no hand
parser) and returns (and writes as JSON):

  ops          every builtin op with its version, the MicroMutableOpResolver
               method that registers it (AddConv2D, ...) and how often it occurs
  resolver     the sorted Add* method names; their number is the resolver's
               template parameter
  layers       per operator: output tensor and shape, MACs, parameters, weight bytes
  macs, params, weight_bytes, model_bytes   totals
  input, output  tensor shape, type, scale and zero point
  arena        measured_bytes: the smallest tensor arena with which the real TFLM
               runtime (tflite_micro's Python interpreter) allocates and invokes
               the model, found by bisection; margin: the spec's arena.margin;
               bytes: what the firmware gets (measured + margin, rounded up to 16,
               or the spec's number)
  arena_bytes  = arena.bytes

A model with an op the TFLM runtime cannot run, or a numeric `arena.size`
smaller than measured + margin, is a SpecError at the spec line to change.
`format_analysis(d)` is the CLI's summary.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from pathlib import Path

import numpy as np

from . import tflm_ops
from .errors import SpecError
from .fileio import write_json
from .spec import Project
from .variant import ARENA_ALIGN, arena_size

ARENA_LIMIT = 64 * 1024 * 1024  # a model that does not run in this much arena does not run

def schema():
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated
    return schema_py_generated


def _op_names() -> dict[int, str]:
    return {v: k for k, v in vars(schema().BuiltinOperator).items() if not k.startswith("_")}


def _type_names() -> dict[int, str]:
    return {v: k.lower() for k, v in vars(schema().TensorType).items() if not k.startswith("_")}


def _tensor_info(t, types: dict[int, str]) -> dict:
    q = t.quantization
    scale = [float(s) for s in q.scale] if q is not None and q.scale is not None else []
    zero = [int(z) for z in q.zeroPoint] if q is not None and q.zeroPoint is not None else []
    info = {"name": t.name.decode(), "shape": [int(v) for v in t.shape], "dtype": types[t.type]}
    if len(scale) == 1:
        info.update(scale=scale[0], zero_point=zero[0])
    return info


def read_layers(tflite: bytes) -> tuple[list[dict], dict, dict]:
    """(layers, input info, output info) of the single subgraph of `tflite`."""
    s = schema()
    model = s.ModelT.InitFromPackedBuf(tflite, 0)
    if len(model.subgraphs) != 1:
        raise ValueError(f"expected one subgraph, found {len(model.subgraphs)}")
    g = model.subgraphs[0]
    names, types = _op_names(), _type_names()
    layers = []
    for i, op in enumerate(g.operators):
        code = model.operatorCodes[op.opcodeIndex]
        name = names[max(int(code.builtinCode), int(code.deprecatedBuiltinCode))]
        consts = []
        for t_index in op.inputs:
            if t_index < 0:
                continue
            t = g.tensors[t_index]
            data = model.buffers[t.buffer].data if t.buffer > 0 else None
            # Weights and biases are quantized constants; shape operands are not.
            if data is not None and len(data) and t.quantization is not None \
                    and t.quantization.scale is not None:
                consts.append((t, len(data)))
        out = g.tensors[op.outputs[0]]
        weights = [int(v) for v in consts[0][0].shape] if consts else []
        out_shape = [int(v) for v in out.shape]
        entry = tflm_ops.OPS.get(name)
        layers.append({
            "index": i, "op": name, "version": int(code.version),
            "resolver": entry.resolver if entry else None,  # None: not in tflm_ops.OPS
            "output": out.name.decode(), "output_shape": out_shape,
            "macs": entry.macs(weights, out_shape) if entry else None,
            "params": sum(int(np.prod(t.shape)) for t, _ in consts),
            "weight_bytes": sum(n for _, n in consts),
        })
    io_in = _tensor_info(g.tensors[g.inputs[0]], types)
    io_out = _tensor_info(g.tensors[g.outputs[0]], types)
    return layers, io_in, io_out


@contextlib.contextmanager
def _captured_stderr():
    """Collect what C++ writes to fd 2 (TFLM's error log) into a list of one string."""
    out: list[str] = []
    with tempfile.TemporaryFile() as tmp:
        saved = os.dup(2)
        os.dup2(tmp.fileno(), 2)
        try:
            yield out
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            out.append(tmp.read().decode(errors="replace"))


def runs_with_arena(tflite: bytes, arena: int, input_shape: list[int]) -> tuple[bool, str]:
    """(True, '') if the TFLM runtime allocates and invokes with `arena` bytes, else (False, log)."""
    from tflite_micro.python.tflite_micro import runtime

    with _captured_stderr() as log:
        try:
            interp = runtime.Interpreter.from_bytes(tflite, arena_size=arena)
            interp.set_input(np.zeros(input_shape, np.int8), 0)
            interp.invoke()
            ok = True
        except RuntimeError:
            ok = False
    return ok, log[0].strip()


def measure_arena(tflite: bytes, input_shape: list[int]) -> int:
    """The smallest arena (a multiple of ARENA_ALIGN) with which the model runs under TFLM.

    Raises RuntimeError with the runtime's log if it does not run with ARENA_LIMIT bytes.
    """
    ok, log = runs_with_arena(tflite, ARENA_LIMIT, input_shape)
    if not ok:
        raise RuntimeError(log or "the TFLM runtime could not run the model")
    lo, hi = 0, ARENA_LIMIT // ARENA_ALIGN  # in units of ARENA_ALIGN: lo fails, hi runs
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if runs_with_arena(tflite, mid * ARENA_ALIGN, input_shape)[0]:
            hi = mid
        else:
            lo = mid
    return hi * ARENA_ALIGN


def _unsupported(project: Project, layers: list[dict], log: str) -> SpecError:
    missing = sorted(set(re.findall(r"opcode '?([A-Z0-9_]+)'?", log)))
    ops = ", ".join(missing) if missing else ", ".join(sorted({x["op"] for x in layers}))
    detail = log.splitlines()[0] if log else "no log"
    return SpecError(project.positions.problem(
        ("model", "architecture"),
        f"the TFLM runtime cannot run this model (ops {ops}): {detail}; choose an architecture "
        f"whose ops TFLM supports"))


def analyze(project: Project, tflite_path: Path, out_json: Path) -> dict:
    """Analyse the int8 model at `tflite_path`; write and return the analysis dict."""
    tflite = Path(tflite_path).read_bytes()
    layers, io_in, io_out = read_layers(tflite)
    ops: dict[str, dict] = {}
    for layer in layers:
        entry = ops.setdefault(layer["op"], {"op": layer["op"], "resolver": layer["resolver"],
                                             "version": 0, "count": 0})
        entry["version"] = max(entry["version"], layer["version"])
        entry["count"] += 1
    try:
        measured = measure_arena(tflite, io_in["shape"])
    except RuntimeError as exc:
        raise _unsupported(project, layers, str(exc)) from None
    unknown = sorted({x["op"] for x in layers if x["resolver"] is None})
    if unknown:
        raise SpecError(project.positions.problem(
            ("model", "architecture"), str(tflm_ops.UnknownOp(", ".join(unknown)))))
    arena = arena_size(project.spec.arena, measured, ("arena", "size"))
    if arena.problem(project) is not None:
        raise SpecError(arena.problem(project))
    result = {
        "model_bytes": len(tflite),
        "ops": sorted(ops.values(), key=lambda o: o["op"]),
        "resolver": sorted({o["resolver"] for o in ops.values()}),
        "layers": layers,
        "macs": sum(x["macs"] for x in layers),
        "params": sum(x["params"] for x in layers),
        "weight_bytes": sum(x["weight_bytes"] for x in layers),
        "input": io_in, "output": io_out,
        "arena": {"measured_bytes": measured, "margin": arena.margin, "bytes": arena.bytes,
                  "align": ARENA_ALIGN, "runtime": "tflite_micro Python interpreter"},
        "arena_bytes": arena.bytes,
    }
    write_json(out_json, result)
    return result


def format_analysis(d: dict) -> str:
    """A short human summary: ops, per-layer costs, totals, arena."""
    lines = [f"model: {d['model_bytes']} bytes, {d['params']} params ({d['weight_bytes']} weight "
             f"bytes), {d['macs']:,} MACs per inference"]
    lines.append("ops: " + ", ".join(f"{o['op']} v{o['version']} x{o['count']}" for o in d["ops"])
                 + f"  (MicroMutableOpResolver<{len(d['resolver'])}>)")
    lines.append(f"  {'#':>2} {'op':<18} {'output':<16} {'MACs':>10} {'params':>7} {'bytes':>7}")
    for x in d["layers"]:
        shape = "x".join(map(str, x["output_shape"]))
        lines.append(f"  {x['index']:>2} {x['op']:<18} {shape:<16} {x['macs']:>10,} "
                     f"{x['params']:>7} {x['weight_bytes']:>7}")
    for key in ("input", "output"):
        t = d[key]
        lines.append(f"{key}: {t['dtype']} {t['shape']} scale {t.get('scale')} "
                     f"zero point {t.get('zero_point')}")
    a = d["arena"]
    lines.append(f"arena: {a['measured_bytes']} bytes measured with TFLM, + {a['margin']} margin "
                 f"-> {a['bytes']} bytes")
    return "\n".join(lines)
