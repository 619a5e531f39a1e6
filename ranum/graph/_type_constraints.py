"""Operand types against the ONNX schemas' type constraints.

onnxruntime refuses to load a model whose node takes a type its operator does not (a Log of int64, an Add of a
float and a double, a SoftmaxCrossEntropyLoss of float targets), as the ONNX checker's full check does. ranum's
shape inference is not strict (it must type the models onnxruntime runs, whose value info is often partial), so
such a node reaches the analysis, which leaves it unanalysed as an inconsistent model (the rest of the graph is
still analysed). Only nodes of the ONNX domain whose operator the model's opset defines are checked, and only
operands whose type is known.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import onnx
from onnx import TensorProto

__all__ = ["operand_type_error"]

_ONNX_DOMAINS = ("", "ai.onnx")


@dataclass(frozen=True)
class _Formal:
    type_str: str  # a type parameter ("T") or a type ("tensor(int64)")
    variadic: bool
    homogeneous: bool


@dataclass(frozen=True)
class _Signature:
    inputs: tuple[_Formal, ...]
    allowed: dict[str, frozenset[str]]  # type parameter -> the types it takes


def operand_type_error(op_type: str, domain: str, opset: int, elem_types: Sequence[int | None]) -> str | None:
    """Why a node of ``op_type`` cannot take operands of these element types (None: it can, or its schema or an
    operand's type is unknown): the first input whose type the schema does not allow, or two inputs of one
    homogeneous type parameter with different types."""
    signature = _signature(op_type, opset) if domain in _ONNX_DOMAINS else None
    if signature is None:
        return None
    bound: dict[str, tuple[str, int]] = {}
    for index, elem in enumerate(elem_types):
        formal = _formal_input(signature, index)
        if formal is None or not elem:
            continue
        actual = f"tensor({TensorProto.DataType.Name(elem).lower()})"
        expected = signature.allowed.get(formal.type_str, frozenset({formal.type_str}))
        if not any(kind.startswith("tensor(") for kind in expected):
            continue  # a sequence or optional operand, whose value the analysis may hold as a tensor's
        if actual not in expected:
            return f"input {index} is a {actual}, which {op_type} does not take ({', '.join(sorted(expected))})"
        if formal.type_str in signature.allowed and formal.homogeneous:
            first, where = bound.setdefault(formal.type_str, (actual, index))
            if first != actual:
                return f"input {index} is a {actual} and input {where} a {first}, both of type {formal.type_str}"
    return None


@functools.cache
def _signature(op_type: str, opset: int) -> _Signature | None:
    if not onnx.defs.has(op_type, opset, ""):
        return None
    schema = onnx.defs.get_schema(op_type, opset, "")
    variadic = onnx.defs.OpSchema.FormalParameterOption.Variadic
    inputs = tuple(_Formal(p.type_str, p.option == variadic, p.is_homogeneous) for p in schema.inputs)
    return _Signature(inputs, {c.type_param_str: frozenset(c.allowed_type_strs) for c in schema.type_constraints})


def _formal_input(signature: _Signature, index: int) -> _Formal | None:
    """The formal parameter of input ``index`` (a variadic last parameter takes the rest)."""
    if index < len(signature.inputs):
        return signature.inputs[index]
    last = signature.inputs[-1] if signature.inputs else None
    return last if last is not None and last.variadic else None
