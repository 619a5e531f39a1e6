"""Range specifications: the user's assumptions about inputs and weights, and the initial intervals.

Spec shape (file or dict): ``{"inputs": {"x": [0, 1]}, "weights": {"default": [-1, 1] | "exact" |
"derived", "W1": [-2, 2] | "exact"}, "dims": {"batch": 1}}``.

Tensors are classified without looking at names: graph inputs that are not initializers are
*inputs*; floating initializers with more than one element are *weights*, except those holding an
infinity or the dtype's largest finite magnitude (attention masks an exporter folded into an
initializer: training never produces those values) and those read only as settings (the caller's
``parameters``, e.g. Resize's scales or quantization scales: see
:func:`ranum.ops.parameter_initializers`); every other initializer is a *constant* and is taken
exactly unless a range names it.

Defaults (documented in README): a float input without a range gets [-1, 1], an integer or boolean
input [0, 1] (each with a warning). Weights default to a range *derived* from their initial values:
with ``lo, hi`` their min and max and ``r = max(hi - lo, max|w|)``, the range is
``[lo - r, hi + r]``, kept non-negative (non-positive) when every initial value is; an all-zero
weight gets [-1, 1]. Every range is rounded outward to the tensor's dtype grid; an unbounded end (null, or
an infinity) is the dtype's largest finite magnitude (values in range are finite). A sequence-typed
graph input may hold any number of tensors (of its declared element shape, when known), each
inside its range. An optional-typed graph input may be empty or hold any value (tensor or sequence,
as above) inside its range.
"""

from __future__ import annotations

import difflib
import math
import warnings

import numpy as np
import torch

from ranum.domain.dtypes import float_facts, is_float, torch_dtype
from ranum.domain.interval import Interval, has_nan
from ranum.domain.optional import OptionalValue
from ranum.domain.sequence import SequenceValue, Value
from ranum.domain.spec import (  # noqa: F401  (re-exported: the spec is part of this module's interface)
    WEIGHT_MODES,
    Assumption,
    Bounds,
    RangeSpec,
    parse_range_text,
    parse_spec,
    parse_weights_mode,
)
from ranum.errors import RangeSpecError
from ranum.graph.loader import initializer_value
from ranum.graph.model import Graph

__all__ = [
    "Assumption",
    "RangeSpec",
    "DEFAULT_FLOAT_INPUT",
    "DEFAULT_INDEX_INPUT",
    "ZERO_WEIGHT_BOX",
    "finite_range",
    "initial_intervals",
    "parse_range_text",
    "parse_spec",
]

DEFAULT_FLOAT_INPUT = (-1.0, 1.0)
DEFAULT_INDEX_INPUT = (0.0, 1.0)
ZERO_WEIGHT_BOX = (-1.0, 1.0)


def _suggestion(name: str, inputs: list[str], initializers: list[str]) -> str:
    """``; did you mean ...?`` with the closest names (a converter's ``x:0`` for ``x``), or the inputs."""
    close = difflib.get_close_matches(name, inputs + initializers, n=3, cutoff=0.6)
    close = [c for c in inputs + initializers if c.split(":")[0] == name.split(":")[0]][:1] or close
    if close:
        return "; did you mean " + " or ".join(f"'{c}'" for c in close) + "?"
    return f" (the graph inputs: {', '.join(repr(i) for i in inputs[:8])}{', ...' if len(inputs) > 8 else ''})"


def initial_intervals(graph: Graph, spec: RangeSpec, parameters: frozenset[str] = frozenset()
                      ) -> tuple[dict[str, Value], list[Assumption]]:
    """Intervals of every graph input and initializer under ``spec``, and the assumptions made;
    ``parameters``: initializers that hold settings, constants unless the spec names them."""
    names = {info.name for info in graph.inputs} | set(graph.initializers)
    for name in list(spec.inputs) + list(spec.weights):
        if name not in names:
            raise RangeSpecError(f"range given for '{name}', which is neither a graph input nor an initializer"
                                 + _suggestion(name, [info.name for info in graph.inputs], sorted(graph.initializers)))
    env: dict[str, Value] = {}
    notes: list[Assumption] = []
    for info in graph.inputs:
        if info.shape is None and not info.sequence and not info.optional:
            raise RangeSpecError(f"graph input '{info.name}' has no known shape")
        if info.name in spec.inputs:
            low, high = spec.inputs[info.name]
            source = "spec"
        else:
            low, high = DEFAULT_FLOAT_INPUT if is_float(info.elem_type) else DEFAULT_INDEX_INPUT
            source = "default"
        box = _box(low, high, info.shape, info.elem_type)
        held = SequenceValue.bounded(0, None, box, info.elem_type) if info.sequence else box
        env[info.name] = OptionalValue.holding(held, may_be_empty=True) if info.optional else held
        notes.append(Assumption(info.name, "input", low, high, source))
    for name, proto in graph.initializers.items():
        setting = name in parameters and name not in spec.weights
        iv, note = _initializer(name, initializer_value(graph, name), proto.data_type, spec, setting)
        env[name] = iv
        notes.append(note)
    return env, notes


def _initializer(name: str, value: np.ndarray, elem_type: int, spec: RangeSpec, setting: bool = False
                 ) -> tuple[Interval, Assumption]:
    """``value`` may be a read-only view of the model's bytes: it is only read, or copied once."""
    shape = tuple(value.shape)
    extremes = _extremes(value) if is_float(elem_type) and _count(value) > 1 and not setting else None
    weight = extremes is not None and _is_weight(extremes, elem_type)
    if name in spec.inputs:
        low, high = spec.inputs[name]
        role = "weight" if weight else "constant"
        return _box(low, high, shape, elem_type), Assumption(name, role, low, high, "spec")
    if not weight:
        nan = is_float(elem_type) and (_holds_nan(value) if extremes is None else math.isnan(extremes[0] + extremes[1]))
        return _point(value, elem_type), Assumption(name, "constant", None, None, "exact", nan)
    mode = spec.weights.get(name, spec.weights_default)
    nan = math.isnan(extremes[0]) or math.isnan(extremes[1])  # a NaN weight stays NaN through training
    if mode == "exact":
        finite = math.isfinite(extremes[0]) and math.isfinite(extremes[1])
        return _point(value, elem_type, finite), Assumption(name, "weight", None, None, "exact", nan)
    if mode == "derived":
        low, high = derived_range(value, extremes)
        return _box(low, high, shape, elem_type), Assumption(name, "weight", low, high, "derived", nan)
    low, high = mode
    return _box(low, high, shape, elem_type), Assumption(name, "weight", low, high, "spec")


def _point(value: np.ndarray, elem_type: int, finite: bool | None = None) -> Interval:
    """The exact interval of a value: a finite float tensor keeps its own dtype and storage (no copy)."""
    try:
        source = _torch_view(value)
    except TypeError:  # dtypes torch cannot view (e.g. bfloat16 from ml_dtypes, some unsigned ints)
        source = torch.from_numpy(np.array(value, dtype=np.float64 if is_float(elem_type) else np.int64))
    return Interval.point(source, elem_type, finite)


def _torch_view(value: np.ndarray | torch.Tensor) -> torch.Tensor:
    """A torch tensor sharing ``value``'s memory (a read-only view: only ever read)."""
    if isinstance(value, torch.Tensor):
        return value
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.from_numpy(value)


def _box(low: float, high: float, shape, elem_type: int) -> Interval:
    """One block [low, high], rounded outward to the tensor's dtype grid (a value written as 0.1 is
    stored as the nearest float32, which may lie just outside [0.1, ...]). An unbounded end stands for
    the type's largest finite magnitude: a value in its range is finite, so the first operator that can
    make a large one infinite (x * x for x in [0, +inf)) reports the overflow."""
    low, high = finite_range(low, high, elem_type)
    return Interval.uniform(low, high, shape, elem_type).to_grid()


def finite_range(low: float, high: float, elem_type: int) -> tuple[float, float]:
    """``[low, high]`` within the finite values of the element type (an unbounded end: its largest)."""
    if is_float(elem_type):
        largest = float_facts(elem_type).max
    else:
        try:
            info = torch.iinfo(torch_dtype(elem_type))
        except (TypeError, ValueError):  # bool
            return low, high
        return max(low, float(info.min)), min(high, float(info.max))
    return max(low, -largest), min(high, largest)


def _is_weight(extremes: tuple[float, float], elem_type: int) -> bool:
    """A float tensor of several values, none of them the dtype's extreme (a mask, not a weight)."""
    extreme = float_facts(elem_type).max
    lo, hi = extremes
    return not (lo <= -extreme or hi >= extreme)


def _extremes(value: np.ndarray | torch.Tensor) -> tuple[float, float]:
    """Min and max (NaN if any is NaN) in the tensor's own dtype, in one pass and without a copy."""
    try:
        low, high = torch.aminmax(_torch_view(value))
    except (TypeError, RuntimeError):  # a dtype torch cannot view or reduce
        return float(value.min()), float(value.max())
    return float(low), float(high)


def _holds_nan(value: np.ndarray | torch.Tensor) -> bool:
    """Whether a float tensor holds NaN."""
    try:
        return has_nan(_torch_view(value))
    except (TypeError, RuntimeError):  # a dtype torch cannot view or reduce
        return bool(np.isnan(np.asarray(value, dtype=np.float64)).any())


def _count(value: np.ndarray | torch.Tensor) -> int:
    return int(value.numel()) if isinstance(value, torch.Tensor) else int(value.size)


def derived_range(value: np.ndarray | torch.Tensor, extremes: tuple[float, float] | None = None) -> Bounds:
    """Default range of a weight from its initial values (see module docstring); ``extremes``: their
    min and max when already known."""
    if _count(value) == 0:
        return ZERO_WEIGHT_BOX
    lo, hi = _extremes(value) if extremes is None else extremes  # exact in the tensor's own dtype
    if not (math.isfinite(lo) and math.isfinite(hi)):
        finite = value[torch.isfinite(value) if isinstance(value, torch.Tensor) else np.isfinite(value)]
        if _count(finite) == 0:
            return ZERO_WEIGHT_BOX
        lo, hi = float(finite.min()), float(finite.max())
    spread = max(hi - lo, max(abs(lo), abs(hi)))
    if spread == 0.0:
        return ZERO_WEIGHT_BOX
    low, high = lo - spread, hi + spread
    if lo >= 0:
        low = max(low, 0.0)
    if hi <= 0:
        high = min(high, 0.0)
    return low, high
