"""An interval times an exact float32 or 16-bit weight in two float32 products, as fast as the model's own
(:func:`float32_product`, taken by :func:`ranum.ops.linear.interval_product` where it applies).

A weight's columns are summed once per block of the interval's summed axis where that axis has few blocks
(after a normalization, a row's bounds are often one range), and a wide weight (a language model's output
layer) is multiplied a chunk of columns at a time through one reused |w| buffer. Each path's bounds hold for
any summation order of the model's float32 accumulation (see :func:`float32_product`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from onnx import TensorProto
from torch import Tensor

from ranum.domain import arith, blocks
from ranum.domain.interval import Interval, representatives

__all__ = ["float32_product"]

Product = Callable[..., Tensor]

_FLOAT32_UNIT = 2.0**-24  # unit roundoff of float32
_FLOAT32_TINY = 2.0**-149  # smallest float32 subnormal: bounds the absolute error of an underflow
_POINT_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def float32_product(fn: Product, operands: Sequence[Interval], count: int) -> tuple[Tensor, Tensor, Tensor] | None:
    """``fn(x, w)`` for a finite interval ``x`` and a point ``w`` of a float32/16-bit type, with two
    float32 products (as fast as the model's own) instead of three float64 ones; None where it does not apply.

    With ``c32`` the float32 midpoint of x and ``r'`` its radius plus the rounding of ``c32``, the
    real value lies within ``c32 @ w +- r' @ |w|``. The float32 product ``m = fl(c32 @ w)`` is within
    ``g |c32| @ |w|`` of ``c32 @ w`` (``g = n u / (1 - n u)``, any summation order), and the model's
    accumulation within ``G (|c32| + r') @ |w|`` (``G``: :func:`arith.accumulation_gamma`). So the
    computed result lies in ``m +- v @ |w|`` with ``v = (1 + G) r' + (g + G) |c32|``; ``v`` is rounded
    up to float32 and its float32 product (non-negative terms) divided by ``1 - g``. Underflow adds
    at most one subnormal per term and product. The |term| sum is then 0: the error is already in.
    Since ``v >= (g + G) (|c32| + r')``, the radius also bounds the |term| sum, hence every partial
    sum: where that could overflow float32, the float64 path is taken.
    """
    if len(operands) != 2:
        return None
    x, w = operands
    if not w.is_point or x.is_exact or w.stored_lower.dtype not in _POINT_DTYPES:
        return None
    if torch.get_float32_matmul_precision() != "highest":  # products in a lower precision: no bound
        return None
    stored = w.exact_value()
    g = count * _FLOAT32_UNIT / (1 - count * _FLOAT32_UNIT)
    big = arith.accumulation_gamma(count, TensorProto.FLOAT)
    if not g < 0.5 or big == float("inf"):
        return None
    summed = _summed_rows(fn, x, stored)
    # an infinite bound makes the products below non-finite: then the float64 path
    lo, hi = (representatives(x, -1) if summed else x).full()
    c32, spread_in = _split32(lo, hi, 1 + big, g + big)
    if summed:
        mid, rad = _block_summed_product(c32, spread_in, stored, x.splits[-1])
    elif _chunks_columns(fn, c32, stored):
        mid, rad = _matmul_by_column_chunks(c32, spread_in, stored)
    else:
        weight = stored.float()
        mid = fn(c32, weight).double()
        # a converted copy (16-bit weights) is ours to overwrite; the model's own float32 bytes are not
        magnitude = weight.abs_() if weight.data_ptr() != stored.data_ptr() else weight.abs()
        rad = fn(spread_in, magnitude).double()
    # every element is finite exactly where the sum is (an inf or NaN term makes it inf or NaN)
    if not math.isfinite(float(mid.detach().sum())):
        return None
    rad = rad.mul_((1 + 2.0**-50) / (1 - g)).add_(3 * count * _FLOAT32_TINY)
    # the model's partial sums stay below float32's largest value: they are at most the |term| sum,
    # (|c32| + r') @ |w| <= rad / (g + G); an infinite or NaN radius fails this too
    if not float(rad.detach().max()) / (g + big) < 0.5 * torch.finfo(torch.float32).max:
        return None
    return mid, rad, torch.zeros((), dtype=torch.float64)


_SUMMED_BLOCKS = 32  # most blocks on x's summed axis for which w's rows are summed per block


def _summed_rows(fn: Product, x: Interval, stored: Tensor) -> bool:
    """Whether ``x @ w`` (a 2-D weight) is taken once per block of x's summed axis: at most
    ``_SUMMED_BLOCKS`` blocks, of two terms each on average (after a normalization, a row's bounds are
    often one range)."""
    starts = x.splits[-1] if x.shape else ()
    return (fn is torch.matmul and stored.dim() == 2 and 0 < len(starts) <= _SUMMED_BLOCKS
            and 2 * len(starts) <= x.shape[-1])


def _block_summed_product(c32: Tensor, spread_in: Tensor, stored: Tensor, starts: tuple[int, ...]
                          ) -> tuple[Tensor, Tensor]:
    """``c32 @ w`` and a bound of ``spread_in @ |w|`` in float64, where ``c32`` and ``spread_in`` hold one
    entry per block (``starts``) of w's rows: every row of a block is multiplied by the same values,
    so the products take each block's float32 sums of ``w`` and of ``|w|`` (one read of ``w``, where
    the two products read it, and a copy of ``|w|``, once per row of x).

    A float32 sum of ``n`` terms is within ``g_n sum |terms|`` of the real one (any order), so the
    midpoint is within ``g |c32| @ |w|`` of the real product, as a float32 product would be; the
    float64 products add a relative ``k ulp`` for ``k`` blocks. Sums of ``|w|`` are at least
    ``(1 - g)`` times the real ones, which the caller divides out; the float64 rounding is covered here.
    """
    sizes = blocks.block_sizes(starts, stored.shape[-2])
    sums, magnitudes = [], []
    for start, size in zip(starts, sizes):
        part = stored.narrow(-2, start, size)
        sum_of, magnitude = _column_sums(part)
        sums.append(sum_of)
        magnitudes.append(magnitude)
    mid = torch.matmul(c32.double(), torch.stack(sums).double())
    rad = torch.matmul(spread_in.double(), torch.stack(magnitudes).double())
    return mid, rad.mul_(1 + (len(starts) + 2) * 2.0**-52)


def _column_sums(part: Tensor) -> tuple[Tensor, Tensor]:
    """Float32 sums of a weight block's columns and of their magnitudes, in one read of the block:
    pieces of about ``_PIECE`` elements, outer axis first in memory, are converted into one small
    float32 buffer, summed, made absolute in place and summed again (``vector_norm`` over the outer
    axis was six times slower, and ``|w|`` of an output layer is tens of MB). A float32 sum in any
    grouping has the same error bound as one sum."""
    rows, columns = part.shape
    if part.stride(-2) >= part.stride(-1):  # rows outer: pieces of whole rows, summed over rows
        step = max(1, _PIECE // max(columns, 1))
        buffer = torch.empty((min(step, rows), columns), dtype=torch.float32)
        sums, magnitudes = torch.zeros(columns, dtype=torch.float32), torch.zeros(columns, dtype=torch.float32)
        for start in range(0, rows, step):
            piece = buffer.narrow(0, 0, min(step, rows - start)).copy_(part.narrow(0, start, min(step, rows - start)))
            sums += piece.sum(0)
            magnitudes += piece.abs_().sum(0)
        return sums, magnitudes
    step = max(1, _PIECE // max(rows, 1))  # columns outer (a transposed weight): pieces of whole columns
    buffer = torch.empty((min(step, columns), rows), dtype=torch.float32)
    sums, magnitudes = [], []
    for start in range(0, columns, step):
        width = min(step, columns - start)
        piece = buffer.narrow(0, 0, width).copy_(part.narrow(1, start, width).t())
        sums.append(piece.sum(1))
        magnitudes.append(piece.abs_().sum(1))
    return torch.cat(sums), torch.cat(magnitudes)


_PIECE = 1 << 18  # elements per piece of a weight summed through a float32 buffer (1 MB)
_COLUMN_CHUNK = 1024  # weight columns per step of a chunked product
_CHUNKED_ELEMENTS = 1 << 22  # weights of more elements (16 MB in float32) are taken in chunks


def _chunks_columns(fn: Product, c32: Tensor, stored: Tensor) -> bool:
    """Whether the product is a plain matmul by a large weight (a language model's output layer),
    outside autograd (the fix's optimisation differentiates the one-product path). Smaller weights
    take one product: their |w| is cheap, and the chunks' strided float64 copies are not."""
    return (fn is torch.matmul and c32.dim() >= 2 and stored.dim() >= 2 and stored.shape[-1] > _COLUMN_CHUNK
            and stored.numel() > _CHUNKED_ELEMENTS and not (c32.requires_grad or stored.requires_grad))


def _matmul_by_column_chunks(c32: Tensor, spread_in: Tensor, stored: Tensor) -> tuple[Tensor, Tensor]:
    """``c32 @ w`` and ``spread_in @ |w|`` in float64, ``w`` (the weight, float32 or 16-bit) taken
    ``_COLUMN_CHUNK`` columns at a time: ``|w|`` (and a 16-bit weight's float32 copy) then lives in one
    small reused buffer, instead of a full-size copy in fresh pages (which took as long as the
    product on a language model's output layer). Each output column is the same float32 sum as
    in one product: only the columns are split."""
    columns = stored.shape[-1]
    batch = torch.broadcast_shapes(c32.shape[:-2], stored.shape[:-2])
    shape = tuple(batch) + (c32.shape[-2], columns)
    mid = torch.empty(shape, dtype=torch.float64)
    rad = torch.empty(shape, dtype=torch.float64)
    # reused float32 buffers: fresh temporaries per chunk would stay in the heap after they are freed
    magnitudes = torch.empty(stored.shape[:-1] + (_COLUMN_CHUNK,), dtype=torch.float32)
    converted = None if stored.dtype == torch.float32 else torch.empty_like(magnitudes)
    products = torch.empty(shape[:-1] + (_COLUMN_CHUNK,), dtype=torch.float32)
    for start in range(0, columns, _COLUMN_CHUNK):
        width = min(_COLUMN_CHUNK, columns - start)
        part = stored.narrow(-1, start, width)
        if converted is not None:
            part = _leading(converted, width).copy_(part)
        magnitude = torch.abs(part, out=_leading(magnitudes, width))
        result = _leading(products, width)
        mid.narrow(-1, start, width).copy_(torch.matmul(c32, part, out=result))
        rad.narrow(-1, start, width).copy_(torch.matmul(spread_in, magnitude, out=result))
    return mid, rad


def _leading(buffer: Tensor, width: int) -> Tensor:
    """A contiguous tensor of ``buffer``'s shape with ``width`` entries on the last axis, over the first
    elements of its storage."""
    shape = buffer.shape[:-1] + (width,)
    return buffer.view(-1).narrow(0, 0, math.prod(shape)).view(shape)


def _split32(lo: Tensor, hi: Tensor, radius_factor: float, center_factor: float) -> tuple[Tensor, Tensor]:
    """The float32 midpoint ``c32`` of ``[lo, hi]``, and ``radius_factor * r' + center_factor * |c32|``
    rounded up to float32, where ``r'`` is the radius plus the rounding of ``c32``. Temporaries are
    updated in place: on full-resolution activations, fresh pages cost as much as the arithmetic."""
    center = torch.add(lo, hi).mul_(0.5)
    c32 = center.float()
    c64 = c32.double()
    radius = torch.sub(hi, lo).mul_(0.5).add_(center.sub_(c64).abs_())
    spread = radius.mul_(radius_factor).add_(c64.abs_(), alpha=center_factor)
    return c32, _round_up32(spread)


def _round_up32(values: Tensor) -> Tensor:
    """A float32 tensor at or above non-negative float64 ``values`` (within 2**-22 of them, relatively):
    rounding to nearest moves a value by at most 2**-24 of itself, or 2**-150 below the normal range."""
    return (values * (1 + 2.0**-22)).add_(2.0**-148).float()
