"""Plant state from the electricity meter: off, standby or production.

The meter is the one witness an enterprise cannot easily fake (the utility's feed, or a
sub-meter that must show load for production to happen), so hidden operation and offline
faking are both judged against what it says.  What "production" means differs by site
(a 90 kW grinding line, a 3 MW furnace), so each meter learns two levels of its own:

* the **floor**: what the site draws when nothing produces (lighting, offices,
  compressors, control standby), a low quantile of its load;
* the **production level**: a high quantile of its load.

Both come from a histogram of the load (as a fraction of the meter's rated power) with
exponential forgetting (half-life a week by default), seeded with a weak prior at 3 %
and 60 % of rated power so a new meter is usable from its first samples.  The estimates
are refreshed when a meter's data enters a new hour (event time), not on every batch, so
they do not depend on how samples were batched.  Each sample is then placed on the
normalised scale ``u = (load − floor) / (level − floor)`` and classified with hysteresis:
production from ``u ≥ 0.3`` until ``u < 0.2``; standby for ``u ≥ 0.08``; otherwise off.

Not done (said plainly): per-hour-of-week baselines.  A single floor is enough while
production is an order of magnitude above night lighting, which holds for the sites we
model; a plant whose base load swings by a third of its production would need them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from detectors._segments import (
    ffill_positions,
    judgeable_rows,
    read_only,
    segment_ends,
    segment_starts,
    shift_from_state,
)
from detectors.base import ConditionChanges, SampleBatch
from detectors.cadence import Cadence

OFF, STANDBY, PRODUCTION = 0, 1, 2
"""State codes (``severity`` of the detector's changes)."""

_BINS = 96
_X_MAX = 1.3
"""Histogram range as a fraction of rated power; bins are finer near zero (square-root
spacing) where the floor lives."""
_PRIOR_FLOOR, _PRIOR_LEVEL = 0.03, 0.6
_MIN_SPAN = 0.35
"""The production level is at least this far (fraction of rated) above the floor: a
meter that has only ever seen idle load must not call a flicker production, and a
maintenance load of up to 5 % of rated stays below ``u = 0.1`` (the hidden-operation
CUSUM allowance) even after a long stop has made the meter forget its production."""
_RENORMALISE_AT = 600.0
"""Weight exponent (in half-lives) at which the histogram is rescaled (2**600 < 1e181)."""


@dataclass(frozen=True, slots=True)
class MeterReadings:
    """The meter samples judged by the last :meth:`PlantStateDetector.update`, sorted by
    (meter, ts): what downstream rules (hidden operation) consume."""

    meter: NDArray[np.intp]
    ts: NDArray[np.float64]
    p_kw: NDArray[np.float64]
    load: NDArray[np.float64]
    """``u``: 0 at the floor, 1 at the production level."""
    state: NDArray[np.int8]
    floor_kw: NDArray[np.float64]
    level_kw: NDArray[np.float64]

    @classmethod
    def empty(cls) -> MeterReadings:
        """No readings: one shared read-only instance (asked for on every sweep)."""
        return _NO_READINGS

    def __len__(self) -> int:
        return int(self.meter.shape[0])


_NO_F64 = read_only(np.empty(0, dtype=np.float64))
_NO_READINGS = MeterReadings(read_only(np.empty(0, dtype=np.intp)), _NO_F64, _NO_F64,
                             _NO_F64, read_only(np.empty(0, dtype=np.int8)), _NO_F64,
                             _NO_F64)


class PlantStateDetector:
    """Off / standby / production per meter, from its power point.

    Parameters:

    * ``meter_point``: dense point index of each meter's active power (kW); meter ``m``
      is row ``m`` of every array here.
    * ``meter_rated_kw``: rated power (kW).  A meter without one (NaN) is not judged:
      its samples are skipped and its state stays off.  Learning a scale from the data
      alone cannot tell a plant that idled all along from one that produced all along,
      and a wrong guess raises hidden-operation alerts on honest sites.
    * ``n_points``: size of the registry's point index (to map samples to meters).
    * ``half_life_s``: forgetting of the load histogram, seconds of event time
      (default 7 days).
    * ``low_quantile``, ``high_quantile``: floor and production level (0.1, 0.9).
    * ``production_enter``, ``production_leave``, ``standby_enter``: thresholds on the
      normalised load ``u`` (0.3, 0.2, 0.08).
    * ``prior_samples``: weight of the seed levels, in samples (24).
    * ``judge_every_s``: seconds of event time (0: every batch).  Above 0 the meter
      samples are held and judged together once that much event time has passed, and
      by :meth:`sweep` once the watermark has (:mod:`detectors.cadence`): the same
      states, up to that much later.

    Changes: ``subject`` = meter row, ``severity`` = new state, ``value`` = the load (kW)
    that decided it, ``limit`` = the production level (kW).  Samples that are not
    finite, flagged (quality not normal) or at/before the meter's last sample change
    nothing (``skipped_samples``, ``late_samples``).

    >>> det = PlantStateDetector(meter_point=[0], meter_rated_kw=[100.0], n_points=1)
    >>> batch = SampleBatch.from_arrays(point=[0] * 4, ts=[0.0, 60.0, 120.0, 180.0],
    ...                                 value=[3.0, 70.0, 65.0, 2.0])
    >>> det.update(batch).severity.tolist()
    [2, 0]
    >>> det.readings.load.round(2).tolist()
    [0.0, 1.16, 1.08, -0.02]
    """

    rule = "plant_state"

    def __init__(
        self,
        meter_point: ArrayLike,
        meter_rated_kw: ArrayLike,
        n_points: int,
        *,
        half_life_s: float = 7 * 86_400.0,
        low_quantile: float = 0.1,
        high_quantile: float = 0.9,
        production_enter: float = 0.3,
        production_leave: float = 0.2,
        standby_enter: float = 0.08,
        prior_samples: float = 24.0,
        judge_every_s: float = 0.0,
    ) -> None:
        self._meter_point = np.asarray(meter_point, dtype=np.int32)
        n_meters = self._meter_point.shape[0]
        rated = np.asarray(meter_rated_kw, dtype=np.float64)
        if rated.shape != (n_meters,):
            raise ValueError("meter_rated_kw must have one value per meter")
        if not 0 < low_quantile < high_quantile < 1:
            raise ValueError("need 0 < low_quantile < high_quantile < 1")
        if not standby_enter < production_leave <= production_enter:
            raise ValueError("need standby_enter < production_leave <= production_enter")
        if half_life_s <= 0:
            raise ValueError("half_life_s must be positive")
        self.n_meters = n_meters
        self._cadence = Cadence(judge_every_s)
        self._point_meter = np.full(n_points, -1, dtype=np.intp)
        """Meter of each point, -1 for none (native ints: the meters of the readings
        index per-meter state here and downstream, and an int32 index costs a cast)."""
        self._point_meter[self._meter_point] = np.arange(n_meters, dtype=np.intp)
        self._judged = np.isfinite(rated) & (rated > 0)
        self._scale = np.where(self._judged, rated, np.nan)
        self._half_life = float(half_life_s)
        self._q = (float(low_quantile), float(high_quantile))
        self._enter, self._leave = float(production_enter), float(production_leave)
        self._standby = float(standby_enter)

        self._counts = np.zeros((n_meters, _BINS), dtype=np.float64)
        """Load histogram per meter (a row per meter: a refresh reads whole rows)."""
        self._counts[:, _bin(np.array(_PRIOR_FLOOR))] = prior_samples
        self._counts[:, _bin(np.array(_PRIOR_LEVEL))] = prior_samples
        self._t0: float | None = None
        """Event time where histogram weights are 1 (fixed at the first sample)."""
        self._floor = np.full(n_meters, _PRIOR_FLOOR)
        self._level = np.full(n_meters, _PRIOR_LEVEL)
        """Floor and production level, fractions of the scale."""
        self._hour = np.full(n_meters, np.iinfo(np.int64).min, dtype=np.int64)
        """Event-time hour of the last refresh of floor and level."""
        self._state = np.zeros(n_meters, dtype=np.int8)
        self._last_ts = np.full(n_meters, -np.inf)
        self._last_kw = np.full(n_meters, np.nan)
        self.readings = MeterReadings.empty()
        self.skipped_samples = 0
        self.late_samples = 0

    # -- read-only views for other rules, evidence and the dashboard ------------------

    @property
    def state(self) -> NDArray[np.int8]:
        return read_only(self._state)

    @property
    def last_ts(self) -> NDArray[np.float64]:
        return read_only(self._last_ts)

    @property
    def last_kw(self) -> NDArray[np.float64]:
        return read_only(self._last_kw)

    def floor_kw(self) -> NDArray[np.float64]:
        return np.asarray(self._floor * self._scale)

    def level_kw(self) -> NDArray[np.float64]:
        return np.asarray(self._level * self._scale)

    def state_bytes(self) -> int:
        """Memory held per the whole detector (bytes), for the benchmark's report."""
        arrays = (self._counts, self._floor, self._level, self._hour, self._state,
                  self._last_ts, self._last_kw, self._scale, self._point_meter)
        return int(sum(a.nbytes for a in arrays))

    # -- the detector interface --------------------------------------------------------

    def update(self, batch: SampleBatch) -> ConditionChanges:
        """Judge the meter samples of a batch, or hold them (``judge_every_s``);
        :attr:`readings` holds what was judged."""
        self.readings = MeterReadings.empty()
        if len(batch) == 0:
            return ConditionChanges.none(self.rule)
        if self._cadence.every_s > 0:
            rows = np.flatnonzero(self._point_meter.take(batch.point) >= 0)
            due = self._cadence.add(batch.samples_at(rows))
            return ConditionChanges.none(self.rule) if due is None else self._take(due)
        return self._take(batch)

    def sweep(self, now: float) -> ConditionChanges:
        """Held samples once due (a silent meter keeps its last state)."""
        self.readings = MeterReadings.empty()
        due = self._cadence.due(now)
        return ConditionChanges.none(self.rule) if due is None else self._take(due)

    def judge_held(self) -> ConditionChanges:
        """Judge every held sample now (the end of a recording, a shutdown)."""
        self.readings = MeterReadings.empty()
        held = self._cadence.release()
        return ConditionChanges.none(self.rule) if held is None else self._take(held)

    def _take(self, batch: SampleBatch) -> ConditionChanges:
        meter = self._point_meter[batch.point]
        mine = meter >= 0
        mine[mine] = self._judged[meter[mine]]
        if not mine.any():
            return ConditionChanges.none(self.rule)
        m, t, kw, skipped, late = judgeable_rows(meter, batch.ts, batch.value, batch.quality,
                                                 self._last_ts, self.n_meters, mine)
        self.skipped_samples += skipped
        self.late_samples += late
        if m.shape[0] == 0:
            return ConditionChanges.none(self.rule)
        p = np.maximum(kw, 0.0)
        hour = np.floor(t / 3600.0)
        if (hour == hour[0]).all():
            return self._judge(m, t, p)
        # A batch reaching into a later hour is judged hour by hour, so each hour's
        # refresh sees exactly the samples before it, as it would with hourly batches.
        parts: list[ConditionChanges] = []
        readings: list[MeterReadings] = []
        for h in np.unique(hour):
            rows = np.flatnonzero(hour == h)  # still sorted by (meter, ts)
            parts.append(self._judge(m[rows], t[rows], p[rows]))
            readings.append(self.readings)
        self.readings = _concat_readings(readings)
        return _concat_changes(self.rule, parts)

    # -- internals ---------------------------------------------------------------------

    def _judge(self, m: NDArray[np.intp], t: NDArray[np.float64],
               p: NDArray[np.float64]) -> ConditionChanges:
        first = segment_starts(m)
        last = segment_ends(first)
        seg_meter = m[last]
        self._refresh(seg_meter, t[last])
        scale = self._scale[m]
        x = p / scale
        floor, level = self._floor.take(m), self._level.take(m)
        u = (x - floor) / (level - floor)

        # Production is sticky (hysteresis), carried across batches.
        enter, leave = u >= self._enter, u < self._leave
        event = enter | leave
        positions = np.arange(m.shape[0], dtype=np.intp)
        carried = self._state[m] == PRODUCTION
        producing = np.where(event, enter, carried)[ffill_positions(event | first, positions)]
        code = np.where(producing, PRODUCTION,
                        np.where(u >= self._standby, STANDBY, OFF)).astype(np.int8)
        changed = np.flatnonzero(code != shift_from_state(code, first, self._state, m))

        self._learn(m, t, x)
        self._state[seg_meter] = code[last]
        self._last_ts[seg_meter] = t[last]
        self._last_kw[seg_meter] = p[last]
        self.readings = MeterReadings(m, t, p, u, code, floor * scale, level * scale)
        if changed.shape[0] == 0:
            return ConditionChanges.none(self.rule)
        order = changed[np.argsort(t[changed], kind="stable")]
        return ConditionChanges(
            rule=self.rule, subject=m[order].astype(np.int32), ts=t[order], since=t[order],
            severity=code[order], value=p[order], limit=(level * scale)[order],
        )

    def _refresh(self, meters: NDArray[np.intp], newest: NDArray[np.float64]) -> None:
        """Recompute floor and level of meters whose data entered a new hour."""
        hour = np.floor(newest / 3600.0).astype(np.int64)
        due = hour > self._hour[meters]
        if not due.any():
            return
        rows = meters[due]
        self._hour[rows] = hour[due]
        cum = _running_sums(np.ascontiguousarray(self._counts.take(rows, axis=0).T))
        total = cum[-1]
        # Counts are never negative, so the sums never fall: the first bin reaching a
        # share of the total is the number of bins below it.
        low = _centre(np.count_nonzero(cum < self._q[0] * total, axis=0))
        high = _centre(np.count_nonzero(cum < self._q[1] * total, axis=0))
        level = np.maximum(high, np.minimum(low, 0.5 * high) + _MIN_SPAN)
        self._floor[rows] = np.minimum(low, 0.5 * high)
        self._level[rows] = level

    def _learn(self, m: NDArray[np.intp], t: NDArray[np.float64],
               x: NDArray[np.float64]) -> None:
        if self._t0 is None:
            self._t0 = float(t.min())
        exponent = (t - self._t0) / self._half_life
        top = float(exponent.max())
        if top > _RENORMALISE_AT:
            shift = top - 1.0
            self._counts *= np.exp2(-shift)
            self._t0 += shift * self._half_life
            exponent = exponent - shift
        ok = np.isfinite(x)
        # Through the flat view: numpy's add.at is several times faster on one axis;
        # the adds are the same, one after another in row order.
        cells = m[ok] * _BINS + _bin(x[ok])
        np.add.at(self._counts.reshape(-1), cells, np.exp2(exponent[ok]))


def _running_sums(counts: NDArray[np.float64]) -> NDArray[np.float64]:
    """Running sums down the bins (axis 0) of every column, added bin after bin as
    ``np.cumsum(counts, axis=0)`` adds them, so the sums are the same to the bit.

    numpy's cumsum runs a short loop per column; with many columns (an hour boundary
    refreshes most meters at once) one whole-row add per bin is several times faster,
    with fewer columns than bins the per-bin calls would cost more than they save."""
    if counts.shape[1] < _BINS:
        out: NDArray[np.float64] = np.cumsum(counts, axis=0)
        return out
    running = np.empty_like(counts)
    running[0] = counts[0]
    for b in range(1, counts.shape[0]):
        np.add(running[b - 1], counts[b], out=running[b])
    return running


def _concat_readings(parts: list[MeterReadings]) -> MeterReadings:
    """Readings of consecutive hours, back in (meter, ts) order."""
    fields = [np.concatenate([getattr(r, name) for r in parts])
              for name in ("meter", "ts", "p_kw", "load", "state", "floor_kw", "level_kw")]
    order = np.lexsort((fields[1], fields[0]))
    return MeterReadings(*(f[order] for f in fields))


def _concat_changes(rule: str, parts: list[ConditionChanges]) -> ConditionChanges:
    """Changes of consecutive hours: each sorted by ts, so their concatenation is too."""
    parts = [c for c in parts if len(c)]
    if not parts:
        return ConditionChanges.none(rule)
    return ConditionChanges(
        rule=rule, subject=np.concatenate([c.subject for c in parts]),
        ts=np.concatenate([c.ts for c in parts]), since=np.concatenate([c.since for c in parts]),
        severity=np.concatenate([c.severity for c in parts]),
        value=np.concatenate([c.value for c in parts]),
        limit=np.concatenate([c.limit for c in parts]))


def _bin(x: NDArray[np.float64]) -> NDArray[np.intp]:
    """Histogram bin of load fractions (square-root spacing)."""
    ratio = np.clip(x, 0.0, _X_MAX) / _X_MAX
    return np.minimum((np.sqrt(ratio) * _BINS).astype(np.intp), _BINS - 1)


def _centre(b: NDArray[np.intp]) -> NDArray[np.float64]:
    """Load fraction at the centre of bin ``b``."""
    return np.asarray(((b + 0.5) / _BINS) ** 2 * _X_MAX, dtype=np.float64)
