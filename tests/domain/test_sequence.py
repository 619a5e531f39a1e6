"""The sequence domain: canonical forms, soundness of joins (random lists drawn from either operand stay
inside the join), membership, mixed joins, and widening that makes an appending loop terminate."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from onnx import TensorProto

from ranum.domain.interval import Interval
from ranum.domain.sequence import SequenceValue, join_values, sequence_grows, sequence_widened, top_like
from ranum.ops.control import _grows, _widen

F32 = TensorProto.FLOAT


def _box(low: float, high: float, shape=(2,)) -> Interval:
    return Interval.uniform(low, high, shape, F32)


def _draw(value: SequenceValue, rng: np.random.Generator, longest: int = 5) -> list[torch.Tensor]:
    """A concrete list inside ``value`` (elements of unknown shape drawn as 2-vectors)."""
    most = longest if value.max_length is None else value.max_length
    count = value.length if value.length is not None else int(rng.integers(value.min_length, most + 1))
    out = []
    for k in range(count):
        bound = value.at(k)
        shape = bound.shape if bound.shape is not None else (2,)
        lo, hi = bound.min(), bound.max()
        out.append(torch.from_numpy(rng.uniform(lo, hi, size=shape).astype(np.float32)))
    return out


def test_a_certain_length_takes_the_per_position_form() -> None:
    seq = SequenceValue.bounded(2, 2, _box(0, 1), F32)
    assert seq.length == 2 and [(iv.min(), iv.max()) for iv in seq.items] == [(0.0, 1.0), (0.0, 1.0)]
    assert SequenceValue.bounded(0, 0, None, F32).length == 0
    with pytest.raises(ValueError):
        SequenceValue.bounded(3, 1, _box(0, 1), F32)
    with pytest.raises(ValueError):
        SequenceValue.bounded(0, None, None, F32)


def test_join_of_equal_lengths_is_per_position() -> None:
    a = SequenceValue.of([_box(0, 1), _box(10, 11)], F32)
    b = SequenceValue.of([_box(2, 3), _box(12, 13)], F32)
    joined = a.join(b)
    assert [(iv.min(), iv.max()) for iv in joined.items] == [(0, 3), (10, 13)]


@pytest.mark.parametrize("seed", range(5))
def test_joins_contain_every_list_of_either_operand(seed: int) -> None:
    rng = np.random.default_rng(seed)
    values = [SequenceValue.of([_box(0, 1)], F32), SequenceValue.of([_box(2, 3), _box(4, 5, (3,))], F32),
              SequenceValue.bounded(1, 4, _box(-1, 0), F32), SequenceValue.of((), F32),
              SequenceValue.bounded(0, None, _box(7, 8), F32)]
    for a in values:
        for b in values:
            joined = a.join(b)
            for side in (a, b):
                for _ in range(10):
                    drawn = _draw(side, rng)
                    assert joined.contains(drawn), (a, b, drawn)


def test_contains_checks_length_shape_and_values() -> None:
    seq = SequenceValue.of([_box(0, 1), _box(2, 3)], F32)
    assert seq.contains([torch.tensor([0.5, 1.0]), torch.tensor([2.0, 3.0])])
    assert not seq.contains([torch.tensor([0.5, 1.0])])
    assert not seq.contains([torch.tensor([0.5, 1.0]), torch.tensor([2.0, 3.5])])
    assert not seq.contains([torch.tensor([0.5]), torch.tensor([2.0, 3.0])])


def test_joining_a_tensor_with_a_sequence_gives_the_widest_tensor() -> None:
    joined = join_values(_box(0, 1), SequenceValue.of([_box(0, 1)], F32))
    assert isinstance(joined, Interval) and joined.shape is None and (joined.min(), joined.max()) == (-math.inf,
                                                                                                       math.inf)
    assert isinstance(top_like(SequenceValue.of([_box(0, 1)], F32)), SequenceValue)


def test_widening_an_appending_loop_terminates_with_unbounded_length() -> None:
    """The state of ``seq.append(x)`` from ``[]``, joined and widened as Loop's fixpoint does."""
    state, element = SequenceValue.of((), F32), _box(0, 1)
    for step in range(20):
        out = SequenceValue.bounded(state.min_length + 1, None if state.max_length is None else state.max_length + 1,
                                    element if state.element is None else state.element.join(element), F32)
        grown = state.join(out)
        if not sequence_grows(state, grown, _grows):
            break
        state = sequence_widened(state, grown, _widen) if step >= 2 else grown
    else:
        pytest.fail("the sequence state kept growing")
    assert state.min_length == 0 and state.max_length is None
    assert (state.element.min(), state.element.max()) == (0.0, 1.0)
