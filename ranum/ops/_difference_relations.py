"""Relational refinements of a difference ``a - b``: bounds that follow from how b was computed from a.

Same values (one tensor, or equal computations: see :mod:`ranum.ops._same_values`, which also looks through
pass-through nodes first) have a difference of exactly 0.

Orders. ``x <= Max(..., x, ...)``, ``x <= ReduceMax(x)`` (where the maximum broadcasts back onto the
elements it was taken over: ``keepdims`` 1, a maximum of all elements, leading axes dropped, or the dropped
axes unsqueezed back; also taken in a wider float type and cast back, see
:func:`ranum.ops._same_values.unwidened_extreme`), and ``Min(..., x, ...) <= x``, ``ReduceMin(x) <= x``. So
``x - Max(s, x) <= 0`` (the stable exponent ``exp(x - max(s, x))`` of RWKV and of hand-written
log-sum-exp), ``x - ReduceMax(x) <= 0`` (a hand-written softmax), and the mirrored differences are
``>= 0``; for a binary Max, exactly ``min(0, x - s)`` (0 where s is always below x). A float subtraction of
ordered operands keeps the sign; with one operand finite it is never NaN. The same relation bounds a sum
below: ``S1 exp(P - M) + S2 exp(Q - M)`` with ``M = Max(P, Q)`` is at least ``min(S1, S2)`` for S1, S2 >= 0,
since one of its exponents is exactly 0 (RWKV's denominators; see :func:`rescaled_sum_floor`).
Likewise ``x - logsumexp(x)`` is at most a few units of rounding above 0 (see :func:`_log_sum_exp_gap`).
A segment maximum gathered back (a graph network's softmax) bounds its rows the same way (see
:mod:`ranum.ops._segment_relations`).

Differences of a running sum. With ``c = CumSum(y)`` along an axis (not exclusive, not reversed) and
``a`` the slice of c at one position ``j`` of that axis (every other axis whole), ``a - c`` at position
``i`` is ``y_(i+1) + ... + y_j`` for ``i <= j`` and minus ``y_(j+1) + ... + y_i`` above: bounded by the
sums of y's bounds over that stretch, however wide c's own bounds are (Mamba-2's chunk decay
``exp(A_cumsum[..., -1:] - A_cumsum)`` has increments ``A dt <= 0``, so its exponent is ``<= 0``). Likewise
every pair ``c_i - c_j`` of ``Unsqueeze(c, -1) - Unsqueeze(c, -2)`` (chunked linear attention's pairwise
decay, Qwen3-Next's, masked to -inf above the diagonal before its exp).
Rounding: every computed running sum is within ``gamma_n`` times the sum of its |terms| of the real one,
plus its rounding to the tensor's type; both running sums count (at ``i = j`` one stored value is
subtracted from itself: exactly 0). The subtraction's rounding is the interpreter's.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from ranum.domain import arith
from ranum.domain.dtypes import float_facts, is_float
from ranum.domain.interval import Interval, elementwise
from ranum.errors import InconsistentShapes
from ranum.graph.model import Node
from ranum.ops._base import GraphView, NodeContext
from ranum.ops._order_relations import ordered_by_structure
from ranum.ops._relations import meet, reduced_axes
from ranum.ops._same_values import passed_through, same_value, unwidened_extreme
from ranum.ops._segment_relations import segment_extreme
from ranum.ops._variance_relations import variance_floor

__all__ = ["at_most", "ordered_ratio_bounds", "refined_difference", "rescaled_sum_floor", "slice_plan"]

def refined_difference(ctx: NodeContext, a: Interval, b: Interval, out: Interval) -> Interval:
    """``out`` (the interval bounds of the float ``a - b``) met with what the relations above give."""
    graph = ctx.graph
    if graph is None or not is_float(out.elem_type) or out.shape is None or len(ctx.node.inputs) < 2:
        return out
    first, second = ctx.node.inputs[:2]
    if same_value(graph, first, second):
        zero = torch.zeros_like(out.lower)
        return out.with_bounds(zero, zero)
    order = _order(graph, first, second, a, b)
    if order is not None and (a.is_finite or b.is_finite):
        lo, hi = out.lower, out.upper
        if order < 0:
            out = out.with_bounds(torch.minimum(lo, torch.zeros_like(lo)), torch.minimum(hi, torch.zeros_like(hi)))
        else:
            out = out.with_bounds(torch.maximum(lo, torch.zeros_like(lo)), torch.maximum(hi, torch.zeros_like(hi)))
        out = _against_the_other_operand(graph, first, second, a, order, out)
    gap = _log_sum_exp_gap(graph, first, second, a)
    if gap is not None:
        cap = torch.full_like(out.upper, gap)
        out = out.with_bounds(torch.minimum(out.lower, cap), torch.minimum(out.upper, cap))
    floor = variance_floor(graph, first, second, out.elem_type)
    if floor is not None:
        out = out.with_bounds(out.lower.clamp(min=floor), out.upper.clamp(min=floor))
    bounds = _running_sum_difference(graph, first, second, out)
    if bounds is not None:
        lo, hi = out.full()
        out = Interval.from_full(torch.maximum(lo.to(torch.float64), bounds[0]),
                                 torch.minimum(hi.to(torch.float64), bounds[1]), out.elem_type, ctx.budget)
    return out


# ---------------------------------------------------------------------------------------- orders
def ordered_ratio_bounds(ctx: NodeContext, a: Interval, b: Interval) -> tuple[float, float] | None:
    """(0, 1) for a Div ``n / d`` with ``0 <= n <= d`` proven (a Tversky or Dice index, ``tp / (tp + fp + fn)``):
    the real quotient is at most 1, a float, so its rounding is too (``0 / 0`` is NaN, which the division's
    hazard reports); None elsewhere."""
    graph = ctx.graph
    if graph is None or len(ctx.node.inputs) != 2 or not a.numblocks or not b.numblocks or a.min() < 0 \
            or b.min() < 0:
        return None
    return (0.0, 1.0) if at_most(graph, ctx.node.inputs[0], ctx.node.inputs[1], a, b) else None


def _order(graph: GraphView, first: str, second: str, a: Interval, b: Interval) -> int | None:
    """-1 where ``first <= second`` always holds, 1 where ``first >= second``, else None."""
    if at_most(graph, first, second, a, b):
        return -1
    if at_most(graph, second, first, b, a):
        return 1
    return None


_ORDER_DEPTH = 6  # operations looked through by the structural rules (each level memoised)


def at_most(graph: GraphView, small: str, large: str, small_iv: Interval, large_iv: Interval,
            depth: int = _ORDER_DEPTH) -> bool:
    """Whether ``small <= large`` element-wise (after broadcasting) from how either was computed."""
    return same_value(graph, small, large) or _bounded_by(graph, large, small, large_iv, small_iv, "Max") or \
        _bounded_by(graph, small, large, small_iv, large_iv, "Min") or _extremes_of_one_set(graph, small, large) \
        or (depth > 0 and _by_structure(graph, small, large, depth))


def _by_structure(graph: GraphView, small: str, large: str, depth: int) -> bool:
    """:func:`ranum.ops._order_relations.ordered_by_structure`, its operands proven with one level less."""
    key = ("at-most", small, large, depth)
    if key not in graph.memo:
        graph.memo[key] = False  # a cycle through this pair proves nothing

        def operands_at_most(low: str, high: str) -> bool:
            low_iv, high_iv = graph.interval(low), graph.interval(high)
            return low_iv is not None and high_iv is not None and at_most(graph, low, high, low_iv, high_iv, depth - 1)

        graph.memo[key] = ordered_by_structure(graph, small, large, operands_at_most)
    return graph.memo[key]


def _extremes_of_one_set(graph: GraphView, small: str, large: str) -> bool:
    """Whether ``small`` is the minimum and ``large`` the maximum of the same values: ``Min(a, b)`` and
    ``Max(a, b)`` of the same operands, or ReduceMin and ReduceMax of one tensor over the same axes with
    the same attributes (a min-max scaling's ``max - min``), over no empty axis (whose minimum is +inf)."""
    low = graph.producer(passed_through(graph, small))
    high = graph.producer(passed_through(graph, large))
    if low is None or high is None or low.domain not in ("", "ai.onnx") or high.domain not in ("", "ai.onnx"):
        return False
    if (low.op_type, high.op_type) == ("Min", "Max"):
        return len(low.inputs) == len(high.inputs) == 2 and any(
            same_value(graph, low.inputs[0], first) and same_value(graph, low.inputs[1], second)
            for first, second in (high.inputs, high.inputs[::-1]))
    if (low.op_type, high.op_type) != ("ReduceMin", "ReduceMax") or not low.inputs \
            or not same_value(graph, low.inputs[0], high.inputs[0]) or not _same_reduction(graph, low, high):
        return False
    data = graph.interval(low.inputs[0])
    return data is not None and data.shape is not None and all(data.shape)


def _same_reduction(graph: GraphView, low: Node, high: Node) -> bool:
    """Whether two reductions take the same axes: equal attributes, and axes operands (opset 18) holding the
    same values."""
    return low.attributes == high.attributes and len(low.inputs) == len(high.inputs) and \
        all(same_value(graph, x, y) for x, y in zip(low.inputs[1:], high.inputs[1:]))


def _bounded_by(graph: GraphView, extreme: str, other: str, extreme_iv: Interval, other_iv: Interval,
                kind: str) -> bool:
    """Whether ``extreme`` is a Max (Min) of ``other`` with further operands, or its ReduceMax (ReduceMin)
    keeping the reduced axes."""
    node = graph.producer(passed_through(graph, extreme))
    if node is None or node.domain not in ("", "ai.onnx"):
        return False
    if node.op_type == kind:
        return any(same_value(graph, name, other) for name in node.inputs)
    if extreme_iv.shape is None or other_iv.shape is None:
        return False
    reduction = unwidened_extreme(graph, extreme)
    if reduction is not None and reduction[0].op_type == f"Reduce{kind}" and same_value(graph, reduction[1], other):
        # kept axes broadcast back onto the elements; so does a single element, the extreme of all of them, and
        # so do leading axes dropped (numpy broadcasting aligns the trailing ones)
        node, rank = reduction[0], len(other_iv.shape)
        if _keeps_dims(node):
            return len(extreme_iv.shape) == rank
        reduced = reduced_axes(graph, node, rank)
        return math.prod(extreme_iv.shape) == 1 or (reduced is not None and reduced == list(range(len(reduced)))
                                                    and len(extreme_iv.shape) == rank - len(reduced))
    if node.op_type == "Unsqueeze" and node.inputs:
        return _unsqueezed_reduction(graph, node, other, len(other_iv.shape), kind) and \
            len(extreme_iv.shape) == len(other_iv.shape)
    return segment_extreme(graph, node, other, other_iv, kind.lower())


def _unsqueezed_reduction(graph: GraphView, unsqueeze: Node, other: str, rank: int, kind: str) -> bool:
    """Whether ``unsqueeze`` puts back the axes that a ``Reduce{kind}`` of ``other`` without ``keepdims`` took
    (``x.max(dim).values.unsqueeze(dim)``): the same as keeping them."""
    reduction = graph.producer(passed_through(graph, unsqueeze.inputs[0]))
    if reduction is None or reduction.op_type != f"Reduce{kind}" or reduction.domain not in ("", "ai.onnx") \
            or _keeps_dims(reduction) or not same_value(graph, reduction.inputs[0], other):
        return False
    axes = unsqueeze.attributes.get("axes")
    if axes is None and len(unsqueeze.inputs) > 1:
        iv = graph.interval(unsqueeze.inputs[1])
        axes = [int(v) for v in iv.exact_value().reshape(-1).tolist()] if iv is not None and iv.is_exact else None
    reduced = reduced_axes(graph, reduction, rank)
    return axes is not None and reduced is not None and sorted({int(a) % rank for a in axes}) == reduced


def _against_the_other_operand(graph: GraphView, first: str, second: str, a: Interval, order: int,
                               out: Interval) -> Interval:
    """``x - Max(x, s) = min(0, x - s)`` and ``x - Min(x, s) = max(0, x - s)`` for a binary Max (Min): exactly 0
    where s is always below (above) x, as RWKV's first step has it (its running maximum starts at -1e38)."""
    node = graph.producer(passed_through(graph, second))
    kind = "Max" if order < 0 else "Min"
    if node is None or node.op_type != kind or node.domain not in ("", "ai.onnx") or len(node.inputs) != 2:
        return out
    partners = [other for own, other in (node.inputs, node.inputs[::-1]) if same_value(graph, own, first)]
    s = graph.interval(partners[0]) if partners else None
    if s is None or s.shape is None or not (a.is_finite and s.is_finite):
        return out
    gap = elementwise(arith.sub, [a, s], out.elem_type)
    clip = torch.minimum if order < 0 else torch.maximum
    zero = torch.zeros((), dtype=torch.float64)
    try:
        return meet(out, gap.with_bounds(clip(gap.lower, zero), clip(gap.upper, zero)))
    except InconsistentShapes:  # s broadcasts otherwise than the difference: no refinement
        return out


# ---------------------------------------------------------------------------------------- rescaled sums
def rescaled_sum_floor(ctx: NodeContext, out: Interval) -> Interval:
    """``out`` (a float Add's bounds) at least ``min(S_i)`` where the Add, with the Adds under it, sums terms
    ``S_i exp(P_i - M)`` (a bare ``exp`` has S = 1) with one finite ``M``, a Max (nested Maxes too) of operands
    each of which is some term's ``P_i``, and every S_i >= 0 and finite: the exponent of the term whose P is the
    maximum is exactly 0 (``x - x``, Max returning one of its operands), its exp exactly 1, and a float sum of
    non-negative terms is at least each term. This is the denominator of RWKV's stable recurrence (and of an
    online softmax), ``e1 * den + e2``, and of a soft minimum over three neighbours (soft-DTW, a hand-written
    log-sum-exp), which intervals alone let reach 0 once the exponentials' lower bounds underflow."""
    graph = ctx.graph
    if graph is None or not is_float(out.elem_type) or out.shape is None or len(ctx.node.inputs) != 2:
        return out
    terms = _exponential_terms(graph, ctx.node, _SUM_DEPTH)
    if terms is None or not all(same_value(graph, terms[0][1], term[1]) for term in terms[1:]):
        return out
    maximum = graph.interval(terms[0][1])
    if maximum is None or not maximum.is_finite:
        return out
    floors = [_coefficient_floor(graph, scale) for _, _, scale in terms]
    if any(f is None or f < 0 for f in floors):
        return out
    found = _covered(graph, terms[0][1], [(p, f) for (p, _, _), f in zip(terms, floors)], _SUM_DEPTH, top=True)
    if found is None or not found > 0:
        return out
    floor = torch.tensor(found, dtype=torch.float64)
    return out.with_bounds(torch.maximum(out.lower, floor), torch.maximum(out.upper, floor))


_SUM_DEPTH = 4  # Adds of terms, and Maxes of operands, looked through


def _exponential_terms(graph: GraphView, node: Node, depth: int) -> list[tuple[str, str, str | None]] | None:
    """(P, M, S) of every operand of an Add and of the Adds under it (see :func:`_rescaled_exponential`), or
    None at the first operand that is no rescaled exponential (every float Add asks: most stop at once)."""
    terms = []
    for name in node.inputs:
        inner = graph.producer(name)
        if depth > 0 and inner is not None and inner.op_type == "Add" and inner.domain in ("", "ai.onnx") \
                and len(inner.inputs) == 2:
            found = _exponential_terms(graph, inner, depth - 1)
        else:
            term = _rescaled_exponential(graph, name)
            found = None if term is None else [term]
        if found is None:
            return None
        terms.extend(found)
    return terms


def _covered(graph: GraphView, name: str, exponents: list[tuple[str, float]], depth: int, top: bool = False
             ) -> float | None:
    """The least coefficient of a term whose exponent is exactly 0 wherever the Max ``name`` (or, not ``top``,
    the operand ``name`` of an enclosing Max) is the maximum: a term whose P is ``name``, or else, for a Max,
    such a term for each of its operands (nested Maxes). None where some operand has none."""
    if not top:
        matched = [floor for p, floor in exponents if same_value(graph, p, name)]
        if matched:
            return max(matched)
    node = graph.producer(passed_through(graph, name))
    if depth <= 0 or node is None or node.op_type != "Max" or node.domain not in ("", "ai.onnx") \
            or not all(node.inputs):
        return None
    floors = [_covered(graph, operand, exponents, depth - 1) for operand in node.inputs]
    return None if any(f is None for f in floors) else min(floors)


def _rescaled_exponential(graph: GraphView, name: str) -> tuple[str, str, str | None] | None:
    """(P, M, S) where ``name`` is ``S * Exp(P - M)`` (either order), or (P, M, None) for ``Exp(P - M)``."""
    node = graph.producer(name)
    if node is not None and node.op_type == "Mul" and len(node.inputs) == 2:
        for exp_name, scale in (node.inputs, node.inputs[::-1]):
            found = _rescaled_exponential(graph, exp_name)
            if found is not None and found[2] is None:
                return found[0], found[1], scale
        return None
    if node is None or node.op_type != "Exp" or node.domain not in ("", "ai.onnx"):
        return None
    sub = graph.producer(node.inputs[0])
    if sub is None or sub.op_type != "Sub" or len(sub.inputs) != 2:
        return None
    return sub.inputs[0], sub.inputs[1], None


def _coefficient_floor(graph: GraphView, scale: str | None) -> float | None:
    """The least value of a non-negative, finite coefficient (1 for none), else None."""
    if scale is None:
        return 1.0
    iv = graph.interval(scale)
    if iv is None or iv.shape is None or iv.numblocks == 0 or not iv.is_finite or iv.min() < 0:
        return None
    return iv.min()


# ---------------------------------------------------------------------------------------- log-sum-exp
_LSE_ULPS = 16  # exp and log kernels are within a few units in the last place; 16 covers them with the sums


def _log_sum_exp_gap(graph: GraphView, first: str, second: str, a: Interval) -> float | None:
    """An upper bound of ``first - second`` where ``second`` is a log-sum-exp of ``first`` over rows that
    hold each element (keepdims 1): ``ReduceLogSumExp(x)``, or ``Log(ReduceSum(Exp(x - g))) + g`` as
    people and converters write it (tf2onnx's ``reduce_logsumexp``, with g its guarded maximum). Each sum
    holds ``exp(x_i - g)``, so ``log(sum) + g >= x_i`` in real arithmetic; the computed values differ by
    the roundings of the subtraction, exp, log and the sum (a sum of non-negative terms never rounds below
    one of them), at most ``_LSE_ULPS`` units of ``max |x| + max |g| + max |log(sum)| + 1``. None where the
    form does not match or a magnitude is not finite (``-inf`` from an underflowing sum is no bound)."""
    node = graph.producer(passed_through(graph, second))
    second_iv = graph.interval(second)
    if node is None or node.domain not in ("", "ai.onnx") or second_iv is None or not second_iv.is_finite:
        return None
    if not a.is_finite or a.shape is None or second_iv.shape is None or len(a.shape) != len(second_iv.shape):
        return None
    if node.op_type == "ReduceLogSumExp":
        if not (node.inputs and same_value(graph, node.inputs[0], first) and _keeps_dims(node)):
            return None
        magnitudes = [_magnitude(a), _magnitude(second_iv)]
    elif node.op_type == "Add" and len(node.inputs) == 2:
        magnitudes = None
        for log_name, shift in (node.inputs, node.inputs[::-1]):
            found = _log_of_shifted_sum(graph, log_name, first, shift)
            if found is not None:
                magnitudes = [_magnitude(a), _magnitude(graph.interval(shift)), found]
                break
        if magnitudes is None:
            return None
    else:
        return None
    if not all(m < float("inf") for m in magnitudes):
        return None
    unit = float_facts(a.elem_type).eps / 2
    return _LSE_ULPS * unit * (sum(magnitudes) + 1.0)


def _log_of_shifted_sum(graph: GraphView, name: str, x: str, shift: str) -> float | None:
    """``max |Log(...)|`` where ``name`` is ``Log(ReduceSum(Exp(Sub(x, shift))))`` keeping the reduced axes."""
    log = graph.producer(passed_through(graph, name))
    if log is None or log.op_type != "Log" or log.domain not in ("", "ai.onnx"):
        return None
    total = graph.producer(passed_through(graph, log.inputs[0]))
    if total is None or total.op_type != "ReduceSum" or not _keeps_dims(total):
        return None
    exp = graph.producer(passed_through(graph, total.inputs[0]))
    if exp is None or exp.op_type != "Exp":
        return None
    sub = graph.producer(passed_through(graph, exp.inputs[0]))
    if sub is None or sub.op_type != "Sub" or not same_value(graph, sub.inputs[0], x) \
            or not same_value(graph, sub.inputs[1], shift):
        return None
    iv, shift_iv = graph.interval(name), graph.interval(shift)
    if iv is None or shift_iv is None or not shift_iv.is_finite:
        return None
    return _magnitude(iv)


def _keeps_dims(node: Node) -> bool:
    return int(node.attributes.get("keepdims", 1)) == 1


def _magnitude(iv: Interval | None) -> float:
    return float("inf") if iv is None else iv.magnitude()


# ---------------------------------------------------------------------------------------- running sums
def _running_sum_difference(graph: GraphView, first: str, second: str, out: Interval) -> tuple[Tensor, Tensor] | None:
    """Full-shape bounds of ``first - second`` where first is one position of the running sum second, or
    second one position of the running sum first (the difference negated); else None."""
    found = _one_position_of_running_sum(graph, first, second)
    if found is not None:
        return _stretch_sums(graph, *found, out)
    found = _one_position_of_running_sum(graph, second, first)
    if found is not None:
        bounds = _stretch_sums(graph, *found, out)
        return None if bounds is None else (-bounds[1], -bounds[0])
    found = _outer_of_running_sum(graph, first, second)
    return None if found is None else _outer_stretch_sums(graph, *found, out)


def _outer_of_running_sum(graph: GraphView, first: str, second: str) -> tuple[Node, int, int, int] | None:
    """(the CumSum node, its axis, the output axes of i and of j) where ``first - second`` is ``c_i - c_j``
    over every pair of positions: ``Unsqueeze(c, a) - Unsqueeze(c, b)`` with each operand's new axis where the
    other keeps its running axis (chunked linear attention's pairwise decay ``cum.unsqueeze(-1) -
    cum.unsqueeze(-2)``)."""
    nodes = [graph.producer(name) for name in (first, second)]
    if any(node is None or node.op_type != "Unsqueeze" or not node.inputs for node in nodes):
        return None
    if not same_value(graph, nodes[0].inputs[0], nodes[1].inputs[0]):
        return None
    cumsum = graph.producer(nodes[0].inputs[0])
    data = graph.interval(nodes[0].inputs[0])
    if cumsum is None or cumsum.op_type != "CumSum" or data is None or data.shape is None or not data.shape:
        return None
    if int(cumsum.attributes.get("exclusive", 0)) or int(cumsum.attributes.get("reverse", 0)):
        return None
    axis_iv = graph.interval(cumsum.inputs[1]) if len(cumsum.inputs) > 1 else None
    inserted = [_one_inserted_axis(graph, node, len(data.shape) + 1) for node in nodes]
    if axis_iv is None or not axis_iv.is_exact or None in inserted:
        return None
    axis = int(axis_iv.exact_value().reshape(-1)[0]) % len(data.shape)
    running = [axis if axis < new else axis + 1 for new in inserted]  # where each operand's running axis lands
    if inserted[0] != running[1] or inserted[1] != running[0]:
        return None
    return cumsum, axis, running[0], running[1]


def _one_inserted_axis(graph: GraphView, node: Node, rank: int) -> int | None:
    """The one axis an Unsqueeze inserts (in its output of ``rank``), from its operand or attribute."""
    if len(node.inputs) > 1 and node.inputs[1]:
        axes_iv = graph.interval(node.inputs[1])
        axes = axes_iv.exact_value().reshape(-1).tolist() if axes_iv is not None and axes_iv.is_exact else None
    else:
        axes = list(node.attributes.get("axes", ()))
    return int(axes[0]) % rank if axes is not None and len(axes) == 1 else None


def _outer_stretch_sums(graph: GraphView, cumsum: Node, axis: int, i_axis: int, j_axis: int, out: Interval
                        ) -> tuple[Tensor, Tensor] | None:
    """Bounds of ``c_i - c_j`` over the running sum c of y: the sum of y over (j, i] for i >= j, minus the sum
    over (i, j] otherwise, each within the running sums' rounding; exactly 0 where i = j (one stored value
    subtracted from itself). In ``out``'s shape, i along ``i_axis`` and j along ``j_axis``."""
    terms = _summed_terms(graph, cumsum, axis)
    if terms is None:
        return None
    lo, hi, rate = terms
    low, high = lo.cumsum(-1), hi.cumsum(-1)
    n = lo.shape[-1]
    down = torch.arange(n).unsqueeze(-1) >= torch.arange(n)  # i >= j

    def pairs(sums: Tensor) -> Tensor:
        return sums.unsqueeze(-1) - sums.unsqueeze(-2)  # [..., i, j] = sums_i - sums_j

    d_lo = torch.where(down, pairs(low), pairs(high))
    d_hi = torch.where(down, pairs(high), pairs(low))
    magnitudes = torch.maximum(lo.abs(), hi.abs()).cumsum(-1)
    slack = torch.where(torch.eye(n, dtype=torch.bool), 0.0,
                        rate * (magnitudes.unsqueeze(-1) + magnitudes.unsqueeze(-2)))
    d_lo, d_hi = (torch.movedim(t, (-2, -1), (i_axis, j_axis)) for t in (d_lo - slack, d_hi + slack))
    try:
        return d_lo.expand(out.shape), d_hi.expand(out.shape)
    except RuntimeError:  # shapes that do not broadcast as expected: no relation
        return None


def _one_position_of_running_sum(graph: GraphView, picked: str, running: str) -> tuple[Node, int, int] | None:
    """(the CumSum node, its axis, the position j) where ``running`` is a CumSum's output and ``picked`` the
    Slice of it at position j of the summed axis, every other axis whole."""
    cumsum, pick = graph.producer(running), graph.producer(picked)
    if cumsum is None or pick is None or cumsum.op_type != "CumSum" or pick.op_type != "Slice":
        return None
    if int(cumsum.attributes.get("exclusive", 0)) or int(cumsum.attributes.get("reverse", 0)):
        return None
    if len(pick.inputs) < 3 or not same_value(graph, pick.inputs[0], running):
        return None
    data = graph.interval(running)
    axis_iv = graph.interval(cumsum.inputs[1]) if len(cumsum.inputs) > 1 else None
    if data is None or data.shape is None or axis_iv is None or not axis_iv.is_exact or not data.shape:
        return None
    axis = int(axis_iv.exact_value().reshape(-1)[0]) % len(data.shape)
    plan = slice_plan(graph, pick, data.shape)
    if plan is None:
        return None
    for dim, index in plan:
        whole = index.numel() == data.shape[dim] and bool((index == torch.arange(data.shape[dim])).all())
        if dim == axis and index.numel() != 1 or dim != axis and not whole:
            return None
    positions = [index for dim, index in plan if dim == axis]
    if len(positions) != 1:
        return None
    return cumsum, axis, int(positions[0][0])


def slice_plan(graph: GraphView, pick: Node, shape: Sequence[int]) -> list[tuple[int, Tensor]] | None:
    """The axes and indices a Slice node keeps of a tensor of ``shape`` (exact operands); None otherwise."""
    from ranum.ops.shape import Slice  # a rule module: imported here, as the rules import this one

    names = list(pick.inputs[1:5]) + [""] * (5 - len(pick.inputs))  # starts, ends, axes?, steps?
    operands = [graph.interval(name) if name else None for name in names]
    if any(name and iv is None for name, iv in zip(names, operands)):
        return None
    try:
        return Slice()._plan(shape, *operands)
    except Exception:  # noqa: BLE001 (an inexact or malformed operand: no relation)
        return None


def _summed_terms(graph: GraphView, cumsum: Node, axis: int) -> tuple[Tensor, Tensor, float] | None:
    """The running sum's terms' bounds (float64, the summed axis last) and the relative rounding of a
    difference of two running sums (each within ``gamma_n`` of its |terms|, plus its rounding to the type);
    None where a bound is infinite."""
    y = graph.interval(cumsum.inputs[0])
    if y is None or y.shape is None or not is_float(y.elem_type):
        return None
    lo, hi = (t.to(torch.float64).movedim(axis, -1) for t in y.full())
    if not bool(torch.isfinite(lo).all() and torch.isfinite(hi).all()):
        return None
    rate = arith.accumulation_gamma(lo.shape[-1], y.elem_type) + 2 * float_facts(y.elem_type).eps + 2.0**-50
    return lo, hi, rate


def _stretch_sums(graph: GraphView, cumsum: Node, axis: int, j: int, out: Interval) -> tuple[Tensor, Tensor] | None:
    """Bounds of ``c_j - c_i`` over the running sum c of y, in ``out``'s (broadcast) shape."""
    terms = _summed_terms(graph, cumsum, axis)
    if terms is None:
        return None
    lo, hi, rate = terms
    low_sums, high_sums = lo.cumsum(-1), hi.cumsum(-1)
    below = torch.arange(lo.shape[-1]) <= j  # positions i <= j: the sum over (i, j]; else minus over (j, i]
    at = slice(j, j + 1)
    d_lo = torch.where(below, low_sums[..., at] - low_sums, high_sums[..., at] - high_sums)
    d_hi = torch.where(below, high_sums[..., at] - high_sums, low_sums[..., at] - low_sums)
    magnitudes = torch.maximum(lo.abs(), hi.abs()).cumsum(-1)
    n = lo.shape[-1]
    # c_j - c_j subtracts one stored value from itself: exactly 0
    slack = torch.where(torch.arange(n) == j, 0.0, rate * (magnitudes + magnitudes[..., at]))
    d_lo, d_hi = (t.movedim(-1, axis) for t in (d_lo - slack, d_hi + slack))
    try:
        return d_lo.expand(out.shape), d_hi.expand(out.shape)
    except RuntimeError:  # shapes that do not broadcast as expected: no relation
        return None
