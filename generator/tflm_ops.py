"""TFLite builtin ops as TFLM and micforge see them: one table, read by everyone.

For each op micforge accepts: the MicroMutableOpResolver method that registers it,
the TFLM kernel source stem both firmware families compile
(tensorflow/lite/micro/kernels/[cmsis_nn/]<stem>[_common].cpp), the int8-only
registration (header, function) that keeps the linker to the int8 path where
pico-tflmicro's CMSIS-NN kernels have one, and how many multiply-accumulates the
op costs. The analysis stage reads the resolver names and MACs; the firmware
families read the stems and registrations. An op outside the table is refused at
analysis with a message naming this file: its cost and kernel would be guesses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

MacFormula = Callable[[list[int], list[int]], int]  # (weights shape, output shape) -> MACs


def _out(out_shape: list[int]) -> int:
    return int(np.prod(out_shape)) if out_shape else 0


def _conv(weights: list[int], out_shape: list[int]) -> int:        # weights [out, kh, kw, in]
    return _out(out_shape) * int(np.prod(weights[1:]))


def _depthwise(weights: list[int], out_shape: list[int]) -> int:   # weights [1, kh, kw, out]
    return _out(out_shape) * weights[1] * weights[2]


def _dense(weights: list[int], out_shape: list[int]) -> int:       # weights [units, inputs]
    return _out(out_shape) * weights[1]


def _elementwise(weights: list[int], out_shape: list[int]) -> int:  # one per output value
    return _out(out_shape)


def _none(weights: list[int], out_shape: list[int]) -> int:
    """No multiply-accumulate with weights: data movement, comparisons, pooling and the
    activation tables; their time is part of the calibrated cycles per MAC."""
    return 0


@dataclass(frozen=True)
class Op:
    resolver: str                        # MicroMutableOpResolver method
    stem: str                            # TFLM kernel source stem
    macs: MacFormula
    int8: tuple[str, str] | None = None  # (kernel header, int8-only Register_* function)


OPS: dict[str, Op] = {
    "ADD": Op("AddAdd", "add", _elementwise, ("add.h", "Register_ADD_INT8")),
    "AVERAGE_POOL_2D": Op("AddAveragePool2D", "pooling", _none,
                          ("pooling.h", "Register_AVERAGE_POOL_2D_INT8")),
    "CONCATENATION": Op("AddConcatenation", "concatenation", _none),
    "CONV_2D": Op("AddConv2D", "conv", _conv, ("conv.h", "Register_CONV_2D_INT8")),
    "DEPTHWISE_CONV_2D": Op("AddDepthwiseConv2D", "depthwise_conv", _depthwise,
                            ("depthwise_conv.h", "Register_DEPTHWISE_CONV_2D_INT8")),
    "DEQUANTIZE": Op("AddDequantize", "dequantize", _none),
    "FULLY_CONNECTED": Op("AddFullyConnected", "fully_connected", _dense,
                          ("fully_connected.h", "Register_FULLY_CONNECTED_INT8")),
    "LOGISTIC": Op("AddLogistic", "logistic", _none),
    "MAX_POOL_2D": Op("AddMaxPool2D", "pooling", _none, ("pooling.h", "Register_MAX_POOL_2D_INT8")),
    "MEAN": Op("AddMean", "reduce", _none),
    "MUL": Op("AddMul", "mul", _elementwise, ("mul.h", "Register_MUL_INT8")),
    "PAD": Op("AddPad", "pad", _none),
    "QUANTIZE": Op("AddQuantize", "quantize", _none),
    "RELU": Op("AddRelu", "activations", _none),
    "RELU6": Op("AddRelu6", "activations", _none),
    "RESHAPE": Op("AddReshape", "reshape", _none),
    "SOFTMAX": Op("AddSoftmax", "softmax", _none, ("softmax.h", "Register_SOFTMAX_INT8")),
    "TANH": Op("AddTanh", "tanh", _none),
}

BY_RESOLVER = {op.resolver: op for op in OPS.values()}


class UnknownOp(KeyError):
    """A builtin op micforge has no table entry for."""

    def __init__(self, name: str):
        super().__init__(name)
        self.name = name

    def __str__(self) -> str:
        return (f"op {self.name} is not in micforge's TFLM op table (generator/tflm_ops.py: its "
                f"resolver call, kernel source and MAC formula); supported: {', '.join(sorted(OPS))}")


def op(name: str) -> Op:
    """The table entry of builtin op `name`; UnknownOp when there is none."""
    try:
        return OPS[name]
    except KeyError:
        raise UnknownOp(name) from None


def macs(name: str, weights: list[int], out_shape: list[int]) -> int:
    return op(name).macs(weights, out_shape)


def registrations(resolver_calls: list[str], int8_model: bool) -> dict[str, str]:
    """Add* method -> its argument: an int8-only registration call, or '' for the default
    (every op of a model whose input is not int8)."""
    out = {}
    for call in resolver_calls:
        entry = BY_RESOLVER[call]
        out[call] = f"tflite::{entry.int8[1]}()" if int8_model and entry.int8 else ""
    return out


def kernel_context(analysis: dict, resolver_calls: list[str]) -> dict:
    """Template values naming the TFLM kernels to compile and register (both families)."""
    regs = registrations(resolver_calls, analysis.get("input", {}).get("dtype") == "int8")
    return dict(registrations=regs,
                kernel_stems=sorted({BY_RESOLVER[call].stem for call in resolver_calls}),
                kernel_headers=sorted({BY_RESOLVER[call].int8[0] for call, arg in regs.items()
                                       if arg}))
