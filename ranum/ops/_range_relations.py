"""Ratios within one set's range: ``(max - x) / (max - min)`` and its kin lie in ``[0, 1]``.

Colour conversions to HSV or HLS (torchvision's ``adjust_hue``, kornia's ``rgb_to_hsv``) divide differences
of a pixel's channels by the spread of those channels, each guarded where the spread is 0:
``(max - c) / where(max == min, 1, max - min)``. An interval cannot see that the numerator is at most the
divisor: it holds both ends of both ranges, and the divisor is anywhere above 0.

Let ``M`` and ``m`` be the maximum and minimum of a finite tensor ``S`` over some axes (ReduceMax and
ReduceMin with the same attributes, or a binary ``Max`` and ``Min`` of the same two operands), and call a
*member* a slice of ``S`` at one index of a reduced axis (any other axis whole), or an operand of the binary
pair: at each position, ``m <= member <= M``. A numerator that is a linear form
``sum_v a_v v + c d`` of members, of ``M`` and ``m``, and of the divisor ``d`` itself (kornia adds
``2 d`` and ``4 d`` to pick the hue's sextant), with the ``a_v`` summing to 0, divided by ``D = M - m``:

    sum_v a_v v / D = sum_v a_v (v - m) / D,  with (v - m) / D in [0, 1], exactly 1 for M and 0 for m,

so the quotient lies in ``[c + a_M + sum of the negative a, c + a_M + sum of the positive a]`` (members'
coefficients only). Divided by ``D = M`` where ``S >= 0``, every member's ratio lies in ``[0, 1]`` (M's is
1) and the coefficients need not sum to 0. A ``Where`` in the numerator gives one form per branch (the
hull is taken); a ``Where(guard, k, D)`` divisor holds the constant k where the guard holds, whose quotient
is the numerator's interval over k, joined in.

Rounding. Every operation's result is a form whose coefficients over the set's values sum to 0 (in a
range; others hold the values themselves, which D does not bound, and are refused), so it lies within
``B D`` of 0, ``B`` the largest sum of |coefficients| met: its rounding moves it by at most ``u B D``, and
that error reaches the quotient scaled by the later coefficients (within ``B``). The division adds a
relative u. So the real bounds are widened by twice ``u (B + 1)`` per operation plus ``u`` of the
quotient. Where results are subnormal, sums and differences are exact, and a product by a constant that
is not a power of 2 errs by at most a subnormal: over the least divisor, per such product. The divisor's
interval must exclude 0 (a guard that selects D only where it is non-zero, or D above 0), and S must be
finite with room for the form's sums below the largest float.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import product

import torch

from ranum.domain.dtypes import float_facts, is_float
from ranum.domain.interval import Interval
from ranum.graph.model import Node
from ranum.ops._base import GraphView, NodeContext
from ranum.ops._difference_relations import slice_plan
from ranum.ops._relations import exact_scalar, reduced_axes
from ranum.ops._same_values import passed_through, same_value

__all__ = ["range_ratio_bounds"]

_FORMS = 16  # most alternative forms (one per combination of Where branches) followed
_DEPTH = 12  # nodes followed up from the numerator
_RESHAPES = frozenset({"Squeeze", "Unsqueeze", "Reshape", "Flatten", "Identity"})

Form = dict  # term -> coefficient; terms: "M", "m", "d", or a member ("x", data, axis, index)


@dataclass(frozen=True)
class _Extremes:
    """``high`` and ``low``: the maximum and minimum of ``data`` over ``axes`` (kept where ``keepdims``), or
    of the two ``operands`` of a binary Max and Min."""

    high: str
    low: str
    data: str | None
    axes: tuple[int, ...]
    operands: tuple[str, ...]
    shape: tuple[int, ...]


def range_ratio_bounds(ctx: NodeContext, numerator: Interval, divisor: Interval) -> tuple[float, float] | None:
    """Bounds of ``Div(numerator, divisor)`` from the relation above, or None where it does not apply."""
    graph = ctx.graph
    if graph is None or not is_float(numerator.elem_type) or numerator.shape is None or divisor.shape is None \
            or len(ctx.node.inputs) != 2 or divisor.numblocks == 0 or numerator.numblocks == 0:
        return None
    if not divisor.min() > 0:  # D's zeros must be guarded away (or D above 0)
        return None
    n_name, d_name = ctx.node.inputs
    spread, constant, guard = _guarded(graph, d_name)
    found = _spread(graph, spread)
    if found is None:
        return None
    extremes, ranged = found
    if numerator.shape != extremes.shape or divisor.shape != extremes.shape:
        return None
    data = graph.interval(extremes.data) if extremes.data else _hull_of(graph, extremes.operands)
    if data is None or not data.is_finite or (not ranged and data.min() < 0):
        return None
    walker = _Forms(graph, extremes, d_name, spread, ranged)
    forms = walker.forms(n_name, _DEPTH)
    if not forms:
        return None
    facts = float_facts(numerator.elem_type)
    low, high = math.inf, -math.inf
    for form in forms:
        bounds = _quotient_bounds(form, ranged)
        if bounds is None:
            return None
        low, high = min(low, bounds[0]), max(high, bounds[1])
    weight = max(walker.weight, *(_weight(form) for form in forms))
    magnitude = max(abs(data.min()), abs(data.max()))
    if not magnitude * 2 * (weight + 1) < facts.max:
        return None
    unit = facts.eps / 2
    slack = 2 * unit * ((weight + 1) * (walker.operations + 2) + max(abs(low), abs(high)))
    slack += walker.scalings * facts.subnormal / divisor.min()  # a scaling's underflow, absolute
    low, high = low - slack, high + slack
    if constant is not None:  # elements where the guard selects the constant k
        if guard is not None and _all_equal_where(graph, guard, extremes, spread, ranged, forms):
            ends = tuple(form.get("d", 0.0) for form in forms)  # the set's values cancel: (c k) / k
            ends = (min(ends) - slack, max(ends) + slack)
        else:
            ends = (numerator.min() / constant, numerator.max() / constant)
        low, high = min(low, *ends), max(high, *ends)
    return low, high


def _all_equal_where(graph: GraphView, guard: str, extremes: _Extremes, spread: str, ranged: bool,
                     forms: list[Form]) -> bool:
    """Whether every form's set values cancel where ``guard`` holds: the guard is ``M == m`` (or the range
    equal to 0), so the set's values are all equal there and each form's coefficients over them sum to 0,
    or, for a divisor ``M`` of values >= 0, ``M == 0``, so they are all 0. Differences of equal values are
    exactly 0, and so are their sums and multiples."""
    node = graph.producer(passed_through(graph, guard))
    if node is None or node.op_type != "Equal" or node.domain not in ("", "ai.onnx") or len(node.inputs) != 2:
        return False
    p, q = node.inputs
    zero = any(exact_scalar(graph, x) == 0.0 and same_value(graph, y, spread) for x, y in ((p, q), (q, p)))
    extremes_equal = any(same_value(graph, x, extremes.high) and same_value(graph, y, extremes.low)
                         for x, y in ((p, q), (q, p)))
    if ranged or extremes_equal:
        return (zero or extremes_equal) and all(abs(_total(form)) <= 1e-12 for form in forms)
    return zero  # M == 0 over values >= 0


def _quotient_bounds(form: Form, ranged: bool) -> tuple[float, float] | None:
    """Bounds of ``form / D`` (see the module docstring)."""
    constant = form.get("d", 0.0) + form.get("M", 0.0)
    members = [c for term, c in form.items() if term not in ("d", "M")]
    if ranged:
        if abs(_total(form)) > 1e-12:
            return None
        members = [c for term, c in form.items() if term not in ("d", "M", "m")]
    return constant + sum(min(c, 0.0) for c in members), constant + sum(max(c, 0.0) for c in members)


def _guarded(graph: GraphView, name: str) -> tuple[str, float | None, str | None]:
    """The divisor's spread and, for ``Where(c, k, D)`` (or ``Where(c, D, k)``) with k an exact non-zero
    scalar, k, and c where k is selected where c holds (else None); for any other divisor, itself and two
    Nones."""
    source = passed_through(graph, name)
    node = graph.producer(source)
    if node is not None and node.op_type == "Where" and node.domain in ("", "ai.onnx") and len(node.inputs) == 3:
        for constant, other in ((node.inputs[1], node.inputs[2]), (node.inputs[2], node.inputs[1])):
            k = exact_scalar(graph, constant)
            if k is not None and math.isfinite(k) and k != 0:
                return other, k, node.inputs[0] if constant == node.inputs[1] else None
    return source, None, None


def _spread(graph: GraphView, name: str) -> tuple[_Extremes, bool] | None:
    """The extremes behind ``name`` and whether it is their range ``M - m`` (True) or ``M`` alone (False)."""
    source = passed_through(graph, name)
    node = graph.producer(source)
    if node is not None and node.op_type == "Sub" and node.domain in ("", "ai.onnx") and len(node.inputs) == 2:
        extremes = _extremes(graph, node.inputs[0], node.inputs[1])
        if extremes is not None:
            return extremes, True
    extremes = _extremes(graph, source, None)
    return (extremes, False) if extremes is not None else None


def _extremes(graph: GraphView, high: str, low: str | None) -> _Extremes | None:
    """``high`` as a maximum, with ``low`` the minimum of the same values (found among the consumers of the
    maximum's data where ``low`` is None)."""
    high_node = graph.producer(passed_through(graph, high))
    if high_node is None or high_node.domain not in ("", "ai.onnx") or high_node.op_type not in ("Max", "ReduceMax") \
            or not high_node.inputs:
        return None
    shape = _shape(graph, high)
    if shape is None:
        return None
    candidates = [low] if low is not None else [
        out for node in graph.consumers(high_node.inputs[0]) for out in node.outputs[:1]]
    for candidate in candidates:
        low_node = graph.producer(passed_through(graph, candidate))
        if low_node is None or not _min_of_same(graph, low_node, high_node):
            continue
        if high_node.op_type == "Max":
            if len(high_node.inputs) != 2 or any(_shape(graph, x) != shape for x in high_node.inputs):
                return None
            return _Extremes(high, candidate, None, (), tuple(high_node.inputs), shape)
        data = graph.interval(high_node.inputs[0])
        if data is None or data.shape is None or not all(data.shape):  # no empty axis (its maximum is -inf)
            return None
        axes = reduced_axes(graph, high_node, len(data.shape))
        if axes is None:
            return None
        return _Extremes(high, candidate, high_node.inputs[0], tuple(axes), (), shape)
    return None


def _min_of_same(graph: GraphView, low: Node, high: Node) -> bool:
    """Whether ``low`` takes the minimum of what ``high`` takes the maximum of."""
    if low.domain not in ("", "ai.onnx"):
        return False
    if (low.op_type, high.op_type) == ("Min", "Max"):
        return len(low.inputs) == len(high.inputs) == 2 and any(
            same_value(graph, low.inputs[0], a) and same_value(graph, low.inputs[1], b)
            for a, b in (high.inputs, high.inputs[::-1]))
    return (low.op_type, high.op_type) == ("ReduceMin", "ReduceMax") and len(low.inputs) == len(high.inputs) \
        and low.attributes == high.attributes and bool(low.inputs) \
        and all(same_value(graph, a, b) for a, b in zip(low.inputs, high.inputs))


def _hull_of(graph: GraphView, names: tuple[str, ...]) -> Interval | None:
    """One interval holding every operand's values (their hull), or None where one is unknown."""
    ivs = [graph.interval(name) for name in names]
    if any(iv is None or iv.shape is None or iv.numblocks == 0 for iv in ivs):
        return None
    low, high = min(iv.min() for iv in ivs), max(iv.max() for iv in ivs)
    return Interval.uniform(low, high, (1,), ivs[0].elem_type)


def _shape(graph: GraphView, name: str) -> tuple[int, ...] | None:
    iv = graph.interval(name)
    return None if iv is None else iv.shape


def _squeezed(shape: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(n for n in shape if n != 1)


class _Forms:
    """Linear forms of a numerator over the members of one set's extremes (see the module docstring)."""

    def __init__(self, graph: GraphView, extremes: _Extremes, divisor: str, spread: str, ranged: bool) -> None:
        self.graph, self.extremes, self.divisor, self.spread, self.ranged = graph, extremes, divisor, spread, ranged
        self.operations = 0  # float operations of the forms (each rounds once)
        self.weight = 0.0  # the largest sum of |coefficients| of an operation's result
        self.scalings = 0  # products by constants other than powers of 2 (inexact where they underflow)

    def _rounded(self, forms: list[Form]) -> list[Form] | None:
        """``forms``, the results of one float operation, counted for the rounding bound; None where a
        result is not within a multiple of D (in a range, a form whose coefficients do not sum to 0 holds
        the set's values themselves, whose rounding D does not bound)."""
        if len(forms) > _FORMS or (self.ranged and any(abs(_total(form)) > 1e-12 for form in forms)):
            return None
        self.operations += 1
        self.weight = max(self.weight, *(_weight(form) for form in forms))
        return forms

    def forms(self, name: str, depth: int) -> list[Form] | None:
        """The alternative forms of ``name`` (one per branch of the Wheres it passes), or None."""
        graph, ex = self.graph, self.extremes
        if depth == 0:
            return None
        source = passed_through(graph, name)
        for term, target in (("d", self.divisor), ("M", ex.high), ("m", ex.low)):
            if same_value(graph, source, target):
                return [{term: 1.0}]
        if same_value(graph, source, self.spread):
            return [{"M": 1.0, "m": -1.0}] if self.ranged else [{"M": 1.0}]
        if _shape(graph, source) != ex.shape:
            return None
        for i, operand in enumerate(ex.operands):
            if same_value(graph, source, operand):
                return [{("x", i): 1.0}]
        node = graph.producer(source)
        if node is None or node.domain not in ("", "ai.onnx"):
            return None
        if ex.data is not None:
            position = self._slice_position(source, depth)
            if position is not None:
                return self._sliced(*position, depth - 1)
        return self._combined(node, depth)

    def _combined(self, node: Node, depth: int) -> list[Form] | None:
        op = node.op_type
        if op == "Where" and len(node.inputs) == 3:
            branches = [self.forms(x, depth - 1) for x in node.inputs[1:]]
            return None if any(b is None for b in branches) else _capped(branches[0] + branches[1])
        if op in ("Add", "Sub") and len(node.inputs) == 2:
            parts = [self.forms(x, depth - 1) for x in node.inputs]
            if any(p is None for p in parts):
                return None
            sign = 1.0 if op == "Add" else -1.0
            return self._rounded([_sum(f, g, sign) for f, g in product(parts[0], parts[1])])
        if op == "Neg" and len(node.inputs) == 1:
            part = self.forms(node.inputs[0], depth - 1)
            return None if part is None else [_scaled(f, -1.0) for f in part]
        if op in ("Mul", "Div") and len(node.inputs) == 2:
            for own, factor in ((0, 1), (1, 0)) if op == "Mul" else ((0, 1),):
                k = exact_scalar(self.graph, node.inputs[factor])
                if k is None or not math.isfinite(k) or (op == "Div" and k == 0):
                    continue
                part = self.forms(node.inputs[own], depth - 1)
                if part is None:
                    return None
                self.scalings += math.frexp(abs(k))[0] != 0.5
                return self._rounded([_scaled(f, k if op == "Mul" else 1.0 / k) for f in part])
        return None

    def _sliced(self, tensor: str, axis: int, index: int, depth: int) -> list[Form] | None:
        """The forms of ``tensor``'s slice at ``index`` of ``axis`` (one of the set's reduced axes), where
        ``tensor`` has the data's shape, or the extremes' with that axis kept as 1 (broadcast)."""
        graph, ex = self.graph, self.extremes
        if depth == 0:
            return None
        source = passed_through(graph, tensor)
        data_shape = _shape(graph, ex.data)
        shape = _shape(graph, source)
        if shape is None or data_shape is None or len(shape) != len(data_shape):
            return None
        if shape == data_shape and same_value(graph, source, ex.data):
            return [{("x", axis, index): 1.0}]
        if shape == tuple(1 if a in ex.axes else n for a, n in enumerate(data_shape)):
            # broadcast along the reduced axes: the same value at every index
            for term, target in (("M", ex.high), ("m", ex.low), ("d", self.divisor)):
                if self._reshaped_from(source, target, depth):
                    return [{term: 1.0}]
        node = graph.producer(source)
        if node is None or node.domain not in ("", "ai.onnx") or shape != data_shape:
            return None
        if node.op_type in ("Add", "Sub") and len(node.inputs) == 2:
            parts = [self._sliced(x, axis, index, depth - 1) for x in node.inputs]
            if any(p is None for p in parts):
                return None
            sign = 1.0 if node.op_type == "Add" else -1.0
            return self._rounded([_sum(f, g, sign) for f, g in product(parts[0], parts[1])])
        return None

    def _reshaped_from(self, name: str, target: str, depth: int) -> bool:
        """Whether ``name`` is ``target`` reshaped by adding or dropping axes of size 1."""
        graph = self.graph
        for _ in range(depth):
            if same_value(graph, name, target):
                return True
            node = graph.producer(passed_through(graph, name))
            if node is None or node.op_type not in _RESHAPES or not node.inputs or not self._keeps_order(node):
                return False
            name = node.inputs[0]
        return False

    def _keeps_order(self, node: Node) -> bool:
        """Whether a reshape only adds or drops axes of size 1 (element order and positions kept)."""
        before, after = _shape(self.graph, node.inputs[0]), _shape(self.graph, node.outputs[0])
        return before is not None and after is not None and _squeezed(before) == _squeezed(after)

    def _slice_position(self, name: str, depth: int) -> tuple[str, int, int] | None:
        """``(tensor, axis, index)`` where ``name`` is the slice of ``tensor`` (of the set's data rank) at
        ``index`` of ``axis``, one of the reduced axes, every other axis whole, maybe reshaped by axes of
        size 1."""
        graph, ex = self.graph, self.extremes
        for _ in range(depth):
            node = graph.producer(passed_through(graph, name))
            if node is None or node.domain not in ("", "ai.onnx"):
                return None
            if node.op_type in _RESHAPES and node.inputs and self._keeps_order(node):
                name = node.inputs[0]
                continue
            found = _picked(graph, node, name)
            if found is None:
                return None
            tensor, axis, index = found
            data_shape = _shape(graph, ex.data)
            shape = _shape(graph, tensor)
            if shape is None or data_shape is None or len(shape) != len(data_shape) or axis not in ex.axes \
                    or _squeezed(shape[:axis] + shape[axis + 1:]) != _squeezed(ex.shape):
                return None
            return tensor, axis, index
        return None


def _picked(graph: GraphView, node: Node, name: str) -> tuple[str, int, int] | None:
    """``(tensor, axis, index)`` where ``name`` (an output of ``node``) is ``tensor``'s slice at one index
    of one axis, every other axis whole: a Gather of one exact index, a Slice of one index, or a part of
    a Split of size 1."""
    data = graph.interval(node.inputs[0]) if node.inputs else None
    if data is None or data.shape is None:
        return None
    shape, rank = data.shape, len(data.shape)
    op = node.op_type
    if op == "Gather" and len(node.inputs) == 2:
        axis = node.attributes.get("axis", 0)
        index = exact_scalar(graph, node.inputs[1])
        if not -rank <= axis < rank or index is None:
            return None
        axis %= rank
        index = int(index) % shape[axis] if -shape[axis] <= index < shape[axis] else None
        return None if index is None else (node.inputs[0], axis, index)
    if op == "Split" and name in node.outputs:
        axis = node.attributes.get("axis", 0)
        if not -rank <= axis < rank:
            return None
        axis %= rank
        sizes = [_shape(graph, out) for out in node.outputs]
        if any(s is None or len(s) != rank for s in sizes):
            return None
        which = node.outputs.index(name)
        if sizes[which][axis] != 1:
            return None
        return node.inputs[0], axis, sum(s[axis] for s in sizes[:which])
    if op == "Slice":
        plan = slice_plan(graph, node, shape)
        if plan is None:
            return None
        narrowed = [(axis, index) for axis, index in plan
                    if not torch.equal(index, torch.arange(shape[axis], dtype=index.dtype))]
        if len(narrowed) != 1 or narrowed[0][1].numel() != 1:
            return None
        return node.inputs[0], narrowed[0][0], int(narrowed[0][1][0])
    return None


def _sum(first: Form, second: Form, sign: float) -> Form:
    out = dict(first)
    for term, c in second.items():
        out[term] = out.get(term, 0.0) + sign * c
    return {term: c for term, c in out.items() if c != 0.0}


def _scaled(form: Form, factor: float) -> Form:
    return {term: c * factor for term, c in form.items()}


def _capped(forms: list[Form]) -> list[Form] | None:
    return forms if len(forms) <= _FORMS else None


def _total(form: Form) -> float:
    """The sum of the coefficients of the set's values (the divisor's excluded)."""
    return sum(c for term, c in form.items() if term != "d")


def _weight(form: Form) -> float:
    return sum(abs(c) for c in form.values())
