"""Precision tests for the activation rules (soundness is in test_soundness.py)."""

from __future__ import annotations

import math

import numpy as np
import onnx
import pytest
import torch

from ranum.analysis import analyze
from ranum.detect import check
from ranum.ops import activations

EXACT = {"weights": {"default": "exact"}}
EPS32 = float(torch.finfo(torch.float32).eps)


def _unary(op: str, attrs: str = "", opset: int = 20, dtype: str = "float") -> onnx.ModelProto:
    attr_text = f" <{attrs}>" if attrs else ""
    return onnx.parser.parse_model(f"""
    <ir_version: 8, opset_import: ["" : {opset}]>
    g ({dtype}[3] x) => ({dtype}[3] y) {{
        y = {op}{attr_text} (x)
    }}
    """)


def _range(model: onnx.ModelProto, low: float, high: float, tensor: str = "y") -> tuple[float, float]:
    analysis = analyze(model, {"inputs": {"x": [low, high]}, **EXACT})
    assert not analysis.unsupported
    lo, hi = analysis.bounds(tensor)
    return float(lo.min()), float(hi.max())


def test_relu_is_exact() -> None:
    # input ranges are rounded outward by one float32 ulp; Relu adds nothing to that
    assert _range(_unary("Relu"), -2.0, 3.0) == (0.0, _range(_unary("Relu"), -2.0, 3.0, "x")[1])
    assert _range(_unary("Relu", dtype="int64"), -7, 5) == (0, 5)


def test_leaky_relu_with_negative_slope_peaks_at_the_left_end() -> None:
    lo, hi = _range(_unary("LeakyRelu", "alpha: float = -0.5"), -4.0, 1.0)
    assert lo == pytest.approx(0.0, abs=1e-30) and hi == pytest.approx(2.0, rel=4 * EPS32)
    assert hi >= 2.0


def test_prelu_mixed_sign_slopes_take_the_corner_products() -> None:
    model = onnx.parser.parse_model("""
    <ir_version: 8, opset_import: ["" : 17]>
    g (float[3] x, float[3] s) => (float[3] y) {
        y = PRelu(x, s)
    }
    """)
    analysis = analyze(model, {"inputs": {"x": [-2, 1], "s": [-1, 0.5]}, **EXACT})
    lo, hi = analysis.bounds("y")
    assert float(lo.min()) == pytest.approx(-1.0, rel=4 * EPS32) and float(lo.min()) <= -1.0
    assert float(hi.max()) == pytest.approx(2.0, rel=4 * EPS32) and float(hi.max()) >= 2.0


@pytest.mark.parametrize(("approximate", "minimum"), [("none", -0.1699712074799036), ("tanh", -0.1700407505712540)])
def test_gelu_minimum_is_the_interior_critical_value(approximate: str, minimum: float) -> None:
    lo, hi = _range(_unary("Gelu", f'approximate: string = "{approximate}"'), -3.0, 3.0)
    assert minimum - 1e-5 < lo <= minimum
    assert hi == pytest.approx(3.0 * 0.5 * (1 + math.erf(3 / math.sqrt(2))), rel=1e-3)


def test_gelu_without_interior_minimum_uses_the_end() -> None:
    lo, _ = _range(_unary("Gelu"), -0.5, 1.0)
    exact = -0.5 * 0.5 * (1 + math.erf(-0.5 / math.sqrt(2)))
    assert exact - 1e-6 < lo <= exact


def test_mish_minimum() -> None:
    lo, hi = _range(_unary("Mish"), -5.0, 5.0)
    assert -0.3088434130172504 - 1e-5 < lo <= -0.3088434130172504
    assert hi == pytest.approx(5 * math.tanh(math.log1p(math.exp(5))), rel=1e-5)


def test_hardswish_minimum() -> None:
    lo, hi = _range(_unary("HardSwish"), -4.0, 4.0)
    assert -0.375 - 1e-5 < lo <= -0.375
    assert hi == pytest.approx(4.0, rel=1e-5)


@pytest.mark.parametrize(("fn", "argmin"), [
    (lambda x: x * 0.5 * (1 + torch.erf(x / math.sqrt(2))), activations.GELU_ARGMIN),
    (lambda x: 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3))),
     activations.GELU_TANH_ARGMIN),
    (lambda x: x * torch.tanh(torch.nn.functional.softplus(x)), activations.MISH_ARGMIN),
])
def test_argmin_constants_are_the_only_negative_critical_point(fn, argmin: float) -> None:
    x = torch.tensor(argmin, dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(fn(x), x)
    assert abs(float(grad)) < 1e-12
    grid = torch.linspace(-30, 30, 60001, dtype=torch.float64, requires_grad=True)
    (slope,) = torch.autograd.grad(fn(grid).sum(), grid)
    assert bool((slope[grid.detach() < argmin - 1e-3] <= 1e-12).all())
    assert bool((slope[grid.detach() > argmin + 1e-3] >= -1e-12).all())


def test_squashing_ranges_on_unbounded_inputs() -> None:
    for op, low in (("Sigmoid", 0.0), ("Tanh", -1.0 - activations.UNIT_OVERSHOOT)):
        lo, hi = _range(_unary(op), -math.inf, math.inf)
        assert lo == low and hi <= 1.0 + activations.UNIT_OVERSHOOT, op
    # near float32's largest value onnxruntime's Softsign passes +-1 (its reciprocal is subnormal)
    lo, hi = _range(_unary("Softsign"), -math.inf, math.inf)
    assert -1.0 - activations.SOFTSIGN_OVERSHOOT <= lo < -1.0 < 1.0 < hi <= 1.0 + activations.SOFTSIGN_OVERSHOOT
    assert _range(_unary("HardSigmoid"), -math.inf, math.inf) == (0.0, 1.0)


@pytest.mark.parametrize("op", ["Tanh", "Sigmoid"])
def test_onnxruntime_stays_within_the_declared_overshoot_near_saturation(op: str) -> None:
    """Every float32 from 4 to 64 (and its negative): onnxruntime's result never passes 1 + UNIT_OVERSHOOT
    (nor -1 - UNIT_OVERSHOOT for Tanh), the bound ranum's rules keep."""
    import onnxruntime as ort

    start, stop = (np.array([4.0, 64.0], dtype=np.float32).view(np.uint32)).tolist()
    x = np.arange(start, stop, dtype=np.uint32).view(np.float32)
    model = onnx.parser.parse_model(f'<ir_version: 8, opset_import: ["" : 17]>\n g (float[N] x) => (float[N] y) '
                                    f"{{ y = {op}(x) }}")
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    high = session.run(None, {"x": x})[0].max()
    low = session.run(None, {"x": -x})[0].min()
    assert float(high) <= 1.0 + activations.UNIT_OVERSHOOT
    assert float(low) >= (-1.0 - activations.UNIT_OVERSHOOT if op == "Tanh" else 0.0)


def test_the_log_probability_correction_of_a_squashed_gaussian_policy_is_safe_with_its_epsilon() -> None:
    """SAC's log(1 - tanh(u) ** 2 + 1e-6): with 4 ulps of overshoot allowed above 1, tanh(u) ** 2 could
    reach 1 + 1.4e-6 and the Log's operand -4.3e-7 (a false alarm on every SAC policy); onnxruntime's Tanh
    passes 1 by 2 ulps at most, which keeps the operand above 0. Without the epsilon it is a real finding."""
    body = ("t = Tanh(u)\n two = Constant<value_float = 2.0>()\n s = Pow(t, two)\n"
            "one = Constant<value_float = 1.0>()\n d = Sub(one, s)\n")
    safe = onnx.parser.parse_model('<ir_version: 8, opset_import: ["" : 17]>\n g (float[2] u) => (float[2] y) {'
                                   + body + "e = Constant<value_float = 1e-6>()\n p = Add(d, e)\n y = Log(p) }")
    naive = onnx.parser.parse_model('<ir_version: 8, opset_import: ["" : 17]>\n g (float[2] u) => (float[2] y) {'
                                    + body + "y = Log(d) }")
    assert not check(safe, {"inputs": {"u": [-30, 30]}}).findings
    assert [f.op_type for f in check(naive, {"inputs": {"u": [-30, 30]}}).findings] == ["Log"]


def test_sigmoid_is_tight_on_a_narrow_range() -> None:
    lo, hi = _range(_unary("Sigmoid"), 0.0, 1.0)
    assert 0.5 - 1e-6 < lo <= 0.5
    assert 1 / (1 + math.exp(-1)) <= hi < 1 / (1 + math.exp(-1)) + 1e-6


def test_softplus_overflow_depends_on_the_dtype() -> None:
    assert not check(_unary("Softplus"), {"inputs": {"x": [-1e30, 1e30]}, **EXACT}).findings
    lo, hi = _range(_unary("Softplus"), -1e30, 1e30)
    assert lo == 0.0 and hi == pytest.approx(1e30, rel=1e-6)
    half = check(_unary("Softplus", dtype="float16"), {"inputs": {"x": [0, 100]}, **EXACT})
    assert [f.hazard_id for f in half.findings] == ["overflow"]
    assert not check(_unary("Softplus", dtype="float16"), {"inputs": {"x": [0, 80]}, **EXACT}).findings


def test_elu_family_is_monotone_and_close() -> None:
    lo, hi = _range(_unary("Elu", "alpha: float = 2.0"), -1.0, 2.0)
    assert 2 * math.expm1(-1) - 2e-6 < lo <= 2 * math.expm1(-1)
    assert 2.0 <= hi < 2.0 + 1e-6
    lo, _ = _range(_unary("Selu"), -math.inf, 0.0)
    alpha, gamma = activations.Selu.alpha, activations.Selu.gamma
    assert -alpha * gamma - 4e-6 < lo <= -alpha * gamma


def test_thresholded_relu_negative_threshold() -> None:
    lo, hi = _range(_unary("ThresholdedRelu", "alpha: float = -0.5"), -2.0, 3.0)
    assert lo == pytest.approx(-0.5, rel=1e-6) and lo <= -0.5
    assert hi == _range(_unary("ThresholdedRelu"), -2.0, 3.0, "x")[1]
    assert _range(_unary("ThresholdedRelu"), -2.0, 0.5) == (0.0, 0.0)


def test_unsupported_attribute_values_fall_back() -> None:
    analysis = analyze(_unary("Gelu", 'approximate: string = "erf"'), {"inputs": {"x": [-1, 1]}, **EXACT})
    assert analysis.unsupported
    lo, hi = analysis.bounds("y")
    assert np.isneginf(lo).all() and np.isposinf(hi).all()


@pytest.mark.parametrize(("op", "reference", "inputs"), [
    ("Sigmoid", torch.sigmoid, (np.linspace(-40, 40, 400_001), np.linspace(-18.01, -17.99, 4001))),
    ("Tanh", torch.tanh, (np.linspace(-12, 12, 400_001),)),
])
def test_the_concrete_rule_gives_onnxruntime_float32_values_bit_for_bit(op: str, reference, inputs) -> None:
    """onnxruntime's float32 Sigmoid and Tanh are clamped rationals: the Sigmoid is 0 from -17.99998 down and
    reaches 1 + 2**-23, the Tanh reaches 1 + 2**-22 (so 1 - tanh(x)**2 < 0), and torch's own functions differ
    from them in about half of all values. The concrete rules reproduce them, so hazards that only these values
    reach fire in ranum's semantics; they are differentiated as torch's functions are."""
    from onnx import TensorProto, helper

    from tests.ops.node_runs import onnxruntime_outputs

    special = [np.inf, -np.inf, 0.0, -0.0, 1e-40, -1e-40]
    xs = np.concatenate([*inputs, np.linspace(-1e-3, 1e-3, 1001), special]).astype(np.float32)
    graph = helper.make_graph([helper.make_node(op, ["x"], ["y"])], op,
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [len(xs)])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [len(xs)])])
    (runtime,) = onnxruntime_outputs(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), [xs])
    rule = getattr(activations, op)()
    ours = rule.fn(torch.from_numpy(xs)).numpy()
    assert np.array_equal(ours, runtime)
    assert ours.max() > 1 and not np.array_equal(ours, reference(torch.from_numpy(xs)).numpy())
    if op == "Sigmoid":
        assert ours[xs <= -18].max() == 0
    x = torch.tensor([-30.0, 0.5, 3.0, 30.0], requires_grad=True)
    rule.fn(x).sum().backward()
    expected = torch.func.grad(lambda v: reference(v).sum())(x.detach())
    assert torch.allclose(x.grad, expected, rtol=1e-5, atol=0.0)


_NON_FINITE_UNARY = ["Abs", "Neg", "Sign", "Relu", "LeakyRelu", "LeakyRelu<alpha = 0.0>", "LeakyRelu<alpha = -0.5>",
                     "Elu", "Selu", "Celu", "Sigmoid", "Tanh", "Softplus", "Softsign", "HardSigmoid", "HardSwish",
                     "ThresholdedRelu", "Floor", "Ceil", "Round", "Exp", "Sqrt", "Reciprocal", "Erf"]


@pytest.mark.parametrize("op", _NON_FINITE_UNARY)
def test_concrete_semantics_keep_onnxruntime_nan_and_infinities(op: str) -> None:
    """confirm runs the concrete semantics to tell where a hazard fires: a NaN from an earlier hazard must stay NaN
    where onnxruntime keeps it (LeakyRelu and Sign gave 0, so a later division saw a zero divisor that no
    onnxruntime run shows)."""
    import onnxruntime as ort

    from ranum.graph.loader import load_model
    from ranum.interpret import run_concrete

    model = onnx.parser.parse_model(f"""
    <ir_version: 8, opset_import: ["" : 18]>
    g (float[4] x) => (float[4] y) {{
        y = {op}(x)
    }}""")
    x = np.array([math.nan, math.inf, -math.inf, -0.0], dtype=np.float32)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    expected = session.run(None, {"x": x})[0]
    got = run_concrete(load_model(model)[0], {"x": torch.from_numpy(x)}).values["y"].numpy()
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    finite = ~np.isnan(expected)
    np.testing.assert_array_equal(got[finite], expected[finite])
