"""onnxruntime's weight-only quantized operators (``com.microsoft``): MatMulNBits and GatherBlockQuantized.

4-bit (and 2- or 8-bit) language models for onnxruntime (onnxruntime-genai's int4 builder,
``onnxruntime.quantization.matmul_nbits_quantizer``) hold every linear layer as MatMulNBits and quantized
embeddings as GatherBlockQuantized. Semantics measured on onnxruntime 1.32 (CPU, x86-64 with AVX2/FMA) and
checked in ``tests/ops/cases_contrib_nbits.py`` and ``tests/ops/test_contrib_nbits.py``:

* Packing: ``B`` (uint8, ``(N, k_blocks, blob_size)``, ``blob_size = block_size * bits / 8``) holds the codes of
  row ``n`` of the logical ``(N, K)`` weight, ``8 / bits`` per byte, **low-order bits first**; K is padded to
  ``k_blocks * block_size``. ``scales`` hold ``N * k_blocks`` values (1-D or ``(N, k_blocks)``). Zero points
  are either uint8, packed the same way per row (``N * ceil(k_blocks * bits / 8)`` bytes, each row padded to
  whole bytes), or of the scales' type (``N * k_blocks`` values); absent, they are ``2^(bits - 1)``.
* Dequantization (read off one-hot ``A``): with integer zero points ``w = fl((q - zp) * s)`` (the integer
  difference is exact); with float zero points, and whenever ``g_idx`` is given,
  ``w = fl(fl(q * s) - fl(zp * s))``. ``g_idx[k]`` replaces ``k // block_size`` as the block of column k; the
  CPU kernel then *ignores* packed uint8 zero points (it uses ``2^(bits - 1)``), a combination refused here.
* ``Y = A @ w^T (+ bias)`` in float32; float16 ``A`` is computed in float32 and rounded once to float16.
* ``accuracy_level`` 4 quantizes A to int8 on the fly (measured relative errors of 1e-3 to 1e-2): each row
  (or block of a row) gets ``s_a = max|a| / 127`` and ``a' = round(a / s_a) s_a``, so ``|a' - a| <= max|a| / 254``
  (``(1 + 3e-5)`` for the rounding of ``s_a`` and ``a / s_a``; an asymmetric per-row uint8 quantization, as on
  ARM, stays below ``max|a| / 255``). Below ``max|a|`` of about ``127 / FLT_MAX = 3.7e-37`` the reciprocal of
  ``s_a`` overflows and the result is garbage (measured: errors of 0.3 ``max|a| sum|w|``; in any case
  ``|a'| <= 128 s_a``, so ``|a' - a| <= 2.01 max|a|``): the rule takes ``max|a|`` as at least ``2^-111``. The
  products are integer sums per block, converted and scaled in float32, i.e. a float sum of
  ``a'_k (q_k - zp) s`` with a few more roundings per term. Levels 0 and 1 are
  float32; 2 and 3 (float16 / bfloat16 compute) are refused.

Abstract rules. The packed codes, scales, zero points and ``g_idx`` are the settings of one weight
(:attr:`parameter_operands`): a box over packed bytes bounds nothing useful, and a quantized model's weights
are fixed once quantized, so in every weight mode they are constants (a range given to them by name is
refused). They dequantize to an exact float32 ``(K, N)`` weight and MatMul's product
(:func:`~ranum.ops.linear.blockwise_product`, float32 product bounds for exact weights) bounds ``A @ w^T`` with
``K + 1`` roundings per term (``K + 4`` at level 4: int-to-float, two scale products, the real weight
``(q - zp) s`` instead of ``w``). Then, per output element, a slack ``max_k |A_k| * sum_k e_k`` is added
with ``e = |w| (1 + 2^-10) / 254`` at level 4 (A's int8 quantization) and ``e = 5u (|q s| + |zp s|)`` for
float zero points or ``g_idx`` (``fl(q s) - fl(zp s)`` cancels: every order of computing ``(q - zp) s`` lies
within ``2u (|q s| + |zp s|)`` of the real value, so kernels using another order deviate by at most ``4u``).
The bias is added with one float32 rounding (and a float16 product is rounded to float16 first). Bounds
assume float32 accumulation, as the MatMul rule does (onnxruntime's ARM float16
kernels accumulate in float16 and are not covered).

GatherBlockQuantized (uint8 data, packed low-order bits first along the last axis, which is the quantized
one; ``gather_axis`` 0, as onnxruntime requires for uint8): measured ``fl((q - zp) * s)`` in float32 (rounded
to float16 for float16 scales), zero points packed like the data along the last axis (default
``2^(bits - 1)``), negative indices wrapped. Its rule dequantizes the exact table and applies Gather's rules
to it (the hull of the rows an index range can pick). int4 / uint4 / float 8 / float 4 data, another
``gather_axis`` or ``quantize_axis``, and non-constant data, scales or zero points are refused.
"""

from __future__ import annotations

import torch
from onnx import TensorProto
from torch import Tensor

from ranum.domain.arith import accumulation_gamma
from ranum.domain.interval import Interval
from ranum.errors import UnsupportedOperator
from ranum.ops._base import NodeContext, OpRule
from ranum.ops.contrib import MS_DOMAIN, rounded_sum
from ranum.ops.hazards import Overflow
from ranum.ops.indexing import Gather
from ranum.ops.linear import blockwise_product, interval_product
from ranum.ops.registry import register

__all__ = ["GatherBlockQuantized", "MatMulNBits", "dequantized_weight", "unpack_codes"]

_BITS = (2, 4, 8)
_FLOAT_A = (TensorProto.FLOAT, TensorProto.FLOAT16)
_UNIT = 2.0**-24  # float32 unit roundoff
_INT8_SLACK = (1 + 2.0**-10) / 254  # |a' - a| / max|a| for A quantized to int8 (see the module docstring)
_INT8_FLOOR = 2.0**-111  # 254 * 2**-119 >= 2.01 * 2**-120, and 2**-120 > 127 / FLT_MAX (measured: garbage below)


def unpack_codes(packed: Tensor, bits: int) -> Tensor:
    """The codes of uint8 bytes holding ``8 / bits`` each, low-order bits first: the last axis grows by
    ``8 / bits`` (uint8: a language model's weight is unpacked without widening it)."""
    per = 8 // bits
    shifts = torch.arange(per, dtype=torch.uint8) * bits
    codes = (packed.to(torch.uint8).unsqueeze(-1) >> shifts) & ((1 << bits) - 1)
    return codes.flatten(-2)


def _layout_error(what: str, got: tuple[int, ...], expected: str) -> UnsupportedOperator:
    return UnsupportedOperator(f"MatMulNBits: {what} of shape {got}, expected {expected}")


def dequantized_weight(b: Tensor, scales: Tensor, zero_points: Tensor | None, g_idx: Tensor | None,
                       k: int, n: int, bits: int, block_size: int) -> tuple[Tensor, Tensor]:
    """The ``(N, K)`` float32 weight onnxruntime computes from MatMulNBits' packed operands, and the bound
    ``e`` (float64, ``(N, K)``) of how far other dequantization orders may move each weight (0 for integer
    zero points, whose difference ``q - zp`` is exact).

    Raises:
        UnsupportedOperator: shapes that do not fit ``K``, ``N``, ``bits`` and ``block_size``.
    """
    k_blocks = -(-k // block_size)
    if b.dtype != torch.uint8 or tuple(b.shape) != (n, k_blocks, block_size * bits // 8):
        raise _layout_error("B", tuple(b.shape), f"uint8 ({n}, {k_blocks}, {block_size * bits // 8})")
    codes = unpack_codes(b, bits).reshape(n, -1)[:, :k]
    if scales.numel() != n * k_blocks:
        raise _layout_error("scales", tuple(scales.shape), f"{n} * {k_blocks} values")
    scale = scales.to(torch.float32).reshape(n, k_blocks)
    block = torch.arange(k) // block_size if g_idx is None else _block_index(g_idx, k, k_blocks)
    zero = _zero_points(zero_points, n, k_blocks, bits)
    if g_idx is not None and zero is not None and not zero.is_floating_point():
        raise UnsupportedOperator("MatMulNBits: g_idx with uint8 zero points (onnxruntime 1.32's CPU kernel "
                                  "ignores those zero points)")
    if g_idx is not None and bits != 4:
        raise UnsupportedOperator(f"MatMulNBits: g_idx with bits={bits} (onnxruntime 1.32's CPU kernel decodes "
                                  "those codes otherwise, or refuses them)")
    s = scale[:, block]
    z = torch.full((), 2 ** (bits - 1), dtype=torch.int16) if zero is None else zero[:, block]
    if g_idx is None and not z.is_floating_point():
        return (codes.to(torch.int16) - z.to(torch.int16)).to(torch.float32).mul_(s), torch.zeros(())
    zf = z.to(torch.float32)
    weight = codes.to(torch.float32).mul_(s).sub_(zf * s)
    # each order of computing (q - zp) s lies within 2u (|q| + |zp|) |s| of the real value: 4u of each other
    spread = (5 * _UNIT) * (codes.to(torch.float64) + zf.double().abs()) * s.double().abs()
    return weight, spread


def _block_index(g_idx: Tensor, k: int, k_blocks: int) -> Tensor:
    index = g_idx.to(torch.int64).reshape(-1)
    if index.numel() != k or bool(((index < 0) | (index >= k_blocks)).any()):
        raise UnsupportedOperator(f"MatMulNBits: g_idx must hold {k} block indices in [0, {k_blocks})")
    return index


def _zero_points(zero_points: Tensor | None, n: int, k_blocks: int, bits: int) -> Tensor | None:
    """Zero points as ``(N, k_blocks)``: uint8 codes (unpacked) or float32 values; None when absent."""
    if zero_points is None:
        return None
    if zero_points.dtype == torch.uint8:
        row_bytes = -(-k_blocks * bits // 8)
        if zero_points.numel() != n * row_bytes:
            raise _layout_error("zero_points", tuple(zero_points.shape), f"{n} * {row_bytes} packed bytes")
        return unpack_codes(zero_points.reshape(n, row_bytes), bits)[:, :k_blocks]
    if zero_points.numel() != n * k_blocks:
        raise _layout_error("zero_points", tuple(zero_points.shape), f"{n} * {k_blocks} values")
    return zero_points.to(torch.float32).reshape(n, k_blocks)


def _constant(value: Interval | None, what: str, op: str = "MatMulNBits") -> Tensor | None:
    """A weight setting's exact value (None when absent)."""
    if value is None:
        return None
    if not value.is_exact:
        raise UnsupportedOperator(f"{op}: '{what}' must be a constant (a setting of the quantized weight), "
                                  "got a range")
    return value.exact_value()


@register("MatMulNBits", domain=MS_DOMAIN)
class MatMulNBits(OpRule):
    """``Y = A @ dequant(B)^T + bias`` with B's codes packed ``8 / bits`` per byte and block-wise scales and
    zero points along K (see the module docstring for the measured semantics)."""

    K: int = 0
    N: int = 0
    bits: int = 4
    block_size: int = 0
    accuracy_level: int = 0
    weight_prepacked: int = 0

    hazards = (Overflow(),)
    accumulates = True
    parameter_operands = frozenset({1, 2, 3, 4})  # B, scales, zero_points, g_idx

    def __post_init__(self) -> None:
        if self.bits not in _BITS:
            raise UnsupportedOperator(f"MatMulNBits: bits={self.bits} (supported: 2, 4, 8)")
        if self.block_size < 16 or self.block_size & (self.block_size - 1):
            raise UnsupportedOperator(f"MatMulNBits: block_size {self.block_size} is not a power of 2 >= 16")
        if self.K <= 0 or self.N <= 0:
            raise UnsupportedOperator(f"MatMulNBits: K={self.K}, N={self.N} (empty weights are not modelled)")
        if self.weight_prepacked:
            raise UnsupportedOperator("MatMulNBits: weight_prepacked (CUDA layouts) is not modelled")
        if self.accuracy_level not in (0, 1, 4):
            raise UnsupportedOperator(f"MatMulNBits: accuracy_level {self.accuracy_level} (float16/bfloat16 "
                                      "compute of A) is not modelled; levels 0, 1 (float32) and 4 (int8) are")

    def _weight(self, b: Tensor, scales: Tensor, zero_points: Tensor | None, g_idx: Tensor | None
                ) -> tuple[Tensor, Tensor]:
        return dequantized_weight(b, scales, zero_points, g_idx, self.K, self.N, self.bits, self.block_size)

    def _check_a(self, elem_type: int, shape: tuple[int, ...]) -> None:
        if elem_type not in _FLOAT_A:
            raise UnsupportedOperator(f"MatMulNBits: A of element type {elem_type} (float32 and float16 only)")
        if len(shape) < 2 or shape[-1] != self.K:
            raise UnsupportedOperator(f"MatMulNBits: A of shape {shape}, expected rank >= 2 and {self.K} columns")

    def concrete(self, ctx: NodeContext, a: Tensor, b: Tensor, scales: Tensor, zero_points: Tensor | None = None,
                 g_idx: Tensor | None = None, bias: Tensor | None = None) -> Tensor:
        self._check_a(ctx.input_types[0] if ctx.input_types else TensorProto.FLOAT, tuple(a.shape))
        weight, _ = self._weight(b, scales, zero_points, g_idx)
        y = torch.matmul(a.to(torch.float32), weight.t())
        if bias is not None:
            y = y.to(a.dtype).to(torch.float32) + bias.to(torch.float32)
        return y.to(a.dtype)

    def abstract(self, ctx: NodeContext, a: Interval, b: Interval, scales: Interval,
                 zero_points: Interval | None = None, g_idx: Interval | None = None,
                 bias: Interval | None = None) -> Interval:
        self._check_a(a.elem_type, tuple(a.shape))
        weight, spread = self._weight(_constant(b, "B"), _constant(scales, "scales"),
                                      _constant(zero_points, "zero_points"), _constant(g_idx, "g_idx"))
        int8 = self.accuracy_level == 4
        count = self.K + (4 if int8 else 1)
        point = Interval.point(weight.t().contiguous(), TensorProto.FLOAT)
        out = blockwise_product(a, point, lambda x, w: interval_product(torch.matmul, [x, w], count), count,
                                ctx.budget)
        out = _with_kernel_slack(out, a, _slack_per_column(weight, spread, int8, count), ctx.budget)
        if bias is None:
            return out
        if out.elem_type != TensorProto.FLOAT:  # a 16-bit product may be rounded before the bias is added
            out = out.widened(1.0)
        return rounded_sum([out, bias])


def _slack_per_column(weight: Tensor, spread: Tensor, int8: bool, count: int) -> tuple[Tensor | None, Tensor | None]:
    """Per output column (float64, ``(N,)``): ``sum_k |w_k|`` times A's int8 quantization slack at accuracy
    level 4 (with the accumulation error of the moved terms), and ``sum_k e_k`` of other dequantization
    orders; None where there is none."""
    moved = None
    if int8:
        moved = weight.double().abs().sum(-1) * (_INT8_SLACK * (1 + accumulation_gamma(count, TensorProto.FLOAT)))
    return moved, (spread.sum(-1) * (1 + 2.0**-40) if spread.dim() else None)


def _with_kernel_slack(out: Interval, a: Interval, slack: tuple[Tensor | None, Tensor | None], budget: int
                       ) -> Interval:
    """``out`` widened per element by ``max_k |A_k|`` (a row's largest magnitude bounds each term) times the
    columns' slack. For the int8 one, that magnitude is at least ``_INT8_FLOOR``: below about
    ``127 / FLT_MAX`` the reciprocal of A's scale overflows and ``|a' - a|`` reaches ``2 max|a|``."""
    moved, spread = slack
    if moved is None and spread is None:
        return out
    lo, hi = a.full()
    row_max = torch.maximum(lo.abs(), hi.abs()).double().amax(-1, keepdim=True)
    extra = torch.zeros((), dtype=torch.float64)
    for per_column, magnitude in ((moved, row_max.clamp(min=_INT8_FLOOR)), (spread, row_max)):
        if per_column is not None:
            # a column without terms to move adds 0, even next to an unbounded row (not inf * 0)
            extra = extra + torch.where(per_column > 0, magnitude * per_column.clamp(min=2.0**-1000), 0.0)
    extra = extra * (1 + 2.0**-40)
    out_lo, out_hi = out.full()
    return Interval.from_full(out_lo - extra, out_hi + extra, out.elem_type, budget)


@register("GatherBlockQuantized", domain=MS_DOMAIN)
class GatherBlockQuantized(OpRule):
    """``Gather(dequant(data), indices)`` along axis 0, with ``data`` uint8 codes packed ``8 / bits`` per byte
    along its last axis, quantized in blocks of ``block_size`` along that axis."""

    bits: int = 4
    block_size: int = 128
    gather_axis: int = 0
    quantize_axis: int = 1

    rounds = False  # every output is a table entry, computed exactly as onnxruntime does
    parameter_operands = frozenset({0, 2, 3})  # data, scales, zero_points: the quantized table's settings
    # a code times its scale past the scales' type (7 * 60000 in float16) is an infinite entry
    hazards = (Overflow(finite_operands=False),)

    def __post_init__(self) -> None:
        if self.bits not in _BITS:
            raise UnsupportedOperator(f"GatherBlockQuantized: bits={self.bits} (supported: 2, 4, 8)")
        if self.block_size < 16 or self.block_size & (self.block_size - 1):
            raise UnsupportedOperator(f"GatherBlockQuantized: block_size {self.block_size} is not a power of 2 >= 16")
        if self.gather_axis != 0:
            raise UnsupportedOperator("GatherBlockQuantized: gather_axis must be 0 (onnxruntime's rule for uint8 data)")

    def _table(self, data: Tensor, scales: Tensor, zero_points: Tensor | None) -> Tensor:
        """The dequantized ``(..., H)`` table in the scales' dtype."""
        if data.dtype != torch.uint8 or data.dim() < 2 or self.quantize_axis not in (-1, data.dim() - 1):
            raise UnsupportedOperator("GatherBlockQuantized: uint8 data of rank >= 2 quantized along its last axis "
                                      f"only (got {data.dtype}, rank {data.dim()}, quantize_axis {self.quantize_axis})")
        codes = (unpack_codes(data, self.bits) if self.bits < 8 else data).to(torch.int16)
        width = codes.shape[-1]
        blocks = -(-width // self.block_size)
        if tuple(scales.shape) != tuple(data.shape[:-1]) + (blocks,):
            raise UnsupportedOperator(f"GatherBlockQuantized: scales of shape {tuple(scales.shape)}, expected "
                                      f"{tuple(data.shape[:-1]) + (blocks,)}")
        zero = torch.full((), 2 ** (self.bits - 1), dtype=torch.int16)
        if zero_points is not None:
            if zero_points.dtype != torch.uint8:
                raise UnsupportedOperator("GatherBlockQuantized: zero points must be uint8 like the data")
            zero = (unpack_codes(zero_points, self.bits) if self.bits < 8 else zero_points).to(torch.int16)
            if tuple(zero.shape[:-1]) != tuple(data.shape[:-1]) or zero.shape[-1] < blocks:
                raise UnsupportedOperator(f"GatherBlockQuantized: zero points of shape {tuple(zero_points.shape)} "
                                          f"do not fit {blocks} blocks per row")
            zero = zero[..., :blocks].repeat_interleave(self.block_size, -1)[..., :width]
        scale = scales.to(torch.float32).repeat_interleave(self.block_size, -1)[..., :width]
        return ((codes - zero).to(torch.float32) * scale).to(scales.dtype)

    def concrete(self, ctx: NodeContext, data: Tensor, indices: Tensor, scales: Tensor,
                 zero_points: Tensor | None = None) -> Tensor:
        return Gather(axis=0).concrete(ctx, self._table(data, scales, zero_points), indices)

    def abstract(self, ctx: NodeContext, data: Interval, indices: Interval, scales: Interval,
                 zero_points: Interval | None = None) -> Interval:
        table = self._table(*(_constant(v, what, self.op_type) for v, what in
                              ((data, "data"), (scales, "scales"), (zero_points, "zero_points"))))
        return Gather(axis=0).abstract(ctx, Interval.point(table, scales.elem_type), indices)
