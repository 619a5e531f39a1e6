"""A sparsemax's support is never empty: its first sorted element always passes the threshold test.

Sparsemax (TabNet's attentive transformer, entmax's ``sparsemax``) sorts a row descending into ``z`` and
keeps the positions ``k`` with ``k * z_k > cumsum(z)_k - 1``; the count of kept positions then divides the
threshold. Intervals hold both sides of that test over the whole row, so the count may be 0: a false
division by zero. At the first position of the running sum's axis, ``r_1 * z_1`` with ``r_1 = 1`` is
``z_1`` exactly, and so is the running sum's first element, so the test reads ``z_1 > fl(z_1 - c)`` for the
subtracted constant c > 0: true wherever c is above an ulp of ``|z_1|`` (``fl(z - c) <= z - c + ulp/2 < z``;
a row shifted by its maximum before sorting has ``z_1 = 0`` exactly, see TopK).
The comparison (``>``, ``>=``, or ``<`` and ``<=`` with the operands swapped) is then True at that position
of every row, and a sum of it is at least 1.
"""

from __future__ import annotations

import torch

from ranum.domain.dtypes import float_facts, is_float
from ranum.domain.interval import Interval
from ranum.ops._base import GraphView, NodeContext
from ranum.ops._relations import exact_scalar
from ranum.ops._same_values import passed_through, same_value

__all__ = ["first_position_holds"]


def first_position_holds(ctx: NodeContext, out: Interval) -> Interval:
    """``out`` (a comparison's bounds) set to True at the first position of a running sum's axis where the
    comparison is a sparsemax's threshold test (see the module docstring); else ``out`` as it is."""
    graph = ctx.graph
    op = ctx.node.op_type
    if graph is None or out.shape is None or len(ctx.node.inputs) != 2 or op not in _LARGER_FIRST:
        return out
    large, small = ctx.node.inputs if _LARGER_FIRST[op] else ctx.node.inputs[::-1]
    found = _threshold(graph, small)
    if found is None:
        return out
    z_name, axis, c = found
    z = graph.interval(z_name)
    if z is None or z.shape is None or z.shape != out.shape or not z.is_finite or not is_float(z.elem_type) \
            or not _first_scaled_by_one(graph, large, z_name, z.shape, axis):
        return out
    facts = float_facts(z.elem_type)
    first_lo, first_hi = (t.select(axis, 0) for t in z.full())  # z_1 of every row
    if not c > float(torch.maximum(first_lo.abs(), first_hi.abs()).max()) * facts.eps + facts.subnormal:
        return out
    lo, hi = (t.clone() for t in out.full())
    first = tuple(0 if a == axis else slice(None) for a in range(len(out.shape)))
    lo[first] = 1
    return Interval.from_full(lo, torch.maximum(hi, lo), out.elem_type)


_LARGER_FIRST = {"Greater": True, "GreaterOrEqual": True, "Less": False, "LessOrEqual": False}


def _threshold(graph: GraphView, name: str) -> tuple[str, int, float] | None:
    """(z, axis, c) where ``name`` is ``CumSum(z, axis) - c`` (a running sum from the first position on,
    c an exact scalar > 0)."""
    node = graph.producer(passed_through(graph, name))
    if node is None or node.op_type != "Sub" or node.domain not in ("", "ai.onnx") or len(node.inputs) != 2:
        return None
    c = exact_scalar(graph, node.inputs[1])
    cumsum = graph.producer(passed_through(graph, node.inputs[0]))
    if c is None or not c > 0 or cumsum is None or cumsum.op_type != "CumSum" or len(cumsum.inputs) != 2 \
            or int(cumsum.attributes.get("exclusive", 0)) or int(cumsum.attributes.get("reverse", 0)):
        return None
    axis, z = exact_scalar(graph, cumsum.inputs[1]), graph.interval(cumsum.inputs[0])
    if axis is None or z is None or z.shape is None or not -len(z.shape) <= axis < len(z.shape):
        return None
    return cumsum.inputs[0], int(axis) % len(z.shape), c


def _first_scaled_by_one(graph: GraphView, name: str, z: str, shape: tuple[int, ...], axis: int) -> bool:
    """Whether ``name`` is z, or ``r * z`` with an exact r that is 1 at the first position of ``axis``."""
    if same_value(graph, name, z):
        return True
    node = graph.producer(passed_through(graph, name))
    if node is None or node.op_type != "Mul" or node.domain not in ("", "ai.onnx") or len(node.inputs) != 2:
        return False
    for factor, other in (node.inputs, node.inputs[::-1]):
        r = graph.interval(factor)
        if r is None or not r.is_exact or r.shape is None or not same_value(graph, other, z):
            continue
        try:
            values = torch.broadcast_to(r.exact_value(), shape)
        except RuntimeError:  # r broadcasts z to a larger shape: the positions differ
            continue
        return bool((values.select(axis, 0) == 1).all())
    return False
