"""Operator family: normalization (rules being written)."""

from __future__ import annotations
