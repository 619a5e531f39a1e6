"""Benchmark ``ranum check`` on the defect zoo and the bundled example.

Prints a table (model, nodes, findings, analysis seconds, onnxruntime inference seconds, ratio) and
writes ``benchmarks/out/check.json``. Run from the repository root: ``python benchmarks/check.py``.
Times are medians; compare the ratio column (both measured in the same run), not absolute seconds.
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from _timing import median_seconds, ort_inference_seconds, random_feeds, write_json  # noqa: E402

import ranum  # noqa: E402
from examples.make_examples import softmax_regression  # noqa: E402
from tests.zoo.models import MODELS  # noqa: E402


def cases():
    yield "example/softmax_regression", softmax_regression(False), {"inputs": {"x": [0, 1], "y": [0, 1]}}
    yield "example/softmax_regression_fixed", softmax_regression(True), {"inputs": {"x": [0, 1], "y": [0, 1]}}
    for record in MODELS:
        yield f"zoo/{record.id}", record.model(), dict(record.spec)


def main() -> None:
    rng = np.random.default_rng(0)
    rows = []
    for name, model, spec in cases():
        report = ranum.check(model, spec)
        seconds = median_seconds(lambda m=model, s=spec: ranum.check(m, s), repeats=5)
        inference = ort_inference_seconds(model, random_feeds(model, spec, rng))
        rows.append({
            "model": name, "nodes": report.nodes, "findings": len(report.findings),
            "unsupported_ops": list(report.unsupported_ops), "analysis_seconds": seconds,
            "onnxruntime_seconds": inference, "ratio": seconds / inference if inference > 0 else None,
        })
    table = Table(title="ranum check on the defect zoo")
    for column in ("model", "nodes", "findings", "analysis s", "onnxruntime s", "ratio"):
        table.add_column(column, justify="right" if column != "model" else "left")
    for r in rows:
        table.add_row(r["model"], str(r["nodes"]), str(r["findings"]), f"{r['analysis_seconds']:.4f}",
                      f"{r['onnxruntime_seconds']:.6f}", f"{r['ratio']:.1f}")
    console = Console()
    console.print(table)
    ratios = [r["ratio"] for r in rows if r["ratio"] is not None]
    summary = {"models": len(rows), "median_ratio": statistics.median(ratios), "max_ratio": max(ratios),
               "median_analysis_seconds": statistics.median(r["analysis_seconds"] for r in rows)}
    console.print(f"{summary['models']} models; analysis/inference ratio median {summary['median_ratio']:.1f}, "
                  f"max {summary['max_ratio']:.1f}; median analysis {summary['median_analysis_seconds']:.4f} s")
    console.print(f"wrote {write_json('check', rows, summary)}")


if __name__ == "__main__":
    main()
