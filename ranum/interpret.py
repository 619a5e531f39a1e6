"""One graph walk, in abstract (intervals) or concrete (torch tensors) mode.

The environment of values is local to one run. Abstract mode records, for every tensor of the
graph and of its subgraphs, the join of all intervals it took (a Loop body runs many times), plus
the rule used at each node and the nodes that had no usable rule. Exact inputs take a fast path:
the concrete rule runs on the values and the result stays exact (rounded outward for float ops).

A value is an :class:`Interval` for a tensor and a :class:`SequenceValue` for a sequence of tensors
(a Python list of tensors in concrete mode). Only rules that read sequences (the sequence operators,
Identity, If, Loop) receive them; the fast path takes exact tensors only, and a rule whose concrete
result is a sequence gets its abstract rule instead. Nodes without a rule give sequence-typed outputs
the widest sequence. Optionals (:class:`OptionalValue`; None or the held value in concrete mode)
follow the same pattern: only rules that read them receive them, the fast path never produces one
(a node with an optional output gets its abstract rule), and nodes without a rule give
optional-typed outputs the widest optional (empty, or holding anything).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import warnings
from collections import ChainMap
from collections.abc import Iterator, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from onnx import TensorProto
from torch import Tensor

from ranum.config import AnalysisConfig
from ranum.domain.dtypes import elem_type_of, is_float, is_held
from ranum.domain.interval import Interval, has_nan
from ranum.domain.optional import OptionalValue
from ranum.domain.sequence import SequenceValue, Value, join_values
from ranum.errors import AnalysisError, InconsistentShapes, RunTimeOperand, UnsupportedOperator
from ranum.graph._type_constraints import operand_type_error
from ranum.graph.model import Graph, Node
from ranum.ops import REGISTRY
from ranum.ops._base import COPIES, COPIES_ALL, COUNTS, ELEMENTWISE, HULLS, OWN_RULE, NodeContext, OpRule, full_shape
from ranum.ops._counts import largest_dimension, most_elements
from ranum.ops._exact_results import exact_points
from ranum.ops._tensor_norms import NORM_CAPPED, capped_by_norm
from ranum.ops.hazards import FORWARD, HazardHit, Overflow
from ranum.ops.registry import Registry

__all__ = ["AbstractRun", "ConcreteRun", "gradient_scalars_quiet", "run_abstract", "run_concrete"]

# rules whose outputs are bounded from their operands' hulls when their shapes are not known statically
_COPYING = frozenset({COPIES, COPIES_ALL, COUNTS, HULLS})
_READS_UINT64 = frozenset({"Cast", "CastLike"})  # rules that read int64-held uint64 bounds as unsigned values
_INT64_MAX = torch.iinfo(torch.int64).max


def _past_int64(value: Value | None) -> bool:
    """Whether a uint64 interval may hold values past 2**63 - 1, which its int64 bounds cannot say as numbers
    (the saturated top, or negative bit patterns)."""
    return isinstance(value, Interval) and value.elem_type == TensorProto.UINT64 and value.numblocks > 0 \
        and (value.min() < 0 or value.max() >= _INT64_MAX)

log = logging.getLogger(__name__)


@dataclass
class AbstractRun:
    """Everything one abstract run computed."""

    graph: Graph
    # tensor name -> its Interval, its SequenceValue for a sequence of tensors, its OptionalValue for an optional
    env: dict[str, Value] = field(default_factory=dict)
    rules: dict[str, OpRule] = field(default_factory=dict)
    # nodes whose operator (or this use of it) has no rule, with the reason
    unsupported: dict[str, str] = field(default_factory=dict)
    # every node whose rule did not run (the unsupported ones, and those with an operand whose shape
    # is known only at run time), with the reason: their outputs are top, their hazards unchecked
    not_analysed: dict[str, str] = field(default_factory=dict)
    nodes: list[Node] = field(default_factory=list)
    # constants that hold NaN (initializers, Constant nodes): intervals do not hold NaN, so they are named here
    nan_constants: set[str] = field(default_factory=set)
    # overflows seen in one evaluation of a subgraph's node (node name -> its hazard's index -> the hit): its
    # intervals are joined over evaluations, and a later iteration's infinite operand hides an earlier one's
    # overflow from finite operands, which the check on the joined intervals requires (detection reads these)
    subgraph_overflows: dict[str, dict[int, HazardHit]] = field(default_factory=dict)

    def record(self, name: str, value: Value) -> None:
        """Remember a tensor's interval (or sequence value), joined with what it took before (subgraph re-runs)."""
        old = self.env.get(name)
        self.env[name] = value if old is None else join_values(old, value)


@contextlib.contextmanager
def gradient_scalars_quiet() -> Iterator[None]:
    """Silence torch's warning on ``float()`` of a tensor that carries a gradient, for abstract runs over bounds
    that do (confirm's robust box, fix's clip search): rules read such scalars to choose a case, on purpose."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Converting a tensor with requires_grad", category=UserWarning)
        yield


def run_abstract(
    graph: Graph,
    initial: Mapping[str, Value],
    config: AnalysisConfig | None = None,
    registry: Registry = REGISTRY,
) -> AbstractRun:
    """Propagate intervals through ``graph`` from the intervals of its inputs and initializers."""
    walker = _AbstractWalker(graph, config or AnalysisConfig(), registry)
    return walker.run(initial)


class _AbstractWalker:
    def __init__(self, graph: Graph, config: AnalysisConfig, registry: Registry) -> None:
        self.graph = graph
        self.config = config
        self.registry = registry
        self.result = AbstractRun(graph)
        self._rule_cache: dict[int, OpRule | None] = {}
        self._producers = {out: node for node in graph.all_nodes() for out in node.outputs if out}
        self._consumers: dict[str, list[Node]] = {}
        for node in graph.all_nodes():
            for name in dict.fromkeys(node.inputs):
                if name:
                    self._consumers.setdefault(name, []).append(node)
        self._memo: dict = {}

    def run(self, initial: Mapping[str, Value]) -> AbstractRun:
        env: dict[str, Value] = dict(initial)
        for name, value in initial.items():
            self.result.record(name, value)
        self._walk(self.graph, env)
        seen: set[int] = set()
        for node in self.graph.all_nodes():
            if id(node) not in seen:
                seen.add(id(node))
                self.result.nodes.append(node)
        return self.result

    # SubgraphRunner protocol --------------------------------------------------------------
    def abstract(self, graph: Graph, inputs: Sequence[Value | None]) -> list[Value]:
        local: MutableMapping[str, Value] = ChainMap({}, self._scope[-1])
        for info, value in zip(graph.inputs, inputs):
            if value is not None:
                local[info.name] = value
                self.result.record(info.name, value)
        for name, proto in graph.initializers.items():
            from ranum.graph.loader import tensor_value

            value = Interval.point(torch.from_numpy(tensor_value(proto).copy()), proto.data_type)
            local[name] = value
        self._memo.clear()  # facts about tensors that a subgraph run may change
        try:
            self._walk(graph, local)
        finally:
            self._memo.clear()
        return [local[o.name] for o in graph.outputs]

    def concrete(self, graph: Graph, inputs: Sequence[Tensor | None]) -> list[Tensor]:
        raise AnalysisError("concrete subgraph evaluation requested during an abstract run")

    # GraphView protocol ---------------------------------------------------------------------
    def producer(self, name: str) -> Node | None:
        return self._producers.get(name)

    def consumers(self, name: str) -> Sequence[Node]:
        return self._consumers.get(name, ())

    def interval(self, name: str) -> Interval | None:
        value = self._scope[-1].get(name) if self._scope else None
        return value if isinstance(value, Interval) else None

    @property
    def memo(self) -> dict:
        return self._memo

    def nan_free(self, name: str) -> bool:
        """Whether tensor ``name`` is never NaN: every tensor it is computed from has finite bounds (no
        infinity, so no ``inf - inf`` or ``0 * inf``), no constant among them holds NaN, and no node on the
        way has a forward hazard that can fire (NaN from finite operands is always such a hazard: 0 / 0,
        log or sqrt of a negative value...), was left unanalysed or runs a subgraph. Graph inputs and
        weights take values in their (finite) assumed ranges; a subgraph's own inputs count as unsure."""
        key = ("nan-free", name)
        if key not in self._memo:
            visited: set[str] = set()
            free = self._nan_free_upstream(name, visited)
            if free:
                self._memo.update({("nan-free", seen): True for seen in visited})
            self._memo[key] = free
        return self._memo[key]

    def _nan_free_upstream(self, name: str, visited: set[str]) -> bool:
        graph_inputs = {info.name for info in self.graph.inputs}
        pending = [name]
        while pending:
            current = pending.pop()
            if current in visited or self._memo.get(("nan-free", current)) is True:
                continue
            visited.add(current)
            value = self.interval(current)
            if value is None or value.shape is None or current in self.result.nan_constants or not value.is_finite:
                return False
            node = self._producers.get(current)
            if node is None:
                if current in graph_inputs or current in self.graph.initializers:
                    continue
                return False
            rule = self.result.rules.get(node.name)
            if rule is None or node.name in self.result.not_analysed or node.subgraphs():
                return False
            inputs = [self.interval(n) if n else None for n in node.inputs]
            outputs = [self.interval(n) if n else None for n in node.outputs]
            if any(h.kind == FORWARD and h.check(inputs, outputs) is not None for h in rule.hazards):
                return False
            pending.extend(n for n in _read_operands(node, inputs) if n)
        return True

    # ---------------------------------------------------------------------------------------
    _scope: list[MutableMapping[str, Value]]

    def _walk(self, graph: Graph, env: MutableMapping[str, Value]) -> None:
        if not hasattr(self, "_scope"):
            self._scope = []
        self._scope.append(env)
        try:
            for node in graph.nodes:
                outputs = self._evaluate(graph, node, env)
                if len(self._scope) > 1:
                    self._note_overflows(node, env, outputs)
                for name, value in zip(node.outputs, outputs):
                    if name:
                        env[name] = value
                        self.result.record(name, value)
        finally:
            self._scope.pop()

    def _note_overflows(self, node: Node, env: Mapping[str, Value], outputs: Sequence[Value]) -> None:
        """Check a subgraph node's overflow hazards on this evaluation's own operands (see
        AbstractRun.subgraph_overflows); the widest hit of each is kept."""
        rule = self.result.rules.get(node.name)
        if rule is None or node.name in self.result.not_analysed:
            return
        inputs = [env.get(name) if name else None for name in node.inputs]
        for index, hazard in enumerate(rule.hazards):
            if not isinstance(hazard, Overflow):
                continue
            hit = hazard.check(inputs, list(outputs))
            if hit is not None:
                seen = self.result.subgraph_overflows.setdefault(node.name, {})
                old = seen.get(index)
                seen[index] = hit if old is None else HazardHit(old.certain and hit.certain, min(old.low, hit.low),
                                                                  max(old.high, hit.high))

    def _rule(self, node: Node) -> OpRule | None:
        key = id(node)
        if key not in self._rule_cache:
            try:
                rule = self.registry.instantiate(node, self.graph.opsets.get(node.domain or "", self.graph.opset))
            except UnsupportedOperator as exc:
                self._unsupported(node, str(exc))
                rule = None
            self._rule_cache[key] = rule
            if rule is not None:
                self.result.rules[node.name] = rule
        return self._rule_cache[key]

    def _unsupported(self, node: Node, reason: str) -> None:
        self.result.unsupported[node.name] = reason
        self._not_analysed(node, reason)

    def _not_analysed(self, node: Node, reason: str) -> None:
        if node.name not in self.result.not_analysed:
            log.warning("node %s: %s; its outputs get the widest interval", node.describe(), reason)
        self.result.not_analysed[node.name] = reason

    def _evaluate(self, graph: Graph, node: Node, env: Mapping[str, Value]) -> list[Value]:
        inputs: list[Value | None] = []
        for name in node.inputs:
            if not name:
                inputs.append(None)
            elif name in env:
                inputs.append(env[name])
            else:
                raise AnalysisError(f"node {node.describe()} reads '{name}', which nothing defines")
        ctx = self._context(graph, node, inputs)
        rule = self._rule(node)
        if rule is None:
            return self._top(ctx)
        mismatch = operand_type_error(node.op_type, node.domain, ctx.opset,
                                      [iv.elem_type if isinstance(iv, Interval) else None for iv in inputs])
        if mismatch is not None:
            self._not_analysed(node, f"the model's types are inconsistent here ({mismatch}; onnxruntime refuses "
                                     "such a model)")
            return self._top(ctx)
        try:
            if rule.unknown_shapes not in _COPYING and node.op_type not in _READS_UINT64 \
                    and any(_past_int64(iv) for iv in inputs):
                raise UnsupportedOperator(f"{node.op_type}: uint64 values past 2**63 - 1 (bounds are held as int64; "
                                          "only copies and Cast read them)")
            if rule.unknown_shapes != OWN_RULE and any(isinstance(iv, Interval) and iv.shape is None
                                                       for iv in inputs):
                return self._without_shapes(graph, rule, ctx, inputs)
            outputs = self._apply(rule, ctx, inputs)
        except InconsistentShapes as exc:
            self._not_analysed(node, f"the model's shapes are inconsistent here ({exc}; onnxruntime refuses such a "
                                     "model)")
            return self._top(ctx)
        except RunTimeOperand as exc:
            if rule.unknown_shapes in _COPYING:  # each output element is an operand's: bounded by its hull
                return self._without_shapes(graph, rule, ctx, inputs, str(exc))
            self._unsupported(node, str(exc))
            return self._top(ctx)
        except UnsupportedOperator as exc:
            self._unsupported(node, str(exc))
            return self._top(ctx)
        except (AnalysisError, NotImplementedError) as exc:
            self._unsupported(node, f"{node.op_type}: {exc}")
            return self._top(ctx)
        except Exception as exc:  # noqa: BLE001 - a rule bug must not stop the analysis; stay sound
            log.debug("rule %s failed at node %s", node.op_type, node.name, exc_info=True)
            self._unsupported(node, f"internal error in rule {node.op_type}: {exc}")
            return self._top(ctx)
        return outputs

    def _without_shapes(self, graph: Graph, rule: OpRule, ctx: NodeContext, inputs: list[Interval | None],
                        reason: str = "") -> list[Interval]:
        """Outputs of unknown shape, one interval over all elements, where an operand's shape is unknown (or,
        ``reason``, where an operand that decides the output's shape is known only at run time): an
        element-wise rule runs on every operand's hull (every output element is the operator on some
        elements of them), a copying rule joins the hulls of the operands it copies, sizes and indices are
        non-negative; any other node is reported as not analysed, its outputs top."""
        mode = rule.unknown_shapes
        hulls = [None if iv is None else iv.hull() for iv in inputs]
        if mode == ELEMENTWISE and all(h is not None for h, iv in zip(hulls, inputs) if iv is not None):
            scalar = dataclasses.replace(ctx, output_shapes=tuple(() for _ in ctx.output_shapes))
            outs = [_finish(rule, out, ctx.budget) for out in _as_tuple(rule.abstract(scalar, *hulls))]
            return [Interval.create(out.lower, out.upper, (), None, out.elem_type) for out in outs]
        if mode == HULLS:
            static = tuple(_static_shape(graph, name) for name in ctx.node.inputs)
            out = rule.without_shapes(dataclasses.replace(ctx, input_shapes=static), *inputs)
            if out is not None:
                return [_finish(rule, out, ctx.budget)]
        if mode == COUNTS:
            # Size is how many elements a tensor holds, Shape's values are its axes' lengths
            most = most_elements(self, ctx.node.inputs[0]) if ctx.node.op_type == "Size" else \
                largest_dimension(self, ctx.node.inputs[0]) if ctx.node.op_type == "Shape" else None
            high = torch.iinfo(torch.int64).max if most is None else most
            return [Interval.create(torch.tensor(0), torch.tensor(high), (), None, TensorProto.INT64)
                    for _ in ctx.node.outputs]
        copied = [h for h in (hulls[:1] if mode == COPIES else hulls if mode == COPIES_ALL else []) if h is not None]
        if not copied:
            self._not_analysed(ctx.node, reason or f"{ctx.node.op_type}: an operand has a shape known only at run "
                                                   "time (computed from data, e.g. by NonZero, or the output of a "
                                                   "node without a rule)")
            return self._top(ctx)
        joined = functools.reduce(Interval.join, [Interval.create(h.lower, h.upper, (), None, h.elem_type)
                                                  for h in copied])
        # where shape inference gives an output's shape (a Gather by indices of static shape), keep it
        return [Interval.uniform(joined.lower, joined.upper, shape, joined.elem_type) if full_shape(shape)
                else joined for shape, _ in zip(ctx.output_shapes or [None] * len(ctx.node.outputs), ctx.node.outputs)]

    def _apply(self, rule: OpRule, ctx: NodeContext, inputs: list[Value | None]) -> list[Value]:
        present = [iv for iv in inputs if iv is not None]
        outs = None
        if rule.deterministic and not rule.accumulates and all(isinstance(iv, Interval) and iv.is_exact
                                                               for iv in present) \
                and not _has_subgraph(ctx.node):
            outs = self._exact(rule, ctx, inputs)
            if outs is not None and rule.rounds and exact_points(ctx.node, inputs, outs):
                return outs  # e.g. 16 ** 0.5 = 4 (a grid size): every faithful evaluation gives it exactly
        if outs is None:
            outs = list(_as_outputs(ctx, rule.abstract(ctx, *inputs)))
        outs = [_finish(rule, out, ctx.budget) for out in outs]
        if outs and ctx.node.op_type in NORM_CAPPED and isinstance(outs[0], Interval) and not outs[0].is_point:
            outs[0] = capped_by_norm(ctx, outs[0])
        return outs

    def _exact(self, rule: OpRule, ctx: NodeContext, inputs: list[Interval | None]) -> list[Interval] | None:
        """The fast path: the concrete rule on exact tensors, its results as points (None when a result is
        a sequence or an optional: the abstract rule, exact on exact operands, then gives it with its
        element type and kind)."""
        if any(ctx.output_is_optional(i) for i in range(len(ctx.node.outputs))):
            return None
        present = [iv for iv in inputs if iv is not None]
        values = [None if iv is None else iv.exact_value() for iv in inputs]
        float_type = next((iv.elem_type for iv in present if is_float(iv.elem_type)), 0)
        if rule.rounds:
            # evaluate rounding ops in float64: the result then has the real result's sign and
            # lies within a float64 ulp of it, which the outward rounding below covers
            values = [v.to(torch.float64) if v is not None and v.is_floating_point() else v for v in values]
        raw = _as_outputs(ctx, rule.concrete(ctx, *values))
        if any(v is None or isinstance(v, list) for v in raw):
            return None
        if ctx.node.op_type in _MATERIALISES:
            self.result.nan_constants.update(name for name, v in zip(ctx.node.outputs, raw)
                                             if v.is_floating_point() and has_nan(v))
        return [Interval.point(v, _result_type(ctx, i, v, float_type, rule.rounds)) for i, v in enumerate(raw)]

    def _context(self, graph: Graph, node: Node, inputs: list[Value | None]) -> NodeContext:
        infos = [graph.info(o) if o else None for o in node.outputs]
        return NodeContext(
            node=node,
            opset=self.graph.opsets.get(node.domain or "", self.graph.opset),
            input_types=tuple(0 if iv is None else iv.elem_type for iv in inputs),
            output_types=tuple(info.elem_type if info else 0 for info in infos),
            output_shapes=tuple(info.shape if info else None for info in infos),
            budget=self.config.block_budget,
            subgraphs=self,
            graph=self,
            output_sequences=tuple(bool(info and info.sequence) for info in infos),
            output_optionals=tuple(bool(info and info.optional) for info in infos),
        )

    def _top(self, ctx: NodeContext) -> list[Value]:
        return [_top_output(ctx, i, shape, etype or 1)
                for i, (shape, etype) in enumerate(zip(ctx.output_shapes, ctx.output_types))]


def _top_output(ctx: NodeContext, index: int, shape: tuple[int, ...] | None, elem_type: int) -> Value:
    """The widest value of an output of the declared kind (tensor, sequence, optional of either); a tensor of a
    type the analysis does not hold (float8, 4-bit) as any float32 value, which covers every value it holds."""
    sequence = ctx.output_is_sequence(index)
    elem_type = elem_type if is_held(elem_type) else TensorProto.FLOAT
    if ctx.output_is_optional(index):
        return OptionalValue.top(elem_type, shape, sequence)
    return SequenceValue.top(elem_type, shape) if sequence else Interval.top(shape, elem_type)


def _read_operands(node: Node, inputs: list) -> tuple[str, ...]:
    """The operands whose values reach the node's output: a Where whose condition is decided reads one
    branch only (``masked_fill(mask, nan)`` with a mask that is never set)."""
    condition = inputs[0] if node.op_type == "Where" and node.domain in ("", "ai.onnx") and len(inputs) == 3 \
        else None
    if isinstance(condition, Interval) and condition.numblocks and condition.shape is not None:
        if int(condition.upper.max()) == 0:
            return node.inputs[0], node.inputs[2]
        if int(condition.lower.min()) == 1:
            return node.inputs[0], node.inputs[1]
    return node.inputs


def _static_shape(graph: Graph, name: str) -> tuple[int, ...] | None:
    info = graph.info(name) if name else None
    return None if info is None or info.sequence or info.optional else info.shape


def _finish(rule: OpRule, out: Value, budget: int) -> Value:
    """Block budget, outward rounding for float results, then the operator's mathematical range (a sequence
    or an optional is passed on as it is: their rules only move values)."""
    if not isinstance(out, Interval):
        return out
    if out.shape is not None and out.numblocks > budget and not out.is_exact:
        out = Interval.create(out.lower, out.upper, out.splits, out.shape, out.elem_type, budget)
    return rule.rounded(out)


# operators that write a constant of their attributes into the graph (a NaN there is the model's own)
_MATERIALISES = frozenset({"Constant", "ConstantOfShape"})


def _result_type(ctx: NodeContext, index: int, value: Tensor, float_type: int, promoted: bool) -> int:
    """Element type of a fast-path result (undoing the float64 promotion of rounding ops)."""
    default = float_type if promoted and value.dtype == torch.float64 and float_type else elem_type_of(value.dtype)
    return ctx.output_type(index, default)


def _as_tuple(value) -> tuple:
    return tuple(value) if isinstance(value, (tuple, list)) else (value,)


def _as_outputs(ctx: NodeContext, value) -> tuple:
    """A rule's result as one value per output: a bare list is one sequence when the node's only output
    is declared a sequence (Identity passing a concrete sequence on), else one entry per output."""
    if isinstance(value, list) and len(ctx.node.outputs) == 1 and ctx.output_is_sequence(0):
        return (value,)
    return _as_tuple(value)


def _has_subgraph(node: Node) -> bool:
    return any(isinstance(v, Graph) or isinstance(v, list) and v and isinstance(v[0], Graph)
               for v in node.attributes.values())


# ------------------------------------------------------------------------------- concrete mode
@dataclass
class ConcreteRun:
    """Values of every tensor in one concrete execution (main graph and last subgraph runs); a sequence's
    value is a list of tensors."""

    values: dict[str, Tensor | list[Tensor]] = field(default_factory=dict)


def run_concrete(
    graph: Graph,
    feeds: Mapping[str, Tensor],
    registry: Registry = REGISTRY,
) -> ConcreteRun:
    """Execute ``graph`` on concrete tensors with the rules' concrete semantics.

    Args:
        graph: the model.
        feeds: values of graph inputs and, optionally, replacements of initializers.
    """
    walker = _ConcreteWalker(graph, registry)
    return walker.run(feeds)


class _ConcreteWalker:
    def __init__(self, graph: Graph, registry: Registry) -> None:
        self.graph = graph
        self.registry = registry
        self.result = ConcreteRun()
        self._scope: list[MutableMapping[str, Tensor]] = []

    def run(self, feeds: Mapping[str, Tensor]) -> ConcreteRun:
        from ranum.graph.loader import initializer_value

        env: dict[str, Tensor] = {}
        for name in self.graph.initializers:
            if name not in feeds:
                env[name] = torch.from_numpy(np.array(initializer_value(self.graph, name)))
        env.update(feeds)
        self.result.values.update(env)
        self._walk(self.graph, env)
        return self.result

    def abstract(self, graph: Graph, inputs):
        raise AnalysisError("abstract subgraph evaluation requested during a concrete run")

    def concrete(self, graph: Graph, inputs: Sequence[Tensor | None]) -> list[Tensor]:
        from ranum.graph.loader import tensor_value

        local: MutableMapping[str, Tensor] = ChainMap({}, self._scope[-1])
        for info, value in zip(graph.inputs, inputs):
            local[info.name] = value  # None: an empty optional (it shadows an outer name all the same)
        for name, proto in graph.initializers.items():
            local[name] = torch.from_numpy(tensor_value(proto).copy())
        self._walk(graph, local)
        return [local[o.name] for o in graph.outputs]

    def _walk(self, graph: Graph, env: MutableMapping[str, Tensor]) -> None:
        self._scope.append(env)
        try:
            for node in graph.nodes:
                rule = self.registry.instantiate(node, self.graph.opsets.get(node.domain or "", self.graph.opset))
                args = [env[n] if n else None for n in node.inputs]
                infos = [graph.info(o) if o else None for o in node.outputs]
                ctx = NodeContext(
                    node=node,
                    opset=self.graph.opset,
                    input_types=tuple(_concrete_type(a) for a in args),
                    output_types=tuple(i.elem_type if i else 0 for i in infos),
                    output_shapes=tuple(i.shape if i else None for i in infos),
                    budget=0,
                    subgraphs=self,
                    output_sequences=tuple(bool(i and i.sequence) for i in infos),
                    output_optionals=tuple(bool(i and i.optional) for i in infos),
                )
                for name, value in zip(node.outputs, _as_outputs(ctx, rule.concrete(ctx, *args))):
                    if name:
                        env[name] = value
                        self.result.values[name] = value
        finally:
            self._scope.pop()


def _concrete_type(value: Tensor | list[Tensor] | None) -> int:
    """Element type of a concrete operand (of its tensors for a sequence; 0 when absent or empty)."""
    if value is None or isinstance(value, list) and not value:
        return 0
    return elem_type_of((value[0] if isinstance(value, list) else value).dtype)
