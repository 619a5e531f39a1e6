"""Operators of the ``ai.onnx.ml`` domain that scikit-learn pipelines exported by skl2onnx write around (or
instead of) a network: Scaler, Normalizer, Binarizer, Imputer, ArrayFeatureExtractor, OneHotEncoder,
LinearRegressor, LinearClassifier, TreeEnsembleRegressor, TreeEnsembleClassifier and ZipMap.

Their semantics are onnxruntime's CPU kernels, the runtime ranum confirms in, where those differ from the spec:

* every kernel but Binarizer and Imputer reads its input as float32 (a double or integer input is converted
  first) and writes float32;
* Normalizer divides by the row's signed maximum (MAX), sum of magnitudes (L1) or writes
  ``sign(x) sqrt(x^2 / sum(x^2))`` (L2), and leaves a row whose divisor is 0 as it is. L2 squares each
  element in the input's own type: a square past float32's largest value is ``inf / inf = NaN``;
* LinearClassifier computes ``scores = x W^T + b``; with one score and two labels it writes ``[1 - v, v]``,
  ``v`` the score after a LOGISTIC transform (the score itself for the others). Its PROBIT transform
  (``sqrt(2) erfinv(2 p - 1)`` by a closed-form approximation) is NaN or infinite for ``p`` outside
  ``(0, 1)``, and SOFTMAX_ZERO (a softmax that skips scores within 1e-7 of 0) divides 0 by 0 where every
  score of a row is skipped;
* LinearRegressor applies only a PROBIT transform (the others leave the sum as it is).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from onnx import TensorProto
from torch import Tensor

from ranum.domain import arith
from ranum.domain.dtypes import is_float
from ranum.domain.interval import DEFAULT_BLOCK_BUDGET, Interval, elementwise
from ranum.errors import UnsupportedOperator
from ranum.ops._base import NodeContext, OpRule, structural
from ranum.ops.hazards import FORWARD, Hazard, HazardHit, OnDerivedOperands, OutputOverflow, Overflow, outside
from ranum.ops.linear import finish_sum, interval_product
from ranum.ops.registry import register
from ranum.ops.shape import Identity

__all__ = ["ML_DOMAIN", "ArrayFeatureExtractor", "Binarizer", "Imputer", "LinearClassifier", "LinearRegressor",
           "Normalizer", "OneHotEncoder", "Scaler", "TreeEnsembleClassifier", "TreeEnsembleRegressor", "ZipMap"]

ML_DOMAIN = "ai.onnx.ml"
FLOAT = TensorProto.FLOAT
# onnxruntime's cut-off below which SOFTMAX_ZERO skips a score
_SKIPPED = 1e-7
# probit's argument p gives 2 p - 1 = +-1 in float32, log(0) in its erfinv, below 2**-26 and at 1; the
# hazard holds p within [2**-24, 1 - 2**-24] (a little wider than needed, never narrower)
_PROBIT_LOW, _PROBIT_HIGH = 2.0**-24, 1.0 - 2.0**-24
# largest |x| whose square, computed in the input's type, is finite in float32 (integers: in the type)
_SQUARE_LIMITS = {TensorProto.INT32: 46340.0, TensorProto.INT64: 3037000499.0}


def _rows(x: Tensor, op: str) -> Tensor:
    """A rank-1 or rank-2 operand as a matrix of rows (onnxruntime: a vector is one row)."""
    if x.dim() == 1:
        return x.reshape(1, -1)
    if x.dim() != 2:
        raise UnsupportedOperator(f"{op}: input of rank {x.dim()} (onnxruntime takes rank 1 or 2)")
    return x


def _row_interval(x: Interval, op: str) -> Interval:
    if x.shape is None or len(x.shape) not in (1, 2):
        raise UnsupportedOperator(f"{op}: input of rank {None if x.shape is None else len(x.shape)} "
                                  "(onnxruntime takes rank 1 or 2)")
    return x.broadcast_to((1, x.shape[0])) if len(x.shape) == 1 else x


def _as_float32(x: Tensor) -> Tensor:
    """onnxruntime's reading of the input: float32, a float64 evaluation (ranum's exact path) kept."""
    return x if x.dtype in (torch.float32, torch.float64) else x.to(torch.float32)


def _float32_interval(x: Interval) -> Interval:
    """The input converted to float32 (one rounding for a double or integer input)."""
    if x.elem_type == FLOAT:
        return x
    converted = Interval.create(x.lower.to(torch.float64), x.upper.to(torch.float64), x.splits, x.shape, FLOAT)
    return converted.widened(1.0)


def _columns(values: Sequence[float], width: int, what: str, op: str) -> Tensor:
    """A per-column attribute (one value, or one per column) as float32 values of shape (width,)."""
    if len(values) not in (1, width):
        raise UnsupportedOperator(f"{op}: {len(values)} {what} values for {width} columns")
    column = torch.tensor(values, dtype=torch.float32)
    return column.expand(width) if len(values) == 1 else column


def _column_interval(values: Tensor) -> Interval:
    return Interval.point(values.to(torch.float64), FLOAT)


# ------------------------------------------------------------------------------ Scaler
@register("Scaler", domain=ML_DOMAIN)
class Scaler(OpRule):
    """``y = (x - offset) * scale`` per column, in float32."""

    offset: tuple[float, ...] = ()
    scale: tuple[float, ...] = ()

    hazards = (Overflow(),)
    ulps = 2.0  # the difference and the product, each rounded

    def _parameters(self, width: int) -> tuple[Tensor, Tensor]:
        return (_columns(self.offset, width, "offset", "Scaler"), _columns(self.scale, width, "scale", "Scaler"))

    def concrete(self, ctx: NodeContext, x: Tensor) -> Tensor:
        xf = _as_float32(x)
        offset, scale = (p.to(xf.dtype) for p in self._parameters(x.shape[-1] if x.dim() else 1))
        return (xf - offset) * scale

    def abstract(self, ctx: NodeContext, x: Interval) -> Interval:
        width = x.shape[-1] if x.shape else 1
        offset, scale = (_column_interval(p) for p in self._parameters(width))

        def bounds(xl, xh, ol, oh, sl, sh):
            return arith.mul(*arith.sub(xl, xh, ol, oh), sl, sh)

        return elementwise(bounds, [_float32_interval(x), offset, scale], FLOAT)


# ------------------------------------------------------------------------------ Normalizer
@register("Normalizer", domain=ML_DOMAIN)
class Normalizer(OpRule):
    """Each row divided by its signed maximum (MAX), its sum of magnitudes (L1) or its L2 norm (L2, written
    ``sign(x) sqrt(x^2 / sum(x^2))``); a row whose divisor is 0 is left as it is. Output float32."""

    norm: str = "MAX"

    accumulates = True

    def __post_init__(self) -> None:
        if self.norm not in ("MAX", "L1", "L2"):
            raise ValueError(f"norm {self.norm!r} is not MAX, L1 or L2")

    @property
    def hazards(self) -> tuple[Hazard, ...]:  # type: ignore[override]
        if self.norm == "L2":
            return (_SquareOverflow(),)
        return (Overflow(),) if self.norm == "MAX" else ()

    def concrete(self, ctx: NodeContext, x: Tensor) -> Tensor:
        rows = _rows(x, "Normalizer")
        values = _as_float32(rows)
        if self.norm == "MAX":
            divisor = values.amax(-1, keepdim=True)
            out = torch.where(divisor != 0, values / divisor, values)
        elif self.norm == "L1":
            divisor = values.abs().sum(-1, keepdim=True)
            out = torch.where(divisor != 0, values / divisor, values)
        else:
            squares = (rows * rows).to(torch.float32).to(values.dtype)
            divisor = squares.sum(-1, keepdim=True)
            scaled = torch.sqrt(squares / divisor)
            out = torch.where(divisor != 0, torch.where(values < 0, -scaled, scaled), values)
        return out.reshape(x.shape)

    def abstract(self, ctx: NodeContext, x: Interval) -> Interval:
        rows = _row_interval(_float32_interval(x), "Normalizer")
        lo, hi = (t.to(torch.float64) for t in rows.full())
        if self.norm == "MAX":
            lo, hi = _max_normalized(lo, hi)
        else:  # |y| <= 1 with x's sign; a row left as it is holds only zeros (L1) or values below 1 (L2)
            limit = _SQUARE_LIMITS.get(x.elem_type)
            # an integer square past its type wraps around: that row's values are any
            wraps = (lo.amin(-1, keepdim=True) < -limit) | (hi.amax(-1, keepdim=True) > limit) \
                if self.norm == "L2" and limit is not None else torch.zeros((), dtype=torch.bool)
            lo = torch.where(wraps, -math.inf, torch.where(lo >= 0, 0.0, -1.0)).to(torch.float64).expand_as(lo)
            hi = torch.where(wraps, math.inf, torch.where(hi <= 0, 0.0, 1.0)).to(torch.float64).expand_as(hi)
        return Interval.from_full(lo.reshape(x.shape), hi.reshape(x.shape), FLOAT, ctx.budget)


def _max_normalized(lo: Tensor, hi: Tensor) -> tuple[Tensor, Tensor]:
    """Bounds of ``x / m``, ``m`` the row's maximum, in ``[max lo, max hi]``: at most 1 where ``m > 0``, at
    least 1 where ``m < 0`` (every element is at most ``m``), unbounded where ``m`` may be 0 or change sign."""
    m_lo, m_hi = lo.amax(-1, keepdim=True), hi.amax(-1, keepdim=True)
    positive, negative = m_lo > 0, m_hi < 0
    safe_lo = torch.where(positive | negative, m_lo, torch.ones_like(m_lo))
    safe_hi = torch.where(positive | negative, m_hi, torch.ones_like(m_hi))
    pos_lo = torch.where(lo < 0, lo / safe_lo, lo / safe_hi)
    pos_hi = torch.where(hi > 0, hi / safe_lo, hi / safe_hi).clamp(max=1.0)
    neg_lo = (hi / safe_lo).clamp(min=1.0)
    neg_hi = lo / safe_hi
    out_lo = torch.where(positive, pos_lo, torch.where(negative, neg_lo, torch.full_like(lo, -math.inf)))
    out_hi = torch.where(positive, pos_hi, torch.where(negative, neg_hi, torch.full_like(hi, math.inf)))
    return out_lo, out_hi


@dataclass(frozen=True)
class _SquareOverflow(Hazard):
    """Normalizer L2: an element whose square (in the input's type) overflows makes its row ``inf / inf``."""

    name: str = "normalizer-square-overflow"
    description: str = "Normalizer (L2): a square overflows, and its row becomes inf / inf = NaN"
    kind: str = FORWARD
    operand: int = 0

    def _inner(self, elem_type: int) -> Hazard:
        limit = _SQUARE_LIMITS.get(elem_type, math.sqrt(torch.finfo(torch.float32).max))
        return outside(-limit, limit, self.description, name=self.name)

    def check(self, inputs, outputs):
        x = inputs[0]
        return None if x is None else self._inner(x.elem_type).check(inputs, outputs)

    def triggered(self, inputs, outputs):
        x = inputs[0]
        return self._inner(_elem_type(x)).triggered(inputs, outputs)

    def distance(self, inputs, outputs):
        return self._inner(_elem_type(inputs[0])).distance(inputs, outputs)

    def invalid_text(self, elem_type):
        return self._inner(elem_type).invalid_text(elem_type)

    def repair(self, operand, inputs=()):
        return self._inner(operand.elem_type).repair(operand, inputs)


def _elem_type(x: Tensor) -> int:
    return {torch.int32: TensorProto.INT32, torch.int64: TensorProto.INT64}.get(x.dtype, FLOAT)


# ------------------------------------------------------------------------------ Binarizer, Imputer
@register("Binarizer", domain=ML_DOMAIN)
class Binarizer(OpRule):
    """``y = 1 if x > threshold else 0``, in x's type."""

    threshold: float = 0.0

    rounds = False

    def concrete(self, ctx: NodeContext, x: Tensor) -> Tensor:
        return (x > self.threshold).to(x.dtype)

    def abstract(self, ctx: NodeContext, x: Interval) -> Interval:
        threshold = torch.tensor(self.threshold, dtype=torch.float32).item()
        lo, hi = ((t.to(torch.float64) > threshold).to(t.dtype) for t in (x.lower, x.upper))
        return x.with_bounds(lo, hi)


@register("Imputer", domain=ML_DOMAIN)
class Imputer(OpRule):
    """Each value equal to the replaced value (NaN: each NaN) becomes its column's imputed value."""

    imputed_value_floats: tuple[float, ...] = ()
    imputed_value_int64s: tuple[int, ...] = ()
    replaced_value_float: float = 0.0
    replaced_value_int64: int = 0

    rounds = False

    def _imputed(self, elem_type: int, width: int) -> tuple[Tensor, float]:
        if is_float(elem_type):
            values, replaced = self.imputed_value_floats, self.replaced_value_float
        else:
            values, replaced = self.imputed_value_int64s, self.replaced_value_int64
        if not values:
            raise UnsupportedOperator("Imputer: no imputed values for the input's type")
        if len(values) not in (1, width):
            raise UnsupportedOperator(f"Imputer: {len(values)} imputed values for {width} columns")
        column = torch.tensor(values, dtype=torch.float32 if is_float(elem_type) else torch.int64)
        return column.expand(width), replaced

    def concrete(self, ctx: NodeContext, x: Tensor) -> Tensor:
        imputed, replaced = self._imputed(ctx.input_types[0] or FLOAT, x.shape[-1])
        hit = torch.isnan(x) if math.isnan(replaced) else x == replaced
        return torch.where(hit, imputed.to(x.dtype), x)

    def abstract(self, ctx: NodeContext, x: Interval) -> Interval:
        width = x.shape[-1] if x.shape else 1
        imputed, replaced = self._imputed(x.elem_type, width)
        if math.isnan(replaced) and ctx.graph is not None and ctx.graph.nan_free(ctx.node.inputs[0]):
            return x
        column = Interval.point(imputed.to(x.lower.dtype), x.elem_type)

        def bounds(xl, xh, vl, vh):
            may_hit = torch.ones_like(xl, dtype=torch.bool) if math.isnan(replaced) else \
                (xl <= replaced) & (xh >= replaced)
            return (torch.where(may_hit, torch.minimum(xl, vl.expand_as(xl)), xl),
                    torch.where(may_hit, torch.maximum(xh, vh.expand_as(xh)), xh))

        return elementwise(bounds, [x, column], x.elem_type)


# ------------------------------------------------------------------------------ ArrayFeatureExtractor
@register("ArrayFeatureExtractor", domain=ML_DOMAIN)
class ArrayFeatureExtractor(OpRule):
    """``X[..., indices]``: the last axis' elements at the (flattened) indices; a vector X gives one row."""

    rounds = False

    def concrete(self, ctx: NodeContext, x: Tensor, indices: Tensor) -> Tensor:
        index = indices.reshape(-1).to(torch.int64)
        data = x.reshape(1, -1) if x.dim() == 1 else x
        return data.index_select(-1, index)

    def abstract(self, ctx: NodeContext, x: Interval, indices: Interval) -> Interval:
        if x.shape is None or indices.shape is None:
            raise UnsupportedOperator("ArrayFeatureExtractor: an operand of unknown shape")
        data = x.broadcast_to((1, x.shape[0])) if len(x.shape) == 1 else x
        width = data.shape[-1]
        if indices.is_exact:
            index = indices.exact_value().reshape(-1).to(torch.int64)
            if bool(((index < 0) | (index >= width)).any()):
                raise UnsupportedOperator(f"ArrayFeatureExtractor: an index outside [0, {width - 1}]")
            return structural(lambda t: t.index_select(-1, index), data, ctx.budget)
        count = math.prod(indices.shape)
        low, high = max(int(indices.min()), 0), min(int(indices.max()), width - 1)
        if low > high:
            raise UnsupportedOperator(f"ArrayFeatureExtractor: every index lies outside [0, {width - 1}]")
        lo, hi = (t.narrow(-1, low, high - low + 1) for t in data.full())
        shape = (*data.shape[:-1], count)
        return Interval.from_full(lo.amin(-1, keepdim=True).expand(shape), hi.amax(-1, keepdim=True).expand(shape),
                                  x.elem_type, ctx.budget)


# ------------------------------------------------------------------------------ OneHotEncoder
@register("OneHotEncoder", domain=ML_DOMAIN)
class OneHotEncoder(OpRule):
    """One more axis, of the categories: 1 where the element (a float truncated to an integer, as onnxruntime
    casts it) is the category, else 0. String categories are not held by the analysis."""

    cats_int64s: tuple[int, ...] = ()
    cats_strings: tuple[str, ...] = ()
    zeros: int = 1

    rounds = False

    def _categories(self) -> Tensor:
        if not self.cats_int64s:
            raise UnsupportedOperator("OneHotEncoder: string categories (the analysis holds no strings)")
        return torch.tensor(self.cats_int64s, dtype=torch.int64)

    def concrete(self, ctx: NodeContext, x: Tensor) -> Tensor:
        values = torch.trunc(x).to(torch.int64) if x.is_floating_point() else x.to(torch.int64)
        return (values.unsqueeze(-1) == self._categories()).to(torch.float32)

    def abstract(self, ctx: NodeContext, x: Interval) -> Interval:
        categories = self._categories().to(torch.float64)
        lo, hi = (torch.trunc(t.to(torch.float64)).unsqueeze(-1) for t in x.full())
        inside = (lo <= categories) & (categories <= hi)
        exact = inside & (lo == hi)
        return Interval.from_full(exact.to(torch.float64), inside.to(torch.float64), FLOAT, ctx.budget)


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
    rows = _as_float32(x.reshape(1, -1) if x.dim() == 1 else x)
    return rows @ weights.to(rows.dtype).t() + intercepts.to(rows.dtype)


def _linear_bounds(x: Interval, weights: Tensor, intercepts: Tensor, op: str, budget: int) -> Interval:
    """``x W^T + b`` as float32 computes it: onnxruntime's Gemm accumulates the intercept with the ``width``
    products, so the sum of ``width + 1`` terms is within ``gamma * (|b| + sum |w x|)`` of the real one; the
    products' part is in their bounds, the intercept's is added, then the result's rounding."""
    rows = _row_interval(_float32_interval(x), op)
    width = weights.shape[1]
    w = Interval.point(weights.t().contiguous(), FLOAT)
    mid, rad, abs_sum = interval_product(torch.matmul, [rows, w], width)
    product = finish_sum(mid, rad, abs_sum, width, FLOAT, budget)
    slack = arith.accumulation_gamma(width + 1, FLOAT) * intercepts.to(torch.float64).abs()

    def bounds(pl, ph, bl, bh, sl, sh):
        lo, hi = arith.add(pl, ph, bl, bh)
        return lo - sh, hi + sh

    summed = elementwise(bounds, [product, _column_interval(intercepts), _column_interval(slack)], FLOAT)
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


def _transformed(post_transform: str, scores: Tensor) -> Tensor:
    if post_transform == "LOGISTIC":
        return torch.sigmoid(scores)
    if post_transform == "SOFTMAX":
        return torch.softmax(scores, -1)
    if post_transform == "SOFTMAX_ZERO":
        return _softmax_zero(scores)
    if post_transform == "PROBIT":
        return _probit(scores)
    return scores


_TRANSFORMS = ("NONE", "LOGISTIC", "SOFTMAX", "SOFTMAX_ZERO", "PROBIT")
# float32 evaluation of a sigmoid or a softmax stays within this much of the real value (absolute)
_PROBABILITY_SLACK = 8 * torch.finfo(torch.float32).eps


def _transformed_bounds(post_transform: str, scores: Interval) -> Interval:
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


def _transform_hazards(post_transform: str, model: _LinearModel) -> tuple[Hazard, ...]:
    if post_transform == "PROBIT":
        inner = outside(_PROBIT_LOW, _PROBIT_HIGH, "PROBIT post transform of a value outside (0, 1): NaN or "
                        "infinite", name="probit-outside-unit")
        return (_OnScores(inner, model),)
    if post_transform == "SOFTMAX_ZERO":
        return (_OnScores(_AllSkipped(), model),)
    return ()


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
        if self.post_transform not in _TRANSFORMS:
            raise ValueError(f"post_transform {self.post_transform!r} is not one of {', '.join(_TRANSFORMS)}")

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
        return _transformed(self._applied, _linear_concrete(x, *self._model.parameters()))

    def abstract(self, ctx: NodeContext, x: Interval) -> Interval:
        scores = _linear_bounds(x, *self._model.parameters(), "LinearRegressor", ctx.budget)
        return _transformed_bounds(self._applied, scores) if self._applied == "PROBIT" else scores


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
        if self.post_transform not in _TRANSFORMS:
            raise ValueError(f"post_transform {self.post_transform!r} is not one of {', '.join(_TRANSFORMS)}")
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
        return labels[scores.argmax(-1)], _transformed(self.post_transform, scores)

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
            return label, _transformed_bounds(self.post_transform, scores).widened(1.0)
        if self.post_transform == "PROBIT":  # onnxruntime leaves the second half of the output unwritten
            return label, Interval.top((rows, 2), FLOAT)
        v = _transformed_bounds("LOGISTIC", scores) if self.post_transform == "LOGISTIC" else scores
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


# ------------------------------------------------------------------------------ TreeEnsembleRegressor
_BRANCHES = {"BRANCH_LEQ", "BRANCH_LT", "BRANCH_GTE", "BRANCH_GT", "BRANCH_EQ", "BRANCH_NEQ"}
_AGGREGATES = ("SUM", "AVERAGE")


@dataclass(frozen=True)
class _Forest:
    """A tree ensemble's nodes as arrays: for node i of the attribute lists, its tree's root, its children's
    indices, and its leaf's weight per target (the sum of the target entries naming it)."""

    roots: list[int]
    modes: list[str]
    features: list[int]
    thresholds: list[float]
    true_next: list[int]
    false_next: list[int]
    missing_true: list[bool]
    leaf_weights: Tensor  # (nodes, targets), float64
    leaf_scores: Tensor  # (nodes, targets), bool: whether a target entry names the leaf (a score, maybe 0)

    def step(self, index: int, value: float) -> int:
        """The child a value leads to at branch ``index`` (NaN: the side missing values track)."""
        if math.isnan(value):
            return self.true_next[index] if self.missing_true[index] else self.false_next[index]
        threshold, mode = self.thresholds[index], self.modes[index]
        taken = {"BRANCH_LEQ": value <= threshold, "BRANCH_LT": value < threshold,
                 "BRANCH_GTE": value >= threshold, "BRANCH_GT": value > threshold,
                 "BRANCH_EQ": value == threshold, "BRANCH_NEQ": value != threshold}[mode]
        return self.true_next[index] if taken else self.false_next[index]

    def sums(self, rows: Tensor) -> tuple[Tensor, Tensor]:
        """Per row, the reached leaves' weights summed over the trees (in float32 for a float32 input, as
        onnxruntime sums them: a sum on a threshold such as 0.5 decides a label), and which outputs a reached
        leaf scores."""
        values = rows.to(torch.float64)
        dtype = torch.float32 if rows.dtype == torch.float32 else torch.float64
        weights = self.leaf_weights.to(dtype)
        out = torch.zeros((values.shape[0], self.leaf_weights.shape[1]), dtype=dtype)
        scored = torch.zeros(out.shape, dtype=torch.bool)
        for r, row in enumerate(values.tolist()):
            for root in self.roots:
                index = root
                while self.modes[index] != "LEAF":
                    index = self.step(index, row[self.features[index]])
                out[r] += weights[index]
                scored[r] |= self.leaf_scores[index]
        return out, scored

    def bounds(self, ctx: NodeContext, x: Interval, rows: Interval) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Over the leaves rows within ``x``'s range reach (all rows alike): per output the least and largest
        sum, the sum of the largest |weight| per tree, and whether every tree may reach a leaf without it."""
        low, high = rows.full()[0].to(torch.float64).amin(0), rows.full()[1].to(torch.float64).amax(0)
        may_be_nan = is_float(x.elem_type) and not (ctx.graph is not None and ctx.graph.nan_free(ctx.node.inputs[0]))
        outputs = self.leaf_weights.shape[1]
        lo, hi, magnitude = (torch.zeros(outputs, dtype=torch.float64) for _ in range(3))
        unscored = torch.ones(outputs, dtype=torch.bool)
        for root in self.roots:
            leaves = self.reachable_leaves(root, low, high, may_be_nan)
            reached = self.leaf_weights[leaves]
            lo, hi = lo + reached.amin(0), hi + reached.amax(0)
            magnitude = magnitude + reached.abs().amax(0)
            unscored &= ~self.leaf_scores[leaves].all(0)
        return lo, hi, magnitude, unscored

    def reachable_leaves(self, root: int, low: Tensor, high: Tensor, may_be_nan: bool) -> list[int]:
        """The leaves a row with features in [low, high] (NaN too where ``may_be_nan``) can reach."""
        leaves, pending, seen = [], [root], set()
        while pending:
            index = pending.pop()
            if index in seen:
                continue
            seen.add(index)
            if self.modes[index] == "LEAF":
                leaves.append(index)
                continue
            feature, threshold = self.features[index], self.thresholds[index]
            lo, hi = float(low[feature]), float(high[feature])
            can_true, can_false = _branch_sides(self.modes[index], lo, hi, threshold)
            if may_be_nan:
                can_true, can_false = can_true or self.missing_true[index], can_false or not self.missing_true[index]
            pending += ([self.true_next[index]] if can_true else []) + ([self.false_next[index]] if can_false else [])
        return leaves


def _branch_sides(mode: str, lo: float, hi: float, threshold: float) -> tuple[bool, bool]:
    """Whether some value in [lo, hi] takes the true side of a branch, and whether some takes the false one."""
    if mode == "BRANCH_LEQ":
        return lo <= threshold, hi > threshold
    if mode == "BRANCH_LT":
        return lo < threshold, hi >= threshold
    if mode == "BRANCH_GTE":
        return hi >= threshold, lo < threshold
    if mode == "BRANCH_GT":
        return hi > threshold, lo <= threshold
    equal_possible, only_equal = lo <= threshold <= hi, lo == hi == threshold
    return (equal_possible, not only_equal) if mode == "BRANCH_EQ" else (not only_equal, equal_possible)


@register("TreeEnsembleRegressor", domain=ML_DOMAIN)
class TreeEnsembleRegressor(OpRule):
    """Each row's leaf in every tree, the leaves' weights per target summed (``AVERAGE``: divided by the trees'
    count), plus ``base_values``; a target that no reached leaf scores is 0 (onnxruntime). Bounded by the leaves
    that rows within the input's range can reach; MIN and MAX aggregates and post transforms other than NONE are
    not supported."""

    aggregate_function: str = "SUM"
    base_values: tuple[float, ...] = ()
    base_values_as_tensor: Tensor | None = None
    n_targets: int = 1
    nodes_falsenodeids: tuple[int, ...] = ()
    nodes_featureids: tuple[int, ...] = ()
    nodes_hitrates: tuple[float, ...] = ()
    nodes_hitrates_as_tensor: Tensor | None = None
    nodes_missing_value_tracks_true: tuple[int, ...] = ()
    nodes_modes: tuple[str, ...] = ()
    nodes_nodeids: tuple[int, ...] = ()
    nodes_treeids: tuple[int, ...] = ()
    nodes_truenodeids: tuple[int, ...] = ()
    nodes_values: tuple[float, ...] = ()
    nodes_values_as_tensor: Tensor | None = None
    post_transform: str = "NONE"
    target_ids: tuple[int, ...] = ()
    target_nodeids: tuple[int, ...] = ()
    target_treeids: tuple[int, ...] = ()
    target_weights: tuple[float, ...] = ()
    target_weights_as_tensor: Tensor | None = None

    hazards = (Overflow(),)
    accumulates = True
    rounds = False  # the sum's rounding is in the bounds

    def _forest(self) -> _Forest:
        if self.aggregate_function not in _AGGREGATES or self.post_transform != "NONE":
            raise UnsupportedOperator(f"TreeEnsembleRegressor: aggregate {self.aggregate_function} with post "
                                      f"transform {self.post_transform} (SUM or AVERAGE with NONE are supported)")
        weights = _listed(self.target_weights, self.target_weights_as_tensor)
        return _build_forest("TreeEnsembleRegressor", self, (self.target_treeids, self.target_nodeids, self.target_ids,
                                                             weights), self.n_targets)

    def _base(self) -> Tensor:
        base = _listed(self.base_values, self.base_values_as_tensor)
        return torch.tensor(base or [0.0] * self.n_targets, dtype=torch.float64)

    def concrete(self, ctx: NodeContext, x: Tensor) -> Tensor:
        forest = self._forest()
        out, scored = forest.sums(_rows(x, "TreeEnsembleRegressor"))
        if self.aggregate_function == "AVERAGE":
            out = out / len(forest.roots)
        # onnxruntime writes 0 for a target no reached leaf scores, without its base value
        return torch.where(scored, out + self._base().to(out.dtype), torch.zeros_like(out)).to(torch.float32)

    def abstract(self, ctx: NodeContext, x: Interval) -> Interval:
        forest = self._forest()
        rows = _row_interval(x, "TreeEnsembleRegressor")
        lo, hi, magnitude, unscored = forest.bounds(ctx, x, rows)
        if self.aggregate_function == "AVERAGE":
            lo, hi, magnitude = (t / len(forest.roots) for t in (lo, hi, magnitude))
        base = self._base()
        slack = _forest_slack(forest, magnitude, base)
        lo, hi = lo + base - slack, hi + base + slack
        lo = torch.where(unscored, torch.minimum(lo, torch.zeros_like(lo)), lo)  # 0 where no leaf scores it
        hi = torch.where(unscored, torch.maximum(hi, torch.zeros_like(hi)), hi)
        shape = (rows.shape[0], self.n_targets)
        return Interval.from_full(lo.expand(shape), hi.expand(shape), FLOAT, ctx.budget).widened(1.0)


@register("TreeEnsembleClassifier", domain=ML_DOMAIN)
class TreeEnsembleClassifier(TreeEnsembleRegressor):
    """The classes' scores: each row's reached leaves' class weights summed over the trees. With more than two
    classes (onnxruntime): plus ``base_values`` (a class that no reached leaf scores takes its base value, or 0),
    the label of the largest scored class, then ``post_transform``. With two labels, the form scikit-learn's
    trees and forests take (one class's weights, all >= 0, no base values, no transform): the scores are
    ``[1 - s, s]`` and the label the second where ``s > 0.5``. Other binary forms are not supported."""

    class_ids: tuple[int, ...] = ()
    class_nodeids: tuple[int, ...] = ()
    class_treeids: tuple[int, ...] = ()
    class_weights: tuple[float, ...] = ()
    class_weights_as_tensor: Tensor | None = None
    classlabels_int64s: tuple[int, ...] = ()
    classlabels_strings: tuple[str, ...] = ()

    @property
    def hazards(self) -> tuple[Hazard, ...]:  # type: ignore[override]
        return (OutputOverflow(output=1),)

    def _forest(self) -> _Forest:
        labels = len(self.classlabels_int64s or self.classlabels_strings)
        weights = _listed(self.class_weights, self.class_weights_as_tensor)
        if labels < 2 or self._binary and not (len(set(self.class_ids)) == 1 and not self._base_list()
                                                and self.post_transform == "NONE" and min(weights, default=0) >= 0):
            raise UnsupportedOperator("TreeEnsembleClassifier: a binary form other than scikit-learn's (one "
                                      "class's weights, all >= 0, no base values, no post transform)")
        if self.post_transform not in _TRANSFORMS:
            raise UnsupportedOperator(f"TreeEnsembleClassifier: post transform {self.post_transform}")
        return _build_forest("TreeEnsembleClassifier", self, (self.class_treeids, self.class_nodeids,
                                                              self.class_ids, weights), labels)

    @property
    def _binary(self) -> bool:
        return len(self.classlabels_int64s or self.classlabels_strings) == 2

    def _base_list(self) -> list[float]:
        return _listed(self.base_values, self.base_values_as_tensor)

    def concrete(self, ctx: NodeContext, x: Tensor) -> tuple[Tensor, Tensor]:
        forest = self._forest()
        sums, scored = forest.sums(_rows(x, "TreeEnsembleClassifier"))
        labels = torch.tensor(self.classlabels_int64s or [0] * len(self.classlabels_strings), dtype=torch.int64)
        if self._binary:
            score = sums[:, self.class_ids[0]] if self.class_ids else torch.zeros(sums.shape[0], dtype=torch.float64)
            label = torch.where(score > 0.5, labels[1], labels[0])
            return label, torch.stack([1 - score, score], -1).to(torch.float32)
        base = self._base_list()
        if base:
            sums = sums + torch.tensor(base, dtype=sums.dtype)  # an unscored class's sum is 0: it takes its base
            scored = torch.ones_like(scored)
        ranked = torch.where(scored, sums, torch.full_like(sums, -math.inf))
        return labels[ranked.argmax(-1)], _transformed(self.post_transform, sums.to(torch.float32))

    def abstract(self, ctx: NodeContext, x: Interval) -> tuple[Interval, Interval]:
        forest = self._forest()
        rows = _row_interval(x, "TreeEnsembleClassifier")
        lo, hi, magnitude, unscored = forest.bounds(ctx, x, rows)
        base = torch.tensor(self._base_list() or [0.0] * lo.shape[0], dtype=torch.float64)
        slack = _forest_slack(forest, magnitude, base)
        lo, hi = lo + base - slack, hi + base + slack
        # a class no reached leaf scores keeps its base value (or 0), which the sum's bounds hold already:
        # every tree then reached a leaf without it (a weight of 0 in the bounds)
        count, classes = rows.shape[0], lo.shape[0]
        label = self._label_bounds(count)
        if self._binary:
            column = self.class_ids[0] if self.class_ids else 0
            s_lo, s_hi = lo[column], hi[column]
            scores = Interval.from_full(torch.stack([1 - s_hi, s_lo]).expand(count, 2),
                                        torch.stack([1 - s_lo, s_hi]).expand(count, 2), FLOAT, ctx.budget)
            return label, scores.widened(1.0)
        sums = Interval.from_full(lo.expand(count, classes), hi.expand(count, classes), FLOAT, ctx.budget)
        return label, _transformed_bounds(self.post_transform, sums.widened(1.0)).widened(1.0)

    def _label_bounds(self, count: int) -> Interval:
        if not self.classlabels_int64s:  # strings are not bounded: the widest value stands for them
            return Interval.top((count,), FLOAT)
        labels = torch.tensor(self.classlabels_int64s, dtype=torch.int64)
        return Interval.uniform(labels.min(), labels.max(), (count,), TensorProto.INT64)


def _forest_slack(forest: _Forest, magnitude: Tensor, base: Tensor) -> Tensor:
    """The float sum of one leaf weight per tree and the base value: within ``gamma`` of their magnitudes."""
    return arith.accumulation_gamma(len(forest.roots) + 1, FLOAT) * (magnitude + base.abs())


def _build_forest(op: str, rule, entries: tuple[Sequence[int], Sequence[int], Sequence[int], Sequence[float]],
                  outputs: int) -> _Forest:
    """A rule's ``nodes_*`` attributes as a :class:`_Forest`, its leaves' weights from ``entries`` (tree ids,
    node ids, output ids and weights: the targets of a regressor, the classes of a classifier)."""
    modes = list(rule.nodes_modes)
    if any(mode not in _BRANCHES | {"LEAF"} for mode in modes):
        raise UnsupportedOperator(f"{op}: an unknown node mode")
    index = {(tree, node): i for i, (tree, node) in enumerate(zip(rule.nodes_treeids, rule.nodes_nodeids))}
    roots: dict[int, int] = {}
    for i, tree in enumerate(rule.nodes_treeids):
        roots.setdefault(tree, i)
    try:
        true_next = [index[tree, child] if mode != "LEAF" else i for i, (tree, child, mode)
                     in enumerate(zip(rule.nodes_treeids, rule.nodes_truenodeids, modes))]
        false_next = [index[tree, child] if mode != "LEAF" else i for i, (tree, child, mode)
                      in enumerate(zip(rule.nodes_treeids, rule.nodes_falsenodeids, modes))]
        leaf_weights = torch.zeros((len(modes), outputs), dtype=torch.float64)
        leaf_scores = torch.zeros((len(modes), outputs), dtype=torch.bool)
        for tree, node, output, weight in zip(*entries):
            leaf_weights[index[tree, node], output] += weight
            leaf_scores[index[tree, node], output] = True
    except (KeyError, IndexError):
        raise UnsupportedOperator(f"{op}: a node or an entry names no node of its tree, or no output") from None
    missing = list(rule.nodes_missing_value_tracks_true) or [0] * len(modes)
    thresholds = _listed(rule.nodes_values, rule.nodes_values_as_tensor)
    return _Forest(list(roots.values()), modes, list(rule.nodes_featureids), thresholds, true_next, false_next,
                   [bool(m) for m in missing], leaf_weights, leaf_scores)


def _listed(values: Sequence[float], tensor: Tensor | None) -> list[float]:
    """An attribute given as a list of floats or as its ``_as_tensor`` twin (doubles)."""
    return [float(v) for v in tensor.reshape(-1).tolist()] if tensor is not None else [float(v) for v in values]


# ------------------------------------------------------------------------------ ZipMap
@register("ZipMap", domain=ML_DOMAIN)
class ZipMap(Identity):
    """Each row of probabilities as a map from class label to value: a sequence of maps, which no numeric
    operator reads; its values are the probabilities', so it is analysed as their copy (it computes nothing)."""

    classlabels_int64s: tuple[int, ...] = ()
    classlabels_strings: tuple[str, ...] = ()

