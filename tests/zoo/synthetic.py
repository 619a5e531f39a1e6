"""Bigger synthetic models for whole-graph soundness: an MLP, a small CNN and a LayerNorm block.

Built with ``onnx.helper`` from a seeded generator, so every call returns the same model; weights
are ordinary initializers whose ranges the analysis derives from their values.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

__all__ = ["SYNTHETIC", "cnn", "layernorm_block", "mlp"]

FLOAT = TensorProto.FLOAT


def _init(rng: np.random.Generator, name: str, shape: tuple[int, ...], scale: float = 0.5,
          positive: bool = False) -> onnx.TensorProto:
    values = rng.uniform(0.1, 1.0, size=shape) if positive else rng.normal(0.0, scale, size=shape)
    return numpy_helper.from_array(values.astype(np.float32), name)


def _model(nodes: list, name: str, x: tuple[str, tuple[int, ...]], y: str, inits: list) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes, name, [helper.make_tensor_value_info(x[0], FLOAT, list(x[1]))],
        [helper.make_empty_tensor_value_info(y)], initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return onnx.shape_inference.infer_shapes(model)


def mlp() -> onnx.ModelProto:
    """x[2,8] -> Gemm -> Relu -> Gemm -> Relu -> Gemm -> Softmax."""
    rng = np.random.default_rng(1)
    inits = [_init(rng, "w1", (8, 16)), _init(rng, "b1", (16,)), _init(rng, "w2", (16, 16)),
             _init(rng, "b2", (16,)), _init(rng, "w3", (4, 16)), _init(rng, "b3", (4,))]
    nodes = [
        helper.make_node("Gemm", ["x", "w1", "b1"], ["h1"]),
        helper.make_node("Relu", ["h1"], ["a1"]),
        helper.make_node("Gemm", ["a1", "w2", "b2"], ["h2"], alpha=0.5),
        helper.make_node("Relu", ["h2"], ["a2"]),
        helper.make_node("Gemm", ["a2", "w3", "b3"], ["logits"], transB=1),
        helper.make_node("Softmax", ["logits"], ["p"], axis=1),
    ]
    return _model(nodes, "mlp", ("x", (2, 8)), "p", inits)


def cnn() -> onnx.ModelProto:
    """x[1,2,8,8] -> Conv -> BatchNormalization -> Relu -> MaxPool -> Conv -> GlobalAveragePool -> Gemm."""
    rng = np.random.default_rng(2)
    inits = [_init(rng, "k1", (4, 2, 3, 3)), _init(rng, "c1", (4,)), _init(rng, "gamma", (4,), positive=True),
             _init(rng, "beta", (4,)), _init(rng, "mean", (4,), 0.2), _init(rng, "var", (4,), positive=True),
             _init(rng, "k2", (3, 4, 3, 3)), _init(rng, "wf", (3, 5)), _init(rng, "bf", (5,))]
    nodes = [
        helper.make_node("Conv", ["x", "k1", "c1"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c", "gamma", "beta", "mean", "var"], ["bn"]),
        helper.make_node("Relu", ["bn"], ["r"]),
        helper.make_node("MaxPool", ["r"], ["mp"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["mp", "k2"], ["c2"], strides=[1, 1]),
        helper.make_node("GlobalAveragePool", ["c2"], ["g"]),
        helper.make_node("Flatten", ["g"], ["f"]),
        helper.make_node("Gemm", ["f", "wf", "bf"], ["y"]),
    ]
    return _model(nodes, "cnn", ("x", (1, 2, 8, 8)), "y", inits)


def layernorm_block() -> onnx.ModelProto:
    """x[1,4,8] -> LayerNormalization -> MatMul + bias -> Relu -> MatMul -> residual Add."""
    rng = np.random.default_rng(3)
    inits = [_init(rng, "ln_scale", (8,), positive=True), _init(rng, "ln_bias", (8,)),
             _init(rng, "w_up", (8, 16)), _init(rng, "b_up", (16,)), _init(rng, "w_down", (16, 8))]
    nodes = [
        helper.make_node("LayerNormalization", ["x", "ln_scale", "ln_bias"], ["ln"], axis=-1),
        helper.make_node("MatMul", ["ln", "w_up"], ["up"]),
        helper.make_node("Add", ["up", "b_up"], ["upb"]),
        helper.make_node("Relu", ["upb"], ["act"]),
        helper.make_node("MatMul", ["act", "w_down"], ["down"]),
        helper.make_node("Add", ["x", "down"], ["y"]),
    ]
    return _model(nodes, "layernorm_block", ("x", (1, 4, 8)), "y", inits)


SYNTHETIC: dict[str, Callable[[], onnx.ModelProto]] = {"mlp": mlp, "cnn": cnn, "layernorm_block": layernorm_block}
