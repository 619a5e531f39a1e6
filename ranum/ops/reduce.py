"""Reductions: ReduceSum/Mean/Max/Min/Prod/L1/L2/LogSum/LogSumExp/SumSquare (ArgMax, ArgMin and TopK:
:mod:`ranum.ops.selection`).

Block-wise where cheap: a block of ``s`` elements in ``[l, u]`` on a reduced axis contributes
``[s*l, s*u]`` to a sum, ``[l, u]`` to a max or min and ``[l, u]^s`` (independent factors) to a
product, so an output keeps the block grid of the kept axes and has one block per reduced axis.
``noop_with_empty_axes`` reduces over no axis: each element is its own slice (ReduceL1 gives |x|).

Invariants: outputs contain every onnxruntime result for inputs in the intervals. Float sums are
widened by the rounding error of any summation order, by intermediate overflow and, for products
and squares, by underflow. Empty reduced axes are unsupported (widest interval); integer sums and
products are assumed not to wrap.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from onnx import TensorProto
from torch import Tensor

from ranum.domain import arith, blocks
from ranum.domain.dtypes import float_facts, is_float, torch_dtype
from ranum.domain.interval import Interval
from ranum.errors import UnsupportedOperator
from ranum.ops._base import HULLS, NodeContext, OpRule
from ranum.ops._counts import least_elements, most_elements
from ranum.ops._infinite_operands import InfiniteOperands
from ranum.ops._pick_relations import one_hot_pick_floor
from ranum.ops._same_values import before_widening_cast, passed_through, same_value, unwidened_extreme
from ranum.ops._segment_relations import EXP_OF_ZERO_FLOOR
from ranum.ops.hazards import GRADIENT, Clamp, Hazard, HazardHit, Overflow
from ranum.ops.registry import register

__all__ = ["NON_POSITIVE_LOG_SUM", "ZERO_NORM_GRADIENT", "OutputAtMost", "ReduceL1", "ReduceL2", "ReduceLogSum",
           "ReduceLogSumExp", "ReduceMax", "ReduceMean", "ReduceMin", "ReduceProd", "ReduceSum", "ReduceSumSquare",
           "float_sum_bounds", "sum_gamma", "sums_of_some"]

INF = math.inf


def sum_gamma(count: int, eps: float) -> float:
    """Relative error bound (twice Higham's gamma_n) of ``count`` float operations of epsilon ``eps``."""
    n_u = max(count, 1) * eps / 2
    return INF if n_u >= 0.5 else 2.0 * n_u / (1.0 - n_u)



def sums_of_some(data: Interval, most: int | None) -> Interval | None:
    """Sums of any number of ``data``'s elements, up to ``most`` (None: not bounded), as one interval of
    unknown shape: the reductions and running sums of a tensor whose shape is known only at run time (the
    rows a boolean mask selected). Every such sum, of none up to ``most`` terms, lies in
    ``[min(0, most * lo), max(0, most * hi)]``, widened for floats by the rounding of ``most`` terms; without
    a count, terms of one sign keep it (up to the type's largest value for integers) and nothing else is
    known."""
    hull = data.hull()
    if hull is None:
        return None
    integer = not is_float(data.elem_type)
    lo, hi = (int(hull.lower), int(hull.upper)) if integer else (float(hull.lower), float(hull.upper))
    top = torch.iinfo(torch_dtype(data.elem_type)).max if integer else INF
    if most is None:
        if lo < 0 < hi:
            return None
        low, high = (0, top) if lo >= 0 else (-top, 0)
    elif is_float(data.elem_type):
        count = max(most, 1)
        s_lo, s_hi = float_sum_bounds(torch.tensor([lo], dtype=torch.float64), torch.tensor([hi], dtype=torch.float64),
                                      torch.tensor([float(count)], dtype=torch.float64), (0,), count, data.elem_type)
        low, high = min(0.0, float(s_lo.reshape(()))), max(0.0, float(s_hi.reshape(())))
    else:
        low, high = max(-top, min(0, most * lo)), min(top, max(0, most * hi))
    if integer:
        low, high = int(low), int(high)
    bounds = torch.tensor([low, high], dtype=hull.lower.dtype)
    return Interval.create(bounds[0], bounds[1], (), None, data.elem_type)


def _fold_sum(t: Tensor, dims: tuple[int, ...]) -> Tensor:
    return t.sum(dim=dims, keepdim=True) if dims else t


def _sizes(data: Interval, dims: tuple[int, ...]) -> Tensor:
    """Elements per block along the reduced axes, broadcastable to the block grid."""
    rank = len(data.shape)
    weights = torch.ones((1,) * rank, dtype=torch.float64)
    for d in dims:
        sizes = torch.tensor(blocks.block_sizes(data.splits[d], data.shape[d]), dtype=torch.float64)
        weights = weights * sizes.reshape([-1 if a == d else 1 for a in range(rank)])
    return weights


def float_sum_bounds(t_lo: Tensor, t_hi: Tensor, weights: Tensor, dims: tuple[int, ...], count: int,
                     elem_type: int, products: bool = False) -> tuple[Tensor, Tensor]:
    """Bounds (for any summation order) of float sums over ``dims`` (kept, size 1) of the term blocks
    ``[t_lo, t_hi]``, each counted ``weights`` times; ``count`` terms per sum; ``products``: each term
    is itself a rounded product (adds its rounding and underflow)."""
    s_lo = arith.nan_to(_fold_sum(t_lo * weights, dims), -INF)
    s_hi = arith.nan_to(_fold_sum(t_hi * weights, dims), INF)
    if not is_float(elem_type):
        return s_lo, s_hi
    facts = float_facts(elem_type)
    nonneg = (t_lo.amin(dim=dims, keepdim=True) if dims else t_lo) >= 0
    # float sums are monotone in each term: each side takes its slack from its own bounds only
    abs_lo = _fold_sum(t_lo.abs() * weights, dims)
    abs_hi = _fold_sum(t_hi.abs() * weights, dims)
    lo, hi = arith.with_accumulation_error(s_lo, s_hi, abs_lo, count, elem_type, nonneg, abs_sum_upper=abs_hi)
    if products:
        lo = torch.where(nonneg, (lo - abs_lo * facts.eps - count * facts.subnormal).clamp(min=0.0),
                         lo - abs_lo * facts.eps - count * facts.subnormal)
        hi = hi + abs_hi * facts.eps + count * facts.subnormal
    # partial sums past the accumulator's largest value
    gamma, limit = arith.accumulation_gamma(count, elem_type), arith.accumulator_facts(elem_type).max
    positive = _fold_sum(t_hi.clamp(min=0.0) * weights, dims) * (1.0 + gamma)
    negative = _fold_sum((-t_lo).clamp(min=0.0) * weights, dims) * (1.0 + gamma)
    hi = torch.where(positive > limit, torch.full_like(hi, INF), hi)
    lo = torch.where(negative > limit, torch.full_like(lo, -INF), lo)
    return arith.nan_to(lo, -INF), arith.nan_to(hi, INF)


def _result(data: Interval, dims: tuple[int, ...], keep: bool, lo: Tensor, hi: Tensor, elem_type: int) -> Interval:
    """Wrap block bounds reduced with keepdim into an interval of the output's shape."""
    shape = [1 if a in dims else n for a, n in enumerate(data.shape)]
    splits = [(0,) if a in dims else starts for a, starts in enumerate(data.splits)]
    if not keep and dims:
        kept = [a for a in range(len(shape)) if a not in dims]
        lo, hi = lo.squeeze(dims), hi.squeeze(dims)
        shape, splits = [shape[a] for a in kept], [splits[a] for a in kept]
    return Interval.create(lo, hi, tuple(splits), tuple(shape), elem_type)


def _exact_ints(iv: Interval | None, what: str) -> list[int] | None:
    if iv is not None and not iv.is_exact:
        raise UnsupportedOperator(f"{what} must be a constant, got a range")
    return None if iv is None else [int(v) for v in iv.exact_value().reshape(-1).tolist()]


def _axis(axis: int, rank: int) -> int:
    if not -rank <= axis < max(rank, 1):
        raise UnsupportedOperator(f"axis {axis} out of range for rank {rank}")
    return axis % rank if rank else 0


@dataclass(frozen=True)
class OutputAtMost(Hazard):
    """Fires where the output can be <= ``limit`` (or NaN): a monotone image of the reduced quantity,
    which ``distance`` recovers (``exp`` of a log-sum gives the sum back)."""

    name: str
    description: str
    limit: float
    text: str
    kind: str = "forward"
    operand: int = -1
    log_of_quantity: bool = False

    def operand_name(self, inputs: Sequence[str], outputs: Sequence[str]) -> str:
        return outputs[0] if outputs else ""

    def check(self, inputs, outputs):
        out = outputs[0] if outputs else None
        if out is None or out.numblocks == 0 or not bool((out.lower <= self.limit).any()):
            return None
        return HazardHit(bool((out.upper <= self.limit).all()), out.min(), out.max())

    def triggered(self, inputs, outputs):
        return torch.isnan(outputs[0]) | (outputs[0] <= self.limit)

    def distance(self, inputs, outputs):
        y = outputs[0].to(torch.float64)
        return torch.nan_to_num(torch.exp(y) if self.log_of_quantity else y, nan=-1.0)

    def invalid_text(self, elem_type):
        return self.text

    def repair_operand(self):
        return 0

    def repair(self, operand, inputs=()):
        """Clip the reduced input so that the quantity stays positive.

        A log of a sum: every element at least the smallest normal number. A norm: every element
        away from 0 by at least sqrt(smallest normal) (its square does not underflow), on the side
        that keeps more of the operand's range.
        """
        facts = float_facts(operand.elem_type)
        if self.log_of_quantity:
            return Clamp(facts.tiny, None)
        gap = 2.0 * math.sqrt(facts.tiny)
        above, below = Clamp(gap, None), Clamp(None, -gap)
        return above if operand.max() - gap >= -gap - operand.min() else below


# ReduceLogSum: log of a sum <= 0 is -inf or NaN (the sum's lower bound 0 maps to -inf).
NON_POSITIVE_LOG_SUM = OutputAtMost("log-nonpositive-sum", "log of a sum that can be zero or negative", -INF,
                                    "sum <= 0", log_of_quantity=True)
# ReduceL2: the derivative x / ||x|| is 0/0 where a reduced slice is all zero.
ZERO_NORM_GRADIENT = OutputAtMost("l2-zero-gradient", "gradient of an L2 norm is 0/0 when the reduced slice can be "
                                  "all zero", 0.0, "norm = 0", kind=GRADIENT)


@dataclass(frozen=True)
class _Reduce(OpRule):
    """Resolve the axes, reduce with keepdim (``_exact`` on tensors, ``_bounds`` on blocks), squeeze
    unless keepdims. One class serves every opset: ``axes`` is an attribute before opset 13 (ReduceSum) or 18 (the
    others) and an input from then on, when ``noop_with_empty_axes`` appears; a node carries one form.
    """

    axes: tuple[int, ...] = ()
    keepdims: int = 1
    noop_with_empty_axes: int = 0
    accumulates = True
    hazards = (Overflow(),)
    floats_only = False

    def _dims(self, rank: int, axes: Interval | list[int] | None, floating: bool) -> tuple[int, ...]:
        if self.floats_only and not floating:
            raise UnsupportedOperator(f"{self.op_type} on integer tensors is not supported")
        requested = _exact_ints(axes, "axes") if isinstance(axes, Interval) else axes
        if axes is None:
            requested = list(self.axes)
        if not requested:
            return () if self.noop_with_empty_axes else tuple(range(rank))
        return tuple(sorted({_axis(a, rank) for a in requested}))

    def concrete(self, ctx: NodeContext, data: Tensor, axes: Tensor | None = None) -> Tensor:
        dims = self._dims(data.dim(), None if axes is None else axes.reshape(-1).tolist(), data.is_floating_point())
        if any(data.shape[d] == 0 for d in dims):
            raise UnsupportedOperator(f"{self.op_type} over an empty axis")
        out = self._exact(data, dims)
        return out if self.keepdims or not dims else out.squeeze(dims)

    def abstract(self, ctx: NodeContext, data: Interval, axes: Interval | None = None) -> Interval:
        dims = self._dims(len(data.shape), axes, is_float(data.elem_type))
        if any(data.shape[d] == 0 for d in dims):
            raise UnsupportedOperator(f"{self.op_type} over an empty axis")
        lo, hi = self._bounds(data, dims)
        return _result(data, dims, bool(self.keepdims), lo, hi, data.elem_type)


def _count(shape: Sequence[int], dims: tuple[int, ...]) -> int:
    return math.prod(shape[d] for d in dims)


def _sum(x: Tensor, dims: tuple[int, ...]) -> Tensor:
    return x.sum(dim=dims, keepdim=True, dtype=x.dtype) if dims else x.clone()


class _SumOf(_Reduce):
    """A sum of one term per element (x, |x| or x*x), then a monotone map of the sum."""

    squares = False  # terms are rounded products x * x

    def _term(self, x: Tensor) -> Tensor:
        return x

    def _term_bounds(self, lo: Tensor, hi: Tensor) -> tuple[Tensor, Tensor]:
        return lo, hi

    def _map(self, s: Tensor, count: int) -> Tensor:
        return s

    def _exact(self, x, dims):
        return self._map(_sum(self._term(x), dims), _count(x.shape, dims))

    def _bounds(self, data, dims):
        count = _count(data.shape, dims)
        t_lo, t_hi = self._term_bounds(data.lower.double(), data.upper.double())
        lo, hi = float_sum_bounds(t_lo, t_hi, _sizes(data, dims), dims, count, data.elem_type, self.squares)
        return self._map(lo, count), self._map(hi, count)


@register("ReduceSum")
class ReduceSum(_SumOf):
    """Sum over axes; at least 1 where it sums ``exp(x - ReduceMax(x))`` (see :func:`_stable_exponential_floor`),
    about 1 where it sums a Softmax over its own axes (:func:`_softmax_sum_floor`)."""

    hazards = (Overflow(), InfiniteOperands(description="terms of +inf and -inf add to NaN", op="sum"))

    unknown_shapes = HULLS

    def without_shapes(self, ctx: NodeContext, data: Interval, axes: Interval | None = None) -> Interval | None:
        """Sums of at most all of data's elements (see :func:`sums_of_some`)."""
        return sums_of_some(data, most_elements(ctx.graph, ctx.node.inputs[0]) if ctx.graph is not None else None)

    def abstract(self, ctx: NodeContext, data: Interval, axes: Interval | None = None) -> Interval:
        out = super().abstract(ctx, data, axes)
        if not is_float(out.elem_type) or out.min() >= 1.0 or data.shape is None:
            return out
        dims = self._dims(len(data.shape), axes, True)
        floor = _stable_exponential_floor(ctx, dims)
        floor = _softmax_sum_floor(ctx, data, dims) if floor is None else floor
        if floor is not None:
            out = out.with_bounds(out.lower.clamp(min=floor), out.upper.clamp(min=floor))
        picked = one_hot_pick_floor(ctx, data, dims, bool(self.keepdims))
        if picked is not None:
            lo, hi = out.full()
            lo = torch.maximum(lo.to(torch.float64), picked)
            out = Interval.from_full(lo, torch.maximum(hi.to(torch.float64), lo), out.elem_type, ctx.budget)
        return out




def _stable_exponential_floor(ctx: NodeContext, dims: tuple[int, ...]) -> float | None:
    """A floor of about 1 where the summed data is ``exp(x - m)``, ``m = ReduceMax(x)`` keeping its axes, and
    the sum covers every axis the maximum was taken over (a hand-written or decomposed softmax's denominator):
    each sum then holds the term of an element where x is its maximum, ``exp(x - x) = exp(0)``, and a float sum
    of non-negative terms is at least each of them, in any order (also summed in a wider float type after a
    Cast, as the dynamo exporter sums float16 and bfloat16 tensors). Where x can be infinite, ``x - m`` can be NaN
    (``inf - inf``); the difference's own relation then does not apply (it needs a finite operand), so the Exp
    of that unbounded difference is a finding upstream."""
    graph = ctx.graph
    exp = graph.producer(before_widening_cast(graph, ctx.node.inputs[0])) if graph is not None and ctx.node.inputs \
        else None
    if exp is None or exp.op_type != "Exp" or exp.domain not in ("", "ai.onnx"):
        return None
    sub = graph.producer(exp.inputs[0])
    if sub is None or sub.op_type != "Sub" or sub.domain not in ("", "ai.onnx"):
        return None
    extreme = unwidened_extreme(graph, sub.inputs[1])
    peak = extreme[0] if extreme is not None else None
    if peak is None or peak.op_type != "ReduceMax" or int(peak.attributes.get("keepdims", 1)) != 1 \
            or not same_value(graph, extreme[1], sub.inputs[0]):
        return None
    x = graph.interval(sub.inputs[0])
    axes = graph.interval(peak.inputs[1]) if len(peak.inputs) > 1 and peak.inputs[1] else None
    if x is None or x.shape is None or (axes is not None and not axes.is_exact):
        return None
    rule = ReduceMax(axes=tuple(peak.attributes.get("axes", ())),
                     noop_with_empty_axes=int(peak.attributes.get("noop_with_empty_axes", 0)))
    try:
        peak_dims = rule._dims(len(x.shape), axes, True)
    except UnsupportedOperator:
        return None
    return EXP_OF_ZERO_FLOOR if set(peak_dims) <= set(dims) else None


def _softmax_sum_floor(ctx: NodeContext, data: Interval, dims: tuple[int, ...]) -> float | None:
    """About 1 where the summed data is a Softmax (or Hardmax) summed over exactly the axes it normalises
    (one axis from opset 13; before, the trailing axes from ``axis`` on, which it takes as one row): each row
    of probabilities sums to 1 up to the roundings of its exponentials' shares and of the sum, at most
    ``(2 n + 8)`` units for ``n`` terms (a Hardmax's row holds one 1 exactly)."""
    graph = ctx.graph
    node = graph.producer(passed_through(graph, ctx.node.inputs[0])) if graph is not None else None
    if node is None or node.op_type not in ("Softmax", "Hardmax") or node.domain not in ("", "ai.onnx") \
            or data.shape is None or not data.shape or not all(data.shape):
        return None
    rank = len(data.shape)
    axis = int(node.attributes.get("axis", -1 if ctx.opset >= 13 else 1)) % rank
    normalised = {axis} if ctx.opset >= 13 else set(range(axis, rank))
    if set(dims) != normalised:
        return None
    count = math.prod(data.shape[a] for a in normalised)
    return 1.0 if node.op_type == "Hardmax" else 1.0 - (2 * count + 8) * float_facts(data.elem_type).eps


@register("ReduceMean")
class ReduceMean(_SumOf):
    """Mean over axes (integers: the sum divided with truncation)."""

    hazards = (Overflow(), InfiniteOperands(description="terms of +inf and -inf add to NaN", op="sum"))

    unknown_shapes = HULLS

    def without_shapes(self, ctx: NodeContext, data: Interval, axes: Interval | None = None) -> Interval | None:
        """Means of up to all of data's elements (float): within data's hull, widened by the rounding of a
        float sum of that many terms (within ``gamma_n`` times the sum of their magnitudes, so the mean within
        ``gamma_n`` times the largest), where that sum cannot overflow; without a count, terms of one sign
        keep it (the sum may overflow to an infinity of that sign). onnxruntime's mean of no element is 0:
        joined in where the operand may be empty."""
        hull = data.hull()
        if hull is None or ctx.graph is None or not is_float(data.elem_type):
            return None
        most = most_elements(ctx.graph, ctx.node.inputs[0])
        lo, hi = float(hull.lower), float(hull.upper)
        largest = max(abs(lo), abs(hi))
        gamma = arith.accumulation_gamma(most, data.elem_type) if most is not None else INF
        if math.isfinite(largest) and math.isfinite(gamma) \
                and most * largest * (1 + gamma) < arith.accumulator_facts(data.elem_type).max:
            low, high = lo - gamma * largest, hi + gamma * largest
        elif lo >= 0 or hi <= 0:
            low, high = (0.0, INF) if lo >= 0 else (-INF, 0.0)
        else:
            return None
        if least_elements(ctx.graph, ctx.node.inputs[0]) == 0:
            low, high = min(low, 0.0), max(high, 0.0)
        return Interval.create(torch.tensor(low, dtype=torch.float64), torch.tensor(high, dtype=torch.float64),
                               (), None, data.elem_type)

    def _exact(self, x, dims):
        if x.is_floating_point() or not dims:
            return x.mean(dim=dims, keepdim=True) if dims else x.clone()
        return torch.div(_sum(x, dims), _count(x.shape, dims), rounding_mode="trunc")

    def _map(self, s, count):
        return s / count


@register("ReduceL1")
class ReduceL1(_SumOf):
    """Sum of absolute values."""

    def _term(self, x):
        return x.abs()

    def _term_bounds(self, lo, hi):
        return torch.where(lo >= 0, lo, torch.where(hi <= 0, -hi, torch.zeros_like(lo))), torch.maximum(-lo, hi)


@register("ReduceSumSquare")
class ReduceSumSquare(_SumOf):
    """Sum of squares: never negative."""

    output_range = (0.0, INF)
    squares = True

    def _term(self, x):
        return x * x

    def _term_bounds(self, lo, hi):
        return arith.square(lo, hi)


@register("ReduceL2")
class ReduceL2(ReduceSumSquare):
    """Square root of the sum of squares (float tensors only)."""

    hazards = (Overflow(), ZERO_NORM_GRADIENT)
    floats_only = True

    def _map(self, s, count):
        return torch.sqrt(s)


@register("ReduceLogSum")
class ReduceLogSum(_SumOf):
    """Log of the sum (float tensors only)."""

    hazards = (NON_POSITIVE_LOG_SUM, Overflow())
    floats_only = True
    ulps = 4.0  # transcendental

    def _map(self, s, count):
        return torch.log(s)  # bounds: NaN below 0 becomes -inf (lower) / +inf (upper), still sound


@register("ReduceMax")
class ReduceMax(_Reduce):
    """Maximum over axes: exact, block-wise."""
    unknown_shapes = HULLS

    def without_shapes(self, ctx: NodeContext, data: Interval, axes: Interval | None = None) -> Interval | None:
        """Extremes of some of data's elements: its hull, joined with onnxruntime's extreme of no element (-inf
        for a maximum, +inf for a minimum; an integer type's own extreme) where the operand may be empty."""
        hull = data.hull()
        if hull is None:
            return None
        low, high = hull.lower, hull.upper
        if ctx.graph is None or least_elements(ctx.graph, ctx.node.inputs[0]) == 0:
            if is_float(data.elem_type):
                empty = -INF if self.largest else INF
            else:
                info = torch.iinfo(torch_dtype(data.elem_type))
                empty = info.min if self.largest else info.max
            low, high = torch.clamp(low, max=empty), torch.clamp(high, min=empty)
        return Interval.create(low, high, (), None, data.elem_type)

    accumulates = False
    rounds = False
    hazards = ()  # selects an input value: never creates NaN (of no element: an infinity, see without_shapes)
    largest = True

    def _exact(self, x, dims):
        return (torch.amax if self.largest else torch.amin)(x, dim=dims, keepdim=True) if dims else x.clone()

    def _bounds(self, data, dims):
        fold = torch.amax if self.largest else torch.amin
        return (fold(data.lower, dim=dims, keepdim=True), fold(data.upper, dim=dims, keepdim=True)) if dims \
            else (data.lower, data.upper)


@register("ReduceMin")
class ReduceMin(ReduceMax):
    """Minimum over axes: exact, block-wise."""

    largest = False


_EXP64_OVERFLOW = 709.78  # float64 exp is inf above log(1.8e308)
_EXP64_UNDERFLOW = -745.13  # and 0 below log(4.9e-324)


@register("ReduceLogSumExp")
class ReduceLogSumExp(_Reduce):
    """Log of the sum of exponentials (float tensors only), evaluated max-shifted by onnxruntime. Its shift is
    the largest finite element (0 where there is none), so infinite inputs give no NaN: a row holding +inf
    gives +inf, a row of -inf (a CTC or CRF recursion's padding) -inf, both the infinities of their inputs."""

    hazards = (Overflow(),)
    floats_only = True
    ulps = 4.0  # transcendental

    def _exact(self, x, dims):
        return torch.logsumexp(x, dim=dims, keepdim=True) if dims else x.clone()

    def _bounds(self, data, dims):  # monotone in every element: log-sum-exp of the bounds
        lo, hi = data.lower.double(), data.upper.double()
        log_w = torch.log(_sizes(data, dims))
        if dims:
            lo, hi = (torch.logsumexp(b + log_w, dim=dims, keepdim=True) for b in (lo, hi))
        count, eps = _count(data.shape, dims), float_facts(data.elem_type).eps
        # max-shifted evaluation: exp errors, the float sum and the log, as an absolute slack
        slack = sum_gamma(2 * count + 16, eps) + eps * (1.0 + math.log(count))
        lo, hi = lo - slack, hi + slack
        if data.elem_type in (TensorProto.FLOAT16, TensorProto.BFLOAT16):
            # onnxruntime sums 16-bit exponentials in float64 without the shift: exp overflows past
            # 709.78 (the sum of n terms past 709.78 - log n), and a row below -745.13 sums to 0
            top = data.upper.double().amax(dim=dims, keepdim=True) if dims else data.upper.double()
            bottom = data.lower.double().amax(dim=dims, keepdim=True) if dims else data.lower.double()
            hi = torch.where(top > _EXP64_OVERFLOW - math.log(max(count, 1)), torch.full_like(hi, INF), hi)
            lo = torch.where(bottom < _EXP64_UNDERFLOW, torch.full_like(lo, -INF), lo)
        return lo, hi


@register("ReduceProd")
class ReduceProd(_Reduce):
    """Product over axes: exact interval powers per block, then a pairwise product."""

    def _exact(self, x, dims):
        for d in sorted(dims, reverse=True):
            x = x.prod(dim=d, keepdim=True, dtype=x.dtype)
        return x.clone()

    def _bounds(self, data, dims):
        lo, hi = data.lower.double(), data.upper.double()
        weights = _sizes(data, dims)
        p_lo, p_hi = _interval_power(lo, hi, weights.expand_as(lo).to(torch.int64))
        for d in dims:
            p_lo, p_hi = _tree_product(p_lo, p_hi, d)
        if not is_float(data.elem_type):
            return p_lo, p_hi
        return _product_error(p_lo, p_hi, lo, hi, weights, dims, _count(data.shape, dims), data.elem_type)


def _interval_power(lo: Tensor, hi: Tensor, k: Tensor) -> tuple[Tensor, Tensor]:
    """Product of ``k`` independent factors in [lo, hi] (exact), by repeated squaring."""
    res_lo, res_hi, base_lo, base_hi = torch.ones_like(lo), torch.ones_like(hi), lo, hi
    for bit in range(int(k.max()).bit_length() if k.numel() else 0):
        take = ((k >> bit) & 1).bool()
        m_lo, m_hi = arith.mul(res_lo, res_hi, base_lo, base_hi)
        res_lo, res_hi = torch.where(take, m_lo, res_lo), torch.where(take, m_hi, res_hi)
        base_lo, base_hi = arith.mul(base_lo, base_hi, base_lo, base_hi)
    return res_lo, res_hi


def _tree_product(lo: Tensor, hi: Tensor, dim: int) -> tuple[Tensor, Tensor]:
    """Interval product of the blocks along ``dim`` (pairwise, keepdim)."""
    while lo.shape[dim] > 1:
        if lo.shape[dim] % 2:
            pad = torch.ones_like(lo.narrow(dim, 0, 1))
            lo, hi = torch.cat([lo, pad], dim), torch.cat([hi, pad], dim)
        even = torch.arange(0, lo.shape[dim], 2)
        lo, hi = arith.mul(lo.index_select(dim, even), hi.index_select(dim, even),
                           lo.index_select(dim, even + 1), hi.index_select(dim, even + 1))
    return lo, hi


def _product_error(p_lo: Tensor, p_hi: Tensor, lo: Tensor, hi: Tensor, weights: Tensor, dims: tuple[int, ...],
                   count: int, elem_type: int) -> tuple[Tensor, Tensor]:
    """Rounding (relative), underflow (absolute) and intermediate overflow of a float product."""
    facts = float_facts(elem_type)
    gamma = sum_gamma(count, facts.eps)  # partial products are at most the product of max(1, |factor|)
    log_partial = _fold_sum(weights * torch.log(torch.maximum(lo.abs(), hi.abs()).clamp(min=1.0)), dims)
    under = count * facts.subnormal * torch.exp(log_partial)
    new_lo = arith.nan_to(p_lo - p_lo.abs() * gamma - under, -INF)
    new_hi = arith.nan_to(p_hi + p_hi.abs() * gamma + under, INF)
    new_lo = torch.where(p_lo >= 0, new_lo.clamp(min=0.0), new_lo)  # rounding keeps the sign (or gives 0)
    new_hi = torch.where(p_hi <= 0, new_hi.clamp(max=0.0), new_hi)
    over = log_partial + gamma > arith.accumulator_facts(elem_type).log_max
    new_hi = torch.where(over & (p_hi > 0), torch.full_like(new_hi, INF), new_hi)
    new_lo = torch.where(over & (p_lo < 0), torch.full_like(new_lo, -INF), new_lo)
    return new_lo, new_hi
