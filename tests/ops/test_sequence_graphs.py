"""Sequences across graphs: Loops that append to a carried sequence (as TorchScript exports of list
appends and EmbeddingBag-style loops do), If branches returning sequences, sequence-typed graph inputs,
a node without a rule that produces a sequence, TorchScript exports, and findings after
ConcatFromSequence."""

from __future__ import annotations

import io
import math

import numpy as np
import onnx
import pytest
import torch
from onnx import helper

import ranum
from ranum.domain.sequence import SequenceValue
from ranum.graph.loader import load_model
from tests.ops.sequence_models import BOOL, FLOAT, INT64, assert_sound_and_exact, const, model, seq_vi, vi


# ----------------------------------------------------------------------------- Loop
def _append_loop(trip: str, rows: int, then: list, outputs: list, inits: list = ()) -> onnx.ModelProto:
    """``seq = []; for i in range(trip): seq.append(x[i] * 2)`` then the nodes ``then`` on ``seq``."""
    body = helper.make_graph(
        [helper.make_node("Gather", ["x", "i"], ["row"], axis=0),
         helper.make_node("Mul", ["row", "two"], ["doubled"]),
         helper.make_node("SequenceInsert", ["seq_in", "doubled"], ["seq_out"]),
         helper.make_node("Identity", ["c_in"], ["c_out"])],
        "body", [vi("i", INT64, []), vi("c_in", BOOL, []), seq_vi("seq_in", FLOAT, [2])],
        [vi("c_out", BOOL, []), seq_vi("seq_out", FLOAT, [2])], initializer=[const("two", 2.0, np.float32)])
    nodes = [helper.make_node("SequenceEmpty", [], ["empty"], dtype=FLOAT),
             helper.make_node("Loop", [trip, "cond", "empty"], ["seq"], body=body), *then]
    inputs = [vi("x", FLOAT, [rows, 2])] + ([vi("m", INT64, [])] if trip == "m" else [])
    inits = [const("cond", True, np.bool_), *inits]
    return model(nodes, inputs, outputs, inits)


def _concat_log() -> tuple[list, list]:
    nodes = [helper.make_node("ConcatFromSequence", ["seq"], ["c"], axis=0),
             helper.make_node("Log", ["c"], ["y"])]
    return nodes, [vi("y", FLOAT, ["n"])]


def test_loop_appending_with_a_small_trip_count_keeps_every_position() -> None:
    then, outputs = _concat_log()
    proto = _append_loop("trip", 3, then, [seq_vi("seq", FLOAT, [2]), *outputs], [const("trip", 3, np.int64)])
    env = assert_sound_and_exact(proto, {"x": (0.5, 1.0)}).run.env
    assert env["seq"].length == 3 and env["c"].shape == (6,)
    assert env["y"].min() == pytest.approx(0.0) and env["y"].max() == pytest.approx(math.log(2.0))


def test_loop_appending_past_the_unroll_limit_reaches_a_fixpoint() -> None:
    then, outputs = _concat_log()
    proto = _append_loop("trip", 100, then, outputs, [const("trip", 100, np.int64)])
    env = assert_sound_and_exact(proto, {"x": (0.5, 1.0)}, samples=5).run.env
    seq = env["seq"]
    assert isinstance(seq, SequenceValue) and seq.length is None and seq.max_length is None  # widened
    assert env["c"].shape is None and (env["c"].min(), env["c"].max()) == (1.0, 2.0)


def test_loop_with_a_trip_count_range_bounds_the_length() -> None:
    then = [helper.make_node("SequenceLength", ["seq"], ["n"])]
    proto = _append_loop("m", 6, then, [seq_vi("seq", FLOAT, [2]), vi("n", INT64, [])])
    env = assert_sound_and_exact(proto, {"x": (-1.0, 1.0), "m": (0, 6)}).run.env
    assert int(env["n"].lower) == 0
    assert (env["seq"].min(), env["seq"].max()) == (-2.0, 2.0)


# ----------------------------------------------------------------------------- If
def _if_model() -> onnx.ModelProto:
    then_graph = helper.make_graph([helper.make_node("SequenceConstruct", ["x"], ["one"])], "then", [],
                                   [seq_vi("one", FLOAT, [2])])
    else_graph = helper.make_graph([helper.make_node("SequenceConstruct", ["x", "y"], ["two"])], "else", [],
                                   [seq_vi("two", FLOAT, [2])])
    nodes = [helper.make_node("If", ["c"], ["s"], then_branch=then_graph, else_branch=else_graph),
             helper.make_node("SequenceLength", ["s"], ["n"]),
             helper.make_node("ConcatFromSequence", ["s"], ["z"], axis=0)]
    return model(nodes, [vi("c", BOOL, []), vi("x", FLOAT, [2]), vi("y", FLOAT, [2])],
                 [seq_vi("s", FLOAT, [2]), vi("n", INT64, []), vi("z", FLOAT, ["k"])])


def test_if_branches_returning_sequences_join() -> None:
    env = assert_sound_and_exact(_if_model(), {"c": (0, 1), "x": (0.0, 1.0), "y": (4.0, 5.0)}).run.env
    assert (int(env["n"].lower), int(env["n"].upper)) == (1, 2)
    assert env["s"].length is None and (env["z"].min(), env["z"].max()) == (0.0, 5.0)
    decided = assert_sound_and_exact(_if_model(), {"c": (1, 1), "x": (0.0, 1.0), "y": (4.0, 5.0)}).run.env
    assert decided["s"].length == 1 and decided["z"].shape == (2,)


# ----------------------------------------------------------------------------- graph inputs, unsupported producers
def test_sequence_typed_graph_input() -> None:
    nodes = [helper.make_node("SequenceAt", ["xs", "zero"], ["first"]),
             helper.make_node("Log", ["first"], ["y"]),
             helper.make_node("SequenceLength", ["xs"], ["n"])]
    proto = model(nodes, [seq_vi("xs", FLOAT, [2])], [vi("y", FLOAT, [2]), vi("n", INT64, [])],
                  [const("zero", 0, np.int64)])
    graph, _ = load_model(proto)
    assert graph.inputs[0].sequence and graph.inputs[0].shape == (2,)
    analysis = assert_sound_and_exact(proto, {"xs": (0.5, 2.0)})
    assert (analysis.run.env["y"].min(), analysis.run.env["y"].max()) == pytest.approx((math.log(0.5), math.log(2)))
    assert int(analysis.run.env["n"].lower) == 0
    report = ranum.check(proto, {"inputs": {"xs": [0.0, 2.0]}})
    assert [(f.op_type, f.hazard_id) for f in report.findings] == [("Log", "log-nonpositive")]


def test_an_untyped_output_of_a_node_without_a_rule_is_read_as_any_sequence() -> None:
    nodes = [helper.make_node("Mystery", ["x"], ["s"], domain="example.custom"),
             helper.make_node("SequenceLength", ["s"], ["n"]),
             helper.make_node("SequenceAt", ["s", "zero"], ["a"])]
    graph = helper.make_graph(nodes, "g", [vi("x", FLOAT, [2])], [vi("n", INT64, []), vi("a", FLOAT, [2])],
                              initializer=[const("zero", 0, np.int64)], value_info=[seq_vi("s", FLOAT, [2])])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18),
                                                    helper.make_opsetid("example.custom", 1)])
    analysis = ranum.analyze(proto, {"inputs": {"x": [0.0, 1.0]}})
    assert list(analysis.unsupported) == ["Mystery_0"]
    env = analysis.run.env  # shape inference cannot type 's': its widest value is a tensor's, read as any sequence
    assert (int(env["n"].lower), int(env["n"].upper)) == (0, torch.iinfo(torch.int64).max)
    assert (env["a"].min(), env["a"].max()) == (-math.inf, math.inf)


def test_a_refused_sequence_node_gives_the_widest_sequence() -> None:
    nodes = [helper.make_node("SequenceEmpty", [], ["e"], dtype=FLOAT),
             helper.make_node("SequenceErase", ["e"], ["s"]),  # erasing from an empty sequence: a runtime error
             helper.make_node("SequenceLength", ["s"], ["n"])]
    proto = model(nodes, [vi("x", FLOAT, [2])], [seq_vi("s", FLOAT, None), vi("n", INT64, [])])
    analysis = ranum.analyze(proto, {"inputs": {"x": [0.0, 1.0]}})
    assert list(analysis.unsupported) == ["SequenceErase_1"]
    assert "always outside" in analysis.unsupported["SequenceErase_1"]
    seq = analysis.run.env["s"]
    assert isinstance(seq, SequenceValue) and seq.max_length is None and seq.elem_type == FLOAT
    assert int(analysis.run.env["n"].lower) == 0


def test_sequence_bounds_and_reports() -> None:
    nodes = [helper.make_node("SequenceConstruct", ["x", "y"], ["s"])]
    proto = model(nodes, [vi("x", FLOAT, [2]), vi("y", FLOAT, [2])], [seq_vi("s", FLOAT, [2])])
    report = ranum.check(proto, {"inputs": {"x": [0.0, 1.0], "y": [3.0, 4.0]}})
    lo, hi = report.analysis.bounds("s")
    assert (float(lo), float(hi)) == (0.0, 4.0)
    assert report.to_dict()["findings"] == []


# ----------------------------------------------------------------------------- findings after ConcatFromSequence
def _log_of_concat() -> onnx.ModelProto:
    nodes = [helper.make_node("SequenceConstruct", ["x", "y"], ["s"]),
             helper.make_node("ConcatFromSequence", ["s"], ["c"], axis=0),
             helper.make_node("Log", ["c"], ["out"], name="log_of_concat")]
    return model(nodes, [vi("x", FLOAT, [3]), vi("y", FLOAT, [3])], [vi("out", FLOAT, [6])])


def test_log_after_concat_from_sequence_is_reported_when_a_value_can_be_zero() -> None:
    report = ranum.check(_log_of_concat(), {"inputs": {"x": [1.0, 2.0], "y": [0.0, 2.0]}})
    assert [(f.node, f.hazard_id) for f in report.findings] == [("log_of_concat", "log-nonpositive")]
    assert not report.not_analysed_nodes


def test_log_after_concat_from_sequence_is_clean_when_values_are_positive() -> None:
    report = ranum.check(_log_of_concat(), {"inputs": {"x": [1.0, 2.0], "y": [1.0, 2.0]}})
    assert report.findings == () and not report.not_analysed_nodes


def test_log_after_a_loop_built_sequence_is_reported() -> None:
    then, outputs = _concat_log()
    for trip in (3, 100):  # unrolled, fixpoint
        proto = _append_loop("trip", trip, then, outputs, [const("trip", trip, np.int64)])
        unsafe = ranum.check(proto, {"inputs": {"x": [0.0, 1.0]}})
        assert [(f.op_type, f.hazard_id) for f in unsafe.findings] == [("Log", "log-nonpositive")], trip
        assert ranum.check(proto, {"inputs": {"x": [1.0, 2.0]}}).findings == ()


# ----------------------------------------------------------------------------- TorchScript exports
def _scripted(module: torch.nn.Module, example: torch.Tensor) -> onnx.ModelProto:
    buffer = io.BytesIO()
    torch.onnx.export(torch.jit.script(module), (example,), buffer, dynamo=False, opset_version=17,
                      input_names=["x"])
    return onnx.load_from_string(buffer.getvalue())


class _AppendThenLog(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts: list[torch.Tensor] = []
        for i in range(x.shape[0]):
            parts.append(x[i] * 2.0)
        return torch.log(torch.cat(parts))


class _SplitComputedSizes(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0] // 3
        parts = torch.split(x, [n, x.shape[0] - n])
        return torch.cat([torch.sqrt(p - 1.0) for p in parts])


@pytest.mark.parametrize(("module", "op_type"), [(_AppendThenLog(), "Log"), (_SplitComputedSizes(), "Sqrt")],
                         ids=["append-loop", "split-computed-sizes"])
def test_torchscript_exports_with_sequences(module: torch.nn.Module, op_type: str) -> None:
    proto = _scripted(module, torch.rand(6, 2))
    assert any(n.op_type.startswith("Sequence") or "Sequence" in n.op_type for n in proto.graph.node)
    assert_sound_and_exact(proto, {"x": (1.5, 2.0)}, samples=10)
    assert ranum.check(proto, {"inputs": {"x": [1.5, 2.0]}}).findings == ()
    unsafe = ranum.check(proto, {"inputs": {"x": [0.0, 2.0]}})
    assert {f.op_type for f in unsafe.findings} == {op_type} and not unsafe.not_analysed_nodes
