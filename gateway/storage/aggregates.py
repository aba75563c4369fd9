"""One-minute aggregates of every point, accumulated from the pipeline's sample batches.

The dashboard charts history without an external time-series database (DESIGN.md,
"Real components"), so the service keeps, per point and per minute of event time, the
minimum, mean (as sum and count), maximum and last value (by timestamp).  This module
is the in-memory half: pure numpy, no I/O, fed the same :class:`SampleBatch` the
detectors get.  :mod:`gateway.storage.point_minutes` writes what it hands out.

Cost model: ingest reaches millions of samples per second (DESIGN.md), so a batch is
reduced to one group per (point, minute) with one sort, and groups are merged into a
*slot* per point (its current minute) with fancy indexing.  Anything that does not
fit the slot (a sample for an older minute, the bucket a new minute pushes out) goes
to a *spill* list that is only reduced when closed minutes are taken, about once per
sweep.  Nothing here is per-sample Python.

Event time: a minute is *closed* once the caller's watermark is ``grace_s`` past its
end.  Closed buckets are handed out once; a late sample for a minute already handed
out starts a new partial bucket for it, handed out at the next take, and the store
merges it into the row written before (upsert), so late data is never lost.

Samples with a non-finite value or a negative timestamp are ignored (a chart cannot
show them); every quality flag counts (the chart shows what the device sent).  Times
are taken to the millisecond, the contract's resolution.  Duplicates of one (point,
ts) within a batch count once, the last one received wins; a duplicate arriving in a
later batch (QoS 1 redelivery after a reconnect) is counted again, which can shift
``mean`` and ``count`` of that minute but never ``min``, ``max`` or ``last``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

MINUTE_S = 60
"""Bucket width in seconds."""

DEFAULT_GRACE_S = 120.0
"""How far the watermark must be past a minute's end before it is handed out: data
from devices a little behind (batching edge gateways, 10 s intervals) lands in the
bucket before it is written, so most minutes are written once."""

_MINUTE_BITS = 32
"""A bucket key is ``point << 32 | minute``: epoch minutes fit 32 bits until year 10136,
and sorting the keys groups by point, then minute."""


@dataclass(frozen=True, slots=True)
class MinuteRows:
    """Minute buckets as columns, one row per (point, minute), sorted by point then
    minute.  ``minute`` is the bucket start in epoch seconds; ``last_ts`` the event
    time of ``last``."""

    point: NDArray[np.intp]
    minute: NDArray[np.int64]
    min: NDArray[np.float64]
    sum: NDArray[np.float64]
    count: NDArray[np.int64]
    max: NDArray[np.float64]
    last_ts: NDArray[np.float64]
    last: NDArray[np.float64]

    @classmethod
    def empty(cls) -> MinuteRows:
        f = np.empty(0, dtype=np.float64)
        return cls(np.empty(0, dtype=np.intp), np.empty(0, dtype=np.int64), f, f,
                   np.empty(0, dtype=np.int64), f, f, f)

    def __len__(self) -> int:
        return int(self.point.shape[0])

    @property
    def mean(self) -> NDArray[np.float64]:
        result: NDArray[np.float64] = self.sum / np.maximum(self.count, 1)
        return result

    def take(self, rows: NDArray[np.intp] | NDArray[np.bool_]) -> MinuteRows:
        """The selected rows (an index array or a mask)."""
        return MinuteRows(self.point[rows], self.minute[rows], self.min[rows],
                          self.sum[rows], self.count[rows], self.max[rows],
                          self.last_ts[rows], self.last[rows])

    @staticmethod
    def concat(parts: list[MinuteRows]) -> MinuteRows:
        """Rows of all ``parts`` (not merged: a key may repeat; see :func:`merge`)."""
        parts = [p for p in parts if len(p)]
        if not parts:
            return MinuteRows.empty()
        if len(parts) == 1:
            return parts[0]
        return MinuteRows(*(np.concatenate([getattr(p, name) for p in parts])
                            for name in _FIELDS))


_FIELDS = ("point", "minute", "min", "sum", "count", "max", "last_ts", "last")


def merge(rows: MinuteRows) -> MinuteRows:
    """Combine rows with the same (point, minute) into one each, sorted by key.

    ``last`` is the value of the row with the latest ``last_ts``; on a tie the row that
    comes later in ``rows`` wins (later data replaces earlier, as in a batch)."""
    n = len(rows)
    if n == 0:
        return rows
    key = _key(rows.point, rows.minute // MINUTE_S)
    order = np.lexsort((rows.last_ts, key))  # stable: ties keep their order in ``rows``
    key = key[order]
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    if starts.shape[0] == n:
        return rows.take(order)
    ends = np.r_[starts[1:], n] - 1
    last_rows = order[ends]
    return MinuteRows(
        point=rows.point[last_rows], minute=rows.minute[last_rows],
        min=np.minimum.reduceat(rows.min[order], starts),
        sum=np.add.reduceat(rows.sum[order], starts),
        count=np.add.reduceat(rows.count[order], starts),
        max=np.maximum.reduceat(rows.max[order], starts),
        last_ts=rows.last_ts[last_rows], last=rows.last[last_rows],
    )


def group_samples(point: NDArray[np.intp], ts: NDArray[np.float64],
                  value: NDArray[np.float64]) -> MinuteRows:
    """One row per (point, minute) of a batch; see the module docstring for what is
    ignored and how duplicates count."""
    keep = np.isfinite(value) & (ts >= 0.0)
    if not keep.all():
        point, ts, value = point[keep], ts[keep], value[keep]
    n = point.shape[0]
    if n == 0:
        return MinuteRows.empty()
    ms = np.rint(ts * 1000.0).astype(np.int64)  # the contract's resolution
    order = _by_point_and_time(point, ms)
    point, ms, value = point[order], ms[order], value[order]
    key = _key(point, ms // (MINUTE_S * 1000))
    # A (point, ts) repeated: keep its last arrival, the end of the run.
    unique = np.r_[(key[1:] != key[:-1]) | (ms[1:] != ms[:-1]), True]
    if not unique.all():
        key, ms, value = key[unique], ms[unique], value[unique]
        n = key.shape[0]
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    ends = np.r_[starts[1:], n] - 1
    group_key = key[starts]
    return MinuteRows(
        point=(group_key >> _MINUTE_BITS).astype(np.intp),
        minute=(group_key & ((1 << _MINUTE_BITS) - 1)) * MINUTE_S,
        min=np.minimum.reduceat(value, starts),
        sum=np.add.reduceat(value, starts),
        count=np.diff(np.r_[starts, n]).astype(np.int64),
        max=np.maximum.reduceat(value, starts),
        last_ts=ms[ends] / 1000.0, last=value[ends],
    )


def _by_point_and_time(point: NDArray[np.intp], ms: NDArray[np.int64]) -> NDArray[np.intp]:
    """Stable order by point, then event time (epoch ms), then arrival.

    One argsort of a composite integer key costs half of ``np.lexsort`` on two keys;
    the lexsort remains for a batch whose time span times points would overflow."""
    low = int(ms.min())
    span = int(ms.max()) - low + 1
    if (int(point.max()) + 1) * span < 1 << 62:
        order: NDArray[np.intp] = np.argsort(point.astype(np.int64) * span + (ms - low),
                                             kind="stable")
        return order
    fallback: NDArray[np.intp] = np.lexsort((ms, point))
    return fallback


def _key(point: NDArray[np.intp], minute: NDArray[np.int64]) -> NDArray[np.int64]:
    """Sort key of a bucket from its point and epoch minute number (not seconds)."""
    key: NDArray[np.int64] = (point.astype(np.int64) << _MINUTE_BITS) | minute
    return key


class MinuteAccumulator:
    """Minute buckets of ``n_points`` points, open until the watermark closes them.

    Feed batches with :meth:`add`; hand closed buckets to the store with
    :meth:`take_closed` (on the sweep beat) and everything with :meth:`take_all` (at
    shutdown or the end of a replay).  Memory: one slot of 56 bytes per point, plus
    the spilled buckets not yet taken (about one per point and minute of grace).

    >>> acc = MinuteAccumulator(n_points=1, grace_s=0)
    >>> acc.add(np.array([0, 0, 0]), np.array([60.0, 75.0, 70.0]), np.array([1.0, 3.0, 2.0]))
    >>> rows = acc.take_closed(watermark=120.0)
    >>> (int(rows.minute[0]), float(rows.min[0]), float(rows.mean[0]), float(rows.last[0]))
    (60, 1.0, 2.0, 3.0)
    """

    def __init__(self, n_points: int, *, grace_s: float = DEFAULT_GRACE_S) -> None:
        if grace_s < 0:
            raise ValueError("grace_s must not be negative")
        self.n_points = n_points
        self.grace_s = grace_s
        # The slot: each point's newest bucket, struct-of-arrays; count 0 means empty.
        self._minute = np.full(n_points, -1, dtype=np.int64)
        self._count = np.zeros(n_points, dtype=np.int64)
        self._min = np.zeros(n_points, dtype=np.float64)
        self._sum = np.zeros(n_points, dtype=np.float64)
        self._max = np.zeros(n_points, dtype=np.float64)
        self._last_ts = np.zeros(n_points, dtype=np.float64)
        self._last = np.zeros(n_points, dtype=np.float64)
        self._spill: list[MinuteRows] = []

    def add(self, point: NDArray[np.intp], ts: NDArray[np.float64],
            value: NDArray[np.float64]) -> None:
        """Accumulate one batch (dense point ids, event times, values), any order."""
        groups = group_samples(point, ts, value)
        if not len(groups):
            return
        p = groups.point
        newest_of_point = np.r_[p[1:] != p[:-1], True]  # groups are sorted by point, minute
        occupied = self._count[p] > 0
        slot_minute = self._minute[p]
        into_slot = occupied & (groups.minute == slot_minute)
        replaces = (newest_of_point & ~into_slot
                    & (~occupied | (groups.minute > slot_minute)))
        if into_slot.any():
            self._merge_into_slots(p[into_slot], groups.take(into_slot))
        if replaces.any():
            targets = p[replaces]
            pushed_out = targets[self._count[targets] > 0]
            if pushed_out.shape[0]:
                self._spill.append(self._slots(pushed_out))
            self._set_slots(targets, groups.take(replaces))
        aside = ~(into_slot | replaces)
        if aside.any():
            self._spill.append(groups.take(aside))

    def take_closed(self, watermark: float) -> MinuteRows:
        """Buckets of minutes that ended at least ``grace_s`` before ``watermark``,
        merged (one row per point and minute); they are forgotten here."""
        limit = watermark - self.grace_s - MINUTE_S  # latest closed minute start
        closed = np.flatnonzero((self._count > 0) & (self._minute <= limit))
        parts = [self._slots(closed)]
        self._count[closed] = 0
        if self._spill:
            spilled = MinuteRows.concat(self._spill)
            done = spilled.minute <= limit
            parts.append(spilled.take(done))
            rest = merge(spilled.take(~done))
            self._spill = [rest] if len(rest) else []
        return merge(MinuteRows.concat(parts))

    def take_all(self) -> MinuteRows:
        """Every bucket held, closed or not; the accumulator is empty afterwards."""
        rows = self.pending()
        self._count[:] = 0
        self._spill = []
        return rows

    def pending(self) -> MinuteRows:
        """A merged copy of every bucket held (the open minutes a chart may show)."""
        occupied = np.flatnonzero(self._count > 0)
        return merge(MinuteRows.concat([self._slots(occupied), *self._spill]))

    def _slots(self, points: NDArray[np.intp]) -> MinuteRows:
        return MinuteRows(points.astype(np.intp), self._minute[points], self._min[points],
                          self._sum[points], self._count[points], self._max[points],
                          self._last_ts[points], self._last[points])

    def _set_slots(self, points: NDArray[np.intp], rows: MinuteRows) -> None:
        self._minute[points] = rows.minute
        self._count[points] = rows.count
        self._min[points] = rows.min
        self._sum[points] = rows.sum
        self._max[points] = rows.max
        self._last_ts[points] = rows.last_ts
        self._last[points] = rows.last

    def _merge_into_slots(self, points: NDArray[np.intp], rows: MinuteRows) -> None:
        """Points are unique here: a batch has one group per (point, minute)."""
        self._min[points] = np.minimum(self._min[points], rows.min)
        self._max[points] = np.maximum(self._max[points], rows.max)
        self._sum[points] += rows.sum
        self._count[points] += rows.count
        newer = rows.last_ts >= self._last_ts[points]
        self._last_ts[points[newer]] = rows.last_ts[newer]
        self._last[points[newer]] = rows.last[newer]
