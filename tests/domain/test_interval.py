"""The block interval domain: construction, merging, alignment, rounding, infinities."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto

from ranum.domain import blocks
from ranum.domain.arith import add, mul, reciprocal, square, sub, with_accumulation_error
from ranum.domain.interval import Interval, elementwise

F32 = TensorProto.FLOAT


def test_equal_neighbours_merge_into_blocks() -> None:
    lo = torch.tensor([[0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 1.0, 1.0]], dtype=torch.float64)
    iv = Interval.from_full(lo, lo + 1, F32)
    assert iv.numblocks == 2
    assert iv.splits == ((0,), (0, 2))
    full_lo, full_hi = iv.full()
    assert torch.equal(full_lo, lo) and torch.equal(full_hi, lo + 1)


def test_uniform_interval_is_one_block_whatever_its_size() -> None:
    iv = Interval.uniform(-1.0, 1.0, (512, 768), F32)
    assert iv.numblocks == 1 and iv.shape == (512, 768)


def test_broadcast_keeps_one_block_and_aligns() -> None:
    row = Interval.from_full(torch.tensor([1.0, 2.0, 3.0]).double(), torch.tensor([1.0, 2.0, 3.0]).double(), F32)
    big = Interval.uniform(0.0, 1.0, (4, 3), F32)
    out = elementwise(add, [big, row], F32)
    lo, hi = out.full()
    assert out.shape == (4, 3) and out.numblocks == 3
    assert torch.equal(lo[2], torch.tensor([1.0, 2.0, 3.0]).double())
    assert torch.equal(hi[0], torch.tensor([2.0, 3.0, 4.0]).double())


def test_infinite_bounds_never_become_nan() -> None:
    inf = math.inf
    a = Interval.uniform(-inf, inf, (2,), F32)
    b = Interval.uniform(inf, inf, (2,), F32)
    for fn in (add, sub, mul):
        out = elementwise(fn, [a, b], F32)
        assert not torch.isnan(out.lower).any() and not torch.isnan(out.upper).any()
    zero = Interval.uniform(0.0, 0.0, (2,), F32)
    out = elementwise(mul, [zero, b], F32)
    assert not torch.isnan(out.lower).any()


def test_reciprocal_of_interval_with_zero_is_unbounded() -> None:
    lo, hi = reciprocal(torch.tensor([-1.0, 0.5]).double(), torch.tensor([1.0, 2.0]).double())
    assert lo[0] == -math.inf and hi[0] == math.inf
    assert lo[1] == 0.5 and hi[1] == 2.0


def test_square_is_non_negative() -> None:
    lo, hi = square(torch.tensor([-3.0]).double(), torch.tensor([2.0]).double())
    assert lo.item() == 0.0 and hi.item() == 9.0


def test_widening_preserves_sign_and_saturates() -> None:
    iv = Interval.uniform(0.0, 1.0, (3,), F32).widened(4)
    assert iv.min() == 0.0 and iv.max() > 1.0
    big = Interval.uniform(1.0, 3.5e38, (3,), F32).widened(1)
    assert big.max() == math.inf
    fp16 = Interval.uniform(1.0, 70000.0, (3,), TensorProto.FLOAT16).widened(1)
    assert fp16.max() == math.inf


def test_accumulation_error_keeps_sums_of_non_negative_terms_non_negative() -> None:
    lo, hi = with_accumulation_error(torch.tensor([0.0, -1.0]).double(), torch.tensor([4.0, 1.0]).double(),
                                     torch.tensor([4.0, 5.0]).double(), 768, F32,
                                     nonneg_terms=torch.tensor([True, False]))
    assert lo[0] == 0.0 and hi[0] > 4.0
    assert lo[1] < -1.0 and hi[1] > 1.0


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**31 - 1), st.integers(1, 12))
def test_coarsening_is_sound_and_respects_budget(seed: int, budget: int) -> None:
    rng = np.random.default_rng(seed)
    shape = (int(rng.integers(1, 7)), int(rng.integers(1, 9)))
    lo = torch.from_numpy(rng.uniform(-5, 5, size=shape))
    hi = lo + torch.from_numpy(rng.uniform(0, 3, size=shape))
    iv = Interval.from_full(lo, hi, F32, budget=budget)
    assert iv.numblocks <= max(budget, 1) or iv.numblocks == 1
    full_lo, full_hi = iv.full()
    assert bool((full_lo <= lo).all()) and bool((full_hi >= hi).all())


def test_exact_values_survive_round_trip() -> None:
    value = torch.arange(12, dtype=torch.int64).reshape(3, 4)
    iv = Interval.point(value, TensorProto.INT64)
    assert iv.is_exact and torch.equal(iv.exact_value(), value)


def test_join_covers_both() -> None:
    a = Interval.uniform(0.0, 1.0, (2, 2), F32)
    b = Interval.from_full(torch.tensor([[5.0, -1.0], [0.5, 0.5]]).double(),
                           torch.tensor([[6.0, 0.0], [0.5, 0.5]]).double(), F32)
    joined = a.join(b)
    lo, hi = joined.full()
    assert lo[0, 0] == 0.0 and hi[0, 0] == 6.0 and lo[0, 1] == -1.0


def test_blocks_regrid_and_expand_agree() -> None:
    values = torch.tensor([1.0, 2.0]).double()
    refined = blocks.regrid(values, 0, (0, 3), (0, 1, 3, 4))
    assert refined.tolist() == [1.0, 1.0, 2.0, 2.0]
    assert blocks.expand(values, ((0, 3),), (5,)).tolist() == [1.0, 1.0, 1.0, 2.0, 2.0]


def test_interpreter_respects_block_budget() -> None:
    import onnx

    import ranum
    from ranum.config import AnalysisConfig

    model = onnx.parser.parse_model("""
    <ir_version: 8, opset_import: ["" : 17]>
    g (float[64,64] x, float[64,64] y) => (float[64,64] z) { z = Add(x, y) }
    """)
    rng = np.random.default_rng(0)
    lo = torch.from_numpy(rng.uniform(-1, 0, (64, 64)))
    from ranum.graph.loader import load_model
    from ranum.interpret import run_abstract

    graph, _ = load_model(model)
    start = {"x": Interval.from_full(lo, lo + 1, F32), "y": Interval.uniform(0.0, 1.0, (64, 64), F32)}
    run = run_abstract(graph, start, AnalysisConfig(block_budget=16))
    out = run.env["z"]
    assert out.numblocks <= 16
    full_lo, full_hi = out.full()
    # every float32 result: the float32 sums lie between the roundings of the real extremes
    assert bool((full_lo <= lo.float().double()).all()) and bool((full_hi >= (lo + 2).float().double()).all())
    assert ranum.AnalysisConfig().block_budget >= 1024


def test_a_float32_point_keeps_its_storage_and_reads_as_float64() -> None:
    value = torch.tensor([[1.5, -2.0], [1.5, -2.0]], dtype=torch.float32)
    iv = Interval.point(value, TensorProto.FLOAT)
    assert iv.is_point and iv.is_exact and iv.stored_lower.dtype == torch.float32
    assert iv.lower.dtype == torch.float64 and torch.equal(iv.upper, iv.lower)
    assert iv.numblocks == 2  # equal rows merged on the stored values
    assert torch.equal(iv.exact_value(), value)
    wide = iv.broadcast_to((3, 2, 2))
    assert wide.splits == ((0,), (0,), (0, 1))
    moved = wide.relaid(lambda t: t.transpose(-1, -2), ((0,), (0, 1), (0,)), (3, 2, 2))
    assert moved.is_point and moved.stored_lower.dtype == torch.float32


def test_a_point_with_nan_or_inf_is_sanitised_in_float64() -> None:
    iv = Interval.point(torch.tensor([1.0, float("nan"), float("inf")]), TensorProto.FLOAT)
    assert iv.stored_lower.dtype == torch.float64
    assert iv.lower.tolist() == [1.0, -math.inf, math.inf] and iv.upper.tolist() == [1.0, math.inf, math.inf]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(-1e39, 1e39, allow_nan=False), min_size=3, max_size=3))
def test_one_float32_rounding_stays_within_widened_bounds(values: list[float]) -> None:
    lo, x, hi = sorted(values)
    iv = Interval.uniform(lo, hi, (1,), F32).widened(1)
    rounded = torch.tensor([x], dtype=torch.float64).float().double()  # IEEE: +-inf past max + half an ulp
    assert bool(iv.contains(rounded).all()) or bool(torch.isinf(rounded).all() and (
        (rounded > 0 and iv.max() == math.inf) or (rounded < 0 and iv.min() == -math.inf)))


def test_float32_rounding_saturates_past_half_an_ulp_of_max() -> None:
    top = float(torch.finfo(torch.float32).max)
    half_ulp = 2.0**103
    assert Interval.uniform(0.0, top + 0.9 * half_ulp, (1,), F32).widened(1).max() == top
    assert Interval.uniform(0.0, top + 1.1 * half_ulp, (1,), F32).widened(1).max() == math.inf
    assert Interval.uniform(0.1, 0.3, (1,), F32).widened(1).min() == float(torch.tensor(0.1).float())


@pytest.mark.parametrize("repeats", [0, 4097])  # few blocks (compared in numpy) and many (in torch)
@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000), st.sampled_from([torch.float64, torch.float32, torch.float16, torch.bfloat16]))
def test_compress_merges_exactly_the_equal_neighbours(repeats: int, seed: int, dtype: torch.dtype) -> None:
    """Slices are drawn from a few patterns, some only permutations of each other (their bit sums
    agree) or differing in the sign of a zero (equal values): neighbours merge exactly where equal.
    ``repeats``: a last axis of that many equal entries."""
    rng = np.random.default_rng(seed)
    shape = tuple(int(n) for n in rng.integers(1, 6, size=int(rng.integers(1, 4)))) + ((repeats,) if repeats else ())
    patterns = [rng.choice([-1.0, 0.0, 2.5, np.inf], size=shape[1:len(shape) - bool(repeats)]) for _ in range(2)]
    patterns.append(np.flip(patterns[0]).copy())  # same values in another order: same bit sums
    patterns.append(np.where(patterns[0] == 0.0, -0.0, patterns[0]))  # equal to the first
    picks = rng.integers(0, len(patterns), size=shape[0])
    lower = torch.tensor(np.stack([patterns[i] for i in picks])).to(dtype)
    if repeats:
        lower = lower.unsqueeze(-1).expand(shape)
    upper = lower + torch.tensor(rng.choice([0.0, 1.0], size=shape[:1] + (1,) * (len(shape) - 1))).to(dtype)
    splits = tuple(tuple(range(n)) for n in shape)
    for hi in (lower, upper):
        lo_c, hi_c, merged = blocks.compress(lower, hi, splits)
        full_lo, full_hi = blocks.expand(lo_c, merged, shape), blocks.expand(hi_c, merged, shape)
        assert torch.equal(full_lo, lower) and torch.equal(full_hi, hi)  # lossless
        for axis, starts in enumerate(merged):  # no two remaining neighbours are equal
            for left, right in zip(range(len(starts) - 1), range(1, len(starts))):
                same = torch.equal(lo_c.select(axis, left), lo_c.select(axis, right)) and \
                    torch.equal(hi_c.select(axis, left), hi_c.select(axis, right))
                assert not same


@pytest.mark.parametrize("repeats", [1, 5000])
def test_compress_passes_gradients_to_the_kept_blocks(repeats: int) -> None:
    """Bounds that carry gradients (the fix optimises through them) keep them when blocks merge."""
    base = torch.tensor([1.0, 1.0, 2.0], dtype=torch.float64, requires_grad=True)
    lower = base.unsqueeze(-1).expand(3, repeats)
    upper = lower + 1.0
    lo, hi, merged = blocks.compress(lower, upper, (tuple(range(3)), tuple(range(repeats))))
    assert merged == ((0, 2), (0,)) and lo.shape == (2, 1)
    (lo.sum() + hi.sum()).backward()
    assert base.grad.tolist() == [2.0, 0.0, 2.0]  # the first of each merged run is kept
