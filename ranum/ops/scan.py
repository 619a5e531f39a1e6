"""Scan: a body run once per position of its scan inputs, through the run's subgraph runner.

The state variables are carried from one position to the next; each scan input gives the body one
slice per position (from its end for a reversed input), and each scan output stacks one element per
position on its output axis (last position first for a reversed output). Like Loop (see
:mod:`ranum.ops.control`, whose fixpoint iteration and scan-output helpers it shares) it computes
no value itself, so it does not round.

Invariants:

* The number of iterations is the (static) length of the scan axes, so every scan output has a
  static shape; a scan input of unknown shape is refused. Up to :data:`UNROLL_LIMIT` iterations the
  body runs once per position on the exact slice of each scan input's interval (taken from the end
  for a reversed input), the states are carried, and the elements are stacked (last iteration first
  for a reversed output), then moved to the output axis. Longer scans iterate the body as Loop does,
  on the hull of each scan input over its scan axis (it holds every slice): the fixpoint state bounds
  the final state and the body's outputs on it bound every element. No iteration: the states pass
  through and the scan outputs are empty.
* Scan-8 runs that scan per batch entry, over the first ``sequence_lens[b]`` positions (which must be
  exact); the positions past it hold zeros, as onnxruntime writes them.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence

import torch
from torch import Tensor

from ranum.domain.interval import Interval
from ranum.errors import UnsupportedOperator
from ranum.graph.model import Graph, TensorInfo
from ranum.ops._base import NodeContext, OpRule, SubgraphRunner, exact_ints
from ranum.ops.control import UNROLL_LIMIT, _empty_scan, _empty_tensor, _iterate, _repeat, _runner, _stack
from ranum.ops.registry import register

__all__ = ["Scan", "Scan8"]


# ----------------------------------------------------------------------------- Scan helpers
def _slice_at(x: Interval, axis: int, index: int) -> Interval:
    """``x`` at position ``index`` of ``axis``, the axis removed: the blocks holding it, exactly."""
    block = bisect.bisect_right(x.splits[axis], index) - 1
    return x.relaid(lambda t: t.select(axis, block), x.splits[:axis] + x.splits[axis + 1:],
                    x.shape[:axis] + x.shape[axis + 1:])


def _prefix(x: Interval, axis: int, count: int) -> Interval:
    """The first ``count`` positions of ``x`` along ``axis``."""
    starts = tuple(s for s in x.splits[axis] if s < count)
    return x.relaid(lambda t: t.narrow(axis, 0, len(starts)), x.splits[:axis] + (starts,) + x.splits[axis + 1:],
                    x.shape[:axis] + (count,) + x.shape[axis + 1:])


def _hull_along(x: Interval, axis: int) -> Interval:
    """One bound for every slice of ``x`` along ``axis`` (the axis removed; it must have positions)."""
    return Interval.create(x.lower.amin(axis), x.upper.amax(axis), x.splits[:axis] + x.splits[axis + 1:],
                           x.shape[:axis] + x.shape[axis + 1:], x.elem_type)


def _moved_axis(x: Interval, axis: int) -> Interval:
    """``x`` (a stacked scan output) with its leading axis moved to ``axis`` (negative: from the end)."""
    if x.shape is None:
        return x
    axis %= len(x.shape)
    order = list(range(1, axis + 1)) + [0] + list(range(axis + 1, len(x.shape)))
    return x.relaid(lambda t: t.movedim(0, axis), tuple(x.splits[a] for a in order),
                    tuple(x.shape[a] for a in order))


def _zero_padded(scan: Interval, total: int, budget: int) -> Interval:
    """A stacked scan output extended with zero elements to ``total`` positions (Scan-8's padding)."""
    count = 0 if scan.shape is None else scan.shape[0]
    if scan.shape is None or count == total:
        return scan
    zero = Interval.uniform(0, 0, scan.shape[1:], scan.elem_type)
    return _stack([_slice_at(scan, 0, t) for t in range(count)] + [zero] * (total - count), budget)


def _listed(values: tuple[int, ...] | None, count: int, what: str) -> tuple[int, ...]:
    """An attribute with one entry per tensor (absent or empty: all 0)."""
    values = tuple(values or (0,) * count)
    if len(values) != count:
        raise UnsupportedOperator(f"Scan: {what} has {len(values)} entries for {count} tensors")
    return values


def _axes(values: tuple[int, ...] | None, ranks: Sequence[int], what: str) -> list[int]:
    """Scan axes, each counted on its tensor's rank (negative: from the end)."""
    out = []
    for axis, rank in zip(_listed(values, len(ranks), what), ranks):
        if not -rank <= axis < rank:
            raise UnsupportedOperator(f"Scan: {what} entry {axis} is out of range for rank {rank}")
        out.append(axis % rank)
    return out


def _directions(values: tuple[int, ...] | None, count: int, what: str) -> list[bool]:
    """Scan directions: True where the tensor is scanned (or built) from its end."""
    listed = _listed(values, count, what)
    if any(d not in (0, 1) for d in listed):
        raise UnsupportedOperator(f"Scan: {what} must be 0 (forward) or 1 (reverse), got {list(listed)}")
    return [d == 1 for d in listed]


def _length(lengths: Sequence[int]) -> int:
    """The common length of the scan axes."""
    if len(set(lengths)) != 1:
        raise UnsupportedOperator(f"Scan: scan inputs have different lengths on their scan axes: {list(lengths)}")
    return lengths[0]


def _scan_concrete(runner: SubgraphRunner, body: Graph, states: Sequence[Tensor], xs: Sequence[Tensor],
                   axes: Sequence[int], backward: Sequence[bool]) -> tuple[list[Tensor], list[list[Tensor]]]:
    """The final states and, per scan output, its elements in iteration order."""
    n, length = len(states), xs[0].shape[axes[0]]
    state, columns = list(states), [[] for _ in body.outputs[n:]]
    for t in range(length):
        slices = [x.select(a, length - 1 - t if b else t) for x, a, b in zip(xs, axes, backward)]
        outs = runner.concrete(body, state + slices)
        state = list(outs[:n])
        for column, value in zip(columns, outs[n:]):
            column.append(value)
    return state, columns


def _scan_abstract(ctx: NodeContext, body: Graph, states: Sequence[Interval], xs: Sequence[Interval],
                   axes: Sequence[int], backward: Sequence[bool],
                   reverse: Sequence[bool]) -> tuple[list[Interval], list[Interval]]:
    """The final states and the scan outputs (elements stacked on a leading axis, ``reverse``: last
    iteration first) of a scan of at least one iteration: unrolled up to :data:`UNROLL_LIMIT`
    iterations, else iterated to a fixpoint on the hulls of the scan inputs."""
    runner, n, length = _runner(ctx), len(states), xs[0].shape[axes[0]]
    if length > UNROLL_LIMIT:
        hulls = [_hull_along(x, a) for x, a in zip(xs, axes)]
        state, outs = _iterate(lambda s: runner.abstract(body, s + hulls), states, 0)
        return state, [_repeat(element, length) for element in outs[n:]]
    state, columns = list(states), [[] for _ in body.outputs[n:]]
    for t in range(length):
        slices = [_slice_at(x, a, length - 1 - t if b else t) for x, a, b in zip(xs, axes, backward)]
        outs = runner.abstract(body, state + slices)
        state = list(outs[:n])
        for column, value in zip(columns, outs[n:]):
            column.append(value)
    return state, [_stack(c[::-1] if r else c, ctx.budget) for c, r in zip(columns, reverse)]


# ----------------------------------------------------------------------------- Scan
@register("Scan", since=9)
class Scan(OpRule):
    """``state..., scan inputs... -> final state..., scan outputs...``: per position of the scan axes,
    body(state..., one slice of each scan input) -> (state..., one element of each scan output)."""

    body: Graph | None = None
    num_scan_inputs: int = 0
    scan_input_axes: tuple[int, ...] | None = None
    scan_input_directions: tuple[int, ...] | None = None
    scan_output_axes: tuple[int, ...] | None = None
    scan_output_directions: tuple[int, ...] | None = None
    rounds = False

    def __post_init__(self) -> None:
        if self.body is None:
            raise UnsupportedOperator("Scan: the body attribute is required")
        if self.num_scan_inputs < 1:
            raise UnsupportedOperator(f"Scan: num_scan_inputs must be at least 1, got {self.num_scan_inputs}")

    def _split(self, inputs: Sequence) -> tuple[list, list]:
        """State variables and scan inputs, checked against the body's signature."""
        n, m = len(inputs) - self.num_scan_inputs, self.num_scan_inputs
        body = self.body
        if n < 0 or len(body.inputs) != n + m or len(body.outputs) < n or any(x is None for x in inputs):
            raise UnsupportedOperator(
                f"Scan: {len(inputs)} operands with num_scan_inputs={m} do not fit a body of {len(body.inputs)} "
                f"inputs and {len(body.outputs)} outputs (expected n + {m} inputs, at least n outputs)")
        return list(inputs[:n]), list(inputs[n:])

    def _outputs(self, n: int) -> tuple[list[TensorInfo], tuple[int, ...], list[bool]]:
        """The body's scan-output elements, their output axes and directions."""
        elements = self.body.outputs[n:]
        axes = _listed(self.scan_output_axes, len(elements), "scan_output_axes")
        return elements, axes, _directions(self.scan_output_directions, len(elements), "scan_output_directions")

    def _plan(self, ranks: Sequence[int]) -> tuple[list[int], list[bool]]:
        """Each scan input's axis (counted on its rank) and whether it is scanned from its end."""
        return (_axes(self.scan_input_axes, ranks, "scan_input_axes"),
                _directions(self.scan_input_directions, len(ranks), "scan_input_directions"))

    # ------------------------------------------------------------------------- concrete
    def concrete(self, ctx: NodeContext, *inputs: Tensor) -> tuple[Tensor, ...]:
        states, xs = self._split(inputs)
        axes, backward = self._plan([x.dim() for x in xs])
        _length([x.shape[a] for x, a in zip(xs, axes)])
        state, columns = _scan_concrete(_runner(ctx), self.body, states, xs, axes, backward)
        n = len(states)
        scans = [self._placed(ctx, n, j, column) for j, column in enumerate(columns)]
        return tuple(state) + tuple(scans)

    def _placed(self, ctx: NodeContext, n: int, j: int, column: list[Tensor]) -> Tensor:
        elements, axes, reverse = self._outputs(n)
        if not column:
            return _empty_tensor(ctx, elements[j], n + j, axes[j])
        stacked = torch.stack(column[::-1] if reverse[j] else column)
        return stacked.movedim(0, axes[j] % stacked.dim())

    # ------------------------------------------------------------------------- abstract
    def abstract(self, ctx: NodeContext, *inputs: Interval) -> tuple[Interval, ...]:
        states, xs = self._split(inputs)
        if any(x.shape is None for x in xs):
            raise UnsupportedOperator("Scan: a scan input has an unknown shape, so the number of iterations "
                                      "is unknown")
        axes, backward = self._plan([len(x.shape) for x in xs])
        length, n = _length([x.shape[a] for x, a in zip(xs, axes)]), len(states)
        elements, out_axes, reverse = self._outputs(n)
        if length == 0:
            return tuple(states) + tuple(_empty_scan(ctx, e, n + j, a) for j, (e, a) in
                                         enumerate(zip(elements, out_axes)))
        state, scans = _scan_abstract(ctx, self.body, states, xs, axes, backward, reverse)
        return tuple(state) + tuple(_moved_axis(s, a) for s, a in zip(scans, out_axes))


@register("Scan", since=8)
class Scan8(Scan):
    """Scan-8: operands ``sequence_lens`` (optional, one length per batch entry), state..., scan inputs...;
    axis 0 of every operand and output is the batch, the scan axis is 1, ``directions`` gives each scan
    input's direction and scan outputs are built forward. Past a batch entry's length, scan outputs hold
    zeros (onnxruntime's fill; the specification leaves them undefined). Lengths must be exact and
    between 1 and the scan axis's length (onnxruntime refuses others)."""

    directions: tuple[int, ...] | None = None

    def _batched(self, inputs: Sequence) -> tuple[list, list, int, int]:
        """States, scan inputs, the batch size and the scan axis's length, checked."""
        states, xs = self._split(inputs)
        shapes = [tuple(x.shape) if x.shape is not None else None for x in [*states, *xs]]
        if any(s is None or len(s) < (1 if i < len(states) else 2) for i, s in enumerate(shapes)):
            raise UnsupportedOperator("Scan-8: every operand needs a known shape with a batch axis (and a scan "
                                      f"axis for scan inputs), got {shapes}")
        if len({s[0] for s in shapes}) != 1 or shapes[0][0] < 1:
            raise UnsupportedOperator(f"Scan-8: operands need one common, non-zero batch size, got {shapes}")
        return states, xs, shapes[0][0], _length([x.shape[1] for x in xs])

    @staticmethod
    def _lengths(lens: Tensor | Interval | None, batch: int, most: int) -> list[int]:
        """Each batch entry's number of iterations (``lens`` absent: the scan axis's length)."""
        counts = exact_ints(lens, "sequence_lens", "Scan-8")
        counts = [most] * batch if counts is None else counts
        if len(counts) != batch or any(not 1 <= c <= most for c in counts):
            raise UnsupportedOperator(f"Scan-8: sequence_lens {counts} must give {batch} lengths between 1 and "
                                      f"{most}")
        return counts

    def concrete(self, ctx: NodeContext, lens: Tensor | None, *inputs: Tensor) -> tuple[Tensor, ...]:
        states, xs, batch, most = self._batched(inputs)
        backward = _directions(self.directions, len(xs), "directions")
        counts, n = self._lengths(lens, batch, most), len(states)
        runs = [_scan_concrete(_runner(ctx), self.body, [s[b] for s in states], [x[b, :counts[b]] for x in xs],
                               [0] * len(xs), backward) for b in range(batch)]
        final = [torch.stack([state[k] for state, _ in runs]) for k in range(n)]
        scans = [torch.stack([torch.stack(c[j] + [torch.zeros_like(c[j][0])] * (most - len(c[j])))
                              for _, c in runs]) for j in range(len(self.body.outputs) - n)]
        return tuple(final + scans)

    def abstract(self, ctx: NodeContext, lens: Interval | None, *inputs: Interval) -> tuple[Interval, ...]:
        states, xs, batch, most = self._batched(inputs)
        backward = _directions(self.directions, len(xs), "directions")
        counts, n = self._lengths(lens, batch, most), len(states)
        forward = [False] * (len(self.body.outputs) - n)
        runs = [_scan_abstract(ctx, self.body, [_slice_at(s, 0, b) for s in states],
                               [_prefix(_slice_at(x, 0, b), 0, counts[b]) for x in xs], [0] * len(xs), backward,
                               forward) for b in range(batch)]
        final = [_stack([state[k] for state, _ in runs], ctx.budget) for k in range(n)]
        scans = [_stack([_zero_padded(s[j], most, ctx.budget) for _, s in runs], ctx.budget)
                 for j in range(len(forward))]
        return tuple(final + scans)
