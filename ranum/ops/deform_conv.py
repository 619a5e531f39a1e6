"""Deformable convolution: DeformConv (opset 19; opset 22 only adds types), 2-D as onnxruntime runs it.

Each kernel tap of each output position samples its input plane bilinearly at the tap's position moved
by a learned offset: position = output index * stride - pad + tap * dilation + offset, computed in the
tensor's type; a position at or beyond -1 / the size reads 0, taps of the 2 x 2 neighbourhood outside
the plane weigh 0. The samples, times the optional mask, are contracted with the weights per group,
and the bias is added (onnxruntime: float32 and float64 only).

Abstract rule, in three steps:
* samples: where a tap's offsets are exact, its taps and weights are exact (computed as onnxruntime does,
  in the tensor's type), and the weights are >= 0, so the sample's bounds are the weighted sums of the
  taps' bounds. Where an offset is a range, the sample is a convex combination of values of its plane,
  joined with 0 unless every position of the range lies in [0, size - 1] on both axes. Both widen by the
  float error of a four-term weighted sum (eight terms' worth: the weights may round differently), except
  a sample at a whole-pixel position (one weight exactly 1, the others 0), which reads one value exactly.
* the mask multiplies the samples as an interval product, rounded once.
* the contraction is the midpoint-radius product of :mod:`ranum.ops.linear` with the accumulation
  error of C / group * kH * kW terms (plus the bias).
Invariants: bounds never NaN (0 * inf counts 0 where a tap weighs 0), sound for float32 and float64.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from ranum.domain import arith
from ranum.domain.dtypes import torch_dtype
from ranum.domain.interval import Interval
from ranum.errors import UnsupportedOperator
from ranum.ops._base import NodeContext, OpRule
from ranum.ops.hazards import Overflow
from ranum.ops.linear import center_radius, finish_sum, interval_product
from ranum.ops.registry import register

__all__ = ["DeformConv"]

_SAMPLE_TERMS = 8  # four products and their sum, with weights that may be one rounding off


@dataclass(frozen=True)
class _Shape:
    """Validated sizes of one DeformConv node (names as in the ONNX spec)."""

    n: int
    c: int
    height: int
    width: int
    m: int
    kernel: tuple[int, int]
    out: tuple[int, int]
    group: int
    offset_group: int

    @property
    def taps(self) -> int:
        return self.kernel[0] * self.kernel[1]

    @property
    def positions(self) -> int:
        return self.out[0] * self.out[1]

    def channel_groups(self) -> Tensor:
        """Offset group of every input channel."""
        return torch.arange(self.c) // (self.c // self.offset_group)


@register("DeformConv", since=19)
class DeformConv(OpRule):
    """2-D deformable convolution with optional bias and mask (see the module docstring)."""

    dilations: tuple[int, ...] = ()
    group: int = 1
    kernel_shape: tuple[int, ...] = ()
    offset_group: int = 1
    pads: tuple[int, ...] = ()
    strides: tuple[int, ...] = ()
    hazards = (Overflow(),)
    accumulates = True

    def _two(self, values: Sequence[int], default: int, length: int = 2) -> list[int]:
        if values and len(values) != length:
            raise UnsupportedOperator(f"DeformConv: 2-D only, got attribute values {list(values)}")
        return list(values) if values else [default] * length

    def _shape(self, x: Sequence[int], w: Sequence[int], offset: Sequence[int] | None,
               mask: Sequence[int] | None) -> _Shape:
        """Sizes checked as onnxruntime checks them."""
        if len(x) != 4 or len(w) != 4 or offset is None or len(offset) != 4:
            raise UnsupportedOperator(f"DeformConv: 2-D only, got X {tuple(x)}, W {tuple(w)}, offset {offset}")
        kernel = (w[2], w[3])
        if self.kernel_shape and tuple(self.kernel_shape) != kernel:
            raise UnsupportedOperator(f"DeformConv: kernel_shape {list(self.kernel_shape)} is not W's {kernel}")
        pads, strides, dilations = self._two(self.pads, 0, 4), self._two(self.strides, 1), self._two(self.dilations, 1)
        out = tuple((x[2 + a] + pads[a] + pads[2 + a] - dilations[a] * (kernel[a] - 1) - 1) // strides[a] + 1
                    for a in range(2))
        shape = _Shape(x[0], x[1], x[2], x[3], w[0], kernel, out, self.group, self.offset_group)
        groups_ok = self.group > 0 and self.offset_group > 0 and x[1] % self.offset_group == 0 \
            and x[1] == w[1] * self.group and w[0] % self.group == 0
        offset_ok = tuple(offset) == (x[0], self.offset_group * 2 * shape.taps, *out)
        mask_ok = mask is None or tuple(mask) == (x[0], self.offset_group * shape.taps, *out)
        if not (groups_ok and offset_ok and mask_ok and min(out) > 0 and min(pads) >= 0):
            raise UnsupportedOperator(f"DeformConv: shapes X {tuple(x)}, W {tuple(w)}, offset {tuple(offset)}, "
                                      f"mask {mask} do not fit group {self.group}, offset_group {self.offset_group}")
        return shape

    def _positions(self, shape: _Shape, offset: Tensor) -> tuple[Tensor, Tensor]:
        """Sample rows and columns (N, G, K, P) in the offset's type: index * stride - pad + tap * dilation +
        offset, the integer part exact and the offset added with one rounding, as onnxruntime does."""
        pads, strides, dilations = self._two(self.pads, 0, 4), self._two(self.strides, 1), self._two(self.dilations, 1)
        tap_h = torch.arange(shape.kernel[0]).repeat_interleave(shape.kernel[1])
        tap_w = torch.arange(shape.kernel[1]).repeat(shape.kernel[0])
        rows = torch.arange(shape.out[0]).repeat_interleave(shape.out[1])
        cols = torch.arange(shape.out[1]).repeat(shape.out[0])
        base_h = rows[None, :] * strides[0] - pads[0] + tap_h[:, None] * dilations[0]
        base_w = cols[None, :] * strides[1] - pads[1] + tap_w[:, None] * dilations[1]
        off = offset.reshape(shape.n, shape.offset_group, shape.taps, 2, shape.positions)
        return base_h.to(offset.dtype) + off[:, :, :, 0], base_w.to(offset.dtype) + off[:, :, :, 1]

    def _taps(self, shape: _Shape, offset: Tensor) -> tuple[Tensor, Tensor]:
        """Flat plane index and weight (float64) of the 4 taps of every sample: (N, G, K, P, 4) each."""
        h, w = self._positions(shape, offset)
        inside = (h > -1) & (h < shape.height) & (w > -1) & (w < shape.width)
        h_floor, w_floor = torch.floor(h), torch.floor(w)
        lh, lw = h - h_floor, w - w_floor
        hh, hw = 1 - lh, 1 - lw
        weights = torch.stack([hh * hw, hh * lw, lh * hw, lh * lw], -1).to(torch.float64)
        h_low = torch.where(inside, h_floor, 0).to(torch.long)
        w_low = torch.where(inside, w_floor, 0).to(torch.long)
        tap_rows = torch.stack([h_low, h_low, h_low + 1, h_low + 1], -1)
        tap_cols = torch.stack([w_low, w_low + 1, w_low, w_low + 1], -1)
        valid = inside[..., None] & (tap_rows >= 0) & (tap_rows < shape.height) & (tap_cols >= 0) \
            & (tap_cols < shape.width)
        index = torch.where(valid, tap_rows * shape.width + tap_cols, 0)
        return index, torch.where(valid, weights, torch.zeros_like(weights))

    @staticmethod
    def _sample(plane: Tensor, index: Tensor, weight: Tensor, shape: _Shape, bounds: bool = True) -> Tensor:
        """Weighted tap sums (N, C, K, P) of ``plane`` (N, C, H * W). For ``bounds`` a zero weight adds 0
        even to an infinite bound; otherwise, as in onnxruntime, 0 * inf is NaN (a zero-weight tap reads
        its index, or index 0 when it lies outside)."""
        groups = shape.channel_groups()
        flat = index[:, groups].reshape(shape.n, shape.c, -1)
        values = plane.gather(2, flat).reshape(shape.n, shape.c, shape.taps, shape.positions, 4)
        w = weight[:, groups]
        products = w * values
        if bounds:
            products = torch.where(w > 0, products, torch.zeros_like(products))
        return products.sum(-1)

    def _contract(self, shape: _Shape):
        """The grouped contraction of columns (N, C, K, P) with weights (M, C / group, kH, kW)."""

        def fn(columns: Tensor, weights: Tensor) -> Tensor:
            g = shape.group
            cols = columns.reshape(shape.n, g, shape.c // g * shape.taps, shape.positions)
            wts = weights.reshape(g, shape.m // g, -1).to(cols.dtype)
            return torch.einsum("ngkp,gmk->ngmp", cols, wts).reshape(shape.n, shape.m, *shape.out)

        return fn

    @staticmethod
    def _check_type(dtype: torch.dtype) -> None:
        if dtype not in (torch.float32, torch.float64):
            raise UnsupportedOperator(f"DeformConv: {dtype} tensors (onnxruntime implements float32 and float64)")

    def concrete(self, ctx: NodeContext, x: Tensor, w: Tensor, offset: Tensor, b: Tensor | None = None,
                 mask: Tensor | None = None) -> Tensor:
        self._check_type(x.dtype)
        shape = self._shape(x.shape, w.shape, tuple(offset.shape), None if mask is None else tuple(mask.shape))
        index, weight = self._taps(shape, offset.to(x.dtype))
        columns = self._sample(x.to(torch.float64).reshape(shape.n, shape.c, -1), index, weight, shape, False)
        if mask is not None:
            gate = mask.to(torch.float64).reshape(shape.n, shape.offset_group, shape.taps, shape.positions)
            columns = columns * gate[:, shape.channel_groups()]
        y = self._contract(shape)(columns, w.to(torch.float64))
        if b is not None:
            y = y + b.to(torch.float64).reshape(1, -1, 1, 1)
        return y.to(x.dtype)

    def abstract(self, ctx: NodeContext, x: Interval, w: Interval, offset: Interval, b: Interval | None = None,
                 mask: Interval | None = None) -> Interval:
        self._check_type(torch_dtype(x.elem_type))
        shape = self._shape(x.shape, w.shape, offset.shape, None if mask is None else mask.shape)
        lo, hi = self._samples(shape, x, offset)
        if mask is not None:
            lo, hi = _masked(shape, lo, hi, mask, x.elem_type)
        columns = Interval.from_full(lo, hi, x.elem_type)
        count = shape.c // shape.group * shape.taps + (1 if b is not None else 0)
        mid, rad, abs_sum = interval_product(self._contract(shape), [columns, w], count)
        if b is not None:
            bm, br = (t.reshape(1, -1, 1, 1) for t in center_radius(b))
            mid, rad, abs_sum = mid + bm, rad + br, abs_sum + bm.abs() + br
        return finish_sum(mid, rad, abs_sum, count, x.elem_type, ctx.budget)

    def _samples(self, shape: _Shape, x: Interval, offset: Interval) -> tuple[Tensor, Tensor]:
        """Bounds (N, C, K, P) of every sample, float error included."""
        dtype = torch_dtype(x.elem_type)
        x_lo, x_hi = (t.to(torch.float64).reshape(shape.n, shape.c, -1) for t in x.full())
        o_lo, o_hi = (t.to(dtype) for t in offset.full())
        index, weight = self._taps(shape, o_lo)
        lo, hi = self._sample(x_lo, index, weight, shape), self._sample(x_hi, index, weight, shape)
        size = self._sample(torch.maximum(x_lo.abs(), x_hi.abs()), index, weight, shape)
        # offsets given as ranges: any convex combination of the plane, and 0 unless surely inside it
        (h_lo, w_lo), (h_hi, w_hi) = self._positions(shape, o_lo), self._positions(shape, o_hi)
        inside = (h_lo >= 0) & (h_hi <= shape.height - 1) & (w_lo >= 0) & (w_hi <= shape.width - 1)
        exact = (h_lo == h_hi) & (w_lo == w_hi)
        groups = shape.channel_groups()
        unit = (weight == 1).any(-1)[:, groups]  # a whole-pixel position reads one value exactly
        inside, exact = inside[:, groups], exact[:, groups]
        size = torch.where(unit, torch.zeros_like(size), size)
        plane_lo, plane_hi = (t[:, :, None, None] for t in (x_lo.amin(-1), x_hi.amax(-1)))
        zero = torch.zeros_like(plane_lo)
        range_lo = torch.where(inside, plane_lo, torch.minimum(plane_lo, zero))
        range_hi = torch.where(inside, plane_hi, torch.maximum(plane_hi, zero))
        lo, hi = torch.where(exact, lo, range_lo), torch.where(exact, hi, range_hi)
        size = torch.where(exact, size, torch.maximum(range_lo.abs(), range_hi.abs()))
        return arith.with_accumulation_error(lo, hi, size, _SAMPLE_TERMS, x.elem_type)


def _masked(shape: _Shape, lo: Tensor, hi: Tensor, mask: Interval, elem_type: int) -> tuple[Tensor, Tensor]:
    """Samples times the mask (interval product, rounded once)."""
    m_lo, m_hi = (t.to(torch.float64).reshape(shape.n, shape.offset_group, shape.taps, shape.positions)
                  [:, shape.channel_groups()] for t in mask.full())
    lo, hi = arith.mul(lo, hi, m_lo, m_hi)
    return arith.with_accumulation_error(lo, hi, torch.maximum(lo.abs(), hi.abs()), 1, elem_type)

