"""Soundness cases: exponentials, logarithms, roots, reciprocals."""

from tests.ops.harness import OpCase, Operand

CASES = [
    OpCase("Exp", (Operand((3, 4), low=-5, high=5),)),
    OpCase("Exp", (Operand((2, 3), low=80, high=95),), name="Exp-overflow"),
    OpCase("Log", (Operand((3, 4), low=-1, high=5),)),
    OpCase("Log", (Operand((3, 4), low=1e-3, high=5),), name="Log-positive"),
    OpCase("Sqrt", (Operand((3, 4), low=-1, high=9),)),
    OpCase("Reciprocal", (Operand((3, 4), low=-2, high=2),)),
    OpCase("Reciprocal", (Operand((5,), low=0.5, high=2),), name="Reciprocal-positive"),
]
