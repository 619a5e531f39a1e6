"""SARIF 2.1.0 output: schema-valid, one rule per hazard kind, Python or model locations, severity by certainty.

The schema file beside this test is the SARIF 2.1.0 JSON schema (the schemastore/"rtm.5" edition
that GitHub code scanning validates against), shipped so the test needs no network.
"""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import onnx
import pytest
from typer.testing import CliRunner

import ranum
from ranum.cli import app
from ranum.report import to_sarif
from tests.frontend import defects
from tests.frontend.exports import defect_report
from tests.models import LOG_OF_DIFFERENCE, parse

SCHEMA = json.loads((Path(__file__).parent / "sarif-schema-2.1.0.json").read_text())
CERTAIN_LOG = """
<ir_version: 8, opset_import: ["" : 17]>
g (float[2] x, float[2] y) => (float[2] z, float[2] w) {
  z = Log(x)
  w = Sqrt(y)
}
"""


def validate(log: dict) -> None:
    jsonschema.validate(log, SCHEMA, cls=jsonschema.Draft4Validator,
                        format_checker=jsonschema.Draft4Validator.FORMAT_CHECKER)


def test_python_locations_and_schema() -> None:
    log = to_sarif(defect_report("log"), base=Path(defects.__file__).parent)
    validate(log)
    (run,) = log["runs"]
    rules = run["tool"]["driver"]["rules"]
    (result,) = [r for r in run["results"] if r["properties"]["opType"] == "Log"]
    assert rules[result["ruleIndex"]]["id"] == result["ruleId"] == "log-nonpositive"
    physical = result["locations"][0]["physicalLocation"]
    assert physical["artifactLocation"] == {"uri": "defects.py", "uriBaseId": "%SRCROOT%"}
    assert physical["region"]["startLine"] == defects.defect_line("log")
    assert "torch.log(p)" in physical["region"]["snippet"]["text"]
    assert result["locations"][0]["logicalLocations"][0]["name"] == result["properties"]["node"]
    assert result["level"] == "warning"


def test_one_rule_per_hazard_kind_with_help_and_fix_hint(tmp_path: Path) -> None:
    path = tmp_path / "m.onnx"
    onnx.save(parse(CERTAIN_LOG), str(path))
    report = ranum.check(path, {"inputs": {"x": [-2, -1], "y": [-3, 4]}})
    log = to_sarif(report, base=tmp_path)
    validate(log)
    run = log["runs"][0]
    ids = [r["id"] for r in run["tool"]["driver"]["rules"]]
    assert len(ids) == len(set(ids)) == len({f.hazard_id for f in report.findings})
    for rule in run["tool"]["driver"]["rules"]:
        assert rule["help"]["text"] and "Fix:" in rule["help"]["text"]
    levels = {r["properties"]["opType"]: r["level"] for r in run["results"]}
    assert levels["Log"] == "error"  # every value of x in [-2, -1] is invalid
    for result in run["results"]:  # no Python source: the model file, plus the node as a logical location
        location = result["locations"][0]
        assert location["physicalLocation"]["artifactLocation"]["uri"] == "m.onnx"
        assert location["logicalLocations"][0]["name"] == result["properties"]["node"]


def test_in_memory_model_and_clean_report_are_valid() -> None:
    report = ranum.check(parse(LOG_OF_DIFFERENCE), {"inputs": {"x": [0, 1], "y": [0, 1]}})
    log = to_sarif(report)
    validate(log)
    assert "physicalLocation" not in log["runs"][0]["results"][0]["locations"][0]
    clean = to_sarif(defect_report("safe"))
    validate(clean)
    assert clean["runs"][0]["results"] == []


@pytest.mark.parametrize("broken", [{"version": "2.0.0"}, {"runs": "x"}])
def test_schema_rejects_broken_logs(broken: dict) -> None:
    log = {**to_sarif(defect_report("safe")), **broken}
    with pytest.raises(jsonschema.ValidationError):
        validate(log)


def test_cli_sarif_format(tmp_path: Path) -> None:
    path = tmp_path / "m.onnx"
    onnx.save(parse(CERTAIN_LOG), str(path))
    out = tmp_path / "report.sarif"
    result = CliRunner().invoke(app, ["check", str(path), "-r", "x=-2,-1", "-r", "y=1,2", "--format", "sarif",
                                      "--output", str(out)])
    assert result.exit_code == 1, result.output
    log = json.loads(out.read_text())
    validate(log)
    assert [r["ruleId"] for r in log["runs"][0]["results"]] == ["log-nonpositive"]
