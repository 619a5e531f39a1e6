"""Gradients that do not vanish where an activation saturates, for the confirmation descent only.

torch differentiates the sigmoid and tanh through their rounded outputs: ``y (1 - y)`` and ``1 - y**2``.
Once ``y`` rounds to exactly 1 (float32: x above about 17 for the sigmoid, 9 for tanh) that gradient is
exactly 0, although the function still moves, so a descent that must push such a unit back stops there:
``1 / sum(sigmoid(z))`` is infinite only where every z is below -18, and from a random start most units
sit at 1 and never move.

The variants here compute the same values (the concrete rules' own) and differentiate from the input
instead: the exact slope in float64, but at least ``_FLOOR`` times the steepest one, scaled by the room the
descent's direction leaves (``y`` where it lowers a sigmoid's value, ``1 - y`` where it raises it), so a
unit at 1 that must come down gets a push and a unit already at 0 does not. Adam's steps do not depend on
the gradient's scale, down to its epsilon (1e-8). Only the search for a failing input uses these rules: a
system test's training, which must be what a framework would do, keeps torch's gradients.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from ranum.ops import REGISTRY, Registry
from ranum.ops._mlas import differentiated
from ranum.ops.activations import Sigmoid, Tanh

__all__ = ["DESCENT_REGISTRY"]

_FLOOR = 2.0**-16  # least slope, relative to the steepest (Adam's own epsilon, 1e-8, would swallow less)


def _sigmoid_slope(x: Tensor, grad: Tensor) -> Tensor:
    """The logistic function's slope at float64 ``x``, at least ``_FLOOR`` times the room the descent's
    direction leaves (``y`` to go down, ``1 - y`` to go up: a positive gradient lowers y)."""
    e, y = torch.exp(-x.abs()), torch.sigmoid(x)
    return torch.maximum(e / (1 + e) ** 2, _FLOOR * torch.where(grad > 0, y, 1 - y))


def _tanh_slope(x: Tensor, grad: Tensor) -> Tensor:
    """tanh's slope, at least ``_FLOOR`` times the room left (``1 + y`` down, ``1 - y`` up)."""
    e2, y = torch.exp(-2 * x.abs()), torch.tanh(x)
    return torch.maximum(4 * e2 / (1 + e2) ** 2, _FLOOR * torch.where(grad > 0, 1 + y, 1 - y))


def _descent_gradient(slope: Callable[[Tensor, Tensor], Tensor]) -> Callable[[Tensor, Tensor], Tensor]:
    def gradient(x: Tensor, grad: Tensor) -> Tensor:
        wide = grad.double()
        return (wide * slope(x.double(), wide)).to(x.dtype)
    return gradient


class _DescentSigmoid(Sigmoid):
    def fn(self, x: Tensor) -> Tensor:
        return differentiated(x, super().fn(x.detach()), _descent_gradient(_sigmoid_slope))


class _DescentTanh(Tanh):
    def fn(self, x: Tensor) -> Tensor:
        return differentiated(x, super().fn(x.detach()), _descent_gradient(_tanh_slope))


DESCENT_REGISTRY: Registry = REGISTRY.substituted({Sigmoid: _DescentSigmoid, Tanh: _DescentTanh})
