"""Zero-copy views of initializer payloads inside a serialised model.

Reading ``TensorProto.raw_data`` through protobuf copies the payload, which for a model of hundreds of
megabytes costs as much as an inference (and as much memory again). The bytes are already in memory,
in the serialised model the loader parsed, so this module finds where each main-graph initializer's
``raw_data`` lies in them (protobuf wire format: ModelProto field 7 is the graph, GraphProto field 5
an initializer, TensorProto field 8 its name and 9 its raw data) and returns read-only numpy views.

Only unambiguous cases get a view: a tensor whose name or raw data appears once, a graph field that
appears once, a payload whose length is what the parsed tensor's shape and type need, a fixed-width
little-endian element type. Anything else is left to :func:`onnx.numpy_helper.to_array`.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator

import numpy as np
import onnx
from onnx import helper

__all__ = ["raw_views"]

_MODEL_GRAPH = 7
_GRAPH_INITIALIZER = 5
_TENSOR_NAME = 8
_TENSOR_RAW_DATA = 9
_LENGTH_DELIMITED = 2
_PACKED_TYPES = frozenset({
    onnx.TensorProto.STRING, onnx.TensorProto.UNDEFINED,
    *(getattr(onnx.TensorProto, n) for n in ("INT4", "UINT4", "INT2", "UINT2", "FLOAT4E2M1", "FLOAT6E2M3",
                                             "FLOAT6E3M2") if hasattr(onnx.TensorProto, n)),
})


class _Malformed(Exception):
    """The bytes do not parse as expected: fall back to protobuf's own reading."""


def raw_views(data: bytes, graph: onnx.GraphProto) -> dict[str, np.ndarray]:
    """Initializer name -> read-only array over ``data`` (the bytes ``graph``'s model was parsed from)."""
    if sys.byteorder != "little":
        return {}
    try:
        spans = _initializer_spans(data)
    except _Malformed:
        return {}
    views: dict[str, np.ndarray] = {}
    for init in graph.initializer:
        span = spans.get(init.name)
        if span is None or init.data_type in _PACKED_TYPES or not init.HasField("raw_data"):
            continue
        dtype = np.dtype(helper.tensor_dtype_to_np_dtype(init.data_type))
        count = int(np.prod(init.dims, dtype=np.int64))
        start, end = span
        if end - start != count * dtype.itemsize:
            continue  # let the ordinary reading report the mismatch
        views[init.name] = np.frombuffer(data, dtype=dtype, count=count, offset=start).reshape(tuple(init.dims))
    return views


def _initializer_spans(data: bytes) -> dict[str, tuple[int, int]]:
    """Name -> (start, end) of the raw data of each main-graph initializer that has exactly one."""
    graphs = [span for number, span in _fields(data, 0, len(data)) if number == _MODEL_GRAPH]
    if len(graphs) != 1:
        return {}
    spans: dict[str, tuple[int, int]] = {}
    seen: set[str] = set()
    for number, (start, end) in _fields(data, *graphs[0]):
        if number != _GRAPH_INITIALIZER:
            continue
        names, payloads = [], []
        for inner, span in _fields(data, start, end):
            if inner == _TENSOR_NAME:
                names.append(span)
            elif inner == _TENSOR_RAW_DATA:
                payloads.append(span)
        if len(names) != 1:
            continue
        name = data[names[0][0]:names[0][1]].decode("utf-8", errors="replace")
        if name in seen:  # the same name twice: which one a reader takes is not ours to guess
            spans.pop(name, None)
            continue
        seen.add(name)
        if len(payloads) == 1:
            spans[name] = payloads[0]
    return spans


def _fields(data: bytes, start: int, end: int) -> Iterator[tuple[int, tuple[int, int]]]:
    """(field number, (start, end)) of each length-delimited field in ``data[start:end]``; other
    wire types are skipped."""
    pos = start
    while pos < end:
        tag, pos = _varint(data, pos)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            _, pos = _varint(data, pos)
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        elif wire == _LENGTH_DELIMITED:
            length, pos = _varint(data, pos)
            if pos + length > end:
                raise _Malformed
            yield number, (pos, pos + length)
            pos += length
        else:  # groups (3, 4) are not used by ONNX
            raise _Malformed
    if pos != end:
        raise _Malformed


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
