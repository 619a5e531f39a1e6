"""What a boolean mask says of the elements it selects, and reductions of a selection that may be empty.

``x[mask]`` exports as ``GatherND(x, Transpose(NonZero(mask)))`` (both exporters); ``Where(mask, x, y)``
selects x where the mask holds. A mask built of comparisons of x with constants, through Not, a true And and
a false Or, bounds the selected x. onnxruntime reduces a selection of no element to -inf (ReduceMax), +inf
(ReduceMin) or 0 (ReduceMean): the bounds must hold those where the selection may be empty. Every bound is
checked against onnxruntime, including on inputs that select nothing.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest

import ranum
from tests.zoo.runtime import Runner

_HEAD = '<ir_version: 8, opset_import: ["" : 17]>'

# (mask over x, what the selected x must satisfy: lowest value, or None where the mask says nothing of x)
MASKS = {
    "greater": ("m = Greater(x, eps)", 0.1),
    "not-less-or-nan": ("lt = Less(x, eps)\n nan = IsNaN(x)\n bad = Or(lt, nan)\n m = Not(bad)", 0.1),
    "and-of-two": ("a = GreaterOrEqual(x, eps)\n b = Less(x, one)\n m = And(a, b)", 0.1),
    "not-less-or-equal": ("le = LessOrEqual(x, eps)\n m = Not(le)", 0.1),
    # an Or that holds may hold for its other part: nothing is known of x
    "or-of-two": ("a = Greater(x, eps)\n b = Greater(z, eps)\n m = Or(a, b)", None),
    # a comparison of another tensor says nothing of x
    "other-tensor": ("m = Greater(z, eps)", None),
}


def _selection(mask: str, tail: str, out: str = "float y") -> onnx.ModelProto:
    return onnx.parser.parse_model(f"""{_HEAD}
    g (float[2, 8] x, float[2, 8] z) => ({out}) <float eps = {{0.1}}, float one = {{1.0}}> {{
        {mask}
        nz = NonZero(m)
        idx = Transpose<perm = [1, 0]>(nz)
        sel = GatherND(x, idx)
        {tail}
    }}""")


def _feeds(rng: np.random.Generator) -> list[dict[str, np.ndarray]]:
    """Random inputs, inputs at the threshold, and inputs that select nothing."""
    out = []
    for _ in range(10):
        x = rng.uniform(0.0, 1.0, (2, 8)).astype(np.float32)
        x[0, 0] = 0.1
        out.append({"x": x, "z": rng.uniform(0.0, 1.0, (2, 8)).astype(np.float32)})
    out.append({"x": np.zeros((2, 8), np.float32), "z": np.zeros((2, 8), np.float32)})
    return out


def _inside(model: onnx.ModelProto, analysis, names: list[str]) -> None:
    runner = Runner(model)
    for feeds in _feeds(np.random.default_rng(0)):
        values = runner.run(feeds)
        for name in names:
            lo, hi = analysis.bounds(name)
            value = values[name]
            assert np.all((lo.min() <= value) & (value <= hi.max())), (name, value)


@pytest.mark.parametrize("case", list(MASKS))
def test_the_elements_a_mask_selects_keep_what_it_says_of_them(case: str) -> None:
    mask, lowest = MASKS[case]
    model = _selection(mask, "l = Log(sel)\n y = ReduceSum<keepdims = 0>(l)")
    spec = {"inputs": {"x": [0.0, 1.0], "z": [0.0, 1.0]}}
    report = ranum.check(model, spec)
    lo, _ = report.analysis.bounds("sel")
    if lowest is None:
        assert float(lo.min()) == 0.0 and [f.op_type for f in report.findings] == ["Log"]
    else:
        assert float(lo.min()) >= lowest - 1e-7 and not report.findings, report.findings
    _inside(model, report.analysis, ["sel"])


@pytest.mark.parametrize("case", ["greater", "not-less-or-nan", "or-of-two"])
def test_a_where_keeps_what_its_combined_condition_says_of_its_branch(case: str) -> None:
    mask, lowest = MASKS[case]
    model = onnx.parser.parse_model(f"""{_HEAD}
    g (float[2, 8] x, float[2, 8] z) => (float[2, 8] y) <float eps = {{0.1}}, float one = {{1.0}}> {{
        {mask}
        w = Where(m, x, one)
        y = Log(w)
    }}""")
    report = ranum.check(model, {"inputs": {"x": [-1.0, 1.0], "z": [0.0, 1.0]}})
    lo, _ = report.analysis.bounds("w")
    assert (float(lo.min()) >= 0.1 - 1e-7) == (lowest is not None)
    assert bool(report.findings) == (lowest is None)
    _inside(model, report.analysis, ["w"])


@pytest.mark.parametrize("op, empty", [("ReduceMax", -np.inf), ("ReduceMin", np.inf), ("ReduceMean", 0.0)])
def test_a_reduction_of_a_selection_that_may_be_empty_holds_onnxruntimes_empty_result(op: str, empty: float
                                                                                       ) -> None:
    model = _selection("m = Greater(x, eps)", f"y = {op}<keepdims = 0>(sel)")
    analysis = ranum.analyze(model, {"inputs": {"x": [0.0, 1.0], "z": [0.0, 1.0]}})
    lo, hi = analysis.bounds("y")
    assert float(lo.min()) <= empty <= float(hi.max())
    if op == "ReduceMean":  # the mean of selected values above 0.1, or 0 for none
        assert float(hi.max()) <= 1.0 + 1e-3 and float(lo.min()) == 0.0
    _inside(model, analysis, ["y"])


def test_a_reduction_of_a_gather_by_static_indices_is_not_empty() -> None:
    """A Gather by 4 indices into a table of a length known only at run time (Unique's values) holds 4
    elements: its maximum is one of them, never onnxruntime's -inf of nothing."""
    model = onnx.parser.parse_model(f"""{_HEAD}
    g (float[8] x) => (float y) <int64[4] picks = {{0, 1, 0, 1}}> {{
        u, first, inverse, counts = Unique<sorted = 1>(x)
        s = Gather(u, picks)
        y = ReduceMax<keepdims = 0>(s)
    }}""")
    analysis = ranum.analyze(model, {"inputs": {"x": [0.0, 1.0]}})
    lo, hi = analysis.bounds("y")
    assert (float(lo.min()), float(hi.max())) == (0.0, 1.0)
