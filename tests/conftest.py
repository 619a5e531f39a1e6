"""Test-wide settings: one torch thread (the tensors here are tiny; thread start-up dominates)."""

from __future__ import annotations

import torch

torch.set_num_threads(1)
