"""Operators whose own arithmetic leaves the float range from finite settings (a uniform draw's width, a scaled tanh
in float16, a dequantized table entry) report it; a weight layout onnxruntime decodes otherwise is refused."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

import ranum

MS = "com.microsoft"


def _model(node: onnx.NodeProto, inputs: list[onnx.ValueInfoProto], output: onnx.ValueInfoProto,
           constants: dict[str, np.ndarray], opset: int = 17) -> onnx.ModelProto:
    graph = helper.make_graph([node], "limits", inputs, [output],
                              [numpy_helper.from_array(value, name) for name, value in constants.items()])
    opsets = [helper.make_opsetid("", opset), helper.make_opsetid(MS, 1)]
    return helper.make_model(graph, opset_imports=opsets, ir_version=8)


def _run(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> np.ndarray:
    options = ort.SessionOptions()
    options.log_severity_level = 4
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"]).run(
        None, feeds)[0]


def _hazards(model: onnx.ModelProto, spec: dict) -> list[tuple[str, str]]:
    return [(f.op_type, f.hazard_id) for f in ranum.check(model, spec).findings]


def test_a_uniform_draw_whose_width_overflows_is_reported() -> None:
    node = helper.make_node("RandomUniform", [], ["y"], low=-2e38, high=2e38, shape=[4])
    model = _model(node, [], helper.make_tensor_value_info("y", TensorProto.FLOAT, [4]), {})
    assert np.isinf(_run(model, {})).all()
    assert _hazards(model, {}) == [("RandomUniform", "overflow")]


def test_a_scaled_tanh_past_float16_range_is_reported() -> None:
    node = helper.make_node("ScaledTanh", ["x"], ["y"], alpha=100000.0, beta=1.0)
    model = _model(node, [helper.make_tensor_value_info("x", TensorProto.FLOAT16, [4])],
                   helper.make_tensor_value_info("y", TensorProto.FLOAT16, [4]), {}, opset=9)
    assert np.isinf(_run(model, {"x": np.array([-1, -0.5, 0.5, 1], np.float16)})).any()
    assert _hazards(model, {"inputs": {"x": [-1, 1]}}) == [("ScaledTanh", "overflow")]


def test_a_dequantized_table_entry_past_float16_range_is_reported() -> None:
    """Codes 15 less the default 8, times a float16 scale of 60000: 420000 is infinite in float16."""
    node = helper.make_node("GatherBlockQuantized", ["data", "i", "scales"], ["y"], domain=MS, bits=4, block_size=16,
                            gather_axis=0, quantize_axis=1)
    model = _model(node, [helper.make_tensor_value_info("i", TensorProto.INT64, [1])],
                   helper.make_tensor_value_info("y", TensorProto.FLOAT16, [1, 16]),
                   {"data": np.full((2, 8), 0xFF, np.uint8), "scales": np.full((2, 1), 60000, np.float16)})
    assert np.isinf(_run(model, {"i": np.array([0])})).all()
    assert _hazards(model, {"inputs": {"i": [0, 1]}}) == [("GatherBlockQuantized", "overflow")]


def test_two_bit_weights_with_a_group_index_are_refused() -> None:
    """onnxruntime decodes 2-bit codes with g_idx otherwise than its packing says: the node is not analysed."""
    k, n, block = 32, 2, 16
    packed = np.random.default_rng(1).integers(0, 256, size=(n, k // block, block * 2 // 8), dtype=np.uint8)
    node = helper.make_node("MatMulNBits", ["a", "b", "scales", "", "g"], ["y"], domain=MS, K=k, N=n, bits=2,
                            block_size=block)
    model = _model(node, [helper.make_tensor_value_info("a", TensorProto.FLOAT, [1, k])],
                   helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, n]),
                   {"b": packed, "scales": np.ones(n * k // block, np.float32),
                    "g": np.array([1, 0] * (k // 2), np.int32)})
    report = ranum.check(model, {"inputs": {"a": [0.99, 1]}, "weights": {"default": "exact"}})
    assert list(report.not_analysed_nodes) == ["MatMulNBits_0"]
