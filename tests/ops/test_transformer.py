"""Attention, RMSNormalization, RotaryEmbedding beyond the generic harness: the onnx wheel's node cases
(opset 23-25, outside the window test_onnx_node_cases.py collects), models exported from PyTorch with
``dynamo=True, opset_version=23`` checked against onnxruntime, fully masked rows (a zero row, no finding),
and precision."""

from __future__ import annotations

import warnings

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper

import ranum
from ranum.domain.interval import Interval
from ranum.errors import UnsupportedOperator
from ranum.graph.loader import load_model
from ranum.interpret import run_abstract, run_concrete
from tests.ops.node_runs import node_cases
from tests.ops.test_onnx_node_cases import SUPPORTED_INPUT_TYPES
from tests.ops.test_onnx_node_cases import test_concrete_and_abstract_match_onnx_reference as check_node_case

FUSED = ("Attention", "RMSNormalization", "RotaryEmbedding")
NODE_CASES = node_cases(FUSED, types=SUPPORTED_INPUT_TYPES)


def test_the_onnx_wheel_has_fused_transformer_node_cases() -> None:
    assert len(NODE_CASES) >= 80


@pytest.mark.parametrize(("model", "inputs", "outputs"), NODE_CASES)
def test_onnx_node_cases(model: onnx.ModelProto, inputs, outputs) -> None:
    if any(np.asarray(a).dtype == np.float16 for a in outputs):
        _check_float16_node_case(model, inputs, outputs)
    else:
        check_node_case(model, inputs, outputs)


def _check_float16_node_case(model: onnx.ModelProto, inputs, outputs) -> None:
    """The generic node check at float16's tolerance: the reference rounds float16 intermediates
    differently from onnxruntime, whose semantics the rules follow (an ulp or two apart)."""
    graph, _ = load_model(model)
    names = [i.name for i in model.graph.input]
    feeds = {n: torch.from_numpy(np.array(a)) for n, a in zip(names, inputs)}
    try:
        values = run_concrete(graph, feeds).values
    except UnsupportedOperator as exc:  # as the generic check does
        pytest.skip(f"attribute combination not supported (documented limitation): {exc}")
    initial = {n: Interval.point(feeds[n], i.elem_type) for n, i in zip(names, graph.inputs)}
    run = run_abstract(graph, initial)
    tolerance = 4 * float(np.finfo(np.float16).eps)
    for out, expected in zip(model.graph.output, outputs):
        expected = np.asarray(expected).astype(np.float64)
        np.testing.assert_allclose(values[out.name].double().numpy(), expected, rtol=tolerance, atol=tolerance)
        lo, hi = (t.numpy() for t in run.env[out.name].full())
        slack = tolerance * (np.abs(expected) + 1e-3)
        assert ((expected >= lo - slack) & (expected <= hi + slack)).all(), out.name


# ----------------------------------------------------------------------------- exported models
class _Block(torch.nn.Module):
    """RMSNorm, then causal self-attention and attention under a fixed key-padding mask."""

    def __init__(self, padding: torch.Tensor) -> None:
        super().__init__()
        self.norm = torch.nn.RMSNorm(8, eps=1e-6)
        self.proj = torch.nn.Linear(8, 24)
        self.register_buffer("padding", padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.proj(self.norm(x)).reshape(x.shape[0], x.shape[1], 3, 2, 4).permute(2, 0, 3, 1, 4)
        causal = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
        padded = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=self.padding)
        return causal + padded


def _export(tmp_path, padding: torch.Tensor) -> str:
    torch.manual_seed(0)
    path = str(tmp_path / "block.onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(_Block(padding).eval(), (torch.randn(2, 5, 8),), path, dynamo=True, opset_version=23)
    return path


def _padding(lengths: list[int], keys: int = 5) -> torch.Tensor:
    """(B, 1, S, T) boolean mask: True for the first ``length`` keys of each batch row (onnxruntime wants
    the query axis spelt out)."""
    allowed = torch.arange(keys).reshape(1, -1) < torch.tensor(lengths).reshape(-1, 1)
    return allowed.reshape(len(lengths), 1, 1, keys).expand(len(lengths), 1, keys, keys).contiguous()


def test_exported_block_has_no_findings_and_contains_onnxruntime(tmp_path) -> None:
    path = _export(tmp_path, _padding([5, 3]))
    ops = {n.op_type for n in onnx.load(path).graph.node}
    assert {"Attention", "RMSNormalization"} <= ops
    report = ranum.check(path, {"inputs": {"x": [-2.0, 2.0]}, "weights": {"default": "exact"}})
    assert not report.unsupported_ops, report.unsupported_nodes
    assert not report.findings, report.findings
    env = report.analysis.run.env
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    for x in (np.full((2, 5, 8), -2.0), np.full((2, 5, 8), 2.0), *(rng.uniform(-2, 2, (2, 5, 8)) for _ in range(4))):
        (y,) = session.run(None, {"x": x.astype(np.float32)})
        lo, hi = (t.numpy() for t in env[session.get_outputs()[0].name].full())
        assert np.isfinite(y).all() and (lo <= y).all() and (y <= hi).all()


def test_a_fully_masked_row_is_a_zero_row_not_a_finding(tmp_path) -> None:
    path = _export(tmp_path, _padding([5, 0]))  # the second batch row attends to no key at all
    report = ranum.check(path, {"inputs": {"x": [-2.0, 2.0]}, "weights": {"default": "exact"}})
    assert report.findings == ()
    # onnxruntime (like PyTorch and the ONNX errata to opset 23) outputs a zero row there, which the bounds hold
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(1).uniform(-2, 2, (2, 5, 8)).astype(np.float32)
    (y,) = session.run(None, {"x": x})
    lo, hi = report.analysis.bounds(session.get_outputs()[0].name)
    assert np.isfinite(y).all() and (lo <= y).all() and (y <= hi).all()


# ----------------------------------------------------------------------------- one-node models
def _attention_model(q: tuple[int, ...], k: tuple[int, ...], v: tuple[int, ...], mask: tuple[int, ...] | None,
                     mask_type: int = TensorProto.BOOL, **attrs) -> onnx.ModelProto:
    shapes = {"q": (TensorProto.FLOAT, q), "k": (TensorProto.FLOAT, k), "v": (TensorProto.FLOAT, v)}
    if mask is not None:
        shapes["m"] = (mask_type, mask)
    inputs = [helper.make_tensor_value_info(n, t, list(s)) for n, (t, s) in shapes.items()]
    node = helper.make_node("Attention", list(shapes), ["y"], **attrs)
    graph = helper.make_graph([node], "g", inputs, [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 23)])
    model.ir_version = 10
    return onnx.shape_inference.infer_shapes(model)


def _run(model: onnx.ModelProto, boxes: dict[str, tuple[float, float]], exact: dict[str, np.ndarray] | None = None):
    graph, _ = load_model(model)
    initial = {}
    for info in graph.inputs:
        if exact and info.name in exact:
            initial[info.name] = Interval.point(torch.from_numpy(exact[info.name]), info.elem_type)
        else:
            initial[info.name] = Interval.uniform(*boxes[info.name], info.shape, info.elem_type)
    return run_abstract(graph, initial)


def test_output_stays_within_the_range_of_v_when_scores_are_huge() -> None:
    """Q and K up to 1e3 give scores up to 1e7: the output is still a convex combination of V's rows."""
    model = _attention_model((1, 2, 4, 8), (1, 2, 6, 8), (1, 2, 6, 4), None, is_causal=1)
    run = _run(model, {"q": (-1e3, 1e3), "k": (-1e3, 1e3), "v": (-0.5, 2.0)})
    y = run.env["y"]
    slack = 128 * torch.finfo(torch.float32).eps  # the weights' sum and the accumulation, a few eps per term
    assert -0.5 * (1 + slack) <= y.min() <= -0.5 and 2.0 <= y.max() <= 2.0 * (1 + slack)
    from ranum.detect import find_hazards

    assert not find_hazards(run)


def test_possibly_masked_row_joins_zero_and_is_not_a_finding() -> None:
    model = _attention_model((1, 1, 3, 4), (1, 1, 5, 4), (1, 1, 5, 2), (3, 5))
    run = _run(model, {"q": (-1.0, 1.0), "k": (-1.0, 1.0), "v": (1.0, 2.0), "m": (0, 1)})
    assert run.env["y"].min() == 0.0 and run.env["y"].max() <= 2.0 * (1 + 1e-5)
    from ranum.detect import find_hazards

    assert find_hazards(run) == []


def test_point_inputs_give_a_tight_result() -> None:
    model = _attention_model((1, 2, 3, 4), (1, 2, 3, 4), (1, 2, 3, 4), (3, 3), mask_type=TensorProto.FLOAT)
    rng = np.random.default_rng(2)
    feeds = {n: rng.standard_normal(s).astype(np.float32) for n, s in
             (("q", (1, 2, 3, 4)), ("k", (1, 2, 3, 4)), ("v", (1, 2, 3, 4)), ("m", (3, 3)))}
    run = _run(model, {}, exact=feeds)
    lo, hi = (t.numpy() for t in run.env["y"].full())
    (y,) = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)
    assert (lo <= y).all() and (y <= hi).all() and (hi - lo).max() < 1e-4


def test_overflowing_scores_are_reported() -> None:
    model = _attention_model((1, 1, 2, 4), (1, 1, 2, 4), (1, 1, 2, 2), None, scale=1.0)
    run = _run(model, {"q": (-1e20, 1e20), "k": (-1e20, 1e20), "v": (-1.0, 1.0)})
    from ranum.detect import find_hazards

    assert "attention-infinite-score" in [f.hazard_id for f in find_hazards(run)]
    big = np.full((1, 1, 2, 4), 1e20, np.float32)
    (y,) = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        None, {"q": big, "k": big, "v": np.ones((1, 1, 2, 2), np.float32)})
    assert np.isnan(y).all()  # the hazard is real: +inf scores make the softmax NaN


def test_rms_normalization_bound_and_zero_slice() -> None:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 16])
    s = helper.make_tensor_value_info("s", TensorProto.FLOAT, [16])
    for epsilon, reported in ((1e-6, False), (0.0, True)):
        node = helper.make_node("RMSNormalization", ["x", "s"], ["y"], epsilon=epsilon)
        graph = helper.make_graph([node], "g", [x, s], [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
        model = onnx.shape_inference.infer_shapes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 23)]))
        run = _run(model, {"x": (-1.0, 1.0), "s": (-2.0, 2.0)})
        from ranum.detect import find_hazards

        assert ("rms-normalization-zero" in [f.hazard_id for f in find_hazards(run)]) == reported
        if not reported:  # |y| <= sqrt(16) * 2, up to rounding
            assert -8.0 * (1 + 1e-5) <= run.env["y"].min() and run.env["y"].max() <= 8.0 * (1 + 1e-5)


def test_rotary_embedding_keeps_the_pair_norm() -> None:
    """With |cos|, |sin| <= 1 and |x| <= 1: |out| <= sqrt(2) sqrt(2) = 2 by Cauchy-Schwarz, not |x1| + |x2| = 2
    either; with caches of a real rotation the norm bound is what keeps it below |x1| + |x2|."""
    angles = torch.arange(8, dtype=torch.float64).reshape(4, 2) * 0.3
    cos, sin = torch.cos(angles).float().numpy(), torch.sin(angles).float().numpy()
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 4, 4])
    inits = [onnx.numpy_helper.from_array(cos, "c"), onnx.numpy_helper.from_array(sin, "s"),
             onnx.numpy_helper.from_array(np.arange(4, dtype=np.int64).reshape(1, 4), "p")]
    node = helper.make_node("RotaryEmbedding", ["x", "c", "s", "p"], ["y"])
    graph = helper.make_graph([node], "g", [x], [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              initializer=inits)
    model = onnx.shape_inference.infer_shapes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 23)]))
    graph_, _ = load_model(model)
    initial = {"x": Interval.uniform(-1.0, 1.0, (1, 1, 4, 4), TensorProto.FLOAT)}
    for name, proto in graph_.initializers.items():
        initial[name] = Interval.point(torch.from_numpy(onnx.numpy_helper.to_array(proto).copy()), proto.data_type)
    y = run_abstract(graph_, initial).env["y"]
    norm = float(np.sqrt(2.0)) * float(np.sqrt((cos.astype(np.float64) ** 2 + sin.astype(np.float64) ** 2).max()))
    assert y.max() <= norm * (1 + 1e-5) and y.min() >= -norm * (1 + 1e-5)
