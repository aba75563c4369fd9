"""EventBurstDetector: bursts of sparks, clearing on quiet, duplicates, late events."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detectors.base import SampleBatch
from detectors.events import EventBurstDetector
from tests.detectors.change_rows import Row, rows

NAN = math.nan
T0 = 1_795_478_400.0




def sparks(det: EventBurstDetector, seconds: Sequence[float], device: int = 0) -> list[Row]:
    """Feed events of one device at ``T0 + seconds``; return the rows."""
    return rows(det.update_events([device] * len(seconds), [T0 + s for s in seconds]))


# --- firing ------------------------------------------------------------------------


def test_fires_at_the_event_completing_the_count_with_the_first_as_since() -> None:
    det = EventBurstDetector(n_devices=1)

    changes = det.update_events([0, 0, 0, 0], [T0, T0 + 200.0, T0 + 590.0, T0 + 600.0])

    assert changes.rule == "event_burst"
    assert rows(changes) == [(0, T0 + 590.0, T0, 1, 3.0, 3.0)]
    assert det.active.tolist() == [True]


def test_incidents_of_many_sparks_fire_once_each() -> None:
    rng = np.random.default_rng(0)
    det = EventBurstDetector(n_devices=1)
    fired: list[Row] = []
    for k in range(20):
        start = T0 + k * 86_400.0
        n_sparks, minutes = int(rng.integers(5, 26)), float(rng.uniform(3, 20))
        ts = np.sort(start + rng.uniform(0, minutes * 60.0, n_sparks))
        fired += rows(det.update_events(np.zeros(n_sparks, dtype=np.int32), ts))
        assert len(det.sweep(float(ts[-1]) + 899.0)) == 0
        assert [r[3] for r in rows(det.sweep(float(ts[-1]) + 900.0))] == [0]

    assert [r[3] for r in fired] == [1] * 20
    assert all(r[1] - r[2] < 600.0 for r in fired)


def test_min_events_one_fires_on_every_first_spark() -> None:
    det = EventBurstDetector(n_devices=1, min_events=1)

    assert sparks(det, [0.0, 10.0]) == [(0, T0, T0, 1, 1.0, 1.0)]


def test_devices_are_independent_and_rows_sorted_by_ts_then_device() -> None:
    det = EventBurstDetector(n_devices=3, min_events=2)

    changes = det.update_events([2, 1, 2, 0, 1, 0], [T0, T0, T0 + 5, T0 + 9, T0 + 5, T0 + 700])

    assert [(r[0], r[1]) for r in rows(changes)] == [(1, T0 + 5), (2, T0 + 5)]


# --- not firing --------------------------------------------------------------------


def test_isolated_sparks_of_normal_running_never_fire() -> None:
    rng = np.random.default_rng(1)
    det = EventBurstDetector(n_devices=1)
    # One spark per ~300 production hours, for about 30 years of them.
    ts = T0 + np.cumsum(rng.exponential(300 * 3600.0, 1000))

    assert len(det.update_events(np.zeros(1000, dtype=np.int32), ts)) == 0


def test_events_exactly_a_window_apart_are_not_in_one_window() -> None:
    det = EventBurstDetector(n_devices=1)

    assert sparks(det, [0.0, 300.0, 600.0]) == []
    assert [r[1] for r in sparks(det, [600.5])] == [T0 + 600.5]


def test_two_sparks_and_a_late_third_do_not_fire() -> None:
    det = EventBurstDetector(n_devices=1)

    assert sparks(det, [0.0, 60.0, 660.0, 1300.0, 1900.0]) == []


# --- clearing ----------------------------------------------------------------------


def test_clears_after_quiet_at_sweep_time_with_the_last_event_as_since() -> None:
    det = EventBurstDetector(n_devices=2)
    sparks(det, [0.0, 30.0, 60.0, 400.0])

    assert len(det.sweep(T0 + 1299.0)) == 0  # 899 s after the last spark
    cleared = rows(det.sweep(T0 + 1300.0))

    assert cleared == [(0, T0 + 1300.0, T0 + 400.0, 0, -999.0, -999.0)]
    assert det.active.tolist() == [False, False]
    assert len(det.sweep(T0 + 5000.0)) == 0  # once only


def test_sparks_keep_an_active_burst_alive() -> None:
    det = EventBurstDetector(n_devices=1)
    sparks(det, [0.0, 30.0, 60.0])
    for k in range(1, 40):
        sparks(det, [60.0 + k * 800.0])  # every 800 s: never 900 s of quiet
        assert len(det.sweep(T0 + 60.0 + k * 800.0 + 799.0)) == 0

    assert det.active.tolist() == [True]


def test_a_cleared_burst_needs_new_events_to_fire_again() -> None:
    det = EventBurstDetector(n_devices=1, window_s=600.0, clear_after_s=300.0)
    sparks(det, [0.0, 10.0, 20.0])
    assert [r[3] for r in rows(det.sweep(T0 + 320.0))] == [0]

    # 330 s has 10 and 20 in its window, but those belong to the cleared burst.
    assert sparks(det, [330.0, 340.0]) == []
    assert [(r[1], r[2]) for r in sparks(det, [350.0])] == [(T0 + 350.0, T0 + 330.0)]


def test_sweep_with_a_non_finite_clock_does_nothing() -> None:
    det = EventBurstDetector(n_devices=1)
    sparks(det, [0.0, 1.0, 2.0])

    assert len(det.sweep(math.inf)) == 0
    assert len(det.sweep(NAN)) == 0


# --- bad input ---------------------------------------------------------------------


def test_duplicates_count_once() -> None:
    det = EventBurstDetector(n_devices=1)

    assert sparks(det, [0.0, 0.0, 100.0, 100.0]) == []
    assert det.late_events == 2


def test_redelivered_events_are_late_and_do_not_count() -> None:
    det = EventBurstDetector(n_devices=1)
    sparks(det, [0.0, 100.0])

    assert sparks(det, [0.0, 100.0]) == []  # QoS 1 redelivery
    assert det.late_events == 2
    assert [r[1] for r in sparks(det, [200.0])] == [T0 + 200.0]


def test_out_of_order_within_a_batch_is_sorted_but_late_events_never_fire() -> None:
    det = EventBurstDetector(n_devices=1)

    assert [r[1:3] for r in sparks(det, [100.0, 0.0, 50.0])] == [(T0 + 100.0, T0)]

    other = EventBurstDetector(n_devices=1)
    sparks(other, [500.0])
    # 100 and 120 are older than 500: counted as late, ignored even though 3 fall
    # within 600 s.
    assert sparks(other, [100.0, 120.0]) == []
    assert other.late_events == 2
    assert sparks(other, [510.0]) == []


def test_non_finite_times_are_skipped() -> None:
    det = EventBurstDetector(n_devices=1)

    changes = det.update_events([0, 0, 0, 0, 0], [T0, NAN, math.inf, -math.inf, T0 + 5])

    assert len(changes) == 0
    assert (det.skipped_events, det.late_events) == (3, 0)


def test_samples_are_not_events() -> None:
    det = EventBurstDetector(n_devices=1, min_events=1)

    assert len(det.update(SampleBatch.from_arrays([0, 0], [T0, T0 + 1], [1.0, 2.0]))) == 0
    assert det.update(SampleBatch.empty()).rule == "event_burst"


def test_bad_device_index_and_shapes_are_clear_errors() -> None:
    det = EventBurstDetector(n_devices=2)

    with pytest.raises(ValueError, match="out of range"):
        det.update_events([2], [T0])
    with pytest.raises(ValueError, match="out of range"):
        det.update_events([-1], [T0])
    with pytest.raises(ValueError, match="same length"):
        det.update_events([0, 1], [T0])
    assert len(det.update_events([], [])) == 0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_devices": -1}, "n_devices"),
        ({"min_events": 0}, "min_events"),
        ({"window_s": 0.0}, "window_s"),
        ({"window_s": math.inf}, "window_s"),
        ({"clear_after_s": 0.0}, "clear_after_s"),
    ],
)
def test_bad_parameters_are_clear_errors(kwargs: dict[str, float], match: str) -> None:
    arguments: dict[str, float] = {"n_devices": 1, **kwargs}
    with pytest.raises(ValueError, match=match):
        EventBurstDetector(**arguments)  # type: ignore[arg-type]


# --- oracle: a per-event reference, obviously correct and slow ------------------------


class Reference:
    """Judges one event at a time in (device, ts) order, exactly as documented."""

    def __init__(self, n_devices: int, min_events: int, window_s: float,
                 clear_after_s: float) -> None:
        self.min_events, self.window_s, self.clear_after_s = min_events, window_s, clear_after_s
        self.events: list[list[float]] = [[] for _ in range(n_devices)]
        self.last = [-math.inf] * n_devices
        self.active = [False] * n_devices
        self.late = self.skipped = 0

    def update_events(self, device: Sequence[int], ts: Sequence[float]) -> list[Row]:
        judged = []
        for d, t in zip(device, ts, strict=True):
            if math.isfinite(t):
                judged.append((int(d), float(t)))
            else:
                self.skipped += 1
        out: list[Row] = []
        for d, t in sorted(judged):
            if t <= self.last[d]:
                self.late += 1
                continue
            self.last[d] = t
            self.events[d].append(t)
            window = [e for e in self.events[d] if e > t - self.window_s]
            if len(window) >= self.min_events and not self.active[d]:
                self.active[d] = True
                out.append((d, t, window[0], 1, float(len(window)), float(self.min_events)))
        out.sort(key=lambda r: (r[1], r[0]))
        return out

    def sweep(self, now: float) -> list[Row]:
        out: list[Row] = []
        for d, active in enumerate(self.active):
            if active and now - self.last[d] >= self.clear_after_s:
                self.active[d] = False
                self.events[d] = []
                out.append((d, now, self.last[d], 0, -999.0, -999.0))
        return out


def random_events(rng: np.random.Generator, n_devices: int, n: int) -> tuple[
    np.ndarray, np.ndarray
]:
    """Events in time order: sparse background plus bursts, with duplicates and NaNs."""
    device = rng.integers(0, n_devices, n).astype(np.int32)
    gaps = np.where(rng.random(n) < 0.7, rng.exponential(40.0, n), rng.exponential(900.0, n))
    ts = T0 + np.round(np.cumsum(gaps))  # whole seconds: ties between devices happen
    again = rng.random(n) < 0.1  # redeliveries right after the original
    order = np.argsort(np.r_[np.arange(n), np.flatnonzero(again) + 0.5], kind="stable")
    device, ts = np.r_[device, device[again]][order], np.r_[ts, ts[again]][order]
    ts[rng.random(ts.shape[0]) < 0.02] = NAN
    return device, ts


@pytest.mark.parametrize("seed", range(100))
def test_matches_per_event_reference_on_random_series(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n_devices = int(rng.integers(1, 6))
    params = {"min_events": int(rng.integers(1, 6)),
              "window_s": float(rng.choice([60.0, 300.0, 600.0])),
              "clear_after_s": float(rng.choice([100.0, 600.0, 900.0]))}
    det = EventBurstDetector(n_devices, **params)  # type: ignore[arg-type]
    ref = Reference(n_devices, **params)  # type: ignore[arg-type]
    device, ts = random_events(rng, n_devices, int(rng.integers(20, 300)))
    bounds = np.unique(np.r_[0, rng.integers(0, ts.shape[0], 8), ts.shape[0]])

    for a, b in itertools.pairwise(bounds):
        # A batch arrives in any order, and sometimes with events from long ago.
        order = rng.permutation(b - a)
        d, t = device[a:b][order], ts[a:b][order]
        if rng.random() < 0.3:
            d, t = np.r_[d, d[:3]], np.r_[t, t[:3] - 5000.0]
        assert rows(det.update_events(d, t)) == ref.update_events(d.tolist(), t.tolist())
        now = float(np.nanmax(ts[:b], initial=T0)) + float(rng.choice([0.0, 500.0, 2000.0]))
        assert rows(det.sweep(now)) == ref.sweep(now)

    assert (det.late_events, det.skipped_events) == (ref.late, ref.skipped)
    assert det.active.tolist() == ref.active


def test_the_random_series_do_fire_and_clear() -> None:
    """Guard the oracle test against comparing empty outputs."""
    fired = cleared = 0
    for seed in range(100):
        rng = np.random.default_rng(seed)
        det = EventBurstDetector(int(rng.integers(1, 6)))
        device, ts = random_events(rng, det.n_devices, 300)
        fired += len(det.update_events(device, ts))
        cleared += len(det.sweep(float(np.nanmax(ts)) + 1000.0))

    assert fired > 50
    assert cleared > 50


@pytest.mark.parametrize("seed", range(10))
def test_any_split_into_batches_gives_identical_changes(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    n_devices = int(rng.integers(1, 8))
    device, ts = random_events(rng, n_devices, 1500)
    expected = rows(EventBurstDetector(n_devices).update_events(device, ts))

    for n_cuts in (int(rng.integers(1, 100)), ts.shape[0] - 1):
        det = EventBurstDetector(n_devices)
        cuts = np.sort(rng.choice(np.arange(1, ts.shape[0]), n_cuts, replace=False))
        got = [r for d, t in zip(np.split(device, cuts), np.split(ts, cuts), strict=True)
               for r in rows(det.update_events(d, t))]
        assert got == expected


# --- properties: nothing crashes, nothing fires without a reason ----------------------

awkward_ts = st.one_of(st.integers(0, 3000).map(lambda s: T0 + s),
                       st.sampled_from([NAN, math.inf, -math.inf, 0.0]))


@settings(max_examples=200, deadline=None)
@given(batches=st.lists(st.lists(st.tuples(st.integers(0, 2), awkward_ts), max_size=30),
                        max_size=6),
       min_events=st.integers(1, 4), sweeps=st.lists(st.integers(0, 4000), min_size=6,
                                                      max_size=6))
def test_any_events_match_the_reference(
    batches: list[list[tuple[int, float]]], min_events: int, sweeps: list[int]
) -> None:
    det = EventBurstDetector(3, min_events=min_events, window_s=300.0, clear_after_s=450.0)
    ref = Reference(3, min_events, 300.0, 450.0)

    for events, now in zip(batches, sweeps, strict=False):
        device = [d for d, _ in events]
        ts = [t for _, t in events]
        changes = det.update_events(np.array(device, dtype=np.int32), np.array(ts, dtype=float))
        assert rows(changes) == ref.update_events(device, ts)
        assert (np.diff(changes.ts) >= 0).all()
        assert rows(det.sweep(T0 + now)) == ref.sweep(T0 + now)


@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_duplicates_late_and_bad_events_never_make_a_burst(data: st.DataObject) -> None:
    """Sparks at least a window apart, re-sent, delayed or broken: still no burst."""
    det = EventBurstDetector(2, min_events=2, window_s=600.0)
    det.update_events([0, 1], [T0, T0])
    last = [T0, T0]
    for _ in range(data.draw(st.integers(1, 8))):
        judged = list(last)  # latest event of each device before this batch
        events: list[tuple[int, float]] = []
        for d in (0, 1):
            if data.draw(st.booleans()):
                last[d] += data.draw(st.integers(600, 5000))
                events.append((d, last[d]))
        for _ in range(data.draw(st.integers(0, 12))):
            d = data.draw(st.integers(0, 1))
            kind = data.draw(st.sampled_from(["late", "again", "broken"]))
            if kind == "broken":
                events.append((d, data.draw(st.sampled_from([NAN, math.inf, -math.inf]))))
            elif kind == "again":  # the device's latest event once more
                events.append((d, last[d]))
            else:  # anything no newer than what was judged before this batch
                events.append((d, judged[d] - data.draw(st.integers(0, 10_000))))
        order = data.draw(st.permutations(events))
        changes = det.update_events([d for d, _ in order], [t for _, t in order])
        assert len(changes) == 0

    assert det.active.tolist() == [False, False]
