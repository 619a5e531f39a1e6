"""Block rearrangements and generated patterns: DepthToSpace, SpaceToDepth, ReverseSequence, EyeLike,
and the distinct values of Unique.

All are exact (``rounds = False``). DepthToSpace and SpaceToDepth keep a one-block interval one block
(and blocks along the batch axis); other inputs are materialised within the block budget. A
ReverseSequence whose lengths are a range bounds each moved element by its sequence's values.
EyeLike's result is exact. Unique is exact on an exact input; otherwise how many distinct values
there are depends on the values: its values, first indices and counts get unknown shapes (one
interval each: the input's hull, positions, counts), the inverse indices their known shape.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from onnx import TensorProto
from torch import Tensor

from ranum.domain.dtypes import torch_dtype
from ranum.domain.interval import Interval
from ranum.errors import UnsupportedOperator
from ranum.ops._base import NodeContext, OpRule, exact_ints, structural
from ranum.ops.registry import register
from ranum.ops.shape import _moved

__all__ = ["DepthToSpace", "EyeLike", "ReverseSequence", "SpaceToDepth", "Unique"]

INT64 = TensorProto.INT64


# ------------------------------------------------------------------------------ depth and space
def _blocks_of(shape: Sequence[int], blocksize: int, op: str, to_space: bool) -> tuple[int, int, int, int]:
    """(n, c, h, w) of a valid DepthToSpace / SpaceToDepth input."""
    if len(shape) != 4 or blocksize < 1:
        raise UnsupportedOperator(f"{op}: needs a 4-D input and a positive blocksize, got shape {tuple(shape)}, "
                                  f"blocksize {blocksize}")
    n, c, h, w = shape
    if (c % (blocksize * blocksize)) if to_space else (h % blocksize or w % blocksize):
        raise UnsupportedOperator(f"{op}: shape {tuple(shape)} does not divide into blocks of {blocksize}")
    return n, c, h, w


def _by_batch(x: Interval, fn: Callable[[Tensor], Tensor], shape: Sequence[int], budget: int) -> Interval:
    """A rearrangement within each sample: an input with one block per sample stays so; else materialised."""
    if all(len(x.splits[a]) == 1 for a in range(1, 4)):
        grid = (len(x.splits[0]), 1, 1, 1)
        return _moved(x, lambda t: t.reshape(grid), (x.splits[0], (0,), (0,), (0,)), shape)
    return structural(fn, x, budget)


def _check_mode(op: str, mode: str) -> None:
    if mode not in ("DCR", "CRD"):
        raise UnsupportedOperator(f"{op}: mode must be DCR or CRD, got '{mode}'")


class _TileMove(OpRule):
    """A rearrangement between channels and spatial tiles; ``_fn`` gives the movement and the output shape.
    Subclasses declare the attributes ``blocksize`` and ``mode``."""

    blocksize: int
    mode: str
    rounds = False

    def __post_init__(self) -> None:
        _check_mode(self.op_type, self.mode)

    def _fn(self, shape: Sequence[int]) -> tuple[Callable[[Tensor], Tensor], tuple[int, ...]]:
        raise NotImplementedError

    def concrete(self, ctx: NodeContext, x: Tensor) -> Tensor:
        fn, _ = self._fn(tuple(x.shape))
        return fn(x)

    def abstract(self, ctx: NodeContext, x: Interval) -> Interval:
        fn, out = self._fn(x.shape)
        return _by_batch(x, fn, out, ctx.budget)


@register("DepthToSpace")
class DepthToSpace(_TileMove):
    """Moves channel blocks into blocksize x blocksize spatial tiles; ``mode`` DCR (default) reads the
    channels as (row, column, depth), CRD as (depth, row, column)."""

    blocksize: int = 0
    mode: str = "DCR"

    def _fn(self, shape: Sequence[int]) -> tuple[Callable[[Tensor], Tensor], tuple[int, ...]]:
        b = self.blocksize
        n, c, h, w = _blocks_of(shape, b, "DepthToSpace", to_space=True)
        out = (n, c // (b * b), h * b, w * b)
        if self.mode == "DCR":
            split, perm = (n, b, b, c // (b * b), h, w), (0, 3, 4, 1, 5, 2)
        else:
            split, perm = (n, c // (b * b), b, b, h, w), (0, 1, 4, 2, 5, 3)
        return (lambda t: t.reshape(split).permute(perm).reshape(out)), out


@register("SpaceToDepth")
class SpaceToDepth(_TileMove):
    """The inverse of DepthToSpace: blocksize x blocksize spatial tiles become channels (``mode`` from
    opset 28; DCR by default)."""

    blocksize: int = 0
    mode: str = "DCR"

    def _fn(self, shape: Sequence[int]) -> tuple[Callable[[Tensor], Tensor], tuple[int, ...]]:
        b = self.blocksize
        n, c, h, w = _blocks_of(shape, b, "SpaceToDepth", to_space=False)
        out = (n, c * b * b, h // b, w // b)
        perm = (0, 3, 5, 1, 2, 4) if self.mode == "DCR" else (0, 1, 3, 5, 2, 4)
        return (lambda t: t.reshape(n, c, h // b, b, w // b, b).permute(perm).reshape(out)), out


# ------------------------------------------------------------------------------ EyeLike
@register("EyeLike", since=9)
class EyeLike(OpRule):
    """Ones on diagonal ``k`` of a matrix shaped like the input, zeros elsewhere: exact. The element
    type is ``dtype``, else the input's."""

    dtype: int | None = None
    k: int = 0
    rounds = False

    def _eye(self, shape: Sequence[int], source: int) -> tuple[Tensor, int]:
        etype = self.dtype if self.dtype else source
        if len(shape) != 2:
            raise UnsupportedOperator(f"EyeLike: input must be 2-D, got shape {tuple(shape)}")
        try:
            dtype = torch_dtype(etype)
        except ValueError as exc:
            raise UnsupportedOperator(f"EyeLike: {exc}") from None
        rows, cols = torch.arange(shape[0])[:, None], torch.arange(shape[1])[None, :]
        return (cols - rows == self.k).to(dtype), etype

    def concrete(self, ctx: NodeContext, x: Tensor) -> Tensor:
        return self._eye(tuple(x.shape), ctx.input_types[0] if ctx.input_types else 0)[0]

    def abstract(self, ctx: NodeContext, x: Interval) -> Interval:
        return Interval.point(*self._eye(x.shape, x.elem_type))


# ------------------------------------------------------------------------------ ReverseSequence
@register("ReverseSequence", since=10)
class ReverseSequence(OpRule):
    """Reverses the first ``sequence_lens[b]`` elements along ``time_axis`` of each slice ``b`` along
    ``batch_axis``; later elements are copied. A length outside [0, time] is rejected (onnxruntime
    fails on it). With lengths given as a range, an element at time t below the largest length may
    come from any of the first (largest length) elements of its sequence: it gets their hull."""

    batch_axis: int = 1
    time_axis: int = 0
    rounds = False

    def _perm(self, rank: int) -> list[int]:
        axes = {self.batch_axis, self.time_axis}
        if rank < 2 or axes != {0, 1}:
            raise UnsupportedOperator(f"ReverseSequence: batch_axis {self.batch_axis} and time_axis "
                                      f"{self.time_axis} must be 0 and 1 of a tensor of rank >= 2")
        return [self.batch_axis, self.time_axis] + list(range(2, rank))

    def _source(self, shape: Sequence[int], lens: list[int]) -> Tensor:
        """(batch, time) index of the time step each output element comes from."""
        steps = shape[self.time_axis]
        if len(lens) != shape[self.batch_axis] or any(not 0 <= n <= steps for n in lens):
            raise UnsupportedOperator(f"ReverseSequence: sequence_lens {lens} do not fit shape {tuple(shape)}")
        t = torch.arange(steps)[None, :]
        length = torch.tensor(lens, dtype=torch.long)[:, None]
        return torch.where(t < length, length - 1 - t, t)

    def _gather(self, x: Tensor, source: Tensor) -> Tensor:
        perm = self._perm(x.dim())  # its own inverse: it swaps axes 0 and 1 at most
        moved = x.permute(perm)
        index = source.reshape(tuple(source.shape) + (1,) * (x.dim() - 2)).expand(moved.shape)
        return torch.gather(moved, 1, index).permute(perm)

    def concrete(self, ctx: NodeContext, x: Tensor, lens: Tensor) -> Tensor:
        return self._gather(x, self._source(tuple(x.shape), exact_ints(lens, "sequence_lens", "ReverseSequence")))

    def abstract(self, ctx: NodeContext, x: Interval, lens: Interval) -> Interval:
        if lens.is_exact:
            source = self._source(x.shape, exact_ints(lens, "sequence_lens", "ReverseSequence"))
            return structural(lambda t: self._gather(t, source), x, ctx.budget)
        perm = self._perm(len(x.shape))
        lo, hi = (t.permute(perm) for t in x.full())
        longest = lens.full()[1].clamp(0, x.shape[self.time_axis]).reshape(-1, 1)
        moved = (torch.arange(x.shape[self.time_axis])[None, :] < longest)
        moved = moved.reshape(tuple(moved.shape) + (1,) * (lo.dim() - 2))
        top = math.inf if lo.is_floating_point() else torch.iinfo(lo.dtype).max
        hull_lo = torch.where(moved, lo, torch.full_like(lo, top)).amin(1, keepdim=True)
        hull_hi = torch.where(moved, hi, torch.full_like(hi, -top)).amax(1, keepdim=True)
        lo, hi = torch.where(moved, hull_lo, lo), torch.where(moved, hull_hi, hi)
        return Interval.from_full(lo.permute(perm), hi.permute(perm), x.elem_type, ctx.budget)


# ------------------------------------------------------------------------------ distinct values
@register("Unique", since=11)
class Unique(OpRule):
    """Distinct values (of the flattened input, or slices along ``axis``), sorted or in order of first
    occurrence, with each one's first index, every element's index into them, and their counts."""

    axis: int | None = None
    sorted: int = 1

    rounds = False

    def concrete(self, ctx: NodeContext, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        rows = x.reshape(-1) if self.axis is None else x.movedim(self.axis, 0)
        values, inverse, counts = torch.unique(rows, sorted=True, return_inverse=True, return_counts=True,
                                               dim=None if self.axis is None else 0)
        count = rows.shape[0]
        first = torch.full((values.shape[0],), count, dtype=torch.long).scatter_reduce(
            0, inverse, torch.arange(count), "amin")
        if not self.sorted:  # in order of first occurrence
            order = torch.argsort(first)
            rank = torch.argsort(order)
            values, first, counts, inverse = values[order], first[order], counts[order], rank[inverse]
        values = values if self.axis is None else values.movedim(0, self.axis)
        return values, first, inverse.reshape(-1), counts

    def abstract(self, ctx: NodeContext, x: Interval) -> tuple[Interval, ...]:
        if x.is_exact:
            outs = self.concrete(ctx, x.exact_value())
            return tuple(Interval.point(t, x.elem_type if i == 0 else INT64) for i, t in enumerate(outs))
        count = math.prod(x.shape) if self.axis is None else x.shape[self.axis % len(x.shape)]
        if count == 0:
            raise UnsupportedOperator("Unique of an empty tensor")
        values = Interval.create(x.lower.amin(), x.upper.amax(), (), None, x.elem_type)
        positions = Interval.create(torch.tensor(0), torch.tensor(count - 1), (), None, INT64)
        inverse = Interval.uniform(0, count - 1, (count,), INT64)
        counts = Interval.create(torch.tensor(1), torch.tensor(count), (), None, INT64)
        return values, positions, inverse, counts
