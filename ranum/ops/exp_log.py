"""Exponentials, logarithms, roots and reciprocals: the classic sources of NaN and Inf."""

from __future__ import annotations

import numpy as np
import torch
from onnx import TensorProto
from torch import Tensor

from ranum.domain import arith
from ranum.domain.interval import Interval
from ranum.ops._base import NodeContext, UnaryRule
from ranum.ops._guard_relations import straddling_divisor_floor
from ranum.ops._signed_zeros import zeros_are_positive
from ranum.ops.hazards import GRADIENT, Overflow, above, at_most, below, between, divisor_zero
from ranum.ops.registry import register

__all__ = ["Exp", "Log", "Reciprocal", "Sqrt"]

TRANSCENDENTAL_ULPS = 4.0


@register("Exp")
class Exp(UnaryRule):
    """y = e^x; overflows to +inf above log(max finite) of the dtype."""

    hazards = (above(lambda f: f.log_max, "exp overflows to infinity", name="exp-overflow"),)
    ulps = TRANSCENDENTAL_ULPS
    output_range = (0.0, torch.inf)

    def fn(self, x: Tensor) -> Tensor:
        return torch.exp(x)


@register("Log")
class Log(UnaryRule):
    """y = ln(x); -inf at 0, NaN below."""

    hazards = (at_most(0.0, "log of a non-positive value", name="log-nonpositive"),)
    ulps = TRANSCENDENTAL_ULPS

    def fn(self, x: Tensor) -> Tensor:
        return torch.log(x)


@register("Sqrt")
class Sqrt(UnaryRule):
    """y = sqrt(x); NaN below 0, infinite derivative at 0 (and below the smallest normal, which arithmetic
    with denormals-are-zero reads as 0; float16 subnormals become float32 normals first)."""

    hazards = (
        below(0.0, "square root of a negative value", name="sqrt-negative"),
        between(0.0, lambda f: f.flushed, "gradient of sqrt is infinite at 0", name="sqrt-zero-gradient",
                high_closed=False, kind=GRADIENT),
    )
    output_range = (0.0, torch.inf)

    def fn(self, x: Tensor) -> Tensor:
        """Correctly rounded, as onnxruntime's (IEEE) square root: torch's CPU square root is not, one ulp off
        now and then in float64, numpy's is (a value that needs no gradient takes it)."""
        if x.requires_grad or x.dtype not in (torch.float32, torch.float64):
            return torch.sqrt(x)
        return torch.from_numpy(np.sqrt(x.detach().cpu().numpy()))

    def abstract(self, ctx: NodeContext, x: Interval) -> Interval:
        lower, upper = torch.sqrt(x.lower.clamp(min=0.0)), torch.sqrt(x.upper.clamp(min=0.0))
        if x.elem_type == TensorProto.DOUBLE:
            # the interpreter keeps a float64 bound as the runtime's correctly rounded result, and torch's is
            # not correctly rounded: step out an ulp (a constant step, so the bounds stay differentiable)
            down = torch.nextafter(lower, torch.zeros_like(lower))
            up = torch.nextafter(upper, torch.full_like(upper, torch.inf))
            lower = torch.where(torch.isfinite(lower), lower - (lower - down).detach(), lower)
            upper = torch.where(torch.isfinite(upper), upper + (up - upper).detach(), upper)
        return x.with_bounds(lower, upper)


@register("Reciprocal")
class Reciprocal(UnaryRule):
    """y = 1 / x; infinite at 0 (overflow for subnormal x as well)."""

    hazards = (divisor_zero("reciprocal of zero"), Overflow())

    def fn(self, x: Tensor) -> Tensor:
        return torch.reciprocal(x)

    def abstract(self, ctx: NodeContext, x: Interval) -> Interval:
        lower, upper = arith.reciprocal(x.lower, x.upper)
        if ctx.graph is not None and x.numblocks and x.min() == 0 and zeros_are_positive(ctx.graph, ctx.node.inputs[0]):
            # on x's block grid: the reciprocal's own bounds may have merged blocks that differ here
            return x.with_bounds(torch.where(x.lower == 0, 1.0 / x.upper, lower),
                                 torch.where(x.lower == 0, torch.full_like(upper, torch.inf), upper))
        out = x.with_bounds(lower, upper)
        floor = straddling_divisor_floor(ctx, 0, x)
        if floor > 0:  # a divisor guarded away from 0 on both sides
            cap = 1.0 / floor
            return out.with_bounds(out.lower.clamp(min=-cap, max=cap), out.upper.clamp(min=-cap, max=cap))
        return out
