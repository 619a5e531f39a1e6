"""A non-negative tensor divided by its own sum over some axes: each share lies in [0, 1].

``v / ReduceSum(v, axes, keepdims=1)`` (or without keepdims over leading axes: ``x / x.sum()``) with every
``v >= 0``: the sum of non-negative terms, added in any
order with rounding to nearest, is at least each of its terms (every partial sum is at least each of its
operands, and rounding is monotone), so each quotient is at most 1 (a correctly rounded division of a by b
>= a is at most 1). Interval arithmetic divides v's largest value by the sum's least and finds an overflow
where the sum may be tiny. Exporters write masked attention so (jax2onnx: ``softmax(s) * mask`` over its
sum), as well as normalised histograms, attention pooling and mixture weights.

The divisor may be raised: an added ``k >= 0``, a Clip or Max with ``k >= 0`` (each keeps it at least the
sum), and a guard ``Where(Greater(sum, k), sum, c)`` with ``c >= k >= 0``: where it selects c the sum is at
most k, so is each term, and the share at most ``k / c <= 1`` (0 / 0 when both are 0: NaN, not a bound).
"""

from __future__ import annotations

from ranum.domain.interval import Interval
from ranum.ops._base import GraphView, NodeContext
from ranum.ops._relations import exact_scalar, own_rows_shape, reduced_axes
from ranum.ops._rms_relations import raised
from ranum.ops._same_values import passed_through, same_value

__all__ = ["share_bounds"]

_DEPTH = 4


def share_bounds(ctx: NodeContext, a: Interval, b: Interval) -> tuple[float, float] | None:
    """(0, 1) where the Div's numerator is non-negative and its divisor is (at least) the numerator's sum
    over some axes, kept (see the module docstring); None elsewhere."""
    graph = ctx.graph
    if graph is None or a.shape is None or b.shape is None or not a.numblocks or a.min() < 0:
        return None
    total = _total(graph, ctx.node.inputs[1], _DEPTH)
    node = graph.producer(total) if total else None
    if node is None or node.op_type != "ReduceSum" or node.domain not in ("", "ai.onnx") \
            or not same_value(graph, node.inputs[0], ctx.node.inputs[0]):
        return None
    axes = reduced_axes(graph, node, len(a.shape))
    summed, keepdims = graph.interval(total), int(node.attributes.get("keepdims", 1))
    if not axes or summed is None or summed.shape != own_rows_shape(a.shape, axes, bool(keepdims)):
        return None
    return 0.0, 1.0


def _total(graph: GraphView, name: str, depth: int) -> str | None:
    """The sum a divisor is at least (through raises and guards), or None."""
    name = passed_through(graph, name)
    node = graph.producer(name) if depth > 0 else None
    if node is None or node.domain not in ("", "ai.onnx"):
        return None
    if node.op_type == "ReduceSum":
        return name
    if node.op_type == "Where" and len(node.inputs) == 3:
        return _guarded(graph, node.inputs, depth)
    inner, _ = raised(graph, node)
    return None if inner is None else _total(graph, inner, depth - 1)


def _guarded(graph: GraphView, inputs: list[str], depth: int) -> str | None:
    """``Where(Greater(s, k), s, c)`` with ``c >= k >= 0``: s (where it selects c, s <= k)."""
    condition, chosen, other = inputs
    test = graph.producer(condition)
    c = exact_scalar(graph, other)
    if test is None or test.op_type != "Greater" or len(test.inputs) != 2 or c is None:
        return None
    k = exact_scalar(graph, test.inputs[1])
    if k is None or not 0 <= k <= c or not same_value(graph, test.inputs[0], chosen):
        return None
    return _total(graph, chosen, depth - 1)
