"""What a Where's condition guarantees about the branch it selects, and divisors guarded in magnitude.

Comparisons with a constant meet a branch with the side it is selected on (:func:`guarded_branches`):
``Where(t > c, t, y)`` (softplus, ELU or ReLU as exporters write them) selects t only above c; a strict
comparison excludes c (the dtype's next value: ``where(d > 0, d, 1)`` is never 0), a failed closed one is
strict, an equality pins its true branch to the constant and moves a block's end off it on the false
branch (``where(d == 0, 1, d)``); integers step by one. ``Where(IsInf(t), a, t)`` and torch's
``nan_to_num`` (isneginf / isposinf as IsInf and a sign test) keep t's finite range. A guard of the
magnitude, ``where(|z| > eps, z, 1)``, holds values on both sides of 0 that one interval cannot separate:
:func:`magnitude_floor` gives the least |value| for the reciprocals and divisions that read it; so does a
replaced zero, ``where(t == 0, c, t)`` or ``t + c * (t == 0)``, whose least |value| is the dtype's least
positive one (a quotient by it may still overflow, which is then reported instead of a division by 0).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ranum.domain.dtypes import float_facts, is_bool, is_float, torch_dtype
from ranum.domain.interval import Interval
from ranum.graph.model import Node
from ranum.ops._base import GraphView, NodeContext
from ranum.ops._difference_relations import at_most
from ranum.ops._relations import exact_scalar
from ranum.ops._same_values import exactly, passed_through, same_value

__all__ = ["guarded_branches", "implied_sides", "magnitude_floor", "met_with", "self_ratio_bounds",
           "straddling_divisor_floor"]


# comparison -> (+1 when true means first > second (or >=), -1 when first < second; whether that is strict)
_ORDER = {"Greater": (1, True), "GreaterOrEqual": (1, False), "Less": (-1, True), "LessOrEqual": (-1, False)}


def guarded_branches(ctx: NodeContext, x: Interval, y: Interval) -> tuple[Interval, Interval]:
    """The branches of ``Where(condition, x, y)``, each met with what its condition guarantees: a comparison
    of a branch with a constant (strict ones exclude the constant: ``where(d > 0, d, 1)`` is never 0), or
    an equality (``where(d == 0, 1, d)``: d is not 0 where it is selected)."""
    graph = ctx.graph
    if graph is None or len(ctx.node.inputs) != 3:
        return x, y
    condition, x_name, y_name = ctx.node.inputs
    node = graph.producer(passed_through(graph, condition))
    infinite = _infinity_test(graph, node) if node is not None else None
    if infinite is not None:
        return x, _finite_where_not_infinite(graph, infinite, y_name, y)
    x = met_with(x, implied_sides(graph, condition, x_name, True))
    y = met_with(y, implied_sides(graph, condition, y_name, False))
    if node is not None and node.op_type == "Equal" and node.domain in ("", "ai.onnx") and len(node.inputs) == 2:
        y = _where_unequal(graph, *node.inputs, y_name, y)
    return x, y


Fact = tuple[str, float, bool]  # ("above" | "below", bound, strict) or ("off", value, False)


def implied_sides(graph: GraphView, condition: str, tensor: str, holds: bool, depth: int = 8) -> list[Fact]:
    """What ``condition`` being ``holds`` (True or False) says of ``tensor`` at the same position: a
    comparison of ``tensor`` with an exact scalar (a failed one gives the other side, a failed strict one
    the closed side, as far as ``tensor`` is not NaN, which the bounds do not hold anyway), an equality
    (pinned to the constant; off it where it fails), through Not, And that holds and Or that fails
    (``x[~((x < eps) | isnan(x))]``). Broadcasting maps every position of the condition onto the same
    element of ``tensor`` as onto the branch or data it guards, which is ``tensor`` itself."""
    node = graph.producer(passed_through(graph, condition)) if depth > 0 else None
    if node is None or node.domain not in ("", "ai.onnx"):
        return []
    op = node.op_type
    if op == "Not" and len(node.inputs) == 1:
        return implied_sides(graph, node.inputs[0], tensor, not holds, depth - 1)
    if op in ("And", "Or") and len(node.inputs) == 2:
        if (op == "And") != holds:  # a true Or or a false And: either part may be the reason
            return []
        return [fact for part in node.inputs for fact in implied_sides(graph, part, tensor, holds, depth - 1)]
    if op not in (*_ORDER, "Equal") or len(node.inputs) != 2:
        return []
    facts: list[Fact] = []
    first, second = node.inputs
    for compared, constant, sign in ((first, second, 1), (second, first, -1)):
        bound = exact_scalar(graph, constant)
        if bound is None or math.isnan(bound) or not same_value(graph, compared, tensor):
            continue
        if op == "Equal":
            facts += [("above", bound, False), ("below", bound, False)] if holds else [("off", bound, False)]
            continue
        order, strict = _ORDER[op]
        above = (order * sign > 0) == holds
        facts.append(("above" if above else "below", bound, strict if holds else not strict))
    return facts


def met_with(iv: Interval, facts: list[Fact]) -> Interval:
    """``iv`` met with each of ``facts`` (see :func:`implied_sides`)."""
    for kind, bound, strict in facts:
        iv = _off(iv, bound) if kind == "off" else _one_side(iv, bound, above=kind == "above", strict=strict)
    return iv


def _where_unequal(graph: GraphView, first: str, second: str, name: str, y: Interval) -> Interval:
    """``y`` (``name``) where ``first != second``: their difference is not 0 (in IEEE arithmetic with
    subnormals, ``p - q == 0`` only where ``p == q``; an infinite operand gives an infinity or NaN), and one
    of them known to be at most the other (a set's minimum and maximum) is strictly above the smaller one's
    least value (``where(max == min, 1, max)``: a maximum of values >= 0 is > 0 there)."""
    if not is_float(y.elem_type) or y.shape is None:
        return y
    node = graph.producer(passed_through(graph, name))
    if node is not None and node.op_type == "Sub" and node.domain in ("", "ai.onnx") and len(node.inputs) == 2 \
            and any(same_value(graph, node.inputs[0], p) and same_value(graph, node.inputs[1], q)
                    for p, q in ((first, second), (second, first))):
        return _off(y, 0.0)
    for own, other in ((first, second), (second, first)):
        own_iv, other_iv = graph.interval(own), graph.interval(other)
        if not same_value(graph, name, own) or own_iv is None or other_iv is None or other_iv.shape is None \
                or other_iv.numblocks == 0:
            continue
        if at_most(graph, other, own, other_iv, own_iv):
            return _one_side(y, other_iv.min(), above=True, strict=True)
        if at_most(graph, own, other, own_iv, other_iv):
            return _one_side(y, other_iv.max(), above=False, strict=True)
    return y


def magnitude_floor(graph: GraphView, name: str, depth: int = 4) -> float:
    """A lower bound of ``|name|`` everywhere (0 where none is known): its interval's distance from 0, or, for
    ``Where(|t| > c, t, other)`` (``where(z.abs() > eps, z, 1)`` before a reciprocal; also the mirrored
    forms), the least of c (just above it for a strict comparison) and ``other``'s floor: a guard that keeps
    a divisor away from 0 on both sides, which an interval (one hull) cannot hold."""
    iv = graph.interval(name) if name else None
    if iv is None or iv.numblocks == 0 or iv.shape is None or not is_float(iv.elem_type):
        return 0.0
    low, high = iv.min(), iv.max()
    own = low if low > 0 else -high if high < 0 else 0.0
    node = graph.producer(passed_through(graph, name))
    if own > 0 or depth == 0 or node is None or node.domain not in ("", "ai.onnx"):
        return max(own, 0.0)
    if node.op_type == "Add" and len(node.inputs) == 2:
        return _zero_replaced_by_sum(graph, node, iv.elem_type)
    if node.op_type != "Where" or len(node.inputs) != 3:
        return 0.0
    test = graph.producer(passed_through(graph, node.inputs[0]))
    if test is not None and test.op_type == "Equal" and len(test.inputs) == 2:
        return _zero_replaced(graph, test, node.inputs[1], node.inputs[2], iv.elem_type)
    if test is None or test.op_type not in _ORDER or len(test.inputs) != 2:
        return 0.0
    order, strict = _ORDER[test.op_type]
    first, second = test.inputs
    for magnitude, constant, sign in ((first, second, order), (second, first, -order)):
        absolute = graph.producer(passed_through(graph, magnitude))
        bound = exact_scalar(graph, constant)
        if absolute is None or absolute.op_type != "Abs" or bound is None or not bound >= 0:
            continue
        # the branch selected where |t| is above c: X where the test says "above", Y where it says "below"
        kept, other = (node.inputs[1], node.inputs[2]) if sign > 0 else (node.inputs[2], node.inputs[1])
        open_at_c = strict if sign > 0 else not strict
        if not same_value(graph, kept, absolute.inputs[0]):
            continue
        floor = _next_value(bound, iv.elem_type, up=True) if open_at_c else bound
        return min(floor or bound, magnitude_floor(graph, other, depth - 1))
    return 0.0


def self_ratio_bounds(ctx: NodeContext, a: Interval, b: Interval) -> tuple[float, float] | None:
    """(0, 1) for ``t / where(t == 0, c, t)`` with an exact ``c != 0`` and a finite ``t``: ``t / t`` is exactly 1
    where t is not 0, and ``0 / c`` is 0 where it is (a hue's ``d / where(d == 0, 1, d)``); None elsewhere."""
    graph = ctx.graph
    if graph is None or len(ctx.node.inputs) != 2 or not a.numblocks or not a.is_finite:
        return None
    numerator, divisor = ctx.node.inputs
    node = graph.producer(passed_through(graph, divisor))
    if node is None or node.op_type != "Where" or node.domain not in ("", "ai.onnx") or len(node.inputs) != 3 \
            or not same_value(graph, node.inputs[2], numerator):
        return None
    test = graph.producer(passed_through(graph, node.inputs[0]))
    if test is None or test.op_type != "Equal" or len(test.inputs) != 2:
        return None
    floor = _zero_replaced(graph, test, node.inputs[1], node.inputs[2], a.elem_type)
    return (0.0, 1.0) if floor > 0 else None


def _zero_replaced(graph: GraphView, test: Node, chosen: str, other: str, elem_type: int) -> float:
    """``Where(t == 0, c, t)`` (``masked_fill(t == 0, c)``) with an exact ``c != 0``: t where it is not 0, so
    at least the dtype's least positive value in magnitude, or c."""
    for compared, zero in (test.inputs, test.inputs[::-1]):
        c = exact_scalar(graph, chosen)
        if exact_scalar(graph, zero) == 0.0 and c is not None and c != 0 and same_value(graph, compared, other):
            return min(abs(c), float_facts(elem_type).subnormal)
    return 0.0


def _zero_replaced_by_sum(graph: GraphView, node: Node, elem_type: int) -> float:
    """``t + c * Cast(t == 0)`` (either order of each operation) with an exact ``c != 0``: c where t is 0, and
    ``t + 0 = t`` elsewhere (the same float), so at least the dtype's least positive value or c."""
    for t, scaled in (node.inputs, node.inputs[::-1]):
        product = graph.producer(passed_through(graph, scaled))
        if product is None or product.op_type != "Mul" or len(product.inputs) != 2:
            continue
        for factor, mask in (product.inputs, product.inputs[::-1]):
            c = exact_scalar(graph, factor)
            cast = graph.producer(mask)
            test = graph.producer(passed_through(graph, cast.inputs[0])) if cast is not None \
                and cast.op_type == "Cast" and cast.inputs else None
            if c is None or not math.isfinite(c) or c == 0 or test is None or test.op_type != "Equal" \
                    or len(test.inputs) != 2:
                continue
            if any(exact_scalar(graph, zero) == 0.0 and same_value(graph, compared, t)
                   for compared, zero in (test.inputs, test.inputs[::-1])):
                return min(abs(c), float_facts(elem_type).subnormal)
    return 0.0


def straddling_divisor_floor(ctx: NodeContext, index: int, divisor: Interval) -> float:
    """:func:`magnitude_floor` of operand ``index`` where its interval holds 0 (a guard keeps it off 0 on both
    sides); 0 where it does not hold 0 (its interval already bounds a quotient) or nothing is known."""
    if ctx.graph is None or not is_float(divisor.elem_type) or divisor.numblocks == 0 \
            or divisor.min() > 0 or divisor.max() < 0:
        return 0.0
    return magnitude_floor(ctx.graph, ctx.node.inputs[index])


def _infinity_test(graph: GraphView, node: Node) -> tuple[str, bool, bool] | None:
    """``(t, negative, positive)`` where ``node`` is true exactly where ``t`` is an infinity of those signs:
    ``IsInf(t)`` (its detect attributes), or ``And(IsInf(t), t < 0)`` and ``And(IsInf(t), t > 0)`` (isneginf
    and isposinf as torch.nan_to_num exports them); None otherwise."""
    if node.domain not in ("", "ai.onnx") or not node.inputs:
        return None
    if node.op_type == "IsInf":
        return (node.inputs[0], bool(int(node.attributes.get("detect_negative", 1))),
                bool(int(node.attributes.get("detect_positive", 1))))
    if node.op_type != "And" or len(node.inputs) != 2:
        return None
    parts = [graph.producer(passed_through(graph, name)) for name in node.inputs]
    if any(part is None for part in parts):
        return None
    for test, sign in (parts, parts[::-1]):
        if test.op_type != "IsInf" or sign.op_type not in ("Less", "Greater") or len(sign.inputs) != 2 \
                or not same_value(graph, _widened_from(graph, sign.inputs[0]), _widened_from(graph, test.inputs[0])) \
                or not exactly(graph, sign.inputs[1], 0.0):
            continue
        negative = sign.op_type == "Less" and bool(int(test.attributes.get("detect_negative", 1)))
        positive = sign.op_type == "Greater" and bool(int(test.attributes.get("detect_positive", 1)))
        return test.inputs[0], negative, positive
    return None


def _finite_where_not_infinite(graph: GraphView, infinite: tuple[str, bool, bool], y_name: str, y: Interval
                               ) -> Interval:
    """``Where(IsInf(t), a, t)`` (a reciprocal's infinities replaced, nan_to_num): ``t`` is selected only where
    it is not an infinity of the detected signs, so that branch is met with the dtype's finite range on those
    sides. ``t`` may be read through a Cast to a wider float type (values kept)."""
    tested, negative, positive = infinite
    if y_name and is_float(y.elem_type) and _infinite_only_where(graph, y_name, tested):
        largest = float_facts(y.elem_type).max
        low, high = -largest if negative else -math.inf, largest if positive else math.inf
        y = y.with_bounds(y.lower.clamp(min=low, max=high), y.upper.clamp(min=low, max=high))
    return y


def _infinite_only_where(graph: GraphView, name: str, tested: str) -> bool:
    """Whether ``name`` is infinite (of a sign) only where ``tested`` is: the same value, or an earlier step
    of nan_to_num, ``Where(c, finite constant, v)`` of such a ``v`` (dynamo tests the quotient itself while
    it selects from the previous step's result)."""
    tested = _widened_from(graph, tested)
    for _ in range(4):
        if same_value(graph, _widened_from(graph, name), tested):
            return True
        node = graph.producer(passed_through(graph, name))
        if node is None or node.op_type != "Where" or len(node.inputs) != 3:
            return False
        fill = graph.interval(node.inputs[1])
        if fill is None or not fill.is_exact or not fill.is_finite:
            return False
        name = node.inputs[2]
    return False


def _widened_from(graph: GraphView, name: str) -> str:
    """The tensor a chain of float Casts to wider (or the same) float types reads: every value kept."""
    for _ in range(4):
        name = passed_through(graph, name)
        node = graph.producer(name)
        if node is None or node.op_type != "Cast" or not node.inputs:
            return name
        source, target = graph.interval(node.inputs[0]), graph.interval(name)
        if source is None or target is None or not is_float(source.elem_type) or not is_float(target.elem_type) \
                or float_facts(target.elem_type).max < float_facts(source.elem_type).max \
                or float_facts(target.elem_type).eps > float_facts(source.elem_type).eps:
            return name
        name = node.inputs[0]
    return name


def _one_side(iv: Interval, bound: float, above: bool, strict: bool = False) -> Interval:
    """``iv`` met with ``[bound, inf)`` (``above``) or ``(-inf, bound]``, open at ``bound`` where ``strict``
    (the next value of the dtype); a block wholly on the other side (the branch is never selected there)
    keeps its nearest end, so no block becomes empty. Float and integer tensors (not booleans)."""
    if not _guardable(iv):
        return iv
    if strict:
        bound = _next_value(bound, iv.elem_type, up=above)
        if bound is None:
            return iv
    bound = _as_bound(bound, iv)
    lo, hi = iv.lower, iv.upper
    if above:
        return iv.with_bounds(torch.maximum(lo, hi.clamp(max=bound)), hi)
    return iv.with_bounds(lo, torch.minimum(hi, lo.clamp(min=bound)))


def _off(iv: Interval, value: float) -> Interval:
    """``iv`` without ``value`` where ``value`` is one of a block's ends (and the block holds others)."""
    if not _guardable(iv):
        return iv
    up, down = _next_value(value, iv.elem_type, up=True), _next_value(value, iv.elem_type, up=False)
    if up is None or down is None:
        return iv
    lo, hi = iv.lower, iv.upper
    lo_moved = torch.where((lo == value) & (hi > value), torch.full_like(lo, _as_bound(up, iv)), lo)
    hi_moved = torch.where((hi == value) & (lo < value), torch.full_like(hi, _as_bound(down, iv)), hi)
    return iv.with_bounds(lo_moved, hi_moved)


def _guardable(iv: Interval) -> bool:
    return not iv.is_point and not is_bool(iv.elem_type)


def _as_bound(value: float, iv: Interval) -> float | int:
    """``value`` in the Python type of ``iv``'s bound tensors (integer bounds stay integers)."""
    return float(value) if iv.lower.is_floating_point() else int(value)


def _next_value(value: float, elem_type: int, up: bool) -> float | None:
    """The value of the dtype next to ``value`` (itself one of the dtype's), upwards or downwards: the next
    integer, or the next float; None where numpy has no such float dtype (bfloat16) or the value is not
    finite."""
    if not math.isfinite(value):
        return None
    if not is_float(elem_type):
        return value + 1 if up else value - 1 if float(value).is_integer() else None
    try:
        dtype = np.dtype(torch.empty((), dtype=torch_dtype(elem_type)).numpy().dtype)
    except TypeError:
        return None
    here = dtype.type(value)
    if float(here) != value:
        return None
    return float(np.nextafter(here, dtype.type(math.inf if up else -math.inf)))
