"""onnxruntime's quantized contrib operators of QOperator-format models (``com.microsoft``), element-wise.

``onnxruntime.quantization.quantize_static(..., quant_format=QuantFormat.QOperator)`` writes QLinearAdd,
QLinearMul, QLinearSigmoid, QLinearLeakyRelu and QLinearConcat (this module) and QLinearGlobalAveragePool,
QLinearAveragePool, QLinearSoftmax and QGemm (:mod:`ranum.ops.contrib_quantized_reduce`) between the standard
QLinearConv / QLinearMatMul. Scales and zero points are per tensor (onnxruntime rejects others); data are
uint8 or int8. Semantics measured on onnxruntime 1.32 (x86-64, AVX2/AVX-512) and its MLAS sources, checked
bit for bit in ``tests/ops/cases_contrib_quantized.py`` and ``tests/ops/test_contrib_quantized.py``:

* QLinearAdd (AVX2 kernel): ``r_a = fl(s_a / s_c)``, ``r_b = fl(s_b / s_c)``,
  ``F = fl(z_c - fma(r_a, z_a, fl(r_b z_b)))``, ``v = fma(a, r_a, fma(b, r_b, F))``; when A is the operand
  broadcast along the innermost output axis (or a single element), onnxruntime swaps the operands, so
  the roles of a and b swap in both formulas.
* QLinearMul: ``v = fl(fl((a - z_a)(b - z_b) * fl(fl(s_a s_b) / s_c)) + z_c)`` (the integer product exact).
* Both then convert with ``cvtps2dq`` (round half to even; NaN and |v| >= 2**31 give INT_MIN) and pack
  with saturation: a huge positive v gives the type's *minimum*.
* QLinearSigmoid, QLinearLeakyRelu, QLinearConcat: a 256-entry table, ``d = fl(s_x (k - z_x))`` for every
  code k, then the float function (sigmoid: MLAS's rational approximation with FMA, ``max(p / q + 0.5, 0)``,
  within 1.4 float32 eps of the sigmoid; leaky relu: ``d >= 0 ? d : fl(alpha d)``; concat: identity), then
  MlasQuantizeLinear: ``q = fl(d / s_y)``, NaN -> lower limit, clamp to ``[min - z_y, max - z_y]``, round
  half to even, add ``z_y``. QLinearConcat copies an input whose scale and zero point equal the output's.

``QuantizeLinear`` and ``DequantizeLinear`` in ``com.microsoft`` are the ONNX operators (per tensor or per
axis; 8- and 16-bit, and int32 for DequantizeLinear): onnxruntime's quantization tools write them for
16-bit types in models below opset 21 (and with ``UseQDQContribOps``), and the ONNX rules apply as they are.

Exact fast path: QLinearMul, QLinearLeakyRelu and QLinearConcat are the same scalar IEEE steps on every
platform, so exact operands take the concrete rule. QLinearAdd (kernel-specific operation order: AVX2 FMA,
SSE2, NEON fixed point) and QLinearSigmoid (each platform has its own logistic kernel) set ``accumulates``:
exact operands go through the abstract rule, which covers those differences.

Abstract rules: every float step is bounded by interval arithmetic with one float32 rounding each
(:func:`~ranum.ops.quantized._rounded32`), both operation orders where kernels differ; rounding to an
integer is bounded tie-agnostically (``ceil(v - 1/2)``, ``floor(v + 1/2)``), which only widens at exact
ties. Table rules bound each of the 256 entries, then take the minimum and maximum of the entries over each
block's code range. Invariants: integer bounds inside the output type; a scale range holding 0, or any
step that may overflow float32 (hence NaN or INT_MIN), gives the whole range of the type.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from onnx import TensorProto
from torch import Tensor

from ranum.domain import arith
from ranum.domain.interval import Interval, elementwise
from ranum.errors import UnsupportedOperator
from ranum.ops._base import ELEMENTWISE, NodeContext, OpRule
from ranum.ops.contrib import MS_DOMAIN
from ranum.ops.convert import _QUANTIZED, DequantizeLinear, QuantizeLinear
from ranum.ops.hazards import equal_to
from ranum.ops.quantized import _rounded32
from ranum.ops.registry import register
from ranum.ops.shape import Concat

__all__ = ["QLinearAdd", "QLinearConcat", "QLinearLeakyRelu", "QLinearMul", "QLinearSigmoid"]

Bounds = tuple[Tensor, Tensor]
_BYTES = {TensorProto.UINT8: torch.uint8, TensorProto.INT8: torch.int8}
_F32_MAX = float(torch.finfo(torch.float32).max)
_INT32_LIMIT = 2.0**31
_SIGMOID_ERROR = 4 * float(torch.finfo(torch.float32).eps)  # |MLAS logistic - sigmoid| <= 1.85 eps measured
_LOGISTIC = {"alpha": (4.37031012579801e-11, 1.15627324459942e-07, 6.08574864600143e-05, 8.51377133304701e-03,
                       2.48287947061529e-01),
             "beta": (6.10247389755681e-13, 5.76102136993427e-09, 6.29106785017040e-06, 1.70198817374094e-03,
                      1.16817656904453e-01, 9.93151921023180e-01)}


# ------------------------------------------------------------------------------ float32 emulation
def _fma32(x: Tensor, y: Tensor, z: Tensor) -> Tensor:
    """float32 ``x * y + z`` rounded once, as an FMA instruction: the product of two float32 values is
    exact in float64; the float64 sum's own error (TwoSum) settles a float64 sum on a float32 tie."""
    p, zz = x.double() * y.double(), z.double()
    s = p + zz
    back = s - p
    err = (p - (s - back)) + (zz - back)
    r = s.float()
    other = torch.nextafter(r, torch.where(s > r.double(), torch.inf, -torch.inf).float())
    tie = (s == (r.double() + other.double()) / 2) & (err != 0)
    return torch.where(tie, torch.where(err > 0, torch.maximum(r, other), torch.minimum(r, other)), r)


def _cvt_int32(v: Tensor, etype: int) -> Tensor:
    """cvtps2dq (half to even; NaN, |v| >= 2**31: INT_MIN) then saturation to the byte type."""
    low, high = _QUANTIZED[etype]
    wraps = ~(v.abs() < _INT32_LIMIT)
    r = torch.round(torch.where(wraps, torch.zeros_like(v), v)).clamp(low, high)
    return torch.where(wraps, torch.full_like(r, low), r).to(_BYTES[etype])


def _quantize32(d: Tensor, scale: Tensor, zero_point: Tensor, etype: int) -> Tensor:
    """MlasQuantizeLinear: float32 quotient, NaN to the lower limit, clamp, round half to even, add the zero point."""
    low, high = _QUANTIZED[etype]
    zp = zero_point.to(torch.float32)
    q = d.float() / scale.float()
    q = torch.where(torch.isnan(q), low - zp, q)
    return (torch.round(torch.minimum(torch.maximum(q, low - zp), high - zp)) + zp).to(_BYTES[etype])


def _logistic32(x: Tensor) -> Tensor:
    """MLAS's logistic kernel with FMA (onnxruntime's Sigmoid on AVX2): a rational function on [-18, 18]."""
    x = x.float().clamp(-18.0, 18.0)
    x2 = x * x
    alpha, beta = ([torch.tensor(c, dtype=torch.float32) for c in _LOGISTIC[k]] for k in ("alpha", "beta"))
    p, q = _fma32(x2, alpha[0], alpha[1]), _fma32(x2, beta[0], beta[1])
    for c in alpha[2:]:
        p = _fma32(p, x2, c)
    for c in beta[2:]:
        q = _fma32(q, x2, c)
    return torch.clamp(p * x / q + 0.5, min=0.0)


# ------------------------------------------------------------------------------ shared bounds
def _byte_type(etype: int, op: str) -> int:
    if etype not in _BYTES:
        raise UnsupportedOperator(f"{op}: element type {etype} is not supported (uint8, int8)")
    return etype


def _scalar(iv: Interval | None, op: str, what: str) -> Bounds:
    """float64 0-d bounds of a per-tensor scale or zero point (an absent zero point is 0)."""
    if iv is None:
        zero = torch.zeros((), dtype=torch.float64)
        return zero, zero
    if iv.shape is None or math.prod(iv.shape) != 1 or len(iv.shape) > 1:
        raise UnsupportedOperator(f"{op}: {what} must be a scalar or a 1-element vector")
    return iv.lower.reshape(()).to(torch.float64), iv.upper.reshape(()).to(torch.float64)


def _param(t: Tensor | None) -> Tensor:
    return torch.zeros((), dtype=torch.float32) if t is None else t.reshape(()).to(torch.float32)


def _finite(*bounds: Bounds) -> Tensor:
    """Where every bound stays inside float32's range (no step can overflow to infinity, hence no NaN)."""
    ok = torch.ones((), dtype=torch.bool)
    for lo, hi in bounds:
        ok = ok & (lo.abs() < _F32_MAX) & (hi.abs() < _F32_MAX)
    return ok


def _quotient(num: Bounds, den: Bounds) -> tuple[Bounds, Tensor]:
    """Bounds of ``fl(num / den)`` and where they hold (``den`` without 0)."""
    dl, dh = den
    valid = (dl > 0) | (dh < 0)
    one = torch.ones_like(dl)
    dl, dh = torch.where(valid, dl, one), torch.where(valid, dh, one)
    corners = torch.stack(torch.broadcast_tensors(*[n / d for n in num for d in (dl, dh)]))
    return _rounded32(corners.amin(0), corners.amax(0), 1), valid


def _rounded_int(v: Bounds, zero_point: Bounds, etype: int, valid: Tensor, wraps: Tensor | None = None) -> Bounds:
    """Integer bounds of ``sat(round(v) + zp)`` for any tie-breaking; the whole range where not ``valid``,
    the type's minimum included where ``wraps`` (a float beyond int32 converts to INT_MIN)."""
    low, high = _QUANTIZED[etype]
    lo = (torch.ceil(v[0] - 0.5) + zero_point[0]).clamp(low, high)
    hi = (torch.floor(v[1] + 0.5) + zero_point[1]).clamp(low, high)
    if wraps is not None:
        lo = torch.where(wraps, torch.full_like(lo, low), lo)
    lo = torch.where(valid, lo, torch.full_like(lo, low))
    hi = torch.where(valid, hi, torch.full_like(hi, high))
    return lo.to(torch.int64), hi.to(torch.int64)


def _cvt_bounds(v: Bounds, etype: int, valid: Tensor) -> Bounds:
    """Bounds of :func:`_cvt_int32` for a value in ``v`` (zero point already added in float)."""
    zero = torch.zeros((), dtype=torch.float64)
    valid = valid & _finite(v)
    return _rounded_int(v, (zero, zero), etype, valid, v[1] >= _INT32_LIMIT)


# ------------------------------------------------------------------------------ QLinearAdd, QLinearMul
def _first_broadcast(a: Sequence[int], b: Sequence[int]) -> bool:
    """Whether onnxruntime's broadcaster takes A as the scalar of each span: A is empty, or on the innermost
    common axis where either operand has more than one element A has one (or every common axis has one)."""
    if not a:
        return True
    if not b:
        return False
    for da, db in zip(reversed(a), reversed(b)):
        if max(da, db) > 1:
            return da == 1
    return True


class _QLinearBinary(OpRule):
    """QLinearAdd / QLinearMul: (A, A_scale, A_zero_point, B, B_scale, B_zero_point, C_scale, C_zero_point)."""

    hazards = (equal_to(0.0, "requantisation divides by a zero C_scale", name="division-by-zero", operand=6),)
    rounds = False
    unknown_shapes = ELEMENTWISE
    parameter_operands = frozenset({1, 2, 4, 5, 6, 7})

    def _types(self, a: int, b: int) -> int:
        if a != b:
            raise UnsupportedOperator(f"{self.op_type}: A and B have different element types ({a}, {b})")
        return _byte_type(a, self.op_type)

    def _scalars(self, *params: Interval | None) -> list[Bounds]:
        names = ("A_scale", "A_zero_point", "B_scale", "B_zero_point", "C_scale", "C_zero_point")
        return [_scalar(p, self.op_type, n) for p, n in zip(params, names)]


register("QuantizeLinear", domain=MS_DOMAIN)(QuantizeLinear)
register("DequantizeLinear", domain=MS_DOMAIN)(DequantizeLinear)


@register("QLinearAdd", domain=MS_DOMAIN)
class QLinearAdd(_QLinearBinary):
    """C = quantised (dequantised A + dequantised B), broadcasting; onnxruntime's float ratio formula."""

    accumulates = True  # the operation order depends on the kernel (AVX2 FMA, SSE2, NEON fixed point)

    def concrete(self, ctx: NodeContext, a: Tensor, sa: Tensor, za: Tensor | None, b: Tensor, sb: Tensor,
                 zb: Tensor | None, sc: Tensor, zc: Tensor | None = None) -> Tensor:
        etype = self._types(ctx.input_types[0], ctx.input_types[3])
        swap = _first_broadcast(tuple(a.shape), tuple(b.shape))
        (a, sa, za), (b, sb, zb) = ((b, sb, zb), (a, sa, za)) if swap else ((a, sa, za), (b, sb, zb))
        ra, rb = _param(sa) / _param(sc), _param(sb) / _param(sc)
        fixed = _param(zc) - _fma32(ra, _param(za), rb * _param(zb))
        a32, b32 = torch.broadcast_tensors(a.float(), b.float())
        return _cvt_int32(_fma32(a32, ra, _fma32(b32, rb, fixed)), etype)

    def abstract(self, ctx: NodeContext, a: Interval, sa: Interval, za: Interval | None, b: Interval,
                 sb: Interval, zb: Interval | None, sc: Interval, zc: Interval | None = None) -> Interval:
        etype = self._types(a.elem_type, b.elem_type)
        sa_, za_, sb_, zb_, sc_, zc_ = self._scalars(sa, za, sb, zb, sc, zc)
        (ra, va), (rb, vb) = _quotient(sa_, sc_), _quotient(sb_, sc_)
        ta, tb = (_rounded32(*arith.mul(*r, *z), 1) for r, z in ((ra, za_), (rb, zb_)))
        inner = _rounded32(*arith.add(*ta, *tb), 1)
        fixed = _rounded32(*arith.sub(*zc_, *inner), 1)
        valid = va & vb & _finite(ra, rb, ta, tb, inner, fixed)

        def fn(al: Tensor, ah: Tensor, bl: Tensor, bh: Tensor) -> Bounds:
            p = _rounded32(*arith.mul(al.double(), ah.double(), *ra), 1)
            q = _rounded32(*arith.mul(bl.double(), bh.double(), *rb), 1)
            orders = [_rounded32(*arith.add(*_rounded32(*arith.add(*first, *fixed), 1), *second), 1)
                      for first, second in ((p, q), (q, p))]
            v = torch.minimum(orders[0][0], orders[1][0]), torch.maximum(orders[0][1], orders[1][1])
            return _cvt_bounds(v, etype, valid & _finite(p, q))

        return elementwise(fn, [a, b], etype)


@register("QLinearMul", domain=MS_DOMAIN)
class QLinearMul(_QLinearBinary):
    """C = quantised (dequantised A * dequantised B), broadcasting: an exact integer product requantised."""

    def concrete(self, ctx: NodeContext, a: Tensor, sa: Tensor, za: Tensor | None, b: Tensor, sb: Tensor,
                 zb: Tensor | None, sc: Tensor, zc: Tensor | None = None) -> Tensor:
        etype = self._types(ctx.input_types[0], ctx.input_types[3])
        product = (a.to(torch.int32) - _param(za).to(torch.int32)) * (b.to(torch.int32) - _param(zb).to(torch.int32))
        ratio = _param(sa) * _param(sb) / _param(sc)
        return _cvt_int32(product.float() * ratio + _param(zc), etype)

    def abstract(self, ctx: NodeContext, a: Interval, sa: Interval, za: Interval | None, b: Interval,
                 sb: Interval, zb: Interval | None, sc: Interval, zc: Interval | None = None) -> Interval:
        etype = self._types(a.elem_type, b.elem_type)
        sa_, za_, sb_, zb_, sc_, zc_ = self._scalars(sa, za, sb, zb, sc, zc)
        scales = _rounded32(*arith.mul(*sa_, *sb_), 1)
        ratio, valid = _quotient(scales, sc_)
        valid = valid & _finite(scales, ratio)

        def fn(al: Tensor, ah: Tensor, bl: Tensor, bh: Tensor) -> Bounds:
            da = arith.sub(al.double(), ah.double(), *za_)
            db = arith.sub(bl.double(), bh.double(), *zb_)
            scaled = _rounded32(*arith.mul(*arith.mul(*da, *db), *ratio), 1)
            return _cvt_bounds(_rounded32(*arith.add(*scaled, *zc_), 1), etype, valid)

        return elementwise(fn, [a, b], etype)


# ------------------------------------------------------------------------------ lookup tables
def _codes(etype: int) -> Tensor:
    """The type's 256 values in increasing order (the table index is ``value - minimum``)."""
    low, high = _QUANTIZED[etype]
    return torch.arange(low, high + 1, dtype=torch.int64)


def _table_concrete(fn: Callable[[Tensor], Tensor], sx: Tensor, zx: Tensor | None, sy: Tensor, zy: Tensor | None,
                    etype: int) -> Tensor:
    """onnxruntime's 256-entry table: dequantise each code, apply ``fn`` in float32, quantise."""
    d = (_codes(etype) - _param(zx).to(torch.int64)).float() * _param(sx)
    return _quantize32(fn(d), _param(sy), _param(zy), etype)


def _quantized_bounds(f: Bounds, sy: Bounds, zy: Bounds, etype: int) -> Bounds:
    """Bounds of MlasQuantizeLinear for values in ``f``: NaN (from an infinite value) gives the minimum."""
    q, valid = _quotient(f, sy)
    low = float(_QUANTIZED[etype][0])
    lo, hi = _rounded_int(q, zy, etype, valid & _finite(sy))
    return torch.where(_finite(f), lo, torch.full_like(lo, int(low))), hi


def _lookup(x: Interval, table: Bounds, etype: int) -> Interval:
    """Per block, the smallest and largest table entries over the block's codes."""
    lo_t, hi_t = (t.to(torch.float64) for t in table)
    n = lo_t.numel()
    above = torch.arange(n).reshape(1, n) >= torch.arange(n).reshape(n, 1)  # [i, j]: j >= i
    mins = torch.cummin(torch.where(above, lo_t.expand(n, n), torch.inf), dim=1).values
    maxs = torch.cummax(torch.where(above, hi_t.expand(n, n), -torch.inf), dim=1).values
    first = _QUANTIZED[x.elem_type][0]
    i, j = x.lower.to(torch.int64) - first, x.upper.to(torch.int64) - first
    return x.with_bounds(mins[i, j].to(torch.int64), maxs[i, j].to(torch.int64), etype)


def _exact(*params: Interval | None) -> bool:
    return all(p is None or p.is_exact for p in params)


class _QLinearLookup(OpRule):
    """Y = table[X] for the operator's float function: (X, X_scale, X_zero_point, Y_scale, Y_zero_point)."""

    hazards = (equal_to(0.0, "quantisation divides by a zero Y_scale", name="division-by-zero", operand=3),)
    rounds = False
    unknown_shapes = ELEMENTWISE
    parameter_operands = frozenset({1, 2, 3, 4})
    platform_exact = True  # the table is the same on every platform: exact parameters give the exact table

    def fn32(self, d: Tensor) -> Tensor:
        """The float32 function onnxruntime applies to the dequantised codes."""
        raise NotImplementedError

    def fn_bounds(self, lo: Tensor, hi: Tensor) -> Bounds:
        """Sound bounds of every platform's float32 function over ``[lo, hi]``."""
        raise NotImplementedError

    def _table_bounds(self, sx: Interval, zx: Interval | None, sy: Interval, zy: Interval | None,
                      etype: int) -> Bounds:
        op = self.op_type
        if self.platform_exact and _exact(sx, zx, sy, zy):
            table = _table_concrete(self.fn32, *(None if p is None else p.exact_value() for p in (sx, zx, sy, zy)),
                                    etype).to(torch.int64)
            return table, table
        codes = _codes(etype).double()
        (sl, sh), (zl, zh) = _scalar(sx, op, "X_scale"), _scalar(zx, op, "X_zero_point")
        d = _rounded32(*arith.mul(sl, sh, codes - zh, codes - zl), 1)
        finite = _finite(d)  # an overflowing dequantisation is infinite: anything may follow
        f = tuple(torch.where(finite, b, torch.full_like(b, v)) for b, v in zip(self.fn_bounds(*d), (-math.inf,
                                                                                                      math.inf)))
        return _quantized_bounds(f, _scalar(sy, op, "Y_scale"), _scalar(zy, op, "Y_zero_point"), etype)

    def concrete(self, ctx: NodeContext, x: Tensor, sx: Tensor, zx: Tensor | None, sy: Tensor,
                 zy: Tensor | None = None) -> Tensor:
        etype = _byte_type(ctx.input_types[0], self.op_type)
        table = _table_concrete(self.fn32, sx, zx, sy, zy, etype)
        return table[x.to(torch.int64) - _QUANTIZED[etype][0]]

    def abstract(self, ctx: NodeContext, x: Interval, sx: Interval, zx: Interval | None, sy: Interval,
                 zy: Interval | None = None) -> Interval:
        etype = _byte_type(x.elem_type, self.op_type)
        return _lookup(x, self._table_bounds(sx, zx, sy, zy, etype), etype)


@register("QLinearSigmoid", domain=MS_DOMAIN)
class QLinearSigmoid(_QLinearLookup):
    """Y = quantised sigmoid(dequantised X), through MLAS's logistic kernel."""

    accumulates = True  # each platform's logistic kernel rounds its own way: no exact fast path
    platform_exact = False

    def fn32(self, d: Tensor) -> Tensor:
        return _logistic32(d)

    def fn_bounds(self, lo: Tensor, hi: Tensor) -> Bounds:
        return (torch.sigmoid(lo) - _SIGMOID_ERROR).clamp(min=0.0), torch.sigmoid(hi) + _SIGMOID_ERROR


@register("QLinearLeakyRelu", domain=MS_DOMAIN)
class QLinearLeakyRelu(_QLinearLookup):
    """Y = quantised leaky_relu(dequantised X): ``d >= 0 ? d : fl(alpha d)``."""

    alpha: float = 0.01

    def fn32(self, d: Tensor) -> Tensor:
        return torch.where(d >= 0, d, torch.tensor(self.alpha, dtype=torch.float32) * d)

    def fn_bounds(self, lo: Tensor, hi: Tensor) -> Bounds:
        alpha = torch.tensor(float(torch.tensor(self.alpha, dtype=torch.float32)), dtype=torch.float64)
        nl, nh = _rounded32(*arith.mul(alpha, alpha, lo, hi.clamp(max=0.0)), 1)  # the part below 0
        neg, pos = lo < 0, hi >= 0
        low = torch.minimum(torch.where(neg, nl, torch.inf), torch.where(pos, lo.clamp(min=0.0), torch.inf))
        high = torch.maximum(torch.where(neg, nh, -torch.inf), torch.where(pos, hi, -torch.inf))
        return low, high


# ------------------------------------------------------------------------------ QLinearConcat
def _concat_operands(args: Sequence, op: str) -> list[tuple]:
    """(X, X_scale, X_zero_point) triples after (Y_scale, Y_zero_point)."""
    if len(args) < 5 or (len(args) - 2) % 3:
        raise UnsupportedOperator(f"{op}: inputs must be Y_scale, Y_zero_point, then (X, scale, zero point) triples")
    return [tuple(args[i:i + 3]) for i in range(2, len(args), 3)]


def _identity(d: Tensor) -> Tensor:
    return d


@register("QLinearConcat", domain=MS_DOMAIN)
class QLinearConcat(OpRule):
    """Y = concatenation along ``axis`` of each input requantised to (Y_scale, Y_zero_point) by a table, or
    copied where its scale and zero point are the output's."""

    axis: int = 0
    rounds = False
    hazards = (equal_to(0.0, "requantisation divides by a zero Y_scale", name="division-by-zero", operand=0),)
    parameter_operands = frozenset({0, 1} | {i for i in range(2, 3 * 1024) if (i - 2) % 3})

    def concrete(self, ctx: NodeContext, sy: Tensor, zy: Tensor, *triples: Tensor) -> Tensor:
        etype = _byte_type(ctx.input_types[1], "QLinearConcat")
        parts = []
        for x, sx, zx in _concat_operands((sy, zy, *triples), "QLinearConcat"):
            if bool(_param(sx) == _param(sy)) and bool(_param(zx) == _param(zy)):
                parts.append(x)
                continue
            table = _table_concrete(_identity, sx, zx, sy, zy, etype)
            parts.append(table[x.to(torch.int64) - _QUANTIZED[etype][0]])
        return torch.cat(parts, dim=self.axis % parts[0].dim())

    def abstract(self, ctx: NodeContext, sy: Interval, zy: Interval, *triples: Interval) -> Interval:
        etype = _byte_type(zy.elem_type, "QLinearConcat")
        return Concat(axis=self.axis).abstract(ctx, *[self._part(x, sx, zx, sy, zy, etype) for x, sx, zx in
                                                      _concat_operands((sy, zy, *triples), "QLinearConcat")])

    @staticmethod
    def _part(x: Interval, sx: Interval, zx: Interval, sy: Interval, zy: Interval, etype: int) -> Interval:
        """One input requantised: the table's bounds, joined with the copy where the parameters may match."""
        if _byte_type(x.elem_type, "QLinearConcat") != etype:
            raise UnsupportedOperator("QLinearConcat: inputs and output must have the same element type")
        same = [_scalar(p, "QLinearConcat", "scale or zero point") for p in (sx, sy, zx, zy)]
        may_copy = all(bool((a[0] <= b[1]) & (b[0] <= a[1])) for a, b in (same[:2], same[2:]))
        if may_copy and _exact(sx, sy, zx, zy):
            return x
        table = _Identity()._table_bounds(sx, zx, sy, zy, etype)
        part = _lookup(x, table, etype)
        return part.join(x) if may_copy else part


class _Identity(_QLinearLookup):
    """QLinearConcat's requantisation table (the identity function)."""

    op_type = "QLinearConcat"

    def fn32(self, d: Tensor) -> Tensor:
        return d

    def fn_bounds(self, lo: Tensor, hi: Tensor) -> Bounds:
        return lo, hi
