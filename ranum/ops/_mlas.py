"""onnxruntime's float32 Sigmoid and Tanh, value for value.

onnxruntime 1.32 computes both with MLAS's rational approximations (the coefficients are Eigen's), each
polynomial evaluated by Horner's rule in fused multiply-adds:

* Sigmoid: the input clamped to [-18, 18], ``p(x) / q(x) + 0.5`` with ``p`` odd of degree 9 and ``q``
  even of degree 10, floored at 0 (not capped at 1). It is exactly 0 from x = -17.99998 down, where the
  exact logistic is still 1.5e-8, and reaches 1 + 2**-23. A sum of sigmoids that must be 0 (a Dice
  loss' denominator) is reached in onnxruntime there, and nowhere in ``torch.sigmoid``, which stays
  positive down to -103.
* Tanh: the input clamped to [-9, 9], ``p(x) / q(x)`` with ``p`` odd of degree 13 and ``q`` even of degree
  6. It reaches 1 + 2**-22, so ``1 - tanh(x)**2`` can be negative (``sqrt`` of it NaN) where torch's is 0;
  torch's tanh differs from it in about half of all float32 values, by an ulp or two.

Checked against onnxruntime's kernels (its x86-64 FMA3 path) on millions of float32 inputs over and
beyond the clamped ranges, the infinities, NaN, signed zeros and subnormals: every value equal. A fused
multiply-add is taken as the float64 product (exact for float32 operands) plus the addend, rounded to
float64 then to float32; the double rounding can differ from one rounding in rare ties, which the checks
did not meet. Both are differentiated as torch differentiates its own functions (``s (1 - s)``,
``1 - t**2``), so a system test's training is what a framework does.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

__all__ = ["differentiated", "onnxruntime_logistic", "onnxruntime_tanh", "sigmoid", "tanh"]

_LOGISTIC_RANGE = 18.0
_LOGISTIC_P = (4.37031012579801e-11, 1.15627324459942e-07, 6.08574864600143e-05, 8.51377133304701e-03,
               2.48287947061529e-01)
_LOGISTIC_Q = (6.10247389755681e-13, 5.76102136993427e-09, 6.29106785017040e-06, 1.70198817374094e-03,
               1.16817656904453e-01, 9.93151921023180e-01)
_TANH_RANGE = 9.0
_TANH_P = (-2.76076847742355e-16, 2.00018790482477e-13, -8.60467152213735e-11, 5.12229709037114e-08,
           1.48572235717979e-05, 6.37261928875436e-04, 4.89352455891786e-03)
_TANH_Q = (1.19825839466702e-06, 1.18534705686654e-04, 2.26843463243900e-03, 4.89352518554385e-03)


def _float32(coefficients: tuple[float, ...]) -> tuple[float, ...]:
    """The kernel's constants: the float32 values nearest the written ones (C's ``f`` literals)."""
    return tuple(float(torch.tensor(c, dtype=torch.float32)) for c in coefficients)


_LOGISTIC_P, _LOGISTIC_Q, _TANH_P, _TANH_Q = (_float32(c) for c in (_LOGISTIC_P, _LOGISTIC_Q, _TANH_P, _TANH_Q))


def _horner(x2: Tensor, constants: tuple[float, ...]) -> Tensor:
    """``((c0 x2 + c1) x2 + c2) ...`` in float32 fused multiply-adds (float32 constants)."""
    wide = x2.double()
    value = (wide * constants[0] + constants[1]).float()
    for constant in constants[2:]:
        value = (value.double() * wide + constant).float()
    return value


def onnxruntime_logistic(x: Tensor) -> Tensor:
    """onnxruntime's float32 Sigmoid of a float32 tensor (values only: no gradient flows through it)."""
    with torch.no_grad():
        clamped = x.detach().clamp(-_LOGISTIC_RANGE, _LOGISTIC_RANGE)
        x2 = clamped * clamped
        p = _horner(x2, _LOGISTIC_P) * clamped
        return (p / _horner(x2, _LOGISTIC_Q) + 0.5).clamp(min=0.0)


def onnxruntime_tanh(x: Tensor) -> Tensor:
    """onnxruntime's float32 Tanh of a float32 tensor (values only)."""
    with torch.no_grad():
        clamped = x.detach().clamp(-_TANH_RANGE, _TANH_RANGE)
        x2 = clamped * clamped
        return _horner(x2, _TANH_P) * clamped / _horner(x2, _TANH_Q)


class _Differentiated(torch.autograd.Function):
    """``value``, whose gradient with respect to ``x`` is ``gradient(x, grad)``."""

    @staticmethod
    def forward(ctx, x: Tensor, value: Tensor, gradient: Callable[[Tensor, Tensor], Tensor]) -> Tensor:
        ctx.save_for_backward(x)
        ctx.gradient = gradient
        return value.clone()

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None, None]:
        (x,) = ctx.saved_tensors
        return ctx.gradient(x, grad), None, None


def differentiated(x: Tensor, value: Tensor, gradient: Callable[[Tensor, Tensor], Tensor]) -> Tensor:
    """``value`` (computed from ``x`` without autograd), differentiable at ``x`` by ``gradient(x, grad)``."""
    return _Differentiated.apply(x, value, gradient) if x.requires_grad else value


def _sigmoid_gradient(x: Tensor, grad: Tensor) -> Tensor:
    s = torch.sigmoid(x)
    return grad * s * (1 - s)


def _tanh_gradient(x: Tensor, grad: Tensor) -> Tensor:
    return grad * (1 - torch.tanh(x) ** 2)


def sigmoid(x: Tensor) -> Tensor:
    """The Sigmoid of a float32 tensor as onnxruntime computes it, differentiable as torch.sigmoid."""
    return differentiated(x, onnxruntime_logistic(x), _sigmoid_gradient)


def tanh(x: Tensor) -> Tensor:
    """The Tanh of a float32 tensor as onnxruntime computes it, differentiable as torch.tanh."""
    return differentiated(x, onnxruntime_tanh(x), _tanh_gradient)
