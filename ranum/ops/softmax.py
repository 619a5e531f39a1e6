"""Softmax, LogSoftmax and Hardmax, in their opset 13 form (one axis, default -1) and their opset
1-12 form (axis default 1, input coerced to 2-D ``[prod(shape[:axis]), prod(shape[axis:])]``).

Bounds. For element ``i`` of a row with element bounds ``[l_j, u_j]``, softmax is increasing in
``x_i`` and decreasing in every other ``x_j``, so

    lower_i = sigmoid(l_i - LSE_{j != i} u_j),   upper_i = sigmoid(u_i - LSE_{j != i} l_j)

(``LSE`` = log-sum-exp), and log-softmax is ``logsigmoid`` of the same arguments. The
leave-one-out LSE is computed in float64 from prefix and suffix ``logcumsumexp`` (stable for huge
negative masks such as -3.4e38 and for -inf / +inf bounds) directly on the block grid along the
axis: a block of ``c`` equal elements counts ``c`` times (``c - 1`` times for its own members).
A row of point intervals gives the exact real softmax.

Float rounding (onnxruntime: subtract the row maximum, exp, sum, scale): ``x_i - max`` is rounded
relative to its size, exp flushes results below the smallest normal to 0, and the sum of ``n``
terms accumulates error. ``_softmax_error`` turns that into a relative error per element plus an
absolute one; 16-bit tensors are evaluated in float32. Softmax outputs are clamped into [0, 1],
log-softmax outputs into [-inf, 0].
"""

from __future__ import annotations

import math
from dataclasses import replace

import torch
from onnx import TensorProto
from torch import Tensor
from torch.nn import functional

from ranum.domain import arith
from ranum.domain.dtypes import FloatFacts, float_facts
from ranum.domain.interval import Interval
from ranum.errors import UnsupportedOperator
from ranum.ops._base import HULLS, NodeContext, OpRule
from ranum.ops.hazards import Hazard, InfiniteRow, Overflow
from ranum.ops.registry import register

__all__ = ["Hardmax", "Hardmax1", "LogSoftmax", "LogSoftmax1", "Softmax", "Softmax1"]

_SOFTMAX_NAN = InfiniteRow(
    name="softmax-infinite-input",
    description="softmax turns a row holding +inf, or only -inf, into NaN (subtracting the row maximum "
                "gives inf - inf)",
)
_LOG_SOFTMAX_NAN = InfiniteRow(
    name="log-softmax-infinite-input",
    description="log-softmax turns a row holding +inf, or only -inf, into NaN (subtracting the row "
                "maximum gives inf - inf)",
)
_LOG_SOFTMAX_UNDERFLOW = Overflow(
    name="log-softmax-underflow",
    description="log-softmax gives -inf when an input lies further below its row maximum than the "
                "largest finite value",
)
Bounds = tuple[Tensor, Tensor]


# ----------------------------------------------------------------------------- row geometry
def _normalise_axis(axis: int, rank: int, op: str) -> int:
    if rank == 0 or not -rank <= axis < rank:
        raise UnsupportedOperator(f"{op}: axis {axis} is out of range for a rank-{rank} input")
    return axis % rank


def _block_counts(iv: Interval, axis: int) -> Tensor:
    """Number of elements of each block along ``axis``, shaped to broadcast on the block grid."""
    starts = list(iv.splits[axis]) + [iv.shape[axis]]
    counts = torch.tensor([b - a for a, b in zip(starts, starts[1:])], dtype=torch.float64)
    view = [1] * len(iv.shape)
    view[axis] = -1
    return counts.reshape(view)


def _shift(t: Tensor, dim: int, forward: bool) -> Tensor:
    """Shift by one along ``dim`` (toward higher indices if ``forward``), filling with -inf."""
    n = t.shape[dim]
    pad = torch.full_like(t.narrow(dim, 0, 1), -torch.inf)
    if forward:
        return torch.cat([pad, t.narrow(dim, 0, n - 1)], dim)
    return torch.cat([t.narrow(dim, 1, n - 1), pad], dim)


def _leave_one_out_lse(v: Tensor, counts: Tensor, dim: int) -> Tensor:
    """log(sum over the other elements of the row of exp(v)), per block along ``dim``, for ``v`` at
    most 0 (taken relative to the row maximum; :func:`_leave_one_out_scan` otherwise).

    Every block but the row's first maximum keeps the maximum's term (1) among its others, so its
    sum is the row total less its own term, at least 1: the subtraction loses at most
    ``gamma_m * total + u <= (n m + 1) u`` of it, relatively (n elements in m blocks; see
    :func:`_lse_error`). The first maximum's sum is formed without it, from non-negative terms
    taken relative to their own maximum.
    """
    if bool((v > 0).any()):
        return _leave_one_out_scan(v, counts, dim)
    terms = v.exp()
    others = ((terms * counts).sum(dim, keepdim=True) - terms).clamp(min=0.0).log()
    # the first maximum: its others relative to their own maximum (they may all underflow against it)
    top = v.argmax(dim, keepdim=True)
    weights = counts.expand_as(v).clone()
    weights.scatter_(dim, top, weights.gather(dim, top) - 1)
    rest = v.masked_fill(weights == 0, -torch.inf)
    second = rest.amax(dim, keepdim=True)
    second = torch.where(torch.isfinite(second), second, torch.zeros_like(second))
    rest_lse = ((rest - second).exp() * weights).sum(dim, keepdim=True).log() + second
    return others.scatter(dim, top, rest_lse)


def _leave_one_out_scan(v: Tensor, counts: Tensor, dim: int) -> Tensor:
    """:func:`_leave_one_out_lse` by prefix and suffix log-sum-exp scans (any ``v``, +inf included)."""
    w = v + counts.log()
    before = _shift(torch.logcumsumexp(w, dim), dim, forward=True)
    after = _shift(torch.logcumsumexp(w.flip(dim), dim).flip(dim), dim, forward=False)
    others = torch.logaddexp(before, after)
    own = torch.where(counts > 1, v + (counts - 1).clamp(min=1).log(), torch.full_like(v, -torch.inf))
    return torch.logaddexp(others, own)


def _lse_error(counts: Tensor, dim: int) -> float:
    """A bound of the absolute float64 error of :func:`_leave_one_out_lse` (and of the gap built on it)."""
    n, m = float(counts.sum()), counts.shape[dim]
    return 2 * (n * m + 4) * 2.0**-53


def _gap(x: Tensor, v: Tensor, counts: Tensor, dim: int, lower: bool) -> Tensor:
    """``x - log(sum over the other elements of exp(v))``, both taken relative to the row maximum of
    ``v`` so that huge magnitudes (-3.4e38 masks) do not swallow the element counts; moved down
    (``lower``) or up by the float64 error of the sum."""
    ref = v.amax(dim=dim, keepdim=True)
    ref = torch.where(torch.isfinite(ref), ref, torch.zeros_like(ref))
    shifted = x - ref
    others = _leave_one_out_lse(v - ref, counts, dim)
    # float64 rounds terms as large as a -3.4e38 mask by up to 2**-53 of themselves (about 4e22):
    # x - ref, each v - ref and the log-sum-exp's own magnitude. A row of such masks, whose real gap is
    # the log of an element count, then only keeps the bound that covers every gap.
    big = arith.finite_abs(shifted) + arith.finite_abs(others)
    slack = _lse_error(counts, dim) + 2.0**-50 * big
    return shifted - others + (-slack if lower else slack)


# ----------------------------------------------------------------------------- float error model
def _compute_facts(elem_type: int) -> FloatFacts:
    """Precision of onnxruntime's evaluation (float32 for 16-bit types)."""
    return float_facts(TensorProto.DOUBLE if elem_type == TensorProto.DOUBLE else TensorProto.FLOAT)


def _softmax_error(lo: Tensor, hi: Tensor, dim: int, n: int, elem_type: int) -> tuple[Tensor, Tensor, float]:
    """Relative error of each exp term, of the row sum, and the absolute (flush-to-zero) error.

    ``exp(x_i - max)`` is off by ``eps * |x_i - max| / 2`` (rounding of the difference) plus a
    few eps; a term below the float range (difference past ``cap``) only adds absolute error.
    """
    facts = _compute_facts(elem_type)
    cap = -math.log(facts.subnormal)
    top = hi.amax(dim=dim, keepdim=True)
    spread = arith.nan_to(top - lo, cap).clamp(min=0.0, max=cap)
    term = facts.eps * (spread / 2 + 2)
    row_sum = facts.eps * (spread.amax(dim=dim, keepdim=True) / 2 + 2) \
        + arith.accumulation_gamma(n, elem_type) + n * facts.tiny
    return term, row_sum, 2 * facts.tiny


# ----------------------------------------------------------------------------- block-wise kernels
def _softmax_bounds(lo: Tensor, hi: Tensor, counts: Tensor, dim: int, n: int, elem_type: int) -> Bounds:
    lower = arith.nan_to(torch.sigmoid(_gap(lo, hi, counts, dim, lower=True)), 0.0)
    upper = arith.nan_to(torch.sigmoid(_gap(hi, lo, counts, dim, lower=False)), 1.0)
    term, row_sum, absolute = _softmax_error(lo, hi, dim, n, elem_type)
    rel = term + row_sum
    return (lower * (1 - rel) - absolute).clamp(0.0, 1.0), (upper * (1 + rel) + absolute).clamp(0.0, 1.0)


def _log_softmax_bounds(lo: Tensor, hi: Tensor, counts: Tensor, dim: int, n: int, elem_type: int) -> Bounds:
    lower = arith.nan_to(functional.logsigmoid(_gap(lo, hi, counts, dim, lower=True)), -torch.inf)
    upper = arith.nan_to(functional.logsigmoid(_gap(hi, lo, counts, dim, lower=False)), 0.0)
    _, row_sum, _ = _softmax_error(lo, hi, dim, n, elem_type)
    eps = _compute_facts(elem_type).eps
    # |x_i - max| <= |y_i| and log(sum) <= |y_i|: rounding of both, of the log and of the difference
    absolute = 2 * eps + 1.01 * row_sum
    return lower - 2 * eps * lower.abs() - absolute, (upper + 2 * eps * upper.abs() + absolute).clamp(max=0.0)


def _hardmax_bounds(lo: Tensor, hi: Tensor, counts: Tensor, dim: int, n: int, elem_type: int) -> Bounds:
    """1 is possible where u_i >= max_{j != i} l_j, certain where l_i > max_{j != i} u_j."""
    rival_low = _leave_one_out_max(lo, counts, dim)
    rival_high = _leave_one_out_max(hi, counts, dim)
    lower = (lo > rival_high).to(torch.float64)
    upper = (hi >= rival_low).to(torch.float64)
    return lower, upper


def _leave_one_out_max(v: Tensor, counts: Tensor, dim: int) -> Tensor:
    before = _shift(torch.cummax(v, dim).values, dim, forward=True)
    after = _shift(torch.cummax(v.flip(dim), dim).values.flip(dim), dim, forward=False)
    own = torch.where(counts > 1, v, torch.full_like(v, -torch.inf))
    return torch.maximum(torch.maximum(before, after), own)


# ----------------------------------------------------------------------------- rule plumbing
class _RowRule(OpRule):
    """Shared driver: along one axis on the block grid, or along the coerced 2-D rows (opset < 13)."""

    axis: int = -1
    coerce_2d = False

    def _kernel(self, lo: Tensor, hi: Tensor, counts: Tensor, dim: int, n: int, elem_type: int) -> Bounds:
        raise NotImplementedError

    def _torch(self, x: Tensor, dim: int) -> Tensor:
        raise NotImplementedError

    def concrete(self, ctx: NodeContext, x: Tensor) -> Tensor:
        axis = _normalise_axis(self.axis, x.dim(), self.op_type)
        if not self.coerce_2d:
            return self._torch(x, axis)
        rows = x.reshape(math.prod(x.shape[:axis]), -1)
        return self._torch(rows, 1).reshape(x.shape)

    def abstract(self, ctx: NodeContext, x: Interval) -> Interval:
        rank = len(x.shape)
        axis = _normalise_axis(self.axis, rank, self.op_type)
        n = math.prod(x.shape[axis:]) if self.coerce_2d else x.shape[axis]
        if n == 0 or x.numblocks == 0:
            return x
        if not self.coerce_2d or axis == rank - 1:
            lo, hi = x.lower.to(torch.float64), x.upper.to(torch.float64)
            return x.with_bounds(*self._kernel(lo, hi, _block_counts(x, axis), axis, n, x.elem_type))
        full_lo, full_hi = x.full()
        rows = (math.prod(x.shape[:axis]), n)
        lo, hi = full_lo.reshape(rows).to(torch.float64), full_hi.reshape(rows).to(torch.float64)
        lower, upper = self._kernel(lo, hi, torch.ones(1, n, dtype=torch.float64), 1, n, x.elem_type)
        return Interval.from_full(lower.reshape(x.shape), upper.reshape(x.shape), x.elem_type, ctx.budget)


def _in_compute_precision(fn, x: Tensor, dim: int) -> Tensor:
    """Apply ``fn`` in float32 for 16-bit tensors (as onnxruntime does), else in the tensor's type."""
    if x.dtype in (torch.float16, torch.bfloat16):
        return fn(x.to(torch.float32), dim).to(x.dtype)
    return fn(x, dim)


class _Softmax(_RowRule):
    accumulates = True  # a row sum; also keeps exact rows on the abstract path (absolute error)
    ulps = 2.0
    output_range = (0.0, 1.0)
    unknown_shapes = HULLS

    def without_shapes(self, ctx: NodeContext, x: Interval) -> Interval | None:
        """Rows of a length known only at run time: probabilities, where x is finite (its row hazards are
        checked on its hull)."""
        hull = x.hull()
        if hull is None or not hull.is_finite:
            return None
        bounds = torch.tensor([0.0, 1.0], dtype=torch.float64)
        return Interval.create(bounds[0], bounds[1], (), None, x.elem_type)

    def _kernel(self, lo, hi, counts, dim, n, elem_type):
        return _softmax_bounds(lo, hi, counts, dim, n, elem_type)

    def _torch(self, x, dim):
        return _in_compute_precision(torch.softmax, x, dim)

    @property
    def hazards(self) -> tuple[Hazard, ...]:
        return (_along_rows(_SOFTMAX_NAN, self),)


class _LogSoftmax(_RowRule):
    accumulates = True
    output_range = (-torch.inf, 0.0)

    def _kernel(self, lo, hi, counts, dim, n, elem_type):
        return _log_softmax_bounds(lo, hi, counts, dim, n, elem_type)

    def _torch(self, x, dim):
        return _in_compute_precision(torch.log_softmax, x, dim)

    @property
    def hazards(self) -> tuple[Hazard, ...]:
        return (_along_rows(_LOG_SOFTMAX_NAN, self), _LOG_SOFTMAX_UNDERFLOW)


def _along_rows(hazard: InfiniteRow, rule: _RowRule) -> InfiniteRow:
    """``hazard`` with the rows of this node (its axis, and the 2-D coercion before opset 13)."""
    return replace(hazard, axis=rule.axis, to_end=rule.coerce_2d)


class _Hardmax(_RowRule):
    rounds = False

    def _kernel(self, lo, hi, counts, dim, n, elem_type):
        return _hardmax_bounds(lo, hi, counts, dim, n, elem_type)

    def _torch(self, x, dim):
        index = torch.argmax(x, dim=dim, keepdim=True)  # first maximum, as ONNX requires
        return torch.zeros_like(x).scatter(dim, index, torch.ones_like(index, dtype=x.dtype))


@register("Softmax", since=13)
class Softmax(_Softmax):
    """exp(x_i) / sum_j exp(x_j) along ``axis`` (default -1)."""

    axis: int = -1


@register("Softmax")
class Softmax1(_Softmax):
    """Softmax before opset 13: rows of the input coerced to 2-D at ``axis`` (default 1)."""

    axis: int = 1
    coerce_2d = True


@register("LogSoftmax", since=13)
class LogSoftmax(_LogSoftmax):
    """x_i - log(sum_j exp(x_j)) along ``axis`` (default -1)."""

    axis: int = -1


@register("LogSoftmax")
class LogSoftmax1(_LogSoftmax):
    """LogSoftmax before opset 13: rows coerced to 2-D at ``axis`` (default 1)."""

    axis: int = 1
    coerce_2d = True


@register("Hardmax", since=13)
class Hardmax(_Hardmax):
    """1 at the first maximum along ``axis`` (default -1), 0 elsewhere."""

    axis: int = -1


@register("Hardmax")
class Hardmax1(_Hardmax):
    """Hardmax before opset 13: rows coerced to 2-D at ``axis`` (default 1)."""

    axis: int = 1
    coerce_2d = True
