"""Relational refinements: bounds that follow from how operands were computed, not only their ranges.

RMS normalisation ``y = x * c / sqrt(mean(x^2) + eps)`` (RMSNorm, T5LayerNorm), exported as
``Mul(x, Div(c, Sqrt(Add(ReduceMean(Pow(x, 2)), eps))))``, ``Mul(x, Reciprocal(Sqrt(...)))`` or
``Div(x, Sqrt(...))``: since ``x_i^2 <= n * mean(x^2)`` over the ``n`` reduced elements,
``|y_i| <= |c| * sqrt(n)``, whatever the range of x. Intervals alone only give ``|x| * c / sqrt(eps)``.
Rounding: the float mean of squares is at least ``(1 - gamma) * mean`` and each of pow, sqrt, div,
mul rounds once, so the bound is widened by ``1 / sqrt(1 - gamma)`` and a few units of roundoff.

Attention ``MatMul(Softmax(s), V)`` over the softmax axis: each output is a convex combination of
a column of V (weights >= 0 summing to 1), so it lies between that column's least lower and
greatest upper bound, whatever the scores. Intervals alone multiply by the row length. Rounding:
the float weights sum to ``1 +- gamma_(n+4)`` (exp, sum, divide) and the product's accumulation
error is at most ``gamma_n * sum p_k |v_k|``.

Products of a normalised row with a weight matrix ``y = a @ W`` (q, k, v and MLP projections after
LayerNorm or RMSNorm): the normalised row has an L2 norm of at most ``sqrt(n)`` (times the largest
|scale|, plus the norm of the bias), so by Cauchy-Schwarz ``|y_j| <= ||a|| * ||W[:, j]||``, where
intervals sum ``|a_i| |W_ij|`` with every ``|a_i|`` at its own maximum (``sqrt(n)`` times more).
The norm of a row survives Identity, float Casts and Reshapes that keep the last axis.

Guarded selections ``Where(t > c, t, y)`` (softplus, ELU and ReLU as exporters write them): the
branch that is the compared tensor itself is only selected on its side of the constant, so it is met
with that side (``t >= c`` when selected by ``t > c``, ``t <= c`` when the condition fails; a NaN
``t`` is outside every interval anyway). Intervals alone select the whole range of ``t``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TypeVar

import numpy as np
import torch
from torch import Tensor

from ranum.domain import arith, blocks
from ranum.domain.dtypes import float_facts, is_bool, is_float, torch_dtype
from ranum.domain.interval import Interval, broadcast_shape, elementwise
from ranum.graph.model import Node
from ranum.ops._base import GraphView, NodeContext
from ranum.ops._same_values import exactly, passed_through, same_value

T = TypeVar("T")

__all__ = ["convex_combination_bounds", "either_order", "guarded_branches", "magnitude_floor", "meet", "meet_bounds",
           "norm_product_bounds",
           "onnx_producer", "rms_bound_of", "rms_magnitude_bound"]


def rms_magnitude_bound(ctx: NodeContext, x_index: int, scale_index: int, divides: bool) -> float | None:
    """A bound of |output| when the node computes x times (or divided by) an RMS statistic of x.

    Args:
        ctx: the node's context (needs the graph view).
        x_index: which input is x.
        scale_index: which input is ``c / sqrt(...)`` (``divides=False``) or ``sqrt(...)`` (``divides=True``).
        divides: the node divides x by the square root instead of multiplying by its reciprocal.
    """
    if ctx.graph is None:
        return None
    names = ctx.node.inputs
    return _rms_bound(ctx.graph, names[x_index], names[scale_index], divides)


def rms_bound_of(graph: GraphView, reciprocal: str) -> tuple[str, float] | None:
    """(x, B) where ``reciprocal`` is ``c / sqrt(mean(x^2) + eps)`` (its Reciprocal, or ``Pow(mean(x^2) + eps,
    -0.5)``) and ``|x * reciprocal| <= B`` element-wise; None for another form."""
    found = _inverse_root_of(graph, reciprocal)
    stats = _mean_square(graph, found[1]) if found is not None else None
    if stats is None:
        return None
    bound = _rms_bound(graph, stats[0], reciprocal, divides=False)
    return None if bound is None else (stats[0], bound)


def _rms_bound(graph: GraphView, x_name: str, other: str, divides: bool) -> float | None:
    if divides:
        sqrt = graph.producer(other)
        found = (1.0, sqrt.inputs[0]) if sqrt is not None and sqrt.op_type == "Sqrt" else None
    else:
        found = _inverse_root_of(graph, other)
    if found is None:
        return None
    factor, radicand = found
    stats = _mean_square(graph, radicand)
    if stats is None or stats[0] != x_name:
        return None
    count = stats[1]
    x = graph.interval(x_name)
    if x is None or not is_float(x.elem_type) or count < 1:
        return None
    unit = float_facts(x.elem_type).eps
    gamma = arith.accumulation_gamma(count + 2, x.elem_type)
    if gamma >= 1:
        return None
    return abs(factor) * math.sqrt(count / (1 - gamma)) * (1 + 16 * unit)


def _exact_scalar(graph: GraphView, name: str) -> float | None:
    iv = graph.interval(name) if name else None
    if iv is None or not iv.is_exact or iv.numblocks != 1:
        return None
    return float(iv.lower.detach().reshape(()))


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
    if node is None or node.op_type not in (*_ORDER, "Equal") or node.domain not in ("", "ai.onnx") \
            or len(node.inputs) != 2:
        return x, y
    first, second = node.inputs
    if node.op_type == "Equal":
        for tensor, constant in ((first, second), (second, first)):
            bound = _exact_scalar(graph, constant)
            if bound is None or math.isnan(bound):
                continue
            if tensor == x_name:  # selected where it equals the constant
                x = _one_side(_one_side(x, bound, above=True), bound, above=False)
            if tensor == y_name:  # selected where it differs: an end at the constant moves off it
                y = _off(y, bound)
        return x, y
    order, strict = _ORDER[node.op_type]
    for tensor, constant, sign in ((first, second, order), (second, first, -order)):
        bound = _exact_scalar(graph, constant)
        if bound is None or math.isnan(bound):
            continue
        if tensor == x_name:  # selected where the condition holds: tensor above (sign > 0) or below the bound
            x = _one_side(x, bound, above=sign > 0, strict=strict)
        if tensor == y_name:  # selected where it fails: the other side (a strict comparison fails on a closed one)
            y = _one_side(y, bound, above=sign < 0, strict=not strict)
    return x, y


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
    if own > 0 or depth == 0 or node is None or node.op_type != "Where" or len(node.inputs) != 3:
        return max(own, 0.0)
    test = graph.producer(passed_through(graph, node.inputs[0]))
    if test is None or test.op_type not in _ORDER or len(test.inputs) != 2:
        return 0.0
    order, strict = _ORDER[test.op_type]
    first, second = test.inputs
    for magnitude, constant, sign in ((first, second, order), (second, first, -order)):
        absolute = graph.producer(passed_through(graph, magnitude))
        bound = _exact_scalar(graph, constant)
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


def _reciprocal_of(graph: GraphView, name: str) -> tuple[float, str] | None:
    """``c / s`` or ``Reciprocal(s)`` with an exact scalar c: returns (c, s)."""
    node = graph.producer(name)
    if node is None:
        return None
    if node.op_type == "Reciprocal":
        return 1.0, node.inputs[0]
    if node.op_type == "Div" and len(node.inputs) == 2:
        c = _exact_scalar(graph, node.inputs[0])
        return None if c is None else (c, node.inputs[1])
    return None


def _inverse_root_of(graph: GraphView, name: str) -> tuple[float, str] | None:
    """``c / Sqrt(v)``, ``Reciprocal(Sqrt(v))`` or ``Pow(v, -0.5)`` (Gemma 3n's RMSNorm) with an exact scalar c:
    returns (c, v)."""
    node = graph.producer(name)
    if node is not None and node.op_type == "Pow" and _exact_scalar(graph, node.inputs[1]) == -0.5:
        return 1.0, node.inputs[0]
    found = _reciprocal_of(graph, name)
    sqrt = graph.producer(found[1]) if found is not None else None
    return (found[0], sqrt.inputs[0]) if sqrt is not None and sqrt.op_type == "Sqrt" else None


def _mean_square(graph: GraphView, name: str) -> tuple[str, int] | None:
    """``Add(ReduceMean(x^2), eps)`` with eps >= 0 exact (or the mean alone): returns (x, reduced count)."""
    add = graph.producer(name)
    mean_name = name
    if add is not None and add.op_type == "Add":
        for mean_pos, eps_pos in ((0, 1), (1, 0)):
            eps = _exact_scalar(graph, add.inputs[eps_pos])
            if eps is not None and eps >= 0:
                mean_name = add.inputs[mean_pos]
                break
        else:
            return None
    mean = graph.producer(mean_name)
    if mean is None or mean.op_type != "ReduceMean" or not int(mean.attributes.get("keepdims", 1)):
        return None
    square = graph.producer(mean.inputs[0])
    x_name = _squared(graph, square)
    if x_name is None:
        return None
    x = graph.interval(x_name)
    if x is None or x.shape is None:
        return None
    axes = _axes(graph, mean, len(x.shape))
    if axes is None:
        return None
    return x_name, math.prod(x.shape[a] for a in axes)


def _squared(graph: GraphView, node) -> str | None:
    if node is None:
        return None
    if node.op_type == "Mul" and len(node.inputs) == 2 and node.inputs[0] == node.inputs[1]:
        return node.inputs[0]
    if node.op_type == "Pow" and _exact_scalar(graph, node.inputs[1]) == 2.0:
        return node.inputs[0]
    return None


def _axes(graph: GraphView, mean, rank: int) -> list[int] | None:
    axes = mean.attributes.get("axes")
    if axes is None and len(mean.inputs) > 1 and mean.inputs[1]:
        iv: Interval | None = graph.interval(mean.inputs[1])
        if iv is None or not iv.is_exact:
            return None
        axes = [int(v) for v in iv.exact_value().reshape(-1).tolist()]
    if axes is None or len(axes) == 0:
        return list(range(rank)) if not int(mean.attributes.get("noop_with_empty_axes", 0)) else None
    return sorted({a % rank for a in axes})


def convex_combination_bounds(ctx: NodeContext, weights: Interval, values: Interval) -> Interval | None:
    """Bounds of ``weights @ values`` when ``weights`` is a softmax over its last axis, else None.

    The result has the matmul's output shape: per output column, the least lower and greatest
    upper bound of that column of ``values`` (scaled by the float weights' sum and widened by the
    accumulation error). Batch axes broadcast as in numpy.matmul; 1-D operands are not handled.
    """
    if ctx.graph is None or weights.shape is None or values.shape is None:
        return None
    if len(weights.shape) < 2 or len(values.shape) < 2 or not is_float(values.elem_type):
        return None
    if not _softmax_over_last_axis(ctx, ctx.node.inputs[0], len(weights.shape)):
        return None
    count = weights.shape[-1]
    unit = float_facts(weights.elem_type).eps
    spread = arith.accumulation_gamma(count + 4, weights.elem_type) + 4 * unit
    if spread >= 0.5:
        return None
    low = values.lower.to(torch.float64).amin(-2, keepdim=True)
    high = values.upper.to(torch.float64).amax(-2, keepdim=True)
    low = torch.where(low < 0, low * (1 + spread), low * (1 - spread))
    high = torch.where(high > 0, high * (1 + spread), high * (1 - spread))
    magnitude = torch.maximum(low.abs(), high.abs()) * (1 + spread)
    low, high = arith.with_accumulation_error(low, high, magnitude, count, values.elem_type)
    column = Interval.create(low, high, values.splits[:-2] + ((0,), values.splits[-1]),
                             values.shape[:-2] + (1, values.shape[-1]), values.elem_type)
    out_shape = _matmul_shape(weights.shape, values.shape)
    return column.broadcast_to(out_shape) if out_shape is not None else None


def meet_bounds(out: Interval, low: Tensor, high: Tensor, budget: int | None) -> Interval:
    """``out`` met with float64 bounds ``low`` / ``high`` that broadcast onto its shape (``out`` itself
    where they do not)."""
    try:
        low, high = low.broadcast_to(out.shape), high.broadcast_to(out.shape)
    except RuntimeError:
        return out
    olo, ohi = out.full()
    return Interval.from_full(torch.maximum(olo.to(torch.float64), low), torch.minimum(ohi.to(torch.float64), high),
                              out.elem_type, budget)


def either_order(ctx: NodeContext, out: Interval, find: Callable[[GraphView, str, str], T | None]) -> T | None:
    """``find(graph, a, b)`` for a float two-input node's inputs in either order (the first found), where
    ``out``, the node's bounds, has a shape; None otherwise."""
    graph = ctx.graph
    if graph is None or not is_float(out.elem_type) or out.shape is None or len(ctx.node.inputs) != 2:
        return None
    first, second = ctx.node.inputs
    return find(graph, first, second) or find(graph, second, first)


def onnx_producer(graph: GraphView, name: str, op_type: str) -> Node | None:
    """The default-domain ``op_type`` node (with inputs) that produces ``name``, else None."""
    node = graph.producer(name) if name else None
    return node if node is not None and node.op_type == op_type and node.domain in ("", "ai.onnx") and node.inputs \
        else None


def meet(iv: Interval, other: Interval) -> Interval:
    """The element-wise intersection of two sound intervals of the same tensor."""

    def both(lo1: Tensor, hi1: Tensor, lo2: Tensor, hi2: Tensor) -> tuple[Tensor, Tensor]:
        return torch.maximum(lo1, lo2.to(lo1.dtype)), torch.minimum(hi1, hi2.to(hi1.dtype))

    return elementwise(both, [iv, other], iv.elem_type)


_PASS_THROUGH = ("Identity", "Cast")


def _softmax_over_last_axis(ctx: NodeContext, name: str, rank: int) -> bool:
    graph = ctx.graph
    node = _through_casts(graph, graph.producer(name))
    if node is None or node.op_type != "Softmax" or node.domain not in ("", "ai.onnx"):
        return False
    axis = int(node.attributes.get("axis", -1 if ctx.opset >= 13 else 1))
    return axis % rank == rank - 1


def _through_casts(graph: GraphView, node: Node | None) -> Node | None:
    """The first producer up the chain that is not Identity or a Cast to a float type (None: a Cast elsewhere)."""
    while node is not None and node.op_type in _PASS_THROUGH:
        if node.op_type == "Cast" and not is_float(int(node.attributes.get("to", 0))):
            return None
        node = graph.producer(node.inputs[0])
    return node


def _matmul_shape(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...] | None:
    batch = broadcast_shape(a[:-2], b[:-2])
    return None if batch is None else tuple(batch) + (a[-2], b[-1])


def norm_product_bounds(ctx: NodeContext, rows: Interval, weights: Interval) -> Interval | None:
    """Bounds ``+-||row|| * ||column||`` of ``rows @ weights`` when the rows' L2 norm is known, else None.

    The row norm is a constant of the graph's other intervals (not differentiated through); the
    column norms follow ``weights`` differentiably.

    ``rows`` is the node's first input (..., K); ``weights`` (..., K, N) is any interval, its
    columns' norms taken over the largest magnitudes. The result has the matmul's output shape.
    """
    if ctx.graph is None or rows.shape is None or weights.shape is None or len(weights.shape) < 2:
        return None
    if len(rows.shape) < 2 or not is_float(rows.elem_type):
        return None
    norm = row_norm_bound(ctx.graph, ctx.node.inputs[0])
    if norm is None:
        return None
    count = rows.shape[-1]
    # column norms from the blocks (a block of k rows counts k times): no full-size weight copy
    if weights.is_point and len(weights.splits[-2]) == weights.shape[-2]:
        # an exact weight, one block per row: one pass in its own dtype, its sum of squares (non-negative
        # terms, accumulated in float32 at least) within a relative gamma of the real one
        columns = _column_norms(weights.stored_lower)
        # float32 squares below 2**-126 may be flushed: at most sqrt(K) * 2**-63 of norm lost
        columns = columns * (1 + arith.accumulation_gamma(weights.shape[-2] + 2, rows.elem_type)) \
            + math.sqrt(weights.shape[-2]) * 2.0**-63
    else:
        lo, hi = weights.lower, weights.upper
        magnitude = lo if weights.is_point else torch.maximum(lo.abs(), hi.abs())
        sizes = torch.tensor(blocks.block_sizes(weights.splits[-2], weights.shape[-2]), dtype=torch.float64)
        columns = (magnitude.to(torch.float64).square() * sizes.reshape(-1, 1)).sum(-2, keepdim=True).sqrt()
    bound = norm * columns * (1 + arith.accumulation_gamma(count + 2, rows.elem_type))
    bound = arith.nan_to(bound, torch.inf)
    column = Interval.create(-bound, bound, weights.splits[:-2] + ((0,), weights.splits[-1]),
                             weights.shape[:-2] + (1, weights.shape[-1]), rows.elem_type)
    out_shape = _matmul_shape(rows.shape, weights.shape)
    return column.broadcast_to(out_shape) if out_shape is not None else None


def _column_norms(stored: Tensor) -> Tensor:
    """The L2 norms (float64) of the columns of ``stored`` (..., K, N), from float32 squares summed in
    float32 in slices of rows (no full-size square or 16-bit conversion is materialised; ``vector_norm``
    along rows is several times slower)."""
    def slice_squares(start: int) -> Tensor:
        part = stored.narrow(-2, start, min(_ROW_SLICE, rows - start))
        wide = part if part.dtype in (torch.float32, torch.float64) else part.float()  # 16-bit: per slice
        return wide.square().sum(-2, keepdim=True)

    rows = stored.shape[-2]
    total = slice_squares(0)
    for start in range(_ROW_SLICE, rows, _ROW_SLICE):
        total += slice_squares(start)
    return total.to(torch.float64).sqrt()


_ROW_SLICE = 64
_MAX_DEPTH = 8


def row_norm_bound(graph: GraphView, name: str, depth: int = 0) -> float | None:
    """A bound of the L2 norm of every row (along the last axis) of tensor ``name``, or None.

    Known: LayerNormalization over the last axis (``sqrt(n)`` times max |scale|, plus ||bias||), and
    onnxruntime's SkipLayerNormalization; RMS normalisation, fused (RMSNormalization, onnxruntime's
    SimplifiedLayerNormalization and SkipSimplifiedLayerNormalization, over the last axis) or
    decomposed (see :func:`rms_magnitude_bound`); a norm-bounded row times a per-column
    scale, and Identity / float Cast / last-axis-preserving Reshape of those.
    """
    node = graph.producer(name)
    if node is None or depth > _MAX_DEPTH:
        return None
    out = graph.interval(name)
    if out is None or out.shape is None or not out.shape or not is_float(out.elem_type):
        return None
    unit = float_facts(out.elem_type).eps
    if node.op_type in _PASS_THROUGH:
        if node.op_type == "Cast" and not is_float(int(node.attributes.get("to", 0))):
            return None
        inner = row_norm_bound(graph, node.inputs[0], depth + 1)
        return None if inner is None else inner * (1 + 2 * unit)
    if node.op_type == "Reshape":
        source = graph.interval(node.inputs[0])
        if source is None or source.shape is None or not source.shape or source.shape[-1] != out.shape[-1]:
            return None
        return row_norm_bound(graph, node.inputs[0], depth + 1)
    if name != node.outputs[0]:
        return None
    if node.op_type == "LayerNormalization" and node.domain in _ONNX:
        return _layer_norm_row_norm(graph, node, 1, 2)
    if node.op_type == "SkipLayerNormalization" and node.domain == _MS:  # LayerNormalization of a sum
        return _layer_norm_row_norm(graph, node, 2, 3, -1)
    if (node.op_type, node.domain) in _RMS_NORMS:
        return _rms_norm_row_norm(graph, node, *_RMS_NORMS[node.op_type, node.domain])
    if node.op_type in ("Mul", "Div") and len(node.inputs) == 2:
        return _scaled_row_norm(graph, node, depth)
    return None


_ONNX = ("", "ai.onnx")
_MS = "com.microsoft"
# RMS normalizations (output 0 = x / sqrt(mean(x^2) + eps) * scale) -> (scale's input index, their
# axis: None where an attribute gives it)
_RMS_NORMS = {("RMSNormalization", ""): (1, None), ("RMSNormalization", "ai.onnx"): (1, None),
              ("SimplifiedLayerNormalization", ""): (1, None), ("SimplifiedLayerNormalization", "ai.onnx"): (1, None),
              ("SkipSimplifiedLayerNormalization", _MS): (2, -1)}


def _last_axis_normalized(graph: GraphView, node: Node, axis: int | None) -> Interval | None:
    """The normalized input's interval, when the node normalizes over its last axis alone."""
    x = graph.interval(node.inputs[0])
    if x is None or x.shape is None or not x.shape:
        return None
    rank = len(x.shape)
    chosen = int(node.attributes.get("axis", -1)) if axis is None else axis
    return x if chosen % rank == rank - 1 else None


def _rms_norm_row_norm(graph: GraphView, node: Node, scale_index: int, axis: int | None) -> float | None:
    """``||x / sqrt(mean(x^2) + eps)|| <= sqrt(n / c)`` over a row (c: the computed mean square's
    relative error, as in :mod:`ranum.ops.transformer`), times the largest |scale|."""
    x = _last_axis_normalized(graph, node, axis)
    if x is None:
        return None
    n = x.shape[-1]
    gamma = arith.accumulation_gamma(n + 2, x.elem_type)
    scale = _magnitudes(graph, node.inputs[scale_index])
    if gamma >= 1 or scale is None:
        return None
    unit = max(float_facts(x.elem_type).eps, float_facts(1).eps)
    return float(scale.detach().max()) * math.sqrt(n / (1 - gamma)) * (1 + 8 * unit)


def _layer_norm_row_norm(graph: GraphView, node: Node, scale_index: int, bias_index: int,
                         axis: int | None = None) -> float | None:
    x = _last_axis_normalized(graph, node, axis)
    if x is None:
        return None
    n = x.shape[-1]
    gamma = arith.accumulation_gamma(n + 4, x.elem_type)
    if gamma >= 1:
        return None
    unit = max(float_facts(x.elem_type).eps, float_facts(1).eps)
    z_norm = math.sqrt(n / (1 - gamma)) * (1 + 8 * unit)  # two-pass variance: see normalization.py
    scale = _magnitudes(graph, node.inputs[scale_index])
    if scale is None:
        return None
    bias = (_magnitudes(graph, node.inputs[bias_index])
            if len(node.inputs) > bias_index and node.inputs[bias_index] else None)
    bias_norm = 0.0
    if bias is not None:  # a broadcast bias counts once per normalized element
        bias_norm = float(bias.detach().square().sum().sqrt()) * math.sqrt(n / max(bias.numel(), 1))
    return (float(scale.detach().max()) * z_norm + bias_norm) * (1 + 4 * unit)


def _scaled_row_norm(graph: GraphView, node: Node, depth: int) -> float | None:
    """``row * s`` or ``row / s`` with s constant along the rows' last axis: the norm times max |s| (or 1/min |s|)."""
    out = graph.interval(node.outputs[0])
    unit = float_facts(out.elem_type).eps
    for row_pos in ((0, 1) if node.op_type == "Mul" else (0,)):
        # RMS normalisation: ||y|| = |c| ||x|| / sqrt(mean(x^2) + eps) obeys the bound of each |y_i|
        # (the mean may run over more axes than the last: a row's norm is at most the slice's).
        rms = _rms_bound(graph, node.inputs[row_pos], node.inputs[1 - row_pos], node.op_type == "Div")
        if rms is not None:
            return rms
        inner = row_norm_bound(graph, node.inputs[row_pos], depth + 1)
        other = graph.interval(node.inputs[1 - row_pos])
        if inner is None or other is None or other.shape is None or not is_float(other.elem_type):
            continue
        if any(d != 1 for d in other.shape[:-1]):
            continue  # a factor that changes across rows could scale one row more than another
        row = graph.interval(node.inputs[row_pos])
        if row is None or row.shape is None or not row.shape or row.shape[-1] != out.shape[-1]:
            continue  # a row broadcast along the last axis would repeat its elements
        lo, hi = other.lower.detach().to(torch.float64), other.upper.detach().to(torch.float64)
        if node.op_type == "Mul":
            return inner * float(torch.maximum(lo.abs(), hi.abs()).max()) * (1 + 2 * unit)
        # dividing: by the smallest |s| any element can take (0 when an interval holds 0)
        smallest = torch.where(lo > 0, lo, torch.where(hi < 0, -hi, torch.zeros_like(lo)))
        low = float(smallest.min())
        return None if low <= 0 else inner / low * (1 + 2 * unit)
    return None


def _magnitudes(graph: GraphView, name: str) -> Tensor | None:
    """Largest |value| of every element of a float tensor (full shape, float64), or None."""
    iv = graph.interval(name) if name else None
    if iv is None or iv.shape is None or not is_float(iv.elem_type):
        return None
    lo, hi = iv.full()
    if lo is hi:
        return lo.abs().to(torch.float64)
    return torch.maximum(lo.abs(), hi.abs()).to(torch.float64)
