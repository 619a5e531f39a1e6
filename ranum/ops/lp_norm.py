"""LpNormalization: ``y = x / ||x||_p`` along an axis (p = 1 or 2), and its zero-norm gradient hazard."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from onnx import TensorProto
from torch import Tensor

from ranum.domain.dtypes import float_facts
from ranum.domain.interval import Interval
from ranum.errors import UnsupportedOperator
from ranum.ops._base import NodeContext, OpRule
from ranum.ops.hazards import GRADIENT, Hazard, HazardHit
from ranum.ops.normalization import _SQUARE_FLUSH, _square_limit
from ranum.ops.registry import register

__all__ = ["LpNormalization", "ZeroNormHazard"]


@dataclass(frozen=True)
class ZeroNormHazard(Hazard):
    """Every element of a slice can be 0 (or, for p=2, small enough for the squares to underflow). The
    forward result is then 0 (onnxruntime and the ONNX reference test for a zero norm), but the
    derivative of x / ||x||, (I - u u^T) / ||x||, grows without bound there: a training hazard."""

    axis: int
    p: int
    name: str = "lp-normalization-zero-norm"
    description: str = "gradient of x / ||x|| is infinite at an all-zero slice (the result there is 0)"
    kind: str = GRADIENT

    def _small(self, magnitude: Tensor, elem_type: int) -> Tensor:
        limit = math.sqrt(float_facts(elem_type).tiny) if self.p == 2 else 0.0
        return magnitude <= limit

    def check(self, inputs, outputs):
        x = inputs[0]
        if x is None or x.shape is None or x.numblocks == 0:
            return None
        lo, hi = x.full()
        nearest = (lo.clamp(min=0) - hi.clamp(max=0)).to(torch.float64)
        farthest = torch.maximum(lo.abs(), hi.abs()).to(torch.float64)
        axis = self.axis % len(x.shape)
        possible = self._small(nearest, x.elem_type).all(dim=axis)
        if not bool(possible.any()):
            return None
        certain = bool(self._small(farthest, x.elem_type).all(dim=axis).all())
        return HazardHit(certain, float(lo.min()), float(hi.max()))

    def triggered(self, inputs, outputs):
        x = inputs[0]
        small = self._small(x.abs().to(torch.float64), TensorProto.FLOAT).all(dim=self.axis, keepdim=True)
        return small.expand_as(x)

    def distance(self, inputs, outputs):
        x = inputs[0]
        return x.abs().amax(dim=self.axis, keepdim=True).expand_as(x)

    def invalid_text(self, elem_type):
        return "every element of a slice is 0"


@register("LpNormalization")
class LpNormalization(OpRule):
    """y = x / ||x||_p along ``axis`` (p = 1 or 2)."""

    axis: int = -1
    p: int = 2

    # exact inputs take the abstract rule too: the runtime's float32 norm can overflow where float64's does not
    accumulates = True

    def __post_init__(self) -> None:
        if self.p not in (1, 2):
            raise UnsupportedOperator(f"LpNormalization: p={self.p} (only 1 and 2)")

    @property
    def hazards(self) -> tuple[Hazard, ...]:  # type: ignore[override]
        return (ZeroNormHazard(self.axis, self.p),)

    def concrete(self, ctx: NodeContext, x: Tensor) -> Tensor:
        wide = x.to(torch.float64)
        norm = wide.abs().sum(self.axis, keepdim=True) if self.p == 1 else \
            torch.sqrt((wide * wide).sum(self.axis, keepdim=True))
        return torch.where(norm == 0, 0.0, wide / norm).to(x.dtype)  # as onnxruntime and the ONNX reference

    def abstract(self, ctx: NodeContext, x: Interval) -> Interval:
        lo, hi = (t.to(torch.float64) for t in x.full())
        axis = self.axis % len(x.shape)
        n = x.shape[axis]
        facts = float_facts(x.elem_type)
        if (n + 4) * facts.eps >= 0.5:  # a float16 row of about 500 elements or more: no relative error bound
            return self._signed_caps(lo, hi, facts, x.elem_type, ctx.budget)
        gamma = 2 * (n + 4) * facts.eps / (1 - (n + 4) * facts.eps)
        near = lo.clamp(min=0) - hi.clamp(max=0)
        far = torch.maximum(lo.abs(), hi.abs())
        rest_lo = (near ** self.p).sum(axis, keepdim=True) - near ** self.p
        rest_hi = (far ** self.p).sum(axis, keepdim=True) - far ** self.p
        rest_lo = (rest_lo * (1 - gamma) - (n + 1) * facts.subnormal).clamp(min=0.0)
        rest_hi = rest_hi * (1 + gamma) + (n + 1) * facts.subnormal
        y_hi = torch.where(hi > 0, self._ratio(hi, lo.clamp(min=0), rest_lo, gamma, facts),
                           self._ratio_far(hi, rest_hi, gamma, facts))
        y_lo = torch.where(lo < 0, self._ratio(lo, hi.clamp(max=0), rest_lo, gamma, facts),
                           self._ratio_far(lo, rest_hi, gamma, facts))
        # Underflowing squares make the computed norm too small: |y| <= sqrt(1.5) at worst.
        cap = (1.0 if self.p == 1 else math.sqrt(1.5)) * (1 + 4 * gamma)
        y_lo, y_hi = y_lo.clamp(min=-cap, max=cap), y_hi.clamp(min=-cap, max=cap)
        # a norm whose computation can overflow is inf, and every element of its slice x / inf = 0; one whose
        # squares all round to 0 is 0, and onnxruntime then gives 0 too
        largest = far.amax(axis, keepdim=True)
        reach = (largest > _square_limit(n, x.elem_type)) | (largest < _SQUARE_FLUSH) if self.p == 2 else \
            far.sum(axis, keepdim=True) > facts.max / 2
        y_lo = torch.where(reach, y_lo.clamp(max=0.0), y_lo)
        y_hi = torch.where(reach, y_hi.clamp(min=0.0), y_hi)
        return Interval.from_full(y_lo, y_hi, x.elem_type, ctx.budget)

    def _signed_caps(self, lo: Tensor, hi: Tensor, facts, elem_type: int, budget: int) -> Interval:
        """x's sign, at most ``1`` (p = 1) or ``sqrt(1.5)`` (p = 2, squares that underflow) in magnitude, with a
        few units of rounding: a float sum of non-negative terms is at least its largest term in any order, so
        the computed norm is at least about |x_i| however the row's other terms round."""
        cap = (1.0 if self.p == 1 else math.sqrt(1.5)) * (1 + 8 * facts.eps)
        y_lo = torch.where(lo < 0, torch.full_like(lo, -cap), torch.zeros_like(lo))
        y_hi = torch.where(hi > 0, torch.full_like(hi, cap), torch.zeros_like(hi))
        return Interval.from_full(y_lo, y_hi, elem_type, budget)

    def _ratio(self, v: Tensor, m: Tensor, rest: Tensor, gamma: float, facts) -> Tensor:
        """Largest |x / ||x|| | for x between m and v (same sign), the rest of the norm at least ``rest``.

        ``x / ((1 - gamma)|x|^p - subnormal + rest)^(1/p)`` grows with |x| when rest >= subnormal
        (evaluate at v) and shrinks otherwise (evaluate at m, unbounded when m is 0).
        """
        growing = rest >= facts.subnormal
        x = torch.where(growing, v, m)
        total = x.abs() ** self.p * (1 - gamma) - facts.subnormal + rest
        den = total.clamp(min=0.0) ** (1 / self.p)
        ratio = torch.where(den > 0, x / den.clamp(min=1e-300), v.sign() * torch.inf)
        return torch.where(v == 0, torch.zeros_like(v), ratio)

    def _ratio_far(self, v: Tensor, rest: Tensor, gamma: float, facts) -> Tensor:
        """v / the largest possible norm (the end of the interval nearest to 0)."""
        den = ((v.abs() ** self.p + rest) * (1 + gamma) + facts.subnormal) ** (1 / self.p)
        return v / den
