"""CausalConvWithState (opset 27): the node cases of the onnx wheel, and bounds as tight as the three operators it
fuses (Concat of the past state, depthwise Conv, Slice of the next state) analysed one by one."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from ranum.domain.interval import Interval
from ranum.graph.loader import load_model
from ranum.interpret import run_abstract
from tests.ops.node_runs import node_cases, onnxruntime_outputs
from tests.ops.test_onnx_node_cases import test_concrete_and_abstract_match_onnx_reference as check_node_case

FLOAT = TensorProto.FLOAT
BATCH, CHANNELS, LENGTH, TAPS = 2, 4, 6, 3


@pytest.mark.parametrize(("model", "inputs", "expected"), node_cases({"CausalConvWithState"}))
def test_node_cases_agree_with_the_reference(model: onnx.ModelProto, inputs, expected) -> None:
    check_node_case(model, inputs, expected)


def _model(fused: bool) -> onnx.ModelProto:
    rng = np.random.default_rng(1)
    weight = numpy_helper.from_array(rng.normal(size=(CHANNELS, 1, TAPS)).astype(np.float32), "w")
    bias = numpy_helper.from_array(rng.normal(size=(CHANNELS,)).astype(np.float32), "b")
    if fused:
        nodes = [helper.make_node("CausalConvWithState", ["x", "w", "b", "past"], ["y", "state"])]
        inits = [weight, bias]
    else:
        start = numpy_helper.from_array(np.array([LENGTH], np.int64), "start")
        end = numpy_helper.from_array(np.array([LENGTH + TAPS - 1], np.int64), "end")
        axis = numpy_helper.from_array(np.array([2], np.int64), "axis")
        nodes = [helper.make_node("Concat", ["past", "x"], ["padded"], axis=2),
                 helper.make_node("Conv", ["padded", "w", "b"], ["y"], group=CHANNELS),
                 helper.make_node("Slice", ["padded", "start", "end", "axis"], ["state"])]
        inits = [weight, bias, start, end, axis]
    inputs = [helper.make_tensor_value_info("x", FLOAT, [BATCH, CHANNELS, LENGTH]),
              helper.make_tensor_value_info("past", FLOAT, [BATCH, CHANNELS, TAPS - 1])]
    outputs = [helper.make_tensor_value_info("y", FLOAT, [BATCH, CHANNELS, LENGTH]),
               helper.make_tensor_value_info("state", FLOAT, [BATCH, CHANNELS, TAPS - 1])]
    graph = helper.make_graph(nodes, "causal", inputs, outputs, inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 27)])


def _run(model: onnx.ModelProto, ranges: dict) -> dict[str, Interval]:
    graph, _ = load_model(model)
    initial = {name: Interval.from_full(torch.tensor(lo), torch.tensor(hi), FLOAT) for name, (lo, hi) in ranges.items()}
    for name, proto in graph.initializers.items():
        initial[name] = Interval.point(torch.from_numpy(numpy_helper.to_array(proto).copy()), proto.data_type)
    return run_abstract(graph, initial).env


def test_bounds_equal_the_unfused_operators_and_contain_onnxruntime() -> None:
    rng = np.random.default_rng(0)
    ranges = {}
    for name, length in (("x", LENGTH), ("past", TAPS - 1)):
        ends = np.sort(rng.uniform(-3, 3, size=(2, BATCH, CHANNELS, length)), axis=0).astype(np.float32)
        ranges[name] = (ends[0].astype(np.float64), ends[1].astype(np.float64))
    fused, unfused = _run(_model(True), ranges), _run(_model(False), ranges)
    for name in ("y", "state"):
        for ours, theirs in zip(fused[name].full(), unfused[name].full()):
            assert torch.equal(ours, theirs), name
    model = _model(True)
    for _ in range(8):
        feeds = [(lo + (hi - lo) * rng.random(lo.shape)).astype(np.float32) for lo, hi in ranges.values()]
        for value, name in zip(onnxruntime_outputs(model, feeds), ("y", "state")):
            lower, upper = (t.numpy() for t in fused[name].full())
            assert ((lower <= value) & (value <= upper)).all(), name


def _contrib(attrs: dict) -> onnx.ModelProto:
    node = helper.make_node("CausalConvWithState", ["x", "w"], ["y", "state"], domain="com.microsoft", **attrs)
    graph = helper.make_graph([node], "contrib", [helper.make_tensor_value_info("x", FLOAT, [1, 2, 5]),
                                                  helper.make_tensor_value_info("w", FLOAT, [2, 1, 3])],
                              [helper.make_tensor_value_info("y", FLOAT, None),
                               helper.make_tensor_value_info("state", FLOAT, None)])
    opsets = [helper.make_opsetid("", 21), helper.make_opsetid("com.microsoft", 1)]
    return helper.make_model(graph, opset_imports=opsets)


@pytest.mark.parametrize("attrs", [{"ndim": 2}, {"state_window": 2}, {"state_update_capacity": 1}])
def test_contrib_settings_without_a_rule_are_not_analysed_rather_than_ignored(attrs: dict) -> None:
    import ranum

    report = ranum.check(_contrib(attrs), {"inputs": {"x": [-1, 1], "w": [-1, 1]}})
    assert list(report.unsupported_ops) == ["com.microsoft:CausalConvWithState"], report.unsupported_ops
    assert not ranum.check(_contrib({"dilation": 2}), {"inputs": {"x": [-1, 1], "w": [-1, 1]}}).unsupported_ops
