"""Bursts of discrete events: the ``event_burst`` rule.

A dust collector's spark detector trips now and then in normal running (one spark per
several hundred production hours); several sparks in one zone within minutes mean
glowing particles are reaching the filter, the classic precursor of a bag-house fire
or dust explosion.  Events carry no value, only a device and an event time, so this
detector takes plain arrays rather than a :class:`~detectors.base.SampleBatch`.

Per device it keeps the times of its last ``min_events`` events (a shift register,
oldest first), whether a burst is active and its latest event time.  A batch is judged
in one pass over its events sorted by (device, ts): the event ``min_events - 1`` before
each one is read from the batch or, near a device's first rows, from the register.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike, NDArray

from detectors._segments import read_only, segment_ends, segment_starts, sorted_unique_rows
from detectors.base import ConditionChanges, SampleBatch


class EventBurstDetector:
    """Per-device "at least ``min_events`` events within ``window_s``" on event time.

    Parameters:

    * ``n_devices``: number of dense device ids (events carry a device index).
    * ``min_events``: count, default 3, >= 1.  A burst fires at the event that makes
      ``min_events`` events of the device fall within ``(ts - window_s, ts]``, i.e. when
      the event ``min_events - 1`` before it is less than ``window_s`` older.
    * ``window_s``: seconds of event time, default 600, > 0.  Events exactly
      ``window_s`` apart are not in one window.
    * ``clear_after_s``: seconds of event time, default 900, > 0.  An active burst
      clears at the first ``sweep(now)`` with ``now - last_event >= clear_after_s``.
      Clearing forgets the device's events: a new burst needs ``min_events`` events
      judged after the clear, so a burst never fires twice on the same events.

    ``update_events(device, ts)`` takes the events of one kind in any order.  Identical
    (device, ts) rows are one event (QoS 1 redelivery; the first arrival is kept).
    Events at or before the device's latest event already judged in an earlier batch
    are counted in ``late_events`` and otherwise ignored: they neither fire nor count
    towards a later burst (this includes redeliveries, counted there too).  Events with
    a non-finite ts are counted in ``skipped_events``.  Within one batch the order of
    arrival does not matter.

    A firing row has severity 1, ``ts`` = the event that completed the count, ``since``
    = the first event of that window, ``value`` = the events counted in the window
    (``min_events``: the burst fires as soon as the count is reached) and ``limit`` =
    ``min_events``.  While a burst is active, further events only extend it.  A
    clearing row (from ``sweep``) has severity 0, ``ts`` = ``now``, ``since`` = the
    device's last event, ``value`` and ``limit`` NaN.  Rows are sorted by ts, ties by
    device.

    >>> det = EventBurstDetector(n_devices=2)  # 3 events in 600 s, clear after 900 s
    >>> changes = det.update_events(device=[1, 0, 1, 1, 1], ts=[100.0, 150.0, 400.0,
    ...                                                           400.0, 650.0])
    >>> len(changes)  # device 1 has 100, 400 (twice: one event) and 650: 550 s apart
    1
    >>> changes.subject.tolist(), changes.ts.tolist(), changes.since.tolist()
    ([1], [650.0], [100.0])
    >>> changes.value.tolist(), changes.limit.tolist(), changes.severity.tolist()
    ([3.0], [3.0], [1])
    >>> len(det.sweep(1500.0))  # 850 s since the last spark: still active
    0
    >>> cleared = det.sweep(1550.0)
    >>> cleared.subject.tolist(), cleared.ts.tolist(), cleared.since.tolist()
    ([1], [1550.0], [650.0])
    """

    rule = "event_burst"

    def __init__(
        self,
        n_devices: int,
        min_events: int = 3,
        window_s: float = 600.0,
        clear_after_s: float = 900.0,
    ) -> None:
        if n_devices < 0:
            raise ValueError("n_devices must be >= 0")
        if min_events < 1:
            raise ValueError("min_events must be at least 1")
        if not (math.isfinite(window_s) and window_s > 0):
            raise ValueError("window_s must be finite and > 0")
        if not (math.isfinite(clear_after_s) and clear_after_s > 0):
            raise ValueError("clear_after_s must be finite and > 0")
        self.n_devices = int(n_devices)
        self.min_events = int(min_events)
        self.window_s = float(window_s)
        self.clear_after_s = float(clear_after_s)

        self._recent = np.full((self.n_devices, self.min_events), np.nan, dtype=np.float64)
        """Times of each device's last ``min_events`` events, oldest first (NaN: none)."""
        self._last_ts = np.full(self.n_devices, -np.inf, dtype=np.float64)
        self._active = np.zeros(self.n_devices, dtype=np.bool_)

        self.late_events = 0
        """Events at or before the device's latest judged event (incl. duplicates)."""
        self.skipped_events = 0
        """Events with a non-finite ts."""

    @property
    def active(self) -> NDArray[np.bool_]:
        """Whether each device has an active burst (read-only view)."""
        return read_only(self._active)

    def update(self, batch: SampleBatch) -> ConditionChanges:
        """Samples carry no events: nothing to do (the pipeline calls every detector)."""
        return ConditionChanges.none(self.rule)

    def update_events(self, device: ArrayLike, ts: ArrayLike) -> ConditionChanges:
        """Judge events (device index, event time in epoch seconds); return bursts fired."""
        d = np.asarray(device, dtype=np.int32)
        t = np.asarray(ts, dtype=np.float64)
        if d.ndim != 1 or d.shape != t.shape:
            raise ValueError("device and ts must be 1-D arrays of the same length")
        n_rows = d.shape[0]
        if n_rows == 0:
            return ConditionChanges.none(self.rule)
        if int(d.min()) < 0 or int(d.max()) >= self.n_devices:
            raise ValueError(f"device index out of range 0..{self.n_devices - 1}")

        judged = np.isfinite(t)
        n_judged = int(np.count_nonzero(judged))
        self.skipped_events += n_rows - n_judged
        fresh = judged & (t > self._last_ts[d])
        if not fresh.all():
            d, t = d[fresh], t[fresh]
        keep = sorted_unique_rows(d, t, self.n_devices)
        self.late_events += n_judged - keep.shape[0]
        if keep.shape[0] == 0:
            return ConditionChanges.none(self.rule)
        return self._judge(d[keep], t[keep])

    def sweep(self, now: float) -> ConditionChanges:
        """Clear the bursts whose device has been quiet for ``clear_after_s`` at ``now``."""
        if not math.isfinite(now) or not self._active.any():
            return ConditionChanges.none(self.rule)
        devices = np.flatnonzero(self._active & (now - self._last_ts >= self.clear_after_s))
        if devices.shape[0] == 0:
            return ConditionChanges.none(self.rule)
        self._active[devices] = False
        self._recent[devices] = np.nan
        n = devices.shape[0]
        return ConditionChanges(
            rule=self.rule,
            subject=devices.astype(np.int32),
            ts=np.full(n, now, dtype=np.float64),
            since=self._last_ts[devices],
            severity=np.zeros(n, dtype=np.int8),
            value=np.full(n, np.nan),
            limit=np.full(n, np.nan),
        )

    def _judge(self, d: NDArray[np.int32], t: NDArray[np.float64]) -> ConditionChanges:
        """Fire bursts over rows sorted by (device, ts), strictly increasing ts per device."""
        m = self.min_events
        positions = np.arange(d.shape[0], dtype=np.intp)
        first = segment_starts(d)
        last = segment_ends(first)
        seg_devices = d[last]
        seg_first = np.flatnonzero(first)
        seg_of_row = np.cumsum(first, dtype=np.intp) - 1
        pos_in_seg = positions - seg_first[seg_of_row]

        # Each device's events laid end to end: register columns 0..m-1, then its rows.
        # Row p of a segment is at m + p, so the event m - 1 before it is at p + 1:
        # register column p + 1 while p + 1 < m, else the row p + 1 - m of the batch.
        back = pos_in_seg + 1 - m
        in_batch = back >= 0
        t_back = np.where(
            in_batch,
            t[np.where(in_batch, positions + 1 - m, 0)],
            self._recent[d, np.minimum(pos_in_seg + 1, m - 1)],
        )
        full = t_back > t - self.window_s  # NaN (not yet m events) is never inside

        # A device fires at its first full row if no burst is carried over.
        full_before = np.cumsum(full, dtype=np.intp)
        full_before_seg = (full_before - full)[seg_first]
        first_full = full & (full_before - full_before_seg[seg_of_row] == 1)
        fired = np.flatnonzero(first_full & ~self._active[d])

        self._active[seg_devices] |= full_before[last] - full_before_seg > 0
        self._last_ts[seg_devices] = t[last]
        self._shift_in(seg_devices, seg_first, last, t)
        if fired.shape[0] == 0:
            return ConditionChanges.none(self.rule)
        order = fired[np.argsort(t[fired], kind="stable")]
        n = order.shape[0]
        count = np.full(n, float(m))
        return ConditionChanges(
            rule=self.rule,
            subject=d[order],
            ts=t[order],
            since=t_back[order],
            severity=np.ones(n, dtype=np.int8),
            value=count,
            limit=count.copy(),
        )

    def _shift_in(
        self,
        seg_devices: NDArray[np.int32],
        seg_first: NDArray[np.intp],
        last: NDArray[np.intp],
        t: NDArray[np.float64],
    ) -> None:
        """Keep the last ``min_events`` of (register, then the segment's rows)."""
        m = self.min_events
        seg_len = (last - seg_first + 1)[:, None]
        # Position q in the end-to-end sequence of a device; the last m are kept.
        q = seg_len + np.arange(m)[None, :]
        from_register = q < m
        register = self._recent[seg_devices[:, None], np.where(from_register, q, 0)]
        rows = t[np.where(from_register, 0, seg_first[:, None] + q - m)]
        self._recent[seg_devices] = np.where(from_register, register, rows)
