"""TamperDetector on simulator data: every fake_offline.frozen, replay_day, replay_noisy
and clone label is caught, and nothing fires anywhere else (hard negatives included).

Each site's on-site devices are fed as they arrive (drops, clock skew, latency, outages
and backfill included), in half-hour batches with a watermark sweep after each.  The
registry decides what is judged, as the service would: analog points of sensor devices
(not run states, not meters) are watched, and a device's flow points form a clone group.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pytest

from detectors.base import SampleBatch
from detectors.tamper import CLONE, FROZEN, NOISY_REPLAY, REPLAY, TamperDetector
from simulators.labels import Label
from simulators.scenarios import SiteBuild
from simulators.suite import SuiteOptions, build_suite

BATCH_S = 1800.0
CAUGHT = {"fake_offline.frozen": FROZEN, "fake_offline.replay_day": REPLAY,
          "fake_offline.clone": CLONE, "fake_offline.replay_noisy": NOISY_REPLAY}
MAX_DELAY_S = {FROZEN: 25 * 60.0, REPLAY: 45 * 60.0, CLONE: 20 * 60.0,
               NOISY_REPLAY: 135 * 60.0}
"""A disguised replay is judged on 40-minute windows that must be mostly copied, and
some begin with a flat hour: 51-134 min on the tuning suites (tamper_noisy.py)."""


@dataclass(frozen=True)
class Firing:
    device: str
    point: str
    ts: float
    severity: int


@dataclass(frozen=True)
class SiteRun:
    build: SiteBuild
    firings: list[Firing]


def site_points(b: SiteBuild) -> Iterator[tuple[str, str, bool, int]]:
    """(device, point, watched, clone group) of every on-site point, from the registry."""
    for spec in b.model.devices():
        if spec["id"] not in b.on_site():
            continue
        sensor = spec["kind"] != "meter"
        for name, point in spec["points"].items():
            watched = sensor and point["kind"] not in ("run_state", "energy")
            yield spec["id"], name, watched, 0 if watched and point["kind"] == "flow" else -1


def run(b: SiteBuild) -> SiteRun:
    points = list(site_points(b))
    devices = sorted({d for d, _, _, _ in points})
    det = TamperDetector([devices.index(d) for d, _, _, _ in points],
                         [w for _, _, w, _ in points], [g for _, _, _, g in points])
    cols = []
    for index, (device, name, _, _) in enumerate(points):
        s = b.devices[device]
        sent = np.flatnonzero(s.delivered())
        flagged = s.stopped[sent] & (name in s.flag_points)
        cols.append((np.full(sent.shape[0], index), s.reported_ts()[sent].astype(float),
                     np.round(s.values[name][sent], s.decimals[name]),
                     np.where(flagged, 1, 0), s.arrival()[sent]))
    point, ts, value, quality, arrival = (np.concatenate(c) for c in zip(*cols, strict=True))
    order = np.argsort(arrival, kind="stable")
    point, ts, value, quality, arrival = (a[order] for a in (point, ts, value, quality, arrival))
    firings = []
    cuts = np.arange(b.start + BATCH_S, b.end + 2 * BATCH_S, BATCH_S)
    bounds = np.searchsorted(arrival, cuts)
    for now, lo, hi in zip(cuts, np.r_[0, bounds[:-1]], bounds, strict=True):
        batch = SampleBatch.from_arrays(point[lo:hi], ts[lo:hi], value[lo:hi], quality[lo:hi])
        for changes in (det.update(batch), det.sweep(now)):
            for i in np.flatnonzero(changes.severity > 0):
                device, name, _, _ = points[int(changes.subject[i])]
                firings.append(Firing(device, name, float(changes.ts[i]),
                                      int(changes.severity[i])))
    return SiteRun(b, firings)


@pytest.fixture(scope="module")
def sites() -> list[SiteRun]:
    suite = build_suite(SuiteOptions(sites=8, days=10, seed=3,
                                     scenarios=("fake_offline", "negative")))
    return [run(b) for b in suite.sites]


def labels(sites: list[SiteRun], *scenarios: str) -> list[tuple[SiteRun, Label]]:
    return [(s, lb) for s in sites for lb in s.build.labels if lb.scenario in scenarios]


def test_every_frozen_replayed_and_cloned_label_is_caught_in_time(
    sites: list[SiteRun],
) -> None:
    found = labels(sites, *CAUGHT)
    assert {lb.scenario for _, lb in found} == set(CAUGHT)
    for site, lb in found:
        severity = CAUGHT[str(lb.scenario)]
        hits = [f for f in site.firings if f.device == lb.device_id and f.severity == severity
                and lb.start <= f.ts <= lb.end and (lb.point is None or f.point == lb.point)]
        assert hits, f"{lb.scenario} at {lb.enterprise_id} not caught"
        assert hits[0].ts - lb.start <= MAX_DELAY_S[severity]


def test_nothing_fires_during_a_genuinely_steady_process(sites: list[SiteRun]) -> None:
    steady = labels(sites, "negative.steady_flat")
    assert steady
    for site, lb in steady:
        assert not [f for f in site.firings if lb.start <= f.ts <= lb.end]


def test_nothing_fires_outside_the_faked_intervals(sites: list[SiteRun]) -> None:
    """Silent gateways, power cuts, outages with backfill, nights, maintenance: no signal."""
    for site in sites:
        faked = [lb for lb in site.build.labels
                 if lb.kind == "fake_offline" and not lb.negative and lb.device_id]
        stray = [f for f in site.firings
                 if not any(f.device == lb.device_id and lb.start <= f.ts <= lb.end + 1800.0
                            for lb in faked)]
        assert stray == [], site.build.eid
