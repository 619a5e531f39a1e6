"""Operators that place input values into an output: MaxUnpool, Col2Im, CenterCropPad, TensorScatter.

MaxUnpool writes each element of X at the flat position its index names (onnxruntime: positions in the
flat *output* tensor, the last write wins, an index outside it is a runtime error); positions nobody
writes stay 0. With exact indices the placement is exact (the same movement of the lower and upper
bound tensors); with index ranges, a position gets the hull of the elements that may write it, joined
with 0 unless some element writes it for sure. Col2Im sums overlapping column patches into an image
(F.fold generalised to any rank): the bounds of each pixel are the sums of the bounds of the entries
that land on it, widened by the float error of a sum of that many terms. CenterCropPad moves a centred
window and pads with zeros: exact. TensorScatter (a KV cache update) writes ``update`` into
``past_cache`` along the sequence axis from each batch entry's write index (mod the cache length in
``circular`` mode): exact indices move the bounds exactly; a range of write indices gives each position
that some index writes the hull of the update (joined with the cache where a write is not certain).
In ``linear`` mode a write past the cache is onnxruntime's runtime error, so only indices that fit
count. Invariants: bounds sound for any input inside the intervals, never
NaN; ``rounds = False`` except for Col2Im's sums, which round once per addition.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from ranum.domain import arith
from ranum.domain.dtypes import is_float
from ranum.domain.interval import Interval
from ranum.errors import UnsupportedOperator
from ranum.ops._base import NodeContext, OpRule, exact_ints, inferred_shape, structural
from ranum.ops.hazards import Overflow
from ranum.ops.registry import register

__all__ = ["CenterCropPad", "Col2Im", "MaxUnpool", "MaxUnpool9", "TensorScatter", "last_writers", "paint_range_min"]


# ------------------------------------------------------------------------------ scatter helpers
def last_writers(index: Tensor, size: int) -> Tensor:
    """For each of ``size`` positions, the position in ``index`` of its last write (-1: never written).

    ``index`` is flat and in ``[0, size)``: element ``j`` writes position ``index[j]``, in order of ``j``.
    """
    order = torch.arange(index.numel(), dtype=torch.long)
    empty = torch.full((size,), -1, dtype=torch.long)
    return empty.scatter_reduce(0, index.reshape(-1), order, "amax", include_self=True)


def paint_range_min(values: Tensor, starts: Tensor, ends: Tensor, size: int) -> Tensor:
    """``out[p] = min(values[j] for every j with starts[j] <= p <= ends[j])``, +inf where no range covers p.

    Each range is the union of two (overlapping) runs of length 2**k, k = floor(log2(length)): runs are
    scattered level by level from the longest, and a run of length 2**k passes its value on to its two
    halves at the next level. Cost O(size * log(size) + len(values)); ranges must lie in [0, size).
    """
    out = torch.full((size,), torch.inf, dtype=torch.float64)
    if values.numel() == 0 or size == 0:
        return out
    levels = torch.floor(torch.log2((ends - starts + 1).to(torch.float64))).to(torch.long)
    carried = torch.full((size,), torch.inf, dtype=torch.float64)
    for level in range(int(levels.max()), -1, -1):
        run = 1 << level
        here = carried
        chosen = levels == level
        if bool(chosen.any()):
            picked = values[chosen].to(torch.float64)
            here = here.scatter_reduce(0, starts[chosen], picked, "amin")
            here = here.scatter_reduce(0, ends[chosen] - run + 1, picked, "amin")
        if level == 0:
            return here
        half = run >> 1
        shifted = torch.cat([torch.full((half,), torch.inf, dtype=torch.float64), here[:-half]])
        carried = torch.minimum(here, shifted[:size])
    return out


# ------------------------------------------------------------------------------ MaxUnpool
@register("MaxUnpool", since=9)
class MaxUnpool9(OpRule):
    """Scatters X (N, C, *spatial) into a zero tensor at the flat positions of I (same shape as X).

    The output shape is ``output_shape`` when given, else (N, C) and per spatial axis
    ``(n - 1) * stride - pad_begin - pad_end + kernel``. Exact indices place every bound exactly; index
    ranges give each position the hull of the values that may land on it (and 0 unless it is surely
    written), computed by :func:`paint_range_min`.
    """

    kernel_shape: tuple[int, ...] = ()
    pads: tuple[int, ...] = ()
    strides: tuple[int, ...] = ()
    rounds = False

    def __post_init__(self) -> None:
        if not self.kernel_shape:
            raise UnsupportedOperator("MaxUnpool: kernel_shape is required")

    def _shape(self, x_shape: Sequence[int], given: list[int] | None) -> tuple[int, ...]:
        """The output shape, checked as onnxruntime does."""
        rank = len(self.kernel_shape)
        if len(x_shape) != rank + 2 or rank > 3:
            raise UnsupportedOperator(f"MaxUnpool: input of shape {tuple(x_shape)} for a kernel of rank {rank}")
        strides = list(self.strides) or [1] * rank
        pads = list(self.pads) or [0] * (2 * rank)
        inferred = [x_shape[0], x_shape[1]] + [
            (n - 1) * strides[i] - pads[i] - pads[i + rank] + self.kernel_shape[i] for i, n in enumerate(x_shape[2:])]
        if any(n <= 0 for n in inferred[2:]):
            raise UnsupportedOperator(f"MaxUnpool: attributes give a non-positive output shape {inferred}")
        if given is None:
            return tuple(inferred)
        if len(given) != len(x_shape) or list(given[:2]) != list(x_shape[:2]) or math.prod(given) < math.prod(inferred):
            raise UnsupportedOperator(f"MaxUnpool: output_shape {given} does not fit input {tuple(x_shape)} "
                                      f"(at least {inferred} elements, same N and C)")
        return tuple(given)

    @staticmethod
    def _check_indices(index: Tensor, size: int) -> None:
        if index.numel() and (int(index.min()) < 0 or int(index.max()) >= size):
            raise UnsupportedOperator(f"MaxUnpool: an index lies outside [0, {size}) (onnxruntime fails)")

    def concrete(self, ctx: NodeContext, x: Tensor, indices: Tensor, output_shape: Tensor | None = None) -> Tensor:
        shape = self._shape(tuple(x.shape), exact_ints(output_shape, "output_shape", "MaxUnpool"))
        size = math.prod(shape)
        flat = indices.reshape(-1).to(torch.long)
        self._check_indices(flat, size)
        return _place(x.reshape(-1), last_writers(flat, size)).reshape(shape)

    def abstract(self, ctx: NodeContext, x: Interval, indices: Interval, output_shape: Interval | None = None
                 ) -> Interval:
        if output_shape is not None and not output_shape.is_exact:
            shape = self._shape(x.shape, list(inferred_shape(ctx, "MaxUnpool", "output_shape")))
        else:
            shape = self._shape(x.shape, exact_ints(output_shape, "output_shape", "MaxUnpool"))
        size = math.prod(shape)
        if indices.is_exact:
            flat = indices.exact_value().reshape(-1).to(torch.long)
            self._check_indices(flat, size)
            writers = last_writers(flat, size)
            return structural(lambda t: _place(t.reshape(-1), writers).reshape(shape), x, ctx.budget)
        return _unpool_ranges(x, indices, shape, ctx.budget)


@register("MaxUnpool", since=11)
class MaxUnpool(MaxUnpool9):
    """MaxUnpool from opset 11 (same semantics; opset 22 only adds types)."""


def _place(values: Tensor, writers: Tensor) -> Tensor:
    """Output of a scatter given each position's last writer (-1: stays 0)."""
    picked = values[writers.clamp(min=0)]
    return torch.where(writers >= 0, picked, torch.zeros_like(picked))


def _unpool_ranges(x: Interval, indices: Interval, shape: tuple[int, ...], budget: int) -> Interval:
    """MaxUnpool with index ranges: per position, the hull of the possible writers' bounds, and 0 unless
    an element surely writes it. Indices are clipped to the output (another index fails the run)."""
    size = math.prod(shape)
    lo, hi = (t.reshape(-1).to(torch.float64) for t in x.full())
    first, last = (t.reshape(-1).to(torch.long) for t in indices.full())
    first, last = first.clamp(min=0), last.clamp(max=size - 1)
    valid = first <= last
    lo, hi, first, last = lo[valid], hi[valid], first[valid], last[valid]
    lower = paint_range_min(lo, first, last, size)
    upper = -paint_range_min(-hi, first, last, size)
    sure = torch.zeros(size, dtype=torch.bool)
    sure[first[first == last]] = True
    zero = torch.zeros_like(lower)
    lower = torch.where(sure, lower, torch.minimum(lower, zero))
    upper = torch.where(sure, upper, torch.maximum(upper, zero))
    return Interval.from_full(lower.reshape(shape), upper.reshape(shape), x.elem_type, budget)


# ------------------------------------------------------------------------------ Col2Im
def _col2im_targets(image: Sequence[int], block: Sequence[int], strides: Sequence[int], pads: Sequence[int],
                    dilations: Sequence[int]) -> tuple[Tensor, int]:
    """Flat image position of every (kernel offset, block) entry of a column tensor (-1: in the padding).

    Returns:
        ``(targets, blocks)``: targets of shape (prod(block) * blocks,) in the column layout, and the
        number of blocks (sliding positions).
    """
    rank = len(image)
    counts = [(image[i] + pads[i] + pads[i + rank] - (dilations[i] * (block[i] - 1) + 1)) // strides[i] + 1
              for i in range(rank)]
    if any(n <= 0 for n in counts):
        raise UnsupportedOperator(f"Col2Im: no block fits image {list(image)} with block {list(block)}")
    target = torch.zeros((1,) * (2 * rank), dtype=torch.long)
    inside = torch.ones_like(target, dtype=torch.bool)
    scale = 1
    for i in reversed(range(rank)):
        view = [1] * (2 * rank)
        view[i], view[rank + i] = block[i], counts[i]
        pos = (torch.arange(counts[i])[None, :] * strides[i] + torch.arange(block[i])[:, None] * dilations[i]
               - pads[i]).reshape(view)
        target = target + pos * scale
        inside = inside & (pos >= 0) & (pos < image[i])
        scale *= image[i]
    return torch.where(inside, target, -1).reshape(-1), math.prod(counts)


@register("Col2Im", since=18)
class Col2Im(OpRule):
    """Sums the column blocks of input (N, C * prod(block_shape), L) into an image (N, C, *image_shape).

    Every pixel is a sum of the column entries that land on it (at most prod(block_shape) of them, none
    in the padding), so its bounds are the sums of their bounds plus the float error of that many
    additions. onnxruntime's non-2-D kernel mishandles dilations (it disagrees with the ONNX reference);
    that case is rejected.
    """

    dilations: tuple[int, ...] = ()
    pads: tuple[int, ...] = ()
    strides: tuple[int, ...] = ()
    hazards = (Overflow(),)
    accumulates = True

    def _layout(self, x_shape: Sequence[int], image: list[int] | None, block: list[int] | None
                ) -> tuple[Tensor, tuple[int, ...], int]:
        """(targets, output shape, channels) for a column tensor of ``x_shape``."""
        if image is None or block is None or len(image) != len(block) or not image:
            raise UnsupportedOperator("Col2Im: image_shape and block_shape must be constants of one length")
        rank = len(image)
        dilations = list(self.dilations) or [1] * rank
        strides, pads = list(self.strides) or [1] * rank, list(self.pads) or [0] * (2 * rank)
        if rank != 2 and any(d != 1 for d in dilations):
            raise UnsupportedOperator("Col2Im: dilations on a non-2-D image (onnxruntime's kernel disagrees "
                                      "with the ONNX reference there)")
        if len(x_shape) != 3 or x_shape[1] % math.prod(block):
            raise UnsupportedOperator(f"Col2Im: input shape {tuple(x_shape)} does not hold blocks of {block}")
        targets, count = _col2im_targets(image, block, strides, pads, dilations)
        if count != x_shape[2]:
            raise UnsupportedOperator(f"Col2Im: input has {x_shape[2]} blocks, the geometry gives {count}")
        channels = x_shape[1] // math.prod(block)
        return targets, (x_shape[0], channels, *image), channels

    def _operands(self, x_shape: Sequence[int], image: Interval | Tensor, block: Interval | Tensor
                  ) -> tuple[Tensor, tuple[int, ...], int]:
        return self._layout(x_shape, exact_ints(image, "image_shape", "Col2Im"),
                            exact_ints(block, "block_shape", "Col2Im"))

    def concrete(self, ctx: NodeContext, x: Tensor, image: Tensor, block: Tensor) -> Tensor:
        if not x.is_floating_point():
            raise UnsupportedOperator(f"Col2Im: {x.dtype} input (onnxruntime sums float tensors only)")
        targets, shape, channels = self._operands(tuple(x.shape), image, block)
        return _fold(x.to(torch.float64), targets, shape, channels).to(x.dtype)

    def abstract(self, ctx: NodeContext, x: Interval, image: Interval, block: Interval) -> Interval:
        if not is_float(x.elem_type):
            raise UnsupportedOperator(f"Col2Im: element type {x.elem_type} (onnxruntime sums float tensors only)")
        targets, shape, channels = self._operands(x.shape, image, block)
        lo, hi = (t.to(torch.float64) for t in x.full())

        def fold(t: Tensor) -> Tensor:
            return _fold(t, targets, shape, channels)

        terms = int(fold(torch.ones((1, *x.shape[1:]), dtype=torch.float64)).max()) if lo.numel() else 1
        lower, upper = fold(lo), fold(hi)
        if terms > 1:  # one term added to the zero image is exact
            nonneg = fold((lo < 0).to(torch.float64)) == 0
            lower, upper = arith.with_accumulation_error(lower, upper, fold(lo.abs()), terms, x.elem_type, nonneg,
                                                         fold(hi.abs()))
        return Interval.from_full(lower, upper, x.elem_type, ctx.budget)


def _fold(x: Tensor, targets: Tensor, shape: tuple[int, ...], channels: int) -> Tensor:
    """Sum of column entries (N, C * K, L) into the flat positions ``targets`` of an image of ``shape``."""
    keep = targets >= 0
    columns = x.reshape(x.shape[0], channels, -1)[:, :, keep]
    out = torch.zeros((x.shape[0], channels, math.prod(shape[2:])), dtype=x.dtype)
    out = out.index_add(2, targets[keep], columns)
    return out.reshape((x.shape[0], *shape[1:]))


# ------------------------------------------------------------------------------ CenterCropPad
@register("CenterCropPad", since=18)
class CenterCropPad(OpRule):
    """Crops (start rounded down) or zero-pads (the odd pixel after) each axis in ``axes`` to ``shape``."""

    axes: tuple[int, ...] = ()
    rounds = False

    def _windows(self, in_shape: Sequence[int], target: list[int] | None) -> list[tuple[int, int, int, int]]:
        """Per axis: (source start, destination start, length, output size)."""
        rank = len(in_shape)
        axes = [a % rank if -rank <= a < rank else -1 for a in (self.axes or range(rank))]
        if target is None or len(target) != len(axes) or -1 in axes or len(set(axes)) != len(axes):
            raise UnsupportedOperator(f"CenterCropPad: shape {target} does not match axes {list(self.axes)} "
                                      f"of a rank-{rank} input")
        sizes = list(in_shape)
        for axis, n in zip(axes, target):
            sizes[axis] = n
        if any(n < 0 for n in sizes):
            raise UnsupportedOperator(f"CenterCropPad: negative target shape {target}")
        out = []
        for n, t in zip(in_shape, sizes):
            length = min(n, t)
            out.append(((n - t) // 2 if n > t else 0, (t - n) // 2 if t > n else 0, length, t))
        return out

    @staticmethod
    def _move(x: Tensor, windows: list[tuple[int, int, int, int]]) -> Tensor:
        out = torch.zeros([w[3] for w in windows], dtype=x.dtype)
        source = tuple(slice(s, s + n) for s, _, n, _ in windows)
        dest = tuple(slice(d, d + n) for _, d, n, _ in windows)
        out[dest] = x[source]
        return out

    def concrete(self, ctx: NodeContext, x: Tensor, shape: Tensor) -> Tensor:
        windows = self._windows(tuple(x.shape), exact_ints(shape, "shape", "CenterCropPad"))
        return self._move(x, windows)

    def abstract(self, ctx: NodeContext, x: Interval, shape: Interval) -> Interval:
        windows = self._windows(x.shape, exact_ints(shape, "shape", "CenterCropPad"))
        return structural(lambda t: self._move(t, windows), x, ctx.budget)



@register("TensorScatter", since=24)
class TensorScatter(OpRule):
    """``present = past_cache`` with ``update[b]`` written at positions ``write_indices[b] + s`` of ``axis``."""

    axis: int = -2
    mode: str = "linear"
    rounds = False

    def __post_init__(self) -> None:
        if self.mode not in ("linear", "circular"):
            raise UnsupportedOperator(f"TensorScatter: unknown mode '{self.mode}' (linear or circular)")

    def _axis(self, cache: Sequence[int] | None, update: Sequence[int] | None) -> int:
        """The sequence axis, checked: not the batch axis, and the update's shape fits the cache."""
        if cache is None or update is None:
            raise UnsupportedOperator("TensorScatter: operands of unknown shape")
        rank = len(cache)
        if not -rank <= self.axis < rank or self.axis % rank == 0 or len(update) != rank:
            raise UnsupportedOperator(f"TensorScatter: axis {self.axis} does not fit a rank-{rank} cache "
                                      "(axis 0 is the batch)")
        axis = self.axis % rank
        if any(u != c for a, (u, c) in enumerate(zip(update, cache)) if a != axis) or update[axis] > cache[axis]:
            raise UnsupportedOperator(f"TensorScatter: update of shape {list(update)} does not fit a cache of "
                                      f"shape {list(cache)} on axis {axis}")
        return axis

    def _positions(self, start: int, count: int, length: int) -> Tensor:
        """Cache positions written from ``start`` (a write past the cache is an error in linear mode)."""
        positions = torch.arange(start, start + count)
        if self.mode == "circular":
            return positions % length
        if start < 0 or start + count > length:
            raise UnsupportedOperator(f"TensorScatter: write index {start} with {count} updates leaves a cache "
                                      f"of length {length} (onnxruntime fails)")
        return positions

    def _written(self, cache: Tensor, update: Tensor, starts: Sequence[int], axis: int) -> Tensor:
        out = cache.clone()
        for b, start in enumerate(starts):
            positions = self._positions(start, update.shape[axis], cache.shape[axis])
            out[b].index_copy_(axis - 1, positions, update[b])
        return out

    def _starts(self, write_indices: Interval | Tensor | None, batch: int) -> list[int]:
        starts = exact_ints(write_indices, "write_indices", "TensorScatter")
        return [0] * batch if starts is None else starts

    def concrete(self, ctx: NodeContext, past_cache: Tensor, update: Tensor,
                 write_indices: Tensor | None = None) -> Tensor:
        axis = self._axis(tuple(past_cache.shape), tuple(update.shape))
        return self._written(past_cache, update, self._starts(write_indices, past_cache.shape[0]), axis)

    def abstract(self, ctx: NodeContext, past_cache: Interval, update: Interval,
                 write_indices: Interval | None = None) -> Interval:
        axis = self._axis(past_cache.shape, update.shape)
        if write_indices is None or write_indices.is_exact:
            starts = self._starts(write_indices, past_cache.shape[0])
            (cache_lo, cache_hi), (up_lo, up_hi) = past_cache.full(), update.full()
            return Interval.from_full(self._written(cache_lo, up_lo, starts, axis),
                                      self._written(cache_hi, up_hi, starts, axis), past_cache.elem_type, ctx.budget)
        return self._ranged(past_cache, update, write_indices, axis, ctx.budget)

    def _ranged(self, cache: Interval, update: Interval, write_indices: Interval, axis: int, budget: int) -> Interval:
        """Write indices in ranges: every position some index writes may hold any update element of its
        batch entry (and keeps the cache's value unless every index writes it)."""
        (lo, hi), (up_lo, up_hi) = cache.full(), update.full()
        lo, hi = lo.clone(), hi.clone()
        first, last = (t.reshape(-1).tolist() for t in write_indices.full())
        count, length = update.shape[axis], cache.shape[axis]
        for b, (low_start, high_start) in enumerate(zip(first, last)):
            maybe, surely = self._reach(int(low_start), int(high_start), count, length)
            if not maybe:
                continue
            u_lo, u_hi = up_lo[b].amin(axis - 1, keepdim=True), up_hi[b].amax(axis - 1, keepdim=True)
            for positions, keep in ((maybe, True), (surely, False)):
                index = torch.tensor(sorted(positions), dtype=torch.long)
                old_lo, old_hi = lo[b].index_select(axis - 1, index), hi[b].index_select(axis - 1, index)
                new_lo = torch.minimum(old_lo, u_lo) if keep else u_lo.expand_as(old_lo)
                new_hi = torch.maximum(old_hi, u_hi) if keep else u_hi.expand_as(old_hi)
                lo[b].index_copy_(axis - 1, index, new_lo.contiguous())
                hi[b].index_copy_(axis - 1, index, new_hi.contiguous())
        return Interval.from_full(lo, hi, cache.elem_type, budget)

    def _reach(self, low_start: int, high_start: int, count: int, length: int) -> tuple[set[int], set[int]]:
        """Positions that some write index in [low_start, high_start] writes, and those that every one does."""
        if self.mode == "linear":  # indices whose writes leave the cache fail at run time: they do not count
            low_start, high_start = max(low_start, 0), min(high_start, length - count)
        if count == 0 or low_start > high_start:
            return set(), set()
        if high_start - low_start + count >= length and self.mode == "circular":
            maybe = set(range(length))
        else:
            maybe = {p % length for p in range(low_start, high_start + count)}
        surely = {p % length for p in range(high_start, low_start + count)}
        return maybe, surely
