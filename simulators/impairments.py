"""Transport realism: dropped messages, clock skew, latency jitter, genuine outages.

Applied to a site after its scenarios, so faking and real trouble overlap the way they
do in the field.  Two rules keep the ground truth honest:

* drops never hit two consecutive samples of a device, so a drop alone never makes a
  device look silent for more than 2 intervals (the silence rule fires after 3);
  latency is capped at 12 s and skew at a few seconds for the same reason;
* every genuine network outage lasts 5-25 min, far beyond 3 intervals of the on-site
  devices, and is labelled ``device_offline`` per device; one that falls in production
  time also gets a ``fake_offline`` *negative* label (scenario
  ``impairment.network_outage``): a short real outage must not be called faking.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulators.scenarios import SiteBuild, silence_devices
from simulators.sites.common import window_mask

OUTAGE_SCENARIO = "impairment.network_outage"


@dataclass(frozen=True, slots=True)
class Impairments:
    """Knobs, with units.

    ``drop_rate``: range of each device's message loss fraction (drawn uniformly).
    ``clock_skew_s``: device clocks are off by up to this many seconds either way.
    ``drift_s_per_day``: and drift by up to this much per day.
    ``outages_per_day``: expected genuine gateway network outages per site-day.
    ``outage_s``: their duration range, seconds.
    ``backfill_share``: share of outages whose data a store-and-forward gateway re-sends
    on reconnection (late, in a burst).
    ``latency_s``: median publish-to-broker delay of on-site devices, seconds.
    ``utility_delay_s``: range of the utility feed's delay for the total meter, seconds.
    """

    drop_rate: tuple[float, float] = (0.01, 0.10)
    clock_skew_s: float = 5.0
    drift_s_per_day: float = 0.5
    outages_per_day: float = 0.1
    outage_s: tuple[float, float] = (300.0, 1500.0)
    backfill_share: float = 0.3
    latency_s: float = 0.3
    utility_delay_s: tuple[float, float] = (30.0, 300.0)


def impair(b: SiteBuild, opts: Impairments, rng: np.random.Generator) -> None:
    """Apply outages, drops, skew and latency to every device of the site."""
    _outages(b, opts, rng)
    total = b.model.ids.total
    for device_id in sorted(b.devices):
        s = b.devices[device_id]
        n = s.ts.size
        p = rng.uniform(*opts.drop_rate)
        lost = rng.random(n) < p
        lost[1:] &= ~lost[:-1]
        s.dropped = lost & s.send
        if device_id == total:
            s.latency_s = rng.uniform(*opts.utility_delay_s, n)
            continue
        s.skew_s = float(rng.integers(-int(opts.clock_skew_s), int(opts.clock_skew_s) + 1))
        s.drift_s_per_day = float(rng.uniform(-opts.drift_s_per_day, opts.drift_s_per_day))
        s.latency_s = np.minimum(
            opts.latency_s * rng.lognormal(0.0, 1.0, n) + 0.02, 12.0
        )


def _outages(b: SiteBuild, opts: Impairments, rng: np.random.Generator) -> None:
    days = (b.end - b.start) / 86_400.0
    count = int(rng.poisson(opts.outages_per_day * days))
    assert b.plan is not None
    producing = b.plan.producing()
    for _ in range(count):
        for _attempt in range(10):
            duration = rng.uniform(*opts.outage_s)
            s = float(np.round(rng.uniform(b.start + 3600.0, b.end - 3600.0 - duration)))
            e = s + duration
            if any(s < be + 3600.0 and bs - 3600.0 < e for bs, be in b.busy):
                continue
            b.busy.append((s, e))
            silence_devices(b, s, e, OUTAGE_SCENARIO, "keepalive timeout", rng)
            if producing[window_mask(b.grid, s, e)].any():
                b.label("fake_offline", None, s, e, OUTAGE_SCENARIO, negative=True)
            if rng.random() < opts.backfill_share:
                _backfill(b, s, e, rng)
            break


def _backfill(b: SiteBuild, s: float, e: float, rng: np.random.Generator) -> None:
    """The gateway buffered the outage and re-sends it after reconnecting."""
    at = e + rng.uniform(5.0, 30.0)
    for device_id in b.on_site():
        series = b.devices[device_id]
        gap = window_mask(series.ts, s, e)
        series.send |= gap
        series.backfill_at[gap] = at + 0.01 * np.arange(int(gap.sum()))
