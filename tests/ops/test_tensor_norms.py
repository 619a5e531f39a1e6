"""The norm cap of deep networks' intervals (ranum/ops/_tensor_norms.py): it removes the overflow
that interval growth alone reports on a deep CNN with exact weights, and stays sound in onnxruntime."""

from __future__ import annotations

import math

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

import ranum
from ranum import interpret
from tests.zoo.runtime import Runner

CHANNELS, SIZE = 32, 4


def _unit_gain_conv(rng: np.random.Generator, name: str) -> onnx.TensorProto:
    """A 3x3 filter bank scaled so that sqrt(9) * sigma_max([W_1 ... W_9]) is 0.9."""
    w = rng.standard_normal((CHANNELS, CHANNELS, 3, 3))
    w *= 0.9 / (3 * float(np.linalg.svd(w.reshape(CHANNELS, -1), compute_uv=False)[0]))
    return numpy_helper.from_array(w.astype(np.float32), name)


def _cnn_model(nodes: list, inits: list, name: str, opset: int) -> onnx.ModelProto:
    """A model from ``x`` (1, CHANNELS, SIZE, SIZE) to ``y`` (1, 4)."""
    graph = helper.make_graph(nodes, name,
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, CHANNELS, SIZE, SIZE])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def deep_cnn(layers: int) -> onnx.ModelProto:
    """x -> Conv * layers, a Relu and a residual Add every 8 layers -> MaxPool -> GlobalAveragePool ->
    Flatten -> Gemm. The true gain per layer is below 1; interval growth is about 3 (sum of |w|)."""
    rng = np.random.default_rng(7)
    nodes, inits, current, block = [], [], "x", "x"
    for i in range(layers):
        inits += [_unit_gain_conv(rng, f"w{i}"),
                  numpy_helper.from_array(rng.uniform(-0.1, 0.1, CHANNELS).astype(np.float32), f"b{i}")]
        nodes.append(helper.make_node("Conv", [current, f"w{i}", f"b{i}"], [f"c{i}"], pads=[1, 1, 1, 1]))
        current = f"c{i}"
        if i % 8 == 7:
            nodes += [helper.make_node("Relu", [current], [f"r{i}"]),
                      helper.make_node("Add", [f"r{i}", block], [f"s{i}"])]
            current = block = f"s{i}"
    inits += [numpy_helper.from_array(rng.standard_normal((4, CHANNELS)).astype(np.float32) * 0.3, "fc"),
              numpy_helper.from_array(np.zeros(4, np.float32), "fc_b")]
    nodes += [helper.make_node("MaxPool", [current], ["pool"], kernel_shape=[2, 2]),
              helper.make_node("GlobalAveragePool", ["pool"], ["gap"]),
              helper.make_node("Flatten", ["gap"], ["flat"]),
              helper.make_node("Gemm", ["flat", "fc", "fc_b"], ["y"], transB=1)]
    return _cnn_model(nodes, inits, "deep_cnn", 18)


SPEC = {"inputs": {"x": [-3.0, 3.0]}, "weights": {"default": "exact"}}
LAYERS = 128


def test_norms_remove_the_overflow_of_interval_growth(monkeypatch: pytest.MonkeyPatch) -> None:
    model = deep_cnn(LAYERS)
    assert not ranum.check(model, SPEC).findings
    monkeypatch.setattr(interpret, "NORM_CAPPED", frozenset())
    assert any(f.hazard_id == "overflow" for f in ranum.check(model, SPEC).findings)


def test_each_weight_gain_is_computed_once_per_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """A node's norm is asked where its result is capped and again where a later cap reads it: the
    weight's singular value bound (a Gram matrix) is computed once."""
    from ranum.ops import _tensor_norms

    matrices: list[float] = []  # each weight of the model is a different random draw: its sum names it
    sigma_max = _tensor_norms.largest_singular_value_bound
    monkeypatch.setattr(_tensor_norms, "largest_singular_value_bound",
                        lambda *args: matrices.append(float(args[0].sum())) or sigma_max(*args))
    assert not ranum.check(deep_cnn(LAYERS), SPEC).findings
    assert matrices and len(set(matrices)) == len(matrices)


def test_capped_intervals_hold_onnxruntime_values() -> None:
    model = deep_cnn(LAYERS)
    analysis = ranum.analyze(model, SPEC)
    rng = np.random.default_rng(0)
    _assert_values_inside(model, analysis, [
        np.full((1, CHANNELS, SIZE, SIZE), 3.0), np.full((1, CHANNELS, SIZE, SIZE), -3.0),
        rng.choice([-3.0, 3.0], (1, CHANNELS, SIZE, SIZE)), rng.uniform(-3, 3, (1, CHANNELS, SIZE, SIZE))])
    highs = [analysis.bounds(node.outputs[0])[1].max() for node in analysis.graph.nodes if node.op_type == "Conv"]
    # some convolutions were bounded by the norm, far below their interval growth
    assert any(math.isfinite(hi) and hi < 1e30 < 3 * 8.0 ** 40 for hi in highs)


def test_tensor_norm_of_an_interval_counts_every_element() -> None:
    from ranum.domain.interval import Interval
    from ranum.ops._tensor_norms import interval_norm

    iv = Interval.uniform(-2.0, 1.0, (3, 4), TensorProto.FLOAT)
    assert interval_norm(iv) == pytest.approx(2.0 * math.sqrt(12))
    assert interval_norm(Interval.from_full(torch.tensor([0.0, -3.0]), torch.tensor([4.0, 3.0]),
                                            TensorProto.FLOAT)) == pytest.approx(5.0)


def test_a_mean_whose_float_sum_can_overflow_is_not_capped() -> None:
    # mean(|x|) of four values up to 1.7e38 is finite in real numbers, but the float32 sum overflows
    model = onnx.parser.parse_model("""
    <ir_version: 8, opset_import: ["" : 18]>
    g (float[1,4] x) => (float[1] y) { a = Abs(x)  y = ReduceMean <keepdims: int = 0> (a) }
    """)
    analysis = ranum.analyze(model, {"inputs": {"x": [-1.7e38, 1.7e38]}})
    assert analysis.bounds("y")[1].max() == math.inf
    values = Runner(model).run({"x": np.full((1, 4), 1.7e38, np.float32)})
    assert np.isinf(values["y"]).all()


def _assert_values_inside(model: onnx.ModelProto, analysis, samples: list[np.ndarray]) -> None:
    """Every node output that onnxruntime computes for each sample ``x`` lies within ranum's bounds."""
    runner = Runner(model)
    for x in samples:
        values = runner.run({"x": x.astype(np.float32)})
        for node in analysis.graph.nodes:
            lo, hi = analysis.bounds(node.outputs[0])
            v = np.asarray(values[node.outputs[0]], dtype=np.float64)
            assert ((v >= lo) & (v <= hi)).all(), node.name


def deep_cnn_mixed(layers: int) -> onnx.ModelProto:
    """Like :func:`deep_cnn`, with BatchNormalization, LeakyRelu and a per-channel Mul after each
    convolution, and a spatial ReduceMean and a MatMul head: every other rule of the norm caps."""
    rng = np.random.default_rng(11)
    nodes, inits, current, block = [], [], "x", "x"
    for i in range(layers):
        bn = [numpy_helper.from_array(rng.uniform(lo, hi, CHANNELS).astype(np.float32), f"{n}{i}")
              for n, lo, hi in (("g", 0.9, 1.1), ("be", -0.1, 0.1), ("m", -0.1, 0.1), ("v", 0.9, 1.1))]
        inits += [_unit_gain_conv(rng, f"w{i}"), *bn,
                  numpy_helper.from_array(rng.uniform(0.8, 1.0, (CHANNELS, 1, 1)).astype(np.float32), f"k{i}")]
        nodes += [helper.make_node("Conv", [current, f"w{i}"], [f"c{i}"], pads=[1, 1, 1, 1]),
                  helper.make_node("BatchNormalization", [f"c{i}", f"g{i}", f"be{i}", f"m{i}", f"v{i}"], [f"n{i}"]),
                  helper.make_node("Mul", [f"n{i}", f"k{i}"], [f"q{i}"])]
        current = f"q{i}"
        if i % 8 == 7:
            nodes += [helper.make_node("LeakyRelu", [current], [f"r{i}"], alpha=0.1),
                      helper.make_node("Add", [f"r{i}", block], [f"s{i}"])]
            current = block = f"s{i}"
    inits.append(numpy_helper.from_array(rng.standard_normal((CHANNELS, 4)).astype(np.float32) * 0.3, "head"))
    nodes += [helper.make_node("ReduceMean", [current], ["avg"], axes=[2, 3], keepdims=0),
              helper.make_node("MatMul", ["avg", "head"], ["y"])]
    return _cnn_model(nodes, inits, "deep_cnn_mixed", 17)


def test_caps_through_batch_norm_mul_leaky_relu_and_mean_are_sound(monkeypatch: pytest.MonkeyPatch) -> None:
    model = deep_cnn_mixed(LAYERS)
    analysis = ranum.analyze(model, SPEC)
    assert not ranum.check(model, SPEC).findings
    rng = np.random.default_rng(1)
    _assert_values_inside(model, analysis, [np.full((1, CHANNELS, SIZE, SIZE), 3.0),
                                            rng.uniform(-3, 3, (1, CHANNELS, SIZE, SIZE))])
    monkeypatch.setattr(interpret, "NORM_CAPPED", frozenset())
    assert any(f.hazard_id == "overflow" for f in ranum.check(model, SPEC).findings)


def deep_cnn_uneven_batch_norm(layers: int) -> onnx.ModelProto:
    """Conv -> BatchNormalization, ``layers`` times: half the channels have scale 10 and variance 100,
    the others scale 0.1 and variance 0.01, so every channel's factor is 1 (the largest scale over the
    smallest deviation is 100)."""
    rng = np.random.default_rng(3)
    half = CHANNELS // 2
    scale = np.array([10.0] * half + [0.1] * half, np.float32)
    var = np.array([100.0] * half + [0.01] * half, np.float32)
    nodes, inits, current = [], [], "x"
    for i in range(layers):
        inits += [_unit_gain_conv(rng, f"w{i}"), numpy_helper.from_array(scale, f"g{i}"),
                  numpy_helper.from_array(np.zeros(CHANNELS, np.float32), f"be{i}"),
                  numpy_helper.from_array(np.zeros(CHANNELS, np.float32), f"m{i}"),
                  numpy_helper.from_array(var, f"v{i}")]
        nodes += [helper.make_node("Conv", [current, f"w{i}"], [f"c{i}"], pads=[1, 1, 1, 1]),
                  helper.make_node("BatchNormalization", [f"c{i}", f"g{i}", f"be{i}", f"m{i}", f"v{i}"], [f"n{i}"],
                                   epsilon=0.0)]
        current = f"n{i}"
    inits.append(numpy_helper.from_array(rng.standard_normal((CHANNELS, 4)).astype(np.float32) * 0.3, "head"))
    nodes += [helper.make_node("ReduceMean", [current], ["avg"], axes=[2, 3], keepdims=0),
              helper.make_node("MatMul", ["avg", "head"], ["y"])]
    return _cnn_model(nodes, inits, "deep_cnn_uneven_batch_norm", 17)


def test_batch_norm_gain_is_the_largest_factor_of_one_channel() -> None:
    model = deep_cnn_uneven_batch_norm(LAYERS)
    analysis = ranum.analyze(model, SPEC)
    assert not ranum.check(model, SPEC).findings  # 100 per layer (scale 10 over deviation 0.1) overflowed
    _assert_values_inside(model, analysis, [np.full((1, CHANNELS, SIZE, SIZE), 3.0),
                                            np.random.default_rng(2).uniform(-3, 3, (1, CHANNELS, SIZE, SIZE))])


def _unit_gain_filters(rng: np.random.Generator, name: str, c_in: int, size: int) -> onnx.TensorProto:
    """A ``size`` x ``size`` filter bank from ``c_in`` to CHANNELS channels with a gain bound of 0.9."""
    w = rng.standard_normal((CHANNELS, c_in, size, size))
    w *= 0.9 / (size * float(np.linalg.svd(w.reshape(CHANNELS, -1), compute_uv=False)[0]))
    return numpy_helper.from_array(w.astype(np.float32), name)


def deep_dense_cnn(layers: int) -> onnx.ModelProto:
    """DenseNet/Inception-like: each layer concatenates a 3x3 convolution's output with its input and
    mixes the two with a 1x1 convolution; every fourth layer a padded 3x3 AveragePool, and a Slice of
    the channels before the head."""
    rng = np.random.default_rng(5)
    nodes, inits, current = [], [], "x"
    inits.append(numpy_helper.from_array(np.array([0, 0], np.int64), "starts"))
    inits.append(numpy_helper.from_array(np.array([CHANNELS // 2, SIZE], np.int64), "ends"))
    inits.append(numpy_helper.from_array(np.array([1, 2], np.int64), "axes"))
    for i in range(layers):
        inits += [_unit_gain_filters(rng, f"w{i}", CHANNELS, 3), _unit_gain_filters(rng, f"m{i}", 2 * CHANNELS, 1)]
        nodes += [helper.make_node("Conv", [current, f"w{i}"], [f"c{i}"], pads=[1, 1, 1, 1]),
                  helper.make_node("Concat", [f"c{i}", current], [f"k{i}"], axis=1),
                  helper.make_node("Conv", [f"k{i}", f"m{i}"], [f"d{i}"])]
        current = f"d{i}"
        if i % 4 == 3:
            nodes.append(helper.make_node("AveragePool", [current], [f"p{i}"], kernel_shape=[3, 3],
                                          pads=[1, 1, 1, 1], count_include_pad=i % 8 == 3))
            current = f"p{i}"
    inits.append(numpy_helper.from_array(rng.standard_normal((CHANNELS // 2, 4)).astype(np.float32) * 0.3, "head"))
    nodes += [helper.make_node("Slice", [current, "starts", "ends", "axes"], ["half"]),
              helper.make_node("ReduceMean", ["half"], ["avg"], axes=[2, 3], keepdims=0),
              helper.make_node("MatMul", ["avg", "head"], ["y"])]
    return _cnn_model(nodes, inits, "deep_dense_cnn", 17)


def test_caps_through_concat_average_pool_and_slice_are_sound(monkeypatch: pytest.MonkeyPatch) -> None:
    model = deep_dense_cnn(64)
    analysis = ranum.analyze(model, SPEC)
    assert not ranum.check(model, SPEC).findings
    rng = np.random.default_rng(2)
    _assert_values_inside(model, analysis, [np.full((1, CHANNELS, SIZE, SIZE), -3.0),
                                            rng.uniform(-3, 3, (1, CHANNELS, SIZE, SIZE))])
    monkeypatch.setattr(interpret, "NORM_CAPPED", frozenset())
    assert any(f.hazard_id == "overflow" for f in ranum.check(model, SPEC).findings)


def _add_pooled_head(nodes: list, inits: list, rng: np.random.Generator, current: str) -> None:
    """current -> GlobalAveragePool -> Flatten -> MatMul by a random (CHANNELS, 4) head -> y."""
    inits.append(numpy_helper.from_array(rng.standard_normal((CHANNELS, 4)).astype(np.float32) * 0.3, "head"))
    nodes += [helper.make_node("GlobalAveragePool", [current], ["gap"]),
              helper.make_node("Flatten", ["gap"], ["flat"]),
              helper.make_node("MatMul", ["flat", "head"], ["y"])]


def deep_split_cnn(layers: int) -> onnx.ModelProto:
    """YOLO's C2f-like blocks: a 3x3 convolution split in two halves along the channels, one half through
    another 3x3 convolution, the halves and its result concatenated and mixed by a 1x1 convolution."""
    rng = np.random.default_rng(11)
    nodes, inits, current = [], [], "x"
    inits.append(numpy_helper.from_array(np.array([CHANNELS // 2, CHANNELS // 2], np.int64), "halves"))
    for i in range(layers):
        inits += [_unit_gain_filters(rng, f"w{i}", CHANNELS, 3), _unit_gain_filters(rng, f"v{i}", CHANNELS // 2, 3),
                  _unit_gain_filters(rng, f"m{i}", 2 * CHANNELS, 1)]
        nodes += [helper.make_node("Conv", [current, f"w{i}"], [f"a{i}"], pads=[1, 1, 1, 1]),
                  helper.make_node("Split", [f"a{i}", "halves"], [f"p{i}", f"q{i}"], axis=1),
                  helper.make_node("Conv", [f"q{i}", f"v{i}"], [f"b{i}"], pads=[1, 1, 1, 1]),
                  helper.make_node("Concat", [f"p{i}", f"q{i}", f"b{i}"], [f"k{i}"], axis=1),
                  helper.make_node("Conv", [f"k{i}", f"m{i}"], [f"d{i}"])]
        current = f"d{i}"
    _add_pooled_head(nodes, inits, rng, current)
    return _cnn_model(nodes, inits, "deep_split_cnn", 17)


def test_the_parts_of_a_split_keep_their_input_norm() -> None:
    """Each part of a Split holds some of its input's elements: its norm is at most the input's. Split was
    not in the chain, so every C2f block of a YOLOv8/YOLO11 restarted from its parts' interval norms (their
    magnitude times the root of their size): YOLO11n's attention overflowed with exact weights."""
    model = deep_split_cnn(64)
    analysis = ranum.analyze(model, SPEC)
    assert not ranum.check(model, SPEC).findings
    rng = np.random.default_rng(4)
    _assert_values_inside(model, analysis, [np.full((1, CHANNELS, SIZE, SIZE), 3.0),
                                            rng.uniform(-3, 3, (1, CHANNELS, SIZE, SIZE))])


def deep_resize_cnn(layers: int) -> onnx.ModelProto:
    """A U-Net-like chain: every layer a 2x2 AveragePool down (halving the norm), then a Resize back up (scales
    2, doubling it)."""
    rng = np.random.default_rng(13)
    nodes, inits, current = [], [], "x"
    inits += [numpy_helper.from_array(np.array([1.0, 1.0, 2.0, 2.0], np.float32), "scales"),
              numpy_helper.from_array(np.zeros(0, np.float32), "roi")]
    for i in range(layers):
        inits.append(_unit_gain_filters(rng, f"w{i}", CHANNELS, 3))
        nodes += [helper.make_node("Conv", [current, f"w{i}"], [f"c{i}"], pads=[1, 1, 1, 1]),
                  helper.make_node("AveragePool", [f"c{i}"], [f"p{i}"], kernel_shape=[2, 2], strides=[2, 2]),
                  helper.make_node("Resize", [f"p{i}", "roi", "scales"], [f"u{i}"], mode="nearest",
                                   coordinate_transformation_mode="asymmetric", nearest_mode="floor")]
        current = f"u{i}"
    _add_pooled_head(nodes, inits, rng, current)
    return _cnn_model(nodes, inits, "deep_resize_cnn", 13)


def test_a_nearest_resize_grows_the_norm_by_the_root_of_its_copies(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each element of a 2x nearest upsampling feeds 4 outputs: the norm doubles. Resize was not in the chain,
    so a U-Net's or a YOLO neck's chain restarted after every upsampling from the interval's norm."""
    from ranum.ops import _tensor_norms

    model = deep_resize_cnn(128)
    analysis = ranum.analyze(model, SPEC)
    assert not ranum.check(model, SPEC).findings
    rng = np.random.default_rng(6)
    _assert_values_inside(model, analysis, [np.full((1, CHANNELS, SIZE, SIZE), 3.0),
                                            rng.uniform(-3, 3, (1, CHANNELS, SIZE, SIZE))])
    monkeypatch.setattr(_tensor_norms, "_RULES", {k: v for k, v in _tensor_norms._RULES.items() if k != "Resize"})
    assert any(f.hazard_id == "overflow" for f in ranum.check(model, SPEC).findings)


def test_convolution_gain_stacks_the_narrow_side_and_bounds_the_operator() -> None:
    from ranum.ops._eigenvalues import largest_singular_value_bound as _sigma_max
    from ranum.ops._tensor_norms import _stacked_offsets

    generator = torch.Generator().manual_seed(3)
    w = torch.randn(4, 32, 3, 3, generator=generator, dtype=torch.float64)
    per_group = w.reshape(1, 4, 32, 9)
    side_by_side = float(_sigma_max(per_group.flatten(2))[0]) * 3
    stacked = float(_sigma_max(_stacked_offsets(per_group))[0]) * 3
    assert stacked < side_by_side
    # the operator's norm (power iteration on conv^T conv: a lower estimate) stays below the bound
    x = torch.randn(1, 32, 12, 12, generator=generator, dtype=torch.float64)
    for _ in range(60):
        x = torch.nn.functional.conv_transpose2d(torch.nn.functional.conv2d(x, w, padding=1), w, padding=1)
        x = x / x.norm()
    gain = float(torch.nn.functional.conv2d(x, w, padding=1).norm())
    assert gain <= stacked


@pytest.mark.parametrize("shape", [(1, 64, 700), (2, 300, 40), (1, 8, 5000)])
def test_float32_gram_bounds_the_largest_singular_value(shape) -> None:
    """Float32 weights take their Gram matrix in float32 chunks: the bound still lies above the largest
    singular value (SVD in float64), within a fraction of a percent of it; rows of mixed magnitudes
    and near-cancelling pairs stress the rounding."""
    from ranum.ops import _eigenvalues as norms

    generator = torch.Generator().manual_seed(sum(shape))
    a = torch.randn(shape, generator=generator, dtype=torch.float64)
    a[..., 0, :] *= 1e3  # one dominant row
    a[..., -1, :] = a[..., -2, :] + 2.0**-20  # two rows that nearly cancel in a difference
    a = a.float().double()  # float32 values, as a float32 model's weights
    rows = a if shape[-2] <= shape[-1] else a.transpose(-1, -2)
    assert norms.gram_with_error(rows)[2] > 2.0**-200  # the float32 path (its underflow term)
    bound = norms.largest_singular_value_bound(a)
    exact = torch.linalg.matrix_norm(a, ord=2)
    assert bool((bound >= exact).all()) and bool((bound <= exact * 1.005).all())
    wide = a + 2.0**-40  # not float32 values: one float64 product
    assert norms.gram_with_error(wide if shape[-2] <= shape[-1] else wide.transpose(-1, -2))[2] < 2.0**-900
    assert bool((norms.largest_singular_value_bound(wide) >= torch.linalg.matrix_norm(wide, ord=2)).all())


@pytest.mark.parametrize("value", [0.0, 1.0])
def test_zero_padding_keeps_the_norm(value: float) -> None:
    """Keras pads explicitly (ZeroPadding2D, 'same' convolutions through tf2onnx): a Pad of zeros keeps the
    norm, so the caps reach past it; a Pad of ones adds to it (no cap: the overflow stays reported)."""
    model = deep_cnn(LAYERS)
    pads = numpy_helper.from_array(np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64), "pads")
    filler = numpy_helper.from_array(np.array(value, np.float32), "filler")
    nodes = []
    for node in model.graph.node:
        if node.op_type == "Conv":
            nodes.append(helper.make_node("Pad", [node.input[0], "pads", "filler"], [f"{node.output[0]}_padded"]))
            nodes.append(helper.make_node("Conv", [f"{node.output[0]}_padded", *node.input[1:]], node.output))
        else:
            nodes.append(node)
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    model.graph.initializer.extend([pads, filler])
    findings = ranum.check(model, SPEC).findings
    assert bool(findings) == (value != 0.0)
    if value == 0.0:
        analysis = ranum.analyze(model, SPEC)
        rng = np.random.default_rng(1)
        _assert_values_inside(model, analysis, [np.full((1, CHANNELS, SIZE, SIZE), 3.0),
                                                rng.uniform(-3, 3, (1, CHANNELS, SIZE, SIZE))])


def _unit_gain_stack(layers: int, rng: np.random.Generator) -> tuple[list, list, str]:
    nodes, inits, current = [], [], "x"
    for i in range(layers):
        inits.append(_unit_gain_conv(rng, f"w{i}"))
        nodes.append(helper.make_node("Conv", [current, f"w{i}"], [f"c{i}"], pads=[1, 1, 1, 1]))
        current = f"c{i}"
    return nodes, inits, current


def _layer_norm(x: str, decomposed: bool) -> tuple[list, list]:
    """LayerNormalization over axes 1.. of ``x`` (gamma 1, beta 0) into ``normed``, fused or as
    TorchScript exports it before opset 17 (ReduceMean, Sub, Pow, ReduceMean, Add, Sqrt, Div)."""
    if not decomposed:
        return ([helper.make_node("LayerNormalization", [x, "gamma", "beta"], ["normed"], axis=1)],
                [numpy_helper.from_array(np.ones((CHANNELS, SIZE, SIZE), np.float32), "gamma"),
                 numpy_helper.from_array(np.zeros((CHANNELS, SIZE, SIZE), np.float32), "beta")])
    axes = numpy_helper.from_array(np.array([1, 2, 3], np.int64), "axes")
    return ([helper.make_node("ReduceMean", [x, "axes"], ["mean"]),
             helper.make_node("Sub", [x, "mean"], ["centred"]),
             helper.make_node("Pow", ["centred", "two"], ["squares"]),
             helper.make_node("ReduceMean", ["squares", "axes"], ["variance"]),
             helper.make_node("Add", ["variance", "eps"], ["shifted"]),
             helper.make_node("Sqrt", ["shifted"], ["deviation"]),
             helper.make_node("Div", ["centred", "deviation"], ["normed"])],
            [axes, numpy_helper.from_array(np.array(2.0, np.float32), "two"),
             numpy_helper.from_array(np.array(1e-5, np.float32), "eps")])


@pytest.mark.parametrize(("layers", "decomposed"), [(47, False), (50, False), (47, True)])
def test_a_layer_norm_behind_bounds_whose_squares_overflow_gets_a_cap(layers: int, decomposed: bool) -> None:
    """Convolutions grow the interval without reaching infinity, 50 layers past sqrt(float32 max) (about
    2e19), 47 layers to about 1.6e18, where one square fits float32 but the sum of the 512 that a
    LayerNormalization's variance adds does not: it cannot use its sqrt(n) bound, and the Exp behind it
    overflowed; the norm cap now applies there too, and the normalised values stay within sqrt(n)."""
    rng = np.random.default_rng(3)
    nodes, inits, current = _unit_gain_stack(layers, rng)
    norm_nodes, norm_inits = _layer_norm(current, decomposed)
    nodes += norm_nodes + [helper.make_node("Mul", ["normed", "quarter"], ["scaled"]),
                           helper.make_node("Exp", ["scaled"], ["e"])]
    inits += norm_inits + [numpy_helper.from_array(np.full((1, 1, 1, 1), 0.25, np.float32), "quarter")]
    graph = helper.make_graph(nodes, "ln", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                          [1, CHANNELS, SIZE, SIZE])],
                              [helper.make_tensor_value_info("e", TensorProto.FLOAT, [1, CHANNELS, SIZE, SIZE])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    analysis = ranum.analyze(model, SPEC)
    last = analysis.bounds(current)[1].max()
    assert math.isfinite(last)
    report = ranum.check(model, SPEC)
    assert not report.findings, [(f.op_type, f.hazard_id) for f in report.findings]
    _assert_values_inside(model, analysis, [np.full((1, CHANNELS, SIZE, SIZE), 3.0),
                                            rng.uniform(-3, 3, (1, CHANNELS, SIZE, SIZE))])


def test_no_cap_below_the_square_overflow_where_no_sum_of_squares_follows(monkeypatch: pytest.MonkeyPatch) -> None:
    """The same 47 layers (about 1.6e18) into an average pool: no sum of squares follows, and a cap (a Gram
    matrix per convolution) is not asked."""
    from ranum.ops import _tensor_norms

    matrices: list[object] = []
    sigma_max = _tensor_norms.largest_singular_value_bound
    monkeypatch.setattr(_tensor_norms, "largest_singular_value_bound",
                        lambda *args: matrices.append(args) or sigma_max(*args))
    nodes, inits, current = _unit_gain_stack(47, np.random.default_rng(3))
    nodes.append(helper.make_node("GlobalAveragePool", [current], ["y"]))
    graph = helper.make_graph(nodes, "pool", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                            [1, CHANNELS, SIZE, SIZE])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, CHANNELS, 1, 1])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    assert not ranum.check(model, SPEC).findings
    assert not matrices
