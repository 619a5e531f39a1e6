"""Model-local functions are inlined: the analysis reads each call's body, with the call's operands and
attributes, and the bounds hold in onnxruntime, which runs the functions themselves."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper

import ranum
from ranum.confirm import confirm
from ranum.errors import ModelError
from ranum.graph.loader import read_model

LOCAL = "local.fn"


def _scaled_log() -> onnx.FunctionProto:
    """``log(x * alpha + shift)``: ``alpha`` an attribute with a default, ``shift`` an operand, the product
    in a nested function."""
    scale = helper.make_node("Constant", [], ["a"])
    scale.attribute.append(helper.make_attribute_ref("value_float", onnx.AttributeProto.FLOAT, ref_attr_name="alpha"))
    body = [scale,
            helper.make_node("Times", ["x", "a"], ["scaled"], domain=LOCAL),
            helper.make_node("Add", ["scaled", "shift"], ["sum"]),
            helper.make_node("Log", ["sum"], ["y"])]
    return helper.make_function(LOCAL, "ScaledLog", ["x", "shift"], ["y"], body,
                                [helper.make_opsetid("", 17), helper.make_opsetid(LOCAL, 1)],
                                attribute_protos=[helper.make_attribute("alpha", 2.0)])


def _times() -> onnx.FunctionProto:
    return helper.make_function(LOCAL, "Times", ["a", "b"], ["c"], [helper.make_node("Mul", ["a", "b"], ["c"])],
                                [helper.make_opsetid("", 17)])


def _model(calls: list[onnx.NodeProto], outputs: list[str], opset: int = 17) -> onnx.ModelProto:
    graph = helper.make_graph(calls, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3]),
                                           helper.make_tensor_value_info("shift", TensorProto.FLOAT, [2, 3])],
                              [helper.make_tensor_value_info(o, TensorProto.FLOAT, [2, 3]) for o in outputs])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset), helper.make_opsetid(LOCAL, 1)],
                              functions=[_scaled_log(), _times()])
    model.ir_version = 9
    return model


def _two_calls() -> onnx.ModelProto:
    return _model([helper.make_node("ScaledLog", ["x", "shift"], ["y1"], domain=LOCAL, name="first"),
                   helper.make_node("ScaledLog", ["x", "shift"], ["y2"], domain=LOCAL, name="second", alpha=-1.0)],
                  ["y1", "y2"])


def test_each_call_is_analysed_with_its_own_attributes() -> None:
    # x in [1, 2], shift in [0, 1]: 2x + shift > 0 (the default alpha), -x + shift can be <= 0
    report = ranum.check(_two_calls(), {"inputs": {"x": [1, 2], "shift": [0, 1]}})
    assert not report.unsupported_ops and not report.not_analysed_nodes
    assert [(f.node, f.hazard_id) for f in report.findings] == [("second/Log_3", "log-nonpositive")]


def test_inlined_bounds_hold_in_onnxruntime() -> None:
    model = _two_calls()
    analysis = ranum.analyze(model, {"inputs": {"x": [1, 2], "shift": [0, 1]}})
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    for _ in range(10):
        feeds = {name: rng.uniform(lo, hi, size=(2, 3)).astype(np.float32) for name, (lo, hi) in
                 (("x", (1, 2)), ("shift", (0, 1)))}
        y1, y2 = session.run(None, feeds)
        for name, value in (("y1", y1), ("y2", y2)):
            lo, hi = analysis.bounds(name)
            finite = np.isfinite(value)
            assert ((value >= lo) & (value <= hi) | ~finite).all(), name
    inlined = read_model(model)
    assert not inlined.functions
    again = ort.InferenceSession(inlined.SerializeToString(), providers=["CPUExecutionProvider"])
    np.testing.assert_array_equal(again.run(None, feeds)[0], session.run(None, feeds)[0])


def test_a_confirmed_failure_inside_a_function_has_a_unit_test_that_passes(tmp_path) -> None:
    """The unit test exposes the Log's operand by its inlined name: it runs the inlined copy of the model."""
    path = tmp_path / "functions.onnx"
    onnx.save(_two_calls(), path)
    (result,) = confirm(path, {"inputs": {"x": [1, 2], "shift": [0, 1]}}, output=tmp_path / "out").results
    assert result.status == "confirmed" and result.node == "second/Log_3"
    assert not onnx.load(str(tmp_path / "out" / "model.onnx")).functions
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--import-mode=importlib",
                          str(tmp_path / "out")], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0 and "1 passed" in run.stdout, run.stdout + run.stderr


def test_a_call_inside_a_branch_is_inlined() -> None:
    call = helper.make_node("ScaledLog", ["x", "shift"], ["inner"], domain=LOCAL)
    branch = helper.make_graph([call], "then", [], [helper.make_tensor_value_info("inner", TensorProto.FLOAT,
                                                                                  [2, 3])])
    other = helper.make_graph([helper.make_node("Identity", ["x"], ["same"])], "else", [],
                              [helper.make_tensor_value_info("same", TensorProto.FLOAT, [2, 3])])
    nodes = [helper.make_node("ReduceMin", ["x"], ["low"], keepdims=0),
             helper.make_node("Greater", ["low", "zero"], ["positive"]),
             helper.make_node("If", ["positive"], ["y"], then_branch=branch, else_branch=other)]
    model = _model([helper.make_node("Constant", [], ["zero"], value_float=0.0), *nodes], ["y"])
    report = ranum.check(model, {"inputs": {"x": [-1, 1], "shift": [0, 1]}})
    assert not report.unsupported_ops
    assert {f.op_type for f in report.findings} == {"Log"}


def test_a_body_of_another_opset_is_refused() -> None:
    with pytest.raises(ModelError, match="imports opset 17"):
        ranum.check(_model([helper.make_node("ScaledLog", ["x", "shift"], ["y"], domain=LOCAL)], ["y"], opset=18),
                    {"inputs": {"x": [1, 2], "shift": [0, 1]}})


def test_torchscript_modules_exported_as_functions_are_analysed(tmp_path) -> None:
    class Norm(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x / x.sum(-1, keepdim=True)

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.norm = Norm()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.norm(torch.relu(x))

    path = tmp_path / "functions.onnx"
    torch.onnx.export(Net(), (torch.ones(2, 4),), str(path), dynamo=False, opset_version=17,
                      export_modules_as_functions={Norm})
    assert onnx.load(str(path)).functions
    report = ranum.check(path)
    assert not report.unsupported_ops and not report.not_analysed_nodes
    assert {f.op_type for f in report.findings} == {"Div"}
