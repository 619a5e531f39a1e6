"""Small PyTorch modules with classic numerical defects; each defect line carries a ``# defect:`` marker.

Tests find the expected line by its marker, so the file can be edited freely.
"""

from __future__ import annotations

import torch
from torch import nn


class LogOfSoftmax(nn.Module):
    """Cross-entropy written as log(softmax): softmax underflows to 0 for spread-out logits."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        p = torch.softmax(self.fc(x), dim=-1)
        loss = -(y * torch.log(p)).sum()  # defect: log
        return loss


class SqrtOfVariance(nn.Module):
    """Standard deviation without an epsilon: sqrt's derivative is infinite at variance 0."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        var = ((x - x.mean()) ** 2).mean()
        return torch.sqrt(var)  # defect: sqrt


class _Head(nn.Module):
    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h / torch.linalg.vector_norm(h, dim=-1, keepdim=True)  # defect: norm


class DivideByNorm(nn.Module):
    """Normalisation without an epsilon, inside a submodule: the norm can be 0."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(6, 6)
        self.head = _Head()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.proj(x)))


class Safe(nn.Module):
    """log_softmax and an epsilon: nothing to report."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.log_softmax(x, dim=-1).sum() + torch.sqrt(x * x + 1e-3).sum()


def make_log_of_softmax() -> nn.Module:
    return LogOfSoftmax()


def make_not_a_module() -> int:
    return 3


def defect_line(marker: str) -> int:
    """1-based line of ``# defect: <marker>`` in this file."""
    with open(__file__, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if line.rstrip().endswith(f"# defect: {marker}"):
                return number
    raise LookupError(marker)
