"""A relational refinement of a sum ``z * a + (1 - z) * b`` with ``z`` in [0, 1]: a convex combination.

Such a sum lies between a and b, element by element, however wide z's interval is; interval
arithmetic alone adds the two products' bounds and widens by about ``|a| + |b|``. Recurrent state
updates are written so (a GRU cell as Keras and tf2onnx write it, ``h = z * h_prev + (1 - z) * h_new``,
run by a Loop: without the relation its bound grows by the candidate's range at every step), as are
highway layers, gated residuals and exponential moving averages.

Recognised: ``Add(Mul(z, a), Mul(Sub(1, z'), b))`` in either operand order of the Add and of each Mul,
where ``1`` is exactly 1, ``z'`` holds the same value as ``z`` (:func:`same_value`), and likewise
``Add(Mul(Cast(c), a), Mul(Cast(Not(c')), b))``: a select ``where(c, a, b)`` as tf2onnx lowers it (its
dropout, ``tf.where``, ``clip_by_norm``), where interval arithmetic gave the hull of 0, a and b. z's
bounds lie in
[0, 1] up to a small ``d`` (bounds rounded outward, e.g. a Sigmoid's ``1 + 2**-21``): with
``z = 1 + d`` the sum is ``a + d (a - b)``, so ``2 d M`` more, ``M = max(|a|, |b|)``. Rounding: the real
result lies in the hull of a and b; the computed one has four roundings (``1 - z``, two products, the
sum), each relative to a term whose magnitude is at most ``M`` (``|z| + |1 - z| = 1``), so it is within
``4 eps M`` of it (``eps`` the type's), plus an absolute underflow term per product.
"""

from __future__ import annotations

import torch

from ranum.domain.dtypes import float_facts
from ranum.domain.interval import Interval
from ranum.ops._base import GraphView, NodeContext
from ranum.ops._relations import either_order, meet_bounds, onnx_producer
from ranum.ops._same_values import exactly, same_value

__all__ = ["within_convex_hull"]


def within_convex_hull(ctx: NodeContext, out: Interval) -> Interval:
    """``out`` (the interval bounds of a float Add) met with the hull of a convex combination's two
    values, where the Add is one (see the module docstring)."""
    # each reading of the sum as z a + (1 - z) b holds (p t + (1 - p)(1 - t): z = p or z = t), so every hull does
    for (a_name, b_name), outside in either_order(ctx, out, _mixed) or ():
        out = _within_hull(ctx, out, a_name, b_name, outside)
    return out


def _within_hull(ctx: NodeContext, out: Interval, a_name: str, b_name: str, outside: float) -> Interval:
    a, b = ctx.graph.interval(a_name), ctx.graph.interval(b_name)
    if a is None or b is None or a.shape is None or b.shape is None:
        return out
    (la, ua), (lb, ub) = a.full(), b.full()
    try:
        lo = torch.minimum(la.to(torch.float64), lb.to(torch.float64))
        hi = torch.maximum(ua.to(torch.float64), ub.to(torch.float64))
    except RuntimeError:  # shapes that do not broadcast: no relation
        return out
    facts = float_facts(out.elem_type)
    slack = (4 * facts.eps + 2 * outside) * torch.maximum(lo.abs(), hi.abs()) + 4 * facts.subnormal
    return meet_bounds(out, lo - slack, hi + slack, ctx.budget)


_OUTSIDE = 2.0**-10  # how far outside [0, 1] z's bounds may reach


def _mixed(graph: GraphView, scaled: str, complement: str) -> list[tuple[tuple[str, str], float]]:
    """Every ((a, b), d) where ``scaled`` is ``z * a`` and ``complement`` is ``(1 - z) * b``, z's bounds within
    ``[-d, 1 + d]`` (none: an empty list)."""
    left, right = _product(graph, scaled), _product(graph, complement)
    if left is None or right is None:
        return []
    found = []
    for z, a in (left, left[::-1]):
        weight = graph.interval(z)
        if weight is None or weight.numblocks == 0:
            continue
        outside = max(0.0, -weight.min(), weight.max() - 1.0)
        if not outside <= _OUTSIDE:
            continue
        found.extend(((a, b), outside) for w, b in (right, right[::-1]) if _complement(graph, w, z))
    return found


def _complement(graph: GraphView, w: str, z: str) -> bool:
    """Whether ``w`` is ``1 - z``: ``Sub(1, z)``, or ``Cast(Not(c))`` where z is ``Cast(c)`` (or the mirror),
    the selection weights of a select lowered into arithmetic."""
    sub = onnx_producer(graph, w, "Sub")
    if sub is not None and len(sub.inputs) == 2:
        return exactly(graph, sub.inputs[0], 1.0) and same_value(graph, sub.inputs[1], z)
    w_cast, z_cast = onnx_producer(graph, w, "Cast"), onnx_producer(graph, z, "Cast")
    if w_cast is None or z_cast is None:
        return False
    for negated, plain in ((w_cast.inputs[0], z_cast.inputs[0]), (z_cast.inputs[0], w_cast.inputs[0])):
        inverse = onnx_producer(graph, negated, "Not")
        if inverse is not None and same_value(graph, inverse.inputs[0], plain):
            return True
    return False




def _product(graph: GraphView, name: str) -> tuple[str, str] | None:
    node = onnx_producer(graph, name, "Mul")
    return (node.inputs[0], node.inputs[1]) if node is not None and len(node.inputs) == 2 else None
