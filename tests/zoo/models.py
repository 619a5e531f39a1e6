"""The defect zoo: small ONNX models holding classic numerical defects, and their fixed twins.

``MODELS`` lists every record (see :class:`tests.zoo._record.ZooModel`); ``BUGGY`` and ``FIXED``
split it. Ids are unique and every fixed twin names an existing buggy model.
"""

from __future__ import annotations

from tests.zoo import _losses, _misc, _norms, _softmax, _training
from tests.zoo._record import FORWARD, GRADIENT, ZooModel

__all__ = ["BUGGY", "FIXED", "FORWARD", "GRADIENT", "MODELS", "ZooModel", "by_id"]

MODELS: list[ZooModel] = [*_losses.MODELS, *_softmax.MODELS, *_norms.MODELS, *_misc.MODELS,
                          *_training.MODELS]
BUGGY: list[ZooModel] = [m for m in MODELS if m.buggy]
FIXED: list[ZooModel] = [m for m in MODELS if not m.buggy]


def by_id(model_id: str) -> ZooModel:
    """The record with this id (KeyError if none)."""
    for record in MODELS:
        if record.id == model_id:
            return record
    raise KeyError(model_id)
