"""Soundness cases: element-wise arithmetic with broadcasting."""

from onnx import TensorProto

from tests.ops.harness import OpCase, Operand

CASES = [
    OpCase("Add", (Operand((3, 4)), Operand((4,)))),
    OpCase("Sub", (Operand((3, 1)), Operand((1, 4)))),
    OpCase("Mul", (Operand((2, 3, 4)), Operand((3, 1)))),
    OpCase("Div", (Operand((3, 4)), Operand((3, 4), low=-1, high=2))),
    OpCase("Div", (Operand((3, 4)), Operand((4,), low=0.5, high=2))),
    OpCase("Div", (Operand((3, 4), TensorProto.INT64, -9, 9), Operand((4,), TensorProto.INT64, 1, 4)), name="Div-int"),
    OpCase("Mul", (Operand((3, 4), low=1e19, high=1e20), Operand((3, 4), low=1e19, high=1e20)), name="Mul-overflow"),
]
