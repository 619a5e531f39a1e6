"""Soundness cases: Swish (opset 24) for positive, negative and zero alpha, float32, float16 and double,
with ranges around the critical point and far into both tails."""

from __future__ import annotations

from onnx import TensorProto

from tests.ops.harness import OpCase, Operand

_TYPES = {"float": TensorProto.FLOAT, "float16": TensorProto.FLOAT16, "double": TensorProto.DOUBLE}


def _swish() -> list[OpCase]:
    cases = []
    for alpha in (1.0, 1.702, -0.75, 0.0):
        for low, high, span in ((-4.0, 4.0, "near"), (-40.0, 40.0, "tails")):
            cases.append(OpCase("Swish", (Operand((3, 5), low=low, high=high),), attrs={"alpha": alpha}, opset=24,
                                rtol=1e-5, name=f"Swish-{alpha}-{span}"))
    for name, elem_type in _TYPES.items():
        if name != "float":
            cases.append(OpCase("Swish", (Operand((4, 4), elem_type, -12.0, 12.0),), attrs={"alpha": 0.5}, opset=24,
                                rtol=1e-5, name=f"Swish-{name}"))
    return cases


CASES = _swish()
