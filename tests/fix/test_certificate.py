"""What a fix certificate rests on: no certificate over nodes the re-analysis did not analyse, and the
analysis' assumptions (default ranges, symbolic dimensions) in fix's reports as in check's."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
from typer.testing import CliRunner

from ranum.cli import app
from ranum.fix import FixConfig, fix
from tests.models import parse

CONFIG = FixConfig(seconds=10.0, steps=20)
runner = CliRunner(env={"COLUMNS": "200"})

# an operator without a rule (its output may be NaN: nothing says otherwise), and no finding anywhere
ONLY_UNKNOWN_OP = """
<ir_version: 8, opset_import: ["" : 17, "custom.domain" : 1]>
g (float[3] x) => (float[3] z) {
  z = custom.domain.Mystery(x)
}
"""

# x: [N, 3] in [0, 1]; Exp(60 * sum over the batch) overflows for N >= 2 only
BATCH_SUM_EXP = """
<ir_version: 8, opset_import: ["" : 17]>
g (float[N,3] x) => (float[1,3] y) {
  axes = Constant<value = int64[1] {0}>()
  s = ReduceSum<keepdims = 1>(x, axes)
  k = Constant<value = float {60.0}>()
  t = Mul(s, k)
  y = Exp(t)
}
"""


def test_a_node_left_unanalysed_bars_the_certificate() -> None:
    report = fix(parse(ONLY_UNKNOWN_OP), {"inputs": {"x": [-1, 1]}}, "all", CONFIG)
    assert not report.remaining and not report.certified
    data = report.to_dict()
    assert data["certified"] is False
    assert [entry["op_type"] for entry in data["not_analysed"]] == ["Mystery"]
    assert data["unsupported_ops"] == ["Mystery"]


def test_the_cli_says_which_nodes_no_certificate_covers(tmp_path: Path) -> None:
    path = tmp_path / "m.onnx"
    onnx.save(parse(ONLY_UNKNOWN_OP), str(path))
    text = runner.invoke(app, ["fix", str(path), "-r", "x=-1,1", "-o", str(tmp_path / "a.onnx")])
    assert text.exit_code == 1, text.output
    assert "certified: no finding" not in text.stdout
    assert "not analysed" in text.stdout and "Mystery" in text.stdout
    as_json = runner.invoke(app, ["fix", str(path), "-r", "x=-1,1", "-o", str(tmp_path / "b.onnx"), "-f", "json"])
    assert as_json.exit_code == 1, as_json.output
    data = json.loads(as_json.stdout)
    assert data["certified"] is False and data["not_analysed"][0]["op_type"] == "Mystery"


def test_the_symbolic_dimensions_a_certificate_assumes_are_reported(tmp_path: Path) -> None:
    path = tmp_path / "m.onnx"
    onnx.save(parse(BATCH_SUM_EXP), str(path))
    report = fix(path, {"inputs": {"x": [0, 1]}}, "operator", CONFIG)
    assert report.certified  # for N = 1 only, which the report must say
    assert any("symbolic dimension 'N' set to 1" in w for w in report.warnings)
    args = ["fix", str(path), "-r", "x=0,1", "--on", "operator"]
    text = runner.invoke(app, [*args, "-o", str(tmp_path / "a.onnx")])
    assert text.exit_code == 0, text.output
    assert "warning: symbolic dimension 'N' set to 1" in text.stdout
    as_json = runner.invoke(app, [*args, "-o", str(tmp_path / "b.onnx"), "-f", "json"])
    data = json.loads(as_json.stdout)
    assert data["dims"] == {"N": 1}
    assert any("symbolic dimension 'N' set to 1" in w for w in data["warnings"])
