"""The optional domain: invariants, membership, soundness of joins (concrete optionals drawn from
either operand stay inside the join), mixed joins with plain values, top, and widening of a carried
optional."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from onnx import TensorProto

from ranum.domain.interval import Interval
from ranum.domain.optional import OptionalValue
from ranum.domain.sequence import SequenceValue, join_values, top_like
from ranum.ops.control import _grows, _widen

F32 = TensorProto.FLOAT


def _box(low: float, high: float, shape=(2,)) -> Interval:
    return Interval.uniform(low, high, shape, F32)


def _draw(value: OptionalValue, rng: np.random.Generator) -> torch.Tensor | None:
    """A concrete optional inside ``value`` (None when it may be empty and the draw says so)."""
    if value.value is None or value.may_be_empty and rng.random() < 0.3:
        return None
    lo, hi = value.value.full()
    return torch.from_numpy(rng.uniform(lo.numpy(), hi.numpy()).astype(np.float32))


def test_an_optional_that_holds_nothing_must_be_allowed_to_be_empty() -> None:
    with pytest.raises(ValueError, match="empty"):
        OptionalValue(F32, False, None)
    with pytest.raises(ValueError, match="sequence flag"):
        OptionalValue(F32, False, _box(0, 1), sequence=True)


def test_membership() -> None:
    held = OptionalValue.holding(_box(0, 1))
    assert held.contains(torch.tensor([0.5, 1.0])) and not held.contains(None)
    assert not held.contains(torch.tensor([0.5, 1.5])) and not held.contains(torch.tensor([0.5]))
    assert not held.contains([torch.tensor([0.5, 1.0])])  # a list is not a tensor
    empty = OptionalValue.empty(F32)
    assert empty.contains(None) and not empty.contains(torch.tensor([0.5, 0.5]))
    assert empty.surely_empty and not held.may_be_empty and held.surely_holds
    seq = OptionalValue.holding(SequenceValue.of([_box(0, 1)], F32), may_be_empty=True)
    assert seq.sequence and seq.contains([torch.tensor([0.0, 1.0])]) and seq.contains(None)
    assert not seq.contains(torch.tensor([0.0, 1.0]))


@pytest.mark.parametrize("seed", range(5))
def test_joins_contain_both_operands(seed: int) -> None:
    rng = np.random.default_rng(seed)
    values = [OptionalValue.empty(F32), OptionalValue.holding(_box(0, 1)), OptionalValue.holding(_box(-2, -1), True)]
    for a in values:
        for b in values:
            joined = a.join(b)
            assert joined.may_be_empty == (a.may_be_empty or b.may_be_empty)
            for _ in range(20):
                for side in (a, b):
                    assert joined.contains(_draw(side, rng)), (a, b)


def test_join_values_with_a_plain_value_may_be_empty_or_hold_it() -> None:
    joined = join_values(OptionalValue.holding(_box(0, 1)), _box(2, 3))
    assert isinstance(joined, OptionalValue) and joined.may_be_empty
    assert (joined.min(), joined.max()) == (0.0, 3.0)
    reversed_ = join_values(_box(2, 3), OptionalValue.empty(F32))
    assert isinstance(reversed_, OptionalValue) and reversed_.contains(torch.tensor([2.0, 3.0]))
    mixed = OptionalValue.holding(_box(0, 1)).join(OptionalValue.holding(SequenceValue.of([_box(0, 1)], F32)))
    assert isinstance(mixed.value, Interval) and mixed.value.shape is None and not mixed.sequence


def test_top_is_wide_and_keeps_the_kind() -> None:
    top = top_like(OptionalValue.holding(_box(0, 1)))
    assert isinstance(top, OptionalValue) and top.may_be_empty and top.value.shape == (2,)
    assert top.contains(torch.tensor([-1e30, 1e30])) and top.contains(None)
    top_seq = top_like(OptionalValue.empty(F32, sequence=True))
    assert top_seq.sequence and isinstance(top_seq.value, SequenceValue) and top_seq.contains([])
    assert np.isnan(OptionalValue.empty(F32).min()) and np.isnan(OptionalValue.empty(F32).max())


def test_widening_of_a_carried_optional_terminates() -> None:
    """An accumulator that starts empty and then grows each iteration reaches a fixpoint after widening."""
    state = OptionalValue.empty(F32)
    for step in range(1, 20):
        new = OptionalValue.holding(_box(0, float(step)))
        grown = state.join(new)
        if not _grows(state, grown):
            break
        state = _widen(state, grown) if step > 2 else grown
    assert not _grows(state, state.join(OptionalValue.holding(_box(0, 1e30))))
    assert state.may_be_empty and state.max() == Interval.top((2,), F32).max() and state.min() == 0.0
    assert _grows(OptionalValue.holding(_box(0, 1)), OptionalValue.holding(_box(0, 1), True))  # now may be empty
    assert not _grows(OptionalValue.empty(F32), OptionalValue.empty(F32))
