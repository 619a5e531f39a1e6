"""Hand tests of GridSample, RoiAlign and NonMaxSuppression.

The ONNX node test cases of these operators (every opset they ship with), precision (bilinear
GridSample and average RoiAlign stay inside their input's range), and NonMaxSuppression, whose
output shape depends on the scores: exact for exact inputs and agreeing with onnxruntime, an
interval of unknown shape over the valid indices otherwise.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper

from ranum.domain.interval import Interval
from ranum.graph.loader import load_model
from ranum.interpret import run_abstract
from ranum.ops import REGISTRY
from ranum.ops.sampling import NonMaxSuppression
from tests.ops.harness import run_text
from tests.ops.node_runs import node_cases, onnxruntime_outputs
from tests.ops.test_onnx_node_cases import test_concrete_and_abstract_match_onnx_reference as check_node_case

SAMPLING_OPS = {"GridSample", "RoiAlign", "NonMaxSuppression"}


@pytest.mark.parametrize(("model", "inputs"), [pytest.param(*p.values[:2], id=p.id) for p in node_cases(SAMPLING_OPS)])
def test_node_cases_of_the_sampling_operators(model: onnx.ModelProto, inputs) -> None:
    opset = max(i.version for i in model.opset_import if i.domain in ("", "ai.onnx"))
    assert REGISTRY.lookup(model.graph.node[0].op_type, "", opset) is not None
    # the reference outputs from onnxruntime: the node cases' own are rounded to 4 digits for these ops
    check_node_case(model, inputs, onnxruntime_outputs(model, inputs, registered_opset=True))




def test_grid_sample_bilinear_stays_in_the_input_range_until_float32_coordinates_break() -> None:
    """Border padding keeps a bilinear sample inside the input's range for any grid whose pixel coordinates
    float32 holds exactly; past that onnxruntime's taps and weights break (a grid of 1e7 on an 8-pixel
    side gives 4 times the largest input, 1e8 gives 0), and the bounds are unbounded."""
    text = """<ir_version: 8, opset_import: ["" : 16]>
    g (float[1, 2, 8, 8] x, float[1, 5, 5, 2] grid) => (float[1, 2, 5, 5] y) {
        y = GridSample <mode = "bilinear", padding_mode = "border"> (x, grid)
    }"""
    y = run_text(text, {"x": (1.0, 2.0), "grid": (-1e5, 1e5)}).env["y"]
    slack = 64 * float(torch.finfo(torch.float32).eps)  # error of a 4-term weighted sum of magnitude 2
    assert 1.0 - slack <= y.min() < 1.0 and 2.0 < y.max() <= 2.0 + slack
    for grid in ((-float("inf"), float("inf")), (-1e8, 1e8)):
        y = run_text(text, {"x": (1.0, 2.0), "grid": grid}).env["y"]
        assert (y.min(), y.max()) == (-float("inf"), float("inf"))
    model = onnx.parser.parse_model(text)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    broken = session.run(None, {"x": np.full((1, 2, 8, 8), 2.0, np.float32),
                                "grid": np.full((1, 5, 5, 2), 1e7, np.float32)})[0]
    assert not ((broken >= 1.0) & (broken <= 2.0)).all()


@pytest.mark.parametrize("mode", ["bilinear", "nearest", "bicubic"])
@pytest.mark.parametrize("corners", [0, 1])
def test_grid_sample_zero_padding_stays_in_range_at_any_location(mode: str, corners: int) -> None:
    """Zero padding reads a tap only where its integer coordinates lie in the plane, where onnxruntime's float32
    taps and weights are exact: locations of 1e7 to 1e30 read zeros (a deformable attention's sampling offsets
    under derived weights were unbounded, an overflow finding)."""
    text = f"""<ir_version: 8, opset_import: ["" : 16]>
    g (float[1, 2, 8, 8] x, float[1, 6, 6, 2] grid) => (float[1, 2, 6, 6] y) {{
        y = GridSample <mode = "{mode}", padding_mode = "zeros", align_corners = {corners}> (x, grid)
    }}"""
    model = onnx.parser.parse_model(text)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(corners)
    near = run_text(text, {"x": (-1.0, 2.0), "grid": (-2.0, 2.0)}).env["y"]  # some taps in the padding
    for bound in (1e7, 1e20, 3e38):
        y = run_text(text, {"x": (-1.0, 2.0), "grid": (-bound, bound)}).env["y"]
        lo, hi = float(y.min()), float(y.max())
        assert (lo, hi) == (float(near.min()), float(near.max()))
        assert mode == "bicubic" or (-1.0 - 1e-5 < lo and hi < 2.0 + 1e-5)
        for _ in range(20):
            grid = rng.choice([-1.0, 1.0], (1, 6, 6, 2)) * 10.0 ** rng.uniform(-1, np.log10(bound), (1, 6, 6, 2))
            grid[0, 0, 0] = [0.1, 10.0 ** rng.uniform(6, np.log10(bound))]  # one coordinate near, one far
            x = rng.uniform(-1.0, 2.0, (1, 2, 8, 8)).astype(np.float32)
            out = session.run(None, {"x": x, "grid": grid.astype(np.float32)})[0]
            assert np.isfinite(out).all() and lo <= out.min() and out.max() <= hi


def test_grid_sample_zero_padding_joins_zero() -> None:
    text = """<ir_version: 8, opset_import: ["" : 16]>
    g (float[1, 1, 4, 4] x, float[1, 3, 3, 2] grid) => (float[1, 1, 3, 3] y) {
        y = GridSample <mode = "nearest"> (x, grid)
    }"""
    y = run_text(text, {"x": (1.0, 2.0), "grid": (-2.0, 2.0)}).env["y"]
    assert (y.min(), y.max()) == (0.0, 2.0)


def test_grid_sample_bicubic_overshoot_is_bounded() -> None:
    text = """<ir_version: 8, opset_import: ["" : 16]>
    g (float[1, 1, 4, 4] x, float[1, 3, 3, 2] grid) => (float[1, 1, 3, 3] y) {
        y = GridSample <mode = "bicubic", padding_mode = "border"> (x, grid)
    }"""
    y = run_text(text, {"x": (0.0, 1.0), "grid": (-1.0, 1.0)}).env["y"]
    assert -0.6 < y.min() < 0.0 and 1.0 < y.max() < 1.6


def test_roi_align_average_stays_in_the_feature_map_range() -> None:
    text = """<ir_version: 8, opset_import: ["" : 16]>
    g (float[2, 3, 8, 8] x, float[4, 4] rois) => (float[4, 3, 2, 2] y)
    <int64[4] b = {0, 1, 1, 0}> {
        y = RoiAlign <mode = "avg", output_height = 2, output_width = 2> (x, rois, b)
    }"""
    y = run_text(text, {"x": (-1.0, 3.0), "rois": (0.0, 7.0)}).env["y"]
    slack = 1024 * float(torch.finfo(torch.float32).eps)  # sum of at most 25 samples of 4 taps, magnitude 3
    assert -1.0 - slack <= y.min() and y.max() <= 3.0 + slack


def _nms_model(center: int) -> onnx.ModelProto:
    node = helper.make_node("NonMaxSuppression", ["boxes", "scores", "limit", "iou", "floor"], ["selected"],
                            center_point_box=center)
    inits = [helper.make_tensor("limit", TensorProto.INT64, [1], [3]),
             helper.make_tensor("iou", TensorProto.FLOAT, [1], [0.4]),
             helper.make_tensor("floor", TensorProto.FLOAT, [1], [0.2])]
    graph = helper.make_graph([node], "nms", [helper.make_tensor_value_info("boxes", TensorProto.FLOAT, [2, 6, 4]),
                                              helper.make_tensor_value_info("scores", TensorProto.FLOAT, [2, 3, 6])],
                              [helper.make_tensor_value_info("selected", TensorProto.INT64, [None, 3])],
                              initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)])
    model.ir_version = 8
    return model


@pytest.mark.parametrize("center", [0, 1])
@pytest.mark.parametrize("seed", range(6))
def test_non_max_suppression_agrees_with_onnxruntime(center: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    boxes = rng.uniform(0, 4, (2, 6, 4)).astype(np.float32)
    boxes[0, 3] = boxes[0, 1]  # identical boxes and tied scores
    scores = rng.choice(np.array([0.1, 0.3, 0.5, 0.9], dtype=np.float32), (2, 3, 6))
    model = _nms_model(center)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    expected = session.run(None, {"boxes": boxes, "scores": scores})[0]
    rule = NonMaxSuppression(center_point_box=center)
    got = rule.concrete(None, torch.from_numpy(boxes), torch.from_numpy(scores), torch.tensor([3]),
                        torch.tensor([0.4]), torch.tensor([0.2]))
    np.testing.assert_array_equal(got.numpy(), expected)


def test_non_max_suppression_of_ranges_has_an_unknown_shape_over_the_indices() -> None:
    graph, _ = load_model(_nms_model(0))
    initial = {"boxes": Interval.uniform(0.0, 4.0, (2, 6, 4), TensorProto.FLOAT),
               "scores": Interval.uniform(0.0, 1.0, (2, 3, 6), TensorProto.FLOAT)}
    for name, proto in graph.initializers.items():
        initial[name] = Interval.point(torch.from_numpy(onnx.numpy_helper.to_array(proto).copy()), proto.data_type)
    selected = run_abstract(graph, initial).env["selected"]
    assert selected.shape is None and (selected.min(), selected.max()) == (0, 5)
