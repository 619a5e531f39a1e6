"""Shape manipulation: operators that move, copy, select, create or convert values.

Movement rules (Reshape, Flatten, Squeeze, Unsqueeze, Transpose, Identity, Concat, Split, Slice,
Expand, Tile) and Shape, Size, Constant, ConstantOfShape are exact: ``rounds = False``. Only Cast to
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
from collections.abc import Sequence

import torch
from onnx import TensorProto
from torch import Tensor

from ranum.domain import arith, blocks
from ranum.domain.dtypes import bound_dtype, elem_type_of, float_facts, is_bool, is_float, torch_dtype
from ranum.domain.interval import Interval
from ranum.errors import UnsupportedOperator
from ranum.ops._base import NodeContext, OpRule, structural
from ranum.ops.hazards import Overflow, equal_to
from ranum.ops.registry import register

__all__ = [
    "Cast", "CastLike", "Concat", "Constant", "ConstantOfShape", "Dropout", "Expand", "Flatten", "Identity",
    "Range", "Reshape", "Shape", "Size", "Slice", "Split", "Squeeze", "Tile", "Transpose", "Unsqueeze",
]

INT64 = TensorProto.INT64


# ------------------------------------------------------------------------------------ helpers
def _ints(value: Interval | Tensor | None, what: str, op: str) -> list[int] | None:
    """An exact integer operand as a list (None when absent); rejects a non-exact interval."""
    if value is None:
        return None
    if isinstance(value, Interval):
        if not value.is_exact:
            raise UnsupportedOperator(f"{op}: operand '{what}' must be a constant, got a range")
        value = value.exact_value()
    return [int(v) for v in value.reshape(-1).tolist()]


def _inferred_shape(ctx: NodeContext, op: str, what: str) -> tuple[int, ...]:
    """The output shape from shape inference, when an operand that decides it is not exact."""
    shape = ctx.output_shapes[0] if ctx.output_shapes else None
    if shape is None:
        raise UnsupportedOperator(f"{op}: '{what}' is not constant and shape inference gives no output shape")
    return tuple(shape)


def _axis(axis: int, rank: int) -> int:
    if not -rank <= axis < max(rank, 1):
        raise UnsupportedOperator(f"axis {axis} out of range for rank {rank}")
    return axis % rank if rank else 0


def _broadcast(first: Sequence[int], second: Sequence[int]) -> tuple[int, ...]:
    """Numpy broadcast of two shapes (without torch.broadcast_shapes, whose first call imports sympy)."""
    rank = max(len(first), len(second))
    a, b = (1,) * (rank - len(first)) + tuple(first), (1,) * (rank - len(second)) + tuple(second)
    if any(m != n and 1 not in (m, n) for m, n in zip(a, b)):
        raise UnsupportedOperator(f"shapes {tuple(first)} and {tuple(second)} do not broadcast")
    return tuple(n if m == 1 else m for m, n in zip(a, b))


def _rebuild(x: Interval, lower: Tensor, upper: Tensor, splits: Sequence[tuple[int, ...]],
             shape: Sequence[int]) -> Interval:
    return Interval.create(lower, upper, tuple(splits), tuple(shape), x.elem_type)


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
    return _rebuild(x, x.lower.reshape(grid), x.upper.reshape(grid), splits, new)


# ------------------------------------------------------------------------------ shape queries
@register("Shape")
class Shape(OpRule):
    """The input's shape (``start``/``end`` from opset 15) as an exact int64 vector."""

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


@register("Reshape")
class Reshape(OpRule):
    allowzero: int = 0
    rounds = False

    def concrete(self, ctx: NodeContext, data: Tensor, shape: Tensor) -> Tensor:
        return data.reshape(_reshape_target(tuple(data.shape), _ints(shape, "shape", "Reshape"), self.allowzero))

    def abstract(self, ctx: NodeContext, data: Interval, shape: Interval) -> Interval:
        if shape.is_exact:
            target = _reshape_target(data.shape, _ints(shape, "shape", "Reshape"), self.allowzero)
        else:
            target = _inferred_shape(ctx, "Reshape", "shape")
            if math.prod(target) != math.prod(data.shape):
                raise UnsupportedOperator(f"Reshape: inferred shape {target} does not fit input shape {data.shape}")
        return _reshaped(data, target, ctx.budget)


@register("Flatten")
class Flatten(OpRule):
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

    axes: tuple[int, ...] | None = None
    rounds = False

    def _dims(self, shape: Sequence[int], axes: list[int] | None) -> list[int]:
        axes = axes if axes is not None else (list(self.axes) if self.axes is not None else None)
        if axes is None:
            return [a for a, n in enumerate(shape) if n == 1]
        dims = sorted({_axis(a, len(shape)) for a in axes})
        if any(shape[a] != 1 for a in dims):
            raise UnsupportedOperator(f"Squeeze: axes {axes} of shape {tuple(shape)} are not all of size 1")
        return dims

    def concrete(self, ctx: NodeContext, x: Tensor, axes: Tensor | None = None) -> Tensor:
        dims = self._dims(tuple(x.shape), _ints(axes, "axes", "Squeeze"))
        return x.reshape([n for a, n in enumerate(x.shape) if a not in dims])

    def abstract(self, ctx: NodeContext, x: Interval, axes: Interval | None = None) -> Interval:
        dims = self._dims(x.shape, _ints(axes, "axes", "Squeeze"))
        keep = [a for a in range(len(x.shape)) if a not in dims]
        grid = [x.lower.shape[a] for a in keep]
        return _rebuild(x, x.lower.reshape(grid), x.upper.reshape(grid), [x.splits[a] for a in keep],
                        [x.shape[a] for a in keep])


@register("Unsqueeze")
class Unsqueeze(OpRule):
    """Inserts size-1 axes (``axes`` attribute before opset 13, input from 13)."""

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
        where = self._sources(tuple(x.shape), _ints(axes, "axes", "Unsqueeze"))
        return x.reshape([1 if a < 0 else x.shape[a] for a in where])

    def abstract(self, ctx: NodeContext, x: Interval, axes: Interval | None = None) -> Interval:
        where = self._sources(x.shape, _ints(axes, "axes", "Unsqueeze"))
        grid = [1 if a < 0 else x.lower.shape[a] for a in where]
        splits = [(0,) if a < 0 else x.splits[a] for a in where]
        shape = [1 if a < 0 else x.shape[a] for a in where]
        return _rebuild(x, x.lower.reshape(grid), x.upper.reshape(grid), splits, shape)


@register("Transpose")
class Transpose(OpRule):
    perm: tuple[int, ...] | None = None
    rounds = False

    def _perm(self, rank: int) -> list[int]:
        return list(self.perm) if self.perm is not None else list(range(rank))[::-1]

    def concrete(self, ctx: NodeContext, x: Tensor) -> Tensor:
        return x.permute(self._perm(x.dim()))

    def abstract(self, ctx: NodeContext, x: Interval) -> Interval:
        perm = self._perm(len(x.shape))
        return _rebuild(x, x.lower.permute(perm), x.upper.permute(perm), [x.splits[a] for a in perm],
                        [x.shape[a] for a in perm])


@register("Identity")
class Identity(OpRule):
    rounds = False

    def concrete(self, ctx: NodeContext, x: Tensor) -> Tensor:
        return x

    def abstract(self, ctx: NodeContext, x: Interval) -> Interval:
        return x


# ------------------------------------------------------------------------------ joining, splitting
@register("Concat")
class Concat(OpRule):
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
        return tuple(torch.split(x, self._sizes(ctx, x.shape[axis], _ints(split, "split", "Split")), dim=axis))

    def abstract(self, ctx: NodeContext, x: Interval, split: Interval | None = None) -> tuple[Interval, ...]:
        axis = _axis(self.axis, len(x.shape))
        sizes = self._sizes(ctx, x.shape[axis], _ints(split, "split", "Split"))
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
        plan.append((axis, torch.arange(start, end, step, dtype=torch.long)))
    return plan


@register("Slice")
class Slice(OpRule):
    rounds = False

    def _plan(self, shape: Sequence[int], *operands) -> list[tuple[int, Tensor]]:
        names = ("starts", "ends", "axes", "steps")
        return _slice_indices(shape, *(_ints(v, n, "Slice") for v, n in zip(operands, names)))

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
    rounds = False

    def concrete(self, ctx: NodeContext, x: Tensor, shape: Tensor) -> Tensor:
        target = _broadcast(tuple(x.shape), _ints(shape, "shape", "Expand"))
        return x.expand(target).clone()

    def abstract(self, ctx: NodeContext, x: Interval, shape: Interval) -> Interval:
        if shape.is_exact:
            target = _broadcast(x.shape, _ints(shape, "shape", "Expand"))
        else:
            target = _inferred_shape(ctx, "Expand", "shape")
            if _broadcast(x.shape, target) != target:
                raise UnsupportedOperator(f"Expand: inferred shape {target} does not fit input shape {x.shape}")
        return x.broadcast_to(target)


@register("Tile")
class Tile(OpRule):
    rounds = False

    def concrete(self, ctx: NodeContext, x: Tensor, repeats: Tensor) -> Tensor:
        return x.repeat(_ints(repeats, "repeats", "Tile")) if x.dim() else x.clone()

    def abstract(self, ctx: NodeContext, x: Interval, repeats: Interval) -> Interval:
        for axis, count in enumerate(_ints(repeats, "repeats", "Tile")):
            if count != 1:
                n = x.shape[axis]
                x = _select(x, axis, torch.arange(n * count) % max(n, 1))
        return x


# ------------------------------------------------------------------------------ constants, ranges
@register("Constant")
class Constant(OpRule):
    """An exact constant from ``value``, ``value_float(s)`` or ``value_int(s)``."""

    value: Tensor | None = None
    value_float: float | None = None
    value_floats: tuple[float, ...] | None = None
    value_int: int | None = None
    value_ints: tuple[int, ...] | None = None
    value_string: str | None = None
    value_strings: tuple[str, ...] | None = None
    sparse_value: object = None
    rounds = False

    def __post_init__(self) -> None:
        if self.value is None and all(v is None for v in (self.value_float, self.value_floats, self.value_int,
                                                          self.value_ints)):
            raise UnsupportedOperator("Constant: only value, value_float(s) and value_int(s) are supported")

    def concrete(self, ctx: NodeContext) -> Tensor:
        if self.value is not None:
            return self.value
        if self.value_float is not None or self.value_floats is not None:
            chosen = self.value_float if self.value_float is not None else list(self.value_floats)
            return torch.tensor(chosen, dtype=torch.float32)
        return torch.tensor(self.value_int if self.value_int is not None else list(self.value_ints),
                            dtype=torch.int64)

    def abstract(self, ctx: NodeContext) -> Interval:
        value = self.concrete(ctx)
        return Interval.point(value, elem_type_of(value.dtype))


@register("ConstantOfShape")
class ConstantOfShape(OpRule):
    """A tensor of the given shape filled with ``value`` (default float32 0): exact."""

    value: Tensor | None = None
    rounds = False

    def _fill(self) -> Tensor:
        return self.value.reshape(()) if self.value is not None else torch.tensor(0.0, dtype=torch.float32)

    def concrete(self, ctx: NodeContext, shape: Tensor) -> Tensor:
        return self._fill().expand(_ints(shape, "shape", "ConstantOfShape")).clone()

    def abstract(self, ctx: NodeContext, shape: Interval) -> Interval:
        dims = _ints(shape, "shape", "ConstantOfShape") if shape.is_exact else \
            _inferred_shape(ctx, "ConstantOfShape", "shape")
        if shape.shape != (len(dims),):
            raise UnsupportedOperator(f"ConstantOfShape: inferred shape {dims} does not fit shape operand")
        fill = self._fill()
        etype = elem_type_of(fill.dtype)
        bound = fill.to(bound_dtype(etype)).expand([1 if n else 0 for n in dims]).clone()
        return Interval.create(bound, bound, blocks.single_splits(dims), dims, etype)


def _range_count(start: Tensor, limit: Tensor, delta: Tensor) -> int:
    """Element count as onnxruntime computes it: ceil(double(limit - start) / double(delta)), >= 0."""
    return max(math.ceil(float((limit - start).double()) / float(delta.double())), 0)


def _count_bounds(start: Interval, limit: Interval, delta: Interval) -> int | None:
    """The element count when every value in the operand intervals gives the same one, else None."""
    d_lo, d_hi = float(delta.lower.reshape(())), float(delta.upper.reshape(()))
    if d_lo <= 0 <= d_hi:
        return None
    diffs = (float(limit.lower.reshape(()) - start.upper.reshape(())),
             float(limit.upper.reshape(()) - start.lower.reshape(())))
    quotients = [a / b for a in diffs for b in (d_lo, d_hi)]
    slack = 4 * float_facts(start.elem_type).eps if is_float(start.elem_type) else 0.0
    low = max(math.ceil(min(quotients) - abs(min(quotients)) * slack), 0)
    high = max(math.ceil(max(quotients) + abs(max(quotients)) * slack), 0)
    return low if low == high else None


@register("Range")
class Range(OpRule):
    """start, start + delta, ... below limit. onnxruntime accumulates ``delta`` in the element type,
    so float bounds carry a summation error (the rule always runs its abstract semantics). When the
    length is not the same for every value of the operands, the output has an unknown shape."""

    hazards = (equal_to(0.0, "Range with delta 0 is endless (invalid)", name="range-zero-delta", operand=2),)
    rounds = False
    accumulates = True

    def concrete(self, ctx: NodeContext, start: Tensor, limit: Tensor, delta: Tensor) -> Tensor:
        if bool(delta == 0):
            raise UnsupportedOperator("Range: delta is 0 (endless range)")
        steps = torch.arange(_range_count(start, limit, delta), dtype=torch.int64)
        if start.is_floating_point():
            return (start.double() + steps.double() * delta.double()).to(start.dtype)
        return (start + steps * delta).to(start.dtype)

    def abstract(self, ctx: NodeContext, start: Interval, limit: Interval, delta: Interval) -> Interval:
        etype = start.elem_type
        exact = start.is_exact and limit.is_exact and delta.is_exact and bool((delta.lower != 0).all())
        if exact and not is_float(etype):
            return Interval.point(self.concrete(ctx, start.exact_value(), limit.exact_value(),
                                                delta.exact_value()), etype)
        count = _count_bounds(start, limit, delta)
        if exact:
            count = _range_count(start.exact_value(), limit.exact_value(), delta.exact_value())
        if count is None:
            return Interval.top(None, etype)
        i = torch.arange(count, dtype=torch.float64)
        lo = start.lower.reshape(()).to(torch.float64) + i * delta.lower.reshape(()).to(torch.float64)
        hi = start.upper.reshape(()).to(torch.float64) + i * delta.upper.reshape(()).to(torch.float64)
        if is_float(etype):  # element i is a sum of i + 1 terms: |error| <= gamma_i * sum |terms| (Higham)
            size = torch.maximum(start.lower.abs(), start.upper.abs()).reshape(())
            step = torch.maximum(delta.lower.abs(), delta.upper.abs()).reshape(())
            unit = i * (float_facts(etype).eps / 2)
            gamma = torch.where(unit < 0.5, unit / (1.0 - unit.clamp(max=0.5)), torch.full_like(unit, torch.inf))
            slack = torch.nan_to_num(gamma * (size + i * step), nan=torch.inf)
            lo, hi = lo - slack, hi + slack
        return Interval.from_full(lo, hi, etype)


# ------------------------------------------------------------------------------ conversions
_INT_RANGE = {
    TensorProto.INT8: (-(2**7), 2**7 - 1), TensorProto.UINT8: (0, 2**8 - 1),
    TensorProto.INT16: (-(2**15), 2**15 - 1), TensorProto.INT32: (-(2**31), 2**31 - 1),
    TensorProto.INT64: (-(2**63), 2**63 - 1),
}
_DIGITS = {TensorProto.FLOAT16: 11, TensorProto.BFLOAT16: 8, TensorProto.FLOAT: 24, TensorProto.DOUBLE: 53}


def _check_target(to: int, op: str) -> None:
    if to not in _INT_RANGE and to not in _DIGITS and not is_bool(to):
        raise UnsupportedOperator(f"{op}: conversion to element type {to} is not supported")


def _lossy(source: int, target: int) -> bool:
    """Whether converting ``source`` values to the float type ``target`` can round."""
    if is_bool(source):
        return False
    if is_float(source):
        return _DIGITS[source] > _DIGITS[target] or float_facts(source).max > float_facts(target).max
    low, high = _INT_RANGE.get(source, (-(2**63), 2**63))
    return max(-low, high) > 2 ** _DIGITS[target]


def _cast(x: Interval, to: int) -> Interval:
    """Sound conversion: floats to ints truncate toward zero (out of range: any value of the type),
    narrowing float conversions round to nearest (one ulp outward, overflow to infinity)."""
    lo, hi = x.lower, x.upper
    if is_bool(to):
        return x.with_bounds(((lo > 0) | (hi < 0)).to(torch.int64), ((lo != 0) | (hi != 0)).to(torch.int64), to)
    if is_float(to):
        out = x.with_bounds(lo.to(torch.float64), hi.to(torch.float64), to)
        return out.widened(1.0) if _lossy(x.elem_type, to) else out
    low, high = _INT_RANGE[to]
    if is_float(x.elem_type):
        lo, hi = torch.trunc(lo), torch.trunc(hi)
        bad = (lo < low) | (hi >= float(high) + 1.0)
    else:
        bad = (lo < low) | (hi > high)
    lower = torch.where(bad, torch.full_like(lo, 0), lo).to(torch.int64)
    upper = torch.where(bad, torch.full_like(hi, 0), hi).to(torch.int64)
    lower = torch.where(bad, torch.full_like(lower, low), lower)
    upper = torch.where(bad, torch.full_like(upper, high), upper)
    return x.with_bounds(lower, upper, to)


@register("Cast")
class Cast(OpRule):
    """Element type conversion; a float narrowing may overflow to infinity."""

    to: int = 0
    saturate: int = 1
    hazards = (Overflow(),)
    rounds = False  # the abstract rule rounds itself, and only when the conversion can round

    def __post_init__(self) -> None:
        _check_target(self.to, "Cast")

    def concrete(self, ctx: NodeContext, x: Tensor) -> Tensor:
        return x.to(torch_dtype(self.to))

    def abstract(self, ctx: NodeContext, x: Interval) -> Interval:
        return _cast(x, self.to)


@register("CastLike")
class CastLike(OpRule):
    """Cast to the element type of the second operand."""

    saturate: int = 1
    hazards = (Overflow(),)
    rounds = False

    def concrete(self, ctx: NodeContext, x: Tensor, like: Tensor) -> Tensor:
        return x.to(like.dtype)

    def abstract(self, ctx: NodeContext, x: Interval, like: Interval) -> Interval:
        _check_target(like.elem_type, "CastLike")
        return _cast(x, like.elem_type)


# ------------------------------------------------------------------------------ dropout
@register("Dropout")
class Dropout(OpRule):
    """Identity at inference; in training mode ``x * mask / (1 - ratio)`` with a random mask.

    ``ratio`` is an attribute before opset 12 and an input from 12 (with ``training_mode``)."""

    ratio: float = 0.5
    seed: int | None = None
    hazards = (equal_to(1.0, "dropout ratio 1 divides by zero in training mode (onnxruntime rejects it)",
                        name="division-by-zero", operand=1),)
    rounds = False
    deterministic = False  # the training-mode mask is random: never take the concrete fast path

    def concrete(self, ctx: NodeContext, data: Tensor, ratio: Tensor | None = None,
                 training_mode: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if training_mode is None or not bool(training_mode):
            return data, torch.ones(data.shape, dtype=torch.bool)
        rate = float(ratio) if ratio is not None else 0.5
        mask = torch.rand(data.shape) >= rate
        return data * mask / (1.0 - rate), mask

    def abstract(self, ctx: NodeContext, data: Interval, ratio: Interval | None = None,
                 training_mode: Interval | None = None) -> tuple[Interval, Interval]:
        ones = Interval.uniform(1, 1, data.shape, TensorProto.BOOL)
        if training_mode is None or not bool((training_mode.upper > 0).any()):
            return data, ones
        r_lo = ratio.lower.min() if ratio is not None else torch.tensor(0.5, dtype=torch.float64)
        r_hi = ratio.upper.max() if ratio is not None else torch.tensor(0.5, dtype=torch.float64)
        finite = r_hi < 1  # the scale 1 / (1 - ratio) grows with ratio below 1
        s_lo = torch.where(finite, 1.0 / torch.where(finite, 1.0 - r_lo, 1.0), torch.full_like(r_lo, -torch.inf))
        s_hi = torch.where(finite, 1.0 / torch.where(finite, 1.0 - r_hi, 1.0), torch.full_like(r_hi, torch.inf))
        lo, hi = arith.mul(data.lower, data.upper, s_lo, s_hi)
        lo, hi = torch.minimum(torch.minimum(lo, data.lower), torch.zeros_like(lo)), \
            torch.maximum(torch.maximum(hi, data.upper), torch.zeros_like(hi))
        mask = Interval.uniform(0, 1, data.shape, TensorProto.BOOL)
        return data.with_bounds(lo, hi).widened(4.0), mask
