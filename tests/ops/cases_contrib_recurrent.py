"""Soundness cases: onnxruntime's contrib CausalConvWithState and LinearAttention (com.microsoft), run by
onnxruntime's own CPU kernels: the standard cases in the contrib domain, and the contrib convolution's
dilation and channels-last layout."""

from __future__ import annotations

import dataclasses

from onnx import TensorProto

from tests.ops.cases_conv_pool import CASES as CONV_CASES
from tests.ops.cases_linear_attention import CASES as ATTENTION_CASES
from tests.ops.harness import OpCase, Operand

MS = "com.microsoft"
F16 = TensorProto.FLOAT16


def _contrib(case: OpCase) -> OpCase:
    return dataclasses.replace(case, domain=MS, opset=21, name=f"{case.id}-contrib")


# the contrib kernel cannot run a float16 state under float32 activations ("Tensor type mismatch")
_SKIPPED = ("float32-gated-float16-state",)
_STANDARD = [_contrib(c) for c in CONV_CASES + ATTENTION_CASES
             if c.op_type in ("CausalConvWithState", "LinearAttention") and not any(s in c.id for s in _SKIPPED)]

_DILATED = [
    OpCase("CausalConvWithState", (Operand((1, 3, 7)), Operand((3, 1, 3)), Operand((3,)), Operand((1, 3, 4))),
           attrs={"dilation": 2, "activation": "silu"}, outputs=2, opset=21, domain=MS,
           name="CausalConvWithState-contrib-dilated-past"),
    OpCase("CausalConvWithState", (Operand((2, 6, 4)), Operand((4, 1, 4))), attrs={"channels_last": 1},
           outputs=2, opset=21, domain=MS, name="CausalConvWithState-contrib-channels-last"),
    OpCase("CausalConvWithState", (Operand((1, 5, 2), F16), Operand((2, 1, 2), F16), None, Operand((1, 3, 2), F16)),
           attrs={"channels_last": 1, "dilation": 3}, outputs=2, opset=21, domain=MS,
           name="CausalConvWithState-contrib-f16-channels-last-dilated-past"),
]

CASES = _STANDARD + _DILATED
