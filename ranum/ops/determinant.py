"""Det: the determinant of each square matrix in the last two axes.

onnxruntime (float32 only) computes it with Eigen's partial-pivoting LU: ``det = +-prod u_ii``. The
abstract rule bounds that computed value, for every matrix inside the operand's interval, by a
symmetric ``[-B, B]``:

* In exact arithmetic ``|det A| <= prod_i ||a_i||_2 <= prod_i ||a_i||_1`` (Hadamard), where ``a_i``
  are the rows with their largest magnitudes.
* The computed factors are an exact LU of ``P (A + E)`` with ``|E| <= gamma_n |L| |U|``; partial
  pivoting keeps ``|l_ij| <= 1`` and every ``|u_ij| <= 2**(n-1) max |a|`` (the growth bound), so each
  row of ``E`` has a 1-norm of at most ``gamma_n n**2 2**(n-1) max |a|``, which is added to every
  row's norm; the ``n`` products of the diagonal round ``n`` more times.
* Then ``B = (1 + u)**(n+1) prod_i (||a_i||_1 + gamma_n n**2 2**(n-1) max |a|)``; past float32's
  range the determinant can overflow to infinity (the Overflow hazard).

The bound has no sign and is not exact for exact operands (the rounding error of an LU determinant is
not bounded relative to the result), so exact operands take this rule too (``accumulates``).
Invariants: a 0x0 matrix has determinant 1; any non-finite operand bound gives an unbounded result.
"""

from __future__ import annotations

import math

import torch
from onnx import TensorProto
from torch import Tensor

from ranum.domain import arith
from ranum.domain.interval import Interval
from ranum.errors import UnsupportedOperator
from ranum.ops._base import NodeContext, OpRule
from ranum.ops.hazards import Overflow
from ranum.ops.registry import register

__all__ = ["Det"]


def _lu_error_per_row(size: int, largest: Tensor, elem_type: int) -> Tensor:
    """A bound of the 1-norm of each row of the LU backward error ``E`` (see the module docstring)."""
    gamma = arith.accumulation_gamma(size, elem_type)
    return largest * (gamma * size * size * 2.0 ** (size - 1))


def determinant_bound(magnitudes: Tensor, elem_type: int) -> Tensor:
    """``B`` of the module docstring for matrices of element magnitudes ``magnitudes`` (..., n, n), float64."""
    size = magnitudes.shape[-1]
    if size == 0:
        return torch.ones(magnitudes.shape[:-2], dtype=torch.float64)
    largest = magnitudes.amax((-2, -1), keepdim=True).squeeze(-1)
    rows = magnitudes.sum(-1) + _lu_error_per_row(size, largest, elem_type)
    unit = arith.accumulator_facts(elem_type).eps
    bound = rows.prod(-1) * (1 + unit) ** (size + 1) * (1 + 2.0**-50)
    return arith.nan_to(bound, math.inf)


@register("Det", since=11)
class Det(OpRule):
    """Determinant of each ``n x n`` matrix of the last two axes (float32, as onnxruntime runs it)."""

    hazards = (Overflow(),)
    accumulates = True

    @staticmethod
    def _check(shape: tuple[int, ...] | None) -> None:
        if shape is None or len(shape) < 2 or shape[-1] != shape[-2]:
            raise UnsupportedOperator(f"Det: the operand must end in a square matrix, got shape {shape}")

    def concrete(self, ctx: NodeContext, x: Tensor) -> Tensor:
        self._check(tuple(x.shape))
        return torch.linalg.det(x.to(torch.float64)).to(x.dtype)

    def abstract(self, ctx: NodeContext, x: Interval) -> Interval:
        self._check(x.shape)
        if x.elem_type != TensorProto.FLOAT:
            raise UnsupportedOperator("Det: only float32 is modelled (onnxruntime's only Det kernel)")
        lo, hi = x.full()
        magnitudes = torch.maximum(lo.abs(), hi.abs()).to(torch.float64)
        bound = determinant_bound(magnitudes, x.elem_type)
        return Interval.from_full(-bound, bound, x.elem_type, ctx.budget)
