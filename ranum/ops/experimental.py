"""ONNX's old experimental operators that onnxruntime still runs: ImageScaler, Scale, Affine,
ParametricSoftplus, ScaledTanh, Crop and DynamicSlice.

ONNX registered them at version 1 and removed them at opset 10 (the ONNX checker still knows their
names); onnxruntime 1.32 keeps their schemas for opsets 1 to 9 (deprecated at 10: a model of opset
10 or later that uses one fails to load) and CPU kernels for float32 only, DynamicSlice for every
type. A float16 tensor is run through float32 casts that onnxruntime inserts (from opset 6: at
opsets 1 to 5 its inserted Cast-1 is invalid and the session fails). Real models use them: Tiny
YOLOv2 (opset 8) starts with ImageScaler. The other experimental names (ConstantFill,
GivenTensorFill, GRUUnit, ATen) have no rule: onnxruntime has no CPU kernel for any of them (and no
schema for ConstantFill and ATen), so no model using them runs there.

Semantics, checked against onnxruntime in ``tests/ops/cases_experimental.py``:

* ``ImageScaler(scale=1, bias)``: ``y = x * scale + bias[c]`` on an NCHW tensor, ``bias`` one value per
  channel (onnxruntime requires it); ``Scale(scale=1)``: ``y = scale * x``; ``Affine(alpha=1, beta=0)``:
  ``y = alpha * x + beta``.
* ``ParametricSoftplus(alpha, beta)``: ``y = alpha * ln(exp(beta * x) + 1)``, evaluated stably (a large
  ``beta * x`` gives ``alpha * beta * x``, never an overflow of the exponential); it overflows only when
  ``beta * x`` or the scaled result passes float32's largest value. ``ScaledTanh(alpha, beta)``:
  ``y = alpha * tanh(beta * x)``. onnxruntime requires both attributes of these two (no defaults).
* ``Crop(border=[left, top, right, bottom], scale=[height, width])``: the spatial window of an NCHW
  tensor from row ``top`` and column ``left`` to ``H - bottom`` and ``W - right``, or of size ``scale``
  when given; a window that does not fit is an error in onnxruntime (UnsupportedOperator here).
* ``DynamicSlice(data, starts, ends, axes?)``: Slice-10 without steps.

Invariants: every rule composes the registered rules of its steps (Mul, Add, Softplus, Tanh, Slice) on
exact attribute operands, in float32 (the compute type of float16 tensors too), each step rounded
outward as the interpreter rounds a node; the last step's rounding to the tensor's type is the
interpreter's. So the bounds hold for onnxruntime's float32 and float16 results. The rules refuse
models of opset 10 and later (UnsupportedOperator, saying why), which onnxruntime does not run.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import torch
from onnx import TensorProto
from torch import Tensor

from ranum.domain.dtypes import float_facts
from ranum.domain.interval import Interval
from ranum.errors import UnsupportedOperator
from ranum.ops._base import COPIES, ELEMENTWISE, NodeContext, OpRule
from ranum.ops.activations import Softplus, Tanh
from ranum.ops.arithmetic import Add, Mul
from ranum.ops.hazards import Overflow
from ranum.ops.registry import register
from ranum.ops.shape import Slice

__all__ = ["Affine", "Crop", "DynamicSlice", "ImageScaler", "ParametricSoftplus", "Scale", "ScaledTanh"]

# ONNX removed the experimental operators at opset 10; onnxruntime's schemas for them end at 9
LAST_OPSET = 9
FLOAT = TensorProto.FLOAT
# float types the float32 kernels run: float32 itself, float16 through the casts onnxruntime inserts
_ARITHMETIC_TYPES = (TensorProto.FLOAT, TensorProto.FLOAT16)
# ParametricSoftplus rounds 1 + exp(-|beta x|) to float32 before its logarithm: an absolute error of
# up to half an eps (observed: 0 for ln(1 + 2e-9), 1.19e-7 for 6.8e-8), which no relative rounding covers
_SOFTPLUS_SLACK = 2 * float_facts(FLOAT).eps


# ------------------------------------------------------------------------------ shared steps
class _Experimental(OpRule):
    """Refuses models of opset 10 and later, which onnxruntime does not run (see the module doc)."""

    def _runs_at(self, ctx: NodeContext) -> None:
        if ctx.opset > LAST_OPSET:
            raise UnsupportedOperator(f"{self.op_type}: an experimental operator that ONNX removed at opset 10; "
                                      f"onnxruntime runs it in models of opset 1 to {LAST_OPSET} only, this one "
                                      f"has opset {ctx.opset}")


class _Float32Kernel(_Experimental):
    """An element-wise operator that onnxruntime computes in float32 (float16 tensors too, converted):
    ``fn`` is its formula, ``steps`` bounds it by composing registered rules."""

    unknown_shapes = ELEMENTWISE

    def fn(self, x: Tensor) -> Tensor:
        """The kernel's formula on a float32 (or, on exact inputs, float64) tensor."""
        raise NotImplementedError

    def steps(self, ctx: NodeContext, x: Interval) -> Interval:
        """Bounds of the formula on a float32 interval, all but the last step's rounding included."""
        raise NotImplementedError

    def concrete(self, ctx: NodeContext, x: Tensor) -> Tensor:
        self._runs_at(ctx)
        compute = torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype
        return self.fn(x.to(compute)).to(x.dtype)

    def abstract(self, ctx: NodeContext, x: Interval) -> Interval:
        self._runs_at(ctx)
        if x.elem_type not in _ARITHMETIC_TYPES:
            name = TensorProto.DataType.Name(x.elem_type).lower()
            raise UnsupportedOperator(f"{self.op_type}: onnxruntime runs it on float32 and float16 tensors, not {name}")
        # the composed rules' relational refinements read their operands from the graph, where an
        # attribute operand is not: they run without the graph view
        y = self.steps(dataclasses.replace(ctx, graph=None), x.with_bounds(x.lower, x.upper, FLOAT))
        # the interpreter's rounding to the tensor's type then covers the last float32 rounding too
        return y.with_bounds(y.lower, y.upper, x.elem_type)


def _exact(value: float | Sequence[float], shape: Sequence[int] = ()) -> Interval:
    """A float attribute (a float32 number) as an exact float32 operand."""
    return Interval.point(torch.tensor(value, dtype=torch.float64).reshape(tuple(shape)), FLOAT)


def _times(ctx: NodeContext, x: Interval, factor: float) -> Interval:
    """Real-number bounds of ``x * factor`` (the Mul rule; its rounding is left to the caller)."""
    return Mul().abstract(ctx, x, _exact(factor))


def _scaled(ctx: NodeContext, x: Interval, factor: float) -> Interval:
    """Bounds of the float32 product ``x * factor``, rounded."""
    return Mul().rounded(_times(ctx, x, factor))


# ------------------------------------------------------------------------------ linear maps
@register("ImageScaler")
class ImageScaler(_Float32Kernel):
    """``y = x * scale + bias[c]`` on an NCHW tensor (one bias per channel, required by onnxruntime)."""

    scale: float = 1.0
    bias: tuple[float, ...] = ()

    hazards = (Overflow(),)
    accumulates = True  # two roundings: x * scale may cancel against the bias, an absolute error

    def __post_init__(self) -> None:
        if not self.bias:
            raise UnsupportedOperator("ImageScaler: onnxruntime requires the attribute 'bias' (one value per channel)")

    def _bias_shape(self, shape: Sequence[int]) -> tuple[int, ...]:
        """The shape in which the bias broadcasts over the channel axis of an NCHW tensor of ``shape``."""
        if len(shape) != 4:
            raise UnsupportedOperator(f"ImageScaler: the input must be NCHW (rank 4), got rank {len(shape)}")
        if len(self.bias) != shape[1]:
            raise UnsupportedOperator(f"ImageScaler: 'bias' needs one value per channel ({shape[1]}), "
                                      f"got {len(self.bias)}")
        return (len(self.bias), 1, 1)

    def fn(self, x: Tensor) -> Tensor:
        bias = torch.tensor(self.bias, dtype=x.dtype).reshape(self._bias_shape(tuple(x.shape)))
        return x * self.scale + bias

    def steps(self, ctx: NodeContext, x: Interval) -> Interval:
        if x.shape:
            bias = _exact(self.bias, self._bias_shape(x.shape))
        else:  # the hull of a tensor of unknown shape (one interval for all its elements): any channel's bias
            bias = Interval.uniform(min(self.bias), max(self.bias), (), FLOAT)
        return Add().abstract(ctx, _scaled(ctx, x, self.scale), bias)


@register("Scale")
class Scale(_Float32Kernel):
    """``y = scale * x``."""

    scale: float = 1.0

    hazards = (Overflow(),)

    def fn(self, x: Tensor) -> Tensor:
        return x * self.scale

    def steps(self, ctx: NodeContext, x: Interval) -> Interval:
        return _times(ctx, x, self.scale)


@register("Affine")
class Affine(_Float32Kernel):
    """``y = alpha * x + beta``."""

    alpha: float = 1.0
    beta: float = 0.0

    hazards = (Overflow(),)
    accumulates = True  # two roundings: alpha * x may cancel against beta

    def fn(self, x: Tensor) -> Tensor:
        return x * self.alpha + self.beta

    def steps(self, ctx: NodeContext, x: Interval) -> Interval:
        return Add().abstract(ctx, _scaled(ctx, x, self.alpha), _exact(self.beta))


# ------------------------------------------------------------------------------ scaled activations
def _required(op: str, **attributes: float | None) -> None:
    missing = [name for name, value in attributes.items() if value is None]
    if missing:
        raise UnsupportedOperator(f"{op}: onnxruntime requires the attribute(s) {', '.join(missing)} "
                                  "(they have no default)")


@register("ParametricSoftplus")
class ParametricSoftplus(_Float32Kernel):
    """``y = alpha * ln(exp(beta * x) + 1)``, evaluated stably (``beta x + ln(exp(-beta x) + 1)`` for
    ``beta x > 0``): only ``beta * x`` or the scaled result can overflow."""

    alpha: float | None = None
    beta: float | None = None

    hazards = (Overflow(description="beta * x or alpha * softplus(beta * x) can overflow to infinity"),)
    accumulates = True  # the rounding of 1 + exp(-|beta x|) is an absolute error

    def __post_init__(self) -> None:
        _required("ParametricSoftplus", alpha=self.alpha, beta=self.beta)

    def fn(self, x: Tensor) -> Tensor:
        bx = x * self.beta
        return self.alpha * torch.logaddexp(bx, torch.zeros_like(bx))

    def steps(self, ctx: NodeContext, x: Interval) -> Interval:
        softplus = Softplus()
        inner = softplus.abstract(ctx, _scaled(ctx, x, self.beta))
        inner = softplus.rounded(inner.with_bounds(inner.lower - _SOFTPLUS_SLACK, inner.upper + _SOFTPLUS_SLACK))
        return _times(ctx, inner, self.alpha)


@register("ScaledTanh")
class ScaledTanh(_Float32Kernel):
    """``y = alpha * tanh(beta * x)``; bounded by ``|alpha|``, which overflows a 16-bit result past its range."""

    hazards = (Overflow(),)

    alpha: float | None = None
    beta: float | None = None

    accumulates = True  # Tanh's absolute slack near float32's smallest normal values

    def __post_init__(self) -> None:
        _required("ScaledTanh", alpha=self.alpha, beta=self.beta)

    def fn(self, x: Tensor) -> Tensor:
        return self.alpha * torch.tanh(x * self.beta)

    def steps(self, ctx: NodeContext, x: Interval) -> Interval:
        tanh = Tanh()
        return _times(ctx, tanh.rounded(tanh.abstract(ctx, _scaled(ctx, x, self.beta))), self.alpha)


# ------------------------------------------------------------------------------ windows
def _ints(values: Sequence[int]) -> Tensor:
    return torch.tensor([int(v) for v in values], dtype=torch.int64)


def _exact_ints(values: Sequence[int]) -> Interval:
    return Interval.point(_ints(values), TensorProto.INT64)


@register("Crop")
class Crop(_Experimental):
    """The window ``[top, H - bottom) x [left, W - right)`` of an NCHW tensor, or ``scale = [height, width]``
    rows and columns from ``(top, left)``; ``border = [left, top, right, bottom]`` is required."""

    border: tuple[int, ...] = ()
    scale: tuple[int, ...] = ()

    rounds = False
    unknown_shapes = COPIES

    def __post_init__(self) -> None:
        if len(self.border) != 4 or min(self.border) < 0:
            raise UnsupportedOperator(f"Crop: 'border' needs four non-negative values (left, top, right, bottom), "
                                      f"got {list(self.border)}")
        if self.scale and len(self.scale) != 2:
            raise UnsupportedOperator(f"Crop: 'scale' needs two values (height, width), got {list(self.scale)}")

    def _window(self, shape: Sequence[int]) -> tuple[Tensor, Tensor, Tensor]:
        """Slice operands (starts, ends, axes) of the window in an input of ``shape``."""
        if len(shape) != 4:
            raise UnsupportedOperator(f"Crop: the input must be NCHW (rank 4), got rank {len(shape)}")
        left, top, right, bottom = self.border
        height, width = shape[2], shape[3]
        ends = (top + self.scale[0], left + self.scale[1]) if self.scale else (height - bottom, width - right)
        if ends[0] < top or ends[1] < left or ends[0] > height or ends[1] > width:
            raise UnsupportedOperator(f"Crop: the window of border {list(self.border)} and scale {list(self.scale)} "
                                      f"does not fit a {height}x{width} input")
        return _ints((top, left)), _ints(ends), _ints((2, 3))

    def concrete(self, ctx: NodeContext, x: Tensor) -> Tensor:
        self._runs_at(ctx)
        return Slice().concrete(ctx, x, *self._window(tuple(x.shape)))

    def abstract(self, ctx: NodeContext, x: Interval) -> Interval:
        self._runs_at(ctx)
        starts, ends, axes = (_exact_ints(v.tolist()) for v in self._window(x.shape))
        return Slice().abstract(ctx, x, starts, ends, axes)


@register("DynamicSlice")
class DynamicSlice(_Experimental, Slice):
    """Slice-10 without steps: inputs data, starts, ends and the optional axes (int32 or int64)."""

    def concrete(self, ctx: NodeContext, data: Tensor, starts: Tensor, ends: Tensor,  # type: ignore[override]
                 axes: Tensor | None = None) -> Tensor:
        self._runs_at(ctx)
        return super().concrete(ctx, data, starts, ends, axes)

    def abstract(self, ctx: NodeContext, data: Interval, starts: Interval, ends: Interval,  # type: ignore[override]
                 axes: Interval | None = None) -> Interval:
        self._runs_at(ctx)
        return super().abstract(ctx, data, starts, ends, axes)
