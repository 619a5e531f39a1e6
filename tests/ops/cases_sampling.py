"""Soundness cases: GridSample (every mode, padding and align_corners, opsets 16 and 20) and RoiAlign.

Grids are free intervals reaching past [-1, 1] (so zero padding is read); RoiAlign rois are fixed
boxes (some partly outside the map) and batch indices are fixed or free within [0, N - 1].
"""

from onnx import TensorProto

from tests.ops.harness import OpCase, Operand

I64 = TensorProto.INT64


def _grid_sample() -> list[OpCase]:
    operands = (Operand((2, 3, 4, 5)), Operand((2, 3, 4, 2), low=-1.3, high=1.3))
    cases = []
    for opset, modes in ((16, ("bilinear", "nearest", "bicubic")), (20, ("linear", "nearest", "cubic"))):
        for mode in modes:
            for padding in ("zeros", "border", "reflection"):
                for corners in (0, 1):
                    cases.append(OpCase("GridSample", operands,
                                        attrs={"mode": mode, "padding_mode": padding, "align_corners": corners},
                                        opset=opset, rtol=1e-4, name=f"GridSample{opset}-{mode}-{padding}-{corners}"))
    cases.append(OpCase("GridSample", (Operand((1, 2, 3, 4)), Operand((1, 2, 2, 2), low=-1.0, high=1.0)),
                        attrs={"mode": "bilinear", "align_corners": 1}, opset=16, rtol=1e-4,
                        name="GridSample-inside-no-padding"))
    for padding in ("zeros", "border", "reflection"):  # pixel coordinates past float32's integers
        cases.append(OpCase("GridSample", (Operand((1, 1, 4, 4)), Operand((1, 1, 2, 2), low=-1e8, high=1e8)),
                            attrs={"mode": "bilinear", "padding_mode": padding}, opset=16, check_agreement=False,
                            name=f"GridSample-huge-grid-{padding}"))
    return cases


_ROIS = [0.0, 0.0, 3.0, 4.0, 1.5, -2.0, 6.5, 2.0, -3.0, 1.0, 9.0, 7.5]


def _roi_align() -> list[OpCase]:
    cases = []
    for opset, modes in ((10, ("output_half_pixel",)), (16, ("half_pixel", "output_half_pixel"))):
        for mode in ("avg", "max"):
            for transform in modes:
                for ratio, batch in ((0, Operand((3,), I64, value=[1, 0, 1])), (2, Operand((3,), I64, 0, 1))):
                    attrs = {"mode": mode, "output_height": 2, "output_width": 3, "sampling_ratio": ratio,
                             "spatial_scale": 0.8}
                    if opset >= 16:
                        attrs["coordinate_transformation_mode"] = transform
                    cases.append(OpCase("RoiAlign", (Operand((2, 3, 5, 6)), Operand((3, 4), value=_ROIS), batch),
                                        attrs=attrs, opset=opset, rtol=1e-4,
                                        name=f"RoiAlign{opset}-{mode}-{transform}-ratio{ratio}"))
    return cases


CASES = _grid_sample() + _roi_align()
