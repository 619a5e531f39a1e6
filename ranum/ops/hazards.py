"""Hazards: the invalid inputs of an operator, declared once and read by detect, confirm and fix.

A hazard knows its invalid region, how to check an abstract operand against it (possible / certain),
which concrete elements trigger it, and a differentiable distance to the region (<= 0 inside), so
that test generation and fixing can descend toward or away from it. Thresholds come from the
operand's dtype (``torch.finfo``), never from literals.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from onnx import TensorProto
from torch import Tensor

from ranum.domain.dtypes import FloatFacts, float_facts, int_range, is_float
from ranum.domain.interval import Interval, align, broadcast_shape
from ranum.ops._regions import Clamp, Region, number_text

__all__ = [
    "Clamp",
    "ConstantNaN",
    "Hazard",
    "HazardHit",
    "InfiniteOperand",
    "InfiniteRow",
    "IntegerDivisionOverflow",
    "OnDerivedOperands",
    "Overflow",
    "OutputOverflow",
    "Region",
    "RegionHazard",
    "above",
    "at_most",
    "below",
    "between",
    "divisor_zero",
    "equal_to",
    "outside",
]

FORWARD = "forward"
GRADIENT = "gradient"


@dataclass(frozen=True)
class HazardHit:
    """Result of an abstract check: the operand may (or must) take an invalid value."""

    certain: bool
    low: float
    high: float


class Hazard(ABC):
    """One way an operator can produce NaN or Inf (forward) or an infinite/NaN gradient."""

    name: str
    description: str
    kind: str = FORWARD
    operand: int = 0

    def operand_name(self, inputs: Sequence[str], outputs: Sequence[str]) -> str:
        """The tensor this hazard inspects."""
        return inputs[self.operand] if self.operand < len(inputs) else ""

    @abstractmethod
    def check(self, inputs: Sequence[Interval | None], outputs: Sequence[Interval | None]) -> HazardHit | None:
        """Abstract check; None when no invalid value is reachable."""

    @abstractmethod
    def triggered(self, inputs: Sequence[Tensor | None], outputs: Sequence[Tensor | None]) -> Tensor:
        """Concrete check: a boolean tensor, True where the hazard fires."""

    @abstractmethod
    def distance(self, inputs: Sequence[Tensor | None], outputs: Sequence[Tensor | None]) -> Tensor:
        """Differentiable distance to the invalid region, element-wise; <= 0 where it fires."""

    @abstractmethod
    def invalid_text(self, elem_type: int) -> str:
        """The invalid region in words or interval notation."""

    def signed_gap(self, inputs: Sequence[Tensor | None], outputs: Sequence[Tensor | None]) -> Tensor | None:
        """For a hazard whose invalid region is one value (a divisor of 0, atanh at 1): the operand minus
        that value, element-wise and differentiable; None for any other hazard. Its sign tells on which
        side of the value an element lies, so that a search can bracket the value and bisect."""
        return None

    def violation(self, inputs: Sequence[Interval | None], outputs: Sequence[Interval | None]) -> Tensor | None:
        """Differentiable measure of how far the abstract operand reaches into the invalid region.

        0 when the hazard is excluded; None when this hazard offers no such measure.
        """
        return None

    def containment_gap(self, inputs: Sequence[Interval | None], outputs: Sequence[Interval | None]) -> Tensor | None:
        """Differentiable distance from "some block lies wholly in the invalid region" (0 when one does).

        Drives the search for a robust inducing box; None when this hazard offers no such measure.
        """
        return None

    def repair(self, operand: Interval, inputs: Sequence[Interval | None] = ()) -> Clamp | None:
        """The tightest clip of the operand that excludes the invalid region (None if no clip can).

        ``inputs`` are all the node's operand intervals, for repairs that depend on the others.
        """
        return None

    def repair_operand(self) -> int | None:
        """Index of the node input that ``repair`` clips (None: the hazard declares no such clip)."""
        return self.operand if self.operand >= 0 else None


class OnDerivedOperands(Hazard):
    """The hazard ``inner`` of a step inside a fused operator, checked on the operands that the
    operator derives from its inputs (the sum a fused normalization normalizes, the projected Q, K, V
    of a fused attention). Subclasses give ``inner``, the derived operands' bounds and values, and
    what the description adds; no single input's clip excludes the invalid region."""

    inner: Hazard
    suffix: str = ""

    @abstractmethod
    def derived_bounds(self, inputs: Sequence[Interval | None]) -> list[Interval | None] | None:
        """Bounds of the derived operands (None: they cannot be bounded here, nothing is reported)."""

    @abstractmethod
    def derived_values(self, inputs: Sequence[Tensor | None]) -> list[Tensor | None]:
        """The derived operands of concrete inputs."""

    @property
    def name(self) -> str:  # type: ignore[override]
        return self.inner.name

    @property
    def description(self) -> str:  # type: ignore[override]
        return self.inner.description + self.suffix

    @property
    def kind(self) -> str:  # type: ignore[override]
        return self.inner.kind

    def check(self, inputs, outputs):
        derived = self.derived_bounds(inputs)
        return None if derived is None else self.inner.check(derived, outputs)

    def triggered(self, inputs, outputs):
        return self.inner.triggered(self.derived_values(inputs), outputs)

    def distance(self, inputs, outputs):
        return self.inner.distance(self.derived_values(inputs), outputs)

    def signed_gap(self, inputs, outputs):
        return self.inner.signed_gap(self.derived_values(inputs), outputs)

    def invalid_text(self, elem_type):
        return self.inner.invalid_text(elem_type)

    def repair_operand(self) -> int | None:
        return None


Threshold = float | Callable[[FloatFacts], float]


def _resolve(value: Threshold, elem_type: int) -> float:
    return value(float_facts(elem_type)) if callable(value) else float(value)


@dataclass(frozen=True)
class RegionHazard(Hazard):
    """The operand must stay out of one real interval whose ends may depend on the dtype."""

    name: str
    description: str
    low: Threshold
    high: Threshold
    low_closed: bool = True
    high_closed: bool = True
    kind: str = FORWARD
    operand: int = 0

    def region(self, elem_type: int) -> Region:
        return Region(_resolve(self.low, elem_type), _resolve(self.high, elem_type), self.low_closed, self.high_closed)

    def check(self, inputs, outputs):
        iv = inputs[self.operand] if self.operand < len(inputs) else None
        if iv is None:
            return None
        region = self.region(iv.elem_type)
        lo, hi = iv.lower.to(torch.float64), iv.upper.to(torch.float64)
        if lo.numel() == 0:
            return None
        if not bool(region.meets(lo, hi).any()):
            return None
        return HazardHit(bool(region.holds(lo, hi).all()), float(lo.min()), float(hi.max()))

    def triggered(self, inputs, outputs):
        x = inputs[self.operand]
        region = self.region(_elem_type_of(x))
        xd = x.to(torch.float64)
        return region.meets(xd, xd)

    def distance(self, inputs, outputs):
        x = inputs[self.operand]
        return self.region(_elem_type_of(x)).distance(x)

    def signed_gap(self, inputs, outputs):
        x = inputs[self.operand]
        region = self.region(_elem_type_of(x))
        if region.low != region.high or not (region.low_closed and region.high_closed):
            return None
        return x.to(torch.float64) - region.low

    def invalid_text(self, elem_type):
        return self.region(elem_type).text()

    def violation(self, inputs, outputs):
        iv = inputs[self.operand] if self.operand < len(inputs) else None
        if iv is None or not is_float(iv.elem_type):
            return None
        region = self.region(iv.elem_type)
        margin = _margin(region, iv.elem_type)
        lo, hi = iv.lower, iv.upper
        if math.isinf(region.low):
            return torch.relu(region.high + margin - lo).sum()
        if math.isinf(region.high):
            return torch.relu(hi - region.low + margin).sum()
        escape_up = torch.relu(region.high + margin - lo)
        escape_down = torch.relu(hi - region.low + margin)
        return torch.minimum(escape_up, escape_down).sum()

    def containment_gap(self, inputs, outputs):
        iv = inputs[self.operand] if self.operand < len(inputs) else None
        if iv is None or not is_float(iv.elem_type) or iv.numblocks == 0:
            return None
        region = self.region(iv.elem_type)
        gap = torch.zeros_like(iv.lower)
        if math.isfinite(region.high):
            gap = gap + torch.relu(iv.upper - region.high)
        if math.isfinite(region.low):
            gap = gap + torch.relu(region.low - iv.lower)
        return gap.min()

    def repair(self, operand, inputs=()):
        region = self.region(operand.elem_type)
        if not is_float(operand.elem_type):
            return _integer_repair(region, operand)
        margin = _margin(region, operand.elem_type)
        if math.isinf(region.low):
            return Clamp(region.high + (margin if region.high_closed else 0.0), None)
        if math.isinf(region.high):
            return Clamp(None, region.low - margin)
        above, below = Clamp(region.high + margin, None), Clamp(None, region.low - margin)
        kept_above = operand.max() - above.min
        kept_below = below.max - operand.min()
        return above if kept_above >= kept_below else below


def _integer_repair(region: Region, operand: Interval) -> Clamp | None:
    """The clip of an integer operand to the nearest integers outside the region, on the side that keeps
    more of its range (an integer divisor in [-3, 3] to [1, 3])."""
    above = None if math.isinf(region.high) else \
        Clamp(math.floor(region.high) + 1 if region.high_closed else math.ceil(region.high), None)
    below = None if math.isinf(region.low) else \
        Clamp(None, math.ceil(region.low) - 1 if region.low_closed else math.floor(region.low))
    if above is None or below is None:
        return above or below
    return above if operand.max() - above.min >= below.max - operand.min() else below


def _margin(region: Region, elem_type: int) -> float:
    """Distance kept from a region's end: a few ulps, and at least the smallest normal number."""
    facts = float_facts(elem_type)
    ends = [abs(v) for v in (region.low, region.high) if math.isfinite(v)]
    return max(max(ends, default=0.0) * 8 * facts.eps, facts.tiny)


def _elem_type_of(x: Tensor) -> int:
    from ranum.domain.dtypes import elem_type_of

    return elem_type_of(x.dtype) if x.dtype in (torch.float16, torch.bfloat16, torch.float32, torch.float64) \
        else elem_type_of(torch.float32)


def at_most(limit: Threshold, description: str, *, name: str, operand: int = 0, kind: str = FORWARD) -> RegionHazard:
    """Invalid when operand <= limit."""
    return RegionHazard(name, description, -math.inf, limit, False, True, kind, operand)


def below(limit: Threshold, description: str, *, name: str, operand: int = 0, kind: str = FORWARD) -> RegionHazard:
    """Invalid when operand < limit."""
    return RegionHazard(name, description, -math.inf, limit, False, False, kind, operand)


def above(limit: Threshold, description: str, *, name: str, operand: int = 0, kind: str = FORWARD) -> RegionHazard:
    """Invalid when operand > limit."""
    return RegionHazard(name, description, limit, math.inf, False, False, kind, operand)


def equal_to(value: Threshold, description: str, *, name: str, operand: int = 0, kind: str = FORWARD) -> RegionHazard:
    """Invalid when operand == value."""
    return RegionHazard(name, description, value, value, True, True, kind, operand)


def between(low: Threshold, high: Threshold, description: str, *, name: str, low_closed: bool = True,
            high_closed: bool = True, operand: int = 0, kind: str = FORWARD) -> RegionHazard:
    """Invalid when operand lies in the given interval."""
    return RegionHazard(name, description, low, high, low_closed, high_closed, kind, operand)


@dataclass(frozen=True)
class DivisorHazard(RegionHazard):
    """A divisor that can be 0; its repair keeps it far enough from 0 that the quotient stays finite."""

    numerator: int | None = None

    def repair(self, operand, inputs=()):
        clamp = super().repair(operand, inputs)
        numerator = inputs[self.numerator] if self.numerator is not None and self.numerator < len(inputs) else None
        largest = 1.0 if numerator is None else max(abs(numerator.min()), abs(numerator.max()))
        if clamp is None or not math.isfinite(largest) or not is_float(operand.elem_type):
            return clamp  # an integer quotient is at most the dividend in magnitude
        gap = 2.0 * largest / float_facts(operand.elem_type).max
        if clamp.min is not None:
            return Clamp(max(clamp.min, gap), clamp.max)
        return Clamp(clamp.min, min(clamp.max, -gap))


def divisor_zero(description: str, *, name: str = "division-by-zero", operand: int = 0,
                 numerator: int | None = None) -> DivisorHazard:
    """Invalid when the divisor is 0 (``numerator``: index of the dividend, None for 1)."""
    return DivisorHazard(name, description, 0.0, 0.0, True, True, FORWARD, operand, numerator)


# integer types whose division onnxruntime runs as the CPU's own signed division, which traps on an overflow;
# int8 and int16 are divided as int (measured: -128 / -1 gives -128, without a trap)
_TRAPPING_DIVISION = {TensorProto.INT32: torch.int32, TensorProto.INT64: torch.int64}


@dataclass(frozen=True)
class IntegerDivisionOverflow(Hazard):
    """A dividend at its type's minimum divided by -1 (int32, int64): the quotient, 2**31 or 2**63, is no value
    of the type, and onnxruntime's Div kernel does not return: the CPU's division instruction raises an
    arithmetic exception (SIGFPE), which ends the whole process (measured, onnxruntime 1.32 on x86-64). The
    divisor is operand ``divisor``; no clip of one operand is declared."""

    name: str = "integer-division-overflow"
    description: str = "integer minimum divided by -1: onnxruntime stops with an arithmetic exception (SIGFPE)"
    kind: str = FORWARD
    operand: int = 0
    divisor: int = 1

    @staticmethod
    def fires(dividend: Tensor, divisor: Tensor) -> Tensor:
        """Where concrete operands (broadcast) overflow: the dividend is its dtype's minimum and the divisor -1."""
        if dividend.dtype not in _TRAPPING_DIVISION.values():
            return torch.zeros(torch.broadcast_shapes(dividend.shape, divisor.shape), dtype=torch.bool)
        return (dividend == torch.iinfo(dividend.dtype).min) & (divisor == -1)

    def check(self, inputs, outputs):
        a, b = _pair(inputs, self.operand, self.divisor)
        if a is None or b is None or a.elem_type not in _TRAPPING_DIVISION or not a.numblocks or not b.numblocks:
            return None
        smallest = int_range(a.elem_type)[0]
        (al, ah), (bl, bh) = _aligned(a, b)
        if not bool(((al == smallest) & (bl <= -1) & (bh >= -1)).any()):
            return None
        certain = bool(((ah == smallest) & (bl == -1) & (bh == -1)).all())
        return HazardHit(certain, float(a.lower.min()), float(a.upper.max()))

    def triggered(self, inputs, outputs):
        return self.fires(inputs[self.operand], inputs[self.divisor])

    def distance(self, inputs, outputs):
        """max(a - min, |b + 1|) in float64: 0 exactly where the hazard fires (never for other types)."""
        a, b = inputs[self.operand], inputs[self.divisor]
        if a.dtype not in _TRAPPING_DIVISION.values():
            return torch.full(torch.broadcast_shapes(a.shape, b.shape), math.inf, dtype=torch.float64)
        smallest = float(torch.iinfo(a.dtype).min)
        return torch.maximum(a.to(torch.float64) - smallest, (b.to(torch.float64) + 1.0).abs())

    def invalid_text(self, elem_type):
        limits = int_range(elem_type)
        return f"dividend {limits[0] if limits else 'at its minimum'} with divisor -1"


def _pair(inputs: Sequence[Interval | None], first: int, second: int) -> tuple[Interval | None, Interval | None]:
    return tuple(inputs[i] if i < len(inputs) else None for i in (first, second))


def _aligned(a: Interval, b: Interval) -> list[tuple[Tensor, Tensor]]:
    """The bounds of two operands on one block grid (whole ranges when a shape is unknown)."""
    shape = broadcast_shape(a.shape, b.shape)
    if shape is None:
        return [(iv.lower.min(), iv.upper.max()) for iv in (a, b)]
    return align([a, b], shape)[1]


@dataclass(frozen=True)
class OutsideHazard(Hazard):
    """Invalid when the operand leaves [low, high] (e.g. Asin outside [-1, 1])."""

    name: str
    description: str
    low: float
    high: float
    kind: str = FORWARD
    operand: int = 0

    def check(self, inputs, outputs):
        iv = inputs[self.operand]
        if iv is None or iv.numblocks == 0:
            return None
        lo, hi = iv.lower.to(torch.float64), iv.upper.to(torch.float64)
        bad = (lo < self.low) | (hi > self.high)
        if not bool(bad.any()):
            return None
        certain = bool(((hi < self.low) | (lo > self.high)).all())
        return HazardHit(certain, float(lo.min()), float(hi.max()))

    def triggered(self, inputs, outputs):
        x = inputs[self.operand]
        return (x < self.low) | (x > self.high)

    def distance(self, inputs, outputs):
        x = inputs[self.operand]
        middle = (self.low + self.high) / 2
        return (self.high - self.low) / 2 - (x - middle).abs()

    def invalid_text(self, elem_type):
        return f"outside [{number_text(self.low)}, {number_text(self.high)}]"

    def violation(self, inputs, outputs):
        iv = inputs[self.operand]
        if iv is None:
            return None
        return (torch.relu(self.low - iv.lower) + torch.relu(iv.upper - self.high)).sum()

    def repair(self, operand, inputs=()):
        return Clamp(self.low, self.high)


def outside(low: float, high: float, description: str, *, name: str, operand: int = 0,
            kind: str = FORWARD) -> OutsideHazard:
    """Invalid when operand < low or operand > high."""
    return OutsideHazard(name, description, low, high, kind, operand)


@dataclass(frozen=True)
class ConstantNaN(Hazard):
    """The operand is a constant of the model (an initializer or a Constant node) that holds NaN: an exporter
    folded an invalid computation into it (``0 * inf``, ``0 ** -0.5``). Every run reads it, so the finding is
    certain. It is found from the constants themselves (intervals do not hold NaN), not by :meth:`check`;
    no clip of the operand removes it."""

    name: str = "nan-constant"
    description: str = "reads a constant that holds NaN (folded into the model, e.g. 0 * inf at export)"
    kind: str = FORWARD
    operand: int = 0

    def check(self, inputs, outputs):
        return None

    def triggered(self, inputs, outputs):
        """Where the NaN is read into a result: a Where that does not select it leaves its result clean."""
        read = torch.isnan(inputs[self.operand]).any()
        results = [o for o in outputs if isinstance(o, Tensor) and o.is_floating_point()]
        return read & torch.stack([torch.isnan(o).any() for o in results]).any() if results else read

    def distance(self, inputs, outputs):
        return torch.zeros(())

    def invalid_text(self, elem_type):
        return "NaN"


@dataclass(frozen=True)
class InfiniteOperand(Hazard):
    """Invalid when the operand is +inf or -inf (e.g. LogSoftmax turns it into NaN)."""

    name: str = "infinite-input"
    description: str = "an infinite input turns into NaN"
    kind: str = FORWARD
    operand: int = 0

    def check(self, inputs, outputs):
        iv = inputs[self.operand]
        if iv is None or iv.numblocks == 0 or not is_float(iv.elem_type):
            return None
        lo, hi = iv.lower, iv.upper
        if not bool((torch.isinf(lo) | torch.isinf(hi)).any()):
            return None
        certain = bool((torch.isinf(lo) & (lo == hi)).all())
        return HazardHit(certain, float(lo.min()), float(hi.max()))

    def triggered(self, inputs, outputs):
        return torch.isinf(inputs[self.operand])

    def distance(self, inputs, outputs):
        x = inputs[self.operand]
        return float_facts(_elem_type_of(x)).max - x.abs()

    def invalid_text(self, elem_type):
        return "{-inf, +inf}"

    def repair(self, operand, inputs=()):
        limit = float_facts(operand.elem_type).max
        return Clamp(-limit, limit)


@dataclass(frozen=True)
class InfiniteRow(Hazard):
    """Invalid when a row holds +inf or holds only -inf: subtracting the row maximum (softmax,
    log-softmax) then gives inf - inf. A -inf beside a finite value is harmless (its exp is 0).

    Rows run along ``axis``; with ``to_end``, along every axis from ``axis`` on (the 2-D coercion of
    opsets before 13)."""

    name: str = "infinite-row"
    description: str = "a row holding +inf, or only -inf, turns into NaN"
    kind: str = FORWARD
    operand: int = 0
    axis: int = -1
    to_end: bool = False
    # every row keeps a finite element, by how the operand was computed (detection sets it: a row masked
    # below one of its own top-k values); then only +inf is invalid
    rows_keep_finite: bool = False

    def _row_axes(self, rank: int) -> tuple[int, ...]:
        axis = self.axis % rank if rank else 0
        return tuple(range(axis, rank)) if self.to_end else (axis,)

    def check(self, inputs, outputs):
        iv = inputs[self.operand]
        if iv is None or iv.numblocks == 0 or not is_float(iv.elem_type) or not iv.shape:
            return None
        lo, hi = iv.lower, iv.upper
        axes = self._row_axes(len(iv.shape))
        all_minus = not self.rows_keep_finite and bool((lo == -torch.inf).all(dim=axes).any())
        if not (bool((hi == torch.inf).any()) or all_minus):
            return None
        certain = bool((lo == torch.inf).any()) or (not self.rows_keep_finite
                                                     and bool((hi == -torch.inf).all(dim=axes).any()))
        return HazardHit(certain, float(lo.min()), float(hi.max()))

    def triggered(self, inputs, outputs):
        x = inputs[self.operand]
        if x.dim() == 0:
            return torch.isinf(x)
        only_minus = torch.isneginf(x).all(dim=self._row_axes(x.dim()), keepdim=True)
        return torch.isposinf(x) | only_minus.expand_as(x)

    def distance(self, inputs, outputs):
        x = inputs[self.operand]
        limit = float_facts(_elem_type_of(x)).max
        if x.dim() == 0:
            return limit - x.abs()
        row_max = x.amax(dim=self._row_axes(x.dim()), keepdim=True)
        return torch.minimum(limit - x, row_max + limit)

    def invalid_text(self, elem_type):
        return "+inf, or a row of only -inf"

    def repair(self, operand, inputs=()):
        limit = float_facts(operand.elem_type).max
        return Clamp(-limit, limit)


@dataclass(frozen=True)
class Overflow(Hazard):
    """The result leaves the finite range of its dtype although every operand is finite (or whatever the
    operands, without ``finite_operands``: a loss made infinite by an infinite score it selects)."""

    name: str = "overflow"
    description: str = "result can overflow to infinity"
    kind: str = FORWARD
    operand: int = -1
    finite_operands: bool = True

    def operand_name(self, inputs, outputs):
        return outputs[0] if outputs else ""

    def check(self, inputs, outputs):
        out = outputs[0] if outputs else None
        if out is None or not is_float(out.elem_type) or out.numblocks == 0:
            return None
        lo, hi = out.lower, out.upper
        # bounds hold no NaN and lo <= hi: an infinite bound anywhere shows in these two reductions
        lowest, highest = float(lo.min()), float(hi.max())
        if lowest != -math.inf and highest != math.inf:
            return None
        for iv in inputs if self.finite_operands else ():
            if iv is not None and is_float(iv.elem_type) and not iv.is_finite:
                return None
        certain = bool((torch.isinf(lo) & (lo == hi)).all())
        return HazardHit(certain, lowest, highest)

    def triggered(self, inputs, outputs):
        finite_inputs = not self.finite_operands or all(
            bool(torch.isfinite(x).all()) for x in inputs if x is not None and x.is_floating_point())
        return torch.isinf(outputs[0]) & finite_inputs

    def distance(self, inputs, outputs):
        y = outputs[0]
        return float_facts(_elem_type_of(y)).max - y.abs()

    def invalid_text(self, elem_type):
        return f"|result| > {number_text(float_facts(elem_type).max)}"



@dataclass(frozen=True)
class OutputOverflow(Overflow):
    """Overflow read on output ``output`` of a node with several (a quantization scale, a recurrent state)."""

    output: int = 1

    def operand_name(self, inputs, outputs):
        return outputs[self.output] if len(outputs) > self.output else ""

    def _chosen(self, outputs):
        return list(outputs[self.output:self.output + 1])

    def check(self, inputs, outputs):
        return super().check(inputs, self._chosen(outputs))

    def triggered(self, inputs, outputs):
        return super().triggered(inputs, self._chosen(outputs))

    def distance(self, inputs, outputs):
        return super().distance(inputs, self._chosen(outputs))
