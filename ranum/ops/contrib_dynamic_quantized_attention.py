"""onnxruntime's dynamically quantized attention and embedding operators (``com.microsoft``): QAttention and
QEmbedLayerNormalization, which ``onnxruntime.quantization.quantize_dynamic`` writes for a model with a fused
Attention / EmbedLayerNormalization.

* QAttention: Q, K, V are MatMulIntegerToFloat's ``fl(fl(fl(acc) * fl(s_in s_w)) + bias)`` (weight scale and
  zero point per tensor or per column; input's one element), bounded by
  :mod:`ranum.ops.contrib_dynamic_quantized`'s integer and slack routes, then Attention's float32 kernel: the
  rule reuses :mod:`ranum.ops.contrib_attention`'s concrete semantics (onnxruntime within 6e-6) and bounds
  (V's hull).
* QEmbedLayerNormalization: every table (word, position, segment, gamma, beta) dequantized per tensor as
  ``fl((q - zp) * s)``, then EmbedLayerNormalization without position ids (the kernel divides by
  ``sqrt(var + eps)``; EmbedLayerNormalization's rules, reused on the dequantized tables, agree within 1.2e-5).

Not modelled (UnsupportedOperator, with the reason): QAttention's past, present, do_rotary and masks other than
(B, L) 1/0 or (B,) lengths; QEmbedLayerNormalization's tables given as ranges; float16 scales.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from ranum.domain.interval import Interval
from ranum.errors import UnsupportedOperator
from ranum.ops._base import NodeContext, OpRule
from ranum.ops.contrib import MS_DOMAIN
from ranum.ops.contrib_attention import (
    EmbedLayerNormalization,
    Heads,
    OnAttentionOperands,
    OnEmbeddingSum,
    _check_mask,
    _heads,
    _optional,
    _wanted,
    attention_concrete,
    attention_hull,
)
from ranum.ops.contrib_dynamic_quantized import (
    FLOAT,
    _byte,
    _check_bias,
    _column,
    _float32,
    _one_element,
    _one_zero_point,
    _product_bounds,
    _quantizer_input,
    _sum_concrete,
    _to_float,
)
from ranum.ops.hazards import Hazard, Overflow
from ranum.ops.normalization import SliceVarianceHazard
from ranum.ops.registry import register

__all__ = ["QAttention", "QEmbedLayerNormalization"]


@register("QAttention", domain=MS_DOMAIN)
class QAttention(OpRule):
    """com.microsoft Attention whose Q, K, V projection is MatMulIntegerToFloat's: inputs (input, weight, bias,
    input_scale, weight_scale, mask_index?, input_zero_point?, weight_zero_point?, past? (rejected)); the weight's
    scale and zero point per tensor or per column. The attention itself is Attention's (its rules are reused)."""

    num_heads: int = 0
    scale: float | None = None
    unidirectional: int = 0
    mask_filter_value: float = -10000.0
    do_rotary: int = 0
    past_present_share_buffer: int = 0

    accumulates = True
    parameter_operands = frozenset({3, 4, 6, 7})  # the scales and zero points
    mask_input = 5  # mask_index

    def __post_init__(self) -> None:
        if self.do_rotary:
            raise UnsupportedOperator("QAttention: do_rotary is not supported")

    def heads(self) -> Heads:
        return _heads("QAttention", self.num_heads, self.scale, self.unidirectional, self.mask_filter_value)

    @property
    def hazards(self) -> tuple[Hazard, ...]:  # type: ignore[override]
        return (OnAttentionOperands(self), Overflow())

    def _check(self, x: Sequence[int], w: Sequence[int], bias: Sequence[int], x_scale: Sequence[int],
               x_zp: Sequence[int] | None) -> int:
        """The hidden size of Q (K, V), once the shapes are checked."""
        if len(x) != 3 or len(w) != 2 or x[-1] != w[0] or w[1] % 3:
            raise UnsupportedOperator(f"QAttention: input {tuple(x)} and weight {tuple(w)} (needs 3-D input, 2-D "
                                      "weight of 3 equal column parts)")
        if not _one_element(x_scale):
            raise UnsupportedOperator("QAttention: input_scale must be a scalar or one-element vector")
        _one_zero_point(x_zp, "QAttention")
        _check_bias(bias, w[1], "QAttention")
        return w[1] // 3

    def concrete_operands(self, inputs: Sequence) -> tuple:
        x, w, bias, x_scale, w_scale, _, x_zp, w_zp = (_optional(inputs, i) for i in range(8))
        third = self._check(x.shape, w.shape, bias.shape, x_scale.shape, None if x_zp is None else x_zp.shape)
        scales = [x_scale.reshape(()), _column(w_scale.shape, w.shape, "QAttention", "weight_scale")(w_scale)]
        y = _to_float(_sum_concrete(x, x_zp, w, w_zp, "QAttention"), scales, bias, [])
        return y[..., :third], y[..., third:2 * third], y[..., 2 * third:], None

    def abstract_operands(self, inputs: Sequence, budget: int, source: Interval | None = None) -> tuple:
        """Q, K, V bounds; ``source``: the float input quantized into ``input`` (the slack route), if known."""
        x, w, bias, x_scale, w_scale, _, x_zp, w_zp = (_optional(inputs, i) for i in range(8))
        third = self._check(x.shape, w.shape, bias.shape, x_scale.shape, None if x_zp is None else x_zp.shape)
        y = _product_bounds(x, w, {2: x_scale, 3: w_scale}, (x_zp, w_zp), bias, ((2, 3), ()), source, "QAttention",
                            budget)
        lo, hi = y.full()
        parts = ((0, third), (third, 2 * third), (2 * third, 3 * third))
        q, k, v = (Interval.from_full(lo[..., a:b], hi[..., a:b], FLOAT, budget) for a, b in parts)
        return q, k, v, None

    def concrete(self, ctx: NodeContext, x, w, bias, x_scale, w_scale, mask=None, x_zp=None, w_zp=None, *rest):
        _wanted(ctx, 8, "QAttention", "past")
        q, k, v, _ = self.concrete_operands([x, w, bias, x_scale, w_scale, mask, x_zp, w_zp])
        return attention_concrete(self.heads(), q, k, v, mask, None)

    def abstract(self, ctx: NodeContext, x, w, bias, x_scale, w_scale, mask=None, x_zp=None, w_zp=None, *rest):
        _wanted(ctx, 8, "QAttention", "past")
        _byte(x.elem_type, "QAttention", "input")
        _byte(w.elem_type, "QAttention", "weight")
        _float32("QAttention", bias=bias.elem_type, input_scale=x_scale.elem_type, weight_scale=w_scale.elem_type)
        if mask is not None:
            _check_mask(mask.shape, x.shape[0], x.shape[1])
        q, k, v, _ = self.abstract_operands([x, w, bias, x_scale, w_scale, mask, x_zp, w_zp], ctx.budget,
                                            _quantizer_input(ctx, (0, 3, 6)))
        return attention_hull(self.heads(), q, k, v, ctx.budget)


# ------------------------------------------------------------------------------ QEmbedLayerNormalization
_TABLES = ((2, 8, 13), (3, 9, 14), (4, 10, 15), (5, 11, 16), (6, 12, 17))  # (codes, scale, zero point) positions


def _dequantized(inputs: Sequence, op: str = "QEmbedLayerNormalization") -> list:
    """EmbedLayerNormalization's operands (ids, segment ids, word, position, segment, gamma, beta, mask) from
    QEmbedLayerNormalization's: each table ``fl((q - zp) * scale)`` in float32, as the kernel dequantizes it.
    Intervals must be exact (the quantized tables are constants); tensors are taken as they are."""
    out = [_optional(inputs, 0), _optional(inputs, 1)]
    for codes, scale, zero in _TABLES:
        values = [_optional(inputs, i) for i in (codes, scale, zero)]
        if values[0] is None:
            out.append(None)
            continue
        if any(isinstance(v, Interval) and not v.is_exact for v in values):
            raise UnsupportedOperator(f"{op}: quantized tables, scales and zero points must be constants")
        q, s, z = (v.exact_value() if isinstance(v, Interval) else v for v in values)
        table = (q.to(torch.int32) - z.reshape(()).to(torch.int32)).to(torch.float32) * s.reshape(()).to(torch.float32)
        out.append(Interval.point(table, FLOAT) if isinstance(values[0], Interval) else table)
    return out + [_optional(inputs, 7)]


@dataclass(frozen=True)
class _OnDequantizedEmbeddingSum(OnEmbeddingSum):
    """EmbedLayerNormalization's hazard on the embedding sum, of QEmbedLayerNormalization's dequantized tables."""

    def derived_bounds(self, inputs):
        return super().derived_bounds(_dequantized(inputs))

    def derived_values(self, inputs):
        return super().derived_values(_dequantized(inputs))


@register("QEmbedLayerNormalization", domain=MS_DOMAIN)
class QEmbedLayerNormalization(OpRule):
    """EmbedLayerNormalization of uint8 / int8 tables (word, position, segment, gamma, beta), each dequantized
    per tensor; outputs (layernorm_out, mask_index_out). Its rules are EmbedLayerNormalization's."""

    epsilon: float = 1e-12

    accumulates = True
    parameter_operands = frozenset(range(8, 18))  # the scales and zero points

    @property
    def hazards(self) -> tuple[Hazard, ...]:  # type: ignore[override]
        return (_OnDequantizedEmbeddingSum(SliceVarianceHazard(self.epsilon, axis=-1, nonneg_variance=True)),
                Overflow())

    def _float_rule(self) -> EmbedLayerNormalization:
        return EmbedLayerNormalization(epsilon=self.epsilon)

    def concrete(self, ctx: NodeContext, *inputs: Tensor | None) -> tuple[Tensor, Tensor]:
        y, count, _ = self._float_rule().concrete(ctx, *_dequantized(inputs))
        return y, count

    def abstract(self, ctx: NodeContext, *inputs: Interval | None) -> tuple[Interval, Interval]:
        for position in (8, 9, 11, 12):
            _float32(self.op_type, scale=inputs[position].elem_type)
        y, count, _ = self._float_rule().abstract(ctx, *_dequantized(inputs))
        return y, count
