"""A tensor over a root of its own mean (or sum) of squares: RMS and L2 normalisations are bounded.

RMS normalisation ``y = x * c / sqrt(mean(x^2) + eps)`` (RMSNorm, T5LayerNorm), exported as
``Mul(x, Div(c, Sqrt(Add(ReduceMean(Pow(x, 2)), eps))))``, ``Mul(x, Reciprocal(Sqrt(...)))``, ``Pow(..., -0.5)``
or ``Div(x, Sqrt(...))``: since ``x_i^2 <= n * mean(x^2)`` over the ``n`` reduced elements,
``|y_i| <= |c| * sqrt(n)``, whatever the range of x. Intervals alone only give ``|x| * c / sqrt(eps)``.
The same holds with a sum of squares (``n`` is then 1): ``F.normalize``'s ``x / clip(ReduceL2(x), eps)``
and ``x / sqrt(ReduceSum(x * x))`` are at most 1 in magnitude. A hand-written LayerNorm divides the centred
``d = x - mean(x)`` by ``sqrt(mean(d * d) + eps)``: the same form, with ``d`` computed twice alike
(TorchScript) or its mean taken without keeping the axes and reshaped back (dynamo).

The divisor may be that root, expanded to the numerator's shape, or at least it: an eps added under or
after the root, a Clip from below, a Max with a constant. The reduction must keep the reduced axes
(``keepdims``, or a reshape that puts them back as 1s), or drop leading ones (a whole tensor's norm), so that
each element meets its own row's root.

Rounding and underflow. The float mean of squares is at least ``(1 - gamma)`` times the real one, less
half a subnormal per square that underflows. So where ``(1 - gamma) x_i^2`` is above ``M n`` subnormals (a
margin M > 1, chosen to give the least bound: 2^20 in float32, a few in float16),
``|y_i| <= |c| sqrt(n / ((1 - gamma)(1 - 1/M)))``; below it, ``|x_i|`` is that tiny and the quotient is at
most it over the root of the radicand's floor (its eps, or its interval's least value). Without a floor
(``x / sqrt(mean(x^2))`` of squares that all underflow is ``x / 0``) there is no bound. Each of pow, sqrt,
div and mul rounds once more: a few units of roundoff.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from ranum.domain import arith
from ranum.domain.dtypes import float_facts, is_float
from ranum.graph.model import Node
from ranum.ops._base import GraphView, NodeContext
from ranum.ops._relations import exact_scalar, own_rows_shape, reduced_axes
from ranum.ops._same_values import passed_through, same_value, squared_base

__all__ = ["rms_bound", "rms_bound_of", "rms_magnitude_bound"]

_DEPTH = 8
_RESHAPES = frozenset({"Reshape", "Unsqueeze", "Squeeze", "Identity"})


@dataclass(frozen=True)
class _Root:
    """A divisor at least ``factor``-free ``sqrt(mean over count elements of x^2)`` (count 1: a sum), whose
    radicand is at least ``floor``."""

    x: str
    count: int
    floor: float
    whole_rows: bool = False  # the mean runs over x's last axis (with others, maybe): each row is in one mean


def rms_magnitude_bound(ctx: NodeContext, x_index: int, scale_index: int, divides: bool) -> float | None:
    """A bound of |output| when the node computes x times (or divided by) an RMS statistic of x.

    Args:
        ctx: the node's context (needs the graph view).
        x_index: which input is x.
        scale_index: which input is ``c / root`` (``divides=False``) or the root (``divides=True``).
        divides: the node divides x by the root instead of multiplying by its reciprocal.
    """
    if ctx.graph is None:
        return None
    names = ctx.node.inputs
    return rms_bound(ctx.graph, names[x_index], names[scale_index], divides)


def rms_bound_of(graph: GraphView, reciprocal: str) -> tuple[str, float] | None:
    """(x, B) where ``reciprocal`` is ``c / root`` of a mean of x's squares (see the module docstring) and
    ``|x * reciprocal| <= B`` element-wise; None for another form."""
    found = _inverse_root(graph, reciprocal)
    if found is None or found[1] is None:
        return None
    bound = rms_bound(graph, found[1].x, reciprocal, divides=False)
    return None if bound is None else (found[1].x, bound)


def rms_bound(graph: GraphView, x_name: str, other: str, divides: bool, whole_rows: bool = False) -> float | None:
    """A bound of |x / other| (``divides``) or |x * other| where other is a root of x's mean of squares (or its
    reciprocal, times an exact scalar); None for another form. ``whole_rows``: only where the mean runs over
    x's last axis, so that the bound holds for the L2 norm of each row along it too."""
    found = (1.0, _root(graph, other, _DEPTH)) if divides else _inverse_root(graph, other)
    if found is None or found[1] is None or not same_value(graph, found[1].x, x_name):
        return None
    if whole_rows and not found[1].whole_rows:
        return None
    factor, root = found
    x = graph.interval(x_name)
    if x is None or not is_float(x.elem_type) or root.count < 1 or not root.floor > 0:
        return None
    facts = float_facts(x.elem_type)
    gamma = arith.accumulation_gamma(root.count + 2, x.elem_type)
    if gamma >= 0.5:
        return None
    return abs(factor) * _least_split(root.count, gamma, facts.subnormal, root.floor) * (1 + 16 * facts.eps)


def _least_split(count: int, gamma: float, subnormal: float, floor: float) -> float:
    """The least, over margins M = 2, 4, ..., 2**20, of the larger of the two bounds of the module docstring:
    ``sqrt(n / ((1 - gamma)(1 - 1/M)))`` where ``(1 - gamma) x_i^2`` is above ``M n`` subnormals, and
    ``sqrt(M n subnormal / ((1 - gamma) floor))`` below. Each margin gives a sound bound; a float32 root's floor
    is so far above its subnormals that the largest margin wins, while a float16 one's (an eps of 1e-6 is 16
    float16 subnormals) needs a small margin, or the tiny side dominates (700 instead of about sqrt(n))."""
    def bound(margin: float) -> float:
        main = math.sqrt(count / ((1 - gamma) * (1 - 1 / margin)))
        tiny = math.sqrt(margin * count * subnormal / (1 - gamma) / floor)
        return max(main, tiny)

    return min(bound(2.0**k) for k in range(1, 21))


def _inverse_root(graph: GraphView, name: str) -> tuple[float, _Root | None] | None:
    """``c / root``, ``Reciprocal(root)`` with an exact scalar c, or ``Pow(radicand, -0.5)``: (c, the root)."""
    node = graph.producer(passed_through(graph, name))
    if node is None or node.domain not in ("", "ai.onnx"):
        return None
    if node.op_type == "Pow" and len(node.inputs) == 2 and exact_scalar(graph, node.inputs[1]) == -0.5:
        return 1.0, _radicand(graph, node.inputs[0], _DEPTH)
    if node.op_type == "Reciprocal" and node.inputs:
        return 1.0, _root(graph, node.inputs[0], _DEPTH)
    if node.op_type == "Div" and len(node.inputs) == 2:
        c = exact_scalar(graph, node.inputs[0])
        return None if c is None else (c, _root(graph, node.inputs[1], _DEPTH))
    return None


def _root(graph: GraphView, name: str, depth: int) -> _Root | None:
    """The root a divisor is at least: ``Sqrt(radicand)``, ``ReduceL2(x)``, through Expand, an added eps, a
    Clip from below and a Max with a constant (each keeps or raises it; their floor, squared, is the
    radicand's)."""
    node = graph.producer(passed_through(graph, name)) if depth > 0 else None
    if node is None or node.domain not in ("", "ai.onnx") or not node.inputs:
        return None
    op = node.op_type
    if op == "Sqrt":
        return _radicand(graph, node.inputs[0], depth - 1)
    if op == "ReduceL2":
        return _reduction(graph, node, node.inputs[0], 1, name)
    if op == "Expand":
        return _root(graph, node.inputs[0], depth - 1)
    inner, low = raised(graph, node)
    if inner is None:
        return None
    found = _root(graph, inner, depth - 1)
    return None if found is None else replace(found, floor=max(found.floor, low * low))


def _radicand(graph: GraphView, name: str, depth: int, shaped: str | None = None) -> _Root | None:
    """The mean (or sum) of squares a radicand is at least: ``ReduceMean(x * x)`` (or ``Pow(x, 2)``),
    ``ReduceSum`` of them, ``ReduceSumSquare(x)``, through an added eps, a Clip from below, a Max with a
    constant, and reshapes (``shaped``: the outermost one's result, which must have x's shape with 1s on the
    reduced axes); its floor is also its interval's least value."""
    iv = graph.interval(name)
    least = max(iv.min(), 0.0) if iv is not None and iv.numblocks and iv.shape is not None else 0.0
    node = graph.producer(passed_through(graph, name)) if depth > 0 else None
    if node is None or node.domain not in ("", "ai.onnx") or not node.inputs:
        return None
    op = node.op_type
    found: _Root | None = None
    if op in ("ReduceMean", "ReduceSum"):
        x = squared_base(graph, node.inputs[0])
        found = None if x is None else _reduction(graph, node, x, 0 if op == "ReduceMean" else 1, shaped or name)
    elif op == "ReduceSumSquare":
        found = _reduction(graph, node, node.inputs[0], 1, shaped or name)
    elif op in _RESHAPES:
        found = _radicand(graph, node.inputs[0], depth - 1, shaped or name)
    elif shaped is None:
        inner, low = raised(graph, node)
        if inner is not None:
            found = _radicand(graph, inner, depth - 1)
            found = None if found is None else replace(found, floor=max(found.floor, low))
    return None if found is None else replace(found, floor=max(found.floor, least))


def raised(graph: GraphView, node: Node) -> tuple[str | None, float]:
    """(v, k) where ``node`` is at least v and at least k >= 0: ``Add(v, k)``, ``Clip(v, k)`` without a
    maximum, ``Max(v, k)`` (k an exact scalar); (None, 0) otherwise."""
    op, inputs = node.op_type, node.inputs
    if op == "Clip" and (len(inputs) < 3 or not inputs[2]) and node.attributes.get("max") is None:
        low = exact_scalar(graph, inputs[1]) if len(inputs) > 1 and inputs[1] else node.attributes.get("min")
        return (inputs[0], float(low)) if low is not None and low >= 0 else (None, 0.0)
    if op in ("Add", "Max") and len(inputs) == 2:
        for v, k in (inputs, inputs[::-1]):
            low = exact_scalar(graph, k)
            if low is not None and low >= 0:
                return v, low
    return None, 0.0


def _reduction(graph: GraphView, node: Node, x_name: str, count_of_mean: int, result: str) -> _Root | None:
    """The root of x over a reduction's axes, where each element of x meets its own row's value: ``result``
    (the reduction's output, or the reshape of it that is read) has x's shape with 1s on them.
    ``count_of_mean`` 0: a mean (the reduced count); else a sum (1)."""
    x, source = graph.interval(x_name), graph.interval(node.inputs[0])
    if x is None or x.shape is None or source is None or source.shape != x.shape:
        return None  # the axes are read on x: the reduced tensor must have its shape
    axes = reduced_axes(graph, node, len(x.shape))
    if not axes:
        return None
    out = graph.interval(result)
    if out is None or out.shape not in (own_rows_shape(x.shape, axes, True), own_rows_shape(x.shape, axes, False)):
        return None
    count = math.prod(x.shape[a] for a in axes) if count_of_mean == 0 else 1
    return _Root(x_name, count, 0.0, whole_rows=len(x.shape) - 1 in axes)
