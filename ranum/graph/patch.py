"""Insert Clip nodes into a model and write it.

Clips are inserted in front of chosen consumers (or all of them) of a tensor. A consumer may read
the tensor from inside an If/Loop/Scan body (the outer scope is visible there): such reads are
rewired too (all of a chosen node's bodies, or the chosen nested nodes), and the Clip goes before the
top-level node holding them; a body that defines the name itself shadows it. A tensor that a body
computes is clipped inside that body, before its first use there. Every node and tensor of the
patched model takes the name the analysis gave it (unnamed nodes receive their stable names; subgraph nodes
and tensors whose names are empty or clash are renamed as :func:`ranum.graph._scopes.unique_scopes` renames
them), so clips find the nodes and tensors a finding names, and findings on the original and on the patched
model name the same nodes. A model of IR version 3 or less lists the clips' bound initializers as graph
inputs, as those versions require of every initializer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ranum.errors import RanumError
from ranum.graph._scopes import unique_scopes
from ranum.graph.loader import stable_node_names

__all__ = ["ClipSpec", "clippable", "clipped_name", "insert_clips"]


@dataclass(frozen=True)
class ClipSpec:
    """Clip ``tensor`` to [min, max] for the consumers named (all consumers when None)."""

    tensor: str
    min: float | None
    max: float | None
    consumers: frozenset[str] | None = None


def clipped_name(tensor: str, index: int) -> str:
    """Name of the output of the ``index``-th Clip that ``insert_clips`` inserts (on ``tensor``)."""
    return f"{tensor}__ranum_clip{index}"


def insert_clips(model: onnx.ModelProto, clips: list[ClipSpec], elem_types: Mapping[str, int]) -> onnx.ModelProto:
    """A copy of ``model`` with one Clip node per ClipSpec, wired into the chosen consumers."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    named = stable_node_names(graph)
    for name, proto in named:
        proto.name = name
    unique_scopes(graph, named)  # the analysis' names for subgraph nodes and tensors
    ordered = [proto for _, proto in named]
    opset = _default_opset(out)
    top_level = {i.name for i in graph.input} | {t.name for t in graph.initializer} | \
        {name for node in ordered for name in node.output}
    for index, clip in enumerate(clips):
        clipped = clipped_name(clip.tensor, index)
        elem_type = elem_types.get(clip.tensor, onnx.TensorProto.FLOAT)
        if not clippable(out, elem_type):
            raise RanumError(f"cannot clip '{clip.tensor}': an opset-{opset} model's Clip takes float16, float and "
                             f"double tensors only (integers from opset {_CLIP_INTEGERS}, bfloat16 from opset "
                             f"{_CLIP_BFLOAT16})")
        if elem_type == onnx.TensorProto.DOUBLE and opset < _CLIP_INTEGERS:
            clip_nodes = _max_min(graph, clip, clipped, elem_type)  # onnxruntime has no float64 Clip before 12
        elif opset < _CLIP_BOUND_INPUTS:
            clip_nodes = [_clip_with_attributes(clip, clipped)]
        else:
            clip_nodes = [_clip_with_inputs(graph, clip, clipped, elem_type)]
        for part, node in enumerate(clip_nodes):
            node.name = f"ranum/clip/{clip.tensor}/{index}" + (f"/{part}" if part else "")
        if clip.tensor in top_level:
            first_use = _rewire(ordered, clip, clipped)
            ordered[first_use:first_use] = clip_nodes
        else:
            _insert_in_body(ordered, clip, clipped, clip_nodes)
    del graph.node[:]
    graph.node.extend(ordered)
    if out.ir_version < _INITIALIZERS_APART:
        _declare_initializers(graph)
    return out


def _declare_initializers(graph: onnx.GraphProto) -> None:
    """List every initializer of ``graph`` that is not a graph input as one (IR version 3 and less require it)."""
    declared = {value.name for value in graph.input}
    for init in graph.initializer:
        if init.name not in declared:
            graph.input.append(helper.make_tensor_value_info(init.name, init.data_type, list(init.dims)))


def _insert_in_body(nodes: list[onnx.NodeProto], clip: ClipSpec, clipped: str, clip_nodes: list[onnx.NodeProto]
                    ) -> None:
    """Insert the clip into the Loop/If/Scan body that defines ``clip.tensor``, before its first use there."""
    body = _defining_body(nodes, clip.tensor)
    if body is None:
        raise RanumError(f"cannot clip '{clip.tensor}': no graph of the model defines it")
    inner = list(body.node)
    first_use = _rewire(inner, clip, clipped)
    inner[first_use:first_use] = clip_nodes
    del body.node[:]
    body.node.extend(inner)


def _defining_body(nodes: list[onnx.NodeProto], name: str) -> onnx.GraphProto | None:
    """The first subgraph (depth first) among ``nodes``' attributes that defines ``name``."""
    for node in nodes:
        for attr in node.attribute:
            for body in [attr.g] if attr.type == onnx.AttributeProto.GRAPH else list(attr.graphs):
                if _defines(body, name):
                    return body
                found = _defining_body(list(body.node), name)
                if found is not None:
                    return found
    return None


_CLIP_BOUND_INPUTS = 11  # Clip takes min and max as inputs from this opset on (attributes before)
_CLIP_INTEGERS = 12  # and integer operands from this one
_CLIP_BFLOAT16 = 13  # and bfloat16 ones from this one
_INITIALIZERS_APART = 4  # from this IR version on, an initializer need not be a graph input
_FLOAT_TYPES = frozenset({onnx.TensorProto.FLOAT16, onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE})


_INTEGER_TYPES = frozenset({onnx.TensorProto.INT8, onnx.TensorProto.INT16, onnx.TensorProto.INT32,
                            onnx.TensorProto.INT64, onnx.TensorProto.UINT8, onnx.TensorProto.UINT16,
                            onnx.TensorProto.UINT32, onnx.TensorProto.UINT64})


def clippable(model: onnx.ModelProto, elem_type: int) -> bool:
    """Whether ``insert_clips`` can clip a tensor of ``elem_type`` in ``model`` (Clip takes floats, integers
    from opset 12 and bfloat16 from opset 13)."""
    opset = _default_opset(model)
    return elem_type in _FLOAT_TYPES or (elem_type in _INTEGER_TYPES and opset >= _CLIP_INTEGERS) or \
        (elem_type == onnx.TensorProto.BFLOAT16 and opset >= _CLIP_BFLOAT16)


def _default_opset(model: onnx.ModelProto) -> int:
    return next((int(o.version) for o in model.opset_import if o.domain in ("", "ai.onnx")), 1)


def _clip_with_inputs(graph: onnx.GraphProto, clip: ClipSpec, clipped: str, elem_type: int) -> onnx.NodeProto:
    """Clip (opset 11 on): the bounds as initializers of the tensor's type, an open side left out."""
    node_inputs = [clip.tensor, *_bounds(graph, clip, clipped, elem_type)]
    while node_inputs and node_inputs[-1] == "":
        node_inputs.pop()
    return helper.make_node("Clip", node_inputs, [clipped])


def _max_min(graph: onnx.GraphProto, clip: ClipSpec, clipped: str, elem_type: int) -> list[onnx.NodeProto]:
    """``Min(Max(x, min), max)`` (an open side left out; neither: Identity), as Clip would compute it."""
    low, high = _bounds(graph, clip, clipped, elem_type)
    steps = [("Max", low), ("Min", high)]
    steps = [(op, bound) for op, bound in steps if bound]
    if not steps:
        return [helper.make_node("Identity", [clip.tensor], [clipped])]
    nodes, current = [], clip.tensor
    for position, (op, bound) in enumerate(steps):
        result = clipped if position == len(steps) - 1 else f"{clipped}_raised"
        nodes.append(helper.make_node(op, [current, bound], [result]))
        current = result
    return nodes


def _bounds(graph: onnx.GraphProto, clip: ClipSpec, clipped: str, elem_type: int) -> list[str]:
    """The names of initializers holding the clip's min and max in the tensor's type ('' for an open side)."""
    names = []
    np_type = helper.tensor_dtype_to_np_dtype(elem_type)
    for side, value in (("min", clip.min), ("max", clip.max)):
        if value is None:
            names.append("")
            continue
        const = f"{clipped}_{side}"
        graph.initializer.append(numpy_helper.from_array(np.array(value, dtype=np_type), const))
        names.append(const)
    return names


def _clip_with_attributes(clip: ClipSpec, clipped: str) -> onnx.NodeProto:
    """Clip before opset 11 (Clip-1 and -6): float32 ``min`` / ``max`` attributes. A bound is rounded to
    float32 inward (a clip meant to keep a tensor above 1e-40 must not admit 0); an open side is left
    out (the attribute's default is the float range)."""
    attributes = {}
    if clip.min is not None:
        attributes["min"] = _float32_toward(clip.min, np.inf)
    if clip.max is not None:
        attributes["max"] = _float32_toward(clip.max, -np.inf)
    return helper.make_node("Clip", [clip.tensor], [clipped], **attributes)


def _float32_toward(value: float, direction: float) -> float:
    """``value`` as a float32, moved one step toward ``direction`` where rounding took it the other way."""
    single = float(np.float32(value))
    away = single < value < direction or direction < value < single
    return float(np.nextafter(np.float32(single), np.float32(direction))) if away else single


def _rewire(nodes: list[onnx.NodeProto], clip: ClipSpec, clipped: str) -> int:
    """Point the chosen consumers at the clipped tensor; returns where the Clip node must go."""
    first = len(nodes)
    for position, node in enumerate(nodes):
        chosen = clip.consumers is None or node.name in clip.consumers
        hit = _renamed(node, clip.tensor, clipped) if chosen else False
        hit = _rewire_bodies(node, clip, clipped, chosen) or hit
        if hit:
            first = min(first, position)
    return first if first < len(nodes) else len(nodes)


def _renamed(node: onnx.NodeProto, tensor: str, clipped: str) -> bool:
    """Replace ``node``'s reads of ``tensor``; whether it had any."""
    hit = False
    for i, name in enumerate(node.input):
        if name == tensor:
            node.input[i] = clipped
            hit = True
    return hit


def _rewire_bodies(node: onnx.NodeProto, clip: ClipSpec, clipped: str, whole: bool) -> bool:
    """Rewire outer-scope reads of the tensor inside ``node``'s subgraphs: every read when ``whole`` (the
    node is a chosen consumer), else those of chosen nested nodes. Whether any was rewired."""
    hit = False
    for attr in node.attribute:
        for body in [attr.g] if attr.type == onnx.AttributeProto.GRAPH else list(attr.graphs):
            if _defines(body, clip.tensor):
                continue
            for inner in body.node:
                chosen = whole or (clip.consumers is not None and inner.name in clip.consumers)
                hit = (_renamed(inner, clip.tensor, clipped) if chosen else False) or hit
                hit = _rewire_bodies(inner, clip, clipped, chosen) or hit
    return hit


def _defines(body: onnx.GraphProto, name: str) -> bool:
    """Whether a subgraph defines ``name`` itself (then its reads are not the outer tensor's)."""
    return (any(i.name == name for i in body.input) or any(t.name == name for t in body.initializer)
            or any(name in n.output for n in body.node))
