"""Soundness cases: DynamicQuantizeLinear, MatMulInteger, ConvInteger, QLinearMatMul, QLinearConv.

Integer operands span their whole type (so int8 weights reach onnxruntime's int16 pair saturation on x86
without VNNI); scales are float ranges or constants. Zero points of A (MatMulInteger) and x (ConvInteger)
are scalars: onnxruntime rejects per-row ones.
"""

from onnx import TensorProto

from tests.ops.harness import OpCase, Operand

F32, U8, I8, I32 = TensorProto.FLOAT, TensorProto.UINT8, TensorProto.INT8, TensorProto.INT32


def _u8(shape, low=0, high=255):
    return Operand(shape, U8, low, high)


def _i8(shape, low=-128, high=127):
    return Operand(shape, I8, low, high)


def _scale(shape=(), low=0.001, high=0.05):
    return Operand(shape, F32, low, high)


def _qmm(a, a_zp, b, b_zp, y_zp, name, b_scale=None, agree=True):
    return OpCase("QLinearMatMul", (a, _scale(), a_zp, b, b_scale or _scale(), b_zp, _scale(low=0.5, high=4.0),
                                    y_zp), opset=21, name=name, check_agreement=agree)


def _qconv(x, x_zp, w, w_zp, y_zp, name, attrs=None, bias=None, w_scale=None, agree=True):
    inputs = (x, _scale(), x_zp, w, w_scale or _scale(), w_zp, _scale(low=0.05, high=2.0), y_zp) + \
        ((bias,) if bias is not None else ())
    return OpCase("QLinearConv", inputs, attrs=attrs or {}, opset=10, name=name, check_agreement=agree)


CASES = [
    OpCase("DynamicQuantizeLinear", (Operand((3, 5), F32, -4.0, 6.0),), outputs=3, opset=11, name="DQL-mixed"),
    OpCase("DynamicQuantizeLinear", (Operand((2, 4), F32, 0.5, 3.0),), outputs=3, opset=11, name="DQL-positive"),
    OpCase("DynamicQuantizeLinear", (Operand((2, 4), F32, -3.0, -0.5),), outputs=3, opset=11, name="DQL-negative"),
    OpCase("DynamicQuantizeLinear", (Operand((4,), F32, -1e-3, 1e-3),), outputs=3, opset=11, name="DQL-near-zero"),
    OpCase("MatMulInteger", (_u8((3, 6)), _u8((6, 4))), opset=10, name="MatMulInteger-u8u8"),
    # x86 without VNNI saturates u8 x s8 pair sums to int16: the bounds cover it, the exact concrete rule
    # (the ONNX semantics, and onnxruntime's on VNNI and ARM) then differs from onnxruntime here
    OpCase("MatMulInteger", (_u8((3, 40)), _i8((40, 4))), opset=10, name="MatMulInteger-u8s8-saturating",
           check_agreement=False),
    OpCase("MatMulInteger", (_u8((3, 40)), _i8((40, 4), -64, 63)), opset=10, name="MatMulInteger-u8s8-reduced"),
    OpCase("MatMulInteger", (_u8((2, 3, 5)), _i8((5, 4), -64, 63), _u8(()), Operand((4,), I8, value=[0, -3, 5, 1])),
           opset=10, name="MatMulInteger-zero-points-per-column"),
    OpCase("MatMulInteger", (_u8((2, 3, 5)), _u8((2, 5, 2), 100, 140), _u8((1,), 120, 130), _u8((), 110, 130)),
           opset=10, name="MatMulInteger-batched-ranged-zero-points"),
    OpCase("MatMulInteger", (_i8((3, 6)), _i8((6, 2)), _i8(()), _i8(())), opset=10, name="MatMulInteger-s8s8"),
    OpCase("MatMulInteger", (_i8((3, 6)), _u8((6, 2))), opset=10, name="MatMulInteger-s8u8"),
    OpCase("ConvInteger", (_u8((1, 2, 5, 5)), _u8((3, 2, 3, 3)), _u8(())), opset=10, name="ConvInteger-u8u8"),
    OpCase("ConvInteger", (_u8((1, 4, 6, 5)), _i8((4, 2, 2, 3), -64, 63), _u8((), 100, 140), _i8((), -3, 3)),
           attrs={"pads": [1, 0, 1, 2], "strides": [2, 1], "group": 2}, opset=10,
           name="ConvInteger-u8s8-pads-strides-groups"),
    OpCase("ConvInteger", (_u8((2, 3, 7)), _u8((2, 3, 3)), _u8(())), attrs={"dilations": [2], "pads": [2, 1]},
           opset=10, name="ConvInteger-1d-dilated"),
    _qmm(_u8((3, 5)), _u8(()), _u8((5, 4)), _u8(()), _u8(()), "QLinearMatMul-u8u8"),
    _qmm(_u8((2, 3, 40)), _u8(()), _i8((40, 4)), _i8((), -3, 3), _u8(()), "QLinearMatMul-u8s8-saturating",
         agree=False),
    _qmm(_u8((2, 3, 40)), _u8(()), _i8((40, 4), -64, 63), _i8((), -3, 3), _u8(()), "QLinearMatMul-u8s8-reduced"),
    _qmm(_i8((3, 6)), _i8(()), _i8((6, 4)), _i8(()), _i8(()), "QLinearMatMul-s8s8"),
    _qmm(_u8((3, 6)), _u8(()), _i8((6, 4), -64, 63), Operand((4,), I8, value=[0, 0, 0, 0]), _u8(()),
         "QLinearMatMul-per-column-scale", b_scale=_scale((4,))),
    _qconv(_u8((1, 2, 5, 5)), _u8(()), _u8((3, 2, 3, 3)), _u8(()), _u8(()), "QLinearConv-u8u8",
           attrs={"pads": [1, 1, 1, 1]}),
    _qconv(_u8((1, 2, 5, 5)), _u8(()), _i8((3, 2, 3, 3)), _i8(()), _u8(()), "QLinearConv-u8s8-saturating",
           agree=False),
    _qconv(_u8((1, 4, 6, 6)), _u8(()), _i8((4, 2, 3, 3), -64, 63), Operand((4,), I8, value=[0, 0, 0, 0]), _u8(()),
           "QLinearConv-u8s8-groups-strides-bias", attrs={"pads": [1, 0, 1, 2], "strides": [2, 1], "group": 2},
           bias=Operand((4,), I32, -1000, 1000), w_scale=_scale((4,))),
    _qconv(_i8((1, 3, 5, 5)), _i8(()), _i8((2, 3, 2, 2)), _i8(()), _i8(()), "QLinearConv-s8s8"),
]
