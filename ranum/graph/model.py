"""Frozen view of an ONNX graph: nodes in topological order, tensor facts, initializers.

Invariants: ``Graph.nodes`` is topologically sorted; every node has a name, unique in the whole model, and
stable (unnamed ONNX nodes are named ``<OpType>_<position>``, see :func:`stable_node_names`; subgraph nodes and
tensors whose names clash are renamed, see :mod:`ranum.graph._scopes`); shapes in
``TensorInfo`` are concrete (symbolic dimensions were substituted at load time) or None; a
sequence-typed value has a ``TensorInfo`` describing its tensors, with ``sequence`` set; an
optional-typed one describes the tensor or sequence it may hold, with ``optional`` set.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import onnx

__all__ = ["Graph", "Node", "TensorInfo"]


@dataclass(frozen=True)
class TensorInfo:
    """Element type and shape of one tensor (shape None when unknown). For a sequence of tensors
    (``sequence`` True), the element type and shape of its tensors (shape None when unknown or when
    they differ). For an optional (``optional`` True), the same facts about the value it may hold
    (``sequence`` True for an optional sequence)."""

    name: str
    elem_type: int
    shape: tuple[int, ...] | None
    sequence: bool = False
    optional: bool = False


@dataclass(frozen=True)
class Node:
    """One ONNX node. ``attributes`` hold Python values; graph attributes hold :class:`Graph`."""

    name: str
    op_type: str
    domain: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    attributes: Mapping[str, Any]
    named_in_model: bool = True

    def describe(self) -> str:
        """``'name' (OpType)`` for messages."""
        return f"'{self.name}' ({self.op_type})"

    def reads(self) -> tuple[str, ...]:
        """The tensors the node needs: its inputs, then the enclosing-scope tensors its subgraphs
        (If branches, Loop and Scan bodies) read without defining them."""
        captured: list[str] = []
        for sub in self.subgraphs():
            captured += [name for name in sub.captured() if name not in captured]
        return self.inputs + tuple(name for name in captured if name not in self.inputs)

    def subgraphs(self) -> list[Graph]:
        """The graphs among the node's attributes."""
        return [sub for value in self.attributes.values()
                for sub in (value if isinstance(value, list) else [value]) if isinstance(sub, Graph)]


@dataclass(frozen=True)
class Graph:
    """A graph (the main one or a subgraph) ready for interpretation."""

    name: str
    nodes: tuple[Node, ...]
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    initializers: Mapping[str, onnx.TensorProto]
    tensors: Mapping[str, TensorInfo]
    opsets: Mapping[str, int]
    proto: onnx.ModelProto | None = field(default=None, repr=False, compare=False)
    source: str | None = None
    # payloads of large weights that ``proto`` holds without their data: read-only views of the model
    # file's bytes (see graph._raw_views); read initializers with graph.loader.initializer_value
    raw_values: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)
    # whether the model's local functions were inlined (see graph.functions): its node and tensor names are
    # those of the inlined model, which graph.loader.read_model gives
    inlined_functions: bool = False
    # what a PyTorch exporter recorded of each initializer (torch.onnx's dynamo export writes it as value-info
    # metadata): "PARAMETER", "BUFFER" (a module's registered buffer) or "CONSTANT_TENSOR" (a tensor the
    # forward code created); absent for other models and initializers
    export_kinds: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)

    @property
    def opset(self) -> int:
        """Opset version of the default ONNX domain."""
        return self.opsets.get("", self.opsets.get("ai.onnx", 0))

    def info(self, name: str) -> TensorInfo | None:
        """Facts about a tensor, if shape inference or the model declared them."""
        return self.tensors.get(name)

    def captured(self) -> list[str]:
        """Tensors of enclosing scopes that this graph's nodes read (in node order, once each)."""
        defined = {info.name for info in self.inputs} | set(self.initializers)
        out: list[str] = []
        for node in self.nodes:
            out += [name for name in node.reads() if name and name not in defined and name not in out]
            defined.update(node.outputs)
        return out

    def all_nodes(self) -> list[Node]:
        """Nodes of this graph and, recursively, of its subgraphs (If/Loop/Scan bodies)."""
        out: list[Node] = []
        for node in self.nodes:
            out.append(node)
            for value in node.attributes.values():
                for sub in value if isinstance(value, list) else [value]:
                    if isinstance(sub, Graph):
                        out.extend(sub.all_nodes())
        return out
