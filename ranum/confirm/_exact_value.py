"""Reach a hazard whose invalid region is one value: a divisor of exactly 0, atanh at exactly 1.

A descent gets near such a value but rarely onto it: the operand moves on the float grid of the model's
dtype, in steps the optimiser does not control (``1 / (x * w + b)`` has its pole between two float32
values of ``x`` the descent keeps jumping over). From a near point, the operand elements nearest the value
are taken one at a time, with the free elements (inputs, free weights) they depend on most. One free
element alone then moves: a Newton step toward the value, doubled until the operand crosses it, then a
bisection over that element's values in its own dtype, down to two neighbouring values. A point where the
operand equals the value fires the hazard. Two neighbours that straddle the value without hitting it mean
the float grid skips it along that element (``x * x - 0.3`` is never exactly 0 in float32), and the next
element is tried.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np
import torch

from ranum.confirm._problem import Box, Problem, feeds_of, node_values
from ranum.domain.dtypes import torch_dtype
from ranum.ops.hazards import Hazard

__all__ = ["reach_exact_value"]

_ELEMENTS = 3  # operand elements tried, nearest the value first
_FREE_ELEMENTS = 4  # free elements moved per operand element, the most influential first
_DOUBLINGS = 16  # widenings of the Newton step before the element is given up
_BISECTIONS = 80  # more than float64 needs to come down to neighbouring values

Values = dict[str, np.ndarray]
Judge = Callable[[Values], tuple[list, list]]


def reach_exact_value(problem: Problem, hazard: Hazard, start: Values, deadline: float,
                      judge: Judge | None = None) -> Values | None:
    """Free values near ``start`` on which ``hazard`` fires, or None (not a one-value hazard, or not found).

    ``judge`` gives the target node's operands and results for free values (default: ranum's concrete
    semantics; onnxruntime's where its kernels round otherwise). The directions come from ranum's."""
    boxes = {b.name: b for b in problem.boxes if b.differentiable and b.name in start}
    if not boxes:
        return None
    leaves = {n: torch.tensor(np.asarray(start[n], dtype=np.float64), requires_grad=True) for n in boxes}
    feeds = feeds_of(problem, {n: v for n, v in start.items() if n not in boxes})
    feeds.update({n: leaf.to(torch_dtype(boxes[n].elem_type)) for n, leaf in leaves.items()})
    try:
        gap = hazard.signed_gap(*node_values(problem, feeds))
    except (RuntimeError, ValueError, IndexError):
        return None
    if gap is None or not gap.requires_grad:
        return None
    flat = gap.reshape(-1)
    distances = torch.where(torch.isfinite(flat), flat.detach().abs(), torch.full_like(flat.detach(), math.inf))
    for element in torch.argsort(distances)[:_ELEMENTS].tolist():
        if not math.isfinite(float(distances[element])):
            break
        gradients = torch.autograd.grad(flat[element], list(leaves.values()), retain_graph=True, allow_unused=True)
        for name, index, slope in _most_influential(list(leaves), gradients):
            walk = _Walk(hazard, start, boxes[name], index, element, judge or _in_ranum(problem))
            found = walk.reach(float(flat[element].detach()), slope, deadline)
            if found is not None:
                return found
            if time.monotonic() > deadline:
                return None
    return None


def _in_ranum(problem: Problem) -> Judge:
    return lambda values: node_values(problem, feeds_of(problem, values))


def _most_influential(names: list[str], gradients) -> list[tuple[str, int, float]]:
    """(tensor, flat index, derivative) of the free elements with the largest finite nonzero derivatives."""
    ranked: list[tuple[float, str, int, float]] = []
    for name, gradient in zip(names, gradients):
        if gradient is None:
            continue
        flat = gradient.reshape(-1)
        usable = torch.where(torch.isfinite(flat), flat.abs(), torch.zeros_like(flat))
        for index in torch.argsort(usable, descending=True)[:_FREE_ELEMENTS].tolist():
            if float(usable[index]) > 0:
                ranked.append((float(usable[index]), name, index, float(flat[index])))
    ranked.sort(key=lambda item: -item[0])
    return [(name, index, slope) for _, name, index, slope in ranked[:_FREE_ELEMENTS]]


class _Walk:
    """One free element moving alone, with one operand element watched."""

    def __init__(self, hazard: Hazard, start: Values, box: Box, index: int, element: int, judge: Judge):
        self.hazard, self.start, self.box, self.judge = hazard, start, box, judge
        self.index, self.element = index, element
        self.origin = self._on_grid(float(np.asarray(start[box.name], dtype=np.float64).reshape(-1)[index]))

    def reach(self, gap: float, slope: float, deadline: float) -> Values | None:
        """Newton's step, doubled until the gap's sign flips, then bisection between the two sides."""
        step = -gap / slope
        if not math.isfinite(step) or gap == 0:
            return None
        near, far = self.origin, None
        for doubling in range(_DOUBLINGS):
            value = self._on_grid(self.origin + step * 2.0**doubling)
            hit, side = self._probe(value, deadline)
            if hit is not None or side is None:
                return hit
            if side != _sign(gap):
                far = value
                break
            near = value
            if value in (self.box.low, self.box.high):
                return None
        return None if far is None else self._bisect(near, far, _sign(gap), deadline)

    def _bisect(self, near: float, far: float, near_side: float, deadline: float) -> Values | None:
        for _ in range(_BISECTIONS):
            middle = self._on_grid((near + far) / 2.0)
            if middle in (near, far):
                return None
            hit, side = self._probe(middle, deadline)
            if hit is not None or side is None:
                return hit
            near, far = (middle, far) if side == near_side else (near, middle)
        return None

    def _on_grid(self, value: float) -> float:
        """``value`` inside the box and rounded to the free tensor's dtype."""
        value = min(max(value, self.box.low), self.box.high)
        return float(torch.tensor(value, dtype=torch.float64).to(torch_dtype(self.box.elem_type)))

    def _probe(self, value: float, deadline: float) -> tuple[Values | None, float | None]:
        """With the free element at ``value``: the values if the hazard fires, and the watched gap's sign
        (None where the point cannot be evaluated, or the deadline passed)."""
        if time.monotonic() > deadline:
            return None, None
        values = dict(self.start)
        moved = np.array(self.start[self.box.name], dtype=np.float64)
        moved.reshape(-1)[self.index] = value
        values[self.box.name] = moved
        try:
            with torch.no_grad():
                node_in, node_out = self.judge(values)
                fired = bool(self.hazard.triggered(node_in, node_out).any())
                gap = self.hazard.signed_gap(node_in, node_out)
        except (RuntimeError, ValueError, IndexError):
            return None, None
        watched = math.nan if gap is None else float(gap.reshape(-1)[self.element])
        if fired:
            return values, 0.0
        return None, (None if math.isnan(watched) else _sign(watched))


def _sign(value: float) -> float:
    return math.copysign(1.0, value) if value != 0 else 0.0
