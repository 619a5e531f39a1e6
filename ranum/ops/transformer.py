"""Fused transformer operators of opset 23: Attention, RMSNormalization, RotaryEmbedding.

Attention: its semantics, bounds and hazards are in :mod:`ranum.ops._attention` (outputs are convex
combinations of V's rows, or 0 for a fully masked row).

RMSNormalization: ``y = x / sqrt(mean(x^2) + epsilon) * scale`` over the axes ``[axis, rank)``,
computed in the stash type (float32 by default; a float64 input stays float64). For element ``i``
with ``R`` the sum of the other squares of its slice, ``z = x / sqrt((x^2 + R) / n + eps)`` grows
with ``x`` and shrinks with ``R``. The computed mean square lies in ``[c (x^2 + R) / n - a, C (x^2 +
R) / n + a]`` (``c, C = 1 -+ gamma_{n+2}``, ``a`` the underflow of the squares) and is never
negative, so the bound is taken at the end of x's range (or, when the slack ``a`` can exceed
``c R / n + eps``, at the turning point ``x0`` where the computed denominator can reach ``eps``):
``|z| <= sqrt(n / c)`` whenever the others or eps keep the denominator away from 0. The sqrt, the
division, and the cast of 16-bit results add a few eps; the scale is an interval product.

RotaryEmbedding: ``real = cos x1 - sin x2``, ``imag = sin x1 + cos x2`` on the rotated part (halves,
or even/odd elements when ``interleaved``), the rest passed through. Bounds: interval products,
met with Cauchy-Schwarz ``|real|, |imag| <= sqrt(cos^2 + sin^2) sqrt(x1^2 + x2^2)``, widened by the
rounding of the two products and the sum (in the tensor's type, 16-bit included).
Invariants: bounds never NaN; sound for onnxruntime's float32/float16 execution.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from onnx import TensorProto
from torch import Tensor

from ranum.domain import arith
from ranum.domain.dtypes import FloatFacts, float_facts, torch_dtype
from ranum.domain.interval import Interval
from ranum.errors import UnsupportedOperator
from ranum.ops import _attention
from ranum.ops._base import NodeContext, OpRule, exact_ints
from ranum.ops.hazards import Hazard, HazardHit, Overflow
from ranum.ops.registry import register

__all__ = ["Attention", "RMSNormalization", "RmsZeroHazard", "RotaryEmbedding", "concrete_inverse_rms", "inverse_rms",
           "mean_square"]

Bounds = tuple[Tensor, Tensor]


# ------------------------------------------------------------------------------ Attention
@register("Attention", since=23)
class Attention(OpRule):
    """Scaled dot-product attention with optional mask, causality, softcap, GQA and a key/value cache.

    Unsupported (UnsupportedOperator): the qk_matmul_output output, nonpad_kv_seqlen (opset 24) and
    sliding windows (opset 25).
    """

    is_causal: int = 0
    kv_num_heads: int = 0
    q_num_heads: int = 0
    qk_matmul_output_mode: int = 0
    scale: float | None = None
    softcap: float = 0.0
    softmax_precision: int = 0
    left_window_size: int = -1
    right_window_size: int = -1

    accumulates = True

    def __post_init__(self) -> None:
        if self.left_window_size >= 0 or self.right_window_size >= 0:
            raise UnsupportedOperator("Attention: sliding windows (left/right_window_size) are not supported")
        if self.scale is not None and not self.scale > 0:
            raise UnsupportedOperator(f"Attention: scale {self.scale} (must be positive)")

    @property
    def hazards(self) -> tuple[Hazard, ...]:  # type: ignore[override]
        return (_attention.AttentionScoreHazard(self), Overflow())

    def _check_node(self, ctx: NodeContext) -> int:
        """Number of outputs to produce (Y, present_key, present_value)."""
        outs, ins = ctx.node.outputs, ctx.node.inputs
        if len(outs) > 3 and outs[3]:
            raise UnsupportedOperator("Attention: the qk_matmul_output output is not supported")
        if len(ins) > 6 and ins[6]:
            raise UnsupportedOperator("Attention: nonpad_kv_seqlen is not supported")
        if bool(len(ins) > 4 and ins[4]) != bool(len(ins) > 5 and ins[5]):
            raise UnsupportedOperator("Attention: past_key and past_value must be given together")
        return min(len(outs), 3)

    def concrete(self, ctx: NodeContext, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None,
                 past_key: Tensor | None = None, past_value: Tensor | None = None,
                 *rest: Tensor | None) -> tuple[Tensor, ...]:
        count = self._check_node(ctx)
        return _attention.attention_concrete(self, count, q, k, v, mask, past_key, past_value)

    def abstract(self, ctx: NodeContext, q: Interval, k: Interval, v: Interval, mask: Interval | None = None,
                 past_key: Interval | None = None, past_value: Interval | None = None,
                 *rest: Interval | None) -> tuple[Interval, ...]:
        count = self._check_node(ctx)
        y = _attention.attention_bounds(self, q, k, v, mask, past_key, past_value, ctx.budget)
        if count == 1:
            return (y,)
        lay = _attention.layout_of(self, q.shape, k.shape, v.shape, None if past_key is None else past_key.shape)
        present = (_attention.present_bounds(k, lay, lay.kv_heads, past_key, ctx.budget),
                   _attention.present_bounds(v, lay, lay.kv_heads, past_value, ctx.budget))
        return (y, *present)[:count]


# ------------------------------------------------------------------------------ RMSNormalization
_STASH = {1: TensorProto.FLOAT, 10: TensorProto.FLOAT16, 11: TensorProto.DOUBLE, 16: TensorProto.BFLOAT16}


def _stash_type(stash_type: int, elem_type: int) -> int:
    """The element type stage one is computed in (a float64 input stays float64, as onnxruntime does)."""
    return TensorProto.DOUBLE if elem_type == TensorProto.DOUBLE else _STASH[stash_type]


@dataclass(frozen=True)
class _RmsError:
    """Rounding of the mean square: within [c m - a, C m + a] of the real mean square m, never below 0."""

    c: float
    big_c: float
    a: float
    eps: float  # relative error of the sqrt, the division and a 16-bit cast of z

    @staticmethod
    def of(n: int, stash: int, elem_type: int) -> _RmsError:
        facts = float_facts(stash)
        gamma = 2 * (n + 2) * facts.eps / (1 - (n + 2) * facts.eps)
        if not gamma < 1:
            raise UnsupportedOperator(f"RMSNormalization: {n} elements per slice are too many for the stash type")
        return _RmsError(1 - gamma, 1 + gamma, 3 * facts.subnormal, 4 * facts.eps + float_facts(elem_type).eps)


@dataclass(frozen=True)
class RmsZeroHazard(Hazard):
    """mean(x^2) + epsilon of a slice can be 0 (epsilon = 0 and every square of the slice underflows):
    x / 0 gives NaN (0/0) or inf."""

    axis: int
    epsilon: float
    stash_type: int
    name: str = "rms-normalization-zero"
    description: str = "mean of squares + epsilon of an all-zero slice is 0: x / 0 (0/0 is NaN)"

    def check(self, inputs, outputs):
        x = inputs[0]
        if x is None or x.shape is None or x.numblocks == 0 or self.epsilon > 0:
            return None
        lo, hi = (t.to(torch.float64) for t in x.full())
        rows = math.prod(x.shape[: self.axis % len(x.shape)])
        near = (lo.clamp(min=0.0) - hi.clamp(max=0.0)).reshape(rows, -1)
        err = _RmsError.of(near.shape[1], _stash_type(self.stash_type, x.elem_type), x.elem_type)
        small = err.c * (near * near).mean(1) - err.a + self.epsilon <= 0
        if not bool(small.any()):
            return None
        far = torch.maximum(lo.abs(), hi.abs()).reshape(rows, -1)
        return HazardHit(bool((far.amax(1) == 0).any()), float(lo.min()), float(hi.max()))

    def _mean_square(self, x: Tensor) -> Tensor:
        return (mean_square(x, self.axis % x.dim(), self.stash_type) + self.epsilon).expand_as(x)

    def triggered(self, inputs, outputs):
        return self._mean_square(inputs[0]) <= 0

    def distance(self, inputs, outputs):
        return self._mean_square(inputs[0]).to(torch.float64)

    def invalid_text(self, elem_type):
        return f"mean of squares of a slice + {self.epsilon:g} = 0"


def _stash_dtype(stash_type: int, dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch_dtype(_STASH[stash_type])


def _rms_upper(top: Tensor, bottom: Tensor, r_lo: Tensor, r_hi: Tensor, n: int, epsilon: float,
               err: _RmsError) -> Tensor:
    """Largest computed ``x / sqrt(mean square + eps)`` for ``x`` in [bottom, top] (see the module
    docstring): ``r_lo``/``r_hi`` bound the sum of the slice's other squares."""
    # top > 0: g(x) = x / sqrt(max(c (x^2 + R_lo) / n - a, 0) + eps), increasing up to x0, then
    # decreasing where the slack a can outweigh c R_lo / n + eps
    b = err.c * r_lo / n - err.a
    x0 = torch.sqrt((-b * n / err.c).clamp(min=0.0))
    start = bottom.clamp(min=0.0)
    x = torch.where(b + epsilon >= 0, top, torch.minimum(torch.maximum(x0, start), top))
    den = torch.sqrt((err.c * (x * x + r_lo) / n - err.a).clamp(min=0.0) + epsilon)
    positive = torch.where(den > 0, x / den.clamp(min=1e-300), torch.full_like(x, torch.inf)) * (1 + err.eps)
    # top <= 0: the value nearest 0 over the largest denominator
    den_hi = torch.sqrt(err.big_c * (top * top + r_hi) / n + err.a + epsilon)
    negative = top / den_hi * (1 - err.eps)
    return torch.where(top > 0, positive, negative)


@dataclass(frozen=True)
class _RowSquares:
    """x's bounds as (rows, n) slices over ``[axis, rank)``, with each element's smallest and largest square."""

    lo: Tensor
    hi: Tensor
    near2: Tensor
    far2: Tensor
    err: _RmsError


def _row_squares(x: Interval, axis: int, stash_type: int) -> _RowSquares:
    lo, hi = (t.to(torch.float64) for t in x.full())
    rows = math.prod(x.shape[:axis])
    lo, hi = lo.reshape(rows, -1), hi.reshape(rows, -1)
    err = _RmsError.of(lo.shape[1], _stash_type(stash_type, x.elem_type), x.elem_type)
    near2 = (lo.clamp(min=0.0) - hi.clamp(max=0.0)).square()
    return _RowSquares(lo, hi, near2, torch.maximum(lo.abs(), hi.abs()).square(), err)


def rms_bounds(x: Interval, axis: int, epsilon: float, stash_type: int) -> Bounds:
    """Full-shape bounds of ``x / sqrt(mean(x^2) + eps)`` over the axes ``[axis, rank)``."""
    sq = _row_squares(x, axis, stash_type)
    lo, hi, near2, far2, err = sq.lo, sq.hi, sq.near2, sq.far2, sq.err
    n = lo.shape[1]
    r_lo = (near2.sum(1, keepdim=True) - near2).clamp(min=0.0)
    r_hi = far2.sum(1, keepdim=True) - far2
    upper = _rms_upper(hi, lo, r_lo, r_hi, n, epsilon, err)
    lower = -_rms_upper(-lo, -hi, r_lo, r_hi, n, epsilon, err)
    # a mean square that can overflow the stash type is inf there, and x / inf = 0
    overflow = _squares_may_overflow(far2, stash_type, x.elem_type)
    lower = torch.where(overflow, lower.clamp(max=0.0), lower)
    upper = torch.where(overflow, upper.clamp(min=0.0), upper)
    return arith.nan_to(lower, -torch.inf).reshape(x.shape), arith.nan_to(upper, torch.inf).reshape(x.shape)


def _squares_may_overflow(far2: Tensor, stash_type: int, elem_type: int) -> Tensor:
    """Per row of ``far2`` (the elements' largest squares), whether their sum can overflow the stash type."""
    limit = float_facts(_stash_type(stash_type, elem_type)).max / 2
    return far2.sum(1, keepdim=True) > limit


def inverse_rms(x: Interval, axis: int, epsilon: float, stash_type: int, elem_type: int) -> Interval:
    """Bounds of ``1 / sqrt(mean(x^2 over [axis, rank)) + epsilon)`` computed in the stash type, one value
    per slice (shape ``x.shape[:axis] + (1, ...)``, element type ``elem_type``); +inf where it can be 1/0."""
    sq = _row_squares(x, axis, stash_type)
    err = sq.err
    smallest = (err.c * sq.near2.mean(1, keepdim=True) - err.a).clamp(min=0.0) + epsilon
    largest = err.big_c * sq.far2.mean(1, keepdim=True) + err.a + epsilon
    upper = torch.where(smallest > 0, torch.rsqrt(smallest.clamp(min=1e-300)) * (1 + err.eps),
                        torch.full_like(smallest, math.inf))
    lower = torch.rsqrt(largest) * (1 - err.eps)
    lower = torch.where(_squares_may_overflow(sq.far2, stash_type, x.elem_type), torch.zeros_like(lower), lower)
    shape = tuple(x.shape[:axis]) + (1,) * (len(x.shape) - axis)
    return Interval.from_full(arith.nan_to(lower, 0.0).reshape(shape), arith.nan_to(upper, math.inf).reshape(shape),
                              elem_type)


def mean_square(x: Tensor, axis: int, stash_type: int) -> Tensor:
    """``mean(x^2 over [axis, rank))`` computed in the stash type (keepdim), as the runtime does."""
    wide = x.to(_stash_dtype(stash_type, x.dtype))
    return (wide * wide).mean(dim=tuple(range(axis, x.dim())), keepdim=True)


def concrete_inverse_rms(x: Tensor, axis: int, epsilon: float, stash_type: int) -> Tensor:
    """``1 / sqrt(mean(x^2 over [axis, rank)) + epsilon)`` in the stash type (keepdim)."""
    return 1.0 / torch.sqrt(mean_square(x, axis, stash_type) + epsilon)


@register("RMSNormalization", since=23)
class RMSNormalization(OpRule):
    """y = x / sqrt(mean(x^2 over [axis, rank)) + epsilon) * scale (scale broadcast to x)."""

    axis: int = -1
    epsilon: float = 1e-5
    stash_type: int = 1

    accumulates = True

    def __post_init__(self) -> None:
        if self.stash_type not in _STASH or not self.epsilon >= 0:
            raise UnsupportedOperator(f"RMSNormalization: stash_type {self.stash_type}, epsilon {self.epsilon:g} "
                                      f"(needs stash_type in {sorted(_STASH)} and epsilon >= 0)")

    @property
    def hazards(self) -> tuple[Hazard, ...]:  # type: ignore[override]
        return (RmsZeroHazard(self.axis, self.epsilon, self.stash_type), Overflow())

    def _axis(self, rank: int) -> int:
        if not -rank <= self.axis < rank:
            raise UnsupportedOperator(f"RMSNormalization: axis {self.axis} out of range for rank {rank}")
        return self.axis % rank

    def concrete(self, ctx: NodeContext, x: Tensor, scale: Tensor) -> Tensor:
        wide = x.to(_stash_dtype(self.stash_type, x.dtype))
        mean = mean_square(x, self._axis(x.dim()), self.stash_type)
        normalized = (wide / torch.sqrt(mean + self.epsilon)).to(x.dtype)
        if x.dtype in (torch.float16, torch.bfloat16):
            return (normalized.float() * scale.float()).to(x.dtype)
        return normalized * scale

    def abstract(self, ctx: NodeContext, x: Interval, scale: Interval) -> Interval:
        z_lo, z_hi = rms_bounds(x, self._axis(len(x.shape)), self.epsilon, self.stash_type)
        s_lo, s_hi = (t.to(torch.float64).expand(x.shape) for t in scale.broadcast_to(x.shape).full())
        lo, hi = arith.mul(z_lo, z_hi, s_lo, s_hi)
        return Interval.from_full(lo, hi, x.elem_type, ctx.budget)


# ------------------------------------------------------------------------------ RotaryEmbedding
@register("RotaryEmbedding", since=23)
class RotaryEmbedding(OpRule):
    """Rotate (x1, x2) pairs of each head by the angles of cos_cache/sin_cache at position_ids."""

    interleaved: int = 0
    num_heads: int = 0
    rotary_embedding_dim: int = 0

    hazards = (Overflow(),)
    accumulates = True  # a difference of products: keep exact inputs on the abstract path (cancellation)

    def _to_heads(self, x: Tensor) -> Tensor:
        """(B, H, S, D) or (B, S, H * D) -> (B, S, H, D)."""
        if x.dim() == 4:
            return x.transpose(1, 2)
        if x.dim() != 3 or self.num_heads <= 0 or x.shape[2] % self.num_heads:
            raise UnsupportedOperator(f"RotaryEmbedding: input of shape {tuple(x.shape)} with num_heads "
                                      f"{self.num_heads} (3-D inputs need num_heads dividing the hidden size)")
        return x.reshape(x.shape[0], x.shape[1], self.num_heads, -1)

    def _from_heads(self, y: Tensor, shape: tuple[int, ...]) -> Tensor:
        return y.transpose(1, 2) if len(shape) == 4 else y.reshape(shape)

    def _split(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(x1, x2, the part left alone) of a (B, S, H, D) tensor."""
        dim = self.rotary_embedding_dim or x.shape[-1]
        if dim % 2 or dim > x.shape[-1]:
            raise UnsupportedOperator(f"RotaryEmbedding: rotary_embedding_dim {dim} for head size {x.shape[-1]}")
        rotated, rest = x[..., :dim], x[..., dim:]
        if self.interleaved:
            return rotated[..., 0::2], rotated[..., 1::2], rest
        return rotated[..., : dim // 2], rotated[..., dim // 2:], rest

    def _join(self, real: Tensor, imag: Tensor, rest: Tensor) -> Tensor:
        if self.interleaved:
            rotated = torch.stack([real, imag], dim=-1).flatten(-2)
        else:
            rotated = torch.cat([real, imag], dim=-1)
        return torch.cat([rotated, rest], dim=-1)

    def _cache(self, cache: Tensor, positions: list[int] | None, shape: tuple[int, ...]) -> Tensor:
        """The cache rows of each (batch, position) as (B, S, 1, D / 2)."""
        if positions is None:
            return cache.unsqueeze(2)
        if any(not 0 <= p < cache.shape[0] for p in positions):
            raise UnsupportedOperator("RotaryEmbedding: position_ids outside the cache")
        index = torch.tensor(positions, dtype=torch.long).reshape(shape)
        return cache[index].unsqueeze(2)

    def concrete(self, ctx: NodeContext, x: Tensor, cos: Tensor, sin: Tensor,
                 position_ids: Tensor | None = None) -> Tensor:
        positions = None if position_ids is None else [int(p) for p in position_ids.reshape(-1).tolist()]
        shape = None if position_ids is None else tuple(position_ids.shape)
        wide = torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype
        c, s = (self._cache(t, positions, shape).to(wide) for t in (cos, sin))
        x1, x2, rest = self._split(self._to_heads(x.to(wide)))
        y = self._join(c * x1 - s * x2, s * x1 + c * x2, rest)
        return self._from_heads(y, tuple(x.shape)).to(x.dtype)

    def abstract(self, ctx: NodeContext, x: Interval, cos: Interval, sin: Interval,
                 position_ids: Interval | None = None) -> Interval:
        cos_bounds, sin_bounds = (self._cache_bounds(t, position_ids) for t in (cos, sin))
        return self.rotate_bounds(ctx, x, cos_bounds, sin_bounds)

    def rotate_bounds(self, ctx: NodeContext, x: Interval, cos: Bounds, sin: Bounds,
                      pair_norm: Tensor | None = None) -> Interval:
        """Bounds of the rotation of ``x`` by cache bounds (B, S, 1, D / 2); ``pair_norm`` (same shape), when
        given, bounds ``sqrt(cos^2 + sin^2)`` of the rows reached (else taken from the cache bounds)."""
        (c_lo, c_hi), (s_lo, s_hi) = cos, sin
        facts = float_facts(x.elem_type)
        x_lo, x_hi = (t.to(torch.float64) for t in x.full())
        l1, l2, l_rest = self._split(self._to_heads(x_lo))
        h1, h2, h_rest = self._split(self._to_heads(x_hi))
        r_lo, r_hi = _rotated((c_lo, c_hi), (l1, h1), (s_lo, s_hi), (l2, h2), facts, -1.0, pair_norm)
        i_lo, i_hi = _rotated((s_lo, s_hi), (l1, h1), (c_lo, c_hi), (l2, h2), facts, 1.0, pair_norm)
        shape = tuple(x.shape)
        lo = self._from_heads(self._join(r_lo, i_lo, l_rest), shape)
        hi = self._from_heads(self._join(r_hi, i_hi, h_rest), shape)
        return Interval.from_full(lo, hi, x.elem_type, ctx.budget)

    def _cache_bounds(self, cache: Interval, position_ids: Interval | None) -> Bounds:
        lo, hi = (t.to(torch.float64) for t in cache.full())
        if position_ids is None:
            return lo.unsqueeze(2), hi.unsqueeze(2)
        if position_ids.is_exact:
            positions = exact_ints(position_ids, "position_ids", "RotaryEmbedding")
            shape = tuple(position_ids.shape)
            return self._cache(lo, positions, shape), self._cache(hi, positions, shape)
        # a range of positions: any row of the cache (one row broadcast over batch and sequence)
        return lo.amin(0).reshape(1, 1, 1, -1), hi.amax(0).reshape(1, 1, 1, -1)


def _rotated(a: Bounds, x: Bounds, b: Bounds, y: Bounds, facts: FloatFacts, sign: float,
             pair_norm: Tensor | None = None) -> Bounds:
    """Bounds of ``a x + sign * b y`` with the rounding of two products and a sum, met with
    Cauchy-Schwarz: ``|a x +- b y| <= sqrt(a^2 + b^2) sqrt(x^2 + y^2)`` (``pair_norm``, when given, an
    upper bound of ``sqrt(a^2 + b^2)``)."""
    (a_lo, a_hi), (x_lo, x_hi), (b_lo, b_hi), (y_lo, y_hi) = a, x, b, y
    p_lo, p_hi = arith.mul(a_lo, a_hi, x_lo, x_hi)
    q_lo, q_hi = arith.mul(b_lo, b_hi, y_lo, y_hi)
    if sign < 0:
        q_lo, q_hi = -q_hi, -q_lo
    lo, hi = arith.add(p_lo, p_hi, q_lo, q_hi)
    mag = [torch.maximum(lo_.abs(), hi_.abs()) for lo_, hi_ in ((a_lo, a_hi), (x_lo, x_hi), (b_lo, b_hi), (y_lo, y_hi))]
    pair = torch.sqrt(mag[0].square() + mag[2].square())
    if pair_norm is not None:
        pair = torch.minimum(pair, pair_norm)
    norm = pair * torch.sqrt(mag[1].square() + mag[3].square())
    slack = arith.nan_to(3 * facts.eps * (mag[0] * mag[1] + mag[2] * mag[3]) + 3 * facts.subnormal, torch.inf)
    cap = arith.nan_to(norm, torch.inf)
    lo = torch.maximum(lo, -cap) - slack
    hi = torch.minimum(hi, cap) + slack
    return arith.nan_to(lo, -torch.inf), arith.nan_to(hi, torch.inf)
