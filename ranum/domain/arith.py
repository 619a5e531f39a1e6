"""Sound interval arithmetic on bound tensors (block-aligned, broadcast already done).

Conventions: bounds are never NaN; ``0 * inf`` in a corner product counts as 0 (an unbounded end
is not the value infinity); a divisor interval that contains 0 yields ``[-inf, +inf]`` (the hazard
itself is reported by the Div/Reciprocal rule). All functions are torch-differentiable.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["accumulation_gamma", "accumulator_facts", "add", "finite_abs", "mul", "nan_to", "reciprocal", "square",
           "sub", "times", "with_accumulation_error"]

_INF = float("inf")


def add(l1: Tensor, u1: Tensor, l2: Tensor, u2: Tensor) -> tuple[Tensor, Tensor]:
    """[l1, u1] + [l2, u2]; an infinite end on each side of opposite signs stays unbounded."""
    lo = nan_to(l1 + l2, -torch.inf)
    hi = nan_to(u1 + u2, torch.inf)
    return lo, hi


def sub(l1: Tensor, u1: Tensor, l2: Tensor, u2: Tensor) -> tuple[Tensor, Tensor]:
    """[l1, u1] - [l2, u2]."""
    return nan_to(l1 - u2, -torch.inf), nan_to(u1 - l2, torch.inf)


def mul(l1: Tensor, u1: Tensor, l2: Tensor, u2: Tensor) -> tuple[Tensor, Tensor]:
    """Product of two intervals: min and max of the four corner products (two where one operand is a
    point, given as one tensor for both bounds)."""
    if l1 is u1 or l2 is u2:
        a, b = (times(l1, l2), times(l1, u2)) if l1 is u1 else (times(l1, l2), times(u1, l2))
        return torch.minimum(a, b), torch.maximum(a, b)
    a, b, c, d = times(l1, l2), times(l1, u2), times(u1, l2), times(u1, u2)
    low = torch.minimum(torch.minimum(a, b), torch.minimum(c, d))
    return low, torch.maximum(torch.maximum(a, b), torch.maximum(c, d))


def square(lo: Tensor, hi: Tensor) -> tuple[Tensor, Tensor]:
    """x * x for the same x: never negative."""
    a, b = lo * lo, hi * hi
    top = torch.maximum(a, b)
    bottom = torch.where((lo <= 0) & (hi >= 0), torch.zeros_like(a), torch.minimum(a, b))
    return bottom, top


def reciprocal(lo: Tensor, hi: Tensor) -> tuple[Tensor, Tensor]:
    """1 / [lo, hi]; unbounded when the interval contains 0."""
    has_zero = (lo <= 0) & (hi >= 0)
    r_lo = torch.where(has_zero, torch.full_like(lo, -torch.inf), 1.0 / hi)
    r_hi = torch.where(has_zero, torch.full_like(hi, torch.inf), 1.0 / lo)
    return r_lo, r_hi


def times(a: Tensor | float, b: Tensor) -> Tensor:
    """``a * b`` with ``0 * inf = 0``: the limit at an unbounded end, for bounds only."""
    return nan_to(a * b, 0.0)


def finite_abs(t: Tensor) -> Tensor:
    """|t| where finite, 0 at infinities: the magnitude a float64 rounding of ``t`` is relative to (an
    infinite term stays infinite whatever the rounding)."""
    return torch.where(torch.isfinite(t), t.abs(), torch.zeros_like(t))


def nan_to(x: Tensor, value: float) -> Tensor:
    """``x`` with NaN bounds replaced by ``value`` (an unbounded end: -inf for a lower, +inf for an upper);
    infinities stay. One pass (an isnan/where pair took four, on every bound of every rule)."""
    return torch.nan_to_num(x, nan=value, posinf=_INF, neginf=-_INF)


def accumulator_facts(elem_type: int):
    """Float facts of the type sums of ``elem_type`` are held in: float32 for 16-bit floats (as
    onnxruntime's CPU kernels do), the type itself otherwise."""
    from onnx import TensorProto

    from ranum.domain.dtypes import float_facts

    return float_facts(TensorProto.FLOAT if elem_type in (TensorProto.FLOAT16, TensorProto.BFLOAT16) else elem_type)


def accumulation_gamma(count: int, elem_type: int) -> float:
    """Relative error factor of a float sum of ``count`` terms (twice Higham's gamma_n).

    16-bit float tensors are assumed to accumulate in float32 (as onnxruntime's CPU kernels do);
    the final rounding to the 16-bit type is added by the interpreter's outward rounding.
    """
    unit = accumulator_facts(elem_type).eps
    n_u = max(count, 1) * unit
    if n_u >= 0.5:
        return float("inf")
    return 2.0 * n_u / (1.0 - n_u)


def with_accumulation_error(
    lower: Tensor,
    upper: Tensor,
    abs_sum: Tensor,
    count: int,
    elem_type: int,
    nonneg_terms: Tensor | bool = False,
    abs_sum_upper: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Widen exact-arithmetic bounds of a sum by the rounding error of a float accumulation.

    A float sum in any fixed order is monotone in each term, so the computed sum is at most the
    float sum of the terms' upper bounds, itself within ``gamma * sum |upper_i|`` of ``upper``
    (likewise below). Pass those two absolute sums separately when known (an infinite lower bound
    of one term then leaves the upper bound finite); otherwise one bound of ``sum |t_i|`` for both.

    Args:
        lower, upper: bounds of the exact (real-number) sum.
        abs_sum: bound of the sum of |terms| (of |lower bounds of terms| when abs_sum_upper is given).
        count: number of terms.
        elem_type: ONNX element type of the result.
        nonneg_terms: where every term is >= 0; there the float sum is >= 0 too and the lower bound
            only shrinks relatively (it never crosses 0).
        abs_sum_upper: bound of the sum of |upper bounds of terms|, for the upper side.
    """
    gamma = accumulation_gamma(count, elem_type)
    subnormal = accumulator_facts(elem_type).subnormal
    slack_lo = _slack(abs_sum, gamma, count * subnormal)
    slack_hi = slack_lo if abs_sum_upper is None else _slack(abs_sum_upper, gamma, count * subnormal)
    new_lo = lower - slack_lo
    new_hi = upper + slack_hi
    # a partial sum can overflow (and then stay infinite) once the terms' magnitudes add up past
    # the accumulator's largest finite value, whatever the exact sum is
    limit = accumulator_facts(elem_type).max
    upper_sum = abs_sum if abs_sum_upper is None else abs_sum_upper
    new_lo = torch.where(abs_sum > limit, torch.full_like(new_lo, -torch.inf), new_lo)
    new_hi = torch.where(upper_sum > limit, torch.full_like(new_hi, torch.inf), new_hi)
    if gamma != float("inf"):
        new_lo = torch.where(torch.as_tensor(nonneg_terms), (lower * (1.0 - gamma)).clamp(min=0.0), new_lo)
    else:
        new_lo = torch.where(torch.as_tensor(nonneg_terms), torch.zeros_like(new_lo), new_lo)
    return nan_to(new_lo, -torch.inf), nan_to(new_hi, torch.inf)


def _slack(abs_sum: Tensor, gamma: float, underflow: float) -> Tensor:
    """The relative error of the sum, plus, where a term is not exactly 0, the underflow of its product
    into the subnormal range (half a subnormal each, rounded up to one)."""
    slack = abs_sum * gamma if gamma != float("inf") else torch.full_like(abs_sum, torch.inf)
    slack = torch.where(abs_sum > 0, slack + underflow, slack)
    return nan_to(slack, torch.inf)
