"""Build the bundled example models (kept as source; the .onnx files are generated).

``softmax_regression.onnx`` is the program from the RANUM paper's motivating example: a softmax
regression whose cost takes ``log(p)`` and ``log(1 - p)`` of the softmax output ``p`` (both can be
0 in float32), and ``softmax_regression_fixed.onnx`` its repaired twin (``p`` clipped to
``[1e-7, 1 - 1e-7]`` before the logs). Weights start at zero, as in the original program.

Usage: ``python examples/make_examples.py [OUTPUT_FOLDER]`` (default: this file's folder).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

BATCH, FEATURES, CLASSES = 32, 784, 10


def softmax_regression(fixed: bool) -> onnx.ModelProto:
    """The motivating example (or its fix) as an ONNX model."""
    nodes = [
        helper.make_node("MatMul", ["x", "W"], ["logits_raw"], name="model/MatMul"),
        helper.make_node("Add", ["logits_raw", "b"], ["logits"], name="model/Add"),
        helper.make_node("Softmax", ["logits"], ["p_raw"], name="model/Softmax", axis=-1),
    ]
    if fixed:
        nodes.append(helper.make_node("Clip", ["p_raw", "p_min", "p_max"], ["p"], name="model/Clip"))
    else:
        nodes.append(helper.make_node("Identity", ["p_raw"], ["p"], name="model/Identity"))
    nodes += [
        helper.make_node("Log", ["p"], ["log_p"], name="cost/Log"),
        helper.make_node("Mul", ["y", "log_p"], ["pos"], name="cost/Mul"),
        helper.make_node("Sub", ["one", "p"], ["one_minus_p"], name="cost/Sub"),
        helper.make_node("Log", ["one_minus_p"], ["log_q"], name="cost/Log_1"),
        helper.make_node("Sub", ["one", "y"], ["one_minus_y"], name="cost/Sub_1"),
        helper.make_node("Mul", ["one_minus_y", "log_q"], ["neg"], name="cost/Mul_1"),
        helper.make_node("Add", ["pos", "neg"], ["total"], name="cost/Add"),
        helper.make_node("ReduceMean", ["total"], ["mean"], name="cost/ReduceMean", keepdims=0),
        helper.make_node("Neg", ["mean"], ["cost"], name="cost/Neg"),
    ]
    inits = [
        numpy_helper.from_array(np.zeros((FEATURES, CLASSES), np.float32), "W"),
        numpy_helper.from_array(np.zeros((CLASSES,), np.float32), "b"),
        numpy_helper.from_array(np.array(1.0, np.float32), "one"),
    ]
    if fixed:
        inits += [
            numpy_helper.from_array(np.array(1e-7, np.float32), "p_min"),
            numpy_helper.from_array(np.array(1 - 1e-7, np.float32), "p_max"),
        ]
    graph = helper.make_graph(
        nodes,
        "softmax_regression_fixed" if fixed else "softmax_regression",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [BATCH, FEATURES]),
            helper.make_tensor_value_info("y", TensorProto.FLOAT, [BATCH, CLASSES]),
        ],
        [helper.make_tensor_value_info("cost", TensorProto.FLOAT, [])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="ranum-examples")
    onnx.checker.check_model(model)
    return model


def main(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    onnx.save(softmax_regression(fixed=False), str(folder / "softmax_regression.onnx"))
    onnx.save(softmax_regression(fixed=True), str(folder / "softmax_regression_fixed.onnx"))


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent)
