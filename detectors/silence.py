"""Devices that stopped sending: the ``silence`` rule, judged on the watermark clock.

Silence is the absence of data, so no sample can reveal it: ``update`` only records
each device's latest sign of life and ``sweep(now)`` compares the whole array with the
watermark (wall clock live, data time in replay, see ``gateway.clock``).  Replays
therefore decide silence at the same instants as the live run.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike, NDArray

from detectors._segments import read_only
from detectors.base import ConditionChanges, SampleBatch


class SilenceDetector:
    """Per-device "no data for ``k`` expected intervals" on event time.

    Parameters:

    * ``point_device``: device index of each point (length ``n_points``), to credit a
      sample to the device that sent it.
    * ``expected_interval_s``: seconds between a device's messages (length
      ``n_devices``); ``NaN`` means the device is never judged silent.
    * ``k``: dimensionless multiple, default 3.0; the timeout is
      ``k * expected_interval_s`` seconds.

    Any sample with a finite ts counts as activity, whatever its quality flag (a
    device sending flagged data is alive), and so do heartbeat rows (events, status).

    ``sweep(now)`` emits severity 1 for each device that *became* silent: ``ts`` = now,
    ``since`` = the event time of its latest data, ``limit`` = the timeout.  A device
    that has sent nothing since start is judged from the first sweep instead, because a
    device that never reported is silent from the moment watching began; its ``since``
    is that first sweep instant.  ``update`` emits severity 0 for a silent device whose
    data is newer than the instant its silence was declared; ``ts`` = ``since`` = the
    newest such activity.  Older data (backfill, QoS 1 redelivery) refreshes
    ``last_seen`` but does not clear, so a resolution never precedes its detection and
    a trickling backlog does not make the alert chatter.

    >>> det = SilenceDetector(point_device=[0, 0, 1], expected_interval_s=[10.0, 60.0])
    >>> len(det.update(SampleBatch.from_arrays([0, 2], [1000.0, 1000.0], [1.0, 2.0])))
    0
    >>> changes = det.sweep(1031.0)  # device 0: 31 s > 3 x 10 s; device 1: not yet
    >>> changes.subject.tolist(), changes.since.tolist(), changes.limit.tolist()
    ([0], [1000.0], [30.0])
    >>> len(det.sweep(1040.0))  # already silent: nothing more
    0
    >>> back = det.update(SampleBatch.from_arrays([1], [1045.0], [3.0]))
    >>> back.subject.tolist(), back.severity.tolist(), back.ts.tolist()
    ([0], [0], [1045.0])
    """

    rule = "silence"

    def __init__(
        self, point_device: ArrayLike, expected_interval_s: ArrayLike, k: float = 3.0
    ) -> None:
        # Native indices: every sample's device indexes per-device state, and numpy
        # converts an int32 index array before each such use.
        self._point_device = np.array(point_device, dtype=np.intp)
        interval = np.array(expected_interval_s, dtype=np.float64)
        if self._point_device.ndim != 1 or interval.ndim != 1:
            raise ValueError("point_device and expected_interval_s must be 1-D arrays")
        if not k > 0:
            raise ValueError("k must be positive")
        self.n_devices = interval.shape[0]
        if self._point_device.shape[0] and (
            int(self._point_device.min()) < 0
            or int(self._point_device.max()) >= self.n_devices
        ):
            raise ValueError("point_device refers to a device index out of range")
        self.k = float(k)
        self._timeout = self.k * interval
        """Seconds without data after which a device is silent (NaN: never)."""

        self._last_seen = np.full(self.n_devices, np.nan, dtype=np.float64)
        """Event time of each device's latest activity; NaN: nothing since start."""
        self._silent = np.zeros(self.n_devices, dtype=np.bool_)
        self._silent_at = np.full(self.n_devices, np.nan, dtype=np.float64)
        """Watermark instant at which the current silence was declared."""
        # Read-only views for callers, made once: both arrays are only written in place,
        # and the site-level fake-offline rule asks for them on every sweep.
        self._last_seen_view = read_only(self._last_seen)
        self._silent_view = read_only(self._silent)
        self._watch_start = math.nan
        """The first sweep instant: never-seen devices are judged from here."""
        self._quiet_until = -math.inf
        """No device can fall silent at a sweep up to here: the earliest deadline seen at
        the last full sweep (new data only moves deadlines later).  Most sweeps stop
        here, which matters when a sparse recording is replayed: a sweep every 5 s of
        event time, and hardly a message between two."""

    @property
    def last_seen(self) -> NDArray[np.float64]:
        """Event time of each device's latest data (read-only; NaN: nothing since start)."""
        return self._last_seen_view

    @property
    def silent(self) -> NDArray[np.bool_]:
        """Whether each device is currently judged silent (read-only)."""
        return self._silent_view

    def update(self, batch: SampleBatch) -> ConditionChanges:
        """Record activity; return clearing rows for silent devices that came back."""
        if batch.point.shape[0] and (
            int(batch.point.min()) < 0 or int(batch.point.max()) >= self._point_device.shape[0]
        ):
            raise ValueError("point index out of range")
        hb_device = batch.heartbeat_device
        if hb_device.shape[0] and (
            int(hb_device.min()) < 0 or int(hb_device.max()) >= self.n_devices
        ):
            raise ValueError("heartbeat device index out of range")
        device = np.concatenate((self._point_device.take(batch.point),
                                 hb_device.astype(np.intp, copy=False)))
        ts = np.concatenate((batch.ts, batch.heartbeat_ts))
        seen = ~np.isnan(ts)
        if not seen.all():
            device, ts = device[seen], ts[seen]
        if device.shape[0] == 0:
            return ConditionChanges.none(self.rule)
        # fmax, not maximum: NaN (never seen) must lose against any real time.
        np.fmax.at(self._last_seen, device, ts)

        back = self._silent.take(device)
        if not back.any():
            return ConditionChanges.none(self.rule)
        # Rare path: only devices that are silent and sent something.
        device, ts = device[back], ts[back]
        candidates = np.unique(device)
        newest = np.full(self.n_devices, -np.inf, dtype=np.float64)
        np.maximum.at(newest, device, ts)
        cleared = candidates[newest[candidates] > self._silent_at[candidates]]
        if cleared.shape[0] == 0:
            return ConditionChanges.none(self.rule)
        self._silent[cleared] = False
        self._silent_at[cleared] = np.nan
        self._quiet_until = -math.inf  # their new deadlines may come first
        at = newest[cleared]
        order = np.argsort(at, kind="stable")
        cleared, at = cleared[order], at[order]
        n = cleared.shape[0]
        return ConditionChanges(
            rule=self.rule,
            subject=cleared.astype(np.int32),
            ts=at,
            since=at.copy(),
            severity=np.zeros(n, dtype=np.int8),
            value=np.full(n, np.nan),
            limit=np.full(n, np.nan),
        )

    def sweep(self, now: float) -> ConditionChanges:
        """Judge every device against the watermark ``now`` (epoch seconds)."""
        if not math.isfinite(now):
            return ConditionChanges.none(self.rule)
        if now <= self._quiet_until:
            return ConditionChanges.none(self.rule)
        if math.isnan(self._watch_start):
            self._watch_start = float(now)
        reference = np.where(np.isnan(self._last_seen), self._watch_start, self._last_seen)
        became = (now - reference > self._timeout) & ~self._silent
        devices = np.flatnonzero(became)
        waiting = (reference + self._timeout)[~(self._silent | became)]
        # A microsecond short of the earliest deadline: safe against rounding of the sum.
        self._quiet_until = (float(np.nanmin(waiting)) - 1e-6 if np.isfinite(waiting).any()
                             else math.inf)
        if devices.shape[0] == 0:
            return ConditionChanges.none(self.rule)
        self._silent[devices] = True
        self._silent_at[devices] = now
        n = devices.shape[0]
        return ConditionChanges(
            rule=self.rule,
            subject=devices.astype(np.int32),
            ts=np.full(n, now, dtype=np.float64),
            since=reference[devices],
            severity=np.ones(n, dtype=np.int8),
            value=np.full(n, np.nan),
            limit=self._timeout[devices],
        )

