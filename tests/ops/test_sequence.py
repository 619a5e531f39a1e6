"""Sequence operators against onnxruntime: concrete results equal onnxruntime's, abstract values contain
them for sampled inputs, and hand checks of precision (exact positions, joins at inexact positions,
exact splits and concatenations)."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

from ranum.domain.interval import Interval
from ranum.domain.sequence import SequenceValue
from tests.ops.sequence_models import FLOAT, INT64, assert_sound_and_exact, const, model, seq_vi, vi


def _bounds(iv: Interval) -> tuple[np.ndarray, np.ndarray]:
    lo, hi = iv.full()
    return lo.numpy(), hi.numpy()


def _hull(iv: Interval) -> tuple[float, float]:
    return iv.min(), iv.max()


# ----------------------------------------------------------------------------- construct, at, length
def test_construct_identity_at_and_length() -> None:
    nodes = [helper.make_node("SequenceConstruct", ["x", "y"], ["s0"]),
             helper.make_node("Identity", ["s0"], ["s"]),
             helper.make_node("SequenceAt", ["s", "one"], ["a"]),
             helper.make_node("SequenceAt", ["s", "minus_two"], ["b"]),
             helper.make_node("SequenceLength", ["s"], ["n"])]
    proto = model(nodes, [vi("x", FLOAT, [2, 3]), vi("y", FLOAT, [2, 3])],
                  [seq_vi("s", FLOAT, [2, 3]), vi("a", FLOAT, [2, 3]), vi("b", FLOAT, [2, 3]), vi("n", INT64, [])],
                  [const("one", 1, np.int64), const("minus_two", -2, np.int64)])
    env = assert_sound_and_exact(proto, {"x": (-1.0, 1.0), "y": (2.0, 3.0)}).run.env
    assert _hull(env["a"]) == (2.0, 3.0) and _hull(env["b"]) == (-1.0, 1.0)
    assert env["n"].is_exact and int(env["n"].exact_value()) == 2
    assert env["s"].length == 2


def test_at_with_inexact_position_joins_the_reachable_tensors() -> None:
    nodes = [helper.make_node("SequenceConstruct", ["x", "y", "z"], ["s"]),
             helper.make_node("SequenceAt", ["s", "p"], ["a"])]
    proto = model(nodes, [vi("x", FLOAT, [3]), vi("y", FLOAT, [3]), vi("z", FLOAT, [3]), vi("p", INT64, [])],
                  [vi("a", FLOAT, [3])])
    ranges = {"x": (0.0, 1.0), "y": (2.0, 3.0), "z": (10.0, 11.0)}
    env = assert_sound_and_exact(proto, {**ranges, "p": (-3, -2)}).run.env  # x or y
    assert _hull(env["a"]) == (0.0, 3.0)
    env = assert_sound_and_exact(proto, {**ranges, "p": (2, 3)}).run.env  # z, or out of range (an error)
    assert _hull(env["a"]) == (10.0, 11.0)


# ----------------------------------------------------------------------------- insert, erase
def test_empty_then_inserts_at_the_back_and_at_positions() -> None:
    nodes = [helper.make_node("SequenceEmpty", [], ["e"], dtype=FLOAT),
             helper.make_node("SequenceInsert", ["e", "x"], ["s1"]),
             helper.make_node("SequenceInsert", ["s1", "y"], ["s2"]),
             helper.make_node("SequenceInsert", ["s2", "z", "minus_one"], ["s3"]),  # before the last: x, z, y
             helper.make_node("SequenceInsert", ["s3", "w", "zero"], ["s4"]),  # w, x, z, y
             helper.make_node("ConcatFromSequence", ["s4"], ["c"], axis=0)]
    proto = model(nodes, [vi(n, FLOAT, [1, 2]) for n in "xyzw"], [seq_vi("s4", FLOAT, [1, 2]), vi("c", FLOAT, [4, 2])],
                  [const("minus_one", -1, np.int64), const("zero", 0, np.int64)])
    ranges = {"x": (0.0, 1.0), "y": (2.0, 3.0), "z": (4.0, 5.0), "w": (6.0, 7.0)}
    env = assert_sound_and_exact(proto, ranges).run.env
    lo, hi = _bounds(env["c"])
    np.testing.assert_array_equal(lo[:, 0], [6.0, 0.0, 4.0, 2.0])
    np.testing.assert_array_equal(hi[:, 0], [7.0, 1.0, 5.0, 3.0])


def test_insert_at_an_inexact_position_joins_per_output_position() -> None:
    nodes = [helper.make_node("SequenceConstruct", ["x", "y"], ["s"]),
             helper.make_node("SequenceInsert", ["s", "z", "p"], ["t"])]
    proto = model(nodes, [vi("x", FLOAT, [2]), vi("y", FLOAT, [2]), vi("z", FLOAT, [2]), vi("p", INT64, [])],
                  [seq_vi("t", FLOAT, [2])])
    ranges = {"x": (0.0, 1.0), "y": (2.0, 3.0), "z": (10.0, 11.0), "p": (1, 2)}  # x, z, y or x, y, z
    env = assert_sound_and_exact(proto, ranges).run.env
    items = env["t"].items
    assert [_hull(iv) for iv in items] == [(0.0, 1.0), (2.0, 11.0), (2.0, 11.0)]
    negative = assert_sound_and_exact(proto, {**ranges, "p": (-2, 0)}).run.env["t"]  # z first, or x first
    assert _hull(negative.items[0]) == (0.0, 11.0) and _hull(negative.items[2]) == (2.0, 3.0)


def test_erase_default_negative_and_inexact_positions() -> None:
    nodes = [helper.make_node("SequenceConstruct", ["x", "y", "z"], ["s"]),
             helper.make_node("SequenceErase", ["s"], ["e1"]),
             helper.make_node("SequenceErase", ["s", "minus_three"], ["e2"]),
             helper.make_node("SequenceErase", ["s", "p"], ["e3"])]
    proto = model(nodes, [vi("x", FLOAT, [2]), vi("y", FLOAT, [2]), vi("z", FLOAT, [2]), vi("p", INT64, [])],
                  [seq_vi("e1", FLOAT, [2]), seq_vi("e2", FLOAT, [2]), seq_vi("e3", FLOAT, [2])],
                  [const("minus_three", -3, np.int64)])
    ranges = {"x": (0.0, 1.0), "y": (2.0, 3.0), "z": (10.0, 11.0), "p": (0, 1)}
    env = assert_sound_and_exact(proto, ranges).run.env
    assert [_hull(iv) for iv in env["e1"].items] == [(0.0, 1.0), (2.0, 3.0)]
    assert [_hull(iv) for iv in env["e2"].items] == [(2.0, 3.0), (10.0, 11.0)]
    assert [_hull(iv) for iv in env["e3"].items] == [(0.0, 3.0), (10.0, 11.0)]


# ----------------------------------------------------------------------------- split, concat
SPLITS = [  # (id, split initializer or None, attributes, concat attributes that rebuild the input)
    ("ones-keepdims", None, {"axis": 0}, {"axis": 0}),
    ("ones-squeezed", None, {"axis": 0, "keepdims": 0}, {"axis": 0, "new_axis": 1}),
    ("ones-last-axis-squeezed", None, {"axis": -1, "keepdims": 0}, {"axis": -1, "new_axis": 1}),
    ("scalar-uneven", 4, {"axis": 0}, {"axis": 0}),
    ("scalar-even", 2, {"axis": 1}, {"axis": 1}),
    ("sizes", [1, 3], {"axis": 1, "keepdims": 0}, {"axis": -1}),
]


@pytest.mark.parametrize(("split", "attrs", "concat"), [s[1:] for s in SPLITS], ids=[s[0] for s in SPLITS])
def test_split_to_sequence_and_back(split, attrs: dict, concat: dict) -> None:
    inputs = ["x"] + ([] if split is None else ["split"])
    inits = [] if split is None else [const("split", split, np.int64)]
    nodes = [helper.make_node("Exp", ["x"], ["ex"]),  # blocks: every element its own bound
             helper.make_node("SplitToSequence", ["ex"] + inputs[1:], ["s"], **attrs),
             helper.make_node("ConcatFromSequence", ["s"], ["c"], **concat),
             helper.make_node("SequenceLength", ["s"], ["n"])]
    proto = model(nodes, [vi("x", FLOAT, [6, 4])], [seq_vi("s", FLOAT, None), vi("c", FLOAT, [6, 4]),
                                                    vi("n", INT64, [])], inits)
    env = assert_sound_and_exact(proto, {"x": (-1.0, 1.0)}).run.env
    assert env["n"].is_exact
    assert env["c"].shape == (6, 4)  # rebuilt exactly


def test_split_with_a_point_input_is_exact() -> None:
    weights = const("w", [1.0, 2.0, 3.0, 4.0, 5.0], np.float32)
    nodes = [helper.make_node("Constant", [], ["w"], value=weights),
             helper.make_node("SplitToSequence", ["w", "split"], ["s"], axis=0),
             helper.make_node("SequenceAt", ["s", "one"], ["b"]),
             helper.make_node("Add", ["b", "x"], ["y"])]
    proto = model(nodes, [vi("x", FLOAT, [1])], [vi("y", FLOAT, [2])],
                  [const("split", [3, 2], np.int64), const("one", 1, np.int64)])
    env = assert_sound_and_exact(proto, {"x": (0.0, 1.0)}, samples=2).run.env
    assert env["b"].is_exact and env["b"].exact_value().tolist() == [4.0, 5.0]


def test_split_by_an_inexact_scalar_bounds_the_piece_count() -> None:
    nodes = [helper.make_node("SplitToSequence", ["x", "k"], ["s"], axis=0),
             helper.make_node("SequenceLength", ["s"], ["n"]),
             helper.make_node("ConcatFromSequence", ["s"], ["c"], axis=0)]
    proto = model(nodes, [vi("x", FLOAT, [7, 2]), vi("k", INT64, [])],
                  [seq_vi("s", FLOAT, None), vi("n", INT64, []), vi("c", FLOAT, ["rows", 2])])
    env = assert_sound_and_exact(proto, {"x": (-2.0, 3.0), "k": (2, 3)}).run.env
    assert (int(env["n"].lower), int(env["n"].upper)) == (3, 4)  # ceil(7 / 3), ceil(7 / 2)
    assert env["c"].shape is None and _hull(env["c"]) == (-2.0, 3.0)


STACKS = [({"axis": 0}, (4, 3)), ({"axis": 1}, (2, 6)), ({"axis": 0, "new_axis": 1}, (2, 2, 3)),
          ({"axis": -1, "new_axis": 1}, (2, 3, 2)), ({"axis": 2, "new_axis": 1}, (2, 3, 2))]


@pytest.mark.parametrize(("attrs", "shape"), STACKS, ids=[str(a) for a, _ in STACKS])
def test_concat_from_sequence_axes(attrs: dict, shape: tuple) -> None:
    nodes = [helper.make_node("SequenceConstruct", ["x", "y"], ["s"]),
             helper.make_node("ConcatFromSequence", ["s"], ["c"], **attrs)]
    proto = model(nodes, [vi("x", FLOAT, [2, 3]), vi("y", FLOAT, [2, 3])], [vi("c", FLOAT, list(shape))])
    env = assert_sound_and_exact(proto, {"x": (-1.0, 0.0), "y": (5.0, 6.0)}).run.env
    assert env["c"].shape == shape
    lo, hi = _bounds(env["c"])
    assert lo.min() == -1.0 and hi.max() == 6.0 and int((lo == 5.0).sum()) == 6  # y's six elements stay apart


# ----------------------------------------------------------------------------- SequenceMap
def _map_body() -> object:
    """(a, b) -> (a + b, exp(a)): b is a tensor operand as it is, or the k-th tensor of a sequence operand."""
    nodes = [helper.make_node("Add", ["a", "b"], ["sum"]), helper.make_node("Exp", ["a"], ["ea"])]
    return helper.make_graph(nodes, "body", [vi("a", FLOAT, [2]), vi("b", FLOAT, [2])],
                             [vi("sum", FLOAT, [2]), vi("ea", FLOAT, [2])])


@pytest.mark.parametrize("sequence_operand", [False, True], ids=["tensor-operand", "sequence-operand"])
def test_sequence_map(sequence_operand: bool) -> None:
    body = _map_body()
    nodes = [helper.make_node("SequenceConstruct", ["x", "y"], ["s"]),
             helper.make_node("SequenceConstruct", ["t", "x"], ["u"]),
             helper.make_node("SequenceMap", ["s", "u" if sequence_operand else "t"], ["sums", "exps"], body=body),
             helper.make_node("ConcatFromSequence", ["sums"], ["c"], axis=0)]
    proto = model(nodes, [vi("x", FLOAT, [2]), vi("y", FLOAT, [2]), vi("t", FLOAT, [2])],
                  [seq_vi("sums", FLOAT, [2]), seq_vi("exps", FLOAT, [2]), vi("c", FLOAT, [4])], opset=17)
    env = assert_sound_and_exact(proto, {"x": (0.0, 1.0), "y": (2.0, 3.0), "t": (10.0, 20.0)}).run.env
    sums = env["sums"].items
    assert _hull(sums[0]) == (10.0, 21.0) and _hull(sums[1]) == ((2.0, 4.0) if sequence_operand else (12.0, 23.0))


def test_sequence_map_over_a_sequence_of_unknown_length() -> None:
    body = helper.make_graph([helper.make_node("Exp", ["a"], ["ea"])], "body", [vi("a", FLOAT, [2])],
                             [vi("ea", FLOAT, [2])])
    nodes = [helper.make_node("SplitToSequence", ["x", "k"], ["s"], axis=0),
             helper.make_node("SequenceMap", ["s"], ["exps"], body=body),
             helper.make_node("SequenceLength", ["exps"], ["n"])]
    proto = model(nodes, [vi("x", FLOAT, [6, 2]), vi("k", INT64, [])], [seq_vi("exps", FLOAT, None),
                                                                         vi("n", INT64, [])], opset=17)
    env = assert_sound_and_exact(proto, {"x": (0.0, 1.0), "k": (2, 3)}).run.env
    assert isinstance(env["exps"], SequenceValue) and env["exps"].length is None
    assert (int(env["n"].lower), int(env["n"].upper)) == (2, 3)
