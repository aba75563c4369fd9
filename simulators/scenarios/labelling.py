"""Ground truth for the physics scenarios, written after the data exists.

Labels are read off the generated series rather than the intended fault, so every
consequence a correct service would alert on (a flow loss pushing ``temp_out`` over
``hi``) is labelled too, and the service is not charged a false alert for it.
"""

from __future__ import annotations

import numpy as np

from simulators.scenarios.build import H, Injector, Placed, SiteBuild
from simulators.sites.common import window_mask
from simulators.sites.metallurgy import MetalSite


def crossings(b: SiteBuild, device: str, start: float, end: float, scenario: str) -> None:
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


def limit_crossings(b: SiteBuild, p: Placed, rng: np.random.Generator) -> None:
    """Threshold faults on the watched device: its crossings *are* the ground truth."""
    crossings(b, b.watched(), p.start, p.end, p.spec.name)


def gas_crossings(b: SiteBuild, p: Placed, rng: np.random.Generator) -> None:
    """CO is measured by the gas detector, not by the watched cooling device."""
    assert isinstance(b.model, MetalSite)
    crossings(b, b.model.ids.gas, p.start, p.end, p.spec.name)


def interlock(point: str) -> Injector:
    """An interlock violation on ``point`` of the watched device, plus its consequences."""
    def label(b: SiteBuild, p: Placed, rng: np.random.Generator) -> None:
        device = b.watched()
        b.label("interlock_violation", device, p.start, p.end, p.spec.name,
                negative=p.spec.negative, point=point)
        crossings(b, device, p.start, p.end, p.spec.name)
    return label


def condition(point: str) -> Injector:
    """An abnormal working condition on ``point`` of the watched device, which keeps
    running; plus any limit crossed (none by design: the deviation is the signature)."""
    def label(b: SiteBuild, p: Placed, rng: np.random.Generator) -> None:
        device = b.watched()
        b.label("abnormal_condition", device, p.start, p.end, p.spec.name, point=point)
        crossings(b, device, p.start, p.end, p.spec.name)
    return label


def hopper_rise(b: SiteBuild, p: Placed, rng: np.random.Generator) -> None:
    """Rate of change only while it ramps; limit crossings until it has cooled down."""
    device = b.watched()
    b.label("rate_of_change", device, p.start, p.extra["ramp_end"], p.spec.name,
            point="hopper_temp")
    crossings(b, device, p.start, p.extra["decay_end"], p.spec.name)


def spark_burst(b: SiteBuild, p: Placed, rng: np.random.Generator) -> None:
    """From the first to a minute after the last spark actually generated."""
    first, last = p.extra["sparks"]
    b.label("abnormal_condition", b.watched(), first, last + 60.0, p.spec.name)


def steady(b: SiteBuild, p: Placed, rng: np.random.Generator) -> None:
    """Flat but honest readings: calling them frozen would be a false alert."""
    b.label("fake_offline", b.watched(), p.start, p.end, p.spec.name, negative=True)
