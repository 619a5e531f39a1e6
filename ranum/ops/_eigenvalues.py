"""Certified upper bounds of the largest eigenvalue of symmetric positive semi-definite matrices, and of
the largest singular value of a matrix through its Gram matrix (:func:`largest_singular_value_bound`).

A symmetric eigensolver costs about ``9 n^3`` flops and runs mostly single-threaded; large Gram
matrices (a ResNet's 512 x 4608 convolution kernels) made it the slowest part of a norm cap. Here
the largest eigenvalue is *estimated* by a few Lanczos steps and then *certified* by a Cholesky
factorisation (``n^3 / 3`` flops) of ``mu I - G`` for a ``mu`` a little above the estimate.

Why a successful factorisation certifies ``mu`` (Higham, *Accuracy and Stability of Numerical
Algorithms*, Thm 10.3, which holds for any order of the inner products, blocked ones included):
floating-point Cholesky that runs to completion on a symmetric ``A`` returns ``R`` with
``R^T R = A + E``, ``|E| <= gamma_{n+1} |R^T| |R|``. ``R^T R`` is positive semi-definite, so
``lambda_min(A) >= -||E||_2 >= -gamma_{n+1} ||R||_F^2``, and ``||R||_F^2 = tr(A + E) <= tr(A) +
gamma_{n+1} ||R||_F^2`` gives ``||R||_F^2 <= tr(A) / (1 - gamma_{n+1})``. ``A`` is the rounded
``mu I - G``: its diagonal is within one rounding of the real one. Hence
``lambda_max(G) <= mu + gamma_{n+1} tr(A) / (1 - gamma_{n+1}) + 2 u max A_ii``. The matrix is first
scaled by a power of two so that its largest diagonal entry is in [1, 2): no underflow matters
there, and an absolute ``2**-900`` per entry covers what remains.

Where no ``mu`` up to 10 % above the estimate is certified, or the matrix is small, the symmetric
eigensolver gives the bound as before.
"""

from __future__ import annotations

import math

import torch
from onnx import TensorProto
from torch import Tensor

from ranum.domain import arith

__all__ = ["gram_with_error", "largest_eigenvalue_bound", "largest_singular_value_bound"]

_UNIT = 2.0**-53  # float64 unit roundoff
_LANCZOS_STEPS = 24
_SMALL = 96  # below this order the eigensolver is as cheap as the certificate
_MARGINS = (1e-5, 1e-3, 1e-2, 1e-1)  # relative steps above the estimate, tried in turn


def largest_eigenvalue_bound(gram: Tensor) -> Tensor:
    """Upper bounds of the largest eigenvalue of each symmetric PSD float64 matrix of a batch (..., n, n)."""
    n = gram.shape[-1]
    flat = gram.reshape(-1, n, n)
    bounds = [_one_bound(matrix) if n >= _SMALL else _eigensolver_bound(matrix) for matrix in flat]
    return torch.tensor(bounds, dtype=torch.float64).reshape(gram.shape[:-2])


def _eigensolver_bound(gram: Tensor) -> float:
    """The symmetric eigensolver's largest eigenvalue, or inf where the matrix holds an infinity or NaN or
    the solver does not converge (no bound, rather than a failed rule)."""
    if not bool(torch.isfinite(gram).all()):
        return math.inf
    try:
        return float(torch.linalg.eigvalsh(gram)[-1].clamp(min=0.0))
    except RuntimeError:  # torch.linalg's convergence error derives from it
        return math.inf


def _one_bound(gram: Tensor) -> float:
    """A certified bound for one matrix, or the eigensolver's value where no certificate is found."""
    top = float(gram.diagonal().max())
    if not math.isfinite(top) or top <= 0.0:
        return _eigensolver_bound(gram)
    scale = 2.0 ** -math.frexp(top)[1] * 2  # largest diagonal entry in [1, 2): exact scaling
    scaled = gram * scale
    estimate = _lanczos_estimate(scaled)
    for margin in _MARGINS:
        certified = _certify(scaled, estimate * (1 + margin))
        if certified is not None:
            return certified / scale
    return _eigensolver_bound(gram)


def _lanczos_estimate(matrix: Tensor) -> float:
    """The largest Ritz value of a Lanczos run with full re-orthogonalisation (at most ``lambda_max``
    in exact arithmetic; only an estimate here, certified afterwards)."""
    n = matrix.shape[0]
    steps = min(_LANCZOS_STEPS, n)
    generator = torch.Generator().manual_seed(0)
    vector = torch.rand(n, generator=generator, dtype=torch.float64) + 0.5
    vector = vector / vector.norm()
    basis = torch.zeros(steps, n, dtype=torch.float64)
    diagonal, off_diagonal = [], []
    largest_diagonal = 0.0
    for step in range(steps):
        basis[step] = vector
        product = matrix @ vector
        diagonal.append(float(vector @ product))
        largest_diagonal = max(largest_diagonal, abs(diagonal[-1]))
        kept = basis[: step + 1]
        for _ in range(2):  # twice is enough (Kahan-Parlett)
            product = product - kept.t() @ (kept @ product)
        norm = float(product.norm())
        if step == steps - 1 or norm <= 1e-12 * largest_diagonal:
            break
        off_diagonal.append(norm)
        vector = product / norm
    size = len(diagonal)
    tridiagonal = torch.diag(torch.tensor(diagonal, dtype=torch.float64))
    if size > 1:
        beta = torch.tensor(off_diagonal[: size - 1], dtype=torch.float64)
        tridiagonal = tridiagonal + torch.diag(beta, 1) + torch.diag(beta, -1)
    return max(float(torch.linalg.eigvalsh(tridiagonal)[-1]), 0.0)


def _certify(matrix: Tensor, mu: float) -> float | None:
    """A proven bound ``>= lambda_max(matrix)`` from a Cholesky factorisation of ``mu I - matrix``,
    or None where it does not run to completion."""
    n = matrix.shape[0]
    shifted = -matrix
    shifted.diagonal().add_(mu)
    _, info = torch.linalg.cholesky_ex(shifted)
    if int(info) != 0:
        return None
    diagonal = shifted.diagonal()
    gamma = (n + 1) * _UNIT / (1 - (n + 1) * _UNIT)
    trace = float(diagonal.sum()) * (1 + 2 * n * _UNIT)  # the summation's own rounding, generously
    slack = gamma * trace / (1 - gamma) + 2 * _UNIT * float(diagonal.max()) + n * n * 2.0**-900
    return (mu + slack) * (1 + 4 * _UNIT)


_SINGULAR_SLACK = 1e-6  # relative room left on a singular value bound


def largest_singular_value_bound(matrices: Tensor, squares: Tensor | None = None) -> Tensor:
    """Upper bounds of the largest singular value of each matrix of a batch (..., m, n).

    A bound of the largest eigenvalue of the smaller Gram matrix (see :func:`gram_with_error` and
    :func:`largest_eigenvalue_bound`): its error's spectral norm is at most ``gamma * ||A||_F^2`` (plus an
    underflow term), which moves no eigenvalue further (Weyl). ``squares``: each matrix's
    ``||A||_F^2`` where the caller has it.
    """
    if matrices.numel() == 0:
        return torch.zeros(matrices.shape[:-2], dtype=torch.float64)
    a = matrices if matrices.dtype in (torch.float32, torch.float64) else matrices.to(torch.float64)
    rows = a if a.shape[-2] <= a.shape[-1] else a.transpose(-1, -2)  # (..., m, k) with m <= k
    gram, gamma, absolute = gram_with_error(rows)
    largest = largest_eigenvalue_bound(gram)
    if squares is None:
        squares = a.to(torch.float64).square().sum((-2, -1))
    error = gamma * squares + absolute
    return ((largest + error) * (1 + _SINGULAR_SLACK)).sqrt()


_GRAM_CHUNK = 256  # summed length of one float32 product of a Gram matrix
_FLOAT32_MAX = float(torch.finfo(torch.float32).max)
_FLOAT32_NORMAL = 2.0**-126  # an underflowing float32 product (flushed to zero or not) is off by less
_FLOAT64_NORMAL = 2.0**-1022


def gram_with_error(rows: Tensor) -> tuple[Tensor, float, float]:
    """``rows @ rows^T`` in float64, with ``gamma`` and ``absolute``: its error's spectral norm is at
    most ``gamma ||rows||_F^2 + absolute`` (Weyl then moves no eigenvalue further).

    Float32 values (the weights of a float32 or 16-bit model: float32 ``rows``, or float64 ones that
    float32 holds exactly) take float32 products over chunks of ``_GRAM_CHUNK`` terms, summed in
    float64: each entry is then within ``gamma_256 sum |a_il a_jl|`` (float32) plus the float64 sum's
    rounding of it, and ``sum_ij (sum_l |a_il a_jl|)^2 <= ||rows||_F^4``. Twice as fast as one float64
    product (a ResNet's norm caps were two thirds of its exact-weights run) and, with chunks of 256, as
    tight to a fraction of a percent."""
    single = rows.float()
    length, chunks = rows.shape[-1], -(-rows.shape[-1] // _GRAM_CHUNK)
    if chunks < 1 or not _float32_products_fit(single) or \
            (rows.dtype != torch.float32 and not torch.equal(single.double(), rows)):
        rows = rows.to(torch.float64)
        gram = rows @ rows.transpose(-1, -2)
        # products of values below about 1e-154 underflow: each is off by less than the least normal
        return gram, arith.accumulation_gamma(length, TensorProto.DOUBLE), rows.shape[-2] * length * _FLOAT64_NORMAL
    gram = torch.zeros(rows.shape[:-1] + rows.shape[-2:-1], dtype=torch.float64)
    for start in range(0, length, _GRAM_CHUNK):
        part = single.narrow(-1, start, min(_GRAM_CHUNK, length - start))
        gram.add_(part @ part.transpose(-1, -2))  # a float32 product added in float64, no converted copy
    summed = arith.accumulation_gamma(chunks + 1, TensorProto.DOUBLE)
    gamma = (arith.accumulation_gamma(_GRAM_CHUNK, TensorProto.FLOAT) + summed) * (1 + summed)
    return gram, gamma, rows.shape[-2] * length * _FLOAT32_NORMAL


def _float32_products_fit(single: Tensor) -> bool:
    """Whether every float32 chunk sum of products stays finite: ``_GRAM_CHUNK`` terms of at most the largest
    square (weights past about 1e18 take float64 products)."""
    largest = float(single.abs().max()) if single.numel() else 0.0
    return math.isfinite(largest) and _GRAM_CHUNK * largest * largest < 0.5 * _FLOAT32_MAX
