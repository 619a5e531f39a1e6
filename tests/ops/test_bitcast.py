"""Hand tests of BitCast: the node cases of the onnx wheel, bounds exact where bit patterns are monotone,
and whole graphs where bits are rearranged as integers and read back as floats."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import ranum
from tests.ops.node_runs import abstract_run, assert_inside, node_cases, onnxruntime_outputs
from tests.ops.test_onnx_node_cases import test_concrete_and_abstract_match_onnx_reference as check_node_case

FLOAT, INT32 = TensorProto.FLOAT, TensorProto.INT32


@pytest.mark.parametrize(("model", "inputs", "expected"), node_cases({"BitCast"}))
def test_node_cases_agree_with_the_reference(model: onnx.ModelProto, inputs, expected) -> None:
    check_node_case(model, inputs, expected)


def _bitcast(source: int, target: int, shape: tuple[int, ...] = (4,)) -> onnx.ModelProto:
    node = helper.make_node("BitCast", ["x"], ["y"], to=target)
    graph = helper.make_graph([node], "bitcast", [helper.make_tensor_value_info("x", source, shape)],
                              [helper.make_tensor_value_info("y", target, shape)])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 26)])


def _bounds(model: onnx.ModelProto, low: float, high: float) -> tuple[float, float]:
    shape = tuple(d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim)
    run = abstract_run(model, {"x": (np.full(shape, low), np.full(shape, high))})
    out = run.env["y"]
    return out.min(), out.max()


def _bits(value: float) -> int:
    return int(np.array(value, np.float32).view(np.int32))


def test_a_positive_float_range_reads_as_the_range_of_its_patterns() -> None:
    assert _bounds(_bitcast(FLOAT, INT32), 1.0, 2.0) == (_bits(1.0), _bits(2.0))


def test_a_range_across_zero_holds_negative_zero_and_the_negative_patterns() -> None:
    low, high = _bounds(_bitcast(FLOAT, INT32), -2.0, 3.0)
    assert (low, high) == (np.iinfo(np.int32).min, _bits(3.0))
    unsigned_low, unsigned_high = _bounds(_bitcast(FLOAT, TensorProto.UINT32), -2.0, -1.0)
    assert (unsigned_low, unsigned_high) == (_bits(1.0) + 2**31, _bits(2.0) + 2**31)


def test_patterns_of_finite_floats_read_back_exactly_and_others_are_found() -> None:
    assert _bounds(_bitcast(INT32, FLOAT), _bits(1.0), _bits(2.0)) == (1.0, 2.0)
    clean = ranum.check(_bitcast(INT32, FLOAT), {"inputs": {"x": [_bits(0.5), _bits(8.0)]}})
    assert not clean.findings
    report = ranum.check(_bitcast(INT32, FLOAT), {"inputs": {"x": [-1, 5]}})  # -1 is a NaN's pattern
    assert [f.hazard_id for f in report.findings] == ["bitcast-not-finite"]


def _fast_inverse_sqrt() -> onnx.ModelProto:
    """y = bits-as-float(0x5f3759df - bits(x) / 2): the classic first guess of 1 / sqrt(x)."""
    nodes = [
        helper.make_node("BitCast", ["x"], ["i"], to=INT32),
        helper.make_node("Div", ["i", "two"], ["half"]),
        helper.make_node("Sub", ["magic", "half"], ["guess"]),
        helper.make_node("BitCast", ["guess"], ["y"], to=FLOAT),
    ]
    inits = [numpy_helper.from_array(np.array(2, np.int32), "two"),
             numpy_helper.from_array(np.array(0x5F3759DF, np.int32), "magic")]
    graph = helper.make_graph(nodes, "rsqrt", [helper.make_tensor_value_info("x", FLOAT, [8])],
                              [helper.make_tensor_value_info("y", FLOAT, [8])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 26)])


def test_the_inverse_square_root_trick_is_finite_for_positive_inputs_and_found_for_negative_ones() -> None:
    model = _fast_inverse_sqrt()
    xs = np.geomspace(1e-3, 1e3, 8).astype(np.float32)
    (runtime,) = onnxruntime_outputs(model, [xs])
    assert np.allclose(runtime, 1 / np.sqrt(xs), rtol=0.04)
    run = abstract_run(model, {"x": (np.full(8, 1e-3), np.full(8, 1e3))})
    assert_inside(run.env["y"], runtime)
    assert run.env["y"].min() > 0 and run.env["y"].max() < 40
    assert not ranum.check(model, {"inputs": {"x": [1e-3, 1e3]}}).findings
    # a negative input's pattern is a negative integer: for x in about [-0.93, -0.23] the difference is a NaN's
    report = ranum.check(model, {"inputs": {"x": [-1.0, 1.0]}})
    assert "bitcast-not-finite" in {f.hazard_id for f in report.findings}
    (negative,) = onnxruntime_outputs(model, [np.full(8, -0.5, np.float32)])
    assert not np.isfinite(negative).all()
