"""The runtime facts the normalization rules rely on, checked against onnxruntime.

LayerNormalization and InstanceNormalization compute the variance around the computed mean (two
passes): it is never negative (so with epsilon > 0 they never produce NaN/Inf, even for near-constant
rows of large values) and no output exceeds sqrt(n) in magnitude, whatever the rows' magnitude;
GroupNormalization does cancel (E[x^2] - E[x]^2), so only its zero-variance hazard survives a
positive epsilon.
"""

from __future__ import annotations

from unittest import mock

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

import ranum
from ranum.domain.interval import Interval
from ranum.ops.normalization import SliceVarianceHazard

CASES = [("LayerNormalization", {"axis": -1}, 17, False), ("InstanceNormalization", {}, 17, False),
         ("GroupNormalization", {"num_groups": 4}, 21, True)]


def _model(op: str, attrs: dict, opset: int) -> onnx.ModelProto:
    channels = 8
    scale_shape = [16] if op == "LayerNormalization" else [channels]
    node = helper.make_node(op, ["x", "g", "b"], ["y"], epsilon=1e-12, **attrs)
    graph = helper.make_graph(
        [node], "norm", [helper.make_tensor_value_info("x", 1, [200, channels, 16])],
        [helper.make_tensor_value_info("y", 1, [200, channels, 16])],
        initializer=[numpy_helper.from_array(np.ones(scale_shape, np.float32), "g"),
                     numpy_helper.from_array(np.zeros(scale_shape, np.float32), "b")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


@pytest.mark.parametrize(("op", "attrs", "opset", "cancels"), CASES, ids=[c[0] for c in CASES])
def test_variance_cancellation_matches_runtime(op: str, attrs: dict, opset: int, cancels: bool) -> None:
    model = _model(op, attrs, opset)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    bad = 0
    for _ in range(4):
        magnitude = 10.0 ** rng.uniform(-3, 6, (200, 1, 1))
        noise = rng.normal(0, 1e-7, (200, 8, 16)) * (rng.random((200, 1, 1)) < 0.5)
        x = (magnitude * (1 + noise)).astype(np.float32)
        bad += int((~np.isfinite(session.run(None, {"x": x})[0])).sum())
    assert (bad > 0) == cancels
    report = ranum.check(model, {"inputs": {"x": [-1e6, 1e6]}, "weights": {"default": "exact"}})
    flagged = any(f.hazard_id == "normalization-zero-variance" for f in report.findings)
    assert flagged == cancels


@pytest.mark.parametrize(("op", "attrs", "opset"), [c[:3] for c in CASES if not c[3]], ids=lambda v: str(v))
def test_outputs_stay_within_sqrt_n_for_near_constant_rows_of_any_magnitude(op: str, attrs: dict, opset: int) -> None:
    model = _model(op, attrs, opset)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(1)
    worst = 0.0
    for _ in range(6):
        magnitude = 10.0 ** rng.uniform(-3, 12, (200, 1, 1))
        noise = rng.normal(0, 1.0, (200, 8, 16)) * 10.0 ** rng.uniform(-10, -1, (200, 1, 1))
        y = session.run(None, {"x": (magnitude * (1 + noise)).astype(np.float32)})[0]
        worst = max(worst, float(np.abs(y).max()))
    spec = {"inputs": {"x": [-1e12, 1e12]}, "weights": {"default": "exact"}}
    lo, hi = ranum.analyze(model, spec).bounds("y")
    assert worst <= float(hi.max()) and -worst >= float(lo.min())
    assert float(hi.max()) <= 4.0 * 1.0001  # n = 16 normalized elements: sqrt(16)


@settings(max_examples=120, deadline=None)
@given(st.integers(0, 2**31 - 1), st.sampled_from([0.0, 1e-300, 1e-12, 1e-5, 0.1]), st.booleans(),
       st.sampled_from([1.0, 1e3, 1e8, 1e150]))
def test_the_epsilon_shortcut_never_hides_a_zero_variance_hit(seed: int, epsilon: float, nonneg: bool,
                                                               scale: float) -> None:
    """Where the hazard check answers from epsilon and the largest magnitude alone, the full row
    statistics find no hit either."""
    rng = np.random.default_rng(seed)
    grid = (2, 3, 2)
    lo = torch.tensor(rng.uniform(-1, 1, grid) * scale)
    width = torch.tensor(rng.uniform(0, 1, grid)) * torch.tensor(rng.random(grid) < 0.5) * scale
    x = Interval.create(lo, lo + width, ((0, 1), (0, 2, 5), (0, 3)), (2, 7, 4), TensorProto.FLOAT)
    hazard = SliceVarianceHazard(epsilon, axis=1, nonneg_variance=nonneg)
    if hazard._safe_by_epsilon(x):
        assert _full_check(hazard, x) is None


def _full_check(hazard: SliceVarianceHazard, x: Interval):
    """The hazard check without its shortcut."""
    with mock.patch.object(SliceVarianceHazard, "_safe_by_epsilon", lambda self, iv: False):
        return hazard.check([x], [])
