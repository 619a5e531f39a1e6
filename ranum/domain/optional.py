"""Abstraction of an ONNX optional value: ``optional(tensor)`` or ``optional(sequence(tensor))``.

An :class:`OptionalValue` over-approximates every optional a tensor name can hold: the empty optional
when ``may_be_empty``, and every value inside ``value`` (an :class:`~ranum.domain.interval.Interval`
or a :class:`~ranum.domain.sequence.SequenceValue`) when ``value`` is given.

Invariants: ``value`` is None exactly when the optional is surely empty (then ``may_be_empty`` is
True: the value never stands for nothing); ``sequence`` says whether the held type is a sequence
(it is that of ``value`` when given, else the declared type). Concrete runs hold an optional as None
(empty) or as the value itself (a tensor, or a Python list of tensors).

This module imports no sequence code (sequence.py builds the ``Value`` union on top of it): values
of the two kinds are told apart by their type, joined by their own ``join``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from torch import Tensor

from ranum.domain.interval import Interval

if TYPE_CHECKING:
    from ranum.domain.sequence import SequenceValue

    Held = Interval | SequenceValue

__all__ = ["OptionalValue", "optional_grows", "optional_widened"]


@dataclass(frozen=True, eq=False)
class OptionalValue:
    """Bounds of an optional: whether it may be empty, and the bound of the value it may hold."""

    elem_type: int
    may_be_empty: bool
    value: Held | None
    sequence: bool = False

    def __post_init__(self) -> None:
        if self.value is None and not self.may_be_empty:
            raise ValueError("an optional that holds no value must be allowed to be empty")
        if self.value is not None and self.sequence == isinstance(self.value, Interval):
            raise ValueError("the optional's sequence flag must match the kind of the value it holds")

    # ----------------------------------------------------------------- construction
    @staticmethod
    def empty(elem_type: int, sequence: bool = False) -> OptionalValue:
        """The empty optional of a tensor (``sequence``: of a sequence) of ``elem_type``."""
        return OptionalValue(elem_type, True, None, sequence)

    @staticmethod
    def holding(value: Held, may_be_empty: bool = False) -> OptionalValue:
        """An optional holding a value inside ``value`` (or, when ``may_be_empty``, empty)."""
        return OptionalValue(value.elem_type, may_be_empty, value, not isinstance(value, Interval))

    @staticmethod
    def top(elem_type: int, shape: Sequence[int] | None = None, sequence: bool = False) -> OptionalValue:
        """Empty, or holding any tensor (of ``shape`` when given) or, for ``sequence``, any sequence."""
        from ranum.domain.sequence import SequenceValue  # sequence.py imports this module

        held = SequenceValue.top(elem_type, shape) if sequence else Interval.top(
            None if shape is None else tuple(shape), elem_type)
        return OptionalValue.holding(held, may_be_empty=True)

    # ----------------------------------------------------------------- queries
    @property
    def surely_empty(self) -> bool:
        return self.value is None

    @property
    def surely_holds(self) -> bool:
        return not self.may_be_empty

    def min(self) -> float:
        """Smallest lower bound of the held value (for reports); NaN when surely empty."""
        return float("nan") if self.value is None else self.value.min()

    def max(self) -> float:
        """Largest upper bound of the held value (for reports); NaN when surely empty."""
        return float("nan") if self.value is None else self.value.max()

    def contains(self, concrete: Tensor | list[Tensor] | None) -> bool:
        """Whether a concrete optional (None when empty, else a tensor or a list of tensors) is one of
        the optionals this value stands for."""
        if concrete is None:
            return self.may_be_empty
        if self.value is None or isinstance(concrete, list) == isinstance(self.value, Interval):
            return False
        if isinstance(concrete, list):
            return self.value.contains(concrete)
        shape = self.value.shape
        return (shape is None or tuple(concrete.shape) == shape) and bool(self.value.contains(concrete).all())

    # ----------------------------------------------------------------- lattice
    def join(self, other: OptionalValue | Held) -> OptionalValue:
        """Least upper bound. A plain value in ``other``'s place (only a node without a rule whose output
        type was not declared gives one) counts as possibly empty, possibly holding it."""
        if not isinstance(other, OptionalValue):
            other = OptionalValue.holding(other, may_be_empty=True)
        if self.value is None or other.value is None:
            value = other.value if self.value is None else self.value
        else:
            value = _join_held(self.value, other.value)
        sequence = self.sequence if value is None else not isinstance(value, Interval)
        return OptionalValue(self.elem_type, self.may_be_empty or other.may_be_empty, value, sequence)

    def __repr__(self) -> str:
        return f"OptionalValue(may_be_empty={self.may_be_empty}, value={self.value})"


def _join_held(a: Held, b: Held) -> Held:
    """Join of two held values; a tensor and a sequence join to the widest tensor interval (as in
    :func:`ranum.domain.sequence.join_values`)."""
    if type(a) is type(b):
        return a.join(b)
    return Interval.top(None, a.elem_type)


def optional_grows(old: OptionalValue, new: OptionalValue, grows: Callable[[Held, Held], bool]) -> bool:
    """Whether ``new`` (a join containing ``old``) admits an optional that ``old`` does not; ``grows``
    answers it for two held values."""
    if new.may_be_empty and not old.may_be_empty:
        return True
    if new.value is None:
        return False
    return old.value is None or grows(old.value, new.value)


def optional_widened(old: OptionalValue, new: OptionalValue, widened: Callable[[Held, Held], Held]) -> OptionalValue:
    """``new`` (containing ``old``) with its held value widened by ``widened`` where both hold one
    (emptiness is a single bit: it cannot grow forever)."""
    if old.value is None or new.value is None:
        return new
    return OptionalValue.holding(widened(old.value, new.value), may_be_empty=new.may_be_empty)
