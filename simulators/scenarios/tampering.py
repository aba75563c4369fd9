"""Fake-offline tampering: what the monitoring system *reports*, after the physics.

Faking changes only the data that leaves the site, never the plant, which is why it
runs on the simulated device series: the utility meter (off-site) keeps telling the
truth, and that disagreement is what a detector has to find.
"""

from __future__ import annotations

import numpy as np

from simulators.scenarios.build import Placed, SiteBuild
from simulators.sites import StatusSeries
from simulators.sites.common import window_mask


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


def silent(b: SiteBuild, p: Placed, rng: np.random.Generator) -> None:
    """The whole gateway goes quiet; also the data side of real outages (hard negatives),
    whose silence looks the same and differs only in the meter."""
    silence_devices(b, p.start, p.end, p.spec.name, "keepalive timeout", rng)
    negative = p.spec.negative
    b.label("fake_offline", None, p.start, p.end, p.spec.name, negative=negative)


def frozen(b: SiteBuild, p: Placed, rng: np.random.Generator) -> None:
    """The watched device repeats its last record, stop flag included."""
    s = b.devices[b.watched()]
    idx = np.flatnonzero(window_mask(s.ts, p.start, p.end))
    for v in s.values.values():
        v[idx] = v[idx[0] - 1]
    s.stopped[idx] = s.stopped[idx[0] - 1]
    b.label("fake_offline", s.device_id, s.ts[idx[0]], s.ts[idx[-1]] + s.interval_s,
            p.spec.name)


def replay(b: SiteBuild, p: Placed, rng: np.random.Generator) -> None:
    """Old data re-sent from a day when the equipment ran at those hours (a faker
    replays a normal-looking day): a week back when possible, else the nearest earlier
    day; the noisy variant disguises analogue points but leaves run states alone."""
    s = b.devices[b.watched()]
    idx = np.flatnonzero(window_mask(s.ts, p.start, p.end))
    per_day = int(86_400.0 / s.interval_s)
    running = [d for d in (7, 1, 2, 3, 4, 5, 6)
               if idx[0] - d * per_day >= 0 and not s.stopped[idx - d * per_day].any()]
    back = running[0] if running else (7 if idx[0] - 7 * per_day >= 0 else 1)
    src = idx - back * per_day
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


def clone(b: SiteBuild, p: Placed, rng: np.random.Generator) -> None:
    """Outlet flow wired to the inlet's values, hiding any loss between them."""
    s = b.devices[b.watched()]
    m = window_mask(s.ts, p.start, p.end)
    s.values["flow_out"][m] = s.values["flow_in"][m]
    b.label("fake_offline", s.device_id, p.start, p.end, p.spec.name, point="flow_out")
