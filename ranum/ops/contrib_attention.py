"""onnxruntime's fused attention operators (``com.microsoft``): MultiHeadAttention, Attention and
EmbedLayerNormalization.

onnxruntime's transformer optimizer (and exports "optimized for onnxruntime") fuse a BERT layer's
self-attention into ``com.microsoft.Attention`` (the Q/K/V projection included) or
``com.microsoft.MultiHeadAttention`` (projected Q, K, V given), and its embeddings into
``EmbedLayerNormalization``. Semantics, as measured on onnxruntime 1.32's CPU kernels (float32):

* ``Q, K, V`` (B, S|L, heads * head size) are split into heads; ``Attention`` computes them as
  ``input @ weights + bias`` split by ``qkv_hidden_sizes`` (equal thirds by default), and
  ``MultiHeadAttention`` adds the optional ``bias`` (Q, K and V biases concatenated);
* ``scores = scale * Q K^T`` (``scale`` 1/sqrt(head size) by default) plus an additive mask, then
  ``attention_bias`` (B|1, heads|1, S, L), each sum in float32: every entry <= 0 of a 2-D (B, L) key
  padding mask and every key at or after a 1-D (B,) key length gets ``mask_filter_value`` (default
  -10000); with ``unidirectional`` (Attention and MultiHeadAttention alike), every key ``j > i`` of
  query rows ``i < S - 1`` (the kernel skips the last row, so S = 1 has no causal mask, and with
  S < L the last row sees every key) gets float32's lowest value *instead* (padded or not, whatever
  ``mask_filter_value`` is, for float16 too: measured with one-hot V rows, attention biases of
  +-float32's largest value, and scores of +-3e38);
* ``Y = softmax(scores) @ V``. A fully masked row is therefore not special: its scores are all
  shifted (by ``mask_filter_value`` or the causal value) and it is the softmax of the shifted scores,
  again a convex combination of V's rows (a key length of 0 included): a row whose unmasked keys are
  padded with -inf attends to its causal keys. Only a row whose every shifted score is -inf (a
  ``mask_filter_value`` or bias of -inf, or a sum that overflows: a causal score below about -2e31)
  is NaN (no zero row as in the ONNX Attention of opset 23), e.g. the last row of a unidirectional
  kernel whose keys are all padded with -inf;
* EmbedLayerNormalization: LayerNormalization (two passes, float32 mean) of
  ``word[ids] + position[position_ids or 0..S-1] (+ segment[segment_ids])``; ids outside the table
  are a runtime error; ``mask_index`` counts the mask entries equal to 1 per batch row (0 without a
  mask).

Bounds: every output row that is not NaN is a convex combination of V's rows with computed weights
summing to within ``delta`` of 1, whatever the mask, bias or scores (the softmax normalises them),
so the bounds are V's per-head hull times ``[1 - delta, 1 + delta]`` plus the accumulation error of
the weighted sum (:func:`ranum.ops._attention._hull`). Projections use the MatMul rule's bounds, the
bias addition is rounded outward. Scores that can overflow (or an attention bias of +inf), or a row
whose biased scores can all be -inf, make the softmax NaN: :class:`OnAttentionOperands` checks
:class:`ranum.ops._attention.SoftmaxEveryRowHazard` on the projected operands, the padding and causal
biases and the attention bias, each sum bounded with its rounding (it can overflow to -inf). The
embedding sum is bounded from the gathered rows (rounded outward per addition) and normalised by
:func:`ranum.ops.normalization.layer_norm_bounds`.

float16 Attention, MultiHeadAttention and EmbedLayerNormalization (what onnxruntime's transformer optimizer
writes after ``convert_float_to_float16``): the CPU kernels compute in float32 and round each output once to
float16 (measured: within half a float16 ulp of the real result; the projection or bias sum is not rounded
first; MultiHeadAttention's output is bit for bit the float32 kernel's, rounded). The
bounds are the float32 ones with float16 roundings, which are wider; the score hazard is checked against
float16's largest value (a float16 kernel elsewhere could overflow there), a causal key there as an unmasked one
(:func:`causal_fill_for`).

Rejected (UnsupportedOperator, with the reason): tensors of other types (their kernels' precision is not
measured here), packed QKV / 4-D
key and value, past / present key-value caches and their outputs, masks other than a (B, L) 1/0
mask or (B,) key lengths, ``do_rotary``. Invariants: bounds are never NaN; every rule is pure.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from onnx import TensorProto
from torch import Tensor

from ranum.domain.interval import Interval
from ranum.errors import UnsupportedOperator
from ranum.ops._attention import AttentionScoreHazard, Layout, SoftmaxEveryRowHazard, _hull
from ranum.ops._base import NodeContext, OpRule
from ranum.ops._range_hull import hull_blocks, index_ranges
from ranum.ops.contrib import MS_DOMAIN, concrete_sum, rounded_sum
from ranum.ops.hazards import Hazard, OnDerivedOperands, Overflow
from ranum.ops.linear import blockwise_product, interval_product
from ranum.ops.normalization import LayerNormalization, SliceVarianceHazard, layer_norm_bounds
from ranum.ops.registry import register
from ranum.ops.transformer import Attention as OnnxAttention

__all__ = ["Attention", "EmbedLayerNormalization", "MultiHeadAttention", "OnAttentionOperands", "OnEmbeddingSum"]

_HAZARD_BUDGET = 1 << 16  # interval blocks kept by the hazard's own projection bounds
Operands = tuple  # (q, k, v, attention_bias) as intervals or tensors


# ------------------------------------------------------------------------------ shared semantics
@dataclass(frozen=True)
class Heads:
    """The attributes common to both operators."""

    num_heads: int
    scale: float | None
    unidirectional: int
    mask_filter_value: float

    def onnx_rule(self) -> OnnxAttention:
        """The ONNX Attention rule with the same heads and scale (its score hazard is reused)."""
        return OnnxAttention(q_num_heads=self.num_heads, kv_num_heads=self.num_heads, scale=self.scale)

    def scale_for(self, head_size: int) -> float:
        return self.scale if self.scale is not None else 1.0 / math.sqrt(head_size)


def _heads(op: str, num_heads: int, scale: float | None, unidirectional: int, mask_filter_value: float) -> Heads:
    """The shared attributes, checked (a rule is built without them for the operator catalogue)."""
    if num_heads <= 0:
        raise UnsupportedOperator(f"{op}: num_heads (positive) is required")
    if scale is not None and not scale > 0:
        raise UnsupportedOperator(f"{op}: scale {scale} (must be positive)")
    return Heads(num_heads, scale, unidirectional, mask_filter_value)


def _split(t: Tensor, heads: int) -> Tensor:
    """(B, S, heads * D) -> (B, heads, S, D)."""
    return t.reshape(t.shape[0], t.shape[1], heads, -1).transpose(1, 2)


def _check_mask(shape: Sequence[int], batch: int, keys: int) -> None:
    """Accept a (B, L) 1/0 key padding mask or (B,) key lengths; reject the other formats."""
    if tuple(shape) not in ((batch, keys), (batch,)):
        raise UnsupportedOperator(f"attention mask of shape {tuple(shape)}: only (B, L) 1/0 masks and (B,) "
                                  f"key lengths are supported (B={batch}, L={keys})")


def _padding(mask: Tensor, batch: int, keys: int, filter_value: float) -> Tensor:
    """The additive key padding bias (B, 1, 1, L) of a (B, L) mask (onnxruntime masks every entry <= 0) or (B,)
    key lengths."""
    _check_mask(mask.shape, batch, keys)
    if mask.dim() == 2:
        masked = mask <= 0
    else:
        masked = torch.arange(keys).reshape(1, -1) >= mask.reshape(-1, 1).to(torch.int64)
    return torch.where(masked, filter_value, 0.0).to(torch.float32).reshape(batch, 1, 1, keys)


CAUSAL_FILL = float(torch.finfo(torch.float32).min)  # onnxruntime's causal bias, whatever mask_filter_value is


def _causal(seq: int, keys: int) -> Tensor:
    """Where onnxruntime's unidirectional mask applies, (S, L) booleans: key ``j > i`` of query rows ``i < S - 1``
    (measured on MultiHeadAttention with S != L: its loop skips the last query row, so S = 1 has none)."""
    i = torch.arange(seq).reshape(-1, 1)
    j = torch.arange(keys).reshape(1, -1)
    return (j > i) & (i < seq - 1)


def causal_fill_for(elem_type: int) -> float:
    """The causal bias that the hazard's bounds use for operands of ``elem_type``.

    onnxruntime adds float32's lowest value in float32 for float32 and float16 alike, so its causal scores are
    -inf (+inf) only where the score plus the attention bias overflow that far, i.e. for float16 operands only
    where the bias is -inf (+inf). The hazard rounds float16 sums to float16, where the lowest float32 value
    would itself be -inf: there a causal key is bounded as an unmasked one (fill 0), whose float16 sum is
    infinite wherever onnxruntime's is (a sound, wider bound)."""
    return CAUSAL_FILL if elem_type == TensorProto.FLOAT else 0.0


def additive_mask(attrs: Heads, mask: Tensor | None, batch: int, seq: int, keys: int,
                  causal_fill: float = CAUSAL_FILL) -> Tensor | None:
    """The float32 key padding and causal bias (B|1, 1, S|1, L), None without either.

    Measured on onnxruntime 1.32's CPU kernels (float32 and float16): a padded key gets ``mask_filter_value``;
    with ``unidirectional``, a key of :func:`_causal` gets ``causal_fill`` instead (float32's lowest value,
    whatever ``mask_filter_value`` is and whether the key is padded: it replaces the padding bias, not adds
    to it), which the kernel then adds to the score (a score below about -2e31 makes it -inf)."""
    additive = None
    if mask is not None:
        additive = _padding(mask, batch, keys, attrs.mask_filter_value)
    if attrs.unidirectional:
        base = additive if additive is not None else torch.zeros((1, 1, 1, keys), dtype=torch.float32)
        additive = torch.where(_causal(seq, keys), torch.tensor(causal_fill, dtype=torch.float32), base)
    return additive


def additive_mask_bounds(attrs: Heads, mask: Interval | None, batch: int, seq: int, keys: int,
                         causal_fill: float = CAUSAL_FILL) -> Interval | None:
    """Bounds of :func:`additive_mask`: a key is surely padded below the mask's upper bounds (or key lengths) and
    possibly below its lower ones, so each bias lies between its values at the two ends (a causal key's is fixed)."""
    ends = [None, None] if mask is None else [t.to(torch.float64) for t in mask.full()]
    most, least = (additive_mask(attrs, end, batch, seq, keys, causal_fill) for end in ends)
    if most is None or least is None:
        return None
    lo, hi = (t.to(torch.float64) for t in (torch.minimum(most, least), torch.maximum(most, least)))
    return Interval.from_full(lo, hi, TensorProto.FLOAT)


def attention_concrete(attrs: Heads, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None,
                       attention_bias: Tensor | None) -> Tensor:
    """Y (B, S, heads * Dv) as onnxruntime's CPU kernel computes it, in float32."""
    heads = attrs.num_heads
    qh, kh, vh = (_split(t.to(torch.float32), heads) for t in (q, k, v))
    scores = torch.matmul(qh, kh.transpose(-1, -2)) * attrs.scale_for(qh.shape[-1])
    additive = additive_mask(attrs, mask, q.shape[0], q.shape[1], k.shape[1])
    if additive is not None:
        scores = scores + additive
    if attention_bias is not None:
        scores = scores + attention_bias.to(torch.float32)
    y = torch.matmul(torch.softmax(scores, dim=-1), vh)
    return y.transpose(1, 2).reshape(q.shape[0], q.shape[1], -1).to(q.dtype)


def attention_hull(attrs: Heads, q: Interval, k: Interval, v: Interval, budget: int) -> Interval:
    """Bounds of Y (before its final rounding, which the interpreter adds): V's per-head hull."""
    _check_shapes(attrs, q.shape, k.shape, v.shape)
    heads = attrs.num_heads
    lay = Layout(rank3=True, q_heads=heads, kv_heads=heads, seq=q.shape[1], past=0, total=k.shape[1])
    v_lo, v_hi = (_split(t.to(torch.float64), heads) for t in v.full())
    lo, hi = _hull(v_lo, v_hi, lay, v.elem_type)  # (B, H, 1, Dv)
    shape = (v_lo.shape[0], heads, q.shape[1], v_lo.shape[-1])
    return Interval.from_full(lay.output(lo.expand(shape)), lay.output(hi.expand(shape)), v.elem_type, budget)


def _check_shapes(attrs: Heads, q: Sequence[int], k: Sequence[int], v: Sequence[int]) -> None:
    heads = attrs.num_heads
    if not len(q) == len(k) == len(v) == 3:
        raise UnsupportedOperator(f"attention with Q, K, V of ranks {len(q)}, {len(k)}, {len(v)}: only the "
                                  "unpacked 3-D (B, S, hidden) form is supported")
    if heads <= 0 or q[2] % heads or k[2] % heads or v[2] % heads or q[2] != k[2]:
        raise UnsupportedOperator(f"attention: num_heads {heads} must divide the hidden sizes {q[2]}, {k[2]}, "
                                  f"{v[2]} (Q and K equal)")
    if k[1] != v[1] or not q[0] == k[0] == v[0]:
        raise UnsupportedOperator(f"attention: K {tuple(k)} and V {tuple(v)} do not match Q {tuple(q)}")


def _require_float32_or_16(op: str, elem_type: int) -> None:
    """float32, or float16 tensors (onnxruntime's CPU kernels compute those in float32 and round each output
    once: measured within half a float16 ulp; the bounds' float16 roundings cover that)."""
    if elem_type not in (TensorProto.FLOAT, TensorProto.FLOAT16):
        raise UnsupportedOperator(f"{op}: float32 and float16 tensors only")


def _wanted(ctx: NodeContext, index: int, op: str, what: str) -> None:
    """Reject an optional input or output that the rule does not model."""
    ins, outs = ctx.node.inputs, ctx.node.outputs
    if any(i < len(ins) and ins[i] for i in range(index, len(ins))):
        raise UnsupportedOperator(f"{op}: {what} inputs are not supported")
    if any(outs[1:]):
        raise UnsupportedOperator(f"{op}: present key/value outputs are not supported")


# ------------------------------------------------------------------------------ hazard
@dataclass(frozen=True)
class OnAttentionOperands(OnDerivedOperands):
    """The attention score hazard (a score of +inf or NaN, or a row of only -inf: the softmax gives NaN),
    checked on the operator's projected Q, K, V plus its key padding and causal biases, then its attention
    bias, as the kernel adds them. The contrib kernels take the softmax of every row (no row is zeroed), so
    a row that is fully padded or biased is reported when its sums can all be -inf (a mask_filter_value or
    bias of -inf, or scores so negative that the sum overflows)."""

    rule: MultiHeadAttention | Attention
    # the inner hazard's, known without building it (which needs the rule's heads)
    name = AttentionScoreHazard.name
    description = AttentionScoreHazard.description
    kind = AttentionScoreHazard.kind

    @property
    def inner(self) -> SoftmaxEveryRowHazard:  # type: ignore[override]
        return SoftmaxEveryRowHazard(self.rule.heads().onnx_rule())

    def derived_bounds(self, inputs):
        if any(t is not None and t.shape is None for t in inputs):
            return None
        q, k, v, attention_bias = self.rule.abstract_operands(inputs, _HAZARD_BUDGET)
        mask = _optional(inputs, self.rule.mask_input)
        padding = additive_mask_bounds(self.rule.heads(), mask, q.shape[0], q.shape[1], k.shape[1],
                                       causal_fill_for(q.elem_type))
        return [q, k, v, None, padding, attention_bias]

    def derived_values(self, inputs):
        q, k, v, attention_bias = self.rule.concrete_operands(inputs)
        mask = _optional(inputs, self.rule.mask_input)
        padding = additive_mask(self.rule.heads(), mask, q.shape[0], q.shape[1], k.shape[1])
        return [q, k, v, None, padding, attention_bias]


def _optional(inputs: Sequence, index: int):
    return inputs[index] if index < len(inputs) else None


# ------------------------------------------------------------------------------ MultiHeadAttention
@register("MultiHeadAttention", domain=MS_DOMAIN)
class MultiHeadAttention(OpRule):
    """Inputs (query, key, value, bias?, key_padding_mask?, attention_bias?); only 3-D Q, K, V without
    past key/value (see the module docstring)."""

    num_heads: int = 0
    scale: float | None = None
    unidirectional: int = 0
    mask_filter_value: float = -10000.0

    accumulates = True
    mask_input = 4  # key_padding_mask

    def heads(self) -> Heads:
        return _heads("MultiHeadAttention", self.num_heads, self.scale, self.unidirectional, self.mask_filter_value)

    @property
    def hazards(self) -> tuple[Hazard, ...]:  # type: ignore[override]
        return (OnAttentionOperands(self), Overflow())

    def _check_node(self, ctx: NodeContext, q, k, v) -> None:
        _wanted(ctx, 6, "MultiHeadAttention", "past key/value (and later)")
        if q is None or k is None or v is None:
            raise UnsupportedOperator("MultiHeadAttention: packed QKV / KV (key or value missing) is not supported")

    def concrete_operands(self, inputs: Sequence) -> Operands:
        q, k, v = inputs[0], inputs[1], inputs[2]
        bias = _optional(inputs, 3)
        if bias is not None:
            hq, hk = q.shape[-1], k.shape[-1]
            dtype = torch.float32
            q, k, v = ((t.to(dtype) + b.to(dtype)).to(t.dtype)
                       for t, b in ((q, bias[:hq]), (k, bias[hq:hq + hk]), (v, bias[hq + hk:])))
        return q, k, v, _optional(inputs, 5)

    def abstract_operands(self, inputs: Sequence, budget: int) -> Operands:
        q, k, v = inputs[0], inputs[1], inputs[2]
        bias = _optional(inputs, 3)
        if bias is not None:
            hq, hk = q.shape[-1], k.shape[-1]
            lo, hi = bias.full()
            parts = ((0, hq), (hq, hq + hk), (hq + hk, lo.shape[0]))
            q, k, v = (rounded_sum([t, Interval.from_full(lo[a:b], hi[a:b], bias.elem_type)])
                       for t, (a, b) in zip((q, k, v), parts))
        return q, k, v, _optional(inputs, 5)

    def concrete(self, ctx: NodeContext, q, k=None, v=None, bias=None, mask=None, attention_bias=None, *rest):
        self._check_node(ctx, q, k, v)
        half = q.dtype == torch.float16  # float32 arithmetic throughout, one rounding of the output (measured)
        if half:
            q, k, v, bias, attention_bias = (None if t is None else t.float() for t in (q, k, v, bias, attention_bias))
        q, k, v, attention_bias = self.concrete_operands([q, k, v, bias, mask, attention_bias])
        y = attention_concrete(self.heads(), q, k, v, mask, attention_bias)
        return y.half() if half else y

    def abstract(self, ctx: NodeContext, q, k=None, v=None, bias=None, mask=None, attention_bias=None, *rest):
        self._check_node(ctx, q, k, v)
        _require_float32_or_16("MultiHeadAttention", q.elem_type)
        _check_shapes(self.heads(), q.shape, k.shape, v.shape)
        if mask is not None:
            _check_mask(mask.shape, q.shape[0], k.shape[1])
        q, k, v, _ = self.abstract_operands([q, k, v, bias], ctx.budget)
        return attention_hull(self.heads(), q, k, v, ctx.budget)


# ------------------------------------------------------------------------------ Attention
@register("Attention", domain=MS_DOMAIN)
class Attention(OpRule):
    """Inputs (input, weights, bias?, mask_index?, past? (rejected), attention_bias?); Q, K, V are
    ``input @ weights + bias`` split by ``qkv_hidden_sizes`` (thirds by default)."""

    num_heads: int = 0
    scale: float | None = None
    unidirectional: int = 0
    mask_filter_value: float = -10000.0
    qkv_hidden_sizes: tuple = ()
    do_rotary: int = 0
    past_present_share_buffer: int = 0

    accumulates = True
    mask_input = 3  # mask_index

    def __post_init__(self) -> None:
        if self.do_rotary:
            raise UnsupportedOperator("Attention (com.microsoft): do_rotary is not supported")

    def heads(self) -> Heads:
        return _heads("Attention (com.microsoft)", self.num_heads, self.scale, self.unidirectional,
                      self.mask_filter_value)

    @property
    def hazards(self) -> tuple[Hazard, ...]:  # type: ignore[override]
        return (OnAttentionOperands(self), Overflow())

    def _sizes(self, total: int) -> tuple[int, int, int]:
        if self.qkv_hidden_sizes:
            sizes = tuple(int(s) for s in self.qkv_hidden_sizes)
            if len(sizes) != 3 or sum(sizes) != total:
                raise UnsupportedOperator(f"Attention (com.microsoft): qkv_hidden_sizes {sizes} vs weights' {total}")
            return sizes  # type: ignore[return-value]
        if total % 3:
            raise UnsupportedOperator(f"Attention (com.microsoft): weights' {total} columns are not 3 equal parts")
        return total // 3, total // 3, total // 3

    def _check_node(self, ctx: NodeContext) -> None:
        ins = ctx.node.inputs
        if len(ins) > 4 and ins[4]:
            raise UnsupportedOperator("Attention (com.microsoft): the past input is not supported")
        _wanted(ctx, 6, "Attention (com.microsoft)", "past_sequence_length (and later)")

    def concrete_operands(self, inputs: Sequence) -> Operands:
        x, w, bias = inputs[0], inputs[1], _optional(inputs, 2)
        projected = torch.matmul(x.to(torch.float32), w.to(torch.float32))
        if bias is not None:
            projected = projected + bias.to(torch.float32)
        hq, hk, _ = self._sizes(w.shape[1])
        projected = projected.to(x.dtype)
        return projected[..., :hq], projected[..., hq:hq + hk], projected[..., hq + hk:], _optional(inputs, 5)

    def abstract_operands(self, inputs: Sequence, budget: int) -> Operands:
        x, w, bias = inputs[0], inputs[1], _optional(inputs, 2)
        count = x.shape[-1]
        product = blockwise_product(x, w, lambda a, b: interval_product(torch.matmul, [a, b], count), count, budget)
        projected = product.widened(1.0)  # the accumulator's result, rounded before the bias is added
        if bias is not None:
            projected = rounded_sum([projected, bias])
        hq, hk, _ = self._sizes(w.shape[1])
        lo, hi = projected.full()
        parts = ((0, hq), (hq, hq + hk), (hq + hk, lo.shape[-1]))
        q, k, v = (Interval.from_full(lo[..., a:b], hi[..., a:b], x.elem_type, budget) for a, b in parts)
        return q, k, v, _optional(inputs, 5)

    def concrete(self, ctx: NodeContext, x, w, bias=None, mask=None, past=None, attention_bias=None, *rest):
        self._check_node(ctx)
        half = x.dtype == torch.float16  # float32 arithmetic throughout, one rounding of the output (measured)
        if half:
            x, w, bias, attention_bias = (None if t is None else t.float() for t in (x, w, bias, attention_bias))
        q, k, v, attention_bias = self.concrete_operands([x, w, bias, mask, past, attention_bias])
        y = attention_concrete(self.heads(), q, k, v, mask, attention_bias)
        return y.half() if half else y

    def abstract(self, ctx: NodeContext, x, w, bias=None, mask=None, past=None, attention_bias=None, *rest):
        self._check_node(ctx)
        _require_float32_or_16("Attention (com.microsoft)", x.elem_type)
        if len(x.shape) != 3 or len(w.shape) != 2:
            raise UnsupportedOperator(f"Attention (com.microsoft): input {tuple(x.shape)} and weights "
                                      f"{tuple(w.shape)} (needs 3-D input, 2-D weights)")
        if mask is not None:
            _check_mask(mask.shape, x.shape[0], x.shape[1])
        q, k, v, _ = self.abstract_operands([x, w, bias], ctx.budget)
        return attention_hull(self.heads(), q, k, v, ctx.budget)


# ------------------------------------------------------------------------------ EmbedLayerNormalization
def _gather_rows(table: Interval, ids: Interval, budget: int | None) -> Interval:
    """Bounds of ``table[ids]`` (rows of a 2-D table); ids outside [0, rows) are a runtime error in
    onnxruntime (no output), so the reachable ids are clamped into that range."""
    rows = table.shape[0]
    ranges = index_ranges(ids.lower.clamp(0, rows - 1), ids.upper.clamp(0, rows - 1), rows)
    lo, hi = hull_blocks(table.stored_lower, table.stored_upper, table.splits[0], 0, ranges)
    return Interval.create(lo, hi, ids.splits + table.splits[1:], tuple(ids.shape) + tuple(table.shape[1:]),
                           table.elem_type, budget)


def _embedding_sum_bounds(inputs: Sequence, budget: int | None) -> Interval:
    """Bounds of onnxruntime's float32 ``word[ids] + position[pos] (+ segment[seg])``, added left to right."""
    ids, seg_ids, word, position, segment = (_optional(inputs, i) for i in range(5))
    position_ids = _optional(inputs, 8)
    if position_ids is None:
        lo, hi = position.full()
        seq = ids.shape[1]
        pos = Interval.from_full(lo[:seq], hi[:seq], position.elem_type, budget)
    else:
        pos = _gather_rows(position, position_ids, budget)
    terms = [_gather_rows(word, ids, budget), pos]
    if seg_ids is not None and segment is not None:
        terms.append(_gather_rows(segment, seg_ids, budget))
    return rounded_sum(terms)


def _embedding_sum(inputs: Sequence) -> Tensor:
    """``word[ids] + position[pos] (+ segment[seg])`` as onnxruntime's CPU kernel adds them."""
    ids, seg_ids, word, position, segment = (_optional(inputs, i) for i in range(5))
    position_ids = _optional(inputs, 8)
    pos = position[: ids.shape[1]] if position_ids is None else position[position_ids.long()]
    terms = [word[ids.long()], pos]
    if seg_ids is not None and segment is not None:
        terms.append(segment[seg_ids.long()])
    return concrete_sum(terms).expand(tuple(ids.shape) + (word.shape[1],))


@dataclass(frozen=True)
class OnEmbeddingSum(OnDerivedOperands):
    """A hazard of EmbedLayerNormalization's normalization, checked on the embedding sum it normalizes."""

    inner: Hazard
    suffix = " (of the summed embeddings)"

    def derived_bounds(self, inputs):
        if any(t is not None and t.shape is None for t in inputs):
            return None
        return [_embedding_sum_bounds(inputs, _HAZARD_BUDGET)]

    def derived_values(self, inputs):
        return [_embedding_sum(inputs)]


@register("EmbedLayerNormalization", domain=MS_DOMAIN)
class EmbedLayerNormalization(OpRule):
    """LayerNormalization (last axis) of ``word[input_ids] + position[position_ids or 0..S-1]
    (+ segment[segment_ids])``. Inputs (input_ids, segment_ids?, word_embedding, position_embedding,
    segment_embedding?, gamma, beta, mask?, position_ids?); outputs (output, mask_index: the number of
    mask entries equal to 1 per batch row (0 without a mask), embedding_sum?)."""

    epsilon: float = 1e-12
    mask_index_type: int = 1

    accumulates = True

    @property
    def hazards(self) -> tuple[Hazard, ...]:  # type: ignore[override]
        return (OnEmbeddingSum(SliceVarianceHazard(self.epsilon, axis=-1, nonneg_variance=True)), Overflow())

    def _norm(self) -> LayerNormalization:
        return LayerNormalization(axis=-1, epsilon=self.epsilon)

    def concrete(self, ctx: NodeContext, ids, seg_ids, word, position, segment, gamma, beta, mask=None,
                 position_ids=None):
        if word.dtype == torch.float16:  # float32 arithmetic, each output rounded once (measured)
            word, position, segment, gamma, beta = (None if t is None else t.float()
                                                    for t in (word, position, segment, gamma, beta))
            y, count, total = self.concrete(ctx, ids, seg_ids, word, position, segment, gamma, beta, mask,
                                            position_ids)
            return y.half(), count, total.half()
        inputs = [ids, seg_ids, word, position, segment, gamma, beta, mask, position_ids]
        total = _embedding_sum(inputs)
        y = self._norm().concrete(ctx, total, gamma, beta)[0].to(word.dtype)
        count = torch.zeros(ids.shape[0], dtype=torch.int32) if mask is None else (mask == 1).sum(-1).to(torch.int32)
        return y, count, total.to(word.dtype)

    def abstract(self, ctx: NodeContext, ids, seg_ids, word, position, segment, gamma, beta, mask=None,
                 position_ids=None):
        _require_float32_or_16("EmbedLayerNormalization", word.elem_type)
        if len(ids.shape) != 2 or len(word.shape) != 2 or len(position.shape) != 2:
            raise UnsupportedOperator(f"EmbedLayerNormalization: input_ids {tuple(ids.shape)} (needs 2-D) and "
                                      f"2-D embedding tables")
        if position_ids is None and position.shape[0] < ids.shape[1]:
            raise UnsupportedOperator("EmbedLayerNormalization: fewer position embeddings than the sequence")
        total = _embedding_sum_bounds([ids, seg_ids, word, position, segment, gamma, beta, mask, position_ids],
                                      ctx.budget)
        shape = tuple(ids.shape) + (word.shape[1],)
        total = Interval.from_full(*(t.expand(shape) for t in total.full()), total.elem_type, ctx.budget)
        y, _, _ = layer_norm_bounds(ctx, total, gamma, beta, -1, self.epsilon, sums_in_double=False)
        return y, _mask_count(mask, ids.shape[0]), total


def _mask_count(mask: Interval | None, batch: int) -> Interval:
    """Bounds of the number of entries equal to 1 in each row of an int32 (B, S) mask."""
    if mask is None:
        zero = torch.zeros(batch, dtype=torch.float64)
        return Interval.from_full(zero, zero, TensorProto.INT32)
    lo, hi = mask.full()
    surely = ((lo == 1) & (hi == 1)).sum(-1).to(torch.float64)
    maybe = ((lo <= 1) & (hi >= 1)).sum(-1).to(torch.float64)
    return Interval.from_full(surely, maybe, TensorProto.INT32)
