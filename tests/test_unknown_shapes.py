"""Shapes computed from data (NonZero, NonMaxSuppression): what follows them is still analysed.

Element-wise operators run on their operands' hulls, copying operators (Reshape, Gather, Concat...)
keep the hull of what they copy, sizes and indices are non-negative, and anything else is reported as
not analysed instead of failing. Every onnxruntime value must lie in the (unknown-shape) bounds.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from rich.console import Console

import ranum
from ranum.report import render_check
from tests.ops.harness import run_text
from tests.zoo.runtime import Runner

# boxes whose score passes a threshold: NonZero gives their count only at run time
DETECTION_TAIL = """
<ir_version: 8, opset_import: ["" : 17]>
g (float[1, 6] scores, float[6, 4] boxes) => (float[N] sizes, float[M, 4] kept, int64[K] count, float[P] logs)
<int64 one = {1}, int64[1] minus_one = {-1}, int64[1] zero1 = {0}, int64[1] one1 = {1}, int64[1] two1 = {2},
 int64[1] three1 = {3}> {
    threshold = Constant <value = float {0.5}> ()
    above = Greater (scores, threshold)
    where = NonZero (above)
    picked = Gather <axis = 1> (where, one)
    flat = Reshape (picked, minus_one)
    kept = Gather <axis = 0> (boxes, flat)
    x1 = Slice (kept, zero1, one1, one1)
    x2 = Slice (kept, two1, three1, one1)
    width = Sub (x2, x1)
    positive = Relu (width)
    eps = Constant <value = float {1e-3}> ()
    safe = Add (positive, eps)
    sizes_2d = Sqrt (safe)
    sizes = Reshape (sizes_2d, minus_one)
    logs_2d = Log (safe)
    logs = Reshape (logs_2d, minus_one)
    shape = Shape (kept)
    count = Slice (shape, zero1, one1)
}
"""

SPEC = {"inputs": {"scores": [0.0, 1.0], "boxes": [0.0, 320.0]}}


def test_a_detection_tail_is_analysed_past_nonzero() -> None:
    analysis = ranum.analyze(onnx.parser.parse_model(DETECTION_TAIL), SPEC)
    assert not analysis.run.unsupported
    lo, hi = analysis.bounds("kept")
    # rows of the boxes: their hull (in the (2, 4) shape that shape inference gives a Gather of two indices)
    assert (float(lo.min()), float(hi.max())) == (0.0, 320.0)
    count_lo, count_hi = analysis.bounds("count")
    assert float(count_lo.min()) >= 0
    # sqrt and log of a relu plus 1e-3 are safe: nothing to report, although no shape is known
    assert not ranum.check(onnx.parser.parse_model(DETECTION_TAIL), SPEC).findings


@pytest.mark.parametrize("seed", range(4))
def test_onnxruntime_values_lie_in_the_unknown_shape_bounds(seed: int) -> None:
    model = onnx.parser.parse_model(DETECTION_TAIL)
    analysis = ranum.analyze(model, SPEC)
    rng = np.random.default_rng(seed)
    values = Runner(model).run({"scores": rng.uniform(0, 1, (1, 6)).astype(np.float32),
                                "boxes": rng.uniform(0, 320, (6, 4)).astype(np.float32)})
    _assert_within_bounds(analysis, values)


def test_nonzero_of_a_range_that_excludes_zero_is_exact() -> None:
    run = run_text("""<ir_version: 8, opset_import: ["" : 17]>
    g (float[2, 3] x) => (int64[2, 6] y) { y = NonZero (x) }""", {"x": (0.5, 2.0)})
    assert run.env["y"].is_exact
    assert run.env["y"].exact_value().tolist() == [[0, 0, 0, 1, 1, 1], [0, 1, 2, 0, 1, 2]]


def test_nonzero_of_a_range_holding_zero_has_an_unknown_count() -> None:
    run = run_text("""<ir_version: 8, opset_import: ["" : 17]>
    g (float[2, 5] x) => (int64[2, N] y) { y = NonZero (x) }""", {"x": (-1.0, 1.0)})
    y = run.env["y"]
    assert y.shape is None
    assert (int(y.lower), int(y.upper)) == (0, 4)


def test_an_operator_without_an_unknown_shape_rule_is_reported_not_analysed() -> None:
    model = onnx.parser.parse_model("""<ir_version: 8, opset_import: ["" : 17]>
    g (float[4] x) => (float[N] y) <int64[1] minus_one = {-1}> {
        where = NonZero (x)
        flat = Reshape (where, minus_one)
        values = Gather (x, flat)
        y = LogSoftmax <axis = 0> (values)
    }""")
    report = ranum.check(model, {"inputs": {"x": [-1.0, 1.0]}})
    log_softmax = report.analysis.graph.nodes[-1].name
    assert "shape known only at run time" in report.not_analysed_nodes[log_softmax]
    # LogSoftmax has a rule: it is not an unsupported operator, and the JSON report says what was left out
    assert report.unsupported_ops == () and not report.analysis.run.unsupported
    (entry,) = report.to_dict()["not_analysed"]
    assert entry["node"] == log_softmax and entry["op_type"] == "LogSoftmax" and "run time" in entry["reason"]
    assert any(log_softmax in warning for warning in report.warnings)
    console = Console(record=True, width=200)
    render_check(report, console)
    assert f"{report.nodes - 1} of {report.nodes} nodes analysed" in console.export_text()


def test_operands_that_do_not_broadcast_are_an_inconsistent_model_not_an_unsupported_operator() -> None:
    """An exporter's broken graph (onnxruntime refuses to load it): the node is left unanalysed with that
    reason, and Add is not listed as an operator without a rule (it was: 'internal error in rule Add')."""
    model = onnx.parser.parse_model("""<ir_version: 8, opset_import: ["" : 17]>
    g (float[1, 4, 3, 32] x, float[4, 32] p) => (float[1, 4, 3, 32] y) {
        s = Add (x, p)
        y = Relu (s)
    }""")
    report = ranum.check(model, {"inputs": {"x": [-1.0, 1.0], "p": [-1.0, 1.0]}})
    assert not report.unsupported_ops
    (node, reason), = report.not_analysed_nodes.items()
    assert node.startswith("Add") and "inconsistent" in reason and "(1, 4, 3, 32)" in reason


def test_a_pool_over_an_input_without_channels_is_an_inconsistent_model() -> None:
    """TorchScript exports a 1-d average pool of a (batch, time) tensor as AveragePool of rank 2, which
    onnxruntime refuses: the reason says what the input lacks (it said '0-d input')."""
    model = onnx.parser.parse_model("""<ir_version: 8, opset_import: ["" : 17]>
    g (float[1, 28] x) => (float[1, 26] y) {
        y = AveragePool <kernel_shape = [3]> (x)
    }""")
    report = ranum.check(model, {"inputs": {"x": [-1.0, 1.0]}})
    assert not report.unsupported_ops
    (reason,) = report.not_analysed_nodes.values()
    assert "inconsistent" in reason and "needs 1 spatial axis after the batch and channel axes; the input has 0" \
        in reason


def test_a_cross_entropy_of_float_targets_is_an_inconsistent_model() -> None:
    """TorchScript exports cross_entropy with probability targets as SoftmaxCrossEntropyLoss, whose targets
    must be class indices (onnxruntime refuses the model); it was an internal error of the rule."""
    model = onnx.parser.parse_model("""<ir_version: 8, opset_import: ["" : 17]>
    g (float[1, 2, 8] x, float[1, 2, 8] t) => (float y) {
        y = SoftmaxCrossEntropyLoss <reduction = "mean"> (x, t)
    }""")
    report = ranum.check(model, {"inputs": {"x": [-1.0, 1.0], "t": [0.0, 1.0]}})
    assert not report.unsupported_ops
    (reason,) = report.not_analysed_nodes.values()
    assert "inconsistent" in reason and "input 1 is a tensor(float)" in reason and "tensor(int64)" in reason


def test_a_transpose_with_negative_axes_is_an_inconsistent_model() -> None:
    """TorchScript exports of Mamba-2-style mixers write perm {0, -2, -1, 1}, which onnxruntime and the ONNX
    checker refuse; ranum took it as torch would, silently."""
    model = onnx.parser.parse_model("""<ir_version: 8, opset_import: ["" : 17]>
    g (float[1, 2, 3, 4] x) => (float[1, 3, 4, 2] y) {
        y = Transpose <perm = [0, -2, -1, 1]> (x)
    }""")
    report = ranum.check(model, {"inputs": {"x": [-1.0, 1.0]}})
    (node, reason), = report.not_analysed_nodes.items()
    assert "inconsistent" in reason and "(0, -2, -1, 1)" in reason and not report.unsupported_ops


def test_if_joins_branches_with_empty_outputs_of_different_shapes() -> None:
    model = onnx.parser.parse_model("""<ir_version: 8, opset_import: ["" : 17]>
    g (float[3] x, bool c) => (float[N] y) {
        y = If (c) <
            then_branch = then_g () => (float[0] t) { t = Constant <value = float[0] {}> () },
            else_branch = else_g () => (float[2] e) { e = Constant <value = float[2] {1.0, 2.0}> () }
        >
    }""")
    analysis = ranum.analyze(model, {"inputs": {"x": [0.0, 1.0], "c": [0, 1]}})
    assert not analysis.run.unsupported
    lo, hi = analysis.bounds("y")
    assert (float(lo), float(hi)) == (1.0, 2.0)


# a mixture-of-experts layer as TorchScript exports it: the tokens routed to the chosen expert are picked by
# NonZero, multiplied by that expert's weight (picked by a data-dependent index, its shape still static) and
# written back by ScatterElements
EXPERTS = """
<ir_version: 8, opset_import: ["" : 17]>
g (float[4, 3] x, float[4] gate, float[2] score) => (float[4, 2] y)
<float[2, 3, 2] experts = {0.5, -1.0, 2.0, 0.25, -0.5, 1.0, 1.5, 0.75, -2.0, 0.5, 1.0, -0.25},
 float[4, 2] zeros = {0, 0, 0, 0, 0, 0, 0, 0}, int64[1] one1 = {1}, int64[1] flat = {-1}> {
    half = Constant <value = float {0.5}> ()
    chosen = Greater (gate, half)
    where = NonZero (chosen)
    rows = Reshape (where, flat)
    tokens = Gather <axis = 0> (x, rows)
    expert = ArgMax <axis = 0, keepdims = 0> (score)
    weight = Gather <axis = 0> (experts, expert)
    out = MatMul (tokens, weight)
    column = Unsqueeze (rows, one1)
    shape = Shape (out)
    indices = Expand (column, shape)
    y = ScatterElements <axis = 0> (zeros, indices, out)
}
"""
EXPERTS_SPEC = {"inputs": {"x": [-1.0, 2.0], "gate": [0.0, 1.0], "score": [0.0, 1.0]}, "weights": {"default": "exact"}}


def test_a_mixture_of_experts_layer_is_analysed_past_its_routing() -> None:
    """MatMul and ScatterElements had no rule for operands of a shape known only at run time: Mixtral's and
    Qwen2-MoE's TorchScript exports left every expert and everything after them unanalysed. A row of the
    tokens' hull times the expert weight's matrix (its static shape filled with its hull over the experts)
    bounds every product; the write-back joins zeros and the products, and keeps y's shape."""
    analysis = ranum.analyze(onnx.parser.parse_model(EXPERTS), EXPERTS_SPEC)
    assert not analysis.run.not_analysed and not analysis.run.unsupported
    lo, hi = analysis.bounds("out")
    # any token row in [-1, 2]^3 times any weight element in [-2, 2]: |result| <= 3 * 2 * 2
    assert -12.001 <= float(lo) < 0 < float(hi) <= 12.001
    assert analysis.bounds("y")[0].shape == (4, 2)


@pytest.mark.parametrize("seed", range(6))
def test_onnxruntime_values_of_a_mixture_of_experts_lie_in_the_bounds(seed: int) -> None:
    model = onnx.parser.parse_model(EXPERTS)
    analysis = ranum.analyze(model, EXPERTS_SPEC)
    rng = np.random.default_rng(seed)
    values = Runner(model).run({"x": rng.uniform(-1, 2, (4, 3)).astype(np.float32),
                                "gate": rng.uniform(0, 1, (4,)).astype(np.float32),
                                "score": rng.uniform(0, 1, (2,)).astype(np.float32)})
    _assert_within_bounds(analysis, values)


# the same layer with a biased expert, as TorchScript exports nn.Linear of 2-D tokens: Gemm(tokens, W, b, transB=1)
BIASED_EXPERTS = EXPERTS.replace("float[4, 2] zeros", "float[2, 3] linear = {0.5, -1.0, 2.0, 0.25, -0.5, 1.0},\n"
                                 " float[2] bias = {3.0, -4.0}, float[4, 2] zeros").replace(
    "out = MatMul (tokens, weight)", "out = Gemm <transB = 1, alpha = 2.0> (tokens, linear, bias)")


def test_a_biased_expert_gemm_is_analysed_past_its_routing() -> None:
    model = onnx.parser.parse_model(BIASED_EXPERTS)
    analysis = ranum.analyze(model, EXPERTS_SPEC)
    assert not analysis.run.not_analysed and not analysis.run.unsupported
    lo, hi = analysis.bounds("out")
    # 2 * (a row in [-1, 2]^3 times a row of linear) + bias: [-9, 12] + 3 and [-4.5, 6] - 4, joined
    assert -8.501 <= float(lo) <= -8.5 and 15 <= float(hi) <= 15.001
    for seed in range(4):
        rng = np.random.default_rng(seed)
        values = Runner(model).run({"x": rng.uniform(-1, 2, (4, 3)).astype(np.float32),
                                    "gate": rng.uniform(0, 1, (4,)).astype(np.float32),
                                    "score": rng.uniform(0, 1, (2,)).astype(np.float32)})
        _assert_within_bounds(analysis, values)


# JetMoE's routing as the dynamo exporter writes it: tokens split by data-dependent counts, each part through its
# expert, the rows added back into place by ScatterND with reduction "add" (indices of a static shape)
SPLIT_EXPERTS = """
<ir_version: 8, opset_import: ["" : 18]>
g (float[4, 3] x, float[4] gate) => (float[4, 2] y)
<float[3, 2] w0 = {0.5, -1.0, 2.0, 0.25, -0.5, 1.0}, float[3, 2] w1 = {1.5, 0.75, -2.0, 0.5, 1.0, -0.25},
 float[4, 2] zeros = {0, 0, 0, 0, 0, 0, 0, 0}, int64[4, 1] rows = {0, 1, 2, 3}, int64[1] four = {4}> {
    half = Constant <value = float {0.5}> ()
    chosen = Greater (gate, half)
    ones = Cast <to = 7> (chosen)
    count = ReduceSum <keepdims = 1> (ones)
    rest = Sub (four, count)
    sizes = Concat <axis = 0> (count, rest)
    p0, p1 = Split <axis = 0> (x, sizes)
    o0 = MatMul (p0, w0)
    o1 = MatMul (p1, w1)
    updates = Concat <axis = 0> (o0, o1)
    y = ScatterND <reduction = "add"> (zeros, rows, updates)
}
"""


def test_experts_split_by_data_dependent_counts_and_added_back_are_analysed() -> None:
    """Split by sizes computed from data gave no rule (JetMoE's dynamo export left 12 nodes unanalysed, and
    softmaxes after them unbounded); each part now holds some of x's elements in a shape known at run time,
    and ScatterND adds at most one update per index tuple to an element (4 here)."""
    model = onnx.parser.parse_model(SPLIT_EXPERTS)
    spec = {"inputs": {"x": [-1.0, 2.0], "gate": [0.0, 1.0]}, "weights": {"default": "exact"}}
    analysis = ranum.analyze(model, spec)
    assert not analysis.run.not_analysed and not analysis.run.unsupported
    lo, hi = analysis.bounds("y")
    assert lo.shape == (4, 2) and lo.min() >= -4 * 12.001 and hi.max() <= 4 * 12.001
    for seed in range(4):
        rng = np.random.default_rng(seed)
        values = Runner(model).run({"x": rng.uniform(-1, 2, (4, 3)).astype(np.float32),
                                    "gate": rng.uniform(0, 1, (4,)).astype(np.float32)})
        _assert_within_bounds(analysis, values)


def test_a_scatter_that_adds_updates_of_unknown_count_and_either_sign_is_not_analysed() -> None:
    model = onnx.parser.parse_model(EXPERTS.replace("ScatterElements <axis = 0>",
                                                    'ScatterElements <axis = 0, reduction = "add">'))
    report = ranum.check(model, EXPERTS_SPEC)
    (node,) = report.not_analysed_nodes
    assert node.endswith("ScatterElements") or "Scatter" in node


# a graph network's degree as torch_geometric computes it with self loops: the edges that are not loops are
# picked by NonZero (a count known only at run time), the loops appended, and ones added per edge target
DEGREES = """
<ir_version: 8, opset_import: ["" : 17]>
g (int64[2, 5] edges, float[5] w) => (float[3] degree, float[3] scale, float[N] filled, int64[1] count,
                                       float[3] in_degree, float[3] counted)
<float[3] zeros = {0, 0, 0}, int64[3] loops = {0, 1, 2}, float[3] loop_w = {1, 1, 1}, int64[1] flat = {-1},
 int64 zero = {0}, int64 one = {1}, int64[1] zero_1d = {0}> {
    source = Gather <axis = 0> (edges, zero)
    target = Gather <axis = 0> (edges, one)
    same = Equal (source, target)
    differ = Not (same)
    where = NonZero (differ)
    kept = Reshape (where, flat)
    kept_target = Gather (target, kept)
    kept_w = Gather (w, kept)
    all_target = Concat <axis = 0> (kept_target, loops)
    all_w = Concat <axis = 0> (kept_w, loop_w)
    degree = ScatterElements <axis = 0, reduction = "add"> (zeros, all_target, all_w)
    half = Constant <value = float {-0.5}> ()
    scale = Pow (degree, half)
    count = Shape (kept_w)
    filled = ConstantOfShape <value = float[1] {2.5}> (count)
    unit = Constant <value = float {1.0}> ()
    target_shape = Shape (kept_target)
    ones = Expand (unit, target_shape)
    in_degree = ScatterElements <axis = 0, reduction = "add"> (zeros, kept_target, ones)
    picked = Gather <axis = 0> (target_shape, zero)
    edges_1d = Unsqueeze (picked, zero_1d)
    filled_ones = ConstantOfShape <value = float[1] {1.0}> (edges_1d)
    counted = ScatterElements <axis = 0, reduction = "add"> (zeros, kept_target, filled_ones)
}
"""
DEGREES_SPEC = {"inputs": {"edges": [0, 2], "w": [0.0, 1.0]}, "weights": {"default": "exact"}}


def test_a_sum_of_terms_of_a_count_known_only_at_run_time_is_bounded_by_their_most() -> None:
    """ScatterElements adding weights of a NonZero-filtered edge list was not analysed (its degree got the
    widest interval, and Pow(degree, -0.5) a negative-base finding). Adding terms >= 0 never takes a float
    sum below its start (rounding is monotone), and NonZero of 5 flags picks at most 5 edges, so with the 3
    loops at most 8 terms land on one node: the degree lies in [0, 8], and Shape of the picked edges in [0, 5]."""
    model = onnx.parser.parse_model(DEGREES)
    report = ranum.check(model, DEGREES_SPEC)
    analysis = report.analysis
    assert not analysis.run.not_analysed and not analysis.run.unsupported
    lo, hi = analysis.bounds("degree")
    assert float(lo.min()) == 0.0 and 8.0 <= float(hi.max()) <= 8.0001
    assert [int(v) for v in analysis.bounds("count")] == [0, 5]
    for name in ("in_degree", "counted"):  # ones of the picked targets' shape, or of its first (only) size
        lo, hi = analysis.bounds(name)
        assert float(lo.min()) == 0.0 and 5.0 <= float(hi.max()) <= 5.0001, name
    hazards = {(f.op_type, f.hazard_id) for f in report.findings}
    assert hazards == {("Pow", "pow-zero-negative-exponent")}
    # a ConstantOfShape of a shape whose own length is known only at run time holds its value everywhere
    lo, hi = analysis.bounds("filled")
    assert float(lo) == float(hi) == 2.5
    for seed in range(6):
        rng = np.random.default_rng(seed)
        values = Runner(model).run({"edges": rng.integers(0, 3, (2, 5)).astype(np.int64),
                                    "w": rng.uniform(0, 1, (5,)).astype(np.float32)})
        _assert_within_bounds(analysis, values)


def test_a_sum_of_non_negative_terms_at_data_dependent_places_is_not_negative() -> None:
    """Each rounding of a sum of terms >= 0 gives a result >= 0: the bounds went below 0 by a subnormal per
    term (exact targets) or by the whole accumulation error (targets known to a range), which made
    Pow(sum, -0.5) report a negative base."""
    model = onnx.parser.parse_model("""<ir_version: 8, opset_import: ["" : 17]>
    g (float[6] u, int64[6] at) => (float[3] fixed, float[3] placed)
    <float[3] zeros = {0, 0, 0}, int64[6] targets = {0, 1, 2, 0, 1, 2}> {
        fixed = ScatterElements <axis = 0, reduction = "add"> (zeros, targets, u)
        placed = ScatterElements <axis = 0, reduction = "add"> (zeros, at, u)
    }""")
    analysis = ranum.analyze(model, {"inputs": {"u": [0.0, 2.0], "at": [0, 2]}, "weights": {"default": "exact"}})
    for name, most in (("fixed", 4.0), ("placed", 12.0)):
        lo, hi = analysis.bounds(name)
        assert float(lo.min()) == 0.0 and most <= float(hi.max()) <= most * 1.0001, name


# torch_scatter's fallback as TorchScript exports it: an If on whether a size computed from data is 0
EMPTY_TEST = """
<ir_version: 8, opset_import: ["" : 17]>
g (float[4] x) => (float[N] y) <int64[1] minus_one = {-1}, int64 zero = {0}> {
    where = NonZero (x)
    flat = Reshape (where, minus_one)
    kept = Gather (x, flat)
    count = Size (kept)
    empty = Equal (count, zero)
    y = If (empty) <
        then_branch = then_g () => (float[1] t) { t = Constant <value = float[1] {0.0}> () },
        else_branch = else_g () => (float[M] e) { e = Exp (kept) }
    >
}
"""


def test_an_if_on_a_condition_of_run_time_shape_runs_its_branches() -> None:
    """If was left unanalysed where its condition had a shape known only at run time (a GAT's TorchScript
    export tests sizes of edge lists that NonZero filtered); the condition holds one element whatever its
    shape, so its bounds decide the branch, or both are joined."""
    model = onnx.parser.parse_model(EMPTY_TEST)
    analysis = ranum.analyze(model, {"inputs": {"x": [-1.0, 2.0]}})
    assert not analysis.run.not_analysed and not analysis.run.unsupported
    lo, hi = analysis.bounds("y")
    assert float(lo) == 0.0 and float(np.exp(2.0)) <= float(hi) <= float(np.exp(2.0)) * 1.0001
    for seed in range(4):
        rng = np.random.default_rng(seed)
        feeds = {"x": np.where(rng.uniform(0, 1, 4) < 0.5, 0, rng.uniform(-1, 2, 4)).astype(np.float32)}
        _assert_within_bounds(analysis, Runner(model).run(feeds))


def test_integer_ranges_of_varying_length_keep_between_start_and_limit() -> None:
    """Range of a start taken from a NonZero list (a shape known only at run time) or of a limit known to a
    range: every value lies from start towards limit; both were the widest interval."""
    model = onnx.parser.parse_model("""<ir_version: 8, opset_import: ["" : 17]>
    g (float[4] x, int64 n) => (int64[N] r, int64[M] s) <int64[1] minus_one = {-1}, int64 zero = {0},
     int64 one = {1}, int64 four = {4}> {
        where = NonZero (x)
        flat = Reshape (where, minus_one)
        first = ReduceMin <keepdims = 0> (flat)
        r = Range (first, four, one)
        s = Range (zero, n, one)
    }""")
    analysis = ranum.analyze(model, {"inputs": {"x": [-1.0, 2.0], "n": [2, 6]}})
    assert not analysis.run.not_analysed and not analysis.run.unsupported
    assert [int(v) for v in analysis.bounds("s")] == [0, 5]
    lo, hi = analysis.bounds("r")
    assert analysis.bounds("first")[0].shape == () and int(lo.min()) == 0 and int(hi.max()) == 3
    for seed in range(3):
        rng = np.random.default_rng(seed)
        feeds = {"x": rng.uniform(-1.0, 2.0, 4).astype(np.float32), "n": np.array(rng.integers(2, 7), np.int64)}
        _assert_within_bounds(analysis, Runner(model).run(feeds))


def _assert_within_bounds(analysis, values: dict) -> None:
    """Every onnxruntime value of every node output lies in its (possibly unknown-shape) bounds."""
    for node in analysis.graph.nodes:
        for name in node.outputs:
            lo, hi = analysis.bounds(name)
            v = np.asarray(values[name], dtype=np.float64)
            assert ((v >= lo) & (v <= hi)).all(), name


# ``std[std == 0] = 1.0`` as torch's dynamo exporter writes it: the fill value is expanded to the number of
# zeros (a shape computed from data, which shape inference cannot give) and scattered at their places
MASKED_FILL_BY_INDEX = """
<ir_version: 8, opset_import: ["" : 18]>
g (float[1, 6] x, float[1, 6] y) => (float[1, 6] scaled, float[N] filled)
<int64[1] minus_one = {-1}, float zero = {0.0}, float one = {1.0}, float tiny = {1e-6}> {
    std = Abs (x)
    eq = Equal (std, zero)
    places = NonZero (eq)
    indices = Transpose <perm = [1, 0]> (places)
    flags = Reshape (eq, minus_one)
    counted = Cast <to = 7> (flags)
    count = ReduceSum <keepdims = 1> (counted)
    filled = Expand (one, count)
    updates = Reshape (filled, minus_one)
    replaced = ScatterND (std, indices, updates)
    divisor = Add (replaced, tiny)
    scaled = Div (y, divisor)
}
"""
MASKED_FILL_SPEC = {"inputs": {"x": [-2.0, 2.0], "y": [-3.0, 3.0]}}


def test_an_expand_to_a_count_computed_from_data_keeps_its_value() -> None:
    model = onnx.parser.parse_model(MASKED_FILL_BY_INDEX)
    report = ranum.check(model, MASKED_FILL_SPEC)
    assert not report.not_analysed_nodes and report.unsupported_ops == ()
    lo, hi = report.analysis.bounds("filled")
    assert (float(lo), float(hi)) == (1.0, 1.0)
    assert not report.findings  # the divisor is at least 1e-6: no division by zero


@pytest.mark.parametrize("zeros", [0, 2, 6])
def test_onnxruntime_values_of_a_fill_by_index_lie_in_the_bounds(zeros: int) -> None:
    model = onnx.parser.parse_model(MASKED_FILL_BY_INDEX)
    analysis = ranum.analyze(model, MASKED_FILL_SPEC)
    rng = np.random.default_rng(zeros)
    x = rng.uniform(-2, 2, (1, 6)).astype(np.float32)
    x[0, :zeros] = 0.0
    values = Runner(model).run({"x": x, "y": rng.uniform(-3, 3, (1, 6)).astype(np.float32)})
    assert values["filled"].shape == (zeros,)
    _assert_within_bounds(analysis, values)


# a spline's bins over the rows a mask selects (a neural spline flow's inputs[inside_interval_mask]): softmax
# widths, their running and whole sums, and a pad, all of a shape known only at run time
SELECTED_ROWS = """
<ir_version: 8, opset_import: ["" : 17]>
g (float[3, 4] x, float[3, 6] params) => (float[N, 6] widths, float[M, 6] running, float[K] total, float[L, 7] padded,
                                          int64[P] counted)
<float low = {-1.0}, float high = {1.0}, float floor = {1e-3}, float scale = {0.994}, int64 last = {-1},
 int64[1] axes = {1}, int64[4] pads = {0, 1, 0, 0}, float fill = {-0.5}> {
    above = Greater (x, low)
    below = Less (x, high)
    inside = And (above, below)
    marks = Cast <to = 1> (inside)
    any = ReduceMax <axes = [1], keepdims = 0> (marks)
    places = NonZero (any)
    rows = Transpose <perm = [1, 0]> (places)
    picked = GatherND (params, rows)
    probabilities = Softmax <axis = -1> (picked)
    scaled = Mul (probabilities, scale)
    widths = Add (scaled, floor)
    running = CumSum (widths, last)
    total = ReduceSum <keepdims = 0> (widths, axes)
    padded = Pad <mode = "constant"> (running, pads, fill)
    positive = Greater (picked, high)
    flags = Cast <to = 7> (positive)
    counted = ReduceSum <keepdims = 0> (flags, axes)
}
"""


def test_row_rules_over_rows_a_mask_selected_are_analysed() -> None:
    model = onnx.parser.parse_model(SELECTED_ROWS)
    report = ranum.check(model, {"inputs": {"x": [-2.0, 2.0], "params": [-5.0, 5.0]}})
    assert not report.not_analysed_nodes and not report.findings
    analysis = report.analysis
    def hull(name: str) -> tuple[float, float]:
        lo, hi = analysis.bounds(name)
        return float(np.min(lo)), float(np.max(hi))

    widths, running, total = hull("widths"), hull("running"), hull("total")
    assert widths[0] >= 1e-3 and widths[1] <= 1.0
    assert running[0] >= 0.0 and running[1] <= 18.1 and total[0] >= 0.0 and total[1] <= 18.1  # <= 18 terms
    assert hull("padded")[0] == -0.5
    assert hull("counted") == (0.0, 18.0)  # integer flags: at most all 18 of the selected rows' elements


@pytest.mark.parametrize("seed", range(4))
def test_onnxruntime_values_of_row_rules_over_selected_rows_lie_in_the_bounds(seed: int) -> None:
    model = onnx.parser.parse_model(SELECTED_ROWS)
    analysis = ranum.analyze(model, {"inputs": {"x": [-2.0, 2.0], "params": [-5.0, 5.0]}})
    rng = np.random.default_rng(seed)
    values = Runner(model).run({"x": rng.uniform(-2, 2, (3, 4)).astype(np.float32),
                                "params": rng.uniform(-5, 5, (3, 6)).astype(np.float32)})
    _assert_within_bounds(analysis, values)
