"""ranum: assure deep neural network architectures against numerical defects.

Public API: :func:`analyze` (bounds of every tensor), :func:`check` (findings), :func:`load_model`.
The names are imported on first use (PEP 562), so that importing the package, as the command line
does before it parses its options, does not import torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "Analysis": "ranum.analysis",
    "analyze": "ranum.analysis",
    "AnalysisConfig": "ranum.config",
    "Finding": "ranum.detect",
    "Report": "ranum.detect",
    "check": "ranum.detect",
    "ModelError": "ranum.errors",
    "RangeSpecError": "ranum.errors",
    "RanumError": "ranum.errors",
    "UnsupportedOperator": "ranum.errors",
    "load_model": "ranum.graph.loader",
}

__all__ = ["Analysis", "AnalysisConfig", "Finding", "ModelError", "RangeSpecError", "RanumError", "Report",
           "UnsupportedOperator", "__version__", "analyze", "check", "load_model"]

if TYPE_CHECKING:
    from ranum.analysis import Analysis, analyze
    from ranum.config import AnalysisConfig
    from ranum.detect import Finding, Report, check
    from ranum.errors import ModelError, RangeSpecError, RanumError, UnsupportedOperator
    from ranum.graph.loader import load_model


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'ranum' has no attribute '{name}'")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups find it directly
    return value
