"""Linear algebra: MatMul, Gemm, Einsum.

Interval products use the midpoint-radius form: for operands ``m_k +- r_k`` the product
``prod(m_k)`` is the midpoint and ``prod(|m_k| + r_k) - prod(|m_k|)`` bounds the radius; the
first term also bounds the sum of |terms|, which sizes the float accumulation error
(:func:`ranum.domain.arith.with_accumulation_error`, count = terms summed per output element).
Exact operands skip the products that vanish; an interval times an exact float32 or 16-bit weight takes
two float32 products (:mod:`ranum.ops._float32_products`). Invariants: results are sound for float32 (and
16-bit floats accumulated in float32) execution; an unbounded operand end gives an unbounded
midpoint-radius pair (midpoint 0, radius +inf), never NaN bounds. Integer results whose bounds
leave the dtype's range become the dtype's widest interval (execution wraps around).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from ranum.domain import arith, blocks
from ranum.domain.dtypes import is_float, torch_dtype
from ranum.domain.interval import Interval, broadcast_shape, elementwise, representatives, spread
from ranum.errors import InconsistentShapes, UnsupportedOperator
from ranum.ops._base import HULLS, NodeContext, OpRule
from ranum.ops._float32_products import float32_product
from ranum.ops._infinite_operands import InfiniteOperands
from ranum.ops._relations import convex_combination_bounds, meet, norm_product_bounds
from ranum.ops.hazards import Overflow
from ranum.ops.registry import register

__all__ = ["Einsum", "Gemm", "MatMul", "blockwise_product", "center_radius", "contracted", "contraction_blocks",
           "interval_product"]

Product = Callable[..., Tensor]


def center_radius(iv: Interval) -> tuple[Tensor, Tensor]:
    """Full-shape float64 midpoint and radius; an unbounded element gets (0, +inf)."""
    if iv.is_point:  # a point (e.g. an exact weight): its value and no radius
        mid = iv.full()[0].to(torch.float64)
        return mid, torch.zeros((), dtype=torch.float64).expand(mid.shape)
    lo, hi = (t.to(torch.float64) for t in iv.full())
    finite = torch.isfinite(lo) & torch.isfinite(hi)
    mid = torch.where(finite, (lo + hi) / 2, torch.zeros_like(lo))
    rad = torch.where(finite, (hi - lo) / 2, torch.full_like(lo, torch.inf))
    return mid, rad


def interval_product(
    fn: Product, operands: Sequence[Interval], count: int | None = None
) -> tuple[Tensor, Tensor, Tensor]:
    """Midpoint, radius and |term|-sum bound of a multilinear ``fn`` (matmul, conv, einsum).

    Args:
        fn: a function linear in each argument (e.g. ``torch.matmul``).
        operands: the interval operands, in ``fn``'s argument order.
        count: the float accumulation's number of terms (as later given to :func:`finish_sum`). With
            it, an interval times a float32/16-bit point may take :func:`float32_product`, which
            returns the radius with the accumulation error already in it and a 0-d zero |term| sum.

    Returns:
        ``(mid, rad, abs_sum)`` in exact real arithmetic (up to float64 rounding).
    """
    if count is not None:
        fast = float32_product(fn, operands, count)
        if fast is not None:
            return fast
    pairs = [center_radius(iv) for iv in operands]
    # an exact infinite value has midpoint 0 and radius inf (inf * 0 is not 0): not exact here
    exact = [iv.is_exact and not bool(torch.isinf(r).any()) for iv, (_, r) in zip(operands, pairs)]
    mid = fn(*[m for m, _ in pairs])
    magnitudes = [m.abs() for m, _ in pairs]
    if all(exact):
        return mid, torch.zeros_like(mid), fn(*magnitudes)
    widths = [a if e else a + r for a, (_, r), e in zip(magnitudes, pairs, exact)]
    abs_sum = arith.nan_to(fn(*widths), torch.inf)
    if len(pairs) == 2 and any(exact):
        # One exact operand: the radius is a single product, free of cancellation.
        args = [a if e else r for a, (_, r), e in zip(magnitudes, pairs, exact)]
        rad = arith.nan_to(fn(*args), torch.inf)
    else:
        rad = arith.nan_to(abs_sum - fn(*magnitudes), torch.inf).clamp(min=0.0)
    return mid, rad, abs_sum


_FLOAT64_EXACT_INTEGERS = 2.0**52


def finish_sum(mid: Tensor, rad: Tensor, abs_sum: Tensor, count: int, elem_type: int,
               budget: int | None = None) -> Interval:
    """Bounds ``mid +- rad`` widened by the accumulation error of ``count`` float terms."""
    lo, hi = mid - rad, mid + rad
    if is_float(elem_type):
        if not (abs_sum.dim() == 0 and float(abs_sum) == 0.0):  # a 0-d zero: the error is already in rad
            lo, hi = arith.with_accumulation_error(lo, hi, abs_sum, count, elem_type)
    else:
        # float64 holds every integer sum exactly below 2**53; past it the midpoint and radius round
        inexact = torch.as_tensor(abs_sum) * 2 >= _FLOAT64_EXACT_INTEGERS
        slack = torch.where(inexact, torch.as_tensor(abs_sum) * (count + 2) * 2.0**-52, 0.0)
        lo, hi = (lo - slack).floor(), (hi + slack).ceil()
        info = torch.iinfo(torch_dtype(elem_type))
        wraps = (lo < info.min) | (hi > info.max)
        lo = torch.where(wraps, torch.full_like(lo, float(info.min)), lo)
        hi = torch.where(wraps, torch.full_like(hi, float(info.max)), hi)
    return Interval.from_full(lo, hi, elem_type, budget)


def _int_matmul(a: Tensor, b: Tensor) -> Tensor:
    """Integer matmul (torch has no integer BLAS on every backend): exact through int64."""
    if a.dim() == 1 or b.dim() == 1:
        return torch.matmul(a.to(torch.int64), b.to(torch.int64)).to(a.dtype)
    return (a.to(torch.int64).unsqueeze(-1) * b.to(torch.int64).unsqueeze(-3)).sum(-2).to(a.dtype)


def _matmul(a: Tensor, b: Tensor) -> Tensor:
    if a.is_floating_point():
        if a.dtype in (torch.float16, torch.bfloat16):
            return torch.matmul(a.float(), b.float()).to(a.dtype)
        return torch.matmul(a, b)
    return _int_matmul(a, b)


@register("MatMul")
class MatMul(OpRule):
    """numpy.matmul: N-d batched with broadcasting, 1-D operands promoted then squeezed."""

    hazards = (Overflow(), InfiniteOperands(description="an infinite factor meets a 0 or factors of both signs: NaN",
                                            op="product"))
    accumulates = True
    unknown_shapes = HULLS

    def concrete(self, ctx: NodeContext, a: Tensor, b: Tensor) -> Tensor:
        _check_shapes(a.shape, b.shape)
        return _matmul(a, b)

    def without_shapes(self, ctx: NodeContext, a: Interval, b: Interval) -> Interval | None:
        """An operand whose shape is known only at run time (the tokens a mixture-of-experts layer routes to
        one expert, selected by NonZero): where shape inference still knows its shape statically (an expert's
        weight picked by a data-dependent index), its hull fills that shape; then see _hull_product."""
        a, b = (_filled(iv, static) if iv.shape is None and static is not None else iv
                for iv, static in zip((a, b), ctx.input_shapes or (None, None)))
        if a.shape is None and b.shape is None:
            return None
        if a.shape is not None and b.shape is not None:
            rows = b.shape[0] if len(b.shape) == 1 else b.shape[-2]
            return self.abstract(ctx, a, b) if a.shape[-1] == rows else None  # else a model whose shapes disagree
        return _hull_product(a, b, ctx.budget)

    def abstract(self, ctx: NodeContext, a: Interval, b: Interval) -> Interval:
        _check_shapes(a.shape, b.shape)
        count = a.shape[-1] if a.shape else 1
        if count == 1 and len(a.shape) >= 2 and len(b.shape) >= 2 and is_float(a.elem_type):
            # an outer product: each result is one product, rounded once (the interpreter's rounding);
            # the midpoint-radius form would lose a mask of -3.4e38 to its error terms
            return elementwise(arith.mul, [a, b], a.elem_type)

        def product(x: Interval, w: Interval) -> Interval:
            if len(x.shape) >= 2 and len(w.shape) >= 2:
                return blockwise_product(x, w, lambda p, q: interval_product(torch.matmul, [p, q], count), count,
                                         ctx.budget)
            return finish_sum(*interval_product(torch.matmul, [x, w], count), count, x.elem_type, ctx.budget)

        out = product(a, b)
        if len(a.shape) >= 2 and len(b.shape) >= 2:
            for refined in (convex_combination_bounds(ctx, a, b), norm_product_bounds(ctx, a, b)):
                out = out if refined is None else meet(out, refined)
        return _floored_if_terms_are_non_negative(out, a, b, lowest=product)


def _check_shapes(a: Sequence[int], b: Sequence[int]) -> None:
    """numpy.matmul's shape rule: InconsistentShapes where the operands break it (onnxruntime refuses to load
    such a model; an exporter can write one)."""
    if not a or not b:
        raise InconsistentShapes(f"MatMul of shapes {tuple(a)} and {tuple(b)}: a scalar operand")
    rows = b[0] if len(b) == 1 else b[-2]
    if a[-1] != rows:
        raise InconsistentShapes(f"MatMul of shapes {tuple(a)} and {tuple(b)}: {a[-1]} columns against {rows} rows")
    try:
        broadcast_shape(a[:-2], b[:-2])
    except InconsistentShapes:
        raise InconsistentShapes(f"MatMul of shapes {tuple(a)} and {tuple(b)}: batch axes that do not "
                                 "broadcast") from None


def _hull_product(a: Interval, b: Interval, budget: int) -> Interval:
    """``a @ b`` where one operand's shape is known only at run time: every result sums, over the
    contraction axis (its length from the known operand), the products of one row of ``a`` and one column
    of ``b``. So one row of a's hull times b's matrix (b's batches joined), or a's matrix times one column of
    b's hull, bounds every result; the result is one interval of unknown shape."""
    if a.shape is None:
        matrix = _batches_joined(b, vector=(-1, 1))
        count = matrix.shape[0]
        x, w = _filled(a, (1, count)), matrix
    else:
        matrix = _batches_joined(a, vector=(1, -1))
        count = matrix.shape[1]
        x, w = matrix, _filled(b, (count, 1))
    mid, rad, abs_sum = interval_product(torch.matmul, [x, w], count)
    out = finish_sum(mid, rad, abs_sum, count, a.elem_type, budget)
    return Interval.create(out.lower, out.upper, (), None, out.elem_type)


def _filled(iv: Interval, shape: tuple[int, ...]) -> Interval:
    """A tensor of ``shape`` whose every element lies in ``iv``'s hull (one block)."""
    low, high = iv.lower.min(), iv.upper.max()
    ones = (1,) * len(shape)
    return Interval.create(low.reshape(ones), high.reshape(ones), blocks.single_splits(shape), shape, iv.elem_type)


def _batches_joined(iv: Interval, vector: tuple[int, int]) -> Interval:
    """The last two axes of ``iv``, each element bounded over every batch (leading axes); a vector is laid
    out as ``vector`` ((1, -1): a row, (-1, 1): a column), as matmul promotes it."""
    low, high = iv.full()
    if len(iv.shape) == 1:
        low, high = low.reshape(vector), high.reshape(vector)
    rows, columns = low.shape[-2:]
    return Interval.from_full(low.reshape(-1, rows, columns).amin(0), high.reshape(-1, rows, columns).amax(0),
                              iv.elem_type)


def _floored_if_terms_are_non_negative(out: Interval, *factors: Interval, floor: float = 0.0,
                                       lowest: Callable[..., Interval] | None = None) -> Interval:
    """``out`` with lower bounds of at least ``floor`` (0: a product alone; ``min(C)``: a Gemm adding C as it
    is) where every factor is >= 0 everywhere: every product is then >= 0 (or +0 on underflow), so is every
    float sum of them, whatever the rounding, and adding them to C in any order never takes a partial sum
    below C (rounding is monotone). A Gram matrix of non-negative features, probabilities times
    non-negative values, a mel filterbank applied to squared magnitudes plus a small offset, a colour matrix
    applied to linear RGB values (an Einsum).

    Where the bounds still reach ``floor``, ``lowest`` (the same computation, given the factors' lower bounds
    as exact values) gives a higher floor: a product of non-negative floats rounds monotonically in each
    factor, and a float sum in any fixed order is monotone in each term, so the computed result is at least
    the one computed from the lower bounds, whose own bounds have a rounding error relative to its terms
    (non-negative: relative to the sum itself). The midpoint-radius form gives ``2 sum(m m') - sum(u u')``
    there, which reaches 0 where every term is positive: linear attention's ``q . sum(k)`` with
    ``q = elu(x) + 1``, a Performer's positive random features."""
    if not is_float(out.elem_type) or out.shape is None or not out.numblocks or \
            any(factor.min() < 0 for factor in factors):
        return out
    if out.min() < floor:
        out = out.with_bounds(out.lower.clamp(min=floor), out.upper.clamp(min=floor))
    if lowest is None or out.min() > floor or all(factor.is_exact for factor in factors):
        return out
    low = lowest(*(_lower_bounds_as_values(factor) for factor in factors))
    return meet(out, low.with_bounds(low.lower, torch.full_like(low.lower, torch.inf)))


def _lower_bounds_as_values(iv: Interval) -> Interval:
    """The exact interval of a tensor holding ``iv``'s lower bounds (same blocks)."""
    return Interval(iv.stored_lower, iv.stored_lower, iv.splits, iv.shape, iv.elem_type)


def blockwise_product(a: Interval, b: Interval, product, count: int, budget: int) -> Interval:
    """``a @ b`` computed once per (row block of a, column block of b), then spread over the blocks.

    Rows of ``a`` in one block have the same bounds, so do columns of ``b``; their products then
    have identical bounds. A weight with one range costs one column instead of N. With a 2-D ``b``
    (a weight shared by every row), every leading axis of ``a`` is a row axis: ``(N, H, W, C) @ (C, D)``
    is computed once per block of H and W. Where both cut the summed axis into few blocks, it is
    summed once per block (:func:`contracted`).
    """
    row_axes = range(len(a.shape) - 1) if len(b.shape) == 2 else (len(a.shape) - 2,)
    rows = {axis: a.splits[axis] for axis in row_axes if len(a.splits[axis]) < a.shape[axis]}
    cols = b.splits[-1]
    inner = contraction_blocks(a, len(a.shape) - 1, b, len(b.shape) - 2)
    if not rows and len(cols) == b.shape[-1] and inner is None:
        mid, rad, abs_sum = product(a, b)
        return finish_sum(mid, rad, abs_sum, count, a.elem_type, budget)
    rank = len(a.shape)
    small = a
    for axis in rows:
        small = representatives(small, axis)
    right = representatives(b, -1)
    if inner is not None:
        small, right = contracted(small, len(a.shape) - 1, right, len(b.shape) - 2, inner)
    mid, rad, abs_sum = product(small, right)
    out = finish_sum(mid, rad, abs_sum, count, a.elem_type, None)
    if len(b.shape) == 2:
        shape = tuple(a.shape[:-1]) + (b.shape[-1],)
    else:
        shape = tuple(out.shape[:-2]) + (a.shape[-2], b.shape[-1])
    return spread(out, {**{axis - rank: starts for axis, starts in rows.items()}, -1: cols}, shape, budget)


def contraction_blocks(a: Interval, a_axis: int, b: Interval, b_axis: int) -> tuple[int, ...] | None:
    """Block starts shared by an axis that a product sums over (``a_axis`` of ``a``, ``b_axis`` of
    ``b``), where there are at most half as many as terms; None otherwise, and for an exact ``b`` (a
    weight whose float32 product with every term is bounded as such) or integer operands."""
    if b.is_point or not is_float(a.elem_type):
        return None
    starts = blocks.union(a.splits[a_axis], b.splits[b_axis])
    return starts if 2 * len(starts) <= a.shape[a_axis] else None


def contracted(a: Interval, a_axis: int, b: Interval, b_axis: int, starts: tuple[int, ...]
               ) -> tuple[Interval, Interval]:
    """``a`` and ``b`` with one entry per block of the summed axis, ``a``'s scaled by the block's
    size: the terms of a block share their bounds (each pair its own values), so their sum has the
    bounds of ``size`` times one of them. The product then costs one term per block, with the same
    bounds (the caller keeps the real number of terms for the rounding error)."""
    sizes = torch.tensor(blocks.block_sizes(starts, a.shape[a_axis]), dtype=torch.float64)
    sizes = sizes.reshape((-1,) + (1,) * (len(a.shape) - 1 - a_axis))
    return _regridded(a, a_axis, starts, sizes), _regridded(b, b_axis, starts, None)


def _regridded(iv: Interval, axis: int, starts: tuple[int, ...], scale: Tensor | None) -> Interval:
    """One entry per block of ``starts`` (a refinement of the interval's own splits) on ``axis``,
    times ``scale``."""
    lower = blocks.regrid(iv.lower, axis, iv.splits[axis], starts)
    upper = None if iv.is_point else blocks.regrid(iv.upper, axis, iv.splits[axis], starts)
    if scale is not None:
        lower = lower * scale
        upper = None if upper is None else upper * scale
    splits = tuple(tuple(range(len(starts))) if a == axis else s for a, s in enumerate(iv.splits))
    shape = tuple(len(starts) if a == axis else n for a, n in enumerate(iv.shape))
    return Interval(lower, lower if upper is None else upper, splits, shape, iv.elem_type)


@register("Gemm")
class Gemm(OpRule):
    """Y = alpha * A' @ B' + beta * C, with A' = A^T if transA, B' = B^T if transB; C optional."""

    alpha: float = 1.0
    beta: float = 1.0
    transA: int = 0
    transB: int = 0

    hazards = (Overflow(), InfiniteOperands(description="an infinite factor meets a 0 or factors of both signs: NaN",
                                            op="product"))
    accumulates = True
    unknown_shapes = HULLS

    def _operands(self, a, b):
        return (a.t() if self.transA else a), (b.t() if self.transB else b)

    def without_shapes(self, ctx: NodeContext, a: Interval, b: Interval, c: Interval | None = None
                       ) -> Interval | None:
        """A or B of a shape known only at run time (routed tokens times an expert's biased linear layer): as
        MatMul's (see _hull_product), one row of A's hull times B' (or A' times one column of B's hull), plus
        C's hull where its shape is unknown too; the result is one interval of unknown shape."""
        statics = tuple(ctx.input_shapes) + (None,) * 3
        a, b = (_filled(iv, static) if iv.shape is None and static is not None else iv
                for iv, static in zip((a, b), statics))
        if a.shape is not None and b.shape is not None and (c is None or c.shape is not None):
            x, w = (_transposed(v) if t else v for v, t in ((a, self.transA), (b, self.transB)))
            return self.abstract(ctx, a, b, c) if x.shape[1] == w.shape[0] else None
        if (a.shape is None) == (b.shape is None) or any(len(v.shape) != 2 for v in (a, b) if v.shape is not None):
            return None
        if a.shape is None:
            w = _transposed(b) if self.transB else b
            x = _filled(a, (1, w.shape[0]))
        else:
            x = _transposed(a) if self.transA else a
            w = _filled(b, (x.shape[1], 1))
        summand = None if c is None else _filled(c, (1, 1)) if c.shape is None else c
        count = x.shape[1] + 3
        out = finish_sum(*self._terms(x, w, summand, count), count, a.elem_type, ctx.budget)
        return Interval.create(out.lower.amin(), out.upper.amax(), (), None, out.elem_type)

    def concrete(self, ctx: NodeContext, a: Tensor, b: Tensor, c: Tensor | None = None) -> Tensor:
        x, w = self._operands(a, b)
        y = _matmul(x, w)
        wide = y.float() if y.dtype in (torch.float16, torch.bfloat16) else y
        out = self.alpha * wide if self.alpha != 1.0 else wide
        if c is not None and self.beta != 0.0:
            out = out + (self.beta * c.to(wide.dtype) if self.beta != 1.0 else c.to(wide.dtype))
        return out.to(y.dtype)

    def abstract(self, ctx: NodeContext, a: Interval, b: Interval, c: Interval | None = None) -> Interval:
        if c is None or c.numblocks == 1:
            x = _transposed(a) if self.transA else a
            w = _transposed(b) if self.transB else b
            count = x.shape[1] + (2 if c is None or self.beta == 0.0 else 3)
            out = blockwise_product(x, w, lambda p, q: self._terms(p, q, c, count), count, ctx.budget)
            return self._at_least_the_summand(ctx, x, w, c, self._norm_refined(ctx, x, w, c, out), count)
        count = (a.shape[0] if self.transA else a.shape[1]) + 3  # alpha and beta scalings round once more each
        x, w = (_transposed(v) if t else v for v, t in ((a, self.transA), (b, self.transB)))
        mid, rad, abs_sum = self._terms(x, w, c, count)
        out = self._norm_refined(ctx, x, w, c, finish_sum(mid, rad, abs_sum, count, a.elem_type, ctx.budget))
        return self._at_least_the_summand(ctx, x, w, c, out, count)

    def _at_least_the_summand(self, ctx: NodeContext, x: Interval, w: Interval, c: Interval | None, out: Interval,
                              count: int) -> Interval:
        """``out`` at or above C where every term ``alpha * x * w`` is >= 0 (only ``beta`` 1, or no C: 0), and
        at or above the Gemm of the lower bounds of x, w and C (see _floored_if_terms_are_non_negative)."""
        floor = 0.0 if c is None or self.beta == 0.0 else c.min() if self.beta == 1.0 else None
        if floor is None or self.alpha < 0:
            return out
        summand = None if c is None or c.shape is None else _lower_bounds_as_values(c)

        def lowest(p: Interval, q: Interval) -> Interval:
            return finish_sum(*self._terms(p, q, summand, count), count, p.elem_type, ctx.budget)

        return _floored_if_terms_are_non_negative(out, x, w, floor=floor, lowest=None if c is not None and
                                                  summand is None else lowest)

    def _norm_refined(self, ctx: NodeContext, x: Interval, w: Interval, c: Interval | None, out: Interval) -> Interval:
        """Meet with ``+-||row|| ||column|| + C`` when x's rows have a known norm (plain x @ w + C only)."""
        if self.transA or self.alpha != 1.0 or (c is not None and self.beta != 1.0):
            return out
        bound = norm_product_bounds(ctx, x, w, weights_transposed=bool(self.transB))
        if bound is None:
            return out
        if c is not None:
            bound = elementwise(arith.add, [bound, c], out.elem_type).widened(1)
        return meet(out, bound)

    def _terms(self, x: Interval, w: Interval, c: Interval | None, count: int) -> tuple[Tensor, Tensor, Tensor]:
        """Midpoint, radius and |term| sum of alpha * x @ w + beta * c (x, w already transposed);
        ``count``: the accumulation's terms and roundings, as given to :func:`finish_sum`."""
        mid, rad, abs_sum = interval_product(torch.matmul, [x, w], count)
        mid, rad, abs_sum = self.alpha * mid, abs(self.alpha) * rad, abs(self.alpha) * abs_sum
        if c is not None and self.beta != 0.0:
            cm, cr = center_radius(c)
            if c.numblocks == 1 and c.shape is not None:  # one range: a scalar broadcasts to any grid
                cm, cr = cm.reshape(-1)[:1].reshape(()), cr.reshape(-1)[:1].reshape(())
            mid = mid + self.beta * cm
            rad = arith.nan_to(rad + abs(self.beta) * cr, torch.inf)
            abs_sum = arith.nan_to(abs_sum + abs(self.beta) * (cm.abs() + cr), torch.inf)
        return mid, rad, abs_sum


def _transposed(iv: Interval) -> Interval:
    """The transpose of a 2-D interval (blocks and splits swap axes)."""
    return iv.relaid(Tensor.t, (iv.splits[1], iv.splits[0]), (iv.shape[1], iv.shape[0]))


@register("Einsum")
class Einsum(OpRule):
    """Einstein summation over any number of operands (numpy/torch equation syntax)."""

    equation: str = ""

    hazards = (Overflow(), InfiniteOperands(description="an infinite factor meets a 0 or factors of both signs: NaN",
                                            op="product"))
    accumulates = True

    def __post_init__(self) -> None:
        if not self.equation:
            raise UnsupportedOperator("Einsum: empty equation")

    @property
    def _equation(self) -> str:
        return self.equation.replace(" ", "")

    def concrete(self, ctx: NodeContext, *operands: Tensor) -> Tensor:
        dtype = operands[0].dtype
        if dtype in (torch.float16, torch.bfloat16):
            return torch.einsum(self._equation, *[t.float() for t in operands]).to(dtype)
        if not operands[0].is_floating_point():
            return torch.einsum(self._equation, *[t.to(torch.float64) for t in operands]).round().to(dtype)
        return torch.einsum(self._equation, *operands)

    def abstract(self, ctx: NodeContext, *operands: Interval) -> Interval:
        equation = self._equation

        def fn(*args: Tensor) -> Tensor:
            return torch.einsum(equation, *args)

        ones = [torch.ones(iv.shape, dtype=torch.float64) for iv in operands]
        terms = fn(*ones)
        count = int(terms.max()) if terms.numel() else 1
        if count == 1 and len(operands) == 2 and is_float(operands[0].elem_type):
            return _one_product(fn, *operands, ctx.budget)
        # Each term is a product of len(operands) factors: one rounding per multiplication.
        count += len(operands) - 1
        def product(*factors: Interval) -> Interval:
            return finish_sum(*interval_product(fn, factors, count), count, factors[0].elem_type, ctx.budget)

        return _floored_if_terms_are_non_negative(product(*operands), *operands, lowest=product)


def _one_product(fn: Product, a: Interval, b: Interval, budget: int) -> Interval:
    """Bounds of a bilinear ``fn`` whose every result is one product ``a[i] * b[j]`` (an einsum that sums
    nothing): the least and greatest of its four corner products, in real arithmetic (the interpreter adds
    the one rounding)."""
    (a_lo, a_hi), (b_lo, b_hi) = a.full(), b.full()
    corners = [arith.nan_to(fn(x.to(torch.float64), y.to(torch.float64)), 0.0)  # 0 * inf: 0, the limit
               for x in (a_lo, a_hi) for y in (b_lo, b_hi)]
    low, high = corners[0], corners[0]
    for corner in corners[1:]:
        low, high = torch.minimum(low, corner), torch.maximum(high, corner)
    return Interval.from_full(low, high, a.elem_type, budget)
