"""Ratios within one set's range (``ranum/ops/_range_relations.py``): HSV and HLS conversions divide
channel differences by the channels' spread, guarded where it is 0. Every bound is checked against
onnxruntime on random pixels, grey pixels (spread 0) and pixels whose channels differ by one ulp."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

import ranum
from tests.zoo.runtime import Runner

_HEAD = '<ir_version: 8, opset_import: ["" : 17]>'
_CONSTANTS = "<float zero = {0.0}, float one = {1.0}, float two = {2.0}, float sixth = {0.1666667}, " \
             "int64[3] ones = {1, 1, 1}, int64[1] ax = {1}, int64 i0 = {0}, int64 i1 = {1}, int64 i2 = {2}, " \
             "int64[1] s0 = {0}, int64[1] e1 = {1}, int64[1] e2 = {2}, int64[1] e3 = {3}>"

# members of the channel axis (r, g, b) as exporters write them
MEMBERS = {
    "split": "r3, g3, b3 = Split<axis = 1>(x, ones)\n r = Squeeze(r3, ax)\n g = Squeeze(g3, ax)\n b = Squeeze(b3, ax)",
    "gather": "r = Gather<axis = 1>(x, i0)\n g = Gather<axis = 1>(x, i1)\n b = Gather<axis = 1>(x, i2)",
    "slice": "r3 = Slice(x, s0, e1, ax)\n r = Squeeze(r3, ax)\n g = Gather<axis = 1>(x, i1)\n"
             " b = Gather<axis = 1>(x, i2)",
    # the extremes keep the channel axis (keepdims 1), and so do the members
    "kept": "r = Slice(x, s0, e1, ax)\n g = Slice(x, e1, e2, ax)\n b = Slice(x, e2, e3, ax)",
}

# (numerator, divisor, lowest, highest[, slack]): a torchvision / kornia step, the quotient's real range,
# and how far the bounds may lie outside it
RATIOS = {
    "value-over-range": ("n = Sub(hi, r)", "cr", 0.0, 1.0),
    "difference-over-range": ("n = Sub(g, b)", "cr", -1.0, 1.0),
    # kornia's hue: a sextant offset of 2 d added to a difference of two "max - channel" terms
    "hue-sextant": ("t = Sub(hi, r)\n u = Sub(hi, b)\n v = Sub(t, u)\n w = Mul(cd, two)\n n = Add(v, w)", "cr",
                    1.0, 3.0),
    "hue-branches": ("t = Sub(hi, r)\n u = Sub(hi, g)\n v = Sub(t, u)\n w = Mul(cd, two)\n p = Add(v, w)\n"
                     " q = Sub(g, b)\n c = Greater(r, g)\n n = Where(c, q, p)", "cr", -1.0, 3.0),
    # a product by 1/6 of a subnormal difference rounds by up to half a subnormal: half the least spread
    "scaled-difference": ("t = Sub(r, g)\n n = Mul(t, sixth)", "cr", -1 / 6, 1 / 6, 1.01),
    # saturation: (max - min) / max, for values >= 0
    "range-over-max": ("n = Sub(hi, lo)", "hi", 0.0, 1.0),
    "channel-over-max": ("n = Identity(g)", "hi", 0.0, 1.0),
}


def _model(members: str, numerator: str, spread: str, guarded: bool = True, keepdims: int = 0) -> onnx.ModelProto:
    z = "float[2, 1, 4, 4] z" if keepdims else "float[2, 4, 4] z"
    guard = "eq = Equal(hi, lo)\n cd = Where(eq, one, {s})" if guarded else "cd = Identity({s})"
    return onnx.parser.parse_model(f"""{_HEAD}
    g (float[2, 3, 4, 4] x, {z}) => (float[Q] y) {_CONSTANTS} {{
        hi = ReduceMax<axes = [1], keepdims = {keepdims}>(x)
        lo = ReduceMin<axes = [1], keepdims = {keepdims}>(x)
        cr = Sub(hi, lo)
        {members}
        {guard.format(s=spread)}
        {numerator}
        y = Div(n, cd)
    }}""")


def _pixels(rng: np.random.Generator, low: float, high: float) -> list[np.ndarray]:
    """Random images, with grey pixels (all channels equal), pixels whose channels differ by one ulp or
    one subnormal, and a black image."""
    images = []
    for _ in range(12):
        x = rng.uniform(low, high, (2, 3, 4, 4)).astype(np.float32)
        x[:, :, 0, 0] = x[:, :1, 0, 0]  # grey
        base = np.float32(rng.uniform(max(low, 0.0), high))
        x[:, :, 1, 1] = [base, np.nextafter(base, np.float32(2)), base]
        x[:, :, 2, 2] = [0.0, np.float32(1e-45), 0.0]
        images.append(x)
    images.append(np.zeros((2, 3, 4, 4), np.float32))
    return images


def _rank(value_info: onnx.ValueInfoProto) -> int:
    return len(value_info.type.tensor_type.shape.dim)


def _inside(model: onnx.ModelProto, analysis, low: float, high: float, names: list[str]) -> None:
    runner = Runner(model)
    for x in _pixels(np.random.default_rng(0), low, high):
        feeds = {"x": x, "z": x[:, 0], "z-kept": x[:, :1]}  # z: another tensor than the set
        values = runner.run({i.name: feeds[i.name if i.name != "z" or _rank(i) == 3 else "z-kept"]
                             for i in model.graph.input})
        for name in names:
            lo, hi = analysis.bounds(name)
            value = values[name]
            assert not np.isnan(value).any(), name
            assert ((lo <= value) & (value <= hi)).all(), (name, float(value.min()), float(value.max()))


@pytest.mark.parametrize("members", list(MEMBERS))
@pytest.mark.parametrize("ratio", list(RATIOS))
def test_a_ratio_within_one_sets_range_is_bounded_and_sound(members: str, ratio: str) -> None:
    numerator, spread, lowest, highest, *slack = RATIOS[ratio]
    allowed = slack[0] if slack else 1e-5
    model = _model(MEMBERS[members], numerator, spread, keepdims=int(members == "kept"))
    report = ranum.check(model, {"inputs": {"x": [0.0, 1.0]}, "weights": {"default": "exact"}})
    assert not report.findings, [(f.node, f.hazard_id) for f in report.findings]
    lo, hi = report.analysis.bounds("y")
    assert lowest - allowed <= float(lo.min()) <= lowest and highest <= float(hi.max()) <= highest + allowed
    _inside(model, report.analysis, 0.0, 1.0, ["y", "cd"])


def test_the_maximum_kept_as_an_axis_broadcasts_onto_the_channels() -> None:
    model = onnx.parser.parse_model(f"""{_HEAD}
    g (float[2, 3, 4, 4] x) => (float[Q] y) {_CONSTANTS} {{
        hi = ReduceMax<axes = [1], keepdims = 0>(x)
        lo = ReduceMin<axes = [1], keepdims = 0>(x)
        cr = Sub(hi, lo)
        eq = Equal(cr, zero)
        cd = Where(eq, one, cr)
        wide = Unsqueeze(hi, ax)
        gaps = Sub(wide, x)
        r3, g3, b3 = Split<axis = 1>(gaps, ones)
        gr = Squeeze(r3, ax)
        gb = Squeeze(b3, ax)
        n = Sub(gb, gr)
        y = Div(n, cd)
    }}""")
    report = ranum.check(model, {"inputs": {"x": [0.0, 1.0]}})
    assert not report.findings, [(f.node, f.hazard_id) for f in report.findings]
    lo, hi = report.analysis.bounds("y")
    assert -1.0 - 1e-5 <= float(lo.min()) and float(hi.max()) <= 1.0 + 1e-5
    _inside(model, report.analysis, 0.0, 1.0, ["y", "cd"])


NOT_RELATED = {
    # 0 / 0 where every channel is equal: a real NaN
    "unguarded": ("n = Sub(hi, r)", "cr", False, -0.0),
    # (max - min) / max with negative values: max can be 0 with min below it
    "over-max-of-signed-values": ("n = Sub(hi, lo)", "hi", True, -1.0),
    # the coefficients do not cancel: max + r is no multiple of the spread
    "not-a-difference": ("n = Add(hi, r)", "cr", True, 0.0),
    # a tensor outside the set
    "other-tensor": ("n = Sub(hi, z)", "cr", True, 0.0),
}


@pytest.mark.parametrize("case", list(NOT_RELATED))
def test_a_ratio_the_relation_does_not_cover_keeps_its_interval(case: str) -> None:
    numerator, spread, guarded, low = NOT_RELATED[case]
    model = _model(MEMBERS["gather"], numerator, spread, guarded=guarded)
    report = ranum.check(model, {"inputs": {"x": [low, 1.0], "z": [0.0, 1.0]}})
    lo, hi = report.analysis.bounds("y")
    assert float(hi.max()) > 1e6 or float(lo.min()) < -1e6
    zero_divisor = {f.hazard_id for f in report.findings} & {"division-by-zero", "divide-by-zero"}
    assert bool(zero_divisor) == (case in ("unguarded", "over-max-of-signed-values")), report.findings


def test_a_guarded_maximum_of_non_negative_values_is_above_zero() -> None:
    model = _model(MEMBERS["gather"], "n = Identity(r)", "hi")
    analysis = ranum.analyze(model, {"inputs": {"x": [0.0, 1.0]}})
    lo, _ = analysis.bounds("cd")
    assert float(lo.min()) > 0.0
    signed = ranum.analyze(model, {"inputs": {"x": [-1.0, 1.0]}})
    assert float(signed.bounds("cd")[0].min()) < 0.0
