"""ONNX element types, their torch counterparts, and the float facts the analysis relies on.

Bounds are stored as float64 for floating tensors and int64 for integer and boolean tensors
(booleans as 0/1), so that integer shape arithmetic stays exact.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
from onnx import TensorProto
from torch import Tensor

__all__ = [
    "FloatFacts",
    "bound_dtype",
    "elem_type_of",
    "float_facts",
    "int_range",
    "is_bool",
    "is_float",
    "is_held",
    "narrow_int_range",
    "torch_dtype",
    "type_name",
    "wrapped_int",
]

_TORCH_OF = {
    TensorProto.FLOAT: torch.float32,
    TensorProto.DOUBLE: torch.float64,
    TensorProto.FLOAT16: torch.float16,
    TensorProto.BFLOAT16: torch.bfloat16,
    TensorProto.INT8: torch.int8,
    TensorProto.INT16: torch.int16,
    TensorProto.INT32: torch.int32,
    TensorProto.INT64: torch.int64,
    TensorProto.UINT8: torch.uint8,
    TensorProto.UINT16: torch.int32,
    TensorProto.UINT32: torch.int64,
    TensorProto.UINT64: torch.int64,
    TensorProto.BOOL: torch.bool,
}
_ONNX_OF = {
    torch.float32: TensorProto.FLOAT,
    torch.float64: TensorProto.DOUBLE,
    torch.float16: TensorProto.FLOAT16,
    torch.bfloat16: TensorProto.BFLOAT16,
    torch.int8: TensorProto.INT8,
    torch.int16: TensorProto.INT16,
    torch.int32: TensorProto.INT32,
    torch.int64: TensorProto.INT64,
    torch.uint8: TensorProto.UINT8,
    torch.uint16: TensorProto.UINT16,  # concrete values (numpy feeds); their bounds are int64 as for any integer
    torch.uint32: TensorProto.UINT32,
    torch.uint64: TensorProto.UINT64,
    torch.bool: TensorProto.BOOL,
}
_SUBNORMAL = {
    torch.float32: 2.0**-149,
    torch.float64: 2.0**-1074,
    torch.float16: 2.0**-24,
    torch.bfloat16: 2.0**-133,
}
_FLOATS = {TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.FLOAT16, TensorProto.BFLOAT16}


def is_float(elem_type: int) -> bool:
    """Whether an ONNX element type is a floating type the analysis supports."""
    return elem_type in _FLOATS


def is_held(elem_type: int) -> bool:
    """Whether the analysis holds tensors of an ONNX element type (float8, 4-bit and string types it does not)."""
    return elem_type in _TORCH_OF


def is_bool(elem_type: int) -> bool:
    """Whether an ONNX element type is BOOL."""
    return elem_type == TensorProto.BOOL


# each integer type's own values; uint16 and uint32 are held in the wider int32 and int64, so their holders'
# ranges are not theirs. uint64 bounds are int64 bit patterns (see :mod:`ranum.ops.convert`): int64's range.
_INT_RANGES = {
    TensorProto.INT8: (-(2**7), 2**7 - 1),
    TensorProto.INT16: (-(2**15), 2**15 - 1),
    TensorProto.INT32: (-(2**31), 2**31 - 1),
    TensorProto.INT64: (-(2**63), 2**63 - 1),
    TensorProto.UINT8: (0, 2**8 - 1),
    TensorProto.UINT16: (0, 2**16 - 1),
    TensorProto.UINT32: (0, 2**32 - 1),
    TensorProto.UINT64: (-(2**63), 2**63 - 1),
}


def int_range(elem_type: int) -> tuple[int, int] | None:
    """The smallest and largest value of an integer element type (uint64: of its int64-held bit patterns);
    None for floating, boolean and unsupported types."""
    return _INT_RANGES.get(elem_type)


def narrow_int_range(elem_type: int) -> tuple[int, int] | None:
    """The value range of an integer element type narrower than int64 (None for int64, uint64, bool and
    the other types): bounds past it mean the arithmetic wrapped around, as onnxruntime's arithmetic in the
    type does (uint32 ``0 - 1`` is 4294967295)."""
    if elem_type in (TensorProto.INT64, TensorProto.UINT64):
        return None
    return int_range(elem_type)


# unsigned types held in a wider torch dtype: their width in bits
_HELD_WIDER = {TensorProto.UINT16: 16, TensorProto.UINT32: 32}


def wrapped_int(values: Tensor, elem_type: int) -> Tensor:
    """Integer results computed in a type's torch holder, as onnxruntime's arithmetic in the type gives them:
    uint16 and uint32 values (held in int32 and int64) keep their low 16 or 32 bits (``0 - 1`` is 65535 or
    4294967295); the other types wrap in their own torch dtype and are returned as they are."""
    bits = _HELD_WIDER.get(elem_type)
    if bits is None or values.is_floating_point() or values.dtype == torch.bool:
        return values
    return values & (2**bits - 1)


def torch_dtype(elem_type: int) -> torch.dtype:
    """The torch dtype that holds concrete values of an ONNX element type."""
    try:
        return _TORCH_OF[elem_type]
    except KeyError:
        raise ValueError(f"unsupported tensor element type {type_name(elem_type)}") from None


def elem_type_of(dtype: torch.dtype) -> int:
    """The ONNX element type of a torch dtype."""
    return _ONNX_OF[dtype]


def bound_dtype(elem_type: int) -> torch.dtype:
    """The dtype in which bounds of a tensor of this element type are stored."""
    return torch.float64 if is_float(elem_type) else torch.int64


def type_name(elem_type: int) -> str:
    """A readable name such as 'float32' for an ONNX element type."""
    if elem_type == TensorProto.FLOAT:
        return "float32"
    if elem_type == TensorProto.DOUBLE:
        return "float64"
    try:
        return TensorProto.DataType.Name(elem_type).lower()
    except ValueError:
        return f"type{elem_type}"


@dataclass(frozen=True)
class FloatFacts:
    """Limits of a floating type, as float64 numbers.

    Attributes:
        max: largest finite value.
        eps: machine epsilon (distance from 1 to the next value).
        tiny: smallest positive normal number.
        subnormal: smallest positive subnormal number.
        log_max: natural log of ``max``; exp of anything larger overflows.
        flushed: magnitudes below it may be read as 0 by arithmetic with denormals-are-zero: ``tiny``,
            except for float16, whose values are widened to float32 normals before any arithmetic (CPU
            kernels; GPUs keep float16 subnormals), so only 0 itself is 0 (``subnormal``).
    """

    max: float
    eps: float
    tiny: float
    subnormal: float
    log_max: float
    flushed: float


@functools.cache
def float_facts(elem_type: int) -> FloatFacts:
    """Limits of a floating ONNX element type (integers get float32's, never used for rounding).

    Constants of the type system, computed once per type."""
    dtype = _TORCH_OF[elem_type] if is_float(elem_type) else torch.float32
    info = torch.finfo(dtype)
    sub = _SUBNORMAL[dtype]
    return FloatFacts(
        max=float(info.max),
        eps=float(info.eps),
        tiny=float(info.tiny),
        subnormal=sub,
        log_max=float(torch.log(torch.tensor(float(info.max), dtype=torch.float64))),
        flushed=sub if dtype == torch.float16 else float(info.tiny),
    )
