"""Relational refinements, checked for precision and against onnxruntime: RMS normalisation
|x / sqrt(mean(x^2) + eps)| <= sqrt(n); attention softmax(s) @ V within the range of V's columns;
Where(t > c, t, y) selecting t only above c."""

from __future__ import annotations

import math

import numpy as np
import onnx
import onnxruntime as ort
import pytest

import ranum
from tests.zoo.runtime import Runner

FORMS = {
    "mul-div": """
        two = Constant<value = float {2.0}>()
        sq = Pow(x, two)
        ms = ReduceMean<axes = [-1], keepdims = 1>(sq)
        eps = Constant<value = float {1e-6}>()
        v = Add(ms, eps)
        s = Sqrt(v)
        one = Constant<value = float {1.0}>()
        r = Div(one, s)
        y = Mul(x, r)""",
    "reciprocal": """
        sq = Mul(x, x)
        ms = ReduceMean<axes = [1], keepdims = 1>(sq)
        eps = Constant<value = float {1e-6}>()
        v = Add(eps, ms)
        s = Sqrt(v)
        r = Reciprocal(s)
        y = Mul(r, x)""",
    "div": """
        two = Constant<value = float {2.0}>()
        sq = Pow(x, two)
        ms = ReduceMean<axes = [-1], keepdims = 1>(sq)
        eps = Constant<value = float {1e-6}>()
        v = Add(ms, eps)
        s = Sqrt(v)
        y = Div(x, s)""",
    # Gemma 3n's RMSNorm: the mean square to the power -0.5
    "power": """
        two = Constant<value = float {2.0}>()
        sq = Pow(x, two)
        ms = ReduceMean<axes = [-1], keepdims = 1>(sq)
        eps = Constant<value = float {1e-6}>()
        v = Add(ms, eps)
        half = Constant<value = float {-0.5}>()
        r = Pow(v, half)
        y = Mul(x, r)""",
}


def _model(body: str) -> onnx.ModelProto:
    return onnx.parser.parse_model(
        '<ir_version: 8, opset_import: ["" : 17]>\ng (float[6,16] x) => (float[6,16] y) {' + body + "\n}")


@pytest.mark.parametrize("form", list(FORMS))
def test_rms_normalisation_is_bounded_by_sqrt_n_and_sound(form: str) -> None:
    model = _model(FORMS[form])
    analysis = ranum.analyze(model, {"inputs": {"x": [-1e4, 1e4]}})
    lo, hi = analysis.bounds("y")
    assert hi.max() <= 4.0 * 1.001 and lo.min() >= -4.0 * 1.001  # sqrt(16) = 4, not 1e4 / sqrt(1e-6)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    for scale in (1e-4, 1.0, 1e4):
        x = rng.uniform(-scale, scale, (6, 16)).astype(np.float32)
        x[0] = 0.0
        x[1, 1:] = 0.0  # one large element: |y| reaches sqrt(n)
        x[1, 0] = scale
        x[2] = scale  # constant row: |y| = 1
        y = session.run(None, {"x": x})[0]
        assert np.all((y >= lo) & (y <= hi)), (form, scale, float(np.abs(y).max()))
    assert not [f for f in ranum.check(model, {"inputs": {"x": [-1e4, 1e4]}}).findings if f.hazard_id == "overflow"]


ATTENTION = """
    p = Softmax<axis = -1>(s)
    q = Cast<to = 1>(p)
    y = MatMul(q, v)"""


def _attention(dtype: str = "float", softmax_axis: int = -1) -> onnx.ModelProto:
    body = ATTENTION.replace("axis = -1", f"axis = {softmax_axis}")
    return onnx.parser.parse_model(
        '<ir_version: 8, opset_import: ["" : 17]>\n'
        f"g ({dtype}[2,5,32] s, float[2,32,3] v) => (float[2,5,3] y) {{" + body + "\n}")


def test_softmax_weighted_sum_stays_within_the_values_columns_and_is_sound() -> None:
    model = _attention()
    spec = {"inputs": {"s": [-1e3, 1e3], "v": [-1, 1]}}
    lo, hi = ranum.analyze(model, spec).bounds("y")
    assert hi.max() <= 1.0001 and lo.min() >= -1.0001  # intervals alone give 32
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    for scale in (1.0, 1e3):
        s = rng.uniform(-scale, scale, (2, 5, 32)).astype(np.float32)
        v = np.sign(rng.uniform(-1, 1, (2, 32, 3))).astype(np.float32)
        v[:, :, 0] = 1.0  # a column of ones: every output is exactly the weights' float sum
        y = session.run(None, {"s": s, "v": v})[0]
        assert np.all((y >= lo) & (y <= hi))


def test_softmax_over_another_axis_is_not_a_convex_combination() -> None:
    lo, hi = ranum.analyze(_attention(softmax_axis=1), {"inputs": {"s": [-1e3, 1e3], "v": [-1, 1]}}).bounds("y")
    assert hi.max() > 1.5 and lo.min() < -1.5


def _normalised_projection(norm: str) -> onnx.ModelProto:
    """LayerNorm (or RMSNorm) over 32 features, then MatMul or Gemm (+ bias) by a fixed weight."""
    rng = np.random.default_rng(3)
    weight = rng.normal(0, 0.5, (32, 8)).astype(np.float32)
    bias = rng.normal(0, 0.1, (8,)).astype(np.float32)
    scale = rng.uniform(0.5, 1.5, (32,)).astype(np.float32)
    shift = rng.normal(0, 0.1, (32,)).astype(np.float32)
    if norm == "layernorm":
        body = "h = LayerNormalization<axis = -1, epsilon = 1e-5>(x, scale, shift)\n y = MatMul(h, w)"
    elif norm == "layernorm-gemm":
        body = ("h = LayerNormalization<axis = -1, epsilon = 1e-5>(x, scale, shift)\n"
                " f = Reshape(h, flat)\n y = Gemm(f, w, bias)")
    else:
        body = FORMS["mul-div"].replace("y = Mul(x, r)", "n = Mul(x, r)\n h = Mul(n, scale)\n y = MatMul(h, w)")
    inits = [onnx.numpy_helper.from_array(v, k) for k, v in
             {"w": weight, "bias": bias, "scale": scale, "shift": shift}.items()]
    inits.append(onnx.numpy_helper.from_array(np.array([6, 32], np.int64), "flat"))
    out = "float[6,8] y"
    model = onnx.parser.parse_model(
        '<ir_version: 8, opset_import: ["" : 17]>\n'
        f"g (float[6,32] x) => ({out}) {{" + body + "\n}")
    model.graph.initializer.extend(inits)
    return model


@pytest.mark.parametrize("norm", ["layernorm", "layernorm-gemm", "rmsnorm"])
def test_projection_of_a_normalised_row_is_bounded_by_norms_and_sound(norm: str) -> None:
    model = _normalised_projection(norm)
    weights = {i.name: onnx.numpy_helper.to_array(i) for i in model.graph.initializer}
    w, scale = weights["w"], weights["scale"]
    spec = {"inputs": {"x": [-1e3, 1e3]}, "weights": {"default": "exact"}}
    lo, hi = ranum.analyze(model, spec).bounds("y")
    # Cauchy-Schwarz: |y_j| <= max|scale| sqrt(32) ||w[:, j]|| (+ small terms): well below the interval
    # bound sum_i |scale_i| |w_ij| * sqrt(31)
    columns = np.sqrt((w.astype(np.float64) ** 2).sum(0))
    assert np.all(hi.max(0) <= scale.max() * np.sqrt(32) * columns * 1.2 + 0.6)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    # rows aligned with a weight column reach the bound's order; random rows and spikes too
    aligned = np.stack([w[:, j % 8] / scale * (1 if j < 8 else -1) for j in range(6)]).astype(np.float32)
    for x in (rng.uniform(-1e3, 1e3, (6, 32)), aligned * 100, np.eye(6, 32) * 1e3):
        y = session.run(None, {"x": x.astype(np.float32)})[0]
        assert np.all((y >= lo) & (y <= hi)), norm


MASKED_SCORES = """
<ir_version: 8, opset_import: ["" : 17]>
g (float16[4,16] s, float16[4,16] keep) => (float16[4,16] p) {
  one32 = Constant<value = float {1.0}>()
  one = Cast<to = 10>(one32)
  drop = Sub(one, keep)
  lowest32 = Constant<value = float {-65504.0}>()
  lowest = Cast<to = 10>(lowest32)
  mask = Mul(drop, lowest)
  t = Add(s, mask)
  p = Softmax<axis = -1>(t)
}
"""


@pytest.mark.parametrize(("low", "overflows"), [(-15.5, False), (-16.5, True)])
def test_float16_mask_of_the_lowest_value_overflows_only_past_half_an_ulp(low: float, overflows: bool) -> None:
    """score + (-65504) rounds to -65504 in float16 while score > -16 (half the spacing there)."""
    model = onnx.parser.parse_model(MASKED_SCORES)
    report = ranum.check(model, {"inputs": {"s": [low, 8.0], "keep": [0, 1]}})
    flagged = {f.op_type for f in report.findings}
    assert ("Add" in flagged) == overflows and ("Softmax" in flagged) == overflows
    model.graph.output.append(onnx.helper.make_tensor_value_info("t", onnx.TensorProto.FLOAT16, [4, 16]))
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    keep = np.zeros((4, 16), np.float16)  # every key masked
    t = session.run(["t"], {"s": np.full((4, 16), low, np.float16), "keep": keep})[0]
    assert bool(np.isinf(t).all()) == overflows


def test_row_norm_is_not_divided_by_an_interval_holding_zero() -> None:
    """||row / s|| has no bound when s can be 0 (or tiny): the refinement must not apply."""
    body = "h = LayerNormalization<axis = -1, epsilon = 1e-5>(x, scale, shift)\n d = Div(h, s)\n z = MatMul(d, w)"
    model = onnx.parser.parse_model(
        '<ir_version: 8, opset_import: ["" : 17]>\n'
        "g (float[6,32] x, float[32] s) => (float[6,8] z) {" + body + "\n}")
    w = np.random.default_rng(1).normal(0, 1, (32, 8)).astype(np.float32)
    inits = {"w": w, "scale": np.ones(32, np.float32), "shift": np.zeros(32, np.float32)}
    model.graph.initializer.extend(onnx.numpy_helper.from_array(v, k) for k, v in inits.items())
    lo, hi = ranum.analyze(model, {"inputs": {"x": [-1, 1], "s": [-1, 1]}, "weights": {"default": "exact"}}).bounds("z")
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).uniform(-1, 1, (6, 32)).astype(np.float32)
    (z,) = session.run(None, {"x": x, "s": np.full(32, 1e-3, np.float32)})
    assert np.abs(z).max() > 100 and np.all((z >= lo) & (z <= hi))


GUARDED = {
    # softplus as the dynamo exporter writes it: the raw value only above the threshold
    "true-branch": "c = Greater(x, t)\n        y = Where(c, x, sp)",
    "false-branch": "c = LessOrEqual(x, t)\n        y = Where(c, sp, x)",
    "constant-first": "c = Less(t, x)\n        y = Where(c, x, sp)",
}


@pytest.mark.parametrize("form", list(GUARDED))
def test_a_branch_guarded_by_its_own_comparison_keeps_its_side_and_is_sound(form: str) -> None:
    text = f"""
    <ir_version: 8, opset_import: ["" : 17]>
    g (float[4, 8] x) => (float[4, 8] z) {{
        t = Constant<value = float {{20.0}}>()
        sp = Softplus(x)
        {GUARDED[form]}
        n = Neg(y)
        z = Exp(n)
    }}
    """
    model = onnx.parser.parse_model(text)
    spec = {"inputs": {"x": [-100, 100]}}
    report = ranum.check(model, spec)
    assert report.findings == ()  # exp(-y) with y >= 0; without the guard y reaches -100 and exp overflows
    lo, hi = report.analysis.bounds("y")
    assert float(lo.min()) >= 0.0 and float(hi.max()) >= 100.0
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).uniform(-100, 100, (4, 8)).astype(np.float32)
    x[0, :3] = [20.0, np.nextafter(np.float32(20), np.float32(30)), -100.0]
    (z,) = session.run(None, {"x": x})
    z_lo, z_hi = report.analysis.bounds("z")
    assert np.all((z >= z_lo) & (z <= z_hi))


def test_a_branch_that_is_not_the_compared_tensor_is_not_refined() -> None:
    text = """
    <ir_version: 8, opset_import: ["" : 17]>
    g (float[4] x, float[4] w) => (float[4] z) {
        t = Constant<value = float {20.0}>()
        c = Greater(w, t)
        y = Where(c, x, w)
        n = Neg(y)
        z = Exp(n)
    }
    """
    report = ranum.check(onnx.parser.parse_model(text), {"inputs": {"x": [-100, 100], "w": [-100, 100]}})
    assert [f.op_type for f in report.findings] == ["Exp"]


# ------------------------------------------------------------------------------ differences
def _graph(inputs: str, outputs: str, body: str) -> onnx.ModelProto:
    return onnx.parser.parse_model(
        '<ir_version: 8, opset_import: ["" : 17]>\ng (' + inputs + ") => (" + outputs + ") {" + body + "\n}")


DIFFERENCES = {
    # RWKV's stable exponent: k + t is written twice, once inside the maximum
    "max-of-a-recomputed-sum": ("float[4,8] k, float[4,8] t, float[4,8] s", """
        kt = Add(k, t)
        m = Max(s, kt)
        kt2 = Add(k, t)
        d = Sub(kt2, m)
        y = Exp(d)""", -1),
    "reduce-max-kept": ("float[4,8] k, float[4,8] t, float[4,8] s", """
        m = ReduceMax<axes = [1], keepdims = 1>(k)
        d = Sub(k, m)
        y = Exp(d)""", -1),
    "min-mirrored": ("float[4,8] k, float[4,8] t, float[4,8] s", """
        m = Min(k, s)
        d = Sub(m, k)
        y = Exp(d)""", -1),
    # x - x.max(): the maximum of every element, a scalar (pycox's log_h - log_h.max())
    "reduce-max-of-all": ("float[4,8] k, float[4,8] t, float[4,8] s", """
        m = ReduceMax<keepdims = 0>(k)
        d = Sub(k, m)
        y = Exp(d)""", -1),
    # x - x.max(dim=1).values.unsqueeze(1)
    "reduce-max-unsqueezed-back": ("float[4,8] k, float[4,8] t, float[4,8] s", """
        m = ReduceMax<axes = [1], keepdims = 0>(k)
        axes = Constant<value = int64[1] {-1}>()
        u = Unsqueeze(m, axes)
        d = Sub(k, u)
        y = Exp(d)""", -1),
    # the maximum over the leading axis without keepdims: each column's, broadcast back along it
    "reduce-max-leading-axis": ("float[4,8] k, float[4,8] t, float[4,8] s", """
        m = ReduceMax<axes = [0], keepdims = 0>(k)
        d = Sub(k, m)
        y = Exp(d)""", -1),
    "reduce-min-of-all-mirrored": ("float[4,8] k, float[4,8] t, float[4,8] s", """
        m = ReduceMin<keepdims = 0>(k)
        d = Sub(m, k)
        y = Exp(d)""", -1),
}


def _sampled_inside(model: onnx.ModelProto, ranges: dict, analysis, names: list[str]) -> None:
    runner = Runner(model)
    rng = np.random.default_rng(0)
    shapes = {i.name: [d.dim_value for d in i.type.tensor_type.shape.dim] for i in model.graph.input}
    for _ in range(20):
        values = runner.run({n: rng.uniform(lo, hi, shapes[n]).astype(np.float32) for n, (lo, hi) in ranges.items()})
        for name in names:
            lo, hi = analysis.bounds(name)
            assert ((lo <= values[name]) & (values[name] <= hi)).all(), name


@pytest.mark.parametrize("form", list(DIFFERENCES))
def test_a_difference_with_its_own_maximum_has_a_sign_and_is_sound(form: str) -> None:
    inputs, body, sign = DIFFERENCES[form]
    model = _graph(inputs, "float[4,8] y", body)
    ranges = {"k": [-100.0, 100.0], "t": [-100.0, 100.0], "s": [-100.0, 100.0]}
    report = ranum.check(model, {"inputs": ranges})
    assert not report.findings, [(f.op_type, f.node) for f in report.findings]  # exp(400) otherwise
    lo, hi = report.analysis.bounds("d")
    assert hi.max() <= 0.0 if sign < 0 else lo.min() >= 0.0
    _sampled_inside(model, ranges, report.analysis, ["d", "y"])


@pytest.mark.parametrize("body", [
    # the maximum over the last axis without keepdims, broadcast along it: row j's maximum meets column j
    """m = ReduceMax<axes = [1], keepdims = 0>(k)
        d = Sub(k, m)
        y = Exp(d)""",
    # unsqueezed back at another axis than the one reduced
    """m = ReduceMax<axes = [0], keepdims = 0>(k)
        axes = Constant<value = int64[1] {1}>()
        u = Unsqueeze(m, axes)
        d = Sub(k, u)
        y = Exp(d)""",
])
def test_a_maximum_broadcast_onto_other_elements_keeps_the_difference_interval(body: str) -> None:
    model = _graph("float[8,8] k", "float[8,8] y", body)
    report = ranum.check(model, {"inputs": {"k": [-100.0, 100.0]}})
    assert [f.op_type for f in report.findings] == ["Exp"]


def test_a_difference_with_an_unrelated_maximum_keeps_its_interval() -> None:
    model = _graph("float[4,8] k, float[4,8] t, float[4,8] s", "float[4,8] y", """
        m = Max(s, t)
        d = Sub(k, m)
        y = Exp(d)""")
    report = ranum.check(model, {"inputs": {"k": [-100.0, 100.0], "t": [-100.0, 100.0], "s": [-100.0, 100.0]}})
    assert [f.op_type for f in report.findings] == ["Exp"]


def _decay(axis: int) -> onnx.ModelProto:
    """Mamba-2's chunk decay exp(A_cumsum[..., -1:] - A_cumsum), with increments a * dt <= 0."""
    return _graph("float[2,16] a, float[2,16] dt", "float[2,16] y", f"""
        na = Neg(a)
        inc = Mul(na, dt)
        ax = Constant<value = int64 {{{axis}}}>()
        c = CumSum(inc, ax)
        starts = Constant<value = int64[1] {{-1}}>()
        ends = Constant<value = int64[1] {{9223372036854775807}}>()
        axes = Constant<value = int64[1] {{{axis}}}>()
        last = Slice(c, starts, ends, axes)
        d = Sub(last, c)
        y = Exp(d)""")


@pytest.mark.parametrize("axis", [1, -1])
def test_a_difference_of_one_running_sum_is_bounded_by_its_terms_and_sound(axis: int) -> None:
    model = _decay(axis)
    ranges = {"a": [0.0, 8.0], "dt": [0.0, 2.0]}
    report = ranum.check(model, {"inputs": ranges})
    assert not report.findings, [(f.op_type, f.node) for f in report.findings]  # exp(256) otherwise
    lo, hi = report.analysis.bounds("d")
    assert hi.max() <= 0.01  # at most 0, up to the running sums' rounding (gamma_16 of 512)
    assert lo.min() >= -16 * 16.0 * 1.001  # the fifteen increments after position 0, each >= -16
    assert np.all(lo[:, -1] >= -1e-5)  # c_j - c_j
    _sampled_inside(model, ranges, report.analysis, ["d", "y"])


# ------------------------------------------------------------------------------ softmax denominators
def _softmax_by_hand(opset: int, max_axes: str, sum_axes: str, keepdims: int = 1, log_of_input: bool = False
                     ) -> onnx.ModelProto:
    """exp(x - max(x)) / sum(exp(x - max(x))): the softmax people write, and onnxruntime's inlined Softmax;
    ``log_of_input``: x is the log of the graph input (-inf where it is 0)."""
    if opset >= 18:
        peak = f"mx = Constant<value = int64[{len(max_axes.split(','))}] {{{max_axes}}}>()\n" \
               f"        m = ReduceMax<keepdims = {keepdims}>(x, mx)"
    else:
        peak = f"m = ReduceMax<axes = [{max_axes}], keepdims = {keepdims}>(x)"
    body = f"""
        {"x = Log(u)" if log_of_input else ""}
        {peak}
        d = Sub(x, m)
        e = Exp(d)
        sx = Constant<value = int64[{len(sum_axes.split(','))}] {{{sum_axes}}}>()
        s = ReduceSum<keepdims = 1>(e, sx)
        y = Div(e, s)"""
    return onnx.parser.parse_model(f'<ir_version: 8, opset_import: ["" : {opset}]>\n'
                                   f"g (float[3,4,6] {'u' if log_of_input else 'x'}) => (float[3,4,6] y) {{{body}\n}}")


@pytest.mark.parametrize("opset, max_axes, sum_axes", [(17, "2", "2"), (18, "-1", "2"), (18, "2", "1,2"),
                                                       (13, "1", "1")])
def test_a_sum_of_exponentials_of_differences_with_their_maximum_is_at_least_one(opset, max_axes, sum_axes) -> None:
    """Each sum holds exp(0) from the maximum's element: the division is safe (it was reported, the sum's
    interval reaching 0 once x spans more than the exponent's underflow)."""
    model = _softmax_by_hand(opset, max_axes, sum_axes)
    ranges = {"x": [-200.0, 200.0]}
    report = ranum.check(model, {"inputs": ranges})
    assert not report.findings, [(f.op_type, f.node) for f in report.findings]
    assert report.analysis.bounds("s")[0].min() >= 1.0 - 2.0**-20
    _sampled_inside(model, ranges, report.analysis, ["s", "y"])


@pytest.mark.parametrize("max_axes, sum_axes, keepdims", [("1", "2", 1), ("1,2", "2", 1), ("2", "2", 0)])
def test_a_sum_that_misses_the_maximums_axes_or_broadcasts_it_otherwise_keeps_its_interval(max_axes, sum_axes,
                                                                                          keepdims) -> None:
    """Summed over another axis than the maximum's (a sum need not hold the maximum), or a maximum without
    its axes kept (then it broadcasts onto other elements): the division stays a finding."""
    model = _softmax_by_hand(17, max_axes, sum_axes, keepdims)
    if keepdims == 0:  # [3,4] against [3,4,6]: broadcast onto the last two axes needs a matching shape
        model = _softmax_by_hand(17, "0", sum_axes, keepdims)
    report = ranum.check(model, {"inputs": {"x": [-200.0, 200.0]}})
    assert "Div" in [f.op_type for f in report.findings]  # (and Exp: x - m is not <= 0 without keepdims)
    assert report.analysis.bounds("s")[0].min() == 0.0


def test_a_softmax_by_hand_over_values_that_can_be_infinite_keeps_a_finding() -> None:
    """A row of only -inf (x = log(u), u in [0, e]) gives x - max = -inf - (-inf) = NaN: the floor of the sum
    does not hide it, the Exp of the unbounded difference is a finding (the difference keeps no sign without a
    finite operand)."""
    report = ranum.check(_softmax_by_hand(17, "2", "2", log_of_input=True), {"inputs": {"u": [0.0, math.e]}})
    assert [f.op_type for f in report.findings] == ["Log", "Exp"]


# TensorFlow's reduce_logsumexp as tf2onnx writes it: the maximum guarded by is_finite, the select lowered
# into arithmetic (Cast(c) * m + Cast(!c) * 0), then log(sum(exp(x - guarded))) + guarded
LOGSUMEXP_TF2ONNX = """
        m = ReduceMax<axes = [1], keepdims = 1>(x)
        nan = IsNaN(m)
        inf = IsInf(m)
        bad = Or(inf, nan)
        ok = Not(bad)
        notok = Not(ok)
        zero = Constant<value = float {0.0}>()
        w_bad = Cast<to = 1>(notok)
        picked_zero = Mul(zero, w_bad)
        w_ok = Cast<to = 1>(ok)
        picked_m = Mul(w_ok, m)
        guarded = Add(picked_m, picked_zero)
        d = Sub(x, guarded)
        e = Exp(d)
        ax = Constant<value = int64[1] {1}>()
        s = ReduceSum<keepdims = 1>(e, ax)
        l = Log(s)
        y = Add(l, guarded)"""


def test_tf2onnx_logsumexp_is_safe_and_sound() -> None:
    """The maximum of finite values is never NaN or infinite, so the guard selects it exactly: x - guarded
    is at most 0 and the sum at least 1 (an Exp overflow and a Log of 0 were reported)."""
    model = _graph("float[4,8] x", "float[4,1] y", LOGSUMEXP_TF2ONNX)
    ranges = {"x": [-400.0, 400.0]}
    report = ranum.check(model, {"inputs": ranges})
    assert not report.findings, [(f.op_type, f.node) for f in report.findings]
    assert report.analysis.bounds("ok")[0].min() == 1 and report.analysis.bounds("d")[1].max() <= 0.0
    _sampled_inside(model, ranges, report.analysis, ["d", "s", "y"])


_LSE_FORMS = {
    "tf2onnx": LOGSUMEXP_TF2ONNX + "\n        z = Sub(x, y)",
    "ReduceLogSumExp": "\n        y = ReduceLogSumExp<axes = [1], keepdims = 1>(x)\n        z = Sub(x, y)",
}


@pytest.mark.parametrize("form", list(_LSE_FORMS))
def test_a_value_minus_its_log_sum_exp_is_at_most_a_rounding_above_zero(form: str) -> None:
    """fivo's normalised weights exp(w - logsumexp(w)): each sum holds exp(w_i - m), so the exponent is at
    most a few units of rounding above 0 however wide w's range (a false Exp overflow before)."""
    model = _graph("float[4,8] x", "float[4,8] p", _LSE_FORMS[form] + "\n        p = Exp(z)")
    ranges = {"x": [-1e4, 1e4]}
    report = ranum.check(model, {"inputs": ranges})
    assert not report.findings, [(f.op_type, f.node) for f in report.findings]
    assert 0.0 <= report.analysis.bounds("z")[1].max() < 0.05
    _sampled_inside(model, ranges, report.analysis, ["z", "p"])
    dominant = np.full((4, 8), -1e4, np.float32)  # one element far above the rest: z = 0 up to rounding
    dominant[:, 0] = [1e4, 9999.9, 1.5, -7.25]
    tied = np.full((4, 8), 9876.5, np.float32)  # log(8) above each
    for x in (dominant, tied):
        values = Runner(model).run({"x": x})
        lo, hi = report.analysis.bounds("z")
        assert ((lo <= values["z"]) & (values["z"] <= hi)).all()


def test_a_value_minus_the_log_sum_exp_of_another_keeps_its_finding() -> None:
    model = _graph("float[4,8] x, float[4,8] o", "float[4,8] p", """
        y = ReduceLogSumExp<axes = [1], keepdims = 1>(o)
        z = Sub(x, y)
        p = Exp(z)""")
    report = ranum.check(model, {"inputs": {"x": [-1e4, 1e4], "o": [-1e4, 1e4]}})
    assert [f.op_type for f in report.findings] == ["Exp"]


# tf2onnx's sparse_softmax_cross_entropy_with_logits: the target's probability picked by a one-hot mask
SPARSE_CROSS_ENTROPY = """
        m = ReduceMax<axes = [-1], keepdims = 1>(z)
        d = Sub(z, m)
        e = Exp(d)
        last = Constant<value = int64[1] {-1}>()
        total = ReduceSum<keepdims = 0>(e, last)
        wide = Cast<to = 7>(t)
        u = Unsqueeze(wide, last)
        zero = Constant<value = int64 {0}>()
        depth = Constant<value = int64 {10}>()
        one = Constant<value = int64 {1}>()
        ids = Range(zero, depth, one)
        hit = Equal(u, ids)
        mask = Cast<to = 1>(hit)
        picked = Mul(mask, e)
        p = ReduceSum<keepdims = 0>(picked, last)
        q = Div(p, total)
        y = Log(q)"""


@pytest.mark.parametrize(("targets", "logits", "findings"), [((0, 9), 10.0, []), ((0, 10), 10.0, ["Log"]),
                                                              ((0, 9), 100.0, ["Log"])])
def test_a_one_hot_pick_of_non_negative_values_is_at_least_the_rows_smallest(targets, logits, findings) -> None:
    """Each row's mask holds a 1 where every target is a class id: the picked sum is at least the row's
    smallest exp (about e^-20 for logits in [-10, 10]), so the log is safe (a false log of 0 before). A target
    of 10 (no such class) picks nothing, and logits 200 apart underflow the exp: both stay findings."""
    model = _graph("float[2,10] z, int32[2] t", "float[2] y", SPARSE_CROSS_ENTROPY)
    ranges = {"z": [-logits, logits], "t": list(targets)}
    report = ranum.check(model, {"inputs": ranges})
    assert [f.op_type for f in report.findings] == findings, [(f.op_type, f.node) for f in report.findings]
    if not findings:
        runner, rng = Runner(model), np.random.default_rng(0)
        lo, hi = report.analysis.bounds("p")
        for _ in range(20):
            feeds = {"z": rng.uniform(-logits, logits, (2, 10)).astype(np.float32),
                     "t": rng.integers(0, 10, 2).astype(np.int32)}
            value = runner.run(feeds)["p"]
            assert ((lo <= value) & (value <= hi)).all()


def test_is_nan_stays_undecided_where_a_nan_or_an_infinity_can_flow_in() -> None:
    """Downstream of a hazard that can fire (0 / 0 here), or of an operand that can be infinite, a value can
    be NaN: IsNaN keeps [0, 1], so that a guard's replacement value stays in the bounds."""
    model = _graph("float[4] a, float[4] b", "float[4] y, float[4] z", """
        q = Div(a, b)
        n = IsNaN(q)
        zero = Constant<value = float {0.0}>()
        y = Where(n, zero, q)
        s = Sub(a, b)
        m = IsNaN(s)
        z = Where(m, zero, s)""")
    report = ranum.check(model, {"inputs": {"a": [0.0, 1.0], "b": [0.0, 1.0]}})
    assert report.analysis.bounds("n")[1].max() == 1  # 0 / 0
    assert report.analysis.bounds("m")[1].max() == 0  # a difference of finite values
    exponentials = _graph("float[4] a, float[4] b", "float[4] z", """
        ea = Exp(a)
        eb = Exp(b)
        s = Sub(ea, eb)
        m = IsNaN(s)
        zero = Constant<value = float {0.0}>()
        z = Where(m, zero, s)""")
    infinite = ranum.check(exponentials, {"inputs": {"a": [1.0, 100.0], "b": [1.0, 100.0]}})
    assert infinite.analysis.bounds("m")[1].max() == 1  # inf - inf (each Exp can overflow)


@pytest.mark.parametrize("body", [
    "one = Constant<value = float {1.0}>()\n        g = Mul(one, m)",
    "zero = Constant<value = float {0.0}>()\n        g = Add(m, zero)",
    "zero = Constant<value = float {0.0}>()\n        g = Sub(m, zero)",
    "t = Constant<value = bool {1}>()\n        zero = Constant<value = float {0.0}>()\n        g = Where(t, m, zero)",
    "g = Identity(m)",
    "shape = Constant<value = int64[2] {4, 1}>()\n        g = Reshape(m, shape)",
])
def test_a_maximum_passed_through_a_neutral_node_keeps_the_difference_signed(body: str) -> None:
    model = _graph("float[4,8] k", "float[4,8] y", f"""
        m = ReduceMax<axes = [1], keepdims = 1>(k)
        {body}
        d = Sub(k, g)
        y = Exp(d)""")
    ranges = {"k": [-100.0, 100.0]}
    report = ranum.check(model, {"inputs": ranges})
    assert not report.findings, [(f.op_type, f.node) for f in report.findings]
    _sampled_inside(model, ranges, report.analysis, ["d", "y"])


def test_a_maximum_scaled_by_a_factor_other_than_one_is_not_passed_through() -> None:
    model = _graph("float[4,8] k", "float[4,8] y", """
        m = ReduceMax<axes = [1], keepdims = 1>(k)
        half = Constant<value = float {0.5}>()
        g = Mul(half, m)
        d = Sub(k, g)
        y = Exp(d)""")
    assert [f.op_type for f in ranum.check(model, {"inputs": {"k": [-100.0, 100.0]}}).findings] == ["Exp"]


MIXTURES = {
    "keras-gru": "p = Mul(z, a)\n        w = Sub(one, z)\n        q = Mul(w, b)\n        y = Add(p, q)",
    "swapped": "p = Mul(a, z)\n        w = Sub(one, z)\n        q = Mul(b, w)\n        y = Add(q, p)",
    "recomputed-gate": "p = Mul(z, a)\n        z2 = Sigmoid(g)\n        w = Sub(one, z2)\n        q = Mul(w, b)\n"
                       "        y = Add(p, q)",
}


@pytest.mark.parametrize("form", list(MIXTURES))
def test_a_convex_combination_stays_between_its_values_and_is_sound(form: str) -> None:
    """z * a + (1 - z) * b with z = sigmoid(g) lies between a and b: [-1, 3] here, where interval
    arithmetic adds the products' bounds, [-1, 4]."""
    model = _graph("float[4,8] g, float[4,8] a, float[1,8] b", "float[4,8] y", f"""
        one = Constant<value = float {{1.0}}>()
        z = Sigmoid(g)
        {MIXTURES[form]}""")
    ranges = {"g": [-30.0, 30.0], "a": [-1.0, 1.0], "b": [2.0, 3.0]}
    report = ranum.check(model, {"inputs": ranges})
    lo, hi = report.analysis.bounds("y")
    assert lo.min() >= -1.0 - 1e-5 and hi.max() <= 3.0 + 1e-5
    _sampled_inside(model, ranges, report.analysis, ["y"])


def test_a_combination_whose_weight_leaves_zero_to_one_keeps_its_interval() -> None:
    model = _graph("float[4,8] g, float[4,8] a, float[1,8] b", "float[4,8] y", """
        one = Constant<value = float {1.0}>()
        z = Tanh(g)
        p = Mul(z, a)
        w = Sub(one, z)
        q = Mul(w, b)
        y = Add(p, q)""")
    report = ranum.check(model, {"inputs": {"g": [-30.0, 30.0], "a": [-1.0, 1.0], "b": [2.0, 3.0]}})
    assert report.analysis.bounds("y")[1].max() >= 7.0  # z in [-1, 1]: (1 - z) b reaches 6


def _gru_like_loop(steps: int) -> onnx.ModelProto:
    """h <- z * h + (1 - z) * tanh(x_t u + h v), z = sigmoid(x_t + h), over ``steps`` counted iterations."""
    from onnx import TensorProto, helper, numpy_helper

    body = helper.make_graph(
        [helper.make_node("Gather", ["xs", "i"], ["x_t"], axis=0),
         helper.make_node("Add", ["x_t", "h"], ["gate_in"]), helper.make_node("Sigmoid", ["gate_in"], ["z"]),
         helper.make_node("Mul", ["x_t", "u"], ["xu"]), helper.make_node("Mul", ["h", "v"], ["hv"]),
         helper.make_node("Add", ["xu", "hv"], ["cand_in"]), helper.make_node("Tanh", ["cand_in"], ["cand"]),
         helper.make_node("Mul", ["z", "h"], ["kept"]), helper.make_node("Sub", ["one", "z"], ["w"]),
         helper.make_node("Mul", ["w", "cand"], ["new"]), helper.make_node("Add", ["kept", "new"], ["h_next"]),
         helper.make_node("Identity", ["cond"], ["cond_out"])],
        "step", [helper.make_tensor_value_info("i", TensorProto.INT64, []),
                 helper.make_tensor_value_info("cond", TensorProto.BOOL, []),
                 helper.make_tensor_value_info("h", TensorProto.FLOAT, [2, 4])],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("h_next", TensorProto.FLOAT, [2, 4])],
        initializer=[numpy_helper.from_array(np.array(1.0, np.float32), "one")])
    graph = helper.make_graph(
        [helper.make_node("Loop", ["n", "", "h0"], ["h_end"], body=body),
         helper.make_node("Mul", ["h_end", "scale"], ["logit"]), helper.make_node("Exp", ["logit"], ["y"])],
        "gru", [helper.make_tensor_value_info("xs", TensorProto.FLOAT, [steps, 2, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 4])],
        initializer=[numpy_helper.from_array(np.array(steps, np.int64), "n"),
                     numpy_helper.from_array(np.zeros((2, 4), np.float32), "h0"),
                     numpy_helper.from_array(np.array(1.5, np.float32), "u"),
                     numpy_helper.from_array(np.array(0.5, np.float32), "v"),
                     numpy_helper.from_array(np.array(80.0, np.float32), "scale")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_a_gated_recurrent_state_stays_within_its_candidates_range_over_a_loop() -> None:
    """The state is a convex combination of itself and a tanh: it stays in [-1, 1], so exp(80 h) cannot
    overflow; without the relation its bound grew by about 1 per step and exp overflowed."""
    model = _gru_like_loop(16)
    ranges = {"xs": [-3.0, 3.0]}
    report = ranum.check(model, {"inputs": ranges})
    assert not report.findings, [(f.op_type, f.node) for f in report.findings]
    lo, hi = report.analysis.bounds("h_end")
    assert lo.min() >= -1.001 and hi.max() <= 1.001
    _sampled_inside(model, ranges, report.analysis, ["h_end", "y"])


@pytest.mark.parametrize("negated_first", [False, True])
def test_a_select_lowered_into_arithmetic_stays_between_its_branches(negated_first: bool) -> None:
    """tf2onnx writes where(c, a, b) as Cast(c) * a + Cast(!c) * b: between a in [1, 2] and b = 3, so the
    Log of it is safe (interval arithmetic gave [0, 5], and a Log of 0)."""
    weights = "wn = Cast<to = 1>(nc)\n        wc = Cast<to = 1>(c)" if negated_first else \
        "wc = Cast<to = 1>(c)\n        wn = Cast<to = 1>(nc)"
    model = _graph("float[4,8] g, float[4,8] a", "float[4,8] y", f"""
        zero = Constant<value = float {{0.0}}>()
        three = Constant<value = float {{3.0}}>()
        c = Greater(g, zero)
        nc = Not(c)
        {weights}
        p = Mul(wc, a)
        q = Mul(three, wn)
        s = Add(q, p)
        y = Log(s)""")
    ranges = {"g": [-1.0, 1.0], "a": [1.0, 2.0]}
    report = ranum.check(model, {"inputs": ranges})
    assert not report.findings, [(f.op_type, f.node) for f in report.findings]
    lo, hi = report.analysis.bounds("s")
    assert lo.min() >= 1.0 - 1e-5 and hi.max() <= 3.0 + 1e-5
    _sampled_inside(model, ranges, report.analysis, ["s", "y"])


CENTRED = {
    # Keras LayerNormalization through tf2onnx with gamma = 1 and beta = 0 folded away
    "folded": ("y = Add(xs, ms)", "s = Expand(r, shape)"),
    # tf.nn.batch_normalization: x * inv + (beta - m * inv)
    "beta-minus": ("mi = Mul(m, s)\n        off = Sub(beta, mi)\n        y = Add(xs, off)", "s = Mul(r, gamma)"),
    # Keras 3: -m * inv + beta, then x * inv + that
    "plus-beta": ("off = Add(ms, beta)\n        y = Add(off, xs)", "s = Mul(gamma, r)"),
}


@pytest.mark.parametrize("form", list(CENTRED))
def test_a_normalisation_written_as_two_products_is_bounded_by_sqrt_n_and_sound(form: str) -> None:
    """x * s - m * s with s = gamma / sqrt(mean((x - m)^2) + eps) is (x - m) * s: within beta +- sqrt(16) |gamma|
    (plus the products' cancellation error), where intervals gave |x| / sqrt(eps), about 3e4 here."""
    tail, scale = CENTRED[form]
    model = _graph("float[2,16] x", "float[2,16] y", f"""
        m = ReduceMean<axes = [1], keepdims = 1>(x)
        d = Sub(x, m)
        dd = Mul(d, d)
        var = ReduceMean<axes = [1], keepdims = 1>(dd)
        eps = Constant<value = float {{0.001}}>()
        ve = Add(var, eps)
        root = Sqrt(ve)
        r = Reciprocal(root)
        shape = Constant<value = int64[2] {{2, 1}}>()
        gamma = Constant<value = float[16] {{{", ".join(["1.5"] * 8 + ["-0.5"] * 8)}}}>()
        beta = Constant<value = float[16] {{{", ".join(["0.25"] * 16)}}}>()
        {scale}
        xs = Mul(x, s)
        nm = Neg(m)
        ms = Mul(nm, s)
        {tail}""")
    ranges = {"x": [-1000.0, 1000.0]}
    report = ranum.check(model, {"inputs": ranges})
    lo, hi = report.analysis.bounds("y")
    gain = 1.0 if form == "folded" else 1.5
    offset = 0.0 if form == "folded" else 0.25
    assert lo.min() >= offset - 4 * gain - 0.1 and hi.max() <= offset + 4 * gain + 0.1
    _sampled_inside(model, ranges, report.analysis, ["y"])


def test_two_products_of_another_tensor_than_the_centred_one_keep_their_interval() -> None:
    model = _graph("float[2,16] x, float[2,16] z", "float[2,16] y", """
        m = ReduceMean<axes = [1], keepdims = 1>(x)
        d = Sub(x, m)
        dd = Mul(d, d)
        var = ReduceMean<axes = [1], keepdims = 1>(dd)
        eps = Constant<value = float {0.001}>()
        ve = Add(var, eps)
        root = Sqrt(ve)
        s = Reciprocal(root)
        zs = Mul(z, s)
        nm = Neg(m)
        ms = Mul(nm, s)
        y = Add(zs, ms)""")
    report = ranum.check(model, {"inputs": {"x": [-1000.0, 1000.0], "z": [-1000.0, 1000.0]}})
    assert report.analysis.bounds("y")[1].max() > 1000.0


# RWKV's stable recurrence (transformers' rwkv_linear_attention_cpu), two steps over 4 channels: a running
# maximum seeded at -1e38 keeps every exponent <= 0, and one exponential of each pair is exactly 1
RWKV_STEPS = """
<ir_version: 8, opset_import: ["" : 17]>
g (float[4] k0, float[4] v0, float[4] k1, float[4] v1) => (float[4] o0, float[4] o1)
<float[4] seed = {-1e38, -1e38, -1e38, -1e38}, float[4] zeros = {0, 0, 0, 0},
 float[4] first = {0.5, -0.25, 1.0, 0.0}, float[4] decay = {-0.5, -1.0, -2.0, -0.1}> {
    a0 = Add (k0, first)
    m0 = Max (seed, a0)
    p0 = Sub (seed, m0)
    e0 = Exp (p0)
    q0 = Sub (a0, m0)
    f0 = Exp (q0)
    n0 = Mul (e0, zeros)
    w0 = Mul (f0, v0)
    num0 = Add (n0, w0)
    d0 = Mul (e0, zeros)
    den0 = Add (d0, f0)
    o0 = Div (num0, den0)
    s0 = Add (seed, decay)
    ms0 = Max (s0, k0)
    x0 = Sub (s0, ms0)
    g0 = Exp (x0)
    y0 = Sub (k0, ms0)
    h0 = Exp (y0)
    gn0 = Mul (g0, zeros)
    hv0 = Mul (h0, v0)
    ns1 = Add (gn0, hv0)
    gd0 = Mul (g0, zeros)
    ds1 = Add (gd0, h0)
    a1 = Add (k1, first)
    m1 = Max (ms0, a1)
    p1 = Sub (ms0, m1)
    e1 = Exp (p1)
    q1 = Sub (a1, m1)
    f1 = Exp (q1)
    n1 = Mul (e1, ns1)
    w1 = Mul (f1, v1)
    num1 = Add (n1, w1)
    d1 = Mul (e1, ds1)
    den1 = Add (d1, f1)
    o1 = Div (num1, den1)
}
"""


@pytest.mark.parametrize("weights", ["exact", "derived"])
def test_rwkv_s_stable_recurrence_has_no_false_division_or_overflow(weights: str) -> None:
    """Before: every exponent's bounds reached above 0 once the seed's interval met the keys', and both
    exponentials of a pair could underflow at once, so each denominator could be 0 (RWKV with exact weights:
    91 findings, none real). ``x - Max(s, x)`` is ``min(0, x - s)`` (exactly 0 at the first step), and
    ``S1 exp(P - M) + S2 exp(Q - M)`` with ``M = Max(P, Q)`` is at least ``min(S1, S2)``. The seed is a
    constant in both modes (a magnitude no weight has)."""
    model = onnx.parser.parse_model(RWKV_STEPS)
    spec = {"inputs": {n: [-30.0, 30.0] for n in ("k0", "v0", "k1", "v1")}, "weights": {"default": weights}}
    report = ranum.check(model, spec)
    assert not report.findings, [(f.node, f.hazard_id) for f in report.findings]
    lo, hi = report.analysis.bounds("den1")
    assert lo.min() >= 1.0
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    for _ in range(20):
        feeds = {n: rng.uniform(-30, 30, 4).astype(np.float32) for n in ("k0", "v0", "k1", "v1")}
        values = dict(zip(["o0", "o1"], session.run(None, feeds)))
        for name in ("o0", "o1"):
            lo, hi = report.analysis.bounds(name)
            assert np.all((values[name] >= lo) & (values[name] <= hi)), name


# chunked linear attention's pairwise decay (Qwen3-Next, gated DeltaNet): exp(c_i - c_j) for a running sum c of
# non-positive decays, the pairs above the diagonal masked to -inf first
PAIRWISE_DECAY = """
<ir_version: 8, opset_import: ["" : 17]>
g (float[2, 3, 8] decay) => (float[2, 3, 8, 8] y)
<int64 axis = {2}, int64[1] last = {3}, int64[1] before = {2}, float minf = {-inf},
 bool[8, 8] upper = {0,1,1,1,1,1,1,1, 0,0,1,1,1,1,1,1, 0,0,0,1,1,1,1,1, 0,0,0,0,1,1,1,1,
                     0,0,0,0,0,1,1,1, 0,0,0,0,0,0,1,1, 0,0,0,0,0,0,0,1, 0,0,0,0,0,0,0,0}> {
    c = CumSum (decay, axis)
    ci = Unsqueeze (c, last)
    cj = Unsqueeze (c, before)
    d = Sub (ci, cj)
    masked = Where (upper, minf, d)
    y = Exp (masked)
}
"""


def test_pairwise_differences_of_a_running_sum_are_bounded_by_its_stretches() -> None:
    """c_i - c_j is the sum of the decays over (j, i] below the diagonal (at most 0 here), minus the sum over
    (i, j] above it, and exactly 0 on it: exp of the masked pairs cannot overflow (before: c's bounds alone,
    [-40, 0] minus [-40, 0], reached 40 and exp of it was a finding)."""
    model = onnx.parser.parse_model(PAIRWISE_DECAY)
    report = ranum.check(model, {"inputs": {"decay": [-5.0, 0.0]}})
    assert not report.findings, [(f.node, f.hazard_id) for f in report.findings]
    lo, hi = report.analysis.bounds("d")
    below = np.tril(np.ones((8, 8), dtype=bool))
    assert hi[..., below].max() <= 1e-3 and np.all(np.diagonal(hi, axis1=-2, axis2=-1) == 0)
    assert lo[0, 0, 7, 0] <= -35 and hi[0, 0, 0, 7] >= 35  # seven decays of [-5, 0] either way
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    for scale in (0.01, 1.0, 5.0):
        decay = -rng.uniform(0, scale, (2, 3, 8)).astype(np.float32)
        (y,) = session.run(None, {"decay": decay})
        y_lo, y_hi = report.analysis.bounds("y")
        assert np.all((y >= y_lo) & (y <= y_hi))


ZERO_GUARDS = {
    # a divisor kept away from 0 by the guard on it (kornia's colour conversions, a count's where(n == 0, 1, n))
    "equal-false-branch": ("c = Equal(d, zero)\n        g = Where(c, one, d)", True),
    "equal-constant-first": ("c = Equal(zero, d)\n        g = Where(c, one, d)", True),
    "strict-greater": ("c = Greater(d, zero)\n        g = Where(c, d, one)", True),
    "strict-less-false-branch": ("c = Less(zero, d)\n        g = Where(c, d, one)", True),
    "closed-greater-or-equal": ("c = GreaterOrEqual(d, zero)\n        g = Where(c, d, one)", False),
    "less-or-equal-false-branch": ("c = LessOrEqual(d, zero)\n        g = Where(c, one, d)", True),
}


@pytest.mark.parametrize("form", list(ZERO_GUARDS))
def test_a_guard_that_excludes_zero_keeps_its_branch_off_zero(form: str) -> None:
    """d in [0, 1]: a strict comparison with 0, or an inequality, leaves the selected d at least the smallest
    subnormal (a closed comparison lets 0 through); onnxruntime agrees on the bounds."""
    guard, safe = ZERO_GUARDS[form]
    model = onnx.parser.parse_model(f"""
    <ir_version: 8, opset_import: ["" : 17]>
    g (float[4] d) => (float[4] g) <float zero = {{0.0}}, float one = {{1.0}}> {{
        {guard}
    }}""")
    lo, hi = ranum.analyze(model, {"inputs": {"d": [0.0, 1.0]}}).bounds("g")
    tiny = float(np.nextafter(np.float32(0), np.float32(1)))
    assert float(lo.min()) == (tiny if safe else 0.0) and float(hi.max()) == 1.0
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    d = np.array([0.0, tiny, 0.5, 1.0], np.float32)
    (g,) = session.run(None, {"d": d})
    assert np.all((g >= lo) & (g <= hi)) and np.all(g > 0) == safe


def test_an_equality_guard_pins_its_true_branch_to_the_constant() -> None:
    model = onnx.parser.parse_model("""
    <ir_version: 8, opset_import: ["" : 17]>
    g (float[4] d, float[4] e) => (float[4] g) <float half = {0.5}> {
        c = Equal(d, half)
        g = Where(c, d, e)
    }""")
    lo, hi = ranum.analyze(model, {"inputs": {"d": [0.0, 1.0], "e": [2.0, 3.0]}}).bounds("g")
    assert (float(lo.min()), float(hi.max())) == (0.5, 3.0)


MIN_MAX_SPANS = {
    # a min-max scaling: (x - min) / (max - min + eps), over an axis, over everything, and elementwise
    "reduced-axis": ("hi = ReduceMax<axes = [1], keepdims = 1>(x)\n        lo = ReduceMin<axes = [1], keepdims = 1>(x)",
                     True),
    "reduced-opset-18-input": ("hi = ReduceMax<keepdims = 0>(x, ax)\n        lo = ReduceMin<keepdims = 0>(x, ax)",
                               True),
    "reduced-all": ("hi = ReduceMax<keepdims = 0>(x)\n        lo = ReduceMin<keepdims = 0>(x)", True),
    "binary": ("hi = Max(x, y)\n        lo = Min(y, x)", True),
    "other-axes": ("hi = ReduceMax<axes = [1], keepdims = 1>(x)\n        lo = ReduceMin<axes = [0], keepdims = 1>(x)",
                   False),
    "other-tensor": ("hi = ReduceMax<axes = [1], keepdims = 1>(x)\n        lo = ReduceMin<axes = [1], keepdims = 1>(y)",
                     False),
}


@pytest.mark.parametrize("form", list(MIN_MAX_SPANS))
def test_the_span_of_a_maximum_and_minimum_of_the_same_values_is_not_negative(form: str) -> None:
    extremes, ordered = MIN_MAX_SPANS[form]
    opset = 18 if "ax)" in extremes else 17  # ReduceMax's axes became an operand at opset 18
    model = onnx.parser.parse_model(f"""
    <ir_version: 8, opset_import: ["" : {opset}]>
    g (float[3, 5] x, float[3, 5] y) => (float[Z] z) <float eps = {{1e-6}}, int64[1] ax = {{1}}> {{
        {extremes}
        span = Sub(hi, lo)
        d = Add(span, eps)
        z = Div(eps, d)
    }}""")
    spec = {"inputs": {"x": [-3.0, 3.0], "y": [-3.0, 3.0]}}
    report = ranum.check(model, spec)
    lo, hi = report.analysis.bounds("span")
    assert (float(lo.min()) >= 0.0) == ordered and (not report.findings) == ordered
    rng = np.random.default_rng(0)
    feeds = {"x": rng.uniform(-3, 3, (3, 5)).astype(np.float32), "y": rng.uniform(-3, 3, (3, 5)).astype(np.float32)}
    feeds["x"][0] = 1.5  # a constant row: its span is exactly 0
    span = Runner(model).run(feeds)["span"]
    assert np.all((span >= lo) & (span <= hi))


@pytest.mark.parametrize("twice", [True, False])
def test_a_product_of_two_equal_computations_is_a_square(twice: bool) -> None:
    """(x - y) * (x - y) with the difference written twice (TorchScript exports each use): not negative, so
    log(1 + d * d) is safe; a product of different differences keeps its sign unknown."""
    second = "e = Sub(x, y)" if twice else "e = Sub(y, x)"
    model = onnx.parser.parse_model(f"""
    <ir_version: 8, opset_import: ["" : 17]>
    g (float[4] x, float[4] y) => (float[4] z) <float one = {{1.0}}> {{
        d = Sub(x, y)
        {second}
        p = Mul(d, e)
        s = Add(p, one)
        z = Log(s)
    }}""")
    report = ranum.check(model, {"inputs": {"x": [-1.0, 1.0], "y": [-1.0, 1.0]}})
    lo, _ = report.analysis.bounds("p")
    assert (float(lo.min()) == 0.0) == twice and (not report.findings) == twice


def _dice(smooth: float, mask: str = "t") -> onnx.ModelProto:
    """MONAI's Dice loss as TorchScript exports it: fp = sum(p) - sum(p * t), fn = sum(t) - sum(p * t), then
    (2 tp + s) / (2 (tp + fp / 2 + fn / 2) + s)."""
    return onnx.parser.parse_model(f"""
    <ir_version: 8, opset_import: ["" : 17]>
    g (float[1, 2, 4, 4] x, float[1, 2, 4, 4] t, float[1, 2, 4, 4] u) => (float[1, 2] fp, float[1, 2] loss)
    <int64[2] ax = {{2, 3}}, float half = {{0.5}}, float two = {{2.0}}, float s = {{{smooth}}}> {{
        p = Sigmoid(x)
        pt = Mul(p, {mask})
        tp = ReduceSum<keepdims = 0>(pt, ax)
        sp = ReduceSum<keepdims = 0>(p, ax)
        fp = Sub(sp, tp)
        st = ReduceSum<keepdims = 0>(t, ax)
        fn = Sub(st, tp)
        hfp = Mul(fp, half)
        hfn = Mul(fn, half)
        a1 = Add(tp, hfp)
        a2 = Add(a1, hfn)
        d2 = Mul(a2, two)
        den = Add(d2, s)
        n2 = Mul(tp, two)
        num = Add(n2, s)
        loss = Div(num, den)
    }}""")


@pytest.mark.parametrize(("smooth", "mask", "safe"), [(1e-5, "t", True), (0.0, "t", False), (1e-5, "u", False)])
def test_a_sum_less_its_masked_part_is_not_negative(smooth: float, mask: str, safe: bool) -> None:
    """sum(p) - sum(p * t) >= 0 for p >= 0 and t in [0, 1] (sums in the same order keep the order term by
    term): a Dice loss with a smoothing term divides by at least that term. Without it the denominator can
    be 0; a mask read from another tensor u in [-1, 1] breaks the order."""
    model = _dice(smooth, mask)
    spec = {"inputs": {"x": [-10.0, 10.0], "t": [0.0, 1.0], "u": [-1.0, 1.0]}}
    report = ranum.check(model, spec)
    assert (not report.findings) == safe
    lo, hi = report.analysis.bounds("fp")
    assert (float(lo.min()) >= 0.0) == (mask == "t")
    rng = np.random.default_rng(0)
    for t in (np.ones((1, 2, 4, 4), np.float32), rng.uniform(0, 1, (1, 2, 4, 4)).astype(np.float32)):
        feeds = {"x": rng.uniform(-10, 10, (1, 2, 4, 4)).astype(np.float32), "t": t,
                 "u": rng.uniform(-1, 1, (1, 2, 4, 4)).astype(np.float32)}
        fp = Runner(model).run(feeds)["fp"]
        assert np.all((fp >= lo) & (fp <= hi))


def _variance(eps: float) -> onnx.ModelProto:
    """var = mean(x * x) - mean(x) ** 2 over 16 values, then sqrt(var + eps) (a hand-written normalisation)."""
    return onnx.parser.parse_model(f"""
    <ir_version: 8, opset_import: ["" : 17]>
    g (float[2, 16] x) => (float[2, 1] var, float[2, 1] y) <float eps = {{{eps}}}, float two = {{2.0}}> {{
        sq = Mul(x, x)
        m2 = ReduceMean<axes = [1], keepdims = 1>(sq)
        m1 = ReduceMean<axes = [1], keepdims = 1>(x)
        m1sq = Pow(m1, two)
        var = Sub(m2, m1sq)
        ve = Add(var, eps)
        y = Sqrt(ve)
    }}""")


@pytest.mark.parametrize(("limit", "eps", "safe"), [(1.0, 1e-3, True), (1.0, 1e-7, False), (1000.0, 1e-3, False)])
def test_a_mean_of_squares_less_a_squared_mean_is_not_negative_up_to_rounding(limit: float, eps: float,
                                                                              safe: bool) -> None:
    """Jensen: the real difference is >= 0; the float one is above -(a few units of rounding) * mean(x^2), so an
    epsilon above that keeps the Sqrt safe, and large values (the formula's cancellation) keep the hazard."""
    model = _variance(eps)
    report = ranum.check(model, {"inputs": {"x": [-limit, limit]}})
    assert (not [f for f in report.findings if f.hazard_id == "sqrt-negative"]) == safe
    lo, hi = report.analysis.bounds("var")
    assert float(lo.min()) > -limit * limit * 1e-4
    rng = np.random.default_rng(0)
    for x in (rng.uniform(-limit, limit, (2, 16)), np.full((2, 16), limit * 0.7771), np.full((2, 16), -limit / 3)):
        var = Runner(model).run({"x": x.astype(np.float32)})["var"]
        assert np.all((var >= lo) & (var <= hi))


def _ssim_variance(kernel: str, copies: bool = False) -> onnx.ModelProto:
    """SSIM's local variance: a separable window (reflect padding, depthwise Convs) over x * x, less the
    square of the same window over x, plus C2; ``copies``: the mean's window is a second constant of the same
    values (TorchScript writes one per use)."""
    mean_h, mean_v = ("kh2", "kv2") if copies else ("kh", "kv")
    return onnx.parser.parse_model(f"""
    <ir_version: 8, opset_import: ["" : 17]>
    g (float[1, 3, 8, 8] x) => (float[1, 3, 8, 8] var, float[1, 3, 8, 8] z)
    <float c2 = {{0.0009}}, float one = {{1.0}}, int64[8] ph = {{0, 0, 0, 1, 0, 0, 0, 1}},
     int64[8] pv = {{0, 0, 1, 0, 0, 0, 1, 0}}, float[3, 1, 1, 3] kh = {{{kernel}}},
     float[3, 1, 3, 1] kv = {{{kernel}}}, float[3, 1, 1, 3] kh2 = {{{kernel}}}, float[3, 1, 3, 1] kv2 = {{{kernel}}}> {{
        sq = Mul(x, x)
        a0 = Pad<mode = "reflect">(sq, ph)
        a1 = Conv<group = 3>(a0, kh)
        a2 = Pad<mode = "reflect">(a1, pv)
        a = Conv<group = 3>(a2, kv)
        m0 = Pad<mode = "reflect">(x, ph)
        m1 = Conv<group = 3>(m0, {mean_h})
        m2 = Pad<mode = "reflect">(m1, pv)
        m = Conv<group = 3>(m2, {mean_v})
        msq = Mul(m, m)
        var = Sub(a, msq)
        d = Add(var, c2)
        z = Div(one, d)
    }}""")


@pytest.mark.parametrize("copies", [False, True])
@pytest.mark.parametrize(("kernel", "safe"), [("0.25, 0.5, 0.25, " * 2 + "0.25, 0.5, 0.25", True),
                                              ("-0.25, 1.5, -0.25, " * 2 + "-0.25, 1.5, -0.25", False)])
def test_a_local_variance_under_a_non_negative_window_is_not_negative_up_to_rounding(kernel: str, safe: bool,
                                                                                     copies: bool) -> None:
    """A window of weights >= 0 summing to 1 averages: 1 / (var + C2) is safe; a sharpening kernel does not."""
    model = _ssim_variance(kernel, copies)
    report = ranum.check(model, {"inputs": {"x": [0.0, 1.0]}, "weights": {"default": "exact"}})
    assert (not report.findings) == safe
    lo, hi = report.analysis.bounds("var")
    rng = np.random.default_rng(1)
    for x in (rng.uniform(0, 1, (1, 3, 8, 8)), np.full((1, 3, 8, 8), 0.3)):
        var = Runner(model).run({"x": x.astype(np.float32)})["var"]
        assert np.all((var >= lo) & (var <= hi))


@pytest.mark.parametrize(("divisor", "positive"), [("Mul(d, d)", True), ("Pow(d, two)", True), ("Abs(d)", True),
                                                   ("Relu(d)", False), ("Add(r, negzero)", False)])
@pytest.mark.parametrize("op", ["Reciprocal", "Div"])
def test_the_reciprocal_of_a_tensor_whose_zeros_are_positive_is_not_negative(divisor: str, positive: bool,
                                                                              op: str) -> None:
    """A PSNR: log(1 / mean((a - b)^2)). The mean of squares is +0 at worst (never -0), so its reciprocal is
    +inf there, not -inf, and the log never sees a negative value; Relu's zero, or a sum with -0, may be -0."""
    quotient = "q = Reciprocal(mse)" if op == "Reciprocal" else "q = Div(one, mse)"
    model = onnx.parser.parse_model(f"""
    <ir_version: 8, opset_import: ["" : 17]>
    g (float[2, 8] a, float[2, 8] b) => (float[2, 1] q, float[2, 1] z)
    <float two = {{2.0}}, float one = {{1.0}}, float negzero = {{-0.0}}> {{
        d = Sub(a, b)
        r = Relu(d)
        s = {divisor}
        mse = ReduceMean<axes = [1], keepdims = 1>(s)
        {quotient}
        z = Log(q)
    }}""")
    report = ranum.check(model, {"inputs": {"a": [0.0, 1.0], "b": [0.0, 1.0]}})
    found = {f.op_type for f in report.findings}
    assert op in found  # a mean of 0 is a real division by zero
    assert ("Log" not in found) == positive
    lo, hi = report.analysis.bounds("q")
    assert (float(lo.min()) > 0.99) == positive  # 1 / max(mse), rounded
    a = np.random.default_rng(0).uniform(0, 1, (2, 8)).astype(np.float32)
    values = Runner(model).run({"a": a, "b": np.concatenate([a[:1], a[1:] * 0.5])})  # a row of mse = 0
    q = values["q"]
    assert np.isinf(q[0]).all() and np.all((q >= lo) & (q <= hi))


def test_the_reciprocal_of_positive_zeros_keeps_the_divisor_block_grid() -> None:
    """A sum of squares with a different weight per column has a block per column, and its reciprocal's plain
    bounds ([-inf, inf] each) merge into one: the positive-zero bounds are on the divisor's grid (the Reshape
    behind failed on bounds of 8 values under one block's splits)."""
    weights = ", ".join(str(0.25 * (i // 8 + 1)) for i in range(64))
    model = onnx.parser.parse_model(f"""
    <ir_version: 8, opset_import: ["" : 17]>
    g (float[1, 8] s) => (float[1, 8, 1] y)
    <float[1, 8, 8] w = {{{weights}}}, int64[1] one = {{1}}, int64[1] two = {{2}}, int64[3] shape = {{1, 8, 1}}> {{
        v = Unsqueeze(s, one)
        m = Mul(w, v)
        p = Mul(m, m)
        r = ReduceSum<keepdims = 0>(p, two)
        q = Reciprocal(r)
        y = Reshape(q, shape)
    }}""")
    report = ranum.check(model, {"inputs": {"s": [-3.0, 3.0]}, "weights": {"default": "exact"}})
    assert not report.analysis.unsupported
    lo, hi = report.analysis.bounds("y")
    assert lo.shape == (1, 8, 1) and np.all(lo > 0) and np.all(np.isinf(hi))
    for s in (np.full((1, 8), 0.5, np.float32), np.zeros((1, 8), np.float32)):
        y = Runner(model).run({"s": s})["y"]
        assert np.all((y >= lo) & (y <= hi))


@pytest.mark.parametrize("widened", [False, True])
def test_a_branch_selected_where_it_is_not_infinite_is_finite(widened: bool) -> None:
    """MONAI's Generalized Dice weights: w = 1 / (sum t)^2, then w[isinf(w)] = 0 (TorchScript: IsInf of w cast
    to double, a Where): the kept w is finite, and positive (its zeros are +0)."""
    tested = "wd = Cast<to = 11>(w)\n        inf = IsInf(wd)" if widened else "inf = IsInf(w)"
    model = onnx.parser.parse_model(f"""
    <ir_version: 8, opset_import: ["" : 17]>
    g (float[2, 8] t) => (float[2, 1] kept) <float zero = {{0.0}}, int64[1] ax = {{1}}> {{
        s = ReduceSum<keepdims = 1>(t, ax)
        sq = Mul(s, s)
        w = Reciprocal(sq)
        {tested}
        kept = Where(inf, zero, w)
    }}""")
    report = ranum.check(model, {"inputs": {"t": [0.0, 1.0]}})
    lo, hi = report.analysis.bounds("kept")
    assert float(lo.min()) == 0.0 and np.isfinite(hi).all()
    t = np.random.default_rng(0).uniform(0, 1, (2, 8)).astype(np.float32)
    t[0] = 0.0  # w = inf there, replaced by 0
    kept = Runner(model).run({"t": t})["kept"]
    assert kept[0, 0] == 0.0 and np.all((kept >= lo) & (kept <= hi))


@pytest.mark.parametrize("guard", ["c = Equal(n, zero)\n        g = Where(c, one, n)",
                                   "c = Greater(n, zero)\n        g = Where(c, n, one)",
                                   "c = Less(n, one)\n        g = Where(c, one, n)"])
def test_an_integer_count_guarded_away_from_zero_is_at_least_one(guard: str) -> None:
    """A masked mean's count: where(n == 0, 1, n) (or n > 0, or not n < 1) is at least 1, so the mean's
    division is safe; integers step by one."""
    model = onnx.parser.parse_model(f"""
    <ir_version: 8, opset_import: ["" : 17]>
    g (int64[4] n, float[4] s) => (float[4] y) <int64 zero = {{0}}, int64 one = {{1}}> {{
        {guard}
        f = Cast<to = 1>(g)
        y = Div(s, f)
    }}""")
    report = ranum.check(model, {"inputs": {"n": [0, 10], "s": [-1.0, 1.0]}})
    lo, hi = report.analysis.bounds("g")
    assert (int(lo.min()), int(hi.max())) == (1, 10) and not report.findings
    values = Runner(model).run({"n": np.array([0, 1, 5, 10], np.int64), "s": np.ones(4, np.float32)})
    assert np.all((values["g"] >= lo) & (values["g"] <= hi))


NAN_TO_NUM = """
<ir_version: 8, opset_import: ["" : 18]>
g (float[6] a, float[6] b) => (float[6] y) <float zero = {0.0}, float low = {-3.4028234663852886e+38},
 float high = {3.4028234663852886e+38}> {
    q = Div(a, b)
    nan = IsNaN(q)
    w0 = Where(nan, zero, q)
    negative = Less(q, zero)
    infinite = IsInf(q)
    neg_inf = And(negative, infinite)
    w1 = Where(neg_inf, low, w0)
    positive = Greater(q, zero)
    pos_inf = And(positive, infinite)
    y = Where(pos_inf, high, w1)
}
"""


def test_nan_to_num_as_the_dynamo_exporter_writes_it_is_finite() -> None:
    """torch.nan_to_num: NaN to 0, then -inf and +inf (isneginf, isposinf: IsInf and a sign test of the
    quotient) to the extreme finite values; each step selects from the previous one, whose infinities are the
    quotient's. The result is finite (the division by zero before it stays a finding)."""
    model = onnx.parser.parse_model(NAN_TO_NUM)
    report = ranum.check(model, {"inputs": {"a": [-1.0, 1.0], "b": [-1.0, 1.0]}})
    assert [f.op_type for f in report.findings] == ["Div"]
    lo, hi = report.analysis.bounds("y")
    assert np.isfinite(lo).all() and np.isfinite(hi).all()
    a = np.array([1.0, -1.0, 0.0, 0.5, -0.25, 1.0], np.float32)
    b = np.array([0.0, 0.0, 0.0, 0.5, 1e-38, 1e-30], np.float32)
    y = Runner(model).run({"a": a, "b": b})["y"]
    assert np.isfinite(y).all() and np.all((y >= lo) & (y <= hi))


MAGNITUDE_GUARDS = {
    # kornia's convert_points_from_homogeneous: where(|z| > eps, z, 1) before a reciprocal
    "greater": ("c = Greater(m, eps)\n        g = Where(c, z, one)", "safe"),
    "less-or-equal": ("c = LessOrEqual(m, eps)\n        g = Where(c, one, z)", "safe"),
    "constant-first": ("c = Less(eps, m)\n        g = Where(c, z, one)", "safe"),
    "eps-zero": ("c = Greater(m, zero)\n        g = Where(c, z, one)", "overflow"),
    "other-tensor": ("c = Greater(m, eps)\n        g = Where(c, w, one)", "division"),
    # a replaced zero (masked_fill(z == 0, eps), z + eps * (z == 0)): z is never 0 where it is kept, but may be
    # the smallest subnormal, whose reciprocal overflows
    "replaced-zero": ("c = Equal(z, zero)\n        g = Where(c, eps, z)", "overflow"),
    "replaced-zero-first": ("c = Equal(zero, z)\n        g = Where(c, eps, z)", "overflow"),
    "replaced-zero-sum": ("c = Equal(z, zero)\n        f = Cast<to = 1>(c)\n        e = Mul(eps, f)\n"
                          "        g = Add(z, e)", "overflow"),
    "replaced-by-zero": ("c = Equal(z, zero)\n        g = Where(c, zero, z)", "division"),
    "replaced-other": ("c = Equal(w, zero)\n        g = Where(c, eps, z)", "division"),
}


@pytest.mark.parametrize("op", ["Reciprocal", "Div"])
@pytest.mark.parametrize("form", list(MAGNITUDE_GUARDS))
def test_a_divisor_guarded_away_from_zero_in_magnitude_is_not_a_division_by_zero(form: str, op: str) -> None:
    """A divisor kept at |z| > eps on both sides of 0 (one interval cannot say so) gives |1 / z| < 1 / eps; with
    eps = 0 the quotient can still overflow (z the smallest subnormal); a guard on another tensor proves
    nothing."""
    guard, expected = MAGNITUDE_GUARDS[form]
    quotient = "y = Reciprocal(g)" if op == "Reciprocal" else "y = Div(s, g)"
    model = onnx.parser.parse_model(f"""
    <ir_version: 8, opset_import: ["" : 17]>
    g (float[6] z, float[6] w, float[6] s) => (float[6] y)
    <float eps = {{1e-8}}, float zero = {{0.0}}, float one = {{1.0}}> {{
        m = Abs(z)
        {guard}
        {quotient}
    }}""")
    report = ranum.check(model, {"inputs": {"z": [-1.0, 1.0], "w": [-1.0, 1.0], "s": [-2.0, 2.0]}})
    hazards = {f.hazard_id for f in report.findings}
    assert hazards == {"safe": set(), "overflow": {"overflow"}, "division": {"division-by-zero"}}[expected]
    lo, hi = report.analysis.bounds("y")
    z = np.array([1e-9, -1e-9, 2e-8, -2e-8, 0.0, 1.0], np.float32)
    y = Runner(model).run({"z": z, "w": z, "s": np.full(6, 2.0, np.float32)})["y"]
    finite = np.isfinite(y)
    assert np.all((y[finite] >= lo[finite]) & (y[finite] <= hi[finite]))
    if expected == "safe":
        assert np.isfinite(hi).all() and finite.all()


@pytest.mark.parametrize(("numerator", "replaced", "expected"), [
    ("z", "Where(c, one, z)", set()),  # z / where(z == 0, 1, z): 1, or 0 where z is 0
    ("z", "Where(c, eps, z)", set()),
    ("s", "Where(c, one, z)", {"overflow"}),  # another numerator over a replaced zero can overflow
    ("z", "Where(c, zero, z)", {"division-by-zero"}),  # replaced by 0: 0 / 0
])
def test_a_tensor_over_its_own_replaced_zero_is_zero_or_one(numerator: str, replaced: str, expected: set) -> None:
    """``d / where(d == 0, 1, d)`` (a hue's delta over itself) is exactly 1 where d is not 0 and 0 where it is:
    the replaced zero's overflow (d the smallest subnormal) does not reach a quotient by itself."""
    model = onnx.parser.parse_model(f"""
    <ir_version: 8, opset_import: ["" : 17]>
    g (float[6] z, float[6] s) => (float[6] y)
    <float eps = {{1e-8}}, float zero = {{0.0}}, float one = {{1.0}}> {{
        c = Equal(z, zero)
        g = {replaced}
        y = Div({numerator}, g)
    }}""")
    report = ranum.check(model, {"inputs": {"z": [-1.0, 1.0], "s": [-2.0, 2.0]}})
    assert {f.hazard_id for f in report.findings} == expected
    lo, hi = report.analysis.bounds("y")
    if not expected:
        assert lo.min() >= 0.0 and hi.max() <= 1.0
    z = np.array([1e-45, -1e-45, 0.0, -0.0, 0.3, -1.0], np.float32)
    y = Runner(model).run({"z": z, "s": np.full(6, 2.0, np.float32)})["y"]
    finite = np.isfinite(y)
    assert np.all((y[finite] >= lo[finite]) & (y[finite] <= hi[finite]))


@pytest.mark.parametrize(("summed", "safe"), [
    ("s01 = Add(e0, e1)\n        s = Add(s01, e2)", True),  # soft-DTW's soft minimum over three neighbours
    ("s12 = Add(e1, e2)\n        s = Add(e0, s12)", True),
    ("s = Add(e0, e1)", False),  # r2's term is missing: where r2 is the maximum, both terms may underflow
])
def test_a_sum_of_exponentials_shifted_by_a_nested_maximum_is_at_least_one(summed: str, safe: bool) -> None:
    """exp(r0 - m) + exp(r1 - m) + exp(r2 - m) with m = max(max(r0, r1), r2): the maximum's own term is
    exp(0) = 1, so the log of the sum is finite; only two-operand maxima were read."""
    model = onnx.parser.parse_model(f"""
    <ir_version: 8, opset_import: ["" : 17]>
    g (float[5] r0, float[5] r1, float[5] r2) => (float[5] y) {{
        m01 = Max(r0, r1)
        m = Max(m01, r2)
        d0 = Sub(r0, m)
        d1 = Sub(r1, m)
        d2 = Sub(r2, m)
        e0 = Exp(d0)
        e1 = Exp(d1)
        e2 = Exp(d2)
        {summed}
        y = Log(s)
    }}""")
    spec = {"inputs": {name: [-300.0, 300.0] for name in ("r0", "r1", "r2")}}
    report = ranum.check(model, spec)
    assert (not report.findings) == safe
    lo, hi = report.analysis.bounds("s")
    assert (float(lo.min()) >= 1.0) == safe
    rng = np.random.default_rng(0)
    for scale in (1.0, 300.0):
        feeds = {name: rng.uniform(-scale, scale, 5).astype(np.float32) for name in ("r0", "r1", "r2")}
        s = Runner(model).run(feeds)["s"]
        assert np.all((s >= lo) & (s <= hi))


@pytest.mark.parametrize(("difference", "positive"), [("c = Sub(one, p)", True), ("c = Sub(r, zero)", False)])
def test_a_non_negative_difference_has_only_positive_zeros(difference: str, positive: bool) -> None:
    """Adam's bias-corrected second moment v / (1 - b2 ** t) for t >= 0: the correction is +0 at t = 0 (x - x is
    +0), so the quotient is +inf or non-negative, never -inf, and its square root sees no negative value. A
    minuend that may be -0 (a Relu of -0, less 0) keeps the -inf."""
    model = onnx.parser.parse_model(f"""
    <ir_version: 8, opset_import: ["" : 17]>
    g (float[4] v, float[4] t, float[4] x) => (float[4] q, float[4] y)
    <float b2 = {{0.999}}, float one = {{1.0}}, float zero = {{0.0}}> {{
        r = Relu(x)
        p = Pow(b2, t)
        {difference}
        q = Div(v, c)
        y = Sqrt(q)
    }}""")
    report = ranum.check(model, {"inputs": {"v": [0.0, 1e6], "t": [0.0, 1e6], "x": [-1.0, 1.0]}})
    assert ("sqrt-negative" not in {f.hazard_id for f in report.findings}) == positive
    lo, _ = report.analysis.bounds("q")
    assert (float(lo.min()) >= 0.0) == positive
    values = Runner(model).run({"v": np.array([0.0, 1.0, 5.0, 1e6], np.float32),
                                "t": np.array([0.0, 0.0, 1.0, 1e6], np.float32),
                                "x": np.array([0.0, 0.5, -1.0, 1.0], np.float32)})
    assert np.all(np.isnan(values["q"]) | (values["q"] >= lo))
