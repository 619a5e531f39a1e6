"""A floor for sums that pick one element per row through a one-hot mask.

tf2onnx lowers ``sparse_softmax_cross_entropy_with_logits`` to
``ReduceSum(Cast(Equal(targets, Range(0, C))) * exp(z - max))``: the target's (unnormalised) probability.
The mask's interval is [0, 1] element by element, so the sum's reached 0 and the log behind it was a
finding on every such loss. Where every integer the targets can take is among the class ids along the
summed axis, each row's mask holds a 1, and a float sum of non-negative terms is at least each of them.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ranum.domain.dtypes import is_float
from ranum.domain.interval import Interval
from ranum.ops._base import GraphView, NodeContext
from ranum.ops._same_values import passed_through

__all__ = ["one_hot_pick_floor"]


def one_hot_pick_floor(ctx: NodeContext, data: Interval, dims: tuple[int, ...], keepdims: bool) -> Tensor | None:
    """Per output element, a floor of a sum over one axis of ``Cast(Equal(u, r)) * e`` with ``e >= 0``: tf2onnx's
    sparse softmax cross-entropy picks the target's probability so (``u`` the integer targets, one per row,
    ``r`` the class ids 0..C-1 along the axis). Where every integer ``u`` can take appears among ``r``'s
    values along the axis, each row's mask holds a 1, so its float sum of non-negative terms is at least
    that term (a sum of non-negative terms never rounds below one of them): at least the row's smallest
    lower bound of ``e``. None where the form does not match."""
    graph = ctx.graph
    mul = graph.producer(ctx.node.inputs[0]) if graph is not None and ctx.node.inputs else None
    if mul is None or mul.op_type != "Mul" or mul.domain not in ("", "ai.onnx") or len(dims) != 1 or \
            len(mul.inputs) != 2:
        return None
    axis = dims[0]
    for mask, other in (mul.inputs, mul.inputs[::-1]):
        weights = graph.interval(other)
        if weights is None or weights.shape != data.shape or weights.min() < 0 or not _one_hot_along(graph, mask,
                                                                                                       data, axis):
            continue
        return weights.full()[0].to(torch.float64).amin(dim=axis, keepdim=keepdims)
    return None


def _one_hot_along(graph: GraphView, mask: str, data: Interval, axis: int) -> bool:
    """Whether ``mask`` is a float Cast of ``Equal(u, r)`` (data's shape) holding a 1 in every row along
    ``axis``: ``u`` integer and constant along it, ``r`` exact, varying only along it, and every integer in
    ``u``'s range among ``r``'s values."""
    cast = graph.producer(passed_through(graph, mask))
    if cast is None or cast.op_type != "Cast" or not is_float(int(cast.attributes.get("to", 0))):
        return False
    equal = graph.producer(passed_through(graph, cast.inputs[0]))
    if equal is None or equal.op_type != "Equal" or equal.domain not in ("", "ai.onnx"):
        return False
    rank = len(data.shape)
    for targets_name, ids_name in (equal.inputs, equal.inputs[::-1]):
        targets, ids = graph.interval(targets_name), graph.interval(ids_name)
        if targets is None or ids is None or targets.shape is None or ids.shape is None or \
                is_float(targets.elem_type) or is_float(ids.elem_type) or not ids.is_exact or \
                len(targets.shape) > rank or len(ids.shape) > rank:
            continue
        t_shape = (1,) * (rank - len(targets.shape)) + tuple(targets.shape)
        i_shape = (1,) * (rank - len(ids.shape)) + tuple(ids.shape)
        if t_shape[axis] != 1 or any(n != 1 for d, n in enumerate(i_shape) if d != axis) or \
                i_shape[axis] != data.shape[axis]:
            continue
        low, high = int(targets.min()), int(targets.max())
        values = set(ids.exact_value().reshape(-1).tolist())
        if high - low < len(values) and all(v in values for v in range(low, high + 1)):
            return True
    return False
