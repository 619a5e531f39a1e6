"""Soundness cases: RNN, GRU, LSTM.

onnxruntime's CPU kernels reject ``layout = 1`` (batch-major tensors), so those cases live in
tests/ops/test_recurrent.py, checked against onnxruntime on the transposed layout-0 model. Float16
runs on the CPU provider through the float32 kernels with casts around them, which is what ranum
models, so float16 cases are here for all three operators.
"""

from onnx import TensorProto

from tests.ops.harness import OpCase, Operand

F16 = TensorProto.FLOAT16
I32 = TensorProto.INT32
GATES = {"RNN": 1, "GRU": 3, "LSTM": 4}


def recurrent(op: str, seq: int = 4, batch: int = 2, inputs: int = 3, hidden: int = 5, dirs: int = 1, *,
              bias: bool = False, lengths: list[int] | None = None, initial: bool = False, peepholes: bool = False,
              weights: float = 1.0, x: tuple[float, float] = (-3.0, 3.0), elem_type: int = TensorProto.FLOAT,
              opset: int = 14, name: str = "", check_agreement: bool = True, **attrs) -> OpCase:
    """One recurrent node: X, W, R and the optional inputs asked for (unasked optional inputs are omitted)."""
    rows = GATES[op] * hidden
    operands: list[Operand | None] = [
        Operand((seq, batch, inputs), elem_type, *x),
        Operand((dirs, rows, inputs), elem_type, -weights, weights),
        Operand((dirs, rows, hidden), elem_type, -weights, weights),
        Operand((dirs, 2 * rows), elem_type, -weights, weights) if bias else None,
        Operand((batch,), I32, value=lengths) if lengths is not None else None,
        Operand((dirs, batch, hidden), elem_type) if initial else None,
    ]
    if op == "LSTM":
        operands += [Operand((dirs, batch, hidden), elem_type) if initial else None,
                     Operand((dirs, 3 * hidden), elem_type, -weights, weights) if peepholes else None]
    while operands[-1] is None:
        operands.pop()
    if dirs == 2:
        attrs.setdefault("direction", "bidirectional")
    return OpCase(op, tuple(operands), attrs={"hidden_size": hidden, **attrs}, outputs=3 if op == "LSTM" else 2,
                  opset=opset, name=name, check_agreement=check_agreement)


CASES = [
    recurrent("RNN", name="RNN-defaults"),
    recurrent("RNN", bias=True, initial=True, direction="reverse", name="RNN-reverse-bias-initial"),
    recurrent("RNN", dirs=2, bias=True, initial=True, opset=7, name="RNN-bidirectional-opset7"),
    recurrent("RNN", bias=True, activations=["Relu"], clip=2.0, name="RNN-relu-clip"),
    recurrent("RNN", dirs=2, activations=["LeakyRelu", "Softsign"], activation_alpha=[0.1, 0.0],
              name="RNN-leakyrelu-softsign"),
    recurrent("RNN", dirs=2, activations=["Affine", "ScaledTanh"], activation_alpha=[0.5, 1.5],
              activation_beta=[0.25, 0.7], name="RNN-affine-scaledtanh"),
    recurrent("RNN", dirs=2, activations=["ThresholdedRelu", "Softplus"], activation_alpha=[0.5, 0.0],
              name="RNN-thresholdedrelu-softplus"),
    recurrent("RNN", dirs=2, batch=3, bias=True, lengths=[4, 1, 3], name="RNN-sequence-lens"),
    recurrent("RNN", seq=8, inputs=6, hidden=12, bias=True, initial=True, weights=0.3, x=(-1.0, 1.0),
              name="RNN-narrow-weights"),
    recurrent("RNN", bias=True, initial=True, elem_type=F16, name="RNN-f16"),
    # overflowing sums: whether a NaN or an infinity comes out depends on the summation order
    recurrent("RNN", seq=2, hidden=3, weights=3e19, x=(1e19, 3e19), activations=["Relu"], name="RNN-overflow",
              check_agreement=False),
    recurrent("GRU", name="GRU-defaults"),
    recurrent("GRU", bias=True, initial=True, linear_before_reset=1, name="GRU-linear-before-reset"),
    recurrent("GRU", bias=True, initial=True, direction="reverse", opset=7, name="GRU-reverse-opset7"),
    recurrent("GRU", dirs=2, bias=True, initial=True, linear_before_reset=1, clip=1.5, name="GRU-bidirectional-clip"),
    recurrent("GRU", dirs=2, batch=3, bias=True, initial=True, lengths=[3, 0, 4], name="GRU-sequence-lens"),
    recurrent("GRU", bias=True, activations=["HardSigmoid", "Elu"], activation_alpha=[0.3, 0.8],
              activation_beta=[0.45], name="GRU-hardsigmoid-elu"),
    recurrent("GRU", seq=8, inputs=6, hidden=12, bias=True, initial=True, weights=0.3, x=(-1.0, 1.0),
              linear_before_reset=1, name="GRU-narrow-weights"),
    recurrent("GRU", bias=True, initial=True, elem_type=F16, name="GRU-f16"),
    recurrent("LSTM", name="LSTM-defaults"),
    recurrent("LSTM", bias=True, initial=True, peepholes=True, opset=7, name="LSTM-peepholes-opset7"),
    recurrent("LSTM", dirs=2, bias=True, initial=True, peepholes=True, clip=2.0, name="LSTM-bidirectional-clip"),
    recurrent("LSTM", bias=True, initial=True, direction="reverse", input_forget=1, name="LSTM-reverse-input-forget"),
    recurrent("LSTM", dirs=2, batch=3, bias=True, initial=True, peepholes=True, lengths=[4, 2, 0],
              name="LSTM-sequence-lens"),
    recurrent("LSTM", bias=True, activations=["HardSigmoid", "LeakyRelu", "Softsign"],
              activation_alpha=[0.25, 0.05], activation_beta=[0.55], name="LSTM-activations"),
    recurrent("LSTM", seq=8, inputs=6, hidden=12, bias=True, initial=True, peepholes=True, weights=0.3,
              x=(-1.0, 1.0), name="LSTM-narrow-weights"),
    recurrent("LSTM", bias=True, initial=True, peepholes=True, elem_type=F16, name="LSTM-f16"),
    recurrent("LSTM", seq=2, hidden=3, weights=3e19, x=(1e19, 3e19), name="LSTM-overflow", check_agreement=False),
]
