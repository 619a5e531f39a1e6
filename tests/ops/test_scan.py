"""Scan against onnxruntime: the concrete rule agrees with it on several graphs, its sampled outputs lie
inside the abstract bounds (unrolled and fixpoint), exact inputs give exact results, and hazards inside
the body are found. The generic harness cases are in tests/ops/cases_scan.py."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper
from onnx.reference import ReferenceEvaluator

import ranum
from ranum.graph.loader import load_model
from ranum.interpret import run_concrete
from ranum.ops.control import UNROLL_LIMIT
from tests.ops.cases_scan import cumulative, stateless, zipped
from tests.ops.node_runs import abstract_run, assert_inside

FLOAT, INT64 = TensorProto.FLOAT, TensorProto.INT64
SAMPLES = 30
ULP = torch.finfo(torch.float32).eps


# ----------------------------------------------------------------------------- model building
def _scan_model(body: onnx.GraphProto, operands: dict[str, tuple[int, list[int]]], outputs: list[str],
                opset: int = 18, infer: bool = True, **attrs) -> onnx.ModelProto:
    """A model of one Scan node; ``operands``: name -> (elem_type, shape) in operand order ("" skips one).
    ``infer``: output types from ONNX shape inference (else float outputs of any shape)."""
    inputs = [helper.make_tensor_value_info(n, t, s) for n, (t, s) in operands.items() if n]
    node = helper.make_node("Scan", list(operands), outputs, body=body, **attrs)
    typed = [helper.make_empty_tensor_value_info(o) if infer else helper.make_tensor_value_info(o, FLOAT, ["?"])
             for o in outputs]
    graph = helper.make_graph([node], "scan", inputs, typed)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    if infer:
        model = onnx.shape_inference.infer_shapes(model)
    onnx.checker.check_model(model)
    return model


def _floats(**shapes: list[int]) -> dict[str, tuple[int, list[int]]]:
    return {name: (FLOAT, shape) for name, shape in shapes.items()}


def cumulative_sum(length: int = 4, **attrs) -> onnx.ModelProto:
    return _scan_model(cumulative(), _floats(s0=[2], xs=[length, 2]), ["final", "ys"], num_scan_inputs=1, **attrs)


MODELS = {
    "cumulative-sum": lambda: cumulative_sum(),
    "two-scan-inputs": lambda: _scan_model(zipped(), _floats(s0=[3], xa=[4, 3], xb=[4, 3]), ["final", "ds", "befores"],
                                           num_scan_inputs=2),
    "reversed-input": lambda: cumulative_sum(scan_input_directions=[1]),
    "input-axis-1": lambda: _scan_model(cumulative(), _floats(s0=[2], xs=[2, 5]), ["final", "ys"], num_scan_inputs=1,
                                        scan_input_axes=[1]),
    "output-axis-1-reversed": lambda: _scan_model(
        cumulative(scans=2), _floats(s0=[2], xs=[2, 5]), ["final", "ys", "zs"], num_scan_inputs=1,
        scan_input_axes=[-1], scan_output_axes=[1, -1], scan_output_directions=[1, 0]),
    "all-axes-and-directions": lambda: _scan_model(
        zipped(), _floats(s0=[3], xa=[3, 4], xb=[4, 3]), ["final", "ds", "befores"], num_scan_inputs=2,
        scan_input_axes=[1, 0], scan_input_directions=[1, 0], scan_output_axes=[-1, 1],
        scan_output_directions=[1, 1]),
    "without-state": lambda: _scan_model(stateless(), _floats(xs=[5, 3]), ["ys"], num_scan_inputs=1, opset=9),
    "opset-8": lambda: _scan_model(cumulative(scans=2), {"": (INT64, []), **_floats(s0=[2, 2], xs=[2, 3, 2])},
                                   ["final", "ys", "zs"], opset=8, num_scan_inputs=1, directions=[1]),
    "opset-8-sequence-lengths": lambda: _scan_model(
        cumulative(scans=2), {"lens": (INT64, [2]), **_floats(s0=[2, 2], xs=[2, 3, 2])}, ["final", "ys", "zs"],
        opset=8, num_scan_inputs=1, directions=[1]),
}


# ----------------------------------------------------------------------------- helpers
def _session(model: onnx.ModelProto) -> ort.InferenceSession:
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def _boxes(model: onnx.ModelProto, rng: np.random.Generator, exact: bool = False) -> dict:
    """Per-element random float boxes in [-3, 3] (``exact``: integer points); sequence lengths are points."""
    boxes = {}
    for value in model.graph.input:
        shape = [d.dim_value for d in value.type.tensor_type.shape.dim]
        if value.type.tensor_type.elem_type == INT64:
            lengths = rng.integers(1, 4, size=shape)
            boxes[value.name] = (lengths, lengths)
        elif exact:
            point = rng.integers(-3, 4, size=shape).astype(np.float64)
            boxes[value.name] = (point, point)
        else:
            lo = rng.uniform(-3, 2, size=shape).astype(np.float32)  # float32 bounds: points stay inside
            boxes[value.name] = (lo.astype(np.float64), (lo + rng.uniform(0, 1, size=shape)).astype(np.float32))
    return boxes


def _draw(boxes: dict, rng: np.random.Generator, model: onnx.ModelProto) -> dict[str, np.ndarray]:
    types = {v.name: v.type.tensor_type.elem_type for v in model.graph.input}
    feeds = {}
    for name, (lo, hi) in boxes.items():
        if types[name] == INT64:
            feeds[name] = lo.astype(np.int64)
            continue
        corner = rng.random() < 0.3
        draw = np.where(rng.random(lo.shape) < 0.5, lo, hi) if corner else rng.uniform(lo, hi)
        feeds[name] = np.clip(draw.astype(np.float32), lo.astype(np.float32), hi.astype(np.float32))
    return feeds


def _concrete(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    graph, _ = load_model(model)
    values = run_concrete(graph, {k: torch.from_numpy(v) for k, v in feeds.items()}).values
    return [values[o.name].numpy() for o in model.graph.output]


# ----------------------------------------------------------------------------- concrete agreement
@pytest.mark.parametrize("name", list(MODELS))
def test_concrete_rule_agrees_with_onnxruntime(name: str) -> None:
    model = MODELS[name]()
    rng = np.random.default_rng(1)
    session = _session(model)
    for _ in range(5):
        feeds = _draw(_boxes(model, rng), rng, model)
        for got, expected in zip(_concrete(model, feeds), session.run(None, feeds), strict=True):
            assert got.shape == expected.shape and got.dtype == expected.dtype
            np.testing.assert_allclose(got, expected, rtol=4 * ULP, atol=0, err_msg=name)


def test_zero_length_scan_passes_the_state_through() -> None:
    """onnxruntime refuses a scan axis of length 0, so the ONNX reference evaluator is the oracle here
    (it runs the state-only scan; with scan outputs it refuses too, so those are checked by shape)."""
    body = helper.make_graph([helper.make_node("Add", ["s", "x"], ["s_out"])], "sum",
                             [helper.make_tensor_value_info(n, FLOAT, [2]) for n in ("s", "x")],
                             [helper.make_tensor_value_info("s_out", FLOAT, [2])])
    model = _scan_model(body, _floats(s0=[2], xs=[0, 2]), ["final"], num_scan_inputs=1)
    feeds = {"s0": np.array([1.5, -2.0], np.float32), "xs": np.zeros((0, 2), np.float32)}
    np.testing.assert_array_equal(_concrete(model, feeds)[0], ReferenceEvaluator(model).run(None, feeds)[0])
    model = _scan_model(cumulative(), _floats(s0=[2], xs=[0, 2]), ["final", "ys"], num_scan_inputs=1,
                        scan_output_axes=[-1])
    state, scanned = _concrete(model, feeds)
    np.testing.assert_array_equal(state, feeds["s0"])
    assert scanned.shape == (2, 0) and scanned.dtype == np.float32
    run = abstract_run(model, {"s0": (np.array([1.0, -2.0]), np.array([1.5, 3.0])),
                               "xs": (np.zeros((0, 2)), np.zeros((0, 2)))})
    assert run.env["final"].min() == -2.0 and run.env["final"].max() == 3.0
    assert run.env["ys"].shape == (2, 0)


# ----------------------------------------------------------------------------- abstract soundness
def _assert_sound(model: onnx.ModelProto, seed: int, boxes: dict | None = None):
    rng = np.random.default_rng(seed)
    boxes = boxes or _boxes(model, rng)
    run = abstract_run(model, boxes)
    session = _session(model)
    for _ in range(SAMPLES):
        feeds = _draw(boxes, rng, model)
        for out, value in zip(model.graph.output, session.run(None, feeds), strict=True):
            assert_inside(run.env[out.name], value)
    return run


@pytest.mark.parametrize("name", list(MODELS))
def test_unrolled_scan_is_sound(name: str) -> None:
    for seed in range(3):
        _assert_sound(MODELS[name](), seed)


def test_unrolled_scan_slices_each_position() -> None:
    """Element t of a cumulative sum is bounded by the sums of the first t + 1 positions' bounds, not by
    t + 1 times the hull of the whole input."""
    model = cumulative_sum(length=6)
    lo = np.arange(12, dtype=np.float64).reshape(6, 2)
    boxes = {"s0": (np.zeros(2), np.ones(2)), "xs": (lo, lo + 0.5)}
    run = _assert_sound(model, 0, boxes)
    low, high = (t.numpy() for t in run.env["ys"].full())
    np.testing.assert_allclose(low, np.cumsum(lo, axis=0), rtol=8 * ULP)
    np.testing.assert_allclose(high, 1 + np.cumsum(lo + 0.5, axis=0), rtol=8 * ULP)


def test_long_scan_reaches_a_fixpoint() -> None:
    length = 100
    assert length > UNROLL_LIMIT
    model = _scan_model(cumulative("Max"), _floats(s0=[2], xs=[length, 2]), ["final", "ys"], num_scan_inputs=1,
                        scan_output_axes=[1])
    boxes = {"s0": (np.zeros(2), np.ones(2)), "xs": (np.full((length, 2), -1.0), np.full((length, 2), 3.0))}
    run = _assert_sound(model, 0, boxes)
    assert run.env["ys"].shape == (2, length)
    for name in ("final", "ys"):  # the running maximum stays in [max(s0, x) lower, max(s0, x) upper] = [0, 3]
        assert run.env[name].min() == 0.0 and 3.0 <= run.env[name].max() <= 3.0 * (1 + 4 * ULP)


def test_long_growing_scan_widens() -> None:
    length = 100
    model = cumulative_sum(length=length, scan_input_directions=[1])
    boxes = {"s0": (np.zeros(2), np.ones(2)), "xs": (np.zeros((length, 2)), np.ones((length, 2)))}
    run = _assert_sound(model, 0, boxes)
    assert run.env["final"].min() == 0.0 and run.env["final"].max() == np.inf  # grew at every join, then widened
    assert run.env["ys"].shape == (length, 2)


def test_long_opset_8_scan_is_sound() -> None:
    length = 80
    model = _scan_model(cumulative("Max", scans=2), {"": (INT64, []), **_floats(s0=[2, 2], xs=[2, length, 2])},
                        ["final", "ys", "zs"], opset=8, num_scan_inputs=1)
    run = _assert_sound(model, 0)
    assert run.env["ys"].shape == (2, length, 2)
    assert np.isfinite(run.env["ys"].max())


# ----------------------------------------------------------------------------- exactness
@pytest.mark.parametrize("name", list(MODELS))
def test_exact_inputs_give_the_concrete_result(name: str) -> None:
    """Integer points keep every sum exact in float32: the unrolled abstract result is that point."""
    model = MODELS[name]()
    rng = np.random.default_rng(2)
    boxes = _boxes(model, rng, exact=True)
    run = abstract_run(model, boxes)
    feeds = {n: lo.astype(np.int64 if n == "lens" else np.float32) for n, (lo, _) in boxes.items()}
    for out, value in zip(model.graph.output, _concrete(model, feeds), strict=True):
        iv = run.env[out.name]
        assert iv.is_exact, out.name
        np.testing.assert_array_equal(iv.exact_value().numpy(), value)


# ----------------------------------------------------------------------------- refusals
def test_inexact_sequence_lengths_are_refused_with_a_reason() -> None:
    model = MODELS["opset-8-sequence-lengths"]()
    boxes = _boxes(model, np.random.default_rng(0))
    boxes["lens"] = (np.array([1, 1]), np.array([3, 3]))
    run = abstract_run(model, boxes, supported=False)
    (reason,) = run.unsupported.values()
    assert "sequence_lens" in reason and "constant" in reason
    assert run.env["ys"].max() == np.inf  # the widest interval, not a made-up bound


def test_scan_inputs_of_different_lengths_are_refused() -> None:
    body = zipped()
    model = _scan_model(body, _floats(s0=[3], xa=[4, 3], xb=[5, 3]), ["final", "ds", "befores"], num_scan_inputs=2,
                        infer=False)
    run = abstract_run(model, _boxes(model, np.random.default_rng(0)), supported=False)
    assert "different lengths" in next(iter(run.unsupported.values()))


# ----------------------------------------------------------------------------- detection
def _log_body(offset: float) -> onnx.GraphProto:
    """body(s, x) = (s + x, log(s + x + offset)), with named nodes."""
    one = helper.make_tensor("offset", FLOAT, [1], [offset])
    nodes = [helper.make_node("Add", ["s", "x"], ["s_out"], name="body_add"),
             helper.make_node("Add", ["s_out", "offset"], ["shifted"], name="body_shift"),
             helper.make_node("Log", ["shifted"], ["y"], name="body_log")]
    return helper.make_graph(nodes, "log_body", [helper.make_tensor_value_info(n, FLOAT, [2]) for n in ("s", "x")],
                             [helper.make_tensor_value_info(n, FLOAT, [2]) for n in ("s_out", "y")],
                             initializer=[one])


@pytest.mark.parametrize("length", [5, 100])
def test_log_inside_the_body_is_reported(length: int) -> None:
    model = _scan_model(_log_body(0.0), _floats(s0=[2], xs=[length, 2]), ["final", "ys"], num_scan_inputs=1)
    report = ranum.check(model, {"inputs": {"s0": [0.0, 1.0], "xs": [0.0, 1.0]}})  # s0 + x0 may be 0
    assert [(f.node, f.hazard_id) for f in report.findings] == [("body_log", "log-nonpositive")]
    assert not report.not_analysed_nodes
    session = _session(model)
    zeros = {"s0": np.zeros(2, np.float32), "xs": np.zeros((length, 2), np.float32)}
    assert np.isneginf(session.run(None, zeros)[1]).any()  # the finding is real


@pytest.mark.parametrize("length", [5, 100])
def test_safe_log_inside_the_body_is_not_reported(length: int) -> None:
    model = _scan_model(_log_body(1.0), _floats(s0=[2], xs=[length, 2]), ["final", "ys"], num_scan_inputs=1)
    report = ranum.check(model, {"inputs": {"s0": [0.0, 1.0], "xs": [0.0, 1.0]}})  # log(s + 1), s >= 0
    assert not report.findings and not report.not_analysed_nodes
