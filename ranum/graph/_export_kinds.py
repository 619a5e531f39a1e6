"""What a PyTorch exporter recorded of each initializer: a module's parameter, buffer or tensor constant.

``torch.onnx.export(dynamo=True)`` writes, as value-info metadata of each initializer it lifts from the
module, the kind of input it was in the exported program (``pkg.torch.export.graph_signature.InputSpec.kind``),
and, as graph metadata, the program's whole signature: every parameter, buffer and tensor constant by its
target (state-dict) name. Its optimizer folds constant subgraphs into new initializers and records on each the
names of the values it was computed from, transitively (``pkg.onnxscript.optimizer.folded_from``): a noise
schedule indexed by a timestep becomes the transposed copy ``val_0``, folded from the buffer ``ac``. Such a
folded initializer is untrained where none of its sources is a parameter of the signature.
"""

from __future__ import annotations

import ast
import re

import onnx

__all__ = ["EXPORT_KIND_KEY", "export_kinds"]

EXPORT_KIND_KEY = "pkg.torch.export.graph_signature.InputSpec.kind"
_SIGNATURE_KEY = "pkg.torch.export.ExportedProgram.graph_signature"
_FOLDED_FROM_KEY = "pkg.onnxscript.optimizer.folded_from"
# one input of the signature: "b_ac: BUFFER target='ac' persistent=True"
_SIGNATURE_INPUT = re.compile(r"^\s*(\S+): (PARAMETER|BUFFER|CONSTANT_TENSOR) target='([^']*)'", re.MULTILINE)


def export_kinds(graph: onnx.GraphProto) -> dict[str, str]:
    """Initializer name -> "PARAMETER", "BUFFER" or "CONSTANT_TENSOR", for the initializers an exporter
    recorded (a folded one: "BUFFER" where a buffer is among its sources and no parameter is, else
    "CONSTANT_TENSOR" where no parameter is)."""
    initializers = {tensor.name for tensor in graph.initializer}
    signature = _signature(graph)
    kinds: dict[str, str] = {}
    folded: dict[str, list[str]] = {}
    for value in list(graph.value_info) + list(graph.input):
        if value.name not in initializers:
            continue
        for prop in value.metadata_props:
            if prop.key == EXPORT_KIND_KEY:
                kinds[value.name] = prop.value
            elif prop.key == _FOLDED_FROM_KEY:
                folded[value.name] = _names(prop.value)
    if signature is not None:  # the program's signature names every parameter (none, for some modules)
        for name, sources in folded.items():
            if name not in kinds and sources:
                source_kinds = {signature.get(source, kinds.get(source)) for source in sources}
                if "PARAMETER" not in source_kinds:
                    kinds[name] = "BUFFER" if "BUFFER" in source_kinds else "CONSTANT_TENSOR"
    return kinds


def _signature(graph: onnx.GraphProto) -> dict[str, str] | None:
    """Placeholder and target names of the exported program's parameters, buffers and tensor constants ->
    their kind (None where the graph has no signature)."""
    text = next((prop.value for prop in graph.metadata_props if prop.key == _SIGNATURE_KEY), None)
    if text is None:
        return None
    kinds = {}
    for placeholder, kind, target in _SIGNATURE_INPUT.findall(text):
        kinds[placeholder] = kinds[target] = kind
    return kinds


def _names(text: str) -> list[str]:
    """The value names of a ``folded_from`` entry (the repr of a sorted list), or none where unreadable."""
    try:
        names = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return []
    return [str(n) for n in names] if isinstance(names, (list, tuple, set)) else []
