"""``fix``: choose preconditions for a mode, patch the model, re-run detection to certify."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass

import onnx

from ranum.analysis import Analysis, SpecSource, analyze
from ranum.detect import Finding, find_hazards
from ranum.detect._findings import _json_number
from ranum.errors import RanumError
from ranum.fix._optimize import FixConfig, optimise_clips
from ranum.graph.loader import ModelSource, read_model
from ranum.graph.patch import ClipSpec, insert_clips
from ranum.ops.hazards import Clamp

__all__ = ["FixReport", "Precondition", "fix", "MODES"]

MODES = ("inputs", "weights", "all", "operator")


@dataclass(frozen=True)
class Precondition:
    """Clip ``tensor`` to [min, max] (None: open side), for one node or for every consumer."""

    tensor: str
    min: float | None
    max: float | None
    node: str | None  # the vulnerable operator whose operand is clipped (operator mode)
    op_type: str | None
    kept_fraction: float | None  # share of the original range that the clip keeps
    keeps_initial_values: bool | None

    def describe(self) -> str:
        low = "-inf" if self.min is None else f"{self.min:.6g}"
        high = "+inf" if self.max is None else f"{self.max:.6g}"
        left, right = ("(" if self.min is None else "["), (")" if self.max is None else "]")
        where = f"the input `{self.tensor}` of {self.op_type} `{self.node}`" if self.node else f"`{self.tensor}`"
        return f"clip {where} to {left}{low}, {high}{right}"


@dataclass(frozen=True)
class FixReport:
    """Outcome of ``fix``: preconditions, the patched model, and what detection says of it."""

    model: str
    mode: str
    preconditions: tuple[Precondition, ...]
    certified: bool
    remaining: tuple[Finding, ...]
    original_findings: int
    optimiser: str | None
    patched: onnx.ModelProto

    def to_dict(self) -> dict:
        return {
            "model": self.model,
            "mode": self.mode,
            "preconditions": [{k: _json_number(v) if isinstance(v, float) else v for k, v in asdict(p).items()}
                              for p in self.preconditions],
            "certified": self.certified,
            "remaining": [f.to_dict() for f in self.remaining],
            "original_findings": self.original_findings,
            "optimiser": self.optimiser,
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)


def fix(model: ModelSource, spec: SpecSource = None, mode: str = "all", config: FixConfig | None = None) -> FixReport:
    """Suggest clip preconditions that remove the findings of ``model`` and certify them.

    Args:
        model: ONNX path or ModelProto.
        spec: range spec.
        mode: ``inputs``, ``weights``, ``all`` or ``operator``.
        config: search budget.

    Returns:
        The report, holding the patched model (``report.patched``).
    """
    if mode not in MODES:
        raise RanumError(f"--on must be one of {', '.join(MODES)}, got '{mode}'")
    config = config or FixConfig()
    analysis = analyze(model, spec)
    findings = find_hazards(analysis.run)
    optimiser = None
    if not findings:
        preconditions: list[Precondition] = []
    elif mode == "operator":
        preconditions = _operator_preconditions(analysis, findings)
    else:
        preconditions, optimiser = _range_preconditions(analysis, mode, config)
    patched = insert_clips(read_model(model), [_clip_spec(p) for p in preconditions], _elem_types(analysis))
    try:
        onnx.checker.check_model(patched)
    except onnx.checker.ValidationError as exc:  # a bug in patching, never the user's fault
        raise RanumError(f"internal error: the patched model fails the ONNX checker: {exc}") from None
    after = analyze(patched, analysis.spec)
    remaining = tuple(find_hazards(after.run))
    label = str(model) if not isinstance(model, onnx.ModelProto) else analysis.graph.name
    return FixReport(label, mode, tuple(preconditions), not remaining, remaining, len(findings), optimiser, patched)


def _operator_preconditions(analysis: Analysis, findings: list[Finding]) -> list[Precondition]:
    """Per vulnerable operand, the meet of the repairs its hazards declare."""
    clamps: dict[tuple[str, str], Clamp] = {}
    op_types = {f.node: f.op_type for f in findings}
    for finding in findings:
        rule = analysis.run.rules[finding.node]
        hazard = next(h for h in rule.hazards if h.name == finding.hazard_id)
        operand = analysis.run.env.get(finding.operand)
        inputs = [analysis.run.env.get(n) if n else None for n in _node(analysis, finding.node).inputs]
        repair = hazard.repair(operand, inputs) if operand is not None else None
        if repair is None:
            continue
        key = (finding.node, finding.operand)
        clamps[key] = clamps[key].meet(repair) if key in clamps else repair
    out = []
    for (node, tensor), clamp in clamps.items():
        iv = analysis.run.env[tensor]
        out.append(Precondition(tensor, clamp.min, clamp.max, node, op_types[node], _kept(iv.min(), iv.max(), clamp),
                                None))
    return out


def _node(analysis: Analysis, name: str):
    return next(n for n in analysis.run.nodes if n.name == name)


def _range_preconditions(analysis: Analysis, mode: str, config: FixConfig) -> tuple[list[Precondition], str | None]:
    roles = {"inputs": {"input"}, "weights": {"weight"}, "all": {"input", "weight"}}[mode]
    tensors = [a.tensor for a in analysis.assumptions
               if a.low is not None and (a.role in roles or mode == "all" and a.role == "constant")]
    result = optimise_clips(analysis, tensors, config)
    if result is None:
        return [], None
    by_name = {a.tensor: a for a in analysis.assumptions}
    out = []
    for tensor, (low, high) in result.clips.items():
        a = by_name[tensor]
        clamp = Clamp(None if low <= a.low else low, None if high >= a.high else high)
        if clamp.min is None and clamp.max is None:
            continue
        keeps = None
        if tensor in analysis.graph.initializers:
            value = onnx.numpy_helper.to_array(analysis.graph.initializers[tensor])
            keeps = bool(value.min() >= low and value.max() <= high) if value.size else True
        out.append(Precondition(tensor, clamp.min, clamp.max, None, None, _kept(a.low, a.high, clamp), keeps))
    return out, result.optimiser


def _kept(low: float, high: float, clamp: Clamp) -> float | None:
    width = high - low
    if not math.isfinite(width) or width <= 0:
        return None
    new_low = low if clamp.min is None else max(low, clamp.min)
    new_high = high if clamp.max is None else min(high, clamp.max)
    return max(0.0, new_high - new_low) / width


def _clip_spec(p: Precondition) -> ClipSpec:
    return ClipSpec(p.tensor, p.min, p.max, frozenset({p.node}) if p.node else None)


def _elem_types(analysis: Analysis) -> dict[str, int]:
    return {name: info.elem_type for name, info in analysis.graph.tensors.items()}
