"""Detection: read each rule's declared hazards against the computed intervals.

A finding means the operand of a vulnerable operator can reach the hazard's invalid region under
the range assumptions; ``certain`` means every value it can take is invalid.
"""

from __future__ import annotations

from ranum.detect._check import Report, check
from ranum.detect._findings import Finding, find_hazards, hazard_of

__all__ = ["Finding", "Report", "check", "find_hazards", "hazard_of"]
