"""Soundness cases: BitCast (opset 26) between floats and integers of each width, over ranges that cross the
sign bit, reach the float's largest values and (integers read as floats) NaN and infinity patterns."""

from __future__ import annotations

from onnx import TensorProto as T

from tests.ops.harness import OpCase, Operand

_PAIRS = (
    # (source, target, low, high, label)
    (T.FLOAT, T.INT32, -3.0, 3.0, "signs"),
    (T.FLOAT, T.UINT32, -3.0, 3.0, "signs"),
    (T.FLOAT, T.INT32, 0.0, 3e38, "large"),
    (T.FLOAT16, T.INT16, -60000.0, 60000.0, "signs"),
    (T.FLOAT16, T.UINT16, -2.0, 5.0, "signs"),
    (T.INT32, T.FLOAT, -3.0, 3.0, "nan-patterns"),
    (T.INT32, T.FLOAT, 1065353216.0, 1073741824.0, "one-to-two"),
    (T.INT32, T.FLOAT, 0.0, 2139095040.0, "up-to-infinity"),
    (T.UINT32, T.FLOAT, 3212836864.0, 3221225472.0, "negative-one-to-two"),
    (T.UINT32, T.INT32, 0.0, 4294967295.0, "whole"),
    (T.INT16, T.FLOAT16, -20000.0, 20000.0, "signs"),
    (T.UINT16, T.FLOAT16, 30000.0, 40000.0, "sign-bit"),
    (T.INT8, T.UINT8, -128.0, 127.0, "whole"),
    (T.UINT8, T.INT8, 100.0, 200.0, "sign-bit"),
    (T.DOUBLE, T.INT64, -3.0, 3.0, "wide"),
)


def _bitcast() -> list[OpCase]:
    return [OpCase("BitCast", (Operand((3, 4), source, low, high),), attrs={"to": target}, opset=26,
                   name=f"BitCast-{T.DataType.Name(source)}-{T.DataType.Name(target)}-{label}")
            for source, target, low, high, label in _PAIRS]


CASES = _bitcast()
