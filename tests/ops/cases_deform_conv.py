"""Soundness cases: DeformConv (opsets 19 and 22) with exact fractional offsets and offset ranges reaching
outside the input, bias, mask, groups, offset groups, strides, pads and dilations."""

from __future__ import annotations

import numpy as np

from tests.ops.harness import OpCase, Operand


def _offsets(shape: tuple[int, ...], seed: int) -> list[float]:
    rng = np.random.default_rng(seed)
    return np.round(rng.uniform(-1.8, 1.8, shape), 3).reshape(-1).tolist()


def _deform_conv() -> list[OpCase]:
    cases = []
    x, w = Operand((2, 4, 5, 6)), Operand((6, 2, 2, 3), low=-1.0, high=1.0)
    attrs = {"group": 2, "offset_group": 2, "pads": [1, 0, 0, 1], "strides": [1, 2], "dilations": [2, 1]}
    out = (4, 3)  # (5 + 1 - 2 - 1) // 1 + 1, (6 + 1 - 2 - 1) // 2 + 1
    offset_shape = (2, 2 * 2 * 6, *out)
    for opset in (19, 22):
        exact = Operand(offset_shape, value=_offsets(offset_shape, opset))
        cases.append(OpCase("DeformConv", (x, w, exact), attrs=attrs, opset=opset, rtol=1e-4,
                            name=f"DeformConv{opset}-exact-offsets"))
    free = Operand(offset_shape, low=-2.5, high=2.5)
    bias, mask = Operand((6,)), Operand((2, 2 * 6, *out), low=0.0, high=1.0)
    cases.append(OpCase("DeformConv", (x, w, free, bias, mask), attrs=attrs, opset=19, rtol=1e-4,
                        name="DeformConv-offset-ranges-bias-mask"))
    plain = (Operand((1, 2, 4, 4)), Operand((3, 2, 3, 3), low=-1.0, high=1.0), Operand((1, 18, 2, 2), low=-0.4,
                                                                                     high=0.4))
    cases.append(OpCase("DeformConv", plain, opset=19, rtol=1e-4, name="DeformConv-small-offsets"))
    masked = (*plain[:2], Operand((1, 18, 2, 2), value=_offsets((1, 18, 2, 2), 3)), None,
              Operand((1, 9, 2, 2), low=-1.0, high=1.0))
    cases.append(OpCase("DeformConv", masked, opset=19, rtol=1e-4, name="DeformConv-mask-without-bias"))
    return cases


CASES = _deform_conv()
