"""Certified upper bounds of the largest eigenvalue of symmetric positive semi-definite matrices.

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
from torch import Tensor

__all__ = ["largest_eigenvalue_bound"]

_UNIT = 2.0**-53  # float64 unit roundoff
_LANCZOS_STEPS = 24
_SMALL = 96  # below this order the eigensolver is as cheap as the certificate
_MARGINS = (1e-5, 1e-3, 1e-2, 1e-1)  # relative steps above the estimate, tried in turn


def largest_eigenvalue_bound(gram: Tensor) -> Tensor:
    """Upper bounds of the largest eigenvalue of each symmetric PSD float64 matrix of a batch (..., n, n)."""
    n = gram.shape[-1]
    if n < _SMALL:
        return torch.linalg.eigvalsh(gram)[..., -1].clamp(min=0.0)
    flat = gram.reshape(-1, n, n)
    bounds = [_one_bound(matrix) for matrix in flat]
    return torch.tensor(bounds, dtype=torch.float64).reshape(gram.shape[:-2])


def _one_bound(gram: Tensor) -> float:
    """A certified bound for one matrix, or the eigensolver's value where no certificate is found."""
    top = float(gram.diagonal().max())
    if not math.isfinite(top) or top <= 0.0:
        return float(torch.linalg.eigvalsh(gram)[-1].clamp(min=0.0))
    scale = 2.0 ** -math.frexp(top)[1] * 2  # largest diagonal entry in [1, 2): exact scaling
    scaled = gram * scale
    estimate = _lanczos_estimate(scaled)
    for margin in _MARGINS:
        certified = _certify(scaled, estimate * (1 + margin))
        if certified is not None:
            return certified / scale
    return float(torch.linalg.eigvalsh(gram)[-1].clamp(min=0.0))


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
    for step in range(steps):
        basis[step] = vector
        product = matrix @ vector
        diagonal.append(float(vector @ product))
        kept = basis[: step + 1]
        for _ in range(2):  # twice is enough (Kahan-Parlett)
            product = product - kept.t() @ (kept @ product)
        norm = float(product.norm())
        if step == steps - 1 or norm <= 1e-12 * max(abs(d) for d in diagonal):
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
