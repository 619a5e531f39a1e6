"""Soundness cases: trigonometric, hyperbolic and error functions."""

from onnx import TensorProto

from tests.ops.harness import OpCase, Operand

F16 = TensorProto.FLOAT16

CASES = [
    OpCase("Sin", (Operand((3, 4), low=-4, high=4),)),
    OpCase("Sin", (Operand((4, 5), low=-30, high=30),), name="Sin-wide"),
    OpCase("Sin", (Operand((3, 4), low=-1e6, high=1e6),), name="Sin-large"),
    OpCase("Sin", (Operand((3, 4), F16, -4, 4),), name="Sin-f16"),
    OpCase("Cos", (Operand((3, 4), low=-4, high=4),)),
    OpCase("Cos", (Operand((2, 3), F16, -8, 8),), name="Cos-f16"),
    OpCase("Tan", (Operand((3, 4), low=-1.5, high=1.5),)),
    OpCase("Tan", (Operand((3, 4), low=-6, high=6),), name="Tan-poles"),
    OpCase("Tan", (Operand((3, 4), low=1.55, high=1.59),), name="Tan-near-pole"),
    OpCase("Tan", (Operand((3, 4), F16, -1.5, 1.5),), name="Tan-f16"),
    OpCase("Asin", (Operand((3, 4), low=-1, high=1),)),
    OpCase("Asin", (Operand((3, 4), low=-1.5, high=1.5),), name="Asin-outside"),
    OpCase("Asin", (Operand((3, 4), F16, -1, 1),), name="Asin-f16"),
    OpCase("Acos", (Operand((3, 4), low=-1, high=1),)),
    OpCase("Acos", (Operand((3, 4), low=-1.5, high=1.5),), name="Acos-outside"),
    OpCase("Atan", (Operand((3, 4), low=-50, high=50),)),
    OpCase("Sinh", (Operand((3, 4), low=-5, high=5),)),
    OpCase("Sinh", (Operand((3, 4), low=80, high=95),), name="Sinh-overflow"),
    OpCase("Sinh", (Operand((3, 4), F16, -12, 12),), name="Sinh-f16-overflow"),
    OpCase("Cosh", (Operand((3, 4), low=-5, high=5),)),
    OpCase("Cosh", (Operand((3, 4), low=-95, high=-80),), name="Cosh-overflow"),
    OpCase("Asinh", (Operand((3, 4), low=-100, high=100),)),
    OpCase("Asinh", (Operand((3, 4), low=-1e-3, high=1e-3),), name="Asinh-small"),
    OpCase("Acosh", (Operand((3, 4), low=1, high=50),)),
    OpCase("Acosh", (Operand((3, 4), low=0, high=3),), name="Acosh-below-one"),
    OpCase("Atanh", (Operand((3, 4), low=-0.99, high=0.99),)),
    OpCase("Atanh", (Operand((3, 4), low=-1.2, high=1.2),), name="Atanh-outside"),
    OpCase("Atanh", (Operand((3, 4), F16, -1, 1),), name="Atanh-f16"),
    OpCase("Erf", (Operand((3, 4), low=-4, high=4),)),
    OpCase("Erf", (Operand((3, 4), F16, -3, 3),), name="Erf-f16"),
]
