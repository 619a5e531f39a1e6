"""Optional operators: Optional, OptionalHasElement, OptionalGetElement (opset 15; from opset 18 the
last two also take a plain tensor or sequence, and OptionalHasElement an absent operand).

Abstract values are :class:`~ranum.domain.optional.OptionalValue` (may it be empty, the bound of
the value it may hold); concrete values are None for an empty optional, else the held tensor or
list of tensors (a list is returned inside a tuple, see :mod:`ranum.ops._base`). These rules only
move values, so none rounds (``rounds = False``), and each takes operands of unknown shape itself
(``OWN_RULE``).

Invariants and conventions:

* An absent operand of OptionalHasElement is an empty optional (False); a plain tensor or sequence
  holds its value (True). An undecided optional gives the boolean interval [0, 1].
* OptionalGetElement of an empty optional is a runtime error in onnxruntime: the concrete rule raises
  ValueError; the abstract rule refuses a surely empty optional (UnsupportedOperator) and, for one
  that may be empty, gives the bound of the held value (a run that gets past the node held one).
* Optional without an operand builds the empty optional of its ``type`` attribute (a tensor or a
  sequence of tensors; the declared output type when the attribute is absent).
"""

from __future__ import annotations

import onnx
import torch
from onnx import TensorProto
from torch import Tensor

from ranum.domain.interval import Interval
from ranum.domain.optional import OptionalValue
from ranum.domain.sequence import SequenceValue
from ranum.errors import UnsupportedOperator
from ranum.ops._base import OWN_RULE, NodeContext, OpRule
from ranum.ops.registry import register

__all__ = ["Optional", "OptionalGetElement", "OptionalHasElement"]

BOOL = TensorProto.BOOL
Held = Interval | SequenceValue
Concrete = Tensor | list[Tensor] | None


class _OptionalRule(OpRule):
    rounds = False
    unknown_shapes = OWN_RULE


def _flag(value: bool) -> Interval:
    return Interval.point(torch.tensor(value), BOOL)


def _element_type(declared: onnx.TypeProto, op: str) -> tuple[int, bool]:
    """Element type and sequence flag of the ``type`` attribute: a tensor or a sequence of tensors."""
    kind = declared.WhichOneof("value")
    if kind == "tensor_type":
        return declared.tensor_type.elem_type, False
    if kind == "sequence_type" and declared.sequence_type.elem_type.WhichOneof("value") == "tensor_type":
        return declared.sequence_type.elem_type.tensor_type.elem_type, True
    raise UnsupportedOperator(f"{op}: element type {kind} is neither a tensor nor a sequence of tensors")


@register("Optional", since=15)
class Optional(_OptionalRule):
    """An optional holding ``input``, or the empty optional of element type ``type`` without one."""

    type: onnx.TypeProto | None = None

    def concrete(self, ctx: NodeContext, value: Concrete = None) -> tuple[Concrete]:
        return (value,)

    def abstract(self, ctx: NodeContext, value: Held | None = None) -> OptionalValue:
        if isinstance(value, OptionalValue):
            raise UnsupportedOperator("Optional: its operand is already an optional")
        if value is not None:
            return OptionalValue.holding(value)
        if self.type is not None:
            elem_type, sequence = _element_type(self.type, "Optional")
            return OptionalValue.empty(elem_type, sequence)
        return OptionalValue.empty(ctx.output_type(0, TensorProto.FLOAT), ctx.output_is_sequence(0))


@register("OptionalHasElement", since=15)
class OptionalHasElement(_OptionalRule):
    """A boolean scalar: whether the optional holds a value (a plain value does, an absent one does not)."""

    def concrete(self, ctx: NodeContext, value: Concrete = None) -> Tensor:
        return torch.tensor(value is not None)

    def abstract(self, ctx: NodeContext, value: OptionalValue | Held | None = None) -> Interval:
        if value is None:
            return _flag(False)
        if not isinstance(value, OptionalValue) or value.surely_holds:
            return _flag(True)
        if value.surely_empty:
            return _flag(False)
        return Interval.create(torch.tensor(0), torch.tensor(1), (), (), BOOL)


@register("OptionalGetElement", since=15)
class OptionalGetElement(_OptionalRule):
    """The value an optional holds (a plain tensor or sequence: itself); an empty optional is a runtime error."""

    def concrete(self, ctx: NodeContext, value: Concrete) -> Tensor | tuple[list[Tensor]]:
        if value is None:
            raise ValueError("OptionalGetElement: the optional is empty (a runtime error)")
        return (value,) if isinstance(value, list) else value

    def abstract(self, ctx: NodeContext, value: OptionalValue | Held) -> Held:
        if not isinstance(value, OptionalValue):
            return value
        if value.value is None:
            raise UnsupportedOperator("OptionalGetElement: the optional is always empty (a runtime error in "
                                      "onnxruntime)")
        return value.value
