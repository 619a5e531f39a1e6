"""A sparsemax's support is never empty (``ranum/ops/_support_relations.py``): its threshold divides by the
count of positions that pass ``k z_k > cumsum(z)_k - 1``, which holds at k = 1. Checked against onnxruntime
on random rows, constant rows and rows of one large element."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

import ranum
from tests.zoo.runtime import Runner

# (how k z_k is written, the running sum's attributes, the constant subtracted, whether the support is proven)
FORMS = {
    "tabnet": ("m = Mul(ks, z)", "", "one", True),
    "entmax": ("m = Mul(z, ks)", "", "one", True),
    "less-swapped": ("m = Mul(ks, z)", "", "one", True),
    # a reversed running sum starts at the last position: its first element is no single z
    "reversed": ("m = Mul(ks, z)", "<reverse = 1>", "one", False),
    # nothing subtracted: z_1 > z_1 fails
    "no-constant": ("m = Mul(ks, z)", "", "zero", False),
    # a factor other than 1 at the first position
    "scaled": ("m = Mul(twos, z)", "", "one", False),
}


def _sparsemax(form: str, shifted: bool = True) -> onnx.ModelProto:
    product, attributes, constant, _ = FORMS[form]
    test = "gt = Less(t, m)" if form == "less-swapped" else "gt = Greater(m, t)"
    shift = "shifted = Sub(x, top)" if shifted else "shifted = Identity(x)"
    return onnx.parser.parse_model(f"""<ir_version: 8, opset_import: ["" : 17]>
    g (float[3, 6] x) => (float[3, 6] y) <int64[1] six = {{6}}, int64 last = {{-1}}, int64[1] lasts = {{-1}},
     float one = {{1.0}}, float zero = {{0.0}}, int64[1] ione = {{1}}, float[6] ks = {{1, 2, 3, 4, 5, 6}},
     float[6] twos = {{2, 2, 3, 4, 5, 6}}> {{
        top = ReduceMax<axes = [-1], keepdims = 1>(x)
        {shift}
        z, order = TopK<axis = -1, largest = 1, sorted = 1>(shifted, six)
        s = CumSum{attributes}(z, last)
        t = Sub(s, {constant})
        {product}
        {test}
        kept = Cast<to = 7>(gt)
        count = ReduceSum<keepdims = 1>(kept, lasts)
        at = Sub(count, ione)
        picked = GatherElements<axis = -1>(t, at)
        k = Cast<to = 1>(count)
        tau = Div(picked, k)
        d = Sub(shifted, tau)
        y = Relu(d)
    }}""")


@pytest.mark.parametrize("form", list(FORMS))
def test_a_sparsemax_support_holds_its_first_sorted_element(form: str) -> None:
    proven = FORMS[form][3]
    model = _sparsemax(form, shifted=False)  # unshifted: the first sorted value is not known to be 0
    report = ranum.check(model, {"inputs": {"x": [-10.0, 10.0]}})
    lo, hi = report.analysis.bounds("count")
    assert (int(lo.min()) >= 1) == proven
    assert (not [f for f in report.findings if f.op_type == "Div"]) == proven, report.findings
    runner = Runner(model)
    rng = np.random.default_rng(0)
    for _ in range(20):
        x = rng.uniform(-10, 10, (3, 6)).astype(np.float32)
        x[1] = x[1, 0]  # a constant row: every position ties
        x[2] = -10.0
        x[2, 3] = 10.0  # one large element: the support is that one
        values = runner.run({"x": x})
        for name in ("gt", "count", "y"):
            low, high = report.analysis.bounds(name)
            value = values[name]
            nan = np.isnan(value) if value.dtype.kind == "f" else np.zeros(value.shape, bool)
            assert not nan.any() or not proven, name  # 0 / 0 only where the support can be empty (a finding)
            assert np.all(nan | ((low <= value) & (value <= high))), name


@pytest.mark.parametrize("shifted", [True, False])
def test_a_row_shifted_by_its_maximum_sorts_to_exactly_zero_first(shifted: bool) -> None:
    """Past 2**24 an ulp of float32 exceeds 1, so ``z_1 > z_1 - 1`` may fail: a row of such values may have an
    empty support (a real 0 / 0). Shifted by its maximum, the row's first sorted value is exactly 0, and the
    support is proven whatever the magnitudes."""
    model = _sparsemax("tabnet", shifted=shifted)
    analysis = ranum.analyze(model, {"inputs": {"x": [-1e9, 1e9]}})
    lo, hi = analysis.bounds("z")
    assert ((float(lo[:, 0].min()), float(hi[:, 0].max())) == (0.0, 0.0)) == shifted
    assert (int(analysis.bounds("count")[0].min()) >= 1) == shifted
    x = np.full((3, 6), np.float32(3e8))
    values = Runner(model).run({"x": x})
    assert np.all((analysis.bounds("count")[0] <= values["count"]) & (values["count"] <= analysis.bounds("count")[1]))
