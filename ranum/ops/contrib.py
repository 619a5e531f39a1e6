"""onnxruntime's contrib operators that its transformer optimizer writes into fused graphs.

``onnxruntime.transformers.optimizer`` (and exporters that call it, such as Optimum's ``-O2``) fuses
the decomposed operators of BERT-, GPT- and LLaMA-style graphs into:

* in the ONNX domain (onnxruntime registers them there; the ONNX standard has no such operators at
  these versions): ``LayerNormalization`` below opset 17 (the same kernel as the opset-17 operator)
  and ``SimplifiedLayerNormalization`` (RMS normalization, with an optional inverse-RMS output);
* in ``com.microsoft``: ``SkipLayerNormalization`` and ``SkipSimplifiedLayerNormalization`` (the
  normalization of ``input + skip (+ bias)``, with that sum as an optional output), ``Gelu``,
  ``BiasGelu`` and ``FastGelu`` (erf and tanh GELU of ``x (+ bias)``), ``QuickGelu``
  (``x * sigmoid(alpha * x)``). The products fused with their activation that onnxruntime's session
  optimizer writes (``FusedConv``, ``FusedGemm``, ``FusedMatMul``) are in :mod:`ranum.ops.contrib_fused`.

Each rule composes the rules of the operators it fuses: the sum is bounded as float additions, each
rounded outward once (onnxruntime adds in the tensor's type, in float32 for float16), then the
normalization or activation rule bounds the rest. The fused normalizations check their hazards on
that sum (:class:`OnSkipSum`). Semantics are onnxruntime 1.32's CPU kernels, checked against it in
``tests/ops/cases_contrib.py``; the normalizations compute their mean in the tensor's type (float32
for 16-bit tensors), not in float64 as the ONNX-domain LayerNormalization does. SkipLayerNormalization's
variance is a running (Welford) one: never negative, but on a near-constant row of large values it can be
far below the two-pass variance (even 0), so its outputs are not capped by ``sqrt(n)`` (a row of
487271.53 and seven 487271.56 gives -46874.75 with epsilon 1e-12).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from onnx import TensorProto
from torch import Tensor

from ranum.domain import arith
from ranum.domain.dtypes import is_float
from ranum.domain.interval import Interval, elementwise
from ranum.errors import UnsupportedOperator
from ranum.ops._base import ELEMENTWISE, NodeContext, OpRule
from ranum.ops.activations import Gelu
from ranum.ops.hazards import Hazard, OnDerivedOperands, Overflow
from ranum.ops.normalization import LayerNormalization, SliceVarianceHazard, layer_norm_bounds
from ranum.ops.registry import register
from ranum.ops.swish import Swish
from ranum.ops.transformer import RMSNormalization, RmsZeroHazard, concrete_inverse_rms, inverse_rms

__all__ = ["BiasGelu", "FastGelu", "MicrosoftGelu", "OnSkipSum", "QuickGelu", "SimplifiedLayerNormalization",
           "SkipLayerNormalization", "SkipSimplifiedLayerNormalization", "compute_dtype", "concrete_sum",
           "rounded_sum"]

MS_DOMAIN = "com.microsoft"

# onnxruntime's LayerNormalization contrib kernel (ONNX domain, versions 1-16) is the opset-17 one
register("LayerNormalization", since=1)(LayerNormalization)


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """The type onnxruntime's contrib kernels compute in: float32 for 16-bit floats."""
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def rounded_sum(terms: Sequence[Interval]) -> Interval:
    """Bounds of ``t0 + t1 + ...`` added left to right in float, each addition rounded to nearest in
    the compute type (float32 for 16-bit tensors), and a 16-bit sum rounded once more to its type."""
    total = terms[0]
    compute = TensorProto.DOUBLE if total.elem_type == TensorProto.DOUBLE else TensorProto.FLOAT
    for term in terms[1:]:
        total = elementwise(arith.add, [total, term], compute).widened(1.0)
    if total.elem_type != terms[0].elem_type:  # a 16-bit sum, rounded once more to its type
        total = Interval.create(total.lower, total.upper, total.splits, total.shape, terms[0].elem_type).widened(1.0)
    return total


def concrete_sum(terms: Sequence[Tensor | None]) -> Tensor:
    """``t0 + t1 + ...`` as onnxruntime's contrib kernels add them (in float32 for 16-bit tensors)."""
    present = [t for t in terms if t is not None]
    dtype = compute_dtype(present[0].dtype)
    total = present[0].to(dtype)
    for term in present[1:]:
        total = total + term.to(dtype)
    return total


def skip_terms(inputs: Sequence, bias_index: int) -> list:
    """The summands of a Skip*Normalization: input, skip and (when given, at ``bias_index``) bias."""
    bias = inputs[bias_index] if bias_index < len(inputs) else None
    return [t for t in (inputs[0], inputs[1], bias) if t is not None]


# ------------------------------------------------------------------------------ hazards
@dataclass(frozen=True)
class OnSkipSum(OnDerivedOperands):
    """A hazard of the normalization inside a fused Skip*Normalization, checked on the sum
    ``input + skip (+ bias)`` that it normalizes (inputs 0, 1 and ``bias_index``)."""

    inner: Hazard
    bias_index: int
    suffix = " (of input + skip + bias)"

    def derived_bounds(self, inputs):
        terms = skip_terms(inputs, self.bias_index)
        if len(terms) < 2 or any(t.shape is None for t in terms):
            return None
        return [rounded_sum(terms)]

    def derived_values(self, inputs):
        return [concrete_sum(skip_terms(inputs, self.bias_index))]


# ------------------------------------------------------------------------------ normalizations
@register("SimplifiedLayerNormalization", since=1)
class SimplifiedLayerNormalization(RMSNormalization):
    """onnxruntime's RMS normalization (ONNX domain): ``Y = X / sqrt(mean(X^2) + epsilon) * scale`` over
    ``[axis, rank)``, and optionally ``inv_std_var = 1 / sqrt(mean(X^2) + epsilon)`` (stash type)."""

    def concrete(self, ctx: NodeContext, x: Tensor, scale: Tensor):
        y = super().concrete(ctx, x, scale)
        if len(ctx.node.outputs) < 2 or not ctx.node.outputs[1]:
            return y
        return y, concrete_inverse_rms(x, self._axis(x.dim()), self.epsilon, self.stash_type)

    def abstract(self, ctx: NodeContext, x: Interval, scale: Interval):
        y = super().abstract(ctx, x, scale)
        if len(ctx.node.outputs) < 2 or not ctx.node.outputs[1]:
            return y
        axis = self._axis(len(x.shape))
        return y, inverse_rms(x, axis, self.epsilon, self.stash_type, ctx.output_type(1, TensorProto.FLOAT))



def _wanted(ctx: NodeContext, index: int) -> bool:
    return index < len(ctx.node.outputs) and bool(ctx.node.outputs[index])


@register("SkipLayerNormalization", domain=MS_DOMAIN)
class SkipLayerNormalization(OpRule):
    """LayerNormalization over the last axis of ``input + skip (+ bias)``; inputs (input, skip, gamma,
    beta?, bias?), outputs (output, mean?, inv_std_var?, input_skip_bias_sum?)."""

    epsilon: float = 1e-12

    accumulates = True

    @property
    def hazards(self) -> tuple[Hazard, ...]:  # type: ignore[override]
        return (OnSkipSum(SliceVarianceHazard(self.epsilon, axis=-1, nonneg_variance=True), 4), Overflow())

    def concrete(self, ctx: NodeContext, x, skip, gamma, beta=None, bias=None):
        total = concrete_sum([x, skip, bias])
        y, mean, inv = LayerNormalization(axis=-1, epsilon=self.epsilon).concrete(ctx, total, gamma, beta)
        return y.to(x.dtype), mean, inv, total.to(x.dtype)

    def abstract(self, ctx: NodeContext, x, skip, gamma, beta=None, bias=None):
        if not is_float(x.elem_type):
            raise UnsupportedOperator("SkipLayerNormalization: float tensors only")
        total = rounded_sum(skip_terms([x, skip, gamma, beta, bias], 4))
        y, mean, inv = layer_norm_bounds(ctx, total, gamma, beta, -1, self.epsilon, sums_in_double=False,
                                         running_variance=True)
        return y, mean, inv, total


@register("SkipSimplifiedLayerNormalization", domain=MS_DOMAIN)
class SkipSimplifiedLayerNormalization(OpRule):
    """RMS normalization over the last axis of ``input + skip (+ bias)``; inputs (input, skip, gamma,
    bias?), outputs (output, mean? (never written: the widest interval), inv_std_var?,
    input_skip_bias_sum?)."""

    epsilon: float = 1e-12

    accumulates = True

    @property
    def hazards(self) -> tuple[Hazard, ...]:  # type: ignore[override]
        return (OnSkipSum(RmsZeroHazard(-1, self.epsilon, 1), 3), Overflow())

    def _norm(self) -> RMSNormalization:
        return RMSNormalization(axis=-1, epsilon=self.epsilon, stash_type=1)

    def concrete(self, ctx: NodeContext, x, skip, gamma, bias=None):
        total = concrete_sum([x, skip, bias])
        y = self._norm().concrete(ctx, total, gamma.to(total.dtype)).to(x.dtype)
        inv = concrete_inverse_rms(total, total.dim() - 1, self.epsilon, 1)
        return y, torch.zeros_like(inv), inv, total.to(x.dtype)

    def abstract(self, ctx: NodeContext, x, skip, gamma, bias=None):
        if not is_float(x.elem_type):
            raise UnsupportedOperator("SkipSimplifiedLayerNormalization: float tensors only")
        total = rounded_sum(skip_terms([x, skip, gamma, bias], 3))
        y = self._norm().abstract(ctx, total, gamma)
        outputs = [y, None, None, total]
        axis = len(x.shape) - 1
        stat_type = ctx.output_type(2, TensorProto.FLOAT)
        if _wanted(ctx, 1):
            outputs[1] = Interval.top(tuple(x.shape[:axis]) + (1,), stat_type)
        if _wanted(ctx, 2):
            outputs[2] = inverse_rms(total, axis, self.epsilon, 1, stat_type)
        return tuple(out if out is not None else Interval.top((), stat_type) for out in outputs)


# ------------------------------------------------------------------------------ activations
@register("Gelu", domain=MS_DOMAIN)
class MicrosoftGelu(Gelu):
    """``com.microsoft.Gelu``: the erf GELU, ``0.5 x (1 + erf(x / sqrt 2))``."""


@register("BiasGelu", domain=MS_DOMAIN)
class BiasGelu(Gelu):
    """Erf GELU of ``A + B`` (B a bias broadcast over A's last axis)."""

    unknown_shapes = ELEMENTWISE

    def concrete(self, ctx: NodeContext, a: Tensor, b: Tensor) -> Tensor:
        return self.fn(concrete_sum([a, b])).to(a.dtype)

    def abstract(self, ctx: NodeContext, a: Interval, b: Interval) -> Interval:
        return super().abstract(ctx, rounded_sum([a, b]))


@register("FastGelu", domain=MS_DOMAIN)
class FastGelu(Gelu):
    """Tanh-approximated GELU of ``X (+ bias)``: ``0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3)))``."""

    approximate: str = "tanh"
    unknown_shapes = ELEMENTWISE

    def concrete(self, ctx: NodeContext, x: Tensor, bias: Tensor | None = None) -> Tensor:
        return self.fn(concrete_sum([x, bias])).to(x.dtype)

    def abstract(self, ctx: NodeContext, x: Interval, bias: Interval | None = None) -> Interval:
        return super().abstract(ctx, x if bias is None else rounded_sum([x, bias]))


@register("QuickGelu", domain=MS_DOMAIN)
class QuickGelu(Swish):
    """``x * sigmoid(alpha * x)``, alpha 1.702 by default."""

    alpha: float = 1.702
