"""onnxruntime's rotary attention operators (``com.microsoft``): RotaryEmbedding and GroupQueryAttention.

LLMs exported for onnxruntime (onnxruntime-genai, Optimum) use both in every decoder layer. Semantics,
as measured on onnxruntime 1.32's CPU kernels (float32; float16 below):

* RotaryEmbedding (input, position_ids, cos_cache, sin_cache): the rotation of the ONNX opset-23
  rule (:class:`ranum.ops.transformer.RotaryEmbedding`: halves, or even/odd pairs when
  ``interleaved``; the first ``rotary_embedding_dim`` elements of each head, the rest passed on) at
  positions ``position_ids`` (B, S), or ``offset + s`` for a one-element ``position_ids``. A 3-D
  input without ``num_heads`` has heads of twice the cache width; the caches hold
  ``rotary_dim / 2`` columns (a wider cache, which onnxruntime reads with another stride, is
  rejected). The ``scale`` attribute is ignored by the CPU kernel. Positions outside the cache are a
  runtime error, so an inexact position reaches only the cache rows inside it.
* GroupQueryAttention (query, key, value, past_key?, past_value?, seqlens_k, total_sequence_length,
  cos_cache?, sin_cache?, position_ids?, attention_bias?, head_sink?, ...): query head ``h`` reads
  key/value head ``h // (num_heads / kv_num_heads)``. With ``T_b = seqlens_k[b] + 1``, the call is
  the first prompt when ``total_sequence_length == S``: the new rows sit at absolute positions
  ``0..S-1`` and the past buffer is not read. Otherwise (a continuation, ``S > 1`` only with batch 1)
  they sit at ``T_b - S .. T_b - 1`` after the past rows ``0..T_b - S - 1``. ``present_key/value``
  have ``max(past length, total_sequence_length)`` rows: the past rows read, then the new K (rotated
  when ``do_rotary``) / V (all S of them in a prompt, padding rows included), then zeros. Query row
  ``i`` attends the keys ``max(0, p - W + 1) .. min(p, T_b - 1)``, ``p`` its absolute position
  (``W = local_window_size`` when positive, else unlimited); writing present key/value, a padding row
  (``p >= T_b``) whose window holds no key, or a row whose biased scores are all at most the lowest
  value (an attention bias of -inf or of the lowest value, an overflow to -inf), outputs 0; without
  them such a row is the softmax of its scores (NaN when they are all -inf):
  ``scores = softcap * tanh(scale * q k^T / softcap)`` (``softcap > 0``) ``+ attention_bias``, then
  softmax over the attended keys; ``smooth_softmax`` adds ``exp(0 - max)`` to the denominator (and a
  ``head_sink`` ``exp(sink_h - max)``, the maximum taken over the sink too). ``do_rotary`` rotates the
  new Q and K by the caches at their absolute positions.

Bounds. RotaryEmbedding: interval products met with Cauchy-Schwarz, ``|(a x1 - b x2, b x1 + a x2)| <=
sqrt(a^2 + b^2) ||(x1, x2)||`` where ``sqrt(a^2 + b^2)`` is bounded by the largest of the cache rows a
position can reach (about 1 for a true rotation cache, whatever the positions). GroupQueryAttention:
every output row is a convex combination of the V rows it attends (weights summing to within ``delta``
of 1), so its bounds are the hull of those rows (per head and column, via
:func:`ranum.ops._attention.convex_bounds`), joined with 0 when ``smooth_softmax`` or ``head_sink``
lets the weights sum to less than 1, or where a row can be zeroed; present key/value place the new bounds
into the past ones (exact moves). Scores that can overflow (or a bias of +inf), and without present outputs a
row whose biased scores can all be -inf, make the softmax NaN:
:class:`ranum.ops._attention.SoftmaxEveryRowHazard` is checked on the rotated Q and the present key/value
with the attention bias, over the attended keys.

A packed query (key and value absent, as onnxruntime-genai's builder writes after one fused Q/K/V
MatMul) holds the query heads, then the key heads, then the value heads along its last axis: it is
split into the three inputs above.

float16 (measured on x86-64): the tensors are float16, the arithmetic float32. The rotated Q and K are
rounded to float16 (present_key holds them), and the output is within half a float16 ulp of the real
result from those rounded operands. The bounds are the float32 ones with float16 roundings (the
output's convex-combination slack in float16 terms). The score hazard is checked against float16's
largest value, as if the scores were float16: an ARM kernel computing Q K^T in float16 can overflow
there, and a kernel computing in float32 cannot, so this errs on the side of a finding.

Rejected (UnsupportedOperator, with the reason): tensors other than float32 and float16, inexact
``seqlens_k`` / ``total_sequence_length``, ``position_ids`` of GroupQueryAttention, ``causal = 0``,
quantized caches (k_scale/v_scale), q/k norm weights, ``query_seqlens``, ``sliding_window_cache``, the
``output_qk`` output, ``is_packed_batching``, rotary caches whose width is not half the rotary dimension,
past key/value without present outputs (onnxruntime 1.32's CPU kernel then reads an uninitialised buffer).
Invariants: bounds are never NaN; every rule is pure.
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
from ranum.ops import transformer
from ranum.ops._attention import SoftmaxEveryRowHazard, convex_bounds
from ranum.ops._base import NodeContext, OpRule, exact_ints
from ranum.ops._range_hull import range_reduce, select_pick
from ranum.ops.contrib import MS_DOMAIN
from ranum.ops.contrib_attention import OnAttentionOperands, _optional, _split
from ranum.ops.hazards import Hazard, Overflow
from ranum.ops.registry import register

__all__ = ["GroupQueryAttention", "OnGroupQueryOperands", "RotaryEmbedding"]

Bounds = tuple[Tensor, Tensor]
_HAZARD_BUDGET = 1 << 16


# ------------------------------------------------------------------------------ RotaryEmbedding
def rotation_rule(interleaved: int, num_heads: int, rotary_dim: int, x_shape: Sequence[int],
                  cache_width: int) -> transformer.RotaryEmbedding:
    """The ONNX RotaryEmbedding rule performing onnxruntime's rotation of an input of ``x_shape``.

    Raises:
        UnsupportedOperator: ranks other than 3 and 4, heads that do not divide the hidden size, or a
            cache width other than half the rotary dimension.
    """
    if len(x_shape) == 4:
        head = x_shape[3]
    elif len(x_shape) == 3:
        head = x_shape[2] // num_heads if num_heads > 0 else 2 * cache_width
        if head <= 0 or x_shape[2] % head:
            raise UnsupportedOperator(f"RotaryEmbedding: hidden size {x_shape[2]} is not a multiple of the head "
                                      f"size {head}")
    else:
        raise UnsupportedOperator(f"RotaryEmbedding: input of rank {len(x_shape)} (needs 3 or 4)")
    dim = rotary_dim or head
    if dim > head or dim != 2 * cache_width:
        raise UnsupportedOperator(f"RotaryEmbedding: rotary dimension {dim} with head size {head} and a cache of "
                                  f"{cache_width} columns (needs half the rotary dimension)")
    heads = x_shape[1] if len(x_shape) == 4 else x_shape[2] // head
    return transformer.RotaryEmbedding(interleaved=interleaved, num_heads=heads, rotary_embedding_dim=dim)


def _batch_seq(x_shape: Sequence[int]) -> tuple[int, int]:
    return (x_shape[0], x_shape[2]) if len(x_shape) == 4 else (x_shape[0], x_shape[1])


def positions_of(position_ids: Tensor, batch: int, seq: int) -> Tensor:
    """(B, S) int64 positions: ``position_ids`` itself, or ``offset + s`` for a one-element tensor."""
    if tuple(position_ids.shape) in ((1,), ()):
        return (position_ids.reshape(()).to(torch.int64) + torch.arange(seq)).expand(batch, seq)
    if tuple(position_ids.shape) != (batch, seq):
        raise UnsupportedOperator(f"RotaryEmbedding: position_ids of shape {tuple(position_ids.shape)} (needs (1) "
                                  f"or ({batch}, {seq}))")
    return position_ids.to(torch.int64)


def _position_ranges(position_ids: Interval, batch: int, seq: int, rows: int) -> Bounds:
    """First and last cache row (B, S) that each position can reach (outside the cache: a runtime error)."""
    lo, hi = (t.to(torch.float64) for t in position_ids.full())
    if position_ids.shape is not None and tuple(position_ids.shape) in ((1,), ()):
        steps = torch.arange(seq, dtype=torch.float64)
        lo = (lo.reshape(()) + steps).expand(batch, seq)
        hi = (hi.reshape(()).clamp(max=rows - seq) + steps).expand(batch, seq)
    elif tuple(position_ids.shape) != (batch, seq):
        raise UnsupportedOperator(f"RotaryEmbedding: position_ids of shape {tuple(position_ids.shape)}")
    first = lo.clamp(0, rows - 1).to(torch.int64)
    last = torch.maximum(hi.clamp(0, rows - 1).to(torch.int64), first)
    return first, last


def _reachable(lo: Tensor, hi: Tensor, ranges: Bounds) -> Bounds:
    """Hull of the cache rows (rows, W) over each range: (B, S, 1, W)."""
    pick = select_pick(0)
    low = range_reduce(lo, 0, [ranges], torch.minimum, pick)
    high = range_reduce(hi, 0, [ranges], torch.maximum, pick)
    return low.unsqueeze(2), high.unsqueeze(2)


def reachable_caches(cos: Interval, sin: Interval, position_ids: Interval, batch: int, seq: int
                     ) -> tuple[Bounds, Bounds, Tensor]:
    """Cos and sin bounds (B, S, 1, W) over the rows the positions reach, and a bound of
    ``sqrt(cos^2 + sin^2)`` over the same rows (about 1 for a true rotation cache)."""
    (c_lo, c_hi), (s_lo, s_hi) = ((t.to(torch.float64) for t in iv.full()) for iv in (cos, sin))
    ranges = _position_ranges(position_ids, batch, seq, c_lo.shape[0])
    norm = torch.sqrt(torch.maximum(c_lo.abs(), c_hi.abs()).square() + torch.maximum(s_lo.abs(), s_hi.abs()).square())
    _, norm_hi = _reachable(norm, norm, ranges)
    return _reachable(c_lo, c_hi, ranges), _reachable(s_lo, s_hi, ranges), norm_hi


@register("RotaryEmbedding", domain=MS_DOMAIN)
class RotaryEmbedding(OpRule):
    """Inputs (input, position_ids, cos_cache, sin_cache); see the module docstring."""

    interleaved: int = 0
    num_heads: int = 0
    rotary_embedding_dim: int = 0
    is_packed_batching: int = 0
    scale: float = 1.0  # ignored by onnxruntime's CPU kernel

    hazards = (Overflow(),)
    accumulates = True  # a difference of products: keep exact inputs on the abstract path (cancellation)

    def _rule(self, x_shape: Sequence[int], cache_width: int) -> transformer.RotaryEmbedding:
        if self.is_packed_batching:
            raise UnsupportedOperator("RotaryEmbedding (com.microsoft): is_packed_batching is not supported")
        return rotation_rule(self.interleaved, self.num_heads, self.rotary_embedding_dim, x_shape, cache_width)

    def concrete(self, ctx: NodeContext, x: Tensor, position_ids: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
        rule = self._rule(tuple(x.shape), cos.shape[1])
        positions = positions_of(position_ids, *_batch_seq(x.shape))
        if x.dtype == torch.float16:  # float32 arithmetic, one rounding to float16
            return rule.concrete(ctx, x.float(), cos.float(), sin.float(), positions).half()
        return rule.concrete(ctx, x, cos, sin, positions)

    def abstract(self, ctx: NodeContext, x: Interval, position_ids: Interval, cos: Interval,
                 sin: Interval) -> Interval:
        _require_float_or_half("RotaryEmbedding (com.microsoft)", x.elem_type)
        rule = self._rule(tuple(x.shape), cos.shape[1])
        batch, seq = _batch_seq(x.shape)
        if position_ids.is_exact:
            positions = positions_of(position_ids.exact_value(), batch, seq)
            return rule.abstract(ctx, x, cos, sin, Interval.point(positions, TensorProto.INT64))
        c, s, norm = reachable_caches(cos, sin, position_ids, batch, seq)
        return rule.rotate_bounds(ctx, x, c, s, norm)


# ------------------------------------------------------------------------------ GroupQueryAttention
@dataclass(frozen=True)
class Geometry:
    """Where one GroupQueryAttention call's rows sit (see the module docstring)."""

    batch: int
    seq: int
    past: int  # rows of the past buffer
    present: int  # rows of present_key / present_value
    prompt: bool
    totals: tuple[int, ...]  # T_b = seqlens_k[b] + 1

    def start(self, b: int) -> int:
        """Absolute position of batch entry ``b``'s first new row."""
        return 0 if self.prompt else self.totals[b] - self.seq

    def positions(self) -> Tensor:
        """(B, S) absolute positions of the new rows."""
        starts = torch.tensor([self.start(b) for b in range(self.batch)], dtype=torch.int64).reshape(-1, 1)
        return starts + torch.arange(self.seq).reshape(1, -1)

    def key_ranges(self, window: int) -> Bounds:
        """First and last attended key (B, S) of each query row."""
        pos = self.positions()
        last = torch.minimum(pos, torch.tensor(self.totals, dtype=torch.int64).reshape(-1, 1) - 1)
        first = (pos - window + 1).clamp(min=0) if window > 0 else torch.zeros_like(last)
        return first, last

    def keyless(self, window: int) -> Tensor:
        """(B, 1, S, 1) True where a (padding) row's window holds no key: onnxruntime outputs 0 there."""
        first, last = self.key_ranges(window)
        return (first > last).reshape(self.batch, 1, self.seq, 1)

    def attended(self, window: int) -> Tensor:
        """(B, 1, S, present) True where a query row attends a key."""
        first, last = self.key_ranges(window)
        j = torch.arange(self.present).reshape(1, 1, -1)
        return ((j >= first.unsqueeze(-1)) & (j <= last.unsqueeze(-1))).unsqueeze(1)

    def place(self, new: Tensor, past: Tensor | None) -> Tensor:
        """present (B, kv heads, present, D): the past rows read, the new rows, zeros elsewhere."""
        out = torch.zeros(new.shape[:2] + (self.present, new.shape[-1]), dtype=new.dtype)
        for b in range(self.batch):
            start = self.start(b)
            if start and past is not None:
                out[b, :, :start] = past[b, :, :start].to(new.dtype)
            out[b, :, start:start + self.seq] = new[b]
        return out


def geometry(seq_shape: Sequence[int], past_shape: Sequence[int] | None, seqlens: list[int] | None,
             total: list[int] | None) -> Geometry:
    """The call's geometry from exact ``seqlens_k`` and ``total_sequence_length``.

    Raises:
        UnsupportedOperator: an inexact length, or lengths onnxruntime rejects.
    """
    op = "GroupQueryAttention"
    if seqlens is None or total is None:
        raise UnsupportedOperator(f"{op}: seqlens_k and total_sequence_length must be exact")
    batch, seq = seq_shape[0], seq_shape[1]
    past = 0 if past_shape is None else past_shape[2]
    tsl, totals = total[0], tuple(s + 1 for s in seqlens)
    if len(totals) != batch or any(not 1 <= t <= tsl for t in totals):
        raise UnsupportedOperator(f"{op}: seqlens_k {seqlens} outside [0, {tsl}) or not one per batch entry")
    prompt = tsl == seq
    if not prompt and (past == 0 or (tsl != past + seq and tsl > past) or (seq > 1 and batch > 1)
                       or any(t < seq for t in totals)):
        raise UnsupportedOperator(f"{op}: total_sequence_length {tsl} with {seq} new rows, a past of {past} and "
                                  f"seqlens_k {seqlens} (onnxruntime rejects these)")
    return Geometry(batch, seq, past, max(past, tsl), prompt, totals)


def _writes_present(outputs: Sequence) -> bool:
    """Whether the node writes present_key / present_value (onnxruntime requires both or neither)."""
    return len(outputs) > 1 and outputs[1] is not None


@dataclass(frozen=True)
class OnGroupQueryOperands(OnAttentionOperands):
    """The attention score hazard, checked on GroupQueryAttention's rotated Q and its present key and value
    with its attention bias, over the keys each query row attends. Writing present key/value, the kernel
    outputs 0 for a row whose largest score is at most the lowest value (an all -inf row is no NaN there);
    without them it takes the softmax of every row."""

    rule: GroupQueryAttention

    @property
    def inner(self) -> SoftmaxEveryRowHazard:  # type: ignore[override]
        return self.inner_for(())

    def inner_for(self, outputs: Sequence) -> SoftmaxEveryRowHazard:
        return SoftmaxEveryRowHazard(self.rule.score_rule(), zero_lowest_rows=_writes_present(outputs))

    def derived_bounds(self, inputs):
        if any(t is not None and t.shape is None for t in inputs):
            return None
        try:
            return self.rule.score_operands(inputs, self.rule.abstract_operands(inputs, _HAZARD_BUDGET))
        except UnsupportedOperator:
            return None

    def derived_values(self, inputs):
        return self.rule.score_operands(inputs, self.rule.concrete_operands(inputs))

    def check(self, inputs, outputs):
        derived = self.derived_bounds(inputs)
        return None if derived is None else self.inner_for(outputs).check(derived, outputs)

    def triggered(self, inputs, outputs):
        return self.inner_for(outputs).triggered(self.derived_values(inputs), outputs)


_UNMODELLED = {12: "k_scale (quantized cache)", 13: "v_scale (quantized cache)", 14: "q_norm_weight",
               15: "k_norm_weight", 16: "query_seqlens"}


@register("GroupQueryAttention", domain=MS_DOMAIN)
class GroupQueryAttention(OpRule):
    """Inputs (query, key, value, past_key?, past_value?, seqlens_k, total_sequence_length, cos_cache?,
    sin_cache?, position_ids? (rejected), attention_bias?, head_sink?); outputs (output, present_key?,
    present_value?). See the module docstring."""

    num_heads: int = 0
    kv_num_heads: int = 0
    scale: float = 0.0  # 0: 1 / sqrt(head size)
    softcap: float = 0.0
    local_window_size: int = -1
    do_rotary: int = 0
    rotary_interleaved: int = 0
    smooth_softmax: int = -1
    causal: int = 1
    sliding_window_cache: int = 0
    qk_output: int = 0
    kv_cache_bit_width: int = 0
    k_quant_type: str = "NONE"
    v_quant_type: str = "NONE"
    qk_norm_epsilon: float = 1e-6
    q_norm_epsilon: float = 0.0
    k_norm_epsilon: float = 0.0

    accumulates = True

    def __post_init__(self) -> None:
        op = "GroupQueryAttention"
        for flag, what in ((self.causal != 1, "causal = 0"), (self.sliding_window_cache, "sliding_window_cache"),
                           (self.qk_output, "qk_output"), (self.k_quant_type != "NONE" or self.v_quant_type != "NONE"
                                                          or self.kv_cache_bit_width, "quantized caches")):
            if flag:
                raise UnsupportedOperator(f"{op}: {what} is not supported")

    @property
    def hazards(self) -> tuple[Hazard, ...]:  # type: ignore[override]
        return (OnGroupQueryOperands(self), Overflow())

    def score_rule(self) -> transformer.Attention:
        """The ONNX Attention rule with the same scores (its score hazard is reused)."""
        return transformer.Attention(q_num_heads=self.num_heads, kv_num_heads=self.kv_num_heads,
                                     scale=self.scale or None, softcap=self.softcap)

    def _head(self, q_shape: Sequence[int]) -> int:
        return q_shape[2] // self.num_heads

    def _scale(self, head: int) -> float:
        return self.scale or 1.0 / math.sqrt(head)

    def _sinks(self) -> bool:
        return self.smooth_softmax == 1

    # -------------------------------------------------------------- checks shared by both modes
    def _unpacked(self, inputs: Sequence) -> list:
        """``inputs`` with a packed query (key and value absent) split into query, key and value: its last
        axis holds the ``num_heads`` query heads, then the ``kv_num_heads`` key heads, then the value heads."""
        q, k, v = (_optional(inputs, i) for i in range(3))
        if q is None or k is not None or v is not None:
            return list(inputs)
        heads = self.num_heads + 2 * self.kv_num_heads
        if len(q.shape) != 3 or self.num_heads <= 0 or self.kv_num_heads <= 0 or q.shape[2] % heads:
            raise UnsupportedOperator(f"GroupQueryAttention: packed query of shape {tuple(q.shape)} does not hold "
                                      f"{self.num_heads} + 2 x {self.kv_num_heads} heads of one size")
        head = q.shape[2] // heads
        cuts = (0, self.num_heads * head, (self.num_heads + self.kv_num_heads) * head, q.shape[2])
        return [*(_last_axis_slice(q, a, b) for a, b in zip(cuts, cuts[1:])), *inputs[3:]]

    def _check(self, ctx: NodeContext | None, inputs: Sequence) -> Geometry:
        op = "GroupQueryAttention"
        inputs = self._unpacked(inputs)
        q, k, v, past_k, past_v = (_optional(inputs, i) for i in range(5))
        if self.num_heads <= 0 or self.kv_num_heads <= 0 or self.num_heads % self.kv_num_heads:
            raise UnsupportedOperator(f"{op}: num_heads {self.num_heads} must be a positive multiple of "
                                      f"kv_num_heads {self.kv_num_heads}")
        if k is None or v is None:
            raise UnsupportedOperator(f"{op}: key and value must be given together")
        if ctx is not None:
            self._check_node(ctx)
        if (past_k is None) != (past_v is None):
            raise UnsupportedOperator(f"{op}: past_key and past_value must be given together")
        shapes = [tuple(t.shape) for t in (q, k, v)]
        head = self._head(shapes[0])
        if any(len(s) != 3 for s in shapes) or shapes[0][2] != head * self.num_heads \
                or shapes[1] != shapes[2] or shapes[1][2] != head * self.kv_num_heads or shapes[1][:2] != shapes[0][:2]:
            raise UnsupportedOperator(f"{op}: query {shapes[0]}, key {shapes[1]}, value {shapes[2]} do not fit "
                                      f"{self.num_heads} / {self.kv_num_heads} heads of one size")
        past_shape = None if past_k is None or past_k.shape[2] == 0 else tuple(past_k.shape)
        return geometry(shapes[0], past_shape, exact_ints(_optional(inputs, 5), "seqlens_k", op),
                        exact_ints(_optional(inputs, 6), "total_sequence_length", op))

    def _check_node(self, ctx: NodeContext) -> None:
        ins, outs = ctx.node.inputs, ctx.node.outputs
        if len(ins) > 9 and ins[9]:
            raise UnsupportedOperator("GroupQueryAttention: position_ids is not supported")
        for index, what in _UNMODELLED.items():
            if len(ins) > index and ins[index]:
                raise UnsupportedOperator(f"GroupQueryAttention: {what} is not supported")
        if len(outs) > 3 and outs[3]:
            raise UnsupportedOperator("GroupQueryAttention: the output_qk output is not supported")
        if len(ins) > 3 and ins[3] and not (len(outs) > 2 and outs[1] and outs[2]):
            raise UnsupportedOperator("GroupQueryAttention: past_key/past_value without present_key/present_value "
                                      "outputs (onnxruntime 1.32's CPU kernel then attends an uninitialised "
                                      "buffer instead of the past)")
        if self.do_rotary and not (len(ins) > 8 and ins[7] and ins[8]):
            raise UnsupportedOperator("GroupQueryAttention: do_rotary needs cos_cache and sin_cache")

    def _rotation(self, head: int, cos_width: int) -> transformer.RotaryEmbedding:
        return rotation_rule(self.rotary_interleaved, 0, 0, (1, 1, 1, head), cos_width)

    # -------------------------------------------------------------- concrete
    def concrete_operands(self, inputs: Sequence) -> list:
        """(rotated Q (B, N, S, D), present key, present value, attention bias over the present keys)."""
        inputs = self._unpacked(inputs)
        geo = self._check(None, inputs)
        half = inputs[0].dtype == torch.float16  # float16 tensors, float32 arithmetic
        if half:
            inputs = [t.float() if isinstance(t, Tensor) and t.dtype == torch.float16 else t for t in inputs]
        q, k, v, past_k, past_v = (_optional(inputs, i) for i in range(5))
        qh, kh, vh = _split(q, self.num_heads), _split(k, self.kv_num_heads), _split(v, self.kv_num_heads)
        if self.do_rotary:
            cos, sin = inputs[7], inputs[8]
            rule, positions = self._rotation(qh.shape[-1], cos.shape[1]), geo.positions()
            qh, kh = (rule.concrete(None, t, cos, sin, positions) for t in (qh, kh))  # type: ignore[arg-type]
            if half:  # the kernel stores the rotated Q and K in float16
                qh, kh = (t.half().float() for t in (qh, kh))
        bias = _optional(inputs, 10)
        if bias is not None:
            bias = torch.nn.functional.pad(bias.to(q.dtype), (0, geo.present - bias.shape[-1]))
        return [qh, geo.place(kh, past_k), geo.place(vh, past_v), bias, None, None]

    def concrete(self, ctx: NodeContext, *inputs: Tensor | None) -> tuple[Tensor, ...]:
        inputs = self._unpacked(inputs)  # once: the steps below then find key and value present
        half = inputs[0].dtype == torch.float16
        if inputs[0].dtype not in (torch.float32, torch.float64) and not half:  # float64: the exact path
            raise UnsupportedOperator("GroupQueryAttention: float32 and float16 tensors only")
        geo = self._check(ctx, inputs)
        qh, keys, values, bias, _, _ = self.concrete_operands(inputs)  # float32 for float16 tensors
        group = self.num_heads // self.kv_num_heads
        scores = torch.matmul(qh, keys.repeat_interleave(group, 1).transpose(-1, -2)) * self._scale(qh.shape[-1])
        if self.softcap > 0:
            scores = torch.tanh(scores / self.softcap) * self.softcap
        if bias is not None:
            scores = scores + bias
        scores = torch.where(geo.attended(self.local_window_size), scores, -torch.inf)
        weights = self._softmax(scores, _optional(inputs, 11))
        zeroed = geo.keyless(self.local_window_size)
        if _writes_present(ctx.node.outputs):  # a row whose largest score is at most the lowest value: 0
            zeroed = zeroed | (scores <= torch.finfo(scores.dtype).min).all(-1, keepdim=True)
        weights = torch.where(zeroed, 0.0, weights)
        y = torch.matmul(weights, values.repeat_interleave(group, 1))
        y = y.transpose(1, 2).reshape(qh.shape[0], qh.shape[2], -1)
        outputs = tuple(t.half() for t in (y, keys, values)) if half else (y, keys, values)
        return outputs[:max(1, min(len(ctx.node.outputs), 3))]

    def _softmax(self, scores: Tensor, head_sink: Tensor | None) -> Tensor:
        if head_sink is None and not self._sinks():
            return torch.softmax(scores, dim=-1)
        sink = torch.zeros(()) if head_sink is None else head_sink.to(scores.dtype).reshape(1, -1, 1, 1)
        top = torch.maximum(scores.amax(-1, keepdim=True), sink)
        e = torch.exp(scores - top)
        return e / (e.sum(-1, keepdim=True) + torch.exp(sink - top))

    def score_operands(self, inputs: Sequence, operands: list) -> list:
        """The score hazard's operands (see :class:`~ranum.ops._attention.SoftmaxEveryRowHazard`) from
        :meth:`concrete_operands` or :meth:`abstract_operands`: Q, present K and V, the attended keys, the bias."""
        geo = self._check(None, self._unpacked(inputs))
        qh, keys, values, bias = operands[:4]
        return [qh, keys, values, geo.attended(self.local_window_size), bias]

    # -------------------------------------------------------------- abstract
    def abstract_operands(self, inputs: Sequence, budget: int) -> list:
        """Bounds of :meth:`concrete_operands` (4-D intervals)."""
        inputs = self._unpacked(inputs)
        geo = self._check(None, inputs)
        q, k, v, past_k, past_v = (_optional(inputs, i) for i in range(5))
        qh, kh, vh = (self._heads_interval(t, n) for t, n in ((q, self.num_heads), (k, self.kv_num_heads),
                                                              (v, self.kv_num_heads)))
        if self.do_rotary:
            cos, sin = inputs[7], inputs[8]
            rule, ctx = self._rotation(qh.shape[-1], cos.shape[1]), _budget_context(budget)
            positions = Interval.point(geo.positions(), TensorProto.INT64)
            qh, kh = (rule.rounded(rule.abstract(ctx, t, cos, sin, positions)) for t in (qh, kh))
        keys, values = (self._present(geo, t, p, budget) for t, p in ((kh, past_k), (vh, past_v)))
        bias = _optional(inputs, 10)
        if bias is not None:
            lo, hi = (torch.nn.functional.pad(t.to(torch.float64), (0, geo.present - bias.shape[-1]))
                      for t in bias.full())
            bias = Interval.from_full(lo, hi, bias.elem_type, budget)
        return [qh, keys, values, bias, None, None]

    @staticmethod
    def _heads_interval(t: Interval, heads: int) -> Interval:
        lo, hi = (_split(b.to(torch.float64), heads) for b in t.full())
        return Interval.from_full(lo, hi, t.elem_type)

    @staticmethod
    def _present(geo: Geometry, new: Interval, past: Interval | None, budget: int) -> Interval:
        past_bounds = (None, None) if past is None else past.full()
        lo, hi = (geo.place(n.to(torch.float64), p) for n, p in zip(new.full(), past_bounds))
        return Interval.from_full(lo, hi, new.elem_type, budget)

    def abstract(self, ctx: NodeContext, *inputs: Interval | None) -> tuple[Interval, ...]:
        inputs = self._unpacked(inputs)  # once: the steps below then find key and value present
        elem_type = inputs[0].elem_type
        _require_float_or_half("GroupQueryAttention", elem_type)
        geo = self._check(ctx, inputs)
        operands = self.abstract_operands(inputs, ctx.budget)
        qh, keys, values = operands[:3]
        v_lo, v_hi = (t.to(torch.float64) for t in values.full())
        first, last = geo.key_ranges(self.local_window_size)
        first = torch.minimum(first, last)  # a keyless row (output 0) reads one key instead
        pick = select_pick(1)
        low = torch.stack([range_reduce(v_lo[b], 1, [(first[b], last[b])], torch.minimum, pick)
                           for b in range(geo.batch)])
        high = torch.stack([range_reduce(v_hi[b], 1, [(first[b], last[b])], torch.maximum, pick)
                            for b in range(geo.batch)])
        group = self.num_heads // self.kv_num_heads
        low, high = (t.repeat_interleave(group, 1) for t in (low, high))
        low, high = convex_bounds(low, high, geo.present, elem_type)
        zeroed = self._zeroed_rows(ctx, inputs, operands, geo)
        low, high = torch.where(zeroed, low.clamp(max=0.0), low), torch.where(zeroed, high.clamp(min=0.0), high)
        lo, hi = (t.transpose(1, 2).reshape(geo.batch, geo.seq, -1) for t in (low, high))
        y = Interval.from_full(lo, hi, elem_type, ctx.budget)
        return (y, keys, values)[:max(1, min(len(ctx.node.outputs), 3))]


    def _zeroed_rows(self, ctx: NodeContext, inputs: Sequence, operands: list, geo: Geometry) -> Tensor:
        """(B, 1|Hq, S, 1): rows whose output may be 0 (or whose weights may sum to less than 1): keyless rows,
        every row with sinks or a score hazard, and, writing present key/value, rows whose scores can all be
        at most the lowest value."""
        keyless = geo.keyless(self.local_window_size)
        outputs = [None if not name else name for name in ctx.node.outputs]
        hazard = OnGroupQueryOperands(self).inner_for(outputs)
        scored = self.score_operands(inputs, operands)
        if self._sinks() or _optional(inputs, 11) is not None or hazard.check(scored, outputs) is not None:
            return torch.ones_like(keyless)
        return keyless | hazard.rows_reaching_lowest(scored) if hazard.zero_lowest_rows else keyless


def _require_float_or_half(op: str, elem_type: int) -> None:
    if elem_type not in (TensorProto.FLOAT, TensorProto.FLOAT16):
        raise UnsupportedOperator(f"{op}: float32 and float16 tensors only")


def _last_axis_slice(t: Tensor | Interval, start: int, stop: int) -> Tensor | Interval:
    if isinstance(t, Interval):
        lo, hi = (b.narrow(-1, start, stop - start) for b in t.full())
        return Interval.from_full(lo, hi, t.elem_type)
    return t.narrow(-1, start, stop - start)


def _budget_context(budget: int) -> NodeContext:
    """A context carrying only a block budget, for the inner rotation rule (which reads nothing else)."""
    return NodeContext(node=None, opset=23, input_types=(), output_types=(), output_shapes=(),  # type: ignore[arg-type]
                       budget=budget)
