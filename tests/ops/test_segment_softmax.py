"""A graph network's softmax over segments (torch_geometric's ``softmax(src, index)``, as the dynamo exporter
writes it): ``x - scatter_max(x, index)[index]`` is at most 0, and the segment sum of its exponentials,
gathered back per row, is at least about 1 (it holds the segment maximum's ``exp(0)``)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

import ranum
from ranum.ops._segment_relations import EXP_OF_ZERO_FLOOR
from tests.zoo.runtime import Runner

# seg: the target node of each of 6 edges (3 nodes), 2 heads; the maximum starts from a minimum with the lowest
# float over the same segments (torch's include_self=False), the sum from zeros of a run-time node count
SEGMENT_SOFTMAX = """
<ir_version: 8, opset_import: ["" : 18]>
g (float[6, 2] x, int64[6] seg, int64[6] other) => (float[6, 2] p, float[6, 2] d, float[6, 2] q)
<float[3, 2] zeros = {0, 0, 0, 0, 0, 0}, int64[1] one1 = {1}, int64[1] two1 = {2}> {
    col = Unsqueeze (seg, one1)
    shape = Shape (x)
    idx = Expand (col, shape)
    lowest = Constant <value = float {-3.4028235e38}> ()
    fill = Expand (lowest, shape)
    start = ScatterElements <axis = 0, reduction = "min"> (zeros, idx, fill)
    peak = ScatterElements <axis = 0, reduction = "max"> (start, idx, x)
    m = Gather <axis = 0> (peak, seg)
    d = Sub (x, m)
    e = Exp (d)
    count = ReduceMax <keepdims = 1> (seg)
    nodes = Add (count, one1)
    sizes = Concat <axis = 0> (nodes, two1)
    empty = ConstantOfShape (sizes)
    total = ScatterElements <axis = 0, reduction = "add"> (empty, idx, e)
    den = Gather <axis = 0> (total, seg)
    p = Div (e, den)
    m_other = Gather <axis = 0> (peak, other)
    q_diff = Sub (x, m_other)
    q = Exp (q_diff)
}
"""
SPEC = {"inputs": {"x": [-60.0, 60.0], "seg": [0, 2], "other": [0, 2]}, "weights": {"default": "exact"}}


def _model(exact_segments: bool) -> onnx.ModelProto:
    model = onnx.parser.parse_model(SEGMENT_SOFTMAX)
    if exact_segments:  # a fixed graph: the segments are an initializer, compared by value
        graph = model.graph
        seg = next(i for i in graph.input if i.name == "seg")
        graph.input.remove(seg)
        graph.initializer.append(onnx.numpy_helper.from_array(np.array([0, 1, 1, 2, 2, 2], np.int64), "seg"))
    return model


@pytest.mark.parametrize("exact_segments", [False, True])
def test_a_segment_softmax_is_bounded_like_a_softmax(exact_segments: bool) -> None:
    model = _model(exact_segments)
    report = ranum.check(model, SPEC)
    analysis = report.analysis
    assert float(analysis.bounds("d")[1].max()) <= 0.0  # x minus its segment's maximum
    assert float(analysis.bounds("den")[0].min()) >= EXP_OF_ZERO_FLOOR
    lo, hi = analysis.bounds("p")
    assert float(lo.min()) >= 0.0 and float(hi.max()) <= 1.0 + 1e-5  # exp <= 1 over a sum >= 1 - 2**-20
    # rows that pick another row's segment maximum (``other``) keep the exp overflow: exp(120)
    assert [(f.op_type, f.hazard_id) for f in report.findings] == [("Exp", "exp-overflow")]
    assert report.findings[0].node == next(n.name for n in analysis.graph.nodes if n.outputs[0] == "q")
    rng = np.random.default_rng(3)
    runner = Runner(model)
    for _ in range(6):
        feeds = {"x": rng.uniform(-60, 60, (6, 2)).astype(np.float32), "other": rng.integers(0, 3, 6)}
        if not exact_segments:
            feeds["seg"] = rng.integers(0, 3, 6)
        values = runner.run(feeds)
        for name in ("d", "den", "p"):
            lo, hi = analysis.bounds(name)
            assert ((values[name] >= lo) & (values[name] <= hi)).all(), name


def test_a_sum_over_other_segments_than_the_maximum_gets_no_floor() -> None:
    """The sum's indices must fill the slots by the segments the maximum was taken over."""
    text = SEGMENT_SOFTMAX.replace("(empty, idx, e)", "(empty, moved, e)").replace(
        "    den = ", "    moved_col = Unsqueeze (other, one1)\n    moved = Expand (moved_col, shape)\n    den = ")
    assert text != SEGMENT_SOFTMAX
    analysis = ranum.analyze(onnx.parser.parse_model(text), SPEC)
    assert float(analysis.bounds("den")[0].min()) < EXP_OF_ZERO_FLOOR
