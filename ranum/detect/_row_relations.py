"""Rows that keep a finite element, by how they were computed (intervals cannot say it).

Top-k masking, as sampling code writes it: ``x.masked_fill(x < t, -inf)`` with ``t`` one of the row's own
top-k values (``torch.topk(x, k).values[..., -1:]``), exported as ``Where(Less(x, t), -inf, x)``. The
element of the row equal to ``t`` is not below it, so it keeps its value: where x is finite, no row is
all -inf, and a softmax of it is not NaN however many elements are masked. The same holds for any value
of ``TopK(x)`` along the row's axis (largest or smallest), taken with one position kept along that axis
and every other axis whole, so that each row is compared with a value of its own.
"""

from __future__ import annotations

from collections.abc import Mapping

from ranum.domain.interval import Interval
from ranum.graph.model import Node
from ranum.ops._difference_relations import same_value

__all__ = ["rows_keep_finite"]

_ONNX = ("", "ai.onnx")
_BOOL = 9  # TensorProto.BOOL


class _Producers:
    """The GraphView that :func:`same_value` reads: each tensor's producing node and interval."""

    def __init__(self, nodes: list[Node], env: Mapping[str, object]) -> None:
        self._of = {out: node for node in nodes for out in node.outputs if out}
        self._env = env

    def producer(self, name: str) -> Node | None:
        return self._of.get(name)

    def interval(self, name: str) -> Interval | None:
        value = self._env.get(name)
        return value if isinstance(value, Interval) else None


def rows_keep_finite(nodes: list[Node], env: Mapping[str, object], name: str, axis: int) -> bool:
    """Whether every row of tensor ``name`` along ``axis`` keeps a finite element (see the module doc)."""
    graph = _Producers(nodes, env)
    where = graph.producer(name)
    if where is None or where.op_type != "Where" or where.domain not in _ONNX or len(where.inputs) != 3:
        return False
    condition, _, kept = where.inputs
    x = env.get(kept)
    if not isinstance(x, Interval) or x.shape is None or not x.shape or not x.numblocks or not x.is_finite:
        return False
    axis = axis % len(x.shape)
    compare = graph.producer(condition)
    while compare is not None and compare.op_type == "Cast" and int(compare.attributes.get("to", 0)) == _BOOL:
        compare = graph.producer(compare.inputs[0])  # TorchScript casts the comparison to bool once more
    if compare is None or compare.domain not in _ONNX or len(compare.inputs) != 2:
        return False
    if compare.op_type == "Less":
        compared, threshold = compare.inputs
    elif compare.op_type == "Greater":
        threshold, compared = compare.inputs
    else:
        return False
    t = env.get(threshold)
    if not same_value(graph, compared, kept) or not isinstance(t, Interval) or t.shape is None \
            or len(t.shape) != len(x.shape) or t.shape[axis] != 1 \
            or any(t.shape[d] != x.shape[d] for d in range(len(x.shape)) if d != axis):
        return False
    return _own_top_value(graph, env, threshold, kept, axis)


def _own_top_value(graph: _Producers, env: Mapping[str, object], name: str, x: str, axis: int) -> bool:
    """Whether ``name`` is one position, along ``axis``, of ``TopK(x).values`` along that axis."""
    node = graph.producer(name)
    if node is not None and node.op_type == "Unsqueeze" and node.domain in _ONNX:
        axes = _ints(env, node.inputs[1]) if len(node.inputs) > 1 else list(node.attributes.get("axes", ()))
        rank = _rank(env, name)
        if rank is None or axes is None or [a % rank for a in axes] != [axis]:
            return False
        node, dropped = graph.producer(node.inputs[0]), True
    else:
        dropped = False
    if node is None or node.domain not in _ONNX or not node.inputs:
        return False
    source_rank = _rank(env, node.inputs[0])
    if source_rank is None:
        return False
    if node.op_type == "Gather":
        index = _ints(env, node.inputs[1])
        along = int(node.attributes.get("axis", 0)) % source_rank
        single = index is not None and len(index) == 1 and (_rank(env, node.inputs[1]) == 0) == dropped
        if not single or along != axis:
            return False
    elif node.op_type == "Slice" and not dropped:
        axes = _ints(env, node.inputs[3]) if len(node.inputs) > 3 and node.inputs[3] else None
        if axes is None or [a % source_rank for a in axes] != [axis]:
            return False
    else:
        return False
    top = graph.producer(node.inputs[0])
    return (top is not None and top.op_type == "TopK" and top.domain in _ONNX and top.outputs[0] == node.inputs[0]
            and int(top.attributes.get("axis", -1)) % source_rank == axis and same_value(graph, top.inputs[0], x))



def _ints(env: Mapping[str, object], name: str) -> list[int] | None:
    iv = env.get(name)
    if not isinstance(iv, Interval) or not iv.is_exact:
        return None
    return [int(v) for v in iv.exact_value().reshape(-1).tolist()]


def _rank(env: Mapping[str, object], name: str) -> int | None:
    iv = env.get(name)
    return len(iv.shape) if isinstance(iv, Interval) and iv.shape is not None else None
