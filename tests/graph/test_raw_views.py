"""Large weights left out of the parsed model and read as views of the model file's bytes: the same
values as protobuf's reading, everything else parsed as usual, and every workflow (check, confirm,
fix) alike on a model file and on the same model in memory."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

import ranum
from ranum.confirm import SearchConfig, confirm
from ranum.fix import fix
from ranum.graph._raw_views import strip_payloads
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
        numpy_helper.from_array(rng.standard_normal((70, 50)).astype(np.float32), "w32"),
        numpy_helper.from_array(rng.standard_normal((2000,)).astype(np.float16), "w16"),
        numpy_helper.from_array(rng.standard_normal((40, 40)), "w64"),
        numpy_helper.from_array(rng.standard_normal((3, 5)).astype(np.float32), "small"),
        numpy_helper.from_array(np.arange(2000, dtype=np.int64), "ints"),
        helper.make_tensor("listed", onnx.TensorProto.FLOAT, [1100], [0.5] * 1100),  # float_data, no raw bytes
    ]


def test_large_float_payloads_are_views_and_the_rest_is_parsed(tmp_path: Path) -> None:
    path = tmp_path / "m.onnx"
    onnx.save(_model(_tensors()), str(path))
    graph, _ = load_model(path)
    assert set(graph.raw_values) == {"w32", "w16", "w64"}
    parsed = {init.name: init for init in graph.proto.graph.initializer}
    assert not parsed["w32"].raw_data and list(parsed["w32"].dims) == [70, 50]  # left out of the parsed model
    assert parsed["small"].raw_data and parsed["ints"].raw_data
    for init in _tensors():
        expected = numpy_helper.to_array(init)
        got = initializer_value(graph, init.name)
        assert got.dtype == expected.dtype and got.shape == expected.shape
        np.testing.assert_array_equal(got, expected)
    assert not graph.raw_values["w32"].flags.writeable


def test_views_keep_their_values_when_the_file_is_replaced(tmp_path: Path) -> None:
    """The payloads are views of a read-only mapping of the file: replacing the file (as ranum
    writes its outputs: a new file renamed over the old one) leaves the loaded values as they were."""
    import os

    path = tmp_path / "m.onnx"
    onnx.save(_model(_tensors()), str(path))
    graph, _ = load_model(path)
    other = _tensors()
    other[0] = numpy_helper.from_array(np.zeros((70, 50), dtype=np.float32), "w32")
    onnx.save(_model(other), str(tmp_path / "new.onnx"))
    os.replace(tmp_path / "new.onnx", path)
    np.testing.assert_array_equal(initializer_value(graph, "w32"), numpy_helper.to_array(_tensors()[0]))
    assert load_model(path)[0].raw_values["w32"].max() == 0.0


def test_an_in_memory_model_keeps_its_payloads() -> None:
    graph, _ = load_model(_model(_tensors()))
    assert graph.raw_values == {}
    np.testing.assert_array_equal(initializer_value(graph, "w32"), numpy_helper.to_array(_tensors()[0]))


def test_the_stripped_bytes_parse_to_the_same_model_less_the_payloads() -> None:
    model = _model(_tensors())
    stripped, views = strip_payloads(model.SerializeToString())
    parsed = onnx.load_model_from_string(stripped)
    for init in parsed.graph.initializer:
        if init.name in views:
            init.raw_data = views[init.name].tobytes()
    assert parsed.SerializeToString() == model.SerializeToString()


def test_a_name_used_twice_is_left_to_protobuf() -> None:
    model = _model([_tensors()[0]])
    model.graph.initializer.append(_tensors()[0])
    assert strip_payloads(model.SerializeToString()) is None


def test_bytes_that_do_not_parse_are_left_as_they_are() -> None:
    data = _model(_tensors()).SerializeToString()
    assert strip_payloads(data[:-3]) is None  # cut inside the graph field
    assert strip_payloads(b"\x3a\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff") is None  # endless varint


def test_a_truncated_payload_in_a_file_is_still_a_model_error(tmp_path: Path) -> None:
    weight = numpy_helper.from_array(np.full((64, 32), 0.25, np.float32), "W")
    weight.raw_data = weight.raw_data[:-8]
    path = tmp_path / "m.onnx"
    onnx.save(_model([weight]), str(path))
    with pytest.raises(ranum.ModelError, match="'W'"):
        ranum.check(path, {"weights": {"default": "exact"}})


def _log_of_product() -> onnx.ModelProto:
    rng = np.random.default_rng(1)
    w = numpy_helper.from_array(rng.standard_normal((64, 32)).astype(np.float32), "W")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "W"], ["h"]), helper.make_node("Log", ["h"], ["y"])],
                              "g", [helper.make_tensor_value_info("x", 1, [1, 64])],
                              [helper.make_tensor_value_info("y", 1, [1, 32])], initializer=[w])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize("weights", ["exact", "derived"])
def test_check_confirm_and_fix_agree_on_a_file_and_in_memory(tmp_path: Path, weights: str) -> None:
    model = _log_of_product()
    path = tmp_path / "m.onnx"
    onnx.save(model, str(path))
    assert load_model(path)[0].raw_values  # the file path takes the stripped route
    spec = {"inputs": {"x": [0, 1]}, "weights": {"default": weights}}
    from_file, in_memory = ranum.check(path, spec), ranum.check(model, spec)
    for a, b in zip(from_file.analysis.bounds("h"), in_memory.analysis.bounds("h")):
        np.testing.assert_array_equal(a, b)
    search = SearchConfig(seconds=5)
    statuses = [[r.status for r in confirm(m, spec, search_config=search).results] for m in (path, model)]
    assert statuses[0] == statuses[1] and "confirmed" in statuses[0]
    fixed = [fix(m, spec) for m in (path, model)]
    assert [f.certified for f in fixed] == [True, True]
    assert len(fixed[0].patched.graph.initializer[0].raw_data) == 64 * 32 * 4  # the patched model keeps W
