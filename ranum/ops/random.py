"""Random generators: RandomUniform(Like), RandomNormal(Like), Bernoulli, Multinomial.

Every rule is ``deterministic = False``: the interpreter never folds them into constants, even when
their inputs are exact. ``concrete`` draws fresh samples with torch (seeded by the ``seed``
attribute when present); these are valid samples of the distribution, not onnxruntime's.

Bounds and why they hold for float32 execution:

* Uniform on ``[low, high)``: a sample is computed as ``low + u * (high - low)`` with ``u`` in
  ``[0, 1]`` (C++ ``uniform_real_distribution``). The added term is never negative, so rounding
  never goes below ``low``; it is at most the rounded width, so the sample is at most ``high``
  when the width is exact in the computing type, and at most ``high`` plus a relative slack of
  ``eps * (|low| + |high|)`` otherwise (then applied to both ends, which also covers ``low > high``).
  Hence ``[low, high]`` for an exact width (``rounds = False``: the bounds account for rounding).
  16-bit outputs are rounded outward once more.
* Normal: a normal sample is unbounded in theory, but a generated float sample is finite, so the
  sound bound is the widest finite range of the dtype, ``[-max, max]`` (``rounds = False``, since
  widening ``max`` would saturate to infinity). This needs ``mean + scale * z`` not to overflow:
  every common generator (Box-Muller, polar, inverse CDF, ziggurat, fed by a float or double
  uniform) yields ``|z| <= NORMAL_SAMPLE_CAP``, so when ``|mean| + NORMAL_SAMPLE_CAP * |scale|``
  exceeds half the dtype's max the bound becomes ``[-inf, inf]`` and the ``Overflow`` hazard
  reports it.
* Bernoulli: 0 or 1, whatever the probabilities. The spec's P(1) = p would decide blocks with
  p = 0, but onnxruntime's CPU kernel (1.32) draws 1 with probability 1 - p (p = 0 yields all
  ones), so no probability is trusted to decide an output.
* Multinomial: class indices in ``[0, class_size]``. The upper end is ``class_size`` rather than
  ``class_size - 1``: onnxruntime's search over the cumulative weights returns one past the last
  class when every logit is ``-inf`` or when the draw rounds up to the total weight.
"""

from __future__ import annotations

import torch
from onnx import TensorProto
from torch import Tensor

from ranum.domain.dtypes import float_facts, is_float, torch_dtype
from ranum.domain.interval import Interval
from ranum.errors import UnsupportedOperator
from ranum.ops._base import NodeContext, OpRule
from ranum.ops.hazards import Overflow
from ranum.ops.registry import register

__all__ = ["GENERATORS", "Bernoulli", "Multinomial", "RandomNormal", "RandomNormalLike", "RandomUniform",
           "RandomUniformLike"]

GENERATORS = frozenset({"Bernoulli", "Multinomial", "RandomNormal", "RandomNormalLike", "RandomUniform",
                        "RandomUniformLike"})
"""The operators that draw random values (each run draws anew: ranum's draws are not onnxruntime's)."""

NORMAL_SAMPLE_CAP = 1024.0  # generous cap on |z| of a generated standard normal sample (see module docstring)
_WIDE_CALCULATION = (TensorProto.DOUBLE,)
_NARROW_FLOATS = (TensorProto.FLOAT16, TensorProto.BFLOAT16)


def _generator(seed: float | None) -> torch.Generator | None:
    """A torch generator seeded from the ONNX ``seed`` attribute, or None for the global one."""
    if seed is None:
        return None
    return torch.Generator().manual_seed(int(seed))


def _float_type(elem_type: int, op_type: str) -> int:
    if not is_float(elem_type):
        raise UnsupportedOperator(f"{op_type}: output dtype {elem_type} is not a floating type")
    return elem_type


def _required_shape(shape: tuple[int, ...] | None, op_type: str) -> tuple[int, ...]:
    if shape is None:
        raise UnsupportedOperator(f"{op_type}: the 'shape' attribute is required")
    return tuple(int(n) for n in shape)


# ----------------------------------------------------------------------------- uniform
def _uniform_interval(low: float, high: float, shape: tuple[int, ...], elem_type: int) -> Interval:
    """Bounds of ``low + u * (high - low)`` for ``u`` in [0, 1], rounded in ``elem_type``."""
    compute = torch.float64 if elem_type in _WIDE_CALCULATION else torch.float32
    width = torch.tensor(high - low, dtype=torch.float64)
    if not bool(width.to(compute).isfinite()):  # an infinite width: every sample is infinite (or NaN at u = 0)
        return Interval.top(shape, elem_type)
    exact_width = bool(width.to(compute).to(torch.float64) == width)
    slack = 0.0 if exact_width else torch.finfo(compute).eps * (abs(low) + abs(high))
    out = Interval.uniform(min(low, high) - slack, max(low, high) + slack, shape, elem_type)
    return out.widened(1.0) if elem_type in _NARROW_FLOATS else out


def _uniform_sample(shape, low: float, high: float, elem_type: int, seed: float | None) -> Tensor:
    u = torch.rand(shape, dtype=torch.float64, generator=_generator(seed))
    return (low + u * (high - low)).to(torch_dtype(elem_type))


@register("RandomUniform")
class RandomUniform(OpRule):
    """Samples of U[low, high) of the given shape and dtype."""

    hazards = (Overflow(description="high - low can overflow to infinity"),)

    dtype: int = TensorProto.FLOAT
    high: float = 1.0
    low: float = 0.0
    seed: float | None = None
    shape: tuple[int, ...] | None = None
    deterministic = False
    rounds = False

    def concrete(self, ctx: NodeContext) -> Tensor:
        shape = _required_shape(self.shape, self.op_type)
        return _uniform_sample(shape, self.low, self.high, _float_type(self.dtype, self.op_type), self.seed)

    def abstract(self, ctx: NodeContext) -> Interval:
        shape = _required_shape(self.shape, self.op_type)
        return _uniform_interval(self.low, self.high, shape, _float_type(self.dtype, self.op_type))


@register("RandomUniformLike")
class RandomUniformLike(OpRule):
    """Samples of U[low, high) with the input's shape (and dtype unless ``dtype`` is set)."""

    hazards = (Overflow(description="high - low can overflow to infinity", finite_operands=False),)

    dtype: int | None = None
    high: float = 1.0
    low: float = 0.0
    seed: float | None = None
    deterministic = False
    rounds = False

    def concrete(self, ctx: NodeContext, x: Tensor) -> Tensor:
        elem_type = self.dtype or ctx.input_types[0]
        return _uniform_sample(tuple(x.shape), self.low, self.high, _float_type(elem_type, self.op_type), self.seed)

    def abstract(self, ctx: NodeContext, x: Interval) -> Interval:
        elem_type = _float_type(self.dtype or x.elem_type, self.op_type)
        return _uniform_interval(self.low, self.high, x.shape, elem_type)


# ----------------------------------------------------------------------------- normal
def _normal_interval(mean: float, scale: float, shape: tuple[int, ...], elem_type: int) -> Interval:
    """``[-max, max]`` of the dtype, or unbounded when mean and scale could overflow it."""
    facts = float_facts(elem_type)
    if abs(mean) + NORMAL_SAMPLE_CAP * abs(scale) > facts.max / 2:
        return Interval.top(shape, elem_type)
    return Interval.uniform(-facts.max, facts.max, shape, elem_type)


def _normal_sample(shape, mean: float, scale: float, elem_type: int, seed: float | None) -> Tensor:
    z = torch.randn(shape, dtype=torch.float64, generator=_generator(seed))
    return (mean + scale * z).to(torch_dtype(elem_type))


@register("RandomNormal")
class RandomNormal(OpRule):
    """Samples of N(mean, scale^2) of the given shape and dtype."""

    dtype: int = TensorProto.FLOAT
    mean: float = 0.0
    scale: float = 1.0
    seed: float | None = None
    shape: tuple[int, ...] | None = None
    deterministic = False
    rounds = False
    hazards = (Overflow(description="mean + scale * sample can overflow"),)

    def concrete(self, ctx: NodeContext) -> Tensor:
        shape = _required_shape(self.shape, self.op_type)
        return _normal_sample(shape, self.mean, self.scale, _float_type(self.dtype, self.op_type), self.seed)

    def abstract(self, ctx: NodeContext) -> Interval:
        shape = _required_shape(self.shape, self.op_type)
        return _normal_interval(self.mean, self.scale, shape, _float_type(self.dtype, self.op_type))


@register("RandomNormalLike")
class RandomNormalLike(OpRule):
    """Samples of N(mean, scale^2) with the input's shape (and dtype unless ``dtype`` is set)."""

    dtype: int | None = None
    mean: float = 0.0
    scale: float = 1.0
    seed: float | None = None
    deterministic = False
    rounds = False
    hazards = (Overflow(description="mean + scale * sample can overflow"),)

    def concrete(self, ctx: NodeContext, x: Tensor) -> Tensor:
        elem_type = _float_type(self.dtype or ctx.input_types[0], self.op_type)
        return _normal_sample(tuple(x.shape), self.mean, self.scale, elem_type, self.seed)

    def abstract(self, ctx: NodeContext, x: Interval) -> Interval:
        elem_type = _float_type(self.dtype or x.elem_type, self.op_type)
        return _normal_interval(self.mean, self.scale, x.shape, elem_type)


# ----------------------------------------------------------------------------- discrete
@register("Bernoulli")
class Bernoulli(OpRule):
    """Element-wise draws of 0/1 with the input's probabilities."""

    dtype: int | None = None
    seed: float | None = None
    deterministic = False
    rounds = False

    def concrete(self, ctx: NodeContext, p: Tensor) -> Tensor:
        u = torch.rand(p.shape, dtype=torch.float64, generator=_generator(self.seed))
        return (u < p.to(torch.float64)).to(torch_dtype(self.dtype or ctx.input_types[0]))

    def abstract(self, ctx: NodeContext, p: Interval) -> Interval:
        return p.with_bounds(torch.zeros_like(p.lower), torch.ones_like(p.upper), self.dtype or p.elem_type)


@register("Multinomial")
class Multinomial(OpRule):
    """``sample_size`` class indices per batch row, drawn from unnormalised log-probabilities."""

    dtype: int = TensorProto.INT32
    sample_size: int = 1
    seed: float | None = None
    deterministic = False
    rounds = False

    def __post_init__(self) -> None:
        if self.dtype not in (TensorProto.INT32, TensorProto.INT64):
            raise UnsupportedOperator(f"Multinomial: output dtype {self.dtype} is not int32 or int64")

    def concrete(self, ctx: NodeContext, logits: Tensor) -> Tensor:
        weights = torch.softmax(logits.to(torch.float64), dim=-1)
        draws = torch.multinomial(weights, self.sample_size, replacement=True, generator=_generator(self.seed))
        return draws.to(torch_dtype(self.dtype))

    def abstract(self, ctx: NodeContext, logits: Interval) -> Interval:
        if logits.rank != 2:
            raise UnsupportedOperator(f"Multinomial: input must be [batch, classes], got shape {logits.shape}")
        batch, classes = logits.shape
        return Interval.uniform(0, classes, (batch, self.sample_size), self.dtype)

