"""Gradient-based search for clip preconditions on inputs and weights.

Parameters are the clip bounds [l_t, u_t] of each chosen tensor t inside its original range
[L_t, H_t]: ``l = L + (H - L) * sigmoid(a)`` and ``u = l + (H - l) * sigmoid(b)``, so l <= u always.
The objective runs the very abstract interpreter that ``check`` uses, differentiably: the sum of
every hazard's violation (how far an operand interval reaches into its invalid region) plus a
width term ``-log(kept fraction)`` that keeps ranges wide, plus a term that keeps the tensor's
ordinary values (initial weights) inside. It stops as soon as detection certifies the clips.
Two optimisers are tried, Adam and plain gradient descent (the baseline); the certified result
keeping the most of the ranges wins.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch

from ranum.analysis import Analysis
from ranum.config import AnalysisConfig
from ranum.detect import find_hazards
from ranum.domain.dtypes import is_float
from ranum.domain.interval import Interval
from ranum.domain.ranges import finite_range, initial_intervals
from ranum.graph.loader import initializer_value
from ranum.interpret import gradient_scalars_quiet, run_abstract
from ranum.ops import parameter_initializers

__all__ = ["ClipResult", "FixConfig", "optimise_clips"]


@dataclass(frozen=True)
class FixConfig:
    """Budget of the precondition search.

    Attributes:
        steps: optimisation steps per optimiser.
        seconds: wall-clock budget for the whole search.
        width_weight: weight of the keep-ranges-wide term.
        check_every: certify with detection every this many steps.
        operator_rounds: most analyse-and-repair rounds of operator-level clips (none starts after
            ``seconds``).
    """

    steps: int = 200
    seconds: float = 60.0
    width_weight: float = 1e-2
    check_every: int = 5
    operator_rounds: int = 20


@dataclass(frozen=True)
class ClipResult:
    """Clip bounds per tensor, whether detection certified them, and which optimiser found them."""

    clips: dict[str, tuple[float, float]]
    certified: bool
    optimiser: str
    kept: float  # geometric mean of kept fractions


@dataclass(frozen=True)
class _Target:
    name: str
    low: float
    high: float
    shape: tuple[int, ...]
    elem_type: int
    ordinary: tuple[float, float] | None  # min and max of the initial values


def optimise_clips(analysis: Analysis, tensors: list[str], config: FixConfig) -> ClipResult | None:
    """Search clip bounds for ``tensors`` (inputs/weights with ranges) that remove every finding."""
    base, _ = initial_intervals(analysis.graph, analysis.spec, parameter_initializers(analysis.graph))
    targets = _targets(analysis, tensors)
    if not targets:
        return None
    deadline = time.monotonic() + config.seconds
    results = []
    for name, factory in (("adam", lambda p: torch.optim.Adam(p, lr=0.2)), ("gradient descent",
                                                                          lambda p: torch.optim.SGD(p, lr=0.5))):
        found = _run(analysis, base, targets, config, factory, deadline)
        if found is not None:
            results.append(ClipResult(found[0], found[1], name, found[2]))
    results.extend(_shrink(analysis, base, targets, deadline))
    certified = [r for r in results if r.certified]
    if certified:
        best = max(certified, key=lambda r: (_keeps_ordinary(targets, r.clips), r.kept))
        clips = _widen(analysis, base, targets, best.clips, deadline)
        return ClipResult(clips, True, best.optimiser, _kept(targets, clips))
    return max(results, key=lambda r: r.kept) if results else None


def _targets(analysis: Analysis, tensors: list[str]) -> list[_Target]:
    by_name = {a.tensor: a for a in analysis.assumptions}
    out = []
    for name in tensors:
        a = by_name.get(name)
        info = analysis.graph.info(name)
        if a is None or a.low is None or info is None:
            continue
        if not is_float(info.elem_type) or info.sequence or info.optional:  # Clip rejects bool, sequences, optionals;
            continue  # ranges are indices or counts
        low, high = finite_range(a.low, a.high, info.elem_type)  # an unbounded end: the type's largest value
        if not high > low:
            continue
        ordinary = None
        if name in analysis.graph.initializers:
            value = initializer_value(analysis.graph, name)
            ordinary = (float(value.min()), float(value.max())) if value.size else None
        out.append(_Target(name, low, high, tuple(info.shape), info.elem_type, ordinary))
    return out


def _run(analysis, base, targets, config, factory, deadline):
    params = {t.name: (torch.full((), -6.0, dtype=torch.float64, requires_grad=True),
                       torch.full((), 6.0, dtype=torch.float64, requires_grad=True)) for t in targets}
    optimiser = factory([p for pair in params.values() for p in pair])
    best = None
    for step in range(config.steps + 1):
        if time.monotonic() > deadline:
            break
        bounds = {t.name: _bounds(t, *params[t.name]) for t in targets}
        initial = dict(base)
        for t in targets:
            low, high = bounds[t.name]
            initial[t.name] = Interval.uniform(low, high, t.shape, t.elem_type)
        with gradient_scalars_quiet():
            run = run_abstract(analysis.graph, initial, AnalysisConfig())
        if step % config.check_every == 0 or step == config.steps:
            clips = {n: (float(lo.detach()), float(hi.detach())) for n, (lo, hi) in bounds.items()}
            with gradient_scalars_quiet():  # hazards read float(bound) of tensors that carry gradients
                certified = not find_hazards(run)
            if certified:
                return clips, True, _kept(targets, clips)
            best = (clips, False, _kept(targets, clips))
        violation = _violation(run)
        if not violation.requires_grad or float(violation.detach()) == 0.0:
            break  # no hazard offers a gradient: descending would only trade width away
        loss = violation + config.width_weight * _width_penalty(targets, bounds)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return best


def _certifies(analysis, base, targets, clips) -> bool:
    initial = dict(base)
    for t in targets:
        low, high = clips[t.name]
        initial[t.name] = Interval.uniform(low, high, t.shape, t.elem_type)
    with torch.no_grad():
        return not find_hazards(run_abstract(analysis.graph, initial, AnalysisConfig()))


def _widen(analysis, base, targets, clips, deadline, rounds: int = 12) -> dict[str, tuple[float, float]]:
    """Push each certified bound back toward its original end while detection still certifies.

    Gradient steps stop short of the widest certified clip; a bisection per bound closes the gap.
    """
    clips = dict(clips)
    for t in targets:
        for side in (0, 1):
            good = clips[t.name][side]
            bad = t.low if side == 0 else t.high
            if good == bad or time.monotonic() > deadline:
                continue
            if _try(analysis, base, targets, clips, t, side, bad):
                good = bad
            else:
                for _ in range(rounds):
                    middle = _between(good, bad)
                    if _try(analysis, base, targets, clips, t, side, middle):
                        good = middle
                    else:
                        bad = middle
            clips[t.name] = _with_side(clips[t.name], side, good)
    return clips


_TINY = 2.0**-126  # float32's smallest normal magnitude: what 0 stands for in a geometric middle


def _between(good: float, bad: float) -> float:
    """The next trial between a certified bound and the original end: their middle, or, where the two are
    orders of magnitude apart on one side of zero (an unbounded range ends at the type's largest value,
    and a division's certified bound may be 1e-30), their geometric middle, 0 counting as ``_TINY``."""
    small, big = sorted((abs(good), abs(bad)))
    if good * bad >= 0 and small * 1024 < big:
        sign = 1.0 if good + bad > 0 else -1.0
        return sign * math.sqrt(max(small, _TINY) * big)
    return (good + bad) / 2


def _try(analysis, base, targets, clips, t, side, value) -> bool:
    trial = dict(clips)
    trial[t.name] = _with_side(clips[t.name], side, value)
    return _certifies(analysis, base, targets, trial)


def _with_side(pair: tuple[float, float], side: int, value: float) -> tuple[float, float]:
    return (value, pair[1]) if side == 0 else (pair[0], value)


def _bounds(t: _Target, a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    low = t.low + (t.high - t.low) * torch.sigmoid(a)
    high = low + (t.high - low) * torch.sigmoid(b)
    return low, high


def _violation(run) -> torch.Tensor:
    total = torch.zeros((), dtype=torch.float64)
    for node in run.nodes:
        rule = run.rules.get(node.name)
        if rule is None:
            continue
        inputs = [run.env.get(n) if n else None for n in node.inputs]
        outputs = [run.env.get(n) if n else None for n in node.outputs]
        for hazard in rule.hazards:
            value = hazard.violation(inputs, outputs)
            if value is not None and value.requires_grad:
                total = total + torch.nan_to_num(value, nan=0.0, posinf=1e6, neginf=0.0)
    return total


def _width_penalty(targets, bounds) -> torch.Tensor:
    total = torch.zeros((), dtype=torch.float64)
    for t in targets:
        low, high = bounds[t.name]
        total = total - torch.log((high - low).clamp(min=1e-12) / (t.high - t.low))
        if t.ordinary is not None:
            total = total + torch.relu(low - t.ordinary[0]) + torch.relu(t.ordinary[1] - high)
    return total


def _kept(targets, clips) -> float:
    logs = [math.log(max(clips[t.name][1] - clips[t.name][0], 1e-300) / (t.high - t.low)) for t in targets]
    return math.exp(sum(logs) / len(logs)) if logs else 1.0


def _keeps_ordinary(targets: list[_Target], clips: dict[str, tuple[float, float]]) -> bool:
    return all(t.ordinary is None or clips[t.name][0] <= t.ordinary[0] and t.ordinary[1] <= clips[t.name][1]
               for t in targets)


def _shrink(analysis, base, targets, deadline, steps: int = 14) -> list[ClipResult]:
    """Gradient-free search: shrink every range toward one anchor by a common factor s (bisection).

    Anchors: the middle of the ordinary values (initial weights) or of the range, the high ends,
    the low ends. Finds clips where the violation offers no gradient (saturated bounds).
    """
    out = []
    for label, anchor in (("shrink to middle", _middle), ("shrink to high end", lambda t: t.high),
                          ("shrink to low end", lambda t: t.low)):
        points = {t.name: anchor(t) for t in targets}

        def clips(s: float, points=points) -> dict[str, tuple[float, float]]:
            return {t.name: (p - s * (p - t.low), p + s * (t.high - p)) for t in targets for p in (points[t.name],)}

        good, bad = 1e-6, 1.0
        if time.monotonic() > deadline or not _certifies(analysis, base, targets, clips(good)):
            continue
        if _certifies(analysis, base, targets, clips(bad)):
            good = bad
        for _ in range(steps):
            if good == bad or time.monotonic() > deadline:
                break
            middle = math.sqrt(good * bad)
            good, bad = (middle, bad) if _certifies(analysis, base, targets, clips(middle)) else (good, middle)
        out.append(ClipResult(clips(good), True, label, _kept(targets, clips(good))))
    return out


def _middle(t: _Target) -> float:
    if t.ordinary is not None:
        return min(max((t.ordinary[0] + t.ordinary[1]) / 2, t.low), t.high)
    return (t.low + t.high) / 2
