"""One name per node and per tensor in the whole model, subgraphs included.

ONNX asks names to be unique within one graph only: two branches of an If may each compute a tensor ``m``, and a
Loop body's nodes may be named as the outer graph's (or be unnamed, which ranum names ``<OpType>_<position>`` in
every graph alike). The analysis keys rules, findings and the producers of tensors by name across the whole model,
so before it runs, every node inside a subgraph whose name is taken (or empty) gets a fresh one, and every tensor a
subgraph defines (its inputs, initializers and node outputs) whose name is defined elsewhere is renamed in that
subgraph (and in the subgraphs nested in it, which may read it). References to outer tensors keep their names.
Invariants: the main graph's names are kept; a renamed model is the same computation.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

import onnx

__all__ = ["unique_scopes"]


def unique_scopes(graph: onnx.GraphProto, named: Sequence[tuple[str, onnx.NodeProto]]) -> None:
    """Rename, in place, the subgraph nodes and tensors of ``graph`` (the main graph) that clash with a name used
    elsewhere in the model. ``named``: the main graph's nodes with the names they have or will be given (a
    subgraph node's new name starts with its owner's)."""
    node_names = {name for name, _ in named}
    tensors = set(_defined(graph))
    taken = _mentioned(graph)  # a fresh name must not be one a subgraph not yet visited defines or reads
    for name, node in named:
        _scope_subgraphs(node, name, node_names, tensors, taken)


def _scope_subgraphs(node: onnx.NodeProto, owner: str, node_names: set[str], tensors: set[str],
                     taken: set[str]) -> None:
    for sub in _subgraphs(node):
        renames = {}
        for name in _defined(sub):
            if name in tensors:
                renames[name] = _fresh(name, taken)
                taken.add(renames[name])
            tensors.add(renames.get(name, name))
        if renames:
            _rename_tensors(sub, renames)
        prefix = f"{owner}/{sub.name or 'body'}"
        for position, inner in enumerate(sub.node):
            if not inner.name or inner.name in node_names:
                inner.name = _unique(f"{prefix}/{inner.name or f'{inner.op_type}_{position}'}", node_names)
            node_names.add(inner.name)
        for inner in sub.node:
            _scope_subgraphs(inner, inner.name, node_names, tensors, taken)


def _subgraphs(node: onnx.NodeProto) -> Iterator[onnx.GraphProto]:
    for attr in node.attribute:
        if attr.type == onnx.AttributeProto.GRAPH:
            yield attr.g
        elif attr.type == onnx.AttributeProto.GRAPHS:
            yield from attr.graphs


def _mentioned(graph: onnx.GraphProto) -> set[str]:
    """Every tensor name ``graph`` and its subgraphs define or read."""
    names = {value.name for value in list(graph.input) + list(graph.output) + list(graph.value_info)}
    names.update(init.name for init in graph.initializer)
    for node in graph.node:
        names.update(node.input)
        names.update(node.output)
        for sub in _subgraphs(node):
            names |= _mentioned(sub)
    return names


def _defined(graph: onnx.GraphProto) -> Iterator[str]:
    """The tensors ``graph`` itself defines: its inputs, initializers and its nodes' outputs."""
    yield from (value.name for value in graph.input)
    yield from (init.name for init in graph.initializer)
    yield from (name for node in graph.node for name in node.output if name)


def _unique(name: str, taken: set[str]) -> str:
    return name if name not in taken else _fresh(name, taken)


def _fresh(name: str, taken: set[str]) -> str:
    count = 1
    while f"{name}~{count}" in taken:
        count += 1
    return f"{name}~{count}"


def _rename_tensors(graph: onnx.GraphProto, renames: Mapping[str, str]) -> None:
    """Every mention of a renamed tensor in ``graph`` and its nested subgraphs (which can only read it: a subgraph
    may not define a name its scope sees)."""
    for value in list(graph.input) + list(graph.output) + list(graph.value_info):
        value.name = renames.get(value.name, value.name)
    for init in graph.initializer:
        init.name = renames.get(init.name, init.name)
    for node in graph.node:
        node.input[:] = [renames.get(name, name) for name in node.input]
        node.output[:] = [renames.get(name, name) for name in node.output]
        for sub in _subgraphs(node):
            _rename_tensors(sub, renames)
