"""Explicit registry of operator rules.

Each rule is a frozen dataclass named as its ONNX op_type, registered with ``@register("Op", since=N)``.
Lookup picks, for a model's opset, the registration with the highest ``since`` not above it.
Attribute fields are filled from the node's attributes; missing ones keep the spec's defaults.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import onnx
import torch

from ranum.errors import UnsupportedOperator

if TYPE_CHECKING:
    from ranum.graph.model import Graph, Node
    from ranum.ops._base import OpRule

__all__ = ["Registry", "REGISTRY", "parameter_initializers", "register"]

R = TypeVar("R", bound=type)
_ONNX_DOMAINS = ("", "ai.onnx")


def _domain_key(domain: str) -> str:
    return "" if domain in _ONNX_DOMAINS else domain


class Registry:
    """Maps (domain, op_type) to rule classes by opset version."""

    def __init__(self) -> None:
        self._rules: dict[tuple[str, str], list[tuple[int, type]]] = {}

    def register(self, op_type: str, since: int = 1, domain: str = "") -> Callable[[R], R]:
        """Class decorator: make the class a frozen dataclass and register it for ``op_type``."""

        def wrap(cls: R) -> R:
            if not dataclasses.is_dataclass(cls) or "__dataclass_fields__" not in cls.__dict__:
                cls = dataclasses.dataclass(frozen=True)(cls)
            cls.op_type = op_type
            entries = self._rules.setdefault((_domain_key(domain), op_type), [])
            entries.append((since, cls))
            entries.sort(key=lambda item: item[0])
            return cls

        return wrap

    def lookup(self, op_type: str, domain: str = "", opset: int = 10**6) -> type | None:
        """The rule class for ``op_type`` at ``opset``, or None if there is none."""
        entries = self._rules.get((_domain_key(domain), op_type), [])
        chosen = None
        for since, cls in entries:
            if since <= opset:
                chosen = cls
        return chosen

    def op_types(self, domain: str = "") -> list[str]:
        """Sorted op_types registered in a domain."""
        key = _domain_key(domain)
        return sorted(op for dom, op in self._rules if dom == key)

    def versions(self) -> dict[tuple[str, str], list[tuple[int, type]]]:
        """(domain, op_type) -> [(since, rule class), ...] sorted by ``since`` (a copy)."""
        return {key: list(entries) for key, entries in self._rules.items()}

    def substituted(self, substitutes: dict[type, type]) -> Registry:
        """The same rules, each class in ``substitutes`` replaced by its value (a variant of its concrete
        semantics for one use, e.g. gradients that do not vanish where a confirmation descends)."""
        other = Registry()
        other._rules = {key: [(since, substitutes.get(cls, cls)) for since, cls in entries]
                        for key, entries in self._rules.items()}
        return other

    def all_rules(self) -> list[type]:
        """Every registered rule class (each version once)."""
        return [cls for entries in self._rules.values() for _, cls in entries]

    def instantiate(self, node: Node, opset: int) -> OpRule:
        """Build the rule for ``node``; raises UnsupportedOperator if none applies."""
        cls = self.lookup(node.op_type, node.domain, opset)
        if cls is None:
            domain = f"{node.domain}." if node.domain not in _ONNX_DOMAINS else ""
            entries = self._rules.get((_domain_key(node.domain), node.op_type))
            why = f": its rules start at opset {entries[0][0]} (older versions differ)" if entries else \
                _DOMAIN_HINTS.get(node.domain, "")
            raise UnsupportedOperator(f"no rule for operator {domain}{node.op_type} (opset {opset}){why}")
        return build_rule(cls, node.attributes, node)


# why a whole domain has no rules, for the message of its operators
_DOMAIN_HINTS = {
    "com.microsoft.nchwc": ": onnxruntime writes this domain when a model optimised at ORT_ENABLE_ALL is saved; its "
                           "blocked layout and reordered weights are specific to the machine it was saved on (analyse "
                           "the model before that optimisation, or saved at ORT_ENABLE_EXTENDED)",
}


def build_rule(cls: type, attributes: dict[str, Any], node: Node | None = None) -> OpRule:
    """Instantiate a rule class from ONNX attribute values (tensors become torch tensors)."""
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in attributes.items():
        if key not in names:
            continue
        if isinstance(value, onnx.TensorProto):
            value = _attribute_tensor(value, cls.op_type, node)
        elif isinstance(value, list):
            value = tuple(value)
        kwargs[key] = value
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as exc:
        where = f" at node {node.describe()}" if node is not None else ""
        raise UnsupportedOperator(f"{cls.op_type}{where}: {exc}") from None


def _attribute_tensor(proto: onnx.TensorProto, op_type: str, node: Node | None) -> torch.Tensor:
    """A tensor attribute (Constant's value, ConstantOfShape's fill) as a torch tensor of its own dtype;
    bfloat16, which numpy holds as ml_dtypes' type, is reinterpreted from its bits."""
    array = onnx.numpy_helper.to_array(proto)
    if proto.data_type == onnx.TensorProto.BFLOAT16:
        return torch.from_numpy(array.view(np.uint16).copy()).view(torch.bfloat16)
    try:
        return torch.from_numpy(array.copy())
    except TypeError:
        where = f" at node {node.describe()}" if node is not None else ""
        name = onnx.helper.tensor_dtype_to_string(proto.data_type)
        raise UnsupportedOperator(f"{op_type}{where}: a tensor attribute of type {name} is not supported") from None


REGISTRY = Registry()
register = REGISTRY.register


def parameter_initializers(graph: Graph, registry: Registry = REGISTRY) -> frozenset[str]:
    """Initializers that every reader (subgraphs included) takes at one of its rule's
    ``parameter_operands``: settings such as Resize's scales or a quantization scale vector, which
    training never changes. The range spec then takes them exactly, as constants, instead of
    deriving a weight range for them."""
    settings: set[str] = set()
    data: set[str] = {info.name for info in graph.outputs}
    for node in graph.all_nodes():
        rule = registry.lookup(node.op_type, node.domain, graph.opsets.get(node.domain or "", graph.opset))
        positions = rule.parameter_operands if rule is not None else frozenset()
        for index, name in enumerate(node.inputs):
            if name in graph.initializers:
                (settings if index in positions else data).add(name)
    return frozenset(settings - data)
