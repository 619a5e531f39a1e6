"""Soundness cases: MaxUnpool (exact indices as MaxPool makes them, repeated indices, index ranges,
1-D to 3-D, opsets 9 to 22; output_shape is in test_placement.py: shape inference leaves that output
without a shape, which the one-node harness needs), Col2Im (1-D to 3-D, strides, pads, 2-D dilations) and
CenterCropPad (crop, pad, both, axes, integers) and TensorScatter (prefill, exact and ranged write
indices, linear and circular, other sequence axes)."""

from __future__ import annotations

import math

import numpy as np
from onnx import TensorProto

from tests.ops.harness import OpCase, Operand

I64 = TensorProto.INT64


def _pool_indices(shape: tuple[int, ...], kernel: tuple[int, ...], out: tuple[int, ...], seed: int) -> list[int]:
    """Flat output positions, one inside each (stride = kernel) window, as MaxPool's Indices output gives."""
    rng = np.random.default_rng(seed)
    rank = len(kernel)
    positions = []
    for flat in range(math.prod(shape)):
        coords = np.unravel_index(flat, shape)
        spatial = [coords[2 + i] * kernel[i] + int(rng.integers(0, kernel[i])) for i in range(rank)]
        positions.append(int(np.ravel_multi_index((coords[0], coords[1], *spatial), out)))
    return positions


def _max_unpool() -> list[OpCase]:
    cases = []
    for opset in (9, 11, 22):
        shape, out = (2, 2, 2, 3), (2, 2, 4, 6)
        exact = Operand(shape, I64, value=_pool_indices(shape, (2, 2), out, opset))
        cases.append(OpCase("MaxUnpool", (Operand(shape), exact), attrs={"kernel_shape": [2, 2], "strides": [2, 2]},
                            opset=opset, name=f"MaxUnpool{opset}-exact"))
    shape = (1, 2, 2, 2)
    repeated = Operand(shape, I64, value=[0, 0, 3, 3, 9, 1, 9, 30])
    cases.append(OpCase("MaxUnpool", (Operand(shape), repeated), attrs={"kernel_shape": [2, 2], "strides": [2, 2]},
                        name="MaxUnpool-repeated-indices"))
    free = Operand(shape, I64, low=0, high=31)
    cases.append(OpCase("MaxUnpool", (Operand(shape), free), attrs={"kernel_shape": [2, 2], "strides": [2, 2]},
                        name="MaxUnpool-index-ranges"))
    narrow = Operand((1, 1, 3, 3), I64, low=10, high=14)
    cases.append(OpCase("MaxUnpool", (Operand((1, 1, 3, 3), low=1.0, high=4.0), narrow),
                        attrs={"kernel_shape": [2, 2], "strides": [2, 2], "pads": [1, 1, 0, 0]},
                        name="MaxUnpool-narrow-index-ranges"))
    cases.append(OpCase("MaxUnpool", (Operand((2, 3, 4)), Operand((2, 3, 4), I64, low=0, high=59)),
                        attrs={"kernel_shape": [3], "strides": [3], "pads": [1, 1]}, name="MaxUnpool-1d"))
    shape3 = (1, 1, 2, 1, 2)
    cases.append(OpCase("MaxUnpool", (Operand(shape3), Operand(shape3, I64, value=_pool_indices(
        shape3, (2, 2, 2), (1, 1, 4, 2, 4), 5))), attrs={"kernel_shape": [2, 2, 2], "strides": [2, 2, 2]},
        name="MaxUnpool-3d"))
    return cases


def _col2im_case(image: list[int], block: list[int], attrs: dict, channels: int = 2, name: str = "") -> OpCase:
    rank = len(image)
    strides, dilations = attrs.get("strides", [1] * rank), attrs.get("dilations", [1] * rank)
    pads = attrs.get("pads", [0] * 2 * rank)
    blocks = math.prod((image[i] + pads[i] + pads[i + rank] - (dilations[i] * (block[i] - 1) + 1)) // strides[i] + 1
                       for i in range(rank))
    operands = (Operand((2, channels * math.prod(block), blocks)), Operand((rank,), I64, value=image),
                Operand((rank,), I64, value=block))
    return OpCase("Col2Im", operands, attrs=attrs, rtol=1e-4, name=f"Col2Im-{name}")


def _col2im() -> list[OpCase]:
    return [
        _col2im_case([5, 5], [2, 2], {}, name="2d"),
        _col2im_case([6, 7], [3, 2], {"strides": [2, 1], "pads": [1, 0, 0, 1], "dilations": [1, 2]}, name="2d-all"),
        _col2im_case([9], [3], {"strides": [2], "pads": [1, 1]}, name="1d"),
        _col2im_case([4, 3, 5], [2, 2, 3], {"strides": [1, 2, 1], "pads": [1, 0, 0, 0, 1, 1]}, channels=1, name="3d"),
        _col2im_case([4, 4], [4, 4], {}, name="one-block"),
    ]


def _center_crop_pad() -> list[OpCase]:
    cases = []
    for target, axes, name in (([2, 7], None, "crop-and-pad"), ([3, 3], None, "crop"), ([8, 6], None, "pad"),
                               ([6], [-1], "negative-axis"), ([1], [0], "one-axis")):
        attrs = {"axes": axes} if axes else {}
        shape = Operand((len(target),), I64, value=target)
        cases.append(OpCase("CenterCropPad", (Operand((5, 4)), shape), attrs=attrs, name=f"CenterCropPad-{name}"))
    cases.append(OpCase("CenterCropPad", (Operand((3, 5, 2), I64, -9, 9), Operand((2,), I64, value=[2, 4])),
                        attrs={"axes": [0, 1]}, name="CenterCropPad-int64"))
    return cases


def _tensor_scatter() -> list[OpCase]:
    cache, update = Operand((2, 3, 8, 4)), Operand((2, 3, 3, 4), low=5.0, high=9.0)

    def case(name: str, indices: Operand | None, **attrs) -> OpCase:
        inputs = (cache, update) + ((indices,) if indices else ())
        return OpCase("TensorScatter", inputs, attrs=attrs, opset=24, name=f"TensorScatter-{name}")

    return [
        case("prefill", None),
        case("exact", Operand((2,), I64, value=[1, 5])),
        case("circular-wraps", Operand((2,), I64, value=[6, 7]), mode="circular"),
        case("ranged", Operand((2,), I64, low=2, high=4)),
        case("ranged-circular", Operand((2,), I64, low=3, high=9), mode="circular"),
        case("ranged-wide-circular", Operand((2,), I64, low=0, high=30), mode="circular"),
        OpCase("TensorScatter", (Operand((1, 6, 2)), Operand((1, 2, 2), low=-9.0, high=-5.0),
                                 Operand((1,), I64, low=0, high=4)), attrs={"axis": 1}, opset=24,
               name="TensorScatter-axis1-ranged"),
        OpCase("TensorScatter", (Operand((2, 5), I64, -9, 9), Operand((2, 2), I64, 20, 30),
                                 Operand((2,), I64, value=[0, 3])),
               attrs={"axis": -1}, opset=24, name="TensorScatter-int64-last-axis"),
    ]


CASES = _max_unpool() + _col2im() + _center_crop_pad() + _tensor_scatter()
