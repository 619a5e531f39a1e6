"""Operator semantics: one rule class per ONNX operator, grouped by family.

Importing this package registers every rule in :data:`REGISTRY` (explicit imports below, no
scanning).
"""

from __future__ import annotations

from ranum.ops import (  # noqa: F401  (imported to register their rules)
    accumulate,
    activations,
    arithmetic,
    batch_norm,
    bitcast,
    classical_ml,
    classical_ml_linear,
    classical_ml_trees,
    contrib,
    contrib_attention,
    contrib_dynamic_quantized,
    contrib_dynamic_quantized_attention,
    contrib_fused,
    contrib_nbits,
    contrib_quantized,
    contrib_quantized_reduce,
    contrib_recurrent,
    contrib_rotary_attention,
    control,
    conv_pool,
    convert,
    deform_conv,
    determinant,
    exp_log,
    experimental,
    indexing,
    legacy,
    legacy_broadcast,
    legacy_modes,
    linear,
    linear_attention,
    local_norm,
    logic,
    loss,
    lp_norm,
    normalization,
    optional,
    placement,
    pooling,
    quantized,
    random,
    rearrange,
    recurrent,
    reduce,
    resize,
    sampling,
    scan,
    selection,
    sequence,
    shape,
    softmax,
    spatial,
    spectral,
    swish,
    transformer,
    trig,
)
from ranum.ops.registry import REGISTRY, Registry, parameter_initializers, register

__all__ = ["REGISTRY", "Registry", "parameter_initializers", "register"]
