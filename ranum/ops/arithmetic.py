"""Element-wise arithmetic with broadcasting: Add, Sub, Mul, Div.

Precision: ``x - x`` is exactly 0 and ``x * x`` is never negative when both operands are the same
tensor. Integer Div truncates toward zero, as ONNX requires.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ranum.domain import arith
from ranum.domain.interval import Interval, elementwise
from ranum.ops._base import NodeContext, OpRule
from ranum.ops.hazards import Overflow, equal_to
from ranum.ops.registry import register

__all__ = ["Add", "Div", "Mul", "Sub"]


@register("Add")
class Add(OpRule):
    hazards = (Overflow(),)

    def concrete(self, ctx: NodeContext, a: Tensor, b: Tensor) -> Tensor:
        return a + b

    def abstract(self, ctx: NodeContext, a: Interval, b: Interval) -> Interval:
        return elementwise(arith.add, [a, b], a.elem_type)


@register("Sub")
class Sub(OpRule):
    hazards = (Overflow(),)

    def concrete(self, ctx: NodeContext, a: Tensor, b: Tensor) -> Tensor:
        return a - b

    def abstract(self, ctx: NodeContext, a: Interval, b: Interval) -> Interval:
        if ctx.same_input(0, 1):
            zero = torch.zeros_like(a.lower)
            return a.with_bounds(zero, zero)
        return elementwise(arith.sub, [a, b], a.elem_type)


@register("Mul")
class Mul(OpRule):
    hazards = (Overflow(),)

    def concrete(self, ctx: NodeContext, a: Tensor, b: Tensor) -> Tensor:
        return a * b

    def abstract(self, ctx: NodeContext, a: Interval, b: Interval) -> Interval:
        if ctx.same_input(0, 1):
            return a.with_bounds(*arith.square(a.lower, a.upper))
        return elementwise(arith.mul, [a, b], a.elem_type)


@register("Div")
class Div(OpRule):
    hazards = (equal_to(0.0, "division by zero", name="division-by-zero", operand=1), Overflow())

    def concrete(self, ctx: NodeContext, a: Tensor, b: Tensor) -> Tensor:
        if a.is_floating_point():
            return a / b
        return torch.div(a, b, rounding_mode="trunc")

    def abstract(self, ctx: NodeContext, a: Interval, b: Interval) -> Interval:
        return elementwise(_div_bounds, [a, b], a.elem_type)


def _div_bounds(l1: Tensor, u1: Tensor, l2: Tensor, u2: Tensor) -> tuple[Tensor, Tensor]:
    r_lo, r_hi = arith.reciprocal(l2.to(torch.float64), u2.to(torch.float64))
    lo, hi = arith.mul(l1.to(torch.float64), u1.to(torch.float64), r_lo, r_hi)
    numerator_zero = (l1 == 0) & (u1 == 0)
    zero = torch.zeros_like(lo)
    # 0 / y is 0 for every non-zero y; 0 / 0 is NaN, which the hazard reports.
    # Integer outputs: Interval.create rounds these real bounds outward, which covers truncation.
    return torch.where(numerator_zero, zero, lo), torch.where(numerator_zero, zero, hi)
