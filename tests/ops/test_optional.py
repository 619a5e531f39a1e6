"""Optional values and the operators Optional, OptionalHasElement, OptionalGetElement, against
onnxruntime: one-node graphs, If branches returning a held or an empty optional, optional-typed graph
inputs, a Loop carrying an optional, findings after OptionalGetElement, and the node test cases that
ship in the onnx wheel (stamped at opset 18: they are declared at the wheel's newest opset, which
tests/ops/test_onnx_node_cases.py leaves out, and they feed lists and None, which it does not take)."""

from __future__ import annotations

import warnings

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import helper
from onnxruntime.capi.onnxruntime_pybind11_state import InvalidArgument

import ranum
from ranum.domain.interval import Interval
from ranum.domain.optional import OptionalValue
from ranum.domain.sequence import SequenceValue
from ranum.graph.loader import load_model
from ranum.interpret import run_abstract, run_concrete
from tests.ops.sequence_models import BOOL, FLOAT, INT64, assert_sound_and_exact, const, model, seq_vi, vi
from tests.ops.sequence_models import _inside as inside
from tests.ops.sequence_models import _same as same

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from onnx.backend.test.case.node import collect_testcases

OPTIONAL_OPS = {"Optional", "OptionalHasElement", "OptionalGetElement"}


def opt_vi(name: str, elem_type: int = FLOAT, shape: list | None = None, sequence: bool = False
           ) -> onnx.ValueInfoProto:
    held = helper.make_tensor_type_proto(elem_type, shape)
    held = helper.make_sequence_type_proto(held) if sequence else held
    return helper.make_value_info(name, helper.make_optional_type_proto(held))


def _empty_optional(name: str, elem_type: int = FLOAT, shape: list | None = None) -> onnx.NodeProto:
    return helper.make_node("Optional", [], [name], type=helper.make_tensor_type_proto(elem_type, shape or []))


def _flag(iv: Interval) -> tuple[float, float]:
    return iv.min(), iv.max()


# ----------------------------------------------------------------------------- one node at a time
def test_optional_of_a_tensor_holds_it() -> None:
    nodes = [helper.make_node("Optional", ["x"], ["o"]),
             helper.make_node("OptionalHasElement", ["o"], ["h"]),
             helper.make_node("OptionalGetElement", ["o"], ["g"])]
    proto = model(nodes, [vi("x", FLOAT, [3])], [opt_vi("o", FLOAT, [3]), vi("h", BOOL, []), vi("g", FLOAT, [3])])
    env = assert_sound_and_exact(proto, {"x": (-1.0, 2.0)}).run.env
    assert isinstance(env["o"], OptionalValue) and env["o"].surely_holds
    assert _flag(env["h"]) == (1.0, 1.0) and (env["g"].min(), env["g"].max()) == (-1.0, 2.0)


def test_optional_of_a_sequence_holds_it() -> None:
    nodes = [helper.make_node("SequenceConstruct", ["x", "x"], ["s"]),
             helper.make_node("Optional", ["s"], ["o"]),
             helper.make_node("OptionalGetElement", ["o"], ["g"]),
             helper.make_node("SequenceLength", ["g"], ["n"])]
    proto = model(nodes, [vi("x", FLOAT, [2])], [opt_vi("o", FLOAT, [2], sequence=True), seq_vi("g", FLOAT, [2]),
                                                  vi("n", INT64, [])])
    env = assert_sound_and_exact(proto, {"x": (0.0, 1.0)}).run.env
    assert env["o"].sequence and isinstance(env["g"], SequenceValue) and env["g"].length == 2
    assert _flag(env["n"]) == (2.0, 2.0)


def test_empty_optional_has_no_element_and_reading_it_is_refused() -> None:
    nodes = [_empty_optional("o"), helper.make_node("OptionalHasElement", ["o"], ["h"]),
             helper.make_node("OptionalGetElement", ["o"], ["g"], name="get")]
    proto = model(nodes, [], [vi("h", BOOL, []), vi("g", FLOAT, [])])
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    with pytest.raises(InvalidArgument):
        session.run(None, {})
    analysis = ranum.analyze(proto)
    assert _flag(analysis.run.env["h"]) == (0.0, 0.0) and analysis.run.env["o"].surely_empty
    assert "always empty" in analysis.run.unsupported["get"]
    graph, _ = load_model(proto)
    with pytest.raises(ValueError, match="empty"):
        run_concrete(graph, {})


def test_get_element_and_has_element_of_plain_values() -> None:
    nodes = [helper.make_node("OptionalHasElement", ["x"], ["h"]),
             helper.make_node("OptionalGetElement", ["x"], ["g"]),
             helper.make_node("OptionalHasElement", [], ["absent"])]
    proto = model(nodes, [vi("x", FLOAT, [2])], [vi("h", BOOL, []), vi("g", FLOAT, [2]), vi("absent", BOOL, [])])
    env = assert_sound_and_exact(proto, {"x": (0.0, 1.0)}).run.env
    assert _flag(env["h"]) == (1.0, 1.0) and _flag(env["absent"]) == (0.0, 0.0)


# ----------------------------------------------------------------------------- optional graph inputs
def _guarded_log(guarded: bool) -> onnx.ModelProto:
    """``y = log(x) if x is not None else 1`` (``guarded``), else ``y = log(x)`` reading an optional input."""
    then = helper.make_graph([helper.make_node("OptionalGetElement", ["x"], ["v"]),
                              helper.make_node("Log", ["v"], ["lv"], name="log")],
                             "then", [], [vi("lv", FLOAT, [2])])
    other = helper.make_graph([helper.make_node("Constant", [], ["one"], value=const("c", [1.0, 1.0], np.float32))],
                              "else", [], [vi("one", FLOAT, [2])])
    nodes = [helper.make_node("OptionalHasElement", ["x"], ["h"]),
             helper.make_node("If", ["h"], ["y"], then_branch=then, else_branch=other)]
    if not guarded:
        nodes = [helper.make_node("OptionalGetElement", ["x"], ["v"]), helper.make_node("Log", ["v"], ["y"],
                                                                                          name="log")]
    outputs = [vi("y", FLOAT, [2])] + ([vi("h", BOOL, [])] if guarded else [])
    return model(nodes, [opt_vi("x", FLOAT, [2])], outputs)


def test_optional_graph_input_may_be_empty_or_hold_a_value() -> None:
    analysis = assert_sound_and_exact(_guarded_log(True), {"x": (0.5, 2.0)})
    env = analysis.run.env
    assert env["x"].may_be_empty and (env["x"].min(), env["x"].max()) == (0.5, 2.0)
    assert _flag(env["h"]) == (0.0, 1.0)
    assert env["y"].min() == pytest.approx(np.log(0.5), rel=1e-5) and env["y"].max() == 1.0  # log(2) or 1


def test_reading_an_optional_input_that_may_be_empty_gives_its_bound() -> None:
    analysis = assert_sound_and_exact(_guarded_log(False), {"x": (0.5, 2.0)})
    assert not analysis.run.unsupported and analysis.run.env["v"].min() == 0.5


@pytest.mark.parametrize("guarded", [True, False])
def test_log_after_get_element_is_found_or_proven_safe(guarded: bool) -> None:
    unsafe = ranum.check(_guarded_log(guarded), {"inputs": {"x": [0.0, 2.0]}})
    assert [(f.node, f.hazard_id) for f in unsafe.findings] == [("log", "log-nonpositive")]
    safe = ranum.check(_guarded_log(guarded), {"inputs": {"x": [0.5, 2.0]}})
    assert safe.findings == () and not safe.not_analysed_nodes


def test_symbolic_dimensions_of_an_optional_input_are_substituted() -> None:
    proto = model([helper.make_node("OptionalGetElement", ["x"], ["g"])], [opt_vi("x", FLOAT, ["n", 2])],
                  [vi("g", FLOAT, ["n", 2])])
    graph, used = load_model(proto, {"n": 3})
    assert used == {"n": 3} and graph.inputs[0].optional and graph.inputs[0].shape == (3, 2)


# ----------------------------------------------------------------------------- If, Loop
def _branchy() -> onnx.ModelProto:
    """``o = Optional(x) if sum(x) > 0 else Optional()``; ``y = log(get(o)) if has(o) else [1, 1]``."""
    holds = helper.make_graph([helper.make_node("Optional", ["x"], ["ox"])], "holds", [], [opt_vi("ox", FLOAT, [2])])
    empty = helper.make_graph([_empty_optional("oe", FLOAT, [2])], "empty", [], [opt_vi("oe", FLOAT, [2])])
    read = helper.make_graph([helper.make_node("OptionalGetElement", ["o"], ["v"]),
                              helper.make_node("Log", ["v"], ["lv"], name="log")], "read", [], [vi("lv", FLOAT, [2])])
    ones = helper.make_graph([helper.make_node("Constant", [], ["one"], value=const("c", [1.0, 1.0], np.float32))],
                             "ones", [], [vi("one", FLOAT, [2])])
    nodes = [helper.make_node("ReduceSum", ["x"], ["total"], keepdims=0),
             helper.make_node("Greater", ["total", "zero"], ["positive"]),
             helper.make_node("If", ["positive"], ["o"], then_branch=holds, else_branch=empty),
             helper.make_node("OptionalHasElement", ["o"], ["h"]),
             helper.make_node("If", ["h"], ["y"], then_branch=read, else_branch=ones)]
    return model(nodes, [vi("x", FLOAT, [2])], [opt_vi("o", FLOAT, [2]), vi("h", BOOL, []), vi("y", FLOAT, [2])],
                 [const("zero", 0.0, np.float32)])


def test_if_returning_a_held_or_an_empty_optional() -> None:
    env = assert_sound_and_exact(_branchy(), {"x": (-1.0, 2.0)}).run.env
    assert env["o"].may_be_empty and (env["o"].min(), env["o"].max()) == (-1.0, 2.0)
    assert _flag(env["h"]) == (0.0, 1.0)
    decided = assert_sound_and_exact(_branchy(), {"x": (0.5, 2.0)}).run.env
    assert decided["o"].surely_holds and _flag(decided["h"]) == (1.0, 1.0)
    none = ranum.analyze(_branchy(), {"inputs": {"x": [-2.0, -1.0]}}).run.env
    assert none["o"].surely_empty and _flag(none["h"]) == (0.0, 0.0)
    assert (none["y"].min(), none["y"].max()) == (1.0, 1.0)  # the reading branch is dead


def test_log_behind_the_branches_is_found() -> None:
    report = ranum.check(_branchy(), {"inputs": {"x": [-1.0, 2.0]}})
    assert [(f.node, f.hazard_id) for f in report.findings] == [("log", "log-nonpositive")]


def _running_max(trip: str, inits: list) -> onnx.ModelProto:
    """``best = None; for i in range(trip): best = x[i] if best is None else max(best, x[i]) * 1.5``."""
    first = helper.make_graph([helper.make_node("Optional", ["row"], ["o1"])], "first", [],
                              [opt_vi("o1", FLOAT, [2])])
    later = helper.make_graph([helper.make_node("OptionalGetElement", ["best_in"], ["prev"]),
                               helper.make_node("Max", ["prev", "row"], ["larger"]),
                               helper.make_node("Mul", ["larger", "growth"], ["grown"]),
                               helper.make_node("Optional", ["grown"], ["o2"])], "later", [],
                              [opt_vi("o2", FLOAT, [2])])
    body = helper.make_graph(
        [helper.make_node("Gather", ["x", "i"], ["row"], axis=0),
         helper.make_node("OptionalHasElement", ["best_in"], ["seen"]),
         helper.make_node("If", ["seen"], ["best_out"], then_branch=later, else_branch=first),
         helper.make_node("Identity", ["c_in"], ["c_out"])],
        "body", [vi("i", INT64, []), vi("c_in", BOOL, []), opt_vi("best_in", FLOAT, [2])],
        [vi("c_out", BOOL, []), opt_vi("best_out", FLOAT, [2])], initializer=[const("growth", 1.5, np.float32)])
    nodes = [_empty_optional("none", FLOAT, [2]), helper.make_node("Loop", [trip, "cond", "none"], ["best"], body=body),
             helper.make_node("OptionalHasElement", ["best"], ["found"])]
    outputs = [opt_vi("best", FLOAT, [2]), vi("found", BOOL, [])]
    inputs = [vi("x", FLOAT, [70, 2])] + ([vi("m", INT64, [])] if trip == "m" else [])
    return model(nodes, inputs, outputs, [const("cond", True, np.bool_), *inits])


def test_loop_carrying_an_optional_unrolled() -> None:
    env = assert_sound_and_exact(_running_max("trip", [const("trip", 3, np.int64)]), {"x": (0.0, 1.0)},
                                 samples=5).run.env
    assert env["best"].surely_holds and env["best"].max() == pytest.approx(1.5 ** 2)
    assert _flag(env["found"]) == (1.0, 1.0)


def test_loop_carrying_an_optional_reaches_a_fixpoint() -> None:
    env = assert_sound_and_exact(_running_max("m", []), {"x": (0.0, 1.0), "m": (0, 70)}, samples=5).run.env
    best = env["best"]
    assert isinstance(best, OptionalValue) and best.may_be_empty and best.max() == float("inf")  # widened
    assert _flag(env["found"]) == (0.0, 1.0)


# ----------------------------------------------------------------------------- shipped node cases
def _node_cases() -> list:
    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cases = collect_testcases()
    for case in cases:
        if {n.op_type for n in case.model.graph.node} & OPTIONAL_OPS:
            stamped = onnx.ModelProto()
            stamped.CopyFrom(case.model)
            for imp in stamped.opset_import:
                imp.version = 18
            stamped.ir_version = 8
            out.append(pytest.param(stamped, *case.data_sets[0], id=case.name))
    return out


def _point(value, info) -> Interval | SequenceValue | OptionalValue:
    if value is None:
        return OptionalValue.empty(info.elem_type, info.sequence)
    if isinstance(value, list):
        held = SequenceValue.point([torch.from_numpy(v) for v in value], info.elem_type)
    else:
        held = Interval.point(torch.from_numpy(np.asarray(value)), info.elem_type)
    return OptionalValue.holding(held) if info.optional else held


def _concrete(value):
    if value is None:
        return None
    return [torch.from_numpy(v) for v in value] if isinstance(value, list) else torch.from_numpy(np.asarray(value))


@pytest.mark.parametrize(("proto", "inputs", "outputs"), _node_cases())
def test_shipped_node_cases(proto: onnx.ModelProto, inputs: list, outputs: list) -> None:
    onnx.checker.check_model(proto)
    graph, _ = load_model(proto)
    names = [i.name for i in graph.inputs]
    values = run_concrete(graph, {n: _concrete(v) for n, v in zip(names, inputs)}).values
    run = run_abstract(graph, {n: _point(v, info) for n, v, info in zip(names, inputs, graph.inputs)})
    assert not run.not_analysed, run.not_analysed
    for out, expected in zip(proto.graph.output, outputs):
        same(values[out.name], expected)
        assert inside(run.env[out.name], expected), (out.name, run.env[out.name], expected)


def test_the_shipped_node_cases_are_found() -> None:
    assert len(_node_cases()) >= 11
