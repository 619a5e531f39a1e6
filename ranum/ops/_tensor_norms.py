"""Whole-tensor L2 norm bounds: a cap for intervals that grow past the float range in deep networks.

Every element of a tensor is at most the tensor's L2 norm in magnitude. Interval bounds of a
convolution sum ``|w| |x|`` with every ``|x|`` at its own maximum and all signs aligned, so they grow
by about the square root of the fan-in per layer: after a few dozen layers of a ResNet they pass
float32's largest value, although the network's gain is moderate. Norms grow by the operators' gains:

* Conv: each of the K kernel offsets applies one ``c_out x c_in`` matrix W_o to a shifted,
  zero-padded copy of x (strides and dilations only drop or space out positions), each of norm at
  most ||x||, so ``||conv(x)|| <= sigma_max([W_1 ... W_K]) sqrt(K) ||x||`` (or with the W_o stacked
  vertically: the adjoint's bound) and ``<= sum_o ||W_o||_F ||x||`` (per group: the largest
  group's), plus the bias' norm over the output positions. onnxruntime's FusedConv: that bound (plus
  its summand's norm) times the largest gain of its activation; the product before the activation
  is capped too (by the rule: an overflow there is the node's, whatever the activation makes of it).
* MatMul/Gemm (and FusedGemm, as FusedConv) with a 2-D weight: ``sigma_max(W) ||x||``. Only exact
  weights count: a box of weights has a gain about as large as the intervals' growth.
* ReLU, reshapes, transposes, slices, the parts of a Split and zero padding keep the norm; a nearest
  Resize multiplies it by the root of the most outputs one element feeds; LeakyReLU scales it by
  ``max(1, |alpha|)``; Add adds the (broadcast) norms; Concat takes the root of the sum of
  squares; MaxPool multiplies it by the square root of the number of windows that can hold one element;
  averaging ``n`` elements divides it by ``sqrt(n)`` (AveragePool: times the root of the window count);
  BatchNormalization and Mul by a bounded factor scale it by the largest factor.
* Any tensor's norm is also bounded by its interval (``sqrt(sum of max |bound|^2)``).

Rounding: every op's result is within ``(1 + u)`` of the real one; a sum of ``n`` products is within
``gamma_n * sum |w| |x|`` of it, and ``sum |w| |x| <= ||w row|| ||x||`` (Cauchy-Schwarz) also bounds
every partial sum, which must stay below the accumulator's largest value for the cap to apply.
Largest singular values come from Gram matrices' eigenvalues (see
:func:`ranum.ops._eigenvalues.largest_singular_value_bound`).
They cost time, so the interpreter asks for a cap only where an interval reaches infinity (a finding
otherwise), a magnitude whose square overflows the computation type, or one where a sum of 2**20
squares does and a sum of squares follows within a few nodes (a LayerNorm behind it could not use its
``sqrt(n)`` bound: a MaxViT's convolution reached 3.6e19 with exact weights, and a hybrid network's
residual stream 3e18, which a LayerNorm over 768 channels squares and sums past float32's largest
value; the attention behind each overflowed), and downstream of such a place; the operands of a sum
are taken cheapest first, and a sum whose first norms already pass the limit stops there. The norms
are memoised for the run and forgotten when a subgraph runs (its tensors change).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from ranum.domain import arith, blocks
from ranum.domain.dtypes import float_facts, is_float
from ranum.domain.interval import Interval
from ranum.errors import UnsupportedOperator
from ranum.graph.model import Node
from ranum.ops._base import GraphView, NodeContext
from ranum.ops._eigenvalues import largest_singular_value_bound

__all__ = ["NORM_CAPPED", "capped_by_norm", "tensor_norm"]

# a sum of this many squares of magnitudes below sqrt(max / _SQUARES_SUMMED) cannot overflow: past that, a cap
# is asked where a sum of squares follows (768 squares of 3e18 overflow float32, although each fits)
_SQUARES_SUMMED = 2**20
# operators that sum squares of their first input (or, Pow and Mul(x, x), square it for a sum behind)
_SUM_SQUARES = frozenset({"LayerNormalization", "GroupNormalization", "InstanceNormalization", "RMSNormalization",
                          "SimplifiedLayerNormalization", "SkipLayerNormalization", "SkipSimplifiedLayerNormalization",
                          "MeanVarianceNormalization", "LpNormalization", "ReduceSumSquare", "ReduceL2", "Pow"})
# operators whose result carries their first input's magnitude on to a sum of squares (the centring of a
# decomposed LayerNorm, reshapes, residual sums)
_CARRY = frozenset({"Add", "Sub", "Concat", "Cast", "Pad", "Split", "Expand", "Mul", "Div"})
_SEARCH_DEPTH = 8  # nodes followed downstream to a sum of squares
_NEAR_OVERFLOW = 2.0**-20  # a constant within this fraction of the dtype's largest value rules out a cap
_SVD_SLACK = 1e-6
# norm kept (Slice: its elements are some of the input's)
_KEEP = frozenset({"Relu", "Identity", "Flatten", "Reshape", "Squeeze", "Unsqueeze", "Transpose", "Slice"})


def capped_by_norm(ctx: NodeContext, out: Interval, product: bool = False) -> Interval:
    """``out`` met with ``[-B, B]``, ``B`` a bound of the L2 norm of the node's output, where ``out``
    reaches infinity (an overflow finding otherwise) or a magnitude whose square overflows, or downstream
    of an earlier cap; elsewhere (or without a bound) ``out`` as it is. ``product``: ``out`` is a fused
    node's product before its activation (FusedConv, FusedGemm), bounded without the activation's factor."""
    graph = ctx.graph
    if graph is None or out.shape is None or not is_float(out.elem_type) or out.numblocks == 0:
        return out
    sources = _sources(ctx.node)
    tracked = bool(graph.memo) and any(("l2", name) in graph.memo for name in sources)  # downstream of a cap
    limit = float_facts(out.elem_type).max
    if not tracked and not _too_large(graph, ctx.node.outputs[0], out):
        return out
    if ctx.node.op_type in _WEIGHTED and not _exact_weight(graph, ctx.node):
        return out
    if any(_huge_constant(graph, name, limit) for name in sources):
        return out  # e.g. a mask of the dtype's most negative value: no norm argument shrinks a constant
    norms: dict[str, float] = {}
    for name in sorted(sources, key=lambda n: _svd_cost(graph, n)):  # cheapest first
        norms[name] = tensor_norm(graph, name)
        if ctx.node.op_type in ("Add", "Sub") and not sum(norms.values()) < limit:
            return out  # a sum of norms: the costlier operands cannot bring it back below the limit
    inputs = [norms.get(name, 0.0) for name in ctx.node.inputs]
    bound = _fused_product(graph, ctx.node, inputs, out) if product else _propagate(graph, ctx.node, inputs, out)
    if not bound < limit:
        return out
    lo = torch.maximum(out.lower, torch.full_like(out.lower, -bound))
    hi = torch.minimum(out.upper, torch.full_like(out.upper, bound))
    return out.with_bounds(lo, hi)


def _too_large(graph: GraphView, name: str, out: Interval) -> bool:
    """Whether ``out`` has a magnitude whose square overflows the computation type, or one where a sum of
    ``_SQUARES_SUMMED`` squares does and such a sum follows downstream (a LayerNorm's variance: it could not
    use its ``sqrt(n)`` bound)."""
    magnitude = out.magnitude()
    limit = arith.accumulator_facts(out.elem_type).max
    if magnitude > math.sqrt(limit):
        return True
    return magnitude > math.sqrt(limit / _SQUARES_SUMMED) and _squares_summed_downstream(graph, name)


def _squares_summed_downstream(graph: GraphView, name: str) -> bool:
    """Whether tensor ``name`` reaches an operator that sums (or squares) it, within ``_SEARCH_DEPTH``
    nodes that carry its magnitude on."""
    frontier, seen = [name], {name}
    for _ in range(_SEARCH_DEPTH):
        following = []
        for current in frontier:
            for node in graph.consumers(current):
                if node.op_type in _SUM_SQUARES or node.op_type == "Mul" and node.inputs[:1] * 2 == node.inputs[:2]:
                    return True
                if node.op_type in _KEEP or node.op_type in _CARRY:
                    following.extend(out for out in node.outputs if out and out not in seen)
                    seen.update(node.outputs)
        frontier = following
    return False


def _svd_cost(graph: GraphView, name: str) -> int:
    """How many weighted operators upstream of ``name`` still lack a norm (each costs an SVD)."""
    seen: set[str] = set()
    pending, cost = [name], 0
    while pending:
        current = pending.pop()
        if current in seen or ("l2", current) in graph.memo:
            continue
        seen.add(current)
        node = graph.producer(current)
        if node is None or not _propagates(node):
            continue
        cost += node.op_type in _WEIGHTED
        pending.extend(_sources(node))
    return cost


def tensor_norm(graph: GraphView, name: str) -> float:
    """A bound of the L2 norm of tensor ``name`` (infinite when nothing bounds it)."""
    memo = graph.memo
    pending = [name]
    while pending:
        current = pending[-1]
        if ("l2", current) in memo:
            pending.pop()
            continue
        node = graph.producer(current)
        sources = _sources(node) if node is not None and _propagates(node) else []
        missing = [i for i in sources if ("l2", i) not in memo]
        if missing:
            pending.extend(missing)
            continue
        pending.pop()
        memo[("l2", current)] = _norm_now(graph, current, node)
    return memo[("l2", name)]


def _norm_now(graph: GraphView, name: str, node: Node | None) -> float:
    iv = graph.interval(name)
    own = interval_norm(iv) if iv is not None else math.inf
    if node is not None and node.op_type == "Split" and iv is not None:  # each part holds some of x's elements
        return min(own, graph.memo[("l2", node.inputs[0])])
    if node is None or not _propagates(node) or iv is None or name != node.outputs[0]:
        return own
    wanted = _sources(node)
    inputs = [graph.memo[("l2", i)] if i in wanted else 0.0 for i in node.inputs]
    return min(own, _propagate(graph, node, inputs, iv))


def _sources(node: Node) -> list[str]:
    """The inputs whose norms the node's rule reads (a weight's values are read instead)."""
    if node.op_type == "Split":
        return node.inputs[:1]
    if node.op_type in _WEIGHTED:
        return [name for i, name in enumerate(node.inputs) if name and i != 1]
    return [name for name in node.inputs if name]


def _huge_constant(graph: GraphView, name: str, limit: float) -> bool:
    iv = graph.interval(name)
    return iv is not None and iv.is_exact and iv.numblocks > 0 and _largest(graph, name) >= _NEAR_OVERFLOW * limit


def _exact_weight(graph: GraphView, node: Node) -> bool:
    w = graph.interval(node.inputs[1]) if len(node.inputs) > 1 else None
    return w is not None and w.is_exact


def interval_norm(iv: Interval) -> float:
    """``sqrt(sum of max(|lower|, |upper|)^2)`` over the elements, from the blocks."""
    if iv.shape is None or not is_float(iv.elem_type):
        return math.inf
    magnitude = torch.maximum(iv.lower.abs(), iv.upper.abs()).detach()
    if not bool(torch.isfinite(magnitude).all()):
        return math.inf
    weights = torch.ones((), dtype=torch.float64)
    for axis, starts in enumerate(iv.splits):
        sizes = torch.tensor(blocks.block_sizes(starts, iv.shape[axis]), dtype=torch.float64)
        weights = weights.unsqueeze(-1) * sizes if weights.dim() else sizes
    total = float((magnitude.square() * weights).sum()) if magnitude.numel() else 0.0
    return math.sqrt(total) * (1 + 1e-12)


def _propagates(node: Node) -> bool:
    return node.op_type in _KEEP or node.op_type in _RULES or node.op_type == "Split"


def _propagate(graph: GraphView, node: Node, norms: Sequence[float], out: Interval) -> float:
    """A bound of the norm of ``node``'s first output from its inputs' norms (inf if none)."""
    if node.op_type in _KEEP:
        return norms[0]
    rule = _RULES.get(node.op_type)
    if rule is None:
        return math.inf
    unit = float_facts(out.elem_type).eps
    bound = rule(graph, node, norms, out)
    return bound * (1 + 2 * unit) if math.isfinite(bound) else math.inf


# --------------------------------------------------------------------------------- per operator
def _leaky_relu(graph: GraphView, node: Node, norms: Sequence[float], out: Interval) -> float:
    return norms[0] * max(1.0, abs(float(node.attributes.get("alpha", 0.01))))


def _add(graph: GraphView, node: Node, norms: Sequence[float], out: Interval) -> float:
    return sum(_broadcast(graph, name, norm, out) for name, norm in zip(node.inputs, norms))


def _broadcast(graph: GraphView, name: str, norm: float, out: Interval) -> float:
    """The norm of ``name`` broadcast to ``out``'s shape: every element repeats equally often."""
    iv = graph.interval(name)
    if iv is None or iv.shape is None or out.shape is None:
        return math.inf
    count = math.prod(iv.shape)
    return norm * math.sqrt(math.prod(out.shape) / count) if count else 0.0


def _largest(graph: GraphView, name: str) -> float:
    iv = graph.interval(name) if name else None
    return math.inf if iv is None else iv.magnitude()


def _pad(graph: GraphView, node: Node, norms: Sequence[float], out: Interval) -> float:
    """Zero padding adds zeros (and negative pads crop): the norm is kept; other modes repeat elements."""
    mode = node.attributes.get("mode", "constant")
    mode = mode.decode() if isinstance(mode, bytes) else str(mode)
    value = float(node.attributes.get("value", 0.0))  # before opset 11
    filler = graph.interval(node.inputs[2]) if len(node.inputs) > 2 and node.inputs[2] else None
    if filler is not None:
        value = filler.min() if filler.is_exact and filler.min() == filler.max() else math.nan
    return norms[0] if mode == "constant" and value == 0.0 else math.inf


def _mul(graph: GraphView, node: Node, norms: Sequence[float], out: Interval) -> float:
    best = math.inf
    for mine, other in ((0, 1), (1, 0)):
        iv = graph.interval(node.inputs[mine])
        if iv is not None and iv.shape == out.shape:
            best = min(best, norms[mine] * _largest(graph, node.inputs[other]))
    return best


def _max_pool(graph: GraphView, node: Node, norms: Sequence[float], out: Interval) -> float:
    kernel = [int(k) for k in node.attributes.get("kernel_shape", ())]
    strides = [int(s) for s in node.attributes.get("strides", ())] or [1] * len(kernel)
    dilated = any(int(d) != 1 for d in node.attributes.get("dilations", ()))
    if len(node.outputs) > 1 and node.outputs[1] or not kernel:
        return math.inf
    if out.numblocks and is_float(out.elem_type) and out.min() <= -float_facts(out.elem_type).max:
        return math.inf  # a window of padding only gives the type's lowest value, whatever the input's norm
    windows = math.prod(k if dilated else -(-k // s) for k, s in zip(kernel, strides))
    return norms[0] * math.sqrt(windows)


def _average_pool(graph: GraphView, node: Node, norms: Sequence[float], out: Interval) -> float:
    """Each output is a window sum over a divisor ``n`` (the window size, or its count of real elements
    without ``count_include_pad``): its square is at most ``(1 / n) * sum of the window's squares``
    (Cauchy-Schwarz), and an element lies in at most ``windows`` windows."""
    kernel = [int(k) for k in node.attributes.get("kernel_shape", ())]
    if not kernel:
        return math.inf
    strides = [int(s) for s in node.attributes.get("strides", ())] or [1] * len(kernel)
    dilated = any(int(d) != 1 for d in node.attributes.get("dilations", ()))
    windows = math.prod(k if dilated else -(-k // s) for k, s in zip(kernel, strides))
    size = math.prod(kernel)
    padded = (any(int(p) for p in node.attributes.get("pads", ()))
              or node.attributes.get("auto_pad", "NOTSET") not in ("NOTSET", b"NOTSET", ""))
    # a window at the edge may hold a single real element, divided by its own count; with ceil_mode,
    # windows past the padded input take the runtime's clipped divisor
    excluded = padded and not int(node.attributes.get("count_include_pad", 0))
    divisor = 1 if excluded or int(node.attributes.get("ceil_mode", 0)) else size
    gamma = arith.accumulation_gamma(size + 1, out.elem_type)
    if not math.sqrt(size) * norms[0] * (1 + gamma) < 0.5 * arith.accumulator_facts(out.elem_type).max:
        return math.inf
    return norms[0] * math.sqrt(windows / divisor) * (1 + gamma)


def _resize(graph: GraphView, node: Node, norms: Sequence[float], out: Interval) -> float:
    """Nearest-neighbour Resize (opset 11 on) copies every output element from one input element: the norm
    grows by the root of the most outputs one element feeds (see :meth:`Resize.most_copies`)."""
    from ranum.ops.registry import build_rule
    from ranum.ops.resize import Resize

    x = graph.interval(node.inputs[0])
    if x is None or x.shape is None or len(node.inputs) < 3:  # (X, scales) is opset 10's form
        return math.inf
    operands = [graph.interval(name) if name else None for name in node.inputs[1:4]]
    present = [None if iv is None or iv.numblocks == 0 else iv for iv in operands]
    try:
        copies = build_rule(Resize, dict(node.attributes), node).most_copies(x.shape, *present)
    except (UnsupportedOperator, ValueError, TypeError):
        return math.inf
    return math.inf if copies is None else norms[0] * math.sqrt(copies)


def _concat(graph: GraphView, node: Node, norms: Sequence[float], out: Interval) -> float:
    """The squares of a concatenation are those of its parts."""
    return math.sqrt(sum(norm * norm for norm in norms))


def _mean(graph: GraphView, node: Node, norms: Sequence[float], out: Interval) -> float:
    source = graph.interval(node.inputs[0])
    if source is None or source.shape is None or out.shape is None or not math.prod(out.shape):
        return math.inf
    if node.op_type == "ReduceMean" and len(node.inputs) > 1 and node.inputs[1]:
        axes = graph.interval(node.inputs[1])
        if axes is None or not axes.is_exact:
            return math.inf
    count = math.prod(source.shape) // math.prod(out.shape)
    if count < 1:
        return math.inf
    gamma = arith.accumulation_gamma(count + 1, out.elem_type)
    # every partial sum of one mean is at most sqrt(count) * ||x|| (Cauchy-Schwarz): it must not overflow
    if not math.sqrt(count) * norms[0] * (1 + gamma) < 0.5 * arith.accumulator_facts(out.elem_type).max:
        return math.inf
    return norms[0] / math.sqrt(count) * (1 + gamma)


def _batch_norm(graph: GraphView, node: Node, norms: Sequence[float], out: Interval) -> float:
    if len(node.inputs) < 5 or any(o for o in node.outputs[1:]) or int(node.attributes.get("training_mode", 0)):
        return math.inf
    scale, bias, mean, var = (graph.interval(n) for n in node.inputs[1:5])
    if any(iv is None or iv.shape is None for iv in (scale, bias, mean, var)):
        return math.inf
    epsilon = float(node.attributes.get("epsilon", 1e-5))
    if not min(var.min(), math.inf) + epsilon > 0:
        return math.inf
    # per channel: y = f * x + (bias - f * mean), f = scale / sqrt(var + eps); the largest f bounds the
    # gain (a channel's small variance and another's large scale do not combine), the offsets add
    f = _magnitudes(scale) / (var.full()[0].to(torch.float64) + epsilon).sqrt()
    offsets = _magnitudes(bias) + f * _magnitudes(mean)
    channels = out.shape[1] if out.shape and len(out.shape) > 1 else 1
    spread = math.sqrt(math.prod(out.shape) / max(channels, 1))
    shifted = norms[0] + norms[3] * spread
    if not shifted < 0.5 * float_facts(out.elem_type).max:  # x - mean must not overflow either
        return math.inf
    gain, offset = float(f.max()), float(offsets.square().sum().sqrt())
    return (gain * norms[0] + offset * spread) * (1 + 8 * float_facts(out.elem_type).eps)


def _magnitudes(iv: Interval) -> Tensor:
    """Full-shape float64 ``max(|lower|, |upper|)``."""
    lo, hi = iv.full()
    return torch.maximum(lo.to(torch.float64).abs(), hi.to(torch.float64).abs())


def _conv(graph: GraphView, node: Node, norms: Sequence[float], out: Interval) -> float:
    gains = _weight_gains(graph, node, _conv_gains)
    if gains is None:
        return math.inf
    gain, frobenius, row_norm, terms = gains
    bias = _broadcast(graph, node.inputs[2], norms[2], out) if len(node.inputs) > 2 and node.inputs[2] else 0.0
    return _accumulated(gain, frobenius, row_norm, norms[0], terms, out) + bias


_Gains = tuple[float, float, float, int]  # gain, error gain, largest row norm, terms of one sum


def _weight_gains(graph: GraphView, node: Node, compute) -> _Gains | None:
    """``compute(graph, node)``, once per node and run: a weight's gains cost a Gram matrix, and a node's
    norm is asked both where its result is capped and where a later cap reads it."""
    key = ("l2-gains", node.outputs[0])
    if key not in graph.memo:
        graph.memo[key] = compute(graph, node)
    return graph.memo[key]


def _conv_gains(graph: GraphView, node: Node) -> _Gains | None:
    w = graph.interval(node.inputs[1])
    if w is None or w.shape is None or len(w.shape) < 3:
        return None
    group = int(node.attributes.get("group", 1))
    weight = _weight_values(w)
    if weight is None or weight.shape[0] % group:
        return None
    offsets = math.prod(w.shape[2:])
    per_group = weight.reshape(group, weight.shape[0] // group, -1, offsets)  # group, c_out, c_in, offset
    # sum over offsets of ||W_o||_F: bounds the sums of |w| |x| (the error) and, loosely, the gain
    squares = _squares(per_group)  # shared by the three norms below
    frobenius = squares.sum((1, 2)).sqrt().sum(-1)
    # all offsets at once: ||sum_o W_o S_o x|| <= sigma_max([W_1 ... W_K]) sqrt(K) ||x||, and the same
    # with the offsets' matrices stacked vertically (the transposed convolution has the same norm):
    # random c_out x c_in matrices give about sqrt(c_out) + sqrt(K c_in), and sqrt(K c_out) + sqrt(c_in)
    # stacked: the narrower side is stacked, unless its Gram matrix is much larger than the other's
    gain = torch.minimum(frobenius, largest_singular_value_bound(_stacked_offsets(per_group), squares.sum((1, 2, 3)))
                         * math.sqrt(offsets))
    row_norm = float(squares.sum((2, 3)).max().sqrt()) if squares.numel() else 0.0
    return float(gain.max()), float(frobenius.max()), row_norm, math.prod(w.shape[1:]) + 1


# activations of onnxruntime's FusedConv / FusedGemm that never grow a value's magnitude
# (ThresholdedRelu keeps x or gives 0); LeakyRelu and Elu scale it by at most max(1, |alpha|)
_SHRINKING = frozenset({"", "Relu", "Tanh", "Softsign", "ThresholdedRelu"})
_SCALED_BY_ALPHA = {"LeakyRelu": 0.01, "Elu": 1.0}  # their default alpha


def _fused_conv(graph: GraphView, node: Node, norms: Sequence[float], out: Interval) -> float:
    """onnxruntime's ``activation(Conv(x, W, b) + z)``: the product's bound times the largest factor the
    activation can scale a value by (none: Sigmoid and HardSigmoid map 0 away from 0)."""
    return _activation_factor(node) * _fused_product(graph, node, norms, out)


def _fused_product(graph: GraphView, node: Node, norms: Sequence[float], out: Interval) -> float:
    """The bound of a fused node's product before its activation (FusedConv: plus its summand ``z``),
    computed once per run (the rule caps the product, the interpreter then the activation's result)."""
    key = ("l2-product", node.outputs[0])
    if key not in graph.memo:
        if node.op_type == "FusedConv":
            summed = _broadcast(graph, node.inputs[3], norms[3], out) if len(node.inputs) > 3 and node.inputs[3] \
                else 0.0
            graph.memo[key] = _conv(graph, node, norms, out) + summed
        else:
            graph.memo[key] = _gemm_like(graph, node, norms, out)
    return graph.memo[key]


def _activation_factor(node: Node) -> float:
    """The largest factor by which a fused node's activation can scale a value's magnitude (inf: none)."""
    activation = node.attributes.get("activation", "")
    activation = activation.decode() if isinstance(activation, bytes) else str(activation)
    if node.op_type == "FusedConv":  # its parameters in one list, in the activation's attribute order
        params = [float(p) for p in node.attributes.get("activation_params", ())]
        alpha = params[0] if params else None
        if activation == "Clip":
            return 1.0 if len(params) == 2 and params[0] <= 0.0 <= params[1] else math.inf
    else:  # FusedGemm: the activation's attributes, each prefixed with "activation_"
        alpha = node.attributes.get("activation_alpha")
    if activation in _SHRINKING:
        return 1.0
    if activation in _SCALED_BY_ALPHA:
        return max(1.0, abs(float(_SCALED_BY_ALPHA[activation] if alpha is None else alpha)))
    return math.inf


def _stacked_offsets(per_group: Tensor) -> Tensor:
    """Per group, the offsets' ``c_out x c_in`` matrices side by side, or one above the other where
    ``c_out < c_in`` and that Gram matrix has an order at most twice the other's (or 256)."""
    c_out, c_in, offsets = per_group.shape[1:]
    side_by_side, above = min(c_out, offsets * c_in), min(offsets * c_out, c_in)
    if c_out < c_in and above <= max(2 * side_by_side, 256):
        return per_group.permute(0, 3, 1, 2).flatten(1, 2)
    return per_group.flatten(2)


def _fused_gemm(graph: GraphView, node: Node, norms: Sequence[float], out: Interval) -> float:
    """onnxruntime's ``activation(Gemm(x, W, C))``: the Gemm's bound times the activation's largest factor."""
    return _activation_factor(node) * _fused_product(graph, node, norms, out)


def _gemm_like(graph: GraphView, node: Node, norms: Sequence[float], out: Interval) -> float:
    """MatMul(x, W) or Gemm(x, W, C) with a 2-D weight (Gemm: transA = 0)."""
    gains = _weight_gains(graph, node, _gemm_gains)
    if gains is None:
        return math.inf
    gain, frobenius, row_norm, terms = gains
    gemm = node.op_type in ("Gemm", "FusedGemm")
    beta = abs(float(node.attributes.get("beta", 1.0))) if gemm else 0.0
    bias = beta * _broadcast(graph, node.inputs[2], norms[2], out) if len(node.inputs) > 2 and node.inputs[2] else 0.0
    return _accumulated(gain, frobenius, row_norm, norms[0], terms, out) + bias


def _gemm_gains(graph: GraphView, node: Node) -> _Gains | None:
    w = graph.interval(node.inputs[1])
    if w is None or w.shape is None or len(w.shape) != 2 or int(node.attributes.get("transA", 0)):
        return None
    weight = _weight_values(w)
    if weight is None:
        return None
    gemm = node.op_type in ("Gemm", "FusedGemm")
    if gemm and int(node.attributes.get("transB", 0)):
        weight = weight.t()
    alpha = abs(float(node.attributes.get("alpha", 1.0))) if gemm else 1.0
    squares = _squares(weight)
    frobenius = float(squares.sum().sqrt()) * alpha
    gain = float(largest_singular_value_bound(weight.unsqueeze(0), squares.sum().unsqueeze(0))[0]) * alpha
    row_norm = float(squares.sum(0).max().sqrt()) * alpha if weight.numel() else 0.0
    return gain, frobenius, row_norm, weight.shape[0] + 3


def _accumulated(gain: float, error_gain: float, row_norm: float, norm: float, terms: int, out: Interval) -> float:
    """``gain * norm`` plus the accumulation error, or inf where a partial sum could overflow.

    ``error_gain`` bounds the gain of the sums of |w| |x|; ``row_norm``: the largest L2 norm of the
    weights of one output element's sum.
    """
    partial = row_norm * norm * (1 + _SVD_SLACK)  # >= every sum of |w| |x| of one output element
    limit = arith.accumulator_facts(out.elem_type).max
    if not partial < 0.5 * limit:
        return math.inf
    gamma = arith.accumulation_gamma(terms, out.elem_type)
    return (gain + gamma * error_gain) * norm * (1 + _SVD_SLACK)


def _weight_values(w: Interval) -> Tensor | None:
    """The full-shape values of an exact weight, float32 or float64 as stored (16-bit ones widened to float32,
    exactly), or None (a box of weights has a gain about as large as its intervals' growth, not worth the
    cost). Not copied where stored so: the Gram matrices take float32 products of float32 values."""
    if not w.is_exact:
        return None
    weight = w.exact_value().detach()
    if weight.dtype not in (torch.float32, torch.float64):
        weight = weight.to(torch.float64 if weight.dtype.itemsize > 4 or not weight.is_floating_point()
                           else torch.float32)
    # a finite sum has no infinite or NaN term: one pass without a mask (isfinite(...).all() took as
    # long as the copy); a sum that overflows is settled element by element
    if math.isfinite(float(weight.sum())) or bool(torch.isfinite(weight).all()):
        return weight
    return None


def _squares(weight: Tensor) -> Tensor:
    """The squares of a weight's values in float64 (a float32 square may overflow or lose the norm's digits),
    in a copy of its own, each raised by the least normal float64: a float64 weight below about 1e-154 has a
    square that underflows (to 0, which would make a norm of such weights 0)."""
    return weight.to(torch.float64, copy=True).square_().add_(2.0**-1022)


_RULES = {
    "LeakyRelu": _leaky_relu,
    "Pad": _pad,
    "Add": _add,
    "Sub": _add,
    "Mul": _mul,
    "MaxPool": _max_pool,
    "AveragePool": _average_pool,
    "Concat": _concat,
    "Resize": _resize,
    "GlobalAveragePool": _mean,
    "ReduceMean": _mean,
    "BatchNormalization": _batch_norm,
    "Conv": _conv,
    "FusedConv": _fused_conv,
    "MatMul": _gemm_like,
    "Gemm": _gemm_like,
    "FusedGemm": _fused_gemm,
}

_WEIGHTED = frozenset({"Conv", "FusedConv", "MatMul", "Gemm", "FusedGemm"})
# the operators whose results the interpreter caps (the others keep or cannot bound a norm)
NORM_CAPPED = frozenset(_RULES)
