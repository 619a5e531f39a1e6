"""ranum: assure deep neural network architectures against numerical defects.

Public API: :func:`analyze` (bounds of every tensor), :func:`check` (findings), :func:`load_model`.
"""

from __future__ import annotations

from ranum.analysis import Analysis, analyze
from ranum.config import AnalysisConfig
from ranum.detect import Finding, Report, check
from ranum.errors import ModelError, RangeSpecError, RanumError, UnsupportedOperator
from ranum.graph.loader import load_model

__version__ = "0.1.0"

__all__ = [
    "Analysis",
    "AnalysisConfig",
    "Finding",
    "ModelError",
    "RangeSpecError",
    "RanumError",
    "Report",
    "UnsupportedOperator",
    "__version__",
    "analyze",
    "check",
    "load_model",
]
