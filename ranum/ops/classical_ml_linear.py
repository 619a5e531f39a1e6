"""Linear models of the ``ai.onnx.ml`` domain (LinearRegressor, LinearClassifier) and the post transforms that
they and the tree ensembles apply to their scores, as onnxruntime's kernels compute them:

* ``scores = x W^T + b`` in float32, the intercept accumulated with the products;
* LinearClassifier with one score and two labels writes ``[1 - v, v]``, ``v`` the score after a LOGISTIC
  transform (the score itself for the others). The PROBIT transform (``sqrt(2) erfinv(2 p - 1)`` by a
  closed-form approximation) is NaN or infinite for ``p`` outside ``(0, 1)``, and SOFTMAX_ZERO (a softmax that
  skips scores within 1e-7 of 0) divides 0 by 0 where every score of a row is skipped;
* LinearRegressor applies only a PROBIT transform (the others leave the sum as it is).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from onnx import TensorProto
from torch import Tensor

from ranum.domain import arith
from ranum.domain.interval import DEFAULT_BLOCK_BUDGET, Interval, elementwise
from ranum.errors import UnsupportedOperator
from ranum.ops._base import NodeContext, OpRule
from ranum.ops.classical_ml import FLOAT, ML_DOMAIN, as_float32, column_interval, float32_interval, row_interval
from ranum.ops.hazards import FORWARD, Hazard, HazardHit, OnDerivedOperands, OutputOverflow, Overflow, outside
from ranum.ops.linear import finish_sum, interval_product
from ranum.ops.registry import register

__all__ = ["POST_TRANSFORMS", "LinearClassifier", "LinearRegressor", "transform_hazards", "transformed",
           "transformed_bounds"]

# onnxruntime's cut-off below which SOFTMAX_ZERO skips a score
_SKIPPED = 1e-7
# probit's argument p gives 2 p - 1 = +-1 in float32, log(0) in its erfinv, below 2**-26 and at 1; the
# hazard holds p within [2**-24, 1 - 2**-24] (a little wider than needed, never narrower)
_PROBIT_LOW, _PROBIT_HIGH = 2.0**-24, 1.0 - 2.0**-24


# ------------------------------------------------------------------------------ linear models
@dataclass(frozen=True)
class _LinearModel:
    """The coefficients of ``x W^T + b``: ``targets`` rows of W, one intercept per row (none: 0)."""

    coefficients: tuple[float, ...]
    intercepts: tuple[float, ...]
    targets: int
    op: str

    def parameters(self) -> tuple[Tensor, Tensor]:
        """W as a ``(targets, width)`` float32 matrix, and b."""
        if self.targets < 1 or len(self.coefficients) % self.targets or not self.coefficients:
            raise UnsupportedOperator(f"{self.op}: {len(self.coefficients)} coefficients for {self.targets} targets")
        if self.intercepts and len(self.intercepts) != self.targets:
            raise UnsupportedOperator(f"{self.op}: {len(self.intercepts)} intercepts for {self.targets} targets")
        weights = torch.tensor(self.coefficients, dtype=torch.float32).reshape(self.targets, -1)
        return weights, torch.tensor(self.intercepts or [0.0] * self.targets, dtype=torch.float32)


def _linear_concrete(x: Tensor, weights: Tensor, intercepts: Tensor) -> Tensor:
    rows = as_float32(x.reshape(1, -1) if x.dim() == 1 else x)
    return rows @ weights.to(rows.dtype).t() + intercepts.to(rows.dtype)


def _linear_bounds(x: Interval, weights: Tensor, intercepts: Tensor, op: str, budget: int) -> Interval:
    """``x W^T + b`` as float32 computes it: onnxruntime's Gemm accumulates the intercept with the ``width``
    products, so the sum of ``width + 1`` terms is within ``gamma * (|b| + sum |w x|)`` of the real one; the
    products' part is in their bounds, the intercept's is added, then the result's rounding."""
    rows = row_interval(float32_interval(x), op)
    width = weights.shape[1]
    w = Interval.point(weights.t().contiguous(), FLOAT)
    mid, rad, abs_sum = interval_product(torch.matmul, [rows, w], width)
    product = finish_sum(mid, rad, abs_sum, width, FLOAT, budget)
    slack = arith.accumulation_gamma(width + 1, FLOAT) * intercepts.to(torch.float64).abs()

    def bounds(pl, ph, bl, bh, sl, sh):
        lo, hi = arith.add(pl, ph, bl, bh)
        return lo - sh, hi + sh

    summed = elementwise(bounds, [product, column_interval(intercepts), column_interval(slack)], FLOAT)
    return summed.widened(1.0)


def _erfinv_approximation(x: Tensor) -> Tensor:
    """onnxruntime's closed-form erfinv (Winitzki's, a = 0.147), evaluated in x's precision."""
    sign = torch.where(x < 0, -1.0, 1.0).to(x.dtype)
    log = torch.log((1 - x) * (1 + x))
    v = 2 / (3.14159 * 0.147) + 0.5 * log
    return sign * torch.sqrt(-v + torch.sqrt(v * v - log / 0.147))


def _probit(p: Tensor) -> Tensor:
    """onnxruntime's ``sqrt(2) erfinv(2 p - 1)``, in float32 as it computes it."""
    p32 = p.to(torch.float32)
    return (torch.tensor(1.41421356, dtype=torch.float32) * _erfinv_approximation(2 * p32 - 1)).to(p.dtype)


# float32 evaluation of the approximation stays within this much of its float64 value, relative plus
# absolute: near p = 1/2 it takes the root of a difference of two numbers near 18.75 (a few ulps, about
# 1e-5, under a square root: 4e-3 at most)
_PROBIT_SLACK, _PROBIT_ABSOLUTE_SLACK = 2.0**-14, 2.0**-7


def _probit_bounds(lo: Tensor, hi: Tensor) -> tuple[Tensor, Tensor]:
    """The approximation is increasing on (0, 1); outside it the value is NaN or infinite (the hazard)."""
    valid = (lo >= _PROBIT_LOW) & (hi <= _PROBIT_HIGH)
    f_lo = 1.41421356 * _erfinv_approximation(2 * lo.clamp(_PROBIT_LOW, _PROBIT_HIGH) - 1)
    f_hi = 1.41421356 * _erfinv_approximation(2 * hi.clamp(_PROBIT_LOW, _PROBIT_HIGH) - 1)
    f_lo = f_lo - _PROBIT_SLACK * f_lo.abs() - _PROBIT_ABSOLUTE_SLACK
    f_hi = f_hi + _PROBIT_SLACK * f_hi.abs() + _PROBIT_ABSOLUTE_SLACK
    return (torch.where(valid, f_lo, torch.full_like(lo, -math.inf)),
            torch.where(valid, f_hi, torch.full_like(hi, math.inf)))


@dataclass(frozen=True)
class _OnScores(OnDerivedOperands):
    """A hazard of a linear model's post transform, checked on its scores ``x W^T + b``."""

    inner: Hazard
    model: _LinearModel
    suffix: str = " (of the scores x W^T + b)"

    def derived_bounds(self, inputs):
        x = inputs[0]
        if x is None or x.shape is None:
            return None
        return [_linear_bounds(x, *self.model.parameters(), self.model.op, DEFAULT_BLOCK_BUDGET)]

    def derived_values(self, inputs):
        return [_linear_concrete(inputs[0], *self.model.parameters())]


@dataclass(frozen=True)
class _AllSkipped(Hazard):
    """SOFTMAX_ZERO: every score of a row within 1e-7 of 0 (none is exponentiated: 0 / 0), or the row's
    maximum skipped and every other score's exponential underflowing; possible where a row's maximum can lie
    within 1e-7 of 0."""

    name: str = "softmax-zero-empty-row"
    description: str = "SOFTMAX_ZERO post transform: a row's largest score can be within 1e-7 of 0, so no " \
                       "exponential may be summed (0 / 0)"
    kind: str = FORWARD
    operand: int = 0

    def check(self, inputs, outputs):
        scores = inputs[0]
        if scores is None or scores.numblocks == 0:
            return None
        lo, hi = scores.full()
        top_lo, top_hi = lo.amax(-1), hi.amax(-1)
        if not bool(((top_lo <= _SKIPPED) & (top_hi >= -_SKIPPED)).any()):
            return None
        certain = bool(((hi.abs() <= _SKIPPED) & (lo.abs() <= _SKIPPED)).all())
        return HazardHit(certain, float(lo.min()), float(hi.max()))

    def triggered(self, inputs, outputs):
        return (inputs[0].abs() <= _SKIPPED).all(-1)

    def distance(self, inputs, outputs):
        return inputs[0].amax(-1).abs() - _SKIPPED

    def invalid_text(self, elem_type):
        return f"a row's largest score within {_SKIPPED:g} of 0"


def _softmax_zero(scores: Tensor) -> Tensor:
    top = scores.amax(-1, keepdim=True)
    skipped = scores.abs() <= _SKIPPED
    exps = torch.where(skipped, scores * torch.exp(-top), torch.exp(scores - top))
    total = torch.where(skipped, torch.zeros_like(exps), exps).sum(-1, keepdim=True)
    return exps / total


def transformed(post_transform: str, scores: Tensor) -> Tensor:
    if post_transform == "LOGISTIC":
        return torch.sigmoid(scores)
    if post_transform == "SOFTMAX":
        return torch.softmax(scores, -1)
    if post_transform == "SOFTMAX_ZERO":
        return _softmax_zero(scores)
    if post_transform == "PROBIT":
        return _probit(scores)
    return scores


POST_TRANSFORMS = ("NONE", "LOGISTIC", "SOFTMAX", "SOFTMAX_ZERO", "PROBIT")
# float32 evaluation of a sigmoid or a softmax stays within this much of the real value (absolute)
_PROBABILITY_SLACK = 8 * torch.finfo(torch.float32).eps


def transformed_bounds(post_transform: str, scores: Interval) -> Interval:
    lo, hi = scores.full()
    if post_transform == "LOGISTIC":
        lo, hi = torch.sigmoid(lo) - _PROBABILITY_SLACK, torch.sigmoid(hi) + _PROBABILITY_SLACK
    elif post_transform == "SOFTMAX":
        lo, hi = torch.zeros_like(lo), torch.ones_like(hi)
    elif post_transform == "SOFTMAX_ZERO":  # skipped scores are divided by a sum that may underflow
        lo, hi = torch.full_like(lo, -math.inf), torch.full_like(hi, math.inf)
    elif post_transform == "PROBIT":
        lo, hi = _probit_bounds(lo, hi)
    return Interval.from_full(lo.clamp(min=0.0) if post_transform in ("LOGISTIC", "SOFTMAX") else lo,
                              hi.clamp(max=1.0) if post_transform in ("LOGISTIC", "SOFTMAX") else hi, FLOAT)


def transform_hazards(post_transform: str) -> tuple[Hazard, ...]:
    """The hazards of a post transform, on the scores it transforms (a model checks them on its scores)."""
    if post_transform == "PROBIT":
        return (outside(_PROBIT_LOW, _PROBIT_HIGH, "PROBIT post transform of a value outside (0, 1): NaN or "
                        "infinite", name="probit-outside-unit"),)
    if post_transform == "SOFTMAX_ZERO":
        return (_AllSkipped(),)
    return ()


def _transform_hazards(post_transform: str, model: _LinearModel) -> tuple[Hazard, ...]:
    return tuple(_OnScores(inner, model) for inner in transform_hazards(post_transform))


@register("LinearRegressor", domain=ML_DOMAIN)
class LinearRegressor(OpRule):
    """``y = x W^T + b`` (W: ``targets`` rows of coefficients), then a PROBIT transform if asked (onnxruntime
    applies no other). Output float32 ``(rows, targets)``."""

    coefficients: tuple[float, ...] = ()
    intercepts: tuple[float, ...] = ()
    targets: int = 1
    post_transform: str = "NONE"

    accumulates = True
    rounds = False  # the product and the intercept's sum are rounded in the bounds

    def __post_init__(self) -> None:
        if self.post_transform not in POST_TRANSFORMS:
            raise ValueError(f"post_transform {self.post_transform!r} is not one of {', '.join(POST_TRANSFORMS)}")

    @property
    def _model(self) -> _LinearModel:
        return _LinearModel(self.coefficients, self.intercepts, self.targets, "LinearRegressor")

    @property
    def _applied(self) -> str:
        return "PROBIT" if self.post_transform == "PROBIT" else "NONE"

    @property
    def hazards(self) -> tuple[Hazard, ...]:  # type: ignore[override]
        return (Overflow(), *_transform_hazards(self._applied, self._model))

    def concrete(self, ctx: NodeContext, x: Tensor) -> Tensor:
        return transformed(self._applied, _linear_concrete(x, *self._model.parameters()))

    def abstract(self, ctx: NodeContext, x: Interval) -> Interval:
        scores = _linear_bounds(x, *self._model.parameters(), "LinearRegressor", ctx.budget)
        return transformed_bounds(self._applied, scores) if self._applied == "PROBIT" else scores


@register("LinearClassifier", domain=ML_DOMAIN)
class LinearClassifier(OpRule):
    """``scores = x W^T + b`` (one row of W per intercept), the label of the largest score (one score: the
    second label where it is > 0), and the scores after ``post_transform``; one score with two labels gives
    ``[1 - v, v]`` (``v``: the score, or its logistic for LOGISTIC; PROBIT writes the rows' probits one after
    the other into the first half of the output and leaves the rest as the memory held, so its values are
    any)."""

    coefficients: tuple[float, ...] = ()
    intercepts: tuple[float, ...] = ()
    classlabels_ints: tuple[int, ...] = ()
    classlabels_strings: tuple[str, ...] = ()
    post_transform: str = "NONE"
    multi_class: int = 0

    accumulates = True
    rounds = False

    def __post_init__(self) -> None:
        if self.post_transform not in POST_TRANSFORMS:
            raise ValueError(f"post_transform {self.post_transform!r} is not one of {', '.join(POST_TRANSFORMS)}")
        labels = len(self.classlabels_strings or self.classlabels_ints)
        classes = len(self.intercepts)
        if classes == 1 and labels != 2 or classes > 1 and labels != classes:
            raise ValueError(f"{labels} class labels for {classes} intercepts")

    @property
    def _model(self) -> _LinearModel:
        return _LinearModel(self.coefficients, self.intercepts, len(self.intercepts), "LinearClassifier")

    @property
    def _binary(self) -> bool:
        return len(self.intercepts) == 1

    @property
    def hazards(self) -> tuple[Hazard, ...]:  # type: ignore[override]
        applied = self.post_transform if not self._binary or self.post_transform in ("LOGISTIC", "PROBIT") \
            else "NONE"
        return (OutputOverflow(output=1), *_transform_hazards(applied, self._model))

    def concrete(self, ctx: NodeContext, x: Tensor) -> tuple[Tensor, Tensor]:
        scores = _linear_concrete(x, *self._model.parameters())
        labels = torch.tensor(self.classlabels_ints or [0] * max(len(self.classlabels_strings), 2))
        if self._binary:
            label = torch.where(scores[:, 0] > 0, labels[1], labels[0])
            return label, self._binary_scores(scores[:, 0])
        return labels[scores.argmax(-1)], transformed(self.post_transform, scores)

    def _binary_scores(self, score: Tensor) -> Tensor:
        if self.post_transform == "PROBIT":
            flat = torch.zeros(2 * score.shape[0], dtype=score.dtype)
            flat[:score.shape[0]] = _probit(score)
            return flat.reshape(-1, 2)
        v = torch.sigmoid(score) if self.post_transform == "LOGISTIC" else score
        return torch.stack([1 - v, v], -1)

    def abstract(self, ctx: NodeContext, x: Interval) -> tuple[Interval, Interval]:
        scores = _linear_bounds(x, *self._model.parameters(), "LinearClassifier", ctx.budget)
        rows = scores.shape[0]
        label = self._label_bounds(ctx, rows)
        if not self._binary:
            return label, transformed_bounds(self.post_transform, scores).widened(1.0)
        if self.post_transform == "PROBIT":  # onnxruntime leaves the second half of the output unwritten
            return label, Interval.top((rows, 2), FLOAT)
        v = transformed_bounds("LOGISTIC", scores) if self.post_transform == "LOGISTIC" else scores
        v_lo, v_hi = v.full()
        complement = Interval.from_full(1 - v_hi, 1 - v_lo, FLOAT).widened(1.0)
        return label, _stacked(complement, v, rows, ctx.budget)

    def _label_bounds(self, ctx: NodeContext, rows: int) -> Interval:
        if self.classlabels_strings:  # strings are not bounded: the widest value stands for them
            return Interval.top((rows,), ctx.output_type(0, FLOAT) if ctx.output_type(0) != TensorProto.STRING
                                else FLOAT)
        labels = torch.tensor(self.classlabels_ints, dtype=torch.int64)
        return Interval.uniform(labels.min(), labels.max(), (rows,), TensorProto.INT64)


def _stacked(first: Interval, second: Interval, rows: int, budget: int) -> Interval:
    lo = torch.stack([first.full()[0].reshape(rows), second.full()[0].reshape(rows)], -1)
    hi = torch.stack([first.full()[1].reshape(rows), second.full()[1].reshape(rows)], -1)
    return Interval.from_full(lo, hi, FLOAT, budget)
