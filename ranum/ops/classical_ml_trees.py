"""Tree ensembles of the ``ai.onnx.ml`` domain (TreeEnsembleRegressor, TreeEnsembleClassifier), as
onnxruntime's kernels compute them: a target or class that no reached leaf scores is 0 (a regressor's, without
its base value), and scores are summed over the trees in float32 for a float32 input. Bounds come from the
leaves that rows within the input's range can reach.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from onnx import TensorProto
from torch import Tensor

from ranum.domain import arith
from ranum.domain.dtypes import is_float
from ranum.domain.interval import DEFAULT_BLOCK_BUDGET, Interval
from ranum.errors import UnsupportedOperator
from ranum.ops._base import NodeContext, OpRule
from ranum.ops.classical_ml import FLOAT, ML_DOMAIN, as_rows, row_interval
from ranum.ops.classical_ml_linear import POST_TRANSFORMS, transform_hazards, transformed, transformed_bounds
from ranum.ops.hazards import Hazard, OnDerivedOperands, OutputOverflow, Overflow
from ranum.ops.registry import register

__all__ = ["TreeEnsembleClassifier", "TreeEnsembleRegressor"]


# ------------------------------------------------------------------------------ TreeEnsembleRegressor
_BRANCHES = {"BRANCH_LEQ", "BRANCH_LT", "BRANCH_GTE", "BRANCH_GT", "BRANCH_EQ", "BRANCH_NEQ"}
_AGGREGATES = ("SUM", "AVERAGE")


@dataclass(frozen=True)
class _Forest:
    """A tree ensemble's nodes as arrays: for node i of the attribute lists, its tree's root, its children's
    indices, and its leaf's weight per target (the sum of the target entries naming it)."""

    roots: list[int]
    modes: list[str]
    features: list[int]
    thresholds: list[float]
    true_next: list[int]
    false_next: list[int]
    missing_true: list[bool]
    leaf_weights: Tensor  # (nodes, targets), float64
    leaf_scores: Tensor  # (nodes, targets), bool: whether a target entry names the leaf (a score, maybe 0)

    def step(self, index: int, value: float) -> int:
        """The child a value leads to at branch ``index`` (NaN: the side missing values track)."""
        if math.isnan(value):
            return self.true_next[index] if self.missing_true[index] else self.false_next[index]
        threshold, mode = self.thresholds[index], self.modes[index]
        taken = {"BRANCH_LEQ": value <= threshold, "BRANCH_LT": value < threshold,
                 "BRANCH_GTE": value >= threshold, "BRANCH_GT": value > threshold,
                 "BRANCH_EQ": value == threshold, "BRANCH_NEQ": value != threshold}[mode]
        return self.true_next[index] if taken else self.false_next[index]

    def sums(self, rows: Tensor) -> tuple[Tensor, Tensor]:
        """Per row, the reached leaves' weights summed over the trees (in float32 for a float32 input, as
        onnxruntime sums them: a sum on a threshold such as 0.5 decides a label), and which outputs a reached
        leaf scores."""
        values = rows.to(torch.float64)
        dtype = torch.float32 if rows.dtype == torch.float32 else torch.float64
        weights = self.leaf_weights.to(dtype)
        out = torch.zeros((values.shape[0], self.leaf_weights.shape[1]), dtype=dtype)
        scored = torch.zeros(out.shape, dtype=torch.bool)
        for r, row in enumerate(values.tolist()):
            for root in self.roots:
                index = root
                while self.modes[index] != "LEAF":
                    index = self.step(index, row[self.features[index]])
                out[r] += weights[index]
                scored[r] |= self.leaf_scores[index]
        return out, scored

    def bounds(self, rows: Interval, may_be_nan: bool) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Over the leaves rows within ``rows``' range reach (all rows alike; a NaN feature too where
        ``may_be_nan``): per output the least and largest sum, the sum of the largest |weight| per tree, and
        whether every tree may reach a leaf without it."""
        low, high = rows.full()[0].to(torch.float64).amin(0), rows.full()[1].to(torch.float64).amax(0)
        outputs = self.leaf_weights.shape[1]
        lo, hi, magnitude = (torch.zeros(outputs, dtype=torch.float64) for _ in range(3))
        unscored = torch.ones(outputs, dtype=torch.bool)
        for root in self.roots:
            leaves = self.reachable_leaves(root, low, high, may_be_nan)
            reached = self.leaf_weights[leaves]
            lo, hi = lo + reached.amin(0), hi + reached.amax(0)
            magnitude = magnitude + reached.abs().amax(0)
            unscored &= ~self.leaf_scores[leaves].all(0)
        return lo, hi, magnitude, unscored

    def reachable_leaves(self, root: int, low: Tensor, high: Tensor, may_be_nan: bool) -> list[int]:
        """The leaves a row with features in [low, high] (NaN too where ``may_be_nan``) can reach."""
        leaves, pending, seen = [], [root], set()
        while pending:
            index = pending.pop()
            if index in seen:
                continue
            seen.add(index)
            if self.modes[index] == "LEAF":
                leaves.append(index)
                continue
            feature, threshold = self.features[index], self.thresholds[index]
            lo, hi = float(low[feature]), float(high[feature])
            can_true, can_false = _branch_sides(self.modes[index], lo, hi, threshold)
            if may_be_nan:
                can_true, can_false = can_true or self.missing_true[index], can_false or not self.missing_true[index]
            pending += ([self.true_next[index]] if can_true else []) + ([self.false_next[index]] if can_false else [])
        return leaves


def _branch_sides(mode: str, lo: float, hi: float, threshold: float) -> tuple[bool, bool]:
    """Whether some value in [lo, hi] takes the true side of a branch, and whether some takes the false one."""
    if mode == "BRANCH_LEQ":
        return lo <= threshold, hi > threshold
    if mode == "BRANCH_LT":
        return lo < threshold, hi >= threshold
    if mode == "BRANCH_GTE":
        return hi >= threshold, lo < threshold
    if mode == "BRANCH_GT":
        return hi > threshold, lo <= threshold
    equal_possible, only_equal = lo <= threshold <= hi, lo == hi == threshold
    return (equal_possible, not only_equal) if mode == "BRANCH_EQ" else (not only_equal, equal_possible)


@dataclass(frozen=True)
class _TreeEnsemble(OpRule):
    """What the regressor and the classifier share: the trees (``nodes_*``), base values and post transform."""

    base_values: tuple[float, ...] = ()
    base_values_as_tensor: Tensor | None = None
    nodes_falsenodeids: tuple[int, ...] = ()
    nodes_featureids: tuple[int, ...] = ()
    nodes_hitrates: tuple[float, ...] = ()
    nodes_hitrates_as_tensor: Tensor | None = None
    nodes_missing_value_tracks_true: tuple[int, ...] = ()
    nodes_modes: tuple[str, ...] = ()
    nodes_nodeids: tuple[int, ...] = ()
    nodes_treeids: tuple[int, ...] = ()
    nodes_truenodeids: tuple[int, ...] = ()
    nodes_values: tuple[float, ...] = ()
    nodes_values_as_tensor: Tensor | None = None
    post_transform: str = "NONE"

    accumulates = True
    rounds = False  # the sum's rounding is in the bounds

    def _base_list(self) -> list[float]:
        return _listed(self.base_values, self.base_values_as_tensor)


@register("TreeEnsembleRegressor", domain=ML_DOMAIN)
class TreeEnsembleRegressor(_TreeEnsemble):
    """Each row's leaf in every tree, the leaves' weights per target summed (``AVERAGE``: divided by the trees'
    count), plus ``base_values``; a target that no reached leaf scores is 0 (onnxruntime). Bounded by the leaves
    that rows within the input's range can reach; MIN and MAX aggregates and post transforms other than NONE are
    not supported."""

    aggregate_function: str = "SUM"
    n_targets: int = 1
    target_ids: tuple[int, ...] = ()
    target_nodeids: tuple[int, ...] = ()
    target_treeids: tuple[int, ...] = ()
    target_weights: tuple[float, ...] = ()
    target_weights_as_tensor: Tensor | None = None

    hazards = (Overflow(),)

    def _forest(self) -> _Forest:
        if self.aggregate_function not in _AGGREGATES or self.post_transform != "NONE":
            raise UnsupportedOperator(f"TreeEnsembleRegressor: aggregate {self.aggregate_function} with post "
                                      f"transform {self.post_transform} (SUM or AVERAGE with NONE are supported)")
        weights = _listed(self.target_weights, self.target_weights_as_tensor)
        return _build_forest("TreeEnsembleRegressor", self, (self.target_treeids, self.target_nodeids, self.target_ids,
                                                             weights), self.n_targets)

    def _base(self) -> Tensor:
        return torch.tensor(self._base_list() or [0.0] * self.n_targets, dtype=torch.float64)

    def concrete(self, ctx: NodeContext, x: Tensor) -> Tensor:
        forest = self._forest()
        out, scored = forest.sums(as_rows(x, "TreeEnsembleRegressor"))
        if self.aggregate_function == "AVERAGE":
            out = out / len(forest.roots)
        # onnxruntime writes 0 for a target no reached leaf scores, without its base value
        return torch.where(scored, out + self._base().to(out.dtype), torch.zeros_like(out)).to(torch.float32)

    def abstract(self, ctx: NodeContext, x: Interval) -> Interval:
        forest = self._forest()
        rows = row_interval(x, "TreeEnsembleRegressor")
        lo, hi, magnitude, unscored = forest.bounds(rows, _may_be_nan(ctx, x))
        if self.aggregate_function == "AVERAGE":
            lo, hi, magnitude = (t / len(forest.roots) for t in (lo, hi, magnitude))
        base = self._base()
        slack = _forest_slack(forest, magnitude, base)
        lo, hi = lo + base - slack, hi + base + slack
        lo = torch.where(unscored, torch.minimum(lo, torch.zeros_like(lo)), lo)  # 0 where no leaf scores it
        hi = torch.where(unscored, torch.maximum(hi, torch.zeros_like(hi)), hi)
        shape = (rows.shape[0], self.n_targets)
        return Interval.from_full(lo.expand(shape), hi.expand(shape), FLOAT, ctx.budget).widened(1.0)


@register("TreeEnsembleClassifier", domain=ML_DOMAIN)
class TreeEnsembleClassifier(_TreeEnsemble):
    """The classes' scores: each row's reached leaves' class weights summed over the trees. With more than two
    classes (onnxruntime): plus ``base_values`` (a class that no reached leaf scores takes its base value, or 0),
    the label of the largest scored class, then ``post_transform``. With two labels, the form scikit-learn's
    trees and forests take (one class's weights, all >= 0, no base values, no transform): the scores are
    ``[1 - s, s]`` where the weights name class 0 (onnxruntime writes ``[0, s]`` where they name class 1), and the
    label the second where ``s > 0.5``. Other binary forms are not supported. A PROBIT or SOFTMAX_ZERO transform's
    hazard (NaN or inf) is checked on the class scores, as a linear classifier's is."""

    class_ids: tuple[int, ...] = ()
    class_nodeids: tuple[int, ...] = ()
    class_treeids: tuple[int, ...] = ()
    class_weights: tuple[float, ...] = ()
    class_weights_as_tensor: Tensor | None = None
    classlabels_int64s: tuple[int, ...] = ()
    classlabels_strings: tuple[str, ...] = ()

    @property
    def hazards(self) -> tuple[Hazard, ...]:  # type: ignore[override]
        transforms = () if self._binary else transform_hazards(self.post_transform)
        return (OutputOverflow(output=1), *(_OnClassScores(inner, self) for inner in transforms))

    def _forest(self) -> _Forest:
        labels = len(self.classlabels_int64s or self.classlabels_strings)
        weights = _listed(self.class_weights, self.class_weights_as_tensor)
        if labels < 2 or self._binary and not (len(set(self.class_ids)) == 1 and not self._base_list()
                                                and self.post_transform == "NONE" and min(weights, default=0) >= 0):
            raise UnsupportedOperator("TreeEnsembleClassifier: a binary form other than scikit-learn's (one "
                                      "class's weights, all >= 0, no base values, no post transform)")
        if self.post_transform not in POST_TRANSFORMS:
            raise UnsupportedOperator(f"TreeEnsembleClassifier: post transform {self.post_transform}")
        return _build_forest("TreeEnsembleClassifier", self, (self.class_treeids, self.class_nodeids,
                                                              self.class_ids, weights), labels)

    @property
    def _binary(self) -> bool:
        return len(self.classlabels_int64s or self.classlabels_strings) == 2

    @property
    def _names_second_class(self) -> bool:
        """A binary forest whose weights score class 1: onnxruntime leaves the first score at 0."""
        return bool(self.class_ids) and self.class_ids[0] == 1

    def concrete(self, ctx: NodeContext, x: Tensor) -> tuple[Tensor, Tensor]:
        forest = self._forest()
        sums, scored = forest.sums(as_rows(x, "TreeEnsembleClassifier"))
        labels = torch.tensor(self.classlabels_int64s or [0] * len(self.classlabels_strings), dtype=torch.int64)
        if self._binary:
            score = sums[:, self.class_ids[0]] if self.class_ids else torch.zeros(sums.shape[0], dtype=torch.float64)
            label = torch.where(score > 0.5, labels[1], labels[0])
            first = torch.zeros_like(score) if self._names_second_class else 1 - score
            return label, torch.stack([first, score], -1).to(torch.float32)
        sums, scored = self._with_base(sums, scored)
        ranked = torch.where(scored, sums, torch.full_like(sums, -math.inf))
        return labels[ranked.argmax(-1)], transformed(self.post_transform, sums.to(torch.float32))

    def _with_base(self, sums: Tensor, scored: Tensor) -> tuple[Tensor, Tensor]:
        base = self._base_list()
        if base:
            sums = sums + torch.tensor(base, dtype=sums.dtype)  # an unscored class's sum is 0: it takes its base
            scored = torch.ones_like(scored)
        return sums, scored

    def class_scores(self, x: Tensor) -> Tensor:
        """The scores of more than two classes before the post transform, as onnxruntime sums them."""
        sums, scored = self._forest().sums(as_rows(x, "TreeEnsembleClassifier"))
        return self._with_base(sums, scored)[0].to(torch.float32)

    def abstract(self, ctx: NodeContext, x: Interval) -> tuple[Interval, Interval]:
        rows = row_interval(x, "TreeEnsembleClassifier")
        label = self._label_bounds(rows.shape[0])
        if not self._binary:
            scores = self.class_score_bounds(x, _may_be_nan(ctx, x), ctx.budget)
            return label, transformed_bounds(self.post_transform, scores).widened(1.0)
        lo, hi = self._sum_bounds(rows, _may_be_nan(ctx, x))
        column = self.class_ids[0] if self.class_ids else 0
        s_lo, s_hi = lo[column], hi[column]
        first_lo, first_hi = (torch.zeros_like(s_lo),) * 2 if self._names_second_class else (1 - s_hi, 1 - s_lo)
        count = rows.shape[0]
        scores = Interval.from_full(torch.stack([first_lo, s_lo]).expand(count, 2),
                                    torch.stack([first_hi, s_hi]).expand(count, 2), FLOAT, ctx.budget)
        return label, scores.widened(1.0)

    def class_score_bounds(self, x: Interval, may_be_nan: bool, budget: int = DEFAULT_BLOCK_BUDGET) -> Interval:
        """Bounds of :meth:`class_scores`."""
        rows = row_interval(x, "TreeEnsembleClassifier")
        lo, hi = self._sum_bounds(rows, may_be_nan)
        shape = (rows.shape[0], lo.shape[0])
        return Interval.from_full(lo.expand(shape), hi.expand(shape), FLOAT, budget).widened(1.0)

    def _sum_bounds(self, rows: Interval, may_be_nan: bool) -> tuple[Tensor, Tensor]:
        forest = self._forest()
        lo, hi, magnitude, _ = forest.bounds(rows, may_be_nan)
        base = torch.tensor(self._base_list() or [0.0] * lo.shape[0], dtype=torch.float64)
        slack = _forest_slack(forest, magnitude, base)
        lo, hi = lo + base - slack, hi + base + slack
        # a class no reached leaf scores keeps its base value (or 0), which the sum's bounds hold already:
        # every tree then reached a leaf without it (a weight of 0 in the bounds)
        return lo, hi

    def _label_bounds(self, count: int) -> Interval:
        if not self.classlabels_int64s:  # strings are not bounded: the widest value stands for them
            return Interval.top((count,), FLOAT)
        labels = torch.tensor(self.classlabels_int64s, dtype=torch.int64)
        return Interval.uniform(labels.min(), labels.max(), (count,), TensorProto.INT64)


def _may_be_nan(ctx: NodeContext, x: Interval) -> bool:
    return is_float(x.elem_type) and not (ctx.graph is not None and ctx.graph.nan_free(ctx.node.inputs[0]))


@dataclass(frozen=True)
class _OnClassScores(OnDerivedOperands):
    """A hazard of a tree ensemble classifier's post transform, checked on its class scores."""

    inner: Hazard
    rule: Any = field(compare=False)  # the TreeEnsembleClassifier
    suffix: str = " (of the class scores the trees sum)"

    def derived_bounds(self, inputs):
        """The scores of features within their bounds: a NaN feature comes from a hazard reported upstream."""
        x = inputs[0]
        return None if x is None or x.shape is None else [self.rule.class_score_bounds(x, may_be_nan=False)]

    def derived_values(self, inputs):
        return [self.rule.class_scores(inputs[0])]


def _forest_slack(forest: _Forest, magnitude: Tensor, base: Tensor) -> Tensor:
    """The float sum of one leaf weight per tree and the base value: within ``gamma`` of their magnitudes."""
    return arith.accumulation_gamma(len(forest.roots) + 1, FLOAT) * (magnitude + base.abs())


_Entries = tuple[Sequence[int], Sequence[int], Sequence[int], Sequence[float]]


def _build_forest(op: str, rule: _TreeEnsemble, entries: _Entries, outputs: int) -> _Forest:
    """A rule's ``nodes_*`` attributes as a :class:`_Forest`, its leaves' weights from ``entries`` (tree ids,
    node ids, output ids and weights: the targets of a regressor, the classes of a classifier)."""
    modes = list(rule.nodes_modes)
    if any(mode not in _BRANCHES | {"LEAF"} for mode in modes):
        raise UnsupportedOperator(f"{op}: an unknown node mode")
    index = {(tree, node): i for i, (tree, node) in enumerate(zip(rule.nodes_treeids, rule.nodes_nodeids))}
    roots: dict[int, int] = {}
    for i, tree in enumerate(rule.nodes_treeids):
        roots.setdefault(tree, i)
    try:
        true_next = [index[tree, child] if mode != "LEAF" else i for i, (tree, child, mode)
                     in enumerate(zip(rule.nodes_treeids, rule.nodes_truenodeids, modes))]
        false_next = [index[tree, child] if mode != "LEAF" else i for i, (tree, child, mode)
                      in enumerate(zip(rule.nodes_treeids, rule.nodes_falsenodeids, modes))]
        leaf_weights = torch.zeros((len(modes), outputs), dtype=torch.float64)
        leaf_scores = torch.zeros((len(modes), outputs), dtype=torch.bool)
        for tree, node, output, weight in zip(*entries):
            leaf_weights[index[tree, node], output] += weight
            leaf_scores[index[tree, node], output] = True
    except (KeyError, IndexError):
        raise UnsupportedOperator(f"{op}: a node or an entry names no node of its tree, or no output") from None
    missing = list(rule.nodes_missing_value_tracks_true) or [0] * len(modes)
    thresholds = _listed(rule.nodes_values, rule.nodes_values_as_tensor)
    return _Forest(list(roots.values()), modes, list(rule.nodes_featureids), thresholds, true_next, false_next,
                   [bool(m) for m in missing], leaf_weights, leaf_scores)


def _listed(values: Sequence[float], tensor: Tensor | None) -> list[float]:
    """An attribute given as a list of floats or as its ``_as_tensor`` twin (doubles)."""
    return [float(v) for v in tensor.reshape(-1).tolist()] if tensor is not None else [float(v) for v in values]
