"""A plain-Python reference of the detection rules, one sample at a time.

The vectorized core (``detectors/``, wired in ``gateway/pipeline.py``) expresses every
rule as whole-array passes over struct-of-arrays state.  This module restates the same
rules the slow, obvious way: one small Python object per point, device, meter,
enterprise and interlock rule, and a loop over samples.  It serves two purposes:

* a test oracle (``tests/bench/test_reference_oracle.py``): on the same batches and
  sweep instants it must produce the same condition changes as the vectorized core;
* the baseline of ``bench/detectors.py``, which reports how much faster the arrays are.

What "the same rules" means for batching, read from the detectors' docstrings: samples
are judged per batch (one ``process`` call); inside a batch each point's samples are
judged in event-time order, the first arrival of a repeated (point, ts) wins, and
anything at or before the point's last judged ts is late and changes nothing.  So
``process`` visits the batch's samples sorted by (ts, point), stably, and skips a
sample whose ts is not after its subject's last one: that is exactly the documented
rule, with no batch arithmetic.  Visiting meters in (ts, point) order also fixes the
order in which meters of one enterprise turn its hidden-operation alert on and off;
meter rows follow point order in the topology, so this is the (ts, meter) order the
detector sorts its meter events by.  Two rules are batch-level by definition and are
written so: a silent device's clearing carries its newest activity of the batch, and
the tamper rule judges records (all points of a device at one ts).  Four rules are
judged in bulk by the pipeline (plant state, deviation and tamper every minute of event
time, rate every 30 s, :mod:`detectors.cadence`): here their samples are held by the same
:class:`~detectors.cadence.Cadence` and then visited one at a time, so their rows leave
at the same steps; the scheduling is shared, the rules are not.

Parameters come from the same registry arrays (:class:`~gateway.registry.RegistryIndex`,
:class:`~gateway.registry.topology.SiteTopology`); the detectors' own defaults are
restated in :class:`Params`, so a changed default shows up as an oracle difference.

No numpy in the per-sample logic: batches are converted to lists at the door.  The
tamper rule is not restated here: :func:`tamper_reference` wraps the record-at-a-time
reference of ``tests/detectors/test_tamper_reference.py`` (which hashes with the
detector's numpy ``mix64``), and without it the tamper and point-level fake-data rules
are left out.  Not restated either: the load histogram's renormalisation after 600
half-lives (about 11 years of event time) in the plant-state rule.
"""

from __future__ import annotations

import importlib
import inspect
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from itertools import accumulate
from typing import Any, Protocol

import numpy as np

from bench.reference_deviation import DeviationReference
from detectors.base import SampleBatch
from detectors.cadence import Cadence
from detectors.tamper import TamperDetector
from gateway.registry import Registry
from gateway.registry.topology import (
    INTERLOCK_COOLING,
    INTERLOCK_FAN,
    INTERLOCK_LEAK,
    SiteTopology,
    build_topology,
)

NAN = math.nan
OFF, STANDBY, PRODUCTION = 0, 1, 2

Row = tuple[int, float, float, int, float, float]
"""One condition change: (subject, ts, since, severity, value, limit), NaN as in the
detectors' :class:`~detectors.base.ConditionChanges`."""

RULES = ("threshold", "silence", "rate_of_change", "deviation", "event_burst",
         "interlock_violation", "plant_state", "hidden_operation", "fake_offline_site",
         "tamper", "fake_offline")
"""Rule names, as the vectorized detectors spell them."""


@dataclass(frozen=True, slots=True)
class Params:
    """The detectors' defaults as the pipeline uses them (units as in their docstrings)."""

    silence_k: float = 3.0
    rate_window_s: float = 300.0
    rate_min_samples: int = 4
    rate_min_span_s: float = 180.0
    rate_clear_ratio: float = 0.5
    rate_on_delay_s: float = 0.0
    rate_judge_every_s: float = 30.0
    """The pipeline's ``RATE_JUDGE_EVERY_S``: rate samples are judged in bulk."""
    plant_judge_every_s: float = 60.0
    """The pipeline's ``PLANT_JUDGE_EVERY_S``: meter samples are judged in bulk."""
    deviation_judge_every_s: float = 60.0
    """The pipeline's ``DEVIATION_JUDGE_EVERY_S``: deviation samples are judged in bulk."""
    burst_min_events: int = 3
    burst_window_s: float = 600.0
    burst_clear_after_s: float = 900.0
    interlock_on_delay_s: float = 60.0
    interlock_stale_factor: float = 3.0
    interlock_deadband: float = 0.05
    plant_half_life_s: float = 7 * 86_400.0
    plant_low_quantile: float = 0.1
    plant_high_quantile: float = 0.9
    plant_production_enter: float = 0.3
    plant_production_leave: float = 0.2
    plant_standby_enter: float = 0.08
    plant_prior_samples: float = 24.0
    plant_bins: int = 96
    plant_x_max: float = 1.3
    plant_prior_floor: float = 0.03
    plant_prior_level: float = 0.6
    plant_min_span: float = 0.35
    hidden_min_intervals: int = 2
    hidden_min_run_s: float = 600.0
    hidden_cusum_allowance: float = 0.2
    hidden_cusum_limit: float = 0.3
    hidden_clear_below: float = 0.15
    hidden_clear_after_s: float = 1200.0
    fake_on_delay_s: float = 1800.0
    fake_skew_s: float = 60.0
    fake_memory_s: float = 6 * 3600.0
    """Reference-meter readings remembered (``gateway.pipeline.FAKE_OFFLINE_MEMORY_S``)."""
    fake_production_memory_s: float = 3600.0
    """A fake-data verdict holds while some meter read production within this long."""


class TamperOracle(Protocol):
    """A record-at-a-time tamper rule: rows sorted by (ts, subject)."""

    def update(self, batch: SampleBatch) -> list[Row]: ...

    def sweep(self, now: float) -> list[Row]: ...

    def judge_held(self) -> list[Row]: ...


# -- one object per subject ------------------------------------------------------------

# Threshold bands in priority order: (code, direction); +1 fires above the limit.
_BANDS = ((2, +1), (1, +1), (-2, -1), (-1, -1))


class _ThresholdPoint:
    __slots__ = ("active", "code", "deadband", "excursion", "last_ts", "limits",
                 "on_delay", "run_start")

    def __init__(self, limits: list[float], deadband: float, on_delay: float) -> None:
        self.limits = limits  # hihi, hi, lolo, lo
        self.deadband = 0.0 if math.isnan(deadband) else deadband
        self.on_delay = 0.0 if math.isnan(on_delay) else on_delay
        self.active = [False] * 4
        self.run_start = [NAN] * 4
        self.excursion = NAN
        self.code = 0
        self.last_ts = -math.inf


class _RatePoint:
    __slots__ = ("active", "code", "history", "last_ts", "limit", "run_start")

    def __init__(self, limit: float, capacity: int) -> None:
        self.limit = limit
        self.history: deque[tuple[float, float]] = deque(maxlen=capacity - 1)
        """(ts, value) of the latest earlier samples: a window holds at most capacity."""
        self.last_ts = -math.inf
        self.active = False
        self.run_start = NAN
        self.code = 0


class _Device:
    __slots__ = ("burst", "burst_active", "burst_last", "last_seen", "silent", "silent_at",
                 "timeout")

    def __init__(self, timeout: float, min_events: int) -> None:
        self.timeout = timeout
        self.last_seen = NAN
        self.silent = False
        self.silent_at = NAN
        self.burst: deque[float] = deque(maxlen=min_events)
        self.burst_last = -math.inf
        self.burst_active = False


class _Meter:
    """Plant state of one meter, and its hidden-operation episode."""

    __slots__ = ("active", "counts", "cusum", "enterprise", "episode_start", "excess_kwh",
                 "floor", "h_last_ts", "hour", "interval", "last_production", "last_ts",
                 "level", "low_since", "row", "run", "run_start", "scale", "state", "stop")

    def __init__(self, row: int, enterprise: int, interval: float, scale: float,
                 counts: list[float], p: Params) -> None:
        self.row, self.enterprise, self.interval, self.scale = row, enterprise, interval, scale
        self.counts = counts
        self.floor, self.level = p.plant_prior_floor, p.plant_prior_level
        self.hour: int | None = None
        self.state = OFF
        self.last_ts = -math.inf
        self.last_production = -math.inf
        """Event time of the latest production reading."""
        self.h_last_ts = -math.inf
        self.reset()

    def reset(self) -> None:
        self.active = False
        self.run = 0
        self.run_start = NAN
        self.cusum = 0.0
        self.episode_start = NAN
        self.excess_kwh = 0.0
        self.low_since = NAN
        self.stop = -1


class _Interlock:
    __slots__ = ("active", "guard", "guard_limit", "guard_since", "kind", "on_kw", "other",
                 "other_limit", "power", "power_since")

    def __init__(self, kind: int, power: int, on_kw: float, guard: int, guard_limit: float,
                 other: int, other_limit: float) -> None:
        self.kind, self.power, self.on_kw = kind, power, on_kw
        self.guard, self.guard_limit = guard, guard_limit
        self.other, self.other_limit = other, other_limit
        self.active = False
        self.guard_since = NAN
        self.power_since = NAN


class _Enterprise:
    __slots__ = ("hidden_meters", "meters", "monitoring", "ref_interval", "ring",
                 "site_active")

    def __init__(self) -> None:
        self.meters: list[_Meter] = []
        self.monitoring: list[_Device] = []
        self.ring: deque[tuple[float, int]] | None = None
        """(ts, state) of the reference meter's latest readings; None: no reference."""
        self.ref_interval = NAN
        self.hidden_meters = 0
        """Meters with an active hidden-operation episode."""
        self.site_active = False


class _Suspect:
    """A point's latest tamper verdict, and whether it is alerted as fake data."""

    __slots__ = ("active", "code", "since", "value")

    def __init__(self) -> None:
        self.code = 0
        self.since = NAN
        self.value = NAN
        self.active = False


# -- the reference ---------------------------------------------------------------------


class ReferenceCore:
    """Every rule of the pipeline, one sample at a time (see the module docstring).

    ``process(batch, sparks)`` takes one decoded batch and the spark events (device,
    ts) that came with it; ``sweep(now)`` one sweep instant.  Both return the rows each
    rule emitted, keyed by rule name (:data:`RULES`).
    """

    def __init__(self, registry: Registry, *, topology: SiteTopology | None = None,
                 params: Params | None = None, tamper: TamperOracle | None = None) -> None:
        p = self.p = params or Params()
        index = registry.index
        topo = topology or build_topology(registry.spec, index)
        self._tamper = tamper
        self.point_device = index.point_device.tolist()
        self.point_enterprise = index.point_enterprise.tolist()
        interval = index.device_expected_interval_s.tolist()
        point_interval = [interval[d] for d in self.point_device]
        n_points = len(self.point_device)

        limits = [index.point_hihi.tolist(), index.point_hi.tolist(),
                  index.point_lolo.tolist(), index.point_lo.tolist()]
        deadband, on_delay = index.point_deadband.tolist(), index.point_on_delay_s.tolist()
        self.thresholds = [_ThresholdPoint([band[q] for band in limits], deadband[q],
                                           on_delay[q]) for q in range(n_points)]

        rate = index.point_rate_hi_per_min.tolist()
        ruled = [q for q in range(n_points) if not math.isnan(rate[q])]
        capacity = _rate_capacity([point_interval[q] for q in ruled], p.rate_window_s)
        self.rates = {q: _RatePoint(rate[q], capacity) for q in ruled}
        self._rate_ruled = np.zeros(n_points, dtype=np.bool_)
        self._rate_ruled[ruled] = True
        self._rate_cadence = Cadence(p.rate_judge_every_s)
        self._deviation = DeviationReference(
            topo.point_deviation_watched.tolist(), topo.point_run_gate.tolist(),
            direction=topo.point_deviation_direction.tolist())
        self._deviation_rows = topo.point_deviation_watched.copy()
        gates = topo.point_run_gate[topo.point_deviation_watched]
        self._deviation_rows[gates[gates >= 0]] = True
        self._deviation_cadence = Cadence(p.deviation_judge_every_s)

        self.devices = [_Device(p.silence_k * t, p.burst_min_events) for t in interval]
        self.watch_start = NAN

        self.enterprises = [_Enterprise() for _ in range(index.n_enterprises)]
        for d, e in enumerate(index.device_enterprise.tolist()):
            if topo.device_monitoring[d]:
                self.enterprises[e].monitoring.append(self.devices[d])
        prior = [0.0] * p.plant_bins
        prior[self._bin(p.plant_prior_floor)] = p.plant_prior_samples
        prior[self._bin(p.plant_prior_level)] = p.plant_prior_samples
        self._meter_points = np.zeros(n_points, dtype=np.bool_)
        self._meter_points[topo.meter_point] = True
        self._plant_cadence = Cadence(p.plant_judge_every_s)
        self.meters: list[_Meter] = []
        self.meter_of_point: dict[int, _Meter] = {}
        for m, (point, e, t, rated) in enumerate(zip(
                topo.meter_point.tolist(), topo.meter_enterprise.tolist(),
                topo.meter_interval_s.tolist(), topo.meter_rated_kw.tolist(), strict=True)):
            meter = _Meter(m, e, t, rated, list(prior), p)
            self.meters.append(meter)
            self.enterprises[e].meters.append(meter)
            if math.isfinite(rated) and rated > 0:  # a meter without a rating is not judged
                self.meter_of_point[point] = meter
        references = [r for r in topo.enterprise_reference_meter.tolist() if r >= 0]
        ring = _meter_ring([self.meters[r].interval for r in references], p.fake_memory_s)
        for e, r in enumerate(topo.enterprise_reference_meter.tolist()):
            if r >= 0:
                self.enterprises[e].ring = deque(maxlen=ring)
                self.enterprises[e].ref_interval = self.meters[r].interval
        self.ref_meter = {topo.enterprise_reference_meter[e]: e
                          for e in range(index.n_enterprises)
                          if topo.enterprise_reference_meter[e] >= 0}
        self.stops: dict[int, list[tuple[float, float, int]]] = {}
        for row, (e, start, end) in enumerate(zip(topo.stop_enterprise.tolist(),
                                                  topo.stop_from.tolist(),
                                                  topo.stop_to.tolist(), strict=True)):
            self.stops.setdefault(e, []).append((start, end, row))
        self.stop_to = topo.stop_to.tolist()
        self.t0: float | None = None
        """Event time at which load-histogram weights are 1: the first judged meter sample."""

        self.interlocks = [
            _Interlock(*row) for row in zip(
                topo.interlock_kind.tolist(), topo.interlock_power_point.tolist(),
                topo.interlock_power_on_kw.tolist(), topo.interlock_guard_point.tolist(),
                topo.interlock_guard_limit.tolist(), topo.interlock_other_point.tolist(),
                topo.interlock_other_limit.tolist(), strict=True)]
        self.latest: dict[int, list[float]] = {}
        """Interlock-watched point -> [ts, value] of its latest usable sample."""
        for rule in self.interlocks:
            for q in (rule.power, rule.guard, rule.other):
                if q >= 0:
                    self.latest[q] = [-math.inf, NAN]
        self.stale_s = [p.interlock_stale_factor * t for t in point_interval]
        self.suspects: dict[int, _Suspect] = {}

    # -- entry points --------------------------------------------------------------------

    def process(self, batch: SampleBatch, sparks: list[tuple[int, float]]
                ) -> dict[str, list[Row]]:
        out: dict[str, list[Row]] = {rule: [] for rule in RULES}
        rows = [r for r in zip(batch.point.tolist(), batch.ts.tolist(), batch.value.tolist(),
                               batch.quality.tolist(), strict=True) if not math.isnan(r[1])]
        rows.sort(key=lambda r: (r[1], r[0]))  # stable: the first arrival of a tie first
        back: dict[_Device, tuple[int, float]] = {}
        for q, t, v, quality in rows:
            self._seen(self.point_device[q], t, back)
            if not (math.isfinite(t) and math.isfinite(v)):
                continue
            if quality <= 1 and q in self.latest:
                self._interlock_sample(q, t, v)
            if quality != 0:
                continue
            self._threshold(q, t, v, out["threshold"])
        for d, t in zip(batch.heartbeat_device.tolist(), batch.heartbeat_ts.tolist(),
                        strict=True):
            if not math.isnan(t):
                self._seen(d, t, back)
        # A silent device clears with its newest activity of the batch, if that is newer
        # than the instant its silence was declared (older data is backfill).
        for device, (d, t) in back.items():
            if t > device.silent_at:
                device.silent, device.silent_at = False, NAN
                out["silence"].append((d, t, t, 0, NAN, NAN))
        out["silence"].sort(key=lambda r: (r[1], r[0]))
        metered = np.flatnonzero(self._meter_points[batch.point])
        self._meters(self._plant_cadence.add(batch.samples_at(metered)), out)
        ruled = np.flatnonzero(self._rate_ruled[batch.point])
        self._rates(self._rate_cadence.add(batch.samples_at(ruled), clock=batch),
                    out["rate_of_change"])
        judged = np.flatnonzero(self._deviation_rows[batch.point])
        self._deviations(self._deviation_cadence.add(batch.samples_at(judged), clock=batch),
                         out["deviation"])
        self._sparks(sparks, out["event_burst"])
        if self._tamper is not None:
            out["tamper"] = self._tamper.update(batch)
            self._observe_tamper(out["tamper"])
        return out

    def sweep(self, now: float) -> dict[str, list[Row]]:
        """One sweep instant (finite: a grid instant), rules in the pipeline's order."""
        out: dict[str, list[Row]] = {rule: [] for rule in RULES}
        self._meters(self._plant_cadence.due(now), out)
        self._silence_sweep(now, out["silence"])
        self._hidden_sweep(now, out["hidden_operation"])
        self._interlock_sweep(now, out["interlock_violation"])
        self._burst_sweep(now, out["event_burst"])
        self._rates(self._rate_cadence.due(now), out["rate_of_change"])
        self._deviations(self._deviation_cadence.due(now), out["deviation"])
        self._site_sweep(now, out["fake_offline_site"])
        if self._tamper is not None:
            out["tamper"] = self._tamper.sweep(now)
            self._observe_tamper(out["tamper"])
            self._suspect_sweep(now, out["fake_offline"])
        return out

    def drain(self) -> dict[str, list[Row]]:
        """The end of a recording: what the bulk-judged rules hold is judged, in the
        order ``Pipeline.drain`` judges it; no sweep."""
        out: dict[str, list[Row]] = {rule: [] for rule in RULES}
        self._meters(self._plant_cadence.release(), out)
        self._rates(self._rate_cadence.release(), out["rate_of_change"])
        self._deviations(self._deviation_cadence.release(), out["deviation"])
        if self._tamper is not None:
            out["tamper"] = self._tamper.judge_held()
            self._observe_tamper(out["tamper"])
        return out

    # -- threshold -----------------------------------------------------------------------

    def _threshold(self, q: int, t: float, v: float, out: list[Row]) -> None:
        s = self.thresholds[q]
        if t <= s.last_ts:
            return
        s.last_ts = t
        was_any = any(s.active)
        code = 0
        for b in (3, 2, 1, 0):  # lowest priority first: a more important band overwrites
            band_code, direction = _BANDS[b]
            limit = s.limits[b]
            if direction > 0:
                enter, leave = v > limit, v < limit - s.deadband
            else:
                enter, leave = v < limit, v > limit + s.deadband
            was = s.active[b]
            now = True if enter else False if leave else was
            s.active[b] = now
            if now and not was:
                s.run_start[b] = t
            if not now:
                s.run_start[b] = NAN
            if now and t - s.run_start[b] >= s.on_delay:
                code = band_code
        is_any = any(s.active)
        if is_any and not was_any:
            s.excursion = t
        if not is_any:
            s.excursion = NAN
        if code != s.code:
            s.code = code
            band = [c for c, _ in _BANDS].index(code) if code else -1
            out.append((q, t, s.excursion if code else t, code, v,
                        s.limits[band] if code else NAN))

    # -- bulk-judged rules: what their cadence released, in (ts, point) order ----------

    def _meters(self, batch: SampleBatch | None, out: dict[str, list[Row]]) -> None:
        if batch is None:
            return
        for q, t, v, _ in _usable_rows(batch):
            meter = self.meter_of_point.get(q)
            if meter is not None:
                self._meter_sample(meter, t, v, out)

    # -- rate of change ------------------------------------------------------------------

    def _rates(self, batch: SampleBatch | None, out: list[Row]) -> None:
        """The rate rule over a batch its cadence released, in (ts, point) order."""
        if batch is None:
            return
        for q, t, v, _ in _usable_rows(batch):
            self._rate(q, t, v, out)

    def _deviations(self, batch: SampleBatch | None, out: list[Row]) -> None:
        """The deviation rule is restated in :mod:`bench.reference_deviation` (one
        sample at a time, gate samples first at a tie)."""
        if batch is not None:
            out.extend(self._deviation.update(batch))

    def _rate(self, q: int, t: float, v: float, out: list[Row]) -> None:
        s, p = self.rates[q], self.p
        if t <= s.last_ts:
            return
        s.last_ts = t
        # The window: this sample and the earlier ones kept, inside (t - window, t].
        previous = [(tj, vj) for tj, vj in s.history if tj > t - p.rate_window_s]
        s.history.append((t, v))  # after reading: the window may hold ``capacity``
        sum_t = sum_v = sum_tt = sum_tv = 0.0
        for tj, vj in reversed(previous):  # newest first, centred on this sample
            dt, dv = tj - t, vj - v
            sum_t += dt
            sum_v += dv
            sum_tt += dt * dt
            sum_tv += dt * dv
        n = float(len(previous) + 1)
        numerator = n * sum_tv - sum_t * sum_v
        denominator = n * sum_tt - sum_t * sum_t
        slope = _divide(60.0 * numerator, denominator)
        span = t - previous[0][0] if previous else 0.0
        if not (n >= p.rate_min_samples and span >= p.rate_min_span_s
                and not math.isnan(slope)):
            return  # no verdict: neither the raw state nor the alarm moves
        if slope > s.limit:
            if not s.active:
                s.active, s.run_start = True, t
        elif slope < s.limit * p.rate_clear_ratio:
            s.active, s.run_start = False, NAN
        code = int(s.active and t - s.run_start >= p.rate_on_delay_s)
        if code != s.code:
            s.code = code
            out.append((q, t, s.run_start if code else t, code, slope,
                        s.limit if code else NAN))

    # -- silence -------------------------------------------------------------------------

    def _seen(self, d: int, t: float, back: dict[_Device, tuple[int, float]]) -> None:
        device = self.devices[d]
        device.last_seen = t if math.isnan(device.last_seen) else max(device.last_seen, t)
        if device.silent:
            newest = back.get(device, (d, -math.inf))[1]
            back[device] = (d, max(newest, t))

    def _silence_sweep(self, now: float, out: list[Row]) -> None:
        if math.isnan(self.watch_start):
            self.watch_start = now
        for d, device in enumerate(self.devices):
            seen = self.watch_start if math.isnan(device.last_seen) else device.last_seen
            if not device.silent and now - seen > device.timeout:
                device.silent, device.silent_at = True, now
                out.append((d, now, seen, 1, NAN, device.timeout))

    # -- spark bursts ----------------------------------------------------------------------

    def _sparks(self, sparks: list[tuple[int, float]], out: list[Row]) -> None:
        p = self.p
        for d, t in sorted((e for e in sparks if math.isfinite(e[1])), key=lambda e: e[1]):
            device = self.devices[d]
            if t <= device.burst_last:
                continue  # late or repeated
            device.burst_last = t
            device.burst.append(t)
            oldest = device.burst[0]
            full = len(device.burst) == p.burst_min_events and oldest > t - p.burst_window_s
            if full and not device.burst_active:
                device.burst_active = True
                count = float(p.burst_min_events)
                out.append((d, t, oldest, 1, count, count))
        out.sort(key=lambda r: (r[1], r[0]))

    def _burst_sweep(self, now: float, out: list[Row]) -> None:
        for d, device in enumerate(self.devices):
            if device.burst_active and now - device.burst_last >= self.p.burst_clear_after_s:
                device.burst_active = False
                device.burst.clear()
                out.append((d, now, device.burst_last, 0, NAN, NAN))

    # -- interlocks ------------------------------------------------------------------------

    def _interlock_sample(self, q: int, t: float, v: float) -> None:
        held = self.latest[q]
        if t > held[0]:
            held[0], held[1] = t, v

    def _interlock_sweep(self, now: float, out: list[Row]) -> None:
        p = self.p
        for r, rule in enumerate(self.interlocks):
            (power_ts, kw), (guard_ts, g) = self.latest[rule.power], self.latest[rule.guard]
            other_ts, ov = self.latest[rule.other] if rule.other >= 0 else (math.inf, NAN)
            fresh = (now - power_ts <= self.stale_s[rule.power]
                     and now - guard_ts <= self.stale_s[rule.guard]
                     and (rule.other < 0 or now - other_ts <= self.stale_s[rule.other]))
            slack = 1.0 + p.interlock_deadband if rule.active else 1.0
            shortfall = (g - ov) / (max(g, 1e-9) if not math.isnan(g) else NAN)
            if rule.kind == INTERLOCK_FAN:
                guard_bad = g < rule.guard_limit
                seen_at = guard_ts
            elif rule.kind == INTERLOCK_COOLING:
                guard_bad = g < rule.guard_limit * slack or (
                    rule.other >= 0 and ov < rule.other_limit * slack)
                seen_at = guard_ts
            elif rule.kind == INTERLOCK_LEAK:
                flowing = 0.0 if math.isnan(rule.guard_limit) else max(rule.guard_limit, 0.0)
                guard_bad = g > flowing and shortfall > rule.other_limit / slack
                seen_at = max(guard_ts, other_ts)
            else:
                guard_bad, seen_at = False, guard_ts
            power_on = kw > rule.on_kw
            rule.guard_since = _since(guard_bad, rule.guard_since, seen_at)
            rule.power_since = _since(power_on, rule.power_since, power_ts)
            violated = guard_bad and power_on
            since = max(rule.guard_since, rule.power_since)
            leak = rule.kind == INTERLOCK_LEAK
            if fresh and violated and not rule.active and now - since >= p.interlock_on_delay_s:
                rule.active = True
                out.append((r, now, since, 1, shortfall if leak else g,
                            rule.other_limit if leak else rule.guard_limit))
            elif fresh and not violated and rule.active:
                rule.active = False
                out.append((r, now, now, 0, shortfall if leak else g, NAN))

    # -- plant state, hidden operation -------------------------------------------------------

    def _bin(self, x: float) -> int:
        p = self.p
        ratio = min(max(x, 0.0), p.plant_x_max) / p.plant_x_max
        return min(int(math.sqrt(ratio) * p.plant_bins), p.plant_bins - 1)

    def _centre(self, b: int) -> float:
        c = (b + 0.5) / self.p.plant_bins
        return c * c * self.p.plant_x_max

    def _meter_sample(self, meter: _Meter, t: float, kw: float,
                      out: dict[str, list[Row]]) -> None:
        p = self.p
        if t <= meter.last_ts:
            return
        meter.last_ts = t
        if self.t0 is None:
            self.t0 = t
        hour = math.floor(t / 3600.0)
        if meter.hour is None or hour > meter.hour:  # refresh floor and level hourly
            meter.hour = hour
            cum = list(accumulate(meter.counts))
            low = self._centre(next(i for i, c in enumerate(cum)
                                    if c >= p.plant_low_quantile * cum[-1]))
            high = self._centre(next(i for i, c in enumerate(cum)
                                     if c >= p.plant_high_quantile * cum[-1]))
            meter.floor = min(low, 0.5 * high)
            meter.level = max(high, meter.floor + p.plant_min_span)
        load = max(kw, 0.0)
        x = load / meter.scale
        u = (x - meter.floor) / (meter.level - meter.floor)
        producing = (True if u >= p.plant_production_enter
                     else False if u < p.plant_production_leave
                     else meter.state == PRODUCTION)
        code = PRODUCTION if producing else STANDBY if u >= p.plant_standby_enter else OFF
        meter.counts[self._bin(x)] += math.exp2((t - self.t0) / p.plant_half_life_s)
        level_kw = meter.level * meter.scale
        if code != meter.state:
            out["plant_state"].append((meter.row, t, t, code, load, level_kw))
        meter.state = code
        if code == PRODUCTION:
            meter.last_production = max(meter.last_production, t)
        enterprise = self.enterprises[meter.enterprise]
        if enterprise.ring is not None and meter.row in self.ref_meter:
            enterprise.ring.append((t, code))
        self._hidden(meter, t, load, u, code, meter.floor * meter.scale,
                     out["hidden_operation"])

    def _stop_at(self, enterprise: int, t: float) -> int:
        for start, end, row in self.stops.get(enterprise, ()):
            if start <= t < end:
                return row
        return -1

    def _hidden(self, meter: _Meter, t: float, load: float, u: float, state: int,
                floor_kw: float, out: list[Row]) -> None:
        p = self.p
        gap = t - meter.h_last_ts
        dt_h = (min(gap, 2 * meter.interval) if math.isfinite(gap) else meter.interval) / 3600.0
        meter.h_last_ts = t
        stop = self._stop_at(meter.enterprise, t)
        moved = meter.active and stop != meter.stop  # left its declared stop
        if moved:
            self._meter_event(meter, t, False, t, NAN, out)
        if stop < 0 or moved:
            meter.reset()
        if stop < 0:
            return
        meter.stop = stop
        if state == PRODUCTION:
            meter.run += 1
            if meter.run == 1:
                meter.run_start = t
        else:
            meter.run, meter.run_start = 0, NAN
        step = (u - p.hidden_cusum_allowance) * dt_h if math.isfinite(u) else 0.0
        meter.cusum = max(0.0, meter.cusum + step)
        candidate = meter.run > 0 or meter.cusum > 0 or meter.active
        if candidate and math.isnan(meter.episode_start):
            meter.episode_start = t
        excess = max(load - floor_kw, 0.0) * dt_h
        meter.excess_kwh = meter.excess_kwh + excess if candidate else 0.0
        run_long = (meter.run >= p.hidden_min_intervals
                    and t - meter.run_start + meter.interval >= p.hidden_min_run_s)
        fire = not meter.active and (run_long or meter.cusum >= p.hidden_cusum_limit)
        if fire:
            meter.active = True
            self._meter_event(meter, t, True, meter.episode_start, meter.excess_kwh, out)
        if meter.active and not fire and u < p.hidden_clear_below:  # low load: count it
            meter.low_since = t if math.isnan(meter.low_since) else min(meter.low_since, t)
        else:
            meter.low_since = NAN
        if meter.active and t - meter.low_since + meter.interval >= p.hidden_clear_after_s:
            self._meter_event(meter, t, False, t, NAN, out)
            meter.reset()
        if not candidate:
            meter.episode_start = NAN

    def _meter_event(self, meter: _Meter, t: float, on: bool, since: float, excess: float,
                     out: list[Row]) -> None:
        """A meter's episode turns on or off; the enterprise alert follows the first on
        and the last off."""
        enterprise = self.enterprises[meter.enterprise]
        before = enterprise.hidden_meters
        enterprise.hidden_meters = after = max(0, before + (1 if on else -1))
        if before == 0 and after > 0:
            out.append((meter.enterprise, t, since, 1, excess, float(meter.row)))
        elif before > 0 and after == 0:
            out.append((meter.enterprise, t, t, 0, NAN, NAN))

    def _hidden_sweep(self, now: float, out: list[Row]) -> None:
        """Episodes end with their declared stop."""
        ending = sorted((self.stop_to[m.stop], m.enterprise, m.row, m) for m in self.meters
                        if m.active and m.stop >= 0 and self.stop_to[m.stop] <= now)
        for at, _, _, meter in ending:
            meter.reset()
            self._meter_event(meter, at, False, at, NAN, out)
        out.sort(key=lambda r: r[1])

    # -- offline faking ----------------------------------------------------------------------

    def _site_sweep(self, now: float, out: list[Row]) -> None:
        """Site silent while its reference meter shows production throughout."""
        p = self.p
        for e, site in enumerate(self.enterprises):
            all_silent = bool(site.monitoring) and all(d.silent for d in site.monitoring)
            if not (all_silent or site.site_active):
                continue
            start = max(self.watch_start if math.isnan(d.last_seen) else d.last_seen
                        for d in site.monitoring)
            inside = [state for ts, state in site.ring or ()
                      if ts - site.ref_interval >= start - p.fake_skew_s]
            running = bool(inside) and all(s == PRODUCTION for s in inside)
            stopped = bool(inside) and not running
            if all_silent and running and not site.site_active:
                if now - start >= p.fake_on_delay_s:
                    site.site_active = True
                    out.append((e, now, start, 1, now - start, p.fake_on_delay_s))
            elif site.site_active and (not all_silent or stopped):
                site.site_active = False
                out.append((e, now, now, 0, NAN, NAN))

    def _observe_tamper(self, rows: list[Row]) -> None:
        for q, _, since, code, value, _ in rows:
            suspect = self.suspects.setdefault(q, _Suspect())
            suspect.code, suspect.value = code, value
            suspect.since = since if code > 0 else NAN

    def _suspect_sweep(self, now: float, out: list[Row]) -> None:
        """Fake data while the enterprise's meters show production: some meter's latest
        reading, or one within the production memory before ``now``."""
        memory = self.p.fake_production_memory_s
        for q in sorted(self.suspects):
            s = self.suspects[q]
            producing = any(m.state == PRODUCTION or now - m.last_production <= memory
                            for m in self.enterprises[self.point_enterprise[q]].meters)
            want = s.code > 0 and producing
            if want and not s.active:
                s.active = True
                since = now if math.isnan(s.since) else min(s.since, now)
                out.append((q, now, since, s.code + 1, s.value, NAN))
            elif s.active and not want:
                s.active = False
                out.append((q, now, now, 0, NAN, NAN))


# -- helpers ---------------------------------------------------------------------------


def _since(holds: bool, held: float, sample_ts: float) -> float:
    """Start of a condition's current run: kept while it holds, NaN once it stops."""
    if not holds:
        return NAN
    return sample_ts if math.isnan(held) else held


def _divide(numerator: float, denominator: float) -> float:
    """IEEE division, as numpy does it (Python raises on a zero denominator)."""
    if denominator != 0.0:
        return numerator / denominator
    if numerator == 0.0 or math.isnan(numerator):
        return NAN
    return math.copysign(math.inf, numerator) * math.copysign(1.0, denominator)


def _rate_capacity(intervals: list[float], window_s: float) -> int:
    """Samples per ruled point: the pipeline's ``_rate_capacity`` (16..512)."""
    if not intervals:
        return 16
    return min(max(math.ceil(window_s / max(min(intervals), 1e-3)) + 2, 16), 512)


def _meter_ring(intervals: list[float], span_s: float) -> int:
    """Readings per reference meter: the pipeline's ``_meter_ring`` (24..1024)."""
    if not intervals:
        return 24
    return min(max(math.ceil(span_s / max(min(intervals), 1.0)), 24), 1024)


def _usable_rows(batch: SampleBatch) -> list[tuple[int, float, float, int]]:
    """Finite rows of normal quality in (ts, point) order, ties in arrival order."""
    return sorted((r for r in zip(batch.point.tolist(), batch.ts.tolist(),
                                  batch.value.tolist(), batch.quality.tolist(), strict=True)
                   if math.isfinite(r[1]) and math.isfinite(r[2]) and r[3] == 0),
                  key=lambda r: (r[1], r[0]))


class _TamperAdapter:
    """The test reference's rows with its -999.0 placeholders back to NaN, fed on the
    detector's cadence (:class:`~detectors.cadence.Cadence`, ``judge_every_s``), so
    rows leave at the same steps; the reference itself judges whatever it is given."""

    def __init__(self, reference: Any, judge_every_s: float, close_after_s: float) -> None:
        self._reference = reference
        self._cadence = Cadence(judge_every_s)
        self._close_after_s = close_after_s

    def update(self, batch: SampleBatch) -> list[Row]:
        due = self._cadence.add(batch)
        return [] if due is None else [_nan_rows(r) for r in self._reference.update(due)]

    def sweep(self, now: float) -> list[Row]:
        before = now - self._close_after_s
        if any(t <= before for t, _ in self._reference.open.values()):
            held = self._cadence.release()
        else:
            held = self._cadence.due(now)
        rows = [] if held is None else self._reference.update(held)
        rows = sorted(rows + self._reference.sweep(now), key=lambda r: (r[1], r[0]))
        return [_nan_rows(r) for r in rows]

    def judge_held(self) -> list[Row]:
        held = self._cadence.release()
        return [] if held is None else [_nan_rows(r) for r in self._reference.update(held)]


def _nan_rows(row: tuple[Any, ...]) -> Row:
    def clean(x: float) -> float:
        return NAN if x == -999.0 else float(x)

    return (int(row[0]), float(row[1]), float(row[2]), int(row[3]), clean(row[4]),
            clean(row[5]))


def tamper_reference(registry: Registry, topology: SiteTopology | None = None
                     ) -> TamperOracle | None:
    """The record-at-a-time reference of ``tests/detectors/test_tamper_reference.py``
    with :class:`~detectors.tamper.TamperDetector`'s defaults, or None when the tests
    are not importable (run from the repository root)."""
    try:
        module = importlib.import_module("tests.detectors.test_tamper_reference")
    except ImportError:
        return None
    topo = topology or build_topology(registry.spec, registry.index)
    defaults = {name: p.default for name, p in inspect.signature(TamperDetector).parameters.items()
                if p.kind is inspect.Parameter.KEYWORD_ONLY and name != "n_devices"}
    make: Callable[..., Any] = module.Reference
    reference = make(registry.index.point_device.tolist(),
                     topo.point_tamper_watched.tolist(), topo.point_clone_group.tolist(),
                     defaults)
    return _TamperAdapter(reference, defaults["judge_every_s"], defaults["close_after_s"])
