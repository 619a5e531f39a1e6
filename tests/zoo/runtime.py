"""Concrete execution helpers for zoo and whole-graph tests: onnxruntime with every intermediate
tensor exposed, weights substituted, and sampling of inputs and weights inside analysis ranges.

Invariants: the model passed in is never modified (a copy is changed); graph optimisations are
disabled so that each exposed tensor is what the unfused node computes; sampled values lie inside
the ranges the analysis assumed (``Analysis.assumptions``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import helper, numpy_helper

from ranum import Analysis
from ranum.detect import find_hazards
from ranum.domain.dtypes import is_float
from ranum.graph.loader import initializer_value

__all__ = ["SAMPLE_MODES", "Runner", "check_sample", "fill", "sample_feeds", "sampled_tensors", "tensor_types"]

SAMPLE_MODES = ("low", "high", "mix", "mix", "uniform", "uniform")


def tensor_types(model: onnx.ModelProto) -> dict[str, tuple[int, tuple[int, ...]]]:
    """Element type and shape of every graph input and initializer."""
    out: dict[str, tuple[int, tuple[int, ...]]] = {}
    for init in model.graph.initializer:
        out[init.name] = (init.data_type, tuple(init.dims))
    for value in model.graph.input:
        ttype = value.type.tensor_type
        out[value.name] = (ttype.elem_type, tuple(d.dim_value for d in ttype.shape.dim))
    return out


def fill(value: Any, shape: tuple[int, ...], elem_type: int) -> np.ndarray:
    """A scalar or nested list broadcast to ``shape`` with the numpy dtype of ``elem_type``."""
    dtype = helper.tensor_dtype_to_np_dtype(elem_type)
    return np.ascontiguousarray(np.broadcast_to(np.asarray(value, dtype=dtype), shape))


class Runner:
    """One onnxruntime session over a copy of ``model`` exposing every node output.

    Args:
        model: the model (not modified).
        fed: initializers that will be fed with other values (turned into graph inputs).
    """

    def __init__(self, model: onnx.ModelProto, fed: Iterable[str] = ()) -> None:
        work = onnx.ModelProto()
        work.CopyFrom(model)
        graph = work.graph
        fed = set(fed)
        # before IR version 4 every initializer is also a graph input, and onnxruntime lets none be fed;
        # from version 4 an initializer listed as an input is a default that a feed overrides
        work.ir_version = max(work.ir_version, 4)
        declared = {value.name for value in graph.input}
        for init in graph.initializer:
            if init.name in fed and init.name not in declared:
                graph.input.append(helper.make_tensor_value_info(init.name, init.data_type, list(init.dims)))
        existing = {o.name for o in graph.output}
        for node in graph.node:
            for name in node.output:
                if name and name not in existing:
                    graph.output.append(helper.make_empty_tensor_value_info(name))
                    existing.add(name)
        work = onnx.shape_inference.infer_shapes(work)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        options.log_severity_level = 3
        options.intra_op_num_threads = 1
        self.session = ort.InferenceSession(work.SerializeToString(), options, providers=["CPUExecutionProvider"])
        self.names = [o.name for o in self.session.get_outputs()]
        self.constants = {init.name: numpy_helper.to_array(init) for init in model.graph.initializer}

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Every node output, feed and initializer value by tensor name."""
        with np.errstate(all="ignore"):
            values = self.session.run(self.names, dict(feeds))
        return {**self.constants, **feeds, **dict(zip(self.names, values))}


def sampled_tensors(analysis: Analysis) -> list[tuple[str, float, float]]:
    """Inputs and initializers the analysis took as ranges: (name, low, high)."""
    return [(a.tensor, a.low, a.high) for a in analysis.assumptions if a.low is not None and a.high is not None]


def sample_feeds(analysis: Analysis, model: onnx.ModelProto, mode: str, rng: np.random.Generator) -> dict:
    """Concrete values for every ranged input and weight.

    Args:
        analysis: gives the ranges the analysis used.
        model: gives element types and shapes.
        mode: ``low`` / ``high`` (every element at one end), ``mix`` (each element at a random
            end) or ``uniform`` (uniform inside the range).
        rng: random source.
    """
    types = tensor_types(model)
    feeds = {}
    for name, low, high in sampled_tensors(analysis):
        elem_type, shape = types[name]
        dtype = helper.tensor_dtype_to_np_dtype(elem_type)
        if mode == "low":
            raw = np.full(shape, low)
        elif mode == "high":
            raw = np.full(shape, high)
        elif mode == "mix":
            raw = np.where(rng.random(shape) < 0.5, low, high)
        else:
            raw = rng.uniform(low, high, size=shape)
        if not np.issubdtype(dtype, np.floating):
            raw = np.clip(np.round(raw), np.ceil(low), np.floor(high))
        feeds[name] = np.asarray(raw).astype(dtype).reshape(shape)
    return feeds


_INITIALIZER = "initializer:"  # prefix of an initializer among the node names of _upstream's sets


def _upstream(analysis: Analysis) -> dict[str, set[str]]:
    """Tensor -> names of its producing node and every node upstream of it (and of the initializers read)."""
    producer = {out: node for node in analysis.graph.nodes for out in node.outputs if out}
    initializers = set(analysis.graph.initializers)
    memo: dict[str, set[str]] = {}

    def visit(tensor: str) -> set[str]:
        if tensor not in memo:
            node = producer.get(tensor)
            if node is None:
                memo[tensor] = {_INITIALIZER + tensor} if tensor in initializers else set()
            else:
                memo[tensor] = {node.name}.union(*(visit(i) for i in node.inputs if i))
        return memo[tensor]

    return {tensor: visit(tensor) for tensor in producer}


def _infinite_constants(analysis: Analysis, values: Mapping[str, np.ndarray]) -> set[str]:
    """Model constants holding an infinity, e.g. a -inf mask value: Constant nodes, ConstantOfShape nodes (a
    fill of -inf that masked_fill exports to), and initializers (as ``_INITIALIZER + name``)."""
    nodes = {node.name for node in analysis.graph.nodes if node.op_type in ("Constant", "ConstantOfShape")
             and any(np.isinf(values[o]).any() for o in node.outputs if o)}
    graph = analysis.graph
    initializers = {_INITIALIZER + name for name, proto in graph.initializers.items()
                    if is_float(proto.data_type) and np.isinf(np.asarray(initializer_value(graph, name))).any()}
    return nodes | initializers


def check_sample(analysis: Analysis, values: Mapping[str, np.ndarray], label: str) -> None:
    """Every value of one concrete run lies in its interval (NaN excepted); a NaN must be explained by a
    finding on its node or upstream, an infinity likewise unless it flows from an infinite constant."""
    flagged = {f.node for f in find_hazards(analysis.run)}
    upstream = _upstream(analysis)
    inf_sources = _infinite_constants(analysis, values)
    nan_constants = {o for node in analysis.graph.nodes if node.op_type in ("Constant", "ConstantOfShape")
                     for o in node.outputs if o and np.isnan(values[o]).any()}
    for tensor, nodes in upstream.items():
        value = np.asarray(values[tensor])
        lo, hi = analysis.bounds(tensor)
        v = value.astype(np.float64)
        lo, hi = np.broadcast_to(lo, v.shape), np.broadcast_to(hi, v.shape)
        ok = np.isnan(v) | ((v >= lo) & (v <= hi))
        if not ok.all():
            i = np.argwhere(~ok)[0]
            pytest.fail(f"{label}: '{tensor}' value {v[tuple(i)]!r} at {tuple(i)} outside "
                        f"[{lo[tuple(i)]!r}, {hi[tuple(i)]!r}]")
        if np.isnan(v).any() and tensor not in nan_constants:  # a NaN fill is the model's own (masked_fill)
            assert nodes & flagged, f"{label}: NaN in '{tensor}' with no finding on it or upstream"
        elif np.isinf(v).any():
            assert nodes & (flagged | inf_sources), f"{label}: inf in '{tensor}' with no finding on it or upstream"
