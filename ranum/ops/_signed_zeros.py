"""Tensors whose zeros are all +0: their reciprocal at 0 is +inf, never -inf.

An interval [0, b] holds -0 as well as +0 (they compare equal), and ``1 / -0 = -inf``, so the reciprocal of
[0, b] is unbounded on both sides. Yet most non-negative tensors can only hold +0: a square ``x * x`` (also
``(-0) * (-0)``), an even power, ``|x|``, ``exp``, sums and means of such terms (``+0 + +0 = +0``), an
integer cast to a float, a non-negative difference ``a - b`` whose ``a`` is never -0 (Adam's bias correction
``1 - beta ** t``: a difference is 0 only where ``a == b``, and ``x - x`` is +0). Then ``1 / [0, b]`` is
``[1 / b, +inf]``: a PSNR's ``log(1 / mse)`` is never the log of a negative value, and a Generalized Dice
loss's weights ``1 / (sum t)^2`` are never negative (their infinities replaced: see
:func:`ranum.ops._relations.guarded_branches`).
"""

from __future__ import annotations

import torch

from ranum.domain.dtypes import is_float
from ranum.ops._base import GraphView
from ranum.ops._same_values import exactly, passed_through, same_value

__all__ = ["zeros_are_positive"]

_DEPTH = 8
_NEVER_NEGATIVE_ZERO = frozenset({"Abs", "Exp", "Sigmoid", "Softplus", "Softmax"})
_KEEPS_POSITIVE_ZERO = frozenset({"ReduceSum", "ReduceMean", "Sqrt", "Identity", "Reshape", "Flatten", "Squeeze",
                                  "Unsqueeze", "Transpose", "Expand", "Slice", "Gather", "Concat", "Add", "Sum",
                                  "Max", "Mul"})


def zeros_are_positive(graph: GraphView, name: str, depth: int = _DEPTH) -> bool:
    """Whether every zero tensor ``name`` can hold is +0 (and it is never negative: checked on its bounds)."""
    iv = graph.interval(name) if name else None
    if iv is None or iv.numblocks == 0 or iv.min() < 0:
        return False
    if iv.is_exact and iv.shape is not None:
        value = iv.exact_value()
        return not bool((torch.signbit(value) & (value == 0)).any()) if value.is_floating_point() else True
    if depth == 0:
        return False
    name = passed_through(graph, name)
    node = graph.producer(name)
    if node is None or node.domain not in ("", "ai.onnx"):
        return False
    op, inputs = node.op_type, [i for i in node.inputs if i]
    if op in _NEVER_NEGATIVE_ZERO:
        return True
    if op == "Mul" and len(inputs) == 2 and same_value(graph, inputs[0], inputs[1]):
        return True  # x * x: (+-0)^2 = +0
    if op == "Pow" and len(inputs) == 2 and _even(graph, inputs[1]):
        return True
    if op == "Sub" and len(inputs) == 2:  # a - b is 0 only for a == b, and +0 then unless a is -0 (and b +0)
        return zeros_are_positive(graph, inputs[0], depth - 1)
    if op == "Cast":
        source = graph.interval(inputs[0]) if inputs else None
        return source is not None and (not is_float(source.elem_type) or zeros_are_positive(graph, inputs[0],
                                                                                              depth - 1))
    if op in _KEEPS_POSITIVE_ZERO:  # sums, products, means and copies of terms that are +0 or positive
        data = inputs[:1] if op in ("ReduceSum", "ReduceMean", "Reshape", "Expand", "Slice", "Gather", "Squeeze",
                                    "Unsqueeze") else inputs
        return bool(data) and all(zeros_are_positive(graph, i, depth - 1) for i in data)
    return False


def _even(graph: GraphView, exponent: str) -> bool:
    """Whether ``exponent`` is exactly one even integer everywhere."""
    iv = graph.interval(exponent)
    if iv is None or not iv.is_exact or iv.numblocks != 1:
        return False
    value = float(iv.lower.reshape(-1)[0])
    return value.is_integer() and value % 2 == 0 and exactly(graph, exponent, value)
