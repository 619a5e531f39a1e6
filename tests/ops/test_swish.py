"""Hand tests of Swish (opset 24, outside the generic node-case window).

The node case against onnxruntime, the critical point, precision on point intervals and around the
minimum, and dense sweeps of onnxruntime's outputs (float32, float16, double; tails where its sigmoid
saturates to 0 or 1) inside the bounds of point intervals and of ranges.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper

from ranum.ops.swish import SILU_ARGMIN
from tests.ops.node_runs import abstract_run, assert_inside, node_cases, onnxruntime_outputs
from tests.ops.test_onnx_node_cases import test_concrete_and_abstract_match_onnx_reference as check_node_case

EPS32 = float(torch.finfo(torch.float32).eps)
_NP = {TensorProto.FLOAT: np.float32, TensorProto.FLOAT16: np.float16, TensorProto.DOUBLE: np.float64}


def _model(alpha: float, elem_type: int, shape: list[int]) -> onnx.ModelProto:
    node = helper.make_node("Swish", ["x"], ["y"], alpha=alpha)
    graph = helper.make_graph([node], "swish", [helper.make_tensor_value_info("x", elem_type, shape)],
                              [helper.make_tensor_value_info("y", elem_type, shape)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 24)])
    model.ir_version = 10
    return model


@pytest.mark.parametrize(("model", "inputs", "expected"), node_cases({"Swish"}))
def test_node_case_agrees_with_onnxruntime(model: onnx.ModelProto, inputs, expected) -> None:
    check_node_case(model, inputs, onnxruntime_outputs(model, inputs))


def test_the_critical_point_zeroes_the_derivative() -> None:
    t = torch.tensor(SILU_ARGMIN, dtype=torch.float64, requires_grad=True)
    (t * torch.sigmoid(t)).backward()
    assert abs(float(t.grad)) < 1e-15


@pytest.mark.parametrize("alpha", [1.0, -0.5, 2.5])
def test_swish_bounds_around_the_extremum_are_tight(alpha: float) -> None:
    model = _model(alpha, TensorProto.FLOAT, [1])
    y = abstract_run(model, {"x": (np.full(1, -4.0 / abs(alpha)), np.full(1, 4.0 / abs(alpha)))}).env["y"]
    g = lambda v: v * torch.sigmoid(torch.tensor(alpha * v, dtype=torch.float64)).item()  # noqa: E731
    extreme = SILU_ARGMIN / alpha * torch.sigmoid(torch.tensor(SILU_ARGMIN)).item()
    real = sorted([extreme, g(-4.0 / abs(alpha)), g(4.0 / abs(alpha))])
    slack = 8 * EPS32 * 4.0 / abs(alpha)
    assert real[0] - slack <= y.min() <= real[0] and real[2] <= y.max() <= real[2] + slack


@pytest.mark.parametrize("elem_type", [TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.DOUBLE])
@pytest.mark.parametrize("alpha", [1.0, 1.702, -0.75, 0.0])
def test_onnxruntime_sweep_lies_inside_point_and_range_bounds(alpha: float, elem_type: int) -> None:
    rng = np.random.default_rng(7)
    dtype = _NP[elem_type]
    top = 6e4 if elem_type == TensorProto.FLOAT16 else 1e30
    x = np.concatenate([rng.uniform(-60, 60, 400), rng.uniform(-3, 3, 400), np.geomspace(1e-6, top, 200),
                        -np.geomspace(1e-6, top, 200)]).astype(dtype)
    model = _model(alpha, elem_type, [x.size])
    expected = onnxruntime_outputs(model, [x])[0]
    wide = x.astype(np.float64)
    assert_inside(abstract_run(model, {"x": (wide, wide)}).env["y"], expected)
    low, high = np.minimum(wide, np.roll(wide, 1)), np.maximum(wide, np.roll(wide, 1))
    assert_inside(abstract_run(model, {"x": (low, high)}).env["y"], expected)
