"""Dropout and BatchNormalization before opsets 12 and 9: test/training modes and per-activation statistics.

Dropout-1/6 run in training mode unless ``is_test`` is set (a random mask scaled by 1 / (1 - ratio));
Dropout-7 to 11 are the identity at inference, and their ``mask`` output differs between runtimes
(onnxruntime fills it with zeros, the ONNX reference with ones; of the input's type before opset 10),
so its bounds are [0, 1]. BatchNormalization-1 to 8 may normalise per activation (``spatial`` = 0:
parameters of shape (C, D1, ..., Dn)); BatchNormalization-1/6 with ``is_test`` = 0 use the batch's own
statistics (training mode), which is rejected as training_mode=1 is from opset 14 on.
Invariants: bounds hold for every reading above; no rule here takes the concrete fast path for a
mask whose value depends on the runtime.
"""

from __future__ import annotations

import torch
from onnx import TensorProto
from torch import Tensor

from ranum.domain.interval import Interval
from ranum.errors import UnsupportedOperator
from ranum.ops._base import NodeContext
from ranum.ops.batch_norm import BatchNormalization
from ranum.ops.convert import Dropout
from ranum.ops.registry import register

__all__ = ["BatchNormalization1", "BatchNormalization7", "Dropout1", "Dropout7"]


@register("Dropout", since=7)
class Dropout7(Dropout):
    """Dropout-7 to 11: the identity (``ratio`` is an attribute and only matters in training).

    The ``mask`` (bool from opset 10, the input's type before) is all zeros in onnxruntime and all
    ones in the ONNX reference: the concrete rule follows onnxruntime, the bounds hold both.
    """

    hazards = ()

    @staticmethod
    def _mask_type(ctx: NodeContext, x_type: int) -> int:
        return TensorProto.BOOL if ctx.opset >= 10 else x_type

    def concrete(self, ctx: NodeContext, data: Tensor, *_: Tensor | None) -> tuple[Tensor, Tensor]:
        return data, torch.zeros(data.shape, dtype=torch.bool if ctx.opset >= 10 else data.dtype)

    def abstract(self, ctx: NodeContext, data: Interval, *_: Interval | None) -> tuple[Interval, Interval]:
        return data, Interval.uniform(0, 1, data.shape, self._mask_type(ctx, data.elem_type))


@register("Dropout", since=1)
class Dropout1(Dropout):
    """Dropout-1/6: training mode (random mask, scaling by 1 / (1 - ratio)) unless ``is_test`` is set.

    The mask has the input's type. In test mode the mask "is not filled": its bounds are [0, 1].
    """

    is_test: int = 0
    hazards = ()

    def __post_init__(self) -> None:
        if not self.is_test and not 0 <= self.ratio < 1:
            raise UnsupportedOperator(f"Dropout before opset 7 in training mode (is_test=0) with ratio {self.ratio}: "
                                      "the scale 1 / (1 - ratio) needs 0 <= ratio < 1")

    def _training(self) -> Tensor:
        return torch.tensor(not self.is_test)

    def concrete(self, ctx: NodeContext, data: Tensor, *_: Tensor | None) -> tuple[Tensor, Tensor]:
        out, mask = super().concrete(ctx, data, torch.tensor(self.ratio), self._training())
        return out, mask.to(data.dtype)

    def abstract(self, ctx: NodeContext, data: Interval, *_: Interval | None) -> tuple[Interval, Interval]:
        ratio = Interval.point(torch.tensor(self.ratio, dtype=torch.float32), TensorProto.FLOAT)
        out, _mask = super().abstract(ctx, data, ratio, Interval.point(self._training(), TensorProto.BOOL))
        return out, Interval.uniform(0, 1, data.shape, data.elem_type)


@register("BatchNormalization", since=7)
class BatchNormalization7(BatchNormalization):
    """BatchNormalization-7/8: with ``spatial`` = 0 the parameters have shape (C, D1, ..., Dn), one
    statistic per activation, which broadcasts against (N, C, D1, ..., Dn) as it is."""

    spatial: int = 1

    def _layout(self, param: Tensor, rank: int) -> Tensor:
        if self.spatial:
            return super()._layout(param, rank)
        if param.dim() != rank - 1:
            raise UnsupportedOperator(f"BatchNormalization with spatial=0: parameters of rank {param.dim()}, "
                                      f"expected (C, D1, ..., Dn) of rank {rank - 1}")
        return param


@register("BatchNormalization", since=1)
class BatchNormalization1(BatchNormalization7):
    """BatchNormalization-1/6: ``is_test`` = 0 (the default) normalises with the batch's statistics."""

    is_test: int = 0

    def __post_init__(self) -> None:
        if not self.is_test:
            raise UnsupportedOperator("BatchNormalization before opset 7 with is_test=0 normalises with the batch's "
                                      "own statistics (training mode), which is not supported (inference only)")
