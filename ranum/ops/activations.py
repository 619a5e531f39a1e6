"""Operator family: activations (rules being written)."""

from __future__ import annotations
