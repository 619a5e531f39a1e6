"""Operator family: linear (rules being written)."""

from __future__ import annotations
