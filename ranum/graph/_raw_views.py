"""Large weights left out of the parsed model and read as zero-copy views of the file's bytes.

Parsing a serialised model with protobuf copies every weight into the message, and reading
``TensorProto.raw_data`` back copies it again: for a model of hundreds of megabytes that costs as
much as an inference, and twice the model in memory. So before parsing, :func:`strip_payloads`
finds the ``raw_data`` of each large float initializer of the main graph in the bytes (protobuf wire
format: ModelProto field 7 is the graph, GraphProto field 5 an initializer, TensorProto field 1 its
dims, 2 its type, 8 its name and 9 its raw data), and returns the model's bytes without those
payloads (re-encoding the lengths around them) plus read-only numpy views of the payloads.

Only unambiguous tensors are taken: a name and raw data that appear once, a name no other
initializer has, a float type, a payload whose length is what the dims and type need, more than
``LARGE_ELEMENTS`` elements. Anything else stays in the parsed model, read by protobuf as usual.
"""

from __future__ import annotations

import math
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper

__all__ = ["LARGE_ELEMENTS", "STRIPPED_TYPES", "strip_payloads"]

LARGE_ELEMENTS = 1024
STRIPPED_TYPES = frozenset({onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16,
                            onnx.TensorProto.DOUBLE})

_MODEL_GRAPH = 7
_GRAPH_INITIALIZER = 5
_TENSOR_DIMS = 1
_TENSOR_TYPE = 2
_TENSOR_NAME = 8
_TENSOR_RAW_DATA = 9
_VARINT, _FIXED64, _LENGTH_DELIMITED, _FIXED32 = 0, 1, 2, 5


class _Malformed(Exception):
    """The bytes do not parse as expected: leave the model to protobuf as it is."""


@dataclass(frozen=True)
class _Field:
    number: int
    wire: int
    start: int  # first byte of the tag
    value_start: int  # first byte of the value (after the length for length-delimited fields)
    end: int
    value: int = 0  # a varint's value


def strip_payloads(data: bytes) -> tuple[bytes, dict[str, np.ndarray]] | None:
    """``data`` without the payloads of its large float initializers, and a view of each payload.

    None when nothing is taken (then parse ``data`` as it is).
    """
    if sys.byteorder != "little":
        return None
    try:
        return _strip(data)
    except _Malformed:
        return None


def _strip(data: bytes) -> tuple[bytes, dict[str, np.ndarray]] | None:
    top = list(_fields(data, 0, len(data)))
    graphs = [f for f in top if f.number == _MODEL_GRAPH and f.wire == _LENGTH_DELIMITED]
    if len(graphs) != 1:
        return None
    graph = graphs[0]
    fields = list(_fields(data, graph.value_start, graph.end))
    tensors = {id(f): _tensor(data, f) for f in fields
               if f.number == _GRAPH_INITIALIZER and f.wire == _LENGTH_DELIMITED}
    names = Counter(t.name for t in tensors.values() if t is not None)
    views: dict[str, np.ndarray] = {}
    pieces: list[bytes | memoryview] = []
    whole = memoryview(data)
    for field in fields:
        tensor = tensors.get(id(field))
        if tensor is None or names[tensor.name] != 1 or tensor.payload is None:
            pieces.append(whole[field.start:field.end])
            continue
        payload, dtype, dims = tensor.payload
        views[tensor.name] = np.frombuffer(data, dtype=dtype, count=math.prod(dims),
                                           offset=payload.value_start).reshape(dims)
        content = [whole[field.value_start:payload.start], whole[payload.end:field.end]]
        pieces.append(_length_delimited(_GRAPH_INITIALIZER, sum(len(c) for c in content)))
        pieces.extend(content)
    if not views:
        return None
    graph_bytes = b"".join(pieces)
    out = []
    for field in top:
        if field is graph:
            out += [_length_delimited(_MODEL_GRAPH, len(graph_bytes)), graph_bytes]
        else:
            out.append(whole[field.start:field.end])
    return b"".join(out), views


@dataclass(frozen=True)
class _Tensor:
    name: str
    payload: tuple[_Field, np.dtype, tuple[int, ...]] | None  # the raw data field, when it can be taken


def _tensor(data: bytes, field: _Field) -> _Tensor | None:
    """The name of an initializer and, if it is a large float tensor with one raw payload of the
    right length, that payload."""
    names, raws, dims, types = [], [], [], []
    for inner in _fields(data, field.value_start, field.end):
        if inner.number == _TENSOR_NAME and inner.wire == _LENGTH_DELIMITED:
            names.append(data[inner.value_start:inner.end].decode("utf-8", errors="replace"))
        elif inner.number == _TENSOR_RAW_DATA and inner.wire == _LENGTH_DELIMITED:
            raws.append(inner)
        elif inner.number == _TENSOR_DIMS:
            dims += [inner.value] if inner.wire == _VARINT else _packed(data, inner)
        elif inner.number == _TENSOR_TYPE and inner.wire == _VARINT:
            types.append(inner.value)
    if len(names) != 1:
        return None
    if len(raws) != 1 or len(types) != 1 or types[0] not in STRIPPED_TYPES or math.prod(dims) <= LARGE_ELEMENTS:
        return _Tensor(names[0], None)
    dtype = np.dtype(helper.tensor_dtype_to_np_dtype(types[0]))
    if raws[0].end - raws[0].value_start != math.prod(dims) * dtype.itemsize:
        return _Tensor(names[0], None)  # left to protobuf, which reports the mismatch
    payload = _Field(raws[0].number, raws[0].wire, raws[0].start, raws[0].value_start, raws[0].end)
    return _Tensor(names[0], (payload, dtype, tuple(dims)))


def _fields(data: bytes, start: int, end: int) -> Iterator[_Field]:
    pos = start
    while pos < end:
        tag_start = pos
        tag, pos = _varint(data, pos)
        number, wire = tag >> 3, tag & 7
        if wire == _VARINT:
            value, after = _varint(data, pos)
            yield _Field(number, wire, tag_start, pos, after, value)
            pos = after
        elif wire in (_FIXED64, _FIXED32):
            after = pos + (8 if wire == _FIXED64 else 4)
            yield _Field(number, wire, tag_start, pos, after)
            pos = after
        elif wire == _LENGTH_DELIMITED:
            length, pos = _varint(data, pos)
            if pos + length > end:
                raise _Malformed
            yield _Field(number, wire, tag_start, pos, pos + length)
            pos += length
        else:  # groups (3, 4) are not used by ONNX
            raise _Malformed
    if pos != end:
        raise _Malformed


def _packed(data: bytes, field: _Field) -> list[int]:
    if field.wire != _LENGTH_DELIMITED:
        raise _Malformed
    values, pos = [], field.value_start
    while pos < field.end:
        value, pos = _varint(data, pos)
        values.append(value)
    return values


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        if pos >= len(data) or shift > 63:
            raise _Malformed
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def _length_delimited(number: int, length: int) -> bytes:
    return _encode_varint((number << 3) | _LENGTH_DELIMITED) + _encode_varint(length)


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)
