"""Fixing: clip preconditions that remove every finding, a patched model, and its certification.

Modes: ``inputs`` (clip graph inputs), ``weights`` (clip weights), ``all`` (both) search clip
bounds by gradient descent over the differentiable abstraction; ``operator`` clips each vulnerable
operator's own operand with the tightest bound its hazard declares. The patched model is
re-analysed from the original ranges: only no finding at all, with every node analysed, counts as certified.
"""

from __future__ import annotations

from ranum.fix._fix import FixReport, Precondition, fix
from ranum.fix._optimize import FixConfig

__all__ = ["FixConfig", "FixReport", "Precondition", "fix"]
