"""Self-gated activations: Swish (opset 24), y = x * sigmoid(alpha * x), and the gated unit SwiGLU (opset 28),
y = Swish(a) * b.

Real-number bounds: with t = alpha * x, y = g(t) / alpha for g(t) = t * sigmoid(t), whose only critical
point is its minimum at t* = ``SILU_ARGMIN`` (where 1 + t * (1 - sigmoid(t)) = 0). So y is monotone on
each side of x* = t* / alpha (a minimum for alpha > 0, a maximum for alpha < 0; alpha = 0 gives x / 2),
and its extremes over a block are at the block's ends and at x* clamped into it.
Float rounding (onnxruntime 1.32; 16-bit tensors computed in float32 and rounded once): the sigmoid is
accurate to a few float32 (float64 for double) eps absolute, and the rounding of alpha * x moves it by
at most 0.23 eps, so y is within ``_SIGMOID_ERROR`` eps * |x| of x * sigmoid(alpha * x); the product and
the final conversion are relative (``ulps``). The sigmoid never leaves [0, 1 + 2**-21], so y keeps the
sign of x. Exact inputs take the same path (``accumulates``): the error is absolute.

SwiGLU is its function body: Swish's bounds rounded as Swish rounds, times b's (one product, rounded by the
interpreter). onnxruntime 1.32 cannot run it (its Swish kernel is registered for opset 24 only, and the
function's Swish is not found in a graph of opset 28): its hazards are checked, not confirmable.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from onnx import TensorProto
from torch import Tensor

from ranum.domain import arith
from ranum.domain.dtypes import float_facts, is_float
from ranum.domain.interval import Interval, elementwise
from ranum.errors import UnsupportedOperator
from ranum.ops._base import ELEMENTWISE, NodeContext, OpRule, UnaryRule
from ranum.ops.hazards import Overflow
from ranum.ops.registry import register

__all__ = ["SILU_ARGMIN", "SwiGLU", "Swish"]

# argmin of t * sigmoid(t), root of 1 + t * (1 - sigmoid(t)) (mpmath, 40 digits)
SILU_ARGMIN = -1.278464542761073795109358739022980155439
# |computed sigmoid - sigmoid| in eps of the compute type (observed below 1.8 over every type), plus the
# rounding of alpha * x (max of |t| * sigmoid'(t) is 0.224)
_SIGMOID_ERROR = 5.0


def _extremes(fn: Callable[[Tensor], Tensor], lo: Tensor, hi: Tensor, point: float | None) -> tuple[Tensor, Tensor]:
    """Min and max of ``fn`` over [lo, hi] for ``fn`` monotone on each side of ``point``."""
    values = [fn(lo), fn(hi)]
    if point is not None:
        values.append(fn(torch.minimum(torch.maximum(torch.full_like(lo, point), lo), hi)))
    stacked = torch.stack(values)
    return stacked.amin(0), stacked.amax(0)


@register("Swish", since=24)
class Swish(UnaryRule):
    """y = x * sigmoid(alpha * x); minimum SILU_ARGMIN * sigmoid(SILU_ARGMIN) / alpha at x = SILU_ARGMIN / alpha
    (a maximum when alpha < 0)."""

    alpha: float = 1.0
    ulps = 2.0
    accumulates = True

    def fn(self, x: Tensor) -> Tensor:
        if not x.is_floating_point():
            raise UnsupportedOperator(f"Swish: {x.dtype} input (float types only)")
        wide = x.to(torch.float64)
        return (wide * torch.sigmoid(self.alpha * wide)).to(x.dtype)

    def abstract(self, ctx: NodeContext, x: Interval) -> Interval:
        if not is_float(x.elem_type):
            raise UnsupportedOperator(f"Swish: element type {x.elem_type} (float types only)")
        lo, hi = x.lower.to(torch.float64), x.upper.to(torch.float64)

        def real(v: Tensor) -> Tensor:
            return arith.times(v, torch.sigmoid(self.alpha * v))

        lower, upper = _extremes(real, lo, hi, SILU_ARGMIN / self.alpha if self.alpha else None)
        compute = TensorProto.DOUBLE if x.elem_type == TensorProto.DOUBLE else TensorProto.FLOAT
        slack = torch.maximum(lo.abs(), hi.abs()) * (_SIGMOID_ERROR * float_facts(compute).eps)
        lower = torch.where(lo >= 0, (lower - slack).clamp(min=0.0), lower - slack)
        upper = torch.where(hi <= 0, (upper + slack).clamp(max=0.0), upper + slack)
        return x.with_bounds(lower, upper)


@register("SwiGLU", since=28)
class SwiGLU(OpRule):
    """y = Swish_alpha(a) * b for operands of one shape (no broadcasting): the gate of a LLaMA-style MLP."""

    alpha: float = 1.0
    unknown_shapes = ELEMENTWISE
    hazards = (Overflow(),)

    def _gate(self) -> Swish:
        return Swish(alpha=self.alpha)

    def concrete(self, ctx: NodeContext, a: Tensor, b: Tensor) -> Tensor:
        _check_same_shape(tuple(a.shape), tuple(b.shape))
        return self._gate().fn(a) * b

    def abstract(self, ctx: NodeContext, a: Interval, b: Interval) -> Interval:
        if a.shape is not None and b.shape is not None:
            _check_same_shape(a.shape, b.shape)
        gate = self._gate()
        gated = gate.rounded(gate.abstract(ctx, a))
        return elementwise(arith.mul, [gated, b], a.elem_type)


def _check_same_shape(a: tuple[int, ...], b: tuple[int, ...]) -> None:
    if a != b:
        raise UnsupportedOperator(f"SwiGLU: operands of shapes {a} and {b} (the operator does not broadcast)")
