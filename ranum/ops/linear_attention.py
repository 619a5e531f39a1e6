"""LinearAttention (opset 27): recurrent linear attention with the 'linear', 'gated', 'delta' and
'gated_delta' update rules, group-query heads and an optional past state.

Semantics (the spec's function body, which onnxruntime 1.32 runs as a Scan; the onnx reference agrees):
query/key/value ``(B, T, H * D)`` are split into heads, every operand is cast to float32 and the state
``S`` ``(B, H_kv, d_k, d_v)`` (past_state, else zeros) is held in float32. For each step t:
``S' = exp(g_t) * S`` (gated rules; ``g_t`` per head ``(B, T, H_kv)`` or per key row ``(B, T, H_kv * d_k)``),
``w = beta_t * (v_t - S'^T k_t)`` (delta rules; beta ``(B, T, H_kv)`` or ``(B, T, 1)``) else ``w = v_t``,
``S = S' + k_t w^T``, and ``o_t = scale * q_t^T S[h // G]`` for query head h (G = H_q / H_kv). ``scale``
0 means the float32 ``1 / sqrt(d_k)``. ``output`` is cast to the query's type, ``present_state`` to
past_state's (to the query's without one: onnxruntime's choice where the spec leaves S open). onnxruntime
requires both outputs, takes float and float16 (bfloat16 through OrtValues), not double, and needs decay
exactly for the gated rules and beta exactly for the delta rules: other combinations are rejected here too.
The concrete rule mirrors that float32 evaluation (float64 for double tensors).

Abstract rule: the same recurrence on full-shape float64 bounds of the float32 values, step by step.
Invariants: bounds are never NaN; each bound holds for every float32 execution with inputs in the boxes.
Rounding argument: every element-wise float32 operation (exp, the decay product, v - r, the beta product,
the rank-one write, the state sum, the final scaling) is monotone rounding to nearest of a real value in
the exact interval result, so it lies within ``|x| u + tiny`` of it (``u = 2**-24``; ``tiny`` covers
underflow, flushed or not); exp adds onnxruntime's evaluation error (observed below 1.3 u, 4 u allowed);
the two contractions over d_k (``S'^T k``, ``q^T S``) take the midpoint-radius product widened by the
accumulation error of d_k terms in any order (:func:`ranum.domain.arith.with_accumulation_error`). A
bound past float32's largest value becomes infinite (the execution overflows there, exp included), and
the Overflow hazards report it. The scale is taken within 2 u of its float32 value (a faithful Sqrt and
Reciprocal). The delta rules use S' twice: interval arithmetic loses that correlation, so their bounds
widen with T (sound, not tight), unlike exact inputs, which stay within a few ulps.
"""

from __future__ import annotations

import torch
from onnx import TensorProto
from torch import Tensor

from ranum.domain import arith
from ranum.domain.dtypes import float_facts
from ranum.domain.interval import Interval
from ranum.errors import UnsupportedOperator
from ranum.ops._base import NodeContext, OpRule
from ranum.ops.hazards import OutputOverflow, Overflow, above
from ranum.ops.registry import register

__all__ = ["LinearAttention"]

Bounds = tuple[Tensor, Tensor]

_F32 = float_facts(TensorProto.FLOAT)
_UNIT = _F32.eps / 2  # unit roundoff of float32
_EXP_ERROR = 4.0  # onnxruntime's float32 Exp, in units of _UNIT (observed at most 1.22)
_RULES = ("linear", "gated", "delta", "gated_delta")


# ----------------------------------------------------------------------------- float32 bound helpers
def _rounded(lo: Tensor, hi: Tensor, units: float = 1.0) -> Bounds:
    """Bounds of a float32 rounding (``units`` times the unit roundoff, plus underflow) of any value in
    [lo, hi]; past float32's largest value, infinite (the execution overflows)."""
    new_lo = lo - arith.finite_abs(lo) * (units * _UNIT) - _F32.tiny
    new_hi = hi + arith.finite_abs(hi) * (units * _UNIT) + _F32.tiny
    new_lo = torch.where(new_lo < -_F32.max, torch.full_like(new_lo, -torch.inf), new_lo)
    new_hi = torch.where(new_hi > _F32.max, torch.full_like(new_hi, torch.inf), new_hi)
    return arith.nan_to(new_lo, -torch.inf), arith.nan_to(new_hi, torch.inf)


def _mul(a: Bounds, b: Bounds) -> Bounds:
    """A float32 product of interval operands."""
    return _rounded(*arith.mul(a[0], a[1], b[0], b[1]))


def _contract(equation: str, a: Bounds, b: Bounds, count: int) -> Bounds:
    """A float32 contraction (``count`` terms per result, any order) of interval operands: midpoint-radius
    product, then the accumulation error (an unbounded element counts as midpoint 0, radius inf)."""
    pairs = []
    for lo, hi in (a, b):
        finite = torch.isfinite(lo) & torch.isfinite(hi)
        pairs.append((torch.where(finite, (lo + hi) / 2, torch.zeros_like(lo)),
                      torch.where(finite, (hi - lo) / 2, torch.full_like(lo, torch.inf))))
    (ma, ra), (mb, rb) = pairs
    mid = torch.einsum(equation, ma, mb)
    abs_sum = arith.nan_to(torch.einsum(equation, ma.abs() + ra, mb.abs() + rb), torch.inf)
    rad = arith.nan_to(abs_sum - torch.einsum(equation, ma.abs(), mb.abs()), torch.inf).clamp(min=0.0)
    lo, hi = arith.with_accumulation_error(mid - rad, mid + rad, abs_sum, count, TensorProto.FLOAT)
    return _rounded(lo, hi, 0.0)  # saturation only: the rounding is in the accumulation error


def _exp(g: Bounds) -> Bounds:
    """onnxruntime's float32 exp of an interval (increasing; infinite past float32's largest value)."""
    lo, hi = _rounded(torch.exp(g[0]), torch.exp(g[1]), _EXP_ERROR)
    return lo.clamp(min=0.0), hi


def _heads(x: Tensor, heads: int) -> Tensor:
    """(B, T, H * D) -> (B, H, T, D)."""
    b, t, hd = x.shape
    return x.reshape(b, t, heads, hd // heads).transpose(1, 2)


# ----------------------------------------------------------------------------- the rule
@register("LinearAttention", since=27)
class LinearAttention(OpRule):
    """Linear attention recurrence over time steps; see the module docstring for the update rules."""

    chunk_size: int = 64  # a tuning hint: no effect on results
    kv_num_heads: int = 0
    q_num_heads: int = 0
    scale: float = 0.0
    update_rule: str = "gated_delta"

    hazards = (
        Overflow(),
        # a query of zeros reads an infinite state as NaN, not inf: the output's check alone would miss it
        OutputOverflow(name="state-overflow", description="recurrent state (present_state) can overflow to infinity"),
        above(lambda _: _F32.log_max, "decay: exp(decay) overflows float32 to infinity", name="exp-overflow",
              operand=4),
    )
    accumulates = True  # a float32 recurrence: exact inputs take the abstract rule, not a float64 replay

    def __post_init__(self) -> None:
        if self.update_rule not in _RULES:
            raise UnsupportedOperator(f"LinearAttention: update_rule {self.update_rule!r} (expected one of {_RULES})")
        if self.q_num_heads <= 0 or self.kv_num_heads <= 0 or self.q_num_heads % self.kv_num_heads:
            raise UnsupportedOperator(f"LinearAttention: q_num_heads {self.q_num_heads} must be a positive multiple "
                                      f"of kv_num_heads {self.kv_num_heads}")

    @property
    def _gated(self) -> bool:
        return self.update_rule in ("gated", "gated_delta")

    @property
    def _delta(self) -> bool:
        return self.update_rule in ("delta", "gated_delta")

    def _dims(self, query: tuple, key: tuple, value: tuple, past: tuple | None, decay: tuple | None,
              beta: tuple | None) -> tuple[int, int]:
        """(d_k, d_v) after checking every operand's shape against the update rule and the head counts."""
        if any(len(s) != 3 for s in (query, key, value)):
            raise UnsupportedOperator("LinearAttention: query, key and value must be rank 3 (B, T, H * D)")
        if query[2] % self.q_num_heads or value[2] % self.kv_num_heads:
            raise UnsupportedOperator("LinearAttention: query/value last dimensions must divide into their heads")
        d_k, d_v = query[2] // self.q_num_heads, value[2] // self.kv_num_heads
        b, t = query[0], query[1]
        if tuple(key) != (b, t, self.kv_num_heads * d_k) or tuple(value[:2]) != (b, t):
            raise UnsupportedOperator(f"LinearAttention: key {tuple(key)} / value {tuple(value)} do not match "
                                      f"query {tuple(query)}")
        if past is not None and tuple(past) != (b, self.kv_num_heads, d_k, d_v):
            raise UnsupportedOperator(f"LinearAttention: past_state shape {tuple(past)}")
        if (decay is not None) != self._gated or (beta is not None) != self._delta:
            raise UnsupportedOperator(f"LinearAttention: update_rule {self.update_rule!r} needs decay exactly for "
                                      "gated rules and beta exactly for delta rules")
        if decay is not None and (tuple(decay[:2]) != (b, t) or decay[2] not in (self.kv_num_heads,
                                                                                self.kv_num_heads * d_k)):
            raise UnsupportedOperator(f"LinearAttention: decay shape {tuple(decay)}")
        if beta is not None and (tuple(beta[:2]) != (b, t) or beta[2] not in (self.kv_num_heads, 1)):
            raise UnsupportedOperator(f"LinearAttention: beta shape {tuple(beta)}")
        return d_k, d_v

    def _scale_value(self, d_k: int) -> float:
        """The float32 scale: the attribute, or Reciprocal(Sqrt(d_k)) as the function body computes it."""
        if self.scale != 0.0:
            return float(torch.tensor(self.scale, dtype=torch.float32))
        return float(torch.reciprocal(torch.sqrt(torch.tensor(float(d_k), dtype=torch.float32))))

    def _gates(self, decay: Tensor | None, beta: Tensor | None) -> tuple[Tensor | None, Tensor | None]:
        """decay as (B, H_kv, T, 1 or d_k) and beta as (B, H_kv or 1, T, 1)."""
        g = None if decay is None else decay.reshape(*decay.shape[:2], self.kv_num_heads, -1).transpose(1, 2)
        b = None if beta is None else beta.unsqueeze(-1).transpose(1, 2)
        return g, b

    # ------------------------------------------------------------------------- concrete
    def concrete(self, ctx: NodeContext, query: Tensor, key: Tensor, value: Tensor, past_state: Tensor | None = None,
                 decay: Tensor | None = None, beta: Tensor | None = None) -> tuple[Tensor, Tensor]:
        shapes = [None if x is None else tuple(x.shape) for x in (query, key, value, past_state, decay, beta)]
        d_k, d_v = self._dims(*shapes)
        wide = torch.float64 if query.dtype == torch.float64 else torch.float32
        q, k, v = _heads(query.to(wide), self.q_num_heads), _heads(key.to(wide), self.kv_num_heads), \
            _heads(value.to(wide), self.kv_num_heads)
        g, b = self._gates(None if decay is None else decay.to(wide), None if beta is None else beta.to(wide))
        state = torch.zeros((query.shape[0], self.kv_num_heads, d_k, d_v), dtype=wide) if past_state is None \
            else past_state.to(wide)
        scale = torch.tensor(self._scale_value(d_k), dtype=wide)
        group = self.q_num_heads // self.kv_num_heads
        outputs = []
        for t in range(query.shape[1]):
            if g is not None:
                state = state * torch.exp(g[:, :, t]).unsqueeze(-1)
            write = v[:, :, t]
            if b is not None:
                write = b[:, :, t] * (write - torch.einsum("bhdm,bhd->bhm", state, k[:, :, t]))
            state = state + k[:, :, t].unsqueeze(-1) * write.unsqueeze(-2)
            read = state.repeat_interleave(group, dim=1)
            outputs.append(scale * torch.einsum("bhd,bhdm->bhm", q[:, :, t], read))
        y = torch.stack(outputs, 1).reshape(query.shape[0], query.shape[1], -1)
        return y.to(query.dtype), state.to(query.dtype if past_state is None else past_state.dtype)

    # ------------------------------------------------------------------------- abstract
    def abstract(self, ctx: NodeContext, query: Interval, key: Interval, value: Interval,
                 past_state: Interval | None = None, decay: Interval | None = None,
                 beta: Interval | None = None) -> tuple[Interval, Interval]:
        operands = (query, key, value, past_state, decay, beta)
        d_k, d_v = self._dims(*[None if x is None else tuple(x.shape) for x in operands])
        full = [None if x is None else tuple(t.to(torch.float64) for t in x.full()) for x in operands]
        q, k, v = ((_heads(lo, heads), _heads(hi, heads)) for (lo, hi), heads in
                   zip(full[:3], (self.q_num_heads, self.kv_num_heads, self.kv_num_heads)))
        lows, highs = (self._gates(*[None if x is None else x[i] for x in full[4:]]) for i in (0, 1))
        g, b = (None if lo is None else (lo, hi) for lo, hi in zip(lows, highs))
        if full[3] is None:
            zero = torch.zeros((query.shape[0], self.kv_num_heads, d_k, d_v), dtype=torch.float64)
            state: Bounds = (zero, zero)
        else:
            state = full[3]
        s = self._scale_value(d_k)
        scale = tuple(torch.tensor(s + sign * abs(s) * 2 * _UNIT, dtype=torch.float64) for sign in (-1, 1))
        outputs = []
        for t in range(query.shape[1]):
            state = self._step(state, _at(k, t), _at(v, t), _at(g, t), _at(b, t), d_k)
            read = tuple(x.repeat_interleave(self.q_num_heads // self.kv_num_heads, dim=1) for x in state)
            outputs.append(_mul(scale, _contract("bhd,bhdm->bhm", _at(q, t), read, d_k)))
        lo, hi = (torch.stack([o[i] for o in outputs], 1).reshape(*query.shape[:2], -1) for i in (0, 1))
        out_type = ctx.output_type(0, query.elem_type)
        state_type = ctx.output_type(1, query.elem_type if past_state is None else past_state.elem_type)
        return (Interval.from_full(lo, hi, out_type, ctx.budget),
                Interval.from_full(state[0], state[1], state_type, ctx.budget))

    def _step(self, state: Bounds, k: Bounds, v: Bounds, g: Bounds | None, b: Bounds | None, d_k: int) -> Bounds:
        """One float32 update of the state's bounds (every operation rounded, as onnxruntime evaluates it)."""
        if g is not None:
            e_lo, e_hi = _exp(g)
            state = _mul(state, (e_lo.unsqueeze(-1), e_hi.unsqueeze(-1)))
        write = v
        if b is not None:
            retrieved = _contract("bhdm,bhd->bhm", state, k, d_k)
            write = _mul(b, _rounded(*arith.sub(v[0], v[1], retrieved[0], retrieved[1])))
        outer = _mul((k[0].unsqueeze(-1), k[1].unsqueeze(-1)), (write[0].unsqueeze(-2), write[1].unsqueeze(-2)))
        return _rounded(*arith.add(state[0], state[1], outer[0], outer[1]))


def _at(bounds: Bounds | None, t: int) -> Bounds | None:
    """Step ``t`` of (B, H, T, D) bounds (None stays None)."""
    return None if bounds is None else (bounds[0][:, :, t], bounds[1][:, :, t])
