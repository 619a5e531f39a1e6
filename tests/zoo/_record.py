"""The record type of the defect zoo: one small ONNX model with its range spec and expectations.

Invariants: ``flagged`` maps the name of every node that must be reported to the kind of its most
severe defect (``"forward"`` or ``"gradient"``); it is empty for a fixed twin. ``witness`` holds
concrete values (inputs and weights, broadcast to the tensor's shape) inside the spec's ranges
that make every flagged node misbehave; it is empty for a fixed twin. Flagged nodes are named in
the model text, so the expectations do not depend on node order.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import onnx

__all__ = ["FORWARD", "GRADIENT", "HEADER", "ZooModel"]

FORWARD = "forward"
GRADIENT = "gradient"
HEADER = '<ir_version: 8, opset_import: ["" : 17]>\n'


@dataclass(frozen=True)
class ZooModel:
    """One defect pattern (buggy) or its repaired version (fixed twin).

    Attributes:
        id: unique identifier.
        description: the pattern and where it comes from.
        text: the model in ONNX text format (without the header line).
        spec: the range spec for ``ranum.check``.
        flagged: node name -> expected kind; empty for a fixed twin.
        witness: tensor name -> value (scalar or nested list) triggering every flagged node.
        twin_of: for a fixed twin, the id of the buggy model it repairs.
    """

    id: str
    description: str
    text: str
    spec: Mapping[str, Any]
    flagged: Mapping[str, str] = field(default_factory=dict)
    witness: Mapping[str, Any] = field(default_factory=dict)
    twin_of: str | None = None

    @property
    def buggy(self) -> bool:
        """Whether the model holds a defect."""
        return bool(self.flagged)

    def model(self) -> onnx.ModelProto:
        """Parse the text into a fresh ModelProto."""
        return onnx.parser.parse_model(HEADER + self.text)
