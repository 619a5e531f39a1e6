"""A variance written as the mean of the squares less the square of the mean is not negative, up to rounding.

``a - m * m`` with ``a = F(x * x)`` and ``m = F(x)``, ``F`` the same chain of averaging stages applied to both:
ReduceMean, GlobalAveragePool, AveragePool, a Conv whose exact weights are >= 0 and sum to at most 1 for every
output channel (a Gaussian window: SSIM's local variances), and stages that only move or copy elements
(reshapes, transposes, a Pad that copies edges or adds zeros; each the same on both sides). Hand-written
normalisations compute ``mean(x ** 2) - mean(x) ** 2``; so do SSIM losses, with a Gaussian filter.

Real arithmetic (Jensen, Cauchy-Schwarz): for weights ``w >= 0`` with ``sum w <= 1``,
``(sum w x)^2 <= (sum w) (sum w x^2) <= sum w x^2``, and each averaging stage is monotone, so by induction
over the stages ``a >= m^2``. Rounding: every stage sums ``n`` terms; the squares' chain has non-negative
terms, so its computed value is within a relative ``G_a = prod (1 + gamma_n) - 1`` (the square's own rounding
included) of ``a``; the mean's chain is within ``G_m F(|x|) <= G_m sqrt(a)`` of ``m`` (Cauchy-Schwarz again),
so the computed ``m * m`` is at most ``m^2 + (u + (2 G_m + G_m^2)(1 + u)) a``. Hence the computed difference is
at least ``-a (G_a + u + (2 G_m + G_m^2)(1 + u))``, with ``a`` at most the computed one over ``1 - G_a``.
For values in [-3, 3] averaged over 16 terms that is about -2e-5: a variance plus an epsilon of 1e-5 or more
is then positive, while large magnitudes (the formula's well-known cancellation) keep the hazard.
Float32 and float64 only (a 16-bit stage rounds each result to 2**-11).
"""

from __future__ import annotations

import math

from onnx import TensorProto

from ranum.domain import arith
from ranum.domain.dtypes import float_facts
from ranum.graph.model import Node
from ranum.ops._base import GraphView
from ranum.ops._relations import reduced_axes
from ranum.ops._same_values import exactly, passed_through, same_value, squared_base

__all__ = ["variance_floor"]

_DEPTH = 12  # stages followed down both chains
_TYPES = (TensorProto.FLOAT, TensorProto.DOUBLE)
_AVERAGING = frozenset({"ReduceMean", "GlobalAveragePool", "AveragePool", "Conv"})
_MOVING = frozenset({"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose", "Identity", "Pad"})
_MOST_WEIGHT = 1 + 1e-3  # a Conv's weights summing to more per output channel do not average


def variance_floor(graph: GraphView, first: str, second: str, elem_type: int) -> float | None:
    """A lower bound of the float ``first - second`` where it is a mean of squares less a squared mean (see
    the module docstring); None elsewhere."""
    if elem_type not in _TYPES:
        return None
    mean = squared_base(graph, second)
    if mean is None:
        return None
    chain = _common_chain(graph, first, mean, elem_type)
    squares = graph.interval(first)
    if chain is None or squares is None or squares.numblocks == 0:
        return None
    gammas, weight = chain
    unit = float_facts(elem_type).eps / 2
    g_a = math.prod(1 + g for g in gammas) * (1 + unit) - 1  # the squares' own rounding
    g_m = math.prod(1 + g for g in gammas) - 1
    if not g_a < 0.5:
        return None
    largest = max(squares.max(), 0.0) / (1 - g_a)
    # weights summing to P >= 1 give a >= m^2 / P only: m^2 <= P a, a further (P - 1) P a
    slack = largest * (g_a + unit * weight + (2 * g_m + g_m * g_m) * (1 + unit) * weight + (weight - 1) * weight) \
        * (1 + 4 * unit)
    return -slack if math.isfinite(slack) else None


def _common_chain(graph: GraphView, squares: str, mean: str, elem_type: int) -> tuple[list[float], float] | None:
    """The accumulation gammas of the stages ``squares`` and ``mean`` share, down to ``squares``' being the
    square of what ``mean``'s chain starts from, and the product of their weight sums' bounds; None where the
    chains differ or a stage does not average."""
    gammas: list[float] = []
    weight = 1.0
    for _ in range(_DEPTH):
        squares, mean = passed_through(graph, squares), passed_through(graph, mean)
        base = squared_base(graph, squares)
        if base is not None and same_value(graph, base, mean):
            return gammas, weight
        a, m = graph.producer(squares), graph.producer(mean)
        if a is None or m is None or not _same_stage(graph, a, m) or a.outputs.index(squares) != 0 \
                or m.outputs.index(mean) != 0:
            return None
        if a.op_type in _AVERAGING:
            terms = _terms(graph, a)
            if terms is None:
                return None
            gammas.append(arith.accumulation_gamma(terms[0], elem_type) + float_facts(elem_type).eps)
            weight *= terms[1]
        elif not _copies(graph, a):
            return None
        squares, mean = a.inputs[0], m.inputs[0]
    return None


def _same_stage(graph: GraphView, a: Node, m: Node) -> bool:
    """One operator with the same attributes, on the same operands but the first."""
    return a.op_type == m.op_type and a.domain == m.domain and a.domain in ("", "ai.onnx") \
        and (a.op_type in _AVERAGING or a.op_type in _MOVING) and dict(a.attributes) == dict(m.attributes) \
        and len(a.inputs) == len(m.inputs) and bool(a.inputs) \
        and all(same_value(graph, x, y) for x, y in zip(a.inputs[1:], m.inputs[1:]))


def _copies(graph: GraphView, node: Node) -> bool:
    """Whether a moving stage's every output element is an input element or 0 (a Pad of zeros, edges or a
    reflection; reshapes and transposes)."""
    if node.op_type != "Pad":
        return True
    mode = node.attributes.get("mode", "constant")
    mode = mode.decode() if isinstance(mode, bytes) else str(mode)
    if mode in ("reflect", "edge"):
        return True
    value = node.inputs[2] if len(node.inputs) > 2 else ""
    return mode == "constant" and float(node.attributes.get("value", 0.0)) == 0.0 and \
        (not value or exactly(graph, value, 0.0))


def _terms(graph: GraphView, node: Node) -> tuple[int, float] | None:
    """How many terms an averaging stage sums per output and a bound of the sum of its weights (>= 1), where
    they are >= 0; None where they may not be."""
    data = graph.interval(node.inputs[0])
    if data is None or data.shape is None:
        return None
    shape = data.shape
    if node.op_type == "ReduceMean":
        axes = reduced_axes(graph, node, len(shape))
        return None if axes is None else (max(math.prod(shape[a] for a in axes), 1), 1.0)
    if node.op_type == "GlobalAveragePool":
        return max(math.prod(shape[2:]), 1), 1.0
    if node.op_type == "AveragePool":
        return max(math.prod(int(k) for k in node.attributes.get("kernel_shape", ())), 1), 1.0
    return _averaging_conv_terms(graph, node)


def _averaging_conv_terms(graph: GraphView, node: Node) -> tuple[int, float] | None:
    """A Conv without bias (or a bias of 0) whose exact weights are >= 0 and sum to about 1 or less per output
    channel (zero padding only drops terms): the terms of one output and the largest weight sum (a window
    normalised in float32 sums to 1 within a few units of rounding)."""
    weight = graph.interval(node.inputs[1]) if len(node.inputs) > 1 else None
    if weight is None or not weight.is_exact or weight.shape is None or len(weight.shape) < 3:
        return None
    if len(node.inputs) > 2 and node.inputs[2] and not exactly(graph, node.inputs[2], 0.0):
        return None
    values = weight.exact_value().double()
    if bool((values < 0).any()):
        return None
    terms = max(math.prod(weight.shape[1:]), 1)
    largest = float(values.reshape(values.shape[0], -1).sum(1).max()) * (1 + terms * 2.0**-52)
    return (terms, max(largest, 1.0)) if largest <= _MOST_WEIGHT else None
