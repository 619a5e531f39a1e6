"""The search space of a confirmation: which tensors may change, inside which boxes.

Free tensors are the graph inputs (inside their ranges) and the weights (inside their weight
ranges; fixed when analysed exactly). Constants keep their values, except initializers a range
named. The concrete model is pruned to the ancestors of the target node.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

import numpy as np
import torch

from ranum.analysis import Analysis
from ranum.domain.dtypes import is_float, torch_dtype
from ranum.domain.ranges import RangeSpec, finite_range
from ranum.errors import RanumError
from ranum.graph.loader import initializer_value
from ranum.graph.model import Graph, Node
from ranum.interpret import run_concrete
from ranum.ops import REGISTRY, Registry

__all__ = ["Box", "Problem", "as_numpy", "feeds_of", "make_problem", "node_values", "to_tensor"]

SEARCH_LIMIT = 1e30  # infinite range ends are searched up to this magnitude


@dataclass(frozen=True)
class Box:
    """One free tensor: its shape, dtype, range and starting value."""

    name: str
    role: str
    shape: tuple[int, ...]
    elem_type: int
    low: float
    high: float
    initial: np.ndarray | None  # initializer value, None for graph inputs

    @property
    def differentiable(self) -> bool:
        return is_float(self.elem_type) and self.high > self.low


@dataclass(frozen=True)
class Problem:
    """Everything the search needs for one target node."""

    graph: Graph  # pruned to the target's ancestors
    full_graph: Graph
    node: Node
    boxes: tuple[Box, ...]
    spec: RangeSpec


def make_problem(analysis: Analysis, node_name: str) -> Problem:
    """Collect the free tensors of ``analysis`` and prune its graph to ``node_name``'s ancestors."""
    graph = analysis.graph
    node = next(n for n in graph.nodes if n.name == node_name)
    boxes = []
    pruned = prune(graph, node)
    for a in analysis.assumptions:
        if a.low is None:
            continue
        info = graph.info(a.tensor)
        if info is not None and (info.sequence or info.optional):
            _refuse_sequence(pruned, a.tensor)
            continue
        initial = initializer_value(graph, a.tensor) if a.tensor in graph.initializers else None
        shape = tuple(info.shape) if info is not None and info.shape is not None else tuple(np.shape(initial))
        elem_type = info.elem_type if info is not None else graph.initializers[a.tensor].data_type
        low, high = finite_range(a.low, a.high, elem_type)  # an open end: the type's largest value (float16's)
        low, high = max(low, -SEARCH_LIMIT), min(high, SEARCH_LIMIT)
        boxes.append(Box(a.tensor, a.role, shape, elem_type, low, high, initial))
    return Problem(pruned, graph, node, tuple(boxes), analysis.spec)


def _refuse_sequence(pruned: Graph, name: str) -> None:
    """A sequence- or optional-typed input that the target depends on cannot be searched (only tensors are)."""
    if any(name in node.reads() for node in pruned.nodes):
        raise RanumError(f"input '{name}' is a sequence of tensors or an optional: confirm searches tensors only")


def prune(graph: Graph, target: Node) -> Graph:
    """The graph restricted to the nodes that ``target`` depends on (target included)."""
    producers = {out: n for n in graph.nodes for out in n.outputs if out}
    needed: set[str] = set()
    stack = [target]
    keep: set[str] = set()
    while stack:
        node = stack.pop()
        if node.name in keep:
            continue
        keep.add(node.name)
        for name in node.reads():  # subgraphs' reads of this scope too (If branches, Loop bodies)
            if name and name not in needed:
                needed.add(name)
                if name in producers:
                    stack.append(producers[name])
    nodes = tuple(n for n in graph.nodes if n.name in keep)
    return replace(graph, nodes=nodes)


def to_tensor(value: np.ndarray, elem_type: int) -> torch.Tensor:
    """A numpy value as a torch tensor of the element type's dtype."""
    return torch.from_numpy(np.array(value)).to(torch_dtype(elem_type))  # a writable copy


def as_numpy(value: torch.Tensor) -> np.ndarray:
    """A detached copy of a tensor's values as numpy (bfloat16, which numpy lacks, as its exact float32 values:
    to_tensor and the onnxruntime feeds cast them back)."""
    value = value.detach()
    return (value.float() if value.dtype == torch.bfloat16 else value).numpy().copy()


def feeds_of(problem: Problem, values: Mapping[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """Values of free tensors as torch tensors of their element types."""
    boxes = {b.name: b for b in problem.boxes}
    return {name: to_tensor(np.asarray(v), boxes[name].elem_type) for name, v in values.items()}


def node_values(problem: Problem, feeds: Mapping[str, torch.Tensor], registry: Registry = REGISTRY
                ) -> tuple[list[torch.Tensor | None], list[torch.Tensor | None]]:
    """The target node's input and output values in ranum's concrete semantics, for ``feeds`` (``registry``:
    rules whose gradients differ, see :mod:`ranum.confirm._saturation`)."""
    run = run_concrete(problem.graph, feeds, registry)
    node = problem.node
    return ([run.values.get(n) if n else None for n in node.inputs],
            [run.values.get(n) if n else None for n in node.outputs])
