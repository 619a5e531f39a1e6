"""Sound interval arithmetic on bound tensors (block-aligned, broadcast already done).

Conventions: bounds are never NaN; ``0 * inf`` in a corner product counts as 0 (an unbounded end
is not the value infinity); a divisor interval that contains 0 yields ``[-inf, +inf]`` (the hazard
itself is reported by the Div/Reciprocal rule). All functions are torch-differentiable.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["add", "mul", "reciprocal", "square", "sub"]


def add(l1: Tensor, u1: Tensor, l2: Tensor, u2: Tensor) -> tuple[Tensor, Tensor]:
    """[l1, u1] + [l2, u2]; an infinite end on each side of opposite signs stays unbounded."""
    lo = _nan_to(l1 + l2, -torch.inf)
    hi = _nan_to(u1 + u2, torch.inf)
    return lo, hi


def sub(l1: Tensor, u1: Tensor, l2: Tensor, u2: Tensor) -> tuple[Tensor, Tensor]:
    """[l1, u1] - [l2, u2]."""
    return add(l1, u1, -u2, -l2)


def mul(l1: Tensor, u1: Tensor, l2: Tensor, u2: Tensor) -> tuple[Tensor, Tensor]:
    """Product of two intervals: min and max of the four corner products."""
    corners = torch.stack([_times(l1, l2), _times(l1, u2), _times(u1, l2), _times(u1, u2)])
    return corners.amin(dim=0), corners.amax(dim=0)


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


def _times(a: Tensor, b: Tensor) -> Tensor:
    product = a * b
    return torch.where(torch.isnan(product), torch.zeros_like(product), product)


def _nan_to(x: Tensor, value: float) -> Tensor:
    return torch.where(torch.isnan(x), torch.full_like(x, value), x)
