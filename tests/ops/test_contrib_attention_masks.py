"""Fully masked rows of onnxruntime's contrib attention kernels (com.microsoft MultiHeadAttention, Attention,
QAttention, GroupQueryAttention): unlike the ONNX Attention of opset 23, these take the softmax of every row, so
a row whose biased scores are all -inf (an attention bias or mask_filter_value of -inf, or a sum that
overflows) is NaN in onnxruntime and must be a finding; GroupQueryAttention writing present key/value outputs
0 for a row whose scores are all at most the lowest value, which the bounds must hold; ordinary masks stay
silent; a unidirectional kernel's causal keys get float32's lowest value (not mask_filter_value), which keeps
rows finite whose other keys are padded with -inf."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

import ranum
from ranum.graph.loader import load_model
from ranum.interpret import run_concrete
from ranum.ops.registry import REGISTRY

MS = "com.microsoft"
F = TensorProto.FLOAT
LOWEST = float(np.finfo(np.float32).min)
B, S, L, HIDDEN, HEADS = 1, 2, 3, 4, 2
SCORE = "attention-infinite-score"


def _model(node: onnx.NodeProto, inputs: dict[str, list[int]], inits: dict[str, np.ndarray],
           outputs: tuple[str, ...] = ("y",)) -> onnx.ModelProto:
    infos = [helper.make_tensor_value_info(n, F, shape) for n, shape in inputs.items()]
    graph = helper.make_graph([node], "g", infos, [helper.make_empty_tensor_value_info(o) for o in outputs],
                              initializer=[numpy_helper.from_array(v, k) for k, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(MS, 1)])
    model.ir_version = 8
    return model


def _session(model: onnx.ModelProto) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def _hazards(model: onnx.ModelProto, ranges: dict) -> set[str]:
    report = ranum.check(model, {"inputs": ranges, "weights": {"default": "exact"}})
    assert not report.unsupported_ops, report.unsupported_nodes
    return {f.hazard_id for f in report.findings}


def _mha(mask_filter_value: float = -10000.0, mask: np.ndarray | None = None,
         bias: np.ndarray | None = None) -> onnx.ModelProto:
    inits = {} if mask is None else {"mask": mask}
    if bias is not None:
        inits["bias"] = bias
    node = helper.make_node("MultiHeadAttention", ["q", "k", "v", "", "" if mask is None else "mask",
                                                   "" if bias is None else "bias"], ["y"], domain=MS,
                            num_heads=HEADS, mask_filter_value=mask_filter_value)
    return _model(node, {"q": [B, S, HIDDEN], "k": [B, L, HIDDEN], "v": [B, L, HIDDEN]}, inits)


def _ms_attention(mask_filter_value: float = -10000.0, mask: np.ndarray | None = None,
                  bias: np.ndarray | None = None) -> onnx.ModelProto:
    inits = {"w": np.random.default_rng(1).uniform(-1, 1, (HIDDEN, 3 * HIDDEN)).astype(np.float32)}
    names = ["x", "w", "", "", "", ""]
    if mask is not None:
        inits["mask"], names[3] = mask, "mask"
    if bias is not None:
        inits["bias"], names[5] = bias, "bias"
    node = helper.make_node("Attention", names, ["y"], domain=MS, num_heads=HEADS,
                            mask_filter_value=mask_filter_value)
    return _model(node, {"x": [B, S, HIDDEN]}, inits)


QKV = {"q": [-3.0, 3.0], "k": [-3.0, 3.0], "v": [-2.0, 2.0]}
HUGE = {"q": [-1e17, 1e17], "k": [-1e17, 1e17], "v": [-2.0, 2.0]}  # scores down to about -1e34


def _nan_in_onnxruntime(model: onnx.ModelProto, feeds: dict) -> bool:
    return bool(np.isnan(_session(model).run(["y"], feeds)[0]).any())


def _feeds(model: onnx.ModelProto, q: float | None = None, k: float | None = None) -> dict:
    rng = np.random.default_rng(0)
    feeds = {}
    for info in model.graph.input:
        shape = [d.dim_value for d in info.type.tensor_type.shape.dim]
        feeds[info.name] = rng.uniform(-1.0, 1.0, shape).astype(np.float32)
    if q is not None:
        feeds["q"][:], feeds["k"][:] = q, k
    return feeds


def _bias_row(fill: float, keys: int = L) -> np.ndarray:
    bias = np.zeros((1, HEADS, S, keys), np.float32)
    bias[0, 0, 0, :] = fill
    return bias


# ------------------------------------------------------------------------------ attention_bias rows
def test_a_bias_row_of_minus_inf_is_a_finding_of_multi_head_attention_and_attention() -> None:
    mha = _mha(bias=_bias_row(-np.inf))
    assert _nan_in_onnxruntime(mha, _feeds(mha))
    assert SCORE in _hazards(mha, QKV)
    attention = _ms_attention(bias=_bias_row(-np.inf, keys=S))
    assert _nan_in_onnxruntime(attention, _feeds(attention))
    assert SCORE in _hazards(attention, {"x": [-3.0, 3.0]})


def test_a_bias_row_of_the_lowest_value_is_a_finding_only_where_the_sum_can_overflow() -> None:
    mha = _mha(bias=_bias_row(LOWEST))
    assert not _nan_in_onnxruntime(mha, _feeds(mha))  # softmax of the shifted scores: finite
    assert SCORE not in _hazards(mha, QKV)
    assert _nan_in_onnxruntime(mha, _feeds(mha, q=1e17, k=-1e17))  # LOWEST + -1e34 overflows to -inf
    assert SCORE in _hazards(mha, HUGE)


# ------------------------------------------------------------------------------ key padding masks
@pytest.mark.parametrize("mask", [np.zeros((B,), np.int32), np.zeros((B, L), np.int32)], ids=["lengths", "2d"])
def test_an_all_padded_row_with_a_filter_value_of_minus_inf_is_a_finding(mask: np.ndarray) -> None:
    model = _mha(-np.inf, mask)
    assert _nan_in_onnxruntime(model, _feeds(model))
    assert SCORE in _hazards(model, QKV)


def test_an_all_padded_row_of_attention_with_a_filter_value_of_minus_inf_is_a_finding() -> None:
    model = _ms_attention(-np.inf, np.zeros((B, S), np.int32))
    assert _nan_in_onnxruntime(model, _feeds(model))
    assert SCORE in _hazards(model, {"x": [-3.0, 3.0]})


def test_a_lowest_filter_value_is_a_finding_only_where_the_sum_can_overflow() -> None:
    model = _mha(LOWEST, np.zeros((B, L), np.int32))
    assert not _nan_in_onnxruntime(model, _feeds(model))
    assert SCORE not in _hazards(model, QKV)
    assert _nan_in_onnxruntime(model, _feeds(model, q=1e17, k=-1e17))
    assert SCORE in _hazards(model, HUGE)


def test_a_row_keeping_a_key_is_silent_whatever_the_filter_value() -> None:
    kept = np.array([[1, 0, 0]], np.int32)
    assert not _hazards(_mha(-np.inf, kept), QKV)
    assert not _hazards(_mha(-np.inf, np.array([1], np.int32)), QKV)
    assert not _hazards(_mha(mask=np.zeros((B, L), np.int32)), QKV)  # the default -10000: finite


def test_a_mask_input_that_can_be_all_zero_is_a_finding_with_minus_inf_only() -> None:
    def with_mask_input(mask_filter_value: float) -> onnx.ModelProto:
        node = helper.make_node("MultiHeadAttention", ["q", "k", "v", "", "mask"], ["y"], domain=MS,
                                num_heads=HEADS, mask_filter_value=mask_filter_value)
        model = _model(node, {"q": [B, S, HIDDEN], "k": [B, L, HIDDEN], "v": [B, L, HIDDEN]}, {})
        model.graph.input.append(helper.make_tensor_value_info("mask", TensorProto.INT32, [B, L]))
        return model

    assert SCORE in _hazards(with_mask_input(-np.inf), {**QKV, "mask": [0, 1]})
    assert not _hazards(with_mask_input(-np.inf), {**QKV, "mask": [1, 1]})
    assert not _hazards(with_mask_input(-10000.0), {**QKV, "mask": [0, 1]})


def test_q_attention_with_no_key_and_a_filter_value_of_minus_inf_is_a_finding() -> None:
    rng = np.random.default_rng(0)
    inits = {"w": rng.integers(0, 255, (HIDDEN, 3 * HIDDEN)).astype(np.uint8), "b": np.zeros(3 * HIDDEN, np.float32),
             "xs": np.array(0.02, np.float32), "ws": np.array(0.01, np.float32), "mask": np.zeros((B,), np.int32),
             "xzp": np.array(128, np.uint8), "wzp": np.array(128, np.uint8)}
    node = helper.make_node("QAttention", ["x", "w", "b", "xs", "ws", "mask", "xzp", "wzp"], ["y"], domain=MS,
                            num_heads=HEADS, mask_filter_value=-np.inf)
    model = _model(node, {}, inits)
    model.graph.input.append(helper.make_tensor_value_info("x", TensorProto.UINT8, [B, S, HIDDEN]))
    x = rng.integers(0, 255, (B, S, HIDDEN)).astype(np.uint8)
    assert _nan_in_onnxruntime(model, {"x": x})
    assert SCORE in _hazards(model, {"x": [0, 255]})


def test_the_concrete_hazard_fires_where_onnxruntime_gives_nan() -> None:
    model = _mha(-np.inf, np.zeros((B,), np.int32))
    graph, _ = load_model(model)
    rule = REGISTRY.instantiate(graph.nodes[0], 17)
    feeds = _feeds(model)
    inputs = [torch.from_numpy(feeds[n]) for n in ("q", "k", "v")] + [None, torch.zeros(B, dtype=torch.int32)]
    assert bool(rule.hazards[0].triggered(inputs, []).any())
    inputs[4] = torch.full((B,), L, dtype=torch.int32)
    assert not bool(rule.hazards[0].triggered(inputs, []).any())


def test_a_negative_mask_entry_masks_its_key_as_in_onnxruntime() -> None:
    model = _mha(-np.inf, np.array([[1, -1, 1]], np.int32))
    feeds = _feeds(model)
    (expected,) = _session(model).run(["y"], feeds)
    graph, _ = load_model(model)
    got = run_concrete(graph, {k: torch.from_numpy(v) for k, v in feeds.items()}).values["y"]
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------------------ GroupQueryAttention
GQ_HEADS, GQ_KV, GQ_D, GQ_S = 2, 1, 8, 3


def _gqa(fill: float, present: bool) -> onnx.ModelProto:
    """A prompt whose query row 1 has an attention bias of ``fill`` on every key."""
    bias = np.zeros((1, 1, GQ_S, GQ_S), np.float32)
    bias[0, 0, 1, :] = fill
    outputs = ("y", "pk", "pv") if present else ("y",)
    node = helper.make_node("GroupQueryAttention", ["q", "k", "v", "", "", "sk", "tsl", "", "", "", "bias"],
                            list(outputs), domain=MS, num_heads=GQ_HEADS, kv_num_heads=GQ_KV)
    inits = {"sk": np.array([GQ_S - 1], np.int32), "tsl": np.array([GQ_S], np.int32), "bias": bias}
    shapes = {"q": [1, GQ_S, GQ_HEADS * GQ_D], "k": [1, GQ_S, GQ_KV * GQ_D], "v": [1, GQ_S, GQ_KV * GQ_D]}
    return _model(node, shapes, inits, outputs)


GQ_RANGES = {"q": [-3.0, 3.0], "k": [-3.0, 3.0], "v": [1.0, 2.0]}


def _gqa_feeds() -> dict:
    rng = np.random.default_rng(0)
    return {"q": rng.uniform(-3, 3, (1, GQ_S, GQ_HEADS * GQ_D)).astype(np.float32),
            "k": rng.uniform(-3, 3, (1, GQ_S, GQ_KV * GQ_D)).astype(np.float32),
            "v": rng.uniform(1, 2, (1, GQ_S, GQ_KV * GQ_D)).astype(np.float32)}


def test_group_query_bias_row_of_minus_inf_without_present_outputs_is_a_finding() -> None:
    model = _gqa(-np.inf, present=False)
    assert _nan_in_onnxruntime(model, _gqa_feeds())
    assert SCORE in _hazards(model, GQ_RANGES)


@pytest.mark.parametrize("fill", [-np.inf, LOWEST], ids=["minus_inf", "lowest"])
def test_group_query_rows_at_the_lowest_value_are_zero_with_present_outputs(fill: float) -> None:
    model = _gqa(fill, present=True)
    (y,) = _session(model).run(["y"], _gqa_feeds())
    assert (y[0, 1] == 0).all()
    report = ranum.check(model, {"inputs": GQ_RANGES})
    assert not report.findings and not report.unsupported_ops
    lo, hi = report.analysis.bounds("y")
    assert ((lo <= y) & (y <= hi)).all()
    assert (lo[0, 0] >= 0.99).all()  # the other rows keep V's hull
    graph, _ = load_model(model)
    got = run_concrete(graph, {k: torch.from_numpy(v) for k, v in _gqa_feeds().items()}).values["y"]
    np.testing.assert_allclose(got.numpy(), y, rtol=1e-5, atol=1e-6)


def test_group_query_lowest_bias_row_without_present_outputs_is_the_softmax() -> None:
    model = _gqa(LOWEST, present=False)
    (y,) = _session(model).run(["y"], _gqa_feeds())
    assert np.isfinite(y).all()
    report = ranum.check(model, {"inputs": GQ_RANGES})
    assert not report.findings
    lo, hi = report.analysis.bounds("y")
    assert ((lo <= y) & (y <= hi)).all()


def test_group_query_past_without_present_outputs_is_rejected_with_a_reason() -> None:
    node = helper.make_node("GroupQueryAttention", ["q", "k", "v", "pk", "pv", "sk", "tsl"], ["y"], domain=MS,
                            num_heads=GQ_HEADS, kv_num_heads=GQ_KV)
    past = [1, GQ_KV, 3, GQ_D]
    model = _model(node, {"q": [1, 1, GQ_HEADS * GQ_D], "k": [1, 1, GQ_KV * GQ_D], "v": [1, 1, GQ_KV * GQ_D],
                          "pk": past, "pv": past}, {"sk": np.array([3], np.int32), "tsl": np.array([4], np.int32)})
    report = ranum.check(model, {"inputs": {n: [-1.0, 1.0] for n in ("q", "k", "v", "pk", "pv")}})
    assert "GroupQueryAttention" in report.unsupported_ops
    assert "without present_key/present_value" in " ".join(report.unsupported_nodes.values())


# ------------------------------------------------------------------------------ unidirectional (causal) masks
def _causal_model(op: str, mask_filter_value: float, mask: np.ndarray | None = None,
                  elem_type: int = F) -> onnx.ModelProto:
    """MultiHeadAttention (S=2 queries, L=3 keys) or Attention (S=L=2) with ``unidirectional=1``."""
    mask_name = "" if mask is None else "mask"
    inits = {} if mask is None else {"mask": mask}
    if op == "MultiHeadAttention":
        names = ["q", "k", "v", "", mask_name]
        shapes = {"q": [B, S, HIDDEN], "k": [B, L, HIDDEN], "v": [B, L, HIDDEN]}
    else:
        weights = np.random.default_rng(1).uniform(-1, 1, (HIDDEN, 3 * HIDDEN))
        inits["w"] = weights.astype(helper.tensor_dtype_to_np_dtype(elem_type))
        names, shapes = ["x", "w", "", mask_name], {"x": [B, S, HIDDEN]}
    node = helper.make_node(op, names, ["y"], domain=MS, num_heads=HEADS, unidirectional=1,
                            mask_filter_value=mask_filter_value)
    model = _model(node, shapes, inits)
    for info in model.graph.input:
        info.type.tensor_type.elem_type = elem_type
    return model


def _causal_ranges(op: str) -> dict:
    return QKV if op == "MultiHeadAttention" else {"x": [-3.0, 3.0]}


def _first_key_padded(op: str) -> np.ndarray:
    return np.array([[0] + [1] * ((L if op == "MultiHeadAttention" else S) - 1)], np.int32)


def _run_both(model: onnx.ModelProto, feeds: dict) -> tuple[np.ndarray, np.ndarray]:
    """(onnxruntime's Y, the concrete interpreter's Y)."""
    (expected,) = _session(model).run(["y"], feeds)
    graph, _ = load_model(model)
    got = run_concrete(graph, {k: torch.from_numpy(v) for k, v in feeds.items()}).values["y"]
    return expected, got.numpy()


OPS = ["MultiHeadAttention", "Attention"]


@pytest.mark.parametrize("elem_type", [F, TensorProto.FLOAT16], ids=["float32", "float16"])
@pytest.mark.parametrize("op", OPS)
def test_a_causal_row_whose_unmasked_keys_are_padded_with_minus_inf_is_silent(op: str, elem_type: int) -> None:
    """onnxruntime's causal keys get float32's lowest value (not mask_filter_value), so query row 0, whose only
    key before the diagonal is padded with -inf, attends to its causal keys: finite, no finding."""
    model = _causal_model(op, -np.inf, _first_key_padded(op), elem_type)
    feeds = {n: v.astype(helper.tensor_dtype_to_np_dtype(elem_type)) for n, v in _feeds(model).items()}
    (y,) = _session(model).run(["y"], feeds)
    assert np.isfinite(y).all()
    assert SCORE not in _hazards(model, _causal_ranges(op))
    assert SCORE not in _hazards(_causal_model(op, -np.inf, elem_type=elem_type), _causal_ranges(op))


def test_a_causal_score_that_overflows_to_minus_inf_is_a_finding() -> None:
    """A causal key's score plus float32's lowest value is -inf below about -2e31: with the key before the
    diagonal padded with -inf, row 0 is then NaN in onnxruntime."""
    model = _causal_model("MultiHeadAttention", -np.inf, _first_key_padded("MultiHeadAttention"))
    assert not _nan_in_onnxruntime(model, _feeds(model))
    assert _nan_in_onnxruntime(model, _feeds(model, q=1e17, k=-1e17))
    assert SCORE not in _hazards(model, QKV)
    assert SCORE in _hazards(model, HUGE)


MASKS = {"none": None, "2d": np.array([[1, 0, 1]], np.int32), "lengths": np.array([1], np.int32)}


@pytest.mark.parametrize("mask", list(MASKS), ids=list(MASKS))
@pytest.mark.parametrize("op", OPS)
def test_the_concrete_rule_matches_onnxruntime_on_unidirectional_graphs(op: str, mask: str) -> None:
    """Whatever mask_filter_value is (it never reaches a causal key), padded or not."""
    keys = L if op == "MultiHeadAttention" else S
    padding = None if MASKS[mask] is None else MASKS[mask][..., :keys]
    for filter_value in (-10000.0, -1.0, -np.inf):
        model = _causal_model(op, filter_value, padding)
        feeds = {n: v * 3 for n, v in _feeds(model).items()}
        expected, got = _run_both(model, feeds)
        assert np.isfinite(expected).all()
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6, err_msg=f"mask_filter_value {filter_value}")


def test_float16_causal_rows_match_onnxruntime() -> None:
    """The float16 kernel adds the same float32 lowest value (its sums are float32), the output rounded once."""
    model = _causal_model("MultiHeadAttention", -1.0, MASKS["2d"], TensorProto.FLOAT16)
    feeds = {n: v.astype(np.float16) for n, v in _feeds(model).items()}
    expected, got = _run_both(model, feeds)
    np.testing.assert_allclose(got.astype(np.float32), expected.astype(np.float32), rtol=0,
                               atol=float(np.finfo(np.float16).eps))


@pytest.mark.parametrize("op", OPS)
def test_a_last_row_padded_with_minus_inf_everywhere_is_the_finding_and_only_it(op: str) -> None:
    """All keys padded with -inf: the causal keys keep every row but the last (which has none) finite, and the
    last row is NaN in onnxruntime; the hazard's concrete check flags exactly that row."""
    keys = L if op == "MultiHeadAttention" else S
    model = _causal_model(op, -np.inf, np.zeros((B, keys), np.int32))
    feeds = _feeds(model)
    (y,) = _session(model).run(["y"], feeds)
    nan_rows = np.isnan(y).any(-1)
    assert nan_rows.tolist() == [[False] * (S - 1) + [True]]
    assert SCORE in _hazards(model, _causal_ranges(op))
    graph, _ = load_model(model)
    rule = REGISTRY.instantiate(graph.nodes[0], 17)
    flagged = rule.hazards[0].triggered(_node_inputs(model, feeds), [])  # (B, heads, S, 1)
    assert flagged.any(1).squeeze(-1).tolist() == nan_rows.tolist()


def _node_inputs(model: onnx.ModelProto, feeds: dict) -> list[torch.Tensor | None]:
    """The node's input tensors: fed, initializers, None where omitted."""
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    values = {**inits, **feeds}
    return [torch.from_numpy(np.array(values[n])) if n else None for n in model.graph.node[0].input]
