"""Two's-complement bit operations: shared by BitShift (arithmetic.py) and BitwiseAnd/Or/Xor/Not (logic.py).

Values are integers of a known width and signedness (:class:`IntType`); bounds are int64 tensors.
Concrete helpers compute in int64 and wrap to the width, as onnxruntime does in the element type.
Bound functions are sound for every pair of integers inside the operand bounds and exact on
points. Unsigned 64-bit tensors are not supported: their values do not fit int64 bounds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from onnx import TensorProto
from torch import Tensor

from ranum.domain.dtypes import elem_type_of, type_name
from ranum.errors import UnsupportedOperator

__all__ = ["IntType", "bitwise", "bitwise_bounds", "int_type", "not_bounds", "operand_type", "shift", "shift_bounds"]

_WIDTHS = {
    TensorProto.INT8: (8, True), TensorProto.UINT8: (8, False), TensorProto.INT16: (16, True),
    TensorProto.UINT16: (16, False), TensorProto.INT32: (32, True), TensorProto.UINT32: (32, False),
    TensorProto.INT64: (64, True),
}


@dataclass(frozen=True)
class IntType:
    """Width and signedness of an integer element type."""

    bits: int
    signed: bool

    @property
    def min(self) -> int:
        return -(1 << (self.bits - 1)) if self.signed else 0

    @property
    def max(self) -> int:
        return (1 << (self.bits - 1)) - 1 if self.signed else (1 << self.bits) - 1

    def wrap(self, values: Tensor) -> Tensor:
        """int64 values reduced modulo 2**bits into the type's range (two's complement)."""
        if self.bits == 64:
            return values
        low = values & ((1 << self.bits) - 1)
        return torch.where(low > self.max, low - (1 << self.bits), low) if self.signed else low


def int_type(elem_type: int, op: str) -> IntType:
    """The :class:`IntType` of an ONNX element type.

    Raises:
        UnsupportedOperator: not an integer type of at most 64 bits that int64 bounds can hold.
    """
    if elem_type not in _WIDTHS:
        raise UnsupportedOperator(f"{op}: element type {type_name(elem_type)} is not supported "
                                  "(integers up to int64, unsigned up to uint32)")
    return IntType(*_WIDTHS[elem_type])


def operand_type(input_types: tuple[int, ...], x: Tensor, op: str) -> IntType:
    """Integer type of a concrete first operand: the node's declared type when known (uint16 values
    may be held in an int32 tensor), else the tensor's own dtype."""
    declared = input_types[0] if input_types and input_types[0] else 0
    if not declared:
        try:
            declared = elem_type_of(x.dtype)
        except KeyError:
            raise UnsupportedOperator(f"{op}: tensors of dtype {x.dtype} are not supported") from None
    return int_type(declared, op)


# ------------------------------------------------------------------------------ shifts
def _shift_right(x: Tensor, amount: Tensor, t: IntType) -> Tensor:
    """x >> amount for amounts in [0, bits]; bits (any out-of-range amount) leaves only the sign fill."""
    inside = amount.clamp(max=t.bits - 1)
    fill = torch.where(x < 0, -torch.ones_like(x), torch.zeros_like(x))
    return torch.where(amount >= t.bits, fill, x >> inside)


def shift(x: Tensor, y: Tensor, t: IntType, left: bool) -> Tensor:
    """ONNX BitShift on int64 copies: amounts < 0 or >= bits give 0 (-1 for a right shift of a
    negative value); left shifts discard the bits pushed past the width."""
    x, y = torch.broadcast_tensors(x.to(torch.int64), y.to(torch.int64))
    amount = torch.where((y < 0) | (y >= t.bits), torch.full_like(y, t.bits), y)
    if not left:
        return _shift_right(x, amount, t)
    shifted = t.wrap(x << amount.clamp(max=t.bits - 1))
    return torch.where(amount >= t.bits, torch.zeros_like(x), shifted)


def _amounts(yl: Tensor, yh: Tensor, t: IntType) -> tuple[Tensor, Tensor]:
    """Bounds of the effective amount in [0, bits] (out-of-range amounts count as bits)."""
    bits = torch.full_like(yl, t.bits)
    low = torch.where(yh < 0, bits, yl.clamp(0, t.bits))
    high = torch.where(yl < 0, bits, yh.clamp(0, t.bits))
    return low, high


def shift_bounds(xl: Tensor, xh: Tensor, yl: Tensor, yh: Tensor, t: IntType, left: bool) -> tuple[Tensor, Tensor]:
    """Bounds of x shifted by y, both given by int64 block bounds.

    Right: floor(x / 2**a) is monotone in x and in the amount a (out-of-range amounts act as a = bits),
    so its extremes lie at the corners. Left: x * 2**a likewise, over the in-range amounts, unless a
    corner leaves the type's range (then bits wrap: the whole range); an out-of-range amount adds 0.
    """
    a_lo, a_hi = _amounts(yl, yh, t)
    if not left:
        corners = torch.stack([_shift_right(x, a, t) for x in (xl, xh) for a in (a_lo, a_hi)])
        return corners.amin(0), corners.amax(0)
    top = a_hi.clamp(max=t.bits - 1)
    corners = torch.stack([x.double() * torch.pow(2.0, a.double()) for x in (xl, xh) for a in (a_lo, top)])
    lo, hi = corners.amin(0), corners.amax(0)
    wraps = (lo < t.min) | (hi > t.max) | (hi.abs() >= 2.0**62) | (lo.abs() >= 2.0**62)
    exact = [x << a.clamp(max=62) for x in (xl, xh) for a in (a_lo, top)]
    lo = torch.where(wraps, torch.full_like(xl, t.min), torch.stack(exact).amin(0))
    hi = torch.where(wraps, torch.full_like(xh, t.max), torch.stack(exact).amax(0))
    some_valid, some_invalid = a_lo < t.bits, a_hi >= t.bits
    zero = torch.zeros_like(lo)
    lo = torch.where(some_valid, torch.where(some_invalid, torch.minimum(lo, zero), lo), zero)
    hi = torch.where(some_valid, torch.where(some_invalid, torch.maximum(hi, zero), hi), zero)
    return _on_points(xl, xh, yl, yh, lo, hi, shift(xl, yl, t, left))


# ------------------------------------------------------------------------------ and, or, xor, not
_CONCRETE: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "and": torch.bitwise_and, "or": torch.bitwise_or, "xor": torch.bitwise_xor,
}


def bitwise(op: str, a: Tensor, b: Tensor, t: IntType) -> Tensor:
    """a op b on int64 copies (sign- or zero-extended, so the low ``bits`` bits are the result's)."""
    return t.wrap(_CONCRETE[op](a.to(torch.int64), b.to(torch.int64)))


def _ones(v: Tensor) -> Tensor:
    """2**bitlength(v) - 1 for v >= 0: every bit up to v's highest set."""
    for step in (1, 2, 4, 8, 16, 32):
        v = v | (v >> step)
    return v


def _and(pl, ph, p_neg, ql, qh, q_neg):
    if p_neg and q_neg:  # ~(a & b) = ~a | ~b, two non-negative operands
        return ~_ones(torch.maximum(~pl, ~ql)), torch.minimum(ph, qh)
    if p_neg or q_neg:  # a non-negative operand bounds the result from above
        return torch.zeros_like(ph), qh if p_neg else ph
    return torch.zeros_like(ph), torch.minimum(ph, qh)


def _or(pl, ph, p_neg, ql, qh, q_neg):
    if p_neg or q_neg:  # negative: setting bits of a negative value moves it toward -1
        low = torch.maximum(pl, ql) if p_neg and q_neg else (pl if p_neg else ql)
        return low, -torch.ones_like(ph)
    return torch.maximum(pl, ql), _ones(torch.maximum(ph, qh))


def _xor(pl, ph, p_neg, ql, qh, q_neg):
    minus_one = -torch.ones_like(ph)
    if p_neg and q_neg:  # a ^ b = ~a ^ ~b
        return torch.zeros_like(ph), _ones(torch.maximum(~pl, ~ql))
    if p_neg:  # a ^ b = ~(~a ^ b)
        return ~_ones(torch.maximum(~pl, qh)), minus_one
    if q_neg:
        return ~_ones(torch.maximum(ph, ~ql)), minus_one
    return torch.zeros_like(ph), _ones(torch.maximum(ph, qh))


_BOUNDS = {"and": _and, "or": _or, "xor": _xor}


def _sign_parts(lo: Tensor, hi: Tensor) -> list[tuple[Tensor, Tensor, bool, Tensor]]:
    """The negative and the non-negative part of each block: (lo, hi, negative, present)."""
    minus_one, zero = torch.full_like(hi, -1), torch.zeros_like(lo)
    return [(lo, torch.minimum(hi, minus_one), True, lo < 0),
            (torch.maximum(lo, zero), hi, False, hi >= 0)]


def bitwise_bounds(op: str, al: Tensor, ah: Tensor, bl: Tensor, bh: Tensor) -> tuple[Tensor, Tensor]:
    """Bounds of a op b (op in and / or / xor): the join over the sign cases of the operands, each
    bounded through ``~x = -x - 1`` and the highest set bit of the non-negative operands."""
    out_lo = torch.full_like(al, torch.iinfo(torch.int64).max)
    out_hi = torch.full_like(al, torch.iinfo(torch.int64).min)
    for pl, ph, p_neg, p_in in _sign_parts(al, ah):
        for ql, qh, q_neg, q_in in _sign_parts(bl, bh):
            lo, hi = _BOUNDS[op](pl, ph, p_neg, ql, qh, q_neg)
            present = p_in & q_in
            out_lo = torch.where(present, torch.minimum(out_lo, lo), out_lo)
            out_hi = torch.where(present, torch.maximum(out_hi, hi), out_hi)
    return _on_points(al, ah, bl, bh, out_lo, out_hi, _CONCRETE[op](al, bl))


def _on_points(al: Tensor, ah: Tensor, bl: Tensor, bh: Tensor, lo: Tensor, hi: Tensor,
               value: Tensor) -> tuple[Tensor, Tensor]:
    """The bounds, replaced by the exact ``value`` where both operands are points."""
    point = (al == ah) & (bl == bh)
    return torch.where(point, value, lo), torch.where(point, value, hi)


def not_bounds(lo: Tensor, hi: Tensor, t: IntType) -> tuple[Tensor, Tensor]:
    """~x: -x - 1 for signed types, max - x for unsigned ones (decreasing either way)."""
    if t.signed:
        return ~hi, ~lo
    return t.max - hi, t.max - lo
