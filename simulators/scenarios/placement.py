"""Choosing each scenario's window on the site's real production timeline.

Windows come from what the site would really do (its shifts, minus declared stops), so
a scenario never lands where its story is impossible, and a 2 h margin keeps scenarios
of one site apart so every label is attributable to exactly one of them.
"""

from __future__ import annotations

import math

import numpy as np

from simulators.scenarios.build import H, Placed, SiteBuild
from simulators.scenarios.catalogue import ScenarioSpec
from simulators.sites.common import (
    BASE_STEP_S,
    BOOL,
    F64,
    day_start,
    iso_weekday,
    local_day,
    merge_intervals,
    shift_intervals,
    subtract_interval,
    window_mask,
)


def place(b: SiteBuild, spec: ScenarioSpec, rng: np.random.Generator) -> Placed | None:
    """A window for ``spec`` clear of the site's other scenarios, or ``None`` if none fits."""
    if spec.needs == "stop":
        return _place_stop(b, spec, rng)
    probe = b.model.plan(b.grid, without_stops(b))
    producing = probe.producing()
    ok = producing if spec.needs != "off" else ~expand_busy(b.grid, producing)
    if spec.needs == "history":
        # A faker replays a day that looked normal: the source hours must be producing.
        ok = ok & (b.grid >= b.start + 86_400.0 + 2 * H) & (
            _days_ago(producing, 1) | _days_ago(producing, 7))
    window = _find(b, ok, spec.duration_s, rng)
    return None if window is None else Placed(spec, *window)


def _days_ago(mask: BOOL, days: int) -> BOOL:
    """``mask`` as it was ``days`` earlier on the base grid (False before the start)."""
    steps = int(days * 86_400.0 / BASE_STEP_S)
    out = np.zeros_like(mask)
    if steps < mask.size:
        out[steps:] = mask[: mask.size - steps]
    return out


def expand_busy(grid: F64, mask: BOOL, pad_s: float = 2 * H) -> BOOL:
    """Mask widened by ``pad_s`` both sides (keeps plant-off windows clear of fan lag)."""
    steps = int(pad_s / BASE_STEP_S)
    c = np.concatenate(([0], np.cumsum(mask)))
    idx = np.arange(mask.size)
    lo, hi = np.clip(idx - steps, 0, mask.size), np.clip(idx + steps + 1, 0, mask.size)
    return np.asarray((c[hi] - c[lo]) > 0)


def without_stops(b: SiteBuild) -> list[tuple[F64, F64]]:
    """The site's work with every declared stop honoured (what an honest site does)."""
    work = b.work
    for s, e, _ in b.declared:
        work = [subtract_interval(ws, we, s, e) for ws, we in work]
    return work


def _find(b: SiteBuild, ok: BOOL, duration: tuple[float, float],
          rng: np.random.Generator) -> tuple[float, float] | None:
    """A random free run of ``ok``; shrinks the drawn duration (down to half the minimum)
    rather than give up when the timeline is crowded."""
    grid = b.grid
    free = ok & (grid >= b.start + 2 * H) & (grid < b.end - H)
    for s, e in b.busy:
        free &= ~window_mask(grid, s - 2 * H, e + 2 * H)
    c = np.concatenate(([0], np.cumsum(free)))
    dur = rng.uniform(*duration)
    while dur >= 0.5 * duration[0]:
        k = max(2, math.ceil(dur / BASE_STEP_S))
        if k < c.size:
            starts = np.flatnonzero((c[k:] - c[:-k]) == k)
            if starts.size:
                i = int(rng.choice(starts))
                return float(grid[i]), float(grid[i]) + k * BASE_STEP_S
        dur *= 0.7
    return None


def _place_stop(b: SiteBuild, spec: ScenarioSpec, rng: np.random.Generator) -> Placed | None:
    """A declared stop (day aligned, 1-4 days) holding the hidden or maintenance window."""
    first, last = int(local_day(b.start)), int(local_day(b.end - 1.0))
    for _ in range(30):
        d = int(rng.integers(first, last + 1))
        s = max(day_start(d), b.start + 2 * H)
        shortest = 2 if spec.name.endswith("night_only") else 1
        e = min(day_start(d + int(rng.integers(shortest, 5))), b.end)
        if e - s < 12 * H or any(s < be + 2 * H and bs - 2 * H < e for bs, be in b.busy):
            continue
        window = _inner_window(b, spec, s, e, rng)
        if window is None:
            continue
        reason = str(rng.choice(["停产整顿", "设备检修停产", "限电停产", "节假日停产"]))
        b.declared.append((s, e, reason))
        b.busy.append((s, e))
        return Placed(spec, window[0][0], window[-1][1], {"windows": window, "stop": (s, e)})
    return None


def _inner_window(b: SiteBuild, spec: ScenarioSpec, s: float, e: float,
                  rng: np.random.Generator) -> list[tuple[float, float]] | None:
    """The hidden-production (or maintenance) intervals inside the stop ``[s, e)``."""
    name = spec.name.split(".")[1]
    days = [d for d in range(int(local_day(s)), int(local_day(e - 1.0)) + 1)
            if day_start(d) >= s - 1.0 and day_start(d + 1) <= e + 1.0]
    if not days:
        return None
    if name == "full":
        work_days = [d for d in days if int(iso_weekday(d)) in b.model.pattern.workdays]
        if not work_days:
            return None
        d0 = int(rng.choice(work_days))
        span = [d0, d0 + 1] if rng.random() < 0.5 and d0 + 1 in work_days else [d0]
        ws, we = shift_intervals(b.model.pattern, day_start(span[0]), day_start(span[-1] + 1),
                                 rng, overtime_p=0.0)
        ws, we = merge_intervals(ws, we, gap=2 * H)
        out = [(max(float(a), s + 600), min(float(z), e - 600)) for a, z in zip(ws, we,
                                                                               strict=True)]
        out = [w for w in out if w[1] - w[0] > H]
        return out or None
    if name == "night_only":
        nights = [d for d in range(days[0] - 1, days[-1] + 1)
                  if day_start(d) + 21.5 * H >= s and day_start(d) + 29.5 * H <= e]
        if not nights:
            return None
        first = int(rng.integers(0, len(nights)))
        count = int(rng.integers(1, 4))
        return [(max(day_start(d) + 21 * H + rng.uniform(-1800, 1800), s + 600),
                 min(day_start(d) + 29 * H + rng.uniform(-1800, 1800), e - 600))
                for d in nights[first:first + count]]
    d = int(rng.choice(days))
    dur = rng.uniform(*spec.duration_s)
    a = day_start(d) + rng.uniform(7.5 * H, max(7.6 * H, 20.0 * H - dur))
    return [(a, min(a + dur, e - 600))]
