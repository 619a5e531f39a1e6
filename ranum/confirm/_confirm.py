"""Drive the search for every finding, replay in onnxruntime, and write the unit tests (and, with
``system``, the system tests: training data that leads to the failure; see _system.py)."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import helper

from ranum.analysis import Analysis, SpecSource, analyze
from ranum.config import AnalysisConfig
from ranum.confirm._exact_value import reach_exact_value
from ranum.confirm._problem import Problem, make_problem
from ranum.confirm._replay import Replayer, stops_the_process
from ranum.confirm._search import Candidate, SearchConfig, search
from ranum.confirm._system import (
    NO_TRAINABLE_WEIGHTS,
    NoTrainableWeights,
    SystemConfig,
    TrainingRecipe,
    resolve_recipe,
    system_search,
)
from ranum.confirm._write import CRASH, module_basenames, slug, template_fields, write_system_test, write_unit_test
from ranum.detect import Finding, find_hazards, hazard_of
from ranum.domain.interval import Interval
from ranum.errors import RanumError, UnsupportedOperator
from ranum.graph.loader import ModelSource, initializer_value, read_model
from ranum.ops.hazards import FORWARD, GRADIENT, Hazard, Overflow, RegionHazard
from ranum.ops.random import GENERATORS

__all__ = ["ConfirmReport", "ConfirmResult", "confirm"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ConfirmResult:
    """Outcome for one finding."""

    node: str
    op_type: str
    hazard: str
    kind: str
    status: str  # "confirmed" | "not_confirmed"
    seconds: float
    dir: str | None
    strategy: str | None
    note: str = ""
    system: dict | None = None  # with --system: status, seconds, steps, strategy, note
    # In the confirming onnxruntime run: does NaN/Inf reach a model output (False: discarded downstream)?
    reaches_outputs: bool | None = None


@dataclass(frozen=True)
class ConfirmReport:
    """All outcomes of one ``confirm`` run."""

    model: str
    results: tuple[ConfirmResult, ...]

    @property
    def all_confirmed(self) -> bool:
        """Every finding's unit test confirmed, and its system test where one was asked for (``--system``)."""
        return all(r.status == "confirmed" and (r.system is None or r.system["status"] == "confirmed")
                   for r in self.results)

    def to_dict(self) -> dict:
        return {"model": self.model, "results": [asdict(r) for r in self.results]}

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)


def confirm(
    model: ModelSource,
    spec: SpecSource = None,
    output: Path | None = None,
    nodes: Sequence[str] | None = None,
    search_config: SearchConfig | None = None,
    analysis_config: AnalysisConfig | None = None,
    force: bool = False,
    progress: Callable[[str], None] | None = None,
    system: SystemConfig | None = None,
) -> ConfirmReport:
    """Generate and verify a failure-exhibiting unit test for each finding.

    Args:
        model: ONNX file path (or ModelProto: it is then saved next to the tests).
        spec: range spec.
        output: folder for the tests; it must not exist or be empty unless ``force``. None writes nothing.
        nodes: restrict to findings at these nodes (each must name a finding).
        search_config: seed and budget.
        analysis_config: analysis knobs.
        force: allow a non-empty output folder (its content is replaced).
        progress: called with a short message before each finding.
        system: also search training data that leads to each confirmed failure (system tests).

    Raises:
        RanumError: bad model, spec, node name or output folder.
    """
    config = search_config or SearchConfig()
    if output is not None:
        _check_output(Path(output), force)
    analysis = analyze(model, spec, analysis_config)
    recipe = None  # also with --system on a model without trainable weights: each system test says so
    if system is not None:
        with contextlib.suppress(NoTrainableWeights):  # unit tests still apply
            recipe = resolve_recipe(analysis.graph, system, analysis.dims)
    findings = _select(find_hazards(analysis.run), nodes, analysis)
    staging = Path(tempfile.mkdtemp(prefix=".ranum-confirm-", dir=_parent(output))) if output else None
    try:
        model_path = _model_path(model, analysis, staging)
        results = []
        for finding, name in zip(findings, _folder_names(findings)):
            if progress is not None:
                progress(f"{finding.node} ({finding.op_type}): {finding.hazard}")
            final = Path(output).resolve() / name if output is not None else None
            results.append(_confirm_one(analysis, finding, config, staging, name, model_path, final,
                                        (system, recipe) if system is not None else None))
        if output is not None and staging is not None:
            _publish(staging, Path(output), results)
    finally:
        if staging is not None and staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return ConfirmReport(str(model) if not isinstance(model, onnx.ModelProto) else analysis.graph.name,
                         tuple(results))


def _folder_names(findings: Sequence[Finding]) -> list[str]:
    """One folder name per finding: the node's slug, with the hazard where the node has several findings, and a
    counter where that is taken already (node names that differ only by characters the slug drops). The names,
    and the test modules named after them (compared without case), are all distinct."""
    counts = Counter(f.node for f in findings)
    taken: set[str] = set()
    names = []
    for finding in findings:
        base = slug(finding.node) if counts[finding.node] == 1 else f"{slug(finding.node)}-{finding.hazard_id}"
        name, count = base, 1
        while _modules_of(name) & taken:
            count += 1
            name = f"{base}-{count}"
        taken |= _modules_of(name)
        names.append(name)
    return names


def _modules_of(folder_name: str) -> set[str]:
    """What a folder name claims: itself and its test modules' basenames, in lower case."""
    return {folder_name.lower(), *(module.lower() for module in module_basenames(folder_name))}


def _confirm_one(analysis: Analysis, finding: Finding, config: SearchConfig, staging: Path | None,
                 name: str, model_path: Path | None, final: Path | None,
                 training: tuple[SystemConfig, TrainingRecipe | None] | None = None) -> ConfirmResult:
    start = time.perf_counter()
    if all(n.name != finding.node for n in analysis.graph.nodes):
        return ConfirmResult(finding.node, finding.op_type, finding.hazard, finding.kind, "not_confirmed", 0.0, None,
                             None, _IN_BODY, None if training is None else _no_system(_IN_BODY))
    rule = analysis.run.rules[finding.node]
    problem = make_problem(analysis, finding.node)
    hazard = hazard_of(rule, finding, problem.node)
    try:
        result = _searched(problem, hazard, finding, config, staging, name, model_path, final, training, start)
        overflow = _hidden_overflow(analysis, rule, hazard, finding)
        if result.status == "confirmed" or overflow is None:
            return result
        shown = _searched(problem, overflow, finding, config, staging, name, model_path, final, None, start)
        if shown.status != "confirmed":
            return result
        return replace(result, seconds=shown.seconds, dir=shown.dir, strategy=shown.strategy,
                       note=f"not reached; but the result overflows to infinity in onnxruntime on the unit test's "
                            f"inputs{': ' + shown.note if shown.note else ''}")
    except UnsupportedOperator as exc:  # an ancestor the abstract run passed over with top bounds
        note = f"ranum cannot run the model up to this node concretely: {exc}"
        return ConfirmResult(finding.node, finding.op_type, finding.hazard, finding.kind, "not_confirmed",
                             time.perf_counter() - start, None, None, note,
                             None if training is None else _no_system(note))


def _hidden_overflow(analysis: Analysis, rule, hazard: Hazard, finding: Finding) -> Hazard | None:
    """The node's overflow hazard where detection reported another forward hazard in its place (a division by
    zero whose result can also overflow: see ranum.detect) and the result's bounds reach infinity: a failure
    that confirm shows when the reported one is not reached (a divisor that is never 0 but may be tiny)."""
    if finding.kind != FORWARD or isinstance(hazard, Overflow):
        return None
    overflow = next((h for h in rule.hazards if isinstance(h, Overflow) and h.kind == FORWARD), None)
    node = next(n for n in analysis.graph.nodes if n.name == finding.node)
    out = analysis.run.env.get(node.outputs[0]) if node.outputs else None
    return overflow if isinstance(out, Interval) and out.numblocks and not out.is_finite else None


def _searched(problem: Problem, hazard: Hazard, finding: Finding, config: SearchConfig, staging: Path | None,
              name: str, model_path: Path | None, final: Path | None,
              training: tuple[SystemConfig, TrainingRecipe | None] | None, start: float) -> ConfirmResult:
    """The search for a unit test (and a system test) of one finding, each candidate judged by onnxruntime."""
    replayer = Replayer(problem.full_graph, [*problem.node.inputs, *problem.node.outputs])
    note = ""
    deadline = time.monotonic() + config.seconds
    for candidate in search(problem, hazard, config):
        verdict = _replay(problem, hazard, candidate, replayer)
        if verdict is None and candidate.verified:
            candidate, verdict = _walked_in_onnxruntime(problem, hazard, candidate, replayer, deadline)
        if verdict is not None:
            written = None
            if staging is not None and model_path is not None and final is not None:
                _write(staging / name, problem, hazard, finding, candidate, model_path, verdict.stops)
                written = str(final)
            seconds = time.perf_counter() - start
            system = None
            if training is not None:  # a recipe of None: the model has no trainable weights
                system = _no_system(NO_TRAINABLE_WEIGHTS) if training[1] is None else \
                    _system(problem, hazard, finding, candidate, training, config.seed,
                            staging / name if written else None, model_path)
            return ConfirmResult(finding.node, finding.op_type, finding.hazard, finding.kind, "confirmed",
                                 seconds, written, candidate.strategy, note=_verdict_note(verdict, finding.kind),
                                 system=system, reaches_outputs=verdict.reaches_outputs)
        if candidate.verified and not note:
            note = _mismatch_note(problem)
            log.warning("node %s: %s", finding.node, note)
    system = None if training is None else _no_system("no unit test to build on")
    if replayer.completed == 0 and replayer.refusal is not None:  # no candidate could be judged
        note = f"onnxruntime cannot run this model, so no test can be verified: {replayer.refusal}"
    return ConfirmResult(finding.node, finding.op_type, finding.hazard, finding.kind, "not_confirmed",
                         time.perf_counter() - start, None, None, note or "no failing input found within budget",
                         system)


def _no_system(note: str) -> dict:
    """The system-test summary where no system test was searched."""
    return {"status": "not_confirmed", "seconds": 0.0, "steps": 0, "strategy": None, "note": note}


_IN_BODY = ("the node runs inside a Loop, Scan or If body, whose tensors onnxruntime does not expose: "
            "confirmation searches the main graph's nodes only")


def _system(problem: Problem, hazard: Hazard, finding: Finding, candidate: Candidate,
            training: tuple[SystemConfig, TrainingRecipe | None], seed: int, folder: Path | None,
            model_path: Path | None) -> dict:
    """Search and verify a system test for a confirmed unit test; write it when ``folder`` is set."""
    config, recipe = training
    result = system_search(problem, hazard, recipe, candidate.values, config, seed)
    if result.status == "confirmed" and folder is not None and model_path is not None:
        write_system_test(folder, fields=_fields(problem, hazard, finding, candidate, model_path),
                          strategy=result.strategy or "", recipe=result.recipe.to_dict(), data=result.data,
                          trained=result.trained, test_inputs=result.test_inputs)
    return result.summary()


def _mismatch_note(problem: Problem) -> str:
    """Why a candidate that fires in ranum's concrete semantics may not fire in onnxruntime."""
    drawn = sorted({n.op_type for n in problem.graph.nodes if n.op_type in GENERATORS})
    if drawn:
        return (f"fires in ranum's concrete semantics but not in onnxruntime: the model draws random values "
                f"({', '.join(drawn)}), and onnxruntime's draws are not ranum's")
    return ("fires in ranum's concrete semantics (the model's own dtypes) but not in onnxruntime: its kernels may "
            "compute in a wider type (e.g. float16 operators in float32) or round sums in another order; if "
            "neither, report a ranum bug")


@dataclass(frozen=True)
class _Replayed:
    """A candidate that fired in onnxruntime, and whether NaN/Inf showed in a model output (or the run
    stopped at the node with ``stops``, onnxruntime's error: an integer division by zero)."""

    reaches_outputs: bool
    stops: str | None = None


def _verdict_note(verdict: _Replayed, kind: str) -> str:
    if verdict.stops is not None:
        return f"onnxruntime stops the run with an error at this node: {verdict.stops}"
    if verdict.reaches_outputs or kind == GRADIENT:  # a gradient hazard leaves the forward run finite
        return ""
    return ("in this run no model output is NaN/Inf: a later operator discards or absorbs the invalid value (a Where, "
            "a Min or Max, a reciprocal of infinity)")


_STOPS = "Integer division by zero"  # onnxruntime's error for an integer Div or Mod by 0
_STOPS_THE_PROCESS = frozenset({"integer-division-overflow"})  # hazards whose failure kills onnxruntime's process


def _stops_at(problem: Problem, hazard: Hazard, error: Exception) -> str | None:
    """onnxruntime's error where it is the hazard itself: an integer division by zero at this node (named
    in the error as in the model; a node the model leaves unnamed shows as '')."""
    text, node = str(error), problem.node
    named = f"Name:'{node.name}'" in text or (not node.named_in_model and "Name:''" in text)
    if hazard.name == "division-by-zero" and f"running {node.op_type} node" in text and named and _STOPS in text:
        return _STOPS
    return None


def _replay(problem: Problem, hazard: Hazard, candidate: Candidate, replayer: Replayer) -> _Replayed | None:
    """The run's verdict when the hazard fires in onnxruntime (for forward hazards: NaN/Inf appears)."""
    graph = problem.full_graph
    node = problem.node
    feeds, weights = _split(problem, candidate)
    if hazard.name in _STOPS_THE_PROCESS:  # never in this process: onnxruntime would kill it
        changed = _changed(problem, candidate.values, weights)
        return _Replayed(True, CRASH) if stops_the_process(graph, feeds, changed) else None
    try:
        values = replayer.run(feeds, _changed(problem, candidate.values, weights))
    except Exception as exc:  # noqa: BLE001 - a runtime rejecting the inputs is "not confirmed"
        stops = _stops_at(problem, hazard, exc)
        if stops is not None:
            return _Replayed(True, stops)
        log.info("onnxruntime rejected a candidate for %s: %s", node.name, exc)
        return None
    if not _fires(problem, hazard, values, weights):
        return None
    outputs = [np.asarray(values[o.name]) for o in graph.outputs if o.name in values]
    return _Replayed(any(v.dtype.kind == "f" and not np.isfinite(v).all() for v in outputs))


def _walked_in_onnxruntime(problem: Problem, hazard: Hazard, candidate: Candidate, replayer: Replayer,
                           deadline: float) -> tuple[Candidate, _Replayed | None]:
    """A one-value hazard (a divisor of exactly 0) that fires in ranum's semantics but not in onnxruntime,
    whose kernels round a sum in another order: the bisection onto the value again from the candidate,
    judged by onnxruntime's values of the node's operands. The candidate as it was when that fails."""

    def judge(values: dict[str, np.ndarray]):
        feeds, weights = _split(problem, Candidate(values, candidate.strategy))
        try:
            ran = replayer.run(feeds, _changed(problem, values, weights))
        except Exception as exc:  # noqa: BLE001 - onnxruntime's own error classes: this point is not usable
            raise RuntimeError(str(exc)) from exc
        return _node_tensors(problem, ran, weights)

    found = reach_exact_value(problem, hazard, candidate.values, deadline, judge)
    if found is None:
        return candidate, None
    moved = Candidate(found, f"{candidate.strategy}, in onnxruntime's arithmetic")
    verdict = _replay(problem, hazard, moved, replayer)
    return (moved, verdict) if verdict is not None else (candidate, None)


def _changed(problem: Problem, values: dict[str, np.ndarray], weights: dict[str, np.ndarray]) -> dict:
    """The weights a candidate changed (the candidates that keep them hold the very arrays)."""
    initial = {b.name: b.initial for b in problem.boxes}
    return {name: value for name, value in weights.items() if values[name] is not initial[name]}


def _node_tensors(problem: Problem, values: dict[str, np.ndarray], weights: dict[str, np.ndarray]):
    """The target node's operands and results from onnxruntime's values (constants from the model)."""
    graph = problem.full_graph
    node = problem.node
    constants = {**{n: _tensor(v) for n, v in weights.items()}}
    for name in graph.initializers:
        if name not in constants:
            constants[name] = torch.from_numpy(np.array(initializer_value(graph, name)))
    node_in = [_tensor(values[n]) if n in values else constants.get(n) for n in node.inputs]
    node_out = [_tensor(values[n]) if n in values else None for n in node.outputs]
    return node_in, node_out


def _fires(problem: Problem, hazard: Hazard, values: dict[str, np.ndarray], weights: dict[str, np.ndarray]) -> bool:
    node_in, node_out = _node_tensors(problem, values, weights)
    if not bool(hazard.triggered(node_in, node_out).any()):
        return False
    if hazard.kind == FORWARD:
        return any(o is not None and o.is_floating_point() and not bool(torch.isfinite(o).all()) for o in node_out)
    return True


def _split(problem: Problem, candidate: Candidate) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    feeds, weights = {}, {}
    for box in problem.boxes:
        value = np.asarray(candidate.values[box.name])
        value = value.astype(helper.tensor_dtype_to_np_dtype(box.elem_type)).reshape(box.shape)  # bfloat16 too
        (weights if box.initial is not None else feeds)[box.name] = value
    return feeds, weights


def _tensor(value: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(value))


def _write(folder: Path, problem: Problem, hazard: Hazard, finding: Finding, candidate: Candidate,
           model_path: Path, stops: str | None = None) -> Path:
    feeds, weights = _split(problem, candidate)
    write_unit_test(folder, inputs=feeds, weights=weights, stops=stops,
                    **_field_args(problem, hazard, finding, candidate, model_path))
    return folder


def _fields(problem: Problem, hazard: Hazard, finding: Finding, candidate: Candidate, model_path: Path) -> dict:
    return template_fields(**_field_args(problem, hazard, finding, candidate, model_path))


def _field_args(problem: Problem, hazard: Hazard, finding: Finding, candidate: Candidate,
                model_path: Path) -> dict:
    node = problem.node
    types = {}
    for name in [*node.inputs, *node.outputs]:
        info = problem.full_graph.info(name) if name else None
        if info is not None:
            types[name] = info.elem_type
    region = None
    if isinstance(hazard, RegionHazard):
        iv_type = types.get(finding.operand, onnx.TensorProto.FLOAT)
        r = hazard.region(iv_type)
        region = (r.low, r.high, r.low_closed, r.high_closed)
    return dict(model_path=model_path, node=finding.node, op_type=finding.op_type, hazard=finding.hazard,
                hazard_id=finding.hazard_id, kind=finding.kind, operand=finding.operand, invalid=finding.invalid,
                strategy=candidate.strategy, outputs=[o for o in node.outputs if o], types=types, region=region)


def _select(findings: list[Finding], nodes: Sequence[str] | None, analysis: Analysis) -> list[Finding]:
    if not nodes:
        return findings
    known = {n.name for n in analysis.run.nodes}
    for name in nodes:
        if name not in known:
            raise RanumError(f"--node '{name}': the model has no node of that name")
        if not any(f.node == name for f in findings):
            raise RanumError(f"--node '{name}': the node has no finding to confirm")
    return [f for f in findings if f.node in set(nodes)]


def _check_output(output: Path, force: bool) -> None:
    if output.exists() and not output.is_dir():
        raise RanumError(f"output {output} exists and is not a folder")
    if output.is_dir() and any(output.iterdir()) and not force:
        raise RanumError(f"output folder {output} is not empty (use --force to replace its content)")
    parent = _parent(output)
    if not parent.is_dir():
        raise RanumError(f"output folder's parent does not exist: {parent}")
    try:
        probe = tempfile.mkdtemp(prefix=".ranum-probe-", dir=parent)
        Path(probe).rmdir()
    except OSError as exc:
        raise RanumError(f"cannot write into {parent}: {exc.strerror or exc}") from None


def _parent(output: Path | None) -> Path:
    if output is None:
        return Path(tempfile.gettempdir())
    return Path(output).resolve().parent


def _model_path(model: ModelSource, analysis: Analysis, staging: Path | None) -> Path | None:
    """The model the tests run: the given file, or a copy beside the tests of a ModelProto, or of the model
    with its local functions inlined (the tests expose tensors of a function's body by their inlined names)."""
    if isinstance(model, onnx.ModelProto) or analysis.graph.inlined_functions:
        if staging is None:
            return None
        onnx.save(read_model(model) if analysis.graph.inlined_functions else model, str(staging / "model.onnx"))
        return staging / "model.onnx"
    return Path(model).resolve()


def _publish(staging: Path, output: Path, results: list[ConfirmResult]) -> None:
    """Move the finished tests into place in one step (a failure leaves the old folder intact)."""
    (staging / "summary.json").write_text(json.dumps({"results": [asdict(r) for r in results]}, indent=2))
    output = output.resolve()
    model_copy = staging / "model.onnx"
    if model_copy.exists():  # the tests find the copy beside their folders: the output folder may be moved
        for path in staging.rglob("test_*.py"):
            text = path.read_text().replace(f"Path({str(model_copy)!r})", 'HERE.parent / "model.onnx"')
            path.write_text(text.replace(str(model_copy), str(output / "model.onnx")))
    if output.exists():
        shutil.rmtree(output)
    staging.chmod(_plain_folder_mode())  # mkdtemp's 0o700, where a plain mkdir gives 0o777 less the umask
    staging.rename(output)


def _plain_folder_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o777 & ~umask
