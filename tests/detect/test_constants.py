"""Constants of the model that hold NaN: a certain finding at every node that reads them.

The dynamo exporter folds shape-only computations into initializers: a graph convolution's
``D^-1/2 A D^-1/2`` with an isolated node becomes a constant whose row and column are ``0 * inf = NaN``,
and every run of the model is then NaN. Intervals hold no NaN, so the analysis names such constants."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

import ranum
from ranum.confirm import SearchConfig, confirm
from ranum.ops.hazards import ConstantNaN


def _propagation(constant_node: bool) -> onnx.ModelProto:
    """y = relu(A @ x @ W): A a normalised adjacency whose last node is isolated (NaN where 0 * inf)."""
    adjacency = np.full((4, 4), 0.25, np.float32)
    adjacency[3, :] = adjacency[:, 3] = np.nan
    weight = np.random.default_rng(0).normal(0, 0.5, (3, 2)).astype(np.float32)
    nodes = [helper.make_node("MatMul", ["a", "x"], ["ax"]), helper.make_node("MatMul", ["ax", "w"], ["h"]),
             helper.make_node("Relu", ["h"], ["y"])]
    inits = [numpy_helper.from_array(weight, "w")]
    if constant_node:
        nodes.insert(0, helper.make_node("Constant", [], ["a"], value=numpy_helper.from_array(adjacency, "a")))
    else:
        inits.append(numpy_helper.from_array(adjacency, "a"))
    graph = helper.make_graph(nodes, "gcn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 2])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize("constant_node", [False, True])
@pytest.mark.parametrize("weights", ["exact", "derived"])
def test_a_constant_holding_nan_is_a_certain_finding_at_its_reader(constant_node: bool, weights: str) -> None:
    model = _propagation(constant_node)
    report = ranum.check(model, {"inputs": {"x": [-1.0, 1.0]}, "weights": {"default": weights}})
    found = [(f.node, f.op_type, f.hazard_id, f.operand, f.certain) for f in report.findings]
    reader = next(n.name for n in report.analysis.graph.nodes if n.op_type == "MatMul" and "a" in n.inputs)
    assert found == [(reader, "MatMul", "nan-constant", "a", True)]


def test_the_finding_of_a_nan_constant_is_confirmed_in_onnxruntime() -> None:
    report = confirm(_propagation(False), {"inputs": {"x": [-1.0, 1.0]}}, search_config=SearchConfig(seconds=5))
    assert [(r.op_type, r.status) for r in report.results] == [("MatMul", "confirmed")]


def test_constants_without_nan_are_not_reported() -> None:
    model = _propagation(False)
    adjacency = numpy_helper.to_array(model.graph.initializer[1]).copy()
    adjacency[np.isnan(adjacency)] = 0.0
    model.graph.initializer[1].CopyFrom(numpy_helper.from_array(adjacency, "a"))
    assert not ranum.check(model, {"inputs": {"x": [-1.0, 1.0]}}).findings


def _masked_fill(condition: str) -> onnx.ModelProto:
    """y = Where(condition, NaN, x): a NaN fill (masked_fill(mask, nan)) under a guard built from x."""
    return onnx.parser.parse_model(f"""<ir_version: 8, opset_import: ["" : 17]>
    g (float[4] x) => (float[4] y) <float nan = {{nan}}, float zero = {{0.0}}, bool[4] never = {{0, 0, 0, 0}}> {{
        infinite = IsInf (x)
        missing = IsNaN (x)
        invalid = Or (infinite, missing)
        negative = Less (x, zero)
        y = Where ({condition}, nan, x)
    }}""")


@pytest.mark.parametrize("condition", ["never", "invalid"])
def test_a_nan_branch_that_its_condition_never_selects_is_not_read(condition: str) -> None:
    """A mask that is all False, or that flags infinities and NaNs of a finite input, never picks the NaN."""
    report = ranum.check(_masked_fill(condition), {"inputs": {"x": [-1.0, 1.0]}})
    assert not report.findings


def test_a_nan_branch_selected_somewhere_is_a_finding_that_is_not_certain() -> None:
    report = ranum.check(_masked_fill("negative"), {"inputs": {"x": [-1.0, 1.0]}})
    assert [(f.op_type, f.hazard_id, f.operand, f.certain) for f in report.findings] == \
        [("Where", "nan-constant", "nan", False)]
    everywhere = ranum.check(_masked_fill("negative"), {"inputs": {"x": [-1.0, -0.5]}})
    assert [(f.hazard_id, f.certain) for f in everywhere.findings] == [("nan-constant", True)]


def test_a_nan_branch_is_confirmed_only_where_it_is_selected() -> None:
    report = confirm(_masked_fill("negative"), {"inputs": {"x": [-1.0, 1.0]}}, search_config=SearchConfig(seconds=5))
    assert [(r.op_type, r.status) for r in report.results] == [("Where", "confirmed")]
    hazard = ConstantNaN(operand=1)
    nan, x = torch.tensor(float("nan")), torch.tensor([0.5, -0.5])
    for condition, fires in (([False, False], False), ([False, True], True)):
        mask = torch.tensor(condition)
        assert bool(hazard.triggered([mask, nan, x], [torch.where(mask, nan, x)])) == fires
