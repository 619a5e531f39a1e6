"""Operator family: logic (rules being written)."""

from __future__ import annotations
