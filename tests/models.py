"""Small models shared by tests, written in ONNX text."""

from __future__ import annotations

import onnx

LOG_OF_DIFFERENCE = """
<ir_version: 8, opset_import: ["" : 17]>
g (float[2,3] x, float[2,3] y) => (float[2,3] z) {
  d = Sub(x, y)
  z = Log(d)
}
"""

SAFE_DIVISION = """
<ir_version: 8, opset_import: ["" : 17]>
g (float[4] x, float keep_prob) => (float[4] z) {
  z = Div(x, keep_prob)
}
"""

UNKNOWN_OP = """
<ir_version: 8, opset_import: ["" : 17, "custom.domain" : 1]>
g (float[3] x) => (float[3] z) {
  u = custom.domain.Mystery(x)
  z = Log(u)
}
"""


def parse(text: str) -> onnx.ModelProto:
    """Parse ONNX text into a checked model."""
    model = onnx.parser.parse_model(text)
    return model
