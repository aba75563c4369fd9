"""Interlock violations: production running while its safety equipment is not.

Each rule relates points of two devices, so it cannot be judged on one sample: the
detector keeps the latest usable value of every point a rule names and evaluates all
rules together at each sweep of the watermark clock (every few seconds of event time),
as whole-array operations over the rule table.  The rules (built from the registry by
``gateway.registry.topology``):

* **fan** (dust): a production line draws more than ``power_on_kw`` while the dust
  collector's fan run state is 0 (粉尘涉爆: dust produced with no extraction);
* **cooling** (metallurgy): the induction furnace is energised while the coil cooling
  inlet flow is below its ``lo`` limit, or the pressure below its own;
* **leak** (metallurgy): energised while the outlet flow falls short of the inlet flow
  by more than ``other_limit`` of it (water escaping inside the furnace: steam
  explosion risk).

A rule fires once its violation has held for ``on_delay_s`` of event time and clears at
the first sweep where it no longer holds; flows and pressure must recover past a 5 %
deadband to clear.  When either side has gone stale (no data for ``stale_factor`` ×
its interval) the rule keeps its state: a missing reading proves nothing, and silence
has its own rule.  Samples flagged F (stopped) are used (a stopped pump's flow is a
real zero); other non-normal flags are not.
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np
from numpy.typing import ArrayLike, NDArray

from detectors._segments import (
    read_only,
    segment_ends,
    segment_starts,
    sorted_unique,
)
from detectors.base import QUALITY_CODES, QUALITY_NORMAL, ConditionChanges, SampleBatch

FAN, COOLING, LEAK = 1, 2, 3
"""Rule kinds (the topology's ``INTERLOCK_*`` codes)."""

_LAST_USABLE = max(QUALITY_NORMAL, QUALITY_CODES["F"])
"""Codes N (0) and F (1) are usable: ``quality <= 1`` is a cheaper test than isin."""
_DEADBAND = 0.05
_T = TypeVar("_T", bound=np.generic)


class InterlockDetector:
    """Cross-device interlock rules, judged at sweeps.

    Parameters (one entry per rule unless said): ``kind`` (:data:`FAN`,
    :data:`COOLING`, :data:`LEAK`); ``power_point`` and ``power_on_kw`` (kW);
    ``guard_point`` and ``guard_limit`` (fan: run state below it is off; cooling: flow
    below it is too low; leak: inlet flow must exceed it for a shortfall to count);
    ``other_point`` and ``other_limit`` (cooling: pressure point or -1, and its limit;
    leak: outlet flow point, and the largest allowed shortfall as a fraction of inlet
    flow); ``subject`` (the point an alert is
    about); ``point_interval_s`` (expected interval of every registry point, s);
    ``on_delay_s`` (60 s); ``stale_factor`` (3).

    Changes: ``subject`` = rule row, ``severity`` 1/0, ``value`` = the guard's value
    (the shortfall fraction for a leak), ``limit`` = its limit.

    >>> det = InterlockDetector(kind=[FAN], power_point=[0], power_on_kw=[18.0],
    ...     guard_point=[1], guard_limit=[0.5], other_point=[-1], other_limit=[np.nan],
    ...     subject=[1], point_interval_s=[60.0, 30.0], on_delay_s=60.0)
    >>> _ = det.update(SampleBatch.from_arrays([0, 1], [0.0, 0.0], [60.0, 1.0]))
    >>> len(det.sweep(5.0))
    0
    >>> _ = det.update(SampleBatch.from_arrays([0, 1], [30.0, 30.0], [61.0, 0.0]))
    >>> [len(det.sweep(t)) for t in (35.0, 60.0, 90.0)]
    [0, 0, 1]
    >>> det.sweep(95.0).severity.tolist(), det.active.tolist()
    ([], [True])
    """

    rule = "interlock_violation"

    def __init__(
        self,
        kind: ArrayLike,
        power_point: ArrayLike,
        power_on_kw: ArrayLike,
        guard_point: ArrayLike,
        guard_limit: ArrayLike,
        other_point: ArrayLike,
        other_limit: ArrayLike,
        subject: ArrayLike,
        point_interval_s: ArrayLike,
        *,
        on_delay_s: float = 60.0,
        stale_factor: float = 3.0,
    ) -> None:
        self._kind = np.asarray(kind, dtype=np.int8)
        n = self._kind.shape[0]
        # Point columns are native indices: numpy converts an int32 index array before
        # every gather, and sweeps gather by them many times.
        self._power = np.asarray(power_point, dtype=np.intp)
        self._on_kw = np.asarray(power_on_kw, dtype=np.float64)
        self._guard = np.asarray(guard_point, dtype=np.intp)
        self._guard_limit = np.asarray(guard_limit, dtype=np.float64)
        self._other = np.asarray(other_point, dtype=np.intp)
        self._other_limit = np.asarray(other_limit, dtype=np.float64)
        self._subject = np.asarray(subject, dtype=np.int32)
        for name, a in (("power_point", self._power), ("power_on_kw", self._on_kw),
                        ("guard_point", self._guard), ("guard_limit", self._guard_limit),
                        ("other_point", self._other), ("other_limit", self._other_limit),
                        ("subject", self._subject)):
            if a.shape != (n,):
                raise ValueError(f"{name} must have one entry per rule")
        interval = np.asarray(point_interval_s, dtype=np.float64)
        self.n_rules = n
        self.n_points = int(interval.shape[0])
        self._on_delay, self._stale = float(on_delay_s), float(stale_factor)
        self._stale_s = interval * self._stale
        self._watched = np.zeros(interval.shape[0], dtype=np.bool_)
        for points in (self._power, self._guard, self._other):
            self._watched[points[points >= 0]] = True
        self._value = np.full(interval.shape[0], np.nan)
        self._ts = np.full(interval.shape[0], -np.inf)

        self._active = np.zeros(n, dtype=np.bool_)
        self._dirty = False
        """New data since the last evaluation."""
        self._pending = False
        """Some violation is waiting out its on-delay."""
        # A sweep evaluates only rules whose data moved and rules waiting out their
        # on-delay: nothing else can change (a rule neither waiting nor fed is decided
        # until its data moves; going stale decides nothing).
        self._point_moved = np.zeros(self.n_points, dtype=np.bool_)
        self._has_other = self._other >= 0
        # Staleness limits per rule column, gathered once instead of at every sweep.
        self._power_stale_s = self._stale_s[self._power]
        self._guard_stale_s = self._stale_s[self._guard]
        self._other_or_0 = np.where(self._has_other, self._other, 0)
        self._other_stale_s = self._stale_s[self._other_or_0]
        self._is_fan, self._is_cooling = self._kind == FAN, self._kind == COOLING
        self._is_leak = self._kind == LEAK
        self._waiting = np.zeros(n, dtype=np.bool_)
        self._guard_since = np.full(n, np.nan)
        self._power_since = np.full(n, np.nan)
        self.samples_ignored = 0

    @property
    def active(self) -> NDArray[np.bool_]:
        return read_only(self._active)

    def latest(self, point: int) -> tuple[float, float]:
        """(ts, value) of the latest usable sample of a watched point (for evidence)."""
        return float(self._ts[point]), float(self._value[point])

    def rule_points(self, rule: int) -> tuple[int, int, int]:
        """(power, guard, other) point of a rule (other: -1 when none)."""
        return int(self._power[rule]), int(self._guard[rule]), int(self._other[rule])

    def update(self, batch: SampleBatch) -> ConditionChanges:
        """Keep the latest usable value of every watched point (rules run at sweeps)."""
        if len(batch) == 0:
            return ConditionChanges.none(self.rule)
        watched = self._watched.take(batch.point)
        # Usability is judged on the whole batch: one compaction instead of two.
        rows = np.flatnonzero(watched & np.isfinite(batch.value) & np.isfinite(batch.ts)
                              & (batch.quality <= _LAST_USABLE))
        self.samples_ignored += int(np.count_nonzero(watched)) - rows.shape[0]
        p, t, v = batch.point.take(rows), batch.ts.take(rows), batch.value.take(rows)
        if p.shape[0] == 0:
            return ConditionChanges.none(self.rule)
        # Latest per point: each point's last row in (point, ts) order, newer than
        # what is held (ties: the first in arrival order, as elsewhere).
        order, p, t = sorted_unique(p, t, self.n_points)
        v = v.take(order)
        last = segment_ends(segment_starts(p))
        p, t, v = p.take(last), t.take(last), v.take(last)
        newer = np.flatnonzero(t > self._ts.take(p))
        moved = p.take(newer)
        self._ts[moved] = t.take(newer)
        self._value[moved] = v.take(newer)
        if moved.shape[0]:
            self._dirty = True
            self._point_moved[moved] = True
        return ConditionChanges.none(self.rule)

    def sweep(self, now: float) -> ConditionChanges:
        # Verdicts change only with new data or when an on-delay runs out; going
        # stale changes nothing.  Skipping idle sweeps keeps replays fast.
        if self.n_rules == 0 or not (self._dirty or self._pending):
            return ConditionChanges.none(self.rule)
        self._dirty = False
        moved = self._point_moved
        fed = moved.take(self._power) | moved.take(self._guard) | (
            self._has_other & moved.take(self._other_or_0))
        moved[:] = False
        due = fed | self._waiting
        r = np.flatnonzero(due)
        # Usually most rules are fed; then all are evaluated, which spares a gather of
        # every rule column: a rule neither fed nor waiting comes out unchanged (its
        # data and since-times are as its last evaluation left them, and staleness
        # only grows, so it neither fires nor clears).
        every = 2 * r.shape[0] > self.n_rules
        if every:
            r = np.arange(self.n_rules)

        def col(a: NDArray[_T]) -> NDArray[_T]:
            return a if every else a[r]

        power, guard, o = col(self._power), col(self._guard), col(self._other_or_0)
        has_other = col(self._has_other)
        ts_power, ts_guard, ts_other = self._ts.take(power), self._ts.take(guard), self._ts.take(o)
        fresh = ((now - ts_power <= col(self._power_stale_s))
                 & (now - ts_guard <= col(self._guard_stale_s))
                 & (~has_other | (now - ts_other <= col(self._other_stale_s))))
        kw, g = self._value.take(power), self._value.take(guard)
        ov = np.where(has_other, self._value.take(o), np.nan)
        active = col(self._active)
        guard_limit, other_limit = col(self._guard_limit), col(self._other_limit)
        # Recovering needs the deadband; entering only the limit.
        slack = np.where(active, 1.0 + _DEADBAND, 1.0)
        shortfall = (g - ov) / np.maximum(g, 1e-9)
        is_leak = col(self._is_leak)
        guard_bad = np.where(
            col(self._is_fan), g < guard_limit,
            np.where(col(self._is_cooling),
                     (g < guard_limit * slack) | (has_other & (ov < other_limit * slack)),
                     is_leak & (g > np.fmax(guard_limit, 0.0))
                     & (shortfall > other_limit / slack)))
        power_on = kw > col(self._on_kw)
        guard_since = _since(guard_bad, col(self._guard_since),
                             np.where(is_leak, np.maximum(ts_guard, ts_other), ts_guard))
        power_since = _since(power_on, col(self._power_since), ts_power)
        if every:
            self._guard_since, self._power_since = guard_since, power_since
        else:
            self._guard_since[r], self._power_since[r] = guard_since, power_since
        violated = guard_bad & power_on
        since = np.maximum(guard_since, power_since)
        waiting = fresh & violated & ~active
        fire = waiting & (now - since >= self._on_delay)
        if every:
            self._waiting = waiting & ~fire
        else:
            self._waiting[r] = waiting & ~fire
        self._pending = bool(self._waiting.any())
        clear = fresh & ~violated & active
        if not (fire.any() or clear.any()):
            return ConditionChanges.none(self.rule)
        self._active[r[fire]] = True
        self._active[r[clear]] = False
        pick = np.flatnonzero(fire | clear)
        firing = fire[pick]
        leak = is_leak[pick]
        measure = np.where(leak, shortfall[pick], g[pick])
        limit = np.where(leak, other_limit[pick], guard_limit[pick])
        return ConditionChanges(
            rule=self.rule, subject=r[pick].astype(np.int32),
            ts=np.full(pick.shape[0], now),
            since=np.where(firing, since[pick], now),
            severity=firing.astype(np.int8), value=measure,
            limit=np.where(firing, limit, np.nan))


def _since(condition: NDArray[np.bool_], held: NDArray[np.float64],
           sample_ts: NDArray[np.float64]) -> NDArray[np.float64]:
    """Start of each condition's current run: kept while it holds, set to the sample
    that first showed it, NaN once it stops."""
    return np.where(condition, np.where(np.isnan(held), sample_ts, held), np.nan)
