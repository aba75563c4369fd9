"""Abnormal process physics: knobs on the 30 s plan that the site model turns into data.

Faults are injected as causes (resistance, flow, heat, CO), never as edited readings,
so every derived value (fan current, ΔP, ΔT, total power) stays physically consistent
with them, exactly as a real fault would show.  The one exception, :func:`tower_fault`,
is applied to the cooling series after the physics, for the reason it gives.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from simulators.scenarios.build import Injector, Placed, SiteBuild
from simulators.sites.common import BASE_STEP_S, F64, window_mask
from simulators.sites.dust import DustPlan, DustSite
from simulators.sites.metallurgy import MetalSite

Shape = Callable[[SiteBuild, Placed, int, np.random.Generator], F64]
"""Values of a plan knob over the scenario's ``n`` base steps."""


def knob(attr: str, shape: Shape) -> Injector:
    """Set plan array ``attr`` to ``shape`` inside the scenario window."""
    def apply(b: SiteBuild, p: Placed, rng: np.random.Generator) -> None:
        m = window_mask(b.grid, p.start, p.end)
        getattr(b.plan, attr)[m] = shape(b, p, int(m.sum()), rng)
    return apply


def clog(b: SiteBuild, p: Placed, n: int, rng: np.random.Generator) -> F64:
    """Extra resistance growing until ΔP passes ``hihi``: cleaning no longer keeps up."""
    assert isinstance(b.model, DustSite)
    target = b.model.limits()["hihi"] + rng.uniform(50.0, 400.0)
    extra = 1.35 * target - (b.model.r_clean + b.model.r_span)
    grow = max(2, int(n * rng.uniform(0.3, 0.6)))
    return np.minimum(np.arange(n) / grow, 1.0) * extra


def rupture(b: SiteBuild, p: Placed, n: int, rng: np.random.Generator) -> F64:
    """Air bypasses the cake, so resistance drops to a fraction at once."""
    return np.full(n, rng.uniform(0.22, 0.32))


def hopper_heat(b: SiteBuild, p: Placed, n: int, rng: np.random.Generator) -> F64:
    """A fast rise then a slow cool-down; the ramp and decay ends are kept for labels,
    because the rate-of-change label covers only the ramp."""
    rate = rng.uniform(2.5, 5.0) / 60.0 * BASE_STEP_S  # K per base step
    ramp = int(rng.uniform(6.0, 15.0) * 60.0 / BASE_STEP_S)
    peak = rate * ramp
    t = np.arange(n, dtype=np.float64)
    decay = peak - (t - ramp) * 0.8 / 60.0 * BASE_STEP_S
    heat = np.where(t < ramp, rate * t, np.maximum(np.minimum(peak, decay), 0.0))
    p.extra["ramp_end"] = p.start + ramp * BASE_STEP_S
    p.extra["decay_end"] = p.start + (ramp + peak / (0.8 / 60.0 * BASE_STEP_S)) * BASE_STEP_S
    return heat


def slip(b: SiteBuild, p: Placed, n: int, rng: np.random.Generator) -> F64:
    """The fan keeps turning but its motor draws only 55-70 % of the power: a slipping
    belt or a worn impeller."""
    return np.full(n, rng.uniform(0.55, 0.70))


def always(b: SiteBuild, p: Placed, n: int, rng: np.random.Generator) -> F64:
    """A flag held for the whole window (fan forced off, steady process)."""
    return np.ones(n, dtype=np.float64)


def flow_loss(b: SiteBuild, p: Placed, n: int, rng: np.random.Generator) -> F64:
    """Pump delivery sliding to a 25-45 % floor, as a failing pump does."""
    floor = rng.uniform(0.25, 0.45)
    return np.asarray(np.minimum(1.0, np.linspace(1.0, -2.0, n).clip(floor)), dtype=np.float64)


def leak(b: SiteBuild, p: Placed, n: int, rng: np.random.Generator) -> F64:
    """Share of coil water lost between the two flow meters."""
    return np.full(n, rng.uniform(0.12, 0.25))


def co_rise(b: SiteBuild, p: Placed, n: int, rng: np.random.Generator) -> F64:
    """CO rising over 2-5 min, held, and clearing in the last 5 min of the window."""
    peak = rng.uniform(35.0, 150.0)
    t = np.arange(n) * BASE_STEP_S
    rise = rng.uniform(120.0, 300.0)
    return np.asarray(peak * np.minimum(t / rise, 1.0) * np.minimum((t[-1] - t) / 300.0 + 0.05,
                                                                    1.0), dtype=np.float64)


def sparks(b: SiteBuild, p: Placed, rng: np.random.Generator) -> None:
    """A burst in one zone: sparks are events, not a plan array, so they are appended."""
    assert isinstance(b.plan, DustPlan)
    count = int(rng.integers(5, 26))
    times = np.sort(rng.uniform(p.start, p.end, count)).round()
    line = int(rng.integers(0, b.model.n_lines))
    b.plan.sparks.extend((float(t), line) for t in times)
    p.extra["sparks"] = (float(times[0]), float(times[-1]))


def tower_fault(b: SiteBuild, p: Placed, rng: np.random.Generator) -> None:
    """The cooling tower's fan fails: the supply water (``temp_in``, and ``temp_out`` with
    it) climbs 8-15 K over 5-10 min and stays there; the pump runs on untouched.

    The rise is capped 2 K below ``temp_out``'s ``hi`` so the deviation of ``temp_in`` is
    the fault's only signature, which needs the simulated outlet temperature; hence the
    offset goes onto the series after the physics.  Nothing but the two temperatures
    depends on the supply temperature, so the data is what a plan knob would give.  With
    under 3 K of room (a hot day at full load) the fault is skipped."""
    assert isinstance(b.model, MetalSite)
    s = b.devices[b.model.ids.cooling]
    m = window_mask(s.ts, p.start, p.end)
    hi = min(v for k, v in b.limits()[s.device_id]["temp_out"].items() if k.startswith("hi"))
    rise = min(rng.uniform(8.0, 15.0), hi - 2.0 - float(s.values["temp_out"][m].max()))
    ramp = rng.uniform(300.0, 600.0) / s.interval_s  # samples
    if rise < 3.0:
        b.skipped.append(p.spec.name)
        return
    offset = rise * np.minimum((np.arange(m.sum()) + 1.0) / ramp, 1.0)
    for point in ("temp_in", "temp_out"):
        s.values[point][m] += offset
    p.extra["rise"] = rise
    b.label("abnormal_condition", s.device_id, p.start, p.end, p.spec.name, point="temp_in")
