"""Soundness cases: ONNX's experimental operators that onnxruntime runs (ranum.ops.experimental).

onnxruntime runs them in models of opsets 1 to 9 (float32; float16 through inserted casts from opset 6).
Overflow cases take large attributes rather than large ranges, so that the harness can still scale
their float32 ranges to extreme magnitudes.
"""

from onnx import TensorProto

from tests.ops.harness import OpCase, Operand

F16 = TensorProto.FLOAT16
INT32 = TensorProto.INT32
INT64 = TensorProto.INT64
NCHW = (2, 3, 4, 5)


def _case(op_type, name, operand=None, opset=8, **kw):
    return OpCase(op_type, (operand or Operand(NCHW),), opset=opset, name=f"{op_type}-{name}", **kw)


LINEAR = [
    _case("ImageScaler", "scale-bias", attrs={"scale": 0.0078125, "bias": [-1.0, 0.5, 2.0]}),
    _case("ImageScaler", "default-scale", Operand(NCHW, low=-100.0, high=100.0), opset=9,
          attrs={"bias": [-0.4, 0.0, 0.3]}),
    _case("ImageScaler", "yolo", Operand((1, 3, 6, 6), low=0.0, high=255.0), attrs={"scale": 0.003921569,
                                                                                   "bias": [0.0, 0.0, 0.0]}),
    _case("ImageScaler", "cancelling", Operand(NCHW, low=0.999, high=1.001), attrs={"scale": 1.0000001,
                                                                                   "bias": [-1.0, -1.0, -1.0]}),
    _case("ImageScaler", "f16", Operand(NCHW, F16, -200.0, 200.0), attrs={"scale": 0.017, "bias": [-2.1, 0.7, 1.3]}),
    _case("ImageScaler", "overflow", attrs={"scale": 3e38, "bias": [0.0, 1.0, 2.0]}),
    _case("ImageScaler", "f16-overflow", Operand(NCHW, F16, -30.0, 30.0), opset=7,
          attrs={"scale": 4000.0, "bias": [0.0, 1.0, 2.0]}),
    _case("Scale", "default", Operand((3, 7))),
    _case("Scale", "negative", Operand((2, 3, 4)), opset=6, attrs={"scale": -2.5}),
    _case("Scale", "f16", Operand((4, 6), F16, -100.0, 100.0), attrs={"scale": 0.3}),
    _case("Scale", "overflow", Operand((3, 7)), attrs={"scale": 2e38}),
    _case("Scale", "f16-overflow", Operand((4, 6), F16), opset=9, attrs={"scale": 3e4}),
    _case("Affine", "default", Operand((3, 7))),
    _case("Affine", "alpha-beta", Operand((2, 3, 4)), attrs={"alpha": -1.7, "beta": 0.25}),
    _case("Affine", "cancelling", Operand((4, 5), low=0.999, high=1.001), opset=9,
          attrs={"alpha": 1.0000001, "beta": -1.0}),
    _case("Affine", "f16", Operand((4, 6), F16, -50.0, 50.0), attrs={"alpha": 0.3, "beta": -1.1}),
    _case("Affine", "overflow", Operand((3, 7)), attrs={"alpha": 1e38, "beta": 1e38}),
]

ACTIVATIONS = [
    _case("ParametricSoftplus", "wide", Operand((4, 8), low=-30.0, high=30.0), attrs={"alpha": 2.0, "beta": 3.0}),
    _case("ParametricSoftplus", "unit", Operand((4, 8), low=-20.0, high=20.0), attrs={"alpha": 1.0, "beta": 1.0}),
    _case("ParametricSoftplus", "rounded-to-zero", Operand((4, 8), low=-19.0, high=-14.0),
          attrs={"alpha": 1.0, "beta": 1.0}),  # ln(1 + e) with 1 + e rounded to float32: 0 or 2**-23
    _case("ParametricSoftplus", "negative", Operand((2, 3, 4), low=-10.0, high=10.0), opset=9,
          attrs={"alpha": -0.5, "beta": -2.0}),
    _case("ParametricSoftplus", "huge-inputs", Operand((4, 8), low=-1e15, high=1e15),
          attrs={"alpha": 1.0, "beta": 1.0}),  # stable: alpha * beta * x, no overflow of exp
    _case("ParametricSoftplus", "beta-overflow", Operand((4, 8), low=-5.0, high=5.0),
          attrs={"alpha": 1.0, "beta": 1e38}),
    _case("ParametricSoftplus", "alpha-overflow", Operand((4, 8), low=0.0, high=10.0),
          attrs={"alpha": 1e38, "beta": 1.0}),
    _case("ParametricSoftplus", "f16", Operand((4, 8), F16, -20.0, 20.0), attrs={"alpha": 1.5, "beta": 0.7}),
    _case("ParametricSoftplus", "f16-overflow", Operand((4, 8), F16, -100.0, 100.0), opset=6,
          attrs={"alpha": 1000.0, "beta": 1.0}),
    _case("ScaledTanh", "unit", Operand((4, 8), low=-10.0, high=10.0), attrs={"alpha": 1.0, "beta": 1.0}),
    _case("ScaledTanh", "scaled", Operand((2, 3, 4), low=-20.0, high=20.0), attrs={"alpha": 2.0, "beta": 0.5}),
    _case("ScaledTanh", "negative", Operand((4, 8), low=-3.0, high=3.0), opset=9, attrs={"alpha": -1.7, "beta": -0.6}),
    _case("ScaledTanh", "saturating", Operand((4, 8), low=-1e15, high=1e15), attrs={"alpha": 3e38, "beta": 1e20}),
    _case("ScaledTanh", "f16", Operand((4, 8), F16, -8.0, 8.0), attrs={"alpha": 0.8, "beta": 1.3}),
]


def _ints(values, elem_type=INT64):
    return Operand((len(values),), elem_type, value=values)


WINDOWS = [
    _case("Crop", "border", Operand((2, 3, 6, 7)), attrs={"border": [1, 2, 3, 1]}),
    _case("Crop", "scale", Operand((2, 3, 6, 7)), opset=9, attrs={"border": [2, 1, 0, 0], "scale": [4, 3]}),
    _case("Crop", "whole", Operand((1, 2, 3, 3)), attrs={"border": [0, 0, 0, 0]}),
    _case("Crop", "empty", Operand((1, 2, 3, 4)), attrs={"border": [2, 0, 2, 0]}),
    _case("Crop", "f16", Operand((1, 3, 5, 5), F16, -100.0, 100.0), attrs={"border": [1, 1, 1, 1]}),
    OpCase("DynamicSlice", (Operand((2, 3, 6)), _ints([1]), _ints([-1]), _ints([2])), opset=8,
           name="DynamicSlice-axes"),
    OpCase("DynamicSlice", (Operand((4, 5)), _ints([-3, -100]), _ints([100, 3])), opset=9,
           name="DynamicSlice-no-axes"),
    OpCase("DynamicSlice", (Operand((3, 4, 5)), _ints([1, 0], INT32), _ints([3, 2], INT32), _ints([-1, 0], INT32)),
           opset=7, name="DynamicSlice-int32"),
    OpCase("DynamicSlice", (Operand((3, 6), F16), _ints([2]), _ints([5]), _ints([1])), opset=8,
           name="DynamicSlice-f16"),
    OpCase("DynamicSlice", (Operand((3, 6), INT64, -50, 50), _ints([0]), _ints([2]), _ints([0])), opset=8,
           name="DynamicSlice-int64-data"),
]

CASES = [*LINEAR, *ACTIVATIONS, *WINDOWS]
