"""Block-wise evaluation of sliding windows: the runs of output positions, and Conv computed once per
run against the same convolution over the full input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto

from ranum.domain import blocks
from ranum.domain.interval import Interval
from ranum.graph.model import Node
from ranum.ops import conv_pool
from ranum.ops._base import NodeContext
from ranum.ops._windows import convolution
from ranum.ops.conv_pool import Conv
from ranum.ops.linear import finish_sum, interval_product
from ranum.ops.pooling import AveragePool, MaxPool

FLOAT = TensorProto.FLOAT


def _signature(starts: list[int], length: int, offsets: list[int], position: int, stride: int, begin: int) -> list[int]:
    """The block (or len(starts) for padding) each kernel offset of one window reads, by brute force."""
    read = []
    for offset in offsets:
        place = position * stride - begin + offset
        inside = 0 <= place < length
        read.append(max(i for i, s in enumerate(starts) if s <= place) if inside else len(starts))
    return read


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 30), st.data())
def test_runs_partition_the_positions_into_equal_windows(length: int, data: st.DataObject) -> None:
    cuts = data.draw(st.sets(st.integers(1, max(length - 1, 1)), max_size=4)) if length > 1 else set()
    starts = sorted({0} | cuts)
    kernel, dilation = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 3))
    stride, begin = data.draw(st.integers(1, 3)), data.draw(st.integers(0, 3))
    positions = data.draw(st.integers(0, 12))
    offsets = [j * dilation for j in range(kernel)]
    first, reads = blocks.window_runs(tuple(starts), length, offsets, positions, stride, begin)
    assert list(first) == sorted(set(first)) and (not positions or first[0] == 0)
    assert reads.shape == (len(first), kernel)
    ends = list(first[1:]) + [positions]
    for run, (start, end) in enumerate(zip(first, ends)):
        for position in range(start, end):  # every position of a run reads what its first one reads
            assert _signature(starts, length, offsets, position, stride, begin) == reads[run].tolist()
    for run in range(1, len(first)):  # neighbouring runs differ
        assert reads[run].tolist() != reads[run - 1].tolist()


def _blocky(shape: tuple[int, ...], cuts: dict[int, list[int]], seed: int) -> Interval:
    rng = np.random.default_rng(seed)
    splits = tuple(tuple([0] + cuts.get(axis, [])) if axis in cuts else tuple(range(n)) for axis, n in enumerate(shape))
    grid = [len(s) for s in splits]
    lo = torch.tensor(rng.uniform(-2, 1, grid))
    hi = lo + torch.tensor(rng.uniform(0, 1, grid))
    return Interval.create(lo, hi, splits, shape, FLOAT)


@pytest.mark.parametrize("attrs", [
    {"pads": (1, 1, 1, 1)},
    {"pads": (3, 0, 2, 1), "strides": (2, 3), "dilations": (2, 1)},
    {"auto_pad": "SAME_UPPER", "strides": (2, 2)},
    {"group": 2, "pads": (1, 1, 1, 1)},
])
def test_conv_per_run_matches_the_full_convolution(attrs: dict) -> None:
    x = _blocky((1, 4, 31, 26), {2: [1, 2, 17, 29], 3: [13]}, seed=1)
    group = attrs.get("group", 1)
    rng = np.random.default_rng(2)
    w = Interval.point(torch.tensor(rng.normal(size=(6, 4 // group, 3, 3)), dtype=torch.float32), FLOAT)
    rule = Conv(**attrs)
    node = Node("c", "Conv", "", ("x", "w"), ("y",), {})
    out = rule.abstract(NodeContext(node, 18, (FLOAT, FLOAT), (FLOAT,), (None,), 1 << 16), x, w)
    kernel, strides, dilations, begin, end = rule._windows(x.shape, w.shape)
    count = 4 // group * 9
    mid, rad, abs_sum = interval_product(convolution(strides, dilations, begin, end, group), [x, w], count)
    full = finish_sum(mid, rad, abs_sum, count, FLOAT)
    assert out.shape == full.shape
    got, want = out.full(), full.full()
    assert len(out.splits[2]) < out.shape[2]  # blocks stay merged on the long axis
    for g, e in zip(got, want):
        assert torch.allclose(g, e, rtol=1e-6, atol=1e-9)
    # the reduced computation is its own sound bound: it contains the full one's float32 execution
    xs = [x.full()[0], x.full()[1]]
    for point in xs:
        y = rule.concrete(None, point.float(), w.exact_value())
        lo, hi = out.full()
        assert bool(((y.double() >= lo) & (y.double() <= hi)).all())


def test_conv_by_a_weight_box_sums_each_block_of_input_channels_once() -> None:
    """A box of weights (derived ranges) and input channels in two blocks: the channels are summed
    once per block, scaled by its size, with the bounds of the full computation; concrete weights
    and inputs drawn from the boxes stay inside."""
    x = _blocky((1, 12, 9, 8), {1: [4], 2: [3], 3: [5]}, seed=3)
    w = Interval.create(torch.full((1, 1, 1, 1), -0.5, dtype=torch.float64), torch.full((1, 1, 1, 1), 0.25,
                        dtype=torch.float64), ((0,), (0,), (0,), (0,)), (5, 12, 3, 3), FLOAT)
    rule = Conv(pads=(1, 1, 1, 1))
    node = Node("c", "Conv", "", ("x", "w"), ("y",), {})
    seen = []
    original = conv_pool.interval_product
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(conv_pool, "interval_product", lambda fn, ops, count: seen.append(ops[0].shape[1]) or
                      original(fn, ops, count))
        out = rule.abstract(NodeContext(node, 18, (FLOAT, FLOAT), (FLOAT,), (None,), 1 << 16), x, w)
    assert seen == [2]  # two channel blocks, not twelve channels
    kernel, strides, dilations, begin, end = rule._windows(x.shape, w.shape)
    mid, rad, abs_sum = interval_product(convolution(strides, dilations, begin, end, 1), [x, w], 108)
    want = finish_sum(mid, rad, abs_sum, 108, FLOAT)
    for g, e in zip(out.full(), want.full()):
        assert torch.allclose(g, e, rtol=1e-9, atol=1e-12)
    rng = torch.Generator().manual_seed(0)
    (x_lo, x_hi), (w_lo, w_hi), (y_lo, y_hi) = x.full(), w.full(), out.full()
    for _ in range(10):
        xs = x_lo + (x_hi - x_lo) * torch.rand(x_lo.shape, generator=rng, dtype=torch.float64)
        ws = w_lo + (w_hi - w_lo) * torch.rand(w_lo.shape, generator=rng, dtype=torch.float64)
        y = rule.concrete(None, xs.float(), ws.float()).double()
        assert bool(((y >= y_lo) & (y <= y_hi)).all())


@pytest.mark.parametrize("attrs", [
    {"kernel_shape": (3, 3), "pads": (1, 1, 1, 1), "strides": (2, 2)},
    {"kernel_shape": (3, 2), "strides": (2, 3), "ceil_mode": 1, "dilations": (2, 1)},
    {"kernel_shape": (2, 2), "auto_pad": "SAME_LOWER"},
])
def test_max_pool_per_run_matches_the_full_pooling(attrs: dict) -> None:
    x = _blocky((2, 3, 30, 27), {1: [1], 2: [1, 2, 17, 29], 3: [13]}, seed=3)
    rule = MaxPool(**attrs)
    node = Node("p", "MaxPool", "", ("x",), ("y",), {})
    out = rule.abstract(NodeContext(node, 18, (FLOAT,), (FLOAT,), (None,), 1 << 16), x)
    lo, hi = x.full()
    assert len(out.splits[2]) < out.shape[2]
    assert torch.equal(out.full()[0], rule._max(lo)) and torch.equal(out.full()[1], rule._max(hi))


@pytest.mark.parametrize("attrs", [
    {"kernel_shape": (3, 3), "pads": (1, 1, 1, 1), "strides": (2, 2)},
    {"kernel_shape": (3, 3), "pads": (1, 1, 1, 1), "count_include_pad": 1},
    {"kernel_shape": (3, 2), "strides": (2, 3), "ceil_mode": 1, "pads": (0, 1, 1, 0)},
    {"kernel_shape": (2, 2), "strides": (2, 2)},
])
def test_average_pool_per_run_matches_the_full_pooling(attrs: dict) -> None:
    x = _blocky((1, 3, 30, 27), {1: [1], 2: [1, 2, 17, 29], 3: [13]}, seed=4)
    rule = AveragePool(**attrs)
    node = Node("p", "AveragePool", "", ("x",), ("y",), {})
    out = rule.abstract(NodeContext(node, 18, (FLOAT,), (FLOAT,), (None,), 1 << 16), x)
    strides, dilations, begin, end, over = rule._window(x.shape[2:])
    count = rule._divisor(x.shape[2:], begin, end, over, strides, dilations)
    lo, hi = x.full()
    want = rule._bounds(lo, hi, count, (strides, dilations, begin, end, over), FLOAT)
    assert len(out.splits[2]) < out.shape[2]
    for got, expected in zip(out.full(), want):
        assert torch.allclose(got, expected, rtol=1e-12, atol=0.0)
