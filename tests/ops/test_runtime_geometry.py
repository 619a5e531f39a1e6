"""Regressions where onnxruntime places windows, pads, picks pixels or reads parameters otherwise than a
literal reading of the ONNX spec: each model runs in onnxruntime, and its output must lie in ranum's bounds
(with the same shape) or the node must be refused as not analysed."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto
from onnx import helper as oh
from onnx import numpy_helper as nh

import ranum
from ranum.domain.interval import Interval
from ranum.graph.model import Node
from ranum.ops._base import NodeContext
from ranum.ops.pooling import MaxPool

FLOAT = TensorProto.FLOAT


def _model(node: onnx.NodeProto, shape: list[int], inits: dict[str, np.ndarray], opset: int,
           elem_type: int = FLOAT) -> onnx.ModelProto:
    """One node after ``xw = x + W`` (W = 10 * position, so every input element is told apart)."""
    weights = {"W": (np.arange(int(np.prod(shape)), dtype=np.float32) * 10).reshape(shape), **inits}
    graph = oh.make_graph([oh.make_node("Add", ["x", "W"], ["xw"]), node], "g",
                          [oh.make_tensor_value_info("x", elem_type, shape)],
                          [oh.make_empty_tensor_value_info(node.output[0])],
                          [nh.from_array(value.astype(np.float16) if elem_type == TensorProto.FLOAT16 and
                                         name == "W" else value, name) for name, value in weights.items()])
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def _runtime(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    options = ort.SessionOptions()
    options.log_severity_level = 4
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


def _assert_contains(model: onnx.ModelProto, shape: list[int], dtype: type = np.float32) -> None:
    """onnxruntime's output at a few inputs in [0, 1] lies in ranum's bounds for the output."""
    output = model.graph.node[-1].output[0]
    analysis = ranum.analyze(model, {"inputs": {"x": [0, 1]}, "weights": {"default": "exact"}})
    assert not analysis.unsupported
    lo, hi = analysis.bounds(output)
    for value in (0.0, 0.5, 1.0):
        y = _runtime(model, np.full(shape, value, dtype)).astype(np.float64)
        assert y.shape == np.broadcast_shapes(y.shape, np.shape(lo))
        assert bool(((y >= lo) & (y <= hi)).all()), (y, lo, hi)


@pytest.mark.parametrize(("op", "n", "kernel", "stride", "dilation", "auto_pad", "ceil"), [
    ("AveragePool", 3, 1, 3, 1, "SAME_UPPER", 0),  # negative pads: the window starts at 1
    ("LpPool", 3, 1, 3, 1, "SAME_UPPER", 0),
    ("MaxPool", 3, 3, 3, 2, "SAME_LOWER", 0),  # the padding ignores the dilation
    ("AveragePool", 3, 2, 2, 2, "SAME_UPPER", 1),
    ("AveragePool", 3, 2, 3, 2, "SAME_UPPER", 0),  # windows stop at a negative pad after the input
    ("AveragePool", 6, 2, 3, 2, "SAME_LOWER", 1),
])
def test_pooling_same_padding_follows_onnxruntime(op: str, n: int, kernel: int, stride: int, dilation: int,
                                                  auto_pad: str, ceil: int) -> None:
    attrs = {"kernel_shape": [kernel], "strides": [stride], "auto_pad": auto_pad, "ceil_mode": ceil}
    if dilation != 1:
        attrs["dilations"] = [dilation]
    if op == "LpPool":
        del attrs["ceil_mode"]
    model = _model(oh.make_node(op, ["xw"], ["y"], **attrs), [1, 1, n], {}, 19 if op != "LpPool" else 18)
    _assert_contains(model, [1, 1, n])


def test_pooling_refuses_where_onnxruntime_gives_another_shape() -> None:
    """MaxPool over 8 with kernel 3, stride 3, dilation 3, SAME_UPPER: onnxruntime gives 1 output, the spec 3."""
    attrs = {"kernel_shape": [3], "strides": [3], "dilations": [3], "auto_pad": "SAME_UPPER"}
    model = _model(oh.make_node("MaxPool", ["xw"], ["y"], **attrs), [1, 1, 8], {}, 19)
    analysis = ranum.analyze(model, {"inputs": {"x": [0, 1]}, "weights": {"default": "exact"}})
    reason = " ".join(dict(analysis.unsupported).values())
    assert "onnxruntime gives 1 outputs" in reason
    assert _runtime(model, np.zeros((1, 1, 8), np.float32)).shape == (1, 1, 1)


def test_conv_same_upper_keeps_a_negative_pad_before() -> None:
    """Kernel 2, stride 5 over 5: onnxruntime's window starts at 1 (ranum clamped the pad at 0)."""
    node = oh.make_node("Conv", ["xw", "w"], ["y"], kernel_shape=[2], strides=[5], auto_pad="SAME_UPPER")
    model = _model(node, [1, 1, 5], {"w": np.ones((1, 1, 2), np.float32)}, 17)
    _assert_contains(model, [1, 1, 5])


def test_conv_integer_same_upper_keeps_a_negative_pad_before() -> None:
    graph = oh.make_graph([oh.make_node("ConvInteger", ["x", "w"], ["y"], kernel_shape=[2], strides=[5],
                                        auto_pad="SAME_UPPER")], "g",
                          [oh.make_tensor_value_info("x", TensorProto.UINT8, [1, 1, 5])],
                          [oh.make_empty_tensor_value_info("y")], [nh.from_array(np.ones((1, 1, 2), np.uint8), "w")])
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", 17)])
    model.ir_version = 8
    analysis = ranum.analyze(model, {"inputs": {"x": [0, 255]}, "weights": {"default": "exact"}})
    lo, hi = analysis.bounds("y")
    x = np.array([[[0, 100, 200, 0, 0]]], np.uint8)
    y = _runtime(model, x)
    assert int(y.ravel()[0]) == 300 and lo.ravel()[0] <= 300 <= hi.ravel()[0]


def test_conv_transpose_same_is_never_longer_than_the_full_output() -> None:
    """Kernel 1, stride 2 over 7: the full output has 13 elements (not 14), its first one real."""
    node = oh.make_node("ConvTranspose", ["xw", "w"], ["y"], strides=[2], auto_pad="SAME_UPPER")
    model = _model(node, [1, 1, 7], {"w": np.ones((1, 1, 1), np.float32)}, 17)
    _assert_contains(model, [1, 1, 7])
    lo, _ = ranum.analyze(model, {"inputs": {"x": [0, 1]}, "weights": {"default": "exact"}}).bounds("y")
    assert np.shape(lo)[-1] == 13


@pytest.mark.parametrize("elem_type", [FLOAT, TensorProto.FLOAT16, TensorProto.DOUBLE])
def test_max_pool_of_padding_only_is_the_lowest_value(elem_type: int) -> None:
    """A dilated window that steps over the only element: onnxruntime gives the type's lowest (float16: -inf)."""
    node = oh.make_node("MaxPool", ["xw"], ["y"], kernel_shape=[2], dilations=[2], pads=[1, 1])
    dtype = {FLOAT: np.float32, TensorProto.FLOAT16: np.float16, TensorProto.DOUBLE: np.float64}[elem_type]
    graph = oh.make_graph([node], "g", [oh.make_tensor_value_info("xw", elem_type, [1, 1, 1])],
                          [oh.make_empty_tensor_value_info("y")])
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", 19)])
    model.ir_version = 8
    rule = MaxPool(kernel_shape=(2,), dilations=(2,), pads=(1, 1))
    ctx = NodeContext(Node("p", "MaxPool", "", ("xw",), ("y",), {}), 19, (elem_type,), (elem_type,), (None,), 1 << 16)
    x = Interval.from_full(torch.zeros((1, 1, 1), dtype=torch.float64),
                                                 torch.ones((1, 1, 1), dtype=torch.float64), elem_type)
    lo, hi = rule.abstract(ctx, x).full()
    options = ort.SessionOptions()
    options.log_severity_level = 4
    y = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"]).run(
        None, {"xw": np.full((1, 1, 1), 0.5, dtype)})[0].astype(np.float64)
    assert float(lo.min()) <= float(y.min()) and float(y.max()) <= float(hi.max()) and bool((lo <= hi).all())


def test_a_padding_only_max_pool_is_not_capped_by_its_input_norm() -> None:
    """The whole-tensor norm cap of a MaxPool assumes each window reads an input element: one of padding
    only gives the lowest float32 whatever the input, and a cap at sqrt(windows) ||x|| inverted its bounds."""
    node = oh.make_node("MaxPool", ["x"], ["y"], kernel_shape=[2], dilations=[2], pads=[1, 1])
    graph = oh.make_graph([node], "g", [oh.make_tensor_value_info("x", FLOAT, [1, 1, 1])],
                          [oh.make_empty_tensor_value_info("y")])
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", 19)])
    model.ir_version = 8
    lo, hi = ranum.analyze(model, {"inputs": {"x": [0, 1]}}).bounds("y")
    y = _runtime(model, np.full((1, 1, 1), 0.5, np.float32))
    assert bool(np.all((lo <= y) & (y <= hi)))


def test_pad_wrap_crops_before_it_wraps() -> None:
    """Pads [-1, 2] in wrap mode over 3 elements: onnxruntime wraps over the 2 left after the crop."""
    pads = np.array([0, 0, -1, 0, 0, 2], np.int64)
    node = oh.make_node("Pad", ["xw", "pads"], ["y"], mode="wrap")
    model = _model(node, [1, 1, 3], {"pads": pads}, 19)
    _assert_contains(model, [1, 1, 3])


def test_resize_half_pixel_symmetric_floor_allows_both_neighbours() -> None:
    """A coordinate within an ulp of an integer: onnxruntime's order of operations may pick either pixel."""
    sizes = np.array([1, 1, 3], np.int64)
    node = oh.make_node("Resize", ["xw", "", "", "sizes"], ["y"], mode="nearest", nearest_mode="floor",
                        coordinate_transformation_mode="half_pixel_symmetric")
    model = _model(node, [1, 1, 5], {"sizes": sizes}, 19)
    _assert_contains(model, [1, 1, 5])


def test_bidirectional_rnn_consumes_alphas_in_order() -> None:
    """[Sigmoid, Affine] over both directions: the reverse Affine takes alpha[0] and beta[0] (0.5), not 11.5."""
    hidden = 1
    attrs = {"hidden_size": hidden, "direction": "bidirectional", "activations": ["Sigmoid", "Affine"],
             "activation_alpha": [1.0, 3.0], "activation_beta": [0.0, 10.0]}
    inits = {"Wr": np.zeros((2, 1, 1), np.float32), "R": np.zeros((2, 1, 1), np.float32),
             "B": np.array([[0.5, 0.0], [0.5, 0.0]], np.float32)}
    model = _model(oh.make_node("RNN", ["xw", "Wr", "R", "B"], ["y"], **attrs), [2, 1, 1], inits, 14)
    _assert_contains(model, [2, 1, 1])


def test_rnn_activation_without_alpha_takes_the_onnx_default() -> None:
    """RNN LeakyRelu without activation_alpha: onnxruntime uses 0.01 (-0.005 for a pre-activation of -0.5)."""
    inits = {"Wr": np.zeros((1, 1, 1), np.float32), "R": np.zeros((1, 1, 1), np.float32),
             "B": np.array([[-0.5, 0.0]], np.float32)}
    node = oh.make_node("RNN", ["xw", "Wr", "R", "B"], ["y"], hidden_size=1, activations=["LeakyRelu"])
    model = _model(node, [1, 1, 1], inits, 14)
    _assert_contains(model, [1, 1, 1])


def test_empty_slice_gives_an_empty_tensor() -> None:
    inits = {"starts": np.array([3], np.int64), "ends": np.array([1], np.int64), "axes": np.array([0], np.int64)}
    model = _model(oh.make_node("Slice", ["xw", "starts", "ends", "axes"], ["y"]), [4], inits, 18)
    analysis = ranum.analyze(model, {"inputs": {"x": [0, 1]}, "weights": {"default": "exact"}})
    assert not analysis.unsupported
    lo, _ = analysis.bounds("y")
    assert np.shape(lo) == (0,)


@pytest.mark.parametrize("op", ["MaxPool", "AveragePool", "LpPool"])
def test_pooling_with_no_window_gives_an_empty_tensor(op: str) -> None:
    """Kernel 3, stride 2 over 1 element: no window fits (onnxruntime's size 0 too)."""
    node = oh.make_node(op, ["xw"], ["y"], kernel_shape=[3], strides=[2])
    model = _model(node, [1, 1, 1], {}, 18)
    analysis = ranum.analyze(model, {"inputs": {"x": [0, 1]}, "weights": {"default": "exact"}})
    assert not analysis.unsupported
    lo, _ = analysis.bounds("y")
    assert np.shape(lo) == (1, 1, 0) == _runtime(model, np.zeros((1, 1, 1), np.float32)).shape
