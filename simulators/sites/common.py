"""Shared building blocks of the site models: time grid, shifts, weather, noise, series,
and the set-up every site model has in common.

Everything here works on whole numpy arrays of event time (epoch seconds, float64) so a
fortnight of a site is generated in a few array operations.  Sites live in
Asia/Shanghai (UTC+8, no daylight saving), so local time is a fixed offset.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
from numpy.typing import NDArray
from scipy.signal import lfilter  # type: ignore[import-untyped]

F64 = NDArray[np.float64]
BOOL = NDArray[np.bool_]

LOCAL_OFFSET_S = 8 * 3600
"""Asia/Shanghai is UTC+8 all year."""

BASE_STEP_S = 30.0
"""Resolution of the physical state every device is sampled from, seconds."""


# -- time -----------------------------------------------------------------------------

def local_hour(ts: F64) -> F64:
    """Hour of the local day, 0 <= h < 24 (fractional)."""
    return np.asarray(((ts + LOCAL_OFFSET_S) % 86_400.0) / 3600.0, dtype=np.float64)


def local_day(ts: F64 | float) -> NDArray[np.int64]:
    """Local calendar day number (days since 1970-01-01 local)."""
    return np.floor((np.asarray(ts) + LOCAL_OFFSET_S) / 86_400.0).astype(np.int64)


def iso_weekday(day: NDArray[np.int64] | int) -> NDArray[np.int64]:
    """ISO weekday (1 = Monday) of a local day number; 1970-01-01 was a Thursday."""
    return np.asarray((np.asarray(day) + 3) % 7 + 1, dtype=np.int64)


def day_start(day: int) -> float:
    """Epoch seconds of local midnight starting ``day``."""
    return float(day) * 86_400.0 - LOCAL_OFFSET_S


def rfc3339_seconds(ts: NDArray[np.int64]) -> list[str]:
    """Whole-second epoch times as ``2026-11-02T08:00:00+08:00`` strings (vectorised)."""
    local = (ts + LOCAL_OFFSET_S).astype("datetime64[s]")
    text = np.char.add(np.datetime_as_string(local, unit="s"), "+08:00")
    return [str(s) for s in text.tolist()]


# -- shifts and intervals ---------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class ShiftPattern:
    """A declared working pattern: ISO workdays and shifts as (start, end) local hours.

    A shift whose end is not after its start runs past midnight into the next day
    (``20:00-08:00``); it belongs to the workday it starts on.
    """

    name: str
    workdays: tuple[int, ...]
    shifts: tuple[tuple[float, float], ...]

    def hours_text(self) -> list[str]:
        """The registry's ``schedule.hours`` strings."""
        return [f"{_hhmm(a)}-{_hhmm(b)}" for a, b in self.shifts]


SHIFT_PATTERNS: tuple[ShiftPattern, ...] = (
    ShiftPattern("single", (1, 2, 3, 4, 5, 6), ((8.0, 12.0), (13.0, 17.5))),
    ShiftPattern("single_5d", (1, 2, 3, 4, 5), ((7.5, 11.5), (12.5, 17.0))),
    ShiftPattern("long_day", (1, 2, 3, 4, 5, 6), ((8.0, 12.0), (13.0, 20.0))),
    ShiftPattern("double", (1, 2, 3, 4, 5, 6), ((6.0, 14.0), (14.0, 22.0))),
    ShiftPattern("round_clock", (1, 2, 3, 4, 5, 6, 7), ((8.0, 20.0), (20.0, 8.0))),
    ShiftPattern("night_valley", (1, 2, 3, 4, 5, 6), ((22.0, 6.0),)),
)
"""Shift patterns seen at small plants; ``night_valley`` melts on the cheap night tariff
(峰谷电价), common at foundries."""


def _hhmm(hours: float) -> str:
    minutes = round(hours * 60) % (24 * 60)
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def shift_intervals(
    pattern: ShiftPattern, start: float, end: float, rng: np.random.Generator,
    *, jitter_s: float = 600.0, skip_day_p: float = 0.0, overtime_p: float = 0.05,
) -> tuple[F64, F64]:
    """Actual working intervals (epoch s) of one line following ``pattern``.

    Real start and stop drift around the declared hours (normal jitter of ``jitter_s``
    seconds), a line sometimes stays idle a whole workday (``skip_day_p``) and now and
    then works up to two hours overtime (``overtime_p``): legitimate, unlabelled noise.
    """
    first = int(local_day(start - 86_400.0))
    last = int(local_day(end))
    starts: list[float] = []
    ends: list[float] = []
    for day in range(first, last + 1):
        if int(iso_weekday(day)) not in pattern.workdays or rng.random() < skip_day_p:
            continue
        midnight = day_start(day)
        for a, b in pattern.shifts:
            length = (b - a) % 24.0 or 24.0
            s = midnight + a * 3600.0 + rng.normal(0.0, jitter_s / 2)
            e = midnight + (a + length) * 3600.0 + rng.normal(0.0, jitter_s / 2)
            if rng.random() < overtime_p:
                e += rng.uniform(1800.0, 7200.0)
            starts.append(s)
            ends.append(max(e, s + 600.0))
    s_arr, e_arr = merge_intervals(np.array(starts), np.array(ends))
    keep = (e_arr > start) & (s_arr < end)
    return s_arr[keep], e_arr[keep]


def merge_intervals(starts: F64, ends: F64, gap: float = 0.0) -> tuple[F64, F64]:
    """Sort and merge overlapping intervals (and those closer than ``gap`` seconds)."""
    if starts.size == 0:
        return np.zeros(0), np.zeros(0)
    order = np.argsort(starts, kind="stable")
    s, e = starts[order], ends[order]
    reach = np.maximum.accumulate(e)
    new = np.ones(s.size, dtype=bool)
    new[1:] = s[1:] > reach[:-1] + gap
    group = np.cumsum(new) - 1
    out_s = s[new]
    out_e = np.zeros(out_s.size)
    np.maximum.at(out_e, group, e)
    return out_s, out_e


def intervals_mask(ts: F64, starts: F64, ends: F64) -> BOOL:
    """True where ``ts`` falls in one of the merged, sorted intervals ``[s, e)``."""
    if starts.size == 0:
        return np.zeros(ts.shape, dtype=bool)
    idx = np.searchsorted(starts, ts, side="right") - 1
    inside = idx >= 0
    inside[inside] = ts[inside] < ends[idx[inside]]
    return inside


def window_mask(ts: F64, start: float, end: float) -> BOOL:
    return np.asarray((ts >= start) & (ts < end), dtype=np.bool_)


def expand_mask(mask: BOOL, before_steps: int, after_steps: int) -> BOOL:
    """Dilate a boolean series: true from ``before_steps`` before each run to
    ``after_steps`` after it (the fan runs before and after production)."""
    n = mask.size
    idx = np.flatnonzero(mask)
    if idx.size == 0:
        return mask.copy()
    delta = np.zeros(n + 1, dtype=np.int64)
    np.add.at(delta, np.clip(idx - before_steps, 0, n), 1)
    np.add.at(delta, np.clip(idx + after_steps + 1, 0, n), -1)
    return np.asarray(np.cumsum(delta)[:n] > 0)


# -- weather and noise ---------------------------------------------------------------------

def ambient_temperature(ts: F64, rng: np.random.Generator) -> F64:
    """Outdoor air temperature near the plant, degC.

    North China plain climate: seasonal mean from about -1 degC (mid January) to
    28 degC (mid July), a diurnal swing of 4-6 K peaking at 14:00, and a weather
    anomaly of a few K changing over days.
    """
    doy = ((ts + LOCAL_OFFSET_S) / 86_400.0 + 0.0) % 365.25
    # Day 0 of the epoch is 1 January; the coldest day is about 15 January.
    seasonal = 13.5 - 14.5 * np.cos(2.0 * np.pi * (doy - 15.0) / 365.25)
    amplitude = rng.uniform(4.0, 6.0)
    diurnal = amplitude * np.cos(2.0 * np.pi * (local_hour(ts) - 14.0) / 24.0)
    days = np.arange(-1.0, (ts[-1] - ts[0]) / 86_400.0 + 2.0)
    anomaly = np.interp((ts - ts[0]) / 86_400.0, days, rng.normal(0.0, 2.5, days.size))
    return np.asarray(seasonal + diurnal + anomaly, dtype=np.float64)


def ar1(n: int, sigma: float, tau_steps: float, rng: np.random.Generator) -> F64:
    """Stationary AR(1) noise with standard deviation ``sigma`` and correlation time
    ``tau_steps`` samples: slow process wander rather than white sensor noise."""
    phi = float(np.exp(-1.0 / max(tau_steps, 1e-9)))
    drive = rng.normal(0.0, sigma * np.sqrt(1.0 - phi * phi), n)
    drive[0] = rng.normal(0.0, sigma)
    return np.asarray(lfilter([1.0], [1.0, -phi], drive), dtype=np.float64)


def first_order(x: F64, tau_s: float, step_s: float, y0: float | None = None) -> F64:
    """First-order lag (thermal mass) of ``x`` with time constant ``tau_s`` seconds."""
    a = float(np.exp(-step_s / tau_s))
    start = float(x[0]) if y0 is None else y0
    y, _ = lfilter([1.0 - a], [1.0, -a], x, zi=[a * start])
    return np.asarray(y, dtype=np.float64)


def quantise(x: F64, decimals: int) -> F64:
    """Round to the sensor's resolution (10^-decimals of the unit)."""
    return np.round(x, decimals)


# -- generated data ----------------------------------------------------------------------

@dataclass(slots=True)
class DeviceSeries:
    """One device's samples as columns (struct of arrays), before impairments.

    ``ts`` are the true sampling instants (epoch s).  ``values`` hold physical values in
    the registry units; ``decimals`` the resolution each is rounded to when written.
    ``stopped`` marks samples the device flags ``F`` (HJ 212: equipment stopped) on the
    points named in ``flag_points``: a dust-collector PLC reports ΔP as "stopped" while
    its fan is off instead of pretending a ΔP of 0 Pa is a low alarm.
    ``send`` is false for samples that never leave the site (outages, faking).
    ``backfill_at`` (NaN = live) is when a store-and-forward gateway re-sent a sample.
    Impairments fill ``dropped`` (lost in transit), ``skew_s`` (device clock error,
    seconds, constant plus drift per day in ``drift_s_per_day``) and ``latency_s``
    (publish-to-arrival delay per sample, seconds).
    """

    device_id: str
    topic: str
    interval_s: float
    ts: F64
    values: dict[str, F64]
    decimals: dict[str, int]
    flag_points: tuple[str, ...] = ()
    stopped: BOOL = field(default_factory=lambda: np.zeros(0, dtype=bool))
    send: BOOL = field(default_factory=lambda: np.zeros(0, dtype=bool))
    backfill_at: F64 = field(default_factory=lambda: np.zeros(0))
    dropped: BOOL = field(default_factory=lambda: np.zeros(0, dtype=bool))
    skew_s: float = 0.0
    drift_s_per_day: float = 0.0
    latency_s: F64 = field(default_factory=lambda: np.zeros(0))

    def __post_init__(self) -> None:
        n = self.ts.size
        if self.stopped.size != n:
            self.stopped = np.zeros(n, dtype=bool)
        if self.send.size != n:
            self.send = np.ones(n, dtype=bool)
        if self.backfill_at.size != n:
            self.backfill_at = np.full(n, np.nan)
        if self.dropped.size != n:
            self.dropped = np.zeros(n, dtype=bool)
        if self.latency_s.size != n:
            self.latency_s = np.zeros(n)

    def reported_ts(self) -> NDArray[np.int64]:
        """The whole-second ``ts`` the device writes: its skewed clock."""
        drift = self.drift_s_per_day * (self.ts - self.ts[0]) / 86_400.0
        out: NDArray[np.int64] = np.round(self.ts + self.skew_s + drift).astype(np.int64)
        return out

    def arrival(self) -> F64:
        """When each sample reaches the broker (epoch s): live or backfilled."""
        live = self.ts + self.latency_s
        return np.asarray(np.where(np.isnan(self.backfill_at), live, self.backfill_at))

    def delivered(self) -> BOOL:
        return np.asarray(self.send & ~self.dropped, dtype=np.bool_)


@dataclass(slots=True)
class EventSeries:
    """Discrete events of one device (``event`` topic): spark detections."""

    device_id: str
    ts: F64
    type: str
    zone: list[str]
    value: F64


@dataclass(slots=True)
class StatusSeries:
    """``status`` messages (the gateway's MQTT will and its return) of one device."""

    device_id: str
    ts: F64
    online: BOOL
    reason: list[str]


def sample_state(state_ts: F64, state: F64, ts: F64) -> F64:
    """Value of a base-grid state at sample times (previous base sample)."""
    idx = np.clip(np.searchsorted(state_ts, ts, side="right") - 1, 0, state_ts.size - 1)
    return state[idx]


def interval_mean(state_ts: F64, state: F64, ends: F64, width_s: float) -> F64:
    """Mean of a base-grid state over ``(end - width, end]`` for each end time, the
    way a utility meter averages power over its 15-minute interval."""
    step = state_ts[1] - state_ts[0]
    csum = np.concatenate(([0.0], np.cumsum(state) * step))
    hi = np.clip(np.searchsorted(state_ts, ends, side="left"), 0, state.size)
    lo = np.clip(np.searchsorted(state_ts, ends - width_s, side="left"), 0, state.size)
    span = np.maximum((hi - lo) * step, step)
    return np.asarray((csum[hi] - csum[lo]) / span, dtype=np.float64)


def energy_counter(state_ts: F64, power_kw: F64, ts: F64, start_kwh: float) -> F64:
    """Cumulative energy register (kWh) at ``ts`` from base-grid power (kW)."""
    step = state_ts[1] - state_ts[0]
    csum = np.concatenate(([0.0], np.cumsum(power_kw) * step / 3600.0))
    idx = np.clip(np.searchsorted(state_ts, ts, side="left"), 0, power_kw.size)
    return np.asarray(start_kwh + csum[idx], dtype=np.float64)


def subtract_interval(starts: F64, ends: F64, cut_s: float, cut_e: float) -> tuple[F64, F64]:
    """Remove ``[cut_s, cut_e)`` from merged intervals (a declared stop, an outage)."""
    left_s, left_e = starts, np.minimum(ends, cut_s)
    right_s, right_e = np.maximum(starts, cut_e), ends
    s = np.concatenate((left_s, right_s))
    e = np.concatenate((left_e, right_e))
    keep = e > s
    return merge_intervals(s[keep], e[keep])


def add_interval(starts: F64, ends: F64, add_s: float, add_e: float) -> tuple[F64, F64]:
    """Union of merged intervals with ``[add_s, add_e)``."""
    return merge_intervals(np.append(starts, add_s), np.append(ends, add_e))


# -- what every site model shares ----------------------------------------------------------

METER_POINTS: dict[str, dict[str, str]] = {"p_kw": {"kind": "power", "unit": "kW"},
                                           "e_kwh": {"kind": "energy", "unit": "kWh"}}
"""Registry points of every energy meter (line, furnace, the utility's total)."""


@dataclass(frozen=True, slots=True)
class SiteIds:
    """Device ids every site has.  The total meter is the utility's, off the site's
    gateway, so scenarios and impairments must be able to tell it apart."""

    eid: str

    @property
    def total(self) -> str:
        return f"{self.eid}-M-TOTAL"


class SiteBase:
    """Set-up both industries share: identity, declared shift pattern, per-line work.

    The pattern is drawn when a subclass calls ``__init__``, so where it calls it fixes
    the order of its draws (and with it every seeded site): move the call, change data.
    """

    industry: ClassVar[str]
    n_lines: int

    def __init__(self, eid: str, rng: np.random.Generator, patterns: Sequence[int]) -> None:
        """``patterns``: indexes into :data:`SHIFT_PATTERNS`, repeated to weight them."""
        self.eid = eid
        self.pattern: ShiftPattern = SHIFT_PATTERNS[int(rng.choice(patterns))]

    def work_intervals(self, start: float, end: float,
                       rng: np.random.Generator) -> list[tuple[F64, F64]]:
        """Declared-schedule working intervals of each line; lines jitter and skip days
        independently, as separate crews do."""
        return [shift_intervals(self.pattern, start, end, rng, skip_day_p=0.05)
                for _ in range(self.n_lines)]

    def draw_registers(self, rng: np.random.Generator, low: float, high: float) -> F64:
        """Starting energy registers (kWh), so counters look mid-life rather than new:
        one per line meter, then the total meter's."""
        return np.round(rng.uniform(low, high, self.n_lines + 1), 1)


def total_meter(device_id: str, ts: F64, kw: F64, start_kwh: float) -> DeviceSeries:
    """The utility's 15-minute meter: the mean power of each interval, stamped at its
    end, as a utility feed reports it (no noise: it is the billing value)."""
    first = math.ceil((ts[0] + 900.0) / 900.0) * 900.0
    at = np.arange(first, ts[-1] + BASE_STEP_S, 900.0)
    return DeviceSeries(
        device_id=device_id, topic="meter", interval_s=900.0, ts=at,
        values={"p_kw": interval_mean(ts, kw, at, 900.0),
                "e_kwh": energy_counter(ts, kw, at, start_kwh)},
        decimals={"p_kw": 1, "e_kwh": 1},
    )
