"""Generic soundness harness for operator rules.

A family's test module ``tests/ops/cases_<family>.py`` lists ``CASES: list[OpCase]``. For each case
the generic tests build a one-node ONNX model, draw block-structured input intervals, run ranum's
abstract interpreter, draw concrete points inside the intervals (corners included), execute the
node in onnxruntime *and* with ranum's concrete rule, and assert:

* soundness: every onnxruntime output lies inside ranum's output interval (NaN excepted: NaN is
  the business of hazards, checked separately);
* agreement: ranum's concrete rule matches onnxruntime (up to dtype tolerances);
* hazards: where onnxruntime produced NaN/Inf from finite inputs, a declared hazard fired.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx import TensorProto, helper, numpy_helper

from ranum.domain.dtypes import is_float, torch_dtype
from ranum.domain.interval import Interval
from ranum.graph.loader import load_model
from ranum.interpret import AbstractRun, run_abstract, run_concrete

FLOAT = TensorProto.FLOAT


@dataclass(frozen=True)
class Operand:
    """One input of the node under test.

    ``value`` set: the operand is a fixed exact constant (indices, shapes, axes) given as an
    initializer. Otherwise it is a graph input whose interval is drawn inside [low, high].
    """

    shape: tuple[int, ...]
    elem_type: int = FLOAT
    low: float = -3.0
    high: float = 3.0
    value: Any = None


@dataclass(frozen=True)
class OpCase:
    """A node configuration to test: op_type, operands, attributes."""

    op_type: str
    inputs: tuple[Operand | None, ...]
    attrs: dict = field(default_factory=dict)
    outputs: int = 1
    opset: int = 18
    domain: str = ""
    name: str = ""
    rtol: float = 1e-5
    check_agreement: bool = True

    @property
    def id(self) -> str:
        return self.name or self.op_type


def build_model(case: OpCase) -> onnx.ModelProto:
    """A one-node model: free operands are graph inputs, fixed ones are initializers."""
    inputs, inits, names = [], [], []
    for i, op in enumerate(case.inputs):
        if op is None:
            names.append("")
            continue
        name = f"in{i}"
        names.append(name)
        if op.value is not None:
            arr = np.asarray(op.value, dtype=_np_dtype(op.elem_type)).reshape(op.shape)
            inits.append(numpy_helper.from_array(arr, name))
        else:
            inputs.append(helper.make_tensor_value_info(name, op.elem_type, list(op.shape)))
    outs = [f"out{i}" for i in range(case.outputs)]
    node = helper.make_node(case.op_type, names, outs, domain=case.domain, **case.attrs)
    graph = helper.make_graph([node], "case", inputs, [helper.make_empty_tensor_value_info(o) for o in outs],
                              initializer=inits)
    opsets = [helper.make_opsetid("", case.opset)]
    if case.domain:
        opsets.append(helper.make_opsetid(case.domain, 1))
    model = helper.make_model(graph, opset_imports=opsets)
    model.ir_version = 8
    model = onnx.shape_inference.infer_shapes(model)
    runtime_only = case.domain or not onnx.defs.has(case.op_type, case.opset, "")  # onnxruntime's contrib ops
    if runtime_only and any(not o.type.HasField("tensor_type") for o in model.graph.output):
        _type_outputs_from_onnxruntime(model)
    return model


_ORT_TYPES = {"tensor(float)": TensorProto.FLOAT, "tensor(float16)": TensorProto.FLOAT16,
              "tensor(double)": TensorProto.DOUBLE, "tensor(int64)": TensorProto.INT64,
              "tensor(int32)": TensorProto.INT32, "tensor(bool)": TensorProto.BOOL,
              "tensor(uint8)": TensorProto.UINT8, "tensor(int8)": TensorProto.INT8,
              "tensor(uint16)": TensorProto.UINT16, "tensor(int16)": TensorProto.INT16}


def _type_outputs_from_onnxruntime(model: onnx.ModelProto) -> None:
    """Output types of operators onnx's shape inference does not know (onnxruntime's contrib
    operators), as onnxruntime's own inference gives them."""
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    for proto, info in zip(model.graph.output, session.get_outputs()):
        if not proto.type.HasField("tensor_type"):
            shape = [d if isinstance(d, int) else None for d in info.shape] if info.shape is not None else None
            proto.CopyFrom(helper.make_tensor_value_info(proto.name, _ORT_TYPES[info.type], shape))


def _np_dtype(elem_type: int):
    return helper.tensor_dtype_to_np_dtype(elem_type)


def draw_interval(rng: np.random.Generator, op: Operand) -> tuple[np.ndarray, np.ndarray]:
    """Full-shape lower/upper arrays with a random block structure inside [low, high]."""
    shape = op.shape
    lo = np.empty(shape, dtype=np.float64)
    hi = np.empty(shape, dtype=np.float64)
    cuts = [sorted({0} | set(rng.integers(0, max(n, 1), size=rng.integers(0, 3)).tolist())) if n else []
            for n in shape]
    grid = [len(c) for c in cuts]
    blo = rng.uniform(op.low, op.high, size=grid)
    bhi = rng.uniform(op.low, op.high, size=grid)
    blo, bhi = np.minimum(blo, bhi), np.maximum(blo, bhi)
    point = rng.random(size=grid) < 0.2
    bhi = np.where(point, blo, bhi)
    if is_float(op.elem_type):  # bounds on the dtype's grid, as the analysis rounds user ranges outward
        blo = blo.astype(_np_dtype(op.elem_type)).astype(np.float64)
        bhi = np.maximum(bhi.astype(_np_dtype(op.elem_type)).astype(np.float64), blo)
    else:
        blo, bhi = np.floor(blo), np.ceil(bhi)
        bhi = np.minimum(bhi, math.floor(op.high))
        blo = np.maximum(blo, math.ceil(op.low))
        bhi = np.maximum(bhi, blo)
    idx = [np.searchsorted(c, np.arange(n), side="right") - 1 for c, n in zip(cuts, shape)]
    mesh = np.ix_(*idx) if idx else ()
    lo[...] = blo[mesh] if idx else blo
    hi[...] = bhi[mesh] if idx else bhi
    return lo, hi


def draw_points(rng: np.random.Generator, lo: np.ndarray, hi: np.ndarray, elem_type: int, count: int):
    """Concrete arrays inside [lo, hi]: both corners, a corner mix, and uniform samples."""
    pts = [lo, hi, np.where(rng.random(lo.shape) < 0.5, lo, hi)]
    for _ in range(max(count - 3, 0)):
        pts.append(lo + (hi - lo) * rng.random(lo.shape))
    out = []
    for p in pts:
        if not is_float(elem_type):
            p = np.clip(np.round(p), lo, hi)
        arr = p.astype(_np_dtype(elem_type))
        if is_float(elem_type):  # rounding to the dtype may step outside: pull back inside
            arr = np.clip(arr.astype(np.float64), lo, hi).astype(_np_dtype(elem_type))
        out.append(np.asarray(arr))
    return out


def _initial_intervals(rng: np.random.Generator, case: OpCase, graph, unbounded: str = ""):
    """The analysis' initial intervals (free operands drawn; float ones open ``"above"``, ``"below"`` or
    on ``"both"`` sides when ``unbounded`` says so; initializers exact) and the drawn boxes,
    name -> (lo, hi, elem_type)."""
    initial: dict[str, Interval] = {}
    boxes = {}
    for i, op in enumerate(case.inputs):
        if op is None or op.value is not None:
            continue
        lo, hi = draw_interval(rng, op)
        boxes[f"in{i}"] = (lo, hi, op.elem_type)
        low, high = torch.from_numpy(lo), torch.from_numpy(hi)
        if unbounded and is_float(op.elem_type):
            low = torch.full_like(low, -math.inf) if unbounded in ("below", "both") else low
            high = torch.full_like(high, math.inf) if unbounded in ("above", "both") else high
        initial[f"in{i}"] = Interval.from_full(low, high, op.elem_type)
    for name, proto in graph.initializers.items():
        initial[name] = Interval.point(torch.from_numpy(numpy_helper.to_array(proto).copy()), proto.data_type)
    return initial, boxes


def check_case(case: OpCase, seed: int, points: int = 6) -> None:
    """Soundness, agreement and hazard coverage of one case for one random draw."""
    rng = np.random.default_rng(seed)
    model = build_model(case)
    graph, _ = load_model(model)
    initial, boxes = _initial_intervals(rng, case, graph)
    run = run_abstract(graph, initial)
    assert not run.unsupported, f"{case.id}: {run.unsupported}"
    rule = run.rules[graph.nodes[0].name]
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    drawn = {name: draw_points(rng, lo, hi, et, points) for name, (lo, hi, et) in boxes.items()}
    for k in range(points):
        feeds = {name: arrs[k] for name, arrs in drawn.items()}
        expected = session.run(None, feeds)
        for j, value in enumerate(expected):
            _assert_inside(case, run.env[f"out{j}"], value, feeds)
        if case.check_agreement:
            torch_feeds = {n: torch.from_numpy(np.array(v)) for n, v in feeds.items()}
            got = run_concrete(graph, torch_feeds).values
            for j, value in enumerate(expected):
                _assert_agree(case, got[f"out{j}"], value)
        _assert_hazard_declared(case, rule, graph, run, feeds, expected)


def _assert_inside(case: OpCase, iv: Interval, value: np.ndarray, feeds) -> None:
    value = np.asarray(value)
    assert iv.shape is None or tuple(iv.shape) == value.shape, f"{case.id}: shape {iv.shape} vs {value.shape}"
    v = value.astype(np.float64) if value.dtype != np.bool_ else value.astype(np.int64)
    lo, hi = (x.detach().numpy() for x in (iv.full() if iv.shape is not None else (iv.lower, iv.upper)))
    ok = np.isnan(v) | ((v >= lo) & (v <= hi))
    if not ok.all():
        bad = np.argwhere(~ok)[0]
        raise AssertionError(
            f"{case.id}: value {v[tuple(bad)]!r} at {tuple(bad)} outside [{lo[tuple(bad)]!r}, {hi[tuple(bad)]!r}]"
            f" for inputs { {k: np.asarray(x).ravel()[:6].tolist() for k, x in feeds.items()} }"
        )


def _assert_agree(case: OpCase, got: torch.Tensor, expected: np.ndarray) -> None:
    got_np = got.detach().numpy() if got.dtype != torch.bfloat16 else got.float().numpy()
    assert got_np.shape == np.asarray(expected).shape, f"{case.id}: shape {got_np.shape} vs {expected.shape}"
    if np.asarray(expected).dtype.kind in "fc":
        tol = case.rtol if expected.dtype != np.float16 else 2e-3
        np.testing.assert_allclose(got_np.astype(np.float64), expected.astype(np.float64), rtol=tol, atol=tol,
                                   equal_nan=True, err_msg=case.id)
    else:
        np.testing.assert_array_equal(got_np, expected, err_msg=case.id)


def _assert_hazard_declared(case, rule, graph, run, feeds, expected) -> None:
    finite_in = all(np.isfinite(np.asarray(v, dtype=np.float64)).all() for v in feeds.values())
    bad_out = any(np.asarray(e).dtype.kind == "f" and not np.isfinite(e).all() for e in expected)
    if finite_in and bad_out:
        from ranum.detect import find_hazards

        assert find_hazards(run), f"{case.id}: NaN/Inf produced from finite inputs but no hazard reported"


_ = torch_dtype


def run_text(text: str, ranges: dict[str, tuple[float, float]]) -> AbstractRun:
    """Abstract run of a model in ONNX text; inputs get one-block intervals, initializers are exact."""
    graph, _ = load_model(onnx.parser.parse_model(text))
    initial = {info.name: Interval.uniform(*ranges[info.name], info.shape, info.elem_type) for info in graph.inputs}
    for name, proto in graph.initializers.items():
        initial[name] = Interval.point(torch.from_numpy(numpy_helper.to_array(proto).copy()), proto.data_type)
    run = run_abstract(graph, initial)
    assert not run.unsupported, run.unsupported
    return run


def check_case_unbounded(case: OpCase, seed: int, sides: str = "both", points: int = 4) -> None:
    """Soundness of one case whose float operands are unbounded on ``sides`` ("above", "below" or
    "both", as after a node the analysis could not bound, or an Exp that may overflow): onnxruntime's
    outputs on finite points of the case's ranges lie inside."""
    rng = np.random.default_rng(seed)
    model = build_model(case)
    graph, _ = load_model(model)
    initial, boxes = _initial_intervals(rng, case, graph, unbounded=sides)
    run = run_abstract(graph, initial)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    drawn = {name: draw_points(rng, lo, hi, et, points) for name, (lo, hi, et) in boxes.items()}
    for k in range(points):
        feeds = {name: arrs[k] for name, arrs in drawn.items()}
        for j, value in enumerate(session.run(None, feeds)):
            _assert_inside(case, run.env[f"out{j}"], value, feeds)


def exact_operands_run(model: onnx.ModelProto, data: dict[str, np.ndarray], output: str = "y"
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The concrete rule's ``output`` for ``data``, and its bounds when every input and initializer is an exact
    interval (each node with a rule: asserted)."""
    graph, _ = load_model(model)
    got = run_concrete(graph, {k: torch.from_numpy(v) for k, v in data.items()}).values[output].numpy()
    initial = {k: Interval.point(torch.from_numpy(v), graph.info(k).elem_type) for k, v in data.items()}
    for name, proto in graph.initializers.items():
        initial[name] = Interval.point(torch.from_numpy(numpy_helper.to_array(proto).copy()), proto.data_type)
    run = run_abstract(graph, initial)
    assert not run.unsupported, run.unsupported
    lo, hi = (t.numpy() for t in run.env[output].full())
    return got, lo, hi
