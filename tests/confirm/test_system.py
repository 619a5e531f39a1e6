"""ranum confirm --system on the training zoo: training data that, under plain SGD from the initial
weights, leads to weights where the unit test's failure shows in onnxruntime; the written system
tests re-train through ranum's interpreter and pass under pytest in a subprocess; bad recipes and
models without a usable loss are refused with exit code 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from typer.testing import CliRunner

from ranum.cli import app
from ranum.confirm import SearchConfig, SystemConfig, confirm
from tests.models import LOG_OF_DIFFERENCE, parse
from tests.zoo._training import MODELS as TRAINING
from tests.zoo.models import ZooModel

CONFIG = SearchConfig(seed=0, seconds=10.0)
RECIPE = SystemConfig(lr=1.0, steps=1, seconds=10.0)  # the zoo's recipe: one SGD step, learning rate 1


@pytest.fixture(scope="module")
def system_results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, object]]:
    root = tmp_path_factory.mktemp("zoo-system")
    results = {}
    for record in TRAINING:
        model_path = root / f"{record.id}.onnx"
        onnx.save(record.model(), str(model_path))
        out = root / record.id
        results[record.id] = (out, confirm(model_path, record.spec, out, search_config=CONFIG, system=RECIPE))
    return results


@pytest.mark.parametrize("record", TRAINING, ids=[m.id for m in TRAINING])
def test_training_defects_reached_by_training(record: ZooModel, system_results) -> None:
    _, report = system_results[record.id]
    for node in record.flagged:
        systems = [r.system for r in report.results if r.node == node and r.status == "confirmed"]
        assert any(s["status"] == "confirmed" for s in systems), f"{node}: {systems}"
    for result in report.results:
        assert set(result.system) >= {"status", "seconds", "steps"} and isinstance(result.system["steps"], int)
        if result.system["status"] != "confirmed":
            continue
        folder = Path(result.dir)
        for name in ("train.npz", "recipe.json", "trained_weights.npz", "system_inputs.npz"):
            assert (folder / name).is_file(), name
        assert list(folder.glob("test_system_*.py"))
        recipe = json.loads((folder / "recipe.json").read_text())
        assert recipe["optimizer"] == "SGD" and recipe["lr"] == 1.0 and recipe["steps"] == result.system["steps"]
        _assert_data_in_ranges(record, folder, recipe)


def _assert_data_in_ranges(record: ZooModel, folder: Path, recipe: dict) -> None:
    data = np.load(folder / "train.npz")
    assert set(data.files) == set(recipe["inputs"])
    for name in data.files:
        low, high = record.spec["inputs"][name]
        values = data[name].astype(np.float64)
        assert values.shape[:2] == (recipe["steps"], recipe["batch"])
        assert np.all((values >= low) & (values <= high)), name


def test_written_system_tests_pass_under_pytest(system_results) -> None:
    folders = [str(out) for out, report in system_results.values() if any(r.dir for r in report.results)]
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--import-mode=importlib", *folders],
        capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    units = sum(1 for _, report in system_results.values() for r in report.results if r.dir)
    systems = sum(1 for _, report in system_results.values() for r in report.results
                  if r.system and r.system["status"] == "confirmed")
    assert systems >= len([n for m in TRAINING for n in m.flagged])
    assert f"{units + systems} passed" in done.stdout


def test_deterministic_with_seed(tmp_path: Path) -> None:
    record = TRAINING[0]
    first = confirm(record.model(), record.spec, tmp_path / "a", search_config=CONFIG, system=RECIPE)
    second = confirm(record.model(), record.spec, tmp_path / "b", search_config=CONFIG, system=RECIPE)
    assert [r.system["strategy"] for r in first.results] == [r.system["strategy"] for r in second.results]
    a, b = (np.load(Path(r.results[0].dir) / "train.npz") for r in (first, second))
    assert all(np.array_equal(a[k], b[k]) for k in a.files)


def _cli(*args) -> object:
    return CliRunner(env={"COLUMNS": "200"}).invoke(app, [str(a) for a in args])


def test_cli_system_json(tmp_path: Path) -> None:
    record = next(m for m in TRAINING if m.id == "train_softmax_regression")
    path = tmp_path / "m.onnx"
    onnx.save(record.model(), str(path))
    result = _cli("confirm", path, "-r", "x=-50,50", "-r", "y=0,1", "--system", "--lr", "0.1", "--steps", "1",
                  "-o", tmp_path / "out", "--format", "json")
    assert result.exit_code == 0, result.output
    (entry,) = json.loads(result.stdout)["results"]
    assert entry["system"]["status"] == "confirmed" and entry["system"]["steps"] == 1
    assert isinstance(entry["system"]["seconds"], float)


@pytest.mark.parametrize(
    ("model", "extra", "fragment"),
    [
        ("plain", [], "no scalar output"),
        ("train", ["--loss", "lp"], "not a float scalar"),
        ("train", ["--lr", "0"], "--lr"),
        ("train", ["--lr", "-1"], "--lr"),
        ("train", ["--steps", "0"], "--steps"),
        ("train", ["--train", "nope"], "--train"),
    ],
)
def test_cli_bad_recipe(tmp_path: Path, model: str, extra: list[str], fragment: str) -> None:
    path = tmp_path / "m.onnx"
    proto = parse(LOG_OF_DIFFERENCE) if model == "plain" else TRAINING[0].model()
    onnx.save(proto, str(path))
    ranges = ["-r", "x=0,1", "-r", "y=0,1"]
    result = _cli("confirm", path, *ranges, "--system", "-o", tmp_path / "out", *extra)
    assert result.exit_code == 2 and fragment in result.stderr, result.output
    assert not (tmp_path / "out").exists()


def _system_report(text: str, spec: dict, recipe: SystemConfig = RECIPE):
    model = onnx.parser.parse_model('<ir_version: 8, opset_import: ["" : 17]>\n' + text)
    return confirm(model, spec, search_config=CONFIG, system=recipe)


def test_a_loss_without_a_gradient_path_leaves_the_weights_and_confirms() -> None:
    """A precision counter: the loss goes through thresholds and Casts, so it does not depend differentiably
    on W; training crashed (torch.autograd.grad of a tensor without a graph). SGD leaves W as it is, and the
    division by the count of positive predictions fails as the unit test does."""
    report = _system_report(
        "g (float[2,3] x) => (float y) <float[3,1] w = {1, -1, 1}, float zero = {0.0}, float one = {1.0}> {\n"
        "  s = MatMul(x, w)\n  p = Greater(s, zero)\n  f = Cast<to = 1>(p)\n  n = ReduceSum<keepdims = 0>(f)\n"
        "  q = Greater(s, one)\n  g = Cast<to = 1>(q)\n  m = ReduceSum<keepdims = 0>(g)\n  y = Div(m, n) }",
        {"inputs": {"x": [-1, 1]}, "weights": {"default": "exact"}})
    (result,) = [r for r in report.results if r.op_type == "Div"]
    assert result.status == "confirmed" and result.system["status"] == "confirmed", result


def test_a_model_without_trainable_weights_keeps_its_unit_tests(tmp_path: Path) -> None:
    """--system on a model whose only weights are scalars: the unit tests are still searched and written;
    each system test is not confirmed with the reason, and the exit code says not everything was confirmed
    (the whole run stopped with exit code 2 before, writing nothing)."""
    path = tmp_path / "m.onnx"
    onnx.save(onnx.parser.parse_model('<ir_version: 8, opset_import: ["" : 17]>\n'
                                      "g (float[2] x) => (float y) <float b = {0.5}> {\n"
                                      "  s = Sub(x, b)\n  l = Log(s)\n  y = ReduceSum<keepdims = 0>(l) }"), str(path))
    result = _cli("confirm", path, "-r", "x=0,1", "--system", "-o", tmp_path / "out", "--format", "json")
    assert result.exit_code == 1, result.output
    (entry,) = json.loads(result.stdout)["results"]
    assert entry["status"] == "confirmed" and entry["system"]["status"] == "not_confirmed"
    assert "no trainable weights" in entry["system"]["note"]
    assert (tmp_path / "out").is_dir()


def test_a_failure_that_only_onnxruntime_shows_is_reached_by_training() -> None:
    """log(sigmoid(z)) with z about -20: onnxruntime's Sigmoid gives exactly 0 below about -18, float32's
    logistic function about 2e-9, so every trained candidate was filtered out before onnxruntime saw it.
    The unit test's inputs after training were then judged by onnxruntime itself; ranum's concrete Sigmoid
    is now onnxruntime's, and the training data at the range's end fires in its own semantics."""
    report = _system_report(
        "g (float[1,4] x) => (float y) <float[4,1] w = {0.25, 0.25, 0.25, 0.25}> {\n"
        "  z = MatMul(x, w)\n  p = Sigmoid(z)\n  l = Log(p)\n  y = ReduceSum<keepdims = 0>(l) }",
        {"inputs": {"x": [-21, 21]}, "weights": {"default": "exact"}}, SystemConfig(lr=1e-4, steps=1, seconds=10.0))
    (result,) = [r for r in report.results if r.op_type == "Log"]
    assert result.status == "confirmed" and result.system["status"] == "confirmed", result


def test_training_data_of_an_ordinary_magnitude_for_an_unbounded_range() -> None:
    """A count in [0, null) whose log and square both feed the loss through W: data at 0 makes W's gradient
    -inf, data at (or near) the range's other end, float32's largest value, makes it +inf; data in [0, 1]
    trains finitely, after which a count of 0 fails the log."""
    report = _system_report(
        "g (float[1,4] c) => (float y) <float[4,1] w = {0.5, 0.5, 0.5, 0.5}> {\n"
        "  l = Log(c)\n  q = Mul(c, c)\n  a = MatMul(l, w)\n  b = MatMul(q, w)\n"
        "  s = Add(a, b)\n  y = ReduceSum<keepdims = 0>(s) }",
        {"inputs": {"c": [0, None]}, "weights": {"default": "exact"}}, SystemConfig(lr=0.01, steps=1, seconds=10.0))
    logs = [r for r in report.results if r.op_type == "Log"]
    assert logs and all(r.status == "confirmed" and r.system["status"] == "confirmed" for r in logs), logs
