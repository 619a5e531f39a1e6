"""Whole graphs: log-mel spectrograms (a classic place for Log(0)) analysed end to end.

Three graphs compute ``log(mel + eps)``: a PyTorch module exported with the repository's front end
(``torch.stft`` becomes STFT), and two ONNX graphs written here, one with HannWindow, STFT and
MelWeightMatrix, one with framed audio, a window product and an opset-20 DFT. With ``eps > 0`` the Log
is proven safe; without it a silent input gives mel 0 and Log(0) = -inf, which onnxruntime confirms.
Every intermediate tensor of onnxruntime's runs at sampled inputs lies inside its bounds.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper

import ranum
from ranum.detect import find_hazards
from tests.zoo.runtime import Runner, check_sample, sample_feeds

FLOAT, INT64 = TensorProto.FLOAT, TensorProto.INT64
SAMPLES, N_FFT, HOP, MELS = 256, 64, 16, 8
RATE = 16000
SPEC = {"inputs": {"audio": [-1.0, 1.0]}, "weights": {"default": "exact"}}


class LogMel(torch.nn.Module):
    """STFT power spectrum, a mel filter bank, then ``log(mel + eps)``."""

    def __init__(self, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.register_buffer("window", torch.hann_window(N_FFT))
        self.register_buffer("mel", torch.rand(N_FFT // 2 + 1, MELS, generator=torch.Generator().manual_seed(0)))

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        spec = torch.stft(audio, N_FFT, HOP, window=self.window, center=False, return_complex=True)
        mel = (spec.real**2 + spec.imag**2).transpose(1, 2) @ self.mel
        return torch.log(mel + self.eps) if self.eps else torch.log(mel)


@cache
def _torch_graph(eps: float) -> onnx.ModelProto:
    from ranum.frontend import export_module

    return export_module(LogMel(eps), torch.rand(1, SAMPLES)).model


def _scalar(name: str, value, elem_type: int = INT64) -> onnx.TensorProto:
    return helper.make_tensor(name, elem_type, [], [value])


def _log_of(mel: str, eps: float) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto]]:
    """``log(mel + eps)`` (``log(mel)`` for eps 0) into the output ``y``."""
    if not eps:
        return [helper.make_node("Log", [mel], ["y"])], []
    return [helper.make_node("Add", [mel, "eps"], ["shifted"]), helper.make_node("Log", ["shifted"], ["y"])], \
        [_scalar("eps", eps, FLOAT)]


def _mel_nodes() -> tuple[list[onnx.NodeProto], list[onnx.TensorProto]]:
    inits = [_scalar("mels", MELS), _scalar("n_fft", N_FFT), _scalar("rate", RATE),
             _scalar("f_low", 0.0, FLOAT), _scalar("f_high", RATE / 2, FLOAT)]
    return [helper.make_node("MelWeightMatrix", ["mels", "n_fft", "rate", "f_low", "f_high"], ["filters"])], inits


def _model(nodes, inits, audio_shape: list[int], frames: int, opset: int) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "log_mel", [helper.make_tensor_value_info("audio", FLOAT, audio_shape)],
                              [helper.make_tensor_value_info("y", FLOAT, [1, frames, MELS])], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 9
    return model


def _stft_graph(eps: float) -> onnx.ModelProto:
    """HannWindow -> STFT -> Mul/ReduceSum power -> MatMul(MelWeightMatrix) -> Add(eps) -> Log."""
    mel_nodes, mel_inits = _mel_nodes()
    log_nodes, log_inits = _log_of("mel", eps)
    nodes = [
        helper.make_node("HannWindow", ["n_fft"], ["window"]),
        helper.make_node("Unsqueeze", ["audio", "last"], ["signal"]),
        helper.make_node("STFT", ["signal", "hop", "window"], ["spec"], onesided=1),
        helper.make_node("Mul", ["spec", "spec"], ["squares"]),
        helper.make_node("ReduceSum", ["squares", "last"], ["power"], keepdims=0),
        *mel_nodes,
        helper.make_node("MatMul", ["power", "filters"], ["mel"]),
        *log_nodes,
    ]
    inits = [_scalar("hop", HOP), helper.make_tensor("last", INT64, [1], [-1]), *mel_inits, *log_inits]
    return _model(nodes, inits, [1, SAMPLES], (SAMPLES - N_FFT) // HOP + 1, 18)


def _dft_graph(eps: float) -> onnx.ModelProto:
    """Framed audio [1, frames, n_fft] times a Blackman window -> DFT (opset 20, axis input) -> power -> mel."""
    mel_nodes, mel_inits = _mel_nodes()
    log_nodes, log_inits = _log_of("mel", eps)
    nodes = [
        helper.make_node("BlackmanWindow", ["n_fft"], ["window"], periodic=1),
        helper.make_node("Mul", ["audio", "window"], ["framed"]),
        helper.make_node("Unsqueeze", ["framed", "last"], ["frames"]),
        helper.make_node("DFT", ["frames", "", "axis"], ["spec"], onesided=1),
        helper.make_node("Mul", ["spec", "spec"], ["squares"]),
        helper.make_node("ReduceSum", ["squares", "last"], ["power"], keepdims=0),
        *mel_nodes,
        helper.make_node("MatMul", ["power", "filters"], ["mel"]),
        *log_nodes,
    ]
    inits = [helper.make_tensor("last", INT64, [1], [-1]), _scalar("axis", 2), *mel_inits, *log_inits]
    return _model(nodes, inits, [1, 6, N_FFT], 6, 20)


GRAPHS: dict[str, Callable[[float], onnx.ModelProto]] = {"torch-stft": _torch_graph, "stft": _stft_graph,
                                                         "dft": _dft_graph}


def _log_findings(analysis: ranum.Analysis) -> list:
    return [f for f in find_hazards(analysis.run) if f.op_type == "Log"]


@pytest.mark.parametrize("name", sorted(GRAPHS))
def test_every_node_is_analysed_and_eps_proves_the_log_safe(name: str) -> None:
    analysis = ranum.analyze(GRAPHS[name](1e-6), SPEC)
    assert not analysis.run.unsupported
    assert not find_hazards(analysis.run)
    lo, _ = analysis.bounds(analysis.graph.nodes[-1].inputs[0])
    assert lo.min() > 0.0


@pytest.mark.parametrize("name", sorted(GRAPHS))
def test_without_eps_a_silent_input_makes_log_of_zero(name: str) -> None:
    model = GRAPHS[name](0.0)
    analysis = ranum.analyze(model, SPEC)
    findings = _log_findings(analysis)
    assert len(findings) == 1 and findings[0].interval[0] <= 0.0
    audio = model.graph.input[0].type.tensor_type.shape
    silence = np.zeros([d.dim_value for d in audio.dim], dtype=np.float32)
    values = Runner(model).run({"audio": silence})
    assert np.isneginf(values[analysis.graph.nodes[-1].outputs[0]]).all()  # the finding is real


@pytest.mark.parametrize("eps", [1e-6, 0.0])
@pytest.mark.parametrize("name", sorted(GRAPHS))
def test_onnxruntime_values_lie_inside_the_bounds(name: str, eps: float) -> None:
    model = GRAPHS[name](eps)
    analysis = ranum.analyze(model, SPEC)
    runner, rng = Runner(model), np.random.default_rng(0)
    for mode in ("low", "high", "mix", "uniform", "uniform"):
        check_sample(analysis, runner.run(sample_feeds(analysis, model, mode, rng)), f"{name} eps={eps} [{mode}]")
    feeds = sample_feeds(analysis, model, "low", rng)
    silence = {key: np.zeros_like(value) for key, value in feeds.items()}
    check_sample(analysis, runner.run(silence), f"{name} eps={eps} [silence]")


def test_mel_filter_bank_matches_onnxruntime_exactly() -> None:
    model = _stft_graph(1e-6)
    analysis = ranum.analyze(model, SPEC)
    lo, hi = analysis.bounds("filters")
    expected = Runner(model).run({"audio": np.zeros((1, SAMPLES), np.float32)})["filters"]
    assert np.array_equal(lo, expected) and np.array_equal(hi, expected)
