"""Hand tests of AffineGrid and MaxRoiPool.

AffineGrid: node cases against onnxruntime, float64 thetas, tight bounds for exact thetas, and a single
position with align_corners (onnxruntime +1, the reference -1: the bounds hold both). MaxRoiPool (no
node cases ship): exact rois keep the max of the bound planes exactly, empty bins are exactly 0, values
below -FLT_MAX become -FLT_MAX as in onnxruntime, and roi ranges hold many random rois.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper
from onnx.reference import ReferenceEvaluator

from ranum.detect import find_hazards
from ranum.ops.spatial import AffineGrid, MaxRoiPool
from tests.ops.node_runs import abstract_run, assert_inside, node_cases, onnxruntime_outputs
from tests.ops.test_onnx_node_cases import test_concrete_and_abstract_match_onnx_reference as check_node_case

FLOAT, DOUBLE, I64 = TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.INT64
EPS32 = float(torch.finfo(torch.float32).eps)
FLT_MAX = float(torch.finfo(torch.float32).max)


def _model(op: str, opset: int, inputs: list, inits: list, **attrs) -> onnx.ModelProto:
    node = helper.make_node(op, [i.name for i in inputs] + [i.name for i in inits], ["y"], **attrs)
    graph = helper.make_graph([node], op, inputs, [helper.make_empty_tensor_value_info("y")], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return onnx.shape_inference.infer_shapes(model)


def _grid_model(size: list[int], elem_type: int = FLOAT, corners: int = 0) -> onnx.ModelProto:
    rank = len(size) - 2
    theta = helper.make_tensor_value_info("theta", elem_type, [size[0], rank, rank + 1])
    return _model("AffineGrid", 20, [theta], [helper.make_tensor("size", I64, [len(size)], size)],
                  align_corners=corners)


@pytest.mark.parametrize(("model", "inputs", "expected"), node_cases({"AffineGrid"}))
def test_node_cases_agree_with_onnxruntime(model: onnx.ModelProto, inputs, expected) -> None:
    check_node_case(model, inputs, onnxruntime_outputs(model, inputs))


@pytest.mark.parametrize("corners", [0, 1])
@pytest.mark.parametrize("size", [[2, 1, 3, 4], [1, 2, 2, 3, 2]])
def test_affine_grid_of_double_thetas_agrees_with_onnxruntime_and_is_sound(size: list[int], corners: int) -> None:
    rng = np.random.default_rng(len(size) + corners)
    model = _grid_model(size, DOUBLE, corners)
    rank = len(size) - 2
    low = rng.uniform(-2, 1, (size[0], rank, rank + 1))
    high = low + rng.uniform(0, 1, low.shape)
    grid = abstract_run(model, {"theta": (low, high)}).env["y"]
    for _ in range(10):
        theta = rng.uniform(low, high)
        expected = onnxruntime_outputs(model, [theta])[0]
        assert_inside(grid, expected)
        got = AffineGrid(align_corners=corners).concrete(None, torch.from_numpy(theta), torch.tensor(size))
        np.testing.assert_allclose(got.numpy(), expected, rtol=1e-6, atol=1e-6)


def test_affine_grid_of_an_exact_theta_is_tight() -> None:
    theta = np.array([[[0.9, -0.2, 0.1], [0.3, 1.1, -0.4]]], dtype=np.float32)
    model = _grid_model([1, 1, 5, 6])
    grid = abstract_run(model, {"theta": (theta, theta)}).env["y"]
    lo, hi = (t.numpy() for t in grid.full())
    expected = onnxruntime_outputs(model, [theta])[0]
    assert ((lo <= expected) & (expected <= hi)).all()
    assert (hi - lo).max() <= 32 * EPS32  # base positions within 4 eps, |theta| <= 1.4 per row, three terms


def test_affine_grid_single_position_with_align_corners_holds_both_conventions() -> None:
    model = _grid_model([1, 1, 1, 3], corners=1)
    theta = np.array([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]], dtype=np.float32)
    runtime = onnxruntime_outputs(model, [theta])[0]
    reference = ReferenceEvaluator(model).run(None, {"theta": theta})[0]
    assert runtime[0, 0, 0, 1] == 1.0 and reference[0, 0, 0, 1] == -1.0
    grid = abstract_run(model, {"theta": (theta, theta)}).env["y"]
    assert_inside(grid, runtime)
    assert_inside(grid, reference)


def _roi_model(x_shape: list[int], rois: int, pooled: list[int], scale: float = 1.0) -> onnx.ModelProto:
    inputs = [helper.make_tensor_value_info("x", FLOAT, x_shape), helper.make_tensor_value_info("rois", FLOAT,
                                                                                                [rois, 5])]
    return _model("MaxRoiPool", 1, inputs, [], pooled_shape=pooled, spatial_scale=scale)


def test_max_roi_pool_of_exact_rois_keeps_the_bin_maxima_of_the_bounds() -> None:
    rng = np.random.default_rng(3)
    model = _roi_model([2, 3, 6, 7], 4, [2, 3], 0.5)
    rois = np.array([[0, 1, 1, 9, 11], [1, 3, 0, 5, 13], [1, 20, 20, 30, 30], [0, 5, 5, 1, 1]], dtype=np.float32)
    low = rng.uniform(-3, 1, (2, 3, 6, 7)).astype(np.float32)
    high = (low + rng.uniform(0, 2, low.shape)).astype(np.float32)
    y = abstract_run(model, {"x": (low, high), "rois": (rois, rois)}).env["y"]
    lo, hi = (t.numpy() for t in y.full())
    np.testing.assert_array_equal(lo, onnxruntime_outputs(model, [low, rois])[0])
    np.testing.assert_array_equal(hi, onnxruntime_outputs(model, [high, rois])[0])
    assert not lo[2].any() and not hi[2].any()  # outside the map: every bin is empty


def test_max_roi_pool_floors_at_the_lowest_float_as_onnxruntime() -> None:
    model = _roi_model([1, 1, 4, 4], 1, [2, 2])
    x = np.full((1, 1, 4, 4), -np.inf, dtype=np.float32)
    rois = np.array([[0, 0, 0, 3, 3]], dtype=np.float32)
    expected = onnxruntime_outputs(model, [x, rois])[0]
    assert (expected == -FLT_MAX).all()
    got = MaxRoiPool(pooled_shape=(2, 2)).concrete(None, torch.from_numpy(x), torch.from_numpy(rois))
    np.testing.assert_array_equal(got.numpy(), expected)
    y = abstract_run(model, {"x": (x.astype(np.float64), np.full(x.shape, -1.0)), "rois": (rois, rois)}).env["y"]
    assert (y.min(), y.max()) == (-FLT_MAX, -1.0)


@pytest.mark.parametrize("seed", range(3))
def test_max_roi_pool_roi_ranges_hold_random_rois(seed: int) -> None:
    rng = np.random.default_rng(seed)
    model = _roi_model([2, 2, 9, 8], 3, [3, 2], 0.75)
    low = rng.uniform(-2, 2, (2, 2, 9, 8)).astype(np.float32)
    high = (low + rng.uniform(0, 1, low.shape)).astype(np.float32)
    r_low = np.concatenate([rng.uniform(0, 1.5, (3, 1)), rng.uniform(-3, 10, (3, 4))], 1).astype(np.float32)
    r_high = (r_low + np.concatenate([rng.uniform(0, 0.4, (3, 1)), rng.uniform(0, 4, (3, 4))], 1)).astype(np.float32)
    y = abstract_run(model, {"x": (low, high), "rois": (r_low, r_high)}).env["y"]
    for _ in range(40):
        x = rng.uniform(low, high).astype(np.float32)
        rois = rng.uniform(r_low, r_high).astype(np.float32)
        rois[:, 1:] = np.where(rng.random((3, 4)) < 0.3, np.round(rois[:, 1:] / 0.75 * 2) / 2 * 0.75, rois[:, 1:])
        rois = np.clip(rois, r_low, r_high)
        assert_inside(y, onnxruntime_outputs(model, [x, rois])[0])


def test_affine_grid_reports_an_overflow_of_huge_thetas() -> None:
    big = np.full((1, 2, 3), 2e38)
    run = abstract_run(_grid_model([1, 1, 2, 2]), {"theta": (big, big)})
    assert find_hazards(run)
    theta = big.astype(np.float32)
    assert np.isinf(onnxruntime_outputs(_grid_model([1, 1, 2, 2]), [theta])[0]).any()
