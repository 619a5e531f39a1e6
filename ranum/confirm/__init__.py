"""Confirmation: failure-exhibiting unit tests for potential defects.

For each finding, search concrete inputs (inside their ranges) and weights (inside their weight
ranges) that make the node's hazard fire, replay the candidate in onnxruntime, and only then call
it confirmed. A finding not confirmed within the budget is reported as such, never as safe.
"""

from __future__ import annotations

from ranum.confirm._confirm import ConfirmReport, ConfirmResult, confirm
from ranum.confirm._search import SearchConfig
from ranum.confirm._system import NO_TRAINABLE_WEIGHTS, SystemConfig

__all__ = ["NO_TRAINABLE_WEIGHTS", "ConfirmReport", "ConfirmResult", "SearchConfig", "SystemConfig", "confirm"]
