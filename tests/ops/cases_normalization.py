"""Soundness cases: BatchNormalization, LayerNormalization, InstanceNormalization, GroupNormalization,
LpNormalization, LRN, MeanVarianceNormalization."""

from onnx import TensorProto

from tests.ops.harness import OpCase, Operand

F16 = TensorProto.FLOAT16


def _bn(shape, channels, elem_type=TensorProto.FLOAT, var_low=0.1, **kw):
    c = (channels,)
    return OpCase("BatchNormalization", (Operand(shape, elem_type), Operand(c, elem_type), Operand(c, elem_type),
                                         Operand(c, elem_type), Operand(c, elem_type, var_low, 4.0)), **kw)


CASES = [
    _bn((2, 3, 4, 5), 3, name="BatchNormalization-2d"),
    _bn((2, 3), 3, name="BatchNormalization-0d-spatial", opset=15),
    _bn((1, 2, 6), 2, var_low=-0.5, name="BatchNormalization-negative-var", opset=14, attrs={"epsilon": 1e-3}),
    _bn((1, 2, 3, 3), 2, F16, name="BatchNormalization-f16", opset=13),
    _bn((2, 3, 4, 5), 3, name="BatchNormalization9", opset=9),
    _bn((2, 3, 4, 5), 3, name="BatchNormalization-training", opset=15, outputs=3,
        attrs={"training_mode": 1, "momentum": 0.8}),
    # a near-constant channel over sqrt(1e-8): onnxruntime's float32 rounding of the mean is magnified 1e4
    # times, so only the bounds are checked, not agreement with the float64 reference
    _bn((1, 4, 7), 4, name="BatchNormalization-training-tiny-eps", opset=14, outputs=3,
        attrs={"training_mode": 1, "epsilon": 1e-8}, check_agreement=False),
    _bn((3, 2), 2, F16, name="BatchNormalization-training-f16", opset=15, outputs=3, attrs={"training_mode": 1}),
    _bn((2, 3, 4), 3, name="BatchNormalization7-spatial", opset=7, attrs={"spatial": 1, "epsilon": 1e-3}),
    OpCase("BatchNormalization", (Operand((2, 3, 2, 2)), *[Operand((3, 2, 2)) for _ in range(3)],
                                  Operand((3, 2, 2), low=0.1, high=4.0)),
           attrs={"spatial": 0}, opset=8, name="BatchNormalization7-per-activation"),
    OpCase("LayerNormalization", (Operand((2, 3, 8)), Operand((8,)), Operand((8,))), opset=17,
           name="LayerNormalization-last"),
    OpCase("LayerNormalization", (Operand((2, 3, 4)), Operand((3, 4))), attrs={"axis": -2, "epsilon": 1e-3},
           outputs=3, opset=17, name="LayerNormalization-axis-2-stats"),
    OpCase("LayerNormalization", (Operand((2, 5), low=1e3, high=1.001e3), Operand((5,))), attrs={"axis": 1},
           outputs=3, opset=17, name="LayerNormalization-near-constant",
           check_agreement=False),  # ill-conditioned: onnxruntime's float32 centring is off by up to 1e-2
    OpCase("LayerNormalization", (Operand((4, 6)), Operand((6,)), Operand((6,))), attrs={"epsilon": 0.0},
           opset=17, name="LayerNormalization-eps0", check_agreement=False),  # constant slice: exact 0/0 = NaN
    # slices of 6 draws: a draw can be nearly constant, and float32 centring then differs by ~1e-4 relatively
    OpCase("LayerNormalization", (Operand((3, 2)), Operand((3, 2), value=[1.0] * 6)), attrs={"axis": 0},
           opset=17, name="LayerNormalization-axis0-exact-scale", rtol=1e-3),
    OpCase("LayerNormalization", (Operand((2, 16), F16), Operand((16,), F16), Operand((16,), F16)), opset=17,
           name="LayerNormalization-f16"),
    OpCase("InstanceNormalization", (Operand((2, 3, 4, 5)), Operand((3,)), Operand((3,))),
           name="InstanceNormalization-2d", rtol=1e-3),  # near-constant slices: float32 mean error
    OpCase("InstanceNormalization", (Operand((1, 2, 7)), Operand((2,)), Operand((2,))), attrs={"epsilon": 0.0},
           name="InstanceNormalization-eps0", check_agreement=False),  # ORT's mean error turns exact 0/0 into +-1
    OpCase("InstanceNormalization", (Operand((1, 2, 3, 3), F16), Operand((2,), F16), Operand((2,), F16)),
           name="InstanceNormalization-f16"),
    # GroupNormalization: onnx shape inference gives its output no type, so the one-node harness cannot
    # build it; tests/ops/test_linear.py checks it against onnxruntime directly.
    OpCase("LpNormalization", (Operand((3, 5)),), name="LpNormalization-p2"),
    OpCase("LpNormalization", (Operand((3, 4, 2)),), attrs={"axis": 1, "p": 1}, name="LpNormalization-p1-axis1"),
    OpCase("LpNormalization", (Operand((4, 3), low=0.0, high=2.0),), attrs={"axis": 0},
           name="LpNormalization-nonneg-axis0"),
    OpCase("LpNormalization", (Operand((2, 6), F16),), name="LpNormalization-f16"),
    OpCase("LRN", (Operand((2, 5, 3, 3)),), attrs={"size": 3}, name="LRN"),
    OpCase("LRN", (Operand((1, 6, 2, 3), low=-20, high=20),), attrs={"size": 5, "alpha": 0.5, "beta": 1.5,
                                                                        "bias": 2.0}, name="LRN-big-alpha"),
    OpCase("LRN", (Operand((1, 4, 2, 2), low=-1, high=1),), attrs={"size": 5, "alpha": 1.0, "beta": 0.4,
                                                                      "bias": 1e-3}, opset=11, name="LRN-small-bias"),
    OpCase("LRN", (Operand((1, 3, 2, 2), F16),), attrs={"size": 3, "alpha": 0.01}, name="LRN-f16"),
    OpCase("LRN", (Operand((1, 4, 1, 2), low=-3e19, high=3e19),), attrs={"size": 3}, name="LRN-overflow",
           check_agreement=False),  # onnxruntime's running sum turns inf - inf into NaN, the formula does not
    # Constant slices (a drawn point block covering a slice) are 0/0 in exact arithmetic; whether
    # onnxruntime's float32 mean of them is exact (NaN) or not (+-1) depends on its summation order, so
    # agreement is checked on non-constant data in test_small_ops.py. Explicit axes: onnx shape
    # inference gives the default-axes node no output type (test_small_ops.py covers the default).
    OpCase("MeanVarianceNormalization", (Operand((2, 3, 4, 2)),), attrs={"axes": [0, 2, 3]},
           name="MeanVarianceNormalization", check_agreement=False),
    OpCase("MeanVarianceNormalization", (Operand((3, 5)),), attrs={"axes": [1]}, opset=9,
           name="MeanVarianceNormalization-rows-opset9", check_agreement=False),
    OpCase("MeanVarianceNormalization", (Operand((2, 3, 4), low=5.0, high=6.0),), attrs={"axes": [0, -1]},
           name="MeanVarianceNormalization-axes-0-2", check_agreement=False),
    OpCase("MeanVarianceNormalization", (Operand((4, 3), low=-1e-3, high=1e-3),), attrs={"axes": [0]},
           name="MeanVarianceNormalization-small", check_agreement=False),
    # rows past the square root of float32's range: the runtime's squares overflow, its output collapses to 0
    OpCase("LayerNormalization", (Operand((2, 3, 16), low=1e20, high=3e20), Operand((16,)), Operand((16,))),
           opset=17, name="LayerNormalization-squares-overflow", check_agreement=False),
    OpCase("InstanceNormalization", (Operand((1, 2, 16), low=1e20, high=3e20), Operand((2,)), Operand((2,))),
           name="InstanceNormalization-squares-overflow", check_agreement=False),
    OpCase("LpNormalization", (Operand((3, 16), low=1e20, high=3e20),), name="LpNormalization-squares-overflow",
           check_agreement=False),
    OpCase("LpNormalization", (Operand((3, 16), low=1e37, high=3e37),), attrs={"p": 1},
           name="LpNormalization-p1-sum-overflow", check_agreement=False),
]
