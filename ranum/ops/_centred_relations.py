"""A relational refinement of a normalisation written as two products: ``x * s - m * s`` (+ beta).

TensorFlow's ``tf.nn.batch_normalization`` and Keras' LayerNormalization compute
``inv = rsqrt(var + eps) * gamma`` and then ``x * inv + (beta - m * inv)`` (or ``x * inv + (-m) * inv``,
beta added or folded away), where ``var`` is the mean of ``(x - m)^2`` over the normalised axes;
tf2onnx keeps that form. In real arithmetic the sum is ``(x - m) * inv + beta``, and
``|(x - m) / sqrt(mean((x - m)^2) + eps)| <= sqrt(n)`` over the ``n`` reduced elements (the RMS bound
of :mod:`ranum.ops._relations`), so ``|y - beta| <= sqrt(n) |gamma|``. Intervals alone bound each
product by ``|x| / sqrt(eps)``: a LayerNorm multiplied its input's bound by up to ``1 / sqrt(eps)``, so
a deep network's bounds overflowed (a Keras ConvNeXt).

Recognised, for ``Add(p, q)`` in either order: ``p = Mul(x, s)`` and ``q`` one of ``Mul(Neg(m), s)``,
``Add(Mul(Neg(m), s), beta)`` or ``Sub(beta, Mul(m, s))``, the two ``s`` holding the same value, ``s`` a
reciprocal square root of ``Add(ReduceMean(d * d), eps)`` (through a shape-keeping or broadcasting
pass, times an optional ``gamma``) and ``d = Sub(x, m)``. Rounding: the two products and the sums
each round once, and the products can cancel, so ``2 u (|x| + |m|) |s|`` more (``u`` the unit
roundoff, with the operands' bounds), plus ``4 u`` of the rest.
"""

from __future__ import annotations

import torch

from ranum.domain.dtypes import float_facts
from ranum.domain.interval import Interval
from ranum.ops._base import GraphView, NodeContext
from ranum.ops._relations import either_order, meet_bounds, onnx_producer
from ranum.ops._rms_relations import rms_bound_of
from ranum.ops._same_values import passed_through, same_value

__all__ = ["within_centred_sum"]


def within_centred_sum(ctx: NodeContext, out: Interval) -> Interval:
    """``out`` (the interval bounds of a float Add) met with ``beta +- E`` where the Add is a normalisation
    written as two products (see the module docstring)."""
    found = either_order(ctx, out, _centred)
    if found is None:
        return out
    graph = ctx.graph
    spread, beta = found
    unit = float_facts(out.elem_type).eps
    if beta is None:
        low, high = torch.zeros((), dtype=torch.float64), torch.zeros((), dtype=torch.float64)
    else:
        b = graph.interval(beta)
        if b is None or b.shape is None or not b.is_finite:
            return out
        low, high = (t.to(torch.float64) for t in b.full())
        spread += 4 * unit * max(abs(b.min()), abs(b.max()))
    return meet_bounds(out, low - spread, high + spread, ctx.budget)


def _centred(graph: GraphView, scaled: str, rest: str) -> tuple[float, str | None] | None:
    """(E, beta) where ``scaled + rest`` is ``(x - m) * s + beta`` within ``beta +- E``."""
    product = onnx_producer(graph, scaled, "Mul")
    if product is None or len(product.inputs) != 2:
        return None
    for m, s2, beta in _offsets(graph, rest):
        for x, s in (product.inputs, product.inputs[::-1]):
            if not same_value(graph, s, s2):
                continue
            spread = _spread(graph, x, m, s)
            if spread is not None:
                return spread, beta
    return None


def _offsets(graph: GraphView, rest: str) -> list[tuple[str, str, str | None]]:
    """(m, s, beta) for the forms ``-m * s``, ``-m * s + beta`` and ``beta - m * s`` of ``rest``."""
    forms = [(rest, None, True)]
    add, sub = onnx_producer(graph, rest, "Add"), onnx_producer(graph, rest, "Sub")
    if add is not None and len(add.inputs) == 2:
        forms += [(add.inputs[0], add.inputs[1], True), (add.inputs[1], add.inputs[0], True)]
    if sub is not None and len(sub.inputs) == 2:
        forms.append((sub.inputs[1], sub.inputs[0], False))
    found = []
    for name, beta, negated in forms:
        product = onnx_producer(graph, name, "Mul")
        if product is None or len(product.inputs) != 2:
            continue
        for a, b in (product.inputs, product.inputs[::-1]):
            neg = onnx_producer(graph, a, "Neg")
            if negated and neg is not None:
                found.append((neg.inputs[0], b, beta))
            elif not negated:
                found.append((a, b, beta))
    return found


def _spread(graph: GraphView, x: str, m: str, s: str) -> float | None:
    """E for ``x * s - m * s`` where s = c / sqrt(mean((x - m)^2) + eps) [* gamma], else None."""
    root, gain = _root_and_gain(graph, s)
    if root is None:
        return None
    found = rms_bound_of(graph, root)
    if found is None:
        return None
    centred, bound = found
    difference = onnx_producer(graph, centred, "Sub")
    if difference is None or len(difference.inputs) != 2 or not same_value(graph, difference.inputs[0], x) \
            or not same_value(graph, difference.inputs[1], m):
        return None
    magnitudes = [_largest(graph, name) for name in (x, m, s)]
    if any(v is None for v in magnitudes):
        return None
    unit = float_facts(graph.interval(x).elem_type).eps
    cancelled = 2 * unit * (magnitudes[0] + magnitudes[1]) * magnitudes[2]
    return bound * gain * (1 + 8 * unit) + cancelled


def _root_and_gain(graph: GraphView, s: str) -> tuple[str | None, float]:
    """(the reciprocal square root's tensor, the largest |gamma|) for s = r or r * gamma, looking through
    pass-throughs and Expand (which repeats values)."""
    name = _unexpanded(graph, s)
    product = onnx_producer(graph, name, "Mul")
    if product is not None and len(product.inputs) == 2:
        for r, gamma in (product.inputs, product.inputs[::-1]):
            gain = _largest(graph, gamma)
            if gain is not None and rms_bound_of(graph, _unexpanded(graph, r)) is not None:
                return _unexpanded(graph, r), gain
    return name, 1.0


def _unexpanded(graph: GraphView, name: str) -> str:
    for _ in range(4):
        name = passed_through(graph, name)
        expand = onnx_producer(graph, name, "Expand")
        if expand is None:
            return name
        name = expand.inputs[0]
    return name


def _largest(graph: GraphView, name: str) -> float | None:
    iv = graph.interval(name) if name else None
    if iv is None or iv.numblocks == 0 or not iv.is_finite:
        return None
    return iv.magnitude()


