"""Checks of onnxruntime's RotaryEmbedding and GroupQueryAttention rules (ranum.ops.contrib_rotary_attention)
that the one-node harness cannot express: a prompt followed by decode steps that feed the present cache
back, a decoder layer (SimplifiedLayerNormalization -> Q/K/V MatMuls -> GroupQueryAttention with rotary
-> MatMul), the score overflow finding, the rotation-norm bound under inexact positions, and the
rejected forms. Every check compares with onnxruntime."""

from __future__ import annotations

import math

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

import ranum
from ranum.domain.interval import Interval
from ranum.graph.loader import load_model
from ranum.interpret import run_abstract, run_concrete
from tests.ops.harness import _type_outputs_from_onnxruntime

F, I32, I64 = TensorProto.FLOAT, TensorProto.INT32, TensorProto.INT64
MS = "com.microsoft"
HEADS, KV_HEADS, HEAD, HIDDEN, ROWS = 4, 2, 16, 32, 16


def _caches() -> dict[str, np.ndarray]:
    angles = np.arange(ROWS)[:, None] * 10000.0 ** (-np.arange(HEAD // 2) / (HEAD // 2))
    return {"cos": np.cos(angles).astype(np.float32), "sin": np.sin(angles).astype(np.float32)}


def _model(nodes, inputs, outputs, inits=()) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, [helper.make_empty_tensor_value_info(o) for o in outputs],
                              initializer=list(inits))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(MS, 1)])
    model.ir_version = 8
    _type_outputs_from_onnxruntime(model)
    return model


def _gqa_step(batch: int, seq: int, past: int, elem_type: int = F, **attrs) -> onnx.ModelProto:
    """One GroupQueryAttention call with do_rotary; seqlens_k and total_sequence_length are inputs."""
    infos = [helper.make_tensor_value_info("q", elem_type, [batch, seq, HEADS * HEAD]),
             helper.make_tensor_value_info("k", elem_type, [batch, seq, KV_HEADS * HEAD]),
             helper.make_tensor_value_info("v", elem_type, [batch, seq, KV_HEADS * HEAD]),
             helper.make_tensor_value_info("pk", elem_type, [batch, KV_HEADS, past, HEAD]),
             helper.make_tensor_value_info("pv", elem_type, [batch, KV_HEADS, past, HEAD]),
             helper.make_tensor_value_info("sk", I32, [batch]), helper.make_tensor_value_info("tsl", I32, [])]
    inits = [numpy_helper.from_array(v.astype(helper.tensor_dtype_to_np_dtype(elem_type)), k)
             for k, v in _caches().items()]
    node = helper.make_node("GroupQueryAttention", ["q", "k", "v", "pk", "pv", "sk", "tsl", "cos", "sin"],
                            ["y", "present_k", "present_v"], domain=MS, num_heads=HEADS, kv_num_heads=KV_HEADS,
                            do_rotary=1, **attrs)
    return _model([node], infos, ["y", "present_k", "present_v"], inits)


def _session(model: onnx.ModelProto) -> ort.InferenceSession:
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def _bounds_contain(model: onnx.ModelProto, boxes: dict, exact: dict, samples: list[dict]) -> None:
    """Abstract run with ``boxes`` (name -> (lo, hi)) and ``exact`` inputs; every sample's onnxruntime
    outputs lie inside the output bounds."""
    graph, _ = load_model(model)
    initial = {n: Interval.from_full(torch.from_numpy(lo), torch.from_numpy(hi), F) for n, (lo, hi) in boxes.items()}
    initial |= {n: Interval.point(torch.from_numpy(v), I32) for n, v in exact.items()}
    for name, proto in graph.initializers.items():
        initial[name] = Interval.point(torch.from_numpy(numpy_helper.to_array(proto).copy()), proto.data_type)
    run = run_abstract(graph, initial)
    assert not run.unsupported, run.unsupported
    session = _session(model)
    for feeds in samples:
        for out, value in zip(model.graph.output, session.run(None, {**feeds, **exact})):
            lo, hi = (t.numpy() for t in run.env[out.name].full())
            assert np.isfinite(lo).all() and np.isfinite(hi).all()
            assert ((lo <= value) & (value <= hi)).all(), out.name


def _agree(model: onnx.ModelProto, feeds: dict) -> list[np.ndarray]:
    """onnxruntime's outputs, checked equal to the concrete rule's."""
    expected = _session(model).run(None, feeds)
    graph, _ = load_model(model)
    got = run_concrete(graph, {k: torch.from_numpy(v) for k, v in feeds.items()}).values
    for out, value in zip(model.graph.output, expected):
        np.testing.assert_allclose(got[out.name].numpy(), value, rtol=1e-5, atol=1e-5, err_msg=out.name)
    return expected


def _draw(rng: np.random.Generator, shapes: dict, scale: float = 1.0) -> dict:
    return {n: rng.uniform(-scale, scale, s).astype(np.float32) for n, s in shapes.items()}


def test_prompt_then_decode_steps_with_padding_agree_and_lie_inside_the_bounds() -> None:
    rng = np.random.default_rng(0)
    batch, prompt, capacity = 2, 4, 8
    lengths = np.array([4, 2], dtype=np.int32)  # batch entry 1 right-padded
    step0 = _gqa_step(batch, prompt, capacity)
    feeds = _draw(rng, {"q": (batch, prompt, HEADS * HEAD), "k": (batch, prompt, KV_HEADS * HEAD),
                        "v": (batch, prompt, KV_HEADS * HEAD)})
    feeds |= {"pk": np.zeros((batch, KV_HEADS, capacity, HEAD), np.float32),
              "pv": np.zeros((batch, KV_HEADS, capacity, HEAD), np.float32),
              "sk": lengths - 1, "tsl": np.array(prompt, np.int32)}
    _, cache_k, cache_v = _agree(step0, feeds)
    decode = _gqa_step(batch, 1, capacity)
    for _ in range(2):
        lengths = lengths + 1
        new = _draw(rng, {"q": (batch, 1, HEADS * HEAD), "k": (batch, 1, KV_HEADS * HEAD),
                          "v": (batch, 1, KV_HEADS * HEAD)})
        exact = {"sk": lengths - 1, "tsl": np.array(int(lengths.max()), np.int32)}
        _, next_k, next_v = _agree(decode, {**new, "pk": cache_k, "pv": cache_v, **exact})
        boxes = {n: (np.full(a.shape, -1.0), np.full(a.shape, 1.0)) for n, a in new.items()}
        boxes |= {"pk": (cache_k - 0.5, cache_k + 0.5), "pv": (cache_v - 0.5, cache_v + 0.5)}
        samples = [{**_draw(rng, {n: a.shape for n, a in new.items()}),
                    "pk": cache_k + rng.uniform(-0.5, 0.5, cache_k.shape).astype(np.float32),
                    "pv": cache_v + rng.uniform(-0.5, 0.5, cache_v.shape).astype(np.float32)} for _ in range(4)]
        _bounds_contain(decode, boxes, exact, samples)
        cache_k, cache_v = next_k, next_v


def _decoder_layer(seq: int, elem_type: int = F, packed: bool = False) -> onnx.ModelProto:
    """x -> SimplifiedLayerNormalization -> Q/K/V MatMuls -> GroupQueryAttention (rotary) -> MatMul; ``packed``:
    one MatMul projects Q, K and V together (onnxruntime-genai's form) and GroupQueryAttention splits them."""
    rng = np.random.default_rng(1)
    weights = {"gamma": rng.uniform(0.5, 1.5, HIDDEN), "wq": rng.uniform(-0.3, 0.3, (HIDDEN, HEADS * HEAD)),
               "wk": rng.uniform(-0.3, 0.3, (HIDDEN, KV_HEADS * HEAD)),
               "wv": rng.uniform(-0.3, 0.3, (HIDDEN, KV_HEADS * HEAD)),
               "wo": rng.uniform(-0.3, 0.3, (HEADS * HEAD, HIDDEN)), **_caches()}
    if packed:
        weights["wqkv"] = np.concatenate([weights.pop(w) for w in ("wq", "wk", "wv")], axis=1)
    dtype = helper.tensor_dtype_to_np_dtype(elem_type)
    inits = [numpy_helper.from_array(v.astype(dtype), k) for k, v in weights.items()]
    inits += [numpy_helper.from_array(np.array([seq - 1, seq - 2], np.int32), "sk"),
              numpy_helper.from_array(np.array(seq, np.int32), "tsl")]
    projections = (("wqkv", "q"),) if packed else (("wq", "q"), ("wk", "k"), ("wv", "v"))
    qkv = ["q", "", ""] if packed else ["q", "k", "v"]
    nodes = [helper.make_node("SimplifiedLayerNormalization", ["x", "gamma"], ["h"], axis=-1, epsilon=1e-5),
             *(helper.make_node("MatMul", ["h", w], [o]) for w, o in projections),
             helper.make_node("GroupQueryAttention", [*qkv, "", "", "sk", "tsl", "cos", "sin"],
                              ["ctx", "present_k", "present_v"], domain=MS, num_heads=HEADS, kv_num_heads=KV_HEADS,
                              do_rotary=1),
             helper.make_node("MatMul", ["ctx", "wo"], ["y"])]
    x = helper.make_tensor_value_info("x", elem_type, [2, seq, HIDDEN])
    return _model(nodes, [x], ["y", "present_k", "present_v"], inits)


@pytest.mark.parametrize(("elem_type", "packed"), [(F, False), (F, True), (TensorProto.FLOAT16, True)],
                         ids=["float32", "float32-packed", "float16-packed"])
def test_decoder_layer_is_analysed_without_findings_and_contains_onnxruntime(elem_type: int, packed: bool) -> None:
    model = _decoder_layer(seq=5, elem_type=elem_type, packed=packed)
    report = ranum.check(model, {"inputs": {"x": [-2.0, 2.0]}, "weights": {"default": "exact"}})
    assert not report.unsupported_ops, report.unsupported_nodes
    assert not report.findings, report.findings
    session = _session(model)
    rng = np.random.default_rng(2)
    samples = [np.full((2, 5, HIDDEN), 2.0), np.full((2, 5, HIDDEN), -2.0)]
    samples += [rng.uniform(-2.0, 2.0, (2, 5, HIDDEN)) for _ in range(6)]
    for x in samples:
        feeds = {"x": x.astype(helper.tensor_dtype_to_np_dtype(elem_type))}
        for out, value in zip(model.graph.output, session.run(None, feeds)):
            lo, hi = report.analysis.bounds(out.name)
            assert np.isfinite(lo).all() and np.isfinite(hi).all()
            assert ((lo <= value) & (value <= hi)).all(), out.name


def test_overflowing_scores_are_the_attention_score_finding() -> None:
    model = _gqa_step(1, 1, 3)
    exact = {"sk": np.array([3], np.int32), "tsl": np.array(4, np.int32)}
    inits = [numpy_helper.from_array(v, k) for k, v in exact.items()]
    model.graph.initializer.extend(inits)
    del model.graph.input[5:]
    big = {n: [1e19, 3e19] for n in ("q", "k", "pk")}
    huge = ranum.check(model, {"inputs": {**big, "v": [-1.0, 1.0], "pv": [-1.0, 1.0]}})
    assert "attention-infinite-score" in {f.hazard_id for f in huge.findings}, huge.findings
    sane = ranum.check(model, {"inputs": {n: [-3.0, 3.0] for n in ("q", "k", "v", "pk", "pv")}})
    assert not sane.findings and not sane.unsupported_ops
    lo, hi = sane.analysis.bounds("y")
    assert (lo >= -3.01).all() and (hi <= 3.01).all()  # inside the attended V rows' hull


def _rotary_free_positions(rows: int) -> tuple[onnx.ModelProto, dict]:
    infos = [helper.make_tensor_value_info("x", F, [1, 3, 2 * HEAD]), helper.make_tensor_value_info("p", I64, [1, 3])]
    inits = [numpy_helper.from_array(v, k) for k, v in _caches().items()]
    node = helper.make_node("RotaryEmbedding", ["x", "p", "cos", "sin"], ["y"], domain=MS)
    return _model([node], infos, ["y"], inits), {"p": rows}


def test_rotation_with_free_positions_stays_within_the_pair_norm() -> None:
    model, _ = _rotary_free_positions(ROWS)
    graph, _ = load_model(model)
    initial = {"x": Interval.uniform(-1.0, 1.0, (1, 3, 2 * HEAD), F),
               "p": Interval.uniform(0, ROWS - 1, (1, 3), I64)}
    for name, proto in graph.initializers.items():
        initial[name] = Interval.point(torch.from_numpy(numpy_helper.to_array(proto).copy()), proto.data_type)
    run = run_abstract(graph, initial)
    assert not run.unsupported, run.unsupported
    lo, hi = (t.numpy() for t in run.env["y"].full())
    # a rotation keeps ||(x1, x2)|| <= sqrt(2): a bound from cos and sin hulls alone would allow 2
    assert (hi <= math.sqrt(2) * (1 + 1e-5)).all() and (lo >= -math.sqrt(2) * (1 + 1e-5)).all()
    session, rng = _session(model), np.random.default_rng(3)
    for _ in range(16):
        x = rng.uniform(-1.0, 1.0, (1, 3, 2 * HEAD)).astype(np.float32)
        (y,) = session.run(None, {"x": x, "p": rng.integers(0, ROWS, (1, 3))})
        assert ((lo <= y) & (y <= hi)).all()


def _reasons(model: onnx.ModelProto, ranges: dict) -> str:
    report = ranum.check(model, {"inputs": ranges})
    assert "GroupQueryAttention" in report.unsupported_ops
    return " ".join(report.unsupported_nodes.values())


def test_unmodelled_forms_are_rejected_with_a_reason() -> None:
    ranges = {n: [-1.0, 1.0] for n in ("q", "k", "v", "pk", "pv")}
    lengths = {"sk": [0, 3], "tsl": [4, 4]}
    assert "'seqlens_k' must be a constant" in _reasons(_gqa_step(1, 1, 3), {**ranges, **lengths})
    packed = helper.make_node("GroupQueryAttention", ["q", "", "", "", "", "sk", "tsl"], ["y"], domain=MS,
                              num_heads=HEADS, kv_num_heads=KV_HEADS)
    infos = [helper.make_tensor_value_info("q", F, [1, 2, (HEADS + 2 * KV_HEADS) * HEAD + 1]),
             helper.make_tensor_value_info("sk", I32, [1]), helper.make_tensor_value_info("tsl", I32, [])]
    graph = helper.make_graph([packed], "g", infos, [helper.make_tensor_value_info("y", F, [1, 2, HEADS * HEAD])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(MS, 1)])
    assert "packed query" in _reasons(model, {"q": [-1.0, 1.0], "sk": [1, 1], "tsl": [2, 2]})  # onnxruntime rejects it
