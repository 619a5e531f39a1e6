"""Command-line interface: the only place that prints and chooses exit codes.

Exit codes: 0 no finding, 1 findings, 2 bad input or usage (one-line message on stderr).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
from enum import Enum
from pathlib import Path

import typer
from rich.console import Console

from ranum import __version__
from ranum.analysis import analyze
from ranum.config import AnalysisConfig
from ranum.detect._check import report_from
from ranum.domain.ranges import RangeSpec, parse_range_text, parse_spec, parse_weights_mode
from ranum.errors import RanumError
from ranum.report import render_check

EXIT_CLEAN, EXIT_FINDINGS, EXIT_BAD_INPUT = 0, 1, 2

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="ranum: find, confirm and fix numerical defects (NaN/Inf) in neural network architectures.",
)


class OutputFormat(str, Enum):
    text = "text"
    json = "json"


def _version(value: bool) -> None:
    if value:
        typer.echo(f"ranum {__version__}")
        raise typer.Exit(EXIT_CLEAN)


@app.callback()
def _main(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version."),
) -> None:
    """Assure ONNX models against numerical defects."""


@app.command()
def check(
    model: Path = typer.Argument(..., help="ONNX model file."),
    ranges: list[str] = typer.Option([], "--range", "-r", help="NAME=LO,HI for a graph input or initializer."),
    spec: Path | None = typer.Option(None, "--spec", help="JSON range spec file."),
    weights: str | None = typer.Option(
        None, "--weights", help="Weight ranges: 'derived' (default), 'exact' (trained model) or LO,HI for all."
    ),
    dims: list[str] = typer.Option([], "--dim", help="NAME=VALUE for a symbolic dimension (default 1)."),
    output_format: OutputFormat = typer.Option(OutputFormat.text, "--format", "-f", help="Report format."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Write the report to this file."),
    block_budget: int = typer.Option(1 << 16, "--block-budget", min=1, help="Most blocks per tensor."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="List every assumption."),
) -> None:
    """Find every operator that can receive an invalid input and produce NaN or Inf."""
    err = Console(stderr=True)
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s: %(message)s")
    try:
        range_spec = _range_spec(spec, ranges, weights, dims)
        analysis = analyze(model, range_spec, AnalysisConfig(block_budget=block_budget))
        report = report_from(analysis, str(model))
    except RanumError as exc:
        _fail(err, str(exc))
    except OSError as exc:
        _fail(err, f"{exc.strerror or exc}: {exc.filename or model}")
    if output_format is OutputFormat.json:
        text = report.to_json() + "\n"
        if output is None:
            sys.stdout.write(text)
        else:
            _write_atomically(err, output, text)
    else:
        console = Console(record=output is not None, width=None if output is None else 160)
        render_check(report, console, verbose)
        if output is not None:
            _write_atomically(err, output, console.export_text())
    raise typer.Exit(EXIT_FINDINGS if report.findings else EXIT_CLEAN)


@app.command()
def confirm(
    model: Path = typer.Argument(..., help="ONNX model file."),
    ranges: list[str] = typer.Option([], "--range", "-r", help="NAME=LO,HI for a graph input or initializer."),
    spec: Path | None = typer.Option(None, "--spec", help="JSON range spec file."),
    weights: str | None = typer.Option(None, "--weights", help="'derived' (default), 'exact' or LO,HI."),
    dims: list[str] = typer.Option([], "--dim", help="NAME=VALUE for a symbolic dimension (default 1)."),
    nodes: list[str] = typer.Option([], "--node", help="Only confirm the findings at this node (repeatable)."),
    output: Path = typer.Option(..., "--output", "-o", help="Folder for the generated tests."),
    force: bool = typer.Option(False, "--force", help="Replace the content of a non-empty output folder."),
    seed: int = typer.Option(0, "--seed", help="Random seed (results are reproducible)."),
    seconds: float = typer.Option(20.0, "--seconds", min=0.1, help="Search budget per finding."),
    output_format: OutputFormat = typer.Option(OutputFormat.text, "--format", "-f", help="Report format."),
) -> None:
    """Generate failure-exhibiting unit tests for the findings, verified in onnxruntime."""
    from ranum.confirm import SearchConfig
    from ranum.confirm import confirm as run_confirm

    err = Console(stderr=True)
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s: %(message)s")
    show = err.print if output_format is OutputFormat.text and sys.stderr.isatty() else None
    try:
        range_spec = _range_spec(spec, ranges, weights, dims)
        report = run_confirm(model, range_spec, output, nodes or None, SearchConfig(seed=seed, seconds=seconds),
                             force=force, progress=(lambda m: show(f"[dim]confirming {m}[/dim]")) if show else None)
    except RanumError as exc:
        _fail(err, str(exc))
    if output_format is OutputFormat.json:
        sys.stdout.write(json.dumps({"results": [
            {"node": r.node, "op_type": r.op_type, "status": r.status, "seconds": round(r.seconds, 4),
             "dir": r.dir, "hazard": r.hazard, "kind": r.kind, "strategy": r.strategy, "note": r.note}
            for r in report.results]}, indent=2) + "\n")
    else:
        _render_confirm(report, Console())
    raise typer.Exit(EXIT_CLEAN if report.all_confirmed else EXIT_FINDINGS)


def _render_confirm(report, console: Console) -> None:
    from rich.table import Table

    table = Table(title=f"ranum confirm {report.model}", title_justify="left")
    for column in ("node", "op", "hazard", "status", "seconds", "test"):
        table.add_column(column, overflow="fold")
    for r in report.results:
        status = "[green]confirmed[/green]" if r.status == "confirmed" else "[yellow]not confirmed[/yellow]"
        table.add_row(r.node, r.op_type, r.hazard, status, f"{r.seconds:.2f}", r.dir or r.note)
    console.print(table)
    done = sum(1 for r in report.results if r.status == "confirmed")
    console.print(f"{done} of {len(report.results)} findings confirmed", highlight=False)


@app.command()
def fix(
    model: Path = typer.Argument(..., help="ONNX model file."),
    ranges: list[str] = typer.Option([], "--range", "-r", help="NAME=LO,HI for a graph input or initializer."),
    spec: Path | None = typer.Option(None, "--spec", help="JSON range spec file."),
    weights: str | None = typer.Option(None, "--weights", help="'derived' (default), 'exact' or LO,HI."),
    dims: list[str] = typer.Option([], "--dim", help="NAME=VALUE for a symbolic dimension (default 1)."),
    on: str = typer.Option("all", "--on", help="What to clip: inputs, weights, all, or operator."),
    output: Path = typer.Option(..., "--output", "-o", help="Where to write the patched model."),
    seconds: float = typer.Option(60.0, "--seconds", min=0.1, help="Search budget."),
    output_format: OutputFormat = typer.Option(OutputFormat.text, "--format", "-f", help="Report format."),
) -> None:
    """Suggest clipping preconditions, write the patched model, and certify it by re-running detection."""
    from ranum.fix import FixConfig
    from ranum.fix import fix as run_fix

    err = Console(stderr=True)
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s: %(message)s")
    if output.resolve() == model.resolve():
        _fail(err, "--output would overwrite the input model; choose another path")
    if not output.resolve().parent.is_dir():
        _fail(err, f"output folder does not exist: {output.parent}")
    try:
        range_spec = _range_spec(spec, ranges, weights, dims)
        report = run_fix(model, range_spec, on, FixConfig(seconds=seconds))
    except RanumError as exc:
        _fail(err, str(exc))
    _write_atomically(err, output, None, report.patched.SerializeToString())
    if output_format is OutputFormat.json:
        sys.stdout.write(report.to_json() + "\n")
    else:
        _render_fix(report, output, Console())
    raise typer.Exit(EXIT_CLEAN if report.certified else EXIT_FINDINGS)


def _render_fix(report, output: Path, console: Console) -> None:
    console.print(f"[bold]ranum fix[/bold] {report.model} (--on {report.mode}): "
                  f"{report.original_findings} finding(s) before", highlight=False)
    for p in report.preconditions:
        kept = "" if p.kept_fraction is None else f" (keeps {100 * p.kept_fraction:.1f}% of its range)"
        console.print(f"  - {p.describe()}{kept}", highlight=False, markup=False)
    if not report.preconditions:
        console.print("  no precondition found")
    console.print(f"patched model written to {output}", highlight=False)
    if report.certified:
        console.print("[green]certified: no finding[/green]")
    else:
        console.print(f"[red]not certified: {len(report.remaining)} finding(s) remain[/red]")
        for f in report.remaining:
            console.print(f"  - {f.node} ({f.op_type}): {f.hazard}", highlight=False, markup=False)


@app.command()
def ops(
    output_format: OutputFormat = typer.Option(OutputFormat.text, "--format", "-f", help="text, json or markdown."),
    markdown: bool = typer.Option(False, "--markdown", help="Print the Markdown table used in README."),
) -> None:
    """List the supported operators and the hazards each one declares."""
    from dataclasses import asdict

    from rich.table import Table

    from ranum.ops import REGISTRY
    from ranum.ops.catalog import catalog, markdown_table

    entries = catalog(REGISTRY)
    if markdown:
        sys.stdout.write(markdown_table(entries))
    elif output_format is OutputFormat.json:
        sys.stdout.write(json.dumps([asdict(e) for e in entries], indent=2) + "\n")
    else:
        table = Table(title=f"{len(entries)} supported operators")
        for column in ("operator", "since", "hazards"):
            table.add_column(column, overflow="fold")
        for e in entries:
            name = f"{e.domain}.{e.op_type}" if e.domain else e.op_type
            hazards = "\n".join(f"{h[2]} ({h[1]})" for h in e.hazards) or "-"
            table.add_row(name, ", ".join(str(v) for v in e.since), hazards)
        Console().print(table)


def _range_spec(spec: Path | None, ranges: list[str], weights: str | None, dims: list[str]) -> RangeSpec:
    result = parse_spec(spec) if spec is not None else RangeSpec()
    result = result.with_ranges(dict(parse_range_text(text) for text in ranges))
    if weights is not None:
        result = result.with_weights_default(parse_weights_mode(weights))
    if dims:
        result = result.with_dims(dict(_parse_dim(text) for text in dims))
    return result


def _parse_dim(text: str) -> tuple[str, int]:
    from ranum.errors import RangeSpecError

    name, sep, value = text.partition("=")
    if not sep or not name or not value.strip().isdigit():
        raise RangeSpecError(f"--dim '{text}' is not of the form NAME=VALUE with a non-negative integer")
    return name, int(value)


def _write_atomically(err: Console, path: Path, text: str | None, data: bytes | None = None) -> None:
    """Write through a temporary file in the same folder, so a failure leaves nothing half-written."""
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        _fail(err, f"output folder does not exist: {folder}")
    try:
        handle, temp = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(handle, "wb") as stream:
            stream.write(data if data is not None else text.encode())
        os.replace(temp, path)
    except OSError as exc:
        _fail(err, f"cannot write {path}: {exc.strerror or exc}")


def _fail(err: Console, message: str) -> None:
    err.print(f"error: {message}", highlight=False, markup=False, soft_wrap=True)
    raise typer.Exit(EXIT_BAD_INPUT)


def main() -> None:
    """Console entry point; usage errors from typer/click also exit with 2."""
    app()


if __name__ == "__main__":
    main()
