"""Quantized operators: DynamicQuantizeLinear, MatMulInteger, ConvInteger, QLinearMatMul, QLinearConv.

Concrete rules follow onnxruntime's CPU kernels: DynamicQuantizeLinear takes the scale
``(max(0, max x) - min(0, min x)) / 255`` in float32 (1 when x is all 0), its zero point
``round(clamp(-min / scale, 0, 255))`` (255 when that quotient is NaN) and ``y = sat(round(x / scale) + zp)``;
the integer products accumulate ``(a - a_zp) * (b - b_zp)`` exactly in int32; the QLinear operators then
requantise with the float32 multiplier ``a_scale * b_scale / y_scale``, rounding half to even and saturating.

Abstract rules: integer sums are exact in int64 bounds (midpoint-radius products, float64 exact at these
magnitudes, rounded outward to integers); a sum that may leave int32 wraps and gets the whole int32 range.
On x86 without VNNI, onnxruntime multiplies int8 weights with ``vpmaddubsw``, which saturates the sum of
each pair of raw products to int16: where the weights are int8, the bounds grow by what that saturation
can remove or add (see :func:`_saturation`). Float steps are bounded with one float32 rounding each
(relative 2**-24 plus one subnormal), then rounding to integers and saturation are monotone.
Invariants: integer bounds are int64 tensors; a quotient by a scale interval holding 0, or a multiplier
that may be infinite, gives the output type's whole range.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from onnx import TensorProto
from torch import Tensor

from ranum.domain import arith
from ranum.domain.interval import Interval
from ranum.errors import UnsupportedOperator
from ranum.ops._base import NodeContext, OpRule
from ranum.ops.conv_pool import Conv, ConvGeometry
from ranum.ops.convert import _QUANTIZED, _quantized_type, _quotient_bounds
from ranum.ops.hazards import OutputOverflow, equal_to
from ranum.ops.registry import register

__all__ = ["ConvInteger", "DynamicQuantizeLinear", "MatMulInteger", "QLinearConv", "QLinearMatMul"]

INT32 = TensorProto.INT32
_INT16_RANGE = (-(2**15), 2**15 - 1)
_UNIT = 2.0**-24  # float32 unit roundoff
_TINY = 2.0**-149  # smallest float32 subnormal: absolute error of a rounding below the normal range
_F32_MAX = float(torch.finfo(torch.float32).max)

Bounds = tuple[Tensor, Tensor]


# ------------------------------------------------------------------------------ shared bounds
def _rounded32(lo: Tensor, hi: Tensor, roundings: int) -> Bounds:
    """Bounds of a value in ``[lo, hi]`` after ``roundings`` float32 roundings to nearest (overflow: inf)."""
    k = float(roundings)
    lo = lo - lo.abs() * (k * 2 * _UNIT) - k * _TINY
    hi = hi + hi.abs() * (k * 2 * _UNIT) + k * _TINY
    return lo, hi


def _shifted(x: Interval, zero_point: Interval | None, layout: Callable[[Tensor], Tensor]) -> Bounds:
    """Full int64 bounds of ``x - zero_point`` (the zero point laid out to broadcast against x)."""
    lo, hi = x.full()
    if zero_point is None:
        return lo.to(torch.int64), hi.to(torch.int64)
    zl, zh = zero_point.full()
    return lo.to(torch.int64) - layout(zh).to(torch.int64), hi.to(torch.int64) - layout(zl).to(torch.int64)


def _product(fn: Callable[[Tensor, Tensor], Tensor], a: Bounds, b: Bounds) -> Bounds:
    """Integer bounds of the bilinear ``fn(a, b)`` (matmul, conv) by midpoint and radius.

    Each term ``p q`` with ``p = cp +- rp``, ``q = cq +- rq`` differs from ``cp cq`` by at most
    ``|cp| rq + rp |cq| + rp rq``; summing gives the radius. All values are multiples of 1/4 far below
    2**50, so float64 computes them exactly; the bounds are then rounded outward to integers.
    """
    (al, ah), (bl, bh) = [(t.to(torch.float64) for t in pair) for pair in (a, b)]
    ca, ra, cb, rb = (al + ah) / 2, (ah - al) / 2, (bl + bh) / 2, (bh - bl) / 2
    mid = fn(ca, cb)
    terms = []  # products with a zero radius are zero: exact weights take two products, not four
    if bool(rb.any()):
        terms.append(fn(ca.abs(), rb))
    if bool(ra.any()):
        terms.append(fn(ra, cb.abs()))
    if len(terms) == 2:
        terms.append(fn(ra, rb))
    rad = sum(terms, torch.zeros_like(mid))
    return (mid - rad).floor().to(torch.int64), (mid + rad).ceil().to(torch.int64)


def _saturation(a: Interval, b_lo: Tensor, b_hi: Tensor, count: int, weights_type: int,
                padding: Interval | None = None) -> Bounds:
    """Bounds of what int16 saturation of pair sums adds to an integer dot product of ``count`` terms.

    onnxruntime's x86 kernels without VNNI compute ``u8 x s8`` products with ``vpmaddubsw``, which
    clamps each sum of two raw products (before any zero point is subtracted) to int16. A pair sum ``p``
    in ``[2 pmin, 2 pmax]`` then moves by ``sat(p) - p``, in ``[min(0, 32767 - 2 pmax), max(0, -32768 - 2 pmin)]``,
    for at most ``ceil(count / 2)`` pairs. ``pmin``/``pmax`` bound one raw product from the extreme raw
    values of ``a`` (all of it, and the raw ``padding`` value: a convolution pads with the zero point) and
    of ``b`` (per output column or channel: ``b_lo``, ``b_hi``). Only int8 weights take that path; other
    types give (0, 0).
    """
    zero = torch.zeros((), dtype=torch.int64)
    if weights_type != TensorProto.INT8:
        return zero, zero
    lo, hi = a.lower.min().to(torch.int64), a.upper.max().to(torch.int64)
    if padding is not None:
        lo, hi = torch.minimum(lo, padding.lower.min()), torch.maximum(hi, padding.upper.max())
    corners = torch.stack([lo * b_lo, lo * b_hi, hi * b_lo, hi * b_hi])
    pairs = (count + 1) // 2
    low = pairs * torch.clamp(_INT16_RANGE[1] - 2 * corners.amax(0), max=0)
    high = pairs * torch.clamp(_INT16_RANGE[0] - 2 * corners.amin(0), min=0)
    return low, high


def _int32(lo: Tensor, hi: Tensor, shape: Sequence[int], budget: int) -> Interval:
    """An int32 result: where the int64 bounds leave int32, the sum wraps to any int32 value (as every
    integer interval past its type's range does, see :class:`Interval`)."""
    return Interval.from_full(lo.expand(shape), hi.expand(shape), INT32, budget)


def _multiplier(scales: Sequence[Bounds], y_scale: Bounds) -> tuple[Bounds, Tensor]:
    """Bounds of the float32 multiplier ``fl(fl(a_scale * b_scale) / y_scale)`` and where it is valid
    (finite: a y_scale range without 0 and no float32 overflow; elsewhere the output may be anything)."""
    (al, ah), (bl, bh) = scales
    tl, th = _rounded32(*arith.mul(al, ah, bl, bh), 1)
    yl, yh = y_scale
    has_zero = (yl <= 0) & (yh >= 0)
    one = torch.ones_like(yl)
    inv_l, inv_h = 1 / torch.where(has_zero, one, yh), 1 / torch.where(has_zero, one, yl)
    ml, mh = _rounded32(*arith.mul(tl, th, inv_l, inv_h), 1)
    finite = (torch.maximum(th.abs(), tl.abs()) < _F32_MAX) & (torch.maximum(mh.abs(), ml.abs()) < _F32_MAX)
    return (ml, mh), finite & ~has_zero


def _requantize(acc: Bounds, mult: Bounds, valid: Tensor, zero_point: Bounds, out_type: int) -> Bounds:
    """Bounds of ``sat(round_half_even(fl(fl(acc) * m)) + zp)``; the whole type's range where not ``valid``.

    The int32 to float32 conversion and the product round once each; rounding to an integer, adding the
    zero point and saturating are monotone, so they map the bounds directly.
    """
    low, high = _QUANTIZED[out_type]
    fl, fh = _rounded32(acc[0].to(torch.float64), acc[1].to(torch.float64), 1)
    vl, vh = _rounded32(*arith.mul(fl, fh, *mult), 1)
    zl, zh = (z.to(torch.float64) for z in zero_point)
    lo = (torch.round(vl) + zl).clamp(low, high)
    hi = (torch.round(vh) + zh).clamp(low, high)
    lo = torch.where(valid, lo, torch.full_like(lo, low))
    hi = torch.where(valid, hi, torch.full_like(hi, high))
    return lo.to(torch.int64), hi.to(torch.int64)


def _requantize_concrete(acc: Tensor, mult: Tensor, zero_point: Tensor, out_dtype: torch.dtype,
                         out_type: int) -> Tensor:
    """onnxruntime's MlasRequantizeOutput: float32 product, clamp, round half to even, add zp."""
    low, high = _QUANTIZED[out_type]
    value = acc.to(torch.float32) * mult
    zp = zero_point.to(torch.float32)
    # NaN (0 times an infinite multiplier) falls to the lower clamp, as _mm_max_ps does
    value = torch.where(torch.isnan(value), low - zp, value)
    value = torch.minimum(torch.maximum(value, low - zp), high - zp)
    return (torch.round(value) + zp).to(out_dtype)


# ------------------------------------------------------------------------------ DynamicQuantizeLinear
def _step(x: Tensor, direction: float) -> Tensor:
    """The float32 neighbour of the float32 values ``x`` (float64 tensor) toward ``direction``."""
    x32 = x.to(torch.float32)
    return torch.nextafter(x32, torch.full_like(x32, direction)).to(torch.float64)


def _dql_scale(x: Interval) -> tuple[Bounds, bool]:
    """Bounds of DynamicQuantizeLinear's scale, and whether its lower bound is above 0.

    ``max(0, max x)`` lies between ``max(0, largest lower bound)`` and ``max(0, largest upper bound)``,
    ``min(0, min x)`` between ``min(0, smallest lower bound)`` and ``min(0, smallest upper bound)``.
    The float32 difference and quotient round monotonically; each bound is rounded through float64 and
    then stepped one float32 neighbour outward (covers double rounding). An all-zero x (possible when every
    element's range holds 0) gives the scale 1.
    """
    top_lo, top_hi = x.lower.max().clamp(min=0), x.upper.max().clamp(min=0)
    bot_lo, bot_hi = x.lower.min().clamp(max=0), x.upper.min().clamp(max=0)
    span_lo = _step(top_lo - bot_hi, -math.inf).clamp(min=0)
    span_hi = _step(top_hi - bot_lo, math.inf)
    scale_lo = _step(span_lo / 255, -math.inf).clamp(min=0)
    scale_hi = _step(span_hi / 255, math.inf)
    if bool(top_lo == 0) and bool(bot_hi == 0):
        scale_hi = torch.maximum(scale_hi, torch.ones_like(scale_hi))
    return (scale_lo, scale_hi), bool(scale_lo > 0)


@register("DynamicQuantizeLinear", since=11)
class DynamicQuantizeLinear(OpRule):
    """y, y_scale, y_zero_point = uint8 quantization of x with a scale and zero point from x's range."""

    hazards = (OutputOverflow(description="the quantization scale (max(x, 0) - min(x, 0)) / 255 overflows to "
                                          "infinity"),)
    rounds = False  # the scale's float32 rounding is bounded by the rule itself

    def concrete(self, ctx: NodeContext, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        x = x.to(torch.float32)
        zero = torch.zeros((), dtype=torch.float32)
        top = torch.maximum(x.max(), zero) if x.numel() else zero
        bot = torch.minimum(x.min(), zero) if x.numel() else zero
        scale = torch.where(top == bot, torch.ones_like(zero), (top - bot) / 255)
        start = zero - bot / scale
        start = torch.where(torch.isnan(start), torch.full_like(start, 255.0), start)  # std::min(255, NaN)
        zp = torch.round(start.clamp(0.0, 255.0))
        q = torch.round(x / scale) + zp
        q = torch.where(torch.isnan(q), zero, q.clamp(0.0, 255.0))
        return q.to(torch.uint8), scale, zp.to(torch.uint8)

    def abstract(self, ctx: NodeContext, x: Interval) -> tuple[Interval, Interval, Interval]:
        if x.numblocks == 0:
            raise UnsupportedOperator("DynamicQuantizeLinear: empty input")
        (sl, sh), positive = _dql_scale(x)
        scale = Interval.create(sl, sh, (), (), TensorProto.FLOAT)
        zl, zh = torch.zeros((), dtype=torch.int64), torch.full((), 255, dtype=torch.int64)
        if positive:  # zp = round(clamp(-min / scale)), min in [bot_lo, bot_hi] <= 0
            bot_lo, bot_hi = x.lower.min().clamp(max=0), x.upper.min().clamp(max=0)
            ql, qh = _rounded32(-bot_hi / sh, -bot_lo / sl, 1)
            zl, zh = (torch.round(q.clamp(0.0, 255.0)).to(torch.int64) for q in (ql, qh))
        zero_point = Interval.create(zl, zh, (), (), TensorProto.UINT8)
        return self._quantized(x, (sl, sh), (zl, zh), positive), scale, zero_point

    @staticmethod
    def _quantized(x: Interval, scale: Bounds, zero_point: Bounds, positive: bool) -> Interval:
        """y's bounds from x / scale (float32 division) as QuantizeLinear bounds it, when the scale is above 0."""
        if not positive:
            return Interval.uniform(0, 255, x.shape, TensorProto.UINT8)
        lo, hi = _quotient_bounds(x.lower, x.upper, *scale, 2 * _UNIT)
        lo = (torch.round(lo) + zero_point[0].to(torch.float64)).clamp(0, 255)
        hi = (torch.round(hi) + zero_point[1].to(torch.float64)).clamp(0, 255)
        return x.with_bounds(lo.to(torch.int64), hi.to(torch.int64), TensorProto.UINT8)


# ------------------------------------------------------------------------------ integer matmul
def _row_layout(param: Sequence[int], a_shape: Sequence[int], op: str) -> Callable[[Tensor], Tensor]:
    """A's zero point or scale: scalar (per tensor), M-vector (per row) or N-D ``[..., M, 1]``."""
    if math.prod(param) == 1 and len(param) <= 1:
        return lambda t: t.reshape(())
    if len(param) == 1 and len(a_shape) >= 2 and param[0] == a_shape[-2]:
        return lambda t: t.reshape(-1, 1)
    if len(param) == len(a_shape) and param[-1] == 1:
        return lambda t: t
    raise UnsupportedOperator(f"{op}: A's parameter of shape {tuple(param)} does not fit A {tuple(a_shape)}")


def _col_layout(param: Sequence[int], b_shape: Sequence[int], op: str) -> Callable[[Tensor], Tensor]:
    """B's zero point or scale: scalar (per tensor), N-vector (per column) or N-D ``[..., 1, N]``."""
    if math.prod(param) == 1 and len(param) <= 1:
        return lambda t: t.reshape(())
    if len(param) == 1 and param[0] == b_shape[-1]:
        return lambda t: t
    if len(param) == len(b_shape) and len(param) >= 2 and param[-2] == 1:
        return lambda t: t
    raise UnsupportedOperator(f"{op}: B's parameter of shape {tuple(param)} does not fit B {tuple(b_shape)}")


def _matmul64(a: Tensor, b: Tensor) -> Tensor:
    return torch.matmul(a.to(torch.float64), b.to(torch.float64))


def _matmul_sum(a: Interval, a_zp: Interval | None, b: Interval, b_zp: Interval | None, op: str,
                budget: int) -> Interval:
    """Bounds of the int32 sum ``(a - a_zp) @ (b - b_zp)`` as onnxruntime accumulates it."""
    if a.rank is None or b.rank is None or a.rank < 2 or b.rank < 2:
        raise UnsupportedOperator(f"{op}: 1-D operands are not supported")
    rows = _row_layout(a_zp.shape, a.shape, op) if a_zp is not None else None
    cols = _col_layout(b_zp.shape, b.shape, op) if b_zp is not None else None
    lo, hi = _product(_matmul64, _shifted(a, a_zp, rows), _shifted(b, b_zp, cols))
    b_lo, b_hi = (t.to(torch.int64).flatten(0, -2) for t in b.full())
    dl, dh = _saturation(a, b_lo.amin(0), b_hi.amax(0), a.shape[-1], b.elem_type)
    return _int32(lo + dl, hi + dh, lo.shape, budget)


def _matmul_concrete(a: Tensor, a_zp: Tensor | None, b: Tensor, b_zp: Tensor | None, op: str) -> Tensor:
    """Exact ``(a - a_zp) @ (b - b_zp)`` in int64, wrapped to int32."""
    da = a.to(torch.int64) - (_row_layout(a_zp.shape, a.shape, op)(a_zp).to(torch.int64) if a_zp is not None else 0)
    db = b.to(torch.int64) - (_col_layout(b_zp.shape, b.shape, op)(b_zp).to(torch.int64) if b_zp is not None else 0)
    return (da.unsqueeze(-1) * db.unsqueeze(-3)).sum(-2).to(torch.int32)


@register("MatMulInteger", since=10)
class MatMulInteger(OpRule):
    """Y = (A - a_zero_point) @ (B - b_zero_point) in int32; zero points per tensor, per row of A,
    per column of B."""

    rounds = False
    accumulates = True  # exact inputs still take the abstract rule: int8 weights may saturate (x86)

    def concrete(self, ctx: NodeContext, a: Tensor, b: Tensor, a_zp: Tensor | None = None,
                 b_zp: Tensor | None = None) -> Tensor:
        return _matmul_concrete(a, a_zp, b, b_zp, "MatMulInteger")

    def abstract(self, ctx: NodeContext, a: Interval, b: Interval, a_zp: Interval | None = None,
                 b_zp: Interval | None = None) -> Interval:
        for iv in (a, b):
            _quantized_type(iv.elem_type, "MatMulInteger")
        return _matmul_sum(a, a_zp, b, b_zp, "MatMulInteger", ctx.budget)


def _scalar(t: Tensor) -> Tensor:
    return t.reshape(())


def _bounds(iv: Interval, layout: Callable[[Tensor], Tensor]) -> Bounds:
    """Full float64 bounds of a scale or zero point, laid out to broadcast against the output."""
    lo, hi = iv.full()
    return layout(lo.to(torch.float64)), layout(hi.to(torch.float64))


@register("QLinearMatMul", since=10)
class QLinearMatMul(OpRule):
    """Y = sat(round((A - a_zp) @ (B - b_zp) * (a_scale * b_scale / y_scale)) + y_zp), int32 sum, float32
    requantisation; A's scale and zero point per tensor or per row, B's per tensor or per column."""

    hazards = (equal_to(0.0, "requantisation divides by a zero y_scale", name="division-by-zero", operand=6),)
    rounds = False
    accumulates = True
    parameter_operands = frozenset({1, 2, 4, 5, 6, 7})  # the scales and zero points

    def concrete(self, ctx: NodeContext, a: Tensor, a_scale: Tensor, a_zp: Tensor, b: Tensor, b_scale: Tensor,
                 b_zp: Tensor, y_scale: Tensor, y_zp: Tensor) -> Tensor:
        op = "QLinearMatMul"
        acc = _matmul_concrete(a, a_zp, b, b_zp, op)
        sa = _row_layout(a_scale.shape, a.shape, op)(a_scale).to(torch.float32)
        sb = _col_layout(b_scale.shape, b.shape, op)(b_scale).to(torch.float32)
        sy = _row_layout(y_scale.shape, a.shape, op)(y_scale).to(torch.float32)
        zy = _row_layout(y_zp.shape, a.shape, op)(y_zp)
        out_type = _quantized_type(ctx.input_types[7], op) if len(ctx.input_types) > 7 else TensorProto.UINT8
        return _requantize_concrete(acc, sa * sb / sy, zy, y_zp.dtype, out_type)

    def abstract(self, ctx: NodeContext, a: Interval, a_scale: Interval, a_zp: Interval, b: Interval,
                 b_scale: Interval, b_zp: Interval, y_scale: Interval, y_zp: Interval) -> Interval:
        op = "QLinearMatMul"
        out_type = _quantized_type(y_zp.elem_type, op)
        acc = _matmul_sum(a, a_zp, b, b_zp, op, ctx.budget).full()
        rows = _row_layout(y_scale.shape, a.shape, op)
        mult, valid = _multiplier([_bounds(a_scale, _row_layout(a_scale.shape, a.shape, op)),
                                   _bounds(b_scale, _col_layout(b_scale.shape, b.shape, op))], _bounds(y_scale, rows))
        zl, zh = _bounds(y_zp, _row_layout(y_zp.shape, a.shape, op))
        lo, hi = _requantize(acc, mult, valid.expand(acc[0].shape), (zl, zh), out_type)
        return Interval.from_full(lo, hi, out_type, ctx.budget)


# ------------------------------------------------------------------------------ integer convolution
@dataclass(frozen=True)
class _ConvAttributes(ConvGeometry):
    """What ConvInteger and QLinearConv share: Conv's geometry (same attributes, same defaults)."""
    def _conv(self, x_shape: Sequence[int], w_shape: Sequence[int]) -> Callable[[Tensor, Tensor], Tensor]:
        """The float64 convolution of zero-padded operands (exact for these integer magnitudes)."""
        conv = Conv(auto_pad=self.auto_pad, dilations=self.dilations, group=self.group,
                    kernel_shape=self.kernel_shape, pads=self.pads, strides=self.strides)
        fn = conv._fn(x_shape, w_shape)
        return lambda x, w: fn(x.to(torch.float64), w.to(torch.float64))

    def _channel(self, w: Tensor, param: Tensor | None, op: str) -> Tensor | int:
        """A weight parameter (zero point, scale) per tensor or per output channel, laid out as ``w``."""
        if param is None:
            return 0
        if param.numel() == 1:
            return param.reshape(())
        if param.dim() == 1 and param.shape[0] == w.shape[0]:
            return param.reshape((-1,) + (1,) * (w.dim() - 1))
        raise UnsupportedOperator(f"{op}: weight parameter of shape {tuple(param.shape)} (per tensor or per "
                                  f"output channel of {w.shape[0]})")

    def _sum_concrete(self, x: Tensor, x_zp: Tensor | None, w: Tensor, w_zp: Tensor | None, op: str) -> Tensor:
        if x_zp is not None and x_zp.numel() != 1:
            raise UnsupportedOperator(f"{op}: x zero point must be a scalar")
        dx = x.to(torch.int64) - (x_zp.reshape(()).to(torch.int64) if x_zp is not None else 0)
        dw = w.to(torch.int64) - self._channel(w, w_zp, op)
        return self._conv(x.shape, w.shape)(dx, dw).round().to(torch.int64)

    def _sum(self, x: Interval, x_zp: Interval | None, w: Interval, w_zp: Interval | None, op: str,
             budget: int) -> Interval:
        """Bounds of the int32 sum of the convolution of ``x - x_zp`` (padded with 0) and ``w - w_zp``."""
        if x_zp is not None and math.prod(x_zp.shape) != 1:
            raise UnsupportedOperator(f"{op}: x zero point must be a scalar")
        w_lo, w_hi = (t.to(torch.int64) for t in w.full())
        zl, zh = (self._channel(w_lo, z, op) for z in (w_zp.full() if w_zp is not None else (None, None)))
        lo, hi = _product(self._conv(x.shape, w.shape), _shifted(x, x_zp, lambda t: t.reshape(())),
                          (w_lo - zh, w_hi - zl))
        count = math.prod(w.shape[1:])
        view = (1, -1) + (1,) * (len(w.shape) - 2)
        dl, dh = _saturation(x, w_lo.flatten(1).amin(1).reshape(view), w_hi.flatten(1).amax(1).reshape(view),
                             count, w.elem_type, x_zp)
        return _int32(lo + dl, hi + dh, lo.shape, budget)


@register("ConvInteger", since=10)
class ConvInteger(_ConvAttributes, OpRule):
    """Y = conv(X - x_zero_point, W - w_zero_point) in int32; x's zero point per tensor, w's per tensor or
    per output channel; padding contributes 0 (onnxruntime pads with the zero point)."""

    rounds = False
    accumulates = True

    def concrete(self, ctx: NodeContext, x: Tensor, w: Tensor, x_zp: Tensor | None = None,
                 w_zp: Tensor | None = None) -> Tensor:
        return self._sum_concrete(x, x_zp, w, w_zp, "ConvInteger").to(torch.int32)

    def abstract(self, ctx: NodeContext, x: Interval, w: Interval, x_zp: Interval | None = None,
                 w_zp: Interval | None = None) -> Interval:
        for iv in (x, w):
            _quantized_type(iv.elem_type, "ConvInteger")
        return self._sum(x, x_zp, w, w_zp, "ConvInteger", ctx.budget)


@register("QLinearConv", since=10)
class QLinearConv(_ConvAttributes, OpRule):
    """Y = sat(round((conv(X - x_zp, W - w_zp) + B) * (x_scale * w_scale / y_scale)) + y_zp), int32 sum and
    bias, float32 requantisation; w's scale and zero point per tensor or per output channel."""

    hazards = (equal_to(0.0, "requantisation divides by a zero y_scale", name="division-by-zero", operand=6),)
    rounds = False
    accumulates = True
    parameter_operands = frozenset({1, 2, 4, 5, 6, 7})  # the scales and zero points

    def concrete(self, ctx: NodeContext, x: Tensor, x_scale: Tensor, x_zp: Tensor, w: Tensor, w_scale: Tensor,
                 w_zp: Tensor, y_scale: Tensor, y_zp: Tensor, bias: Tensor | None = None) -> Tensor:
        op = "QLinearConv"
        acc = self._sum_concrete(x, x_zp, w, w_zp, op)
        view = (1, -1) + (1,) * (x.dim() - 2)
        if bias is not None:
            acc = acc + bias.to(torch.int64).reshape(view)
        acc = acc.to(torch.int32)
        scale = self._channel(w, w_scale, op).reshape(view).to(torch.float32)
        mult = x_scale.reshape(()).to(torch.float32) * scale / y_scale.reshape(()).to(torch.float32)
        out_type = _quantized_type(ctx.input_types[7], op) if len(ctx.input_types) > 7 else TensorProto.UINT8
        return _requantize_concrete(acc, mult, y_zp.reshape(()), y_zp.dtype, out_type)

    def abstract(self, ctx: NodeContext, x: Interval, x_scale: Interval, x_zp: Interval, w: Interval,
                 w_scale: Interval, w_zp: Interval, y_scale: Interval, y_zp: Interval,
                 bias: Interval | None = None) -> Interval:
        op = "QLinearConv"
        out_type = _quantized_type(y_zp.elem_type, op)
        for iv in (x_scale, y_scale, y_zp):
            if math.prod(iv.shape) != 1:
                raise UnsupportedOperator(f"{op}: x and y scales and zero points must be scalars")
        acc_lo, acc_hi = self._sum(x, x_zp, w, w_zp, op, ctx.budget).full()
        view = (1, -1) + (1,) * (len(x.shape) - 2)
        if bias is not None:
            bl, bh = (t.to(torch.int64).reshape(view) for t in bias.full())
            acc = _int32(acc_lo + bl, acc_hi + bh, acc_lo.shape, ctx.budget).full()
        else:
            acc = (acc_lo, acc_hi)
        w_scale_bounds = tuple(self._channel(t, s, op).reshape(view) for t, s in
                               zip(w.full(), (t.to(torch.float64) for t in w_scale.full())))
        mult, valid = _multiplier([_bounds(x_scale, _scalar), w_scale_bounds], _bounds(y_scale, _scalar))
        lo, hi = _requantize(acc, mult, valid.expand(acc[0].shape), _bounds(y_zp, _scalar), out_type)
        return Interval.from_full(lo, hi, out_type, ctx.budget)
