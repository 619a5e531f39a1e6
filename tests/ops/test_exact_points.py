"""Exact operands and float64 kernels: a result computed in float64 is a point only where the real result is
that value (checked in rational arithmetic), torch's float64 square root is not taken as correctly rounded, and
onnxruntime's float64 Sin / Cos vector path errs by an absolute amount. Each model runs in onnxruntime on
tensors of several elements (its vector kernels), and every value must lie in ranum's bounds, or a NaN / inf
must have a forward finding at or before it."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto
from onnx import helper as oh

import ranum
from ranum.ops._exact_results import real_result_is

DOUBLE, FLOAT = TensorProto.DOUBLE, TensorProto.FLOAT


def _unary_chain(ops: list[str], elem: int, length: int, constant: float | None = None) -> onnx.ModelProto:
    """``x -> ops[0] -> ops[1] ...`` on a (length,) tensor; ``constant``: x is a Constant of that value."""
    names = ["x"] + [f"t{i}" for i in range(len(ops))]
    nodes = [oh.make_node(op, [a], [b], name=f"n{i}") for i, (op, a, b) in enumerate(zip(ops, names, names[1:]))]
    inputs = [oh.make_tensor_value_info("x", elem, [length])]
    if constant is not None:
        value = np.full(length, constant, oh.tensor_dtype_to_np_dtype(elem))
        nodes.insert(0, oh.make_node("Constant", [], ["x"], value=onnx.numpy_helper.from_array(value)))
        inputs = []
    outputs = [oh.make_tensor_value_info(n, elem, [length]) for n in names[1:]]
    model = oh.make_model(oh.make_graph(nodes, "g", inputs, outputs), opset_imports=[oh.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def _assert_held(model: onnx.ModelProto, spec: dict, feeds: dict[str, np.ndarray]) -> None:
    report = ranum.check(model, spec)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in model.graph.output]
    found = {f.node for f in report.findings if f.kind == "forward"}
    producers = {n.output[0]: n.name for n in model.graph.node}
    for name, value in zip(names, session.run(names, feeds)):
        lo, hi = report.analysis.bounds(name)
        finite = np.isfinite(value)
        assert bool(np.all((lo[finite] <= value[finite]) & (value[finite] <= hi[finite]))), name
        if not finite.all():
            upstream = [producers[n] for n in names[:names.index(name) + 1]]
            assert found & set(upstream), f"{name}: NaN/inf with no finding"


def test_a_float64_sqrt_bound_is_not_torchs_rounding() -> None:
    """sqrt(0.24999999999999997) is 0.49999999999999994 (correctly rounded, as onnxruntime gives it); torch gives
    0.5, and ``Sqrt(Sqrt(x) - 0.5)`` was NaN with no finding."""
    low = 0.24999999999999997
    nodes = [oh.make_node("Sqrt", ["x"], ["s"], name="s"), oh.make_node("Sub", ["s", "h"], ["d"], name="d"),
             oh.make_node("Sqrt", ["d"], ["y"], name="y")]
    half = onnx.numpy_helper.from_array(np.array([0.5]), "h")
    graph = oh.make_graph(nodes, "g", [oh.make_tensor_value_info("x", DOUBLE, [4])],
                          [oh.make_tensor_value_info(n, DOUBLE, [4]) for n in "sdy"], [half])
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", 17)], ir_version=8)
    _assert_held(model, {"inputs": {"x": [low, 1.0]}, "weights": {"default": "exact"}},
                 {"x": np.array([low, 0.5, 0.75, 1.0])})


@pytest.mark.parametrize(("op", "x"), [("Cos", float(np.float64(np.pi / 2))), ("Sin", float(np.float64(np.pi)))])
def test_float64_sin_and_cos_of_several_elements_hold_onnxruntimes_absolute_error(op: str, x: float) -> None:
    """onnxruntime's vector float64 Cos(pi/2) is -0.0 where the real value is 6.1e-17: a Log behind it is -inf
    and must be found."""
    model = _unary_chain([op, "Log"], DOUBLE, 8)
    feeds = {"x": np.linspace(0.0, x, 8)}
    _assert_held(model, {"inputs": {"x": [0.0, x]}}, feeds)


@pytest.mark.parametrize(("ops", "elem", "value"), [(["Log"], DOUBLE, 0.9999999999999998),
                                                      (["Sin"], DOUBLE, 2.980232238769532e-08),
                                                      (["Sqrt"], DOUBLE, 3.9999999999999996),
                                                      (["Asin"], FLOAT, 2.0**-30)])
@pytest.mark.parametrize("length", [3, 4])
def test_an_exact_result_that_lands_on_a_simple_value_is_still_rounded(ops: list[str], elem: int, value: float,
                                                                       length: int) -> None:
    """Log(0.9999999999999998) evaluated in float64 is -2**-52, a simple value, but the real one is not:
    onnxruntime gives -2.2204460492503136e-16; float32 Asin(2**-30) is one ulp above 2**-30 in onnxruntime's
    vector body."""
    model = _unary_chain(ops, elem, length, constant=value)
    _assert_held(model, {"inputs": {}}, {})


def test_exact_points_stay_exact_where_the_real_result_is_simple() -> None:
    """Sqrt(16) = 4, 16 ** 0.5 = 4, 3 / 4 = 0.75, Exp(0) = 1: points, as shape arithmetic needs."""
    analysis = ranum.analyze(_unary_chain(["Sqrt", "Exp"], FLOAT, 2, constant=16.0), {"inputs": {}})
    assert analysis.bounds("t0")[0].tolist() == analysis.bounds("t0")[1].tolist() == [4.0, 4.0]
    assert real_result_is("Pow", [torch.tensor([16.0]), torch.tensor(0.5)], torch.tensor([4.0]))
    assert real_result_is("Div", [torch.tensor([3.0]), torch.tensor([4.0])], torch.tensor([0.75]))
    assert real_result_is("Exp", [torch.tensor([0.0])], torch.tensor([1.0]))
    assert not real_result_is("Exp", [torch.tensor([1e-300], dtype=torch.float64)], torch.tensor([1.0]))
    assert not real_result_is("Div", [torch.tensor([1.0]), torch.tensor([3.0])], torch.tensor([0.25]))
