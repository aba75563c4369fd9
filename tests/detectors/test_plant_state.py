"""PlantStateDetector: off / standby / production from the meter, hourly learning,
hysteresis, bad rows, and batch-split invariance."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detectors.base import ConditionChanges, SampleBatch
from detectors.plant_state import (
    _BINS,
    _MIN_SPAN,
    OFF,
    PRODUCTION,
    STANDBY,
    PlantStateDetector,
    _running_sums,
)

NAN = math.nan
DAY0 = 1_795_478_400.0  # 2026-11-24T00:00:00Z, a whole hour and day in epoch seconds
HOUR = 3600.0
RATED = 100.0

Change = tuple[int, float, int, float, float]


def meters(n: int = 1, *, rated: float = RATED, **kwargs: float) -> PlantStateDetector:
    """``n`` meters whose power points are points ``0..n-1``."""
    return PlantStateDetector(list(range(n)), [rated] * n, n, **kwargs)  # type: ignore[arg-type]


def series(kw: Sequence[float], *, step: float = 60.0, start: float = DAY0,
           point: int = 0) -> SampleBatch:
    """Samples of one power point at ``start, start + step, ...``."""
    ts = [start + i * step for i in range(len(kw))]
    return SampleBatch.from_arrays([point] * len(kw), ts, kw)


def changes_of(changes: ConditionChanges) -> list[Change]:
    """(meter, ts, state, kW, production level kW) per change."""
    return [(int(changes.subject[i]), float(changes.ts[i]), int(changes.severity[i]),
             float(changes.value[i]), float(changes.limit[i])) for i in range(len(changes))]


def kw_at(det: PlantStateDetector, u: float, meter: int = 0) -> float:
    """The load (kW) at normalised load ``u`` under the meter's current floor and level."""
    floor, level = float(det.floor_kw()[meter]), float(det.level_kw()[meter])
    return floor + u * (level - floor)


def duty_cycle(days: float, *, step: float = 60.0, idle_kw: float = 2.0,
               busy_kw: float = 70.0, start: float = DAY0) -> tuple[np.ndarray, np.ndarray]:
    """A working plant: production 08:00-12:00 and 13:00-17:00, idle otherwise."""
    ts = start + np.arange(0.0, days * 24 * HOUR, step)
    hour = (ts - start) % (24 * HOUR) / HOUR
    working = ((hour >= 8) & (hour < 12)) | ((hour >= 13) & (hour < 17))
    rng = np.random.default_rng(3)
    kw = np.where(working, busy_kw, idle_kw) + rng.normal(0.0, 0.3, ts.shape[0])
    return ts, kw


# --- classification ----------------------------------------------------------------------


def test_production_is_recognised_from_the_first_samples_and_ends_when_load_drops() -> None:
    det = meters()

    changes = det.update(series([3.0, 70.0, 65.0, 2.0]))

    level = float(det.level_kw()[0])
    assert changes.rule == "plant_state"
    assert changes_of(changes) == [(0, DAY0 + 60, PRODUCTION, 70.0, level),
                                   (0, DAY0 + 180, OFF, 2.0, level)]
    assert det.state.tolist() == [OFF]
    # The prior puts floor and level near 3 % and 60 % of rated power.
    assert det.floor_kw()[0] == pytest.approx(3.0, abs=0.3)
    assert det.level_kw()[0] == pytest.approx(60.0, abs=1.5)


def test_idle_load_changes_nothing() -> None:
    det = meters()

    changes = det.update(series([3.0, 2.5, 3.2, 2.8, 3.0]))

    assert len(changes) == 0
    assert det.state.tolist() == [OFF]
    assert det.readings.state.tolist() == [OFF] * 5


def test_part_load_is_standby() -> None:
    det = meters()
    det.update(series([3.0]))

    changes = det.update(series([kw_at(det, 0.15), kw_at(det, 0.25)], start=DAY0 + 60))

    assert [(c[1], c[2]) for c in changes_of(changes)] == [(DAY0 + 60, STANDBY)]
    assert det.readings.load.round(2).tolist() == [0.15, 0.25]


def test_production_holds_until_load_falls_below_the_leave_threshold() -> None:
    det = meters()
    det.update(series([3.0]))
    loads = [1.0, 0.25, 0.21, 0.28, 0.19, 0.29, 0.31]

    changes = det.update(series([kw_at(det, u) for u in loads], start=DAY0 + 60))

    # Production from u >= 0.3 until u < 0.2 (then standby, since u >= 0.08); 0.29 is
    # not enough to come back, 0.31 is.
    assert [(c[1] - DAY0, c[2]) for c in changes_of(changes)] == [
        (60.0, PRODUCTION), (300.0, STANDBY), (420.0, PRODUCTION)]


def test_hysteresis_is_carried_across_batches() -> None:
    det = meters()
    det.update(series([3.0]))
    high, middle = kw_at(det, 1.0), kw_at(det, 0.25)

    det.update(series([high], start=DAY0 + 60))
    held = det.update(series([middle, middle], start=DAY0 + 120))

    assert len(held) == 0
    assert det.state.tolist() == [PRODUCTION]


def test_negative_power_counts_as_zero_load() -> None:
    det = meters()

    det.update(series([-5.0]))

    assert det.readings.p_kw.tolist() == [0.0]
    assert det.state.tolist() == [OFF]


def test_meters_are_independent_and_changes_are_sorted_by_time() -> None:
    det = meters(2)
    batch = SampleBatch.from_arrays([1, 0, 1, 0], [DAY0 + 120, DAY0 + 60, DAY0 + 60, DAY0],
                                    [70.0, 70.0, 3.0, 3.0])

    changes = det.update(batch)

    assert [(c[0], c[1] - DAY0, c[2]) for c in changes_of(changes)] == [
        (0, 60.0, PRODUCTION), (1, 120.0, PRODUCTION)]
    assert det.readings.meter.tolist() == [0, 0, 1, 1]
    assert (det.readings.ts - DAY0).tolist() == [0.0, 60.0, 60.0, 120.0]


def test_points_that_are_not_meters_are_ignored() -> None:
    det = PlantStateDetector(meter_point=[2], meter_rated_kw=[RATED], n_points=4)

    changes = det.update(SampleBatch.from_arrays([0, 1, 3], [DAY0] * 3, [99.0, NAN, 99.0]))

    assert len(changes) == 0
    assert len(det.readings) == 0
    assert (det.skipped_samples, det.late_samples) == (0, 0)


def test_sweep_keeps_the_last_state_of_a_silent_meter() -> None:
    det = meters()
    det.update(series([70.0]))

    assert len(det.sweep(DAY0 + 10 * 24 * HOUR)) == 0
    assert det.state.tolist() == [PRODUCTION]


# --- learning ------------------------------------------------------------------------------


def hourly(det: PlantStateDetector, ts: np.ndarray, kw: np.ndarray) -> list[Change]:
    """Feed one meter's samples in hourly batches; all changes."""
    out: list[Change] = []
    hour = np.floor(ts / HOUR)
    for h in np.unique(hour):
        rows = hour == h
        out += changes_of(det.update(SampleBatch.from_arrays(
            np.zeros(int(rows.sum()), np.int32), ts[rows], kw[rows])))
    return out


def test_floor_and_level_are_learned_from_the_site() -> None:
    det = meters()
    ts, kw = duty_cycle(3.0, busy_kw=72.0)

    changes = hourly(det, ts, kw)

    # A third of the time at 72 kW, the rest at 2 kW: floor and level are this site's.
    assert det.floor_kw()[0] == pytest.approx(2.0, abs=0.5)
    assert det.level_kw()[0] == pytest.approx(72.0, abs=2.0)
    # Two production blocks a day, each entered and left once.
    assert [c[2] for c in changes] == [PRODUCTION, OFF] * 6
    assert [(c[1] - DAY0) / HOUR for c in changes[:4]] == [8.0, 12.0, 13.0, 17.0]


def test_a_line_producing_well_below_its_rating_is_still_production() -> None:
    det = meters()
    ts, kw = duty_cycle(3.0, busy_kw=25.0)

    changes = hourly(det, ts, kw)

    # The production level is kept at least _MIN_SPAN of the rating above the floor, so
    # 25 % of rated sits lower on the scale, but still well inside production.
    assert det.level_kw()[0] == pytest.approx(det.floor_kw()[0] + _MIN_SPAN * RATED)
    assert [c[2] for c in changes] == [PRODUCTION, OFF] * 6


def test_levels_change_only_when_a_meters_data_enters_a_new_hour() -> None:
    det = meters()
    det.update(series([3.0]))
    floor, level = det.floor_kw().copy(), det.level_kw().copy()

    det.update(series([90.0] * 59, start=DAY0 + 60))  # the rest of the first hour
    same_hour = det.floor_kw().copy(), det.level_kw().copy()
    det.update(series([90.0], start=DAY0 + HOUR))

    assert (same_hour[0], same_hour[1]) == (floor, level)
    assert det.level_kw()[0] > level[0]
    assert det.readings.level_kw.tolist() == det.level_kw().tolist()


def test_a_meter_that_only_ever_idles_keeps_its_maintenance_load_low_on_the_scale() -> None:
    # Two weeks of 15-minute readings at 5 % of rated power (a site shut for
    # rectification, only lighting and maintenance): the prior fades, but the learned
    # production level must stay far enough above the floor that 5 % of rated never
    # reaches the hidden-operation CUSUM allowance (u = 0.1).
    det = meters()
    ts = DAY0 + np.arange(0.0, 14 * 24 * HOUR, 900.0)
    kw = np.full(ts.shape[0], 5.0)
    loads = []
    for day in range(14):
        rows = slice(day * 96, (day + 1) * 96)
        changes = det.update(SampleBatch.from_arrays(np.zeros(96, np.int32), ts[rows], kw[rows]))
        assert PRODUCTION not in changes.severity.tolist()
        loads += det.readings.load.tolist()

    assert max(loads) < 0.1
    assert det.level_kw()[0] - det.floor_kw()[0] >= _MIN_SPAN * RATED - 1e-9


def test_a_meter_without_rated_power_is_not_judged() -> None:
    # Without a rating, idle and production cannot be told apart from the data alone.
    det = PlantStateDetector([0, 1], [NAN, RATED], 2)
    batch = SampleBatch.from_arrays([0, 0, 0, 1], [DAY0, DAY0 + 60, DAY0 + 120, DAY0],
                                    [4.0, 80.0, 4.0, 70.0])

    changes = det.update(batch)

    assert [(c[0], c[2]) for c in changes_of(changes)] == [(1, PRODUCTION)]
    assert det.readings.meter.tolist() == [1]
    assert det.state.tolist() == [OFF, PRODUCTION]


# --- bad rows ----------------------------------------------------------------------------


def test_unjudgeable_and_late_samples_change_nothing_and_are_counted() -> None:
    det = meters()
    det.update(series([3.0, 3.0]))  # up to DAY0 + 60
    batch = SampleBatch.from_arrays(
        point=[0] * 7,
        ts=[DAY0 + 120, DAY0 + 180, DAY0 + 240, NAN, DAY0 + 60, DAY0, DAY0 + 300],
        value=[NAN, math.inf, 90.0, 90.0, 90.0, 90.0, 3.0],
        quality=[0, 0, 4, 0, 0, 0, 0],  # 4: fault (D)
    )

    changes = det.update(batch)

    assert len(changes) == 0
    assert det.readings.ts.tolist() == [DAY0 + 300]
    assert det.skipped_samples == 4  # NaN, inf, fault flag, NaN ts
    assert det.late_samples == 2  # at or before the last judged sample


def test_duplicates_keep_the_first_arrival() -> None:
    det = meters()
    batch = SampleBatch.from_arrays([0, 0, 0], [DAY0, DAY0, DAY0 + 60], [70.0, 3.0, 70.0])

    first = det.update(batch)
    again = det.update(batch)  # QoS 1 redelivery

    assert [(c[1], c[2]) for c in changes_of(first)] == [(DAY0, PRODUCTION)]
    assert det.late_samples == 1 + 3
    assert len(again) == 0


def test_invalid_parameters_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="one value per meter"):
        PlantStateDetector([0, 1], [RATED], 2)
    with pytest.raises(ValueError, match="low_quantile"):
        PlantStateDetector([0], [RATED], 1, low_quantile=0.9, high_quantile=0.1)
    with pytest.raises(ValueError, match="standby_enter"):
        PlantStateDetector([0], [RATED], 1, production_leave=0.4)
    with pytest.raises(ValueError, match="half_life_s"):
        PlantStateDetector([0], [RATED], 1, half_life_s=0.0)


# --- batching ----------------------------------------------------------------------------


Run = tuple[list[Change], list[tuple[int, float, float, int, float, float]], list[float]]


def run(det: PlantStateDetector, batches: list[SampleBatch]) -> Run:
    """Every change, every reading (meter, ts, load, state, floor, level; sorted by meter
    and ts, as one batch would give them) and the final floor and level of each meter."""
    changes: list[Change] = []
    readings: list[tuple[int, float, float, int, float, float]] = []
    for batch in batches:
        changes += changes_of(det.update(batch))
        r = det.readings
        readings += list(zip(r.meter.tolist(), r.ts.tolist(), r.load.tolist(),
                             r.state.tolist(), r.floor_kw.tolist(), r.level_kw.tolist(),
                             strict=True))
    return changes, sorted(readings), det.floor_kw().tolist() + det.level_kw().tolist()


def two_meters_for(hours: float, step: float) -> SampleBatch:
    """Two rated meters, rows in time order: a duty cycle and a noisy furnace."""
    ts, kw = duty_cycle(hours / 24, step=step, start=DAY0 + 6 * HOUR)
    rng = np.random.default_rng(11)
    furnace = np.clip(rng.normal(40.0, 30.0, ts.shape[0]), 0.0, None)
    point = np.tile([0, 1], ts.shape[0])
    return SampleBatch.from_arrays(point, np.repeat(ts, 2),
                                   np.column_stack([kw, furnace]).ravel())


def split(batch: SampleBatch, cuts: Sequence[int]) -> list[SampleBatch]:
    edges = [0, *sorted(set(cuts)), len(batch)]
    return [SampleBatch.from_arrays(batch.point[a:b], batch.ts[a:b], batch.value[a:b])
            for a, b in itertools.pairwise(edges) if b > a]


def test_a_batch_straddling_an_hour_judges_like_hourly_batches() -> None:
    # The docstring promises floor and level that do not depend on batching: a batch
    # holding the end of one hour and the start of the next must refresh at the next
    # hour's first sample from everything before it, as hourly batches do.
    whole = two_meters_for(6.0, 60.0)
    hourly = np.flatnonzero(np.diff(np.floor(whole.ts / HOUR)) > 0) + 1

    assert run(meters(2), [whole]) == run(meters(2), split(whole, hourly.tolist()))
    assert run(meters(2), split(whole, [100, 130])) == run(meters(2), [whole])


@settings(max_examples=40, deadline=None)
@given(cuts=st.lists(st.integers(1, 2 * 6 * 12 - 1), max_size=12),
       step=st.sampled_from([60.0, 300.0, 900.0]))
def test_any_split_of_a_time_ordered_stream_gives_identical_results(
    cuts: list[int], step: float
) -> None:
    whole = two_meters_for(6.0 if step < 900 else 24.0, step)
    cuts = [c for c in cuts if c < len(whole)]

    assert run(meters(2), split(whole, cuts)) == run(meters(2), [whole])


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), redeliver=st.floats(0.0, 0.5))
def test_row_order_and_redelivery_inside_a_batch_change_nothing(
    seed: int, redeliver: float
) -> None:
    whole = two_meters_for(3.0, 300.0)
    rng = np.random.default_rng(seed)
    again = np.flatnonzero(rng.random(len(whole)) < redeliver)
    rows = rng.permutation(np.r_[np.arange(len(whole)), again])
    shuffled = SampleBatch.from_arrays(whole.point[rows], whole.ts[rows], whole.value[rows])

    det = meters(2)
    expected = run(meters(2), [whole])

    assert run(det, [shuffled]) == expected
    assert det.late_samples == again.shape[0]


# --- properties: hostile input -------------------------------------------------------------


@st.composite
def hostile_maintenance_stream(draw: st.DrawFn) -> tuple[list[SampleBatch], int]:
    """Meter 0 (of 2 points) never above 5 % of rated: gaps, NaN, inf, flags, negative
    values, out-of-order rows, redeliveries, any batching; and a non-meter point."""
    seed = draw(st.integers(0, 2**32 - 1))
    n = draw(st.integers(1, 600))
    step = draw(st.sampled_from([15.0, 60.0, 900.0]))
    rng = np.random.default_rng(seed)
    ts = DAY0 + np.cumsum(rng.choice([step, step, step, 7 * step, 50 * step], n))
    kw = rng.uniform(-1.0, 0.05 * RATED, n)
    kw[rng.random(n) < draw(st.floats(0.0, 0.3))] = NAN
    kw[rng.random(n) < 0.02] = math.inf
    ts[rng.random(n) < 0.02] = NAN
    quality = np.where(rng.random(n) < 0.05, rng.integers(1, 8, n), 0)
    point = np.where(rng.random(n) < 0.1, 1, 0)
    kw[point == 1] = 10 * RATED  # not a meter: must not matter
    order = np.arange(n)
    window = draw(st.integers(1, 20))  # local disorder, as QoS 1 redelivery produces
    order = np.argsort(order + rng.uniform(0, window, n))
    again = rng.random(n) < draw(st.floats(0.0, 0.3))
    rows = np.r_[order, order[again[order]]]
    cuts = sorted(set(rng.integers(0, rows.shape[0], draw(st.integers(0, 10))).tolist()))
    edges = [0, *cuts, rows.shape[0]]
    batches = [SampleBatch.from_arrays(point[rows[a:b]], ts[rows[a:b]], kw[rows[a:b]],
                                       quality[rows[a:b]])
               for a, b in itertools.pairwise(edges)]
    return batches, int(np.count_nonzero(point[rows] == 0))


@settings(max_examples=120, deadline=None)
@given(stream=hostile_maintenance_stream())
def test_hostile_input_never_crashes_and_maintenance_load_is_never_production(
    stream: tuple[list[SampleBatch], int]
) -> None:
    batches, meter_rows = stream
    det = PlantStateDetector(meter_point=[0], meter_rated_kw=[RATED], n_points=2)
    judged = 0
    last = -math.inf

    for batch in batches:
        changes = det.update(batch)
        assert PRODUCTION not in changes.severity.tolist()
        r = det.readings
        assert set(r.state.tolist()) <= {OFF, STANDBY}
        assert np.isfinite(r.load).all()
        assert (np.diff(r.ts) > 0).all()  # sorted, one reading per ts
        assert len(r) == 0 or r.ts[0] > last  # nothing judged twice or backwards
        last = float(r.ts[-1]) if len(r) else last
        judged += len(r)

    assert det.state.tolist() != [PRODUCTION]
    assert judged + det.skipped_samples + det.late_samples == meter_rows


def test_judging_on_a_cadence_gives_the_same_states_and_readings_later() -> None:
    whole = two_meters_for(6.0, 60.0)
    parts = split(whole, list(range(7, len(whole), 7)))  # a few minutes each
    held = meters(2, judge_every_s=600.0)
    changes: list[Change] = []
    readings: list[tuple[int, float, float, int, float, float]] = []
    lag = 0.0
    for part in parts:
        now = float(part.ts.max())
        for step in (lambda: held.update(part), lambda: held.sweep(now)):  # noqa: B023
            changes += changes_of(step())
            r = held.readings
            lag = max([lag, *(now - r.ts).tolist()])
            readings += list(zip(r.meter.tolist(), r.ts.tolist(), r.load.tolist(),
                                 r.state.tolist(), r.floor_kw.tolist(), r.level_kw.tolist(),
                                 strict=True))
    changes += changes_of(held.sweep(np.inf))
    readings += list(zip(held.readings.meter.tolist(), held.readings.ts.tolist(),
                         held.readings.load.tolist(), held.readings.state.tolist(),
                         held.readings.floor_kw.tolist(), held.readings.level_kw.tolist(),
                         strict=True))
    final = held.floor_kw().tolist() + held.level_kw().tolist()

    plain_changes, plain_readings, plain_final = run(meters(2), [whole])
    assert sorted(changes) == sorted(plain_changes)
    assert sorted(readings) == plain_readings
    assert final == plain_final
    assert 0.0 < lag <= 600.0 + 7 * 60.0


def test_held_meter_samples_are_judged_on_demand() -> None:
    whole = two_meters_for(3.0, 60.0)
    held = meters(2, judge_every_s=86_400.0)

    assert changes_of(held.update(whole)) == []
    assert len(held.readings.meter) == 0
    assert changes_of(held.judge_held()) == run(meters(2), [whole])[0]
    assert len(held.readings.meter) == len(whole)
    assert changes_of(held.judge_held()) == []


@pytest.mark.parametrize("meters", [1, _BINS - 1, _BINS, 700])
def test_running_sums_add_bin_after_bin_exactly_as_cumsum(meters: int) -> None:
    # Both paths (few meters: cumsum; many: one add per bin) must give the very sums
    # np.cumsum gives, bit for bit, or floor and level would move with the batching.
    rng = np.random.default_rng(meters)
    counts = rng.exponential(size=(_BINS, meters)) * (rng.random((_BINS, meters)) > 0.6)
    got = _running_sums(np.ascontiguousarray(counts))
    np.testing.assert_array_equal(got, np.cumsum(counts, axis=0))
    # The quantile search relies on sums that never fall.
    assert (np.diff(got, axis=0) >= 0).all()
