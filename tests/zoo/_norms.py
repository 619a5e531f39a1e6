"""Zoo models: normalisations and divisions (sum, L2 norm, standard deviation, batch norm, cosine
similarity, min-max scaling, dropout scaling, learned scales).
"""

from __future__ import annotations

from tests.zoo._record import FORWARD, GRADIENT, ZooModel

__all__ = ["MODELS"]

_ROW = "(float[1,6] x) => (float[1,6] y) <int64[1] ax = {1}"
_ROW_SPEC = {"inputs": {"x": [-1.0, 1.0]}}
_STD_SIG = "(float[4,3] x) => (float[1,3] std) <float eps = {1e-5}> {\n  m = ReduceMean<axes = [0]>(x)\n" \
           "  d = Sub(x, m)\n  d2 = Mul(d, d)\n  var = ReduceMean<axes = [0]>(d2)\n"
_Z_SIG = "(float[8,3] x) => (float[8,3] z) <float eps = {1e-5}> {\n  m = ReduceMean<axes = [0]>(x)\n" \
         "  d = Sub(x, m)\n  d2 = Mul(d, d)\n  var = ReduceMean<axes = [0]>(d2)\n"
_BN_SIG = "(float[2,3] x) => (float[2,3] y) <float[3] mean = {0.1, -0.2, 0.0}, " \
          "float[3] var = {1.0, 0.5, 1.5}, float eps = {1e-5}"
_BN_SPEC = {"inputs": {"x": [-2.0, 2.0]}, "weights": {"mean": [-1.0, 1.0], "var": [0.0, 2.0]}}
_COS_SIG = "cos (float[1,4] a, float[1,4] b) => (float[1,1] c) <int64[1] ax = {1}, float eps = {1e-8}> {\n" \
           "  ab = Mul(a, b)\n  dot = ReduceSum(ab, ax)\n  aa = Mul(a, a)\n  sa = ReduceSum(aa, ax)\n" \
           "  bb = Mul(b, b)\n  sb = ReduceSum(bb, ax)\n"
_COS_SPEC = {"inputs": {"a": [-1.0, 1.0], "b": [-1.0, 1.0]}}
_MM_SIG = "mm (float[1,6] x) => (float[1,6] y) <float floor = {1e-6}> {\n  mn = ReduceMin<axes = [1]>(x)\n" \
          "  mx = ReduceMax<axes = [1]>(x)\n  r = Sub(mx, mn)\n  d = Sub(x, mn)\n"
_MM_SPEC = {"inputs": {"x": [0.0, 255.0]}}
_VS_SIG = "vs (float[1,6] x) => (float[1,1] sd) <float eps = {1e-6}> {\n  sq = Mul(x, x)\n" \
          "  ex2 = ReduceMean<axes = [1]>(sq)\n  m = ReduceMean<axes = [1]>(x)\n  m2 = Mul(m, m)\n" \
          "  v = Sub(ex2, m2)\n"
_SCALE_SIG = "sc (float[2,4] x) => (float[2,4] y) <float[4] scale = {1.0, 1.0, 1.0, 1.0}"
_PCEN_SIG = "pc (float[1,8] x) => (float[1,8] y) <float p = {0.3}, float eps = {1e-6}> {\n"

MODELS = [
    ZooModel(
        "normalize_by_sum",
        "normalising non-negative weights w / sum(w) (mixture or attention weights from ReLU "
        "scores): all weights 0 gives 0 / 0",
        "ns " + _ROW + "> {\n  w = Relu(x)\n  s = ReduceSum(w, ax)\n  [norm_div] y = Div(w, s)\n}",
        _ROW_SPEC,
        {"norm_div": FORWARD},
        {"x": -0.5},
    ),
    ZooModel(
        "normalize_by_sum_eps",
        "normalising weights by sum(w) + 1e-6",
        "ns " + _ROW + ", float eps = {1e-6}> {\n  w = Relu(x)\n  s = ReduceSum(w, ax)\n  se = Add(s, eps)\n"
        "  [norm_div] y = Div(w, se)\n}",
        _ROW_SPEC,
        twin_of="normalize_by_sum",
    ),
    ZooModel(
        "l2_normalize",
        "L2 normalisation x / sqrt(sum(x^2)) (embedding normalisation): the zero vector gives "
        "0 / 0, and the gradient of sqrt at 0 is infinite",
        "l2 " + _ROW + "> {\n  sq = Mul(x, x)\n  ss = ReduceSum(sq, ax)\n  [l2_sqrt] n = Sqrt(ss)\n"
        "  [l2_div] y = Div(x, n)\n}",
        _ROW_SPEC,
        {"l2_sqrt": GRADIENT, "l2_div": FORWARD},
        {"x": 0.0},
    ),
    ZooModel(
        "l2_normalize_max_eps",
        "L2 normalisation as x / sqrt(max(sum(x^2), 1e-12)) (tf.math.l2_normalize)",
        "l2 " + _ROW + ", float eps = {1e-12}> {\n  sq = Mul(x, x)\n  ss = ReduceSum(sq, ax)\n"
        "  sm = Max(ss, eps)\n  [l2_sqrt] n = Sqrt(sm)\n  [l2_div] y = Div(x, n)\n}",
        _ROW_SPEC,
        twin_of="l2_normalize",
    ),
    ZooModel(
        "std_no_eps",
        "standard deviation sqrt(var) without epsilon (a hand-written std feature): a constant "
        "batch has var = 0, where the gradient of sqrt is infinite",
        "std " + _STD_SIG + "  [std_sqrt] std = Sqrt(var)\n}",
        {"inputs": {"x": [-1.0, 1.0]}},
        {"std_sqrt": GRADIENT},
        {"x": 0.5},
    ),
    ZooModel(
        "std_eps",
        "standard deviation sqrt(var + 1e-5)",
        "std " + _STD_SIG + "  ve = Add(var, eps)\n  [std_sqrt] std = Sqrt(ve)\n}",
        {"inputs": {"x": [-1.0, 1.0]}},
        twin_of="std_no_eps",
    ),
    ZooModel(
        "standardize_by_batch_std",
        "standardising features by the batch std (x - mean) / sqrt(var) without epsilon: a "
        "constant feature divides by 0",
        "z " + _Z_SIG + "  [zs_sqrt] sd = Sqrt(var)\n  [zs_div] z = Div(d, sd)\n}",
        {"inputs": {"x": [-5.0, 5.0]}},
        {"zs_sqrt": GRADIENT, "zs_div": FORWARD},
        {"x": 1.0},
    ),
    ZooModel(
        "standardize_by_batch_std_eps",
        "standardising features by sqrt(var + 1e-5)",
        "z " + _Z_SIG + "  ve = Add(var, eps)\n  [zs_sqrt] sd = Sqrt(ve)\n  [zs_div] z = Div(d, sd)\n}",
        {"inputs": {"x": [-5.0, 5.0]}},
        twin_of="standardize_by_batch_std",
    ),
    ZooModel(
        "batchnorm_manual_no_eps",
        "batch normalisation written by hand (x - mean) / sqrt(var) with a learned running "
        "variance that can reach 0",
        "bn " + _BN_SIG + "> {\n  d = Sub(x, mean)\n  [bn_sqrt] sd = Sqrt(var)\n  [bn_div] y = Div(d, sd)\n}",
        _BN_SPEC,
        {"bn_sqrt": GRADIENT, "bn_div": FORWARD},
        {"x": 1.0, "mean": 0.0, "var": 0.0},
    ),
    ZooModel(
        "batchnorm_manual_eps",
        "hand-written batch normalisation with sqrt(var + 1e-5)",
        "bn " + _BN_SIG + "> {\n  d = Sub(x, mean)\n  ve = Add(var, eps)\n  [bn_sqrt] sd = Sqrt(ve)\n"
        "  [bn_div] y = Div(d, sd)\n}",
        _BN_SPEC,
        twin_of="batchnorm_manual_no_eps",
    ),
    ZooModel(
        "batchnorm_operator",
        "the BatchNormalization operator (epsilon 1e-5) with the same learned variance",
        "bn " + _BN_SIG + ", float[3] gamma = {1.0, 0.9, 1.1}, float[3] beta = {0.0, 0.1, -0.1}> {\n"
        "  y = BatchNormalization(x, gamma, beta, mean, var)\n}",
        _BN_SPEC,
        twin_of="batchnorm_manual_no_eps",
    ),
    ZooModel(
        "cosine_similarity",
        "cosine similarity a.b / (|a| |b|) with |a| = sqrt(sum(a^2)): a zero vector gives 0 / 0 and "
        "infinite sqrt gradients",
        _COS_SIG + "  [cos_sqrt_a] na = Sqrt(sa)\n  [cos_sqrt_b] nb = Sqrt(sb)\n  den = Mul(na, nb)\n"
        "  [cos_div] c = Div(dot, den)\n}",
        _COS_SPEC,
        {"cos_sqrt_a": GRADIENT, "cos_sqrt_b": GRADIENT, "cos_div": FORWARD},
        {"a": 0.0, "b": 0.0},
    ),
    ZooModel(
        "cosine_similarity_eps",
        "cosine similarity with each squared norm floored at 1e-8 before sqrt",
        _COS_SIG + "  ma = Max(sa, eps)\n  mb = Max(sb, eps)\n  [cos_sqrt_a] na = Sqrt(ma)\n"
        "  [cos_sqrt_b] nb = Sqrt(mb)\n  den = Mul(na, nb)\n  [cos_div] c = Div(dot, den)\n}",
        _COS_SPEC,
        twin_of="cosine_similarity",
    ),
    ZooModel(
        "minmax_normalize",
        "min-max scaling (x - min) / (max - min) of an image: a constant image divides 0 by 0",
        _MM_SIG + "  [mm_div] y = Div(d, r)\n}",
        _MM_SPEC,
        {"mm_div": FORWARD},
        {"x": 128.0},
    ),
    ZooModel(
        "minmax_normalize_floor",
        "min-max scaling dividing by max(max - min, 1e-6)",
        _MM_SIG + "  rf = Max(r, floor)\n  [mm_div] y = Div(d, rf)\n}",
        _MM_SPEC,
        twin_of="minmax_normalize",
    ),
    ZooModel(
        "variance_shortcut_sqrt",
        "std as sqrt(E[x^2] - E[x]^2): cancellation makes the difference slightly negative in "
        "float32 for a constant input, and sqrt returns NaN",
        _VS_SIG + "  [vs_sqrt] sd = Sqrt(v)\n}",
        _ROW_SPEC,
        {"vs_sqrt": FORWARD},
        {"x": 0.015942972153425217},
    ),
    ZooModel(
        "variance_shortcut_relu_eps",
        "std as sqrt(relu(E[x^2] - E[x]^2) + 1e-6)",
        _VS_SIG + "  r = Relu(v)\n  re = Add(r, eps)\n  [vs_sqrt] sd = Sqrt(re)\n}",
        _ROW_SPEC,
        twin_of="variance_shortcut_sqrt",
    ),
    ZooModel(
        "dropout_keep_prob",
        "inverted dropout x / keep_prob with keep_prob fed as a placeholder in [0, 1] (TF1 "
        "tutorials): keep_prob = 0 divides by 0",
        "do (float[2,4] x, float[1] keep_prob) => (float[2,4] y) {\n  [dropout_div] y = Div(x, keep_prob)\n}",
        {"inputs": {"x": [-1.0, 1.0], "keep_prob": [0.0, 1.0]}},
        {"dropout_div": FORWARD},
        {"x": 1.0, "keep_prob": 0.0},
    ),
    ZooModel(
        "dropout_keep_prob_half",
        "inverted dropout with keep_prob restricted to [0.5, 1]",
        "do (float[2,4] x, float[1] keep_prob) => (float[2,4] y) {\n  [dropout_div] y = Div(x, keep_prob)\n}",
        {"inputs": {"x": [-1.0, 1.0], "keep_prob": [0.5, 1.0]}},
        twin_of="dropout_keep_prob",
    ),
    ZooModel(
        "reciprocal_learned_scale",
        "x * (1 / scale) with a learned scale initialised at 1 (default derived range [0, 2]), "
        "which training can drive to 0",
        _SCALE_SIG + "> {\n  [scale_recip] r = Reciprocal(scale)\n  y = Mul(x, r)\n}",
        {"inputs": {"x": [-1.0, 1.0]}},
        {"scale_recip": FORWARD},
        {"x": 1.0, "scale": 0.0},
    ),
    ZooModel(
        "reciprocal_softplus_scale",
        "the scale kept positive as softplus(scale) + 1e-4 before the reciprocal",
        _SCALE_SIG + ", float eps = {1e-4}> {\n  sp = Softplus(scale)\n  se = Add(sp, eps)\n"
        "  [scale_recip] r = Reciprocal(se)\n  y = Mul(x, r)\n}",
        {"inputs": {"x": [-1.0, 1.0]}},
        twin_of="reciprocal_learned_scale",
    ),
    ZooModel(
        "pow_fractional_negative_base",
        "power-law compression x^0.3 (PCEN-style spectrogram compression) of a signal that can be "
        "negative: a fractional power of a negative base is NaN",
        _PCEN_SIG + "  [pow_frac] y = Pow(x, p)\n}",
        _ROW_SPEC,
        {"pow_frac": FORWARD},
        {"x": -0.5},
    ),
    ZooModel(
        "pow_abs_eps",
        "power-law compression of |x| + 1e-6",
        _PCEN_SIG + "  a = Abs(x)\n  ae = Add(a, eps)\n  [pow_frac] y = Pow(ae, p)\n}",
        _ROW_SPEC,
        twin_of="pow_fractional_negative_base",
    ),
]
