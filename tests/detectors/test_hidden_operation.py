"""HiddenOperationDetector (明停暗开): production or accumulated excess load during a
declared stop, per enterprise, fed with the readings of PlantStateDetector."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detectors.base import ConditionChanges, SampleBatch
from detectors.hidden_operation import HiddenOperationDetector
from detectors.plant_state import OFF, PRODUCTION, STANDBY, MeterReadings, PlantStateDetector

NAN = math.nan
DAY0 = 1_795_478_400.0  # 2026-11-24T00:00:00Z: the declared stop starts here
HOUR, DAY = 3600.0, 86_400.0
RATED, BUSY_KW, IDLE_KW = 100.0, 70.0, 1.5
MAINTENANCE_KW = 0.05 * BUSY_KW  # lighting, a compressor, the maintenance crew's tools

Event = tuple[int, float, float, int]


def events(changes: ConditionChanges) -> list[Event]:
    """(enterprise, hours after DAY0 decided, hours after DAY0 began, severity)."""
    return [(int(changes.subject[i]), round((float(changes.ts[i]) - DAY0) / HOUR, 4),
             round((float(changes.since[i]) - DAY0) / HOUR, 4), int(changes.severity[i]))
            for i in range(len(changes))]


def at(hours: float) -> float:
    """Hours after DAY0 (midnight of the stop's first day) as epoch seconds."""
    return DAY0 + hours * HOUR


class Site:
    """Meters of one or more enterprises: plant state feeding hidden operation, wired
    as the pipeline wires them."""

    def __init__(self, stops: Sequence[tuple[int, float, float]], *,
                 meter_enterprise: Sequence[int] = (0,), interval_s: float = 60.0,
                 n_enterprises: int = 1) -> None:
        n = len(meter_enterprise)
        self.plant = PlantStateDetector(list(range(n)), [RATED] * n, n)
        self.hidden = HiddenOperationDetector(
            list(meter_enterprise), [interval_s] * n, n_enterprises,
            [s[0] for s in stops], [s[1] for s in stops], [s[2] for s in stops])
        self.interval = interval_s

    def feed(self, ts: np.ndarray, kw: np.ndarray, *, point: int = 0,
             batch_s: float = HOUR) -> list[Event]:
        """Samples of one meter in batches of ``batch_s`` event time; hidden changes."""
        out: list[Event] = []
        key = np.floor(ts / batch_s)
        for k in np.unique(key):
            rows = key == k
            self.plant.update(SampleBatch.from_arrays(
                np.full(int(rows.sum()), point, np.int32), ts[rows], kw[rows]))
            out += events(self.hidden.update_readings(self.plant.readings))
        return out

    def feed_days(self, first_hour: float, last_hour: float, kw_at_hour: object, *,
                  point: int = 0) -> list[Event]:
        """Samples every interval from ``first_hour`` to ``last_hour`` (hours after
        DAY0), the load given by ``kw_at_hour(hour of day)``, a vectorized callable."""
        ts = DAY0 + np.arange(first_hour * HOUR, last_hour * HOUR, self.interval)
        hour_of_day = (ts - DAY0) % DAY / HOUR
        rng = np.random.default_rng(5)
        kw = np.asarray(kw_at_hour(hour_of_day), dtype=float)  # type: ignore[operator]
        return self.feed(ts, kw * (1 + 0.01 * rng.standard_normal(ts.shape[0])), point=point)


def day_shift(hour: np.ndarray) -> np.ndarray:
    """Normal work: 08:00-12:00 and 13:00-17:00 at production load, idle otherwise."""
    working = ((hour >= 8) & (hour < 12)) | ((hour >= 13) & (hour < 17))
    return np.where(working, BUSY_KW, IDLE_KW)


def with_history(stop_days: float = 7.0, **kwargs: object) -> Site:
    """A site that worked normally for two days and is declared stopped from DAY0."""
    site = Site([(0, DAY0, DAY0 + stop_days * DAY)], **kwargs)  # type: ignore[arg-type]
    assert site.feed_days(-48.0, 0.0, day_shift) == []  # production outside stops is fine
    return site


# --- scenarios from meter samples ---------------------------------------------------------


@pytest.mark.parametrize(("interval_s", "maintenance_kw"), [
    (900.0, MAINTENANCE_KW), (900.0, 0.05 * RATED), (60.0, 0.05 * RATED)])
def test_maintenance_load_in_a_long_declared_stop_never_fires(
    interval_s: float, maintenance_kw: float
) -> None:
    # Weeks of rectification (停产整顿): only lighting and maintenance, 5 % of the
    # production load or of the rating.  The meter forgets its production level over
    # the weeks; the maintenance load must still never look like hidden production.
    days = 21.0 if interval_s == 900.0 else 6.0
    site = with_history(stop_days=days, interval_s=interval_s)

    changes = site.feed_days(0.0, days * 24, lambda h: np.full(h.shape, maintenance_kw))

    assert changes == []
    assert not site.hidden.active.any()


def test_night_only_production_in_a_declared_stop_fires_every_night() -> None:
    site = with_history()

    def night_shift(hour: np.ndarray) -> np.ndarray:
        return np.where((hour >= 21) | (hour < 5), BUSY_KW, MAINTENANCE_KW)

    changes = site.feed_days(0.0, 48.0, night_shift)

    # 10 one-minute samples spanning 10 min make a production run: fired at 21:09,
    # started 21:00; low load from 05:00 for 20 min (05:00-05:19 plus one interval)
    # ends it.  The stop began at midnight, in the middle of the first night shift.
    assert changes == [(0, 0.15, 0.0, 1), (0, 5.3167, 5.3167, 0),
                       (0, 21.15, 21.0, 1), (0, 29.3167, 29.3167, 0),
                       (0, 45.15, 45.0, 1)]
    evidence = site.hidden.fired[0]
    assert (evidence.meter, evidence.stop, evidence.by) == (0, 0, "production")
    assert evidence.level_kw == pytest.approx(BUSY_KW, rel=0.05)
    assert evidence.floor_kw < 0.1 * BUSY_KW
    # Ten minutes at about 68 kW above the floor.
    assert evidence.excess_kwh == pytest.approx(10 / 60 * (BUSY_KW - evidence.floor_kw),
                                                rel=0.05)


def test_a_fifteen_minute_meter_fires_on_its_second_production_reading() -> None:
    site = with_history(interval_s=900.0)

    def night_shift(hour: np.ndarray) -> np.ndarray:
        return np.where((hour >= 21) | (hour < 5), BUSY_KW, MAINTENANCE_KW)

    changes = site.feed_days(12.0, 30.0, night_shift)

    assert changes == [(0, 21.25, 21.0, 1), (0, 29.25, 29.25, 0)]


def test_working_blocks_around_a_lunch_break_are_two_episodes() -> None:
    site = with_history()  # one-minute production sub-meter

    changes = site.feed_days(24.0, 48.0, day_shift)

    # Low from 12:00; 20 minutes of it (at 12:19) end the morning's episode well
    # before the afternoon's production starts a new one.
    assert changes == [(0, 32.15, 32.0, 1), (0, 36.3167, 36.3167, 0),
                       (0, 37.15, 37.0, 1), (0, 41.3167, 41.3167, 0)]


def test_the_episode_clears_at_the_sweep_that_passes_the_end_of_the_stop() -> None:
    site = with_history(stop_days=1.0)
    assert site.feed_days(22.0, 24.0, lambda h: np.full(h.shape, BUSY_KW)) == [
        (0, 22.15, 22.0, 1)]

    before = events(site.hidden.sweep(at(23.99)))
    after = events(site.hidden.sweep(at(24.0) + 2.5))
    later = events(site.hidden.sweep(at(30.0)))

    assert before == []
    assert after == [(0, 24.0, 24.0, 0)]  # decided at the end of the declared stop
    assert later == []
    assert not site.hidden.active.any()
    # Production after the stop is declared operation again: nothing more.
    assert site.feed_days(24.0, 26.0, lambda h: np.full(h.shape, BUSY_KW)) == []


def test_the_first_reading_after_the_stop_clears_when_no_sweep_came_first() -> None:
    site = with_history(stop_days=1.0)

    changes = site.feed_days(23.0, 24.5, lambda h: np.full(h.shape, BUSY_KW))

    assert changes == [(0, 23.15, 23.0, 1), (0, 24.0, 24.0, 0)]


def test_a_production_burst_shorter_than_the_minimum_run_does_not_fire() -> None:
    site = with_history()

    def burst(hour: np.ndarray) -> np.ndarray:
        minutes = hour * 60
        return np.where((minutes >= 600) & (minutes < 608), BUSY_KW, MAINTENANCE_KW)

    assert site.feed_days(0.0, 12.0, burst) == []


def test_production_outside_the_declared_stop_is_not_hidden() -> None:
    site = Site([(0, DAY0 + 2 * DAY, DAY0 + 3 * DAY)])

    assert site.feed_days(0.0, 48.0, day_shift) == []
    assert site.feed_days(72.0, 96.0, day_shift) == []


def test_each_enterprise_has_its_own_alert_and_stops() -> None:
    site = Site([(0, DAY0, DAY0 + DAY)], meter_enterprise=(0, 1), n_enterprises=2)
    busy = lambda h: np.full(h.shape, BUSY_KW)  # noqa: E731

    ours = site.feed_days(1.0, 2.0, busy, point=0)
    theirs = site.feed_days(1.0, 2.0, busy, point=1)  # enterprise 1 declared nothing

    assert ours == [(0, 1.15, 1.0, 1)]
    assert theirs == []


# --- the state machine, on readings -------------------------------------------------------


def readings(meter: Sequence[int], hours: Sequence[float], u: Sequence[float], *,
             state: Sequence[int] | None = None, floor_kw: float = 5.0,
             level_kw: float = 105.0) -> MeterReadings:
    """Readings as PlantStateDetector gives them: sorted by (meter, ts); the state from
    ``u`` (production at u >= 0.3) unless given."""
    m, t, load = (np.asarray(meter, np.int32), DAY0 + np.asarray(hours) * HOUR,
                  np.asarray(u, dtype=float))
    order = np.lexsort((t, m))
    codes = (np.where(load >= 0.3, PRODUCTION, OFF) if state is None
             else np.asarray(state)).astype(np.int8)
    n = m.shape[0]
    return MeterReadings(m[order], t[order], (floor_kw + load * (level_kw - floor_kw))[order],
                         load[order], codes[order], np.full(n, floor_kw),
                         np.full(n, level_kw))


def quarter_hours(n: int, start: float = 1.0) -> list[float]:
    return [start + k / 4 for k in range(n)]


def detector(n_meters: int = 1, *, meter_enterprise: Sequence[int] | None = None,
             n_enterprises: int = 1, interval_s: float = 900.0,
             **kwargs: float) -> HiddenOperationDetector:
    """Meters under one declared stop of every enterprise, covering the first week."""
    return HiddenOperationDetector(
        list(meter_enterprise or [0] * n_meters), [interval_s] * n_meters, n_enterprises,
        list(range(n_enterprises)), [DAY0] * n_enterprises, [DAY0 + 7 * DAY] * n_enterprises,
        **kwargs)  # type: ignore[arg-type]


def test_a_dip_shorter_than_the_clear_time_does_not_end_an_episode() -> None:
    # 15-minute readings: one low reading is 15 min of low load, two are 30 min; the
    # episode ends after 20 min (clear_after_s).
    det = detector()
    u = [1.0, 1.0, 0.05, 1.0, 1.0, 0.05, 0.05]

    changes = det.update_readings(readings([0] * 7, quarter_hours(7), u))

    assert events(changes) == [(0, 1.25, 1.0, 1), (0, 2.5, 2.5, 0)]


def test_part_load_hovering_at_the_state_threshold_fires_by_cusum() -> None:
    # u alternates 0.75 (production) and 0.125 (not): no run ever reaches two readings,
    # but with k = 0.25 each pair of 15-minute readings adds 0.125 - 0.03125 load-hours:
    # 0.125, 0.094, 0.219, 0.188, 0.3125 >= h = 0.3 at the fifth reading.
    det = detector(cusum_allowance=0.25)
    u = [0.75, 0.125] * 4

    changes = det.update_readings(readings([0] * 8, quarter_hours(8), u))

    assert events(changes) == [(0, 2.0, 1.0, 1)]
    evidence = det.fired[0]
    assert (evidence.by, evidence.load) == ("cusum", 0.75)
    assert changes.value.tolist() == [pytest.approx(evidence.excess_kwh)]
    # Energy above the 5 kW floor, 15 minutes per reading: three at 80 kW, two at 17.5.
    assert evidence.excess_kwh == pytest.approx(3 * 0.25 * 75.0 + 2 * 0.25 * 12.5)


def test_a_reading_without_a_load_does_not_disable_the_cusum() -> None:
    # A NaN load (a reading with no scale to place it on) says nothing; it must not
    # stick in the sum and blind the rule for the rest of the stop.
    det = detector(cusum_allowance=0.25)
    u = [NAN, NAN] + [0.75, 0.125] * 4

    changes = det.update_readings(readings([0] * 10, quarter_hours(10), u))

    assert events(changes) == [(0, 2.5, 1.5, 1)]


def test_minimum_run_needs_both_samples_and_duration() -> None:
    det = detector(interval_s=60.0, min_intervals=3, min_run_s=300.0)
    minutes = [1.0 + k / 60 for k in range(5)]

    changes = det.update_readings(readings([0] * 5, minutes, [1.0] * 5))

    # Three samples are there at 1:02 but span only 3 min (+1 interval); 5 min at 1:04.
    assert events(changes) == [(0, round(1 + 4 / 60, 4), 1.0, 1)]


def test_the_enterprise_alert_spans_its_meters_first_on_to_last_off() -> None:
    det = detector(2)
    both_on = readings([0, 0, 1, 1], [1.0, 1.25, 1.25, 1.5], [1.0, 1.0, 1.0, 1.0])
    first_off = readings([0, 0], [1.5, 1.75], [0.0, 0.0])
    last_off = readings([1, 1], [1.75, 2.0], [0.0, 0.0])

    assert events(det.update_readings(both_on)) == [(0, 1.25, 1.0, 1)]
    assert events(det.update_readings(first_off)) == []
    assert events(det.update_readings(last_off)) == [(0, 2.0, 2.0, 0)]


def test_meters_turning_on_and_off_inside_one_batch_make_one_episode() -> None:
    det = detector(2)
    batch = readings([0] * 5 + [1] * 6, quarter_hours(5) + quarter_hours(6, start=1.25),
                     [1.0, 1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0])

    assert events(det.update_readings(batch)) == [(0, 1.25, 1.0, 1), (0, 2.5, 2.5, 0)]


def test_evidence_names_the_meter_whose_firing_turned_the_alert_on() -> None:
    # Both meters of one enterprise fire in one batch: meter 0 first (at 1:15), meter 1
    # later (at 3:15) but in a later step of the batch.  The alert and its evidence
    # must both be meter 0's.
    det = detector(2)
    hours = quarter_hours(10)
    batch = readings([0] * 10 + [1] * 10, hours + hours,
                     [1.0] * 10 + [0.0] * 8 + [1.0] * 2, floor_kw=5.0, level_kw=105.0)
    other = MeterReadings(batch.meter, batch.ts, batch.p_kw, batch.load, batch.state,
                          np.where(batch.meter == 1, 50.0, 5.0), batch.level_kw)

    changes = det.update_readings(other)

    assert events(changes) == [(0, 1.25, 1.0, 1)]
    assert int(changes.limit[0]) == 0
    assert det.fired[0].meter == 0
    assert det.fired[0].floor_kw == 5.0
    assert changes.value[0] == det.fired[0].excess_kwh


def test_later_firings_keep_the_first_evidence_while_the_alert_is_on() -> None:
    det = detector(2)
    det.update_readings(readings([0, 0], [1.0, 1.25], [1.0, 1.0]))

    det.update_readings(readings([1, 1], [1.5, 1.75], [1.0, 1.0]))

    assert det.fired[0].meter == 0


def test_stops_are_half_open_and_per_enterprise() -> None:
    det = HiddenOperationDetector([0, 1], [900.0, 900.0], 3, [1, 0], [DAY0 + DAY, DAY0],
                                  [DAY0 + 2 * DAY, DAY0 + DAY])
    enterprise = np.array([0, 0, 0, 1, 1, 2], dtype=np.int64)
    ts = DAY0 + np.array([-1.0, 0.0, DAY, DAY - 1, DAY, DAY])

    # Sorted by (enterprise, from): enterprise 0's stop is row 0.
    assert det.stop_at(enterprise, ts).tolist() == [-1, 0, -1, -1, 1, -1]


def test_stops_can_be_replaced() -> None:
    det = HiddenOperationDetector([0], [900.0], 1, [], [], [])
    assert events(det.update_readings(readings([0, 0], [1.5, 1.75], [1.0, 1.0]))) == []

    det.set_stops([0], [DAY0], [DAY0 + DAY])
    changes = det.update_readings(readings([0, 0], [2.0, 2.25], [1.0, 1.0]))

    assert events(changes) == [(0, 2.25, 2.0, 1)]


def test_empty_readings_and_batches_change_nothing() -> None:
    det = detector()

    assert len(det.update_readings(MeterReadings.empty())) == 0
    assert len(det.update(SampleBatch.empty())) == 0
    assert len(det.sweep(DAY0 + 30 * DAY)) == 0


# --- properties ---------------------------------------------------------------------------


@st.composite
def maintenance_meter(draw: st.DrawFn) -> tuple[int, list[SampleBatch]]:
    """A meter that never draws more than 5 % of its rating, inside a declared stop:
    gaps, NaN, inf, flags, out-of-order rows, redeliveries and any batching."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    step = draw(st.sampled_from([60.0, 900.0]))
    n = draw(st.integers(1, 1000 if step == 900.0 else 500))
    ts = DAY0 + np.cumsum(rng.choice([step, step, step, 4 * step, 40 * step], n))
    base = draw(st.floats(0.0, 0.05)) * RATED
    kw = np.clip(base + rng.normal(0.0, draw(st.floats(0.0, 3.0)), n), -2.0, 0.05 * RATED)
    kw[rng.random(n) < draw(st.floats(0.0, 0.3))] = NAN
    kw[rng.random(n) < 0.01] = math.inf
    ts[rng.random(n) < 0.01] = NAN
    quality = np.where(rng.random(n) < 0.03, rng.integers(1, 8, n), 0)
    order = np.argsort(np.arange(n) + rng.uniform(0, draw(st.integers(1, 30)), n))
    again = rng.random(n) < draw(st.floats(0.0, 0.3))
    rows = np.r_[order, order[again[order]]]
    cuts = np.unique(rng.integers(0, rows.shape[0], draw(st.integers(0, 40))))
    edges = [0, *cuts.tolist(), rows.shape[0]]
    return int(step), [SampleBatch.from_arrays(np.zeros(b - a, np.int32), ts[rows[a:b]],
                                               kw[rows[a:b]], quality[rows[a:b]])
                       for a, b in itertools.pairwise(edges) if b > a]


@settings(max_examples=40, deadline=None)
@given(meter=maintenance_meter())
def test_maintenance_level_load_never_fires_whatever_the_input(
    meter: tuple[int, list[SampleBatch]]
) -> None:
    step, batches = meter
    plant = PlantStateDetector([0], [RATED], 1)
    hidden = HiddenOperationDetector([0], [float(step)], 1, [0], [DAY0 - DAY],
                                     [DAY0 + 365 * DAY])

    for batch in batches:
        plant.update(batch)
        assert len(hidden.update_readings(plant.readings)) == 0
        assert len(hidden.sweep(float(np.nanmax(np.r_[batch.ts, DAY0])))) == 0

    assert not hidden.active.any()


@st.composite
def any_readings(draw: st.DrawFn) -> tuple[list[MeterReadings], list[float]]:
    """Readings of three meters of two enterprises, loads anywhere (NaN included), in
    random batches, with sweeps between them."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n = draw(st.integers(1, 400))
    meter = rng.integers(0, 3, n).astype(np.int32)
    ts = DAY0 + np.cumsum(rng.choice([60.0, 900.0, 4 * HOUR], n))
    u = rng.choice([NAN, -0.2, 0.0, 0.05, 0.12, 0.25, 0.5, 1.0, 1.4], n)
    state = np.where(u >= 0.3, PRODUCTION, np.where(u >= 0.08, STANDBY, OFF)).astype(np.int8)
    cuts = np.unique(rng.integers(0, n, draw(st.integers(0, 20))))
    out: list[MeterReadings] = []
    for a, b in zip([0, *cuts.tolist()], [*cuts.tolist(), n], strict=True):
        if b <= a:
            continue
        sel = np.arange(a, b)
        sel = sel[np.lexsort((ts[sel], meter[sel]))]
        out.append(MeterReadings(meter[sel], ts[sel], 5 + 100 * u[sel], u[sel], state[sel],
                                 np.full(sel.shape[0], 5.0), np.full(sel.shape[0], 105.0)))
    sweeps = [float(r.ts.max()) for r in out]
    return out, sweeps


@settings(max_examples=80, deadline=None)
@given(data=any_readings())
def test_any_readings_give_alternating_fire_and_clear_per_enterprise(
    data: tuple[list[MeterReadings], list[float]]
) -> None:
    batches, sweeps = data
    det = HiddenOperationDetector([0, 0, 1], [900.0, 60.0, 900.0], 2, [0, 1, 0],
                                  [DAY0 + HOUR, DAY0, DAY0 + 2 * DAY],
                                  [DAY0 + DAY, DAY0 + 3 * DAY, DAY0 + 9 * DAY])
    seen: dict[int, list[int]] = {0: [], 1: []}

    for r, now in zip(batches, sweeps, strict=True):
        for change in (det.update_readings(r), det.sweep(now)):
            assert (np.diff(change.ts) >= 0).all()
            for e, s in zip(change.subject.tolist(), change.severity.tolist(), strict=True):
                seen[e].append(s)
    final = det.sweep(DAY0 + 100 * DAY)  # every stop is over
    for e, s in zip(final.subject.tolist(), final.severity.tolist(), strict=True):
        seen[e].append(s)

    for history in seen.values():
        assert history == [1, 0] * (len(history) // 2)  # every fire is cleared, once
    assert not det.active.any()


# --- stops changed while running (declared through the API) -------------------------------


def test_a_stop_added_before_a_running_episode_does_not_interrupt_it() -> None:
    site = with_history()
    fired = site.feed_days(0.0, 1.0, lambda h: np.full(h.shape, BUSY_KW))
    assert fired == [(0, 0.15, 0.0, 1)]
    # An earlier stop of the same enterprise is declared: rows are renumbered, the
    # episode's stop is now row 1, and the production goes on as one episode.
    site.hidden.set_stops([0, 0], [DAY0 - 3 * DAY, DAY0], [DAY0 - 2 * DAY, DAY0 + 7 * DAY])
    assert site.hidden.fired[0].stop == 1

    assert site.feed_days(1.0, 2.0, lambda h: np.full(h.shape, BUSY_KW)) == []
    assert site.hidden.active.all()


def test_a_withdrawn_stop_ends_its_episode_at_the_next_reading() -> None:
    site = with_history()
    assert site.feed_days(0.0, 1.0, lambda h: np.full(h.shape, BUSY_KW)) == [
        (0, 0.15, 0.0, 1)]

    site.hidden.set_stops([], [], [])
    assert site.hidden.fired[0].stop == -1  # the evidence no longer quotes a stop

    changes = site.feed_days(1.0, 1.1, lambda h: np.full(h.shape, BUSY_KW))
    assert changes == [(0, 1.0, 1.0, 0)]
    assert not site.hidden.active.any()


def test_a_run_cut_by_a_withdrawn_stop_starts_afresh_under_a_new_one() -> None:
    # One production reading in a stop (a run of one, below the two needed); the stop
    # is withdrawn, so the next reading is outside any: the run must be forgotten,
    # and a stop declared again later counts from zero.
    det = HiddenOperationDetector([0], [900.0], 1, [0], [DAY0], [DAY0 + DAY])
    assert events(det.update_readings(readings([0], [1.0], [1.0]))) == []
    det.set_stops([], [], [])
    assert events(det.update_readings(readings([0], [1.25], [1.0]))) == []
    det.set_stops([0], [DAY0], [DAY0 + DAY])

    assert events(det.update_readings(readings([0], [1.5], [1.0]))) == []
    assert events(det.update_readings(readings([0], [1.75], [1.0]))) == [(0, 1.75, 1.5, 1)]
