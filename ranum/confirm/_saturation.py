"""Gradients that do not vanish where an activation saturates, for the confirmation descent only.

torch differentiates the sigmoid and tanh through their rounded outputs: ``y (1 - y)`` and ``1 - y**2``.
Once ``y`` rounds to exactly 1 (float32: x above about 17 for the sigmoid, 9 for tanh) that gradient is
exactly 0, although the function still moves, so a descent that must push such a unit back stops there.
A Dice loss whose denominator ``sum(sigmoid(10 h)) + sum(t)`` is 0 only where every sigmoid underflows
stopped at 2, with two of them saturated at 1 on its path.

The variants here compute the same values (the concrete rules' own functions) and differentiate from the
input instead: ``sigmoid'(x) = e / (1 + e)**2`` and ``tanh'(x) = 4 e2 / (1 + e2)**2`` with ``e =
exp(-|x|)``, ``e2 = exp(-2 |x|)``, in float64, which stay positive far into the tails (Adam then takes
steps of its own size whatever their magnitude). Only the search for a failing input uses them: a system
test's training, which must be what a framework would do, keeps torch's gradients.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ranum.ops import REGISTRY, Registry
from ranum.ops.activations import Sigmoid, Tanh

__all__ = ["DESCENT_REGISTRY"]

_FLOOR = 2.0**-16  # least slope, relative to the steepest (Adam's own epsilon, 1e-8, would swallow less)


class _SigmoidFromInput(torch.autograd.Function):
    """``value`` (the rule's own), differentiated as the logistic of ``x``, with a slope of at least ``_FLOOR``
    times the room the descent's direction leaves (``y`` to go down, ``1 - y`` to go up)."""

    @staticmethod
    def forward(ctx, x: Tensor, value: Tensor) -> Tensor:
        ctx.save_for_backward(x)
        return value.clone()

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:
        (x,) = ctx.saved_tensors
        wide = x.double()
        e = torch.exp(-wide.abs())
        y = torch.sigmoid(wide)
        room = torch.where(grad > 0, y, 1 - y)  # a positive gradient: the descent lowers y
        slope = torch.maximum(e / (1 + e) ** 2, _FLOOR * room)
        return (grad.double() * slope).to(x.dtype), None


class _TanhFromInput(torch.autograd.Function):
    """``value``, differentiated as tanh of ``x`` with a least slope as above (``1 + y`` down, ``1 - y`` up)."""

    @staticmethod
    def forward(ctx, x: Tensor, value: Tensor) -> Tensor:
        ctx.save_for_backward(x)
        return value.clone()

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:
        (x,) = ctx.saved_tensors
        wide = x.double()
        e2 = torch.exp(-2 * wide.abs())
        y = torch.tanh(wide)
        room = torch.where(grad > 0, 1 + y, 1 - y)
        slope = torch.maximum(4 * e2 / (1 + e2) ** 2, _FLOOR * room)
        return (grad.double() * slope).to(x.dtype), None


class _DescentSigmoid(Sigmoid):
    def fn(self, x: Tensor) -> Tensor:
        return _SigmoidFromInput.apply(x, super().fn(x.detach())) if x.requires_grad else super().fn(x)


class _DescentTanh(Tanh):
    def fn(self, x: Tensor) -> Tensor:
        return _TanhFromInput.apply(x, super().fn(x.detach())) if x.requires_grad else super().fn(x)


DESCENT_REGISTRY: Registry = REGISTRY.substituted({Sigmoid: _DescentSigmoid, Tanh: _DescentTanh})
