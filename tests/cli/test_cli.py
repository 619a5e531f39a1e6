"""The command line: reports, formats, exit codes and clear errors for bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper
from typer.testing import CliRunner

from ranum.cli import app
from tests.models import LOG_OF_DIFFERENCE, SAFE_DIVISION, UNKNOWN_OP, parse

runner = CliRunner(env={"COLUMNS": "200"})


def invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def test_version_and_help() -> None:
    assert invoke("--version").exit_code == 0
    assert "ranum" in invoke("--version").stdout
    result = invoke("--help")
    assert result.exit_code == 0 and "check" in result.stdout


def test_the_command_line_answers_help_without_importing_torch() -> None:
    """Options are parsed before the analysis is imported: `ranum --help` takes a fraction of a
    second, where importing torch takes seconds."""
    import subprocess
    import sys

    probe = "import sys, ranum.cli; print('torch' in sys.modules, 'ranum.analysis' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["False", "False"]
    names = "import ranum; print(ranum.check.__module__, ranum.RanumError.__name__)"  # the API still resolves
    done = subprocess.run([sys.executable, "-c", names], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["ranum.detect._check", "RanumError"]


@pytest.mark.parametrize("arguments", [["check", "{model}", "--range", "x=abc"], ["check", "missing.onnx"],
                                       ["fix", "{model}", "--weights", "foo", "-o", "{out}"],
                                       ["confirm", "missing.py:make", "--input", "x=1x2", "-o", "{out}"]])
def test_usage_errors_are_reported_before_the_analysis_is_imported(log_model: Path, tmp_path: Path,
                                                                  arguments: list[str]) -> None:
    """A bad option or a missing model file exits 2 without importing torch (seconds) first."""
    import subprocess
    import sys

    filled = [a.format(model=log_model, out=tmp_path / "out.onnx") for a in arguments]
    probe = ("import sys, typer.testing, ranum.cli as c; r = typer.testing.CliRunner().invoke(c.app, sys.argv[1:]); "
             "print(r.exit_code, 'torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", probe, *filled], capture_output=True, text=True, check=True,
                          cwd=tmp_path)
    assert done.stdout.split() == ["2", "False"]


def test_findings_exit_1_with_table(log_model: Path) -> None:
    result = invoke("check", log_model, "--range", "x=0,1", "--range", "y=0,1")
    assert result.exit_code == 1, result.output
    assert "Log" in result.stdout and "log of a non-positive value" in result.stdout
    assert "1 findings" in result.stdout


def test_clean_model_exits_0(tmp_path: Path) -> None:
    path = tmp_path / "div.onnx"
    onnx.save(parse(SAFE_DIVISION), str(path))
    result = invoke("check", path, "--range", "x=-1,1", "--range", "keep_prob=0.5,1")
    assert result.exit_code == 0, result.output
    assert "0 findings" in result.stdout


def test_json_report_shape(log_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    spec = tmp_path / "ranges.json"
    spec.write_text(json.dumps({"inputs": {"x": [2, 3], "y": [0, 2]}}))
    result = invoke("check", log_model, "--spec", spec, "--format", "json", "--output", out)
    assert result.exit_code == 1, result.output
    data = json.loads(out.read_text())
    assert set(data) >= {"model", "findings", "unsupported_ops", "stats"}
    assert set(data["stats"]) >= {"nodes", "seconds", "phase_seconds"}
    assert set(data["stats"]["phase_seconds"]) == {"load", "ranges", "interpret", "detect"}
    (finding,) = data["findings"]
    assert set(finding) >= {"node", "op_type", "hazard", "operand", "interval", "invalid", "certain", "kind"}
    assert finding["op_type"] == "Log" and finding["kind"] == "forward" and finding["certain"] is False
    lo, hi = finding["interval"]
    assert lo <= 0 < hi and lo >= -0.0001 - 0 - 1e-3 and hi <= 3 + 1e-5


def test_json_to_stdout(log_model: Path) -> None:
    result = invoke("check", log_model, "-r", "x=2,3", "-r", "y=0,1", "--format", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["findings"] == []


def test_unknown_operator_is_a_warning_and_sound(tmp_path: Path) -> None:
    path = tmp_path / "unknown.onnx"
    onnx.save(parse(UNKNOWN_OP), str(path))
    result = invoke("check", path, "-r", "x=1,2", "--format", "json")
    assert result.exit_code == 1, result.output
    data = json.loads(result.stdout)
    assert data["unsupported_ops"] == ["Mystery"]
    assert [f["op_type"] for f in data["findings"]] == ["Log"]


UNKNOWN_LAST = """
<ir_version: 8, opset_import: ["" : 17, "custom.domain" : 1]>
g (float[3] x) => (float[3] z) {
  u = Exp(x)
  z = custom.domain.Mystery(u)
}
"""


def test_strict_exits_3_when_nothing_is_found_but_a_node_was_not_analysed(tmp_path: Path) -> None:
    path = tmp_path / "unknown_last.onnx"
    onnx.save(parse(UNKNOWN_LAST), str(path))
    assert invoke("check", path, "-r", "x=1,2").exit_code == 0
    result = invoke("check", path, "-r", "x=1,2", "--strict")
    assert result.exit_code == 3, result.output
    assert "1 of 2 nodes analysed" in result.stdout
    assert invoke("check", path, "-r", "x=1,100", "--strict").exit_code == 1  # Exp overflows: a finding wins
    clean = tmp_path / "div.onnx"
    onnx.save(parse(SAFE_DIVISION), str(clean))
    assert invoke("check", clean, "--range", "x=-1,1", "--range", "keep_prob=0.5,1", "--strict").exit_code == 0


def _assert_bad_input(result, fragment: str) -> None:
    assert result.exit_code == 2, result.output
    assert fragment in result.stderr
    assert "Traceback" not in result.output
    assert len(result.stderr.strip().splitlines()) == 1


def test_missing_file(tmp_path: Path) -> None:
    _assert_bad_input(invoke("check", tmp_path / "nope.onnx"), "not found")


def test_not_onnx(tmp_path: Path) -> None:
    path = tmp_path / "text.onnx"
    path.write_text("this is not a model\n" * 10)
    _assert_bad_input(invoke("check", path), "ONNX")


def test_truncated_file(log_model: Path, tmp_path: Path) -> None:
    data = log_model.read_bytes()
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(data[: len(data) // 2])
    _assert_bad_input(invoke("check", cut), "ONNX")


def test_checker_failure(tmp_path: Path) -> None:
    node = helper.make_node("Log", ["undefined_tensor"], ["z"])
    graph = helper.make_graph([node], "g", [], [helper.make_tensor_value_info("z", 1, [2])])
    path = tmp_path / "bad.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    _assert_bad_input(invoke("check", path), "checker")


def test_cyclic_graph(tmp_path: Path) -> None:
    nodes = [helper.make_node("Add", ["x", "b"], ["a"]), helper.make_node("Log", ["a"], ["b"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", 1, [2])],
                              [helper.make_tensor_value_info("b", 1, [2])])
    path = tmp_path / "cycle.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    result = invoke("check", path)
    assert result.exit_code == 2 and ("cycle" in result.stderr or "checker" in result.stderr), result.output


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["-r", "nosuch=0,1"], "the graph inputs: 'x', 'y'"),
        (["-r", "x:1=0,1"], "did you mean 'x'?"),
        (["-r", "x=1,0"], "greater than"),
        (["-r", "x=nan,1"], "NaN"),
        (["-r", "x=0"], "NAME=LO,HI"),
        (["-r", "x=none,1"], "numbers (or empty: unbounded)"),
        (["--weights", "sometimes"], "--weights"),
        (["--dim", "batch=-3"], "--dim"),
    ],
)
def test_bad_ranges(log_model: Path, args: list[str], fragment: str) -> None:
    _assert_bad_input(invoke("check", log_model, *args), fragment)


def test_bad_spec_file(log_model: Path, tmp_path: Path) -> None:
    spec = tmp_path / "spec.json"
    spec.write_text("{not json")
    _assert_bad_input(invoke("check", log_model, "--spec", spec), "JSON")
    spec.write_text(json.dumps({"inputs": {"x": [0]}}))
    _assert_bad_input(invoke("check", log_model, "--spec", spec), "[LO, HI]")


def test_an_unbounded_end_is_null_in_a_spec_and_empty_in_a_range(tmp_path: Path) -> None:
    """``[1, null]`` (RANUM's ``[1, None]``, a count) and ``--range x=1,`` leave the upper end unbounded:
    log(x) is then safe; ``[null, 1]`` and ``x=,1`` reach log(0)."""
    path = tmp_path / "log.onnx"
    node = helper.make_node("Log", ["x"], ["y"], name="log")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", 1, [2])],
                              [helper.make_tensor_value_info("y", 1, [2])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    spec = tmp_path / "spec.json"
    for ends, findings, shown in (([1, None], 0, [1.0, "inf"]), ([None, 1], 1, ["-inf", 1.0])):
        spec.write_text(json.dumps({"inputs": {"x": ends}}))
        report = json.loads(invoke("check", path, "--spec", spec, "-f", "json").stdout)
        assert len(report["findings"]) == findings
        assert report["assumptions"][0]["range"] == shown
    assert invoke("check", path, "-r", "x=1,").exit_code == 0
    assert invoke("check", path, "-r", "x=,1").exit_code == 1
    spec.write_text(json.dumps({"inputs": {"x": ["None", 1]}}))
    _assert_bad_input(invoke("check", path, "--spec", spec), "written null")


def test_a_range_may_name_a_tensorflow_op_for_its_first_tensor(tmp_path: Path) -> None:
    """tf2onnx names a placeholder's tensor ``x:0``; RANUM's and DEBAR's range tables, and TensorFlow users,
    name the op ``x``. The range applies to ``x:0``, with a warning that says so (and ``x:0`` to ``x``)."""
    for graph_name, given in (("x:0", "x"), ("x", "x:0")):
        path = tmp_path / "log.onnx"
        node = helper.make_node("Log", [graph_name], ["y"], name="log")
        graph = helper.make_graph([node], "g", [helper.make_tensor_value_info(graph_name, 1, [2])],
                                  [helper.make_tensor_value_info("y", 1, [2])])
        onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
        spec = tmp_path / "spec.json"
        spec.write_text(json.dumps({"inputs": {given: [1, 2]}}))
        result = invoke("check", path, "--spec", spec, "-f", "json")
        report = json.loads(result.stdout)
        assert result.exit_code == 0 and not report["findings"]
        assert report["assumptions"][0] == {"tensor": graph_name, "role": "input", "range": [1.0, 2.0],
                                            "source": "spec"}
        assert f"the range given for '{given}' applies to the tensor '{graph_name}'" in report["warnings"]
        assert invoke("check", path, "-r", f"{given}=-1,1").exit_code == 1


def test_output_folder_missing_writes_nothing(log_model: Path, tmp_path: Path) -> None:
    target = tmp_path / "missing" / "r.json"
    _assert_bad_input(invoke("check", log_model, "-f", "json", "-o", target), "does not exist")
    assert not target.parent.exists()


def test_external_data_escaping_folder(tmp_path: Path) -> None:
    inner = tmp_path / "model"
    inner.mkdir()
    weights = numpy_helper.from_array(np.ones((4, 4), np.float32), "W")
    outside = tmp_path / "secret.bin"
    outside.write_bytes(np.ones((4, 4), np.float32).tobytes())
    weights.ClearField("raw_data")
    weights.data_location = onnx.TensorProto.EXTERNAL
    for key, value in (("location", "../secret.bin"), ("offset", "0"), ("length", "64")):
        entry = weights.external_data.add()
        entry.key, entry.value = key, value
    node = helper.make_node("MatMul", ["x", "W"], ["z"])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", 1, [1, 4])],
                              [helper.make_tensor_value_info("z", 1, [1, 4])], initializer=[weights])
    path = inner / "m.onnx"
    with open(path, "wb") as stream:
        stream.write(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString())
    _assert_bad_input(invoke("check", path), "outside the model folder")


def test_kind_option_keeps_only_findings_of_that_kind(tmp_path: Path) -> None:
    path = tmp_path / "sqrt.onnx"
    onnx.save(parse("""<ir_version: 8, opset_import: ["" : 17]>
    g (float[3] x) => (float[3] y) { y = Sqrt (x) }"""), str(path))
    # sqrt of [0, 1]: no NaN at inference, but an infinite derivative at 0
    everything = invoke("check", path, "--range", "x=0,1", "--format", "json")
    assert everything.exit_code == 1, everything.output
    assert {f["kind"] for f in json.loads(everything.stdout)["findings"]} == {"gradient"}
    forward = invoke("check", path, "--range", "x=0,1", "--kind", "forward", "--format", "json")
    assert forward.exit_code == 0, forward.output
    assert json.loads(forward.stdout)["findings"] == []
    assert invoke("check", path, "--range", "x=0,1", "--kind", "gradient").exit_code == 1
    assert invoke("check", path, "--range", "x=0,1", "--kind", "backward").exit_code == 2


def test_a_piped_report_keeps_long_node_names_on_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Written to a pipe (not a terminal, no COLUMNS), rich drew tables 80 columns wide and folded node names
    such as '/inner/encoder/layer.1/attention/self/Log' into pieces; the report is now wide enough."""
    name = "/inner/encoder/layer.1/attention/self/relative_position_bucket/Log"
    model = onnx.parser.parse_model('<ir_version: 8, opset_import: ["" : 17]>\n'
                                    f'g (float[2] x) => (float[2] y) {{ ["{name}"] y = Log(x) }}')
    path = tmp_path / "long.onnx"
    onnx.save(model, str(path))
    monkeypatch.delenv("COLUMNS", raising=False)
    result = CliRunner().invoke(app, ["check", str(path), "--range", "x=0,1"])
    assert result.exit_code == 1, result.output
    assert name in result.stdout, result.stdout


def test_an_internal_error_exits_with_4_not_as_findings(tmp_path: Path) -> None:
    """A crash of ranum's own code must not read as "findings" (exit 1) to a script: exit 4, the traceback and
    a one-line message on stderr, and no report written."""
    import subprocess
    import sys

    model = tmp_path / "m.onnx"
    onnx.save(parse(LOG_OF_DIFFERENCE), model)
    report = tmp_path / "r.json"
    program = ("import sys\nimport ranum.detect._check as check\n"
               "def fail(*args, **kwargs):\n    raise ZeroDivisionError('simulated')\n"
               "check.report_from = fail\nimport ranum.cli\n"
               f"sys.argv = ['ranum', 'check', {str(model)!r}, '--format', 'json', '--output', {str(report)!r}]\n"
               "ranum.cli.main()\n")
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=300)
    assert result.returncode == 4
    assert "Traceback" in result.stderr and "internal error (ZeroDivisionError: simulated)" in result.stderr
    assert result.stdout == "" and not report.exists()
