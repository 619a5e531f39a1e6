"""Soundness cases: LinearAttention (opset 27) for every update rule, multi-head, group-query and multi-query
heads, per-head and per-key-dimension decay, per-head and shared beta, a past state, an explicit scale,
float32 and float16 (and a float32 state under float16 activations), and decays that overflow exp.

Keys stay small for the delta rules (the spec asks for L2-normalised keys there): with larger ones the
state grows by a factor up to beta |k|^2 per step and float32 rounding alone spoils agreement near 0.
"""

from __future__ import annotations

from onnx import TensorProto

from tests.ops.harness import OpCase, Operand

F16 = TensorProto.FLOAT16
FLOAT = TensorProto.FLOAT


def _case(name: str, rule: str, heads: tuple[int, int] = (2, 2), d_k: int = 3, d_v: int = 2, steps: int = 3,
          batch: int = 1, decay: str = "head", beta: str = "head", past: bool = False, elem_type: int = FLOAT,
          state_type: int | None = None, decay_range: tuple[float, float] = (-2.0, 0.5), check: bool = True,
          **attrs) -> OpCase:
    hq, hkv = heads
    delta = rule in ("delta", "gated_delta")
    key_span = 0.6 if delta else 2.0
    inputs: list[Operand | None] = [
        Operand((batch, steps, hq * d_k), elem_type, -2.0, 2.0),
        Operand((batch, steps, hkv * d_k), elem_type, -key_span, key_span),
        Operand((batch, steps, hkv * d_v), elem_type, -2.0, 2.0),
        Operand((batch, hkv, d_k, d_v), state_type or elem_type, -1.0, 1.0) if past else None,
        Operand((batch, steps, hkv * (d_k if decay == "key" else 1)), elem_type, *decay_range)
        if rule in ("gated", "gated_delta") else None,
        Operand((batch, steps, hkv if beta == "head" else 1), elem_type, 0.0, 1.0) if delta else None,
    ]
    while inputs[-1] is None:
        inputs.pop()
    return OpCase("LinearAttention", tuple(inputs),
                  attrs={"q_num_heads": hq, "kv_num_heads": hkv, "update_rule": rule, **attrs},
                  outputs=2, opset=27, rtol=1e-4, name=f"LinearAttention-{name}", check_agreement=check)


CASES = [
    _case("linear", "linear"),
    _case("linear-gqa-past", "linear", heads=(4, 2), past=True),
    _case("linear-mqa-scale", "linear", heads=(3, 1), d_k=4, scale=-0.75),
    _case("gated-head", "gated"),
    _case("gated-key-gqa", "gated", heads=(4, 2), decay="key", past=True, batch=2),
    _case("delta", "delta"),
    _case("delta-shared-beta-past", "delta", beta="one", past=True, heads=(2, 1)),
    _case("gated-delta", "gated_delta"),
    _case("gated-delta-key-gqa-past", "gated_delta", heads=(4, 2), decay="key", beta="one", past=True),
    _case("gated-delta-default", "gated_delta", heads=(1, 1), d_k=4, d_v=3, steps=4),
    _case("float16-gated-delta", "gated_delta", heads=(2, 1), past=True, elem_type=F16),
    _case("float16-linear-float32-state", "linear", heads=(2, 2), past=True, elem_type=F16, state_type=FLOAT),
    _case("float32-gated-float16-state", "gated", past=True, state_type=F16),
    # exp(decay) overflows float32 past 88.72: inf state, NaN from 0 * inf (agreement near the edge skipped)
    _case("gated-exp-overflow", "gated", decay_range=(-5.0, 95.0), check=False),
    _case("gated-delta-exp-overflow", "gated_delta", decay="key", past=True, decay_range=(80.0, 95.0), check=False),
]
