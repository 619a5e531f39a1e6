"""Concrete rules agree with the node test cases that ship in the onnx wheel, and abstract rules
on point intervals contain the expected outputs."""

from __future__ import annotations

import warnings

import numpy as np
import onnx
import pytest
import torch

from ranum.domain.dtypes import is_float
from ranum.domain.interval import Interval
from ranum.errors import ModelError, UnsupportedOperator
from ranum.graph.loader import load_model
from ranum.interpret import run_abstract, run_concrete
from ranum.ops import REGISTRY

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from onnx.backend.test.case.node import collect_testcases

SUPPORTED_INPUT_TYPES = (np.float32, np.float64, np.int64, np.int32, np.bool_, np.float16)


def _cases():
    out = []
    for case in collect_testcases():
        model = case.model
        if len(model.graph.node) != 1 or model.graph.node[0].domain not in ("", "ai.onnx"):
            continue
        opset = max((i.version for i in model.opset_import if i.domain in ("", "ai.onnx")), default=0)
        if not 11 <= opset <= 21:
            continue
        if REGISTRY.lookup(model.graph.node[0].op_type, "", opset) is None:
            continue
        for inputs, outputs in case.data_sets:
            if all(isinstance(a, np.ndarray) and a.dtype.type in SUPPORTED_INPUT_TYPES for a in inputs + outputs):
                out.append(pytest.param(model, inputs, outputs, id=case.name))
                break
    return out


CASES = _cases()


@pytest.mark.parametrize(("model", "inputs", "outputs"), CASES)
def test_concrete_and_abstract_match_onnx_reference(model: onnx.ModelProto, inputs, outputs) -> None:
    try:
        graph, _ = load_model(model)
    except ModelError as exc:
        pytest.skip(f"onnx reference model not loadable here: {exc}")
    names = [i.name for i in model.graph.input if i.name not in graph.initializers]
    feeds = {n: torch.from_numpy(np.array(a)) for n, a in zip(names, inputs)}
    try:
        values = run_concrete(graph, feeds).values
    except UnsupportedOperator as exc:
        pytest.skip(f"attribute combination not supported (documented limitation): {exc}")
    initial = {n: Interval.point(feeds[n], i.elem_type) for n, i in zip(names, graph.inputs)}
    for name, proto in graph.initializers.items():
        initial[name] = Interval.point(torch.from_numpy(onnx.numpy_helper.to_array(proto).copy()), proto.data_type)
    run = run_abstract(graph, initial)
    for out, expected in zip(model.graph.output, outputs):
        got = values[out.name]
        expected = np.asarray(expected)
        got_np = got.float().numpy() if got.dtype == torch.bfloat16 else got.numpy()
        if expected.dtype.kind == "f":
            np.testing.assert_allclose(got_np.astype(np.float64), expected.astype(np.float64), rtol=1e-4,
                                       atol=1e-5, equal_nan=True)
        else:
            np.testing.assert_array_equal(got_np, expected)
        iv = run.env[out.name]
        if iv.shape is None or out.name in run.unsupported:
            continue
        lo, hi = (t.numpy() for t in iv.full())
        v = expected.astype(np.float64)
        tolerance = 1e-5 * np.abs(v) + 1e-6 if is_float(iv.elem_type) else 0
        inside = np.isnan(v) | ((v >= lo - tolerance) & (v <= hi + tolerance))
        assert inside.all(), f"expected output outside ranum's interval for {out.name}"
