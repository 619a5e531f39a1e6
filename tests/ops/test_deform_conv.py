"""Hand tests of DeformConv (its node cases ship at opset 22, outside the generic window).

Node cases against onnxruntime; zero offsets give Conv's bounds; exact fractional offsets keep the
bounds of a monotone contraction within float error of onnxruntime's outputs at the input's corners;
offset ranges that stay inside the plane do not join 0; an infinite value under a zero tap weight gives
NaN as in onnxruntime.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper

from ranum.ops.deform_conv import DeformConv
from tests.ops.node_runs import abstract_run, assert_inside, node_cases, onnxruntime_outputs
from tests.ops.test_onnx_node_cases import test_concrete_and_abstract_match_onnx_reference as check_node_case

FLOAT = TensorProto.FLOAT
EPS32 = float(torch.finfo(torch.float32).eps)


@pytest.mark.parametrize(("model", "inputs", "expected"), node_cases({"DeformConv"}))
def test_node_cases_agree_with_onnxruntime(model: onnx.ModelProto, inputs, expected) -> None:
    check_node_case(model, inputs, onnxruntime_outputs(model, inputs))


def _model(op: str, shapes: dict[str, list[int]], inits: list, **attrs) -> onnx.ModelProto:
    names = ["x", "w", "offset"] if op == "DeformConv" else ["x", "w"]
    node = helper.make_node(op, names, ["y"], **attrs)
    inputs = [helper.make_tensor_value_info(n, FLOAT, shapes[n]) for n in names if n in shapes]
    graph = helper.make_graph([node], op, inputs, [helper.make_empty_tensor_value_info("y")], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])
    model.ir_version = 8
    return onnx.shape_inference.infer_shapes(model)


def _weights(shape: tuple[int, ...], low: float, seed: int) -> onnx.TensorProto:
    values = np.random.default_rng(seed).uniform(low, 1.0, shape).astype(np.float32)
    return onnx.numpy_helper.from_array(values, "w")


def test_zero_offsets_give_the_bounds_of_conv() -> None:
    w = _weights((3, 2, 3, 3), -1.0, 0)
    x_box = (np.full((1, 2, 5, 5), -1.0), np.full((1, 2, 5, 5), 2.0))
    zero = np.zeros((1, 18, 5, 5))
    deform = _model("DeformConv", {"x": [1, 2, 5, 5], "offset": [1, 18, 5, 5]}, [w], pads=[1, 1, 1, 1])
    conv = _model("Conv", {"x": [1, 2, 5, 5]}, [w], pads=[1, 1, 1, 1])
    got = abstract_run(deform, {"x": x_box, "offset": (zero, zero)}).env["y"]
    want = abstract_run(conv, {"x": x_box}).env["y"]
    for a, b in zip(got.full(), want.full()):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-12)


def test_exact_offsets_keep_a_monotone_contraction_tight() -> None:
    rng = np.random.default_rng(4)
    w = _weights((2, 3, 2, 2), 0.0, 1)  # non-negative weights: the output grows with every input
    offsets = rng.uniform(-1.2, 1.2, (1, 8, 4, 4)).astype(np.float32)
    model = _model("DeformConv", {"x": [1, 3, 5, 5], "offset": [1, 8, 4, 4]}, [w])
    low = rng.uniform(-2, 1, (1, 3, 5, 5)).astype(np.float32)
    high = (low + rng.uniform(0, 1, low.shape)).astype(np.float32)
    y = abstract_run(model, {"x": (low, high), "offset": (offsets, offsets)}).env["y"]
    lo, hi = (t.numpy() for t in y.full())
    at_low = onnxruntime_outputs(model, [low, offsets])[0]
    at_high = onnxruntime_outputs(model, [high, offsets])[0]
    slack = 64 * EPS32 * 12 * 3  # twelve terms, samples of magnitude <= 3
    assert (lo <= at_low).all() and (at_low - lo).max() <= slack
    assert (hi >= at_high).all() and (hi - at_high).max() <= slack


def test_offset_ranges_inside_the_plane_do_not_join_zero() -> None:
    w = onnx.numpy_helper.from_array(np.ones((1, 1, 1, 1), np.float32), "w")
    model = _model("DeformConv", {"x": [1, 1, 5, 5], "offset": [1, 2, 5, 5]}, [w])
    rng = np.random.default_rng(5)
    box = {"x": (np.full((1, 1, 5, 5), 1.0), np.full((1, 1, 5, 5), 2.0)),
           "offset": (np.zeros((1, 2, 5, 5)), np.full((1, 2, 5, 5), 0.3))}
    y = abstract_run(model, box).env["y"]
    lo, hi = (t.numpy()[0, 0] for t in y.full())
    assert lo[:4, :4].min() >= 1.0 - 64 * EPS32 and hi.max() <= 2.0 + 128 * EPS32
    assert lo[4].max() <= 0.0  # the last row may read past the plane
    for _ in range(10):
        x = rng.uniform(1.0, 2.0, (1, 1, 5, 5)).astype(np.float32)
        offset = rng.uniform(0.0, 0.3, (1, 2, 5, 5)).astype(np.float32)
        assert_inside(y, onnxruntime_outputs(model, [x, offset])[0])


def test_an_infinite_value_under_a_zero_weight_gives_nan_as_in_onnxruntime() -> None:
    w = onnx.numpy_helper.from_array(np.ones((1, 1, 1, 1), np.float32), "w")
    model = _model("DeformConv", {"x": [1, 1, 3, 3], "offset": [1, 2, 3, 3]}, [w])
    x = np.ones((1, 1, 3, 3), np.float32)
    x[0, 0, 0, 1] = np.inf
    offset = np.zeros((1, 2, 3, 3), np.float32)
    expected = onnxruntime_outputs(model, [x, offset])[0]
    got = DeformConv().concrete(None, torch.from_numpy(x), torch.from_numpy(np.ones((1, 1, 1, 1), np.float32)),
                                torch.from_numpy(offset))
    np.testing.assert_array_equal(np.isnan(got.numpy()), np.isnan(expected))
    np.testing.assert_allclose(got.numpy(), expected, equal_nan=True)
