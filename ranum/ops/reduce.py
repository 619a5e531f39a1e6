"""Operator family: reduce (rules being written)."""

from __future__ import annotations
