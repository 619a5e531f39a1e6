"""Selections along an axis: ArgMax, ArgMin (int64 indices) and TopK (values and indices).

They only select values: exact, no rounding. An index's interval holds every position whose element can
reach the extremum.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from onnx import TensorProto
from torch import Tensor

from ranum.domain.dtypes import is_float
from ranum.domain.interval import Interval
from ranum.errors import UnsupportedOperator
from ranum.ops._base import COUNTS, NodeContext, OpRule
from ranum.ops._relations import reduced_axes
from ranum.ops._same_values import passed_through, same_value
from ranum.ops.reduce import _axis, _exact_ints
from ranum.ops.registry import register

__all__ = ["ArgMax", "ArgMin", "TopK"]

INF = math.inf

@dataclass(frozen=True)
class _ArgExtremum(OpRule):
    """ArgMax / ArgMin: int64 indices; candidates are the elements that can reach the extremum."""
    unknown_shapes = COUNTS

    axis: int = 0
    keepdims: int = 1
    select_last_index: int = 0
    largest = True

    def concrete(self, ctx: NodeContext, data: Tensor) -> Tensor:
        axis = _axis(self.axis, data.dim())
        x = data.flip(axis) if self.select_last_index else data
        idx = x.argmax(dim=axis, keepdim=True) if self.largest else x.argmin(dim=axis, keepdim=True)
        idx = data.shape[axis] - 1 - idx if self.select_last_index else idx
        return idx if self.keepdims else idx.squeeze(axis)

    def abstract(self, ctx: NodeContext, data: Interval) -> Interval:
        axis = _axis(self.axis, len(data.shape))
        if data.shape[axis] == 0:
            raise UnsupportedOperator(f"{self.op_type} over an empty axis")
        lo, hi = (b.to(torch.float64) for b in data.full())
        if not self.largest:
            lo, hi = -hi, -lo
        # a winner reaches every element, strictly those it wins the tie against (integers beyond
        # 2**53 may round to equal float64 values: no strictness there)
        rivals = _strict_rivals(lo, axis, bool(self.select_last_index))
        beats = hi > rivals if is_float(data.elem_type) else hi >= rivals
        cand = (hi >= lo.amax(dim=axis, keepdim=True)) & beats
        first, last = _candidate_range(cand, axis)
        shrink = (lambda t: t) if self.keepdims else (lambda t: t.squeeze(axis))
        return Interval.from_full(shrink(first), shrink(last), TensorProto.INT64, ctx.budget)


def _strict_rivals(lo: Tensor, axis: int, last: bool) -> Tensor:
    """Largest lower bound among the elements before (after, with ``last``) each element."""
    x = lo.flip(axis) if last else lo
    running = x.cummax(dim=axis).values
    pad = torch.full_like(x.narrow(axis, 0, 1), -INF)
    shifted = torch.cat([pad, running.narrow(axis, 0, x.shape[axis] - 1)], dim=axis)
    return shifted.flip(axis) if last else shifted


def _candidate_range(cand: Tensor, axis: int) -> tuple[Tensor, Tensor]:
    """Smallest and largest index along ``axis`` where ``cand`` holds (keepdim)."""
    n = cand.shape[axis]
    idx = torch.arange(n, dtype=torch.int64).reshape([-1 if a == axis else 1 for a in range(cand.dim())])
    first = torch.where(cand, idx, torch.full_like(idx, n)).amin(dim=axis, keepdim=True)
    last = torch.where(cand, idx, torch.full_like(idx, -1)).amax(dim=axis, keepdim=True)
    return first, last


@register("ArgMax")
class ArgMax(_ArgExtremum):
    """Index of the (first, or last with select_last_index) maximum along an axis."""


@register("ArgMin")
class ArgMin(_ArgExtremum):
    """Index of the (first, or last with select_last_index) minimum along an axis."""
    largest = False


@register("TopK", since=10)
class TopK(OpRule):
    """The k largest (or smallest) values along an axis and their int64 indices (ties: lower index
    first). Sorted outputs are order statistics, monotone in every element: sorted bounds bound them."""

    axis: int = -1
    largest: int = 1
    sorted: int = 1
    rounds = False

    def __post_init__(self) -> None:  # sorted=0: the runtime picks the order, so no concrete fast path
        object.__setattr__(self, "deterministic", bool(self.sorted))

    def concrete(self, ctx: NodeContext, x: Tensor, k: Tensor) -> tuple[Tensor, Tensor]:
        axis = _axis(self.axis, x.dim())
        values, idx = torch.sort(x, dim=axis, descending=bool(self.largest), stable=True)
        count = int(k.reshape(-1)[0])
        return values.narrow(axis, 0, count).clone(), idx.narrow(axis, 0, count).clone()

    def abstract(self, ctx: NodeContext, x: Interval, k: Interval) -> tuple[Interval, Interval]:
        axis = _axis(self.axis, len(x.shape))
        count = (_exact_ints(k, "k") or [0])[0]
        if not 0 <= count <= x.shape[axis]:
            raise UnsupportedOperator(f"TopK: k={count} outside [0, {x.shape[axis]}]")
        lo, hi = x.full()
        descending = bool(self.largest)
        s_lo = lo.sort(dim=axis, descending=descending).values.narrow(axis, 0, count)
        s_hi = hi.sort(dim=axis, descending=descending).values.narrow(axis, 0, count)
        if count == 0:
            empty = s_lo.to(torch.int64)
            return (Interval.from_full(s_lo, s_hi, x.elem_type), Interval.from_full(empty, empty, TensorProto.INT64))
        if not self.sorted:  # any order: each output lies in the hull of the top-k set
            s_lo = s_lo.amin(dim=axis, keepdim=True).expand_as(s_lo)
            s_hi = s_hi.amax(dim=axis, keepdim=True).expand_as(s_hi)
        if descending and self.sorted and _shifted_by_its_maximum(ctx, x, axis):
            s_lo, s_hi = s_lo.clone(), s_hi.clone()
            s_lo.select(axis, 0).fill_(0.0)  # the row's largest value less itself: exactly 0
            s_hi.select(axis, 0).fill_(0.0)
        kth = (s_lo if descending else s_hi).narrow(axis, count - 1, 1)
        first, last = _candidate_range(hi >= kth if descending else lo <= kth, axis)
        shape = s_lo.shape
        return (Interval.from_full(s_lo, s_hi, x.elem_type, ctx.budget),
                Interval.from_full(first.expand(shape), last.expand(shape), TensorProto.INT64, ctx.budget))


def _shifted_by_its_maximum(ctx: NodeContext, x: Interval, axis: int) -> bool:
    """Whether ``x`` is ``v - ReduceMax(v)`` over ``axis`` alone (keeping it), v finite: each row's largest
    value is then exactly 0 (its maximum less itself; ``a - b`` is 0 only where ``a == b``)."""
    graph = ctx.graph
    sub = graph.producer(passed_through(graph, ctx.node.inputs[0])) if graph is not None else None
    if sub is None or sub.op_type != "Sub" or sub.domain not in ("", "ai.onnx") or len(sub.inputs) != 2 \
            or not is_float(x.elem_type):
        return False
    peak = graph.producer(passed_through(graph, sub.inputs[1]))
    v = graph.interval(sub.inputs[0])
    if peak is None or peak.op_type != "ReduceMax" or peak.domain not in ("", "ai.onnx") or v is None \
            or v.shape is None or v.shape != x.shape or not v.is_finite \
            or not int(peak.attributes.get("keepdims", 1)) or not same_value(graph, peak.inputs[0], sub.inputs[0]):
        return False
    return reduced_axes(graph, peak, len(v.shape)) == [axis]
