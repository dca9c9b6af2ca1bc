"""A model's multiply-accumulates from its spec alone, before anything is trained.

`layers(spec)` follows generator/zoo.py's architectures layer by layer on the
feature map's shape (features.design); `macs(spec)` counts what tflm_ops counts for
the converted model (convolutions, depthwise convolutions and the dense head;
pooling, activations and softmax count 0), `arena_lower_bound(spec)` the bytes
no arena can be below and `model_bytes_lower_bound(spec)` the bytes no converted
model can be below, so `micforge validate` checks a board's real-time budget,
a numeric arena and the model's flash without TensorFlow. tests/test_modelcost.py holds them to
converted models.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from .features import design
from .spec import CompactCnn, DsCnn, GuideCnn, ProjectSpec


class Layer(NamedTuple):
    """One layer that computes: its int8 input and output values, its MACs, and its int8
    weights and int32 biases (one per output channel: the converter folds batch norm into
    a bias)."""

    inputs: int
    outputs: int
    macs: int
    weights: int
    biases: int


def _same(size: int, stride: int) -> int:
    return math.ceil(size / stride)


def layers(spec: ProjectSpec) -> list[Layer]:
    """Each layer that computes, in order."""
    fe = design(spec)
    h, w, n = fe.num_frames, fe.num_bins, len(spec.classes)
    m = spec.model
    out: list[Layer] = []
    if isinstance(m, GuideCnn):  # conv 'valid', pool 2, dense
        oh, ow = (h - m.kernel) // m.stride + 1, (w - m.kernel) // m.stride + 1
        k = m.kernel * m.kernel * m.filters
        out.append(Layer(h * w, oh * ow * m.filters, oh * ow * k, k, m.filters))
        flat = (oh // 2) * (ow // 2) * m.filters
        out.append(Layer(flat, n, flat * n, flat * n, n))
        return out
    if isinstance(m, CompactCnn):  # strided 'same' convs, pool 2, dense
        c = 1
        for i, f in enumerate(m.filters):
            s = m.first_stride if i == 0 else 2
            oh, ow = _same(h, s), _same(w, s)
            k = m.kernel * m.kernel * c * f
            out.append(Layer(h * w * c, oh * ow * f, oh * ow * k, k, f))
            h, w, c = oh, ow, f
        flat = (h // 2) * (w // 2) * c
        out.append(Layer(flat, n, flat * n, flat * n, n))
        return out
    if isinstance(m, DsCnn):  # first conv 'same', blocks of 3x3 depthwise + 1x1, pool, dense
        oh, ow, f = _same(h, m.first_stride[0]), _same(w, m.first_stride[1]), m.filters
        k = m.first_kernel[0] * m.first_kernel[1] * f
        out.append(Layer(h * w, oh * ow * f, oh * ow * k, k, f))
        for _ in range(m.blocks):
            out.append(Layer(oh * ow * f, oh * ow * f, oh * ow * 9 * f, 9 * f, f))
            out.append(Layer(oh * ow * f, oh * ow * f, oh * ow * f * f, f * f, f))
        out.append(Layer(f, n, f * n, f * n, n))
        return out
    raise TypeError(f"no cost model for {type(m).__name__}")


def macs(spec: ProjectSpec) -> int:
    """MACs per inference of the spec's model (for a transfer spec, of `model`, which the base's
    body replaces)."""
    return sum(layer.macs for layer in layers(spec))


def arena_lower_bound(spec: ProjectSpec) -> int:
    """Bytes no tensor arena can be below: the largest layer's int8 input and output, both
    alive while it runs (TFLM needs more: scratch buffers, its own structures)."""
    return max(layer.inputs + layer.outputs for layer in layers(spec))


def model_bytes_lower_bound(spec: ProjectSpec) -> int:
    """Bytes no converted model can be below: its int8 weights and int32 biases (the
    flatbuffer adds per-channel scales, tensors, ops and their metadata)."""
    return sum(layer.weights + 4 * layer.biases for layer in layers(spec))
