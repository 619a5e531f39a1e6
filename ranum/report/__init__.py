"""Rendering of reports: human-readable text (rich) and JSON."""

from __future__ import annotations

from ranum.report._text import render_check

__all__ = ["render_check"]
