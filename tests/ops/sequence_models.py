"""Small ONNX graphs with sequence (and optional) values, and the check that compares ranum with
onnxruntime on them.

``assert_sound_and_exact`` analyses a model under input ranges, then for random inputs inside them
(corners included) runs onnxruntime and ranum's concrete interpreter: concrete results must equal
onnxruntime's, and every output (tensor or sequence) must lie inside its abstract value. Where
onnxruntime fails (a position out of range, an empty optional read), ranum's concrete run must fail too.
An optional graph input is fed None (empty) in about a quarter of the samples.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.capi.onnxruntime_pybind11_state import InvalidArgument, RuntimeException

import ranum
from ranum.domain.interval import Interval
from ranum.domain.optional import OptionalValue
from ranum.domain.sequence import SequenceValue
from ranum.errors import RanumError
from ranum.graph.loader import load_model
from ranum.interpret import run_concrete

FLOAT, INT64, BOOL = TensorProto.FLOAT, TensorProto.INT64, TensorProto.BOOL
SAMPLES = 30


def vi(name: str, elem_type: int, shape: list | None) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, elem_type, shape)


def seq_vi(name: str, elem_type: int = FLOAT, shape: list | None = None) -> onnx.ValueInfoProto:
    return helper.make_tensor_sequence_value_info(name, elem_type, shape)


def const(name: str, value, dtype) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(value, dtype=dtype), name)


def model(nodes: list, inputs: list, outputs: list, inits: list = (), opset: int = 18) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "sequences", inputs, outputs, initializer=list(inits))
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    proto.ir_version = 8
    onnx.checker.check_model(proto)
    return proto


# ----------------------------------------------------------------------------- sampling
def _draw(rng: np.random.Generator, low: float, high: float, shape: tuple, elem_type: int) -> np.ndarray:
    if elem_type == INT64:
        return rng.integers(int(low), int(high) + 1, size=shape).astype(np.int64)
    if elem_type == BOOL:
        return rng.integers(int(low), int(high) + 1, size=shape).astype(np.bool_)
    corner = rng.random() < 0.3
    draw = rng.choice([low, high], size=shape) if corner else rng.uniform(low, high, size=shape)
    return np.asarray(draw, dtype=np.float32)


def sample_feeds(rng: np.random.Generator, proto: onnx.ModelProto, ranges: Mapping[str, tuple]) -> dict:
    """Values inside ``ranges`` for every graph input (a sequence input gets 1 to 3 tensors, an optional
    input is None in about a quarter of the draws)."""
    return {value.name: _sample(rng, value.type, ranges[value.name]) for value in proto.graph.input}


def _sample(rng: np.random.Generator, vtype: onnx.TypeProto, bounds: tuple):
    low, high = bounds
    if vtype.HasField("optional_type"):
        return None if rng.random() < 0.25 else _sample(rng, vtype.optional_type.elem_type, bounds)
    if vtype.HasField("sequence_type"):
        ttype = vtype.sequence_type.elem_type.tensor_type
        shape = tuple(d.dim_value for d in ttype.shape.dim)
        return [_draw(rng, low, high, shape, ttype.elem_type) for _ in range(rng.integers(1, 4))]
    ttype = vtype.tensor_type
    return _draw(rng, low, high, tuple(d.dim_value for d in ttype.shape.dim), ttype.elem_type)


def _torch(value):
    if value is None:
        return None
    if isinstance(value, list):
        return [torch.from_numpy(v) for v in value]
    return torch.from_numpy(np.asarray(value))


# ----------------------------------------------------------------------------- checking
def _inside(bound, value) -> bool:
    if isinstance(bound, OptionalValue):
        return bound.contains(_torch(value))
    if isinstance(value, list):
        return isinstance(bound, SequenceValue) and bound.contains(_torch(value))
    assert isinstance(bound, Interval), bound
    tensor = _torch(value)
    if bound.shape is not None and tuple(tensor.shape) != bound.shape:
        return False
    return bool((bound.contains(tensor) | torch.isnan(tensor.to(torch.float64))).all())


def _same(got, expected) -> None:
    if expected is None or got is None:
        assert got is None and expected is None, (got, expected)
        return
    if isinstance(expected, list):
        assert isinstance(got, list) and len(got) == len(expected)
        for g, e in zip(got, expected):
            np.testing.assert_allclose(g.numpy(), e, rtol=1e-6)
        return
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-6)


def assert_sound_and_exact(proto: onnx.ModelProto, ranges: Mapping[str, tuple], seed: int = 0,
                           samples: int = SAMPLES) -> ranum.Analysis:
    """onnxruntime's outputs on sampled inputs lie inside ranum's values; ranum's concrete run equals them."""
    analysis = ranum.analyze(proto, {"inputs": {k: list(v) for k, v in ranges.items()}})
    assert not analysis.run.not_analysed, analysis.run.not_analysed
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in proto.graph.output]
    graph, _ = load_model(proto)
    rng = np.random.default_rng(seed)
    ran = 0
    for _ in range(samples):
        feeds = sample_feeds(rng, proto, ranges)
        try:
            expected = session.run(None, feeds)
        except (InvalidArgument, RuntimeException):  # e.g. a position out of range: ranum's run fails too
            with pytest.raises((IndexError, ValueError, RanumError)):
                run_concrete(graph, {k: _torch(v) for k, v in feeds.items()})
            continue
        ran += 1
        got = run_concrete(graph, {k: _torch(v) for k, v in feeds.items()}).values
        for name, value in zip(names, expected):
            assert _inside(analysis.run.env[name], value), f"{name}: {value} outside {analysis.run.env[name]}"
            _same(got[name], value)
    assert ran >= samples // 3, f"only {ran} of {samples} samples ran in onnxruntime"
    return analysis
