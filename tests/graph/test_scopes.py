"""Names unique per graph only: two branches of an If naming a tensor alike, a subgraph node named as an outer one,
and a model-local function named like an operator onnxruntime runs itself. Each is analysed as onnxruntime runs
it."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

import ranum

FLOAT = TensorProto.FLOAT


def _vi(name: str, elem_type: int = FLOAT, shape: list | None = None) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, elem_type, [4] if shape is None else shape)


def _model(nodes, inputs, outputs, constants=(), functions=()) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(constants))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8,
                             functions=list(functions))


def test_a_divisor_named_as_a_guarded_one_in_the_other_branch_keeps_its_finding() -> None:
    """Both branches call their divisor ``d``; only the then-branch guards it away from 0."""
    guarded = helper.make_graph([helper.make_node("Abs", ["t"], ["magnitude"]),
                                 helper.make_node("Greater", ["magnitude", "eps"], ["far"]),
                                 helper.make_node("Where", ["far", "t", "one"], ["d"]),
                                 helper.make_node("Div", ["x", "d"], ["q_then"])], "then", [], [_vi("q_then")])
    plain = helper.make_graph([helper.make_node("Identity", ["t"], ["d"]),
                               helper.make_node("Div", ["x", "d"], ["q_else"], name="else_div")],
                              "else", [], [_vi("q_else")])
    model = _model([helper.make_node("If", ["c"], ["q"], then_branch=guarded, else_branch=plain)],
                   [_vi("x"), _vi("t"), _vi("c", TensorProto.BOOL, [])], [_vi("q")],
                   [numpy_helper.from_array(np.array(1e-3, np.float32), "eps"),
                    numpy_helper.from_array(np.array(1.0, np.float32), "one")])
    findings = ranum.check(model, {"inputs": {"x": [-1, 1], "t": [-1, 1], "c": [0, 1]}}).findings
    assert [(f.op_type, f.hazard_id) for f in findings if f.node.endswith("else_div")] == \
        [("Div", "division-by-zero")]


def test_a_subgraph_node_named_as_an_outer_node_keeps_its_own_rule() -> None:
    """A Log in a branch and an Identity after the If are both named ``n``: the Log's hazard is still checked."""
    then = helper.make_graph([helper.make_node("Log", ["x"], ["logs"], name="n")], "then", [], [_vi("logs")])
    other = helper.make_graph([helper.make_node("Identity", ["x"], ["same"], name="e")], "else", [], [_vi("same")])
    model = _model([helper.make_node("If", ["c"], ["r"], then_branch=then, else_branch=other, name="if"),
                    helper.make_node("Identity", ["r"], ["y"], name="n")],
                   [_vi("x"), _vi("c", TensorProto.BOOL, [])], [_vi("y")])
    findings = ranum.check(model, {"inputs": {"x": [0, 1], "c": [0, 1]}}).findings
    assert [(f.op_type, f.hazard_id) for f in findings] == [("Log", "log-nonpositive")]


def test_a_local_function_named_like_a_standard_operator_is_the_operator() -> None:
    """onnxruntime runs its Neg kernel for a call of a function ``Neg`` (whose body is Identity here):
    Sqrt(Neg(x)) of a positive x is NaN."""
    body = helper.make_function("", "Neg", ["X"], ["Y"], [helper.make_node("Identity", ["X"], ["Y"])],
                                [helper.make_opsetid("", 17)])
    model = _model([helper.make_node("Neg", ["x"], ["n"]), helper.make_node("Sqrt", ["n"], ["y"])],
                   [_vi("x")], [_vi("y")], functions=[body])
    findings = ranum.check(model, {"inputs": {"x": [0.5, 1]}}).findings
    assert [(f.op_type, f.hazard_id, f.certain) for f in findings] == [("Sqrt", "sqrt-negative", True)]


def test_an_initializer_also_listed_as_an_input_is_taken_with_a_warning() -> None:
    """From IR version 4, onnxruntime lets a feed replace an initializer the graph also lists as an input: the
    analysis takes the initializer's value, and says so."""
    model = _model([helper.make_node("Div", ["x", "k"], ["y"])], [_vi("x"), _vi("k", FLOAT, [])], [_vi("y")],
                   [numpy_helper.from_array(np.array(2.0, np.float32), "k")])
    report = ranum.check(model, {"inputs": {"x": [-1, 1]}})
    assert not report.findings
    assert any("also listed as graph inputs" in warning and "'k'" in warning for warning in report.warnings)


def test_a_renamed_tensor_never_takes_a_name_a_nested_subgraph_defines() -> None:
    """Both branches define ``t``; the second's is renamed, and a subgraph nested in it defines its own tensor
    literally named ``t~1`` and reads the outer ``t`` = x - 1: the read keeps binding to x - 1 (u reaches -2, and
    Log(u + 1.5) of 0 is reported)."""
    def value(name: str) -> onnx.ValueInfoProto:
        return _vi(name, FLOAT, [2])

    first = helper.make_graph([helper.make_node("Add", ["x", "one"], ["t"])], "first", [], [value("t")])
    inner = helper.make_graph([helper.make_node("Add", ["x", "hundred"], ["t~1"]),
                               helper.make_node("Sub", ["t", "zero"], ["p"]),
                               helper.make_node("Add", ["p", "t~1"], ["unused"])], "in_then", [], [value("p")])
    other = helper.make_graph([helper.make_node("Neg", ["t"], ["q"])], "in_else", [], [value("q")])
    second = helper.make_graph([helper.make_node("Sub", ["x", "one"], ["t"]),
                                helper.make_node("If", ["c"], ["r"], then_branch=inner, else_branch=other)],
                               "second", [], [value("r")])
    model = _model([helper.make_node("ReduceSum", ["x"], ["total"], keepdims=0),
                    helper.make_node("GreaterOrEqual", ["total", "zero"], ["c"]),
                    helper.make_node("If", ["c"], ["u"], then_branch=second, else_branch=first),
                    helper.make_node("Sub", ["u", "lim"], ["d"]), helper.make_node("Log", ["d"], ["y"])],
                   [value("x")], [value("y")],
                   [numpy_helper.from_array(np.array(v, np.float32), n)
                    for n, v in (("one", 1), ("hundred", 100), ("zero", 0), ("lim", -1.5))])
    report = ranum.check(model, {"inputs": {"x": [-1, 1]}})
    low, _ = report.analysis.bounds("u")
    assert low.min() <= -1.5
    assert [(f.op_type, f.hazard_id) for f in report.findings] == [("Log", "log-nonpositive")]
