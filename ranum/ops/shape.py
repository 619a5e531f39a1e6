"""Shape manipulation: operators that move, copy, select, create or convert values.

Movement rules (Reshape, Flatten, Squeeze, Unsqueeze, Transpose, Identity, Concat, Split, Slice,
Expand, Tile; block rearrangements are in :mod:`ranum.ops.rearrange`) and Shape, Size, Constant,
ConstantOfShape are exact: ``rounds = False``. Only Cast to
a type that cannot hold every source value rounds (one ulp outward, overflow to infinity), Range
carries onnxruntime's accumulated summation error, and training-mode Dropout scales by
1 / (1 - ratio). Invariants: shape and index operands (Reshape's shape, Slice's starts/ends/axes/
steps, Expand's shape, Tile's repeats, Split's sizes, Squeeze/Unsqueeze axes) must be exact; when
one is not, a rule uses the output shape from ONNX shape inference if that settles the result (and
checks that it fits the input), else raises UnsupportedOperator. A Range whose length differs over
its operand ranges yields an interval of unknown shape. Abstract rules keep the block structure
wherever the movement allows: a one-block interval stays one block under Reshape, Flatten,
Transpose, Squeeze, Unsqueeze, Expand, Tile and Identity; Transpose permutes splits; Concat
concatenates them; selections along an axis (Slice, Split, Tile) cost the output length of that
axis, not the tensor size; only a Reshape that cuts through blocks materialises (within budget).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from onnx import TensorProto
from torch import Tensor

from ranum.domain import blocks
from ranum.domain.interval import Interval
from ranum.errors import InconsistentShapes, UnsupportedOperator
from ranum.ops._base import COPIES, COPIES_ALL, COUNTS, NodeContext, OpRule, exact_ints, inferred_shape, structural
from ranum.ops.registry import register

__all__ = [
    "Concat", "Expand", "Flatten", "Identity", "Reshape", "Shape", "Size", "Slice", "Split", "Squeeze", "Tile",
    "Transpose", "Unsqueeze",
]

INT64 = TensorProto.INT64


# ------------------------------------------------------------------------------------ helpers
def _axis(axis: int, rank: int) -> int:
    if not -rank <= axis < max(rank, 1):
        raise UnsupportedOperator(f"axis {axis} out of range for rank {rank}")
    return axis % rank if rank else 0


def _broadcast(first: Sequence[int], second: Sequence[int]) -> tuple[int, ...]:
    """Numpy broadcast of two shapes (without torch.broadcast_shapes, whose first call imports sympy)."""
    rank = max(len(first), len(second))
    a, b = (1,) * (rank - len(first)) + tuple(first), (1,) * (rank - len(second)) + tuple(second)
    if any(m != n and 1 not in (m, n) for m, n in zip(a, b)):
        raise InconsistentShapes(f"shapes {tuple(first)} and {tuple(second)} do not broadcast")
    return tuple(n if m == 1 else m for m, n in zip(a, b))


def _rebuild(x: Interval, lower: Tensor, upper: Tensor, splits: Sequence[tuple[int, ...]],
             shape: Sequence[int]) -> Interval:
    return Interval.create(lower, upper, tuple(splits), tuple(shape), x.elem_type)


def _moved(x: Interval, layout: Callable[[Tensor], Tensor], splits: Sequence[tuple[int, ...]],
           shape: Sequence[int]) -> Interval:
    """``x`` under a pure re-indexing of its block tensors (no value changes: nothing to sanitise or merge)."""
    return x.relaid(layout, tuple(splits), tuple(int(n) for n in shape))


def _select(x: Interval, axis: int, index: Tensor) -> Interval:
    """``x.index_select(axis, index)`` on blocks: one block per run of equal source blocks."""
    shape, splits = list(x.shape), list(x.splits)
    shape[axis] = int(index.numel())
    if index.numel() == 0:
        splits[axis] = ()
        return _rebuild(x, x.lower.narrow(axis, 0, 0), x.upper.narrow(axis, 0, 0), splits, shape)
    source = torch.tensor(x.splits[axis], dtype=torch.long)
    block = torch.searchsorted(source, index.to(torch.long), right=True) - 1
    change = torch.ones_like(block, dtype=torch.bool)
    change[1:] = block[1:] != block[:-1]
    starts = torch.nonzero(change).flatten()
    chosen = block[starts]
    splits[axis] = tuple(starts.tolist())
    return _rebuild(x, x.lower.index_select(axis, chosen), x.upper.index_select(axis, chosen), splits, shape)


def _axis_groups(old: Sequence[int], new: Sequence[int]) -> list[tuple[list[int], list[int]]] | None:
    """Pair runs of old and new axes with equal products (the axes a reshape merges or splits)."""
    groups, i, j = [], 0, 0
    while i < len(old) or j < len(new):
        olds, news = [i] if i < len(old) else [], [j] if j < len(new) else []
        i, j = i + len(olds), j + len(news)
        while (p := math.prod(old[a] for a in olds)) != (q := math.prod(new[a] for a in news)):
            if p < q and i < len(old):
                olds, i = olds + [i], i + 1
            elif p > q and j < len(new):
                news, j = news + [j], j + 1
            else:
                return None
        groups.append((olds, news))
    return groups


def _group_splits(x: Interval, olds: list[int], news: list[int], new: Sequence[int]) -> list | None:
    """New splits of a group's axes, if the blocks survive the reshape (else None)."""
    old_axes = [a for a in olds if x.shape[a] != 1]
    new_axes = [a for a in news if new[a] != 1]
    result = [(0,)] * len(news)
    if not old_axes or not new_axes:
        return result
    if all(len(x.splits[a]) == x.shape[a] for a in old_axes):  # one block per element: so it stays
        return [tuple(range(new[a])) if new[a] != 1 else (0,) for a in news]
    if any(len(x.splits[a]) > 1 for a in old_axes[1:]):
        return None
    inner_old = math.prod(x.shape[a] for a in old_axes[1:])
    inner_new = math.prod(new[a] for a in new_axes[1:])
    flat = [s * inner_old for s in x.splits[old_axes[0]]]
    if any(f % inner_new for f in flat):
        return None
    result[news.index(new_axes[0])] = tuple(f // inner_new for f in flat)
    return result


def _reshaped(x: Interval, new: Sequence[int], budget: int) -> Interval:
    """Reshape keeping blocks where a group of axes has at most its leading axis split."""
    new = tuple(int(n) for n in new)
    if x.shape == new:
        return x
    groups = None if 0 in x.shape else _axis_groups(x.shape, new)
    splits: list[tuple[int, ...]] = []
    for olds, news in groups or []:
        part = _group_splits(x, olds, news, new)
        if part is None:
            groups = None
            break
        splits += part
    if groups is None:
        return structural(lambda t: t.reshape(new), x, budget)
    grid = [len(s) for s in splits]
    return _moved(x, lambda t: t.reshape(grid), splits, new)


# ------------------------------------------------------------------------------ shape queries
@register("Shape")
class Shape(OpRule):
    """The input's shape (``start``/``end`` from opset 15) as an exact int64 vector."""
    unknown_shapes = COUNTS

    start: int = 0
    end: int | None = None
    rounds = False

    def concrete(self, ctx: NodeContext, x: Tensor) -> Tensor:
        return torch.tensor(tuple(x.shape)[self.start:self.end], dtype=torch.int64)

    def abstract(self, ctx: NodeContext, x: Interval) -> Interval:
        return Interval.point(torch.tensor(x.shape[self.start:self.end], dtype=torch.int64), INT64)


@register("Size")
class Size(OpRule):
    """Number of elements, an exact int64 scalar."""
    unknown_shapes = COUNTS

    rounds = False

    def concrete(self, ctx: NodeContext, x: Tensor) -> Tensor:
        return torch.tensor(x.numel(), dtype=torch.int64)

    def abstract(self, ctx: NodeContext, x: Interval) -> Interval:
        return Interval.point(torch.tensor(math.prod(x.shape), dtype=torch.int64), INT64)


# ------------------------------------------------------------------------------ reshaping
def _reshape_target(in_shape: Sequence[int], spec: list[int], allowzero: int) -> tuple[int, ...]:
    out = [in_shape[i] if d == 0 and not allowzero and i < len(in_shape) else d for i, d in enumerate(spec)]
    if -1 in out:
        known = math.prod(d for d in out if d != -1)
        out[out.index(-1)] = math.prod(in_shape) // known if known else 0
    return tuple(out)


@register("Reshape", since=5)
class Reshape(OpRule):
    unknown_shapes = COPIES
    allowzero: int = 0
    rounds = False

    def concrete(self, ctx: NodeContext, data: Tensor, shape: Tensor) -> Tensor:
        return data.reshape(_reshape_target(tuple(data.shape), exact_ints(shape, "shape", "Reshape"), self.allowzero))

    def abstract(self, ctx: NodeContext, data: Interval, shape: Interval) -> Interval:
        if shape.is_exact:
            target = _reshape_target(data.shape, exact_ints(shape, "shape", "Reshape"), self.allowzero)
        else:
            target = inferred_shape(ctx, "Reshape", "shape")
            if math.prod(target) != math.prod(data.shape):
                raise UnsupportedOperator(f"Reshape: inferred shape {target} does not fit input shape {data.shape}")
        return _reshaped(data, target, ctx.budget)


@register("Flatten")
class Flatten(OpRule):
    unknown_shapes = COPIES
    axis: int = 1
    rounds = False

    def _target(self, shape: Sequence[int]) -> tuple[int, int]:
        axis = self.axis + len(shape) if self.axis < 0 else self.axis
        return math.prod(shape[:axis]), math.prod(shape[axis:])

    def concrete(self, ctx: NodeContext, x: Tensor) -> Tensor:
        return x.reshape(self._target(tuple(x.shape)))

    def abstract(self, ctx: NodeContext, x: Interval) -> Interval:
        return _reshaped(x, self._target(x.shape), ctx.budget)


@register("Squeeze")
class Squeeze(OpRule):
    """Removes size-1 axes (``axes`` attribute before opset 13, input from 13; all when absent)."""
    unknown_shapes = COPIES

    axes: tuple[int, ...] | None = None
    rounds = False

    def _dims(self, shape: Sequence[int], axes: list[int] | None) -> list[int]:
        axes = axes if axes is not None else (list(self.axes) if self.axes is not None else None)
        if axes is None:
            return [a for a, n in enumerate(shape) if n == 1]
        dims = sorted({_axis(a, len(shape)) for a in axes})
        if any(shape[a] != 1 for a in dims):
            raise InconsistentShapes(f"Squeeze: axes {axes} of shape {tuple(shape)} are not all of size 1")
        return dims

    def concrete(self, ctx: NodeContext, x: Tensor, axes: Tensor | None = None) -> Tensor:
        dims = self._dims(tuple(x.shape), exact_ints(axes, "axes", "Squeeze"))
        return x.reshape([n for a, n in enumerate(x.shape) if a not in dims])

    def abstract(self, ctx: NodeContext, x: Interval, axes: Interval | None = None) -> Interval:
        dims = self._dims(x.shape, exact_ints(axes, "axes", "Squeeze"))
        keep = [a for a in range(len(x.shape)) if a not in dims]
        grid = [x.stored_lower.shape[a] for a in keep]
        return _moved(x, lambda t: t.reshape(grid), [x.splits[a] for a in keep], [x.shape[a] for a in keep])


@register("Unsqueeze")
class Unsqueeze(OpRule):
    """Inserts size-1 axes (``axes`` attribute before opset 13, input from 13)."""
    unknown_shapes = COPIES

    axes: tuple[int, ...] | None = None
    rounds = False

    def _sources(self, shape: Sequence[int], axes: list[int] | None) -> list[int]:
        """For each output axis, the input axis it comes from (-1 for an inserted one)."""
        axes = axes if axes is not None else list(self.axes or ())
        rank = len(shape) + len(axes)
        dims = {_axis(a, rank) for a in axes}
        if len(dims) != len(axes):
            raise UnsupportedOperator(f"Unsqueeze: repeated axes {axes}")
        rest = iter(range(len(shape)))
        return [-1 if a in dims else next(rest) for a in range(rank)]

    def concrete(self, ctx: NodeContext, x: Tensor, axes: Tensor | None = None) -> Tensor:
        where = self._sources(tuple(x.shape), exact_ints(axes, "axes", "Unsqueeze"))
        return x.reshape([1 if a < 0 else x.shape[a] for a in where])

    def abstract(self, ctx: NodeContext, x: Interval, axes: Interval | None = None) -> Interval:
        where = self._sources(x.shape, exact_ints(axes, "axes", "Unsqueeze"))
        grid = [1 if a < 0 else x.stored_lower.shape[a] for a in where]
        splits = [(0,) if a < 0 else x.splits[a] for a in where]
        shape = [1 if a < 0 else x.shape[a] for a in where]
        return _moved(x, lambda t: t.reshape(grid), splits, shape)


@register("Transpose")
class Transpose(OpRule):
    unknown_shapes = COPIES
    perm: tuple[int, ...] | None = None
    rounds = False

    def _perm(self, rank: int) -> list[int]:
        if self.perm is None:
            return list(range(rank))[::-1]
        if sorted(self.perm) != list(range(rank)):  # torch takes negative axes; onnxruntime refuses them
            raise InconsistentShapes(f"Transpose: perm {tuple(self.perm)} is not a permutation of 0..{rank - 1}")
        return list(self.perm)

    def concrete(self, ctx: NodeContext, x: Tensor) -> Tensor:
        return x.permute(self._perm(x.dim()))

    def abstract(self, ctx: NodeContext, x: Interval) -> Interval:
        perm = self._perm(len(x.shape))
        return _moved(x, lambda t: t.permute(perm), [x.splits[a] for a in perm], [x.shape[a] for a in perm])


@register("Identity")
class Identity(OpRule):
    unknown_shapes = COPIES
    rounds = False

    def concrete(self, ctx: NodeContext, x: Tensor) -> Tensor:
        return x

    def abstract(self, ctx: NodeContext, x: Interval) -> Interval:
        return x


# ------------------------------------------------------------------------------ joining, splitting
@register("Concat", since=4)
class Concat(OpRule):
    unknown_shapes = COPIES_ALL
    axis: int = 0
    rounds = False

    def concrete(self, ctx: NodeContext, *parts: Tensor) -> Tensor:
        return torch.cat(parts, dim=_axis(self.axis, parts[0].dim()))

    def abstract(self, ctx: NodeContext, *parts: Interval) -> Interval:
        rank = len(parts[0].shape)
        axis = _axis(self.axis, rank)
        common = list(parts[0].splits)
        for part in parts[1:]:
            common = [blocks.union(c, s) for c, s in zip(common, part.splits)]
        lows, highs, along, offset = [], [], [], 0
        for part in parts:
            lo, hi = part.lower, part.upper
            for a in range(rank):
                if a != axis:
                    lo = blocks.regrid(lo, a, part.splits[a], common[a])
                    hi = blocks.regrid(hi, a, part.splits[a], common[a])
            lows.append(lo), highs.append(hi)
            along += [s + offset for s in part.splits[axis]]
            offset += part.shape[axis]
        common[axis] = tuple(along)
        shape = list(parts[0].shape)
        shape[axis] = offset
        return _rebuild(parts[0], torch.cat(lows, axis), torch.cat(highs, axis), common, shape)


@register("Split")
class Split(OpRule):
    """Split along ``axis``: sizes from the ``split`` input (opset 13+) or attribute, else equal parts
    (``num_outputs`` from opset 18: chunks of ceil(n / num_outputs), the last one smaller)."""
    unknown_shapes = COPIES

    axis: int = 0
    split: tuple[int, ...] | None = None
    num_outputs: int | None = None
    rounds = False

    def _sizes(self, ctx: NodeContext, length: int, given: list[int] | None) -> list[int]:
        if given:
            return given
        if self.split:
            return list(self.split)
        if self.num_outputs:
            chunk = -(-length // self.num_outputs)
            return [max(min(chunk, length - k * chunk), 0) for k in range(self.num_outputs)]
        count = len(ctx.node.outputs)
        if length % count:
            raise UnsupportedOperator(f"Split: axis of length {length} does not split into {count} equal parts")
        return [length // count] * count

    def concrete(self, ctx: NodeContext, x: Tensor, split: Tensor | None = None) -> tuple[Tensor, ...]:
        axis = _axis(self.axis, x.dim())
        return tuple(torch.split(x, self._sizes(ctx, x.shape[axis], exact_ints(split, "split", "Split")), dim=axis))

    def abstract(self, ctx: NodeContext, x: Interval, split: Interval | None = None) -> tuple[Interval, ...]:
        if split is not None and not split.is_exact:
            # sizes computed from data (the tokens a mixture-of-experts layer routes to each expert): every
            # output holds some of x's elements, in a shape known only at run time
            return tuple(Interval.create(x.lower.amin(), x.upper.amax(), (), None, x.elem_type)
                         for _ in ctx.node.outputs)
        axis = _axis(self.axis, len(x.shape))
        sizes = self._sizes(ctx, x.shape[axis], exact_ints(split, "split", "Split"))
        offsets = [sum(sizes[:k]) for k in range(len(sizes))]
        return tuple(_select(x, axis, torch.arange(o, o + n)) for o, n in zip(offsets, sizes))


def _slice_indices(shape: Sequence[int], starts: list[int], ends: list[int], axes: list[int] | None,
                   steps: list[int] | None) -> list[tuple[int, Tensor]]:
    """Per sliced axis, the selected indices (ONNX clamping; INT64_MAX/MIN ends work)."""
    axes = axes if axes is not None else list(range(len(starts)))
    steps = steps if steps is not None else [1] * len(starts)
    plan = []
    for start, end, axis, step in zip(starts, ends, axes, steps):
        axis, dim = _axis(axis, len(shape)), shape[_axis(axis, len(shape))]
        if step == 0:
            raise UnsupportedOperator("Slice: step 0 is invalid")
        start, end = start + dim if start < 0 else start, end + dim if end < 0 else end
        if step > 0:
            start, end = min(max(start, 0), dim), min(max(end, 0), dim)
        else:
            start, end = min(max(start, 0), dim - 1), min(max(end, -1), dim - 1)
        # a start past the end for the step's direction selects nothing (torch.arange refuses it)
        empty = start >= end if step > 0 else start <= end
        plan.append((axis, torch.zeros(0, dtype=torch.long) if empty else torch.arange(start, end, step,
                                                                                      dtype=torch.long)))
    return plan


@register("Slice", since=10)
class Slice(OpRule):
    unknown_shapes = COPIES
    rounds = False

    def _plan(self, shape: Sequence[int], *operands) -> list[tuple[int, Tensor]]:
        names = ("starts", "ends", "axes", "steps")
        return _slice_indices(shape, *(exact_ints(v, n, "Slice") for v, n in zip(operands, names)))

    def concrete(self, ctx: NodeContext, data: Tensor, starts: Tensor, ends: Tensor, axes: Tensor | None = None,
                 steps: Tensor | None = None) -> Tensor:
        for axis, index in self._plan(tuple(data.shape), starts, ends, axes, steps):
            data = data.index_select(axis, index)
        return data

    def abstract(self, ctx: NodeContext, data: Interval, starts: Interval, ends: Interval,
                 axes: Interval | None = None, steps: Interval | None = None) -> Interval:
        for axis, index in self._plan(data.shape, starts, ends, axes, steps):
            data = _select(data, axis, index)
        return data


@register("Expand")
class Expand(OpRule):
    unknown_shapes = COPIES
    rounds = False

    def concrete(self, ctx: NodeContext, x: Tensor, shape: Tensor) -> Tensor:
        target = _broadcast(tuple(x.shape), exact_ints(shape, "shape", "Expand"))
        return x.expand(target).clone()

    def abstract(self, ctx: NodeContext, x: Interval, shape: Interval) -> Interval:
        if shape.is_exact:
            target = _broadcast(x.shape, exact_ints(shape, "shape", "Expand"))
        else:
            target = inferred_shape(ctx, "Expand", "shape")
            if _broadcast(x.shape, target) != target:
                raise UnsupportedOperator(f"Expand: inferred shape {target} does not fit input shape {x.shape}")
        return x.broadcast_to(target)


@register("Tile", since=6)
class Tile(OpRule):
    unknown_shapes = COPIES
    rounds = False

    def concrete(self, ctx: NodeContext, x: Tensor, repeats: Tensor) -> Tensor:
        return x.repeat(exact_ints(repeats, "repeats", "Tile")) if x.dim() else x.clone()

    def abstract(self, ctx: NodeContext, x: Interval, repeats: Interval) -> Interval:
        for axis, count in enumerate(exact_ints(repeats, "repeats", "Tile")):
            if count != 1:
                n = x.shape[axis]
                x = _select(x, axis, torch.arange(n * count) % max(n, 1))
        return x
