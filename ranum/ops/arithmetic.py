"""Element-wise arithmetic with broadcasting: Add, Sub, Mul, Div, Pow, Mod, Max, Min, Clip, the exact
unary maps Abs, Neg, Sign, Ceil, Floor, Round, and BitShift (sums of many terms are in
:mod:`ranum.ops.accumulate`).

Invariants: bounds are the real-number results for inputs inside the operand intervals; the
interpreter then rounds float outputs outward (``rounds``) except for the exact operators (Abs, Neg,
Sign, Ceil, Floor, Round, Max, Min, Clip, Mod), whose float results need no rounding. Precision:
``x - x`` is exactly 0 (also for x computed twice alike), ``x - max(s, x) <= 0`` and differences of one
running sum are bounded by its terms (:mod:`ranum.ops._difference_relations`), ``x * x`` and
``x ** even`` are never negative, Clip with exact limits yields exactly those limits. Integer Div
truncates toward zero, as ONNX requires.
BitShift is exact (see :mod:`ranum.ops._bits`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import reduce

import torch
from torch import Tensor

from ranum.domain import arith
from ranum.domain.dtypes import (
    FloatFacts,
    elem_type_of,
    float_facts,
    int_range,
    is_float,
    narrow_int_range,
    torch_dtype,
    wrapped_int,
)
from ranum.domain.interval import Interval, elementwise
from ranum.errors import InconsistentShapes, UnsupportedOperator
from ranum.ops import _bits
from ranum.ops._base import ELEMENTWISE, NodeContext, OpRule, UnaryRule, as_float64
from ranum.ops._centred_relations import within_centred_sum
from ranum.ops._convex_relations import within_convex_hull
from ranum.ops._difference_relations import ordered_ratio_bounds, refined_difference, rescaled_sum_floor
from ranum.ops._guard_relations import self_ratio_bounds, straddling_divisor_floor
from ranum.ops._infinite_operands import InfiniteOperands, aligned_pair
from ranum.ops._range_relations import range_ratio_bounds
from ranum.ops._relations import meet
from ranum.ops._rms_relations import rms_magnitude_bound
from ranum.ops._same_values import same_value
from ranum.ops._share_relations import share_bounds
from ranum.ops._signed_zeros import zeros_are_positive
from ranum.ops.hazards import (
    FORWARD,
    GRADIENT,
    Hazard,
    HazardHit,
    IntegerDivisionOverflow,
    Overflow,
    Region,
    RegionHazard,
    divisor_zero,
    equal_to,
)
from ranum.ops.registry import register

__all__ = ["Abs", "Add", "BitShift", "Ceil", "Clip", "Clip6", "Div", "Floor", "Max", "Min", "Mod", "Mul", "Neg", "Pow",
           "PowHazard", "Round", "Sign", "Sub"]

_INF = math.inf


def _int_add(l1: Tensor, u1: Tensor, l2: Tensor, u2: Tensor) -> tuple[Tensor, Tensor]:
    """Integer [l1, u1] + [l2, u2] (int64 bounds); a sum that may wrap around gets the whole int64 range."""
    safe = 2.0 ** 62
    wraps = (l1.double().abs() >= safe) | (l2.double().abs() >= safe) | (u1.double().abs() >= safe) | (
        u2.double().abs() >= safe)
    return _whole_int64_where(wraps, l1 + l2, u1 + u2)


def _int_mul(l1: Tensor, u1: Tensor, l2: Tensor, u2: Tensor) -> tuple[Tensor, Tensor]:
    """Integer [l1, u1] * [l2, u2] (int64 bounds); a product that may wrap around gets the whole int64 range
    (torch's int64 products wrap silently, so the corners are also multiplied in float64 to find out)."""
    f_lo, f_hi = arith.mul(l1.double(), u1.double(), l2.double(), u2.double())
    wraps = (f_lo.abs() >= _WRAP) | (f_hi.abs() >= _WRAP)
    return _whole_int64_where(wraps, *arith.mul(l1, u1, l2, u2))


def _whole_int64_where(wraps: Tensor, lo: Tensor, hi: Tensor) -> tuple[Tensor, Tensor]:
    info = torch.iinfo(torch.int64)
    return torch.where(wraps, torch.full_like(lo, info.min), lo), torch.where(wraps, torch.full_like(hi, info.max), hi)


_WRAP = 2.0**63 * (1 - 2.0**-50)  # a float64 product this large may stand for an int64 product past the range


def _first_type(ctx: NodeContext) -> int:
    """The element type of the first operand (0 when the context does not say)."""
    return ctx.input_types[0] if ctx.input_types else 0


def _int_sub(l1: Tensor, u1: Tensor, l2: Tensor, u2: Tensor) -> tuple[Tensor, Tensor]:
    """Integer [l1, u1] - [l2, u2] (see :func:`_int_add`)."""
    return _int_add(l1, u1, -u2, -l2)


@register("Add", since=7)
class Add(OpRule):
    unknown_shapes = ELEMENTWISE
    hazards = (Overflow(), InfiniteOperands(description="infinities of opposite signs add to NaN", op="add"))

    def concrete(self, ctx: NodeContext, a: Tensor, b: Tensor) -> Tensor:
        return wrapped_int(a + b, _first_type(ctx))

    def abstract(self, ctx: NodeContext, a: Interval, b: Interval) -> Interval:
        if not is_float(a.elem_type):
            return elementwise(_int_add, [a, b], a.elem_type)
        out = within_centred_sum(ctx, within_convex_hull(ctx, elementwise(arith.add, [a, b], a.elem_type)))
        return rescaled_sum_floor(ctx, out)


@register("Sub", since=7)
class Sub(OpRule):
    unknown_shapes = ELEMENTWISE
    hazards = (Overflow(), InfiniteOperands(description="inf - inf is NaN", op="sub"))

    def concrete(self, ctx: NodeContext, a: Tensor, b: Tensor) -> Tensor:
        return wrapped_int(a - b, _first_type(ctx))

    def abstract(self, ctx: NodeContext, a: Interval, b: Interval) -> Interval:
        if ctx.same_input(0, 1):
            zero = torch.zeros_like(a.lower)
            return a.with_bounds(zero, zero)
        if not is_float(a.elem_type):
            return elementwise(_int_sub, [a, b], a.elem_type)
        return refined_difference(ctx, a, b, elementwise(arith.sub, [a, b], a.elem_type))


@register("Mul", since=7)
class Mul(OpRule):
    unknown_shapes = ELEMENTWISE
    hazards = (Overflow(), InfiniteOperands(description="0 * inf is NaN", op="mul"))

    def concrete(self, ctx: NodeContext, a: Tensor, b: Tensor) -> Tensor:
        return wrapped_int(a * b, _first_type(ctx))

    def abstract(self, ctx: NodeContext, a: Interval, b: Interval) -> Interval:
        if ctx.same_input(0, 1):
            return a.with_bounds(*arith.square(a.lower, a.upper))
        if not is_float(a.elem_type):
            return elementwise(_int_mul, [a, b], a.elem_type)
        out = elementwise(arith.mul, [a, b], a.elem_type)
        for x_index in (0, 1):
            bound = rms_magnitude_bound(ctx, x_index, 1 - x_index, divides=False)
            if bound is not None:
                return _clamp_magnitude(out, bound)
        return _scaled_square(ctx, out)


def _scaled_square(ctx: NodeContext, out: Interval) -> Interval:
    """``out`` met with the bounds of ``k x^2`` where the Mul is ``(k * x) * x`` (either order at each step) and
    ``k`` has one sign: a hand-written ``0.5 * x * x`` (a Huber or Gaussian energy, ``-0.5 * d * d`` in a
    kernel) or Adam's ``(1 - beta2) * g * g``, which intervals bounded as if the two x were independent (the
    inner product taking either sign). ``fl(k x)`` has the sign of ``k x``, so the result has k's sign (or is a
    zero); its magnitude is within two roundings of ``|k| x^2``."""
    graph = ctx.graph
    if graph is None or out.shape is None or not is_float(out.elem_type):
        return out
    for inner_name, x_name in (ctx.node.inputs, ctx.node.inputs[::-1]):
        inner = graph.producer(inner_name)
        if inner is None or inner.op_type != "Mul" or inner.domain not in ("", "ai.onnx") or len(inner.inputs) != 2:
            continue
        for k_name, other in (inner.inputs, inner.inputs[::-1]):
            k, x = graph.interval(k_name), graph.interval(x_name)
            if k is None or x is None or k.shape is None or x.shape is None or not k.numblocks or \
                    not same_value(graph, other, x_name) or not (k.min() >= 0 or k.max() <= 0):
                continue
            try:
                bounds = elementwise(functools.partial(_scaled_square_bounds, growth=_two_roundings(out.elem_type),
                                                       subnormal=float_facts(out.elem_type).subnormal),
                                     [k, x], out.elem_type)
            except InconsistentShapes:
                return out
            return meet(out, bounds) if bounds.shape == out.shape else out
    return out


def _two_roundings(elem_type: int) -> float:
    return (1 + 4 * float_facts(elem_type).eps) ** 2


def _scaled_square_bounds(kl: Tensor, ku: Tensor, xl: Tensor, xu: Tensor, growth: float,
                          subnormal: float) -> tuple[Tensor, Tensor]:
    """Bounds of ``fl(fl(k x) x)`` for k of one sign: 0 to its largest magnitude, on k's side. Each rounding
    is relative (``growth``) or, among subnormals, absolute: half a subnormal, which the outer product scales
    by |x| (a subnormal ``k x`` times x > 1)."""
    _, top = arith.square(xl, xu)
    largest = arith.times(torch.maximum(kl.abs(), ku.abs()), top) * growth
    largest = largest + (torch.maximum(xl.abs(), xu.abs()) + 1) * subnormal
    zero = torch.zeros_like(largest)
    positive = kl >= 0
    return torch.where(positive, zero, -largest), torch.where(positive, largest, zero)


@register("Div", since=7)
class Div(OpRule):
    unknown_shapes = ELEMENTWISE
    hazards = (divisor_zero("division by zero", operand=1, numerator=0), Overflow(),
               InfiniteOperands(description="inf / inf is NaN", op="div"), IntegerDivisionOverflow())

    def concrete(self, ctx: NodeContext, a: Tensor, b: Tensor) -> Tensor:
        """Floats divide; integers truncate toward zero. The type's minimum divided by -1 stops onnxruntime
        with SIGFPE (the ``integer-division-overflow`` hazard) and would stop this process too: that element
        is divided by 1 instead, giving the two's complement quotient (the minimum itself)."""
        if a.is_floating_point():
            return a / b
        overflows = IntegerDivisionOverflow.fires(a, b)
        if bool(overflows.any()):
            b = torch.where(overflows, torch.ones_like(b), b)
        return torch.div(a, b, rounding_mode="trunc")

    def abstract(self, ctx: NodeContext, a: Interval, b: Interval) -> Interval:
        positive = is_float(a.elem_type) and ctx.graph is not None and a.numblocks > 0 and b.numblocks > 0 \
            and a.min() >= 0 and b.min() == 0 and zeros_are_positive(ctx.graph, ctx.node.inputs[1])
        out = elementwise(_positive_div_bounds if positive else _div_bounds, [a, b], a.elem_type)
        floor = straddling_divisor_floor(ctx, 1, b) if is_float(a.elem_type) and a.numblocks else 0.0
        if floor > 0:  # |b| >= floor on both sides of 0
            out = _clamp_magnitude(out, max(abs(a.min()), abs(a.max())) / floor)
        bound = rms_magnitude_bound(ctx, 0, 1, divides=True)
        out = out if bound is None else _clamp_magnitude(out, bound)
        refinements = (range_ratio_bounds, share_bounds, ordered_ratio_bounds, self_ratio_bounds)
        for refine in refinements if is_float(a.elem_type) else ():
            found = refine(ctx, a, b)
            out = out if found is None else _clamp(out, *found)
        return out


def _clamp_magnitude(out: Interval, bound: float) -> Interval:
    """Intersect with [-bound, bound] (a bound proven by a relational refinement)."""
    return _clamp(out, -bound, bound)


def _clamp(out: Interval, low: float, high: float) -> Interval:
    """Intersect with [low, high] (bounds proven by a relational refinement)."""
    return out.with_bounds(out.lower.clamp(min=low, max=high), out.upper.clamp(min=low, max=high))


def _div_bounds(l1: Tensor, u1: Tensor, l2: Tensor, u2: Tensor) -> tuple[Tensor, Tensor]:
    r_lo, r_hi = arith.reciprocal(l2.to(torch.float64), u2.to(torch.float64))
    lo, hi = arith.mul(l1.to(torch.float64), u1.to(torch.float64), r_lo, r_hi)
    numerator_zero = (l1 == 0) & (u1 == 0)
    zero = torch.zeros_like(lo)
    # 0 / y is 0 for every non-zero y; 0 / 0 is NaN, which the hazard reports.
    # Integer outputs: Interval.create rounds these real bounds outward, which covers truncation.
    return torch.where(numerator_zero, zero, lo), torch.where(numerator_zero, zero, hi)


def _positive_div_bounds(l1: Tensor, u1: Tensor, l2: Tensor, u2: Tensor) -> tuple[Tensor, Tensor]:
    """``a / b`` for ``a >= 0`` and ``b >= 0`` whose zeros are +0 (see :mod:`ranum.ops._signed_zeros`): where b
    reaches 0 the quotient is ``[a_lo / b_hi, +inf]`` (``a / +0 = +inf``; ``0 / 0`` is NaN, which the hazard
    reports), not unbounded below."""
    lo, hi = _div_bounds(l1, u1, l2, u2)
    at_zero = l2 == 0
    floor = arith.nan_to(l1.to(torch.float64) / u2.to(torch.float64), 0.0)
    return torch.where(at_zero, floor, lo), torch.where(at_zero, torch.full_like(hi, torch.inf), hi)


# ------------------------------------------------------------------------ exact unary maps
class _ExactUnary(UnaryRule):
    rounds = False


@register("Abs")
class Abs(_ExactUnary):
    def fn(self, x: Tensor) -> Tensor:
        return torch.abs(x)

    def abstract(self, ctx: NodeContext, x: Interval) -> Interval:
        if not is_float(x.elem_type):
            return x.with_bounds(*_int_abs_bounds(x.lower, x.upper, x.elem_type))
        return x.with_bounds(*_abs_bounds(x.lower, x.upper))


def _abs_bounds(lo: Tensor, hi: Tensor) -> tuple[Tensor, Tensor]:
    """|x| for x in [lo, hi] (no wrap-around)."""
    low = torch.where(lo >= 0, lo, torch.where(hi <= 0, -hi, torch.zeros_like(lo)))
    return low, torch.maximum(-lo, hi)


def _int_abs_bounds(lo: Tensor, hi: Tensor, elem_type: int) -> tuple[Tensor, Tensor]:
    """|x| in two's complement, on the int64 bounds: the type's minimum has no positive counterpart and stays
    itself (onnxruntime's Abs of INT64_MIN is INT64_MIN), so a box holding it keeps it and otherwise reaches
    the type's maximum; unsigned values are their own magnitude."""
    limits = int_range(elem_type)
    if limits is None or limits[0] >= 0:
        return lo, hi
    smallest = limits[0]
    has_min, only_min = lo == smallest, hi == smallest
    low, high = _abs_bounds(torch.where(has_min, lo + 1, lo), hi)  # -smallest would wrap: from the next value
    return (torch.where(has_min, torch.full_like(low, smallest), low),
            torch.where(only_min, torch.full_like(high, smallest), high))


@register("Neg")
class Neg(_ExactUnary):
    def fn(self, x: Tensor) -> Tensor:
        return torch.neg(x)

    def abstract(self, ctx: NodeContext, x: Interval) -> Interval:
        if not is_float(x.elem_type):
            return x.with_bounds(*_int_neg_bounds(x.lower, x.upper, x.elem_type))
        return x.with_bounds(-x.upper, -x.lower)


def _int_neg_bounds(lo: Tensor, hi: Tensor, elem_type: int) -> tuple[Tensor, Tensor]:
    """-x in two's complement, on the int64 bounds: the type's minimum negates to itself (onnxruntime's Neg of
    INT64_MIN is INT64_MIN), so a box holding it keeps it and otherwise reaches the type's maximum."""
    limits = int_range(elem_type)
    if limits is None or limits[0] >= 0:  # unsigned (no ONNX Neg type): the negation, wrapped by Interval.create
        return -hi, -lo
    smallest, largest = limits
    has_min, only_min = lo == smallest, hi == smallest
    low = torch.where(has_min, torch.full_like(lo, smallest), -hi)
    high = torch.where(has_min, torch.full_like(hi, largest), -lo)  # -lo is not read where it would wrap
    return low, torch.where(only_min, torch.full_like(high, smallest), high)


@register("Sign")
class Sign(_ExactUnary):
    def fn(self, x: Tensor) -> Tensor:
        return torch.where(torch.isnan(x), x, torch.sign(x))  # torch's sign of NaN is 0, onnxruntime's NaN


@register("Ceil")
class Ceil(_ExactUnary):
    def fn(self, x: Tensor) -> Tensor:
        return torch.ceil(x)


@register("Floor")
class Floor(_ExactUnary):
    def fn(self, x: Tensor) -> Tensor:
        return torch.floor(x)


@register("Round")
class Round(_ExactUnary):
    """Rounds half to even, as ONNX and torch.round do."""

    def fn(self, x: Tensor) -> Tensor:
        return torch.round(x)


# ------------------------------------------------------------------------------------ Pow
BaseRegion = Callable[[FloatFacts], Region]


@dataclass(frozen=True)
class PowHazard(Hazard):
    """Pow's hazards join a condition on the base (a region) and one on the exponent.

    The exponent condition is ``exponent`` (a real region) or, when ``exponent`` is None, "the exponent
    is not an integer" (integer-typed exponents never are).
    """

    name: str
    description: str
    base: BaseRegion
    exponent: Region | None = None
    kind: str = FORWARD
    operand: int = 0

    def check(self, inputs, outputs):
        x, y = inputs[0], inputs[1]
        if x is None or y is None or x.numblocks == 0 or y.numblocks == 0:
            return None
        (xl, xh), (yl, yh) = aligned_pair(x, y)
        base = self.base(float_facts(x.elem_type))
        if self.exponent is not None:
            y_meets, y_holds = self.exponent.meets(yl, yh), self.exponent.holds(yl, yh)
        else:
            floating = is_float(y.elem_type)
            y_meets = ~((yl == yh) & (yl == torch.round(yl))) & floating
            y_holds = (torch.ceil(yl) > yh) & floating
        if not bool((base.meets(xl, xh) & y_meets).any()):
            return None
        certain = bool((base.holds(xl, xh) & y_holds).all())
        return HazardHit(certain, float(x.lower.min()), float(x.upper.max()))

    def triggered(self, inputs, outputs):
        x, y = inputs[0].to(torch.float64), inputs[1].to(torch.float64)
        base = self.base(float_facts(_float_type(inputs[0])))
        y_fires = self.exponent.meets(y, y) if self.exponent is not None else y != torch.round(y)
        return base.meets(x, x) & y_fires

    def distance(self, inputs, outputs):
        x, y = inputs[0], inputs[1].to(inputs[0].dtype)
        base = self.base(float_facts(_float_type(x)))
        y_dist = self.exponent.distance(y) if self.exponent is not None else -(y - torch.round(y)).abs()
        return torch.maximum(base.distance(x), y_dist)

    def invalid_text(self, elem_type):
        exponent = self.exponent.text() if self.exponent is not None else "a non-integer"
        return f"base in {self.base(float_facts(elem_type)).text()} with exponent {exponent}"

    def repair(self, operand, inputs=()):
        """Clip the base out of its region (the exponent is left as it is)."""
        region = self.base(float_facts(operand.elem_type))
        as_region = RegionHazard(self.name, self.description, region.low, region.high, region.low_closed,
                                 region.high_closed, self.kind, self.operand)
        return as_region.repair(operand, inputs)


def _float_type(x: Tensor) -> int:
    return elem_type_of(x.dtype) if x.is_floating_point() else elem_type_of(torch.float32)


@register("Pow", since=7)
class Pow(OpRule):
    """y = x ** e; the exponent may have its own type (opset 12+); integer bases truncate."""
    unknown_shapes = ELEMENTWISE

    hazards = (
        PowHazard("pow-negative-base", "negative base with a non-integer exponent is NaN",
                  lambda f: Region(-_INF, 0.0, False, False)),
        PowHazard("pow-zero-negative-exponent", "zero base with a negative exponent is infinite",
                  lambda f: Region(0.0, 0.0), Region(-_INF, 0.0, False, False)),
        Overflow(),
        PowHazard("pow-zero-gradient", "gradient of x ** e with 0 < e < 1 is infinite at x = 0",
                  lambda f: Region(0.0, f.flushed, True, False), Region(0.0, 1.0, False, False), GRADIENT),
    )
    ulps = 4.0

    def concrete(self, ctx: NodeContext, x: Tensor, e: Tensor) -> Tensor:
        result = torch.pow(x.to(torch.float64), e.to(torch.float64))
        if x.is_floating_point():
            return result.to(x.dtype)
        return wrapped_int(result.trunc().to(x.dtype), _first_type(ctx))

    def abstract(self, ctx: NodeContext, x: Interval, e: Interval) -> Interval:
        if is_float(x.elem_type):
            return elementwise(_pow_bounds, [x, e], x.elem_type)
        return elementwise(functools.partial(_int_pow_bounds, elem_type=x.elem_type), [x, e], x.elem_type)


def _pow_corners(a: Tensor, b: Tensor, c: Tensor, d: Tensor) -> tuple[Tensor, Tensor]:
    """Range of t ** y over t in [a, b] (a >= 0), y in [c, d]: monotone in each, so at the corners."""
    corners = torch.stack([torch.pow(a, c), torch.pow(a, d), torch.pow(b, c), torch.pow(b, d)])
    return corners.amin(dim=0), corners.amax(dim=0)


def _int_pow_bounds(xl: Tensor, xh: Tensor, yl: Tensor, yh: Tensor, elem_type: int) -> tuple[Tensor, Tensor]:
    """An integer power, computed in float64 and converted (onnxruntime's kernel): a power past the type's own
    range (uint32's, not its int64 holder's) converts to no one value (x86 gives the least integer), so such an
    element gets the whole range."""
    lo, hi = _pow_bounds(xl, xh, yl, yh)
    smallest, largest = int_range(elem_type) or (-(2**63), 2**63 - 1)
    top = _WRAP if largest == 2**63 - 1 else float(largest)
    past = (lo < smallest) | (hi > top) | lo.isnan() | hi.isnan()
    return torch.where(past, float(smallest), lo), torch.where(past, float(largest), hi)


def _pow_bounds(xl: Tensor, xh: Tensor, yl: Tensor, yh: Tensor) -> tuple[Tensor, Tensor]:
    """Union of x >= 0 (corners) and x <= 0 (|x| ** y with the exponent's parity; integers only)."""
    xl, xh, yl, yh = (t.to(torch.float64) for t in (xl, xh, yl, yh))
    pos_lo, pos_hi = _pow_corners(xl.clamp(min=0.0), xh.clamp(min=0.0), yl, yh)
    mag_lo, mag_hi = _pow_corners((-xh).clamp(min=0.0), (-xl).clamp(min=0.0), yl, yh)
    point = yl == yh
    even = point & (torch.remainder(yl, 2.0) == 0)
    odd = point & (torch.remainder(yl, 2.0) == 1)
    neg_lo = torch.where(even, mag_lo, -mag_hi)
    neg_hi = torch.where(even | ~odd, mag_hi, -mag_lo)
    has_pos = xh >= 0
    has_neg = (xl <= 0) & (torch.ceil(yl) <= yh)  # -0.0 counts as negative: (-0) ** -1 = -inf
    inf = torch.full_like(xl, _INF)
    lo = torch.minimum(torch.where(has_pos, pos_lo, inf), torch.where(has_neg, neg_lo, inf))
    hi = torch.maximum(torch.where(has_pos, pos_hi, -inf), torch.where(has_neg, neg_hi, -inf))
    empty = ~has_pos & ~has_neg  # every value is NaN: any interval is sound, keep the widest
    return torch.where(empty, -inf, lo), torch.where(empty, inf, hi)


# ---------------------------------------------------------------------------- Max, Min
@register("Max")
class Max(OpRule):
    unknown_shapes = ELEMENTWISE
    rounds = False

    def concrete(self, ctx: NodeContext, *xs: Tensor) -> Tensor:
        return reduce(torch.maximum, xs)

    def abstract(self, ctx: NodeContext, *xs: Interval) -> Interval:
        return elementwise(lambda *b: (_stack(b[0::2]).amax(0), _stack(b[1::2]).amax(0)), xs, xs[0].elem_type)


@register("Min")
class Min(OpRule):
    unknown_shapes = ELEMENTWISE
    rounds = False

    def concrete(self, ctx: NodeContext, *xs: Tensor) -> Tensor:
        return reduce(torch.minimum, xs)

    def abstract(self, ctx: NodeContext, *xs: Interval) -> Interval:
        return elementwise(lambda *b: (_stack(b[0::2]).amin(0), _stack(b[1::2]).amin(0)), xs, xs[0].elem_type)


def _stack(bounds: tuple[Tensor, ...]) -> Tensor:
    return torch.stack(torch.broadcast_tensors(*bounds))


# ------------------------------------------------------------------------------------ BitShift
@register("BitShift", since=11)
class BitShift(OpRule):
    """x << y or x >> y (``direction`` LEFT / RIGHT) with broadcasting. Unsigned types from opset 11,
    signed ones (arithmetic right shift, wrapping left shift) from opset 28; amounts below 0 or of at
    least the width give 0 (-1 for a right shift of a negative value)."""

    direction: str = ""
    rounds = False

    def __post_init__(self) -> None:
        if self.direction not in ("LEFT", "RIGHT"):
            raise UnsupportedOperator(f"BitShift: direction must be LEFT or RIGHT, got '{self.direction}'")

    def concrete(self, ctx: NodeContext, x: Tensor, y: Tensor) -> Tensor:
        t = _bits.operand_type(ctx.input_types, x, "BitShift")
        return _bits.shift(x, y, t, self.direction == "LEFT").to(x.dtype)

    def abstract(self, ctx: NodeContext, x: Interval, y: Interval) -> Interval:
        t = _bits.int_type(x.elem_type, "BitShift")
        left = self.direction == "LEFT"
        return elementwise(lambda xl, xh, yl, yh: _bits.shift_bounds(xl, xh, yl, yh, t, left), [x, y], x.elem_type)


# ------------------------------------------------------------------------------------ Mod
@register("Mod")
class Mod(OpRule):
    """fmod=1: C fmod (sign of the dividend); fmod=0: sign of the divisor (floats only from opset 28)."""
    unknown_shapes = ELEMENTWISE

    fmod: int = 0
    hazards = (equal_to(0.0, "modulo by zero", name="division-by-zero", operand=1),)
    rounds = False  # fmod is exact; a floor-mod result that rounds stays within [0, divisor]

    def concrete(self, ctx: NodeContext, a: Tensor, b: Tensor) -> Tensor:
        self._check_type(ctx, a.is_floating_point())
        return torch.fmod(a, b) if self.fmod else torch.remainder(a, b)

    def abstract(self, ctx: NodeContext, a: Interval, b: Interval) -> Interval:
        floating = is_float(a.elem_type)
        self._check_type(ctx, floating)
        fn = _fmod_bounds if self.fmod else _floor_mod_bounds
        return elementwise(lambda *bounds: fn(*(as_float64(t) for t in bounds), not floating), [a, b], a.elem_type)

    def _check_type(self, ctx: NodeContext, floating: bool) -> None:
        if floating and not self.fmod and ctx.opset < 28:
            raise UnsupportedOperator("Mod: floating-point inputs require fmod=1 before opset 28")


def _min_abs(bl: Tensor, bh: Tensor) -> Tensor:
    """Smallest |b| over [bl, bh] (0 when the interval holds 0)."""
    return torch.where(bl > 0, bl, torch.where(bh < 0, -bh, torch.zeros_like(bl)))


def _fmod_bounds(al: Tensor, ah: Tensor, bl: Tensor, bh: Tensor, ints: bool) -> tuple[Tensor, Tensor]:
    """Sign of a, |r| <= |a|, |r| < |b| (<= |b| - 1 for integers); r = a where |a| < min |b|."""
    most = torch.maximum(bl.abs(), bh.abs()) - float(ints)
    lo = torch.maximum(al.clamp(max=0.0), -most)
    hi = torch.minimum(ah.clamp(min=0.0), most)
    keep = (al > -_min_abs(bl, bh)) & (ah < _min_abs(bl, bh))
    return torch.where(keep, al, lo), torch.where(keep, ah, hi)


def _floor_mod_bounds(al: Tensor, ah: Tensor, bl: Tensor, bh: Tensor, ints: bool) -> tuple[Tensor, Tensor]:
    """Sign of b, |r| <= |b| - 1 for integers, |r| <= |b| for floats (a + b may round to b);
    integers: r = a where a lies in [0, b) (or (b, 0])."""
    lo = torch.minimum(torch.where(bl > 0, torch.zeros_like(bl), bl + float(ints)), torch.zeros_like(bl))
    hi = torch.maximum(torch.where(bh < 0, torch.zeros_like(bh), bh - float(ints)), torch.zeros_like(bh))
    keep = (((bl > 0) & (al >= 0) & (ah < bl)) | ((bh < 0) & (ah <= 0) & (al > bh))) & ints
    return torch.where(keep, al, lo), torch.where(keep, ah, hi)


# ----------------------------------------------------------------------------------- Clip
def _clip_bounds(xl: Tensor, xh: Tensor, ml: Tensor, mh: Tensor, nl: Tensor, nh: Tensor) -> tuple[Tensor, Tensor]:
    """min(max(x, m), n) is non-decreasing in x, m and n (min > max gives max, as ONNX says)."""
    return torch.minimum(torch.maximum(xl, ml), nl), torch.minimum(torch.maximum(xh, mh), nh)


def _clip(x: Interval, low: Interval | None, high: Interval | None) -> Interval:
    low = _no_limit(x.elem_type, -1) if low is None else low
    high = _no_limit(x.elem_type, 1) if high is None else high
    return elementwise(_clip_bounds, [x, low, high], x.elem_type)


def _no_limit(elem_type: int, sign: int) -> Interval:
    """A missing Clip limit: exactly the end of the type's range (not an unknown value)."""
    if is_float(elem_type):
        end = torch.tensor(sign * _INF, dtype=torch.float64)
    else:
        low, high = narrow_int_range(elem_type) or (torch.iinfo(torch.int64).min, torch.iinfo(torch.int64).max)
        end = torch.tensor(high if sign > 0 else low)
    return Interval.create(end, end, (), (), elem_type)


@register("Clip", since=11)
class Clip(OpRule):
    """Clamp into [min, max] given as optional scalar inputs (opset 11+)."""
    unknown_shapes = ELEMENTWISE

    rounds = False

    def concrete(self, ctx: NodeContext, x: Tensor, low: Tensor | None = None, high: Tensor | None = None) -> Tensor:
        if low is not None:
            x = torch.maximum(x, low.to(x.dtype))
        return x if high is None else torch.minimum(x, high.to(x.dtype))

    def abstract(self, ctx: NodeContext, x: Interval, low: Interval | None = None,
                 high: Interval | None = None) -> Interval:
        return _clip(x, low, high)


@register("Clip", since=6)
class Clip6(OpRule):
    """Clamp into [min, max] given as float attributes (opsets 6 to 10); limits take the input's dtype."""
    unknown_shapes = ELEMENTWISE

    min: float = -3.4028234663852886e38
    max: float = 3.4028234663852886e38
    rounds = False

    def concrete(self, ctx: NodeContext, x: Tensor) -> Tensor:
        return torch.clamp(x, min=self._limit(self.min, x.dtype), max=self._limit(self.max, x.dtype))

    def abstract(self, ctx: NodeContext, x: Interval) -> Interval:
        dtype = torch_dtype(x.elem_type)
        limits = [Interval.uniform(self._limit(v, dtype), self._limit(v, dtype), (), x.elem_type)
                  for v in (self.min, self.max)]
        return _clip(x, *limits)

    @staticmethod
    def _limit(value: float, dtype: torch.dtype) -> float:
        return float(torch.tensor(value, dtype=torch.float64).to(dtype))
