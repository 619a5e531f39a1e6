"""Element-wise orders between two tensors read from how they were computed: ``small <= large`` proven by
structure, for :func:`ranum.ops._difference_relations.at_most`.

Box and overlap code computes values that intervals alone cannot order: a width ``(x + w) - x`` with
``w >= 0``, an intersection ``relu(min(a2, b2) - max(a1, b1))`` that is at most the box's own width
``relu(a2 - a1)``, an IoU's union ``area1 + area2 - inter`` with ``inter <= area1``. Each rule here holds for
the float computation itself, because the operations it looks through round monotonically (round to nearest
never inverts an order of exact results): ``+ - * /`` with one operand shared or ordered, Max, Min, Relu, Clip
with the same bounds, Floor, Ceil, Sqrt (correctly rounded), float casts, selections and reshapes with the
same indices, and sums, maxima, minima and means over the same axes of tensors of one shape (the same
kernel sums in the same order). Transcendental kernels (Exp, Log, Sigmoid, Tanh) are not looked through:
onnxruntime evaluates them with polynomial approximations whose monotonicity at the last unit is not
guaranteed.

The rules:

* separated intervals: ``max(small) <= min(large)`` (equal values are the caller's);
* ``small <= p + q`` where ``small <= p`` and ``q >= 0`` (``fl(p + q) >= p``), ``small <= p - q`` where
  ``q <= 0``; mirrored, ``p - q <= large`` where ``p <= large`` and ``q >= 0``, and ``p + q <= large`` where
  ``q <= 0``;
* ``Min(..., p, ...) <= large`` where some ``p <= large``, ``small <= Max(..., p, ...)`` where ``small <= p``;
  ``small <= Clip(p, low, high)`` where ``small <= p`` and ``small <= high`` (or no high: ``clamp_min``, as
  a softmax that leaves room for no attention writes its maximum), and mirrored; ``x ** e <= large`` for
  ``large >= 1`` where ``x`` in [0, 1] and ``e >= 0``, or ``x >= 1`` and ``e <= 0`` (Adafactor's
  ``1 - step ** -0.8``; pow is faithful, and 1 is a float);
  ``Max(p, q) <= large`` and ``small <= Min(p, q)`` where every operand is (a Relu: ``Max(p, 0)``);
  ``small <= (x + y) - q`` (an IoU's union ``area1 + area2 - inter``) where ``q <= small <= x, y``;
  ``p * t <= large`` where ``0 <= p <= large`` and ``t`` in [0, 1] (a soft mask, a probability);
* the same operation on both sides, operand by operand: monotone unary maps and selections of ordered
  operands (sums over the same axes: a Dice loss's ``sum(p * t) <= sum(p)``), ``p1 + q1 <= p2 + q2`` from
  ordered pairs, ``p1 - q1 <= p2 - q2`` from ``p1 <= p2`` and
  ``q2 <= q1``, products and quotients of non-negative ordered factors (the divisors positive and reversed),
  Max and Min of ordered pairs, and a Where of one condition on ordered branches.

``at_most`` is the full prover (these rules and the ones of the caller), called back for the operands with
one level less of depth; the caller memoises answers.
"""

from __future__ import annotations

from collections.abc import Callable

from ranum.domain.dtypes import is_float
from ranum.domain.interval import Interval
from ranum.graph.model import Node
from ranum.ops._base import GraphView
from ranum.ops._same_values import passed_through, same_value

__all__ = ["ordered_by_structure"]

AtMost = Callable[[str, str], bool]

# float -> float maps that every runtime rounds correctly, hence monotonically (non-decreasing)
_MONOTONE_UNARY = frozenset({"Relu", "Floor", "Ceil", "Sqrt", "Identity", "Round"})
# operations that move or select elements by their other operands and attributes (equal on both sides)
_SELECTIONS = frozenset({"Gather", "GatherElements", "GatherND", "Slice", "Reshape", "Transpose", "Squeeze",
                         "Unsqueeze", "Expand", "Flatten", "Tile"})
_REDUCTIONS = frozenset({"ReduceSum", "ReduceMax", "ReduceMin", "ReduceMean"})


def ordered_by_structure(graph: GraphView, small: str, large: str, at_most: AtMost) -> bool:
    """Whether ``small <= large`` element-wise (after broadcasting) by one of the rules of the module docstring,
    with ``at_most`` proving the orders of operands."""
    small_iv, large_iv = graph.interval(small), graph.interval(large)
    if small_iv is None or large_iv is None or not is_float(small_iv.elem_type) or small_iv.numblocks == 0 \
            or large_iv.numblocks == 0:
        return False
    if small_iv.max() <= large_iv.min():  # NaN compares False
        return True
    low, high = _producer(graph, small), _producer(graph, large)
    if high is not None and _grows_from(graph, high, small, at_most):
        return True
    if low is not None and _shrinks_to(graph, low, large, at_most):
        return True
    return low is not None and high is not None and _same_operation(graph, low, high, at_most)


def _producer(graph: GraphView, name: str) -> Node | None:
    node = graph.producer(passed_through(graph, name))
    return node if node is not None and node.domain in ("", "ai.onnx") else None


def _sign(graph: GraphView, name: str) -> int:
    """1 where the tensor is >= 0 everywhere, -1 where <= 0, else 0."""
    iv = graph.interval(name) if name else None
    if iv is None or iv.numblocks == 0:
        return 0
    if iv.min() >= 0:
        return 1
    return -1 if iv.max() <= 0 else 0


def _in_unit(graph: GraphView, name: str) -> bool:
    iv = graph.interval(name) if name else None
    return iv is not None and iv.numblocks > 0 and iv.min() >= 0 and iv.max() <= 1


def _grows_from(graph: GraphView, large: Node, small: str, at_most: AtMost) -> bool:
    """``small <= p + q`` (q >= 0), ``small <= p - q`` (q <= 0), ``small <= Max(..., p, ...)``: from ``small <= p``;
    ``small <= Min(p, q, ...)`` from ``small`` below each; ``small <= (x + y) - q`` (an IoU's union) from
    ``q <= small <= x, y``: ``fl(x + y) >= fl(2 small) = 2 small >= small + q``, so ``fl(fl(x + y) - q) >= small``."""
    operands = large.inputs
    if large.op_type == "Add" and len(operands) == 2:
        return any(_sign(graph, q) > 0 and at_most(small, p) for p, q in (operands, operands[::-1]))
    if large.op_type == "Sub" and len(operands) == 2:
        if _sign(graph, operands[1]) < 0 and at_most(small, operands[0]):
            return True
        total = _producer(graph, operands[0])
        return total is not None and total.op_type == "Add" and len(total.inputs) == 2 and \
            at_most(operands[1], small) and all(at_most(small, term) for term in total.inputs)
    if large.op_type == "Max":
        return any(name and at_most(small, name) for name in operands)
    if large.op_type == "Min":
        return all(name and at_most(small, name) for name in operands)
    if large.op_type == "Clip" and operands and operands[0]:  # Min(Max(p, low), high)
        high = _clip_end(large, 2, "max")
        return at_most(small, operands[0]) and (high is None or _at_most_end(graph, small, high, at_most))
    return False


def _power_at_most_one(graph: GraphView, base: str, exponent: str) -> bool:
    """Whether ``base ** exponent`` is at most 1: a base in [0, 1] to a power >= 0, or a base >= 1 to a power
    <= 0. Its exact value is then at most 1, and a faithful pow (within an ulp: one of the two floats around
    the exact value) never rounds past 1, a float; pow(1, y) is exactly 1."""
    x, y = graph.interval(base), graph.interval(exponent)
    if x is None or y is None or not x.numblocks or not y.numblocks:
        return False
    return (x.min() >= 0 and x.max() <= 1 and y.min() >= 0) or (x.min() >= 1 and y.max() <= 0)


def _at_least_one(graph: GraphView, name: str) -> bool:
    iv = graph.interval(name)
    return iv is not None and iv.numblocks > 0 and iv.min() >= 1


def _clip_end(clip: Node, index: int, attribute: str) -> str | float | None:
    """A Clip's ``min`` (index 1) or ``max`` (index 2): its operand's name (opset 11 on), its attribute's value
    (before), or None where it has none (opset 11's optional operand left out, an attribute left at its default
    of the float range's end)."""
    if len(clip.inputs) > index and clip.inputs[index]:
        return clip.inputs[index]
    value = clip.attributes.get(attribute)
    return None if value is None else float(value)


def _at_most_end(graph: GraphView, small: str, end: str | float, at_most: AtMost) -> bool:
    if isinstance(end, str):
        return at_most(small, end)
    iv = graph.interval(small)
    return iv is not None and iv.max() <= end


def _end_at_most(graph: GraphView, end: str | float, large: str, at_most: AtMost) -> bool:
    if isinstance(end, str):
        return at_most(end, large)
    iv = graph.interval(large)
    return iv is not None and end <= iv.min()


def _shrinks_to(graph: GraphView, small: Node, large: str, at_most: AtMost) -> bool:
    """``p - q <= large`` (q >= 0), ``p + q <= large`` (q <= 0), ``Min(..., p, ...) <= large``, ``p * t <= large``
    (0 <= p, t in [0, 1]): from ``p <= large``; ``Max(p, q, ...) <= large`` and ``Relu(p) <= large`` from each
    operand (and 0) below it."""
    operands = small.inputs
    if small.op_type == "Sub" and len(operands) == 2:
        return _sign(graph, operands[1]) > 0 and at_most(operands[0], large)
    if small.op_type == "Add" and len(operands) == 2:
        return any(_sign(graph, q) < 0 and at_most(p, large) for p, q in (operands, operands[::-1]))
    if small.op_type == "Min":
        return any(name and at_most(name, large) for name in operands)
    if small.op_type == "Max":
        return all(name and at_most(name, large) for name in operands)
    if small.op_type == "Pow" and len(operands) == 2:
        return _power_at_most_one(graph, *operands) and _at_least_one(graph, large)
    if small.op_type == "Clip" and operands and operands[0]:  # Min(Max(p, low), high)
        low = _clip_end(small, 1, "min")
        return at_most(operands[0], large) and (low is None or _end_at_most(graph, low, large, at_most))
    if small.op_type == "Relu":  # Max(p, 0)
        return _sign(graph, large) > 0 and at_most(operands[0], large)
    if small.op_type == "Mul" and len(operands) == 2:
        return any(_sign(graph, p) > 0 and _in_unit(graph, t) and at_most(p, large)
                   for p, t in (operands, operands[::-1]))
    return False


def _same_operation(graph: GraphView, low: Node, high: Node, at_most: AtMost) -> bool:
    """Both sides the same operation with the same attributes, their operands ordered as it needs."""
    if low.op_type != high.op_type or low.attributes != high.attributes or len(low.inputs) != len(high.inputs) \
            or not low.inputs or not all(low.inputs) or not all(high.inputs):
        return False
    op, (a, b) = low.op_type, (low.inputs, high.inputs)
    if op in _MONOTONE_UNARY and len(a) == 1:
        return at_most(a[0], b[0])
    if op == "Cast":
        return is_float(int(low.attributes.get("to", 0))) and at_most(a[0], b[0])
    if op == "Neg":
        return at_most(b[0], a[0])
    if op == "Clip" or op in _SELECTIONS or op in _REDUCTIONS:
        return _same_other_operands(graph, a, b) and _same_shape(graph, a[0], b[0]) and at_most(a[0], b[0])
    if op in ("Add", "Max", "Min") and len(a) == 2:
        return any(at_most(a[0], p) and at_most(a[1], q) for p, q in (b, b[::-1]))
    if op == "Sub":
        return at_most(a[0], b[0]) and at_most(b[1], a[1])
    if op == "Mul" and len(a) == 2:
        return all(_sign(graph, name) > 0 for name in a) and \
            any(at_most(a[0], p) and at_most(a[1], q) for p, q in (b, b[::-1]))
    if op == "Div":
        return _sign(graph, a[0]) > 0 and _positive(graph, b[1]) and at_most(a[0], b[0]) and at_most(b[1], a[1])
    if op == "Where":
        return same_value(graph, a[0], b[0]) and at_most(a[1], b[1]) and at_most(a[2], b[2])
    return False


def _positive(graph: GraphView, name: str) -> bool:
    iv: Interval | None = graph.interval(name)
    return iv is not None and iv.numblocks > 0 and iv.min() > 0


def _same_other_operands(graph: GraphView, a: tuple[str, ...], b: tuple[str, ...]) -> bool:
    return all(same_value(graph, x, y) for x, y in zip(a[1:], b[1:]))


def _same_shape(graph: GraphView, first: str, second: str) -> bool:
    x, y = graph.interval(first), graph.interval(second)
    return x is not None and y is not None and x.shape is not None and x.shape == y.shape
