"""Constants, ranges, type conversions, linear (de)quantization and dropout.

Constant and ConstantOfShape outputs are exact (a ConstantOfShape whose ``value`` is NaN, of a shape known
only at run time, is reported as a NaN fill: no constant holds that NaN to be found); Range is exact for
integers and bounded by the runtime's accumulated sum for floats; Cast rounds only when the target type is
narrower (and can overflow to inf: Overflow hazard); Dropout is the identity at inference, a scaling in
training. QuantizeLinear / DequantizeLinear support 8- and 16-bit integer quantized types with per-tensor,
per-axis and blocked scales; the quotient x / scale is bounded with the division's rounding before
rounding half to even and saturating, so a quantized result is exact wherever the quotient is
decided. DequantizeLinear subtracts an int32 zero point in int32, as onnxruntime does: the difference
wraps around. Shape operands must be exact (or settled by ONNX shape inference).

uint64 bounds are held as int64 (see :mod:`ranum.domain.dtypes`), so a Cast from uint64 reads them
soundly under both ways they arise: an upper bound at int64's maximum stands for any value up to
2**64 - 1 (the widest interval of an operator without a rule, or a range given past int64's maximum),
and negative bounds are the bit patterns of values from 2**63 on (a constant, a wrapped sum).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction

import torch
from onnx import TensorProto
from torch import Tensor

from ranum.domain import arith, blocks
from ranum.domain.dtypes import bound_dtype, elem_type_of, float_facts, is_bool, is_float, torch_dtype
from ranum.domain.interval import Interval, elementwise
from ranum.errors import UnsupportedOperator
from ranum.ops._base import ELEMENTWISE, HULLS, NodeContext, OpRule, exact_ints, inferred_shape
from ranum.ops.hazards import FORWARD, Hazard, HazardHit, Overflow, equal_to
from ranum.ops.registry import register

__all__ = ["Cast", "CastLike", "Constant", "ConstantOfShape", "DequantizeLinear", "Dropout", "QuantizeLinear",
           "Range"]

INT64 = TensorProto.INT64
UINT64 = TensorProto.UINT64


# ------------------------------------------------------------------------------ constants, ranges
@register("Constant")
class Constant(OpRule):
    """An exact constant from ``value``, ``value_float(s)`` or ``value_int(s)``."""

    value: Tensor | None = None
    value_float: float | None = None
    value_floats: tuple[float, ...] | None = None
    value_int: int | None = None
    value_ints: tuple[int, ...] | None = None
    value_string: str | None = None
    value_strings: tuple[str, ...] | None = None
    sparse_value: object = None
    rounds = False

    def __post_init__(self) -> None:
        if self.value is None and all(v is None for v in (self.value_float, self.value_floats, self.value_int,
                                                          self.value_ints)):
            raise UnsupportedOperator("Constant: only value, value_float(s) and value_int(s) are supported")

    def concrete(self, ctx: NodeContext) -> Tensor:
        if self.value is not None:
            return self.value
        if self.value_float is not None or self.value_floats is not None:
            chosen = self.value_float if self.value_float is not None else list(self.value_floats)
            return torch.tensor(chosen, dtype=torch.float32)
        return torch.tensor(self.value_int if self.value_int is not None else list(self.value_ints),
                            dtype=torch.int64)

    def abstract(self, ctx: NodeContext) -> Interval:
        value = self.concrete(ctx)
        return Interval.point(value, elem_type_of(value.dtype))


@dataclass(frozen=True)
class NaNFill(Hazard):
    """ConstantOfShape's ``value`` is NaN, so is every element of its output. Of a constant shape, the output is
    a constant that the nodes reading it report (``nan-constant``); of a shape known only at run time, no
    constant holds the NaN, so the ConstantOfShape reports it: certain where no dimension can be 0, possible
    where one can, none where one always is (an empty tensor holds no NaN). No clip removes it."""

    name: str = "nan-fill"
    description: str = "fills its output with NaN (its value attribute), of a shape known only at run time"
    kind: str = FORWARD
    operand: int = -1
    holds_nan: bool = False

    def operand_name(self, inputs, outputs):
        return outputs[0] if outputs else ""

    def check(self, inputs, outputs):
        shape = inputs[0] if inputs else None
        if not self.holds_nan or shape is None or shape.is_exact:
            return None
        if shape.numblocks and float(shape.upper.min()) < 1:
            return None  # a dimension that is always 0
        certain = not shape.numblocks or float(shape.lower.min()) >= 1
        return HazardHit(certain, -math.inf, math.inf)

    def triggered(self, inputs, outputs):
        return torch.isnan(outputs[0])

    def distance(self, inputs, outputs):
        return torch.zeros(())

    def invalid_text(self, elem_type):
        return "NaN"

    def repair_operand(self) -> int | None:
        return None


@register("ConstantOfShape")
class ConstantOfShape(OpRule):
    """A tensor of the given shape filled with ``value`` (default float32 0): exact."""

    value: Tensor | None = None
    rounds = False
    unknown_shapes = HULLS

    @property
    def hazards(self) -> tuple[Hazard, ...]:  # type: ignore[override]
        """A NaN fill, declared always (the operator table lists it) and firing only for a NaN ``value``."""
        fill = self._fill()
        return (NaNFill(holds_nan=fill.is_floating_point() and bool(torch.isnan(fill))),)

    def _fill(self) -> Tensor:
        return self.value.reshape(()) if self.value is not None else torch.tensor(0.0, dtype=torch.float32)

    def concrete(self, ctx: NodeContext, shape: Tensor) -> Tensor:
        return self._fill().expand(exact_ints(shape, "shape", "ConstantOfShape")).clone()

    def without_shapes(self, ctx: NodeContext, shape: Interval) -> Interval:
        """The shape operand's own length is known only at run time: every element is still the fill value."""
        return self._unshaped()

    def _unshaped(self) -> Interval:
        fill = self._fill()
        etype = elem_type_of(fill.dtype)
        bound = fill.to(bound_dtype(etype))
        return Interval.create(bound, bound, (), None, etype)

    def abstract(self, ctx: NodeContext, shape: Interval) -> Interval:
        fill = self._fill()
        etype = elem_type_of(fill.dtype)
        if not shape.is_exact and not (ctx.output_shapes and ctx.output_shapes[0] is not None):
            return self._unshaped()  # a shape computed from data (e.g. a count of boxes): every element is the fill
        dims = exact_ints(shape, "shape", "ConstantOfShape") if shape.is_exact else \
            inferred_shape(ctx, "ConstantOfShape", "shape")
        if shape.shape != (len(dims),):
            raise UnsupportedOperator(f"ConstantOfShape: inferred shape {dims} does not fit shape operand")
        bound = fill.to(bound_dtype(etype)).expand([1 if n else 0 for n in dims]).clone()
        return Interval.create(bound, bound, blocks.single_splits(dims), dims, etype)


def _integer_steps(start: Interval, limit: Interval, delta: Interval) -> Interval | None:
    """An integer Range of a length that varies with its operands: every value lies from start towards limit,
    never reaching it (delta of one sign; a float Range's rounding error grows with a length not known). A
    start beyond the limit gives no value at all (a ReduceMin of no element starts at the type's largest)."""
    if is_float(start.elem_type):
        return None
    d_lo, d_hi = int(delta.lower.min()), int(delta.upper.max())
    s_lo, s_hi = int(start.lower.min()), int(start.upper.max())
    if d_lo > 0:
        hi = int(limit.upper.max()) - 1
        lo = min(s_lo, hi)
    elif d_hi < 0:
        lo = int(limit.lower.min()) + 1
        hi = max(s_hi, lo)
    else:
        return None
    return Interval.create(torch.tensor(lo), torch.tensor(hi), (), None, start.elem_type)


def _range_count(start: Tensor, limit: Tensor, delta: Tensor) -> int:
    """Element count as onnxruntime computes it, at least 0 (measured, onnxruntime 1.32): for floats
    ``ceil((double(limit) - double(start)) / double(delta))``, the difference taken in float64, not in the
    element type (a float32 ``Range(-1e-9, 3, 1)`` has 4 elements, the last 3.0); for integers the exact
    ``ceil((limit - start) / delta)``, a difference past the type neither wrapping around nor rounding (int64
    ``Range(0, 2**62, 2**61 - 1)`` has 3 elements, where float64 would give 2)."""
    return max(math.ceil(_quotient(start, limit, delta)), 0)


def _quotient(start: Tensor | float, limit: Tensor | float, delta: Tensor | float) -> float | Fraction:
    """``(limit - start) / delta`` of one-element values as onnxruntime's count reads it: exact for integers,
    in float64 for floats (each step rounded once)."""
    first, last, step = (_scalar(v) for v in (start, limit, delta))
    if all(isinstance(v, int) for v in (first, last, step)):
        return Fraction(last - first, step)
    return (float(last) - float(first)) / float(step)


def _scalar(value: Tensor | float) -> int | float:
    """A one-element value as a Python int (integer tensors, exactly) or float."""
    if isinstance(value, Tensor):
        value = value.reshape(())
        return int(value) if not value.is_floating_point() else float(value)
    return value


def _count_bounds(start: Interval, limit: Interval, delta: Interval) -> int | None:
    """The element count when every value in the operand intervals gives the same one, else None. The
    quotient is monotone in each operand while delta keeps one sign, and so is each rounding of it: its
    extremes are at the corners."""
    d_lo, d_hi = _scalar(delta.lower), _scalar(delta.upper)
    if d_lo <= 0 <= d_hi:
        return None
    ends = ((_scalar(start.upper), _scalar(limit.lower)), (_scalar(start.lower), _scalar(limit.upper)))
    quotients = [_quotient(first, last, step) for first, last in ends for step in (d_lo, d_hi)]
    low, high = min(quotients), max(quotients)
    if is_float(start.elem_type):  # integer quotients are exact (Fractions): no slack, no float conversion
        slack = 4 * float_facts(start.elem_type).eps
        low, high = low - abs(low) * slack, high + abs(high) * slack
    low, high = max(math.ceil(low), 0), max(math.ceil(high), 0)
    return low if low == high else None


@register("Range")
class Range(OpRule):
    """start, start + delta, ... below limit. onnxruntime accumulates ``delta`` in the element type,
    so float bounds carry a summation error (the rule always runs its abstract semantics). When the
    length is not the same for every value of the operands, the output has an unknown shape. From
    opset 27, 16-bit floats accumulate in float32 (``stash_type`` 1, the default) and are rounded once at
    the end; with ``stash_type`` 0, or before opset 27, in their own type."""

    stash_type: int = 1
    hazards = (equal_to(0.0, "Range with delta 0 is endless (invalid)", name="range-zero-delta", operand=2),)
    rounds = False
    accumulates = True
    unknown_shapes = HULLS

    def without_shapes(self, ctx: NodeContext, start: Interval, limit: Interval, delta: Interval) -> Interval:
        """Operands of a shape known only at run time (each holds one value): as a count that varies."""
        hulls = [iv.hull() for iv in (start, limit, delta)]
        if any(h is None for h in hulls):
            return Interval.top(None, start.elem_type)
        return _integer_steps(*hulls) or Interval.top(None, start.elem_type)

    def concrete(self, ctx: NodeContext, start: Tensor, limit: Tensor, delta: Tensor) -> Tensor:
        if bool(delta == 0):
            raise UnsupportedOperator("Range: delta is 0 (endless range)")
        steps = torch.arange(_range_count(start, limit, delta), dtype=torch.int64)
        if start.is_floating_point():
            return (start.double() + steps.double() * delta.double()).to(start.dtype)
        return (start + steps * delta).to(start.dtype)

    def abstract(self, ctx: NodeContext, start: Interval, limit: Interval, delta: Interval) -> Interval:
        etype = start.elem_type
        exact = start.is_exact and limit.is_exact and delta.is_exact and bool((delta.lower != 0).all())
        if exact and not is_float(etype):
            return Interval.point(self.concrete(ctx, start.exact_value(), limit.exact_value(),
                                                delta.exact_value()), etype)
        count = _count_bounds(start, limit, delta)
        if exact:
            count = _range_count(start.exact_value(), limit.exact_value(), delta.exact_value())
        if count is None:
            return _integer_steps(start, limit, delta) or Interval.top(None, etype)
        if not is_float(etype):  # exact int64 steps: each bound is an element of the run at a corner of the box
            i = torch.arange(count, dtype=torch.int64)
            return Interval.from_full(start.lower.reshape(()) + i * delta.lower.reshape(()),
                                      start.upper.reshape(()) + i * delta.upper.reshape(()), etype)
        i = torch.arange(count, dtype=torch.float64)
        lo = start.lower.reshape(()).to(torch.float64) + i * delta.lower.reshape(()).to(torch.float64)
        hi = start.upper.reshape(()).to(torch.float64) + i * delta.upper.reshape(()).to(torch.float64)
        stashed = etype in (TensorProto.FLOAT16, TensorProto.BFLOAT16) and self.stash_type == 1 and ctx.opset >= 27
        # element i is a sum of i + 1 terms: |error| <= gamma_i * sum |terms| (Higham)
        size = torch.maximum(start.lower.abs(), start.upper.abs()).reshape(())
        step = torch.maximum(delta.lower.abs(), delta.upper.abs()).reshape(())
        unit = i * (float_facts(TensorProto.FLOAT if stashed else etype).eps / 2)
        gamma = torch.where(unit < 0.5, unit / (1.0 - unit.clamp(max=0.5)), torch.full_like(unit, torch.inf))
        slack = torch.nan_to_num(gamma * (size + i * step), nan=torch.inf)
        out = Interval.from_full(lo - slack, hi + slack, etype)
        return out.widened(1.0) if stashed else out  # the float32 sums rounded to the 16-bit type


# ------------------------------------------------------------------------------ conversions
_INT_RANGE = {
    TensorProto.INT8: (-(2**7), 2**7 - 1), TensorProto.UINT8: (0, 2**8 - 1),
    TensorProto.INT16: (-(2**15), 2**15 - 1), TensorProto.INT32: (-(2**31), 2**31 - 1),
    TensorProto.INT64: (-(2**63), 2**63 - 1),
}
_DIGITS = {TensorProto.FLOAT16: 11, TensorProto.BFLOAT16: 8, TensorProto.FLOAT: 24, TensorProto.DOUBLE: 53}


def _check_target(to: int, op: str) -> None:
    if to not in _INT_RANGE and to not in _DIGITS and not is_bool(to):
        raise UnsupportedOperator(f"{op}: conversion to element type {to} is not supported")


def _lossy(source: int, target: int) -> bool:
    """Whether converting ``source`` values to the float type ``target`` can round."""
    if is_bool(source):
        return False
    if is_float(source):
        return _DIGITS[source] > _DIGITS[target] or float_facts(source).max > float_facts(target).max
    low, high = _INT_RANGE.get(source, (-(2**63), 2**63))
    return max(-low, high) > 2 ** _DIGITS[target]


def _uint64_values(lo: Tensor, hi: Tensor) -> tuple[Tensor, Tensor]:
    """float64 bounds of the uint64 values whose int64-held bounds are ``[lo, hi]`` (see the module doc): each
    a correctly rounded conversion of an integer bound, as onnxruntime converts the values."""
    top = torch.full_like(hi, 2.0**64, dtype=torch.float64)  # 2**64 - 1 as float32 or float64 (float16: inf)
    unsigned_lo, unsigned_hi = (t.to(torch.uint64).to(torch.float64) for t in (lo, hi))
    wrapped = hi < 0  # all bit patterns of values from 2**63: the unsigned reading is exact
    straddles = (lo < 0) & ~wrapped  # values from 0 up, and from 2**63 up
    low = torch.where(straddles, torch.zeros_like(unsigned_lo), unsigned_lo)
    high = torch.where(straddles | (hi == torch.iinfo(torch.int64).max), top, unsigned_hi)
    return low, high


def _cast(x: Interval, to: int) -> Interval:
    """Sound conversion: floats to ints truncate toward zero (out of range: any value of the type),
    narrowing float conversions round to nearest (one ulp outward, overflow to infinity)."""
    lo, hi = x.lower, x.upper
    if is_bool(to):
        return x.with_bounds(((lo > 0) | (hi < 0)).to(torch.int64), ((lo != 0) | (hi != 0)).to(torch.int64), to)
    if is_float(to):
        lo, hi = _uint64_values(lo, hi) if x.elem_type == UINT64 else (lo.to(torch.float64), hi.to(torch.float64))
        out = x.with_bounds(lo, hi, to)
        return out.widened(1.0) if _lossy(x.elem_type, to) else out
    low, high = _INT_RANGE[to]
    if is_float(x.elem_type):
        lo, hi = torch.trunc(lo), torch.trunc(hi)
        bad = (lo < low) | (hi >= float(high) + 1.0)
    elif x.elem_type == UINT64:  # the unsigned values must fit: [lo, hi] is then exact
        value_lo, value_hi = _uint64_values(lo, hi)
        bad = (value_lo < low) | (value_hi > high)
    else:
        bad = (lo < low) | (hi > high)
    lower = torch.where(bad, torch.full_like(lo, 0), lo).to(torch.int64)
    upper = torch.where(bad, torch.full_like(hi, 0), hi).to(torch.int64)
    lower = torch.where(bad, torch.full_like(lower, low), lower)
    upper = torch.where(bad, torch.full_like(upper, high), upper)
    return x.with_bounds(lower, upper, to)


def _converted(ctx: NodeContext | None, x: Tensor, dtype: torch.dtype) -> Tensor:
    """``x`` converted to ``dtype``; uint64 values held as int64 (bit patterns) are read as unsigned."""
    unsigned = ctx is not None and ctx.input_types[:1] == (UINT64,) and dtype.is_floating_point
    return (x.to(torch.uint64) if unsigned else x).to(dtype)


@register("Cast", since=6)
class Cast(OpRule):
    """Element type conversion; a float narrowing may overflow to infinity."""
    unknown_shapes = ELEMENTWISE

    to: int = 0
    saturate: int = 1
    hazards = (Overflow(),)
    rounds = False  # the abstract rule rounds itself, and only when the conversion can round

    def __post_init__(self) -> None:
        _check_target(self.to, "Cast")

    def concrete(self, ctx: NodeContext, x: Tensor) -> Tensor:
        return _converted(ctx, x, torch_dtype(self.to))

    def abstract(self, ctx: NodeContext, x: Interval) -> Interval:
        return _cast(x, self.to)


@register("CastLike")
class CastLike(OpRule):
    """Cast to the element type of the second operand."""
    unknown_shapes = ELEMENTWISE

    saturate: int = 1
    hazards = (Overflow(),)
    rounds = False

    def concrete(self, ctx: NodeContext, x: Tensor, like: Tensor) -> Tensor:
        return _converted(ctx, x, like.dtype)

    def abstract(self, ctx: NodeContext, x: Interval, like: Interval) -> Interval:
        _check_target(like.elem_type, "CastLike")
        return _cast(x, like.elem_type)


# ------------------------------------------------------------------------------ quantization
_QUANTIZED = {
    TensorProto.INT8: (-(2**7), 2**7 - 1), TensorProto.UINT8: (0, 2**8 - 1),
    TensorProto.INT16: (-(2**15), 2**15 - 1), TensorProto.UINT16: (0, 2**16 - 1),
}


def _quantized_type(elem_type: int, op: str, int32: bool = False) -> int:
    """The quantized element type, checked to be one the rules support."""
    if elem_type in _QUANTIZED or (int32 and elem_type == TensorProto.INT32):
        return elem_type
    raise UnsupportedOperator(f"{op}: quantized element type {elem_type} is not supported "
                              "(int8, uint8, int16, uint16" + (", int32)" if int32 else ")"))


def _param_layout(shape: Sequence[int], param: Sequence[int], axis: int, block_size: int,
                  op: str) -> Callable[[Tensor], Tensor]:
    """How a scale or zero point of shape ``param`` broadcasts to the input of shape ``shape``:
    per tensor (one value), per axis (1-D along ``axis``) or blocked (``block_size`` copies along it)."""
    rank = len(shape)
    if math.prod(param) == 1 and len(param) <= 1:
        return lambda t: t.reshape(())
    if not -rank <= axis < rank:
        raise UnsupportedOperator(f"{op}: axis {axis} out of range for rank {rank}")
    axis %= rank
    if len(param) == 1 and param[0] == shape[axis] and not block_size:
        view = [1] * rank
        view[axis] = shape[axis]
        return lambda t: t.reshape(view)
    fits = len(param) == rank and block_size > 0 and all(
        p == n if a != axis else p == -(-n // block_size) for a, (p, n) in enumerate(zip(param, shape)))
    if not fits:
        raise UnsupportedOperator(f"{op}: scale of shape {tuple(param)} does not fit input {tuple(shape)} "
                                  f"(axis {axis}, block_size {block_size})")
    return lambda t: t.repeat_interleave(block_size, dim=axis).narrow(axis, 0, shape[axis])


def _param(iv: Interval | None, layout: Callable[[Tensor], Tensor]) -> Interval | None:
    """A scale or zero point interval laid out to broadcast against the input."""
    if iv is None:
        return None
    lo, hi = iv.full()
    return Interval.from_full(layout(lo), layout(hi), iv.elem_type)


def _quotient_bounds(xl: Tensor, xh: Tensor, sl: Tensor, sh: Tensor, rel: float) -> tuple[Tensor, Tensor]:
    """Bounds of the rounded quotient x / s (any value when s may be 0: x / 0 is infinite or NaN)."""
    has_zero = (sl <= 0) & (sh >= 0)
    corners = torch.stack([a / b for a in (xl, xh) for b in (torch.where(has_zero, 1.0, sl),
                                                            torch.where(has_zero, 1.0, sh))])
    corners = torch.nan_to_num(corners, nan=0.0)  # inf / inf (unbounded x and s): the other corners bound it
    lo, hi = corners.amin(0), corners.amax(0)
    lo, hi = lo - lo.abs() * rel, hi + hi.abs() * rel
    inf = torch.full_like(lo, math.inf)
    return torch.where(has_zero, -inf, lo), torch.where(has_zero, inf, hi)


@register("QuantizeLinear", since=10)
class QuantizeLinear(OpRule):
    """y = saturate(round_half_even(x / y_scale) + y_zero_point), the division in float32 as
    onnxruntime computes it. The output type is the zero point's, else ``output_dtype``, else uint8.
    Float 8, 4 and 2-bit outputs (and ``saturate``, which only concerns float 8) are not supported."""

    axis: int = 1
    block_size: int = 0
    output_dtype: int = 0
    precision: int = 0
    saturate: int = 1
    hazards = (equal_to(0.0, "quantization divides by a zero scale", name="division-by-zero", operand=1),)
    rounds = False
    parameter_operands = frozenset({1, 2})  # y_scale, y_zero_point

    def __post_init__(self) -> None:
        if self.precision not in (0, TensorProto.FLOAT):
            raise UnsupportedOperator(f"QuantizeLinear: precision {self.precision} (only float32 division)")

    def _out_type(self, zero_point_type: int) -> int:
        chosen = zero_point_type or self.output_dtype or TensorProto.UINT8
        return _quantized_type(chosen, "QuantizeLinear")

    def concrete(self, ctx: NodeContext, x: Tensor, scale: Tensor, zero_point: Tensor | None = None) -> Tensor:
        zp_type = ctx.input_types[2] if zero_point is not None and len(ctx.input_types) > 2 else 0
        if not x.is_floating_point():
            raise UnsupportedOperator("QuantizeLinear: only floating-point inputs are supported")
        low, high = _QUANTIZED[self._out_type(zp_type)]
        layout = _param_layout(tuple(x.shape), tuple(scale.shape), self.axis, self.block_size, "QuantizeLinear")
        q = torch.round(x.to(torch.float32) / layout(scale).to(torch.float32))
        if zero_point is not None:
            q = q + layout(zero_point).to(torch.float32)
        out_dtype = zero_point.dtype if zero_point is not None else torch_dtype(self._out_type(0))
        return q.clamp(low, high).to(out_dtype)

    def abstract(self, ctx: NodeContext, x: Interval, scale: Interval, zero_point: Interval | None = None) -> Interval:
        if not is_float(x.elem_type):
            raise UnsupportedOperator("QuantizeLinear: only floating-point inputs are supported")
        out_type = self._out_type(zero_point.elem_type if zero_point is not None else 0)
        low, high = _QUANTIZED[out_type]
        layout = _param_layout(x.shape, scale.shape, self.axis, self.block_size, "QuantizeLinear")
        # float32 division, or a 16-bit one: a few units of the coarser type's rounding
        rel = 2 * max(float_facts(t).eps for t in (x.elem_type, scale.elem_type, TensorProto.FLOAT))
        operands = [x, _param(scale, layout)] + ([_param(zero_point, layout)] if zero_point is not None else [])

        def fn(xl, xh, sl, sh, zl=0.0, zh=0.0):
            lo, hi = _quotient_bounds(xl, xh, sl, sh, rel)
            lo, hi = torch.round(lo) + zl, torch.round(hi) + zh
            return lo.clamp(low, high), hi.clamp(low, high)

        return elementwise(fn, operands, out_type)


@register("DequantizeLinear", since=10)
class DequantizeLinear(OpRule):
    """y = (x - x_zero_point) * x_scale: the integer difference is converted to float32 (exact
    below 2**24, so only int32 inputs round there) and multiplied in float32; the output type is
    ``output_dtype``, else the scale's. The interpreter rounds the real product outward. onnxruntime
    subtracts in int32, so an int32 difference wraps around (2147483647 - (-1) is -2147483648)."""

    axis: int = 1
    block_size: int = 0
    output_dtype: int = 0
    hazards = (Overflow(),)
    parameter_operands = frozenset({1, 2})  # x_scale, x_zero_point

    def concrete(self, ctx: NodeContext, x: Tensor, scale: Tensor, zero_point: Tensor | None = None) -> Tensor:
        layout = _param_layout(tuple(x.shape), tuple(scale.shape), self.axis, self.block_size, "DequantizeLinear")
        diff = x.to(torch.int64) - (layout(zero_point).to(torch.int64) if zero_point is not None else 0)
        if x.dtype == torch.int32:
            diff = diff.to(torch.int32).to(torch.int64)  # the int32 subtraction wraps around
        wide = torch.float64 if scale.dtype == torch.float64 else torch.float32
        y = diff.to(torch.float32).to(wide) * layout(scale).to(wide)
        return y.to(torch_dtype(self.output_dtype) if self.output_dtype else scale.dtype)

    def abstract(self, ctx: NodeContext, x: Interval, scale: Interval, zero_point: Interval | None = None) -> Interval:
        _quantized_type(x.elem_type, "DequantizeLinear", int32=True)
        layout = _param_layout(x.shape, scale.shape, self.axis, self.block_size, "DequantizeLinear")
        out_type = self.output_dtype or scale.elem_type
        operands = [x, _param(scale, layout)] + ([_param(zero_point, layout)] if zero_point is not None else [])
        rounds_diff = x.elem_type == TensorProto.INT32
        eps = float_facts(TensorProto.FLOAT).eps

        def fn(xl, xh, sl, sh, zl=0, zh=0):
            dl, dh = xl - zh, xh - zl
            if rounds_diff:  # an int32 difference, which wraps, and whose conversion to float32 rounds beyond 2**24
                dl, dh = _wrapped_int32(dl, dh)
            dl, dh = dl.to(torch.float64), dh.to(torch.float64)
            if rounds_diff:
                dl, dh = dl - dl.abs() * eps, dh + dh.abs() * eps
            return arith.mul(dl, dh, sl, sh)

        return elementwise(fn, operands, out_type)


def _wrapped_int32(low: Tensor, high: Tensor) -> tuple[Tensor, Tensor]:
    """Bounds of the int32 wrap-around of integers in ``[low, high]``, differences of two int32 values (so within
    2**32 of 0): exact where the whole range lies past one end of int32 (one shift by 2**32), the whole int32
    range where it reaches past an end from inside."""
    first, last = _INT_RANGE[TensorProto.INT32]
    span = last - first + 1
    above, below = low > last, high < first
    straddles = ((high > last) & ~above) | ((low < first) & ~below)
    shift = torch.where(above, -span, torch.where(below, span, 0))
    low = torch.where(straddles, first, low + shift)
    high = torch.where(straddles, last, high + shift)
    return low, high


# ------------------------------------------------------------------------------ dropout
@register("Dropout", since=12)
class Dropout(OpRule):
    """Identity at inference; in training mode ``x * mask / (1 - ratio)`` with a random mask.

    ``ratio`` is an attribute before opset 12 and an input from 12 (with ``training_mode``)."""

    ratio: float = 0.5
    seed: int | None = None
    hazards = (equal_to(1.0, "dropout ratio 1 divides by zero in training mode (onnxruntime rejects it)",
                        name="division-by-zero", operand=1),)
    rounds = False
    deterministic = False  # the training-mode mask is random: never take the concrete fast path

    def concrete(self, ctx: NodeContext, data: Tensor, ratio: Tensor | None = None,
                 training_mode: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if training_mode is None or not bool(training_mode):
            return data, torch.ones(data.shape, dtype=torch.bool)
        rate = float(ratio) if ratio is not None else 0.5
        mask = torch.rand(data.shape) >= rate
        return data * mask / (1.0 - rate), mask

    def abstract(self, ctx: NodeContext, data: Interval, ratio: Interval | None = None,
                 training_mode: Interval | None = None) -> tuple[Interval, Interval]:
        ones = Interval.uniform(1, 1, data.shape, TensorProto.BOOL)
        if training_mode is None or not bool((training_mode.upper > 0).any()):
            return data, ones
        r_lo = ratio.lower.min() if ratio is not None else torch.tensor(0.5, dtype=torch.float64)
        r_hi = ratio.upper.max() if ratio is not None else torch.tensor(0.5, dtype=torch.float64)
        finite = r_hi < 1  # the scale 1 / (1 - ratio) grows with ratio below 1
        s_lo = torch.where(finite, 1.0 / torch.where(finite, 1.0 - r_lo, 1.0), torch.full_like(r_lo, -torch.inf))
        s_hi = torch.where(finite, 1.0 / torch.where(finite, 1.0 - r_hi, 1.0), torch.full_like(r_hi, torch.inf))
        lo, hi = arith.mul(data.lower, data.upper, s_lo, s_hi)
        lo, hi = torch.minimum(torch.minimum(lo, data.lower), torch.zeros_like(lo)), \
            torch.maximum(torch.maximum(hi, data.upper), torch.zeros_like(hi))
        mask = Interval.uniform(0, 1, data.shape, TensorProto.BOOL)
        return data.with_bounds(lo, hi).widened(4.0), mask
