"""Random generators: onnxruntime's samples lie inside ranum's bounds; shapes and dtypes agree.

The generic harness cannot compare random values, so RandomUniform(Like) and RandomNormal(Like)
are tested here (Bernoulli and Multinomial also have harness cases, without agreement).
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper

from ranum.domain.dtypes import float_facts
from ranum.domain.interval import Interval
from ranum.graph.loader import load_model
from ranum.interpret import run_abstract, run_concrete
from ranum.ops.random import NORMAL_SAMPLE_CAP

FLOAT, DOUBLE, FLOAT16 = TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.FLOAT16
DRAWS = 5


def _model(op: str, attrs: dict, input_type: int | None = None, shape=(3, 4)) -> onnx.ModelProto:
    inputs = [helper.make_tensor_value_info("x", input_type, list(shape))] if input_type else []
    node = helper.make_node(op, ["x"] if input_type else [], ["y"], **attrs)
    graph = helper.make_graph([node], "random", inputs, [helper.make_empty_tensor_value_info("y")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    return onnx.shape_inference.infer_shapes(model)


def _analyse(model: onnx.ModelProto, input_type: int | None, shape=(3, 4)) -> tuple[Interval, dict]:
    graph, _ = load_model(model)
    initial, feeds = {}, {}
    if input_type:
        value = np.zeros(shape, dtype=helper.tensor_dtype_to_np_dtype(input_type))
        feeds = {"x": value}
        initial = {"x": Interval.point(torch.from_numpy(value), input_type)}  # exact: must still not fold
    run = run_abstract(graph, initial)
    assert not run.unsupported, run.unsupported
    return run.env["y"], feeds


def _ort_samples(model: onnx.ModelProto, feeds: dict) -> list[np.ndarray]:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return [session.run(None, feeds)[0] for _ in range(DRAWS)]


def _assert_inside(iv: Interval, values: list[np.ndarray]) -> None:
    lo, hi = (t.numpy() for t in iv.full())
    for value in values:
        assert value.shape == tuple(iv.shape)
        v = value.astype(np.float64)
        assert np.all((v >= lo) & (v <= hi)), f"{v.min()}..{v.max()} outside [{lo.min()}, {hi.max()}]"


def _assert_concrete_matches(model: onnx.ModelProto, feeds: dict, reference: np.ndarray) -> None:
    graph, _ = load_model(model)
    got = run_concrete(graph, {k: torch.from_numpy(v) for k, v in feeds.items()}).values["y"]
    assert tuple(got.shape) == reference.shape
    assert got.numpy().dtype == reference.dtype


UNIFORM = [
    ("RandomUniform", {"shape": [3, 4]}, None),
    ("RandomUniform", {"shape": [2, 5], "low": -3.0, "high": 7.5, "dtype": DOUBLE, "seed": 2.0}, None),
    ("RandomUniform", {"shape": [64], "low": -3e7, "high": 1.0}, None),  # inexact width: slack
    ("RandomUniformLike", {"low": 2.0, "high": 2.5}, FLOAT),
    ("RandomUniformLike", {"dtype": FLOAT}, DOUBLE),
]


@pytest.mark.parametrize(("op", "attrs", "input_type"), UNIFORM, ids=[f"{u[0]}-{i}" for i, u in enumerate(UNIFORM)])
def test_uniform_samples_lie_inside_low_high(op: str, attrs: dict, input_type: int | None) -> None:
    model = _model(op, attrs, input_type)
    iv, feeds = _analyse(model, input_type)
    samples = _ort_samples(model, feeds)
    _assert_inside(iv, samples)
    _assert_concrete_matches(model, feeds, samples[0])
    low, high = attrs.get("low", 0.0), attrs.get("high", 1.0)
    assert iv.lower.min() >= low - 1e-6 * (abs(low) + abs(high)) and iv.upper.max() <= high + 1e-6 * abs(low)


def test_uniform_bounds_are_exactly_low_high_when_the_width_is_exact() -> None:
    iv, _ = _analyse(_model("RandomUniform", {"shape": [3], "low": 0.0, "high": 1.0}), None)
    assert iv.lower.min() == 0.0 and iv.upper.max() == 1.0  # sqrt(u) or log(1 - u) see exactly [0, 1]


NORMAL = [
    ("RandomNormal", {"shape": [3, 4]}, None),
    ("RandomNormal", {"shape": [4, 4], "mean": 5.0, "scale": 3.0, "dtype": DOUBLE, "seed": 1.0}, None),
    ("RandomNormalLike", {"scale": 0.5}, FLOAT),
    ("RandomNormalLike", {"dtype": FLOAT}, DOUBLE),
]


@pytest.mark.parametrize(("op", "attrs", "input_type"), NORMAL, ids=[f"{n[0]}-{i}" for i, n in enumerate(NORMAL)])
def test_normal_samples_are_finite_and_inside(op: str, attrs: dict, input_type: int | None) -> None:
    model = _model(op, attrs, input_type)
    iv, feeds = _analyse(model, input_type)
    samples = _ort_samples(model, feeds)
    _assert_inside(iv, samples)
    _assert_concrete_matches(model, feeds, samples[0])
    facts = float_facts(iv.elem_type)
    assert iv.lower.min() == -facts.max and iv.upper.max() == facts.max


def test_normal_with_a_huge_scale_may_overflow() -> None:
    scale = float_facts(FLOAT).max / NORMAL_SAMPLE_CAP
    model = _model("RandomNormal", {"shape": [2], "scale": scale})
    iv, _ = _analyse(model, None)
    assert iv.upper.max() == float("inf")
    from ranum.detect import check

    assert [f.hazard_id for f in check(model).findings] == ["overflow"]


def test_random_rules_are_never_folded() -> None:
    model = _model("RandomUniformLike", {}, FLOAT)
    iv, _ = _analyse(model, FLOAT)  # the input is exact, the output is not
    assert not iv.is_exact


def test_multinomial_indices_and_bernoulli_values() -> None:
    model = _model("Multinomial", {"sample_size": 7}, FLOAT, shape=(2, 3))
    iv, _ = _analyse(model, FLOAT, shape=(2, 3))
    assert iv.shape == (2, 7) and iv.lower.min() == 0 and iv.upper.max() == 3
    model = _model("Bernoulli", {}, FLOAT)
    iv, _ = _analyse(model, FLOAT)
    assert iv.lower.min() == 0.0 and iv.upper.max() == 1.0
