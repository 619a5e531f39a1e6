"""Soundness cases: Attention, RMSNormalization, RotaryEmbedding (opset 23)."""

from onnx import TensorProto

from tests.ops.harness import OpCase, Operand

F16 = TensorProto.FLOAT16
BOOL = TensorProto.BOOL
LOWEST = -3.4028234663852886e38  # float32's lowest value: a float mask at it masks the key


def _qkv(q=(2, 2, 3, 4), k=(2, 2, 5, 4), v=(2, 2, 5, 3), elem_type=TensorProto.FLOAT, low=-3.0, high=3.0):
    return tuple(Operand(s, elem_type, low, high) for s in (q, k, v))


def _attention(name, inputs, opset=23, **kw):
    return OpCase("Attention", inputs, opset=opset, name=f"Attention-{name}", **kw)


ATTENTION = [
    _attention("plain", _qkv()),
    _attention("causal", _qkv(k=(2, 2, 3, 4), v=(2, 2, 3, 3)), attrs={"is_causal": 1}),
    _attention("causal-cross", _qkv(), attrs={"is_causal": 1, "scale": 0.7}),
    _attention("bool-mask", (*_qkv(), Operand((3, 5), BOOL, 0, 1))),
    _attention("bool-mask-4d-causal", (*_qkv(k=(2, 2, 3, 4), v=(2, 2, 3, 3)), Operand((2, 1, 3, 3), BOOL, 0, 1)),
               attrs={"is_causal": 1}),
    _attention("float-mask", (*_qkv(), Operand((2, 1, 3, 5), low=-10.0, high=2.0))),
    _attention("float-mask-lowest", (*_qkv(), Operand((3, 5), low=LOWEST, high=0.0))),
    _attention("gqa", _qkv(q=(1, 4, 3, 4), k=(1, 2, 5, 4), v=(1, 2, 5, 2)), attrs={"is_causal": 1}),
    _attention("3d-heads", _qkv(q=(2, 3, 8), k=(2, 5, 4), v=(2, 5, 6)), attrs={"q_num_heads": 2, "kv_num_heads": 1}),
    _attention("softcap", _qkv(low=-20.0, high=20.0), attrs={"softcap": 5.0}),
    # scores up to 1e6: summation orders differ by ~0.1 there, which the softmax amplifies (soundness only)
    _attention("large-scores", _qkv(low=-1e3, high=1e3), check_agreement=False),
    _attention("past", (*_qkv(), None, Operand((2, 2, 2, 4)), Operand((2, 2, 2, 3))), outputs=3,
               attrs={"is_causal": 1}),
    _attention("f16", (*_qkv(elem_type=F16), Operand((3, 5), BOOL, 0, 1))),
    _attention("f16-causal", _qkv(q=(1, 2, 4, 8), k=(1, 2, 4, 8), v=(1, 2, 4, 8), elem_type=F16),
               attrs={"is_causal": 1}),
]

RMS = [
    OpCase("RMSNormalization", (Operand((2, 3, 8)), Operand((8,))), opset=23, name="RMSNormalization-last"),
    OpCase("RMSNormalization", (Operand((2, 3, 4)), Operand((3, 4))), attrs={"axis": -2, "epsilon": 1e-3},
           opset=23, name="RMSNormalization-axis-2"),
    OpCase("RMSNormalization", (Operand((4, 5), low=-1e-3, high=1e-3), Operand((5,), value=[1.0] * 5)),
           attrs={"epsilon": 1e-6}, opset=23, name="RMSNormalization-small"),
    OpCase("RMSNormalization", (Operand((4, 3), low=0.0, high=2.0), Operand((3,))), attrs={"epsilon": 0.0},
           opset=23, name="RMSNormalization-eps0"),
    OpCase("RMSNormalization", (Operand((3, 1, 6)), Operand((1, 6))), attrs={"axis": 1}, opset=23,
           name="RMSNormalization-axis1-broadcast"),
    OpCase("RMSNormalization", (Operand((2, 16), F16), Operand((16,), F16)), opset=23,
           name="RMSNormalization-f16"),
    OpCase("RMSNormalization", (Operand((2, 3, 16), low=1e20, high=3e20), Operand((16,))), opset=23,
           name="RMSNormalization-squares-overflow", check_agreement=False),
]


def _rotary(name, x, cache, positions=None, elem_type=TensorProto.FLOAT, **attrs):
    caches = (Operand(cache, elem_type, -1.0, 1.0), Operand(cache, elem_type, -1.0, 1.0))
    pos = () if positions is None else (Operand((1, len(positions)), TensorProto.INT64, value=positions),)
    return OpCase("RotaryEmbedding", (Operand(x, elem_type), *caches, *pos), attrs=attrs, opset=23,
                  name=f"RotaryEmbedding-{name}")


ROTARY = [
    _rotary("halves", (1, 2, 3, 8), (6, 4), [0, 2, 5]),
    _rotary("interleaved", (1, 2, 3, 8), (6, 4), [1, 1, 3], interleaved=1),
    _rotary("partial", (1, 2, 3, 8), (4, 2), [0, 1, 3], rotary_embedding_dim=4),
    _rotary("3d-heads", (1, 3, 12), (4, 3), [3, 2, 1], num_heads=2),
    _rotary("no-positions", (2, 1, 3, 4), (2, 3, 2)),
    _rotary("f16", (1, 2, 3, 8), (6, 4), [0, 2, 5], elem_type=F16),
]

CASES = [*ATTENTION, *RMS, *ROTARY]
