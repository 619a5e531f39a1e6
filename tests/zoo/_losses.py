"""Zoo models: loss functions and probability outputs (cross-entropy, BCE, GAN, focal, likelihoods).

Each buggy pattern names the node that must be flagged; each fixed twin repairs it the way the
frameworks do (epsilon, clipping, the fused log-softmax operator).
"""

from __future__ import annotations

from tests.zoo._record import FORWARD, ZooModel

__all__ = ["MODELS"]

_CE_SIG = "(float[1,10] logits, float[1,10] y) => (float[1] loss)"
_CE_TAIL = """
  t = Mul(y, logp)
  s = ReduceSum<keepdims = 0>(t, ax)
  loss = Neg(s)
}
"""
_CE_SPEC = {"inputs": {"logits": [-100.0, 100.0], "y": [0.0, 1.0]}}

_BCE_SIG = "(float[1,4] logit, float[1,4] y) => (float[1,4] loss)"
_BCE_SPEC = {"inputs": {"logit": [-200.0, 200.0], "y": [0.0, 1.0]}}
_BCE_TAIL = """
  a = Mul(y, lp)
  ny = Sub(one, y)
  b = Mul(ny, lq)
  s = Add(a, b)
  loss = Neg(s)
}
"""

_NLL_SIG = "(float[1,4] x, float[1,4] mu) => (float[1,4] nll)"
_NLL_SPEC = {"inputs": {"x": [-3.0, 3.0], "mu": [-3.0, 3.0]}, "weights": {"var": [0.0, 4.0]}}
_NLL_INIT = "<float[4] var = {1.0, 0.5, 2.0, 1.5}, float two = {2.0}, float half = {0.5}"

MODELS = [
    ZooModel(
        "ce_log_softmax_no_eps",
        "cross-entropy -sum(y * log(softmax(logits))) without epsilon, as in the TensorFlow MNIST "
        "tutorial: a probability that underflows to 0 gives log(0) = -inf",
        "ce " + _CE_SIG + " <int64[1] ax = {1}> {\n  p = Softmax<axis = 1>(logits)\n"
        "  [ce_log] logp = Log(p)" + _CE_TAIL,
        _CE_SPEC,
        {"ce_log": FORWARD},
        {"logits": [[-100.0, 100.0, 0, 0, 0, 0, 0, 0, 0, 0]], "y": 0.1},
    ),
    ZooModel(
        "ce_log_softmax_eps",
        "cross-entropy with log(softmax + 1e-7), the common repair",
        "ce " + _CE_SIG + " <int64[1] ax = {1}, float eps = {1e-7}> {\n  p = Softmax<axis = 1>(logits)\n"
        "  pe = Add(p, eps)\n  [ce_log] logp = Log(pe)" + _CE_TAIL,
        _CE_SPEC,
        twin_of="ce_log_softmax_no_eps",
    ),
    ZooModel(
        "ce_log_softmax_clip",
        "cross-entropy with the probability clipped to [1e-7, 1] before the log (Keras "
        "categorical_crossentropy)",
        "ce " + _CE_SIG + " <int64[1] ax = {1}, float lo = {1e-7}, float hi = {1.0}> {\n"
        "  p = Softmax<axis = 1>(logits)\n  pc = Clip(p, lo, hi)\n  [ce_log] logp = Log(pc)" + _CE_TAIL,
        _CE_SPEC,
        twin_of="ce_log_softmax_no_eps",
    ),
    ZooModel(
        "ce_fused_log_softmax",
        "cross-entropy with the fused LogSoftmax operator instead of log(softmax)",
        "ce " + _CE_SIG + " <int64[1] ax = {1}> {\n  logp = LogSoftmax<axis = 1>(logits)" + _CE_TAIL,
        _CE_SPEC,
        twin_of="ce_log_softmax_no_eps",
    ),
    ZooModel(
        "gan_log_one_minus_sigmoid",
        "GAN generator loss log(1 - D(G(z))) with D = sigmoid(logit), as in the original GAN "
        "formulation: sigmoid saturates to 1 in float32 and the log gets 0",
        "gan (float[1,8] x) => (float[1] loss) <float one = {1.0}> {\n  d = Sigmoid(x)\n"
        "  q = Sub(one, d)\n  [gan_log] l = Log(q)\n  loss = ReduceMean<axes = [1], keepdims = 0>(l)\n}",
        {"inputs": {"x": [-50.0, 50.0]}},
        {"gan_log": FORWARD},
        {"x": 30.0},
    ),
    ZooModel(
        "gan_log_one_minus_sigmoid_clip",
        "GAN loss with 1 - D clipped to [1e-7, 1] before the log",
        "gan (float[1,8] x) => (float[1] loss) <float one = {1.0}, float lo = {1e-7}> {\n  d = Sigmoid(x)\n"
        "  q = Sub(one, d)\n  qc = Clip(q, lo, one)\n  [gan_log] l = Log(qc)\n"
        "  loss = ReduceMean<axes = [1], keepdims = 0>(l)\n}",
        {"inputs": {"x": [-50.0, 50.0]}},
        twin_of="gan_log_one_minus_sigmoid",
    ),
    ZooModel(
        "bce_naive",
        "binary cross-entropy -(y log p + (1-y) log(1-p)) on p = sigmoid(logit) without clipping, "
        "as hand-written in many logistic-regression tutorials: both logs can receive 0",
        "bce " + _BCE_SIG + " <float one = {1.0}> {\n  p = Sigmoid(logit)\n  [bce_log_p] lp = Log(p)\n"
        "  q = Sub(one, p)\n  [bce_log_q] lq = Log(q)" + _BCE_TAIL,
        _BCE_SPEC,
        {"bce_log_p": FORWARD, "bce_log_q": FORWARD},
        {"logit": [[-150.0, 150.0, 0.0, 1.0]], "y": 0.5},
    ),
    ZooModel(
        "bce_clipped",
        "binary cross-entropy with p clipped to [1e-7, 1 - 1e-7] (Keras binary_crossentropy)",
        "bce " + _BCE_SIG + " <float one = {1.0}, float lo = {1e-7}, float hi = {0.9999999}> {\n"
        "  p0 = Sigmoid(logit)\n  p = Clip(p0, lo, hi)\n  [bce_log_p] lp = Log(p)\n"
        "  q = Sub(one, p)\n  [bce_log_q] lq = Log(q)" + _BCE_TAIL,
        _BCE_SPEC,
        twin_of="bce_naive",
    ),
    ZooModel(
        "focal_loss_no_clip",
        "focal loss -(1-p)^gamma * log(p) with gamma = 2 (RetinaNet) on a sigmoid probability that "
        "underflows to 0",
        "focal (float[1,5] logit) => (float[1,5] loss) <float one = {1.0}, float gamma = {2.0}> {\n"
        "  p = Sigmoid(logit)\n  q = Sub(one, p)\n  w = Pow(q, gamma)\n  [focal_log] lp = Log(p)\n"
        "  t = Mul(w, lp)\n  loss = Neg(t)\n}",
        {"inputs": {"logit": [-200.0, 200.0]}},
        {"focal_log": FORWARD},
        {"logit": -150.0},
    ),
    ZooModel(
        "focal_loss_clip",
        "focal loss with p clipped to [1e-7, 1] before the log",
        "focal (float[1,5] logit) => (float[1,5] loss) <float one = {1.0}, float gamma = {2.0}, "
        "float lo = {1e-7}> {\n  p = Sigmoid(logit)\n  q = Sub(one, p)\n  w = Pow(q, gamma)\n"
        "  pc = Clip(p, lo, one)\n  [focal_log] lp = Log(pc)\n  t = Mul(w, lp)\n  loss = Neg(t)\n}",
        {"inputs": {"logit": [-200.0, 200.0]}},
        twin_of="focal_loss_no_clip",
    ),
    ZooModel(
        "gaussian_nll_learned_var",
        "Gaussian negative log-likelihood 0.5 * (log var + (x - mu)^2 / var) with the variance "
        "learned directly (heteroscedastic regression): a gradient step takes var to 0",
        "nll " + _NLL_SIG + " " + _NLL_INIT + "> {\n  [nll_log] lv = Log(var)\n  d = Sub(x, mu)\n"
        "  d2 = Mul(d, d)\n  [nll_div] q = Div(d2, var)\n  s = Add(lv, q)\n  nll = Mul(s, half)\n}",
        _NLL_SPEC,
        {"nll_log": FORWARD, "nll_div": FORWARD},
        {"x": 1.0, "mu": 0.0, "var": 0.0},
    ),
    ZooModel(
        "gaussian_nll_clamped_var",
        "Gaussian NLL with var clamped to at least 1e-6 (torch.nn.GaussianNLLLoss)",
        "nll " + _NLL_SIG + " " + _NLL_INIT + ", float eps = {1e-6}> {\n  vc = Clip(var, eps)\n"
        "  [nll_log] lv = Log(vc)\n  d = Sub(x, mu)\n  d2 = Mul(d, d)\n  [nll_div] q = Div(d2, vc)\n"
        "  s = Add(lv, q)\n  nll = Mul(s, half)\n}",
        _NLL_SPEC,
        twin_of="gaussian_nll_learned_var",
    ),
    ZooModel(
        "gaussian_likelihood_exp_log",
        "log-likelihood computed as log(exp(-(x - mu)^2 / (2 s^2))): the Gaussian density "
        "underflows to 0 far from the mean and the log gets 0",
        "lik (float[1,4] x, float[1,4] mu) => (float[1,4] ll) <float c = {0.5}> {\n  d = Sub(x, mu)\n"
        "  d2 = Mul(d, d)\n  q = Div(d2, c)\n  nq = Neg(q)\n  e = Exp(nq)\n  [lik_log] ll = Log(e)\n}",
        {"inputs": {"x": [-10.0, 10.0], "mu": [-10.0, 10.0]}},
        {"lik_log": FORWARD},
        {"x": 10.0, "mu": -10.0},
    ),
    ZooModel(
        "gaussian_loglik_direct",
        "the same log-likelihood computed directly as -(x - mu)^2 / (2 s^2), without exp and log",
        "lik (float[1,4] x, float[1,4] mu) => (float[1,4] ll) <float c = {0.5}> {\n  d = Sub(x, mu)\n"
        "  d2 = Mul(d, d)\n  q = Div(d2, c)\n  ll = Neg(q)\n}",
        {"inputs": {"x": [-10.0, 10.0], "mu": [-10.0, 10.0]}},
        twin_of="gaussian_likelihood_exp_log",
    ),
]
