"""Quantized operators: ONNX node test cases, a dynamically quantised model end to end, hazards.

The model is a small float MLP (MatMul, Add, Relu, MatMul, Add) quantised by onnxruntime's
``quantize_dynamic`` (DynamicQuantizeLinear + MatMulInteger, int8 and uint8 weights); onnxruntime's
value of every tensor, for inputs at the corners of and inside the range, must lie within ranum's
bounds, with no unsupported operator and no finding.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import ranum
from ranum.detect import find_hazards
from tests.ops.node_runs import node_cases
from tests.ops.test_onnx_node_cases import test_concrete_and_abstract_match_onnx_reference as check_node_case
from tests.zoo.runtime import Runner

OPS = {"DynamicQuantizeLinear", "MatMulInteger", "ConvInteger", "QLinearMatMul", "QLinearConv"}


@pytest.mark.parametrize(("model", "inputs", "outputs"), node_cases(OPS))
def test_node_cases_of_the_quantized_operators(model: onnx.ModelProto, inputs, outputs) -> None:
    check_node_case(model, inputs, outputs)


def test_every_quantized_operator_has_node_cases() -> None:
    assert {p.values[0].graph.node[0].op_type for p in node_cases(OPS)} == OPS


# ------------------------------------------------------------------------------ quantize_dynamic end to end
def _float_model(path: Path) -> None:
    rng = np.random.default_rng(0)
    weights = {"w1": rng.normal(0, 0.5, (16, 32)), "b1": rng.normal(0, 0.1, (32,)),
               "w2": rng.normal(0, 0.5, (32, 8)), "b2": rng.normal(0, 0.1, (8,))}
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h0"]), helper.make_node("Add", ["h0", "b1"], ["h1"]),
             helper.make_node("Relu", ["h1"], ["h2"]), helper.make_node("MatMul", ["h2", "w2"], ["y0"]),
             helper.make_node("Add", ["y0", "b2"], ["y"])]
    graph = helper.make_graph(
        nodes, "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 8])],
        [numpy_helper.from_array(v.astype(np.float32), k) for k, v in weights.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)


@pytest.mark.parametrize("weight_type", ["QInt8", "QUInt8"])
def test_dynamically_quantised_model_is_bounded_soundly(tmp_path: Path, weight_type: str) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    src, dst = tmp_path / "float.onnx", tmp_path / "quant.onnx"
    _float_model(src)
    quantize_dynamic(src, dst, weight_type=getattr(QuantType, weight_type))
    model = onnx.load(dst)
    assert {"DynamicQuantizeLinear", "MatMulInteger"} <= {n.op_type for n in model.graph.node}
    analysis = ranum.analyze(model, {"inputs": {"x": [-2.0, 2.0]}, "weights": {"default": "exact"}})
    assert not analysis.unsupported, dict(analysis.unsupported)
    assert not find_hazards(analysis.run)
    runner = Runner(model)
    rng = np.random.default_rng(1)
    samples = [np.full((4, 16), -2.0), np.full((4, 16), 2.0), np.where(rng.random((4, 16)) < 0.5, -2.0, 2.0),
               *(rng.uniform(-2.0, 2.0, (4, 16)) for _ in range(4)), np.zeros((4, 16))]
    for x in samples:
        values = runner.run({"x": x.astype(np.float32)})
        for node in analysis.graph.nodes:
            for name in node.outputs:
                lo, hi = analysis.bounds(name)
                v = np.asarray(values[name], dtype=np.float64)
                assert ((v >= lo) & (v <= hi)).all(), f"{name} ({node.op_type}) outside its bounds"


# ------------------------------------------------------------------------------ hazards
_QLINEAR_MATMUL = """
<ir_version: 8, opset_import: ["" : 21]>
g (uint8[2, 3] a, float ys) => (uint8[2, 2] y) {
    sa = Constant<value = float {0.1}>()
    za = Constant<value = uint8 {128}>()
    b = Constant<value = int8[3, 2] {1, -2, 3, -4, 5, -6}>()
    sb = Constant<value = float {0.05}>()
    zb = Constant<value = int8 {0}>()
    zy = Constant<value = uint8 {100}>()
    y = QLinearMatMul(a, sa, za, b, sb, zb, ys, zy)
}
"""


@pytest.mark.parametrize(("y_scale", "expected"), [((0.0, 0.0), True), ((-0.5, 0.5), True), ((0.1, 0.5), False)])
def test_a_zero_y_scale_is_a_division_by_zero(y_scale: tuple[float, float], expected: bool) -> None:
    analysis = ranum.analyze(onnx.parser.parse_model(_QLINEAR_MATMUL), {"inputs": {"a": [0, 255], "ys": y_scale}})
    assert not analysis.unsupported
    found = {f.hazard_id for f in find_hazards(analysis.run)}
    assert ("division-by-zero" in found) == expected
    lo, hi = analysis.bounds("y")
    assert (lo >= 0).all() and (hi <= 255).all()
    if expected:  # the multiplier may be infinite: any output
        assert (lo == 0).all() and (hi == 255).all()


def test_dynamic_quantization_scale_overflow_is_reported() -> None:
    text = """
    <ir_version: 8, opset_import: ["" : 11]>
    g (float[4] x) => (uint8[4] y, float s, uint8 z) {
        y, s, z = DynamicQuantizeLinear(x)
    }
    """
    model = onnx.parser.parse_model(text)
    wide = ranum.analyze(model, {"inputs": {"x": [-3e38, 3e38]}})
    assert "overflow" in {f.hazard_id for f in find_hazards(wide.run)}
    narrow = ranum.analyze(model, {"inputs": {"x": [-1e3, 1e3]}})
    assert not find_hazards(narrow.run)
    lo, hi = narrow.bounds("s")
    assert 0 <= float(lo) and float(hi) <= 2e3 / 255 * (1 + 1e-6)
