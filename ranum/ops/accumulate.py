"""Sums of many terms: Sum, Mean (of several operands), CumSum and CumProd (running sums and products).

Sums add the float accumulation error (Higham's bound for the number of terms) and become unbounded
where a partial sum may overflow. CumProd rounds each running product outward in the tensor's
precision (integers: the whole range of the type once a product may wrap around).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import reduce

import torch
from torch import Tensor

from ranum.domain import arith
from ranum.domain.dtypes import FloatFacts, float_facts, is_float, wrapped_int
from ranum.domain.interval import Interval, elementwise
from ranum.errors import UnsupportedOperator
from ranum.ops import _bits
from ranum.ops._base import ELEMENTWISE, HULLS, NodeContext, OpRule, as_float64
from ranum.ops._counts import most_elements
from ranum.ops._infinite_operands import InfiniteOperands
from ranum.ops.hazards import Overflow
from ranum.ops.reduce import sums_of_some
from ranum.ops.registry import register

__all__ = ["CumProd", "CumSum", "Mean", "Sum"]

_INF = math.inf


# ------------------------------------------------------------------------ Sum, Mean, CumSum
def _accumulated(lo: Tensor, hi: Tensor, magnitude: Tensor, partial: Tensor, count: int, elem_type: int,
                 nonneg: Tensor) -> tuple[Tensor, Tensor]:
    """Float error of a sum of ``count`` terms, and overflow of its partial sums.

    Args:
        lo, hi: bounds of the exact sum; magnitude: bound of the sum of |terms|.
        partial: bound of |partial sum| before the last addition; where it may overflow, the result
            is unbounded (inf - big stays inf although the exact sum is finite).
        nonneg: where every term is >= 0 (then so is every float partial sum).
    """
    if not is_float(elem_type):
        return lo, hi
    lo, hi = arith.with_accumulation_error(lo, hi, magnitude, count, elem_type, nonneg)
    limit = float_facts(elem_type).max / (1.0 + arith.accumulation_gamma(count, elem_type))
    risky = ~(partial <= limit)
    return (torch.where(risky & ~nonneg, torch.full_like(lo, -_INF), lo),
            torch.where(risky, torch.full_like(hi, _INF), hi))


def _sum_bounds(elem_type: int, scale: float) -> Callable[..., tuple[Tensor, Tensor]]:
    """Block function of a left-to-right sum of the operands, times ``scale``.

    A scaled sum (Mean) overflows when the whole sum does, before the scaling: then every term counts
    toward the partial sum.
    """

    def fn(*bounds: Tensor) -> tuple[Tensor, Tensor]:
        lows, highs = list(bounds[0::2]), list(bounds[1::2])
        lo, hi = lows[0], highs[0]
        for low, high in zip(lows[1:], highs[1:]):
            lo, hi = arith.add(lo, hi, low, high)
        mags = [torch.maximum(low.abs(), high.abs()) for low, high in zip(lows, highs)]
        partial = reduce(torch.add, mags if scale != 1.0 else mags[:-1], torch.zeros_like(mags[0]))
        nonneg = reduce(torch.logical_and, [low >= 0 for low in lows])
        lo, hi = _accumulated(lo, hi, reduce(torch.add, mags), partial, len(lows), elem_type, nonneg)
        return lo * scale, hi * scale

    return fn


def _whole_int64_where(wraps: Tensor, lo: Tensor, hi: Tensor) -> tuple[Tensor, Tensor]:
    """The whole int64 range where a sum may have wrapped around (onnxruntime's int64 sums wrap: any value);
    narrower types' sums are exact in int64, and :meth:`Interval.create` wraps them to their own range."""
    info = torch.iinfo(torch.int64)
    return torch.where(wraps, torch.full_like(lo, info.min), lo), torch.where(wraps, torch.full_like(hi, info.max), hi)


def _may_leave_int64(magnitude: Tensor, count: int) -> Tensor:
    """Where integer sums may leave int64, given float64 running sums of their terms' largest magnitudes (over
    at most ``count`` terms, each float64 addition rounding by 2**-53 at most): every partial sum of the terms,
    and of their bounds, is at most that magnitude."""
    return magnitude >= 2.0**63 * (1.0 - count * 2.0**-51)


@register("Sum")
class Sum(OpRule):
    unknown_shapes = ELEMENTWISE
    hazards = (Overflow(), InfiniteOperands(description="terms of +inf and -inf add to NaN", op="sum"))
    accumulates = True

    def concrete(self, ctx: NodeContext, *xs: Tensor) -> Tensor:
        return reduce(torch.add, xs)

    def abstract(self, ctx: NodeContext, *xs: Interval) -> Interval:
        return elementwise(_sum_bounds(xs[0].elem_type, 1.0), xs, xs[0].elem_type)


@register("Mean")
class Mean(OpRule):
    unknown_shapes = ELEMENTWISE
    hazards = (Overflow(), InfiniteOperands(description="terms of +inf and -inf add to NaN", op="sum"))
    accumulates = True
    ulps = 2.0  # the final scaling may use a rounded 1/n

    def concrete(self, ctx: NodeContext, *xs: Tensor) -> Tensor:
        return reduce(torch.add, xs) / len(xs)

    def abstract(self, ctx: NodeContext, *xs: Interval) -> Interval:
        return elementwise(_sum_bounds(xs[0].elem_type, 1.0 / len(xs)), xs, xs[0].elem_type)


@register("CumSum")
class CumSum(OpRule):
    """Running sums along an exact ``axis`` operand; ``exclusive`` shifts by one, ``reverse`` runs backward."""

    exclusive: int = 0
    reverse: int = 0
    hazards = (Overflow(), InfiniteOperands(description="terms of +inf and -inf add to NaN", op="sum"))
    accumulates = True
    unknown_shapes = HULLS

    def without_shapes(self, ctx: NodeContext, x: Interval, axis: Interval) -> Interval | None:
        """Each running sum adds at most all of x's elements (see :func:`~ranum.ops.reduce.sums_of_some`)."""
        return sums_of_some(x, most_elements(ctx.graph, ctx.node.inputs[0]) if ctx.graph is not None else None)

    def concrete(self, ctx: NodeContext, x: Tensor, axis: Tensor) -> Tensor:
        return wrapped_int(self._scan(x, int(axis.reshape(-1)[0]) % max(x.dim(), 1)),
                           ctx.input_types[0] if ctx.input_types else 0)

    def abstract(self, ctx: NodeContext, x: Interval, axis: Interval) -> Interval:
        if not axis.is_exact:
            raise UnsupportedOperator("CumSum: the axis operand must be a known constant")
        dim = int(axis.exact_value().reshape(-1)[0]) % max(len(x.shape), 1)
        full_lo, full_hi = x.full()
        lo, hi = self._scan(full_lo, dim), self._scan(full_hi, dim)
        if is_float(x.elem_type):
            lo, hi = self._rounded(lo.nan_to_num(nan=-_INF), hi.nan_to_num(nan=_INF), full_lo, full_hi, dim,
                                   max(x.shape[dim], 1), x.elem_type)
        else:  # int64 running sums wrap around (torch's as onnxruntime's): from there on, any value
            magnitude = self._scan(torch.maximum(full_lo.double().abs(), full_hi.double().abs()), dim)
            lo, hi = _whole_int64_where(_may_leave_int64(magnitude, max(x.shape[dim], 1)), lo, hi)
        return Interval.from_full(lo, hi, x.elem_type, ctx.budget)

    def _rounded(self, lo: Tensor, hi: Tensor, full_lo: Tensor, full_hi: Tensor, dim: int, count: int,
                 elem_type: int) -> tuple[Tensor, Tensor]:
        """The running sums' bounds widened by the float accumulation. A float sum is monotone in each term,
        so each side takes its error from its own bounds (a term unbounded below leaves the upper side
        finite); sums of non-negative (non-positive) terms keep their sign; a side whose terms' magnitudes
        add up past the largest float may overflow."""
        nonneg = self._scan((full_lo < 0).to(torch.int64), dim) == 0
        nonpos = self._scan((full_hi > 0).to(torch.int64), dim) == 0
        lo, hi = arith.with_accumulation_error(lo, hi, self._scan(full_lo.abs(), dim), count, elem_type, nonneg,
                                               abs_sum_upper=self._scan(full_hi.abs(), dim))
        gamma = arith.accumulation_gamma(count, elem_type)
        hi = torch.where(nonpos, (hi * (1.0 - gamma)).clamp(max=0.0) if gamma < 1 else torch.zeros_like(hi), hi)
        limit = float_facts(elem_type).max / (1.0 + gamma)
        rising, falling = self._scan(full_hi.clamp(min=0.0), dim), self._scan((-full_lo).clamp(min=0.0), dim)
        return (torch.where(~(falling <= limit), torch.full_like(lo, -_INF), lo),
                torch.where(~(rising <= limit), torch.full_like(hi, _INF), hi))

    def _scan(self, t: Tensor, dim: int) -> Tensor:
        if self.reverse:
            t = t.flip(dim)
        out = t.cumsum(dim, dtype=t.dtype)
        if self.exclusive:
            first = torch.zeros_like(out.narrow(dim, 0, min(1, out.shape[dim])))
            out = torch.cat([first, out.narrow(dim, 0, max(out.shape[dim] - 1, 0))], dim)
        return out.flip(dim) if self.reverse else out


def _round_out(lo: Tensor, hi: Tensor, facts: FloatFacts) -> tuple[Tensor, Tensor]:
    """Bounds of one float rounding of any real value in [lo, hi] (sign-preserving, saturating)."""
    new_lo = lo - lo.abs() * facts.eps - facts.subnormal
    new_hi = hi + hi.abs() * facts.eps + facts.subnormal
    new_lo = torch.where(lo >= 0, new_lo.clamp(min=0.0), new_lo)
    new_hi = torch.where(hi <= 0, new_hi.clamp(max=0.0), new_hi)
    new_lo = torch.where(new_lo < -facts.max, torch.full_like(lo, -_INF), new_lo)
    return new_lo, torch.where(new_hi > facts.max, torch.full_like(hi, _INF), new_hi)


def _int_range(elem_type: int) -> tuple[float, float]:
    """Values of an integer type that float64 bounds hold exactly (below 2**53 in magnitude)."""
    t = _bits.int_type(elem_type, "CumProd")
    return float(max(t.min, 1 - 2**53)), float(min(t.max, 2**53 - 1))


def _product_step(lo: Tensor, hi: Tensor, xl: Tensor, xh: Tensor, elem_type: int) -> tuple[Tensor, Tensor]:
    """One running product [lo, hi] * [xl, xh] as the runtime computes it in the element type."""
    lo, hi = arith.mul(lo, hi, xl, xh)
    if is_float(elem_type):
        return _round_out(lo, hi, float_facts(elem_type))
    low, high = _int_range(elem_type)
    wraps = (lo < low) | (hi > high)  # modular products: any value of the type
    t = _bits.int_type(elem_type, "CumProd")
    return torch.where(wraps, torch.full_like(lo, t.min), lo), torch.where(wraps, torch.full_like(hi, t.max), hi)


@register("CumProd", since=26)
class CumProd(OpRule):
    """Running products along an exact ``axis`` operand; ``exclusive`` shifts by one (the first is 1),
    ``reverse`` runs backward. Bounds follow the runtime's sequential products: each step multiplies
    the previous bounds by the element's (min and max of the corner products) and rounds outward."""

    exclusive: int = 0
    reverse: int = 0
    hazards = (Overflow(),)
    rounds = False  # the abstract rule rounds each product itself
    accumulates = True  # torch accumulates float products in float64: never take the concrete fast path

    def concrete(self, ctx: NodeContext, x: Tensor, axis: Tensor) -> Tensor:
        dim = int(axis.reshape(-1)[0]) % max(x.dim(), 1)
        t = x.flip(dim) if self.reverse else x
        out = t.cumprod(dim, dtype=t.dtype)
        if self.exclusive:
            first = torch.ones_like(out.narrow(dim, 0, min(1, out.shape[dim])))
            out = torch.cat([first, out.narrow(dim, 0, max(out.shape[dim] - 1, 0))], dim)
        return out.flip(dim) if self.reverse else out

    def abstract(self, ctx: NodeContext, x: Interval, axis: Interval) -> Interval:
        if not axis.is_exact:
            raise UnsupportedOperator("CumProd: the axis operand must be a known constant")
        if not is_float(x.elem_type):
            _int_range(x.elem_type)  # rejects unsupported integer types
        dim = int(axis.exact_value().reshape(-1)[0]) % max(len(x.shape), 1)
        lo, hi = (as_float64(t).movedim(dim, 0) for t in x.full())
        if self.reverse:
            lo, hi = lo.flip(0), hi.flip(0)
        run_lo, run_hi = torch.ones_like(lo[:1]), torch.ones_like(hi[:1])
        lows, highs = [], []
        for k in range(lo.shape[0]):
            if self.exclusive:
                lows.append(run_lo), highs.append(run_hi)
            run_lo, run_hi = _product_step(run_lo, run_hi, lo[k:k + 1], hi[k:k + 1], x.elem_type)
            if not self.exclusive:
                lows.append(run_lo), highs.append(run_hi)
        out_lo, out_hi = (torch.cat(parts) if parts else lo for parts in (lows, highs))
        if self.reverse:
            out_lo, out_hi = out_lo.flip(0), out_hi.flip(0)
        return Interval.from_full(out_lo.movedim(0, dim), out_hi.movedim(0, dim), x.elem_type, ctx.budget)
