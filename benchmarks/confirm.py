"""Benchmark ``ranum confirm`` on the defect zoo: per finding, status, strategy and seconds.

Prints a table and a summary (confirmed count, median and max seconds per finding) and writes
``benchmarks/out/confirm.json``. The system column: for models that train (a scalar loss output and
trainable weights), ``confirm --system`` with the zoo's recipe (SGD, lr 1, 1 step, batch 1) and
whether training data reaching the failure was found (targets: >= 93% confirmed, mean < 5 s).
Run from the repository root: ``python benchmarks/confirm.py``.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from _timing import write_json  # noqa: E402

from ranum.confirm import NO_TRAINABLE_WEIGHTS, SearchConfig, SystemConfig, confirm  # noqa: E402
from ranum.errors import RanumError  # noqa: E402
from tests.zoo.models import BUGGY  # noqa: E402


def main() -> None:
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for record in BUGGY:
            report = _confirm(record, Path(folder) / record.id)
            for r in report.results:
                rows.append({"model": record.id, "node": r.node, "op_type": r.op_type, "kind": r.kind,
                             "status": r.status, "strategy": r.strategy, "seconds": r.seconds,
                             "system": r.system})
    table = Table(title="ranum confirm on the defect zoo")
    for column in ("model", "node", "op", "kind", "status", "strategy", "seconds", "system"):
        table.add_column(column)
    for r in rows:
        table.add_row(r["model"], r["node"], r["op_type"], r["kind"], r["status"], r["strategy"] or "-",
                      f"{r['seconds']:.3f}", _system_text(r["system"]))
    console = Console()
    console.print(table)
    seconds = [r["seconds"] for r in rows]
    confirmed = sum(1 for r in rows if r["status"] == "confirmed")
    summary = {"findings": len(rows), "confirmed": confirmed, "median_seconds": statistics.median(seconds),
               "max_seconds": max(seconds)}
    console.print(f"{confirmed} of {len(rows)} findings confirmed; median {summary['median_seconds']:.3f} s, "
                  f"max {summary['max_seconds']:.3f} s per finding")
    systems = [r["system"] for r in rows if r["system"] is not None]
    if systems:
        reached = sum(1 for s in systems if s["status"] == "confirmed")
        summary.update(system_findings=len(systems), system_confirmed=reached,
                       system_mean_seconds=statistics.mean(s["seconds"] for s in systems))
        console.print(f"system tests: {reached} of {len(systems)} confirmed on models that train; "
                      f"mean {summary['system_mean_seconds']:.3f} s per finding")
    console.print(f"wrote {write_json('confirm', rows, summary)}")


SYSTEM = SystemConfig(lr=1.0, steps=1, batch=1)


def _confirm(record, out: Path):
    """Unit tests, plus system tests when the model trains (scalar loss output and trainable weights)."""
    try:
        report = confirm(record.model(), record.spec, out, search_config=SearchConfig(), system=SYSTEM)
    except RanumError:  # no scalar loss output
        return confirm(record.model(), record.spec, out, search_config=SearchConfig())
    if any(r.system is not None and NO_TRAINABLE_WEIGHTS in r.system["note"] for r in report.results):
        return replace(report, results=tuple(replace(r, system=None) for r in report.results))
    return report


def _system_text(system: dict | None) -> str:
    if system is None:
        return "-"
    return f"{system['status']} ({system['steps']} step(s), {system['seconds']:.3f} s)"


if __name__ == "__main__":
    main()
