"""PyTorch front end: export with dynamo, and findings mapped back to the Python line of the operator."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import ranum
from ranum.cli import app
from ranum.errors import ModelError, RangeSpecError, RanumError
from ranum.frontend import load_factory, parse_input
from ranum.frontend._source import node_location, parse_stack_trace
from tests.frontend import defects
from tests.frontend.exports import defect_report

DEFECTS_FILE = Path(defects.__file__).resolve()


def _finding(name: str, op_type: str):
    matches = [f for f in defect_report(name).findings if f.op_type == op_type]
    assert matches, [(f.node, f.op_type) for f in defect_report(name).findings]
    return matches[0]


@pytest.mark.parametrize(("name", "op_type", "code"), [
    ("log", "Log", "torch.log(p)"),
    ("sqrt", "Sqrt", "torch.sqrt(var)"),
    ("norm", "Div", "torch.linalg.vector_norm"),
])
def test_finding_points_at_the_defect_line(name: str, op_type: str, code: str) -> None:
    finding = _finding(name, op_type)
    assert finding.source is not None
    assert Path(finding.source.file).resolve() == DEFECTS_FILE
    assert finding.source.line == defects.defect_line(name)
    assert code in finding.source.code


def test_hazards_of_the_classic_defects() -> None:
    assert _finding("log", "Log").hazard_id == "log-nonpositive"
    assert _finding("sqrt", "Sqrt").hazard_id == "sqrt-zero-gradient"
    assert _finding("norm", "Div").hazard_id == "division-by-zero"


def test_operator_inside_a_submodule_names_the_module_path() -> None:
    assert _finding("norm", "Div").source.module == "head"


class _Normalise(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x / torch.linalg.vector_norm(x, dim=-1, keepdim=True)


class _Block(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.norm = _Normalise()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x)


class _Nested(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.blocks = torch.nn.ModuleList([_Block()])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks[0](x)


def test_an_operator_two_submodules_deep_names_each_module_once() -> None:
    """The exporter writes each scope as the whole path so far: joining them named the module
    ``blocks.blocks.0.blocks.0.norm``."""
    report = ranum.check(_Nested(), torch.rand(2, 8), ranges={"x": (-1, 1)})
    (finding,) = [f for f in report.findings if f.op_type == "Div"]
    assert finding.source.module == "blocks.0.norm"


@pytest.mark.parametrize(("scopes", "path"), [
    ("['', 'encoder', 'layer', 'linear']", "encoder.layer"),
    ("['', 'encoder', 'encoder.layer', 'encoder.layer.0', 'linear']", "encoder.layer.0"),
    ("['', 'mul']", ""),
    ("not a list", ""),
])
def test_module_paths_from_either_form_of_the_scopes(scopes: str, path: str) -> None:
    from ranum.frontend._source import _module_path

    assert _module_path(scopes) == path


def test_safe_module_reports_nothing() -> None:
    assert defect_report("safe").findings == ()


class _TinyEpsilon(torch.nn.Module):
    """RMS scaling with an epsilon of 1e-8: the exporter's optimizer would rewrite ``+ 1e-8`` into nothing."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x / torch.sqrt((x ** 2).mean(-1, keepdim=True) + 1e-8)


def test_the_module_is_analysed_as_written_not_as_the_exporter_optimizes_it() -> None:
    report = ranum.check(_TinyEpsilon(), torch.rand(2, 8), ranges={"x": (0, 1)})
    assert report.findings == (), [(f.op_type, f.hazard) for f in report.findings]


def test_json_report_has_a_source_per_finding() -> None:
    data = json.loads(defect_report("log").to_json())
    (finding,) = [f for f in data["findings"] if f["op_type"] == "Log"]
    assert finding["source"]["line"] == defects.defect_line("log")
    assert set(finding["source"]) >= {"file", "line", "code"}
    assert {"node", "op_type", "hazard", "interval", "certain"} <= set(finding)


def test_onnx_model_without_metadata_has_null_source(tmp_path: Path) -> None:
    from tests.models import LOG_OF_DIFFERENCE, parse

    report = ranum.check(parse(LOG_OF_DIFFERENCE), {"inputs": {"x": [0, 1], "y": [0, 1]}})
    assert report.findings and all(f.source is None for f in report.findings)
    assert json.loads(report.to_json())["findings"][0]["source"] is None


def test_exported_onnx_file_keeps_the_source(tmp_path: Path) -> None:
    import onnx

    path = tmp_path / "exported.onnx"
    onnx.save(defect_report("sqrt").analysis.graph.proto, str(path))
    (finding,) = [f for f in ranum.check(path, {"inputs": {"x": [-1, 1]}}).findings if f.op_type == "Sqrt"]
    assert finding.source.line == defects.defect_line("sqrt")


def test_source_locations_of_named_nodes_only() -> None:
    """Only the nodes asked for are located (the report asks for its findings' nodes)."""
    from ranum.frontend import source_locations

    report = defect_report("sqrt")
    proto = report.analysis.graph.proto
    every = source_locations(proto)
    (finding,) = [f for f in report.findings if f.op_type == "Sqrt"]
    assert len(every) > 1 and finding.node in every
    assert source_locations(proto, {finding.node}) == {finding.node: every[finding.node]}
    assert source_locations(proto, set()) == {}


def test_stack_trace_parsing_picks_frames_in_order() -> None:
    trace = ('File "/a/model.py", line 9, in forward\n    p = f(x)\n'
             'File "/venv/lib/site-packages/torch/nn/functional.py", line 3, in f\n    return g(x)')
    assert parse_stack_trace(trace) == [("/a/model.py", 9, "p = f(x)"),
                                        ("/venv/lib/site-packages/torch/nn/functional.py", 3, "return g(x)")]


@pytest.mark.parametrize(("trace", "expected"), [
    # an operator created under torch.no_grad(): the exporter records only the generated graph module's line
    ('File "<eval_with_key>.225", line 7, in forward\n    div_4 = torch.ops.aten.div.Tensor(mul_3, add_11)', None),
    ('File "/a/loss.py", line 12, in forward\n    iou = inter / union\n'
     'File "<eval_with_key>.3", line 7, in forward\n    div = torch.ops.aten.div.Tensor(a, b)', ("/a/loss.py", 12)),
])
def test_a_generated_frame_is_never_the_source(trace: str, expected) -> None:
    from onnx import helper

    node = helper.make_node("Div", ["a", "b"], ["c"])
    node.metadata_props.add(key="pkg.torch.onnx.stack_trace", value=trace)
    location = node_location(node)
    assert (None if location is None else (location.file, location.line)) == expected


def test_parse_input() -> None:
    spec = parse_input("x=1x784:0,1")
    assert (spec.name, spec.shape, spec.low, spec.high, spec.dtype) == ("x", (1, 784), 0.0, 1.0, "float32")
    ids = parse_input("ids=2x8:0,99:int64")
    assert ids.dtype == "int64" and ids.example(torch.Generator()).dtype == torch.int64
    assert parse_input("x=3").low is None
    for bad in ("x", "x=1xa:0,1", "x=2:1,0", "x=2:0,1:complex7", "=2"):
        with pytest.raises(RangeSpecError):
            parse_input(bad)


def test_load_factory_errors() -> None:
    assert type(load_factory(f"{DEFECTS_FILE}:make_log_of_softmax")).__name__ == "LogOfSoftmax"  # a fresh import
    for target in (f"{DEFECTS_FILE}:missing", f"{DEFECTS_FILE}:make_not_a_module", "nowhere.py:make",
                   f"{DEFECTS_FILE}"):
        with pytest.raises(ModelError):
            load_factory(target)


def test_missing_onnxscript_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnxscript" else real(name, *a))
    with pytest.raises(RanumError, match="onnxscript"):
        ranum.check(defects.SqrtOfVariance(), torch.rand(1, 4))


def test_core_imports_without_onnxscript() -> None:
    code = "import sys; sys.modules['onnxscript'] = None; import ranum, ranum.cli, ranum.report; print('ok')"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr


def test_cli_factory_form_reports_the_source_line() -> None:
    runner = CliRunner(env={"COLUMNS": "200"})
    result = runner.invoke(app, ["check", f"{DEFECTS_FILE}:make_log_of_softmax", "--input", "x=1x8:0,1",
                                 "--input", "y=1x4:0,1", "--weights", "-10,10"])
    assert result.exit_code == 1, result.output
    line = defects.defect_line("log")
    assert f"defects.py:{line}" in result.stdout
    assert "loss = -(y * torch.log(p)).sum()" in result.stdout and "Log can receive" in result.stdout


def test_cli_input_errors(tmp_path: Path) -> None:
    runner = CliRunner()
    no_inputs = runner.invoke(app, ["check", f"{DEFECTS_FILE}:make_log_of_softmax"])
    assert no_inputs.exit_code == 2 and "--input" in no_inputs.output
    missing = runner.invoke(app, ["check", "nowhere.py:make", "--input", "x=1:0,1"])
    assert missing.exit_code == 2 and "not found" in missing.output
    onnx_with_input = runner.invoke(app, ["check", str(tmp_path / "m.onnx"), "--input", "x=1:0,1"])
    assert onnx_with_input.exit_code == 2 and "--range" in onnx_with_input.output


class _BranchesOnValues(torch.nn.Module):
    """A Python branch on a tensor value: the dynamo exporter refuses it, tracing follows the example."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.sum() > 0:
            return torch.log(x)
        return torch.sqrt(x)


class _UnconvertibleByBoth(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.lgamma(x)


def test_dynamo_failure_falls_back_to_tracing_and_says_so() -> None:
    report = ranum.check(_BranchesOnValues(), torch.rand(2, 3) + 0.5, ranges={"x": (0.0, 1.0)})
    assert [f.op_type for f in report.findings] == ["Log"]  # the branch the example input takes
    notes = report.warnings
    assert "exported by tracing" in notes[0] and "branches it does not take are not analysed" in notes[0]
    assert any(n.startswith("tracing, test_torch_frontend.py:") for n in notes[1:]), notes
    assert report.to_dict()["warnings"][:len(report.export_notes)] == list(report.export_notes)


def test_an_operator_only_tracing_converts_is_analysed() -> None:
    class Distances(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.log(torch.cdist(x, x))  # the distance of a point to itself is 0

    report = ranum.check(Distances(), torch.rand(4, 3), ranges={"x": (0.0, 1.0)})
    assert report.export_notes and not report.unsupported_ops
    assert "Log" in [f.op_type for f in report.findings]


def test_dynamo_export_has_no_notes() -> None:
    report = ranum.check(defects.SqrtOfVariance(), torch.rand(1, 4))
    assert report.export_notes == ()


def test_both_exporters_failing_is_one_clear_error() -> None:
    with pytest.raises(ModelError, match=r"dynamo=True\) failed .*tracing \(dynamo=False\) failed too"):
        ranum.check(_UnconvertibleByBoth(), torch.rand(2, 3))


def test_a_failed_export_prints_nothing_on_stdout(tmp_path: Path) -> None:
    """The tracing exporter's C++ code printed the graph it failed on to stdout, into a report piped there."""
    factory = tmp_path / "lgamma.py"
    factory.write_text("import torch\n\nclass M(torch.nn.Module):\n    def forward(self, x):\n"
                       "        return torch.lgamma(x)\n\ndef make_model():\n    return M()\n")
    result = subprocess.run([sys.executable, "-m", "ranum", "check", f"{factory}:make_model", "--input", "x=1x8:0,5",
                             "--format", "json"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 2 and "failed too" in result.stderr
    assert result.stdout == ""


def test_inputs_the_forward_method_cannot_take_are_named_before_exporting() -> None:
    """Too few inputs: both exporters failed with their own boilerplate (and torch's colour codes), the reason
    last; the message now names forward's signature and what is missing."""
    class TwoInputs(torch.nn.Module):
        def forward(self, x: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
            return x + eps

    with pytest.raises(ModelError, match=r"TwoInputs.forward\(x: .*eps.*cannot take the 1 positional input\(s\) "
                                         r"given: missing a required argument: 'eps'"):
        ranum.check(TwoInputs(), torch.rand(2, 3))


def test_an_export_error_gives_the_innermost_cause_without_colour_codes() -> None:
    from ranum.frontend._torch import _first_line

    try:
        try:
            raise ValueError("Cannot find a compatible OpOverload for aten.clamp\nTried overloads: ...")
        except ValueError as cause:
            raise RuntimeError("Failed to decompose. \x1b[96mThis is step 2/3\x1b[0m of exporting") from cause
    except RuntimeError as exc:
        assert _first_line(exc) == "Cannot find a compatible OpOverload for aten.clamp"
    assert _first_line(RuntimeError("\x1b[96mstep\x1b[0m two")) == "step two"


def test_a_python_file_without_its_factory_is_a_clear_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["check", str(DEFECTS_FILE), "--input", "x=1x4:0,1"])
    assert result.exit_code == 2 and ":FACTORY" in result.output, result.output


def test_cli_prints_the_tracing_note_in_the_json_report(tmp_path: Path) -> None:
    source = tmp_path / "branchy.py"
    source.write_text("import torch\n\n\nclass M(torch.nn.Module):\n    def forward(self, x):\n"
                      "        if x.sum() > 0:\n            return torch.log(x)\n        return torch.sqrt(x)\n\n\n"
                      "def make():\n    return M()\n")
    result = CliRunner().invoke(app, ["check", f"{source}:make", "--input", "x=2x3:0,1", "--format", "json"])
    assert result.exit_code == 1, result.output
    warnings = json.loads(result.stdout)["warnings"]
    assert "exported by tracing" in warnings[0]


class _NormalisedInput(torch.nn.Module):
    """An image normalisation whose mean and std are registered buffers, before a convolution."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))
        self.conv = torch.nn.Conv2d(3, 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv((x - self.mean) / self.std)


def test_a_module_buffer_is_taken_as_it_is_in_derived_mode() -> None:
    """The dynamo export records which initializers are buffers; a division by a registered std is not a
    division by zero, however training moves the convolution's weights."""
    report = ranum.check(_NormalisedInput().eval(), torch.rand(1, 3, 8, 8), ranges={"x": (0, 1)})
    roles = {a.tensor: (a.role, a.source) for a in report.analysis.assumptions}
    assert roles["std"] == ("constant", "exact") and roles["conv.weight"] == ("weight", "derived")
    assert report.findings == ()


class _NormalisedBranching(_NormalisedInput):
    """The same, with a Python branch on a value: the dynamo exporter fails and the module is traced."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.sum() > 0:
            return self.conv((x - self.mean) / self.std)
        return self.conv(x)


def test_a_traced_export_records_the_buffers_too() -> None:
    report = ranum.check(_NormalisedBranching().eval(), torch.rand(1, 3, 8, 8), ranges={"x": (0, 1)})
    assert any("tracing" in note for note in report.warnings)
    roles = {a.tensor: (a.role, a.source) for a in report.analysis.assumptions}
    assert roles["std"] == ("constant", "exact") and roles["conv.weight"] == ("weight", "derived")
    assert report.findings == ()


class _BufferNamedMean(torch.nn.Module):
    """A running mean registered as the buffer "mean" beside x.mean(): the dynamo export names both values
    "mean", a model that the ONNX checker and onnxruntime refuse."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(3))
        self.register_buffer("var", torch.ones(3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x.mean(0) - self.mean) / torch.sqrt(self.var)


def test_a_dynamo_export_that_fails_the_checker_falls_back_to_tracing() -> None:
    report = ranum.check(_BufferNamedMean(), torch.rand(4, 3), ranges={"x": (-1, 1)})
    assert any("fails the ONNX checker" in note and "tracing" in note for note in report.warnings)
    assert "Div" in {f.op_type for f in report.findings}  # the running variance is a weight: [0, 2]
