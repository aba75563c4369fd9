"""Device records for the ``tamper`` rule: samples regrouped into one row per (device, ts).

Faking is judged on what a device *sends*, and a device sends records: all its points
at one timestamp.  :class:`RecordBuffer` regroups the samples of a batch into records
of the watched points, in (device, ts) order, and hands over only *closed* records.  A
device's newest record stays open until a later record of that device arrives (or the
watermark passes it, :meth:`RecordBuffer.flush`), so a record split over two batches is
judged once and whole, and the result does not depend on where batches are cut.

Also here: the small exact array helpers the tamper judges share (hash mixing, a
cumulative maximum restarted at segment starts).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from detectors._segments import (
    ffill_positions,
    gather_csr,
    group_csr,
    segment_ends,
    segment_starts,
    segment_sums,
    shift_from_state,
    sorted_unique,
)
from detectors.base import QUALITY_NORMAL, SampleBatch

U64 = NDArray[np.uint64]

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31 = np.uint64(30), np.uint64(27), np.uint64(31)
_POINT_SALT = np.uint64(0x9E3779B97F4A7C15)


def mix64(x: U64) -> U64:
    """SplitMix64 finaliser: a well-spread 64-bit hash of each element (wrapping).

    >>> int(mix64(np.array([1], dtype=np.uint64))[0]) != 1
    True
    """
    z = x ^ (x >> _S30)
    z = z * _M1
    z = z ^ (z >> _S27)
    z = z * _M2
    out: U64 = z ^ (z >> _S31)
    return out


def segment_cummax(
    x: NDArray[np.float64], first: NDArray[np.bool_], seed: NDArray[np.float64]
) -> NDArray[np.float64]:
    """Running maximum of ``x`` restarted at each segment start, seeded per row.

    ``seed`` is row-aligned and read at segment starts only.  Exact (maxima of the
    values themselves, never offset), so the result does not depend on how rows are
    split into batches.

    >>> first = np.array([True, False, True, False])
    >>> segment_cummax(np.array([1.0, 0.0, -np.inf, 2.0]), first,
    ...                np.array([3.0, 0.0, -np.inf, 0.0])).tolist()
    [3.0, 3.0, -inf, 2.0]
    """
    n = x.shape[0]
    if n == 0:
        return x.copy()
    seeded = np.where(first, np.maximum(x, seed), x)
    positions = np.arange(n)
    depth = positions - ffill_positions(first, positions)
    deepest = int(depth.max())
    if deepest <= 16:
        # Few rows per segment (records of a minute): rank by rank, each row's maximum
        # is its own value against the previous row's, no sort needed.
        running = seeded.copy()
        by_depth = np.argsort(depth.astype(np.uint8), kind="stable")
        bounds = np.searchsorted(depth[by_depth], np.arange(deepest + 2))
        for k in range(1, deepest + 1):
            rows = by_depth[bounds[k]:bounds[k + 1]]
            running[rows] = np.maximum(running.take(rows), running.take(rows - 1))
        return running
    values, rank = np.unique(seeded, return_inverse=True)
    segment = np.cumsum(first) - 1
    key = segment.astype(np.int64) * (values.shape[0] + 1) + rank
    top = np.maximum.accumulate(key) - segment.astype(np.int64) * (values.shape[0] + 1)
    out: NDArray[np.float64] = values[top]
    return out


def device_time_order(d: NDArray[np.integer[Any]], t: NDArray[np.float64]
                      ) -> NDArray[np.intp]:
    """Stable order by (device, ts): rows of one (device, ts) keep their order.

    ``np.lexsort((t, d))`` sorts twice.  One stable sort of a 64-bit key (device, then
    ts in whole milliseconds since the earliest row) is a merge of the presorted runs
    the rows arrive in (by point, then time), several times faster; it is used when
    the milliseconds order the rows exactly as ``t`` does, which the result is checked
    for (device timestamps carry whole seconds or milliseconds).

    >>> device_time_order(np.array([1, 0, 1, 0], np.int32),
    ...                   np.array([5.0, 9.0, 2.0, 9.0])).tolist()
    [1, 3, 2, 0]
    """
    n = d.shape[0]
    if n == 0:
        return np.empty(0, dtype=np.intp)
    t0 = float(t.min())
    ms = np.round((t - t0) * 1000.0)
    if float(ms.max()) < 2.0**42 and int(d.max()) < 2**21:
        key = (d.astype(np.int64) << 42) | ms.astype(np.int64)
        order = np.argsort(key, kind="stable")
        k, ts = key.take(order), t.take(order)
        same_key = k[1:] == k[:-1]
        # Equal keys must be equal times, and distinct keys of a device increasing times.
        if not (same_key & (ts[1:] != ts[:-1])).any():
            return order
    fallback: NDArray[np.intp] = np.lexsort((t, d))
    return fallback


@dataclass(frozen=True, slots=True)
class Records:
    """Closed records in (device, ts) order and their samples in (device, ts, point).

    ``changes`` counts the samples whose value differs from that point's previous
    sample (the first sample ever of a point counts as a change); ``rest`` is true when
    fewer than half of the device's watched points report a non-zero value (the others
    read exactly 0 or are flagged, e.g. "stopped": a plant at rest); ``digest`` hashes
    the record's (point, value) pairs exactly, so an exact replay has the same digest.
    """

    device: NDArray[np.intp]
    ts: NDArray[np.float64]
    first: NDArray[np.bool_]
    """True at the first record of each device in this set."""
    start: NDArray[np.intp]
    """Row of each record's first sample."""
    size: NDArray[np.intp]
    changes: NDArray[np.int32]
    rest: NDArray[np.bool_]
    digest: U64
    row_point: NDArray[np.intp]
    row_value: NDArray[np.float64]
    row_record: NDArray[np.intp]
    row_changed: NDArray[np.bool_]

    def __len__(self) -> int:
        return int(self.device.shape[0])


class RecordBuffer:
    """Regroups watched samples into device records; the open record per device waits.

    Rows that cannot be judged are dropped and counted like ``ThresholdDetector`` does:
    non-finite value or ts, or a quality other than normal (``skipped``); a ts at or
    before the device's last closed record, or a repeat of a (point, ts) already held,
    of which the first arrival wins (``late``).  Rows of points that are not watched are
    ignored without counting.
    """

    def __init__(self, point_device: NDArray[np.int32], watched: NDArray[np.bool_],
                 n_devices: int) -> None:
        self.point_device = point_device.astype(np.intp)
        self.watched = watched
        self.n_points = int(point_device.shape[0])
        self.n_devices = n_devices
        self._ptr, self._points = group_csr(point_device, n_devices)
        self._n_watched = np.bincount(point_device[watched], minlength=n_devices)
        self._salt = mix64(np.arange(self.n_points, dtype=np.uint64) + _POINT_SALT)
        self.closed_ts = np.full(n_devices, -np.inf, dtype=np.float64)
        """ts of each device's newest closed record."""
        self._open_ts = np.full(n_devices, np.nan, dtype=np.float64)
        self._earliest_open = np.inf
        """Smallest ts of ``_open_ts`` (inf: none), so the sweep's question costs no
        pass over every device."""
        self._open_has = np.zeros(self.n_points, dtype=np.bool_)
        self._open_value = np.zeros(self.n_points, dtype=np.float64)
        self._last_value = np.full(self.n_points, np.nan, dtype=np.float64)
        """Value of each point's newest closed sample (NaN: none yet)."""
        self._scratch = np.zeros(n_devices, dtype=np.float64)
        self._stamp = np.zeros(n_devices, dtype=np.intp)
        self.skipped = 0
        self.late = 0

    def nbytes(self) -> int:
        state = (self.closed_ts, self._open_ts, self._open_has, self._open_value,
                 self._last_value, self._salt, self._ptr, self._points, self._n_watched,
                 self._scratch, self._stamp)
        return int(sum(a.nbytes for a in state))

    def admit(self, batch: SampleBatch) -> SampleBatch:
        """The rows of a batch that can be judged: watched points, finite value and ts,
        normal quality (the others are counted in ``skipped`` or ignored).  Done as
        batches arrive, so what a cadence holds is already this small."""
        point, ts, value = batch.point, batch.ts, batch.value
        judged = np.isfinite(value) & np.isfinite(ts) & (batch.quality == QUALITY_NORMAL)
        self.skipped += point.shape[0] - int(np.count_nonzero(judged))
        rows = np.flatnonzero(judged & self.watched.take(point))
        return batch.samples_at(rows)

    def add(self, batch: SampleBatch) -> Records:
        """Take admitted rows (:meth:`admit`); return the records they closed.  Point
        indices must be in range: :class:`~detectors.tamper.TamperDetector` checks each
        batch as it arrives."""
        p, t, v = batch.point, batch.ts, batch.value
        n_usable = p.shape[0]
        if n_usable == 0:
            return self._empty()
        d = self.point_device.take(p)
        fresh = np.flatnonzero(t > self.closed_ts.take(d))
        if fresh.shape[0] == 0:
            self.late += n_usable
            return self._empty()
        if fresh.shape[0] < n_usable:
            p, t, v, d = p[fresh], t[fresh], v[fresh], d[fresh]
        held = self._held_points(p.shape[0], d)
        # Held samples of open records go first: they arrived first.
        p = np.concatenate((held, p))
        t = np.concatenate((self._open_ts[self.point_device[held]], t))
        v = np.concatenate((self._open_value[held], v))
        keep, p, t = sorted_unique(p, t, self.n_points)
        self.late += n_usable - (keep.shape[0] - held.shape[0])
        v = v.take(keep)
        d = self.point_device.take(p)
        changed = v != shift_from_state(v, segment_starts(p), self._last_value, p)
        order = device_time_order(d, t)
        dd = d.take(order)
        dev_first = segment_starts(dd)
        dev_last = segment_ends(dev_first)
        self._scratch[dd[dev_last]] = t[order[dev_last]]
        closed = t < self._scratch.take(d)
        self._remember(p, v, closed)
        self._open_has[held] = False
        closed_in_order = closed.take(order)
        still_open = order[~closed_in_order]
        op = p[still_open]
        self._open_has[op] = True
        self._open_value[op] = v[still_open]
        self._open_ts[d[still_open]] = t[still_open]
        self._earliest_open = _earliest(self._open_ts)
        rows = order[closed_in_order]
        if rows.shape[0] == 0:
            return self._empty()
        rec = self._records(d.take(rows), t.take(rows), p.take(rows), v.take(rows),
                            changed.take(rows))
        ends = segment_ends(rec.first)
        self.closed_ts[rec.device[ends]] = rec.ts[ends]
        return rec

    def any_open_at_or_before(self, before: float) -> bool:
        """Whether :meth:`flush` with ``before`` would close a record."""
        return before >= self._earliest_open

    def flush(self, before: float) -> Records:
        """Close every open record with ts <= ``before`` (the watermark passed it)."""
        due = np.flatnonzero(self._open_ts <= before)
        if due.shape[0] == 0:
            return self._empty()
        p = gather_csr(self._ptr, self._points, due)
        p = p[self._open_has[p]]
        if p.shape[0] == 0:
            return self._empty()
        d = self.point_device[p]
        t = self._open_ts[d]
        v = self._open_value[p]
        changed = v != self._last_value[p]
        self._last_value[p] = v
        self._open_has[p] = False
        self.closed_ts[due] = self._open_ts[due]
        self._open_ts[due] = np.nan
        self._earliest_open = _earliest(self._open_ts)
        return self._records(d, t, p, v, changed)

    def _held_points(self, n_rows: int, devices: NDArray[np.intp]) -> NDArray[np.intp]:
        """Points with a held sample of an open record that rows of ``devices`` may
        close.  Every open point when they are no more than the rows (the usual bulk
        set, which touches most devices): an open record no row closes is merely
        handed back open, and finding the touched devices costs more per row than
        re-sorting those few samples.  Otherwise only the open points of the devices
        touched, so a small batch does not pay for the whole fleet's open records."""
        open_points = np.flatnonzero(self._open_has)
        if open_points.shape[0] <= n_rows:
            return open_points
        held = gather_csr(self._ptr, self._points, self._distinct(devices))
        out: NDArray[np.intp] = held[self._open_has[held]]
        return out

    def _distinct(self, devices: NDArray[np.intp]) -> NDArray[np.intp]:
        """Each device once, in O(rows): whichever row's stamp sticks represents it."""
        self._stamp[devices] = np.arange(devices.shape[0], dtype=np.intp)
        out: NDArray[np.intp] = devices[self._stamp[devices] == np.arange(devices.shape[0])]
        return out

    def _remember(self, p: NDArray[np.intp], v: NDArray[np.float64],
                  closed: NDArray[np.bool_]) -> None:
        """Newest closed value per point; closed rows lead each point's segment."""
        idx = np.flatnonzero(closed)
        if idx.shape[0]:
            last = idx.take(segment_ends(segment_starts(p.take(idx))))
            self._last_value[p[last]] = v[last]

    def _records(self, d: NDArray[np.intp], t: NDArray[np.float64], p: NDArray[np.intp],
                 v: NDArray[np.float64], changed: NDArray[np.bool_]) -> Records:
        n = d.shape[0]
        new = np.empty(n, dtype=np.bool_)
        new[0] = True
        new[1:] = (d[1:] != d[:-1]) | (t[1:] != t[:-1])
        start = np.flatnonzero(new)
        size = np.diff(np.append(start, n))
        device = d.take(start)
        clean = v + 0.0  # -0.0 and 0.0 are one reading
        digest = mix64(clean.view(np.uint64) ^ self._salt.take(p))
        return Records(
            device=device,
            ts=t.take(start),
            first=segment_starts(device),
            start=start,
            size=size,
            changes=segment_sums(changed, start).astype(np.int32),
            rest=2 * segment_sums(clean != 0.0, start) < self._n_watched.take(device),
            digest=segment_sums(digest, start),
            row_point=p,
            row_value=v,
            row_record=np.cumsum(new) - 1,
            row_changed=changed,
        )

    def _empty(self) -> Records:
        i = np.empty(0, dtype=np.intp)
        return Records(
            device=np.empty(0, dtype=np.intp), ts=np.empty(0), first=np.empty(0, bool),
            start=i, size=i, changes=np.empty(0, dtype=np.int32), rest=np.empty(0, bool),
            digest=np.empty(0, dtype=np.uint64), row_point=np.empty(0, dtype=np.intp),
            row_value=np.empty(0), row_record=i, row_changed=np.empty(0, bool),
        )


def _earliest(ts: NDArray[np.float64]) -> float:
    """The smallest of ``ts`` that is not NaN (inf when none is)."""
    return float(np.fmin.reduce(ts, initial=np.inf))


@dataclass(frozen=True, slots=True)
class Verdict:
    """One signal's state after each record of a :class:`Records` set."""

    active: NDArray[np.bool_]
    since: NDArray[np.float64]
    value: NDArray[np.float64]
    limit: NDArray[np.float64]

    @classmethod
    def idle(cls, n: int) -> Verdict:
        nan = np.full(n, np.nan)
        return cls(np.zeros(n, dtype=np.bool_), nan, nan, nan)
