"""Reports of the defect modules, computed once per test session (a dynamo export takes seconds)."""

from __future__ import annotations

from functools import cache

import torch

import ranum
from tests.frontend import defects


@cache
def defect_report(name: str) -> ranum.Report:
    """The check report of one defect module (cached for the session)."""
    torch.manual_seed(0)
    if name == "log":
        return ranum.check(defects.LogOfSoftmax(), (torch.rand(1, 8), torch.rand(1, 4)),
                           ranges={"x": (0, 1), "y": (0, 1)}, weights=(-10, 10))
    if name == "sqrt":
        return ranum.check(defects.SqrtOfVariance(), torch.rand(1, 8), ranges={"x": (-1, 1)})
    if name == "norm":
        return ranum.check(defects.DivideByNorm(), torch.rand(2, 6), ranges={"x": (-1, 1)})
    if name == "safe":
        return ranum.check(defects.Safe(), torch.rand(1, 5), ranges={"x": (-5, 5)})
    raise KeyError(name)
