"""Resize (and its predecessor Upsample): nearest, linear and cubic interpolation, separable per axis.

Coordinates are computed in float32 as onnxruntime does, so nearest resizing is exact; linear
interpolation stays inside the hull of its neighbours (plus float slack); cubic can overshoot and is
bounded by the kernel's negative weight mass S: [(1 + S) l - S u, (1 + S) u - S l]. With
``antialias`` (opset 18), linear and cubic shrinking use Pillow's filters stretched by 1 / scale
(onnxruntime's algorithm): a window of taps with weights normalised to sum 1, taps past an edge
folded onto it (or dropped, with ``exclude_outside``); bounds are the hull of the window, widened
by the negative mass as for cubic. ``keep_aspect_ratio_policy`` (with ``sizes``) scales every
resized axis by one factor, the smallest (``not_larger``) or largest (``not_smaller``) of
``sizes / input``, and rounds each output length to nearest. Before opset 11
(Resize-10, Upsample-7/9) coordinates are asymmetric (x / scale) and nearest takes floor(x / scale)
on an axis that grows and ceil(x / scale) on one that shrinks, as onnxruntime does for these versions.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from onnx import TensorProto
from torch import Tensor

from ranum.domain import arith
from ranum.domain.interval import Interval
from ranum.errors import UnsupportedOperator
from ranum.ops._base import NodeContext, OpRule
from ranum.ops._range_hull import hull_blocks
from ranum.ops.hazards import Overflow
from ranum.ops.indexing import F32_EPS, exact_operand
from ranum.ops.registry import register

__all__ = ["Resize", "Resize10", "Upsample", "Upsample7"]


_NEAREST: dict[str, Callable[[Tensor], Tensor]] = {
    "round_prefer_floor": lambda c: torch.where(c == c.trunc() + 0.5, c.floor(), c.round()),
    "round_prefer_ceil": lambda c: torch.where(c == c.trunc() + 0.5, c.ceil(), c.round()),
    "floor": torch.floor,
    "ceil": torch.ceil,
}
_COORDINATE_MODES = ("half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners", "asymmetric",
                     "tf_half_pixel_for_nn", "tf_crop_and_resize")


def _cubic_weights(t: Tensor, a: float) -> Tensor:
    """Keys cubic weights (float64) of the taps floor(c) - 1 .. floor(c) + 2, for t = c - floor(c)."""
    t = t.to(torch.float64)
    far = lambda x: ((a * x - 5 * a) * x + 8 * a) * x - 4 * a  # noqa: E731
    near = lambda x: ((a + 2) * x - (a + 3)) * x * x + 1  # noqa: E731
    return torch.stack([far(t + 1), near(t), near(1 - t), far(2 - t)])


_ASPECT_POLICIES = {"stretch": None, "not_larger": min, "not_smaller": max}


def _antialias_filter(x: Tensor, mode: str, a: float) -> Tensor:
    """Pillow's filters on float32 offsets: the triangle (linear) and Keys cubic with coefficient ``a``."""
    x = x.abs()
    zero = torch.zeros_like(x)
    if mode == "linear":
        return torch.where(x < 1, 1 - x, zero)
    near = ((a + 2) * x - (a + 3)) * x * x + 1
    far = (((x - 5) * x + 8) * x - 4) * a
    return torch.where(x < 1, near, torch.where(x < 2, far, zero))


@register("Resize", since=11)
class Resize(OpRule):
    """Nearest / linear / cubic resizing, separable per axis, with antialiasing and aspect policies.

    Coordinates are computed in float32 like onnxruntime. Linear results lie in the hull of the
    taps; cubic ones may overshoot it by the kernel's negative weight mass S: [(1+S)l - Su, (1+S)u - Sl].
    Linear/cubic tap ranges allow a coordinate error of a few float32 ulps.
    """

    parameter_operands = frozenset({1, 2, 3})  # roi, scales, sizes

    mode: str = "nearest"
    coordinate_transformation_mode: str = "half_pixel"
    nearest_mode: str = "round_prefer_floor"
    cubic_coeff_a: float = -0.75
    exclude_outside: int = 0
    extrapolation_value: float = 0.0
    antialias: int = 0
    axes: tuple[int, ...] | None = None
    keep_aspect_ratio_policy: str = "stretch"
    hazards = (Overflow(),)
    ulps = 4.0

    @property
    def rounds(self) -> bool:  # type: ignore[override]
        return self.mode != "nearest"

    @property
    def accumulates(self) -> bool:  # type: ignore[override]
        return self.mode != "nearest"

    def __post_init__(self) -> None:
        if self.mode not in ("nearest", "linear", "cubic") or self.nearest_mode not in _NEAREST \
                or self.coordinate_transformation_mode not in _COORDINATE_MODES:
            raise UnsupportedOperator(f"Resize: unsupported mode {self.mode}/{self.nearest_mode}/"
                                      f"{self.coordinate_transformation_mode}")
        if self.keep_aspect_ratio_policy not in _ASPECT_POLICIES:
            raise UnsupportedOperator(f"Resize: unknown keep_aspect_ratio_policy '{self.keep_aspect_ratio_policy}'")

    def _plan(self, shape: Sequence[int], roi: Tensor | None, scales: Tensor | None, sizes: Tensor | None
              ) -> list[tuple[int, Tensor, Tensor]]:
        """(axis, float32 source coordinate of every output position, float32 scale) per resized axis."""
        rank = len(shape)
        axes = list(range(rank)) if self.axes is None else [a % rank for a in self.axes]
        inputs = torch.tensor([float(shape[a]) for a in axes], dtype=torch.float32)
        if scales is not None:
            scale = scales.to(torch.float32).reshape(-1)
            exact = scale.to(torch.float64) * inputs.to(torch.float64)
            out = (scale * inputs).floor().long().tolist()
            if self.coordinate_transformation_mode in ("align_corners", "tf_crop_and_resize") \
                    and not bool((exact == exact.floor()).all()):
                raise UnsupportedOperator("Resize: with a fractional output length, onnxruntime and the ONNX "
                                          "reference disagree on align_corners / tf_crop_and_resize coordinates")
        elif sizes is not None:
            out, scale = self._sized(inputs, [int(v) for v in sizes.reshape(-1)])
        else:
            raise UnsupportedOperator("Resize needs scales or sizes")
        unit = torch.tensor([0.0] * len(axes) + [1.0] * len(axes))
        box = roi.to(torch.float32).reshape(-1) if roi is not None else unit
        plan = []
        for i, axis in enumerate(axes):
            n, m = shape[axis], out[i]
            tf_mode = self.coordinate_transformation_mode.startswith("tf_")
            if n == m and bool(scale[i] == 1) and not tf_mode:
                continue
            plan.append((axis, self._coords(n, m, scale[i], box[i], box[i + len(axes)]), scale[i]))
        return plan

    def most_copies(self, shape: Sequence[int], roi: Interval | None = None, scales: Interval | None = None,
                    sizes: Interval | None = None) -> int | None:
        """How many outputs one input element feeds at most, in nearest mode: the product over the resized
        axes of the most positions along each that read the same one (4 for a doubling of two axes). None in
        the other modes, or where a crop extrapolates a non-zero value (those outputs are no copies)."""
        if self.mode != "nearest" or \
                self.coordinate_transformation_mode == "tf_crop_and_resize" and self.extrapolation_value != 0:
            return None
        copies = 1
        for axis, coords, _ in self._plan(shape, *self._inputs(roi, scales, sizes)):
            index = _NEAREST[self.nearest_mode](coords).clamp(0, shape[axis] - 1).long()
            copies *= int(torch.bincount(index).max()) if index.numel() else 0
        return copies

    def _sized(self, inputs: Tensor, sizes: list[int]) -> tuple[list[int], Tensor]:
        """Output lengths and float32 scales for ``sizes`` under the aspect-ratio policy: one scale
        for every resized axis (the smallest or largest ratio), each length rounded to nearest."""
        scale = torch.tensor(sizes, dtype=torch.float32) / inputs
        pick = _ASPECT_POLICIES[self.keep_aspect_ratio_policy]
        if pick is None:
            return sizes, scale
        common = pick(scale.tolist())
        scale = torch.full_like(scale, common)
        out = (scale.to(torch.float64) * inputs.to(torch.float64) + 0.5).floor().long().tolist()
        return out, scale

    def _coords(self, n: int, m: int, scale: Tensor, start: Tensor, end: Tensor) -> Tensor:
        x = torch.arange(m, dtype=torch.float32)
        mode = self.coordinate_transformation_mode
        if mode == "asymmetric":
            return x / scale
        if mode == "tf_half_pixel_for_nn":
            return (x + 0.5) / scale
        if mode == "align_corners":
            return x * (n - 1) / (m - 1) if m > 1 else torch.zeros_like(x)
        if mode == "tf_crop_and_resize":
            if m > 1:
                return start * (n - 1) + x * (end - start) * (n - 1) / (m - 1)
            return 0.5 * (start + end) * (n - 1) + torch.zeros_like(x)
        if mode == "pytorch_half_pixel" and m <= 1:
            return torch.zeros_like(x)
        base = (x + 0.5) / scale - 0.5
        if mode == "half_pixel_symmetric":
            adjustment = m / (scale * n)
            return n / 2 * (1 - adjustment) + base
        return base

    @property
    def _antialiased(self) -> bool:
        """Whether the taps are the antialiasing filter's (linear or cubic; nearest ignores it)."""
        return bool(self.antialias) and self.mode != "nearest"

    def _taps(self, c: Tensor, n: int, scale: Tensor) -> tuple[Tensor, Tensor]:
        """Concrete taps: indices (K, m) and float64 weights (K, m)."""
        if self._antialiased:
            return self._antialias_taps(c, n, scale)
        if self.mode == "nearest":
            index = _NEAREST[self.nearest_mode](c).clamp(0, n - 1).long().unsqueeze(0)
            return index, torch.ones(index.shape, dtype=torch.float64)
        if self.mode == "linear":
            cc = c.clamp(0, n - 1)
            first = cc.floor().long().clamp(max=n - 1)
            second = (first + 1).clamp(max=n - 1)
            w2 = (cc - first.to(torch.float32)).to(torch.float64)
            return torch.stack([first, second]), torch.stack([1 - w2, w2])
        base = c.floor()
        index = base.long() + torch.arange(-1, 3).unsqueeze(1)
        weights = _cubic_weights(c - base, self.cubic_coeff_a)
        if self.exclude_outside:
            weights = torch.where((index >= 0) & (index < n), weights, torch.zeros_like(weights))
            weights = weights / weights.sum(0, keepdim=True)
        return index.clamp(0, n - 1), weights

    def _antialias_taps(self, c: Tensor, n: int, scale: Tensor) -> tuple[Tensor, Tensor]:
        """Taps of the antialiasing filter, as onnxruntime sets them up (float32 arithmetic).

        Around ``center = c + 0.5`` the filter reaches ``support`` = its half-width, times
        ``1 / scale`` when shrinking; the window is the taps ``floor(center -+ support + 0.5)`` (at
        most ``2 ceil(support) + 1``). Weights are the filter at ``(tap - center + 0.5) / stretch``,
        divided by their sum over the window; taps past an edge read the edge (their weight folds
        onto it), or are dropped first with ``exclude_outside``. A window wholly outside the input
        has no taps (the output is 0)."""
        one = torch.tensor(1.0, dtype=torch.float32)
        stretch = one / scale  # input pixels per output pixel
        half = 1.0 if self.mode == "linear" else 2.0
        support = half * stretch if bool(stretch >= 1) else torch.tensor(half, dtype=torch.float32)
        inverse = one / stretch if bool(stretch >= 1) else one
        window = int(math.ceil(float(support))) * 2 + 1
        center = c.to(torch.float32) + 0.5
        first = torch.floor(center - support + 0.5).long()
        last = torch.floor(center + support + 0.5).long()
        last = first + (last - first).clamp(0, window)
        first_cut, last_cut = first.clamp(0, n), last.clamp(0, n)
        if self.exclude_outside:
            first, last = first_cut, last_cut
        offsets = torch.arange(window).unsqueeze(1)
        taps = first.unsqueeze(0) + offsets
        inside = offsets < (last - first).unsqueeze(0)
        offset = (taps.to(torch.float32) - center.unsqueeze(0) + 0.5) * inverse
        weights = torch.where(inside, _antialias_filter(offset, self.mode, self.cubic_coeff_a).to(torch.float64),
                              torch.zeros((), dtype=torch.float64))
        total = weights.sum(0, keepdim=True)
        weights = weights / torch.where(total == 0, torch.ones_like(total), total)
        weights = torch.where((first_cut < last_cut).unsqueeze(0), weights, torch.zeros_like(weights))
        return taps.clamp(0, n - 1), weights

    def _extrapolated(self, c: Tensor, n: int, slack: Tensor | float = 0.0) -> tuple[Tensor, Tensor]:
        """(maybe, surely) outside [0, n - 1] under tf_crop_and_resize."""
        if self.coordinate_transformation_mode != "tf_crop_and_resize":
            none = torch.zeros(c.shape, dtype=torch.bool)
            return none, none
        c = c.to(torch.float64)
        return (c - slack < 0) | (c + slack > n - 1), (c + slack < 0) | (c - slack > n - 1)

    def _inputs(self, roi: Interval | None, scales: Interval | None, sizes: Interval | None
                ) -> tuple[Tensor | None, Tensor | None, Tensor | None]:
        return (exact_operand(roi, "Resize roi"), exact_operand(scales, "Resize scales"),
                exact_operand(sizes, "Resize sizes"))

    def concrete(self, ctx: NodeContext, x: Tensor, roi: Tensor | None = None, scales: Tensor | None = None,
                 sizes: Tensor | None = None) -> Tensor:
        present = [None if t is None or t.numel() == 0 else t for t in (roi, scales, sizes)]
        out = x.to(torch.float64)
        for axis, c, scale in self._plan(x.shape, *present):
            index, weights = self._taps(c, x.shape[axis], scale)
            view = [1] * x.dim()
            view[axis] = -1
            out = sum(w.reshape(view) * out.index_select(axis, i) for i, w in zip(index, weights))
            out = torch.where(self._extrapolated(c, x.shape[axis])[1].reshape(view),
                              torch.full_like(out, self.extrapolation_value), out)
        return out.to(x.dtype) if x.is_floating_point() else out.round().to(x.dtype)

    def abstract(self, ctx: NodeContext, x: Interval, roi: Interval | None = None, scales: Interval | None = None,
                 sizes: Interval | None = None) -> Interval:
        lo, hi, splits = x.lower, x.upper, list(x.splits)
        shape = list(x.shape)
        for axis, c, scale in self._plan(x.shape, *self._inputs(roi, scales, sizes)):
            lo, hi = self._axis_bounds(lo, hi, splits[axis], axis, c, scale, shape[axis], x.elem_type)
            splits[axis], shape[axis] = tuple(range(c.numel())), c.numel()
        return Interval.create(lo, hi, tuple(splits), shape, x.elem_type, ctx.budget)

    def _axis_bounds(self, lo: Tensor, hi: Tensor, splits: tuple[int, ...], axis: int, c: Tensor, scale: Tensor,
                     n: int, elem_type: int) -> tuple[Tensor, Tensor]:
        nearest = self.mode == "nearest"
        # onnxruntime computes half_pixel_symmetric's coordinate in another order: one within a few ulps of
        # a rounding boundary may pick either neighbour, so nearest takes the hull of both there
        exact_coords = nearest and self.coordinate_transformation_mode not in ("tf_crop_and_resize",
                                                                                "half_pixel_symmetric")
        delta = 0.0 if exact_coords else 8 * F32_EPS * (c.abs().to(torch.float64) + n + 2)
        low, high = c.to(torch.float64) - delta, c.to(torch.float64) + delta
        taps = self._taps(c, n, scale) if self._antialiased or self.mode == "cubic" else None
        if self._antialiased:  # the window's taps, one more on each side for the float coordinates
            index, weights = taps
            used = weights != 0
            first = torch.where(used, index, torch.full_like(index, n)).amin(0).sub(1).clamp(0, n - 1)
            last = torch.where(used, index, torch.full_like(index, -1)).amax(0).add(1).clamp(0, n - 1)
        elif nearest:
            first, last = (_NEAREST[self.nearest_mode](t).clamp(0, n - 1).long() for t in (low, high))
        else:
            reach = 1 if self.mode == "linear" else 2
            first = (low.clamp(0, n - 1) if reach == 1 else low - 1).floor().clamp(0, n - 1).long()
            last = (high.clamp(0, n - 1).floor() + reach).clamp(0, n - 1).long()
        lo, hi = hull_blocks(lo, hi, splits, axis, [(first, last)])
        view = [1] * lo.dim()
        view[axis] = -1
        if not nearest:
            lo, hi = self._overshoot(lo, hi, taps, delta, view, elem_type)
        maybe, surely = self._extrapolated(c, n, delta)
        value = torch.tensor(self.extrapolation_value, dtype=lo.dtype)
        lo = torch.where(surely.reshape(view), value, torch.where(maybe.reshape(view), torch.minimum(lo, value), lo))
        hi = torch.where(surely.reshape(view), value, torch.where(maybe.reshape(view), torch.maximum(hi, value), hi))
        return lo, hi

    def _overshoot(self, lo: Tensor, hi: Tensor, taps: tuple[Tensor, Tensor] | None, delta: Tensor | float,
                   view: list[int], elem_type: int) -> tuple[Tensor, Tensor]:
        """Cubic negative-weight overshoot, then the float error of the weighted sum (``taps``: the axis'
        indices and weights, given for cubic and antialiased resizing)."""
        mass = torch.zeros((), dtype=torch.float64)
        antialiased = self._antialiased
        if antialiased:
            index, weights = taps
            if self.mode == "cubic":  # float32 weights and coordinates: a generous relative slack
                mass = weights.clamp(max=0).abs().sum(0) * (1 + 1e-3) + 1e-5
        elif self.mode == "cubic":
            index, weights = taps
            total = weights.sum(0).abs().clamp(min=0.1)
            a = abs(self.cubic_coeff_a)
            mass = weights.clamp(max=0).abs().sum(0) + 4 * delta * (45 * a + 12) / total + 1e-6
        s = mass.reshape(view)
        scaled = lambda f, t: torch.where(f == 0, torch.zeros_like(t), f * t)  # noqa: E731
        new_lo = scaled(1 + s, lo) - scaled(s, hi)
        new_hi = scaled(1 + s, hi) - scaled(s, lo)
        magnitude = torch.maximum(lo.abs(), hi.abs()) * (1 + 2 * s)
        nonneg = (lo >= 0) & (s == 0)
        # taps, plus the float error of the weights (and of their float32 normalisation)
        terms = 2 * index.shape[0] + 4 if antialiased else (4 if self.mode == "linear" else 8)
        return arith.with_accumulation_error(new_lo, new_hi, magnitude, terms, elem_type, nonneg)


@register("Resize", since=10)
class Resize10(Resize):
    """Resize-10: ``scales`` only, modes nearest / linear, asymmetric coordinates c = x / scale.

    Nearest picks floor(c) on an axis with scale >= 1 and ceil(c) on one with scale < 1 (onnxruntime's
    rule before opset 11; the ONNX reference only defines integer upsampling, where the two agree).
    """

    parameter_operands = frozenset({1})  # scales

    mode: str = "nearest"
    coordinate_transformation_mode: str = "asymmetric"
    nearest_mode: str = "floor"

    def __post_init__(self) -> None:
        if self.mode not in ("nearest", "linear"):
            raise UnsupportedOperator(f"{self.op_type} before opset 11: unknown mode '{self.mode}' "
                                      "(nearest or linear)")
        super().__post_init__()

    def _coords(self, n: int, m: int, scale: Tensor, start: Tensor, end: Tensor) -> Tensor:
        c = super()._coords(n, m, scale, start, end)
        return c.ceil() if self.mode == "nearest" and bool(scale < 1) else c

    def concrete(self, ctx: NodeContext, x: Tensor, scales: Tensor | None = None) -> Tensor:
        return super().concrete(ctx, x, None, scales, None)

    def abstract(self, ctx: NodeContext, x: Interval, scales: Interval | None = None) -> Interval:
        return super().abstract(ctx, x, None, scales, None)


@register("Upsample", since=9)
class Upsample(Resize10):
    """Upsample-9: Resize-10 under another name (from opset 10 on Upsample is deprecated: the ONNX checker
    and onnxruntime reject the model, and so does ranum's loader)."""


@register("Upsample", since=7)
class Upsample7(Resize10):
    """Upsample-7: the ``scales`` are an attribute."""

    scales: tuple[float, ...] = ()

    def _scales(self) -> Tensor:
        return torch.tensor(self.scales, dtype=torch.float32)

    def concrete(self, ctx: NodeContext, x: Tensor) -> Tensor:
        return super().concrete(ctx, x, self._scales())

    def abstract(self, ctx: NodeContext, x: Interval) -> Interval:
        return super().abstract(ctx, x, Interval.point(self._scales(), TensorProto.FLOAT))
