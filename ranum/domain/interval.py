"""Block-wise interval abstraction of one tensor.

An :class:`Interval` over-approximates every non-NaN value a tensor can take: element ``i`` lies in
``[lower[b], upper[b]]`` where ``b`` is the block holding ``i`` (see :mod:`ranum.domain.blocks`).
Invariants: ``lower <= upper`` element-wise, bounds are never NaN (``-inf``/``+inf`` stand for
"unbounded"), bounds are float64 for floating tensors and int64 for integer/boolean tensors, and the
block grid has ``len(splits[a])`` entries on axis ``a``. A *point* (one stored tensor for both
bounds, e.g. an exact weight) of a float tensor may be stored in the element type's own dtype, so
that it costs its own size: ``lower``/``upper`` then convert on each read, and rules that only
select or compare values read ``stored_lower`` instead. A shape of ``None`` means the shape is not
known (only produced downstream of an unsupported operator); such an interval has 0-d bounds.
Bounds are plain torch tensors, so gradients flow through every operation defined here.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch
from onnx import TensorProto
from torch import Tensor

from ranum.domain import blocks
from ranum.domain.blocks import Splits
from ranum.domain.dtypes import bound_dtype, float_facts, int_range, is_bool, is_float, narrow_int_range, torch_dtype
from ranum.errors import InconsistentShapes

__all__ = ["Interval", "align", "elementwise", "has_nan", "representatives", "spread", "DEFAULT_BLOCK_BUDGET"]

DEFAULT_BLOCK_BUDGET = 1 << 16
_FLOAT64_SLACK = 2.0**-40
_INT_MIN = -(2**63)
_INT_MAX = 2**63 - 1


@dataclass(frozen=True, eq=False)
class Interval:
    """Lower and upper bounds per block of a tensor of a known (or unknown) shape."""

    stored_lower: Tensor
    stored_upper: Tensor
    splits: Splits
    shape: tuple[int, ...] | None
    elem_type: int

    # ----------------------------------------------------------------- construction
    @staticmethod
    def create(
        lower: Tensor,
        upper: Tensor,
        splits: Splits,
        shape: Sequence[int] | None,
        elem_type: int,
        budget: int | None = None,
    ) -> Interval:
        """Build an interval from block bounds: sanitise, cast, merge equal blocks, respect budget."""
        lower, upper = _sanitise(lower, upper, elem_type)
        if shape is None:
            return Interval(lower.amin() if lower.dim() else lower, upper.amax() if upper.dim() else upper,
                            (), None, elem_type)
        lower, upper, splits = blocks.compress(lower, upper, splits)
        if budget is not None and lower.numel() > budget and not torch.equal(lower, upper):
            lower, upper, splits = blocks.coarsen(lower, upper, splits, budget)
        return Interval(lower, upper, splits, tuple(int(n) for n in shape), elem_type)

    @staticmethod
    def from_full(lower: Tensor, upper: Tensor, elem_type: int, budget: int | None = None) -> Interval:
        """Build an interval from full-shape bounds (one block per element before merging)."""
        shape = tuple(lower.shape)
        splits = tuple(tuple(range(n)) for n in shape)
        return Interval.create(lower, upper, splits, shape, elem_type, budget)

    @staticmethod
    def point(value: Tensor, elem_type: int, finite: bool | None = None) -> Interval:
        """The exact abstraction of one concrete tensor.

        A finite float tensor already in the element type's dtype is kept as it is (no copy, and
        never written to: it may be a read-only view of the model's bytes). ``finite``: whether every
        value is known finite (None: find out).
        """
        if _storable(value, elem_type, finite):
            splits = tuple(tuple(range(n)) for n in value.shape)
            stored, _, splits = blocks.compress(value, value, splits)
            return Interval(stored, stored, splits, tuple(value.shape), elem_type)
        bounds = value.to(bound_dtype(elem_type))
        return Interval.from_full(bounds, bounds, elem_type)

    @staticmethod
    def uniform(low: float | Tensor, high: float | Tensor, shape: Sequence[int] | None, elem_type: int) -> Interval:
        """One block holding ``[low, high]`` for every element."""
        dtype = bound_dtype(elem_type)
        lo = torch.as_tensor(low, dtype=torch.float64)
        hi = torch.as_tensor(high, dtype=torch.float64)
        if shape is None:
            return Interval.create(lo, hi, (), None, elem_type)
        grid = tuple(1 if n > 0 else 0 for n in shape)
        lo = lo.to(dtype) if not is_float(elem_type) else lo
        return Interval.create(lo.expand(grid).clone(), hi.expand(grid).clone(),
                               blocks.single_splits(shape), shape, elem_type)

    @staticmethod
    def top(shape: Sequence[int] | None, elem_type: int) -> Interval:
        """The widest sound interval for a tensor of this element type."""
        if is_float(elem_type):
            return Interval.uniform(-torch.inf, torch.inf, shape, elem_type)
        if is_bool(elem_type):
            return Interval.uniform(0, 1, shape, elem_type)
        low, high = int_range(elem_type) or (_INT_MIN, _INT_MAX)
        return Interval.uniform(float(low), float(high), shape, elem_type)

    # ----------------------------------------------------------------- queries
    @property
    def lower(self) -> Tensor:
        """Lower bounds per block, in the bound dtype (float64 or int64)."""
        return _as_bounds(self.stored_lower)

    @property
    def upper(self) -> Tensor:
        """Upper bounds per block, in the bound dtype (float64 or int64)."""
        return _as_bounds(self.stored_upper)

    @property
    def is_point(self) -> bool:
        """Whether one stored tensor holds both bounds (then the interval is exact)."""
        return self.stored_lower is self.stored_upper

    @property
    def rank(self) -> int | None:
        """Number of axes, or None when the shape is unknown."""
        return None if self.shape is None else len(self.shape)

    @property
    def numblocks(self) -> int:
        """Number of blocks (1 for an unknown shape)."""
        return int(self.stored_lower.numel())

    @property
    def is_exact(self) -> bool:
        """Whether every element has one known value (lower == upper everywhere)."""
        return self.shape is not None and (self.is_point or bool(torch.equal(self.stored_lower, self.stored_upper)))

    def full(self) -> tuple[Tensor, Tensor]:
        """Full-shape lower and upper bound tensors (for reading: axes of one block are broadcast views)."""
        if self.shape is None:
            raise ValueError("cannot materialise an interval of unknown shape")
        lower = blocks.expand(self.lower, self.splits, self.shape)
        if self.is_point:  # a point keeps one tensor for both bounds
            return lower, lower
        return lower, blocks.expand(self.upper, self.splits, self.shape)

    def exact_value(self) -> Tensor:
        """The concrete tensor (in the ONNX element type's torch dtype) of an exact interval."""
        if not self.is_exact:
            raise ValueError("interval is not exact")
        return blocks.expand(self.stored_lower, self.splits, self.shape).to(torch_dtype(self.elem_type))

    @property
    def is_finite(self) -> bool:
        """Whether every bound is finite (an empty tensor: True); bounds hold no NaN, so the smallest lower
        and the largest upper bound decide."""
        return self.numblocks == 0 or (self.min() > -math.inf and self.max() < math.inf)

    def magnitude(self) -> float:
        """Largest ``|value|`` the bounds allow, ``max(-min, max)`` (inf for an interval without blocks)."""
        return max(-self.min(), self.max()) if self.numblocks else math.inf

    def min(self) -> float:
        """Smallest lower bound over all blocks (for reports, not for propagation)."""
        return float(self.stored_lower.detach().min()) if self.stored_lower.numel() else float("nan")

    def max(self) -> float:
        """Largest upper bound over all blocks (for reports, not for propagation)."""
        return float(self.stored_upper.detach().max()) if self.stored_upper.numel() else float("nan")

    def contains(self, values: Tensor) -> Tensor:
        """Element-wise membership of a concrete tensor (NaN is never contained)."""
        lo, hi = self.full() if self.shape is not None else (self.lower, self.upper)
        v = values.to(torch.float64)
        return (v >= lo) & (v <= hi)

    # ----------------------------------------------------------------- transformations
    def with_bounds(self, lower: Tensor, upper: Tensor, elem_type: int | None = None) -> Interval:
        """Same block grid and shape, new bounds."""
        return Interval.create(lower, upper, self.splits, self.shape,
                               self.elem_type if elem_type is None else elem_type)

    def map_increasing(self, fn: Callable[[Tensor], Tensor], elem_type: int | None = None) -> Interval:
        """Apply a non-decreasing function to both bounds."""
        return self.with_bounds(fn(self.lower), fn(self.upper), elem_type)

    def map_decreasing(self, fn: Callable[[Tensor], Tensor], elem_type: int | None = None) -> Interval:
        """Apply a non-increasing function, swapping the bounds."""
        return self.with_bounds(fn(self.upper), fn(self.lower), elem_type)

    def broadcast_to(self, shape: Sequence[int]) -> Interval:
        """Numpy-style broadcast to ``shape`` (cheap: broadcast axes hold one block)."""
        shape = tuple(int(n) for n in shape)
        if self.shape is None or self.shape == shape:
            return self
        lead = len(shape) - len(self.shape)
        lower = self.stored_lower.reshape((1,) * lead + tuple(self.stored_lower.shape))
        upper = lower if self.is_point else self.stored_upper.reshape(lower.shape)
        splits = list(blocks.single_splits(shape[:lead])) + list(self.splits)
        for axis, (old, new) in enumerate(zip((1,) * lead + self.shape, shape)):
            if old == new:
                continue
            if old != 1:
                raise ValueError(f"cannot broadcast shape {self.shape} to {shape}")
            splits[axis] = (0,) if new > 0 else ()
            if new == 0:
                lower = lower.narrow(axis, 0, 0)
                upper = upper.narrow(axis, 0, 0)
        return Interval(lower, upper, tuple(splits), shape, self.elem_type)

    def relaid(self, layout: Callable[[Tensor], Tensor], splits: Splits, shape: tuple[int, ...]) -> Interval:
        """The same block values under another layout: ``layout`` (a pure re-indexing such as a
        reshape or transpose of the block tensors) is applied to the stored bounds, keeping a point a point."""
        lower = layout(self.stored_lower)
        upper = lower if self.is_point else layout(self.stored_upper)
        return Interval(lower, upper, splits, shape, self.elem_type)

    def hull(self) -> Interval | None:
        """One 0-d block ``[min lower, max upper]`` holding every element (shape ``()``); None for a
        tensor without elements."""
        if self.numblocks == 0:
            return None
        return Interval(self.lower.min(), self.upper.max(), (), (), self.elem_type)

    def join(self, other: Interval) -> Interval:
        """Least upper bound in the block domain (unknown shape when shapes differ)."""
        if self.shape != other.shape or self.shape is None:
            hulls = [h for h in (self.hull(), other.hull()) if h is not None]
            if not hulls:  # two tensors without elements, of different shapes
                return Interval.top(None, self.elem_type)
            dtype = hulls[0].lower.dtype
            lo = torch.stack([h.lower.to(dtype) for h in hulls]).min()
            hi = torch.stack([h.upper.to(dtype) for h in hulls]).max()
            return Interval.create(lo, hi, (), None, self.elem_type)
        splits, ((l1, u1), (l2, u2)) = align([self, other], self.shape)
        return Interval.create(torch.minimum(l1, l2), torch.maximum(u1, u2), splits, self.shape, self.elem_type)

    def widened(self, ulps: float) -> Interval:
        """Round outward by ``ulps`` units in the last place of the element type.

        Sign-preserving (rounding to nearest never flips a sign) and saturating: a bound past the
        largest finite value becomes infinite, since the execution would overflow there.
        """
        if not is_float(self.elem_type):
            return self
        if ulps <= 1 and self.elem_type == TensorProto.FLOAT:
            return self._rounded_to_float32()
        facts = float_facts(self.elem_type)
        lo, hi = self.lower, self.upper
        new_lo = lo - lo.abs() * (ulps * facts.eps) - ulps * facts.subnormal
        new_hi = hi + hi.abs() * (ulps * facts.eps) + ulps * facts.subnormal
        new_lo = torch.where(lo >= 0, new_lo.clamp(min=0.0), new_lo)
        new_hi = torch.where(hi <= 0, new_hi.clamp(max=0.0), new_hi)
        if ulps <= 1:
            # one correct rounding to nearest gives +-max for anything short of max + half an ulp
            # (less 1/1024 of it: room for a float32 rounding before a 16-bit one): adding the
            # dtype's most negative value to a small score (attention masks) stays finite
            edge = facts.max + _ulp_of_max(facts.max, facts.eps) * (0.5 - 1 / 1024)
            new_lo = torch.where(lo > -edge, new_lo.clamp(min=-facts.max), new_lo)
            new_hi = torch.where(hi < edge, new_hi.clamp(max=facts.max), new_hi)
            # a bound that is itself a float of the type stays: rounding within an ulp never
            # crosses a representable number (1 - x for x in [0, 1] stays in [0, 1])
            new_lo = torch.where(_representable(lo, self.elem_type), lo, new_lo)
            new_hi = torch.where(_representable(hi, self.elem_type), hi, new_hi)
        new_lo = torch.where(torch.isfinite(lo), new_lo, lo)
        new_hi = torch.where(torch.isfinite(hi), new_hi, hi)
        return self.with_bounds(saturate_lower(new_lo, facts.max), saturate_upper(new_hi, facts.max))

    def _rounded_to_float32(self) -> Interval:
        """Bounds of one rounding to nearest float32 of any real value within the bounds.

        Rounding is monotone, so it lies between the roundings of the bounds; the IEEE conversion
        also saturates (+-inf past max + half an ulp) and keeps signs. The bounds are first stepped
        out by 2**-40 of themselves, far more than the float64 error of the rules that computed them.
        """
        # x * (1 -+ s * sign(x)) steps outward, keeps 0 and infinities, never makes a NaN
        lo, hi = _stepped_out(self.lower, -_FLOAT64_SLACK), _stepped_out(self.upper, _FLOAT64_SLACK)
        if self.shape is None:
            return Interval(lo, hi, self.splits, None, self.elem_type)
        lo, hi, splits = blocks.compress(lo, hi, self.splits)  # float64, NaN-free: no sanitising needed
        return Interval(lo, hi, splits, self.shape, self.elem_type)

    def to_grid(self) -> Interval:
        """Round the bounds outward onto the values representable in the element type.

        A range written as [0.1, 0.3] must hold the float32 numbers nearest to 0.1 and 0.3, which
        may lie just outside it; representable bounds stay as they are.
        """
        if not is_float(self.elem_type):
            return self
        return self.with_bounds(*onto_grid(self.lower, self.upper, self.elem_type))

    def __repr__(self) -> str:
        return f"Interval(shape={self.shape}, blocks={self.numblocks}, [{self.min():.6g}, {self.max():.6g}])"


def onto_grid(lower: Tensor, upper: Tensor, elem_type: int) -> tuple[Tensor, Tensor]:
    """float64 bounds moved outward onto the nearest values of the float type ``elem_type`` (past its range,
    infinite): bounds of any value in [lower, upper] rounded to nearest in that type."""
    dtype = torch_dtype(elem_type)
    lo, hi = lower.to(dtype), upper.to(dtype)
    lo = torch.where(lo.to(torch.float64) > lower, torch.nextafter(lo, torch.full_like(lo, -torch.inf)), lo)
    hi = torch.where(hi.to(torch.float64) < upper, torch.nextafter(hi, torch.full_like(hi, torch.inf)), hi)
    return lo.to(torch.float64), hi.to(torch.float64)


def _stepped_out(bound: Tensor, slack: float) -> Tensor:
    """``bound * (1 + slack * sign(bound))`` rounded to float32 and back (one temporary, updated in place:
    these run on every float32 result, and fresh pages cost as much as the arithmetic)."""
    factor = bound.sign()
    factor.mul_(slack).add_(1.0).mul_(bound)
    return factor.to(torch.float32).to(torch.float64)


def _representable(bound: Tensor, elem_type: int) -> Tensor:
    """Where a float64 bound is a finite value of the element type."""
    same = bound.to(torch_dtype(elem_type)).to(torch.float64) == bound
    return same & torch.isfinite(bound)


def _ulp_of_max(max_finite: float, eps: float) -> float:
    """Spacing of the floats just below the largest finite value (32 for float16)."""
    _, exponent = math.frexp(max_finite)
    return eps * 2.0 ** (exponent - 1)


def representatives(iv: Interval, axis: int) -> Interval:
    """One element per block along ``axis``: all elements of a block share its bounds exactly."""
    axis = axis % len(iv.shape)
    count = len(iv.splits[axis])
    splits = tuple(tuple(range(count)) if a == axis else s for a, s in enumerate(iv.splits))
    shape = tuple(count if a == axis else n for a, n in enumerate(iv.shape))
    return iv.relaid(lambda t: t, splits, shape)


def spread(small: Interval, block_splits: Mapping[int, tuple[int, ...]], shape: Sequence[int],
           budget: int | None = None) -> Interval:
    """The inverse of :func:`representatives`: ``small`` holds one entry per block on the axes of
    ``block_splits`` (axis -> block starts in ``shape``); every element of a block takes its entry."""
    lo, hi = small.full()
    rank = lo.dim()
    starts = {a % rank: s for a, s in block_splits.items()}
    splits = tuple(starts.get(a, tuple(range(n))) for a, n in enumerate(lo.shape))
    return Interval.create(lo, hi, splits, tuple(int(n) for n in shape), small.elem_type, budget)


def saturate_lower(lower: Tensor, max_finite: float) -> Tensor:
    """A lower bound below -max_finite may round to -inf."""
    return torch.where(lower < -max_finite, torch.full_like(lower, -torch.inf), lower)


def saturate_upper(upper: Tensor, max_finite: float) -> Tensor:
    """An upper bound above max_finite may round to +inf."""
    return torch.where(upper > max_finite, torch.full_like(upper, torch.inf), upper)


def _as_bounds(stored: Tensor) -> Tensor:
    if stored.dtype == torch.float64 or stored.dtype == torch.int64:
        return stored
    return stored.to(torch.float64 if stored.is_floating_point() else torch.int64)


def _storable(value: Tensor, elem_type: int, finite: bool | None) -> bool:
    """Whether a point may keep ``value`` as its stored bounds: a finite float tensor of the element type's dtype."""
    if not is_float(elem_type) or value.dtype != torch_dtype(elem_type) or value.dtype == torch.float64:
        return False
    if finite is not None:
        return finite
    # a NaN or an infinity makes the float32 sum non-finite (so may an overflow: then the float64 path)
    return math.isfinite(float(value.sum(dtype=torch.float32)))


def has_nan(values: Tensor) -> bool:
    """Whether a float tensor holds a NaN: its maximum is NaN exactly then (one reduction, no mask)."""
    return values.numel() > 0 and math.isnan(float(values.detach().max()))


def _sanitise(lower: Tensor, upper: Tensor, elem_type: int) -> tuple[Tensor, Tensor]:
    """Cast bounds to the storage dtype; NaN bounds become infinite (sound), ints round outward."""
    if is_float(elem_type):
        same = lower is upper
        lower = lower.to(torch.float64)
        if same and not has_nan(lower):
            return lower, lower  # a point keeps one tensor for both bounds
        upper = upper.to(torch.float64)
        # bounds are rarely NaN: a copy (of every result of every rule) only where one is
        if has_nan(lower):
            lower = torch.nan_to_num(lower, nan=-torch.inf, posinf=torch.inf, neginf=-torch.inf)
        if has_nan(upper):
            upper = torch.nan_to_num(upper, nan=torch.inf, posinf=torch.inf, neginf=-torch.inf)
        return lower, upper
    if lower.is_floating_point():
        lower = _to_int64(torch.nan_to_num(lower.to(torch.float64).floor(), nan=-torch.inf))
    if upper.is_floating_point():
        upper = _to_int64(torch.nan_to_num(upper.to(torch.float64).ceil(), nan=torch.inf))
    lower, upper = lower.to(torch.int64), upper.to(torch.int64)
    if is_bool(elem_type):
        return lower.clamp(0, 1), upper.clamp(0, 1)
    limits = narrow_int_range(elem_type)
    return (lower, upper) if limits is None else _wrapped(lower, upper, *limits)


def _wrapped(lower: Tensor, upper: Tensor, smallest: int, largest: int) -> tuple[Tensor, Tensor]:
    """Blocks whose bounds reach past their integer type's range hold results that wrapped around (two's
    complement, as onnxruntime's int32 or uint8 arithmetic does): any value of the type."""
    outside = (lower < smallest) | (upper > largest)
    if not bool(outside.any()):
        return lower, upper
    return (torch.where(outside, torch.full_like(lower, smallest), lower),
            torch.where(outside, torch.full_like(upper, largest), upper))


def _to_int64(values: Tensor) -> Tensor:
    """Integral float64 values to int64, saturating at the int64 range (2**63 is not an int64)."""
    limit = 2.0**63
    inside = values.clamp(-limit, limit - 1024).to(torch.int64)
    inside = torch.where(values >= limit, torch.full_like(inside, _INT_MAX), inside)
    return torch.where(values < -limit, torch.full_like(inside, _INT_MIN), inside)


def align(intervals: Sequence[Interval], shape: Sequence[int]) -> tuple[Splits, list[tuple[Tensor, Tensor]]]:
    """Broadcast intervals to ``shape`` and bring them onto one common block grid.

    Returns:
        The common splits and, per interval, its (lower, upper) block tensors on that grid.
    """
    shape = tuple(shape)
    cast = [iv.broadcast_to(shape) for iv in intervals]
    splits: list[tuple[int, ...]] = []
    for axis in range(len(shape)):
        common = cast[0].splits[axis]
        for iv in cast[1:]:
            common = blocks.union(common, iv.splits[axis])
        splits.append(common)
    out = []
    for iv in cast:
        lo = iv.lower
        for axis, common in enumerate(splits):
            lo = blocks.regrid(lo, axis, iv.splits[axis], common)
        if iv.is_point:  # one tensor for both bounds (rules may then take one product, not two)
            out.append((lo, lo))
            continue
        hi = iv.upper
        for axis, common in enumerate(splits):
            hi = blocks.regrid(hi, axis, iv.splits[axis], common)
        out.append((lo, hi))
    return tuple(splits), out


def broadcast_shape(*shapes: Sequence[int] | None) -> tuple[int, ...] | None:
    """Numpy broadcast of shapes; None if any is unknown."""
    if any(s is None for s in shapes):
        return None
    rank = max((len(s) for s in shapes), default=0)
    out = []
    for axis in range(rank):
        sizes = {s[axis - rank + len(s)] for s in shapes if axis - rank + len(s) >= 0}
        sizes.discard(1)
        if len(sizes) > 1:
            raise InconsistentShapes(f"shapes {[tuple(s) for s in shapes]} do not broadcast")
        out.append(sizes.pop() if sizes else 1)
    return tuple(out)


def elementwise(
    fn: Callable[..., tuple[Tensor, Tensor]],
    intervals: Sequence[Interval],
    elem_type: int,
) -> Interval:
    """Apply a block-wise bound function to broadcast, aligned operands.

    Args:
        fn: receives ``(lo_1, hi_1, lo_2, hi_2, ...)`` block tensors on a common grid and returns
            the output's ``(lower, upper)`` on that grid.
        intervals: the operands.
        elem_type: the output's ONNX element type.
    """
    shape = broadcast_shape(*[iv.shape for iv in intervals])
    if shape is None:
        args = []
        for iv in intervals:
            args += [iv.lower.min() if iv.lower.dim() else iv.lower, iv.upper.max() if iv.upper.dim() else iv.upper]
        lo, hi = fn(*[a.to(torch.float64) if is_float(elem_type) else a for a in args])
        return Interval.create(lo, hi, (), None, elem_type)
    splits, bounds = align(intervals, shape)
    args = [t for pair in bounds for t in pair]
    lo, hi = fn(*args)
    return Interval.create(lo, hi, splits, shape, elem_type)
