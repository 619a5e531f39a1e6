"""Comparisons, boolean logic, selection, float classification and integer bitwise operators.

Boolean tensors have int64 bounds in {0, 1} (0 = False). Every rule here only decides or selects
values, so none rounds (``rounds = False``).

Invariants and conventions:

* A comparison is decided in a block when the operand intervals make it so for every pair of
  values (e.g. ``a > b`` is True when ``lower(a) > upper(b)``); otherwise the block is ``[0, 1]``.
  As everywhere in ranum, intervals bound the non-NaN values of a tensor; a NaN operand (which
  only an upstream hazard or an input outside its assumed range can produce) compares False.
* ``IsNaN`` is the exception to that convention: its only purpose is to observe values the
  convention leaves out, typically in a NaN guard such as ``Where(IsNaN(x), c, x)``. Assuming
  "never NaN" would make the guard's replacement branch dead and drop ``c`` from the result's
  bounds. No interval alone can prove a float tensor NaN-free: a non-exact operand gives ``[0, 1]``,
  unless how it was computed does (every tensor upstream finite, no forward hazard that can fire on
  the way: see ``GraphView.nan_free``); then False. TensorFlow's ``reduce_logsumexp`` guards its maximum
  with ``is_finite``, which tf2onnx writes as ``Not(Or(IsInf(m), IsNaN(m)))``. (Exact operands take the
  interpreter's concrete fast path.)
* ``IsInf`` is NaN-safe without loss: its lower bound is always 0 (a NaN gives False), its upper
  bound is 1 only where a detected infinity lies inside the operand's interval.
* ``Where`` selects block-wise: a block whose condition is decided takes that branch's bounds, an
  undecided one the join of both branches.
* ``BitwiseAnd/Or/Xor/Not`` act on two's-complement integers (int64 bounds, see
  :mod:`ranum.ops._bits`): exact on points, otherwise bounded through the sign of each operand and its
  highest set bit.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import torch
from onnx import TensorProto
from torch import Tensor

from ranum.domain.dtypes import is_float
from ranum.domain.interval import Interval, elementwise
from ranum.ops import _bits as int_bits
from ranum.ops._base import ELEMENTWISE, NodeContext, OpRule
from ranum.ops._guard_relations import guarded_branches
from ranum.ops._support_relations import first_position_holds
from ranum.ops.registry import register

__all__ = [
    "And",
    "BitwiseAnd",
    "BitwiseNot",
    "BitwiseOr",
    "BitwiseXor",
    "Equal",
    "Greater",
    "GreaterOrEqual",
    "IsInf",
    "IsNaN",
    "Less",
    "LessOrEqual",
    "Not",
    "Or",
    "Where",
    "Xor",
]

BOOL = TensorProto.BOOL
BoundFn = Callable[[Tensor, Tensor, Tensor, Tensor], tuple[Tensor, Tensor]]


def _bits(condition: Tensor) -> Tensor:
    """A boolean tensor as int64 bounds (1 = True)."""
    return condition.to(torch.int64)


def _constant(template: Interval, value: int) -> Interval:
    """A boolean interval of ``template``'s shape and grid, every element ``value``."""
    bound = torch.full(tuple(template.stored_lower.shape), value, dtype=torch.int64)
    return template.with_bounds(bound, bound.clone(), BOOL)


def _greater(la: Tensor, ua: Tensor, lb: Tensor, ub: Tensor) -> tuple[Tensor, Tensor]:
    """a > b: certainly when every a exceeds every b; possibly when some a exceeds some b."""
    return _bits(la > ub), _bits(ua > lb)


def _greater_equal(la: Tensor, ua: Tensor, lb: Tensor, ub: Tensor) -> tuple[Tensor, Tensor]:
    """a >= b."""
    return _bits(la >= ub), _bits(ua >= lb)


def _equal(la: Tensor, ua: Tensor, lb: Tensor, ub: Tensor) -> tuple[Tensor, Tensor]:
    """a == b: certain for equal points, impossible for disjoint intervals."""
    certain = (la == ua) & (lb == ub) & (la == lb)
    possible = (la <= ub) & (lb <= ua)
    return _bits(certain), _bits(possible)


def _swap(fn: BoundFn) -> BoundFn:
    """The bound function of the comparison with its operands exchanged (a < b is b > a)."""
    return lambda la, ua, lb, ub: fn(lb, ub, la, ua)


class _Comparison(OpRule):
    """Element-wise comparison with broadcasting; the result is a boolean tensor."""
    unknown_shapes = ELEMENTWISE

    rounds = False
    bounds: ClassVar[BoundFn]
    reflexive: ClassVar[bool] = False  # the result of comparing a tensor with itself (x == x, x >= x)

    def compare(self, a: Tensor, b: Tensor) -> Tensor:
        raise NotImplementedError

    def concrete(self, ctx: NodeContext, a: Tensor, b: Tensor) -> Tensor:
        return self.compare(a, b)

    def abstract(self, ctx: NodeContext, a: Interval, b: Interval) -> Interval:
        if ctx.same_input(0, 1) and (not self.reflexive or _never_nan(ctx, a)):
            return _constant(a, int(self.reflexive))  # x < x is False even for NaN; x == x only where x is no NaN
        return first_position_holds(ctx, elementwise(type(self).bounds, [a, b], BOOL))


def _never_nan(ctx: NodeContext, a: Interval) -> bool:
    """Whether the first operand can never be NaN (an integer, or a float no run can make NaN)."""
    return not is_float(a.elem_type) or (ctx.graph is not None and ctx.graph.nan_free(ctx.node.inputs[0]))


@register("Equal", since=7)
class Equal(_Comparison):
    """a == b element-wise (NaN equals nothing)."""

    bounds = staticmethod(_equal)
    reflexive = True

    def compare(self, a: Tensor, b: Tensor) -> Tensor:
        return torch.eq(a, b)


@register("Greater", since=7)
class Greater(_Comparison):
    """a > b element-wise."""

    bounds = staticmethod(_greater)

    def compare(self, a: Tensor, b: Tensor) -> Tensor:
        return torch.gt(a, b)


@register("GreaterOrEqual")
class GreaterOrEqual(_Comparison):
    """a >= b element-wise."""

    bounds = staticmethod(_greater_equal)
    reflexive = True

    def compare(self, a: Tensor, b: Tensor) -> Tensor:
        return torch.ge(a, b)


@register("Less", since=7)
class Less(_Comparison):
    """a < b element-wise."""

    bounds = staticmethod(_swap(_greater))

    def compare(self, a: Tensor, b: Tensor) -> Tensor:
        return torch.lt(a, b)


@register("LessOrEqual")
class LessOrEqual(_Comparison):
    """a <= b element-wise."""

    bounds = staticmethod(_swap(_greater_equal))
    reflexive = True

    def compare(self, a: Tensor, b: Tensor) -> Tensor:
        return torch.le(a, b)


# ----------------------------------------------------------------------------- boolean logic
@register("Not")
class Not(OpRule):
    """Logical negation of a boolean tensor."""
    unknown_shapes = ELEMENTWISE

    rounds = False

    def concrete(self, ctx: NodeContext, x: Tensor) -> Tensor:
        return torch.logical_not(x)

    def abstract(self, ctx: NodeContext, x: Interval) -> Interval:
        return x.with_bounds(1 - x.upper, 1 - x.lower, BOOL)


@register("And", since=7)
class And(OpRule):
    """Logical and with broadcasting: the bounds are the minima of the operand bounds."""
    unknown_shapes = ELEMENTWISE

    rounds = False

    def concrete(self, ctx: NodeContext, a: Tensor, b: Tensor) -> Tensor:
        return torch.logical_and(a, b)

    def abstract(self, ctx: NodeContext, a: Interval, b: Interval) -> Interval:
        return elementwise(lambda la, ua, lb, ub: (torch.minimum(la, lb), torch.minimum(ua, ub)), [a, b], BOOL)


@register("Or", since=7)
class Or(OpRule):
    """Logical or with broadcasting: the bounds are the maxima of the operand bounds."""
    unknown_shapes = ELEMENTWISE

    rounds = False

    def concrete(self, ctx: NodeContext, a: Tensor, b: Tensor) -> Tensor:
        return torch.logical_or(a, b)

    def abstract(self, ctx: NodeContext, a: Interval, b: Interval) -> Interval:
        return elementwise(lambda la, ua, lb, ub: (torch.maximum(la, lb), torch.maximum(ua, ub)), [a, b], BOOL)


def _xor(la: Tensor, ua: Tensor, lb: Tensor, ub: Tensor) -> tuple[Tensor, Tensor]:
    """a xor b: decided only where both operands are."""
    decided = (la == ua) & (lb == ub)
    value = _bits(la != lb)
    return torch.where(decided, value, 0), torch.where(decided, value, 1)


@register("Xor", since=7)
class Xor(OpRule):
    """Logical exclusive or with broadcasting; ``x xor x`` is False."""
    unknown_shapes = ELEMENTWISE

    rounds = False

    def concrete(self, ctx: NodeContext, a: Tensor, b: Tensor) -> Tensor:
        return torch.logical_xor(a, b)

    def abstract(self, ctx: NodeContext, a: Interval, b: Interval) -> Interval:
        if ctx.same_input(0, 1):
            return _constant(a, 0)
        return elementwise(_xor, [a, b], BOOL)


# ----------------------------------------------------------------------------- selection
def _select(lc: Tensor, uc: Tensor, lx: Tensor, ux: Tensor, ly: Tensor, uy: Tensor) -> tuple[Tensor, Tensor]:
    """Bounds of where(c, x, y) per block: the decided branch, or the join of both."""
    certain, impossible = lc == 1, uc == 0
    lower = torch.where(certain, lx, torch.where(impossible, ly, torch.minimum(lx, ly)))
    upper = torch.where(certain, ux, torch.where(impossible, uy, torch.maximum(ux, uy)))
    return lower, upper


@register("Where")
class Where(OpRule):
    """where(condition, X, Y) with three-way broadcasting; values are selected, never computed."""
    unknown_shapes = ELEMENTWISE

    rounds = False

    def concrete(self, ctx: NodeContext, condition: Tensor, x: Tensor, y: Tensor) -> Tensor:
        return torch.where(condition, x, y)

    def abstract(self, ctx: NodeContext, condition: Interval, x: Interval, y: Interval) -> Interval:
        x, y = guarded_branches(ctx, x, y)
        return elementwise(_select, [condition, x, y], x.elem_type)


# ----------------------------------------------------------------------------- classification
@register("IsInf")
class IsInf(OpRule):
    """True where x is an infinity of a detected sign; NaN and finite values give False."""
    unknown_shapes = ELEMENTWISE

    detect_negative: int = 1
    detect_positive: int = 1
    rounds = False

    def concrete(self, ctx: NodeContext, x: Tensor) -> Tensor:
        hit = torch.zeros(x.shape, dtype=torch.bool)
        if self.detect_positive:
            hit |= torch.isposinf(x)
        if self.detect_negative:
            hit |= torch.isneginf(x)
        return hit

    def abstract(self, ctx: NodeContext, x: Interval) -> Interval:
        possible = torch.zeros(tuple(x.stored_lower.shape), dtype=torch.bool)
        if self.detect_positive:
            possible |= torch.isposinf(x.upper)
        if self.detect_negative:
            possible |= torch.isneginf(x.lower)
        return x.with_bounds(torch.zeros_like(possible, dtype=torch.int64), _bits(possible), BOOL)


@register("IsNaN")
class IsNaN(OpRule):
    """True where x is NaN; no interval excludes NaN at run time (see the module docstring)."""
    unknown_shapes = ELEMENTWISE

    rounds = False

    def concrete(self, ctx: NodeContext, x: Tensor) -> Tensor:
        return torch.isnan(x)

    def abstract(self, ctx: NodeContext, x: Interval) -> Interval:
        never = ctx.graph is not None and ctx.graph.nan_free(ctx.node.inputs[0])
        return x.with_bounds(torch.zeros_like(x.lower, dtype=torch.int64),
                             torch.full_like(x.lower, 0 if never else 1, dtype=torch.int64), BOOL)


# ----------------------------------------------------------------------------- bitwise
class _Bitwise(OpRule):
    """Element-wise bitwise operation on integers with broadcasting (opset 18)."""

    rounds = False
    op: ClassVar[str]

    def concrete(self, ctx: NodeContext, a: Tensor, b: Tensor) -> Tensor:
        t = int_bits.operand_type(ctx.input_types, a, type(self).op_type)
        return int_bits.bitwise(self.op, a, b, t).to(a.dtype)

    def abstract(self, ctx: NodeContext, a: Interval, b: Interval) -> Interval:
        int_bits.int_type(a.elem_type, type(self).op_type)
        if ctx.same_input(0, 1):  # x & x = x | x = x, x ^ x = 0
            return a.with_bounds(torch.zeros_like(a.lower), torch.zeros_like(a.lower)) if self.op == "xor" else a
        return elementwise(lambda *bounds: int_bits.bitwise_bounds(self.op, *bounds), [a, b], a.elem_type)


@register("BitwiseAnd", since=18)
class BitwiseAnd(_Bitwise):
    """a & b: the result's bits are set in both operands."""

    op = "and"


@register("BitwiseOr", since=18)
class BitwiseOr(_Bitwise):
    """a | b: the result's bits are set in either operand."""

    op = "or"


@register("BitwiseXor", since=18)
class BitwiseXor(_Bitwise):
    """a ^ b; ``x ^ x`` is 0."""

    op = "xor"


@register("BitwiseNot", since=18)
class BitwiseNot(OpRule):
    """~x: -x - 1 for signed integers, max - x for unsigned ones (exact)."""

    rounds = False

    def concrete(self, ctx: NodeContext, x: Tensor) -> Tensor:
        t = int_bits.operand_type(ctx.input_types, x, "BitwiseNot")
        return t.wrap(~x.to(torch.int64)).to(x.dtype)

    def abstract(self, ctx: NodeContext, x: Interval) -> Interval:
        t = int_bits.int_type(x.elem_type, "BitwiseNot")
        return x.with_bounds(*int_bits.not_bounds(x.lower, x.upper, t))
