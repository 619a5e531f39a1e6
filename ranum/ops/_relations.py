"""Relational refinements: bounds that follow from how operands were computed, not only their ranges.

RMS and L2 normalisations (a tensor over a root of its own mean of squares) are in
:mod:`ranum.ops._rms_relations`.

Attention ``MatMul(Softmax(s), V)`` over the softmax axis: each output is a convex combination of
a column of V (weights >= 0 summing to 1), so it lies between that column's least lower and
greatest upper bound, whatever the scores. Intervals alone multiply by the row length. Rounding:
the float weights sum to ``1 +- gamma_(n+4)`` (exp, sum, divide) and the product's accumulation
error is at most ``gamma_n * sum p_k |v_k|``.

Products of a normalised row with a weight matrix ``y = a @ W`` (q, k, v and MLP projections after
LayerNorm or RMSNorm): the normalised row has an L2 norm of at most ``sqrt(n)`` (times the largest
|scale|, plus the norm of the bias), so by Cauchy-Schwarz ``|y_j| <= ||a|| * ||W[:, j]||``, where
intervals sum ``|a_i| |W_ij|`` with every ``|a_i|`` at its own maximum (``sqrt(n)`` times more).
The norm of a row survives Identity, float Casts and Reshapes that keep the last axis.

What a Where's condition guarantees about its branches is in :mod:`ranum.ops._guard_relations`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TypeVar

import torch
from torch import Tensor

from ranum.domain import arith, blocks
from ranum.domain.dtypes import float_facts, is_float
from ranum.domain.interval import Interval, broadcast_shape, elementwise
from ranum.graph.model import Node
from ranum.ops._base import GraphView, NodeContext

T = TypeVar("T")

__all__ = ["convex_combination_bounds", "either_order", "exact_scalar", "meet", "meet_bounds", "norm_product_bounds",
           "onnx_producer", "reduced_axes"]


def exact_scalar(graph: GraphView, name: str) -> float | None:
    iv = graph.interval(name) if name else None
    if iv is None or not iv.is_exact or iv.numblocks != 1:
        return None
    return float(iv.lower.detach().reshape(()))


def own_rows_shape(shape: Sequence[int], axes: Sequence[int], keepdims: bool) -> tuple[int, ...] | None:
    """The shape of a reduction over ``axes`` that broadcasts back onto each element's own row: the axes kept
    (size 1), or, without keepdims, dropped where they lead (all axes: a scalar), as numpy broadcasting aligns
    the trailing ones; None where dropped axes do not lead."""
    if keepdims:
        return tuple(1 if i in axes else n for i, n in enumerate(shape))
    return tuple(shape[len(axes):]) if sorted(axes) == list(range(len(axes))) else None


def reduced_axes(graph: GraphView, mean: Node, rank: int) -> list[int] | None:
    """A reduction's axes (an attribute, or an exact operand from opset 18), in order; None where they are
    not known or it reduces nothing (``noop_with_empty_axes``)."""
    axes = mean.attributes.get("axes")
    if axes is None and len(mean.inputs) > 1 and mean.inputs[1]:
        iv: Interval | None = graph.interval(mean.inputs[1])
        if iv is None or not iv.is_exact:
            return None
        axes = [int(v) for v in iv.exact_value().reshape(-1).tolist()]
    if axes is None or len(axes) == 0:
        return list(range(rank)) if not int(mean.attributes.get("noop_with_empty_axes", 0)) else None
    if any(not -rank <= a < rank for a in axes):
        return None  # axes of another rank (a tensor broadcast to more axes than the one they are read on)
    return sorted({a % rank for a in axes})


def convex_combination_bounds(ctx: NodeContext, weights: Interval, values: Interval) -> Interval | None:
    """Bounds of ``weights @ values`` when ``weights`` is a softmax over its last axis, else None.

    The result has the matmul's output shape: per output column, the least lower and greatest
    upper bound of that column of ``values`` (scaled by the float weights' sum and widened by the
    accumulation error). Batch axes broadcast as in numpy.matmul; 1-D operands are not handled.
    """
    if ctx.graph is None or weights.shape is None or values.shape is None:
        return None
    if len(weights.shape) < 2 or len(values.shape) < 2 or not is_float(values.elem_type):
        return None
    rounded_to = _softmax_over_last_axis(ctx, ctx.node.inputs[0], len(weights.shape))
    if rounded_to is None:
        return None
    count = weights.shape[-1]
    own, *casts = rounded_to
    # the softmax's shares sum to 1 within its type's rounding; each Cast on the way rounds every share again,
    # which raises their sum by at most the cast type's unit (16-bit casts: far more than float32's), and, for
    # shares below the type's normal range, by up to one subnormal each (absolute: n of them can pass the unit)
    spread = arith.accumulation_gamma(count + 4, own) + 4 * float_facts(own).eps \
        + sum(float_facts(elem).eps + count * float_facts(elem).subnormal for elem in casts)
    if spread >= 0.5:
        return None
    low = values.lower.to(torch.float64).amin(-2, keepdim=True)
    high = values.upper.to(torch.float64).amax(-2, keepdim=True)
    low = torch.where(low < 0, low * (1 + spread), low * (1 - spread))
    high = torch.where(high > 0, high * (1 + spread), high * (1 - spread))
    magnitude = torch.maximum(low.abs(), high.abs()) * (1 + spread)
    low, high = arith.with_accumulation_error(low, high, magnitude, count, values.elem_type)
    column = Interval.create(low, high, values.splits[:-2] + ((0,), values.splits[-1]),
                             values.shape[:-2] + (1, values.shape[-1]), values.elem_type)
    out_shape = _matmul_shape(weights.shape, values.shape)
    return column.broadcast_to(out_shape) if out_shape is not None else None


def meet_bounds(out: Interval, low: Tensor, high: Tensor, budget: int | None) -> Interval:
    """``out`` met with float64 bounds ``low`` / ``high`` that broadcast onto its shape (``out`` itself
    where they do not)."""
    try:
        low, high = low.broadcast_to(out.shape), high.broadcast_to(out.shape)
    except RuntimeError:
        return out
    olo, ohi = out.full()
    return Interval.from_full(torch.maximum(olo.to(torch.float64), low), torch.minimum(ohi.to(torch.float64), high),
                              out.elem_type, budget)


def either_order(ctx: NodeContext, out: Interval, find: Callable[[GraphView, str, str], T | None]) -> T | None:
    """``find(graph, a, b)`` for a float two-input node's inputs in either order (the first found), where
    ``out``, the node's bounds, has a shape; None otherwise."""
    graph = ctx.graph
    if graph is None or not is_float(out.elem_type) or out.shape is None or len(ctx.node.inputs) != 2:
        return None
    first, second = ctx.node.inputs
    return find(graph, first, second) or find(graph, second, first)


def onnx_producer(graph: GraphView, name: str, op_type: str) -> Node | None:
    """The default-domain ``op_type`` node (with inputs) that produces ``name``, else None."""
    node = graph.producer(name) if name else None
    return node if node is not None and node.op_type == op_type and node.domain in ("", "ai.onnx") and node.inputs \
        else None


def meet(iv: Interval, other: Interval) -> Interval:
    """The element-wise intersection of two sound intervals of the same tensor."""

    def both(lo1: Tensor, hi1: Tensor, lo2: Tensor, hi2: Tensor) -> tuple[Tensor, Tensor]:
        return torch.maximum(lo1, lo2.to(lo1.dtype)), torch.minimum(hi1, hi2.to(hi1.dtype))

    return elementwise(both, [iv, other], iv.elem_type)


_PASS_THROUGH = ("Identity", "Cast")


def _softmax_over_last_axis(ctx: NodeContext, name: str, rank: int) -> tuple[int, ...] | None:
    """The float types ``name``'s values were rounded to on the way from a Softmax over its last axis (the
    softmax's own, then each Cast's), or None where ``name`` is no such softmax."""
    graph = ctx.graph
    node, rounded = _through_casts(graph, graph.producer(name))
    if node is None or node.op_type != "Softmax" or node.domain not in ("", "ai.onnx"):
        return None
    axis = int(node.attributes.get("axis", -1 if ctx.opset >= 13 else 1))
    out = graph.interval(node.outputs[0])
    if axis % rank != rank - 1 or out is None or not is_float(out.elem_type):
        return None
    return (out.elem_type, *rounded)


def _through_casts(graph: GraphView, node: Node | None) -> tuple[Node | None, tuple[int, ...]]:
    """The first producer up the chain that is not Identity or a Cast to a float type (None: a Cast elsewhere),
    and the float types the chain's Casts rounded to."""
    rounded: list[int] = []
    while node is not None and node.op_type in _PASS_THROUGH:
        if node.op_type == "Cast":
            to = int(node.attributes.get("to", 0))
            if not is_float(to):
                return None, ()
            rounded.append(to)
        node = graph.producer(node.inputs[0])
    return node, tuple(rounded)


def _matmul_shape(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...] | None:
    batch = broadcast_shape(a[:-2], b[:-2])
    return None if batch is None else tuple(batch) + (a[-2], b[-1])


def norm_product_bounds(ctx: NodeContext, rows: Interval, weights: Interval,
                        weights_transposed: bool = False) -> Interval | None:
    """Bounds ``+-||row|| * ||column||`` of ``rows @ weights`` when the rows' L2 norm is known, else None.

    The row norm is a constant of the graph's other intervals (not differentiated through); the
    column norms follow ``weights`` differentiably.

    ``rows`` is the node's first input (..., K); ``weights`` (..., K, N) is any interval, its
    columns' norms taken over the largest magnitudes, or, where the node's second input has rows of a known
    norm and ``weights`` is its transpose (``weights_transposed``, Gemm's transB, or a Transpose node), that
    norm. The result has the matmul's output shape.
    """
    if ctx.graph is None or rows.shape is None or weights.shape is None or len(weights.shape) < 2:
        return None
    if len(rows.shape) < 2 or not is_float(rows.elem_type):
        return None
    norm = row_norm_bound(ctx.graph, ctx.node.inputs[0])
    if norm is None:
        return None
    count = rows.shape[-1]
    # column norms from the blocks (a block of k rows counts k times): no full-size weight copy
    if weights.is_point and len(weights.splits[-2]) == weights.shape[-2]:
        # an exact weight, one block per row: one pass in its own dtype, its sum of squares (non-negative
        # terms, accumulated in float32 at least) within a relative gamma of the real one
        columns = _column_norms(weights.stored_lower)
        # float32 squares below 2**-126 may be flushed: at most sqrt(K) * 2**-63 of norm lost
        columns = columns * (1 + arith.accumulation_gamma(weights.shape[-2] + 2, rows.elem_type)) \
            + math.sqrt(weights.shape[-2]) * 2.0**-63
    else:
        lo, hi = weights.lower, weights.upper
        magnitude = lo if weights.is_point else torch.maximum(lo.abs(), hi.abs())
        sizes = torch.tensor(blocks.block_sizes(weights.splits[-2], weights.shape[-2]), dtype=torch.float64)
        columns = (magnitude.to(torch.float64).square() * sizes.reshape(-1, 1)).sum(-2, keepdim=True).sqrt()
    second = ctx.node.inputs[1] if len(ctx.node.inputs) > 1 else ""
    transposed = (row_norm_bound(ctx.graph, second) if weights_transposed else
                  _transposed_row_norm(ctx.graph, second)) if second else None
    if transposed is not None:  # the columns are another tensor's rows (a Gram matrix of normalised embeddings)
        columns = torch.clamp(columns, max=transposed)
    bound = norm * columns * (1 + arith.accumulation_gamma(count + 2, rows.elem_type))
    bound = arith.nan_to(bound, torch.inf)
    column = Interval.create(-bound, bound, weights.splits[:-2] + ((0,), weights.splits[-1]),
                             weights.shape[:-2] + (1, weights.shape[-1]), rows.elem_type)
    out_shape = _matmul_shape(rows.shape, weights.shape)
    return column.broadcast_to(out_shape) if out_shape is not None else None


def _transposed_row_norm(graph: GraphView, name: str) -> float | None:
    """A bound of the L2 norm of every column of ``name`` where it is a Transpose swapping the last two axes of a
    tensor whose rows' norm is known (``f @ f.T`` for ``f = F.normalize(x)``: cosine similarities), else None."""
    node = graph.producer(name)
    if node is None or node.op_type != "Transpose" or node.domain not in _ONNX or name != node.outputs[0]:
        return None
    source = graph.interval(node.inputs[0])
    if source is None or source.shape is None or len(source.shape) < 2:
        return None
    rank = len(source.shape)
    perm = [int(p) % rank for p in node.attributes.get("perm", range(rank - 1, -1, -1))]
    if perm != list(range(rank - 2)) + [rank - 1, rank - 2]:
        return None
    return row_norm_bound(graph, node.inputs[0])


def _column_norms(stored: Tensor) -> Tensor:
    """The L2 norms (float64) of the columns of ``stored`` (..., K, N), from float32 squares summed in
    float32 in slices of rows (no full-size square or 16-bit conversion is materialised; ``vector_norm``
    along rows is several times slower)."""
    def slice_squares(start: int) -> Tensor:
        part = stored.narrow(-2, start, min(_ROW_SLICE, rows - start))
        wide = part if part.dtype in (torch.float32, torch.float64) else part.float()  # 16-bit: per slice
        return wide.square().sum(-2, keepdim=True)

    rows = stored.shape[-2]
    total = slice_squares(0)
    for start in range(_ROW_SLICE, rows, _ROW_SLICE):
        total += slice_squares(start)
    return total.to(torch.float64).sqrt()


_ROW_SLICE = 64
_MAX_DEPTH = 8


def row_norm_bound(graph: GraphView, name: str, depth: int = 0) -> float | None:
    """A bound of the L2 norm of every row (along the last axis) of tensor ``name``, or None.

    Known: LayerNormalization over the last axis (``sqrt(n)`` times max |scale|, plus ||bias||; not
    onnxruntime's SkipLayerNormalization, whose running variance can be far below a row's); RMS
    normalisation, fused (RMSNormalization, onnxruntime's SimplifiedLayerNormalization and
    SkipSimplifiedLayerNormalization, over the last axis) or decomposed (see :func:`rms_magnitude_bound`);
    a norm-bounded row times a per-column scale, and Identity / float Cast / last-axis-preserving Reshape
    of those.
    """
    node = graph.producer(name)
    if node is None or depth > _MAX_DEPTH:
        return None
    out = graph.interval(name)
    if out is None or out.shape is None or not out.shape or not is_float(out.elem_type):
        return None
    unit = float_facts(out.elem_type).eps
    if node.op_type in _PASS_THROUGH:
        if node.op_type == "Cast" and not is_float(int(node.attributes.get("to", 0))):
            return None
        inner = row_norm_bound(graph, node.inputs[0], depth + 1)
        return None if inner is None else inner * (1 + 2 * unit)
    if node.op_type == "Reshape":
        source = graph.interval(node.inputs[0])
        if source is None or source.shape is None or not source.shape or source.shape[-1] != out.shape[-1]:
            return None
        return row_norm_bound(graph, node.inputs[0], depth + 1)
    if name != node.outputs[0]:
        return None
    if node.op_type == "LayerNormalization" and node.domain in _ONNX:
        return _layer_norm_row_norm(graph, node, 1, 2)
    if (node.op_type, node.domain) in _RMS_NORMS:
        return _rms_norm_row_norm(graph, node, *_RMS_NORMS[node.op_type, node.domain])
    if node.op_type in ("Mul", "Div") and len(node.inputs) == 2:
        return _scaled_row_norm(graph, node, depth)
    return None


_ONNX = ("", "ai.onnx")
_MS = "com.microsoft"
# RMS normalizations (output 0 = x / sqrt(mean(x^2) + eps) * scale) -> (scale's input index, their
# axis: None where an attribute gives it)
_RMS_NORMS = {("RMSNormalization", ""): (1, None), ("RMSNormalization", "ai.onnx"): (1, None),
              ("SimplifiedLayerNormalization", ""): (1, None), ("SimplifiedLayerNormalization", "ai.onnx"): (1, None),
              ("SkipSimplifiedLayerNormalization", _MS): (2, -1)}


def _last_axis_normalized(graph: GraphView, node: Node, axis: int | None) -> Interval | None:
    """The normalized input's interval, when the node normalizes over its last axis alone."""
    x = graph.interval(node.inputs[0])
    if x is None or x.shape is None or not x.shape:
        return None
    rank = len(x.shape)
    chosen = int(node.attributes.get("axis", -1)) if axis is None else axis
    return x if chosen % rank == rank - 1 else None


def _rms_norm_row_norm(graph: GraphView, node: Node, scale_index: int, axis: int | None) -> float | None:
    """``||x / sqrt(mean(x^2) + eps)|| <= sqrt(n / c)`` over a row (c: the computed mean square's
    relative error, as in :mod:`ranum.ops.transformer`), times the largest |scale|."""
    x = _last_axis_normalized(graph, node, axis)
    if x is None:
        return None
    n = x.shape[-1]
    gamma = arith.accumulation_gamma(n + 2, x.elem_type)
    scale = _magnitudes(graph, node.inputs[scale_index])
    if gamma >= 1 or scale is None:
        return None
    unit = max(float_facts(x.elem_type).eps, float_facts(1).eps)
    return float(scale.detach().max()) * math.sqrt(n / (1 - gamma)) * (1 + 8 * unit)


def _layer_norm_row_norm(graph: GraphView, node: Node, scale_index: int, bias_index: int,
                         axis: int | None = None) -> float | None:
    x = _last_axis_normalized(graph, node, axis)
    if x is None:
        return None
    n = x.shape[-1]
    gamma = arith.accumulation_gamma(n + 4, x.elem_type)
    if gamma >= 1:
        return None
    unit = max(float_facts(x.elem_type).eps, float_facts(1).eps)
    z_norm = math.sqrt(n / (1 - gamma)) * (1 + 8 * unit)  # two-pass variance: see normalization.py
    scale = _magnitudes(graph, node.inputs[scale_index])
    if scale is None:
        return None
    bias = (_magnitudes(graph, node.inputs[bias_index])
            if len(node.inputs) > bias_index and node.inputs[bias_index] else None)
    bias_norm = 0.0
    if bias is not None:  # a broadcast bias counts once per normalized element
        bias_norm = float(bias.detach().square().sum().sqrt()) * math.sqrt(n / max(bias.numel(), 1))
    return (float(scale.detach().max()) * z_norm + bias_norm) * (1 + 4 * unit)


def _scaled_row_norm(graph: GraphView, node: Node, depth: int) -> float | None:
    """``row * s`` or ``row / s`` with s constant along the rows' last axis: the norm times max |s| (or 1/min |s|)."""
    out = graph.interval(node.outputs[0])
    unit = float_facts(out.elem_type).eps
    for row_pos in ((0, 1) if node.op_type == "Mul" else (0,)):
        row = graph.interval(node.inputs[row_pos])
        if row is None or row.shape is None or not row.shape or row.shape[-1] != out.shape[-1]:
            continue  # a row broadcast along the last axis would repeat its elements
        # RMS normalisation: ||y|| = |c| ||x|| / sqrt(mean(x^2) + eps) obeys the bound of each |y_i| where the
        # mean runs over the last axis (and maybe more: a row's norm is at most its slice's); a mean over other
        # axes alone bounds elements only, and a row spans many such means
        from ranum.ops._rms_relations import rms_bound  # noqa: PLC0415 (that module is built on this one)

        rms = rms_bound(graph, node.inputs[row_pos], node.inputs[1 - row_pos], node.op_type == "Div",
                        whole_rows=True)
        if rms is not None:
            return rms
        inner = row_norm_bound(graph, node.inputs[row_pos], depth + 1)
        other = graph.interval(node.inputs[1 - row_pos])
        if inner is None or other is None or other.shape is None or not is_float(other.elem_type):
            continue
        if any(d != 1 for d in other.shape[:-1]):
            continue  # a factor that changes across rows could scale one row more than another
        lo, hi = other.lower.detach().to(torch.float64), other.upper.detach().to(torch.float64)
        if node.op_type == "Mul":
            return inner * float(torch.maximum(lo.abs(), hi.abs()).max()) * (1 + 2 * unit)
        # dividing: by the smallest |s| any element can take (0 when an interval holds 0)
        smallest = torch.where(lo > 0, lo, torch.where(hi < 0, -hi, torch.zeros_like(lo)))
        low = float(smallest.min())
        return None if low <= 0 else inner / low * (1 + 2 * unit)
    return None


def _magnitudes(graph: GraphView, name: str) -> Tensor | None:
    """Largest |value| of every element of a float tensor (full shape, float64), or None."""
    iv = graph.interval(name) if name else None
    if iv is None or iv.shape is None or not is_float(iv.elem_type):
        return None
    lo, hi = iv.full()
    if lo is hi:
        return lo.abs().to(torch.float64)
    return torch.maximum(lo.abs(), hi.abs()).to(torch.float64)
