"""onnxruntime's QOperator contrib operators: exact operands against onnxruntime, and whole quantized graphs.

* Exact operands (every code of the type, many random scales and zero points): the concrete rule equals
  onnxruntime bit for bit, and the abstract result holds onnxruntime's value; rules that take the exact fast
  path give exactly that value, the others (``accumulates``) at most one quantisation step more.
* QLinearAdd's operand order: where the two kernel orders round differently, the concrete rule follows
  onnxruntime's choice of the broadcast operand.
* Whole graphs: a hand-made QuantizeLinear -> QLinearConv -> QLinearAdd -> QLinearGlobalAveragePool ->
  DequantizeLinear -> Softmax -> Log chain, and a small float model quantized by ``quantize_static`` in
  QOperator format (uint8 and int8 activations); every tensor onnxruntime computes for inputs at the
  corners of and inside the range lies within ranum's bounds, with no unsupported operator.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

import ranum
from ranum.domain.interval import Interval
from ranum.graph.loader import load_model
from ranum.interpret import run_abstract, run_concrete
from ranum.ops import REGISTRY
from ranum.ops.contrib_quantized import _fma32, _logistic32, _table_concrete
from tests.ops.harness import exact_operands_run
from tests.zoo.runtime import SAMPLE_MODES, Runner, check_sample, sample_feeds

MS = "com.microsoft"
F32 = np.float32
TYPES = {np.uint8: TensorProto.UINT8, np.int8: TensorProto.INT8}


# ------------------------------------------------------------------------------ exact operands
def _model(op: str, data: dict[str, np.ndarray], params: list[tuple[str, np.ndarray | None]], attrs: dict,
           order: list[str]) -> onnx.ModelProto:
    """One node: ``data`` are graph inputs, ``params`` initializers; ``order`` names the node's inputs. The
    output is typed as onnxruntime infers it (onnx's shape inference does not know these operators)."""
    inputs = [helper.make_tensor_value_info(k, helper.np_dtype_to_tensor_dtype(v.dtype), list(v.shape))
              for k, v in data.items()]
    inits = [numpy_helper.from_array(np.asarray(v), k) for k, v in params if v is not None]
    node = helper.make_node(op, order, ["y"], domain=MS, **attrs)
    graph = helper.make_graph([node], "g", inputs, [helper.make_empty_tensor_value_info("y")], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(MS, 1)])
    model.ir_version = 8
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    out = session.run(None, data)[0]
    model.graph.output[0].CopyFrom(helper.make_tensor_value_info("y", helper.np_dtype_to_tensor_dtype(out.dtype),
                                                           list(out.shape)))
    return model


def _check_exact(model: onnx.ModelProto, data: dict[str, np.ndarray], label: str, tight: bool = True) -> None:
    """onnxruntime's output equals the concrete rule's and lies in the abstract result of exact operands;
    where ``tight``, within one step (exactly equal where the rule takes the fast path)."""
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    expected = session.run(None, data)[0]
    got, lo, hi = exact_operands_run(model, data)
    np.testing.assert_array_equal(got, expected, err_msg=f"{label}: concrete rule")
    v = expected.astype(np.float64)
    assert ((lo <= v) & (v <= hi)).all(), f"{label}: onnxruntime's value outside the exact operands' bounds"
    rule = REGISTRY.lookup(model.graph.node[0].op_type, MS)
    if tight or not rule.accumulates:
        assert (hi - lo).max() <= (1 if rule.accumulates else 0), f"{label}: bounds wider than expected"


def _params(rng: np.random.Generator, dtype, names: str) -> list[np.ndarray]:
    """Scales (``s``: log-uniform) and zero points (``z``: any value of the type) in the order of ``names``."""
    info = np.iinfo(dtype)
    return [F32(np.exp(rng.uniform(-6, 0))) if n == "s" else dtype(rng.integers(info.min, info.max + 1))
            for n in names]


def _codes(dtype) -> np.ndarray:
    info = np.iinfo(dtype)
    return np.arange(info.min, info.max + 1).astype(dtype)


@pytest.mark.parametrize("dtype", [np.uint8, np.int8])
@pytest.mark.parametrize("op", ["QLinearAdd", "QLinearMul"])
def test_binary_exact_operands(op: str, dtype) -> None:
    rng = np.random.default_rng(1)
    codes = _codes(dtype)
    a, b = (g.reshape(64, 1024) for g in np.meshgrid(codes, codes, indexing="ij"))
    for trial in range(12):
        sa, za, sb, zb, sc, zc = _params(rng, dtype, "szszsz")
        huge = trial % 4 == 0
        if huge:  # saturates, pushes QLinearMul past int32 (INT_MIN: the type's minimum); QLinearAdd's float
            sc = F32(sc * 1e-3)  # terms then cancel at magnitudes where a float32 rounding exceeds one step
        params = [("sa", sa), ("za", za), ("sb", sb), ("zb", zb), ("sc", sc), ("zc", zc)]
        model = _model(op, {"a": a, "b": b}, params, {}, ["a", "sa", "za", "b", "sb", "zb", "sc", "zc"])
        _check_exact(model, {"a": a, "b": b}, f"{op} {dtype.__name__} trial {trial}", tight=not huge)


@pytest.mark.parametrize("dtype", [np.uint8, np.int8])
@pytest.mark.parametrize(("op", "attrs"), [("QLinearSigmoid", {}), ("QLinearLeakyRelu", {"alpha": 0.1}),
                                           ("QLinearLeakyRelu", {"alpha": -1.5})])
def test_lookup_exact_operands(op: str, attrs: dict, dtype) -> None:
    rng = np.random.default_rng(2)
    x = _codes(dtype).reshape(16, 16)
    for trial in range(40):
        sx, zx, sy, zy = _params(rng, dtype, "szsz")
        if op == "QLinearSigmoid":
            sy = F32(rng.uniform(1 / 300, 1 / 40))
        model = _model(op, {"x": x}, [("sx", sx), ("zx", zx), ("sy", sy), ("zy", zy)], attrs,
                       ["x", "sx", "zx", "sy", "zy"])
        _check_exact(model, {"x": x}, f"{op} {dtype.__name__} trial {trial}")


def test_sigmoid_bounds_cover_the_logistic_kernels_error() -> None:
    """Scales where MLAS's logistic kernel and the correctly rounded sigmoid quantise a code apart: the bounds
    of the exact operands (no fast path) still hold onnxruntime's table."""
    rng = np.random.default_rng(9)
    found = 0
    for _ in range(6000):
        sx, zx, sy, zy = F32(np.exp(rng.uniform(-6, 0))), np.uint8(rng.integers(0, 256)), \
            F32(rng.uniform(1 / 300, 1 / 40)), np.uint8(rng.integers(0, 30))
        args = [torch.tensor(v) for v in (sx, zx, sy, zy)]
        kernel = _table_concrete(_logistic32, *args, TensorProto.UINT8)
        rounded = _table_concrete(lambda d: torch.sigmoid(d.double()).float(), *args, TensorProto.UINT8)
        if torch.equal(kernel, rounded):
            continue
        found += 1
        x = _codes(np.uint8).reshape(16, 16)
        model = _model("QLinearSigmoid", {"x": x}, [("sx", sx), ("zx", zx), ("sy", sy), ("zy", zy)], {},
                       ["x", "sx", "zx", "sy", "zy"])
        _check_exact(model, {"x": x}, f"QLinearSigmoid {sx} {zx} {sy} {zy}")
    assert found, "no scales where the kernel and the sigmoid round apart"


@pytest.mark.parametrize("dtype", [np.uint8, np.int8])
def test_concat_exact_operands(dtype) -> None:
    rng = np.random.default_rng(3)
    x = _codes(dtype).reshape(2, 128)
    for trial in range(20):
        sy, zy, sx, zx = _params(rng, dtype, "szsz")
        params = [("sy", sy), ("zy", zy), ("sx", sx), ("zx", zx)]
        model = _model("QLinearConcat", {"x": x, "w": x[:, :7]}, params, {"axis": 1},
                       ["sy", "zy", "x", "sx", "zx", "w", "sy", "zy"])  # the second input is copied
        _check_exact(model, {"x": x, "w": x[:, :7]}, f"QLinearConcat {dtype.__name__} trial {trial}")


@pytest.mark.parametrize("dtype", [np.uint8, np.int8])
@pytest.mark.parametrize(("op", "attrs"), [
    ("QLinearGlobalAveragePool", {}), ("QLinearGlobalAveragePool", {"channels_last": 1}),
    ("QLinearAveragePool", {"kernel_shape": [3, 2], "strides": [2, 1], "pads": [1, 1, 0, 1]}),
    ("QLinearAveragePool", {"kernel_shape": [2, 2], "count_include_pad": 1, "ceil_mode": 1, "pads": [1, 1, 1, 1],
                            "strides": [2, 2], "channels_last": 1}),
])
def test_pool_exact_operands(op: str, attrs: dict, dtype) -> None:
    rng = np.random.default_rng(4)
    info = np.iinfo(dtype)
    for trial in range(20):
        x = rng.integers(info.min, info.max + 1, size=(2, 3, 5, 7)).astype(dtype)
        sx, zx, sy, zy = _params(rng, dtype, "szsz")
        sy = F32(sx * np.exp(rng.uniform(-2, 1)))  # multipliers inside the range onnxruntime accepts
        model = _model(op, {"x": x}, [("sx", sx), ("zx", zx), ("sy", sy), ("zy", zy)], attrs,
                       ["x", "sx", "zx", "sy", "zy"])
        _check_exact(model, {"x": x}, f"{op} {attrs} {dtype.__name__} trial {trial}")


@pytest.mark.parametrize("dtype", [np.uint8, np.int8])
@pytest.mark.parametrize("attrs", [{"axis": -1, "opset": 13}, {"axis": 1, "opset": 13}, {"axis": 1, "opset": 12}])
def test_softmax_exact_operands(attrs: dict, dtype) -> None:
    rng = np.random.default_rng(5)
    info = np.iinfo(dtype)
    for trial in range(20):
        x = rng.integers(info.min, info.max + 1, size=(4, 6, 5)).astype(dtype)
        sx, zx, zy = _params(rng, dtype, "szz")
        sy = F32(1 / 256) if trial % 2 else F32(np.exp(rng.uniform(-7, -3)))
        model = _model("QLinearSoftmax", {"x": x}, [("sx", sx), ("zx", zx), ("sy", sy), ("zy", zy)], attrs,
                       ["x", "sx", "zx", "sy", "zy"])
        _check_exact(model, {"x": x}, f"QLinearSoftmax {attrs} {dtype.__name__} trial {trial}")


@pytest.mark.parametrize("quantized", [True, False])
@pytest.mark.parametrize("dtype", [np.uint8, np.int8])
def test_qgemm_exact_operands(dtype, quantized: bool) -> None:
    rng = np.random.default_rng(6)
    info = np.iinfo(dtype)
    for trial in range(12):
        trans_a, trans_b = trial % 2, (trial // 2) % 2
        a = rng.integers(info.min, info.max + 1, size=(7, 3) if trans_a else (3, 7)).astype(dtype)
        b = rng.integers(-64, 64, size=(5, 7) if trans_b else (7, 5)).astype(np.int8)
        sa, za, sy, zy = _params(rng, dtype, "szsz")
        per_column = trial % 3 == 0
        sb = np.exp(rng.uniform(-7, -4, size=(5,) if per_column else ())).astype(F32)
        zb = rng.integers(-3, 4, size=(5,) if per_column else ()).astype(np.int8)
        bias = rng.integers(-3000, 3000, size=(5,)).astype(np.int32)
        params = [("sa", sa), ("za", za), ("b", b), ("sb", sb), ("zb", zb), ("c", bias)]
        order = ["a", "sa", "za", "b", "sb", "zb", "c"]
        if quantized:
            params += [("sy", F32(sy * 1e-2)), ("zy", zy)]
            order += ["sy", "zy"]
        model = _model("QGemm", {"a": a}, params, {"transA": trans_a, "transB": trans_b, "alpha": 0.75}, order)
        if quantized:
            _check_exact(model, {"a": a}, f"QGemm {dtype.__name__} trial {trial}")
        else:
            _check_float_output(model, {"a": a}, f"QGemm float {dtype.__name__} trial {trial}")


def _check_float_output(model: onnx.ModelProto, data: dict[str, np.ndarray], label: str) -> None:
    """QGemm without y_scale: the float32 product, equal to onnxruntime's and inside tight bounds."""
    expected = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, data)[0]
    graph, _ = load_model(model)
    got = run_concrete(graph, {k: torch.from_numpy(v) for k, v in data.items()}).values["y"]
    np.testing.assert_array_equal(got.numpy(), expected, err_msg=label)
    initial = {k: Interval.point(torch.from_numpy(v), graph.info(k).elem_type) for k, v in data.items()}
    for name, proto in graph.initializers.items():
        initial[name] = Interval.point(torch.from_numpy(numpy_helper.to_array(proto).copy()), proto.data_type)
    lo, hi = (t.numpy() for t in run_abstract(graph, initial).env["y"].full())
    v = expected.astype(np.float64)
    assert ((lo <= v) & (v <= hi)).all(), label
    assert (hi - lo <= 1e-6 * np.abs(v) + 1e-30).all(), f"{label}: bounds wider than a few float32 roundings"


# ------------------------------------------------------------------------------ QLinearAdd's operand order
def test_qlinear_add_follows_onnxruntimes_broadcast_operand() -> None:
    """Parameters where the two kernel orders differ for some (a, b): each broadcast shape picks onnxruntime's."""
    rng = np.random.default_rng(7)
    codes = _codes(np.uint8)
    a, b = (g.ravel() for g in np.meshgrid(codes, codes, indexing="ij"))
    checked = 0
    while checked < 4:
        sa, za, sb, zb, sc, zc = _params(rng, np.uint8, "szszsz")
        orders = []
        for (x, s1, z1), (w, s2, z2) in (((a, sa, za), (b, sb, zb)), ((b, sb, zb), (a, sa, za))):
            t = [torch.tensor(float(v), dtype=torch.float32) for v in (s1, z1, s2, z2, sc, zc)]
            r1, r2 = t[0] / t[4], t[2] / t[4]
            fixed = t[5] - _fma32(r1, t[1], r2 * t[3])
            orders.append(torch.round(_fma32(torch.from_numpy(x).float(), r1,
                                             _fma32(torch.from_numpy(w).float(), r2, fixed))).numpy())
        differ = np.nonzero((orders[0] != orders[1]) & (np.abs(orders[0] - zc) < 100))[0]
        if not len(differ):
            continue
        checked += 1
        k = differ[0]
        for a_shape, b_shape in [((1,), (4,)), ((4,), (1,)), ((2, 1), (1, 3)), ((1, 3), (2, 1)), ((), (3,)),
                                 ((2, 3), (3,)), ((3,), (2, 3)), ((1,), (1,))]:
            data = {"a": np.full(a_shape, a[k], np.uint8), "b": np.full(b_shape, b[k], np.uint8)}
            params = [("sa", sa), ("za", za), ("sb", sb), ("zb", zb), ("sc", sc), ("zc", zc)]
            model = _model("QLinearAdd", data, params, {}, ["a", "sa", "za", "b", "sb", "zb", "sc", "zc"])
            _check_exact(model, data, f"QLinearAdd {a_shape} + {b_shape}")


# ------------------------------------------------------------------------------ whole graphs
def _check_graph(model: onnx.ModelProto, spec: dict, ops: set[str]) -> None:
    assert ops <= {n.op_type for n in model.graph.node}
    analysis = ranum.analyze(model, spec)
    assert not analysis.unsupported, dict(analysis.unsupported)
    runner = Runner(model)
    rng = np.random.default_rng(0)
    for k, mode in enumerate(SAMPLE_MODES + ("uniform",) * 4):
        check_sample(analysis, runner.run(sample_feeds(analysis, model, mode, rng)), f"sample {k} ({mode})")


def _handmade(dtype) -> onnx.ModelProto:
    """QuantizeLinear -> QLinearConv -> QLinearAdd (with the quantized input) -> QLinearGlobalAveragePool ->
    DequantizeLinear -> Softmax -> Log."""
    rng = np.random.default_rng(8)
    zp = dtype(128 if dtype == np.uint8 else 0)
    inits = {"sx": F32(0.01), "zx": zp, "w": rng.integers(-20, 21, size=(3, 3, 3, 3)).astype(np.int8),
             "sw": F32(0.02), "zw": np.int8(0), "sc": F32(0.05), "zc": zp, "bias": np.arange(-3, 0, dtype=np.int32),
             "sa": F32(0.06), "za": zp, "sg": F32(0.03), "zg": zp}
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "sx", "zx"], ["q"]),
        helper.make_node("QLinearConv", ["q", "sx", "zx", "w", "sw", "zw", "sc", "zc", "bias"], ["c"], pads=[1] * 4),
        helper.make_node("QLinearAdd", ["c", "sc", "zc", "q", "sx", "zx", "sa", "za"], ["a"], domain=MS),
        helper.make_node("QLinearGlobalAveragePool", ["a", "sa", "za", "sg", "zg"], ["g"], domain=MS),
        helper.make_node("DequantizeLinear", ["g", "sg", "zg"], ["d"]),
        helper.make_node("Softmax", ["d"], ["p"], axis=1),
        helper.make_node("Log", ["p"], ["y"]),
    ]
    graph = helper.make_graph(nodes, "chain", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 6, 6])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 1, 1])],
                              [numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(MS, 1)])
    model.ir_version = 8
    return model


@pytest.mark.parametrize("dtype", [np.uint8, np.int8])
def test_handmade_qoperator_chain_is_bounded_soundly(dtype) -> None:
    _check_graph(_handmade(dtype), {"inputs": {"x": [-1.0, 1.0]}, "weights": {"default": "exact"}},
                 {"QLinearAdd", "QLinearGlobalAveragePool", "Softmax", "Log"})


def _save_cnn(path: Path, nodes: list, weights: dict[str, np.ndarray], classes: int) -> None:
    """A float32 model of ``nodes`` from an image x [1, 3, 8, 8] to class probabilities y [1, classes]."""
    graph = helper.make_graph(nodes, "cnn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, classes])],
                              [numpy_helper.from_array(v.astype(np.float32), k) for k, v in weights.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)


def _float_model(path: Path) -> None:
    """A small float CNN whose QOperator quantization uses every contrib operator of this family."""
    rng = np.random.default_rng(0)
    weights = {"w1": rng.normal(0, 0.3, (4, 3, 3, 3)), "b1": rng.normal(0, 0.1, 4),
               "w2": rng.normal(0, 0.3, (4, 4, 3, 3)), "b2": rng.normal(0, 0.1, 4),
               "w3": rng.normal(0, 0.3, (8, 5)), "b3": rng.normal(0, 0.1, 5)}
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1] * 4),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], pads=[1] * 4),
        helper.make_node("Add", ["c2", "r1"], ["a1"]),
        helper.make_node("LeakyRelu", ["a1"], ["l1"], alpha=0.1),
        helper.make_node("Sigmoid", ["c1"], ["s1"]),
        helper.make_node("Mul", ["l1", "s1"], ["m1"]),
        helper.make_node("Concat", ["m1", "r1"], ["k1"], axis=1),
        helper.make_node("AveragePool", ["k1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("GlobalAveragePool", ["p1"], ["g1"]),
        helper.make_node("Flatten", ["g1"], ["f1"]),
        helper.make_node("Gemm", ["f1", "w3", "b3"], ["y0"]),
        helper.make_node("Softmax", ["y0"], ["y"], axis=1),
    ]
    _save_cnn(path, nodes, weights, classes=5)


def _quantized(tmp_path: Path, float_model=_float_model, **options) -> onnx.ModelProto:
    """A float CNN (``float_model`` writes it) quantized by ``quantize_static`` with ``options``, calibrated on
    four random images."""
    from onnxruntime.quantization import CalibrationDataReader, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            rng = np.random.default_rng(1)
            self.feeds = iter([{"x": rng.uniform(-1, 1, (1, 3, 8, 8)).astype(np.float32)} for _ in range(4)])

        def get_next(self) -> dict | None:
            return next(self.feeds, None)

    src, dst = tmp_path / "float.onnx", tmp_path / "quant.onnx"
    float_model(src)
    quantize_static(src, dst, Reader(), weight_type=QuantType.QInt8, **options)
    return onnx.load(dst)


@pytest.mark.parametrize("activation_type", ["QUInt8", "QInt8"])
def test_static_qoperator_model_is_bounded_soundly(tmp_path: Path, activation_type: str) -> None:
    from onnxruntime.quantization import QuantFormat, QuantType

    model = _quantized(tmp_path, quant_format=QuantFormat.QOperator,
                       activation_type=getattr(QuantType, activation_type))
    ops = {"QLinearAdd", "QLinearMul", "QLinearSigmoid", "QLinearLeakyRelu", "QLinearConcat", "QLinearAveragePool",
           "QLinearGlobalAveragePool", "QGemm", "QLinearSoftmax"}
    _check_graph(model, {"inputs": {"x": [-1.0, 1.0]}, "weights": {"default": "exact"}}, ops)


@pytest.mark.parametrize("activation_type", ["QUInt16", "QInt16"])
def test_sixteen_bit_qdq_model_with_contrib_quantize_linear_is_bounded_soundly(tmp_path: Path,
                                                                               activation_type: str) -> None:
    """16-bit QDQ written with ``UseQDQContribOps`` (as onnxruntime's tools do below opset 21): its
    QuantizeLinear / DequantizeLinear are in com.microsoft, with the ONNX operators' semantics."""
    from onnxruntime.quantization import QuantFormat, QuantType

    model = _quantized(tmp_path, quant_format=QuantFormat.QDQ, activation_type=getattr(QuantType, activation_type),
                       extra_options={"UseQDQContribOps": True})
    assert {n.domain for n in model.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")} == {MS}
    _check_graph(model, {"inputs": {"x": [-1.0, 1.0]}, "weights": {"default": "exact"}},
                 {"QuantizeLinear", "DequantizeLinear", "Conv", "Softmax"})


def _pooled_cnn(path: Path) -> None:
    """Conv -> Relu -> MaxPool -> Conv + skip -> GlobalAveragePool -> Gemm -> Softmax."""
    rng = np.random.default_rng(2)
    weights = {"w1": rng.normal(0, 0.3, (8, 3, 3, 3)), "b1": rng.normal(0, 0.1, 8),
               "w2": rng.normal(0, 0.2, (8, 8, 3, 3)), "b2": rng.normal(0, 0.1, 8),
               "w3": rng.normal(0, 0.3, (8, 4)), "b3": rng.normal(0, 0.1, 4)}
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1] * 4),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("MaxPool", ["r1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["p1", "w2", "b2"], ["c2"], pads=[1] * 4),
        helper.make_node("Add", ["c2", "p1"], ["a1"]),
        helper.make_node("GlobalAveragePool", ["a1"], ["g1"]),
        helper.make_node("Flatten", ["g1"], ["f1"]),
        helper.make_node("Gemm", ["f1", "w3", "b3"], ["y0"]),
        helper.make_node("Softmax", ["y0"], ["y"], axis=1),
    ]
    _save_cnn(path, nodes, weights, classes=4)


def test_quantized_cnn_saved_at_the_all_level_is_bounded_soundly(tmp_path: Path) -> None:
    """onnxruntime's NHWC transformer (ORT_ENABLE_ALL) turns a QDQ CNN into com.microsoft QLinearConv with
    channels_last = 1 and NhwcMaxPool between Transposes; they were unsupported."""
    from onnxruntime.quantization import QuantFormat, QuantType

    model = _quantized(tmp_path, quant_format=QuantFormat.QDQ, activation_type=QuantType.QUInt8,
                       float_model=_pooled_cnn)
    saved = tmp_path / "all.onnx"
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.optimized_model_filepath = str(saved)
    ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    optimized = onnx.load(saved)
    assert any(n.op_type == "QLinearConv" and n.domain == MS and a.name == "channels_last" and a.i == 1
               for n in optimized.graph.node for a in n.attribute)
    _check_graph(optimized, {"inputs": {"x": [-1.0, 1.0]}, "weights": {"default": "exact"}},
                 {"QLinearConv", "NhwcMaxPool", "Transpose"})
