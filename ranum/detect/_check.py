"""``check``: analysis + detection, packaged as a :class:`Report`."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field

from ranum.analysis import Analysis, SpecSource, analyze
from ranum.config import AnalysisConfig
from ranum.detect._findings import Finding, _json_number, find_hazards
from ranum.graph.loader import ModelSource

__all__ = ["Report", "check", "report_from"]


@dataclass(frozen=True)
class Report:
    """Findings of one ``check`` and what they rest on."""

    model: str
    findings: tuple[Finding, ...]
    unsupported_ops: tuple[str, ...]
    unsupported_nodes: Mapping[str, str]
    nodes: int
    seconds: float
    analysis: Analysis = field(repr=False, compare=False)

    @property
    def warnings(self) -> list[str]:
        """Assumptions the user should know about (defaults taken, dims substituted, unnamed nodes)."""
        notes = []
        for a in self.analysis.assumptions:
            if a.source == "default":
                notes.append(f"input '{a.tensor}' has no range; assumed [{a.low:g}, {a.high:g}]")
        for name, value in self.analysis.dims.items():
            notes.append(f"symbolic dimension '{name}' set to {value}")
        unnamed = sum(1 for n in self.analysis.graph.all_nodes() if not n.named_in_model)
        if unnamed:
            notes.append(f"{unnamed} unnamed node(s) were named <OpType>_<position in the graph>")
        for node, reason in self.unsupported_nodes.items():
            notes.append(f"node '{node}': {reason}; its outputs were given the widest interval")
        return notes

    def to_dict(self) -> dict:
        """The JSON document (see README for the schema)."""
        return {
            "model": self.model,
            "findings": [f.to_dict() for f in self.findings],
            "unsupported_ops": list(self.unsupported_ops),
            "stats": {"nodes": self.nodes, "seconds": round(self.seconds, 6)},
            "assumptions": [
                {"tensor": a.tensor, "role": a.role, "range": None if a.low is None else
                 [_json_number(a.low), _json_number(a.high)], "source": a.source}
                for a in self.analysis.assumptions if a.role != "constant"
            ],
            "dims": dict(self.analysis.dims),
            "warnings": self.warnings,
        }

    def to_json(self, indent: int | None = 2) -> str:
        """The report as a JSON string."""
        return json.dumps(self.to_dict(), indent=indent)


def report_from(analysis: Analysis, model_label: str) -> Report:
    """Detect hazards on a finished analysis."""
    findings = tuple(find_hazards(analysis.run))
    by_name = {n.name: n for n in analysis.run.nodes}
    unsupported_ops = sorted({by_name[n].op_type for n in analysis.run.unsupported if n in by_name})
    return Report(
        model=model_label,
        findings=findings,
        unsupported_ops=tuple(unsupported_ops),
        unsupported_nodes=dict(analysis.run.unsupported),
        nodes=len(analysis.run.nodes),
        seconds=analysis.seconds,
        analysis=analysis,
    )


def check(model: ModelSource, spec: SpecSource = None, config: AnalysisConfig | None = None) -> Report:
    """Find every operator that can receive an invalid input under ``spec``.

    Args:
        model: path to an ONNX file or an ``onnx.ModelProto``.
        spec: range spec (dict, JSON path or RangeSpec).
        config: analysis knobs.

    Returns:
        The :class:`Report`.
    """
    analysis = analyze(model, spec, config)
    label = str(model) if not hasattr(model, "graph") else (model.graph.name or "<in-memory model>")
    return report_from(analysis, label)
