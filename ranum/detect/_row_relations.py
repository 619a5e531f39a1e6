"""Rows that keep a finite element, by how they were computed (intervals cannot say it).

Top-k masking, as sampling code writes it: ``x.masked_fill(x < t, -inf)`` with ``t`` one of the row's own
top-k values (``torch.topk(x, k).values[..., -1:]``), exported as ``Where(Less(x, t), -inf, x)``. The
element of the row equal to ``t`` is not below it, so it keeps its value: where x is finite, no row is
all -inf, and a softmax of it is not NaN however many elements are masked. The same holds for any value
of ``TopK(x)`` along the row's axis (largest or smallest), taken with one position kept along that axis
and every other axis whole, so that each row is compared with a value of its own.

Guarded masks, as Mask2Former's masked attention writes them: a mask ``p`` is cleared on every row it
would fill entirely (``mask[mask.sum(-1) == n] = False``), exported as ``And(p, Not(Equal(ReduceSum(p),
n)))`` with the reduction over the row and n its length. A row of p that is all True has the sum n, so its
guard is False and the And is all False: every row of the mask holds a False. ``Where(mask, -inf, y)`` with
y finite keeps y there, and so does a sum of it with a finite tensor, where that sum cannot overflow at the
kept element (a finite additive mask of the type's lowest value plus a large negative score is -inf).

Rows are matched by broadcasting: the Where's output may have more axes than its operands (a fill of shape
(4, 1, 1)), so a row along an axis of the output is a row along the operand's axis aligned with it from the
end, and none where the operand lacks that axis (each of its elements then fills a whole row).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from ranum.domain.interval import Interval
from ranum.graph.model import Node
from ranum.ops._same_values import passed_through, same_value

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
    return _keeps_finite(graph, env, name, axis) or _sum_keeps_finite(graph, env, name, axis)


def _sum_keeps_finite(graph: _Producers, env: Mapping[str, object], name: str, axis: int) -> bool:
    """``a + b`` with a finite and b's rows keeping a finite element (either order), its sum bounded above and
    finite wherever b keeps its element."""
    node = graph.producer(name)
    out = env.get(name)
    if node is None or node.op_type != "Add" or node.domain not in _ONNX or len(node.inputs) != 2:
        return False
    if not isinstance(out, Interval) or out.shape is None or not out.shape or out.max() == float("inf"):
        return False
    for finite, masked in (node.inputs, node.inputs[::-1]):
        a, b = env.get(finite), env.get(masked)
        if not (isinstance(a, Interval) and a.is_finite and isinstance(b, Interval) and b.shape is not None
                and len(b.shape) == len(out.shape)):
            continue
        where = passed_through(graph, masked)
        if _keeps_finite(graph, env, where, axis) and _sum_stays_finite(a, env.get(_kept_branch(graph, where)),
                                                                         out.elem_type):
            return True
    return False


def _kept_branch(graph: _Producers, where: str) -> str:
    """The operand a ``Where(condition, fill, kept)`` keeps where its condition fails."""
    node = graph.producer(where)
    return node.inputs[2] if node is not None and len(node.inputs) == 3 else ""


def _sum_stays_finite(a: Interval, kept: object, elem_type: int) -> bool:
    """Whether every ``a + k`` with k of ``kept``, rounded once to ``elem_type``, is finite: an element that the
    mask keeps must stay finite in the sum, or the row can still be all -inf."""
    if not isinstance(kept, Interval) or not kept.is_finite:
        return False
    low, high = a.min() + kept.min(), a.max() + kept.max()
    total = Interval.create(torch.tensor(low, dtype=torch.float64), torch.tensor(high, dtype=torch.float64), (),
                            None, elem_type)
    return total.widened(1.0).is_finite


def _keeps_finite(graph: _Producers, env: Mapping[str, object], name: str, axis: int) -> bool:
    """Whether ``name`` is ``Where(mask, fill, x)`` with x finite and every row along ``axis`` (of ``name``)
    holding an element where the mask fails: masked below its own top-k value, or a guarded mask."""
    where = graph.producer(name)
    if where is None or where.op_type != "Where" or where.domain not in _ONNX or len(where.inputs) != 3:
        return False
    condition, _, kept = where.inputs
    x = env.get(kept)
    if not isinstance(x, Interval) or x.shape is None or not x.shape or not x.numblocks or not x.is_finite:
        return False
    compare = graph.producer(condition)
    while compare is not None and compare.op_type == "Cast" and int(compare.attributes.get("to", 0)) == _BOOL:
        compare = graph.producer(compare.inputs[0])  # TorchScript casts the comparison to bool once more
    if compare is None or compare.domain not in _ONNX or len(compare.inputs) != 2:
        return False
    if compare.op_type == "And":
        mask_axis = _operand_axis(env, name, compare.outputs[0], axis)
        return mask_axis is not None and _guarded_mask(graph, env, compare.outputs[0], mask_axis)
    if compare.op_type == "Less":
        compared, threshold = compare.inputs
    elif compare.op_type == "Greater":
        threshold, compared = compare.inputs
    else:
        return False
    x_axis = _operand_axis(env, name, kept, axis)
    return x_axis is not None and _below_own_top_value(graph, env, compared, threshold, kept, x_axis)


def _below_own_top_value(graph: _Producers, env: Mapping[str, object], compared: str, threshold: str, x: str,
                         axis: int) -> bool:
    """Whether ``compared < threshold`` compares x, element for element, with one of its own top-k values
    along ``axis`` (of x), one per row: the condition then has x's shape and fails at that value."""
    iv, t = env.get(x), env.get(threshold)
    if not isinstance(iv, Interval) or iv.shape is None or not same_value(graph, compared, x):
        return False
    if not isinstance(t, Interval) or t.shape is None or len(t.shape) != len(iv.shape) or t.shape[axis] != 1 \
            or any(t.shape[d] != iv.shape[d] for d in range(len(iv.shape)) if d != axis):
        return False
    return _own_top_value(graph, env, threshold, x, axis)


def _operand_axis(env: Mapping[str, object], result: str, operand: str, axis: int) -> int | None:
    """The axis of ``operand`` that broadcasting (aligned from the end) lays along ``axis`` of ``result``; None
    where ranks are unknown or the operand lacks that axis (each of its elements then fills a whole row)."""
    result_rank, operand_rank = _rank(env, result), _rank(env, operand)
    if result_rank is None or operand_rank is None or not -result_rank <= axis < result_rank:
        return None
    along = axis % result_rank - (result_rank - operand_rank)
    return along if along >= 0 else None


def _guarded_mask(graph: _Producers, env: Mapping[str, object], name: str, axis: int) -> bool:
    """Whether ``name`` is ``And(p, Not(Equal(ReduceSum(Cast(p)), n)))``, the sum over p's ``axis`` (of
    ``name``) and n the length of p's own rows: a p that broadcasts along the row (length 1) counts to 1 at
    most, never to the row's length, so a guard comparing with that would never clear it."""
    node = graph.producer(name)
    if node is None or node.op_type != "And" or len(node.inputs) != 2:
        return False
    for mask, guard in (node.inputs, node.inputs[::-1]):
        mask_axis, shape = _operand_axis(env, name, mask, axis), _shape(env, mask)
        if mask_axis is not None and shape is not None and _rank(env, guard) == len(shape) \
                and _row_not_full(graph, env, guard, mask, mask_axis, shape[mask_axis]):
            return True
    return False


def _row_not_full(graph: _Producers, env: Mapping[str, object], name: str, mask: str, axis: int,
                  length: int) -> bool:
    """Whether ``name`` is ``Not(Equal(ReduceSum(Cast(mask)), length))`` over ``axis`` of mask (keepdims, or an
    Unsqueeze of that axis back)."""
    node = graph.producer(name)
    if node is not None and node.op_type == "Unsqueeze" and len(node.inputs) > 1:
        if _ints(env, node.inputs[1]) not in ([axis], [axis - _rank(env, name)]):
            return False
        node, kept = graph.producer(node.inputs[0]), False
    else:
        kept = True
    while node is not None and node.op_type == "Cast" and int(node.attributes.get("to", 0)) == _BOOL:
        node = graph.producer(node.inputs[0])  # TorchScript casts the guard to bool once more
    if node is None or node.op_type != "Not":
        return False
    equal = graph.producer(node.inputs[0])
    if equal is None or equal.op_type != "Equal" or len(equal.inputs) != 2:
        return False
    for summed, count in (equal.inputs, equal.inputs[::-1]):
        total = graph.producer(summed)
        if _ints(env, count) == [length] and total is not None and total.op_type == "ReduceSum" \
                and int(total.attributes.get("keepdims", 1)) == int(kept) and len(total.inputs) > 1 \
                and [a % _rank(env, mask) for a in (_ints(env, total.inputs[1]) or [])] == [axis]:
            counted = graph.producer(total.inputs[0])
            source = counted.inputs[0] if counted is not None and counted.op_type == "Cast" else total.inputs[0]
            if same_value(graph, source, mask):
                return True
    return False


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


def _shape(env: Mapping[str, object], name: str) -> tuple[int, ...] | None:
    iv = env.get(name)
    return tuple(iv.shape) if isinstance(iv, Interval) and iv.shape is not None else None


def _rank(env: Mapping[str, object], name: str) -> int | None:
    shape = _shape(env, name)
    return None if shape is None else len(shape)
