"""The named scenario catalogue and its injection into one site (ground truth included).

Every scenario is seedable through the generator it is given, chooses its own window
on the site's real production timeline (no overlap with the site's other scenarios),
acts at the stage where it physically happens and writes the labels a correct service
should match (CONTRACT.md §3, kinds of §4):

* ``work``: what runs when (hidden production in a declared stop, a power cut);
* ``plan``: process knobs on the 30 s base grid (fan forced off, filter clogging, flow
  loss, ...), so every derived reading stays physically consistent;
* ``data``: what the monitoring system *reports* (silence, frozen or replayed values).

Consequences are labelled honestly: a flow loss that also drives ``temp_out`` over its
``hi`` gets a ``threshold`` label for ``temp_out``, and silent devices get
``device_offline`` labels, so a service that raises them is not charged a false alert.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np

from simulators.labels import Label
from simulators.sites import DeviceSeries, EventSeries, SiteModel, SitePlan, StatusSeries
from simulators.sites.common import (
    BASE_STEP_S,
    BOOL,
    F64,
    add_interval,
    day_start,
    iso_weekday,
    local_day,
    merge_intervals,
    shift_intervals,
    subtract_interval,
    window_mask,
)
from simulators.sites.dust import DustPlan, DustSite
from simulators.sites.metallurgy import MetalSite

BOTH = ("dust", "metallurgy")
DUST = ("dust",)
METAL = ("metallurgy",)


@dataclass(frozen=True, slots=True)
class ScenarioSpec:
    """A named scenario: the alert ``kind`` its labels carry, the industries it applies
    to, whether it is a hard negative, what window it needs (``stop``: inside a new
    declared stop; ``production``; ``history``: production with a day of data before;
    ``off``: plant idle) and its duration range in seconds."""

    name: str
    kind: str
    industries: tuple[str, ...]
    negative: bool
    needs: str
    duration_s: tuple[float, float]
    doc: str


def _spec(name: str, kind: str, ind: tuple[str, ...], needs: str, dur: tuple[float, float],
          doc: str, negative: bool = False) -> tuple[str, ScenarioSpec]:
    return name, ScenarioSpec(name, kind, ind, negative, needs, dur, doc)


H = 3600.0
SCENARIOS: Mapping[str, ScenarioSpec] = MappingProxyType(dict([
    _spec("hidden_operation.full", "hidden_operation", BOTH, "stop", (4 * H, 12 * H),
          "Full production on 1-2 workdays of a declared stop (明停暗开)."),
    _spec("hidden_operation.partial_line", "hidden_operation", BOTH, "stop", (3 * H, 10 * H),
          "One line (or the furnace at 40-60 %) runs 3-10 h during a declared stop."),
    _spec("hidden_operation.night_only", "hidden_operation", BOTH, "stop", (6 * H, 9 * H),
          "Stopped by day, producing 21:00-05:00 on 1-3 nights (昼停夜开)."),
    _spec("hidden_operation.ramped", "hidden_operation", BOTH, "stop", (6 * H, 12 * H),
          "Load creeps up from 15 % to full over 6-12 h during a declared stop."),
    _spec("fake_offline.silent", "fake_offline", BOTH, "production", (0.5 * H, 4 * H),
          "Every on-site device goes silent while the utility meter shows production."),
    _spec("fake_offline.frozen", "fake_offline", BOTH, "production", (0.5 * H, 4 * H),
          "The collector / cooling device repeats its last values exactly."),
    _spec("fake_offline.replay_day", "fake_offline", BOTH, "history", (1 * H, 4 * H),
          "The device re-sends the exact values of the same hours 1 or 7 days earlier."),
    _spec("fake_offline.replay_noisy", "fake_offline", BOTH, "history", (1 * H, 4 * H),
          "Like replay_day with a 0.5-2 % offset, sensor-level noise and a sample shift."),
    _spec("fake_offline.clone", "fake_offline", METAL, "production", (1 * H, 6 * H),
          "The cooling outlet flow sensor reports the inlet sensor's values exactly."),
    _spec("abnormal.filter_clogging", "threshold", DUST, "production", (1 * H, 4 * H),
          "Bags blind, cleaning stops helping: ΔP climbs above hi/hihi (point dp)."),
    _spec("abnormal.bag_rupture", "threshold", DUST, "production", (0.5 * H, 2 * H),
          "Ruptured bags let air bypass the cake: ΔP falls below lo (point dp)."),
    _spec("abnormal.hopper_temp_rise", "rate_of_change", DUST, "production",
          (0.5 * H, 1.5 * H), "Smouldering dust in the hopper: 2.5-5 K/min for 6-15 min."),
    _spec("abnormal.spark", "abnormal_condition", DUST, "production", (180.0, 1200.0),
          "A burst of 5-25 spark detections in one zone within minutes."),
    _spec("abnormal.fan_off_interlock", "interlock_violation", DUST, "production",
          (600.0, 1.5 * H), "Lines keep running while the collector fan is off."),
    _spec("abnormal.cooling_flow_loss", "interlock_violation", METAL, "production",
          (600.0, 2700.0), "Pump degrades to 25-45 % flow while the furnace is powered."),
    _spec("abnormal.cooling_leak", "interlock_violation", METAL, "production",
          (900.0, 1.5 * H), "12-25 % of coil water lost between inlet and outlet meters."),
    _spec("abnormal.co_high", "threshold", METAL, "production", (600.0, 3000.0),
          "CO near the furnace rises to 35-150 ppm (point co)."),
    _spec("negative.power_outage", "fake_offline", BOTH, "production", (0.5 * H, 3 * H),
          "Grid outage: meter near zero and gateway silent (device_offline positive).",
          negative=True),
    _spec("negative.maintenance_load", "hidden_operation", BOTH, "stop", (2 * H, 8 * H),
          "About 5 % of production load (repairs, welding, lights) in a declared stop.",
          negative=True),
    _spec("negative.steady_flat", "fake_offline", BOTH, "production", (2 * H, 6 * H),
          "A genuinely steady process: readings flat at sensor resolution for hours.",
          negative=True),
    _spec("negative.gateway_outage_plant_off", "fake_offline", BOTH, "off", (1 * H, 10 * H),
          "Gateway silent while the plant is off (device_offline positive).", negative=True),
]))
"""Every scenario by name.  Families: the text before the dot."""


def expand(names: Sequence[str]) -> list[str]:
    """Resolve ``all``, family prefixes (``hidden_operation``, ``negative``) and exact
    names to catalogue names, in catalogue order, without duplicates."""
    chosen: set[str] = set()
    for name in names:
        hits = [n for n in SCENARIOS if name == "all" or n == name or n.split(".")[0] == name]
        if not hits:
            families = sorted({n.split(".")[0] for n in SCENARIOS})
            raise ValueError(f"unknown scenario {name!r}; valid: all, {', '.join(families)}, "
                             f"{', '.join(SCENARIOS)}")
        chosen.update(hits)
    return [n for n in SCENARIOS if n in chosen]


# -- the site being built -----------------------------------------------------------------

@dataclass(slots=True)
class Placed:
    spec: ScenarioSpec
    start: float
    end: float
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class SiteBuild:
    """Everything generated for one site; scenarios and impairments edit it in turn."""

    model: SiteModel
    start: float
    end: float
    grid: F64
    work: list[tuple[F64, F64]]
    declared: list[tuple[float, float, str]] = field(default_factory=list)
    busy: list[tuple[float, float]] = field(default_factory=list)
    placed: list[Placed] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    plan: SitePlan | None = None
    devices: dict[str, DeviceSeries] = field(default_factory=dict)
    events: list[EventSeries] = field(default_factory=list)
    statuses: list[StatusSeries] = field(default_factory=list)
    labels: list[Label] = field(default_factory=list)

    @property
    def eid(self) -> str:
        return self.model.eid

    def on_site(self) -> list[str]:
        """Devices behind the site's gateway (all but the utility total meter)."""
        return [d for d in self.devices if d != self.model.ids.total]

    def watched(self) -> str:
        """The sensor device a faker tampers with: dust collector or coil cooling."""
        m = self.model
        return m.ids.collector if isinstance(m, DustSite) else m.ids.cooling

    def label(self, kind: str, device: str | None, start: float, end: float, scenario: str,
              negative: bool = False, point: str | None = None) -> None:
        self.labels.append(Label(self.eid, device, kind, float(start), float(max(end, start
                                 + 1.0)), scenario, negative, point))

    def limits(self) -> dict[str, dict[str, dict[str, float]]]:
        return {d["id"]: {p: {k: float(v) for k, v in spec.items()
                              if k in ("lo", "lolo", "hi", "hihi")}
                          for p, spec in d["points"].items()}
                for d in self.model.devices()}


def run_site(b: SiteBuild, names: Sequence[str], rng: np.random.Generator,
             sim_rng: np.random.Generator) -> None:
    """Place ``names`` on the site, then generate its data with them injected."""
    for name in sorted(names, key=lambda n: SCENARIOS[n].needs != "stop"):
        spec = SCENARIOS[name]
        placed = _place(b, spec, rng)
        if placed is None:
            b.skipped.append(name)
            continue
        b.placed.append(placed)
        b.busy.append((placed.start, placed.end))
    for s, e, _ in b.declared:
        b.work = [subtract_interval(ws, we, s, e) for ws, we in b.work]
    for p in b.placed:
        _WORK.get(p.spec.name, _nothing)(b, p, rng)
    b.plan = b.model.plan(b.grid, b.work)
    for p in b.placed:
        _PLAN.get(p.spec.name, _nothing)(b, p, rng)
    devices, events = b.model.simulate(b.plan, sim_rng)  # type: ignore[arg-type]
    b.devices, b.events = devices, events
    for p in b.placed:
        _DATA[p.spec.name](b, p, rng)


# -- placement ----------------------------------------------------------------------------

def _place(b: SiteBuild, spec: ScenarioSpec, rng: np.random.Generator) -> Placed | None:
    if spec.needs == "stop":
        return _place_stop(b, spec, rng)
    probe = b.model.plan(b.grid, _without_stops(b))
    producing = probe.producing()
    ok = producing if spec.needs != "off" else ~expand_busy(b.grid, producing)
    if spec.needs == "history":
        ok = ok & (b.grid >= b.start + 86_400.0 + 2 * H)
    window = _find(b, ok, spec.duration_s, rng)
    return None if window is None else Placed(spec, *window)


def expand_busy(grid: F64, mask: BOOL, pad_s: float = 2 * H) -> BOOL:
    """Mask widened by ``pad_s`` both sides (keeps plant-off windows clear of fan lag)."""
    steps = int(pad_s / BASE_STEP_S)
    c = np.concatenate(([0], np.cumsum(mask)))
    idx = np.arange(mask.size)
    lo, hi = np.clip(idx - steps, 0, mask.size), np.clip(idx + steps + 1, 0, mask.size)
    return np.asarray((c[hi] - c[lo]) > 0)


def _without_stops(b: SiteBuild) -> list[tuple[F64, F64]]:
    work = b.work
    for s, e, _ in b.declared:
        work = [subtract_interval(ws, we, s, e) for ws, we in work]
    return work


def _find(b: SiteBuild, ok: BOOL, duration: tuple[float, float],
          rng: np.random.Generator) -> tuple[float, float] | None:
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


# -- helpers ------------------------------------------------------------------------------

def _nothing(b: SiteBuild, p: Placed, rng: np.random.Generator) -> None:
    return None


def _plan_mask(b: SiteBuild, p: Placed) -> BOOL:
    return window_mask(b.grid, p.start, p.end)


def _crossings(b: SiteBuild, device: str, start: float, end: float, scenario: str) -> None:
    """``threshold`` labels for every limit the injected data really crosses."""
    series = b.devices[device]
    inside = window_mask(series.ts, start, end + 2 * H)
    for point, lim in b.limits()[device].items():
        if not lim or point not in series.values:
            continue
        v = np.round(series.values[point], series.decimals[point])
        judged = inside & ~(series.stopped if point in series.flag_points else False)
        out = np.zeros(v.size, bool)
        for key, value in lim.items():
            out |= (v > value) if key.startswith("hi") else (v < value)
        hits = np.flatnonzero(out & judged)
        if hits.size:
            b.label("threshold", device, series.ts[hits[0]],
                    series.ts[hits[-1]] + series.interval_s, scenario, point=point)


def silence_devices(b: SiteBuild, s: float, e: float, scenario: str, reason: str,
                  rng: np.random.Generator) -> None:
    """On-site devices send nothing in ``[s, e)``; the broker publishes their will."""
    for device in b.on_site():
        series = b.devices[device]
        series.send &= ~window_mask(series.ts, s, e)
        if e - s > 3 * series.interval_s:
            b.label("device_offline", device, s, e, scenario)
        will = s + rng.uniform(45.0, 90.0)
        b.statuses.append(StatusSeries(device, np.array([will, e]), np.array([False, True]),
                                       [reason, "reconnected"]))


# -- work stage -----------------------------------------------------------------------------

def _hidden(b: SiteBuild, p: Placed, rng: np.random.Generator) -> None:
    name = p.spec.name.split(".")[1]
    windows: list[tuple[float, float]] = p.extra["windows"]
    lines = range(b.model.n_lines)
    if name == "partial_line" and b.model.n_lines > 1:
        k0 = int(rng.integers(0, b.model.n_lines))
        lines = range(k0, k0 + 1)
    for s, e in windows:
        for k in lines:
            b.work[k] = add_interval(*b.work[k], s, e)
        b.label("hidden_operation", None, s, e, p.spec.name)


def _power_cut(b: SiteBuild, p: Placed, rng: np.random.Generator) -> None:
    restart = 1200.0 + (b.model.lead_s if isinstance(b.model, DustSite) else 0.0)
    b.work = [subtract_interval(ws, we, p.start, p.end + restart) for ws, we in b.work]


_WORK: Mapping[str, Callable[[SiteBuild, Placed, np.random.Generator], None]] = {
    **{n: _hidden for n in SCENARIOS if n.startswith("hidden_operation.")},
    "negative.power_outage": _power_cut,
}


# -- plan stage -----------------------------------------------------------------------------

def _plan_hidden(b: SiteBuild, p: Placed, rng: np.random.Generator) -> None:
    plan = b.plan
    assert plan is not None
    name = p.spec.name.split(".")[1]
    for s, e in p.extra["windows"]:
        m = window_mask(b.grid, s, e)
        if name == "ramped":
            plan.level[:, m] = np.linspace(0.15, 1.0, int(m.sum()))[None, :]
        elif name == "partial_line" and isinstance(b.model, MetalSite):
            plan.level[:, m] = rng.uniform(0.4, 0.6)


def _plan_maintenance(b: SiteBuild, p: Placed, rng: np.random.Generator) -> None:
    assert b.plan is not None
    m = _plan_mask(b, p)
    full = float(np.sum(b.model.line_kw)) if isinstance(b.model, DustSite) else b.model.rated_kw
    work = 0.05 * full * (1.0 + 0.3 * rng.standard_normal(int(m.sum())))
    b.plan.extra_kw[m] += np.clip(work, 0.0, None)
    b.label("hidden_operation", None, p.start, p.end, p.spec.name, negative=True)


def _plan_power(b: SiteBuild, p: Placed, rng: np.random.Generator) -> None:
    assert b.plan is not None
    b.plan.power_ok[_plan_mask(b, p)] = False


def _plan_knob(attr: str, build: Callable[[SiteBuild, Placed, int, np.random.Generator], F64]
               ) -> Callable[[SiteBuild, Placed, np.random.Generator], None]:
    def apply(b: SiteBuild, p: Placed, rng: np.random.Generator) -> None:
        m = _plan_mask(b, p)
        getattr(b.plan, attr)[m] = build(b, p, int(m.sum()), rng)
    return apply


def _clog(b: SiteBuild, p: Placed, n: int, rng: np.random.Generator) -> F64:
    assert isinstance(b.model, DustSite)
    target = b.model.limits()["hihi"] + rng.uniform(50.0, 400.0)
    extra = 1.35 * target - (b.model.r_clean + b.model.r_span)
    grow = max(2, int(n * rng.uniform(0.3, 0.6)))
    return np.minimum(np.arange(n) / grow, 1.0) * extra


def _rupture(b: SiteBuild, p: Placed, n: int, rng: np.random.Generator) -> F64:
    return np.full(n, rng.uniform(0.22, 0.32))


def _hopper(b: SiteBuild, p: Placed, n: int, rng: np.random.Generator) -> F64:
    rate = rng.uniform(2.5, 5.0) / 60.0 * BASE_STEP_S  # K per base step
    ramp = int(rng.uniform(6.0, 15.0) * 60.0 / BASE_STEP_S)
    peak = rate * ramp
    t = np.arange(n, dtype=np.float64)
    decay = peak - (t - ramp) * 0.8 / 60.0 * BASE_STEP_S
    heat = np.where(t < ramp, rate * t, np.maximum(np.minimum(peak, decay), 0.0))
    p.extra["ramp_end"] = p.start + ramp * BASE_STEP_S
    p.extra["decay_end"] = p.start + (ramp + peak / (0.8 / 60.0 * BASE_STEP_S)) * BASE_STEP_S
    return heat


def _fan_off(b: SiteBuild, p: Placed, n: int, rng: np.random.Generator) -> F64:
    return np.ones(n, dtype=np.float64)


def _flow_loss(b: SiteBuild, p: Placed, n: int, rng: np.random.Generator) -> F64:
    floor = rng.uniform(0.25, 0.45)
    return np.asarray(np.minimum(1.0, np.linspace(1.0, -2.0, n).clip(floor)), dtype=np.float64)


def _leak(b: SiteBuild, p: Placed, n: int, rng: np.random.Generator) -> F64:
    return np.full(n, rng.uniform(0.12, 0.25))


def _co(b: SiteBuild, p: Placed, n: int, rng: np.random.Generator) -> F64:
    peak = rng.uniform(35.0, 150.0)
    t = np.arange(n) * BASE_STEP_S
    rise = rng.uniform(120.0, 300.0)
    return np.asarray(peak * np.minimum(t / rise, 1.0) * np.minimum((t[-1] - t) / 300.0 + 0.05,
                                                                    1.0), dtype=np.float64)


def _steady(b: SiteBuild, p: Placed, n: int, rng: np.random.Generator) -> F64:
    return np.ones(n, dtype=np.float64)


def _plan_sparks(b: SiteBuild, p: Placed, rng: np.random.Generator) -> None:
    assert isinstance(b.plan, DustPlan)
    count = int(rng.integers(5, 26))
    times = np.sort(rng.uniform(p.start, p.end, count)).round()
    line = int(rng.integers(0, b.model.n_lines))
    b.plan.sparks.extend((float(t), line) for t in times)
    p.extra["sparks"] = (float(times[0]), float(times[-1]))


_PLAN: Mapping[str, Callable[[SiteBuild, Placed, np.random.Generator], None]] = {
    **{n: _plan_hidden for n in SCENARIOS if n.startswith("hidden_operation.")},
    "negative.maintenance_load": _plan_maintenance,
    "negative.power_outage": _plan_power,
    "negative.steady_flat": _plan_knob("steady", _steady),
    "abnormal.filter_clogging": _plan_knob("extra_resistance", _clog),
    "abnormal.bag_rupture": _plan_knob("resistance_scale", _rupture),
    "abnormal.hopper_temp_rise": _plan_knob("hopper_heat", _hopper),
    "abnormal.fan_off_interlock": _plan_knob("fan_off", _fan_off),
    "abnormal.spark": _plan_sparks,
    "abnormal.cooling_flow_loss": _plan_knob("flow_factor", _flow_loss),
    "abnormal.cooling_leak": _plan_knob("leak", _leak),
    "abnormal.co_high": _plan_knob("co_extra", _co),
}


# -- data stage and labels ----------------------------------------------------------------

def _data_labelled_elsewhere(b: SiteBuild, p: Placed, rng: np.random.Generator) -> None:
    return None


def _silent(b: SiteBuild, p: Placed, rng: np.random.Generator) -> None:
    silence_devices(b, p.start, p.end, p.spec.name, "keepalive timeout", rng)
    negative = p.spec.negative
    b.label("fake_offline", None, p.start, p.end, p.spec.name, negative=negative)


def _frozen(b: SiteBuild, p: Placed, rng: np.random.Generator) -> None:
    s = b.devices[b.watched()]
    idx = np.flatnonzero(window_mask(s.ts, p.start, p.end))
    for v in s.values.values():
        v[idx] = v[idx[0] - 1]
    s.stopped[idx] = s.stopped[idx[0] - 1]
    b.label("fake_offline", s.device_id, s.ts[idx[0]], s.ts[idx[-1]] + s.interval_s,
            p.spec.name)


def _replay(b: SiteBuild, p: Placed, rng: np.random.Generator) -> None:
    s = b.devices[b.watched()]
    back = 7 if p.start - 7 * 86_400.0 >= b.start else 1
    idx = np.flatnonzero(window_mask(s.ts, p.start, p.end))
    src = idx - int(back * 86_400.0 / s.interval_s)
    noisy = p.spec.name.endswith("noisy")
    if noisy:
        src = np.clip(src + int(rng.integers(-1, 2)), 0, None)
    for name, v in s.values.items():
        copy = v[src].copy()
        if noisy and name not in ("fan_run", "airlock_run", "pump_run"):
            scale = 1.0 + rng.uniform(0.005, 0.02) * rng.choice([-1.0, 1.0])
            copy = copy * scale + rng.normal(0.0, 0.6 * 10.0 ** -s.decimals[name], idx.size)
        v[idx] = copy
    s.stopped[idx] = s.stopped[src]
    b.label("fake_offline", s.device_id, s.ts[idx[0]], s.ts[idx[-1]] + s.interval_s,
            p.spec.name)


def _clone(b: SiteBuild, p: Placed, rng: np.random.Generator) -> None:
    s = b.devices[b.watched()]
    m = window_mask(s.ts, p.start, p.end)
    s.values["flow_out"][m] = s.values["flow_in"][m]
    b.label("fake_offline", s.device_id, p.start, p.end, p.spec.name, point="flow_out")


def _label_window(kind_point: tuple[str, str | None], consequences: bool = True
                  ) -> Callable[[SiteBuild, Placed, np.random.Generator], None]:
    def label(b: SiteBuild, p: Placed, rng: np.random.Generator) -> None:
        device = b.watched()
        if p.spec.name == "abnormal.co_high" and isinstance(b.model, MetalSite):
            device = b.model.ids.gas
        kind, point = kind_point
        if kind == "threshold":
            _crossings(b, device, p.start, p.end, p.spec.name)
            return
        b.label(kind, device, p.start, p.end, p.spec.name, negative=p.spec.negative,
                point=point)
        if consequences:
            _crossings(b, device, p.start, p.end, p.spec.name)
    return label


def _hopper_label(b: SiteBuild, p: Placed, rng: np.random.Generator) -> None:
    device = b.watched()
    b.label("rate_of_change", device, p.start, p.extra["ramp_end"], p.spec.name,
            point="hopper_temp")
    _crossings(b, device, p.start, p.extra["decay_end"], p.spec.name)


def _spark_label(b: SiteBuild, p: Placed, rng: np.random.Generator) -> None:
    first, last = p.extra["sparks"]
    b.label("abnormal_condition", b.watched(), first, last + 60.0, p.spec.name)


def _outage_labels(b: SiteBuild, p: Placed, rng: np.random.Generator) -> None:
    _silent(b, p, rng)


def _steady_label(b: SiteBuild, p: Placed, rng: np.random.Generator) -> None:
    b.label("fake_offline", b.watched(), p.start, p.end, p.spec.name, negative=True)


_DATA: Mapping[str, Callable[[SiteBuild, Placed, np.random.Generator], None]] = {
    **{n: _data_labelled_elsewhere for n in SCENARIOS if n.startswith("hidden_operation.")},
    "negative.maintenance_load": _data_labelled_elsewhere,
    "fake_offline.silent": _silent,
    "fake_offline.frozen": _frozen,
    "fake_offline.replay_day": _replay,
    "fake_offline.replay_noisy": _replay,
    "fake_offline.clone": _clone,
    "abnormal.filter_clogging": _label_window(("threshold", "dp")),
    "abnormal.bag_rupture": _label_window(("threshold", "dp")),
    "abnormal.hopper_temp_rise": _hopper_label,
    "abnormal.spark": _spark_label,
    "abnormal.fan_off_interlock": _label_window(("interlock_violation", "fan_run")),
    "abnormal.cooling_flow_loss": _label_window(("interlock_violation", "flow_in")),
    "abnormal.cooling_leak": _label_window(("interlock_violation", "flow_out")),
    "abnormal.co_high": _label_window(("threshold", "co")),
    "negative.power_outage": _outage_labels,
    "negative.steady_flat": _steady_label,
    "negative.gateway_outage_plant_off": _outage_labels,
}

