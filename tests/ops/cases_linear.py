"""Soundness cases: MatMul, Gemm, Einsum, Det."""

from onnx import TensorProto

from tests.ops.harness import OpCase, Operand

F16 = TensorProto.FLOAT16
I32 = TensorProto.INT32
I64 = TensorProto.INT64

CASES = [
    OpCase("MatMul", (Operand((3, 4)), Operand((4, 5))), name="MatMul-2d"),
    OpCase("MatMul", (Operand((2, 1, 3, 4)), Operand((3, 4, 2))), name="MatMul-batched-broadcast"),
    OpCase("MatMul", (Operand((4,)), Operand((2, 4, 3))), name="MatMul-1d-left"),
    OpCase("MatMul", (Operand((2, 3, 4)), Operand((4,))), name="MatMul-1d-right"),
    OpCase("MatMul", (Operand((5,)), Operand((5,))), name="MatMul-1d-both"),
    OpCase("MatMul", (Operand((3, 4)), Operand((4, 2), value=[0.5, -1.0, 2.0, 0.0, 1.5, -0.25, 3.0, 1.0])),
           name="MatMul-exact-weight"),
    OpCase("MatMul", (Operand((3, 4), low=0, high=2), Operand((4, 3), low=-1, high=1)), name="MatMul-nonneg"),
    OpCase("MatMul", (Operand((2, 64), low=1e3, high=2e3), Operand((64, 3), low=-1e-3, high=1e-3)),
           name="MatMul-cancellation"),
    OpCase("MatMul", (Operand((3, 8), F16), Operand((8, 2), F16)), name="MatMul-f16"),
    OpCase("MatMul", (Operand((3, 4), I32, -5, 5), Operand((4, 2), I32, -5, 5)), name="MatMul-int32"),
    OpCase("MatMul", (Operand((3, 4), I64, -5, 5), Operand((4, 2), I64, -5, 5)), name="MatMul-int64"),
    OpCase("MatMul", (Operand((2, 3), low=1e19, high=3e19), Operand((3, 2), low=1e19, high=3e19)),
           name="MatMul-overflow"),
    OpCase("Gemm", (Operand((3, 4)), Operand((4, 5))), name="Gemm-plain"),
    OpCase("Gemm", (Operand((4, 3)), Operand((5, 4)), Operand((5,))),
           attrs={"transA": 1, "transB": 1, "alpha": 0.5, "beta": -2.0}, name="Gemm-trans-alpha-beta"),
    OpCase("Gemm", (Operand((3, 4)), Operand((4, 5)), Operand((3, 1))), attrs={"beta": 0.0}, name="Gemm-beta0"),
    OpCase("Gemm", (Operand((3, 4)), Operand((5, 4)), Operand((3, 5))), attrs={"transB": 1}, name="Gemm-fullC"),
    OpCase("Gemm", (Operand((2, 6), F16), Operand((6, 3), F16), Operand((1, 3), F16)), name="Gemm-f16"),
    # Gemm-7/9: C required, unidirectional broadcasting
    OpCase("Gemm", (Operand((3, 4)), Operand((4, 5)), Operand((5,))), attrs={"alpha": 2.0}, opset=7,
           name="Gemm-opset7"),
    OpCase("Gemm", (Operand((4, 3)), Operand((4, 5)), Operand((3, 1))), attrs={"transA": 1}, opset=9,
           name="Gemm-opset9"),
    OpCase("Einsum", (Operand((3, 4)), Operand((4, 5))), attrs={"equation": "ij,jk->ik"}, name="Einsum-matmul"),
    OpCase("Einsum", (Operand((2, 3, 4)), Operand((2, 4, 5))), attrs={"equation": "bij, bjk -> bik"},
           name="Einsum-batched"),
    OpCase("Einsum", (Operand((4, 4)),), attrs={"equation": "ii->"}, name="Einsum-trace"),
    # one product per result (nothing summed), with a mask's -3.4e38 in the operand
    OpCase("Einsum", (Operand((1, 2, 4, 1), low=-3.4028234663852886e38, high=1.0),
                      Operand((1, 2, 3, 1), low=-2, high=1)),
           attrs={"equation": "bcxd,bcyd->bcxy"}, name="Einsum-outer-mask"),
    OpCase("MatMul", (Operand((2, 4, 1), low=-3.4028234663852886e38, high=1.0), Operand((1, 3), low=-1, high=1)),
           name="MatMul-outer-mask"),
    OpCase("MatMul", (Operand((3, 1), low=-2, high=3), Operand((2, 1, 4), low=-1, high=2)), name="MatMul-outer"),
    OpCase("Einsum", (Operand((3, 4)),), attrs={"equation": "ij->ji"}, name="Einsum-transpose"),
    OpCase("Einsum", (Operand((3, 4)), Operand((4,)), Operand((3,))), attrs={"equation": "ij,j,i->"},
           name="Einsum-three"),
    OpCase("Einsum", (Operand((2, 3, 4)), Operand((4, 2))), attrs={"equation": "...j,jk"},
           name="Einsum-ellipsis-implicit"),
    OpCase("Einsum", (Operand((3,)), Operand((4,))), attrs={"equation": "i,j->ij"}, name="Einsum-outer"),
    OpCase("Einsum", (Operand((3, 4), I64, -4, 4), Operand((4, 2), I64, -4, 4)), attrs={"equation": "ij,jk->ik"},
           name="Einsum-int64"),
    # Det: onnxruntime's float32 LU against a symmetric bound (ranges, batches, exact, 1x1)
    OpCase("Det", (Operand((3, 3), low=-2.0, high=2.0),), opset=11, name="Det-3x3", rtol=1e-3),
    OpCase("Det", (Operand((2, 4, 4), low=-1.0, high=1.0),), name="Det-batched-4x4", rtol=1e-3),
    OpCase("Det", (Operand((2, 2), low=1.0, high=3.0),), opset=22, name="Det-2x2-positive", rtol=1e-3),
    OpCase("Det", (Operand((1, 1), low=-5.0, high=5.0),), name="Det-1x1"),
    OpCase("Det", (Operand((3, 3), value=[2.0, 1.0, 0.0, 1.0, 3.0, 1.0, 0.0, 1.0, 4.0]),), name="Det-exact"),
]
