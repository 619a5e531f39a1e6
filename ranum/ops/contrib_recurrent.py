"""onnxruntime's contrib (``com.microsoft``) versions of the operators that opset 27 standardised for
state-space and linear-attention layers: CausalConvWithState and LinearAttention.

onnxruntime 1.32 has CPU kernels for both, which a model built for onnxruntime (Qwen3.5's Gated DeltaNet,
Mamba-style convolutions) holds instead of the standard operators. With their extra attributes at their
defaults they compute what the standard operators do (checked against onnxruntime's own kernels), so the
standard rules apply. Besides the defaults, the rules take:

* CausalConvWithState's ``dilation`` (taps ``dilation`` positions apart along the length; past and present
  states of ``(k - 1) * dilation`` positions) and ``channels_last`` for rank-3 tensors (``(batch, length,
  channels)`` activations and states: transposed around the standard rule, which only moves values).

Other settings (more than one spatial axis, windows of per-position states, the CUDA-only capture output
and channel slices, more key/value heads than query heads) are reported as unsupported, never ignored.
"""

from __future__ import annotations

from torch import Tensor

from ranum.domain.interval import Interval
from ranum.errors import UnsupportedOperator
from ranum.ops import conv_pool, linear_attention
from ranum.ops._base import NodeContext, structural
from ranum.ops.contrib import MS_DOMAIN
from ranum.ops.registry import register

__all__ = ["CausalConvWithState", "LinearAttention"]


def _require(op: str, settings: dict[str, tuple[int, int]]) -> None:
    """Raise for an attribute whose value (first) is not the one supported (second)."""
    for name, (value, supported) in settings.items():
        if int(value) != supported:
            raise UnsupportedOperator(f"{op} (com.microsoft): {name}={value} is not supported (only {supported})")


@register("CausalConvWithState", domain=MS_DOMAIN)
class CausalConvWithState(conv_pool.CausalConvWithState):
    """The standard operator's rule, with taps ``dilation`` apart and, optionally, channels last."""

    channels_last: int = 0
    dilation: int = 1
    input_channel_offset: int = 0
    input_channels: int = 0
    ndim: int = 1
    state_channels_last: int = -1
    state_length: int = 0
    state_update_capacity: int = 0
    state_window: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.dilation < 1:
            raise UnsupportedOperator(f"CausalConvWithState (com.microsoft): dilation {self.dilation} (at least 1)")
        _require("CausalConvWithState", {
            "ndim": (self.ndim, 1), "state_window": (self.state_window, 0),
            "state_update_capacity": (self.state_update_capacity, 0), "state_length": (self.state_length, 0),
            "input_channel_offset": (self.input_channel_offset, 0), "input_channels": (self.input_channels, 0),
            "state_channels_last": (self.state_channels_last if self.state_channels_last >= 0 else self.channels_last,
                                    self.channels_last)})

    def _spacing(self) -> int:
        return int(self.dilation)

    def concrete(self, ctx: NodeContext, x: Tensor, w: Tensor, b: Tensor | None = None,
                 past: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if not self.channels_last:
            return super().concrete(ctx, x, w, b, past)
        y, state = super().concrete(ctx, x.transpose(1, 2), w, b, None if past is None else past.transpose(1, 2))
        return y.transpose(1, 2), state.transpose(1, 2)

    def abstract(self, ctx: NodeContext, x: Interval, w: Interval, b: Interval | None = None,
                 past: Interval | None = None) -> tuple[Interval, Interval]:
        if not self.channels_last:
            return super().abstract(ctx, x, w, b, past)
        if x.shape is None or len(x.shape) != 3:
            raise UnsupportedOperator("CausalConvWithState (com.microsoft): channels_last needs a rank-3 input")

        def swapped(iv: Interval) -> Interval:
            return structural(lambda t: t.transpose(1, 2), iv, ctx.budget)

        y, state = super().abstract(ctx, swapped(x), w, b, None if past is None else swapped(past))
        return swapped(y), swapped(state)


@register("LinearAttention", domain=MS_DOMAIN)
class LinearAttention(linear_attention.LinearAttention):
    """The standard operator's rule (one state after the last token, at least as many query heads as
    key/value heads)."""

    state_window: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        _require("LinearAttention", {"state_window": (self.state_window, 0)})
