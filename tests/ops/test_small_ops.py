"""Hand tests of the smaller operators: depth/space moves, EyeLike, ReverseSequence, Shrink, LRN,
MeanVarianceNormalization, Lp pooling, (de)quantization, CumProd, BitShift and the bitwise operators.

Precision (exact results where the rule promises them), hazards (reported where the runtime can give
NaN/Inf, silent where it cannot), exhaustive soundness of the integer bound functions on small types,
and the ONNX node test cases of these operators at every opset up to 28 and for every integer type
(tests/ops/test_onnx_node_cases.py keeps opsets 11 to 21 and a few types for all operators).
"""

from __future__ import annotations

import itertools

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper

from ranum.detect import find_hazards
from ranum.domain.interval import Interval
from ranum.graph.loader import load_model
from ranum.interpret import AbstractRun, run_abstract, run_concrete
from ranum.ops import REGISTRY, _bits
from tests.ops.harness import run_text
from tests.ops.node_runs import node_cases
from tests.ops.test_onnx_node_cases import test_concrete_and_abstract_match_onnx_reference as check_node_case

FLOAT, INT8, UINT8 = TensorProto.FLOAT, TensorProto.INT8, TensorProto.UINT8
NEW_OPS = {
    "DepthToSpace", "SpaceToDepth", "EyeLike", "ReverseSequence", "Shrink", "LRN", "MeanVarianceNormalization",
    "LpPool", "GlobalLpPool", "QuantizeLinear", "DequantizeLinear", "CumProd", "BitShift", "BitwiseAnd",
    "BitwiseOr", "BitwiseXor", "BitwiseNot",
}
_PLAIN_TYPES = (np.float32, np.float64, np.float16, np.bool_, np.int8, np.uint8, np.int16, np.uint16, np.int32,
                np.uint32, np.int64, np.uint64)




def _hazard_ids(run: AbstractRun) -> set[str]:
    return {f.hazard_id for f in find_hazards(run)}


# ------------------------------------------------------------------------------ node test cases
@pytest.mark.parametrize(("model", "inputs", "outputs"), node_cases(NEW_OPS, types=_PLAIN_TYPES))
def test_node_cases_of_the_small_operators(model: onnx.ModelProto, inputs, outputs) -> None:
    opset = max(i.version for i in model.opset_import if i.domain in ("", "ai.onnx"))
    assert REGISTRY.lookup(model.graph.node[0].op_type, "", opset) is not None
    check_node_case(model, inputs, outputs)


# ------------------------------------------------------------------------------ movements
def test_depth_to_space_keeps_one_block_and_per_sample_blocks() -> None:
    text = """<ir_version: 8, opset_import: ["" : 13]>
    g (float[2, 8, 2, 3] x) => (float[2, 2, 4, 6] y) { y = DepthToSpace<blocksize = 2, mode = "CRD">(x) }"""
    run = run_text(text, {"x": (-1.0, 2.0)})
    y = run.env["y"]
    assert y.numblocks == 1 and (y.min(), y.max()) == (-1.0, 2.0)
    graph, _ = load_model(onnx.parser.parse_model(text))
    lower = torch.tensor([-1.0, 0.0]).reshape(2, 1, 1, 1)
    x = Interval.create(lower, lower + 1, ((0, 1), (0,), (0,), (0,)), (2, 8, 2, 3), FLOAT)
    y = run_abstract(graph, {"x": x}).env["y"]
    assert y.numblocks == 2 and y.splits[0] == (0, 1)
    assert y.lower.flatten().tolist() == [-1.0, 0.0] and y.upper.flatten().tolist() == [0.0, 1.0]


def test_reverse_sequence_with_range_lengths_leaves_the_tail_alone() -> None:
    text = """<ir_version: 8, opset_import: ["" : 13]>
    g (float[4, 2] x, int64[2] lens) => (float[4, 2] y) {
      y = ReverseSequence<batch_axis = 1, time_axis = 0>(x, lens) }"""
    graph, _ = load_model(onnx.parser.parse_model(text))
    x = torch.tensor([[0.0, 10.0], [1.0, 11.0], [2.0, 12.0], [3.0, 13.0]])
    lens = Interval.from_full(torch.tensor([1, 2]), torch.tensor([2, 3]), TensorProto.INT64)
    y = run_abstract(graph, {"x": Interval.point(x, FLOAT), "lens": lens}).env["y"]
    lo, hi = y.full()
    assert lo[:, 0].tolist() == [0.0, 0.0, 2.0, 3.0] and hi[:, 0].tolist() == [1.0, 1.0, 2.0, 3.0]
    assert lo[:, 1].tolist() == [10.0, 10.0, 10.0, 13.0] and hi[:, 1].tolist() == [12.0, 12.0, 12.0, 13.0]


def test_eye_like_is_exact() -> None:
    text = """<ir_version: 8, opset_import: ["" : 22]>
    g (float[3, 4] x) => (int64[3, 4] y) { y = EyeLike<k = 1, dtype = 7>(x) }"""
    y = run_text(text, {"x": (-5.0, 5.0)}).env["y"]
    assert y.is_exact and y.exact_value().tolist() == [[0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]


# ------------------------------------------------------------------------------ quantization
def _quantize(scale: str) -> str:
    return f"""<ir_version: 8, opset_import: ["" : 13]>
    g (float[4] x, float[1] s) => (uint8[4] y) {{
      zp = Constant<value = uint8 {{128}}>()
      y = QuantizeLinear(x, {scale}, zp) }}"""


def test_quantize_linear_reports_a_scale_range_holding_zero() -> None:
    run = run_text(_quantize("s"), {"x": (-1.0, 1.0), "s": (-0.01, 0.01)})
    assert _hazard_ids(run) == {"division-by-zero"}
    assert (run.env["y"].min(), run.env["y"].max()) == (0, 255)


def test_quantize_linear_with_a_nonzero_scale_is_safe_and_exact_where_decided() -> None:
    text = _quantize("c").replace("zp = ", "c = Constant<value = float {0.25}>()\n      zp = ")
    run = run_text(text, {"x": (-1.0, 1.0), "s": (1.0, 1.0)})
    assert not find_hazards(run)
    assert (run.env["y"].min(), run.env["y"].max()) == (124, 132)
    run = run_text(text, {"x": (-100.0, 100.0), "s": (1.0, 1.0)})
    assert (run.env["y"].min(), run.env["y"].max()) == (0, 255)  # saturated


def test_dequantize_linear_of_an_int8_range_is_exact() -> None:
    text = """<ir_version: 8, opset_import: ["" : 13]>
    g (int8[6] x) => (float[6] y) {
      s = Constant<value = float {0.1}>()
      zp = Constant<value = int8 {3}>()
      y = DequantizeLinear(x, s, zp) }"""
    run = run_text(text, {"x": (-128, 127)})
    scale = np.float32(0.1)
    assert run.env["y"].min() == float(np.float32(-128 - 3) * scale)
    assert run.env["y"].max() == float(np.float32(127 - 3) * scale)
    assert not find_hazards(run)


# ------------------------------------------------------------------------------ LRN, MVN
def _lrn(bias: float, size: int = 3) -> str:
    return f"""<ir_version: 8, opset_import: ["" : 13]>
    g (float[1, 4, 2, 2] x) => (float[1, 4, 2, 2] y) {{ y = LRN<size = {size}, bias = {bias}>(x) }}"""


def test_lrn_scale_hazard_needs_a_bias_at_most_its_rounding_error() -> None:
    safe = run_text(_lrn(1.0), {"x": (-3.0, 3.0)})
    assert not find_hazards(safe)
    bound = 3.0 / 1.0**0.75
    assert -bound * 1.0001 <= safe.env["y"].min() < -0.9 * bound and 0.9 * bound < safe.env["y"].max()
    assert _hazard_ids(run_text(_lrn(0.0), {"x": (-3.0, 3.0)})) == {"lrn-nonpositive-scale"}


def test_lrn_of_an_even_size_follows_the_spec_window() -> None:
    """onnxruntime rejects even sizes (and the ONNX reference loops over the batch, not the channels):
    the spec's window is [c - floor((size - 1) / 2), c + ceil((size - 1) / 2)], written out here."""
    model = onnx.parser.parse_model(_lrn(1.5, size=4).replace("LRN<", "LRN<alpha = 0.5, beta = 0.9, "))
    x = np.random.default_rng(0).uniform(-3, 3, size=(1, 4, 2, 2))
    expected = np.empty_like(x)
    for c in range(4):
        window = (x[:, max(0, c - 1):min(4, c + 3)] ** 2).sum(axis=1)
        expected[:, c] = x[:, c] / (1.5 + 0.5 / 4 * window) ** 0.9
    graph, _ = load_model(model)
    got = run_concrete(graph, {"x": torch.from_numpy(x.astype(np.float32))}).values["y"].numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    y = run_abstract(graph, {"x": Interval.uniform(-3.0, 3.0, (1, 4, 2, 2), FLOAT)}).env["y"]
    assert bool(y.contains(torch.from_numpy(got)).all())


_MVN = """<ir_version: 8, opset_import: ["" : 13]>
    g (float[2, 3, 4, 2] x) => (float[2, 3, 4, 2] y) { y = MeanVarianceNormalization(x) }"""


def test_mean_variance_normalization_default_axes_agree_with_onnxruntime() -> None:
    model = onnx.parser.parse_model(_MVN)
    graph, _ = load_model(model)
    x = np.random.default_rng(1).uniform(-3, 3, size=(2, 3, 4, 2)).astype(np.float32)
    expected = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})
    got = run_concrete(graph, {"x": torch.from_numpy(x)}).values["y"].numpy()
    np.testing.assert_allclose(got, expected[0], rtol=1e-5, atol=1e-6)
    run = run_text(_MVN, {"x": (-3.0, 3.0)})
    assert bool(run.env["y"].contains(torch.from_numpy(expected[0])).all())
    assert _hazard_ids(run) == {"mvn-zero-variance"}  # a slice of the box can be constant


def test_mean_variance_normalization_is_capped_by_sqrt_n_when_slices_spread() -> None:
    text = """<ir_version: 8, opset_import: ["" : 13]>
    g (float[2, 4] x) => (float[2, 4] y) { y = MeanVarianceNormalization<axes = [1]>(x) }"""
    graph, _ = load_model(onnx.parser.parse_model(text))
    lower = torch.tensor([[-2.0, -1.0, 1.0, 2.0]] * 2)
    y = run_abstract(graph, {"x": Interval.from_full(lower, lower + 0.5, FLOAT)}).env["y"]
    assert max(-y.min(), y.max()) <= 2.0 * (1 + 1e-5)  # sqrt(n) for n = 4
    assert not find_hazards(run_abstract(graph, {"x": Interval.from_full(lower, lower + 0.5, FLOAT)}))


# ------------------------------------------------------------------------------ pooling, CumProd
def test_lp_pool_overflow_is_reported() -> None:
    text = """<ir_version: 8, opset_import: ["" : 18]>
    g (float[1, 1, 4] x) => (float[1, 1, 3] y) { y = LpPool<kernel_shape = [2], p = 2>(x) }"""
    assert not find_hazards(run_text(text, {"x": (-1e18, 1e18)}))
    assert _hazard_ids(run_text(text, {"x": (-1e19, 1e20)})) == {"overflow"}


def test_cum_prod_of_exact_small_integers_stays_exact() -> None:
    text = """<ir_version: 8, opset_import: ["" : 26]>
    g (int32[4] x) => (int32[4] y) {
      a = Constant<value = int64 {0}>()
      y = CumProd<exclusive = 1, reverse = 1>(x, a) }"""
    graph, _ = load_model(onnx.parser.parse_model(text))
    x = Interval.point(torch.tensor([2, -3, 5, 7], dtype=torch.int32), TensorProto.INT32)
    y = run_abstract(graph, {"x": x}).env["y"]
    assert y.is_exact and y.exact_value().tolist() == [-105, 35, 7, 1]


# ------------------------------------------------------------------------------ integer bounds, exhaustively
def _boxes(low: int, high: int, count: int, seed: int) -> list[tuple[int, int]]:
    """Random integer intervals inside [low, high], the whole range, its ends and the boxes around 0."""
    rng = np.random.default_rng(seed)
    pairs = rng.integers(low, high + 1, size=(count, 2))
    extra = [(low, high), (low, low), (high, high), (max(low, -1), 0), (0, 0), (0, min(high, 1))]
    return [(int(min(a, b)), int(max(a, b))) for a, b in pairs] + extra


@pytest.mark.parametrize("op", ["and", "or", "xor"])
@pytest.mark.parametrize("elem_type", [INT8, UINT8], ids=["int8", "uint8"])
def test_bitwise_bounds_contain_every_result_on_small_types(op: str, elem_type: int) -> None:
    t = _bits.int_type(elem_type, op)
    boxes = _boxes(t.min, t.max, 30, 1)
    for (al, ah), (bl, bh) in itertools.product(boxes, boxes):
        a, b = torch.arange(al, ah + 1)[:, None], torch.arange(bl, bh + 1)[None, :]
        values = _bits.bitwise(op, a, b, t)
        lo, hi = _bits.bitwise_bounds(op, *(torch.tensor([v]) for v in (al, ah, bl, bh)))
        assert int(lo) <= int(values.min()) and int(values.max()) <= int(hi), (op, al, ah, bl, bh)
        if al == ah and bl == bh:
            assert int(lo) == int(hi) == int(values)


@pytest.mark.parametrize("left", [True, False], ids=["left", "right"])
@pytest.mark.parametrize("elem_type", [INT8, UINT8], ids=["int8", "uint8"])
def test_shift_bounds_contain_every_result_on_small_types(left: bool, elem_type: int) -> None:
    t = _bits.int_type(elem_type, "BitShift")
    amounts = _boxes(-3 if t.signed else 0, 12, 25, 2)
    for (xl, xh), (yl, yh) in itertools.product(_boxes(t.min, t.max, 30, 3), amounts):
        x, y = torch.arange(xl, xh + 1)[:, None], torch.arange(yl, yh + 1)[None, :]
        values = _bits.shift(x, y, t, left)
        lo, hi = _bits.shift_bounds(*(torch.tensor([v]) for v in (xl, xh, yl, yh)), t, left)
        assert int(lo) <= int(values.min()) and int(values.max()) <= int(hi), (left, xl, xh, yl, yh)


def test_bitwise_not_is_exact_for_unsigned_types() -> None:
    text = """<ir_version: 8, opset_import: ["" : 18]>
    g (uint8[3] x) => (uint8[3] y) { y = BitwiseNot(x) }"""
    y = run_text(text, {"x": (3, 40)}).env["y"]
    assert (y.min(), y.max()) == (215, 252)


def test_shrink_of_a_range_joins_its_pieces() -> None:
    node = helper.make_node("Shrink", ["x"], ["y"], bias=1.5, lambd=1.0)
    graph_proto = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", FLOAT, [3])],
                                    [helper.make_tensor_value_info("y", FLOAT, [3])])
    model = helper.make_model(graph_proto, opset_imports=[helper.make_opsetid("", 13)])
    graph, _ = load_model(model)
    y = run_abstract(graph, {"x": Interval.uniform(-0.5, 4.0, (3,), FLOAT)}).env["y"]
    assert (y.min(), y.max()) == (-0.5, 2.5)  # 0 in the dead zone, x - 1.5 above 1 (from -0.5 just above it)


def _constant_then_cast(value: onnx.TensorProto) -> onnx.ModelProto:
    nodes = [helper.make_node("Constant", [], ["c"], value=value),
             helper.make_node("Cast", ["c"], ["cf"], to=TensorProto.FLOAT),
             helper.make_node("Mul", ["x", "cf"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_bfloat16_constant_nodes_are_exact() -> None:
    """Falcon's ALiBi export holds a bfloat16 Constant node (numpy's ml_dtypes type): it crashed the rule
    builder with a TypeError."""
    import ranum

    values = np.array([0.5, -1.25, 3.0, 0.0078125], np.float32)
    proto = helper.make_tensor("v", TensorProto.BFLOAT16, [4], values.tolist())
    model = _constant_then_cast(proto)
    report = ranum.check(model, {"inputs": {"x": [1.0, 1.0]}})
    assert not report.unsupported_ops, report.unsupported_nodes
    lo, hi = report.analysis.bounds("cf")
    expected = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        None, {"x": np.ones(4, np.float32)})[0]
    np.testing.assert_array_equal(lo, expected)
    np.testing.assert_array_equal(hi, expected)


def test_constant_of_an_unheld_type_is_reported_unsupported_not_a_crash() -> None:
    import ranum

    proto = helper.make_tensor("v", TensorProto.FLOAT8E4M3FN, [4], [0.5, 1.0, 2.0, 4.0])
    report = ranum.check(_constant_then_cast(proto), {"inputs": {"x": [0.0, 1.0]}})
    assert "Constant" in report.unsupported_ops
    assert "FLOAT8E4M3FN" in " ".join(report.unsupported_nodes.values())


@pytest.mark.parametrize(("elem_type", "low", "flagged"), [
    (TensorProto.FLOAT16, 1e-6, False),  # a float16 subnormal: a float32 normal once widened, 1 / sqrt finite
    (TensorProto.FLOAT16, 0.0, True),
    (TensorProto.FLOAT, 1e-39, True),  # a float32 subnormal: denormals-are-zero arithmetic reads it as 0
    (TensorProto.FLOAT, 1e-30, False),
])
def test_sqrt_gradient_hazard_starts_where_arithmetic_may_read_zero(elem_type: int, low: float, flagged: bool) -> None:
    """RMSNorm's sqrt(mean(x^2) + 1e-6) in float16 holds the epsilon as a subnormal; it was reported as an
    infinite gradient, although float16 values are widened to float32 normals before any arithmetic."""
    import ranum

    graph = helper.make_graph([helper.make_node("Sqrt", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", elem_type, [3])],
                              [helper.make_tensor_value_info("y", elem_type, [3])])
    report = ranum.check(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]),
                         {"inputs": {"x": [low, 1.0]}})
    assert ("sqrt-zero-gradient" in {f.hazard_id for f in report.findings}) == flagged
