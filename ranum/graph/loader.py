"""Load an ONNX model into a :class:`~ranum.graph.model.Graph`.

Steps: read (path, bytes or ModelProto), read external data only from inside the model's folder,
run the ONNX checker, substitute symbolic dimensions, run shape inference, sort nodes
topologically and give unnamed nodes stable names. Every failure raises :class:`ModelError`.
"""

from __future__ import annotations

import dataclasses
import heapq
import logging
import mmap
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import onnx
from google.protobuf.message import DecodeError
from onnx import external_data_helper, helper, shape_inference

from ranum.errors import ModelError, RangeSpecError
from ranum.graph._export_kinds import export_kinds
from ranum.graph._raw_views import LARGE_ELEMENTS, STRIPPED_TYPES, strip_payloads
from ranum.graph._scopes import unique_scopes
from ranum.graph.functions import inline_local_functions
from ranum.graph.model import Graph, Node, TensorInfo

__all__ = ["initializer_value", "load_model", "ModelSource", "read_model", "stable_node_names", "tensor_value"]

log = logging.getLogger(__name__)

ModelSource = str | os.PathLike | onnx.ModelProto


def load_model(source: ModelSource, dims: Mapping[str, int] | None = None) -> tuple[Graph, dict[str, int]]:
    """Read, check and prepare a model.

    Args:
        source: path to an ``.onnx`` file or an in-memory ``ModelProto``.
        dims: values for symbolic dimensions (unnamed or unlisted ones take 1).

    Returns:
        The prepared graph and the symbolic dimensions that were substituted, with their values.
    """
    model, origin, payloads = _read_with_payloads(source)
    if isinstance(source, onnx.ModelProto):
        model = _copy(model)
    inlined = inline_local_functions(model)
    kinds = export_kinds(model.graph)  # before the model's value info is dropped for inference's
    _sort_nodes(model.graph)
    unique_scopes(model.graph, stable_node_names(model.graph))
    light = _without_large_weights(model)
    hidden = _hide_runtime_onnx_ops(light)
    _check(light)
    used = _fix_symbolic_dims(model, dict(dims or {}))
    _fix_symbolic_dims(light, dict(dims or {}))
    try:
        inferred = shape_inference.infer_shapes(light, strict_mode=False, data_prop=True)
    except Exception as exc:  # noqa: BLE001 - inference errors are many; a model we cannot type is bad input
        raise ModelError(f"shape inference failed: {_first_line(exc)}") from None
    _restore_hidden(inferred.graph, hidden)
    _take_inferred(model.graph, inferred.graph)
    opsets = {imp.domain: imp.version for imp in model.opset_import}
    graph = _convert_graph(model.graph, opsets, proto=model, source=origin)
    if payloads or inlined or kinds:
        graph = dataclasses.replace(graph, raw_values=payloads, inlined_functions=inlined, export_kinds=kinds)
    return graph, used


def _check(model: onnx.ModelProto) -> None:
    """The ONNX checker, blind to graph outputs declared without a type or a shape: it requires both,
    onnxruntime runs such a model (``helper.make_tensor_value_info(name, type, None)`` writes one), and
    shape inference types them."""
    outputs = list(model.graph.output)
    untyped = [o for o in outputs if not _declared_fully(o)]
    if untyped:
        del model.graph.output[:]
        model.graph.output.extend(o for o in outputs if o not in untyped)
    try:
        onnx.checker.check_model(model)
    except (onnx.checker.ValidationError, Exception) as exc:  # checker raises several types
        raise ModelError(f"model fails the ONNX checker: {_first_line(exc)}") from None
    finally:
        if untyped:
            del model.graph.output[:]
            model.graph.output.extend(outputs)


def _declared_fully(value: onnx.ValueInfoProto) -> bool:
    """Whether a value's type is declared as the checker wants it (a tensor: element type and shape)."""
    kind = value.type.WhichOneof("value")
    tensor = value.type.tensor_type
    return kind is not None and (kind != "tensor_type" or (tensor.HasField("shape") and tensor.elem_type != 0))


# Operators that onnxruntime registers in the ONNX domain although the ONNX standard has none of that
# name at the model's opset: its transformer optimizer writes them (LayerNormalization below opset 17,
# SimplifiedLayerNormalization). The checker and shape inference see them in a private domain, the
# analysis as they are (ranum.ops.contrib has their rules).
_RUNTIME_ONNX_DOMAIN_OPS = frozenset({"LayerNormalization", "SimplifiedLayerNormalization"})
# ONNX's experimental operators (removed at opset 10; ranum.ops.experimental has rules for those that
# onnxruntime runs): the checker knows only their names and prints a warning for them on stdout (into a
# JSON report), shape inference knows nothing of them. They are hidden as above, except the element-wise
# ones, which stand as Identity for shape inference: the tensors after them then get types and shapes.
_EXPERIMENTAL_ONNX_OPS = frozenset({"ATen", "Affine", "ConstantFill", "Crop", "DynamicSlice", "GRUUnit",
                                    "GivenTensorFill", "ImageScaler", "ParametricSoftplus", "Scale", "ScaledTanh"})
_SHAPE_KEEPING_OPS = frozenset({"Affine", "ImageScaler", "ParametricSoftplus", "Scale", "ScaledTanh"})
_HIDDEN_DOMAIN = "ranum.hidden-from-checker"


# Where a hidden node stood: per enclosing subgraph, (node index, attribute name, graph index), then its index.
_NodePath = tuple


def _hide_runtime_onnx_ops(light: onnx.ModelProto) -> dict[_NodePath, onnx.NodeProto]:
    """Take ``light``'s onnxruntime-only and experimental ONNX-domain nodes (subgraphs included) out of
    the checker's sight: into a private domain that it does not know, or, for an element-wise
    experimental operator, an Identity node in its place. Returns those nodes as they were, by place."""
    opset = next((imp.version for imp in light.opset_import if imp.domain in ("", "ai.onnx")), 0)
    hidden: dict[_NodePath, onnx.NodeProto] = {}
    _hide_in(light.graph, opset, (), hidden)
    if any(_node_at(light.graph, place).domain == _HIDDEN_DOMAIN for place in hidden):
        light.opset_import.append(helper.make_opsetid(_HIDDEN_DOMAIN, 1))
    return hidden


def _hide_in(graph: onnx.GraphProto, opset: int, place: _NodePath, hidden: dict[_NodePath, onnx.NodeProto]) -> None:
    for index, node in enumerate(graph.node):
        for attr in node.attribute:
            bodies = [attr.g] if attr.type == onnx.AttributeProto.GRAPH else list(attr.graphs)
            for k, body in enumerate(bodies):
                _hide_in(body, opset, place + ((index, attr.name, k),), hidden)
        if node.domain not in ("", "ai.onnx") or node.op_type not in _RUNTIME_ONNX_DOMAIN_OPS | _EXPERIMENTAL_ONNX_OPS \
                or onnx.defs.has(node.op_type, opset, ""):
            continue
        hidden[place + (index,)] = onnx.NodeProto()
        hidden[place + (index,)].CopyFrom(node)
        if node.op_type in _SHAPE_KEEPING_OPS and len(node.input) == 1 and len(node.output) == 1:
            node.CopyFrom(helper.make_node("Identity", list(node.input), list(node.output), node.name))
        else:
            node.domain = _HIDDEN_DOMAIN


def _node_at(graph: onnx.GraphProto, place: _NodePath) -> onnx.NodeProto:
    """The node at ``place`` (see :data:`_NodePath`), a reference into ``graph``."""
    for index, name, k in place[:-1]:
        attr = next(a for a in graph.node[index].attribute if a.name == name)
        graph = attr.g if attr.type == onnx.AttributeProto.GRAPH else attr.graphs[k]
    return graph.node[place[-1]]


def _restore_hidden(graph: onnx.GraphProto, hidden: dict[_NodePath, onnx.NodeProto]) -> None:
    """Put the nodes that :func:`_hide_runtime_onnx_ops` hid back in place (shape inference keeps the
    order of the nodes, in subgraphs too)."""
    for place, node in hidden.items():
        _node_at(graph, place).CopyFrom(node)


# Float initializers with more elements than this are typed graph inputs in the copy the ONNX checker
# and shape inference see: both serialise the whole model (twice), which for a model of hundreds of
# megabytes costs seconds and copies of it, while neither needs the weights' values (shape inference
# reads the values of small integer tensors only, which stay).
_LARGE_WEIGHT_ELEMENTS = LARGE_ELEMENTS
_FLOAT_TYPES = STRIPPED_TYPES


def _without_large_weights(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of ``model`` whose large float initializers are graph inputs of the same type and shape.

    The payloads left out are checked when they are read (:func:`tensor_value`).
    """
    light = onnx.ModelProto()
    for field, value in model.ListFields():
        if field.name != "graph":
            _copy_field(light, field, value)
    for field, value in model.graph.ListFields():
        if field.name != "initializer":
            _copy_field(light.graph, field, value)
    declared = {value.name for value in model.graph.input}
    for init in model.graph.initializer:
        if not _is_large_weight(init):
            light.graph.initializer.append(init)
            continue
        if init.name not in declared:
            light.graph.input.append(helper.make_tensor_value_info(init.name, init.data_type, list(init.dims)))
    return light


def _copy_field(target: onnx.ModelProto | onnx.GraphProto, field, value) -> None:
    if field.is_repeated:
        getattr(target, field.name).extend(value)
    elif field.type == field.TYPE_MESSAGE:
        getattr(target, field.name).CopyFrom(value)
    else:
        setattr(target, field.name, value)


def _is_large_weight(init: onnx.TensorProto) -> bool:
    return init.data_type in _FLOAT_TYPES and int(np.prod(init.dims, dtype=np.int64)) > _LARGE_WEIGHT_ELEMENTS


def _take_inferred(graph: onnx.GraphProto, inferred: onnx.GraphProto) -> None:
    """Move what shape inference added (value info, output types, subgraph types) onto ``graph``."""
    for name in ("value_info", "output", "node"):
        target = getattr(graph, name)
        del target[:]
        target.extend(getattr(inferred, name))


def tensor_value(proto: onnx.TensorProto) -> np.ndarray:
    """Numpy value of an initializer or constant tensor (possibly a read-only view of the proto).

    Raises:
        ModelError: if the stored data does not match the tensor's shape.
    """
    try:
        return onnx.numpy_helper.to_array(proto)
    except (ValueError, TypeError) as exc:
        count = int(np.prod(proto.dims, dtype=np.int64))
        raise ModelError(f"tensor '{proto.name}' does not hold the {count} values its shape "
                         f"{list(proto.dims)} needs ({_first_line(exc)})") from None


def initializer_value(graph: Graph, name: str) -> np.ndarray:
    """Value of one of ``graph``'s initializers: for a large weight the loader left out of the
    parsed model, a read-only view of the model file's bytes; else :func:`tensor_value` of its proto."""
    view = graph.raw_values.get(name)
    return view if view is not None else tensor_value(graph.initializers[name])


def read_model(source: ModelSource) -> onnx.ModelProto:
    """The model as the user gave it (external data read), without checks or rewriting, except that
    model-local functions are inlined as the analysis reads them (its node names are theirs)."""
    model, _ = _read(source)
    model = _copy(model)
    inline_local_functions(model)
    return model


def _copy(model: onnx.ModelProto) -> onnx.ModelProto:
    out = onnx.ModelProto()
    out.CopyFrom(model)
    return out


def stable_node_names(graph: onnx.GraphProto) -> list[tuple[str, onnx.NodeProto]]:
    """(name, node) in the order and with the names the analysis uses for this graph's nodes."""
    tensors = {v.name for v in list(graph.input) + list(graph.value_info) + list(graph.output)}
    nodes = _topological(graph, tensors | {i.name for i in graph.initializer}, None)
    taken = {n.name for n in nodes if n.name}
    out = []
    for position, proto in enumerate(nodes):
        out.append((proto.name or _fresh_name(proto.op_type, position, taken), proto))
    return out


def _fresh_name(op_type: str, position: int, taken: set[str]) -> str:
    name = f"{op_type}_{position}"
    while name in taken:
        name += "_"
    taken.add(name)
    return name


def _read(source: ModelSource) -> tuple[onnx.ModelProto, str | None]:
    model, origin, _ = _read_with_payloads(source, strip=False)
    return model, origin


def _read_with_payloads(source: ModelSource, strip: bool = True
                        ) -> tuple[onnx.ModelProto, str | None, dict[str, np.ndarray]]:
    """The model, its path, and (``strip``) the payloads of large weights left out of the parsed
    model, as views of the file's bytes (see :mod:`ranum.graph._raw_views`)."""
    if isinstance(source, onnx.ModelProto):
        return source, None, {}
    path = Path(source)
    if not path.exists():
        raise ModelError(f"model file not found: {path}")
    if not path.is_file():
        raise ModelError(f"model path is not a file: {path}")
    text_format = onnx.serialization.registry.get_format_from_file_extension(path.suffix) not in (None, "protobuf")
    payloads: dict[str, np.ndarray] = {}
    try:
        if text_format:
            model = onnx.load(str(path), load_external_data=False)
        else:
            data = _mapped(path) if strip else path.read_bytes()
            stripped = strip_payloads(data) if strip else None
            if stripped is not None:
                data, payloads = stripped
            model = onnx.load_model_from_string(bytes(data) if isinstance(data, mmap.mmap) else data)
    except (DecodeError, RuntimeError, ValueError, OSError) as exc:
        raise ModelError(f"not a readable ONNX model: {path} ({_first_line(exc)})") from None
    if not model.graph.node and not model.graph.input and not model.graph.output:
        raise ModelError(f"not an ONNX model (empty graph): {path}")
    _load_external_data(model, path.parent)
    return model, str(path), payloads


def _mapped(path: Path) -> mmap.mmap | bytes:
    """The file's bytes as a read-only private mapping, its pages mapped in one call: reading a model
    of hundreds of megabytes into fresh memory took a page fault per 4 KiB, about 8 times as long.
    The weights' views (see :mod:`ranum.graph._raw_views`) keep the mapping alive; ranum replaces
    files it writes (never rewrites them in place), so a mapped model stays valid. An empty file,
    which cannot be mapped, is read as it is."""
    if not hasattr(mmap, "MAP_PRIVATE"):  # a platform without POSIX mappings
        return path.read_bytes()
    with path.open("rb") as handle:
        try:
            return mmap.mmap(handle.fileno(), 0, flags=mmap.MAP_PRIVATE | getattr(mmap, "MAP_POPULATE", 0),
                             prot=mmap.PROT_READ)
        except ValueError:  # an empty file
            return handle.read()


def _load_external_data(model: onnx.ModelProto, folder: Path) -> None:
    """Read external tensor data, refusing locations that leave the model's folder."""
    base = folder.resolve()
    for tensor in external_data_helper._get_all_tensors(model):
        if not external_data_helper.uses_external_data(tensor):
            continue
        info = external_data_helper.ExternalDataInfo(tensor)
        target = (base / info.location).resolve()
        if os.path.commonpath([str(base), str(target)]) != str(base):
            raise ModelError(
                f"external data of tensor '{tensor.name}' points outside the model folder: {info.location}"
            )
        if not target.is_file():
            raise ModelError(f"external data file of tensor '{tensor.name}' not found: {info.location}")
        try:
            external_data_helper.load_external_data_for_tensor(tensor, str(base))
        except Exception as exc:  # noqa: BLE001
            raise ModelError(f"cannot read external data of tensor '{tensor.name}': {_first_line(exc)}") from None
        tensor.data_location = onnx.TensorProto.DEFAULT
        del tensor.external_data[:]


def _fix_symbolic_dims(model: onnx.ModelProto, dims: dict[str, int]) -> dict[str, int]:
    """Give symbolic dimensions of graph inputs their values (in place, on the loader's own copy).

    Raises:
        RangeSpecError: ``dims`` names a dimension no input has (a typo would otherwise leave it at 1).

    Output shapes with symbolic or unknown dimensions are dropped, so that shape inference derives
    them from the fixed inputs instead of trusting a stale declaration.
    """
    used: dict[str, int] = {}
    initializers = {i.name for i in model.graph.initializer}
    symbolic = {dim.dim_param or "?" for value in model.graph.input if value.name not in initializers
                and _input_tensor_type(value).HasField("shape")
                for dim in _input_tensor_type(value).shape.dim if not dim.HasField("dim_value")}
    declared = {dim.dim_param for value in list(model.graph.output) + list(model.graph.value_info)
                if _has_shape(value) for dim in value.type.tensor_type.shape.dim if dim.dim_param}
    unknown = sorted(set(dims) - symbolic - declared)  # an output's dimension is inferred, but not a typo
    if unknown:
        known = ", ".join(f"'{name}'" for name in sorted(symbolic)) or "none: every input shape is static"
        raise RangeSpecError(f"dims names {', '.join(repr(n) for n in unknown)}, not a symbolic dimension of the "
                             f"model's inputs (those are: {known})")
    for value in model.graph.input:
        if value.name in initializers or not _input_tensor_type(value).HasField("shape"):
            continue
        for dim in _input_tensor_type(value).shape.dim:
            if dim.HasField("dim_value"):
                continue
            key = dim.dim_param or "?"
            size = int(dims.get(key, 1))
            used[key] = size
            dim.Clear()
            dim.dim_value = size
    for value in model.graph.output:
        if _has_shape(value) and any(not d.HasField("dim_value") for d in value.type.tensor_type.shape.dim):
            value.type.tensor_type.ClearField("shape")
    del model.graph.value_info[:]
    return used


def _has_shape(value: onnx.ValueInfoProto) -> bool:
    return value.type.HasField("tensor_type") and value.type.tensor_type.HasField("shape")


def _input_tensor_type(value: onnx.ValueInfoProto) -> onnx.TypeProto.Tensor:
    """The tensor type of a tensor input, or of the tensor an optional tensor input may hold."""
    if value.type.HasField("optional_type") and value.type.optional_type.elem_type.HasField("tensor_type"):
        return value.type.optional_type.elem_type.tensor_type
    return value.type.tensor_type


def _convert_graph(
    graph: onnx.GraphProto,
    opsets: Mapping[str, int],
    proto: onnx.ModelProto | None = None,
    source: str | None = None,
    outer: Mapping[str, TensorInfo] | None = None,
) -> Graph:
    tensors: dict[str, TensorInfo] = dict(outer or {})
    for value in list(graph.input) + list(graph.value_info) + list(graph.output):
        info = _tensor_info(value)
        if info is not None:
            tensors[info.name] = info
    for init in graph.initializer:
        tensors[init.name] = TensorInfo(init.name, init.data_type, tuple(init.dims))
    initializers = {init.name: init for init in graph.initializer}
    nodes = _topological(graph, set(tensors) | set(initializers), outer)
    named = _stable_nodes(nodes, opsets, tensors)
    inputs = tuple(tensors[v.name] for v in graph.input if v.name not in initializers and v.name in tensors)
    outputs = tuple(tensors.get(v.name, TensorInfo(v.name, 0, None)) for v in graph.output)
    return Graph(
        name=graph.name,
        nodes=tuple(named),
        inputs=inputs,
        outputs=outputs,
        initializers=initializers,
        tensors=tensors,
        opsets=dict(opsets),
        proto=proto,
        source=source,
    )


def _tensor_info(value: onnx.ValueInfoProto) -> TensorInfo | None:
    """Facts about a tensor, about the tensors of a sequence of tensors, or about the value of an
    optional tensor or optional sequence of tensors; None for other types (maps, sequences of
    sequences, optionals of those)."""
    vtype, optional = value.type, value.type.WhichOneof("value") == "optional_type"
    if optional:
        vtype = vtype.optional_type.elem_type
    kind = vtype.WhichOneof("value")
    if kind == "sequence_type" and vtype.sequence_type.elem_type.WhichOneof("value") == "tensor_type":
        ttype = vtype.sequence_type.elem_type.tensor_type
        return TensorInfo(value.name, ttype.elem_type, _shape(ttype), sequence=True, optional=optional)
    if kind != "tensor_type":
        return None
    return TensorInfo(value.name, vtype.tensor_type.elem_type, _shape(vtype.tensor_type), optional=optional)


def _shape(ttype: onnx.TypeProto.Tensor) -> tuple[int, ...] | None:
    """A tensor type's shape when every dimension is a number, else None."""
    shape = None
    if ttype.HasField("shape"):
        dims = [d.dim_value if d.HasField("dim_value") else None for d in ttype.shape.dim]
        shape = None if any(d is None for d in dims) else tuple(int(d) for d in dims)
    return shape


def _topological(graph: onnx.GraphProto, available: set[str], outer: Mapping[str, TensorInfo] | None) -> list:
    """Kahn's algorithm, always taking the earliest ready node: a sorted graph keeps its order.

    A cycle is a ModelError. Linear in the graph size (plus a log factor for the heap).
    """
    producers = {out: i for i, node in enumerate(graph.node) for out in node.output if out}
    known = set(available) | set(outer or {})
    waiting = [0] * len(graph.node)
    users: list[list[int]] = [[] for _ in graph.node]
    for i, node in enumerate(graph.node):
        needed = {producers[name] for name in set(node.input) | _captured(node)
                  if name and name in producers and name not in known}
        waiting[i] = len(needed)
        for j in needed:
            users[j].append(i)
    ready = [i for i, count in enumerate(waiting) if count == 0]
    heapq.heapify(ready)
    order: list[int] = []
    while ready:
        i = heapq.heappop(ready)
        order.append(i)
        for j in users[i]:
            waiting[j] -= 1
            if waiting[j] == 0:
                heapq.heappush(ready, j)
    if len(order) < len(graph.node):
        stuck = next(graph.node[i] for i, count in enumerate(waiting) if count > 0)
        raise ModelError(f"graph has a cycle through node '{stuck.name or stuck.op_type}' ({stuck.op_type})")
    return [graph.node[i] for i in order]


def _sort_nodes(graph: onnx.GraphProto) -> None:
    """Put the top-level nodes in a topological order where they are not (onnxruntime sorts them itself, and
    tools write such models: onnxruntime's float16 converter with ``keep_io_types`` appends the input Casts
    last); the ONNX checker rejects them otherwise. A sorted graph is left as it is."""
    available = {i.name for i in graph.input} | {i.name for i in graph.initializer}
    available |= {i.values.name for i in graph.sparse_initializer}
    order = _topological(graph, available, None)
    if all(a is b for a, b in zip(order, graph.node)):
        return
    nodes = [onnx.NodeProto() for _ in order]
    for copy, node in zip(nodes, order):
        copy.CopyFrom(node)
    del graph.node[:]
    graph.node.extend(nodes)


def _captured(node: onnx.NodeProto) -> set[str]:
    """Names a node's subgraphs read from the enclosing scope."""
    names: set[str] = set()
    for attr in node.attribute:
        for sub in ([attr.g] if attr.type == onnx.AttributeProto.GRAPH else list(attr.graphs)):
            defined = {i.name for i in sub.input} | {i.name for i in sub.initializer}
            for inner in sub.node:
                names |= {n for n in inner.input if n and n not in defined}
                names |= _captured(inner)
                defined |= set(inner.output)
    return names


def _stable_nodes(nodes: list, opsets: Mapping[str, int], tensors: dict[str, TensorInfo]) -> list[Node]:
    taken = {n.name for n in nodes if n.name}
    out = []
    for position, proto in enumerate(nodes):
        name = proto.name or _fresh_name(proto.op_type, position, taken)
        attrs = {a.name: _attribute(a, opsets, tensors) for a in proto.attribute}
        out.append(Node(name, proto.op_type, proto.domain, tuple(proto.input), tuple(proto.output), attrs,
                        named_in_model=bool(proto.name)))
    return out


def _attribute(attr: onnx.AttributeProto, opsets: Mapping[str, int], tensors: dict[str, TensorInfo]):
    if attr.type == onnx.AttributeProto.GRAPH:
        return _convert_graph(attr.g, opsets, outer=tensors)
    if attr.type == onnx.AttributeProto.GRAPHS:
        return [_convert_graph(g, opsets, outer=tensors) for g in attr.graphs]
    value = helper.get_attribute_value(attr)
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, list) and value and isinstance(value[0], bytes):
        return [v.decode("utf-8", errors="replace") for v in value]
    return value


def _first_line(exc: BaseException) -> str:
    """The message on one line (the checker wraps the node it names onto further lines), at most 400 characters."""
    text = " ".join(line.strip() for line in str(exc).strip().splitlines() if line.strip())
    if not text:
        return type(exc).__name__
    return text if len(text) <= 400 else text[:399] + "…"
