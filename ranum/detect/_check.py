"""``check``: analysis + detection, packaged as a :class:`Report`."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import onnx

from ranum.analysis import Analysis, SpecSource, analyze, as_spec
from ranum.config import AnalysisConfig
from ranum.detect._findings import Finding, _json_number, find_hazards
from ranum.domain.ranges import FEEDABLE_REASON, UNTRAINED_REASON
from ranum.frontend._source import source_locations
from ranum.graph.loader import ModelSource
from ranum.graph.model import Node

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
    # seconds per phase: the analysis' "load", "ranges", "interpret", then "detect"
    phase_seconds: Mapping[str, float] = field(default_factory=dict, compare=False)
    # every node left unanalysed (unsupported ones included) -> the reason
    not_analysed_nodes: Mapping[str, str] = field(default_factory=dict)
    # how a PyTorch module was exported, where the user should know (a traced export's limits)
    export_notes: tuple[str, ...] = ()

    @property
    def warnings(self) -> list[str]:
        """Assumptions the user should know about (how a module was exported, defaults taken, dims
        substituted, unnamed nodes)."""
        notes = list(self.export_notes)
        for given, name in self.analysis.spec.renamed.items():
            notes.append(f"the range given for '{given}' applies to the tensor '{name}'")
        untrained = [a.tensor for a in self.analysis.assumptions if a.reason == UNTRAINED_REASON]
        if untrained and self.analysis.spec.weights_default != "exact":
            shown = ", ".join(f"'{name}'" for name in untrained[:6]) + (", ..." if len(untrained) > 6 else "")
            notes.append(f"{len(untrained)} initializer(s) taken as they are, not as weights: the exporter recorded "
                         f"them as buffers or tensor constants of the PyTorch module, which training does not change "
                         f"({shown}); give one a range under 'weights' to treat it as a weight")
        fed = [a.tensor for a in self.analysis.assumptions if a.reason == FEEDABLE_REASON]
        if fed:
            notes.append(f"{len(fed)} initializer(s) also listed as graph inputs, which onnxruntime lets a feed "
                         f"replace: {', '.join(repr(name) for name in fed[:6])}{', ...' if len(fed) > 6 else ''}; "
                         "the analysis takes their values (or ranges): give one a range under 'weights' to cover "
                         "the values a feed may bring")
        for a in self.analysis.assumptions:
            if a.source == "default":
                why = f", {a.reason}" if a.reason else ""
                if a.tensor.startswith("onnx::"):
                    why += (" (a name the TorchScript exporter makes up: a Python number or flag passed to forward "
                            "became an input; give it a range, or make it a constant of the module)")
                notes.append(f"input '{a.tensor}' has no range; assumed [{a.low:g}, {a.high:g}]{why}")
        for name, value in self.analysis.dims.items():
            if name in self.analysis.spec.dims:
                notes.append(f"symbolic dimension '{name}' set to {value}")
            else:
                notes.append(f"symbolic dimension '{name}' set to {value} (no value given: pass --dim {name}=N, or "
                             f"'dims' in the spec, if the model needs another size)")
        unnamed = sum(1 for n in self.analysis.graph.all_nodes() if not n.named_in_model)
        if unnamed:
            notes.append(f"{unnamed} unnamed node(s) were named <OpType>_<position in the graph>")
        for node, reason in self.not_analysed_nodes.items():
            notes.append(f"node '{node}': {reason}; its outputs were given the widest interval")
        return notes

    def to_dict(self) -> dict:
        """The JSON document (see README for the schema)."""
        return {
            "model": self.model,
            "findings": [f.to_dict() for f in self.findings],
            "unsupported_ops": list(self.unsupported_ops),
            "not_analysed": self._not_analysed_entries(),
            "stats": {"nodes": self.nodes, "seconds": round(self.seconds, 6),
                      "phase_seconds": {k: round(v, 6) for k, v in self.phase_seconds.items()}},
            "assumptions": [
                {"tensor": a.tensor, "role": a.role, "range": None if a.low is None else
                 [_json_number(a.low), _json_number(a.high)], "source": a.source,
                 **({"reason": a.reason} if a.reason else {})}
                for a in self.analysis.assumptions if a.role != "constant"
            ],
            "dims": dict(self.analysis.dims),
            "warnings": self.warnings,
        }

    def _not_analysed_entries(self) -> list[dict]:
        op_types = {n.name: n.op_type for n in self.analysis.run.nodes}
        return [{"node": name, "op_type": op_types.get(name, ""), "reason": reason}
                for name, reason in self.not_analysed_nodes.items()]

    def to_json(self, indent: int | None = 2) -> str:
        """The report as a JSON string."""
        return json.dumps(self.to_dict(), indent=indent)


def report_from(analysis: Analysis, model_label: str, export_notes: Sequence[str] = ()) -> Report:
    """Detect hazards on a finished analysis (``export_notes``: see :attr:`Report.export_notes`)."""
    start = time.perf_counter()
    found = find_hazards(analysis.run)
    locations = source_locations(analysis.graph.proto, {f.node for f in found})
    findings = tuple(replace(f, source=locations.get(f.node)) for f in found)
    detect = time.perf_counter() - start
    by_name = {n.name: n for n in analysis.run.nodes}
    unsupported_ops = sorted({_qualified(by_name[n]) for n in analysis.run.unsupported if n in by_name})
    return Report(
        model=model_label,
        findings=findings,
        unsupported_ops=tuple(unsupported_ops),
        unsupported_nodes=dict(analysis.run.unsupported),
        not_analysed_nodes=dict(analysis.run.not_analysed),
        nodes=len(analysis.run.nodes),
        seconds=analysis.seconds + detect,
        analysis=analysis,
        phase_seconds={**analysis.phase_seconds, "detect": detect},
        export_notes=tuple(export_notes),
    )


def check(
    model: ModelSource | Any,
    spec: SpecSource | Any = None,
    config: AnalysisConfig | None = None,
    *,
    ranges: Mapping[str, Sequence[float]] | None = None,
    input_names: Sequence[str] | None = None,
    weights: str | Sequence[float] | None = None,
) -> Report:
    """Find every operator that can receive an invalid input under the range assumptions.

    Args:
        model: path to an ONNX file, an ``onnx.ModelProto``, or a ``torch.nn.Module`` (exported with
            ``torch.onnx.export(dynamo=True)``; findings then carry the Python source line).
        spec: range spec (dict, JSON path or RangeSpec); for an ``nn.Module``, its example inputs
            (a tensor, a tuple of tensors or a dict of keyword tensors).
        config: analysis knobs.
        ranges: NAME -> (LO, HI) for inputs or initializers, on top of ``spec``.
        input_names: for an ``nn.Module``, names of its positional inputs (default: ``forward``'s).
        weights: default weight mode on top of ``spec``: ``"derived"``, ``"exact"`` or (LO, HI).

    Returns:
        The :class:`Report`.
    """
    from ranum.frontend._torch import export_module, is_module

    label, notes = None, ()
    if is_module(model):
        exported = export_module(model, spec, ranges, input_names)
        model, spec, label, notes = exported.model, None, exported.label, exported.notes
    range_spec = as_spec(spec)
    if ranges:
        range_spec = range_spec.with_ranges({k: (float(v[0]), float(v[1])) for k, v in ranges.items()})
    if weights is not None:
        range_spec = range_spec.with_weights_default(weights if isinstance(weights, str)
                                                     else (float(weights[0]), float(weights[1])))
    analysis = analyze(model, range_spec, config)
    if label is None:
        label = str(model) if not hasattr(model, "graph") else (model.graph.name or "<in-memory model>")
    return report_from(analysis, label, notes)


def _qualified(node: Node) -> str:
    """An operator's name, with its domain where a standard operator has that name too: onnxruntime's NCHWc
    layout operators are 'com.microsoft.nchwc:Conv', not the standard Conv."""
    if node.domain in ("", "ai.onnx") or not onnx.defs.has(node.op_type):
        return node.op_type
    return f"{node.domain}:{node.op_type}"
