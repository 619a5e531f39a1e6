"""MatMulNBits and GatherBlockQuantized against onnxruntime: the dequantized weight bit for bit, products within
float tolerance, models written by onnxruntime's own quantizer, and a MatMulNBits -> Add -> Softmax -> Log graph
through ``ranum.check`` (soundness of single nodes is in test_soundness.py, cases in cases_contrib_nbits.py)."""

from __future__ import annotations

import dataclasses

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

import ranum
from ranum.analysis import analyze
from ranum.errors import UnsupportedOperator
from ranum.graph.loader import load_model
from ranum.interpret import run_concrete
from ranum.ops.contrib_nbits import GatherBlockQuantized, MatMulNBits
from tests.ops.cases_contrib_nbits import gather_block_quantized, matmul_nbits, nbits_weight
from tests.ops.harness import Operand, build_model

EXACT = {"weights": {"default": "exact"}}
F16 = TensorProto.FLOAT16


def _session(model: onnx.ModelProto) -> ort.InferenceSession:
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def _concrete(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> np.ndarray:
    graph, _ = load_model(model)
    values = run_concrete(graph, {k: torch.from_numpy(v) for k, v in feeds.items()}).values
    return values[graph.outputs[0].name].numpy()


WEIGHTS = [
    dict(bits=4, block=32), dict(bits=4, block=16, zero_points="packed"), dict(bits=4, block=64, zero_points="float"),
    dict(bits=8, block=16, zero_points="packed"), dict(bits=8, block=32), dict(bits=2, block=16, zero_points="packed"),
    dict(bits=2, block=32, zero_points="float"), dict(bits=4, block=16, g_idx=True),
    dict(bits=4, block=16, zero_points="float", g_idx=True), dict(bits=4, block=16, elem_type=F16, zero_points="float"),
]


@pytest.mark.parametrize("k", [64, 50])
@pytest.mark.parametrize("config", WEIGHTS, ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()))
def test_dequantized_weight_is_onnxruntimes_bit_for_bit(config: dict, k: int) -> None:
    """A one-hot A makes every output one weight: the rule's dequantization is onnxruntime's, to the bit."""
    case = matmul_nbits("one-hot", (k, k), 6, **config)
    model = build_model(case)
    dtype = np.float16 if config.get("elem_type") == F16 else np.float32
    feeds = {"in0": np.eye(k, dtype=dtype)}
    expected = _session(model).run(None, feeds)[0]
    np.testing.assert_array_equal(_concrete(model, feeds), expected)


@pytest.mark.parametrize("config", [dict(bias="input", zero_points="packed"), dict(zero_points="float", bits=2),
                                    dict(bits=8, bias="exact"), dict(g_idx=True, block=16),
                                    dict(elem_type=F16, bias="input", zero_points="packed")])
def test_concrete_product_agrees_with_onnxruntime(config: dict) -> None:
    """Random A: the rule's float32 product is onnxruntime's up to summation order (K u sum |a w|)."""
    case = matmul_nbits("random", (3, 4, 128), 7, **config)
    model = build_model(case)
    rng = np.random.default_rng(1)
    half = config.get("elem_type") == F16
    feeds = {op_name: rng.uniform(-3, 3, op.shape).astype(np.float16 if half else np.float32)
             for op_name, op in (("in0", case.inputs[0]), ("in5", case.inputs[5] if len(case.inputs) > 5 else None))
             if op is not None and op.value is None}
    expected = _session(model).run(None, feeds)[0].astype(np.float64)
    got = _concrete(model, feeds).astype(np.float64)
    weight = _concrete_weight(case)
    scale = np.abs(feeds["in0"].astype(np.float64)) @ np.abs(weight.T) + 1.0
    tolerance = 2.0**-10 if half else 128 * 2.0**-24
    assert np.all(np.abs(got - expected) <= tolerance * scale)


def _concrete_weight(case) -> np.ndarray:
    """The (N, K) dequantized weight, read off a one-hot A through the rule's concrete semantics."""
    k = case.attrs["K"]
    one_hot = dataclasses.replace(case, inputs=(Operand((k, k), case.inputs[0].elem_type),) + case.inputs[1:5])
    half = case.inputs[0].elem_type == F16
    return _concrete(build_model(one_hot), {"in0": np.eye(k, dtype=np.float16 if half else np.float32)}).T


def _float_model(k: int, n: int, batch: int = 3, seed: int = 0) -> onnx.ModelProto:
    rng = np.random.default_rng(seed)
    weight = numpy_helper.from_array(rng.normal(size=(k, n)).astype(np.float32), "W")
    bias = numpy_helper.from_array(rng.normal(size=(n,)).astype(np.float32), "b")
    nodes = [helper.make_node("MatMul", ["x", "W"], ["h"]), helper.make_node("Add", ["h", "b"], ["s"]),
             helper.make_node("Softmax", ["s"], ["p"], axis=-1), helper.make_node("Log", ["p"], ["y"])]
    outputs = [helper.make_tensor_value_info(name, TensorProto.FLOAT, [batch, n]) for name in ("y", "h", "s", "p")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, k])],
                              outputs, initializer=[weight, bias])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def _quantized(k: int, n: int, accuracy_level: int | None, symmetric: bool = False) -> onnx.ModelProto:
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    quantizer = MatMulNBitsQuantizer(_float_model(k, n), bits=4, block_size=32, is_symmetric=symmetric,
                                     accuracy_level=accuracy_level)
    quantizer.process()
    model = quantizer.model.model
    assert [node.op_type for node in model.graph.node][0] == "MatMulNBits"
    return model


def _assert_samples_inside(model: onnx.ModelProto, analysis, low: float, high: float, names=("h", "s", "p", "y"),
                           samples: int = 20) -> None:
    rng = np.random.default_rng(7)
    session = _session(model)
    shape = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    points = [np.full(shape, low), np.full(shape, high)] + [rng.uniform(low, high, shape) for _ in range(samples)]
    for point in points:
        values = session.run(list(names), {"x": point.astype(np.float32)})
        for name, value in zip(names, values):
            lo, hi = analysis.bounds(name)
            assert np.all((value >= lo) & (value <= hi)), f"{name}: onnxruntime value outside its bounds"


@pytest.mark.parametrize("accuracy_level", [None, 1, 4])
def test_quantizer_graph_through_check_is_sound(accuracy_level: int | None) -> None:
    """onnxruntime's MatMulNBitsQuantizer output, MatMulNBits -> Add -> Softmax -> Log: every operator has a
    rule, logits in a bounded range give no finding, and onnxruntime's intermediates lie inside the bounds."""
    model = _quantized(64, 10, accuracy_level)
    spec = {"inputs": {"x": [-0.5, 0.5]}, **EXACT}
    report = ranum.check(model, spec)
    assert not report.unsupported_ops and not report.findings
    _assert_samples_inside(model, analyze(model, spec), -0.5, 0.5)


def test_huge_inputs_make_the_log_of_softmax_a_finding() -> None:
    """Logits spread over thousands underflow the softmax to 0: Log(0) is reported after MatMulNBits."""
    report = ranum.check(_quantized(64, 10, 4), {"inputs": {"x": [-1e4, 1e4]}, **EXACT})
    assert not report.unsupported_ops
    assert any(finding.op_type == "Log" for finding in report.findings)


def test_derived_weight_mode_keeps_the_packed_weight_exact() -> None:
    """The default weight mode derives ranges for float weights, but scales and zero points are the quantized
    weight's settings: constants, so the bounds are those of the exact mode (the Add's bias still gets a range)."""
    model = _quantized(64, 10, None)
    exact = analyze(model, {"inputs": {"x": [-1, 1]}, **EXACT})
    derived = analyze(model, {"inputs": {"x": [-1, 1]}})
    assert not derived.unsupported
    for name in ("h",):
        np.testing.assert_array_equal(derived.bounds(name)[0], exact.bounds(name)[0])
        np.testing.assert_array_equal(derived.bounds(name)[1], exact.bounds(name)[1])
    assert derived.bounds("s")[1].max() > exact.bounds("s")[1].max()  # b is a weight with a derived range


def test_exact_weights_are_as_tight_as_a_float_matmul() -> None:
    """With A a range, MatMulNBits' bounds are a float MatMul's on the dequantized weight, up to one rounding."""
    case = matmul_nbits("tight", (2, 128), 9, zero_points="packed")
    weight = _concrete_weight(case)
    model = build_model(case)
    ranges = {"inputs": {"in0": [-1, 2]}, **EXACT}
    lo, hi = analyze(model, ranges).bounds("out0")
    graph = helper.make_graph([helper.make_node("MatMul", ["in0", "W"], ["out0"])], "g",
                              [helper.make_tensor_value_info("in0", TensorProto.FLOAT, [2, 128])],
                              [helper.make_tensor_value_info("out0", TensorProto.FLOAT, [2, 9])],
                              initializer=[numpy_helper.from_array(weight.T.astype(np.float32).copy(), "W")])
    reference = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    ref_lo, ref_hi = analyze(reference, ranges).bounds("out0")
    scale = np.abs(ref_hi) + np.abs(ref_lo)
    assert np.all(lo <= ref_lo) and np.all(hi >= ref_hi)
    assert np.all(lo >= ref_lo - 2**-20 * scale) and np.all(hi <= ref_hi + 2**-20 * scale)


@pytest.mark.parametrize(("attrs", "reason"), [
    ({"accuracy_level": 2}, "accuracy_level"), ({"bits": 3}, "bits"), ({"block_size": 24}, "block_size"),
    ({"weight_prepacked": 1}, "prepacked"), ({"N": 0}, "empty"),
])
def test_unmodelled_attributes_are_refused(attrs: dict, reason: str) -> None:
    settings = {"K": 64, "N": 4, "bits": 4, "block_size": 32, **attrs}
    with pytest.raises(UnsupportedOperator, match=reason):
        MatMulNBits(**settings)


def test_unmodelled_operands_are_refused() -> None:
    """g_idx with packed zero points (onnxruntime ignores them) and a range on the scales are unsupported."""
    case = matmul_nbits("refused", (2, 64), 4, block=16, zero_points="packed", g_idx=True)
    analysis = analyze(build_model(case), {"inputs": {"in0": [-1, 1]}})
    assert "ignores" in next(iter(analysis.unsupported.values()))
    case = matmul_nbits("scales-range", (2, 64), 4)
    analysis = analyze(build_model(case), {"inputs": {"in0": [-1, 1]}, "weights": {"in2": [0.0, 0.5]}})
    assert "constant" in next(iter(analysis.unsupported.values()))


def test_packing_helper_is_independent_of_the_rule() -> None:
    """The cases pack codes low bits first; one byte spelled out pins the order."""
    b, *_ = nbits_weight(0, 16, 1, 4, 16)
    assert b.value.shape == (1, 1, 8)
    from tests.ops.cases_contrib_nbits import pack_codes

    assert pack_codes(np.array([[1, 2]]), 4).tolist() == [[0x21]]
    assert pack_codes(np.array([[1, 2, 3, 0]]), 2).tolist() == [[0b00111001]]


@pytest.mark.parametrize("config", [dict(bits=4), dict(bits=4, zero_points=True, block=32),
                                    dict(bits=8, zero_points=True), dict(bits=2),
                                    dict(bits=4, zero_points=True, scale_type=F16)],
                         ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()))
def test_gather_block_quantized_is_onnxruntimes_bit_for_bit(config: dict) -> None:
    """Every row, by positive and negative index, dequantized exactly as onnxruntime does."""
    vocab = 6
    indices = Operand((2 * vocab,), TensorProto.INT64)
    model = build_model(gather_block_quantized("rows", vocab, 64, indices=indices, **config))
    feeds = {"in1": np.arange(-vocab, vocab, dtype=np.int64)}
    np.testing.assert_array_equal(_concrete(model, feeds), _session(model).run(None, feeds)[0])


def test_gather_block_quantized_bounds_are_the_rows_an_index_range_picks() -> None:
    """Indices in [2, 3] pick rows 2 or 3: the bounds are their element-wise hull, exactly."""
    model = build_model(gather_block_quantized("hull", 6, 32, zero_points=True))
    rows = _session(model).run(None, {"in1": np.array([[2, 3, 2], [3, 2, 3]], dtype=np.int64)})[0]
    lo, hi = analyze(model, {"inputs": {"in1": [2, 3]}}).bounds("out0")
    np.testing.assert_array_equal(lo, np.minimum(rows[0, 0], rows[0, 1]) + np.zeros_like(lo))
    np.testing.assert_array_equal(hi, np.maximum(rows[0, 0], rows[0, 1]) + np.zeros_like(hi))


def test_gather_block_quantized_refusals() -> None:
    with pytest.raises(UnsupportedOperator, match="gather_axis"):
        GatherBlockQuantized(gather_axis=1)
    with pytest.raises(UnsupportedOperator, match="bits"):
        GatherBlockQuantized(bits=3)
    rule = GatherBlockQuantized(quantize_axis=0, block_size=16)
    with pytest.raises(UnsupportedOperator, match="last axis"):
        rule.concrete(None, torch.zeros((4, 8), dtype=torch.uint8), torch.zeros(1, dtype=torch.int64),
                      torch.ones((1, 8)))
