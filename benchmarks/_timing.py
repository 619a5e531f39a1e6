"""Timing helpers shared by the benchmarks: medians, onnxruntime sessions, JSON output."""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper

OUT = Path(__file__).resolve().parent / "out"


def median_seconds(fn: Callable[[], object], repeats: int, warmup: int = 1) -> float:
    """Median wall-clock seconds of ``fn`` over ``repeats`` runs after ``warmup`` runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def ort_inference_seconds(model: onnx.ModelProto, feeds: dict[str, np.ndarray], threads: int = 2) -> float:
    """Median of 10 onnxruntime CPU inferences after warm-up, ``threads`` intra-op threads."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.log_severity_level = 3
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return median_seconds(lambda: session.run(None, feeds), repeats=10, warmup=3)


def random_feeds(model: onnx.ModelProto, spec: dict, rng: np.random.Generator, dims: dict | None = None) -> dict:
    """Inputs drawn inside the spec's ranges (defaults [-1, 1] / [0, 1])."""
    feeds = {}
    initializers = {i.name for i in model.graph.initializer}
    for value in model.graph.input:
        if value.name in initializers:
            continue
        ttype = value.type.tensor_type
        shape = [d.dim_value if d.HasField("dim_value") else (dims or {}).get(d.dim_param, 1) for d in ttype.shape.dim]
        dtype = helper.tensor_dtype_to_np_dtype(ttype.elem_type)
        low, high = spec.get("inputs", {}).get(value.name, (-1, 1) if np.issubdtype(dtype, np.floating) else (0, 1))
        data = rng.uniform(low, high, size=shape)
        feeds[value.name] = (np.round(data) if not np.issubdtype(dtype, np.floating) else data).astype(dtype)
    return feeds


def write_json(name: str, rows: list[dict], summary: dict) -> Path:
    """Write ``benchmarks/out/<name>.json`` and return its path."""
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"{name}.json"
    path.write_text(json.dumps({"rows": rows, "summary": summary}, indent=2))
    return path
