"""Model-local functions (``ModelProto.functions``) inlined into the graphs that call them.

Exporters write a module as a function (jax2onnx's components, onnxscript's ``@script`` functions, the
TorchScript exporter's ``export_modules_as_functions``): a node whose domain and op_type name a function of
the model stands for that function's body. ranum analyses the body itself: each call is replaced by a copy
of the body whose formal inputs and outputs are the call's operands and results, whose attribute references
take the call's attributes (or the function's defaults), and whose other values and nodes are renamed with
a prefix unique to the call (``<call>/<name>``: the call's name, else its function's). Calls inside a body,
and inside If/Loop/Scan bodies, are inlined in turn. A body that reads an opset version other than the
model's for a domain is refused: its operators would be read with the model's semantics.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import onnx

from ranum.errors import ModelError

__all__ = ["inline_local_functions"]

_FunctionKey = tuple[str, str, str]
# nested calls followed at most this deep (the ONNX spec forbids recursion; a model that has it is refused)
_MAX_DEPTH = 64


def inline_local_functions(model: onnx.ModelProto) -> bool:
    """Inline every call of a model-local function in ``model`` (in place) and drop the functions;
    whether there were any."""
    if not model.functions:
        return False
    opsets = {imp.domain: imp.version for imp in model.opset_import}
    functions = {_key(f.domain, f.name, getattr(f, "overload", "")): f for f in model.functions
                 if not _runtime_kernel(f, opsets)}
    inliner = _Inliner(functions, opsets)
    inliner.graph(model.graph, depth=0)
    for domain, version in inliner.added_opsets.items():
        model.opset_import.append(onnx.helper.make_opsetid(domain, version))
    del model.functions[:]
    return True


def _runtime_kernel(function: onnx.FunctionProto, opsets: Mapping[str, int]) -> bool:
    """Whether onnxruntime runs its own kernel for calls of ``function`` and ignores the body: a function named
    like a standard operator of the model's opset, or in onnxruntime's own contrib domain. Its calls then keep
    the operator's rule (or none: the widest values), never the body's."""
    domain = "" if function.domain == "ai.onnx" else function.domain
    if domain == "com.microsoft":
        return True
    if domain:
        return False
    try:
        onnx.defs.get_schema(function.name, opsets.get("", opsets.get("ai.onnx", 1)), "")
    except onnx.defs.SchemaError:
        return False
    return True


def _key(domain: str, name: str, overload: str) -> _FunctionKey:
    return ("" if domain == "ai.onnx" else domain, name, overload)


class _Inliner:
    """Inlines the calls of one model's functions, naming each call's copy uniquely and collecting the opset
    versions its bodies import."""

    def __init__(self, functions: Mapping[_FunctionKey, onnx.FunctionProto], opsets: Mapping[str, int]) -> None:
        self.functions = functions
        self.function_domains = {domain for domain, _, _ in functions}
        self.opsets = dict(opsets)
        self.added_opsets: dict[str, int] = {}
        self.prefixes: set[str] = set()

    def graph(self, graph: onnx.GraphProto, depth: int) -> None:
        """Replace the calls among ``graph``'s nodes (and its subgraphs') by their bodies, in place."""
        nodes = self.nodes(list(graph.node), depth)
        del graph.node[:]
        graph.node.extend(nodes)

    def nodes(self, nodes: list[onnx.NodeProto], depth: int) -> list[onnx.NodeProto]:
        """``nodes`` with each call expanded (``depth``: calls already entered, against recursion)."""
        out: list[onnx.NodeProto] = []
        for node in nodes:
            function = self.functions.get(_key(node.domain, node.op_type, getattr(node, "overload", "")))
            if function is None:
                for attr in node.attribute:
                    for sub in _subgraphs(attr):
                        self.graph(sub, depth)
                out.append(node)
                continue
            if depth >= _MAX_DEPTH:
                raise ModelError(f"model-local function {function.name} calls itself (or nests deeper than "
                                 f"{_MAX_DEPTH} calls)")
            out.extend(self.nodes(self.body(node, function), depth + 1))
        return out

    def body(self, call: onnx.NodeProto, function: onnx.FunctionProto) -> list[onnx.NodeProto]:
        """The function's nodes for this call: renamed values, attribute references resolved."""
        self._check_opsets(function)
        prefix = self._prefix(call.name or function.name)
        actual = {formal: call.input[i] if i < len(call.input) else "" for i, formal in enumerate(function.input)}
        actual.update({formal: call.output[i] if i < len(call.output) else f"{prefix}{formal}"
                       for i, formal in enumerate(function.output)})

        def rename(name: str) -> str:
            return "" if not name else actual.get(name, prefix + name)

        attributes = _call_attributes(call, function)
        body = []
        for position, proto in enumerate(function.node):
            node = onnx.NodeProto()
            node.CopyFrom(proto)
            node.name = prefix + (proto.name or f"{proto.op_type}_{position}")
            _rename_node(node, rename, attributes)
            body.append(node)
        return body

    def _prefix(self, name: str) -> str:
        """``name/``, or ``name_2/``... where a call of that name was inlined already."""
        prefix, count = f"{name}/", 1
        while prefix in self.prefixes:
            count += 1
            prefix = f"{name}_{count}/"
        self.prefixes.add(prefix)
        return prefix

    def _check_opsets(self, function: onnx.FunctionProto) -> None:
        for imp in function.opset_import:
            domain = "" if imp.domain == "ai.onnx" else imp.domain
            if domain in self.function_domains:
                continue  # a domain of functions: calls into it are inlined, never read as operators
            known = self.opsets.get(domain, self.opsets.get("ai.onnx") if domain == "" else None)
            if known is None:
                self.opsets[domain] = self.added_opsets[domain] = imp.version
            elif known != imp.version:
                raise ModelError(f"model-local function {function.name} imports opset {imp.version} of domain "
                                 f"'{domain or 'ai.onnx'}', the model opset {known}: ranum reads one version "
                                 "per domain")


def _call_attributes(call: onnx.NodeProto, function: onnx.FunctionProto) -> dict[str, onnx.AttributeProto]:
    """The attributes a body's references may take: the call's, else the function's defaults."""
    values = {attr.name: attr for attr in getattr(function, "attribute_proto", ())}
    values.update({attr.name: attr for attr in call.attribute})
    return values


def _rename_node(node: onnx.NodeProto, rename: Callable[[str], str],
                 attributes: Mapping[str, onnx.AttributeProto]) -> None:
    node.input[:] = [rename(name) for name in node.input]
    node.output[:] = [rename(name) for name in node.output]
    kept = []
    for attr in node.attribute:
        if attr.ref_attr_name:
            given = attributes.get(attr.ref_attr_name)
            if given is None:
                continue  # an optional attribute the call leaves out
            resolved = onnx.AttributeProto()
            resolved.CopyFrom(given)
            resolved.name = attr.name
            attr = resolved
        for sub in _subgraphs(attr):
            _rename_graph(sub, rename, attributes)
        kept.append(attr)
    del node.attribute[:]
    node.attribute.extend(kept)


def _rename_graph(graph: onnx.GraphProto, rename: Callable[[str], str],
                  attributes: Mapping[str, onnx.AttributeProto]) -> None:
    """A subgraph of a body node: every value is the function's (or the subgraph's own), renamed alike."""
    for values in (graph.input, graph.output, graph.value_info):
        for value in values:
            value.name = rename(value.name)
    for init in graph.initializer:
        init.name = rename(init.name)
    for node in graph.node:
        _rename_node(node, rename, attributes)


def _subgraphs(attr: onnx.AttributeProto) -> list[onnx.GraphProto]:
    if attr.type == onnx.AttributeProto.GRAPH:
        return [attr.g]
    if attr.type == onnx.AttributeProto.GRAPHS:
        return list(attr.graphs)
    return []
