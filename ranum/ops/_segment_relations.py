"""A graph network's softmax over segments (torch_geometric's ``softmax(src, index)``, as exporters write it).

``x - Gather(ScatterElements<max>(D, E, x), g)`` is at most 0 where the scatter's indices give row e the
gather's index e on every column (by value where both are exact; otherwise one tensor in its order, the
scatter's an Expand of it as a column): each row's own value went into the maximum it reads back. The segment
sum of its exponentials, gathered back per row, is at least ``exp(0)`` (see :func:`segment_softmax_floor`).
"""

from __future__ import annotations

import math

import torch

from ranum.domain.dtypes import is_float
from ranum.domain.interval import Interval
from ranum.graph.model import Node
from ranum.ops._base import GraphView
from ranum.ops._same_values import passed_through, same_value

__all__ = ["EXP_OF_ZERO_FLOOR", "segment_extreme", "segment_softmax_floor"]

_DEPTH = 6  # reshapes looked through up to a tensor's source


def segment_extreme(graph: GraphView, gather: Node, other: str, other_iv: Interval, reduction: str) -> bool:
    """Whether ``gather`` picks, for each row ``e`` of ``other``, the slot of a ScatterElements with reduction
    max (min) along axis 0 that row ``e`` of ``other`` itself was scattered into: the segment maximum of a
    graph network's softmax over each node's incoming edges (torch_geometric's ``x - scatter_max(x,
    index)[index]``). The scatter's indices must give row e the gather's index e on every column."""
    scatter = _scatter(graph, gather, reduction)
    if scatter is None or not same_value(graph, scatter.inputs[2], other):
        return False
    picked = graph.interval(gather.outputs[0])
    if picked is None or picked.shape is None or other_iv.shape is None or tuple(picked.shape) != tuple(other_iv.shape):
        return False  # a broadcast would pair other elements
    return _rows_match_segments(graph, scatter, gather)


def _rows_pick_their_segments(graph: GraphView, indices: str, rows: str, indices_iv: Interval, rows_iv: Interval
                              ) -> bool:
    """Whether ``indices[e, ...] == rows[e]`` for every e and every trailing position: by value where both
    are exact, else both the same tensor in its order, ``indices`` broadcast along its trailing axes."""
    if indices_iv.is_exact and rows_iv.is_exact:
        picked = rows_iv.exact_value().reshape((-1,) + (1,) * (len(indices_iv.shape) - 1))
        return bool(torch.equal(indices_iv.exact_value(), picked.expand(indices_iv.shape)))
    source = _broadcast_rows_source(graph, indices)
    return source is not None and _in_order_source(graph, rows) == _in_order_source(graph, source)


def _broadcast_rows_source(graph: GraphView, name: str) -> str | None:
    """The tensor of one value per row that ``name`` repeats along its trailing axes (an Expand of a
    column), or ``name`` itself where it has a single axis."""
    iv = graph.interval(name)
    if iv is None or iv.shape is None:
        return None
    if len(iv.shape) == 1:
        return name
    node = graph.producer(name)
    if node is None or node.op_type != "Expand" or node.domain not in ("", "ai.onnx"):
        return None
    column = graph.interval(node.inputs[0])
    if column is None or column.shape is None or len(column.shape) != len(iv.shape) or \
            column.shape[0] != iv.shape[0] or any(n != 1 for n in column.shape[1:]):
        return None
    return node.inputs[0]


# exp(0) as an exp kernel computes it: 1 within a few float32 ulps (float16 and float64 give 1 exactly)
EXP_OF_ZERO_FLOOR = 1.0 - 2.0**-20


def segment_softmax_floor(graph: GraphView, gather: Node, out: Interval) -> Interval:
    """``out`` (the rows ``Gather(S, g)`` of a segment sum ``S = ScatterElements<add>(D, E, u)``, D >= 0) at least
    about 1 where ``u = Exp(x - Gather(ScatterElements<max>(D', E', x), g'))`` over the same segments and x is
    finite: a graph network's softmax denominator (torch_geometric's ``softmax(src, index)``). The segment
    of row e holds the row where x reaches the segment's maximum (D' is at most x there: a ScatterElements
    with reduction min of x over the same segments, or below x's bounds), whose term is ``exp(0)``, and a
    float sum of terms >= 0 is at least each of them."""
    if not is_float(out.elem_type) or out.min() >= EXP_OF_ZERO_FLOOR:
        return out
    total = _scatter(graph, gather, "add")
    if total is None or not _rows_fill_their_slots(graph, total, gather):
        return out
    base = graph.interval(total.inputs[0])
    exp = graph.producer(passed_through(graph, total.inputs[2]))
    if base is None or base.numblocks == 0 or base.min() < 0 or exp is None or exp.op_type != "Exp":
        return out
    sub = graph.producer(passed_through(graph, exp.inputs[0]))
    if sub is None or sub.op_type != "Sub" or sub.domain not in ("", "ai.onnx"):
        return out
    x = graph.interval(sub.inputs[0])
    peak = graph.producer(passed_through(graph, sub.inputs[1]))
    if x is None or not x.is_finite or peak is None or not segment_extreme(graph, peak, sub.inputs[0], x, "max"):
        return out
    highest = _scatter(graph, peak, "max")
    if not _same_segments(graph, highest.inputs[1], total.inputs[1]) or not _below_every_peak(graph, highest, x):
        return out
    floor = torch.full_like(out.lower, EXP_OF_ZERO_FLOOR)
    return out.with_bounds(torch.maximum(out.lower, floor), torch.maximum(out.upper, floor))


def _scatter(graph: GraphView, gather: Node, reduction: str) -> Node | None:
    """The ScatterElements along axis 0 with ``reduction`` whose rows ``gather`` (a Gather along axis 0) picks."""
    if gather.op_type != "Gather" or int(gather.attributes.get("axis", 0)) != 0 or len(gather.inputs) != 2:
        return None
    scatter = graph.producer(passed_through(graph, gather.inputs[0]))
    if scatter is None or scatter.op_type != "ScatterElements" or scatter.domain not in ("", "ai.onnx") or \
            int(scatter.attributes.get("axis", 0)) != 0 or len(scatter.inputs) != 3:
        return None
    return scatter if _reduction(scatter) == reduction else None


def _reduction(scatter: Node) -> str:
    chosen = scatter.attributes.get("reduction", "none")
    return chosen.decode() if isinstance(chosen, bytes) else str(chosen)


def _rows_match_segments(graph: GraphView, scatter: Node, gather: Node) -> bool:
    """Whether row e of the gather's result picks the slot that row e of the scatter's updates went to."""
    indices, rows = graph.interval(scatter.inputs[1]), graph.interval(gather.inputs[1])
    picked, updates = graph.interval(gather.outputs[0]), graph.interval(scatter.inputs[2])
    if any(iv is None or iv.shape is None for iv in (indices, rows, picked, updates)) or not indices.shape:
        return False
    if tuple(picked.shape) != tuple(updates.shape) or tuple(indices.shape) != tuple(updates.shape) or \
            math.prod(rows.shape) != indices.shape[0]:
        return False  # a broadcast would pair other elements
    return _rows_pick_their_segments(graph, scatter.inputs[1], gather.inputs[1], indices, rows)


def _rows_fill_their_slots(graph: GraphView, scatter: Node, gather: Node) -> bool:
    """Whether every element the gather picks is a slot that its own row's update went to: row e picks slot
    ``g[e]``, which row e filled on every column; the scatter's data (of a shape known at run time, a count
    of nodes) has no column beyond the updates' (a ConstantOfShape whose trailing sizes are theirs)."""
    indices, rows, updates = (graph.interval(name) for name in (scatter.inputs[1], gather.inputs[1],
                                                                 scatter.inputs[2]))
    if any(iv is None or iv.shape is None for iv in (indices, rows, updates)) or not indices.shape or \
            tuple(indices.shape) != tuple(updates.shape) or math.prod(rows.shape) != indices.shape[0]:
        return False
    if not _rows_pick_their_segments(graph, scatter.inputs[1], gather.inputs[1], indices, rows):
        return False
    data = graph.interval(scatter.inputs[0])
    if data is not None and data.shape is not None:
        return tuple(data.shape[1:]) == tuple(updates.shape[1:])
    filled = graph.producer(passed_through(graph, scatter.inputs[0]))
    sizes = graph.interval(filled.inputs[0]) if filled is not None and filled.op_type == "ConstantOfShape" else None
    if sizes is None or sizes.shape is None or sizes.shape != (len(updates.shape),):
        return False
    lo, hi = sizes.full()
    return bool(torch.equal(lo[1:], hi[1:])) and [int(n) for n in lo[1:]] == list(updates.shape[1:])


def _same_segments(graph: GraphView, first: str, second: str) -> bool:
    """Whether two scatters' indices give each row the same slot on every column."""
    a, b = graph.interval(first), graph.interval(second)
    if a is None or b is None or a.shape is None or tuple(a.shape) != tuple(b.shape):
        return False
    if a.is_exact and b.is_exact:
        return bool(torch.equal(a.exact_value(), b.exact_value()))
    if same_value(graph, first, second):
        return True
    one, other = _broadcast_rows_source(graph, first), _broadcast_rows_source(graph, second)
    return one is not None and other is not None and _in_order_source(graph, one) == _in_order_source(graph, other)


def _below_every_peak(graph: GraphView, highest: Node, x: Interval) -> bool:
    """Whether the data a segment maximum starts from is at most the segment's largest x: below x's bounds,
    or, on the slots the segments fill, a minimum with x itself or with values below x's bounds over the same
    segments (``include_self=False``, as torch exports it: a minimum with the lowest float first)."""
    start = graph.interval(highest.inputs[0])
    if start is not None and start.numblocks and start.max() <= x.min():
        return True
    lowest = graph.producer(passed_through(graph, highest.inputs[0]))
    if lowest is None or lowest.op_type != "ScatterElements" or lowest.domain not in ("", "ai.onnx") or \
            int(lowest.attributes.get("axis", 0)) != 0 or len(lowest.inputs) != 3 or _reduction(lowest) != "min" or \
            not _same_segments(graph, lowest.inputs[1], highest.inputs[1]):
        return False
    filler = graph.interval(lowest.inputs[2])
    return same_value(graph, lowest.inputs[2], highest.inputs[2]) or \
        (filler is not None and filler.numblocks > 0 and filler.max() <= x.min())


_IN_ORDER = frozenset({"Reshape", "Squeeze", "Unsqueeze", "Flatten", "Identity"})


def _in_order_source(graph: GraphView, name: str) -> str:
    """The tensor whose elements ``name`` holds in the same order (looking through reshapes)."""
    for _ in range(_DEPTH):
        node = graph.producer(name)
        if node is None or node.op_type not in _IN_ORDER or node.domain not in ("", "ai.onnx"):
            return name
        name = node.inputs[0]
    return name
