"""The ai.onnx.ml operators in whole pipelines as skl2onnx writes them (ZipMap's sequence of maps included),
and their hazards confirmed in onnxruntime."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

import ranum
from ranum.confirm import SearchConfig, confirm

ML = "ai.onnx.ml"


def _pipeline(nodes: list[onnx.NodeProto], outputs: list[onnx.ValueInfoProto], rows: int = 2) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "pipeline", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [rows, 3])],
                              outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(ML, 3)])
    model.ir_version = 8
    return model


def _classifier_pipeline() -> onnx.ModelProto:
    """StandardScaler, then a three-class logistic regression's scores as probabilities, zipped to maps."""
    nodes = [
        helper.make_node("Scaler", ["x"], ["scaled"], domain=ML, offset=[0.5, -1.0, 2.0], scale=[2.0, 0.5, 0.25]),
        helper.make_node("LinearClassifier", ["scaled"], ["label", "scores"], domain=ML,
                         coefficients=[0.5, -1.25, 2.0, 0.75, -0.3, 1.5, 1.0, 0.25, -2.0], intercepts=[0.5, -1.0, 0.0],
                         classlabels_ints=[3, 7, 9], post_transform="LOGISTIC"),
        helper.make_node("Normalizer", ["scores"], ["probabilities"], domain=ML, norm="L1"),
        helper.make_node("ZipMap", ["probabilities"], ["maps"], domain=ML, classlabels_int64s=[3, 7, 9]),
    ]
    maps = helper.make_sequence_type_proto(helper.make_map_type_proto(
        TensorProto.INT64, helper.make_tensor_type_proto(TensorProto.FLOAT, None)))
    outputs = [helper.make_tensor_value_info("label", TensorProto.INT64, [2]),
               helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [2, 3]),
               helper.make_value_info("maps", maps)]
    return _pipeline(nodes, outputs)


def test_a_classifier_pipeline_is_analysed_whole_and_its_bounds_hold_in_onnxruntime() -> None:
    model = _classifier_pipeline()
    report = ranum.check(model, {"inputs": {"x": [-5, 5]}})
    assert not report.unsupported_ops and not report.not_analysed_nodes
    assert not report.findings  # a logistic never underflows a whole row to 0 before the L1 norm
    analysis = ranum.analyze(model, {"inputs": {"x": [-5, 5]}})
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    for _ in range(20):
        x = rng.uniform(-5, 5, size=(2, 3)).astype(np.float32)
        label, probabilities, maps = session.run(None, {"x": x})
        for name, value in (("label", label), ("probabilities", probabilities)):
            lo, hi = analysis.bounds(name)
            assert ((value >= lo) & (value <= hi)).all(), name
        assert [sorted(m) for m in maps] == [[3, 7, 9]] * 2


@pytest.mark.parametrize(("low", "high", "found"), [(-5.0, 5.0, False), (-1e20, 1e20, True), (0.0, 2e19, True)])
def test_an_l2_normalizer_is_reported_exactly_where_a_square_can_overflow(low: float, high: float,
                                                                         found: bool) -> None:
    model = _pipeline([helper.make_node("Normalizer", ["x"], ["y"], domain=ML, norm="L2")],
                      [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])])
    report = ranum.check(model, {"inputs": {"x": [low, high]}})
    assert [f.hazard_id for f in report.findings] == (["normalizer-square-overflow"] if found else [])


def _post_transform_model(op: str, transform: str, scale: float) -> onnx.ModelProto:
    # without intercepts, x = 0 gives every score 0: no exponential for SOFTMAX_ZERO to sum
    intercepts = [0.0, 0.0] if transform == "SOFTMAX_ZERO" else [0.1, 0.0]
    linear = {"coefficients": [0.3, 0.2, 0.1, 0.4, -0.2, 0.3], "intercepts": intercepts}
    if op == "LinearClassifier":
        node = helper.make_node(op, ["scaled"], ["label", "y"], domain=ML, classlabels_ints=[0, 1],
                                post_transform=transform, **linear)
        outputs = [helper.make_tensor_value_info("label", TensorProto.INT64, [2]),
                   helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 2])]
    else:
        node = helper.make_node(op, ["scaled"], ["y"], domain=ML, targets=2, post_transform=transform, **linear)
        outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 2])]
    scaler = helper.make_node("Scaler", ["x"], ["scaled"], domain=ML, offset=[0.0], scale=[scale])
    return _pipeline([scaler, node], outputs)


@pytest.mark.parametrize(("op", "transform", "hazard"), [("LinearRegressor", "PROBIT", "probit-outside-unit"),
                                                         ("LinearClassifier", "PROBIT", "probit-outside-unit"),
                                                         ("LinearClassifier", "SOFTMAX_ZERO",
                                                          "softmax-zero-empty-row")])
def test_post_transform_hazards_are_found_and_confirmed(op: str, transform: str, hazard: str, tmp_path) -> None:
    model = _post_transform_model(op, transform, 1.0)
    path = tmp_path / "model.onnx"
    onnx.save(model, path)
    spec = {"inputs": {"x": [-2, 2]}}
    assert hazard in {f.hazard_id for f in ranum.check(path, spec).findings}
    results = confirm(path, spec, search_config=SearchConfig(seconds=5)).results
    assert any(r.status == "confirmed" for r in results if r.op_type == op)


def test_probit_of_scores_inside_the_unit_interval_is_clean() -> None:
    model = _post_transform_model("LinearRegressor", "PROBIT", 1.0)
    report = ranum.check(model, {"inputs": {"x": [0.5, 0.9]}})  # scores within [0.35, 0.73] and [0.2, 0.36]
    assert not report.findings


def test_a_tree_ensemble_is_bounded_by_the_leaves_its_input_range_reaches() -> None:
    """Tree 0 splits on x0 <= 0.5: with every feature in [0.6, 3] only its false leaf (1.5 on target 0) is
    reached; tree 1 (x1 >= 0, then x0 == 1) reaches its leaf of 4.0 on target 1 or its leaf of 0.75 on target 0.
    So target 0 is 0.5 + 1.5 + [0, 0.75], and target 1 is 4.0 - 1.0 or, with no leaf scoring it, 0 (onnxruntime
    writes 0 there, without the base value): bounded by [-1, 3], a leaf without the target counting as 0."""
    from tests.ops.cases_classical_ml import FOREST

    node = helper.make_node("TreeEnsembleRegressor", ["x"], ["y"], domain=ML, base_values=[0.5, -1.0], **FOREST)
    model = _pipeline([node], [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 2])])
    lo, hi = ranum.analyze(model, {"inputs": {"x": [0.6, 3.0]}}).bounds("y")
    assert lo[:, 0].min() == pytest.approx(2.0, abs=1e-5) and hi[:, 0].max() == pytest.approx(2.75, abs=1e-5)
    assert lo[:, 1].min() == pytest.approx(-1.0, abs=1e-5) and hi[:, 1].max() == pytest.approx(3.0, abs=1e-5)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    for _ in range(50):
        x = rng.uniform(0.6, 3.0, size=(2, 3)).astype(np.float32)
        x[:, 0] = rng.choice([0.6, 1.0, 3.0], size=2)
        y = session.run(None, {"x": x})[0]
        assert ((y >= lo) & (y <= hi)).all()


def _binary_tree(class_id: int) -> onnx.ModelProto:
    """One stump over x[0] < 0, two labels, the leaves' weights (0.3, 0.9) scoring class ``class_id``."""
    node = helper.make_node(
        "TreeEnsembleClassifier", ["x"], ["label", "probs"], domain=ML, classlabels_int64s=[0, 1],
        nodes_treeids=[0, 0, 0], nodes_nodeids=[0, 1, 2], nodes_featureids=[0, 0, 0], nodes_values=[0.0, 0.0, 0.0],
        nodes_modes=["BRANCH_LT", "LEAF", "LEAF"], nodes_truenodeids=[1, 0, 0], nodes_falsenodeids=[2, 0, 0],
        class_treeids=[0, 0], class_nodeids=[1, 2], class_ids=[class_id, class_id], class_weights=[0.3, 0.9])
    return _pipeline([node], [helper.make_tensor_value_info("label", TensorProto.INT64, [2]),
                              helper.make_tensor_value_info("probs", TensorProto.FLOAT, [2, 2])])


@pytest.mark.parametrize("class_id", [0, 1])
def test_a_binary_forest_scores_as_onnxruntime_whichever_class_its_weights_name(class_id: int) -> None:
    """Weights of class 0: [1 - s, s]; of class 1: onnxruntime leaves the first score at 0."""
    model = _binary_tree(class_id)
    low, high = ranum.analyze(model, {"inputs": {"x": [-3, 3]}}).bounds("probs")
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    _, probs = session.run(None, {"x": np.array([[-1, 0, 0], [1, 0, 0]], np.float32)})
    assert bool(np.all((low <= probs) & (probs <= high)))


@pytest.mark.parametrize("norm", ["L1", "MAX"])
def test_a_double_past_float32_range_makes_a_normalizer_row_nan(norm: str) -> None:
    node = helper.make_node("Normalizer", ["x"], ["y"], domain=ML, norm=norm)
    graph = helper.make_graph([node], "normalizer", [helper.make_tensor_value_info("x", TensorProto.DOUBLE, [1, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(ML, 1)])
    model.ir_version = 8
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    (y,) = session.run(None, {"x": np.array([[1e39, 1.0, 2.0]])})
    assert np.isnan(y).any()
    findings = ranum.check(model, {"inputs": {"x": [-1e39, 1e39]}}).findings
    assert [f.hazard_id for f in findings] == ["normalizer-float32-overflow"]


def _three_class_stump(transform: str, weights: tuple[float, float]) -> onnx.ModelProto:
    """One stump over x[0] < 0 whose leaves score classes 0, 1 and 2 alike: ``weights[0]`` on the true side,
    ``weights[1]`` on the false one, then ``transform``."""
    node = helper.make_node(
        "TreeEnsembleClassifier", ["x"], ["label", "scores"], domain=ML, classlabels_int64s=[0, 1, 2],
        nodes_treeids=[0, 0, 0], nodes_nodeids=[0, 1, 2], nodes_featureids=[0, 0, 0], nodes_values=[0.0, 0.0, 0.0],
        nodes_modes=["BRANCH_LT", "LEAF", "LEAF"], nodes_truenodeids=[1, 0, 0], nodes_falsenodeids=[2, 0, 0],
        class_treeids=[0] * 6, class_nodeids=[1, 1, 1, 2, 2, 2], class_ids=[0, 1, 2] * 2,
        class_weights=[weights[0]] * 3 + [weights[1]] * 3, post_transform=transform)
    return _pipeline([node], [helper.make_tensor_value_info("label", TensorProto.INT64, [2]),
                              helper.make_tensor_value_info("scores", TensorProto.FLOAT, [2, 3])])


@pytest.mark.parametrize(("transform", "weights", "hazard"), [("PROBIT", (0.25, 1.5), "probit-outside-unit"),
                                                              ("SOFTMAX_ZERO", (0.25, 0.0), "softmax-zero-empty-row")])
def test_a_forest_post_transform_hazard_is_named_and_confirmed(transform: str, weights: tuple[float, float],
                                                               hazard: str, tmp_path) -> None:
    """The scores a reached leaf gives (1.5 outside PROBIT's (0, 1); all 0, which SOFTMAX_ZERO skips: 0 / 0) make
    the transform NaN or infinite: reported as the transform's hazard, and confirmed in onnxruntime."""
    path = tmp_path / "forest.onnx"
    onnx.save(_three_class_stump(transform, weights), path)
    spec = {"inputs": {"x": [-3, 3]}}
    described = {f.hazard for f in ranum.check(path, spec).findings if f.hazard_id == hazard}
    assert described
    results = confirm(path, spec, search_config=SearchConfig(seconds=5)).results
    assert any(r.status == "confirmed" for r in results if r.hazard in described)


def test_a_forest_whose_reached_scores_stay_inside_the_unit_interval_has_no_probit_finding() -> None:
    model = _three_class_stump("PROBIT", (0.25, 1.5))
    report = ranum.check(model, {"inputs": {"x": [-3, -1]}})  # only the true leaf (0.25) is reached
    assert not report.findings
