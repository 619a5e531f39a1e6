"""Operator clips of nodes inside If and Loop bodies that the analysis names itself (unnamed nodes, names taken
elsewhere in the model) or whose tensors it renames (a name two branches both define): the clip must reach the
very node and tensor the finding names."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper

from ranum.fix import FixConfig, fix

CONFIG = FixConfig(seconds=10.0, steps=20)


def _value(name: str, shape: list[int], elem_type: int = TensorProto.FLOAT) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, elem_type, shape)


def _model(nodes: list[onnx.NodeProto], inputs: list[onnx.ValueInfoProto], outputs: list[onnx.ValueInfoProto],
           initializers: list[onnx.TensorProto] = ()) -> onnx.ModelProto:
    model = helper.make_model(helper.make_graph(nodes, "g", inputs, outputs, list(initializers)),
                              opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model


def _run(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def _body_nodes(model: onnx.ModelProto, op_type: str, branch: str) -> list[onnx.NodeProto]:
    owner = next(n for n in model.graph.node if n.op_type == op_type)
    return list(next(a for a in owner.attribute if a.name == branch).g.node)


def _if_logging_an_outer_tensor() -> onnx.ModelProto:
    """y = -x; an If whose then branch takes Log of y in an unnamed node."""
    then = helper.make_graph([helper.make_node("Log", ["y"], ["ly"])], "then", [], [_value("ly", [3])])
    other = helper.make_graph([helper.make_node("Identity", ["y"], ["iy"])], "else", [], [_value("iy", [3])])
    return _model([helper.make_node("Neg", ["x"], ["y"], "neg"),
                   helper.make_node("If", ["c"], ["z"], "if", then_branch=then, else_branch=other)],
                  [_value("x", [3]), _value("c", [], TensorProto.BOOL)], [_value("z", [3])])


def test_a_clip_reaches_an_unnamed_node_of_an_if_branch() -> None:
    report = fix(_if_logging_an_outer_tensor(), {"inputs": {"x": [-1, 1], "c": [0, 1]}}, "operator", CONFIG)
    assert report.certified, [f.to_dict() for f in report.remaining]
    (clip,) = [p for p in report.preconditions if p.node]
    (log,) = _body_nodes(report.patched, "If", "then_branch")
    assert log.name == clip.node and log.input[0] != "y"
    (z,) = _run(report.patched, {"x": np.array([1.0, 0.0, -1.0], np.float32), "c": np.array(True)})
    assert not np.isnan(z).any() and not np.isinf(z).any()


def _if_whose_branches_define_the_same_tensor() -> onnx.ModelProto:
    """Both branches compute their own t = -x (unnamed nodes): Sqrt(t) in one, Log(t) in the other."""
    then = helper.make_graph([helper.make_node("Neg", ["x"], ["t"]), helper.make_node("Sqrt", ["t"], ["st"])],
                             "then", [], [_value("st", [3])])
    other = helper.make_graph([helper.make_node("Neg", ["x"], ["t"]), helper.make_node("Log", ["t"], ["lt"])],
                              "else", [], [_value("lt", [3])])
    return _model([helper.make_node("If", ["c"], ["z"], "if", then_branch=then, else_branch=other)],
                  [_value("x", [3]), _value("c", [], TensorProto.BOOL)], [_value("z", [3])])


def test_two_branches_defining_the_same_tensor_are_clipped_each_in_its_own() -> None:
    """The analysis renames one branch's ``t`` to ``t~1``: the clip of ``t~1`` must find it (it was refused)."""
    report = fix(_if_whose_branches_define_the_same_tensor(), {"inputs": {"x": [-1, 1], "c": [0, 1]}},
                 "operator", CONFIG)
    assert report.certified, [f.to_dict() for f in report.remaining]
    assert len([p for p in report.preconditions if p.node]) == 2
    onnx.checker.check_model(report.patched, full_check=True)
    for branch in ("then_branch", "else_branch"):
        assert "Clip" in [n.op_type for n in _body_nodes(report.patched, "If", branch)], branch
    x = np.array([1.0, 0.0, -1.0], np.float32)
    for condition in (True, False):
        (z,) = _run(report.patched, {"x": x, "c": np.array(condition)})
        assert not np.isnan(z).any() and not np.isinf(z).any(), condition


def test_a_clip_reaches_a_loop_body_node_named_as_a_main_graph_node() -> None:
    """The body's Log is named ``log`` as a main-graph node is: the analysis names it ``loop/body/log``."""
    body = helper.make_graph(
        [helper.make_node("Neg", ["h"], ["m"]), helper.make_node("Log", ["m"], ["lm"], "log"),
         helper.make_node("Identity", ["cond"], ["cond_next"]), helper.make_node("Identity", ["m"], ["h_next"])],
        "body", [_value("i", [], TensorProto.INT64), _value("cond", [], TensorProto.BOOL), _value("h", [3])],
        [_value("cond_next", [], TensorProto.BOOL), _value("h_next", [3]), _value("lm", [3])])
    model = _model([helper.make_node("Identity", ["x"], ["x0"], "log"),
                    helper.make_node("Loop", ["trips", "", "x0"], ["h_final", "logs"], "loop", body=body)],
                   [_value("x", [3])], [_value("h_final", [3]), _value("logs", [2, 3])],
                   [helper.make_tensor("trips", TensorProto.INT64, [], [2])])
    report = fix(model, {"inputs": {"x": [-1, 1]}}, "operator", CONFIG)
    assert report.certified, [f.to_dict() for f in report.remaining]
    log = next(n for n in _body_nodes(report.patched, "Loop", "body") if n.op_type == "Log")
    assert log.input[0] != "m"
    _, logs = _run(report.patched, {"x": np.array([1.0, 0.0, -1.0], np.float32)})
    assert not np.isnan(logs).any() and not np.isinf(logs).any()
