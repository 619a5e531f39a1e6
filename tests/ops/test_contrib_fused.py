"""onnxruntime's fused products (ranum.ops.contrib_fused) in the graphs its session optimizer saves, and
an overflow inside a fused node that its activation hides (soundness of single nodes is in
test_soundness.py, cases in cases_contrib.py)."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

import ranum
from ranum.domain.interval import Interval
from ranum.graph.loader import load_model
from ranum.interpret import run_abstract
from ranum.ops.contrib_fused import ProductOverflow

MS = "com.microsoft"


class _Perceptron(torch.nn.Module):
    """Linear layers, each followed by one of the activations onnxruntime fuses into FusedGemm."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = torch.nn.ModuleList(torch.nn.Linear(8, 8) for _ in range(6))
        self.acts = [torch.relu, torch.sigmoid, torch.tanh, torch.nn.functional.leaky_relu, torch.nn.functional.elu,
                     torch.nn.functional.softplus]
        self.head = torch.nn.Linear(8, 3)

    def forward(self, x):
        for layer, act in zip(self.layers, self.acts):
            x = act(layer(x))
        return torch.log(torch.softmax(self.head(x), -1))


def _saved_by_session(tmp_path, model: torch.nn.Module, example: torch.Tensor) -> tuple:
    plain = tmp_path / "plain.onnx"
    torch.onnx.export(model.eval(), (example,), str(plain), dynamo=False, opset_version=17, input_names=["x"],
                      dynamic_axes=None)
    saved = tmp_path / "saved.onnx"
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    options.optimized_model_filepath = str(saved)
    ort.InferenceSession(str(plain), options, providers=["CPUExecutionProvider"])
    return plain, saved


def test_session_saved_perceptron_keeps_its_findings(tmp_path):
    """Every Gemm + activation becomes a FusedGemm; the analysis gives the unfused graph's findings and
    bounds, in both weight modes, and the bounds contain onnxruntime's outputs."""
    torch.manual_seed(0)
    plain, saved = _saved_by_session(tmp_path, _Perceptron(), torch.randn(1, 8))
    fused = [n for n in onnx.load(str(saved)).graph.node if n.op_type == "FusedGemm"]
    assert {n.attribute[0].s.decode() for n in fused if n.attribute[0].name == "activation"} >= {
        "Relu", "Sigmoid", "Tanh", "LeakyRelu", "Elu", "Softplus"}
    session = ort.InferenceSession(str(saved), providers=["CPUExecutionProvider"])
    output = session.get_outputs()[0].name
    x = np.random.default_rng(0).uniform(-4, 4, (64, 8)).astype(np.float32)
    y = np.concatenate([session.run(None, {"x": row[None]})[0] for row in x])
    found = {}
    for weights in ("exact", "derived"):
        spec = {"inputs": {"x": [-4, 4]}, "weights": {"default": weights}}
        before, after = ranum.check(plain, spec), ranum.check(saved, spec)
        assert after.unsupported_ops == () and not after.not_analysed_nodes
        found[weights] = [f.op_type for f in after.findings]
        assert found[weights] == [f.op_type for f in before.findings]
        (lo, hi), (plain_lo, plain_hi) = after.analysis.bounds(output), before.analysis.bounds(output)
        np.testing.assert_allclose(lo, plain_lo, rtol=1e-6)
        np.testing.assert_allclose(hi, plain_hi, rtol=1e-6)
        if weights == "exact":
            assert (y >= lo[:1]).all() and (y <= hi[:1]).all()
    assert found == {"exact": [], "derived": ["Log"]}


def _one_node(op_type: str, attrs: dict, x_shape, w: np.ndarray, bias: np.ndarray) -> onnx.ModelProto:
    out_shape = [x_shape[0], w.shape[1]] if op_type == "FusedGemm" else [1, w.shape[0], x_shape[2], x_shape[3]]
    node = helper.make_node(op_type, ["x", "w", "b"], ["y"], domain=MS, **attrs)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x_shape))],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)],
                              [numpy_helper.from_array(w, "w"), numpy_helper.from_array(bias, "b")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(MS, 1)])


@pytest.mark.parametrize("op_type, activation", [("FusedGemm", "Relu"), ("FusedGemm", "Sigmoid"),
                                                 ("FusedConv", "Relu"), ("FusedConv", "Tanh")])
def test_an_overflow_the_activation_hides_is_reported_and_triggers(op_type, activation):
    """A product that reaches -inf comes out of ReLU as 0 (of the sigmoid as 0, of tanh as -1): the
    output is finite, but the unfused graph's product overflowed. The node reports an overflow, and the
    hazard fires on the inputs where onnxruntime's own product is -inf."""
    if op_type == "FusedGemm":
        model = _one_node(op_type, {"activation": activation}, (1, 4), np.ones((4, 2), np.float32),
                          np.zeros(2, np.float32))
    else:
        model = _one_node(op_type, {"activation": activation, "pads": [1, 1, 1, 1]}, (1, 1, 3, 3),
                          np.ones((2, 1, 3, 3), np.float32), np.zeros(2, np.float32))
    x_shape = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    graph, _ = load_model(model)
    initial = {"x": Interval.uniform(-3e38, 3.0, x_shape, TensorProto.FLOAT)}
    for name, proto in graph.initializers.items():
        initial[name] = Interval.point(torch.from_numpy(numpy_helper.to_array(proto).copy()), proto.data_type)
    run = run_abstract(graph, initial)
    from ranum.detect import find_hazards

    assert [f.hazard_id for f in find_hazards(run)] == ["overflow"]
    x = np.full(x_shape, -3e38, np.float32)
    y = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    assert np.isfinite(y).all()  # the activation hid the overflow
    hazard = run.rules[graph.nodes[0].name].hazards[0]
    assert isinstance(hazard, ProductOverflow)
    operands = [torch.from_numpy(x)] + [torch.from_numpy(numpy_helper.to_array(graph.initializers[n]).copy())
                                        for n in ("w", "b")]
    assert bool(hazard.triggered(operands, [torch.from_numpy(y)]).any())
    assert not bool(hazard.triggered([torch.zeros_like(operands[0])] + operands[1:], [torch.from_numpy(y)]).any())


def test_fused_gemm_without_the_parameters_onnxruntime_requires_is_refused():
    """onnxruntime's FusedGemm kernel refuses a LeakyRelu without ``activation_alpha`` (no ONNX default
    applies); the rule refuses it too, with the reason, instead of assuming a default."""
    model = _one_node("FusedGemm", {"activation": "LeakyRelu"}, (1, 4), np.ones((4, 2), np.float32),
                      np.zeros(2, np.float32))
    with pytest.raises(Exception, match="alpha"):
        ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    report = ranum.check(model, {"inputs": {"x": [-1, 1]}})
    assert report.unsupported_ops == ("com.microsoft.FusedGemm",) or "FusedGemm" in str(report.unsupported_ops)
    assert any("activation_alpha" in reason for reason in report.analysis.run.unsupported.values())
