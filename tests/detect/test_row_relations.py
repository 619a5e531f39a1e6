"""Rows masked below one of their own top-k values keep a finite element: their softmax is not NaN
(ranum.detect._row_relations), and what is not of that form keeps its finding."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest

import ranum

_HEAD = '<ir_version: 8, opset_import: ["" : 18]>\ng (float[2,10] x, float[2,10] other) => (float[2,10] y) {\n'
_TOPK = '    k = Constant<value = int64[1] {{1}}>()\n    v, i = TopK<axis = {topk_axis}>({source}, k)\n'
_SLICE = ('    s = Constant<value = int64[1] {{-1}}>()\n    e = Constant<value = int64[1] {{9223372036854775807}}>()\n'
          '    ax = Constant<value = int64[1] {{{axis}}}>()\n    t = Slice(v, s, e, ax)\n')
_GATHER = ('    last = Constant<value = int64 {{-1}}>()\n    g = Gather<axis = 1>(v, last)\n'
           '    ua = Constant<value = int64[1] {{1}}>()\n    t = Unsqueeze(g, ua)\n')
_MASK = ('    c = Less(x, t)\n{cast}    minus = Constant<value = float {{-inf}}>()\n'
         '    m = Where({condition}, minus, x)\n    y = Softmax<axis = -1>(m)\n}}')


def _model(threshold: str, source: str = "x", axis: int = 1, cast: bool = False, topk_axis: int = -1
           ) -> onnx.ModelProto:
    mask = _MASK.format(cast="    cb = Cast<to = 9>(c)\n" if cast else "", condition="cb" if cast else "c")
    text = _HEAD + _TOPK.format(source=source, topk_axis=topk_axis) + threshold.format(axis=axis) + mask
    return onnx.parser.parse_model(text)


@pytest.mark.parametrize("form, cast", [("slice", False), ("gather", False), ("slice", True)])
def test_a_row_masked_below_its_own_top_k_value_keeps_its_softmax_finite(form: str, cast: bool) -> None:
    model = _model(_SLICE if form == "slice" else _GATHER, cast=cast)
    ranges = {"x": [-5.0, 5.0], "other": [-5.0, 5.0]}
    report = ranum.check(model, {"inputs": ranges})
    assert not report.findings, [(f.op_type, f.hazard_id) for f in report.findings]
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    for _ in range(20):
        feeds = {name: rng.uniform(-5, 5, (2, 10)).astype(np.float32) for name in ("x", "other")}
        assert np.isfinite(session.run(None, feeds)[0]).all()


@pytest.mark.parametrize("case", ["another tensor's top-k", "another axis's top value", "x can be -inf"])
def test_a_mask_that_is_not_of_that_form_keeps_the_finding(case: str) -> None:
    if case == "another tensor's top-k":
        model = _model(_SLICE, source="other")  # its k-th value can exceed every element of x's row
    elif case == "another axis's top value":  # the largest of each column: a row can lie wholly below it
        model = _model(_SLICE, axis=0, topk_axis=0)
    else:  # x = log(u), -inf where u is 0 (an input in its range is finite: an unbounded end is not -inf)
        model = _model(_SLICE)
        text = onnx.printer.to_text(model.graph).replace("(float[2,10] x,", "(float[2,10] u,").replace(
            "{", "{\n    x = Log(u)", 1)
        model = onnx.parser.parse_model('<ir_version: 8, opset_import: ["" : 18]>\n' + text)
    ranges = {"u": [0.0, 5.0]} if case == "x can be -inf" else {"x": [-5.0, 5.0]}
    ranges["other"] = [-5.0, 5.0]
    report = ranum.check(model, {"inputs": ranges})
    assert "softmax-infinite-input" in [f.hazard_id for f in report.findings]


# Mask2Former's masked attention: a mask p cleared on every row it would fill (mask[mask.sum(-1) == n] = False),
# as the dynamo exporter writes it, then -inf where it holds, added to the scores
_GUARDED = """<ir_version: 8, opset_import: ["" : 18]>
g (float[2,3,4] scores, float[2,3,4] logits) => (float[2,3,4] y) <float half = {0.5}, int64[1] last = {-1},
 int64 n = {{n}}, float minus = {-inf}, float[2,3,4] zeros = {0,0,0,0, 0,0,0,0, 0,0,0,0, 0,0,0,0, 0,0,0,0, 0,0,0,0}> {
    p = Less (logits, half)
    count = Cast <to = 7> (p)
    total = ReduceSum <keepdims = 0> (count, last)
    full = Equal (total, n)
    guard = Not (full)
    row = Unsqueeze (guard, last)
    mask = And (p, row)
    masked = Where (mask, minus, zeros)
    z = Add (scores, masked)
    y = Softmax <axis = -1> (z)
}"""


@pytest.mark.parametrize("length", [4, 3])
def test_a_mask_cleared_on_rows_it_would_fill_keeps_the_softmax_finite(length: int) -> None:
    """A row of p that is all True sums to n: its guard is False and the row of the mask all False, so every
    row keeps a finite score (Mask2Former had a finding at each masked cross-attention). A guard that counts
    to another number than the row's length proves nothing: the finding stays."""
    model = onnx.parser.parse_model(_GUARDED.replace("{n}", str(length)))
    report = ranum.check(model, {"inputs": {"scores": [-5.0, 5.0], "logits": [-5.0, 5.0]}})
    hazards = [f.hazard_id for f in report.findings]
    if length != 4:
        assert "softmax-infinite-input" in hazards
        return
    assert not hazards, hazards
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    for high in (5.0, 0.4):  # below 0.5 every logit is masked: the guard clears the rows
        feeds = {"scores": rng.uniform(-5, 5, (2, 3, 4)).astype(np.float32),
                 "logits": rng.uniform(-5, high, (2, 3, 4)).astype(np.float32)}
        assert np.isfinite(session.run(None, feeds)[0]).all()
