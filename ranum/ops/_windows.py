"""Window geometry of convolutions and pooling; sliding-window operators evaluated once per run of
output positions that read the same blocks.

All elements of an input block share their bounds, so two output positions whose windows read the
same block (or padding) at every kernel offset get the same bounds (see
:func:`ranum.domain.blocks.window_runs`). On an axis where that saves work, the operand is replaced
by a reduced one holding, for the first position of each run, the ``k`` entries its window reads,
one after the other (padding included, as the pad value): the operator then runs with kernel ``k``,
stride ``k``, dilation 1 and no padding on that axis, and computes exactly the terms the full
operator computes for those positions; :func:`ranum.domain.interval.spread` then gives every
position its run's bounds. Invariants: the reduced operand's entries are block bounds of the input
(or the pad value); the runs' first positions are the output's block starts on that axis.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ranum.domain import blocks
from ranum.domain.interval import Interval
from ranum.errors import UnsupportedOperator

__all__ = ["WindowReduction", "check_auto_pad", "convolution", "output_sizes", "pad_spatial", "reduce_windows",
           "window_attr", "window_geometry", "window_outputs"]


_AUTO_PADS = ("NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID")


def check_auto_pad(op: str, auto_pad: str) -> None:
    """Reject an ``auto_pad`` value that ONNX does not define."""
    if auto_pad not in _AUTO_PADS:
        raise UnsupportedOperator(f"{op}: auto_pad '{auto_pad}' is not one of {_AUTO_PADS}")


def window_attr(values: Sequence[int], rank: int, default: int) -> list[int]:
    """Per-axis attribute values, or ``default`` on every axis where the attribute is absent."""
    return list(values) if values else [default] * rank


def window_geometry(sizes: Sequence[int], kernel: Sequence[int], strides: Sequence[int], dilations: Sequence[int],
                    pads: Sequence[int], auto_pad: str, ceil_mode: int = 0, *, conv: bool = False,
                    clip_tail: bool = False, op: str = "Conv") -> tuple[list[int], list[int], list[int]]:
    """Per spatial axis: pad before, pad after and overhang, as onnxruntime places the windows.

    onnxruntime computes SAME_* padding without the dilation and without clamping it at 0: a negative
    pad before moves the first window inside the input (the pad lists crop there, as ``F.pad`` does).
    Its pools divide the output size in C++ (truncating toward 0). Where that output size is not the
    spec's, the rule refuses rather than guess a shape.

    Args:
        conv: Conv's padding (one more pad where a negative one loses an output), else the pools'.
        clip_tail: windows stop at the pad after (AveragePool's kernels), so real elements past a
            negative pad after are never read; else they read the whole input (MaxPool, LpPool, Conv).
        op: the operator's name, for the refusal.

    Returns:
        ``(begin, end, overhang)``: the windows read ``begin + size + end`` (``end`` counts as padding)
        and then ``overhang`` (which an average never counts); the grid gives exactly the output size.
    """
    rank = len(sizes)
    pads = list(pads) if pads else [0] * (2 * rank)
    begin, end, over = [], [], []
    for i, n in enumerate(sizes):
        spec_out = _spec_output(n, kernel[i], strides[i], dilations[i], pads[i], pads[i + rank], auto_pad, ceil_mode)
        head, tail = _runtime_pads(n, kernel[i], strides[i], dilations[i], pads[i:i + rank + 1:rank], auto_pad, conv)
        out = _runtime_output(n, kernel[i], strides[i], dilations[i], head, tail, ceil_mode, conv)
        if out != spec_out:
            raise UnsupportedOperator(f"{op}: onnxruntime gives {out} outputs on spatial axis {i} (size {n}, kernel "
                                      f"{kernel[i]}, stride {strides[i]}, dilation {dilations[i]}, auto_pad "
                                      f"{auto_pad}), the ONNX spec {spec_out}")
        extent = max(out - 1, 0) * strides[i] + (kernel[i] - 1) * dilations[i] + 1 - n - head
        padding = min(tail, extent) if clip_tail else extent
        begin.append(head)
        end.append(padding)
        over.append(extent - padding)
    return begin, end, over


def output_sizes(sizes: Sequence[int], kernel: Sequence[int], strides: Sequence[int], dilations: Sequence[int],
                 pads: Sequence[int], auto_pad: str, ceil_mode: int = 0) -> list[int]:
    """The output size on each spatial axis (0 where no window fits: the result is empty)."""
    rank = len(sizes)
    pads = list(pads) if pads else [0] * (2 * rank)
    return [max(0, _spec_output(n, kernel[i], strides[i], dilations[i], pads[i], pads[i + rank], auto_pad, ceil_mode))
            for i, n in enumerate(sizes)]


def _trunc_div(a: int, b: int) -> int:
    """C++ integer division (truncates toward 0)."""
    quotient = abs(a) // abs(b)
    return quotient if (a >= 0) == (b > 0) else -quotient


def _runtime_pads(n: int, kernel: int, stride: int, dilation: int, pads: Sequence[int], auto_pad: str, conv: bool
                  ) -> tuple[int, int]:
    """onnxruntime's pads before and after one axis (SAME_*: from the undilated kernel, possibly negative).

    onnxruntime's Conv refuses SAME_* with a dilation: such a node keeps the spec's padding."""
    if auto_pad == "VALID":
        return 0, 0
    if auto_pad not in ("SAME_UPPER", "SAME_LOWER"):
        return pads[0], pads[1]
    target = -(-n // stride)
    if conv and dilation != 1:
        total = max(0, (target - 1) * stride + (kernel - 1) * dilation + 1 - n)
        head = total // 2 if auto_pad == "SAME_UPPER" else total - total // 2
        return head, total - head
    needed = (target - 1) * stride + kernel - n
    if conv and math.trunc((n + 2 * needed - kernel) / stride + 1) < target:
        needed += 1  # onnxruntime's ComputePad: a negative pad that would lose an output is one less negative
    head = _trunc_div(needed, 2) if auto_pad == "SAME_UPPER" else _trunc_div(needed + 1, 2)
    return head, needed - head


def _runtime_output(n: int, kernel: int, stride: int, dilation: int, head: int, tail: int, ceil_mode: int,
                    conv: bool) -> int:
    """onnxruntime's output size on one axis (Conv: a double quotient truncated; pools: a C++ quotient, or
    its float ceiling less a last window that would start past the input)."""
    numerator = n + head + tail - (kernel - 1) * dilation - 1
    if conv:
        return math.trunc(numerator / stride + 1)
    if not ceil_mode:
        return _trunc_div(numerator, stride) + 1
    out = math.ceil(numerator / stride) + 1
    return out - 1 if (out - 1) * stride >= n + head else out


def _spec_output(n: int, kernel: int, stride: int, dilation: int, before: int, after: int, auto_pad: str,
                 ceil_mode: int) -> int:
    """The ONNX spec's output size on one axis (SAME_*: padded with the dilated kernel, at least 0)."""
    span = (kernel - 1) * dilation + 1
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        total = max(0, (-(-n // stride) - 1) * stride + span - n)
        before = total // 2 if auto_pad == "SAME_UPPER" else total - total // 2
        after = total - before
    elif auto_pad == "VALID":
        before = after = 0
    padded = n + before + after
    if not ceil_mode:
        return (padded - span) // stride + 1
    out = -(-(padded - span) // stride) + 1
    return out - 1 if (out - 1) * stride >= n + before else out


def pad_spatial(x: Tensor, before: Sequence[int], after: Sequence[int], value: float = 0.0) -> Tensor:
    """Pad the trailing spatial axes (F.pad lists the last axis first)."""
    spec: list[int] = []
    for b, a in zip(reversed(before), reversed(after)):
        spec += [b, a]
    if not any(spec):
        return x
    return F.pad(x, spec, value=value)


def convolution(strides: Sequence[int], dilations: Sequence[int], begin: Sequence[int], end: Sequence[int],
                group: int) -> Callable[[Tensor, Tensor], Tensor]:
    """A convolution ``(x, w) -> y`` with this geometry (zero padding)."""
    conv = (F.conv1d, F.conv2d, F.conv3d)[len(strides) - 1]
    strides, dilations, begin, end = list(strides), list(dilations), list(begin), list(end)

    def fn(x: Tensor, w: Tensor) -> Tensor:
        return conv(pad_spatial(x, begin, end), w, None, strides, 0, dilations, group)

    return fn


def window_outputs(sizes: Sequence[int], kernel: Sequence[int], strides: Sequence[int], dilations: Sequence[int],
                   *pads: Sequence[int]) -> list[int]:
    """Output size per spatial axis of windows over ``sizes`` padded by every list of ``pads``."""
    return [(n + sum(p[i] for p in pads) - (k - 1) * d - 1) // s + 1
            for i, (n, k, s, d) in enumerate(zip(sizes, kernel, strides, dilations))]


@dataclass(frozen=True)
class WindowReduction:
    """A reduced operand, and per reduced axis (counted from 0, batch and channel included) the
    first output position of each run."""

    operand: Interval
    runs: Mapping[int, tuple[int, ...]]

    def geometry(self, kernel: Sequence[int], strides: Sequence[int], dilations: Sequence[int],
                 *pads: Sequence[int]) -> tuple[list[int], ...]:
        """Strides, dilations and pads over the reduced operand: on a reduced axis the windows lie one
        after another (stride ``k``, no dilation), their padding already in the operand."""
        reduced = {axis - 2 for axis in self.runs}
        strides = [k if i in reduced else s for i, (k, s) in enumerate(zip(kernel, strides))]
        dilations = [1 if i in reduced else d for i, d in enumerate(dilations)]
        return (strides, dilations, *([0 if i in reduced else p for i, p in enumerate(pad)] for pad in pads))


def reduce_windows(x: Interval, kernel: Sequence[int], strides: Sequence[int], dilations: Sequence[int],
                   begin: Sequence[int], out_sizes: Sequence[int], pad_value: float = 0.0,
                   end: Sequence[int] = ()) -> WindowReduction | None:
    """The reduced operand of a window operator over ``x``'s trailing ``len(kernel)`` axes, or None
    where no axis gets smaller (every window reads its own blocks).

    Args:
        x: the input, of shape ``(N, C, *spatial)``.
        kernel, strides, dilations: per spatial axis.
        begin: padding before each spatial axis (padding after is implied by ``out_sizes``).
        out_sizes: the operator's output size on each spatial axis.
        pad_value: the value padding reads (0 for convolutions).
        end: padding after each spatial axis, where it may be negative: an input cut short is not
            reduced on that axis (its runs would read the elements past the cut).
    """
    if x.shape is None or x.rank != len(kernel) + 2:
        return None
    lead = x.rank - len(kernel)
    reads: dict[int, Tensor] = {}
    runs: dict[int, tuple[int, ...]] = {}
    for i, size in enumerate(kernel):
        if end and end[i] < 0:
            continue
        axis = lead + i
        length = x.shape[axis]
        offsets = [j * dilations[i] for j in range(size)]
        first, read = blocks.window_runs(x.splits[axis], length, offsets, out_sizes[i], strides[i], begin[i])
        if first and len(first) * size < length + begin[i]:
            runs[axis], reads[axis] = first, read
    if not runs:
        return None
    lower = x.lower
    upper = lower if x.is_point else x.upper
    for axis, read in reads.items():
        index = read.flatten()
        lower = _gathered(lower, axis, index, pad_value)
        upper = lower if x.is_point else _gathered(upper, axis, index, pad_value)
    splits = tuple(tuple(range(lower.shape[a])) if a in reads else s for a, s in enumerate(x.splits))
    shape = tuple(int(lower.shape[a]) if a in reads else n for a, n in enumerate(x.shape))
    return WindowReduction(Interval(lower, upper, splits, shape, x.elem_type), runs)


def _gathered(values: Tensor, axis: int, index: Tensor, pad_value: float) -> Tensor:
    """Entries ``index`` of ``values`` along ``axis``; index ``values.shape[axis]`` reads the pad value."""
    pad_shape = list(values.shape)
    pad_shape[axis] = 1
    padded = torch.cat([values, torch.full(pad_shape, pad_value, dtype=values.dtype)], axis)
    return padded.index_select(axis, index)

