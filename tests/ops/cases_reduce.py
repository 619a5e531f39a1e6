"""Soundness cases: reductions (ReduceSum ... ReduceLogSumExp), ArgMax, ArgMin, TopK."""

from onnx import TensorProto

from tests.ops.harness import OpCase, Operand

F16 = TensorProto.FLOAT16
F64 = TensorProto.DOUBLE
I64 = TensorProto.INT64
I32 = TensorProto.INT32


def _axes(*values: int) -> Operand:
    return Operand((len(values),), I64, value=list(values))


_ALL_AXES = ["ReduceMean", "ReduceMax", "ReduceProd"]
_NOOP = ["ReduceL2", "ReduceLogSum", "ReduceLogSumExp"]
_ATTRIBUTE_AXES = ["ReduceMean", "ReduceL2", "ReduceLogSumExp", "ReduceProd"]

CASES = [
    # axes as an input (opset 18; ReduceSum since 13): keepdims, negative axes, several axes
    OpCase("ReduceSum", (Operand((3, 4, 5)), _axes(1)), name="ReduceSum"),
    OpCase("ReduceMean", (Operand((3, 4, 5)), _axes(0, -1)), attrs={"keepdims": 0}, name="ReduceMean"),
    OpCase("ReduceL1", (Operand((3, 4, 5)), _axes(-2)), name="ReduceL1"),
    OpCase("ReduceSumSquare", (Operand((3, 4, 5)), _axes(0, 2)), attrs={"keepdims": 0}, name="ReduceSumSquare"),
    OpCase("ReduceProd", (Operand((3, 4, 5)), _axes(0, -1)), name="ReduceProd"),
    OpCase("ReduceMax", (Operand((3, 4, 5)), _axes(1)), attrs={"keepdims": 0}, name="ReduceMax"),
    OpCase("ReduceMin", (Operand((3, 4, 5)), _axes(-1, 0)), name="ReduceMin"),
    # no axes: all axes, or none with noop_with_empty_axes (each element is its own slice)
    *[OpCase(op, (Operand((2, 6)),), name=f"{op}-all") for op in _ALL_AXES],
    *[OpCase(op, (Operand((2, 3)), _axes()), attrs={"noop_with_empty_axes": 1}, name=f"{op}-noop") for op in _NOOP],
    # axes as an attribute (older opsets)
    OpCase("ReduceSum", (Operand((3, 4, 5)),), attrs={"axes": [-2], "keepdims": 0}, opset=11, name="ReduceSum-op11"),
    *[OpCase(op, (Operand((3, 4, 5)),), attrs={"axes": [0, 2]}, opset=13, name=f"{op}-op13") for op in _ATTRIBUTE_AXES],
    # dtypes
    OpCase("ReduceSum", (Operand((4, 6), I64, low=-50, high=50), _axes(1)), name="ReduceSum-int64"),
    OpCase("ReduceSum", (Operand((4, 6), I32, low=-50, high=50), _axes(0)), name="ReduceSum-int32"),
    OpCase("ReduceMean", (Operand((4, 6), I64, low=-50, high=50), _axes(1)), name="ReduceMean-int64"),
    OpCase("ReduceProd", (Operand((3, 4), I64, low=-5, high=5), _axes(1)), name="ReduceProd-int64"),
    OpCase("ReduceMax", (Operand((3, 4), I64, low=-9, high=9), _axes(1)), name="ReduceMax-int64"),
    OpCase("ReduceMin", (Operand((3, 4), TensorProto.BOOL, low=0, high=1), _axes(1)), opset=20,
           name="ReduceMin-bool"),
    *[OpCase(op, (Operand((3, 40), F16, low=-8, high=8), _axes(1)), name=f"{op}-f16")
      for op in ["ReduceSum", "ReduceL2", "ReduceLogSumExp"]],
    OpCase("ReduceProd", (Operand((3, 6), F16, low=-4, high=4), _axes(1)), name="ReduceProd-f16"),
    OpCase("ReduceMean", (Operand((2, 8), F16, low=3e4, high=65504), _axes(1)), name="ReduceMean-f16-large"),
    OpCase("ReduceSum", (Operand((3, 5), F64), _axes(1)), name="ReduceSum-f64"),
    # positive, tiny, huge and long inputs: hazards and float error
    OpCase("ReduceL2", (Operand((4, 5), low=1e-24, high=1e-22), _axes(1)), name="ReduceL2-underflow"),
    OpCase("ReduceSumSquare", (Operand((4, 5), low=-1e-22, high=1e-22), _axes(1)), name="ReduceSumSquare-tiny"),
    OpCase("ReduceLogSum", (Operand((4, 5)), _axes(1)), name="ReduceLogSum-mixed"),
    OpCase("ReduceLogSum", (Operand((4, 5), low=0.01, high=3), _axes(1)), name="ReduceLogSum-positive"),
    OpCase("ReduceLogSumExp", (Operand((4, 7), low=-100, high=100), _axes(1)), name="ReduceLogSumExp"),
    OpCase("ReduceLogSumExp", (Operand((2, 3), low=8e37, high=3.4e38), _axes(1)), name="ReduceLogSumExp-huge"),
    # float16: onnxruntime's unshifted float64 exponentials overflow past 709.78 and vanish below -745.13
    OpCase("ReduceLogSumExp", (Operand((3, 40), F16, low=-800, high=800), _axes(1)), check_agreement=False,
           name="ReduceLogSumExp-f16-float64-exp-limits"),
    OpCase("ReduceSum", (Operand((2, 4), low=-3.4e38, high=-1e38), _axes(1)), name="ReduceSum-overflow"),
    OpCase("ReduceMean", (Operand((2, 4), low=1e38, high=3.4e38), _axes(1)), name="ReduceMean-overflow"),
    OpCase("ReduceMean", (Operand((3, 1000), low=0.0, high=1.0), _axes(1)), name="ReduceMean-long"),
    OpCase("ReduceProd", (Operand((2, 12), low=-30, high=30), _axes(1)), name="ReduceProd-overflow"),
    OpCase("ReduceProd", (Operand((2, 6), low=1e-20, high=1e-8), _axes(1)), name="ReduceProd-underflow"),
    # ArgMax / ArgMin
    OpCase("ArgMax", (Operand((3, 4, 5)),), attrs={"axis": 1}, name="ArgMax-axis1"),
    OpCase("ArgMax", (Operand((3, 5)),), attrs={"axis": -1, "keepdims": 0, "select_last_index": 1},
           name="ArgMax-last"),
    OpCase("ArgMax", (Operand((4, 6), I64, low=-3, high=3),), attrs={"axis": 0}, name="ArgMax-int64"),
    OpCase("ArgMax", (Operand((4, 6), F16),), attrs={"axis": 1}, opset=13, name="ArgMax-f16"),
    OpCase("ArgMin", (Operand((3, 4, 5)),), attrs={"axis": -2, "keepdims": 0}, name="ArgMin"),
    OpCase("ArgMin", (Operand((4, 6), I32, low=-3, high=3),), attrs={"axis": 1, "select_last_index": 1},
           opset=12, name="ArgMin-int32-last"),
    # TopK
    OpCase("TopK", (Operand((3, 7)), _axes(3)), outputs=2, name="TopK"),
    OpCase("TopK", (Operand((3, 6, 2)), _axes(2)), attrs={"axis": 1, "largest": 0}, outputs=2, opset=11,
           name="TopK-smallest"),
    OpCase("TopK", (Operand((4, 5), I64, low=-3, high=3), _axes(5)), attrs={"axis": 1}, outputs=2,
           name="TopK-int64-ties"),
    OpCase("TopK", (Operand((4, 5), F16), _axes(1)), attrs={"axis": 0}, outputs=2, name="TopK-f16"),
    # sorted=0: the order of the outputs is left to the runtime, so only soundness is compared
    OpCase("TopK", (Operand((3, 7)), _axes(3)), attrs={"sorted": 0}, outputs=2, check_agreement=False,
           name="TopK-unsorted"),
    OpCase("TopK", (Operand((3, 7)), _axes(0)), outputs=2, name="TopK-k0"),
    # TopK-1: k is an attribute (opsets 1 to 9)
    OpCase("TopK", (Operand((3, 7)),), attrs={"k": 3}, outputs=2, opset=9, name="TopK1"),
    OpCase("TopK", (Operand((4, 5, 2), F64, low=-3, high=3),), attrs={"k": 2, "axis": 1}, outputs=2, opset=7,
           name="TopK1-double-axis1"),
    # Reduce*-1: axes attribute, at an opset before 11 (negative axes only from 11)
    OpCase("ReduceSum", (Operand((3, 4, 5)),), attrs={"axes": [0, 2], "keepdims": 0}, opset=9,
           name="ReduceSum-op9"),
    OpCase("ReduceMax", (Operand((3, 4, 5)),), attrs={"axes": [1]}, opset=7, name="ReduceMax-op7"),
    OpCase("ArgMin", (Operand((3, 4, 5)),), attrs={"axis": 2, "keepdims": 0}, opset=8, name="ArgMin-op8"),
]
