"""Search for concrete inputs and weights that make a hazard fire at one node.

Strategies, cheapest first: (1) the weights as they are with inputs at range corners, the middle
and random points, then weights at their range corners; (2) gradient descent (Adam) over the
free tensors, parametrised into their boxes by a sigmoid, on the logarithm of the hazard's
differentiable distance, run with ranum's concrete semantics in the model's own dtypes (so float32
underflow and overflow happen as they will in the runtime); restarts from random points; a hazard at
one value (a divisor of exactly 0) continues from each descent's nearest point with a bisection onto
that value (:mod:`ranum.confirm._exact_value`); (3) for
integer inputs (ids), which the descent cannot move, random inputs ranked by that distance; (4)
RANUM's robust inducing box: optimise the centre of a small box around every free tensor, through
the differentiable abstract interpreter, until some block of the operand lies wholly in the invalid
region, and take the centre. A candidate is verified when the hazard fires on it in ranum's
semantics; the points with the model's own weights where it does not, each descent's nearest point
and the nearest random inputs are yielded unverified, since onnxruntime's kernels round otherwise
(a mean of equal values) or fail sooner. The caller replays every
candidate in onnxruntime; only a failure there counts.
"""

from __future__ import annotations

import itertools
import math
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from ranum.confirm._exact_value import reach_exact_value
from ranum.confirm._problem import Box, Problem, as_numpy, feeds_of, node_values, to_tensor
from ranum.confirm._saturation import DESCENT_REGISTRY
from ranum.domain.dtypes import is_float
from ranum.domain.interval import Interval
from ranum.domain.ranges import initial_intervals
from ranum.graph.loader import initializer_value
from ranum.interpret import gradient_scalars_quiet, run_abstract
from ranum.ops import parameter_initializers
from ranum.ops.hazards import Hazard

__all__ = ["Candidate", "SearchConfig", "search"]


@dataclass(frozen=True)
class SearchConfig:
    """Budget and randomness of the search.

    Attributes:
        seed: makes every run reproducible.
        steps: gradient steps per restart.
        restarts: gradient restarts.
        learning_rate: Adam step size in the sigmoid parametrisation.
        seconds: wall-clock budget per finding.
    """

    seed: int = 0
    steps: int = 150
    restarts: int = 16
    learning_rate: float = 0.5
    seconds: float = 20.0


@dataclass(frozen=True)
class Candidate:
    """Values of every free tensor (inputs and changed weights) and how they were found. ``verified``: the
    hazard fires on them in ranum's concrete semantics; an unverified candidate is the nearest point a
    descent reached, for onnxruntime to judge (its kernels can round otherwise and fire sooner)."""

    values: dict[str, np.ndarray]
    strategy: str
    verified: bool = True


def search(problem: Problem, hazard: Hazard, config: SearchConfig) -> Iterator[Candidate]:
    """Yield candidates, best first: those on which ``hazard`` fires in ranum's concrete semantics, and the
    unverified ones that onnxruntime alone judges (see the module doc)."""
    rng = np.random.default_rng(config.seed)
    deadline = time.monotonic() + config.seconds
    unfired = []
    for values, strategy, own_weights in _cheap_points(problem, rng):
        if _fires(problem, hazard, values):
            yield Candidate(values, strategy)
        elif own_weights:
            unfired.append(Candidate(values, strategy, verified=False))
        if time.monotonic() > deadline:
            return
    yield from unfired  # onnxruntime may fire where ranum's semantics round otherwise (a mean of equal values)
    torch.manual_seed(config.seed)
    # after every second restart, one of short steps from starts of its own: long steps cross the box, but
    # overshoot a narrow invalid region (every unit of a layer inside a band at once) by as much as they move
    short_rng = np.random.default_rng([config.seed, 1])
    for restart in range(config.restarts):
        runs = [(rng, config.learning_rate, "")]
        if restart % 2:
            runs.append((short_rng, config.learning_rate * _SHORT_STEPS, "short steps, "))
        for generator, rate, how in runs:
            yield from _descent_candidates(problem, hazard, config, generator, restart, deadline, rate, how)
            if time.monotonic() > deadline:
                return
    if any(not box.differentiable for box in problem.boxes if box.initial is None):
        for distance, values in _sampled(problem, hazard, rng, deadline):
            yield Candidate(values, "random inputs, nearest by distance", verified=distance == -float("inf"))
        if time.monotonic() > deadline:
            return
    found = _robust_box(problem, hazard, config, rng, deadline)
    if found is not None and _fires(problem, hazard, found):
        yield Candidate(found, "robust inducing box")


def _cheap_points(problem: Problem, rng: np.random.Generator
                  ) -> Iterator[tuple[dict[str, np.ndarray], str, bool]]:
    """Initial weights with input corners, middles and random points; then weight corners, and weights
    at their value nearest to zero (dead units, a degenerate state training can reach). Each point comes
    with its strategy and whether it keeps the model's own weights."""
    inputs = [b for b in problem.boxes if b.initial is None]
    weights = [b for b in problem.boxes if b.initial is not None]

    def fill(boxes: list[Box], how: str) -> dict[str, np.ndarray]:
        return {b.name: _point(b, how, rng) for b in boxes}

    initial = {b.name: b.initial for b in weights}
    # constant inputs inside the range too: a constant signal or column (a zero deviation) at a value
    # whose mean rounds exactly
    # the value nearest zero (a division by the input, log of it), random magnitudes, which a wide range's
    # uniform draws miss (in [-1, 1e30] they are all beyond 1e20), and tiny values, whose squares underflow
    # to 0 (a hand-written norm of a vector of 1e-25 is 0)
    for how in ("low", "high", "middle", "quarter", "three quarters", "zero", "random", "random", "mixed", "mixed",
                "random magnitudes", "tiny"):
        yield {**fill(inputs, how), **initial}, f"initial weights, inputs at {how}", True
    # equal vectors: the cosine of a vector with itself can round above 1 (acos of it is NaN), a distance
    # to itself is 0 (a division by it)
    for how in ("tied", "tied", "tied", "tied", "with repeated rows", "with repeated rows", "with rows a unit apart",
                "with rows a unit apart"):
        yield {**_alike(inputs, how, rng), **initial}, f"initial weights, random inputs {how}", True
    # one input at its value nearest zero, the others at an end: x ** e at x = 0 with e below 1
    for how in ("low", "high") if len(inputs) > 1 else ():
        for box in inputs[:_ZEROED]:
            values = {**fill(inputs, how), box.name: _point(box, "zero", rng), **initial}
            yield values, f"initial weights, inputs at {how}, {box.name} at zero", True
    yield from _extreme_patterns(inputs, initial)
    for values, label in _aligned_with_weights(inputs, _matrices(problem)):
        yield {**values, **initial}, f"initial weights, {label}", True
    for how in ("low", "high", "zero", "mixed", "random"):
        for input_how in ("low", "high", "random"):
            yield {**fill(inputs, input_how), **fill(weights, how)}, f"weights at {how}, inputs at {input_how}", False


_PATTERNED = 3  # float inputs that take every combination of a spike and a dip
_CONSTANTS = 6  # constant inputs at drawn values


def _extreme_patterns(inputs: list[Box], initial: dict[str, np.ndarray]
                      ) -> Iterator[tuple[dict[str, np.ndarray], str, bool]]:
    """Inputs in patterns that no corner or uniform draw gives, with the initial weights: a *spike* (the first
    element of each last-axis row at the range's top, the rest at its bottom) or a *dip* (the reverse), in
    every combination over the first float inputs: a softmax row whose other entries underflow, against an
    input that makes the opposite one (KL divergence of two softmaxes); and every input constant at drawn
    values: a mean of squares less the squared mean of a constant rounds below 0 at some values only. Their
    draws have a generator of their own (the other points' draws stay as they were)."""
    own = np.random.default_rng(_PATTERN_SEED)
    patterned = [b for b in inputs if is_float(b.elem_type) and b.shape and np.isfinite(b.high - b.low)][:_PATTERNED]
    for shapes in itertools.product(("spike", "dip"), repeat=len(patterned)):
        values = {b.name: _point(b, "middle", own) for b in inputs}
        values.update({b.name: _spiked(b, how) for b, how in zip(patterned, shapes)})
        label = ", ".join(f"{b.name} a {how}" for b, how in zip(patterned, shapes))
        yield {**values, **initial}, f"initial weights, inputs in a pattern ({label})", True
    for _ in range(_CONSTANTS if inputs else 0):
        fraction = own.random()
        values = {b.name: _constant(b, fraction) for b in inputs}
        yield {**values, **initial}, f"initial weights, constant inputs at {fraction:.3f} of their ranges", True


_PATTERN_SEED = 2023  # any fixed seed: the same points on every run
_ALIGNED = 4  # matrices whose rows and columns the inputs copy
_ALIGNED_POINTS = 24  # candidates that copy them, in all
_ALIGNED_SEED = 2301  # the copies' scales: the same points on every run


def _matrices(problem: Problem) -> list[np.ndarray]:
    """The 2-D float initializers (weights as stored, exact or not) that the hazard's node depends on, at most
    ``_ALIGNED``."""
    found = []
    for name, proto in problem.graph.initializers.items():
        if len(proto.dims) == 2 and is_float(proto.data_type) and len(found) < _ALIGNED:
            found.append(np.asarray(initializer_value(problem.graph, name), dtype=np.float64))
    return found


def _aligned_with_weights(inputs: list[Box], matrices: list[np.ndarray]
                          ) -> Iterator[tuple[dict[str, np.ndarray], str]]:
    """Inputs whose last-axis rows are scaled copies of a weight matrix's rows (or columns) of that length, each
    row a different one, at drawn scales: the cosine of a vector with the weight row it copies rounds to 1 or
    just above at some scales (ArcFace's ``sqrt(1 - cos^2)`` and ``acos(cos)`` of it are NaN), its distance to it
    to 0. Other inputs at their middle."""
    floats = [b for b in inputs if is_float(b.elem_type) and b.shape and np.isfinite(b.high - b.low)]
    pairs = [(box, number, orientation, rows) for box in floats[:_ZEROED] for number, matrix in enumerate(matrices)
             for orientation, rows in (("rows", matrix), ("columns", matrix.T))
             if rows.size and rows.shape[1] == box.shape[-1]]
    own = np.random.default_rng(_ALIGNED_SEED)
    for index in range(_ALIGNED_POINTS if pairs else 0):
        box, number, orientation, rows = pairs[index % len(pairs)]
        fraction = 1.0 if index < len(pairs) else float(own.uniform(0.05, 1.0))
        copies = _scaled_copies(rows[own.permutation(rows.shape[0])], box, fraction)
        if copies is not None:
            values = {b.name: _point(b, "middle", own) for b in inputs}
            values[box.name] = copies
            yield values, f"{box.name} copying the {orientation} of weight matrix {number} " \
                          f"(scaled by {fraction:.3f} of the most the range allows)"


def _scaled_copies(rows: np.ndarray, box: Box, fraction: float) -> np.ndarray | None:
    """``box``'s rows (last axis) set to ``rows`` in turn, all scaled by one factor that keeps them in range, or
    None where no positive factor does (a row of mixed signs under a range of one sign)."""
    top, bottom = float(rows.max()), float(rows.min())
    limits = [box.high / top if top > 0 else np.inf, box.low / bottom if bottom < 0 else np.inf]
    if (top > 0 and box.high <= 0) or (bottom < 0 and box.low >= 0):
        return None
    scale = min(limits) * fraction
    if not np.isfinite(scale) or scale <= 0:
        return None
    count = int(np.prod(box.shape[:-1], dtype=np.int64))
    chosen = rows[np.arange(count) % rows.shape[0]] * scale
    return np.clip(chosen.reshape(box.shape), box.low, box.high)


def _spiked(box: Box, how: str) -> np.ndarray:
    top, bottom = (box.high, box.low) if how == "spike" else (box.low, box.high)
    value = np.full(box.shape, bottom, dtype=np.float64)
    value[..., 0] = top
    return value


def _constant(box: Box, fraction: float) -> np.ndarray:
    if not np.isfinite(box.high - box.low):
        return _point(box, "zero", np.random.default_rng(0))
    value = np.full(box.shape, box.low + (box.high - box.low) * fraction)
    return value if is_float(box.elem_type) else np.clip(np.round(value), np.ceil(box.low), np.floor(box.high))


def _point(box: Box, how: str, rng: np.random.Generator) -> np.ndarray:
    low, high = box.low, box.high
    if how == "low":
        value = np.full(box.shape, low)
    elif how == "high":
        value = np.full(box.shape, high)
    elif how in ("middle", "quarter", "three quarters"):
        fraction = {"middle": 0.5, "quarter": 0.25, "three quarters": 0.75}[how]
        value = np.full(box.shape, low + (high - low) * fraction if np.isfinite(high - low) else 0.0)
    elif how == "zero":
        value = np.full(box.shape, min(max(0.0, low), high))
    elif how == "mixed":
        value = np.where(rng.random(box.shape) < 0.5, low, high)
    elif how in ("random magnitudes", "tiny"):  # their own generator: the other points' draws stay as they were
        own = np.random.default_rng(zlib.crc32(box.name.encode()))
        if how == "tiny":
            value = np.clip(own.uniform(-1.0, 1.0, size=box.shape) * _TINY_SCALE, low, high)
        else:
            value = _random_magnitudes(low, high, box.shape, own)
    else:
        value = rng.uniform(low, high, size=box.shape) if np.isfinite(high - low) else np.zeros(box.shape)
    if not is_float(box.elem_type):
        value = np.clip(np.round(value), np.ceil(low), np.floor(high))
    return value


_ZEROED = 8  # inputs that each get the points with one input at zero
_SMALLEST_MAGNITUDE = 1e-45  # float32's smallest subnormal, about
_TINY_SCALE = 1e-24  # float32 squares of smaller magnitudes are 0 (below half the smallest subnormal)


def _random_magnitudes(low: float, high: float, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Values of ``[low, high]`` whose magnitudes are spread evenly over their powers of ten (the range's
    ends clipped to float32's largest value), with random signs where the range allows both."""
    largest = float(np.finfo(np.float32).max)
    low, high = max(low, -largest), min(high, largest)
    top = max(abs(low), abs(high), _SMALLEST_MAGNITUDE)
    magnitudes = 10.0 ** rng.uniform(math.log10(_SMALLEST_MAGNITUDE), math.log10(top), size=shape)
    signs = np.where(rng.random(shape) < 0.5, -1.0, 1.0) if low < 0 < high else (-1.0 if high <= 0 else 1.0)
    return np.clip(signs * magnitudes, low, high)


def _alike(inputs: list[Box], how: str, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Random inputs, ``tied``: every float input equal to the first one of its shape (within its own
    range); ``with repeated rows``: each input's first slice along its first axis repeated along it; ``with rows a
    unit apart``: so, each copy then moved by one float32 unit at one element."""
    values = {b.name: _point(b, "random", rng) for b in inputs}
    first_of_shape: dict[tuple[int, ...], str] = {}
    for box in inputs:
        if how == "tied" and is_float(box.elem_type):
            source = first_of_shape.setdefault(box.shape, box.name)
            values[box.name] = np.clip(values[source], box.low, box.high)
        elif how != "tied" and len(box.shape) > 0 and box.shape[0] > 1:
            values[box.name] = np.broadcast_to(values[box.name][:1], box.shape).copy()
            if how == "with rows a unit apart" and is_float(box.elem_type):
                values[box.name] = _nudged(values[box.name], box, rng)
    return values


def _nudged(rows: np.ndarray, box: Box, rng: np.random.Generator) -> np.ndarray:
    """Repeated rows, each after the first moved by one float32 unit at one element (within the range): a
    squared distance written ``|a|^2 + |b|^2 - 2 a.b`` of two such rows can round below 0 (its root NaN)."""
    single = rows.astype(np.float32)
    flat = single.reshape(single.shape[0], -1)
    for row in range(1, flat.shape[0]):
        column = int(rng.integers(flat.shape[1]))
        toward = np.float32(box.high if rng.random() < 0.5 else box.low)
        flat[row, column] = np.nextafter(flat[row, column], toward)
    return np.clip(flat.reshape(rows.shape), box.low, box.high).astype(np.float64)


_SAMPLES, _KEPT = 256, 3


def _sampled(problem: Problem, hazard: Hazard, rng: np.random.Generator,
             deadline: float) -> list[tuple[float, dict[str, np.ndarray]]]:
    """Random inputs with the initial weights, the nearest few by the hazard's distance in ranum's semantics
    (-inf where it fires): for integer inputs (token or item ids), which the descent cannot move."""
    inputs = [b for b in problem.boxes if b.initial is None]
    initial = {b.name: b.initial for b in problem.boxes if b.initial is not None}
    ranked: list[tuple[float, dict[str, np.ndarray]]] = []
    for _ in range(_SAMPLES):
        if time.monotonic() > deadline:
            break
        values = {**{b.name: _point(b, "random", rng) for b in inputs}, **initial}
        try:
            with torch.no_grad():
                node_in, node_out = node_values(problem, feeds_of(problem, values))
                if bool(hazard.triggered(node_in, node_out).any()):
                    return [(-float("inf"), values)]
                distance = float(_soft_minimum(hazard.distance(node_in, node_out)))
        except (RuntimeError, ValueError, IndexError):
            continue
        ranked.append((distance, values))
    ranked.sort(key=lambda item: item[0])
    return ranked[:_KEPT]


def _fires(problem: Problem, hazard: Hazard, values: dict[str, np.ndarray]) -> bool:
    try:
        with torch.no_grad():
            node_in, node_out = node_values(problem, feeds_of(problem, values))
            return bool(hazard.triggered(node_in, node_out).any())
    except (RuntimeError, ValueError, IndexError):
        return False


def _descent_candidates(problem: Problem, hazard: Hazard, config: SearchConfig, rng: np.random.Generator,
                        restart: int, deadline: float, rate: float, how: str) -> Iterator[Candidate]:
    """The candidate of one descent: the values where the hazard fires (reached by the gradient, or by
    bisection from its nearest point onto a one-value hazard), else that nearest point, unverified."""
    found, nearest = _descend(problem, hazard, config, rng, restart, deadline, rate)
    if found is None and nearest is not None:
        found = reach_exact_value(problem, hazard, nearest, deadline)
        strategy = f"gradient, then bisection onto the invalid value ({how}restart {restart})"
    else:
        strategy = f"gradient ({how}restart {restart})"
    if found is not None:
        yield Candidate(found, strategy)
    elif nearest is not None:
        yield Candidate(nearest, f"gradient's nearest point ({how}restart {restart})", verified=False)


def _descend(problem: Problem, hazard: Hazard, config: SearchConfig, rng: np.random.Generator, restart: int,
             deadline: float, rate: float) -> tuple[dict[str, np.ndarray] | None, dict[str, np.ndarray] | None]:
    """Adam on sigmoid-parametrised free tensors toward the hazard's invalid region: the values where the
    hazard fires (or None), and the point of least loss reached otherwise. Saturated sigmoids and tanhs
    pass gradients on (see :mod:`ranum.confirm._saturation`)."""
    params: dict[str, torch.Tensor] = {}
    fixed: dict[str, np.ndarray] = {}
    for box in problem.boxes:
        start = box.initial if box.initial is not None and restart == 0 else _point(box, "random", rng)
        if box.differentiable:
            frac = np.clip((np.asarray(start, dtype=np.float64) - box.low) / (box.high - box.low), 1e-4, 1 - 1e-4)
            params[box.name] = torch.tensor(np.log(frac / (1 - frac)), requires_grad=True)
        else:
            fixed[box.name] = np.asarray(start)
    if not params:
        return None, None
    optimiser = torch.optim.Adam(list(params.values()), lr=rate)
    boxes = {b.name: b for b in problem.boxes}
    nearest, least = None, float("inf")
    for _ in range(config.steps):
        if time.monotonic() > deadline:
            break
        values = {n: boxes[n].low + (boxes[n].high - boxes[n].low) * torch.sigmoid(p) for n, p in params.items()}
        feeds = {n: v.to(to_tensor(np.zeros(()), boxes[n].elem_type).dtype) for n, v in values.items()}
        feeds.update({n: to_tensor(v, boxes[n].elem_type) for n, v in fixed.items()})
        point = {**{n: as_numpy(v) for n, v in feeds.items() if n in params}, **fixed}
        try:
            node_in, node_out = node_values(problem, feeds, DESCENT_REGISTRY)
            if bool(hazard.triggered(node_in, node_out).any()):
                return point, None
            distance = hazard.distance(node_in, node_out)
        except (RuntimeError, ValueError, IndexError):
            break
        loss = _soft_minimum(distance)
        if not loss.requires_grad or not torch.isfinite(loss):
            break
        if float(loss.detach()) < least:
            nearest, least = point, float(loss.detach())
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return None, nearest


_SHORT_STEPS = 0.2  # the learning rate of the short-step restarts, relative to the configured one
_LOG_FLOOR = -745.0  # below the log of float64's smallest positive value
_IGNORED = 1e3  # a NaN distance: far from the invalid region, it does not pull the minimum


def _soft_minimum(distance: torch.Tensor) -> torch.Tensor:
    """A smooth stand-in for min(distance) over the logarithms of the distances: large magnitudes do not
    dominate, and small ones keep their resolution. A sum of nearly equal small distances (the
    probabilities of a softmax row, which sum to 1) would otherwise hide the smallest one, and the descent
    would push them all down at once, which cannot be done. The logarithm's slope 1/d is capped at 1 over
    the model dtype's smallest normal value, so that the gradient flowing back into the model stays finite
    while d crosses the subnormal values on its way to an underflow."""
    cap = 1.0 / torch.finfo(distance.dtype).tiny if distance.is_floating_point() else 1.0
    flat = distance.reshape(-1).to(torch.float64)
    positive = flat > 0
    safe = torch.where(positive, flat, torch.ones_like(flat))
    slope = 1.0 / safe.detach().clamp(min=1.0 / cap)
    logarithm = torch.log(safe.detach()) + (safe - safe.detach()) * slope
    scaled = torch.where(positive, logarithm, _LOG_FLOOR + flat)
    scaled = torch.where(torch.isnan(flat), torch.full_like(flat, _IGNORED), scaled)
    return -torch.logsumexp(-scaled * 4.0, dim=0) / 4.0


def _robust_box(problem: Problem, hazard: Hazard, config: SearchConfig, rng: np.random.Generator,
                deadline: float, fraction: float = 1e-3) -> dict[str, np.ndarray] | None:
    """Optimise box centres until the abstract operand has a block wholly inside the invalid region."""
    base, _ = initial_intervals(problem.full_graph, problem.spec, parameter_initializers(problem.full_graph))
    params = {}
    fixed = {}
    for box in problem.boxes:
        start = box.initial if box.initial is not None else _point(box, "random", rng)
        if box.differentiable and np.isfinite(box.high - box.low):
            frac = np.clip((np.asarray(start, dtype=np.float64) - box.low) / (box.high - box.low), 1e-4, 1 - 1e-4)
            params[box.name] = torch.tensor(np.log(frac / (1 - frac)).reshape(box.shape), requires_grad=True)
        else:
            fixed[box.name] = np.asarray(start)
    if not params:
        return None
    boxes = {b.name: b for b in problem.boxes}
    optimiser = torch.optim.Adam(list(params.values()), lr=config.learning_rate)
    for _ in range(config.steps):
        if time.monotonic() > deadline:
            return None
        initial = dict(base)
        centres = {}
        for name, theta in params.items():
            b = boxes[name]
            centre = b.low + (b.high - b.low) * torch.sigmoid(theta)
            radius = fraction * (b.high - b.low)
            centres[name] = centre
            initial[name] = Interval.from_full((centre - radius).clamp(min=b.low), (centre + radius).clamp(max=b.high),
                                               b.elem_type)
        node = problem.node
        with gradient_scalars_quiet():
            run = run_abstract(problem.graph, initial)
            gap = hazard.containment_gap([run.env.get(n) if n else None for n in node.inputs],
                                         [run.env.get(n) if n else None for n in node.outputs])
        if gap is None or not gap.requires_grad:
            return None
        if float(gap.detach()) == 0.0:
            return {**{n: as_numpy(c) for n, c in centres.items()}, **fixed}
        optimiser.zero_grad()
        gap.backward()
        optimiser.step()
    return None
