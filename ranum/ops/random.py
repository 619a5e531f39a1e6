"""Operator family: random (rules being written)."""

from __future__ import annotations
