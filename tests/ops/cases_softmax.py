"""Soundness cases: Softmax, LogSoftmax, Hardmax (opset 13 single axis and opset 11/12 2-D rows)."""

from onnx import TensorProto

from tests.ops.harness import OpCase, Operand

F16 = TensorProto.FLOAT16
F64 = TensorProto.DOUBLE
HUGE = 3.4e38  # float32 masks: scores + (-3.4e38)


def _family(op: str) -> list[OpCase]:
    return [
        OpCase(op, (Operand((3, 4, 5), low=-5, high=5),), name=f"{op}-last-axis"),
        OpCase(op, (Operand((3, 4, 5), low=-5, high=5),), attrs={"axis": 0}, name=f"{op}-axis0"),
        OpCase(op, (Operand((3, 4, 5), low=-5, high=5),), attrs={"axis": -2}, name=f"{op}-axis-neg2"),
        OpCase(op, (Operand((4, 1), low=-5, high=5),), name=f"{op}-single"),
        OpCase(op, (Operand((2, 200), low=-3, high=3),), name=f"{op}-long-row"),
        OpCase(op, (Operand((3, 6), low=-200, high=200),), name=f"{op}-underflow"),
        OpCase(op, (Operand((3, 6), low=-HUGE, high=20),), name=f"{op}-masked"),
        OpCase(op, (Operand((2, 3, 4), low=-5, high=5),), opset=11, name=f"{op}-opset11-default"),
        OpCase(op, (Operand((2, 3, 4), low=-5, high=5),), attrs={"axis": 0}, opset=11, name=f"{op}-opset11-axis0"),
        OpCase(op, (Operand((2, 3, 4), low=-5, high=5),), attrs={"axis": -1}, opset=12, name=f"{op}-opset12-last"),
        OpCase(op, (Operand((3, 5), F16, low=-12, high=12),), name=f"{op}-f16"),
        OpCase(op, (Operand((3, 5), F16, low=-65504, high=10),), opset=13, name=f"{op}-f16-masked"),
        OpCase(op, (Operand((3, 5), F64, low=-800, high=30),), name=f"{op}-f64"),
    ]


CASES = [
    *_family("Softmax"),
    *_family("LogSoftmax"),
    OpCase("LogSoftmax", (Operand((3, 6), low=-HUGE, high=HUGE),), name="LogSoftmax-overflow"),
    OpCase("Softmax", (Operand((3, 6), low=-HUGE, high=HUGE),), name="Softmax-extremes"),
    OpCase("Hardmax", (Operand((3, 4, 5), low=-5, high=5),), name="Hardmax-last-axis"),
    OpCase("Hardmax", (Operand((3, 4, 5), low=-5, high=5),), attrs={"axis": 1}, name="Hardmax-axis1"),
    OpCase("Hardmax", (Operand((3, 4, 5), low=-1, high=1),), opset=11, name="Hardmax-opset11-default"),
    OpCase("Hardmax", (Operand((3, 4, 5), low=-1, high=1),), attrs={"axis": 2}, opset=11, name="Hardmax-opset11-last"),
    OpCase("Hardmax", (Operand((4, 6), F16, low=-2, high=2),), name="Hardmax-f16"),
    # version 1 (opsets 1 to 10): rows of the input coerced to 2-D at axis (default 1)
    OpCase("Softmax", (Operand((2, 3, 4), low=-5, high=5),), opset=9, name="Softmax1-opset9"),
    OpCase("LogSoftmax", (Operand((2, 3, 4), low=-5, high=5),), attrs={"axis": 2}, opset=7, name="LogSoftmax1-opset7"),
    OpCase("Hardmax", (Operand((3, 4, 5), low=-1, high=1),), attrs={"axis": 0}, opset=10, name="Hardmax1-opset10"),
]
