"""Operator-level repairs: clip each vulnerable operator's own operand, re-analyse, repeat.

Each round analyses the model patched with every clip chosen so far (from the original ranges)
and, for each remaining finding, either applies the clip its hazard declares (``Hazard.repair`` on
the input ``Hazard.repair_operand`` names) or, for a hazard that declares none (an overflowing
result), bounds the node's float operands to the widest box [-B, B] under which re-analysis no
longer reports that finding (bisection on the exponent of B). Clips accumulate per (node, tensor)
by meet, so later rounds only tighten; new findings that a clip exposes downstream (an overflow
after clipping an exponential's input) are repaired in the next round.

Invariants: clips are keyed by the tensor names of the original model (names of inserted Clip
outputs are mapped back); node-level clips are inserted before tensor-level ("base") clips so that
a base clip feeds the node-level one; nothing here decides certification, the caller re-analyses.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import onnx

from ranum.analysis import Analysis, analyze
from ranum.detect import Finding, find_hazards, hazard_of
from ranum.domain.dtypes import float_facts, is_float
from ranum.domain.interval import Interval
from ranum.domain.ranges import RangeSpec
from ranum.errors import RanumError
from ranum.graph.patch import ClipSpec, clippable, clipped_name, insert_clips
from ranum.ops.hazards import FORWARD, Clamp, ConstantNaN, Hazard

__all__ = ["NodeClip", "patch", "repair_rounds"]

Key = tuple[str, str]  # (node, original tensor)


@dataclass(frozen=True)
class NodeClip:
    """Clip ``tensor`` for node ``node`` (an ``op_type``) only."""

    node: str
    op_type: str
    tensor: str
    clamp: Clamp


def patch(model: onnx.ModelProto, base: Sequence[ClipSpec], clips: Sequence[NodeClip],
          elem_types: Mapping[str, int]) -> tuple[onnx.ModelProto, dict[str, str]]:
    """The model with node-level clips, then base clips; returns it and clipped name -> original name."""
    specs = [ClipSpec(c.tensor, c.clamp.min, c.clamp.max, frozenset({c.node})) for c in clips] + list(base)
    origin = {clipped_name(s.tensor, i): s.tensor for i, s in enumerate(specs)}
    return insert_clips(model, specs, elem_types), origin


def repair_rounds(model: onnx.ModelProto, spec: RangeSpec, base: Sequence[ClipSpec], elem_types: Mapping[str, int],
                  rounds: int = 20, seconds: float | None = None) -> list[NodeClip]:
    """Node-level clips that remove the findings left by ``base`` clips (as far as repairs allow).

    Args:
        model: the original model.
        spec: the original ranges.
        base: tensor-level clips applied first (inputs/weights), possibly none.
        elem_types: element type per tensor name of the original model.
        rounds: most analyse-and-repair rounds. An overflow clipped at one node can reappear at the next
            (a deep network's convolutions: each round's clip lets a larger value through to the next
            layer), so a chain needs a round per node.
        seconds: no new round starts after this many seconds (None: no limit).

    Returns:
        The node-level clips, in the order chosen.
    """
    clips: dict[Key, NodeClip] = {}
    deadline = None if seconds is None else time.monotonic() + seconds
    for _ in range(rounds):
        if deadline is not None and clips and time.monotonic() > deadline:
            break
        session = _Session(model, spec, base, elem_types, clips)
        findings = find_hazards(session.analysis.run)
        if not findings:
            break
        added = False
        for node_name in dict.fromkeys(f.node for f in findings):
            mine = [f for f in findings if f.node == node_name]
            added |= _repair_node(session, node_name, mine, clips)
        if not added:
            break
    return list(clips.values())


class _Session:
    """One patched model and its analysis, plus a way to try more clips on it."""

    def __init__(self, model, spec, base, elem_types, clips: Mapping[Key, NodeClip]) -> None:
        self.model, self.spec, self.base, self.elem_types = model, spec, base, elem_types
        self.clips = dict(clips)
        patched, self.origin = patch(model, base, list(self.clips.values()), elem_types)
        self.analysis: Analysis = _analyze(patched, spec)

    def original(self, tensor: str) -> str:
        return self.origin.get(tensor, tensor)

    def remains(self, extra: Mapping[Key, NodeClip], node: str, hazards: set[str]) -> bool:
        """Whether a finding of ``hazards`` at ``node`` survives the clips plus ``extra``."""
        trial = {**self.clips, **extra}
        patched, _ = patch(self.model, self.base, list(trial.values()), self.elem_types)
        run = _analyze(patched, self.spec).run
        return any(f.node == node and f.hazard_id in hazards for f in find_hazards(run))


def _analyze(model: onnx.ModelProto, spec: RangeSpec) -> Analysis:
    try:
        return analyze(model, spec)
    except RanumError as exc:  # a patched model the loader rejects is a bug in patching (the CLI exits 4)
        raise RuntimeError(f"the patched model cannot be analysed: {exc}") from None


def _repair_node(session: _Session, node_name: str, findings: list[Finding], clips: dict[Key, NodeClip]) -> bool:
    """Add clips for one node's findings; True when something new was added."""
    run = session.analysis.run
    node = next(n for n in run.nodes if n.name == node_name)
    rule = run.rules[node_name]
    # a constant holding NaN: no clip removes it (Clip of NaN is NaN)
    hazards = [hazard_of(rule, f, node) for f in findings if f.hazard_id != ConstantNaN.name]
    inputs = [run.env.get(n) if n else None for n in node.inputs]
    declared = [h for h in hazards if h.repair_operand() is not None]
    if _merge(clips, _declared_repairs(session, node, declared, inputs)):
        return True
    leftover = {h.name for h in hazards if h.repair_operand() is None}
    return bool(leftover) and _merge(clips, _bounding_repairs(session, node, inputs, leftover))


def _merge(clips: dict[Key, NodeClip], new: Mapping[Key, NodeClip]) -> bool:
    """Meet ``new`` into ``clips``; True when a clip was added or tightened."""
    added = False
    for key, clip in new.items():
        old = clips.get(key)
        merged = clip if old is None else NodeClip(clip.node, clip.op_type, clip.tensor, old.clamp.meet(clip.clamp))
        if merged.clamp.empty or old == merged:
            continue
        clips[key] = merged
        added = True
    return added


def _declared_repairs(session: _Session, node, hazards: list[Hazard], inputs) -> dict[Key, NodeClip]:
    """The meet of the declared repairs per operand, forward hazards first, each seeing the others' clips.

    A two-sided choice (stay above or below a region) is made on the operand narrowed by the clips
    already chosen; if the result is empty, the other order is tried.
    """
    ordered = sorted(hazards, key=lambda h: h.kind != FORWARD)
    for order in (ordered, ordered[::-1]):
        clamps: dict[int, Clamp] = {}
        for hazard in order:
            index = hazard.repair_operand()
            operand = inputs[index] if index is not None and index < len(inputs) else None
            if operand is None or not clippable(session.model, operand.elem_type):
                continue
            narrowed = _narrow(operand, clamps.get(index))
            repair = hazard.repair(narrowed, inputs)
            if repair is not None:
                clamps[index] = repair if index not in clamps else clamps[index].meet(repair)
        if not any(c.empty for c in clamps.values()):
            break
    out = {}
    for index, clamp in clamps.items():
        tensor = session.original(node.inputs[index])
        out[(node.name, tensor)] = NodeClip(node.name, node.op_type, tensor, clamp)
    return out


def _narrow(iv: Interval, clamp: Clamp | None) -> Interval:
    if clamp is None or clamp.empty:
        return iv
    low = -math.inf if clamp.min is None else clamp.min
    high = math.inf if clamp.max is None else clamp.max
    lower, upper = iv.lower.clamp(min=low, max=high), iv.upper.clamp(min=low, max=high)
    return iv.with_bounds(lower, upper)


def _bounding_repairs(session: _Session, node, inputs, hazards: set[str], steps: int = 10) -> dict[Key, NodeClip]:
    """Clip the node's float operands to the widest [-B, B] (B a power of two) removing ``hazards``."""
    chosen = [i for i, iv in enumerate(inputs) if iv is not None and is_float(iv.elem_type) and not iv.is_exact]
    if not chosen:
        return {}
    facts = float_facts(inputs[chosen[0]].elem_type)

    def clips_for(exponent: int) -> dict[Key, NodeClip]:
        bound = 2.0 ** exponent
        out = {}
        for i in chosen:
            if not _exceeds(inputs[i], bound):
                continue
            tensor = session.original(node.inputs[i])
            old = session.clips.get((node.name, tensor))
            clamp = Clamp(-bound, bound) if old is None else old.clamp.meet(Clamp(-bound, bound))
            out[(node.name, tensor)] = NodeClip(node.name, node.op_type, tensor, clamp)
        return out

    good, bad = math.floor(math.log2(facts.tiny)), math.ceil(math.log2(facts.max))
    if session.remains(clips_for(good), node.name, hazards):
        return {}
    for _ in range(steps):
        if bad - good <= 1:
            break
        middle = (good + bad) // 2
        if session.remains(clips_for(middle), node.name, hazards):
            bad = middle
        else:
            good = middle
    return clips_for(good)


def _exceeds(iv: Interval, bound: float) -> bool:
    return bool((iv.lower < -bound).any() or (iv.upper > bound).any()) if iv.numblocks else False
