"""Benchmark ``ranum confirm`` on the defect zoo: per finding, status, strategy and seconds.

Prints a table and a summary (confirmed count, median and max seconds per finding) and writes
``benchmarks/out/confirm.json``. Run from the repository root: ``python benchmarks/confirm.py``.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from _timing import write_json  # noqa: E402

from ranum.confirm import SearchConfig, confirm  # noqa: E402
from tests.zoo.models import BUGGY  # noqa: E402


def main() -> None:
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for record in BUGGY:
            report = confirm(record.model(), record.spec, Path(folder) / record.id, search_config=SearchConfig())
            for r in report.results:
                rows.append({"model": record.id, "node": r.node, "op_type": r.op_type, "kind": r.kind,
                             "status": r.status, "strategy": r.strategy, "seconds": r.seconds})
    table = Table(title="ranum confirm on the defect zoo")
    for column in ("model", "node", "op", "kind", "status", "strategy", "seconds"):
        table.add_column(column)
    for r in rows:
        table.add_row(r["model"], r["node"], r["op_type"], r["kind"], r["status"], r["strategy"] or "-",
                      f"{r['seconds']:.3f}")
    console = Console()
    console.print(table)
    seconds = [r["seconds"] for r in rows]
    confirmed = sum(1 for r in rows if r["status"] == "confirmed")
    summary = {"findings": len(rows), "confirmed": confirmed, "median_seconds": statistics.median(seconds),
               "max_seconds": max(seconds)}
    console.print(f"{confirmed} of {len(rows)} findings confirmed; median {summary['median_seconds']:.3f} s, "
                  f"max {summary['max_seconds']:.3f} s per finding")
    console.print(f"wrote {write_json('confirm', rows, summary)}")


if __name__ == "__main__":
    main()
