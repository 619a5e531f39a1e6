"""Sampling operators of detection and spatial-transformer models: GridSample, RoiAlign, NonMaxSuppression.

GridSample and RoiAlign interpolate values of one (batch, channel) plane of their input, so their
bounds come from the plane's range, joined with 0 where a sample can fall outside the plane (zero
padding), and widened by the negative weight mass of the cubic kernel and by the float error of the
weighted sums. These bounds hold for any sampling location, so ranges of grids and boxes cost nothing.
NonMaxSuppression's output shape depends on the scores: it is exact for exact inputs, otherwise an
interval of unknown shape over the valid index range.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F  # noqa: N812
from onnx import TensorProto
from torch import Tensor

from ranum.domain import arith
from ranum.domain.interval import Interval
from ranum.errors import UnsupportedOperator
from ranum.ops._base import COUNTS, NodeContext, OpRule
from ranum.ops.hazards import Overflow
from ranum.ops.registry import register

__all__ = ["GridSample", "GridSample16", "NonMaxSuppression", "RoiAlign", "RoiAlign10"]

_GRID_MODES = {"bilinear": "bilinear", "linear": "bilinear", "nearest": "nearest", "bicubic": "bicubic",
               "cubic": "bicubic"}
_PADDINGS = ("zeros", "border", "reflection")
_CUBIC_A = -0.75  # the kernel coefficient of onnxruntime's (and PyTorch's) bicubic GridSample


# ------------------------------------------------------------------------------ shared helpers
def _plane_range(x: Interval, planes: int = 2) -> tuple[Tensor, Tensor]:
    """Lowest lower and highest upper bound of every plane (the leading ``planes`` axes), full shape."""
    lo, hi = x.full()
    dims = tuple(range(planes, lo.dim()))
    if math.prod(lo.shape[planes:]) == 0:
        empty = torch.zeros(lo.shape[:planes], dtype=torch.float64)
        return empty, empty
    return lo.to(torch.float64).amin(dims), hi.to(torch.float64).amax(dims)


def _cubic_abs_mass() -> float:
    """Upper bound of the 1-D sum of |weights| of the Keys cubic kernel (a = -0.75) over every offset.

    Sampled on a fine grid of offsets t in [0, 1]; the sum is piecewise polynomial with slope below
    8 in |t|, so adding 8 times the grid step bounds it between the samples.
    """
    t = torch.linspace(0.0, 1.0, 4097, dtype=torch.float64)
    a = _CUBIC_A
    far = lambda x: ((a * x - 5 * a) * x + 8 * a) * x - 4 * a  # noqa: E731
    near = lambda x: ((a + 2) * x - (a + 3)) * x * x + 1  # noqa: E731
    weights = torch.stack([far(t + 1), near(t), near(1 - t), far(2 - t)])
    return float(weights.abs().sum(0).max()) + 8.0 / 4096


def _overshoot(lo: Tensor, hi: Tensor, negative: float) -> tuple[Tensor, Tensor]:
    """Bounds of sum w_i v_i with sum w_i = 1, negative weights summing to -N, v_i in [lo, hi]."""
    if negative == 0:
        return lo, hi
    span = hi - lo
    return lo - negative * span, hi + negative * span


# ------------------------------------------------------------------------------ GridSample
@register("GridSample", since=16)
class GridSample16(OpRule):
    """Samples X (N, C, *spatial) at the normalised locations of grid (N, *out, rank - 2).

    Every output is a weighted sum of values of its own (n, c) plane, and of 0 for taps outside the
    plane under zero padding, with weights summing to 1. Nearest and (bi)linear weights are >= 0, so
    the output lies in the plane's range (joined with 0); cubic weights can be negative, with total
    negative mass N = (S**rank - 1) / 2 for S the 1-D bound of sum |w|, giving [l - N(u - l), u + N(u - l)].
    The sample location only chooses taps and weights while pixel coordinates stay below 2**21; past
    that, onnxruntime's float32 taps and weights break (weights of 4, or 0, at 2**24), and under border or
    reflection padding, which read the plane at any location, the bounds are unbounded. Zero padding reads a
    tap only where its integer coordinates lie in the plane, hence its location within a pixel of it, where the
    taps and weights are exact: far locations read zeros only, and the bounds hold. Float error: the few-term
    weighted sum and the weights' own rounding (accumulation bound).
    """

    mode: str = "bilinear"
    padding_mode: str = "zeros"
    align_corners: int = 0
    hazards = (Overflow(),)
    ulps = 2.0
    accumulates = True  # exact operands too: the runtime's float32 taps are not the float64 concrete rule's

    def __post_init__(self) -> None:
        if self.mode not in _GRID_MODES or self.padding_mode not in _PADDINGS:
            raise UnsupportedOperator(f"GridSample: unsupported mode {self.mode!r} / padding_mode "
                                      f"{self.padding_mode!r}")

    @property
    def rounds(self) -> bool:  # type: ignore[override]
        return _GRID_MODES[self.mode] != "nearest"

    def _check_rank(self, rank: int | None) -> None:
        cubic = _GRID_MODES[self.mode] == "bicubic"
        if rank not in (4, 5) or (cubic and rank != 4):
            raise UnsupportedOperator(f"GridSample: {self.mode} sampling of a rank-{rank} input is not supported")

    def concrete(self, ctx: NodeContext, x: Tensor, grid: Tensor) -> Tensor:
        self._check_rank(x.dim())
        mode = _GRID_MODES[self.mode]
        work = torch.float32 if mode == "nearest" else torch.float64  # nearest: float32 locations, as ORT
        out = F.grid_sample(x.to(work), grid.to(torch.float32).to(work), mode=mode, padding_mode=self.padding_mode,
                            align_corners=bool(self.align_corners))
        return out.to(x.dtype)

    def abstract(self, ctx: NodeContext, x: Interval, grid: Interval) -> Interval:
        self._check_rank(x.rank)
        if grid.shape is None:
            raise UnsupportedOperator("GridSample: the grid's shape is unknown")
        lo, hi = _plane_range(x)
        if self._may_leave_plane(grid):
            lo, hi = lo.clamp(max=0.0), hi.clamp(min=0.0)
        mode = _GRID_MODES[self.mode]
        if mode != "nearest":
            lo, hi = self._rounded(lo, hi, mode, x.elem_type)
        if self.padding_mode != "zeros" and _past_float_grid(grid, x.shape[2:]):
            lo, hi = torch.full_like(lo, -torch.inf), torch.full_like(hi, torch.inf)
        shape = (x.shape[0], x.shape[1], *grid.shape[1:-1])
        splits = (tuple(range(shape[0])), tuple(range(shape[1])),
                  *((0,) if n else () for n in shape[2:]))
        view = (*lo.shape, *([1] * (len(shape) - 2)))
        blocks = [min(n, 1) for n in shape[2:]]
        return Interval.create(lo.reshape(view).expand(*lo.shape, *blocks), hi.reshape(view).expand(*lo.shape, *blocks),
                               splits, shape, x.elem_type, ctx.budget)

    def _may_leave_plane(self, grid: Interval) -> bool:
        """Whether a tap with a non-zero weight can read the zero padding.

        With align_corners, grid values in [-1, 1] map (monotonically, also in float32) to [0, n - 1];
        nearest then rounds inside, and a linear tap past n - 1 has weight exactly 0.
        """
        if self.padding_mode != "zeros":
            return False
        inside = bool(self.align_corners) and _GRID_MODES[self.mode] != "bicubic" and grid.numblocks > 0
        return not (inside and float(grid.lower.min()) >= -1.0 and float(grid.upper.max()) <= 1.0)

    def _rounded(self, lo: Tensor, hi: Tensor, mode: str, elem_type: int) -> tuple[Tensor, Tensor]:
        """Cubic overshoot, then the float error of the taps' sum and of the weights."""
        if mode == "bicubic":
            mass = _cubic_abs_mass() ** 2
            lo, hi = _overshoot(lo, hi, (mass - 1.0) / 2.0)
            magnitude = torch.maximum(lo.abs(), hi.abs()) * mass
            terms = 64  # 16 taps in two 4-term stages, plus the rounding of the cubic weights
        else:
            magnitude = torch.maximum(lo.abs(), hi.abs())
            terms = 12  # 4 taps, plus the rounding of the products of the weights
        return arith.with_accumulation_error(lo, hi, magnitude, terms, elem_type, lo >= 0)


@register("GridSample", since=20)
class GridSample(GridSample16):
    """GridSample from opset 20: modes renamed linear/cubic (default linear), N-D inputs allowed."""

    mode: str = "linear"


def _past_float_grid(grid: Interval, sizes) -> bool:
    """Whether a pixel coordinate (about ``grid * size``) can pass 2**21: onnxruntime's float32 tap
    positions and weights then stop being exact (at 2**24 a weight of 4, or a 0, comes out), so the
    result is not a combination of the input's values."""
    largest = max(abs(grid.min()), abs(grid.max()))
    return not largest * max(max(sizes, default=1), 1) < 2.0**21


# ------------------------------------------------------------------------------ RoiAlign
def _bilinear_taps(pos: Tensor, n: int) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """onnxruntime's RoiAlign taps on one axis: (valid, low index, high index, low weight, high weight).

    A sample outside [-1, n] is invalid (contributes 0); others are clamped to [0, n - 1].
    """
    valid = (pos >= -1.0) & (pos <= n)
    p = pos.clamp(min=0.0)
    low = p.floor().long()
    edge = low >= n - 1
    low = torch.where(edge, torch.full_like(low, n - 1), low)
    high = torch.where(edge, low, low + 1)
    p = torch.where(edge, low.to(p.dtype), p)
    frac = p - low.to(p.dtype)
    return valid, low, high, 1.0 - frac, frac


@register("RoiAlign", since=10)
class RoiAlign10(OpRule):
    """Average or max of bilinear samples of a region of one feature-map plane, per roi and channel.

    avg: a mean of convex combinations of plane values, and of 0 for samples outside [-1, n] (and
    for empty sample grids): within [min(l, 0), max(u, 0)] of the plane picked by batch_indices.
    max (onnxruntime): the max over samples of max_i(w_i v_i) with w_i in [0, 1], again in that hull.
    Float error of avg: a sum of 4 * count terms divided by count, with count bounded from the rois.
    """

    mode: str = "avg"
    output_height: int = 1
    output_width: int = 1
    sampling_ratio: int = 0
    spatial_scale: float = 1.0
    coordinate_transformation_mode: str = "output_half_pixel"
    hazards = (Overflow(),)
    ulps = 2.0

    def __post_init__(self) -> None:
        if self.mode not in ("avg", "max") or \
                self.coordinate_transformation_mode not in ("half_pixel", "output_half_pixel"):
            raise UnsupportedOperator(f"RoiAlign: unsupported mode {self.mode!r} / coordinate_transformation_mode "
                                      f"{self.coordinate_transformation_mode!r}")

    def _grid(self, rois: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Float32 sample positions (R, out, grid) along y and x, and the grid sizes per roi."""
        offset = 0.5 if self.coordinate_transformation_mode == "half_pixel" else 0.0
        box = rois.to(torch.float32) * torch.tensor(self.spatial_scale, dtype=torch.float32) - offset
        size = box[:, 2:] - box[:, :2]
        if self.coordinate_transformation_mode == "output_half_pixel":
            size = size.clamp(min=1.0)
        outs = torch.tensor([self.output_width, self.output_height], dtype=torch.float32)  # (x, y)
        bins = size / outs
        ratio = torch.full_like(size, float(self.sampling_ratio))
        grids = ratio if self.sampling_ratio > 0 else torch.ceil(size / outs)
        grids = grids.clamp(min=0).long()  # a negative size is a runtime error in onnxruntime
        positions = []
        for axis, count in ((1, self.output_height), (0, self.output_width)):
            most = int(grids[:, axis].max()) if grids.numel() else 0
            cell = torch.arange(count, dtype=torch.float32).reshape(1, -1, 1)
            sub = torch.arange(most, dtype=torch.float32).reshape(1, 1, -1) + 0.5
            b, g = bins[:, axis].reshape(-1, 1, 1), grids[:, axis].to(torch.float32).reshape(-1, 1, 1)
            positions.append(box[:, axis].reshape(-1, 1, 1) + cell * b + sub * b / g)
        return positions[0], positions[1], grids[:, 1], grids[:, 0]

    def concrete(self, ctx: NodeContext, x: Tensor, rois: Tensor, batch_indices: Tensor) -> Tensor:
        height, width = x.shape[2], x.shape[3]
        ys, xs, grid_h, grid_w = self._grid(rois)
        vy, y0, y1, wy0, wy1 = _bilinear_taps(ys, height)
        vx, x0, x1, wx0, wx1 = _bilinear_taps(xs, width)
        out = torch.zeros((rois.shape[0], x.shape[1], self.output_height, self.output_width), dtype=torch.float64)
        for r in range(rois.shape[0]):
            plane = x[int(batch_indices[r])].to(torch.float64)
            gh, gw = int(grid_h[r]), int(grid_w[r])
            out[r] = self._pool(plane, [(t[r, :, :gh]) for t in (vy, y0, y1, wy0, wy1)],
                                [(t[r, :, :gw]) for t in (vx, x0, x1, wx0, wx1)], max(gh * gw, 1))
        return out.to(x.dtype)

    def _pool(self, plane: Tensor, ty: list[Tensor], tx: list[Tensor], count: int) -> Tensor:
        """(C, oh, ow) outputs of one roi from the taps of its samples, (oh, gh) and (ow, gw) per axis."""
        vy, y0, y1, wy0, wy1 = ty
        vx, x0, x1, wx0, wx1 = tx
        valid = (vy[:, None, :, None] & vx[None, :, None, :]).to(torch.float64)  # (oh, ow, gh, gw)
        products = []
        for yi, wy in ((y0, wy0), (y1, wy1)):
            for xi, wx in ((x0, wx0), (x1, wx1)):
                weight = (wy.to(torch.float64)[:, None, :, None] * wx.to(torch.float64)[None, :, None, :]) * valid
                value = plane[:, yi[:, None, :, None], xi[None, :, None, :]]  # (C, oh, ow, gh, gw)
                products.append(weight * value)
        if self.mode == "avg":
            return sum(products).sum((-2, -1)) / count
        if products[0].shape[-1] * products[0].shape[-2] == 0:
            return torch.zeros(products[0].shape[:3], dtype=torch.float64)
        return torch.stack(products).amax(0).amax((-2, -1))

    def abstract(self, ctx: NodeContext, x: Interval, rois: Interval, batch_indices: Interval) -> Interval:
        if x.rank != 4 or rois.shape is None:
            raise UnsupportedOperator("RoiAlign: needs a rank-4 input and rois of known shape")
        lo, hi = _plane_range(x)
        first, last = (t.reshape(-1).clamp(0, x.shape[0] - 1) for t in batch_indices.full())
        chosen = (torch.arange(x.shape[0]) >= first[:, None]) & (torch.arange(x.shape[0]) <= last[:, None])
        lo = torch.where(chosen[:, :, None], lo[None], torch.inf).amin(1).clamp(max=0.0)
        hi = torch.where(chosen[:, :, None], hi[None], -torch.inf).amax(1).clamp(min=0.0)
        if self.mode == "avg":
            terms = 4 * self._count_bound(rois) + 8
            lo, hi = arith.with_accumulation_error(lo, hi, torch.maximum(lo.abs(), hi.abs()), terms, x.elem_type,
                                                   lo >= 0)
        shape = (rois.shape[0], x.shape[1], self.output_height, self.output_width)
        splits = (tuple(range(shape[0])), tuple(range(shape[1])), (0,) if shape[2] else (), (0,) if shape[3] else ())
        grid = (*lo.shape, min(shape[2], 1), min(shape[3], 1))
        return Interval.create(lo.reshape(grid).clone(), hi.reshape(grid).clone(), splits, shape, x.elem_type,
                               ctx.budget)

    def _count_bound(self, rois: Interval) -> int:
        """Upper bound of the number of samples per output bin (capped: the error bound is infinite by then)."""
        if self.sampling_ratio > 0:
            return self.sampling_ratio**2
        lo, hi = rois.full()
        if lo.numel() == 0:
            return 1
        spans = (hi[:, 2:].amax(0) - lo[:, :2].amin(0)).to(torch.float64) * abs(self.spatial_scale)
        spans = spans.clamp(min=1.0)
        outs = torch.tensor([self.output_width, self.output_height], dtype=torch.float64)  # (x, y)
        counts = torch.ceil(spans / outs * (1 + 1e-6)) + 1
        return int(min(float(counts.prod()), 2.0**40))


@register("RoiAlign", since=16)
class RoiAlign(RoiAlign10):
    """RoiAlign from opset 16: the coordinate_transformation_mode attribute defaults to half_pixel."""

    coordinate_transformation_mode: str = "half_pixel"


# ------------------------------------------------------------------------------ NonMaxSuppression
def _corners(boxes: Tensor, center_point_box: int) -> Tensor:
    """(N, 4) float32 boxes as (y_min, x_min, y_max, x_max), as onnxruntime normalises them."""
    b = boxes.to(torch.float32)
    if center_point_box:
        half_w, half_h = b[:, 2] / 2, b[:, 3] / 2
        return torch.stack([b[:, 1] - half_h, b[:, 0] - half_w, b[:, 1] + half_h, b[:, 0] + half_w], 1)
    return torch.stack([torch.minimum(b[:, 0], b[:, 2]), torch.minimum(b[:, 1], b[:, 3]),
                        torch.maximum(b[:, 0], b[:, 2]), torch.maximum(b[:, 1], b[:, 3])], 1)


def _suppresses(a: Tensor, b: Tensor, threshold: Tensor) -> bool:
    """onnxruntime's SuppressByIOU in float32: IoU strictly above the threshold (degenerate boxes never)."""
    inter_h = torch.minimum(a[2], b[2]) - torch.maximum(a[0], b[0])
    inter_w = torch.minimum(a[3], b[3]) - torch.maximum(a[1], b[1])
    if bool(inter_h <= 0) or bool(inter_w <= 0):
        return False
    inter = inter_w * inter_h
    area_a = (a[2] - a[0]) * (a[3] - a[1])
    area_b = (b[2] - b[0]) * (b[3] - b[1])
    union = area_a + area_b - inter
    if bool(area_a <= 0) or bool(area_b <= 0) or bool(union <= 0):
        return False
    return bool(inter / union > threshold)


@register("NonMaxSuppression", since=10)
class NonMaxSuppression(OpRule):
    """Greedy per-(batch, class) box selection; output (selected, 3) int64 of [batch, class, box].

    The count of selected boxes depends on the values: for exact inputs the output is exact (the
    interpreter runs ``concrete``); otherwise it has an unknown shape, every value in [0, max index].
    """
    unknown_shapes = COUNTS

    center_point_box: int = 0
    rounds = False

    def concrete(self, ctx: NodeContext, boxes: Tensor, scores: Tensor, max_output: Tensor | None = None,
                 iou_threshold: Tensor | None = None, score_threshold: Tensor | None = None) -> Tensor:
        limit = int(max_output.reshape(-1)[0]) if max_output is not None and max_output.numel() else 0
        iou = iou_threshold.reshape(-1)[0].to(torch.float32) if iou_threshold is not None \
            and iou_threshold.numel() else torch.tensor(0.0)
        floor = score_threshold.reshape(-1)[0].to(torch.float32) if score_threshold is not None \
            and score_threshold.numel() else None
        rows = []
        for n in range(boxes.shape[0]):
            corners = _corners(boxes[n], self.center_point_box)
            for c in range(scores.shape[1]):
                rows += [[n, c, i] for i in self._select(corners, scores[n, c].to(torch.float32), limit, iou, floor)]
        return torch.tensor(rows, dtype=torch.int64).reshape(-1, 3)

    def _select(self, corners: Tensor, scores: Tensor, limit: int, iou: Tensor, floor: Tensor | None) -> list[int]:
        if limit <= 0:
            return []
        keys = sorted(range(scores.numel()), key=lambda i: (-float(scores[i]), i))
        chosen: list[int] = []
        for i in keys:
            if floor is not None and not bool(scores[i] > floor):
                continue
            if not any(_suppresses(corners[j], corners[i], iou) for j in chosen):
                chosen.append(i)
                if len(chosen) >= limit:
                    break
        return chosen

    def abstract(self, ctx: NodeContext, boxes: Interval, scores: Interval, *rest: Interval | None) -> Interval:
        operands = (boxes, scores, *rest)
        if all(iv is None or iv.is_exact for iv in operands):
            values = [None if iv is None else iv.exact_value() for iv in operands]
            return Interval.point(self.concrete(ctx, *values), TensorProto.INT64)
        if boxes.shape is None or scores.shape is None:
            raise UnsupportedOperator("NonMaxSuppression: boxes and scores need known shapes")
        top = max(boxes.shape[0], scores.shape[1], boxes.shape[1], 1) - 1
        return Interval.create(torch.tensor(0, dtype=torch.int64), torch.tensor(top, dtype=torch.int64), (), None,
                               TensorProto.INT64)
