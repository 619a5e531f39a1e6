"""Soundness cases: NegativeLogLikelihoodLoss and SoftmaxCrossEntropyLoss."""

from onnx import TensorProto

from tests.ops.harness import OpCase, Operand

F16 = TensorProto.FLOAT16
F64 = TensorProto.DOUBLE
I64 = TensorProto.INT64
NLL = "NegativeLogLikelihoodLoss"
SCE = "SoftmaxCrossEntropyLoss"


def _targets(shape: tuple[int, ...], low: int, high: int) -> Operand:
    return Operand(shape, I64, low=low, high=high)


CASES = [
    OpCase(NLL, (Operand((3, 4)), Operand((3,), I64, value=[0, 3, 1])), attrs={"reduction": "none"},
           name="NLL-none"),
    OpCase(NLL, (Operand((3, 4, 2)), _targets((3, 2), 0, 3), Operand((4,), low=0.5, high=2.0)), name="NLL-mean-weight"),
    OpCase(NLL, (Operand((3, 4)), _targets((3,), 0, 3)), attrs={"reduction": "sum", "ignore_index": 1},
           name="NLL-sum-ignore"),
    OpCase(NLL, (Operand((2, 3, 2, 2)), _targets((2, 2, 2), 0, 2), Operand((3,), low=-1.0, high=2.0)),
           attrs={"reduction": "none"}, name="NLL-none-4d-signed-weight"),
    OpCase(NLL, (Operand((4, 3)), _targets((4,), 0, 2), Operand((3,), low=-1.0, high=2.0)), name="NLL-mean-signed"),
    # the mean's denominator can be 0: every target ignored, or only zero weights selected
    OpCase(NLL, (Operand((2, 3)), _targets((2,), 0, 2)), attrs={"ignore_index": 1}, name="NLL-mean-all-ignored"),
    OpCase(NLL, (Operand((2, 3)), _targets((2,), 0, 2), Operand((3,), value=[0.0, 0.0, 1.0])),
           name="NLL-mean-zero-weights"),
    OpCase(NLL, (Operand((3, 4)), _targets((3,), -1, 3), Operand((4,), value=[0.5, 1.0, 2.0, 0.25])),
           attrs={"ignore_index": -1}, name="NLL-mean-ignore-outside"),
    OpCase(NLL, (Operand((5, 3), F16), _targets((5,), 0, 2)), opset=13, name="NLL-f16"),
    OpCase(NLL, (Operand((5, 3), F64), _targets((5,), 0, 2)), attrs={"reduction": "sum"}, name="NLL-f64"),
    OpCase(SCE, (Operand((3, 5)), _targets((3,), 0, 4)), outputs=2, name="SCE-mean-logprob"),
    OpCase(SCE, (Operand((2, 4, 3)), _targets((2, 3), 0, 3), Operand((4,), low=0.1, high=3.0)),
           attrs={"reduction": "none", "ignore_index": 2}, outputs=2, name="SCE-none-weight-ignore"),
    OpCase(SCE, (Operand((3, 4), low=-100, high=100), _targets((3,), 0, 3)), attrs={"reduction": "sum"},
           name="SCE-sum-wide"),
    OpCase(SCE, (Operand((2, 3)), _targets((2,), 0, 1)), attrs={"ignore_index": 0}, name="SCE-mean-all-ignored"),
    OpCase(SCE, (Operand((4, 6), F16), _targets((4,), 0, 5)), outputs=2, opset=13, name="SCE-f16"),
    OpCase(SCE, (Operand((3, 4)), _targets((3,), 0, 3), Operand((4,), value=[1.0, 2.0, 0.5, 1.0])), opset=13,
           name="SCE-mean-weight-op13"),
]
