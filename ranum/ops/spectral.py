"""Signal processing: DFT, STFT, the Hann, Hamming and Blackman windows, MelWeightMatrix.

DFT and STFT are linear maps with known coefficients: their abstract rules bound the transform of
midpoints +- the absolute coefficients applied to radii, widened by a sound bound of onnxruntime's
float error (:mod:`ranum.ops._fourier`, where the derivation is). Both sum many terms (``accumulates``)
and declare ``Overflow``. Semantics are the spec's and onnxruntime 1.32's; where they part: a one-sided
DFT inverse (IRFFT, ``torch.fft.irfft``) of ``n // 2 + 1`` bins gives ``n`` real samples (last axis 1),
the real part of onnxruntime's own full inverse DFT of the Hermitian extension (bin ``n - k`` the
conjugate of bin ``k``, the imaginary parts of bins 0 and ``n / 2`` kept): measured bit for bit for
``n`` = 7, 8, 9, 10, 12, 16, 64 and 100 (powers of two or not), so its error bound is that transform's; other bin counts
(onnxruntime pads or cuts them otherwise) are rejected; a one-sided STFT of a
complex signal gives the first bins of the full transform, as onnxruntime does (the spec excludes it);
an STFT without window and frame_length transforms the whole signal, as the spec says (onnxruntime
fails). STFT's ``onesided`` defaults to 1 (onnx's shape inference takes 0 when the attribute is absent).

The windows and MelWeightMatrix take constant scalars (their outputs' shapes depend on them: a range
is rejected). Semantics are onnxruntime 1.32's, checked against it in ``tests/ops/cases_spectral.py``:

* windows: ``a0 - a1 cos(t) + a2 cos(2 t)``, ``t = 2 pi i / N`` (``N = size``, or ``size - 1`` when
  symmetric), in float64 with the float32 coefficients onnxruntime uses, then cast to the output type
  (float16 through float32). onnxruntime's float64 value is within ``2^-46`` of this module's (a few
  float64 roundings of terms below 1, angles included); near 0 that error is absolute, so exact inputs
  take the abstract rule too (``accumulates``). ``i = 0`` is exact. A symmetric window of size 1 is
  ``0/0``: NaN, a declared hazard.
* MelWeightMatrix: triangles between the FFT bins ``floor((dft_length + 1) hz / sample_rate)`` of
  ``num_mel_bins + 2`` points evenly spaced in mel (onnxruntime divides the mel range by
  ``num_mel_bins + 2``), each ratio of integers rounded once in the output type. A bin whose float64
  position lies within ``2^-40`` of an integer could round either way in another libm: the matrix is then
  the hull over both (so exact inputs take the abstract rule too).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from onnx import TensorProto
from torch import Tensor

from ranum.domain import arith
from ranum.domain.dtypes import torch_dtype, type_name
from ranum.domain.interval import Interval, representatives, spread
from ranum.errors import UnsupportedOperator
from ranum.ops._base import NodeContext, OpRule, exact_ints
from ranum.ops._fourier import Transform, spectrum_bounds
from ranum.ops.hazards import Hazard, Overflow, RegionHazard
from ranum.ops.registry import register

__all__ = ["BlackmanWindow", "DFT", "DFT17", "HammingWindow", "HannWindow", "MelWeightMatrix", "STFT"]

_SIGNAL_TYPES = (TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.FLOAT16)  # onnxruntime's kernels


# ------------------------------------------------------------------------------ DFT
def _complex(x: Tensor, complex_axis: bool = True) -> Tensor:
    """A complex128 tensor from a real (last axis 1) or complex (last axis 2) ONNX signal."""
    x = x.to(torch.float64)
    if not complex_axis:
        return torch.complex(x, torch.zeros_like(x))
    return torch.complex(x[..., 0], x[..., 1] if x.shape[-1] == 2 else torch.zeros_like(x[..., 0]))


def _spectrum(values: Tensor, t: Transform, dim: int) -> Tensor:
    """The DFT ``t`` of complex samples along ``dim`` (zero padded or cut to its length), as real and
    imaginary parts on a new last axis."""
    fn = torch.fft.ifft if t.inverse else torch.fft.fft
    out = fn(values, n=t.length, dim=dim).narrow(dim, 0, t.count)
    return torch.stack([out.real, out.imag], dim=-1)


def _check_signal(op: str, elem_type: int) -> None:
    if elem_type not in _SIGNAL_TYPES:
        raise UnsupportedOperator(f"{op}: signal type {type_name(elem_type)} (onnxruntime computes float, double "
                                  "and, in float, float16)")


def _bluestein_overrun(op: str, samples: int, length: int) -> None:
    """onnxruntime's chirp-z transform (lengths that are not powers of two) copies every sample of the
    axis into a buffer of the next power of two at or above ``2 length - 1``: more samples overrun it."""
    if length & (length - 1) and samples > 1 << (2 * length - 2).bit_length():
        raise UnsupportedOperator(f"{op}: {samples} samples cut to dft_length {length} overrun onnxruntime's "
                                  "buffer (undefined behaviour)")


def _resolved(op: str, shape: Sequence[int], axis: int, length: list[int] | None, onesided: int,
              inverse: int) -> tuple[int, Transform]:
    """The DFT axis (non-negative) and transform of a signal of ``shape``; the transform's element type is
    left 0 (set by the caller)."""
    rank = len(shape)
    if rank < 2 or shape[-1] not in (1, 2) or (rank == 2 and shape[-1] == 2):
        raise UnsupportedOperator(f"{op}: signal of shape {tuple(shape)} (expected [..., 1] or [..., 2], rank >= 3 "
                                  "for complex: onnxruntime reads a rank-2 signal as real)")
    position = axis + rank if axis < 0 else axis
    if not 0 <= position <= rank - 2:
        raise UnsupportedOperator(f"{op}: axis {axis} out of range for rank {rank}")
    if onesided and shape[-1] == 2:
        raise UnsupportedOperator(f"{op}: onesided needs a real signal")
    n = shape[position] if length is None else length[0]
    if n <= 0:
        raise UnsupportedOperator(f"{op}: dft_length {n} (must be positive)")
    _bluestein_overrun(op, shape[position], n)
    count = n // 2 + 1 if onesided else n
    return position, Transform(n, count, bool(inverse), 0)


def _blocks_kept(iv: Interval, keep: set[int]) -> tuple[Interval, dict[int, tuple[int, ...]]]:
    """``iv`` with one entry per block on every axis outside ``keep`` (all elements of a block share
    bounds), and those axes' block starts, for :func:`spread`."""
    small, starts = iv, {}
    for axis, splits in enumerate(iv.splits):
        if axis not in keep and len(splits) < iv.shape[axis]:
            small = representatives(small, axis)
            starts[axis] = splits
    return small, starts


def _dft_interval(ctx: NodeContext, x: Interval, position: int, t: Transform) -> Interval:
    """Bounds of the DFT of ``x`` along axis ``position`` (block-wise on the other axes)."""
    rank = len(x.shape)
    small, starts = _blocks_kept(x, {position, rank - 1})
    lo, hi = (b.movedim(position, -2) for b in small.full())
    used = min(lo.shape[-2], t.length)
    lo, hi = lo.narrow(-2, 0, used), hi.narrow(-2, 0, used)
    imag = (lo[..., 1], hi[..., 1]) if lo.shape[-1] == 2 else None
    bounds = spectrum_bounds((lo[..., 0], hi[..., 0]), imag, t)
    out_lo = torch.stack([bounds[0], bounds[2]], dim=-1).movedim(-2, position)
    out_hi = torch.stack([bounds[1], bounds[3]], dim=-1).movedim(-2, position)
    shape = list(x.shape)
    shape[position], shape[-1] = t.count, 2
    return spread(Interval.from_full(out_lo, out_hi, x.elem_type), starts, shape, ctx.budget)


@register("DFT", since=17)
class DFT17(OpRule):
    """Discrete Fourier transform along ``axis`` (an attribute here); inputs (input, dft_length?).

    The signal's last axis holds 1 (real) or 2 (complex) components; the output is complex (last axis 2)
    with ``dft_length`` bins, or ``dft_length // 2 + 1`` when ``onesided``; a one-sided inverse (IRFFT) of
    ``n // 2 + 1`` complex bins gives ``n`` real samples (see the module doc)."""

    inverse: int = 0
    onesided: int = 0
    axis: int = 1

    hazards = (Overflow(),)
    accumulates = True

    def _axis(self, axis: Tensor | Interval | None) -> int:
        return self.axis

    def _setting(self, shape: Sequence[int], dft_length, axis) -> tuple[int, Transform]:
        length = exact_ints(dft_length, "dft_length", self.op_type)
        return _resolved(self.op_type, shape, self._axis(axis), length, self.onesided, self.inverse)

    def concrete(self, ctx: NodeContext, x: Tensor, dft_length: Tensor | None = None,
                 axis: Tensor | None = None) -> Tensor:
        if self.onesided and self.inverse:
            position, n = self._hermitian(x.shape, dft_length, axis)
            spectrum = _complex(x).index_select(position, torch.tensor(_mirrored_bins(n)))
            upper = torch.arange(n).reshape([-1] + [1] * (spectrum.dim() - position - 1)) > n // 2
            extended = torch.where(upper, spectrum.conj(), spectrum)
            return torch.fft.ifft(extended, n=n, dim=position).real.unsqueeze(-1).to(x.dtype)
        position, t = self._setting(x.shape, dft_length, axis)
        return _spectrum(_complex(x), t, position).to(x.dtype)

    def abstract(self, ctx: NodeContext, x: Interval, dft_length: Interval | None = None,
                 axis: Interval | None = None) -> Interval:
        _check_signal(self.op_type, x.elem_type)
        if self.onesided and self.inverse:
            position, n = self._hermitian(x.shape, dft_length, axis)
            spectrum = _dft_interval(ctx, _hermitian_extension(x, position, n), position,
                                     Transform(n, n, True, x.elem_type))
            lo, hi = spectrum.full()
            return Interval.from_full(lo[..., :1], hi[..., :1], x.elem_type, ctx.budget)
        position, t = self._setting(x.shape, dft_length, axis)
        return _dft_interval(ctx, x, position, Transform(t.length, t.count, t.inverse, x.elem_type))

    def _hermitian(self, shape: Sequence[int], dft_length, axis) -> tuple[int, int]:
        """The axis and length ``n`` of a one-sided inverse DFT (IRFFT) of ``n // 2 + 1`` complex bins."""
        op, rank = self.op_type, len(shape)
        if rank < 3 or shape[-1] != 2:
            raise UnsupportedOperator(f"{op}: onesided inverse (IRFFT) of shape {tuple(shape)} (expected a complex "
                                      "one-sided spectrum [..., bins, 2])")
        position = self._axis(axis)
        position = position + rank if position < 0 else position
        if not 0 <= position <= rank - 2:
            raise UnsupportedOperator(f"{op}: axis {self._axis(axis)} out of range for rank {rank}")
        bins, length = shape[position], exact_ints(dft_length, "dft_length", op)
        n = 2 * (bins - 1) if length is None else length[0]
        if n <= 0 or bins != n // 2 + 1:
            raise UnsupportedOperator(f"{op}: onesided inverse (IRFFT) of {bins} bins to {n} samples: onnxruntime "
                                      "1.32 pads or cuts such a spectrum otherwise than by its Hermitian extension "
                                      "(measured); n // 2 + 1 bins are modelled")
        return position, n


@register("DFT", since=20)
class DFT(DFT17):
    """DFT of opset 20: the axis is an optional third input (default -2, the last signal axis)."""

    axis: int = -2

    def _axis(self, axis: Tensor | Interval | None) -> int:
        value = exact_ints(axis, "axis", self.op_type)
        return self.axis if value is None else value[0]


def _mirrored_bins(n: int) -> list[int]:
    """The one-sided bin that each bin of a length-``n`` spectrum mirrors (``n - k`` above ``n // 2``)."""
    return [k if k <= n // 2 else n - k for k in range(n)]


def _hermitian_extension(x: Interval, position: int, n: int) -> Interval:
    """The full spectrum of ``n`` bins of a one-sided one along ``position``: bin ``n - k`` is the conjugate of
    bin ``k`` (its imaginary bounds negated)."""
    lo, hi = (t.index_select(position, torch.tensor(_mirrored_bins(n))) for t in x.full())
    upper = (torch.arange(n) > n // 2).reshape([-1] + [1] * (lo.dim() - position - 2))
    im_lo = torch.where(upper, -hi[..., 1], lo[..., 1])
    im_hi = torch.where(upper, -lo[..., 1], hi[..., 1])
    return Interval.from_full(torch.stack([lo[..., 0], im_lo], -1), torch.stack([hi[..., 0], im_hi], -1), x.elem_type)


# ------------------------------------------------------------------------------ STFT
@register("STFT", since=17)
class STFT(OpRule):
    """Short-time Fourier transform; inputs (signal [batch, length(, 1 or 2)], frame_step, window?,
    frame_length?), output [batch, frames, bins, 2] with ``frames = (length - frame_length) // frame_step
    + 1`` and ``frame_length // 2 + 1`` bins when ``onesided`` (the default), else ``frame_length``.
    Without window and frame_length a frame is the whole signal (onnxruntime 1.32 rejects that case)."""

    onesided: int = 1

    hazards = (Overflow(),)
    accumulates = True
    parameter_operands = frozenset({2})  # a stored window is a setting, not a learned weight

    def _setting(self, shape: Sequence[int], step, window_length: int | None, frame_length
                 ) -> tuple[int, int, Transform]:
        """Frame step, frame count and each frame's transform."""
        op = self.op_type
        if len(shape) not in (2, 3) or (len(shape) == 3 and shape[2] not in (1, 2)):
            raise UnsupportedOperator(f"{op}: signal of shape {tuple(shape)} (expected [batch, length, 1 or 2])")
        (hop,) = exact_ints(step, "frame_step", op)
        given = exact_ints(frame_length, "frame_length", op)
        n = given[0] if given is not None else window_length if window_length is not None else shape[1]
        if window_length is not None and n != window_length:
            raise UnsupportedOperator(f"{op}: frame_length {n} differs from the window's length {window_length}")
        if hop <= 0 or not 0 < n <= shape[1]:
            raise UnsupportedOperator(f"{op}: frame_step {hop} and frame_length {n} for a signal of {shape[1]}")
        count = n // 2 + 1 if self.onesided else n
        return hop, (shape[1] - n) // hop + 1, Transform(n, count, False, 0)

    def concrete(self, ctx: NodeContext, signal: Tensor, step: Tensor, window: Tensor | None = None,
                 frame_length: Tensor | None = None) -> Tensor:
        hop, frames, t = self._setting(signal.shape, step, None if window is None else window.shape[0], frame_length)
        values = _complex(signal, signal.dim() == 3).unfold(1, t.length, hop).narrow(1, 0, frames)
        if window is not None:
            values = values * window.to(torch.float64)
        return _spectrum(values, t, -1).to(signal.dtype)

    def abstract(self, ctx: NodeContext, signal: Interval, step: Interval, window: Interval | None = None,
                 frame_length: Interval | None = None) -> Interval:
        _check_signal(self.op_type, signal.elem_type)
        hop, frames, t = self._setting(signal.shape, step, None if window is None else window.shape[0],
                                       frame_length)
        t = Transform(t.length, t.count, False, signal.elem_type)
        small, starts = _blocks_kept(signal, {1, 2})
        lo, hi = small.full()
        if lo.dim() == 2:
            lo, hi = lo.unsqueeze(-1), hi.unsqueeze(-1)
        uniform = len(signal.splits[1]) == 1  # every frame has the same bounds: one frame stands for all
        kept = 1 if uniform else frames
        lo, hi = (b.unfold(1, t.length, hop).narrow(1, 0, kept) for b in (lo, hi))  # [b, frames, comps, n]
        if window is not None:
            w_lo, w_hi = window.full()
            lo, hi = arith.mul(lo, hi, w_lo, w_hi)
        imag = (lo[:, :, 1], hi[:, :, 1]) if lo.shape[2] == 2 else None
        bounds = spectrum_bounds((lo[:, :, 0], hi[:, :, 0]), imag, t)
        out = Interval.from_full(torch.stack([bounds[0], bounds[2]], -1), torch.stack([bounds[1], bounds[3]], -1),
                                 signal.elem_type)
        if uniform:
            starts[1] = (0,)
        return spread(out, starts, (signal.shape[0], frames, t.count, 2), ctx.budget)


# ------------------------------------------------------------------------------ windows
_WINDOW_TYPES = (TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.FLOAT16)
_WINDOW_ERROR = 2.0**-46  # onnxruntime's float64 window value vs this module's (module docstring)
_F32 = np.float32


def _f32(value) -> float:
    return float(_F32(value))


@dataclass(frozen=True)
class _OneSymmetric(RegionHazard):
    """Size 1 of a symmetric window (``N = size - 1 = 0``); a periodic window never fires it."""

    symmetric: bool = True

    def check(self, inputs, outputs):
        return super().check(inputs, outputs) if self.symmetric else None

    def triggered(self, inputs, outputs):
        fired = super().triggered(inputs, outputs)
        return fired if self.symmetric else torch.zeros_like(fired)

    def distance(self, inputs, outputs):
        gap = super().distance(inputs, outputs)
        return gap if self.symmetric else torch.full_like(gap, math.inf)


@dataclass(frozen=True)
class _CosineWindow(OpRule):
    """``a0 - a1 cos(2 pi i / N) + a2 cos(4 pi i / N)`` for ``i < size`` (``N = size``, or ``size - 1``
    when ``periodic`` is 0); input (size), a constant scalar."""

    periodic: int = 1
    output_datatype: int = TensorProto.FLOAT

    terms: ClassVar[tuple[float, float, float]] = (0.0, 0.0, 0.0)
    accumulates = True  # the error is absolute (module docstring): exact sizes take the abstract rule
    parameter_operands = frozenset({0})

    @property
    def hazards(self) -> tuple[Hazard, ...]:  # type: ignore[override]
        return (_OneSymmetric("window-of-one", "symmetric window of size 1 is 0/0 (NaN)", 1.0, 1.0,
                              symmetric=not self.periodic),)

    def _size(self, size: Tensor | Interval) -> int:
        if self.output_datatype not in _WINDOW_TYPES:
            raise UnsupportedOperator(f"{self.op_type}: output_datatype {type_name(self.output_datatype)} "
                                      "(float, double and float16 are analysed)")
        (count,) = exact_ints(size, "size", self.op_type)
        if count < 0:
            raise UnsupportedOperator(f"{self.op_type}: negative size {count}")
        return count

    def _values(self, count: int) -> Tensor:
        """The window in float64, as onnxruntime computes it (NaN for a symmetric window of size 1)."""
        a0, a1, a2 = self.terms
        period = count if self.periodic else count - 1
        step = 2 * math.pi / period if period else math.nan
        i = torch.arange(count, dtype=torch.float64)
        angle = i * step if period else torch.full_like(i, math.nan)
        values = a0 - a1 * torch.cos(angle)
        if a2:
            values = values + a2 * torch.cos(2 * step * i if period else angle)
        return values

    def concrete(self, ctx: NodeContext, size: Tensor) -> Tensor:
        values = self._values(self._size(size))
        if self.output_datatype == TensorProto.FLOAT16:
            values = values.to(torch.float32)
        return values.to(torch_dtype(self.output_datatype))

    def abstract(self, ctx: NodeContext, size: Interval) -> Interval:
        count = self._size(size)
        values = self._values(count)
        if count == 1 and not self.periodic:  # NaN: the hazard's business
            return Interval.top((1,), self.output_datatype)
        slack = torch.full_like(values, _WINDOW_ERROR)
        slack[:1] = 0.0  # cos(0) = 1 exactly: the first value is exact
        return Interval.from_full(values - slack, values + slack, self.output_datatype)


@register("HannWindow", since=17)
class HannWindow(_CosineWindow):
    """Hann window, ``0.5 - 0.5 cos(2 pi i / N)``."""

    terms = (0.5, 0.5, 0.0)


@register("HammingWindow", since=17)
class HammingWindow(_CosineWindow):
    """Hamming window, ``a0 - (1 - a0) cos(2 pi i / N)`` with ``a0 = 25/46`` in float32."""

    terms = (_f32(_F32(25) / _F32(46)), _f32(_F32(1) - _F32(25) / _F32(46)), 0.0)


@register("BlackmanWindow", since=17)
class BlackmanWindow(_CosineWindow):
    """Blackman window, ``0.42 - 0.5 cos(2 pi i / N) + 0.08 cos(4 pi i / N)`` (float32 coefficients)."""

    terms = (_f32(_F32(0.5) - _F32(0.16) / _F32(2)), 0.5, _f32(_F32(0.16) / _F32(2)))


# ------------------------------------------------------------------------------ MelWeightMatrix
_MEL_TYPES = (TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.FLOAT16, TensorProto.BFLOAT16)
_FLOOR_DOUBT = 2.0**-40  # relative error of a bin position (256 times libm's) within which a floor is in doubt


def _mel_points(bins: int, length: int, rate: int, low: float, high: float) -> list[tuple[int, tuple[int, ...]]]:
    """Per point of the ``bins + 2`` evenly spaced in mel, its FFT bin as onnxruntime computes it, and the
    bins it could take where the float64 position is too close to an integer to be sure of its floor."""
    mel_low = 2595 * math.log10(1 + low / 700)
    mel_high = 2595 * math.log10(1 + high / 700)
    step = (mel_high - mel_low) / float(bins + 2)
    points = []
    for i in range(bins + 2):
        power = math.pow(10, (mel_low + step * i) / 2595)
        position = ((length + 1) * (700 * (power - 1))) / rate
        # libm's log10 and pow err by a few ulps: a relative error of the position, and an absolute one
        # of pow's ulp (the subtraction of 1 cancels); 0 Hz is exact (log10(1) = 0, pow(10, 0) = 1)
        exact = position == 0.0 and i == 0
        doubt = 0.0 if exact else _FLOOR_DOUBT * (abs(position) + (length + 1) * 700 * power / rate)
        choices = {math.floor(position - doubt), math.floor(position), math.floor(position + doubt)}
        points.append((math.floor(position), tuple(sorted(choices))))
    return points


def _triangle(left: int, center: int, right: int, size: int, dtype: torch.dtype) -> Tensor:
    """One filter: rising from ``left`` to 1 at ``center``, falling to 0 at ``right`` (onnxruntime's
    ratios, each rounded once in ``dtype``)."""
    column = torch.zeros(size, dtype=dtype)
    if center == left:
        column[center] = 1
    elif left < center:
        j = torch.arange(left, center + 1)
        column[j] = (j - left).to(dtype) / torch.full(j.shape, center - left, dtype=dtype)
    if right > center:
        j = torch.arange(center, right)
        column[j] = (right - j).to(dtype) / torch.full(j.shape, right - center, dtype=dtype)
    return column


@register("MelWeightMatrix", since=17)
class MelWeightMatrix(OpRule):
    """Triangular mel filter bank, ``[dft_length // 2 + 1, num_mel_bins]``; inputs (num_mel_bins,
    dft_length, sample_rate, lower_edge_hertz, upper_edge_hertz), constant scalars."""

    output_datatype: int = TensorProto.FLOAT

    rounds = False  # each entry is one correctly rounded ratio of integers
    accumulates = True  # a doubtful floor widens exact inputs' result (module docstring)
    parameter_operands = frozenset({0, 1, 2, 3, 4})

    def _points(self, *inputs: Tensor | Interval) -> tuple[int, list[tuple[int, tuple[int, ...]]]]:
        """The spectrogram's bin count and the filter bank's points (see :func:`_mel_points`)."""
        op = self.op_type
        if self.output_datatype not in _MEL_TYPES:
            raise UnsupportedOperator(f"{op}: output_datatype {type_name(self.output_datatype)} (floats only)")
        (bins,), (length,), (rate,) = (exact_ints(v, name, op) for v, name in
                                       zip(inputs, ("num_mel_bins", "dft_length", "sample_rate")))
        low, high = (_edge(v, name, op) for v, name in zip(inputs[3:], ("lower_edge_hertz", "upper_edge_hertz")))
        size = length // 2 + 1
        if bins <= 0 or length <= 0 or rate <= 0:
            raise UnsupportedOperator(f"{op}: num_mel_bins, dft_length and sample_rate must be positive")
        for edge in (low, high):  # onnxruntime's check, in float32
            index = math.floor(_f32(_f32(_F32(length + 1) * _F32(edge)) / _F32(rate)))
            if not 0 <= index < size:
                raise UnsupportedOperator(f"{op}: edge {edge} Hz falls outside the {size} spectrogram bins")
        points = _mel_points(bins, length, rate, low, high)
        if min(p[1][0] for p in points) < 0 or max(p[1][-1] for p in points) >= size:
            raise UnsupportedOperator(f"{op}: the filter bank leaves the {size} spectrogram bins")
        return size, points

    def concrete(self, ctx: NodeContext, *inputs: Tensor) -> Tensor:
        size, points = self._points(*inputs)
        dtype = torch_dtype(self.output_datatype)
        nominal = [bin_ for bin_, _ in points]
        return torch.stack([_triangle(*nominal[i:i + 3], size, dtype) for i in range(len(points) - 2)], dim=1)

    def abstract(self, ctx: NodeContext, *inputs: Interval) -> Interval:
        size, points = self._points(*inputs)
        dtype = torch_dtype(self.output_datatype)
        least, greatest = [], []
        for i in range(len(points) - 2):
            corners = itertools.product(*(choices for _, choices in points[i:i + 3]))
            columns = torch.stack([_triangle(*corner, size, dtype) for corner in corners])
            least.append(columns.amin(0))
            greatest.append(columns.amax(0))
        low, high = torch.stack(least, dim=1), torch.stack(greatest, dim=1)
        if torch.equal(low, high):
            return Interval.point(low, self.output_datatype)
        return Interval.from_full(low.to(torch.float64), high.to(torch.float64), self.output_datatype)


def _edge(value: Tensor | Interval, name: str, op: str) -> float:
    """A frequency edge as onnxruntime reads it: a constant float32 scalar."""
    if isinstance(value, Interval):
        if not value.is_exact:
            raise UnsupportedOperator(f"{op}: operand '{name}' must be a constant, got a range")
        value = value.exact_value()
    return _f32(float(value.reshape(-1)[0]))
