"""Tan over a block that holds a pole: no float32 value is a pole, so a float32 tan is bounded (by its values at
the float32 numbers nearest the poles), never infinite; onnxruntime's values there lie inside the bounds."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

import ranum


def _tan(elem_type: int = TensorProto.FLOAT, size: int = 4) -> onnx.ModelProto:
    graph = helper.make_graph([helper.make_node("Tan", ["x"], ["y"])], "tan",
                              [helper.make_tensor_value_info("x", elem_type, [size])],
                              [helper.make_tensor_value_info("y", elem_type, [size])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def _near_poles(low: float, high: float) -> np.ndarray:
    """The float32 numbers within two steps of every pole in [low, high]."""
    first, last = np.ceil((low - np.pi / 2) / np.pi), np.floor((high - np.pi / 2) / np.pi)
    poles = ((np.arange(first, last + 1) + 0.5) * np.pi).astype(np.float32)
    near = [poles]
    for direction in (np.inf, -np.inf):
        step = poles
        for _ in range(2):
            step = np.nextafter(step, np.float32(direction))
            near.append(step)
    values = np.concatenate(near)
    return values[(values >= low) & (values <= high)]


@pytest.mark.parametrize(("low", "high"), [(1.5, 1.6), (-3.0, 3.0), (-1000.0, 1000.0), (3000.0, 4000.0)])
def test_float32_tan_over_poles_is_bounded_and_holds_in_onnxruntime(low: float, high: float) -> None:
    model = _tan()
    spec = {"inputs": {"x": [low, high]}}
    lo, hi = ranum.analyze(model, spec).bounds("y")
    assert np.isfinite(lo).all() and np.isfinite(hi).all()
    assert "overflow" not in {f.hazard_id for f in ranum.check(model, spec).findings}
    x = _near_poles(low, high)
    session = ort.InferenceSession(_tan(size=len(x)).SerializeToString(), providers=["CPUExecutionProvider"])
    y = session.run(None, {"x": x})[0].astype(np.float64)
    assert (y >= lo.min()).all() and (y <= hi.max()).all()
    assert hi.max() <= 1.001 * np.abs(y).max()  # the bound is reached near a pole, not far above it


def test_float64_tan_over_a_pole_stays_unbounded() -> None:
    lo, hi = ranum.analyze(_tan(TensorProto.DOUBLE), {"inputs": {"x": [1.5, 1.6]}}).bounds("y")
    assert lo.min() == -np.inf and hi.max() == np.inf
