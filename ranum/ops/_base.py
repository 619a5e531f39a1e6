"""Base classes shared by operator rules: the rule protocol, the node context, unary helpers.

A rule is a frozen dataclass whose fields are the operator's ONNX attributes (with the spec's
defaults). ``concrete`` implements exact ONNX semantics on torch tensors; ``abstract`` maps input
intervals to output intervals soundly, for real-number results: the interpreter then rounds float
results outward by ``ulps`` units (when ``rounds``) and clamps them into ``output_range``.

Sequence values (:class:`~ranum.domain.sequence.SequenceValue` in abstract mode, lists of tensors
in concrete mode) reach only the rules that read them. A rule returns a sequence output inside a
tuple (one entry per output): a bare list would read as several outputs. Optional values
(:class:`~ranum.domain.optional.OptionalValue`; None or the held value in concrete mode) likewise
reach only the rules that read them (the optional operators, Identity, If, Loop).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Protocol

import torch
from torch import Tensor

from ranum.domain.dtypes import is_float
from ranum.domain.interval import Interval
from ranum.errors import RunTimeOperand

if TYPE_CHECKING:
    from ranum.graph.model import Graph, Node
    from ranum.ops.hazards import Hazard

__all__ = [
    "COPIES", "COPIES_ALL", "COUNTS", "ELEMENTWISE", "HULLS", "OWN_RULE", "GraphView", "NodeContext", "OpRule",
    "Outputs", "SubgraphRunner", "UnaryRule", "exact_ints", "full_shape", "inferred_shape", "structural",
]

Outputs = Interval | tuple[Interval, ...]

# How an operator treats an operand of unknown shape (downstream of a data-dependent shape: NonZero,
# NonMaxSuppression...): its outputs then have unknown shapes too, and one interval for all elements.
ELEMENTWISE = "elementwise"  # each output element is the operator on elements of its (broadcast) operands
COPIES = "copies"  # each output element is an element of the first operand (Reshape, Gather, Slice...)
COPIES_ALL = "copies-all"  # each output element is an element of one of the operands (Concat)
COUNTS = "counts"  # each output element is a size or an index: a non-negative int64 (Shape, NonZero...)
OWN_RULE = "own-rule"  # the rule's abstract semantics take operands of unknown shape themselves (sequences)
HULLS = "hulls"  # the rule's without_shapes bounds its outputs from operands of unknown shape (or gives up)


class SubgraphRunner(Protocol):
    """Evaluates a subgraph (If branch, Loop body) in the current run's environment (values may also be
    sequences: SequenceValue in abstract mode, lists of tensors in concrete mode)."""

    def abstract(self, graph: Graph, inputs: Sequence[Interval | None]) -> list[Interval]: ...

    def concrete(self, graph: Graph, inputs: Sequence[Tensor | None]) -> list[Tensor]: ...


class GraphView(Protocol):
    """Read access to the surrounding graph during an abstract run (for relational refinements)."""

    def producer(self, name: str) -> Node | None: ...

    def consumers(self, name: str) -> Sequence[Node]:
        """The nodes that read tensor ``name`` (as a direct input)."""
        ...

    def interval(self, name: str) -> Interval | None: ...

    def nan_free(self, name: str) -> bool:
        """Whether no run within the assumed ranges makes tensor ``name`` NaN (False where unsure)."""
        ...

    @property
    def memo(self) -> dict:
        """Facts derived from the intervals, kept for the rest of the run (e.g. norm bounds)."""
        ...


@dataclass(frozen=True)
class NodeContext:
    """What a rule may know about the node it evaluates, besides its input values."""

    node: Node
    opset: int
    input_types: tuple[int, ...]
    output_types: tuple[int, ...]
    output_shapes: tuple[tuple[int, ...] | None, ...]
    budget: int
    subgraphs: SubgraphRunner | None = None
    graph: GraphView | None = None
    # per output, whether its declared type is a sequence of tensors (then output_types/output_shapes
    # describe its tensors); empty when nothing was declared
    output_sequences: tuple[bool, ...] = ()
    # per output, whether its declared type is an optional (then the facts above describe the value it
    # may hold); empty when nothing was declared
    output_optionals: tuple[bool, ...] = ()
    # per input, its shape where shape inference knows every dimension statically (None elsewhere), given
    # to without_shapes only: an operand whose interval lost its shape (after a data-dependent index) may
    # still have a static one
    input_shapes: tuple[tuple[int, ...] | None, ...] = ()

    def same_input(self, first: int, second: int) -> bool:
        """Whether two operands surely hold the same value: one tensor, or equal computations (an exporter
        writes ``(x - y) * (x - y)`` as two Subs; see :mod:`ranum.ops._same_values`). Enables x - x = 0 and
        x * x >= 0."""
        names = self.node.inputs
        if first >= len(names) or second >= len(names) or not names[first] or not names[second]:
            return False
        if names[first] == names[second]:
            return True
        from ranum.ops._same_values import same_value  # a module built on this one

        return self.graph is not None and same_value(self.graph, names[first], names[second])

    def output_is_sequence(self, index: int = 0) -> bool:
        """Whether an output is declared as a sequence of tensors."""
        return index < len(self.output_sequences) and self.output_sequences[index]

    def output_is_optional(self, index: int = 0) -> bool:
        """Whether an output is declared as an optional tensor or optional sequence."""
        return index < len(self.output_optionals) and self.output_optionals[index]

    def output_type(self, index: int = 0, default: int = 0) -> int:
        """Declared element type of an output (``default`` when shape inference did not say)."""
        if index < len(self.output_types) and self.output_types[index]:
            return self.output_types[index]
        return default


class OpRule:
    """One ONNX operator: concrete and abstract semantics plus declared hazards."""

    op_type: ClassVar[str] = ""
    hazards: ClassVar[tuple[Hazard, ...]] = ()
    rounds: ClassVar[bool] = True
    ulps: ClassVar[float] = 1.0
    output_range: ClassVar[tuple[float, float] | None] = None
    deterministic: ClassVar[bool] = True
    accumulates: ClassVar[bool] = False  # sums many terms: float error grows with their count
    unknown_shapes: ClassVar[str] = ""  # ELEMENTWISE, COPIES, COPIES_ALL, COUNTS, HULLS or "" (not analysed)
    # operand positions that hold settings rather than learned values (Resize's scales, quantization
    # scales and zero points): an initializer read only at such positions is a constant, never a weight
    parameter_operands: ClassVar[frozenset[int]] = frozenset()

    def concrete(self, ctx: NodeContext, *inputs: Tensor | None) -> Tensor | tuple[Tensor, ...]:
        """Exact ONNX semantics on concrete tensors."""
        raise NotImplementedError(f"{self.op_type}: concrete semantics not implemented")

    def abstract(self, ctx: NodeContext, *inputs: Interval | None) -> Outputs:
        """Sound interval semantics."""
        raise NotImplementedError(f"{self.op_type}: abstract semantics not implemented")

    def without_shapes(self, ctx: NodeContext, *inputs: Interval | None) -> Interval | None:
        """For ``unknown_shapes = HULLS``: bounds of the output where an operand's shape is known only at run
        time (of unknown shape, or of the output's shape where that is still known), before rounding; None
        where they cannot be had (the node is not analysed)."""
        return None

    def rounded(self, out: Interval) -> Interval:
        """A float result of :meth:`abstract` (real-number bounds) rounded outward by the rule's ``ulps``,
        then kept in its ``output_range``: how the interpreter finishes every node, and how a composite
        rule finishes each inner step."""
        if not is_float(out.elem_type):
            return out
        if self.rounds:
            out = out.widened(self.ulps)
        if self.output_range is not None:
            low, high = self.output_range
            out = out.with_bounds(out.lower.clamp(min=low, max=high), out.upper.clamp(min=low, max=high))
        return out


class UnaryRule(OpRule):
    """Element-wise operator ``y = fn(x)``; monotone ones get their abstract rule for free."""

    monotone: ClassVar[str | None] = "increasing"
    unknown_shapes = ELEMENTWISE

    def fn(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def concrete(self, ctx: NodeContext, x: Tensor) -> Tensor:
        return self.fn(x)

    def abstract(self, ctx: NodeContext, x: Interval) -> Interval:
        if self.monotone == "increasing":
            return x.map_increasing(self.fn)
        if self.monotone == "decreasing":
            return x.map_decreasing(self.fn)
        raise NotImplementedError(f"{self.op_type}: non-monotone unary rule needs its own abstract()")


def structural(fn: Callable[[Tensor], Tensor], data: Interval, budget: int | None = None) -> Interval:
    """Abstract rule of an operator that only moves or copies values (Transpose, Gather, Slice...).

    Applying the same movement to the full lower and upper bound tensors is exact.
    """
    lo, hi = data.full()
    return Interval.from_full(fn(lo), fn(hi), data.elem_type, budget)


def exact_ints(value: Interval | Tensor | None, what: str, op: str) -> list[int] | None:
    """An exact integer operand (shape, axes, indices) as a list; None when absent.

    Raises:
        RunTimeOperand: the operand is a range, not a constant.
    """
    if value is None:
        return None
    if isinstance(value, Interval):
        if not value.is_exact:
            raise RunTimeOperand(f"{op}: operand '{what}' must be a constant, got a range")
        value = value.exact_value()
    return [int(v) for v in value.reshape(-1).tolist()]


def inferred_shape(ctx: NodeContext, op: str, what: str) -> tuple[int, ...]:
    """The output shape from ONNX shape inference, when an operand that decides it is not exact."""
    shape = ctx.output_shapes[0] if ctx.output_shapes else None
    if shape is None:
        raise RunTimeOperand(f"{op}: '{what}' is not constant and shape inference gives no output shape")
    return tuple(shape)


def full_shape(shape: Sequence[int] | None) -> bool:
    """Whether a shape (from shape inference) is known on every axis."""
    return shape is not None and all(isinstance(n, int) and n >= 0 for n in shape)


def as_float64(x: Tensor) -> Tensor:
    """Promote bounds to float64 for computation (ints stay exact below 2**53)."""
    return x.to(torch.float64)
