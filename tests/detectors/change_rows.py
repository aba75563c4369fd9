"""Condition changes as plain tuples, so detector tests compare them with ``==``."""

from __future__ import annotations

import math

from detectors.base import ConditionChanges

Row = tuple[int, float, float, int, float, float]
"""(subject, ts, since, severity, value, limit) of one change row."""


def rows(changes: ConditionChanges, *, digits: int | None = None) -> list[Row]:
    """Every row as a :data:`Row`; NaN becomes -999 (NaN never equals itself) and
    ``digits`` rounds ``value`` and ``limit`` where a ratio is computed, not copied."""
    def clean(x: float) -> float:
        if math.isnan(x):
            return -999.0
        return float(x) if digits is None else round(float(x), digits)

    return [
        (int(changes.subject[i]), float(changes.ts[i]), float(changes.since[i]),
         int(changes.severity[i]), clean(changes.value[i]), clean(changes.limit[i]))
        for i in range(len(changes))
    ]
