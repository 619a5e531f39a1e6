"""Activation functions named in the attributes of the recurrent operators (RNN, GRU, LSTM).

An :class:`Activation` gives the exact function (``apply``, in the tensor's dtype) and sound bounds
of the value a float execution returns for any input in ``[lo, hi]`` (``bounds``, float64): the
real function's extremes over the interval (the ends, plus the kinks of the piecewise monotone
ones), widened by the evaluation's absolute error. Errors are those of onnxruntime's CPU kernels:
its sigmoid and tanh are rational approximations (MLAS, and the GRU kernel's own polynomial),
measured within 11 units of 2**-24 of the exact function over float32 inputs; the bound allows
``SQUASH_ERROR_EPS`` machine epsilons. Other functions are evaluated with a few float32 operations.

Parameters follow onnxruntime: only the functions that take an ``alpha`` (``beta``) consume one from
``activation_alpha`` (``activation_beta``), in order over the whole list (both directions), with the
defaults of the ONNX operators of the same name once the list runs out (so with ``[Sigmoid, Affine]``
the reverse direction's Affine takes ``alpha[0]``). GRU and LSTM match names case-insensitively;
onnxruntime's RNN matches them exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from ranum.domain import arith
from ranum.domain.dtypes import FloatFacts
from ranum.errors import UnsupportedOperator

__all__ = ["SQUASH_ERROR_EPS", "Activation", "parse_activations"]

SQUASH_ERROR_EPS = 32.0
_NAMES = ("Sigmoid", "Tanh", "Relu", "LeakyRelu", "ThresholdedRelu", "Affine", "ScaledTanh", "HardSigmoid",
          "Elu", "Softsign", "Softplus")
_CANONICAL = {name.lower(): name for name in _NAMES}
_NEEDS_ALPHA = ("LeakyRelu", "ThresholdedRelu", "Affine", "ScaledTanh", "HardSigmoid", "Elu")
_NEEDS_BETA = ("Affine", "ScaledTanh", "HardSigmoid")
_DEFAULT_ALPHA = {"LeakyRelu": 0.01, "HardSigmoid": 0.2, "Elu": 1.0}
_DEFAULT_BETA = {"HardSigmoid": 0.5}
_KINK_AT_ZERO = ("LeakyRelu", "Elu")  # piecewise monotone: extremes at the ends or at 0


def _concrete(name: str, x: Tensor, a: float, b: float) -> Tensor:
    """The function as onnxruntime evaluates it (Softplus as log(1 + exp(x)), overflowing in float32)."""
    if name == "Sigmoid":
        return torch.sigmoid(x)
    if name == "Tanh":
        return torch.tanh(x)
    if name == "Relu":
        return torch.relu(x)
    if name == "LeakyRelu":
        return torch.where(x >= 0, x, a * x)
    if name == "ThresholdedRelu":
        return torch.where(x > a, x, torch.zeros_like(x))
    if name == "Affine":
        return a * x + b
    if name == "ScaledTanh":
        return a * torch.tanh(b * x)
    if name == "HardSigmoid":
        return torch.clamp(a * x + b, 0.0, 1.0)
    if name == "Elu":
        return torch.where(x >= 0, x, a * torch.expm1(x))
    if name == "Softsign":
        return x / (1 + x.abs())
    return torch.log(torch.exp(x) + 1)  # Softplus


def _real(name: str, x: Tensor, a: float, b: float) -> Tensor:
    """The real function on float64 bounds, with its limits at infinite ends (never NaN)."""
    if name == "LeakyRelu":
        return torch.where(x >= 0, x, arith.times(a, x))
    if name == "Affine":
        return arith.times(a, x) + b
    if name == "ScaledTanh":
        return arith.times(a, torch.tanh(arith.times(b, x)))
    if name == "HardSigmoid":
        return torch.clamp(arith.times(a, x) + b, 0.0, 1.0)
    if name == "Elu":
        return torch.where(x >= 0, x, arith.times(a, torch.expm1(x)))
    if name == "Softsign":
        return torch.where(torch.isinf(x), torch.sign(x), x / (1 + x.abs()))
    if name == "Softplus":
        return torch.logaddexp(x, torch.zeros_like(x))
    return _concrete(name, x, a, b)


@dataclass(frozen=True)
class Activation:
    """One activation function of a recurrent operator, with its alpha and beta."""

    name: str
    alpha: float = 0.0
    beta: float = 0.0

    def apply(self, x: Tensor) -> Tensor:
        """Exact semantics in the tensor's dtype."""
        return _concrete(self.name, x, self.alpha, self.beta)

    def bounds(self, lo: Tensor, hi: Tensor, facts: FloatFacts) -> tuple[Tensor, Tensor]:
        """Bounds of the computed function over ``[lo, hi]`` (float64), rounding and approximation included.

        Args:
            lo, hi: bounds of the (already rounded) input.
            facts: the float type the function is evaluated in.
        """
        if self.name == "ThresholdedRelu":  # a selection: exact; 0 where x <= alpha, x where x > alpha
            zero = torch.zeros_like(lo)
            inf = torch.full_like(lo, torch.inf)
            can_zero, can_pass = lo <= self.alpha, hi > self.alpha
            passed = lo.clamp(min=self.alpha)
            lower = torch.minimum(torch.where(can_zero, zero, inf), torch.where(can_pass, passed, inf))
            upper = torch.maximum(torch.where(can_zero, zero, -inf), torch.where(can_pass, hi, -inf))
            return lower, upper
        points = [lo, hi]
        if self.name in _KINK_AT_ZERO:
            points.append(torch.minimum(torch.maximum(torch.zeros_like(lo), lo), hi))
        values = torch.stack([_real(self.name, p, self.alpha, self.beta) for p in points])
        lower, upper = values.amin(dim=0), values.amax(dim=0)
        slack = self._error(lo, hi, lower, upper, facts)
        lower, upper = lower - slack, upper + slack
        if self.name == "HardSigmoid":  # the clamp comes after the rounded affine map
            lower, upper = lower.clamp(0.0, 1.0), upper.clamp(0.0, 1.0)
        if self.name == "Softplus":  # exp(x) overflows first
            upper = torch.where(hi > facts.log_max, torch.full_like(upper, torch.inf), upper)
        return lower, upper

    def _error(self, lo: Tensor, hi: Tensor, lower: Tensor, upper: Tensor, facts: FloatFacts) -> Tensor | float:
        """Absolute error of the float evaluation at any point of the interval."""
        eps, squash = facts.eps, SQUASH_ERROR_EPS * facts.eps
        size_in = torch.maximum(lo.abs(), hi.abs())
        size_out = torch.maximum(lower.abs(), upper.abs())
        errors: dict[str, Callable[[], Tensor | float]] = {
            "Sigmoid": lambda: squash,
            "Tanh": lambda: squash,
            "Relu": lambda: 0.0,
            "LeakyRelu": lambda: eps * size_out,
            "Affine": lambda: 2 * eps * (arith.times(abs(self.alpha), size_in) + abs(self.beta)),
            "HardSigmoid": lambda: 2 * eps * (arith.times(abs(self.alpha), size_in) + abs(self.beta)),
            "ScaledTanh": lambda: abs(self.alpha) * (squash + 4 * eps),
            "Elu": lambda: 4 * eps * abs(self.alpha),
            "Softsign": lambda: 3 * eps,
            "Softplus": lambda: 4 * eps * (size_out + 1),
        }
        return errors[self.name]()


def parse_activations(op: str, names: Sequence[str], alphas: Sequence[float], betas: Sequence[float],
                      defaults: Sequence[str], directions: int) -> list[tuple[Activation, ...]]:
    """The activation functions of each direction (``len(defaults)`` per direction).

    Raises:
        UnsupportedOperator: an unknown name or a wrong count.
    """
    per_direction = len(defaults)
    names = list(names) if names else list(defaults) * directions
    if op == "RNN" and directions == 1 and len(names) == 2:
        names = names[:1]  # the spec's default list holds two names; onnxruntime takes the first
    if len(names) != per_direction * directions:
        raise UnsupportedOperator(f"{op}: expected {per_direction * directions} activations, got {len(names)}")
    if op == "RNN":
        for name in names:
            if name not in _NAMES:
                raise UnsupportedOperator(f"RNN: unknown activation {name!r} (onnxruntime matches the spec's "
                                          "spelling)")
    functions = _consume(op, names, list(alphas), list(betas))
    return [tuple(functions[d * per_direction:(d + 1) * per_direction]) for d in range(directions)]


def _consume(op: str, names: Sequence[str], alphas: list[float], betas: list[float]) -> list[Activation]:
    """Each function that takes alpha (beta) consumes the next value, else its default."""
    out = []
    for raw in names:
        name = _CANONICAL.get(raw.lower())
        if name is None:
            raise UnsupportedOperator(f"{op}: unknown activation {raw!r}")
        alpha = (alphas.pop(0) if alphas else _DEFAULT_ALPHA.get(name, 0.0)) if name in _NEEDS_ALPHA else 0.0
        beta = (betas.pop(0) if betas else _DEFAULT_BETA.get(name, 0.0)) if name in _NEEDS_BETA else 0.0
        out.append(Activation(name, float(alpha), float(beta)))
    return out
