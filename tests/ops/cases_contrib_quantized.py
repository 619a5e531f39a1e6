"""Soundness cases: onnxruntime's QOperator contrib operators (ranum.ops.contrib_quantized).

Data span their whole type; scales are float ranges (free operands) or constants, zero points ranges or
constants, per tensor. Saturating cases pick output scales that push most results past the type's range,
and the overflow cases push the float value past int32, where onnxruntime's conversion gives INT_MIN and
so the type's minimum.
"""

from onnx import TensorProto

from tests.ops.harness import OpCase, Operand

F32, U8, I8 = TensorProto.FLOAT, TensorProto.UINT8, TensorProto.INT8
MS = "com.microsoft"
_RANGE = {U8: (0, 255), I8: (-128, 127)}


def _q(shape, etype=U8, low=None, high=None):
    lo, hi = _RANGE[etype]
    return Operand(shape, etype, lo if low is None else low, hi if high is None else high)


def _zp(etype, low=None, high=None, value=None):
    """A zero point: a range (near the middle of the type by default) or a constant."""
    if value is not None:
        return Operand((), etype, value=value)
    mid = 128 if etype == U8 else 0
    return Operand((), etype, mid - 10 if low is None else low, mid + 10 if high is None else high)


def _s(low=0.01, high=0.05, value=None):
    return Operand((), F32, value=value) if value is not None else Operand((), F32, low, high)


def _ms(op_type, inputs, name, **kw):
    return OpCase(op_type, tuple(inputs), domain=MS, opset=17, name=f"{op_type}-{name}", **kw)


def _mid(shape, etype=U8, spread=60):
    """Data around the middle of the type (results that stay clear of saturation)."""
    mid = 128 if etype == U8 else 0
    return _q(shape, etype, mid - spread, mid + spread)


def _binary(op, name, a, b, etype=U8, c_scale=None, scales=None, zps=None):
    sa, sb = scales or (_s(0.02, 0.03), _s(0.015, 0.025))
    za, zb, zc = zps or (_zp(etype), _zp(etype), _zp(etype))
    return _ms(op, [a, sa, za, b, sb, zb, c_scale, zc], name)


def _binaries(op, c_scale, saturating, spread):
    def mid(shape, etype=U8):
        return _mid(shape, etype, spread)

    exact = {"scales": (_s(value=0.02), _s(value=0.035)), "c_scale": _s(value=0.05 if op == "QLinearAdd" else 0.02)}
    return [
        _binary(op, "u8-same-shape", mid((2, 3, 4)), mid((2, 3, 4)), c_scale=c_scale),
        _binary(op, "u8-broadcast-rows", mid((2, 3, 4)), mid((4,)), c_scale=c_scale),
        _binary(op, "u8-broadcast-a-column", mid((3, 1)), mid((2, 3, 4)), c_scale=c_scale),
        _binary(op, "u8-scalar-a", mid(()), mid((5,)), c_scale=c_scale),
        _binary(op, "i8-broadcast", mid((2, 1, 4), I8), mid((3, 1), I8), I8, c_scale=c_scale),
        _binary(op, "u8-exact-params", mid((3, 4)), mid((3, 4)), zps=(_zp(U8, value=128), _zp(U8, value=120),
                                                                       _zp(U8, value=131)), **exact),
        _binary(op, "i8-exact-b", mid((2, 5), I8), Operand((5,), I8, value=[-spread, -3, 0, 7, spread]), I8,
                zps=(_zp(I8, value=-5), _zp(I8, value=9), _zp(I8, value=0)), **exact),
        _binary(op, "u8-full-range", _q((2, 6)), _q((2, 6)), c_scale=c_scale),
        _binary(op, "u8-saturating", _q((2, 6)), _q((2, 6)), c_scale=saturating),
        _binary(op, "i8-saturating", _q((2, 6), I8), _q((6,), I8), I8, c_scale=saturating),
        _binary(op, "u8-int32-overflow", _q((2, 6)), _q((2, 6)), c_scale=_s(1e-3, 2e-3),
                scales=(_s(1e6, 1e7), _s(0.01, 0.02))),
    ]


def _lookup(op, name, etype=U8, x=None, scales=None, zps=None, **kw):
    sx, sy = scales
    zx, zy = zps or (_zp(etype), _zp(etype))
    return _ms(op, [x or _q((2, 3, 5), etype), sx, zx, sy, zy], name, **kw)


def _lookups(op, scales, exact, zy, **kw):
    """``zy(etype)``: the output zero point used with the operator's ranges."""
    return [
        _lookup(op, "u8", scales=scales, zps=(_zp(U8), zy(U8)), **kw),
        _lookup(op, "i8", I8, scales=scales, zps=(_zp(I8), zy(I8)), **kw),
        _lookup(op, "u8-exact-params", scales=exact, zps=(_zp(U8, value=128), zy(U8, True)), **kw),
        _lookup(op, "i8-exact-params", I8, scales=exact, zps=(_zp(I8, value=-3), zy(I8, True)), **kw),
        _lookup(op, "u8-narrow-input", x=_q((4, 6), U8, 120, 135), scales=exact,
                zps=(_zp(U8, value=128), zy(U8, True)), **kw),
        _lookup(op, "u8-full-scales", scales=(_s(0.01, 0.2), _s(0.002, 0.05)), **kw),
        _lookup(op, "u8-saturating", scales=(_s(0.05, 0.2), _s(1e-4, 5e-4)), **kw),
    ]


def _sigmoid_zp(etype, exact=False):
    low = 0 if etype == U8 else -128
    return _zp(etype, value=low) if exact else _zp(etype, low, low + 5)


def _leaky_zp(etype, exact=False):
    return _zp(etype, value=128 if etype == U8 else 0) if exact else _zp(etype)


def _pool(op, name, x, etype=U8, attrs=None, scales=None, zps=None, **kw):
    sx, sy = scales or (_s(0.02, 0.03), _s(0.03, 0.04))
    zx, zy = zps or (_zp(etype), _zp(etype))
    return _ms(op, [x, sx, zx, sy, zy], name, attrs=attrs or {}, **kw)


_EXACT_POOL = {"scales": (_s(value=0.03), _s(value=0.05)), "zps": (_zp(U8, value=128), _zp(U8, value=100))}

GLOBAL_POOLS = [
    _pool("QLinearGlobalAveragePool", "u8-nchw", _mid((2, 3, 4, 5))),
    _pool("QLinearGlobalAveragePool", "i8-nchw", _mid((1, 4, 3, 3), I8), I8),
    _pool("QLinearGlobalAveragePool", "u8-nhwc", _mid((2, 4, 5, 3)), attrs={"channels_last": 1}),
    _pool("QLinearGlobalAveragePool", "i8-nhwc-1d", _mid((2, 7, 3), I8), I8, attrs={"channels_last": 1}),
    _pool("QLinearGlobalAveragePool", "u8-exact-params", _q((1, 2, 3, 3)), **_EXACT_POOL),
    _pool("QLinearGlobalAveragePool", "u8-full-range", _q((2, 2, 3, 3)), scales=(_s(0.01, 0.05), _s(0.01, 0.05))),
    _pool("QLinearGlobalAveragePool", "u8-saturating", _q((1, 3, 2, 2)), scales=(_s(0.5, 1.0), _s(0.01, 0.02))),
]

AVERAGE_POOLS = [
    _pool("QLinearAveragePool", "u8-3x3", _mid((1, 2, 5, 6)), attrs={"kernel_shape": [3, 3]}),
    _pool("QLinearAveragePool", "i8-pads-strides", _mid((2, 2, 6, 5), I8), I8,
          attrs={"kernel_shape": [2, 3], "strides": [2, 2], "pads": [1, 0, 1, 2]}),
    _pool("QLinearAveragePool", "u8-ceil-count-pad", _mid((1, 3, 7, 5)),
          attrs={"kernel_shape": [3, 2], "strides": [2, 3], "pads": [1, 1, 1, 1], "ceil_mode": 1,
                 "count_include_pad": 1}),
    _pool("QLinearAveragePool", "u8-nhwc", _mid((1, 5, 6, 3)), attrs={"kernel_shape": [2, 2], "channels_last": 1}),
    _pool("QLinearAveragePool", "i8-1d-same", _mid((2, 3, 9), I8), I8,
          attrs={"kernel_shape": [4], "auto_pad": "SAME_UPPER"}),
    _pool("QLinearAveragePool", "u8-whole-input", _mid((1, 2, 3, 4)), attrs={"kernel_shape": [3, 4]}),
    _pool("QLinearAveragePool", "u8-exact-params", _q((1, 2, 4, 4)), attrs={"kernel_shape": [2, 2]},
          **_EXACT_POOL),
    _pool("QLinearAveragePool", "u8-full-range", _q((1, 2, 4, 4)), attrs={"kernel_shape": [2, 3]},
          scales=(_s(0.01, 0.05), _s(0.01, 0.05))),
    _pool("QLinearAveragePool", "u8-saturating", _q((1, 2, 4, 4)), attrs={"kernel_shape": [3, 3], "pads": [1] * 4},
          scales=(_s(0.5, 1.0), _s(0.001, 0.002))),
]


def _concat(name, parts, y=None, etype=U8, axis=1):
    sy, zy = y or (_s(0.03, 0.035), _zp(etype))
    inputs = [sy, zy]
    for part in parts:
        inputs += list(part)
    return _ms("QLinearConcat", inputs, name, attrs={"axis": axis})


CONCATS = [
    _concat("u8-ranged-params", [(_mid((2, 3)), _s(0.02, 0.025), _zp(U8)), (_mid((2, 4)), _s(0.035, 0.04), _zp(U8))]),
    _concat("u8-full-range", [(_q((2, 3)), _s(0.01, 0.05), _zp(U8, 0, 255)), (_q((1, 3)), _s(0.03, 0.035), _zp(U8))],
            axis=0),
    _concat("i8-exact-params-copy", [(_q((2, 3, 2), I8), _s(value=0.02), _zp(I8, value=-4)),
                                     (_q((2, 1, 2), I8), _s(value=0.05), _zp(I8, value=7))],
            y=(_s(value=0.02), _zp(I8, value=-4)), etype=I8, axis=-2),
    _concat("i8-maybe-copy", [(_mid((2, 3), I8), _s(0.02, 0.03), _zp(I8, -2, 2)), (_mid((2, 2), I8), _s(value=0.03),
                                                                                  _zp(I8, value=0))],
            y=(_s(0.025, 0.03), _zp(I8, -1, 1)), etype=I8),
    _concat("u8-saturating-axis0", [(_q((1, 4)), _s(value=0.5), _zp(U8, value=0)),
                                    (_q((3, 4)), _s(0.001, 0.002), _zp(U8, value=255))],
            y=(_s(value=0.01), _zp(U8, value=128)), axis=0),
]

def _softmax(name, x, etype=U8, attrs=None, x_scale=None, y_scale=None, zy=None):
    zy = zy or _zp(etype, value=0 if etype == U8 else -128)
    return _ms("QLinearSoftmax", [x, x_scale or _s(value=0.08), _zp(etype, value=0 if etype == U8 else 0),
                                  y_scale or _s(value=1 / 256), zy], name, attrs=attrs or {"axis": -1, "opset": 13})


SOFTMAXES = [
    _softmax("u8-last-axis", _q((3, 6))),
    _softmax("i8-last-axis", _q((2, 3, 5), I8), I8),
    _softmax("u8-middle-axis", _mid((2, 4, 3), U8, 40), attrs={"axis": 1, "opset": 13}),
    _softmax("i8-opset12-flattened", _mid((2, 3, 4), I8, 30), I8, attrs={"axis": 1, "opset": 12}),
    _softmax("u8-narrow", _mid((3, 5), U8, 8)),
    _softmax("u8-steep", _q((2, 5)), x_scale=_s(value=0.5)),
    _softmax("u8-ranged-y-scale", _mid((2, 7)), y_scale=_s(0.003, 0.005), zy=_zp(U8, 0, 3)),
    _softmax("u8-one-element", _q((4, 1))),
    _softmax("i8-ranged-x-scale", _q((2, 4), I8), I8, x_scale=_s(0.05, 0.1)),  # coarse: the type's range
]


def _qgemm(name, a, b, etype=U8, bias=True, quantized=True, b_params=None, attrs=None):
    sb, zb = b_params or (_s(0.005, 0.01), Operand((), I8, value=0))
    inputs = [a, _s(0.02, 0.03), _zp(etype), b, sb, zb, Operand((4,), TensorProto.INT32, -500, 500) if bias else None]
    if quantized:
        inputs += [_s(0.05, 0.08), _zp(etype)]
    while inputs[-1] is None:
        inputs.pop()
    return _ms("QGemm", inputs, name, attrs=attrs or {})


QGEMMS = [
    _qgemm("u8s8", _mid((3, 5)), _q((5, 4), I8, -64, 63)),
    _qgemm("u8s8-transposed-per-column", _mid((5, 3)), _q((4, 5), I8, -64, 63), attrs={"transA": 1, "transB": 1,
                                                                                      "alpha": 0.5},
           b_params=(Operand((4,), F32, 0.004, 0.01), Operand((4,), I8, value=[0, 1, -2, 0]))),
    _qgemm("s8s8", _mid((2, 6), I8), Operand((6, 4), I8, value=[(7 * i) % 51 - 25 for i in range(24)]), I8),
    _qgemm("u8s8-float-output", _mid((3, 5)), _q((5, 4), I8, -64, 63), quantized=False),
    _qgemm("u8s8-no-bias", _q((2, 8)), _q((8, 4), I8, -64, 63), bias=False),
]

U16, I16, I32 = TensorProto.UINT16, TensorProto.INT16, TensorProto.INT32
# QuantizeLinear / DequantizeLinear in com.microsoft (16-bit QDQ below opset 21): the ONNX semantics
QDQ = [
    _ms("QuantizeLinear", (Operand((3, 4), low=-10, high=700), _s(value=0.01), Operand((), U16, value=1000)),
        "uint16-saturating"),
    _ms("QuantizeLinear", (Operand((3, 4), low=-400, high=400), _s(0.005, 0.02), Operand((), I16, value=-3)),
        "int16-scale-range"),
    _ms("QuantizeLinear", (Operand((2, 4, 3)), Operand((4,), F32, value=[0.01, 0.1, 1.0, 2.0]),
                           Operand((4,), I8, value=[0, 1, -2, 3])), "int8-per-axis"),
    _ms("QuantizeLinear", (Operand((3, 4), low=-2, high=3), _s(value=0.02)), "no-zero-point"),
    _ms("DequantizeLinear", (Operand((3, 4), U16, 0, 65535), _s(value=0.01), Operand((), U16, value=1000)),
        "uint16"),
    _ms("DequantizeLinear", (Operand((2, 3), I16, -32768, 32767), Operand((3,), F32, value=[0.5, 0.01, 2.0]),
                             Operand((3,), I16, value=[7, 0, -9])), "int16-per-axis"),
    _ms("DequantizeLinear", (Operand((3, 4), I32, -5000, 5000), _s(value=0.001)), "int32"),
]

I32_ = TensorProto.INT32


def _nhwc_conv(name, x, w, channels_last=1, bias=None, **attrs):
    """onnxruntime's QLinearConv (NHWC where ``channels_last``), int8 weights with a zero zero point."""
    inputs = [x, _s(0.01, 0.03), _zp(x.elem_type), w, _s(0.01, 0.02), _zp(I8, value=0), _s(0.05, 0.5),
              _zp(x.elem_type)] + ([bias] if bias is not None else [])
    return _ms("QLinearConv", inputs, name, attrs={"channels_last": channels_last, **attrs})


# what onnxruntime's NHWC transformer writes when a quantized model is optimised at ORT_ENABLE_ALL
NHWC = [
    _nhwc_conv("nhwc-u8", _q((1, 5, 5, 2)), Operand((3, 2, 3, 3), I8, -64, 63), pads=[1, 1, 1, 1]),
    _nhwc_conv("nhwc-u8-strides-bias", _q((1, 6, 5, 4)), Operand((4, 2, 3, 3), I8, -64, 63), strides=[2, 1], group=2,
               bias=Operand((4,), I32_, -500, 500)),
    _nhwc_conv("nchw-u8", _q((1, 2, 5, 5)), Operand((3, 2, 3, 3), I8, -64, 63), channels_last=0),
    _ms("NhwcMaxPool", [_q((1, 5, 5, 3))], "u8", attrs={"kernel_shape": [2, 2], "strides": [2, 2]}),
    _ms("NhwcMaxPool", [_q((1, 6, 5, 2), I8)], "i8-padded", attrs={"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]}),
]

CASES = [
    *QDQ,
    *NHWC,
    *_binaries("QLinearAdd", _s(0.04, 0.06), _s(0.002, 0.004), 60),
    *_binaries("QLinearMul", _s(0.01, 0.02), _s(1e-5, 2e-5), 30),
    *_lookups("QLinearSigmoid", (_s(0.02, 0.1), _s(0.004, 0.006)), (_s(value=0.05), _s(value=0.004)), _sigmoid_zp),
    *_lookups("QLinearLeakyRelu", (_s(0.02, 0.03), _s(0.03, 0.04)), (_s(value=0.03), _s(value=0.035)), _leaky_zp,
              attrs={"alpha": 0.1}),
    _lookup("QLinearLeakyRelu", "u8-negative-alpha", scales=(_s(0.02, 0.03), _s(0.03, 0.04)), attrs={"alpha": -0.7}),
    _lookup("QLinearLeakyRelu", "i8-default-alpha", I8, scales=(_s(0.05, 0.2), _s(0.01, 0.02))),
    *GLOBAL_POOLS,
    *AVERAGE_POOLS,
    *CONCATS,
    *SOFTMAXES,
    *QGEMMS,
]
