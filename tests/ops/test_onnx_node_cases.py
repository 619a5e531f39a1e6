"""Concrete rules agree with the node test cases that ship in the onnx wheel, and abstract rules
on point intervals contain the expected outputs.

Two sources of cases:

* the shipped cases of opsets 1 to 21 (their expected outputs come with them);
* older versions of the newer cases: each single-node case of opset 11 or later is stamped with an
  opset of 7 to 10 (one opset per distinct pair of ONNX schema version and ranum rule), after moving
  operands that were attributes in those versions (Slice starts/ends/axes, Pad pads/value, TopK k,
  Clip min/max, Squeeze/Unsqueeze/Reduce* axes, Split split, Dropout ratio) into attributes, and
  ScatterElements without reduction becomes Scatter. A stamped model that the ONNX checker rejects
  for that opset is not a case; the expected outputs are onnxruntime's at that opset.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import defs, helper

from ranum.domain.dtypes import is_float
from ranum.domain.interval import Interval
from ranum.errors import ModelError, UnsupportedOperator
from ranum.graph.loader import load_model
from ranum.interpret import run_abstract, run_concrete
from ranum.ops import REGISTRY

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from onnx.backend.test.case.node import collect_testcases

SUPPORTED_INPUT_TYPES = (np.float32, np.float64, np.int64, np.int32, np.bool_, np.float16)
OLD_OPSETS = range(7, 11)
_REDUCE = ("ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceMax", "ReduceMean", "ReduceMin",
           "ReduceProd", "ReduceSum", "ReduceSumSquare")
# operands (after the first input) that older versions take as attributes: (attribute name, kind)
_ATTRIBUTE_OPERANDS: dict[str, tuple[tuple[str, str], ...]] = {
    "Slice": (("starts", "ints"), ("ends", "ints"), ("axes", "ints")),
    "Pad": (("pads", "ints"), ("value", "float")),
    "TopK": (("k", "int"),),
    "Clip": (("min", "float"), ("max", "float")),
    "Squeeze": (("axes", "ints"),),
    "Unsqueeze": (("axes", "ints"),),
    "Split": (("split", "ints"),),
    "Dropout": (("ratio", "float"),),
    **{op: (("axes", "ints"),) for op in _REDUCE},
}


def _opset(model: onnx.ModelProto) -> int:
    return max((i.version for i in model.opset_import if i.domain in ("", "ai.onnx")), default=0)


def _single_node_cases():
    """(case, inputs, outputs) for every single-node ONNX-domain case with supported data types."""
    for case in collect_testcases():
        model = case.model
        if len(model.graph.node) != 1 or model.graph.node[0].domain not in ("", "ai.onnx"):
            continue
        for inputs, outputs in case.data_sets:
            inputs, outputs = ([np.asarray(a) if isinstance(a, np.generic) else a for a in arrays]
                               for arrays in (inputs, outputs))
            if all(isinstance(a, np.ndarray) and a.dtype.type in SUPPORTED_INPUT_TYPES for a in inputs + outputs):
                yield case, inputs, outputs
                break


def _cases():
    out = []
    for case, inputs, outputs in _single_node_cases():
        opset = _opset(case.model)
        if 1 <= opset <= 21 and REGISTRY.lookup(case.model.graph.node[0].op_type, "", opset) is not None:
            out.append(pytest.param(case.model, inputs, outputs, id=case.name))
    return out


# ------------------------------------------------------------------------------ older versions
def _representative_opsets(op_type: str) -> list[int]:
    """One opset of OLD_OPSETS (the highest) per distinct (ONNX schema version, ranum rule) pair."""
    groups: dict[tuple[int, type], int] = {}
    for opset in OLD_OPSETS:
        rule = REGISTRY.lookup(op_type, "", opset)
        try:
            schema = defs.get_schema(op_type, opset).since_version
        except defs.SchemaError:
            continue
        if rule is not None:
            groups[(schema, rule)] = opset
    return sorted(groups.values())


def _attribute_value(array: np.ndarray, kind: str):
    values = np.asarray(array).reshape(-1)
    if kind == "ints":
        return [int(v) for v in values]
    return int(values[0]) if kind == "int" else float(values[0])


def _moved_to_attributes(model: onnx.ModelProto, inputs: Sequence[np.ndarray]
                         ) -> tuple[onnx.ModelProto, list[np.ndarray]] | None:
    """The model with its operands of ``_ATTRIBUTE_OPERANDS`` as attributes (None: nothing to move, or
    an operand that has no attribute form, e.g. Slice steps)."""
    node = model.graph.node[0]
    spec = _ATTRIBUTE_OPERANDS.get(node.op_type)
    if spec is None or len(node.input) < 2 or len(node.input) > 1 + len(spec):
        return None
    fed = {value.name: array for value, array in zip(model.graph.input, inputs)}
    if any(name and name not in fed for name in node.input):
        return None
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    for name, (attr, kind) in zip(node.input[1:], spec):
        if name and np.asarray(fed[name]).size:  # an empty list (Reduce* axes) is the absent attribute
            attrs[attr] = _attribute_value(fed[name], kind)
    new_node = helper.make_node(node.op_type, [node.input[0]], list(node.output), **attrs)
    kept = [v for v in model.graph.input if v.name == node.input[0]]
    return _rebuilt(model, new_node, kept), [fed[node.input[0]]]


def _rebuilt(model: onnx.ModelProto, node: onnx.NodeProto, graph_inputs: list) -> onnx.ModelProto:
    graph = helper.make_graph([node], model.graph.name, graph_inputs, list(model.graph.output))
    out = helper.make_model(graph, opset_imports=list(model.opset_import))
    out.ir_version = model.ir_version
    return out


def _as_scatter(model: onnx.ModelProto) -> onnx.ModelProto | None:
    """ScatterElements without reduction as Scatter (opsets 9 and 10)."""
    node = model.graph.node[0]
    if node.op_type != "ScatterElements" or any(a.name == "reduction" and a.s != b"none" for a in node.attribute):
        return None
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute if a.name == "axis"}
    return _rebuilt(model, helper.make_node("Scatter", list(node.input), list(node.output), **attrs),
                    list(model.graph.input))


def _stamped(model: onnx.ModelProto, opset: int) -> onnx.ModelProto | None:
    """``model`` declared at ``opset``, if the ONNX checker and strict shape inference accept it there."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    for imp in out.opset_import:
        if imp.domain in ("", "ai.onnx"):
            imp.version = opset
    try:
        onnx.checker.check_model(out)
        onnx.shape_inference.infer_shapes(out, check_type=True, strict_mode=True)
    except Exception:  # noqa: BLE001 - the checker raises several types; any rejection means "not a case"
        return None
    return out


def _older_version_cases():
    out = []
    for case, inputs, _ in _single_node_cases():
        if _opset(case.model) < 11:
            continue
        variants = [(case.model, inputs)]
        moved = _moved_to_attributes(case.model, inputs)
        scatter = _as_scatter(case.model)
        variants += [moved] if moved else []
        variants += [(scatter, inputs)] if scatter else []
        for model, feeds in variants:
            for opset in _representative_opsets(model.graph.node[0].op_type):
                stamped = _stamped(model, opset)
                if stamped is not None:
                    label = "" if model is case.model else f"-{model.graph.node[0].op_type}-attributes"
                    out.append(pytest.param(stamped, feeds, id=f"{case.name}{label}-opset{opset}"))
    return out


CASES = _cases()
OLDER_VERSION_CASES = _older_version_cases()


# ------------------------------------------------------------------------------ the checks
def _check_against(model: onnx.ModelProto, inputs, outputs) -> None:
    """Concrete outputs equal ``outputs``; abstract outputs from point inputs contain them."""
    try:
        graph, _ = load_model(model)
    except ModelError as exc:
        pytest.skip(f"onnx reference model not loadable here: {exc}")
    names = [i.name for i in model.graph.input if i.name not in graph.initializers]
    feeds = {n: torch.from_numpy(np.array(a)) for n, a in zip(names, inputs)}
    try:
        values = run_concrete(graph, feeds).values
    except UnsupportedOperator as exc:
        pytest.skip(f"attribute combination not supported (documented limitation): {exc}")
    initial = {n: Interval.point(feeds[n], i.elem_type) for n, i in zip(names, graph.inputs)}
    for name, proto in graph.initializers.items():
        initial[name] = Interval.point(torch.from_numpy(onnx.numpy_helper.to_array(proto).copy()), proto.data_type)
    run = run_abstract(graph, initial)
    for out, expected in zip(model.graph.output, outputs):
        got = values[out.name]
        expected = np.asarray(expected)
        got_np = got.float().numpy() if got.dtype == torch.bfloat16 else got.numpy()
        if expected.dtype.kind == "f":
            np.testing.assert_allclose(got_np.astype(np.float64), expected.astype(np.float64), rtol=1e-4,
                                       atol=1e-5, equal_nan=True)
        else:
            np.testing.assert_array_equal(got_np, expected)
        iv = run.env[out.name]
        if iv.shape is None or out.name in run.unsupported:
            continue
        lo, hi = (t.numpy() for t in iv.full())
        v = expected.astype(np.float64)
        tolerance = 1e-5 * np.abs(v) + 1e-6 if is_float(iv.elem_type) else 0
        inside = np.isnan(v) | ((v >= lo - tolerance) & (v <= hi + tolerance))
        assert inside.all(), f"expected output outside ranum's interval for {out.name}"


@pytest.mark.parametrize(("model", "inputs", "outputs"), CASES)
def test_concrete_and_abstract_match_onnx_reference(model: onnx.ModelProto, inputs, outputs) -> None:
    _check_against(model, inputs, outputs)


@pytest.mark.parametrize(("model", "inputs"), OLDER_VERSION_CASES)
def test_older_versions_match_onnxruntime(model: onnx.ModelProto, inputs) -> None:
    names = [i.name for i in model.graph.input]
    try:
        session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        expected = session.run(None, dict(zip(names, inputs)))
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types
        pytest.skip(f"onnxruntime does not run this version: {str(exc).splitlines()[0][:160]}")
    _check_against(model, inputs, expected)


def test_older_versions_cover_the_attribute_forms() -> None:
    """The stamped cases reach the older signatures, not only the unchanged operators."""
    covered = {c.values[0].graph.node[0].op_type for c in OLDER_VERSION_CASES
               if len(c.values[0].graph.node[0].attribute) and len(c.values[0].graph.input) == 1}
    assert {"Slice", "Pad", "TopK", "Squeeze", "Unsqueeze", "ReduceSum", "Split"} <= covered, covered
    assert any(c.values[0].graph.node[0].op_type == "Scatter" for c in OLDER_VERSION_CASES)
