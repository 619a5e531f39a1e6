"""Precision and hazard tests of the arithmetic and trigonometric rules (hand-written expectations)."""

from __future__ import annotations

import math

import onnx
import pytest
import torch
from onnx import TensorProto

from ranum.detect import find_hazards
from ranum.domain.interval import Interval
from ranum.graph.loader import load_model
from ranum.interpret import AbstractRun, run_abstract
from ranum.ops.arithmetic import Pow

FLOAT = TensorProto.FLOAT
EPS32 = torch.finfo(torch.float32).eps
F32_1E7 = float(torch.tensor(1e-7, dtype=torch.float32))


def _run(body: str, inputs: dict[str, tuple[float, float]], opset: int = 18, decl: str = "float[4] x",
         out: str = "float[4] y") -> AbstractRun:
    text = f"""<ir_version: 8, opset_import: ["" : {opset}]>
    g ({decl}) => ({out}) {{ {body} }}"""
    graph, _ = load_model(onnx.parser.parse_model(text))
    initial = {}
    for info in graph.inputs:
        low, high = inputs[info.name]
        initial[info.name] = Interval.uniform(low, high, info.shape, info.elem_type)
    for name, proto in graph.initializers.items():
        value = torch.from_numpy(onnx.numpy_helper.to_array(proto).copy())
        initial[name] = Interval.point(value, proto.data_type)
    run = run_abstract(graph, initial)
    assert not run.unsupported, run.unsupported
    return run


def _bounds(run: AbstractRun, name: str = "y") -> tuple[float, float]:
    return run.env[name].min(), run.env[name].max()


def _hazard_ids(run: AbstractRun) -> set[str]:
    return {f.hazard_id for f in find_hazards(run)}


def _close(value: float, expected: float, ulps: float = 8.0) -> bool:
    return abs(value - expected) <= ulps * EPS32 * max(abs(expected), 1e-30)


# ------------------------------------------------------------------------------------ Clip
def test_log_of_clip_with_exact_lower_limit_is_proven_safe() -> None:
    run = _run("lo = Constant<value = float {1e-7}>()\n hi = Constant<value = float {1.0}>()\n"
               " c = Clip(x, lo, hi)\n y = Log(c)", {"x": (-5.0, 5.0)})
    assert _bounds(run, "c") == (F32_1E7, 1.0)
    assert not find_hazards(run)


def test_clip_attribute_form_of_opset_6_keeps_exact_limits() -> None:
    run = _run("y = Clip<min = 1e-7, max = 2.0>(x)", {"x": (-5.0, 5.0)}, opset=10)
    assert _bounds(run) == (F32_1E7, 2.0)


def test_clip_with_one_limit_keeps_the_other_side() -> None:
    run = _run("lo = Constant<value = float {0.5}>()\n a = Clip(x, lo)\n y = Clip(x, , lo)", {"x": (-5.0, 5.0)})
    assert _bounds(run, "a") == (0.5, 5.0)
    assert _bounds(run) == (-5.0, 0.5)
    ints = _run("lo = Constant<value = int64 {2}>()\n y = Clip(x, lo)", {"x": (-5, 5)}, decl="int64[4] x",
                out="int64[4] y")
    assert _bounds(ints) == (2, 5)


@pytest.mark.parametrize("kind", ["int32", "int8", "uint8", "uint16", "uint32"])
def test_an_integer_clip_with_one_limit_keeps_the_other_side(kind: str) -> None:
    """The missing limit is the end of the tensor's own type (an int64 end, wrapped to the type, gave -2**31)."""
    least = 0 if kind.startswith("u") else -5
    lower = _run(f"lo = Constant<value = {kind} {{1}}>()\n y = Clip(x, lo)", {"x": (least, 5)},
                 decl=f"{kind}[4] x", out=f"{kind}[4] y")
    upper = _run(f"hi = Constant<value = {kind} {{1}}>()\n y = Clip(x, , hi)", {"x": (least, 5)},
                 decl=f"{kind}[4] x", out=f"{kind}[4] y")
    assert _bounds(lower) == (1, 5)
    assert _bounds(upper) == (least, 1)


def test_clip_with_interval_limits_and_crossed_limits() -> None:
    run = _run("y = Clip(x, lo, hi)", {"x": (-5.0, 5.0), "lo": (-1.0, 0.0), "hi": (0.5, 2.0)},
               decl="float[4] x, float lo, float hi")
    assert _bounds(run) == (-1.0, 2.0)
    crossed = _run("y = Clip(x, lo, hi)", {"x": (-5.0, 5.0), "lo": (3.0, 3.0), "hi": (1.0, 1.0)},
                   decl="float[4] x, float lo, float hi")
    assert _bounds(crossed) == (1.0, 1.0)


# ------------------------------------------------------------------------------------- Pow
@pytest.mark.parametrize(("exponent", "low", "high", "expected"), [
    (2.0, -3.0, 2.0, (0.0, 9.0)),
    (4.0, -1.0, 2.0, (0.0, 16.0)),
    (3.0, -2.0, 1.0, (-8.0, 1.0)),
    (-1.0, 0.5, 2.0, (0.5, 2.0)),
    (-2.0, -2.0, -0.5, (0.25, 4.0)),
    (0.5, 0.0, 4.0, (0.0, 2.0)),
    (0.0, -3.0, 3.0, (1.0, 1.0)),
])
def test_pow_with_point_exponent_is_tight(exponent: float, low: float, high: float, expected) -> None:
    run = _run(f"e = Constant<value = float {{{exponent}}}>()\n y = Pow(x, e)", {"x": (low, high)})
    lo, hi = _bounds(run)
    assert lo <= expected[0] and hi >= expected[1]
    assert _close(lo, expected[0]) and _close(hi, expected[1])
    if expected[0] >= 0:
        assert lo >= 0.0  # even exponents and x ** 0.5 never go negative


def test_pow_hazards() -> None:
    sqrt_like = _run("e = Constant<value = float {0.5}>()\n y = Pow(x, e)", {"x": (-1.0, 4.0)})
    assert _hazard_ids(sqrt_like) == {"pow-negative-base", "pow-zero-gradient"}
    assert _bounds(sqrt_like)[0] == 0.0 and _close(_bounds(sqrt_like)[1], 2.0)
    square = _run("e = Constant<value = float {2.0}>()\n y = Pow(x, e)", {"x": (-1.0, 4.0)})
    assert not _hazard_ids(square)
    inverse = _run("e = Constant<value = float {-1.0}>()\n y = Pow(x, e)", {"x": (0.0, 4.0)})
    # the infinite result is explained by the zero base: reported once, not again as an overflow
    assert _hazard_ids(inverse) == {"pow-zero-negative-exponent"}
    assert _bounds(inverse) == (-math.inf, math.inf)  # (-0.0) ** -1 = -inf
    huge = _run("e = Constant<value = float {40.0}>()\n y = Pow(x, e)", {"x": (5.0, 20.0)})
    assert _hazard_ids(huge) == {"overflow"}


def test_pow_with_interval_exponent_uses_corners() -> None:
    run = _run("y = Pow(x, e)", {"x": (0.5, 2.0), "e": (-1.0, 3.0)}, decl="float[4] x, float e")
    lo, hi = _bounds(run)
    assert _close(lo, 0.125) and _close(hi, 8.0)
    negative = _run("y = Pow(x, e)", {"x": (-2.0, 1.0), "e": (1.0, 3.0)}, decl="float[4] x, float e")
    lo, hi = _bounds(negative)
    assert _close(lo, -8.0) and _close(hi, 8.0)
    assert "pow-negative-base" in _hazard_ids(negative)


def test_pow_hazard_concrete_check_and_distance() -> None:
    negative_base, zero_base, _, gradient = Pow.hazards
    x = torch.tensor([-2.0, -2.0, 0.0, 0.0, 1e-40, 3.0])
    e = torch.tensor([0.5, 2.0, -1.0, 0.5, 0.5, -1.0])
    assert negative_base.triggered([x, e], []).tolist() == [True, False, False, False, False, False]
    assert zero_base.triggered([x, e], []).tolist() == [False, False, True, False, False, False]
    assert gradient.triggered([x, e], []).tolist() == [False, False, False, True, True, False]
    fired = negative_base.distance([x, e], []) <= 0
    assert bool(fired[0]) and not bool(fired[5])
    assert "non-integer" in negative_base.invalid_text(FLOAT)


# ----------------------------------------------------------------------- exact unary, Mod
def test_exact_unary_maps_do_not_round() -> None:
    run = _run("a = Abs(x)\n n = Neg(x)\n s = Sign(x)\n c = Ceil(x)\n f = Floor(x)\n y = Round(x)",
               {"x": (-2.5, 1.5)})
    assert _bounds(run, "a") == (0.0, 2.5)
    assert _bounds(run, "n") == (-1.5, 2.5)
    assert _bounds(run, "s") == (-1.0, 1.0)
    assert _bounds(run, "c") == (-2.0, 2.0)
    assert _bounds(run, "f") == (-3.0, 1.0)
    assert _bounds(run) == (-2.0, 2.0)  # half to even


def test_mod_bounds() -> None:
    keep = _run("d = Constant<value = float {5.0}>()\n y = Mod<fmod = 1>(x, d)", {"x": (-3.0, 4.0)})
    assert _bounds(keep) == (-3.0, 4.0)
    wide = _run("d = Constant<value = float {2.0}>()\n y = Mod<fmod = 1>(x, d)", {"x": (1.0, 40.0)})
    assert _bounds(wide) == (0.0, 2.0)
    floor_mod = _run("y = Mod(x, d)", {"x": (-20, 20), "d": (1, 6)}, decl="int64[4] x, int64[4] d", out="int64[4] y")
    assert _bounds(floor_mod) == (0, 5)
    assert not _hazard_ids(floor_mod)
    by_zero = _run("y = Mod<fmod = 1>(x, d)", {"x": (1.0, 2.0), "d": (-1.0, 1.0)}, decl="float[4] x, float[4] d")
    assert _hazard_ids(by_zero) == {"division-by-zero"}


# ---------------------------------------------------------------- Max, Min, Sum, Mean, CumSum
def test_variadic_max_min_are_exact() -> None:
    run = _run("m = Max(x, z, w)\n y = Min(x, z, w)", {"x": (-1.0, 2.0), "z": (0.0, 1.0), "w": (-3.0, -2.0)},
               decl="float[4] x, float[4] z, float w")
    assert _bounds(run, "m") == (0.0, 2.0)
    assert _bounds(run) == (-3.0, -2.0)


def test_sum_and_mean_are_tight_and_report_overflow() -> None:
    run = _run("s = Sum(x, z, w)\n y = Mean(x, z, w)", {"x": (1.0, 2.0), "z": (0.0, 1.0), "w": (3.0, 3.0)},
               decl="float[4] x, float[4] z, float w")
    lo, hi = _bounds(run, "s")
    assert lo <= 4.0 and hi >= 6.0 and _close(lo, 4.0, 32) and _close(hi, 6.0, 32)
    lo, hi = _bounds(run)
    assert lo <= 4.0 / 3 and hi >= 2.0 and _close(lo, 4.0 / 3, 32) and _close(hi, 2.0, 32)
    assert not find_hazards(run)
    big = _run("y = Sum(x, z, w)", {"x": (3e38, 3e38), "z": (3e38, 3e38), "w": (-3e38, -3e38)},
               decl="float[4] x, float[4] z, float w")
    assert _bounds(big)[1] == math.inf and "overflow" in _hazard_ids(big)


def test_cumsum_exclusive_reverse() -> None:
    run = _run("a = Constant<value = int64 {0}>()\n y = CumSum<exclusive = 1, reverse = 1>(x, a)", {"x": (1.0, 2.0)})
    lo, hi = (t.detach() for t in run.env["y"].full())
    assert lo[3] == 0 and hi[3] == 0
    first_lo, first_hi = float(lo[0]), float(hi[0])
    assert first_lo <= 3.0 and first_hi >= 6.0 and _close(first_lo, 3.0, 32) and _close(first_hi, 6.0, 32)
    ints = _run("a = Constant<value = int64 {0}>()\n y = CumSum(x, a)", {"x": (-1, 2)}, decl="int64[4] x",
                out="int64[4] y")
    lo, hi = ints.env["y"].full()
    assert lo.tolist() == [-1, -2, -3, -4] and hi.tolist() == [2, 4, 6, 8]


@pytest.mark.parametrize("low", [-math.inf, -1e30])
def test_cumsum_of_non_positive_terms_stays_non_positive(low: float) -> None:
    """exp(cumsum(log p)) for probabilities p (a cumulative product through logs): the running sums of terms
    in [-inf, 0] are in [-inf, 0], so the Exp cannot overflow. Each side took its rounding error from the
    largest magnitude of both (an infinite lower bound made the upper one infinite: a false Exp overflow)."""
    run = _run("a = Constant<value = int64 {0}>()\n c = CumSum(x, a)\n y = Exp(c)", {"x": (low, 0.0)})
    lo, hi = (t.detach() for t in run.env["c"].full())
    assert float(hi.max()) == 0.0 and float(lo.min()) <= 4 * low
    assert not find_hazards(run)


# -------------------------------------------------------------------------------- trig
def test_sin_cos_find_extrema_exactly() -> None:
    run = _run("s = Sin(x)\n y = Cos(x)", {"x": (1.2, 2.0)})
    lo, hi = _bounds(run, "s")
    assert hi == 1.0 and _close(lo, math.sin(2.0)) and lo <= math.sin(2.0)
    lo, hi = _bounds(run)
    assert _close(lo, math.cos(2.0)) and _close(hi, math.cos(1.2))
    narrow = _run("y = Sin(x)", {"x": (0.1, 0.2)})
    lo, hi = _bounds(narrow)
    assert _close(lo, math.sin(0.1)) and _close(hi, math.sin(0.2))
    trough = _run("y = Cos(x)", {"x": (3.0, 3.5)})
    assert _bounds(trough)[0] == -1.0
    wide = _run("y = Sin(x)", {"x": (-100.0, 100.0)})
    assert _bounds(wide) == (-1.0, 1.0)
    assert not find_hazards(wide)


def test_tan_is_wide_only_across_a_pole() -> None:
    run = _run("y = Tan(x)", {"x": (-1.0, 1.0)})
    lo, hi = _bounds(run)
    assert _close(lo, math.tan(-1.0)) and _close(hi, math.tan(1.0))
    pole = _run("y = Tan(x)", {"x": (1.0, 2.0)})  # float32: largest at the float32 values nearest pi / 2
    lo, hi = _bounds(pole)
    assert -3e7 < lo < -2e7 and 2e7 < hi < 3e7 and "overflow" not in _hazard_ids(pole)


@pytest.mark.parametrize(("op", "low", "high", "hazards"), [
    ("Asin", -0.5, 0.5, set()),
    ("Asin", -2.0, 0.0, {"asin-domain", "asin-gradient-at-minus-1"}),
    ("Asin", -2.0, -1.5, {"asin-domain"}),
    ("Asin", 0.0, 1.0, {"asin-gradient-at-1"}),
    ("Acos", -1.0, 0.0, {"acos-gradient-at-minus-1"}),
    ("Acosh", 0.0, 3.0, {"acosh-domain", "acosh-gradient-at-1"}),
    ("Acosh", 1.5, 3.0, set()),
    ("Atanh", -1.0, 0.5, {"atanh-infinite-at-minus-1"}),
    ("Atanh", -0.5, 1.5, {"atanh-domain", "atanh-infinite-at-1"}),
    ("Sinh", 80.0, 95.0, {"overflow"}),
    ("Cosh", -95.0, 1.0, {"overflow"}),
    ("Cosh", -5.0, 3.0, set()),
])
def test_inverse_and_hyperbolic_hazards(op: str, low: float, high: float, hazards: set[str]) -> None:
    assert _hazard_ids(_run(f"y = {op}(x)", {"x": (low, high)})) == hazards


def test_inverse_functions_clamp_to_their_domain() -> None:
    lo, hi = _bounds(_run("y = Asin(x)", {"x": (-3.0, 0.5)}))
    assert _close(lo, -math.pi / 2, 16) and _close(hi, math.asin(0.5), 16)
    lo, hi = _bounds(_run("y = Acos(x)", {"x": (0.5, 3.0)}))
    assert lo == 0.0 and _close(hi, math.acos(0.5), 16)
    assert _bounds(_run("y = Cosh(x)", {"x": (-2.0, 1.0)}))[0] == 1.0
    lo, hi = _bounds(_run("y = Erf(x)", {"x": (-10.0, 0.5)}))
    assert lo == -1.0 and _close(hi, math.erf(0.5))


@pytest.mark.parametrize(("body", "scale", "signed"), [
    ("kx = Mul(k, x)\n        y = Mul(kx, x)", 0.001, 1),  # Adam's (1 - beta2) * g * g
    ("kx = Mul(x, k)\n        y = Mul(x, kx)", 0.001, 1),
    ("kx = Mul(k, x)\n        y = Mul(kx, x)", -0.5, -1),  # a Gaussian kernel's -0.5 * d * d
    ("kx = Mul(k, x)\n        y = Mul(kx, w)", 0.5, 0),  # another tensor: no square
])
def test_a_scaled_square_keeps_the_sign_of_its_scale(body: str, scale: float, signed: int) -> None:
    """(k * x) * x is k x^2: it has k's sign, whatever x's, and its exp or square root is then bounded (the two x
    were taken as independent: -0.5 * d * d reached +5000 for d in [-100, 100], a false Exp overflow)."""
    import numpy as np

    from tests.zoo.runtime import Runner

    model = onnx.parser.parse_model(f"""
    <ir_version: 8, opset_import: ["" : 18]>
    g (float[6] x, float[6] w) => (float[6] y, float[6] z) <float k = {{{scale}}}> {{
        {body}
        z = Exp(y)
    }}""")
    from ranum.analysis import analyze

    analysis = analyze(model, {"inputs": {"x": [-100.0, 100.0], "w": [-100.0, 100.0]}})
    lo, hi = analysis.bounds("y")
    assert (float(lo.min()) >= 0.0) == (signed > 0) and (float(hi.max()) <= 0.0) == (signed < 0)
    assert float(np.abs(np.concatenate([lo, hi])).max()) <= abs(scale) * 1e4 * 1.001
    assert bool(find_hazards(analysis.run)) == (signed == 0)  # exp(5000) only where the square is not seen
    x = np.array([-100.0, -3.0, -1e-20, 0.0, 7.0, 100.0], np.float32)
    y = Runner(model).run({"x": x, "w": -x})["y"]
    assert np.all((y >= lo) & (y <= hi))
