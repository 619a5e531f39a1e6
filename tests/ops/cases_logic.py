"""Soundness cases: comparisons, boolean logic, Where, IsInf/IsNaN, bitwise operators; Bernoulli and Multinomial.

Narrow integer ranges make many blocks points, so that decided comparisons are exercised too.
Bernoulli and Multinomial draw random values: the harness checks that onnxruntime's samples lie
inside ranum's bounds but cannot compare them with ranum's own samples (``check_agreement=False``).
"""

from onnx import TensorProto

from tests.ops.harness import OpCase, Operand

BOOL, F16, I32, I64 = TensorProto.BOOL, TensorProto.FLOAT16, TensorProto.INT32, TensorProto.INT64
I8, U8, I16, U16 = TensorProto.INT8, TensorProto.UINT8, TensorProto.INT16, TensorProto.UINT16


def _bool(shape: tuple[int, ...]) -> Operand:
    return Operand(shape, BOOL, 0, 1)


def _comparisons() -> list[OpCase]:
    cases = []
    for op in ("Equal", "Greater", "GreaterOrEqual", "Less", "LessOrEqual"):
        cases += [
            OpCase(op, (Operand((3, 4), low=-2, high=2), Operand((3, 4), low=-2, high=2)), name=f"{op}-float"),
            OpCase(op, (Operand((3, 1), I64, 0, 2), Operand((1, 5), I64, 0, 2)), name=f"{op}-int64"),
        ]
    return cases + [
        OpCase("Equal", (Operand((2, 3, 4), low=-1, high=3), Operand((4,), low=0, high=2)), name="Equal-broadcast"),
        OpCase("Equal", (_bool((3, 4)), _bool((4,))), name="Equal-bool"),
        OpCase("Equal", (Operand((3, 4), I64, 0, 1), Operand((3, 4), I64, 0, 1)), opset=11, name="Equal-opset11"),
        OpCase("Greater", (Operand((4, 3), F16, -1, 1), Operand((4, 3), F16, 0.5, 2)), name="Greater-float16"),
        OpCase("Greater", (Operand((3, 4), low=1, high=2), Operand((3, 4), low=-2, high=0.5)),
               name="Greater-decided"),
        OpCase("GreaterOrEqual", (Operand((3, 4), I32, -1, 1), Operand((1,), I32, 0, 0)),
               name="GreaterOrEqual-int32"),
        OpCase("Less", (Operand((2, 3, 4), low=-1, high=3), Operand((4,), low=0, high=2)), opset=11,
               name="Less-broadcast-opset11"),
        OpCase("LessOrEqual", (Operand((4, 3), F16, -1, 1), Operand((3,), F16, 0.5, 2)),
               name="LessOrEqual-float16"),
        OpCase("LessOrEqual", (Operand((2, 3), low=0, high=0), Operand((2, 3), low=0, high=0)),
               name="LessOrEqual-points"),
    ]


def _logic() -> list[OpCase]:
    return [
        OpCase("Not", (_bool((3, 4)),)),
        OpCase("Not", (_bool((2, 3, 2)),), name="Not-rank3"),
        OpCase("And", (_bool((3, 4)), _bool((3, 4)))),
        OpCase("And", (_bool((2, 3, 4)), _bool((4,))), name="And-broadcast"),
        OpCase("Or", (_bool((3, 4)), _bool((3, 4)))),
        OpCase("Or", (_bool((3, 1)), _bool((1, 4))), name="Or-broadcast"),
        OpCase("Xor", (_bool((3, 4)), _bool((3, 4)))),
        OpCase("Xor", (_bool((2, 4)), _bool((1,))), name="Xor-broadcast"),
    ]


def _where() -> list[OpCase]:
    return [
        OpCase("Where", (_bool((3, 4)), Operand((3, 4), low=-2, high=2), Operand((3, 4), low=5, high=9))),
        OpCase("Where", (_bool((1, 4)), Operand((3, 4), low=-2, high=2), Operand((4,), low=-9, high=-5)),
               name="Where-broadcast"),
        OpCase("Where", (_bool((2, 3, 1)), Operand((3, 4), I64, -5, 5), Operand((1,), I64, 7, 9)),
               name="Where-int64"),
        OpCase("Where", (_bool((3, 4)), Operand((3, 4), F16, -1, 1), Operand((3, 4), F16, 2, 3)),
               name="Where-float16"),
        OpCase("Where", (_bool((3, 4)), Operand((3, 4), I32, -3, 0), Operand((3, 4), I32, 0, 3)),
               name="Where-int32"),
        OpCase("Where", (_bool((5,)), Operand((5,), low=0, high=1), Operand((5,), low=1, high=2)), opset=11,
               name="Where-opset11"),
    ]


def _classification() -> list[OpCase]:
    return [
        OpCase("IsInf", (Operand((3, 4), low=-1e38, high=1e38),)),
        OpCase("IsInf", (Operand((3, 4), F16, -6e4, 6e4),), attrs={"detect_negative": 0}, opset=20,
               name="IsInf-float16-positive"),
        OpCase("IsInf", (Operand((5,), low=-2, high=2),), attrs={"detect_positive": 0}, opset=11,
               name="IsInf-negative"),
        OpCase("IsNaN", (Operand((3, 4), low=-3, high=3),)),
        OpCase("IsNaN", (Operand((2, 5), F16, -3, 3),), opset=13, name="IsNaN-float16"),
    ]


def _random() -> list[OpCase]:
    return [
        OpCase("Bernoulli", (Operand((3, 4), low=0, high=1),), check_agreement=False),
        # onnxruntime draws 1 with probability 1 - p: p = 0 must not be taken to decide the output.
        OpCase("Bernoulli", (Operand((2, 5), low=0, high=0),), check_agreement=False, name="Bernoulli-zero"),
        OpCase("Bernoulli", (Operand((4, 3), low=0, high=1),), attrs={"dtype": I64, "seed": 3.0},
               check_agreement=False, name="Bernoulli-int64"),
        OpCase("Bernoulli", (Operand((6,), TensorProto.DOUBLE, 0, 1),), attrs={"dtype": BOOL},
               check_agreement=False, name="Bernoulli-bool"),
        OpCase("Multinomial", (Operand((3, 5), low=-2, high=2),), attrs={"sample_size": 4},
               check_agreement=False),
        OpCase("Multinomial", (Operand((2, 3), low=-1, high=1),), attrs={"dtype": I64, "seed": 1.0},
               check_agreement=False, name="Multinomial-int64"),
    ]




def _bitwise() -> list[OpCase]:
    cases = []
    for op in ("BitwiseAnd", "BitwiseOr", "BitwiseXor"):
        cases += [
            OpCase(op, (Operand((3, 4), I32, -40, 40), Operand((3, 4), I32, -40, 40)), name=f"{op}-int32"),
            OpCase(op, (Operand((3, 4), U8, 0, 255), Operand((4,), U8, 3, 60)), name=f"{op}-uint8-broadcast"),
            OpCase(op, (Operand((2, 3), I8, -128, 127), Operand((2, 3), I8, -5, -1)), name=f"{op}-int8-negative"),
            OpCase(op, (Operand((2, 3), I64, -2**40, 2**50), Operand((1, 3), I64, 0, 2**20)), name=f"{op}-int64"),
            OpCase(op, (Operand((2, 3), U16, 0, 65535), Operand((2, 3), U16, 100, 200)), name=f"{op}-uint16"),
        ]
    return cases + [
        OpCase("BitwiseNot", (Operand((3, 4), I32, -40, 40),), name="BitwiseNot-int32"),
        OpCase("BitwiseNot", (Operand((3, 4), U8, 0, 255),), name="BitwiseNot-uint8"),
        OpCase("BitwiseNot", (Operand((3, 4), U16, 0, 65535),), name="BitwiseNot-uint16"),
        OpCase("BitwiseNot", (Operand((2, 2), I16, -9, 9),), name="BitwiseNot-int16"),
    ]


CASES = _comparisons() + _logic() + _where() + _classification() + _random() + _bitwise()
