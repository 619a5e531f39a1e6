"""Spatial transformers and region pooling: AffineGrid (opset 20) and MaxRoiPool (opset 1).

AffineGrid maps a fixed grid of normalised positions through a batch of affine matrices: every output
is ``sum_j theta[k, j] * base_j + theta[k, r]``, linear in theta with exact coefficients, so interval
products give tight bounds. onnxruntime builds the base grid in theta's type (float32 for 16-bit types), within
``_BASE_ULPS`` eps of the real positions (observed: 1.43); the bounds take each base position as that
small range and add the float error of the r + 1 term sum (``accumulates``: exact thetas take the same
path).
MaxRoiPool (Fast R-CNN) takes, per region of interest and channel, the maximum over each bin of a
quantised grid (coordinates rounded half away from zero, bins floored / ceiled in float32 as
onnxruntime does); an empty bin gives 0 and a maximum below -FLT_MAX gives -FLT_MAX (onnxruntime starts
from ``lowest()``). Region bounds: ranges of rois bound each bin's start and end; a bin always covers
the core between the latest start and the earliest end, and never leaves the hull of the earliest
start and the latest end. Invariants: bounds never NaN; MaxRoiPool is exact (``rounds = False``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from onnx import TensorProto
from torch import Tensor

from ranum.domain import arith
from ranum.domain.dtypes import float_facts, torch_dtype
from ranum.domain.interval import Interval
from ranum.errors import UnsupportedOperator
from ranum.ops._base import NodeContext, OpRule, exact_ints
from ranum.ops.hazards import Overflow
from ranum.ops.registry import register

__all__ = ["AffineGrid", "MaxRoiPool"]

_F32 = float_facts(TensorProto.FLOAT)
# |computed base position - real position| in eps of the compute type: linspace (2.5), then * (n - 1) / n
# (1 more); positions lie in [-1, 1]
_BASE_ULPS = 4.0
_INT_RANGE = 2.0**31


# ------------------------------------------------------------------------------ AffineGrid
def _base_positions(sizes: Sequence[int], align_corners: bool) -> Tensor:
    """Real normalised positions (prod(sizes), rank), last axis first (x, y[, z]), float64.

    A single position is 0 without align_corners; with it, onnxruntime (Eigen's LinSpaced) puts it at +1
    where the ONNX reference and PyTorch put it at -1.
    """
    axes = []
    for n in sizes:
        if align_corners:
            axes.append(torch.linspace(-1.0, 1.0, n, dtype=torch.float64) if n != 1 else torch.ones(1,
                                                                                                   dtype=torch.float64))
        else:
            axes.append((2.0 * torch.arange(n, dtype=torch.float64) + 1.0) / n - 1.0)
    mesh = torch.meshgrid(*axes, indexing="ij")
    return torch.stack([m.reshape(-1) for m in reversed(mesh)], dim=1)


@register("AffineGrid", since=20)
class AffineGrid(OpRule):
    """Sampling grid (N, *spatial, r) of theta (N, r, r + 1) for size (N, C, *spatial), r = 2 or 3."""

    align_corners: int = 0
    hazards = (Overflow(),)
    accumulates = True

    def _sizes(self, theta_shape: Sequence[int], size: list[int] | None) -> list[int]:
        """The spatial sizes, checked against theta (onnxruntime reads theta per output batch)."""
        if size is None or len(size) not in (4, 5):
            raise UnsupportedOperator(f"AffineGrid: size must be a constant of length 4 or 5, got {size}")
        rank = len(size) - 2
        if tuple(theta_shape) != (size[0], rank, rank + 1) or min(size) < 0:
            raise UnsupportedOperator(f"AffineGrid: theta of shape {tuple(theta_shape)} does not fit size {size}")
        return list(size[2:])

    def concrete(self, ctx: NodeContext, theta: Tensor, size: Tensor) -> Tensor:
        sizes = self._sizes(tuple(theta.shape), exact_ints(size, "size", "AffineGrid"))
        work = torch.float64 if theta.dtype == torch.float64 else torch.float32
        base = _base_positions(sizes, bool(self.align_corners)).to(work).to(torch.float64)
        t = theta.to(torch.float64)
        grid = torch.einsum("nkj,pj->npk", t[:, :, :-1], base) + t[:, None, :, -1]
        return grid.reshape(theta.shape[0], *sizes, len(sizes)).to(theta.dtype)

    def abstract(self, ctx: NodeContext, theta: Interval, size: Interval) -> Interval:
        sizes = self._sizes(theta.shape, exact_ints(size, "size", "AffineGrid"))
        base = _base_positions(sizes, bool(self.align_corners))
        lo, hi = (t.to(torch.float64) for t in theta.full())
        # term (n, k, p, j) = theta[n, k, j] * (base[p, j] +- _BASE_ERROR)
        t_lo, t_hi = lo[:, :, None, :-1], hi[:, :, None, :-1]
        compute = TensorProto.DOUBLE if theta.elem_type == TensorProto.DOUBLE else TensorProto.FLOAT
        error = _BASE_ULPS * float_facts(compute).eps
        b_lo, b_hi = base - error, base + error
        if self.align_corners:  # a single position: onnxruntime's +1 or the reference's -1
            single = torch.tensor([n == 1 for n in reversed(sizes)])
            b_lo = torch.where(single, -1.0 - error, b_lo)
        b_lo, b_hi = b_lo[None, None], b_hi[None, None]
        p_lo, p_hi = arith.mul(t_lo, t_hi, b_lo, b_hi)
        shift_lo, shift_hi = lo[:, :, None, -1], hi[:, :, None, -1]
        lower, upper = arith.add(p_lo.sum(-1), p_hi.sum(-1), shift_lo, shift_hi)
        magnitude = torch.maximum(p_lo.abs(), p_hi.abs()).sum(-1) + torch.maximum(shift_lo.abs(), shift_hi.abs())
        lower, upper = arith.with_accumulation_error(lower, upper, magnitude, len(sizes) + 1, theta.elem_type)
        shape = (theta.shape[0], *sizes, len(sizes))
        lower, upper = (t.transpose(1, 2).reshape(shape) for t in (lower, upper))
        return Interval.from_full(lower, upper, theta.elem_type, ctx.budget)


# ------------------------------------------------------------------------------ MaxRoiPool
def _round_half_away(x: Tensor) -> Tensor:
    """C's round() (halves away from zero) of float64 values, exact."""
    return torch.sign(x) * torch.floor(x.abs() + 0.5)


def _bin_edges(start: Tensor, length: Tensor, bins: int, size: int) -> tuple[Tensor, Tensor]:
    """onnxruntime's bin rows (or columns) [first, stop) per roi: (R, bins) each, clipped to [0, size].

    ``start`` is the rounded roi edge and ``length`` the roi's length in pixels (at least 1), float64
    holding integers; bin edges are float32 products floored / ceiled. Both edges are non-decreasing in
    ``start`` and in ``length``.
    """
    step = length.to(torch.float32) / torch.tensor(float(bins), dtype=torch.float32)
    index = torch.arange(bins, dtype=torch.float32)
    first = torch.floor(index[None, :] * step[:, None]).to(torch.float64) + start[:, None]
    stop = torch.ceil((index[None, :] + 1) * step[:, None]).to(torch.float64) + start[:, None]
    return first.clamp(0, size).to(torch.long), stop.clamp(0, size).to(torch.long)


def _length(start: Tensor, end: Tensor) -> Tensor:
    """Roi length in pixels: malformed rois count as one pixel."""
    return torch.clamp(end - start + 1, min=1.0)


def _window_max(plane: Tensor, rows: Tensor, cols: Tensor) -> Tensor:
    """(C, P, Q) maxima of ``plane`` (C, H, W) over rows [rows[p, 0], rows[p, 1]) and columns likewise;
    -inf for an empty window."""
    out = torch.full((plane.shape[0], rows.shape[0], cols.shape[0]), -torch.inf, dtype=plane.dtype)
    for p, (top, bottom) in enumerate(rows.tolist()):
        if bottom <= top:
            continue
        band = plane[:, top:bottom, :].amax(1)
        for q, (left, right) in enumerate(cols.tolist()):
            if right > left:
                out[:, p, q] = band[:, left:right].amax(1)
    return out


@register("MaxRoiPool", since=1)
class MaxRoiPool(OpRule):
    """Max pooling of rois (R, 5) = [batch, x1, y1, x2, y2] of X (N, C, H, W) into (R, C, *pooled_shape).

    Float32 only (onnxruntime's only kernel). Exact rois: each output is max(-FLT_MAX, max of its bin),
    or 0 for an empty bin, on the lower and upper bound planes (exact). Roi ranges: the batch index
    range takes the hull of its planes; an output surely non-empty lies between the maximum of the
    lower bounds over the bin's core and the maximum of the upper bounds over its hull; one that may be
    empty joins 0 (and its lower bound is the least lower bound over the hull).
    """

    pooled_shape: tuple[int, ...] = ()
    spatial_scale: float = 1.0
    rounds = False

    def __post_init__(self) -> None:
        if len(self.pooled_shape) != 2 or min(self.pooled_shape) <= 0 or not self.spatial_scale > 0:
            raise UnsupportedOperator(f"MaxRoiPool: pooled_shape {list(self.pooled_shape)} must be two positive "
                                      f"sizes and spatial_scale {self.spatial_scale} positive")

    def _coords(self, rois: Tensor) -> tuple[Tensor, Tensor]:
        """Batch index (truncated) and rounded (x1, y1, x2, y2) edges (R, 4), float64; each is
        non-decreasing in its own roi entry."""
        r = rois.to(torch.float32)
        scaled = (r[:, 1:] * torch.tensor(self.spatial_scale, dtype=torch.float32)).to(torch.float64)
        batch = r[:, 0].to(torch.float64).clamp(-_INT_RANGE, _INT_RANGE).trunc()
        return batch, _round_half_away(scaled).clamp(-_INT_RANGE, _INT_RANGE)

    def _edges(self, start: Tensor, length: Tensor, height: int, width: int) -> list[Tensor]:
        """(row first, row stop, column first, column stop) of every roi's bins; start and length (R, 2)
        hold (x, y) values."""
        rows = _bin_edges(start[:, 1], length[:, 1], self.pooled_shape[0], height)
        cols = _bin_edges(start[:, 0], length[:, 0], self.pooled_shape[1], width)
        return [*rows, *cols]

    @staticmethod
    def _check(x_shape: Sequence[int], rois_shape: Sequence[int] | None, dtype: torch.dtype) -> None:
        if len(x_shape) != 4 or rois_shape is None or len(rois_shape) != 2 or rois_shape[1] != 5:
            raise UnsupportedOperator(f"MaxRoiPool: needs X (N, C, H, W) and rois (R, 5), got {tuple(x_shape)} "
                                      f"and {rois_shape}")
        if dtype != torch.float32:
            raise UnsupportedOperator(f"MaxRoiPool: {dtype} input (onnxruntime implements float32 only)")

    def concrete(self, ctx: NodeContext, x: Tensor, rois: Tensor) -> Tensor:
        self._check(x.shape, tuple(rois.shape), x.dtype)
        batch, coords = self._coords(rois)
        if batch.numel() and (float(batch.min()) < 0 or float(batch.max()) >= x.shape[0]):
            raise UnsupportedOperator(f"MaxRoiPool: a batch index lies outside [0, {x.shape[0]})")
        top, bottom, left, right = self._edges(coords[:, :2], _length(coords[:, :2], coords[:, 2:]), *x.shape[2:])
        out = torch.zeros((rois.shape[0], x.shape[1], *self.pooled_shape), dtype=x.dtype)
        for r in range(rois.shape[0]):
            pooled = _window_max(x[int(batch[r])], torch.stack([top[r], bottom[r]], 1),
                                 torch.stack([left[r], right[r]], 1))
            empty = (bottom[r] <= top[r])[:, None] | (right[r] <= left[r])[None, :]
            out[r] = torch.where(empty, torch.zeros_like(pooled), pooled.clamp(min=-_F32.max))
        return out

    def abstract(self, ctx: NodeContext, x: Interval, rois: Interval) -> Interval:
        self._check(x.shape, rois.shape, torch_dtype(x.elem_type))
        lo, hi = (t.to(torch.float64) for t in x.full())
        (b_lo, c_lo), (b_hi, c_hi) = (self._coords(t) for t in rois.full())
        # edges grow with the start and with the length; the length ranges over the start and end ranges
        short, long = _length(c_hi[:, :2], c_lo[:, 2:]), _length(c_lo[:, :2], c_hi[:, 2:])
        earliest = self._edges(c_lo[:, :2], short, *x.shape[2:])
        latest = self._edges(c_hi[:, :2], long, *x.shape[2:])
        b_lo, b_hi = b_lo.clamp(0, x.shape[0] - 1).to(torch.long), b_hi.clamp(0, x.shape[0] - 1).to(torch.long)
        shape = (rois.shape[0], x.shape[1], *self.pooled_shape)
        lower, upper = torch.zeros(shape, dtype=torch.float64), torch.zeros(shape, dtype=torch.float64)
        for r in range(rois.shape[0]):
            first, last = int(b_lo[r]), int(b_hi[r]) + 1
            lower[r], upper[r] = self._roi_bounds(lo[first:last].amin(0), hi[first:last].amax(0),
                                                  [e[r] for e in earliest], [e[r] for e in latest])
        return Interval.from_full(lower, upper, x.elem_type, ctx.budget)

    @staticmethod
    def _roi_bounds(lo: Tensor, hi: Tensor, earliest: list[Tensor], latest: list[Tensor]) -> tuple[Tensor, Tensor]:
        """Bounds (C, P, Q) of one roi from its planes' hull and the edges of its bins at their earliest and
        latest (row first, row stop, column first, column stop)."""
        hull_rows = torch.stack([earliest[0], latest[1]], 1)
        hull_cols = torch.stack([earliest[2], latest[3]], 1)
        core_rows = torch.stack([latest[0], earliest[1]], 1)
        core_cols = torch.stack([latest[2], earliest[3]], 1)
        sure = (core_rows[:, 1] > core_rows[:, 0])[:, None] & (core_cols[:, 1] > core_cols[:, 0])[None, :]
        maybe = (hull_rows[:, 1] > hull_rows[:, 0])[:, None] & (hull_cols[:, 1] > hull_cols[:, 0])[None, :]
        zero = torch.zeros_like(lo[:, :1, :1])
        upper = _window_max(hi, hull_rows, hull_cols).clamp(min=-_F32.max)
        upper = torch.where(sure, upper, torch.where(maybe, torch.maximum(upper, zero), zero))
        core = _window_max(lo, core_rows, core_cols).clamp(min=-_F32.max)
        least = (-_window_max(-lo, hull_rows, hull_cols)).clamp(min=-_F32.max)
        lower = torch.where(sure, core, torch.where(maybe, torch.minimum(least, zero), zero))
        return lower, upper
