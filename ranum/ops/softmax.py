"""Operator family: softmax (rules being written)."""

from __future__ import annotations
