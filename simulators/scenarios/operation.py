"""What runs when: hidden production, maintenance load and power cuts.

These act on the working intervals and the load plan *before* the physics runs, so
the meters, fan, furnace and cooling all follow the production that really happened
and no injected reading contradicts another.
"""

from __future__ import annotations

import numpy as np

from simulators.scenarios.build import Placed, SiteBuild
from simulators.sites.common import add_interval, subtract_interval, window_mask
from simulators.sites.dust import DustSite
from simulators.sites.metallurgy import MetalSite


def hidden_work(b: SiteBuild, p: Placed, rng: np.random.Generator) -> None:
    """Production inside the declared stop; the labels are per working block because a
    service can only see (and be judged on) each block separately."""
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


def hidden_load(b: SiteBuild, p: Placed, rng: np.random.Generator) -> None:
    """Shape of the hidden load: a ramp, or a furnace held at part power (a single
    furnace cannot run "one line of several")."""
    plan = b.plan
    assert plan is not None
    name = p.spec.name.split(".")[1]
    for s, e in p.extra["windows"]:
        m = window_mask(b.grid, s, e)
        if name == "ramped":
            plan.level[:, m] = np.linspace(0.15, 1.0, int(m.sum()))[None, :]
        elif name == "partial_line" and isinstance(b.model, MetalSite):
            plan.level[:, m] = rng.uniform(0.4, 0.6)


def maintenance_load(b: SiteBuild, p: Placed, rng: np.random.Generator) -> None:
    """About 5 % of full load in a stop: real, but not production, so a hard negative."""
    assert b.plan is not None
    m = window_mask(b.grid, p.start, p.end)
    full = float(np.sum(b.model.line_kw)) if isinstance(b.model, DustSite) else b.model.rated_kw
    work = 0.05 * full * (1.0 + 0.3 * rng.standard_normal(int(m.sum())))
    b.plan.extra_kw[m] += np.clip(work, 0.0, None)
    b.label("hidden_operation", None, p.start, p.end, p.spec.name, negative=True)


def power_cut_work(b: SiteBuild, p: Placed, rng: np.random.Generator) -> None:
    """Lines stop for the outage and restart only after 20 min (plus the fan's lead on a
    dust site), following the real start-up order."""
    restart = 1200.0 + (b.model.lead_s if isinstance(b.model, DustSite) else 0.0)
    b.work = [subtract_interval(ws, we, p.start, p.end + restart) for ws, we in b.work]


def power_cut_grid(b: SiteBuild, p: Placed, rng: np.random.Generator) -> None:
    """No grid power: the meters read zero, not just the idle load."""
    assert b.plan is not None
    b.plan.power_ok[window_mask(b.grid, p.start, p.end)] = False
