"""Whole-graph soundness: concrete runs inside the ranges stay inside ranum's intervals.

For every zoo model (buggy and fixed) and a few bigger synthetic models, inputs and weights are
sampled inside the ranges the analysis assumed (all-low, all-high, random corner mixes, uniform),
the model runs in onnxruntime with every intermediate tensor exposed, and each value must lie in
``Analysis.bounds`` (NaN excepted). A NaN at runtime must be explained by a finding on its node or
upstream; an infinity likewise, unless it flows from an infinite constant of the model itself.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping

import numpy as np
import onnx
import pytest

import ranum
from tests.zoo.models import MODELS
from tests.zoo.runtime import SAMPLE_MODES, Runner, check_sample, sample_feeds, sampled_tensors
from tests.zoo.synthetic import SYNTHETIC

_CASES: list[tuple[str, onnx.ModelProto, Mapping]] = [
    *[(m.id, m.model(), m.spec) for m in MODELS],
    *[(name, build(), {"inputs": {"x": [-1.0, 1.0]}}) for name, build in SYNTHETIC.items()],
]


@pytest.mark.parametrize(("label", "model", "spec"), _CASES, ids=[c[0] for c in _CASES])
def test_whole_graph_soundness(label: str, model: onnx.ModelProto, spec: Mapping) -> None:
    analysis = ranum.analyze(model, spec)
    initializers = {init.name for init in model.graph.initializer}
    fed = {name for name, _, _ in sampled_tensors(analysis)} & initializers
    runner = Runner(model, fed=fed)
    rng = np.random.default_rng(zlib.crc32(label.encode()))
    for mode in SAMPLE_MODES:
        feeds = sample_feeds(analysis, model, mode, rng)
        check_sample(analysis, runner.run(feeds), f"{label} [{mode}]")


@pytest.mark.parametrize("name", list(SYNTHETIC))
def test_synthetic_ops_supported(name: str) -> None:
    """The soundness check above is vacuous for a node without a rule (widest interval)."""
    analysis = ranum.analyze(SYNTHETIC[name](), {"inputs": {"x": [-1.0, 1.0]}})
    assert not analysis.unsupported, f"unsupported: {dict(analysis.unsupported)}"


def test_a_constant_grid_size_computed_with_pow_stays_exact() -> None:
    """``int(16 ** 0.5)`` (position-embedding grids): the float result 4.0 is exact, so the Cast gives 4
    and the Reshape it shapes is analysed; an inexact result would be widened by an ulp and cast to [3, 4]."""
    text = """
    <ir_version: 8, opset_import: ["" : 17]>
    g (float[16] x) => (float[a, b] y, float r) {
        n = Constant<value = float {16.0}>()
        half = Constant<value = float {0.5}>()
        side = Pow(n, half)
        side_int = Cast<to = 7>(side)
        one = Constant<value = int64[1] {1}>()
        side_1d = Reshape(side_int, one)
        shape = Concat<axis = 0>(side_1d, side_1d)
        y = Reshape(x, shape)
        three = Constant<value = float {3.0}>()
        r = Pow(three, half)
    }
    """
    analysis = ranum.analyze(onnx.parser.parse_model(text), {"inputs": {"x": [-1, 1]}})
    assert not analysis.unsupported
    assert analysis.bounds("y")[0].shape == (4, 4)
    lo, hi = analysis.bounds("r")  # sqrt(3) is not simple: widened around the float64 value
    assert float(lo) < 3**0.5 < float(hi)
