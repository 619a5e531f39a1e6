"""The runtime facts the normalization rules rely on, checked against onnxruntime.

LayerNormalization (rows of 16 or more; shorter ones take a running variance) and InstanceNormalization compute the
variance around the computed mean (two passes): it is never negative, so with epsilon > 0 it never makes NaN/Inf.
LayerNormalization's outputs stay within sqrt(n) in magnitude, whatever the rows' magnitude; InstanceNormalization
computes ``x * cs + (B - mean * cs)``, whose cancelling products make near-constant rows of large values miss
sqrt(n) and B by their rounding, and constant rows past float32's range over ``1 / sqrt(epsilon)`` NaN.
GroupNormalization does cancel (E[x^2] - E[x]^2), so only its zero-variance hazard survives a positive epsilon.
"""

from __future__ import annotations

from unittest import mock

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

import ranum
from ranum.domain.interval import Interval
from ranum.ops.normalization import SliceVarianceHazard

CASES = [("LayerNormalization", {"axis": -1}, 17, False), ("InstanceNormalization", {}, 17, False),
         ("GroupNormalization", {"num_groups": 4}, 21, True)]


def _model(op: str, attrs: dict, opset: int) -> onnx.ModelProto:
    channels = 8
    scale_shape = [16] if op == "LayerNormalization" else [channels]
    node = helper.make_node(op, ["x", "g", "b"], ["y"], epsilon=1e-12, **attrs)
    graph = helper.make_graph(
        [node], "norm", [helper.make_tensor_value_info("x", 1, [200, channels, 16])],
        [helper.make_tensor_value_info("y", 1, [200, channels, 16])],
        initializer=[numpy_helper.from_array(np.ones(scale_shape, np.float32), "g"),
                     numpy_helper.from_array(np.zeros(scale_shape, np.float32), "b")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


@pytest.mark.parametrize(("op", "attrs", "opset", "cancels"), CASES, ids=[c[0] for c in CASES])
def test_variance_cancellation_matches_runtime(op: str, attrs: dict, opset: int, cancels: bool) -> None:
    model = _model(op, attrs, opset)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    bad = 0
    for _ in range(4):
        magnitude = 10.0 ** rng.uniform(-3, 6, (200, 1, 1))
        noise = rng.normal(0, 1e-7, (200, 8, 16)) * (rng.random((200, 1, 1)) < 0.5)
        x = (magnitude * (1 + noise)).astype(np.float32)
        bad += int((~np.isfinite(session.run(None, {"x": x})[0])).sum())
    assert (bad > 0) == cancels
    report = ranum.check(model, {"inputs": {"x": [-1e6, 1e6]}, "weights": {"default": "exact"}})
    flagged = any(f.hazard_id == "normalization-zero-variance" for f in report.findings)
    assert flagged == cancels


def test_layer_norm_outputs_stay_within_sqrt_n_for_near_constant_rows_of_any_magnitude() -> None:
    """onnxruntime's LayerNormalization computes ``(x - mean) * inv * scale + B``: no cancellation."""
    op, attrs, opset = CASES[0][:3]
    model = _model(op, attrs, opset)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(1)
    worst = 0.0
    for _ in range(6):
        magnitude = 10.0 ** rng.uniform(-3, 12, (200, 1, 1))
        noise = rng.normal(0, 1.0, (200, 8, 16)) * 10.0 ** rng.uniform(-10, -1, (200, 1, 1))
        y = session.run(None, {"x": (magnitude * (1 + noise)).astype(np.float32)})[0]
        worst = max(worst, float(np.abs(y).max()))
    spec = {"inputs": {"x": [-1e12, 1e12]}, "weights": {"default": "exact"}}
    lo, hi = ranum.analyze(model, spec).bounds("y")
    assert worst <= float(hi.max()) and -worst >= float(lo.min())
    assert float(hi.max()) <= 4.0 * 1.0001  # n = 16 normalized elements: sqrt(16)


@settings(max_examples=120, deadline=None)
@given(st.integers(0, 2**31 - 1), st.sampled_from([0.0, 1e-300, 1e-12, 1e-5, 0.1]), st.booleans(),
       st.sampled_from([1.0, 1e3, 1e8, 1e150]))
def test_the_epsilon_shortcut_never_hides_a_zero_variance_hit(seed: int, epsilon: float, nonneg: bool,
                                                               scale: float) -> None:
    """Where the hazard check answers from epsilon and the largest magnitude alone, the full row
    statistics find no hit either."""
    rng = np.random.default_rng(seed)
    grid = (2, 3, 2)
    lo = torch.tensor(rng.uniform(-1, 1, grid) * scale)
    width = torch.tensor(rng.uniform(0, 1, grid)) * torch.tensor(rng.random(grid) < 0.5) * scale
    x = Interval.create(lo, lo + width, ((0, 1), (0, 2, 5), (0, 3)), (2, 7, 4), TensorProto.FLOAT)
    hazard = SliceVarianceHazard(epsilon, axis=1, nonneg_variance=nonneg)
    if hazard._safe_by_epsilon(x):
        assert _full_check(hazard, x) is None


def _full_check(hazard: SliceVarianceHazard, x: Interval):
    """The hazard check without its shortcut."""
    with mock.patch.object(SliceVarianceHazard, "_safe_by_epsilon", lambda self, iv: False):
        return hazard.check([x], [])


def _instance_norm(length: int, scale: list[float], bias: list[float], epsilon: float) -> onnx.ModelProto:
    channels = len(scale)
    node = helper.make_node("InstanceNormalization", ["x", "s", "b"], ["y"], epsilon=epsilon)
    graph = helper.make_graph(
        [node], "instance", [helper.make_tensor_value_info("x", 1, [1, channels, length])],
        [helper.make_tensor_value_info("y", 1, [1, channels, length])],
        initializer=[numpy_helper.from_array(np.array(scale, np.float32), "s"),
                     numpy_helper.from_array(np.array(bias, np.float32), "b")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**31 - 1), st.sampled_from([1, 2, 3, 4, 7, 16]), st.floats(-3.0, 37.5),
       st.sampled_from([0.0, 6e-8, 2e-7, 1e-6, 1e-3]), st.sampled_from([1e-5, 1e-12]))
def test_instance_norm_bounds_hold_for_near_constant_rows_of_any_magnitude(seed: int, length: int, exponent: float,
                                                                            spread: float, epsilon: float) -> None:
    """Rows one or a few units apart at magnitudes up to 3e37: onnxruntime's cancelling products miss the centred
    form by their rounding (outputs of 4 where sqrt(2) bounds the centred one, 0 for B = 0.5 on a constant row of
    1e6), and give NaN where a constant row's product overflows: inside the bounds, or reported."""
    rng = np.random.default_rng(seed)
    scale, bias = list(rng.uniform(-4, 4, 2)), list(rng.uniform(-1000, 1000, 2))
    model = _instance_norm(length, scale, bias, epsilon)
    centre = 10.0**exponent * rng.choice([-1.0, 1.0])
    low, high = sorted((centre * (1 - 1e-3), centre * (1 + 1e-3)))
    report = ranum.check(model, {"inputs": {"x": [low, high]}, "weights": {"default": "exact"}})
    lo, hi = report.analysis.bounds("y")
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    for _ in range(8):
        x = np.clip(centre * (1 + spread * rng.standard_normal((1, 2, length))), low, high).astype(np.float32)
        y = session.run(None, {"x": x})[0]
        finite = np.isfinite(y)
        assert ((lo <= y) & (y <= hi))[finite].all(), (x, y, lo, hi)
        if not finite.all():
            assert any(f.hazard_id == "overflow" for f in report.findings)


def test_a_constant_row_whose_product_overflows_is_reported_and_gives_nan_in_onnxruntime() -> None:
    """``x * cs`` past float32's range for a constant row (magnitude 1.2e36, ``cs = 1 / sqrt(1e-5)``): both products
    are inf, and onnxruntime's ``inf - inf`` is NaN. Reported as an overflow; at 1e30 it is not."""
    model = _instance_norm(4, [1.0], [0.0], 1e-5)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    assert np.isnan(session.run(None, {"x": np.full((1, 1, 4), 1.2e36, np.float32)})[0]).all()
    report = ranum.check(model, {"inputs": {"x": [1e36, 1.2e36]}, "weights": {"default": "exact"}})
    assert [f.hazard_id for f in report.findings] == ["overflow"]
    assert ranum.check(model, {"inputs": {"x": [1e30, 1.2e30]}, "weights": {"default": "exact"}}).findings == ()


def test_a_convolution_of_huge_exact_weights_is_analysed_and_its_normalization_reported() -> None:
    """Weights of 3e35: the convolution's norm cap needs float64 Gram products (its float32 ones overflowed and
    the rule failed: the Conv was listed as unsupported), and the InstanceNormalization behind it can see a
    constant row of 7e36, whose product overflows (NaN in onnxruntime)."""
    weight = numpy_helper.from_array(np.full((4, 1, 10), 6.75e35, np.float32), "w")
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"]),
             helper.make_node("InstanceNormalization", ["c", "s", "b"], ["y"])]
    graph = helper.make_graph(nodes, "huge", [helper.make_tensor_value_info("x", 1, [1, 1, 16])],
                              [helper.make_tensor_value_info("y", 1, [1, 4, 7])],
                              initializer=[weight, numpy_helper.from_array(np.ones(4, np.float32), "s"),
                                           numpy_helper.from_array(np.zeros(4, np.float32), "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    report = ranum.check(model, {"inputs": {"x": [0.5, 1]}, "weights": {"default": "exact"}})
    assert report.unsupported_ops == () and not report.not_analysed_nodes
    assert [(f.op_type, f.hazard_id) for f in report.findings] == [("InstanceNormalization", "overflow")]
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    assert np.isnan(session.run(None, {"x": np.full((1, 1, 16), 1.0, np.float32)})[0]).all()


def _short_layer_norm(length: int, elem: int) -> onnx.ModelProto:
    """LayerNormalization of 64 rows of ``length`` with its Mean and InvStdDev outputs."""
    dtype = np.float16 if elem == TensorProto.FLOAT16 else np.float32
    node = helper.make_node("LayerNormalization", ["x", "g", "b"], ["y", "mean", "inv"], axis=-1, epsilon=1e-5)
    graph = helper.make_graph(
        [node], "short_rows", [helper.make_tensor_value_info("x", elem, [64, length])],
        [helper.make_tensor_value_info("y", elem, [64, length]),
         helper.make_tensor_value_info("mean", TensorProto.FLOAT, [64, 1]),
         helper.make_tensor_value_info("inv", TensorProto.FLOAT, [64, 1])],
        initializer=[numpy_helper.from_array(np.ones(length, dtype), "g"),
                     numpy_helper.from_array(np.zeros(length, dtype), "b")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


@pytest.mark.parametrize(("length", "elem", "low", "high"), [(2, TensorProto.FLOAT, 5000.0, 5000.1),
                                                             (4, TensorProto.FLOAT, 1.0, 1.001),
                                                             (8, TensorProto.FLOAT16, 10.0, 10.0078125)])
def test_a_short_row_whose_runtime_variance_is_a_running_one_holds_onnxruntime(length: int, elem: int, low: float,
                                                                                high: float) -> None:
    """onnxruntime takes a float32 Welford variance over short rows (float32 up to 7 elements, float16 up to 15):
    on near-constant rows of large values its InvStdDev strays far from the two-pass value (54.17 where the
    two-pass value is 53.82, for two float32 values near 5000)."""
    model = _short_layer_norm(length, elem)
    analysis = ranum.analyze(model, {"inputs": {"x": [low, high]}, "weights": {"default": "exact"}})
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    dtype = np.float16 if elem == TensorProto.FLOAT16 else np.float32
    rng = np.random.default_rng(0)
    x = np.where(rng.random((64, length)) < 0.5, low, high).astype(dtype)
    x[32:] = np.clip(rng.uniform(low, high, (32, length)).astype(dtype), dtype(low), dtype(high))
    for name, value in zip(("y", "mean", "inv"), session.run(None, {"x": x})):
        lo, hi = analysis.bounds(name)
        assert bool(np.all((lo <= value) & (value <= hi))), name


def _group_norm_21(elem: int, epsilon: float, length: int = 4) -> onnx.ModelProto:
    """GroupNormalization-21 of one group of ``length`` elements (x of shape (1, 1, length))."""
    dtype = helper.tensor_dtype_to_np_dtype(elem)
    node = helper.make_node("GroupNormalization", ["x", "g", "b"], ["y"], num_groups=1, epsilon=epsilon)
    graph = helper.make_graph(
        [node], "group_norm", [helper.make_tensor_value_info("x", elem, [1, 1, length])],
        [helper.make_tensor_value_info("y", elem, [1, 1, length])],
        initializer=[numpy_helper.from_array(np.ones(1, dtype), "g"), numpy_helper.from_array(np.zeros(1, dtype), "b")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)], ir_version=10)


@pytest.mark.parametrize(("elem", "epsilon", "low", "high", "row"), [
    (TensorProto.FLOAT, 1e-5, 10000.0, 10002.0, [10000.490234375, 10000.0, 10000.0, 10000.0]),
    (TensorProto.FLOAT, 1e-12, 1.0, 1.001, [1.0009434223175049, 1.0, 1.0009434223175049, 1.0009434223175049]),
    (TensorProto.DOUBLE, 1e-12, 1.0, 1.000001, [1.0, 1.0000008613730285, 1.0000008613730285, 1.0])])
def test_group_normalization_21_cancels_in_float32_and_its_hazard_is_found(elem: int, epsilon: float, low: float,
                                                                           high: float, row: list[float]) -> None:
    """onnxruntime runs GroupNormalization-21's function body: x cast to float32 (a float64 x too) and
    ``E[x^2] - E[x]^2`` there, which cancels on a near-constant group: NaN or values far past sqrt(n) in
    onnxruntime; a finding, and bounds that hold onnxruntime's values."""
    model = _group_norm_21(elem, epsilon)
    x = np.array([[row]], helper.tensor_dtype_to_np_dtype(elem))
    (y,) = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})
    assert not np.all(np.abs(y) <= 2)  # NaN, or far past sqrt(n)
    report = ranum.check(model, {"inputs": {"x": [low, high]}, "weights": {"default": "exact"}})
    assert "normalization-zero-variance" in {f.hazard_id for f in report.findings}
    lo, hi = report.analysis.bounds("y")
    finite = np.isfinite(y)
    assert bool(np.all((lo[finite] <= y[finite]) & (y[finite] <= hi[finite])))


def test_group_normalization_21_concrete_rule_is_its_function_body() -> None:
    """The concrete rule computes in float32 as the body does: its cancellation (NaN) included."""
    from ranum.graph.loader import load_model
    from ranum.interpret import run_concrete

    model = _group_norm_21(TensorProto.FLOAT, 1e-5)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    graph, _ = load_model(model)
    rows = [[0.5, -1.0, 2.0, 0.25], [10000.490234375, 10000.0, 10000.0, 10000.0]]
    for row in rows:
        x = np.array([[row]], np.float32)
        (expected,) = session.run(None, {"x": x})
        got = run_concrete(graph, {"x": torch.from_numpy(x)}).values["y"].numpy()
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6, equal_nan=True)


@pytest.mark.parametrize("p", [1, 2])
@pytest.mark.parametrize("length", [1024, 4096])
def test_a_long_float16_lp_normalization_row_holds_onnxruntime(p: int, length: int) -> None:
    """Past about 500 float16 elements a row's relative error bound (n + 4) u reaches 1/2: the bounds fall back
    on x's sign and |y| <= 1 (a sum of non-negative terms is at least each of them); before, they came out
    negative for a row of ones."""
    node = helper.make_node("LpNormalization", ["x"], ["y"], axis=-1, p=p)
    graph = helper.make_graph([node], "lp", [helper.make_tensor_value_info("x", TensorProto.FLOAT16, [1, length])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT16, [1, length])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    analysis = ranum.analyze(model, {"inputs": {"x": [1, 1]}})
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    (y,) = session.run(None, {"x": np.ones((1, length), np.float16)})
    lo, hi = analysis.bounds("y")
    assert bool(np.all((lo <= y) & (y <= hi)))
