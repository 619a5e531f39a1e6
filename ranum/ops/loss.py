"""Operator family: loss (rules being written)."""

from __future__ import annotations
