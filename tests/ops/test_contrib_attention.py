"""Whole-graph checks of onnxruntime's fused attention (ranum.ops.contrib_attention): a BERT-like layer
(com.microsoft Attention or MultiHeadAttention, output projection, SkipLayerNormalization) analysed with
exact weights, its onnxruntime outputs inside the bounds; the forms the rules reject say why."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

import ranum

B, S, HIDDEN, HEADS = 2, 4, 8, 2
MS = "com.microsoft"


def _weights(rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {"w_qkv": rng.uniform(-0.5, 0.5, (HIDDEN, 3 * HIDDEN)), "b_qkv": rng.uniform(-0.2, 0.2, 3 * HIDDEN),
            "w_out": rng.uniform(-0.5, 0.5, (HIDDEN, HIDDEN)), "gamma": rng.uniform(0.5, 1.5, HIDDEN),
            "beta": rng.uniform(-0.1, 0.1, HIDDEN), "b_out": rng.uniform(-0.1, 0.1, HIDDEN)}


def _attention_nodes(fused: str) -> list[onnx.NodeProto]:
    if fused == "Attention":
        return [helper.make_node("Attention", ["x", "w_qkv", "b_qkv", "mask"], ["ctx"], domain=MS, num_heads=HEADS)]
    split = helper.make_node("Split", ["qkv", "sizes"], ["q", "k", "v"], axis=2)
    return [helper.make_node("MatMul", ["x", "w_qkv"], ["qkv"]), split,
            helper.make_node("MultiHeadAttention", ["q", "k", "v", "b_qkv", "mask"], ["ctx"], domain=MS,
                             num_heads=HEADS)]


def _layer(fused: str, elem_type: int = TensorProto.FLOAT) -> onnx.ModelProto:
    """x -> fused self-attention (2-D padding mask) -> output projection -> SkipLayerNormalization(+ x)."""
    dtype = helper.tensor_dtype_to_np_dtype(elem_type)
    inits = [numpy_helper.from_array(v.astype(dtype), k) for k, v in _weights(np.random.default_rng(0)).items()]
    inits += [numpy_helper.from_array(np.array([[1, 1, 1, 1], [1, 1, 0, 0]], dtype=np.int32), "mask"),
              numpy_helper.from_array(np.array([HIDDEN] * 3, dtype=np.int64), "sizes")]
    nodes = _attention_nodes(fused) + [
        helper.make_node("MatMul", ["ctx", "w_out"], ["proj"]),
        helper.make_node("SkipLayerNormalization", ["proj", "x", "gamma", "beta", "b_out"], ["y"], domain=MS,
                         epsilon=1e-5)]
    graph = helper.make_graph(nodes, "layer", [helper.make_tensor_value_info("x", elem_type, [B, S, HIDDEN])],
                              [helper.make_tensor_value_info("y", elem_type, [B, S, HIDDEN])], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(MS, 1)])
    model.ir_version = 8
    return model


def _check_layer(fused: str, elem_type: int = TensorProto.FLOAT) -> None:
    model = _layer(fused, elem_type)
    report = ranum.check(model, {"inputs": {"x": [-2.0, 2.0]}, "weights": {"default": "exact"}})
    assert not report.unsupported_ops, report.unsupported_nodes
    assert not report.findings, report.findings
    lo, hi = report.analysis.bounds("y")
    assert np.isfinite(lo).all() and np.isfinite(hi).all()
    ctx_lo, ctx_hi = report.analysis.bounds("ctx")
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(1)
    samples = [np.full((B, S, HIDDEN), -2.0), np.full((B, S, HIDDEN), 2.0)]
    samples += [rng.uniform(-2.0, 2.0, (B, S, HIDDEN)) for _ in range(6)]
    for x in samples:
        (y,) = session.run(None, {"x": x.astype(helper.tensor_dtype_to_np_dtype(elem_type))})
        assert np.isfinite(y).all() and (lo <= y).all() and (y <= hi).all()
    assert np.isfinite(ctx_lo).all() and np.isfinite(ctx_hi).all()


def test_bert_layer_with_fused_attention_is_analysed_and_contains_onnxruntime() -> None:
    _check_layer("Attention")


def test_bert_layer_with_multi_head_attention_is_analysed_and_contains_onnxruntime() -> None:
    _check_layer("MultiHeadAttention")


def test_float16_bert_layer_with_fused_attention_is_analysed_and_contains_onnxruntime() -> None:
    _check_layer("Attention", TensorProto.FLOAT16)  # onnxruntime's float16 conversion of an optimised model


def test_float16_bert_layer_with_multi_head_attention_is_analysed_and_contains_onnxruntime() -> None:
    _check_layer("MultiHeadAttention", TensorProto.FLOAT16)  # the float32 kernel's result, rounded once


def test_float16_multi_head_attention_rounds_the_float32_result_once() -> None:
    """What the float16 rule models, measured: without a bias input, onnxruntime's float16 output is its
    float32 kernel's output rounded to float16, bit for bit (scores, attention bias and softmax are not
    rounded to float16 first). With a bias input some elements differ by an ulp (the bias sums round
    otherwise); the bounds round those sums outward to float16, which covers either."""
    def model(elem_type: int) -> onnx.ModelProto:
        names = [helper.make_tensor_value_info(n, elem_type, [B, S, HIDDEN]) for n in ("q", "k", "v")]
        names.append(helper.make_tensor_value_info("ab", elem_type, [1, HEADS, S, S]))
        node = helper.make_node("MultiHeadAttention", ["q", "k", "v", "", "", "ab"], ["y"], domain=MS,
                                num_heads=HEADS)
        graph = helper.make_graph([node], "g", names, [helper.make_tensor_value_info("y", elem_type, [B, S, HIDDEN])])
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(MS, 1)])

    half, single = (ort.InferenceSession(model(t).SerializeToString(), providers=["CPUExecutionProvider"])
                    for t in (TensorProto.FLOAT16, TensorProto.FLOAT))
    rng = np.random.default_rng(3)
    for _ in range(5):
        feeds = {n: rng.uniform(-4, 4, (B, S, HIDDEN)).astype(np.float16) for n in ("q", "k", "v")}
        feeds["ab"] = rng.uniform(-2, 2, (1, HEADS, S, S)).astype(np.float16)
        (y16,) = half.run(None, feeds)
        (y32,) = single.run(None, {n: v.astype(np.float32) for n, v in feeds.items()})
        np.testing.assert_array_equal(y16, y32.astype(np.float16))


def test_past_key_value_is_rejected_with_a_reason() -> None:
    q = helper.make_tensor_value_info("q", TensorProto.FLOAT, [1, 2, HIDDEN])
    past = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, HEADS, 3, HIDDEN // HEADS]) for n in ("pk", "pv")]
    node = helper.make_node("MultiHeadAttention", ["q", "q", "q", "", "", "", "pk", "pv"], ["y"], domain=MS,
                            num_heads=HEADS)
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, HIDDEN])
    graph = helper.make_graph([node], "g", [q, *past], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(MS, 1)])
    model.ir_version = 8
    report = ranum.check(model, {"inputs": {"q": [-1.0, 1.0], "pk": [-1.0, 1.0], "pv": [-1.0, 1.0]}})
    assert "MultiHeadAttention" in report.unsupported_ops
    assert "past key/value" in " ".join(report.unsupported_nodes.values())


def test_overflowing_scores_are_a_finding_and_moderate_ones_are_not() -> None:
    shapes = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 3, HIDDEN]) for n in ("q", "k", "v")]
    node = helper.make_node("MultiHeadAttention", ["q", "k", "v"], ["y"], domain=MS, num_heads=HEADS)
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, HIDDEN])
    graph = helper.make_graph([node], "g", shapes, [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(MS, 1)])
    model.ir_version = 8
    huge = ranum.check(model, {"inputs": {"q": [1e19, 3e19], "k": [1e19, 3e19], "v": [-1.0, 1.0]}})
    assert "attention-infinite-score" in {f.hazard_id for f in huge.findings}, huge.findings
    moderate = ranum.check(model, {"inputs": {"q": [-3.0, 3.0], "k": [-3.0, 3.0], "v": [-1.0, 1.0]}})
    assert not moderate.findings and not moderate.unsupported_ops
    lo, hi = moderate.analysis.bounds("y")
    assert (lo >= -1.01).all() and (hi <= 1.01).all()  # inside V's hull
