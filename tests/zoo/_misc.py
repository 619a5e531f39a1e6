"""Zoo models: logs, roots and inverse trigonometry on values whose domain is not enforced
(linear-layer "probabilities", ReLU outputs, predicted widths, norms, dot products, tanh outputs).
"""

from __future__ import annotations

from tests.zoo._record import FORWARD, GRADIENT, ZooModel

__all__ = ["MODELS"]

_LIN_SIG = "lin (float[1,4] h) => (float[1,3] lp) <float[4,3] w = {0.2, 0.1, 0.3, 0.1, 0.2, 0.1, " \
           "0.3, 0.1, 0.2, 0.1, 0.3, 0.1}, float[3] b = {0.1, 0.2, 0.1}"
_LIN_SPEC = {"inputs": {"h": [0.0, 1.0]}, "weights": {"w": [-1.0, 1.0], "b": [0.0, 0.5]}}
_GM_SIG = "gm (float[1,5] x) => (float[1,1] g) <float eps = {1e-6}"
_GM_SPEC = {"inputs": {"x": [0.0, 10.0]}}
_ACOS_SIG = "ang (float[1,3] a, float[1,3] b) => (float[1] t) <int64[1] ax = {1}, float lo = {-0.9999999}, " \
            "float hi = {0.9999999}> {\n  ab = Mul(a, b)\n  dot = ReduceSum<keepdims = 0>(ab, ax)\n"
_ACOS_SPEC = {"inputs": {"a": [-1.0, 1.0], "b": [-1.0, 1.0]}}
_ATANH_SIG = "sac (float[1,4] x) => (float[1,4] u) <float k = {1.01}, float lo = {-0.999999}, " \
             "float hi = {0.999999}> {\n  t = Tanh(x)\n  s = Mul(t, k)\n"
_ATANH_SPEC = {"inputs": {"x": [-5.0, 5.0]}}
_RELU_SIG = "rl (float[1,4] h) => (float[1,2] lw) <float[4,2] w = {0.3, -0.2, 0.1, 0.4, -0.3, 0.2, " \
            "0.1, 0.1}, float eps = {1e-6}> {\n  a = MatMul(h, w)\n  r = Relu(a)\n"
_RELU_SPEC = {"inputs": {"h": [-1.0, 1.0]}, "weights": {"w": [-1.0, 1.0]}}
_YOLO_SIG = "yolo (float[1,4] w_pred, float[1,4] w_true) => (float[1] loss) <int64[1] ax = {1}, " \
            "float eps = {1e-6}> {\n  st = Sqrt(w_true)\n"
_YOLO_TAIL = """
  d = Sub(sp, st)
  d2 = Mul(d, d)
  loss = ReduceSum<keepdims = 0>(d2, ax)
}
"""
_YOLO_SPEC = {"inputs": {"w_pred": [-1.0, 2.0], "w_true": [0.01, 1.0]}}
_NORM_SIG = "ln (float[1,6] x) => (float[1,1] y) <float eps = {1e-12}, float half = {0.5}> {\n"
_NORM_SPEC = {"inputs": {"x": [-1.0, 1.0]}}

MODELS = [
    ZooModel(
        "log_prob_from_linear",
        "log of a 'probability' taken straight from a linear layer (softmax/sigmoid forgotten): "
        "the affine output can be negative",
        _LIN_SIG + "> {\n  a = MatMul(h, w)\n  p = Add(a, b)\n  [lin_log] lp = Log(p)\n}",
        _LIN_SPEC,
        {"lin_log": FORWARD},
        {"h": 1.0, "w": -1.0, "b": 0.0},
    ),
    ZooModel(
        "log_prob_from_linear_clip",
        "the linear output clipped to [1e-7, 1] before the log",
        _LIN_SIG + ", float lo = {1e-7}, float hi = {1.0}> {\n  a = MatMul(h, w)\n  p = Add(a, b)\n"
        "  pc = Clip(p, lo, hi)\n  [lin_log] lp = Log(pc)\n}",
        _LIN_SPEC,
        twin_of="log_prob_from_linear",
    ),
    ZooModel(
        "geometric_mean",
        "geometric mean exp(mean(log x)) of non-negative features (e.g. counts): a zero feature "
        "gives log(0)",
        _GM_SIG + "> {\n  [gm_log] l = Log(x)\n  m = ReduceMean<axes = [1]>(l)\n  g = Exp(m)\n}",
        _GM_SPEC,
        {"gm_log": FORWARD},
        {"x": [[0.0, 1.0, 2.0, 3.0, 4.0]]},
    ),
    ZooModel(
        "geometric_mean_clip",
        "geometric mean of x clipped to at least 1e-6",
        _GM_SIG + "> {\n  xc = Clip(x, eps)\n  [gm_log] l = Log(xc)\n  m = ReduceMean<axes = [1]>(l)\n"
        "  g = Exp(m)\n}",
        _GM_SPEC,
        twin_of="geometric_mean",
    ),
    ZooModel(
        "acos_dot_product",
        "angle acos(a . b) between direction vectors that are assumed, not enforced, to be unit "
        "length (rounding or unnormalised inputs push the dot product past 1)",
        _ACOS_SIG + "  [angle_acos] t = Acos(dot)\n}",
        _ACOS_SPEC,
        {"angle_acos": FORWARD},
        {"a": 1.0, "b": 1.0},
    ),
    ZooModel(
        "acos_dot_product_clip",
        "angle acos(clip(a . b, -1 + 1e-7, 1 - 1e-7)); clipping to [-1, 1] alone would leave the "
        "infinite gradient of acos at +-1",
        _ACOS_SIG + "  dc = Clip(dot, lo, hi)\n  [angle_acos] t = Acos(dc)\n}",
        _ACOS_SPEC,
        twin_of="acos_dot_product",
    ),
    ZooModel(
        "atanh_scaled_tanh",
        "atanh of a tanh output scaled by 1.01 (inverting a squashed action, as in SAC's "
        "log-probability correction): |1.01 tanh(x)| exceeds 1",
        _ATANH_SIG + "  [sac_atanh] u = Atanh(s)\n}",
        _ATANH_SPEC,
        {"sac_atanh": FORWARD},
        {"x": 5.0},
    ),
    ZooModel(
        "atanh_clipped",
        "atanh of the scaled tanh clipped to [-0.999999, 0.999999]",
        _ATANH_SIG + "  sc = Clip(s, lo, hi)\n  [sac_atanh] u = Atanh(sc)\n}",
        _ATANH_SPEC,
        twin_of="atanh_scaled_tanh",
    ),
    ZooModel(
        "log_relu_output",
        "log of a positive quantity predicted through ReLU (e.g. a box size): ReLU outputs 0",
        _RELU_SIG + "  [relu_log] lw = Log(r)\n}",
        _RELU_SPEC,
        {"relu_log": FORWARD},
        {"h": 0.0, "w": 0.5},
    ),
    ZooModel(
        "log_relu_output_eps",
        "log of ReLU output + 1e-6",
        _RELU_SIG + "  re = Add(r, eps)\n  [relu_log] lw = Log(re)\n}",
        _RELU_SPEC,
        twin_of="log_relu_output",
    ),
    ZooModel(
        "yolo_sqrt_width",
        "YOLOv1 box loss (sqrt(w_pred) - sqrt(w_true))^2 with an unconstrained predicted width: "
        "a negative prediction gives sqrt of a negative value",
        _YOLO_SIG + "  [yolo_sqrt] sp = Sqrt(w_pred)" + _YOLO_TAIL,
        _YOLO_SPEC,
        {"yolo_sqrt": FORWARD},
        {"w_pred": -0.5, "w_true": 0.25},
    ),
    ZooModel(
        "yolo_sqrt_abs_eps",
        "YOLO box loss with sqrt(|w_pred| + 1e-6)",
        _YOLO_SIG + "  a = Abs(w_pred)\n  ae = Add(a, eps)\n  [yolo_sqrt] sp = Sqrt(ae)" + _YOLO_TAIL,
        _YOLO_SPEC,
        twin_of="yolo_sqrt_width",
    ),
    ZooModel(
        "log_l2_norm",
        "log of an L2 norm log(ReduceL2(x)) (log-magnitude feature, log gradient norm): the zero "
        "vector gives log(0), and the gradient of the norm there is 0 / 0",
        _NORM_SIG + "  [norm_l2] n = ReduceL2<axes = [1]>(x)\n  [norm_log] y = Log(n)\n}",
        _NORM_SPEC,
        {"norm_l2": GRADIENT, "norm_log": FORWARD},
        {"x": 0.0},
    ),
    ZooModel(
        "log_l2_norm_eps",
        "log norm as 0.5 * log(sum(x^2) + 1e-12)",
        _NORM_SIG + "  s = ReduceSumSquare<axes = [1]>(x)\n  se = Add(s, eps)\n  [norm_log] l = Log(se)\n"
        "  y = Mul(l, half)\n}",
        _NORM_SPEC,
        twin_of="log_l2_norm",
    ),
]
