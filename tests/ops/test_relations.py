"""Relational refinements, checked for precision and against onnxruntime: RMS normalisation
|x / sqrt(mean(x^2) + eps)| <= sqrt(n); attention softmax(s) @ V within the range of V's columns."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest

import ranum

FORMS = {
    "mul-div": """
        two = Constant<value = float {2.0}>()
        sq = Pow(x, two)
        ms = ReduceMean<axes = [-1], keepdims = 1>(sq)
        eps = Constant<value = float {1e-6}>()
        v = Add(ms, eps)
        s = Sqrt(v)
        one = Constant<value = float {1.0}>()
        r = Div(one, s)
        y = Mul(x, r)""",
    "reciprocal": """
        sq = Mul(x, x)
        ms = ReduceMean<axes = [1], keepdims = 1>(sq)
        eps = Constant<value = float {1e-6}>()
        v = Add(eps, ms)
        s = Sqrt(v)
        r = Reciprocal(s)
        y = Mul(r, x)""",
    "div": """
        two = Constant<value = float {2.0}>()
        sq = Pow(x, two)
        ms = ReduceMean<axes = [-1], keepdims = 1>(sq)
        eps = Constant<value = float {1e-6}>()
        v = Add(ms, eps)
        s = Sqrt(v)
        y = Div(x, s)""",
}


def _model(body: str) -> onnx.ModelProto:
    return onnx.parser.parse_model(
        '<ir_version: 8, opset_import: ["" : 17]>\ng (float[6,16] x) => (float[6,16] y) {' + body + "\n}")


@pytest.mark.parametrize("form", list(FORMS))
def test_rms_normalisation_is_bounded_by_sqrt_n_and_sound(form: str) -> None:
    model = _model(FORMS[form])
    analysis = ranum.analyze(model, {"inputs": {"x": [-1e4, 1e4]}})
    lo, hi = analysis.bounds("y")
    assert hi.max() <= 4.0 * 1.001 and lo.min() >= -4.0 * 1.001  # sqrt(16) = 4, not 1e4 / sqrt(1e-6)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    for scale in (1e-4, 1.0, 1e4):
        x = rng.uniform(-scale, scale, (6, 16)).astype(np.float32)
        x[0] = 0.0
        x[1, 1:] = 0.0  # one large element: |y| reaches sqrt(n)
        x[1, 0] = scale
        x[2] = scale  # constant row: |y| = 1
        y = session.run(None, {"x": x})[0]
        assert np.all((y >= lo) & (y <= hi)), (form, scale, float(np.abs(y).max()))
    assert not [f for f in ranum.check(model, {"inputs": {"x": [-1e4, 1e4]}}).findings if f.hazard_id == "overflow"]


ATTENTION = """
    p = Softmax<axis = -1>(s)
    q = Cast<to = 1>(p)
    y = MatMul(q, v)"""


def _attention(dtype: str = "float", softmax_axis: int = -1) -> onnx.ModelProto:
    body = ATTENTION.replace("axis = -1", f"axis = {softmax_axis}")
    return onnx.parser.parse_model(
        '<ir_version: 8, opset_import: ["" : 17]>\n'
        f"g ({dtype}[2,5,32] s, float[2,32,3] v) => (float[2,5,3] y) {{" + body + "\n}")


def test_softmax_weighted_sum_stays_within_the_values_columns_and_is_sound() -> None:
    model = _attention()
    spec = {"inputs": {"s": [-1e3, 1e3], "v": [-1, 1]}}
    lo, hi = ranum.analyze(model, spec).bounds("y")
    assert hi.max() <= 1.0001 and lo.min() >= -1.0001  # intervals alone give 32
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    for scale in (1.0, 1e3):
        s = rng.uniform(-scale, scale, (2, 5, 32)).astype(np.float32)
        v = np.sign(rng.uniform(-1, 1, (2, 32, 3))).astype(np.float32)
        v[:, :, 0] = 1.0  # a column of ones: every output is exactly the weights' float sum
        y = session.run(None, {"s": s, "v": v})[0]
        assert np.all((y >= lo) & (y <= hi))


def test_softmax_over_another_axis_is_not_a_convex_combination() -> None:
    lo, hi = ranum.analyze(_attention(softmax_axis=1), {"inputs": {"s": [-1e3, 1e3], "v": [-1, 1]}}).bounds("y")
    assert hi.max() > 1.5 and lo.min() < -1.5
