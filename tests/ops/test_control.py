"""If and Loop against onnxruntime (soundness on sampled inputs, agreement of the concrete rules) and
hand-written precision tests for conditions (comparisons, Where, IsNaN/IsInf guards)."""

from __future__ import annotations

import math

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

import ranum
from ranum.domain.interval import Interval
from ranum.graph.loader import load_model
from ranum.graph.model import Graph
from ranum.interpret import run_abstract, run_concrete
from tests.zoo.runtime import Runner

FLOAT, INT64, BOOL = TensorProto.FLOAT, TensorProto.INT64, TensorProto.BOOL
SAMPLES = 40


# ----------------------------------------------------------------------------- model building
def _vi(name: str, elem_type: int, shape: list) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, elem_type, shape)


def _const(name: str, value, dtype) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(value, dtype=dtype), name)


def _model(nodes, inputs, outputs, inits=(), opset: int = 18) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "control", inputs, outputs, initializer=list(inits))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def _if_model() -> onnx.ModelProto:
    """y = x + 10 if t > 0 else x * x (both branches read x from the outer scope)."""
    then_graph = helper.make_graph([helper.make_node("Add", ["x", "ten"], ["then_y"])], "then", [],
                                   [_vi("then_y", FLOAT, [3])], initializer=[_const("ten", [10.0], np.float32)])
    else_graph = helper.make_graph([helper.make_node("Mul", ["x", "x"], ["else_y"])], "else", [],
                                   [_vi("else_y", FLOAT, [3])])
    nodes = [
        helper.make_node("Greater", ["t", "zero"], ["c"]),
        helper.make_node("If", ["c"], ["y"], then_branch=then_graph, else_branch=else_graph),
    ]
    return _model(nodes, [_vi("x", FLOAT, [3]), _vi("t", FLOAT, [1])], [_vi("y", FLOAT, [3])],
                  [_const("zero", [0.0], np.float32)])


def _loop_body(cond_out: list, scan: bool = True) -> onnx.GraphProto:
    """Body: y_out = y * 0.5 + x (x from the outer scope); scans y_out; ``cond_out`` nodes make 'c_out'."""
    nodes = [helper.make_node("Mul", ["y", "half"], ["y_half"]),
             helper.make_node("Add", ["y_half", "x"], ["y_out"])] + cond_out
    outputs = [_vi("c_out", BOOL, []), _vi("y_out", FLOAT, [2])] + ([_vi("y_scan", FLOAT, [2])] if scan else [])
    if scan:
        nodes.append(helper.make_node("Mul", ["y_out", "one"], ["y_scan"]))
    inits = [_const("half", [0.5], np.float32), _const("one", [1.0], np.float32), _const("limit", [2.5], np.float32)]
    return helper.make_graph(nodes, "body", [_vi("i", INT64, []), _vi("c_in", BOOL, []), _vi("y", FLOAT, [2])],
                             outputs, initializer=inits)


def _keep_going() -> list:
    return [helper.make_node("And", ["c_in", "c_in"], ["c_out"])]


def _while_below_limit() -> list:
    """c_out = y_out[0] < 2.5 (via ReduceMin-free arithmetic: compare the whole vector, then And)."""
    return [helper.make_node("Less", ["y_out", "limit"], ["below"]),
            helper.make_node("Split", ["below"], ["b0", "b1"], axis=0, num_outputs=2),
            helper.make_node("And", ["b0", "b1"], ["both"]),
            helper.make_node("Squeeze", ["both"], ["c_out"])]


def _loop_model(trip: int | None, cond_out: list, trip_input: bool = False, scan: bool = True) -> onnx.ModelProto:
    inputs = [_vi("x", FLOAT, [2]), _vi("y0", FLOAT, [2])]
    inits = [_const("cond", True, np.bool_)]
    if trip_input:
        inputs.append(_vi("m", INT64, []))
    elif trip is not None:
        inits.append(_const("m", trip, np.int64))
    m_name = "m" if trip_input or trip is not None else ""
    outs = ["y_final"] + (["ys"] if scan else [])
    node = helper.make_node("Loop", [m_name, "cond", "y0"], outs, body=_loop_body(cond_out, scan))
    outputs = [_vi("y_final", FLOAT, [2])] + ([_vi("ys", FLOAT, ["n", 2])] if scan else [])
    return _model([node], inputs, outputs, inits)


# ----------------------------------------------------------------------------- checking
def _sample(rng: np.random.Generator, ranges: dict, model: onnx.ModelProto) -> dict:
    feeds = {}
    for value in model.graph.input:
        low, high = ranges[value.name]
        elem = value.type.tensor_type.elem_type
        shape = [d.dim_value for d in value.type.tensor_type.shape.dim]
        if elem == INT64:
            feeds[value.name] = rng.integers(low, high + 1, size=shape).astype(np.int64)
        else:
            corner = rng.random() < 0.3
            draw = rng.choice([low, high], size=shape) if corner else rng.uniform(low, high, size=shape)
            feeds[value.name] = np.asarray(draw, dtype=np.float32)
    return feeds


def _assert_sound(model: onnx.ModelProto, ranges: dict, dims: dict | None = None, seed: int = 0) -> ranum.Analysis:
    """ORT outputs on sampled inputs lie inside ranum's bounds; ranum's concrete run agrees with ORT."""
    analysis = ranum.analyze(model, {"inputs": {k: list(v) for k, v in ranges.items()}, "dims": dims or {}})
    assert not analysis.unsupported, analysis.unsupported
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in model.graph.output]
    graph, _ = load_model(model, dims)
    rng = np.random.default_rng(seed)
    for _ in range(SAMPLES):
        feeds = _sample(rng, ranges, model)
        expected = session.run(None, feeds)
        got = run_concrete(graph, {k: torch.from_numpy(v) for k, v in feeds.items()}).values
        for name, value in zip(names, expected):
            lo, hi = analysis.bounds(name)
            v = value.astype(np.float64)
            assert np.all((v >= lo) & (v <= hi)), f"{name}: {v} outside [{lo}, {hi}] for {feeds}"
            np.testing.assert_allclose(got[name].numpy(), value, rtol=1e-6, err_msg=name)
    return analysis


# ----------------------------------------------------------------------------- If
def test_if_with_undecided_condition_joins_both_branches() -> None:
    analysis = _assert_sound(_if_model(), {"x": (-1.0, 4.0), "t": (-1.0, 1.0)})
    lo, hi = analysis.bounds("y")
    assert lo.min() == 0.0  # x * x of the same tensor is never negative
    assert 16.0 <= hi.max() < 16.0 + 1e-4


def test_if_with_decided_condition_runs_only_that_branch() -> None:
    analysis = _assert_sound(_if_model(), {"x": (-1.0, 4.0), "t": (0.5, 1.0)})
    lo, hi = analysis.bounds("y")
    assert 9.0 - 1e-5 < lo.min() <= 9.0 and 14.0 <= hi.max() < 14.0 + 1e-5
    assert "else_y" not in analysis.run.env  # the dead branch was not evaluated


def test_if_else_branch_when_condition_is_false() -> None:
    analysis = _assert_sound(_if_model(), {"x": (1.0, 2.0), "t": (-2.0, -1.0)})
    lo, hi = analysis.bounds("y")
    assert 1.0 - 1e-6 < lo.min() <= 1.0 and 4.0 <= hi.max() < 4.0 + 1e-5


# ----------------------------------------------------------------------------- Loop
def test_loop_with_small_exact_trip_count_is_unrolled() -> None:
    analysis = _assert_sound(_loop_model(5, _keep_going()), {"x": (0.0, 1.0), "y0": (0.0, 0.0)}, {"n": 5})
    lo, hi = analysis.bounds("ys")
    assert lo.shape == (5, 2)
    expected = [sum(0.5**k for k in range(n)) for n in range(1, 6)]  # 1, 1.5, 1.75, ...
    np.testing.assert_allclose(hi[:, 0], expected, rtol=1e-5)
    assert lo.min() == 0.0
    assert hi.max() == pytest.approx(1.9375, rel=1e-5)


def test_loop_with_data_dependent_condition_joins_the_exits() -> None:
    model = _loop_model(8, _while_below_limit())
    analysis = _assert_sound(model, {"x": (0.5, 1.5), "y0": (0.0, 1.0)})
    lo, hi = analysis.bounds("y_final")
    assert np.all(lo >= 0.5 - 1e-6) and np.all(hi <= 3.0 + 1e-4)  # y <= 0.5 * 3 + 1.5
    assert analysis.run.env["ys"].shape is None  # the number of iterations is not known


def test_loop_zero_iterations_keeps_the_initial_state() -> None:
    analysis = _assert_sound(_loop_model(0, _keep_going()), {"x": (0.0, 1.0), "y0": (-2.0, -1.0)})
    lo, hi = analysis.bounds("y_final")
    assert lo.min() == -2.0 and hi.max() == -1.0
    assert analysis.run.env["ys"].shape == (0, 2)


def test_loop_with_large_trip_count_reaches_a_fixpoint() -> None:
    model = _loop_model(200, _keep_going())
    analysis = _assert_sound(model, {"x": (0.0, 0.0), "y0": (-1.0, 1.0)}, {"n": 200})
    lo, hi = analysis.bounds("y_final")  # y * 0.5 stays inside [-1, 1]: no widening needed
    assert lo.min() == pytest.approx(-1.0) and hi.max() == pytest.approx(1.0)
    assert analysis.run.env["ys"].shape == (200, 2)


def test_loop_with_unknown_trip_count_widens_growing_bounds() -> None:
    analysis = _assert_sound(_loop_model(None, _keep_going(), trip_input=True),
                             {"x": (0.5, 1.0), "y0": (0.0, 0.0), "m": (0, 12)})
    lo, hi = analysis.bounds("y_final")
    assert lo.min() == 0.0 and hi.max() == math.inf  # grew at every join, then widened
    assert analysis.run.env["i"].upper.max() == 11  # iteration numbers 0..M-1


def test_while_loop_without_trip_count() -> None:
    model = _loop_model(None, _while_below_limit(), scan=False)
    _assert_sound(model, {"x": (1.5, 2.0), "y0": (0.0, 0.0)})  # y -> 2x > 2.5: it stops


def test_counted_while_loop_is_unrolled_while_its_condition_is_decided() -> None:
    """The dynamo exporter writes ``for i in range(3)`` as a Loop without trip count whose condition is
    ``i + 1 < 3``: decided at every iteration, it is unrolled, so a Slice at the loop index has exact bounds
    (the widened fixpoint gave the index a range, which Slice cannot take: the body was not analysed)."""
    body = helper.make_graph(
        [helper.make_node("Reshape", ["i", "shape1"], ["start"]),
         helper.make_node("Add", ["start", "one"], ["end"]),
         helper.make_node("Slice", ["x", "start", "end"], ["piece"]),
         helper.make_node("Add", ["acc", "piece"], ["acc_out"]),
         helper.make_node("Add", ["i", "step"], ["next"]),
         helper.make_node("Less", ["next", "count"], ["c_out"]),
         helper.make_node("Identity", ["piece"], ["piece_out"])],
        "body", [_vi("i", INT64, []), _vi("c_in", BOOL, []), _vi("acc", FLOAT, [1])],
        [_vi("c_out", BOOL, []), _vi("acc_out", FLOAT, [1]), _vi("piece_out", FLOAT, [1])],
        initializer=[_const("shape1", [1], np.int64), _const("one", [1], np.int64), _const("step", 1, np.int64),
                     _const("count", 3, np.int64)])
    node = helper.make_node("Loop", ["", "cond", "acc0"], ["total", "pieces"], body=body)
    model = _model([node], [_vi("x", FLOAT, [4]), _vi("acc0", FLOAT, [1])],
                   [_vi("total", FLOAT, [1]), _vi("pieces", FLOAT, [3, 1])], [_const("cond", True, np.bool_)])
    analysis = _assert_sound(model, {"x": (-1.0, 2.0), "acc0": (0.0, 0.5)})
    lo, hi = analysis.bounds("total")
    assert lo.min() == pytest.approx(-3.0) and hi.max() == pytest.approx(6.5)  # acc0 + x0 + x1 + x2
    assert analysis.run.env["pieces"].shape == (3, 1)


def test_hazard_inside_a_loop_body_is_reported() -> None:
    body = helper.make_graph(
        [helper.make_node("Sub", ["y", "one"], ["y_out"]), helper.make_node("Log", ["y_out"], ["logy"]),
         helper.make_node("And", ["c_in", "c_in"], ["c_out"])],
        "body", [_vi("i", INT64, []), _vi("c_in", BOOL, []), _vi("y", FLOAT, [2])],
        [_vi("c_out", BOOL, []), _vi("y_out", FLOAT, [2]), _vi("logy", FLOAT, [2])],
        initializer=[_const("one", [1.0], np.float32)])
    node = helper.make_node("Loop", ["m", "cond", "y0"], ["y_final", "logs"], body=body)
    model = _model([node], [_vi("y0", FLOAT, [2])], [_vi("y_final", FLOAT, [2]), _vi("logs", FLOAT, [4, 2])],
                   [_const("m", 4, np.int64), _const("cond", True, np.bool_)])
    report = ranum.check(model, {"inputs": {"y0": [5.0, 6.0]}})  # the 4th iteration takes log of [1, 2]
    assert not report.findings
    report = ranum.check(model, {"inputs": {"y0": [3.5, 6.0]}})  # ... here of [-0.5, 2]
    assert [(f.node, f.hazard_id) for f in report.findings] == [("Loop_0/body/Log_1", "log-nonpositive")]


# ----------------------------------------------------------------------------- conditions (logic ops)
def _one_node(op: str, inputs: list[tuple[str, int, list[int]]], out_type: int, **attrs) -> Graph:
    names = [n for n, _, _ in inputs]
    node = helper.make_node(op, names, ["out"], **attrs)
    model = _model([node], [_vi(n, t, s) for n, t, s in inputs], [_vi("out", out_type, inputs[-1][2])])
    graph, _ = load_model(model)
    return graph


def _run(graph, **intervals: Interval) -> Interval:
    return run_abstract(graph, intervals).env["out"]


def _box(lo: float, hi: float, shape=(4,), elem_type: int = FLOAT) -> Interval:
    return Interval.uniform(lo, hi, shape, elem_type)


def test_comparisons_are_decided_by_disjoint_intervals() -> None:
    graph = _one_node("Greater", [("a", FLOAT, [4]), ("b", FLOAT, [4])], BOOL)
    assert _run(graph, a=_box(1, 2), b=_box(-1, 0.5)).is_exact
    assert _run(graph, a=_box(1, 2), b=_box(-1, 0.5)).lower.min() == 1
    assert _run(graph, a=_box(-1, 0.5), b=_box(1, 2)).upper.max() == 0
    undecided = _run(graph, a=_box(0, 1), b=_box(0.5, 2))
    assert undecided.lower.min() == 0 and undecided.upper.max() == 1
    touching = _run(_one_node("GreaterOrEqual", [("a", FLOAT, [4]), ("b", FLOAT, [4])], BOOL),
                    a=_box(1, 2), b=_box(0, 1))
    assert touching.lower.min() == 1  # a >= 1 >= b


def test_equal_is_decided_only_for_equal_points_or_disjoint_intervals() -> None:
    graph = _one_node("Equal", [("a", INT64, [4]), ("b", INT64, [4])], BOOL)
    assert _run(graph, a=_box(3, 3, elem_type=INT64), b=_box(3, 3, elem_type=INT64)).lower.min() == 1
    assert _run(graph, a=_box(0, 2, elem_type=INT64), b=_box(3, 5, elem_type=INT64)).upper.max() == 0
    both = _run(graph, a=_box(0, 3, elem_type=INT64), b=_box(3, 5, elem_type=INT64))
    assert both.lower.min() == 0 and both.upper.max() == 1


def test_comparing_a_tensor_with_itself_is_decided() -> None:
    for op, expected in (("Equal", 1), ("GreaterOrEqual", 1), ("LessOrEqual", 1), ("Greater", 0), ("Less", 0),
                         ("Xor", 0)):
        elem = BOOL if op == "Xor" else FLOAT
        node = helper.make_node(op, ["a", "a"], ["out"])
        model = _model([node], [_vi("a", elem, [4])], [_vi("out", BOOL, [4])])
        graph, _ = load_model(model)
        out = _run(graph, a=_box(0, 1, elem_type=elem))
        assert out.is_exact and int(out.lower.min()) == expected, op


@pytest.mark.parametrize("op, values", [("Equal", [0, 1]), ("GreaterOrEqual", [0, 1]), ("LessOrEqual", [0, 1]),
                                        ("Greater", [0, 0]), ("Less", [0, 0])])
def test_comparing_a_tensor_that_can_be_nan_with_itself(op: str, values: list[int]) -> None:
    """``x == x`` is False where x is NaN (the ``x != x`` test of nanmean): ``a / b`` is 0 / 0 at a = b = 0."""
    nodes = [helper.make_node("Div", ["a", "b"], ["d"]), helper.make_node(op, ["d", "d"], ["out"])]
    model = _model(nodes, [_vi("a", FLOAT, [2]), _vi("b", FLOAT, [2])], [_vi("out", BOOL, [2])])
    lo, hi = ranum.analyze(model, {"inputs": {"a": [0, 1], "b": [0, 1]}}).bounds("out")
    assert [int(lo.min()), int(hi.max())] == values
    zeros = np.zeros(2, np.float32)
    out = Runner(model).run({"a": zeros, "b": zeros})["out"]
    assert ((lo <= out) & (out <= hi)).all()


def test_where_selects_blockwise() -> None:
    graph = _one_node("Where", [("c", BOOL, [4]), ("x", FLOAT, [4]), ("y", FLOAT, [4])], FLOAT)
    cond = Interval.from_full(torch.tensor([1, 0, 0, 1]), torch.tensor([1, 0, 1, 1]), BOOL)
    lo, hi = _run(graph, c=cond, x=_box(1, 2), y=_box(-5, -4)).full()
    assert lo.tolist() == [1, -5, -5, 1] and hi.tolist() == [2, -4, 2, 2]


@pytest.mark.parametrize("low, kept", [(-1.0, True), (1.0, False)])
def test_isnan_guard_keeps_the_replacement_value_where_nan_can_arise(low: float, kept: bool) -> None:
    """sqrt(a) is NaN where a < 0 can occur (a hazard upstream): the guard's replacement stays in the bounds;
    sqrt of a non-negative input in its range is never NaN, and the guard then always keeps the value."""
    nodes = [helper.make_node("Sqrt", ["a"], ["x"]), helper.make_node("IsNaN", ["x"], ["nan"]),
             helper.make_node("Where", ["nan", "zero", "x"], ["out"])]
    model = _model(nodes, [_vi("a", FLOAT, [4])], [_vi("out", FLOAT, [4])], [_const("zero", [-7.0], np.float32)])
    graph, _ = load_model(model)
    initial = {"a": _box(low, 4), "zero": Interval.point(torch.tensor([-7.0]), FLOAT)}
    out = run_abstract(graph, initial).env["out"]
    assert (out.lower.min() == -7.0) == kept and out.upper.max() == 2.0


def test_isinf_is_possible_only_where_an_infinity_is_inside() -> None:
    graph = _one_node("IsInf", [("x", FLOAT, [2])], BOOL, detect_negative=0)
    x = Interval.from_full(torch.tensor([-math.inf, 0.0]), torch.tensor([1.0, math.inf]), FLOAT)
    lo, hi = _run(graph, x=x).full()
    assert lo.tolist() == [0, 0] and hi.tolist() == [0, 1]


@pytest.mark.parametrize("trip", [6, 40])
def test_an_overflow_inside_a_loop_body_is_reported_although_later_iterations_are_infinite(trip: int) -> None:
    """Newton-Schulz-like X <- (X X^T) X: the MatMul overflows from finite operands in the third iteration; the
    body's bounds are joined over iterations, and the later ones' infinite operands hid that overflow (an
    overflow needs finite operands), so a loop that returns inf in onnxruntime had no finding (unrolled: one)."""
    model = onnx.parser.parse_model(f"""
    <ir_version: 8, opset_import: ["" : 17]>
    g (float[4, 6] x) => (float[4, 6] y) <int64 trip = {{{trip}}}, bool go = {{1}}> {{
        y = Loop(trip, go, x) <body = body (int64 i, bool c, float[4, 6] x_in) => (bool c_out, float[4, 6] x_out) {{
            c_out = Identity(c)
            xt = Transpose(x_in)
            a = MatMul(x_in, xt)
            x_out = MatMul(a, x_in)
        }}>
    }}""")
    report = ranum.check(model, {"inputs": {"x": [-10.0, 10.0]}})
    assert [(f.op_type, f.hazard_id) for f in report.findings] == [("MatMul", "overflow")]
    y = Runner(model).run({"x": np.full((4, 6), 10.0, np.float32)})["y"]
    assert np.isinf(y).any()


def test_a_while_loop_with_a_ranged_trip_count_may_stop_at_any_count_from_its_least() -> None:
    """Loop(M, "", s0) with M in [1, 100] and the condition i + 1 < 10: the condition stops it after 10
    iterations, but M may stop it after any count from 1 (s_final in [1, 10], not 10 alone)."""
    body = helper.make_graph(
        [helper.make_node("Constant", [], ["one"], value=helper.make_tensor("one", TensorProto.INT64, [], [1])),
         helper.make_node("Constant", [], ["ten"], value=helper.make_tensor("ten", TensorProto.INT64, [], [10])),
         helper.make_node("Add", ["i", "one"], ["i1"]),
         helper.make_node("Less", ["i1", "ten"], ["cond_out"]),
         helper.make_node("Constant", [], ["step"], value=helper.make_tensor("step", TensorProto.FLOAT, [], [1.0])),
         helper.make_node("Add", ["s", "step"], ["s_out"])],
        "body", [_vi("i", TensorProto.INT64, []), _vi("c", TensorProto.BOOL, []), _vi("s", TensorProto.FLOAT, [])],
        [_vi("cond_out", TensorProto.BOOL, []), _vi("s_out", TensorProto.FLOAT, [])])
    model = _model([helper.make_node("Loop", ["M", "", "s0"], ["s_final"], body=body)],
                   [_vi("M", TensorProto.INT64, []), _vi("s0", TensorProto.FLOAT, [])],
                   [_vi("s_final", TensorProto.FLOAT, [])], opset=17)
    low, high = ranum.analyze(model, {"inputs": {"M": [1, 100], "s0": [0, 0]}}).bounds("s_final")
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    for trips in (1, 3, 100):
        (value,) = session.run(None, {"M": np.array(trips, np.int64), "s0": np.array(0, np.float32)})
        assert low <= value <= high
