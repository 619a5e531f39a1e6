"""Bound arithmetic for the recurrent cells (RNN, GRU, LSTM): bounds of float values, not of reals.

Every function returns bounds, as float64 tensors, that hold the value a float execution computes
(float32 for 16-bit and float32 tensors, as onnxruntime's kernels do; float64 for float64):

* a sum of products is kept as a :class:`Sum` (midpoint, radius, and a bound of the sum of |terms|);
  :func:`sum_bounds` adds the accumulation error of that many terms in any order;
* an element-wise operation's exact interval result is widened by one rounding per operation of
  the largest magnitude entering it (:func:`rounded`: machine epsilon, twice the unit roundoff, plus
  an underflow of one subnormal), far above the float64 error of computing the bounds;
* infinite or NaN bound arithmetic (``0 * inf``, ``inf - inf``) never yields a NaN bound: radii and
  |term| sums become +inf, and :func:`settled` turns a batch row whose pre-activations or states may
  be non-finite into [-inf, inf] (NaN then may reach every unit at the next step).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import torch
from onnx import TensorProto
from torch import Tensor

from ranum.domain import arith
from ranum.domain.dtypes import FloatFacts, float_facts
from ranum.domain.interval import Interval
from ranum.ops._rnn_activations import Activation

__all__ = [
    "SUM_MARGIN", "Gate", "Matrix", "Sum", "all_finite", "as_sum", "bias_bounds", "center_radius", "cols",
    "direction_weights", "gru_update", "magnitude", "plus", "product", "rounded", "settled", "sum_bounds", "times",
    "work_facts",
]

State = tuple[Tensor, ...]
SUM_MARGIN = 4  # roundings counted on top of a pre-activation's terms: separate bias adds, peephole, clip
_HALF_FLOATS = (TensorProto.FLOAT16, TensorProto.BFLOAT16)


class Sum(NamedTuple):
    """Real bounds of a sum of products: ``mid +- rad``; ``mag`` bounds the sum of |terms|."""

    mid: Tensor
    rad: Tensor
    mag: Tensor


def plus(*sums: Sum) -> Sum:
    """The sum of sums (radii and |term| sums add; an infinite one stays infinite)."""
    mid, rad, mag = sums[0]
    for other in sums[1:]:
        mid, rad, mag = mid + other.mid, rad + other.rad, mag + other.mag
    return Sum(mid, arith.nan_to(rad, torch.inf), arith.nan_to(mag, torch.inf))


def cols(total: Sum, start: int, stop: int) -> Sum:
    """Columns ``start:stop`` of the last axis (one gate)."""
    return Sum(*(t[..., start:stop] for t in total))


def center_radius(lo: Tensor, hi: Tensor) -> tuple[Tensor, Tensor]:
    """Midpoint and radius; an unbounded element gets (0, +inf)."""
    finite = torch.isfinite(lo) & torch.isfinite(hi)
    mid = torch.where(finite, (lo + hi) / 2, torch.zeros_like(lo))
    return mid, torch.where(finite, (hi - lo) / 2, torch.full_like(lo, torch.inf))


def as_sum(lo: Tensor, hi: Tensor) -> Sum:
    """An interval as one term of a sum."""
    mid, rad = center_radius(lo, hi)
    return Sum(mid, rad, torch.maximum(lo.abs(), hi.abs()))


@dataclass(frozen=True)
class Matrix:
    """A weight matrix stored transposed for ``x @ W^T``: midpoint, radius (None if exact), |mid| + rad."""

    mid: Tensor
    rad: Tensor | None
    width: Tensor

    @staticmethod
    def of(lo: Tensor, hi: Tensor) -> Matrix:
        """From bounds of ``W`` (rows: outputs)."""
        mid, rad = center_radius(lo.t(), hi.t())
        exact = bool(torch.equal(lo, hi))
        return Matrix(mid, None if exact else rad, mid.abs() if exact else mid.abs() + rad)

    def times(self, mid: Tensor, rad: Tensor) -> Sum:
        """``x @ W^T`` for ``x`` in ``mid +- rad``: |x w - xm wm| <= |xm| wr + xr (|wm| + wr)."""
        spread = arith.nan_to(rad @ self.width, torch.inf)
        center = mid.abs()
        out_rad = spread if self.rad is None else arith.nan_to(spread + center @ self.rad, torch.inf)
        return Sum(mid @ self.mid, out_rad, arith.nan_to(center @ self.width + spread, torch.inf))


def sum_bounds(total: Sum, count: int, elem_type: int) -> tuple[Tensor, Tensor]:
    """Bounds of the float sum: real bounds widened by the accumulation error of ``count`` terms."""
    lo, hi = total.mid - total.rad, total.mid + total.rad
    return arith.with_accumulation_error(lo, hi, total.mag, count, elem_type)


def magnitude(lo: Tensor, hi: Tensor) -> Tensor:
    """Largest |value| in the bounds."""
    return torch.maximum(lo.abs(), hi.abs())


def rounded(lo: Tensor, hi: Tensor, largest: Tensor, ops: int, facts: FloatFacts) -> tuple[Tensor, Tensor]:
    """Widen by ``ops`` float roundings of values at most ``largest`` in magnitude (relative plus underflow)."""
    slack = arith.nan_to(ops * (facts.eps * largest + facts.subnormal), torch.inf)
    return lo - slack, hi + slack


def times(alo: Tensor, ahi: Tensor, blo: Tensor, bhi: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Exact product bounds and the largest |product|."""
    lo, hi = arith.mul(alo, ahi, blo, bhi)
    return lo, hi, magnitude(lo, hi)


def product(alo: Tensor, ahi: Tensor, blo: Tensor, bhi: Tensor, facts: FloatFacts) -> tuple[Tensor, Tensor]:
    """Bounds of one float product."""
    lo, hi, largest = times(alo, ahi, blo, bhi)
    return rounded(lo, hi, largest, 1, facts)


def _top_where(bad: Tensor, lo: Tensor, hi: Tensor) -> tuple[Tensor, Tensor]:
    """[-inf, inf] where ``bad``."""
    return torch.where(bad, torch.full_like(lo, -torch.inf), lo), torch.where(bad, torch.full_like(hi, torch.inf), hi)


def all_finite(*bounds: Tensor) -> Tensor:
    """Where every bound is finite (not NaN, not infinite)."""
    ok = torch.isfinite(bounds[0])
    for b in bounds[1:]:
        ok = ok & torch.isfinite(b)
    return ok


@dataclass(frozen=True)
class Gate:
    """How a gate's pre-activation becomes its value: terms counted, clip, activation, float type."""

    count: int
    clip: float | None
    act: Activation
    elem_type: int
    facts: FloatFacts

    def __call__(self, total: Sum) -> tuple[Tensor, Tensor, Tensor]:
        """Bounds of the gate and where its pre-activation is finite."""
        lo, hi = sum_bounds(total, self.count, self.elem_type)
        finite = all_finite(lo, hi)
        if self.clip is not None:
            lo, hi = lo.clamp(-self.clip, self.clip), hi.clamp(-self.clip, self.clip)
        lo, hi = self.act.bounds(lo, hi, self.facts)
        return lo, hi, finite


def bias_bounds(b: Interval | None, d: int, rows: int) -> tuple[Sum, Sum]:
    """``Wb`` and ``Rb`` (``rows`` each) of direction ``d`` as sums of one term each."""
    if b is None:
        zero = torch.zeros(rows, dtype=torch.float64)
        return Sum(zero, zero, zero), Sum(zero, zero, zero)
    lo, hi = b.full()
    return as_sum(lo[d, :rows], hi[d, :rows]), as_sum(lo[d, rows:], hi[d, rows:])


def work_facts(elem_type: int) -> FloatFacts:
    """The float type recurrent kernels compute in (float32 for 16-bit tensors)."""
    return arith.accumulator_facts(elem_type)


def _stored(lo: Tensor, hi: Tensor, elem_type: int) -> tuple[Tensor, Tensor]:
    """A state kept in a 16-bit type rounds once more (onnxruntime keeps float32; others may not)."""
    if elem_type not in _HALF_FLOATS:
        return lo, hi
    return rounded(lo, hi, magnitude(lo, hi), 1, float_facts(elem_type))


def settled(state: State, checks: Sequence[Tensor], elem_type: int) -> State:
    """New state bounds ``(lo, hi, lo, hi, ...)``, stored, and [-inf, inf] over every batch row where a
    pre-activation or a state may be non-finite (NaN then may reach every unit at the next step)."""
    stored: State = ()
    for k in range(0, len(state), 2):
        stored += _stored(state[k], state[k + 1], elem_type)
    ok = all_finite(*stored)
    for check in checks:
        ok = ok & check
    bad = ~ok.all(dim=-1, keepdim=True)
    out: State = ()
    for k in range(0, len(stored), 2):
        out += _top_where(bad.expand_as(stored[k]), stored[k], stored[k + 1])
    return out


def direction_weights(w: Interval, d: int, rows: slice = slice(None)) -> Matrix:
    """Rows ``rows`` of direction ``d`` of a ``[directions, rows, columns]`` weight."""
    lo, hi = w.full()
    return Matrix.of(lo[d, rows], hi[d, rows])


def gru_update(z_lo: Tensor, z_hi: Tensor, a_lo: Tensor, a_hi: Tensor, b_lo: Tensor, b_hi: Tensor,
               facts: FloatFacts) -> tuple[Tensor, Tensor]:
    """Bounds of ``(1 - z) a + z b`` in float: it is affine in each of z, a, b, so its extremes over the
    box are among the 8 corners; four roundings ((1 - z), two products, the sum)."""
    corners = torch.stack([(1 - z) * a + z * b for z in (z_lo, z_hi) for a in (a_lo, a_hi) for b in (b_lo, b_hi)])
    largest = magnitude(1 - z_hi, 1 - z_lo) * magnitude(a_lo, a_hi) + magnitude(z_lo, z_hi) * magnitude(b_lo, b_hi)
    return rounded(corners.amin(dim=0), corners.amax(dim=0), largest, 4, facts)
