"""A maximum taken in a wider float type and cast back (the dynamo exporter's float16 softmax):
``Cast_T(ReduceMax(Cast_W(x)))`` is ``ReduceMax(x)``, so ``x - m <= 0`` and the sum of ``exp(x - m)`` is at least 1."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from ranum.analysis import analyze
from ranum.detect import check

_FLOAT16, _BFLOAT16, _FLOAT, _DOUBLE = 10, 16, 1, 11
_NAMES = {_FLOAT16: "float16", _BFLOAT16: "bfloat16", _FLOAT: "float", _DOUBLE: "double"}


def _softmax(narrow: int, wide: int, back: int | None = None) -> onnx.ModelProto:
    """A softmax over the last axis whose maximum and sum are taken in ``wide`` and cast back to ``back``."""
    back = narrow if back is None else back
    text = f"""
    <ir_version: 8, opset_import: ["" : 18]>
    g ({_NAMES[narrow]}[2, 8] x) => ({_NAMES[back]}[2, 8] y, {_NAMES[back]}[2, 8] d) {{
        xw = Cast<to = {wide}>(x)
        axes = Constant<value = int64[1] {{-1}}>()
        mw = ReduceMax<keepdims = 1>(xw, axes)
        m = Cast<to = {back}>(mw)
        d = Sub(x, m)
        e = Exp(d)
        ew = Cast<to = {wide}>(e)
        sw = ReduceSum<keepdims = 1>(ew, axes)
        s = Cast<to = {back}>(sw)
        y = Div(e, s)
    }}
    """
    return onnx.parser.parse_model(text)


@pytest.mark.parametrize(("narrow", "wide"), [(_FLOAT16, _FLOAT), (_BFLOAT16, _FLOAT), (_FLOAT16, _DOUBLE),
                                              (_FLOAT, _DOUBLE)])
def test_a_softmax_whose_maximum_is_taken_in_a_wider_type_has_no_finding(narrow: int, wide: int) -> None:
    report = check(_softmax(narrow, wide), {"inputs": {"x": [-100, 100]}})
    assert not report.findings
    assert not report.unsupported_nodes


def test_the_float16_softmax_of_the_dynamo_exporter_holds_onnxruntime() -> None:
    model = _softmax(_FLOAT16, _FLOAT)
    analysis = analyze(model, {"inputs": {"x": [-100, 100]}})
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    for _ in range(20):
        x = rng.uniform(-100, 100, (2, 8)).astype(np.float16)
        x[0, rng.integers(8)] = 100.0
        y, d = session.run(["y", "d"], {"x": x})
        for name, value in (("y", y), ("d", d)):
            lo, hi = analysis.bounds(name)
            assert (lo <= value).all() and (value <= hi).all(), name
    d_lo, d_hi = analysis.bounds("d")
    assert d_hi.max() <= 0


def test_a_narrowing_round_trip_is_no_maximum_of_the_wider_values() -> None:
    """float32 values rounded to float16 and back: the maximum can fall below an element (0.50001 -> 0.5; onnxruntime
    drops such a round trip, as here, but need not)."""
    model = _softmax(_FLOAT, _FLOAT16)
    analysis = analyze(model, {"inputs": {"x": [0, 1]}})
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    x = np.full((2, 8), 0.25, dtype=np.float32)
    x[:, 3] = 0.50001
    (d,) = session.run(["d"], {"x": x})
    lo, hi = analysis.bounds("d")
    assert hi.max() > 0
    assert (lo <= d).all() and (d <= hi).all()
