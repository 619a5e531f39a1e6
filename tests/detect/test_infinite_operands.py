"""NaN from infinite operands (``inf - inf``, ``0 * inf``, ``inf / inf``): inputs are finite, so such an
infinity comes from a constant (a ``-inf`` mask) or a Where that selects one, or from a hazard upstream. The first
kind is reported where it meets its partner; the second is the upstream hazard's, and is not reported again."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

import ranum
from ranum.confirm import confirm

_MASK = np.array([0.0, -np.inf], np.float32)


def _model(nodes: list[onnx.NodeProto], inputs: list[str], constants: dict[str, np.ndarray],
           output: str) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes, "infinite_operands", [helper.make_tensor_value_info(name, TensorProto.FLOAT, [2]) for name in inputs],
        [helper.make_tensor_value_info(output, TensorProto.FLOAT, [2])],
        [numpy_helper.from_array(value, name) for name, value in constants.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)


def _ort(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)[0]


def _infinite_findings(model: onnx.ModelProto, spec: dict) -> list[tuple[str, str]]:
    return [(f.op_type, f.operand) for f in ranum.check(model, spec).findings if f.hazard_id == "infinite-operands"]


def test_a_masked_score_less_an_equal_computation_is_nan_where_masked() -> None:
    """``(x + mask) - (x + mask)``, written twice as exporters do: -inf - -inf at the masked element. The
    difference of equal computations is 0 only where they are finite."""
    nodes = [helper.make_node("Add", ["x", "mask"], ["s"]), helper.make_node("Add", ["x", "mask"], ["s2"]),
             helper.make_node("Sub", ["s", "s2"], ["d"])]
    model = _model(nodes, ["x"], {"mask": _MASK}, "d")
    assert np.isnan(_ort(model, {"x": np.zeros(2, np.float32)})[1])
    assert _infinite_findings(model, {"inputs": {"x": [-1, 1]}}) == [("Sub", "s")]


def test_a_score_that_can_be_zero_times_an_infinite_constant_is_reported_and_confirmed(tmp_path) -> None:
    nodes = [helper.make_node("Mul", ["x", "scale"], ["y"])]
    model = _model(nodes, ["x"], {"scale": np.array([1.0, np.inf], np.float32)}, "y")
    spec = {"inputs": {"x": [0, 1]}}
    assert np.isnan(_ort(model, {"x": np.zeros(2, np.float32)})[1])
    assert _infinite_findings(model, spec) == [("Mul", "scale")]
    report = confirm(model, spec, output=tmp_path / "tests")
    assert [r.status for r in report.results] == ["confirmed"]


def test_a_where_that_selects_minus_infinity_is_an_infinite_operand() -> None:
    """``masked_fill(mask, -inf)`` as a Where: its bounds reach -inf without holding it everywhere; less a
    maximum that can be -inf too (a row masked whole) it is NaN."""
    nodes = [helper.make_node("Greater", ["x", "half"], ["c"]),
             helper.make_node("Where", ["c", "minus", "x"], ["m"]),
             helper.make_node("ReduceMax", ["m"], ["top"], keepdims=1),
             helper.make_node("Sub", ["m", "top"], ["d"])]
    model = _model(nodes, ["x"], {"half": np.array(0.5, np.float32), "minus": np.array(-np.inf, np.float32)}, "d")
    assert np.isnan(_ort(model, {"x": np.ones(2, np.float32)})).all()
    assert _infinite_findings(model, {"inputs": {"x": [0, 1]}}) == [("Sub", "m")]


def test_an_infinity_from_a_reported_overflow_is_not_reported_again() -> None:
    """exp(x) overflows for x past 88.7; exp(x) - exp(x) is then inf - inf, which that overflow explains."""
    nodes = [helper.make_node("Exp", ["x"], ["e"]), helper.make_node("Exp", ["x"], ["e2"]),
             helper.make_node("Sub", ["e", "e2"], ["d"])]
    model = _model(nodes, ["x"], {}, "d")
    findings = ranum.check(model, {"inputs": {"x": [0, 100]}}).findings
    assert {f.op_type for f in findings} == {"Exp"}


def test_an_additive_mask_and_a_mask_times_non_zero_scores_are_safe() -> None:
    nodes = [helper.make_node("Add", ["x", "mask"], ["s"]), helper.make_node("Mul", ["s", "x"], ["y"])]
    model = _model(nodes, ["x"], {"mask": _MASK}, "y")
    assert _infinite_findings(model, {"inputs": {"x": [1, 2]}}) == []
    assert _infinite_findings(model, {"inputs": {"x": [-1, 2]}}) == [("Mul", "s")]


def test_masked_values_summed_or_multiplied_are_reported() -> None:
    """``x + mask`` with a -inf entry, then a matrix product (-inf times a 0 of the identity), a Sum with its
    negation (-inf + inf) and a ReduceSum of both: NaN in onnxruntime, a finding at each."""
    mask = np.array([[0.0, -np.inf], [0.0, 0.0]], np.float32)
    nodes = [helper.make_node("Add", ["x", "mask"], ["s"]), helper.make_node("Neg", ["s"], ["n"]),
             helper.make_node("MatMul", ["s", "eye"], ["product"]), helper.make_node("Sum", ["s", "n"], ["total"]),
             helper.make_node("Concat", ["s", "n"], ["both"], axis=0),
             helper.make_node("ReduceSum", ["both"], ["reduced"], keepdims=0)]
    graph = helper.make_graph(
        nodes, "aggregates", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 2])],
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, None) for name in ("product", "total", "reduced")],
        [numpy_helper.from_array(mask, "mask"), numpy_helper.from_array(np.eye(2, dtype=np.float32), "eye")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    assert all(np.isnan(value).any() for value in session.run(None, {"x": np.ones((2, 2), np.float32)}))
    found = {f.op_type for f in ranum.check(model, {"inputs": {"x": [-1, 1]}}).findings
             if f.hazard_id == "infinite-operands"}
    assert found == {"MatMul", "Sum", "ReduceSum"}
