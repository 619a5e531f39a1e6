"""Precision of the reduction and loss rules: these patterns yield exactly these intervals."""

from __future__ import annotations

import math

import numpy as np
import onnx.parser
import pytest
import torch
from onnx import TensorProto

import ranum
from ranum.detect import find_hazards
from ranum.domain.interval import Interval
from ranum.graph.loader import load_model
from ranum.interpret import AbstractRun, run_abstract
from tests.zoo.runtime import Runner

F32 = TensorProto.FLOAT
REL = 1e-5  # float error slack of a handful of float32 operations


def _run(text: str, **inputs: tuple[torch.Tensor, torch.Tensor] | Interval) -> AbstractRun:
    graph, _ = load_model(onnx.parser.parse_model(text))
    initial = {}
    for name, value in inputs.items():
        if isinstance(value, Interval):
            initial[name] = value
        else:
            lo, hi = (torch.as_tensor(b, dtype=torch.float64) for b in value)
            initial[name] = Interval.from_full(lo, hi, F32)
    for name, proto in graph.initializers.items():
        initial[name] = Interval.point(torch.from_numpy(onnx.numpy_helper.to_array(proto).copy()), proto.data_type)
    return run_abstract(graph, initial)


def _bounds(run: AbstractRun, name: str) -> tuple[list, list]:
    lo, hi = run.env[name].full()
    return lo.tolist(), hi.tolist()


def _ids(run: AbstractRun) -> set[str]:
    return {f.hazard_id for f in find_hazards(run)}


HEADER = '<ir_version: 8, opset_import: ["" : 18]>'


def _box(shape, low, high):
    return torch.full(shape, float(low)), torch.full(shape, float(high))


def test_sum_is_block_size_times_block_bounds():
    lo = torch.tensor([[1.0, 1.0, -1.0], [0.0, 0.0, 0.0]])
    hi = torch.tensor([[2.0, 2.0, 1.0], [0.0, 0.0, 0.0]])
    run = _run(HEADER + """
        g (float[2, 3] x) => (float[2] y) {
            axes = Constant <value = int64[1] {1}> ()
            y = ReduceSum <keepdims = 0> (x, axes)
        }
    """, x=(lo, hi))
    (l0, l1), (h0, h1) = _bounds(run, "y")
    assert l0 == pytest.approx(1.0, rel=REL) and h0 == pytest.approx(5.0, rel=REL)
    assert l1 == 0.0 and h1 == 0.0  # a sum of exact zeros is exactly zero


def test_layer_norm_denominator_is_provably_positive():
    run = _run(HEADER + """
        g (float[4, 8] x) => (float[4, 1] y) {
            axes = Constant <value = int64[1] {1}> ()
            eps = Constant <value = float {1e-5}> ()
            m = ReduceMean (x, axes)
            d = Sub (x, m)
            sq = Mul (d, d)
            v = ReduceMean (sq, axes)
            ve = Add (v, eps)
            y = Sqrt (ve)
        }
    """, x=_box((4, 8), -3, 3))
    assert min(_bounds(run, "v")[0][0]) >= 0.0
    assert not _ids(run) & {"sqrt-negative", "sqrt-zero-gradient"}


def test_max_min_are_exact():
    lo = torch.tensor([[-1.0, 0.5, 2.0]])
    hi = torch.tensor([[4.0, 0.5, 3.0]])
    text = HEADER + """
        g (float[1, 3] x) => (float[1] a, float[1] b) {
            axes = Constant <value = int64[1] {-1}> ()
            a = ReduceMax <keepdims = 0> (x, axes)
            b = ReduceMin <keepdims = 0> (x, axes)
        }
    """
    run = _run(text, x=(lo, hi))
    assert _bounds(run, "a") == ([2.0], [4.0])
    assert _bounds(run, "b") == ([-1.0], [0.5])


def test_prod_is_an_interval_power():
    run = _run(HEADER + """
        g (float[4] x) => (float y) { y = ReduceProd <keepdims = 0> (x) }
    """, x=_box((4,), 2, 3))
    lo, hi = _bounds(run, "y")
    assert lo == pytest.approx(16.0, rel=REL) and hi == pytest.approx(81.0, rel=REL)
    signed = _run(HEADER + """
        g (float[3] x) => (float y) { y = ReduceProd <keepdims = 0> (x) }
    """, x=_box((3,), -2, 1))
    lo, hi = _bounds(signed, "y")
    assert lo == pytest.approx(-8.0, rel=REL) and hi == pytest.approx(4.0, rel=REL)


def test_l2_gradient_hazard_only_when_a_slice_can_be_zero():
    text = HEADER + """
        g (float[2, 3] x) => (float[2, 1] y) { axes = Constant <value = int64[1] {1}> () y = ReduceL2 (x, axes) }
    """
    assert "l2-zero-gradient" in _ids(_run(text, x=_box((2, 3), -1, 1)))
    assert "l2-zero-gradient" not in _ids(_run(text, x=_box((2, 3), 0.5, 1)))
    lo, hi = _bounds(_run(text, x=_box((2, 3), 1, 2)), "y")
    assert lo[0][0] == pytest.approx(math.sqrt(3), rel=REL) and hi[0][0] == pytest.approx(math.sqrt(12), rel=REL)


def test_log_sum_hazard_only_when_the_sum_can_be_nonpositive():
    text = HEADER + """
        g (float[2, 3] x) => (float[2] y) { y = ReduceLogSum <keepdims = 0, noop_with_empty_axes = 0> (x) }
    """
    assert "log-nonpositive-sum" in _ids(_run(text, x=_box((2, 3), -1, 1)))
    assert "log-nonpositive-sum" not in _ids(_run(text, x=_box((2, 3), 0.1, 1)))


def test_log_sum_exp_is_tight_and_passes_infinite_inputs_on():
    """onnxruntime shifts by the largest finite element: +inf in a row gives +inf, a row of -inf (a CTC
    recursion's padding) -inf, never NaN; the infinities are the inputs', no hazard of this node."""
    text = HEADER + """
        g (float[1, 4] x) => (float[1] y) {
            axes = Constant <value = int64[1] {1}> ()
            y = ReduceLogSumExp <keepdims = 0> (x, axes)
        }
    """
    run = _run(text, x=_box((1, 4), 100, 101))
    lo, hi = _bounds(run, "y")
    assert lo[0] == pytest.approx(100 + math.log(4), rel=REL) and hi[0] == pytest.approx(101 + math.log(4), rel=REL)
    assert not _ids(run)
    inf = _run(text, x=(torch.full((1, 4), -math.inf), torch.full((1, 4), math.inf)))
    assert not _ids(inf)
    lo, hi = _bounds(inf, "y")
    model = onnx.parser.parse_model(text)
    for row in ([-math.inf] * 4, [math.inf, -math.inf, 1.0, 2.0], [-math.inf, 3.0, -math.inf, 2.0]):
        y = Runner(model).run({"x": np.array([row], np.float32)})["y"]
        assert not np.isnan(y).any() and lo[0] <= y[0] <= hi[0]


def test_argmax_keeps_only_the_candidates():
    lo = torch.tensor([[0.0, 5.0, 4.5, 1.0]])
    hi = torch.tensor([[1.0, 6.0, 5.5, 2.0]])
    text = HEADER + """
        g (float[1, 4] x) => (int64[1] i, int64[1] j) {
            i = ArgMax <axis = 1, keepdims = 0> (x)
            j = ArgMin <axis = 1, keepdims = 0> (x)
        }
    """
    run = _run(text, x=(lo, hi))
    assert _bounds(run, "i") == ([1], [2])
    assert _bounds(run, "j") == ([0], [0])  # x3 >= 1 >= x0: x3 is never strictly below x0


def test_topk_values_are_order_statistics():
    lo = torch.tensor([[0.0, 5.0, 3.0, 1.0]])
    hi = torch.tensor([[1.0, 6.0, 4.0, 7.0]])
    text = HEADER + """
        g (float[1, 4] x) => (float[1, 2] v, int64[1, 2] i) {
            k = Constant <value = int64[1] {2}> ()
            v, i = TopK (x, k)
        }
    """
    run = _run(text, x=(lo, hi))
    assert _bounds(run, "v") == ([[5.0, 3.0]], [[7.0, 6.0]])
    assert _bounds(run, "i") == ([[1, 1]], [[3, 3]])


def _nll(attrs: str, weight: str = "") -> str:
    inputs = "float[3, 4] x, int64[3] t" + (", float[4] w" if weight else "")
    args = "x, t, w" if weight else "x, t"
    return HEADER + f"""
        g ({inputs}) => (float y) {{ y = NegativeLogLikelihoodLoss <{attrs}> ({args}) }}
    """


def _targets(low: int | list[int], high: int | list[int]) -> Interval:
    lo, hi = torch.as_tensor(low).expand(3), torch.as_tensor(high).expand(3)
    return Interval.from_full(lo.to(torch.int64), hi.to(torch.int64), TensorProto.INT64)


def test_nll_mean_is_bounded_by_the_selected_values():
    run = _run(_nll('reduction = "mean"', "w"), x=_box((3, 4), -2, -1), t=_targets(0, 3),
               w=_box((4,), 0.5, 2.0))
    lo, hi = _bounds(run, "y")
    assert lo == pytest.approx(1.0, rel=REL) and hi == pytest.approx(2.0, rel=REL)  # not (1.5 .. 12) / (1.5 .. 6)
    assert not _ids(run)


def test_nll_mean_denominator_hazard():
    no_ignore = _run(_nll('reduction = "mean"'), x=_box((3, 4), -2, 2), t=_targets(0, 3))
    assert "mean-zero-weight-sum" not in _ids(no_ignore)
    ignore = _run(_nll('reduction = "mean", ignore_index = 1'), x=_box((3, 4), -2, 2), t=_targets([0, 0, 2], 3))
    assert "mean-zero-weight-sum" not in _ids(ignore)  # two targets can be ignored, but not all of them...
    all_ignored = _run(_nll('reduction = "mean", ignore_index = 1'), x=_box((3, 4), -2, 2), t=_targets(1, 2))
    assert "mean-zero-weight-sum" in _ids(all_ignored)  # ...unless each target can be
    zero_weight = _run(_nll('reduction = "mean"', "w"), x=_box((3, 4), -2, 2), t=_targets(0, 3),
                       w=_box((4,), 0.0, 1.0))
    assert "mean-zero-weight-sum" in _ids(zero_weight)
    as_sum = _run(_nll('reduction = "sum", ignore_index = 1'), x=_box((3, 4), -2, 2), t=_targets(1, 2))
    assert "mean-zero-weight-sum" not in _ids(as_sum)


def test_softmax_cross_entropy_bounds():
    text = HEADER + """
        g (float[2, 3] x, int64[2] t) => (float y, float[2, 3] p) { y, p = SoftmaxCrossEntropyLoss (x, t) }
    """
    run = _run(text, x=_box((2, 3), -1, 1), t=Interval.uniform(0, 2, (2,), TensorProto.INT64))
    worst = 2 + math.log(2 + math.exp(-2))  # target at -1, the others at +1
    best = math.log(1 + 2 * math.exp(-2))
    lo, hi = _bounds(run, "y")
    assert lo == pytest.approx(best, rel=1e-4) and hi == pytest.approx(worst, rel=1e-4)
    p_lo, p_hi = _bounds(run, "p")
    assert max(max(r) for r in p_hi) <= 0.0
    assert min(min(r) for r in p_lo) == pytest.approx(-worst, rel=1e-4)
    assert not _ids(run)


@pytest.mark.parametrize("text", [
    "y = ReduceLogSumExp <keepdims = 0> (x, axes)",
    "y = ReduceProd <keepdims = 0> (x, axes)",
    "y = ReduceL2 <keepdims = 0> (x, axes)",
    "y = ReduceMean <keepdims = 0> (x, axes)",
])
def test_bounds_are_differentiable(text):
    graph, _ = load_model(onnx.parser.parse_model(HEADER + f"""
        g (float[2, 3] x) => (float[2] y) {{ axes = Constant <value = int64[1] {{1}}> () {text} }}
    """))
    lo = torch.full((2, 3), 0.5, dtype=torch.float64, requires_grad=True)
    hi = torch.full((2, 3), 2.0, dtype=torch.float64, requires_grad=True)
    run = run_abstract(graph, {"x": Interval.from_full(lo, hi, F32)})
    y = run.env["y"]
    (y.lower.sum() + y.upper.sum()).backward()
    assert lo.grad is not None and hi.grad is not None
    assert bool(torch.isfinite(lo.grad).all()) and float(hi.grad.abs().sum()) > 0


def test_softmax_cross_entropy_is_differentiable():
    graph, _ = load_model(onnx.parser.parse_model(HEADER + """
        g (float[2, 3] x, int64[2] t) => (float y) { y = SoftmaxCrossEntropyLoss (x, t) }
    """))
    lo = torch.full((2, 3), -1.0, dtype=torch.float64, requires_grad=True)
    hi = torch.full((2, 3), 1.0, dtype=torch.float64, requires_grad=True)
    run = run_abstract(graph, {"x": Interval.from_full(lo, hi, F32),
                               "t": Interval.uniform(0, 2, (2,), TensorProto.INT64)})
    run.env["y"].upper.sum().backward()
    assert float(hi.grad.abs().sum()) > 0 and float(lo.grad.abs().sum()) > 0


def test_half_precision_mean_accumulates_without_overflow():
    graph, _ = load_model(onnx.parser.parse_model(HEADER + """
        g (float16[2, 8] x) => (float16 y) { y = ReduceMean <keepdims = 0> (x) }
    """))
    x = Interval.uniform(3e4, 6e4, (2, 8), TensorProto.FLOAT16)
    run = run_abstract(graph, {"x": x})
    assert run.env["y"].max() < 65504 and not _ids(run)  # the float32 partial sums stay finite


SCE = HEADER + """
    g (float[3, 4] s, int64[3] t) => (float l) { l = SoftmaxCrossEntropyLoss <reduction = "mean"> (s, t) }
"""


def _masked_diagonal_scores(low: float, high: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Scores in [low, high] with the classes 0, 1, 2 of rows 0, 1, 2 masked at -inf (NT-Xent's diagonal)."""
    lo, hi = torch.full((3, 4), float(low)), torch.full((3, 4), float(high))
    for i in range(3):
        lo[i, i] = hi[i, i] = -math.inf
    return lo, hi


def test_cross_entropy_with_a_masked_class_that_is_never_the_target_has_no_finding():
    """A -inf score beside finite ones is harmless for log_softmax: an InfiniteOperand check flagged NT-Xent's
    masked diagonal, and confirm then said ranum's semantics fired where onnxruntime did not."""
    targets = torch.tensor([3, 0, 1])
    run = _run(SCE, s=_masked_diagonal_scores(-10, 10), t=Interval.point(targets, TensorProto.INT64))
    assert not _ids(run)


def test_cross_entropy_whose_target_can_be_the_masked_class_is_an_infinite_loss():
    any_class = Interval.from_full(torch.zeros(3, dtype=torch.int64), torch.full((3,), 3), TensorProto.INT64)
    run = _run(SCE, s=_masked_diagonal_scores(-10, 10), t=any_class)
    assert _ids(run) == {"infinite-loss"}
    rows = _run(SCE, s=(torch.full((3, 4), -math.inf), torch.full((3, 4), math.inf)), t=any_class)
    assert "infinite-row" in _ids(rows)


@pytest.mark.parametrize(("dtype", "cast"), [("float16", True), ("bfloat16", True), ("float16", False)])
def test_a_stable_exponential_sum_in_a_wider_type_is_at_least_one(dtype: str, cast: bool) -> None:
    """m + log(sum(exp(x - m))) for a float16 or bfloat16 x, as the dynamo exporter writes it: the exponentials
    are cast to float32 for the sum and the sum back. The maximum's term is exp(0) = 1 in float32 too, so the
    log's operand is at least 1: a false log of 0 behind the casts."""
    wide = "ef = Cast<to = 1>(e)\n        sf = ReduceSum<keepdims = 1>(ef, ax)\n        s = Cast<to = {t}>(sf)"
    body = wide.format(t=10 if dtype == "float16" else 16) if cast else "s = ReduceSum<keepdims = 1>(e, ax)"
    model = onnx.parser.parse_model(f"""
    <ir_version: 8, opset_import: ["" : 18]>
    g ({dtype}[4, 32] x) => ({dtype}[4, 1] y) <int64[1] ax = {{-1}}> {{
        m = ReduceMax<keepdims = 1>(x, ax)
        d = Sub(x, m)
        e = Exp(d)
        {body}
        l = Log(s)
        y = Add(m, l)
    }}""")
    report = ranum.check(model, {"inputs": {"x": [-300.0, 300.0]}})
    assert not report.findings
    lo, hi = report.analysis.bounds("s")
    assert lo.min() >= 0.99
    if dtype == "float16":
        rng = np.random.default_rng(0)
        for x in (rng.uniform(-300, 300, (4, 32)), np.full((4, 32), -300.0), np.eye(4, 32) * 300.0):
            s = Runner(model).run({"x": x.astype(np.float16)})["s"].astype(np.float64)
            assert np.all((s >= lo) & (s <= hi))


@pytest.mark.parametrize(("op", "opset", "axes", "floored"), [
    ("Softmax<axis = 1>", 13, "{1}", True),
    ("Softmax<axis = 1>", 11, "{1, 2}", True),  # before opset 13 the row is every axis from 1 on
    ("Softmax<axis = 1>", 11, "{1}", False),  # part of a coerced row: a real log of a small sum
    ("Hardmax<axis = 1>", 13, "{1}", True),
    ("Softmax<axis = 2>", 13, "{1}", False),  # another axis than the normalised one
])
def test_a_softmax_summed_over_its_own_axes_is_about_one(op: str, opset: int, axes: str, floored: bool) -> None:
    """Each row of probabilities sums to 1 up to rounding, so the log of that sum is no log of 0 (intervals let
    every share underflow at once)."""
    reduce = "ReduceSum<keepdims = 1, axes = " + axes.replace("{", "[").replace("}", "]") + ">(p)" if opset < 13 \
        else "ReduceSum<keepdims = 1>(p, ax)"
    model = onnx.parser.parse_model(f"""
    <ir_version: 8, opset_import: ["" : {opset}]>
    g (float[2, 3, 4] x) => (float[] y) <int64[{axes.count(",") + 1}] ax = {axes}> {{
        p = {op}(x)
        s = {reduce}
        y = Log(s)
    }}""")
    report = ranum.check(model, {"inputs": {"x": [-300.0, 300.0]}})
    assert (not report.findings) == floored  # elsewhere a share can underflow: a real log of 0
    lo, hi = report.analysis.bounds("s")
    assert (lo.min() >= 0.99) == floored
    rng = np.random.default_rng(0)
    for x in (rng.uniform(-300, 300, (2, 3, 4)), np.zeros((2, 3, 4)), np.arange(24.0).reshape(2, 3, 4) * 25.0):
        s = Runner(model).run({"x": x.astype(np.float32)})["s"]
        assert np.all((s >= lo) & (s <= hi))
