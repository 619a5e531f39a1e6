"""Configuration records passed explicitly to the analysis (no global settings)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["AnalysisConfig"]


@dataclass(frozen=True)
class AnalysisConfig:
    """Knobs of the abstract interpretation.

    Attributes:
        block_budget: most blocks a non-exact tensor may keep; beyond it blocks are merged soundly.
        loop_unroll: iterations of a Loop evaluated one by one before widening kicks in.
        loop_widen_after: joins after which growing bounds jump to infinity.
    """

    block_budget: int = 1 << 16
    loop_unroll: int = 32
    loop_widen_after: int = 4
