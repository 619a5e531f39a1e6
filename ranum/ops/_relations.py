"""Relational refinements: bounds that follow from how operands were computed, not only their ranges.

RMS normalisation ``y = x * c / sqrt(mean(x^2) + eps)`` (RMSNorm, T5LayerNorm), exported as
``Mul(x, Div(c, Sqrt(Add(ReduceMean(Pow(x, 2)), eps))))``, ``Mul(x, Reciprocal(Sqrt(...)))`` or
``Div(x, Sqrt(...))``: since ``x_i^2 <= n * mean(x^2)`` over the ``n`` reduced elements,
``|y_i| <= |c| * sqrt(n)``, whatever the range of x. Intervals alone only give ``|x| * c / sqrt(eps)``.
Rounding: the float mean of squares is at least ``(1 - gamma) * mean`` and each of pow, sqrt, div,
mul rounds once, so the bound is widened by ``1 / sqrt(1 - gamma)`` and a few units of roundoff.
"""

from __future__ import annotations

import math

from ranum.domain import arith
from ranum.domain.dtypes import float_facts, is_float
from ranum.domain.interval import Interval
from ranum.ops._base import NodeContext

__all__ = ["rms_magnitude_bound"]


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
    x_name, other = names[x_index], names[scale_index]
    factor = 1.0
    root = other
    if not divides:
        found = _reciprocal_of(ctx, other)
        if found is None:
            return None
        factor, root = found
    stats = _mean_square_under_sqrt(ctx, root)
    if stats is None or stats[0] != x_name:
        return None
    count = stats[1]
    x = ctx.graph.interval(x_name)
    if x is None or not is_float(x.elem_type) or count < 1:
        return None
    unit = float_facts(x.elem_type).eps
    gamma = arith.accumulation_gamma(count + 2, x.elem_type)
    if gamma >= 1:
        return None
    return abs(factor) * math.sqrt(count / (1 - gamma)) * (1 + 16 * unit)


def _exact_scalar(ctx: NodeContext, name: str) -> float | None:
    iv = ctx.graph.interval(name) if name else None
    if iv is None or not iv.is_exact or iv.lower.numel() != 1:
        return None
    return float(iv.lower.reshape(()))


def _reciprocal_of(ctx: NodeContext, name: str) -> tuple[float, str] | None:
    """``c / s`` or ``Reciprocal(s)`` with an exact scalar c: returns (c, s)."""
    node = ctx.graph.producer(name)
    if node is None:
        return None
    if node.op_type == "Reciprocal":
        return 1.0, node.inputs[0]
    if node.op_type == "Div" and len(node.inputs) == 2:
        c = _exact_scalar(ctx, node.inputs[0])
        return None if c is None else (c, node.inputs[1])
    return None


def _mean_square_under_sqrt(ctx: NodeContext, name: str) -> tuple[str, int] | None:
    """``Sqrt(Add(ReduceMean(x^2), eps))`` with eps >= 0 exact: returns (x, reduced count)."""
    sqrt = ctx.graph.producer(name)
    if sqrt is None or sqrt.op_type != "Sqrt":
        return None
    add = ctx.graph.producer(sqrt.inputs[0])
    mean_name = sqrt.inputs[0]
    if add is not None and add.op_type == "Add":
        for mean_pos, eps_pos in ((0, 1), (1, 0)):
            eps = _exact_scalar(ctx, add.inputs[eps_pos])
            if eps is not None and eps >= 0:
                mean_name = add.inputs[mean_pos]
                break
        else:
            return None
    mean = ctx.graph.producer(mean_name)
    if mean is None or mean.op_type != "ReduceMean" or not int(mean.attributes.get("keepdims", 1)):
        return None
    square = ctx.graph.producer(mean.inputs[0])
    x_name = _squared(ctx, square)
    if x_name is None:
        return None
    x = ctx.graph.interval(x_name)
    if x is None or x.shape is None:
        return None
    axes = _axes(ctx, mean, len(x.shape))
    if axes is None:
        return None
    return x_name, math.prod(x.shape[a] for a in axes)


def _squared(ctx: NodeContext, node) -> str | None:
    if node is None:
        return None
    if node.op_type == "Mul" and len(node.inputs) == 2 and node.inputs[0] == node.inputs[1]:
        return node.inputs[0]
    if node.op_type == "Pow" and _exact_scalar(ctx, node.inputs[1]) == 2.0:
        return node.inputs[0]
    return None


def _axes(ctx: NodeContext, mean, rank: int) -> list[int] | None:
    axes = mean.attributes.get("axes")
    if axes is None and len(mean.inputs) > 1 and mean.inputs[1]:
        iv: Interval | None = ctx.graph.interval(mean.inputs[1])
        if iv is None or not iv.is_exact:
            return None
        axes = [int(v) for v in iv.exact_value().reshape(-1).tolist()]
    if axes is None or len(axes) == 0:
        return list(range(rank)) if not int(mean.attributes.get("noop_with_empty_axes", 0)) else None
    return sorted({a % rank for a in axes})
