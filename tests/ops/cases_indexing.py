"""Soundness cases: Gather*, Scatter*, OneHot, Trilu, Pad, Resize, Upsample, Compress, NonZero, Unique.

Index operands are fixed constants (exact) or free integer intervals (hull over every allowed
position, negative ones included); reductions with duplicate targets exercise the rounds of
Scatter; Resize covers every mode, nearest_mode and coordinate transformation. Versions before
opset 11 (Pad-2, Scatter-9, Resize-10, Upsample-7/9) take their operands as attributes or follow
onnxruntime's older nearest rule (floor when an axis grows, ceil when it shrinks).
"""

from onnx import TensorProto

from tests.ops.harness import OpCase, Operand

F16, I32, I64, BOOL = TensorProto.FLOAT16, TensorProto.INT32, TensorProto.INT64, TensorProto.BOOL


def _idx(shape, values) -> Operand:
    return Operand(shape, I64, value=values)


def _gather() -> list[OpCase]:
    return [
        OpCase("Gather", (Operand((5, 4)), _idx((2, 3), [0, -1, 3, 3, -5, 2])), name="Gather-axis0"),
        OpCase("Gather", (Operand((3, 5, 2)), _idx((4,), [4, -2, 0, 1])), attrs={"axis": -2}, name="Gather-axis-2"),
        OpCase("Gather", (Operand((3, 4), I64, -9, 9), _idx((), [2])), attrs={"axis": 1}, name="Gather-int-scalar"),
        OpCase("Gather", (Operand((6, 3), F16), _idx((2, 2), [5, 0, -6, 1])), name="Gather-float16"),
        OpCase("Gather", (Operand((7, 3)), Operand((2, 4), I64, -7, 6)), name="Gather-index-interval"),
        OpCase("Gather", (Operand((2, 6)), Operand((3,), I64, 1, 4)), attrs={"axis": 1}, name="Gather-index-pos"),
        OpCase("Gather", (Operand((2, 6)), Operand((3,), I32, -6, -2)), attrs={"axis": -1}, name="Gather-index-neg"),
        OpCase("GatherElements", (Operand((3, 4)), _idx((2, 4), [0, 2, -1, 1, 2, 0, 1, -3])), name="GatherElements"),
        OpCase("GatherElements", (Operand((3, 4), I64, -5, 5), _idx((3, 2), [3, 0, -1, 2, 1, 1])),
               attrs={"axis": 1}, name="GatherElements-axis1-int"),
        OpCase("GatherElements", (Operand((2, 5, 3)), Operand((2, 3, 3), I64, -5, 4)), attrs={"axis": -2},
               name="GatherElements-index-interval"),
        OpCase("GatherND", (Operand((3, 4)), _idx((2, 2), [0, 1, -1, 3])), name="GatherND-elements"),
        OpCase("GatherND", (Operand((3, 4, 2)), _idx((2, 1), [2, 0])), name="GatherND-slices"),
        OpCase("GatherND", (Operand((2, 3, 4)), _idx((2, 2, 1), [0, 2, 1, 1])), attrs={"batch_dims": 1},
               name="GatherND-batch"),
        OpCase("GatherND", (Operand((3, 4)), Operand((2, 2), I64, 0, 2)), name="GatherND-index-interval"),
    ]


def _scatter() -> list[OpCase]:
    cases = [
        OpCase("ScatterElements", (Operand((3, 4)), _idx((2, 3), [0, 2, -1, 1, 0, 2]), Operand((2, 3))),
               name="ScatterElements"),
        OpCase("ScatterElements", (Operand((3, 4), I64, -9, 9), _idx((3, 2), [3, 0, -1, 2, 1, 0]),
                                   Operand((3, 2), I64, -9, 9)), attrs={"axis": 1}, name="ScatterElements-int"),
        OpCase("ScatterElements", (Operand((4, 2)), Operand((2, 2), I64, -4, 3), Operand((2, 2))),
               name="ScatterElements-index-interval"),
        OpCase("ScatterND", (Operand((4, 3)), _idx((2, 1), [3, -4]), Operand((2, 3))), name="ScatterND-rows"),
        OpCase("ScatterND", (Operand((2, 3, 2)), _idx((2, 2), [1, 2, 0, -1]), Operand((2, 2))),
               name="ScatterND-slices"),
        OpCase("ScatterND", (Operand((4, 3)), Operand((2, 1), I64, 0, 3), Operand((2, 3))),
               name="ScatterND-index-interval"),
    ]
    for reduction in ("add", "mul", "max", "min"):
        cases += [
            OpCase("ScatterElements", (Operand((3, 4)), _idx((3, 4), [0, 0, 2, 1, 0, 0, 2, 1, -3, 2, 2, 1]),
                                       Operand((3, 4))), attrs={"reduction": reduction},
                   name=f"ScatterElements-{reduction}-duplicates"),
            OpCase("ScatterND", (Operand((4, 2)), _idx((3, 1), [1, -3, 3]), Operand((3, 2))),
                   attrs={"reduction": reduction}, name=f"ScatterND-{reduction}-duplicates"),
        ]
    cases.append(OpCase("ScatterElements", (Operand((2, 3), low=1e38, high=3e38), _idx((2, 3), [0] * 6),
                                            Operand((2, 3), low=1e38, high=3e38)), attrs={"reduction": "add"},
                        name="ScatterElements-add-overflow"))
    cases.append(OpCase("ScatterND", (Operand((3, 2), low=-9, high=9), Operand((2, 1), I64, -3, 2),
                                      Operand((2, 2), low=-1, high=1)), attrs={"reduction": "max"},
                        name="ScatterND-max-index-interval"))
    cases += [  # torch's scatter_add with computed indices
        OpCase("ScatterElements", (Operand((3, 4)), Operand((3, 4), I64, -3, 2), Operand((3, 4), low=-1, high=2)),
               attrs={"reduction": "add"}, name="ScatterElements-add-index-interval"),
        OpCase("ScatterElements", (Operand((2, 5), low=0, high=1), Operand((2, 3), I64, 0, 4),
                                   Operand((2, 3), low=0, high=1)),
               attrs={"reduction": "add", "axis": 1}, name="ScatterElements-add-index-interval-axis1"),
        OpCase("ScatterND", (Operand((4, 3)), Operand((3, 1), I64, -4, 3), Operand((3, 3))),
               attrs={"reduction": "add"}, name="ScatterND-add-index-interval"),
    ]
    cases += [
        OpCase("Scatter", (Operand((3, 4)), _idx((2, 3), [0, 2, 1, 1, 0, 2]), Operand((2, 3))), opset=9,
               name="Scatter-opset9"),
        OpCase("Scatter", (Operand((3, 4), I64, -9, 9), _idx((3, 2), [3, 0, 2, 2, 1, 0]), Operand((3, 2), I64, -9, 9)),
               attrs={"axis": 1}, opset=10, name="Scatter-axis1-int"),
        OpCase("Scatter", (Operand((4, 2)), _idx((2, 2), [-1, 0, 3, -4]), Operand((2, 2))), opset=10,
               name="Scatter-negative"),
        OpCase("Scatter", (Operand((4, 2)), Operand((2, 2), I64, 0, 3), Operand((2, 2))), opset=9,
               name="Scatter-index-interval"),
    ]
    return cases


def _onehot_trilu() -> list[OpCase]:
    depth = Operand((), I64, value=[4])
    return [
        OpCase("OneHot", (_idx((2, 3), [0, 3, -1, -4, 5, 2]), depth, Operand((2,), low=-2, high=2)),
               name="OneHot-exact"),
        OpCase("OneHot", (Operand((2, 3), I64, -5, 5), depth, Operand((2,), low=-2, high=2)), attrs={"axis": 0},
               name="OneHot-interval-axis0"),
        OpCase("OneHot", (Operand((3,), I64, -2, 2), Operand((1,), I64, value=[3]),
                          Operand((2,), I64, value=[0, 7])), attrs={"axis": 1}, name="OneHot-int-values"),
        OpCase("Trilu", (Operand((4, 5)),), name="Trilu-upper"),
        OpCase("Trilu", (Operand((2, 4, 3)), Operand((), I64, value=[-1])), attrs={"upper": 0}, name="Trilu-lower-k"),
        OpCase("Trilu", (Operand((3, 3), I64, -5, 5), Operand((), I64, value=[2])), name="Trilu-int-k"),
    ]


def _pad() -> list[OpCase]:
    pads = _idx((4,), [1, 2, 0, 3])
    cases = [OpCase("Pad", (Operand((3, 4)), pads, Operand((1,), low=5, high=6)), name="Pad-constant-interval"),
             OpCase("Pad", (Operand((3, 4), I64, -5, 5), pads), name="Pad-constant-int"),
             OpCase("Pad", (Operand((3, 4)), _idx((4,), [-1, 2, 1, -2])), name="Pad-crop"),
             OpCase("Pad", (Operand((2, 3, 4)), _idx((2,), [2, 1]), None, _idx((1,), [-1])), opset=18,
                    name="Pad-axes"),
             OpCase("Pad", (Operand((3, 4), F16), pads, Operand((), F16, value=[1.5])), opset=11,
                    name="Pad-opset11-float16")]
    for mode in ("reflect", "edge", "wrap"):
        cases.append(OpCase("Pad", (Operand((3, 4)), _idx((4,), [2, 1, 1, 3])), attrs={"mode": mode}, opset=19,
                            name=f"Pad-{mode}"))
    for mode, opset in (("constant", 10), ("reflect", 9), ("edge", 7)):
        cases.append(OpCase("Pad", (Operand((2, 3, 4)),), attrs={"mode": mode, "pads": [0, 2, 1, 1, 1, 3]},
                            opset=opset, name=f"Pad2-{mode}-opset{opset}"))
    cases += [OpCase("Pad", (Operand((1, 3, 4)),), attrs={"pads": [0, 1, 2, 0, 1, 0], "value": -7.5}, opset=10,
                     name="Pad2-value"),
              OpCase("Pad", (Operand((3, 4), F16),), attrs={"pads": [-1, 2, 1, -2], "value": 0.1}, opset=8,
                     name="Pad2-crop-float16")]
    return cases


def _selection() -> list[OpCase]:
    return [
        OpCase("Compress", (Operand((3, 4)), Operand((4,), BOOL, value=[1, 0, 1, 1])), attrs={"axis": 1},
               name="Compress-axis1"),
        OpCase("Compress", (Operand((3, 2)), Operand((2,), BOOL, value=[0, 1])), attrs={"axis": -2},
               name="Compress-short-condition"),
        OpCase("Compress", (Operand((2, 3), I64, -4, 4), Operand((5,), BOOL, value=[1, 0, 0, 1, 1])),
               name="Compress-flat"),
        OpCase("NonZero", (Operand((2, 3), value=[0, 1, 0, -2, 0, 3]),), name="NonZero"),
        OpCase("NonZero", (Operand((4,), I64, value=[0, 0, 5, 1]),), name="NonZero-int"),
        OpCase("Unique", (Operand((6,), value=[2.0, -1.0, 2.0, 0.5, -1.0, 3.0]),), outputs=4, opset=11,
               name="Unique-exact"),
        OpCase("Unique", (Operand((3, 2), I64, value=[1, 2, 0, 5, 1, 2]),), attrs={"axis": 0, "sorted": 0},
               outputs=4, opset=11, name="Unique-rows-first-occurrence"),
        OpCase("Unique", (Operand((2, 4), I64, -2, 2),), outputs=4, opset=11, name="Unique-range"),
        OpCase("Unique", (Operand((5,), low=-1.0, high=1.0),), attrs={"sorted": 0}, outputs=4, opset=11,
               name="Unique-float-range"),
    ]


def _resize_case(name: str, shape, scales=None, sizes=None, roi=None, opset: int = 18, dtype: int = TensorProto.FLOAT,
                 **attrs) -> OpCase:
    rank = len(shape) if "axes" not in attrs else len(attrs["axes"])
    roi_op = Operand((2 * rank,), value=roi) if roi else (Operand((0,), value=[]) if opset < 13 else None)
    scales_op = Operand((len(scales),), value=scales) if scales else (Operand((0,), value=[]) if sizes else None)
    inputs = (Operand(shape, dtype, -4, 4), roi_op, scales_op) + ((_idx((len(sizes),), sizes),) if sizes else ())
    return OpCase("Resize", inputs, attrs=attrs, opset=opset, name=f"Resize-{name}")


def _resize() -> list[OpCase]:
    s2, s_down = [1.0, 1.0, 2.0, 1.5], [1.0, 1.0, 0.5, 0.6]
    cases = [
        _resize_case("nearest", (1, 2, 3, 4), s2),
        _resize_case("nearest-down", (1, 2, 4, 5), s_down),
        _resize_case("nearest-asymmetric-floor", (1, 1, 3, 3), [1.0, 1.0, 2.0, 2.0],
                     coordinate_transformation_mode="asymmetric", nearest_mode="floor"),
        _resize_case("nearest-ceil-align", (2, 3, 4), sizes=[2, 5, 7], coordinate_transformation_mode="align_corners",
                     nearest_mode="ceil"),
        _resize_case("nearest-prefer-ceil", (1, 1, 4, 6), s_down, nearest_mode="round_prefer_ceil",
                     coordinate_transformation_mode="pytorch_half_pixel"),
        _resize_case("nearest-tf-nn", (1, 1, 3, 4), s2, opset=11,
                     coordinate_transformation_mode="tf_half_pixel_for_nn"),
        _resize_case("nearest-int32", (1, 1, 2, 3), s2, dtype=I32),
        _resize_case("nearest-axes", (1, 2, 3, 3), [2.0, 0.7], axes=[2, -1]),
        _resize_case("nearest-crop", (1, 1, 4, 4), [1.0, 1.0, 1.5, 1.25], roi=[0, 0, 0.2, -0.1, 1, 1, 0.9, 1.2],
                     coordinate_transformation_mode="tf_crop_and_resize", extrapolation_value=7.0),
    ]
    for mode, opset in (("half_pixel", 18), ("asymmetric", 18), ("align_corners", 18), ("pytorch_half_pixel", 18),
                        ("half_pixel_symmetric", 19)):
        cases += [_resize_case(f"linear-{mode}", (1, 2, 3, 4), s2, opset=opset, mode="linear",
                               coordinate_transformation_mode=mode),
                  _resize_case(f"cubic-{mode}", (1, 1, 4, 5), [1.0, 1.0, 1.5, 2.0], opset=opset, mode="cubic",
                               coordinate_transformation_mode=mode)]
    cases += [
        _resize_case("linear-down", (1, 1, 5, 6), s_down, mode="linear"),
        _resize_case("linear-sizes", (2, 3, 4), sizes=[2, 6, 7], mode="linear", opset=13),
        _resize_case("linear-opset11", (1, 1, 3, 4), s2, opset=11, mode="linear"),
        _resize_case("linear-crop", (1, 1, 4, 4), [1.0, 1.0, 1.5, 1.25], roi=[0, 0, 0.2, -0.1, 1, 1, 0.9, 1.2],
                     mode="linear", coordinate_transformation_mode="tf_crop_and_resize", extrapolation_value=-9.0),
        _resize_case("cubic-exclude", (1, 1, 4, 4), [1.0, 1.0, 2.0, 2.0], mode="cubic", exclude_outside=1,
                     cubic_coeff_a=-0.5),
        _resize_case("cubic-down", (1, 1, 6, 5), s_down, mode="cubic"),
        _resize_case("aspect-not-larger", (1, 2, 9, 12), sizes=[4, 4], axes=[2, 3], mode="linear",
                     keep_aspect_ratio_policy="not_larger"),
        _resize_case("aspect-not-smaller", (1, 2, 9, 12), sizes=[4, 7], axes=[2, 3],
                     keep_aspect_ratio_policy="not_smaller"),
    ]
    for mode in ("linear", "cubic"):  # antialiasing filters (opset 18): shrinking, growing, both edge rules
        cases += [
            _resize_case(f"{mode}-antialias-down", (1, 2, 8, 9), s_down, mode=mode, antialias=1),
            _resize_case(f"{mode}-antialias-far-down", (1, 1, 10, 12), [1.0, 1.0, 0.3, 0.25], mode=mode,
                         antialias=1, exclude_outside=1),
            _resize_case(f"{mode}-antialias-up", (1, 1, 4, 5), [1.0, 1.0, 2.0, 1.5], mode=mode, antialias=1),
            _resize_case(f"{mode}-antialias-align", (1, 2, 10, 8), [1.0, 1.0, 0.5, 0.75], mode=mode, antialias=1,
                         coordinate_transformation_mode="align_corners"),
            _resize_case(f"{mode}-antialias-crop", (1, 1, 6, 8), [1.0, 1.0, 0.5, 0.75], mode=mode, antialias=1,
                         roi=[0, 0, 0.2, -0.1, 1, 1, 0.9, 1.2], coordinate_transformation_mode="tf_crop_and_resize",
                         extrapolation_value=7.0),
            _resize_case(f"{mode}-antialias-nhwc", (2, 10, 7, 3), [1.0, 0.45, 0.8, 1.0], mode=mode, antialias=1),
        ]
    return cases + _resize_before_11()


def _resize_before_11() -> list[OpCase]:
    """Resize-10 (X, scales) and Upsample-7 (scales attribute) / Upsample-9 (scales input)."""
    def scales(values) -> Operand:
        return Operand((len(values),), value=values)

    grow, shrink, mixed = [1.0, 1.0, 2.0, 1.5], [1.0, 1.0, 0.5, 0.6], [1.0, 1.0, 0.7, 2.5]
    cases = []
    for mode in ("nearest", "linear"):
        for name, values, shape in (("up", grow, (1, 2, 3, 4)), ("down", shrink, (1, 1, 5, 7)),
                                    ("mixed", mixed, (1, 1, 6, 3)), ("odd", [1.0, 1.0, 1.7, 1.3], (1, 2, 5, 4))):
            cases.append(OpCase("Resize", (Operand(shape, low=-4, high=4), scales(values)), attrs={"mode": mode},
                                opset=10, name=f"Resize10-{mode}-{name}"))
        cases += [
            OpCase("Upsample", (Operand((1, 2, 3, 4), low=-4, high=4),), attrs={"mode": mode, "scales": grow},
                   opset=7, name=f"Upsample7-{mode}"),
            OpCase("Upsample", (Operand((1, 1, 3, 5), low=-4, high=4), scales([1.0, 1.0, 1.7, 2.0])),
                   attrs={"mode": mode}, opset=9, name=f"Upsample9-{mode}"),
        ]
    cases += [
        OpCase("Resize", (Operand((2, 3, 4), I32, -9, 9), scales([1.0, 2.0, 0.75])), opset=10, name="Resize10-int32"),
        OpCase("Upsample", (Operand((1, 1, 2, 3), F16, -4, 4),), attrs={"scales": [1.0, 1.0, 3.0, 2.0]}, opset=8,
               name="Upsample7-float16"),
    ]
    return cases


CASES = _gather() + _scatter() + _onehot_trilu() + _pad() + _selection() + _resize()
