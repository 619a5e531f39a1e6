"""Models exported by PyTorch's TorchScript exporter at old opsets (7 to 10) are analysed soundly.

One small CNN (Conv, BatchNormalization, Relu, MaxPool, nearest and bilinear upsampling, constant and
reflect padding, clamp, topk, scatter, Softmax, Dropout in eval mode) is exported with
``torch.onnx.export(..., dynamo=False, opset_version=V)``. At opsets 7 and 8 the exporter has no
``scatter`` (nor ``expand_as``), so the model leaves it out there; it needs ``size=`` rather than
``scale_factor=`` for the upsampling. Dropout in eval mode is not exported, and constant folding is
turned off so that BatchNormalization is not folded into the convolution.

Asserted: every operator has a rule at that opset (Upsample-7/9, Resize-10, Pad-2, TopK-1/10, Clip-6,
Scatter-9, Softmax-1, BatchNormalization-7/9 included), and every intermediate value of onnxruntime
runs with inputs and weights sampled inside the analysis ranges lies within ranum's bounds.
"""

from __future__ import annotations

import warnings
import zlib
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

import ranum
from tests.zoo.runtime import SAMPLE_MODES, Runner, check_sample, sample_feeds, sampled_tensors

OPSETS = (7, 8, 9, 10)
_EXPECTED = {
    7: {"Upsample", "BatchNormalization", "Pad", "TopK", "Clip", "Softmax", "MaxPool"},
    8: {"Upsample", "BatchNormalization", "Pad", "TopK", "Clip", "Softmax", "MaxPool"},
    9: {"Upsample", "BatchNormalization", "Pad", "TopK", "Clip", "Scatter", "Softmax", "MaxPool"},
    10: {"Resize", "BatchNormalization", "Pad", "TopK", "Clip", "Scatter", "Softmax", "MaxPool"},
}


class SmallCNN(nn.Module):
    """Conv-BN-ReLU-MaxPool, two upsamplings, two paddings, clamp, top-k, (scatter), softmax."""

    def __init__(self, scatter: bool) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.pool = nn.MaxPool2d(2)
        self.drop = nn.Dropout(0.3)
        self.softmax = nn.Softmax(dim=1)
        self.scatter = scatter

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = self.pool(F.relu(self.bn(self.conv(x))))
        near = F.interpolate(y, size=(8, 8), mode="nearest")
        linear = F.interpolate(y, size=(8, 8), mode="bilinear", align_corners=False)
        z = F.pad(near + linear, (1, 1, 2, 0), value=0.5)
        z = F.pad(z, (1, 1, 1, 1), mode="reflect")
        z = torch.clamp(z, -1.0, 2.0)
        values, indices = torch.topk(z.flatten(1), 5, dim=1)
        if self.scatter:
            order = torch.tensor([[4, 0, 2, 1, 3]]).expand_as(indices)
            values = torch.zeros_like(values).scatter(1, order, values)
        return self.softmax(self.drop(values)), indices


def _export(opset: int, folder: Path) -> onnx.ModelProto:
    torch.manual_seed(opset)
    model = SmallCNN(scatter=opset >= 9).eval()
    with torch.no_grad():  # non-trivial running statistics
        model.bn.running_mean.uniform_(-0.5, 0.5)
        model.bn.running_var.uniform_(0.5, 2.0)
    path = folder / f"cnn{opset}.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.randn(1, 3, 8, 8),), str(path), dynamo=False, opset_version=opset,
                          do_constant_folding=False, input_names=["x"])
    return onnx.load(str(path))


@pytest.mark.parametrize("opset", OPSETS)
def test_old_opset_export_is_supported_and_sound(opset: int, tmp_path: Path) -> None:
    model = _export(opset, tmp_path)
    assert {i.version for i in model.opset_import if i.domain in ("", "ai.onnx")} == {opset}
    assert _EXPECTED[opset] <= {node.op_type for node in model.graph.node}
    analysis = ranum.analyze(model, {"inputs": {"x": [-1.0, 1.0]}})
    assert not analysis.unsupported, dict(analysis.unsupported)
    fed = {name for name, _, _ in sampled_tensors(analysis)} & {init.name for init in model.graph.initializer}
    runner = Runner(model, fed=fed)
    rng = np.random.default_rng(zlib.crc32(f"opset{opset}".encode()))
    for mode in SAMPLE_MODES:
        check_sample(analysis, runner.run(sample_feeds(analysis, model, mode, rng)), f"opset {opset} [{mode}]")
