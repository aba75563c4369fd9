"""Interval arithmetic on event time for scoring: unions and sliding-window counts.

Vectorised with numpy so scoring 100,000 alerts stays around a second.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class IntervalUnion:
    """A union of intervals as sorted disjoint ``[low, high)`` with cumulative lengths."""

    low: FloatArray
    high: FloatArray
    before: FloatArray
    """``before[k]``: total length of the intervals preceding interval ``k``."""

    @classmethod
    def of(cls, intervals: Iterable[tuple[float, float]]) -> IntervalUnion:
        merged: list[list[float]] = []
        for low, high in sorted(intervals):
            if merged and low <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], high)
            else:
                merged.append([low, high])
        low_a = np.array([m[0] for m in merged], dtype=np.float64)
        high_a = np.array([m[1] for m in merged], dtype=np.float64)
        lengths = high_a - low_a
        before = np.concatenate(([0.0], np.cumsum(lengths)[:-1])) if merged else lengths
        return cls(low_a, high_a, before)

    def covered_until(self, t: FloatArray) -> FloatArray:
        """Length of the union below each time in ``t``."""
        if self.low.size == 0:
            return np.zeros_like(t)
        k = np.searchsorted(self.low, t, side="right") - 1
        kc = np.maximum(k, 0)
        partial = np.minimum(t, self.high[kc]) - self.low[kc]
        return np.where(k >= 0, self.before[kc] + np.maximum(partial, 0.0), 0.0)

    def measure(self, start: FloatArray, end: FloatArray) -> FloatArray:
        """Length of the union inside each ``[start, end]`` (``end >= start``)."""
        return self.covered_until(end) - self.covered_until(start)


def max_in_window(times: FloatArray, width: float) -> int:
    """Most of the sorted ``times`` in any half-open ``[t, t + width)``, exactly.

    Some busiest window starts at a time of the list, so counting from each time
    (one ``searchsorted``: the two-pointer sweep, vectorised) finds the maximum.
    """
    if times.size == 0:
        return 0
    counts = np.searchsorted(times, times + width, side="left") - np.arange(times.size)
    return int(counts.max())
