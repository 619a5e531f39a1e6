"""Operator family: conv_pool (rules being written)."""

from __future__ import annotations
