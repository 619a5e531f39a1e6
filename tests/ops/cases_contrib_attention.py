"""Soundness cases: onnxruntime's fused attention operators (ranum.ops.contrib_attention)."""

from onnx import TensorProto

from tests.ops.harness import OpCase, Operand

I32, F16 = TensorProto.INT32, TensorProto.FLOAT16
MS = "com.microsoft"
B, S, L, HEADS, HIDDEN = 2, 3, 4, 2, 8


def _ms(op_type, inputs, name, rtol=1e-4, **kw):
    return OpCase(op_type, inputs, domain=MS, opset=17, name=f"{op_type}-{name}", rtol=rtol, **kw)


def _mha(name, bias=False, mask=None, attention_bias=None, seq=S, keys=L, agree=True, elem_type=TensorProto.FLOAT,
         **attrs):
    t = elem_type
    inputs = [Operand((B, seq, HIDDEN), t), Operand((B, keys, HIDDEN), t), Operand((B, keys, HIDDEN), t),
              Operand((3 * HIDDEN,), t, low=-1.0, high=1.0) if bias else None, mask, attention_bias]
    while inputs[-1] is None:
        inputs.pop()
    return _ms("MultiHeadAttention", tuple(inputs), name, attrs={"num_heads": HEADS, **attrs}, check_agreement=agree)


def _attention(name, bias=True, mask=None, attention_bias=None, sizes=None, elem_type=TensorProto.FLOAT, **attrs):
    columns, t = sum(sizes) if sizes else 3 * HIDDEN, elem_type
    inputs = [Operand((B, S, HIDDEN), t, low=-2.0, high=2.0), Operand((HIDDEN, columns), t, low=-0.5, high=0.5),
              Operand((columns,), t, low=-1.0, high=1.0) if bias else None, mask, None, attention_bias]
    while inputs[-1] is None:
        inputs.pop()
    extra = {"qkv_hidden_sizes": list(sizes)} if sizes else {}
    return _ms("Attention", tuple(inputs), name, attrs={"num_heads": HEADS, **extra, **attrs})


PADDING = Operand((B, L), I32, value=[1, 1, 0, 1, 1, 0, 0, 1])
LENGTHS = Operand((B,), I32, value=[2, 4])
ALL_MASKED = Operand((B, L), I32, value=[1, 0, 1, 1, 0, 0, 0, 0])  # batch 1: every key masked
SELF_MASK = Operand((B, S), I32, value=[1, 0, 1, 1, 1, 0])

MULTI_HEAD = [
    _mha("plain"),
    _mha("bias", bias=True),
    _mha("padding-mask", mask=PADDING),
    _mha("key-lengths", mask=LENGTHS, bias=True),
    _mha("fully-masked-row", mask=ALL_MASKED, agree=False),  # scores - 10000 lose float32 digits
    _mha("attention-bias", attention_bias=Operand((1, HEADS, S, L))),
    _mha("attention-bias-batch", mask=PADDING, attention_bias=Operand((B, 1, S, L))),
    _mha("unidirectional", seq=3, keys=3, unidirectional=1),
    _mha("unidirectional-longer-keys", unidirectional=1, mask=PADDING),
    _mha("scale", scale=0.3, mask_filter_value=-100.0, mask=PADDING),
    _mha("wide-scale", bias=True, scale=2.0),
    _mha("float16", bias=True, elem_type=F16),
    _mha("float16-padding-bias", mask=PADDING, attention_bias=Operand((1, HEADS, S, L), F16), elem_type=F16),
    _mha("float16-unidirectional", seq=3, keys=3, unidirectional=1, elem_type=F16),
    _mha("float16-fully-masked-row", mask=ALL_MASKED, agree=False, elem_type=F16),
]

ATTENTION = [
    _attention("plain"),
    _attention("no-bias", bias=False),
    _attention("mask-2d", mask=SELF_MASK),
    _attention("key-lengths", mask=Operand((B,), I32, value=[1, 3])),
    _attention("unidirectional", unidirectional=1),
    _attention("scale-bias", scale=0.5, attention_bias=Operand((1, HEADS, S, S))),
    _attention("qkv-sizes", sizes=(HIDDEN, HIDDEN, 2 * HIDDEN)),
    _attention("float16", elem_type=F16),
    _attention("float16-mask-2d", mask=SELF_MASK, elem_type=F16),
]

VOCAB, POSITIONS, TYPES = 10, 6, 2


def _embed(name, segments=True, mask=None, position_ids=None, outputs=2, ids=None, agree=True, epsilon=1e-3,
           elem_type=TensorProto.FLOAT):
    """Near-constant embedding rows (point blocks) are ill-conditioned: the float32 centring of onnxruntime
    and of the concrete rule differ by an ulp of the row over sqrt(epsilon), hence a large epsilon where
    agreement is checked."""
    t = elem_type
    seg = [Operand((B, S), I32, 0, TYPES - 1), None, Operand((TYPES, HIDDEN), t)] if segments else [None] * 3
    inputs = [ids or Operand((B, S), I32, 0, VOCAB - 1), seg[0], Operand((VOCAB, HIDDEN), t),
              Operand((POSITIONS, HIDDEN), t), seg[2], Operand((HIDDEN,), t, low=0.5, high=1.5),
              Operand((HIDDEN,), t), mask, position_ids]
    while inputs[-1] is None:
        inputs.pop()
    return _ms("EmbedLayerNormalization", tuple(inputs), name, outputs=outputs, attrs={"epsilon": epsilon},
               check_agreement=agree, rtol=1e-3)


EMBEDDINGS = [
    _embed("full", mask=Operand((B, S), I32, value=[1, 1, 0, 1, 0, 2]), outputs=3),
    _embed("no-segment", segments=False),
    _embed("free-mask", mask=Operand((B, S), I32, 0, 1)),
    _embed("default-epsilon", epsilon=1e-12, agree=False),
    _embed("position-ids", position_ids=Operand((B, S), I32, 0, POSITIONS - 1)),
    _embed("broadcast-position-ids", position_ids=Operand((1, S), I32, value=[2, 0, 1]), outputs=3),
    _embed("exact-ids", ids=Operand((B, S), I32, value=[1, 2, 3, 9, 0, 4]), outputs=3),
    _embed("float16", mask=Operand((B, S), I32, value=[1, 1, 0, 1, 0, 2]), outputs=3, elem_type=F16),
]

CASES = [*MULTI_HEAD, *ATTENTION, *EMBEDDINGS]
