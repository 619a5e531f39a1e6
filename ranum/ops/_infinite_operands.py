"""NaN from infinite operands: ``inf + -inf``, ``inf - inf``, ``0 * inf``, ``inf / inf`` element-wise, and sums or
matrix products that meet such pairs (:class:`InfiniteOperands`, declared by Add, Sub, Mul, Div, the sums and the
matrix products; detection marks which operands' infinities earlier findings explain)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ranum.domain.dtypes import float_facts, is_float
from ranum.domain.interval import Interval, align, broadcast_shape
from ranum.ops.hazards import FORWARD, Clamp, Hazard, HazardHit, _elem_type_of

__all__ = ["InfiniteOperands", "aligned_pair"]


@dataclass(frozen=True)
class InfiniteOperands(Hazard):
    """NaN from infinite operands: ``inf + -inf``, ``inf - inf``, ``0 * inf``, ``inf / inf`` (``op``: add, sub,
    mul or div, element-wise); a sum of terms that can be +inf and -inf (``sum``: Sum, Mean, ReduceSum, CumSum);
    an infinite factor of a matrix product (``product``: MatMul, Gemm, Einsum), whose sums meet a 0 or factors of
    both signs. Inputs are finite, so an operand's infinity comes from a constant (a ``-inf`` attention mask,
    a Where that selects one) or from a hazard upstream. Detection sets ``explained`` for an operand downstream
    of a reported hazard, whose infinity is that hazard's (fix it and the NaN goes too), and ``operand`` to an
    operand that brings an unexplained infinity."""

    name: str = "infinite-operands"
    description: str = "infinite operands give NaN (inf - inf, 0 * inf or inf / inf)"
    kind: str = FORWARD
    operand: int = 0
    op: str = "add"
    explained: tuple[bool, ...] = (False, False)

    def check(self, inputs, outputs):
        if self.op in _AGGREGATES:
            return self._aggregate_check(inputs)
        a, b = inputs[0], inputs[1]
        if a is None or b is None or not is_float(a.elem_type) or not a.numblocks or not b.numblocks \
                or a.is_finite and b.is_finite:
            return None
        (al, ah), (bl, bh) = aligned_pair(a, b)
        fires = _infinite_operand_nan(self.op, al, ah, bl, bh, self.explained)
        if not bool(fires.any()):
            return None
        operand = inputs[self.operand]
        certain = bool(fires.all()) and a.is_exact and b.is_exact
        return HazardHit(certain, float(operand.lower.min()), float(operand.upper.max()))

    def _aggregate_check(self, inputs) -> HazardHit | None:
        """A sum (or a product's sums) whose unexplained operands can hold the infinities it needs. A point of
        more than ``_SCANNED_POINT`` blocks (a matrix product's exact weight) is not scanned: a trained weight
        holds no infinity, and scanning every weight of a language model cost a third of its check."""
        marks = tuple(self.explained) + (False,) * len(inputs)
        open_ = [iv for iv, mark in zip(inputs, marks) if isinstance(iv, Interval) and not mark
                 and iv.numblocks and is_float(iv.elem_type)
                 and not (iv.is_point and iv.numblocks > _SCANNED_POINT) and not iv.is_finite]
        if not open_:
            return None
        if self.op == "sum" and not (any(iv.max() == math.inf for iv in open_)
                                     and any(iv.min() == -math.inf for iv in open_)):
            return None
        return HazardHit(False, min(iv.min() for iv in open_), max(iv.max() for iv in open_))

    def triggered(self, inputs, outputs):
        if self.op in _AGGREGATES:
            floats = [x for x in inputs if isinstance(x, Tensor) and x.is_floating_point()]
            clean = all(not bool(torch.isnan(x).any()) for x in floats)
            return torch.isnan(outputs[0]) & clean
        a, b = inputs[0], inputs[1]
        result = outputs[0] if outputs and outputs[0] is not None else _BINARY[self.op](a, b)
        return torch.isnan(result) & ~torch.isnan(a) & ~torch.isnan(b)

    def distance(self, inputs, outputs):
        if self.op in _AGGREGATES:  # an operand reaching infinity
            floats = [x for x in inputs if isinstance(x, Tensor) and x.is_floating_point()]
            return torch.stack([float_facts(_elem_type_of(x)).max - x.abs().max() for x in floats]).min()
        a, b = inputs[0], inputs[1]
        limit = float_facts(_elem_type_of(a)).max
        if self.op == "mul":  # the other operand at 0
            near = [torch.where(torch.isinf(x), y.abs(), limit) for x, y in ((a, b), (b, a))]
        else:  # the other operand infinite as well
            near = [torch.where(torch.isinf(x), limit - y.abs(), limit) for x, y in ((a, b), (b, a))]
        return torch.minimum(*near)

    def invalid_text(self, elem_type):
        return math.infINITE_NAN_TEXT[self.op]

    def repair_operand(self) -> int | None:
        return self.operand

    def repair(self, operand, inputs=()):
        limit = float_facts(operand.elem_type).max
        return Clamp(-limit, limit)


_BINARY = {"add": torch.add, "sub": torch.sub, "mul": torch.mul, "div": torch.div}
_AGGREGATES = ("sum", "product")
_SCANNED_POINT = 1 << 20  # blocks of an exact operand scanned for infinities in a sum or a product
math.infINITE_NAN_TEXT = {"add": "inf + -inf", "sub": "inf - inf (one sign)", "mul": "0 * inf", "div": "inf / inf",
                      "sum": "terms of +inf and -inf", "product": "an infinite factor"}


def _infinite_operand_nan(op: str, al: Tensor, ah: Tensor, bl: Tensor, bh: Tensor,
                          explained: tuple[bool, bool]) -> Tensor:
    """Where the bounds allow NaN from an unexplained infinity (see :class:`InfiniteOperands`)."""
    a_up, a_down = (ah == math.inf) & (not explained[0]), (al == -math.inf) & (not explained[0])
    b_up, b_down = (bh == math.inf) & (not explained[1]), (bl == -math.inf) & (not explained[1])
    if op == "add":
        return a_up & b_down | a_down & b_up
    if op == "sub":
        return a_up & b_up | a_down & b_down
    if op == "div":
        return (a_up | a_down) & (b_up | b_down)
    return (a_up | a_down) & (bl <= 0) & (bh >= 0) | (b_up | b_down) & (al <= 0) & (ah >= 0)


def aligned_pair(x: Interval, y: Interval) -> list[tuple[Tensor, Tensor]]:
    """Float64 bounds of two operands on one block grid (whole ranges when a shape is unknown)."""
    shape = broadcast_shape(x.shape, y.shape)
    if shape is None:
        pairs = [(iv.lower.min(), iv.upper.max()) for iv in (x, y)]
    else:
        pairs = align([x, y], shape)[1]
    return [(lo.to(torch.float64), hi.to(torch.float64)) for lo, hi in pairs]
