"""Operator family: indexing (rules being written)."""

from __future__ import annotations
