"""Bounds and hazards of LRN and MeanVarianceNormalization (their rules live in local_norm.py).

LRN: ``y = x / (bias + alpha / size * W) ** beta`` with ``W`` the sum of squares over a window of
``size`` channels. onnxruntime computes the scale as a running sum across channels (add the head,
subtract the tail) in float32 (16-bit tensors are cast to float32), so its absolute error grows with
the number of channels and the largest squares; the bounds carry that error, and a scale whose lower
bound is not positive (bias not above the error) makes the output unbounded and fires
:class:`LrnScaleHazard`. With the scale's rest (bias and the other channels' squares) in
``[R_lo, R_hi]``, ``t * (R + k t**2) ** -beta`` is increasing then decreasing in ``t = |x|`` (its peak
at ``t* = sqrt(R / (k (2 beta - 1)))``), which gives the bounds of each output exactly up to rounding.

MeanVarianceNormalization: onnxruntime's float32 kernel (the only one it has) computes, per slice,
``Y = X - mean(X)`` and ``Y / sqrt(mean(Y ** 2))`` with no epsilon (the ONNX function body adds 1e-9
to the standard deviation and uses E[x^2] - E[x]^2 instead; these bounds follow the runtime). The
computed variance is at least ``(1 - g) var - subnormal``; when that exceeds ``K = 2**20`` subnormals,
``|z| <= sqrt(n / ((1 - g)(1 - eps) - 1 / K))`` for every element, underflowing squares included.
Below it the output is unbounded and :class:`MvnVarianceHazard` fires (a constant slice gives 0/0).
Squares past float32's range make the variance infinite and z zero, which the bounds then include.
Invariants: bounds never NaN; an input whose slice sums may overflow gives unbounded outputs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from onnx import TensorProto
from torch import Tensor

from ranum.domain import arith
from ranum.domain.dtypes import FloatFacts, float_facts
from ranum.domain.interval import Interval
from ranum.ops.hazards import Hazard, HazardHit

__all__ = ["LrnScaleHazard", "MvnVarianceHazard", "lrn_bounds", "lrn_concrete", "mvn_bounds", "mvn_concrete",
           "mvn_perm"]

_K = 2.0**20


def _compute_facts(elem_type: int) -> FloatFacts:
    """Facts of the type onnxruntime computes in: float64 for double, float32 otherwise."""
    return float_facts(TensorProto.DOUBLE if elem_type == TensorProto.DOUBLE else TensorProto.FLOAT)


def _magnitudes(x: Interval) -> tuple[Tensor, Tensor]:
    lo, hi = (t.to(torch.float64) for t in x.full())
    return lo.clamp(min=0.0) - hi.clamp(max=0.0), torch.maximum(lo.abs(), hi.abs())


# ------------------------------------------------------------------------------------- LRN
def _window(sq: Tensor, size: int) -> Tensor:
    """Sum over channels [c - (size - 1) // 2, c + size // 2] (clipped), along axis 1."""
    before = (size - 1) // 2
    moved = sq.movedim(1, -1)
    padded = F.pad(moved, (before, size - 1 - before))
    return padded.unfold(-1, size, 1).sum(-1).movedim(-1, 1)


@dataclass(frozen=True)
class _LrnScale:
    """Per element: the computed scale is ``rest + k * x**2`` with ``rest`` in [rest_lo, rest_hi]."""

    rest_lo: Tensor
    rest_hi: Tensor
    own_lo: Tensor  # lower bound of x**2
    broken: Tensor  # squares or running sums that may overflow (then inf - inf can follow)


def _lrn_scale(near: Tensor, far: Tensor, size: int, alpha: float, bias: float, elem_type: int) -> _LrnScale:
    facts = _compute_facts(elem_type)
    k = alpha / size
    sq_lo, sq_hi = near * near, far * far
    count = 2 * near.shape[1] + size + 8
    total = abs(bias) + k * sq_hi.sum(1, keepdim=True)
    err = arith.accumulation_gamma(count, TensorProto.DOUBLE if elem_type == TensorProto.DOUBLE else
                                   TensorProto.FLOAT) * total + count * facts.subnormal
    rest_lo = bias + k * (_window(sq_lo, size) - sq_lo) - err
    rest_hi = bias + k * (_window(sq_hi, size) - sq_hi) + err
    broken = ~(sq_hi.amax(1, keepdim=True) < facts.max / 2) | ~(total < facts.max / 4)
    return _LrnScale(rest_lo, rest_hi, sq_lo, broken.expand_as(rest_lo))


def _peak_value(t: Tensor, rest: Tensor, k: float, beta: float) -> Tensor:
    return t * (rest + k * t * t).pow(-beta)


def _magnitude_range(a: Tensor, b: Tensor, sc: _LrnScale, k: float, beta: float, slack: float,
                     ) -> tuple[Tensor, Tensor]:
    """Smallest and largest |y| for |x| in [a, b]: the low end of the unimodal bound is at an end of
    the range, the high end at the peak clamped into it."""
    k_lo, k_hi = k * (1 - slack), k * (1 + slack)
    peak = torch.sqrt(sc.rest_lo / (k_lo * (2 * beta - 1))) if beta > 0.5 and k_lo > 0 else \
        torch.full_like(a, math.inf)
    high = _peak_value(torch.minimum(torch.maximum(peak, a), b), sc.rest_lo, k_lo, beta)
    low = torch.minimum(_peak_value(a, sc.rest_hi, k_hi, beta), _peak_value(b, sc.rest_hi, k_hi, beta))
    return low * (1 - slack), high * (1 + slack)


def lrn_bounds(x: Interval, size: int, alpha: float, beta: float, bias: float) -> tuple[Tensor, Tensor]:
    """Full-shape bounds of LRN's output (real values of the runtime's computation before its last
    rounding, which the interpreter adds)."""
    lo, hi = (t.to(torch.float64) for t in x.full())
    near, far = _magnitudes(x)
    sc = _lrn_scale(near, far, size, alpha, bias, x.elem_type)
    valid = (sc.rest_lo > 0) & ~sc.broken
    sc = _LrnScale(torch.where(valid, sc.rest_lo, 1.0), torch.where(valid, sc.rest_hi, 1.0), sc.own_lo, sc.broken)
    slack = 4 * _compute_facts(x.elem_type).eps
    k = alpha / size
    pos_low, pos_high = _magnitude_range(lo.clamp(min=0.0), hi.clamp(min=0.0), sc, k, beta, slack)
    neg_low, neg_high = _magnitude_range((-hi).clamp(min=0.0), (-lo).clamp(min=0.0), sc, k, beta, slack)
    inf = torch.full_like(lo, math.inf)
    lower = torch.minimum(torch.where(hi >= 0, pos_low, inf), torch.where(lo < 0, -neg_high, inf))
    upper = torch.maximum(torch.where(hi >= 0, pos_high, -inf), torch.where(lo < 0, -neg_low, -inf))
    return torch.where(valid, lower, -inf), torch.where(valid, upper, inf)


def lrn_concrete(x: Tensor, size: int, alpha: float, beta: float, bias: float) -> Tensor:
    """The ONNX formula, evaluated in float64 and rounded to x's type."""
    wide = x.to(torch.float64)
    return (wide / (bias + alpha / size * _window(wide * wide, size)).pow(beta)).to(x.dtype)


@dataclass(frozen=True)
class LrnScaleHazard(Hazard):
    """The computed scale ``bias + alpha / size * W`` can be <= 0: its power is NaN or infinite."""

    size: int
    alpha: float
    bias: float
    name: str = "lrn-nonpositive-scale"
    description: str = "LRN's scale bias + alpha/size * (sum of squares) can be <= 0 (within its rounding error)"

    def _margin(self, near: Tensor, far: Tensor, elem_type: int) -> tuple[Tensor, Tensor]:
        sc = _lrn_scale(near, far, self.size, self.alpha, self.bias, elem_type)
        k = self.alpha / self.size
        low = sc.rest_lo + k * sc.own_lo
        return low, sc.rest_hi + k * far * far

    def check(self, inputs, outputs):
        x = inputs[0]
        if x is None or x.shape is None or x.numblocks == 0:
            return None
        low, high = self._margin(*_magnitudes(x), x.elem_type)
        if not bool((low <= 0).any()):
            return None
        return HazardHit(bool((high <= 0).all()), float(low.min()), float(high.max()))

    def distance(self, inputs, outputs):
        x = inputs[0].to(torch.float64).abs()
        return self._margin(x, x, TensorProto.FLOAT)[0]

    def triggered(self, inputs, outputs):
        return self.distance(inputs, outputs) <= 0

    def invalid_text(self, elem_type):
        return f"{self.bias:g} + {self.alpha:g}/{self.size} * (sum of squares) <= its rounding error"


# ------------------------------------------------------------------------------------- MVN
def mvn_perm(rank: int, axes: Sequence[int]) -> list[int]:
    """The kept axes, then the normalized ones (so that rows are contiguous)."""
    reduced = sorted({a % rank for a in axes})
    return [a for a in range(rank) if a not in reduced] + reduced


def _rows(t: Tensor, perm: list[int], count: int) -> Tensor:
    return t.permute(perm).reshape(-1, count)


def _unrows(t: Tensor, perm: list[int], shape: Sequence[int]) -> Tensor:
    moved = t.reshape([shape[a] for a in perm])
    return moved.permute([perm.index(a) for a in range(len(shape))])


@dataclass(frozen=True)
class _MvnStats:
    """Per row: bounds of the computed deviations Y = X - mean and of the computed mean of Y**2."""

    d_lo: Tensor
    d_hi: Tensor
    s_lo: Tensor
    s_hi: Tensor
    big: Tensor


def _mvn_stats(lo: Tensor, hi: Tensor) -> _MvnStats:
    """float32 two-pass statistics of (rows, n) bounds (see the module docstring)."""
    facts = float_facts(TensorProto.FLOAT)
    n, u = lo.shape[1], facts.eps
    g = arith.accumulation_gamma(n + 4, TensorProto.FLOAT)
    sum_lo, sum_hi = lo.sum(1, keepdim=True), hi.sum(1, keepdim=True)
    amax = torch.maximum(lo.abs(), hi.abs())
    err = g * amax.mean(1, keepdim=True) + u * amax.amax(1, keepdim=True)
    d_lo = lo * (1 - 1 / n) - (sum_hi - hi) / n - err
    d_hi = hi * (1 - 1 / n) - (sum_lo - lo) / n + err
    d_lo, d_hi = d_lo - d_lo.abs() * u, d_hi + d_hi.abs() * u
    dist = (lo - sum_hi / n).clamp(min=0) + (sum_lo / n - hi).clamp(min=0)
    s_lo = (1 - g) * (dist * dist).mean(1, keepdim=True) - facts.subnormal
    spread = torch.maximum(hi - (sum_lo / n - err), (sum_hi / n + err) - lo)
    s_hi = (1 + g) * (spread * spread).mean(1, keepdim=True) + facts.subnormal
    big = ~(amax.sum(1, keepdim=True) < facts.max / 4)
    return _MvnStats(d_lo, d_hi, s_lo, torch.nan_to_num(s_hi, nan=math.inf), big)


def mvn_bounds(lo: Tensor, hi: Tensor) -> tuple[Tensor, Tensor]:
    """Bounds of the normalized values of (rows, n) float64 bounds."""
    st = _mvn_stats(lo, hi)
    facts = float_facts(TensorProto.FLOAT)
    n, u = lo.shape[1], facts.eps
    g = arith.accumulation_gamma(n + 4, TensorProto.FLOAT)
    safe = st.s_lo >= _K * facts.subnormal
    # squares or their sum past float32's range: the computed variance is inf and z is 0
    inv_lo = torch.where(st.s_hi * n < facts.max, (1 - 2 * u) / st.s_hi.sqrt(), 0.0)
    inv_hi = torch.where(safe, (1 + 2 * u) / st.s_lo.clamp(min=facts.subnormal).sqrt(), math.inf)
    z_lo, z_hi = arith.mul(st.d_lo, st.d_hi, inv_lo, inv_hi)
    cap = math.sqrt(n / ((1 - g) * (1 - u) - 1 / _K)) * (1 + 2 * u)
    z_lo = torch.where(safe, z_lo.clamp(min=-cap, max=cap), z_lo)
    z_hi = torch.where(safe, z_hi.clamp(min=-cap, max=cap), z_hi)
    return torch.where(st.big, -math.inf, z_lo), torch.where(st.big, math.inf, z_hi)


def mvn_concrete(x: Tensor, perm: list[int], count: int) -> Tensor:
    """onnxruntime's two passes in float32: Y = X - mean(X), then Y / sqrt(mean(Y ** 2)); the means
    are summed in float64 and rounded (a constant slice then has the exact mean and gives 0/0)."""
    rows = _rows(x.to(torch.float32), perm, count)
    centred = rows - rows.double().mean(1, keepdim=True).float()
    z = centred / centred.double().square().mean(1, keepdim=True).float().sqrt()
    return _unrows(z, perm, tuple(x.shape)).to(x.dtype)


@dataclass(frozen=True)
class MvnVarianceHazard(Hazard):
    """A slice's variance can be 0, or so small that its square underflows: 0/0 or x/0."""

    axes: tuple[int, ...]
    name: str = "mvn-zero-variance"
    description: str = "variance of a (near-)constant slice can be 0: (x - mean) / 0 is NaN or infinite"

    def _rows(self, x: Tensor | Interval) -> tuple[list[int], int]:
        rank = len(x.shape)
        return mvn_perm(rank, self.axes), math.prod(x.shape[a] for a in {a % rank for a in self.axes})

    def check(self, inputs, outputs):
        x = inputs[0]
        if x is None or x.shape is None or x.numblocks == 0:
            return None
        perm, count = self._rows(x)
        lo, hi = (_rows(t.to(torch.float64), perm, count) for t in x.full())
        st = _mvn_stats(lo, hi)
        threshold = _K * float_facts(TensorProto.FLOAT).subnormal
        if not bool((st.s_lo < threshold).any()):
            return None
        constant = bool((lo.amin(1) == hi.amax(1)).all())
        return HazardHit(constant, float(st.s_lo.min()), float(st.s_hi.max()))

    def distance(self, inputs, outputs):
        x = inputs[0]
        perm, count = self._rows(x)
        rows = _rows(x.to(torch.float64), perm, count)
        threshold = 2 * (_K + 1) * float_facts(TensorProto.FLOAT).subnormal
        margin = rows.var(dim=1, unbiased=False, keepdim=True) - threshold
        return _unrows(margin.expand_as(rows), perm, tuple(x.shape))

    def triggered(self, inputs, outputs):
        return self.distance(inputs, outputs) <= 0

    def invalid_text(self, elem_type):
        return "slice variance <= 2**-128 (a constant slice)"
