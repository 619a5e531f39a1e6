"""Precision tests for Softmax, LogSoftmax and Hardmax (soundness is in test_soundness.py)."""

from __future__ import annotations

import math

import numpy as np
import onnx
import pytest
import torch

from ranum.analysis import analyze
from ranum.detect import check

EXACT = {"weights": {"default": "exact"}}


def _model(body: str, inputs: str, outputs: str, opset: int = 17) -> onnx.ModelProto:
    text = f"""
    <ir_version: 8, opset_import: ["" : {opset}]>
    g ({inputs}) => ({outputs}) {{
        {body}
    }}
    """
    return onnx.parser.parse_model(text)


def _bounds(model: onnx.ModelProto, ranges: dict, tensor: str) -> tuple[np.ndarray, np.ndarray]:
    analysis = analyze(model, {"inputs": ranges, **EXACT})
    assert not analysis.unsupported
    return analysis.bounds(tensor)


def test_softmax_bounds_are_the_closed_form_and_inside_unit_interval() -> None:
    model = _model("y = Softmax(x)", "float[2, 4] x", "float[2, 4] y")
    lo, hi = _bounds(model, {"x": [-1, 1]}, "y")
    assert (lo >= 0).all() and (hi <= 1).all()
    expected_lo, expected_hi = 1 / (1 + 3 * math.exp(2)), 1 / (1 + 3 * math.exp(-2))
    np.testing.assert_allclose(lo, expected_lo, rtol=1e-5)
    np.testing.assert_allclose(hi, expected_hi, rtol=1e-5)
    assert (lo <= expected_lo).all() and (hi >= expected_hi).all()


def test_softmax_of_a_point_row_is_the_point_softmax() -> None:
    body = """
        c = Constant <value = float[5] {0.5, -1.0, 2.0, 0.0, 3.0}> ()
        s = Add(c, x)
        y = Softmax(s)
    """
    model = _model(body, "float[1] x", "float[5] y")
    lo, hi = _bounds(model, {"x": [0, 0]}, "y")
    exact = torch.softmax(torch.tensor([0.5, -1.0, 2.0, 0.0, 3.0], dtype=torch.float64), 0).numpy()
    assert (lo <= exact).all() and (exact <= hi).all()
    np.testing.assert_allclose(lo, exact, rtol=1e-5)
    np.testing.assert_allclose(hi, exact, rtol=1e-5)


def test_log_of_softmax_plus_epsilon_has_a_positive_operand() -> None:
    body = """
        eps = Constant <value = float {1e-8}> ()
        p = Softmax(x)
        q = Add(p, eps)
        y = Log(q)
    """
    model = _model(body, "float[3, 10] x", "float[3, 10] y")
    lo, _ = _bounds(model, {"x": [-20, 20]}, "q")
    assert (lo > 0).all()
    report = check(model, {"inputs": {"x": [-20, 20]}, **EXACT})
    assert not [f for f in report.findings if f.op_type == "Log"]


def test_masked_positions_keep_a_positive_lower_bound_elsewhere() -> None:
    body = """
        mask = Constant <value = float[1, 6] {0, 0, 0, -3.4e38, -3.4e38, -3.4e38}> ()
        s = Add(x, mask)
        y = Softmax(s)
        z = LogSoftmax(s)
    """
    model = _model(body, "float[2, 6] x", "float[2, 6] y, float[2, 6] z")
    analysis = analyze(model, {"inputs": {"x": [-5, 5]}, **EXACT})
    lo, hi = analysis.bounds("y")
    assert (lo[:, :3] > 1e-6).all()
    np.testing.assert_allclose(lo[:, :3], 1 / (1 + 2 * math.exp(10)), rtol=1e-4)
    assert (hi[:, 3:] < 1e-30).all()
    zlo, zhi = analysis.bounds("z")
    assert (zhi <= 0).all() and (zlo[:, :3] > -11).all()
    np.testing.assert_allclose(zlo[:, :3], -math.log1p(2 * math.exp(10)), rtol=1e-5)


def test_log_softmax_upper_bound_is_never_positive() -> None:
    model = _model("y = LogSoftmax(x)", "float[4, 3] x", "float[4, 3] y")
    lo, hi = _bounds(model, {"x": [-1e3, 1e3]}, "y")
    assert (hi <= 0).all() and (lo >= -2001).all()


def test_opset11_rows_are_coerced_to_two_dimensions() -> None:
    model = _model("y = Softmax <axis = 1> (x)", "float[2, 3, 4] x", "float[2, 3, 4] y", opset=11)
    lo, hi = _bounds(model, {"x": [-1, 1]}, "y")
    # each row holds 12 elements: 1 / (1 + 11 e^2) <= y <= 1 / (1 + 11 e^-2)
    np.testing.assert_allclose(lo, 1 / (1 + 11 * math.exp(2)), rtol=1e-5)
    np.testing.assert_allclose(hi, 1 / (1 + 11 * math.exp(-2)), rtol=1e-5)


def test_infinite_input_is_reported_and_finite_input_is_not() -> None:
    model = _model("y = Softmax(x)", "float[2, 3] x", "float[2, 3] y")
    finite = check(model, {"inputs": {"x": [-1e30, 1e30]}, **EXACT})
    assert not finite.findings
    # an input's unbounded range is its finite values: softmax of them is finite (x - max(x) <= 0); an
    # infinity comes from upstream
    assert not check(model, {"inputs": {"x": ["-inf", "inf"]}, **EXACT}).findings
    overflowing = _model("e = Exp(x)\n        y = Softmax(e)", "float[2, 3] x", "float[2, 3] y")
    unbounded = check(overflowing, {"inputs": {"x": [0.0, 100.0]}, **EXACT})
    assert [f.hazard_id for f in unbounded.findings] == ["exp-overflow", "softmax-infinite-input"]


def test_log_softmax_far_below_the_maximum_is_reported_as_underflow() -> None:
    model = _model("y = LogSoftmax(x)", "float[2, 3] x", "float[2, 3] y")
    report = check(model, {"inputs": {"x": [-3.4e38, 3.4e38]}, **EXACT})
    assert "log-softmax-underflow" in {f.hazard_id for f in report.findings}
    quiet = check(model, {"inputs": {"x": [-1e30, 1e30]}, **EXACT})
    assert not quiet.findings


@pytest.mark.parametrize("opset", [11, 13])
def test_hardmax_is_certain_when_one_element_dominates(opset: int) -> None:
    body = """
        big = Constant <value = float[1, 3] {10, 0, 0}> ()
        s = Add(x, big)
        y = Hardmax <axis = 1> (s)
    """
    model = _model(body, "float[2, 3] x", "float[2, 3] y", opset=opset)
    lo, hi = _bounds(model, {"x": [-1, 1]}, "y")
    np.testing.assert_array_equal(lo, [[1, 0, 0], [1, 0, 0]])
    np.testing.assert_array_equal(hi, [[1, 0, 0], [1, 0, 0]])


def _masked_softmax(keep: np.ndarray, op: str = "Softmax", opset: int = 17, **attrs) -> onnx.ModelProto:
    """``op(Where(keep, x, -inf))``: positions not kept are -inf."""
    from onnx import helper, numpy_helper

    shape = list(keep.shape)
    graph = helper.make_graph(
        [helper.make_node("Where", ["keep", "x", "minus_inf"], ["scores"]),
         helper.make_node(op, ["scores"], ["y"], **attrs)],
        "masked", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, shape)],
        initializer=[numpy_helper.from_array(keep, "keep"),
                     numpy_helper.from_array(np.array(-np.inf, np.float32), "minus_inf")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
def test_minus_inf_beside_a_finite_value_is_harmless_and_a_row_of_only_minus_inf_is_not(op: str) -> None:
    spec = {"inputs": {"x": [-10, 10]}, **EXACT}
    causal = np.tril(np.ones((3, 3), bool))
    assert not check(_masked_softmax(causal, op), spec).findings  # every row keeps its diagonal
    empty_row = causal.copy()
    empty_row[1] = False
    findings = check(_masked_softmax(empty_row, op), spec).findings
    assert [(f.op_type, f.hazard_id.endswith("infinite-input"), f.certain) for f in findings] == [(op, True, True)]


def test_a_row_of_only_minus_inf_is_confirmed_in_onnxruntime() -> None:
    from ranum.confirm import SearchConfig, confirm

    keep = np.tril(np.ones((3, 3), bool))
    keep[1] = False
    report = confirm(_masked_softmax(keep), {"inputs": {"x": [-10, 10]}, **EXACT},
                     search_config=SearchConfig(seconds=5))
    assert [r.status for r in report.results] == ["confirmed"]


def test_rows_before_opset_13_run_to_the_last_axis() -> None:
    keep = np.ones((2, 2, 3), bool)
    keep[0, 1] = False  # a row of only -inf along the last axis, not along axes 1 and 2 together
    spec = {"inputs": {"x": [-10, 10]}, **EXACT}
    assert not check(_masked_softmax(keep, opset=11, axis=1), spec).findings
    assert check(_masked_softmax(keep, opset=13, axis=-1), spec).findings


@pytest.mark.parametrize("seed", range(6))
def test_leave_one_out_sums_agree_with_the_prefix_suffix_scans(seed: int) -> None:
    """The direct leave-one-out log-sum-exp (row total less each block's own term) is within its
    stated float64 error of the scans', with repeated blocks, ties at the maximum, -inf entries and
    terms that underflow against the maximum."""
    from ranum.ops.softmax import _leave_one_out_lse, _leave_one_out_scan, _lse_error

    rng = np.random.default_rng(seed)
    v = torch.tensor(rng.normal(scale=10.0 ** (seed % 3), size=(4, 9)))
    v[0, 4] = v[0, 1] = v[0].max() + 1.0  # a tie at the maximum
    v[1, :5] = -math.inf
    v[2] = -math.inf
    v[3] = -torch.tensor(rng.uniform(1e37, 3e38, size=9))  # every other term underflows against the maximum
    v[3, 0] = -1e36
    v = v - torch.where(torch.isfinite(v.amax(1, keepdim=True)), v.amax(1, keepdim=True), torch.zeros(4, 1))
    counts = torch.tensor(rng.integers(1, 4, size=9), dtype=torch.float64).reshape(1, -1)
    counts[0, 0] = 1.0  # row 3's maximum is alone in its block
    direct, scan = _leave_one_out_lse(v, counts, 1), _leave_one_out_scan(v, counts, 1)
    both_inf = torch.isinf(direct) & torch.isinf(scan) & (direct == scan)
    close = (direct - scan).abs() <= _lse_error(counts, 1)
    assert bool((both_inf | close).all())


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
def test_a_row_that_may_be_masked_everywhere_keeps_its_uniform_softmax(op: str) -> None:
    """Scores plus a float32-lowest mask round to that value; where every key of a row can be masked
    (an all-zero attention mask), the row is constant and its softmax uniform. The bound's float64
    arithmetic cannot resolve the log of the count beside -3.4e38: it must not claim the first
    element's 1/4 is above 1/2 (GPT-2's causal and padding masks: a sampled run found this)."""
    body = """
        lowest = Constant <value = float[1, 3] {-3.4028234663852886e38, -3.4028234663852886e38,
                                                  -3.4028234663852886e38}> ()
        s = Concat <axis = 1> (x, lowest)
        y = OP(s)
    """.replace("OP", op)
    model = _model(body, "float[1, 1] x", "float[1, 4] y")
    lo, hi = _bounds(model, {"x": [-3.4028234663852886e38, 1e4]}, "y")
    row = np.full((1, 4), -3.4028234663852886e38, dtype=np.float32)
    expected = np.log(np.full(4, 0.25)) if op == "LogSoftmax" else np.full(4, 0.25)
    assert (lo[0] <= expected).all() and (expected <= hi[0]).all()
    import onnxruntime as ort

    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    value = session.run(None, {"x": row[:, :1]})[0]
    assert ((lo <= value) & (value <= hi)).all()
