"""Precision tests of the indexing family: exact gathers stay block-wise, index intervals give
the hull over exactly the allowed positions, resizing keeps point data tight."""

from __future__ import annotations

import numpy as np
import torch
from onnx import TensorProto, numpy_helper

from ranum.domain.interval import Interval
from ranum.graph.loader import load_model
from ranum.interpret import run_abstract
from tests.ops.harness import OpCase, Operand, build_model

FLOAT, I64 = TensorProto.FLOAT, TensorProto.INT64


def _run(case: OpCase, **free: Interval):
    """Abstract run of a one-node case with the given intervals for its free operands (in0, in1, ...)."""
    graph, _ = load_model(build_model(case))
    initial = dict(free)
    for name, proto in graph.initializers.items():
        initial[name] = Interval.point(torch.from_numpy(numpy_helper.to_array(proto).copy()), proto.data_type)
    return run_abstract(graph, initial)


def _rows(values: list[float], width: int) -> Interval:
    """A (len(values), width) float interval whose row i is the point values[i]."""
    data = torch.tensor(values, dtype=torch.float64).unsqueeze(1).expand(len(values), width)
    return Interval.from_full(data, data, FLOAT)


def test_gather_embedding_stays_one_block() -> None:
    vocab, dim = 50_000, 64
    tokens = [3, 49_999, -1, 0, 17, 17]
    case = OpCase("Gather", (Operand((vocab, dim)), Operand((2, 3), I64, value=tokens)))
    table = Interval.uniform(-0.5, 0.25, (vocab, dim), FLOAT)
    out = _run(case, in0=table).env["out0"]
    assert out.shape == (2, 3, dim) and out.numblocks == 1
    assert (out.min(), out.max()) == (-0.5, 0.25)


def test_gather_exact_indices_are_exact() -> None:
    case = OpCase("Gather", (Operand((4, 2)), Operand((3,), I64, value=[2, -1, 0])))
    out = _run(case, in0=_rows([1.0, 2.0, 3.0, 4.0], 2)).env["out0"]
    lo, hi = out.full()
    expected = torch.tensor([3.0, 4.0, 1.0]).unsqueeze(1).expand(3, 2).double()
    assert torch.equal(lo, expected) and torch.equal(hi, expected)


def test_gather_index_interval_hulls_allowed_positions_only() -> None:
    case = OpCase("Gather", (Operand((5, 2)), Operand((2,), I64, -3, 3)))
    index = Interval.from_full(torch.tensor([1, -2]), torch.tensor([2, 0]), I64)
    out = _run(case, in0=_rows([0.0, 10.0, 20.0, 30.0, 40.0], 2), in1=index).env["out0"]
    lo, hi = out.full()
    assert lo[0].tolist() == [10.0, 10.0] and hi[0].tolist() == [20.0, 20.0]
    # [-2, 0] reaches positions 3, 4 and 0, not 1 or 2; the hull is [0, 40], bounded by those three only
    assert lo[1].tolist() == [0.0, 0.0] and hi[1].tolist() == [40.0, 40.0]
    index = Interval.from_full(torch.tensor([-3, -2]), torch.tensor([-2, -2]), I64)
    lo, hi = _run(case, in0=_rows([0.0, 10.0, 20.0, 30.0, 40.0], 2), in1=index).env["out0"].full()
    assert lo[:, 0].tolist() == [20.0, 30.0] and hi[:, 0].tolist() == [30.0, 30.0]


def test_gather_from_a_point_table_hulls_each_index_range_exactly() -> None:
    """An exact float32 table (a point: min and max taken in one pass) against brute force."""
    rng = np.random.default_rng(0)
    table = torch.from_numpy(rng.standard_normal((40, 3)).astype(np.float32))
    case = OpCase("Gather", (Operand((40, 3)), Operand((4,), I64, -40, 39)))
    low = torch.tensor([0, 5, -10, 39])
    high = torch.tensor([39, 9, -1, 39])
    out = _run(case, in0=Interval.point(table, FLOAT), in1=Interval.from_full(low, high, I64)).env["out0"]
    lo, hi = out.full()
    for k, (a, b) in enumerate(zip(low.tolist(), high.tolist())):
        rows = table[[i % 40 for i in range(a, b + 1)]].double()
        assert torch.equal(lo[k], rows.amin(0)) and torch.equal(hi[k], rows.amax(0))


def test_gather_from_a_long_point_table_folds_rows_exactly() -> None:
    """A table of thousands of rows (a vocabulary) is reduced slice by slice: same hull as brute
    force, on either axis, with a NaN row propagating as it does through amin/amax."""
    from ranum.ops._range_hull import min_max_along

    rng = np.random.default_rng(1)
    table = torch.from_numpy(rng.standard_normal((2500, 3)).astype(np.float32))
    case = OpCase("Gather", (Operand((2500, 3)), Operand((2,), I64, 0, 2499)))
    low, high = torch.tensor([0, 700]), torch.tensor([2499, 1999])
    out = _run(case, in0=Interval.point(table, FLOAT), in1=Interval.from_full(low, high, I64)).env["out0"]
    lo, hi = out.full()
    for k, (a, b) in enumerate(zip(low.tolist(), high.tolist())):
        rows = table[a:b + 1].double()
        assert torch.equal(lo[k], rows.amin(0)) and torch.equal(hi[k], rows.amax(0))
    wide = torch.from_numpy(rng.standard_normal((2, 1500, 4)).astype(np.float32))
    wide[1, 1300, 2] = float("nan")
    for axis in range(3):
        got = min_max_along(wide, axis)
        expected = (wide.amin(axis, keepdim=True), wide.amax(axis, keepdim=True))
        assert all(torch.equal(g.isnan(), e.isnan()) and torch.equal(g.nan_to_num(), e.nan_to_num())
                   for g, e in zip(got, expected))


def test_gather_elements_index_interval() -> None:
    case = OpCase("GatherElements", (Operand((4, 1)), Operand((1, 1), I64, 0, 3)))
    index = Interval.from_full(torch.tensor([[1]]), torch.tensor([[2]]), I64)
    lo, hi = _run(case, in0=_rows([5.0, -1.0, 3.0, 9.0], 1), in1=index).env["out0"].full()
    assert (lo.item(), hi.item()) == (-1.0, 3.0)


def test_onehot_index_interval_is_off_outside_the_range() -> None:
    case = OpCase("OneHot", (Operand((1,), I64, 0, 5), Operand((), I64, value=[6]), Operand((2,), value=[0.0, 1.0])))
    index = Interval.from_full(torch.tensor([2]), torch.tensor([3]), I64)
    lo, hi = _run(case, in0=index).env["out0"].full()
    assert lo.tolist() == [[0.0] * 6] and hi.tolist() == [[0.0, 0.0, 1.0, 1.0, 0.0, 0.0]]


def test_pad_constant_interval_keeps_blocks() -> None:
    case = OpCase("Pad", (Operand((30, 40)), Operand((4,), I64, value=[1, 0, 2, 0]), Operand((1,), low=0, high=1)))
    out = _run(case, in0=Interval.uniform(2.0, 3.0, (30, 40), FLOAT),
               in2=Interval.uniform(-1.0, -1.0, (1,), FLOAT)).env["out0"]
    assert out.shape == (33, 40) and out.numblocks == 3
    lo, hi = out.full()
    assert lo[0, 0] == hi[0, 0] == -1.0 and lo[5, 5] == 2.0 and hi[32, 0] == -1.0


def test_scatter_add_duplicates_sum_every_update() -> None:
    case = OpCase("ScatterND", (Operand((2, 1)), Operand((3, 1), I64, value=[0, 0, 0]), Operand((3, 1))),
                  attrs={"reduction": "add"})
    out = _run(case, in0=Interval.uniform(1.0, 1.0, (2, 1), FLOAT),
               in2=Interval.uniform(1.0, 2.0, (3, 1), FLOAT)).env["out0"]
    lo, hi = out.full()
    assert 3.9999 < lo[0, 0] <= 4.0 and 7.0 <= hi[0, 0] < 7.0001
    assert lo[1, 0] == hi[1, 0] == 1.0


def test_resize_nearest_floor_upsampling_is_exact() -> None:
    case = OpCase("Resize", (Operand((1, 1, 3)), None, Operand((3,), value=[1.0, 1.0, 2.0])),
                  attrs={"coordinate_transformation_mode": "asymmetric", "nearest_mode": "floor"})
    data = torch.tensor([[[1.0, 5.0, -2.0]]], dtype=torch.float64)
    lo, hi = _run(case, in0=Interval.from_full(data, data, FLOAT)).env["out0"].full()
    expected = [1.0, 1.0, 5.0, 5.0, -2.0, -2.0]
    assert lo.flatten().tolist() == expected and hi.flatten().tolist() == expected


def test_resize_linear_and_cubic_stay_near_constant_data() -> None:
    for mode in ("linear", "cubic"):
        case = OpCase("Resize", (Operand((1, 1, 4, 4)), None, Operand((4,), value=[1.0, 1.0, 2.0, 2.0])),
                      attrs={"mode": mode})
        out = _run(case, in0=Interval.uniform(3.0, 3.0, (1, 1, 4, 4), FLOAT)).env["out0"]
        tolerance = 64 * float(np.finfo(np.float32).eps) * 3.0
        assert out.shape == (1, 1, 8, 8)
        assert 3.0 - tolerance < out.min() <= 3.0 <= out.max() < 3.0 + tolerance


def test_nonzero_of_an_interval_has_an_unknown_count_of_valid_indices() -> None:
    case = OpCase("NonZero", (Operand((3,)),))
    run = _run(case, in0=Interval.uniform(-1.0, 1.0, (3,), FLOAT))
    out = next(iv for name, iv in run.env.items() if name not in ("in0",) and iv.shape is None)
    assert not run.unsupported and (int(out.lower), int(out.upper)) == (0, 2)


def test_pad_keeps_blocks_merged_and_matches_the_per_position_result() -> None:
    """Padded positions that read the same block (or the fill) form one block: a padded (96, 112, 112)
    tensor of few blocks stays a few blocks, with the bounds the per-position padding gives."""
    from ranum.ops.indexing import Pad

    x = Interval.create(torch.tensor([[[-1.0, 0.5], [2.0, 3.0]]]), torch.tensor([[[1.0, 0.75], [2.5, 4.0]]]),
                        ((0,), (0, 40), (0, 100)), (96, 112, 112), TensorProto.FLOAT)
    pads = torch.tensor([0, 1, 2, 0, 3, 1])
    for mode in ("constant", "edge", "reflect", "wrap"):
        rule = Pad(mode=mode)
        plan = rule._plan(x.shape, pads, None)
        merged = [rule._apply(t, x.splits, plan, torch.tensor(7.0), runs=True) for t in (x.lower, x.upper)]
        each = [rule._apply(t, x.splits, plan, torch.tensor(7.0)) for t in (x.lower, x.upper)]
        shape = (96, 116, 115)
        assert merged[0][0].numel() <= 6 * 6, mode
        got = Interval(merged[0][0], merged[1][0], merged[0][1], shape, TensorProto.FLOAT)
        want = Interval(each[0][0], each[1][0], each[0][1], shape, TensorProto.FLOAT)
        for g, w in zip(got.full(), want.full()):
            assert torch.equal(g, w), mode
