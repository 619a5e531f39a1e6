"""Initializer payloads read as views of the model file's bytes: same values as protobuf's reading,
and protobuf's reading wherever the bytes are ambiguous or do not fit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

import ranum
from ranum.graph._raw_views import raw_views
from ranum.graph.loader import initializer_value, load_model


def _model(initializers: list[onnx.TensorProto]) -> onnx.ModelProto:
    nodes = [helper.make_node("Identity", [init.name], [f"out_{i}"]) for i, init in enumerate(initializers)]
    outputs = [helper.make_tensor_value_info(f"out_{i}", init.data_type, list(init.dims))
               for i, init in enumerate(initializers)]
    graph = helper.make_graph(nodes, "g", [], outputs, initializer=initializers)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _tensors() -> list[onnx.TensorProto]:
    rng = np.random.default_rng(0)
    return [
        numpy_helper.from_array(rng.standard_normal((7, 5)).astype(np.float32), "w32"),
        numpy_helper.from_array(rng.standard_normal((3,)).astype(np.float16), "w16"),
        numpy_helper.from_array(rng.standard_normal((2, 2)), "w64"),
        numpy_helper.from_array(np.arange(6, dtype=np.int64).reshape(2, 3), "ints"),
        numpy_helper.from_array(np.array([True, False]), "flags"),
        numpy_helper.from_array(np.zeros((0, 4), np.float32), "empty"),
        helper.make_tensor("listed", onnx.TensorProto.FLOAT, [3], [1.0, 2.0, 3.0]),  # float_data, no raw bytes
    ]


def test_views_hold_the_same_values_as_protobuf_reading(tmp_path: Path) -> None:
    path = tmp_path / "m.onnx"
    onnx.save(_model(_tensors()), str(path))
    graph, _ = load_model(path)
    assert set(graph.raw_values) == {"w32", "w16", "w64", "ints", "flags", "empty"}
    for init in _tensors():
        expected = numpy_helper.to_array(init)
        got = initializer_value(graph, init.name)
        assert got.dtype == expected.dtype and got.shape == expected.shape
        np.testing.assert_array_equal(got, expected)
    assert not graph.raw_values["w32"].flags.writeable


def test_an_in_memory_model_reads_through_protobuf() -> None:
    graph, _ = load_model(_model(_tensors()))
    assert graph.raw_values == {}
    np.testing.assert_array_equal(initializer_value(graph, "w32"), numpy_helper.to_array(_tensors()[0]))


def test_a_name_used_twice_is_left_to_protobuf() -> None:
    first, second = _tensors()[0], _tensors()[0]
    model = _model([first])
    model.graph.initializer.append(second)
    data = model.SerializeToString()
    assert "w32" not in raw_views(data, onnx.load_model_from_string(data).graph)


def test_bytes_that_do_not_parse_give_no_views() -> None:
    data = _model(_tensors()).SerializeToString()
    parsed = onnx.load_model_from_string(data)
    assert raw_views(data[:-3], parsed.graph) == {}  # cut inside the graph field
    assert raw_views(b"\x3a\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", parsed.graph) == {}  # endless varint


@pytest.mark.parametrize("weights", ["exact", "derived"])
def test_a_model_file_and_the_same_model_in_memory_analyse_alike(tmp_path: Path, weights: str) -> None:
    rng = np.random.default_rng(1)
    w = numpy_helper.from_array(rng.standard_normal((64, 32)).astype(np.float32), "W")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "W"], ["h"]), helper.make_node("Log", ["h"], ["y"])],
                              "g", [helper.make_tensor_value_info("x", 1, [1, 64])],
                              [helper.make_tensor_value_info("y", 1, [1, 32])], initializer=[w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    path = tmp_path / "m.onnx"
    onnx.save(model, str(path))
    spec = {"inputs": {"x": [0, 1]}, "weights": {"default": weights}}
    from_file, in_memory = ranum.analyze(path, spec), ranum.analyze(model, spec)
    for a, b in zip(from_file.bounds("h"), in_memory.bounds("h")):
        np.testing.assert_array_equal(a, b)


def test_a_truncated_payload_in_a_file_is_still_a_model_error(tmp_path: Path) -> None:
    weight = numpy_helper.from_array(np.full((64, 32), 0.25, np.float32), "W")
    weight.raw_data = weight.raw_data[:-8]
    model = _model([weight])
    path = tmp_path / "m.onnx"
    onnx.save(model, str(path))
    with pytest.raises(ranum.ModelError, match="'W'"):
        ranum.check(path, {"weights": {"default": "exact"}})
