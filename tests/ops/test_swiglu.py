"""SwiGLU (opset 28) against its function body run in onnxruntime, which cannot run SwiGLU itself (its Swish
kernel is registered for opset 24 only): bounds contain onnxruntime's Swish(a) * b at opset 24 for operands
drawn inside them; the node cases of the onnx wheel agree; an overflowing product is found."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper

import ranum
from ranum.domain.interval import Interval
from ranum.graph.loader import load_model
from ranum.interpret import run_abstract
from tests.ops.node_runs import node_cases, onnxruntime_outputs
from tests.ops.test_onnx_node_cases import test_concrete_and_abstract_match_onnx_reference as check_node_case

_NUMPY = {TensorProto.FLOAT: np.float32, TensorProto.FLOAT16: np.float16, TensorProto.DOUBLE: np.float64}
SHAPE = (3, 5)


@pytest.mark.parametrize(("model", "inputs", "expected"), node_cases({"SwiGLU"}))
def test_node_cases_agree_with_the_reference(model: onnx.ModelProto, inputs, expected) -> None:
    check_node_case(model, inputs, expected)


def _model(elem_type: int, alpha: float, fused: bool) -> onnx.ModelProto:
    """SwiGLU at opset 28, or its function body (Swish, Mul) at opset 24 for onnxruntime."""
    if fused:
        nodes = [helper.make_node("SwiGLU", ["a", "b"], ["y"], alpha=alpha)]
    else:
        nodes = [helper.make_node("Swish", ["a"], ["s"], alpha=alpha), helper.make_node("Mul", ["s", "b"], ["y"])]
    graph = helper.make_graph(nodes, "swiglu", [helper.make_tensor_value_info(n, elem_type, SHAPE) for n in "ab"],
                              [helper.make_tensor_value_info("y", elem_type, SHAPE)])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 28 if fused else 24)])


def _blocks(rng: np.random.Generator, low: float, high: float, dtype) -> tuple[np.ndarray, np.ndarray]:
    """Full-shape bounds: two row blocks of random ranges inside [low, high], on the dtype's grid."""
    ends = np.sort(rng.uniform(low, high, size=(2, 2)), axis=1).astype(dtype).astype(np.float64)
    rows = np.array([0, 0, 1])
    return np.repeat(ends[rows, :1], SHAPE[1], 1), np.repeat(ends[rows, 1:], SHAPE[1], 1)


@pytest.mark.parametrize("elem_type", list(_NUMPY))
@pytest.mark.parametrize("alpha", [1.0, 1.702, -0.5])
@pytest.mark.parametrize(("low", "high"), [(-4.0, 4.0), (-40.0, 40.0)])
def test_bounds_contain_onnxruntime_swish_times_b(elem_type: int, alpha: float, low: float, high: float) -> None:
    rng, dtype = np.random.default_rng(0), _NUMPY[elem_type]
    ranges = {name: _blocks(rng, low, high, dtype) for name in "ab"}
    graph, _ = load_model(_model(elem_type, alpha, fused=True))
    initial = {name: Interval.from_full(torch.from_numpy(lo), torch.from_numpy(hi), elem_type)
               for name, (lo, hi) in ranges.items()}
    out = run_abstract(graph, initial).env["y"]
    lower, upper = (t.numpy() for t in out.full())
    reference = _model(elem_type, alpha, fused=False)
    for corner in range(4):
        feeds = [np.where(rng.random(SHAPE) < 0.5, lo, hi) if corner == 3 else (lo, hi)[(corner >> i) & 1]
                 for i, (lo, hi) in enumerate(ranges.values())]
        for points in (feeds, [lo + (hi - lo) * rng.random(SHAPE) for lo, hi in ranges.values()]):
            (y,) = onnxruntime_outputs(reference, [p.astype(dtype) for p in points])
            y = y.astype(np.float64)
            assert ((lower <= y) & (y <= upper)).all(), (y, lower, upper)
    # exact operands give bounds within a few units of rounding of the value
    point = [np.full(SHAPE, 1.5, dtype), np.full(SHAPE, -2.0, dtype)]
    (y,) = onnxruntime_outputs(reference, point)
    exact = ranum.analyze(_model(elem_type, alpha, fused=True),
                          {"inputs": {"a": [1.5, 1.5], "b": [-2.0, -2.0]}}).run.env["y"]
    assert abs(exact.max() - exact.min()) <= 8 * np.finfo(dtype).eps * abs(float(y.flat[0]))


def test_an_overflowing_product_is_found() -> None:
    model = _model(TensorProto.FLOAT16, 1.0, fused=True)
    assert [f.hazard_id for f in ranum.check(model, {"inputs": {"a": [-4, 400], "b": [-400, 4]}}).findings] == \
        ["overflow"]
    assert not ranum.check(model, {"inputs": {"a": [-4, 40], "b": [-40, 4]}}).findings
