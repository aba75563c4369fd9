"""Condition changes as plain tuples, so detector tests compare them with ``==``."""

from __future__ import annotations

import math

from hypothesis import strategies as st

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


SampleRow = tuple[int, float, float, int]
"""(point, ts, value, quality) of one sample, as ``SampleBatch.from_arrays`` takes them."""


def awkward_rows(t0: float, *, points: int, span_s: int,
                 values: tuple[float, ...] = ()) -> st.SearchStrategy[list[SampleRow]]:
    """Up to 40 samples of ``points`` points within ``span_s`` after ``t0``, mixed with
    what real feeds also send: NaN and infinite values and times, a zero time, repeated
    times, non-normal quality (4), and the extra ``values`` a rule finds hard."""
    ts = st.one_of(st.integers(0, span_s).map(lambda s: t0 + s),
                   st.sampled_from([math.nan, math.inf, -math.inf, 0.0, t0]))
    value = st.one_of(st.floats(-100, 100),
                      st.sampled_from([math.nan, math.inf, -math.inf, *values]))
    return st.lists(st.tuples(st.integers(0, points - 1), ts, value,
                              st.sampled_from([0, 0, 0, 4])), max_size=40)
