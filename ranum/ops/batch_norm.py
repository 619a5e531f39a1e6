"""BatchNormalization: the inference form with running statistics, and the training form (``training_mode``
1) that normalizes each channel by its own values' statistics (bounded as one normalized slice per
channel, :mod:`ranum.ops.normalization`'s slice bounds).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ranum.domain import arith
from ranum.domain.interval import Interval, elementwise
from ranum.errors import UnsupportedOperator
from ranum.ops._base import NodeContext, OpRule
from ranum.ops.hazards import Hazard, Overflow, at_most
from ranum.ops.normalization import SliceVarianceHazard, _affine, _channel, _layer_outputs, _with_error
from ranum.ops.registry import register

__all__ = ["BatchNormalization", "ChannelVarianceHazard"]


@dataclass(frozen=True)
class ChannelVarianceHazard(SliceVarianceHazard):
    """:class:`SliceVarianceHazard` over each channel's values in every sample (BatchNormalization in
    training mode): the slices of x with its axes 0 and 1 swapped."""

    axis: int = 1

    def check(self, inputs, outputs):
        x = inputs[0]
        if x is None or x.shape is None or x.numblocks == 0:
            return None
        return super().check([_channels_first(x), *inputs[1:]], outputs)

    def _margin(self, x: Tensor) -> Tensor:
        return super()._margin(x.transpose(0, 1)).transpose(0, 1)



@register("BatchNormalization", since=9)
class BatchNormalization(OpRule):
    """Inference form: y = (x - mean) / sqrt(var + epsilon) * scale + B, per channel (axis 1).

    ``training_mode`` 1 (opset 14 on) normalizes each channel by the statistics of its own values over
    every sample and position instead (the population variance), and outputs the running statistics
    ``mean * momentum + current_mean * (1 - momentum)`` (and likewise the variance): onnxruntime requires
    the three outputs and computes them so (measured). Exporters write it for a batch norm taken in
    training mode, e.g. BiT's weight-standardised convolution normalizes its weight so.
    """

    epsilon: float = 1e-5
    momentum: float = 0.9
    training_mode: int = 0

    accumulates = True

    @property
    def hazards(self) -> tuple[Hazard, ...]:  # type: ignore[override]
        eps = self.epsilon
        if self.training_mode:
            return (ChannelVarianceHazard(eps), Overflow())
        return (at_most(-eps, f"running variance + epsilon ({eps:g}) <= 0: sqrt of a non-positive value",
                        name="batchnorm-variance", operand=4), Overflow())

    def _check_outputs(self, ctx: NodeContext) -> None:
        if any(ctx.node.outputs[1:]) and not self.training_mode:
            raise UnsupportedOperator("BatchNormalization: running mean/var outputs need training_mode=1")

    def _layout(self, param: Tensor, rank: int) -> Tensor:
        """A per-channel (C,) parameter laid out as (C, 1, ..., 1), to broadcast against (N, C, D1, ...)."""
        return param.reshape((-1,) + (1,) * (rank - 2))

    def concrete(self, ctx: NodeContext, x, scale, bias, mean, var):
        self._check_outputs(ctx)
        wide = [self._layout(t.to(torch.float64), x.dim()) for t in (scale, bias, mean, var)]
        if not self.training_mode:
            y = (x.to(torch.float64) - wide[2]) / torch.sqrt(wide[3] + self.epsilon) * wide[0] + wide[1]
            return y.to(x.dtype)
        dims = (0, *range(2, x.dim()))
        xw = x.to(torch.float64)
        current_mean = xw.mean(dim=dims, keepdim=True)
        current_var = ((xw - current_mean) ** 2).mean(dim=dims, keepdim=True)
        y = (xw - current_mean) / torch.sqrt(current_var + self.epsilon) * wide[0] + wide[1]
        running = [(old * self.momentum + new.reshape(-1) * (1 - self.momentum)).to(old.dtype)
                   for old, new in ((mean, current_mean), (var, current_var))]
        return (y.to(x.dtype), *running)[:max(1, len(ctx.node.outputs))]

    def abstract(self, ctx: NodeContext, x, scale, bias, mean, var):
        self._check_outputs(ctx)
        rank = len(x.shape)
        if self.training_mode:
            return self._training_bounds(ctx, x, scale, bias, mean, var)
        s_lo, s_hi = (t + self.epsilon for t in var.full())
        inv_lo = torch.where(s_hi > 0, torch.rsqrt(s_hi.clamp(min=1e-300)), torch.zeros_like(s_hi))
        inv_hi = torch.where(s_lo > 0, torch.rsqrt(s_lo.clamp(min=1e-300)), torch.full_like(s_lo, torch.inf))
        k_lo, k_hi = arith.mul(*scale.full(), inv_lo, inv_hi)
        params = [Interval.from_full(self._layout(lo, rank), self._layout(hi, rank), elem_type)
                  for (lo, hi), elem_type in (((k_lo, k_hi), x.elem_type), (mean.full(), mean.elem_type),
                                              (bias.full(), bias.elem_type))]
        return elementwise(lambda *b: _batchnorm_bounds(x.elem_type, *b), [x, *params], x.elem_type)

    def _training_bounds(self, ctx: NodeContext, x, scale, bias, mean, var) -> tuple[Interval, ...]:
        """Each channel normalized as one row of all its values (InstanceNormalization's bounds on x with
        its channel axis first); the running statistics from the rows' mean and variance bounds."""
        z_lo, z_hi, st = _layer_outputs(_channels_first(x), x.shape[1], self.epsilon)
        z = Interval.from_full(z_lo.transpose(0, 1), z_hi.transpose(0, 1), x.elem_type, ctx.budget)
        y = _affine(z, _channel(scale, len(x.shape)), _channel(bias, len(x.shape)))
        # squares that may overflow the compute type make the variance infinite
        current_var = (st.s_lo - self.epsilon, torch.where(st.big, torch.inf, st.s_hi - self.epsilon))
        running = [self._running(old, (lo.reshape(-1), hi.reshape(-1)))
                   for old, (lo, hi) in ((mean, (st.mean_lo, st.mean_hi)), (var, current_var))]
        return (y, *running)[:max(1, len(ctx.node.outputs))]

    def _running(self, old: Interval, current: tuple[Tensor, Tensor]) -> Interval:
        """``old * momentum + current * (1 - momentum)``, three roundings (the interpreter adds the last)."""
        o_lo, o_hi = (t.to(torch.float64) for t in old.full())
        a_lo, a_hi = arith.mul(o_lo, o_hi, torch.tensor(self.momentum, dtype=torch.float64),
                               torch.tensor(self.momentum, dtype=torch.float64))
        keep = torch.tensor(1 - self.momentum, dtype=torch.float64)
        b_lo, b_hi = arith.mul(current[0], current[1], keep, keep)
        lo, hi = arith.add(a_lo, a_hi, b_lo, b_hi)
        magnitude = torch.maximum(a_lo.abs(), a_hi.abs()) + torch.maximum(b_lo.abs(), b_hi.abs())
        lo, hi = _with_error(lo, hi, magnitude, 3, old.elem_type)
        return Interval.from_full(lo, hi, old.elem_type)


def _channels_first(x: Interval) -> Interval:
    """x with its axes 0 and 1 swapped (its own inverse)."""
    lo, hi = (t.transpose(0, 1) for t in x.full())
    return Interval.from_full(lo, hi, x.elem_type)


def _batchnorm_bounds(elem_type: int, xl, xu, kl, ku, ml, mu, bl, bu) -> tuple[Tensor, Tensor]:
    lo, hi = arith.sub(xl, xu, ml, mu)
    lo, hi = arith.mul(lo, hi, kl, ku)
    lo, hi = arith.add(lo, hi, bl, bu)
    mag = [torch.maximum(a.abs(), b.abs()) for a, b in ((xl, xu), (kl, ku), (ml, mu), (bl, bu))]
    abs_sum = arith.nan_to((mag[0] + mag[2]) * mag[1] + mag[3], torch.inf)
    # sqrt, division and the three arithmetic steps each round once.
    return _with_error(lo, hi, abs_sum, 8, elem_type)
