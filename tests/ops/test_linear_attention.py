"""Hand tests of LinearAttention (opset 27, outside the generic node-case window).

The onnx wheel's node cases against onnxruntime; the concrete rule against onnxruntime for every update rule
and every type onnxruntime runs (float32, float16, bfloat16 through OrtValues); precision on exact inputs;
group-query head sharing; a past state; the hazards where onnxruntime gives inf/NaN (exp of the decay, an
accumulated state) and their silence on benign ranges; rejected operand combinations.
"""

from __future__ import annotations

import math

import ml_dtypes
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper

from ranum.detect import find_hazards
from ranum.errors import UnsupportedOperator
from ranum.graph.loader import load_model
from ranum.interpret import run_concrete
from tests.ops.node_runs import abstract_run, assert_inside, node_cases, onnxruntime_outputs
from tests.ops.test_onnx_node_cases import test_concrete_and_abstract_match_onnx_reference as check_node_case

FLOAT, F16, BF16 = TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.BFLOAT16
EPS32 = float(torch.finfo(torch.float32).eps)
RULES = {"linear": (False, False), "gated": (True, False), "delta": (False, True), "gated_delta": (True, True)}
NAMES = ("query", "key", "value", "past_state", "decay", "beta")


def _model(rule: str, hq: int = 2, hkv: int = 2, d_k: int = 3, d_v: int = 4, steps: int = 3, batch: int = 1,
           elem_type: int = FLOAT, past: bool = False, per_key_decay: bool = False, state_type: int | None = None,
           **attrs) -> tuple[onnx.ModelProto, dict[str, list[int]]]:
    """A one-node model and the shapes of its inputs."""
    gated, delta = RULES[rule]
    shapes = {"query": [batch, steps, hq * d_k], "key": [batch, steps, hkv * d_k], "value": [batch, steps, hkv * d_v],
              "past_state": [batch, hkv, d_k, d_v], "decay": [batch, steps, hkv * (d_k if per_key_decay else 1)],
              "beta": [batch, steps, hkv]}
    used = [past, gated, delta]
    names = list(NAMES[:3]) + [n if on else "" for n, on in zip(NAMES[3:], used)]
    while not names[-1]:
        names.pop()
    inputs = [helper.make_tensor_value_info(n, state_type or elem_type if n == "past_state" else elem_type, shapes[n])
              for n in names if n]
    node = helper.make_node("LinearAttention", names, ["y", "present"], update_rule=rule, q_num_heads=hq,
                            kv_num_heads=hkv, **attrs)
    graph = helper.make_graph([node], "la", inputs, [helper.make_empty_tensor_value_info(o) for o in ("y", "present")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 27)])
    model.ir_version = 10
    return onnx.shape_inference.infer_shapes(model), {n: shapes[n] for n in names if n}


def _feeds(rng: np.random.Generator, shapes: dict[str, list[int]], dtype=np.float32, scale: float = 1.0) -> dict:
    """Random inputs: unit-norm keys, decay <= 0, beta in [0, 1]."""
    feeds = {n: scale * rng.standard_normal(s) for n, s in shapes.items()}
    feeds["key"] = feeds["key"] / (np.linalg.norm(feeds["key"], axis=-1, keepdims=True) + 1e-3)
    if "decay" in feeds:
        feeds["decay"] = -np.abs(feeds["decay"]) / 4
    if "beta" in feeds:
        feeds["beta"] = rng.uniform(0.0, 1.0, shapes["beta"])
    return {n: v.astype(dtype) for n, v in feeds.items()}


def _ort(model: onnx.ModelProto, feeds: dict) -> list[np.ndarray]:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def _concrete(model: onnx.ModelProto, feeds: dict) -> list[np.ndarray]:
    graph, _ = load_model(model)
    values = run_concrete(graph, {n: torch.from_numpy(np.ascontiguousarray(v)) for n, v in feeds.items()}).values
    return [values[o].numpy() for o in ("y", "present")]


def _exact_run(model: onnx.ModelProto, feeds: dict):
    return abstract_run(model, {n: (v.astype(np.float64), v.astype(np.float64)) for n, v in feeds.items()})


@pytest.mark.parametrize(("model", "inputs", "expected"), node_cases({"LinearAttention"}))
def test_node_case_agrees_with_onnxruntime(model: onnx.ModelProto, inputs, expected) -> None:
    check_node_case(model, inputs, onnxruntime_outputs(model, inputs))


@pytest.mark.parametrize("elem_type", [FLOAT, F16])
@pytest.mark.parametrize("rule", list(RULES))
def test_concrete_agrees_with_onnxruntime(rule: str, elem_type: int) -> None:
    rng = np.random.default_rng(3)
    dtype = np.float32 if elem_type == FLOAT else np.float16
    tol = 1e-5 if elem_type == FLOAT else 2e-3
    for kwargs in ({}, {"hq": 4, "hkv": 2, "past": True, "per_key_decay": True}, {"hq": 3, "hkv": 1, "batch": 2}):
        model, shapes = _model(rule, elem_type=elem_type, **kwargs)
        feeds = _feeds(rng, shapes, dtype)
        for got, want in zip(_concrete(model, feeds), _ort(model, feeds)):
            assert got.dtype == want.dtype
            np.testing.assert_allclose(got.astype(np.float64), want.astype(np.float64), rtol=tol, atol=tol)


@pytest.mark.parametrize("rule", list(RULES))
def test_bfloat16_agrees_with_onnxruntime_and_lies_inside(rule: str) -> None:
    """numpy feeds cannot carry bfloat16: onnxruntime takes and gives OrtValues over uint16 buffers."""
    model, shapes = _model(rule, elem_type=BF16, past=True)
    feeds = _feeds(np.random.default_rng(5), shapes, ml_dtypes.bfloat16)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    binding = session.io_binding()
    for name, value in feeds.items():
        binding.bind_ortvalue_input(name, ort.OrtValue.ortvalue_from_numpy_with_onnx_type(value.view(np.uint16), BF16))
    outs = [np.zeros(shapes["query"][:2] + [2 * 4], np.uint16), np.zeros(shapes["past_state"], np.uint16)]
    for name, buffer in zip(("y", "present"), outs):
        binding.bind_ortvalue_output(name, ort.OrtValue.ortvalue_from_numpy_with_onnx_type(buffer, BF16))
    session.run_with_iobinding(binding)
    expected = [o.view(ml_dtypes.bfloat16).astype(np.float64) for o in outs]
    graph, _ = load_model(model)
    torch_feeds = {n: torch.from_numpy(v.view(np.int16).copy()).view(torch.bfloat16) for n, v in feeds.items()}
    values = run_concrete(graph, torch_feeds).values
    run = _exact_run(model, {n: v.astype(np.float64) for n, v in feeds.items()})
    for name, want in zip(("y", "present"), expected):
        np.testing.assert_allclose(values[name].double().numpy(), want, rtol=1e-2, atol=1e-2)
        assert_inside(run.env[name], want)


@pytest.mark.parametrize("rule", list(RULES))
def test_exact_inputs_give_tight_bounds(rule: str) -> None:
    model, shapes = _model(rule, hq=4, hkv=2, past=True, steps=4)
    feeds = _feeds(np.random.default_rng(11), shapes)
    run = _exact_run(model, feeds)
    for name, want in zip(("y", "present"), _ort(model, feeds)):
        assert_inside(run.env[name], want)
        lo, hi = (t.numpy() for t in run.env[name].full())
        # a few ulps per rounding, and the accumulation bounds of the d_k-term contractions (2 d_k u of the
        # |term| sums, which exceed |y| where terms cancel), compounded over 4 steps
        assert (hi - lo <= 256 * EPS32 * (1.0 + np.abs(want))).all(), float((hi - lo).max())
    assert not find_hazards(run)


@pytest.mark.parametrize("rule", list(RULES))
def test_ranges_contain_onnxruntime_on_dense_samples(rule: str) -> None:
    """Boxes around random centres: onnxruntime on corners and samples inside, also with a past state."""
    rng = np.random.default_rng(13)
    model, shapes = _model(rule, hq=4, hkv=2, past=True, per_key_decay=True)
    centre = _feeds(rng, shapes)
    radius = {n: np.full(v.shape, 0.05) for n, v in centre.items()}
    ranges = {}
    for n, c in centre.items():
        lo, hi = c - radius[n], c + radius[n]
        if n == "beta":
            lo, hi = lo.clip(0.0, 1.0), hi.clip(0.0, 1.0)
        ranges[n] = (lo.astype(np.float32).astype(np.float64), hi.astype(np.float32).astype(np.float64))
    run = abstract_run(model, ranges)
    for k in range(40):
        pick = {n: lo if k == 0 else hi if k == 1 else lo + (hi - lo) * rng.random(lo.shape)
                for n, (lo, hi) in ranges.items()}
        feeds = {n: np.clip(v.astype(np.float32), *ranges[n]).astype(np.float32) for n, v in pick.items()}
        for name, want in zip(("y", "present"), _ort(model, feeds)):
            assert_inside(run.env[name], want)


def test_group_query_heads_share_their_key_value_head() -> None:
    """Query heads 2h and 2h + 1 read kv head h: equal queries give equal outputs, and bounds stay exact-tight."""
    model, shapes = _model("gated_delta", hq=4, hkv=2, d_k=2, d_v=3)
    feeds = _feeds(np.random.default_rng(17), shapes)
    q = feeds["query"].reshape(1, 3, 4, 2)
    q[:, :, 1], q[:, :, 3] = q[:, :, 0], q[:, :, 2]
    feeds["query"] = q.reshape(1, 3, 8)
    y = _ort(model, feeds)[0].reshape(1, 3, 4, 3)
    np.testing.assert_array_equal(y[:, :, 0], y[:, :, 1])
    assert not np.allclose(y[:, :, 0], y[:, :, 2])
    got = _concrete(model, feeds)[0].reshape(1, 3, 4, 3)
    np.testing.assert_allclose(got, y, rtol=1e-5, atol=1e-6)
    lo, hi = (t.numpy().reshape(1, 3, 4, 3) for t in _exact_run(model, feeds).env["y"].full())
    assert ((lo <= y) & (y <= hi)).all() and np.array_equal(lo[:, :, 0], lo[:, :, 1])


def test_past_state_is_carried_and_its_type_kept() -> None:
    """T = 1 decoding from a float16 past state under float32 activations: present_state stays float16."""
    model, shapes = _model("gated", steps=1, past=True, state_type=F16)
    feeds = _feeds(np.random.default_rng(19), shapes)
    feeds["past_state"] = feeds["past_state"].astype(np.float16)
    want_y, want_s = _ort(model, feeds)
    got_y, got_s = _concrete(model, feeds)
    assert want_s.dtype == got_s.dtype == np.float16
    np.testing.assert_allclose(got_s.astype(np.float64), want_s.astype(np.float64), rtol=2e-3, atol=2e-3)
    np.testing.assert_allclose(got_y, want_y, rtol=1e-5, atol=1e-6)
    run = _exact_run(model, feeds)
    assert run.env["present"].elem_type == F16
    assert_inside(run.env["present"], want_s)
    assert_inside(run.env["y"], want_y)


def _hazard_ids(run) -> set[tuple[str, str]]:
    return {(f.hazard_id, f.operand) for f in find_hazards(run)}


@pytest.mark.parametrize("rule", ["gated", "gated_delta"])
def test_exp_of_a_large_decay_overflows_and_is_reported(rule: str) -> None:
    model, shapes = _model(rule, past=True)
    feeds = _feeds(np.random.default_rng(23), shapes)
    feeds["decay"] = np.full(shapes["decay"], 89.0, np.float32)  # exp(89) > float32 max
    y, state = _ort(model, feeds)
    assert not np.isfinite(y).all() and not np.isfinite(state).all()
    for name, got in zip(("y", "present"), _concrete(model, feeds)):
        np.testing.assert_array_equal(np.isfinite(got), np.isfinite({"y": y, "present": state}[name]))
    run = _exact_run(model, feeds)
    assert ("exp-overflow", "decay") in _hazard_ids(run)
    assert run.env["present"].upper.max() == math.inf or run.env["present"].lower.min() == -math.inf
    safe = _exact_run(model, {**feeds, "decay": np.full(shapes["decay"], 88.0, np.float32)})
    assert ("exp-overflow", "decay") not in _hazard_ids(safe)


def test_an_accumulated_state_overflows_and_is_reported() -> None:
    """k v^T of 1e19-sized keys and values is about 1e38: four steps overflow float32, also for a zero query
    (whose output is NaN, 0 * inf: present_state's own Overflow hazard names it)."""
    model, shapes = _model("linear", steps=4)
    ones = {n: np.ones(s, np.float32) for n, s in shapes.items()}
    feeds = {**ones, **{n: np.full(shapes[n], 1e19, np.float32) for n in ("key", "value")}}
    y, state = _ort(model, feeds)
    assert np.isinf(state).all() and np.isinf(y[:, -1]).all() and np.isfinite(y[:, 0]).all()
    run = _exact_run(model, feeds)
    assert_inside(run.env["y"], y)
    assert_inside(run.env["present"], state)
    assert {("overflow", "y"), ("state-overflow", "present")} <= _hazard_ids(run)
    zero_q = {**feeds, "query": np.zeros(shapes["query"], np.float32)}
    assert np.isnan(_ort(model, zero_q)[0][:, -1]).all()
    assert ("state-overflow", "present") in _hazard_ids(_exact_run(model, zero_q))


def test_benign_ranges_report_nothing() -> None:
    model, shapes = _model("gated_delta", hq=4, hkv=2, past=True)
    ranges = {n: (np.full(s, -1.0), np.full(s, 1.0)) for n, s in shapes.items()}
    ranges["decay"] = (np.full(shapes["decay"], -4.0), np.zeros(shapes["decay"]))
    ranges["beta"] = (np.zeros(shapes["beta"]), np.ones(shapes["beta"]))
    run = abstract_run(model, ranges)
    assert not find_hazards(run)
    assert all(math.isfinite(run.env[n].max()) and math.isfinite(run.env[n].min()) for n in ("y", "present"))


@pytest.mark.parametrize(("rule", "gates"), [("gated", (None, None)), ("delta", (None, None)),
                                            ("linear", (torch.zeros(1, 2, 2), None)),
                                            ("gated", (None, torch.ones(1, 2, 2)))])
def test_missing_or_extra_gates_are_rejected(rule: str, gates: tuple) -> None:
    from ranum.ops.linear_attention import LinearAttention

    q, k, v = torch.ones(1, 2, 6), torch.ones(1, 2, 6), torch.ones(1, 2, 4)
    with pytest.raises(UnsupportedOperator, match="decay exactly"):
        LinearAttention(q_num_heads=2, kv_num_heads=2, update_rule=rule).concrete(None, q, k, v, None, *gates)


def test_unknown_update_rule_is_rejected() -> None:
    from ranum.ops.linear_attention import LinearAttention

    with pytest.raises(UnsupportedOperator, match="update_rule"):
        LinearAttention(q_num_heads=2, kv_num_heads=2, update_rule="retnet")
    with pytest.raises(UnsupportedOperator, match="multiple"):
        LinearAttention(q_num_heads=3, kv_num_heads=2)
