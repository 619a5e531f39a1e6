"""Turn an abstract run into findings, one per (node, hazard) whose invalid region is reachable."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

from ranum.detect._row_relations import rows_keep_finite
from ranum.domain.interval import Interval
from ranum.frontend._source import SourceLocation
from ranum.interpret import AbstractRun
from ranum.ops._guard_relations import magnitude_floor
from ranum.ops._infinite_operands import InfiniteOperands
from ranum.ops.hazards import (
    FORWARD,
    ConstantNaN,
    DivisorHazard,
    Hazard,
    HazardHit,
    InfiniteRow,
    Overflow,
)

__all__ = ["Finding", "find_hazards", "hazard_of"]


@dataclass(frozen=True)
class Finding:
    """A potential numerical defect at one node.

    Attributes:
        node: ONNX node name (stable generated name for unnamed nodes).
        op_type: the operator.
        hazard: what can go wrong, in words.
        hazard_id: short identifier of the hazard kind (e.g. ``log-nonpositive``).
        operand: the tensor whose values can be invalid.
        interval: min lower and max upper bound of that tensor.
        invalid: the invalid region.
        certain: every value the operand can take is invalid.
        kind: ``forward`` (NaN/Inf at inference) or ``gradient`` (only training breaks).
        source: the Python line that created the operator, when the exporter recorded it.
    """

    node: str
    op_type: str
    hazard: str
    hazard_id: str
    operand: str
    interval: tuple[float, float]
    invalid: str
    certain: bool
    kind: str
    source: SourceLocation | None = None

    def to_dict(self) -> dict:
        data = asdict(self)
        data["interval"] = [_json_number(v) for v in self.interval]
        data["source"] = None if self.source is None else self.source.to_dict()
        return data


def _json_number(value: float) -> float | str:
    """JSON has no infinity: write it as the strings "inf" / "-inf"."""
    if value == float("inf"):
        return "inf"
    if value == float("-inf"):
        return "-inf"
    return value


def find_hazards(run: AbstractRun) -> list[Finding]:
    """Check every declared hazard of every evaluated node (graph order, subgraphs included)."""
    findings: list[Finding] = []
    view = _RunView(run)
    # tensors whose infinities an earlier finding (an unanalysed node, a constant holding NaN) explains; a
    # subgraph's inputs too: a loop's carried state is infinite after the body's own overflow, which its
    # evaluation reports (run.subgraph_overflows), and the marks do not follow it round the loop
    explained: set[str] = set(run.nan_constants) | {
        info.name for node in run.nodes for sub in node.subgraphs() for info in sub.inputs}
    for node in run.nodes:
        rule = run.rules.get(node.name)
        carried = any(name in explained and not _finite(run, name) for name in node.inputs)
        if rule is None or node.name in run.not_analysed:
            explained.update(node.outputs)
            continue
        inputs = [run.env.get(name) if name else None for name in node.inputs]
        outputs = [run.env.get(name) if name else None for name in node.outputs]
        hits = [_checked(run, view, node, _explaining(hazard, node, explained), inputs, outputs)
                for hazard in rule.hazards]
        seen = run.subgraph_overflows.get(node.name, {})  # one evaluation's overflow, hidden by the joined bounds
        hits = [(hazard, hit if hit is not None else seen.get(index)) for index, (hazard, hit) in enumerate(hits)]
        hits = [(_named_operand(hazard, inputs), hit) for hazard, hit in hits if hit is not None]
        if any(isinstance(h, Overflow) for h, _ in hits):
            # infinite operands from the node's own overflow (a loop body's earlier evaluation) are that overflow
            hits = [(h, hit) for h, hit in hits if not isinstance(h, InfiniteOperands)]
        if any(h.kind == FORWARD and not isinstance(h, Overflow) for h, _ in hits):
            # an infinite result explained by the node's own invalid operand (division by zero,
            # log of zero...) is that defect, not a separate overflow
            hits = [(h, hit) for h, hit in hits if not isinstance(h, Overflow)]
        for hazard, hit in hits:
            operand = hazard.operand_name(node.inputs, node.outputs)
            operand_iv = run.env.get(operand)
            elem_type = operand_iv.elem_type if operand_iv is not None else 1
            findings.append(
                Finding(
                    node=node.name,
                    op_type=node.op_type,
                    hazard=hazard.description,
                    hazard_id=hazard.name,
                    operand=operand,
                    interval=(hit.low, hit.high),
                    invalid=hazard.invalid_text(elem_type),
                    certain=hit.certain,
                    kind=hazard.kind,
                )
            )
        findings.extend(_nan_constant_findings(run, node))
        if carried or any(hazard.kind == FORWARD for hazard, _ in hits):
            explained.update(node.outputs)
    return findings


def _finite(run: AbstractRun, name: str) -> bool:
    value = run.env.get(name)
    return isinstance(value, Interval) and value.is_finite


def _explaining(hazard: Hazard, node, explained: set[str]) -> Hazard:
    """``hazard`` told which operands' infinities earlier findings explain (see :class:`InfiniteOperands`)."""
    if not isinstance(hazard, InfiniteOperands):
        return hazard
    return replace(hazard, explained=tuple(name in explained for name in node.inputs))


def _named_operand(hazard: Hazard, inputs) -> Hazard:
    """An :class:`InfiniteOperands` hit names the first operand that can be infinite with no explanation."""
    if not isinstance(hazard, InfiniteOperands):
        return hazard
    open_infinite = [i for i, (mark, iv) in enumerate(zip(hazard.explained, inputs))
                     if not mark and isinstance(iv, Interval) and not iv.is_finite]
    return replace(hazard, operand=open_infinite[0] if open_infinite else 0)


def _checked(run: AbstractRun, view: _RunView, node, hazard: Hazard, inputs, outputs
             ) -> tuple[Hazard, HazardHit | None]:
    """``hazard``'s check; for a row hazard that fires, again where each row keeps a finite element by how it
    was computed (:mod:`ranum.detect._row_relations`); for a divisor, none where a guard keeps its magnitude
    above 0 on both sides (:func:`ranum.ops._relations.magnitude_floor`)."""
    hit = hazard.check(inputs, outputs)
    if hit is not None and isinstance(hazard, DivisorHazard) and hazard.low == hazard.high == 0 \
            and hazard.operand < len(node.inputs) and magnitude_floor(view, node.inputs[hazard.operand]) > 0:
        return hazard, None
    if hit is None or not isinstance(hazard, InfiniteRow) or hazard.to_end or hazard.rows_keep_finite:
        return hazard, hit
    name = node.inputs[hazard.operand] if hazard.operand < len(node.inputs) else ""
    if name and rows_keep_finite(run.nodes, run.env, name, hazard.axis):
        kept = replace(hazard, rows_keep_finite=True)
        return kept, kept.check(inputs, outputs)
    return hazard, hit


class _RunView:
    """A finished run read as a :class:`~ranum.ops._base.GraphView` (producers and intervals), for the
    relations that detection consults."""

    def __init__(self, run: AbstractRun) -> None:
        self._run = run
        self._producers: dict | None = None  # built on first use: most runs ask no relation
        self.memo: dict = {}

    def producer(self, name: str):
        if self._producers is None:
            self._producers = {out: node for node in self._run.nodes for out in node.outputs if out}
        return self._producers.get(name)

    def consumers(self, name: str):
        return [node for node in self._run.nodes if name in node.inputs]

    def interval(self, name: str):
        value = self._run.env.get(name)
        return value if isinstance(value, Interval) else None

    def nan_free(self, name: str) -> bool:
        return False


def _nan_constant_findings(run: AbstractRun, node) -> list[Finding]:
    """A finding per operand of ``node`` that is a constant holding NaN (see :class:`ConstantNaN`), certain
    where every run reads it; a branch of a Where that its condition never selects is not read."""
    if not run.nan_constants:
        return []
    hazard = ConstantNaN()
    findings = []
    for name in dict.fromkeys(node.inputs):
        if name not in run.nan_constants:
            continue
        read = _where_selects(run, node, name)
        if read is False:
            continue
        findings.append(Finding(node=node.name, op_type=node.op_type, hazard=hazard.description,
                                hazard_id=hazard.name, operand=name, interval=(-math.inf, math.inf),
                                invalid=hazard.invalid_text(1), certain=read is not None, kind=hazard.kind))
    return findings


def _where_selects(run: AbstractRun, node, name: str) -> bool | None:
    """Whether a Where's condition selects its operand ``name`` (a branch) at every element (True), at none
    (False) or at some (None); True for a node that is not a Where or an operand that is not a branch only."""
    if node.op_type != "Where" or node.domain not in ("", "ai.onnx") or len(node.inputs) != 3 \
            or name == node.inputs[0] or node.inputs[1] == node.inputs[2]:
        return True
    condition = run.env.get(node.inputs[0])
    if not isinstance(condition, Interval) or condition.numblocks == 0:
        return None
    wanted = 1.0 if name == node.inputs[1] else 0.0  # X where the condition holds, Y where it fails
    picked = [bool((bound == wanted).all()) for bound in (condition.lower, condition.upper)]
    never = [bool((bound != wanted).all()) for bound in (condition.lower, condition.upper)]
    if all(picked):
        return True
    return False if all(never) else None


def hazard_of(rule, finding: Finding, node) -> Hazard:
    """The hazard object behind a finding of ``node`` (whose rule is ``rule``)."""
    if finding.hazard_id == ConstantNaN.name:
        return ConstantNaN(operand=list(node.inputs).index(finding.operand))
    hazard = next(h for h in rule.hazards if h.name == finding.hazard_id)
    if isinstance(hazard, InfiniteOperands) and finding.operand in node.inputs:
        return replace(hazard, operand=list(node.inputs).index(finding.operand))
    return hazard
