"""Run a model in onnxruntime with substituted weights and chosen intermediate tensors exposed."""

from __future__ import annotations

import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper, numpy_helper

from ranum.graph.model import Graph

__all__ = ["Replayer", "expose", "run_onnxruntime", "stops_the_process"]


def expose(model: onnx.ModelProto, graph: Graph, names: Iterable[str]) -> onnx.ModelProto:
    """A copy of ``model`` whose graph outputs also include ``names`` (main-graph tensors)."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    present = {o.name for o in out.graph.output}
    initializers = {i.name for i in out.graph.initializer}
    for name in names:
        if name in present or name in initializers or not name:
            continue
        info = graph.info(name)
        elem_type = info.elem_type if info is not None else onnx.TensorProto.FLOAT
        out.graph.output.append(helper.make_tensor_value_info(name, elem_type, None))
        present.add(name)
    return out


def substitute(model: onnx.ModelProto, weights: Mapping[str, np.ndarray]) -> onnx.ModelProto:
    """A copy of ``model`` with some initializers replaced (same names, dtypes and shapes)."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    for init in out.graph.initializer:
        if init.name in weights:
            value = np.asarray(weights[init.name]).astype(helper.tensor_dtype_to_np_dtype(init.data_type))
            init.CopyFrom(numpy_helper.from_array(value.reshape(tuple(init.dims)), init.name))
    return out


def run_onnxruntime(
    graph: Graph,
    feeds: Mapping[str, np.ndarray],
    weights: Mapping[str, np.ndarray] | None = None,
    names: Iterable[str] = (),
    threads: int = 1,
) -> dict[str, np.ndarray]:
    """Execute the prepared model of ``graph`` and return the requested tensors (and the outputs)."""
    return _run(_session(graph, weights or {}, names, threads), feeds)


class Replayer:
    """onnxruntime runs of one graph exposing ``names``. Candidates that keep the model's own weights (most
    of them) share one session, built on first use; other weights get a session each."""

    def __init__(self, graph: Graph, names: Iterable[str]) -> None:
        self._graph, self._names = graph, list(names)
        self._session: ort.InferenceSession | None = None
        # onnxruntime's first error (no kernel for an operator or a type, inputs it cannot take: bfloat16 arrays),
        # and how many runs it completed
        self.refusal: str | None = None
        self.completed = 0

    def run(self, feeds: Mapping[str, np.ndarray], weights: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """``weights``: those the candidate changed (none: the model's own)."""
        try:
            if weights:
                values = run_onnxruntime(self._graph, feeds, weights, self._names)
            else:
                if self._session is None:
                    self._session = _session(self._graph, {}, self._names)
                values = _run(self._session, feeds)
        except Exception as exc:
            if self.refusal is None:
                self.refusal = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise
        self.completed += 1
        return values


# a child that runs the model once: argv[1] holds model.onnx and feeds.npz
_CHILD = """
import sys
import numpy as np
import onnxruntime as ort
options = ort.SessionOptions()
options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
session = ort.InferenceSession(sys.argv[1] + "/model.onnx", options, providers=["CPUExecutionProvider"])
session.run(None, dict(np.load(sys.argv[1] + "/feeds.npz")))
"""
_CHILD_SECONDS = 300


def stops_the_process(graph: Graph, feeds: Mapping[str, np.ndarray], weights: Mapping[str, np.ndarray]) -> bool:
    """Whether onnxruntime, running the model on ``feeds`` with ``weights`` substituted, kills its process with an
    arithmetic exception (SIGFPE: an integer INT_MIN / -1): run in a child process, which it may kill."""
    if graph.proto is None:
        raise ValueError("graph has no model proto to execute")
    with tempfile.TemporaryDirectory(prefix="ranum-replay-") as folder:
        onnx.save(substitute(graph.proto, {**graph.raw_values, **weights}), str(Path(folder) / "model.onnx"))
        np.savez(Path(folder) / "feeds.npz", **dict(feeds))
        child = subprocess.run([sys.executable, "-c", _CHILD, folder], capture_output=True, timeout=_CHILD_SECONDS)
    return child.returncode == -signal.SIGFPE


def _session(graph: Graph, weights: Mapping[str, np.ndarray], names: Iterable[str],
             threads: int = 1) -> ort.InferenceSession:
    if graph.proto is None:
        raise ValueError("graph has no model proto to execute")
    # large weights the loader left out of the parsed model go back in (replaced ones need not)
    model = expose(substitute(graph.proto, {**graph.raw_values, **weights}), graph, names)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 4  # errors are raised (and judged: an integer division by zero counts)
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def _run(session: ort.InferenceSession, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    wanted = [o.name for o in session.get_outputs()]
    return dict(zip(wanted, session.run(wanted, dict(feeds))))
