"""Command-line interface: the only place that prints and chooses exit codes.

Exit codes: 0 no finding, 1 findings, 2 bad input or usage (one-line message on stderr); with ``check
--strict``, 3 where nothing was found but some node was not analysed; 4 an internal error (a bug of
ranum's: the traceback, then a one-line message, on stderr), so that a script never reads a crash as
findings.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import stat
import sys
import tempfile
import time
import traceback
from collections.abc import Iterator, Sequence
from dataclasses import replace
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console

from ranum import __version__
from ranum.config import AnalysisConfig
from ranum.errors import ModelError, RangeSpecError, RanumError

if TYPE_CHECKING:
    from ranum.domain.spec import RangeSpec

# The analysis (torch, onnx) is imported by the commands that run it: `ranum --help`, and a bad
# option, then answer in a fraction of a second instead of the seconds torch takes to import.

EXIT_CLEAN, EXIT_FINDINGS, EXIT_BAD_INPUT, EXIT_INCOMPLETE, EXIT_INTERNAL = 0, 1, 2, 3, 4

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="ranum: find, confirm and fix numerical defects (NaN/Inf) in neural network architectures.",
)


class OutputFormat(str, Enum):
    text = "text"
    json = "json"


class CheckFormat(str, Enum):
    text = "text"
    json = "json"
    sarif = "sarif"
    html = "html"


class FindingKind(str, Enum):
    all = "all"
    forward = "forward"
    gradient = "gradient"


_MODEL_HELP = "ONNX model file, or path/to/file.py:factory (a function returning a torch.nn.Module)."
_INPUT_HELP = "NAME=SHAPE[:LO,HI][:DTYPE] for an input of a file.py:factory model, e.g. x=1x784:0,1."

# options shared by check, confirm and fix (one declaration each)
_MODEL = typer.Argument(..., help=_MODEL_HELP)
_INPUTS = typer.Option([], "--input", "-i", help=_INPUT_HELP)
_RANGES = typer.Option([], "--range", "-r",
                       help="NAME=LO,HI for a graph input or initializer (an empty end: unbounded).")
_SPEC = typer.Option(None, "--spec", help="JSON range spec file.")
_WEIGHTS = typer.Option(
    None, "--weights", help="Weight ranges: 'derived' (default), 'exact' (trained model) or LO,HI for all."
)
_DIMS = typer.Option([], "--dim", help="NAME=VALUE for a symbolic dimension (default 1).")


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
    model: Path = _MODEL,
    inputs: list[str] = _INPUTS,
    ranges: list[str] = _RANGES,
    spec: Path | None = _SPEC,
    weights: str | None = _WEIGHTS,
    dims: list[str] = _DIMS,
    output_format: CheckFormat = typer.Option(CheckFormat.text, "--format", "-f",
                                              help="Report format: text, json, sarif (SARIF 2.1.0) or html."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Write the report to this file."),
    block_budget: int = typer.Option(1 << 16, "--block-budget", min=1, help="Most blocks per tensor."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="List every assumption."),
    kind: FindingKind = typer.Option(FindingKind.all, "--kind", help="Report only findings of this kind: forward "
                                     "(NaN/Inf at inference), gradient (only training breaks) or all."),
    strict: bool = typer.Option(False, "--strict", help="Exit with 3, not 0, when nothing is found but some node "
                                "was not analysed (an unsupported operator): a gate for CI."),
) -> None:
    """Find every operator that can receive an invalid input and produce NaN or Inf."""
    err = Console(stderr=True)
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s: %(message)s")
    _check_usage(err, model, inputs, spec, ranges, weights, dims)
    _share_the_cores()
    from ranum.analysis import analyze
    from ranum.detect._check import report_from
    from ranum.report import render_check

    try:
        with _progress() as step:
            source, input_ranges, notes = _model_source(model, inputs, step)
            range_spec = _range_spec(spec, ranges, weights, dims, input_ranges)
            step("analysing")
            analysis = analyze(source, range_spec, AnalysisConfig(block_budget=block_budget))
            report = report_from(analysis, str(model), notes)
    except RanumError as exc:
        _fail(err, str(exc))
    except OSError as exc:
        _fail(err, f"{exc.strerror or exc}: {exc.filename or model}")
    if kind is not FindingKind.all:
        report = replace(report, findings=tuple(f for f in report.findings if f.kind == kind.value))
    if output_format is not CheckFormat.text:
        text = _render_document(report, output_format)
        if output is None:
            sys.stdout.write(text)
        else:
            _write_atomically(err, output, text)
    else:
        console = _report_console(record=output is not None)
        render_check(report, console, verbose)
        if output is not None:
            _write_atomically(err, output, console.export_text())
    if report.findings:
        raise typer.Exit(EXIT_FINDINGS)
    raise typer.Exit(EXIT_INCOMPLETE if strict and report.not_analysed_nodes else EXIT_CLEAN)


_REPORT_WIDTH = 200  # tables written to a file or a pipe: long node names stay on one line


def _report_console(record: bool = False) -> Console:
    """The console a report is written to: a terminal's own width; a file or a pipe (not a terminal, and no
    COLUMNS set) gets wide lines rather than rich's 80 columns, which fold node names into pieces."""
    if record or (not sys.stdout.isatty() and "COLUMNS" not in os.environ):
        return Console(record=record, width=_REPORT_WIDTH)
    return Console()


@app.command()
def confirm(
    model: Path = _MODEL,
    inputs: list[str] = _INPUTS,
    ranges: list[str] = _RANGES,
    spec: Path | None = _SPEC,
    weights: str | None = _WEIGHTS,
    dims: list[str] = _DIMS,
    nodes: list[str] = typer.Option([], "--node", help="Only confirm the findings at this node (repeatable)."),
    output: Path = typer.Option(..., "--output", "-o", help="Folder for the generated tests."),
    force: bool = typer.Option(False, "--force", help="Replace the content of a non-empty output folder."),
    seed: int = typer.Option(0, "--seed", help="Random seed (results are reproducible)."),
    seconds: float = typer.Option(20.0, "--seconds", min=0.1, help="Search budget per finding."),
    output_format: OutputFormat = typer.Option(OutputFormat.text, "--format", "-f", help="Report format."),
    system: bool = typer.Option(False, "--system", help="Also generate system tests: training data that leads "
                                "to the failure under plain SGD from the initial weights."),
    lr: float = typer.Option(0.1, "--lr", help="SGD learning rate of the training recipe (--system)."),
    steps: int = typer.Option(1, "--steps", help="SGD steps of the training recipe (--system)."),
    batch: int = typer.Option(1, "--batch", help="Examples per SGD step (--system)."),
    loss: str | None = typer.Option(None, "--loss", help="Scalar loss tensor (default: the only scalar output)."),
    train: list[str] = typer.Option([], "--train", help="Trainable weight (repeatable; default: every float "
                                    "initializer with more than one element)."),
) -> None:
    """Generate failure-exhibiting unit tests for the findings, verified in onnxruntime."""
    err = Console(stderr=True)
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s: %(message)s")
    _check_usage(err, model, inputs, spec, ranges, weights, dims)
    _share_the_cores()
    from ranum.confirm import SearchConfig, SystemConfig
    from ranum.confirm import confirm as run_confirm

    try:
        training = SystemConfig(lr=lr, steps=steps, batch=batch, loss=loss, train=tuple(train) or None,
                                seconds=seconds) if system else None
        with _progress() as step:
            source, input_ranges, notes = _model_source(model, inputs, step)
            _warn(err, notes)
            range_spec = _range_spec(spec, ranges, weights, dims, input_ranges)
            step("analysing")
            report = run_confirm(source, range_spec, output, nodes or None, SearchConfig(seed=seed, seconds=seconds),
                                 force=force, progress=lambda m: step(f"confirming {m}", advance=True),
                                 system=training)
    except RanumError as exc:
        _fail(err, str(exc))
    if output_format is OutputFormat.json:
        sys.stdout.write(json.dumps({"results": [
            {"node": r.node, "op_type": r.op_type, "status": r.status, "seconds": round(r.seconds, 4),
             "dir": r.dir, "hazard": r.hazard, "kind": r.kind, "strategy": r.strategy, "note": r.note,
             "reaches_outputs": r.reaches_outputs, **({"system": r.system} if r.system is not None else {})}
            for r in report.results]}, indent=2) + "\n")
    else:
        _render_confirm(report, _report_console())
    raise typer.Exit(EXIT_CLEAN if report.all_confirmed else EXIT_FINDINGS)


def _render_confirm(report, console: Console) -> None:
    from rich.table import Table

    table = Table(title=f"ranum confirm {report.model}", title_justify="left")
    for column in ("node", "op", "hazard", "status", "seconds", "test"):
        table.add_column(column, overflow="fold")
    for r in report.results:
        status = "[green]confirmed[/green]" if r.status == "confirmed" else "[yellow]not confirmed[/yellow]"
        test = "\n".join(t for t in (r.dir, r.note) if t)
        table.add_row(r.node, r.op_type, r.hazard, status, f"{r.seconds:.2f}", test)
    console.print(table)
    done = sum(1 for r in report.results if r.status == "confirmed")
    console.print(f"{done} of {len(report.results)} findings confirmed", highlight=False)
    systems = [r.system for r in report.results if r.system is not None]
    if systems:
        reached = sum(1 for s in systems if s["status"] == "confirmed")
        console.print(f"{reached} of {len(systems)} system tests confirmed (training data reaches the failure)",
                      highlight=False)


@app.command()
def fix(
    model: Path = _MODEL,
    inputs: list[str] = _INPUTS,
    ranges: list[str] = _RANGES,
    spec: Path | None = _SPEC,
    weights: str | None = _WEIGHTS,
    dims: list[str] = _DIMS,
    on: str = typer.Option("all", "--on", help="What to clip: inputs, weights, all, or operator."),
    output: Path = typer.Option(..., "--output", "-o", help="Where to write the patched model."),
    seconds: float = typer.Option(60.0, "--seconds", min=0.1, help="Search budget."),
    output_format: OutputFormat = typer.Option(OutputFormat.text, "--format", "-f", help="Report format."),
) -> None:
    """Suggest clipping preconditions, write the patched model, and certify it by re-running detection."""
    err = Console(stderr=True)
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s: %(message)s")
    _check_output_file(err, model, output)
    _check_usage(err, model, inputs, spec, ranges, weights, dims)
    _share_the_cores()
    from ranum.fix import FixConfig
    from ranum.fix import fix as run_fix

    try:
        with _progress() as step:
            source, input_ranges, notes = _model_source(model, inputs, step)
            _warn(err, notes)
            range_spec = _range_spec(spec, ranges, weights, dims, input_ranges)
            step(f"searching preconditions (--on {on}, up to {seconds:g} s)")
            report = run_fix(source, range_spec, on, FixConfig(seconds=seconds))
    except RanumError as exc:
        _fail(err, str(exc))
    _write_atomically(err, output, None, report.patched.SerializeToString())
    if output_format is OutputFormat.json:
        sys.stdout.write(report.to_json() + "\n")
    else:
        _render_fix(report, output, _report_console())
    raise typer.Exit(EXIT_CLEAN if report.certified else EXIT_FINDINGS)


def _check_output_file(err: Console, model: Path, output: Path) -> None:
    """Reject an output path that cannot take the patched model before the (long) search."""
    if output.resolve() == model.resolve():
        _fail(err, "--output would overwrite the input model; choose another path")
    if output.is_dir():
        _fail(err, f"--output is a folder, not a file: {output}")
    if not output.resolve().parent.is_dir():
        _fail(err, f"output folder does not exist: {output.parent}")


def _render_fix(report, output: Path, console: Console) -> None:
    console.print(f"[bold]ranum fix[/bold] {report.model} (--on {report.mode}): "
                  f"{report.original_findings} finding(s) before", highlight=False)
    for warning in report.warnings:
        console.print(f"[yellow]warning:[/yellow] {warning}", highlight=False)
    for p in report.preconditions:
        kept = "" if p.kept_fraction is None else f" (keeps {100 * p.kept_fraction:.1f}% of its range)"
        fallback = " [operator fallback: no input/weight clip certifies]" if p.node and report.mode != "operator" \
            else ""
        moved = " [excludes some of its stored values: the patched model computes with them clipped]" \
            if p.keeps_initial_values is False else ""
        console.print(f"  - {p.describe()}{kept}{fallback}{moved}", highlight=False, markup=False)
    if not report.preconditions:
        console.print("  no precondition found")
    console.print(f"patched model written to {output}", highlight=False)
    if report.certified:
        console.print("[green]certified: no finding[/green]")
        return
    if report.remaining:
        console.print(f"[red]not certified: {len(report.remaining)} finding(s) remain[/red]")
        for f in report.remaining:
            console.print(f"  - {f.node} ({f.op_type}): {f.hazard}", highlight=False, markup=False)
    skipped = report.not_analysed
    if skipped:
        unsupported = ", ".join(report.unsupported_ops) or "none"
        console.print(f"[red]not certified: {len(skipped)} node(s) of the patched model not analysed, so no "
                      f"certificate covers them (unsupported ops: {unsupported})[/red]", highlight=False)
        for entry in skipped:
            console.print(f"  - {entry['node']} ({entry['op_type']}): {entry['reason']}", highlight=False,
                          markup=False)


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
        _report_console().print(table)


def _range_spec(spec: Path | None, ranges: list[str], weights: str | None, dims: list[str],
                input_ranges: dict[str, tuple[float, float]] | None = None) -> RangeSpec:
    from ranum.domain.spec import RangeSpec, parse_range_text, parse_spec, parse_weights_mode

    result = parse_spec(spec) if spec is not None else RangeSpec()
    result = result.with_ranges({**(input_ranges or {}), **dict(parse_range_text(text) for text in ranges)})
    if weights is not None:
        result = result.with_weights_default(parse_weights_mode(weights))
    if dims:
        result = result.with_dims(dict(_parse_dim(text) for text in dims))
    return result


def _check_usage(err: Console, model: Path, inputs: list[str], spec: Path | None, ranges: list[str],
                 weights: str | None, dims: list[str]) -> None:
    """Reject a missing model file and bad range options before the analysis (torch) is imported: a
    usage error then answers in a fraction of a second."""
    text = str(model)
    path = Path(text.split(".py:")[0] + ".py") if ".py:" in text else model
    try:
        if inputs and ".py:" not in text:
            _model_source(model, inputs, lambda *_: None)  # raises: --input is for file.py:factory models
        if not path.exists():
            raise ModelError(f"model file not found: {path}")
        _range_spec(spec, ranges, weights, dims)
    except RanumError as exc:
        _fail(err, str(exc))


def _share_the_cores() -> None:
    """Run torch's threads on the cores that other running processes leave free (at least one), unless
    ``OMP_NUM_THREADS`` says how many. Its threads, one per core, spin while they wait for each other: beside
    one busy process on 2 cores, a GPT-2 check with exact weights took 2.4 s on two threads and 0.9 s on
    one (0.8 s on two, idle)."""
    if os.environ.get("OMP_NUM_THREADS"):
        return
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    others = _other_running_processes()
    if others is None or cores - others >= cores:
        return
    import torch

    torch.set_num_threads(max(1, cores - others))


_LOAD_SAMPLES = 5  # reads of the running count, 2 ms apart: the least of them, past a short-lived process


def _other_running_processes() -> int | None:
    """How many other processes are running or ready to run now (Linux's ``/proc/loadavg`` counts this
    one); None where the count is not available."""
    counts = []
    for _ in range(_LOAD_SAMPLES):
        try:
            counts.append(int(Path("/proc/loadavg").read_text().split()[3].split("/")[0]))
        except (OSError, IndexError, ValueError):
            return None
        time.sleep(0.002)
    return max(0, min(counts) - 1)


def _warn(err: Console, notes: Sequence[str]) -> None:
    """Print what the user should know about how a module was exported (confirm and fix have no
    report warnings to carry it)."""
    for note in notes:
        err.print(f"warning: {note}", markup=False, highlight=False)


def _model_source(model: Path, inputs: list[str], step) -> tuple[Any, dict[str, tuple[float, float]], tuple[str, ...]]:
    """The ONNX file as given, or the module of ``file.py:factory`` exported (with its --input ranges,
    and notes on how it was exported)."""
    text = str(model)
    if ".py:" not in text:
        if text.endswith(".py"):
            raise RangeSpecError(f"a PyTorch model is given as {text}:FACTORY, FACTORY a function of that file "
                                 "returning the torch.nn.Module")
        if inputs:
            raise RangeSpecError("--input describes the inputs of a file.py:factory model; for an ONNX file "
                                 "use --range NAME=LO,HI")
        return model, {}, ()
    import torch

    from ranum.frontend import export_module, load_factory, parse_input

    specs = [parse_input(t) for t in inputs]
    if not specs:
        raise RangeSpecError(f"{text} needs the shape of each input: --input NAME=SHAPE[:LO,HI], e.g. x=1x784:0,1")
    step(f"loading {text}")
    module = load_factory(text)
    generator = torch.Generator().manual_seed(0)
    step(f"exporting {type(module).__name__} with torch.onnx.export")
    exported = export_module(module, tuple(s.example(generator) for s in specs), input_names=[s.name for s in specs])
    return exported.model, {s.name: (s.low, s.high) for s in specs if s.low is not None}, exported.notes


@contextlib.contextmanager
def _progress() -> Iterator[Any]:
    """A ``step(description, advance=False)`` callback: a rich progress display on a terminal, else nothing."""
    if not sys.stderr.isatty():
        yield lambda description, advance=False: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task("starting", total=None)

        def step(description: str, advance: bool = False) -> None:
            progress.update(task, description=description, advance=1 if advance else 0)

        yield step


def _render_document(report, output_format: CheckFormat) -> str:
    if output_format is CheckFormat.json:
        return report.to_json() + "\n"
    if output_format is CheckFormat.sarif:
        from ranum.report import render_sarif

        return render_sarif(report) + "\n"
    from ranum.report import render_html

    return render_html(report)


def _parse_dim(text: str) -> tuple[str, int]:
    from ranum.errors import RangeSpecError

    name, sep, value = text.partition("=")
    if not sep or not name or not value.strip().isdigit():
        raise RangeSpecError(f"--dim '{text}' is not of the form NAME=VALUE with a non-negative integer")
    return name, int(value)


def _write_atomically(err: Console, path: Path, text: str | None, data: bytes | None = None) -> None:
    """Write through a temporary file in the same folder, so a failure leaves nothing half-written (the temporary
    file removed); the file gets the mode a plain write gives it."""
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        _fail(err, f"output folder does not exist: {folder}")
    temp = None
    try:
        handle, temp = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(handle, "wb") as stream:
            stream.write(data if data is not None else text.encode())
        os.chmod(temp, _plain_write_mode(path))
        os.replace(temp, path)
    except OSError as exc:
        if temp is not None:
            with contextlib.suppress(OSError):
                os.unlink(temp)
        _fail(err, f"cannot write {path}: {exc.strerror or exc}")


def _plain_write_mode(path: Path) -> int:
    """The permission bits ``open(path, "w")`` leaves: an existing file's own, else 0o666 less the umask
    (``mkstemp`` creates 0o600)."""
    with contextlib.suppress(OSError):
        if path.is_file():
            return stat.S_IMODE(path.stat().st_mode)
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _fail(err: Console, message: str) -> None:
    err.print(f"error: {message}", highlight=False, markup=False, soft_wrap=True)
    raise typer.Exit(EXIT_BAD_INPUT)


def main() -> None:
    """Console entry point; usage errors from typer/click also exit with 2, an unexpected exception (a bug)
    with 4 after its traceback."""
    try:
        app(standalone_mode=True)
    except Exception as exc:  # noqa: BLE001 - anything else is ranum's own failure
        traceback.print_exception(exc, file=sys.stderr)
        print(f"ranum {__version__}: internal error ({type(exc).__name__}: {exc}); nothing was written. "
              "This is a bug of ranum: please report it with the command and the model.", file=sys.stderr)
        sys.exit(EXIT_INTERNAL)


if __name__ == "__main__":
    main()
