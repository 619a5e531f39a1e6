"""Abstraction of an ONNX sequence value (a list of tensors of one element type).

A :class:`SequenceValue` over-approximates every list of tensors the sequence can hold:

* known length ``n`` (``items`` is a tuple): the sequence has exactly ``n`` tensors, the ``k``-th
  inside ``items[k]``;
* unknown length (``items`` is None): the sequence has between ``min_length`` and ``max_length``
  tensors (``max_length`` None: no upper bound), every one of them inside ``element``.

Invariants: ``0 <= min_length <= max_length``; ``items`` is None exactly when the length is
uncertain (a certain length always takes the per-position form); ``element`` bounds every tensor
of the sequence (the join of ``items`` for a known length) and is None exactly when the sequence
is surely empty. Elements may differ in shape (their join then has an unknown shape). Concrete
runs hold a sequence as a Python list of tensors.

``Value`` is what the interpreter holds for a name: an Interval (tensor), a SequenceValue, or an
:class:`~ranum.domain.optional.OptionalValue` (an optional tensor or sequence).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from torch import Tensor

from ranum.domain.interval import Interval
from ranum.domain.optional import OptionalValue

__all__ = ["SequenceValue", "join_values", "top_like", "sequence_grows", "sequence_widened"]

@dataclass(frozen=True, eq=False)
class SequenceValue:
    """Bounds of a sequence: per position for a known length, else length bounds and one element bound."""

    elem_type: int
    items: tuple[Interval, ...] | None
    min_length: int
    max_length: int | None
    element: Interval | None

    def __post_init__(self) -> None:
        if self.min_length < 0 or self.max_length is not None and self.max_length < self.min_length:
            raise ValueError(f"bad sequence length bounds [{self.min_length}, {self.max_length}]")
        if (self.items is None) == (self.max_length == self.min_length):
            raise ValueError("a sequence of certain length must hold one interval per position")
        if (self.element is None) != (self.max_length == 0):
            raise ValueError("the element bound must be given exactly when the sequence may be non-empty")

    # ----------------------------------------------------------------- construction
    @staticmethod
    def of(items: Sequence[Interval], elem_type: int, element: Interval | None = None) -> SequenceValue:
        """A sequence of known length, position ``k`` inside ``items[k]``; ``element``: the join of
        ``items`` when the caller already has it (e.g. appending to a long sequence), else computed."""
        items = tuple(items)
        if element is None and items:
            element = functools.reduce(Interval.join, items)
        return SequenceValue(elem_type, items, len(items), len(items), element if items else None)

    @staticmethod
    def bounded(min_length: int, max_length: int | None, element: Interval | None, elem_type: int) -> SequenceValue:
        """A sequence of ``min_length`` to ``max_length`` (None: unbounded) tensors, each inside ``element``
        (a certain length takes the per-position form, every position inside ``element``)."""
        min_length = max(int(min_length), 0)
        if max_length is not None and max_length < min_length:
            raise ValueError(f"bad sequence length bounds [{min_length}, {max_length}]")
        if max_length == min_length:
            return SequenceValue.of((element,) * min_length if min_length else (), elem_type)
        if element is None:
            raise ValueError("a sequence that may hold tensors needs a bound for them")
        return SequenceValue(elem_type, None, min_length, None if max_length is None else int(max_length), element)

    @staticmethod
    def point(values: Sequence[Tensor], elem_type: int) -> SequenceValue:
        """The exact abstraction of a concrete list of tensors."""
        return SequenceValue.of([Interval.point(v, elem_type) for v in values], elem_type)

    @staticmethod
    def top(elem_type: int, shape: Sequence[int] | None = None) -> SequenceValue:
        """Any number of tensors (of ``shape`` when given), each with any value of the element type."""
        return SequenceValue.bounded(0, None, Interval.top(None if shape is None else tuple(shape), elem_type),
                                     elem_type)

    # ----------------------------------------------------------------- queries
    @property
    def length(self) -> int | None:
        """The number of tensors when it is certain, else None."""
        return None if self.items is None else len(self.items)

    def at(self, position: int) -> Interval:
        """Bound of the tensor at a valid (non-negative) position."""
        return self.element if self.items is None else self.items[position]

    def min(self) -> float:
        """Smallest lower bound over every element (for reports); NaN for a surely empty sequence."""
        return float("nan") if self.element is None else self.element.min()

    def max(self) -> float:
        """Largest upper bound over every element (for reports); NaN for a surely empty sequence."""
        return float("nan") if self.element is None else self.element.max()

    def contains(self, values: Sequence[Tensor]) -> bool:
        """Whether a concrete list of tensors is one of the sequences this value stands for."""
        if len(values) < self.min_length or self.max_length is not None and len(values) > self.max_length:
            return False
        return all(_holds(self.at(k), v) for k, v in enumerate(values))

    # ----------------------------------------------------------------- lattice
    def join(self, other: SequenceValue) -> SequenceValue:
        """Least upper bound: per position for equal known lengths, else length hull and element join."""
        if self.items is not None and other.items is not None and len(self.items) == len(other.items):
            return SequenceValue.of([a.join(b) for a, b in zip(self.items, other.items)], self.elem_type)
        highs = (self.max_length, other.max_length)
        high = None if None in highs else max(highs)
        elements = [e for e in (self.element, other.element) if e is not None]
        element = functools.reduce(Interval.join, elements) if elements else None
        return SequenceValue.bounded(min(self.min_length, other.min_length), high, element, self.elem_type)

    def __repr__(self) -> str:
        if self.items is not None:
            return f"SequenceValue(length={len(self.items)}, items={list(self.items)})"
        return f"SequenceValue(length=[{self.min_length}, {self.max_length}], element={self.element})"


Value = Interval | SequenceValue | OptionalValue


def _holds(bound: Interval, value: Tensor) -> bool:
    if bound.shape is not None and tuple(value.shape) != bound.shape:
        return False
    return bool(bound.contains(value).all())


def join_values(old: Value, new: Value) -> Value:
    """Join of two values of one tensor name. A tensor and a sequence (only a node without a rule, whose
    output type was not declared, gives a value of the wrong kind) join to the widest tensor interval:
    consumers of tensors read it soundly, sequence rules refuse it. An optional joined with a plain value
    may be empty or hold either (see :meth:`OptionalValue.join`)."""
    if isinstance(old, OptionalValue) or isinstance(new, OptionalValue):
        return old.join(new) if isinstance(old, OptionalValue) else new.join(old)
    if isinstance(old, SequenceValue) and isinstance(new, SequenceValue):
        return old.join(new)
    if isinstance(old, Interval) and isinstance(new, Interval):
        return old.join(new)
    return Interval.top(None, old.elem_type)


def top_like(value: Value) -> Value:
    """The widest value of the same kind, element type and (tensor) shape."""
    if isinstance(value, OptionalValue):
        held = value.value
        if held is None:
            return OptionalValue.top(value.elem_type, sequence=value.sequence)
        return OptionalValue.holding(top_like(held), may_be_empty=True)
    if isinstance(value, SequenceValue):
        shape = None if value.element is None else value.element.shape
        return SequenceValue.top(value.elem_type, shape)
    return Interval.top(value.shape, value.elem_type)


def sequence_grows(old: SequenceValue, new: SequenceValue, grows: Callable[[Interval, Interval], bool]) -> bool:
    """Whether ``new`` (a join containing ``old``) admits a sequence that ``old`` does not;
    ``grows`` answers it for two tensor intervals."""
    if old.items is not None and new.items is not None and len(old.items) == len(new.items):
        return any(grows(a, b) for a, b in zip(old.items, new.items))
    if new.min_length < old.min_length or _longer(new.max_length, old.max_length):
        return True
    if new.element is None:
        return False
    return old.element is None or grows(old.element, new.element)


def sequence_widened(old: SequenceValue, new: SequenceValue,
                     widened: Callable[[Interval, Interval], Interval]) -> SequenceValue:
    """``new`` (containing ``old``) with every growing bound moved to its extreme: a shrinking minimum
    length to 0, a growing maximum length to unbounded, growing element bounds by ``widened``."""
    if old.items is not None and new.items is not None and len(old.items) == len(new.items):
        return SequenceValue.of([widened(a, b) for a, b in zip(old.items, new.items)], new.elem_type)
    low = 0 if new.min_length < old.min_length else new.min_length
    high = None if _longer(new.max_length, old.max_length) else new.max_length
    element = new.element
    if old.element is not None and new.element is not None:
        element = widened(old.element, new.element)
    if element is None:
        return new
    return SequenceValue.bounded(low, high, element, new.elem_type)


def _longer(new: int | None, old: int | None) -> bool:
    """Whether a maximum length ``new`` exceeds ``old`` (None: unbounded)."""
    return old is not None and (new is None or new > old)
