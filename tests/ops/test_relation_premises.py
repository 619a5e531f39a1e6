"""Near misses of the relational rules: graphs that look like a pattern a relation tightens, but break one of
its premises (an exponent that broadcasts the base to more axes, a mean over axes that do not hold a whole row,
a softmax rounded to 16 bits on the way, a subnormal scaled square, float64 weights whose squares underflow, an
integer power past its type). Each keeps a bound that holds onnxruntime's values, at inputs chosen to break
the relation's conclusion."""

from __future__ import annotations

import math

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import ranum


def _model(nodes: list[onnx.NodeProto], inputs: dict[str, tuple[int, list[int]]], outputs: list[str],
           constants: dict[str, np.ndarray], opset: int = 17) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes, "near_miss",
        [helper.make_tensor_value_info(name, elem, shape) for name, (elem, shape) in inputs.items()], [],
        [numpy_helper.from_array(value, name) for name, value in constants.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=9)
    inferred = {info.name: info for info in onnx.shape_inference.infer_shapes(model).graph.value_info}
    model.graph.output.extend(inferred[name] for name in outputs)
    return model


def _run(model: onnx.ModelProto, feeds: dict[str, np.ndarray], names: list[str]) -> list[np.ndarray]:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return session.run(names, feeds)


def _assert_within(analysis: ranum.Analysis, name: str, value: np.ndarray) -> None:
    low, high = analysis.bounds(name)
    value = value.astype(np.float64)
    assert bool(np.all((low <= value) & (value <= high))), f"{name}: {value} outside [{low}, {high}]"


def _squares_with_an_exponent_of_rank_three() -> list[onnx.NodeProto]:
    """x (3, 3) squared by a (1, 1, 1) exponent: the squares have shape (1, 3, 3), so axis 2 of them is axis 1
    of x (a row), while read on x's rank it would name axis 0."""
    return [helper.make_node("Pow", ["x", "two"], ["sq"])]


_TWO = np.full((1, 1, 1), 2.0, np.float32)


def test_an_rms_normalisation_whose_exponent_adds_an_axis_is_not_bounded_by_the_root_of_the_count() -> None:
    nodes = _squares_with_an_exponent_of_rank_three() + [
        helper.make_node("ReduceMean", ["sq"], ["ms"], axes=[2], keepdims=0),  # (1, 3): row means as columns
        helper.make_node("Add", ["ms", "eps"], ["r"]),
        helper.make_node("Sqrt", ["r"], ["root"]),
        helper.make_node("Div", ["x", "root"], ["y"])]
    model = _model(nodes, {"x": (TensorProto.FLOAT, [3, 3])}, ["y"],
                   {"two": _TWO, "eps": np.array(1e-5, np.float32)})
    analysis = ranum.analyze(model, {"inputs": {"x": [-1, 1]}})
    x = np.zeros((3, 3), np.float32)
    x[0, 1] = 1.0  # row 0's mean is 1/3, column 1 divides by row 1's root: sqrt(eps)
    (y,) = _run(model, {"x": x}, ["y"])
    assert y[0, 1] > 300
    _assert_within(analysis, "y", y)


def test_a_variance_whose_squares_have_another_shape_than_the_mean_keeps_its_finding() -> None:
    nodes = _squares_with_an_exponent_of_rank_three() + [
        helper.make_node("ReduceMean", ["sq"], ["a"], axes=[1], keepdims=1),  # means over x's columns
        helper.make_node("ReduceMean", ["x"], ["m"], axes=[1], keepdims=1),  # means over x's rows
        helper.make_node("Mul", ["m", "m"], ["m2"]),
        helper.make_node("Sub", ["a", "m2"], ["var"]),
        helper.make_node("Add", ["var", "eps"], ["ve"]),
        helper.make_node("Sqrt", ["ve"], ["y"])]
    model = _model(nodes, {"x": (TensorProto.FLOAT, [3, 3])}, ["var", "y"],
                   {"two": _TWO, "eps": np.array(1e-3, np.float32)})
    spec = {"inputs": {"x": [-3, 3]}}
    x = np.zeros((3, 3), np.float32)
    x[0] = 3.0
    var, y = _run(model, {"x": x}, ["var", "y"])
    assert np.isnan(y).any()
    _assert_within(ranum.analyze(model, spec), "var", var)
    assert any(f.op_type == "Sqrt" for f in ranum.check(model, spec).findings)


def test_a_centred_product_form_whose_exponent_adds_an_axis_holds_onnxruntime() -> None:
    nodes = [helper.make_node("ReduceMean", ["x"], ["m"], axes=[1], keepdims=1),
             helper.make_node("Sub", ["x", "m"], ["d"]),
             helper.make_node("Pow", ["d", "two"], ["sq"]),
             helper.make_node("ReduceMean", ["sq"], ["v"], axes=[2], keepdims=0),
             helper.make_node("Add", ["v", "eps"], ["ve"]),
             helper.make_node("Pow", ["ve", "half"], ["s"]),
             helper.make_node("Mul", ["x", "s"], ["p"]),
             helper.make_node("Neg", ["m"], ["nm"]),
             helper.make_node("Mul", ["nm", "s"], ["q"]),
             helper.make_node("Add", ["p", "q"], ["y"])]
    model = _model(nodes, {"x": (TensorProto.FLOAT, [3, 3])}, ["y"],
                   {"two": _TWO, "eps": np.array(1e-5, np.float32), "half": np.array(-0.5, np.float32)})
    analysis = ranum.analyze(model, {"inputs": {"x": [-1, 1]}})
    x = np.array([[1, -1, 1], [0, 0, 0], [0, 0, 0]], np.float32)
    (y,) = _run(model, {"x": x}, ["y"])
    assert np.abs(y).max() > 400
    _assert_within(analysis, "y", y)


def test_a_row_norm_is_not_bounded_by_a_mean_over_other_axes() -> None:
    """y = x / sqrt(mean over axis 0 of x^2): each element is at most sqrt(2), but a row of four such
    elements has a norm of sqrt(8), which a product with a column of ones reaches."""
    nodes = [helper.make_node("Mul", ["x", "x"], ["sq"]),
             helper.make_node("ReduceMean", ["sq"], ["ms"], axes=[0], keepdims=1),
             helper.make_node("Add", ["ms", "eps"], ["r"]),
             helper.make_node("Sqrt", ["r"], ["root"]),
             helper.make_node("Div", ["x", "root"], ["y"]),
             helper.make_node("MatMul", ["y", "w"], ["z"])]
    model = _model(nodes, {"x": (TensorProto.FLOAT, [2, 4])}, ["z"],
                   {"eps": np.array(1e-5, np.float32), "w": np.ones((4, 1), np.float32)})
    analysis = ranum.analyze(model, {"inputs": {"x": [-1, 1]}, "weights": {"default": "exact"}})
    (z,) = _run(model, {"x": np.array([[1, 1, 1, 1], [0, 0, 0, 0]], np.float32)}, ["z"])
    assert z[0, 0] > 5.6
    _assert_within(analysis, "z", z)


@pytest.mark.parametrize("narrow", [TensorProto.FLOAT16, TensorProto.BFLOAT16])
def test_a_softmax_rounded_to_16_bits_on_the_way_to_a_matmul_may_sum_above_one(narrow: int) -> None:
    nodes = [helper.make_node("Softmax", ["s"], ["p"], axis=-1),
             helper.make_node("Cast", ["p"], ["p16"], to=narrow),
             helper.make_node("Cast", ["p16"], ["q"], to=TensorProto.FLOAT),
             helper.make_node("MatMul", ["q", "v"], ["y"])]
    model = _model(nodes, {"s": (TensorProto.FLOAT, [64, 3]), "v": (TensorProto.FLOAT, [3, 1])}, ["y"], {},
                   opset=19)
    analysis = ranum.analyze(model, {"inputs": {"s": [-4, 4], "v": [-1, 1]}})
    scores = np.random.default_rng(0).uniform(-4, 4, (64, 3)).astype(np.float32)
    (y,) = _run(model, {"s": scores, "v": np.ones((3, 1), np.float32)}, ["y"])
    assert y.max() > 1.0002  # the rounded shares sum above 1 by more than float32's margin
    _assert_within(analysis, "y", y)


def test_softmax_shares_rounded_to_float16_subnormals_may_sum_above_one_by_more_than_a_unit() -> None:
    """A float64 softmax of 40000 terms, each small share just above 2**-25, cast to float16 and back: each rounds
    up to the subnormal 2**-24, an absolute error that 40000 shares turn into 0.0014, above float16's unit."""
    count = 40000
    nodes = [helper.make_node("Softmax", ["x"], ["p"], axis=-1),
             helper.make_node("Cast", ["p"], ["p16"], to=TensorProto.FLOAT16),
             helper.make_node("Cast", ["p16"], ["q"], to=TensorProto.DOUBLE),
             helper.make_node("MatMul", ["q", "v"], ["y"])]
    model = _model(nodes, {"x": (TensorProto.DOUBLE, [1, count])}, ["y"], {"v": np.ones((count, 1))}, opset=19)
    analysis = ranum.analyze(model, {"inputs": {"x": [-20, 0]}, "weights": {"default": "exact"}})
    share = 2.0**-25 * 1.02
    x = np.full((1, count), math.log(share / (1 - (count - 1) * share)))
    x[0, 0] = 0.0
    (y,) = _run(model, {"x": x}, ["y"])
    assert y.max() > 1 + 2.0**-10
    _assert_within(analysis, "y", y)


def test_a_scaled_square_through_a_subnormal_product_holds_its_absolute_rounding() -> None:
    """(k * x) * x with k = 2**-149: k x is a subnormal, rounded by up to half a subnormal, which x > 1 then
    scales past the relative margin of two roundings."""
    nodes = [helper.make_node("Mul", ["k", "x"], ["kx"]), helper.make_node("Mul", ["kx", "x"], ["y"])]
    model = _model(nodes, {"x": (TensorProto.FLOAT, [64])}, ["y"], {"k": np.array(2.0**-149, np.float32)})
    analysis = ranum.analyze(model, {"inputs": {"x": [2.5, 2.6]}, "weights": {"default": "exact"}})
    x = np.linspace(2.5, 2.6, 64, dtype=np.float32)
    (y,) = _run(model, {"x": x}, ["y"])
    assert y.max() == np.float32(8 * 2.0**-149)
    _assert_within(analysis, "y", y)


def test_a_norm_cap_of_float64_weights_whose_squares_underflow_is_not_zero() -> None:
    """Huge float64 activations (capped by their norm) times weights of about 1e-170: the weights' squares
    underflow float64, and a cap computed from them alone was exactly 0."""
    rng = np.random.default_rng(0)
    big = 10.0 * (np.eye(4) + 0.5)
    tiny = rng.standard_normal((4, 3)) * 1e-170
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["y1"]), helper.make_node("MatMul", ["y1", "w1"], ["y3"]),
             helper.make_node("MatMul", ["y1", "w2"], ["y2"])]
    model = _model(nodes, {"x": (TensorProto.DOUBLE, [1, 4])}, ["y2", "y3"], {"w1": big, "w2": tiny})
    analysis = ranum.analyze(model, {"inputs": {"x": [-1e153, 1e153]}, "weights": {"default": "exact"}})
    x = rng.uniform(-1e153, 1e153, (1, 4))
    (y2,) = _run(model, {"x": x}, ["y2"])
    assert np.abs(y2).max() > 1e-17
    _assert_within(analysis, "y2", y2)


@pytest.mark.parametrize("elem", [TensorProto.INT32, TensorProto.INT64])
def test_an_integer_power_past_its_type_gets_the_whole_range(elem: int) -> None:
    dtype = helper.tensor_dtype_to_np_dtype(elem)
    nodes = [helper.make_node("Pow", ["x", "e"], ["y"])]
    model = _model(nodes, {"x": (elem, [3])}, ["y"], {"e": np.array(70, dtype)})
    analysis = ranum.analyze(model, {"inputs": {"x": [2, 3]}, "weights": {"default": "exact"}})
    (y,) = _run(model, {"x": np.array([2, 3, 3], dtype)}, ["y"])
    low, high = analysis.bounds("y")
    assert bool(np.all((low <= y) & (y <= high)))


def test_constants_equal_but_for_the_sign_of_a_zero_are_not_the_same_value() -> None:
    """a = x [+0, 1] and b = x [-0, 1]: a * b is no square (its first element is -0), so 1 / (a * b) may be
    -inf there, and exp of it 0."""
    nodes = [helper.make_node("Mul", ["x", "plus"], ["a"]), helper.make_node("Mul", ["x", "minus"], ["b"]),
             helper.make_node("Mul", ["a", "b"], ["p"]), helper.make_node("Div", ["one", "p"], ["r"]),
             helper.make_node("Exp", ["r"], ["y"])]
    model = _model(nodes, {"x": (TensorProto.FLOAT, [2])}, ["y"],
                   {"plus": np.array([0.0, 1.0], np.float32), "minus": np.array([-0.0, 1.0], np.float32),
                    "one": np.array(1.0, np.float32)})
    analysis = ranum.analyze(model, {"inputs": {"x": [1, 2]}, "weights": {"default": "exact"}})
    (y,) = _run(model, {"x": np.array([1.5, 1.5], np.float32)}, ["y"])
    assert y[0] == 0.0
    _assert_within(analysis, "y", y)


def test_two_dropouts_of_another_domain_on_one_tensor_are_not_the_same_value() -> None:
    """onnxruntime's BiasDropout draws a mask per run, as Dropout does: two such nodes on one tensor differ."""
    nodes = [helper.make_node("BiasDropout", ["x", "bias"], [name], domain="com.microsoft") for name in ("a", "b")]
    nodes.append(helper.make_node("Sub", ["a", "b"], ["d"]))
    graph = helper.make_graph(nodes, "dropouts", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
                              [helper.make_tensor_value_info("d", TensorProto.FLOAT, [4])],
                              [numpy_helper.from_array(np.zeros(4, np.float32), "bias")])
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]
    model = helper.make_model(graph, opset_imports=opsets, ir_version=9)
    low, high = ranum.analyze(model, {"inputs": {"x": [-1, 1]}}).bounds("d")
    assert bool(np.all(low < 0)) and bool(np.all(high > 0))


def test_a_skip_layer_normalisation_of_a_near_constant_row_is_not_capped_by_the_root_of_its_length() -> None:
    """onnxruntime's SkipLayerNormalization takes a running (Welford) variance in float32: on a row of large,
    nearly equal values it can be far below the row's variance (here 0), and the output far past sqrt(n)."""
    node = helper.make_node("SkipLayerNormalization", ["x", "skip", "gamma", "beta"], ["y"], domain="com.microsoft",
                            epsilon=1e-12)
    graph = helper.make_graph([node], "skip_norm", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 8])],
                              [numpy_helper.from_array(np.zeros((1, 1, 8), np.float32), "skip"),
                               numpy_helper.from_array(np.full(8, 1.5, np.float32), "gamma"),
                               numpy_helper.from_array(np.full(8, 0.25, np.float32), "beta")])
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]
    model = helper.make_model(graph, opset_imports=opsets, ir_version=9)
    analysis = ranum.analyze(model, {"inputs": {"x": [487271.5, 487271.6]}, "weights": {"default": "exact"}})
    x = np.full((1, 1, 8), 487271.5625, np.float32)
    x[0, 0, 0] = 487271.53125  # one float32 unit below the others
    (y,) = _run(model, {"x": x}, ["y"])
    assert np.abs(y).max() > 1000
    _assert_within(analysis, "y", y)
