"""Soundness cases: shape manipulation, constants, ranges, casts, (de)quantization, dropout."""

from onnx import TensorProto, helper

from tests.ops.harness import OpCase, Operand

F16, INT64, INT32, BOOL, DOUBLE = (TensorProto.FLOAT16, TensorProto.INT64, TensorProto.INT32, TensorProto.BOOL,
                                   TensorProto.DOUBLE)
I8, U8, I16, U16 = TensorProto.INT8, TensorProto.UINT8, TensorProto.INT16, TensorProto.UINT16
INT64_MAX, INT64_MIN = 2**63 - 1, -(2**63)


def ints(*values: int) -> Operand:
    """A fixed int64 vector operand (shapes, axes, indices)."""
    return Operand((len(values),), INT64, value=list(values))


def scalar(value, elem_type=TensorProto.FLOAT) -> Operand:
    return Operand((), elem_type, value=value)


X234 = Operand((2, 3, 4))
# Free (drawn) operands of Range have shape (1,), not (): the harness feeds 0-d draws to onnxruntime as
# numpy scalars, which it rejects; onnxruntime accepts one-element vectors there. Dropout's shape
# inference rejects a (1,) ratio, so its interval ratio is tested in test_shape.py.

CASES = [
    # Shape, Size
    OpCase("Shape", (X234,)),
    OpCase("Shape", (X234,), attrs={"start": 1, "end": -1}, name="Shape-start-end"),
    OpCase("Size", (X234,)),
    # Reshape, Flatten
    OpCase("Reshape", (X234, ints(6, 4))),
    OpCase("Reshape", (X234, ints(0, -1)), name="Reshape-zero-infer"),
    OpCase("Reshape", (X234, ints(4, -1, 3)), name="Reshape-scramble"),
    OpCase("Reshape", (X234, ints(1, 2, 1, 12)), name="Reshape-unit-axes"),
    OpCase("Reshape", (Operand((2, 6), F16), ints(3, 4)), name="Reshape-f16"),
    OpCase("Reshape", (X234, ints(3, 8)), attrs={"allowzero": 1}, opset=14, name="Reshape-allowzero"),
    OpCase("Flatten", (X234,)),
    OpCase("Flatten", (X234,), attrs={"axis": -1}, name="Flatten-neg"),
    OpCase("Flatten", (Operand((2, 3), INT64, 0, 7),), attrs={"axis": 2}, name="Flatten-int-last"),
    # Squeeze, Unsqueeze
    OpCase("Squeeze", (Operand((3, 1, 4)),), attrs={"axes": [1]}, opset=11, name="Squeeze-attr"),
    OpCase("Squeeze", (Operand((3, 1, 4)), ints(-2)), opset=13, name="Squeeze-input"),
    OpCase("Squeeze", (Operand((1, 3, 1), F16),), opset=13, name="Squeeze-all"),
    OpCase("Unsqueeze", (Operand((3, 4)),), attrs={"axes": [0, 3]}, opset=11, name="Unsqueeze-attr"),
    OpCase("Unsqueeze", (Operand((3, 4), INT64, -9, 9), ints(-1, 1)), opset=13, name="Unsqueeze-input"),
    # Transpose, Identity
    OpCase("Transpose", (X234,)),
    OpCase("Transpose", (Operand((2, 3, 4), F16),), attrs={"perm": [2, 0, 1]}, name="Transpose-f16"),
    OpCase("Identity", (X234,)),
    # Concat, Split
    OpCase("Concat", (Operand((2, 3)), Operand((4, 3))), attrs={"axis": 0}),
    OpCase("Concat", (Operand((2, 1)), Operand((2, 3)), Operand((2, 2))), attrs={"axis": -1}, name="Concat-3"),
    OpCase("Concat", (Operand((3,), INT64, 0, 5), Operand((0,), INT64)), attrs={"axis": 0}, name="Concat-int"),
    OpCase("Split", (Operand((3, 3)),), attrs={"axis": 1, "split": [1, 2]}, outputs=2, opset=11,
           name="Split-attr"),
    OpCase("Split", (Operand((5, 2)), ints(2, 2, 1)), outputs=3, opset=13, name="Split-input"),
    OpCase("Split", (Operand((4, 6), F16),), attrs={"axis": -1}, outputs=2, opset=13, name="Split-equal"),
    OpCase("Split", (Operand((7,), INT64, -4, 4),), attrs={"num_outputs": 3}, outputs=3, name="Split-num"),
    # Slice
    OpCase("Slice", (X234, ints(1), ints(3), ints(2))),
    OpCase("Slice", (X234, ints(0, 1), ints(2, INT64_MAX), ints(0, 1), ints(1, 2)), name="Slice-step-max"),
    OpCase("Slice", (X234, ints(-1, 2), ints(INT64_MIN, 0), ints(-1, 1), ints(-1, -2)), name="Slice-reverse"),
    OpCase("Slice", (Operand((6,), INT64, -9, 9), ints(-4), ints(100)), name="Slice-int-default-axes"),
    OpCase("Slice", (X234, ints(1), ints(-1), ints(2)), opset=10, name="Slice-opset10"),
    # before opset 10: starts, ends and axes are attributes
    OpCase("Slice", (X234,), attrs={"starts": [0, 1], "ends": [1, 1000], "axes": [0, 2]}, opset=9, name="Slice1"),
    OpCase("Slice", (Operand((5, 4), INT64, -9, 9),), attrs={"starts": [-3, 1], "ends": [-1, 3]}, opset=7,
           name="Slice1-default-axes"),
    # older signatures of the current rules (opsets 7 to 10)
    OpCase("Reshape", (X234, ints(0, -1)), opset=7, name="Reshape-opset7"),
    OpCase("Concat", (Operand((2, 3)), Operand((2, 1))), attrs={"axis": 1}, opset=7, name="Concat-opset7"),
    OpCase("Split", (Operand((3, 5)),), attrs={"axis": 1, "split": [2, 3]}, outputs=2, opset=9, name="Split2"),
    OpCase("Split", (Operand((4, 2)),), outputs=2, opset=7, name="Split2-equal"),
    OpCase("Squeeze", (Operand((3, 1, 4, 1)),), attrs={"axes": [1, 3]}, opset=9, name="Squeeze1"),
    OpCase("Squeeze", (Operand((1, 3, 1)),), opset=7, name="Squeeze1-all"),
    OpCase("Unsqueeze", (Operand((3, 4)),), attrs={"axes": [0, 2]}, opset=9, name="Unsqueeze1"),
    OpCase("Tile", (Operand((2, 3)), ints(2, 1)), opset=7, name="Tile-opset7"),
    OpCase("Cast", (Operand((3, 4), low=-120, high=120),), attrs={"to": TensorProto.INT8}, opset=7,
           name="Cast-opset7"),
    OpCase("Flatten", (X234,), attrs={"axis": 2}, opset=8, name="Flatten-opset8"),
    # Expand, Tile
    OpCase("Expand", (Operand((3, 1)), ints(2, 3, 4))),
    OpCase("Expand", (Operand((2, 3), INT64, 0, 5), ints(1, 1)), name="Expand-smaller"),
    OpCase("Tile", (Operand((2, 3), F16), ints(2, 3))),
    OpCase("Tile", (Operand((3,), INT64, 0, 5), ints(1)), name="Tile-int"),
    # Constant, ConstantOfShape, Range
    OpCase("Constant", (), attrs={"value": helper.make_tensor("v", TensorProto.FLOAT, [2], [1.5, -2.0])}),
    OpCase("Constant", (), attrs={"value_floats": [0.1, 0.2]}, name="Constant-floats"),
    OpCase("Constant", (), attrs={"value_int": 7}, name="Constant-int"),
    OpCase("ConstantOfShape", (ints(2, 3),)),
    OpCase("ConstantOfShape", (ints(4),), attrs={"value": helper.make_tensor("v", INT64, [1], [7])},
           name="ConstantOfShape-int"),
    OpCase("Range", (scalar(2, INT64), scalar(17, INT64), scalar(3, INT64))),
    # onnxruntime accumulates delta (start + delta + delta ...), the spec (and the concrete rule) computes
    # start + i * delta: they differ by ~1e-4 relative here, which the abstract bounds cover.
    OpCase("Range", (scalar(0.1), scalar(3000.0), scalar(0.3)), check_agreement=False, name="Range-float-long"),
    OpCase("Range", (Operand((1,), low=0.1, high=0.4), scalar(10.0), scalar(1.0)), name="Range-float-start"),
    OpCase("Range", (Operand((1,), INT64, 0, 2), scalar(20, INT64), scalar(5, INT64)), name="Range-int-start"),
    # opset 27: 16-bit floats accumulate in float32 (stash_type 1) and round once; 1300 is past float16's 1024,
    # where a float16 sum would drift by ulps of 1 (onnxruntime runs the function body, a Loop in float32, which
    # rejects operands of shape (1,): only constant operands here)
    OpCase("Range", (scalar(1000.3, F16), scalar(1300.0, F16), scalar(0.7, F16)), opset=27, check_agreement=False,
           name="Range-float16-stashed"),
    # Cast, CastLike
    OpCase("Cast", (Operand((3, 4), low=-120, high=120),), attrs={"to": TensorProto.INT8}, name="Cast-float-int8"),
    OpCase("Cast", (Operand((3, 4), low=-1e10, high=1e10),), attrs={"to": INT32}, check_agreement=False,
           name="Cast-float-int32-out-of-range"),
    OpCase("Cast", (Operand((3, 4), low=-7e4, high=7e4),), attrs={"to": F16}, name="Cast-float-f16-overflow"),
    OpCase("Cast", (Operand((3, 4), low=-1, high=1),), attrs={"to": BOOL}, name="Cast-float-bool"),
    OpCase("Cast", (Operand((3, 4), INT64, -10**6, 10**6),), attrs={"to": F16}, name="Cast-int64-f16"),
    OpCase("Cast", (Operand((3, 4), INT64, -300, 300),), attrs={"to": TensorProto.UINT8},
           name="Cast-int64-uint8-wrap"),
    OpCase("Cast", (Operand((4,), BOOL, 0, 1),), attrs={"to": TensorProto.FLOAT}, name="Cast-bool-float"),
    OpCase("CastLike", (Operand((3, 4), low=-50, high=50), Operand((1,), INT64, value=[0])),
           name="CastLike-int"),
    OpCase("CastLike", (Operand((3, 4), low=-9e4, high=9e4), Operand((1,), F16, value=[0.0])),
           name="CastLike-f16"),
    # Dropout
    OpCase("Dropout", (X234,), outputs=2),
    OpCase("Dropout", (X234, scalar(0.3), scalar(False, BOOL)), outputs=2, name="Dropout-inference"),
    OpCase("Dropout", (X234, scalar(0.3), scalar(True, BOOL)), outputs=2,
           check_agreement=False, name="Dropout-training"),
    OpCase("Dropout", (X234,), attrs={"ratio": 0.2}, opset=11, name="Dropout-opset11"),
    OpCase("Dropout", (X234,), attrs={"ratio": 0.4}, outputs=2, opset=10, name="Dropout7-opset10-mask"),
    # DepthToSpace, SpaceToDepth
    OpCase("DepthToSpace", (Operand((2, 8, 2, 3)),), attrs={"blocksize": 2}, name="DepthToSpace-DCR"),
    OpCase("DepthToSpace", (Operand((1, 8, 2, 3)),), attrs={"blocksize": 2, "mode": "CRD"}, name="DepthToSpace-CRD"),
    OpCase("DepthToSpace", (Operand((1, 9, 2, 1), F16),), attrs={"blocksize": 3, "mode": "CRD"}, opset=11,
           name="DepthToSpace-f16-opset11"),
    OpCase("DepthToSpace", (Operand((1, 4, 1, 2), TensorProto.UINT8, 0, 200),), attrs={"blocksize": 2}, opset=13,
           name="DepthToSpace-uint8"),
    OpCase("SpaceToDepth", (Operand((2, 2, 4, 6)),), attrs={"blocksize": 2}, name="SpaceToDepth"),
    OpCase("SpaceToDepth", (Operand((1, 2, 4, 6)),), attrs={"blocksize": 2, "mode": "CRD"}, opset=28,
           name="SpaceToDepth-CRD"),
    OpCase("SpaceToDepth", (Operand((1, 1, 3, 3), F16),), attrs={"blocksize": 3}, opset=13, name="SpaceToDepth-f16"),
    # EyeLike
    OpCase("EyeLike", (Operand((3, 4)),), name="EyeLike"),
    OpCase("EyeLike", (Operand((4, 3), INT32, -5, 5),), attrs={"k": -1}, name="EyeLike-int32-lower"),
    OpCase("EyeLike", (Operand((3, 5)),), attrs={"k": 2, "dtype": DOUBLE}, opset=22, name="EyeLike-dtype-upper"),
    OpCase("EyeLike", (Operand((2, 2), INT64, 0, 3),), attrs={"k": 5, "dtype": TensorProto.FLOAT},
           name="EyeLike-off-matrix"),
    # ReverseSequence
    OpCase("ReverseSequence", (Operand((4, 3, 2)), ints(4, 1, 0)), name="ReverseSequence-time0"),
    OpCase("ReverseSequence", (Operand((3, 5), F16), ints(5, 2, 3)), attrs={"batch_axis": 0, "time_axis": 1},
           name="ReverseSequence-batch0-f16"),
    OpCase("ReverseSequence", (Operand((5, 3), INT64, -9, 9), Operand((3,), INT64, 0, 5)),
           name="ReverseSequence-range-lens"),
    OpCase("ReverseSequence", (Operand((3, 4, 2)), Operand((3,), INT64, 1, 3)), attrs={"batch_axis": 0, "time_axis": 1},
           name="ReverseSequence-range-lens-batch0"),
    # QuantizeLinear, DequantizeLinear
    OpCase("QuantizeLinear", (Operand((3, 4)), Operand((), value=0.02), Operand((), U8, value=128)), opset=13,
           name="QuantizeLinear-uint8"),
    OpCase("QuantizeLinear", (Operand((3, 4), low=-40, high=40), Operand((), value=0.25), Operand((), I8, value=-3)),
           opset=10, name="QuantizeLinear-int8-opset10"),
    OpCase("QuantizeLinear", (Operand((3, 4), low=-2, high=6), Operand((1,), low=0.01, high=0.05)), opset=13,
           name="QuantizeLinear-range-scale-no-zp"),
    OpCase("QuantizeLinear", (Operand((3, 4)), Operand((1,), low=-0.1, high=0.1), Operand((1,), I8, value=[1])),
           opset=13, name="QuantizeLinear-scale-through-zero"),
    OpCase("QuantizeLinear", (Operand((2, 3, 4)), Operand((3,), value=[0.01, 0.05, 0.5]),
                              Operand((3,), I8, value=[0, -5, 7])), name="QuantizeLinear-per-axis"),
    OpCase("QuantizeLinear", (Operand((2, 4, 3)), Operand((2, 2, 3), low=0.001, high=0.01),
                              Operand((2, 2, 3), I16, value=[-3, 0, 5] * 4)),
           attrs={"axis": 1, "block_size": 2}, opset=21, name="QuantizeLinear-blocked-int16"),
    OpCase("QuantizeLinear", (Operand((3, 4), low=-1e3, high=1e3), Operand((), value=0.5)),
           attrs={"output_dtype": I8}, opset=21, name="QuantizeLinear-output-dtype"),
    OpCase("QuantizeLinear", (Operand((3, 4), F16, -100, 100), Operand((), F16, value=0.3), Operand((), U8, value=10)),
           opset=19, name="QuantizeLinear-f16"),
    OpCase("QuantizeLinear", (Operand((3, 4), low=-10, high=300), Operand((), value=0.01),
                              Operand((), U16, value=1000)), opset=21, name="QuantizeLinear-uint16"),
    OpCase("DequantizeLinear", (Operand((3, 4), I8, -128, 127), Operand((), value=0.1), Operand((), I8, value=3)),
           opset=13, name="DequantizeLinear-int8"),
    OpCase("DequantizeLinear", (Operand((3, 4), U8, 0, 255), Operand((), value=0.5)), opset=10,
           name="DequantizeLinear-uint8-opset10"),
    OpCase("DequantizeLinear", (Operand((2, 3, 2), U8, 0, 255), Operand((3,), low=0.01, high=2.0),
                                Operand((3,), U8, value=[0, 128, 255])), name="DequantizeLinear-per-axis"),
    OpCase("DequantizeLinear", (Operand((3, 4), TensorProto.INT32, -2**31, 2**31 - 1), Operand((), value=3.0)),
           name="DequantizeLinear-int32"),
    OpCase("DequantizeLinear", (Operand((2, 4), I16, -3000, 3000), Operand((2, 2), F16, 0.001, 0.2),
                                Operand((2, 2), I16, value=[1, -1, 2, 0])), attrs={"axis": 1, "block_size": 2},
           opset=21, name="DequantizeLinear-blocked-f16"),
    OpCase("DequantizeLinear", (Operand((3, 4), U16, 0, 65535), Operand((1,), low=0.5, high=1e36),
                                Operand((1,), U16, value=[7])), opset=21, name="DequantizeLinear-uint16-overflow"),
    OpCase("DequantizeLinear", (Operand((3, 4), I8, -128, 127), Operand((), value=0.1)),
           attrs={"output_dtype": F16}, opset=23, name="DequantizeLinear-output-dtype"),
]
