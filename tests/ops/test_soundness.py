"""Generic property tests over every registered rule (cases come from tests/ops/cases_*.py)."""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import TensorProto

import tests.ops as ops_tests
from ranum.ops import REGISTRY
from tests.ops.harness import OpCase, check_case, check_case_unbounded

# Operators exercised by dedicated tests instead of the one-node harness: subgraphs (If, Loop),
# randomness, and GroupNormalization (onnx shape inference gives its output no type, so the harness
# cannot build its one-node model; tests/ops/test_linear.py checks it against onnxruntime directly).
# Sequence operators read or produce sequences, which the one-node harness does not build:
# tests/ops/test_sequence.py compares them with onnxruntime. Likewise the optional operators, whose
# operands and results are optional values: tests/ops/test_optional.py. onnxruntime cannot run SwiGLU
# (tests/ops/test_swiglu.py compares it with onnxruntime's Swish and Mul).
COVERED_ELSEWHERE = {
    "SwiGLU",
    "If", "Loop", "RandomNormal", "RandomNormalLike", "RandomUniform", "RandomUniformLike", "Bernoulli",
    "GroupNormalization", "NonMaxSuppression",
    "ConcatFromSequence", "SequenceAt", "SequenceConstruct", "SequenceEmpty", "SequenceErase", "SequenceInsert",
    "SequenceLength", "SequenceMap", "SplitToSequence",
    "Optional", "OptionalGetElement", "OptionalHasElement",
}
# ZipMap's result is a sequence of maps, which the one-node harness does not compare:
# tests/ops/test_classical_ml.py checks it in a whole pipeline
COVERED_ELSEWHERE_IN_DOMAINS = {("ai.onnx.ml", "ZipMap")}


def _all_cases() -> list[OpCase]:
    cases: list[OpCase] = []
    for info in pkgutil.iter_modules(ops_tests.__path__):
        if info.name.startswith("cases_"):
            module = importlib.import_module(f"tests.ops.{info.name}")
            cases.extend(module.CASES)
    return cases


CASES = _all_cases()


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_rule_is_sound_and_agrees_with_onnxruntime(case: OpCase) -> None:
    _sound_for_drawn_seeds(case)


# A plain function, not the parametrized test itself: hypothesis's pytest plugin wraps a parametrized
# test's settings once more for every case, and past about 950 cases that nesting overflowed the stack.
@settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(seed=st.integers(0, 2**32 - 1))
def _sound_for_drawn_seeds(case: OpCase, seed: int) -> None:
    check_case(case, seed)


@pytest.mark.parametrize("sides", ["both", "above", "below"])
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_rule_is_sound_for_unbounded_operands(case: OpCase, sides: str) -> None:
    check_case_unbounded(case, seed=0, sides=sides)


# float32 operand ranges scaled by these: products and squares underflow into (or past) the subnormal range,
# or squares and sums overflow, where runtimes take other paths (a flushed variance, an infinite norm)
SCALES = (1e-38, 1e-20, 1e19)
# cases that scaling makes malformed: ROI boxes that leave every image, ranges past float32's largest value
UNSCALABLE = {"MaxRoiPool-free-rois", "MaxRoiPool-free-rois-positive", "Shrink-overflow", "BitCast-FLOAT-INT32-large"}


def _scaled(case: OpCase, scale: float) -> OpCase | None:
    """The case with every free float32 operand's range times ``scale`` (None: nothing to scale)."""
    operands = [dataclasses.replace(op, low=op.low * scale, high=op.high * scale)
                if op is not None and op.value is None and op.elem_type == TensorProto.FLOAT else op
                for op in case.inputs]
    if operands == list(case.inputs) or case.id in UNSCALABLE:
        return None
    return dataclasses.replace(case, inputs=tuple(operands), check_agreement=False)


SCALED = [(case, scale) for scale in SCALES for case in CASES if _scaled(case, scale) is not None]


@pytest.mark.parametrize(("case", "scale"), SCALED, ids=[f"{c.id}-x{s:g}" for c, s in SCALED])
def test_rule_is_sound_at_extreme_magnitudes(case: OpCase, scale: float) -> None:
    check_case(_scaled(case, scale), seed=0, points=4)


def test_every_registered_operator_has_a_case() -> None:
    covered = {(c.domain, c.op_type) for c in CASES} | {("", op) for op in COVERED_ELSEWHERE} \
        | COVERED_ELSEWHERE_IN_DOMAINS
    registered = {(domain, op) for domain, op in REGISTRY.versions()}
    missing = sorted(registered - covered)
    assert not missing, f"operators without a soundness case: {missing}"
