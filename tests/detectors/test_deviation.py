"""DeviationDetector: shifts, history, hysteresis, the run-state gate, bad rows, batch cuts."""

from __future__ import annotations

import math
from itertools import chain

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.reference_deviation import DeviationReference
from detectors.base import SampleBatch
from detectors.deviation import DeviationDetector, _sequential_sums
from tests.detectors.change_rows import Row, awkward_rows, resent_after_originals, rows

NAN = math.nan
T0 = 1_795_478_400.0  # epoch seconds, a multiple of the 600 s bucket
HOUR = 3600.0

FAN, GATE = 0, 1
"""The dust collector: fan current (A, watched) and its run state (0/1)."""

SHORT: dict[str, float] = {"buckets": 36, "min_buckets": 12, "z_on": 6.0, "z_off": 4.0,
                           "on_delay_s": 300.0}
"""A 6-hour memory: the unit tests' streams are hours long, not days (the production
defaults need 12 h of running before a verdict)."""


def collector(**kwargs: object) -> DeviationDetector:
    """Fan current gated by the run state, production defaults unless overridden."""
    return DeviationDetector(np.array([True, False]), np.array([GATE, -1]),
                             **{**SHORT, **kwargs})  # type: ignore[arg-type]


def fan_stream(ts: np.ndarray, amps: np.ndarray, running: np.ndarray | None = None
               ) -> SampleBatch:
    """One message per ts: the gate (1 unless ``running`` says otherwise), then the fan."""
    gate = np.ones(ts.shape[0]) if running is None else running.astype(float)
    n = ts.shape[0]
    return SampleBatch.from_arrays(np.tile([GATE, FAN], n), np.repeat(ts, 2),
                                   np.column_stack((gate, amps)).reshape(-1))


def noisy_fan(rng: np.random.Generator, hours: float, *, step: float = 30.0,
              level: float = 50.0, sd: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    ts = T0 + np.arange(0.0, hours * HOUR, step)
    return ts, level + rng.normal(0.0, sd, size=(ts.shape[0],))


def reference_rows(got: list[tuple[int, float, float, int, float, float]]) -> list[Row]:
    """The reference's rows with NaN as -999, like :func:`rows`."""
    return [tuple(-999.0 if isinstance(x, float) and math.isnan(x) else x  # type: ignore[misc]
                  for x in r) for r in got]


def assert_same(got: list[Row], want: list[Row]) -> None:
    """Equal rows; z within 1e-9 relative (in fact the two agree bit for bit)."""
    assert [r[:4] + r[5:] for r in got] == [r[:4] + r[5:] for r in want]
    for g, w in zip(got, want, strict=True):
        assert g[4] == pytest.approx(w[4], rel=1e-9, abs=1e-12)


# --- firing --------------------------------------------------------------------------


@pytest.mark.parametrize(("factor", "sign"), [(0.6, -1), (1.3, 1)])
def test_a_level_shift_fires_after_the_on_delay_with_its_direction(
    factor: float, sign: int
) -> None:
    rng = np.random.default_rng(1)
    ts, amps = noisy_fan(rng, 6.0)
    shift_at = T0 + 4 * HOUR
    amps[ts >= shift_at] *= factor
    det = collector()

    changes = rows(det.update(fan_stream(ts, amps)))

    ref = DeviationReference([True, False], [GATE, -1], **SHORT)  # type: ignore[arg-type]
    assert_same(changes, reference_rows(ref.update(fan_stream(ts, amps))))
    fired = changes[0]
    assert fired[0] == FAN
    assert fired[2] == shift_at  # since: the first shifted sample
    assert fired[1] == shift_at + 300.0  # the on-delay, on 30 s samples
    assert fired[3] == sign
    assert fired[5] == 6.0
    # z against a baseline of about 50 A +- 0.5: tens of sigmas.
    assert sign * fired[4] > 20.0
    assert det.severity.tolist() == [sign, 0]


def test_fires_only_once_the_ring_holds_min_buckets_of_running_history() -> None:
    rng = np.random.default_rng(2)
    ts, amps = noisy_fan(rng, 5.0)
    amps[ts >= T0 + 1.5 * HOUR] *= 0.6  # 1.25 h after settling: 7 buckets of history

    changes = rows(collector().update(fan_stream(ts, amps)))

    # Settled at 15 min: the first bucket is 15-20 min (buckets are aligned to 10 min),
    # so the 12th is pushed at 2 h 10 min.
    assert changes[0][3] == -1
    assert changes[0][2] == T0 + 130 * 60.0  # the first sample with a baseline
    # The shift is learned: with more shifted buckets than normal ones in the ring,
    # the median moves to the new level and the alarm clears.
    assert [r[3] for r in changes] == [-1, 0]
    assert changes[1][1] > T0 + 2.5 * HOUR


def test_stopped_time_is_not_history() -> None:
    """The ring learns running time only: an hour of running, a night off, an hour."""
    rng = np.random.default_rng(3)
    ts, amps = noisy_fan(rng, 12.0)
    running = (ts < T0 + 1.25 * HOUR) | (ts >= T0 + 10 * HOUR)
    amps = np.where(running, amps, 0.0)
    amps[ts >= T0 + 11.5 * HOUR] *= 0.6

    changes = rows(collector().update(fan_stream(ts, amps, running)))

    # History: 1 h before the stop, then settled at 10:15 -> 12 buckets at about 11:15.
    assert [r[3] for r in changes] == [-1]
    assert changes[0][2] == T0 + 11.5 * HOUR


def test_clears_with_hysteresis() -> None:
    # A floor of 1 A and no relative floor: z is exactly amps - 50.
    det = collector(scale_floor=1.0, scale_floor_rel=0.0, on_delay_s=0.0)
    ts = T0 + np.arange(0.0, 4 * HOUR, 30.0)
    amps = 50.0 + np.where(np.arange(ts.shape[0]) % 2, 0.25, -0.25)
    assert len(det.update(fan_stream(ts, amps))) == 0

    tail = T0 + 4 * HOUR + 30.0 * np.arange(6)
    changes = rows(det.update(fan_stream(tail, np.array([43.0, 45.0, 46.0, 44.0, 47.0,
                                                         46.5]))))

    assert changes == [(FAN, tail[0], tail[0], -1, -7.0, 6.0),
                       (FAN, tail[4], tail[4], 0, -3.0, -999.0)]


def test_a_jump_across_leaves_one_band_and_enters_the_other() -> None:
    det = collector(scale_floor=1.0, scale_floor_rel=0.0, on_delay_s=0.0)
    ts = T0 + np.arange(0.0, 4 * HOUR, 30.0)
    det.update(fan_stream(ts, np.full(ts.shape[0], 50.0)))
    tail = T0 + 4 * HOUR + 30.0 * np.arange(3)

    changes = rows(det.update(fan_stream(tail, np.array([57.0, 43.0, 55.0]))))

    assert [(r[1], r[3], r[4]) for r in changes] == [(tail[0], 1, 7.0), (tail[1], -1, -7.0),
                                                      (tail[2], 0, 5.0)]


def test_a_steady_reading_is_judged_against_the_floor() -> None:
    det = collector(on_delay_s=0.0)  # 1 % of 50 A: 0.5 A
    ts = T0 + np.arange(0.0, 4 * HOUR, 30.0)
    det.update(fan_stream(ts, np.full(ts.shape[0], 50.0)))
    tail = T0 + 4 * HOUR + 30.0 * np.arange(2)

    changes = rows(det.update(fan_stream(tail, np.array([50.1, 53.5]))))

    assert [(r[1], r[3], r[4]) for r in changes] == [(tail[1], 1, 7.0)]


def test_an_ungated_point_is_always_judged() -> None:
    rng = np.random.default_rng(4)
    ts, temp = noisy_fan(rng, 5.0, level=30.0, sd=0.1)
    temp[ts >= T0 + 4 * HOUR] += 3.0
    det = DeviationDetector(np.array([True]), scale_floor=0.2, scale_floor_rel=0.0,
                            **SHORT)  # type: ignore[arg-type]

    changes = rows(det.update(SampleBatch.from_arrays([0] * ts.shape[0], ts, temp)))

    assert [(r[2], r[3]) for r in changes] == [(T0 + 4 * HOUR, 1)]


# --- the run-state gate --------------------------------------------------------------


def running_then_stopped(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """4 h of running, a night stopped at 0 A, a restart with a start-up surge."""
    ts, amps = noisy_fan(rng, 16.0)
    running = (ts < T0 + 4 * HOUR) | (ts >= T0 + 12 * HOUR)
    amps = np.where(running, amps, 0.0)
    surge = (ts >= T0 + 12 * HOUR) & (ts < T0 + 12 * HOUR + 600.0)
    amps[surge] = 90.0  # start-up current for 10 min, inside the 15 min settle time
    return ts, amps, running


def test_a_stop_and_a_start_up_surge_never_fire() -> None:
    ts, amps, running = running_then_stopped(np.random.default_rng(5))
    det = collector()

    assert len(det.update(fan_stream(ts, amps, running))) == 0
    assert det.skipped_samples == det.late_samples == 0


def test_a_deviation_inside_the_settle_time_does_not_fire() -> None:
    ts, amps, running = running_then_stopped(np.random.default_rng(6))
    restart = T0 + 12 * HOUR
    early = amps.copy()
    early[(ts >= restart) & (ts < restart + 900.0)] = 20.0  # longer than the on-delay

    assert len(collector().update(fan_stream(ts, early, running))) == 0

    # The same deviation once settled fires (and clears when it ends).
    late = amps.copy()
    late[(ts >= restart + 900.0) & (ts < restart + 1800.0)] = 20.0
    changes = rows(collector().update(fan_stream(ts, late, running)))
    assert [(r[1], r[2], r[3]) for r in changes] == [
        (restart + 1200.0, restart + 900.0, -1), (restart + 1800.0, restart + 1800.0, 0)]


def test_a_firing_alarm_clears_when_the_gate_stops() -> None:
    rng = np.random.default_rng(7)
    ts, amps = noisy_fan(rng, 6.0)
    amps[ts >= T0 + 5 * HOUR] *= 0.6
    running = ts < T0 + 5.5 * HOUR
    amps[~running] = 0.0
    det = collector()

    changes = rows(det.update(fan_stream(ts, amps, running)))

    stop = T0 + 5.5 * HOUR
    assert [r[3] for r in changes] == [-1, 0]
    assert changes[1] == (FAN, stop, stop, 0, -999.0, -999.0)
    assert det.severity.tolist() == [0, 0]


def test_the_gate_at_the_same_ts_counts_first_in_any_arrival_order() -> None:
    det = collector(on_delay_s=0.0)
    rng = np.random.default_rng(8)
    ts, amps = noisy_fan(rng, 4.0)
    det.update(fan_stream(ts, amps))
    stop = T0 + 4 * HOUR
    # The fan sample before its gate in the message: 0 A, but the gate says stopped.
    message = SampleBatch.from_arrays([FAN, GATE], [stop, stop], [0.0, 0.0])

    assert len(det.update(message)) == 0
    assert det.severity.tolist() == [0, 0]


def test_a_restart_must_settle_and_deviate_for_the_on_delay_again() -> None:
    rng = np.random.default_rng(9)
    ts, amps = noisy_fan(rng, 8.0)
    amps[ts >= T0 + 5 * HOUR] *= 0.6  # the belt stays slipped across a short stop
    running = (ts < T0 + 5.5 * HOUR) | (ts >= T0 + 6 * HOUR)
    amps[~running] = 0.0

    changes = rows(collector().update(fan_stream(ts, amps, running)))

    restart = T0 + 6 * HOUR
    assert [(r[1], r[2], r[3]) for r in changes][:3] == [
        (T0 + 5 * HOUR + 300.0, T0 + 5 * HOUR, -1),
        (T0 + 5.5 * HOUR, T0 + 5.5 * HOUR, 0),
        (restart + 900.0 + 300.0, restart + 900.0, -1),
    ]


def test_several_points_share_a_gate() -> None:
    # Two fans of one collector and an ungated cooling loop, in scrambled point order.
    watched = np.array([False, True, True, False, True])
    gate = np.array([-1, 3, 3, -1, -1])
    rng = np.random.default_rng(10)
    ts, a = noisy_fan(rng, 6.0)
    b = 40.0 + rng.normal(0.0, 0.5, size=(ts.shape[0],))
    temp = 30.0 + rng.normal(0.0, 0.1, size=(ts.shape[0],))
    a[ts >= T0 + 5 * HOUR] *= 0.6
    b[ts >= T0 + 5 * HOUR] *= 1.5
    running = ts < T0 + 5.5 * HOUR
    n = ts.shape[0]
    batch = SampleBatch.from_arrays(
        np.tile([3, 1, 2, 4, 0], n), np.repeat(ts, 5),
        np.column_stack((running, a, b, temp, rng.normal(size=n))).reshape(-1))
    det = DeviationDetector(watched, gate, **SHORT)  # type: ignore[arg-type]

    changes = rows(det.update(batch))

    ref = DeviationReference(watched.tolist(), gate.tolist(), **SHORT)  # type: ignore[arg-type]
    assert_same(changes, reference_rows(ref.update(batch)))
    stop = T0 + 5.5 * HOUR
    assert [(r[0], r[3]) for r in changes if r[1] == stop] == [(1, 0), (2, 0)]
    assert {(r[0], r[3]) for r in changes if r[1] < stop} == {(1, -1), (2, 1)}


# --- not firing ----------------------------------------------------------------------


def test_a_day_of_gaussian_noise_never_fires() -> None:
    rng = np.random.default_rng(11)
    ts, amps = noisy_fan(rng, 24.0, step=10.0)
    running = ((ts - T0) % (8 * HOUR)) < 6 * HOUR  # runs 6 h, stops 2 h
    amps[~running] = 0.0
    det = collector(on_delay_s=0.0)

    assert len(det.update(fan_stream(ts, amps, running))) == 0


def test_the_on_delay_holds_back_a_short_excursion() -> None:
    rng = np.random.default_rng(12)
    ts, amps = noisy_fan(rng, 6.0)
    short = (ts >= T0 + 4 * HOUR) & (ts < T0 + 4 * HOUR + 270.0)  # 9 samples: 240 s run
    amps[short] *= 0.6

    assert len(collector().update(fan_stream(ts, amps))) == 0
    assert [r[3] for r in rows(collector(on_delay_s=0.0).update(fan_stream(ts, amps)))] \
        == [-1, 0]


def test_the_on_delay_may_be_per_point() -> None:
    watched = np.array([True, True, False])
    rng = np.random.default_rng(13)
    ts, a = noisy_fan(rng, 5.0)
    a[ts >= T0 + 4 * HOUR] *= 0.6
    n = ts.shape[0]
    batch = SampleBatch.from_arrays(np.tile([2, 0, 1], n), np.repeat(ts, 3),
                                    np.column_stack((np.ones(n), a, a)).reshape(-1))
    det = DeviationDetector(watched, np.array([2, 2, -1]), **{
        **SHORT, "on_delay_s": [60.0, 600.0, NAN]})  # type: ignore[arg-type]

    changes = rows(det.update(batch))

    assert [(r[0], r[1] - r[2]) for r in changes] == [(0, 60.0), (1, 600.0)]


# --- bad input -----------------------------------------------------------------------


def test_unjudgeable_samples_change_nothing_and_are_counted() -> None:
    det = collector(scale_floor=1.0, scale_floor_rel=0.0, on_delay_s=0.0)
    ts = T0 + np.arange(0.0, 4 * HOUR, 30.0)
    det.update(fan_stream(ts, np.full(ts.shape[0], 50.0)))
    now = T0 + 4 * HOUR
    batch = SampleBatch.from_arrays(
        point=[FAN, FAN, FAN, FAN, FAN, GATE, GATE, FAN],
        ts=[now, now + 30, NAN, ts[-1], now + 60, now + 90, now - 30, now + 120],
        value=[NAN, 0.0, 0.0, 0.0, math.inf, 0.0, 0.0, 50.0],
        quality=[0, 4, 0, 0, 0, 1, 0, 0],
    )

    assert len(det.update(batch)) == 0
    assert det.skipped_samples == 5  # NaN, flag 4, NaN ts, inf, the gate's flag 1
    assert det.late_samples == 2  # the fan at its last ts, the gate at its last ts
    assert det.severity.tolist() == [0, 0]


def test_duplicates_keep_the_first_arrival() -> None:
    det = collector(scale_floor=1.0, scale_floor_rel=0.0, on_delay_s=0.0)
    ts = T0 + np.arange(0.0, 4 * HOUR, 30.0)
    det.update(fan_stream(ts, np.full(ts.shape[0], 50.0)))
    now = T0 + 4 * HOUR
    batch = SampleBatch.from_arrays([FAN, GATE, FAN, GATE], [now, now, now, now],
                                    [40.0, 1.0, 50.0, 0.0])

    first = rows(det.update(batch))
    again = det.update(batch)  # redelivery of the whole message

    assert [(r[1], r[3], r[4]) for r in first] == [(now, -1, -10.0)]
    assert len(again) == 0
    assert det.late_samples == 2 + 4


def test_points_neither_watched_nor_gates_are_ignored() -> None:
    det = DeviationDetector(np.array([True, False, False]), np.array([1, -1, 0]),
                            **SHORT)  # type: ignore[arg-type]
    batch = SampleBatch.from_arrays([2, 2, 0], [T0, NAN, T0], [1.0, 1.0, NAN])

    assert len(det.update(batch)) == 0
    assert det.skipped_samples == 1  # only the watched point's NaN


def test_absurd_values_neither_crash_nor_warn() -> None:
    import warnings

    det = collector(bucket_s=60.0, buckets=4, min_buckets=2, min_bucket_samples=2,
                    settle_s=0.0, on_delay_s=0.0)
    ts = T0 + np.arange(0.0, 900.0, 10.0)
    amps = np.tile([1e300, -1e300, 1.7e308, -1.7e308, 50.0, 1e-300], 15)
    ref = DeviationReference([True, False], [GATE, -1], bucket_s=60.0, buckets=4,
                             min_buckets=2, min_bucket_samples=2, settle_s=0.0,
                             on_delay_s=0.0)

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        changes = rows(det.update(fan_stream(ts, amps)))

    assert_same(changes, reference_rows(ref.update(fan_stream(ts, amps))))


def test_bad_point_index_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="out of range"):
        collector().update(SampleBatch.from_arrays([2], [T0], [0.0]))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"watched": [1, 0]}, "watched"),
        ({"gate_point": [1.0, -1.0]}, "gate_point"),
        ({"gate_point": [1]}, "gate_point"),
        ({"gate_point": [2, -1]}, "gate_point"),
        ({"gate_point": [-2, -1]}, "gate_point"),
        ({"watched": [True, True]}, "must not be watched"),
        ({"bucket_s": 0.0}, "bucket_s"),
        ({"min_buckets": 0}, "min_buckets"),
        ({"min_buckets": 145}, "min_buckets"),
        ({"min_bucket_samples": 1}, "min_bucket_samples"),
        ({"z_off": 7.0}, "z_off"),
        ({"z_off": 0.0}, "z_off"),
        ({"settle_s": -1.0}, "settle_s"),
        ({"on_delay_s": [1.0, 2.0, 3.0]}, "on_delay_s"),
        ({"on_delay_s": math.inf}, "on_delay_s"),
        ({"scale_floor": -1.0}, "scale_floor"),
        ({"scale_floor_rel": NAN}, "scale_floor_rel"),
        ({"judge_every_s": -1.0}, "every_s"),
    ],
)
def test_bad_parameters_are_clear_errors(kwargs: dict[str, object], match: str) -> None:
    arguments: dict[str, object] = {"watched": np.array([True, False]),
                                    "gate_point": np.array([1, -1])}
    for name in ("watched", "gate_point"):
        if name in kwargs:
            arguments[name] = np.array(kwargs.pop(name))
    with pytest.raises(ValueError, match=match):
        DeviationDetector(**arguments, **kwargs)  # type: ignore[arg-type]


def test_severity_is_a_read_only_view_and_state_has_a_size() -> None:
    det = collector()

    with pytest.raises(ValueError, match="read-only"):
        det.severity[0] = 1
    assert det.state_nbytes() > 36 * 16
    assert len(det.sweep(T0)) == 0
    assert det.sweep(T0).rule == "deviation"


def test_no_watched_points_is_a_no_op() -> None:
    det = DeviationDetector(np.zeros(2, dtype=bool), np.array([1, -1]))

    assert len(det.update(SampleBatch.from_arrays([0, 1], [T0, T0], [1.0, 1.0]))) == 0


def test_bucket_sums_add_in_sample_order_whatever_the_segment_lengths() -> None:
    rng = np.random.default_rng(15)
    seg_len = rng.choice([1, 2, 3, 7, 30, 200], 50)
    values = rng.normal(size=(2, int(seg_len.sum()))) * np.exp(rng.normal(size=1) * 8)
    seed = rng.normal(size=(2, 50)) * 1e6
    seg_of_row = np.repeat(np.arange(50), seg_len)
    rank = np.arange(seg_of_row.shape[0]) - np.repeat(np.cumsum(seg_len) - seg_len, seg_len)

    got = _sequential_sums(values, seg_of_row, rank, seg_len, seed)

    for k in range(2):
        for s in range(50):
            total = float(seed[k, s])
            for x in values[k, seg_of_row == s].tolist():
                total += x
            assert got[k, s] == total  # bit for bit, not just close


# --- oracle: the per-sample reference, on random streams cut into random batches -------


def random_config(rng: np.random.Generator) -> dict[str, object]:
    """Small buckets and rings so that a short stream has verdicts, fires and clears."""
    buckets = int(rng.integers(2, 7))
    return {
        "bucket_s": float(rng.choice([30.0, 60.0, 90.0])),
        "buckets": buckets,
        "min_buckets": int(rng.integers(1, buckets + 1)),
        "min_bucket_samples": int(rng.choice([2, 3, 4])),
        "settle_s": float(rng.choice([0.0, 20.0, 60.0])),
        "z_on": float(rng.choice([3.0, 6.0])),
        "z_off": float(rng.choice([1.0, 2.5])),
        "on_delay_s": float(rng.choice([0.0, 15.0, 40.0])),
        "scale_floor": float(rng.choice([0.0, 0.3])),
        "scale_floor_rel": float(rng.choice([0.0, 0.01])),
    }


Message = tuple[list[int], list[float], list[float], list[int]]


def random_layout(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, list[list[int]]]:
    """Points in a scrambled order: devices with a gate and 1-2 watched points, an
    ungated watched point and an unrelated point.  Returns watched, gate, devices
    (each [gate or -1, watched...], plus the unrelated point as a device of its own)."""
    n_devices = int(rng.integers(1, 4))
    devices: list[list[int]] = []
    n_points = 0
    for _ in range(n_devices):
        size = 1 + int(rng.integers(1, 3))
        devices.append(list(range(n_points, n_points + size)))
        n_points += size
    devices.append([-1, n_points])  # ungated
    devices.append([-1, n_points + 1])  # not watched at all
    n_points += 2
    perm = rng.permutation(n_points)
    devices = [[-1 if p < 0 else int(perm[p]) for p in d] for d in devices]
    watched = np.zeros(n_points, dtype=bool)
    gate = np.full(n_points, -1, dtype=np.int64)
    for d in devices[:-1]:
        for p in d[1:]:
            watched[p] = True
            gate[p] = d[0]
    return watched, gate, devices


def random_messages(rng: np.random.Generator, devices: list[list[int]], duration: float,
                    *, disorder: bool) -> list[Message]:
    """Every device's messages (all its points at one ts), merged in time order: level
    shifts, stops (0 while stopped), gaps, NaN, flags; with ``disorder`` also
    redeliveries with wild values and messages arriving a few places late."""
    messages: list[tuple[float, Message]] = []
    for device in devices:
        levels = rng.uniform(20.0, 80.0, len(device))
        t, running, factor = T0 + float(rng.uniform(0.0, 20.0)), True, 1.0
        while t < T0 + duration:
            if rng.random() < 0.03:
                running = not running
            if rng.random() < 0.05:
                factor = float(rng.choice([1.0, 1.0, 0.6, 1.3, 0.93, 1.05]))
            points, values, quality = [], [], []
            for i, p in enumerate(device):
                if p < 0:
                    continue
                if i == 0 and device[0] >= 0:
                    value = float(running)
                else:
                    on = running or device[0] < 0
                    value = levels[i] * factor + rng.normal(0.0, 0.5) if on else 0.0
                    value = round(value, 2)
                if rng.random() < 0.03:
                    value = NAN
                points.append(p)
                values.append(value)
                quality.append(4 if rng.random() < 0.03 else 0)
            ts = [round(t, 1)] * len(points)
            messages.append((t, (points, ts, values, quality)))
            if disorder and rng.random() < 0.04:
                wild = [v + 1000.0 for v in values]
                messages.append((t + float(rng.uniform(0.0, 60.0)), (points, ts, wild, quality)))
            t += float(rng.uniform(3.0, 12.0))
            if rng.random() < 0.01:
                t += float(rng.uniform(100.0, 1500.0))  # a gap
    messages.sort(key=lambda m: m[0])
    ordered = [m for _, m in messages]
    if disorder:  # some messages arrive a few places late
        for i in np.flatnonzero(rng.random(len(ordered)) < 0.03)[::-1]:
            j = min(len(ordered) - 1, int(i) + int(rng.integers(1, 20)))
            ordered.insert(j, ordered.pop(int(i)))
    return ordered


def batches(rng: np.random.Generator, messages: list[Message], n_cuts: int,
            *, shuffle: bool) -> list[SampleBatch]:
    """The messages cut into batches at message boundaries, rows shuffled inside."""
    cuts = sorted(rng.choice(np.arange(1, len(messages)), min(n_cuts, len(messages) - 1),
                             replace=False).tolist()) if len(messages) > 1 else []
    out = []
    for a, b in zip([0, *cuts], [*cuts, len(messages)], strict=True):
        cols = [list(chain.from_iterable(m[c] for m in messages[a:b])) for c in range(4)]
        batch = SampleBatch.from_arrays(*cols)
        if shuffle:
            order = rng.permutation(len(batch))
            batch = SampleBatch.from_arrays(batch.point[order], batch.ts[order],
                                            batch.value[order], batch.quality[order])
        out.append(batch)
    return out


def make_pair(rng: np.random.Generator, config: dict[str, object], watched: np.ndarray,
              gate: np.ndarray) -> tuple[DeviationDetector, DeviationReference]:
    on_delay = config["on_delay_s"]
    per_point = rng.choice([0.0, 15.0, 40.0], watched.shape[0]) if rng.random() < 0.5 \
        else on_delay
    kwargs = {**config, "on_delay_s": per_point}
    det = DeviationDetector(watched, gate, **kwargs)  # type: ignore[arg-type]
    ref = DeviationReference(watched.tolist(), gate.tolist(),
                             **{k: (v.tolist() if isinstance(v, np.ndarray) else v)
                                for k, v in kwargs.items()})  # type: ignore[arg-type]
    return det, ref


@pytest.mark.parametrize("seed", range(30))
def test_matches_the_per_sample_reference_on_random_streams(seed: int) -> None:
    rng = np.random.default_rng(seed)
    watched, gate, devices = random_layout(rng)
    det, ref = make_pair(rng, random_config(rng), watched, gate)
    messages = random_messages(rng, devices, float(rng.uniform(1200.0, 2400.0)),
                               disorder=True)

    for batch in batches(rng, messages, int(rng.integers(0, 40)), shuffle=True):
        got, want = rows(det.update(batch)), reference_rows(ref.update(batch))
        assert_same(got, want)
        assert got == want  # z included: the same float operations in the same order

    assert (det.late_samples, det.skipped_samples) == (ref.late, ref.skipped)
    assert {p: int(det.severity[p]) for p in ref.severity} == ref.severity


def test_the_random_streams_do_fire_clear_and_stop() -> None:
    """Guard the oracle test against comparing empty outputs."""
    found: list[Row] = []
    for seed in range(20):
        rng = np.random.default_rng(seed)
        watched, gate, devices = random_layout(rng)
        det, _ = make_pair(rng, random_config(rng), watched, gate)
        messages = random_messages(rng, devices, float(rng.uniform(1200.0, 2400.0)),
                                   disorder=True)
        for batch in batches(rng, messages, 0, shuffle=False):
            found += rows(det.update(batch))
    severities = [r[3] for r in found]

    assert severities.count(1) > 20
    assert severities.count(-1) > 20
    assert sum(1 for r in found if r[3] == 0 and r[4] != -999.0) > 20  # z clears
    assert sum(1 for r in found if r[3] == 0 and r[4] == -999.0) > 5  # gate stops


@pytest.mark.parametrize("seed", range(4))
def test_any_cut_into_batches_gives_bit_identical_changes(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    watched, gate, devices = random_layout(rng)
    config = random_config(rng)
    messages = random_messages(rng, devices, 2400.0, disorder=False)
    whole, _ = make_pair(np.random.default_rng(seed), config, watched, gate)
    expected = [r for b in batches(rng, messages, 0, shuffle=True) for r in rows(whole.update(b))]
    assert len(expected) > 0

    for n_cuts in (len(messages), 200, 20):
        det, _ = make_pair(np.random.default_rng(seed), config, watched, gate)
        got = [r for b in batches(rng, messages, n_cuts, shuffle=True)
               for r in rows(det.update(b))]
        assert sorted(got) == sorted(expected)  # values included, bit for bit
        assert (det.late_samples, det.skipped_samples) == (whole.late_samples,
                                                            whole.skipped_samples)


@pytest.mark.parametrize("seed", range(3))
def test_judging_on_a_cadence_gives_the_same_changes(seed: int) -> None:
    rng = np.random.default_rng(200 + seed)
    watched, gate, devices = random_layout(rng)
    config = random_config(rng)
    messages = random_messages(rng, devices, 3000.0, disorder=False)
    parts = batches(rng, messages, 300, shuffle=True)
    plain = DeviationDetector(watched, gate, **config)  # type: ignore[arg-type]
    held = DeviationDetector(watched, gate, judge_every_s=60.0,
                             **config)  # type: ignore[arg-type]
    expected: list[Row] = []
    got: list[Row] = []
    for part in parts:
        expected += rows(plain.update(part))
        got += rows(held.update(part))
        got += rows(held.sweep(float(np.nanmax(part.ts))))
    got += rows(held.judge_held())

    assert len(expected) > 0
    assert sorted(got) == sorted(expected)
    assert rows(held.judge_held()) == []


# --- properties: nothing crashes, nothing fires without a reason ----------------------

sample_rows = awkward_rows(T0, points=4, span_s=900, values=(0.0, 1.0, 1e300))


@settings(max_examples=80, deadline=None)
@given(batch_rows=st.lists(sample_rows, max_size=6), min_bucket_samples=st.integers(2, 3),
       settle=st.sampled_from([0.0, 30.0]), on_delay=st.sampled_from([0.0, 20.0]))
def test_any_rows_match_the_reference(
    batch_rows: list[list[tuple[int, float, float, int]]], min_bucket_samples: int,
    settle: float, on_delay: float,
) -> None:
    # Point 0 gated by 1, point 2 ungated, point 3 neither.
    watched, gate = [True, False, True, False], [1, -1, -1, -1]
    config = {"bucket_s": 60.0, "buckets": 3, "min_buckets": 1,
              "min_bucket_samples": min_bucket_samples, "settle_s": settle, "z_on": 2.0,
              "z_off": 1.0, "on_delay_s": on_delay, "scale_floor": 0.5}
    det = DeviationDetector(np.array(watched), np.array(gate), **config)  # type: ignore[arg-type]
    ref = DeviationReference(watched, gate, **config)  # type: ignore[arg-type]

    for part in batch_rows:
        batch = SampleBatch.from_arrays(*zip(*part, strict=True)) if part \
            else SampleBatch.empty()
        changes = det.update(batch)
        assert_same(rows(changes), reference_rows(ref.update(batch)))
        assert (np.diff(changes.ts) >= 0).all()
    assert (det.late_samples, det.skipped_samples) == (ref.late, ref.skipped)


@settings(max_examples=40, deadline=None)
@given(data=st.data(), n_batches=st.integers(1, 8))
def test_bad_late_and_duplicate_rows_never_make_steady_noise_fire(
    data: st.DataObject, n_batches: int
) -> None:
    """Good rows: a running gate and a fan at 50 A +- 0.3; everything else is wild."""
    det = collector(bucket_s=60.0, buckets=4, min_buckets=2, min_bucket_samples=2,
                    settle_s=0.0, on_delay_s=0.0, z_on=6.0)
    noise = [0.3, -0.3, 0.1, -0.2, 0.25, -0.05]
    wild = st.one_of(st.floats(allow_nan=True, allow_infinity=True),
                     st.sampled_from([1e300, -1e300, 0.0]))
    last = T0
    k = 0
    for _ in range(n_batches):
        steps = data.draw(st.lists(st.integers(1, 200), max_size=10, unique=True))
        good: list[tuple[int, float, float, int]] = []
        for s in sorted(steps):
            good += [(GATE, last + s, 1.0, 0), (FAN, last + s, 50.0 + noise[k % 6], 0)]
            k += 1
        batch = list(good)
        for _ in range(data.draw(st.integers(0, 10))):
            kind = data.draw(st.sampled_from(["nan_ts", "bad_value", "flag", "late", "again"]))
            p = data.draw(st.sampled_from([FAN, GATE]))
            if kind == "nan_ts":
                batch.append((p, data.draw(st.sampled_from([NAN, math.inf])), 0.0, 0))
            elif kind == "bad_value":
                batch.append((p, last + data.draw(st.integers(1, 400)),
                              data.draw(st.sampled_from([NAN, math.inf, -math.inf])), 0))
            elif kind == "flag":
                batch.append((p, last + data.draw(st.integers(1, 400)), data.draw(wild),
                              data.draw(st.integers(1, 7))))
            elif kind == "late" or not good:
                batch.append((p, last - data.draw(st.integers(0, 1000)), data.draw(wild), 0))
            else:  # a re-sent copy of a good row, arriving after it
                q, t, _, _ = data.draw(st.sampled_from(good))
                batch.append((q, t, data.draw(wild), 0))
        order = data.draw(st.permutations(range(len(batch))))
        rows_in = resent_after_originals(batch, order)
        changes = det.update(SampleBatch.from_arrays(*zip(*rows_in, strict=True))
                             if rows_in else SampleBatch.empty())
        assert len(changes) == 0
        last = max([last, *(t for _, t, _, _ in good)])

    assert det.severity.tolist() == [0, 0]


def test_held_samples_are_judged_on_demand() -> None:
    rng = np.random.default_rng(14)
    ts, amps = noisy_fan(rng, 6.0)
    amps[ts >= T0 + 5 * HOUR] *= 0.6
    batch = fan_stream(ts, amps)
    plain = rows(collector().update(batch))
    held = collector(judge_every_s=86_400.0)

    assert rows(held.update(batch)) == []
    assert rows(held.judge_held()) == plain
    assert len(plain) > 0
    assert rows(held.judge_held()) == []



@pytest.mark.parametrize("spread", [1e4, 1e13])  # the combined key, and the lexsort
def test_latest_gate_row_matches_a_scan(spread: float) -> None:
    from detectors.deviation import _latest_at_or_before

    rng = np.random.default_rng(7)
    g = rng.integers(0, 6, 300).astype(np.int32)
    t = np.round(rng.uniform(0, spread, 300), 3)
    order = np.lexsort((t, g))
    keep = order[np.r_[True, (np.diff(g[order]) != 0) | (np.diff(t[order]) != 0)]]
    g, t = g[keep], t[keep]
    qg = rng.integers(0, 7, 200).astype(np.int32)
    qt = np.where(rng.random(200) < 0.3, rng.choice(t, 200), rng.uniform(0, spread, 200))
    want = []
    for gate, ts in zip(qg.tolist(), qt.tolist(), strict=True):
        rows = [i for i in range(g.shape[0]) if g[i] == gate and t[i] <= ts]
        want.append(max(rows, key=lambda i: t[i]) if rows else -1)
    assert _latest_at_or_before(g, t, qg, qt).tolist() == want


@pytest.mark.parametrize(("direction", "fires"), [(0, [-1, 1]), (1, [1]), (-1, [-1])])
def test_direction_says_which_side_may_fire(direction: int, fires: list[int]) -> None:
    """A drop, a recovery, then a rise: each side fires only where ``direction`` lets it;
    a band that may not fire does not even start its run."""
    rng = np.random.default_rng(5)
    ts, amps = noisy_fan(rng, 8.0)
    amps[(ts >= T0 + 4 * HOUR) & (ts < T0 + 5 * HOUR)] *= 0.6
    amps[ts >= T0 + 6.5 * HOUR] *= 1.3
    det = collector(direction=direction)
    got = rows(det.update(fan_stream(ts, amps)))
    ref = DeviationReference([True, False], [GATE, -1], direction=direction,
                             **SHORT)  # type: ignore[arg-type]
    assert_same(got, reference_rows(ref.update(fan_stream(ts, amps))))
    assert [r[3] for r in got if r[3] != 0] == fires


def test_direction_must_be_a_side() -> None:
    with pytest.raises(ValueError, match="direction"):
        collector(direction=2)
