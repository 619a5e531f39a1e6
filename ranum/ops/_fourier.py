"""Interval bounds of a discrete Fourier transform as onnxruntime's CPU kernels compute it.

A DFT of length ``n`` is linear, ``y_k = s sum_j x_j exp(-+2 pi i j k / n)`` (``s = 1``, or ``1/n`` for the
inverse). With each sample component given as midpoint +- radius, the real-number outputs lie within
the transform of the midpoints +- the absolute coefficients applied to the radii: per output, the real
part's radius is ``sum_j |cos| r_re + |sin| r_im`` and the imaginary part's ``sum_j |cos| r_im + |sin| r_re``.
Both are evaluated in float64 from cos/sin of the exactly reduced angles ``2 pi ((j k) mod n) / n``; past
``2^22`` coefficients, the midpoints by a float64 FFT and the radii bounded by ``sum_j r_re + r_im``.

The float error of onnxruntime's computation is added on top. How onnxruntime 1.32 computes (its
outputs match a float32 re-implementation of the two algorithms below bit for bit on power-of-two
lengths and within their rounding otherwise; float16 tensors are cast around the float32 kernel, so the
float32 error applies and the interpreter rounds the result once more), with ``u`` the unit roundoff of
the compute type (float32 or float64), ``S1 = sum_j |x_j w_j|`` (sample moduli, times the window for
STFT) and ``S2 = ||x w||_2``:

* ``n`` a power of two, an iterative radix-2 FFT. Its twiddles ``exp(-+i t fl(fl(2 pi_T) / n))``, with
  ``t`` times that angle rounded once more, are within ``mu = 22 u`` of the exact ones (angle error at most
  ``2 pi (|pi_T - pi| / pi + 2 u) <= 5 pi u``, plus an ulp in each of cos and sin: below ``18 u``). A butterfly
  output ``e + w o`` computed from the computed ``e``, ``o`` is within ``eta (|e| + |o|)`` of the exact
  combination of those values, ``eta = (1 + mu)(1 + sqrt2 gamma_2)(1 + u) - 1`` (a complex product, Higham,
  *Accuracy and Stability of Numerical Algorithms*, Lemma 3.5, then a rounded complex sum). By
  induction over the ``L = log2 n`` stages, every exact twiddle having modulus 1, each output is within
  ``eps_P S1`` of the exact DFT, ``eps_P = (1 + eta)^L - 1``; the window product and the inverse's
  division by ``n`` round once each.
* other ``n``, Bluestein's chirp-z transform through radix-2 FFTs of length ``M = 2^ceil(log2(2n - 1))``:
  ``a_j = x_j w_j c_j`` with chirps ``c_j = exp(-+i pi j^2 / n)``, ``b = conj(c)`` mirrored, and
  ``y_k = s c_k (a (*) b)_k`` computed as the inverse FFT of ``FFT(a) FFT(b)``. Each chirp angle is rounded
  four times in the compute type (``pi_T`` included), so ``|c^_j - c_j| <= phi = 13 n u + 3 u``: the error
  grows with ``n`` (measured at n = 400 and 1000: about ``n / 2`` ulps of ``S1`` on random signals, ``10 n``
  on a spike at the end). A circular convolution with unit-modulus chirps turns the chirp errors into at
  most ``3 phi S1``. Each FFT's error vector is
  below ``eps_N sqrt(M) ||input||_2`` in the 2-norm, ``eps_N = (1 + sqrt2 eta)^L - 1`` (stage by stage: a
  stage's error is at most ``2 eta`` times its input's norm and an exact stage has norm ``sqrt 2``, as in
  Higham's Thm 24.2); it enters the result through ``(1/M) F^*(e . F b)``, bounded by Cauchy-Schwarz with
  ``||F b||_2 = sqrt(M (2n - 1))``: ``eps_N sqrt(2n - 1) S2`` for each of the first two FFTs (and
  ``sqrt2 gamma_2 sqrt(2n - 1) S2`` for the rounded spectrum products), ``eps_N sqrt(2n - 1) S1`` for the
  last one (its input is bounded by ``max |FFT(a)| <= S1`` times ``||FFT(b)||_2``). Seven more roundings
  (window, chirp and scale products) add ``10 u S1``; the inverse's scale ``1/n`` is computed in float32
  even for float64 tensors (measured: outputs off by exactly its rounding), ``2^-24 S1`` more. The total,
  ``(3 phi + 10 u + sqrt(2n - 1) eps_N) S1 + sqrt(2n - 1) (2 eps_N + 3 u) S2``, is taken 1.1 times: that
  covers every second-order term while the first-order ones stay below 1/20 (beyond, no finite bound).
* Underflow: a rounded product may also err by half a subnormal (sums of subnormals are exact), which
  adds at most ``8 n`` (radix-2) or ``16 M n`` (Bluestein) subnormals to an output.
* Overflow: intermediate values stay below ``(1 + eps_P)(1 + u) S1`` (radix-2) and
  ``1.1 (2n - 1) M S1`` (Bluestein's unnormalised last FFT); where that passes the compute type's largest
  value the bounds are unbounded (rules declare the ``Overflow`` hazard).
* This module's own float64 evaluation errs by less than ``(2n + 16) 2^-53 S1`` (sums of ``n`` products
  with coefficients within two float64 ulps).

Invariants: bounds are float64 and never NaN (an unbounded sample makes every output of its transform
unbounded, as the runtime's error grows with ``S1``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from onnx import TensorProto
from torch import Tensor

from ranum.domain import arith
from ranum.domain.dtypes import float_facts

__all__ = ["Transform", "coefficients", "spectrum_bounds"]

_SQRT2 = math.sqrt(2.0)
_FLOAT64_UNIT = 2.0**-53
_TWIDDLE_ULPS = 22.0  # mu / u: twiddle error of the radix-2 FFT
_CHIRP_ULPS_PER_SAMPLE = 13.0  # phi / (n u), besides 3 u: chirp error of Bluestein's algorithm
_FIRST_ORDER_LIMIT = 0.05  # beyond, the 1.1 factor no longer covers the second-order terms
_SLACK = 1.0 + 2.0**-40  # float64 rounding of S1 and S2
_DENSE_LIMIT = 1 << 22  # most coefficients (samples x bins) taken as matrices; larger transforms use an FFT


@dataclass(frozen=True)
class Transform:
    """One DFT as onnxruntime runs it: length ``n``, the first ``count`` output bins, the direction, and
    the tensors' element type (float16 is computed in float32)."""

    length: int
    count: int
    inverse: bool
    elem_type: int

    @property
    def scale(self) -> float:
        """The factor of the sum: ``1 / n`` for the inverse transform."""
        return 1.0 / self.length if self.inverse else 1.0


@dataclass(frozen=True)
class _Error:
    """``|computed - exact| <= relative_s1 S1 + relative_s2 S2 + absolute``, unless ``growth S1``
    passes ``largest`` (an intermediate value may overflow)."""

    relative_s1: float
    relative_s2: float
    absolute: float
    growth: float
    largest: float


def _runtime_error(t: Transform) -> _Error:
    """The error terms of onnxruntime's algorithm for ``t`` (module docstring), before the scale."""
    facts = float_facts(TensorProto.DOUBLE if t.elem_type == TensorProto.DOUBLE else TensorProto.FLOAT)
    u, n = facts.eps / 2, t.length
    gamma2 = 2 * u / (1 - 2 * u)
    eta = (1 + _TWIDDLE_ULPS * u) * (1 + _SQRT2 * gamma2) * (1 + u) - 1
    if n & (n - 1) == 0:
        stages = n.bit_length() - 1
        path = (1 + eta) ** stages - 1
        return _Error((1 + u) ** 2 * (1 + path) - 1, 0.0, 8 * n * facts.subnormal, (1 + path) * (1 + u),
                      facts.max)
    size = 1 << (2 * n - 2).bit_length()  # the power of two at or above 2n - 1
    stages = size.bit_length() - 1
    path = (1 + eta) ** stages - 1
    norm = (1 + _SQRT2 * eta) ** stages - 1
    phi = _CHIRP_ULPS_PER_SAMPLE * n * u + 3 * u
    root = math.sqrt(2 * n - 1)
    if 3 * norm + 3 * path + 4 * phi + 20 * u > _FIRST_ORDER_LIMIT:
        return _Error(math.inf, math.inf, math.inf, math.inf, facts.max)
    # the inverse's scale 1/n is computed in float32 whatever the type (1.f / n): in float64, 2^-24 more
    scale_error = 2.0**-24 if t.inverse else 0.0
    return _Error(1.1 * (3 * phi + 10 * u + root * norm + scale_error), 1.1 * root * (2 * norm + 3 * u),
                  16 * size * n * facts.subnormal, 1.1 * (2 * n - 1) * size, facts.max)


def coefficients(length: int, rows: int, count: int) -> tuple[Tensor, Tensor]:
    """``cos`` and ``sin`` of ``2 pi j k / length`` for ``j < rows``, ``k < count`` (float64, ``rows x count``),
    from the angle reduced exactly modulo the period."""
    j = torch.arange(rows, dtype=torch.int64).unsqueeze(1)
    k = torch.arange(count, dtype=torch.int64).unsqueeze(0)
    angle = (j * k % length).to(torch.float64) * (2 * math.pi / length)
    return torch.cos(angle), torch.sin(angle)


def _center_radius(lo: Tensor, hi: Tensor) -> tuple[Tensor, Tensor]:
    """Midpoint and radius; an unbounded element gets (0, +inf)."""
    finite = torch.isfinite(lo) & torch.isfinite(hi)
    mid = torch.where(finite, lo / 2 + hi / 2, torch.zeros_like(lo))
    rad = torch.where(finite, hi / 2 - lo / 2, torch.full_like(lo, math.inf))
    return mid, rad


def _product(values: Tensor, matrix: Tensor) -> Tensor:
    """``values @ matrix`` with ``inf * 0`` read as +inf (radii only: an unbounded radius stays unbounded)."""
    return arith.nan_to(torch.matmul(values, matrix), math.inf)


def spectrum_bounds(real: tuple[Tensor, Tensor], imag: tuple[Tensor, Tensor] | None, t: Transform
                    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Bounds of the DFT ``t`` of samples along the last axis, as onnxruntime computes it.

    Args:
        real: lower and upper bounds of the samples' real parts, ``(..., m)`` with ``m <= t.length``
            (the rest is zero padding), in real arithmetic (a window product is already taken).
        imag: the same for the imaginary parts; None for a real signal.
        t: the transform.

    Returns:
        Lower and upper bounds of the output bins' real parts, then of their imaginary parts, ``(..., count)``.
    """
    m_re, r_re = _center_radius(*real)
    m_im, r_im = _center_radius(*imag) if imag is not None else (torch.zeros_like(m_re), torch.zeros_like(r_re))
    if m_re.shape[-1] * t.count <= _DENSE_LIMIT:
        (mid_re, mid_im), (rad_re, rad_im) = _dense(m_re, m_im, r_re, r_im, t, imag is not None)
    else:
        (mid_re, mid_im), (rad_re, rad_im) = _large(m_re, m_im, r_re, r_im, t)
    magnitude_re, magnitude_im = m_re.abs() + r_re, m_im.abs() + r_im
    s1 = (magnitude_re + magnitude_im).sum(-1, keepdim=True) * _SLACK
    s2 = (magnitude_re * magnitude_re + magnitude_im * magnitude_im).sum(-1, keepdim=True).sqrt() * _SLACK
    slack = _slack(s1, s2, t)
    out = []
    for mid, rad in ((mid_re, rad_re), (mid_im, rad_im)):
        width = rad * t.scale + slack
        center = mid * t.scale
        out += [arith.nan_to(center - width, -math.inf), arith.nan_to(center + width, math.inf)]
    return out[0], out[1], out[2], out[3]


Pair = tuple[Tensor, Tensor]


def _dense(m_re: Tensor, m_im: Tensor, r_re: Tensor, r_im: Tensor, t: Transform, complex_: bool
           ) -> tuple[Pair, Pair]:
    """Midpoints and radii of the real and imaginary outputs through the coefficient matrices."""
    cos, sin = coefficients(t.length, m_re.shape[-1], t.count)
    sign = -1.0 if t.inverse else 1.0  # forward: exp(-i a); inverse: exp(+i a)
    mid_re, mid_im = torch.matmul(m_re, cos), -sign * torch.matmul(m_re, sin)
    cos_abs, sin_abs = cos.abs(), sin.abs()
    rad_re, rad_im = _product(r_re, cos_abs), _product(r_re, sin_abs)
    if complex_:
        mid_re = mid_re + sign * torch.matmul(m_im, sin)
        mid_im = mid_im + torch.matmul(m_im, cos)
        rad_re = rad_re + _product(r_im, sin_abs)
        rad_im = rad_im + _product(r_im, cos_abs)
    return (mid_re, mid_im), (rad_re, rad_im)


def _large(m_re: Tensor, m_im: Tensor, r_re: Tensor, r_im: Tensor, t: Transform) -> tuple[Pair, Pair]:
    """As :func:`_dense` without the matrices (too large): midpoints by a float64 FFT (its error, about
    ``log2(n)`` float64 ulps of ``S1``, is within this module's own allowance) and radii bounded by
    ``sum_j r_re + r_im`` (every coefficient has modulus at most 1)."""
    samples = torch.complex(m_re, m_im)
    if t.inverse:  # sum_j x_j exp(+i a), unscaled
        spectrum = torch.fft.ifft(samples, n=t.length, norm="forward")
    else:
        spectrum = torch.fft.fft(samples, n=t.length)
    spectrum = spectrum.narrow(-1, 0, t.count)
    radius = arith.nan_to(r_re + r_im, math.inf).sum(-1, keepdim=True).expand(spectrum.shape)
    return (spectrum.real, spectrum.imag), (radius, radius)


def _slack(s1: Tensor, s2: Tensor, t: Transform) -> Tensor:
    """Per transform, the float error of onnxruntime's computation plus this module's own (after the
    scale); +inf where an intermediate value may overflow or a sample is unbounded."""
    err = _runtime_error(t)
    own = (2 * t.length + 16) * _FLOAT64_UNIT
    slack = t.scale * ((err.relative_s1 + own) * s1 + err.relative_s2 * s2) + err.absolute
    overflows = s1 * err.growth > err.largest
    return torch.where(overflows, torch.full_like(slack, math.inf), arith.nan_to(slack, math.inf))
