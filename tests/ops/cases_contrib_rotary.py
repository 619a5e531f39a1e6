"""Soundness cases: onnxruntime's rotary attention operators (ranum.ops.contrib_rotary_attention)."""

import math

from onnx import TensorProto

from tests.ops.harness import OpCase, Operand

I32, I64, F16 = TensorProto.INT32, TensorProto.INT64, TensorProto.FLOAT16
MS = "com.microsoft"
B, S, HEADS, KV_HEADS, HEAD, ROWS = 2, 3, 4, 2, 16, 8


def _ms(op_type, inputs, name, rtol=1e-4, **kw):
    return OpCase(op_type, inputs, domain=MS, opset=17, name=f"{op_type}-{name}", rtol=rtol, **kw)


def _cache(width, fn, rows=ROWS, elem_type=TensorProto.FLOAT):
    """An exact rotary cache: fn(p * theta_i) with theta_i = 10000^(-i / width)."""
    values = [fn(p * 10000.0 ** (-i / width)) for p in range(rows) for i in range(width)]
    return Operand((rows, width), elem_type, value=values)


def _rotary(name, shape=(B, S, 2 * 8), positions=None, width=4, free_cache=False, elem_type=TensorProto.FLOAT,
            **attrs):
    positions = positions or Operand((B, S), I64, value=[0, 1, 2, 5, 6, 7])
    caches = [Operand((ROWS, width), elem_type, low=-1.0, high=1.0)] * 2 if free_cache else \
        [_cache(width, math.cos, elem_type=elem_type), _cache(width, math.sin, elem_type=elem_type)]
    rtol = 2e-3 if elem_type == F16 else 1e-4
    return _ms("RotaryEmbedding", (Operand(shape, elem_type), positions, *caches), name, rtol=rtol, attrs=attrs)


ROTARY = [
    _rotary("exact-positions"),
    _rotary("interleaved", interleaved=1),
    _rotary("free-positions", positions=Operand((B, S), I64, 0, ROWS - 1)),
    _rotary("free-positions-interleaved", positions=Operand((B, S), I64, 2, 4), interleaved=1),
    _rotary("offset", positions=Operand((1,), I64, value=[4])),
    _rotary("free-offset", positions=Operand((1,), I64, 0, ROWS - S)),
    _rotary("num-heads", shape=(B, S, 4 * 8), num_heads=4),
    _rotary("partial", shape=(B, S, 2 * 8), width=2, num_heads=2, rotary_embedding_dim=4),
    _rotary("4d", shape=(B, 2, S, 8)),
    _rotary("4d-partial-interleaved", shape=(B, 2, S, 8), width=2, num_heads=2, rotary_embedding_dim=4, interleaved=1),
    _rotary("free-cache", free_cache=True, positions=Operand((B, S), I64, 0, ROWS - 1)),
    _rotary("float16", elem_type=F16),
    _rotary("float16-free-positions", positions=Operand((B, S), I64, 0, ROWS - 1), elem_type=F16),
]


def _gqa(name, seqlens, total, seq=S, past=None, rotary=False, bias=False, sink=False, outputs=3, packed=False,
         elem_type=TensorProto.FLOAT, **attrs):
    t = elem_type
    kv = Operand((B, seq, KV_HEADS * HEAD), t)
    qkv = [Operand((B, seq, (HEADS + 2 * KV_HEADS) * HEAD), t), None, None] if packed else \
        [Operand((B, seq, HEADS * HEAD), t), kv, kv]
    inputs = [*qkv,
              Operand((B, KV_HEADS, past, HEAD), t) if past else None,
              Operand((B, KV_HEADS, past, HEAD), t) if past else None,
              Operand((B,), I32, value=seqlens), Operand((), I32, value=[total]),
              _cache(HEAD // 2, math.cos, 16, t) if rotary else None,
              _cache(HEAD // 2, math.sin, 16, t) if rotary else None, None,
              Operand((B, HEADS, seq, total), t) if bias else None,
              Operand((HEADS,), t) if sink else None]
    while inputs[-1] is None:
        inputs.pop()
    attrs = {"num_heads": HEADS, "kv_num_heads": KV_HEADS, **attrs}
    rtol = 2e-3 if elem_type == F16 else 1e-4
    return _ms("GroupQueryAttention", tuple(inputs), name, rtol=rtol, attrs=attrs, outputs=outputs)


GROUP_QUERY = [
    _gqa("prompt", [2, 2], 3),
    _gqa("prompt-padded", [2, 0], 3),
    _gqa("prompt-output-only", [2, 1], 3, outputs=1),
    _gqa("decode", [3, 1], 4, seq=1, past=4),
    _gqa("decode-growing", [4, 2], 5, seq=1, past=4),
    _gqa("prompt-static-buffer", [2, 1], 3, past=5),
    _gqa("rotary", [2, 1], 3, rotary=True, do_rotary=1),
    _gqa("rotary-decode-interleaved", [5, 2], 6, seq=1, past=6, rotary=True, do_rotary=1, rotary_interleaved=1),
    _gqa("softcap-bias", [2, 2], 3, bias=True, softcap=2.0),
    _gqa("window", [2, 0], 3, local_window_size=2),
    _gqa("window-decode", [3, 1], 4, seq=1, past=4, local_window_size=2),
    _gqa("smooth-softmax", [2, 1], 3, smooth_softmax=1),
    _gqa("head-sink", [3, 1], 4, seq=1, past=4, sink=True),
    _gqa("scale", [2, 2], 3, scale=0.5),
    _gqa("packed", [2, 1], 3, packed=True),
    _gqa("packed-rotary-decode", [5, 2], 6, seq=1, past=6, rotary=True, do_rotary=1, packed=True),
    _gqa("float16", [2, 1], 3, elem_type=F16),
    _gqa("float16-rotary-decode-bias-sink", [5, 2], 6, seq=1, past=6, rotary=True, do_rotary=1, bias=True, sink=True,
         elem_type=F16),
    _gqa("float16-packed-rotary-softcap", [2, 2], 3, rotary=True, do_rotary=1, packed=True, softcap=2.0,
         elem_type=F16),
]

CASES = [*ROTARY, *GROUP_QUERY]
