"""Range specifications: the user's assumptions about inputs and weights, and the initial intervals.

Spec shape (file or dict): ``{"inputs": {"x": [0, 1]}, "weights": {"default": [-1, 1] | "exact" |
"derived", "W1": [-2, 2] | "exact"}, "dims": {"batch": 1}}``.

Tensors are classified without looking at names: graph inputs that are not initializers are
*inputs*; floating initializers with more than one element are *weights* (and one-element ones that the
exporter recorded as a parameter), except those holding an
infinity or a magnitude of at least the square root of the dtype's largest finite value (attention masks
and running-maximum seeds such as RWKV's -1e38 that an exporter folded into an initializer: training never
produces those values, and a square of them overflows), those holding integers only, not all equal, one of
them of magnitude 2 or more (counts, sizes and positions an exporter folded: a padded average pooling's
window sizes), and those read only as settings (the caller's
``parameters``, e.g. Resize's scales or quantization scales: see
:func:`ranum.ops.parameter_initializers`); every other initializer is a *constant* and is taken
exactly unless a range names it. A weight that the exporter recorded as untrained (``Graph.export_kinds``:
a tensor constant, or a buffer of distinct values that no BatchNormalization reads as a running statistic)
is a constant too.

Defaults (documented in README): a float input without a range gets [-1, 1], an integer or boolean
input [0, 1] (each with a warning), except an integer input whose values index a table of static size:
``[0, n - 1]`` for the smallest such table (token ids into an embedding; any other value makes the
lookup fail at run time; negative indices, which Gather also takes, need a range). Its values are
followed through copies (Reshape, Unsqueeze, integer Cast...) to the index operand of Gather, or of
onnxruntime's EmbedLayerNormalization. Weights default to a range *derived* from their initial values:
with ``lo, hi`` their min and max and ``r = max(hi - lo, max|w|)``, the range is
``[lo - r, hi + r]``, kept non-negative (non-positive) when every initial value is; an all-zero
weight gets [-1, 1]. Every range is rounded outward to the tensor's dtype grid; an unbounded end (null, or
an infinity) is the dtype's largest finite magnitude (values in range are finite). A sequence-typed
graph input may hold any number of tensors (of its declared element shape, when known), each
inside its range. An optional-typed graph input may be empty or hold any value (tensor or sequence,
as above) inside its range. uint64 bounds are held as int64: a range reaching past 2**63 - 1 is taken as
"at least its low end (or 2**63 - 1024), up to any value": an upper bound at int64's maximum stands for
every value up to 2**64 - 1 (see :mod:`ranum.ops.convert`), and the assumption's note says so.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import warnings

import numpy as np
import torch
from onnx import TensorProto

from ranum.domain.dtypes import float_facts, is_bool, is_float, torch_dtype, type_name
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
from ranum.graph.model import Graph, Node

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
    consumers: dict[str, list[Node]] | None = None
    for info in graph.inputs:
        if info.shape is None and not info.sequence and not info.optional:
            raise RangeSpecError(f"graph input '{info.name}' has no known shape")
        if info.name in spec.inputs:
            low, high = spec.inputs[info.name]
            _check_holds_a_value(info.name, low, high, info.elem_type)
            source = "spec"
        else:
            low, high = DEFAULT_FLOAT_INPUT if is_float(info.elem_type) else DEFAULT_INDEX_INPUT
            source = "default"
        indexes = source != "spec" and not is_float(info.elem_type) and not is_bool(info.elem_type)
        if indexes and consumers is None:
            consumers = consumers_of(graph)  # once per graph, for every integer input without a range
        table = smallest_indexed_table(graph, info.name, consumers) if indexes else None
        if table is not None:
            low, high = 0.0, float(table[0] - 1)
        box = _box(low, high, info.shape, info.elem_type)
        held = SequenceValue.bounded(0, None, box, info.elem_type) if info.sequence else box
        env[info.name] = OptionalValue.holding(held, may_be_empty=True) if info.optional else held
        reason = f"the rows of '{table[1]}' it indexes" if table is not None else _held_note(high, info.elem_type)
        notes.append(Assumption(info.name, "input", low, high, source, reason=reason))
    statistics = running_statistics(graph) if graph.export_kinds else frozenset()
    fed = _feedable_initializers(graph)
    for name, proto in graph.initializers.items():
        setting = name in parameters and name not in spec.weights
        kind = graph.export_kinds.get(name) if name not in statistics and name not in spec.weights else None
        iv, note = _initializer(name, initializer_value(graph, name), proto.data_type, spec, setting, kind)
        env[name] = iv
        if name in fed and not note.reason:
            note = dataclasses.replace(note, reason=FEEDABLE_REASON)
        notes.append(note)
    return env, notes


def _feedable_initializers(graph: Graph) -> frozenset[str]:
    """Initializers the model also lists as graph inputs from IR version 4 on, where onnxruntime takes a feed
    for them instead (before, every initializer was listed, and a feed is refused)."""
    model = graph.proto
    if model is None or model.ir_version < 4:
        return frozenset()
    return frozenset(value.name for value in model.graph.input if value.name in graph.initializers)


# operators whose first output holds values of their first input (index values reach a lookup unchanged)
_COPIES = frozenset({"Identity", "Reshape", "Squeeze", "Unsqueeze", "Flatten", "Expand", "Transpose", "Cast"})
# onnxruntime's EmbedLayerNormalization: index operand -> the table it indexes
_EMBEDDING_TABLES = {0: 2, 1: 4, 8: 3}


def consumers_of(graph: Graph) -> dict[str, list[Node]]:
    """Tensor name -> the nodes of ``graph`` that read it."""
    consumers: dict[str, list[Node]] = {}
    for node in graph.nodes:
        for operand in node.inputs:
            consumers.setdefault(operand, []).append(node)
    return consumers


def smallest_indexed_table(graph: Graph, name: str, consumers: dict[str, list[Node]]) -> tuple[int, str] | None:
    """The size and name of the smallest table of static size whose rows tensor ``name``'s values
    select (through copies of them; ``consumers``: see :func:`consumers_of`), or None."""
    best: tuple[int, str] | None = None
    pending, seen = [name], {name}
    while pending:
        current = pending.pop()
        for node in consumers.get(current, []):
            for table in _tables_indexed(node, current):
                size = _axis_size(graph, *table)
                if size is not None and (best is None or size < best[0]):
                    best = (size, table[0])
            if _copies_values(node, current) and node.outputs[0] not in seen:
                seen.add(node.outputs[0])
                pending.append(node.outputs[0])
    return best


def _copies_values(node: Node, operand: str) -> bool:
    if node.op_type not in _COPIES or node.domain not in ("", "ai.onnx") or node.inputs[0] != operand:
        return False
    return node.op_type != "Cast" or not (is_float(int(node.attributes.get("to", 0)))
                                          or is_bool(int(node.attributes.get("to", 0))))


def _tables_indexed(node: Node, operand: str) -> list[tuple[str, int]]:
    """(table, axis) pairs whose entries ``operand`` selects in ``node``."""
    if node.op_type == "Gather" and node.domain in ("", "ai.onnx") and node.inputs[1:2] == (operand,):
        return [(node.inputs[0], int(node.attributes.get("axis", 0)))]
    if node.op_type == "EmbedLayerNormalization" and node.domain == "com.microsoft":
        return [(node.inputs[table], 0) for index, table in _EMBEDDING_TABLES.items()
                if index < len(node.inputs) and table < len(node.inputs) and node.inputs[index] == operand
                and node.inputs[table]]
    return []


def _axis_size(graph: Graph, table: str, axis: int) -> int | None:
    proto = graph.initializers.get(table)
    info = graph.info(table)
    shape = tuple(proto.dims) if proto is not None else (info.shape if info is not None else None)
    if not shape or not -len(shape) <= axis < len(shape):
        return None
    size = shape[axis]
    return int(size) if isinstance(size, int) and size > 0 else None


def _initializer(name: str, value: np.ndarray, elem_type: int, spec: RangeSpec, setting: bool = False,
                 export_kind: str | None = None) -> tuple[Interval, Assumption]:
    """``value`` may be a read-only view of the model's bytes: it is only read, or copied once;
    ``export_kind``: what the exporter recorded of it (see ``Graph.export_kinds``)."""
    shape = tuple(value.shape)
    # one value is a constant (an epsilon, a factor), unless the exporter says it is a parameter (a temperature)
    several = _count(value) > 1 or (export_kind == "PARAMETER" and _count(value) == 1)
    extremes = _extremes(value) if is_float(elem_type) and several and not setting else None
    weight = extremes is not None and _is_weight(extremes, elem_type) and not _folded_counts(value, extremes)
    untrained = weight and _untrained(export_kind, extremes)
    if name in spec.inputs:
        low, high = spec.inputs[name]
        _check_holds_a_value(name, low, high, elem_type)
        role = "weight" if weight else "constant"
        return _box(low, high, shape, elem_type), Assumption(name, role, low, high, "spec",
                                                             reason=_held_note(high, elem_type))
    if not weight or untrained:
        nan = is_float(elem_type) and (_holds_nan(value) if extremes is None else math.isnan(extremes[0] + extremes[1]))
        return _point(value, elem_type), Assumption(name, "constant", None, None, "exact", nan,
                                                    UNTRAINED_REASON if untrained else "")
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


UNTRAINED_REASON = "a buffer or tensor constant of the PyTorch module, which training does not change"
FEEDABLE_REASON = "also a graph input, which onnxruntime lets a feed replace"


def _untrained(export_kind: str | None, extremes: tuple[float, float]) -> bool:
    """Whether a tensor the exporter recorded as ``export_kind`` keeps its values through training: a tensor
    the forward code created, or a module buffer that holds distinct values (a normalisation's mean and std,
    a noise schedule, a frequency table). A buffer of one repeated value is taken as a statistic that
    training updates from its starting value (a running mean of zeros, a running variance of ones)."""
    if export_kind == "CONSTANT_TENSOR":
        return True
    return export_kind == "BUFFER" and extremes[0] != extremes[1]


def running_statistics(graph: Graph) -> frozenset[str]:
    """Initializers that a BatchNormalization reads as its running mean or variance: buffers that
    training updates."""
    return frozenset(name for node in graph.all_nodes() if node.op_type == "BatchNormalization"
                     for name in node.inputs[3:5] if name)


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


# the largest float64 below 2**63 (uint64 bounds are held as int64), and the note of a range past it
_HELD_UINT64 = 2.0**63 - 1024
_UINT64_NOTE = ("uint64 bounds are held as int64: a range past 2**63 - 1 is taken as at least min(low, 2**63 - 1024), "
                "up to 2**64 - 1")


def _held_note(high: float, elem_type: int) -> str:
    """The assumption's note where a range cannot be held as given (a uint64 range past int64's maximum)."""
    return _UINT64_NOTE if elem_type == TensorProto.UINT64 and high > _HELD_UINT64 else ""


def _uint64_range(low: float, high: float) -> tuple[float, float]:
    """A uint64 range as int64 bounds: from 0, and past 2**63 - 1 as the saturated top ``[.., int64 max]`` that
    a Cast from uint64 reads as reaching 2**64 - 1; its low end stays below the top (never a point, which
    would be taken as the exact value 2**63 - 1)."""
    low = max(low, 0.0)
    if high <= _HELD_UINT64:
        return low, high
    return min(low, _HELD_UINT64), 2.0**63  # 2**63 is held as int64's maximum


def _check_holds_a_value(name: str, low: float, high: float, elem_type: int) -> None:
    """A range given for ``name`` must hold a value of its type: an integer for an integer tensor (a bool: 0 or
    1), a finite value for a float one.

    Raises:
        RangeSpecError: where it holds none (the analysis would otherwise take another range silently).
    """
    if is_bool(elem_type):
        if low < 0 or high > 1:
            raise RangeSpecError(f"range [{low:g}, {high:g}] for '{name}': a bool tensor's values are 0 and 1")
        low, high = math.ceil(low), math.floor(high)
    elif not is_float(elem_type):
        low, high = math.ceil(low) if math.isfinite(low) else low, math.floor(high) if math.isfinite(high) else high
        if elem_type != TensorProto.UINT64:  # (uint64 ranges past int64 are held apart: see _uint64_range)
            info = torch.iinfo(torch_dtype(elem_type))
            low, high = max(low, info.min), min(high, info.max)
    else:
        largest = float_facts(elem_type).max
        low, high = max(low, -largest), min(high, largest)
    if low > high:
        raise RangeSpecError(f"range for '{name}' holds no value of its type ({type_name(elem_type)})")


def finite_range(low: float, high: float, elem_type: int) -> tuple[float, float]:
    """``[low, high]`` within the finite values of the element type (an unbounded end: its largest)."""
    if elem_type == TensorProto.UINT64:
        return _uint64_range(low, high)
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
    """A float tensor of several values, none of a sentinel's magnitude (a mask or a seed, not a weight):
    at least the square root of the dtype's largest value (1.8e19 for float32, 256 for float16)."""
    sentinel = math.sqrt(float_facts(elem_type).max)
    lo, hi = extremes
    return not (lo <= -sentinel or hi >= sentinel)


def _folded_counts(value: np.ndarray | torch.Tensor, extremes: tuple[float, float]) -> bool:
    """Whether a float tensor holds integers only, not all equal and one of magnitude 2 or more: counts,
    sizes or positions an exporter computed and folded (a padded pooling's window sizes, feature maps'
    heights and widths, position ids), not a learned value (no initialisation gives such a tensor; ones
    and zeros, which a scale or a bias starts from, are all equal, and ternary weights stay below 2)."""
    lo, hi = extremes
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo == hi or max(-lo, hi) < 2:
        return False
    try:
        flat = _torch_view(value).reshape(-1)
    except (TypeError, RuntimeError):  # a dtype torch cannot view
        return False
    if not float(flat[0]).is_integer():  # a learned tensor's first value already tells (in one read)
        return False
    return bool(torch.equal(flat, flat.round()))


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
