"""Soundness cases: DFT, STFT, window functions and MelWeightMatrix (ranum.ops.spectral).

Lengths cover onnxruntime's two algorithms (radix-2 for powers of two, Bluestein's chirp-z otherwise,
whose float32 error grows with the length: the agreement tolerance follows it).
"""

import numpy as np
from onnx import TensorProto

from tests.ops.harness import OpCase, Operand

DOUBLE = TensorProto.DOUBLE
F16 = TensorProto.FLOAT16
INT64 = TensorProto.INT64
INT32 = TensorProto.INT32


def _scalar(value: int, elem_type: int = INT64) -> Operand:
    return Operand((), elem_type, value=value)


def _dft(name, shape, elem_type=TensorProto.FLOAT, length=None, axis=None, opset=17, rtol=1e-4, **attrs):
    """A DFT case; ``axis`` is an attribute below opset 20, an input from it."""
    inputs = [Operand(shape, elem_type), None if length is None else _scalar(length)]
    if axis is not None and opset >= 20:
        inputs.append(_scalar(axis))
    elif axis is not None:
        attrs["axis"] = axis
    while inputs[-1] is None:
        inputs.pop()
    return OpCase("DFT", tuple(inputs), attrs=attrs, opset=opset, name=f"DFT-{name}", rtol=rtol)


DFTS = [
    _dft("real-8", (2, 8, 1)),
    _dft("real-12-onesided", (3, 12, 1), onesided=1),
    _dft("complex-16-inverse", (2, 16, 2), inverse=1),
    _dft("complex-6-inverse", (2, 6, 2), inverse=1),
    _dft("complex-5", (1, 5, 2)),
    _dft("real-1", (2, 1, 1)),
    _dft("pad-6-to-8", (2, 6, 1), length=8),
    _dft("pad-5-to-12-onesided", (2, 5, 1), length=12, onesided=1),
    _dft("cut-10-to-7", (2, 10, 1), length=7),
    _dft("cut-9-to-4-inverse", (1, 9, 2), length=4, inverse=1),
    _dft("axis2-rank4", (2, 3, 8, 1), axis=2),
    _dft("negative-axis", (2, 6, 3, 2), axis=-3),
    _dft("radix2-64-onesided", (2, 64, 1), onesided=1, rtol=1e-3),
    _dft("bluestein-100", (1, 100, 1), rtol=2e-2),
    _dft("double-10-complex", (2, 10, 2), DOUBLE),
    _dft("double-32", (2, 32, 1), DOUBLE),
    _dft("f16-8", (2, 8, 1), F16),
    _dft("f16-6-complex", (2, 6, 2), F16),
    OpCase("DFT", (Operand((2, 6, 1)), Operand((), INT32, value=8)), opset=17, name="DFT-int32-length", rtol=1e-4),
    _dft("opset20-default-axis", (2, 3, 5, 1), opset=20),
    _dft("opset20-axis-input", (2, 4, 6, 2), axis=-3, opset=20),
    _dft("opset20-axis-length", (2, 7, 1), length=9, axis=1, opset=20, onesided=1),
    _dft("opset20-inverse", (3, 8, 2), opset=20, inverse=1),
    # one-sided inverse (IRFFT) of n // 2 + 1 bins: the real part of the inverse of the Hermitian extension
    _dft("irfft-8", (2, 5, 2), onesided=1, inverse=1),
    _dft("irfft-9-length", (2, 5, 2), length=9, onesided=1, inverse=1),
    _dft("irfft-64", (1, 33, 2), onesided=1, inverse=1, rtol=1e-3),
    _dft("irfft-100-bluestein", (1, 51, 2), length=100, onesided=1, inverse=1, rtol=2e-2),
    _dft("irfft-opset20-axis", (2, 7, 3, 2), length=12, axis=1, opset=20, onesided=1, inverse=1),
    _dft("irfft-double", (2, 6, 2), DOUBLE, length=10, onesided=1, inverse=1),
    # sums past float32's largest value: onnxruntime returns inf or NaN, the bounds are unbounded (Overflow)
    OpCase("DFT", (Operand((1, 64, 1), low=1e37, high=3e38),), opset=17, name="DFT-overflow", check_agreement=False),
    OpCase("DFT", (Operand((1, 12, 2), low=1e35, high=1e36),), opset=17, name="DFT-bluestein-overflow",
           check_agreement=False),
]


def _stft(name, signal, step, window=None, length=None, elem_type=TensorProto.FLOAT, rtol=1e-4, **attrs):
    inputs = (Operand(signal, elem_type), _scalar(step), window, None if length is None else _scalar(length))
    return OpCase("STFT", inputs[:3] if length is None else inputs, attrs=attrs, opset=17, name=f"STFT-{name}",
                  rtol=rtol)


_HANN_16 = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(16) / 16)).tolist()

STFTS = [
    _stft("window", (2, 40, 1), 4, Operand((8,), low=0.0, high=1.0)),
    _stft("hann-constant", (1, 64, 1), 8, Operand((16,), value=_HANN_16)),
    _stft("no-window", (2, 30, 1), 3, None, 8, onesided=0),
    _stft("complex-window-6", (1, 30, 2), 4, Operand((6,), low=-1.0, high=1.0), 6, onesided=0),
    _stft("complex-onesided", (1, 20, 2), 4, Operand((8,), low=0.0, high=1.0), onesided=1),
    _stft("bluestein-10", (2, 50, 1), 5, Operand((10,), low=0.0, high=1.0), rtol=1e-3),
    _stft("one-frame", (1, 12, 1), 12, Operand((12,), low=0.0, high=1.0), rtol=1e-3),
    _stft("double", (2, 33, 1), 4, Operand((8,), DOUBLE, 0.0, 1.0), elem_type=DOUBLE),
    _stft("f16", (1, 24, 1), 4, Operand((8,), F16, 0.0, 1.0), elem_type=F16),
]


def _window(op, size, periodic=1, output=TensorProto.FLOAT):
    kind = "periodic" if periodic else "symmetric"
    return OpCase(op, (_scalar(size),), attrs={"periodic": periodic, "output_datatype": output}, opset=17,
                  name=f"{op}-{kind}-{size}-{TensorProto.DataType.Name(output).lower()}")


WINDOWS = [
    case
    for op in ("HannWindow", "HammingWindow", "BlackmanWindow")
    for case in (_window(op, 10), _window(op, 9, 0), _window(op, 400), _window(op, 33, 0, DOUBLE),
                 _window(op, 16, 1, F16), _window(op, 1, 0), _window(op, 1))
]


def _mel(name, bins, length, rate, low, high, output=TensorProto.FLOAT):
    inputs = (_scalar(bins), _scalar(length), _scalar(rate), Operand((), value=low), Operand((), value=high))
    return OpCase("MelWeightMatrix", inputs, attrs={"output_datatype": output}, opset=17,
                  name=f"MelWeightMatrix-{name}")


MELS = [
    _mel("whisper", 80, 400, 16000, 0.0, 8000.0),
    _mel("small", 8, 64, 16000, 20.0, 7600.0),
    _mel("wide-triangles", 4, 512, 22050, 300.0, 4000.0),
    _mel("narrow-triangles", 40, 128, 44100, 0.0, 22050.0),
    _mel("double", 16, 256, 8000, 100.0, 3900.0, DOUBLE),
    # the first point's float64 bin position is 3 + 1e-15, then 5 - 2e-15: floors another libm could flip
    _mel("doubtful-floor-up", 8, 399, 16000, 120.0, 4000.0),
    _mel("doubtful-floor-down", 8, 399, 16000, 200.0, 4000.0),
]

CASES = DFTS + STFTS + WINDOWS + MELS
