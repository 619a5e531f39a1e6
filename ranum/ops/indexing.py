"""Indexing, gathering, scattering and padding: operators that move values around (Resize: resize.py).

Invariants: exact index operands gather exactly (each output block takes the bounds of the one
block it reads); an index *interval* gives, per output element, the hull of the data over every
position the interval allows along that axis (negative indices wrap; out-of-range ones are a
runtime error, so only valid positions count). Range hulls (:mod:`ranum.ops._range_hull`) are taken
on the data's block grid, so a one-block tensor (an embedding matrix with one range) is never
materialised. Data-moving rules do not round; Scatter add/mul and Resize
linear/cubic do, and Resize bounds cubic overshoot by the kernel's negative weight mass.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from onnx import TensorProto
from torch import Tensor

from ranum.domain import arith
from ranum.domain.dtypes import float_facts, is_float
from ranum.domain.interval import Interval
from ranum.errors import UnsupportedOperator
from ranum.ops._base import COPIES, COUNTS, HULLS, NodeContext, OpRule, full_shape, structural
from ranum.ops._counts import most_elements
from ranum.ops._guard_relations import implied_sides, met_with
from ranum.ops._range_hull import block_of, hull_blocks, index_ranges, range_reduce, select_pick
from ranum.ops._same_values import passed_through
from ranum.ops._segment_relations import segment_softmax_floor
from ranum.ops.hazards import Overflow
from ranum.ops.registry import register

__all__ = ["Compress", "Gather", "GatherElements", "GatherND", "NonZero", "OneHot", "Pad", "ScatterElements",
           "ScatterND", "Trilu"]

F32_EPS = float(torch.finfo(torch.float32).eps)


# ------------------------------------------------------------------------------ shared helpers
def exact_operand(iv: Interval | None, what: str) -> Tensor | None:
    """The concrete value of an operand that must be exact (None when absent or empty)."""
    if iv is None or (iv.shape is not None and math.prod(iv.shape) == 0):
        return None
    if not iv.is_exact:
        raise UnsupportedOperator(f"{what} must be a constant (exact) tensor")
    return iv.exact_value()


def _wrap(index: Tensor, n: int) -> Tensor:
    return torch.where(index < 0, index + n, index)


def _round_out(lo: Tensor, hi: Tensor, elem_type: int) -> tuple[Tensor, Tensor]:
    """One rounding of a float result, outward, saturating past the largest finite value. Rounding keeps a
    result's sign (it is monotone and 0 is a float): a bound at 0 or beyond stays there."""
    if not is_float(elem_type):
        return lo, hi
    facts = float_facts(elem_type)
    lo = torch.where(lo >= 0, (lo - lo.abs() * facts.eps - facts.subnormal).clamp(min=0.0),
                     lo - lo.abs() * facts.eps - facts.subnormal)
    hi = torch.where(hi <= 0, (hi + hi.abs() * facts.eps + facts.subnormal).clamp(max=0.0),
                     hi + hi.abs() * facts.eps + facts.subnormal)
    lo = torch.where(lo < -facts.max, torch.full_like(lo, -torch.inf), lo)
    return lo, torch.where(hi > facts.max, torch.full_like(hi, torch.inf), hi)


# ------------------------------------------------------------------------------ gathering
@register("Gather")
class Gather(OpRule):
    """out = data[..., indices, ...] along ``axis``; block-wise, exact for exact indices."""
    unknown_shapes = HULLS

    axis: int = 0
    rounds = False

    def without_shapes(self, ctx: NodeContext, data: Interval, indices: Interval) -> Interval | None:
        """Elements of data, of a shape known only at run time: its hull (a graph network's softmax denominator
        at least about 1, see :meth:`abstract`)."""
        hull = data.hull()
        if hull is None:
            return None
        out = Interval.create(hull.lower, hull.upper, (), None, hull.elem_type)
        return out if ctx.graph is None else segment_softmax_floor(ctx.graph, ctx.node, out)

    def concrete(self, ctx: NodeContext, data: Tensor, indices: Tensor) -> Tensor:
        axis = self.axis % data.dim()
        index = _wrap(indices.long(), data.shape[axis])
        return select_pick(axis)(data, index)

    def abstract(self, ctx: NodeContext, data: Interval, indices: Interval) -> Interval:
        axis = self.axis % data.rank
        ranges = index_ranges(indices.lower, indices.upper, data.shape[axis])
        # min and max are exact in any dtype: reduce the stored bounds (an exact embedding stays float32)
        lo, hi = hull_blocks(data.stored_lower, data.stored_upper, data.splits[axis], axis, ranges)
        splits = data.splits[:axis] + indices.splits + data.splits[axis + 1:]
        shape = data.shape[:axis] + indices.shape + data.shape[axis + 1:]
        out = Interval.create(lo, hi, splits, shape, data.elem_type, ctx.budget)
        # a graph network's softmax denominator is at least about 1
        return out if ctx.graph is None else segment_softmax_floor(ctx.graph, ctx.node, out)


@register("GatherElements")
class GatherElements(OpRule):
    """out[i][j] = data[indices[i][j]][j] (axis 0); hull over the index range when inexact."""
    unknown_shapes = COPIES

    axis: int = 0
    rounds = False

    def concrete(self, ctx: NodeContext, data: Tensor, indices: Tensor) -> Tensor:
        axis = self.axis % data.dim()
        return torch.gather(data, axis, _wrap(indices.long(), data.shape[axis]))

    def abstract(self, ctx: NodeContext, data: Interval, indices: Interval) -> Interval:
        axis = self.axis % data.rank
        lo, hi = data.full()
        index_lo, index_hi = indices.full()
        ranges = index_ranges(index_lo, index_hi, data.shape[axis])

        def pick(table: Tensor, index: Tensor) -> Tensor:
            return torch.gather(table, axis, index)

        return Interval.from_full(range_reduce(lo, axis, ranges, torch.minimum, pick),
                                  range_reduce(hi, axis, ranges, torch.maximum, pick), data.elem_type, ctx.budget)


def _nd_rows(shape: Sequence[int], indices: Tensor, batch_dims: int) -> tuple[Tensor, int]:
    """Linear row ids (batch-major) that index tuples address in a data tensor of ``shape``."""
    k = indices.shape[-1]
    dims = torch.tensor(list(shape[batch_dims:batch_dims + k]), dtype=torch.long)
    index = torch.where(indices < 0, indices + dims, indices.long())
    strides = torch.ones(k, dtype=torch.long)
    for d in range(k - 2, -1, -1):
        strides[d] = strides[d + 1] * dims[d + 1]
    rows_per_batch = int(math.prod(shape[batch_dims:batch_dims + k]))
    batches = int(math.prod(shape[:batch_dims]))
    local = (index * strides).sum(-1).reshape(batches, -1)
    rows = local + torch.arange(batches).unsqueeze(1) * rows_per_batch
    return rows.reshape(-1), rows_per_batch * batches


@register("GatherND")
class GatherND(OpRule):
    """Gathers slices addressed by index tuples (last axis of ``indices``) after ``batch_dims``. The elements a
    boolean mask selects, ``x[mask]`` (``GatherND(x, Transpose(NonZero(mask)))``), keep what the mask says
    of them (``x[x > eps]`` is above eps: see :func:`ranum.ops._guard_relations.implied_sides`)."""
    unknown_shapes = HULLS

    batch_dims: int = 0
    rounds = False

    def concrete(self, ctx: NodeContext, data: Tensor, indices: Tensor) -> Tensor:
        rows, count = _nd_rows(data.shape, indices.long(), self.batch_dims)
        k = indices.shape[-1]
        flat = data.reshape((count,) + tuple(data.shape[self.batch_dims + k:]))
        return flat.index_select(0, rows).reshape(tuple(indices.shape[:-1]) + tuple(flat.shape[1:]))

    def abstract(self, ctx: NodeContext, data: Interval, indices: Interval) -> Interval:
        if indices.is_exact:
            index = indices.exact_value()
            return structural(lambda t: self.concrete(ctx, t, index), data, ctx.budget)
        k = indices.shape[-1]
        shape = tuple(indices.shape[:-1]) + tuple(data.shape[self.batch_dims + k:])
        if data.numblocks == 0:
            return Interval.top(shape, data.elem_type)
        return self._masked(ctx, Interval.uniform(data.lower.amin(), data.upper.amax(), shape, data.elem_type))

    def without_shapes(self, ctx: NodeContext, data: Interval, indices: Interval) -> Interval | None:
        """Indices computed from data (NonZero), or data of a length known only at run time: the data's hull
        (in the output's shape where shape inference gives it), and what a mask says of what it selects."""
        hull = data.hull()
        if hull is None:
            return None
        shape = ctx.output_shapes[0] if ctx.output_shapes else None
        if full_shape(shape):  # from shape inference
            return self._masked(ctx, Interval.uniform(hull.lower, hull.upper, shape, hull.elem_type))
        return self._masked(ctx, Interval.create(hull.lower, hull.upper, (), None, hull.elem_type))

    def _masked(self, ctx: NodeContext, out: Interval) -> Interval:
        """``out`` met with what the mask says of the elements it selects, where the indices are
        ``Transpose(NonZero(mask))`` of a mask of the data's shape."""
        graph = ctx.graph
        if graph is None or self.batch_dims != 0 or len(ctx.node.inputs) != 2:
            return out
        data_name, indices_name = ctx.node.inputs
        transpose = graph.producer(passed_through(graph, indices_name))
        if transpose is None or transpose.op_type != "Transpose" or list(transpose.attributes.get("perm", [1, 0])) \
                != [1, 0]:
            return out
        nonzero = graph.producer(passed_through(graph, transpose.inputs[0]))
        if nonzero is None or nonzero.op_type != "NonZero" or nonzero.domain not in ("", "ai.onnx"):
            return out
        mask, data = graph.interval(nonzero.inputs[0]), graph.interval(data_name)
        if mask is None or data is None or mask.shape is None or mask.shape != data.shape:
            return out
        return met_with(out, implied_sides(graph, nonzero.inputs[0], data_name, True))


# ------------------------------------------------------------------------------ scattering
def _scatter_concrete(data: Tensor, rows: Tensor, updates: Tensor, reduction: str) -> Tensor:
    """Scatter rows of ``updates`` (M, R) into rows ``rows`` of ``data`` (N, R)."""
    if reduction == "none":
        out = data.clone()
        out[rows] = updates
        return out
    if reduction == "add":
        return data.index_add(0, rows, updates)
    mode = {"mul": "prod", "max": "amax", "min": "amin"}[reduction]
    return data.scatter_reduce(0, rows.unsqueeze(1).expand_as(updates), updates, mode, include_self=True)


def _occurrence_rounds(rows: Tensor) -> list[Tensor]:
    """Partition update positions into rounds in which every target row occurs at most once."""
    order = torch.argsort(rows, stable=True)
    ordered = rows[order]
    rank = torch.arange(rows.numel()) - torch.searchsorted(ordered, ordered)
    count = int(rank.max()) + 1 if rank.numel() else 0
    return [order[rank == r] for r in range(count)]


def _combine(reduction: str, first: bool, cur: tuple[Tensor, Tensor], upd: tuple[Tensor, Tensor],
             elem_type: int) -> tuple[Tensor, Tensor]:
    (cl, ch), (ul, uh) = cur, upd
    if reduction == "none":  # duplicates: onnxruntime keeps one of them; take their hull
        return (ul, uh) if first else (torch.minimum(cl, ul), torch.maximum(ch, uh))
    if reduction == "max":
        return torch.maximum(cl, ul), torch.maximum(ch, uh)
    if reduction == "min":
        return torch.minimum(cl, ul), torch.minimum(ch, uh)
    as64 = [t.to(torch.float64) for t in (cl, ch, ul, uh)]
    bounds = arith.add(*as64) if reduction == "add" else arith.mul(*as64)
    return _round_out(*bounds, elem_type)


def _scatter_abstract(data: Interval, rows: Tensor, updates: Interval, width: int, reduction: str,
                      budget: int) -> Interval:
    """Scatter with exact target rows; data and updates flattened to rows of ``width`` elements."""
    lo, hi = (t.reshape(-1, width) for t in data.full())
    ulo, uhi = (t.reshape(-1, width).to(lo.dtype) for t in updates.full())
    for number, chosen in enumerate(_occurrence_rounds(rows)):
        target = rows[chosen]
        cur = (lo.index_select(0, target), hi.index_select(0, target))
        new_lo, new_hi = _combine(reduction, number == 0, cur, (ulo[chosen], uhi[chosen]), data.elem_type)
        lo = lo.index_copy(0, target, new_lo.to(lo.dtype))
        hi = hi.index_copy(0, target, new_hi.to(hi.dtype))
    return Interval.from_full(lo.reshape(data.shape), hi.reshape(data.shape), data.elem_type, budget)


def _scatter_inexact(data: Interval, updates: Interval, reduction: str, reach: int) -> Interval:
    """Index intervals: every element keeps its value or takes one of the updates (none/max/min), or
    adds a subset of the at most ``reach`` updates that can land on it (add: each is rounded, like a
    float sum of ``reach + 1`` terms)."""
    if reduction not in ("none", "max", "min", "add") or updates.numblocks == 0:
        raise UnsupportedOperator(f"scatter with reduction '{reduction}' needs exact indices")
    u_lo, u_hi = updates.lower.amin().to(torch.float64), updates.upper.amax().to(torch.float64)
    if reduction == "add":
        lo, hi = data.lower.to(torch.float64), data.upper.to(torch.float64)
        magnitude = torch.maximum(lo.abs(), hi.abs()) + reach * torch.maximum(u_lo.abs(), u_hi.abs())
        nonneg_terms = (lo >= 0) & (u_lo >= 0)  # a float sum of them is >= 0 too
        lo = lo + reach * u_lo.clamp(max=0.0)
        hi = hi + reach * u_hi.clamp(min=0.0)
        return data.with_bounds(*arith.with_accumulation_error(lo, hi, magnitude, reach + 1, data.elem_type,
                                                               nonneg_terms))
    lo = torch.minimum(data.lower, u_lo.to(data.lower.dtype))
    hi = torch.maximum(data.upper, u_hi.to(data.upper.dtype))
    return data.with_bounds(lo, hi)


class _Scatter(OpRule):
    """Shared parts of ScatterElements and ScatterND (reduction as a dataclass field)."""

    hazards = (Overflow(),)
    reduction: str = "none"

    rounds = False  # abstract() rounds the updated elements only, once per update

    @property
    def accumulates(self) -> bool:  # type: ignore[override]
        # exact operands too go through abstract(), which rounds every duplicate's update
        return self.reduction in ("add", "mul")

    def __post_init__(self) -> None:
        if self.reduction not in ("none", "add", "mul", "max", "min"):
            raise UnsupportedOperator(f"{self.op_type}: unknown reduction '{self.reduction}'")


@register("ScatterElements")
class ScatterElements(_Scatter):
    """data[indices[i][j]][j] (op)= updates[i][j] along ``axis`` (axis 0 shown)."""

    axis: int = 0
    reduction: str = "none"
    unknown_shapes = HULLS

    def _rows(self, shape: Sequence[int], indices: Tensor) -> Tensor:
        axis = self.axis % len(shape)
        coords = list(torch.meshgrid(*[torch.arange(n) for n in indices.shape], indexing="ij"))
        coords[axis] = _wrap(indices.long(), shape[axis])
        rows = torch.zeros(indices.shape, dtype=torch.long)
        for coord, n in zip(coords, shape):
            rows = rows * n + coord
        return rows.reshape(-1)

    def concrete(self, ctx: NodeContext, data: Tensor, indices: Tensor, updates: Tensor) -> Tensor:
        rows = self._rows(data.shape, indices)
        out = _scatter_concrete(data.reshape(-1, 1), rows, updates.reshape(-1, 1), self.reduction)
        return out.reshape(data.shape)

    def without_shapes(self, ctx: NodeContext, data: Interval, indices: Interval, updates: Interval
                       ) -> Interval | None:
        """Where the updates' (or the indices', the same) shape is known, an element takes at most its length
        along ``axis`` of them; otherwise any number (a graph network's sum over a list of edges that
        NonZero filtered)."""
        known = next((shape for shape in (updates.shape, indices.shape, *ctx.input_shapes[1:3])
                      if shape is not None), None)
        if known is not None and updates.numblocks and self.reduction != "mul":
            return _scatter_inexact(data, updates, self.reduction, known[self.axis % len(known)])
        most = most_elements(ctx.graph, ctx.node.inputs[2]) if ctx.graph is not None else None
        if most is not None and updates.numblocks and self.reduction != "mul":
            return _scatter_inexact(data, updates, self.reduction, most)  # at most all of them on one element
        return _scattered_hull(data, updates, self.reduction)

    def abstract(self, ctx: NodeContext, data: Interval, indices: Interval, updates: Interval) -> Interval:
        if not indices.is_exact:  # an element can take the updates that share its other coordinates
            return _scatter_inexact(data, updates, self.reduction, updates.shape[self.axis % len(updates.shape)])
        rows = self._rows(data.shape, indices.exact_value())
        return _scatter_abstract(data, rows, updates, 1, self.reduction, ctx.budget)


def _scattered_hull(data: Interval, updates: Interval, reduction: str) -> Interval | None:
    """A scatter whose updates (or indices, or data) have a shape known only at run time (the rows a
    mixture-of-experts layer writes back): without a reduction, or with min or max, each element is its
    data value or one of the updates, so it lies in data's bounds joined with the updates' hull; adding
    any number of updates never takes an element below its data value where they are all >= 0 (rounding
    is monotone), nor above it where they are all <= 0."""
    hull = updates.hull()
    if hull is None:
        return data
    if reduction == "add":  # any number of them: a float sum only moves the way its terms' signs allow
        if bool(hull.lower.lt(0).any() and hull.upper.gt(0).any()):
            return None  # either way, without limit: nothing is known
        lo = torch.where(hull.lower >= 0, data.lower.to(torch.float64), -torch.inf)
        hi = torch.where(hull.upper <= 0, data.upper.to(torch.float64), torch.inf)
        return data.with_bounds(lo, hi)
    if reduction not in ("none", "min", "max"):
        return None  # a product of any number of updates
    return data.join(hull if data.shape is None else hull.broadcast_to(data.shape))


@register("ScatterND")
class ScatterND(_Scatter):
    """data[indices[..., :]] (op)= updates[...]: index tuples address slices of ``data``."""

    reduction: str = "none"
    unknown_shapes = HULLS

    def without_shapes(self, ctx: NodeContext, data: Interval, indices: Interval, updates: Interval
                       ) -> Interval | None:
        """As ScatterElements; where data's and the indices' shapes are known (a mixture-of-experts layer adding
        its experts' rows back), an element also adds at most one update per index tuple."""
        if data.shape is not None and indices.shape is not None and updates.numblocks:
            return _scatter_inexact(data, updates, self.reduction, math.prod(indices.shape[:-1]))
        return _scattered_hull(data, updates, self.reduction)

    def concrete(self, ctx: NodeContext, data: Tensor, indices: Tensor, updates: Tensor) -> Tensor:
        rows, count = _nd_rows(data.shape, indices.long(), 0)
        width = data.numel() // max(count, 1)
        out = _scatter_concrete(data.reshape(count, width), rows, updates.reshape(-1, width), self.reduction)
        return out.reshape(data.shape)

    def abstract(self, ctx: NodeContext, data: Interval, indices: Interval, updates: Interval) -> Interval:
        if not indices.is_exact:  # every index tuple can address the same slice
            return _scatter_inexact(data, updates, self.reduction, math.prod(indices.shape[:-1]))
        rows, count = _nd_rows(data.shape, indices.exact_value().long(), 0)
        width = math.prod(data.shape) // max(count, 1)
        return _scatter_abstract(data, rows, updates, width, self.reduction, ctx.budget)


# ------------------------------------------------------------------------------ one-hot, triangles
@register("OneHot")
class OneHot(OpRule):
    """out[..., j, ...] = values[1] where the (wrapped) index equals j, else values[0]."""

    axis: int = -1
    rounds = False

    def concrete(self, ctx: NodeContext, indices: Tensor, depth: Tensor, values: Tensor) -> Tensor:
        d = int(depth.reshape(-1)[0])
        axis = self.axis % (indices.dim() + 1)
        index = _wrap(indices.to(torch.float64).trunc().long(), d).unsqueeze(axis)
        position = torch.arange(d).reshape((d,) + (1,) * (indices.dim() - axis))
        return torch.where(index == position, values[1], values[0])

    def abstract(self, ctx: NodeContext, indices: Interval, depth: Interval, values: Interval) -> Interval:
        d = int(exact_operand(depth, "OneHot depth").reshape(-1)[0])
        axis = self.axis % (indices.rank + 1)
        lo, hi = (t.to(torch.float64).trunc().clamp(-2.0**62, 2.0**62).long().unsqueeze(axis)
                  for t in (indices.lower, indices.upper))
        j = torch.arange(d).reshape((d,) + (1,) * (indices.rank - axis))
        maybe = ((lo <= j - d) & (hi >= j - d)) | ((lo <= j) & (hi >= j))
        certain = (lo == hi) & ((lo == j) | (lo == j - d))
        (off_lo, on_lo), (off_hi, on_hi) = values.full()
        out_lo = torch.where(certain, on_lo, torch.where(maybe, torch.minimum(on_lo, off_lo), off_lo))
        out_hi = torch.where(certain, on_hi, torch.where(maybe, torch.maximum(on_hi, off_hi), off_hi))
        splits = indices.splits[:axis] + (tuple(range(d)),) + indices.splits[axis:]
        shape = indices.shape[:axis] + (d,) + indices.shape[axis:]
        return Interval.create(out_lo, out_hi, splits, shape, values.elem_type, ctx.budget)


@register("Trilu")
class Trilu(OpRule):
    """Keeps the upper (j - i >= k) or lower (j - i <= k) triangle of the last two axes, zeros elsewhere."""

    upper: int = 1
    rounds = False

    def concrete(self, ctx: NodeContext, x: Tensor, k: Tensor | None = None) -> Tensor:
        diagonal = 0 if k is None else int(k.reshape(-1)[0])
        return torch.triu(x, diagonal) if self.upper else torch.tril(x, diagonal)

    def abstract(self, ctx: NodeContext, x: Interval, k: Interval | None = None) -> Interval:
        diagonal = exact_operand(k, "Trilu k")
        return structural(lambda t: self.concrete(ctx, t, diagonal), x, ctx.budget)


# ------------------------------------------------------------------------------ padding, selection
def _pad_sources(n: int, before: int, after: int, mode: str) -> Tensor:
    """Source position of each output position on one axis; -1 for the constant fill."""
    s = torch.arange(-before, n + after)
    if mode == "constant":
        return torch.where((s >= 0) & (s < n), s, torch.full_like(s, -1))
    if mode == "edge":
        return s.clamp(0, n - 1)
    if mode == "wrap":
        return _wrap_sources(n, before, after)
    period = 2 * (n - 1)
    if period == 0:
        return torch.zeros_like(s)
    r = s.remainder(period)
    return torch.where(r >= n, period - r, r)


def _wrap_sources(n: int, before: int, after: int) -> Tensor:
    """Wrap mode's sources: onnxruntime first crops the negative pads, then wraps over what is left
    (its period is the cropped length, not ``n``)."""
    first, last = max(0, -before), n - max(0, -after)
    kept = max(last - first, 1)
    return first + torch.arange(-max(before, 0), last - first + max(after, 0)).remainder(kept)


def _move_axis(blocks: Tensor, splits: tuple[int, ...], axis: int, sources: Tensor, fill: Tensor | None
               ) -> Tensor:
    """One block per output position along ``axis``, read from the block holding its source."""
    moved = blocks.index_select(axis, block_of(splits, sources.clamp(min=0)))
    if fill is None or not bool((sources < 0).any()):
        return moved
    shape = [1] * blocks.dim()
    shape[axis] = -1
    return torch.where((sources < 0).reshape(shape), fill.to(moved.dtype), moved)


def _source_runs(splits: tuple[int, ...], sources: Tensor) -> Tensor:
    """First output position of each run of consecutive positions reading the same block (or the
    fill, source -1): they share their bounds."""
    key = torch.where(sources < 0, torch.full_like(sources, -1), block_of(splits, sources.clamp(min=0)))
    change = torch.nonzero(key[1:] != key[:-1]).flatten() + 1
    return torch.cat([torch.zeros(1, dtype=torch.long), change])


@register("Pad", since=11)
class Pad(OpRule):
    """Pads (or crops, with negative pads) in mode constant, reflect, edge or wrap."""

    mode: str = "constant"
    rounds = False
    unknown_shapes = HULLS

    def __post_init__(self) -> None:
        if self.mode not in ("constant", "reflect", "edge", "wrap"):
            raise UnsupportedOperator(f"Pad: unknown mode '{self.mode}'")

    def without_shapes(self, ctx: NodeContext, data: Interval, *rest: Interval | None) -> Interval | None:
        """Data of a shape known only at run time: its elements, and the fill in constant mode."""
        hull = data.hull()
        if hull is None:
            return None
        out = Interval.create(hull.lower, hull.upper, (), None, hull.elem_type)
        if self.mode != "constant":
            return out
        fill = self._fill_value(rest[1] if len(rest) > 1 else None, data)
        return None if fill is None else out.join(fill)

    def _fill_value(self, value: Interval | None, data: Interval) -> Interval | None:
        """The constant mode's fill as an interval of unknown shape (0 where the operand is absent)."""
        if value is None or value.numblocks == 0:
            zero = torch.zeros((), dtype=data.lower.dtype)
            return Interval.create(zero, zero, (), None, data.elem_type)
        hull = value.hull()
        return None if hull is None else Interval.create(hull.lower, hull.upper, (), None, data.elem_type)

    def _plan(self, shape: Sequence[int], pads: Tensor, axes: Tensor | None) -> dict[int, Tensor]:
        rank = len(shape)
        chosen = list(range(rank)) if axes is None else [int(a) % rank for a in axes.reshape(-1)]
        p = [int(v) for v in pads.reshape(-1)]
        plan = {}
        for i, axis in enumerate(chosen):
            before, after = p[i], p[i + len(chosen)]
            if before or after:
                plan[axis] = _pad_sources(shape[axis], before, after, self.mode)
        return plan

    def _apply(self, blocks: Tensor, splits: tuple[tuple[int, ...], ...], plan: dict[int, Tensor],
               fill: Tensor | None, runs: bool = False) -> tuple[Tensor, tuple[tuple[int, ...], ...]]:
        """Move the blocks (or, ``runs``, one block per run of output positions that read the same
        block or the fill) along every padded axis."""
        new_splits = list(splits)
        for axis, sources in plan.items():
            starts = _source_runs(splits[axis], sources) if runs and sources.numel() else None
            if starts is not None:
                sources, new_splits[axis] = sources.index_select(0, starts), tuple(starts.tolist())
            else:
                new_splits[axis] = tuple(range(sources.numel()))
            blocks = _move_axis(blocks, splits[axis], axis, sources, fill)
        return blocks, tuple(new_splits)

    def concrete(self, ctx: NodeContext, data: Tensor, pads: Tensor, value: Tensor | None = None,
                 axes: Tensor | None = None) -> Tensor:
        fill = torch.zeros((), dtype=data.dtype) if value is None or value.numel() == 0 else value.reshape(())
        splits = tuple(tuple(range(n)) for n in data.shape)
        return self._apply(data, splits, self._plan(data.shape, pads, axes), fill)[0]

    def abstract(self, ctx: NodeContext, data: Interval, pads: Interval, value: Interval | None = None,
                 axes: Interval | None = None) -> Interval:
        plan = self._plan(data.shape, exact_operand(pads, "Pad pads"), exact_operand(axes, "Pad axes"))
        if value is None or value.numblocks == 0:
            fill_lo = fill_hi = torch.zeros((), dtype=data.lower.dtype)
        else:
            fill_lo, fill_hi = value.lower.reshape(()), value.upper.reshape(())
        lo, splits = self._apply(data.lower, data.splits, plan, fill_lo, runs=True)
        hi, _ = self._apply(data.upper, data.splits, plan, fill_hi, runs=True)
        shape = tuple(int(plan[a].numel()) if a in plan else n for a, n in enumerate(data.shape))
        return Interval.create(lo, hi, splits, shape, data.elem_type, ctx.budget)


@register("Compress")
class Compress(OpRule):
    """Keeps the slices (or flattened elements) where the constant ``condition`` is true."""

    axis: int | None = None
    rounds = False

    def concrete(self, ctx: NodeContext, x: Tensor, condition: Tensor) -> Tensor:
        keep = torch.nonzero(condition.reshape(-1).bool()).reshape(-1)
        if self.axis is None:
            return x.reshape(-1).index_select(0, keep)
        return x.index_select(self.axis % x.dim(), keep)

    def abstract(self, ctx: NodeContext, x: Interval, condition: Interval) -> Interval:
        cond = exact_operand(condition, "Compress condition")
        keep = torch.nonzero(cond.reshape(-1).bool()).reshape(-1) if cond is not None else torch.zeros(0).long()
        if self.axis is None:
            lo, hi = x.full()
            return Interval.from_full(lo.reshape(-1)[keep], hi.reshape(-1)[keep], x.elem_type, ctx.budget)
        axis = self.axis % x.rank
        lo = _move_axis(x.lower, x.splits[axis], axis, keep, None)
        hi = _move_axis(x.upper, x.splits[axis], axis, keep, None)
        splits = x.splits[:axis] + (tuple(range(keep.numel())),) + x.splits[axis + 1:]
        shape = x.shape[:axis] + (keep.numel(),) + x.shape[axis + 1:]
        return Interval.create(lo, hi, splits, shape, x.elem_type, ctx.budget)


@register("NonZero")
class NonZero(OpRule):
    """Indices of the non-zero elements, shape (rank, count). Exact where the input is, or where no element
    can be zero (every index); otherwise the count depends on the values: an unknown shape, each index
    in [0, largest dimension - 1]."""
    unknown_shapes = COUNTS

    rounds = False

    def concrete(self, ctx: NodeContext, x: Tensor) -> Tensor:
        return torch.nonzero(x).T.contiguous() if x.dim() else torch.nonzero(x.reshape(1)).T.contiguous()

    def abstract(self, ctx: NodeContext, x: Interval) -> Interval:
        if x.is_exact:
            return Interval.point(self.concrete(ctx, x.exact_value()), TensorProto.INT64)
        if x.numblocks == 0:
            return Interval.point(torch.zeros((x.rank, 0), dtype=torch.long), TensorProto.INT64)
        if bool(((x.lower > 0) | (x.upper < 0)).all()):  # every element non-zero: every index
            return Interval.point(self.concrete(ctx, torch.ones(x.shape, dtype=torch.bool)), TensorProto.INT64)
        largest = max(x.shape, default=1) - 1
        return Interval.create(torch.tensor(0), torch.tensor(largest), (), None, TensorProto.INT64)
