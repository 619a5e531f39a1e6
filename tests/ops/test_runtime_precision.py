"""Regressions where onnxruntime's kernels compute otherwise than the real function: float64 kernels that
evaluate a literal formula (Softplus as log(exp(x) + 1), Mish over it), float32 attribute defaults and
constants used by float64 kernels, a subnormal reciprocal in Softsign, an int32 subtraction that wraps in
DequantizeLinear, and uint64 values past int64's maximum. Each model runs in onnxruntime, and its outputs
must lie in ranum's bounds (or be infinite or NaN where a finding says so)."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto
from onnx import helper as oh
from onnx import numpy_helper as nh

import ranum
from ranum.ops.activations import SOFTSIGN_OVERSHOOT

DOUBLE, FLOAT = TensorProto.DOUBLE, TensorProto.FLOAT
NUMPY = {DOUBLE: np.float64, FLOAT: np.float32, TensorProto.INT32: np.int32, TensorProto.UINT64: np.uint64}


def _model(nodes: list[onnx.NodeProto], inputs: dict[str, int], outputs: dict[str, int], opset: int,
           inits: tuple[onnx.TensorProto, ...] = ()) -> onnx.ModelProto:
    graph = oh.make_graph(nodes, "g", [oh.make_tensor_value_info(n, t, [1]) for n, t in inputs.items()],
                          [oh.make_tensor_value_info(n, t, [1]) for n, t in outputs.items()], list(inits))
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def _runtime(model: onnx.ModelProto, feeds: dict[str, float | int]) -> dict[str, float]:
    """onnxruntime's value of every graph output (as float64) for one-element inputs."""
    options = ort.SessionOptions()
    options.log_severity_level = 4
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    types = {i.name: i.type.tensor_type.elem_type for i in model.graph.input}
    arrays = {name: np.array([value], NUMPY[types[name]]) for name, value in feeds.items()}
    names = [o.name for o in model.graph.output]
    return {name: float(np.asarray(value, np.float64)[0]) for name, value in zip(names, session.run(names, arrays))}


def _inside(model: onnx.ModelProto, spec: dict, feeds: dict[str, float | int], tensor: str) -> tuple[float, float,
                                                                                                       float]:
    """ranum's bounds of ``tensor`` under ``spec`` and onnxruntime's value at ``feeds``."""
    lo, hi = ranum.analyze(model, spec).bounds(tensor)
    return float(lo.min()), _runtime(model, feeds)[tensor], float(hi.max())


def _hazards(model: onnx.ModelProto, spec: dict) -> set[tuple[str, str]]:
    return {(f.op_type, f.hazard_id) for f in ranum.check(model, spec).findings}


# ----------------------------------------------------------------------------- float64 Softplus and Mish
def test_float64_softplus_is_zero_below_its_cutoff_and_a_log_behind_it_is_reported() -> None:
    """onnxruntime's float64 Softplus is log(exp(x) + 1): exactly 0 for x below about -36.7."""
    model = _model([oh.make_node("Softplus", ["x"], ["s"]), oh.make_node("Log", ["s"], ["y"])],
                   {"x": DOUBLE}, {"s": DOUBLE, "y": DOUBLE}, 18)
    spec = {"inputs": {"x": [-50, -36]}}
    for x in (-50.0, -40.0, -36.8, -36.7, -36.0):
        lo, value, hi = _inside(model, spec, {"x": x}, "s")
        assert lo <= value <= hi, (x, lo, value, hi)
    assert _runtime(model, {"x": -40.0})["y"] == -np.inf
    assert ("Log", "log-nonpositive") in _hazards(model, spec)


@pytest.mark.parametrize("x", [-50.0, -40.0, -36.7, -20.0, -1.0, 0.5, 30.0])
def test_float64_softplus_and_mish_points_hold_onnxruntime(x: float) -> None:
    for op in ("Softplus", "Mish"):
        model = _model([oh.make_node(op, ["x"], ["y"])], {"x": DOUBLE}, {"y": DOUBLE}, 18)
        lo, value, hi = _inside(model, {"inputs": {"x": [x, x]}}, {"x": x}, "y")
        assert lo <= value <= hi, (op, x, lo, value, hi)


def test_float64_softplus_overflows_where_exp_does() -> None:
    """exp(x) overflows past 709.78 in float64: onnxruntime's Softplus is inf there, and ranum says so."""
    model = _model([oh.make_node("Softplus", ["x"], ["y"])], {"x": DOUBLE}, {"y": DOUBLE}, 18)
    spec = {"inputs": {"x": [700, 800]}}
    assert _runtime(model, {"x": 710.0})["y"] == np.inf
    assert ranum.analyze(model, spec).bounds("y")[1].max() == np.inf
    assert ("Softplus", "overflow") in _hazards(model, spec)
    assert not _hazards(model, {"inputs": {"x": [700, 709]}})


def test_float64_mish_keeps_the_sign_of_x() -> None:
    model = _model([oh.make_node("Mish", ["x"], ["y"])], {"x": DOUBLE}, {"y": DOUBLE}, 18)
    lo, _, hi = _inside(model, {"inputs": {"x": [-50, -40]}}, {"x": -45.0}, "y")
    assert hi == 0.0 and lo < 0
    assert _inside(model, {"inputs": {"x": [0, 1]}}, {"x": 0.5}, "y")[0] == 0.0


# ----------------------------------------------------------------------------- float32 defaults in float64 kernels
@pytest.mark.parametrize(("op", "x", "attrs", "opset"), [
    ("HardSigmoid", -2.0, {}, 18),  # alpha 0.2f
    ("LeakyRelu", -1e10, {}, 18),  # alpha 0.01f
    ("HardSwish", -2.0, {}, 18),  # HardSigmoid<alpha = 1/6 as float32> in ONNX's expansion
    ("HardSwish", 2.9, {}, 18),
    ("Gelu", -3.455107294592218, {"approximate": "tanh"}, 20),  # float32 constants 2/pi and 0.044715
    ("Gelu", -2.0, {"approximate": "tanh"}, 20),
    ("Gelu", 1.0, {"approximate": "tanh"}, 20),
    ("Elu", -2.0, {}, 18), ("Selu", -2.0, {}, 18), ("Selu", 2.0, {}, 18), ("ThresholdedRelu", 1.5, {}, 18),
    ("Shrink", -2.0, {}, 18),
])
def test_float64_kernels_use_float32_attribute_defaults(op: str, x: float, attrs: dict, opset: int) -> None:
    model = _model([oh.make_node(op, ["x"], ["y"], **attrs)], {"x": DOUBLE}, {"y": DOUBLE}, opset)
    lo, value, hi = _inside(model, {"inputs": {"x": [x, x]}}, {"x": x}, "y")
    assert lo <= value <= hi, (lo, value, hi)


def test_float64_hard_sigmoid_default_stays_precise() -> None:
    model = _model([oh.make_node("HardSigmoid", ["x"], ["y"])], {"x": DOUBLE}, {"y": DOUBLE}, 18)
    lo, value, hi = _inside(model, {"inputs": {"x": [-2, -2]}}, {"x": -2.0}, "y")
    assert hi - lo < 1e-14 and lo <= value <= hi


# ----------------------------------------------------------------------------- Softsign's subnormal reciprocal
@pytest.mark.parametrize("x", [1e38, 3e38, 3.3999969e38, 3.4028235e38, -2.9995430e38, -3.4017599e38])
def test_float32_softsign_of_huge_points_holds_onnxruntime(x: float) -> None:
    """1 / (1 + |x|) is subnormal: onnxruntime gives 0.99999994 (or 1.0000001) where x / (1 + |x|) rounds to 1."""
    model = _model([oh.make_node("Softsign", ["x"], ["y"])], {"x": FLOAT}, {"y": FLOAT}, 18)
    x = float(np.float32(x))
    lo, value, hi = _inside(model, {"inputs": {"x": [x, x]}}, {"x": x}, "y")
    assert lo <= value <= hi, (lo, value, hi)
    assert -1 - SOFTSIGN_OVERSHOOT <= lo and hi <= 1 + SOFTSIGN_OVERSHOOT


def test_float32_softsign_stays_within_one_where_its_reciprocal_is_normal() -> None:
    model = _model([oh.make_node("Softsign", ["x"], ["y"])], {"x": FLOAT}, {"y": FLOAT}, 18)
    lo, value, hi = _inside(model, {"inputs": {"x": [-1e30, 1e30]}}, {"x": 1e30}, "y")
    assert (lo, hi) == (-1.0, 1.0) and value <= hi


# ----------------------------------------------------------------------------- DequantizeLinear's int32 wrap
def _dequantize(zero_point: int) -> onnx.ModelProto:
    inits = (nh.from_array(np.array(1.0, np.float32), "s"), nh.from_array(np.array(zero_point, np.int32), "z"))
    return _model([oh.make_node("DequantizeLinear", ["x", "s", "z"], ["y"]), oh.make_node("Sqrt", ["y"], ["r"])],
                  {"x": TensorProto.INT32}, {"y": FLOAT, "r": FLOAT}, 19, inits)


@pytest.mark.parametrize(("zero_point", "low", "high"), [
    (-1, 2147483640, 2147483647),  # 2147483647 - (-1) wraps to -2147483648
    (-1, 2147483647, 2147483647),
    (1, -2147483648, -2147483640),  # -2147483648 - 1 wraps to 2147483647
    (1000, -2147483648, -2147483000),  # every difference wraps: exact after a shift by 2**32
])
def test_dequantize_linear_int32_difference_wraps_as_in_onnxruntime(zero_point: int, low: int, high: int) -> None:
    model = _dequantize(zero_point)
    spec = {"inputs": {"x": [low, high]}}
    for x in (low, high, (low + high) // 2):
        lo, value, hi = _inside(model, spec, {"x": x}, "y")
        assert lo <= value <= hi, (x, lo, value, hi)


def test_dequantize_linear_int32_wrap_reports_the_sqrt_behind_it() -> None:
    model = _dequantize(-1)
    assert np.isnan(_runtime(model, {"x": 2147483647})["r"])
    assert ("Sqrt", "sqrt-negative") in _hazards(model, {"inputs": {"x": [2147483640, 2147483647]}})
    lo, _, hi = _inside(model, {"inputs": {"x": [2147483647, 2147483647]}}, {"x": 2147483647}, "y")
    assert lo == hi == -(2.0**31)  # a point wraps exactly


# ----------------------------------------------------------------------------- uint64 past int64's maximum
def test_widest_uint64_interval_reaches_two_to_the_64() -> None:
    """A Cast to uint64 has no rule: its widest interval, read by a Cast to float32, reaches 2**64 - 1."""
    model = _model([oh.make_node("Cast", ["x"], ["u"], to=TensorProto.UINT64),
                    oh.make_node("Cast", ["u"], ["f"], to=FLOAT), oh.make_node("Mul", ["f", "k"], ["y"])],
                   {"x": FLOAT}, {"f": FLOAT, "y": FLOAT}, 17, (nh.from_array(np.array([2e19], np.float32), "k"),))
    spec = {"inputs": {"x": [-1, 1]}}
    lo, value, hi = _inside(model, spec, {"x": -1.0}, "f")
    assert lo <= value <= hi and value > 1.8e19
    assert _runtime(model, {"x": -1.0})["y"] == np.inf
    assert ("Mul", "overflow") in _hazards(model, spec)


def test_uint64_input_range_past_int64_is_held_as_the_saturated_top() -> None:
    model = _model([oh.make_node("Cast", ["u"], ["f"], to=FLOAT), oh.make_node("Mul", ["f", "k"], ["y"])],
                   {"u": TensorProto.UINT64}, {"f": FLOAT, "y": FLOAT}, 17,
                   (nh.from_array(np.array([2.2e19], np.float32), "k"),))
    spec = {"inputs": {"u": [15 * 10**18, 18 * 10**18]}}
    lo, value, hi = _inside(model, spec, {"u": 18 * 10**18}, "f")
    assert lo <= value <= hi
    assert ("Mul", "overflow") in _hazards(model, spec)
    note = next(a for a in ranum.analyze(model, spec).assumptions if a.tensor == "u")
    assert "2**64 - 1" in note.reason


@pytest.mark.parametrize("to", [TensorProto.INT64, TensorProto.INT32, TensorProto.DOUBLE])
def test_uint64_cast_reads_values_past_int64(to: int) -> None:
    """uint64 values from 2**63 on convert to negative int64 values, and to floats above 2**63."""
    model = _model([oh.make_node("Cast", ["u"], ["y"], to=to)], {"u": TensorProto.UINT64}, {"y": to}, 17)
    spec = {"inputs": {"u": [0, 2**64 - 1]}}
    for u in (0, 5, 2**63 + 7, 2**64 - 1):
        lo, value, hi = _inside(model, spec, {"u": u}, "y")
        assert lo <= value <= hi, (u, lo, value, hi)


def test_uint64_constants_past_int64_convert_exactly() -> None:
    values = np.array([2**64 - 1, 2**63, 5], np.uint64)
    graph = oh.make_graph([oh.make_node("Cast", ["c"], ["y"], to=DOUBLE)], "g", [],
                          [oh.make_tensor_value_info("y", DOUBLE, [3])], [nh.from_array(values, "c")])
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", 17)])
    model.ir_version = 8
    lo, hi = ranum.analyze(model, {}).bounds("y")
    assert lo.tolist() == hi.tolist() == values.astype(np.float64).tolist()


@pytest.mark.parametrize("op", ["Less", "Div"])
def test_arithmetic_on_uint64_values_past_int64_is_not_analysed(op: str) -> None:
    """Bounds of uint64 tensors are held as int64: a comparison or quotient would read 2**64 - 1 as -1 (Less
    with it certainly false, where onnxruntime says true), so such a node is left unanalysed (widest values)."""
    constant = np.array(2**64 - 1 if op == "Less" else 3, np.uint64)
    graph = oh.make_graph([oh.make_node(op, ["u", "c"], ["y"])], "g",
                              [oh.make_tensor_value_info("u", TensorProto.UINT64, [1])],
                              [oh.make_tensor_value_info("y", TensorProto.BOOL if op == "Less" else
                                                             TensorProto.UINT64, [1])],
                              [nh.from_array(constant, "c")])
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", 17)], ir_version=9)
    report = ranum.check(model, {"inputs": {"u": [1.5e19, 1.8e19]}})
    assert list(report.not_analysed_nodes) == [f"{op}_0"]
