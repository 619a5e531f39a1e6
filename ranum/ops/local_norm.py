"""Local response normalization (LRN) and MeanVarianceNormalization, bounded in
:mod:`ranum.ops._norm_bounds` (with their hazards: a non-positive LRN base, a zero variance).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from onnx import TensorProto
from torch import Tensor

from ranum.domain.interval import Interval
from ranum.errors import UnsupportedOperator
from ranum.ops import _norm_bounds
from ranum.ops._base import NodeContext, OpRule
from ranum.ops.hazards import Hazard, Overflow
from ranum.ops.registry import register

__all__ = ["LRN", "MeanVarianceNormalization"]


@register("LRN")
class LRN(OpRule):
    """Local response normalization across channels: x / (bias + alpha / size * sum of squares) ** beta.

    onnxruntime runs it on 4-D float32 tensors (16-bit ones through float32); ``alpha >= 0`` and
    ``beta > 0`` are required for the bounds (see :mod:`ranum.ops._norm_bounds`)."""

    alpha: float = 0.0001
    beta: float = 0.75
    bias: float = 1.0
    size: int = 0

    accumulates = True

    @property
    def hazards(self) -> tuple[Hazard, ...]:  # type: ignore[override]
        return (_norm_bounds.LrnScaleHazard(self.size, self.alpha, self.bias), Overflow())

    def _check(self) -> None:
        """Checked on use, not on construction: the catalogue lists the hazards of a default instance."""
        if self.size < 1 or self.alpha < 0 or self.beta <= 0:
            raise UnsupportedOperator(f"LRN: size={self.size}, alpha={self.alpha:g}, beta={self.beta:g} "
                                      "(needs size >= 1, alpha >= 0, beta > 0)")

    def concrete(self, ctx: NodeContext, x: Tensor) -> Tensor:
        self._check()
        return _norm_bounds.lrn_concrete(x, self.size, self.alpha, self.beta, self.bias)

    def abstract(self, ctx: NodeContext, x: Interval) -> Interval:
        self._check()
        if len(x.shape) < 3:
            raise UnsupportedOperator(f"LRN: input of shape {x.shape} (needs N, C and spatial axes)")
        lo, hi = _norm_bounds.lrn_bounds(x, self.size, self.alpha, self.beta, self.bias)
        return Interval.from_full(lo, hi, x.elem_type, ctx.budget)


@register("MeanVarianceNormalization", since=9)
class MeanVarianceNormalization(OpRule):
    """(x - mean) / std over ``axes`` (default N, H, W), as onnxruntime's float32 kernel computes it:
    two passes and no epsilon, so a constant slice gives 0/0 (hazard). Only float32 is supported:
    onnxruntime has no other kernel, and the ONNX function body it would fall back to is ill-typed
    for other types (a float32 epsilon)."""

    axes: tuple[int, ...] = (0, 2, 3)

    accumulates = True

    @property
    def hazards(self) -> tuple[Hazard, ...]:  # type: ignore[override]
        return (_norm_bounds.MvnVarianceHazard(tuple(self.axes)), Overflow())

    def _layout(self, shape: Sequence[int], elem_type: int) -> tuple[list[int], int]:
        if elem_type != TensorProto.FLOAT:
            raise UnsupportedOperator("MeanVarianceNormalization: only float32 tensors are supported")
        rank = len(shape)
        if not self.axes or any(not -rank <= a < rank for a in self.axes):
            raise UnsupportedOperator(f"MeanVarianceNormalization: axes {tuple(self.axes)} invalid for rank {rank}")
        return _norm_bounds.mvn_perm(rank, self.axes), math.prod(shape[a % rank] for a in set(self.axes))

    def concrete(self, ctx: NodeContext, x: Tensor) -> Tensor:
        perm, count = self._layout(tuple(x.shape), TensorProto.FLOAT if x.dtype == torch.float32 else 0)
        return _norm_bounds.mvn_concrete(x, perm, count)

    def abstract(self, ctx: NodeContext, x: Interval) -> Interval:
        perm, count = self._layout(x.shape, x.elem_type)
        lo, hi = (t.to(torch.float64).permute(perm).reshape(-1, count) for t in x.full())
        z_lo, z_hi = _norm_bounds.mvn_bounds(lo, hi)
        moved = [x.shape[a] for a in perm]
        back = [perm.index(a) for a in range(len(perm))]
        return Interval.from_full(z_lo.reshape(moved).permute(back), z_hi.reshape(moved).permute(back),
                                  x.elem_type, ctx.budget)
