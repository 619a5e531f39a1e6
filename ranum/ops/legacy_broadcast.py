"""Binary operators before opset 7: limited broadcasting with the ``broadcast`` and ``axis`` attributes.

Add, Sub, Mul, Div (opsets 1 and 6), Pow, And, Or, Xor, Equal, Greater and Less (opset 1) broadcast
their second operand B to the shape of A only with ``broadcast`` = 1: B is a one-element tensor, or
its shape is a contiguous run of A's shape starting at ``axis`` (suffix matching when ``axis`` is
absent). Each rule here reshapes B so that numpy broadcasting aligns it in the same way (trailing
axes of size 1 after the run), then applies the current rule. Without ``broadcast`` the operands
must have the same shape. Invariants: the output has A's shape; a B that does not fit is rejected
(UnsupportedOperator naming the shapes), never aligned another way.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from torch import Tensor

from ranum.domain.interval import Interval
from ranum.errors import UnsupportedOperator
from ranum.ops._base import NodeContext, OpRule, structural
from ranum.ops.arithmetic import Add, Div, Mul, Pow, Sub
from ranum.ops.logic import And, Equal, Greater, Less, Or, Xor
from ranum.ops.registry import register

__all__ = ["Add1", "And1", "Div1", "Equal1", "Greater1", "Less1", "Mul1", "Or1", "Pow1", "Sub1", "Xor1"]


@dataclass(frozen=True)
class _Broadcast1(OpRule):
    """The legacy alignment of B to A, ahead of the current rule (next in the method order)."""

    broadcast: int = 0
    axis: int | None = None

    def _target(self, a: Sequence[int], b: Sequence[int]) -> tuple[int, ...]:
        """The shape B takes so that numpy broadcasting aligns it with A as the legacy rule does."""
        a, b = tuple(a), tuple(b)
        if not self.broadcast:
            if a != b:
                raise UnsupportedOperator(f"{self.op_type} before opset 7 without broadcast=1 needs operands of "
                                          f"the same shape, got {a} and {b}")
            return b
        if math.prod(b) == 1:
            return ()
        start = len(a) - len(b) if self.axis is None else self.axis + (len(a) if self.axis < 0 else 0)
        if start < 0 or start + len(b) > len(a) or any(n not in (1, m) for n, m in zip(b, a[start:])):
            raise UnsupportedOperator(f"{self.op_type} before opset 7: B of shape {b} is not a run of A's shape "
                                      f"{a} at axis {start}")
        return b + (1,) * (len(a) - start - len(b))

    def concrete(self, ctx: NodeContext, a: Tensor, b: Tensor) -> Tensor:
        return super().concrete(ctx, a, b.reshape(self._target(a.shape, b.shape)))  # type: ignore[misc]

    def abstract(self, ctx: NodeContext, a: Interval, b: Interval) -> Interval:
        target = self._target(a.shape, b.shape)
        if target != tuple(b.shape):
            b = structural(lambda t: t.reshape(target), b, ctx.budget)
        return super().abstract(ctx, a, b)  # type: ignore[misc]


@register("Add", since=1)
class Add1(_Broadcast1, Add):
    """Add-1/6: A + B with B aligned at ``axis`` when ``broadcast`` = 1."""


@register("Sub", since=1)
class Sub1(_Broadcast1, Sub):
    """Sub-1/6: A - B with B aligned at ``axis`` when ``broadcast`` = 1."""


@register("Mul", since=1)
class Mul1(_Broadcast1, Mul):
    """Mul-1/6: A * B with B aligned at ``axis`` when ``broadcast`` = 1."""


@register("Div", since=1)
class Div1(_Broadcast1, Div):
    """Div-1/6: A / B with B aligned at ``axis`` when ``broadcast`` = 1."""


@register("Pow", since=1)
class Pow1(_Broadcast1, Pow):
    """Pow-1: X ** Y with Y aligned at ``axis`` when ``broadcast`` = 1."""


@register("And", since=1)
class And1(_Broadcast1, And):
    """And-1: A and B with B aligned at ``axis`` when ``broadcast`` = 1."""


@register("Or", since=1)
class Or1(_Broadcast1, Or):
    """Or-1: A or B with B aligned at ``axis`` when ``broadcast`` = 1."""


@register("Xor", since=1)
class Xor1(_Broadcast1, Xor):
    """Xor-1: A xor B with B aligned at ``axis`` when ``broadcast`` = 1."""


@register("Equal", since=1)
class Equal1(_Broadcast1, Equal):
    """Equal-1: A == B with B aligned at ``axis`` when ``broadcast`` = 1."""


@register("Greater", since=1)
class Greater1(_Broadcast1, Greater):
    """Greater-1: A > B with B aligned at ``axis`` when ``broadcast`` = 1."""


@register("Less", since=1)
class Less1(_Broadcast1, Less):
    """Less-1: A < B with B aligned at ``axis`` when ``broadcast`` = 1."""
