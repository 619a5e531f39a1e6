"""Range specs that hold no value of their tensor's type are errors, not silently another range."""

from __future__ import annotations

import pytest
from onnx import TensorProto, helper

import ranum
from ranum.errors import RangeSpecError


@pytest.mark.parametrize(("elem_type", "low", "high"), [
    (TensorProto.INT64, 0.5, 0.7), (TensorProto.INT64, 1e30, 1e31), (TensorProto.BOOL, 0.0, 2.0),
    (TensorProto.BOOL, 0.5, 0.5), (TensorProto.FLOAT, 1e39, 1e40)])
def test_a_range_that_holds_no_value_of_its_type_is_an_error(elem_type: int, low: float, high: float) -> None:
    graph = helper.make_graph([helper.make_node("Identity", ["v"], ["y"])], "g",
                              [helper.make_tensor_value_info("v", elem_type, [2])],
                              [helper.make_tensor_value_info("y", elem_type, [2])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    with pytest.raises(RangeSpecError, match="'v'"):
        ranum.check(model, {"inputs": {"v": [low, high]}})
