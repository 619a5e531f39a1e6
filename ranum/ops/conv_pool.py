"""Convolution: Conv, ConvTranspose, CausalConvWithState (pooling is in :mod:`ranum.ops.pooling`).

Geometry follows onnxruntime: explicit ``pads`` = ``[begin_0, .., begin_k, end_0, .., end_k]``, or
``auto_pad`` SAME_UPPER / SAME_LOWER / VALID (see :mod:`ranum.ops._windows`).
Abstract rules use the midpoint-radius product of :mod:`ranum.ops.linear` (accumulation error over
``C/group * prod(kernel)`` terms, plus the bias), once per run of output positions whose windows
read the same blocks. Invariants: bounds sound for float32 / float16 execution, never NaN; an
unbounded input end stays unbounded.

CausalConvWithState (opset 27) is its definition composed of these rules: the past state (zeros without
one) concatenated before the input along the length, a depthwise Conv without padding, rounded, then the
optional SiLU as Swish rounds it; its present state is the concatenation's last ``k - 1`` positions (exact
copies).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ranum.domain.interval import Interval, representatives, spread
from ranum.errors import UnsupportedOperator
from ranum.ops._base import NodeContext, OpRule, structural
from ranum.ops._windows import (
    check_auto_pad,
    convolution,
    pad_spatial,
    reduce_windows,
    window_attr,
    window_geometry,
    window_outputs,
)
from ranum.ops.hazards import Overflow
from ranum.ops.linear import center_radius, contracted, contraction_blocks, finish_sum, interval_product
from ranum.ops.registry import register
from ranum.ops.swish import Swish

__all__ = ["CausalConvWithState", "Conv", "ConvGeometry", "ConvTranspose"]

_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
_CONV_T = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}


def _widen16(x: Tensor) -> Tensor:
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


# --------------------------------------------------------------------------------- convolution
@dataclass(frozen=True)
class ConvGeometry:
    """The attributes that place a convolution's windows (shared by Conv, ConvInteger and QLinearConv)."""

    auto_pad: str = "NOTSET"
    dilations: tuple[int, ...] = ()
    group: int = 1
    kernel_shape: tuple[int, ...] = ()
    pads: tuple[int, ...] = ()
    strides: tuple[int, ...] = ()


def _require_terms(op: str, filter_shape: Sequence[int]) -> None:
    """A filter over no input channel (or an empty window) sums no term: onnxruntime writes the bias (or 0) in the
    output's shape, which these rules do not derive; such a node is left unanalysed."""
    if not math.prod(filter_shape):
        raise UnsupportedOperator(f"{op} with a filter of shape {tuple(filter_shape)}: it sums no term")


@register("Conv")
class Conv(ConvGeometry, OpRule):
    """N-d convolution (1-D to 3-D) with groups, dilations, strides, pads / auto_pad, optional bias."""

    hazards = (Overflow(),)
    accumulates = True

    def __post_init__(self) -> None:
        check_auto_pad("Conv", self.auto_pad)

    def _windows(self, x_shape: Sequence[int], w_shape: Sequence[int]) -> tuple[list[int], ...]:
        """Per spatial axis: kernel, strides, dilations, pad before, pad after."""
        rank = len(x_shape) - 2
        if rank not in _CONV:
            raise UnsupportedOperator(f"Conv: {rank}-d convolution (only 1-D to 3-D)")
        kernel = list(w_shape[2:])
        strides, dilations = window_attr(self.strides, rank, 1), window_attr(self.dilations, rank, 1)
        begin, end, _ = window_geometry(x_shape[2:], kernel, strides, dilations, self.pads, self.auto_pad, conv=True)
        return kernel, strides, dilations, begin, end

    def _fn(self, x_shape: Sequence[int], w_shape: Sequence[int], group: int | None = None
            ) -> Callable[[Tensor, Tensor], Tensor]:
        return convolution(*self._windows(x_shape, w_shape)[1:], self.group if group is None else group)

    def concrete(self, ctx: NodeContext, x: Tensor, w: Tensor, b: Tensor | None = None) -> Tensor:
        _require_terms("Conv", w.shape[1:])
        y = self._fn(x.shape, w.shape)(_widen16(x), _widen16(w))
        if b is not None:
            y = y + _widen16(b).reshape((1, -1) + (1,) * (y.dim() - 2))
        return y.to(x.dtype)

    def abstract(self, ctx: NodeContext, x: Interval, w: Interval, b: Interval | None = None) -> Interval:
        _require_terms("Conv", w.shape[1:])
        count = math.prod(w.shape[1:]) + (1 if b is not None else 0)
        channels, out_channels = w.splits[0], w.shape[0]
        one_bias = b is None or b.numblocks == 1
        shared = self.group == 1 and len(channels) < out_channels and one_bias
        # depthwise: one filter range and one input range over all channels give one output range
        depthwise = (self.group > 1 and self.group == x.shape[1] == out_channels and len(channels) == 1
                     and len(x.splits[1]) == 1 and one_bias)
        if not (shared or depthwise):
            return self._sum(x, w, b, self.group, count, ctx.budget)
        # output channels whose filters (and bias) share bounds share output bounds: one each
        w = representatives(w, 0)
        if depthwise:
            x = representatives(x, 1)
        if b is not None:
            b = b.relaid(lambda t: t.reshape(1), ((0,),), (len(channels),))
        small = self._sum(x, w, b, 1 if depthwise else self.group, count, None)
        return spread(small, {1: channels}, (small.shape[0], out_channels) + tuple(small.shape[2:]), ctx.budget)

    def _sum(self, x: Interval, w: Interval, b: Interval | None, group: int, count: int,
             budget: int | None) -> Interval:
        """The bounds of the convolution, computed once per run of output positions whose windows
        read the same blocks of ``x`` (see :mod:`ranum.ops._windows`), and once per block of input
        channels where ``x`` and a box of weights share them (one group)."""
        kernel, strides, dilations, begin, end = self._windows(x.shape, w.shape)
        channels = contraction_blocks(x, 1, w, 1) if group == 1 else None
        if channels is not None:
            x, w = contracted(x, 1, w, 1, channels)
        out_sizes = window_outputs(x.shape[2:], kernel, strides, dilations, begin, end)
        reduced = reduce_windows(x, kernel, strides, dilations, begin, out_sizes)
        if reduced is None:
            fn = convolution(strides, dilations, begin, end, group)
            return self._finished(fn, x, w, b, count, budget)
        fn = convolution(*reduced.geometry(kernel, strides, dilations, begin, end), group)
        small = self._finished(fn, reduced.operand, w, b, count, None)
        shape = (small.shape[0], small.shape[1], *out_sizes)
        return spread(small, reduced.runs, shape, budget)

    @staticmethod
    def _finished(fn: Callable[[Tensor, Tensor], Tensor], x: Interval, w: Interval, b: Interval | None, count: int,
                  budget: int | None) -> Interval:
        mid, rad, abs_sum = interval_product(fn, [x, w], count)
        if b is not None:
            mid, rad, abs_sum = _add_bias(mid, rad, abs_sum, b)
        return finish_sum(mid, rad, abs_sum, count, x.elem_type, budget)


def _add_bias(mid: Tensor, rad: Tensor, abs_sum: Tensor, bias: Interval) -> tuple[Tensor, Tensor, Tensor]:
    bm, br = center_radius(bias)
    view = (1, -1) + (1,) * (mid.dim() - 2)
    bm, br = bm.reshape(view), br.reshape(view)
    return mid + bm, rad + br, abs_sum + bm.abs() + br


@register("ConvTranspose")
class ConvTranspose(OpRule):
    """N-d transposed convolution with output_padding, output_shape, pads / auto_pad, optional bias."""

    auto_pad: str = "NOTSET"
    dilations: tuple[int, ...] = ()
    group: int = 1
    kernel_shape: tuple[int, ...] = ()
    output_padding: tuple[int, ...] = ()
    output_shape: tuple[int, ...] = ()
    pads: tuple[int, ...] = ()
    strides: tuple[int, ...] = ()

    hazards = (Overflow(),)
    accumulates = True

    def __post_init__(self) -> None:
        check_auto_pad("ConvTranspose", self.auto_pad)

    def _crop(self, sizes: Sequence[int], kernel: Sequence[int]) -> tuple[list[int], list[int]]:
        """Per spatial axis: how much to cut from the full output's start and end (negative: pad)."""
        rank = len(sizes)
        strides, dilations = window_attr(self.strides, rank, 1), window_attr(self.dilations, rank, 1)
        extra = window_attr(self.output_padding, rank, 0)
        pads = list(self.pads) if self.pads else [0] * (2 * rank)
        wanted = list(self.output_shape[-rank:]) if self.output_shape else None
        head, tail = [], []
        for i, n in enumerate(sizes):
            full = strides[i] * (n - 1) + extra[i] + (kernel[i] - 1) * dilations[i] + 1
            if wanted is None and self.auto_pad in ("SAME_UPPER", "SAME_LOWER"):
                wanted_i = n * strides[i]
            elif wanted is not None:
                wanted_i = wanted[i]
            else:
                head.append(pads[i])
                tail.append(pads[i + rank] - extra[i])
                continue
            # onnxruntime never pads the full output: with SAME_* it stays shorter than n * stride, and an
            # output_shape longer than it gets zeros after it
            total = max(0, full - wanted_i)
            first = total // 2 if self.auto_pad == "SAME_UPPER" else total - total // 2
            length = wanted_i if wanted is not None else full - total
            head.append(first)
            tail.append(full - first - length - extra[i])
        return head, tail

    def _fn(self, x_shape: Sequence[int], w_shape: Sequence[int]) -> Callable[[Tensor, Tensor], Tensor]:
        rank = len(x_shape) - 2
        if rank not in _CONV_T:
            raise UnsupportedOperator(f"ConvTranspose: {rank}-d convolution (only 1-D to 3-D)")
        strides, dilations = window_attr(self.strides, rank, 1), window_attr(self.dilations, rank, 1)
        head, tail = self._crop(x_shape[2:], w_shape[2:])

        def fn(x: Tensor, w: Tensor) -> Tensor:
            y = _CONV_T[rank](x, w, None, strides, 0, 0, self.group, dilations)
            return pad_spatial(y, [-h for h in head], [-t for t in tail])

        return fn

    def concrete(self, ctx: NodeContext, x: Tensor, w: Tensor, b: Tensor | None = None) -> Tensor:
        _require_terms("ConvTranspose", (w.shape[0], *w.shape[2:]))
        y = self._fn(x.shape, w.shape)(_widen16(x), _widen16(w))
        if b is not None:
            y = y + _widen16(b).reshape((1, -1) + (1,) * (y.dim() - 2))
        return y.to(x.dtype)

    def abstract(self, ctx: NodeContext, x: Interval, w: Interval, b: Interval | None = None) -> Interval:
        _require_terms("ConvTranspose", (w.shape[0], *w.shape[2:]))
        count = x.shape[1] // self.group * math.prod(w.shape[2:]) + (1 if b is not None else 0)
        mid, rad, abs_sum = interval_product(self._fn(x.shape, w.shape), [x, w], count)
        if b is not None:
            mid, rad, abs_sum = _add_bias(mid, rad, abs_sum, b)
        return finish_sum(mid, rad, abs_sum, count, x.elem_type, ctx.budget)


# ------------------------------------------------------------------------- causal convolution with state
_ACTIVATIONS = ("none", "silu", "swish")


@register("CausalConvWithState", since=27)
class CausalConvWithState(OpRule):
    """Depthwise causal 1-D convolution of ``(batch, channels, length)`` after a carried state of ``k - 1``
    positions; outputs the result (same shape as the input) and the next state."""

    activation: str = "none"
    hazards = (Overflow(),)
    accumulates = True
    rounds = False  # the composed rules round each step

    def __post_init__(self) -> None:
        if self._activation() not in _ACTIVATIONS:
            raise UnsupportedOperator(f"CausalConvWithState: activation {self._activation()!r} (one of {_ACTIVATIONS})")

    def _activation(self) -> str:
        return self.activation.decode() if isinstance(self.activation, bytes) else str(self.activation)

    def _spacing(self) -> int:
        """Positions between the kernel's taps (onnxruntime's contrib operator has a dilation)."""
        return 1

    def _conv(self, w_shape: Sequence[int]) -> Conv:
        if len(w_shape) != 3 or w_shape[1] != 1:
            raise UnsupportedOperator(f"CausalConvWithState: weight of shape {tuple(w_shape)} (expected (C, 1, k))")
        return Conv(group=int(w_shape[0]), kernel_shape=(int(w_shape[2]),), pads=(0, 0), dilations=(self._spacing(),))

    def concrete(self, ctx: NodeContext, x: Tensor, w: Tensor, b: Tensor | None = None,
                 past: Tensor | None = None) -> tuple[Tensor, Tensor]:
        carried = (w.shape[2] - 1) * self._spacing()
        if past is None:
            past = torch.zeros((x.shape[0], x.shape[1], carried), dtype=x.dtype)
        padded = torch.cat([past, x], 2)
        y = self._conv(w.shape).concrete(ctx, padded, w, b)
        if self._activation() != "none":
            y = Swish().fn(y)
        return y, padded[:, :, padded.shape[2] - carried:]

    def abstract(self, ctx: NodeContext, x: Interval, w: Interval, b: Interval | None = None,
                 past: Interval | None = None) -> tuple[Interval, Interval]:
        if x.shape is None or w.shape is None or len(x.shape) != 3:
            raise UnsupportedOperator("CausalConvWithState: input of unknown shape or rank other than 3")
        carried = (w.shape[2] - 1) * self._spacing()
        if past is None:
            past = Interval.point(torch.zeros((x.shape[0], x.shape[1], carried), dtype=torch.float64), x.elem_type)
        (past_lo, past_hi), (x_lo, x_hi) = past.full(), x.full()
        padded = Interval.from_full(torch.cat([past_lo, x_lo], 2), torch.cat([past_hi, x_hi], 2), x.elem_type,
                                    ctx.budget)
        conv = self._conv(w.shape)
        y = conv.rounded(conv.abstract(ctx, padded, w, b))
        if self._activation() != "none":
            gate = Swish()
            y = gate.rounded(gate.abstract(ctx, y))
        length = padded.shape[2]
        present = structural(lambda t: t[:, :, length - carried:], padded, ctx.budget)
        return y, present
