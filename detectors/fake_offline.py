"""Offline faking (虚假离线): the monitoring channel is silent or fake while the
independent meter shows the plant running.

Two shapes, both judged at sweeps of the watermark clock:

* **site silent while running** (enterprise level): every device that reports through
  the site's own gateway is silent (the ``silence`` rule), for at least ``on_delay_s``,
  and every complete interval of the independent (utility) meter that lies inside the
  silence shows production.  A genuine power cut has the meter low too, so it stays a
  ``device_offline`` matter.  The on-delay (30 min by default) is longer than a genuine
  network outage of a site (minutes, seen and backfilled by store-and-forward
  gateways); only a silence longer than that, with the plant visibly producing
  throughout, is called faking.  This alert is the parent of the devices'
  ``device_offline`` alerts (the pipeline inhibits them while it is active).
* **fake data** (point level): a tamper signal (frozen, replayed, cloned; see
  :mod:`detectors.tamper`) on a point while the enterprise's meters show production.
  It clears with the signal, or when the plant stops producing.

Parameters: ``device_enterprise``, ``device_monitoring`` (per device),
``enterprise_reference_meter`` (per enterprise, -1: none), ``meter_enterprise``,
``meter_interval_s`` (per meter), ``point_enterprise`` (per point), ``on_delay_s``
(1800 s), ``skew_s`` (tolerated clock skew between the meter and the site, 60 s),
``ring`` (readings remembered per reference meter, 24: six hours of a 15-minute meter;
only reference meters keep them), ``production_memory_s`` (a point-level verdict holds
while some meter read production within this long, 3600 s).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike, NDArray

from detectors._segments import read_only
from detectors.base import ConditionChanges, SampleBatch
from detectors.plant_state import PRODUCTION, MeterReadings

SITE_RULE = "fake_offline_site"
"""``rule`` of the site-level changes (subject: enterprise); the point-level ones carry
:attr:`FakeOfflineDetector.rule` (subject: point)."""


class FakeOfflineDetector:
    """Site silent while running, and tampered points while running.

    Site-level changes (:meth:`sweep_site`, rule :data:`SITE_RULE`) have ``subject`` =
    enterprise and severity 1; point-level ones (:meth:`sweep_points`) have ``subject`` =
    point and severity = tamper code + 1.

    >>> det = FakeOfflineDetector(device_enterprise=[0, 0], device_monitoring=[True, False],
    ...     enterprise_reference_meter=[0], meter_enterprise=[0], meter_interval_s=[900.0],
    ...     point_enterprise=[0], on_delay_s=1800.0)
    >>> det.observe_readings(MeterReadings(np.zeros(3, np.int32),
    ...     np.array([1800.0, 2700.0, 3600.0]), np.full(3, 80.0), np.ones(3),
    ...     np.full(3, 2, np.int8), np.zeros(3), np.full(3, 100.0)))
    >>> silent, seen = np.array([True, False]), np.array([600.0, 3600.0])
    >>> len(det.sweep_site(2000.0, silent, seen)), len(det.sweep_site(2400.0, silent, seen))
    (0, 1)
    """

    rule = "fake_offline"

    def __init__(
        self,
        device_enterprise: ArrayLike,
        device_monitoring: ArrayLike,
        enterprise_reference_meter: ArrayLike,
        meter_enterprise: ArrayLike,
        meter_interval_s: ArrayLike,
        point_enterprise: ArrayLike,
        *,
        on_delay_s: float = 1800.0,
        skew_s: float = 60.0,
        ring: int = 24,
        production_memory_s: float = 3600.0,
    ) -> None:
        self._device_enterprise = np.asarray(device_enterprise, dtype=np.int32)
        self._monitoring = np.asarray(device_monitoring, dtype=np.bool_)
        self._reference = np.asarray(enterprise_reference_meter, dtype=np.int32)
        self._meter_enterprise = np.asarray(meter_enterprise, dtype=np.int32)
        self._interval = np.asarray(meter_interval_s, dtype=np.float64)
        self._point_enterprise = np.asarray(point_enterprise, dtype=np.int32)
        self.n_enterprises = int(self._reference.shape[0])
        n_meters = int(self._interval.shape[0])
        self._on_delay, self._skew = float(on_delay_s), float(skew_s)
        self._n_monitoring = np.bincount(self._device_enterprise[self._monitoring],
                                         minlength=self.n_enterprises)
        refs = np.unique(self._reference[self._reference >= 0])
        self._slot = np.full(n_meters, -1, dtype=np.int64)
        """Meter → row of the reading rings (-1: not a reference meter)."""
        self._slot[refs] = np.arange(refs.shape[0])
        self._ref_slot = np.full(self.n_enterprises, -1, dtype=np.int64)
        has = self._reference >= 0
        self._ref_slot[has] = self._slot[self._reference[has]]
        self._ring_ts = np.full((refs.shape[0], ring), -np.inf)
        self._ring_state = np.zeros((refs.shape[0], ring), dtype=np.int8)
        self._ring_next = np.zeros(refs.shape[0], dtype=np.int64)
        self._meter_state = np.zeros(n_meters, dtype=np.int8)
        self._last_production = np.full(n_meters, -np.inf)
        """Event time of each meter's latest production reading."""
        self._production_memory_s = float(production_memory_s)
        self._site_active = np.zeros(self.n_enterprises, dtype=np.bool_)
        self._site_since = np.full(self.n_enterprises, np.nan)
        self._watch_start = math.nan
        self._dirty = True
        """New meter readings, or a change of silence, since the last evaluation."""
        self._pending = False
        """Some site is silent and running but its on-delay has not passed."""
        self._last_silent: bytes | None = None
        """The silence verdicts last evaluated, as bytes: comparing those is a memcmp,
        several times cheaper per sweep than comparing arrays."""

        n_points = int(self._point_enterprise.shape[0])
        self._tamper_code = np.zeros(n_points, dtype=np.int8)
        self._tamper_since = np.full(n_points, np.nan)
        self._tamper_value = np.full(n_points, np.nan)
        self._point_active = np.zeros(n_points, dtype=np.bool_)
        self._points_dirty = False
        """Tamper verdicts or meter states changed since the last point evaluation."""

    @property
    def site_active(self) -> NDArray[np.bool_]:
        return read_only(self._site_active)

    @property
    def point_active(self) -> NDArray[np.bool_]:
        return read_only(self._point_active)

    def producing(self, now: float | None = None) -> NDArray[np.bool_]:
        """Per enterprise: some meter's latest reading is production, or (given ``now``)
        some meter read production within ``production_memory_s`` before it.  The
        memory keeps a tampering verdict from flickering with a furnace's pour and
        charge or a line's short stops."""
        out = np.zeros(self.n_enterprises, dtype=np.bool_)
        out[self._meter_enterprise[self._meter_state == PRODUCTION]] = True
        if now is not None:
            recent = now - self._last_production <= self._production_memory_s
            out[self._meter_enterprise[recent]] = True
        return out

    def meter_readings_inside(self, enterprise: int, since: float) -> list[tuple[float, int]]:
        """(ts, state) of the reference meter's remembered readings after ``since``."""
        meter = int(self._reference[enterprise])
        if meter < 0:
            return []
        slot = int(self._slot[meter])
        rows = sorted(zip(self._ring_ts[slot].tolist(), self._ring_state[slot].tolist(),
                          strict=True))
        return [(t, s) for t, s in rows if t - self._interval[meter] >= since - self._skew]

    # -- inputs ------------------------------------------------------------------------

    def update(self, batch: SampleBatch) -> ConditionChanges:
        """Inputs arrive through the observe methods; decisions are made at sweeps."""
        return ConditionChanges.none(self.rule)

    def observe_readings(self, r: MeterReadings) -> None:
        """Remember the judged meter samples (newest last per meter)."""
        if len(r) == 0:
            return
        last = np.r_[r.meter[1:] != r.meter[:-1], True]
        self._meter_state[r.meter[last]] = r.state[last]
        made = r.state == PRODUCTION
        np.maximum.at(self._last_production, r.meter[made], r.ts[made])
        self._points_dirty = True
        ref = self._slot[r.meter]
        keep = ref >= 0
        if not keep.any():
            return
        ref, ts, state = ref[keep], r.ts[keep], r.state[keep]
        first = np.r_[True, ref[1:] != ref[:-1]]
        rank = np.arange(ref.shape[0]) - np.flatnonzero(first)[np.cumsum(first) - 1]
        column = (self._ring_next[ref] + rank) % self._ring_ts.shape[1]
        self._ring_ts[ref, column] = ts
        self._ring_state[ref, column] = state
        np.add.at(self._ring_next, ref, 1)
        self._dirty = True

    def observe_tamper(self, changes: ConditionChanges) -> None:
        """Track the tamper rule's per-point verdicts (code, since, measure)."""
        if len(changes) == 0:
            return
        p = changes.subject
        self._tamper_code[p] = changes.severity
        self._tamper_since[p] = np.where(changes.severity > 0, changes.since, np.nan)
        self._tamper_value[p] = changes.value
        self._points_dirty = True

    # -- decisions ---------------------------------------------------------------------

    def sweep(self, now: float) -> ConditionChanges:
        """Point-level decisions; the site-level ones need the silence verdicts and are
        made by :meth:`sweep_site`."""
        return self.sweep_points(now)

    def sweep_site(self, now: float, silent: NDArray[np.bool_],
                   last_seen: NDArray[np.float64]) -> ConditionChanges:
        if math.isnan(self._watch_start):
            self._watch_start = now
        silent_now = silent.tobytes()
        if silent_now != self._last_silent:
            self._last_silent = silent_now
            self._dirty = True
        if not (self._dirty or self._pending) or self._ring_ts.shape[0] == 0:
            return ConditionChanges.none(SITE_RULE)  # nothing new, or no meter to judge by
        self._dirty = False
        e_of = self._device_enterprise
        mon = self._monitoring
        n_silent = np.bincount(e_of[mon & silent], minlength=self.n_enterprises)
        all_silent = (self._n_monitoring > 0) & (n_silent == self._n_monitoring)
        # Only sites that are silent, or already alerted, need the meter comparison;
        # normally that is a handful out of thousands.
        sites = np.flatnonzero(all_silent | self._site_active)
        if sites.shape[0] == 0:
            self._pending = False
            return ConditionChanges.none(SITE_RULE)
        devices = np.flatnonzero(mon & np.isin(e_of, sites))
        seen = np.where(np.isnan(last_seen[devices]), self._watch_start, last_seen[devices])
        latest = np.full(self.n_enterprises, -np.inf)
        np.maximum.at(latest, e_of[devices], seen)
        start = latest[sites]

        slot = self._ref_slot[sites]
        has_ref = slot >= 0
        r = np.maximum(slot, 0)
        interval = self._interval[np.maximum(self._reference[sites], 0)]
        inside = (self._ring_ts[r] - interval[:, None]) >= (start - self._skew)[:, None]
        n_inside = inside.sum(axis=1)
        n_producing = (inside & (self._ring_state[r] == PRODUCTION)).sum(axis=1)
        running = has_ref & (n_inside > 0) & (n_producing == n_inside)
        active = self._site_active[sites]
        silent_here = all_silent[sites]
        waiting = silent_here & running & ~active
        fire = waiting & (now - start >= self._on_delay)
        self._pending = bool((waiting & ~fire).any())
        stopped = has_ref & (n_inside > 0) & (n_producing < n_inside)
        clear = active & (~silent_here | stopped)
        if not (fire.any() or clear.any()):
            return ConditionChanges.none(SITE_RULE)
        self._site_active[sites[fire]] = True
        self._site_active[sites[clear]] = False
        self._site_since[sites[fire]] = start[fire]
        pick = np.flatnonzero(fire | clear)
        firing = fire[pick]
        return ConditionChanges(
            rule=SITE_RULE, subject=sites[pick].astype(np.int32),
            ts=np.full(pick.shape[0], now),
            since=np.where(firing, start[pick], now),
            severity=firing.astype(np.int8),
            value=np.where(firing, now - start[pick], np.nan),
            limit=np.where(firing, self._on_delay, np.nan))

    def sweep_points(self, now: float) -> ConditionChanges:
        if not (self._points_dirty or self._point_active.any()):
            return ConditionChanges.none(self.rule)  # the memory may run out: keep judging
        self._points_dirty = False
        if not (self._tamper_code.any() or self._point_active.any()):
            return ConditionChanges.none(self.rule)
        producing = self.producing(now)[self._point_enterprise]
        want = (self._tamper_code > 0) & producing
        fire = want & ~self._point_active
        clear = ~want & self._point_active
        if not (fire.any() or clear.any()):
            return ConditionChanges.none(self.rule)
        self._point_active[fire] = True
        self._point_active[clear] = False
        rows = np.flatnonzero(fire | clear).astype(np.int32)
        firing = fire[rows]
        since = np.fmin(self._tamper_since[rows], now)
        return ConditionChanges(
            rule=self.rule, subject=rows, ts=np.full(rows.shape[0], now),
            since=np.where(firing, since, now),
            severity=np.where(firing, self._tamper_code[rows] + 1, 0).astype(np.int8),
            value=np.where(firing, self._tamper_value[rows], np.nan),
            limit=np.full(rows.shape[0], np.nan))
