"""Precision tests of the shape family: block structure kept, exact results, hazards, fallbacks."""

from __future__ import annotations

import math

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from ranum.detect import find_hazards
from ranum.domain.interval import Interval
from ranum.errors import UnsupportedOperator
from ranum.graph.loader import load_model
from ranum.graph.model import Node
from ranum.interpret import AbstractRun, run_abstract
from ranum.ops._base import NodeContext
from ranum.ops.shape import Reshape

FLOAT, F16, INT64, BOOL = TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.INT64, TensorProto.BOOL


def blocks(lower, upper, splits, shape, elem_type=FLOAT) -> Interval:
    """An interval from explicit block bounds."""
    dtype = torch.float64 if elem_type in (FLOAT, F16) else torch.int64
    return Interval.create(torch.tensor(lower, dtype=dtype), torch.tensor(upper, dtype=dtype), splits, shape,
                           elem_type)


def analyze(op: str, operands: list, outputs: int = 1, opset: int = 18, **attrs) -> tuple[AbstractRun, list]:
    """Run one node: Interval operands are graph inputs, numpy arrays are initializers, None is absent."""
    names, inputs, inits, initial = [], [], [], {}
    for i, value in enumerate(operands):
        name = f"in{i}" if value is not None else ""
        names.append(name)
        if isinstance(value, Interval):
            inputs.append(helper.make_tensor_value_info(name, value.elem_type, list(value.shape)))
            initial[name] = value
        elif value is not None:
            inits.append(numpy_helper.from_array(np.asarray(value), name))
    outs = [f"out{j}" for j in range(outputs)]
    node = helper.make_node(op, names, outs, **attrs)
    graph = helper.make_graph([node], "g", inputs, [helper.make_empty_tensor_value_info(o) for o in outs],
                              initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    loaded, _ = load_model(onnx.shape_inference.infer_shapes(model))
    for proto in inits:
        initial[proto.name] = Interval.point(torch.from_numpy(numpy_helper.to_array(proto).copy()), proto.data_type)
    run = run_abstract(loaded, initial)
    return run, [run.env[o] for o in outs]


def bounds(iv: Interval) -> tuple[list, list]:
    lo, hi = iv.full()
    return lo.tolist(), hi.tolist()


def i64(*values: int) -> np.ndarray:
    return np.array(values, dtype=np.int64)


# ----------------------------------------------------------------------------- one block stays one block
BIG = (64, 128, 256)


@pytest.mark.parametrize("op, operands, attrs, shape", [
    ("Reshape", [i64(64 * 128, -1)], {}, (8192, 256)),
    ("Flatten", [], {"axis": 2}, (8192, 256)),
    ("Transpose", [], {"perm": [2, 0, 1]}, (256, 64, 128)),
    ("Unsqueeze", [i64(0, -1)], {}, (1, 64, 128, 256, 1)),
    ("Expand", [i64(2, 64, 128, 256)], {}, (2, 64, 128, 256)),
    ("Identity", [], {}, BIG),
    ("Tile", [i64(1, 2, 1)], {}, (64, 256, 256)),
])
def test_one_block_stays_one_block(op, operands, attrs, shape):
    x = Interval.uniform(-1.0, 2.0, BIG, FLOAT)
    _, (out,) = analyze(op, [x, *operands], **attrs)
    assert out.shape == shape and out.numblocks == 1
    assert (out.min(), out.max()) == (-1.0, 2.0)


def test_squeeze_keeps_blocks_of_other_axes():
    x = blocks([[[0.0], [1.0]]], [[[0.5], [2.0]]], ((0,), (0, 2), (0,)), (1, 5, 1))
    _, (out,) = analyze("Squeeze", [x], opset=13)
    assert out.shape == (5,) and out.splits == ((0, 2),)
    assert bounds(out) == ([0.0, 0.0, 1.0, 1.0, 1.0], [0.5, 0.5, 2.0, 2.0, 2.0])


# ----------------------------------------------------------------------------- block-aware movements
def test_reshape_merges_a_split_leading_axis():
    x = blocks([[0.0], [5.0]], [[1.0], [6.0]], ((0, 2), (0,)), (4, 3))
    _, (out,) = analyze("Reshape", [x, i64(12)])
    assert out.splits == ((0, 6),) and out.lower.tolist() == [0.0, 5.0] and out.upper.tolist() == [1.0, 6.0]


def test_reshape_splits_an_axis_at_block_boundaries():
    x = blocks([0.0, 5.0], [1.0, 6.0], ((0, 3),), (6,))
    _, (out,) = analyze("Reshape", [x, i64(2, 3)])
    assert out.splits == ((0, 1), (0,)) and out.numblocks == 2


def test_reshape_misaligned_blocks_is_still_exact():
    x = blocks([0.0, 5.0], [1.0, 6.0], ((0, 2),), (6,))
    _, (out,) = analyze("Reshape", [x, i64(2, 3)])
    assert bounds(out) == ([[0.0, 0.0, 5.0], [5.0, 5.0, 5.0]], [[1.0, 1.0, 6.0], [6.0, 6.0, 6.0]])


def test_transpose_permutes_splits():
    x = blocks([[0.0], [2.0]], [[1.0], [3.0]], ((0, 1), (0,)), (2, 3))
    _, (out,) = analyze("Transpose", [x])
    assert out.splits == ((0,), (0, 1)) and out.shape == (3, 2)


def test_concat_concatenates_splits():
    a = Interval.uniform(0.0, 1.0, (2, 3), FLOAT)
    b = Interval.uniform(5.0, 6.0, (4, 3), FLOAT)
    _, (out,) = analyze("Concat", [a, b], axis=0)
    assert out.splits == ((0, 2), (0,)) and out.lower.flatten().tolist() == [0.0, 5.0]


def test_slice_reverse_reverses_blocks():
    x = blocks([0.0, 5.0], [1.0, 6.0], ((0, 4),), (6,))
    _, (out,) = analyze("Slice", [x, i64(-1), i64(-(2**63)), i64(0), i64(-1)])
    assert out.shape == (6,) and out.splits == ((0, 2),) and out.lower.tolist() == [5.0, 0.0]


def test_slice_empty_and_tile_zero():
    x = Interval.uniform(0.0, 1.0, (4, 4), F16)
    _, (empty,) = analyze("Slice", [x, i64(3), i64(3), i64(0)])
    _, (tiled,) = analyze("Tile", [x, i64(1, 0)])
    assert empty.shape == (0, 4) and tiled.shape == (4, 0)


def test_split_num_outputs_makes_a_smaller_last_chunk():
    x = blocks([0.0, 5.0], [1.0, 6.0], ((0, 4),), (7,))
    _, outs = analyze("Split", [x], outputs=3, num_outputs=3)
    assert [o.shape for o in outs] == [(3,), (3,), (1,)]
    assert bounds(outs[1]) == ([0.0, 5.0, 5.0], [1.0, 6.0, 6.0])


# ----------------------------------------------------------------------------- exact results
def test_shape_and_size_are_exact_for_ranges():
    x = Interval.uniform(-1.0, 1.0, (2, 3, 4), FLOAT)
    _, (shape,) = analyze("Shape", [x], start=-2)
    _, (size,) = analyze("Size", [x])
    assert shape.is_exact and shape.exact_value().tolist() == [3, 4]
    assert size.is_exact and int(size.exact_value()) == 24


def test_constants_are_exact():
    _, (ints,) = analyze("Constant", [], value_ints=[3, -1])
    _, (flt,) = analyze("Constant", [], value_float=0.25)
    _, (filled,) = analyze("ConstantOfShape", [i64(2, 0)], value=helper.make_tensor("v", F16, [1], [1.5]))
    assert ints.exact_value().tolist() == [3, -1] and ints.elem_type == INT64
    assert float(flt.exact_value()) == 0.25 and flt.elem_type == FLOAT
    assert filled.shape == (2, 0) and filled.elem_type == F16


def test_unsqueeze_of_an_exact_scalar():
    _, (out,) = analyze("Unsqueeze", [np.array(1.5, dtype=np.float32), i64(0)], opset=13)
    assert out.shape == (1,) and out.is_exact and out.exact_value().tolist() == [1.5]


def test_integer_range_is_exact():
    _, (out,) = analyze("Range", [np.array(5), np.array(-4), np.array(-2)])
    assert out.is_exact and out.exact_value().tolist() == [5, 3, 1, -1, -3]


def test_float_range_covers_accumulated_rounding_tightly():
    start, limit, delta = np.float32(0.1), np.float32(3000.0), np.float32(0.3)
    _, (out,) = analyze("Range", [np.array(start), np.array(limit), np.array(delta)])
    accumulated = np.cumsum(np.r_[start, np.full(9999, delta, np.float32)], dtype=np.float32)
    assert out.shape == (10000,) and bool(out.contains(torch.from_numpy(accumulated)).all())
    assert float((out.upper - out.lower).max()) < 4.0  # 2 * n * (eps / 2) * |value| ~ 3.6


def test_float_range_with_interval_delta():
    delta = Interval.uniform(0.9, 1.0, (1,), FLOAT)
    _, (out,) = analyze("Range", [np.array(0.0, np.float32), np.array(5.05, np.float32), delta])
    assert out.shape == (6,) and out.upper[-1] >= 5.0 and out.lower[-1] <= 4.5


def test_range_with_a_possibly_zero_delta_reports_the_hazard():
    delta = Interval.uniform(-1, 1, (1,), INT64)
    run, (out,) = analyze("Range", [np.array(0), np.array(10), delta])
    assert out.shape is None and not run.unsupported
    assert [f.hazard_id for f in find_hazards(run)] == ["range-zero-delta"]


# ----------------------------------------------------------------------------- casts
def test_cast_to_float16_overflow_is_reported():
    x = Interval.uniform(-7e4, 100.0, (3,), FLOAT)
    run, (out,) = analyze("Cast", [x], to=F16)
    assert out.min() == -math.inf and out.max() == 100.0  # 100 is a float16: one rounding keeps it
    assert [f.hazard_id for f in find_hazards(run)] == ["overflow"]


def test_cast_truncates_toward_zero_and_saturates_to_the_type_range():
    x = blocks([-2.7, 200.0], [3.9, 300.0], ((0, 2),), (4,))
    _, (out,) = analyze("Cast", [x], to=TensorProto.INT8)
    assert bounds(out) == ([-2, -2, -128, -128], [3, 3, 127, 127])


def test_cast_to_bool_is_precise():
    x = blocks([0.5, -1.0, 0.0], [2.0, 1.0, 0.0], ((0, 1, 2),), (3,))
    _, (out,) = analyze("Cast", [x], to=BOOL)
    assert bounds(out) == ([1, 0, 0], [1, 1, 0])


def test_cast_rounds_only_when_the_target_is_narrower():
    small = Interval.uniform(-2049, 2049, (2,), TensorProto.INT16)  # 2049 is not a float16 (2048, 2050 are)
    _, (exact,) = analyze("Cast", [small], to=FLOAT)
    _, (rounded,) = analyze("Cast", [small], to=F16)
    assert (exact.min(), exact.max()) == (-2049.0, 2049.0)
    assert rounded.min() <= -2050.0 and rounded.max() >= 2050.0
    _, (kept,) = analyze("Cast", [Interval.uniform(-100, 100, (2,), TensorProto.INT16)], to=F16)
    assert (kept.min(), kept.max()) == (-100.0, 100.0)  # float16 values: one rounding keeps them


# ----------------------------------------------------------------------------- dropout
def test_dropout_inference_is_identity():
    x = blocks([0.0, 5.0], [1.0, 6.0], ((0, 4),), (6,))
    _, (out, mask) = analyze("Dropout", [x, np.array(0.3, np.float32), np.array(False)], outputs=2)
    assert out is x and mask.is_exact and mask.min() == 1


def test_dropout_training_scales_and_may_zero():
    x = Interval.uniform(1.0, 2.0, (3,), FLOAT)
    ratio = Interval.uniform(0.2, 0.5, (), FLOAT)
    run, (out, mask) = analyze("Dropout", [x, ratio, np.array(True)], outputs=2)
    assert out.min() == 0.0 and 4.0 < out.max() < 4.0 + 1e-5
    assert (mask.min(), mask.max()) == (0, 1) and not find_hazards(run)


def test_dropout_ratio_one_reports_division_by_zero():
    ratio = Interval.uniform(0.5, 1.0, (), FLOAT)
    run, (out, _) = analyze("Dropout", [Interval.uniform(1.0, 2.0, (3,), FLOAT), ratio, np.array(True)], outputs=2)
    assert out.max() == math.inf and [f.hazard_id for f in find_hazards(run)] == ["division-by-zero"]


# ----------------------------------------------------------------------------- fallbacks
def test_reshape_with_a_range_shape_uses_the_inferred_output_shape():
    ctx = NodeContext(Node("r", "Reshape", "", ("x", "s"), ("y",), {}), 18, (FLOAT, INT64), (FLOAT,), ((3, 2),),
                      1 << 16)
    shape = Interval.uniform(1, 4, (2,), INT64)
    out = Reshape().abstract(ctx, Interval.uniform(0.0, 1.0, (2, 3), FLOAT), shape)
    assert out.shape == (3, 2) and out.numblocks == 1


def test_reshape_with_a_range_shape_rejects_an_inferred_shape_that_does_not_fit():
    # A stale declared shape must not be trusted: (1, 1) cannot hold 6 elements.
    ctx = NodeContext(Node("r", "Reshape", "", ("x", "s"), ("y",), {}), 18, (FLOAT, INT64), (FLOAT,), ((1, 1),),
                      1 << 16)
    shape = Interval.uniform(1, 4, (2,), INT64)
    with pytest.raises(UnsupportedOperator, match="does not fit"):
        Reshape().abstract(ctx, Interval.uniform(0.0, 1.0, (2, 3), FLOAT), shape)


def test_slice_with_range_starts_keeps_the_hull_of_its_data_in_an_unknown_shape():
    """Its length is decided at run time; every element it keeps is one of the data's."""
    starts = Interval.uniform(0, 1, (1,), INT64)
    run, (out,) = analyze("Slice", [Interval.uniform(0.25, 1.0, (4,), FLOAT), starts, i64(3)])
    assert not run.unsupported and not run.not_analysed
    assert out.shape is None and (float(out.lower), float(out.upper)) == (0.25, 1.0)


@pytest.mark.parametrize(("opset", "stash_type", "widest"), [(27, 1, 3 * 2.0**-10), (27, 0, 0.2)])
def test_float16_range_sums_in_float32_from_opset_27(opset: int, stash_type: int, widest: float) -> None:
    """start + i * delta accumulated in float32 and rounded once (opset 27's default) stays within an ulp or two
    of float16 at every element; a float16 sum (stash_type 0) drifts by many. (Range takes float16 from opset 27
    on: before, such a model is refused.)"""
    attrs = {"stash_type": stash_type} if opset >= 27 else {}
    inits = [numpy_helper.from_array(np.array(v, np.float16), n) for v, n in ((1000.3, "s"), (1300, "l"), (0.7, "d"))]
    graph = helper.make_graph([helper.make_node("Range", ["s", "l", "d"], ["y"], **attrs)], "range", [],
                              [helper.make_tensor_value_info("y", F16, None)], inits)
    graph_, _ = load_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)]))
    out = run_abstract(graph_, {n: Interval.point(torch.from_numpy(numpy_helper.to_array(p).copy()), F16)
                                for n, p in graph_.initializers.items()}).env["y"]
    lo, hi = (t.numpy() for t in out.full())
    exact = float(np.float16(1000.3)) + np.arange(lo.shape[0]) * float(np.float16(0.7))
    assert ((lo <= exact) & (exact <= hi)).all()
    relative = float(((hi - lo) / exact).max())
    assert (relative <= widest) if stash_type == 1 and opset >= 27 else (relative >= widest)
