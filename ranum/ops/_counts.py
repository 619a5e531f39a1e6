"""Upper bounds of how many elements a tensor of a shape known only at run time can hold.

NonZero of a tensor of n elements yields at most n positions per axis of it; reshapes, transposes, casts
and element-wise functions of one tensor keep its count; a Slice, a Compress, a scatter or any of Unique's
outputs keeps at most it; a ConstantOfShape of another tensor's Shape holds as many as that tensor; a Gather
takes one slice of its data per index (one element of a Shape), a GatherND at most one per index too
(each at most all of the data where its shape is not known); a ConstantOfShape has as many axes as its
shape operand holds values, each at most their bound; a Concat adds its parts' counts; an Expand to a
shape whose values are bounded repeats each element at most the product of those bounds (to another
tensor's whole shape, at most that tensor's count); an element-wise operator broadcasting its operands
yields at most the product of their counts; a reduction of a tensor that cannot be empty at most its count;
Shape cut by start and end is at most that long, Size is one element. A tensor of a known shape holds exactly
its shape's product. Anything else is not bounded (None).

The interpreter uses them where a count decides a bound: the value of Size of such a tensor, and how many
updates a ScatterElements that adds them can pile onto one element (a graph network's sum over an edge list
that NonZero filtered). Shape's values take :func:`largest_dimension` instead, a bound of each axis' length
by the same kind of argument: a tensor without elements, (0, 7), has a count of 0 and an axis of 7.

:func:`least_elements` bounds the count from below: whether a reduction can see no element at all
(onnxruntime's ReduceMax of nothing is -inf, its ReduceMean 0). A known shape gives its product; reshapes,
casts, element-wise functions and scatters keep their first input's; a broadcasting operator gives at
least its largest operand's where none can be empty; a Gather gives one slice per index of data that is
not empty; each of Unique's outputs holds at least one element of a non-empty input; a ConstantOfShape
of another tensor's Shape as many as that tensor. Anything else may be empty (0).
"""

from __future__ import annotations

import math

from ranum.graph.model import Node
from ranum.ops._base import GraphView

__all__ = ["largest_dimension", "least_elements", "most_elements"]

_DEPTH = 16  # producers followed up from a tensor
# one element out per element in: the count of the first input
_SAME_COUNT = frozenset({
    "Identity", "Cast", "CastLike", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose", "Abs", "Neg", "Exp",
    "Log", "Sqrt", "Relu", "Sigmoid", "Tanh", "Not", "Floor", "Ceil", "Round", "Sign", "Erf", "Reciprocal",
    "Softplus", "LeakyRelu", "Elu", "Selu", "Sin", "Cos", "IsNaN", "IsInf", "Clip", "Softmax", "LogSoftmax",
    "Hardmax", "CumSum", "Gelu", "HardSigmoid", "HardSwish", "Mish", "Softsign",
})
# every output holds at most as many elements as the first input (a scatter's equally many; each of Unique's
# outputs at most one per input element)
_AT_MOST_FIRST = frozenset({"Slice", "Compress", "ScatterElements", "ScatterND", "Scatter", "Unique"})
_BROADCASTING = frozenset({
    "Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Where", "And", "Or", "Xor", "Equal", "Less", "Greater",
    "LessOrEqual", "GreaterOrEqual", "Mod",
})


def most_elements(graph: GraphView, name: str, depth: int = _DEPTH) -> int | None:
    """An upper bound of the number of elements of tensor ``name`` in every run (None: not bounded)."""
    return _bounded(graph, name, depth, math.prod, _count_of)


def _bounded(graph: GraphView, name: str, depth: int, from_shape, from_node) -> int | None:
    """``from_shape`` of the tensor's shape where it is known, else ``from_node`` of its producer (a standard
    operator, within ``depth`` producers up); None where neither bounds it."""
    iv = graph.interval(name) if name else None
    if iv is not None and iv.shape is not None:
        return from_shape(iv.shape)
    node = graph.producer(name) if name else None
    if node is None or depth == 0 or node.domain not in ("", "ai.onnx"):
        return None
    bound = from_node(graph, node, depth - 1)
    return None if bound is None or bound < 0 else bound


def _count_of(graph: GraphView, node: Node, depth: int) -> int | None:
    op, inputs = node.op_type, node.inputs
    if op in _SAME_COUNT or op in _AT_MOST_FIRST:
        return most_elements(graph, inputs[0], depth)
    if op == "NonZero":
        data = graph.interval(inputs[0])
        count = most_elements(graph, inputs[0], depth)
        return None if data is None or data.shape is None or count is None else max(len(data.shape), 1) * count
    if op == "Size":
        return 1
    if op.startswith("Reduce") or op in ("ArgMax", "ArgMin"):  # of a non-empty tensor: one per kept position
        return most_elements(graph, inputs[0], depth) if inputs and least_elements(graph, inputs[0]) else None
    if op == "Shape":  # as long as the tensor's rank: known here only where start and end (>= 0) cut it
        start, end = int(node.attributes.get("start", 0)), node.attributes.get("end")
        return None if end is None or start < 0 or int(end) < start else int(end) - start
    if op == "Concat":
        counts = [most_elements(graph, name, depth) for name in inputs if name]
        return None if any(c is None for c in counts) else sum(counts)
    if op in ("Gather", "GatherND"):
        return _gathered(graph, node, depth)
    if op == "ConstantOfShape" and inputs:
        shape_of = graph.producer(inputs[0])
        if shape_of is not None and shape_of.op_type == "Shape" and shape_of.domain in ("", "ai.onnx") \
                and not shape_of.attributes.get("start") and shape_of.attributes.get("end") is None:
            return most_elements(graph, shape_of.inputs[0], depth)  # shaped like that tensor: as many elements
    if op == "ConstantOfShape":  # as many axes as its shape operand's count, each at most its largest value
        sizes = graph.interval(inputs[0]) if inputs else None
        length = most_elements(graph, inputs[0], depth) if inputs else None
        if sizes is None or not sizes.numblocks or length is None or not math.isfinite(float(sizes.upper.max())):
            return None
        return max(int(sizes.upper.max()), 1) ** length
    if op == "Expand":
        return _expanded(graph, node, depth)
    if op in _BROADCASTING:
        counts = [most_elements(graph, name, depth) for name in inputs if name]
        return None if any(c is None for c in counts) else math.prod(counts)
    return None


def _gathered(graph: GraphView, node: Node, depth: int) -> int | None:
    """Gather: one slice of data (its elements off the gathered axis) per index. GatherND (batch_dims 0):
    at most one slice of data's trailing axes per index tuple, each tuple at least one index long."""
    data = graph.interval(node.inputs[0])
    indices = most_elements(graph, node.inputs[1], depth)
    source = graph.producer(node.inputs[0])
    if indices is not None and source is not None and source.op_type == "Shape" and source.domain in ("", "ai.onnx"):
        return indices  # a Shape is one axis: one element per index
    if data is not None and data.shape is None and indices is not None:  # each slice at most all of data
        count = most_elements(graph, node.inputs[0], depth)
        return None if count is None or int(node.attributes.get("batch_dims", 0)) else indices * count
    if data is None or data.shape is None or not data.shape or indices is None:
        return None
    if node.op_type == "Gather":
        axis = int(node.attributes.get("axis", 0)) % len(data.shape)
        others = math.prod(n for i, n in enumerate(data.shape) if i != axis)
        return indices * others
    if int(node.attributes.get("batch_dims", 0)):
        return None
    return indices * math.prod(data.shape[1:])


def _expanded(graph: GraphView, node: Node, depth: int) -> int | None:
    """Each output axis is the larger of the input's and the shape's (one of them 1): at most the input's
    count times the product of the shape's upper bounds."""
    shape = graph.interval(node.inputs[1]) if len(node.inputs) > 1 else None
    count = most_elements(graph, node.inputs[0], depth)
    if count is None:
        return None
    source = graph.producer(node.inputs[1]) if len(node.inputs) > 1 else None
    if source is not None and source.op_type == "Shape" and source.domain in ("", "ai.onnx") and \
            int(source.attributes.get("start", 0)) == 0 and "end" not in source.attributes:  # the whole shape
        other = most_elements(graph, source.inputs[0], depth)  # like another tensor: each axis at most as long
        return None if other is None else count * other
    if shape is not None and shape.shape is None and shape.numblocks:  # its length known only at run time
        length, highest = most_elements(graph, node.inputs[1], depth), float(shape.upper.max())
        if length is None or not math.isfinite(highest):
            return None
        return count * max(int(highest), 1) ** length
    if shape is None or shape.shape is None or len(shape.shape) != 1:
        return None
    highest = [float(v) for v in shape.upper.reshape(-1)] if shape.numblocks else []
    if shape.numblocks and len(highest) != shape.shape[0]:
        highest = [float(shape.upper.max())] * shape.shape[0]
    if not all(math.isfinite(v) for v in highest):
        return None
    return count * math.prod(max(int(v), 1) for v in highest)


def least_elements(graph: GraphView, name: str, depth: int = _DEPTH) -> int:
    """A lower bound of the number of elements of tensor ``name`` in every run (0 where it may be empty)."""
    iv = graph.interval(name) if name else None
    if iv is not None and iv.shape is not None:
        return math.prod(iv.shape)
    node = graph.producer(name) if name else None
    if node is None or depth == 0 or node.domain not in ("", "ai.onnx") or not node.inputs:
        return 0
    op, inputs = node.op_type, node.inputs
    if op in _SAME_COUNT or op in ("ScatterElements", "ScatterND", "Scatter"):
        return least_elements(graph, inputs[0], depth - 1)
    if op in _BROADCASTING:
        counts = [least_elements(graph, x, depth - 1) for x in inputs if x]
        return 0 if not counts or min(counts) == 0 else max(counts)
    if op == "Gather" and len(inputs) == 2:
        return least_elements(graph, inputs[1], depth - 1) if least_elements(graph, inputs[0], depth - 1) else 0
    if op == "Unique":
        return min(1, least_elements(graph, inputs[0], depth - 1))
    shape_of = graph.producer(inputs[0]) if op == "ConstantOfShape" else None
    if shape_of is not None and shape_of.op_type == "Shape" and shape_of.domain in ("", "ai.onnx") \
            and not shape_of.attributes.get("start") and shape_of.attributes.get("end") is None:
        return least_elements(graph, shape_of.inputs[0], depth - 1)
    return 0


def largest_dimension(graph: GraphView, name: str, depth: int = _DEPTH) -> int | None:
    """An upper bound of every axis' length of tensor ``name`` in every run (None: not bounded). Not its
    count: a tensor without elements, (0, 7), still has an axis of 7."""
    return _bounded(graph, name, depth, lambda shape: max(shape, default=1), _longest_of)


def _longest_of(graph: GraphView, node: Node, depth: int) -> int | None:
    op, inputs = node.op_type, node.inputs
    if op in _SAME_COUNT and op not in ("Reshape", "Flatten") or op == "Slice":  # the same axes, or shorter
        # (Flatten multiplies axes: of a tensor without elements, (0, 5, 7) gives (0, 35); not bounded here)
        longest = largest_dimension(graph, inputs[0], depth)
        return None if longest is None else max(longest, 1)  # Unsqueeze adds an axis of 1
    if op == "NonZero":  # (rank, at most the count)
        data = graph.interval(inputs[0])
        count = most_elements(graph, inputs[0], depth)
        return None if count is None or data is None or data.shape is None else max(count, len(data.shape), 1)
    if op == "Compress":  # its axes, one shortened, or one axis of at most the count
        count, longest = most_elements(graph, inputs[0], depth), largest_dimension(graph, inputs[0], depth)
        return None if count is None or longest is None else max(count, longest, 1)
    if op == "Reshape":
        return _reshaped(graph, node, depth)
    if op in ("Gather", "GatherND"):  # the index's axes and data's
        longest, data = largest_dimension(graph, inputs[1], depth), largest_dimension(graph, inputs[0], depth)
        return None if longest is None or data is None else max(longest, data, 1)
    if op == "ConstantOfShape":  # its shape operand's values
        sizes = graph.interval(inputs[0]) if inputs else None
        if sizes is None or not sizes.numblocks or not math.isfinite(float(sizes.upper.max())):
            return None
        return max(int(sizes.upper.max()), 1)
    if op == "Concat":  # the concatenated axis adds up
        parts = [largest_dimension(graph, name, depth) for name in inputs if name]
        return None if any(p is None for p in parts) else sum(parts)
    if op == "Expand":
        shape = graph.interval(inputs[1]) if len(inputs) > 1 else None
        longest = largest_dimension(graph, inputs[0], depth)
        if shape is None or not shape.numblocks or longest is None or not math.isfinite(float(shape.upper.max())):
            return None
        return max(longest, int(shape.upper.max()), 1)
    if op in _BROADCASTING:
        parts = [largest_dimension(graph, name, depth) for name in inputs if name]
        return None if any(p is None for p in parts) else max(parts, default=1)
    return None


def _reshaped(graph: GraphView, node: Node, depth: int) -> int | None:
    """The target's entries, a 0 copying an input axis (unless allowzero), -1 at most the input's count."""
    target = graph.interval(node.inputs[1]) if len(node.inputs) > 1 else None
    if target is None or not target.numblocks:
        return None
    lowest, highest = int(target.lower.min()), int(target.upper.max())
    longest = max(highest, 1)
    if lowest <= 0:  # a 0 or a -1 may be among them
        count = most_elements(graph, node.inputs[0], depth)
        copied = largest_dimension(graph, node.inputs[0], depth)
        if count is None or copied is None:
            return None
        longest = max(longest, count, copied)
    return longest
