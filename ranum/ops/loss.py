"""Losses: NegativeLogLikelihoodLoss and SoftmaxCrossEntropyLoss (opset 12+).

``loss[n, d] = -x[n, t, d] * w[t]`` for the target class ``t = target[n, d]`` (0 where ``t`` is
``ignore_index``; ``w = 1`` without a weight input), then reduced: ``none``, ``sum``, or ``mean`` =
``sum(loss) / sum(w[t])`` over the non-ignored targets. SoftmaxCrossEntropyLoss applies this to
``log_softmax(scores, axis=1)`` and can also output those log-probabilities.

Invariants: bounds contain every onnxruntime result (which evaluates the ONNX function bodies:
a max-shifted LogSoftmax, GatherElements, products and ReduceSum) for inputs in the intervals.
Targets are only read as classes in [0, C-1] or ``ignore_index`` (anything else is a runtime
error, not a value). A mean with non-negative weights is a weighted average of the selected
``-x`` values, so it is bounded by their hull, not by a quotient of sums. The mean's denominator
can be 0 (every target ignored, or only zero weights selected): 0/0 is NaN, a declared hazard.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from onnx import TensorProto
from torch import Tensor

from ranum.domain import arith
from ranum.domain.dtypes import float_facts, type_name
from ranum.domain.interval import Interval
from ranum.errors import InconsistentShapes, UnsupportedOperator
from ranum.ops._base import NodeContext, OpRule
from ranum.ops.hazards import Hazard, HazardHit, InfiniteRow, Overflow
from ranum.ops.reduce import float_sum_bounds, sum_gamma
from ranum.ops.registry import register

__all__ = ["NegativeLogLikelihoodLoss", "SoftmaxCrossEntropyLoss", "ZeroWeightSum"]

INF = math.inf
_REDUCTIONS = ("none", "sum", "mean")


# ------------------------------------------------------------------------------------ concrete
def _nll(x: Tensor, target: Tensor, weight: Tensor | None, reduction: str, ignore_index: int | None) -> Tensor:
    """Exact NegativeLogLikelihoodLoss on tensors."""
    n, c = x.shape[0], x.shape[1]
    x3, t2 = x.reshape(n, c, -1), target.reshape(n, -1).to(torch.int64)
    ignored = t2 == ignore_index if ignore_index is not None else torch.zeros_like(t2, dtype=torch.bool)
    safe = torch.where(ignored, torch.zeros_like(t2), t2)
    picked = -x3.gather(1, safe.unsqueeze(1)).squeeze(1)
    if weight is not None:
        w = torch.where(ignored, torch.zeros((), dtype=x.dtype), weight[safe])
    else:
        w = (~ignored).to(x.dtype)
    loss = torch.where(ignored, torch.zeros((), dtype=x.dtype), picked * w)
    if reduction == "none":
        return loss.reshape(target.shape)
    if reduction == "sum":
        return loss.sum()
    return loss.sum() / w.sum()


def _den(target: Tensor, weight: Tensor | None, ignore_index: int | None, dtype: torch.dtype) -> Tensor:
    """Concrete denominator of the mean: the sum of the selected weights."""
    t = target.reshape(-1).to(torch.int64)
    ignored = t == ignore_index if ignore_index is not None else torch.zeros_like(t, dtype=torch.bool)
    safe = torch.where(ignored, torch.zeros_like(t), t)
    w = weight.to(dtype)[safe] if weight is not None else torch.ones(t.shape, dtype=dtype)
    return torch.where(ignored, torch.zeros_like(w), w).sum()


# ------------------------------------------------------------------------------------ abstract
@dataclass(frozen=True)
class _Selected:
    """Per (n, d) bounds of the picked loss term and of its weight, before the reduction."""

    loss_lo: Tensor
    loss_hi: Tensor
    w_lo: Tensor
    w_hi: Tensor
    value_lo: Tensor  # hull of -x over the classes a non-ignored target can select (inf/-inf if none)
    value_hi: Tensor
    w_floor: Tensor  # a positive sum of selected weights is at least this (0: arbitrarily small)


def _select(x_lo: Tensor, x_hi: Tensor, target: Interval, weight: Interval | None,
            ignore_index: int | None) -> _Selected:
    """Bounds of ``-x[n, t, d] * w[t]`` and ``w[t]`` over every target value the interval allows."""
    n, c = x_lo.shape[0], x_lo.shape[1]
    t_lo, t_hi = (b.reshape(n, 1, -1) for b in target.full())
    cls = torch.arange(c).reshape(1, c, 1)
    valid = (cls >= t_lo) & (cls <= t_hi)
    can_ignore = torch.zeros_like(t_lo[:, 0], dtype=torch.bool)
    if ignore_index is not None:
        can_ignore = ((t_lo <= ignore_index) & (ignore_index <= t_hi))[:, 0]
        valid = valid & (cls != ignore_index)
    v_lo, v_hi = -x_hi.reshape(n, c, -1), -x_lo.reshape(n, c, -1)
    if weight is None:
        w_lo = w_hi = torch.ones(1, c, 1, dtype=torch.float64)
        p_lo, p_hi = v_lo, v_hi
    else:
        w_lo, w_hi = (b.to(torch.float64).reshape(1, c, 1) for b in weight.full())
        p_lo, p_hi = arith.mul(v_lo, v_hi, w_lo, w_hi)
    loss_lo, loss_hi = _hull(p_lo, p_hi, valid, can_ignore)
    wt_lo, wt_hi = _hull(w_lo.expand_as(v_lo), w_hi.expand_as(v_hi), valid, can_ignore)
    val_lo = torch.where(valid, v_lo, torch.full_like(v_lo, INF)).amin(dim=1)
    val_hi = torch.where(valid, v_hi, torch.full_like(v_hi, -INF)).amax(dim=1)
    floor = torch.where(w_lo > 0, w_lo, torch.where(w_hi > 0, 0.0, INF)).expand_as(v_lo)
    w_floor = torch.where(valid, floor, torch.full_like(floor, INF)).amin()
    return _Selected(loss_lo, loss_hi, wt_lo, wt_hi, val_lo, val_hi, w_floor)


def _hull(lo: Tensor, hi: Tensor, valid: Tensor, zero: Tensor) -> tuple[Tensor, Tensor]:
    """Hull over the valid classes (axis 1), plus 0 where the target can be ignored."""
    h_lo = torch.where(valid, lo, torch.full_like(lo, INF)).amin(dim=1)
    h_hi = torch.where(valid, hi, torch.full_like(hi, -INF)).amax(dim=1)
    h_lo = torch.where(zero, h_lo.clamp(max=0.0), h_lo)
    h_hi = torch.where(zero, h_hi.clamp(min=0.0), h_hi)
    empty = h_lo > h_hi  # no class can be selected: a runtime error, keep a well-formed interval
    return torch.where(empty, torch.zeros_like(h_lo), h_lo), torch.where(empty, torch.zeros_like(h_hi), h_hi)


def _total(lo: Tensor, hi: Tensor, elem_type: int, products: bool) -> tuple[Tensor, Tensor]:
    """Bounds of the float sum of every element."""
    flat_lo, flat_hi = lo.reshape(-1), hi.reshape(-1)
    one = torch.ones(1, dtype=torch.float64)
    s_lo, s_hi = float_sum_bounds(flat_lo, flat_hi, one, (0,), flat_lo.numel(), elem_type, products)
    return s_lo.reshape(()), s_hi.reshape(())


def _mean(sel: _Selected, weighted: bool, elem_type: int) -> tuple[Tensor, Tensor]:
    """Bounds of sum(w[t] * -x) / sum(w[t]) (NaN, not bounded, when the denominator is 0)."""
    count = sel.loss_lo.numel()
    d_lo, d_hi = _total(sel.w_lo, sel.w_hi, elem_type, False)
    if bool((sel.w_lo < 0).any()):  # signed weights: a quotient of the two sums
        n_lo, n_hi = _total(sel.loss_lo, sel.loss_hi, elem_type, weighted)
        return arith.mul(n_lo, n_hi, *arith.reciprocal(d_lo, d_hi))
    m_lo, m_hi = sel.value_lo.amin(), sel.value_hi.amax()
    if bool(m_lo > m_hi):  # every target is ignored: always 0/0
        return torch.tensor(-INF, dtype=torch.float64), torch.tensor(INF, dtype=torch.float64)
    facts = float_facts(elem_type)
    gamma = sum_gamma(count, facts.eps) + facts.eps
    size = torch.maximum(m_lo.abs(), m_hi.abs())
    slack = gamma * size
    if weighted:  # products can underflow; a positive denominator is at least one positive weight
        floor = torch.maximum(d_lo, sel.w_floor) * (1.0 - gamma)
        slack = slack + count * facts.subnormal / floor
    lo, hi = m_lo - slack, m_hi + slack
    lo = torch.minimum(lo / (1.0 + gamma), lo / (1.0 - gamma))
    hi = torch.maximum(hi / (1.0 + gamma), hi / (1.0 - gamma))
    # the runtime divides a float sum: where the positive (negative) terms can add up past the largest
    # value, that sum, and the mean, is +inf (-inf)
    limit = arith.accumulator_facts(elem_type).max / (1.0 + gamma)
    hi = torch.where(sel.loss_hi.clamp(min=0.0).sum() > limit, torch.full_like(hi, INF), hi)
    lo = torch.where((-sel.loss_lo).clamp(min=0.0).sum() > limit, torch.full_like(lo, -INF), lo)
    return arith.nan_to(lo, -INF), arith.nan_to(hi, INF)


def _reduce(sel: _Selected, reduction: str, weighted: bool, shape: Sequence[int], elem_type: int,
            budget: int) -> Interval:
    if reduction == "none":
        return Interval.from_full(sel.loss_lo.reshape(tuple(shape)), sel.loss_hi.reshape(tuple(shape)), elem_type,
                                  budget)
    if reduction == "sum":
        lo, hi = _total(sel.loss_lo, sel.loss_hi, elem_type, weighted)
    else:
        lo, hi = _mean(sel, weighted, elem_type)
    return Interval.create(lo, hi, (), (), elem_type)


# ------------------------------------------------------------------------------------ hazard
@dataclass(frozen=True)
class ZeroWeightSum(Hazard):
    """reduction="mean": the sum of the selected weights (the count of non-ignored targets without
    a weight input) can be 0, and the mean is 0/0 = NaN. Inspects target (1) and weight (2)."""

    name: str = "mean-zero-weight-sum"
    description: str = "mean loss divides by a sum of selected weights that can be 0 (all targets ignored or " \
                        "zero-weighted)"
    kind: str = "forward"
    operand: int = 1
    ignore_index: int | None = None

    def operand_name(self, inputs: Sequence[str], outputs: Sequence[str]) -> str:
        return inputs[2] if len(inputs) > 2 and inputs[2] else inputs[1]

    def check(self, inputs, outputs):
        scores, target = inputs[0], inputs[1]
        weight = inputs[2] if len(inputs) > 2 else None
        if scores is None or target is None or target.numblocks == 0:
            return None
        x_lo = torch.zeros(scores.shape, dtype=torch.float64)
        sel = _select(x_lo, x_lo, target, weight, self.ignore_index)
        d_lo, d_hi = _total(sel.w_lo, sel.w_hi, scores.elem_type, False)
        if not bool((d_lo <= 0) & (d_hi >= 0)):
            return None
        return HazardHit(bool((d_lo == 0) & (d_hi == 0)), float(d_lo), float(d_hi))

    def triggered(self, inputs, outputs):
        weight = inputs[2] if len(inputs) > 2 else None
        return _den(inputs[1], weight, self.ignore_index, inputs[0].dtype) == 0

    def distance(self, inputs, outputs):
        weight = inputs[2] if len(inputs) > 2 else None
        return _den(inputs[1], weight, self.ignore_index, torch.float64).abs()

    def invalid_text(self, elem_type):
        return "sum of selected weights = 0"


# ------------------------------------------------------------------------------------ rules
@dataclass(frozen=True)
class _Loss(OpRule):
    """Shared attributes; the hazards of an instance depend on reduction and ignore_index."""

    ignore_index: int | None = None
    reduction: str = "mean"
    accumulates = True

    def __post_init__(self) -> None:
        if self.reduction not in _REDUCTIONS:
            raise UnsupportedOperator(f"{self.op_type}: unknown reduction {self.reduction!r}")
        own = tuple(h for h in type(self).hazards if not isinstance(h, ZeroWeightSum))
        if self.reduction == "mean":
            own = own + (ZeroWeightSum(ignore_index=self.ignore_index),)
        object.__setattr__(self, "hazards", own)  # frozen: derived, per-instance declaration

    def _loss(self, ctx: NodeContext, x_lo: Tensor, x_hi: Tensor, target: Interval, weight: Interval | None,
              elem_type: int) -> Interval:
        expected = tuple(x_lo.shape[:1]) + tuple(x_lo.shape[2:])
        if target.elem_type not in (TensorProto.INT32, TensorProto.INT64) or tuple(target.shape or ()) != expected:
            raise InconsistentShapes(f"{self.op_type}: the target must hold int32 or int64 class indices of shape "
                                     f"{expected} (the scores' without their class axis), got "
                                     f"{type_name(target.elem_type)} of shape {target.shape}")
        sel = _select(x_lo, x_hi, target, weight, self.ignore_index)
        return _reduce(sel, self.reduction, weight is not None, target.shape, elem_type, ctx.budget)


@register("NegativeLogLikelihoodLoss", since=12)
class NegativeLogLikelihoodLoss(_Loss):
    """loss = -input[n, target, d] * weight[target], reduced by none / sum / (weighted) mean."""

    hazards = (Overflow(), ZeroWeightSum())

    def concrete(self, ctx: NodeContext, x: Tensor, target: Tensor, weight: Tensor | None = None) -> Tensor:
        return _nll(x, target, weight, self.reduction, self.ignore_index)

    def abstract(self, ctx: NodeContext, x: Interval, target: Interval, weight: Interval | None = None) -> Interval:
        lo, hi = x.full()
        return self._loss(ctx, lo, hi, target, weight, x.elem_type)


# the loss can be infinite: an overflow, or a target class whose score can be -inf (a masked class chosen as
# the target: its log-probability is -inf), finite scores or not
_INFINITE_LOSS = Overflow(name="infinite-loss", finite_operands=False,
                          description="the loss can be infinite (an overflow, or a target whose score can be -inf)")


@register("SoftmaxCrossEntropyLoss", since=12)
class SoftmaxCrossEntropyLoss(_Loss):
    """NegativeLogLikelihoodLoss of log_softmax(scores, axis=1); second output: the log-probabilities."""

    # a -inf score beside finite ones (a masked class) is harmless for log_softmax, unless it is the target's
    hazards = (InfiniteRow(axis=1, description="a row of scores holding +inf, or only -inf, makes log_softmax NaN "
                                               "(inf - inf)"),
               _INFINITE_LOSS, ZeroWeightSum())
    ulps = 4.0

    def concrete(self, ctx: NodeContext, scores: Tensor, target: Tensor,
                 weight: Tensor | None = None) -> tuple[Tensor, Tensor]:
        log_prob = torch.log_softmax(scores, dim=1)
        return _nll(log_prob, target, weight, self.reduction, self.ignore_index), log_prob

    def abstract(self, ctx: NodeContext, scores: Interval, target: Interval,
                 weight: Interval | None = None) -> tuple[Interval, Interval]:
        lo, hi = scores.full()
        lp_lo, lp_hi = _log_softmax_bounds(lo.to(torch.float64), hi.to(torch.float64), scores.elem_type)
        loss = self._loss(ctx, lp_lo, lp_hi, target, weight, scores.elem_type)
        return loss, Interval.from_full(lp_lo, lp_hi, scores.elem_type, ctx.budget)


def _log_softmax_bounds(lo: Tensor, hi: Tensor, elem_type: int) -> tuple[Tensor, Tensor]:
    """x_c - logsumexp(x): increasing in x_c, decreasing in the others; float error of the max-shifted
    evaluation as a relative and an absolute slack. The result is never positive."""
    c = lo.shape[1]
    lse_lo, lse_hi = torch.logaddexp(_lse_excluding(hi), lo), torch.logaddexp(_lse_excluding(lo), hi)
    ls_lo, ls_hi = lo - lse_lo, hi - lse_hi
    eps = float_facts(elem_type).eps
    slack = sum_gamma(2 * c + 16, eps) + eps * (2.0 + math.log(c))
    # float64 rounds scores of 1e19 and their log-sum-exp by up to 2**-53 of themselves: more than the
    # log of the class count that a row of equal scores keeps apart
    big_lo = 2.0**-50 * (arith.finite_abs(lo) + arith.finite_abs(lse_lo))
    big_hi = 2.0**-50 * (arith.finite_abs(hi) + arith.finite_abs(lse_hi))
    ls_lo = arith.nan_to(ls_lo * (1.0 + 4 * eps) - slack - big_lo, -INF)
    ls_hi = arith.nan_to((ls_hi * (1.0 - 4 * eps) + slack + big_hi).clamp(max=0.0), 0.0)
    return ls_lo, torch.maximum(ls_hi, ls_lo)


def _lse_excluding(v: Tensor) -> Tensor:
    """logsumexp over axis 1 of every element but the current one (stable: prefix and suffix)."""
    c = v.shape[1]
    prefix = torch.logcumsumexp(v, dim=1)
    suffix = torch.logcumsumexp(v.flip(1), dim=1).flip(1)
    pad = torch.full_like(v.narrow(1, 0, 1), -INF)
    before = torch.cat([pad, prefix.narrow(1, 0, c - 1)], dim=1)
    after = torch.cat([suffix.narrow(1, 1, c - 1), pad], dim=1)
    return torch.logaddexp(before, after)
