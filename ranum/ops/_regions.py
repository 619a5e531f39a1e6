"""The value sets hazards are stated in: a real interval with open or closed ends (:class:`Region`), and a
clip that excludes one (:class:`Clamp`)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from torch import Tensor

__all__ = ["Clamp", "Region", "number_text"]


@dataclass(frozen=True)
class Clamp:
    """Clip bounds for a tensor; None leaves that side open."""

    min: float | None
    max: float | None

    @property
    def empty(self) -> bool:
        """Whether no value passes both sides."""
        return self.min is not None and self.max is not None and self.min > self.max

    def meet(self, other: Clamp) -> Clamp:
        """Both clips at once (the tighter bound on each side)."""
        low = [v for v in (self.min, other.min) if v is not None]
        high = [v for v in (self.max, other.max) if v is not None]
        return Clamp(max(low) if low else None, min(high) if high else None)


@dataclass(frozen=True)
class Region:
    """A real interval, each end open or closed."""

    low: float
    high: float
    low_closed: bool = True
    high_closed: bool = True

    def text(self) -> str:
        left = "[" if self.low_closed and math.isfinite(self.low) else "("
        right = "]" if self.high_closed and math.isfinite(self.high) else ")"
        return f"{left}{number_text(self.low)}, {number_text(self.high)}{right}"

    def meets(self, lo: Tensor, hi: Tensor) -> Tensor:
        """Per block: does [lo, hi] intersect the region?"""
        below_high = lo <= self.high if self.high_closed else lo < self.high
        above_low = hi >= self.low if self.low_closed else hi > self.low
        return below_high & above_low

    def holds(self, lo: Tensor, hi: Tensor) -> Tensor:
        """Per block: is [lo, hi] inside the region?"""
        low_ok = lo >= self.low if self.low_closed else lo > self.low
        high_ok = hi <= self.high if self.high_closed else hi < self.high
        return low_ok & high_ok

    def distance(self, x: Tensor) -> Tensor:
        """Signed distance, <= 0 inside (closed ends) and > 0 outside."""
        if math.isinf(self.low):
            return x - self.high
        if math.isinf(self.high):
            return self.low - x
        middle = (self.low + self.high) / 2
        return (x - middle).abs() - (self.high - self.low) / 2


def number_text(value: float) -> str:
    """A bound for reports: 6 significant digits, infinities as +inf / -inf."""
    if math.isinf(value):
        return "+inf" if value > 0 else "-inf"
    return f"{value:.6g}"
