"""Orders proven from structure (ranum/ops/_order_relations.py): widths, overlaps, unions and index ratios of box
and segmentation code, checked for precision and against onnxruntime (every intermediate tensor inside its
bounds on drawn, degenerate and coinciding inputs)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

import ranum
from tests.zoo.runtime import Runner


def _model(inputs: str, outputs: str, body: str) -> onnx.ModelProto:
    return onnx.parser.parse_model(
        '<ir_version: 8, opset_import: ["" : 17]>\ng (' + inputs + ") => (" + outputs + ") {" + body + "\n}")


# x1, x2 of boxes a and b as columns: a = (a1, a2), b = (b1, b2), each [8]
_OVERLAP = """
    zero = Constant<value = float {0.0}>()
    wa0 = Sub(a2, a1)
    wa = Max(wa0, zero)
    wb0 = Sub(b2, b1)
    wb = Max(wb0, zero)
    hi = Min(a2, b2)
    lo = Max(a1, b1)
    ov0 = Sub(hi, lo)
    ov = Relu(ov0)
    area = Add(wa, wb)
    union0 = Sub(area, ov)
    eps = Constant<value = float {1e-7}>()
    union = Add(union0, eps)
    iou = Div(ov, union)
    one = Constant<value = float {1.0}>()
    gap = Sub(one, iou)
    y = Sqrt(gap)"""

FORMS = {
    # a width from a corner and a size: (x + w) - x >= 0
    "sum-minus-term": ("float[8] x, float[8] w", "float[8] y", """
        x2 = Add(x, w)
        d = Sub(x2, x)
        y = Sqrt(d)""", {"x": (0.0, 640.0), "w": (0.0, 320.0)}, "d"),
    # a corner less a size: x - (x - w) >= 0
    "term-minus-difference": ("float[8] x, float[8] w", "float[8] y", """
        x1 = Sub(x, w)
        d = Sub(x, x1)
        y = Sqrt(d)""", {"x": (-100.0, 100.0), "w": (0.0, 50.0)}, "d"),
    # a 1-D IoU with independent corners: the overlap is at most each width, so the union is at least eps
    # and the IoU at most 1
    "iou-union": ("float[8] a1, float[8] a2, float[8] b1, float[8] b2", "float[8] y", _OVERLAP,
                  {"a1": (0.0, 640.0), "a2": (0.0, 640.0), "b1": (0.0, 640.0), "b2": (0.0, 640.0)}, "union"),
    # a Jaccard union: sum(p) + sum(t) - sum(p * t) with p, t in [0, 1]
    "jaccard-union": ("float[16] p, float[16] t", "float[] y", """
        pt = Mul(p, t)
        inter = ReduceSum<keepdims = 0>(pt)
        sp = ReduceSum<keepdims = 0>(p)
        st = ReduceSum<keepdims = 0>(t)
        total = Add(sp, st)
        union = Sub(total, inter)
        y = Sqrt(union)""", {"p": (0.0, 1.0), "t": (0.0, 1.0)}, "union"),
    # a Tversky index (tp + s) / (tp + a fp + b fn + s) is at most 1: 1 - TI >= 0
    "tversky-index": ("float[16] p, float[16] t", "float[] y", """
        pt = Mul(p, t)
        tp = ReduceSum<keepdims = 0>(pt)
        one = Constant<value = float {1.0}>()
        nt = Sub(one, t)
        fp0 = Mul(nt, p)
        fp = ReduceSum<keepdims = 0>(fp0)
        np_ = Sub(one, p)
        fn0 = Mul(t, np_)
        fn = ReduceSum<keepdims = 0>(fn0)
        alpha = Constant<value = float {0.7}>()
        beta = Constant<value = float {0.3}>()
        afp = Mul(fp, alpha)
        bfn = Mul(fn, beta)
        num = Add(tp, one)
        den0 = Add(tp, afp)
        den1 = Add(den0, bfn)
        den = Add(den1, one)
        index = Div(num, den)
        gap = Sub(one, index)
        half = Constant<value = float {0.75}>()
        y = Pow(gap, half)""", {"p": (0.0, 1.0), "t": (0.0, 1.0)}, "gap"),
    # a focal loss's p_t = p t + (1 - p)(1 - t): a convex combination both ways (z = p or z = t); with z = t it
    # lies between sigmoid's bounds, so 1 - p_t > 0 and its square root (gamma 0.5) is defined
    "focal-pt": ("float[16] x, float[16] t", "float[16] y", """
        p = Sigmoid(x)
        pt0 = Mul(p, t)
        one = Constant<value = float {1.0}>()
        q = Sub(one, p)
        nt = Sub(one, t)
        pt1 = Mul(q, nt)
        pt = Add(pt0, pt1)
        gap = Sub(one, pt)
        half = Constant<value = float {0.5}>()
        y = Pow(gap, half)""", {"x": (-10.0, 10.0), "t": (0.0, 1.0)}, "gap"),
}


def _draws(ranges: dict, rng: np.random.Generator, shapes: dict) -> list[dict]:
    """Uniform draws, the ends of the ranges, and every input equal to the first (coinciding boxes, p = t)."""
    draws = []
    for kind in ("uniform", "low", "high", "same", "tiny"):
        for _ in range(8 if kind in ("uniform", "same", "tiny") else 1):
            first = None
            feed = {}
            for name, (lo, hi) in ranges.items():
                if kind == "low":
                    value = np.full(shapes[name], lo)
                elif kind == "high":
                    value = np.full(shapes[name], hi)
                elif kind == "same" and first is not None:
                    value = np.clip(first, lo, hi)
                elif kind == "tiny":
                    value = np.clip(rng.choice([0.0, 1e-7, 2e-7, 1.0]) + rng.uniform(0, 1e-6, shapes[name]), lo, hi)
                else:
                    value = rng.uniform(lo, hi, shapes[name])
                first = value if first is None else first
                feed[name] = value.astype(np.float32)
            draws.append(feed)
    return draws


@pytest.mark.parametrize("form", list(FORMS))
def test_ordered_structures_are_signed_and_sound(form: str) -> None:
    inputs, outputs, body, ranges, signed = FORMS[form]
    model = _model(inputs, outputs, body)
    report = ranum.check(model, {"inputs": {k: list(v) for k, v in ranges.items()}})
    assert [f.hazard_id for f in report.findings if f.kind == "forward"] == []  # negative base or divisor 0 before
    lo, _ = report.analysis.bounds(signed)
    assert lo.min() >= 0.0
    shapes = {i.name: [d.dim_value for d in i.type.tensor_type.shape.dim] for i in model.graph.input}
    runner = Runner(model)
    for feed in _draws(ranges, np.random.default_rng(0), shapes):
        values = runner.run(feed)
        for name, value in values.items():
            low, high = report.analysis.bounds(name)
            finite = np.isfinite(value)
            assert ((low <= value) & (value <= high))[finite].all(), (form, name)


@pytest.mark.parametrize("body", [
    # the term may be negative
    """x2 = Add(x, w)
        d = Sub(x2, x)
        y = Sqrt(d)""",
    # through Exp, whose kernel is not known to round monotonically
    """x2 = Add(x, w)
        e2 = Exp(x2)
        e1 = Exp(x)
        d = Sub(e2, e1)
        y = Sqrt(d)""",
    # the overlap of another pair of boxes
    """hi = Min(x, w)
        zero = Constant<value = float {0.0}>()
        ov = Max(hi, zero)
        d = Sub(w, ov)
        y = Sqrt(d)""",
])
def test_orders_that_do_not_follow_keep_their_findings(body: str) -> None:
    model = _model("float[8] x, float[8] w", "float[8] y", body)
    # through Exp the order holds (w >= 0) but is not claimed; elsewhere w < 0 makes the difference negative
    ranges = {"x": [-1.0, 1.0], "w": [0.0, 1.0] if "Exp" in body else [-1.0, 1.0]}
    report = ranum.check(model, {"inputs": ranges})
    assert "sqrt-negative" in {f.hazard_id for f in report.findings}


_NORMALIZED = """
    n{v} = ReduceL2<axes = [-1], keepdims = 1>({v})
    eps{v} = Constant<value = float {{1e-12}}>()
    c{v} = Clip(n{v}, eps{v})
    u{v} = Div({v}, c{v})"""


@pytest.mark.parametrize("form", ["matmul-transpose", "gemm-transb", "two-tensors"])
def test_products_of_normalised_rows_are_cosines(form: str) -> None:
    """``F.normalize(f) @ F.normalize(f).T`` (a Gram matrix of embeddings), ``F.linear`` of two normalised tensors
    and ``image @ text.T`` lie in [-1, 1] up to rounding (Cauchy-Schwarz on the second operand's rows too): a
    supervised contrastive loss's ``log(sum(exp(s / 0.07 - max)))`` is no log of 0."""
    second = "x" if form == "matmul-transpose" else "z"
    body = _NORMALIZED.format(v="x") + (_NORMALIZED.format(v="z") if second == "z" else "")
    if form == "gemm-transb":
        body += "\n    s = Gemm<transB = 1>(ux, uz)"
    else:
        body += f"\n    t = Transpose<perm = [1, 0]>(u{second})\n    s = MatMul(ux, t)"
    body += """
    temperature = Constant<value = float {0.07}>()
    logits = Div(s, temperature)
    top = ReduceMax<axes = [1], keepdims = 1>(logits)
    shifted = Sub(logits, top)
    e = Exp(shifted)
    axis = Constant<value = int64[1] {1}>()
    total = ReduceSum<keepdims = 0>(e, axis)
    y = Log(total)"""
    model = _model("float[6, 16] x, float[6, 16] z", "float[6] y", body)
    report = ranum.check(model, {"inputs": {"x": [-3.0, 3.0], "z": [-3.0, 3.0]}})
    assert [f.op_type for f in report.findings if f.kind == "forward"] == []
    lo, hi = report.analysis.bounds("s")
    assert -1.0001 < lo.min() and hi.max() < 1.0001
    runner, rng = Runner(model), np.random.default_rng(1)
    for scale in (3.0, 1e-3, 1e-20):
        values = runner.run({name: (rng.uniform(-1, 1, (6, 16)) * scale).astype(np.float32) for name in ("x", "z")})
        for name in ("s", "total", "y"):
            low, high = report.analysis.bounds(name)
            assert ((low <= values[name]) & (values[name] <= high)).all(), name


def test_a_product_with_rows_of_unknown_norm_keeps_its_bounds() -> None:
    body = _NORMALIZED.format(v="x") + "\n    t = Transpose<perm = [1, 0]>(z)\n    y = MatMul(ux, t)"
    model = _model("float[6, 16] x, float[6, 16] z", "float[6, 6] y", body)
    _, hi = ranum.analyze(model, {"inputs": {"x": [-3.0, 3.0], "z": [-3.0, 3.0]}}).bounds("y")
    assert hi.max() > 10.0  # ||z|| up to 12: not a cosine


@pytest.mark.parametrize(("clip", "opset", "safe"), [
    ("m = Clip(rm, zero)", 17, True),  # torch's clamp_min
    ("m = Clip<min = 0.0>(rm)", 10, True),  # the attribute form before opset 11
    ("m = Clip(rm, zero, ten)", 17, False),  # capped at 10: s - m reaches 290
    ("m = Clip(rm, , ten)", 17, False),
])
def test_a_maximum_clamped_from_below_is_still_at_least_every_element(clip: str, opset: int, safe: bool) -> None:
    """A softmax that leaves room for attending to nothing ("softmax plus one") shifts by max(rowmax(s), 0),
    written as a one-sided Clip: s - m <= 0, so its Exp cannot overflow (it could with the cap)."""
    constants = "<float zero = {0.0}, float ten = {10.0}>" if opset >= 11 else ""
    model = onnx.parser.parse_model(f"""
    <ir_version: 8, opset_import: ["" : {opset}]>
    g (float[4, 8] s) => (float[4, 8] e) {constants} {{
        rm = ReduceMax<axes = [1], keepdims = 1>(s)
        {clip}
        d = Sub(s, m)
        e = Exp(d)
    }}""")
    report = ranum.check(model, {"inputs": {"s": [-300.0, 300.0]}})
    assert (not report.findings) == safe
    lo, hi = report.analysis.bounds("d")
    assert (float(hi.max()) <= 0.0) == safe
    rng = np.random.default_rng(0)
    for s in (rng.uniform(-300, 300, (4, 8)), rng.uniform(-300, -1, (4, 8)), np.full((4, 8), 5.0)):
        d = Runner(model).run({"s": s.astype(np.float32)})["d"]
        assert np.all((d >= lo) & (d <= hi))


@pytest.mark.parametrize(("base", "exponent", "safe"), [
    ((1.0, 1e6), -0.8, True),  # Adafactor's decay 1 - step ** -0.8, step >= 1
    ((0.0, 1.0), 2.5, True),  # a probability to a positive power
    ((0.5, 1e6), -0.8, False),  # a base below 1: the power passes 1
    ((0.0, 1.0), -0.5, False),
])
def test_a_power_on_the_unit_side_is_at_most_one(base: tuple[float, float], exponent: float, safe: bool) -> None:
    """1 - x ** e >= 0 where x ** e <= 1 exactly: pow is faithful and 1 is a float, so the rounded power never
    passes 1. Interval rounding took 1 ** -0.8 to 1 + 4 ulps, and 1 - it below 0 (a false square root of a
    negative value in Adafactor written by hand)."""
    model = onnx.parser.parse_model(f"""
    <ir_version: 8, opset_import: ["" : 17]>
    g (float[6] x) => (float[6] y) <float e = {{{exponent}}}, float one = {{1.0}}> {{
        p = Pow(x, e)
        d = Sub(one, p)
        y = Sqrt(d)
    }}""")
    report = ranum.check(model, {"inputs": {"x": list(base)}})
    assert (not [f for f in report.findings if f.hazard_id == "sqrt-negative"]) == safe
    lo, hi = report.analysis.bounds("d")
    x = np.array([base[0], base[1], 1.0, np.nextafter(np.float32(1.0), np.float32(2.0)), 0.9999999, 3.0], np.float32)
    x = np.clip(x, *base).astype(np.float32)
    d = Runner(model).run({"x": x})["d"]
    assert np.all((d >= lo) & (d <= hi))
