"""Whether a rounding operator's result on exact operands is, in real arithmetic, exactly a given value.

The interpreter evaluates a node whose operands are all exact (constants, shape arithmetic) once, in float64.
Where the real result is a value of the element type, every faithful evaluation returns exactly it, so the
node's result is that point and needs no outward rounding (``Sqrt(16) = 4``, a grid size). A float64
evaluation that merely lands on such a value proves nothing: torch's float64 square root is not correctly
rounded (``sqrt(3.9999999999999996)`` gave 2.0, whose square is 4), and a transcendental function of a
non-zero rational is irrational (``log(0.9999999999999998)``, ``asin(2**-30)``). So the real result is checked
here in exact rational arithmetic, for the operators where that is possible: the four operations, reciprocals,
square roots (and powers of 1/2), integer powers, and the trivial points of transcendental functions (``exp(0) = 1``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from fractions import Fraction

import numpy as np
import torch
from torch import Tensor

from ranum.domain.dtypes import is_float, torch_dtype
from ranum.domain.interval import Interval
from ranum.graph.model import Node

__all__ = ["exact_points", "real_result_is"]

_SIMPLE_BITS = 12
_MOST_BLOCKS = 64
_MOST_ELEMENTS = 4096  # checked element by element; larger results are not taken as exact points
_LARGEST_POWER = 64

_Exact = Callable[[Sequence[Fraction]], Fraction | None]


def _divide(a: Fraction, b: Fraction) -> Fraction | None:
    return a / b if b else None


def _power(a: Fraction, b: Fraction) -> Fraction | None:
    if b.denominator != 1 or abs(b) > _LARGEST_POWER or (a == 0 and b < 0):
        return None
    return a ** int(b)


_RATIONAL: dict[str, _Exact] = {
    "Add": lambda v: v[0] + v[1], "Sub": lambda v: v[0] - v[1], "Mul": lambda v: v[0] * v[1],
    "Div": lambda v: _divide(v[0], v[1]), "Reciprocal": lambda v: _divide(Fraction(1), v[0]),
    "Neg": lambda v: -v[0], "Abs": lambda v: abs(v[0]), "Sum": sum, "Pow": lambda v: _power(v[0], v[1]),
}
# the points where a transcendental function takes a rational value: (operand, result)
_TRIVIAL_POINTS: dict[str, tuple[float, float]] = {
    "Exp": (0.0, 1.0), "Log": (1.0, 0.0), "Sin": (0.0, 0.0), "Cos": (0.0, 1.0), "Tan": (0.0, 0.0),
    "Tanh": (0.0, 0.0), "Sinh": (0.0, 0.0), "Cosh": (0.0, 1.0), "Asin": (0.0, 0.0), "Acos": (1.0, 0.0),
    "Atan": (0.0, 0.0), "Asinh": (0.0, 0.0), "Acosh": (1.0, 0.0), "Atanh": (0.0, 0.0), "Erf": (0.0, 0.0),
    "Sigmoid": (0.0, 0.5),
}


def real_result_is(op_type: str, operands: Sequence[Tensor | None], result: Tensor) -> bool:
    """Whether ``op_type`` of ``operands`` (exact values, broadcast element-wise) is exactly ``result`` in real
    arithmetic; False where that cannot be checked."""
    if result.numel() > _MOST_ELEMENTS or any(v is None for v in operands) or not operands:
        return False
    try:
        arrays = np.broadcast_arrays(*(v.double().numpy() for v in operands), result.double().numpy())
    except ValueError:
        return False
    *values, out = (a.reshape(-1) for a in arrays)
    if op_type == "Sqrt" or (op_type == "Pow" and bool(np.all(values[1] == 0.5))):
        return bool(np.all(out >= 0)) and all(Fraction(float(r)) ** 2 == Fraction(float(x))
                                              for x, r in zip(values[0], out))
    if op_type in _TRIVIAL_POINTS:
        point, value = _TRIVIAL_POINTS[op_type]
        return bool(np.all(values[0] == point) and np.all(out == value))
    exact = _RATIONAL.get(op_type)
    if exact is None or not np.all(np.isfinite(out)) or not all(np.all(np.isfinite(v)) for v in values):
        return False
    return all(exact([Fraction(float(v)) for v in element[:-1]]) == Fraction(float(element[-1]))
               for element in zip(*values, out))


def exact_points(node: Node, inputs: Sequence[object], outs: Sequence[Interval]) -> bool:
    """Whether a node's results, computed in float64 from exact operands (``inputs``: its operand values), are
    exact points as they stand: integer and boolean results always; a float result where it is a value of its
    type with at most 12 significant bits (such as 4.0 or 0.375) that is the real result (see
    :func:`real_result_is`), which an evaluation in the element type that is faithful (within one ulp, as
    libm's and onnxruntime's are) returns exactly. Small tensors only."""
    if not any(is_float(out.elem_type) for out in outs):
        return True
    if len(outs) != 1 or node.domain not in ("", "ai.onnx") or not _simple(outs[0]):
        return False
    operands = [iv.exact_value() if isinstance(iv, Interval) else None for iv in inputs]
    return real_result_is(node.op_type, operands, outs[0].exact_value())


def _simple(out: Interval) -> bool:
    """Whether a float point is finite, a value of its type, and of at most 12 significant bits."""
    if out.numblocks > _MOST_BLOCKS:
        return False
    value = out.lower
    if not bool(torch.isfinite(value).all()) or not bool((value.to(torch_dtype(out.elem_type)) == value).all()):
        return False
    mantissa, _ = torch.frexp(value)
    scaled = mantissa * 2.0**_SIMPLE_BITS
    return bool((scaled == scaled.round()).all())
