"""TamperDetector on small synthetic devices: frozen, exact replay, clone, bad input."""

from __future__ import annotations

import math
from itertools import pairwise

import numpy as np
import pytest

from detectors.base import SampleBatch
from detectors.tamper import CLONE, FROZEN, REPLAY, TamperDetector
from detectors.tamper_records import device_time_order, segment_cummax
from tests.detectors.change_rows import Row, rows

NAN = math.nan
STEP = 30.0
DAY = 86_400.0




def records(values: np.ndarray, *, start: float = 0.0, first_point: int = 0,
            quality: np.ndarray | None = None, keep: np.ndarray | None = None) -> SampleBatch:
    """One record every 30 s from ``start``: row i of ``values`` holds the device's points."""
    n, k = values.shape
    ts = start + STEP * np.arange(n)
    sent = np.ones(n, dtype=bool) if keep is None else keep
    point = np.tile(first_point + np.arange(k), n)
    q = np.zeros((n, k), dtype=np.uint8) if quality is None else quality
    mask = np.repeat(sent, k)
    return SampleBatch.from_arrays(point[mask], np.repeat(ts, k)[mask],
                                   values.reshape(-1)[mask], q.reshape(-1)[mask])


def collector(n: int, rng: np.random.Generator, *, level: float = 1.0) -> np.ndarray:
    """A dust collector in production: fan current (A), ΔP (Pa), hopper temp (degC)."""
    wander = np.cumsum(rng.normal(0.0, 0.02, n))
    current = np.round(41.0 * level + 0.3 * rng.normal(size=n) + wander, 1)
    dp = np.round(900.0 + 80.0 * np.sin(np.arange(n) / 40.0) + 12.0 * rng.normal(size=n), 0)
    temp = np.round(24.0 + 0.01 * np.arange(n) + 0.08 * rng.normal(size=n), 1)
    return np.stack([current, dp, temp], axis=1)


def device(n_points: int = 3, groups: list[int] | None = None, **kw: float) -> TamperDetector:
    """One device, judged at every batch unless ``judge_every_s`` is given."""
    kw.setdefault("judge_every_s", 0.0)
    return TamperDetector([0] * n_points, [True] * n_points,
                          groups if groups is not None else [-1] * n_points, **kw)


def onsets(found: list[Row], severity: int) -> list[Row]:
    return [r for r in found if r[3] == severity]


# --- frozen ---------------------------------------------------------------------------

def test_frozen_device_fires_after_min_frozen_s_with_run_start_as_since() -> None:
    values = collector(240, np.random.default_rng(1))
    values[120:] = values[119]  # the device repeats its record 119 from then on
    det = device()

    found = rows(det.update(records(values)))

    # Record 119 (ts 3570) starts the run; 1200 s later is record 159.
    assert found == [(0, 4770.0, 3570.0, FROZEN, 1200.0, 1200.0)]
    assert det.severity.tolist() == [FROZEN, 0, 0]


def test_frozen_clears_at_the_first_changed_record() -> None:
    rng = np.random.default_rng(2)
    values = collector(200, rng)
    values[100:] = values[99]
    det = device()
    det.update(records(values))

    thawed = rows(det.update(records(collector(3, rng), start=200 * STEP)))

    assert thawed == [(0, 6000.0, 6000.0, 0, -999.0, -999.0)]
    assert det.severity.tolist() == [0, 0, 0]


def test_normal_noisy_data_never_fires() -> None:
    values = collector(2880, np.random.default_rng(3))  # a whole day

    assert rows(device().update(records(values))) == []


def test_steady_process_with_rare_flickers_never_fires() -> None:
    rng = np.random.default_rng(4)
    n = 720  # 6 h flat at sensor resolution
    values = np.tile([38.4, 850.0, 31.2], (n, 1))
    # ΔP flickers by one count every 5-12 min; the current once an hour; the
    # temperature creeps by 0.1 K now and then: some points flat for hours, never all.
    at = np.cumsum(rng.integers(10, 25, n // 10))
    values[at[at < n], 1] += 1.0
    values[np.arange(0, n, 120), 0] -= 0.1
    values[:, 2] += np.round(np.floor(np.arange(n) / 200) * 0.1, 1)

    assert rows(device().update(records(values))) == []


def test_learned_runs_raise_the_threshold_and_fade() -> None:
    rng = np.random.default_rng(5)
    det = device()
    # Three days on which the device honestly stands still for 15 min once a day.
    for day in range(3):
        values = collector(600, rng)
        values[200:230] = values[199]
        assert rows(det.update(records(values, start=day * DAY))) == []
    # Day 4: 25 min still is below 2 x 15 min and is learned; 65 min is over 2 x 25.
    values = collector(600, rng)
    values[100:150] = values[99]
    values[300:430] = values[299]
    found = rows(det.update(records(values, start=3 * DAY)))

    first_end = 3 * DAY + 149 * STEP
    since = 3 * DAY + 299 * STEP
    assert [(r[2], r[3]) for r in found] == [(since, FROZEN), (3 * DAY + 430 * STEP, 0)]
    ts, limit = found[0][1], found[0][5]
    assert limit == pytest.approx(2 * 1500.0 * 2 ** (-(ts - first_end) / (7 * DAY)))
    assert ts == since + math.ceil(limit / STEP) * STEP


def test_a_reported_freeze_does_not_teach_so_the_next_one_is_caught_too() -> None:
    rng = np.random.default_rng(8)
    det = device()
    found: list[Row] = []
    for day in range(3):
        values = collector(400, rng)
        values[100:300] = values[99]  # 100 min frozen, every day
        found += rows(det.update(records(values, start=day * DAY)))

    assert [(r[1] - r[2], r[3]) for r in found] == [(1200.0, FROZEN), (0.0, 0)] * 3


def test_a_silent_gap_does_not_count_as_frozen_time() -> None:
    values = collector(200, np.random.default_rng(6))
    det = device()
    det.update(records(values[:100]))
    # Two hours without data, then the same record as before the gap, then change.
    again = np.vstack([values[99:100]] * 3 + [values[100:]])

    assert rows(det.update(records(again, start=99 * STEP + 7200.0))) == []


def test_single_point_devices_are_not_judged_frozen_by_default() -> None:
    flat = np.full((200, 1), 1.0)  # a CO sensor at its zero: 1 ppm for 100 min

    assert rows(device(1).update(records(flat))) == []
    assert onsets(rows(device(1, frozen_min_points=1).update(records(flat))), FROZEN)


def test_plant_at_rest_fires_nothing() -> None:
    """Fan off all night: current 0 A, ΔP at its offset, temperature on the ambient.
    The same night repeated exactly on the next day must not look replayed either."""
    rng = np.random.default_rng(7)
    n = 1440  # 12 h
    ambient = 12.0 + 3.0 * np.cos(np.arange(n) / n * np.pi)
    night = np.stack([np.zeros(n), np.full(n, 3.0),
                      np.round(ambient + 0.08 * rng.normal(size=n), 1)], axis=1)
    flagged = np.zeros((n, 3), dtype=np.uint8)
    flagged[:, 1] = 1  # HJ 212 "F": stopped
    det = device()

    found: list[Row] = []
    for day in range(2):  # ΔP flagged "stopped", the usual case
        found += rows(det.update(records(night, start=day * DAY, quality=flagged)))
    for day in range(2, 4):  # ΔP offset reported as normal: only the temperature moves
        found += rows(det.update(records(night, start=day * DAY)))
    found += rows(det.update(records(np.zeros((n, 3)), start=4 * DAY)))  # all at zero

    assert found == []


# --- exact replay -----------------------------------------------------------------------

def replay_day(rng: np.random.Generator, *, drop: float = 0.0) -> tuple[
    SampleBatch, SampleBatch
]:
    """Day 0: 4 h of production.  Day 1: 1 h genuine, 2 h re-sent from day 0 (records
    120-359, the same clock hours a day later), 1 h genuine."""
    def sent(n: int) -> np.ndarray:
        lost = rng.random(n) < drop
        lost[1:] &= ~lost[:-1]
        return ~lost

    day0 = collector(480, rng)
    day1 = collector(480, rng, level=1.05)
    day1[120:360] = day0[120:360]
    return records(day0, keep=sent(480)), records(day1, start=DAY, keep=sent(480))


@pytest.mark.parametrize(("seed", "drop"), [(10, 0.0), (11, 0.1), (12, 0.1)])
def test_exact_replay_of_an_earlier_day_fires_and_clears(seed: int, drop: float) -> None:
    before, during = replay_day(np.random.default_rng(seed), drop=drop)
    det = device()

    assert rows(det.update(before)) == []
    found = rows(det.update(during))

    replay_start, replay_end = DAY + 120 * STEP, DAY + 360 * STEP
    assert [r[3] for r in found] == [REPLAY, 0]
    on, off = found
    assert on[4] == DAY  # value: the lag
    assert on[5] == 3600.0  # limit: min_lag_s
    assert replay_start <= on[2] < on[1] <= replay_start + 1800.0
    assert replay_end < off[1] <= replay_end + 1800.0


def test_replay_within_the_same_hour_is_not_a_replay() -> None:
    rng = np.random.default_rng(13)
    values = collector(100, rng)
    again = np.vstack([values, values])  # repeated after 50 min

    assert rows(device().update(records(again))) == []


def test_days_of_honest_production_never_look_replayed() -> None:
    rng = np.random.default_rng(14)
    det = device()
    found: list[Row] = []
    for day in range(4):
        found += rows(det.update(records(collector(960, rng), start=day * DAY)))

    assert found == []


def test_a_frozen_stretch_repeated_later_is_frozen_not_replayed() -> None:
    rng = np.random.default_rng(15)
    det = device()
    day0 = collector(300, rng)
    day0[100:200] = day0[99]
    day1 = collector(300, rng)
    day1[100:200] = day0[99]

    found = rows(det.update(records(day0))) + rows(det.update(records(day1, start=DAY)))

    assert [r[3] for r in found] == [FROZEN, 0, FROZEN, 0]


def test_replay_history_keeps_about_one_window_in_stride() -> None:
    det = device()
    det.update(records(collector(8000, np.random.default_rng(16))))

    assert 8000 / 8 * 0.5 < det.replay_anchors < 8000 / 8 * 1.3
    per_anchor = (det.state_nbytes()["replay"] - 200) / det.replay_anchors
    assert per_anchor <= 13.0


def test_history_forgets_after_history_s_and_stays_bounded() -> None:
    """Ten days with every window kept (stride 1), so the history merges and purges."""
    rng = np.random.default_rng(17)
    det = device(replay_stride=1)
    days = [collector(2880, rng, level=1.0 + 0.01 * day) for day in range(10)]
    days[8][1000:1300] = days[1][1000:1300]  # 7 days back
    days[9][1000:1300] = days[0][1000:1300]  # 9 days back: beyond the 8-day history
    found: list[Row] = []
    for day, values in enumerate(days):
        found += rows(det.update(records(values, start=day * DAY)))

    assert [(r[3], r[4]) for r in found] == [(REPLAY, 7 * DAY), (0, -999.0)]
    assert 8 * DAY + 1000 * STEP <= found[0][2] < found[0][1] < 8 * DAY + 1300 * STEP
    # Purged a day after expiry, at merges of the 8192-entry delta.
    assert det.replay_anchors < 9 * 2880 + 8192


# --- clone ----------------------------------------------------------------------------

def cooling(n: int, rng: np.random.Generator, *, flow: float = 20.0) -> np.ndarray:
    """Coil cooling: flow in and out (m³/h, 0.1 resolution, 0.8 % noise), pressure."""
    wander = flow * (1.0 + np.cumsum(rng.normal(0.0, 0.001, n)))
    flow_in = np.round(wander * (1.0 + 0.008 * rng.normal(size=n)), 1)
    flow_out = np.round(wander * (1.0 + 0.008 * rng.normal(size=n)), 1)
    pressure = np.round(0.35 + 0.003 * rng.normal(size=n), 3)
    return np.stack([flow_in, flow_out, pressure], axis=1)


def test_outlet_reporting_the_inlet_values_is_a_clone() -> None:
    values = cooling(400, np.random.default_rng(20))
    values[240:, 1] = values[240:, 0]
    det = device(groups=[0, 0, -1])

    found = rows(det.update(records(values)))

    assert len(found) == 1
    subject, ts, since, severity, source, moves = found[0]
    assert (subject, severity, source) == (1, CLONE, 0.0)
    assert 240 * STEP - 3 * STEP <= since <= 240 * STEP
    # The inlet moves on most samples: about ten joint moves, ten to fifteen samples.
    assert 6.0 <= moves <= 14.0
    assert since + 9 * STEP <= ts <= since + 20 * STEP
    assert det.severity.tolist() == [0, CLONE, 0]


def test_clone_clears_when_the_values_part() -> None:
    rng = np.random.default_rng(21)
    values = cooling(300, rng)
    values[100:200, 1] = values[100:200, 0]
    det = device(groups=[0, 0, -1])

    found = rows(det.update(records(values)))

    assert [r[3] for r in found] == [CLONE, 0]
    assert found[1][1] == found[1][2] >= 200 * STEP


def test_honest_coarse_meters_agreeing_half_the_time_are_not_clones() -> None:
    """Two 6 m³/h meters at 0.1 resolution agree on about half their samples, so ten
    equal samples in a row with a move or two happen every few hours; the pair's own
    rate of following each other's moves demands many more joint moves.  A rule on run
    length and two moves would fire."""
    values = cooling(5760, np.random.default_rng(23), flow=6.0)  # two days

    assert rows(device(groups=[0, 0, -1]).update(records(values))) == []
    naive = device(groups=[0, 0, -1], clone_alpha=0.999999)
    assert onsets(rows(naive.update(records(values))), CLONE)


def test_steady_flows_that_mostly_agree_are_not_clones() -> None:
    """A steady loop (negative.steady_flat): both meters read 38.3 and flicker now and
    then, so they agree on 80 % of samples and sometimes flicker together.  Runs of
    equal samples with a joint flicker or two are common; runs of ten joint moves are
    not.  A rule on run length and two moves would fire."""
    rng = np.random.default_rng(25)
    n = 720  # 6 h, after 2 h of production
    steady = np.stack([np.round(38.3 + 0.03 * rng.normal(size=n), 1),
                       np.round(38.3 + 0.03 * rng.normal(size=n), 1),
                       np.round(0.366 + 0.0003 * rng.normal(size=n), 3)], axis=1)
    values = np.vstack([cooling(240, rng, flow=38.3), steady])

    assert rows(device(groups=[0, 0, -1]).update(records(values))) == []
    naive = device(groups=[0, 0, -1], clone_alpha=0.999999)
    assert onsets(rows(naive.update(records(values))), CLONE)


def test_equal_but_unmoving_pairs_are_not_clones() -> None:
    values = np.tile([0.0, 0.0, 0.02], (300, 1))  # pump stopped: both flows read 0
    values[:, 2] += np.round(0.001 * np.random.default_rng(23).normal(size=300), 3)

    assert rows(device(groups=[0, 0, -1]).update(records(values))) == []


def test_clone_needs_both_points_in_the_same_group() -> None:
    values = cooling(300, np.random.default_rng(24))
    values[:, 1] = values[:, 0]

    assert rows(device(groups=[0, 1, -1]).update(records(values))) == []
    assert rows(device(groups=[-1, -1, -1]).update(records(values))) == []


# --- input handling, batching, sweep ------------------------------------------------------

def scenario(rng: np.random.Generator) -> SampleBatch:
    """Two devices over two days with a freeze, a replay and a clone in it."""
    a0, a1 = collector(480, rng), collector(480, rng, level=1.05)
    a1[120:360] = a0[120:360]
    a1[380:440] = a1[379]
    b = cooling(960, rng)
    b[500:700, 1] = b[500:700, 0]
    b[800:, 2] = b[799, 2]
    parts = [records(a0), records(a1, start=DAY),
             records(b[:480], first_point=3, start=5.0),
             records(b[480:], first_point=3, start=DAY + 5.0)]
    order = np.argsort(np.concatenate([p.ts for p in parts]), kind="stable")

    def cat(field: str) -> np.ndarray:
        return np.concatenate([getattr(p, field) for p in parts])[order]

    return SampleBatch.from_arrays(cat("point"), cat("ts"), cat("value"), cat("quality"))


def two_devices(judge_every_s: float = 0.0) -> TamperDetector:
    return TamperDetector([0, 0, 0, 1, 1, 1], [True] * 6, [-1, -1, -1, 0, 0, -1],
                          judge_every_s=judge_every_s)


def split(batch: SampleBatch, cuts: np.ndarray) -> list[SampleBatch]:
    bounds = np.concatenate(([0], np.sort(cuts), [len(batch)])).tolist()
    return [SampleBatch.from_arrays(batch.point[lo:hi], batch.ts[lo:hi], batch.value[lo:hi],
                                    batch.quality[lo:hi]) for lo, hi in pairwise(bounds)]


def test_the_scenario_shows_every_signal() -> None:
    found = rows(two_devices().update(scenario(np.random.default_rng(30))))

    assert sorted({(r[0], r[3]) for r in found}) == [
        (0, 0), (0, FROZEN), (0, REPLAY), (4, 0), (4, CLONE)]


@pytest.mark.parametrize("seed", [31, 32, 33])
def test_random_batch_splits_give_identical_changes(seed: int) -> None:
    rng = np.random.default_rng(seed)
    data = scenario(np.random.default_rng(30))
    whole = rows(two_devices().update(data))
    det = two_devices()
    parts: list[Row] = []
    # Cuts anywhere, also inside a record, from tiny batches to big ones.
    for part in split(data, rng.integers(0, len(data), int(rng.integers(5, 400)))):
        parts += rows(det.update(part))

    assert parts == whole


@pytest.mark.parametrize("seed", [34, 35])
def test_judging_on_a_cadence_gives_the_same_changes_later(seed: int) -> None:
    data = scenario(np.random.default_rng(30))
    batches = split(data, np.random.default_rng(seed).integers(0, len(data), 300))
    span = max(float(np.ptp(b.ts)) for b in batches if len(b))

    def run(det: TamperDetector) -> tuple[list[Row], float]:
        """All changes, and the most event time between a record and its row."""
        found: list[Row] = []
        late = 0.0
        for part in batches:
            now = float(part.ts.max()) if len(part) else -np.inf
            got = rows(det.update(part)) + rows(det.sweep(now))
            late = max([late, *(now - r[1] for r in got)])
            found += got
        return found + rows(det.sweep(1e12)), late

    plain, plain_late = run(two_devices())
    held, held_late = run(two_devices(judge_every_s=60.0))

    assert sorted(held) == sorted(plain)
    assert len(plain) > 4
    assert plain_late <= held_late <= plain_late + 60.0 + span


def test_devices_judged_together_equal_devices_judged_alone() -> None:
    data = scenario(np.random.default_rng(30))
    together = rows(two_devices().update(data))
    alone: list[Row] = []
    det = two_devices()
    for points in ([0, 1, 2], [3, 4, 5]):
        mine = np.isin(data.point, points)
        alone += rows(det.update(SampleBatch.from_arrays(
            data.point[mine], data.ts[mine], data.value[mine], data.quality[mine])))

    assert sorted(alone, key=lambda r: (r[1], r[0])) == together


def test_unjudgeable_samples_change_nothing_and_are_counted() -> None:
    values = collector(240, np.random.default_rng(40))
    values[120:] = values[119]
    clean = records(values)
    expected = rows(device().update(clean))
    n = len(clean)
    # Bad rows spliced in: NaN/inf values, NaN ts, a fault flag, duplicates that
    # arrive later with other values, and rows older than what was already judged.
    bad_point = np.array([0, 1, 2, 0, 1, 0, 2])
    bad_ts = np.array([100 * STEP, 110 * STEP, NAN, 30 * STEP, 30 * STEP, 50 * STEP,
                       60 * STEP])
    bad_value = np.array([NAN, math.inf, 5.0, 7.0, 7.0, 1.0, 2.0])
    bad_quality = np.array([0, 0, 0, 4, 0, 0, 0])
    at = np.array([n // 2] * 7)
    mixed = SampleBatch.from_arrays(
        np.insert(clean.point, at, bad_point), np.insert(clean.ts, at, bad_ts),
        np.insert(clean.value, at, bad_value), np.insert(clean.quality, at, bad_quality))
    det = device()

    found = rows(det.update(mixed))
    again = rows(det.update(SampleBatch.from_arrays([0, 1], [10.0, 239 * STEP], [3.0, 3.0])))

    assert found == expected
    assert again == []
    assert det.skipped_samples == 4  # NaN value, inf value, NaN ts, fault flag
    assert det.late_samples == 3 + 2  # three later duplicates; ts 10 and a held duplicate


def test_unwatched_points_are_ignored() -> None:
    values = collector(240, np.random.default_rng(41))
    values[120:] = values[119]
    det = TamperDetector([0, 0, 0], [False, False, False], [-1, -1, -1])

    assert rows(det.update(records(values))) == []
    assert det.late_samples == det.skipped_samples == 0


def test_sweep_judges_the_newest_record_once_the_watermark_passes_it() -> None:
    values = collector(159, np.random.default_rng(42))
    values[119:] = values[118]  # run from record 118 (3540 s); the last, 158, is 4740 s
    det = device()
    assert rows(det.update(records(values))) == []

    assert rows(det.sweep(159 * STEP)) == []  # 30 s after it: still open
    assert rows(det.sweep(4740.0 + 299.0)) == []  # closes close_after_s (300 s) after it
    assert rows(det.sweep(4740.0 + 300.0)) == [(0, 4740.0, 3540.0, FROZEN, 1200.0, 1200.0)]
    assert rows(det.sweep(1e12)) == []


def test_bad_arguments_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="same length"):
        TamperDetector([0, 0], [True], [-1, -1])
    with pytest.raises(ValueError, match="out of range"):
        device().update(SampleBatch.from_arrays([3], [0.0], [1.0]))
    with pytest.raises(ValueError, match="replay"):
        device(replay_min_lag_s=9 * DAY)


@pytest.mark.parametrize(("resolution", "span"), [(1.0, 600.0), (0.001, 2.0), (1e-6, 0.05)])
def test_device_time_order_equals_lexsort(resolution: float, span: float) -> None:
    """The fast key sort (whole milliseconds) and its fallback (sub-millisecond times
    that share a millisecond) both order like lexsort."""
    rng = np.random.default_rng(7)
    d = rng.integers(0, 50, 5000).astype(np.int32)
    t = 1.7e9 + np.round(rng.uniform(0, span, 5000) / resolution) * resolution

    assert device_time_order(d, t).tolist() == np.lexsort((t, d)).tolist()


@pytest.mark.parametrize("longest", [3, 16, 40])
def test_segment_cummax_equals_a_loop(longest: int) -> None:
    """Short segments take the rank-by-rank path, long ones the sorted one."""
    rng = np.random.default_rng(longest)
    sizes = rng.integers(1, longest + 1, 300)
    first = np.zeros(int(sizes.sum()), dtype=bool)
    first[np.cumsum(sizes) - sizes] = True
    x = np.where(rng.random(first.shape[0]) < 0.2, -np.inf, rng.normal(size=first.shape[0]))
    seed = rng.normal(size=first.shape[0])
    want, running = [], -np.inf
    for i in range(first.shape[0]):
        running = max(x[i], seed[i]) if first[i] else max(running, x[i])
        want.append(running)

    assert segment_cummax(x, first, seed).tolist() == want


def test_held_tamper_samples_are_judged_on_demand() -> None:
    data = scenario(np.random.default_rng(30))
    held = two_devices(judge_every_s=86_400.0)

    assert rows(held.update(data)) == []
    assert rows(held.judge_held()) == rows(two_devices().update(data))
    assert rows(held.judge_held()) == []
