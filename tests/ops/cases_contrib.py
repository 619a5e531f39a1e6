"""Soundness cases: onnxruntime's contrib operators of fused transformer graphs (ranum.ops.contrib)."""

from onnx import TensorProto

from tests.ops.harness import OpCase, Operand

F16 = TensorProto.FLOAT16
MS = "com.microsoft"


def _ms(op_type, inputs, name, **kw):
    return OpCase(op_type, inputs, domain=MS, opset=17, name=f"{op_type}-{name}", **kw)


def _skip_ln(name, shape=(2, 3, 8), skip=None, beta=True, bias=True, elem_type=TensorProto.FLOAT, outputs=4,
             low=-3.0, high=3.0, **kw):
    hidden = (shape[-1],)
    inputs = [Operand(shape, elem_type, low, high), Operand(skip or shape, elem_type, low, high),
              Operand(hidden, elem_type), Operand(hidden, elem_type) if beta else None]
    if bias:
        inputs.append(Operand(hidden, elem_type))
    return _ms("SkipLayerNormalization", tuple(inputs), name, outputs=outputs, **kw)


def _skip_rms(name, shape=(2, 3, 8), bias=True, elem_type=TensorProto.FLOAT, outputs=4, low=-3.0, high=3.0, **kw):
    hidden = (shape[-1],)
    inputs = [Operand(shape, elem_type, low, high), Operand(shape, elem_type, low, high), Operand(hidden, elem_type)]
    if bias:
        inputs.append(Operand(hidden, elem_type))
    return _ms("SkipSimplifiedLayerNormalization", tuple(inputs), name, outputs=outputs, **kw)


NORMALIZATIONS = [
    _skip_ln("full", attrs={"epsilon": 1e-5}),
    _skip_ln("no-beta-no-bias", beta=False, bias=False, outputs=1, attrs={"epsilon": 1e-12}),
    _skip_ln("2d-skip", skip=(3, 8), outputs=1, attrs={"epsilon": 1e-5}),
    _skip_ln("near-constant", low=100.0, high=100.001, outputs=1, attrs={"epsilon": 1e-12},
             check_agreement=False),  # ill-conditioned: the float32 centring is off by up to 1e-2
    _skip_ln("f16", (1, 2, 16), elem_type=F16, outputs=1, attrs={"epsilon": 1e-5}),
    _skip_rms("full", attrs={"epsilon": 1e-6}, outputs=1),
    _skip_rms("sum-output", attrs={"epsilon": 1e-6}, rtol=1e-4),
    _skip_rms("no-bias", bias=False, outputs=1, attrs={"epsilon": 1e-5}),
    _skip_rms("f16", (1, 2, 16), elem_type=F16, outputs=1, attrs={"epsilon": 1e-5}),
    OpCase("SimplifiedLayerNormalization", (Operand((2, 3, 8)), Operand((8,))), attrs={"epsilon": 1e-5},
           opset=17, outputs=2, name="SimplifiedLayerNormalization-inv-rms", rtol=1e-4),
    OpCase("SimplifiedLayerNormalization", (Operand((4, 5), low=-1e-3, high=1e-3), Operand((5,))),
           attrs={"epsilon": 1e-6}, opset=14, name="SimplifiedLayerNormalization-small"),
    OpCase("SimplifiedLayerNormalization", (Operand((2, 16), F16), Operand((16,), F16)), opset=17,
           name="SimplifiedLayerNormalization-f16"),
    OpCase("LayerNormalization", (Operand((2, 3, 8)), Operand((8,)), Operand((8,))), opset=14, outputs=3,
           name="LayerNormalization-contrib-opset14"),
    _skip_ln("squares-overflow", low=1e20, high=3e20, outputs=1, attrs={"epsilon": 1e-5}, check_agreement=False),
    _skip_rms("squares-overflow", low=1e20, high=3e20, outputs=1, attrs={"epsilon": 1e-5}, check_agreement=False),
    OpCase("SimplifiedLayerNormalization", (Operand((2, 3, 16), low=1e20, high=3e20), Operand((16,))),
           attrs={"epsilon": 1e-5}, opset=17, outputs=2, name="SimplifiedLayerNormalization-squares-overflow",
           check_agreement=False),
]

ACTIVATIONS = [
    _ms("Gelu", (Operand((3, 8), low=-6.0, high=6.0),), "erf"),
    _ms("Gelu", (Operand((2, 8), F16, -6.0, 6.0),), "f16"),
    _ms("BiasGelu", (Operand((2, 3, 8), low=-6.0, high=6.0), Operand((8,))), "3d"),
    _ms("BiasGelu", (Operand((2, 8), F16, -6.0, 6.0), Operand((8,), F16)), "f16"),
    _ms("FastGelu", (Operand((2, 3, 8), low=-6.0, high=6.0),), "no-bias", rtol=1e-4),
    _ms("FastGelu", (Operand((2, 3, 8), low=-6.0, high=6.0), Operand((8,))), "bias", rtol=1e-4),
    _ms("FastGelu", (Operand((2, 8), F16, -6.0, 6.0), Operand((8,), F16)), "f16"),
    _ms("QuickGelu", (Operand((3, 8), low=-8.0, high=8.0),), "default"),
    _ms("QuickGelu", (Operand((3, 8), low=-8.0, high=8.0),), "alpha", attrs={"alpha": 1.0}),
]



def _fused_conv(name, activation="", params=(), z=False, elem_type=TensorProto.FLOAT, low=-3.0, high=3.0,
                check_agreement=True, **attrs):
    inputs = [Operand((1, 2, 5, 5), elem_type, low, high), Operand((3, 2, 3, 3), elem_type, -1.0, 1.0),
              Operand((3,), elem_type)]
    if z:
        inputs.append(Operand((1, 3, 5, 5), elem_type))
    extra = {"activation": activation, **({"activation_params": list(params)} if params else {})} if activation else {}
    return _ms("FusedConv", tuple(inputs), name, attrs={"pads": [1, 1, 1, 1], **extra, **attrs},
               check_agreement=check_agreement)


# onnxruntime's GemmActivationFusion: the activations it fuses, with attributes (activation_<name>)
_GEMM_ACTIVATIONS = [
    ("Relu", {}), ("LeakyRelu", {"alpha": 0.1}), ("Sigmoid", {}), ("Tanh", {}), ("Elu", {"alpha": 0.5}),
    ("Selu", {"alpha": 1.5, "gamma": 2.0}), ("HardSigmoid", {"alpha": 0.3, "beta": 0.4}),
    ("Softplus", {}), ("Softsign", {}), ("ThresholdedRelu", {"alpha": 0.5}),
]


def _fused_gemm(activation, params, name="", bias=(5,), transB=0, low=-3.0, high=3.0, **attrs):
    weight = (5, 4) if transB else (4, 5)
    inputs = (Operand((3, 4), low=low, high=high), Operand(weight, low=-1.0, high=1.0), Operand(bias))
    extra = {f"activation_{key}": value for key, value in params.items()}
    kw = {k: attrs.pop(k) for k in ("check_agreement", "rtol") if k in attrs}
    label = name or f"{activation}{'-' if params else ''}{'-'.join(str(v) for v in params.values())}"
    return _ms("FusedGemm", inputs, label, attrs={"activation": activation, "transB": transB, **extra, **attrs},
               rtol=kw.get("rtol", 1e-4), check_agreement=kw.get("check_agreement", True))


PRODUCTS = [
    _fused_conv("plain"),
    _fused_conv("relu", "Relu"),
    _fused_conv("relu-sum", "Relu", z=True),
    _fused_conv("clip", "Clip", (0.0, 6.0)),
    _fused_conv("leaky", "LeakyRelu", (0.1,)),
    _fused_conv("sigmoid", "Sigmoid"),
    _fused_conv("tanh", "Tanh", strides=[2, 2]),
    _fused_conv("hardsigmoid", "HardSigmoid", (0.2, 0.5)),
    *[_fused_gemm(activation, params) for activation, params in _GEMM_ACTIVATIONS],
    _fused_gemm("Relu", {}, "transB-alpha-beta", transB=1, alpha=0.5, beta=-2.0),
    _fused_gemm("LeakyRelu", {"alpha": 0.2}, "row-bias", bias=(1, 5)),
    _fused_gemm("Relu", {}, "overflow", low=-2e38, high=2e38, check_agreement=False),
    _fused_conv("relu-overflow", "Relu", low=-1e38, high=1e38, check_agreement=False),
    _ms("FusedMatMul", (Operand((2, 3, 4)), Operand((2, 5, 4))), "transB-alpha",
        attrs={"transB": 1, "alpha": 0.125}, rtol=1e-4),
    _ms("FusedMatMul", (Operand((2, 4, 3)), Operand((4, 5))), "transA", attrs={"transA": 1}, rtol=1e-4),
    _ms("FusedMatMul", (Operand((3, 4)), Operand((5, 4))), "2d-both", attrs={"transA": 0, "transB": 1,
                                                                           "alpha": -2.0}, rtol=1e-4),
    _ms("FusedMatMul", (Operand((1, 2, 8), F16), Operand((8, 4), F16)), "f16", attrs={"alpha": 0.5}),
]

CASES = [*NORMALIZATIONS, *ACTIVATIONS, *PRODUCTS]
