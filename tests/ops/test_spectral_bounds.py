"""DFT bounds on exact signals: they hold onnxruntime's outputs, including its worst cases (a spike at the
end of a Bluestein transform, whose chirp error grows with the length), and stay narrow; cases the rules
reject say why."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper

from ranum.domain.interval import Interval
from ranum.errors import UnsupportedOperator
from ranum.interpret import _finish
from ranum.ops._base import NodeContext
from ranum.ops.spectral import DFT17, STFT, HannWindow, MelWeightMatrix

TYPES = {np.float32: TensorProto.FLOAT, np.float64: TensorProto.DOUBLE, np.float16: TensorProto.FLOAT16}
CTX = NodeContext(node=None, opset=17, input_types=(), output_types=(), output_shapes=(), budget=1 << 16)


def _onnxruntime_dft(x: np.ndarray, **attrs) -> np.ndarray:
    elem_type = TYPES[x.dtype.type]
    node = helper.make_node("DFT", ["x"], ["y"], **attrs)
    graph = helper.make_graph([node], "dft", [helper.make_tensor_value_info("x", elem_type, list(x.shape))],
                              [helper.make_tensor_value_info("y", elem_type, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0].astype(np.float64)


def _bounds(x: np.ndarray, **attrs) -> tuple[np.ndarray, np.ndarray]:
    rule = DFT17(**attrs)
    point = Interval.point(torch.from_numpy(x.copy()), TYPES[x.dtype.type])
    out = _finish(rule, rule.abstract(CTX, point), CTX.budget)
    lo, hi = out.full()
    return lo.numpy(), hi.numpy()


def _signals(length: int, dtype) -> list[np.ndarray]:
    rng = np.random.default_rng(length)
    spikes = np.zeros((3, length, 2))
    for row, position in enumerate((0, length // 2, length - 1)):
        spikes[row, position] = (1.0, -0.5)
    noise = rng.standard_normal((2, length, 2))
    return [noise.astype(dtype), np.abs(noise).astype(dtype), spikes.astype(dtype)]


@pytest.mark.parametrize("inverse", [0, 1])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16], ids=["f32", "f64", "f16"])
@pytest.mark.parametrize("length", [1, 8, 256, 5, 400, 1000])
def test_bounds_of_exact_signals_hold_onnxruntime_and_stay_narrow(length: int, dtype, inverse: int) -> None:
    # the error bound relative to the sum of |samples|: about 30 ulps per radix-2 stage; for Bluestein's
    # algorithm, 40 n ulps for the chirps (onnxruntime reaches about 10 n on a spike at the end) and
    # about 40 sqrt(2n) ulps per stage of its FFTs; plus the rule's own float64 allowance and one
    # rounding of the result
    unit = 2.0**-53 if dtype is np.float64 else 2.0**-24
    if length & (length - 1) == 0:
        relative = 30 * max(length.bit_length() - 1, 1) * unit
    else:
        stages = (2 * length - 2).bit_length()
        relative = (45 * length + 150 * np.sqrt(2 * length) * stages) * unit
        relative += 1.1 * 2.0**-24 if inverse else 0.0  # onnxruntime's 1/n is a float32 even for float64
    relative += (2 * length + 16) * 2.0**-53
    rounding = {np.float16: 2.0**-10, np.float32: 2.0**-23, np.float64: 2.0**-52}[dtype]
    for x in _signals(length, dtype):
        expected = _onnxruntime_dft(x, inverse=inverse)
        lo, hi = _bounds(x, inverse=inverse)
        assert ((expected >= lo) & (expected <= hi)).all()
        total = np.abs(x.astype(np.float64)).sum(axis=(1, 2)) / (length if inverse else 1)
        radius = ((hi - lo) / 2).max(axis=(1, 2))
        assert (radius <= relative * total + 2 * rounding * np.abs(expected).max(axis=(1, 2))).all()


def test_a_ranged_size_or_length_is_rejected() -> None:
    ranged = Interval.uniform(4, 8, (), TensorProto.INT64)
    with pytest.raises(UnsupportedOperator, match="must be a constant"):
        HannWindow().abstract(CTX, ranged)
    signal = Interval.uniform(-1, 1, (1, 8, 1), TensorProto.FLOAT)
    with pytest.raises(UnsupportedOperator, match="must be a constant"):
        DFT17().abstract(CTX, signal, ranged)
    with pytest.raises(UnsupportedOperator, match="must be a constant"):
        STFT().abstract(CTX, Interval.uniform(-1, 1, (1, 16, 1), TensorProto.FLOAT), ranged)
    scalars = [Interval.point(torch.tensor(v), TensorProto.INT64) for v in (8, 64, 16000)]
    edge = Interval.point(torch.tensor(0.0), TensorProto.FLOAT)
    with pytest.raises(UnsupportedOperator, match="must be a constant"):
        MelWeightMatrix().abstract(CTX, *scalars, edge, Interval.uniform(4000.0, 8000.0, (), TensorProto.FLOAT))


@pytest.mark.parametrize(("attrs", "shape", "length", "reason"), [
    ({"onesided": 1, "inverse": 1}, (1, 5, 2), 12, "5 bins to 12 samples"),  # padded otherwise (measured)
    ({"onesided": 1, "inverse": 1}, (1, 8, 1), None, "expected a complex one-sided spectrum"),
    ({"onesided": 1}, (1, 8, 2), None, "real signal"),
    ({}, (1, 100, 1), 3, "overrun"),
    ({"axis": 2}, (1, 8, 1), None, "axis 2 out of range"),
])
def test_unsupported_settings_say_why(attrs: dict, shape: tuple[int, ...], length: int | None, reason: str) -> None:
    signal = Interval.uniform(-1, 1, shape, TensorProto.FLOAT)
    operands = [] if length is None else [Interval.point(torch.tensor(length), TensorProto.INT64)]
    with pytest.raises(UnsupportedOperator, match=reason):
        DFT17(**attrs).abstract(CTX, signal, *operands)
