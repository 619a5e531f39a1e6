"""Text rendering of a check report with rich: assumptions, findings table, one-line summary."""

from __future__ import annotations

import math

from rich.console import Console
from rich.table import Table

from ranum.detect import Report

__all__ = ["render_check"]

_MAX_ASSUMPTION_ROWS = 12


def render_check(report: Report, console: Console, verbose: bool = False) -> None:
    """Print a check report: what was assumed, what was found, and a summary line."""
    console.print(f"[bold]ranum check[/bold] {report.model}")
    _assumptions(report, console, verbose)
    for warning in report.warnings:
        console.print(f"[yellow]warning:[/yellow] {warning}", highlight=False)
    if report.findings:
        table = Table(title="Potential numerical defects", title_justify="left", show_lines=False)
        for column in ("node", "op", "hazard", "kind", "operand interval", "invalid", "certain"):
            table.add_column(column, overflow="fold")
        for f in report.findings:
            table.add_row(
                f.node, f.op_type, f.hazard, f.kind,
                f"[{_num(f.interval[0])}, {_num(f.interval[1])}]", f.invalid, "yes" if f.certain else "may",
            )
        console.print(table)
        _source_lines(report, console)
    certain = sum(1 for f in report.findings if f.certain)
    unsupported = ", ".join(report.unsupported_ops) if report.unsupported_ops else "none"
    colour = "red" if report.findings else "green"
    skipped = len(report.not_analysed_nodes)
    analysed = f"{report.nodes - skipped} of {report.nodes} nodes analysed ({skipped} not: see the warnings)" \
        if skipped else f"{report.nodes} nodes analysed"
    console.print(
        f"[{colour}]{analysed}, {len(report.findings)} findings ({certain} certain), "
        f"unsupported ops: {unsupported}, {report.seconds:.3f} s[/{colour}]",
        highlight=False,
    )


def _source_lines(report: Report, console: Console) -> None:
    """``model.py:42  loss = -(y * torch.log(p)).sum()  Log: log of a non-positive value`` per located finding."""
    located = [f for f in report.findings if f.source is not None]
    if not located:
        return
    console.print("[bold]Source lines[/bold]")
    for f in located:
        verdict = "always" if f.certain else "can"
        console.print(f"  {f.source.short()}  {f.source.code}  {f.op_type} {verdict} receive {f.invalid}: "
                      f"{f.hazard} ({f.node})", highlight=False, markup=False, soft_wrap=True)


def _assumptions(report: Report, console: Console, verbose: bool) -> None:
    rows = [a for a in report.analysis.assumptions if a.role != "constant"]
    if not rows:
        return
    table = Table(title="Assumed ranges", title_justify="left")
    for column in ("tensor", "role", "range", "source"):
        table.add_column(column, overflow="fold")
    shown = rows if verbose else rows[:_MAX_ASSUMPTION_ROWS]
    for a in shown:
        text = "exact values" if a.low is None else f"[{_num(a.low)}, {_num(a.high)}]"
        table.add_row(a.tensor, a.role, text, a.source)
    console.print(table)
    if len(shown) < len(rows):
        console.print(f"... and {len(rows) - len(shown)} more (use --verbose to list all)")


def _num(value: float) -> str:
    if math.isinf(value):
        return "+inf" if value > 0 else "-inf"
    return f"{value:.6g}"
