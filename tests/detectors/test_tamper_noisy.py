"""The noisy-replay signal of TamperDetector (code 4) on small synthetic devices.

A device of three watched points (fan current, ΔP, hopper temperature) reports every
30 s; its honest readings wander (AR(1) process noise) around a diurnal course, with
sensor noise, rounded to the sensor's decimals.  A disguised replay re-sends the same
hours of an earlier day scaled by 1.5 %, with noise below the last decimal and shifted
by one sample, as the simulators' ``fake_offline.replay_noisy`` does.
"""

from __future__ import annotations

import math
from itertools import pairwise

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detectors.base import SampleBatch
from detectors.tamper import NOISY_REPLAY, REPLAY, TamperDetector
from detectors.tamper_noisy import NoisyReplayJudge, pearson, winsorised
from tests.detectors.change_rows import Row, rows
from tests.detectors.test_tamper_reference import LAYOUT, SMALL, Reference, device_series

STEP = 30.0
DAY = 86_400.0
PER_DAY = int(DAY / STEP)
DECIMALS = np.array([1, 0, 1])


def ar1(rng: np.random.Generator, n: int, sigma: float, tau: float) -> np.ndarray:
    phi = math.exp(-1.0 / tau)
    drive = rng.normal(0.0, sigma * math.sqrt(1.0 - phi * phi), n)
    drive[0] = rng.normal(0.0, sigma)
    out = np.empty(n)
    out[0] = drive[0]
    for i in range(1, n):
        out[i] = phi * out[i - 1] + drive[i]
    return out


def honest(rng: np.random.Generator, days: int) -> np.ndarray:
    """Unrounded readings of a collector in production, one row per 30 s record."""
    n = days * PER_DAY
    hour = (np.arange(n) * STEP / 3600.0) % 24.0
    diurnal = np.cos(2.0 * np.pi * (hour - 14.0) / 24.0)  # the same course every day
    current = 41.0 + ar1(rng, n, 0.5, 20.0) + 0.2 * rng.normal(size=n)
    dp = 900.0 + ar1(rng, n, 15.0, 30.0) + 10.0 * rng.normal(size=n)
    temp = 24.0 + 2.0 * diurnal + ar1(rng, n, 0.3, 40.0) + 0.05 * rng.normal(size=n)
    return np.stack([current, dp, temp], axis=1)


def rounded(values: np.ndarray) -> np.ndarray:
    return np.stack([np.round(values[:, j], DECIMALS[j]) for j in range(3)], axis=1)


def disguised(rng: np.random.Generator, values: np.ndarray, start: int, stop: int,
              back: int) -> np.ndarray:
    """Records ``start:stop`` replaced by those ``back`` records earlier, disguised."""
    out = rounded(values)
    src = np.arange(start, stop) - back + 1  # shifted by one sample
    copy = values[src] * 1.015 + rng.normal(0.0, 0.6 * 10.0 ** -DECIMALS, (stop - start, 3))
    out[start:stop] = rounded(copy)
    return out


def records(values: np.ndarray, *, start: float = 0.0, first_point: int = 0) -> SampleBatch:
    n, k = values.shape
    ts = start + STEP * np.arange(n)
    return SampleBatch.from_arrays(np.tile(first_point + np.arange(k), n), np.repeat(ts, k),
                                   values.reshape(-1))


def run(values: np.ndarray, **kw: object) -> list[Row]:
    kw.setdefault("judge_every_s", 0.0)
    det = TamperDetector([0, 0, 0], [True] * 3, [-1] * 3, **kw)  # type: ignore[arg-type]
    return rows(det.update(records(values))) + rows(det.sweep(1e12))


# --- detection ------------------------------------------------------------------------

def test_fires_on_a_disguised_replay_of_a_day_old_window_and_clears() -> None:
    rng = np.random.default_rng(1)
    start, stop = PER_DAY + 10 * 120, PER_DAY + 12 * 120  # day 1, 10:00-12:00
    values = disguised(rng, honest(rng, 2), start, stop, PER_DAY)

    found = run(values)

    assert [(r[0], r[3], r[4], r[5]) for r in found] == [
        (0, NOISY_REPLAY, DAY, 0.75), (0, 0, -999.0, -999.0)]
    on, off = found
    began, ended = start * STEP, stop * STEP
    assert began + 30 * 60 <= on[1] <= began + 90 * 60  # the window must be mostly copied
    assert began - 45 * 60 <= on[2] <= began + 30 * 60  # since: the first agreeing window
    assert ended < off[1] <= ended + 60 * 60


def test_fires_on_a_week_old_window_with_the_week_lag() -> None:
    rng = np.random.default_rng(2)
    start, stop = 7 * PER_DAY + 14 * 120, 7 * PER_DAY + 16 * 120
    values = disguised(rng, honest(rng, 8), start, stop, 7 * PER_DAY)

    found = run(values)

    assert [(r[3], r[4]) for r in found] == [(NOISY_REPLAY, 7 * DAY), (0, -999.0)]


def test_an_exact_replay_outranks_the_noisy_one() -> None:
    rng = np.random.default_rng(3)
    values = rounded(honest(rng, 2))
    values[PER_DAY + 1200:PER_DAY + 1440] = values[1200:1440]  # an exact copy, 2 h

    found = run(values)

    assert found[0][3] == REPLAY
    assert NOISY_REPLAY not in [r[3] for r in found if r[1] < PER_DAY * STEP + 1440 * STEP]


def test_a_device_with_fewer_watched_points_than_noisy_min_points_is_not_judged() -> None:
    rng = np.random.default_rng(4)
    start, stop = PER_DAY + 10 * 120, PER_DAY + 12 * 120
    values = disguised(rng, honest(rng, 2), start, stop, PER_DAY)[:, :2]
    det = TamperDetector([0, 0], [True, True], [-1, -1], judge_every_s=0.0)

    found = rows(det.update(records(values))) + rows(det.sweep(1e12))

    assert found == []
    assert det.state_nbytes()["noisy_replay"] < 1000  # no ring for it either


# --- no false signal ------------------------------------------------------------------

def test_honest_noise_with_the_same_daily_course_never_fires() -> None:
    for seed in (5, 6):
        assert run(rounded(honest(np.random.default_rng(seed), 3))) == []


def test_an_exact_copy_of_a_flat_stretch_does_not_fire() -> None:
    """A flat window matches its flat past perfectly and means nothing: no movement, no
    correlation (frozen is the signal for that; its threshold is out of reach here)."""
    rng = np.random.default_rng(7)
    values = rounded(honest(rng, 2))
    flat = np.array([41.3, 902.0, 24.1])
    values[1200:1800] = flat
    values[PER_DAY + 1200:PER_DAY + 1800] = flat
    # ΔP flickers by one count now and then, at the same records both days.
    values[[1300, 1500, PER_DAY + 1300, PER_DAY + 1500], 1] += 1.0

    assert run(values, min_frozen_s=1e9) == []


def test_daily_start_ups_at_the_same_minute_do_not_fire() -> None:
    """Start at 08:00 and 13:00, stop at 12:00 and 17:30 sharp every day, the
    temperature climbing the same way after each start: a week of it."""
    rng = np.random.default_rng(8)
    days = 8
    values = honest(rng, days)
    on = np.zeros(PER_DAY)
    ramp = np.zeros(PER_DAY)
    for a, b in ((8.0, 12.0), (13.0, 17.5)):
        on[int(a * 120):int(b * 120)] = 1.0
        ramp[int(a * 120):int(a * 120) + 60] = np.linspace(0.0, 1.0, 60)
        ramp[int(a * 120) + 60:int(b * 120)] = 1.0
    values[:, 0] *= 0.2 + 0.8 * np.tile(on, days)
    values[:, 1] *= 0.3 + 0.7 * np.tile(on, days)
    values[:, 2] += 6.0 * np.tile(ramp, days)

    assert run(rounded(values)) == []


def test_a_dense_daily_schedule_is_told_from_a_replay_by_the_other_lags() -> None:
    """Load steps every 10 minutes from 08:00 to 16:00, the same steps at the same
    minutes every day, dominating every reading: each day looks like a copy of the day
    before, and also of the day before that, which a replay does not.  With the 2-day
    lag to compare, nothing fires from the third day on; judged at one lag alone, it
    would."""
    rng = np.random.default_rng(9)
    days = 4
    values = honest(rng, days)
    schedule = np.zeros(PER_DAY)
    levels = np.random.default_rng(99).uniform(-1.0, 1.0, 48)
    for k in range(48):
        schedule[8 * 120 + k * 20:8 * 120 + (k + 1) * 20] = levels[k]
    values += np.tile(schedule, days)[:, None] * np.array([6.0, 120.0, 1.5])
    values = rounded(values)

    def fired_from_day_2(found: list[Row]) -> list[Row]:
        return [r for r in found if r[3] == NOISY_REPLAY and r[1] >= 2 * DAY]

    assert fired_from_day_2(run(values)) == []
    assert fired_from_day_2(run(values, noisy_lags_s=(DAY,))) != []


# --- the arithmetic -----------------------------------------------------------------------

def test_winsorising_bounds_one_step_and_keeps_a_flat_window_flat() -> None:
    step = np.r_[np.random.default_rng(10).normal(0.0, 1.0, 19), 50.0]
    clipped = winsorised(step, 2.5)
    assert clipped[-1] < 5.0
    assert np.array_equal(clipped[:-1], step[:-1])
    flat = np.r_[np.zeros(15), 1.0, np.zeros(4)]  # mostly no change: MAD 0
    assert np.all(winsorised(flat, 2.5) == 0.0)
    assert math.isnan(float(pearson(winsorised(flat, 2.5), step, min_valid=4)))


def test_pearson_ignores_scale_offset_and_missing_pairs() -> None:
    rng = np.random.default_rng(11)
    x = rng.normal(size=20)
    y = 0.98 * x + 3.0
    y[[2, 7]] = np.nan
    assert float(pearson(x, y, min_valid=16)) == pytest.approx(1.0, abs=1e-12)
    assert math.isnan(float(pearson(x, y, min_valid=19)))


def test_ring_memory_is_float16_changes_over_the_longest_lag_and_window() -> None:
    det = TamperDetector([0, 0, 0], [True] * 3, [-1] * 3)
    slots = 7 * 720 + 20
    assert 3 * slots * 2 <= det.state_nbytes()["noisy_replay"] < 3 * slots * 2 + 1000


# --- batching and bad input -----------------------------------------------------------------

def ordered_stream(seed: int) -> SampleBatch:
    """The reference test's random devices (disguised replays included) in arrival
    order per device, with non-finite values and flagged rows mixed in."""
    rng = np.random.default_rng(seed)
    parts = []
    for d in range(3):
        points = [q for q, dd in enumerate(LAYOUT[0]) if dd == d]
        ts, values = device_series(rng, len(points), 300, float(rng.integers(0, 4)))
        for j, q in enumerate(points):
            parts.append((np.full(ts.shape[0], q), ts, values[:, j]))
    point = np.concatenate([p[0] for p in parts])
    ts = np.concatenate([p[1] for p in parts])
    value = np.concatenate([p[2] for p in parts])
    value[rng.random(value.shape[0]) < 0.03] = np.nan
    quality = np.where(rng.random(value.shape[0]) < 0.03, 4, 0)
    order = np.lexsort((point, ts))
    return SampleBatch.from_arrays(point[order], ts[order], value[order], quality[order])


def by_time(found: list[Row]) -> list[Row]:
    return sorted(found, key=lambda r: (r[1], r[0], r[3]))


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**16), cuts=st.lists(st.integers(1, 2600), max_size=40))
def test_verdicts_do_not_depend_on_where_batches_are_cut(seed: int, cuts: list[int]) -> None:
    stream = ordered_stream(seed)
    whole = TamperDetector(*LAYOUT, **SMALL)
    want = rows(whole.update(stream)) + rows(whole.sweep(1e12))
    cut = TamperDetector(*LAYOUT, **SMALL)
    got: list[Row] = []
    bounds = [0, *sorted(c for c in cuts if c < len(stream)), len(stream)]
    for lo, hi in pairwise(bounds):
        got += rows(cut.update(SampleBatch.from_arrays(
            stream.point[lo:hi], stream.ts[lo:hi], stream.value[lo:hi],
            stream.quality[lo:hi])))
    got += rows(cut.sweep(1e12))

    assert by_time(got) == by_time(want)
    assert cut.severity.tolist() == whole.severity.tolist()


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**16), jitter=st.floats(0.0, 20.0),
       nan_share=st.floats(0.0, 0.3), big=st.booleans())
def test_nan_gaps_and_out_of_order_arrival_match_the_reference(
    seed: int, jitter: float, nan_share: float, big: bool,
) -> None:
    """Late rows are dropped, NaN and flagged rows skipped, silent stretches leave
    missing slots, values beyond float16 changes leave missing changes: exactly as the
    record-at-a-time reference does, whatever the mess."""
    rng = np.random.default_rng(seed)
    stream = ordered_stream(seed)
    value = stream.value.copy()
    value[rng.random(value.shape[0]) < nan_share] = np.nan
    if big:
        value[rng.random(value.shape[0]) < 0.05] *= 1e6
    keep = ~((stream.ts > 400.0) & (stream.ts < 700.0) & (stream.point < 3))  # a gap
    arrival = stream.ts + rng.exponential(jitter + 1e-9, stream.ts.shape[0])
    order = np.argsort(arrival[keep], kind="stable")
    point, ts = stream.point[keep][order], stream.ts[keep][order]
    value, quality = value[keep][order], stream.quality[keep][order]
    params = {**SMALL, "noisy_every": 1, "noisy_min_hits": 1}
    det = TamperDetector(*LAYOUT, **params)
    ref = Reference(*LAYOUT, params)
    for lo in range(0, point.shape[0], 97):
        batch = SampleBatch.from_arrays(point[lo:lo + 97], ts[lo:lo + 97],
                                        value[lo:lo + 97], quality[lo:lo + 97])
        assert rows(det.update(batch)) == ref.update(batch)
    assert rows(det.sweep(1e12)) == ref.sweep(1e12)
    assert (det.late_samples, det.skipped_samples) == (ref.late, ref.skipped)


@pytest.mark.parametrize("end", [5, 19, 5059, 5070, 123_456])
def test_windows_of_one_newest_slot_read_the_same_as_the_general_gather(end: int) -> None:
    judge = NoisyReplayJudge(
        np.repeat(np.arange(100), 3).astype(np.int32), np.ones(300, dtype=np.bool_), 100,
        slot_s=120.0, window=20, every=3, lags_s=(86_400.0, 172_800.0, 604_800.0),
        min_corr=0.75, control_corr=0.45, min_points=3, min_hits=3, clear_misses=3,
        clip=2.5, min_valid=16)
    rng = np.random.default_rng(end)
    judge._ring[:] = rng.normal(size=judge._ring.shape).astype(np.float16)
    judge._ring[rng.random(judge._ring.shape) < 0.1] = np.nan
    rows = rng.permutation(300)[:200]
    one_end = judge._windows(rows, np.full(200, end))  # the block path
    mixed = np.full(200, end)
    mixed[-1] += 1  # one other newest slot: the general path
    general = judge._windows(rows, mixed)
    assert one_end.shape == (200, 20)
    assert one_end.flags.c_contiguous
    np.testing.assert_array_equal(one_end[:-1], general[:-1])
    assert not np.array_equal(one_end[-1], general[-1], equal_nan=True)
