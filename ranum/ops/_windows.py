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

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ranum.domain import blocks
from ranum.domain.interval import Interval
from ranum.errors import UnsupportedOperator

__all__ = ["WindowReduction", "check_auto_pad", "convolution", "pad_spatial", "reduce_windows",
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
                    pads: Sequence[int], auto_pad: str, ceil_mode: int = 0) -> tuple[list[int], list[int], list[int]]:
    """Per spatial axis: pad before, pad after (explicit pads only) and overhang (ceil mode).

    Returns:
        ``(begin, end, overhang)``: the window grid covers ``begin + size + end + overhang``.
    """
    rank = len(sizes)
    pads = list(pads) if pads else [0] * (2 * rank)
    begin, end, over = [], [], []
    for i, n in enumerate(sizes):
        span = (kernel[i] - 1) * dilations[i] + 1
        if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
            out = -(-n // strides[i])
            total = max(0, (out - 1) * strides[i] + span - n)
            head = total // 2 if auto_pad == "SAME_UPPER" else total - total // 2
            begin.append(head)
            end.append(total - head)
        elif auto_pad == "VALID":
            begin.append(0)
            end.append(0)
        else:
            begin.append(pads[i])
            end.append(pads[i + rank])
        padded = n + begin[-1] + end[-1]
        out = (padded - span) // strides[i] + 1
        if ceil_mode:
            out = -(-(padded - span) // strides[i]) + 1
            if (out - 1) * strides[i] >= n + begin[-1]:
                out -= 1
        over.append(max(0, (out - 1) * strides[i] + span - padded))
    return begin, end, over


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
                   begin: Sequence[int], out_sizes: Sequence[int], pad_value: float = 0.0) -> WindowReduction | None:
    """The reduced operand of a window operator over ``x``'s trailing ``len(kernel)`` axes, or None
    where no axis gets smaller (every window reads its own blocks).

    Args:
        x: the input, of shape ``(N, C, *spatial)``.
        kernel, strides, dilations: per spatial axis.
        begin: padding before each spatial axis (padding after is implied by ``out_sizes``).
        out_sizes: the operator's output size on each spatial axis.
        pad_value: the value padding reads (0 for convolutions).
    """
    if x.shape is None or x.rank != len(kernel) + 2:
        return None
    lead = x.rank - len(kernel)
    reads: dict[int, Tensor] = {}
    runs: dict[int, tuple[int, ...]] = {}
    for i, size in enumerate(kernel):
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

