"""Pooling: AveragePool, MaxPool, LpPool, GlobalAveragePool, GlobalMaxPool, GlobalLpPool.

Geometry follows onnxruntime (see :mod:`ranum.ops._windows`); ``ceil_mode`` lets the last window
overhang the padded input (never starting past it), and an overhang never counts in an average.
Pooling is monotone, so the rules map the lower and upper bound tensors separately: max exactly,
averages with the accumulation error of their window sums (both once per run of windows that read
the same blocks), Lp pooling on the smallest and largest magnitudes, with the rounding of each
|x|**p, of the window sum and of the root, whose exponent onnxruntime rounds to float32.
Invariants: bounds sound for float32 / float16 execution, never NaN; an unbounded input end stays
unbounded.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from onnx import TensorProto
from torch import Tensor

from ranum.domain import arith, blocks
from ranum.domain.dtypes import float_facts, is_float, torch_dtype
from ranum.domain.interval import Interval, spread
from ranum.errors import InconsistentShapes, UnsupportedOperator
from ranum.ops._base import NodeContext, OpRule
from ranum.ops._windows import (
    check_auto_pad,
    output_sizes,
    pad_spatial,
    reduce_windows,
    window_attr,
    window_geometry,
    window_outputs,
)
from ranum.ops.hazards import Overflow
from ranum.ops.registry import register

__all__ = ["AveragePool", "GlobalAveragePool", "GlobalLpPool", "GlobalMaxPool", "LpPool", "MaxPool"]

_SUM = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
_MAXPOOL = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}


def _lowest(dtype: torch.dtype) -> float:
    """What onnxruntime's MaxPool gives a window of padding only: the type's lowest value (float16: -inf)."""
    if dtype == torch.float16:
        return -math.inf
    return float(torch.finfo(dtype).min if dtype.is_floating_point else torch.iinfo(dtype).min)


def _empty_tensor(x: Tensor, shape: Sequence[int]) -> Tensor:
    return torch.zeros(tuple(shape), dtype=x.dtype)


def _empty_interval(x: Interval, shape: Sequence[int], elem_type: int | None = None) -> Interval:
    bounds = torch.zeros(tuple(shape), dtype=torch.float64)
    return Interval.from_full(bounds, bounds, x.elem_type if elem_type is None else elem_type)


@dataclass(frozen=True)
class _Pool(OpRule):
    """Shared window geometry of AveragePool and MaxPool."""

    clip_tail = False  # whether onnxruntime's windows stop at the pad after the input (see window_geometry)

    auto_pad: str = "NOTSET"
    ceil_mode: int = 0
    dilations: tuple[int, ...] = ()
    kernel_shape: tuple[int, ...] = ()
    pads: tuple[int, ...] = ()
    strides: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        check_auto_pad(type(self).__name__, self.auto_pad)
        if not self.kernel_shape:
            raise UnsupportedOperator(f"{type(self).__name__}: kernel_shape is required")

    def _window(self, sizes: Sequence[int]) -> tuple[list[int], list[int], list[int], list[int], list[int]]:
        """The windows' geometry over an input's spatial axes of ``sizes`` (those after batch and channels)."""
        rank = len(self.kernel_shape)
        if len(sizes) != rank:
            axes = "axis" if rank == 1 else "axes"
            raise InconsistentShapes(f"{type(self).__name__}: a kernel of rank {rank} needs {rank} spatial {axes} "
                                     f"after the batch and channel axes; the input has {len(sizes)}")
        if rank not in _SUM:
            raise UnsupportedOperator(f"{type(self).__name__}: kernels of rank {rank} (rules cover ranks "
                                      f"{', '.join(map(str, sorted(_SUM)))})")
        strides, dilations = window_attr(self.strides, rank, 1), window_attr(self.dilations, rank, 1)
        begin, end, over = window_geometry(sizes, self.kernel_shape, strides, dilations, self.pads, self.auto_pad,
                                           self.ceil_mode, clip_tail=self.clip_tail, op=type(self).__name__)
        return strides, dilations, begin, end, over

    def _output_shape(self, shape: Sequence[int]) -> tuple[int, ...]:
        """The output's shape (batch, channels, then each spatial axis's window count, possibly 0)."""
        rank = len(self.kernel_shape)
        strides, dilations = window_attr(self.strides, rank, 1), window_attr(self.dilations, rank, 1)
        sizes = output_sizes(shape[2:], self.kernel_shape, strides, dilations, self.pads, self.auto_pad,
                             self.ceil_mode)
        return (shape[0], shape[1], *sizes)

    def _empty(self, shape: Sequence[int]) -> tuple[int, ...] | None:
        """The output's shape where it holds no element (torch's pooling refuses those), else None."""
        out = self._output_shape(shape)
        return out if 0 in out else None

    def _outputs_check(self, ctx: NodeContext) -> None:
        if len(ctx.node.outputs) > 1 and ctx.node.outputs[1]:
            raise UnsupportedOperator(f"{type(self).__name__}: the Indices output is not supported")


def _window_sum(x: Tensor, kernel: Sequence[int], strides: Sequence[int], dilations: Sequence[int]) -> Tensor:
    """Sum over each pooling window (a convolution of every channel with a kernel of ones)."""
    n, c = x.shape[:2]
    flat = x.reshape((n * c, 1) + tuple(x.shape[2:]))
    ones = torch.ones((1, 1) + tuple(kernel), dtype=x.dtype)
    y = _SUM[len(kernel)](flat, ones, None, list(strides), 0, list(dilations))
    return y.reshape((n, c) + tuple(y.shape[2:]))


@register("AveragePool")
class AveragePool(_Pool):
    """Window averages; ``count_include_pad`` decides whether padding counts in the divisor."""

    count_include_pad: int = 0

    clip_tail = True
    accumulates = True
    hazards = (Overflow(),)

    def _divisor(self, sizes: Sequence[int], begin, end, over, strides, dilations) -> Tensor:
        """Per output position, the number the window sum is divided by (shape (1, 1, *out))."""
        mask = torch.ones((1, 1) + tuple(sizes), dtype=torch.float64)
        pad_value = 1.0 if self.count_include_pad else 0.0
        mask = pad_spatial(mask, begin, end, pad_value)
        mask = pad_spatial(mask, [0] * len(over), over)
        return _window_sum(mask, self.kernel_shape, strides, dilations)

    def _sums(self, x: Tensor) -> tuple[Tensor, Tensor]:
        strides, dilations, begin, end, over = self._window(x.shape[2:])
        padded = pad_spatial(pad_spatial(x, begin, end), [0] * len(over), over)
        return _window_sum(padded, self.kernel_shape, strides, dilations), \
            self._divisor(x.shape[2:], begin, end, over, strides, dilations)

    def concrete(self, ctx: NodeContext, x: Tensor) -> Tensor:
        if (empty := self._empty(x.shape)) is not None:
            return _empty_tensor(x, empty)
        total, count = self._sums(x.to(torch.float64))
        return (total / count).to(x.dtype)

    def abstract(self, ctx: NodeContext, x: Interval) -> Interval:
        self._outputs_check(ctx)
        if (empty := self._empty(x.shape)) is not None:
            return _empty_interval(x, empty)
        strides, dilations, begin, end, over = self._window(x.shape[2:])
        count = self._divisor(x.shape[2:], begin, end, over, strides, dilations)
        kernel = list(self.kernel_shape)
        reduced = reduce_windows(x, kernel, strides, dilations, begin, list(count.shape[2:]), end=end) \
            if is_float(x.elem_type) else None
        small_count = None if reduced is None else _at_runs(count, reduced.runs)
        if small_count is None:
            lo, hi = (t.to(torch.float64) for t in x.full())
            return Interval.from_full(*self._bounds(lo, hi, count, (strides, dilations, begin, end, over), x.elem_type),
                                      x.elem_type, ctx.budget)
        lo, hi = reduced.operand.full()
        geometry = reduced.geometry(kernel, strides, dilations, begin, end, over)
        bounds = self._bounds(lo, hi, small_count, geometry, x.elem_type)
        small = Interval.from_full(*bounds, x.elem_type)
        return spread(small, reduced.runs, (x.shape[0], x.shape[1], *count.shape[2:]), ctx.budget)

    def _bounds(self, lo: Tensor, hi: Tensor, count: Tensor, geometry: tuple[list[int], ...], elem_type: int
                ) -> tuple[Tensor, Tensor]:
        """Bounds of the averages over windows of ``[lo, hi]`` (already padded where the geometry says
        no padding), with the accumulation error of the window sums."""
        strides, dilations, begin, end, over = geometry

        def sums(t: Tensor) -> Tensor:
            padded = pad_spatial(pad_spatial(t, begin, end), [0] * len(over), over)
            return _window_sum(padded, self.kernel_shape, strides, dilations)

        lo_sum, hi_sum = sums(lo), sums(hi)
        abs_sum = sums(torch.maximum(lo.abs(), hi.abs()))
        terms = math.prod(self.kernel_shape) + 1
        nonneg = sums(lo.clamp(max=0.0)) == 0  # a float sum of terms >= 0 (padding included) is >= 0
        lo_sum, hi_sum = arith.with_accumulation_error(lo_sum, hi_sum, abs_sum, terms, elem_type, nonneg)
        return lo_sum / count, hi_sum / count


def _at_runs(count: Tensor, runs: Mapping[int, tuple[int, ...]]) -> Tensor | None:
    """The divisors at the runs' first positions, or None where a run's positions do not all share
    their first one's (padding and the ceil-mode overhang read alike but may count differently)."""
    small = count
    for axis, first in runs.items():
        small = small.index_select(axis, torch.tensor(first, dtype=torch.long))
    splits = tuple(tuple(runs.get(axis, range(n))) for axis, n in enumerate(count.shape))
    return small if torch.equal(blocks.expand(small, splits, count.shape), count) else None


@register("MaxPool")
class MaxPool(_Pool):
    """Window maxima (padding never wins); exact, no rounding. The optional Indices output holds each
    maximum's place in the flattened input (N, C, spatial: row-major, or column-major over the spatial
    axes with ``storage_order`` 1), the first maximum of its window as onnxruntime scans it; its
    bounds are the first and last place of the window's real elements."""

    storage_order: int = 0

    rounds = False

    def _padded(self, x: Tensor) -> tuple[Tensor, list[int], list[int]]:
        strides, dilations, begin, end, over = self._window(x.shape[2:])
        padded = pad_spatial(pad_spatial(x.to(torch.float64), begin, end, -math.inf), [0] * len(over), over, -math.inf)
        return padded, strides, dilations

    def _max(self, x: Tensor, with_indices: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        padded, strides, dilations = self._padded(x)
        rank = len(self.kernel_shape)
        return _MAXPOOL[rank](padded, list(self.kernel_shape), strides, 0, dilations, return_indices=with_indices)

    def _padding_only(self, shape: Sequence[int]) -> Tensor:
        """Whether each output's window reads only padding (a dilated window can step over the input)."""
        return self._max(torch.ones((1, 1, *shape[2:]), dtype=torch.float64)) == -math.inf

    def _with_empty_windows(self, y: Tensor, x_shape: Sequence[int], dtype: torch.dtype,
                            empty: Tensor | None = None) -> Tensor:
        """``y`` where a window read only padding holds onnxruntime's start value: the type's lowest
        (``numeric_limits::lowest``; float16's kernel starts at -inf), not -inf. ``empty``: those windows,
        where the caller has them."""
        empty = self._padding_only(x_shape) if empty is None else empty
        if not bool(empty.any()):
            return y
        return torch.where(empty, torch.tensor(_lowest(dtype), dtype=y.dtype), y)

    def _values(self, x: Interval, budget: int) -> Interval:
        """The maxima's bounds, computed once per run of windows that read the same blocks of ``x``
        (padding and the ceil-mode overhang read -inf, which never wins)."""
        kernel = list(self.kernel_shape)
        strides, dilations, begin, end, over = self._window(x.shape[2:])
        out_sizes = window_outputs(x.shape[2:], kernel, strides, dilations, begin, end, over)
        reduced = reduce_windows(x, kernel, strides, dilations, begin, out_sizes, -math.inf) \
            if is_float(x.elem_type) else None
        if reduced is None:
            lo, hi = x.full()
            return Interval.from_full(self._max(lo), self._max(hi), x.elem_type, budget)
        strides, dilations, begin, end, over = reduced.geometry(kernel, strides, dilations, begin, end, over)
        windows = [pad_spatial(pad_spatial(t, begin, end, -math.inf), [0] * len(over), over, -math.inf)
                   for t in reduced.operand.full()]
        lo, hi = (_MAXPOOL[len(kernel)](t, kernel, strides, 0, dilations) for t in windows)
        small = Interval.from_full(lo, hi, x.elem_type)
        return spread(small, reduced.runs, (x.shape[0], x.shape[1], *out_sizes), budget)

    def _places(self, shape: Sequence[int]) -> Tensor:
        """Every input element's ONNX index (float64, of the input's shape)."""
        spatial = list(shape[2:])
        axes = range(len(spatial)) if self.storage_order else reversed(range(len(spatial)))
        place, stride = torch.zeros(spatial, dtype=torch.float64), 1
        for axis in axes:  # the fastest-varying axis first
            coordinate = torch.arange(spatial[axis], dtype=torch.float64).reshape(
                [-1 if a == axis else 1 for a in range(len(spatial))])
            place, stride = place + coordinate * stride, stride * spatial[axis]
        planes = torch.arange(shape[0] * shape[1], dtype=torch.float64).reshape(shape[0], shape[1], *[1] * len(spatial))
        return planes * stride + place

    def _wants_indices(self, ctx: NodeContext) -> bool:
        return len(ctx.node.outputs) > 1 and bool(ctx.node.outputs[1])

    def concrete(self, ctx: NodeContext, x: Tensor) -> Tensor | tuple[Tensor, Tensor]:
        if (empty := self._empty(x.shape)) is not None:
            y = _empty_tensor(x, empty)
            return (y, y.to(torch.int64)) if self._wants_indices(ctx) else y
        if not self._wants_indices(ctx):
            return self._with_empty_windows(self._max(x), x.shape, x.dtype).to(x.dtype)
        y, where = self._max(x, with_indices=True)
        y = self._with_empty_windows(y, x.shape, x.dtype)
        places = self._padded(self._places(x.shape))[0].flatten(2)
        indices = places.gather(2, where.flatten(2)).reshape(y.shape)
        return y.to(x.dtype), indices.to(torch.int64)

    def abstract(self, ctx: NodeContext, x: Interval) -> Interval | tuple[Interval, Interval]:
        if (empty := self._empty(x.shape)) is not None:
            y = _empty_interval(x, empty)
            return (y, _empty_interval(x, empty, TensorProto.INT64)) if self._wants_indices(ctx) else y
        values = self._values(x, ctx.budget)
        padding_only = self._padding_only(x.shape)
        if bool(padding_only.any()):
            dtype = torch_dtype(x.elem_type)
            values = Interval.from_full(*(self._with_empty_windows(t, x.shape, dtype, padding_only)
                                          for t in values.full()), x.elem_type, ctx.budget)
        if not self._wants_indices(ctx):
            return values
        places = self._places(x.shape)
        last, first = self._max(places), -self._max(-places)
        return values, Interval.from_full(first, last, TensorProto.INT64, ctx.budget)


@register("GlobalAveragePool")
class GlobalAveragePool(OpRule):
    """Mean over every spatial axis (output keeps them as size 1)."""

    accumulates = True
    hazards = (Overflow(),)

    def concrete(self, ctx: NodeContext, x: Tensor) -> Tensor:
        axes = tuple(range(2, x.dim()))
        return x.to(torch.float64).mean(dim=axes, keepdim=True).to(x.dtype)

    def abstract(self, ctx: NodeContext, x: Interval) -> Interval:
        axes = tuple(range(2, len(x.shape)))
        lo, hi = (t.to(torch.float64) for t in x.full())
        count = math.prod(x.shape[2:])
        # the runtime sums, then divides: the sum's error and its overflow (an infinite mean) come first
        lo_s, hi_s = lo.sum(dim=axes, keepdim=True), hi.sum(dim=axes, keepdim=True)
        abs_s = torch.maximum(lo.abs(), hi.abs()).sum(dim=axes, keepdim=True)
        nonneg = lo.amin(dim=axes, keepdim=True) >= 0
        lo_s, hi_s = arith.with_accumulation_error(lo_s, hi_s, abs_s, count + 1, x.elem_type, nonneg)
        return Interval.from_full(lo_s / count, hi_s / count, x.elem_type, ctx.budget)


@register("GlobalMaxPool")
class GlobalMaxPool(OpRule):
    """Maximum over every spatial axis; exact."""

    rounds = False

    def concrete(self, ctx: NodeContext, x: Tensor) -> Tensor:
        axes = tuple(range(2, x.dim()))
        return torch.amax(x, dim=axes, keepdim=True) if axes else x

    def abstract(self, ctx: NodeContext, x: Interval) -> Interval:
        lo, hi = x.full()
        axes = tuple(range(2, len(x.shape)))
        if not axes:
            return x
        return Interval.from_full(torch.amax(lo, dim=axes, keepdim=True), torch.amax(hi, dim=axes, keepdim=True),
                                  x.elem_type, ctx.budget)


# --------------------------------------------------------------------------------- Lp pooling
def _lp_check(op: str, p: int, x_dtype: torch.dtype) -> None:
    if p < 1:
        raise UnsupportedOperator(f"{op}: p={p} (only p >= 1)")
    if x_dtype not in (torch.float32, torch.float16, torch.bfloat16):
        raise UnsupportedOperator(f"{op}: {x_dtype} inputs (onnxruntime computes Lp pooling in float32 only)")


def _lp_root(total: Tensor, p: int) -> Tensor:
    """total ** (1 / p) with onnxruntime's exponent, ``1.0f / p`` rounded to float32."""
    exponent = float(torch.tensor(1.0, dtype=torch.float32) / p)
    return total.to(torch.float64).pow(exponent)


def _lp_terms(x: Tensor, p: int) -> Tensor:
    """|x| ** p computed in float64 and rounded to float32 (std::pow(float, int64) is a double pow)."""
    return x.to(torch.float64).abs().pow(p).to(torch.float32).to(torch.float64)


def _lp_bounds(near: Tensor, far: Tensor, p: int, sums: Callable[[Tensor], Tensor], count: int
               ) -> tuple[Tensor, Tensor]:
    """Bounds of the pooled Lp norm from the window sums of the smallest and largest |x| ** p.

    Everything runs in float32 (16-bit tensors are cast to it): each term rounds once (relative eps,
    or half a subnormal when it underflows), the sum of ``count`` terms carries the accumulation error,
    and the root (monotone) a few ulps; a sum that may pass float32's largest value overflows to +inf.
    The final rounding to the tensor's type is the interpreter's.
    """
    facts = float_facts(TensorProto.FLOAT)
    gamma = arith.accumulation_gamma(count, TensorProto.FLOAT)
    low = sums(near.pow(p)) * (1 - facts.eps) * (1 - gamma) - count * facts.subnormal
    high = sums(far.pow(p)) * (1 + facts.eps) * (1 + gamma) + count * facts.subnormal
    low = _lp_root(low.clamp(min=0.0), p) * (1 - 4 * facts.eps)
    high = torch.where(high > facts.max, torch.inf, _lp_root(high, p) * (1 + 4 * facts.eps))
    return low, torch.nan_to_num(high, nan=torch.inf)


def _magnitudes(x: Interval) -> tuple[Tensor, Tensor]:
    """Smallest and largest |x| per element (float64)."""
    lo, hi = (t.to(torch.float64) for t in x.full())
    return lo.clamp(min=0.0) - hi.clamp(max=0.0), torch.maximum(lo.abs(), hi.abs())


@register("LpPool", since=2)
class LpPool(_Pool):
    """(sum over each window of |x| ** p) ** (1 / p); padding and the ceil-mode overhang add nothing."""

    p: int = 2

    hazards = (Overflow(),)
    accumulates = True

    def _sums(self, t: Tensor) -> Tensor:
        strides, dilations, begin, end, over = self._window(t.shape[2:])
        padded = pad_spatial(pad_spatial(t, begin, end), [0] * len(over), over)
        return _window_sum(padded, self.kernel_shape, strides, dilations)

    def concrete(self, ctx: NodeContext, x: Tensor) -> Tensor:
        _lp_check("LpPool", self.p, x.dtype)
        if (empty := self._empty(x.shape)) is not None:
            return _empty_tensor(x, empty)
        return _lp_root(self._sums(_lp_terms(x, self.p)).to(torch.float32), self.p).to(x.dtype)

    def abstract(self, ctx: NodeContext, x: Interval) -> Interval:
        self._outputs_check(ctx)
        _lp_check("LpPool", self.p, torch_dtype(x.elem_type))
        if (empty := self._empty(x.shape)) is not None:
            return _empty_interval(x, empty)
        near, far = _magnitudes(x)
        lo, hi = _lp_bounds(near, far, self.p, self._sums, math.prod(self.kernel_shape))
        return Interval.from_full(lo, hi, x.elem_type, ctx.budget)


@register("GlobalLpPool", since=2)
class GlobalLpPool(OpRule):
    """Lp norm over every spatial axis (output keeps them as size 1)."""

    p: int = 2

    hazards = (Overflow(),)
    accumulates = True

    @staticmethod
    def _sums(t: Tensor) -> Tensor:
        return t.sum(dim=tuple(range(2, t.dim())), keepdim=True)

    def concrete(self, ctx: NodeContext, x: Tensor) -> Tensor:
        _lp_check("GlobalLpPool", self.p, x.dtype)
        return _lp_root(self._sums(_lp_terms(x, self.p)).to(torch.float32), self.p).to(x.dtype)

    def abstract(self, ctx: NodeContext, x: Interval) -> Interval:
        _lp_check("GlobalLpPool", self.p, torch_dtype(x.elem_type))
        near, far = _magnitudes(x)
        lo, hi = _lp_bounds(near, far, self.p, self._sums, math.prod(x.shape[2:]))
        return Interval.from_full(lo, hi, x.elem_type, ctx.budget)
