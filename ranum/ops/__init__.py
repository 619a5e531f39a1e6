"""Operator semantics: one rule class per ONNX operator, grouped by family.

Importing this package registers every rule in :data:`REGISTRY` (explicit imports below, no
scanning).
"""

from __future__ import annotations

from ranum.ops import arithmetic, exp_log  # noqa: F401  (registration)
from ranum.ops.registry import REGISTRY, Registry, register

__all__ = ["REGISTRY", "Registry", "register"]
