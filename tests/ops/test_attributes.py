"""Every attribute of an operator's newest schema is a field of its rule, or is listed here with why the rule may
leave it unread: a rule is built from the attributes it names and drops the others, so an attribute that a new
opset adds (Range's stash_type in opset 27) would otherwise change the semantics without the rule knowing."""

from __future__ import annotations

import dataclasses

import onnx.defs
import pytest
from onnxruntime.capi import onnxruntime_pybind11_state as runtime

from ranum.ops import REGISTRY

MS = "com.microsoft"
UNREAD = {
    ("", "Cast"): {"round_mode": "rounding to float8e8m0, a type the analysis does not hold"},
    ("", "CastLike"): {"round_mode": "rounding to float8e8m0, a type the analysis does not hold"},
    (MS, "Attention"): {"rotary_embedding_dim": "read with do_rotary only, which the rule refuses"},
}


def _newest_schemas() -> dict[tuple[str, str], set[str]]:
    """(domain, op_type) -> attribute names of the newest schema: onnx's, and onnxruntime's contrib ones."""
    schemas = {("", s.name): set(s.attributes) for s in onnx.defs.get_all_schemas() if s.domain in ("", "ai.onnx")}
    newest: dict[str, object] = {}
    for schema in runtime.get_all_operator_schema():
        known = newest.get(schema.name)
        if schema.domain == MS and (known is None or schema.since_version > known.since_version):
            newest[schema.name] = schema
    schemas.update({(MS, name): set(schema.attributes) for name, schema in newest.items()})
    return schemas


SCHEMAS = _newest_schemas()
RULES = sorted(key for key in REGISTRY.versions() if (key[0] or "") in ("", MS) and key in SCHEMAS)


@pytest.mark.parametrize("key", RULES, ids=[f"{d or 'ai.onnx'}.{op}" for d, op in RULES])
def test_every_attribute_of_the_newest_schema_is_read_or_listed(key: tuple[str, str]) -> None:
    fields = {f.name for f in dataclasses.fields(REGISTRY.lookup(key[1], key[0]))}
    unread = SCHEMAS[key] - fields - set(UNREAD.get(key, {}))
    assert not unread, f"{key}: the rule does not read {sorted(unread)}"


def test_the_listed_attributes_still_exist_and_are_still_unread() -> None:
    for key, names in UNREAD.items():
        fields = {f.name for f in dataclasses.fields(REGISTRY.lookup(key[1], key[0]))}
        assert set(names) <= SCHEMAS[key] and not set(names) & fields, key
