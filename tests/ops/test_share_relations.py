"""Shares of a non-negative tensor's sum (``ranum/ops/_share_relations.py``): ``v / sum(v)`` lies in [0, 1],
also through an added eps, a Clip or Max from below and a ``Where(sum > k, sum, c)`` guard with ``c >= k``;
the bounds are checked against onnxruntime, with rows that sum to 0 and terms of very different sizes."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest

import ranum

_HEAD = '<ir_version: 8, opset_import: ["" : 18]>'
_CONSTANTS = "<float zero = {0.0}, float one = {1.0}, float half = {0.5}, float eps = {1e-6}, int64[1] ax = {-1}>"


def _model(divisor: str, numerator: str = "v = Relu(x)", axes: str = "ax") -> onnx.ModelProto:
    text = f"""{_HEAD}
    g (float[2, 3, 8] x) => (float[2, 3, 8] y) {_CONSTANTS} {{
        {numerator}
        s = ReduceSum({'v, ' + axes})
        {divisor}
        y = Div(v, d)
    }}"""
    return onnx.parser.parse_model(text)


DIVISORS = {
    "plain": "d = Identity(s)",
    "guarded": "p = Greater(s, zero)\n d = Where(p, s, one)",
    "guarded-above-zero": "p = Greater(s, half)\n d = Where(p, s, one)",
    "eps": "d = Add(s, eps)",
    "clipped": "d = Clip(s, eps)",
    "maxed": "d = Max(s, eps)",
}


@pytest.mark.parametrize("divisor", DIVISORS)
def test_a_share_of_its_own_sum_lies_in_the_unit_interval(divisor: str) -> None:
    model = _model(DIVISORS[divisor])
    spec = {"inputs": {"x": [-1e30, 1e30]}}
    analysis = ranum.analyze(model, spec)
    lo, hi = analysis.bounds("y")
    assert lo.min() >= 0 and hi.max() <= 1
    overflow = [f for f in ranum.check(model, spec).findings if f.hazard_id == "overflow"]
    assert not overflow
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    samples = [rng.uniform(-1, 1, (2, 3, 8)) * 10.0 ** rng.integers(-38, 30, (2, 3, 8)) for _ in range(30)]
    samples.append(np.zeros((2, 3, 8)))
    samples.append(np.where(rng.random((2, 3, 8)) < 0.5, 0.3, 1e-40))
    for x in samples:
        y = session.run(None, {"x": x.astype(np.float32)})[0]
        assert ((y >= lo) & (y <= hi) | np.isnan(y)).all()


@pytest.mark.parametrize(("numerator", "divisor"), [
    ("v = Identity(x)", "d = Identity(s)"),  # terms of either sign: a share can pass 1
    ("v = Relu(x)", "p = Greater(s, one)\n d = Where(p, s, half)"),  # the fallback is below the guard's k
    ("v = Relu(x)\n w = Abs(x)", "t = ReduceSum(w, ax)\n d = Identity(t)"),  # another tensor's sum
])
def test_no_share_bound_without_the_relation(numerator: str, divisor: str) -> None:
    model = _model(divisor, numerator)
    lo, hi = ranum.analyze(model, {"inputs": {"x": [-2, 2]}}).bounds("y")
    assert hi.max() > 1 or lo.min() < 0


@pytest.mark.parametrize("reduction", ["s = ReduceSum<keepdims = 0>(v)", "s = ReduceSum<keepdims = 0>(v, lead)"])
def test_a_share_of_a_sum_without_kept_axes_lies_in_the_unit_interval(reduction: str) -> None:
    """``x / x.sum()`` (every axis, a scalar) and a sum over leading axes without keepdims broadcast back onto
    each element's own sum: an HMM's scaled forward variable alpha / alpha.sum() is at most 1."""
    model = onnx.parser.parse_model(f"""{_HEAD}
    g (float[2, 3, 8] x) => (float[2, 3, 8] y) <float eps = {{1e-30}}, int64[1] lead = {{0}}> {{
        v = Relu(x)
        {reduction}
        d = Max(s, eps)
        y = Div(v, d)
    }}""")
    spec = {"inputs": {"x": [-1.0, 1.0]}}
    lo, hi = ranum.analyze(model, spec).bounds("y")
    assert lo.min() >= 0 and hi.max() <= 1
    assert not [f for f in ranum.check(model, spec).findings if f.hazard_id == "overflow"]
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(1)
    for x in (rng.uniform(-1, 1, (2, 3, 8)), np.zeros((2, 3, 8)), np.where(rng.random((2, 3, 8)) < 0.9, -1, 1e-3)):
        y = session.run(None, {"x": x.astype(np.float32)})[0]
        assert ((y >= lo) & (y <= hi)).all()
