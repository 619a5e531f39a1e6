"""Zoo models: exponentials and soft-max style normalisations (softmax, log-sum-exp, attention masks,
temperature scaling, VAE sampling and KL, RBM free energy).
"""

from __future__ import annotations

from tests.zoo._record import FORWARD, ZooModel

__all__ = ["MODELS"]

_LOGITS = {"inputs": {"x": [45.0, 90.0]}}
_SM_SIG = "sm (float[1,6] x) => (float[1,6] y) <int64[1] ax = {1}>"
_ATTN_SIG = "(float[1,4,4] scores, bool[1,4,4] mask) => (float[1,4,4] p)"
_ATTN_SPEC = {"inputs": {"scores": [-10.0, 10.0]}}
_ATTN_WITNESS = {"scores": 0.0, "mask": False}
_VAE_SIG = "(float[1,4] h, float[1,2] noise) => (float[1,2] z)"
_VAE_INIT = "<float[4,2] w_mu = {0.1, -0.2, 0.3, 0.1, -0.1, 0.2, 0.05, -0.3}, " \
            "float[4,2] w_ls = {0.2, 0.1, -0.1, 0.3, 0.1, -0.2, 0.2, 0.1}"
_VAE_SPEC = {"inputs": {"h": [-1.0, 1.0], "noise": [-4.0, 4.0]}, "weights": {"default": [-25.0, 25.0]}}
_KL_SIG = "(float[1,4] h, float[1,2] mu) => (float[1] kl)"
_KL_INIT = "<float[4,2] w_s = {0.5, 0.2, -0.3, 0.4, 0.1, 0.6, -0.2, 0.3}, int64[1] ax = {1}, " \
           "float one = {1.0}, float mhalf = {-0.5}"
_KL_TAIL = """
  m2 = Mul(mu, mu)
  a = Add(one, ls2)
  b = Sub(a, m2)
  t = Sub(b, s2)
  s = ReduceSum<keepdims = 0>(t, ax)
  kl = Mul(s, mhalf)
}
"""
_KL_SPEC = {"inputs": {"h": [-1.0, 1.0], "mu": [-3.0, 3.0]}, "weights": {"w_s": [-1.0, 1.0]}}
_RBM_SIG = "rbm (float[1,6] v) => (float[1] fe) <float[6,3] w = {0.1, -0.2, 0.3, 0.2, 0.1, -0.1, " \
           "-0.3, 0.2, 0.1, 0.1, 0.1, 0.2, -0.1, 0.3, 0.2, 0.2, -0.2, 0.1}, float[3] b = {0.1, -0.1, 0.2}, " \
           "int64[1] ax = {1}, float one = {1.0}>"
_RBM_SPEC = {"inputs": {"v": [0.0, 1.0]}, "weights": {"w": [-20.0, 20.0], "b": [-1.0, 1.0]}}
_TEMP_SIG = "temp (float[1,5] logits) => (float[1,5] z) <float t = {1.5}"
_TEMP_SPEC = {"inputs": {"logits": [-10.0, 10.0], "t": [0.0, 3.0]}}
_MASK_SIG = "(float[1,8] x, float[1,8] mask) => (float[1,1] y) <int64[1] ax = {1}"
_MASK_SPEC = {"inputs": {"x": [-1.0, 1.0], "mask": [0.0, 1.0]}}

MODELS = [
    ZooModel(
        "softmax_hand_written",
        "hand-written softmax exp(x) / sum(exp(x)) on large logits: exp overflows to inf and the "
        "ratio becomes inf / inf = NaN",
        _SM_SIG + " {\n  [sm_exp] e = Exp(x)\n  s = ReduceSum(e, ax)\n  y = Div(e, s)\n}",
        _LOGITS,
        {"sm_exp": FORWARD},
        {"x": 90.0},
    ),
    ZooModel(
        "softmax_max_subtracted",
        "softmax with the row maximum subtracted first (the stable formulation used by every "
        "framework)",
        _SM_SIG + " {\n  m = ReduceMax<axes = [1]>(x)\n  d = Sub(x, m)\n  [sm_exp] e = Exp(d)\n"
        "  s = ReduceSum(e, ax)\n  y = Div(e, s)\n}",
        _LOGITS,
        twin_of="softmax_hand_written",
    ),
    ZooModel(
        "softmax_operator",
        "the Softmax operator, which subtracts the maximum internally",
        _SM_SIG + " {\n  y = Softmax<axis = 1>(x)\n}",
        _LOGITS,
        twin_of="softmax_hand_written",
    ),
    ZooModel(
        "log_softmax_hand_written",
        "log-softmax written as x - log(sum(exp(x))) without subtracting the maximum: exp overflows",
        _SM_SIG + " {\n  [lsm_exp] e = Exp(x)\n  s = ReduceSum(e, ax)\n  l = Log(s)\n  y = Sub(x, l)\n}",
        _LOGITS,
        {"lsm_exp": FORWARD},
        {"x": 90.0},
    ),
    ZooModel(
        "log_softmax_max_subtracted",
        "log-softmax as (x - m) - log(sum(exp(x - m))) with m the row maximum (log-sum-exp trick)",
        _SM_SIG + " {\n  m = ReduceMax<axes = [1]>(x)\n  d = Sub(x, m)\n  [lsm_exp] e = Exp(d)\n"
        "  s = ReduceSum(e, ax)\n  l = Log(s)\n  y = Sub(d, l)\n}",
        _LOGITS,
        twin_of="log_softmax_hand_written",
    ),
    ZooModel(
        "attention_mask_inf_softmax",
        "attention softmax over scores masked with -inf (Where(mask, scores, -inf)): a fully masked "
        "row (padding query) gives softmax of all -inf = NaN",
        "attn " + _ATTN_SIG + " {\n  ninf = Constant<value = float {-inf}>()\n"
        "  m = Where(mask, scores, ninf)\n  [attn_softmax] p = Softmax<axis = -1>(m)\n}",
        _ATTN_SPEC,
        {"attn_softmax": FORWARD},
        _ATTN_WITNESS,
    ),
    ZooModel(
        "attention_mask_finite_softmax",
        "attention softmax with a large finite mask value (-1e9, as in BERT's -10000.0)",
        "attn " + _ATTN_SIG + " {\n  big = Constant<value = float {-1e9}>()\n"
        "  m = Where(mask, scores, big)\n  [attn_softmax] p = Softmax<axis = -1>(m)\n}",
        _ATTN_SPEC,
        twin_of="attention_mask_inf_softmax",
    ),
    ZooModel(
        "attention_mask_inf_log_softmax",
        "log-softmax over scores masked with -inf: a fully masked row gives -inf - (-inf) = NaN",
        "attn " + _ATTN_SIG + " {\n  ninf = Constant<value = float {-inf}>()\n"
        "  m = Where(mask, scores, ninf)\n  [attn_log_softmax] p = LogSoftmax<axis = -1>(m)\n}",
        _ATTN_SPEC,
        {"attn_log_softmax": FORWARD},
        _ATTN_WITNESS,
    ),
    ZooModel(
        "attention_mask_finite_log_softmax",
        "log-softmax with a large finite mask value instead of -inf",
        "attn " + _ATTN_SIG + " {\n  big = Constant<value = float {-1e9}>()\n"
        "  m = Where(mask, scores, big)\n  [attn_log_softmax] p = LogSoftmax<axis = -1>(m)\n}",
        _ATTN_SPEC,
        twin_of="attention_mask_inf_log_softmax",
    ),
    ZooModel(
        "temperature_reciprocal",
        "temperature scaling logits * (1 / T) with a learned temperature T (calibration, Guo et "
        "al. 2017) that can reach 0",
        _TEMP_SIG + "> {\n  [temp_recip] r = Reciprocal(t)\n  z = Mul(logits, r)\n}",
        _TEMP_SPEC,
        {"temp_recip": FORWARD},
        {"logits": 1.0, "t": 0.0},
    ),
    ZooModel(
        "temperature_clipped",
        "temperature clipped to at least 0.05 before the reciprocal",
        _TEMP_SIG + ", float lo = {0.05}> {\n  tc = Clip(t, lo)\n  [temp_recip] r = Reciprocal(tc)\n"
        "  z = Mul(logits, r)\n}",
        _TEMP_SPEC,
        twin_of="temperature_reciprocal",
    ),
    ZooModel(
        "vae_reparam_exp",
        "VAE reparameterisation z = mu + exp(log_sigma) * noise with log_sigma from a linear layer "
        "(Kingma & Welling): exp overflows for large log_sigma",
        "vae " + _VAE_SIG + " " + _VAE_INIT + "> {\n  mu = MatMul(h, w_mu)\n  ls = MatMul(h, w_ls)\n"
        "  [vae_exp] sigma = Exp(ls)\n  n = Mul(sigma, noise)\n  z = Add(mu, n)\n}",
        _VAE_SPEC,
        {"vae_exp": FORWARD},
        {"h": 1.0, "noise": 1.0, "w_mu": 0.1, "w_ls": 25.0},
    ),
    ZooModel(
        "vae_reparam_clipped",
        "VAE reparameterisation with log_sigma clipped to [-20, 20] before exp",
        "vae " + _VAE_SIG + " " + _VAE_INIT + ", float lo = {-20.0}, float hi = {20.0}> {\n"
        "  mu = MatMul(h, w_mu)\n  ls = MatMul(h, w_ls)\n  lc = Clip(ls, lo, hi)\n"
        "  [vae_exp] sigma = Exp(lc)\n  n = Mul(sigma, noise)\n  z = Add(mu, n)\n}",
        _VAE_SPEC,
        twin_of="vae_reparam_exp",
    ),
    ZooModel(
        "vae_kl_log_sigma_sq",
        "VAE KL term -0.5 * sum(1 + log(sigma^2) - mu^2 - sigma^2) with sigma straight from a "
        "linear layer: sigma = 0 gives log(0)",
        "kl " + _KL_SIG + " " + _KL_INIT + "> {\n  sigma = MatMul(h, w_s)\n  s2 = Mul(sigma, sigma)\n"
        "  [kl_log] ls2 = Log(s2)" + _KL_TAIL,
        _KL_SPEC,
        {"kl_log": FORWARD},
        {"h": 0.0, "mu": 1.0, "w_s": 0.5},
    ),
    ZooModel(
        "vae_kl_eps",
        "VAE KL term with log(sigma^2 + 1e-8)",
        "kl " + _KL_SIG + " " + _KL_INIT + ", float eps = {1e-8}> {\n  sigma = MatMul(h, w_s)\n"
        "  s2 = Mul(sigma, sigma)\n  s2e = Add(s2, eps)\n  [kl_log] ls2 = Log(s2e)" + _KL_TAIL,
        _KL_SPEC,
        twin_of="vae_kl_log_sigma_sq",
    ),
    ZooModel(
        "rbm_free_energy_naive",
        "RBM free energy -sum(log(1 + exp(W v + b))) written with exp (Theano RBM tutorial "
        "before softplus): exp overflows for large pre-activations",
        _RBM_SIG + " {\n  wx = MatMul(v, w)\n  a = Add(wx, b)\n  [rbm_exp] e = Exp(a)\n"
        "  ep = Add(e, one)\n  l = Log(ep)\n  s = ReduceSum<keepdims = 0>(l, ax)\n  fe = Neg(s)\n}",
        _RBM_SPEC,
        {"rbm_exp": FORWARD},
        {"v": 1.0, "w": 20.0, "b": 1.0},
    ),
    ZooModel(
        "rbm_free_energy_softplus",
        "RBM free energy with the Softplus operator",
        _RBM_SIG + " {\n  wx = MatMul(v, w)\n  a = Add(wx, b)\n  l = Softplus(a)\n"
        "  s = ReduceSum<keepdims = 0>(l, ax)\n  fe = Neg(s)\n}",
        _RBM_SPEC,
        twin_of="rbm_free_energy_naive",
    ),
    ZooModel(
        "log_token_count",
        "log of a token count ReduceSum(mask) (log-length normalisation in sequence scoring): an "
        "empty sequence gives log(0)",
        "cnt " + _MASK_SIG + "> {\n  c = ReduceSum(mask, ax)\n  [count_log] y = Log(c)\n}",
        _MASK_SPEC,
        {"count_log": FORWARD},
        {"x": 0.5, "mask": 0.0},
    ),
    ZooModel(
        "log_token_count_floor",
        "log of the token count floored at 1 (Max(count, 1))",
        "cnt " + _MASK_SIG + ", float one = {1.0}> {\n  c = ReduceSum(mask, ax)\n  cf = Max(c, one)\n"
        "  [count_log] y = Log(cf)\n}",
        _MASK_SPEC,
        twin_of="log_token_count",
    ),
    ZooModel(
        "masked_mean",
        "masked mean sum(x * mask) / sum(mask) over valid tokens: an all-padding row divides 0 by 0",
        "mmean " + _MASK_SIG + "> {\n  xm = Mul(x, mask)\n  s = ReduceSum(xm, ax)\n  c = ReduceSum(mask, ax)\n"
        "  [mmean_div] y = Div(s, c)\n}",
        _MASK_SPEC,
        {"mmean_div": FORWARD},
        {"x": 0.5, "mask": 0.0},
    ),
    ZooModel(
        "masked_mean_floor",
        "masked mean dividing by Max(count, 1)",
        "mmean " + _MASK_SIG + ", float one = {1.0}> {\n  xm = Mul(x, mask)\n  s = ReduceSum(xm, ax)\n"
        "  c = ReduceSum(mask, ax)\n  cf = Max(c, one)\n  [mmean_div] y = Div(s, cf)\n}",
        _MASK_SPEC,
        twin_of="masked_mean",
    ),
]
