"""Rendering of reports: human-readable text (rich), JSON, SARIF 2.1.0 (:mod:`.sarif`) and HTML (:mod:`.html`)."""

from __future__ import annotations

from ranum.report._text import render_check
from ranum.report.html import render_html
from ranum.report.sarif import render_sarif, to_sarif

__all__ = ["render_check", "render_html", "render_sarif", "to_sarif"]
