"""onnxruntime's dynamic-quantization contrib operators (``com.microsoft``): MatMulIntegerToFloat and
DynamicQuantizeMatMul (QAttention and QEmbedLayerNormalization, which reuse the bounds here, are in
:mod:`ranum.ops.contrib_dynamic_quantized_attention`).

``onnxruntime.quantization.quantize_dynamic`` writes DynamicQuantizeLinear -> MatMulInteger -> Cast -> Mul (-> Add)
for every MatMul; onnxruntime's extended graph optimisation fuses each chain into one DynamicQuantizeMatMul, or,
where one DynamicQuantizeLinear feeds several MatMulIntegers (projections of one input), into
MatMulIntegerToFloat nodes reading its three outputs. A fused Attention becomes DynamicQuantizeLinear -> QAttention,
an EmbedLayerNormalization QEmbedLayerNormalization. Semantics measured on onnxruntime 1.32 (CPU, x86-64 with
AVX-512 VNNI) and its sources, checked in ``tests/ops/test_contrib_dynamic_quantized.py`` (the products bit for
bit, attention and normalization within float tolerance):

* The int32 sum ``acc = (A - a_zp) @ (B - b_zp)`` (batched as MatMul; zero points of A per tensor, of B per
  tensor or per column), then ``y = fl(fl(fl(acc) * m) + bias)`` with the float32 multiplier
  ``m = fl(a_scale * b_scale)``: separate roundings, no FMA (an FMA disagreed on 29 of 40 draws).
* Scale shapes: MatMulIntegerToFloat first swaps a_scale and b_scale where a_scale is not one element and is
  1-D or its last dimension is not 1, or where b_scale is not one element and its second-to-last dimension is
  not 1. A scale that does not fit its role (a_scale not one element; b_scale not per tensor, ``(N,)`` with a
  2-D B, nor B's shape with 1 as second-to-last dimension) multiplies the *output*, after the bias, a then b,
  each product rounded once: measured for a per-row a_scale and a ``(N,)`` b_scale of a 3-D B.
* DynamicQuantizeMatMul quantizes A per tensor exactly as DynamicQuantizeLinear (``s = fl(fl(M - m) / 255)``
  with ``M = max(0, max A)``, ``m = min(0, min A)``, 1 when both are 0; ``zp = round(clamp(-fl(m / s), 0,
  255))``; ``q = round(clamp(fl(a / s), -zp, 255 - zp)) + zp``, half to even), then computes as
  MatMulIntegerToFloat with ``a_scale = s``: equal bit for bit, also for all-zero A, one repeated value,
  subnormal A (s subnormal or 0) and huge A (s near 1e36; an infinite product overflows to inf).

Concrete rules follow those steps exactly (the int32 sum as a float64 matmul, exact for these magnitudes, wrapped
to int32). Every rule sets ``accumulates``: exact operands take the abstract rule, which also covers x86 kernels
without VNNI, whose ``vpmaddubsw`` saturates each int16 sum of two raw products (uint8 A times int8 B).

**Integer route** (every product). Bounds of ``acc`` by midpoint and radius
(:func:`ranum.ops.quantized._product`), widened by the pair saturation below; a sum that may leave int32 wraps
to any int32 value. Then each float step adds one float32 rounding (:func:`ranum.ops.quantized._rounded32`),
the bias and the output scales one each. DynamicQuantizeMatMul takes A's codes, scale and zero point from
DynamicQuantizeLinear's rule (its exact values for an exact A).

*Pair saturation, tighter than* :func:`ranum.ops.quantized._saturation` *and blind to how pairs are formed.*
With ``c_k`` the largest raw product ``a_k b_k`` over the operands' ranges, a pair ``p = c_1 + c_2`` above 32767
loses ``p - 32767 <= (c_1 - 16383.5) + (c_2 - 16383.5)``, at most ``sum_k max(0, c_k - 16383.5)`` over all pairs
(each term in one pair); symmetrically a pair below -32768 gains at most ``sum_k max(0, -16384 - c'_k)`` with
``c'_k`` the smallest raw product. Only terms whose product can pass 16383 in magnitude count: with uint8 A,
int8 weights of magnitude 65 or more. Applied where B is int8, as for MatMulInteger.

**Slack route** (DynamicQuantizeMatMul, and MatMulIntegerToFloat and QAttention whose A, A's scale and zero point
are the three outputs of one DynamicQuantizeLinear: then its input X is read from the graph). Write
``w = (B - b_zp) b_scale`` (exact in float64) and ``a' = s (q - zp)`` for the dequantized A, so that
``acc s b_scale = sum_k a'_k w_k``.

*Claim:* with ``H = max(0, max hi)``, ``L = min(0, min lo)`` over A's bounds and ``H - L < FLT_MAX``, every
``|a'_k - a_k| <= delta = max((H - L)(1 + 2^-12) / 510, 2^-116)``: half a quantization step. *Proof:* let ``M, m``
be the extremes of the actual A (``M - m <= H - L``, so ``fl(M - m)`` is finite) and u = 2^-24. If
``fl(M - m) / 255 >= 2^-126`` (s normal), ``255 s = (M - m)(1 + e)`` with ``|e| <= 2.1u``, so
``|a / s| <= (M - m) / s <= 255 (1 + 2.2u)`` and ``fl(a / s)``, ``fl(m / s)`` lie within ``766u`` of the real
quotients (``3u`` relative: this also covers kernels multiplying by ``fl(1 / s)``). The clamp bounds ``-zp``,
``255 - zp`` are integers, so clamping then rounding equals rounding then clamping; with ``r = q - zp``:
(i) unclamped, ``|r - a / s| <= 1/2 + 766u``; (ii) clamped below, ``round(fl(a / s)) < r = -zp``, and
``-zp - a / s <= -zp - m / s``, which is at most ``1/2 + 766u`` (``zp = round(-fl(m / s))``) or ``561u``
(``zp = 255``, as ``-m / s <= 255 (1 + 2.2u)``); (iii) clamped above, ``round(fl(a / s)) > r = 255 - zp`` and
``a / s - r <= (M - m) / s - 255 + zp + m / s <= 561u + 1/2 + 766u``. So
``|a' - a| = s |r - a / s| <= s (1/2 + 1327u) <= (H - L)(1 + 2.1u)(1 + 2654u) / 510``, within ``delta``
(``2657u < 2^-12``). Otherwise (s subnormal or 0) ``|a'| <= 255 s <= 2^-118`` and ``|a| <= M - m < 2^-117``. QED.

*Bound:* ``fl(acc)``, ``fl(s b_scale)`` and the product round three times (relative ``3.0001u``, absolute
``2^-118`` from a subnormal multiplier), the saturation adds ``d s b_scale`` with ``d`` bounded above and
``s <= max((H - L)(1 + 2^-20) / 255, 2^-126)``. So ``fl(fl(acc) m) = (P + E + D)(1 + t) + n`` with
``P = sum_k a_k w_k``, ``|E| <= delta sum_k |w_k|``, and the output lies in the bounds of P over A's box (a
float64 interval product, widened by the relative error of 4 roundings on ``sum |a_k w_k|``) widened by
``(delta sum_k |w_k| + |D|)(1 + 2^-20) + 2^-110``. Where ``H - L`` reaches FLT_MAX (s may be infinite, hence NaN),
a column's multiplier may overflow, or its int32 sum may wrap, that column is unbounded. The result is met with
the integer route (tighter for narrow boxes, e.g. exact A).

Not modelled (UnsupportedOperator, with the reason): float16 scales, biases or A; zero points of A other than one
element; B's zero point or QAttention's weight scale neither per tensor nor per column; QAttention's past, present,
do_rotary and masks other than (B, L) 1/0 or (B,) lengths; QEmbedLayerNormalization's tables given as ranges.
DynamicQuantizeLSTM has no rule. Arm's KleidiAI path (per-row int8 A, symmetric B) is not modelled.
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
from ranum.ops._base import NodeContext, OpRule
from ranum.ops._relations import meet
from ranum.ops.contrib import MS_DOMAIN, rounded_sum
from ranum.ops.hazards import Overflow
from ranum.ops.linear import blockwise_product, interval_product
from ranum.ops.quantized import DynamicQuantizeLinear, _matmul64, _product, _rounded32, _shifted
from ranum.ops.registry import register

__all__ = ["DynamicQuantizeMatMul", "MatMulIntegerToFloat", "scale_roles"]

Bounds = tuple[Tensor, Tensor]
FLOAT = TensorProto.FLOAT
_BYTES = (TensorProto.UINT8, TensorProto.INT8)
_INT32_LOW, _INT32_HIGH = -(2**31), 2**31 - 1
_F32_MAX = float(torch.finfo(torch.float32).max)
_STEP = (1 + 2.0**-12) / 510  # |a' - a| / (H - L): half a quantization step (module docstring)
_STEP_FLOOR = 2.0**-116  # |a' - a| when A's scale is subnormal or 0
_SCALE = (1 + 2.0**-20) / 255  # A's scale / (H - L)
_SCALE_FLOOR = 2.0**-126  # A's scale when it is subnormal
_OUTWARD = 1 + 2.0**-20  # three float32 roundings of the slack terms (3.0001 u), with room
_JUNK = 2.0**-110  # absolute error of a subnormal multiplier times an int32 sum (2**-118), with room
_PAIR_HALF = (2**14 - 0.5, 2**14)  # a term's share of the int16 limits 32767 and -32768: 16383.5, 16384


# ------------------------------------------------------------------------------ layouts
def _one_element(shape: Sequence[int]) -> bool:
    """onnxruntime's IsScalarOr1ElementVector: rank 0, or rank 1 of size 1."""
    return len(shape) == 0 or (len(shape) == 1 and shape[0] == 1)


def _per_column(param: Sequence[int], b_shape: Sequence[int]) -> bool:
    """onnxruntime's IsBQuantParamSupported: one element, ``(N,)`` with a 2-D B, or B's shape with 1 as its
    second-to-last dimension."""
    if _one_element(param):
        return True
    if len(param) == 1 and len(b_shape) == 2 and param[0] == b_shape[1]:
        return True
    if len(param) != len(b_shape) or len(param) <= 1 or param[-2] != 1:
        return False
    return all(p == b for i, (p, b) in enumerate(zip(param, b_shape)) if i != len(param) - 2)


def _column(param: Sequence[int], b_shape: Sequence[int], op: str, what: str) -> Callable[[Tensor], Tensor]:
    """The layout of a per-tensor or per-column parameter of B, broadcasting against the output."""
    if not _per_column(param, b_shape):
        raise UnsupportedOperator(f"{op}: {what} of shape {tuple(param)} is neither per tensor nor per column of "
                                  f"B {tuple(b_shape)}")
    if _one_element(param):
        return lambda t: t.reshape(())
    return lambda t: t


def scale_roles(a_scale: Sequence[int], b_scale: Sequence[int], b_shape: Sequence[int]
                ) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """MatMulIntegerToFloat's use of its scales (operand 2: a_scale, 3: b_scale): the operands whose float32
    product multiplies the int32 sums, and those that multiply the output after the bias, in order.

    Mirrors onnxruntime's FixupScaleTensor (a swap of the two) and IsBQuantParamSupported.
    """
    shapes = {2: tuple(a_scale), 3: tuple(b_scale)}
    first, second = 2, 3
    if not _one_element(shapes[2]):
        if len(shapes[2]) == 1 or shapes[2][-1] != 1:
            first, second = 3, 2
    elif not _one_element(shapes[3]) and len(shapes[3]) > 1 and shapes[3][-2] != 1:
        first, second = 3, 2
    pre, post = [], []
    (pre if _one_element(shapes[first]) else post).append(first)
    (pre if _per_column(shapes[second], b_shape) else post).append(second)
    return tuple(pre), tuple(post)


def _output_shape(a: Sequence[int], b: Sequence[int], op: str) -> tuple[int, ...]:
    if len(a) < 2 or len(b) < 2 or a[-1] != b[-2]:
        raise UnsupportedOperator(f"{op}: A {tuple(a)} and B {tuple(b)} must be matrices (rank >= 2) with A's "
                                  "columns matching B's rows")
    try:
        batch = torch.broadcast_shapes(tuple(a[:-2]), tuple(b[:-2]))
    except RuntimeError as error:
        raise UnsupportedOperator(f"{op}: batch dimensions of A {tuple(a)} and B {tuple(b)} do not broadcast") \
            from error
    return tuple(batch) + (a[-2], b[-1])


def _check_post(shape: Sequence[int], out: Sequence[int], op: str) -> None:
    try:
        fits = tuple(torch.broadcast_shapes(tuple(shape), tuple(out))) == tuple(out)
    except RuntimeError:
        fits = False
    if not fits:
        raise UnsupportedOperator(f"{op}: a scale of shape {tuple(shape)} applied to the output {tuple(out)} "
                                  "must broadcast to it")


def _check_bias(shape: Sequence[int] | None, n: int, op: str) -> None:
    if shape is not None and tuple(shape) != (n,):
        raise UnsupportedOperator(f"{op}: bias of shape {tuple(shape)}, expected ({n},)")


def _byte(elem_type: int, op: str, what: str) -> None:
    if elem_type not in _BYTES:
        raise UnsupportedOperator(f"{op}: {what} of element type {elem_type} (uint8 or int8 only)")


def _one_zero_point(shape: Sequence[int] | None, op: str) -> None:
    if shape is not None and not _one_element(shape):
        raise UnsupportedOperator(f"{op}: A's zero point must be a scalar or one-element vector (onnxruntime)")


# ------------------------------------------------------------------------------ concrete
def _sum_concrete(a: Tensor, a_zp: Tensor | None, b: Tensor, b_zp: Tensor | None, op: str) -> Tensor:
    """``(a - a_zp) @ (b - b_zp)`` wrapped to int32: a float64 matmul, exact below 2**53 (K < 2**37)."""
    da = a.to(torch.int64) - (a_zp.reshape(()).to(torch.int64) if a_zp is not None else 0)
    db = b.to(torch.int64)
    if b_zp is not None:
        db = db - _column(b_zp.shape, b.shape, op, "b_zero_point")(b_zp).to(torch.int64)
    return torch.matmul(da.double(), db.double()).round().to(torch.int64).to(torch.int32)


def _to_float(acc: Tensor, pre: Sequence[Tensor], bias: Tensor | None, post: Sequence[Tensor]) -> Tensor:
    """``fl(fl(fl(acc) * fl(prod pre)) + bias)`` then times each of ``post``, in float32."""
    multiplier = torch.ones((), dtype=torch.float32)
    for scale in pre:
        multiplier = multiplier * scale.to(torch.float32)
    y = acc.to(torch.float32) * multiplier
    if bias is not None:
        y = y + bias.to(torch.float32)
    for scale in post:
        y = y * scale.to(torch.float32)
    return y


# ------------------------------------------------------------------------------ integer route
def _pair_saturation(codes: Bounds, b: Bounds) -> Bounds:
    """Per column (``[..., 1, N]``, int64), bounds of what int16 saturation of pair sums of raw products adds to
    the int32 sum, for raw A values in ``codes`` (two 0-d bounds) and raw B bounds (module docstring)."""
    (alo, ahi), (blo, bhi) = (tuple(t.to(torch.float64) for t in pair) for pair in (codes, b))
    corners = torch.stack([alo * blo, alo * bhi, ahi * blo, ahi * bhi])
    top, bottom = corners.amax(0), corners.amin(0)
    lost = (top - _PAIR_HALF[0]).clamp(min=0).sum(-2, keepdim=True)
    gained = (-_PAIR_HALF[1] - bottom).clamp(min=0).sum(-2, keepdim=True)
    return (-lost).floor().to(torch.int64), gained.ceil().to(torch.int64)


def _sum_bounds(a: Interval, a_zp: Interval | None, b: Interval, b_zp: Interval | None, op: str) -> Bounds:
    """Full int64 bounds of the int32 sum as onnxruntime's kernels compute it (saturation included)."""
    b_layout = _column(b_zp.shape, b.shape, op, "b_zero_point") if b_zp is not None else None
    lo, hi = _product(_matmul64, _shifted(a, a_zp, lambda t: t.reshape(())), _shifted(b, b_zp, b_layout))
    if b.elem_type == TensorProto.INT8:
        codes = (a.lower.min(), a.upper.max())
        dl, dh = _pair_saturation(codes, tuple(t.to(torch.int64) for t in b.full()))
        lo, hi = lo + dl, hi + dh
    wraps = (lo < _INT32_LOW) | (hi > _INT32_HIGH)
    return torch.where(wraps, _INT32_LOW, lo), torch.where(wraps, _INT32_HIGH, hi)


def _layout_bounds(iv: Interval, layout: Callable[[Tensor], Tensor]) -> Bounds:
    lo, hi = iv.full()
    return layout(lo.to(torch.float64)), layout(hi.to(torch.float64))


def _multiplier(pre: Sequence[Bounds]) -> Bounds:
    """Bounds of the float32 product of the scales in ``pre`` (1 when none; one rounding for two)."""
    if not pre:
        one = torch.ones((), dtype=torch.float64)
        return one, one
    if len(pre) == 1:
        return pre[0]
    return _rounded32(*arith.mul(*pre[0], *pre[1]), 1)


def _finish(out: Interval, bias: Interval | None, post: Sequence[Interval]) -> Interval:
    """The bias added, then the output scales applied, each with one float32 rounding."""
    if bias is not None:
        out = rounded_sum([out, bias])
    for scale in post:
        out = elementwise(arith.mul, [out, scale], FLOAT).widened(1.0)
    return out


def _integer_route(acc: Bounds, multiplier: Bounds, budget: int) -> Interval:
    """Bounds of ``fl(fl(acc) * m)`` for int32 sums in ``acc`` and a multiplier in ``multiplier``."""
    lo, hi = _rounded32(acc[0].to(torch.float64), acc[1].to(torch.float64), 1)
    lo, hi = _rounded32(*arith.mul(lo, hi, *multiplier), 1)
    return Interval.from_full(lo, hi, FLOAT, budget)


# ------------------------------------------------------------------------------ slack route
def _shifted_weight(b: Interval, b_zp: Interval | None, op: str) -> Bounds:
    """Full float64 bounds of ``B - b_zp`` (integers of at most 9 bits)."""
    layout = _column(b_zp.shape, b.shape, op, "b_zero_point") if b_zp is not None else None
    lo, hi = _shifted(b, b_zp, layout)
    return lo.to(torch.float64), hi.to(torch.float64)


def _slack_route(x: Interval, codes: Bounds, b: Interval, b_zp: Interval | None, scale: Bounds | None,
                 out_shape: tuple[int, ...], op: str, budget: int) -> Interval:
    """Bounds of ``fl(fl(acc) * fl(s * b_scale))`` from the box of the float A (``x``) that onnxruntime
    quantizes, before the bias (module docstring: the slack route). ``codes``: bounds of A's raw codes;
    ``scale``: b_scale's bounds where it scales the sums (None: it scales the output later)."""
    span = x.upper.max().clamp(min=0.0) - x.lower.min().clamp(max=0.0)  # H - L, a 0-d tensor (differentiable)
    if not bool(span < _F32_MAX):  # A's scale may be infinite: NaN or anything
        return Interval.top(out_shape, FLOAT)
    shifted = _shifted_weight(b, b_zp, op)
    one = torch.ones((), dtype=torch.float64)
    sl, sh = scale if scale is not None else (one, one)
    w_lo, w_hi = arith.mul(*shifted, sl, sh)  # exact: a 9-bit integer times a float32
    w = Interval.point(w_lo, FLOAT) if bool(torch.equal(w_lo, w_hi)) else Interval.from_full(w_lo, w_hi, FLOAT)
    out = blockwise_product(x, w, lambda p, q: interval_product(torch.matmul, [p, q]), 4, budget)
    a_scale = (span * _SCALE).clamp(min=_SCALE_FLOOR)
    zero = torch.zeros((), dtype=torch.int64)
    dl, dh = _pair_saturation(codes, tuple(t.to(torch.int64) for t in b.full())) \
        if b.elem_type == TensorProto.INT8 else (zero, zero)
    d_lo, d_hi = arith.mul(dl.double() * a_scale, dh.double() * a_scale, sl, sh)  # d s b_scale, s in [0, a_scale]
    magnitude = torch.maximum(w_lo.abs(), w_hi.abs()).sum(-2, keepdim=True) * (span * _STEP).clamp(min=_STEP_FLOOR)
    extra_lo = (magnitude - d_lo) * _OUTWARD + _JUNK
    extra_hi = (magnitude + d_hi) * _OUTWARD + _JUNK
    # the int32 sum may wrap (|q - zp| <= 255), or the multiplier overflow to infinity: anything
    biggest = 255 * torch.maximum(shifted[0].abs(), shifted[1].abs()).sum(-2, keepdim=True) + torch.maximum(-dl, dh)
    huge = (biggest > _INT32_HIGH) | (a_scale * torch.maximum(sl.abs(), sh.abs()) * _OUTWARD >= _F32_MAX)
    extra_lo, extra_hi = (torch.where(huge, torch.inf, e) for e in (extra_lo, extra_hi))
    lo, hi = out.full()
    return Interval.from_full(lo - extra_lo, hi + extra_hi, FLOAT, budget)


def _quantizer_input(ctx: NodeContext, positions: tuple[int, int, int]) -> Interval | None:
    """X, when the node's inputs at ``positions`` (A, A's scale, A's zero point) are the three outputs of one
    DynamicQuantizeLinear(X)."""
    graph, names = ctx.graph, ctx.node.inputs
    if graph is None or len(names) <= max(positions) or not names[positions[0]]:
        return None
    node = graph.producer(names[positions[0]])
    if node is None or node.op_type != "DynamicQuantizeLinear" or node.domain not in ("", "ai.onnx"):
        return None
    if tuple(node.outputs[:3]) != tuple(names[i] for i in positions):
        return None
    x = graph.interval(node.inputs[0])
    return x if x is not None and x.shape is not None and x.elem_type == FLOAT else None


def _quantized(ctx: NodeContext, a: Interval) -> tuple[Interval, Interval, Interval]:
    """DynamicQuantizeLinear's codes, scale and zero point of A: exact for an exact A (as DynamicQuantizeLinear's
    rule takes them), else its abstract rule's bounds."""
    if not a.is_exact:
        return DynamicQuantizeLinear().abstract(ctx, a)
    q, s, zp = DynamicQuantizeLinear().concrete(ctx, a.exact_value())
    return Interval.point(q, TensorProto.UINT8), Interval.point(s, FLOAT), Interval.point(zp, TensorProto.UINT8)


def _product_bounds(a: Interval, b: Interval, scales: dict[int, Interval], zero_points: tuple, bias: Interval | None,
                    roles: tuple[tuple[int, ...], tuple[int, ...]], x: Interval | None, op: str, budget: int
                    ) -> Interval:
    """Bounds of MatMulIntegerToFloat's result: the integer route, met with the slack route where ``x``, the float
    A that onnxruntime quantized into ``a`` with scale ``scales[2]``, is known. ``roles``: :func:`scale_roles`."""
    (a_zp, b_zp), (pre, post) = zero_points, roles
    pre_bounds = [_layout_bounds(scales[i], _column(scales[i].shape, b.shape, op, "b_scale")) for i in pre]
    post_scales = [scales[i] for i in post]
    acc = _sum_bounds(a, a_zp, b, b_zp, op)
    out = _finish(_integer_route(acc, _multiplier(pre_bounds), budget), bias, post_scales)
    if x is None or 2 not in pre or tuple(x.shape) != tuple(a.shape):
        return out
    scale = pre_bounds[pre.index(3)] if 3 in pre else None  # b_scale, where it scales the sums
    slack = _slack_route(x, (a.lower.min(), a.upper.max()), b, b_zp, scale, tuple(out.shape), op, budget)
    return meet(out, _finish(slack, bias, post_scales))


def _float32(op: str, **types: int) -> None:
    for what, elem_type in types.items():
        if elem_type != FLOAT:
            raise UnsupportedOperator(f"{op}: {what} of element type {elem_type} (float32 only)")


# ------------------------------------------------------------------------------ rules
@register("MatMulIntegerToFloat", domain=MS_DOMAIN)
class MatMulIntegerToFloat(OpRule):
    """``Y = (A - a_zero_point) @ (B - b_zero_point) * fl(a_scale * b_scale) + bias`` in float32, the product an
    int32 sum; B's scale and zero point per tensor or per column (see the module docstring)."""

    hazards = (Overflow(),)
    accumulates = True  # exact operands take the abstract rule: x86 kernels without VNNI saturate int8 weights
    parameter_operands = frozenset({2, 3, 4, 5})  # the scales and zero points

    def _plan(self, a: Sequence[int], b: Sequence[int], a_scale: Sequence[int], b_scale: Sequence[int],
              a_zp: Sequence[int] | None, bias: Sequence[int] | None) -> tuple[tuple[int, ...], tuple[int, ...]]:
        op = self.op_type
        out = _output_shape(a, b, op)
        _one_zero_point(a_zp, op)
        _check_bias(bias, b[-1], op)
        pre, post = scale_roles(a_scale, b_scale, b)
        for index in post:
            _check_post((a_scale, b_scale)[index - 2], out, op)
        return pre, post

    def concrete(self, ctx: NodeContext, a: Tensor, b: Tensor, a_scale: Tensor, b_scale: Tensor,
                 a_zp: Tensor | None = None, b_zp: Tensor | None = None, bias: Tensor | None = None) -> Tensor:
        op = self.op_type
        pre, post = self._plan(a.shape, b.shape, a_scale.shape, b_scale.shape,
                               None if a_zp is None else a_zp.shape, None if bias is None else bias.shape)
        scales = {2: a_scale, 3: b_scale}
        layouts = [_column(scales[i].shape, b.shape, op, "b_scale")(scales[i]) for i in pre]
        return _to_float(_sum_concrete(a, a_zp, b, b_zp, op), layouts, bias, [scales[i] for i in post])

    def abstract(self, ctx: NodeContext, a: Interval, b: Interval, a_scale: Interval, b_scale: Interval,
                 a_zp: Interval | None = None, b_zp: Interval | None = None, bias: Interval | None = None) -> Interval:
        op = self.op_type
        _byte(a.elem_type, op, "A")
        _byte(b.elem_type, op, "B")
        _float32(op, a_scale=a_scale.elem_type, b_scale=b_scale.elem_type)
        roles = self._plan(a.shape, b.shape, a_scale.shape, b_scale.shape,
                           None if a_zp is None else a_zp.shape, None if bias is None else bias.shape)
        return _product_bounds(a, b, {2: a_scale, 3: b_scale}, (a_zp, b_zp), bias, roles,
                               _quantizer_input(ctx, (0, 2, 4)), op, ctx.budget)


@register("DynamicQuantizeMatMul", domain=MS_DOMAIN)
class DynamicQuantizeMatMul(OpRule):
    """``Y = MatMulIntegerToFloat(q, B, s, b_scale, zp, b_zero_point, bias)`` with ``q, s, zp`` the uint8
    quantization of the float32 A by DynamicQuantizeLinear (see the module docstring)."""

    hazards = (Overflow(),)
    accumulates = True
    parameter_operands = frozenset({2, 3})  # b_scale, b_zero_point

    def _roles(self, b_type: int, a_shape: Sequence[int], b_shape: Sequence[int], b_scale: Sequence[int],
               bias: Sequence[int] | None) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """A's scale scales the sums, b_scale too where it fits B, else the output (after the bias)."""
        op = self.op_type
        _byte(b_type, op, "B")
        out = _output_shape(a_shape, b_shape, op)
        _check_bias(bias, b_shape[-1], op)
        if _per_column(b_scale, b_shape):
            return (2, 3), ()
        _check_post(b_scale, out, op)
        return (2,), (3,)

    def concrete(self, ctx: NodeContext, a: Tensor, b: Tensor, b_scale: Tensor, b_zp: Tensor | None = None,
                 bias: Tensor | None = None) -> Tensor:
        op = self.op_type
        b_type = {torch.int8: TensorProto.INT8, torch.uint8: TensorProto.UINT8}.get(b.dtype, TensorProto.UNDEFINED)
        pre, _ = self._roles(b_type, a.shape, b.shape, b_scale.shape, None if bias is None else bias.shape)
        q, s, zp = DynamicQuantizeLinear().concrete(ctx, a)
        acc = _sum_concrete(q, zp, b, b_zp, op)
        if 3 in pre:
            return _to_float(acc, [s, _column(b_scale.shape, b.shape, op, "b_scale")(b_scale)], bias, [])
        return _to_float(acc, [s], bias, [b_scale])

    def abstract(self, ctx: NodeContext, a: Interval, b: Interval, b_scale: Interval, b_zp: Interval | None = None,
                 bias: Interval | None = None) -> Interval:
        op = self.op_type
        _float32(op, A=a.elem_type, b_scale=b_scale.elem_type)
        roles = self._roles(b.elem_type, a.shape, b.shape, b_scale.shape, None if bias is None else bias.shape)
        if math.prod(a.shape) == 0:
            raise UnsupportedOperator(f"{op}: empty A")
        q, s, zp = _quantized(ctx, a)
        return _product_bounds(q, b, {2: s, 3: b_scale}, (zp, b_zp), bias, roles, None if a.is_exact else a, op,
                               ctx.budget)
