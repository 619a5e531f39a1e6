"""MatMulIntegerToFloat, DynamicQuantizeMatMul, QAttention and QEmbedLayerNormalization against onnxruntime (cases
for the generic soundness tests, which also check QAttention's and QEmbedLayerNormalization's agreement, are in
cases_contrib_dynamic_quantized.py).

* Exact operands: the concrete rule equals onnxruntime bit for bit (per-tensor and per-column scales, biases,
  batched A and B, sums past 2**24 where the int32 to float32 conversion rounds, scales applied to the output),
  DynamicQuantizeMatMul also for all-zero, constant, subnormal and huge A; the abstract result of the exact
  operands holds onnxruntime's value, within a few float32 roundings where no int16 pair saturation can occur.
* Ranges: DynamicQuantizeMatMul's bounds are a float MatMul's on the dequantized weight widened by half a
  quantization step per term; MatMulIntegerToFloat fed by DynamicQuantizeLinear gets the same bounds (read from
  the quantizer's input), QAttention's projection likewise; A's scale overflowing is reported.
* The pair-saturation bound holds for simulated ``vpmaddubsw`` pairings and is never looser than MatMulInteger's.
* A float MLP (and one whose input feeds two MatMuls), and a fused BERT layer (EmbedLayerNormalization ->
  Attention -> MatMul), through ``quantize_dynamic`` and onnxruntime's extended optimisation: every operator has a
  rule, and onnxruntime's tensors lie inside the bounds.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

import ranum
from ranum.domain.interval import Interval
from ranum.errors import UnsupportedOperator
from ranum.graph.loader import load_model
from ranum.interpret import run_abstract
from ranum.ops.contrib_dynamic_quantized import _output_shape, _pair_saturation, scale_roles
from ranum.ops.quantized import _saturation
from tests.ops.harness import exact_operands_run
from tests.zoo.runtime import SAMPLE_MODES, Runner, check_sample, sample_feeds

MS = "com.microsoft"
F32 = np.float32
EXACT = {"weights": {"default": "exact"}}


# ------------------------------------------------------------------------------ helpers
def _model(op: str, data: dict[str, np.ndarray], params: dict[str, np.ndarray | None], order: list[str],
           shape: tuple[int, ...] | None = None) -> onnx.ModelProto:
    """One node: ``data`` are graph inputs, ``params`` initializers (None: an absent optional input, named ""); the
    output has ``shape``, or the shape onnxruntime computes (onnx's shape inference does not know these operators)."""
    inputs = [helper.make_tensor_value_info(k, helper.np_dtype_to_tensor_dtype(v.dtype), list(v.shape))
              for k, v in data.items()]
    inits = [numpy_helper.from_array(np.asarray(v), k) for k, v in params.items() if v is not None]
    names = [name if name in data or params.get(name) is not None else "" for name in order]
    node = helper.make_node(op, names, ["y"], domain=MS)
    graph = helper.make_graph([node], "g", inputs, [helper.make_empty_tensor_value_info("y")], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(MS, 1)])
    model.ir_version = 8
    shape = _session(model).run(None, data)[0].shape if shape is None else shape
    model.graph.output[0].CopyFrom(helper.make_tensor_value_info("y", TensorProto.FLOAT, list(shape)))
    return model


def _session(model: onnx.ModelProto) -> ort.InferenceSession:
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def _check_exact(model: onnx.ModelProto, data: dict[str, np.ndarray], label: str, tight: bool,
                 bias: np.ndarray | None = None) -> None:
    """Concrete rule equal to onnxruntime (NaN too); onnxruntime's value inside the exact operands' bounds, and
    where ``tight`` within a few float32 roundings of the terms (the value and a bias it may cancel)."""
    expected = _session(model).run(None, data)[0]
    got, lo, hi = exact_operands_run(model, data)
    np.testing.assert_array_equal(got, expected, err_msg=f"{label}: concrete rule")
    v = expected.astype(np.float64)
    assert (np.isnan(v) | ((lo <= v) & (v <= hi))).all(), f"{label}: onnxruntime's value outside the bounds"
    if tight:
        magnitude = np.abs(v) + (0.0 if bias is None else np.abs(bias.astype(np.float64)))
        width = (hi - lo) / (magnitude + 1e-30)
        assert width.max() <= 2e-6, f"{label}: bounds {width.max()} wider than a few roundings"


def _weights(rng: np.random.Generator, k: int, n: int, etype, per_column: bool, batch: tuple[int, ...] = (),
             spread: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    info = np.iinfo(etype)
    low, high = (info.min, info.max) if spread is None else (-spread, spread)
    if etype == np.uint8 and spread is not None:
        low, high = 128 - spread, 128 + spread
    b = rng.integers(low, high + 1, size=batch + (k, n)).astype(etype)
    shape = ((n,) if not batch else batch + (1, n)) if per_column else ()
    scale = np.exp(rng.uniform(-7, -1, size=shape)).astype(F32)
    zp = (rng.integers(-4, 5, size=shape) + (128 if etype == np.uint8 else 0)).astype(etype)
    return b, scale, zp


# ------------------------------------------------------------------------------ exact operands
CONFIGS = [
    dict(b_type=np.int8, per_column=False, bias=False),
    dict(b_type=np.int8, per_column=True, bias=True, spread=60),
    dict(b_type=np.uint8, per_column=True, bias=True, k=700),  # sums past 2**24: fl(acc) rounds
    dict(b_type=np.uint8, per_column=False, bias=True, batch_a=(2, 3)),
    dict(b_type=np.int8, per_column=True, bias=True, batch_b=(2,), spread=60),
    dict(b_type=np.int8, per_column=True, bias=False, a_type=np.int8, b_input=True, spread=60),
]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: "-".join(f"{k}={getattr(v, '__name__', v)}"
                                                                   for k, v in c.items()))
def test_matmul_integer_to_float_is_onnxruntimes_bit_for_bit(config: dict) -> None:
    rng = np.random.default_rng(0)
    a_type = config.get("a_type", np.uint8)
    k, n = config.get("k", 33), 6
    for trial in range(4):
        info = np.iinfo(a_type)
        a = rng.integers(info.min, info.max + 1, size=config.get("batch_a", ()) + (3, k)).astype(a_type)
        b, b_scale, b_zp = _weights(rng, k, n, config["b_type"], config["per_column"], config.get("batch_b", ()),
                                    config.get("spread"))
        params = {"a_scale": F32(np.exp(rng.uniform(-6, 0))), "b_scale": b_scale, "b_zp": b_zp,
                  "a_zp": a_type(rng.integers(info.min, info.max + 1)),
                  "bias": rng.normal(0, 50, n).astype(F32) if config["bias"] else None}
        data = {"a": a}
        (data if config.get("b_input") else params)["b"] = b
        model = _model("MatMulIntegerToFloat", data, params, ["a", "b", "a_scale", "b_scale", "a_zp", "b_zp", "bias"])
        saturates = config["b_type"] == np.int8 and config.get("spread") is None
        _check_exact(model, data, f"{config} trial {trial}", not saturates, params["bias"])


@pytest.mark.parametrize(("a_scale", "b_scale", "b_batch", "post"), [
    ((3, 1), (), (), (2,)),  # per-row a_scale: applied to the output
    ((6,), (), (), ()),  # swapped with the scalar b_scale: per column
    ((1, 6), (), (), ()),
    ((), (6,), (2,), (3,)),  # (N,) b_scale of a 3-D B: applied to the output
    ((), (1, 1, 6), (2,), (3,)),
    ((), (2, 1, 6), (2,), ()),
])
def test_scales_applied_as_onnxruntime_does(a_scale: tuple, b_scale: tuple, b_batch: tuple, post: tuple) -> None:
    """onnxruntime swaps the scales or applies one to the output after the bias, depending on their shapes."""
    rng = np.random.default_rng(1)
    b = rng.integers(-60, 61, size=b_batch + (16, 6)).astype(np.int8)
    assert scale_roles(a_scale, b_scale, b.shape)[1] == post
    for trial in range(3):
        a = rng.integers(0, 256, size=(2, 3, 16)).astype(np.uint8)
        params = {"b": b, "a_scale": np.exp(rng.uniform(-4, 0, a_scale)).astype(F32),
                  "b_scale": np.exp(rng.uniform(-4, 0, b_scale)).astype(F32), "a_zp": np.uint8(100),
                  "bias": rng.normal(0, 9, 6).astype(F32)}
        model = _model("MatMulIntegerToFloat", {"a": a}, params, ["a", "b", "a_scale", "b_scale", "a_zp", "", "bias"])
        _check_exact(model, {"a": a}, f"scales {a_scale} {b_scale} trial {trial}", True, params["bias"])


def _dynamic_inputs(rng: np.random.Generator) -> list[np.ndarray]:
    """Random A of many magnitudes and signs, then the edge cases of A's quantization."""
    out = []
    for trial in range(9):
        a = (rng.normal(0, 1, (2, 3, 20)) * np.exp(rng.uniform(-6, 6))).astype(F32)
        out.append(np.abs(a) if trial % 3 == 1 else -np.abs(a) if trial % 3 == 2 else a)
    edges = [np.zeros((2, 20)), np.full((2, 20), 3.5), np.full((2, 20), -0.7), np.full((2, 20), 1e-44),
             np.tile([1e-39, 2e-39, -1e-40, 0.0], (2, 5)), np.tile([0.0, -4e-43, 0.0, 1e-45], (2, 5)),
             np.tile([1e36, -2e36, 0.0, 5.0], (2, 5)), np.tile([3e38, 2e38, 1.0, -1.0], (2, 5)),
             np.tile([3e38, -3e38, 1.0, 0.0], (2, 5))]  # the last: A's scale overflows, NaN
    return out + [e.astype(F32) for e in edges]


@pytest.mark.parametrize(("b_type", "per_column", "bias", "b_batch"), [
    (np.int8, False, True, ()), (np.uint8, True, False, ()), (np.int8, True, True, (2,)), (np.uint8, False, True, (2,)),
])
def test_dynamic_quantize_matmul_is_onnxruntimes_bit_for_bit(b_type, per_column: bool, bias: bool,
                                                             b_batch: tuple) -> None:
    rng = np.random.default_rng(2)
    for i, a in enumerate(_dynamic_inputs(rng)):
        b, b_scale, b_zp = _weights(rng, a.shape[-1], 5, b_type, per_column, b_batch if a.ndim == 3 else ())
        if b_batch and a.ndim == 3 and not per_column:
            b_scale = np.exp(rng.uniform(-4, 0, (5,))).astype(F32)  # onnxruntime scales the output
        params = {"b": b, "b_scale": b_scale, "b_zp": b_zp, "bias": rng.normal(0, 1, 5).astype(F32) if bias else None}
        model = _model("DynamicQuantizeMatMul", {"a": a}, params, ["a", "b", "b_scale", "b_zp", "bias"])
        tight = b_type == np.uint8 and 1e-30 < float(np.abs(a).max()) < 1e30
        _check_exact(model, {"a": a}, f"A {i}", tight, params["bias"])


def test_overflowing_quantization_scale_is_reported() -> None:
    """A spanning float32's whole range: A's scale overflows and onnxruntime returns NaN; an overflow finding."""
    rng = np.random.default_rng(3)
    b, b_scale, b_zp = _weights(rng, 8, 3, np.int8, False)
    model = _model("DynamicQuantizeMatMul", {"a": np.zeros((2, 8), F32)}, {"b": b, "b_scale": b_scale, "b_zp": b_zp},
                   ["a", "b", "b_scale", "b_zp"])
    corners = np.tile(np.array([3e38, -3e38], F32), (2, 4))
    assert np.isnan(_session(model).run(None, {"a": corners})[0]).all()
    report = ranum.check(model, {"inputs": {"a": [-3e38, 3e38]}, **EXACT})
    assert not report.unsupported_ops
    assert any(f.op_type == "DynamicQuantizeMatMul" for f in report.findings)


# ------------------------------------------------------------------------------ ranges
def _float_reference(a_shape: tuple[int, ...], w: np.ndarray) -> onnx.ModelProto:
    graph = helper.make_graph([helper.make_node("MatMul", ["a", "w"], ["y"])], "g",
                              [helper.make_tensor_value_info("a", TensorProto.FLOAT, list(a_shape))],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [*a_shape[:-1], w.shape[1]])],
                              [numpy_helper.from_array(w.astype(F32), "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


@pytest.mark.parametrize(("low", "high"), [(-1.0, 2.0), (0.5, 3.0), (-4.0, -1.0)])
def test_bounds_are_half_a_step_from_the_float_product(low: float, high: float) -> None:
    """Per element, DynamicQuantizeMatMul's bounds lie within ``(H - L) / 510 sum |w|`` (and a few roundings) of
    a float MatMul's on the dequantized weight (B - b_zp) b_scale, and hold onnxruntime's values."""
    rng = np.random.default_rng(4)
    b, b_scale, b_zp = _weights(rng, 48, 7, np.uint8, True)
    w = (b.astype(np.float64) - b_zp) * b_scale
    model = _model("DynamicQuantizeMatMul", {"a": np.zeros((4, 48), F32)}, {"b": b, "b_scale": b_scale, "b_zp": b_zp},
                   ["a", "b", "b_scale", "b_zp"])
    spec = {"inputs": {"a": [low, high]}, **EXACT}
    lo, hi = ranum.analyze(model, spec).bounds("y")
    ref_lo, ref_hi = ranum.analyze(_float_reference((4, 48), w), spec).bounds("y")
    step = (max(high, 0) - min(low, 0)) / 510
    slack = step * np.abs(w).sum(0) * (1 + 1e-3) + 1e-5 * (np.abs(ref_lo) + np.abs(ref_hi))
    assert np.all(lo >= ref_lo - slack) and np.all(hi <= ref_hi + slack)
    session = _session(model)
    for a in [np.full((4, 48), low), np.full((4, 48), high)] + [rng.uniform(low, high, (4, 48)) for _ in range(20)]:
        y = session.run(None, {"a": a.astype(F32)})[0]
        assert np.all((lo <= y) & (y <= hi))


def _quantizer_chain(op: str, through_identity: bool) -> onnx.ModelProto:
    """DynamicQuantizeLinear(x) -> MatMulIntegerToFloat or QAttention, the quantized x optionally passed through an
    Identity (the rule then cannot see where its A, scale and zero point come from)."""
    rng = np.random.default_rng(5)
    b, b_scale, b_zp = _weights(rng, 32, 6, np.int8, True, spread=60)
    params = {"b": b, "bs": b_scale, "bz": b_zp, "bias": rng.normal(0, 0.1, 6).astype(F32)}
    nodes = [helper.make_node("DynamicQuantizeLinear", ["x"], ["q", "s", "z"])]
    a = "q"
    if through_identity:
        nodes.append(helper.make_node("Identity", ["q"], ["q2"]))
        a = "q2"
    if op == "QAttention":
        nodes.append(helper.make_node(op, [a, "b", "bias", "s", "bs", "", "z", "bz"], ["y"], domain=MS, num_heads=2))
        x_shape, y_shape = [2, 3, 32], [2, 3, 2]
    else:
        nodes.append(helper.make_node(op, [a, "b", "s", "bs", "z", "bz", "bias"], ["y"], domain=MS))
        x_shape, y_shape = [3, 32], [3, 6]
    graph = helper.make_graph(nodes, "chain", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, y_shape)],
                              [numpy_helper.from_array(v, k) for k, v in params.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(MS, 1)])
    model.ir_version = 8
    return model


@pytest.mark.parametrize("op", ["MatMulIntegerToFloat", "QAttention"])
def test_quantized_products_read_the_quantizers_input(op: str) -> None:
    """Fed by DynamicQuantizeLinear, MatMulIntegerToFloat (QAttention's projection likewise) bounds the product
    from the quantizer's input, as tight as DynamicQuantizeMatMul; the codes, scale and zero point taken apart
    give far wider bounds (an all-zero x, which the range allows, has the scale 1)."""
    spec = {"inputs": {"x": [-1.0, 1.0]}, **EXACT}
    related, apart = (ranum.analyze(_quantizer_chain(op, identity), spec) for identity in (False, True))
    (lo, hi), (lo2, hi2) = related.bounds("y"), apart.bounds("y")
    assert np.all(lo >= lo2) and np.all(hi <= hi2)
    assert np.all(hi - lo < 0.1 * (hi2 - lo2))
    chain = _quantizer_chain(op, False)
    if op == "MatMulIntegerToFloat":
        params = {t.name: numpy_helper.to_array(t) for t in chain.graph.initializer}
        fused = _model("DynamicQuantizeMatMul", {"x": np.zeros((3, 32), F32)}, params, ["x", "b", "bs", "bz", "bias"])
        np.testing.assert_allclose(ranum.analyze(fused, spec).bounds("y"), (lo, hi), rtol=1e-6)
    runner, rng = Runner(chain), np.random.default_rng(6)
    for k, mode in enumerate(SAMPLE_MODES):
        check_sample(related, runner.run(sample_feeds(related, chain, mode, rng)), f"sample {k} ({mode})")


# ------------------------------------------------------------------------------ pair saturation
def _saturated_sum(a: np.ndarray, b: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """``a @ b`` with every sum of two raw products (the terms ``pairs`` groups) clamped to int16."""
    products = a[:, pairs, None].astype(np.int64) * b[pairs, :].astype(np.int64)  # (m, pairs, 2, n)
    return np.clip(products.sum(2), -(2**15), 2**15 - 1).sum(1)


def test_pair_saturation_bound_covers_every_pairing() -> None:
    """Simulated ``vpmaddubsw`` (consecutive and shuffled pairs): the saturated sum minus the exact one lies in
    the bound, which is never looser than MatMulInteger's pair-count bound."""
    rng = np.random.default_rng(7)
    for trial in range(20):
        k = 2 * int(rng.integers(1, 40))
        b = rng.integers(-128, 128, (k, 5)) if trial % 2 else rng.integers(-90, 91, (k, 5))
        codes = (int(rng.integers(0, 100)), int(rng.integers(150, 256)))
        a = rng.integers(codes[0], codes[1] + 1, (64, k))
        a[:4] = np.where(rng.random((4, k)) < 0.5, codes[0], codes[1])  # corners saturate the most
        bt = torch.from_numpy(b)
        dl, dh = (t.numpy().ravel() for t in _pair_saturation(tuple(torch.tensor(c) for c in codes), (bt, bt)))
        for pairs in (np.arange(k).reshape(-1, 2), rng.permutation(k).reshape(-1, 2)):
            moved = _saturated_sum(a, b, pairs) - a @ b
            assert np.all((moved >= dl) & (moved <= dh)), trial
        iv = Interval.uniform(codes[0], codes[1], (1, k), TensorProto.UINT8)
        wl, wh = (t.numpy() for t in _saturation(iv, bt.amin(0), bt.amax(0), k, TensorProto.INT8))
        assert np.all(dl >= wl) and np.all(dh <= wh)


# ------------------------------------------------------------------------------ refusals
@pytest.mark.parametrize(("params", "reason"), [
    ({"a_zp": np.array([3, 4, 5], np.uint8)}, "zero point"),
    ({"b_zp": np.zeros((2, 5), np.int8)}, "b_zero_point"),
    ({"bias": np.zeros((1, 5), F32)}, "bias"),
    ({"a_scale": np.ones((2, 2), F32)}, "broadcast"),
])
def test_unmodelled_shapes_are_refused(params: dict, reason: str) -> None:
    base = {"b": np.ones((8, 5), np.int8), "a_scale": F32(0.1), "b_scale": F32(0.2), "a_zp": None, "b_zp": None,
            "bias": None}
    model = _model("MatMulIntegerToFloat", {"a": np.zeros((3, 8), np.uint8)}, {**base, **params},
                   ["a", "b", "a_scale", "b_scale", "a_zp", "b_zp", "bias"], shape=(3, 5))
    analysis = ranum.analyze(model, {"inputs": {"a": [0, 255]}, **EXACT})
    message = next(iter(analysis.unsupported.values()))
    assert reason in message


def test_float16_a_and_vectors_are_refused() -> None:
    model = _model("DynamicQuantizeMatMul", {"a": np.zeros((3, 8), np.float16)},
                   {"b": np.ones((8, 5), np.int8), "b_scale": F32(0.1)}, ["a", "b", "b_scale"], shape=(3, 5))
    graph, _ = load_model(model)
    initial = {"a": Interval.uniform(-1.0, 1.0, (3, 8), TensorProto.FLOAT16)}
    for name, proto in graph.initializers.items():
        initial[name] = Interval.point(torch.from_numpy(numpy_helper.to_array(proto).copy()), proto.data_type)
    assert "float32 only" in next(iter(run_abstract(graph, initial).unsupported.values()))
    with pytest.raises(UnsupportedOperator, match="matrices"):
        _output_shape((8,), (8, 5), "MatMulIntegerToFloat")


# ------------------------------------------------------------------------------ quantize_dynamic models
def _float_model(path: Path, shared_input: bool) -> None:
    """A 2-layer MLP (x -> MatMul -> Add -> Relu -> MatMul -> Add), or with x also feeding a second MatMul
    (whose quantized input is then shared: MatMulIntegerToFloat)."""
    rng = np.random.default_rng(8)
    weights = {"w1": rng.normal(0, 0.3, (16, 12)), "b1": rng.normal(0, 0.1, 12), "w2": rng.normal(0, 0.3, (12, 5)),
               "b2": rng.normal(0, 0.1, 5), "w3": rng.normal(0, 0.3, (16, 12))}
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h0"]), helper.make_node("Add", ["h0", "b1"], ["h1"])]
    if shared_input:
        nodes += [helper.make_node("MatMul", ["x", "w3"], ["g0"]), helper.make_node("Add", ["h1", "g0"], ["h2"])]
    nodes += [helper.make_node("Relu", ["h2" if shared_input else "h1"], ["r"]),
              helper.make_node("MatMul", ["r", "w2"], ["o0"]), helper.make_node("Add", ["o0", "b2"], ["y"])]
    graph = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 16])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3, 5])],
                              [numpy_helper.from_array(v.astype(F32), k) for k, v in weights.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)


def _quantized_and_optimized(tmp_path: Path, build: Callable[[Path], None], per_channel: bool) -> onnx.ModelProto:
    """A float model written by ``build``, through quantize_dynamic (int8 weights) and onnxruntime's extended
    graph optimisation, as a user saves it."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    src, quantized, optimized = tmp_path / "float.onnx", tmp_path / "quant.onnx", tmp_path / "optimized.onnx"
    build(src)
    quantize_dynamic(src, quantized, weight_type=QuantType.QInt8, per_channel=per_channel)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    options.optimized_model_filepath = str(optimized)
    ort.InferenceSession(str(quantized), options, providers=["CPUExecutionProvider"])
    return onnx.load(optimized)


@pytest.mark.parametrize("per_channel", [False, True])
@pytest.mark.parametrize("shared_input", [False, True])
def test_quantize_dynamic_model_is_bounded_soundly(tmp_path: Path, shared_input: bool, per_channel: bool) -> None:
    model = _quantized_and_optimized(tmp_path, lambda src: _float_model(src, shared_input), per_channel)
    ops = {node.op_type for node in model.graph.node}
    assert "DynamicQuantizeMatMul" in ops and ("MatMulIntegerToFloat" in ops) == shared_input
    spec = {"inputs": {"x": [-1.0, 1.0]}, **EXACT}
    report = ranum.check(model, spec)
    assert not report.unsupported_ops and not report.findings
    analysis = ranum.analyze(model, spec)
    runner, rng = Runner(model), np.random.default_rng(9)
    for k, mode in enumerate(SAMPLE_MODES + ("uniform",) * 4):
        check_sample(analysis, runner.run(sample_feeds(analysis, model, mode, rng)), f"sample {k} ({mode})")


def _float_bert_layer(path: Path) -> None:
    """EmbedLayerNormalization -> Attention (fused, com.microsoft) -> MatMul: quantize_dynamic writes
    QEmbedLayerNormalization, DynamicQuantizeLinear -> QAttention, and DynamicQuantizeMatMul once optimised."""
    rng = np.random.default_rng(10)
    hidden, vocab, seq = 16, 30, 5
    weights = {"word": rng.normal(0, 1, (vocab, hidden)), "pos": rng.normal(0, 0.5, (seq, hidden)),
               "seg": rng.normal(0, 0.5, (2, hidden)), "gamma": rng.uniform(0.5, 1.5, hidden),
               "beta": rng.normal(0, 0.1, hidden), "w": rng.normal(0, 0.3, (hidden, 3 * hidden)),
               "b": rng.normal(0, 0.1, 3 * hidden), "out": rng.normal(0, 0.3, (hidden, 4))}
    embed = ["ids", "segids", "word", "pos", "seg", "gamma", "beta", "mask"]
    nodes = [helper.make_node("EmbedLayerNormalization", embed, ["emb", "mask_index"], domain=MS, epsilon=1e-12),
             helper.make_node("Attention", ["emb", "w", "b", "mask_index"], ["att"], domain=MS, num_heads=2),
             helper.make_node("MatMul", ["att", "out"], ["y"])]
    inputs = [helper.make_tensor_value_info(name, TensorProto.INT32, [2, seq]) for name in ("ids", "segids", "mask")]
    output = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, seq, 4])
    graph = helper.make_graph(nodes, "bert", inputs, [output],
                              [numpy_helper.from_array(v.astype(F32), k) for k, v in weights.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(MS, 1)])
    model.ir_version = 8
    onnx.save(model, path)


@pytest.mark.parametrize("per_channel", [False, True])
def test_quantize_dynamic_bert_layer_is_bounded_soundly(tmp_path: Path, per_channel: bool) -> None:
    model = _quantized_and_optimized(tmp_path, _float_bert_layer, per_channel)
    assert {"QEmbedLayerNormalization", "QAttention", "DynamicQuantizeMatMul"} <= {n.op_type for n in model.graph.node}
    spec = {"inputs": {"ids": [0, 29], "segids": [0, 1], "mask": [0, 1]}, **EXACT}
    report = ranum.check(model, spec)
    assert not report.unsupported_ops
    analysis = ranum.analyze(model, spec)
    runner, rng = Runner(model), np.random.default_rng(11)
    for k, mode in enumerate(SAMPLE_MODES + ("uniform",) * 4):
        check_sample(analysis, runner.run(sample_feeds(analysis, model, mode, rng)), f"sample {k} ({mode})")
