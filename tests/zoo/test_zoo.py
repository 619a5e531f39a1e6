"""The defect zoo against ranum: each buggy model is flagged at exactly its defective nodes (with
the expected kind), each fixed twin is clean, and each buggy model's defect is real: a concrete
onnxruntime run at a witness inside the ranges produces NaN/Inf at every flagged node (or, for a
gradient defect, an operand where the operator's derivative is infinite).
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch

import ranum
from tests.zoo.models import BUGGY, FIXED, FORWARD, GRADIENT, MODELS, ZooModel, by_id
from tests.zoo.runtime import Runner, fill, tensor_types

# Operators whose defects are gradient-only, as torch functions of their operand, for the witness
# check (the zoo's ReduceL2 nodes reduce their whole operand).
_DERIVATIVE_OPS = {"Sqrt": torch.sqrt, "ReduceL2": lambda x: torch.sqrt((x * x).sum())}


@functools.cache
def _report(model_id: str) -> ranum.Report:
    record = by_id(model_id)
    return ranum.check(record.model(), record.spec)


def _ids(models: list[ZooModel]) -> list[str]:
    return [m.id for m in models]


def test_zoo_inventory() -> None:
    assert len(BUGGY) >= 28
    assert len(FIXED) >= 18
    ids = _ids(MODELS)
    assert len(ids) == len(set(ids)), "duplicate zoo ids"
    buggy_ids = set(_ids(BUGGY))
    for record in FIXED:
        assert record.twin_of in buggy_ids, f"{record.id}: twin_of names no buggy model"
        assert not record.witness
    for record in BUGGY:
        assert record.twin_of is None
        assert set(record.flagged.values()) <= {FORWARD, GRADIENT}


@pytest.mark.parametrize("record", MODELS, ids=_ids(MODELS))
def test_flagged_nodes_exist(record: ZooModel) -> None:
    names = {node.name for node in record.model().graph.node}
    assert set(record.flagged) <= names


@pytest.mark.parametrize("record", MODELS, ids=_ids(MODELS))
def test_zoo_ops_supported(record: ZooModel) -> None:
    report = _report(record.id)
    assert not report.unsupported_nodes, f"unsupported: {dict(report.unsupported_nodes)}"


def _node_kinds(report: ranum.Report) -> dict[str, str]:
    """Node -> most severe kind among its findings (forward beats gradient)."""
    kinds: dict[str, str] = {}
    for finding in report.findings:
        if kinds.get(finding.node) != FORWARD:
            kinds[finding.node] = finding.kind
    return kinds


@pytest.mark.parametrize("record", MODELS, ids=_ids(MODELS))
def test_findings_match_expectation(record: ZooModel) -> None:
    report = _report(record.id)
    kinds = _node_kinds(report)
    detail = [(f.node, f.hazard_id, f.interval) for f in report.findings]
    assert set(kinds) == set(record.flagged), f"findings: {detail}"
    assert kinds == dict(record.flagged), f"findings: {detail}"


def _witness_feeds(record: ZooModel) -> dict[str, np.ndarray]:
    types = tensor_types(record.model())
    return {name: fill(value, types[name][1], types[name][0]) for name, value in record.witness.items()}


def _assert_witness_in_ranges(record: ZooModel, feeds: dict[str, np.ndarray]) -> None:
    analysis = _report(record.id).analysis
    ranges = {a.tensor: (a.low, a.high) for a in analysis.assumptions}
    graph_inputs = {i.name for i in analysis.graph.inputs}
    assert graph_inputs <= set(feeds), f"witness misses inputs {graph_inputs - set(feeds)}"
    for name, value in feeds.items():
        low, high = ranges[name]
        assert low is not None, f"witness sets '{name}', which the analysis takes as exact"
        as_float = value.astype(np.float64)
        assert np.all((as_float >= low) & (as_float <= high)), f"witness '{name}' leaves [{low}, {high}]"


def _derivative_is_infinite(op_type: str, operand: np.ndarray) -> bool:
    fn = _DERIVATIVE_OPS[op_type]
    x = torch.from_numpy(operand.astype(np.float32)).requires_grad_(True)
    (grad,) = torch.autograd.grad(fn(x).sum(), x)
    return not bool(torch.isfinite(grad).all())


@pytest.mark.parametrize("record", BUGGY, ids=_ids(BUGGY))
def test_witness_confirms_defect(record: ZooModel) -> None:
    feeds = _witness_feeds(record)
    _assert_witness_in_ranges(record, feeds)
    model = record.model()
    values = Runner(model, fed=set(feeds) & {i.name for i in model.graph.initializer}).run(feeds)
    nodes = {node.name: node for node in model.graph.node}
    for name, kind in record.flagged.items():
        node = nodes[name]
        inputs = [values[i] for i in node.input if i]
        assert not any(np.isnan(v).any() for v in inputs if v.dtype.kind == "f"), f"{name}: NaN reaches its input"
        if kind == FORWARD:
            out = values[node.output[0]]
            assert not np.isfinite(out).all(), f"{name}: output stays finite at the witness"
        else:
            assert _derivative_is_infinite(node.op_type, inputs[0]), f"{name}: derivative stays finite"
