"""Sequence operators: build, read, edit, split into and concatenate from sequences of tensors.

Abstract values are :class:`~ranum.domain.sequence.SequenceValue` (per-position intervals for a
known length, else length bounds and one interval for every element); concrete values are lists of
tensors, returned inside a tuple (see :mod:`ranum.ops._base`). These rules only move tensors, so none
rounds (``rounds = False``), and each takes operands of unknown shape itself (``OWN_RULE``).

Invariants and conventions:

* Positions follow ONNX: negative ones count from the back; SequenceAt and SequenceErase accept
  ``[-n, n - 1]``, SequenceInsert ``[-n, n]``. A position outside that range is a runtime error in
  onnxruntime (no value): abstract rules join over the valid positions only, and refuse a node
  whose position is always out of range; concrete rules raise IndexError (ValueError for other
  runtime errors: concatenating an empty sequence, mapping over sequences of different lengths).
* An inexact position over a sequence of known length gives, at each output position, the join of
  the tensors that may land there; over a sequence of unknown length, the element bound.
* SplitToSequence with an exact split and a known input shape is exact; otherwise every piece
  lies in the input's hull (unknown shape), and the number of pieces is bounded.
* ConcatFromSequence of a known-length sequence of known, matching shapes is the Concat rule on its
  tensors (each unsqueezed first for ``new_axis=1``); otherwise the result has an unknown shape and
  lies in the hull of the element bound. An empty sequence is a runtime error (refused).
* SequenceMap runs its body once per position when every sequence operand has one known length,
  else once on the element bounds (the body's results then bound every output element).
* An operand that should be a sequence but is a tensor interval (the widest value of a node without
  a rule whose output type was not declared) is taken as the widest sequence of its element type.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import torch
from onnx import TensorProto
from torch import Tensor

from ranum.domain.interval import Interval
from ranum.domain.sequence import SequenceValue
from ranum.errors import UnsupportedOperator
from ranum.graph.model import Graph
from ranum.ops._base import OWN_RULE, NodeContext, OpRule, SubgraphRunner, exact_ints
from ranum.ops.control import _runner
from ranum.ops.registry import register
from ranum.ops.shape import Concat, Slice, Squeeze, Unsqueeze

__all__ = [
    "ConcatFromSequence", "SequenceAt", "SequenceConstruct", "SequenceEmpty", "SequenceErase", "SequenceInsert",
    "SequenceLength", "SequenceMap", "SplitToSequence",
]

INT64 = TensorProto.INT64
_INT64_MAX = torch.iinfo(torch.int64).max


class _SequenceRule(OpRule):
    rounds = False
    unknown_shapes = OWN_RULE


# ------------------------------------------------------------------------------------ helpers
def _sequence(value: SequenceValue | Interval) -> SequenceValue:
    """A sequence operand; a tensor interval in its place (the widest value of a node without a rule
    whose output type was not declared) stands for any sequence of its element type."""
    if isinstance(value, Interval):
        return SequenceValue.top(value.elem_type)
    return value


def _listed(value: object, op: str) -> list[Tensor]:
    if not isinstance(value, list):
        raise UnsupportedOperator(f"{op}: its sequence operand is not a list of tensors")
    return value


def _position_bounds(position: Interval | None, default: int) -> tuple[int, int]:
    """Smallest and largest position (``default`` when the operand is absent)."""
    if position is None:
        return default, default
    return int(position.lower.min()), int(position.upper.max())


def _positions(low: int, high: int, last: int, size: int, op: str) -> list[int]:
    """The non-negative positions that ``[low, high]`` can name among ``[-size, last]`` (negative ones
    count from the back: ``p + size``), sorted; refuses a range that holds no valid position."""
    found = sorted({p + size if p < 0 else p for p in range(max(low, -size), min(high, last) + 1)})
    if not found:
        raise UnsupportedOperator(f"{op}: position in [{low}, {high}] is always outside [{-size}, {last}] "
                                  "(a runtime error)")
    return found


def _concrete_position(position: Tensor | None, last: int, size: int, default: int, op: str) -> int:
    """A concrete position as a non-negative index; one outside ``[-size, last]`` raises IndexError (as
    indexing a tensor out of range does: onnxruntime fails there too)."""
    if position is None:
        return default
    p = int(position.reshape(-1)[0])
    if not -size <= p <= last:
        raise IndexError(f"{op}: position {p} outside [{-size}, {last}]")
    return p + size if p < 0 else p


def _joined(candidates: Sequence[Interval]) -> Interval:
    return functools.reduce(Interval.join, candidates)


def _unknown_shape(iv: Interval) -> Interval:
    """One interval of unknown shape holding every element of ``iv`` (0 for a tensor without elements)."""
    if iv.shape is None:
        return iv
    hull = iv.hull()
    if hull is None:
        zero = torch.zeros((), dtype=iv.lower.dtype)
        return Interval.create(zero, zero, (), None, iv.elem_type)
    return Interval.create(hull.lower, hull.upper, (), None, iv.elem_type)


def _index(value: int) -> Interval:
    return Interval.point(torch.tensor([value], dtype=torch.int64), INT64)


def _axis(axis: int, rank: int, op: str) -> int:
    if not -rank <= axis < rank:
        raise UnsupportedOperator(f"{op}: axis {axis} out of range for rank {rank}")
    return axis % rank


# ------------------------------------------------------------------------------------ building
@register("SequenceEmpty", since=11)
class SequenceEmpty(_SequenceRule):
    """An empty sequence of element type ``dtype``."""

    dtype: int = TensorProto.FLOAT

    def concrete(self, ctx: NodeContext) -> tuple[list[Tensor]]:
        return ([],)

    def abstract(self, ctx: NodeContext) -> SequenceValue:
        return SequenceValue.of((), self.dtype)


@register("SequenceConstruct", since=11)
class SequenceConstruct(_SequenceRule):
    """The sequence of its operands, in order."""

    def concrete(self, ctx: NodeContext, *tensors: Tensor) -> tuple[list[Tensor]]:
        return (list(tensors),)

    def abstract(self, ctx: NodeContext, *tensors: Interval) -> SequenceValue:
        return SequenceValue.of(tensors, tensors[0].elem_type if tensors else ctx.output_type(0, 1))


@register("SequenceInsert", since=11)
class SequenceInsert(_SequenceRule):
    """Inserts ``tensor`` before ``position`` (at the back when absent); positions in ``[-n, n]``."""

    def concrete(self, ctx: NodeContext, sequence: list[Tensor], tensor: Tensor,
                 position: Tensor | None = None) -> tuple[list[Tensor]]:
        items = _listed(sequence, "SequenceInsert")
        where = _concrete_position(position, len(items), len(items), len(items), "SequenceInsert")
        return (items[:where] + [tensor] + items[where:],)

    def abstract(self, ctx: NodeContext, sequence: SequenceValue, tensor: Interval,
                 position: Interval | None = None) -> SequenceValue:
        seq = _sequence(sequence)
        n = seq.length
        element = tensor if seq.element is None else seq.element.join(tensor)  # every tensor, wherever it lands
        if n is None:
            most = None if seq.max_length is None else seq.max_length + 1
            return SequenceValue.bounded(seq.min_length + 1, most, element, seq.elem_type)
        low, high = _position_bounds(position, n)
        places = _positions(low, high, n, n, "SequenceInsert")
        items = seq.items
        out = []
        for j in range(n + 1):  # output j holds items[j] (inserted after j), the tensor, or items[j - 1]
            candidates = [items[j]] if j < n and places[-1] > j else []
            candidates += [tensor] if j in places else []
            candidates += [items[j - 1]] if j > 0 and places[0] < j else []
            out.append(_joined(candidates))
        return SequenceValue.of(out, seq.elem_type, element)


@register("SequenceErase", since=11)
class SequenceErase(_SequenceRule):
    """Removes the tensor at ``position`` (the last one when absent); positions in ``[-n, n - 1]``."""

    def concrete(self, ctx: NodeContext, sequence: list[Tensor], position: Tensor | None = None
                 ) -> tuple[list[Tensor]]:
        items = _listed(sequence, "SequenceErase")
        if not items:
            raise IndexError("SequenceErase: the sequence is empty")
        where = _concrete_position(position, len(items) - 1, len(items), len(items) - 1, "SequenceErase")
        return (items[:where] + items[where + 1:],)

    def abstract(self, ctx: NodeContext, sequence: SequenceValue, position: Interval | None = None
                 ) -> SequenceValue:
        seq = _sequence(sequence)
        n = seq.length
        if n is None:
            most = None if seq.max_length is None else seq.max_length - 1
            return SequenceValue.bounded(max(seq.min_length - 1, 0), most, seq.element, seq.elem_type)
        low, high = _position_bounds(position, -1)
        places = _positions(low, high, n - 1, n, "SequenceErase")
        items = seq.items
        out = []
        for j in range(n - 1):  # output j holds items[j] (erased after j) or items[j + 1]
            candidates = [items[j]] if places[-1] > j else []
            candidates += [items[j + 1]] if places[0] <= j else []
            out.append(_joined(candidates))
        return SequenceValue.of(out, seq.elem_type)


# ------------------------------------------------------------------------------------ reading
@register("SequenceAt", since=11)
class SequenceAt(_SequenceRule):
    """The tensor at ``position`` (in ``[-n, n - 1]``)."""

    def concrete(self, ctx: NodeContext, sequence: list[Tensor], position: Tensor) -> Tensor:
        items = _listed(sequence, "SequenceAt")
        return items[_concrete_position(position, len(items) - 1, len(items), 0, "SequenceAt")]

    def abstract(self, ctx: NodeContext, sequence: SequenceValue, position: Interval) -> Interval:
        seq = _sequence(sequence)
        low, high = _position_bounds(position, 0)
        if seq.items is not None:
            n = len(seq.items)
            return _joined([seq.items[p] for p in _positions(low, high, n - 1, n, "SequenceAt")])
        longest = _INT64_MAX if seq.max_length is None else seq.max_length
        if seq.element is None or high < -longest or low > longest - 1:
            raise UnsupportedOperator(f"SequenceAt: position in [{low}, {high}] is always out of range")
        return seq.element


@register("SequenceLength", since=11)
class SequenceLength(_SequenceRule):
    """The number of tensors, an int64 scalar."""

    def concrete(self, ctx: NodeContext, sequence: list[Tensor]) -> Tensor:
        return torch.tensor(len(_listed(sequence, "SequenceLength")), dtype=torch.int64)

    def abstract(self, ctx: NodeContext, sequence: SequenceValue) -> Interval:
        seq = _sequence(sequence)
        most = _INT64_MAX if seq.max_length is None else seq.max_length
        return Interval.create(torch.tensor(seq.min_length), torch.tensor(most), (), (), INT64)


# ------------------------------------------------------------------------------------ splitting
def _piece_sizes(length: int, split: list[int] | None, scalar: bool, op: str) -> list[int]:
    """Sizes along the axis: 1 each without ``split``, chunks of ``split`` (the last one smaller) for a
    scalar, the given sizes (summing to ``length``) for a 1-D split."""
    if split is None:
        return [1] * length
    if any(s < 0 for s in split) or scalar and split[0] <= 0:
        raise UnsupportedOperator(f"{op}: split sizes {split} must be positive")
    if scalar:
        return [min(split[0], length - start) for start in range(0, length, split[0])]
    if sum(split) != length:
        raise UnsupportedOperator(f"{op}: split sizes {split} do not sum to the axis length {length}")
    return list(split)


@register("SplitToSequence", since=11)
class SplitToSequence(_SequenceRule):
    """Splits ``input`` along ``axis`` into a sequence (``keepdims`` only matters without ``split``)."""

    axis: int = 0
    keepdims: int = 1

    def concrete(self, ctx: NodeContext, x: Tensor, split: Tensor | None = None) -> tuple[list[Tensor]]:
        axis = _axis(self.axis, x.dim(), "SplitToSequence")
        scalar = split is not None and split.dim() == 0
        sizes = _piece_sizes(x.shape[axis], exact_ints(split, "split", "SplitToSequence"), scalar,
                             "SplitToSequence")
        pieces = list(torch.split(x, sizes, dim=axis)) if sizes else []
        if split is None and not self.keepdims:
            pieces = [p.squeeze(axis) for p in pieces]
        return (pieces,)

    def abstract(self, ctx: NodeContext, x: Interval, split: Interval | None = None) -> SequenceValue:
        if x.shape is not None and (split is None or split.is_exact):
            return self._exact_split(ctx, x, split)
        element = _unknown_shape(x)
        if split is not None and split.shape is not None and len(split.shape) == 1:
            return SequenceValue.of([element] * split.shape[0], x.elem_type)
        if x.shape is None:
            return SequenceValue.bounded(0, None, element, x.elem_type)
        length = x.shape[_axis(self.axis, len(x.shape), "SplitToSequence")]
        if split is None:
            return SequenceValue.bounded(length, length, element, x.elem_type)
        smallest, largest = max(int(split.lower.min()), 1), max(int(split.upper.max()), 1)
        return SequenceValue.bounded(-(-length // largest), max(-(-length // smallest), 1), element, x.elem_type)

    def _exact_split(self, ctx: NodeContext, x: Interval, split: Interval | None) -> SequenceValue:
        axis = _axis(self.axis, len(x.shape), "SplitToSequence")
        scalar = split is not None and split.shape == ()
        sizes = _piece_sizes(x.shape[axis], exact_ints(split, "split", "SplitToSequence"), scalar, "SplitToSequence")
        pieces, start = [], 0
        for size in sizes:
            piece = Slice().abstract(ctx, x, _index(start), _index(start + size), _index(axis))
            if split is None and not self.keepdims:
                piece = Squeeze().abstract(ctx, piece, _index(axis))
            pieces.append(piece)
            start += size
        return SequenceValue.of(pieces, x.elem_type)


# ------------------------------------------------------------------------------------ concatenating
@register("ConcatFromSequence", since=11)
class ConcatFromSequence(_SequenceRule):
    """Concatenates the tensors along ``axis`` (stacks them on a new ``axis`` when ``new_axis`` is 1)."""

    axis: int | None = None
    new_axis: int = 0

    def __post_init__(self) -> None:
        if self.axis is None:
            raise UnsupportedOperator("ConcatFromSequence: the axis attribute is required")

    def _axis_for(self, rank: int) -> int:
        return _axis(self.axis, rank + 1 if self.new_axis else rank, "ConcatFromSequence")

    def concrete(self, ctx: NodeContext, sequence: list[Tensor]) -> Tensor:
        items = _listed(sequence, "ConcatFromSequence")
        if not items:
            raise ValueError("ConcatFromSequence: the sequence is empty")
        axis = self._axis_for(items[0].dim())
        return torch.stack(items, dim=axis) if self.new_axis else torch.cat(items, dim=axis)

    def abstract(self, ctx: NodeContext, sequence: SequenceValue) -> Interval:
        seq = _sequence(sequence)
        if seq.element is None:
            raise UnsupportedOperator("ConcatFromSequence: the sequence is always empty (a runtime error)")
        items = seq.items
        if items is not None and self._concatenable(items):
            axis = self._axis_for(len(items[0].shape))
            if self.new_axis:
                items = [Unsqueeze().abstract(ctx, item, _index(axis)) for item in items]
            return Concat(axis=axis).abstract(ctx, *items)
        return _unknown_shape(seq.element)

    def _concatenable(self, items: Sequence[Interval]) -> bool:
        """Whether every shape is known and all agree (but on ``axis``, without ``new_axis``)."""
        shapes = [item.shape for item in items]
        if any(s is None for s in shapes) or len({len(s) for s in shapes}) != 1:
            return False
        axis = self._axis_for(len(shapes[0]))
        rest = {tuple(n for a, n in enumerate(s) if self.new_axis or a != axis) for s in shapes}
        return len(rest) == 1


# ------------------------------------------------------------------------------------ mapping
def _tensors(outs: Sequence[object]) -> list[Interval]:
    if not all(isinstance(out, Interval) for out in outs):
        raise UnsupportedOperator("SequenceMap: a body output is not a tensor")
    return list(outs)


@register("SequenceMap", since=17)
class SequenceMap(_SequenceRule):
    """Runs ``body`` on the ``k``-th tensor of each sequence operand (tensor operands as they are) and
    collects its outputs into sequences."""

    body: Graph | None = None

    def __post_init__(self) -> None:
        if self.body is None:
            raise UnsupportedOperator("SequenceMap: the body attribute is required")

    def _check(self, operands: int) -> Graph:
        if len(self.body.inputs) != operands:
            raise UnsupportedOperator(f"SequenceMap: body has {len(self.body.inputs)} typed inputs for "
                                      f"{operands} operands")
        return self.body

    def concrete(self, ctx: NodeContext, sequence: list[Tensor], *extra) -> tuple[list[Tensor], ...]:
        body, runner = self._check(1 + len(extra)), _runner(ctx)
        operands = [_listed(sequence, "SequenceMap"), *extra]
        count = len(operands[0])
        if any(isinstance(op, list) and len(op) != count for op in operands):
            raise ValueError("SequenceMap: sequence operands differ in length")
        columns: list[list[Tensor]] = [[] for _ in body.outputs]
        for k in range(count):
            outs = runner.concrete(body, [op[k] if isinstance(op, list) else op for op in operands])
            for column, value in zip(columns, outs):
                column.append(value)
        return tuple(columns)

    def abstract(self, ctx: NodeContext, sequence: SequenceValue, *extra) -> tuple[SequenceValue, ...]:
        body, runner = self._check(1 + len(extra)), _runner(ctx)
        operands = [_sequence(sequence), *extra]
        sequences = [op for op in operands if isinstance(op, SequenceValue)]
        lengths = {s.length for s in sequences}
        if len(lengths) == 1 and None not in lengths:
            return self._per_position(ctx, body, runner, operands, lengths.pop())
        low = max(s.min_length for s in sequences)
        highs = [s.max_length for s in sequences if s.max_length is not None]
        high = min(highs) if highs else None
        if high is not None and high < low:
            raise UnsupportedOperator("SequenceMap: the sequence operands never have one length (a runtime error)")
        if high == 0:
            return tuple(SequenceValue.of((), self._out_type(ctx, j, None)) for j in range(len(body.outputs)))
        outs = _tensors(runner.abstract(body, [op.element if isinstance(op, SequenceValue) else op
                                               for op in operands]))
        return tuple(SequenceValue.bounded(low, high, out, self._out_type(ctx, j, out)) for j, out in enumerate(outs))

    def _per_position(self, ctx: NodeContext, body: Graph, runner: SubgraphRunner, operands: list, count: int
                      ) -> tuple[SequenceValue, ...]:
        columns: list[list[Interval]] = [[] for _ in body.outputs]
        for k in range(count):
            outs = _tensors(runner.abstract(body, [op.items[k] if isinstance(op, SequenceValue) else op
                                                   for op in operands]))
            for column, value in zip(columns, outs):
                column.append(value)
        return tuple(SequenceValue.of(column, self._out_type(ctx, j, column[0] if column else None))
                     for j, column in enumerate(columns))

    def _out_type(self, ctx: NodeContext, index: int, value: Interval | None) -> int:
        default = value.elem_type if value is not None else self.body.outputs[index].elem_type or 1
        return ctx.output_type(index, default)
