"""Soundness cases: onnxruntime's dynamic-quantization contrib operators (ranum.ops.contrib_dynamic_quantized):
MatMulIntegerToFloat, DynamicQuantizeMatMul, QAttention and QEmbedLayerNormalization.

Quantized weights, their scales and zero points are exact initializers (per tensor or per column); A, and some
biases and A's scales and zero points, are drawn ranges. DynamicQuantizeMatMul's A spans both signs or one;
an A whose scale overflows is tested in test_contrib_dynamic_quantized.py (scaling its range, as test_soundness.py
does, would leave float32).
"""

from __future__ import annotations

import numpy as np
from onnx import TensorProto

from tests.ops.harness import OpCase, Operand

F32, U8, I8 = TensorProto.FLOAT, TensorProto.UINT8, TensorProto.INT8
MS = "com.microsoft"
_RANGE = {U8: (0, 255), I8: (-128, 127)}
_NP = {U8: np.uint8, I8: np.int8}


def weight(name: str, k: int, n: int, etype: int = I8, batch: tuple[int, ...] = (), per_column: bool = False,
           zero_point: bool = True, spread: int | None = None) -> list[Operand | None]:
    """Exact B, b_scale and b_zero_point (per column: ``(N,)`` for a 2-D B, ``batch + (1, N)`` otherwise)."""
    rng = np.random.default_rng(len(name))
    low, high = _RANGE[etype]
    if spread is not None:
        mid = 0 if etype == I8 else 128
        low, high = mid - spread, mid + spread
    b = rng.integers(low, high + 1, size=batch + (k, n))
    shape = ((n,) if not batch else batch + (1, n)) if per_column else ()
    scale = np.exp(rng.uniform(-6, -2, size=shape))
    zp = rng.integers(-3, 4, size=shape) + (0 if etype == I8 else 128)
    return [Operand(b.shape, etype, value=b), Operand(shape, F32, value=scale),
            Operand(shape, etype, value=zp) if zero_point else None]


def _trim(operands: list[Operand | None]) -> tuple[Operand | None, ...]:
    while operands and operands[-1] is None:
        operands.pop()
    return tuple(operands)


def integer_to_float(name: str, a_shape: tuple[int, ...], n: int, a_type: int = U8, bias: str = "", **kw) -> OpCase:
    """A MatMulIntegerToFloat case: A a drawn range of codes, A's scale and zero point constants unless
    ``a_params="range"``; ``bias``: ``""``, ``"input"`` (a drawn range) or ``"exact"``."""
    a_params = kw.pop("a_params", "exact")
    a_scale_shape = kw.pop("a_scale_shape", ())
    b, b_scale, b_zp = weight(name, a_shape[-1], n, **kw)
    low, high = _RANGE[a_type]
    mid = 0 if a_type == I8 else 128
    if a_params == "range":
        a_scale, a_zp = Operand((), F32, 0.01, 0.03), Operand((), a_type, mid - 20, mid + 20)
    else:
        rng = np.random.default_rng(len(name) + 1)
        a_scale = Operand(a_scale_shape, F32, value=np.exp(rng.uniform(-5, -2, size=a_scale_shape)))
        a_zp = Operand((), a_type, value=mid + 7)
    operands = [Operand(a_shape, a_type, low, high), b, a_scale, b_scale, a_zp, b_zp]
    operands.append(_bias(bias, n))
    return OpCase("MatMulIntegerToFloat", _trim(operands), domain=MS, opset=17, name=f"MatMulIntegerToFloat-{name}")


def _bias(kind: str, n: int) -> Operand | None:
    if kind == "input":
        return Operand((n,), F32, -2.0, 2.0)
    if kind == "exact":
        return Operand((n,), F32, value=np.linspace(-1.5, 2.5, n))
    return None


def dynamic_matmul(name: str, a_shape: tuple[int, ...], n: int, low: float = -3.0, high: float = 3.0,
                   bias: str = "", **kw) -> OpCase:
    """A DynamicQuantizeMatMul case: A a drawn float range in [low, high]."""
    b, b_scale, b_zp = weight(name, a_shape[-1], n, **kw)
    operands = [Operand(a_shape, F32, low, high), b, b_scale, b_zp, _bias(bias, n)]
    return OpCase("DynamicQuantizeMatMul", _trim(operands), domain=MS, opset=17, name=f"DynamicQuantizeMatMul-{name}")


MATMUL_INTEGER_TO_FLOAT = [
    integer_to_float("u8-i8", (3, 16), 5),
    integer_to_float("per-column-bias", (2, 3, 24), 6, per_column=True, bias="input"),
    integer_to_float("exact-bias", (4, 12), 7, bias="exact", zero_point=False),
    integer_to_float("u8-u8", (3, 20), 4, etype=U8, per_column=True),
    integer_to_float("i8-i8", (2, 16), 5, a_type=I8, bias="exact"),
    integer_to_float("batched-b", (2, 3, 10), 4, batch=(2,), per_column=True, bias="input"),
    integer_to_float("ranged-a-params", (3, 16), 5, a_params="range", per_column=True, bias="exact"),
    integer_to_float("per-row-a-scale", (3, 16), 5, a_scale_shape=(3, 1), bias="exact"),
    integer_to_float("swapped-scales", (3, 16), 5, a_scale_shape=(5,), bias="input"),
    integer_to_float("saturating", (2, 64), 3, per_column=True),
    integer_to_float("small-weights", (2, 64), 3, spread=40, per_column=True, bias="exact"),
]

DYNAMIC_QUANTIZE_MATMUL = [
    dynamic_matmul("i8", (3, 16), 5),
    dynamic_matmul("per-column-bias", (2, 3, 24), 6, per_column=True, bias="input"),
    dynamic_matmul("u8-zp", (4, 12), 7, etype=U8, per_column=True, bias="exact"),
    dynamic_matmul("positive", (3, 16), 5, low=0.25, high=2.0, per_column=True),
    dynamic_matmul("negative", (3, 16), 5, low=-2.0, high=-0.5, bias="exact"),
    dynamic_matmul("no-zero-point", (2, 32), 4, zero_point=False, spread=50),
    dynamic_matmul("batched-b", (2, 3, 10), 4, batch=(2,), per_column=True, bias="input"),
]



def q_attention(name: str, batch: int, seq: int, hidden: int, heads: int, mask: str = "", **kw) -> OpCase:
    """A QAttention case: the uint8 input a drawn range, the (D, 3 * hidden) weight exact; ``mask``: ``""``,
    ``"lengths"`` (exact (B,) key lengths) or ``"padding"`` (a drawn (B, S) 1/0 mask)."""
    w, w_scale, w_zp = weight(name, 12, 3 * hidden, **kw)
    rng = np.random.default_rng(len(name) + 2)
    bias = Operand((3 * hidden,), F32, value=rng.normal(0, 0.5, 3 * hidden))
    masks = {"": None, "lengths": Operand((batch,), TensorProto.INT32, value=np.arange(seq, seq - batch, -1)),
             "padding": Operand((batch, seq), TensorProto.INT32, 0, 1)}
    operands = [Operand((batch, seq, 12), U8, 0, 255), w, bias, Operand((), F32, value=0.02), w_scale, masks[mask],
                Operand((), U8, value=131), w_zp]
    return OpCase("QAttention", _trim(operands), attrs={"num_heads": heads}, domain=MS, opset=17,
                  name=f"QAttention-{name}", rtol=1e-4)


def q_embed_layer_norm(name: str, etype: int = U8, segments: bool = True, mask: bool = True) -> OpCase:
    """A QEmbedLayerNormalization case: drawn ids (and segment ids, mask), exact quantized tables."""
    rng = np.random.default_rng(len(name))
    low, high = _RANGE[etype]
    batch, seq, hidden, vocab = 2, 4, 16, 20
    shapes = {"word": (vocab, hidden), "position": (seq + 2, hidden), "segment": (2, hidden), "gamma": (hidden,),
              "beta": (hidden,)}
    names = [n for n in shapes if segments or n != "segment"]
    tables = {n: Operand(shapes[n], etype, value=rng.integers(low, high + 1, shapes[n])) for n in names}
    scales = {n: Operand((), F32, value=np.exp(rng.uniform(-6, -2))) for n in names}
    zero_points = {n: Operand((), etype, value=rng.integers(low, high + 1)) for n in names}
    ids = Operand((batch, seq), TensorProto.INT32, 0, vocab - 1)
    segment_ids = Operand((batch, seq), TensorProto.INT32, 0, 1) if segments else None
    operands = [ids, segment_ids, *(tables.get(n) for n in shapes),
                Operand((batch, seq), TensorProto.INT32, 0, 1) if mask else None,
                *(scales.get(n) for n in shapes), *(zero_points.get(n) for n in shapes)]
    return OpCase("QEmbedLayerNormalization", tuple(operands), attrs={"epsilon": 1e-12}, outputs=2, domain=MS,
                  opset=17, name=f"QEmbedLayerNormalization-{name}", rtol=1e-4)


Q_ATTENTION = [
    q_attention("per-tensor", 2, 5, 8, 2),
    q_attention("per-column-lengths", 2, 4, 8, 2, mask="lengths", per_column=True),
    q_attention("u8-padding", 2, 3, 12, 3, mask="padding", etype=U8, per_column=True),
]

Q_EMBED_LAYER_NORMALIZATION = [
    q_embed_layer_norm("u8"),
    q_embed_layer_norm("i8-no-segment", etype=I8, segments=False),
    q_embed_layer_norm("u8-no-mask", mask=False),
]

CASES = MATMUL_INTEGER_TO_FLOAT + DYNAMIC_QUANTIZE_MATMUL + Q_ATTENTION + Q_EMBED_LAYER_NORMALIZATION
