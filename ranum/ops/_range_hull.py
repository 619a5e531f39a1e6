"""Hulls of tensor values over ranges of positions along an axis: what an index *interval* can read.

Used by the gathering rules (and Resize): per output element, the minimum and maximum of the data
over every position an index interval allows, on the data's block grid. Ranges are reduced with a
sparse table (log-many shifted minima/maxima), or with one pass per distinct range where there are
few; a long exact table (a vocabulary embedding) is folded slice by slice.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

__all__ = ["block_of", "hull_blocks", "index_ranges", "min_max_along", "range_reduce", "select_pick"]

Reduce = Callable[[Tensor, Tensor], Tensor]
Pick = Callable[[Tensor, Tensor], Tensor]


def index_ranges(lo: Tensor, hi: Tensor, n: int) -> list[tuple[Tensor, Tensor]]:
    """Positions on an axis of ``n`` reachable by an index in [lo, hi]: a negative and a positive range.

    A range that is empty is replaced by the other one; when both are (a runtime error), the whole
    axis is used, which keeps the bounds ordered.
    """
    neg = (lo <= -1) & (hi >= -n)
    pos = (hi >= 0) & (lo <= n - 1)
    a1, b1 = lo.clamp(min=-n) + n, hi.clamp(max=-1) + n
    a2, b2 = lo.clamp(min=0), hi.clamp(max=n - 1)
    a1 = torch.where(neg, a1, torch.where(pos, a2, torch.zeros_like(a2)))
    b1 = torch.where(neg, b1, torch.where(pos, b2, torch.full_like(b2, n - 1)))
    return [(a1, b1), (torch.where(pos, a2, a1), torch.where(pos, b2, b1))]


def range_reduce(values: Tensor, axis: int, ranges: Sequence[tuple[Tensor, Tensor]], reduce: Reduce,
                  pick: Pick) -> Tensor:
    """``reduce`` of ``values`` over positions first..last along ``axis``, for every range.

    A sparse table: level p holds the reduction over windows of 2**p positions; a range is the
    reduction of two overlapping windows. ``pick(table, flat_index)`` reads the table along ``axis``.
    """
    n = values.shape[axis]
    direct = _few_ranges_reduce(values, axis, ranges, reduce, pick)
    if direct is not None:
        return direct
    levels, width = [values], 1
    while 2 * width <= n:
        shifted = levels[-1].index_select(axis, (torch.arange(n) + width).clamp(max=n - 1))
        levels.append(reduce(levels[-1], shifted))
        width *= 2
    table = torch.cat(levels, axis) if len(levels) > 1 else values
    powers = 2 ** torch.arange(len(levels))
    out = None
    for first, last in ranges:
        level = torch.searchsorted(powers, (last - first + 1).clamp(min=1), right=True) - 1
        part = reduce(pick(table, level * n + first), pick(table, level * n + last + 1 - powers[level]))
        out = part if out is None else reduce(out, part)
    return out


_WHOLE_REDUCE = {torch.minimum: torch.amin, torch.maximum: torch.amax}


def _few_ranges_reduce(values: Tensor, axis: int, ranges: Sequence[tuple[Tensor, Tensor]], reduce: Reduce,
                       pick: Pick) -> Tensor | None:
    """The same reduction, one slice per distinct range, when they cover at most a few passes over
    the axis (e.g. token ids over a whole vocabulary: one range); None when the table is cheaper."""
    whole = _WHOLE_REDUCE.get(reduce)
    distinct = _distinct_ranges(ranges, values.shape[axis])
    if whole is None or distinct is None:
        return None
    firsts, lasts, indices = distinct
    parts = [whole(values.narrow(axis, first, last - first + 1), dim=axis, keepdim=True)
             for first, last in zip(firsts, lasts)]
    table = torch.cat(parts, axis)
    out = None
    for index in indices:
        part = pick(table, index)
        out = part if out is None else reduce(out, part)
    return out


def _few_ranges_hull(values: Tensor, axis: int, ranges: Sequence[tuple[Tensor, Tensor]],
                     pick: Pick) -> tuple[Tensor, Tensor] | None:
    """Minimum and maximum over each range, one ``amin`` and one ``amax`` pass per distinct range (see
    :func:`_few_ranges_reduce`; torch's ``aminmax`` along an axis is about ten times slower than the
    two); None when the ranges cover more than a few passes."""
    distinct = _distinct_ranges(ranges, values.shape[axis])
    if distinct is None:
        return None
    firsts, lasts, indices = distinct
    slices = [values.narrow(axis, first, last - first + 1) for first, last in zip(firsts, lasts)]
    pairs = [min_max_along(part, axis) for part in slices]
    lows, highs = torch.cat([p[0] for p in pairs], axis), torch.cat([p[1] for p in pairs], axis)
    low = high = None
    for index in indices:
        lo, hi = pick(lows, index), pick(highs, index)
        low = lo if low is None else torch.minimum(low, lo)
        high = hi if high is None else torch.maximum(high, hi)
    return low, high


_ROW_SLICE = 256


def min_max_along(values: Tensor, axis: int) -> tuple[Tensor, Tensor]:
    """``amin`` and ``amax`` along ``axis`` (kept). A long axis is folded slice by slice into one
    slice's running minimum and maximum (elementwise, in place) before the last reduction: twice as
    fast as reducing a large embedding table across its rows. NaN propagates as in ``amin``."""
    length = values.shape[axis]
    if length < 4 * _ROW_SLICE:
        return values.amin(axis, keepdim=True), values.amax(axis, keepdim=True)
    low = values.narrow(axis, 0, _ROW_SLICE).clone()
    high = low.clone()
    for start in range(_ROW_SLICE, length, _ROW_SLICE):
        part = values.narrow(axis, start, min(_ROW_SLICE, length - start))
        rows = part.shape[axis]
        torch.minimum(low.narrow(axis, 0, rows), part, out=low.narrow(axis, 0, rows))
        torch.maximum(high.narrow(axis, 0, rows), part, out=high.narrow(axis, 0, rows))
    return low.amin(axis, keepdim=True), high.amax(axis, keepdim=True)


def _distinct_ranges(ranges: Sequence[tuple[Tensor, Tensor]], n: int
                     ) -> tuple[list[int], list[int], list[Tensor]] | None:
    """The distinct (first, last) pairs of ``ranges`` and, per range tensor pair, the index of each
    element's pair; None when the distinct ranges cover more than four passes over the ``n`` positions."""
    # one int64 key per (first, last) pair: a 1-D unique is far faster than unique over rows
    keys = torch.cat([(a.reshape(-1) * (n + 1) + torch.maximum(a, b).reshape(-1)).long() for a, b in ranges])
    distinct, inverse = torch.unique(keys, return_inverse=True)
    firsts, lasts = distinct // (n + 1), distinct % (n + 1)
    if int((lasts - firsts + 1).sum()) > 4 * n:
        return None
    shape = ranges[0][0].shape
    size = math.prod(shape)
    indices = [inverse[k * size:(k + 1) * size].reshape(shape) for k in range(len(ranges))]
    return firsts.tolist(), lasts.tolist(), indices


def block_of(splits: tuple[int, ...], position: Tensor) -> Tensor:
    """Block id of element positions on an axis cut at ``splits``."""
    if splits and splits[-1] == len(splits) - 1:  # blocks start at 0, 1, ..., k - 1: the id is the position
        return position.clamp(min=-1, max=len(splits) - 1)  # (an exact table's rows: no 10**5-long tensor)
    return torch.searchsorted(torch.tensor(splits, dtype=torch.long), position.contiguous(), right=True) - 1


def select_pick(axis: int) -> Pick:
    """Reads a table along ``axis`` at an index tensor of any shape (its axes replace ``axis``)."""
    def pick(table: Tensor, index: Tensor) -> Tensor:
        out = table.index_select(axis, index.reshape(-1))
        return out.reshape(table.shape[:axis] + index.shape + table.shape[axis + 1:])
    return pick


def hull_blocks(lower: Tensor, upper: Tensor, splits: tuple[int, ...], axis: int,
                 ranges: list[tuple[Tensor, Tensor]]) -> tuple[Tensor, Tensor]:
    """Block bounds of the hull over element-position ranges along ``axis`` (cut at ``splits``)."""
    blocks = [(block_of(splits, a), block_of(splits, b)) for a, b in ranges]
    pick = select_pick(axis)
    if lower is upper:  # a point table (an exact embedding): min and max in one pass per range
        both = _few_ranges_hull(lower, axis, blocks, pick)
        if both is not None:
            return both
    return (range_reduce(lower, axis, blocks, torch.minimum, pick),
            range_reduce(upper, axis, blocks, torch.maximum, pick))
