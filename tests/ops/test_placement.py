"""Hand tests of MaxUnpool, Col2Im and CenterCropPad.

Node cases of the onnx wheel against onnxruntime (MaxUnpool's ship at opset 22, outside the generic
window; with output_shape, onnxruntime and the ONNX reference place values differently and ranum
follows onnxruntime), the range painting behind index ranges, MaxUnpool with output_shape (which the
one-node harness cannot build), and precision: exact indices, non-overlapping blocks and crops keep
bounds exactly; overlapping blocks widen only by the float error of their sums.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper

from ranum.ops.placement import paint_range_min
from tests.ops.node_runs import abstract_run, assert_inside, node_cases, onnxruntime_outputs
from tests.ops.test_onnx_node_cases import test_concrete_and_abstract_match_onnx_reference as check_node_case

FLOAT, I64 = TensorProto.FLOAT, TensorProto.INT64
EPS32 = float(torch.finfo(torch.float32).eps)


@pytest.mark.parametrize(("model", "inputs", "expected"), node_cases({"MaxUnpool", "Col2Im", "CenterCropPad"}))
def test_node_cases_agree_with_onnxruntime(model: onnx.ModelProto, inputs, expected) -> None:
    check_node_case(model, inputs, onnxruntime_outputs(model, inputs))


def test_max_unpool_with_output_shape_follows_onnxruntime_not_the_reference() -> None:
    """onnxruntime indexes the flat output of output_shape; the reference, the inferred shape padded."""
    (model, inputs, expected), = [p.values for p in node_cases({"MaxUnpool"}) if "with_output" in p.id]
    runtime = onnxruntime_outputs(model, inputs)[0]
    assert not np.array_equal(runtime, expected[0])
    check_node_case(model, inputs, [runtime])


def test_paint_range_min_matches_brute_force() -> None:
    rng = np.random.default_rng(0)
    for size in (1, 7, 64, 100):
        starts = rng.integers(0, size, 40)
        ends = np.minimum(starts + rng.integers(0, size, 40), size - 1)
        values = rng.normal(size=40)
        got = paint_range_min(torch.from_numpy(values), torch.from_numpy(starts), torch.from_numpy(ends), size)
        want = np.full(size, np.inf)
        for v, a, b in zip(values, starts, ends):
            want[a:b + 1] = np.minimum(want[a:b + 1], v)
        np.testing.assert_array_equal(got.numpy(), want)


def _unpool_model(x_shape, out_shape, kernel, with_shape: bool = False) -> onnx.ModelProto:
    names = ["x", "i"] + (["s"] if with_shape else [])
    node = helper.make_node("MaxUnpool", names, ["y"], kernel_shape=kernel, strides=kernel)
    inputs = [helper.make_tensor_value_info("x", FLOAT, x_shape), helper.make_tensor_value_info("i", I64, x_shape)]
    inits = [helper.make_tensor("s", I64, [len(out_shape)], out_shape)] if with_shape else []
    graph = helper.make_graph([node], "unpool", inputs, [helper.make_tensor_value_info("y", FLOAT, out_shape)],
                              initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)])
    model.ir_version = 8
    return model


@pytest.mark.parametrize("seed", range(4))
def test_max_unpool_with_output_shape_agrees_with_onnxruntime_and_is_sound(seed: int) -> None:
    rng = np.random.default_rng(seed)
    model = _unpool_model([1, 2, 2, 2], [1, 2, 5, 7], [2, 2], with_shape=True)
    low, high = (rng.uniform(a, b, (1, 2, 2, 2)).astype(np.float32).astype(np.float64) for a, b in ((-2, 0), (0, 2)))
    first = rng.integers(0, 60, (1, 2, 2, 2))
    last = np.minimum(first + rng.integers(0, 10, first.shape), 69)
    y = abstract_run(model, {"x": (low, high), "i": (first, last)}).env["y"]
    for _ in range(20):
        x = rng.uniform(low, high).astype(np.float32)
        index = rng.integers(first, last + 1)
        assert_inside(y, onnxruntime_outputs(model, [x, index])[0])
    exact = abstract_run(model, {"x": (low, high), "i": (first, first)}).env["y"]
    assert_inside(exact, onnxruntime_outputs(model, [low.astype(np.float32), first])[0])


def test_max_unpool_exact_indices_place_bounds_exactly() -> None:
    model = _unpool_model([1, 1, 2, 2], [1, 1, 4, 4], [2, 2])
    index = np.array([5, 7, 13, 13]).reshape(1, 1, 2, 2)  # the last write to 13 wins
    low, high = np.array([1.0, -2.0, 3.0, 4.0]).reshape(1, 1, 2, 2), np.array([1.5, -1.0, 3.5, 6.0]).reshape(1, 1, 2, 2)
    lo, hi = (t.numpy().reshape(-1) for t in abstract_run(model, {"x": (low, high), "i": (index, index)})
              .env["y"].full())
    assert (lo[5], hi[5], lo[7], hi[7], lo[13], hi[13]) == (1.0, 1.5, -2.0, -1.0, 4.0, 6.0)
    others = np.setdiff1d(np.arange(16), [5, 7, 13])
    assert not lo[others].any() and not hi[others].any()


def test_max_unpool_unknown_indices_give_the_hull_with_zero_unless_surely_written() -> None:
    model = _unpool_model([1, 1, 2, 2], [1, 1, 4, 4], [2, 2])
    low, high = np.full((1, 1, 2, 2), 1.0), np.full((1, 1, 2, 2), 2.0)
    first, last = np.array([0, 4, 9, 9]).reshape(1, 1, 2, 2), np.array([3, 8, 9, 15]).reshape(1, 1, 2, 2)
    lo, hi = (t.numpy().reshape(-1) for t in abstract_run(model, {"x": (low, high), "i": (first, last)})
              .env["y"].full())
    assert (lo[9], hi[9]) == (1.0, 2.0)  # element 2 writes position 9 for sure
    assert (lo[0], hi[0], lo[15], hi[15]) == (0.0, 2.0, 0.0, 2.0)
    top = np.full((1, 1, 2, 2), np.iinfo(np.int64).max)
    y = abstract_run(model, {"x": (low, high), "i": (-top, top)}).env["y"]
    assert (y.min(), y.max()) == (0.0, 2.0)


def _col2im_model(cols: list[int], image: list[int], block: list[int], **attrs) -> onnx.ModelProto:
    node = helper.make_node("Col2Im", ["x", "s", "b"], ["y"], **attrs)
    inits = [helper.make_tensor("s", I64, [len(image)], image), helper.make_tensor("b", I64, [len(block)], block)]
    graph = helper.make_graph([node], "fold", [helper.make_tensor_value_info("x", FLOAT, cols)],
                              [helper.make_empty_tensor_value_info("y")], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    return onnx.shape_inference.infer_shapes(model)


def test_col2im_without_overlap_keeps_bounds_exactly() -> None:
    model = _col2im_model([1, 4, 4], [4, 4], [2, 2], strides=[2, 2])
    rng = np.random.default_rng(1)
    low = rng.uniform(-1, 1, (1, 4, 4)).astype(np.float32).astype(np.float64)
    high = (low + rng.uniform(0, 1, low.shape)).astype(np.float32).astype(np.float64)
    y = abstract_run(model, {"x": (low, high)}).env["y"]
    lo, hi = (t.numpy() for t in y.full())
    np.testing.assert_array_equal(lo, onnxruntime_outputs(model, [low.astype(np.float32)])[0])
    np.testing.assert_array_equal(hi, onnxruntime_outputs(model, [high.astype(np.float32)])[0])


def test_col2im_overlap_widens_by_the_float_error_of_the_sum_only() -> None:
    model = _col2im_model([1, 9, 9], [5, 5], [3, 3])
    y = abstract_run(model, {"x": (np.full((1, 9, 9), 1.0), np.full((1, 9, 9), 1.0))}).env["y"]
    lo, hi = (t.numpy()[0, 0] for t in y.full())
    counts = onnxruntime_outputs(model, [np.ones((1, 9, 9), np.float32)])[0][0, 0]
    assert (lo <= counts).all() and (counts <= hi).all()
    assert (hi - lo).max() <= 2 * 9 * 9 * 2 * EPS32  # at most 9 terms of magnitude 1


def test_col2im_rejects_dilations_off_two_dimensions() -> None:
    model = _col2im_model([1, 3, 5], [9], [3], dilations=[2])
    run = abstract_run(model, {"x": (np.zeros((1, 3, 5)), np.ones((1, 3, 5)))}, supported=False)
    assert any("dilations" in reason for reason in run.unsupported.values())


def test_center_crop_pad_moves_bounds_and_pads_exact_zeros() -> None:
    node = helper.make_node("CenterCropPad", ["x", "s"], ["y"])
    graph = helper.make_graph([node], "ccp", [helper.make_tensor_value_info("x", FLOAT, [3, 4])],
                              [helper.make_empty_tensor_value_info("y")],
                              initializer=[helper.make_tensor("s", I64, [2], [5, 2])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    model = onnx.shape_inference.infer_shapes(model)
    low = np.arange(12, dtype=np.float64).reshape(3, 4)
    lo, hi = (t.numpy() for t in abstract_run(model, {"x": (low, low + 0.5)}).env["y"].full())
    np.testing.assert_array_equal(lo, onnxruntime_outputs(model, [low.astype(np.float32)])[0])
    np.testing.assert_array_equal(hi, onnxruntime_outputs(model, [(low + 0.5).astype(np.float32)])[0])
    assert not lo[0].any() and not hi[4].any()
