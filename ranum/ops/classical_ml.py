"""Operators of the ``ai.onnx.ml`` domain that scikit-learn pipelines exported by skl2onnx write around (or
instead of) a network; this module holds the preprocessing ones (Scaler, Normalizer, Binarizer, Imputer,
ArrayFeatureExtractor, OneHotEncoder, ZipMap) and what the family shares; linear models are in
:mod:`ranum.ops.classical_ml_linear`, tree ensembles in :mod:`ranum.ops.classical_ml_trees`.

Their semantics are onnxruntime's CPU kernels, the runtime ranum confirms in, where those differ from the spec:

* every kernel but Binarizer and Imputer reads its input as float32 (a double or integer input is converted
  first) and writes float32;
* Normalizer divides by the row's signed maximum (MAX), sum of magnitudes (L1) or writes
  ``sign(x) sqrt(x^2 / sum(x^2))`` (L2), and leaves a row whose divisor is 0 as it is. L2 squares each
  element in the input's own type: a square past float32's largest value is ``inf / inf = NaN``.
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
from ranum.domain.interval import Interval, elementwise
from ranum.errors import UnsupportedOperator
from ranum.ops._base import NodeContext, OpRule, structural
from ranum.ops.hazards import FORWARD, Hazard, Overflow, outside
from ranum.ops.registry import register
from ranum.ops.shape import Identity

__all__ = ["FLOAT", "ML_DOMAIN", "ArrayFeatureExtractor", "Binarizer", "Imputer", "Normalizer", "OneHotEncoder",
           "Scaler", "ZipMap", "as_float32", "as_rows", "column_interval", "float32_interval", "row_interval"]

ML_DOMAIN = "ai.onnx.ml"
FLOAT = TensorProto.FLOAT
# largest |x| whose square, computed in the input's type, is finite in float32 (integers: in the type)
_SQUARE_LIMITS = {TensorProto.INT32: 46340.0, TensorProto.INT64: 3037000499.0}


def as_rows(x: Tensor, op: str) -> Tensor:
    """A rank-1 or rank-2 operand as a matrix of rows (onnxruntime: a vector is one row)."""
    if x.dim() == 1:
        return x.reshape(1, -1)
    if x.dim() != 2:
        raise UnsupportedOperator(f"{op}: input of rank {x.dim()} (onnxruntime takes rank 1 or 2)")
    return x


def row_interval(x: Interval, op: str) -> Interval:
    """:func:`as_rows` of an interval: a vector's bounds as one row."""
    if x.shape is None or len(x.shape) not in (1, 2):
        raise UnsupportedOperator(f"{op}: input of rank {None if x.shape is None else len(x.shape)} "
                                  "(onnxruntime takes rank 1 or 2)")
    return x.broadcast_to((1, x.shape[0])) if len(x.shape) == 1 else x


def as_float32(x: Tensor) -> Tensor:
    """onnxruntime's reading of the input: float32, a float64 evaluation (ranum's exact path) kept."""
    return x if x.dtype in (torch.float32, torch.float64) else x.to(torch.float32)


def float32_interval(x: Interval) -> Interval:
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


def column_interval(values: Tensor) -> Interval:
    """Exact per-column values (a vector broadcast over the rows) as a point interval of float32."""
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
        xf = as_float32(x)
        offset, scale = (p.to(xf.dtype) for p in self._parameters(x.shape[-1] if x.dim() else 1))
        return (xf - offset) * scale

    def abstract(self, ctx: NodeContext, x: Interval) -> Interval:
        width = x.shape[-1] if x.shape else 1
        offset, scale = (column_interval(p) for p in self._parameters(width))

        def bounds(xl, xh, ol, oh, sl, sh):
            return arith.mul(*arith.sub(xl, xh, ol, oh), sl, sh)

        return elementwise(bounds, [float32_interval(x), offset, scale], FLOAT)


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
        # a double past float32's range converts to infinity: its row is then inf / inf
        converted = outside(-_FLOAT32_MAX, _FLOAT32_MAX, f"Normalizer ({self.norm}): a value past float32's range "
                            "converts to infinity, and its row becomes inf / inf = NaN",
                            name="normalizer-float32-overflow")
        return (converted, Overflow()) if self.norm == "MAX" else (converted,)

    def concrete(self, ctx: NodeContext, x: Tensor) -> Tensor:
        rows = as_rows(x, "Normalizer")
        values = as_float32(rows)
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
        rows = row_interval(float32_interval(x), "Normalizer")
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


_FLOAT32_MAX = float(torch.finfo(torch.float32).max)


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


# ------------------------------------------------------------------------------ ZipMap
@register("ZipMap", domain=ML_DOMAIN)
class ZipMap(Identity):
    """Each row of probabilities as a map from class label to value: a sequence of maps, which no numeric
    operator reads; its values are the probabilities', so it is analysed as their copy (it computes nothing)."""

    classlabels_int64s: tuple[int, ...] = ()
    classlabels_strings: tuple[str, ...] = ()
