"""The op table: resolver names, kernel sources, int8 registrations, MAC formulas."""

from __future__ import annotations

import re

import pytest

from generator import tflm_ops


def test_every_entry_names_a_resolver_method_and_a_kernel_source():
    for name, op in tflm_ops.OPS.items():
        assert re.fullmatch(r"Add[A-Z][A-Za-z0-9]*", op.resolver), name
        assert re.fullmatch(r"[a-z][a-z0-9_]*", op.stem), name
        if op.int8:
            header, function = op.int8
            assert header == f"{op.stem}.h" and function.startswith("Register_") \
                and function.endswith("_INT8")
    assert len(tflm_ops.BY_RESOLVER) == len(tflm_ops.OPS)  # one op per resolver call


def test_mac_formulas():
    assert tflm_ops.macs("CONV_2D", [8, 3, 3, 1], [1, 8, 8, 8]) == 8 * 8 * 8 * 9
    assert tflm_ops.macs("DEPTHWISE_CONV_2D", [1, 3, 3, 24], [1, 31, 8, 24]) == 31 * 8 * 24 * 9
    assert tflm_ops.macs("FULLY_CONNECTED", [2, 48], [1, 2]) == 96
    assert tflm_ops.macs("ADD", [], [1, 4, 4, 8]) == 128
    assert tflm_ops.macs("RESHAPE", [], [1, 48]) == 0


def test_an_op_outside_the_table_is_an_error_naming_the_table():
    with pytest.raises(tflm_ops.UnknownOp, match=r"op GELU is not in micforge's TFLM op table "
                                                 r"\(generator/tflm_ops.py"):
        tflm_ops.macs("GELU", [], [1, 4])


def test_kernel_context_of_the_fire_alarm_ops():
    calls = ["AddConv2D", "AddFullyConnected", "AddMaxPool2D", "AddReshape", "AddSoftmax"]
    ctx = tflm_ops.kernel_context({"input": {"dtype": "int8"}}, calls)
    assert ctx["kernel_stems"] == ["conv", "fully_connected", "pooling", "reshape", "softmax"]
    assert ctx["registrations"]["AddConv2D"] == "tflite::Register_CONV_2D_INT8()"
    assert ctx["registrations"]["AddReshape"] == ""
    assert ctx["kernel_headers"] == ["conv.h", "fully_connected.h", "pooling.h", "softmax.h"]
    float_model = tflm_ops.kernel_context({"input": {"dtype": "float32"}}, calls)
    assert set(float_model["registrations"].values()) == {""} and not float_model["kernel_headers"]
