"""Zoo models that train: classic programs whose graph output is a scalar loss and whose float
initializers with more than one element are trainable weights (``ranum confirm --system``).

Each record's defect is reachable by plain SGD from its initial weights on data inside the ranges
(the system tests of tests/confirm/test_system.py train them). The loss output is a scalar
(``ReduceMean`` with ``keepdims = 0`` over every axis).
"""

from __future__ import annotations

from tests.zoo._record import FORWARD, GRADIENT, ZooModel

__all__ = ["MODELS"]

_W43 = "float[4,3] w = {0.1, -0.2, 0.3, -0.3, 0.2, 0.1, 0.2, 0.0, -0.1, 0.0, 0.1, -0.2}"
_W44 = "float[4,4] w1 = {0.1, -0.2, 0.3, -0.3, 0.2, 0.1, 0.2, 0.0, -0.1, 0.0, 0.1, -0.2, 0.3, 0.1, -0.1, 0.2}"
_W42 = "float[4,2] w2 = {0.2, -0.1, -0.3, 0.1, 0.1, 0.3, 0.0, -0.2}"
_MEAN = "ReduceMean<keepdims = 0>"

MODELS = [
    ZooModel(
        "train_softmax_regression",
        "softmax regression trained with -mean(y * log(softmax(x W + b))), RANUM's motivating "
        "example (TensorFlow tutorial style): a probability underflowing to 0 gives log(0)",
        "sr (float[1,4] x, float[1,3] y) => (float loss) <" + _W43 + ", float[3] b = {0.1, 0.0, -0.1}, "
        "int64[1] ax = {1}> {\n  a = MatMul(x, w)\n  z = Add(a, b)\n  p = Softmax<axis = 1>(z)\n"
        "  [sr_log] lp = Log(p)\n  t = Mul(y, lp)\n  s = ReduceSum<keepdims = 0>(t, ax)\n"
        "  m = " + _MEAN + "(s)\n  loss = Neg(m)\n}",
        {"inputs": {"x": [-50.0, 50.0], "y": [0.0, 1.0]}},
        {"sr_log": FORWARD},
        {"x": 50.0, "y": 0.5, "w": [[0.9, -0.9, 0.0]] * 4, "b": 0.0},
    ),
    ZooModel(
        "train_mlp_bce",
        "two-layer ReLU MLP with a hand-written binary cross-entropy -(y log(sigmoid(z)) + "
        "(1 - y) log(1 - sigmoid(z))): a saturated sigmoid sends either log to log(0)",
        "mlp (float[1,4] x, float[1,2] y) => (float loss) <" + _W44 + ", float[4] b1 = {0.1, 0.0, -0.1, 0.05}, "
        + _W42 + ", float one = {1.0}> {\n  a = MatMul(x, w1)\n  c = Add(a, b1)\n  h = Relu(c)\n"
        "  z = MatMul(h, w2)\n  p = Sigmoid(z)\n  [mlp_log_p] lp = Log(p)\n  q = Sub(one, p)\n"
        "  [mlp_log_q] lq = Log(q)\n  u = Mul(y, lp)\n  ny = Sub(one, y)\n  v = Mul(ny, lq)\n"
        "  s = Add(u, v)\n  m = " + _MEAN + "(s)\n  loss = Neg(m)\n}",
        {"inputs": {"x": [-20.0, 20.0], "y": [0.0, 1.0]}},
        {"mlp_log_p": FORWARD, "mlp_log_q": FORWARD},
        {"x": 20.0, "y": 0.5, "w1": 0.9, "b1": 0.0, "w2": [[0.9, -0.9]] * 4},
    ),
    ZooModel(
        "train_relu_scale_div",
        "inputs divided by a learned scale kept non-negative with ReLU (instead of softplus or "
        "an epsilon): SGD drives a scale below 0 and ReLU returns exactly 0",
        "rsd (float[1,4] x, float[1,4] t) => (float loss) <float[4] w = {0.5, 1.0, 1.5, 2.0}> {\n"
        "  s = Relu(w)\n  [rsd_div] y = Div(x, s)\n  d = Sub(y, t)\n  e = Abs(d)\n"
        "  loss = " + _MEAN + "(e)\n}",
        {"inputs": {"x": [-10.0, 10.0], "t": [-10.0, 10.0]}},
        {"rsd_div": FORWARD},
        {"x": 1.0, "t": 0.0, "w": [0.0, 1.0, 1.0, 1.0]},
    ),
    ZooModel(
        "train_sqrt_variance",
        "a learned variance used through sqrt without a positivity constraint (weights assumed "
        "to train anywhere in [-1, 4]): SGD makes it negative and sqrt returns NaN",
        "sqv (float[1,4] x, float[1,4] y) => (float loss) <float[4] v = {1.0, 0.5, 2.0, 1.5}> {\n"
        "  [sqv_sqrt] sd = Sqrt(v)\n  p = Mul(x, sd)\n  d = Sub(p, y)\n  e = Mul(d, d)\n"
        "  loss = " + _MEAN + "(e)\n}",
        {"inputs": {"x": [-10.0, 10.0], "y": [-10.0, 10.0]}, "weights": {"v": [-1.0, 4.0]}},
        {"sqv_sqrt": FORWARD},
        {"x": 1.0, "y": 0.0, "v": -0.5},
    ),
    ZooModel(
        "train_relu_sqrt_std",
        "a standard deviation sqrt(relu(v)) of a learned variance: SGD pushes v below 0, ReLU "
        "returns 0 and the gradient of sqrt is infinite there",
        "rsq (float[1,4] x, float[1,4] y) => (float loss) <float[4] v = {1.0, 0.5, 2.0, 1.5}> {\n"
        "  r = Relu(v)\n  [rsq_sqrt] sd = Sqrt(r)\n  p = Mul(x, sd)\n  d = Sub(p, y)\n  e = Mul(d, d)\n"
        "  loss = " + _MEAN + "(e)\n}",
        {"inputs": {"x": [-10.0, 10.0], "y": [-10.0, 10.0]}},
        {"rsq_sqrt": GRADIENT},
        {"x": 1.0, "y": 0.0, "v": 0.0},
    ),
    ZooModel(
        "train_exp_log_sigma",
        "Gaussian negative log-likelihood with sigma = exp(log_sigma) learned per feature "
        "(weights assumed to train in [-10, 100]): a large residual makes log_sigma jump and exp overflow",
        "els (float[1,4] x, float[1,4] mu) => (float loss) <float[4] ls = {0.0, 0.5, -0.5, 1.0}, "
        "float half = {0.5}> {\n  [els_exp] sg = Exp(ls)\n  d = Sub(x, mu)\n  z = Div(d, sg)\n"
        "  z2 = Mul(z, z)\n  h = Mul(z2, half)\n  n = Add(h, ls)\n  loss = " + _MEAN + "(n)\n}",
        {"inputs": {"x": [-50.0, 50.0], "mu": [-50.0, 50.0]}, "weights": {"ls": [-10.0, 100.0]}},
        {"els_exp": FORWARD},
        {"x": 0.0, "mu": 0.0, "ls": [100.0, 0.0, 0.0, 0.0]},
    ),
    ZooModel(
        "train_softplus_logistic",
        "logistic regression with a hand-written softplus log(1 + exp(z)) - y z: exp overflows "
        "for a large logit",
        "spl (float[1,4] x, float[1,1] y) => (float loss) <float[4,1] w = {0.1, -0.3, 0.2, 0.3}, "
        "float one = {1.0}> {\n  z = MatMul(x, w)\n  [spl_exp] e = Exp(z)\n  o = Add(one, e)\n"
        "  sp = Log(o)\n  yz = Mul(y, z)\n  n = Sub(sp, yz)\n  loss = " + _MEAN + "(n)\n}",
        {"inputs": {"x": [-30.0, 30.0], "y": [0.0, 1.0]}},
        {"spl_exp": FORWARD},
        {"x": 30.0, "y": 0.0, "w": 0.9},
    ),
    ZooModel(
        "train_log_linear_prob",
        "a 'probability' from a linear layer (softmax forgotten) trained with -mean(y log p): "
        "SGD moves the weights until p <= 0 for some input and log returns NaN",
        "llp (float[1,4] x, float[1,3] y) => (float loss) <float[4,3] w = {0.1, -0.1, 0.3, 0.2, 0.0, 0.1, "
        "0.3, 0.2, -0.1, 0.0, 0.1, 0.2}, float[3] b = {0.5, 0.6, 0.5}> {\n  a = MatMul(x, w)\n"
        "  p = Add(a, b)\n  [llp_log] lp = Log(p)\n  t = Mul(y, lp)\n  m = " + _MEAN + "(t)\n  loss = Neg(m)\n}",
        {"inputs": {"x": [-1.0, 1.0], "y": [0.0, 1.0]}},
        {"llp_log": FORWARD},
        {"x": 1.0, "y": 0.5, "w": -0.5, "b": 0.0},
    ),
]
