"""A readable catalogue of the registered operators and their declared hazards (for docs and CLI)."""

from __future__ import annotations

from dataclasses import dataclass

from ranum.ops.registry import Registry

__all__ = ["OperatorEntry", "catalog", "markdown_table"]


@dataclass(frozen=True)
class OperatorEntry:
    """One operator: its name, domain, the opsets it has rules for, and its hazards."""

    op_type: str
    domain: str
    since: tuple[int, ...]
    hazards: tuple[tuple[str, str, str], ...]  # (id, kind, description)


def catalog(registry: Registry) -> list[OperatorEntry]:
    """Every registered operator, sorted by domain then name."""
    out = []
    for (domain, op_type), entries in sorted(registry.versions().items()):
        hazards: dict[str, tuple[str, str, str]] = {}
        for _, cls in entries:
            for hazard in _declared_hazards(cls):
                hazards.setdefault(hazard.name, (hazard.name, hazard.kind, hazard.description))
        out.append(OperatorEntry(op_type, domain, tuple(since for since, _ in entries), tuple(hazards.values())))
    return out


def _declared_hazards(cls: type) -> tuple:
    """A rule class's hazards; rules whose hazards depend on attributes expose them per instance."""
    hazards = cls.__dict__.get("hazards", getattr(cls, "hazards", ()))
    if isinstance(hazards, property):
        try:
            return tuple(cls().hazards)
        except Exception:  # noqa: BLE001 - a rule that needs attributes to build lists nothing here
            return ()
    return tuple(hazards)


def markdown_table(entries: list[OperatorEntry]) -> str:
    """The catalogue as a Markdown table (the README's supported-operator table)."""
    lines = ["| operator | opset rules since | hazards (kind) |", "|---|---|---|"]
    for e in entries:
        name = f"{e.domain}.{e.op_type}" if e.domain else e.op_type
        hazards = "; ".join(f"{h[2]} ({h[1]})" for h in e.hazards) or "-"
        lines.append(f"| {name} | {', '.join(str(s) for s in e.since)} | {hazards} |")
    return "\n".join(lines) + "\n"
