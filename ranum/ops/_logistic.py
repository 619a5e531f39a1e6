"""onnxruntime's float32 logistic function (Sigmoid), value for value.

onnxruntime 1.32 computes a float32 Sigmoid with MLAS's rational approximation (the coefficients are
Eigen's): the input clamped to [-18, 18], ``p(x) / q(x) + 0.5`` with ``p`` odd of degree 9 and ``q`` even
of degree 10, both evaluated by Horner's rule in fused multiply-adds, and the result floored at 0 (not
capped at 1). So it is exactly 0 from x = -17.99998 down, where the exact logistic is still 1.5e-8, and
reaches 1 + 2**-23. A descent that must make a sum of sigmoids 0 (a Dice loss' denominator) succeeds in
onnxruntime there and nowhere in ``torch.sigmoid``, which stays positive down to -103.

Checked against onnxruntime's kernel (its x86-64 FMA3 path) on 10 million float32 inputs from -40 to 40,
the infinities, NaN, signed zeros and subnormals: every value equal. A fused multiply-add is taken as the
float64 product (exact for float32 operands) plus the addend, rounded to float64 then to float32; the
double rounding can differ from one rounding in rare ties, which the check did not meet.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["logistic", "onnxruntime_logistic"]

_RANGE = 18.0
_P = (4.37031012579801e-11, 1.15627324459942e-07, 6.08574864600143e-05, 8.51377133304701e-03, 2.48287947061529e-01)
_Q = (6.10247389755681e-13, 5.76102136993427e-09, 6.29106785017040e-06, 1.70198817374094e-03,
      1.16817656904453e-01, 9.93151921023180e-01)


def _horner(x2: Tensor, coefficients: tuple[float, ...]) -> Tensor:
    """``((c0 x2 + c1) x2 + c2) ...`` in float32 fused multiply-adds."""
    constants = [float(torch.tensor(c, dtype=torch.float32)) for c in coefficients]  # float32 constants
    wide = x2.double()
    value = (wide * constants[0] + constants[1]).float()
    for constant in constants[2:]:
        value = (value.double() * wide + constant).float()
    return value


def onnxruntime_logistic(x: Tensor) -> Tensor:
    """onnxruntime's float32 Sigmoid of a float32 tensor (values only: no gradient flows through it)."""
    with torch.no_grad():
        clamped = x.detach().clamp(-_RANGE, _RANGE)
        x2 = clamped * clamped
        p = _horner(x2, _P) * clamped
        return (p / _horner(x2, _Q) + 0.5).clamp(min=0.0)


class _Logistic(torch.autograd.Function):
    """onnxruntime's values, and torch's gradient ``s (1 - s)``, ``s = torch.sigmoid(x)`` (what a framework
    trains with)."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        ctx.save_for_backward(torch.sigmoid(x))
        return onnxruntime_logistic(x)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        (s,) = ctx.saved_tensors
        return grad * s * (1 - s)


def logistic(x: Tensor) -> Tensor:
    """The Sigmoid of a float32 tensor as onnxruntime computes it, differentiable as torch.sigmoid."""
    return _Logistic.apply(x) if x.requires_grad else onnxruntime_logistic(x)
