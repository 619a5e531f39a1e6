"""The premises of the row relations (ranum.detect._row_relations), each checked where a model breaks it: rows
matched across a broadcast that adds axes, a guard that counts a mask broadcast along the row, a sum that
overflows at the kept element. Also a NaN fill of a shape known only at run time (ConstantOfShape's hazard).
Each model that keeps its finding is run in onnxruntime, to show the NaN is real."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest

import ranum

_OPSET = '<ir_version: 8, opset_import: ["" : 17]>\n'

# x (2, 3) masked below its own largest value along axis 1, the fill of shape (4, 1, 1): w is (4, 2, 3)
_TOPK_RANK = _OPSET + """g (float[2,3] x) => (float[4,2,3] y) <int64[1] k = {1}, int64[1] s0 = {0}, int64[1] s1 = {1},
 int64[1] ax = {1}, float[4,1,1] fill = {-inf, -inf, -inf, -inf}> {
    v, i = TopK <axis = 1> (x, k)
    t = Slice (v, s0, s1, ax)
    c = Less (x, t)
    w = Where (c, fill, x)
    y = Softmax <axis = {axis}> (w)
}"""


def _run(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)


def _hazards(model: onnx.ModelProto, ranges: dict[str, list[float]]) -> list[str]:
    return [f.hazard_id for f in ranum.check(model, {"inputs": ranges}).findings]


@pytest.mark.parametrize("axis", [-1, 1])
def test_a_fill_that_adds_axes_shifts_the_rows_onto_the_operands_axes(axis: int) -> None:
    """Softmax axis 1 of w is x's axis 0, not the TopK's: a column of x can lie wholly below its rows' top
    values, and that row of w is all -inf. Axis -1 is x's own axis 1: every row keeps its top value."""
    model = onnx.parser.parse_model(_TOPK_RANK.replace("{axis}", str(axis)))
    hazards = _hazards(model, {"x": [-10.0, 10.0]})
    if axis == -1:
        assert not hazards, hazards
        return
    assert "softmax-infinite-input" in hazards
    (y,) = _run(model, {"x": np.array([[5, 0, 0], [5, 0, 0]], np.float32)})
    assert np.isnan(y).any()


# Mask2Former's guard And(p, Not(Equal(ReduceSum(Cast(p)), n))), p of shape (2, 1): its rows have length 1
_GUARD_BROADCAST = _OPSET + """g (float[2,4] x, bool[2,1] p) => (float[2,4] y) <int64[1] axes = {-1}, float n = {{n}},
 float minus = {-inf}> {
    pf = Cast <to = 1> (p)
    s = ReduceSum <keepdims = 1> (pf, axes)
    e = Equal (s, n)
    guard = Not (e)
    mask = And (p, guard)
    w = Where (mask, minus, x)
    y = Softmax <axis = -1> (w)
}"""


@pytest.mark.parametrize("count", [4, 1])
def test_a_guard_counts_the_masks_own_row_not_the_row_it_broadcasts_to(count: int) -> None:
    """p of shape (2, 1) counts 0 or 1 per row, never 4 (the row of x): a guard comparing with 4 never clears
    it, and a True p masks a whole row. Compared with 1, p's own row length, the guard clears every True p."""
    model = onnx.parser.parse_model(_GUARD_BROADCAST.replace("{n}", str(count)))
    hazards = _hazards(model, {"x": [-1.0, 1.0], "p": [0, 1]})
    feeds = {"x": np.zeros((2, 4), np.float32), "p": np.array([[True], [False]])}
    (y,) = _run(model, feeds)
    if count == 1:
        assert not hazards, hazards
        assert np.isfinite(y).all()
        return
    assert "softmax-infinite-input" in hazards
    assert np.isnan(y).any()


# z = a + Where(x < its 2nd largest value, -inf, x), a finite additive mask
_TOPK_SUM = _OPSET + """g (float[2,4] x, float[2,4] a) => (float[2,4] y) <int64[1] k = {2}, int64[1] s0 = {-1},
 int64[1] s1 = {2147483648}, int64[1] ax = {-1}, float minus = {-inf}> {
    v, i = TopK <axis = -1> (x, k)
    t = Slice (v, s0, s1, ax)
    c = Less (x, t)
    w = Where (c, minus, x)
    z = Add (a, w)
    y = Softmax <axis = -1> (z)
}"""


@pytest.mark.parametrize("score", [5.0, 1e33])
def test_a_kept_element_plus_the_lowest_float_can_overflow_to_minus_inf(score: float) -> None:
    """With a = float32's lowest value, a kept score of -1e32 gives -inf (past max + half an ulp): the row is all
    -inf. Scores within [-5, 5] round back to the lowest value, which is finite: the row keeps it."""
    lowest = float(np.finfo(np.float32).min)
    model = onnx.parser.parse_model(_TOPK_SUM)
    hazards = _hazards(model, {"x": [-score, score], "a": [lowest, 0.0]})
    if score == 5.0:
        assert not hazards, hazards
        x = np.array([[-5, -4, 3, 5], [1, 2, 3, 4]], np.float32)
    else:
        assert "softmax-infinite-input" in hazards
        x = np.array([[-1e32, -2e32, -3e32, -3e32], [1, 2, 3, 4]], np.float32)
    (y,) = _run(model, {"x": x, "a": np.array([[lowest] * 4, [0] * 4], np.float32)})
    assert np.isfinite(y).all() == (score == 5.0)


_NAN_FILL = _OPSET + """g (float[4] x, int64[1] shape) => (float[4] z) {
    k = ConstantOfShape <value = float[1] {nan}> (shape)
    y = Add (x, k)
    z = Relu (y)
}"""


@pytest.mark.parametrize("low, certain", [(1, True), (0, False)])
def test_a_nan_fill_of_a_shape_known_at_run_time_is_reported(low: int, certain: bool) -> None:
    """The NaN of ConstantOfShape's value is recorded only when its shape is a constant: of a run-time shape the
    node itself reports it, certain when no dimension can be 0."""
    model = onnx.parser.parse_model(_NAN_FILL)
    findings = ranum.check(model, {"inputs": {"x": [-1.0, 1.0], "shape": [low, 4]}}).findings
    fills = [f for f in findings if f.hazard_id == "nan-fill"]
    assert [(f.op_type, f.operand, f.certain) for f in fills] == [("ConstantOfShape", "k", certain)]
    (z,) = _run(model, {"x": np.zeros(4, np.float32), "shape": np.array([4], np.int64)})
    assert np.isnan(z).all()


@pytest.mark.parametrize("value", ["nan", "0.0"])
def test_a_fill_of_a_constant_shape_is_reported_where_it_is_read(value: str) -> None:
    """Of a constant shape the NaN is a constant, reported by its reader (no second finding at the fill); a fill
    that is not NaN reports nothing."""
    text = _NAN_FILL.replace("(float[4] x, int64[1] shape)", "(float[4] x)").replace(
        "{\n", "{\n    shape = Constant <value = int64[1] {4}> ()\n", 1).replace("{nan}", "{" + value + "}")
    findings = ranum.check(onnx.parser.parse_model(text), {"inputs": {"x": [-1.0, 1.0]}}).findings
    expected = [("Add", "nan-constant")] if value == "nan" else []
    assert [(f.op_type, f.hazard_id) for f in findings] == expected
