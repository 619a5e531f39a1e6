"""ranum confirm on the defect zoo: every true defect gets a failing unit test that onnxruntime
reproduces, and the written pytest files pass when pytest runs them in a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import onnx
import pytest
from typer.testing import CliRunner

import ranum
from ranum.cli import app
from ranum.confirm import SearchConfig, confirm
from tests.models import LOG_OF_DIFFERENCE, SAFE_DIVISION, parse
from tests.zoo.models import BUGGY, FIXED, ZooModel

CONFIG = SearchConfig(seed=0, seconds=10.0)


@pytest.fixture(scope="module")
def zoo_results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, object]]:
    root = tmp_path_factory.mktemp("zoo-confirm")
    results = {}
    for record in BUGGY:
        model_path = root / f"{record.id}.onnx"
        onnx.save(record.model(), str(model_path))
        out = root / record.id
        results[record.id] = (out, confirm(model_path, record.spec, out, search_config=CONFIG))
    return results


@pytest.mark.parametrize("record", BUGGY, ids=[m.id for m in BUGGY])
def test_every_zoo_defect_is_confirmed(record: ZooModel, zoo_results) -> None:
    out, report = zoo_results[record.id]
    by_node = {}
    for result in report.results:
        by_node.setdefault(result.node, []).append(result)
    for node in record.flagged:
        statuses = [(r.hazard, r.status, r.note) for r in by_node.get(node, [])]
        assert any(r.status == "confirmed" for r in by_node.get(node, [])), f"{node}: {statuses}"
    for result in report.results:
        if result.status == "confirmed":
            folder = Path(result.dir)
            assert (folder / "inputs.npz").is_file() and (folder / "weights.npz").is_file()
            assert list(folder.glob("test_*.py"))


def test_generated_tests_pass_under_pytest(zoo_results) -> None:
    folders = [str(out) for out, report in zoo_results.values() if any(r.dir for r in report.results)]
    assert folders
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--import-mode=importlib", *folders],
        capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    expected = sum(1 for _, report in zoo_results.values() for r in report.results if r.dir)
    assert f"{expected} passed" in done.stdout


@pytest.mark.parametrize("record", FIXED[:6], ids=[m.id for m in FIXED[:6]])
def test_fixed_twins_have_nothing_to_confirm(record: ZooModel, tmp_path: Path) -> None:
    report = confirm(record.model(), record.spec, tmp_path / "out", search_config=CONFIG)
    assert report.results == ()


def test_deterministic_with_seed(tmp_path: Path) -> None:
    model = parse(LOG_OF_DIFFERENCE)
    spec = {"inputs": {"x": [0, 1], "y": [0, 1]}}
    first = confirm(model, spec, tmp_path / "a", search_config=SearchConfig(seed=3))
    second = confirm(model, spec, tmp_path / "b", search_config=SearchConfig(seed=3))
    assert [r.strategy for r in first.results] == [r.strategy for r in second.results]
    import numpy as np

    a = np.load(tmp_path / "a" / "Log_1" / "inputs.npz")
    b = np.load(tmp_path / "b" / "Log_1" / "inputs.npz")
    assert all(np.array_equal(a[k], b[k]) for k in a.files)


def _cli(*args) -> object:
    return CliRunner(env={"COLUMNS": "200"}).invoke(app, [str(a) for a in args])


def test_cli_json_and_node_selection(tmp_path: Path) -> None:
    path = tmp_path / "m.onnx"
    onnx.save(parse(LOG_OF_DIFFERENCE), str(path))
    result = _cli("confirm", path, "-r", "x=0,1", "-r", "y=0,1", "--node", "Log_1", "-o", tmp_path / "out",
                  "--format", "json")
    assert result.exit_code == 0, result.output
    (entry,) = json.loads(result.stdout)["results"]
    assert entry["status"] == "confirmed" and entry["node"] == "Log_1"
    assert set(entry) >= {"node", "op_type", "status", "seconds", "dir", "reaches_outputs"}
    assert entry["reaches_outputs"] is True  # the Log is the model's output


MASKED_LOG = """
<ir_version: 8, opset_import: ["" : 17]>
g (float[2,3] x) => (float[2,3] z) {
  l = Log(x)
  zero = Constant<value = float {0.0}>()
  positive = Greater(x, zero)
  z = Where(positive, l, zero)
}
"""


def test_a_failure_discarded_downstream_is_confirmed_and_said_so() -> None:
    (result,) = confirm(parse(MASKED_LOG), {"inputs": {"x": [-1, 1]}}).results
    assert result.status == "confirmed" and result.op_type == "Log"
    assert result.reaches_outputs is False and "discards or absorbs" in result.note


IF_READING_THE_OUTER_SCOPE = """
<ir_version: 8, opset_import: ["" : 17]>
g (float[4] x) => (float[4] y) <float zero = {0.0}> {
    a = Sin (x)
    s = ReduceSum <keepdims = 0> (x)
    c = Greater (s, zero)
    b = If (c) <
        then_branch = then_g () => (float[4] t) { t = Identity (a) },
        else_branch = else_g () => (float[4] e) { e = Neg (a) }
    >
    y = Log (b)
}
"""


def test_a_finding_after_an_if_whose_branches_read_the_enclosing_graph_is_confirmed() -> None:
    # the branches read 'a' without naming it as an input of the If: the pruned graph must keep Sin
    (result,) = confirm(parse(IF_READING_THE_OUTER_SCOPE), {"inputs": {"x": [-1, 1]}}).results
    assert result.status == "confirmed" and result.op_type == "Log"


def test_weights_at_zero_confirm_a_weight_norm_division() -> None:
    """Weight normalisation ``g * v / ||v||``: the derived box of ``v`` holds the all-zero weight."""
    import numpy as np
    from onnx import helper, numpy_helper

    rng = np.random.default_rng(0)
    graph = helper.make_graph(
        [helper.make_node("ReduceL2", ["v"], ["norm"], keepdims=1),
         helper.make_node("Div", ["g", "norm"], ["scale"]),
         helper.make_node("Mul", ["v", "scale"], ["w"]),
         helper.make_node("MatMul", ["x", "w"], ["y"])],
        "weight_norm", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2, 8])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [2, 4])],
        initializer=[numpy_helper.from_array(rng.uniform(-0.5, 0.5, (8, 4)).astype(np.float32), "v"),
                     numpy_helper.from_array(np.float32(1.5), "g")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    report = confirm(model, {"inputs": {"x": [-1, 1]}}, search_config=SearchConfig(seconds=5))
    division = [r for r in report.results if r.op_type == "Div"]
    assert [(r.status, r.strategy.startswith("weights at zero")) for r in division] == [("confirmed", True)]


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [(["--node", "NoSuchNode"], "no node"), (["--node", "Sub_0"], "no finding")],
)
def test_cli_bad_node(tmp_path: Path, extra: list[str], fragment: str) -> None:
    path = tmp_path / "m.onnx"
    onnx.save(parse(LOG_OF_DIFFERENCE), str(path))
    result = _cli("confirm", path, "-r", "x=0,1", "-r", "y=0,1", "-o", tmp_path / "out", *extra)
    assert result.exit_code == 2 and fragment in result.stderr
    assert not (tmp_path / "out").exists()


def test_cli_refuses_non_empty_output_unless_forced(tmp_path: Path) -> None:
    path = tmp_path / "m.onnx"
    onnx.save(parse(LOG_OF_DIFFERENCE), str(path))
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    result = _cli("confirm", path, "-r", "x=0,1", "-r", "y=0,1", "-o", out)
    assert result.exit_code == 2 and "not empty" in result.stderr
    assert (out / "keep.txt").read_text() == "precious"
    result = _cli("confirm", path, "-r", "x=0,1", "-r", "y=0,1", "-o", out, "--force")
    assert result.exit_code == 0, result.output
    assert not (out / "keep.txt").exists() and (out / "Log_1").is_dir()


def test_cli_unwritable_parent(tmp_path: Path) -> None:
    path = tmp_path / "m.onnx"
    onnx.save(parse(SAFE_DIVISION), str(path))
    result = _cli("confirm", path, "-o", tmp_path / "missing" / "out")
    assert result.exit_code == 2 and "does not exist" in result.stderr


def _linear_then(tail: str, columns: int, seed: int) -> onnx.ModelProto:
    """x [2, 16] -> x @ W + b (fixed random weights) -> ``tail`` (reading ``z``, writing ``y``)."""
    import numpy as np
    from onnx import helper, numpy_helper

    rng = np.random.default_rng(seed)
    nodes = [helper.make_node("Gemm", ["x", "w", "b"], ["z"])] + [
        helper.make_node(op, [src], [dst], **({"axis": -1} if op == "Softmax" else {}))
        for op, src, dst in (tuple(step.split()) for step in tail.split(";"))]
    graph = helper.make_graph(
        nodes, "head", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2, 16])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [2, columns])],
        initializer=[numpy_helper.from_array(rng.normal(0, 0.25, (16, columns)).astype(np.float32), "w"),
                     numpy_helper.from_array(rng.normal(0, 0.1, columns).astype(np.float32), "b")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_the_log_of_a_softmax_that_underflows_is_confirmed() -> None:
    """Log(Softmax(z)): one probability reaches 0 only where one logit gap passes about 104. The descent
    minimised a soft minimum of all probabilities, which sum to 1 (it could not move); it now minimises
    their logarithms, which single out the smallest."""
    report = confirm(_linear_then("Softmax z p; Log p y", 10, seed=3), {"inputs": {"x": [-17, 17]},
                                                                       "weights": {"default": "exact"}})
    assert [(r.op_type, r.status) for r in report.results] == [("Log", "confirmed")]


def test_the_log_of_a_sigmoid_that_onnxruntime_rounds_to_zero_is_confirmed() -> None:
    """Log(Sigmoid(z)) for logits down to about -63: onnxruntime's Sigmoid gives exactly 0 below about -18,
    float32's logistic function only below about -104 (ranum's concrete Sigmoid is now onnxruntime's)."""
    report = confirm(_linear_then("Sigmoid z p; Log p y", 4, seed=5), {"inputs": {"x": [-20, 20]},
                                                                      "weights": {"default": "exact"}})
    assert [(r.op_type, r.status) for r in report.results] == [("Log", "confirmed")]


BAND_OF_SIGMOIDS = """
<ir_version: 8, opset_import: ["" : 17]>
g (float[1, 8] x) => (float y) <float seven = {7.0}, float four = {4.0}, float ten = {10.0}> {
    d = Sub (x, seven)
    d2 = Mul (d, d)
    c = Sub (d2, four)
    z = Mul (c, ten)
    p = Sigmoid (z)
    s = ReduceSum <keepdims = 0> (p)
    y = Reciprocal (s)
}
"""


def test_a_sum_of_sigmoids_is_brought_to_zero_from_saturation() -> None:
    """1 / sum(sigmoid(10 ((x - 7)^2 - 4))) over x in [-20, 20]^8: the sum is 0 only where every x lies
    within 1.55 of 7 (every sigmoid below -18, where onnxruntime's is 0). Started at random, most units sit
    saturated at 1, where torch's gradient of the sigmoid is exactly 0, and the long steps overshoot the
    band: the descent now passes a least slope through saturated sigmoids and takes short steps on every
    other restart (not confirmed before)."""
    report = confirm(parse(BAND_OF_SIGMOIDS), {"inputs": {"x": [-20, 20]}}, search_config=SearchConfig(seconds=30))
    assert [(r.op_type, r.status) for r in report.results] == [("Reciprocal", "confirmed")]


def test_a_hazard_reached_through_integer_ids_is_confirmed_by_sampled_ids() -> None:
    """BPR's -log(sigmoid(score(u, pos) - score(u, neg))) over item ids: the descent cannot move integer
    inputs, and the score gap is within about +-64 here (onnxruntime's Sigmoid is 0 below about -18): random
    ids ranked by the distance are replayed."""
    import numpy as np
    from onnx import helper, numpy_helper

    table = np.random.default_rng(7).normal(0, 1.6, (50, 8)).astype(np.float32)
    nodes = [helper.make_node("Gather", ["table", name], [f"e_{name}"]) for name in ("u", "pos", "neg")] + [
        helper.make_node("Sub", ["e_pos", "e_neg"], ["diff"]),
        helper.make_node("Mul", ["e_u", "diff"], ["terms"]),
        helper.make_node("ReduceSum", ["terms", "last"], ["gap"], keepdims=0),
        helper.make_node("Sigmoid", ["gap"], ["p"]),
        helper.make_node("Log", ["p"], ["y"])]
    graph = helper.make_graph(
        nodes, "bpr", [helper.make_tensor_value_info(n, onnx.TensorProto.INT64, [1]) for n in ("u", "pos", "neg")],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])],
        initializer=[numpy_helper.from_array(table, "table"), numpy_helper.from_array(np.array([-1]), "last")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    ids = {name: [0, 49] for name in ("u", "pos", "neg")}
    report = confirm(model, {"inputs": ids, "weights": {"default": "exact"}}, search_config=SearchConfig(seconds=5))
    assert [(r.op_type, r.status) for r in report.results] == [("Log", "confirmed")]
    # found among the random points, judged by onnxruntime alone (ranum's own semantics never fire here)
    assert report.results[0].strategy in ("random inputs, nearest by distance", "initial weights, inputs at random",
                                          "initial weights, inputs at mixed")


def test_a_mismatch_in_a_model_that_draws_random_values_names_the_draws() -> None:
    """A point that fires in ranum's semantics and not in onnxruntime's run: in a model with a random
    generator upstream, the two runs drew different values, which the note says (not a float type)."""
    from onnx import helper

    from ranum import analyze
    from ranum.confirm._confirm import _mismatch_note
    from ranum.confirm._problem import make_problem

    nodes = [helper.make_node("RandomUniform", [], ["r"], shape=[1]), helper.make_node("Sub", ["r", "x"], ["d"]),
             helper.make_node("Log", ["d"], ["y"], name="log")]
    graph = helper.make_graph(nodes, "drawn", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])])
    analysis = analyze(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]),
                       {"inputs": {"x": [0, 1]}})
    assert "RandomUniform" in _mismatch_note(make_problem(analysis, "log"))
    plain = analyze(parse(LOG_OF_DIFFERENCE), {"inputs": {"x": [0, 1], "y": [0, 1]}})
    assert "wider type" in _mismatch_note(make_problem(plain, "Log_1"))


def test_acos_of_the_cosine_of_a_vector_with_itself_is_confirmed() -> None:
    """acos(cos(a, b)) without a clamp: for b = a the rounded cosine can exceed 1 and acos is NaN. Random
    points almost never make two inputs parallel, nor does the descent; inputs tied to each other do."""
    body = """
        aa = Mul(a, a)
        sa = ReduceSum<keepdims = 1>(aa, ax)
        na = Sqrt(sa)
        ua = Div(a, na)
        bb = Mul(b, b)
        sb = ReduceSum<keepdims = 1>(bb, ax)
        nb = Sqrt(sb)
        ub = Div(b, nb)
        ab = Mul(ua, ub)
        c = ReduceSum<keepdims = 0>(ab, ax)
        y = Acos(c)"""
    model = onnx.parser.parse_model('<ir_version: 8, opset_import: ["" : 17]>\n'
                                    "g (float[4,16] a, float[4,16] b) => (float[4] y)\n"
                                    "<int64[1] ax = {1}> {" + body + "\n}")
    report = confirm(model, {"inputs": {"a": [0.1, 1], "b": [0.1, 1]}}, nodes=["Acos_10"],
                     search_config=SearchConfig(seed=0, seconds=3.0))
    statuses = {r.hazard: r.status for r in report.results}
    assert statuses["acos outside [-1, 1] is NaN"] == "confirmed", report.results


def test_an_integer_division_by_zero_is_confirmed_by_the_runtime_error(tmp_path: Path) -> None:
    """onnxruntime stops a run whose integer Div has a zero divisor: the error is the failure (no NaN or
    Inf shows), and the written test expects it."""
    model = onnx.parser.parse_model('<ir_version: 8, opset_import: ["" : 17]>\n'
                                    "g (int64[2] a, int64[2] b) => (int64[2] y) { y = Div(a, b) }")
    report = confirm(model, {"inputs": {"a": [-10, 10], "b": [-3, 3]}}, tmp_path / "out",
                     search_config=SearchConfig(seed=0, seconds=3.0))
    (result,) = report.results
    assert result.status == "confirmed" and "Integer division by zero" in result.note
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path / "out")],
                         capture_output=True, text=True, cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr


@pytest.mark.parametrize("kind", ["int32", "int64"])
def test_an_integer_minimum_divided_by_minus_one_is_confirmed_in_a_child_process(kind: str, tmp_path: Path) -> None:
    """onnxruntime's process dies of SIGFPE on INT_MIN / -1: confirm replays the candidate in a child process
    (it used to die with it) and the written test runs the model in one too."""
    low = -(2**31) if kind == "int32" else -(2**63)
    model = onnx.parser.parse_model('<ir_version: 8, opset_import: ["" : 17]>\n'
                                    f"g ({kind}[2] a, {kind}[2] b) => ({kind}[2] y) {{ y = Div(a, b) }}")
    report = confirm(model, {"inputs": {"a": [low, 0], "b": [-2, -1]}}, tmp_path / "out",
                     search_config=SearchConfig(seed=0, seconds=3.0))
    (result,) = [r for r in report.results if "divided by -1" in r.hazard]
    assert result.status == "confirmed" and "SIGFPE" in result.note, result
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path / "out")],
                         capture_output=True, text=True, cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr


def test_a_finding_inside_a_loop_body_is_reported_as_out_of_reach() -> None:
    """onnxruntime exposes no body tensor: the finding is not confirmed, with that reason (it crashed)."""
    from tests.fix.test_fix import _loop_reading_outer_input

    report = confirm(_loop_reading_outer_input(computed_in_body=True), {"inputs": {"x": [-1, 1]}},
                     search_config=SearchConfig(seed=0, seconds=1.0))
    (result,) = report.results
    assert result.node == "body_log" and result.status == "not_confirmed" and "body" in result.note


def test_a_power_gradient_at_a_zero_base_is_confirmed_by_one_input_at_zero() -> None:
    """d(x ** e)/dx is infinite at x = 0 for e < 1: x in [-2, 2] and e in [0.5, 1.5] meet it only with x at 0
    and e below 1, which no corner, middle or descent reached (x at 0 alone, e at its low end, does)."""
    model = onnx.parser.parse_model('<ir_version: 8, opset_import: ["" : 17]>\n'
                                    "g (float[3] x, float[3] e) => (float[3] y) { y = Pow(x, e) }")
    report = confirm(model, {"inputs": {"x": [-2, 2], "e": [0.5, 1.5]}},
                     search_config=SearchConfig(seed=0, seconds=3.0))
    assert len(report.results) == 2 and all(r.status == "confirmed" for r in report.results), report.results


def test_a_variance_by_moments_is_confirmed_negative_with_a_constant_input() -> None:
    """sqrt(E[x^2] - E[x]^2): the difference rounds below 0 only where x is constant at some values, which no
    corner, middle or uniform draw gave; constants at drawn values do."""
    model = onnx.parser.parse_model(
        '<ir_version: 8, opset_import: ["" : 18]>\n'
        "g (float[2, 64] x) => (float[2, 1] y) { axes = Constant<value = int64[1] {1}>()\n"
        "squares = Mul(x, x)\n second = ReduceMean(squares, axes)\n first = ReduceMean(x, axes)\n"
        "squared = Mul(first, first)\n variance = Sub(second, squared)\n y = Sqrt(variance) }")
    results = confirm(model, {"inputs": {"x": [-1, 1]}}, search_config=SearchConfig(seed=0, seconds=3.0)).results
    (negative,) = [r for r in results if r.hazard == "square root of a negative value"]
    assert negative.status == "confirmed" and "constant inputs" in negative.strategy


def test_one_dominant_logit_is_tried() -> None:
    """log(1 - max softmax(x)) is log 0 only where one logit leads every other by about 17: corners give equal
    logits, and random or mixed ones several leaders; a spike (one element at the top, the rest at the
    bottom) confirms it among the cheap points, before any descent (which took a restart of its own)."""
    model = onnx.parser.parse_model(
        '<ir_version: 8, opset_import: ["" : 18]>\n'
        "g (float[2, 8] x) => (float[2, 1] y) { axes = Constant<value = int64[1] {1}>()\n"
        "one = Constant<value_float = 1.0>()\n p = Softmax<axis = 1>(x)\n top = ReduceMax(p, axes)\n"
        "rest = Sub(one, top)\n y = Log(rest) }")
    (result,) = confirm(model, {"inputs": {"x": [-12, 12]}}, search_config=SearchConfig(seed=0, seconds=3.0)).results
    assert result.status == "confirmed" and "spike" in result.strategy


def test_an_overflow_that_a_division_by_zero_finding_hid_is_shown() -> None:
    """a / softmax(b) with b in [-50, 50]: the bounds let the softmax reach 0 (exp may flush to 0), but
    onnxruntime's smallest value here is a subnormal, so no run divides by 0; a / 4e-45 overflows instead.
    The finding stays unconfirmed, with a unit test and a note that show the overflow."""
    model = onnx.parser.parse_model(
        '<ir_version: 8, opset_import: ["" : 18]>\n'
        "g (float[1, 10] a, float[1, 10] b) => (float[1, 10] y) { q = Softmax<axis = 1>(b)\n y = Div(a, q) }")
    report = ranum.check(model, {"inputs": {"a": [1, 2], "b": [-50, 50]}})
    assert [f.hazard_id for f in report.findings] == ["division-by-zero"]
    (result,) = confirm(model, {"inputs": {"a": [1, 2], "b": [-50, 50]}},
                        search_config=SearchConfig(seed=0, seconds=2.0)).results
    assert result.status == "not_confirmed" and "overflows to infinity" in result.note


def test_a_confirmed_gradient_hazard_is_not_said_to_be_discarded() -> None:
    """A gradient hazard leaves the forward run finite by nature: no note that a Where discarded it."""
    model = onnx.parser.parse_model('<ir_version: 8, opset_import: ["" : 17]>\n'
                                    "g (float[3] x) => (float[3] y) { y = Sqrt(x) }")
    (result,) = confirm(model, {"inputs": {"x": [0, 1]}}, search_config=SearchConfig(seed=0, seconds=3.0)).results
    assert result.kind == "gradient" and result.status == "confirmed"
    assert result.note == ""


@pytest.mark.parametrize("high", [1e30, None])
def test_a_division_by_an_input_with_a_wide_range_is_confirmed_at_zero(high: float | None) -> None:
    """1 / x for x in [-1, 1e30] or [-1, +inf): the middle and quarter points and uniform draws are all far
    from 0 (or the middle is not defined), and the descent did not reach it; the input at its value
    nearest zero does."""
    model = onnx.parser.parse_model('<ir_version: 8, opset_import: ["" : 17]>\n'
                                    "g (float[3] x) => (float[3] y) { one = Constant<value_float = 1.0>()\n"
                                    "y = Div(one, x) }")
    report = confirm(model, {"inputs": {"x": [-1, high]}}, search_config=SearchConfig(seed=0, seconds=2.0))
    (result,) = report.results
    assert result.status == "confirmed" and "zero" in result.strategy, result


def test_random_magnitudes_spread_over_the_powers_of_ten_of_a_wide_range() -> None:
    import numpy as np

    from ranum.confirm._search import _random_magnitudes

    values = _random_magnitudes(-1.0, 1e30, (4000,), np.random.default_rng(0))
    assert values.min() >= -1.0 and values.max() <= 1e30
    exponents = np.floor(np.log10(np.abs(values[values != 0])))
    assert exponents.min() < -30 and exponents.max() > 25 and (values < 0).any()
    assert (np.abs(values) < 1e-10).mean() > 0.3  # uniform draws would give none
    positive = _random_magnitudes(2.0, 3.0, (100,), np.random.default_rng(0))
    assert positive.min() >= 2.0 and positive.max() <= 3.0


def test_a_hand_written_normalisation_of_a_tiny_vector_is_confirmed() -> None:
    """x / sqrt(sum(x * x)) then a softmax: for x of magnitude 1e-25 every square underflows to 0, so the
    division gives inf and the softmax NaN (x at 0 gives 0 / 0 = NaN at the division instead, and no
    corner, middle, random point or descent reaches the underflow); the inputs at tiny values do."""
    model = onnx.parser.parse_model('<ir_version: 8, opset_import: ["" : 17]>\n'
                                    "g (float[1,4] x) => (float[1,4] y) { s = Mul(x, x)\n"
                                    "t = ReduceSum<keepdims = 1>(s)\n n = Sqrt(t)\n d = Div(x, n)\n"
                                    "y = Softmax<axis = -1>(d) }")
    report = confirm(model, {"inputs": {"x": [-1, 1]}}, search_config=SearchConfig(seed=0, seconds=3.0))
    softmax = [r for r in report.results if r.op_type == "Softmax"]
    assert len(softmax) == 1 and softmax[0].status == "confirmed" and "tiny" in softmax[0].strategy, report.results


def test_an_open_range_of_a_float16_input_is_searched_within_float16() -> None:
    """x * x for a float16 x in [0, null): an open end was searched up to 1e30, which float16 holds as inf
    (an input outside its range, whose square's overflow does not count); it is now float16's largest
    value, and 65504 squared overflows."""
    model = onnx.parser.parse_model('<ir_version: 8, opset_import: ["" : 17]>\n'
                                    "g (float16[2] x) => (float16[2] y) { y = Mul(x, x) }")
    report = confirm(model, {"inputs": {"x": [0, None]}}, search_config=SearchConfig(seed=0, seconds=3.0))
    (result,) = report.results
    assert result.status == "confirmed", result


def _exact_value_model(body: str, constants: str, width: int = 3) -> onnx.ModelProto:
    return onnx.parser.parse_model('<ir_version: 8, opset_import: ["" : 17]>\n'
                                   f"g (float[1,{width}] x) => (float[1,{width}] y) <{constants}> {{\n{body}\n}}")


@pytest.mark.parametrize("body, constants", [
    ("e = Exp(x)\n d = Sub(e, c)\n y = Div(one, d)", "float c = {1.7}, float one = {1.0}"),
    ("t = Tanh(x)\n s = Mul(t, k)\n y = Atanh(s)", "float k = {1.01}"),
])
def test_a_hazard_at_one_value_of_a_computed_operand_is_reached_by_bisection(body: str, constants: str) -> None:
    """1 / (exp(x) - 1.7) and atanh(1.01 tanh(x)) at exactly 1: the descent comes near the pole but keeps
    jumping over it on float32's grid; a bisection over x's float32 values lands on it."""
    report = confirm(_exact_value_model(body, constants), {"inputs": {"x": [-3, 3]}, "weights": {"default": "exact"}},
                     search_config=SearchConfig(seed=0, seconds=5.0))
    assert all(r.status == "confirmed" for r in report.results), report.results
    assert any("bisection" in r.strategy for r in report.results), report.results


def test_a_divisor_that_onnxruntime_rounds_otherwise_is_bisected_in_its_arithmetic() -> None:
    """1 / (x W + b): ranum's matrix product and onnxruntime's round differently, so the divisor that is
    exactly 0 in ranum's semantics is not in onnxruntime's; the bisection is redone on onnxruntime's values."""
    body = "m = MatMul(x, w)\n d = Add(m, b)\n y = Div(one, d)"
    constants = "float[2,2] w = {0.3, -0.71, 0.7, 0.33}, float[2] b = {-0.123, 0.0517}, float one = {1.0}"
    report = confirm(_exact_value_model(body, constants, width=2),
                     {"inputs": {"x": [-3, 3]}, "weights": {"default": "exact"}},
                     search_config=SearchConfig(seed=0, seconds=8.0))
    (result,) = report.results
    assert result.status == "confirmed" and "bisection" in result.strategy, result


def test_the_bisection_gives_up_where_the_float_grid_skips_the_value() -> None:
    """1 / (x * x - 0.3): whether or not float32's grid holds an exact 0 of the divisor near sqrt(0.3), the
    walk ends (at two neighbouring values at worst) and every point it reports fires; a hazard whose invalid
    region is not one value (Log's x <= 0) is left to the descent."""
    import numpy as np

    from ranum.analysis import analyze
    from ranum.confirm._exact_value import reach_exact_value
    from ranum.confirm._problem import feeds_of, make_problem, node_values
    from ranum.detect import find_hazards, hazard_of

    model = _exact_value_model("s = Mul(x, x)\n d = Sub(s, c)\n y = Div(one, d)", "float c = {0.3}, float one = {1.0}")
    analysis = analyze(model, {"inputs": {"x": [-3, 3]}, "weights": {"default": "exact"}})
    (finding,) = find_hazards(analysis.run)
    problem = make_problem(analysis, finding.node)
    hazard = hazard_of(analysis.run.rules[finding.node], finding, problem.node)
    for start in (0.5, 0.6, -0.5, 2.0):
        found = reach_exact_value(problem, hazard, {"x": np.full((1, 3), start)}, deadline=float("inf"))
        if found is not None:
            node_in, node_out = node_values(problem, feeds_of(problem, found))
            assert bool(hazard.triggered(node_in, node_out).any())
    log_hazard = _exact_value_model("y = Log(x)", "float unused = {0.0}")
    analysis = analyze(log_hazard, {"inputs": {"x": [-3, 3]}})
    (finding,) = [f for f in find_hazards(analysis.run) if f.kind == "forward"]
    problem = make_problem(analysis, finding.node)
    hazard = hazard_of(analysis.run.rules[finding.node], finding, problem.node)
    assert reach_exact_value(problem, hazard, {"x": np.full((1, 3), 0.5)}, deadline=float("inf")) is None


def test_a_finding_behind_an_operator_without_a_rule_is_not_confirmed_and_says_why() -> None:
    """check passes over an operator without a rule (its outputs get the widest interval); confirm could not
    run the model up to the finding and stopped the whole run with an error (falcon's ALiBi export casts to
    complex128). The finding is now not confirmed, with the reason."""
    model = onnx.parser.parse_model('<ir_version: 8, opset_import: ["" : 17, "com.example": 1]>\n'
                                    "g (float[2] x) => (float[2] y) { z = com.example.Mystery(x)\n y = Log(z) }")
    report = confirm(model, {"inputs": {"x": [1, 2]}}, search_config=SearchConfig(seed=0, seconds=1.0))
    (result,) = report.results
    assert result.status == "not_confirmed" and "Mystery" in result.note, result


def test_the_tests_of_an_in_memory_model_still_pass_after_their_folder_moves(tmp_path: Path) -> None:
    """A model given in memory (an exported PyTorch module) is saved beside the tests; the tests named it by
    its absolute path, so a moved or copied output folder failed with FileNotFoundError."""
    import shutil

    out = tmp_path / "out"
    report = confirm(parse(LOG_OF_DIFFERENCE), {"inputs": {"x": [0, 1], "y": [0, 1]}}, out,
                     search_config=SearchConfig(seed=0, seconds=2.0))
    assert any(r.status == "confirmed" for r in report.results)
    moved = tmp_path / "moved"
    shutil.move(str(out), str(moved))
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--import-mode=importlib",
                           str(moved)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]


def _cosine_head(op: str) -> onnx.ModelProto:
    """ArcFace's margin head: cosines of normalised features with normalised class weights, then
    ``sqrt(1 - cos^2)`` (the sine) or ``acos(cos)``; NaN where a cosine rounds above 1."""
    import numpy as np
    from onnx import helper, numpy_helper

    rng = np.random.default_rng(7)
    nodes = [helper.make_node("ReduceL2", ["x"], ["xn"], axes=[-1], keepdims=1),
             helper.make_node("Div", ["x", "xn"], ["xu"]),
             helper.make_node("ReduceL2", ["w"], ["wn"], axes=[-1], keepdims=1),
             helper.make_node("Div", ["w", "wn"], ["wu"]),
             helper.make_node("Transpose", ["wu"], ["wt"], perm=[1, 0]),
             helper.make_node("MatMul", ["xu", "wt"], ["cos"])]
    if op == "Sqrt":
        nodes += [helper.make_node("Mul", ["cos", "cos"], ["square"]),
                  helper.make_node("Sub", ["one", "square"], ["gap"]), helper.make_node("Sqrt", ["gap"], ["y"])]
    else:
        nodes.append(helper.make_node("Acos", ["cos"], ["y"]))
    weights = [numpy_helper.from_array(rng.normal(0, 0.1, (10, 8)).astype(np.float32), "w"),
               numpy_helper.from_array(np.array(1.0, np.float32), "one")]
    x = helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [4, 8])
    y = helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [4, 10])
    graph = helper.make_graph(nodes, "cosine_head", [x], [y], initializer=weights)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


@pytest.mark.parametrize("op", ["Sqrt", "Acos"])
def test_a_cosine_with_a_class_weight_rounding_above_one_is_confirmed(op: str) -> None:
    """The cosine of a feature with the class weight it copies rounds to 1 or just above at some scales: the
    search now tries inputs whose rows are scaled copies of a weight matrix's rows (neither was confirmed)."""
    report = confirm(_cosine_head(op), {"inputs": {"x": [-3, 3]}, "weights": {"default": "exact"}},
                     search_config=SearchConfig(seconds=10))
    forward = [r for r in report.results if r.op_type == op and r.kind == "forward"]
    assert forward and forward[0].status == "confirmed"


NEAR_ROWS = """
<ir_version: 8, opset_import: ["" : 17]>
g (float[8, 16] e) => (float[7, 1] y) <int64[1] zero = {0}, int64[1] one = {1}, int64[1] eight = {8},
                                        int64[1] axis = {1}, float two = {2.0}> {
    a = Slice (e, zero, one, zero)
    squares = Mul (e, e)
    norms = ReduceSum <keepdims = 1> (squares, axis)
    anchor = Slice (norms, zero, one, zero)
    at = Transpose <perm = [1, 0]> (a)
    dots = MatMul (e, at)
    twice = Mul (dots, two)
    total = Add (norms, anchor)
    distances = Sub (total, twice)
    others = Slice (distances, one, eight, zero)
    y = Sqrt (others)
}
"""


def test_a_squared_distance_of_rows_a_unit_apart_is_confirmed() -> None:
    """``|a|^2 + |b|^2 - 2 a.b`` for rows one float unit apart rounds below 0 (a batch-hard triplet loss's root of
    it is NaN); equal rows give exactly 0, so repeating rows did not find it."""
    report = confirm(parse(NEAR_ROWS), {"inputs": {"e": [-3, 3]}}, search_config=SearchConfig(seconds=10))
    forward = [r for r in report.results if r.op_type == "Sqrt" and r.kind == "forward"]
    assert forward and forward[0].status == "confirmed"


def test_a_bfloat16_model_is_searched_and_onnxruntime_s_refusal_is_the_note() -> None:
    """bfloat16 values have no numpy type of their own: the search crashed converting them (an internal error,
    exit 4). onnxruntime's CPU build runs few bfloat16 operators and takes no bfloat16 arrays from numpy, so no
    test can be verified there: the note says so."""
    model = parse("""
    <ir_version: 8, opset_import: ["" : 18]>
    g (bfloat16[4, 8] x) => (bfloat16[4] y) <int64[1] ax = {-1}> {
        s = ReduceSum<keepdims = 0>(x, ax)
        y = Log(s)
    }""")
    report = confirm(model, {"inputs": {"x": [0.0, 1.0]}}, search_config=SearchConfig(seed=0, seconds=2.0))
    assert [r.op_type for r in report.results] == ["Log"]
    result = report.results[0]
    assert result.status == "not_confirmed" and result.note.startswith("onnxruntime cannot run this model")
