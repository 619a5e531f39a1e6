"""Same values and pass-throughs: which tensors surely hold equal values, whatever the run.

Same values. Two tensors hold the same value when they are one tensor, exact tensors (constants) of equal
shape, type and values (TorchScript writes a constant node per use), or the same output of two
deterministic nodes of the same operator and attributes whose inputs hold the same values (an exporter
writes ``k + t`` twice for two uses).

Pass-throughs. A node whose output provably equals one of its inputs, element for element, is looked
through before comparing values: Identity, a Cast to the same type, a reshape that keeps the shape,
``Mul`` by an operand that is exactly 1 everywhere, ``Add`` / ``Sub`` of an operand that is exactly 0, and
``Where`` whose condition is the same everywhere (both exact in IEEE arithmetic). Converters write such
forms: tf2onnx lowers TensorFlow's ``reduce_logsumexp`` guard ``where(is_finite(m), m, 0)`` into
``Cast(is_finite(m)) * m + Cast(!is_finite(m)) * 0``, which is m wherever m is finite.

Widening round trips. A Cast that widens a float type keeps every value exactly (float16 and bfloat16 in
float32 or float64, float32 in float64), and a maximum or minimum selects one of its operands: so
``Cast_T(ReduceMax(Cast_W(x)))`` with x of type T is ``ReduceMax(x)``, element for element (the dynamo
exporter takes a float16 softmax's maximum so). :func:`unwidened_extreme` finds such a reduction.
"""

from __future__ import annotations

import math

import torch
from onnx import TensorProto

from ranum.graph.model import Node
from ranum.ops._base import GraphView
from ranum.ops.random import GENERATORS

__all__ = ["before_widening_cast", "exactly", "passed_through", "same_value", "squared_base", "unwidened_extreme"]

_RANDOM = GENERATORS | {"Dropout"}
_DEPTH = 6  # how far up two producers are compared


def same_value(graph: GraphView, first: str, second: str, depth: int = _DEPTH) -> bool:
    """Whether two tensors surely hold the same value (see the module docstring)."""
    if first == second:
        return bool(first)
    if depth == 0 or not first or not second:
        return False
    first, second = passed_through(graph, first), passed_through(graph, second)
    if first == second or _equal_constants(graph, first, second):
        return True
    a, b = graph.producer(first), graph.producer(second)
    if a is None or b is None or a.op_type != b.op_type or a.domain != b.domain or not _deterministic(a):
        return False
    if a.subgraphs() or len(a.inputs) != len(b.inputs) or a.outputs.index(first) != b.outputs.index(second):
        return False
    if dict(a.attributes) != dict(b.attributes):
        return False
    if a.op_type.startswith("Reduce") and len(a.inputs) == 2 and _same_axes(graph, a.inputs[1], b.inputs[1],
                                                                             a.inputs[0]):
        return same_value(graph, a.inputs[0], b.inputs[0], depth - 1)  # axes [3] and [-1] of a rank-4 tensor
    return all(same_value(graph, x, y, depth - 1) for x, y in zip(a.inputs, b.inputs))


def _same_axes(graph: GraphView, first: str, second: str, data: str) -> bool:
    """Whether two exact axes operands of reductions of ``data`` name the same axes (negative ones counted
    from the end of data's rank)."""
    a, b, x = graph.interval(first), graph.interval(second), graph.interval(data)
    if a is None or b is None or x is None or x.shape is None or not a.is_exact or not b.is_exact:
        return False
    rank = len(x.shape)
    mine, theirs = (iv.exact_value().reshape(-1).tolist() for iv in (a, b))
    if any(not -rank <= v < rank for v in mine + theirs):
        return False
    return sorted({v % rank for v in mine}) == sorted({v % rank for v in theirs})


_CONSTANT_ELEMENTS = 1 << 16  # larger exact tensors are not compared element by element


def _deterministic(node: Node) -> bool:
    """Whether two runs of ``node`` on the same operands give the same values: no random generator or dropout,
    of the standard domain or of any other (onnxruntime's BiasDropout, BitmaskDropout, a custom RandomX)."""
    return node.op_type not in _RANDOM and "Random" not in node.op_type and "Dropout" not in node.op_type


def _equal_constants(graph: GraphView, first: str, second: str) -> bool:
    """Whether both tensors are exact (constants, or computed from constants: TorchScript writes a constant
    node per use, and each use's shape arithmetic) with the same shape, type and values."""
    a, b = graph.interval(first), graph.interval(second)
    if a is None or b is None or a.shape is None or a.shape != b.shape or a.elem_type != b.elem_type \
            or math.prod(a.shape) > _CONSTANT_ELEMENTS or not a.is_exact or not b.is_exact:
        return False
    first_value, second_value = a.exact_value(), b.exact_value()
    # +0 and -0 compare equal, but their reciprocals differ (what :mod:`ranum.ops._signed_zeros` reads)
    return bool(torch.equal(first_value, second_value)) and bool(torch.equal(first_value.signbit(),
                                                                            second_value.signbit()))


_RESHAPES = frozenset({"Reshape", "Squeeze", "Unsqueeze", "Flatten", "Expand"})


def squared_base(graph: GraphView, name: str) -> str | None:
    """m where ``name`` is the square of m, element for element: ``Mul(m, m)`` (two tensors of the same
    values) or ``Pow(m, 2)`` with an exponent that does not broadcast m to another shape (a (1, 1, 1) exponent
    would add an axis, and the axes of a reduction of the squares would then name other axes of m)."""
    name = passed_through(graph, name)
    node = graph.producer(name)
    if node is None or node.domain not in ("", "ai.onnx") or len(node.inputs) != 2 or node.outputs[0] != name:
        return None
    base, other = node.inputs
    if node.op_type == "Mul" and same_value(graph, base, other):
        return base
    if node.op_type == "Pow" and exactly(graph, other, 2.0):
        square, root = graph.interval(name), graph.interval(base)
        if square is not None and root is not None and square.shape is not None and square.shape == root.shape:
            return base
    return None


def passed_through(graph: GraphView, name: str, depth: int = _DEPTH) -> str:
    """The tensor that ``name`` equals element for element, looking through pass-through nodes (see the
    module docstring); ``name`` itself where its producer is none."""
    for _ in range(depth):
        node = graph.producer(name) if name else None
        source = _passed_input(graph, node, name) if node is not None and node.domain in ("", "ai.onnx") else None
        if source is None:
            return name
        name = source
    return name


def _passed_input(graph: GraphView, node: Node, name: str) -> str | None:
    out = graph.interval(name)
    if out is None or out.shape is None or node.outputs[0] != name:
        return None
    candidates: list[str] = []
    if node.op_type == "Identity" or node.op_type in _RESHAPES or node.op_type == "Cast":
        candidates = node.inputs[:1]
    elif node.op_type in ("Mul", "Add", "Sub") and len(node.inputs) == 2:
        neutral = 1.0 if node.op_type == "Mul" else 0.0
        sides = [(0, 1), (1, 0)] if node.op_type != "Sub" else [(0, 1)]
        candidates = [node.inputs[keep] for keep, other in sides if exactly(graph, node.inputs[other], neutral)]
    elif node.op_type == "Where" and len(node.inputs) == 3:
        if exactly(graph, node.inputs[0], True):
            candidates = [node.inputs[1]]
        elif exactly(graph, node.inputs[0], False):
            candidates = [node.inputs[2]]
    for candidate in candidates:
        iv = graph.interval(candidate) if candidate else None
        if iv is not None and iv.shape == out.shape and iv.elem_type == out.elem_type:
            return candidate
    return None


_WIDER = {TensorProto.FLOAT16: (TensorProto.FLOAT, TensorProto.DOUBLE),
          TensorProto.BFLOAT16: (TensorProto.FLOAT, TensorProto.DOUBLE), TensorProto.FLOAT: (TensorProto.DOUBLE,)}
_EXTREMES = ("ReduceMax", "ReduceMin")


def before_widening_cast(graph: GraphView, name: str) -> str:
    """The input of a Cast that widens a float type (every value kept exactly: the sum of a float16 or bfloat16
    tensor as the dynamo exporter writes it, in float32), else ``name``."""
    node = graph.producer(name)
    if node is None or node.op_type != "Cast" or node.domain not in ("", "ai.onnx") or not node.inputs:
        return name
    source = graph.interval(node.inputs[0])
    target = int(node.attributes.get("to", 0))
    return node.inputs[0] if source is not None and target in _WIDER.get(source.elem_type, ()) else name


def unwidened_extreme(graph: GraphView, name: str) -> tuple[Node, str] | None:
    """A ReduceMax or ReduceMin that computes ``name`` (after pass-through nodes), and the tensor it reduces;
    through a widening round trip ``Cast_T(Reduce(Cast_W(x)))`` of an x of type T, that reduction and x (see
    the module docstring). None where ``name`` is no such reduction."""
    node = graph.producer(passed_through(graph, name))
    if node is None or node.domain not in ("", "ai.onnx") or not node.inputs:
        return None
    if node.op_type in _EXTREMES:
        return node, node.inputs[0]
    narrowed = graph.interval(node.outputs[0])
    if node.op_type != "Cast" or narrowed is None:
        return None
    reduction = graph.producer(passed_through(graph, node.inputs[0]))
    if reduction is None or reduction.op_type not in _EXTREMES or reduction.domain not in ("", "ai.onnx") \
            or not reduction.inputs:
        return None
    x = before_widening_cast(graph, passed_through(graph, reduction.inputs[0]))
    x_iv = graph.interval(x)
    widened = x != passed_through(graph, reduction.inputs[0])
    return (reduction, x) if widened and x_iv is not None and x_iv.elem_type == narrowed.elem_type else None


def exactly(graph: GraphView, name: str, value: float | bool) -> bool:
    """Whether every element of ``name`` is exactly ``value`` in every run."""
    iv = graph.interval(name) if name else None
    if iv is None or iv.shape is None or iv.numblocks == 0:
        return False
    return iv.min() == float(value) and iv.max() == float(value)  # every lower and upper bound: the value
