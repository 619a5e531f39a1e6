"""Split-point algebra for block-wise bounds.

A tensor of shape ``(n_0, ..., n_k)`` is cut along each axis at split points: ``splits[a]`` is the
strictly increasing tuple of block start offsets along axis ``a``, starting at 0 (empty when
``n_a == 0``). Bounds are stored per block, in a tensor of shape ``(len(splits[0]), ...)``.
Every function here is exact or sound: merging takes the minimum of lower bounds and the maximum
of upper bounds, so it can only widen.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "Splits",
    "block_sizes",
    "coarsen",
    "compress",
    "expand",
    "regrid",
    "single_splits",
    "union",
    "window_runs",
]

Splits = tuple[tuple[int, ...], ...]


def single_splits(shape: Sequence[int]) -> Splits:
    """One block per axis (an empty tuple on axes of length 0)."""
    return tuple((0,) if n > 0 else () for n in shape)


def block_sizes(starts: Sequence[int], length: int) -> list[int]:
    """Sizes of the blocks that start at ``starts`` on an axis of ``length`` elements."""
    ends = list(starts[1:]) + [length]
    return [e - s for s, e in zip(starts, ends)]


def expand(blocks: Tensor, splits: Splits, shape: Sequence[int]) -> Tensor:
    """Materialise block values into a full tensor of ``shape``. Axes of one block are broadcast
    views (no copy): the result is for reading only."""
    out = blocks
    single = list(out.shape)
    for axis, (starts, length) in enumerate(zip(splits, shape)):
        if len(starts) == length:
            continue
        if len(starts) == 1:
            single[axis] = length
            continue
        sizes = torch.tensor(block_sizes(starts, length), dtype=torch.long)
        out = out.repeat_interleave(sizes, dim=axis)
        single[axis] = length
    return out.expand(single) if list(out.shape) != single else out


def union(first: tuple[int, ...], second: tuple[int, ...]) -> tuple[int, ...]:
    """The common refinement of two split tuples on the same axis."""
    if first == second:
        return first
    return tuple(sorted(set(first) | set(second)))


def regrid(blocks: Tensor, axis: int, source: tuple[int, ...], target: tuple[int, ...]) -> Tensor:
    """Re-index blocks along ``axis`` from ``source`` splits to a refinement ``target``."""
    if source == target:
        return blocks
    if len(source) == 1:  # one block: every target block reads it (a broadcast view, no copy)
        shape = list(blocks.shape)
        shape[axis] = len(target)
        return blocks.expand(shape)
    src = torch.tensor(source, dtype=torch.long)
    dst = torch.tensor(target, dtype=torch.long)
    index = torch.searchsorted(src, dst, right=True) - 1
    return blocks.index_select(axis, index)


_SMALL = 4096  # bounds of at most this many blocks are compared in numpy (a torch op costs ~5 us each)


def compress(lower: Tensor, upper: Tensor, splits: Splits) -> tuple[Tensor, Tensor, Splits]:
    """Merge adjacent blocks whose lower and upper bounds coincide (lossless)."""
    if lower.numel() <= 1:  # one block (or none): nothing to merge
        return lower, upper, splits
    if lower.numel() <= _SMALL and lower.dtype != torch.bfloat16 and upper.dtype != torch.bfloat16:
        return _compress_small(lower, upper, splits)
    new_splits = list(splits)
    for axis in range(lower.dim()):
        count = lower.shape[axis]
        if count <= 1:
            continue
        point = lower is upper  # one tensor for both bounds: compare (and select) it once
        if _a_line_all_differs(lower, axis) or (not point and _a_line_all_differs(upper, axis)):
            continue  # neighbouring slices already differ on a line: nothing merges
        keep = _sums_differ(lower, axis)
        if not point and not bool(keep.all()):  # the upper bounds only matter where the lower ones agree
            keep |= _sums_differ(upper, axis)
        if bool(keep.all()):
            continue  # every pair of neighbours proven different: no element-wise comparison
        keep |= _neighbours_differ(lower, axis)
        if not point and not bool(keep.all()):
            keep |= _neighbours_differ(upper, axis)
        if bool(keep.all()):
            continue
        index = torch.cat([torch.zeros(1, dtype=torch.long), torch.nonzero(keep).flatten() + 1])
        lower = lower.index_select(axis, index)
        upper = lower if point else upper.index_select(axis, index)
        starts = splits[axis]
        new_splits[axis] = tuple(starts[i] for i in index.tolist())
    return lower, upper, tuple(new_splits)


def _compress_small(lower: Tensor, upper: Tensor, splits: Splits) -> tuple[Tensor, Tensor, Splits]:
    """:func:`compress` for few blocks, in numpy (a torch op costs ~5 us; shape arithmetic and small
    constants make up most nodes of an exported graph). Bounds that carry gradients are selected in
    torch; others become the numpy result's memory."""
    point = lower is upper
    lows = lower.detach().numpy()
    ups = lows if point else upper.detach().numpy()
    picks: list[np.ndarray | None] = []
    for axis in range(lows.ndim):
        if lows.shape[axis] <= 1 or lows.size == 0:
            picks.append(None)
            continue
        keep = _numpy_neighbours_differ(lows, axis)
        if not point and not keep.all():
            keep |= _numpy_neighbours_differ(ups, axis)
        if keep.all():
            picks.append(None)
            continue
        index = np.concatenate(([0], np.flatnonzero(keep) + 1))
        lows = lows.take(index, axis)
        ups = lows if point else ups.take(index, axis)
        picks.append(index)
    if all(index is None for index in picks):
        return lower, upper, splits
    new_splits = tuple(starts if index is None else tuple(starts[i] for i in index.tolist())
                       for starts, index in zip(splits, picks))
    if not (lower.requires_grad or upper.requires_grad):
        lower = torch.from_numpy(lows)
        return lower, lower if point else torch.from_numpy(ups), new_splits
    for axis, index in enumerate(picks):
        if index is not None:
            lower = lower.index_select(axis, torch.from_numpy(index))
            upper = lower if point else upper.index_select(axis, torch.from_numpy(index))
    return lower, upper, new_splits


def _numpy_neighbours_differ(values: np.ndarray, axis: int) -> np.ndarray:
    """Per pair of neighbouring slices along ``axis``: whether they differ anywhere (-0.0 == 0.0)."""
    if values.ndim == 1:
        return values[1:] != values[:-1]
    lead = math.prod(values.shape[:axis])
    grouped = values.reshape(lead, values.shape[axis], -1)  # a view where the array is contiguous
    return (grouped[:, 1:] != grouped[:, :-1]).any(axis=(0, 2))


_BITS = {8: torch.int64, 4: torch.int32, 2: torch.int16, 1: torch.int8}


def _sums_differ(values: Tensor, axis: int) -> Tensor:
    """Per pair of neighbouring slices along ``axis``: True where they certainly differ, because the
    sums of their values' bit patterns differ. The sums are integer, in the patterns' own width
    (wrapping: exact in any order, no widened copy), so equal slices always have equal sums; a pair
    with equal sums may still differ. A float's sign bit is dropped from the sum: a slice's -0.0 in
    place of 0.0 adds a multiple of the top bit. One reduction, where comparing every element took
    two passes and a mask (slices of a causal mask never merge)."""
    other = [d for d in range(values.dim()) if d != axis]
    if values.is_floating_point():
        bits = values.view(_BITS[values.element_size()])
        sums = bits.sum(dim=other, dtype=bits.dtype) if other else bits
        sums = sums & torch.iinfo(bits.dtype).max
    else:
        sums = values.sum(dim=other, dtype=torch.int64) if other else values.to(torch.int64)
    return sums[1:] != sums[:-1]


def _neighbours_differ(values: Tensor, axis: int) -> Tensor:
    """Per pair of neighbouring slices along ``axis``: whether they differ anywhere."""
    count = values.shape[axis]
    differs = values.narrow(axis, 1, count - 1) != values.narrow(axis, 0, count - 1)
    other = [d for d in range(values.dim()) if d != axis]
    return differs.any(dim=other) if other else differs


def _a_line_all_differs(values: Tensor, axis: int) -> bool:
    """Whether consecutive entries along ``axis`` all differ on one of a few lines (through the first,
    middle and last index of every other axis): then no two neighbouring slices are equal. Read
    through a numpy view (no copy; indexing a tensor costs ~10 us a line)."""
    if values.numel() == 0:
        return False
    array = values.detach().numpy() if values.dtype != torch.bfloat16 else values.detach().float().numpy()
    picks = (0, 1, 2) if values.dim() > 1 else (0,)
    for pick in picks:
        index = tuple(slice(None) if a == axis else (0, n // 2, n - 1)[pick] for a, n in enumerate(array.shape))
        line = array[index]
        if (line[1:] != line[:-1]).all():
            return True
    return False


def coarsen(lower: Tensor, upper: Tensor, splits: Splits, budget: int) -> tuple[Tensor, Tensor, Splits]:
    """Merge pairs of adjacent blocks on the busiest axis until at most ``budget`` blocks remain.

    Sound: each merged block takes the min of the lower and the max of the upper bounds.
    """
    new_splits = list(splits)
    while lower.numel() > budget and lower.dim() > 0:
        axis = max(range(lower.dim()), key=lambda a: lower.shape[a])
        count = lower.shape[axis]
        if count <= 1:
            break
        pairs = torch.arange(count) // 2
        groups = (count + 1) // 2
        lower = _segment_reduce(lower, axis, pairs, groups, torch.amin)
        upper = _segment_reduce(upper, axis, pairs, groups, torch.amax)
        new_splits[axis] = tuple(new_splits[axis][::2])
    return lower, upper, tuple(new_splits)


def _segment_reduce(values: Tensor, axis: int, group: Tensor, groups: int, reduce) -> Tensor:
    """Reduce consecutive pairs along ``axis`` (groups of two, the last possibly of one)."""
    count = values.shape[axis]
    if count % 2:
        values = torch.cat([values, values.narrow(axis, count - 1, 1)], dim=axis)
    shape = list(values.shape)
    shape[axis : axis + 1] = [groups, 2]
    return reduce(values.reshape(shape), dim=axis + 1)


def window_runs(starts: tuple[int, ...], length: int, offsets: Sequence[int], positions: int, stride: int,
                begin: int) -> tuple[tuple[int, ...], Tensor]:
    """Runs of sliding-window positions on one axis that read the same blocks.

    Output position ``o`` reads input place ``o * stride - begin + offsets[j]`` at kernel offset
    ``j``; a place outside ``[0, length)`` is padding. Positions whose windows read the same block
    (or padding) at every offset see the same bounds.

    Returns:
        The first position of each run, and for each run the block index read at each offset
        (``len(starts)`` for padding), shape ``(runs, len(offsets))``.
    """
    if positions <= 0:
        return (), torch.zeros((0, len(offsets)), dtype=torch.long)
    block_of = torch.zeros(max(length, 1), dtype=torch.long)
    if len(starts) > 1:
        block_of[list(starts[1:])] = 1
        block_of = block_of.cumsum(0)
    places = torch.arange(positions).unsqueeze(1) * stride - begin + torch.tensor(list(offsets)).unsqueeze(0)
    inside = (places >= 0) & (places < length)
    padding = torch.full_like(places, len(starts))
    reads = torch.where(inside, block_of[places.clamp(0, max(length - 1, 0))], padding)
    changes = (reads[1:] != reads[:-1]).any(1)
    first = torch.cat([torch.zeros(1, dtype=torch.long), torch.nonzero(changes).flatten() + 1])
    return tuple(first.tolist()), reads.index_select(0, first)
