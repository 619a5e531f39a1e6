"""ranum fix on the defect zoo: operator mode and all mode certify every defect; patched models
pass the checker, produce no NaN/Inf in onnxruntime on inputs and weights inside the ranges, and
compute what the original computes wherever the clips are inactive."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from typer.testing import CliRunner

import ranum
from ranum.cli import app
from ranum.fix import FixConfig, fix
from tests.models import LOG_OF_DIFFERENCE, parse
from tests.zoo.models import BUGGY, ZooModel
from tests.zoo.runtime import SAMPLE_MODES, Runner, sample_feeds

CONFIG = FixConfig(seconds=20.0, steps=60)  # a small budget keeps tests/fix fast


def _no_nan_inside_ranges(record: ZooModel, patched: onnx.ModelProto) -> None:
    """No NaN anywhere, finite outputs, and infinities only where an infinite constant flows."""
    analysis = ranum.analyze(record.model(), record.spec)
    fed = [a.tensor for a in analysis.assumptions if a.low is not None and a.tensor in
           {i.name for i in record.model().graph.initializer}]
    runner = Runner(patched, fed=fed)
    constants = {i.name for i in patched.graph.initializer}
    outputs = {o.name for o in patched.graph.output}
    rng = np.random.default_rng(0)
    for mode in SAMPLE_MODES:
        values = runner.run(sample_feeds(analysis, record.model(), mode, rng))
        allowed = _from_infinite_constants(patched, values)
        for name, value in values.items():
            value = np.asarray(value)
            if value.dtype.kind != "f" or name in constants:
                continue
            assert not np.isnan(value).any(), (name, mode)
            assert np.isfinite(value).all() or name in allowed and name not in outputs, (name, mode)


def _from_infinite_constants(model: onnx.ModelProto, values: dict) -> set[str]:
    """Tensors computed from a constant that is infinite by design (e.g. a -inf attention mask)."""
    tainted = {i.name for i in model.graph.initializer if not np.isfinite(values[i.name]).all()}
    for node in model.graph.node:
        if node.op_type == "Constant" or any(name in tainted for name in node.input):
            tainted.update(o for o in node.output if not np.isfinite(np.asarray(values[o])).all())
    return tainted


@pytest.mark.parametrize("record", BUGGY, ids=[m.id for m in BUGGY])
def test_operator_mode_certifies(record: ZooModel) -> None:
    report = fix(record.model(), record.spec, "operator", CONFIG)
    assert report.certified, [(f.node, f.hazard) for f in report.remaining]
    onnx.checker.check_model(report.patched)
    _no_nan_inside_ranges(record, report.patched)


@pytest.mark.parametrize("record", BUGGY, ids=[m.id for m in BUGGY])
def test_all_mode_certifies(record: ZooModel) -> None:
    report = fix(record.model(), record.spec, "all", CONFIG)
    assert report.certified, [(f.node, f.hazard) for f in report.remaining]
    onnx.checker.check_model(report.patched)
    _no_nan_inside_ranges(record, report.patched)
    for p in report.preconditions:
        assert p.kept_fraction is None or 0 < p.kept_fraction <= 1


def test_patched_model_matches_original_where_clips_are_inactive() -> None:
    model = parse(LOG_OF_DIFFERENCE)
    report = fix(model, {"inputs": {"x": [0, 1], "y": [0, 1]}}, "operator", CONFIG)
    assert report.certified
    feeds = {"x": np.full((2, 3), 0.9, np.float32), "y": np.full((2, 3), 0.2, np.float32)}
    original = Runner(model).run(feeds)["z"]
    patched = Runner(report.patched).run(feeds)["z"]
    np.testing.assert_array_equal(original, patched)


def test_node_names_are_stable_in_the_patched_model() -> None:
    report = fix(parse(LOG_OF_DIFFERENCE), {"inputs": {"x": [0, 1], "y": [0, 1]}}, "operator", CONFIG)
    names = {n.name for n in report.patched.graph.node}
    assert {"Sub_0", "Log_1"} <= names


def test_cli_fix_json_and_refusals(tmp_path: Path) -> None:
    path = tmp_path / "m.onnx"
    onnx.save(parse(LOG_OF_DIFFERENCE), str(path))
    runner = CliRunner(env={"COLUMNS": "200"})
    out = tmp_path / "fixed.onnx"
    result = runner.invoke(app, ["fix", str(path), "-r", "x=0,1", "-r", "y=0,1", "--on", "operator",
                                 "-o", str(out), "--format", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["certified"] is True and data["remaining"] == []
    (pre,) = data["preconditions"]
    assert pre["tensor"] == "d" and pre["min"] > 0 and pre["max"] is None
    onnx.checker.check_model(str(out))
    refused = runner.invoke(app, ["fix", str(path), "-o", str(path)])
    assert refused.exit_code == 2 and "overwrite" in refused.stderr
    bad_mode = runner.invoke(app, ["fix", str(path), "--on", "everything", "-o", str(tmp_path / "x.onnx")])
    assert bad_mode.exit_code == 2 and "--on" in bad_mode.stderr


def _loop_reading_outer_input(computed_in_body: bool = False) -> onnx.ModelProto:
    """A Loop whose body takes Log of the outer input x (x in [0, 1]: Log(0) is the finding), or of a tensor
    the body computes from it (|x|)."""
    from onnx import TensorProto, helper

    logged = [helper.make_node("Abs", ["x"], ["magnitude"], "body_abs"),
              helper.make_node("Log", ["magnitude"], ["logged"], "body_log")] if computed_in_body else \
        [helper.make_node("Log", ["x"], ["logged"], "body_log")]
    body = helper.make_graph(
        [*logged, helper.make_node("Add", ["s", "logged"], ["s_next"]),
         helper.make_node("Identity", ["cond"], ["cond_next"])],
        "body", [helper.make_tensor_value_info("i", TensorProto.INT64, []),
                 helper.make_tensor_value_info("cond", TensorProto.BOOL, []),
                 helper.make_tensor_value_info("s", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("cond_next", TensorProto.BOOL, []),
         helper.make_tensor_value_info("s_next", TensorProto.FLOAT, [2])])
    graph = helper.make_graph(
        [helper.make_node("Loop", ["trips", "", "s0"], ["s_final"], "loop", body=body)], "outer-read",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("s_final", TensorProto.FLOAT, [2])],
        [helper.make_tensor("trips", TensorProto.INT64, [], [3]),
         helper.make_tensor("s0", TensorProto.FLOAT, [2], [0, 0])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


@pytest.mark.parametrize("mode", ["inputs", "operator"])
def test_clips_reach_reads_from_inside_a_loop_body(mode: str) -> None:
    """The body reads x from the outer scope: an input clip must rewire that read, or nothing is fixed."""
    model = _loop_reading_outer_input()
    report = fix(model, {"inputs": {"x": [0, 1]}}, mode, CONFIG)
    assert report.original_findings >= 1
    assert report.certified, [f.to_dict() for f in report.remaining]
    body = next(n for n in report.patched.graph.node if n.op_type == "Loop").attribute[0].g
    log = next(n for n in body.node if n.op_type == "Log")
    assert log.input[0] != "x"  # it reads a clipped tensor


@pytest.mark.parametrize("opset", [7, 9, 10])
@pytest.mark.parametrize("mode", ["operator", "all"])
def test_models_before_opset_11_get_clip_with_attributes(opset: int, mode: str) -> None:
    """Before opset 11 Clip takes min and max as attributes: the patched model must pass the checker,
    run in onnxruntime, and its bounds must not admit the value the clip keeps out (rounded inward)."""
    model = parse(LOG_OF_DIFFERENCE.replace('"" : 17', f'"" : {opset}').replace("ir_version: 8", "ir_version: 5"))
    report = fix(model, {"inputs": {"x": [0, 1], "y": [0, 1]}}, mode, CONFIG)
    assert report.certified
    onnx.checker.check_model(report.patched)
    clips = [n for n in report.patched.graph.node if n.op_type == "Clip"]
    assert clips and all(len(n.input) == 1 for n in clips)
    low = next(a.f for a in clips[0].attribute if a.name == "min")
    assert low > 0
    feeds = {"x": np.full((2, 3), 0.5, np.float32), "y": np.full((2, 3), 0.5, np.float32)}
    z = Runner(report.patched).run(feeds)["z"]
    assert np.isfinite(z).all()


def test_float32_bounds_round_inward() -> None:
    from ranum.graph.patch import _float32_toward

    assert np.float32(_float32_toward(0.1, np.inf)) >= 0.1 and np.float32(_float32_toward(0.1, -np.inf)) <= 0.1
    assert _float32_toward(1e-46, np.inf) > 0  # below the smallest subnormal: not rounded to 0
    assert _float32_toward(0.5, np.inf) == 0.5


def test_integer_tensor_before_opset_12_is_refused_clearly() -> None:
    from onnx import TensorProto

    from ranum.errors import RanumError
    from ranum.graph.patch import ClipSpec, insert_clips

    model = parse(LOG_OF_DIFFERENCE.replace('"" : 17', '"" : 11'))
    with pytest.raises(RanumError, match="double tensors only"):
        insert_clips(model, [ClipSpec("x", 0.0, 1.0)], {"x": TensorProto.INT64})


@pytest.mark.parametrize("mode", ["operator", "all"])
@pytest.mark.parametrize("op", ["Div", "Mod"])
def test_an_integer_divisor_is_clipped_to_the_nearest_integers_away_from_zero(mode: str, op: str) -> None:
    """An integer Div or Mod by zero stops onnxruntime's run; the divisor in [-3, 3] is clipped to [1, 3]
    (the side that keeps more of its range; a float margin would round back to 0)."""
    model = parse('<ir_version: 8, opset_import: ["" : 17]>\n'
                  f"g (int64[2] a, int64[2] b) => (int64[2] y) {{ y = {op}(a, b) }}")
    report = fix(model, {"inputs": {"a": [-10, 10], "b": [-3, 3]}}, mode, CONFIG)
    assert report.certified
    (pre,) = report.preconditions
    assert (pre.tensor, pre.min, pre.max) == ("b", 1, None) or (pre.tensor, pre.min, pre.max) == ("b", None, -1)
    y = Runner(report.patched).run({"a": np.array([7, -7], np.int64), "b": np.array([0, 0], np.int64)})["y"]
    assert y.dtype == np.int64


def test_an_integer_divisor_before_opset_12_is_left_unclipped_without_an_error() -> None:
    """Clip takes integers from opset 12: before, the finding stays, reported, and nothing breaks."""
    model = parse('<ir_version: 7, opset_import: ["" : 11]>\n'
                  "g (int64[2] a, int64[2] b) => (int64[2] y) { y = Div(a, b) }")
    report = fix(model, {"inputs": {"a": [-10, 10], "b": [-3, 3]}}, "operator", CONFIG)
    assert not report.certified and [f.op_type for f in report.remaining] == ["Div"]


@pytest.mark.parametrize("opset", [9, 11])
def test_a_float64_operand_before_opset_12_is_clipped_by_max_and_min(opset: int) -> None:
    """onnxruntime has no float64 Clip kernel before opset 12: the patched model must load and run there."""
    model = parse(f'<ir_version: 7, opset_import: ["" : {opset}]>\n'
                  "g (double[3] x, double[3] y) => (double[3] z) { d = Sub(x, y)\n z = Log(d) }")
    report = fix(model, {"inputs": {"x": [0, 1], "y": [0, 1]}}, "operator", CONFIG)
    assert report.certified
    assert "Clip" not in {n.op_type for n in report.patched.graph.node}
    z = Runner(report.patched).run({"x": np.full(3, 0.5), "y": np.full(3, 0.5)})["z"]
    assert np.isfinite(z).all()


def test_an_operator_clip_of_a_tensor_a_body_computes_goes_into_that_body() -> None:
    """Log(|x|) inside a Loop body: the clip of |x| must sit in the body, after Abs (the main graph has no
    such tensor: the patched model failed the checker)."""
    report = fix(_loop_reading_outer_input(computed_in_body=True), {"inputs": {"x": [-1, 1]}}, "operator", CONFIG)
    assert report.certified, [f.to_dict() for f in report.remaining]
    onnx.checker.check_model(report.patched)
    body = next(n for n in report.patched.graph.node if n.op_type == "Loop").attribute[0].g
    assert [n.op_type for n in body.node][:3] == ["Abs", "Clip", "Log"]
    s_final = Runner(report.patched).run({"x": np.array([0.0, 0.5], np.float32)})["s_final"]
    assert np.isfinite(s_final).all()


def test_an_input_with_an_unbounded_end_is_clipped_on_its_own_side_of_zero() -> None:
    """A count in [0, null) divides a sum in [0, 2]: the clip moves the count's low end just above 0 (the
    widest certified clip, about 2 / float32's largest value), with the unbounded end left at the type's
    largest value. The input was not a target before (its range was not finite), so inputs-only fixing
    clipped the others and did not certify."""
    model = parse('<ir_version: 8, opset_import: ["" : 17]>\n'
                  "g (float[2] s, float[2] count) => (float[2] y) { y = Div(s, count) }")
    report = fix(model, {"inputs": {"s": [0, 2], "count": [0, None]}}, "inputs", CONFIG)
    assert report.certified
    (pre,) = [p for p in report.preconditions if p.tensor == "count"]
    assert 0 < pre.min < 1e-30
    y = Runner(report.patched).run({"s": np.full(2, 2.0, np.float32), "count": np.zeros(2, np.float32)})["y"]
    assert np.isfinite(y).all()


def test_a_square_of_an_input_with_an_unbounded_end_can_overflow() -> None:
    """x in [0, null) is any finite x >= 0: x * x overflows for x = 1e20 (onnxruntime gives inf). The open
    end was the value +inf, and an operator whose operand is already infinite reports no overflow."""
    model = parse('<ir_version: 8, opset_import: ["" : 17]>\n'
                  "g (float[2] x) => (float[2] y) { y = Mul(x, x) }")
    report = ranum.check(model, {"inputs": {"x": [0, None]}})
    assert [(f.op_type, f.hazard_id) for f in report.findings] == [("Mul", "overflow")]
    assert np.isinf(Runner(model).run({"x": np.full(2, 1e20, np.float32)})["y"]).all()


def test_a_weight_clip_that_excludes_stored_values_says_so(tmp_path: Path) -> None:
    """log(x + w) for x in [0, 1] needs w > 0, and w holds -0.5: the certified clip leaves a stored value
    outside, so the patched model computes with it clipped. The JSON had keeps_initial_values false; the text
    report said nothing."""
    path = tmp_path / "m.onnx"
    onnx.save(parse('<ir_version: 8, opset_import: ["" : 17]>\n'
                    "g (float[2] x) => (float[2] y) <float[2] w = {0.5, -0.5}> { s = Add(x, w)\n y = Log(s) }"),
              str(path))
    result = CliRunner().invoke(app, ["fix", str(path), "-r", "x=0,1", "--on", "weights", "-o",
                                      str(tmp_path / "fixed.onnx")], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "excludes some of its stored values" in result.stdout


def test_an_operator_clip_that_binds_on_no_side_is_left_out(monkeypatch: pytest.MonkeyPatch) -> None:
    """A repair round's clip whose bounds lie outside the tensor's whole range does nothing: it was reported
    as 'to (-inf, +inf)' and inserted as a Clip node without bounds."""
    from ranum.fix import _fix
    from ranum.fix._operator import NodeClip
    from ranum.ops.hazards import Clamp

    def repair(model, spec, base, elem_types, rounds, seconds=None):
        return [NodeClip("log", "Log", "d", Clamp(1e-6, None)), NodeClip("log", "Log", "x", Clamp(-5.0, 5.0))]

    monkeypatch.setattr(_fix, "repair_rounds", repair)
    model = parse('<ir_version: 8, opset_import: ["" : 17]>\n'
                  "g (float[2] x, float[2] y) => (float[2] z) { d = Sub(x, y)\n z = Log(d) }")
    model.graph.node[1].name = "log"
    report = fix(model, {"inputs": {"x": [0, 1], "y": [0, 1]}}, "operator", CONFIG)
    assert [(p.tensor, p.min, p.max) for p in report.preconditions] == [("d", 1e-6, None)]
    assert sum(n.op_type == "Clip" for n in report.patched.graph.node) == 1


def test_an_overflow_that_moves_down_a_chain_is_repaired_round_by_round() -> None:
    """Fourteen chained Exps of x in [0, 100]: each operator clip (the largest operand whose exp is finite)
    lets the next Exp overflow in turn, and each analyse-and-repair round reaches a few more. Five rounds did
    not reach the end (a deep CNN's convolutions behave alike); the rounds now go on within the budget."""
    body = "\n".join(f"  s{i + 1} = Exp(s{i})" for i in range(14))
    model = parse('<ir_version: 8, opset_import: ["" : 17]>\n'
                  f"g (float[2] s0) => (float[2] s14) {{\n{body} }}")
    report = fix(model, {"inputs": {"s0": [0, 100]}}, "operator", FixConfig(seconds=20.0, steps=60))
    assert report.certified, [(f.node, f.op_type) for f in report.remaining]
    y = Runner(report.patched).run({"s0": np.array([100.0, 0.5], np.float32)})["s14"]
    assert np.isfinite(y).all()


def test_the_clip_search_prints_no_torch_warning() -> None:
    """The search runs the rules on bounds that carry gradients; a rule reading one as a float (a Div's share
    relation) made torch warn on the user's terminal."""
    import warnings

    model = parse("""
    <ir_version: 8, opset_import: ["" : 17]>
    g (float[2, 3] x, float[2, 3] y) => (float[2, 3] z) {
        z = Div(x, y)
    }""")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = fix(model, {"inputs": {"x": [0, 1], "y": [-1, 1]}}, "all", CONFIG)
    assert report.certified
    assert not [str(w.message) for w in caught]


@pytest.mark.parametrize(("opset", "clipped"), [(18, True), (12, False)])
def test_a_bfloat16_operand_is_clipped_from_opset_13(opset: int, clipped: bool) -> None:
    """Clip takes bfloat16 from opset 13: a bfloat16 Log was refused as 'Clip takes float tensors only'."""
    model = parse(f"""
    <ir_version: 8, opset_import: ["" : {opset}]>
    g (bfloat16[4] x) => (bfloat16[4] y) {{
        y = Log(x)
    }}""")
    report = fix(model, {"inputs": {"x": [0.0, 1.0]}}, "operator", CONFIG)
    assert report.certified == clipped  # before opset 13 the finding stays reported
    onnx.checker.check_model(report.patched)
    assert [n.op_type for n in report.patched.graph.node] == (["Clip", "Log"] if clipped else ["Log"])


def test_an_ir_version_3_model_lists_the_clip_bounds_as_graph_inputs() -> None:
    """IR version 3 and less require every initializer to be a graph input: the bounds of a float64 Max/Min clip
    were not, and the patched model failed the loader (an internal error)."""
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.random.default_rng(0).standard_normal((4, 3)), "W")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "W"], ["y"], "mm"),
                               helper.make_node("Log", ["y"], ["z"], "log")], "ir3",
                              [helper.make_tensor_value_info("x", TensorProto.DOUBLE, [1, 4]),
                               helper.make_tensor_value_info("W", TensorProto.DOUBLE, [4, 3])],
                              [helper.make_tensor_value_info("z", TensorProto.DOUBLE, [1, 3])], [weight])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 8)])
    model.ir_version = 3
    onnx.checker.check_model(model, full_check=True)
    for mode in ("operator", "all"):
        report = fix(model, {"inputs": {"x": [-1, 1]}, "weights": {"default": "exact"}}, mode, CONFIG)
        assert report.certified, (mode, [f.to_dict() for f in report.remaining])
        onnx.checker.check_model(report.patched, full_check=True)
        inputs = {value.name for value in report.patched.graph.input}
        assert {init.name for init in report.patched.graph.initializer} <= inputs
        z = Runner(report.patched).run({"x": np.full((1, 4), -1.0)})["z"]
        assert np.isfinite(z).all(), mode
