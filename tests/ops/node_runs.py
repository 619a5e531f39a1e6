"""Helpers for hand tests: the onnx wheel's node test cases of chosen operators (every opset they ship
with, also those outside test_onnx_node_cases' window), onnxruntime outputs of a model, and the abstract
run of a one-node model on given intervals."""

from __future__ import annotations

import warnings
from collections.abc import Collection, Mapping

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import numpy_helper

from ranum.domain.interval import Interval
from ranum.graph.loader import load_model
from ranum.interpret import AbstractRun, run_abstract
from ranum.ops import REGISTRY

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from onnx.backend.test.case.node import collect_testcases


def node_cases(op_types: Collection[str], types: tuple | None = None) -> list:
    """pytest params (model, inputs, expected outputs) of the single-node cases of ``op_types``.
    ``types``: keep a case only if every input and output is an ``np.ndarray`` whose dtype is one of them."""
    out = []
    for case in collect_testcases():
        nodes = case.model.graph.node
        if len(nodes) == 1 and nodes[0].op_type in op_types and case.data_sets:
            inputs, outputs = case.data_sets[0]
            if types is None or all(isinstance(a, np.ndarray) and a.dtype.type in types for a in [*inputs, *outputs]):
                out.append(pytest.param(case.model, inputs, outputs, id=case.name))
    return out


def onnxruntime_outputs(model: onnx.ModelProto, inputs, registered_opset: bool = False) -> list[np.ndarray]:
    """Outputs of ``model`` in onnxruntime's CPU provider for positional ``inputs``.
    ``registered_opset``: run a one-node model at the opset version its operator's ranum rule is registered
    at (opsets that only add types, such as 22's bfloat16, run in onnxruntime as the earlier version)."""
    if registered_opset:
        model = onnx.ModelProto.FromString(model.SerializeToString())
        op = model.graph.node[0].op_type
        for opset in model.opset_import:
            if opset.domain in ("", "ai.onnx"):
                opset.version = max(since for since, _ in REGISTRY.versions()[("", op)] if since <= opset.version)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [i.name for i in model.graph.input]
    return session.run(None, dict(zip(names, inputs)))


def abstract_run(model: onnx.ModelProto, ranges: Mapping[str, tuple[np.ndarray, np.ndarray]],
                 supported: bool = True) -> AbstractRun:
    """Abstract run with full-shape (lower, upper) arrays for the graph inputs; initializers are exact.
    ``supported``: assert that every node had a rule that applied."""
    graph, _ = load_model(model)
    elem = {info.name: info.elem_type for info in graph.inputs}
    initial = {name: Interval.from_full(torch.from_numpy(np.asarray(lo, dtype=np.float64)),
                                        torch.from_numpy(np.asarray(hi, dtype=np.float64)), elem[name])
               for name, (lo, hi) in ranges.items()}
    for name, proto in graph.initializers.items():
        initial[name] = Interval.point(torch.from_numpy(numpy_helper.to_array(proto).copy()), proto.data_type)
    run = run_abstract(graph, initial)
    assert not supported or not run.unsupported, run.unsupported
    return run


def assert_inside(iv: Interval, values: np.ndarray) -> None:
    """Every value of ``values`` lies inside ``iv`` (shapes equal)."""
    lo, hi = (t.detach().numpy() for t in iv.full())
    v = np.asarray(values, dtype=np.float64)
    assert lo.shape == v.shape, f"shape {lo.shape} vs {v.shape}"
    inside = (v >= lo) & (v <= hi)
    if not inside.all():
        bad = tuple(np.argwhere(~inside)[0])
        raise AssertionError(f"value {v[bad]!r} at {bad} outside [{lo[bad]!r}, {hi[bad]!r}]")
