"""Products fused with their activation by onnxruntime's graph optimizer (``com.microsoft``).

A graph that onnxruntime's session optimizer saved (``SessionOptions.optimized_model_filepath``, at the
basic level and above) holds:

* ``FusedConv``: ``activation(Conv(X, W, B) + Z)``, ``activation`` one of Relu, Sigmoid, Tanh,
  LeakyRelu, HardSigmoid, Clip, its parameters in the list ``activation_params``;
* ``FusedGemm``: ``activation(Gemm(A, B, C))``, written wherever a Gemm feeds only an Elu,
  HardSigmoid, LeakyRelu, Relu, Selu, Sigmoid, Softplus, Softsign, Tanh, ThresholdedRelu (and, in
  models of opset 9 and below, ScaledTanh or ParametricSoftplus); each attribute of the activation
  comes as ``activation_<name>`` (onnxruntime's ``GemmActivationFusion``; float32 kernel only);
* ``FusedMatMul``: ``alpha * (A' @ B')`` with transposed operands.

The product is rounded, then the activation's own rounding (``ulps``) is the interpreter's.

**An overflow inside the node.** The activation can map an overflowed product to a finite value
(ReLU of -inf is 0, the sigmoid of +-inf is 0 or 1) or keep a NaN sum a NaN: the unfused graph
reports it at the product, and so must the fused node. The rule caps the product by its norm bound
(:func:`ranum.ops._tensor_norms.capped_by_norm`, as the interpreter caps every product); where the
product can still reach infinity, the result's blocks over it widen to the whole line, so the
node's ``Overflow`` sees it, and :class:`ProductOverflow` recomputes the product of a concrete run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ranum.domain.dtypes import is_float
from ranum.domain.interval import Interval, elementwise
from ranum.errors import UnsupportedOperator
from ranum.ops._base import NodeContext, OpRule
from ranum.ops._tensor_norms import capped_by_norm
from ranum.ops.activations import (
    Elu,
    HardSigmoid,
    LeakyRelu,
    Relu,
    Selu,
    Sigmoid,
    Softplus,
    Softsign,
    Tanh,
    ThresholdedRelu,
)
from ranum.ops.arithmetic import Clip6
from ranum.ops.contrib import MS_DOMAIN, compute_dtype, concrete_sum, rounded_sum
from ranum.ops.conv_pool import Conv
from ranum.ops.experimental import ParametricSoftplus, ScaledTanh
from ranum.ops.hazards import Overflow
from ranum.ops.linear import Gemm, MatMul, blockwise_product, interval_product
from ranum.ops.registry import register

__all__ = ["FusedConv", "FusedGemm", "FusedMatMul", "ProductOverflow"]

# FusedConv's activations -> (rule class, names of its attributes in activation_params' order)
_CONV_ACTIVATIONS = {"Relu": (Relu, ()), "Sigmoid": (Sigmoid, ()), "Tanh": (Tanh, ()),
                     "LeakyRelu": (LeakyRelu, ("alpha",)), "HardSigmoid": (HardSigmoid, ("alpha", "beta")),
                     "Clip": (Clip6, ("min", "max"))}
# FusedGemm's activations (onnxruntime's GemmActivationFusion) -> (rule class, the attributes
# onnxruntime requires of it: its kernel refuses the node without them, ONNX defaults or not)
_GEMM_ACTIVATIONS = {"Elu": (Elu, ("alpha",)), "HardSigmoid": (HardSigmoid, ("alpha", "beta")),
                     "LeakyRelu": (LeakyRelu, ("alpha",)), "Relu": (Relu, ()), "Selu": (Selu, ("alpha", "gamma")),
                     "Sigmoid": (Sigmoid, ()), "Softplus": (Softplus, ()), "Softsign": (Softsign, ()),
                     "Tanh": (Tanh, ()), "ThresholdedRelu": (ThresholdedRelu, ("alpha",)),
                     "ScaledTanh": (ScaledTanh, ("alpha", "beta")),
                     "ParametricSoftplus": (ParametricSoftplus, ("alpha", "beta"))}


@dataclass(frozen=True)
class ProductOverflow(Overflow):
    """``Overflow`` of a fused node, which fires also where its product before the activation is
    infinite or NaN (the bounds show that as an infinite result: see the module doc)."""

    rule: Any = None  # the fused rule: its ``product`` gives the product of concrete operands

    def triggered(self, inputs, outputs):
        product = self.rule.product(None, *inputs)
        return super().triggered(inputs, outputs) | (super().triggered(inputs, [product]) | torch.isnan(product))

    def distance(self, inputs, outputs):
        product = self.rule.product(None, *inputs).to(outputs[0].dtype)
        return torch.minimum(super().distance(inputs, outputs), super().distance(inputs, [product]))


class _FusedProduct(OpRule):
    """The shared steps: ``activation(product)``, the product capped by its norm and, where it can
    still overflow, the result widened over it."""

    def _activation(self) -> OpRule | None:
        raise NotImplementedError

    def product(self, ctx: NodeContext | None, *operands: Tensor | None) -> Tensor:
        """The product before the activation, of concrete operands."""
        raise NotImplementedError

    def product_bounds(self, ctx: NodeContext, *operands: Interval | None) -> Interval:
        """Bounds of the product before the activation, its rounding included."""
        raise NotImplementedError

    @property
    def hazards(self):  # type: ignore[override]
        return (ProductOverflow(rule=self),)

    @property
    def ulps(self) -> float:  # type: ignore[override]
        act = self._activation()
        return 1.0 if act is None else max(1.0, act.ulps)

    def concrete(self, ctx: NodeContext, *operands: Tensor | None) -> Tensor:
        y = self.product(ctx, *operands)
        act = self._activation()
        return y if act is None else act.concrete(ctx, y)

    def abstract(self, ctx: NodeContext, *operands: Interval | None) -> Interval:
        y = self.product_bounds(ctx, *operands)
        if is_float(y.elem_type):
            y = capped_by_norm(ctx, y, product=True)
        act = self._activation()
        return y if act is None else _over_infinite_products(y, act.abstract(ctx, y))


def _over_infinite_products(product: Interval, out: Interval) -> Interval:
    """``out``, with the blocks where ``product`` reaches infinity widened to the whole line."""
    if not is_float(product.elem_type) or (product.min() > -math.inf and product.max() < math.inf):
        return out

    def widen(p_lo: Tensor, p_hi: Tensor, lo: Tensor, hi: Tensor) -> tuple[Tensor, Tensor]:
        unbounded = torch.isinf(p_lo) | torch.isinf(p_hi)
        return (torch.where(unbounded, torch.full_like(lo, -math.inf), lo),
                torch.where(unbounded, torch.full_like(hi, math.inf), hi))

    return elementwise(widen, [product, out], out.elem_type)


@register("FusedConv", domain=MS_DOMAIN)
class FusedConv(_FusedProduct, Conv):
    """onnxruntime's ``activation(Conv(X, W, B) + Z)``: Conv's attributes, ``activation`` one of Relu,
    Sigmoid, Tanh, LeakyRelu, HardSigmoid, Clip (its parameters in ``activation_params``), ``Z``
    optional."""

    activation: str = ""
    activation_params: tuple = ()

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.activation and self.activation not in _CONV_ACTIVATIONS:
            raise UnsupportedOperator(f"FusedConv: activation {self.activation!r}")

    def _activation(self) -> OpRule | None:
        if not self.activation:
            return None
        cls, names = _CONV_ACTIVATIONS[self.activation]
        return cls(**dict(zip(names, (float(p) for p in self.activation_params))))

    def product(self, ctx, x, w, b=None, z=None):
        y = Conv.concrete(self, ctx, x, w, b)
        return y if z is None else concrete_sum([y, z]).to(y.dtype)

    def product_bounds(self, ctx, x, w, b=None, z=None):
        y = Conv.abstract(self, ctx, x, w, b).widened(1.0)
        return y if z is None else rounded_sum([y, z])


@register("FusedGemm", domain=MS_DOMAIN)
class FusedGemm(_FusedProduct, Gemm):
    """onnxruntime's ``activation(alpha * A' @ B' + beta * C)``: Gemm's attributes, ``activation`` one of
    the activations onnxruntime fuses (see the module doc), with ``activation_alpha``,
    ``activation_beta`` and ``activation_gamma`` as that activation's ``alpha``, ``beta``, ``gamma``."""

    activation: str = ""
    activation_alpha: float | None = None
    activation_beta: float | None = None
    activation_gamma: float | None = None

    def _activation(self) -> OpRule | None:
        if self.activation not in _GEMM_ACTIVATIONS:
            raise UnsupportedOperator(f"FusedGemm: activation {self.activation!r} (onnxruntime fuses "
                                      f"{', '.join(sorted(_GEMM_ACTIVATIONS))})")
        cls, required = _GEMM_ACTIVATIONS[self.activation]
        given = {"alpha": self.activation_alpha, "beta": self.activation_beta, "gamma": self.activation_gamma}
        missing = [f"activation_{name}" for name in required if given[name] is None]
        if missing:
            raise UnsupportedOperator(f"FusedGemm: activation {self.activation} needs {' and '.join(missing)} "
                                      "(onnxruntime refuses the node without it)")
        return cls(**{name: float(given[name]) for name in required})

    def product(self, ctx, a, b, c=None):
        return Gemm.concrete(self, ctx, a, b, c)

    def product_bounds(self, ctx, a, b, c=None):
        if not is_float(a.elem_type):
            raise UnsupportedOperator("FusedGemm: float tensors only")
        return Gemm.abstract(self, ctx, a, b, c).widened(1.0)


@register("FusedMatMul", domain=MS_DOMAIN)
class FusedMatMul(OpRule):
    """onnxruntime's ``alpha * (A' @ B')``, ``A'``/``B'`` with their last two axes swapped when ``transA``/
    ``transB`` (its graph optimizer folds Transpose and scaling into MatMul). ``transBatchA/B`` (batch
    axes moved) are not supported. The row-norm and softmax refinements of MatMul apply unless A is
    transposed (they read A's rows from the graph)."""

    alpha: float = 1.0
    transA: int = 0
    transB: int = 0
    transBatchA: int = 0
    transBatchB: int = 0

    hazards = (Overflow(),)
    accumulates = True

    def __post_init__(self) -> None:
        if self.transBatchA or self.transBatchB:
            raise UnsupportedOperator("FusedMatMul: transBatchA / transBatchB")

    def concrete(self, ctx: NodeContext, a: Tensor, b: Tensor) -> Tensor:
        a = a.transpose(-1, -2) if self.transA else a
        b = b.transpose(-1, -2) if self.transB else b
        y = MatMul().concrete(ctx, a, b)
        return y if self.alpha == 1.0 else (y.to(compute_dtype(y.dtype)) * self.alpha).to(y.dtype)

    def abstract(self, ctx: NodeContext, a: Interval, b: Interval) -> Interval:
        if len(a.shape) < 2 or len(b.shape) < 2:
            raise UnsupportedOperator("FusedMatMul: 1-D operands")
        b = _swap_last_axes(b) if self.transB else b
        if self.transA:
            count = a.shape[-2]
            a = _swap_last_axes(a)
            out = blockwise_product(a, b, lambda x, w: interval_product(torch.matmul, [x, w], count), count,
                                    ctx.budget)
        else:
            out = MatMul().abstract(ctx, a, b)
        if self.alpha == 1.0:
            return out
        scaled = out.widened(1.0)  # the accumulator rounds before the scaling (which the interpreter rounds)
        alpha = self.alpha
        low, high = (scaled.lower * alpha, scaled.upper * alpha) if alpha >= 0 else (scaled.upper * alpha,
                                                                                      scaled.lower * alpha)
        return scaled.with_bounds(low, high)


def _swap_last_axes(iv: Interval) -> Interval:
    """The interval of the tensor with its last two axes swapped."""
    splits = iv.splits[:-2] + (iv.splits[-1], iv.splits[-2])
    shape = iv.shape[:-2] + (iv.shape[-1], iv.shape[-2])
    return iv.relaid(lambda t: t.transpose(-1, -2), splits, shape)
