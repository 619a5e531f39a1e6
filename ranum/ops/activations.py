"""Activation functions: ReLU family, sigmoid-like squashings, GELU, Mish and friends.

Real-number bounds are computed in float64 on the input blocks. Monotone activations map the
bounds; Shrink joins its three linear pieces; piecewise-monotone ones (LeakyRelu with a negative
slope, PRelu, Elu, Selu, Celu, ThresholdedRelu, HardSwish, Gelu, Mish) take the minimum and
maximum of the function at the block ends and at its kinks / interior critical point clamped into
the block, which is exact for a function that is monotone between those points.

Invariants and float rounding (soundness is for onnxruntime's CPU kernels, see
tests/ops/cases_activations.py):

* 16-bit tensors are evaluated in float32 and rounded once (the interpreter's ``ulps`` covers the
  final rounding); ``_compute_facts`` gives the precision of the evaluation.
* Forms with cancellation (``exp(x) - 1`` in Elu/Selu/Celu, ``1 + erf`` / ``1 + tanh`` in Gelu,
  ``alpha * x + beta`` in HardSigmoid/HardSwish) and onnxruntime's vectorised sigmoid get an
  absolute slack scaled by the computation's operands, on top of the relative rounding.
* Rules with such absolute error set ``accumulates`` so that exact inputs also take the abstract
  rule (the concrete fast path only rounds outward relatively, and keeps an underflowed 0 at 0).
* Float16 Mish is expanded by onnxruntime into float16 Softplus/Tanh/Mul: softplus(x) is rounded
  to a float16 subnormal before the product, an absolute error of |x| subnormals.
* onnxruntime's float32 Sigmoid and Tanh can return values up to 2 ulps beyond +-1 (observed
  ``1.0000001`` and ``-1.0000002``), so their output ranges exceed [0, 1] / [-1, 1] by 2**-21.
* Softplus is evaluated stably for float32 by onnxruntime but as ``log(exp(x) + 1)`` for float16
  (in float32) and float64, which overflows to +inf above the log of float32's / float64's
  largest finite value: the bound says so and ``Overflow`` reports it. The sum ``exp(x) + 1`` rounds
  to a neighbour of 1 for small ``exp(x)``: an absolute error of an ulp of 1, and exactly 0 below
  about -36.7 (float64; -16.6 in float32), which a Log behind it turns into -inf. float64 Mish is
  onnxruntime's expansion ``x * tanh(softplus(x))`` over that Softplus: an absolute error of ``|x|``
  ulps of 1.
* onnxruntime's attribute defaults are float32 numbers (LeakyRelu's 0.01f, HardSigmoid's 0.2f, the 1/6
  of HardSwish's expansion), used as such by its float64 kernels too; the rules take the same values.
  float64 Gelu(approximate="tanh") is ONNX's expansion, whose constants are float32 numbers: a
  float32-sized error in the tanh's argument.
* Softsign is ``x * (1 / (1 + |x|))``: beyond ``|x|`` ~ 1 / tiny the reciprocal is subnormal, an
  absolute error of ``|x|`` subnormals (0.99999994, not 1, at 3e38 in float32).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Sequence

import torch
from onnx import TensorProto
from torch import Tensor

from ranum.domain import arith
from ranum.domain.dtypes import FloatFacts, float_facts, is_float
from ranum.domain.interval import Interval, elementwise
from ranum.errors import UnsupportedOperator
from ranum.ops import _mlas
from ranum.ops._base import ELEMENTWISE, NodeContext, OpRule, UnaryRule
from ranum.ops._bits import int_type
from ranum.ops.hazards import Overflow
from ranum.ops.registry import register

__all__ = [
    "Celu", "Elu", "Gelu", "HardSigmoid", "HardSwish", "LeakyRelu", "Mish", "PRelu", "Relu", "Selu",
    "Shrink", "Sigmoid", "Softplus", "Softsign", "Tanh", "ThresholdedRelu",
]

# Overshoot of onnxruntime's float32 Sigmoid/Tanh beyond their mathematical range: 2 ulps of 1. Measured
# over every float32 of magnitude 0.25 to 1e6 (onnxruntime 1.32, CPU): Tanh reaches 1 + 2**-22 (and
# -1 - 2**-22), Sigmoid 1 + 2**-23. Two ulps keep SAC's log(1 - tanh(u)**2 + 1e-6) provably above 0.
UNIT_OVERSHOOT = 2.0**-22
TRANSCENDENTAL_ULPS = 4.0
# Softsign's largest excess over +-1: float32's largest value times its subnormal (see Softsign), 2**-21
SOFTSIGN_OVERSHOOT = 2.0**-21
# Interior minima (argmin) of the non-monotone activations, to 25 digits (mpmath root of f').
GELU_ARGMIN = -0.7517915246935644574579049
GELU_TANH_ARGMIN = -0.7524614220710162584879544
MISH_ARGMIN = -1.192431214515495212137588
# Below -MISH_UNDERFLOW, softplus(x) < 2**-25 rounds to 0 even in float16, and so does Mish.
MISH_UNDERFLOW = 20.0
# float64 Mish: beyond |x| = 40, tanh(softplus(x)) rounds to 1 (x > 0), and for x < -40 onnxruntime's 0 lies
# within 40 ulps of 1 of the real x * tanh(softplus(x)) (whose magnitude is below 40 * exp(-40))
MISH_DOUBLE_REACH = 40.0
# Below this input, float32 erf(x / sqrt 2) and the tanh of GELU's approximation are exactly -1.
GELU_SATURATION = 16.0
# Rules whose runtime error is absolute (cancellation, flushed underflow) rather than a few ulps set
# ``accumulates``: the interpreter then runs their abstract rule (with its absolute slack) on exact
# inputs too, instead of the concrete fast path that only rounds outward by ``ulps``.
ABSOLUTE_ERROR = True
_SQRT_HALF = math.sqrt(0.5)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


def _float32(value: float) -> float:
    """``value`` rounded to float32: ONNX float attributes, and onnxruntime's defaults for them, are float32
    numbers, which its float64 kernels use as they are (0.2f is 0.20000000298...)."""
    return struct.unpack("f", struct.pack("f", value))[0]


LEAKY_RELU_ALPHA = _float32(0.01)
HARD_SIGMOID_ALPHA = _float32(0.2)
# HardSwish is ONNX's expansion x * HardSigmoid<alpha = 1/6 as a float32 attribute, beta = 0.5>(x), which
# onnxruntime evaluates in every type (its float32 results equal that form's, bit for bit)
HARDSWISH_ALPHA = _float32(1.0 / 6.0)
HARDSWISH_ARGMIN = -0.25 / HARDSWISH_ALPHA  # ~ -1.5: where d/dx x (alpha x + 1/2) = 0
HARDSWISH_KNEE = 0.5 / HARDSWISH_ALPHA  # ~ 3: the clamp is inactive for |x| below it
# float64 Gelu(approximate="tanh") expands with float32 constants 2/pi and 0.044715: the tanh's argument t
# is off by 1.5 float32 half-ulps relative, and the result by 0.5 |x| sech(t)**2 |t| (that relative error),
# below 0.5 |x| * 0.45 * 0.75 float32 eps; this bound leaves room. Beyond |x| = GELU_SATURATION, |t| > 150 and
# tanh is exactly +-1 in float64 with either constants: no error to cover there
GELU_DOUBLE_CONSTANTS = 0.5 * float_facts(TensorProto.FLOAT).eps


# ----------------------------------------------------------------------------- helpers
def _compute_facts(elem_type: int) -> FloatFacts:
    """Precision in which onnxruntime evaluates an activation (float32 for 16-bit types)."""
    return float_facts(TensorProto.DOUBLE if elem_type == TensorProto.DOUBLE else TensorProto.FLOAT)


def _extremes(fn: Callable[[Tensor], Tensor], lo: Tensor, hi: Tensor,
              points: Sequence[float] = ()) -> tuple[Tensor, Tensor]:
    """Min and max of ``fn`` over ``[lo, hi]`` for ``fn`` monotone between consecutive ``points``."""
    values = [fn(lo), fn(hi)] + [fn(torch.minimum(torch.maximum(torch.full_like(lo, p), lo), hi)) for p in points]
    stacked = torch.stack(values)
    return stacked.amin(dim=0), stacked.amax(dim=0)


def _slack(x: Interval, lower: Tensor, upper: Tensor, absolute: Tensor | float) -> Interval:
    """Widen block bounds by an absolute error (not sign-preserving: cancellation may flip signs)."""
    return x.with_bounds(lower - absolute, upper + absolute)


def _negative_part(x: Interval) -> Tensor:
    """Per block, 1 where the block reaches below 0 (where an ``exp(x) - 1`` branch runs), else 0."""
    return (x.lower < 0).to(torch.float64)


# ----------------------------------------------------------------------------- exact selections
@register("Relu")
class Relu(UnaryRule):
    """y = max(x, 0) (exact; integer types too)."""

    rounds = False

    def fn(self, x: Tensor) -> Tensor:
        return torch.relu(x)


@register("ThresholdedRelu")
class ThresholdedRelu(OpRule):
    """y = x if x > alpha else 0 (exact selection)."""
    unknown_shapes = ELEMENTWISE

    alpha: float = 1.0
    rounds = False

    def concrete(self, ctx: NodeContext, x: Tensor) -> Tensor:
        return torch.where(x > self.alpha, x, torch.zeros_like(x))

    def abstract(self, ctx: NodeContext, x: Interval) -> Interval:
        # the threshold may be compared in the tensor's precision: allow it one ulp either way
        margin = abs(self.alpha) * float_facts(x.elem_type).eps + float_facts(x.elem_type).subnormal
        lo, hi = x.lower, x.upper
        can_zero = lo <= self.alpha + margin
        can_pass = hi > self.alpha - margin
        inf = torch.full_like(lo, torch.inf)
        pass_lo = torch.clamp(lo, min=self.alpha - margin)
        lower = torch.minimum(torch.where(can_zero, torch.zeros_like(lo), inf), torch.where(can_pass, pass_lo, inf))
        upper = torch.maximum(torch.where(can_zero, torch.zeros_like(hi), -inf), torch.where(can_pass, hi, -inf))
        return x.with_bounds(lower, upper)


@register("Shrink", since=9)
class Shrink(OpRule):
    """y = x + bias where x < -lambd, x - bias where x > lambd, else 0.

    onnxruntime 1.32 evaluates every type in float32 (double inputs too, as observed: they are rounded
    to float32 first) and converts back, so integer results truncate toward zero and are exact only
    below 2**24; a result outside an integer type's range gets the whole range (the conversion is
    undefined there). The three pieces' images are joined; the bounds of a piece that is only reached
    below its open end (x < -lambd) use that end. For double inputs the float32 rounding of x may move
    it onto +-lambd (then 0) and the sum carries an absolute error of float32 rounding.
    """
    unknown_shapes = ELEMENTWISE

    bias: float = 0.0
    lambd: float = 0.5
    hazards = (Overflow(),)

    def concrete(self, ctx: NodeContext, x: Tensor) -> Tensor:
        wide = x.to(torch.float32)
        zero = torch.zeros_like(wide)
        y = torch.where(wide < -self.lambd, wide + self.bias, torch.where(wide > self.lambd, wide - self.bias, zero))
        return y.to(x.dtype)

    def abstract(self, ctx: NodeContext, x: Interval) -> Interval:
        lo, hi = x.lower.to(torch.float64), x.upper.to(torch.float64)
        inf = torch.full_like(lo, torch.inf)
        # a double rounded to float32 may land on +-lambd (a float32 value): the middle piece widens
        f32 = float_facts(TensorProto.FLOAT)
        near = abs(self.lambd) * f32.eps + f32.subnormal if x.elem_type == TensorProto.DOUBLE else 0.0
        below, above = lo < -self.lambd, hi > self.lambd
        middle = (lo <= self.lambd + near) & (hi >= -self.lambd - near)
        lower = torch.minimum(torch.where(below, lo + self.bias, inf), torch.where(middle, 0.0, inf))
        lower = torch.minimum(lower, torch.where(above, lo.clamp(min=self.lambd) - self.bias, inf))
        upper = torch.maximum(torch.where(below, hi.clamp(max=-self.lambd) + self.bias, -inf),
                              torch.where(middle, 0.0, -inf))
        upper = torch.maximum(upper, torch.where(above, hi - self.bias, -inf))
        if x.elem_type == TensorProto.DOUBLE:  # float32 roundings of x and of the sum, relative to |x| + |bias|
            slack = (torch.maximum(lo.abs(), hi.abs()) + abs(self.bias)) * f32.eps + f32.subnormal
            return x.with_bounds(lower - slack, upper + slack)
        if is_float(x.elem_type):
            return x.with_bounds(lower, upper)
        return x.with_bounds(*_int_result(lower, upper, x.elem_type))


def _int_result(lower: Tensor, upper: Tensor, elem_type: int) -> tuple[Tensor, Tensor]:
    """Bounds of ``T(v)`` for a float32 computation of real v in [lower, upper]: float32 rounding
    (twice float32's eps covers the integer's conversion and the sum), truncation, out of range: any value."""
    eps = 2 * float_facts(TensorProto.FLOAT).eps
    lower = torch.floor(lower - lower.abs() * eps)
    upper = torch.ceil(upper + upper.abs() * eps)
    t = int_type(elem_type, "Shrink")
    out = (lower < t.min) | (upper > t.max)
    return torch.where(out, float(t.min), lower), torch.where(out, float(t.max), upper)


# ----------------------------------------------------------------------------- piecewise linear
@register("LeakyRelu")
class LeakyRelu(UnaryRule):
    """y = x if x >= 0 else alpha * x (any sign of alpha)."""

    alpha: float = LEAKY_RELU_ALPHA
    ulps = 2.0  # a 16-bit kernel may round alpha to the tensor's type

    def fn(self, x: Tensor) -> Tensor:
        return torch.where(x >= 0, x, self.alpha * x)  # as onnxruntime: NaN stays NaN, 0 * -inf is NaN

    def abstract(self, ctx: NodeContext, x: Interval) -> Interval:
        return x.with_bounds(*_extremes(self._bound, x.lower, x.upper, (0.0,)))

    def _bound(self, x: Tensor) -> Tensor:
        """``fn`` at a bound: ``0 * -inf`` is 0, the limit at an unbounded end."""
        return torch.where(x >= 0, x, arith.times(self.alpha, x))


@register("PRelu")
class PRelu(OpRule):
    """y = x if x >= 0 else slope * x; slope broadcasts to x and may have either sign."""
    unknown_shapes = ELEMENTWISE
    hazards = (Overflow(),)  # slope * x of a slope above 1

    def concrete(self, ctx: NodeContext, x: Tensor, slope: Tensor) -> Tensor:
        return torch.where(x >= 0, x, x * slope)

    def abstract(self, ctx: NodeContext, x: Interval, slope: Interval) -> Interval:
        return elementwise(_prelu_bounds, [x, slope], x.elem_type)


def _prelu_bounds(lx: Tensor, ux: Tensor, ls: Tensor, us: Tensor) -> tuple[Tensor, Tensor]:
    """Join of the positive branch on [max(lx,0), ux] and slope * [lx, min(ux,0)] (both hold 0)."""
    lx, ux, ls, us = (t.to(torch.float64) for t in (lx, ux, ls, us))
    zero = torch.zeros_like(lx)
    neg_l, neg_u = torch.minimum(lx, zero), torch.minimum(ux, zero)
    n_lo, n_hi = arith.mul(neg_l, neg_u, ls, us)
    p_lo, p_hi = torch.clamp(lx, min=0.0), torch.clamp(ux, min=0.0)
    lower = torch.where(lx >= 0, p_lo, torch.where(ux <= 0, n_lo, torch.minimum(n_lo, zero)))
    upper = torch.where(lx >= 0, p_hi, torch.where(ux <= 0, n_hi, torch.maximum(n_hi, p_hi)))
    return lower, upper


@register("HardSigmoid")
class HardSigmoid(OpRule):
    """y = max(0, min(1, alpha * x + beta))."""
    unknown_shapes = ELEMENTWISE

    alpha: float = HARD_SIGMOID_ALPHA
    beta: float = 0.5
    output_range = (0.0, 1.0)
    accumulates = ABSOLUTE_ERROR

    def concrete(self, ctx: NodeContext, x: Tensor) -> Tensor:
        return torch.clamp(self.alpha * x + self.beta, 0.0, 1.0)

    def abstract(self, ctx: NodeContext, x: Interval) -> Interval:
        eps = _compute_facts(x.elem_type).eps
        ends = torch.stack([arith.times(self.alpha, x.lower), arith.times(self.alpha, x.upper)])
        a_lo, a_hi = ends.amin(dim=0), ends.amax(dim=0)
        # rounding of alpha * x + beta at the end that gives each bound
        lin_lo = a_lo + self.beta - 2 * eps * (a_lo.abs() + abs(self.beta))
        lin_hi = a_hi + self.beta + 2 * eps * (a_hi.abs() + abs(self.beta))
        return x.with_bounds(lin_lo.clamp(0.0, 1.0), lin_hi.clamp(0.0, 1.0))


@register("HardSwish", since=14)
class HardSwish(UnaryRule):
    """y = x * max(0, min(1, alpha x + 1/2)), alpha = 1/6 rounded to float32 (see HARDSWISH_ALPHA);
    minimum ~ -0.375 at x ~ -1.5."""

    ulps = 2.0
    accumulates = ABSOLUTE_ERROR

    def fn(self, x: Tensor) -> Tensor:
        return x * torch.clamp(x * HARDSWISH_ALPHA + 0.5, 0.0, 1.0)

    def abstract(self, ctx: NodeContext, x: Interval) -> Interval:
        def real(v: Tensor) -> Tensor:
            return arith.times(v, torch.clamp(v * HARDSWISH_ALPHA + 0.5, 0.0, 1.0))

        lower, upper = _extremes(real, x.lower, x.upper, (HARDSWISH_ARGMIN,))
        # |x| * (error of alpha x + 1/2), which only matters where the clamp is inactive (|x| <= knee)
        m = torch.maximum(x.lower.abs(), x.upper.abs()).clamp(max=HARDSWISH_KNEE)
        return _slack(x, lower, upper, 2 * _compute_facts(x.elem_type).eps * m * (m * HARDSWISH_ALPHA + 0.5))


# ----------------------------------------------------------------------------- exponential linear units
class _ExpLinear(UnaryRule):
    """Shared abstract rule: piecewise monotone around 0, cancellation in ``exp(x) - 1`` for x < 0."""

    ulps = 2.0
    accumulates = ABSOLUTE_ERROR

    def _scale(self) -> float:
        raise NotImplementedError

    def abstract(self, ctx: NodeContext, x: Interval) -> Interval:
        lower, upper = _extremes(self.fn, x.lower, x.upper, (0.0,))
        err = 4 * _compute_facts(x.elem_type).eps * abs(self._scale()) * _negative_part(x)
        if self._scale() > 0:  # the exp branch stays below err: an upper bound from x >= 0 needs no slack
            return x.with_bounds(lower - err, torch.where(x.upper >= 0, torch.maximum(upper, err), upper + err))
        return _slack(x, lower, upper, err)


@register("Elu")
class Elu(_ExpLinear):
    """y = x if x >= 0 else alpha * (exp(x) - 1)."""

    alpha: float = 1.0

    def fn(self, x: Tensor) -> Tensor:
        return torch.where(x >= 0, x, self.alpha * torch.expm1(x))

    def _scale(self) -> float:
        return self.alpha


@register("Selu", since=6)
class Selu(_ExpLinear):
    """y = gamma * x if x > 0 else gamma * alpha * (exp(x) - 1)."""

    alpha: float = 1.67326319217681884765625
    gamma: float = 1.05070102214813232421875
    ulps = 3.0

    def fn(self, x: Tensor) -> Tensor:
        return torch.where(x > 0, self.gamma * x, self.gamma * (self.alpha * torch.expm1(x)))

    def _scale(self) -> float:
        return self.alpha * self.gamma


@register("Celu", since=12)
class Celu(_ExpLinear):
    """y = max(0, x) + min(0, alpha * (exp(x / alpha) - 1)); alpha must not be 0."""

    alpha: float = 1.0

    def __post_init__(self) -> None:
        if self.alpha == 0:
            raise UnsupportedOperator("Celu: alpha must be non-zero (x / alpha is undefined)")

    def fn(self, x: Tensor) -> Tensor:
        return torch.clamp(x, min=0) + torch.clamp(self.alpha * torch.expm1(x / self.alpha), max=0)

    def _scale(self) -> float:
        return self.alpha


# ----------------------------------------------------------------------------- squashing functions
@register("Sigmoid")
class Sigmoid(UnaryRule):
    """y = 1 / (1 + exp(-x)); onnxruntime's float32 kernel is accurate to ~2 eps absolute, and its values are
    the concrete semantics (exactly 0 below -17.99998: see :mod:`ranum.ops._mlas`)."""

    ulps = 2.0
    output_range = (0.0, 1.0 + UNIT_OVERSHOOT)
    accumulates = ABSOLUTE_ERROR

    def fn(self, x: Tensor) -> Tensor:
        return _mlas.sigmoid(x) if x.dtype == torch.float32 else torch.sigmoid(x)

    def abstract(self, ctx: NodeContext, x: Interval) -> Interval:
        y = x.map_increasing(torch.sigmoid)
        return _slack(y, y.lower, y.upper, 4 * _compute_facts(x.elem_type).eps)


@register("Tanh")
class Tanh(UnaryRule):
    """y = tanh(x). Near float32's smallest normal value onnxruntime's tanh loses its relative accuracy
    (about 100 ulps at 1e-38): an absolute slack of a few smallest normals covers it, keeping x's sign. Its
    float32 values are the concrete semantics (up to 1 + 2**-22: see :mod:`ranum.ops._mlas`)."""

    ulps = TRANSCENDENTAL_ULPS
    output_range = (-1.0 - UNIT_OVERSHOOT, 1.0 + UNIT_OVERSHOOT)
    accumulates = ABSOLUTE_ERROR

    def fn(self, x: Tensor) -> Tensor:
        return _mlas.tanh(x) if x.dtype == torch.float32 else torch.tanh(x)

    def abstract(self, ctx: NodeContext, x: Interval) -> Interval:
        lo, hi = x.lower, x.upper
        tiny = 4 * _compute_facts(x.elem_type).tiny
        lower = torch.where(lo >= 0, (torch.tanh(lo) - tiny).clamp(min=0.0), torch.tanh(lo) - tiny)
        upper = torch.where(hi <= 0, (torch.tanh(hi) + tiny).clamp(max=0.0), torch.tanh(hi) + tiny)
        return x.with_bounds(lower, upper)


@register("Softsign")
class Softsign(UnaryRule):
    """y = x / (1 + |x|), which onnxruntime computes as ``x * (1 / (1 + |x|))``: beyond |x| ~ 1 / tiny the
    reciprocal is subnormal, an absolute error of up to |x| / 2 subnormals, which can pass +-1 (3e38 gives
    0.99999994 or 1.0000001 in float32, not 1). Elsewhere the result stays within [-1, 1]."""

    ulps = 2.0
    rounds = False  # the abstract rule rounds itself: the clamp to [-1, 1] holds only for normal reciprocals
    output_range = (-1.0 - SOFTSIGN_OVERSHOOT, 1.0 + SOFTSIGN_OVERSHOOT)
    accumulates = ABSOLUTE_ERROR  # the subnormal reciprocal's error: exact inputs take the abstract rule too

    def fn(self, x: Tensor) -> Tensor:
        return x * (1 + x.abs()).reciprocal()

    def abstract(self, ctx: NodeContext, x: Interval) -> Interval:
        y = x.map_increasing(_softsign_bound).widened(self.ulps)
        # |x| grows towards a block's farther end, and so does the reciprocal's error: the larger of the two
        err = torch.maximum(_subnormal_reciprocal_error(x.lower, x.elem_type),
                            _subnormal_reciprocal_error(x.upper, x.elem_type))
        lower = y.lower.clamp(min=-1.0) - err
        upper = y.upper.clamp(max=1.0) + err
        # x * (a positive reciprocal) keeps x's sign
        lower = torch.where(x.lower >= 0, lower.clamp(min=0.0), lower)
        upper = torch.where(x.upper <= 0, upper.clamp(max=0.0), upper)
        return x.with_bounds(lower, upper)


def _softsign_bound(x: Tensor) -> Tensor:
    """x / (1 + |x|) at a bound, its limit +-1 at an infinite one."""
    return torch.where(x.isinf(), x.sign(), x / (1 + x.abs()))


def _subnormal_reciprocal_error(x: Tensor, elem_type: int) -> Tensor:
    """``|x|`` subnormals where ``1 / (1 + |x|)`` may be subnormal (twice its rounding error), else 0; an
    infinite x (whose result is NaN, from a finding upstream) counts as the largest finite one."""
    facts = _compute_facts(elem_type)
    magnitude = x.abs().clamp(max=facts.max)
    return torch.where(magnitude * facts.tiny >= 0.5, magnitude * facts.subnormal, torch.zeros_like(magnitude))


@register("Softplus")
class Softplus(UnaryRule):
    """y = log(exp(x) + 1); overflows to +inf for float16 and float64 in onnxruntime (see module doc)."""

    hazards = (Overflow(description="softplus evaluated as log(exp(x) + 1) overflows to infinity"),)
    ulps = TRANSCENDENTAL_ULPS
    output_range = (0.0, torch.inf)
    accumulates = ABSOLUTE_ERROR  # exp underflow: a concrete 0 may be a subnormal in onnxruntime

    def fn(self, x: Tensor) -> Tensor:
        return torch.logaddexp(x, torch.zeros_like(x))

    def concrete(self, ctx: NodeContext, x: Tensor) -> Tensor:
        if x.dtype == torch.float32:
            return self.fn(x)
        wide = x.to(torch.float64 if x.dtype == torch.float64 else torch.float32)
        return torch.log(torch.exp(wide) + 1).to(x.dtype)

    def abstract(self, ctx: NodeContext, x: Interval) -> Interval:
        lower, upper = self.fn(x.lower), self.fn(x.upper)
        facts = _compute_facts(x.elem_type)
        if x.elem_type == TensorProto.FLOAT or not is_float(x.elem_type):
            return _slack(x, lower, upper, 2 * facts.tiny)
        # log(exp(x) + 1): the sum is within half an ulp of 1 + exp(x) (exactly 1, and the result 0, once
        # exp(x) is below half an ulp of 1), an absolute error of up to an ulp of 1 with exp's own rounding
        upper = torch.where(x.upper > facts.log_max, torch.full_like(upper, torch.inf), upper + facts.eps)
        return x.with_bounds((lower - facts.eps).clamp(min=0.0), upper)


# ----------------------------------------------------------------------------- smooth non-monotone units
@register("Mish", since=18)
class Mish(UnaryRule):
    """y = x * tanh(softplus(x)); minimum ~ -0.30884 at x ~ -1.19243."""

    ulps = 8.0
    accumulates = ABSOLUTE_ERROR

    def fn(self, x: Tensor) -> Tensor:
        return x * torch.tanh(torch.logaddexp(x, torch.zeros_like(x)))

    def concrete(self, ctx: NodeContext, x: Tensor) -> Tensor:
        if x.dtype != torch.float64:
            return self.fn(x)
        return x * torch.tanh(torch.log(torch.exp(x) + 1))  # over onnxruntime's float64 Softplus (module doc)

    def abstract(self, ctx: NodeContext, x: Interval) -> Interval:
        def real(v: Tensor) -> Tensor:
            return arith.times(v, torch.tanh(torch.logaddexp(v, torch.zeros_like(v))))

        lower, upper = _extremes(real, x.lower, x.upper, (MISH_ARGMIN,))
        # 16-bit kernels round softplus(x) (tiny for x << 0) to a subnormal before the product with x
        magnitude = torch.maximum(x.lower.abs(), x.upper.abs())
        reach = magnitude.clamp(max=MISH_UNDERFLOW)
        err = 2 * _compute_facts(x.elem_type).tiny + 2 * reach * float_facts(x.elem_type).subnormal
        if x.elem_type == TensorProto.DOUBLE:  # softplus as log(exp(x) + 1): an ulp of 1, times |x| (see module doc)
            err = err + 2 * magnitude.clamp(max=MISH_DOUBLE_REACH) * float_facts(x.elem_type).eps
        # x times tanh of a non-negative softplus keeps x's sign in every kernel
        lower = torch.where(x.lower >= 0, (lower - err).clamp(min=0.0), lower - err)
        upper = torch.where(x.upper <= 0, (upper + err).clamp(max=0.0), upper + err)
        return x.with_bounds(lower, upper)


@register("Gelu", since=20)
class Gelu(UnaryRule):
    """y = x * Phi(x) (approximate="none") or its tanh approximation; minimum ~ -0.17 at x ~ -0.752."""

    approximate: str = "none"
    ulps = TRANSCENDENTAL_ULPS
    accumulates = ABSOLUTE_ERROR

    def __post_init__(self) -> None:
        if self.approximate not in ("none", "tanh"):
            raise UnsupportedOperator(f"Gelu: approximate={self.approximate!r} is not 'none' or 'tanh'")

    def _cdf_times_two(self, x: Tensor) -> Tensor:
        if self.approximate == "tanh":
            return 1 + torch.tanh(_SQRT_2_OVER_PI * (x + 0.044715 * x * x * x))
        return 1 + torch.erf(x * _SQRT_HALF)

    def fn(self, x: Tensor) -> Tensor:
        return 0.5 * x * self._cdf_times_two(x)

    def abstract(self, ctx: NodeContext, x: Interval) -> Interval:
        argmin = GELU_TANH_ARGMIN if self.approximate == "tanh" else GELU_ARGMIN
        lower, upper = _extremes(lambda v: arith.times(0.5 * v, self._cdf_times_two(v)), x.lower, x.upper, (argmin,))
        facts = _compute_facts(x.elem_type)
        # 1 + erf (or 1 + tanh) cancels for x < 0: its absolute error is a few eps, times |x| / 2;
        # below -GELU_SATURATION erf and tanh round to exactly -1 and the product is -0
        scale = torch.clamp(-x.lower, min=0.0, max=GELU_SATURATION)
        err = 4 * facts.eps * 0.5 * scale + 2 * facts.tiny
        if self.approximate == "tanh" and x.elem_type == TensorProto.DOUBLE:  # float32 constants (see module doc)
            magnitude = torch.maximum(x.lower.abs(), x.upper.abs()).clamp(max=GELU_SATURATION)
            err = err + GELU_DOUBLE_CONSTANTS * magnitude
        return _slack(x, lower, upper, err)
