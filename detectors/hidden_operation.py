"""Hidden operation (明停暗开): declared stopped, while a meter shows production.

Fed with the meter samples :class:`~detectors.plant_state.PlantStateDetector` judged
(:class:`~detectors.plant_state.MeterReadings`).  Only samples inside a declared stop of
the meter's enterprise count.  Two ways in, because hidden production comes in two
shapes:

* **sustained production**: the meter's state is production (``u ≥ 0.3``, sticky
  until ``u < 0.2``) for at least ``min_intervals`` samples spanning ``min_run_s``;
* **accumulated excess** (CUSUM on the normalised load): ``S ← max(0, S + (u − k)·Δt)``
  in load-hours crosses ``h``.  This catches a part-load or ramping production that
  hovers near the state threshold; maintenance load (about 5 % of production, ``u``
  well below ``k``) keeps ``S`` at zero.

The alert is per enterprise: it fires when its first meter fires and clears when the
last one clears (load below ``clear_below`` for ``clear_after_s``) or when the
declared stop ends.  Evidence (which meter, the declared period, floor, production
level, excess energy above the floor) is kept in :attr:`HiddenOperationDetector.fired`.

The per-sample state machine couples counters with resets, so it runs as a loop over
*rank within meter* with every step vectorized over meters: one step per sample of the
busiest meter in the batch (one or two in live operation and replay).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import ArrayLike, NDArray

from detectors._segments import read_only
from detectors.base import ConditionChanges, SampleBatch
from detectors.plant_state import PRODUCTION, MeterReadings


@dataclass(frozen=True, slots=True)
class HiddenEvidence:
    """Why an enterprise's hidden-operation alert fired (kept until the next firing)."""

    meter: int
    stop: int
    """Row of the declared stop in the topology tables."""
    floor_kw: float
    level_kw: float
    excess_kwh: float
    """Energy above the floor from the first anomalous sample to the firing one."""
    load: float
    """Normalised load ``u`` of the firing sample."""
    by: str
    """``"production"`` (sustained) or ``"cusum"`` (accumulated excess)."""


class HiddenOperationDetector:
    """Production during declared stops, per enterprise.

    Parameters:

    * ``meter_enterprise``, ``meter_interval_s``: per meter row (as in the topology).
    * ``n_enterprises``.
    * ``stop_enterprise``, ``stop_from``, ``stop_to``: declared stops (epoch s), sorted
      by (enterprise, from), not overlapping within an enterprise.
    * ``min_intervals`` (2) and ``min_run_s`` (600 s): a production run must have this
      many samples and span this long (first sample to last, plus one interval).
    * ``cusum_allowance`` ``k`` (0.2) and ``cusum_limit`` ``h`` (0.3 load-hours): an
      honest stop hovers at ``u`` of 0.1-0.15 (night lighting, offices on the total
      meter), which must not accumulate.
    * ``clear_below`` (0.15) and ``clear_after_s`` (1200 s): an episode ends once the
      load has stayed low this long (first low sample to the latest, plus one interval):
      long enough to ride through a furnace's pour and charge, short enough to end
      within a lunch break so the afternoon's production is a new, separate alert.

    Changes: ``subject`` = enterprise, ``severity`` 1 (fired) or 0 (cleared),
    ``value`` = excess kWh when firing, ``limit`` = the firing meter's row.

    >>> from detectors.plant_state import MeterReadings
    >>> det = HiddenOperationDetector([0], [900.0], 1, [0], [0.0], [86_400.0])
    >>> t = np.arange(1, 7) * 900.0
    >>> u = np.array([0.0, 0.9, 0.95, 0.9, 0.05, 0.02])
    >>> readings = MeterReadings(np.zeros(6, np.int32), t, 5 + 100 * u, u,
    ...     np.where(u > 0.3, 2, 0).astype(np.int8), np.full(6, 5.0), np.full(6, 105.0))
    >>> changes = det.update_readings(readings)
    >>> changes.severity.tolist(), changes.ts.tolist(), changes.since.tolist()
    ([1, 0], [2700.0, 5400.0], [1800.0, 5400.0])
    """

    rule = "hidden_operation"
    _stop_enterprise: NDArray[np.int64]
    _stop_from: NDArray[np.float64]
    _stop_to: NDArray[np.float64]

    def __init__(
        self,
        meter_enterprise: ArrayLike,
        meter_interval_s: ArrayLike,
        n_enterprises: int,
        stop_enterprise: ArrayLike,
        stop_from: ArrayLike,
        stop_to: ArrayLike,
        *,
        min_intervals: int = 2,
        min_run_s: float = 600.0,
        cusum_allowance: float = 0.2,
        cusum_limit: float = 0.3,
        clear_below: float = 0.15,
        clear_after_s: float = 1200.0,
    ) -> None:
        self._meter_enterprise = np.asarray(meter_enterprise, dtype=np.int32)
        self._interval = np.asarray(meter_interval_s, dtype=np.float64)
        n = self._meter_enterprise.shape[0]
        if self._interval.shape != (n,):
            raise ValueError("meter_interval_s must have one value per meter")
        self.n_meters, self.n_enterprises = n, int(n_enterprises)
        self.set_stops(stop_enterprise, stop_from, stop_to)
        self._min_intervals, self._min_run_s = int(min_intervals), float(min_run_s)
        self._k, self._h = float(cusum_allowance), float(cusum_limit)
        self._clear_below, self._clear_after = float(clear_below), float(clear_after_s)

        self._run = np.zeros(n, dtype=np.int32)
        self._run_start = np.full(n, np.nan)
        self._cusum = np.zeros(n)
        self._episode_start = np.full(n, np.nan)
        """First sample of the current candidate episode (run or non-zero CUSUM)."""
        self._excess_kwh = np.zeros(n)
        self._low_since = np.full(n, np.nan)
        """First sample of the current run of low load while active."""
        self._active = np.zeros(n, dtype=np.bool_)
        self._stop = np.full(n, -1, dtype=np.int32)
        self._clean = np.ones(n, dtype=np.bool_)
        """Per meter: its episode state is as :meth:`_reset` leaves it.  Meters outside
        any declared stop (nearly all, nearly always) are reset on each sample; this
        spares rewriting eight arrays that already hold the reset values."""
        self._last_ts = np.full(n, -np.inf)
        self._enterprise_active = np.zeros(self.n_enterprises, dtype=np.int32)
        """Active meters per enterprise; the alert is on while this is positive."""
        self.fired: dict[int, HiddenEvidence] = {}
        """Evidence of the latest firing per enterprise."""
        self._firing: dict[tuple[int, float], HiddenEvidence] = {}
        """Evidence of this batch's meter-level firings by (meter, ts): the enterprise
        alert takes the evidence of the meter whose firing turned it on."""

    def set_stops(self, stop_enterprise: ArrayLike, stop_from: ArrayLike,
                  stop_to: ArrayLike) -> None:
        """Replace the declared stops (the registry or the API changed them).

        Episodes under way keep going when their stop still covers where it began (it
        may have been lengthened or merged with a new one): their stop row is looked up
        again in the new table, so the next sample does not read a renumbered row as a
        different stop.  An episode whose stop was withdrawn ends at its next sample.
        """
        e = np.asarray(stop_enterprise, dtype=np.int64)
        f = np.asarray(stop_from, dtype=np.float64)
        t = np.asarray(stop_to, dtype=np.float64)
        order = np.lexsort((f, e))
        had = getattr(self, "_stop_key", None) is not None
        old_enterprise = self._stop_enterprise if had else e
        old_from = self._stop_from if had else f
        self._stop_enterprise, self._stop_from, self._stop_to = e[order], f[order], t[order]
        self._stop_key = _key(self._stop_enterprise, self._stop_from)
        if not had:
            return
        held = np.flatnonzero(self._stop >= 0)
        if held.shape[0]:
            rows = self._stop[held]
            self._stop[held] = self.stop_at(old_enterprise[rows], old_from[rows])
        for enterprise, fired in list(self.fired.items()):
            new = self.stop_at(old_enterprise[[fired.stop]], old_from[[fired.stop]])
            self.fired[enterprise] = replace(fired, stop=int(new[0]))

    @property
    def active(self) -> NDArray[np.bool_]:
        """Per meter: currently counted as producing in a declared stop."""
        return read_only(self._active)

    def stop_at(self, enterprise: NDArray[np.int64], ts: NDArray[np.float64]
                ) -> NDArray[np.int32]:
        """Row of the declared stop covering ``ts`` for each enterprise, -1 for none."""
        if self._stop_key.shape[0] == 0:
            return np.full(ts.shape[0], -1, dtype=np.int32)
        row = np.searchsorted(self._stop_key, _key(enterprise, ts), side="right") - 1
        row = np.maximum(row, 0)
        inside = ((self._stop_enterprise[row] == enterprise) & (self._stop_from[row] <= ts)
                  & (ts < self._stop_to[row]))
        return np.where(inside, row, -1).astype(np.int32)

    def update(self, batch: SampleBatch) -> ConditionChanges:
        """Samples reach this rule through :meth:`update_readings`."""
        return ConditionChanges.none(self.rule)

    def update_readings(self, r: MeterReadings) -> ConditionChanges:
        if len(r) == 0:
            return ConditionChanges.none(self.rule)
        self._firing.clear()
        stop = self.stop_at(self._meter_enterprise[r.meter].astype(np.int64), r.ts)
        first = np.r_[True, r.meter[1:] != r.meter[:-1]]
        seg = np.cumsum(first) - 1
        rank = np.arange(r.meter.shape[0]) - np.flatnonzero(first)[seg]
        events: list[tuple[NDArray[np.int32], NDArray[np.float64], NDArray[np.int8],
                           NDArray[np.float64]]] = []
        for k in range(int(rank.max()) + 1):
            rows = np.flatnonzero(rank == k)
            events.append(self._step(rows, r, stop[rows]))
        return self._per_enterprise(events, r)

    def sweep(self, now: float) -> ConditionChanges:
        """Episodes end with their declared stop, even if the meter says nothing more."""
        if not self._active.any():
            return ConditionChanges.none(self.rule)
        ending = np.flatnonzero(self._active & (self._stop >= 0))
        ending = ending[self._stop_to[self._stop[ending]] <= now]
        if ending.shape[0] == 0:
            return ConditionChanges.none(self.rule)
        at = self._stop_to[self._stop[ending]]
        self._reset(ending)
        m = ending.astype(np.int32)
        return self._aggregate(m, at, np.zeros(m.shape[0], np.int8), at)

    # -- internals ---------------------------------------------------------------------

    def _step(self, rows: NDArray[np.intp], r: MeterReadings, stop: NDArray[np.int32]
              ) -> tuple[NDArray[np.int32], NDArray[np.float64], NDArray[np.int8],
                         NDArray[np.float64]]:
        """One sample per meter: returns the meter-level (meter, ts, ±, since) events."""
        m, t, u = r.meter.take(rows), r.ts.take(rows), r.load.take(rows)
        interval = self._interval[m]
        gap = t - self._last_ts[m]
        dt_h = np.where(np.isfinite(gap), np.minimum(gap, 2 * interval), interval) / 3600.0
        self._last_ts[m] = t
        in_stop = stop >= 0
        moved = self._active[m] & (~in_stop | (stop != self._stop[m]))
        out_m = [m[moved]]
        out_t = [t[moved]]
        out_s = [np.zeros(int(moved.sum()), np.int8)]
        out_since = [t[moved]]
        self._reset(m[(~in_stop | moved) & ~self._clean.take(m)])

        j = np.flatnonzero(in_stop)
        if j.shape[0] == 0:  # no meter in a stop: only the moved ones end
            return out_m[0].astype(np.int32), out_t[0], out_s[0], out_since[0]
        mj, tj, uj = m[j], t[j], u[j]
        self._stop[mj] = stop[j]
        self._clean[mj] = False
        producing = r.state[rows][j] == PRODUCTION
        self._run[mj] = np.where(producing, self._run[mj] + 1, 0)
        self._run_start[mj] = np.where(producing & (self._run[mj] == 1), tj,
                                       np.where(producing, self._run_start[mj], np.nan))
        # A load that cannot be placed (meter scale still unknown) adds nothing; NaN
        # would otherwise stick in the sum and disable it for the rest of the stop.
        step = np.where(np.isfinite(uj), (uj - self._k) * dt_h[j], 0.0)
        self._cusum[mj] = np.maximum(0.0, self._cusum[mj] + step)
        candidate = (self._run[mj] > 0) | (self._cusum[mj] > 0) | self._active[mj]
        starting = candidate & np.isnan(self._episode_start[mj])
        self._episode_start[mj] = np.where(starting, tj, self._episode_start[mj])
        excess = np.maximum(r.p_kw[rows][j] - r.floor_kw[rows][j], 0.0) * dt_h[j]
        self._excess_kwh[mj] = np.where(candidate, self._excess_kwh[mj] + excess, 0.0)

        run_long = ((self._run[mj] >= self._min_intervals)
                    & (tj - self._run_start[mj] + self._interval[mj] >= self._min_run_s))
        fire = ~self._active[mj] & (run_long | (self._cusum[mj] >= self._h))
        self._active[mj[fire]] = True
        low = self._active[mj] & ~fire & (uj < self._clear_below)
        self._low_since[mj] = np.where(low, np.fmin(self._low_since[mj], tj), np.nan)
        clear = self._active[mj] & (tj - self._low_since[mj] + self._interval[mj]
                                    >= self._clear_after)
        for i in np.flatnonzero(fire).tolist():
            row = int(rows[j[i]])
            self._remember(int(mj[i]), int(stop[j[i]]), r, row,
                           "production" if run_long[i] else "cusum")
        out_m += [mj[fire], mj[clear]]
        out_t += [tj[fire], tj[clear]]
        out_s += [np.ones(int(fire.sum()), np.int8), np.zeros(int(clear.sum()), np.int8)]
        out_since += [self._episode_start[mj[fire]], tj[clear]]
        self._reset(mj[clear])
        self._episode_start[mj[~candidate]] = np.nan
        return (np.concatenate(out_m).astype(np.int32), np.concatenate(out_t),
                np.concatenate(out_s), np.concatenate(out_since))

    def _remember(self, meter: int, stop: int, r: MeterReadings, row: int, by: str) -> None:
        self._firing[(meter, float(r.ts[row]))] = HiddenEvidence(
            meter=meter, stop=stop, floor_kw=float(r.floor_kw[row]),
            level_kw=float(r.level_kw[row]), excess_kwh=float(self._excess_kwh[meter]),
            load=float(r.load[row]), by=by)

    def _reset(self, m: NDArray[np.int32] | NDArray[np.intp]) -> None:
        self._active[m] = False
        self._run[m] = 0
        self._run_start[m] = np.nan
        self._cusum[m] = 0.0
        self._episode_start[m] = np.nan
        self._excess_kwh[m] = 0.0
        self._low_since[m] = np.nan
        self._stop[m] = -1
        self._clean[m] = True

    def _per_enterprise(self, events: list[tuple[NDArray[np.int32], NDArray[np.float64],
                                                 NDArray[np.int8], NDArray[np.float64]]],
                        r: MeterReadings) -> ConditionChanges:
        m = np.concatenate([e[0] for e in events])
        if m.shape[0] == 0:
            return ConditionChanges.none(self.rule)
        t = np.concatenate([e[1] for e in events])
        s = np.concatenate([e[2] for e in events])
        since = np.concatenate([e[3] for e in events])
        return self._aggregate(m, t, s, since)

    def _aggregate(self, m: NDArray[np.int32], t: NDArray[np.float64], s: NDArray[np.int8],
                   since: NDArray[np.float64]) -> ConditionChanges:
        """Meter-level fire/clear events → enterprise changes (first on, last off)."""
        e = self._meter_enterprise[m]
        order = np.lexsort((m, t, e))
        e, m, t, s, since = e[order], m[order], t[order], s[order], since[order]
        subject: list[int] = []
        ts: list[float] = []
        sev: list[int] = []
        out_since: list[float] = []
        value: list[float] = []
        limit: list[float] = []
        # Events are rare (an episode has two), so a plain loop is the clear choice.
        for i in range(e.shape[0]):
            ent, before = int(e[i]), int(self._enterprise_active[e[i]])
            after = max(0, before + (1 if s[i] else -1))
            self._enterprise_active[ent] = after
            if before == 0 and after > 0:
                evidence = self._firing.get((int(m[i]), float(t[i])))
                if evidence is not None:
                    self.fired[ent] = evidence
                subject.append(ent)
                ts.append(float(t[i]))
                sev.append(1)
                out_since.append(float(since[i]))
                value.append(evidence.excess_kwh if evidence else float("nan"))
                limit.append(float(m[i]))
            elif before > 0 and after == 0:
                subject += [ent]
                ts.append(float(t[i]))
                sev.append(0)
                out_since.append(float(t[i]))
                value.append(float("nan"))
                limit.append(float("nan"))
        if not subject:
            return ConditionChanges.none(self.rule)
        order_out = np.argsort(np.asarray(ts), kind="stable")
        return ConditionChanges(
            rule=self.rule,
            subject=np.asarray(subject, dtype=np.int32)[order_out],
            ts=np.asarray(ts)[order_out],
            since=np.asarray(out_since)[order_out],
            severity=np.asarray(sev, dtype=np.int8)[order_out],
            value=np.asarray(value)[order_out],
            limit=np.asarray(limit)[order_out],
        )


def _key(enterprise: NDArray[np.int64], ts: NDArray[np.float64]) -> NDArray[np.float64]:
    """One sortable float per (enterprise, time): with up to 10⁵ enterprises the key
    stays below 2⁵⁰, so times keep a resolution of 1/8 s, finer than any meter."""
    return enterprise.astype(np.float64) * 1e10 + ts
