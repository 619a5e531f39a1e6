"""Loading: classification of tensors, symbolic dims, stable node names, default ranges."""

from __future__ import annotations

import re

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

import ranum
from ranum.domain.ranges import derived_range
from ranum.errors import AnalysisError
from tests.models import LOG_OF_DIFFERENCE, parse


def _mlp() -> onnx.ModelProto:
    inits = [
        numpy_helper.from_array(np.full((3, 2), 0.5, np.float32), "W"),
        numpy_helper.from_array(np.array([2.0], np.float32), "scale"),
        numpy_helper.from_array(np.array([1, 2], np.int64), "shape"),
    ]
    nodes = [helper.make_node("MatMul", ["x", "W"], ["h"]), helper.make_node("Mul", ["h", "scale"], ["y"])]
    graph = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info("x", 1, ["batch", 3])],
                              [helper.make_tensor_value_info("y", 1, ["batch", 2])], initializer=inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_inputs_weights_constants_are_told_apart_without_names() -> None:
    analysis = ranum.analyze(_mlp(), {"inputs": {"x": [0, 1]}, "dims": {"batch": 4}})
    roles = {a.tensor: (a.role, a.source) for a in analysis.assumptions}
    assert roles == {
        "x": ("input", "spec"),
        "W": ("weight", "derived"),
        "scale": ("constant", "exact"),
        "shape": ("constant", "exact"),
    }
    assert analysis.dims == {"batch": 4}
    lo, hi = analysis.bounds("x")
    assert lo.shape == (4, 3)


def test_symbolic_dims_default_to_one_and_are_reported() -> None:
    report = ranum.check(_mlp(), {"inputs": {"x": [0, 1]}})
    assert report.analysis.dims == {"batch": 1}
    assert any("batch" in w for w in report.warnings)


def test_missing_input_range_uses_documented_default_with_warning() -> None:
    report = ranum.check(parse(LOG_OF_DIFFERENCE))
    assert any("no range" in w and "[-1, 1]" in w for w in report.warnings)


def _embedding_lookup() -> onnx.ModelProto:
    """Token ids (int32, cast to int64 and unsqueezed) select rows of a 50-row table and of a 7-row one (the
    smaller one bounds valid ids); a mask is multiplied in."""
    inits = [numpy_helper.from_array(np.ones((50, 4), np.float32), "table"),
             numpy_helper.from_array(np.ones((7, 4), np.float32), "positions"),
             numpy_helper.from_array(np.array([0], np.int64), "axis")]
    nodes = [helper.make_node("Cast", ["ids"], ["ids64"], to=TensorProto.INT64),
             helper.make_node("Unsqueeze", ["ids64", "axis"], ["batched"]),
             helper.make_node("Gather", ["table", "batched"], ["rows"]),
             helper.make_node("Gather", ["positions", "ids"], ["places"]),
             helper.make_node("Add", ["rows", "places"], ["both"]),
             helper.make_node("Cast", ["mask"], ["weight"], to=TensorProto.FLOAT),
             helper.make_node("Mul", ["both", "weight"], ["y"])]
    graph = helper.make_graph(nodes, "lookup", [helper.make_tensor_value_info("ids", TensorProto.INT32, [5]),
                                                helper.make_tensor_value_info("mask", TensorProto.INT64, [1, 5, 1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 5, 4])], initializer=inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_integer_inputs_that_index_a_table_default_to_its_rows() -> None:
    report = ranum.check(_embedding_lookup())
    ranges = {a.tensor: (a.low, a.high, a.reason) for a in report.analysis.assumptions if a.role == "input"}
    assert ranges["ids"] == (0.0, 6.0, "the rows of 'positions' it indexes")
    assert ranges["mask"] == (0.0, 1.0, "")  # not an index: the plain default
    assert any("assumed [0, 6], the rows of 'positions'" in w for w in report.warnings)
    assert {"tensor": "ids", "role": "input", "range": [0, 6], "source": "default",
            "reason": "the rows of 'positions' it indexes"} in report.to_dict()["assumptions"]
    given = ranum.check(_embedding_lookup(), {"inputs": {"ids": [0, 3]}})
    assert given.analysis.bounds("ids")[1].max() == 3


def test_unnamed_nodes_get_stable_names() -> None:
    first = ranum.check(parse(LOG_OF_DIFFERENCE), {"inputs": {"x": [0, 1], "y": [0, 1]}})
    second = ranum.check(parse(LOG_OF_DIFFERENCE), {"inputs": {"x": [0, 1], "y": [0, 1]}})
    assert [f.node for f in first.findings] == [f.node for f in second.findings] == ["Log_1"]
    assert any("unnamed" in w for w in first.warnings)


def test_weights_exact_mode_uses_values() -> None:
    analysis = ranum.analyze(_mlp(), {"inputs": {"x": [1, 1]}, "weights": {"default": "exact"}})
    lo, hi = analysis.bounds("y")
    assert np.allclose(lo, 3.0, rtol=1e-5) and np.allclose(hi, 3.0, rtol=1e-5)


def test_per_weight_override_wins() -> None:
    analysis = ranum.analyze(_mlp(), {"inputs": {"x": [0, 1]}, "weights": {"W": [-2, 2]}})
    lo, hi = analysis.bounds("W")
    assert lo.min() <= -2 and hi.max() >= 2 and lo.min() > -2.001


def test_derived_weight_ranges() -> None:
    assert derived_range(torch.zeros(4)) == (-1.0, 1.0)
    assert derived_range(torch.ones(4)) == (0.0, 2.0)
    low, high = derived_range(torch.tensor([-0.1, 0.1]))
    assert np.isclose(low, -0.3) and np.isclose(high, 0.3)
    assert derived_range(torch.tensor([0.5, 3.0]))[0] == 0.0


def _large_weight_model(weight: onnx.TensorProto, listed_as_input: bool = False) -> onnx.ModelProto:
    """x (1, 64) @ W (64, 32), then Reshape by a small int64 initializer: shapes need its value."""
    shape = numpy_helper.from_array(np.array([4, 8], np.int64), "shape")
    nodes = [helper.make_node("MatMul", ["x", "W"], ["h"]), helper.make_node("Reshape", ["h", "shape"], ["r"]),
             helper.make_node("Log", ["r"], ["y"])]
    inputs = [helper.make_tensor_value_info("x", 1, [1, 64])]
    if listed_as_input:
        inputs.append(helper.make_tensor_value_info("W", 1, [64, 32]))
    graph = helper.make_graph(nodes, "large", inputs, [helper.make_tensor_value_info("y", 1, [4, 8])],
                              initializer=[weight, shape])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_large_weights_keep_their_values_and_shapes_are_inferred() -> None:
    weight = numpy_helper.from_array(np.full((64, 32), 0.25, np.float32), "W")
    for listed in (False, True):
        spec = {"inputs": {"x": [1, 2]}, "weights": {"default": "exact"}}
        analysis = ranum.analyze(_large_weight_model(weight, listed), spec)
        lo, hi = analysis.bounds("r")
        assert lo.shape == (4, 8)
        assert float(lo.min()) >= 16 * 0.99 and float(hi.max()) <= 32 * 1.01
        assert analysis.graph.tensors["h"].shape == (1, 32)
        assert len(analysis.graph.proto.graph.initializer[0].raw_data) == 64 * 32 * 4


def test_large_weight_with_a_truncated_payload_is_a_model_error() -> None:
    weight = numpy_helper.from_array(np.full((64, 32), 0.25, np.float32), "W")
    weight.raw_data = weight.raw_data[:-8]
    try:
        ranum.analyze(_large_weight_model(weight), {"inputs": {"x": [1, 2]}})
    except ranum.ModelError as exc:
        assert "'W'" in str(exc) and "2046" in str(exc)
    else:
        raise AssertionError("a truncated weight was accepted")


def test_an_initializer_holding_the_lowest_float_is_a_mask_not_a_weight() -> None:
    mask = numpy_helper.from_array(np.triu(np.full((4, 4), np.finfo(np.float32).min, np.float32), 1), "causal")
    graph = helper.make_graph([helper.make_node("Add", ["x", "causal"], ["y"]),
                               helper.make_node("Softmax", ["y"], ["p"], axis=-1)], "masked",
                              [helper.make_tensor_value_info("x", 1, [4, 4])],
                              [helper.make_tensor_value_info("p", 1, [4, 4])], initializer=[mask])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    report = ranum.check(model, {"inputs": {"x": [-10, 10]}})
    roles = {a.tensor: (a.role, a.source) for a in report.analysis.assumptions}
    assert roles["causal"] == ("constant", "exact")
    assert report.findings == ()  # the diagonal stays unmasked: no row of -inf, no overflow


@pytest.mark.parametrize(("values", "role"), [
    ([[9, 12, 9], [12, 16, 12], [9, 12, 9]], "constant"),  # a padded 3x3 average pooling's window sizes
    ([[0, 1, 2], [3, 4, 5], [6, 7, 8]], "constant"),  # positions
    ([[1, 1, 1], [1, 1, 1], [1, 1, 1]], "weight"),  # ones: a scale's initial value
    ([[1, -1, 0], [0, 1, 1], [-1, 0, 1]], "weight"),  # ternary
    ([[9, 12, 9], [12, 16, 12], [9, 12, 9.5]], "weight"),
])
def test_an_initializer_of_folded_counts_is_a_constant_not_a_weight(values, role: str) -> None:
    """The dynamo exporter folds a padded AveragePool's divisors (window sizes 9 to 16) into a float
    initializer: derived ranges took it as a weight, [0, 32], and reported a division by zero."""
    counts = numpy_helper.from_array(np.array(values, np.float32), "counts")
    graph = helper.make_graph([helper.make_node("Div", ["x", "counts"], ["y"])], "pool_mean",
                              [helper.make_tensor_value_info("x", 1, [3, 3])],
                              [helper.make_tensor_value_info("y", 1, [3, 3])], initializer=[counts])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    report = ranum.check(model, {"inputs": {"x": [-10, 10]}})
    roles = {a.tensor: (a.role, a.source) for a in report.analysis.assumptions}
    assert roles["counts"] == ((role, "derived") if role == "weight" else (role, "exact"))
    if values[0][0] == 9 and role == "constant":
        assert not report.findings  # the divisors are 9 to 16


def _resize_then(consumer: str | None, scale: float = 2.0) -> onnx.ModelProto:
    """x -> Resize(scales) (-> consumer(y, scales) where given): the scales are a float initializer."""
    scales = numpy_helper.from_array(np.array([1.0, 1.0, scale, scale], np.float32), "scales")
    nodes = [helper.make_node("Resize", ["x", "", "scales"], ["y"], mode="linear")]
    side = int(2 * scale)
    outputs = [helper.make_tensor_value_info("y", 1, [1, 1, side, side])]
    if consumer:
        nodes.append(helper.make_node(consumer, ["scales", "scales"], ["z"]))
        outputs.append(helper.make_tensor_value_info("z", 1, [4]))
    graph = helper.make_graph(nodes, "resize", [helper.make_tensor_value_info("x", 1, [1, 1, 2, 2])], outputs,
                              initializer=[scales])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def test_an_initializer_read_only_as_a_setting_is_a_constant_in_every_weight_mode() -> None:
    report = ranum.check(_resize_then(None), {"inputs": {"x": [0, 1]}})
    roles = {a.tensor: (a.role, a.source) for a in report.analysis.assumptions}
    assert roles["scales"] == ("constant", "exact")
    assert report.unsupported_ops == ()  # Resize needs exact scales: a derived weight range had none
    lo, hi = report.analysis.bounds("y")
    assert lo.shape == (1, 1, 4, 4) and lo.min() >= 0.0 and hi.max() <= 1.0 + 1e-5  # the taps' hull


def test_an_initializer_also_read_as_data_stays_a_weight_unless_the_spec_says_otherwise() -> None:
    # scales of 1.5: integers of 2 or more, not all equal, would be folded counts (a constant) anyway
    report = ranum.check(_resize_then("Mul", 1.5), {"inputs": {"x": [0, 1]}})
    roles = {a.tensor: (a.role, a.source) for a in report.analysis.assumptions}
    assert roles["scales"] == ("weight", "derived")
    exact = ranum.check(_resize_then("Mul", 1.5), {"inputs": {"x": [0, 1]}, "weights": {"scales": "exact"}})
    assert exact.unsupported_ops == ()


def test_per_channel_quantization_scales_are_settings() -> None:
    weight = numpy_helper.from_array(np.array([[0.5, -0.25], [1.0, 2.0]], np.float32), "w")
    scale = numpy_helper.from_array(np.array([0.01, 0.02], np.float32), "w_scale")
    zero = numpy_helper.from_array(np.zeros(2, np.int8), "w_zero")
    nodes = [helper.make_node("QuantizeLinear", ["w", "w_scale", "w_zero"], ["wq"], axis=0),
             helper.make_node("DequantizeLinear", ["wq", "w_scale", "w_zero"], ["wd"], axis=0),
             helper.make_node("MatMul", ["x", "wd"], ["y"])]
    graph = helper.make_graph(nodes, "qdq", [helper.make_tensor_value_info("x", 1, [1, 2])],
                              [helper.make_tensor_value_info("y", 1, [1, 2])], initializer=[weight, scale, zero])
    report = ranum.check(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]),
                         {"inputs": {"x": [0, 1]}})
    roles = {a.tensor: (a.role, a.source) for a in report.analysis.assumptions}
    assert roles["w_scale"] == ("constant", "exact") and roles["w"] == ("weight", "derived")
    assert report.findings == ()  # a derived scale range reached 0: a false division by zero


def test_nodes_out_of_topological_order_are_sorted_not_rejected() -> None:
    """onnxruntime's float16 converter with keep_io_types appends its input Casts after their consumers;
    onnxruntime sorts the nodes itself, and so does the loader (the ONNX checker rejects such a graph)."""
    nodes = [helper.make_node("Log", ["h"], ["y"]), helper.make_node("Cast", ["x"], ["h"], to=TensorProto.FLOAT16)]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT16, [3])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(onnx.checker.ValidationError):
        onnx.checker.check_model(model)
    report = ranum.check(model, {"inputs": {"x": [0.0, 1.0]}})
    assert [(f.op_type, f.hazard_id) for f in report.findings] == [("Log", "log-nonpositive")]
    assert [n.op_type for n in report.analysis.graph.nodes] == ["Cast", "Log"]
    assert [n.op_type for n in model.graph.node] == ["Log", "Cast"]  # the caller's model is left as it is


def test_an_operator_of_onnxruntimes_layout_domain_is_unsupported_with_the_reason() -> None:
    node = helper.make_node("ReorderInput", ["x"], ["y"], domain="com.microsoft.nchwc")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 2, 2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, 2, 2])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                    helper.make_opsetid("com.microsoft.nchwc", 1)])
    report = ranum.check(model, {"inputs": {"x": [0.0, 1.0]}})
    assert report.unsupported_ops == ("ReorderInput",)
    assert "ORT_ENABLE_ALL" in " ".join(report.unsupported_nodes.values())


def test_dims_naming_no_symbolic_dimension_or_not_positive_are_spec_errors() -> None:
    with pytest.raises(ranum.RangeSpecError, match=r"'btach'.*those are: 'batch'"):
        ranum.check(_mlp(), {"dims": {"btach": 4}})  # a typo would leave batch at 1 unnoticed
    with pytest.raises(ranum.RangeSpecError, match="positive integer"):
        ranum.check(_mlp(), {"dims": {"batch": 0}})
    report = ranum.check(_mlp(), {})
    assert any("'batch' set to 1 (no value given: pass --dim batch=N" in w for w in report.warnings)
    assert any(w == "symbolic dimension 'batch' set to 4" for w in ranum.check(_mlp(), {"dims": {"batch": 4}}).warnings)


def test_a_checker_message_over_several_lines_keeps_the_node_it_names() -> None:
    graph = helper.make_graph([helper.make_node("Relu", ["h"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3])])
    with pytest.raises(ranum.ModelError, match=r"input 'h' of node: name:\s+OpType: Relu is not output"):
        ranum.check(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))


def test_sorting_nodes_reads_sparse_initializer_names_without_crashing() -> None:
    """The node sort took a sparse initializer's name from a field it does not have (AttributeError); sparse
    initializers stay unsupported, reported as the clean error they were before."""
    values = numpy_helper.from_array(np.array([1.0, 2.0], np.float32), "w")
    sparse = helper.make_sparse_tensor(values, numpy_helper.from_array(np.array([0, 3], np.int64), "w_idx"), [4])
    graph = helper.make_graph([helper.make_node("Add", ["x", "w"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])], sparse_initializer=[sparse])
    with pytest.raises(AnalysisError, match="reads 'w', which nothing defines"):
        ranum.check(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), {"inputs": {"x": [0, 1]}})


@pytest.mark.parametrize("declared", ["no shape", "no type"])
def test_graph_outputs_declared_without_a_shape_or_type_are_typed_by_inference(declared: str) -> None:
    """``helper.make_tensor_value_info(name, type, None)`` declares an output without a shape; the ONNX checker
    requires one (and a type), onnxruntime runs the model: the loader checks the rest and infers them."""
    output = helper.make_tensor_value_info("y", TensorProto.FLOAT, None) if declared == "no shape" else \
        onnx.ValueInfoProto(name="y")
    nodes = [helper.make_node("Relu", ["x"], ["h"]), helper.make_node("Log", ["h"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])], [output])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(onnx.checker.ValidationError, match="required but missing"):
        onnx.checker.check_model(model)
    report = ranum.check(model, {"inputs": {"x": [-1.0, 1.0]}})
    assert [(f.op_type, f.hazard_id) for f in report.findings] == [("Log", "log-nonpositive")]
    assert report.analysis.bounds("y")[0].shape == (2, 3)
    assert not model.graph.output[0].type.tensor_type.HasField("shape")  # the caller's model is left as it is
    broken = helper.make_graph([helper.make_node("Relu", ["z"], ["y"])], "g", graph.input, [output])
    with pytest.raises(ranum.ModelError, match="ONNX checker"):  # the rest of the graph is still checked
        ranum.check(helper.make_model(broken, opset_imports=[helper.make_opsetid("", 17)]))


_EXPORT_KIND = "pkg.torch.export.graph_signature.InputSpec.kind"


def _normalised_then_batch_norm(kinds: dict[str, str], std: list[float]) -> onnx.ModelProto:
    """``BatchNormalization((x - mean) / std)`` with the export kinds torch.onnx's dynamo exporter records
    as value-info metadata (``kinds``: initializer -> kind)."""
    inits = [numpy_helper.from_array(np.array(v, np.float32).reshape(1, 3, 1, 1), n)
             for n, v in (("mean", [0.485, 0.456, 0.406]), ("std", std))]
    inits += [numpy_helper.from_array(np.array(v, np.float32), n)
              for n, v in (("gamma", [1.0, 1.0, 1.0]), ("beta", [0.0, 0.0, 0.0]), ("running_mean", [0.0, 0.0, 0.0]),
                           ("running_var", [1.0, 1.0, 1.0]))]
    nodes = [helper.make_node("Sub", ["x", "mean"], ["centred"]), helper.make_node("Div", ["centred", "std"], ["z"]),
             helper.make_node("BatchNormalization", ["z", "gamma", "beta", "running_mean", "running_var"], ["y"])]
    infos = []
    for name, kind in kinds.items():
        info = helper.make_tensor_value_info(name, 1, None)
        info.metadata_props.add(key=_EXPORT_KIND, value=kind)
        infos.append(info)
    graph = helper.make_graph(nodes, "normalised", [helper.make_tensor_value_info("x", 1, [1, 3, 2, 2])],
                              [helper.make_tensor_value_info("y", 1, [1, 3, 2, 2])], initializer=inits,
                              value_info=infos)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


_BUFFERS = {"mean": "BUFFER", "std": "BUFFER", "gamma": "PARAMETER", "beta": "PARAMETER",
            "running_mean": "BUFFER", "running_var": "BUFFER"}


def test_a_module_buffer_of_distinct_values_is_a_constant_in_derived_mode() -> None:
    """An image normalisation's std registered as a buffer: training never changes it, but derived ranges
    took it as a weight ([0, 0.458]) and reported a division by zero (a dynamo export's value info says
    which initializers are buffers)."""
    report = ranum.check(_normalised_then_batch_norm(_BUFFERS, [0.229, 0.224, 0.225]), {"inputs": {"x": [0, 1]}})
    roles = {a.tensor: (a.role, a.source) for a in report.analysis.assumptions}
    assert roles["mean"] == roles["std"] == ("constant", "exact")
    assert report.findings == ()
    assert any("'mean', 'std'" in warning for warning in report.warnings)
    # a BatchNormalization's running statistics are buffers that training updates, and so are the
    # parameters: weights, as before
    for name in ("gamma", "beta", "running_mean", "running_var"):
        assert roles[name] == ("weight", "derived")


@pytest.mark.parametrize(("kinds", "std"), [
    ({}, [0.229, 0.224, 0.225]),  # no metadata (the TorchScript exporter, another tool)
    ({"std": "PARAMETER"}, [0.229, 0.224, 0.225]),  # a learned scale
    ({"std": "BUFFER"}, [1.0, 1.0, 1.0]),  # one repeated value: a statistic's starting point
])
def test_a_parameter_or_a_buffer_of_one_value_stays_a_weight(kinds: dict[str, str], std: list[float]) -> None:
    report = ranum.check(_normalised_then_batch_norm(kinds, std), {"inputs": {"x": [0, 1]}})
    roles = {a.tensor: (a.role, a.source) for a in report.analysis.assumptions}
    assert roles["std"] == ("weight", "derived")
    assert [f.op_type for f in report.findings] == ["Div"]


def test_a_range_given_for_a_buffer_makes_it_a_weight_again() -> None:
    model = _normalised_then_batch_norm(_BUFFERS, [0.229, 0.224, 0.225])
    report = ranum.check(model, {"inputs": {"x": [0, 1]}, "weights": {"std": [0, 1]}})
    roles = {a.tensor: (a.role, a.source) for a in report.analysis.assumptions}
    assert roles["std"] == ("weight", "spec")
    assert [f.op_type for f in report.findings] == ["Div"]
    exact = ranum.check(model, {"inputs": {"x": [0, 1]}, "weights": {"default": "exact"}})
    assert exact.findings == () and not any("buffers" in warning for warning in exact.warnings)


def _folded_schedule(sources: str, signature: str | None) -> onnx.ModelProto:
    """``x / sqrt(table[t])`` with the table an initializer that torch.onnx's optimizer folded from
    ``sources`` (its ``folded_from`` metadata), and ``signature`` the exported program's inputs."""
    table = numpy_helper.from_array(np.linspace(0.999, 0.005, 16, dtype=np.float32), "val_0")
    nodes = [helper.make_node("Gather", ["val_0", "t"], ["a"]), helper.make_node("Sqrt", ["a"], ["root"]),
             helper.make_node("Div", ["x", "root"], ["y"])]
    info = helper.make_tensor_value_info("val_0", 1, [16])
    info.metadata_props.add(key="pkg.onnxscript.optimizer.folded_from", value=sources)
    graph = helper.make_graph(nodes, "schedule", [helper.make_tensor_value_info("x", 1, [1]),
                                                  helper.make_tensor_value_info("t", 7, [1])],
                              [helper.make_tensor_value_info("y", 1, [1])], initializer=[table], value_info=[info])
    if signature is not None:
        graph.metadata_props.add(key="pkg.torch.export.ExportedProgram.graph_signature", value=signature)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


_SIGNATURE = ("\n# inputs\np_scale: PARAMETER target='scale'\nb_ac: BUFFER target='ac' persistent=True\n"
              "x: USER_INPUT\nt: USER_INPUT\n\n# outputs\ny: USER_OUTPUT\n")


@pytest.mark.parametrize(("sources", "signature", "role"), [
    ("['ac']", _SIGNATURE, "constant"),  # a buffer's transposed copy (a noise schedule indexed by a timestep)
    ("['ac', 'val_3']", _SIGNATURE, "constant"),  # with a constant of the graph
    ("['ac', 'scale']", _SIGNATURE, "weight"),  # a parameter among its sources: training moves it
    ("['b_ac', 'p_scale']", _SIGNATURE, "weight"),  # sources by placeholder name
    ("['ac']", None, "weight"),  # no signature: the sources' kinds are unknown
    ("['x', 'val_3']", "\n# inputs\nx: USER_INPUT\n\n# outputs\ny: USER_OUTPUT\n", "constant"),  # no parameters at all
])
def test_an_initializer_folded_from_buffers_only_is_a_constant(sources: str, signature: str | None, role: str) -> None:
    """The dynamo exporter's optimizer folds a buffer's layout copy into a new initializer without the
    buffer's kind; its folded_from metadata and the program's signature tell where it came from."""
    report = ranum.check(_folded_schedule(sources, signature), {"inputs": {"x": [-3, 3], "t": [0, 15]}})
    roles = {a.tensor: a.role for a in report.analysis.assumptions}
    assert roles["val_0"] == role
    assert bool(report.findings) == (role == "weight")  # the table's derived range reaches 0


@pytest.mark.parametrize(("kind", "role"), [("PARAMETER", "weight"), ("BUFFER", "constant"), (None, "constant")])
def test_a_one_element_initializer_is_a_weight_where_the_exporter_says_it_is_a_parameter(kind, role) -> None:
    """``logits / self.temperature`` with a trainable scalar: one value is taken as a constant (an epsilon, a
    factor) unless the export records a parameter, which training can move to 0."""
    temperature = numpy_helper.from_array(np.array([0.5], np.float32), "temperature")
    infos = []
    if kind is not None:
        info = helper.make_tensor_value_info("temperature", 1, None)
        info.metadata_props.add(key=_EXPORT_KIND, value=kind)
        infos.append(info)
    graph = helper.make_graph([helper.make_node("Div", ["x", "temperature"], ["y"])], "scaled",
                              [helper.make_tensor_value_info("x", 1, [4])],
                              [helper.make_tensor_value_info("y", 1, [4])], initializer=[temperature], value_info=infos)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    report = ranum.check(model, {"inputs": {"x": [-10, 10]}})
    roles = {a.tensor: a.role for a in report.analysis.assumptions}
    assert roles.get("temperature", "constant") == role
    assert [f.hazard_id for f in report.findings] == (["division-by-zero"] if role == "weight" else [])


def test_an_input_named_by_the_exporter_is_explained_when_it_has_no_range() -> None:
    """A Python value the TorchScript exporter turned into an input gets a made-up 'onnx::' name; its default
    range [-1, 1] then silently changes what the check means (an eps, a cap, a block size)."""
    model = onnx.parser.parse_model("""
    <ir_version: 8, opset_import: ["" : 17]>
    g (float[4] x, float "onnx::Add_1") => (float[4] y) {
        d = Add(x, "onnx::Add_1")
        y = Sqrt(d)
    }""")
    warnings = ranum.check(model, {"inputs": {"x": [0, 1]}}).warnings
    assert any("'onnx::Add_1' has no range" in w and "TorchScript exporter" in w for w in warnings)
    assert not any("'x' has no range" in w for w in warnings)


def test_an_unsupported_operator_named_like_a_standard_one_is_shown_with_its_domain() -> None:
    """onnxruntime's NCHWc layout Conv (saved at ORT_ENABLE_ALL) was listed as 'Conv', which reads as if the
    standard Conv had no rule; an operator no standard one shares its name with stays bare."""
    nodes = [onnx.helper.make_node("ReorderInput", ["x"], ["r"], domain="com.microsoft.nchwc"),
             onnx.helper.make_node("Conv", ["r", "w"], ["y"], domain="com.microsoft.nchwc")]
    graph = onnx.helper.make_graph(
        nodes, "g", [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 8, 4, 4])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)],
        [onnx.numpy_helper.from_array(np.ones((8, 8, 1, 1), np.float32), "w")])
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17),
                                                         onnx.helper.make_opsetid("com.microsoft.nchwc", 1)])
    report = ranum.check(model, {"inputs": {"x": [0, 1]}})
    assert report.unsupported_ops == ("ReorderInput", "com.microsoft.nchwc:Conv")


@pytest.mark.parametrize(("text", "body", "message"), [
    ("int64[3] x", "y = Log(x)", r"input 0 is a tensor\(int64\), which Log does not take"),
    ("float[3] x, double[3] w", "y = Add(x, w)", r"input 1 is a tensor\(double\) and input 0 a tensor\(float\)"),
])
def test_a_node_taking_an_operand_type_its_operator_does_not_is_an_inconsistent_model(text: str, body: str,
                                                                                        message: str) -> None:
    """onnxruntime refuses such a model; ranum's shape inference is not strict, so the analysis checks the types
    and leaves the node unanalysed, with the reason (the rest of the graph is still analysed)."""
    model = onnx.parser.parse_model(f"""<ir_version: 8, opset_import: ["" : 17]>
    g ({text}) => (float[3] y, float[3] z) {{
        {body}
        x2 = Constant<value = float[3] {{1, 2, 3}}>()
        z = Exp(x2)
    }}""")
    report = ranum.check(model, {"inputs": {name: [0, 5] for name in ("x", "w") if name in text}})
    (node, reason), = report.not_analysed_nodes.items()
    assert "inconsistent" in reason and re.search(message, reason), reason
    assert report.analysis.bounds("z")[1].max() < 30  # Exp(3): the rest is analysed


def test_operand_types_inside_a_branch_are_checked_and_valid_ones_pass() -> None:
    good = onnx.parser.parse_model("""<ir_version: 8, opset_import: ["" : 17]>
    g (bool c, float[3] x) => (float[3] y) {
        y = If(c) <then_branch = t () => (float[3] a) { a = Log(x) },
                   else_branch = e () => (float[3] b) { b = Exp(x) }>
    }""")
    assert not ranum.check(good, {"inputs": {"x": [1, 2]}}).not_analysed_nodes
    bad = onnx.parser.parse_model("""<ir_version: 8, opset_import: ["" : 17]>
    g (bool c, int64[3] x) => (float[3] y) {
        y = If(c) <then_branch = t () => (float[3] a) { a = Log(x) },
                   else_branch = e () => (float[3] b) { b = Cast<to = 1>(x) }>
    }""")
    reasons = ranum.check(bad, {"inputs": {"x": [1, 2]}}).not_analysed_nodes
    assert any("input 0 is a tensor(int64), which Log does not take" in reason for reason in reasons.values())
