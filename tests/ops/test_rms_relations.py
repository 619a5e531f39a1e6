"""A tensor over a root of its own mean or sum of squares (``ranum/ops/_rms_relations.py``): ``F.normalize``
as both exporters write it, L2 norms by hand, and a LayerNorm written out over the channel axis (vit-pytorch's
CvT, NesT, Twins...). Every bound is checked against onnxruntime, also on rows whose squares underflow."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

import ranum
from tests.zoo.runtime import Runner

_HEAD = '<ir_version: 8, opset_import: ["" : 18]>'
_CONSTANTS = "<float eps = {1e-12}, float small = {1e-5}, int64[1] last = {-1}, int64[1] three = {3}, " \
             "int64[1] one = {1}>"

# (body computing y from x of shape (2, 6, 4, 8), the bound of |y|)
NORMALISED = {
    # F.normalize, TorchScript: x / expand(clip(||x||, eps))
    "normalize-expanded": ("n = ReduceL2<keepdims = 1>(x, last)\n c = Clip(n, eps)\n s = Shape(x)\n"
                           " e = Expand(c, s)\n y = Div(x, e)", 1.0),
    "normalize-max": ("n = ReduceL2<keepdims = 1>(x, last)\n c = Max(n, eps)\n y = Div(x, c)", 1.0),
    "sum-of-squares-root": ("q = Mul(x, x)\n t = ReduceSum<keepdims = 1>(q, last)\n a = Add(t, eps)\n"
                            " r = Sqrt(a)\n y = Div(x, r)", 1.0),
    "reciprocal-of-norm": ("n = ReduceL2<keepdims = 1>(x, last)\n c = Clip(n, eps)\n r = Reciprocal(c)\n"
                           " y = Mul(x, r)", 1.0),
    "sum-square-op": ("t = ReduceSumSquare<keepdims = 1>(x, one)\n a = Add(t, eps)\n r = Sqrt(a)\n y = Div(x, r)",
                      1.0),
    # a channel LayerNorm as dynamo writes it: the variance drops the axis and is reshaped back, the mean's
    # axis is written [3] once and [-1] once
    "centred-reshaped": ("m = ReduceMean<keepdims = 1>(x, three)\n d = Sub(x, m)\n q = Mul(d, d)\n"
                         " v = ReduceMean<keepdims = 0>(q, three)\n w = Reshape(v, kept)\n m2 = ReduceMean"
                         "<keepdims = 1>(x, last)\n d2 = Sub(x, m2)\n a = Add(w, small)\n r = Sqrt(a)\n"
                         " y = Div(d2, r)", 8 ** 0.5),
    # as TorchScript writes it: the centred tensor is computed twice
    "centred-twice": ("m = ReduceMean<keepdims = 1>(x, one)\n d = Sub(x, m)\n q = Mul(d, d)\n"
                      " v = ReduceMean<keepdims = 1>(q, one)\n m2 = ReduceMean<keepdims = 1>(x, one)\n"
                      " d2 = Sub(x, m2)\n a = Add(v, small)\n r = Sqrt(a)\n y = Div(d2, r)", 6 ** 0.5),
}


def _model(body: str) -> onnx.ModelProto:
    constants = _CONSTANTS.replace(">", ", int64[4] kept = {2, 6, 4, 1}>")
    return onnx.parser.parse_model(f"""{_HEAD}
    g (float[2, 6, 4, 8] x) => (float[2, 6, 4, 8] y) {constants} {{
        {body}
    }}""")


def _inputs(rng: np.random.Generator, scale: float) -> list[np.ndarray]:
    """Random rows, rows with one large element (|y| reaches its bound), constant rows, zero rows and rows
    whose squares underflow float32."""
    x = rng.uniform(-scale, scale, (2, 6, 4, 8)).astype(np.float32)
    x[0, 0, 0] = 0.0
    x[0, 0, 1] = [scale] + [0.0] * 7
    x[0, 1, :, 0] = scale
    x[0, 1, :, 1:] = 0.0
    x[1, 0] = scale
    tiny = x.copy()
    tiny[1] = np.float32(1e-23) * np.sign(x[1])
    return [x, tiny, np.full((2, 6, 4, 8), np.float32(1e-30))]


@pytest.mark.parametrize("form", list(NORMALISED))
def test_a_tensor_over_a_root_of_its_own_squares_is_bounded_and_sound(form: str) -> None:
    body, bound = NORMALISED[form]
    model = _model(body)
    report = ranum.check(model, {"inputs": {"x": [-1e3, 1e3]}})
    lo, hi = report.analysis.bounds("y")
    assert -bound * 1.001 <= float(lo.min()) and float(hi.max()) <= bound * 1.001, (float(lo.min()), float(hi.max()))
    assert not [f for f in report.findings if f.kind == "forward"], report.findings
    runner = Runner(model)
    rng = np.random.default_rng(0)
    for scale in (1e-3, 1.0, 1e3):
        for x in _inputs(rng, scale):
            y = runner.run({"x": x})["y"]
            assert np.all((lo <= y) & (y <= hi)), (form, scale, float(np.abs(y).max()))


NOT_BOUNDED = {
    # no floor: a row whose squares all underflow is x / 0
    "norm-without-eps": "n = ReduceL2<keepdims = 1>(x, last)\n y = Div(x, n)",
    # a Clip from above can make the divisor smaller than the norm
    "clipped-above": "n = ReduceL2<keepdims = 1>(x, last)\n c = Clip(n, eps, small)\n y = Div(x, c)",
    # the norm of another tensor (twice x: |y| <= 1/2 holds, but no relation says so)
    "other-tensor": "z = Add(x, x)\n n = ReduceL2<keepdims = 1>(z, last)\n c = Clip(n, eps)\n y = Div(x, c)",
}


@pytest.mark.parametrize("form", list(NOT_BOUNDED))
def test_a_divisor_that_may_be_below_the_root_keeps_its_interval(form: str) -> None:
    model = _model(NOT_BOUNDED[form])
    lo, hi = ranum.analyze(model, {"inputs": {"x": [-1e3, 1e3]}}).bounds("y")
    assert float(hi.max()) > 1e3 or float(lo.min()) < -1e3


def test_nan_counted_by_x_equals_x_where_a_nan_fill_is_never_selected() -> None:
    """neuralforecast's scalers: ``x.masked_fill(mask, nan)`` with a mask that is never set, then nanmean's
    count of ``x == x``: the fill never reaches the comparison, so every element counts."""
    model = onnx.parser.parse_model(f"""{_HEAD}
    g (float[4] x) => (float y) <float nan = {{nan}}, bool[4] never = {{0, 0, 0, 0}}> {{
        f = Where(never, nan, x)
        same = Equal(f, f)
        c = Cast<to = 1>(same)
        n = ReduceSum<keepdims = 0>(c)
        s = ReduceSum<keepdims = 0>(f)
        y = Div(s, n)
    }}""")
    report = ranum.check(model, {"inputs": {"x": [-1.0, 1.0]}})
    low, high = report.analysis.bounds("n")
    assert 3.99 <= float(low) <= float(high) <= 4.01 and not report.findings, report.findings


@pytest.mark.parametrize("norm", ["n = ReduceL2<keepdims = 0>(g)", "n = ReduceL2<keepdims = 0>(g, lead)"])
def test_a_tensor_over_its_whole_norm_plus_eps_is_at_most_one(norm: str) -> None:
    """Newton-Schulz orthogonalisation (Muon) starts from X = G / (||G|| + eps), the norm of the whole tensor
    without kept axes: each element is at most the norm. Only kept axes were read: X reached 1 / eps = 1e7."""
    model = onnx.parser.parse_model(f"""{_HEAD}
    g (float[4, 6] g) => (float[4, 6] x) <float eps = {{1e-7}}, int64[1] lead = {{0}}> {{
        {norm}
        d = Add(n, eps)
        x = Div(g, d)
    }}""")
    lo, hi = ranum.analyze(model, {"inputs": {"g": [-1.0, 1.0]}}).bounds("x")
    assert -1.0001 <= lo.min() and hi.max() <= 1.0001
    rng = np.random.default_rng(0)
    for g in (rng.uniform(-1, 1, (4, 6)), np.zeros((4, 6)), np.eye(4, 6), np.full((4, 6), 1e-30)):
        x = Runner(model).run({"g": g.astype(np.float32)})["x"]
        assert np.all((x >= lo) & (x <= hi))


@pytest.mark.parametrize("eps", ["1e-6", "1e-5", "1e-3"])
def test_a_float16_rms_normalisation_is_bounded_near_the_root_of_its_count(eps: str) -> None:
    """x / sqrt(mean(x * x) + eps) in float16 (onnxruntime's float16 conversion of a T5 or LLaMA norm): the
    bound's split between rows whose squares may underflow and the others took a float32 margin, so float16's
    large subnormals gave |y| <= 1428 for eps 1e-6 where sqrt(8) holds; the margin is now the best one."""
    model = onnx.parser.parse_model(f"""{_HEAD}
    g (float16[2, 8] x) => (float16[2, 8] y) <float e32 = {{{eps}}}, int64[1] ax = {{-1}}> {{
        eps = Cast<to = 10>(e32)
        sq = Mul(x, x)
        ms = ReduceMean<keepdims = 1>(sq, ax)
        d = Add(ms, eps)
        r = Sqrt(d)
        y = Div(x, r)
    }}""")
    lo, hi = ranum.analyze(model, {"inputs": {"x": [-3.0, 3.0]}}).bounds("y")
    assert hi.max() <= 8 ** 0.5 * 1.1 and lo.min() >= -(8 ** 0.5) * 1.1
    rng = np.random.default_rng(0)
    for x in (rng.uniform(-3, 3, (2, 8)), np.eye(2, 8) * 3.0, np.eye(2, 8) * 1e-3, np.full((2, 8), 3e-4)):
        y = Runner(model).run({"x": x.astype(np.float16)})["y"].astype(np.float64)
        assert np.all((y >= lo) & (y <= hi))
