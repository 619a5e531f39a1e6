"""Front ends: hand a framework model to ranum as ONNX, and map findings back to source lines.

:mod:`ranum.frontend._source` reads node source locations from exporter metadata (pure ONNX);
:mod:`ranum.frontend._torch` exports an ``nn.Module`` with ``torch.onnx.export(dynamo=True)``
(needs the optional ``onnxscript`` package, imported only when an export is asked for).
"""

from __future__ import annotations

from ranum.frontend._source import SourceLocation, node_location, source_locations
from ranum.frontend._torch import (
    ExportedModel,
    InputSpec,
    export_module,
    is_module,
    load_factory,
    parse_input,
)

__all__ = [
    "ExportedModel",
    "InputSpec",
    "SourceLocation",
    "export_module",
    "is_module",
    "load_factory",
    "node_location",
    "parse_input",
    "source_locations",
]
