"""Operator versions before opset 7 (onnxruntime runs none of them) and the rejections of old versions.

Expected values are written with numpy from the ONNX specification of each version; the abstract
outputs over a box around the inputs must contain the concrete outputs. Versions 7 to 10 are
checked against onnxruntime in the generic cases (tests/ops/cases_*.py) and in
tests/ops/test_onnx_node_cases.py.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper

from ranum.domain.interval import Interval
from ranum.errors import ModelError
from ranum.graph.loader import load_model
from ranum.interpret import AbstractRun, run_abstract, run_concrete
from tests.ops.harness import OpCase, Operand, build_model

FLOAT, INT64, BOOL = TensorProto.FLOAT, TensorProto.INT64, TensorProto.BOOL
A = np.arange(24, dtype=np.float32).reshape(2, 3, 4) / 4 - 2.5


def _model(case: OpCase, ranks: tuple[int, ...] | None = None) -> onnx.ModelProto:
    """The harness's one-node model; outputs that shape inference left untyped or without a shape (some
    versions before opset 7 have no inference function) get the first input's element type and symbolic dimensions,
    as many as ``ranks`` says (default: the first input's rank)."""
    model = build_model(case)
    first = model.graph.input[0].type.tensor_type
    for i, value in enumerate(model.graph.output):
        if not value.type.HasField("tensor_type") or not value.type.tensor_type.HasField("shape"):
            rank = ranks[i] if ranks else len(first.shape.dim)
            dims = [f"{value.name}_{axis}" for axis in range(rank)]
            value.CopyFrom(helper.make_tensor_value_info(value.name, first.elem_type, dims))
    return model


def _analyse(case: OpCase, *arrays: np.ndarray, widen: float = 0.25, ranks: tuple[int, ...] | None = None
             ) -> tuple[list[np.ndarray], AbstractRun]:
    """Concrete outputs at ``arrays`` (the free operands, in order) and the abstract run over boxes of
    half-width ``widen`` around the float ones (integer and boolean operands stay exact)."""
    graph, _ = load_model(_model(case, ranks))
    names = [info.name for info in graph.inputs]
    feeds = {name: torch.from_numpy(np.ascontiguousarray(a)) for name, a in zip(names, arrays)}
    values = run_concrete(graph, feeds).values
    initial = {}
    for info in graph.inputs:
        value = feeds[info.name]
        if value.is_floating_point():
            wide = value.to(torch.float64)
            initial[info.name] = Interval.from_full(wide - widen, wide + widen, info.elem_type)
        else:
            initial[info.name] = Interval.point(value, info.elem_type)
    for name, proto in graph.initializers.items():
        initial[name] = Interval.point(torch.from_numpy(onnx.numpy_helper.to_array(proto).copy()), proto.data_type)
    run = run_abstract(graph, initial)
    outputs = [values[f"out{i}"].numpy() for i in range(case.outputs)]
    for i, value in enumerate(outputs):
        if f"out{i}" not in run.unsupported:
            assert bool(run.env[f"out{i}"].contains(torch.from_numpy(value.astype(np.float64))).all()), f"out{i}"
    return outputs, run


def _operand(array: np.ndarray, elem_type: int = FLOAT) -> Operand:
    return Operand(array.shape, elem_type)


# ------------------------------------------------------------------------------ broadcast and axis
_BINARY = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": np.divide, "Pow": np.power,
           "Greater": np.greater, "Less": np.less}


@pytest.mark.parametrize("op", sorted(_BINARY))
@pytest.mark.parametrize(("b_shape", "axis", "view"), [
    ((3,), 1, (1, 3, 1)), ((3, 4), 1, (1, 3, 4)), ((2,), 0, (2, 1, 1)), ((4,), None, (1, 1, 4)),
    ((1, 1), None, ()), ((2, 3, 4), None, (2, 3, 4)), ((3, 1), -2, (1, 3, 1)),
])
def test_broadcast_attribute_aligns_b_at_axis(op: str, b_shape, axis, view) -> None:
    b = (np.arange(int(np.prod(b_shape)), dtype=np.float32).reshape(b_shape) + 1) / 2
    a = np.abs(A) + 0.5 if op == "Pow" else A
    attrs = {"broadcast": 1} | ({} if axis is None else {"axis": axis})
    case = OpCase(op, (_operand(a), _operand(b)), attrs=attrs, opset=6 if op in ("Add", "Sub", "Mul", "Div") else 1)
    (got,), run = _analyse(case, a, b)
    assert not run.unsupported
    expected = _BINARY[op](a, b.reshape(view))
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    assert got.shape == a.shape


def test_logical_operators_broadcast_at_axis() -> None:
    a = np.array([[True, False, True], [False, False, True]])
    b = np.array([True, False])
    case = OpCase("Xor", (_operand(a, BOOL), _operand(b, BOOL)), attrs={"broadcast": 1, "axis": 0}, opset=1)
    (got,), _ = _analyse(case, a, b)
    np.testing.assert_array_equal(got, np.logical_xor(a, b[:, None]))


@pytest.mark.parametrize(("c_shape", "attrs"), [((5,), {"broadcast": 1}), ((1,), {"broadcast": 1}), ((3, 5), {})])
def test_gemm_before_opset_7_broadcasts_c(c_shape, attrs) -> None:
    a, b = A.reshape(6, 4)[:3], A.reshape(4, 6)[:, :5]
    c = np.arange(int(np.prod(c_shape)), dtype=np.float32).reshape(c_shape)
    case = OpCase("Gemm", (_operand(a), _operand(b), _operand(c)), attrs={"beta": 0.5, **attrs}, opset=6)
    (got,), _ = _analyse(case, a, b, c)
    np.testing.assert_allclose(got, a @ b + 0.5 * c, rtol=1e-5, atol=1e-6)


def test_same_shape_without_broadcast_is_elementwise() -> None:
    case = OpCase("Mul", (_operand(A), _operand(A)), opset=6)
    (got,), run = _analyse(case, A, A + 1)
    np.testing.assert_allclose(got, A * (A + 1), rtol=1e-6)
    assert not run.unsupported


@pytest.mark.parametrize(("b_shape", "attrs", "reason"), [
    ((4,), {"broadcast": 1, "axis": 1}, "not a run of A's shape"),
    ((3,), {"broadcast": 1, "axis": 2}, "not a run of A's shape"),
    ((3, 4), {}, "without broadcast=1"),
])
def test_b_that_does_not_fit_is_rejected(b_shape, attrs, reason) -> None:
    b = np.ones(b_shape, dtype=np.float32)
    graph, _ = load_model(_model(OpCase("Add", (_operand(A), _operand(b)), attrs=attrs, opset=6)))
    run = run_abstract(graph, {"in0": Interval.uniform(-1, 1, A.shape, FLOAT), "in1": Interval.uniform(0, 1, b_shape,
                                                                                                      FLOAT)})
    (message,) = run.unsupported.values()
    assert "Add before opset 7" in message and reason in message


# ------------------------------------------------------------------------------ attribute operands
@pytest.mark.parametrize(("mode", "opset"), [("constant", 2), ("reflect", 2), ("edge", 6), ("constant", 1)])
def test_pad_attributes(mode: str, opset: int) -> None:
    pads = [0, 2, 1, 1, 1, 0]
    key = "paddings" if opset == 1 else "pads"
    case = OpCase("Pad", (_operand(A),), attrs={key: pads, "mode": mode, "value": 1.5}, opset=opset)
    (got,), _ = _analyse(case, A)
    width = list(zip(pads[:3], pads[3:]))
    expected = np.pad(A, width, mode=mode, **({"constant_values": 1.5} if mode == "constant" else {}))
    np.testing.assert_array_equal(got, expected)


def test_pad_negative_pads_crop() -> None:
    case = OpCase("Pad", (_operand(A),), attrs={"pads": [0, -1, 1, 0, 0, -2]}, opset=2)
    (got,), _ = _analyse(case, A)
    np.testing.assert_array_equal(got, np.pad(A[:, 1:, :2], [(0, 0), (0, 0), (1, 0)]))


def test_slice_reshape_tile_concat_topk_before_their_input_forms() -> None:
    (got,), _ = _analyse(OpCase("Slice", (_operand(A),), attrs={"starts": [1, -3], "ends": [9, -1],
                                                                "axes": [1, 2]}, opset=1), A)
    np.testing.assert_array_equal(got, A[:, 1:, -3:-1])
    (got,), _ = _analyse(OpCase("Reshape", (_operand(A),), attrs={"shape": [0, -1]}, opset=1), A, ranks=(2,))
    np.testing.assert_array_equal(got, A.reshape(2, 12))
    tiles, axis = Operand((), FLOAT, value=3.0), Operand((), FLOAT, value=-1.0)  # Tile-1 types them as the input
    (got,), _ = _analyse(OpCase("Tile", (_operand(A), tiles, axis), opset=1), A)
    np.testing.assert_array_equal(got, np.tile(A, (1, 1, 3)))
    (got,), _ = _analyse(OpCase("Concat", (_operand(A), _operand(A[:, :1])), opset=3), A, A[:, :1])
    np.testing.assert_array_equal(got, np.concatenate([A, A[:, :1]], axis=1))
    (values, indices), _ = _analyse(OpCase("TopK", (_operand(A),), attrs={"k": 2, "axis": 1}, outputs=2, opset=1), A)
    np.testing.assert_array_equal(values, -np.sort(-A, axis=1)[:, :2])
    np.testing.assert_array_equal(indices, np.argsort(-A, axis=1, kind="stable")[:, :2])


def test_clip_cast_selu_version_one() -> None:
    (got,), _ = _analyse(OpCase("Clip", (_operand(A),), attrs={"min": -1.0}, opset=1), A)
    np.testing.assert_array_equal(got, np.maximum(A, -1.0))
    (got,), run = _analyse(OpCase("Cast", (_operand(A),), attrs={"to": "INT32"}, opset=1), A)
    assert got.dtype == np.int32 and run.env["out0"].elem_type == TensorProto.INT32
    np.testing.assert_array_equal(got, A.astype(np.int32))
    (got,), _ = _analyse(OpCase("Selu", (_operand(A),), opset=1), A)
    alpha, gamma = np.float32(1.6732), np.float32(1.0507)
    np.testing.assert_allclose(got, np.where(A > 0, gamma * A, gamma * alpha * np.expm1(A)), rtol=1e-6)


def test_unknown_cast_name_is_rejected() -> None:
    graph, _ = load_model(_model(OpCase("Cast", (_operand(A),), attrs={"to": "COMPLEX_FLOAT"}, opset=1)))
    run = run_abstract(graph, {"in0": Interval.uniform(-1, 1, A.shape, FLOAT)})
    assert "Cast" in " ".join(run.unsupported.values())


def test_lp_pool_with_a_float_p() -> None:
    x = A.reshape(1, 2, 3, 4)
    (got,), _ = _analyse(OpCase("GlobalLpPool", (_operand(x),), attrs={"p": 2.0}, opset=1), x)
    np.testing.assert_allclose(got, np.sqrt((x * x).sum(axis=(2, 3), keepdims=True)), rtol=1e-6)
    (got,), _ = _analyse(OpCase("LpPool", (_operand(x),), attrs={"p": 1.0, "kernel_shape": [2, 2]}, opset=1), x)
    np.testing.assert_allclose(got[0, 0, 0, 0], np.abs(x[0, 0, :2, :2]).sum(), rtol=1e-6)
    graph, _ = load_model(_model(OpCase("LpPool", (_operand(x),), attrs={"p": 1.5, "kernel_shape": [2, 2]},
                                             opset=1)))
    run = run_abstract(graph, {"in0": Interval.uniform(-1, 1, x.shape, FLOAT)})
    assert "p=1.5" in " ".join(run.unsupported.values())


# ------------------------------------------------------------------------------ modes
def test_dropout_before_opset_7_test_and_training_modes() -> None:
    (out, mask), run = _analyse(OpCase("Dropout", (_operand(A),), attrs={"is_test": 1}, outputs=2, opset=6), A)
    np.testing.assert_array_equal(out, A)
    assert run.env["out1"].elem_type == FLOAT and run.env["out1"].min() == 0 and run.env["out1"].max() == 1
    _, run = _analyse(OpCase("Dropout", (_operand(A),), attrs={"ratio": 0.5}, outputs=2, opset=6), A, widen=0.0)
    for x in (A, 2 * A, np.zeros_like(A)):  # training mode: each element is dropped or scaled by 2
        assert bool(run.env["out0"].contains(torch.from_numpy(x.astype(np.float64))).all())
    graph, _ = load_model(_model(OpCase("Dropout", (_operand(A),), attrs={"ratio": 1.0}, opset=6)))
    assert "ratio" in " ".join(run_abstract(graph, {"in0": Interval.uniform(-1, 1, A.shape, FLOAT)})
                               .unsupported.values())


@pytest.mark.parametrize("opset", [7, 9])
def test_dropout_7_float_mask_matches_onnxruntime(opset: int) -> None:
    x = helper.make_tensor_value_info("x", FLOAT, list(A.shape))
    outs = [helper.make_tensor_value_info(name, FLOAT, list(A.shape)) for name in ("y", "mask")]
    graph = helper.make_graph([helper.make_node("Dropout", ["x"], ["y", "mask"], ratio=0.3)], "g", [x], outs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    y, mask = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": A})
    loaded, _ = load_model(model)
    got = run_concrete(loaded, {"x": torch.from_numpy(A)}).values
    np.testing.assert_array_equal(got["y"].numpy(), y)
    np.testing.assert_array_equal(got["mask"].numpy(), mask)
    run = run_abstract(loaded, {"x": Interval.point(torch.from_numpy(A), FLOAT)})
    assert bool(run.env["mask"].contains(torch.from_numpy(mask.astype(np.float64))).all())


def _bn(opset: int, attrs: dict, param_shape=(3,)) -> OpCase:
    params = [Operand(param_shape, low=0.5, high=2.0) for _ in range(4)]
    return OpCase("BatchNormalization", (_operand(A.reshape(1, 2, 3, 4)), *params), attrs=attrs, opset=opset)


def test_batch_normalization_before_opset_9() -> None:
    x = A.reshape(1, 2, 3, 4).transpose(0, 2, 1, 3).copy()  # (1, 3, 2, 4): three channels
    scale, bias, mean, var = (np.array([0.5, 1.0, 2.0], np.float32) + k for k in range(4))
    case = OpCase("BatchNormalization", (_operand(x), *[_operand(scale)] * 4), attrs={"is_test": 1}, opset=6)
    (got,), _ = _analyse(case, x, scale, bias, mean, var)
    c = (1, 3, 1, 1)
    expected = (x - mean.reshape(c)) / np.sqrt(var.reshape(c) + 1e-5) * scale.reshape(c) + bias.reshape(c)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    per_activation = [np.full((3, 2, 4), v, np.float32) for v in (2.0, 0.5, 1.0, 4.0)]
    case = OpCase("BatchNormalization", (_operand(x), *[_operand(p) for p in per_activation]), attrs={"spatial": 0},
                  opset=7)
    (got,), _ = _analyse(case, x, *per_activation)
    np.testing.assert_allclose(got, (x - 1.0) / np.sqrt(4.0 + 1e-5) * 2.0 + 0.5, rtol=1e-5)


@pytest.mark.parametrize(("opset", "attrs", "shape", "reason"), [
    (6, {}, (2,), "is_test=0"),
    (7, {"spatial": 0}, (2,), "spatial=0"),
])
def test_batch_normalization_rejections(opset: int, attrs: dict, shape, reason: str) -> None:
    graph, _ = load_model(_model(_bn(opset, attrs, shape)))
    initial = {info.name: Interval.uniform(0.5, 2.0, info.shape, FLOAT) for info in graph.inputs}
    (message,) = run_abstract(graph, initial).unsupported.values()
    assert "BatchNormalization" in message and reason in message


# ------------------------------------------------------------------------------ rejections
def test_an_operator_older_than_its_first_rule_names_the_first_opset() -> None:
    x, w, r = Operand((2, 1, 3)), Operand((1, 12, 3)), Operand((1, 12, 4))
    case = OpCase("GRU", (x, w, r), attrs={"hidden_size": 4}, outputs=2, opset=6)
    graph, _ = load_model(_model(case, ranks=(4, 3)))
    run = run_abstract(graph, {info.name: Interval.uniform(-1, 1, info.shape, FLOAT) for info in graph.inputs})
    (message,) = run.unsupported.values()
    assert "GRU (opset 6)" in message and "start at opset 7" in message


@pytest.mark.parametrize(("op", "opset"), [("Upsample", 10), ("Scatter", 11)])
def test_deprecated_operators_are_invalid_models(op: str, opset: int) -> None:
    inputs = (Operand((1, 1, 2, 2)), Operand((4,), value=[1, 1, 2, 2])) if op == "Upsample" else \
        (Operand((2, 2)), Operand((1, 2), INT64, value=[1, 0]), Operand((1, 2)))
    with pytest.raises(ModelError, match="deprecated"):
        load_model(_model(OpCase(op, inputs, opset=opset)))
