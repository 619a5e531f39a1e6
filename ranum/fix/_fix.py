"""``fix``: choose preconditions for a mode, patch the model, re-run detection to certify."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass

import onnx

from ranum.analysis import Analysis, SpecSource, analyze
from ranum.detect import Finding, Report, find_hazards
from ranum.detect._check import report_from
from ranum.detect._findings import _json_number
from ranum.errors import RanumError
from ranum.fix._operator import NodeClip, patch, repair_rounds
from ranum.fix._optimize import FixConfig, optimise_clips
from ranum.graph.loader import ModelSource, initializer_value, read_model
from ranum.graph.patch import ClipSpec
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
    # the re-analysis of the patched model, which the certificate rests on: its warnings (ranges and
    # dimensions assumed) and the nodes it did not analyse (which bar a certificate)
    checked: Report | None = None

    @property
    def warnings(self) -> list[str]:
        """What the certificate assumes (default ranges, symbolic dimensions) and the nodes left unanalysed."""
        return [] if self.checked is None else self.checked.warnings

    @property
    def not_analysed(self) -> list[dict]:
        """Each node of the patched model whose rule did not run, as ``{"node", "op_type", "reason"}``."""
        return [] if self.checked is None else self.checked.to_dict()["not_analysed"]

    @property
    def unsupported_ops(self) -> tuple[str, ...]:
        """The operator types of the patched model that have no rule (as ``check`` lists them)."""
        return () if self.checked is None else self.checked.unsupported_ops

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
            "unsupported_ops": list(self.unsupported_ops),
            "not_analysed": self.not_analysed,
            "dims": {} if self.checked is None else dict(self.checked.analysis.dims),
            "warnings": self.warnings,
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)


def fix(model: ModelSource, spec: SpecSource = None, mode: str = "all", config: FixConfig | None = None) -> FixReport:
    """Suggest clip preconditions that remove the findings of ``model`` and certify them.

    ``all`` clips inputs and weights first; findings that no such clip removes (e.g. a defect
    caused by a constant) fall back to clips of the vulnerable operators' operands, which the
    preconditions name (``Precondition.node``).

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
    original = read_model(model)
    optimiser = None
    preconditions: list[Precondition] = []
    if findings and mode != "operator":
        preconditions, optimiser, certified = _range_preconditions(analysis, mode, config)
        if mode == "all" and not certified:  # no input/weight clip certifies: the operator fallback alone
            preconditions, optimiser = [], None
    if findings and mode in ("operator", "all"):
        base = [_clip_spec(p) for p in preconditions]
        clips = repair_rounds(original, analysis.spec, base, _elem_types(analysis), config.operator_rounds,
                              seconds=config.seconds)
        # a clip that binds on neither side of the tensor's range does nothing: neither reported nor inserted
        at_nodes = [_node_precondition(analysis, c) for c in clips]
        preconditions = [p for p in at_nodes if p.min is not None or p.max is not None] + preconditions
    patched, _ = patch(original, [_clip_spec(p) for p in preconditions if p.node is None],
                       [NodeClip(p.node, p.op_type or "", p.tensor, Clamp(p.min, p.max))
                        for p in preconditions if p.node is not None], _elem_types(analysis))
    try:
        onnx.checker.check_model(patched)
    except onnx.checker.ValidationError as exc:  # a bug in patching, never the user's fault (the CLI exits 4)
        raise RuntimeError(f"the patched model fails the ONNX checker: {exc}") from None
    label = str(model) if not isinstance(model, onnx.ModelProto) else analysis.graph.name
    checked = report_from(analyze(patched, analysis.spec), label)
    certified = not checked.findings and not checked.not_analysed_nodes  # no certificate over unanalysed nodes
    return FixReport(label, mode, tuple(preconditions), certified, checked.findings, len(findings), optimiser,
                     patched, checked)


def _node_precondition(analysis: Analysis, clip: NodeClip) -> Precondition:
    """A node-level clip with the sides that bind on the tensor's original range."""
    iv = analysis.run.env[clip.tensor]
    low, high = iv.min(), iv.max()
    clamp = Clamp(None if clip.clamp.min is None or clip.clamp.min <= low else clip.clamp.min,
                  None if clip.clamp.max is None or clip.clamp.max >= high else clip.clamp.max)
    return Precondition(clip.tensor, clamp.min, clamp.max, clip.node, clip.op_type, _kept(low, high, clamp), None)


def _range_preconditions(analysis: Analysis, mode: str, config: FixConfig) \
        -> tuple[list[Precondition], str | None, bool]:
    """Input/weight clips from the search, the optimiser that found them, and whether they certify."""
    roles = {"inputs": {"input"}, "weights": {"weight"}, "all": {"input", "weight"}}[mode]
    tensors = [a.tensor for a in analysis.assumptions
               if a.low is not None and (a.role in roles or mode == "all" and a.role == "constant")]
    result = optimise_clips(analysis, tensors, config)
    if result is None:
        return [], None, False
    by_name = {a.tensor: a for a in analysis.assumptions}
    out = []
    for tensor, (low, high) in result.clips.items():
        a = by_name[tensor]
        clamp = Clamp(None if low <= a.low else low, None if high >= a.high else high)
        if clamp.min is None and clamp.max is None:
            continue
        keeps = None
        if tensor in analysis.graph.initializers:
            value = initializer_value(analysis.graph, tensor)
            keeps = bool(value.min() >= low and value.max() <= high) if value.size else True
        out.append(Precondition(tensor, clamp.min, clamp.max, None, None, _kept(a.low, a.high, clamp), keeps))
    return out, result.optimiser, result.certified


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
