"""ONNX's experimental operators in whole graphs and on hand examples (ranum.ops.experimental).

A Tiny-YOLOv2-like opset-8 graph (ImageScaler -> Conv -> BatchNormalization -> LeakyRelu -> MaxPool ->
Conv) is analysed without unsupported operators, with finite output bounds that hold every value
onnxruntime computes on inputs and weights sampled inside the ranges. ImageScaler's bounds are exact
where its arithmetic is; two roundings that cancel are covered on exact inputs; models onnxruntime
refuses (opset 10 and later, missing attributes) are reported as unsupported, saying why.
"""

from __future__ import annotations

import zlib

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import ranum
from ranum.graph.loader import load_model
from tests.zoo.runtime import SAMPLE_MODES, Runner, check_sample, sample_feeds, sampled_tensors

FLOAT = TensorProto.FLOAT
IMAGE = (1, 3, 16, 16)


def _weight(name: str, array: np.ndarray) -> onnx.TensorProto:
    return numpy_helper.from_array(array.astype(np.float32), name)


def _tiny_yolo_like() -> onnx.ModelProto:
    """The first layers of Tiny YOLOv2 (opset 8): ImageScaler, Conv, BatchNormalization, LeakyRelu,
    MaxPool, and a 1x1 Conv as its detection head."""
    rng = np.random.default_rng(8)
    weights = [
        _weight("conv1.w", rng.normal(0.0, 0.2, (8, 3, 3, 3))), _weight("conv1.b", rng.normal(0.0, 0.1, (8,))),
        _weight("bn.scale", rng.uniform(0.5, 1.5, (8,))), _weight("bn.bias", rng.normal(0.0, 0.1, (8,))),
        _weight("bn.mean", rng.normal(0.0, 0.1, (8,))), _weight("bn.var", rng.uniform(0.5, 1.5, (8,))),
        _weight("head.w", rng.normal(0.0, 0.2, (5, 8, 1, 1))), _weight("head.b", rng.normal(0.0, 0.1, (5,))),
    ]
    nodes = [
        helper.make_node("ImageScaler", ["image"], ["scaled"], "scaler", scale=0.003921569, bias=[-0.5, -0.4, -0.3]),
        helper.make_node("Conv", ["scaled", "conv1.w", "conv1.b"], ["conv1"], "conv1", kernel_shape=[3, 3],
                         pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["conv1", "bn.scale", "bn.bias", "bn.mean", "bn.var"], ["bn"], "bn",
                         epsilon=1e-5),
        helper.make_node("LeakyRelu", ["bn"], ["act"], "act", alpha=0.1),
        helper.make_node("MaxPool", ["act"], ["pool"], "pool", kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["pool", "head.w", "head.b"], ["grid"], "head", kernel_shape=[1, 1]),
    ]
    graph = helper.make_graph(nodes, "tiny-yolo-like", [helper.make_tensor_value_info("image", FLOAT, IMAGE)],
                              [helper.make_tensor_value_info("grid", FLOAT, [1, 5, 8, 8])], initializer=weights)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 8)])
    model.ir_version = 4
    return model


@pytest.mark.parametrize("weights", ["exact", "derived"])
def test_tiny_yolo_like_graph_is_analysed_and_sound(weights: str) -> None:
    model = _tiny_yolo_like()
    report = ranum.check(model, {"inputs": {"image": [0.0, 255.0]}}, weights=weights)
    assert not report.unsupported_ops and not report.not_analysed_nodes, dict(report.not_analysed_nodes)
    analysis = report.analysis
    low, high = analysis.bounds("grid")
    assert low.shape == (1, 5, 8, 8) and np.isfinite(low).all() and np.isfinite(high).all()
    fed = {name for name, _, _ in sampled_tensors(analysis)} & {init.name for init in model.graph.initializer}
    runner = Runner(model, fed=fed)
    rng = np.random.default_rng(zlib.crc32(weights.encode()))
    for mode in SAMPLE_MODES:
        check_sample(analysis, runner.run(sample_feeds(analysis, model, mode, rng)), f"tiny-yolo [{weights}, {mode}]")


def test_experimental_operators_are_hidden_from_the_checker_and_typed_for_shape_inference(capfd) -> None:
    """The ONNX checker prints a warning on stdout for experimental operators (which would corrupt a JSON
    report); the loader hides them, and the element-wise ones let shape inference type what follows."""
    graph, _ = load_model(_tiny_yolo_like())
    assert "experimental" not in capfd.readouterr().out
    assert graph.info("scaled").shape == IMAGE and graph.info("conv1").shape == (1, 8, 16, 16)
    assert [node.op_type for node in graph.nodes][0] == "ImageScaler"


def test_experimental_operators_inside_subgraphs_are_hidden_too(capfd) -> None:
    """An If branch holding an ImageScaler: no checker warning on stdout, and the branch is analysed."""
    scaled = helper.make_graph([helper.make_node("ImageScaler", ["x"], ["y_then"], "branch_scaler", scale=2.0,
                                                 bias=[1.0, 0.0, -1.0])],
                               "then", [], [helper.make_tensor_value_info("y_then", FLOAT, [1, 3, 2, 2])])
    plain = helper.make_graph([helper.make_node("Identity", ["x"], ["y_else"])], "else", [],
                              [helper.make_tensor_value_info("y_else", FLOAT, [1, 3, 2, 2])])
    graph = helper.make_graph(
        [helper.make_node("If", ["flag"], ["y"], "choose", then_branch=scaled, else_branch=plain)], "branchy",
        [helper.make_tensor_value_info("x", FLOAT, [1, 3, 2, 2]),
         helper.make_tensor_value_info("flag", TensorProto.BOOL, [])],
        [helper.make_tensor_value_info("y", FLOAT, [1, 3, 2, 2])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 9)])
    model.ir_version = 4
    report = ranum.check(model, {"inputs": {"x": [0.0, 1.0]}})
    assert "experimental" not in capfd.readouterr().out
    assert not report.unsupported_ops and not report.not_analysed_nodes
    low, high = report.analysis.bounds("y")
    assert low.min() == -1.0 and high.max() == 3.0  # the scaled branch's extremes, joined with the plain one


# ------------------------------------------------------------------------------ hand examples
def _one_node(op_type: str, shape: tuple[int, ...], opset: int = 8, **attrs) -> onnx.ModelProto:
    node = helper.make_node(op_type, ["x"], ["y"], **attrs)
    graph = helper.make_graph([node], "one", [helper.make_tensor_value_info("x", FLOAT, shape)],
                              [helper.make_tensor_value_info("y", FLOAT, shape)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 7
    return model


def test_image_scaler_bounds_are_tight() -> None:
    """Each bound is what float32 arithmetic gives at the range's ends (both operations round to nearest,
    monotonically): with a power-of-two scale the real bounds, per channel; with 1/255, the float32
    values of ``255 * scale + bias``."""
    exact = ranum.analyze(_one_node("ImageScaler", (1, 3, 2, 2), scale=0.0078125, bias=[-1.0, 0.0, 0.5]),
                          {"inputs": {"x": [0.0, 255.0]}})
    low, high = exact.bounds("y")
    np.testing.assert_array_equal(low[0, :, 0, 0], [-1.0, 0.0, 0.5])
    np.testing.assert_array_equal(high[0, :, 0, 0], [-1.0 + 255 / 128, 255 / 128, 0.5 + 255 / 128])
    scale, bias = np.float32(0.003921569), np.array([0.0, -0.1, 0.25], np.float32)
    inexact = ranum.analyze(_one_node("ImageScaler", (1, 3, 2, 2), scale=float(scale), bias=bias.tolist()),
                            {"inputs": {"x": [0.0, 255.0]}})
    low, high = inexact.bounds("y")
    np.testing.assert_array_equal(low[0, :, 0, 0], bias)
    np.testing.assert_array_equal(high[0, :, 0, 0], np.float32(255) * scale + bias)


@pytest.mark.parametrize("op_type", ["Affine", "ImageScaler"])
def test_two_roundings_that_cancel_are_covered_on_exact_inputs(op_type: str) -> None:
    """x * a rounds (1 + 2**-12)**2 to 1 + 2**-11, which the bias cancels: onnxruntime gives 0 where the
    real result is 2**-24, so an exact input must not take the one-rounding fast path."""
    a = float(np.float32(1 + 2**-12))
    b = float(np.float32(-(1 + 2**-11)))
    attrs = {"alpha": a, "beta": b} if op_type == "Affine" else {"scale": a, "bias": [b]}
    model = _one_node(op_type, (1, 1, 1, 2), **attrs)
    x = np.full((1, 1, 1, 2), a, np.float32)
    (runtime,) = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})
    low, high = ranum.analyze(model, {"inputs": {"x": [a, a]}}).bounds("y")
    assert ((low <= runtime) & (runtime <= high)).all(), (runtime, low, high)


def _fails_in_onnxruntime(model: onnx.ModelProto) -> bool:
    """Whether onnxruntime refuses the one-node model, when loading it or when running it on zeros."""
    options = ort.SessionOptions()
    options.log_severity_level = 4
    try:
        session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
        session.run(None, {"x": np.zeros((1, 3, 2, 2), np.float32)})
    except Exception:  # noqa: BLE001 - any load or run error means onnxruntime does not run it
        return True
    return False


@pytest.mark.parametrize("opset", [10, 13, 17])
def test_opsets_from_10_are_refused_as_onnxruntime_does(opset: int) -> None:
    model = _one_node("ImageScaler", (1, 3, 2, 2), opset=opset, bias=[0.0, 0.0, 0.0])
    assert _fails_in_onnxruntime(model)
    report = ranum.check(model, {"inputs": {"x": [0.0, 1.0]}})
    assert report.unsupported_ops == ("ImageScaler",)
    assert "opset 1 to 9" in next(iter(report.unsupported_nodes.values()))


@pytest.mark.parametrize(("op_type", "attrs"), [("ParametricSoftplus", {"alpha": 1.0}), ("ScaledTanh", {"beta": 1.0}),
                                                 ("ImageScaler", {"scale": 2.0}), ("Crop", {})])
def test_attributes_onnxruntime_requires_are_required(op_type: str, attrs: dict) -> None:
    model = _one_node(op_type, (1, 3, 2, 2), **attrs)
    assert _fails_in_onnxruntime(model)
    report = ranum.check(model, {"inputs": {"x": [0.0, 1.0]}})
    assert report.unsupported_ops == (op_type,), dict(report.unsupported_nodes)


def test_parametric_softplus_is_stable_for_large_inputs() -> None:
    """onnxruntime evaluates it as beta x + ln(exp(-beta x) + 1) for beta x > 0: no overflow of exp, no
    finding, and the bound at 1e30 is finite."""
    model = _one_node("ParametricSoftplus", (1, 4), alpha=0.5, beta=2.0)
    report = ranum.check(model, {"inputs": {"x": [-1e30, 1e30]}})
    assert not report.findings
    low, high = report.analysis.bounds("y")
    assert (low >= 0).all() and np.isclose(high, 1e30).all()
    flagged = ranum.check(_one_node("ParametricSoftplus", (1, 4), alpha=0.5, beta=1e9), {"inputs": {"x": [0.0, 1e30]}})
    assert [f.hazard_id for f in flagged.findings] == ["overflow"]


# boxes whose score passes a threshold, as an NCHW image of one channel: its height is known only at run time
SELECTED_BOXES = """
<ir_version: 4, opset_import: ["" : 9]>
g (float[1, 6] scores, float[6, 4] boxes) => (float[1, 1, M, 4] scaled, float[1, 1, K, 2] cropped) {
    threshold = Constant <value = float {0.5}> ()
    above = Greater (scores, threshold)
    where = NonZero (above)
    one = Constant <value = int64 {1}> ()
    picked = Gather <axis = 0> (where, one)
    kept = Gather <axis = 0> (boxes, picked)
    image_shape = Constant <value = int64[4] {1, 1, -1, 4}> ()
    image = Reshape (kept, image_shape)
    scaled = ImageScaler <scale = 2.0, bias = [0.5]> (image)
    cropped = Crop <border = [1, 0, 1, 0]> (image)
}
"""


def test_experimental_operators_are_analysed_on_tensors_of_unknown_shape() -> None:
    """ImageScaler runs on the hull of its operand (every channel's bias), Crop keeps the hull it copies."""
    model = onnx.parser.parse_model(SELECTED_BOXES)
    analysis = ranum.analyze(model, {"inputs": {"scores": [0.0, 1.0], "boxes": [0.0, 320.0]}})
    assert not analysis.run.not_analysed, dict(analysis.run.not_analysed)
    assert [float(b) for b in analysis.bounds("scaled")] == [0.5, 640.5]
    assert [float(b) for b in analysis.bounds("cropped")] == [0.0, 320.0]
    runner = Runner(model)
    scores = np.array([[0.9, 0.1, 0.7, 0.6, 0.2, 0.8]], np.float32)
    boxes = np.random.default_rng(0).uniform(0.0, 320.0, (6, 4)).astype(np.float32)
    values = runner.run({"scores": scores, "boxes": boxes})
    for name in ("scaled", "cropped"):
        low, high = analysis.bounds(name)
        assert values[name].shape[2] == 4 and (low <= values[name]).all() and (values[name] <= high).all()
