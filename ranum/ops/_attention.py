"""Semantics, bounds and hazards of the fused ONNX Attention operator (its rule lives in transformer.py).

Semantics follow onnxruntime's CPU kernel (float32 and float16; 16-bit scores are computed in float32,
stored in float16, and the softmax runs in float32): ``scores = scale * Q @ K^T`` (GQA: query head
``h`` reads key/value head ``h // (Hq / Hkv)``), optional ``softcap * tanh(scores / softcap)``, plus
a bias: a float mask as given, a boolean mask as 0 (True) or the type's lowest value (False), and
``is_causal`` overlays the lowest value where key ``j > i + past``. A row whose every bias is at or
below the lowest value is *fully masked*: onnxruntime (and the ONNX errata of opset 23) output a zero
row for it, not NaN. Otherwise ``Y = softmax(scores + bias) @ V``.

Bounds. Any non-NaN output row is a convex combination of V's rows (weights >= 0 whose computed sum
is within ``delta`` of 1, however exp is approximated: the row sum normalises them) or, for a row
that can be fully masked, 0. So each output column lies in ``[W * min V, W * max V]`` (``W`` in
``[1 - delta, 1 + delta]``) plus the accumulation error of the weighted sum, joined with 0 where a
row can be fully masked: the bounds never grow with the scores. For small problems the softmax
weights are also bounded from the score bounds (:func:`ranum.ops.softmax._softmax_bounds`, a masked
position taken anywhere in ``[-inf, score + lowest]``, which covers every runtime's treatment) and
multiplied with V as intervals; the two are met. Invariants: bounds never NaN; sound for float32 and
float16 execution (16-bit sums accumulated in float32, as onnxruntime's CPU kernels do).

onnxruntime's contrib attention kernels (com.microsoft) have no zero row: they take the softmax of every
row, so :class:`SoftmaxEveryRowHazard` (their score hazard) adds each bias as a plain addend, rounding each
sum outward (an overflow to -inf included), and reports a row whose sums can all be -inf.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from onnx import TensorProto
from torch import Tensor

from ranum.domain import arith
from ranum.domain.dtypes import float_facts, is_bool
from ranum.domain.interval import Interval
from ranum.errors import UnsupportedOperator
from ranum.ops.hazards import Hazard, HazardHit
from ranum.ops.linear import interval_product
from ranum.ops.softmax import _softmax_bounds

if TYPE_CHECKING:
    from ranum.ops.transformer import Attention

__all__ = ["AttentionScoreHazard", "Layout", "SoftmaxEveryRowHazard", "attention_bounds", "attention_concrete",
           "biased_bounds", "convex_bounds", "layout_of", "present_bounds"]

_REFINE_LIMIT = 1 << 22  # score elements up to which the softmax-weight refinement is computed
Bounds = tuple[Tensor, Tensor]


# ----------------------------------------------------------------------------- layout
@dataclass(frozen=True)
class Layout:
    """Head geometry of one Attention node (4-D views are (batch, heads, sequence, head size))."""

    rank3: bool
    q_heads: int
    kv_heads: int
    seq: int
    past: int
    total: int

    @property
    def group(self) -> int:
        return self.q_heads // self.kv_heads

    def heads(self, t: Tensor, heads: int) -> Tensor:
        """(B, S, H * D) -> (B, H, S, D) for 3-D inputs; 4-D ones as they are."""
        return t.reshape(t.shape[0], t.shape[1], heads, -1).transpose(1, 2) if self.rank3 else t

    def output(self, t: Tensor) -> Tensor:
        """(B, H, S, Dv) -> the output layout ((B, S, H * Dv) for 3-D inputs)."""
        return t.transpose(1, 2).reshape(t.shape[0], t.shape[2], -1) if self.rank3 else t

    def expand(self, t: Tensor) -> Tensor:
        """Key/value heads repeated for the query heads that share them (GQA)."""
        return t.repeat_interleave(self.group, dim=1) if self.group > 1 else t

    def causal(self) -> Tensor:
        """True where key ``j`` lies after query ``i`` (``j > i + past``), shape (S, T)."""
        i = torch.arange(self.seq).reshape(-1, 1)
        j = torch.arange(self.total).reshape(1, -1)
        return j > i + self.past


def layout_of(rule: Attention, q: tuple[int, ...], k: tuple[int, ...], v: tuple[int, ...],
              past: tuple[int, ...] | None) -> Layout:
    """Check the operand shapes and derive the head geometry.

    Raises:
        UnsupportedOperator: ranks other than all 3 or all 4, missing head counts for 3-D inputs,
            head counts that do not divide, or mismatched head sizes.
    """
    op = "Attention"
    if not len(q) == len(k) == len(v) or len(q) not in (3, 4):
        raise UnsupportedOperator(f"{op}: Q, K, V of ranks {len(q)}, {len(k)}, {len(v)} (needs all 3 or all 4)")
    if len(q) == 3:
        hq, hk = rule.q_num_heads, rule.kv_num_heads
        if hq <= 0 or hk <= 0 or q[2] % hq or k[2] % hk or v[2] % hk:
            raise UnsupportedOperator(f"{op}: 3-D inputs need q_num_heads/kv_num_heads dividing the hidden sizes")
        head, k_head, seq, kv_seq = q[2] // hq, k[2] // hk, q[1], k[1]
    else:
        hq, hk, head, k_head, seq, kv_seq = q[1], k[1], q[3], k[3], q[2], k[2]
        if v[1] != hk:
            raise UnsupportedOperator(f"{op}: K has {hk} heads, V has {v[1]}")
    if hq % hk or head != k_head:
        raise UnsupportedOperator(f"{op}: {hq} query heads over {hk} key heads, head sizes {head} and {k_head}")
    past_len = 0 if past is None else past[2]
    return Layout(len(q) == 3, hq, hk, seq, past_len, past_len + kv_seq)


def _scale(rule: Attention, q_head: int) -> float:
    return rule.scale if rule.scale is not None else 1.0 / math.sqrt(q_head)


def _lowest(dtype: torch.dtype) -> float:
    return float(torch.finfo(dtype).min)


# ----------------------------------------------------------------------------- concrete
def _bias(rule: Attention, mask: Tensor | None, lay: Layout, dtype: torch.dtype) -> Tensor | None:
    """The additive bias (lowest value where masked), or None when there is neither mask nor causality."""
    lowest = _lowest(dtype)
    bias = None
    if mask is not None:
        if mask.shape[-1] != lay.total:
            raise UnsupportedOperator(f"Attention: mask has {mask.shape[-1]} keys, the keys number {lay.total}")
        bias = torch.where(mask, 0.0, lowest).to(dtype) if mask.dtype == torch.bool else mask
    if rule.is_causal:
        base = bias if bias is not None else torch.zeros((lay.seq, lay.total), dtype=dtype)
        bias = torch.where(lay.causal(), torch.tensor(lowest, dtype=dtype), base)
    return bias


@dataclass(frozen=True)
class ConcreteParts:
    """Intermediate values of one concrete evaluation (also read by the hazards)."""

    scores: Tensor  # scale * Q K^T (after softcap, before the bias), 4-D
    biased: Tensor  # scores + bias
    masked_rows: Tensor  # (B, Hq, S, 1): every bias at or below the lowest value
    keys: Tensor  # present key (past and new), 4-D, before GQA expansion
    values: Tensor
    lay: Layout


def _compute_type(dtype: torch.dtype) -> torch.dtype:
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def concrete_parts(rule: Attention, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None,
                   past_key: Tensor | None, past_value: Tensor | None) -> ConcreteParts:
    lay = layout_of(rule, tuple(q.shape), tuple(k.shape), tuple(v.shape),
                    None if past_key is None else tuple(past_key.shape))
    dtype, wide = q.dtype, _compute_type(q.dtype)
    qh, kh, vh = lay.heads(q, lay.q_heads), lay.heads(k, lay.kv_heads), lay.heads(v, lay.kv_heads)
    if past_key is not None and past_value is not None:
        kh, vh = torch.cat([past_key, kh], dim=2), torch.cat([past_value, vh], dim=2)
    scale = _scale(rule, qh.shape[-1])
    scores = (torch.matmul(qh.to(wide), lay.expand(kh).to(wide).transpose(-1, -2)) * scale).to(dtype)
    if rule.softcap > 0:
        scores = (torch.tanh(scores.to(wide) / rule.softcap) * rule.softcap).to(dtype)
    bias = _bias(rule, mask, lay, dtype)
    if bias is None:
        return ConcreteParts(scores, scores, torch.zeros(scores.shape[:-1] + (1,), dtype=torch.bool), kh, vh, lay)
    biased = (scores.to(wide) + bias.to(wide)).to(dtype)
    masked = (bias <= _lowest(dtype)).all(dim=-1, keepdim=True)
    return ConcreteParts(scores, biased, masked.expand(scores.shape[:-1] + (1,)), kh, vh, lay)


def attention_concrete(rule: Attention, outputs: int, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None,
                       past_key: Tensor | None, past_value: Tensor | None) -> tuple[Tensor, ...]:
    """Y (and present_key / present_value when ``outputs`` asks for them), as onnxruntime computes."""
    parts = concrete_parts(rule, q, k, v, mask, past_key, past_value)
    dtype, wide = q.dtype, _compute_type(q.dtype)
    weights = torch.softmax(parts.biased.to(wide), dim=-1).to(dtype)
    weights = torch.where(parts.masked_rows, torch.zeros((), dtype=dtype), weights)
    y = torch.matmul(weights.to(wide), parts.lay.expand(parts.values).to(wide)).to(dtype)
    return (parts.lay.output(y), parts.keys, parts.values)[:outputs]


# ----------------------------------------------------------------------------- abstract
def _heads_bounds(iv: Interval, lay: Layout, heads: int, past: Interval | None) -> Bounds:
    """Float64 full bounds in the 4-D head layout, the past (if any) prepended along the sequence."""
    lo, hi = (lay.heads(t.to(torch.float64), heads) for t in iv.full())
    if past is not None:
        p_lo, p_hi = (t.to(torch.float64) for t in past.full())
        lo, hi = torch.cat([p_lo, lo], dim=2), torch.cat([p_hi, hi], dim=2)
    return lo, hi


def present_bounds(iv: Interval, lay: Layout, heads: int, past: Interval | None, budget: int) -> Interval:
    """present_key / present_value: the past and new keys (values) in the 4-D layout (exact moves)."""
    lo, hi = _heads_bounds(iv, lay, heads, past)
    return Interval.from_full(lo, hi, iv.elem_type, budget)


def _round_out(lo: Tensor, hi: Tensor, elem_type: int) -> Bounds:
    """Bounds of one rounding to ``elem_type`` of any real value in [lo, hi] (saturating to +-inf)."""
    return Interval.create(lo, hi, tuple(tuple(range(n)) for n in lo.shape), lo.shape, elem_type) \
        .widened(1).full() if lo.numel() else (lo, hi)


def _mid_rad(lo: Tensor, hi: Tensor) -> Bounds:
    finite = torch.isfinite(lo) & torch.isfinite(hi)
    return (torch.where(finite, (lo + hi) / 2, torch.zeros_like(lo)),
            torch.where(finite, (hi - lo) / 2, torch.full_like(lo, torch.inf)))


@dataclass(frozen=True)
class Scores:
    """Score bounds (B, Hq, S, T): raw (scale * QK^T, rounded), after softcap, and after the bias."""

    raw_lo: Tensor
    raw_hi: Tensor
    lo: Tensor  # after the bias (a masked position anywhere in [-inf, score + lowest])
    hi: Tensor
    live_lo: Tensor  # after the bias, for positions that are not masked (-inf where one must be)


@dataclass(frozen=True)
class MaskStatus:
    """Per (B?, H?, S, T): whether the position may be / must be masked; bias bounds when not masked."""

    maybe: Tensor
    sure: Tensor
    live_lo: Tensor
    live_hi: Tensor

    def rows(self) -> Bounds:
        """(maybe fully masked, surely fully masked) per row, keeping the last axis as size 1."""
        return self.maybe.all(dim=-1, keepdim=True), self.sure.all(dim=-1, keepdim=True)


def mask_status(rule: Attention, mask: Interval | None, lay: Layout, elem_type: int) -> MaskStatus:
    lowest = -float_facts(elem_type).max
    shape = (1, 1, lay.seq, lay.total)
    if mask is None:
        maybe = torch.zeros(shape, dtype=torch.bool)
        sure, live_lo, live_hi = maybe, torch.zeros(shape, dtype=torch.float64), torch.zeros(shape, dtype=torch.float64)
    else:
        if mask.shape[-1] != lay.total:
            raise UnsupportedOperator(f"Attention: mask has {mask.shape[-1]} keys, the keys number {lay.total}")
        lo, hi = (t.to(torch.float64).reshape((1,) * (4 - len(mask.shape)) + tuple(mask.shape)) for t in mask.full())
        if is_bool(mask.elem_type):
            maybe, sure = lo == 0, hi == 0
            live_lo = live_hi = torch.zeros_like(lo)
        else:
            maybe, sure = lo <= lowest, hi <= lowest
            above = math.nextafter(lowest, 0.0)
            live_lo, live_hi = lo.clamp(min=above), hi.clamp(min=above)
    if rule.is_causal:
        excluded = lay.causal()
        maybe, sure = maybe | excluded, sure | excluded
    return MaskStatus(maybe, sure, live_lo, live_hi)


def score_bounds(rule: Attention, q: Interval, k: Interval, past_key: Interval | None, status: MaskStatus,
                 lay: Layout) -> Scores:
    """Bounds of the scores as onnxruntime stores them (see the module docstring)."""
    elem = q.elem_type
    q_lo, q_hi = _heads_bounds(q, lay, lay.q_heads, None)
    k_lo, k_hi = (lay.expand(t) for t in _heads_bounds(k, lay, lay.kv_heads, past_key))
    scale = _scale(rule, q_lo.shape[-1])
    keys = Interval.from_full(k_lo.transpose(-1, -2), k_hi.transpose(-1, -2), elem)
    ops = [Interval.from_full(q_lo, q_hi, elem), keys]
    mid, rad, abs_sum = interval_product(torch.matmul, ops)
    # the sum of D products, its scaling (applied anywhere: to Q, to K or to the sum) and its storage
    lo, hi = arith.with_accumulation_error(mid - rad, mid + rad, abs_sum * max(1.0, scale), q_lo.shape[-1] + 3, elem)
    raw_lo, raw_hi = _round_out(lo * scale, hi * scale, elem)
    lo, hi = raw_lo, raw_hi
    if rule.softcap > 0:
        lo, hi = _softcapped(lo, hi, rule.softcap, elem)
    lowest = -float_facts(elem).max
    live = arith.add(lo, hi, status.live_lo, status.live_hi)
    live_lo, live_hi = _round_out(*torch.broadcast_tensors(*live), elem)
    masked_hi = _round_out(hi + lowest, hi + lowest, elem)[1]
    out_lo = torch.where(status.maybe, torch.full_like(live_lo, -torch.inf), live_lo)
    out_hi = torch.where(status.sure, masked_hi, torch.where(status.maybe, torch.maximum(live_hi, masked_hi), live_hi))
    live_only = torch.where(status.sure, torch.full_like(live_lo, -torch.inf), live_lo)
    return Scores(raw_lo, raw_hi, out_lo, out_hi, live_only)


def _softcapped(lo: Tensor, hi: Tensor, cap: float, elem_type: int) -> Bounds:
    """cap * tanh(s / cap): increasing; tanh's approximation and the two products add a few ulps."""
    facts = float_facts(TensorProto.FLOAT)
    top = cap * (1 + 8 * facts.eps)
    lo, hi = cap * torch.tanh(lo / cap), cap * torch.tanh(hi / cap)
    lo = lo - 8 * facts.eps * lo.abs() - facts.tiny
    hi = hi + 8 * facts.eps * hi.abs() + facts.tiny
    return _round_out(lo.clamp(min=-top), hi.clamp(max=top), elem_type)


def _weight_spread(count: int, elem_type: int) -> tuple[float, float]:
    """Relative error ``delta`` of the computed softmax weights' sum, and its absolute part.

    ``w_i = e_i / s`` with ``s`` the float32 sum of the ``e_i`` (relative error gamma_T), each
    quotient rounded (an eps); 16-bit weights are then rounded to their type (an eps of it, and
    half its smallest subnormal each).
    """
    compute = float_facts(TensorProto.DOUBLE if elem_type == TensorProto.DOUBLE else TensorProto.FLOAT)
    own = float_facts(elem_type)
    delta = arith.accumulation_gamma(count + 4, TensorProto.DOUBLE if elem_type == TensorProto.DOUBLE
                                     else TensorProto.FLOAT) + 4 * compute.eps + own.eps
    return delta, count * (compute.tiny + own.subnormal)


def _hull(v_lo: Tensor, v_hi: Tensor, lay: Layout, elem_type: int) -> Bounds:
    """Bounds of every convex combination of V's rows, per column: (B, Hq, 1, Dv)."""
    low, high = lay.expand(v_lo.amin(dim=2, keepdim=True)), lay.expand(v_hi.amax(dim=2, keepdim=True))
    return convex_bounds(low, high, v_lo.shape[2], elem_type)


def convex_bounds(low: Tensor, high: Tensor, count: int, elem_type: int) -> Bounds:
    """Bounds of a computed softmax-weighted sum of ``count`` rows whose values lie in [low, high]: the
    weights' sum within ``delta`` of 1, plus the accumulation error of the weighted sum."""
    delta, absolute = _weight_spread(count, elem_type)
    w_lo, w_hi = 1 - delta - absolute, 1 + delta + absolute
    low = torch.where(low < 0, low * w_hi, low * w_lo)
    high = torch.where(high > 0, high * w_hi, high * w_lo)
    magnitude = torch.maximum(low.abs(), high.abs())
    return arith.with_accumulation_error(low, high, magnitude, count + 1, elem_type)


def _weighted(scores: Scores, v_lo: Tensor, v_hi: Tensor, lay: Layout, elem_type: int) -> Bounds:
    """softmax(score bounds) @ V as an interval product (weights rounded to 16-bit types first)."""
    count = scores.lo.shape[-1]
    ones = torch.ones((1, 1, 1, count), dtype=torch.float64)
    p_lo, p_hi = _softmax_bounds(scores.lo, scores.hi, ones, -1, count, elem_type)
    own = float_facts(elem_type)
    if elem_type != TensorProto.FLOAT and elem_type != TensorProto.DOUBLE:
        p_lo = (p_lo * (1 - own.eps) - own.subnormal).clamp(min=0.0)
        p_hi = (p_hi * (1 + own.eps) + own.subnormal).clamp(max=1.0)
    weights = Interval.from_full(p_lo, p_hi, elem_type)
    values = Interval.from_full(lay.expand(v_lo), lay.expand(v_hi), elem_type)
    mid, rad, abs_sum = interval_product(torch.matmul, [weights, values])
    return arith.with_accumulation_error(mid - rad, mid + rad, abs_sum, count + 1, elem_type)


def attention_bounds(rule: Attention, q: Interval, k: Interval, v: Interval, mask: Interval | None,
                     past_key: Interval | None, past_value: Interval | None, budget: int) -> Interval:
    """Bounds of Y (before its final rounding, which the interpreter adds)."""
    lay = layout_of(rule, q.shape, k.shape, v.shape, None if past_key is None else past_key.shape)
    v_lo, v_hi = _heads_bounds(v, lay, lay.kv_heads, past_value)
    lo, hi = _hull(v_lo, v_hi, lay, q.elem_type)
    status = mask_status(rule, mask, lay, q.elem_type)
    shape = (q.shape[0], lay.q_heads, lay.seq, v_lo.shape[-1])
    lo, hi = lo.expand(shape), hi.expand(shape)
    if q.shape[0] * lay.q_heads * lay.seq * lay.total <= _REFINE_LIMIT:
        w_lo, w_hi = _weighted(score_bounds(rule, q, k, past_key, status, lay), v_lo, v_hi, lay, q.elem_type)
        lo, hi = torch.maximum(lo, w_lo), torch.minimum(hi, w_hi)
    maybe_masked, _ = status.rows()
    lo = torch.where(maybe_masked, lo.clamp(max=0.0), lo)
    hi = torch.where(maybe_masked, hi.clamp(min=0.0), hi)
    return Interval.from_full(lay.output(lo), lay.output(hi), q.elem_type, budget)


# ----------------------------------------------------------------------------- hazards
def _operands(inputs) -> tuple:
    padded = list(inputs) + [None] * (6 - len(inputs))
    return tuple(padded[:6])


def _scores_surely_moderate(rule: Attention, q: Interval, k: Interval, mask: Interval | None,
                            past_key: Interval | None, lay: Layout, addends: float = 0.0) -> bool:
    """A cheap sufficient condition for finite scores without materialising them: by Cauchy-Schwarz
    every |q . k| and every partial sum is at most ||q|| ||k|| (largest magnitudes), so when
    ``max(1, scale) ||q|| max ||k||`` (with its rounding) stays below a quarter of the largest finite
    value and a float mask (or ``addends``, the summed magnitudes of other additive terms) stays within
    half of it, no score nor biased score can be infinite, nor reach the lowest value."""
    facts = float_facts(q.elem_type)
    if not addends < facts.max / 2:
        return False
    if mask is not None and not is_bool(mask.elem_type):
        if not (mask.max() < facts.max / 2 and mask.min() > -facts.max / 2):
            return False
    q_lo, q_hi = _heads_bounds(q, lay, lay.q_heads, None)
    k_lo, k_hi = _heads_bounds(k, lay, lay.kv_heads, past_key)
    q_norm = torch.maximum(q_lo.abs(), q_hi.abs()).square().sum(-1).sqrt()  # (B, Hq, S)
    k_norm = torch.maximum(k_lo.abs(), k_hi.abs()).square().sum(-1).sqrt().amax(-1)  # (B, Hk)
    gamma = arith.accumulation_gamma(q_lo.shape[-1] + 3, q.elem_type)
    bound = max(1.0, _scale(rule, q_lo.shape[-1])) * q_norm.amax(-1) * lay.expand(k_norm) * (1 + gamma) * 1.01
    return bool((bound < facts.max / 4).all())


@dataclass(frozen=True)
class AttentionScoreHazard(Hazard):
    """A row that is not fully masked can hold a score of +inf or NaN (Q K^T overflows, or a mask of
    +inf), or only -inf: the softmax then computes inf - inf and the whole output row is NaN."""

    rule: Attention
    name: str = "attention-infinite-score"
    description: str = ("an attention score (scale * Q K^T + mask) can be +inf, or a row only -inf: the "
                        "softmax gives NaN")
    operand: int = 0

    def check(self, inputs, outputs):
        q, k, v, mask, past_key, _ = _operands(inputs)
        if q is None or k is None or v is None or q.shape is None or k.shape is None or v.shape is None:
            return None
        lay = layout_of(self.rule, q.shape, k.shape, v.shape, None if past_key is None else past_key.shape)
        if _scores_surely_moderate(self.rule, q, k, mask, past_key, lay):
            return None
        status = mask_status(self.rule, mask, lay, q.elem_type)
        sc = score_bounds(self.rule, q, k, past_key, status, lay)
        _, sure_full = status.rows()
        raw_bad = ~torch.isfinite(sc.raw_lo) | ~torch.isfinite(sc.raw_hi)
        possible = raw_bad.any(-1, keepdim=True) | (sc.hi == torch.inf).any(-1, keepdim=True) \
            | (sc.live_lo == -torch.inf).all(-1, keepdim=True)
        possible = possible & ~sure_full
        if not bool(possible.any()):
            return None
        certain = bool(((sc.lo == torch.inf) & ~sure_full).any())
        return HazardHit(certain, float(sc.lo.min()), float(sc.hi.max()))

    def triggered(self, inputs, outputs):
        parts = concrete_parts(self.rule, *_operands(inputs))
        b = parts.biased
        bad = torch.isnan(b).any(-1, keepdim=True) | torch.isposinf(b).any(-1, keepdim=True) \
            | torch.isneginf(b).all(-1, keepdim=True)
        return bad & ~parts.masked_rows

    def distance(self, inputs, outputs):
        parts = concrete_parts(self.rule, *_operands(inputs))
        limit = torch.finfo(parts.scores.dtype).max
        return limit - parts.scores.to(torch.float64).abs().amax(-1, keepdim=True)

    def invalid_text(self, elem_type):
        return "a score of +inf, or a row of only -inf (not fully masked)"


# ----------------------------------------------------------------------------- kernels without a zero row
def _terms_magnitude(terms: Sequence[Interval | None]) -> float:
    return sum(max(abs(t.min()), abs(t.max())) for t in terms if t is not None)


def biased_bounds(rule: Attention, q: Interval, k: Interval, v: Interval, terms: Sequence[Interval | None]
                  ) -> tuple[Tensor, Tensor, Tensor]:
    """Bounds (B, Hq, S, T) of ``scores + t1 + t2 + ...``, each sum rounded (an overflow to -inf stays -inf),
    and where the raw scores can be non-finite. Every term is a plain addend: nothing is taken as masked."""
    lay = layout_of(rule, q.shape, k.shape, v.shape, None)
    sc = score_bounds(rule, q, k, None, mask_status(rule, None, lay, q.elem_type), lay)
    lo, hi = sc.lo, sc.hi
    for term in terms:
        if term is not None:
            t_lo, t_hi = (t.to(torch.float64).reshape((1,) * (4 - len(term.shape)) + tuple(term.shape))
                          for t in term.full())
            lo, hi = _round_out(*torch.broadcast_tensors(*arith.add(lo, hi, t_lo, t_hi)), q.elem_type)
    return ~torch.isfinite(sc.raw_lo) | ~torch.isfinite(sc.raw_hi), lo, hi


def _every_row_operands(inputs) -> tuple:
    """(q, k, v, attended keys or None, additive terms...) of :class:`SoftmaxEveryRowHazard`."""
    padded = list(inputs) + [None] * (4 - len(inputs))
    return padded[0], padded[1], padded[2], padded[3], tuple(padded[4:])


@dataclass(frozen=True)
class SoftmaxEveryRowHazard(Hazard):
    """The score hazard of onnxruntime's contrib attention kernels, which take the softmax of every row over
    its attended keys (all keys unless ``attended`` says otherwise): a score of +inf or NaN, or a row whose
    biased scores are all -inf (a bias of -inf, or a sum that overflows), gives a NaN row; with
    ``zero_lowest_rows`` (GroupQueryAttention writing present key/value) a row whose largest biased score is
    at most the lowest value is written as 0 instead. Operands: (q, k, v, attended (B|1, 1, S, T) booleans or
    None, additive terms in the order the kernel adds them)."""

    rule: Attention
    zero_lowest_rows: bool = False
    name: str = AttentionScoreHazard.name
    description: str = AttentionScoreHazard.description
    operand: int = 0

    def check(self, inputs, outputs):
        q, k, v, attended, terms = _every_row_operands(inputs)
        if any(t is None for t in (q, k, v)) or any(t.shape is None for t in (q, k, v, *terms) if t is not None):
            return None
        lay = layout_of(self.rule, q.shape, k.shape, v.shape, None)
        if _scores_surely_moderate(self.rule, q, k, None, None, lay, _terms_magnitude(terms)):
            return None
        raw_bad, lo, hi = biased_bounds(self.rule, q, k, v, terms)
        live = torch.ones_like(lo, dtype=torch.bool) if attended is None else attended.expand(lo.shape)
        possible = ((raw_bad | (hi == torch.inf)) & live).any(-1)
        certain = ((lo == torch.inf) & live).any(-1)
        if not self.zero_lowest_rows:
            possible = possible | (((lo == -torch.inf) | ~live).all(-1) & live.any(-1))
            certain = certain | (((hi == -torch.inf) | ~live).all(-1) & live.any(-1))
        if not bool(possible.any()):
            return None
        return HazardHit(bool(certain.any()), float(lo.min()), float(hi.max()))

    def rows_reaching_lowest(self, inputs) -> Tensor | bool:
        """(B, Hq, S, 1): where every attended biased score can be at most the lowest value (False when none can)."""
        q, k, v, attended, terms = _every_row_operands(inputs)
        lay = layout_of(self.rule, q.shape, k.shape, v.shape, None)
        if _scores_surely_moderate(self.rule, q, k, None, None, lay, _terms_magnitude(terms)):
            return False
        _, lo, _ = biased_bounds(self.rule, q, k, v, terms)
        live = torch.ones_like(lo, dtype=torch.bool) if attended is None else attended.expand(lo.shape)
        return ((lo <= -float_facts(q.elem_type).max) | ~live).all(-1, keepdim=True)

    def biased(self, inputs) -> tuple[Tensor, Tensor]:
        """Concrete biased scores (compute type) and the attended keys (all where not given)."""
        q, k, v, attended, terms = _every_row_operands(inputs)
        scores = concrete_parts(self.rule, q, k, v, None, None, None).scores.to(_compute_type(q.dtype))
        for term in terms:
            if term is not None:
                scores = scores + term.to(scores.dtype)
        live = torch.ones_like(scores, dtype=torch.bool) if attended is None else attended.expand(scores.shape)
        return scores, live

    def triggered(self, inputs, outputs):
        scores, live = self.biased(inputs)
        bad = ((torch.isnan(scores) | torch.isposinf(scores)) & live).any(-1, keepdim=True)
        if self.zero_lowest_rows:
            return bad
        return bad | ((torch.isneginf(scores) | ~live).all(-1, keepdim=True) & live.any(-1, keepdim=True))

    def distance(self, inputs, outputs):
        q, k, v, _, _ = _every_row_operands(inputs)
        scores = concrete_parts(self.rule, q, k, v, None, None, None).scores
        return torch.finfo(scores.dtype).max - scores.to(torch.float64).abs().amax(-1, keepdim=True)

    def invalid_text(self, elem_type):
        return "a score of +inf, or a row of only -inf"
