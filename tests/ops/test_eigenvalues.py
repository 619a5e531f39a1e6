"""Certified largest-eigenvalue bounds: never below the eigensolver's value, close above it."""

from __future__ import annotations

import pytest
import torch

from ranum.ops._eigenvalues import largest_eigenvalue_bound, largest_singular_value_bound


def _gram(rows: int, cols: int, scale: float, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    a = torch.randn(rows, cols, generator=generator, dtype=torch.float64) * scale
    return a @ a.t()


@pytest.mark.parametrize(
    ("rows", "cols", "scale"),
    [(512, 2048, 0.02), (256, 1152, 1.0), (200, 200, 1e-150), (128, 3, 1e100), (300, 40, 1.0), (40, 400, 3.0)],
)
def test_bound_is_above_the_largest_eigenvalue_and_tight(rows: int, cols: int, scale: float) -> None:
    for seed in range(3):
        gram = _gram(rows, cols, scale, seed)
        exact = float(torch.linalg.eigvalsh(gram)[-1])
        bound = float(largest_eigenvalue_bound(gram))
        assert exact <= bound <= exact * 1.11


@pytest.mark.parametrize("value", [0.0, 3.0])
def test_multiples_of_identity_and_batches(value: float) -> None:
    gram = torch.eye(150, dtype=torch.float64) * value
    batch = torch.stack([gram, _gram(150, 60, 1.0, 0)])
    bounds = largest_eigenvalue_bound(batch)
    assert bounds.shape == (2,)
    assert value <= float(bounds[0]) <= value * 1.11
    assert float(bounds[1]) >= float(torch.linalg.eigvalsh(batch[1])[-1])


def test_rank_one_matrix() -> None:
    ones = torch.ones(200, 200, dtype=torch.float64)
    assert 200.0 <= float(largest_eigenvalue_bound(ones)) <= 200.0 * 1.11


@pytest.mark.parametrize("magnitude", [1e17, 1e19, 3e35])
def test_singular_value_bounds_of_weights_whose_float32_squares_overflow(magnitude: float) -> None:
    """A Gram matrix takes float32 products of float32 weights; past about 1e18 their sums overflow, and the
    eigensolver failed to converge on the infinite entries (a Conv of weights 3e35 was left unanalysed)."""
    generator = torch.Generator().manual_seed(1)
    weights = (torch.randn(8, 40, generator=generator) * magnitude).float()
    bound = float(largest_singular_value_bound(weights.unsqueeze(0))[0])
    exact = float(torch.linalg.matrix_norm(weights.double(), ord=2))
    assert exact <= bound <= exact * 1.001


def test_an_infinite_entry_gives_no_bound_rather_than_an_error() -> None:
    gram = torch.eye(4, dtype=torch.float64)
    gram[0, 1] = gram[1, 0] = torch.inf
    assert float(largest_eigenvalue_bound(gram.unsqueeze(0))[0]) == float("inf")
