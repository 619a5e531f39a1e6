"""Soundness cases: Scan (opset 9 and later, and Scan-8 with its batch axis).

Bodies are small ONNX graphs built with ``onnx.helper``; they use only Add, Sub, Max, Abs and
Identity, so that no body node overflows at the harness's extreme magnitudes (an overflow would need a
hazard of the body node, which this one-node harness does not look into). Hand tests with sampled
onnxruntime runs, exactness and detection are in tests/ops/test_scan.py.
"""

from __future__ import annotations

import onnx
from onnx import TensorProto, helper

from tests.ops.harness import OpCase, Operand

FLOAT = TensorProto.FLOAT


def _vi(name: str, shape: list[int]) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, FLOAT, shape)


def cumulative(op: str = "Add", width: int = 2, scans: int = 1) -> onnx.GraphProto:
    """body(s, x) = (s op x, s op x): a cumulative sum (Add) or maximum (Max) with its running value scanned."""
    nodes = [helper.make_node(op, ["s", "x"], ["s_out"]), helper.make_node("Identity", ["s_out"], ["y"])]
    outputs = [_vi("s_out", [width]), _vi("y", [width])]
    if scans == 2:
        nodes.append(helper.make_node("Sub", ["x", "s"], ["z"]))
        outputs.append(_vi("z", [width]))
    return helper.make_graph(nodes, "cumulative", [_vi("s", [width]), _vi("x", [width])], outputs)


def zipped(width: int = 3) -> onnx.GraphProto:
    """body(s, a, b) = (s + a - b, a - b, s): two scan inputs, two scan outputs."""
    nodes = [helper.make_node("Sub", ["a", "b"], ["d"]), helper.make_node("Add", ["s", "d"], ["s_out"]),
             helper.make_node("Identity", ["s"], ["before"])]
    return helper.make_graph(nodes, "zipped", [_vi("s", [width]), _vi("a", [width]), _vi("b", [width])],
                             [_vi("s_out", [width]), _vi("d", [width]), _vi("before", [width])])


def stateless(width: int = 3) -> onnx.GraphProto:
    """body(x) = |x|: a map without state."""
    return helper.make_graph([helper.make_node("Abs", ["x"], ["y"])], "map", [_vi("x", [width])], [_vi("y", [width])])


CASES = [
    OpCase("Scan", (Operand((2,)), Operand((4, 2))), attrs={"body": cumulative(), "num_scan_inputs": 1},
           outputs=2, name="Scan-cumulative-sum"),
    OpCase("Scan", (Operand((2,)), Operand((2, 5), low=-1, high=2)),
           attrs={"body": cumulative(scans=2), "num_scan_inputs": 1, "scan_input_axes": [-1],
                  "scan_input_directions": [1], "scan_output_axes": [0, 1], "scan_output_directions": [0, 1]},
           outputs=3, opset=11, name="Scan-axes-and-directions"),
    OpCase("Scan", (Operand((3,)), Operand((3, 4)), Operand((4, 3))),
           attrs={"body": zipped(), "num_scan_inputs": 2, "scan_input_axes": [1, 0],
                  "scan_input_directions": [0, 1], "scan_output_axes": [-1, 0], "scan_output_directions": [1, 0]},
           outputs=3, name="Scan-two-inputs"),
    OpCase("Scan", (Operand((5, 3)),), attrs={"body": stateless(), "num_scan_inputs": 1}, outputs=1, opset=9,
           name="Scan-without-state"),
    OpCase("Scan", (Operand((2,)), Operand((70, 2))), attrs={"body": cumulative("Max"), "num_scan_inputs": 1},
           outputs=2, name="Scan-long-cumulative-max"),
    OpCase("Scan", (None, Operand((2, 2)), Operand((2, 3, 2))),
           attrs={"body": cumulative(), "num_scan_inputs": 1, "directions": [1]}, outputs=2, opset=8,
           name="Scan-8-reversed"),
    OpCase("Scan", (Operand((2,), TensorProto.INT64, value=[3, 1]), Operand((2, 2)), Operand((2, 3, 2))),
           attrs={"body": cumulative(scans=2), "num_scan_inputs": 1}, outputs=3, opset=8,
           name="Scan-8-sequence-lengths"),
]
