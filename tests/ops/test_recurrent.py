"""RNN, GRU, LSTM beyond the generic harness: the onnx wheel's node cases (opset 22, outside the range
test_onnx_node_cases.py collects), batch-major layout (onnxruntime's CPU kernels reject it: checked
against onnxruntime on the transposed sequence-major model), float32 rounding on exact operands,
precision, whole exported PyTorch models, and the documented unsupported combinations."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import helper, numpy_helper

import ranum
from ranum.domain.interval import Interval
from ranum.graph.loader import load_model
from ranum.interpret import run_abstract, run_concrete
from tests.ops.cases_recurrent import recurrent
from tests.ops.harness import OpCase, build_model, draw_interval, draw_points
from tests.ops.node_runs import node_cases
from tests.ops.test_onnx_node_cases import test_concrete_and_abstract_match_onnx_reference as check_node_case
from tests.zoo.runtime import Runner

RECURRENT = ("RNN", "GRU", "LSTM")
NODE_CASES = node_cases(RECURRENT)


def test_the_onnx_wheel_has_recurrent_node_cases() -> None:
    assert len(NODE_CASES) >= 15


@pytest.mark.parametrize(("model", "inputs", "outputs"), NODE_CASES)
def test_onnx_node_cases(model: onnx.ModelProto, inputs, outputs) -> None:
    check_node_case(model, inputs, outputs)


# ----------------------------------------------------------------------------- layout = 1
def _batch_major(case: OpCase) -> OpCase:
    """The same node with ``layout = 1``: X, initial_h and initial_c get their first two axes swapped."""
    swapped = {0, 5, 6}
    inputs = tuple(dataclasses.replace(op, shape=(op.shape[1], op.shape[0], *op.shape[2:]))
                   if op is not None and i in swapped else op for i, op in enumerate(case.inputs))
    return dataclasses.replace(case, inputs=inputs, attrs={**case.attrs, "layout": 1}, name=case.name + "-layout1")


def _to_batch_major(value: np.ndarray) -> np.ndarray:
    return value.transpose(2, 0, 1, 3) if value.ndim == 4 else value.swapaxes(0, 1)


LAYOUT_CASES = [
    recurrent("RNN", dirs=2, bias=True, initial=True, name="RNN"),
    recurrent("GRU", bias=True, initial=True, linear_before_reset=1, direction="reverse", name="GRU"),
    recurrent("LSTM", dirs=2, bias=True, initial=True, peepholes=True, lengths=[4, 1], name="LSTM"),
]


@pytest.mark.parametrize("case", LAYOUT_CASES, ids=[c.id for c in LAYOUT_CASES])
def test_batch_major_layout_against_onnxruntime(case: OpCase) -> None:
    rng = np.random.default_rng(7)
    batch_major = _batch_major(case)
    graph, _ = load_model(build_model(batch_major))
    session = ort.InferenceSession(build_model(case).SerializeToString(), providers=["CPUExecutionProvider"])
    initial, drawn = {}, {}
    for i, op in enumerate(batch_major.inputs):
        name = f"in{i}"
        if op is not None and op.value is None:
            lo, hi = draw_interval(rng, op)
            initial[name] = Interval.from_full(torch.from_numpy(lo), torch.from_numpy(hi), op.elem_type)
            drawn[name] = draw_points(rng, lo, hi, op.elem_type, 5)
    for name, proto in graph.initializers.items():
        initial[name] = Interval.point(torch.from_numpy(numpy_helper.to_array(proto).copy()), proto.data_type)
    run = run_abstract(graph, initial)
    assert not run.unsupported
    for k in range(5):
        feeds = {name: points[k] for name, points in drawn.items()}
        sequence_major = {n: v.swapaxes(0, 1) if n in ("in0", "in5", "in6") else v for n, v in feeds.items()}
        expected = [_to_batch_major(v) for v in session.run(None, sequence_major)]
        got = run_concrete(graph, {n: torch.from_numpy(v) for n, v in feeds.items()}).values
        for j, value in enumerate(expected):
            np.testing.assert_allclose(got[f"out{j}"].numpy(), value, rtol=1e-5, atol=1e-5)
            lo, hi = (t.numpy() for t in run.env[f"out{j}"].full())
            assert ((value >= lo) & (value <= hi)).all(), f"{batch_major.id}: output {j} outside its bounds"


# ----------------------------------------------------------------------------- exact operands
EXACT_CASES = [
    recurrent("RNN", seq=6, inputs=5, hidden=4, bias=True, initial=True, weights=0.5, name="RNN"),
    recurrent("GRU", seq=6, inputs=5, hidden=4, dirs=2, bias=True, initial=True, weights=0.5, name="GRU"),
    recurrent("GRU", seq=6, inputs=5, hidden=4, bias=True, linear_before_reset=1, clip=0.5, weights=0.5,
              name="GRU-linear-before-reset"),
    recurrent("LSTM", seq=6, inputs=5, hidden=4, bias=True, initial=True, peepholes=True, weights=0.5, name="LSTM"),
    recurrent("LSTM", seq=6, inputs=5, hidden=4, dirs=2, bias=True, input_forget=1, clip=1.0, weights=0.5,
              lengths=[6, 3], name="LSTM-input-forget"),
]


@pytest.mark.parametrize("case", EXACT_CASES, ids=[c.id for c in EXACT_CASES])
def test_exact_operands_give_tight_bounds_around_onnxruntime(case: OpCase) -> None:
    """Point operands: onnxruntime's float32 results lie inside bounds that are only rounding wide."""
    rng = np.random.default_rng(3)
    model = build_model(case)
    graph, _ = load_model(model)
    feeds, initial = {}, {}
    for i, op in enumerate(case.inputs):
        if op is not None and op.value is None:
            feeds[f"in{i}"] = rng.uniform(op.low, op.high, op.shape).astype(np.float32)
            initial[f"in{i}"] = Interval.point(torch.from_numpy(feeds[f"in{i}"]), op.elem_type)
    for name, proto in graph.initializers.items():
        initial[name] = Interval.point(torch.from_numpy(numpy_helper.to_array(proto).copy()), proto.data_type)
    run = run_abstract(graph, initial)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    for j, value in enumerate(session.run(None, feeds)):
        lo, hi = (t.numpy() for t in run.env[f"out{j}"].full())
        assert ((value >= lo) & (value <= hi)).all(), f"{case.id}: output {j} outside its bounds"
        assert (hi - lo).max() < 1e-3, f"{case.id}: output {j} bounds wider than rounding"


# ----------------------------------------------------------------------------- precision
def test_lstm_hidden_state_stays_in_unit_interval() -> None:
    """Exact weights, inputs in [-1, 1]: h = o tanh(c) is within [-1, 1] up to a rounding slack."""
    case = recurrent("LSTM", seq=12, inputs=6, hidden=8, dirs=2, bias=True, peepholes=True)
    rng = np.random.default_rng(0)
    graph, _ = load_model(build_model(case))
    initial = {"in0": Interval.uniform(-1.0, 1.0, case.inputs[0].shape, case.inputs[0].elem_type)}
    for i, op in enumerate(case.inputs[1:], start=1):
        if op is not None:
            value = rng.uniform(-2.0, 2.0, op.shape).astype(np.float32)
            initial[f"in{i}"] = Interval.point(torch.from_numpy(value), op.elem_type)
    run = run_abstract(graph, initial)
    slack = 1e-5
    for name in ("out0", "out1"):
        iv = run.env[name]
        assert -1 - slack <= iv.min() and iv.max() <= 1 + slack, f"{name}: {iv}"
    cell = run.env["out2"]  # |c_t| <= |c_{t-1}| + 1 from c_0 = 0, and a slack per step
    assert -12 - 12 * slack <= cell.min() and cell.max() <= 12 + 12 * slack


# ----------------------------------------------------------------------------- exported PyTorch models
class _Recurrent(torch.nn.Module):
    def __init__(self, layer: type[torch.nn.Module]) -> None:
        super().__init__()
        self.rnn = layer(4, 6, num_layers=2, batch_first=True, bidirectional=True)
        self.head = torch.nn.Linear(12, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y, _ = self.rnn(x)
        return self.head(y[:, -1])


@pytest.mark.parametrize("layer", [torch.nn.LSTM, torch.nn.GRU, torch.nn.RNN], ids=lambda c: c.__name__)
def test_exported_pytorch_model_is_supported_and_sound(layer: type[torch.nn.Module], tmp_path) -> None:
    torch.manual_seed(0)
    path = tmp_path / "model.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(_Recurrent(layer).eval(), (torch.zeros(2, 5, 4),), str(path), dynamo=False,
                          opset_version=17, input_names=["x"], output_names=["y"])
    report = ranum.check(str(path), {"inputs": {"x": [-1.0, 1.0]}, "weights": {"default": "exact"}})
    assert report.unsupported_ops == ()
    assert report.findings == ()
    model = onnx.load(str(path))
    runner = Runner(model)
    rng = np.random.default_rng(1)
    for x in (np.full((2, 5, 4), -1.0), np.full((2, 5, 4), 1.0), rng.uniform(-1, 1, (2, 5, 4))):
        values = runner.run({"x": x.astype(np.float32)})
        for node in report.analysis.graph.nodes:
            for name in (o for o in node.outputs if o):
                lo, hi = report.analysis.bounds(name)
                v = np.asarray(values[name], dtype=np.float64)
                assert ((v >= lo) & (v <= hi)).all(), f"{node.op_type} output '{name}' outside its bounds"


# ----------------------------------------------------------------------------- unsupported combinations
def _single_node(op: str, attrs: dict, lengths_input: bool = False) -> onnx.ModelProto:
    hidden, gates = 2, {"RNN": 1, "GRU": 3, "LSTM": 4}[op]
    inputs = [helper.make_tensor_value_info("X", onnx.TensorProto.FLOAT, [3, 1, 2]),
              helper.make_tensor_value_info("W", onnx.TensorProto.FLOAT, [1, gates * hidden, 2]),
              helper.make_tensor_value_info("R", onnx.TensorProto.FLOAT, [1, gates * hidden, hidden])]
    names = ["X", "W", "R"]
    if lengths_input:
        inputs.append(helper.make_tensor_value_info("L", onnx.TensorProto.INT32, [1]))
        names += ["", "L"]
    node = helper.make_node(op, names, ["Y"], hidden_size=hidden, **attrs)
    output = helper.make_tensor_value_info("Y", onnx.TensorProto.FLOAT, [3, 1, 1, hidden])
    graph = helper.make_graph([node], "g", inputs, [output])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])


@pytest.mark.parametrize(("op", "attrs", "lengths_input", "reason"), [
    ("LSTM", {"activations": ["Sigmoid", "Swish", "Tanh"]}, False, "unknown activation"),
    ("RNN", {"activations": ["relu"]}, False, "unknown activation"),
    ("GRU", {"activations": ["Sigmoid"]}, False, "expected 2 activations"),
    ("GRU", {}, True, "sequence_lens must be constant"),
], ids=["unknown-name", "rnn-spelling", "activation-count", "ranged-lengths"])
def test_unsupported_combinations_are_reported(op: str, attrs: dict, lengths_input: bool, reason: str) -> None:
    spec = {"inputs": {"L": [1, 3]}} if lengths_input else None
    report = ranum.check(_single_node(op, attrs, lengths_input), spec)
    assert report.unsupported_ops == (op,)
    assert reason in next(iter(report.unsupported_nodes.values()))



def test_overflow_is_reported_when_only_the_final_state_is_kept() -> None:
    """Y omitted: the overflow hazard reads Y_h."""
    hidden = 3
    inputs = [helper.make_tensor_value_info("X", onnx.TensorProto.FLOAT, [2, 1, 3]),
              helper.make_tensor_value_info("W", onnx.TensorProto.FLOAT, [1, hidden, 3]),
              helper.make_tensor_value_info("R", onnx.TensorProto.FLOAT, [1, hidden, hidden])]
    node = helper.make_node("RNN", ["X", "W", "R"], ["", "Y_h"], hidden_size=hidden, activations=["Relu"])
    output = helper.make_tensor_value_info("Y_h", onnx.TensorProto.FLOAT, [1, 1, hidden])
    model = helper.make_model(helper.make_graph([node], "g", inputs, [output]),
                              opset_imports=[helper.make_opsetid("", 14)])
    report = ranum.check(model, {"inputs": {"X": [1e19, 3e19], "W": [1e19, 3e19], "R": [-1, 1]}})
    assert [f.node for f in report.findings] == ["RNN_0"]
