"""``ranum check`` on a model with sequence values: a JSON report, findings after ConcatFromSequence."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
from onnx import TensorProto, helper
from typer.testing import CliRunner

from ranum.cli import app

runner = CliRunner(env={"COLUMNS": "200"})
FLOAT = TensorProto.FLOAT


def _sequence_model(path: Path) -> Path:
    """out = Log(ConcatFromSequence(SplitToSequence(x) with x[0] dropped))."""
    nodes = [helper.make_node("SplitToSequence", ["x"], ["s"], axis=0),
             helper.make_node("SequenceErase", ["s", "zero"], ["rest"]),
             helper.make_node("ConcatFromSequence", ["rest"], ["c"], axis=0),
             helper.make_node("Log", ["c"], ["out"], name="log")]
    graph = helper.make_graph(nodes, "sequences", [helper.make_tensor_value_info("x", FLOAT, [4, 2])],
                              [helper.make_tensor_value_info("out", FLOAT, [3, 2])],
                              initializer=[helper.make_tensor("zero", TensorProto.INT64, [], [0])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    onnx.save(model, str(path))
    return path


def test_check_writes_a_json_report_for_a_model_with_sequences(tmp_path: Path) -> None:
    path = _sequence_model(tmp_path / "sequences.onnx")
    result = runner.invoke(app, ["check", str(path), "-r", "x=0,1", "--format", "json"])
    assert result.exit_code == 1, result.output
    data = json.loads(result.stdout)
    assert [(f["node"], f["hazard_id"]) for f in data["findings"]] == [("log", "log-nonpositive")]
    assert data["unsupported_ops"] == [] and data["not_analysed"] == []
    clean = runner.invoke(app, ["check", str(path), "-r", "x=1,2", "--format", "json"])
    assert clean.exit_code == 0, clean.output
    assert json.loads(clean.stdout)["findings"] == []


def test_check_renders_text_and_html_for_a_model_with_sequences(tmp_path: Path) -> None:
    path = _sequence_model(tmp_path / "sequences.onnx")
    text = runner.invoke(app, ["check", str(path), "-r", "x=0,1"])
    assert text.exit_code == 1 and "Log" in text.stdout, text.output
    page = tmp_path / "report.html"
    html = runner.invoke(app, ["check", str(path), "-r", "x=0,1", "--format", "html", "--output", str(page)])
    assert html.exit_code == 1, html.output
    assert "log" in page.read_text()
