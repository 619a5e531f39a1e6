"""Control flow: If and Loop, evaluated through the run's subgraph runner.

Branches and bodies arrive as :class:`~ranum.graph.model.Graph` attributes; ``ctx.subgraphs`` runs
them in the current environment (outer-scope tensors visible), and the interpreter records every
subgraph tensor joined over all its evaluations. Neither rule computes a value itself, so neither
rounds (``rounds = False``).

Invariants:

* If: a condition decided by its interval runs only that branch (the other branch's tensors stay
  unrecorded: they are dead); an undecided condition joins the outputs of both branches.
* Loop, exact trip count of at most :data:`UNROLL_LIMIT`: the body is evaluated once per iteration
  (iteration number exact, condition input True, as it is whenever the body runs). Every iteration
  after which the loop may stop (trip count reached, or a condition output that may be False) is
  a possible exit; the final carried values are the join of the states at the possible exits.
  Scan outputs are stacked when the number of iterations is certain.
* Loop, otherwise: the body is iterated on the join of all carried states seen so far, with the
  iteration number ranging over every possible value, until the state no longer grows; after
  :data:`WIDEN_AFTER` joins, bounds that still grow jump to the dtype's extremes, which makes the
  iteration terminate. Evaluating the body on that fixpoint state covers every iteration, so its
  scan outputs bound every scan element.
* A scan output whose length is not certain gets an unknown shape (such an interval bounds every
  element; consumers get the widest interval). Static output shapes are not trusted for it: the
  loader sets unknown dimensions of graph outputs to 1, so a "static" length may be made up.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from onnx import TensorProto
from torch import Tensor

from ranum.domain.dtypes import torch_dtype
from ranum.domain.interval import Interval, align
from ranum.domain.optional import OptionalValue, optional_grows, optional_widened
from ranum.domain.sequence import SequenceValue, sequence_grows, sequence_widened, top_like
from ranum.errors import UnsupportedOperator
from ranum.graph.model import Graph, TensorInfo
from ranum.ops._base import OWN_RULE, NodeContext, OpRule, SubgraphRunner
from ranum.ops.registry import register

__all__ = ["If", "Loop", "UNROLL_LIMIT", "WIDEN_AFTER"]

UNROLL_LIMIT = 64  # exact trip counts up to this are unrolled
WIDEN_AFTER = 4  # joins of the loop state before growing bounds jump to the extremes
MAX_FIXPOINT_STEPS = 256  # safety net; widening converges long before (the state falls back to top)

INT64, BOOL = TensorProto.INT64, TensorProto.BOOL


def _runner(ctx: NodeContext) -> SubgraphRunner:
    if ctx.subgraphs is None:
        raise UnsupportedOperator(f"{ctx.node.op_type}: no subgraph runner in this context")
    return ctx.subgraphs


def _flag(value: Tensor) -> bool:
    """The single boolean of a concrete condition tensor."""
    return bool(value.reshape(-1)[0])


def _decided(condition: Interval | None) -> bool | None:
    """True/False when a condition interval is decided, None when it may be either."""
    if condition is None:
        return True
    if bool((condition.lower >= 1).all()):
        return True
    if bool((condition.upper <= 0).all()):
        return False
    return None


def _join_all(items: Sequence[Interval]) -> Interval:
    out = items[0]
    for item in items[1:]:
        out = out.join(item)
    return out


# ----------------------------------------------------------------------------- If
@register("If")
class If(OpRule):
    """Runs ``then_branch`` or ``else_branch``; outputs are that branch's outputs. The condition holds one
    element, so its bounds decide whether its shape is known or not (a test of a size computed from data)."""

    then_branch: Graph | None = None
    else_branch: Graph | None = None
    rounds = False
    unknown_shapes = OWN_RULE

    def __post_init__(self) -> None:
        if self.then_branch is None or self.else_branch is None:
            raise UnsupportedOperator("If: both then_branch and else_branch are required")

    def concrete(self, ctx: NodeContext, condition: Tensor) -> tuple[Tensor, ...]:
        branch = self.then_branch if _flag(condition) else self.else_branch
        return tuple(_runner(ctx).concrete(branch, []))

    def abstract(self, ctx: NodeContext, condition: Interval) -> tuple[Interval, ...]:
        runner = _runner(ctx)
        decided = _decided(condition)
        if decided is not None:
            return tuple(runner.abstract(self.then_branch if decided else self.else_branch, []))
        then_out = runner.abstract(self.then_branch, [])
        else_out = runner.abstract(self.else_branch, [])
        return tuple(a.join(b) for a, b in zip(then_out, else_out))


# ----------------------------------------------------------------------------- Loop helpers
def _scalar_shape(info: TensorInfo | None) -> tuple[int, ...]:
    """Shape of the iteration number / condition the body declares (a scalar unless it says [1])."""
    if info is None or info.shape is None or len(info.shape) > 1 or any(n != 1 for n in info.shape):
        return ()
    return info.shape


def _counter(body: Graph, i: int) -> Tensor:
    return torch.tensor(i, dtype=torch.int64).reshape(_scalar_shape(body.inputs[0]))


def _true(body: Graph) -> Tensor:
    return torch.tensor(True).reshape(_scalar_shape(body.inputs[1]))


def _scan_type(ctx: NodeContext, element: TensorInfo, index: int) -> int:
    """Element type of the node's output ``index``, a scan output whose elements the body output ``element`` gives."""
    return ctx.output_type(index, element.elem_type)


def _element_shape(ctx: NodeContext, element: TensorInfo, index: int, axis: int = 0) -> tuple[int, ...] | None:
    """Shape of one scan element: the body output's, else the node output's without its scan ``axis``."""
    shape = element.shape
    if shape is None and index < len(ctx.output_shapes) and ctx.output_shapes[index]:
        outer = ctx.output_shapes[index]
        axis %= len(outer)
        shape = tuple(outer[:axis]) + tuple(outer[axis + 1:])
    return shape


def _empty_shape(shape: tuple[int, ...], axis: int) -> tuple[int, ...]:
    """``shape`` with a scan axis of length 0 inserted at ``axis`` (counted on the scan output's rank)."""
    axis %= len(shape) + 1
    return shape[:axis] + (0,) + shape[axis:]


def _empty_tensor(ctx: NodeContext, element: TensorInfo, index: int, axis: int = 0) -> Tensor:
    """A scan output without elements (an unknown element shape is taken as a scalar's)."""
    shape = _empty_shape(_element_shape(ctx, element, index, axis) or (), axis)
    return torch.empty(shape, dtype=torch_dtype(_scan_type(ctx, element, index)))


def _stack(items: Sequence[Interval], budget: int) -> Interval:
    """Scan output of a certain length: per-iteration intervals stacked on a new leading axis."""
    shapes = {item.shape for item in items}
    if len(shapes) != 1 or None in shapes:
        return _join_all(items)
    shape = items[0].shape
    splits, bounds = align(items, shape)
    lower = torch.stack([lo for lo, _ in bounds])
    upper = torch.stack([hi for _, hi in bounds])
    return Interval.create(lower, upper, (tuple(range(len(items))),) + splits, (len(items),) + shape,
                           items[0].elem_type, budget)


def _repeat(element: Interval, count: int) -> Interval:
    """Scan output of a certain length whose every element lies in ``element``."""
    if element.shape is None:
        return element
    return Interval.create(element.lower.unsqueeze(0), element.upper.unsqueeze(0),
                           ((0,) if count > 0 else (),) + element.splits, (count,) + element.shape,
                           element.elem_type)


def _unknown_length(elements: Sequence[Interval]) -> Interval:
    """Scan output of uncertain length: unknown shape, every element in the join of all scan elements."""
    joined = _join_all(elements)
    if joined.numblocks == 0:
        return Interval.top(None, joined.elem_type)
    return Interval.create(joined.lower.min(), joined.upper.max(), (), None, joined.elem_type)


def _empty_scan(ctx: NodeContext, element: TensorInfo, index: int, axis: int = 0) -> Interval:
    """The interval of a scan output without elements (unknown shape if the element shape is unknown)."""
    elem_type = _scan_type(ctx, element, index)
    shape = _element_shape(ctx, element, index, axis)
    if shape is None:
        return Interval.top(None, elem_type)
    return Interval.uniform(0, 0, _empty_shape(shape, axis), elem_type)


# ----------------------------------------------------------------------------- widening
def _grows(old: Interval, new: Interval) -> bool:
    """Whether ``new`` has a value outside ``old``."""
    if isinstance(old, SequenceValue):  # a carried sequence (e.g. a list appended to in the body)
        return sequence_grows(old, new, _grows)
    if isinstance(old, OptionalValue):  # a carried optional (e.g. "the best so far, if any")
        return optional_grows(old, new, _grows)
    if old.shape != new.shape or old.shape is None:
        return old.shape != new.shape or bool(new.lower < old.lower) or bool(new.upper > old.upper)
    _, ((lo_old, hi_old), (lo_new, hi_new)) = align([old, new], old.shape)
    return bool((lo_new < lo_old).any() or (hi_new > hi_old).any())


def _widen(old: Interval, new: Interval) -> Interval:
    """``new`` (which contains ``old``) with every bound that grew moved to the dtype's extreme."""
    if isinstance(old, SequenceValue):
        return sequence_widened(old, new, _widen)
    if isinstance(old, OptionalValue):
        return optional_widened(old, new, _widen)
    if old.shape != new.shape or old.shape is None:
        return Interval.top(None, new.elem_type)
    top = Interval.top(new.shape, new.elem_type)
    splits, ((lo_old, hi_old), (lo_new, hi_new)) = align([old, new], old.shape)
    low = torch.where(lo_new < lo_old, top.lower.reshape(()).to(lo_new.dtype), lo_new) \
        if top.numblocks else lo_new
    high = torch.where(hi_new > hi_old, top.upper.reshape(()).to(hi_new.dtype), hi_new) \
        if top.numblocks else hi_new
    return Interval.create(low, high, splits, new.shape, new.elem_type)


def _iterate(step: Callable[[list[Interval]], list[Interval]], carried: Sequence[Interval],
             first: int) -> tuple[list[Interval], list[Interval]]:
    """Iterate a body on the join of all states seen, widening after :data:`WIDEN_AFTER` joins.

    Args:
        step: the body's outputs for a state; the new state is ``outputs[first:first + len(carried)]``.
        carried: the initial state.
        first: position of the new state among the body's outputs.

    Returns:
        The fixpoint state (it holds every state reached) and the body's outputs on it.
    """
    n, state = len(carried), list(carried)
    for count in range(MAX_FIXPOINT_STEPS):
        outs = step(state)
        grown = [old.join(new) for old, new in zip(state, outs[first:first + n])]
        if not any(_grows(old, new) for old, new in zip(state, grown)):
            return state, outs
        state = [_widen(old, new) for old, new in zip(state, grown)] if count >= WIDEN_AFTER else grown
    state = [top_like(s) for s in state]
    return state, step(state)


# ----------------------------------------------------------------------------- Loop
@register("Loop")
class Loop(OpRule):
    """``for i in range(M) while cond``: body(i, cond, carried...) -> (cond, carried..., scans...)."""

    body: Graph | None = None
    rounds = False

    def __post_init__(self) -> None:
        if self.body is None:
            raise UnsupportedOperator("Loop: the body attribute is required")

    def _check_body(self, carried: int) -> Graph:
        body = self.body
        if len(body.inputs) != 2 + carried or len(body.outputs) < 1 + carried:
            raise UnsupportedOperator(
                f"Loop: body has {len(body.inputs)} typed inputs and {len(body.outputs)} outputs for "
                f"{carried} loop-carried values (expected {2 + carried} inputs, at least {1 + carried} outputs)")
        return body

    # ------------------------------------------------------------------------- concrete
    def concrete(self, ctx: NodeContext, trip: Tensor | None, condition: Tensor | None,
                 *carried: Tensor) -> tuple[Tensor, ...]:
        body, runner, n = self._check_body(len(carried)), _runner(ctx), len(carried)
        limit = None if trip is None else int(trip.reshape(-1)[0])
        flag = _true(body) if condition is None else condition
        state, scans, i = list(carried), [[] for _ in body.outputs[1 + n:]], 0
        while _flag(flag) and (limit is None or i < limit):
            outs = runner.concrete(body, [_counter(body, i), flag, *state])
            flag, state = outs[0], list(outs[1:1 + n])
            for column, value in zip(scans, outs[1 + n:]):
                column.append(value)
            i += 1
        return tuple(state) + tuple(torch.stack(column) if column else _empty_tensor(ctx, element, n + j)
                                    for j, (column, element) in enumerate(zip(scans, body.outputs[1 + n:])))

    # ------------------------------------------------------------------------- abstract
    def abstract(self, ctx: NodeContext, trip: Interval | None, condition: Interval | None,
                 *carried: Interval) -> tuple[Interval, ...]:
        body = self._check_body(len(carried))
        exact = trip is not None and trip.is_exact
        if exact and int(trip.exact_value().reshape(-1)[0]) <= UNROLL_LIMIT:
            return self._unrolled(ctx, body, int(trip.exact_value().reshape(-1)[0]), condition, carried)
        settled = self._settled(ctx, body, None if trip is None else _count_bounds(trip), condition, carried)
        return settled if settled is not None else self._fixpoint(ctx, body, trip, condition, carried)

    def _settled(self, ctx: NodeContext, body: Graph, counts: tuple[int, int] | None, condition: Interval | None,
                 carried: Sequence[Interval]) -> tuple[Interval, ...] | None:
        """The loop unrolled where its condition is decided at every iteration and stops it within
        ``UNROLL_LIMIT`` iterations: a while loop over a known count, as the dynamo exporter writes ``for``
        loops (no trip count, the condition ``i + 1 < n``). A trip count of ``counts`` (least, most) may stop
        it after any number of iterations from its least on: those states are joined. None otherwise."""
        least, most = counts if counts is not None else (UNROLL_LIMIT + 1, UNROLL_LIMIT + 1)
        if _decided(condition) is not True or most <= UNROLL_LIMIT:
            return None  # (a trip count this small is unrolled as such)
        runner, n = _runner(ctx), len(carried)
        state, iterations = list(carried), []
        exits: list[tuple[int, list[Interval]]] = [(0, state)] if least == 0 else []
        while len(iterations) < UNROLL_LIMIT:
            inputs = [Interval.point(_counter(body, len(iterations)), INT64), Interval.point(_true(body), BOOL)]
            outs = runner.abstract(body, inputs + state)
            state = list(outs[1:1 + n])
            iterations.append(list(outs[1 + n:]))
            decided = _decided(outs[0])
            if decided is None:
                return None
            if decided is False or len(iterations) >= least:
                exits.append((len(iterations), state))
            if decided is False:
                final = [_join_all([s[k] for _, s in exits]) for k in range(n)]
                stops = {count for count, _ in exits}
                scans = [self._unrolled_scan(ctx, body, n, j, iterations, stops)
                         for j in range(len(body.outputs) - 1 - n)]
                return tuple(final + scans)
        return None

    def _unrolled(self, ctx: NodeContext, body: Graph, trip: int, condition: Interval | None,
                  carried: Sequence[Interval]) -> tuple[Interval, ...]:
        """One body evaluation per iteration; exits joined where the loop may stop."""
        runner, n = _runner(ctx), len(carried)
        state, decided = list(carried), _decided(condition)
        exits: list[tuple[int, list[Interval]]] = [] if decided and trip > 0 else [(0, state)]
        iterations: list[list[Interval]] = []
        while decided is not False and len(iterations) < trip:
            inputs = [Interval.point(_counter(body, len(iterations)), INT64), Interval.point(_true(body), BOOL)]
            outs = runner.abstract(body, inputs + state)
            state, decided = list(outs[1:1 + n]), _decided(outs[0])
            iterations.append(list(outs[1 + n:]))
            if decided is not True or len(iterations) == trip:
                exits.append((len(iterations), state))
        final = [_join_all([s[k] for _, s in exits]) for k in range(n)]
        counts = {count for count, _ in exits}
        scans = [self._unrolled_scan(ctx, body, n, j, iterations, counts) for j in range(len(body.outputs) - 1 - n)]
        return tuple(final + scans)

    def _unrolled_scan(self, ctx: NodeContext, body: Graph, n: int, j: int,
                       iterations: list[list[Interval]], counts: set[int]) -> Interval:
        if counts == {0} or not iterations:
            return _empty_scan(ctx, body.outputs[1 + n + j], n + j)
        column = [outs[j] for outs in iterations]
        if len(counts) == 1:
            return _stack(column[:counts.pop()], ctx.budget)
        return _unknown_length(column)

    def _fixpoint(self, ctx: NodeContext, body: Graph, trip: Interval | None, condition: Interval | None,
                  carried: Sequence[Interval]) -> tuple[Interval, ...]:
        """Iterate the body on the joined state, widening, until the state stops growing."""
        n, count = len(carried), _count_bounds(trip)
        if count[1] <= 0 or _decided(condition) is False:
            elements = body.outputs[1 + n:]
            return tuple(carried) + tuple(_empty_scan(ctx, element, n + j) for j, element in enumerate(elements))
        state, outs = self._iterate(ctx, body, count[1], carried)
        scans = outs[1 + n:]
        certain = count[0] == count[1] and _decided(condition) is True and _decided(outs[0]) is True
        shaped = [_repeat(s, count[0]) if certain else _unknown_length([s]) for s in scans]
        return tuple(state) + tuple(shaped)

    def _iterate(self, ctx: NodeContext, body: Graph, most: int,
                 carried: Sequence[Interval]) -> tuple[list[Interval], list[Interval]]:
        """The fixpoint state and the body's outputs on it (iteration numbers 0 to ``most`` - 1)."""
        runner = _runner(ctx)
        counter = Interval.point(_counter(body, 0), INT64)
        counter = counter.with_bounds(counter.lower, torch.full_like(counter.upper, most - 1))
        flag = Interval.point(_true(body), BOOL)
        return _iterate(lambda state: runner.abstract(body, [counter, flag] + state), carried, 1)


def _count_bounds(trip: Interval | None) -> tuple[int, int]:
    """Smallest and largest trip count (an absent M is unbounded)."""
    if trip is None:
        return 0, torch.iinfo(torch.int64).max
    return max(int(trip.lower.min()), 0), max(int(trip.upper.max()), 0)
