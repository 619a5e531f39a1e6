"""Range specifications as the user gives them (a JSON file or dict, ``--range``, ``--weights``), parsed
and validated without the analysis (no torch): a command line rejects a bad one at once.

Spec shape: ``{"inputs": {"x": [0, 1]}, "weights": {"default": [-1, 1] | "exact" | "derived",
"W1": [-2, 2] | "exact"}, "dims": {"batch": 1}}``; an end given as ``null`` (``--range``: left empty) is
unbounded. :mod:`ranum.domain.ranges` turns a spec into the
initial intervals of a graph.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ranum.errors import RangeSpecError

__all__ = ["Assumption", "Bounds", "RangeSpec", "WEIGHT_MODES", "parse_range_text", "parse_spec", "parse_weights_mode"]

WEIGHT_MODES = ("derived", "exact")

Bounds = tuple[float, float]


@dataclass(frozen=True)
class RangeSpec:
    """Validated range assumptions.

    Attributes:
        inputs: ranges of graph inputs (or any tensor named by ``--range``).
        weights: per-weight ranges or ``"exact"``.
        weights_default: ``"derived"``, ``"exact"`` or one box for every weight.
        dims: values of symbolic dimensions.
    """

    inputs: Mapping[str, Bounds] = field(default_factory=dict)
    weights: Mapping[str, Bounds | str] = field(default_factory=dict)
    weights_default: Bounds | str = "derived"
    dims: Mapping[str, int] = field(default_factory=dict)
    # names given as a TensorFlow op's ("x") for its tensor ("x:0"), or the reverse -> the graph's name
    renamed: Mapping[str, str] = field(default_factory=dict)

    def with_ranges(self, ranges: Mapping[str, Bounds]) -> RangeSpec:
        """Add ``--range`` style overrides (they apply to inputs and initializers alike)."""
        return replace(self, inputs={**self.inputs, **ranges})

    def with_dims(self, dims: Mapping[str, int]) -> RangeSpec:
        """Add values for symbolic dimensions (``--dim``)."""
        return replace(self, dims={**self.dims, **dims})

    def with_weights_default(self, mode: Bounds | str) -> RangeSpec:
        """Replace the global weight mode (``--weights``)."""
        return replace(self, weights_default=mode)

    def resolved(self, names: set[str] | frozenset[str]) -> RangeSpec:
        """The spec with each name the graph lacks replaced by the one tensor it names in TensorFlow's
        convention: ``x`` for ``x:0`` (a converter's name for op ``x``'s first output), ``x:0`` for ``x``;
        others stay (an error names them)."""
        renamed = dict(self.renamed)

        def name_in_graph(name: str) -> str:
            if name in names:
                return name
            other = name[:-2] if name.endswith(":0") else f"{name}:0"
            if other in names:
                renamed[name] = other
                return other
            return name

        inputs = {name_in_graph(k): v for k, v in self.inputs.items()}
        weights = {name_in_graph(k): v for k, v in self.weights.items()}
        return replace(self, inputs=inputs, weights=weights, renamed=renamed)


@dataclass(frozen=True)
class Assumption:
    """What the analysis assumed for one input, weight or constant (printed in the report)."""

    tensor: str
    role: str  # "input" | "weight" | "constant"
    low: float | None
    high: float | None
    source: str  # "spec" | "default" | "derived" | "exact"
    holds_nan: bool = False  # a constant or weight of the model whose values include NaN
    reason: str = ""  # why a default was taken, where it is not the plain one (an index's table)


def parse_spec(spec: Mapping[str, Any] | str | Path | None) -> RangeSpec:
    """Validate a spec dict or read and validate a JSON spec file."""
    if spec is None:
        return RangeSpec()
    if isinstance(spec, (str, Path)):
        spec = _read_json(Path(spec))
    if not isinstance(spec, Mapping):
        raise RangeSpecError("range spec must be a JSON object with 'inputs', 'weights' and 'dims'")
    unknown = set(spec) - {"inputs", "weights", "dims"}
    if unknown:
        raise RangeSpecError(f"range spec has unknown keys: {', '.join(sorted(unknown))}")
    inputs = {str(k): _bounds(v, f"inputs.{k}") for k, v in _section(spec, "inputs").items()}
    weights: dict[str, Bounds | str] = {}
    default: Bounds | str = "derived"
    for key, value in _section(spec, "weights").items():
        parsed = _weight_entry(value, f"weights.{key}")
        if key == "default":
            default = parsed
        else:
            weights[str(key)] = parsed
    dims = {}
    for key, value in _section(spec, "dims").items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise RangeSpecError(f"dims.{key} must be a positive integer, got {value!r}")
        dims[str(key)] = value
    return RangeSpec(inputs, weights, default, dims)


def parse_range_text(text: str) -> tuple[str, Bounds]:
    """Parse ``NAME=LO,HI`` (as given to ``--range``)."""
    name, sep, rest = text.rpartition("=")
    if not sep or not name:
        raise RangeSpecError(f"range '{text}' is not of the form NAME=LO,HI")
    parts = rest.split(",")
    if len(parts) != 2:
        raise RangeSpecError(f"range '{text}' is not of the form NAME=LO,HI")
    try:
        values = [float(p) if p.strip() else None for p in parts]  # an empty end is unbounded
    except ValueError:
        raise RangeSpecError(f"range '{text}': LO and HI must be numbers (or empty: unbounded)") from None
    return name, _bounds(values, name)


def parse_weights_mode(text: str) -> Bounds | str:
    """Parse ``--weights``: ``derived``, ``exact`` or ``LO,HI``."""
    if text in WEIGHT_MODES:
        return text
    parts = text.split(",")
    try:
        return _bounds([float(p) for p in parts], "--weights")
    except ValueError:
        raise RangeSpecError(f"--weights must be 'derived', 'exact' or LO,HI, got '{text}'") from None


def _read_json(path: Path) -> Any:
    if not path.is_file():
        raise RangeSpecError(f"range spec file not found: {path}")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RangeSpecError(f"range spec {path} is not valid JSON: {exc}") from None


def _section(spec: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = spec.get(key, {})
    if not isinstance(value, Mapping):
        raise RangeSpecError(f"'{key}' in the range spec must be an object")
    return value


def _weight_entry(value: Any, where: str) -> Bounds | str:
    if isinstance(value, str):
        if value not in WEIGHT_MODES:
            raise RangeSpecError(f"{where} must be [LO, HI], 'exact' or 'derived', got '{value}'")
        return value
    return _bounds(value, where)


def _bounds(value: Any, where: str) -> Bounds:
    """``[LO, HI]`` as floats; a ``None`` (JSON ``null``) end is unbounded (-inf or +inf), as in RANUM's and
    DEBAR's range tables (``[1, None]`` for a count)."""
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise RangeSpecError(f"{where}: a range must be [LO, HI], got {value!r}")
    ends = (-math.inf if value[0] is None else value[0], math.inf if value[1] is None else value[1])
    if any(isinstance(end, str) and end.strip().lower() in ("none", "null", "") for end in ends):
        raise RangeSpecError(f"{where}: an unbounded end is written null (JSON) or left empty (--range), "
                             f"got {value!r}")
    try:
        low, high = float(ends[0]), float(ends[1])
    except (TypeError, ValueError):
        raise RangeSpecError(f"{where}: LO and HI must be numbers (or null: unbounded), got {value!r}") from None
    if math.isnan(low) or math.isnan(high):
        raise RangeSpecError(f"{where}: a range bound is NaN")
    if low > high:
        raise RangeSpecError(f"{where}: LO ({low:g}) is greater than HI ({high:g})")
    return low, high
