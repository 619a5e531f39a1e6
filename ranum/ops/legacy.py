"""Operator versions before opsets 10-11 whose operands were attributes, and other small old signatures.

Each class adapts its version's attributes to the operands of the current rule it extends, so both
semantics stay in one place: Pad-1/2 (``paddings``/``pads`` and ``value``), Slice-1 (``starts``,
``ends``, ``axes``), Reshape-1 (``shape``), Tile-1 (``tiles`` and ``axis`` inputs), TopK-1 (``k``),
Clip-1 (``min``/``max``, as Clip-6), Concat-1 (``axis`` defaults to 1), Cast-1 (``to`` names the type),
Selu-1 (older default constants), LpPool-1 and GlobalLpPool-1 (``p`` a float), and Scatter-9
(ScatterElements without reduction; deprecated, hence an invalid model, from opset 11).
Invariants: the attribute operands are exact, so every rule here is exactly as precise (and as
sound) as the current rule it delegates to.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from onnx import TensorProto
from torch import Tensor

from ranum.domain.dtypes import torch_dtype
from ranum.domain.interval import Interval
from ranum.errors import UnsupportedOperator
from ranum.ops._base import NodeContext, exact_ints
from ranum.ops.activations import Selu
from ranum.ops.arithmetic import Clip6
from ranum.ops.convert import Cast
from ranum.ops.indexing import Pad, ScatterElements
from ranum.ops.pooling import GlobalLpPool, LpPool
from ranum.ops.registry import register
from ranum.ops.selection import TopK
from ranum.ops.shape import Concat, Reshape, Slice, Tile

__all__ = ["Cast1", "Clip1", "Concat1", "GlobalLpPool1", "LpPool1", "Pad1", "Pad2", "Reshape1", "Scatter", "Selu1",
           "Slice1", "Tile1", "TopK1"]

INT64 = TensorProto.INT64


def _ints(values: Sequence[int]) -> Tensor:
    return torch.tensor([int(v) for v in values], dtype=torch.int64)


def _exact(value: Tensor) -> Interval:
    """An integer attribute operand as an exact interval."""
    return Interval.point(value, INT64)


# ------------------------------------------------------------------------------ padding, slicing
@register("Pad", since=2)
class Pad2(Pad):
    """Pad-2: ``pads`` and the fill ``value`` (a float, cast to the data type) are attributes; modes
    constant, reflect and edge; negative pads crop."""

    pads: tuple[int, ...] = ()
    value: float = 0.0
    mode: str = "constant"

    def __post_init__(self) -> None:
        if self.mode not in ("constant", "reflect", "edge"):
            raise UnsupportedOperator(f"Pad before opset 11: unknown mode '{self.mode}' (constant, reflect or edge)")

    def _fill(self, dtype: torch.dtype) -> Tensor:
        return torch.tensor(self.value, dtype=torch.float64).to(dtype)

    def _fill_value(self, value: Interval | None, data: Interval) -> Interval:
        fill = self._fill(torch_dtype(data.elem_type)).to(data.lower.dtype)
        return Interval.create(fill, fill, (), None, data.elem_type)

    def concrete(self, ctx: NodeContext, data: Tensor) -> Tensor:  # type: ignore[override]
        return super().concrete(ctx, data, _ints(self.pads), self._fill(data.dtype))

    def abstract(self, ctx: NodeContext, data: Interval) -> Interval:  # type: ignore[override]
        fill = Interval.point(self._fill(torch_dtype(data.elem_type)), data.elem_type)
        return super().abstract(ctx, data, _exact(_ints(self.pads)), fill)


@register("Pad", since=1)
class Pad1(Pad2):
    """Pad-1: the pads are the ``paddings`` attribute, in the same layout as Pad-2's ``pads`` (as the
    ONNX reference reads them: all begins, then all ends)."""

    paddings: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "pads", tuple(self.paddings))


@register("Slice", since=1)
class Slice1(Slice):
    """Slice-1: ``starts``, ``ends`` and the optional ``axes`` are attributes (no steps)."""

    starts: tuple[int, ...] = ()
    ends: tuple[int, ...] = ()
    axes: tuple[int, ...] | None = None

    def _operands(self) -> tuple[Tensor, Tensor, Tensor | None]:
        return _ints(self.starts), _ints(self.ends), None if self.axes is None else _ints(self.axes)

    def concrete(self, ctx: NodeContext, data: Tensor) -> Tensor:  # type: ignore[override]
        return super().concrete(ctx, data, *self._operands())

    def abstract(self, ctx: NodeContext, data: Interval) -> Interval:  # type: ignore[override]
        starts, ends, axes = self._operands()
        return super().abstract(ctx, data, _exact(starts), _exact(ends), None if axes is None else _exact(axes))


@register("Reshape", since=1)
class Reshape1(Reshape):
    """Reshape-1: the target ``shape`` is an attribute (0 copies the input's dimension, -1 is inferred)."""

    shape: tuple[int, ...] | None = None

    def _shape(self) -> Tensor:
        if self.shape is None:
            raise UnsupportedOperator("Reshape before opset 5: the 'shape' attribute is missing")
        return _ints(self.shape)

    def concrete(self, ctx: NodeContext, data: Tensor) -> Tensor:  # type: ignore[override]
        return super().concrete(ctx, data, self._shape())

    def abstract(self, ctx: NodeContext, data: Interval) -> Interval:  # type: ignore[override]
        return super().abstract(ctx, data, _exact(self._shape()))


@register("Tile", since=1)
class Tile1(Tile):
    """Tile-1: ``tiles`` copies of the input along one ``axis`` (both scalar inputs)."""

    @staticmethod
    def _repeats(rank: int, tiles: Tensor | Interval, axis: Tensor | Interval) -> Tensor:
        count = (exact_ints(tiles, "tiles", "Tile") or [1])[0]
        along = (exact_ints(axis, "axis", "Tile") or [0])[0]
        if not -rank <= along < rank:
            raise UnsupportedOperator(f"Tile before opset 6: axis {along} out of range for rank {rank}")
        repeats = [1] * rank
        repeats[along % rank] = count
        return _ints(repeats)

    def concrete(self, ctx: NodeContext, x: Tensor, tiles: Tensor, axis: Tensor) -> Tensor:  # type: ignore[override]
        return super().concrete(ctx, x, self._repeats(x.dim(), tiles, axis))

    def abstract(self, ctx: NodeContext, x: Interval, tiles: Interval,  # type: ignore[override]
                 axis: Interval) -> Interval:
        return super().abstract(ctx, x, _exact(self._repeats(len(x.shape), tiles, axis)))


@register("Concat", since=1)
class Concat1(Concat):
    """Concat before opset 4: ``axis`` is optional and defaults to 1."""

    axis: int = 1


# ------------------------------------------------------------------------------ selection, clamping
@register("TopK", since=1)
class TopK1(TopK):
    """TopK-1: ``k`` is an attribute; the largest values, sorted (ties: lower index first)."""

    k: int = 0

    def concrete(self, ctx: NodeContext, x: Tensor) -> tuple[Tensor, Tensor]:  # type: ignore[override]
        return super().concrete(ctx, x, _ints([self.k]))

    def abstract(self, ctx: NodeContext, x: Interval) -> tuple[Interval, Interval]:  # type: ignore[override]
        return super().abstract(ctx, x, _exact(_ints([self.k])))


@register("Clip", since=1)
class Clip1(Clip6):
    """Clip-1: as Clip-6 (limits default to the lowest and largest float); ``consumed_inputs`` is ignored."""


@register("Scatter", since=9)
class Scatter(ScatterElements):
    """Scatter-9 (opsets 9 and 10; deprecated from 11): ScatterElements without reduction,
    ``data[indices[i][j]][j] = updates[i][j]`` along ``axis`` (negative indices wrap, as onnxruntime does)."""


# ------------------------------------------------------------------------------ types and constants
@register("Cast", since=1)
class Cast1(Cast):
    """Cast-1: ``to`` names the element type as a string ('FLOAT', 'INT64', ...)."""

    to: int | str = 0

    def __post_init__(self) -> None:
        if isinstance(self.to, str):
            try:
                code = TensorProto.DataType.Value(self.to.upper())
            except ValueError:
                raise UnsupportedOperator(f"Cast before opset 6: unknown element type '{self.to}'") from None
            object.__setattr__(self, "to", code)
        super().__post_init__()


@register("Selu", since=1)
class Selu1(Selu):
    """Selu-1: the default constants were alpha = 1.6732 and gamma = 1.0507 (float32)."""

    alpha: float = 1.673200011253357
    gamma: float = 1.0506999492645264


def _integral_p(op: str, p: float) -> int:
    if p != int(p) or p < 1:
        raise UnsupportedOperator(f"{op} before opset 2: p={p} (only integral p >= 1 is supported)")
    return int(p)


@register("LpPool", since=1)
class LpPool1(LpPool):
    """LpPool-1: ``p`` is a float (default 2.0); integral values as LpPool-2."""

    p: float = 2.0  # type: ignore[assignment]

    def __post_init__(self) -> None:
        object.__setattr__(self, "p", _integral_p("LpPool", self.p))
        super().__post_init__()


@register("GlobalLpPool", since=1)
class GlobalLpPool1(GlobalLpPool):
    """GlobalLpPool-1: ``p`` is a float (default 2.0); integral values as GlobalLpPool-2."""

    p: float = 2.0  # type: ignore[assignment]

    def __post_init__(self) -> None:
        object.__setattr__(self, "p", _integral_p("GlobalLpPool", self.p))
