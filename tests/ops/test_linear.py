"""Precision tests of the linear, convolution/pooling and normalization rules, and the
GroupNormalization soundness check (the one-node harness cannot type its output)."""

from __future__ import annotations

import math

import numpy as np
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper

from ranum.detect import find_hazards
from ranum.domain.interval import Interval
from ranum.graph.loader import load_model
from ranum.interpret import run_abstract
from tests.ops.harness import OpCase, Operand, build_model

FLOAT = TensorProto.FLOAT


def _analyse(model, boxes: dict[str, tuple[float, float]]):
    graph, _ = load_model(model)
    initial = {}
    for info in graph.inputs:
        low, high = boxes[info.name]
        initial[info.name] = Interval.uniform(low, high, info.shape, info.elem_type)
    for name, proto in graph.initializers.items():
        from onnx import numpy_helper

        initial[name] = Interval.point(torch.from_numpy(numpy_helper.to_array(proto).copy()), proto.data_type)
    run = run_abstract(graph, initial)
    assert not run.unsupported
    return run


def _case(case: OpCase, boxes: dict[str, tuple[float, float]]):
    return _analyse(build_model(case), boxes)


def test_matmul_with_exact_weight_is_tight() -> None:
    case = OpCase("MatMul", (Operand((2, 3)), Operand((3, 2), value=[1.0, 0.0, 0.0, 1.0, 0.0, 0.0])))
    out = _case(case, {"in0": (1.0, 2.0)}).env["out0"]
    assert out.min() == pytest.approx(1.0, rel=1e-5) and out.min() <= 1.0
    assert out.max() == pytest.approx(2.0, rel=1e-5) and out.max() >= 2.0


@pytest.mark.parametrize("op, equation", [("MatMul", None), ("Einsum", "bxd,byd->bxy")])
def test_an_outer_product_with_a_mask_is_exact_and_cannot_overflow(op: str, equation: str | None) -> None:
    """ones (1, 4, 1) times a mask in [-3.4e38, 1] (1, 1, 3) sums nothing: each result is one product, in
    [-3.4e38, 1]. The midpoint-radius form gave (-inf, 1.6e32): a false overflow (Longformer's and LED's
    attention, which multiply a window mask by ones this way)."""
    ones = Operand((1, 4, 1), value=[1.0] * 4)
    mask = Operand((1, 1, 3) if op == "MatMul" else (1, 3, 1), low=-3.4028234663852886e38, high=1.0)
    case = OpCase(op, (ones, mask), attrs={"equation": equation} if equation else {})
    run = _case(case, {"in1": (-3.4028234663852886e38, 1.0)})
    out = run.env["out0"]
    assert out.min() == -3.4028234663852886e38 and 1.0 <= out.max() <= 1.0 + 1e-6
    assert not find_hazards(run)


def test_matmul_interval_radius_is_exact_in_real_arithmetic() -> None:
    # [-1, 1] @ [2, 3] summed over 4 terms: [-12, 12] (midpoint-radius is exact here).
    case = OpCase("MatMul", (Operand((1, 4)), Operand((4, 1))))
    out = _case(case, {"in0": (-1.0, 1.0), "in1": (2.0, 3.0)}).env["out0"]
    assert out.min() == pytest.approx(-12.0, rel=1e-5) and out.max() == pytest.approx(12.0, rel=1e-5)


def test_products_and_averages_of_non_negative_values_stay_non_negative() -> None:
    # the float32 product's error term would put the lower bound below 0, where Sqrt and Log see a
    # negative operand; terms >= 0 give a float sum >= 0 in any order
    gram = OpCase("MatMul", (Operand((3, 16)), Operand((16, 3))))
    assert _case(gram, {"in0": (0.0, 1.0), "in1": (0.0, 1.0)}).env["out0"].min() == 0.0
    mixed = _case(gram, {"in0": (0.0, 1.0), "in1": (-1e-3, 1.0)}).env["out0"]
    assert mixed.min() < 0.0
    weight = OpCase("MatMul", (Operand((3, 16)), Operand((16, 2), value=[0.5] * 32)))
    assert _case(weight, {"in0": (0.0, 1e-3)}).env["out0"].min() == 0.0
    # an Einsum of non-negative operands (a colour matrix applied to pixels), two and three of them
    colour = OpCase("Einsum", (Operand((3, 3), value=[0.4, 0.3, 0.2, 0.2, 0.7, 0.1, 0.0, 0.1, 0.9]),
                               Operand((1, 3, 4, 4))), attrs={"equation": "ij,bjhw->bihw"})
    assert _case(colour, {"in1": (0.0, 1.0)}).env["out0"].min() == 0.0
    triple = OpCase("Einsum", (Operand((2, 8)), Operand((8, 8)), Operand((8, 2))), attrs={"equation": "ij,jk,kl->il"})
    assert _case(triple, {"in0": (0.0, 1.0), "in1": (0.0, 1.0), "in2": (0.0, 1.0)}).env["out0"].min() == 0.0
    assert _case(triple, {"in0": (0.0, 1.0), "in1": (-1e-3, 1.0), "in2": (0.0, 1.0)}).env["out0"].min() < 0.0
    for pool in (OpCase("AveragePool", (Operand((1, 2, 6, 6)),), attrs={"kernel_shape": [3, 3], "pads": [1] * 4}),
                 OpCase("GlobalAveragePool", (Operand((1, 2, 6, 6)),))):
        assert _case(pool, {"in0": (0.0, 1.0)}).env["out0"].min() == 0.0


@pytest.mark.parametrize("offset", [None, 0.01])
def test_a_gemm_of_non_negative_terms_stays_above_its_summand(offset: float | None) -> None:
    """A mel filterbank (weights >= 0) applied to squared magnitudes, plus 0.01, then a log: the float32
    product's error term took the lower bound below 0 (a false log of a non-positive value); terms >= 0
    keep every sum at or above C. A negative weight keeps the lower bound below C."""
    inputs = (Operand((2, 16)), Operand((16, 4), value=list(np.linspace(0.0, 1.0, 64))))
    if offset is not None:
        inputs += (Operand((4,), value=[offset] * 4),)
    floor = float(np.float32(offset or 0.0))
    gemm = OpCase("Gemm", inputs)
    assert _case(gemm, {"in0": (0.0, 1e3)}).env["out0"].min() == floor
    negative = OpCase("Gemm", (inputs[0], Operand((16, 4), value=list(np.linspace(-1e-3, 1.0, 64)))) + inputs[2:])
    assert _case(negative, {"in0": (0.0, 1e3)}).env["out0"].min() < floor
    scaled = OpCase("Gemm", inputs, attrs={"alpha": -1.0})
    assert _case(scaled, {"in0": (0.0, 1e3)}).env["out0"].min() < 0.0


@pytest.mark.parametrize(("op", "attrs", "shapes"), [
    ("MatMul", {}, ((1, 8), (8, 1))),
    ("MatMul", {}, ((2, 3, 8), (8, 4))),
    ("Einsum", {"equation": "bd,bd->b"}, ((2, 8), (2, 8))),
    ("Einsum", {"equation": "ij,jk,kl->il"}, ((2, 8), (8, 8), (8, 2))),
    ("Gemm", {"transB": 1}, ((2, 8), (3, 8))),
    ("Gemm", {"transB": 1}, ((2, 8), (3, 8), (3,))),
])
def test_a_product_of_positive_factors_stays_above_the_product_of_their_lower_bounds(
        op: str, attrs: dict, shapes: tuple) -> None:
    """Linear attention's normaliser q . sum(k) with q = elu(x) + 1 > 0: the midpoint-radius lower bound
    2 sum(m m') - sum(u u') reached 0, a false reciprocal of zero. Each computed sum is at least the one
    computed from the factors' lower bounds (rounding is monotone); a factor reaching 0 still reaches 0."""
    operands = tuple(Operand(shape) for shape in shapes)
    case = OpCase(op, operands, attrs=attrs)
    low, high = 1e-4, 1.0
    boxes = {f"in{i}": (low, high) for i in range(len(shapes))}
    if op == "Gemm" and len(shapes) == 3:
        boxes["in2"] = (-1e-7, 0.0)  # a summand below 0: the floor is the sum of lowest terms plus its lowest
    run = _case(case, boxes)
    out = run.env["out0"]
    terms = {"MatMul": 8, "Einsum": 8 if len(shapes) == 2 else 64, "Gemm": 8}[op]
    lowest = terms * low ** (len(shapes) if op == "Einsum" else 2) - (1e-7 if len(boxes) == 3 and op == "Gemm" else 0)
    assert lowest - 1e-4 * abs(lowest) <= out.min() <= lowest
    model = build_model(case)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    lo, hi = (t.numpy() for t in out.full())
    for fill in ("low", "random"):
        feeds = {name: (np.full(op_.shape, boxes[name][0]) if fill == "low" else
                        rng.uniform(*boxes[name], op_.shape)).astype(np.float32)
                 for name, op_ in zip(boxes, operands)}
        value = session.run(None, feeds)[0]
        assert np.all((value >= lo) & (value <= hi))
    zero = {**boxes, "in0": (0.0, high)}
    assert _case(case, zero).env["out0"].min() <= 0.0


def test_gemm_overflow_is_reported() -> None:
    case = OpCase("Gemm", (Operand((2, 3)), Operand((3, 2))))
    run = _case(case, {"in0": (1e19, 3e19), "in1": (1e19, 3e19)})
    assert any(f.hazard_id == "overflow" for f in find_hazards(run))


def test_maxpool_is_exact() -> None:
    case = OpCase("MaxPool", (Operand((1, 1, 4, 4)),), attrs={"kernel_shape": [2, 2]})
    out = _case(case, {"in0": (0.0, 1.0)}).env["out0"]
    assert (out.min(), out.max()) == (0.0, 1.0)


def test_layer_normalization_is_capped_by_sqrt_n_minus_1() -> None:
    case = OpCase("LayerNormalization", (Operand((2, 16)), Operand((16,), value=[1.0] * 16)), opset=17)
    run = _case(case, {"in0": (-10.0, 10.0)})
    out = run.env["out0"]
    assert math.isfinite(out.min()) and math.isfinite(out.max())
    assert out.max() <= math.sqrt(15) * 1.001 and out.min() >= -math.sqrt(15) * 1.001
    assert not find_hazards(run)


def test_layer_normalization_without_epsilon_flags_constant_slices() -> None:
    case = OpCase("LayerNormalization", (Operand((2, 4)), Operand((4,), value=[1.0] * 4)),
                  attrs={"epsilon": 0.0}, opset=17)
    run = _case(case, {"in0": (-1.0, 1.0)})
    assert "normalization-zero-variance" in {f.hazard_id for f in find_hazards(run)}


def test_batch_normalization_variance_hazard_depends_on_epsilon() -> None:
    ops = (Operand((1, 2, 3)),) + tuple(Operand((2,)) for _ in range(4))
    case = OpCase("BatchNormalization", ops, attrs={"epsilon": 1e-3})
    boxes = {"in0": (-1.0, 1.0), "in1": (1.0, 1.0), "in2": (0.0, 0.0), "in3": (0.0, 0.0)}
    safe = _case(case, {**boxes, "in4": (-5e-4, 1.0)})
    assert not find_hazards(safe)
    assert safe.env["out0"].max() <= 1.0 / math.sqrt(5e-4) * 1.001
    unsafe = _case(case, {**boxes, "in4": (-2e-3, 1.0)})
    assert "batchnorm-variance" in {f.hazard_id for f in find_hazards(unsafe)}


def test_lp_normalization_bounds() -> None:
    case = OpCase("LpNormalization", (Operand((1, 4)),))
    out = _case(case, {"in0": (1.0, 2.0)}).env["out0"]
    assert out.min() == pytest.approx(1 / math.sqrt(13), rel=1e-5)
    assert out.max() == pytest.approx(2 / math.sqrt(7), rel=1e-5)
    zero = _case(case, {"in0": (0.0, 2.0)})
    # onnxruntime gives 0 for an all-zero slice: only the gradient breaks there
    assert [(f.hazard_id, f.kind) for f in find_hazards(zero)] == [("lp-normalization-zero-norm", "gradient")]


@pytest.mark.parametrize("opset, groups, params", [(21, 3, 6), (21, 2, 6)])
def test_group_normalization_is_sound(opset: int, groups: int, params: int) -> None:
    shape = (2, 6, 5)
    inputs = [helper.make_tensor_value_info("x", FLOAT, list(shape)),
              helper.make_tensor_value_info("s", FLOAT, [params]),
              helper.make_tensor_value_info("b", FLOAT, [params])]
    node = helper.make_node("GroupNormalization", ["x", "s", "b"], ["y"], num_groups=groups, epsilon=1e-3)
    graph = helper.make_graph([node], "g", inputs, [helper.make_tensor_value_info("y", FLOAT, list(shape))])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    boxes = {"x": (-3.0, 3.0), "s": (0.5, 2.0), "b": (-1.0, 1.0)}
    out = _analyse(model, boxes).env["y"]
    lo, hi = (t.numpy() for t in out.full())
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(opset)
    for _ in range(20):
        feeds = {"x": rng.uniform(-3, 3, shape).astype(np.float32),
                 "s": rng.uniform(0.5, 2, params).astype(np.float32),
                 "b": rng.uniform(-1, 1, params).astype(np.float32)}
        feeds["x"][0, :3] = feeds["x"][0, 0, 0]  # a near-constant group
        (y,) = session.run(None, feeds)
        assert ((y >= lo) & (y <= hi)).all()


def test_conv_with_one_weight_range_computes_one_output_channel_and_is_sound() -> None:
    """Filters (and bias) that share one range give every output channel the same bounds."""
    case = OpCase("Conv", (Operand((1, 3, 6, 6)), Operand((8, 3, 3, 3)), Operand((8,))), attrs={"pads": [1, 1, 1, 1]})
    run = _case(case, {"in0": (-1.0, 2.0), "in1": (-0.5, 0.25), "in2": (-0.1, 0.1)})
    out = run.env["out0"]
    assert out.splits[1] == (0,) and out.shape == (1, 8, 6, 6)
    lo, hi = (t.numpy() for t in out.full())
    assert lo[0, 0, 0, 0] > lo[0, 0, 2, 2]  # a corner sums 4 taps per channel, the centre 9
    model = build_model(case)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    for _ in range(20):
        feeds = {"in0": rng.choice([-1.0, 2.0], (1, 3, 6, 6)).astype(np.float32),
                 "in1": rng.choice([-0.5, 0.25], (8, 3, 3, 3)).astype(np.float32),
                 "in2": rng.uniform(-0.1, 0.1, (8,)).astype(np.float32)}
        y = session.run(None, feeds)[0]
        assert np.all((y >= lo) & (y <= hi))


def test_depthwise_conv_with_one_range_computes_one_channel_and_is_sound() -> None:
    case = OpCase("Conv", (Operand((1, 4, 5, 5)), Operand((4, 1, 3, 3))), attrs={"pads": [1, 1, 1, 1], "group": 4})
    run = _case(case, {"in0": (-1.0, 2.0), "in1": (-0.5, 0.25)})
    out = run.env["out0"]
    assert out.splits[1] == (0,) and out.shape == (1, 4, 5, 5)
    lo, hi = (t.numpy() for t in out.full())
    session = ort.InferenceSession(build_model(case).SerializeToString(), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    for _ in range(20):
        feeds = {"in0": rng.choice([-1.0, 2.0], (1, 4, 5, 5)).astype(np.float32),
                 "in1": rng.choice([-0.5, 0.25], (4, 1, 3, 3)).astype(np.float32)}
        y = session.run(None, feeds)[0]
        assert np.all((y >= lo) & (y <= hi))


def test_layer_normalization_of_rows_sharing_bounds_is_computed_once_and_is_sound() -> None:
    case = OpCase("LayerNormalization", (Operand((2, 64, 16)), Operand((16,)), Operand((16,))), opset=17)
    run = _case(case, {"in0": (-3.0, 5.0), "in1": (0.5, 1.5), "in2": (-0.2, 0.2)})
    y = run.env["out0"]
    assert y.shape == (2, 64, 16) and y.splits[:2] == ((0,), (0,))  # one row block kept
    lo, hi = (t.numpy() for t in y.full())
    session = ort.InferenceSession(build_model(case).SerializeToString(), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    for _ in range(10):
        x = rng.choice([-3.0, 5.0], (2, 64, 16)).astype(np.float32)
        x[0, 0] = -3.0
        x[0, 0, 0] = 5.0  # one spike: the extreme normalised value
        feeds = {"in0": x, "in1": rng.uniform(0.5, 1.5, 16).astype(np.float32),
                 "in2": rng.uniform(-0.2, 0.2, 16).astype(np.float32)}
        out = session.run(None, feeds)[0]
        assert np.all((out >= lo) & (out <= hi))


# ------------------------------------------------------- float32 products with exact weights
def _weighted_model(op_type: str, x_shape, w: np.ndarray, attrs=None, bias: np.ndarray | None = None):
    elem = helper.np_dtype_to_tensor_dtype(w.dtype)
    inits = [helper.make_tensor("w", elem, w.shape, w.ravel().tolist())]
    names = ["x", "w"]
    if bias is not None:
        inits.append(helper.make_tensor("b", elem, bias.shape, bias.ravel().tolist()))
        names.append("b")
    node = helper.make_node(op_type, names, ["y"], **(attrs or {}))
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", elem, x_shape)],
                              [helper.make_tensor_value_info("y", elem, [f"d{i}" for i in range(len(x_shape))])],
                              inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def _nearly_exact_box(rng: np.random.Generator, shape, dtype) -> tuple[np.ndarray, np.ndarray]:
    """Values of the dtype, every element exact but one (the rounding error then dominates the width)."""
    center = (rng.standard_normal(shape) * 10.0 ** rng.integers(-3, 4, shape)).astype(dtype).astype(np.float64)
    hi = center.copy()
    hi.flat[0] = np.nextafter(np.asarray(hi.flat[0], dtype=dtype), np.asarray(np.inf, dtype=dtype))
    return center, hi


def _float32_path_cases():
    rng = np.random.default_rng(0)
    cancel = rng.standard_normal((1024, 16)).astype(np.float32) * 1e3
    cancel[512:] = -cancel[:512]  # columns sum to ~0: the worst case for the relative error
    return [
        ("MatMul", (3, 1024), cancel, {}, None),
        ("MatMul", (2, 5, 256), rng.standard_normal((256, 7)).astype(np.float32), {}, None),
        ("Gemm", (4, 300), rng.standard_normal((9, 300)).astype(np.float32), {"transB": 1},
         rng.standard_normal(9).astype(np.float32)),
        ("Conv", (1, 8, 9, 9), rng.standard_normal((6, 8, 3, 3)).astype(np.float32), {"pads": [1, 1, 1, 1]},
         rng.standard_normal(6).astype(np.float32)),
        ("MatMul", (3, 512), (rng.standard_normal((512, 8)) * 4).astype(np.float16), {}, None),
        # wider than one column chunk: the weight is taken a chunk of columns at a time
        ("MatMul", (2, 3, 48), rng.standard_normal((48, 2500)).astype(np.float32), {}, None),
        ("MatMul", (3, 40), (rng.standard_normal((40, 1100)) * 4).astype(np.float16), {}, None),
    ]


@pytest.mark.parametrize("case", _float32_path_cases(), ids=lambda c: f"{c[0]}-{c[2].dtype}")
def test_float32_products_with_exact_weights_are_sound_in_onnxruntime(case, monkeypatch) -> None:
    import ranum.ops._float32_products as products

    monkeypatch.setattr(products, "_CHUNKED_ELEMENTS", 1000)  # the wide weights below are taken in chunks
    op_type, x_shape, w, attrs, bias = case
    model = _weighted_model(op_type, x_shape, w, attrs, bias)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(1)
    for _ in range(5):
        lo, hi = _nearly_exact_box(rng, x_shape, w.dtype)
        graph, _ = load_model(model)
        initial = {"x": Interval.from_full(torch.from_numpy(lo), torch.from_numpy(hi), graph.inputs[0].elem_type)}
        for name, proto in graph.initializers.items():
            from onnx import numpy_helper

            initial[name] = Interval.point(torch.from_numpy(numpy_helper.to_array(proto).copy()), proto.data_type)
        assert initial["w"].stored_lower.dtype != torch.float64  # the weight keeps its own dtype
        out = run_abstract(graph, initial).env["y"]
        low, high = (t.numpy() for t in out.full())
        for x in (lo, hi):
            y = session.run(None, {"x": x.astype(w.dtype)})[0].astype(np.float64)
            assert ((y >= low) & (y <= high)).all(), f"{op_type}: {y[(y < low) | (y > high)][:4]}"


def _summed_rows_cases():
    rng = np.random.default_rng(5)
    cancel = rng.standard_normal((1024, 16)).astype(np.float32) * 1e3
    cancel[512:] = -cancel[:512]  # columns sum to ~0: the worst case for the relative error
    return [
        ("MatMul", (3, 1024), cancel, {}, (0,)),
        ("MatMul", (2, 4, 1024), cancel, {}, (0, 100, 700)),
        ("Gemm", (4, 300), rng.standard_normal((900, 300)).astype(np.float32), {"transB": 1}, (0, 150)),
        ("MatMul", (3, 512), (rng.standard_normal((512, 600)) * 4).astype(np.float16), {}, (0,)),
        ("MatMul", (5, 40), (rng.standard_normal((40, 3000)) * 4).astype(np.float16), {}, (0, 7, 30)),
    ]


@pytest.mark.parametrize("case", _summed_rows_cases(), ids=lambda c: f"{c[0]}-{c[2].dtype}-{len(c[4])}")
def test_products_summed_over_row_blocks_are_sound_in_onnxruntime(case, monkeypatch) -> None:
    """Where x cuts the summed axis into a few blocks, the weight's rows are summed per block (in
    float32, through a small buffer): elements drawn anywhere in their blocks' nearly exact bounds
    give onnxruntime results inside the bounds, which match the one-product path's."""
    import ranum.ops._float32_products as products

    monkeypatch.setattr(products, "_PIECE", 999)  # several pieces per block, both memory layouts
    op_type, x_shape, w, attrs, starts = case
    model = _weighted_model(op_type, x_shape, w, attrs)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    graph, _ = load_model(model)
    from onnx import numpy_helper

    weight = Interval.point(torch.from_numpy(numpy_helper.to_array(graph.initializers["w"]).copy()),
                            graph.initializers["w"].data_type)
    rng = np.random.default_rng(2)
    grid = tuple(x_shape[:-1]) + (len(starts),)
    splits = tuple(tuple(range(n)) for n in x_shape[:-1]) + (starts,)
    sizes = np.diff(list(starts) + [x_shape[-1]])
    calls = []
    summed = products._block_summed_product
    monkeypatch.setattr(products, "_block_summed_product", lambda *a: calls.append(1) or summed(*a))
    for _ in range(4):
        lo, hi = _nearly_exact_box(rng, grid, w.dtype)
        x = Interval.create(torch.from_numpy(lo), torch.from_numpy(hi), splits, x_shape, graph.inputs[0].elem_type)
        calls.clear()
        out = run_abstract(graph, {"x": x, "w": weight}).env["y"]
        assert calls  # the summed path ran
        low, high = (t.numpy() for t in out.full())
        full_lo, full_hi = (np.repeat(t, sizes, axis=-1) for t in (lo, hi))
        for pick in (full_lo, full_hi, np.where(rng.random(x_shape) < 0.5, full_lo, full_hi)):
            y = session.run(None, {"x": pick.astype(w.dtype)})[0].astype(np.float64)
            assert ((y >= low) & (y <= high)).all(), f"{op_type}: {y[(y < low) | (y > high)][:4]}"
        monkeypatch.setattr(products, "_SUMMED_BLOCKS", 0)
        one = run_abstract(graph, {"x": x, "w": weight}).env["y"]
        monkeypatch.setattr(products, "_SUMMED_BLOCKS", 32)
        one_lo, one_hi = (t.numpy() for t in one.full())
        finite = np.isfinite(low) & np.isfinite(high) & np.isfinite(one_lo) & np.isfinite(one_hi)
        assert finite.mean() > 0.5  # (16-bit results past 65504 are infinite either way)
        scale = float(np.abs(one_hi - one_lo)[finite].max()) + 1e-30
        assert np.abs(low[finite] - one_lo[finite]).max() <= 1e-3 * scale
        assert np.abs(high[finite] - one_hi[finite]).max() <= 1e-3 * scale


def test_float32_products_are_as_tight_as_float64_ones() -> None:
    from ranum.ops.linear import interval_product

    rng = np.random.default_rng(2)
    w = torch.from_numpy(rng.standard_normal((256, 32)).astype(np.float32))
    lo = torch.from_numpy(rng.standard_normal((4, 256)))
    hi = lo + torch.rand(4, 256, dtype=torch.float64)
    x = Interval.from_full(lo, hi, FLOAT)
    point = Interval.point(w, FLOAT)
    assert point.stored_lower.dtype == torch.float32
    fast_mid, fast_rad, fast_abs = interval_product(torch.matmul, [x, point], 256)
    mid, rad, abs_sum = interval_product(torch.matmul, [x, Interval.point(w.double(), FLOAT)])
    assert torch.equal(fast_abs, torch.zeros_like(fast_abs))  # the accumulation error is in the radius
    slack = abs_sum * 8 * 256 * 2.0**-24  # our gamma and the accumulation gamma (2 n u), with room
    assert torch.all((fast_mid - mid).abs() + fast_rad <= rad + slack)
    assert torch.all(fast_rad >= rad)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_column_chunked_products_match_one_product(monkeypatch, dtype) -> None:
    """A wide weight is multiplied a chunk of columns at a time (a reused |w| buffer): the bounds are
    those of one whole product, to float32 rounding."""
    import ranum.ops._float32_products as products
    import ranum.ops.linear as linear

    rng = np.random.default_rng(3)
    w = torch.from_numpy(rng.standard_normal((2, 64, 2100))).to(dtype)
    lo = torch.from_numpy(rng.standard_normal((2, 5, 64)))
    x = Interval.from_full(lo, lo + torch.rand(2, 5, 64, dtype=torch.float64), FLOAT)
    point = Interval.point(w, FLOAT if dtype == torch.float32 else TensorProto.FLOAT16)
    monkeypatch.setattr(products, "_CHUNKED_ELEMENTS", 1000)  # small weights take the chunked path too
    calls = []
    chunked = products._matmul_by_column_chunks
    monkeypatch.setattr(products, "_matmul_by_column_chunks", lambda *a: calls.append(1) or chunked(*a))
    mid, rad, _ = linear.interval_product(torch.matmul, [x, point], 64)
    assert calls  # the chunked path ran
    monkeypatch.setattr(products, "_COLUMN_CHUNK", 10**6)
    whole_mid, whole_rad, _ = linear.interval_product(torch.matmul, [x, point], 64)
    assert len(calls) == 1 and mid.shape == whole_mid.shape == (2, 5, 2100)
    scale = whole_rad.abs().max()
    assert torch.allclose(mid, whole_mid, rtol=0, atol=float(scale) * 1e-5)
    assert torch.allclose(rad, whole_rad, rtol=1e-5, atol=0)


def test_float32_products_fall_back_where_float32_would_overflow() -> None:
    from ranum.ops.linear import interval_product

    w = torch.full((64, 2), 1e30, dtype=torch.float32)
    x = Interval.uniform(1e10, 2e10, (1, 64), FLOAT)
    mid, rad, abs_sum = interval_product(torch.matmul, [x, Interval.point(w, FLOAT)], 64)
    assert torch.isfinite(mid).all() and bool((abs_sum > 0).all())  # float64 products, |terms| kept


def test_matmul_by_a_weight_is_computed_once_per_block_of_every_row_axis() -> None:
    """(N, H, W, C) @ (C, D): blocks of H and W each share their rows' bounds, so the product is
    computed on one row per block, and equals the product over every row."""
    from ranum.ops.linear import blockwise_product, finish_sum, interval_product

    rng = np.random.default_rng(0)
    grid = (1, 3, 2, 6)
    lo = torch.tensor(rng.uniform(-2, 1, grid))
    x = Interval.create(lo, lo + torch.tensor(rng.uniform(0, 1, grid)), ((0,), (0, 4, 5), (0, 7), tuple(range(6))),
                        (1, 12, 10, 6), FLOAT)
    w = Interval.point(torch.tensor(rng.normal(size=(6, 5)), dtype=torch.float32), FLOAT)
    calls = []

    def product(a, b):
        calls.append(tuple(a.shape))
        return interval_product(torch.matmul, [a, b], 6)

    out = blockwise_product(x, w, product, 6, 1 << 16)
    assert calls == [(1, 3, 2, 6)] and out.shape == (1, 12, 10, 5)
    mid, rad, abs_sum = interval_product(torch.matmul, [x, w], 6)
    full = finish_sum(mid, rad, abs_sum, 6, FLOAT)
    for got, want in zip(out.full(), full.full()):
        assert torch.allclose(got, want, rtol=1e-9, atol=0.0)
    assert len(out.splits[1]) == 3 and len(out.splits[2]) == 2  # still one block per row block


@pytest.mark.parametrize("exact_rows", [False, True])
def test_contracted_axis_is_summed_once_per_block(exact_rows: bool) -> None:
    """x @ W with the contracted axis cut in a few blocks on both sides (a weight box, a softmax of
    equal scores): one term per block, scaled by its size, gives the bounds of every term summed,
    and they hold concrete products of values drawn from the operands."""
    from ranum.ops.linear import blockwise_product, finish_sum, interval_product

    rng = np.random.default_rng(4)
    k = 40
    x_grid, w_grid = (2, 3, 3), (4, 5)
    x_splits, w_splits = (0, 10, 30), (0, 10, 25, 30)
    lo = torch.tensor(rng.uniform(-2, 1, x_grid))
    hi = lo if exact_rows else lo + torch.tensor(rng.uniform(0, 1, x_grid))
    x = Interval.create(lo, hi, ((0,), (0, 2, 5), x_splits), (2, 6, k), FLOAT)
    w_lo = torch.tensor(rng.uniform(-1, 1, w_grid))
    w = Interval.create(w_lo, w_lo + torch.tensor(rng.uniform(0, 0.5, w_grid)), (w_splits, tuple(range(5))), (k, 5),
                        FLOAT)
    calls = []

    def product(a, b):
        calls.append((tuple(a.shape), tuple(b.shape)))
        return interval_product(torch.matmul, [a, b], k)

    out = blockwise_product(x, w, product, k, 1 << 16)
    # one row per row block; the union of (0, 10, 30) and (0, 10, 25, 30): four blocks
    assert calls == [((1, 3, 4), (4, 5))]
    mid, rad, abs_sum = interval_product(torch.matmul, [x, w], k)
    full = finish_sum(mid, rad, abs_sum, k, FLOAT)
    for got, want in zip(out.full(), full.full()):
        assert torch.allclose(got, want, rtol=1e-9, atol=1e-12)
    (x_lo, x_hi), (v_lo, v_hi), (y_lo, y_hi) = x.full(), w.full(), out.full()
    for _ in range(20):
        xs = x_lo + (x_hi - x_lo) * torch.rand(x_lo.shape, dtype=torch.float64)
        ws = v_lo + (v_hi - v_lo) * torch.rand(v_lo.shape, dtype=torch.float64)
        y = (xs.float() @ ws.float()).double()
        assert bool(((y >= y_lo) & (y <= y_hi)).all())


def test_an_exact_infinite_operand_gives_an_unbounded_product() -> None:
    """A constant +inf times a weight box is not an exact 0 (its midpoint-radius form is 0 +- inf)."""
    import torch
    from onnx import TensorProto

    from ranum.domain.interval import Interval
    from ranum.ops.linear import finish_sum, interval_product

    x = Interval.uniform(float("inf"), float("inf"), (2, 3), TensorProto.FLOAT)
    w = Interval.uniform(1.0, 2.0, (3, 2), TensorProto.FLOAT)
    out = finish_sum(*interval_product(torch.matmul, [x, w], 3), 3, TensorProto.FLOAT)
    assert out.max() == float("inf")


@pytest.mark.parametrize(("a_shape", "b_shape"), [((1, 4, 16, 16), (1, 16, 16, 4)), ((2, 3), (4, 5))])
@pytest.mark.parametrize("exact", [False, True])
def test_a_matmul_whose_shapes_disagree_is_named_inconsistent_not_an_internal_error(a_shape, b_shape, exact) -> None:
    """An exporter can write such a model (onnxruntime refuses it): the MatMul is left unanalysed as an
    inconsistent model, and the rest of the graph is still analysed."""
    import ranum

    b = helper.make_tensor("b", FLOAT, b_shape, np.ones(b_shape, np.float32).reshape(-1).tolist())
    nodes = [helper.make_node("MatMul", ["a", "b"], ["y"]), helper.make_node("Log", ["a"], ["z"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("a", FLOAT, a_shape)],
                              [helper.make_tensor_value_info("y", FLOAT, None),
                               helper.make_tensor_value_info("z", FLOAT, a_shape)], [b])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    box = [0.5, 0.5] if exact else [-1, 1]
    report = ranum.check(model, {"inputs": {"a": box}, "weights": {"default": "exact"}})
    reason = report.not_analysed_nodes["MatMul_0"]
    assert "inconsistent" in reason and "internal error" not in reason
    assert [f.op_type for f in report.findings] == ([] if exact else ["Log"])


@pytest.mark.parametrize("op", ["MatMul", "Einsum"])
def test_an_int64_product_past_2_to_the_53_holds_the_exact_result(op: str) -> None:
    """float64 holds integer sums exactly below 2**53 only: 3 * (2**53 + 2) fell outside bounds rounded to
    nearest."""
    import ranum

    attrs = {"equation": "ik,kj->ij"} if op == "Einsum" else {}
    w = helper.make_tensor("w", TensorProto.INT64, [3, 1], [1, 1, 1])
    graph = helper.make_graph([helper.make_node(op, ["x", "w"], ["y"], **attrs)], "g",
                              [helper.make_tensor_value_info("x", TensorProto.INT64, [1, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.INT64, [1, 1])], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    lo, hi = ranum.analyze(model, {"inputs": {"x": [2**53, 2**53 + 2]}, "weights": {"default": "exact"}}).bounds("y")
    (y,), = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        None, {"x": np.full((1, 3), 2**53 + 2, np.int64)})
    assert int(y[0]) == 3 * (2**53 + 2)
    assert int(lo.min()) <= int(y[0]) <= int(hi.max())


@pytest.mark.parametrize(("op", "w_shape"), [("Conv", (3, 0, 3, 3)), ("ConvTranspose", (0, 3, 3, 3))])
def test_a_convolution_over_no_input_channel_is_left_unanalysed(op: str, w_shape: tuple[int, ...]) -> None:
    """onnxruntime writes zeros (the bias) of the full output shape; the rules gave a shape without its channels,
    and a Log behind it had no finding."""
    import ranum

    w = helper.make_tensor("w", FLOAT, w_shape, [])
    nodes = [helper.make_node(op, ["x", "w"], ["c"]), helper.make_node("Log", ["c"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", FLOAT, [1, 0, 5, 5])],
                              [helper.make_tensor_value_info("y", FLOAT, None)], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    report = ranum.check(model, {"inputs": {"x": [-1, 1]}, "weights": {"default": "exact"}})
    assert "sums no term" in " ".join(report.not_analysed_nodes.values())
    assert "Log" in {f.op_type for f in report.findings}
