"""Soundness cases: onnxruntime's weight-only quantized operators (ranum.ops.contrib_nbits).

Packed weights are exact initializers, packed here by hand (low-order bits first, as onnxruntime reads
them); A (and some biases) are drawn ranges.
"""

from __future__ import annotations

import numpy as np
from onnx import TensorProto

from tests.ops.harness import OpCase, Operand

F16 = TensorProto.FLOAT16
U8 = TensorProto.UINT8
MS = "com.microsoft"


def pack_codes(codes: np.ndarray, bits: int) -> np.ndarray:
    """uint8 bytes holding ``8 // bits`` codes each along the last axis, the first code in the low bits."""
    per = 8 // bits
    padded = -(-codes.shape[-1] // per) * per
    wide = np.zeros(codes.shape[:-1] + (padded,), dtype=np.int64)
    wide[..., : codes.shape[-1]] = codes
    wide = wide.reshape(codes.shape[:-1] + (padded // per, per))
    return sum(wide[..., j] << (bits * j) for j in range(per)).astype(np.uint8)


def nbits_weight(seed: int, k: int, n: int, bits: int, block: int, zero_points: str = "",
                 scale_type: int = TensorProto.FLOAT, scales_2d: bool = False, g_idx: bool = False):
    """Exact operands B, scales, zero_points (``""``: none, ``"packed"`` or ``"float"``) and g_idx."""
    rng = np.random.default_rng(seed)
    k_blocks = -(-k // block)
    codes = rng.integers(0, 2**bits, size=(n, k_blocks, block))
    b = Operand((n, k_blocks, block * bits // 8), U8, value=pack_codes(codes, bits))
    scales = rng.uniform(0.01, 0.3, size=(n, k_blocks))
    shape = (n, k_blocks) if scales_2d else (n * k_blocks,)
    operands = [b, Operand(shape, scale_type, value=scales.reshape(shape))]
    zeros = rng.integers(0, 2**bits, size=(n, k_blocks))
    if zero_points == "packed":
        packed = pack_codes(zeros, bits).reshape(-1)
        operands.append(Operand(packed.shape, U8, value=packed))
    elif zero_points == "float":
        operands.append(Operand((n * k_blocks,), scale_type, value=rng.uniform(0, 2**bits - 1, n * k_blocks)))
    else:
        operands.append(None)
    operands.append(Operand((k,), TensorProto.INT32, value=rng.integers(0, k_blocks, k)) if g_idx else None)
    return operands


def matmul_nbits(name: str, a_shape: tuple[int, ...], n: int, bits: int = 4, block: int = 32, zero_points: str = "",
                 bias: str = "", accuracy: int = 0, elem_type: int = TensorProto.FLOAT, low: float = -3.0,
                 high: float = 3.0, **kw) -> OpCase:
    """A MatMulNBits case; ``bias``: ``""`` (none), ``"input"`` (a drawn range) or ``"exact"``."""
    k = a_shape[-1]
    weight = nbits_weight(len(name), k, n, bits, block, zero_points, elem_type, kw.pop("scales_2d", False),
                          kw.pop("g_idx", False))
    operands = [Operand(a_shape, elem_type, low, high), *weight]
    if bias == "input":
        operands.append(Operand((n,), elem_type, -2.0, 2.0))
    elif bias == "exact":
        operands.append(Operand((n,), elem_type, value=np.linspace(-1.5, 2.5, n)))
    while operands[-1] is None:
        operands.pop()
    attrs = {"K": k, "N": n, "bits": bits, "block_size": block, "accuracy_level": accuracy}
    return OpCase("MatMulNBits", tuple(operands), attrs=attrs, domain=MS, opset=17, name=f"MatMulNBits-{name}", **kw)


# accuracy level 4 quantizes A to int8: onnxruntime is then off by up to ~1e-2 of the result, by design
_INT8 = {"accuracy": 4, "check_agreement": False}

MATMUL_NBITS = [
    matmul_nbits("4bit", (2, 64), 8),
    matmul_nbits("4bit-zp-bias", (2, 3, 50), 5, block=16, zero_points="packed", bias="input", rtol=1e-4),
    matmul_nbits("4bit-float-zp", (3, 128), 6, block=128, zero_points="float", scales_2d=True, rtol=1e-4),
    matmul_nbits("4bit-exact-bias", (4, 96), 7, block=64, zero_points="packed", bias="exact", rtol=1e-4),
    matmul_nbits("8bit-zp-bias", (2, 64), 4, bits=8, zero_points="packed", bias="input", rtol=1e-4),
    matmul_nbits("8bit", (1, 2, 48), 3, bits=8, block=16, rtol=1e-4),
    matmul_nbits("2bit-zp", (3, 64), 4, bits=2, block=16, zero_points="packed"),
    matmul_nbits("2bit-float-zp", (2, 40), 5, bits=2, block=16, zero_points="float", bias="input", rtol=1e-4),
    matmul_nbits("g-idx", (2, 64), 5, block=16, g_idx=True, rtol=1e-4),
    matmul_nbits("g-idx-float-zp", (2, 64), 5, block=16, zero_points="float", g_idx=True, rtol=1e-4),
    matmul_nbits("int8-4bit-zp", (3, 64), 6, zero_points="packed", bias="input", **_INT8),
    matmul_nbits("int8-4bit", (2, 3, 256), 5, **_INT8),
    matmul_nbits("int8-8bit", (2, 128), 4, bits=8, block=128, **_INT8),
    matmul_nbits("int8-2bit", (2, 64), 4, bits=2, zero_points="packed", **_INT8),
    matmul_nbits("level1", (2, 64), 4, accuracy=1, zero_points="packed"),
    matmul_nbits("f16", (2, 64), 5, elem_type=F16, zero_points="packed", bias="input"),
    matmul_nbits("f16-float-zp", (2, 64), 5, elem_type=F16, zero_points="float"),
    matmul_nbits("f16-int8", (2, 64), 5, elem_type=F16, zero_points="packed", bias="exact", **_INT8),
    matmul_nbits("positive", (2, 64), 6, zero_points="packed", low=0.5, high=2.0, rtol=1e-4),
]



def gather_block_quantized(name: str, vocab: int, width: int, bits: int = 4, block: int = 16,
                           zero_points: bool = False, indices: Operand | None = None,
                           scale_type: int = TensorProto.FLOAT) -> OpCase:
    """A GatherBlockQuantized case: a (vocab, width) table packed along its last axis, drawn (or given) indices."""
    rng = np.random.default_rng(len(name))
    blocks = -(-width // block)
    data = pack_codes(rng.integers(0, 2**bits, size=(vocab, width)), bits)
    operands = [Operand(data.shape, U8, value=data),
                indices or Operand((2, 3), TensorProto.INT64, -vocab, vocab - 1),
                Operand((vocab, blocks), scale_type, value=rng.uniform(0.01, 0.3, size=(vocab, blocks)))]
    if zero_points:
        packed = pack_codes(rng.integers(0, 2**bits, size=(vocab, blocks)), bits)
        operands.append(Operand(packed.shape, U8, value=packed))
    attrs = {"bits": bits, "block_size": block, "gather_axis": 0, "quantize_axis": 1}
    return OpCase("GatherBlockQuantized", tuple(operands), attrs=attrs, domain=MS, opset=17,
                  name=f"GatherBlockQuantized-{name}")


GATHER_BLOCK_QUANTIZED = [
    gather_block_quantized("4bit", 7, 64),
    gather_block_quantized("4bit-zp", 9, 48, block=32, zero_points=True),
    gather_block_quantized("8bit-zp", 5, 32, bits=8, zero_points=True),
    gather_block_quantized("2bit", 6, 64, bits=2, zero_points=True),
    gather_block_quantized("f16", 7, 64, zero_points=True, scale_type=F16),
    gather_block_quantized("exact-indices", 8, 32, indices=Operand((4,), TensorProto.INT64, value=[0, 7, -1, 3])),
]

CASES = MATMUL_NBITS + GATHER_BLOCK_QUANTIZED
