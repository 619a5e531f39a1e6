"""Soundness cases: AffineGrid (2-D and 3-D, align_corners, a single-position axis) and MaxRoiPool
(fixed rois with half-pixel edges, malformed, partly and wholly outside the map; free rois whose batch
index and edges are ranges)."""

from __future__ import annotations

from onnx import TensorProto

from tests.ops.harness import OpCase, Operand

I64 = TensorProto.INT64


def _affine_grid() -> list[OpCase]:
    cases = []
    for size in ([2, 3, 4, 5], [2, 1, 3, 2, 4], [1, 1, 1, 3]):
        rank = len(size) - 2
        for corners in (0, 1):
            operands = (Operand((size[0], rank, rank + 1), low=-2.0, high=2.0), Operand((len(size),), I64, value=size))
            cases.append(OpCase("AffineGrid", operands, attrs={"align_corners": corners}, opset=20, rtol=1e-5,
                                name=f"AffineGrid-{rank}d-{'x'.join(map(str, size[2:]))}-corners{corners}"))
    return cases


_ROIS = [0, 0.5, 0.5, 2.5, 3.5,   # half-pixel edges round away from zero
         1, 1, -1, 9, 5,          # partly outside the map
         1, 3, 3, 1, 1,           # malformed: x2 < x1 (one pixel)
         0, -3, -3, -1, -1,       # outside the map: empty bins give 0
         1.7, 0, 0, 6, 5]         # batch index truncated


def _max_roi_pool() -> list[OpCase]:
    fixed = OpCase("MaxRoiPool", (Operand((2, 3, 6, 7)), Operand((5, 5), value=_ROIS)),
                   attrs={"pooled_shape": [2, 3]}, opset=1, name="MaxRoiPool-fixed-rois")
    scaled = OpCase("MaxRoiPool", (Operand((2, 2, 5, 6)), Operand((5, 5), value=_ROIS)),
                    attrs={"pooled_shape": [3, 2], "spatial_scale": 0.5}, opset=18, name="MaxRoiPool-scaled")
    free = OpCase("MaxRoiPool", (Operand((2, 2, 8, 8)), Operand((3, 5), low=0.0, high=1.99)),
                  attrs={"pooled_shape": [2, 2], "spatial_scale": 4.0}, name="MaxRoiPool-free-rois")
    positive = OpCase("MaxRoiPool", (Operand((1, 2, 6, 6), low=0.5, high=2.0), Operand((2, 5), low=0.0, high=0.9)),
                      attrs={"pooled_shape": [3, 3], "spatial_scale": 6.0}, name="MaxRoiPool-free-rois-positive")
    return [fixed, scaled, free, positive]


CASES = _affine_grid() + _max_roi_pool()
