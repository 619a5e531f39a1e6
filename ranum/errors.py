"""Typed exceptions raised by the ranum library.

Only the CLI turns these into messages and exit codes; the library never prints.
Every message names what was wrong and, where there is one, the node and operator.
"""

from __future__ import annotations

__all__ = [
    "RanumError",
    "ModelError",
    "RangeSpecError",
    "UnsupportedOperator",
    "RunTimeOperand",
    "AnalysisError",
]


class RanumError(Exception):
    """Base class of every error ranum raises on purpose."""


class ModelError(RanumError):
    """The model cannot be read, fails the ONNX checker, or is structurally invalid."""


class RangeSpecError(RanumError):
    """A range specification is malformed or names a tensor the model does not have."""


class UnsupportedOperator(RanumError):
    """An operator (or an attribute value of it) has no rule; callers fall back soundly."""


class InconsistentShapes(UnsupportedOperator):
    """A node's operands have shapes its operator cannot take (operands that do not broadcast, a squeezed axis
    that is not of size 1): the model is inconsistent there, and onnxruntime refuses to load it."""


class RunTimeOperand(UnsupportedOperator):
    """An operand that decides a node's output shape or layout (a shape, axes, split sizes, repeats) is known
    only at run time: a range, not a constant, and shape inference gives no output shape."""


class AnalysisError(RanumError):
    """The analysis met a situation it cannot handle soundly (names node and operator)."""
