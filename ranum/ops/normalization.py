"""Normalization: LayerNormalization, InstanceNormalization, GroupNormalization (BatchNormalization is in
:mod:`ranum.ops.batch_norm`, LpNormalization in :mod:`ranum.ops.lp_norm`, local response and mean-variance
normalization in :mod:`ranum.ops.local_norm`).

Slice statistics (Layer/Instance/Group) are bounded per normalized slice ("row") of ``n``
elements: the mean from the bound sums; each centred value ``x_i - mean`` with ``x_i``'s own
share of the mean cancelled; the variance from below by the distance of each element to the mean
interval and from above around the mean interval's midpoint. The normalized value is then
capped by ``sqrt(n - 1)`` (Cauchy-Schwarz), corrected for float rounding: the computed mean is off
by the accumulation error ``e`` and the computed variance by ``delta`` (a one-pass ``E[x^2] - E[x]^2``:
``delta`` = 4 gamma_n * mean(x^2), gamma_n of float64 for BatchNormalization's training statistics, of the
stash type, float32 by default, for GroupNormalization, whose function body onnxruntime runs), so the cap only
holds when ``epsilon > delta``. onnxruntime's LayerNormalization and InstanceNormalization compute the
variance in two passes, around the computed mean (``nonneg_variance``: checked against the runtime
in tests/ops/test_normalization_runtime.py): the variance is then never negative, and no element is
more than ``sqrt(n)`` computed standard deviations from the computed mean, so the cap is
``sqrt(n / (1 - gamma))`` for any epsilon and magnitude. Invariants: bounds sound for onnxruntime's
float execution, never NaN; finite inputs with ``epsilon > delta`` never give infinite bounds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from onnx import TensorProto
from torch import Tensor

from ranum.domain import arith
from ranum.domain.dtypes import float_facts, torch_dtype
from ranum.domain.interval import Interval, elementwise, onto_grid, representatives, spread
from ranum.errors import UnsupportedOperator
from ranum.ops._base import NodeContext, OpRule
from ranum.ops.hazards import Hazard, HazardHit, Overflow
from ranum.ops.registry import register

__all__ = ["GroupNormalization", "InstanceNormalization", "LayerNormalization", "SliceVarianceHazard",
           "layer_norm_bounds"]


def _unit(elem_type: int) -> float:
    """Unit roundoff of the computation type (16-bit floats are computed in float32)."""
    return float_facts(TensorProto.DOUBLE if elem_type == TensorProto.DOUBLE else TensorProto.FLOAT).eps


def _gamma(count: int, elem_type: int) -> float:
    return arith.accumulation_gamma(count, TensorProto.DOUBLE if elem_type == TensorProto.DOUBLE else
                                    TensorProto.FLOAT)


@dataclass(frozen=True)
class _Stats:
    """Per-row bounds (rows of a (rows, n) view): centred values, variance + eps, mean error."""

    d_lo: Tensor
    d_hi: Tensor
    mean_lo: Tensor
    mean_hi: Tensor
    s_lo: Tensor  # lower bound of computed variance + epsilon (may be <= 0)
    s_hi: Tensor
    err: Tensor  # absolute error of the computed mean
    delta: Tensor  # absolute error of the computed variance
    big: Tensor  # inputs large enough to overflow the centring
    largest: Tensor  # the largest |x| of each row


def _stats(lo: Tensor, hi: Tensor, epsilon: float, elem_type: int, sums_in_double: bool = False,
           nonneg_variance: bool = False, running_variance: bool = False,
           moments_type: int = TensorProto.DOUBLE) -> _Stats:
    """``elem_type``: the type the statistics are computed in; ``moments_type``: the type a one-pass
    ``E[x^2] - E[x]^2`` is accumulated in (where the variance can go negative)."""
    n = lo.shape[1]
    g, u = _gamma(n + 4, elem_type), _unit(elem_type)
    g_mean = arith.accumulation_gamma(n + 4, TensorProto.DOUBLE) if sums_in_double else g
    s_lo_sum, s_hi_sum = lo.sum(1, keepdim=True), hi.sum(1, keepdim=True)
    mean_lo, mean_hi = s_lo_sum / n, s_hi_sum / n
    amax = torch.maximum(lo.abs(), hi.abs())
    err = g_mean * amax.mean(1, keepdim=True) + u * amax.amax(1, keepdim=True)
    delta = 4 * arith.accumulation_gamma(n + 4, moments_type) * (amax * amax).mean(1, keepdim=True)
    d_lo = lo * (1 - 1 / n) - (s_hi_sum - hi) / n - err
    d_hi = hi * (1 - 1 / n) - (s_lo_sum - lo) / n + err
    dist = (lo - mean_hi).clamp(min=0) + (mean_lo - hi).clamp(min=0)
    v_lo = (dist * dist).mean(1, keepdim=True)
    centre = (mean_lo + mean_hi) / 2
    v_hi = torch.maximum((lo - centre) ** 2, (hi - centre) ** 2).mean(1, keepdim=True)
    # nonneg_variance: the runtime's variance is never below 0 (onnxruntime's LayerNormalization and
    # InstanceNormalization, checked on near-constant rows up to 1e6 with epsilon 1e-12), so the
    # cancellation slack of E[x^2] - E[x]^2 does not reach below it; GroupNormalization does go below.
    largest = amax.amax(1, keepdim=True)
    if running_variance:
        running = _RunningVariance.of(n, largest, elem_type)
        s_lo = running.floor(v_lo) + epsilon
        delta = running.shortfall(v_hi)
    else:
        s_lo = v_lo * (1 - g) - (0.0 if nonneg_variance else delta) + epsilon
    s_hi = (v_hi + err * err) * (1 + g) + delta + epsilon
    big = largest > _square_limit(n, elem_type)
    # an infinite bound on both sides of a row makes its sums inf - inf: unbounded, never NaN
    return _Stats(arith.nan_to(d_lo, -torch.inf), arith.nan_to(d_hi, torch.inf),
                  arith.nan_to(mean_lo - err, -torch.inf), arith.nan_to(mean_hi + err, torch.inf),
                  arith.nan_to(s_lo, -1.0), arith.nan_to(s_hi, torch.inf), err, delta, big, largest)


@dataclass(frozen=True)
class _RunningVariance:
    """How far a running (Welford) variance, computed in float32 (float64 for double) over a row of ``n``
    values of magnitude at most L, falls below the row's variance v: it is never below 0, and at least
    ``(1 - c) v - a sqrt(v) - b``; every partial mean is off by at most ``mean_error``.

    Each update rounds the partial mean by about ``2 u L``, and those errors decay (the k-th is weighted
    k / n in the final mean): every partial mean is within ``E = 2 (n + 2) u L``. Update k adds
    ``d_k (x_k - m_k)`` with ``d_k = x_k - m_(k-1)``; with the computed means instead, each term moves by at
    most ``|d_k| (2 u L + 2 E)`` plus terms in ``k u L E``, and ``sum |d_k| <= 3 n sqrt(v)`` (Cauchy-Schwarz
    on the deviations from the mean and on the partial means'). Divided by n: ``9 E sqrt(v)`` and
    ``18 (n + 2)^2 (u L)^2``; ``c`` is the products' and the sum's own rounding. The constants carry a
    factor 2 over that count."""

    c: float
    a: Tensor
    b: Tensor
    mean_error: Tensor

    @staticmethod
    def of(n: int, largest: Tensor, elem_type: int) -> _RunningVariance:
        u = float_facts(TensorProto.DOUBLE if elem_type == TensorProto.DOUBLE else TensorProto.FLOAT).eps / 2
        mean_error = 2 * (n + 2) * u * largest
        return _RunningVariance(8 * (n + 2) * u, 18 * mean_error, 36 * ((n + 2) * u * largest) ** 2, mean_error)

    def floor(self, v: Tensor) -> Tensor:
        """The least computed variance of a row whose variance is at least ``v``, never below 0."""
        return ((1 - self.c) * v - self.a * v.clamp(min=0.0).sqrt() - self.b).clamp(min=0.0)

    def shortfall(self, v: Tensor) -> Tensor:
        """How far the computed variance can be from a variance of at most ``v``, either way."""
        return self.c * v + self.a * v.clamp(min=0.0).sqrt() + self.b

    def cap(self, n: int, epsilon: float) -> Tensor:
        """A bound of |x_i - mean| / sqrt(var + eps) as computed: where the computed variance is at least half
        of (1 - c) v, about sqrt(2 n); else v is below the root of ``(1 - c) v / 2 = a sqrt(v) + b``, and
        the computed variance at least 0."""
        if self.c >= 0.5 or epsilon <= 0:
            return torch.full_like(self.a, torch.inf)
        keep = 1 - self.c
        root = (self.a + (self.a * self.a + 2 * keep * self.b).sqrt()) / keep  # sqrt(v*)
        near = math.sqrt(2 * n / keep) + self.mean_error / (keep * root * root / 2 + epsilon).sqrt()
        far = (math.sqrt(n) * root + 2 * self.mean_error) / math.sqrt(epsilon)
        return torch.maximum(near, far)


_FLOAT32_TINY = float_facts(TensorProto.FLOAT).tiny  # smallest normal float32
# below this magnitude a float32 square rounds to 0, so a slice of such values has a computed L2 norm of 0
_SQUARE_FLUSH = 2.0**-76


def _square_limit(n: int, elem_type: int) -> float:
    """The largest magnitude whose squares and sums over ``n`` elements stay finite in the compute type
    (float32, float64 for double), and below a quarter of the element type's range (the centring).
    Above it the runtime may get an infinite variance (a 0 result) or a centring off by lost digits."""
    compute = float_facts(TensorProto.DOUBLE if elem_type == TensorProto.DOUBLE else TensorProto.FLOAT).max
    return min(math.sqrt(compute / (n + 4)), compute / 4 / (n + 4), float_facts(elem_type).max / 4)


def _with_error(lo: Tensor, hi: Tensor, abs_sum: Tensor, count: int, elem_type: int) -> tuple[Tensor, Tensor]:
    """Absolute rounding slack of ``count`` steps in the tensor's own precision (16-bit included)."""
    u = float_facts(elem_type).eps
    gamma = 2 * count * u / (1 - count * u)
    slack = arith.nan_to(abs_sum * gamma, torch.inf)
    return arith.nan_to(lo - slack, -torch.inf), arith.nan_to(hi + slack, torch.inf)


def _inv_std(st: _Stats, elem_type: int) -> tuple[Tensor, Tensor]:
    u = _unit(elem_type)
    inv_lo = torch.rsqrt(st.s_hi) * (1 - 2 * u)
    inv_lo = torch.where(st.big, torch.zeros_like(inv_lo), inv_lo)  # an overflowing variance gives 1/inf = 0
    # a variance + eps below float32's normal range may be flushed to 0 by the runtime: 1 / sqrt(0)
    inv_hi = torch.where(st.s_lo >= _FLOAT32_TINY, torch.rsqrt(st.s_lo.clamp(min=1e-300)) * (1 + 2 * u),
                         torch.full_like(st.s_lo, torch.inf))
    return inv_lo, inv_hi


def _normalized(lo: Tensor, hi: Tensor, epsilon: float, elem_type: int, sums_in_double: bool,
                nonneg_variance: bool = False, running_variance: bool = False,
                moments_type: int = TensorProto.DOUBLE) -> tuple[Tensor, Tensor, _Stats]:
    """Bounds of (x - mean) / sqrt(var + eps) for a (rows, n) view, and the row statistics.
    ``running_variance``: the runtime's variance is a running one, never below 0 but below the two-pass
    one by up to its ``delta`` (see :func:`_stats`), so only the one-pass cap applies."""
    n = lo.shape[1]
    st = _stats(lo, hi, epsilon, elem_type, sums_in_double, nonneg_variance, running_variance, moments_type)
    inv_lo, inv_hi = _inv_std(st, elem_type)
    z_lo, z_hi = arith.mul(st.d_lo, st.d_hi, inv_lo, inv_hi)
    g, u = _gamma(n + 4, elem_type), _unit(elem_type)
    two_pass = nonneg_variance and not running_variance
    delta = torch.zeros_like(st.delta) if two_pass else st.delta
    margin = (epsilon - delta).clamp(min=1e-300)
    cap = (math.sqrt((n - 1) / (1 - g)) + st.err / margin.sqrt()) * (1 + 4 * u)
    cap = torch.where(epsilon > delta, cap, torch.full_like(cap, torch.inf))
    if running_variance:
        running = _RunningVariance.of(n, st.largest, elem_type)
        cap = torch.minimum(cap, (running.cap(n, epsilon) + st.err / math.sqrt(epsilon)) * (1 + 8 * u)
                            if epsilon > 0 else cap)
    if two_pass:
        # Two passes: the computed variance is the mean of squared deviations from the computed
        # mean, so it is at least (1 - g) (x_i - mean)^2 / n for every i: |z_i| <= sqrt(n / (1 - g)),
        # unless variance + eps can underflow float32 (epsilon 0 and a tiny row): then 1 / sqrt(0)
        unflushed = st.s_lo >= _FLOAT32_TINY
        cap = torch.where(unflushed, cap.clamp(max=math.sqrt(n / (1 - g)) * (1 + 8 * u)), cap)
    cap = torch.where(~st.big, cap, torch.full_like(cap, torch.inf))
    z_lo = torch.maximum(arith.nan_to(z_lo, -torch.inf), -cap)
    z_hi = torch.minimum(arith.nan_to(z_hi, torch.inf), cap)
    return z_lo, z_hi, st


def _affine(z: Interval, scale: Interval | None, bias: Interval | None) -> Interval:
    """z * scale + bias, with the rounding of the product and the sum as an absolute slack."""
    operands = [z] + [iv for iv in (scale, bias) if iv is not None]

    def fn(*b: Tensor) -> tuple[Tensor, Tensor]:
        lo, hi = b[0], b[1]
        k = 2
        if scale is not None:
            lo, hi = arith.mul(lo, hi, b[k], b[k + 1])
            k += 2
        if bias is not None:
            lo, hi = arith.add(lo, hi, b[k], b[k + 1])
        mags = [torch.maximum(b[i].abs(), b[i + 1].abs()) for i in range(0, len(b), 2)]
        abs_sum = mags[0] * mags[1] if scale is not None else mags[0]
        abs_sum = arith.nan_to(abs_sum + (mags[-1] if bias is not None else 0.0), torch.inf)
        return _with_error(lo, hi, abs_sum, 3, z.elem_type)

    return elementwise(fn, operands, z.elem_type)


def _channel(iv: Interval | None, rank: int, repeat: int = 1) -> Interval | None:
    """A per-channel (C,) operand as a (C, 1, ..., 1) interval (each entry repeated ``repeat`` times)."""
    if iv is None:
        return None
    lo, hi = (t.reshape(-1).repeat_interleave(repeat) for t in iv.full())
    view = (-1,) + (1,) * (rank - 2)
    return Interval.from_full(lo.reshape(view), hi.reshape(view), iv.elem_type)


# ------------------------------------------------------------------------------ hazards
@dataclass(frozen=True)
class SliceVarianceHazard(Hazard):
    """var + epsilon of a normalized slice can be <= the variance's rounding error: 0/0 or sqrt(<0)."""

    epsilon: float
    axis: int = -1  # rows = prod(shape[:axis]) when groups == 0
    groups: int = 0  # rows = N * groups (GroupNormalization)
    nonneg_variance: bool = False  # the runtime's variance never goes below 0 (see _stats)
    stash_type: int | None = None  # the type x is cast to and E[x^2] - E[x]^2 computed in (a function body)
    name: str = "normalization-zero-variance"
    description: str = "variance + epsilon of a (near-)constant slice can be 0: 0/0 is NaN"

    def _rows(self, x: Tensor, shape: Sequence[int]) -> Tensor:
        if self.groups:
            return x.reshape(shape[0] * self.groups, -1)
        axis = self.axis % len(shape)
        return x.reshape(math.prod(shape[:axis]), -1)

    def check(self, inputs, outputs):
        x = inputs[0]
        if x is None or x.shape is None or x.numblocks == 0 or self._safe_by_epsilon(x):
            return None
        if not self.groups:
            x = row_representatives(x, self.axis % len(x.shape))
        lo, hi = (self._rows(t.to(torch.float64), x.shape) for t in x.full())
        lo, hi, compute, moments = _stashed(lo, hi, x.elem_type, self.stash_type)
        st = _stats(lo, hi, self.epsilon, compute, nonneg_variance=self.nonneg_variance, moments_type=moments)
        if not bool((st.s_lo <= 0).any()):
            return None
        return HazardHit(bool((st.s_hi <= 0).all()), float(st.s_lo.min() - self.epsilon),
                         float(st.s_hi.max() - self.epsilon))

    def _safe_by_epsilon(self, x: Interval) -> bool:
        """Whether epsilon alone keeps every slice's ``s_lo`` of :func:`_stats` above 0, without the
        row statistics: ``s_lo >= epsilon - delta`` (the variance's lower bound is a mean of squares,
        times ``1 - g > 0``), with ``delta = 0`` for a runtime whose variance is never negative and
        otherwise at most ``4 gamma * max|x|^2``. Infinite bounds take the full check."""
        shape = x.shape
        rows = shape[0] * self.groups if self.groups else math.prod(shape[:self.axis % len(shape)])
        n = math.prod(shape) // max(rows, 1)
        largest = x.magnitude()
        compute = x.elem_type if self.stash_type is None else self.stash_type
        if not (self.epsilon > 0 and math.isfinite(largest) and _gamma(n + 4, compute) < 1):
            return False
        moments = TensorProto.DOUBLE if self.stash_type is None else self.stash_type
        delta = 4 * arith.accumulation_gamma(n + 4, moments) * largest * largest
        return self.nonneg_variance or self.epsilon > delta * 1.001

    def _margin(self, x: Tensor) -> Tensor:
        if self.stash_type is not None:
            return self._computed_margin(x)
        rows = self._rows(x.to(torch.float64), x.shape)
        n = rows.shape[1]
        var = rows.var(dim=1, unbiased=False, keepdim=True)
        delta = 4 * arith.accumulation_gamma(n + 4, TensorProto.DOUBLE) * (rows * rows).mean(1, keepdim=True)
        if self.nonneg_variance:
            delta = torch.zeros_like(delta)
        return (var + self.epsilon - delta).expand_as(rows).reshape(x.shape)

    def _computed_margin(self, x: Tensor) -> Tensor:
        """``E[x^2] - E[x]^2 + epsilon`` as the function body computes it, in the stash type."""
        rows = self._rows(x.to(torch_dtype(self.stash_type)), x.shape)
        mean = rows.mean(1, keepdim=True)
        var = (rows * rows).mean(1, keepdim=True) - mean * mean
        return (var + self.epsilon).to(torch.float64).expand_as(rows).reshape(x.shape)

    def triggered(self, inputs, outputs):
        return ~(self._margin(inputs[0]) > 0)  # NaN included

    def distance(self, inputs, outputs):
        return self._margin(inputs[0])

    def invalid_text(self, elem_type):
        return f"slice variance + {self.epsilon:g} <= its rounding error"


def _stashed(lo: Tensor, hi: Tensor, elem_type: int, stash_type: int | None) -> tuple[Tensor, Tensor, int, int]:
    """Row bounds, the type the statistics are computed in and the type a one-pass variance accumulates in: x's
    type and float64 (the kernels), or, with ``stash_type`` (a function body's), x cast to it and it for both."""
    if stash_type is None:
        return lo, hi, elem_type, TensorProto.DOUBLE
    if stash_type != TensorProto.DOUBLE:
        lo, hi = onto_grid(lo, hi, stash_type)
    return lo, hi, stash_type, stash_type


# ------------------------------------------------------------------------------ rules
def _layer_outputs(x: Interval, rows: int, epsilon: float, sums_in_double: bool = False,
                   nonneg_variance: bool = False, running_variance: bool = False,
                   stash_type: int | None = None) -> tuple[Tensor, Tensor, _Stats]:
    """Normalized bounds in x's shape; ``sums_in_double``: the runtime sums in float64 (LayerNormalization);
    ``stash_type``: x is cast to that type and every statistic, the one-pass variance included, is computed in it
    (GroupNormalization's function body)."""
    lo, hi = (t.to(torch.float64).reshape(rows, -1) for t in x.full())
    lo, hi, compute, moments = _stashed(lo, hi, x.elem_type, stash_type)
    z_lo, z_hi, st = _normalized(lo, hi, epsilon, compute, sums_in_double, nonneg_variance, running_variance,
                                 moments)
    return z_lo.reshape(x.shape), z_hi.reshape(x.shape), st


@register("LayerNormalization", since=17)
class LayerNormalization(OpRule):
    """Normalize over axes [axis, rank); Y = z * Scale + B; optional outputs Mean and InvStdDev. Rows shorter than
    16 elements are bounded as a running variance (see ``_RUNNING_VARIANCE_ROWS``)."""

    axis: int = -1
    epsilon: float = 1e-5
    stash_type: int = 1

    accumulates = True

    @property
    def hazards(self) -> tuple[Hazard, ...]:  # type: ignore[override]
        return (SliceVarianceHazard(self.epsilon, axis=self.axis, nonneg_variance=True), Overflow())

    def concrete(self, ctx: NodeContext, x, scale, bias=None):
        axis = self.axis % x.dim()
        dims = tuple(range(axis, x.dim()))
        wide = x.to(torch.float64)
        mean = wide.mean(dim=dims, keepdim=True)
        inv = torch.rsqrt(((wide - mean) ** 2).mean(dim=dims, keepdim=True) + self.epsilon)
        y = (wide - mean) * inv * scale.to(torch.float64)
        if bias is not None:
            y = y + bias.to(torch.float64)
        stash = torch.float32 if self.stash_type == 1 else x.dtype
        return y.to(x.dtype), mean.to(stash), inv.to(stash)

    def abstract(self, ctx: NodeContext, x, scale, bias=None):
        row = math.prod(x.shape[self.axis % len(x.shape):])
        return layer_norm_bounds(ctx, x, scale, bias, self.axis, self.epsilon, sums_in_double=True,
                                 running_variance=row < _RUNNING_VARIANCE_ROWS)


# onnxruntime 1.32's LayerNormalization takes a running (Welford) variance in float32 over rows shorter than this
# (measured: float32 rows of up to 7 elements and float16 rows of up to 15 match a float32 Welford pass bit for
# bit; longer rows match a far more accurate sum), and the two-pass bounds do not hold such a variance
_RUNNING_VARIANCE_ROWS = 16


def layer_norm_bounds(ctx: NodeContext, x: Interval, scale: Interval, bias: Interval | None, axis: int,
                      epsilon: float, sums_in_double: bool, running_variance: bool = False
                      ) -> tuple[Interval, Interval, Interval]:
    """Bounds of a layer normalization over the axes ``[axis, rank)`` whose runtime variance is never
    below 0 (onnxruntime's): the output, the mean and the inverse standard deviation (their type is
    the node's output 1, float32 when unknown). ``sums_in_double``: the runtime sums the mean in float64;
    ``running_variance``: it computes a running (Welford) variance, not a two-pass one (see :func:`_stats`)."""
    axis = axis % len(x.shape)
    rep = row_representatives(x, axis)
    rows = math.prod(rep.shape[:axis])
    z_lo, z_hi, st = _layer_outputs(rep, rows, epsilon, sums_in_double=sums_in_double, nonneg_variance=True,
                                    running_variance=running_variance)
    # z as it is: the affine step's result merges equal blocks (one merge, where two cost as much
    # as the affine arithmetic on a transformer's rows)
    z = Interval(z_lo, z_hi, tuple(tuple(range(n)) for n in z_lo.shape), tuple(z_lo.shape), x.elem_type)
    y = _affine(z, scale, bias)
    stat_shape = tuple(rep.shape[:axis]) + (1,) * (len(x.shape) - axis)
    stat_type = ctx.output_type(1, TensorProto.FLOAT)
    inv_lo, inv_hi = _inv_std(st, x.elem_type)
    mean = Interval.from_full(st.mean_lo.reshape(stat_shape), st.mean_hi.reshape(stat_shape), stat_type)
    inv = Interval.from_full(inv_lo.reshape(stat_shape), inv_hi.reshape(stat_shape), stat_type)
    return tuple(_spread_rows(iv, x, axis, ctx.budget) for iv in (y, mean, inv))


def row_representatives(x: Interval, axis: int) -> Interval:
    """``x`` with one row per block along each axis before ``axis``: rows of a block share bounds,
    so their normalization statistics (and outputs) do too."""
    for leading in range(axis):
        if len(x.splits[leading]) < x.shape[leading]:
            x = representatives(x, leading)
    return x


def _spread_rows(iv: Interval, like: Interval, axis: int, budget: int | None) -> Interval:
    """Back from representative rows to ``like``'s leading axes (each row block shares its bounds)."""
    if tuple(iv.shape[:axis]) == tuple(like.shape[:axis]):
        return iv
    shape = tuple(like.shape[:axis]) + tuple(iv.shape[axis:])
    return spread(iv, {a: like.splits[a] for a in range(axis)}, shape, budget)


@register("InstanceNormalization")
class InstanceNormalization(OpRule):
    """Normalize each (sample, channel) over its spatial axes; per-channel scale and B."""

    epsilon: float = 1e-5

    accumulates = True

    @property
    def hazards(self) -> tuple[Hazard, ...]:  # type: ignore[override]
        return (SliceVarianceHazard(self.epsilon, axis=2, nonneg_variance=True), Overflow())

    def concrete(self, ctx: NodeContext, x, scale, bias):
        dims = tuple(range(2, x.dim()))
        view = (1, -1) + (1,) * (x.dim() - 2)
        wide = x.to(torch.float64)
        mean = wide.mean(dim=dims, keepdim=True)
        z = (wide - mean) * torch.rsqrt(((wide - mean) ** 2).mean(dim=dims, keepdim=True) + self.epsilon)
        return (z * scale.to(torch.float64).reshape(view) + bias.to(torch.float64).reshape(view)).to(x.dtype)

    def abstract(self, ctx: NodeContext, x, scale, bias):
        rank = len(x.shape)
        z_lo, z_hi, st = _layer_outputs(x, x.shape[0] * x.shape[1], self.epsilon, nonneg_variance=True)
        z = Interval.from_full(z_lo, z_hi, x.elem_type, ctx.budget)
        y = _affine(z, _channel(scale, rank), _channel(bias, rank))
        return _with_shift_error(y, x, st, scale, bias, ctx.budget)


def _with_shift_error(y: Interval, x: Interval, st: _Stats, scale: Interval, bias: Interval,
                      budget: int | None) -> Interval:
    """``y`` (the bounds of ``(x - m) * inv * scale + B``) widened to what onnxruntime's InstanceNormalization
    computes: ``x * cs + (B - m * cs)``, ``cs = inv * scale`` rounded first, ``m`` the computed mean. The two
    products cancel; their rounding is an absolute error the centred form does not have:

    * A row that is not all equal to ``m``: some ``|x_i - m| = D > 0`` is at least half a unit of ``|m|`` (two
      distinct floats), and the two-pass variance is at least ``(1 - g) D^2 / n``, so ``D cs <= K |scale|``
      with ``K = sqrt(n / (1 - g))``: each product is within ``(2 + u) K |scale|`` of exact, and so is the
      shift's difference; with ``P`` the largest ``|x| cs``, also within ``u P`` each.
    * A row all equal to ``m``: both products are the same ``P``; ``fl(B - P) + P`` is within
      ``min(u (|B| + P), |B|)`` of ``B`` (``-P`` is a float as near to ``B - P``: constant rows of magnitude 1e6
      give 0 for B = 0.5), and ``P`` infinite makes it ``inf - inf``, NaN (magnitude 1e36, where ``cs``
      reaches ``1 / sqrt(epsilon)``): unbounded there, and the Overflow hazard reports it."""
    rows, n = x.shape[0] * x.shape[1], math.prod(x.shape[2:])
    _, inv_hi = _inv_std(st, x.elem_type)
    u = _unit(x.elem_type)
    s_mag, b_mag = _row_magnitudes(scale, x.shape[0]), _row_magnitudes(bias, x.shape[0])
    product = arith.nan_to(st.largest * s_mag * inv_hi * (1 + 4 * u), torch.inf)  # P; 0 * inf: a zero scale
    spread = math.sqrt(n / (1 - _gamma(n + 4, x.elem_type))) * (1 + 8 * u) * s_mag  # K |scale|
    unequal = torch.minimum(3 * u * product, (6 + u) * spread * (1 + 4 * u)) + u * b_mag
    equal = torch.minimum(u * (b_mag + product), b_mag) * (1 + 2 * u)
    error = torch.maximum(unequal, equal) * (1 + 2 * u)
    limit = float_facts(TensorProto.DOUBLE if x.elem_type == TensorProto.DOUBLE else TensorProto.FLOAT).max
    error = torch.where(product < limit, error, torch.full_like(error, torch.inf))
    y_lo, y_hi = (t.to(torch.float64).reshape(rows, -1) for t in y.full())
    return Interval.from_full(arith.nan_to(y_lo - error, -torch.inf).reshape(x.shape),
                              arith.nan_to(y_hi + error, torch.inf).reshape(x.shape), y.elem_type, budget)


def _row_magnitudes(channel: Interval, samples: int) -> Tensor:
    """Per (sample, channel) row, the largest magnitude of a per-channel operand: a (samples * C, 1) column."""
    lo, hi = (t.to(torch.float64).reshape(-1) for t in channel.full())
    return torch.maximum(lo.abs(), hi.abs()).repeat(samples).reshape(-1, 1)


@register("GroupNormalization", since=18)
class GroupNormalization(OpRule):
    """Normalize each (sample, group of channels); scale/bias per group (opset 18) or channel (21).

    onnxruntime has no kernel for it: it runs the operator's function body, which casts x to ``stash_type``
    (float32 by default, for a float64 x too) and takes the one-pass variance ``E[x^2] - E[x]^2`` there: on a
    near-constant group of large values it cancels below ``-epsilon`` (NaN), the hazard."""

    epsilon: float = 1e-5
    num_groups: int = 0
    stash_type: int = TensorProto.FLOAT

    accumulates = True

    def __post_init__(self) -> None:
        if self.num_groups <= 0:
            raise UnsupportedOperator("GroupNormalization: num_groups must be positive")
        if self.stash_type not in (TensorProto.FLOAT, TensorProto.DOUBLE):
            raise UnsupportedOperator(f"GroupNormalization: stash_type {self.stash_type} (float32 and float64 are "
                                      "supported)")

    @property
    def hazards(self) -> tuple[Hazard, ...]:  # type: ignore[override]
        return (SliceVarianceHazard(self.epsilon, groups=self.num_groups, stash_type=self.stash_type), Overflow())

    def _repeat(self, ctx: NodeContext, channels: int) -> int:
        return channels // self.num_groups if ctx.opset < 21 else 1

    def concrete(self, ctx: NodeContext, x, scale, bias):
        """The function body: statistics and the normalisation in the stash type, the affine step in x's."""
        n, c = x.shape[:2]
        rows = x.to(torch_dtype(self.stash_type)).reshape(n * self.num_groups, -1)
        mean = rows.mean(dim=1, keepdim=True)
        var = (rows * rows).mean(dim=1, keepdim=True) - mean * mean
        z = ((rows - mean) / torch.sqrt(var + self.epsilon)).reshape(x.shape).to(x.dtype)
        view = (1, -1) + (1,) * (x.dim() - 2)
        repeat = self._repeat(ctx, c)
        s, b = (t.to(x.dtype).repeat_interleave(repeat).reshape(view) for t in (scale, bias))
        return z * s + b

    def abstract(self, ctx: NodeContext, x, scale, bias):
        rank, repeat = len(x.shape), self._repeat(ctx, x.shape[1])
        z_lo, z_hi, _ = _layer_outputs(x, x.shape[0] * self.num_groups, self.epsilon, stash_type=self.stash_type)
        z = Interval.from_full(z_lo, z_hi, x.elem_type, ctx.budget)
        return _affine(z, _channel(scale, rank, repeat), _channel(bias, rank, repeat))
