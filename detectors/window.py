"""The last few samples of every point, kept for alert evidence.

Regulators act on alerts only with the data that justifies them (DESIGN.md: every
anomaly carries its data window), so each point keeps a small ring buffer of its most
recent samples in arrival order.  It is struct-of-arrays like the detectors: one
``(n_points, depth)`` block per column, written with fancy indexing per batch, read
only when an alert is built.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from detectors.base import SampleBatch


class RecentWindow:
    """Ring buffers of the last ``depth`` samples per point.

    ``depth``: samples kept per point (memory: 16 bytes × depth × points).

    >>> window = RecentWindow(n_points=2, depth=3)
    >>> window.update(SampleBatch.from_arrays(
    ...     point=[0, 1, 0, 0, 0], ts=[1.0, 1.0, 2.0, 3.0, 4.0],
    ...     value=[10.0, 99.0, 20.0, 30.0, 40.0]))
    >>> window.samples(0)
    ([2.0, 3.0, 4.0], [20.0, 30.0, 40.0])
    >>> window.samples(1)
    ([1.0], [99.0])
    """

    def __init__(self, n_points: int, depth: int = 16) -> None:
        if depth < 1:
            raise ValueError("depth must be at least 1")
        self.depth = depth
        self._ts = np.full((n_points, depth), np.nan, dtype=np.float64)
        # float64, not the usual float32 of windows: evidence must show the value as sent.
        self._value = np.full((n_points, depth), np.nan, dtype=np.float64)
        self._written = np.zeros(n_points, dtype=np.int64)
        """Samples ever written per point; the next slot is ``written % depth``."""

    def update(self, batch: SampleBatch) -> None:
        point = batch.point
        if point.shape[0] == 0:
            return
        order = np.argsort(point, kind="stable")
        sorted_point = point[order]
        starts = np.flatnonzero(np.r_[True, sorted_point[1:] != sorted_point[:-1]])
        counts = np.diff(np.r_[starts, sorted_point.shape[0]])
        rank = np.arange(sorted_point.shape[0]) - np.repeat(starts, counts)
        # Only the last `depth` samples of a point in this batch can survive; dropping
        # the rest keeps every (row, slot) target unique, so assignment order is moot.
        survives = rank >= np.repeat(counts, counts) - self.depth
        rows = order[survives]
        targets = sorted_point[survives]
        slots = (self._written[targets] + rank[survives]) % self.depth
        self._ts[targets, slots] = batch.ts[rows]
        self._value[targets, slots] = batch.value[rows]
        unique_points = sorted_point[starts]
        self._written[unique_points] += counts

    def samples(self, point: int) -> tuple[list[float], list[float]]:
        """(ts, value) of the point's kept samples, oldest first, as plain floats."""
        written = int(self._written[point])
        kept = min(written, self.depth)
        slots = (np.arange(written - kept, written) % self.depth).astype(np.intp)
        ts: NDArray[np.float64] = self._ts[point, slots]
        values: NDArray[np.float64] = self._value[point, slots]
        return ts.tolist(), values.tolist()
