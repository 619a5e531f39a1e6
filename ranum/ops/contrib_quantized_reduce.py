"""onnxruntime's quantized contrib reductions and products (``com.microsoft``): QLinearGlobalAveragePool,
QLinearAveragePool, QLinearSoftmax and QGemm, as ``quantize_static(..., quant_format=QuantFormat.QOperator)``
writes them, and QLinearConv and NhwcMaxPool, which its NHWC transformer writes (QLinearConv with
``channels_last`` = 1, between Transposes) when a quantized model is optimised at ORT_ENABLE_ALL: the ONNX
operators on an input and output in NHWC layout, the weights in the ONNX layout. Shared helpers and the
measured conventions are in :mod:`ranum.ops.contrib_quantized`.

Semantics measured on onnxruntime 1.32 (x86-64) and checked bit for bit in ``tests/ops/cases_contrib_quantized.py``:

* QLinearGlobalAveragePool: ``acc = sum(x) - z_x N`` in int32, requantised as QLinearConv does with the
  multiplier ``fl(s_x / fl(s_y N))`` (onnxruntime refuses a multiplier outside [2**-32, 256) or N >= 2**24).
* QLinearAveragePool: ``fl(s_x (x - z_x))`` per element, a float32 window sum in row-major order, ``/ count``
  (the kernel size when ``count_include_pad``, else the window clipped to the input), then
  ``nearbyint(fl(fl(y / s_y) + z_y))`` converted to int32 (NaN, overflow: INT_MIN) and clamped; a kernel that
  covers the whole unpadded input takes the global pool's integer path. Dilations are not supported.
* QLinearSoftmax: over the last axis (``opset`` >= 13; below, over the flattened axes from ``axis``), each
  element's ``vt = float32(exp(((x - max x) + L / s_x) s_x))`` in double, ``L = max(0, log(FLT_MAX / D) - 5)``,
  ``vsum`` their float32 sum, ``Y = floor(1 / s_y)`` in float32, and ``y = sat(round(fma(vt, fl(fl(1 / vsum) Y),
  z_y)))`` (MLAS's AVX-512 kernel; the 1.32 wheel saturates at both ends, int8 included); the input zero point
  cancels. The kernel sums in 16 lanes where the concrete rule sums in order.
* QGemm: ``acc = C + (A - z_a) @ (B - z_b)`` in int32 (transposes first), multiplier
  ``fl(fl(fl(alpha s_a) s_b) / s_y)`` (``s_b``, ``z_b`` per tensor or per column), requantised as QLinearMatMul;
  without ``y_scale`` the output is the float32 ``fl(acc m)``.

All four set ``accumulates`` (no exact fast path): NEON rounds the global pool's fixed-point product half away
from zero, window and softmax sums are float sums whose order is the kernel's, and QGemm's int8 weights may
hit x86's int16 pair saturation (see :mod:`ranum.ops.quantized`). Abstract rules: float steps are bounded with
one float32 rounding each, sums with their accumulation error, softmax through pairwise log-sum-exp bounds of
``y_i = 1 / (1 + sum_{j != i} vt_j / vt_i)`` with the table's and the sum's relative errors; integer rounding is
tie-agnostic. A scale range holding 0 (or, for QLinearSoftmax, an input scale that is not exact or a row
longer than 4096) gives the whole range of the output type.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from onnx import TensorProto
from torch import Tensor

from ranum.domain import arith
from ranum.domain.interval import Interval
from ranum.errors import UnsupportedOperator
from ranum.ops._base import NodeContext, OpRule
from ranum.ops._windows import pad_spatial
from ranum.ops.contrib import MS_DOMAIN
from ranum.ops.contrib_quantized import (
    _BYTES,
    Bounds,
    _byte_type,
    _cvt_bounds,
    _cvt_int32,
    _finite,
    _fma32,
    _param,
    _quotient,
    _rounded_int,
    _scalar,
)
from ranum.ops.convert import _QUANTIZED, _quantized_type
from ranum.ops.hazards import equal_to
from ranum.ops.pooling import AveragePool, MaxPool
from ranum.ops.quantized import (
    QLinearConv,
    _bounds,
    _col_layout,
    _int32,
    _matmul_concrete,
    _matmul_sum,
    _multiplier,
    _requantize,
    _requantize_concrete,
    _rounded32,
)
from ranum.ops.registry import register
from ranum.ops.shape import Transpose

__all__ = ["MicrosoftQLinearConv", "NhwcMaxPool", "QGemm", "QLinearAveragePool", "QLinearGlobalAveragePool",
           "QLinearSoftmax"]

_UNIT = 2.0**-24
_PAIRWISE = 4096  # the longest softmax row bounded through pairwise differences (D * D terms per row)


# ------------------------------------------------------------------------------ pools
def _nchw(t: Tensor, channels_last: int) -> Tensor:
    return t.movedim(-1, 1) if channels_last else t


def _nhwc(t: Tensor, channels_last: int) -> Tensor:
    return t.movedim(1, -1) if channels_last else t


def _gap_multiplier(sx: Tensor, sy: Tensor, count: int) -> Tensor:
    """``fl(s_x / fl(s_y N))``; onnxruntime refuses a multiplier outside [2**-32, 256) or N >= 2**24."""
    mult = _param(sx) / (_param(sy) * float(count))
    if count >= 2**24 or not 2.0**-32 <= float(mult) < 256.0:
        raise ValueError("QLinearGlobalAveragePool: parameter out of computation range (onnxruntime refuses it)")
    return mult


def _gap_concrete(x: Tensor, sx: Tensor, zx: Tensor | None, sy: Tensor, zy: Tensor | None, etype: int) -> Tensor:
    """Global average of an NCHW tensor: int32 sum less ``z_x N``, requantised (MlasRequantizeOutput)."""
    axes = tuple(range(2, x.dim()))
    count = math.prod(x.shape[2:])
    acc = x.to(torch.int64).sum(axes, keepdim=True) - _param(zx).to(torch.int64) * count
    return _requantize_concrete(acc.to(torch.int32), _gap_multiplier(sx, sy, count), _param(zy), _BYTES[etype], etype)


def _gap_bounds(lo: Tensor, hi: Tensor, params: Sequence[Interval | None], etype: int, op: str) -> Bounds:
    """Bounds of the global average of NCHW bounds ``[lo, hi]``."""
    sx, zx, sy, zy = (_scalar(p, op, n) for p, n in zip(params, ("x_scale", "x_zero_point", "y_scale",
                                                                 "y_zero_point")))
    count = math.prod(lo.shape[2:])
    axes = tuple(range(2, lo.dim()))
    acc = (lo.double().sum(axes, keepdim=True) - zx[1] * count, hi.double().sum(axes, keepdim=True) - zx[0] * count)
    denominator = _rounded32(*arith.mul(*sy, torch.tensor(float(count)), torch.tensor(float(count))), 1)
    mult, valid = _quotient(sx, denominator)
    value = _rounded32(*arith.mul(*_rounded32(*acc, 1), *mult), 1)
    return _rounded_int(value, zy, etype, valid & _finite(denominator, mult, value))


@dataclass(frozen=True)
class _QLinearPool(OpRule):
    """Shared by the quantized pools: (X, x_scale, x_zero_point, y_scale, y_zero_point), NCHW or NHWC."""

    channels_last: int = 0
    hazards = (equal_to(0.0, "requantisation divides by a zero y_scale", name="division-by-zero", operand=3),)
    rounds = False
    accumulates = True  # NEON rounds the global average's fixed-point product half away; float window sums
    parameter_operands = frozenset({1, 2, 3, 4})

    def _check(self, x_type: int, rank: int | None) -> int:
        if rank is None or rank < 3:
            raise UnsupportedOperator(f"{self.op_type}: input of rank {rank} (at least 3 expected)")
        return _byte_type(x_type, self.op_type)

    def _global(self, x: Interval, params: Sequence[Interval | None], etype: int) -> Interval:
        lo, hi = (_nchw(t, self.channels_last) for t in x.full())
        lo, hi = (_nhwc(t, self.channels_last) for t in _gap_bounds(lo, hi, params, etype, self.op_type))
        return Interval.from_full(lo, hi, etype)


@register("QLinearGlobalAveragePool", domain=MS_DOMAIN)
class QLinearGlobalAveragePool(_QLinearPool):
    """Y = requantised mean over the spatial axes (int32 sum, float32 multiplier); spatial sizes become 1."""

    def concrete(self, ctx: NodeContext, x: Tensor, sx: Tensor, zx: Tensor | None, sy: Tensor,
                 zy: Tensor | None = None) -> Tensor:
        etype = self._check(ctx.input_types[0], x.dim())
        return _nhwc(_gap_concrete(_nchw(x, self.channels_last), sx, zx, sy, zy, etype), self.channels_last)

    def abstract(self, ctx: NodeContext, x: Interval, sx: Interval, zx: Interval | None, sy: Interval,
                 zy: Interval | None = None) -> Interval:
        return self._global(x, (sx, zx, sy, zy), self._check(x.elem_type, x.rank))


@register("QLinearAveragePool", domain=MS_DOMAIN)
class QLinearAveragePool(_QLinearPool):
    """Y = requantised window averages of the float32 dequantised input (AveragePool's geometry, no dilations)."""

    auto_pad: str = "NOTSET"
    ceil_mode: int = 0
    count_include_pad: int = 0
    dilations: tuple[int, ...] = ()
    kernel_shape: tuple[int, ...] = ()
    pads: tuple[int, ...] = ()
    strides: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if not self.kernel_shape or any(d != 1 for d in self.dilations):
            raise UnsupportedOperator("QLinearAveragePool: kernel_shape is required; dilations are not supported")
        self._pool()  # checks auto_pad

    def _pool(self) -> AveragePool:
        return AveragePool(auto_pad=self.auto_pad, ceil_mode=self.ceil_mode, kernel_shape=self.kernel_shape,
                           pads=self.pads, strides=self.strides)

    def _geometry(self, sizes: Sequence[int]) -> tuple[tuple[list[int], ...], Tensor, bool]:
        """The window geometry, the divisor per output position and whether onnxruntime pools globally."""
        pool = self._pool()
        strides, dilations, begin, end, over = pool._window(sizes)
        count = pool._divisor(sizes, begin, end, over, strides, dilations)
        if self.count_include_pad:
            count = torch.full_like(count, float(math.prod(self.kernel_shape)))
        whole = list(self.kernel_shape) == list(sizes) and not any(begin) and not any(end)
        return (strides, dilations, begin, end, over), count, whole

    def concrete(self, ctx: NodeContext, x: Tensor, sx: Tensor, zx: Tensor | None, sy: Tensor,
                 zy: Tensor | None = None) -> Tensor:
        etype = self._check(ctx.input_types[0], x.dim())
        x = _nchw(x, self.channels_last)
        (strides, _, begin, end, over), count, whole = self._geometry(x.shape[2:])
        if whole:
            return _nhwc(_gap_concrete(x, sx, zx, sy, zy, etype), self.channels_last)
        d = (x.to(torch.int64) - _param(zx).to(torch.int64)).float() * _param(sx)
        padded = pad_spatial(pad_spatial(d, begin, end), [0] * len(over), over)
        out = count.shape[2:]
        total = torch.zeros(x.shape[:2] + out, dtype=torch.float32)
        for offsets in itertools.product(*(range(k) for k in self.kernel_shape)):  # onnxruntime's order
            window = tuple(slice(o, o + s * (n - 1) + 1, s) for o, s, n in zip(offsets, strides, out))
            total = total + padded[(...,) + window]
        value = total / count.float() / _param(sy) + _param(zy)
        return _nhwc(_cvt_int32(value, etype), self.channels_last)

    def abstract(self, ctx: NodeContext, x: Interval, sx: Interval, zx: Interval | None, sy: Interval,
                 zy: Interval | None = None) -> Interval:
        etype = self._check(x.elem_type, x.rank)
        op = self.op_type
        geometry, count, whole = self._geometry(x.shape[1:-1] if self.channels_last else x.shape[2:])
        if whole:
            return self._global(x, (sx, zx, sy, zy), etype)
        sx_, zx_ = _scalar(sx, op, "x_scale"), _scalar(zx, op, "x_zero_point")
        lo, hi = (_nchw(t, self.channels_last).double() for t in x.full())
        d = _rounded32(*arith.mul(*sx_, *arith.sub(lo, hi, *zx_)), 1)
        mean = _rounded32(*self._pool()._bounds(*d, count, geometry, TensorProto.FLOAT), 1)
        q, valid = _quotient(mean, _scalar(sy, op, "y_scale"))
        value = _rounded32(*arith.add(*q, *_scalar(zy, op, "y_zero_point")), 1)
        lo, hi = (_nhwc(t, self.channels_last) for t in _cvt_bounds(value, etype, valid & _finite(mean, q)))
        return Interval.from_full(lo, hi, etype)


# ------------------------------------------------------------------------------ QLinearSoftmax
def _exp_shift(count: int) -> float:
    """``L = max(0, log(FLT_MAX / D) - 5)``: the largest table entry is ``e**L`` (the float32 quotient, double log)."""
    ratio = float(np.float32(np.finfo(np.float32).max) / np.float32(count))
    return max(0.0, math.log(ratio) - 5.0)


def _softmax_concrete(x: Tensor, sx: Tensor, sy: Tensor, zy: Tensor | None, etype: int) -> Tensor:
    """onnxruntime's quantized softmax over the last axis of ``x`` (sum in order; AVX-512 sums in 16 lanes)."""
    count, s = x.shape[-1], float(_param(sx))
    shifted = (x.to(torch.int64) - x.to(torch.int64).amax(-1, keepdim=True)).double()
    vt = torch.exp((shifted + _exp_shift(count) / s) * s).float()
    total = torch.zeros(vt.shape[:-1], dtype=torch.float32)
    for j in range(count):
        total = total + vt[..., j]
    scale = torch.floor(torch.ones((), dtype=torch.float32) / _param(sy))
    factor = (1 / total * scale).unsqueeze(-1)
    low, high = _QUANTIZED[etype]
    return torch.round(_fma32(vt, factor.expand_as(vt), _param(zy).expand_as(vt))).clamp(low, high).to(_BYTES[etype])


def _log_others(first: Tensor, second: Tensor, s: float) -> Tensor:
    """Per element i of the last axis, ``log sum_{j != i} exp(s (first_j - second_i))`` (pairwise, in row chunks)."""
    count = first.shape[-1]
    rows = first.reshape(-1, count)
    cols = second.reshape(-1, count)
    step = max(1, (1 << 22) // max(count * count, 1))
    own = torch.eye(count, dtype=torch.bool)
    parts = []
    for k in range(0, rows.shape[0], step):
        pairs = s * (rows[k:k + step].unsqueeze(-2) - cols[k:k + step].unsqueeze(-1))  # [row, i, j]
        parts.append(torch.logsumexp(pairs.masked_fill(own, -math.inf), dim=-1))
    return torch.cat(parts).reshape(first.shape)


def _softmax_bounds(lo: Tensor, hi: Tensor, s: float, count: int) -> Bounds:
    """Bounds of the real ``vt_i / vsum`` over the last axis: the table entries carry a relative error of two
    float32 units (plus a subnormal each), their float32 sum ``gamma_{D-1}``."""
    slack = math.log((1 + 2 * _UNIT) / (1 - 2 * _UNIT)) + 1e-12
    gamma = (count - 1) * _UNIT / (1 - (count - 1) * _UNIT)
    tiny = (count + 1) * 2.0**-148  # subnormal table entries, relative to a sum of at least 1
    low = torch.sigmoid(-(_log_others(hi, lo, s) + slack)) / (1 + gamma) - tiny
    high = torch.sigmoid(-(_log_others(lo, hi, s) - slack)) / (1 - gamma) + tiny
    return low.clamp(min=0.0), high


@register("QLinearSoftmax", domain=MS_DOMAIN)
class QLinearSoftmax(OpRule):
    """Y = quantised softmax(X) along ``axis`` (``opset`` >= 13) or the flattened axes from ``axis`` (below),
    through onnxruntime's exp table scaled to float32's range and ``floor(1 / y_scale)``."""

    axis: int | None = None
    opset: int = -1
    hazards = (equal_to(0.0, "requantisation divides by a zero y_scale", name="division-by-zero", operand=3),)
    rounds = False
    accumulates = True  # a float32 sum of the row and a double exp: the kernel's order and libm
    parameter_operands = frozenset({1, 2, 3, 4})

    def __post_init__(self) -> None:
        if self.opset < 0:
            raise UnsupportedOperator("QLinearSoftmax: the opset attribute is required")

    def _rows(self, t: Tensor) -> Tensor:
        """``t`` with the reduced axes last (one axis from opset 13, flattened trailing axes below)."""
        axis = (self.axis if self.axis is not None else (1 if self.opset < 13 else -1)) % t.dim()
        return t.movedim(axis, -1) if self.opset >= 13 else t.reshape(t.shape[:axis] + (-1,))

    def _back(self, t: Tensor, shape: Sequence[int]) -> Tensor:
        axis = (self.axis if self.axis is not None else (1 if self.opset < 13 else -1)) % len(shape)
        return t.movedim(-1, axis) if self.opset >= 13 else t.reshape(shape)

    def concrete(self, ctx: NodeContext, x: Tensor, sx: Tensor, zx: Tensor | None, sy: Tensor,
                 zy: Tensor | None = None) -> Tensor:
        etype = _byte_type(ctx.input_types[0], "QLinearSoftmax")
        return self._back(_softmax_concrete(self._rows(x), sx, sy, zy, etype), x.shape)

    def abstract(self, ctx: NodeContext, x: Interval, sx: Interval, zx: Interval | None, sy: Interval,
                 zy: Interval | None = None) -> Interval:
        etype = _byte_type(x.elem_type, "QLinearSoftmax")
        op = "QLinearSoftmax"
        lo, hi = (self._rows(t.double()) for t in x.full())
        count = lo.shape[-1]
        sl, sh = _scalar(sx, op, "X_scale")
        (yl, yh), zp = _scalar(sy, op, "y_scale"), _scalar(zy, op, "y_zero_point")
        s = float(sl)
        if not (sx.is_exact and 0.0 < s and s * 255 < 1e5 and float(yl) > 0 and 0 < count <= _PAIRWISE):
            low, high = _QUANTIZED[etype]  # coarse: a ranged input scale, y_scale <= 0, or rows too long to pair
            return Interval.uniform(low, high, x.shape, etype)
        (rl, rh), _ = _quotient((torch.ones(()), torch.ones(())), (yl, yh))
        scale = torch.floor(rl), torch.floor(rh)
        ratio = _softmax_bounds(lo, hi, s, count)
        q = (ratio[0] * scale[0] * (1 - _UNIT) ** 3, ratio[1] * scale[1] * (1 + _UNIT) ** 3 + 2.0**-148)
        value = _rounded32(*arith.add(*q, *zp), 1)
        zero = torch.zeros((), dtype=torch.float64)
        out = _rounded_int(value, (zero, zero), etype, torch.ones((), dtype=torch.bool))
        lo, hi = (self._back(t, x.shape) for t in out)
        return Interval.from_full(lo, hi, etype)


# ------------------------------------------------------------------------------ QGemm
def _transposed(iv: Interval) -> Interval:
    lo, hi = iv.full()
    return Interval.from_full(lo.T, hi.T, iv.elem_type)


@register("QGemm", domain=MS_DOMAIN)
class QGemm(OpRule):
    """Y = requantised (C + (A - a_zp) @ (B - b_zp)) * alpha * a_scale * b_scale / y_scale, or the float32 product
    ``acc * fl(alpha a_scale b_scale)`` without y_scale; B's scale and zero point per tensor or per column."""

    alpha: float = 1.0
    transA: int = 0  # noqa: N815 (the ONNX attribute's name)
    transB: int = 0  # noqa: N815
    hazards = (equal_to(0.0, "requantisation divides by a zero y_scale", name="division-by-zero", operand=7),)
    rounds = False
    accumulates = True  # int8 weights: x86 without VNNI saturates pair sums to int16 (as QLinearMatMul)
    parameter_operands = frozenset({1, 2, 4, 5, 7, 8})

    def _alpha_scale(self, sa: Tensor) -> Tensor:
        return torch.tensor(self.alpha, dtype=torch.float32) * _param(sa)

    def concrete(self, ctx: NodeContext, a: Tensor, sa: Tensor, za: Tensor, b: Tensor, sb: Tensor, zb: Tensor,
                 c: Tensor | None = None, sy: Tensor | None = None, zy: Tensor | None = None) -> Tensor:
        a, b = (a.T if self.transA else a), (b.T if self.transB else b)
        acc = _matmul_concrete(a, za, b, zb, "QGemm").to(torch.int64)
        if c is not None:
            acc = acc + c.to(torch.int64)
        acc = acc.to(torch.int32)
        scale = self._alpha_scale(sa) * _col_layout(tuple(sb.shape), tuple(b.shape), "QGemm")(sb).float()
        if sy is None:
            return acc.float() * scale
        out_type = _quantized_type(ctx.input_types[8] if len(ctx.input_types) > 8 else 0, "QGemm")
        return _requantize_concrete(acc, scale / _param(sy), zy.reshape(()), zy.dtype, out_type)

    def abstract(self, ctx: NodeContext, a: Interval, sa: Interval, za: Interval, b: Interval, sb: Interval,
                 zb: Interval, c: Interval | None = None, sy: Interval | None = None,
                 zy: Interval | None = None) -> Interval:
        op = "QGemm"
        if (sy is None) != (zy is None):
            raise UnsupportedOperator("QGemm: y_scale and y_zero_point must be given together")
        a, b = (_transposed(a) if self.transA else a), (_transposed(b) if self.transB else b)
        acc = _matmul_sum(a, za, b, zb, op, ctx.budget)
        if c is not None:
            lo, hi = acc.full()
            cl, ch = (t.to(torch.int64) for t in c.full())
            acc = _int32(lo + cl, hi + ch, lo.shape, ctx.budget)
        alpha = torch.tensor(float(torch.tensor(self.alpha, dtype=torch.float32)), dtype=torch.float64)
        a_scale = _rounded32(*arith.mul(alpha, alpha, *_scalar(sa, op, "a_scale")), 1)
        b_scale = _bounds(sb, _col_layout(sb.shape, b.shape, op))
        acc_lo, acc_hi = acc.full()
        if sy is None:
            scale = _rounded32(*arith.mul(*a_scale, *b_scale), 1)
            value = _rounded32(*arith.mul(*_rounded32(acc_lo.double(), acc_hi.double(), 1), *scale), 1)
            return Interval.from_full(*value, TensorProto.FLOAT, ctx.budget)
        out_type = _quantized_type(zy.elem_type, op)
        mult, valid = _multiplier([a_scale, b_scale], _scalar(sy, op, "y_scale"))
        lo, hi = _requantize((acc_lo, acc_hi), mult, valid.expand(acc_lo.shape), _scalar(zy, op, "y_zero_point"),
                             out_type)
        return Interval.from_full(lo, hi, out_type, ctx.budget)


def _in_nchw(ctx: NodeContext, x, step: Callable, concrete: bool):
    """``step`` (an NCHW operator) applied to ``x`` in NHWC layout: transposed to NCHW and its result back."""
    rank = x.dim() if concrete else len(x.shape)
    to_nchw, to_nhwc = Transpose(perm=(0, rank - 1, *range(1, rank - 1))), Transpose(perm=(0, *range(2, rank), 1))
    move = (lambda rule, t: rule.concrete(ctx, t)) if concrete else (lambda rule, t: rule.abstract(ctx, t))
    return move(to_nhwc, step(move(to_nchw, x)))


@register("QLinearConv", domain=MS_DOMAIN)
class MicrosoftQLinearConv(QLinearConv):
    """The ONNX QLinearConv, on an NHWC input and output where ``channels_last`` is 1."""

    channels_last: int = 0

    def concrete(self, ctx: NodeContext, x: Tensor, *rest: Tensor | None) -> Tensor:
        if not self.channels_last:
            return super().concrete(ctx, x, *rest)
        return _in_nchw(ctx, x, lambda t: QLinearConv.concrete(self, ctx, t, *rest), concrete=True)

    def abstract(self, ctx: NodeContext, x: Interval, *rest: Interval | None) -> Interval:
        if not self.channels_last:
            return super().abstract(ctx, x, *rest)
        return _in_nchw(ctx, x, lambda t: QLinearConv.abstract(self, ctx, t, *rest), concrete=False)


@register("NhwcMaxPool", domain=MS_DOMAIN)
class NhwcMaxPool(MaxPool):
    """MaxPool of an int8 / uint8 tensor in NHWC layout (no indices output)."""

    def concrete(self, ctx: NodeContext, x: Tensor) -> Tensor:
        return _in_nchw(ctx, x, lambda t: MaxPool.concrete(self, ctx, t), concrete=True)

    def abstract(self, ctx: NodeContext, x: Interval) -> Interval:
        return _in_nchw(ctx, x, lambda t: MaxPool.abstract(self, ctx, t), concrete=False)
