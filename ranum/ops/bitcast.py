"""BitCast (opset 26): the same bits read as another element type of the same width.

An exact operand gives the exact reinterpreted tensor. Otherwise the rule works on *bit patterns*, the
``w``-bit words read as unsigned integers, which it keeps as at most two ranges per block: one below the
sign bit ``2**(w-1)`` and one at or above it. On each side of the sign bit the patterns are monotone in
the value they encode:

* a float's patterns grow with its magnitude (sign-magnitude layout): ``[0, hi]`` is the patterns of
  ``+0`` to ``hi``, ``[lo, 0]`` those of ``-0`` (an interval reaching 0 may hold ``-0``) to ``lo``;
* a signed integer ``v < 0`` is the pattern ``v + 2**w`` (two's complement), an unsigned one itself.

Read back in the target type, each range maps monotonically again: to an integer range, or to a float range
whose patterns past the infinity's are NaN. A block that can hold such a NaN (or an infinity) gets an
infinite bound, and the hazard reports it: reading arbitrary bits as a float is how a hashing or
bit-manipulation trick (an inverse square root's magic constant, a packed quantized weight) makes NaN.

Bounds of a float operand are float64: rounding them to the operand's own type to nearest can only move
them outward on the float grid (no value of that type lies between a bound and its rounding), so their
patterns bound the operand's. 64-bit types are read exactly or not at all (their unsigned patterns do not
fit the int64 bounds): a 64-bit BitCast of a range holds any value of its target type.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from onnx import TensorProto
from torch import Tensor

from ranum.domain.dtypes import bound_dtype, is_bool, is_float, torch_dtype, type_name
from ranum.domain.interval import Interval
from ranum.errors import UnsupportedOperator
from ranum.ops._base import ELEMENTWISE, NodeContext, OpRule
from ranum.ops.hazards import Overflow
from ranum.ops.registry import register

__all__ = ["BitCast", "NonFinitePattern"]

# element type -> (width in bits, the signed integer dtype its bits are viewed through, signed)
_WORDS: dict[int, tuple[int, torch.dtype, bool]] = {
    TensorProto.FLOAT16: (16, torch.int16, True), TensorProto.BFLOAT16: (16, torch.int16, True),
    TensorProto.FLOAT: (32, torch.int32, True), TensorProto.DOUBLE: (64, torch.int64, True),
    TensorProto.INT8: (8, torch.int8, True), TensorProto.UINT8: (8, torch.int8, False),
    TensorProto.INT16: (16, torch.int16, True), TensorProto.UINT16: (16, torch.int16, False),
    TensorProto.INT32: (32, torch.int32, True), TensorProto.UINT32: (32, torch.int32, False),
    TensorProto.INT64: (64, torch.int64, True), TensorProto.BOOL: (8, torch.int8, False),
}
_RANGED_WIDTHS = (8, 16, 32)  # widths whose unsigned patterns fit the int64 bounds


@dataclass(frozen=True)
class NonFinitePattern(Overflow):
    """Reinterpreted bits that can read as NaN or an infinity (the operand itself finite)."""

    name: str = "bitcast-not-finite"
    description: str = "bits read as a float can be NaN or infinite"

    def triggered(self, inputs, outputs):
        finite_inputs = all(bool(torch.isfinite(x).all()) for x in inputs if x is not None and x.is_floating_point())
        return ~torch.isfinite(outputs[0]) & finite_inputs


@register("BitCast", since=26)
class BitCast(OpRule):
    """The operand's bits as element type ``to`` (same width)."""

    unknown_shapes = ELEMENTWISE
    to: int = 0
    hazards = (NonFinitePattern(),)
    rounds = False  # no arithmetic: the result is whatever the bits read as

    def concrete(self, ctx: NodeContext, x: Tensor) -> Tensor:
        source = ctx.input_types[0] if ctx.input_types else _elem_type_of_held(x)
        return _reinterpreted(x, source, self._target(source))

    def abstract(self, ctx: NodeContext, x: Interval) -> Interval:
        target = self._target(x.elem_type)
        if x.is_exact:
            return Interval.point(_reinterpreted(x.exact_value(), x.elem_type, target), target, finite=None)
        if _WORDS[target][0] not in _RANGED_WIDTHS:
            return Interval.top(x.shape, target)
        low_half, high_half = _patterns(x)
        lower, upper = _read_back(low_half, high_half, _WORDS[x.elem_type][0], target)
        return x.with_bounds(lower, upper, target)

    def _target(self, source: int) -> int:
        if source not in _WORDS or self.to not in _WORDS or is_bool(self.to):
            raise UnsupportedOperator(f"BitCast: from {type_name(source)} to {type_name(self.to)} is not supported")
        if _WORDS[source][0] != _WORDS[self.to][0]:
            raise UnsupportedOperator(f"BitCast: {type_name(source)} and {type_name(self.to)} differ in width")
        return self.to


def _elem_type_of_held(x: Tensor) -> int:
    for elem_type, dtype in ((t, torch_dtype(t)) for t in _WORDS):
        if dtype == x.dtype:
            return elem_type
    raise UnsupportedOperator(f"BitCast: operand of dtype {x.dtype}")


def _reinterpreted(x: Tensor, source: int, target: int) -> Tensor:
    """Concrete bits of ``x`` (held in ``torch_dtype(source)``) read as ``target``, held in its dtype."""
    width, word, _ = _WORDS[source]
    bits = x.view(word) if x.is_floating_point() else x.to(word)  # wider holders wrap to the word
    if is_float(target):
        return bits.view(torch_dtype(target))
    value = bits.to(torch.int64)
    if not _WORDS[target][2] and width < 64:
        value = value & ((1 << width) - 1)
    return value.to(torch_dtype(target))


Range = tuple[Tensor, Tensor, Tensor]  # lower pattern, upper pattern, whether the block has such patterns


def _patterns(x: Interval) -> tuple[Range, Range]:
    """Per block, the unsigned patterns below the sign bit and those at or above it."""
    width, _, signed = _WORDS[x.elem_type]
    sign, whole = 1 << (width - 1), 1 << width
    lo, hi = x.lower, x.upper
    if is_float(x.elem_type):
        zero = torch.zeros_like(lo)
        low = (_float_bits(torch.maximum(lo, zero), x.elem_type), _float_bits(hi, x.elem_type), hi >= 0)
        high = (sign + _float_bits(torch.maximum(-hi, zero), x.elem_type), sign + _float_bits(-lo, x.elem_type),
                lo <= 0)
        return low, high
    if signed:
        return (lo.clamp(min=0), hi, hi >= 0), (lo + whole, hi.clamp(max=-1) + whole, lo < 0)
    return (lo, hi.clamp(max=sign - 1), lo < sign), (lo.clamp(min=sign), hi, hi >= sign)


def _float_bits(values: Tensor, elem_type: int) -> Tensor:
    """The patterns (int64) of non-negative float64 values rounded to nearest in ``elem_type``."""
    width, word, _ = _WORDS[elem_type]
    bits = values.to(torch_dtype(elem_type)).view(word).to(torch.int64)
    return bits & ((1 << width) - 1)


def _read_back(low_half: Range, high_half: Range, width: int, target: int) -> tuple[Tensor, Tensor]:
    """The hull, per block, of both pattern ranges read as ``target``."""
    sign, whole = 1 << (width - 1), 1 << width
    if is_float(target):
        finite = _float_bits(torch.tensor(torch.finfo(torch_dtype(target)).max, dtype=torch.float64), target)
        limit = finite + 1  # the infinity's pattern; every pattern above it is NaN, read here as infinite

        def magnitude(pattern: Tensor) -> Tensor:
            return _float_of(pattern.clamp(max=int(limit)), target)

        pieces = [(magnitude(low_half[0]), magnitude(low_half[1]), low_half[2]),
                  (-magnitude(high_half[1] - sign), -magnitude(high_half[0] - sign), high_half[2])]
    elif _WORDS[target][2]:
        pieces = [low_half, (high_half[0] - whole, high_half[1] - whole, high_half[2])]
    else:
        pieces = [low_half, high_half]
    dtype = bound_dtype(target)
    highest = torch.tensor(torch.inf if is_float(target) else 2**62, dtype=dtype)
    lower = torch.minimum(torch.where(pieces[0][2], pieces[0][0].to(dtype), highest),
                          torch.where(pieces[1][2], pieces[1][0].to(dtype), highest))
    upper = torch.maximum(torch.where(pieces[0][2], pieces[0][1].to(dtype), -highest),
                          torch.where(pieces[1][2], pieces[1][1].to(dtype), -highest))
    return lower, upper


def _float_of(patterns: Tensor, target: int) -> Tensor:
    """Float64 values of non-negative patterns (at most the infinity's) of float type ``target``."""
    _, word, _ = _WORDS[target]
    return patterns.to(word).view(torch_dtype(target)).to(torch.float64)
