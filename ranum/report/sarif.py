"""SARIF 2.1.0 rendering of a check report, for GitHub code scanning and other CI viewers.

One rule per hazard kind (``hazard_id``) with a help text and a fix hint; one result per finding,
``error`` when the finding is certain and ``warning`` when it is only possible. A result's location
is the Python line that created the operator when the exporter recorded it, else the model file;
the ONNX node is always given as a logical location.

Invariants: the output validates against the SARIF 2.1.0 JSON schema; paths inside the working
folder are written relative to ``%SRCROOT%`` (the working folder), others as absolute file URIs.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

from ranum.detect import Finding, Report

__all__ = ["FIX_HINTS", "fix_hint", "render_sarif", "to_sarif"]

SCHEMA_URI = "https://json.schemastore.org/sarif-2.1.0.json"
SRCROOT = "%SRCROOT%"

FIX_HINTS = {
    "nan-constant": "A constant of the model holds NaN: an exporter folded an invalid computation into it (e.g. "
                    "0 * inf in a degree normalisation). Fix the source (an epsilon, a self-loop, a clamp) and "
                    "export again; no clip of the constant removes it.",
    "log-nonpositive": "Keep the argument positive: `torch.log(p.clamp_min(eps))`, or compute log-probabilities "
                       "directly with `torch.log_softmax` / `F.cross_entropy` instead of `log(softmax(x))`.",
    "integer-division-overflow": "An integer dividend at its type's minimum divided by -1 has no quotient in the "
                                 "type, and onnxruntime's process dies of an arithmetic exception: clamp the "
                                 "dividend above the minimum, or divide in a wider type.",
    "division-by-zero": "Keep the divisor away from 0: `x / (d + eps)` or `x / d.clamp_min(eps)` "
                        "(`F.normalize` does this for norms).",
    "sqrt-negative": "Clamp the argument to non-negative values: `torch.sqrt(v.clamp_min(0))`.",
    "sqrt-zero-gradient": "The derivative of sqrt is infinite at 0: add an epsilon, `torch.sqrt(v + eps)`.",
    "exp-overflow": "Bound the exponent (e.g. `x.clamp(max=80)` for float32) or use a stable form "
                    "(`torch.logsumexp`, `torch.softmax`).",
    "overflow": "The result can exceed the largest finite value of its dtype: scale or clamp the operands, "
                "or compute in a wider dtype.",
    "infinite-input": "An operand can be infinite: fix the upstream operator that produces Inf.",
}
_DEFAULT_HINT = ("Constrain the operand out of its invalid range (clamp it or add an epsilon), or let "
                 "`ranum fix --on operator` insert the clip for you.")


def fix_hint(hazard_id: str) -> str:
    """A short remedy for a hazard kind (a generic one for kinds without a specific hint)."""
    for key, hint in FIX_HINTS.items():
        if hazard_id == key or hazard_id.endswith(key):
            return hint
    if "gradient" in hazard_id:
        return ("The derivative is infinite or undefined at the boundary of the domain: keep the operand strictly "
                "inside it with an epsilon (e.g. `torch.sqrt(v + eps)`, `F.normalize(x, eps=...)`), or let "
                "`ranum fix --on operator` insert a clip.")
    return _DEFAULT_HINT


def render_sarif(report: Report, base: Path | None = None) -> str:
    """The SARIF log as a JSON string."""
    return json.dumps(to_sarif(report, base), indent=2)


def to_sarif(report: Report, base: Path | None = None) -> dict:
    """The SARIF 2.1.0 log of a report.

    Args:
        report: the check report.
        base: folder that relative paths refer to (``%SRCROOT%``); default the working folder.
    """
    from ranum import __version__

    root = (base or Path.cwd()).resolve()
    rules, index = _rules(report.findings)
    run = {
        "tool": {"driver": {"name": "ranum", "version": __version__, "semanticVersion": __version__,
                            "rules": rules}},
        "originalUriBaseIds": {SRCROOT: {"uri": root.as_uri() + "/"}},
        "invocations": [{"executionSuccessful": True}],
        "results": [_result(f, index[f.hazard_id], report.model, root) for f in report.findings],
        "properties": {"model": report.model, "nodes": report.nodes,
                       "unsupportedOps": list(report.unsupported_ops),
                       "notAnalysedNodes": list(report.not_analysed_nodes), "warnings": report.warnings},
    }
    return {"$schema": SCHEMA_URI, "version": "2.1.0", "runs": [run]}


def _rules(findings: tuple[Finding, ...]) -> tuple[list[dict], dict[str, int]]:
    rules: list[dict] = []
    index: dict[str, int] = {}
    for f in findings:
        if f.hazard_id in index:
            continue
        index[f.hazard_id] = len(rules)
        hint = fix_hint(f.hazard_id)
        effect = "produce NaN or Inf at inference" if f.kind == "forward" else "break training (NaN/Inf gradient)"
        text = (f"{f.hazard[:1].upper()}{f.hazard[1:]}: ranum's interval analysis found that the operand of "
                f"the operator can reach its invalid range, where the operator can {effect}.")
        rules.append({
            "id": f.hazard_id,
            "name": _camel(f.hazard_id),
            "shortDescription": {"text": f.hazard},
            "fullDescription": {"text": text},
            "help": {"text": f"{text}\nFix: {hint}", "markdown": f"{text}\n\n**Fix:** {hint}"},
            "defaultConfiguration": {"level": "warning"},
            "properties": {"tags": ["numerical", f.kind], "kind": f.kind},
        })
    return rules, index


def _result(f: Finding, rule_index: int, model: str, root: Path) -> dict:
    low, high = (_num(v) for v in f.interval)
    certainty = "every value it can take is invalid" if f.certain else "it can reach the invalid range"
    message = (f"{f.op_type} node '{f.node}': {f.hazard}. Operand '{f.operand}' lies in [{low}, {high}] "
               f"and the invalid range is {f.invalid}: {certainty}.")
    logical = {"name": f.node, "fullyQualifiedName": f"{model}/{f.node}", "kind": "function"}
    location: dict = {"logicalLocations": [logical]}
    physical = _physical(f, model, root)
    if physical is not None:
        location["physicalLocation"] = physical
    digest = hashlib.sha256(f"{f.node}\0{f.hazard_id}\0{f.operand}".encode()).hexdigest()[:32]
    return {
        "ruleId": f.hazard_id,
        "ruleIndex": rule_index,
        "level": "error" if f.certain else "warning",
        "message": {"text": message},
        "locations": [location],
        "partialFingerprints": {"ranumFinding/v1": digest},
        "properties": {"node": f.node, "opType": f.op_type, "operand": f.operand, "interval": [low, high],
                       "invalid": f.invalid, "certain": f.certain, "kind": f.kind},
    }


def _physical(f: Finding, model: str, root: Path) -> dict | None:
    if f.source is not None:
        region: dict = {"startLine": f.source.line}
        if f.source.code:
            region["snippet"] = {"text": f.source.code}
        return {"artifactLocation": _artifact(Path(f.source.file), root), "region": region}
    path = Path(model)
    if model and path.is_file():
        return {"artifactLocation": _artifact(path, root), "region": {"startLine": 1}}
    return None


def _artifact(path: Path, root: Path) -> dict:
    resolved = path.resolve()
    try:
        return {"uri": resolved.relative_to(root).as_posix(), "uriBaseId": SRCROOT}
    except ValueError:
        return {"uri": resolved.as_uri()}


def _camel(hazard_id: str) -> str:
    return "".join(part.capitalize() for part in hazard_id.split("-"))


def _num(value: float) -> float | str:
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return value
