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


def resent_after_originals(batch: list[tuple[int, float, float, int]],
                           order: list[int]) -> list[tuple[int, float, float, int]]:
    """``batch`` rows (point, ts, value, quality) in the drawn ``order``, except that
    every re-sent copy of a (point, ts) stays after its first arrival, which wins."""
    firsts = {(r[0], r[1]): i for i, r in reversed(list(enumerate(batch)))}
    arranged = sorted(range(len(batch)), key=lambda i: (i != firsts[batch[i][:2]],
                                                        order.index(i)))
    return [batch[i] for i in arranged]
