"""Benchmark ``ranum fix`` on the buggy models of the defect zoo, in every mode.

Prints a table (model, mode, certified, seconds, kept fraction of the clipped ranges, optimiser,
operator-level clips) and a summary (certified count per mode), and writes
``benchmarks/out/fix.json``. Run from the repository root: ``python benchmarks/fix.py``.
"Kept" is the geometric mean of the kept fractions of the preconditions that have one (1.0 when
nothing is clipped); "op clips" counts clips of a vulnerable operator's own operand (operator mode,
or the fallback of ``all`` mode when no input/weight clip certifies).
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from _timing import write_json  # noqa: E402

from ranum.fix import FixConfig, fix  # noqa: E402
from tests.zoo.models import BUGGY  # noqa: E402

MODES = ("operator", "all", "weights", "inputs")
CONFIG = FixConfig(seconds=30.0)


def _kept(report) -> float:
    fractions = [p.kept_fraction for p in report.preconditions if p.kept_fraction is not None]
    return math.exp(sum(math.log(max(f, 1e-300)) for f in fractions) / len(fractions)) if fractions else 1.0


def main() -> None:
    rows = []
    for record in BUGGY:
        for mode in MODES:
            start = time.perf_counter()
            report = fix(record.model(), record.spec, mode, CONFIG)
            rows.append({
                "model": record.id, "mode": mode, "certified": report.certified,
                "seconds": time.perf_counter() - start, "kept": _kept(report),
                "optimiser": report.optimiser, "preconditions": len(report.preconditions),
                "operator_clips": sum(p.node is not None for p in report.preconditions),
                "remaining": [f.hazard_id for f in report.remaining],
            })
    table = Table(title="ranum fix on the defect zoo")
    for column in ("model", "mode", "certified", "seconds", "kept", "optimiser", "op clips"):
        table.add_column(column, justify="left" if column in ("model", "mode", "optimiser") else "right")
    for r in rows:
        table.add_row(r["model"], r["mode"], "yes" if r["certified"] else "no", f"{r['seconds']:.2f}",
                      f"{r['kept']:.3f}", r["optimiser"] or "-", str(r["operator_clips"]))
    console = Console(width=150)
    console.print(table)
    by_mode = {m: [r for r in rows if r["mode"] == m] for m in MODES}
    summary = {"models": len(BUGGY), "certified": {m: sum(r["certified"] for r in by_mode[m]) for m in MODES},
               "seconds": {m: sum(r["seconds"] for r in by_mode[m]) for m in MODES}}
    counts = ", ".join(f"{m} {summary['certified'][m]}/{len(BUGGY)}" for m in MODES)
    console.print(f"certified: {counts}")
    console.print(f"wrote {write_json('fix', rows, summary)}")


if __name__ == "__main__":
    main()
