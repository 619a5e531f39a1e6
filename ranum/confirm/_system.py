"""System tests: training data that leads a model, trained by a stated recipe, to a failure.

The recipe is plain SGD from the model's initial weights: at each step the loss (a scalar tensor)
is averaged over ``batch`` examples (one forward pass each, with the graph inputs' own shapes),
and every trainable weight moves by ``-lr * gradient``. Training runs in ranum's concrete
interpreter (torch, the model's dtypes), so it can be unrolled and differentiated.

Search, cheapest first: (1) the direct route: constant extreme data (range corners, mixes, random
points) for exactly ``steps`` steps; (2) an adaptation of Deep Leakage from Gradients: the
training batches and the test inputs are parametrised inside their ranges (sigmoid), the recipe
is unrolled with ``create_graph=True``, and Adam minimises the hazard's distance at the node under
the trained weights (soft-min over elements) plus a gradient-matching term pulling the trained
weights toward the unit test's target weights; (3) the direct route with more steps (up to
``step_factor * steps``); (4) gradient matching through 2x and 4x the steps. The steps actually
used are reported and written into recipe.json. Every candidate is re-trained for real (no autograd graph) and counts
only when onnxruntime, run with the trained weights on the test inputs, shows the failure.
Invariants: training data and test inputs lie inside their ranges; results depend only on the
seed; trained weights are finite.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

import numpy as np
import torch

from ranum.confirm._problem import Box, Problem, as_numpy, node_values, prune, to_tensor
from ranum.confirm._replay import run_onnxruntime
from ranum.domain.dtypes import is_float
from ranum.errors import RanumError
from ranum.graph.loader import initializer_value
from ranum.graph.model import Graph
from ranum.interpret import run_concrete
from ranum.ops import parameter_initializers
from ranum.ops.hazards import FORWARD, Hazard

__all__ = ["SystemConfig", "SystemResult", "TrainingRecipe", "resolve_recipe", "run_recipe", "system_search"]


@dataclass(frozen=True)
class SystemConfig:
    """What ``--system`` asks for: the recipe's knobs and the search budget.

    Attributes:
        lr: SGD learning rate (> 0).
        steps: SGD steps of the recipe (>= 1).
        batch: examples per step (>= 1).
        loss: the loss tensor; None takes the model's only scalar output.
        train: trainable weights; None takes every float initializer with more than one element.
        seconds: search budget per finding.
        step_factor: the direct route may train up to ``step_factor * steps`` steps.
    """

    lr: float = 0.1
    steps: int = 1
    batch: int = 1
    loss: str | None = None
    train: tuple[str, ...] | None = None
    seconds: float = 10.0
    step_factor: int = 16

    def __post_init__(self) -> None:
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise RanumError(f"--lr must be a positive number, got {self.lr}")
        if self.steps < 1:
            raise RanumError(f"--steps must be at least 1, got {self.steps}")
        if self.batch < 1:
            raise RanumError(f"--batch must be at least 1, got {self.batch}")


@dataclass(frozen=True)
class TrainingRecipe:
    """A resolved recipe: plain SGD on ``loss`` over ``train``, fed graph inputs ``inputs``."""

    lr: float
    steps: int
    batch: int
    loss: str
    train: tuple[str, ...]
    inputs: tuple[str, ...]
    dims: Mapping[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"optimizer": "SGD", "lr": self.lr, "steps": self.steps, "batch": self.batch, "loss": self.loss,
                "train": list(self.train), "inputs": list(self.inputs), "dims": dict(self.dims),
                "description": "start from the model's initial weights; at each step average the loss over "
                               "the batch (one forward pass per example) and set w <- w - lr * dloss/dw for "
                               "every trained weight; train.npz holds each input as [steps, batch, *shape]"}

    @staticmethod
    def from_dict(data: Mapping) -> TrainingRecipe:
        return TrainingRecipe(float(data["lr"]), int(data["steps"]), int(data["batch"]), str(data["loss"]),
                              tuple(data["train"]), tuple(data["inputs"]), dict(data.get("dims", {})))


@dataclass(frozen=True)
class SystemResult:
    """A verified system test (or the reason none was found)."""

    status: str  # "confirmed" | "not_confirmed"
    seconds: float
    steps: int
    strategy: str | None = None
    data: dict[str, np.ndarray] | None = None
    trained: dict[str, np.ndarray] | None = None
    test_inputs: dict[str, np.ndarray] | None = None
    recipe: TrainingRecipe | None = None
    note: str = ""

    def summary(self) -> dict:
        return {"status": self.status, "seconds": round(self.seconds, 4), "steps": self.steps,
                "strategy": self.strategy, "note": self.note}


NO_TRAINABLE_WEIGHTS = ("the model has no trainable weights (float initializers with more than one element, other "
                        "than settings such as Resize scales); name some with --train")


class NoTrainableWeights(RanumError):
    """The model has no weight to train: system tests do not apply (unit tests still do)."""


def resolve_recipe(graph: Graph, config: SystemConfig, dims: Mapping[str, int] | None = None) -> TrainingRecipe:
    """Name the loss and the trainable weights of ``graph``; RanumError when they are unusable."""
    loss = config.loss or _default_loss(graph)
    info = graph.info(loss)
    if info is None or info.shape is None:
        raise RanumError(f"--loss '{loss}': the model has no tensor of that name with a known shape")
    if math.prod(info.shape) != 1 or not is_float(info.elem_type):
        raise RanumError(f"--loss '{loss}' is not a float scalar (shape {list(info.shape)})")
    if config.train is None:
        settings = parameter_initializers(graph)
        train = tuple(n for n, p in graph.initializers.items()
                      if is_float(p.data_type) and math.prod(p.dims) > 1 and n not in settings)
    else:
        train = tuple(config.train)
        for name in train:
            proto = graph.initializers.get(name)
            if proto is None or not is_float(proto.data_type):
                raise RanumError(f"--train '{name}' is not a float initializer of the model")
    if not train:
        raise NoTrainableWeights(NO_TRAINABLE_WEIGHTS)
    inputs = tuple(i.name for i in graph.inputs if i.name not in graph.initializers)
    return TrainingRecipe(config.lr, config.steps, config.batch, loss, train, inputs, dict(dims or {}))


def _default_loss(graph: Graph) -> str:
    scalars = [o.name for o in graph.outputs if o.shape is not None and math.prod(o.shape) == 1]
    if not scalars:
        raise RanumError("the model has no scalar output to train on; name the loss with --loss")
    if len(scalars) > 1:
        raise RanumError(f"the model has several scalar outputs ({', '.join(scalars)}); choose one with --loss")
    return scalars[0]


def loss_graph(graph: Graph, loss: str) -> Graph:
    """``graph`` pruned to what the loss tensor depends on."""
    node = next((n for n in graph.nodes if loss in n.outputs), None)
    if node is None:
        raise RanumError(f"--loss '{loss}' is not computed by any node")
    return prune(graph, node)


def _initial_weights(graph: Graph, recipe: TrainingRecipe) -> dict[str, torch.Tensor]:
    return {n: torch.from_numpy(np.array(initializer_value(graph, n))) for n in recipe.train}


def _train(graph: Graph, recipe: TrainingRecipe, data: Mapping[str, torch.Tensor], steps: int,
           create_graph: bool = False) -> Iterator[dict[str, torch.Tensor]]:
    """Yield the weights after each SGD step; ``data[name]`` is [>= steps, batch, *shape]."""
    weights = {n: w.requires_grad_(True) for n, w in _initial_weights(graph, recipe).items()}
    for step in range(steps):
        total = None
        for b in range(recipe.batch):
            feeds = {**{n: v[step, b] for n, v in data.items()}, **weights}
            value = run_concrete(graph, feeds).values[recipe.loss].reshape(())
            total = value if total is None else total + value
        loss = total / recipe.batch
        if loss.requires_grad:
            grads = torch.autograd.grad(loss, list(weights.values()), create_graph=create_graph, allow_unused=True)
        else:  # the loss does not depend differentiably on any weight (thresholds, casts): SGD leaves them
            grads = (None,) * len(weights)
        new = {}
        for (name, w), g in zip(weights.items(), grads):
            updated = w if g is None else w - recipe.lr * g
            new[name] = updated if create_graph else updated.detach().requires_grad_(True)
        weights = new
        yield weights


def run_recipe(graph: Graph, recipe: TrainingRecipe | Mapping, data: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Train ``graph`` from its initial weights by ``recipe`` on ``data``; the trained weights."""
    if not isinstance(recipe, TrainingRecipe):
        recipe = TrainingRecipe.from_dict(recipe)
    pruned = loss_graph(graph, recipe.loss)
    tensors = {n: torch.from_numpy(np.ascontiguousarray(v)) for n, v in data.items()}
    *_, weights = _train(pruned, recipe, tensors, recipe.steps)
    return {n: as_numpy(w) for n, w in weights.items()}


def fires_in_onnxruntime(problem: Problem, hazard: Hazard, feeds: Mapping[str, np.ndarray],
                         weights: Mapping[str, np.ndarray]) -> bool:
    """Does the hazard fire in onnxruntime (and, for forward hazards, does NaN/Inf appear)?"""
    graph, node = problem.full_graph, problem.node
    try:
        values = run_onnxruntime(graph, feeds, weights, [*node.inputs, *node.outputs])
    except Exception:  # noqa: BLE001 - a runtime rejecting the inputs is "not confirmed"
        return False
    constants = {n: torch.from_numpy(np.array(v)) for n, v in weights.items()}
    for name in graph.initializers:
        if name not in constants:
            constants[name] = torch.from_numpy(np.array(initializer_value(graph, name)))
    node_in = [torch.from_numpy(np.array(values[n])) if n in values else constants.get(n) for n in node.inputs]
    node_out = [torch.from_numpy(np.array(values[n])) if n in values else None for n in node.outputs]
    if not bool(hazard.triggered(node_in, node_out).any()):
        return False
    if hazard.kind == FORWARD:
        return any(o is not None and o.is_floating_point() and not bool(torch.isfinite(o).all()) for o in node_out)
    return True


# ------------------------------------------------------------------------------------- search
# "unit": values in [-1, 1] (within the range): data of an ordinary magnitude, which a range with an
# unbounded end (its ends the type's largest value) offers nowhere else
_DATA_KINDS = ("high", "low", "mixed", "mixed", "random", "random", "middle", "unit")
_ADAM_LR = 0.3
_MATCH_WEIGHT = 0.1


@dataclass
class _Found:
    data: dict[str, np.ndarray]
    test: dict[str, np.ndarray]
    steps: int
    strategy: str


def system_search(problem: Problem, hazard: Hazard, recipe: TrainingRecipe, target: Mapping[str, np.ndarray],
                  config: SystemConfig, seed: int = 0, iterations: int = 60) -> SystemResult:
    """Find training data under which ``recipe`` leads to ``hazard`` firing; verify in onnxruntime.

    Args:
        problem: the finding's search space (its input boxes bound the data and the test inputs).
        hazard: the hazard to trigger at ``problem.node``.
        recipe: the resolved training recipe.
        target: the unit test's values (inputs and weights): starting test inputs, target weights.
        config: budget and step factor.
        seed: makes the search reproducible.
        iterations: Adam iterations of the unrolled route.
    """
    start = time.perf_counter()
    search = _Search(problem, hazard, recipe, target, config, seed)
    longest = recipe.steps * config.step_factor
    routes = (search.direct(recipe.steps), search.unroll(iterations, recipe.steps),
              search.direct(longest, first=recipe.steps + 1),
              *(search.unroll(iterations, recipe.steps * k) for k in (2, 4) if recipe.steps * k <= longest))
    for route in routes:
        for found in route:
            trained = search.verify(found)
            if trained is not None:
                used = TrainingRecipe(recipe.lr, found.steps, recipe.batch, recipe.loss, recipe.train,
                                      recipe.inputs, recipe.dims)
                return SystemResult("confirmed", time.perf_counter() - start, found.steps, found.strategy,
                                    found.data, trained, found.test, used)
            if search.late():
                break
    note = "no training data found within budget" if not search.late() else "search budget exhausted"
    return SystemResult("not_confirmed", time.perf_counter() - start, 0, note=note)


class _Search:
    def __init__(self, problem: Problem, hazard: Hazard, recipe: TrainingRecipe, target: Mapping[str, np.ndarray],
                 config: SystemConfig, seed: int) -> None:
        self.problem, self.hazard, self.recipe, self.config, self.seed = problem, hazard, recipe, config, seed
        self.graph = loss_graph(problem.full_graph, recipe.loss)
        boxes = {b.name: b for b in problem.boxes}
        missing = [n for n in recipe.inputs if n not in boxes]
        if missing:
            raise RanumError(f"graph inputs without a range cannot be trained on: {', '.join(missing)}")
        self.inputs = [boxes[n] for n in recipe.inputs]
        self.target = {n: np.asarray(v) for n, v in target.items()}
        self.rng = np.random.default_rng(seed)
        self.deadline = time.monotonic() + config.seconds
        self.tests = self._test_points()

    def late(self) -> bool:
        return time.monotonic() > self.deadline

    def _test_points(self) -> list[dict[str, np.ndarray]]:
        points = [{b.name: self._cast(b, self.target[b.name]) for b in self.inputs if b.name in self.target}]
        for how in ("low", "high", "mixed"):
            points.append({b.name: self._cast(b, _point(b, how, self.rng, b.shape)) for b in self.inputs})
        return [p for p in points if len(p) == len(self.inputs)]

    @staticmethod
    def _cast(box: Box, value, shape: tuple[int, ...] | None = None) -> np.ndarray:
        clipped = np.clip(np.asarray(value, dtype=np.float64), box.low, box.high).reshape(shape or box.shape)
        return as_numpy(to_tensor(clipped, box.elem_type))

    def _fires(self, weights: Mapping[str, torch.Tensor], test: Mapping[str, np.ndarray]) -> bool:
        feeds = {**{n: torch.from_numpy(v) for n, v in test.items()}, **{n: w.detach() for n, w in weights.items()}}
        try:
            with torch.no_grad():
                node_in, node_out = node_values(self.problem, feeds)
                return bool(self.hazard.triggered(node_in, node_out).any())
        except (RuntimeError, ValueError, IndexError):
            return False

    def direct(self, max_steps: int, first: int | None = None) -> Iterator[_Found]:
        """Constant extreme data, trained step by step; check after each step from ``first`` on."""
        first = first or self.recipe.steps
        if max_steps < first:
            return
        for how in _DATA_KINDS:
            one = {b.name: self._cast(b, _point(b, how, self.rng, (self.recipe.batch, *b.shape)),
                                      (self.recipe.batch, *b.shape)) for b in self.inputs}
            data = {n: np.array(np.broadcast_to(v, (max_steps, *v.shape))) for n, v in one.items()}
            tensors = {n: torch.from_numpy(v) for n, v in data.items()}
            for k, weights in enumerate(_train(self.graph, self.recipe, tensors, max_steps), 1):
                if self.late() or not _finite(weights):
                    break
                if k < first:
                    continue
                fired = next((test for test in self.tests if self._fires(weights, test)), None)
                if fired is not None:
                    yield _Found({n: v[:k].copy() for n, v in data.items()}, fired, k,
                                 f"direct: {how} data, {k} step(s)")
                elif k == first and self.tests:
                    # the unit test's inputs, judged by onnxruntime itself: its kernels can fail where ranum's
                    # concrete semantics do not (its kernels round otherwise)
                    yield _Found({n: v[:k].copy() for n, v in data.items()}, self.tests[0], k,
                                 f"direct: {how} data, {k} step(s), unit test inputs")
            if self.late():
                return

    def verify(self, found: _Found) -> dict[str, np.ndarray] | None:
        """Re-run the recipe for real and check the failure in onnxruntime."""
        recipe = TrainingRecipe(self.recipe.lr, found.steps, self.recipe.batch, self.recipe.loss,
                                self.recipe.train, self.recipe.inputs, self.recipe.dims)
        try:
            trained = run_recipe(self.problem.full_graph, recipe, found.data)
        except (RuntimeError, ValueError, IndexError):
            return None
        if not all(np.isfinite(v).all() for v in trained.values()):
            return None
        return trained if fires_in_onnxruntime(self.problem, self.hazard, found.test, trained) else None

    def unroll(self, iterations: int, steps: int) -> Iterator[_Found]:
        """Gradient matching: optimise the data (and test inputs) through ``steps`` unrolled SGD steps."""
        torch.manual_seed(self.seed + steps)
        shape = (steps, self.recipe.batch)
        params, fixed = {}, {}
        for b in self.inputs:
            if b.differentiable:
                params[b.name] = torch.randn((*shape, *b.shape), dtype=torch.float64, requires_grad=True)
            else:
                fixed[b.name] = torch.from_numpy(self._cast(b, _point(b, "random", self.rng, (*shape, *b.shape)),
                                                            (*shape, *b.shape)))
        tests = {b.name: _logit(b, self.tests[0][b.name]) for b in self.inputs if b.differentiable}
        if not params:
            return
        optimiser = torch.optim.Adam([*params.values(), *tests.values()], lr=_ADAM_LR)
        boxes = {b.name: b for b in self.inputs}
        targets = self._target_weights()
        for iteration in range(iterations):
            if self.late():
                return
            data = {**{n: _squash(boxes[n], p) for n, p in params.items()}, **fixed}
            test = {**{n: _squash(boxes[n], p) for n, p in tests.items()},
                    **{n: torch.from_numpy(v) for n, v in self.tests[0].items() if n not in tests}}
            try:
                *_, weights = _train(self.graph, self.recipe, data, steps, create_graph=True)
            except (RuntimeError, ValueError, IndexError):
                return
            if not _finite(weights):
                return
            test_np = {n: as_numpy(v) for n, v in test.items()}
            if self._fires(weights, test_np):
                yield _Found({n: as_numpy(v) for n, v in data.items()}, test_np, steps,
                             f"gradient matching ({steps} step(s), iteration {iteration})")
            objective = self._objective(weights, test, targets)
            if objective is None:
                return
            optimiser.zero_grad()
            objective.backward()
            optimiser.step()

    def _target_weights(self) -> dict[str, tuple[torch.Tensor, float]]:
        """Trained weights the unit test moved away from their initial values, with a scale."""
        boxes = {b.name: b for b in self.problem.boxes}
        out = {}
        for name in self.recipe.train:
            box = boxes.get(name)
            if box is None or name not in self.target or box.initial is None:
                continue
            value = np.asarray(self.target[name], dtype=np.float64).reshape(box.shape)
            if not np.array_equal(value, np.asarray(box.initial, dtype=np.float64)):
                width = box.high - box.low if math.isfinite(box.high - box.low) else 1.0
                out[name] = (torch.from_numpy(value), max(width, 1e-12) ** 2 * max(value.size, 1))
        return out

    def _objective(self, weights, test, targets) -> torch.Tensor | None:
        feeds = {**test, **weights}
        try:
            node_in, node_out = node_values(self.problem, feeds)
            distance = self.hazard.distance(node_in, node_out)
        except (RuntimeError, ValueError, IndexError):
            return None
        objective = _soft_minimum(distance.to(torch.float64))
        for name, (value, scale) in targets.items():
            objective = objective + _MATCH_WEIGHT * ((weights[name].to(torch.float64) - value) ** 2).sum() / scale
        if not objective.requires_grad or not bool(torch.isfinite(objective)):
            return None
        return objective


def _soft_minimum(distance: torch.Tensor) -> torch.Tensor:
    """A smooth stand-in for min(distance), scaled so large magnitudes do not dominate."""
    flat = distance.reshape(-1)
    flat = torch.where(torch.isnan(flat), torch.zeros_like(flat), flat)
    scaled = torch.sign(flat) * torch.log1p(flat.abs())
    return -torch.logsumexp(-scaled * 4.0, dim=0) / 4.0


def _finite(weights: Mapping[str, torch.Tensor]) -> bool:
    return all(bool(torch.isfinite(w.detach()).all()) for w in weights.values())


def _point(box: Box, how: str, rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    low, high = box.low, box.high
    if how == "low":
        value = np.full(shape, low)
    elif how == "high":
        value = np.full(shape, high)
    elif how == "middle":
        value = np.full(shape, (low + high) / 2)
    elif how == "mixed":
        value = np.where(rng.random(shape) < 0.5, low, high)
    elif how == "unit":
        value = rng.uniform(max(low, -1.0), min(high, 1.0), size=shape) if low <= 1.0 and high >= -1.0 \
            else np.full(shape, low if low > 1.0 else high)
    else:
        value = rng.uniform(low, high, size=shape) if np.isfinite(high - low) else np.zeros(shape)
    if not is_float(box.elem_type):
        value = np.clip(np.round(value), np.ceil(low), np.floor(high))
    return value


def _logit(box: Box, value: np.ndarray) -> torch.Tensor:
    frac = np.clip((np.asarray(value, dtype=np.float64) - box.low) / (box.high - box.low), 1e-4, 1 - 1e-4)
    return torch.tensor(np.log(frac / (1 - frac)), requires_grad=True)


def _squash(box: Box, theta: torch.Tensor) -> torch.Tensor:
    value = box.low + (box.high - box.low) * torch.sigmoid(theta)
    return value.to(to_tensor(np.zeros(()), box.elem_type).dtype)
