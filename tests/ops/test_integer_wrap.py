"""Integer arithmetic as onnxruntime runs it: unsigned types wrap within their own range (uint16, uint32 are held
in wider torch dtypes), Range counts its elements from float64 or exact differences, int64 running sums and
the negation of a type's minimum wrap around, and INT_MIN / -1 (which stops onnxruntime with SIGFPE) is a
finding, never a crash of ranum's own process."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import ranum
from ranum.domain.dtypes import narrow_int_range
from ranum.domain.interval import Interval

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
_NUMPY = {TensorProto.UINT16: np.uint16, TensorProto.UINT32: np.uint32, TensorProto.INT16: np.int16,
          TensorProto.INT32: np.int32, TensorProto.INT64: np.int64, TensorProto.FLOAT: np.float32}


def _model(nodes: list[onnx.NodeProto], inputs: list[tuple[str, int, list[int]]], outputs: list[str],
           constants: dict[str, np.ndarray] | None = None) -> onnx.ModelProto:
    """A model whose outputs are typed by shape inference; ``constants`` become initializers."""
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info(n, t, s) for n, t, s in inputs],
        [helper.make_empty_tensor_value_info(name) for name in outputs],
        initializer=[numpy_helper.from_array(v, name=k) for k, v in (constants or {}).items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    inferred = onnx.shape_inference.infer_shapes(model)
    known = {v.name: v for v in inferred.graph.value_info}
    for out in inferred.graph.output:
        if not out.type.HasField("tensor_type") and out.name in known:
            out.CopyFrom(known[out.name])
    return inferred


def _constant(name: str, value: np.ndarray) -> onnx.NodeProto:
    return helper.make_node("Constant", [], [name], value=numpy_helper.from_array(value, name=name))


def _onnxruntime(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds)))


def _analysis(model: onnx.ModelProto, spec: dict) -> ranum.Analysis:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ranum.analyze(model, spec)


def _hazard_ids(model: onnx.ModelProto, spec: dict) -> set[tuple[str, str]]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {(f.op_type, f.hazard_id) for f in ranum.check(model, spec).findings}


def _inside(analysis: ranum.Analysis, name: str, values: np.ndarray) -> bool:
    """Whether every value lies within the tensor's bounds (integers compared exactly)."""
    lo, hi = (np.broadcast_to(b, values.shape) for b in analysis.bounds(name))
    return all(int(lo[i]) <= int(values[i]) <= int(hi[i]) if values.dtype.kind in "iu" else lo[i] <= values[i] <= hi[i]
               for i in np.ndindex(values.shape))


# ------------------------------------------------------------------------------------ unsigned types
@pytest.mark.parametrize("elem_type", [TensorProto.UINT16, TensorProto.UINT32])
def test_unsigned_types_have_their_own_range(elem_type: int) -> None:
    bits = 16 if elem_type == TensorProto.UINT16 else 32
    assert narrow_int_range(elem_type) == (0, 2**bits - 1)
    top = Interval.top((2,), elem_type)
    assert (top.min(), top.max()) == (0, 2**bits - 1)


@pytest.mark.parametrize("elem_type", [TensorProto.UINT16, TensorProto.UINT32])
def test_unsigned_subtraction_wraps_as_onnxruntime(elem_type: int) -> None:
    dtype = _NUMPY[elem_type]
    nodes = [helper.make_node("Sub", ["a", "one"], ["s"]), helper.make_node("Cast", ["s"], ["f"], to=TensorProto.FLOAT),
             helper.make_node("Div", ["s", "b"], ["q"]), helper.make_node("Add", ["s", "b"], ["m"])]
    model = _model(nodes, [("a", elem_type, [1]), ("b", elem_type, [1])], ["s", "f", "q", "m"],
                   {"one": np.array([1], dtype)})
    analysis = _analysis(model, {"inputs": {"a": [0, 3], "b": [1, 3]}})
    got = _onnxruntime(model, {"a": np.array([0], dtype), "b": np.array([2], dtype)})
    assert int(got["s"][0]) == np.iinfo(dtype).max
    for name in ("s", "f", "q", "m"):
        assert _inside(analysis, name, got[name]), name


@pytest.mark.parametrize("elem_type", [TensorProto.UINT16, TensorProto.UINT32])
def test_unsigned_constant_arithmetic_is_exact_after_wrapping(elem_type: int) -> None:
    dtype = _NUMPY[elem_type]
    nodes = [_constant("a", np.array([0, 5], dtype)), _constant("b", np.array([1, 2], dtype)),
             helper.make_node("Sub", ["a", "b"], ["s"]), helper.make_node("Mul", ["s", "s"], ["p"])]
    model = _model(nodes, [], ["s", "p"])
    analysis = _analysis(model, {})
    got = _onnxruntime(model, {})
    for name in ("s", "p"):
        lo, hi = analysis.bounds(name)
        assert lo.tolist() == hi.tolist() == got[name].tolist(), name


def test_uint32_wrapped_difference_reaches_an_exp_overflow() -> None:
    nodes = [helper.make_node("Sub", ["a", "one"], ["s"]), helper.make_node("Cast", ["s"], ["f"], to=TensorProto.FLOAT),
             helper.make_node("Exp", ["f"], ["y"])]
    model = _model(nodes, [("a", TensorProto.UINT32, [1])], ["y"], {"one": np.array([1], np.uint32)})
    assert np.isinf(_onnxruntime(model, {"a": np.array([0], np.uint32)})["y"]).all()
    assert any(op == "Exp" for op, _ in _hazard_ids(model, {"inputs": {"a": [0, 3]}}))


# ------------------------------------------------------------------------------------ Range
def _range_model(dtype: type, start: float, limit: float, delta: float) -> onnx.ModelProto:
    nodes = [_constant("s", np.array(start, dtype)), _constant("l", np.array(limit, dtype)),
             _constant("d", np.array(delta, dtype)), helper.make_node("Range", ["s", "l", "d"], ["r"])]
    return _model(nodes, [], ["r"])


@pytest.mark.parametrize(("dtype", "start", "limit", "delta"), [
    (np.float32, -1e-9, 3.0, 1.0),  # a float32 difference rounds to 3: onnxruntime's float64 one does not
    (np.float64, -1e-15, 3.0, 1.0),
    (np.int16, -30000, 30000, 10000),  # differences past the type: no wrap-around
    (np.int32, -2**31, 2**31 - 1, 2**30),
    (np.int64, INT64_MIN, INT64_MAX, INT64_MAX),
    (np.int64, 0, 2**62, 2**61 - 1),  # exact, not float64 (which would give 2)
])
def test_range_count_matches_onnxruntime(dtype: type, start: float, limit: float, delta: float) -> None:
    model = _range_model(dtype, start, limit, delta)
    expected = _onnxruntime(model, {})["r"]
    lo, hi = _analysis(model, {}).bounds("r")
    assert lo.shape == expected.shape
    assert _inside(_analysis(model, {}), "r", expected)


def test_range_count_of_an_integer_start_interval_is_exact() -> None:
    nodes = [_constant("l", np.array(2**62, np.int64)), _constant("d", np.array(2**61 - 1, np.int64)),
             helper.make_node("Range", ["s", "l", "d"], ["r"])]
    model = _model(nodes, [("s", TensorProto.INT64, [])], ["r"])
    analysis = _analysis(model, {"inputs": {"s": [0, 1]}})
    for start in (0, 1):
        expected = _onnxruntime(model, {"s": np.array(start, np.int64)})["r"]
        assert analysis.bounds("r")[0].shape == expected.shape == (3,)
        assert _inside(analysis, "r", expected)


def test_range_last_element_reaching_the_limit_is_a_log_finding() -> None:
    nodes = [_constant("s", np.array(-1e-9, np.float32)), _constant("l", np.array(3.0, np.float32)),
             _constant("d", np.array(1.0, np.float32)), helper.make_node("Range", ["s", "l", "d"], ["r"]),
             helper.make_node("Sub", ["l", "r"], ["gap"]), helper.make_node("Log", ["gap"], ["y"])]
    model = _model(nodes, [], ["y"])
    assert np.isneginf(_onnxruntime(model, {})["y"]).any()
    assert ("Log", "log-nonpositive") in _hazard_ids(model, {})


# ------------------------------------------------------------------------------------ int64 wrap-around
def test_int64_cumsum_past_the_range_gets_the_whole_range() -> None:
    model = _model([helper.make_node("CumSum", ["x", "axis"], ["y"])], [("x", TensorProto.INT64, [4])], ["y"],
                   {"axis": np.array(0, np.int64)})
    analysis = _analysis(model, {"inputs": {"x": [0, 2**62]}})
    lo, hi = analysis.bounds("y")
    assert (lo <= hi).all()
    assert (int(lo[0]), int(hi[0])) == (0, 2**62)
    got = _onnxruntime(model, {"x": np.array([2**62, 2**62, 0, 0], np.int64)})["y"]
    assert _inside(analysis, "y", got)


@pytest.mark.parametrize("op", ["Abs", "Neg"])
@pytest.mark.parametrize("box", [[INT64_MIN, INT64_MIN], [INT64_MIN, 0]])
def test_abs_and_neg_of_int64_min_keep_it(op: str, box: list[int]) -> None:
    model = _model([helper.make_node(op, ["a"], ["y"])], [("a", TensorProto.INT64, [1])], ["y"])
    analysis = _analysis(model, {"inputs": {"a": box}})
    got = _onnxruntime(model, {"a": np.array([INT64_MIN], np.int64)})["y"]
    assert int(got[0]) == INT64_MIN
    assert _inside(analysis, "y", got)
    if box[1] == INT64_MIN:
        assert [int(b[0]) for b in analysis.bounds("y")] == [INT64_MIN, INT64_MIN]


def test_abs_of_a_negative_infinity_cast_to_int64_keeps_int64_min() -> None:
    nodes = [helper.make_node("Greater", ["x", "zero"], ["c"]), helper.make_node("Where", ["c", "ninf", "x"], ["w"]),
             helper.make_node("Cast", ["w"], ["i"], to=TensorProto.INT64), helper.make_node("Abs", ["i"], ["y"])]
    model = _model(nodes, [("x", TensorProto.FLOAT, [2])], ["y"],
                   {"zero": np.array(0, np.float32), "ninf": np.array(-np.inf, np.float32)})
    analysis = _analysis(model, {"inputs": {"x": [-3, 3]}})
    got = _onnxruntime(model, {"x": np.array([1.0, -2.5], np.float32)})["y"]
    assert _inside(analysis, "y", got)


# ------------------------------------------------------------------------------------ INT_MIN / -1
@pytest.mark.parametrize("elem_type", [TensorProto.INT32, TensorProto.INT64])
def test_division_of_the_minimum_by_minus_one_is_a_finding(elem_type: int) -> None:
    model = _model([helper.make_node("Div", ["a", "b"], ["y"])], [("a", elem_type, [1]), ("b", elem_type, [1])],
                   ["y"])
    smallest = int(np.iinfo(_NUMPY[elem_type]).min)
    assert ("Div", "integer-division-overflow") in _hazard_ids(model, {"inputs": {"a": [smallest, 0], "b": [-2, -1]}})
    above = smallest + 1024  # a range end a float64 holds exactly (int64 spec ends are read as floats)
    assert ("Div", "integer-division-overflow") not in _hazard_ids(model, {"inputs": {"a": [above, 0], "b": [-2, -1]}})
    assert ("Div", "integer-division-overflow") not in _hazard_ids(
        model, {"inputs": {"a": [smallest, 0], "b": [1, 2]}})


def test_division_of_int16_minimum_by_minus_one_is_no_finding() -> None:
    """int16 Div is promoted to int before dividing: no trap (the int16 result wraps)."""
    model = _model([helper.make_node("Div", ["a", "b"], ["y"])],
                   [("a", TensorProto.INT16, [1]), ("b", TensorProto.INT16, [1])], ["y"])
    assert ("Div", "integer-division-overflow") not in _hazard_ids(
        model, {"inputs": {"a": [-2**15, 0], "b": [-2, -1]}})


def test_constant_division_of_int64_minimum_by_minus_one_is_reported_not_crashed(tmp_path: Path) -> None:
    """ranum's own evaluation of the exact operands must not die of SIGFPE (run apart, so that a crash fails this
    test instead of ending the test session)."""
    nodes = [_constant("a", np.array([INT64_MIN, 6], np.int64)), _constant("b", np.array([-1, -1], np.int64)),
             helper.make_node("Div", ["a", "b"], ["y"])]
    path = tmp_path / "div.onnx"
    onnx.save(_model(nodes, [], ["y"]), path)
    done = subprocess.run([sys.executable, "-m", "ranum", "check", str(path), "--format", "json"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, (done.returncode, done.stderr[-500:])
    findings = json.loads(done.stdout)["findings"]
    assert [(f["op_type"], f["hazard_id"], f["certain"]) for f in findings] == \
        [("Div", "integer-division-overflow", False)]
