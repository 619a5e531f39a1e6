"""Trigonometric, hyperbolic and error functions: Sin, Cos, Tan, Asin, Acos, Atan, Sinh, Cosh,
Asinh, Acosh, Atanh, Erf.

Invariants: bounds contain the real function's values over the input intervals (computed in float64);
the interpreter rounds them outward by ``ulps`` (measured onnxruntime float32 errors: below 1.5 ulps,
below 4.3 for Asin/Acos, hence 4 and 8). Sin and Cos find the extrema a block reaches exactly and fall
back to [-1, 1] on blocks at least one period wide. Tan is unbounded on blocks that reach a pole (within a
float64 safety margin), except on float32 operands: no float32 value is a pole, so tan is largest in magnitude
at the float32 values nearest each pole the block holds (2.4e8 near the first three thousand poles), which
onnxruntime's float32 tan computes within 1e-7 (measured); blocks holding more poles than a node's budget
of evaluations allows (about 800 thousand in all), or values past 2**20, stay unbounded. Inverse functions
clamp their input to the domain first: values outside give NaN, which the declared hazards report.
"""

from __future__ import annotations

import math

import torch
from onnx import TensorProto
from torch import Tensor

from ranum.domain.interval import Interval
from ranum.ops._base import NodeContext, UnaryRule
from ranum.ops.hazards import GRADIENT, InfiniteOperand, Overflow, below, equal_to, outside
from ranum.ops.registry import register

__all__ = ["Acos", "Acosh", "Asin", "Asinh", "Atan", "Atanh", "Cos", "Cosh", "Erf", "Sin", "Sinh", "Tan"]

TRANSCENDENTAL_ULPS = 4.0
INVERSE_TRIG_ULPS = 8.0
_TWO_PI = 2.0 * math.pi
# Relative margin around Tan's poles: float64 error of x - k*pi is about |x| * 2**-53.
_POLE_MARGIN = 1e-14


def _reaches(lo: Tensor, hi: Tensor, phase: float, period: float, margin: Tensor | float = 0.0) -> Tensor:
    """Per block: does [lo - margin, hi + margin] hold a point phase + k * period?"""
    k = torch.ceil((lo - margin - phase) / period)
    return phase + k * period <= hi + margin


def _periodic(x: Interval, fn, peak: float) -> Interval:
    """Bounds of a 2*pi-periodic function with max 1 at ``peak`` + 2k*pi and min -1 half a period later."""
    lo, hi = x.lower, x.upper
    narrow = torch.isfinite(lo) & torch.isfinite(hi) & (hi - lo < _TWO_PI)
    lo = torch.where(narrow, lo, torch.zeros_like(lo))  # keeps sin(inf) = NaN out of the gradient
    hi = torch.where(narrow, hi, torch.zeros_like(hi))
    a, b = fn(lo), fn(hi)
    one = torch.ones_like(a)
    top = ~narrow | _reaches(lo, hi, peak, _TWO_PI)
    bottom = ~narrow | _reaches(lo, hi, peak + math.pi, _TWO_PI)
    return x.with_bounds(torch.where(bottom, -one, torch.minimum(a, b)), torch.where(top, one, torch.maximum(a, b)))


class _Transcendental(UnaryRule):
    ulps = TRANSCENDENTAL_ULPS


# onnxruntime's float64 Sin and Cos over two or more elements (its vector path) err by an absolute amount (up to
# about 5.5e-16 for arguments within 20, measured; exactly 0 at the double nearest a zero, flipping the sign of
# a result near 1e-16), not a relative one: bounds widen by this much per unit of |x|, and cover [-1, 1] past
# _FLOAT64_TRIG_REACH (an argument reduction of unmeasured accuracy)
_FLOAT64_TRIG_SLACK = 2.0**-49
_FLOAT64_TRIG_REACH = 2.0**20


def _with_float64_slack(x: Interval, out: Interval) -> Interval:
    """``out`` (Sin or Cos bounds of ``x``) widened by onnxruntime's absolute float64 error."""
    if x.elem_type != TensorProto.DOUBLE:
        return out
    reach = torch.maximum(x.lower.abs(), x.upper.abs())
    slack = torch.where(reach <= _FLOAT64_TRIG_REACH, _FLOAT64_TRIG_SLACK * reach.clamp(min=1.0),
                        torch.full_like(reach, 2.0))
    return out.with_bounds(out.lower - slack, out.upper + slack)


@register("Sin")
class Sin(_Transcendental):
    hazards = (InfiniteOperand(description="sin of an infinite value is NaN"),)
    output_range = (-1.0, 1.0)

    def fn(self, x: Tensor) -> Tensor:
        return torch.sin(x)

    def abstract(self, ctx: NodeContext, x: Interval) -> Interval:
        return _with_float64_slack(x, _periodic(x, torch.sin, math.pi / 2))


@register("Cos")
class Cos(_Transcendental):
    hazards = (InfiniteOperand(description="cos of an infinite value is NaN"),)
    output_range = (-1.0, 1.0)

    def fn(self, x: Tensor) -> Tensor:
        return torch.cos(x)

    def abstract(self, ctx: NodeContext, x: Interval) -> Interval:
        return _with_float64_slack(x, _periodic(x, torch.cos, 0.0))


@register("Tan")
class Tan(_Transcendental):
    """Increasing between poles at pi/2 + k*pi; unbounded on a block that reaches one."""

    hazards = (InfiniteOperand(description="tan of an infinite value is NaN"), Overflow())

    def fn(self, x: Tensor) -> Tensor:
        return torch.tan(x)

    def abstract(self, ctx: NodeContext, x: Interval) -> Interval:
        lo, hi = x.lower, x.upper
        margin = _POLE_MARGIN * torch.maximum(lo.abs(), hi.abs()).clamp(min=1.0)
        narrow = torch.isfinite(lo) & torch.isfinite(hi) & (hi - lo < math.pi)
        lo = torch.where(narrow, lo, torch.zeros_like(lo))
        hi = torch.where(narrow, hi, torch.zeros_like(hi))
        wide = ~narrow | _reaches(lo, hi, math.pi / 2, math.pi, torch.where(narrow, margin, 0.0))
        reach = _float32_tan_magnitude(x.lower, x.upper) if x.elem_type == TensorProto.FLOAT and bool(wide.any()) \
            else torch.full_like(lo, math.inf)
        return x.with_bounds(torch.where(wide, -reach, torch.tan(lo)), torch.where(wide, reach, torch.tan(hi)))


_CANDIDATES_EVALUATED = 1 << 22  # most float32 values near poles evaluated for one node (blocks x poles x 5)
_POLE_REACH = 2.0**20  # beyond it float64's k * pi + pi / 2 is too coarse to find a pole's float32 neighbours
_NEIGHBOURS = 2  # float32 values on each side of a pole's rounding evaluated (the nearest on each side among them)
_TAN_SLACK = 2.0**-20  # onnxruntime's float32 tan near a pole: within 1e-7 of the real value (measured)


def _float32_tan_magnitude(lo: Tensor, hi: Tensor) -> Tensor:
    """Per block, a bound of |tan| over the float32 values in [lo, hi] (inf where not found): the largest
    |tan| at the float32 values nearest each pole in the block, and at the ends (tan is monotone between
    poles). A pole's float32 rounding and its neighbours on both sides hold its nearest float32 values."""
    finite = torch.isfinite(lo) & torch.isfinite(hi) & (lo.abs() <= _POLE_REACH) & (hi.abs() <= _POLE_REACH)
    low = torch.where(finite, lo, torch.zeros_like(lo)).to(torch.float64)
    high = torch.where(finite, hi, torch.zeros_like(hi)).to(torch.float64)
    first = torch.ceil((low - math.pi / 2) / math.pi)
    count = torch.floor((high - math.pi / 2) / math.pi) - first + 1
    followed = min(int(count.max()) if count.numel() else 0,
                   _CANDIDATES_EVALUATED // ((2 * _NEIGHBOURS + 1) * max(count.numel(), 1)))
    steps = torch.arange(max(followed, 1), dtype=torch.float64)
    poles = ((first.unsqueeze(-1) + steps) * math.pi + math.pi / 2).to(torch.float32)
    candidates = [poles]
    for direction in (math.inf, -math.inf):
        step = poles
        for _ in range(_NEIGHBOURS):
            step = torch.nextafter(step, torch.tensor(direction, dtype=torch.float32))
            candidates.append(step)
    values = torch.stack(candidates, -1).to(torch.float64)
    inside = (values >= low[..., None, None]) & (values <= high[..., None, None])
    magnitudes = torch.where(inside, torch.tan(values).abs(), torch.zeros_like(values)).amax((-2, -1))
    ends = torch.maximum(torch.tan(low).abs(), torch.tan(high).abs())
    bound = torch.maximum(magnitudes, ends) * (1 + _TAN_SLACK)
    return torch.where(finite & (count <= followed), bound, torch.full_like(bound, math.inf))


def _clamped(x: Interval, low: float, high: float) -> tuple[Tensor, Tensor]:
    """Bounds restricted to the function's domain (values outside only give NaN)."""
    return x.lower.clamp(low, high), x.upper.clamp(low, high)


@register("Asin")
class Asin(_Transcendental):
    hazards = (
        outside(-1.0, 1.0, "asin outside [-1, 1] is NaN", name="asin-domain"),
        equal_to(1.0, "gradient of asin is infinite at 1", name="asin-gradient-at-1", kind=GRADIENT),
        equal_to(-1.0, "gradient of asin is infinite at -1", name="asin-gradient-at-minus-1", kind=GRADIENT),
    )
    ulps = INVERSE_TRIG_ULPS

    def fn(self, x: Tensor) -> Tensor:
        return torch.asin(x)

    def abstract(self, ctx: NodeContext, x: Interval) -> Interval:
        lo, hi = _clamped(x, -1.0, 1.0)
        return x.with_bounds(torch.asin(lo), torch.asin(hi))


@register("Acos")
class Acos(_Transcendental):
    hazards = (
        outside(-1.0, 1.0, "acos outside [-1, 1] is NaN", name="acos-domain"),
        equal_to(1.0, "gradient of acos is infinite at 1", name="acos-gradient-at-1", kind=GRADIENT),
        equal_to(-1.0, "gradient of acos is infinite at -1", name="acos-gradient-at-minus-1", kind=GRADIENT),
    )
    ulps = INVERSE_TRIG_ULPS

    def fn(self, x: Tensor) -> Tensor:
        return torch.acos(x)

    def abstract(self, ctx: NodeContext, x: Interval) -> Interval:
        lo, hi = _clamped(x, -1.0, 1.0)
        return x.with_bounds(torch.acos(hi), torch.acos(lo))


@register("Atan")
class Atan(_Transcendental):
    def fn(self, x: Tensor) -> Tensor:
        return torch.atan(x)


@register("Sinh")
class Sinh(_Transcendental):
    hazards = (Overflow(),)

    def fn(self, x: Tensor) -> Tensor:
        return torch.sinh(x)


@register("Cosh")
class Cosh(_Transcendental):
    """Even, smallest at 0."""

    hazards = (Overflow(),)
    output_range = (1.0, math.inf)

    def fn(self, x: Tensor) -> Tensor:
        return torch.cosh(x)

    def abstract(self, ctx: NodeContext, x: Interval) -> Interval:
        lo, hi = x.lower, x.upper
        nearest = torch.where(lo > 0, lo, torch.where(hi < 0, -hi, torch.zeros_like(lo)))
        return x.with_bounds(torch.cosh(nearest), torch.cosh(torch.maximum(-lo, hi)))


@register("Asinh")
class Asinh(_Transcendental):
    def fn(self, x: Tensor) -> Tensor:
        return torch.asinh(x)


@register("Acosh")
class Acosh(_Transcendental):
    hazards = (
        below(1.0, "acosh below 1 is NaN", name="acosh-domain"),
        equal_to(1.0, "gradient of acosh is infinite at 1", name="acosh-gradient-at-1", kind=GRADIENT),
    )
    output_range = (0.0, math.inf)

    def fn(self, x: Tensor) -> Tensor:
        return torch.acosh(x)

    def abstract(self, ctx: NodeContext, x: Interval) -> Interval:
        lo, hi = _clamped(x, 1.0, math.inf)
        return x.with_bounds(torch.acosh(lo), torch.acosh(hi))


@register("Atanh")
class Atanh(_Transcendental):
    hazards = (
        outside(-1.0, 1.0, "atanh outside [-1, 1] is NaN", name="atanh-domain"),
        equal_to(1.0, "atanh of 1 is infinite", name="atanh-infinite-at-1"),
        equal_to(-1.0, "atanh of -1 is infinite", name="atanh-infinite-at-minus-1"),
    )

    def fn(self, x: Tensor) -> Tensor:
        return torch.atanh(x)

    def abstract(self, ctx: NodeContext, x: Interval) -> Interval:
        lo, hi = _clamped(x, -1.0, 1.0)
        return x.with_bounds(torch.atanh(lo), torch.atanh(hi))


@register("Erf")
class Erf(_Transcendental):
    output_range = (-1.0, 1.0)

    def fn(self, x: Tensor) -> Tensor:
        return torch.erf(x)
