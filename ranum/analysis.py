"""The analysis entry point: load a model, set initial intervals, run the abstract interpreter.

:func:`analyze` returns an :class:`Analysis` that answers ``bounds(tensor)`` for every tensor of
the graph (subgraph tensors included, joined over all their evaluations).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ranum.config import AnalysisConfig
from ranum.domain.optional import OptionalValue
from ranum.domain.ranges import Assumption, RangeSpec, initial_intervals, parse_spec
from ranum.domain.sequence import SequenceValue
from ranum.errors import RangeSpecError
from ranum.graph.loader import ModelSource, load_model
from ranum.graph.model import Graph
from ranum.interpret import AbstractRun, run_abstract
from ranum.ops import parameter_initializers

__all__ = ["Analysis", "analyze", "SpecSource"]

SpecSource = RangeSpec | Mapping[str, Any] | str | Path | None


@dataclass(frozen=True)
class Analysis:
    """Result of one abstract interpretation of a model."""

    graph: Graph
    run: AbstractRun
    spec: RangeSpec
    assumptions: tuple[Assumption, ...]
    dims: Mapping[str, int]
    seconds: float
    # seconds per phase: "load" (read, checker, shape inference), "ranges", "interpret"
    phase_seconds: Mapping[str, float] = field(default_factory=dict)

    def bounds(self, tensor: str) -> tuple[np.ndarray, np.ndarray]:
        """Lower and upper bounds of a tensor, as arrays of the tensor's shape (0-d arrays bounding every
        element when the shape is unknown, and for a sequence or an optional: bounds of every element of
        the tensors it may hold; NaN for a sequence or optional that is always empty).

        Raises:
            RangeSpecError: if the graph has no tensor of that name.
        """
        iv = self.run.env.get(tensor)
        if iv is None:
            raise RangeSpecError(f"the graph has no tensor named '{tensor}'")
        if isinstance(iv, (SequenceValue, OptionalValue)):
            return np.array(iv.min()), np.array(iv.max())
        if iv.shape is None:
            return iv.lower.detach().numpy(), iv.upper.detach().numpy()
        lo, hi = iv.full()
        return lo.detach().numpy(), hi.detach().numpy()

    @property
    def unsupported(self) -> Mapping[str, str]:
        """Node name -> why it had no usable rule."""
        return self.run.unsupported


def as_spec(spec: SpecSource) -> RangeSpec:
    """Accept a RangeSpec, a spec dict, a path to a JSON spec, or None."""
    return spec if isinstance(spec, RangeSpec) else parse_spec(spec)


def analyze(model: ModelSource, spec: SpecSource = None, config: AnalysisConfig | None = None) -> Analysis:
    """Run the interval analysis of ``model`` under the range assumptions ``spec``.

    Args:
        model: path to an ONNX file or an ``onnx.ModelProto``.
        spec: range spec (dict, JSON path or RangeSpec); None uses every default.
        config: analysis knobs.

    Returns:
        The :class:`Analysis`, with bounds for every tensor.
    """
    spec = as_spec(spec)
    marks = [time.perf_counter()]
    graph, dims = load_model(model, spec.dims)
    spec = spec.resolved({info.name for info in graph.inputs} | set(graph.initializers))
    marks.append(time.perf_counter())
    initial, notes = initial_intervals(graph, spec, parameter_initializers(graph))
    marks.append(time.perf_counter())
    run = run_abstract(graph, initial, config)
    run.nan_constants.update(note.tensor for note in notes if note.holds_nan)
    marks.append(time.perf_counter())
    phases = {name: marks[i + 1] - marks[i] for i, name in enumerate(("load", "ranges", "interpret"))}
    return Analysis(graph, run, spec, tuple(notes), dims, marks[-1] - marks[0], phases)
