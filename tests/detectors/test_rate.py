"""RateOfChangeDetector: slopes, spikes, hysteresis, on-delay, bad rows, batch equivalence."""

from __future__ import annotations

import itertools
import math
import warnings
from collections import deque
from collections.abc import Sequence

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detectors.base import SampleBatch
from detectors.rate import RateOfChangeDetector
from tests.detectors.change_rows import Row, awkward_rows, resent_after_originals, rows

NAN = math.nan
T0 = 1_795_478_400.0  # epoch seconds: slopes must survive real timestamps



def hopper(**kwargs: float) -> RateOfChangeDetector:
    """One hopper temperature with the production limit of 2 K/min."""
    return RateOfChangeDetector([2.0], **kwargs)  # type: ignore[arg-type]


def series(values: Sequence[float], *, step: float = 30.0, start: float = T0) -> SampleBatch:
    """Samples of point 0 at ``start, start + step, ...``."""
    ts = [start + i * step for i in range(len(values))]
    return SampleBatch.from_arrays([0] * len(values), ts, values)



def window_slope(ts: np.ndarray, values: np.ndarray, at: int, window_s: float = 300.0) -> float:
    """Least-squares slope per minute of the samples in (ts[at] - window_s, ts[at]]."""
    inside = (ts > ts[at] - window_s) & (ts <= ts[at])
    if inside.sum() < 2:
        return NAN
    return float(np.polyfit(ts[inside] - ts[at], values[inside], 1)[0] * 60.0)


def incident(rng: np.random.Generator, rate_per_min: float, *, calm_min: float = 20.0,
             rise_min: float = 10.0) -> tuple[np.ndarray, np.ndarray]:
    """30 s hopper samples: calm at 60 °C, a rise at ``rate_per_min``, then a plateau."""
    ts = np.arange(0.0, (2 * calm_min + rise_min) * 60.0, 30.0)
    minutes = ts / 60.0
    rise = np.clip(minutes - calm_min, 0.0, rise_min) * rate_per_min
    return T0 + ts, 60.0 + rise + rng.uniform(-0.1, 0.1, ts.shape[0])


# --- firing ------------------------------------------------------------------------


@pytest.mark.parametrize("rate", [2.5, 3.5, 5.0])
def test_incident_fires_at_the_first_sample_whose_window_slope_crosses(rate: float) -> None:
    ts, temp = incident(np.random.default_rng(int(rate * 10)), rate)
    det = hopper()

    changes = det.update(SampleBatch.from_arrays([0] * ts.shape[0], ts, temp))

    slopes = [window_slope(ts, temp, i) for i in range(ts.shape[0])]
    crossing = next(i for i, s in enumerate(slopes) if i >= 6 and s > 2.0)
    fired = rows(changes)[0]
    assert fired[:4] == (0, ts[crossing], ts[crossing], 1)
    assert fired[4] == pytest.approx(slopes[crossing], rel=1e-9)
    assert fired[5] == 2.0
    # Well inside the 6-15 min incident: the window needs to see part of the rise only.
    assert ts[crossing] - (T0 + 20 * 60.0) <= 240.0
    assert [r[3] for r in rows(changes)] == [1, 0]  # and clears on the plateau


def test_on_delay_fires_at_the_first_sample_after_the_delay_with_run_start_as_since() -> None:
    ts, temp = incident(np.random.default_rng(1), 3.0)
    plain, delayed = hopper(), hopper(on_delay_s=60.0)

    at_once = rows(plain.update(SampleBatch.from_arrays([0] * ts.shape[0], ts, temp)))[0]
    later = rows(delayed.update(SampleBatch.from_arrays([0] * ts.shape[0], ts, temp)))[0]

    run_start = at_once[1]
    assert later[1] == run_start + 60.0  # 30 s samples: the first one 60 s after the run
    assert later[2] == run_start
    assert later[3] == 1


def test_on_delay_is_not_reached_by_a_run_that_breaks_early() -> None:
    # A 12 K step over 60 s: steep while the window holds it, for less than 600 s.
    ts = T0 + np.arange(0.0, 1800.0, 30.0)
    temp = 60.0 + 6.0 * np.clip((ts - T0 - 600.0) / 30.0, 0.0, 2.0)
    plain, delayed = hopper(), hopper(on_delay_s=600.0)
    batch = SampleBatch.from_arrays([0] * ts.shape[0], ts, temp)

    assert [r[3] for r in rows(plain.update(batch))] == [1, 0]
    assert len(delayed.update(batch)) == 0


def test_on_delay_may_be_per_point() -> None:
    det = RateOfChangeDetector([2.0, 2.0], on_delay_s=[0.0, 90.0])
    ts, temp = incident(np.random.default_rng(2), 4.0)
    n = ts.shape[0]

    changes = det.update(SampleBatch.from_arrays([0] * n + [1] * n, np.r_[ts, ts],
                                                 np.r_[temp, temp]))

    fired = [r for r in rows(changes) if r[3] == 1]
    assert [r[0] for r in fired] == [0, 1]
    assert fired[1][1] - fired[0][1] == 90.0
    assert fired[1][2] == fired[0][2]


# --- not firing --------------------------------------------------------------------


def test_sensor_noise_never_fires() -> None:
    rng = np.random.default_rng(3)
    det = hopper()

    changes = det.update(series(60.0 + rng.uniform(-0.1, 0.1, 2880)))  # a day of noise

    assert len(changes) == 0


def test_slow_drift_with_noise_never_fires() -> None:
    rng = np.random.default_rng(4)
    minutes = np.arange(720) / 2.0  # 6 h of 30 s samples
    drift = np.cumsum(0.15 * np.sign(np.sin(minutes / 40.0)))  # up and down at 0.3 K/min

    assert len(hopper().update(series(60.0 + drift + rng.uniform(-0.1, 0.1, 720)))) == 0


@pytest.mark.parametrize("height", [3.0, 5.0])
def test_single_sample_spike_in_a_full_window_does_not_fire(height: float) -> None:
    temp = np.full(60, 60.0)
    temp[30] += height

    assert len(hopper().update(series(temp))) == 0


@pytest.mark.parametrize("height", [3.0, 5.0])
def test_single_sample_spike_in_the_first_judged_window_does_not_fire(height: float) -> None:
    # 180 s of span needs 7 samples at 30 s: the spike is the newest of the first verdict.
    temp = [60.0] * 6 + [60.0 + height] + [60.0] * 5
    det = hopper()

    assert len(det.update(series(temp))) == 0


def worst_spike(n: int, span: float, height: float) -> SampleBatch:
    """The sampling where one spike moves the slope most: a sample at the old end, the
    others bunched at 29 % of the span, the spike at the far end; on a 0.3 K/min drift."""
    ts = np.r_[0.0, 0.29 * span + 0.01 * np.arange(n - 2), span]
    temp = 60.0 + 0.3 * ts / 60.0
    temp[-1] += height
    return SampleBatch.from_arrays([0] * n, T0 + ts, temp)


@pytest.mark.parametrize("n", [4, 10, 40])
@pytest.mark.parametrize("height", [3.0, 4.0])
def test_spike_with_the_worst_sampling_of_the_shortest_span_does_not_fire(
    n: int, height: float
) -> None:
    assert len(hopper().update(worst_spike(n, 180.0, height))) == 0


def test_a_span_of_120_s_would_let_a_3_k_spike_through() -> None:
    """Why the default min_span_s is 180 s and not 120 s."""
    assert len(hopper().update(worst_spike(10, 120.0, 3.0))) == 0  # span too short
    assert len(hopper(min_span_s=120.0).update(worst_spike(10, 120.0, 3.0))) == 1


def test_too_few_samples_give_no_verdict() -> None:
    det = hopper(min_span_s=0.0)

    # 10 K/min over 3 samples: below min_samples = 4.
    assert len(det.update(series([60.0, 65.0, 70.0], step=30.0))) == 0
    assert det.update(series([75.0], start=T0 + 90.0)).severity.tolist() == [1]


def test_samples_close_together_give_no_verdict() -> None:
    # 30 K/min for 60 s, sampled every 2 s: 30 samples but a span of only 58 s.
    assert len(hopper().update(series(60.0 + np.arange(30.0), step=2.0))) == 0


def test_a_fall_never_fires() -> None:
    assert len(hopper().update(series(np.linspace(90.0, 30.0, 40)))) == 0


# --- clearing ----------------------------------------------------------------------


def test_clears_with_hysteresis_only_below_limit_times_clear_ratio() -> None:
    # 3 K/min for 10 min, then 1.5 K/min (between 1 and 2) for 15 min, then flat.
    minutes = np.arange(0.0, 60.0, 0.5)
    rate = np.select([minutes < 10, minutes < 20, minutes < 35], [0.0, 3.0, 1.5], 0.0)
    temp = 60.0 + np.cumsum(rate * 0.5)
    ts = T0 + minutes * 60.0
    det = hopper()

    changes = rows(det.update(SampleBatch.from_arrays([0] * ts.shape[0], ts, temp)))

    assert [r[3] for r in changes] == [1, 0]
    cleared = changes[1]
    at = int(np.flatnonzero(ts == cleared[1])[0])
    assert ts[at] > T0 + 35 * 60.0  # held through the 1.5 K/min stretch
    assert cleared[4] < 1.0 <= window_slope(ts, temp, at - 1)
    assert cleared[4] == pytest.approx(window_slope(ts, temp, at), rel=1e-9)
    assert cleared[2] == cleared[1]  # since: its own ts
    assert cleared[5] == -999.0  # limit: NaN
    assert det.severity.tolist() == [0]


def test_clear_ratio_one_clears_as_soon_as_the_slope_drops_under_the_limit() -> None:
    minutes = np.arange(0.0, 40.0, 0.5)
    rate = np.select([minutes < 10, minutes < 20], [0.0, 3.0], 1.5)
    temp = 60.0 + np.cumsum(rate * 0.5)

    changes = rows(hopper(clear_ratio=1.0).update(series(temp)))

    assert [r[3] for r in changes] == [1, 0]
    assert changes[1][4] < 2.0


def test_a_gap_without_verdicts_holds_the_alarm() -> None:
    det = hopper()
    assert det.update(series(60.0 + 3.0 * np.arange(20) / 2.0)).severity.tolist() == [1]

    # An hour later the point comes back flat: the first windows are too short to judge.
    back = series([70.0] * 12, start=T0 + 3600.0)
    changes = rows(det.update(back))

    assert [(r[1], r[3]) for r in changes] == [(T0 + 3600.0 + 180.0, 0)]


# --- bad input ---------------------------------------------------------------------


def test_unjudgeable_samples_change_nothing_and_are_counted() -> None:
    det = hopper(min_span_s=0.0, min_samples=2)
    det.update(series([60.0, 60.0]))
    batch = SampleBatch.from_arrays(
        point=[0, 0, 0, 0, 0, 0, 0],
        ts=[T0 + 60, T0 + 90, T0 + 120, NAN, T0, T0 - 5, T0 + 150],
        value=[NAN, math.inf, 500.0, 500.0, 500.0, 500.0, 60.0],
        quality=[0, 0, 4, 0, 0, 0, 0],  # 4: fault (D)
    )

    changes = det.update(batch)

    assert len(changes) == 0
    assert det.skipped_samples == 4  # NaN value, inf value, fault flag, NaN ts
    assert det.late_samples == 2  # T0 (already judged) and T0 - 5


def test_duplicates_keep_the_first_arrival_and_redelivery_is_late() -> None:
    det = hopper(min_span_s=0.0)
    ts = [T0, T0 + 30, T0 + 60, T0 + 90, T0 + 90]
    batch = SampleBatch.from_arrays([0] * 5, ts, [60.0, 62.0, 64.0, 66.0, 0.0])

    first = rows(det.update(batch))
    again = det.update(batch)  # QoS 1 redelivery of the whole batch

    assert [(r[1], r[3], r[4]) for r in first] == [(T0 + 90, 1, pytest.approx(4.0))]
    assert len(again) == 0
    assert det.late_samples == 1 + 5


def test_points_without_a_rule_are_ignored_and_keep_no_ring() -> None:
    det = RateOfChangeDetector([NAN, 2.0, NAN], min_span_s=0.0)
    ts = [T0 + 30.0 * i for i in range(6)]

    changes = det.update(SampleBatch.from_arrays(
        [0] * 6 + [2] * 6 + [1] * 6, ts * 3, [60.0 + 10 * i for i in range(6)] * 3,
        quality=[4] * 6 + [0] * 12))

    assert [r[0] for r in rows(changes)] == [1]
    assert det.skipped_samples == 0  # point 0's fault flags: not ours to count
    assert det._ring_t.shape == (1, 64)


def test_absurd_values_neither_crash_nor_warn() -> None:
    det = hopper(min_span_s=0.0, min_samples=2)
    batch = series([1e300, -1e300, 1e300, 1e-300, -1.7e308, 1.7e308, 60.0, 60.0])

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        changes = det.update(batch)

    assert set(changes.severity.tolist()) <= {0, 1}
    assert not np.isnan(changes.value).any()


def test_bad_point_index_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="out of range"):
        hopper().update(SampleBatch.from_arrays([1], [T0], [0.0]))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"rate_hi_per_min": [0.0]}, "rate_hi_per_min"),
        ({"rate_hi_per_min": [math.inf]}, "rate_hi_per_min"),
        ({"rate_hi_per_min": [[1.0]]}, "rate_hi_per_min"),
        ({"window_s": 0.0}, "window_s"),
        ({"min_span_s": 300.0}, "min_span_s"),
        ({"min_samples": 1}, "min_samples"),
        ({"capacity": 3}, "capacity"),
        ({"clear_ratio": 1.5}, "clear_ratio"),
        ({"on_delay_s": -1.0}, "on_delay_s"),
    ],
)
def test_bad_parameters_are_clear_errors(kwargs: dict[str, object], match: str) -> None:
    arguments: dict[str, object] = {"rate_hi_per_min": [2.0], **kwargs}
    with pytest.raises(ValueError, match=match):
        RateOfChangeDetector(**arguments)  # type: ignore[arg-type]


def test_sweep_emits_nothing() -> None:
    det = hopper()
    det.update(series(60.0 + 3.0 * np.arange(20) / 2.0))

    assert det.sweep(T0 + 1e6).rule == "rate_of_change"
    assert len(det.sweep(T0 + 1e6)) == 0


def test_samples_beyond_capacity_are_dropped_oldest_first() -> None:
    # 1 s samples, capacity 8: the window is the last 8 samples whatever window_s says.
    det = RateOfChangeDetector([2.0], min_samples=2, min_span_s=0.0, capacity=8)
    values = [60.0] * 30 + [60.0 + 10.0 * k for k in range(1, 4)]
    ref = Reference(np.array([2.0]), min_samples=2, min_span_s=0.0, capacity=8)
    batch = series(values, step=1.0)

    assert rows(det.update(batch)) == ref.update(batch)


# --- oracle: a per-sample reference, obviously correct and slow -----------------------


class Reference:
    """Judges one sample at a time in (point, ts) order, exactly as documented."""

    def __init__(self, limit: np.ndarray, *, window_s: float = 300.0, min_samples: int = 4,
                 min_span_s: float = 180.0, on_delay: object = 0.0, clear_ratio: float = 0.5,
                 capacity: int = 64) -> None:
        self.limit = limit.tolist()
        n = len(self.limit)
        self.on_delay = np.broadcast_to(np.asarray(on_delay, dtype=float), (n,)).tolist()
        self.window_s, self.min_samples, self.min_span_s = window_s, min_samples, min_span_s
        self.clear_ratio = clear_ratio
        self.history: list[deque[tuple[float, float]]] = [deque(maxlen=capacity)
                                                          for _ in range(n)]
        self.last_ts = [-math.inf] * n
        self.active = [False] * n
        self.run_start = [NAN] * n
        self.code = [0] * n
        self.late = self.skipped = 0

    def update(self, batch: SampleBatch) -> list[Row]:
        out: list[Row] = []
        judged = []
        for i in range(len(batch)):
            p, t, v, q = (int(batch.point[i]), float(batch.ts[i]), float(batch.value[i]),
                          int(batch.quality[i]))
            if math.isnan(self.limit[p]):
                continue
            if math.isfinite(t) and math.isfinite(v) and q == 0:
                judged.append((p, t, v))
            else:
                self.skipped += 1
        for p, t, v in sorted(judged, key=lambda r: (r[0], r[1])):  # stable: first wins
            if t <= self.last_ts[p]:
                self.late += 1
                continue
            self.last_ts[p] = t
            self.history[p].append((t, v))
            window = [(tj - t, vj - v) for tj, vj in self.history[p] if tj > t - self.window_s]
            if len(window) < self.min_samples or -window[0][0] < self.min_span_s:
                continue
            mean_t = sum(d for d, _ in window) / len(window)
            mean_v = sum(d for _, d in window) / len(window)
            slope = 60.0 * sum((dt - mean_t) * (dv - mean_v) for dt, dv in window) / sum(
                (dt - mean_t) ** 2 for dt, _ in window)
            if slope > self.limit[p]:
                if not self.active[p]:
                    self.active[p], self.run_start[p] = True, t
            elif slope < self.limit[p] * self.clear_ratio:
                self.active[p], self.run_start[p] = False, NAN
            code = int(self.active[p] and t - self.run_start[p] >= self.on_delay[p])
            if code != self.code[p]:
                self.code[p] = code
                out.append((p, t, self.run_start[p] if code else t, code, slope,
                            self.limit[p] if code else -999.0))
        out.sort(key=lambda r: (r[1], r[0]))
        return out


def assert_same(got: list[Row], want: list[Row]) -> None:
    """Equal rows; the slope within float rounding (the two sum in different orders)."""
    assert [r[:4] + r[5:] for r in got] == [r[:4] + r[5:] for r in want]
    for g, w in zip(got, want, strict=True):
        assert g[4] == pytest.approx(w[4], rel=1e-9, abs=1e-9)


def random_config(rng: np.random.Generator, n_points: int) -> dict[str, object]:
    min_samples = int(rng.choice([2, 3, 4, 6]))
    window_s = float(rng.choice([60.0, 120.0, 300.0]))
    return {
        "limit": np.where(rng.random(n_points) < 0.2, NAN, rng.uniform(0.5, 4.0, n_points)),
        "window_s": window_s,
        "min_samples": min_samples,
        "min_span_s": float(rng.choice([0.0, 0.2, 0.5])) * window_s,
        "on_delay": rng.choice([0.0, 10.0, 45.0], n_points),
        "clear_ratio": float(rng.choice([0.0, 0.5, 0.9, 1.0])),
        "capacity": int(rng.choice([min_samples, 8, 64])),
    }


def make_pair(config: dict[str, object]) -> tuple[RateOfChangeDetector, Reference]:
    kwargs = {k: v for k, v in config.items() if k not in ("limit", "on_delay")}
    det = RateOfChangeDetector(config["limit"], on_delay_s=config["on_delay"],  # type: ignore[arg-type]
                               **kwargs)  # type: ignore[arg-type]
    ref = Reference(config["limit"], on_delay=config["on_delay"], **kwargs)  # type: ignore[arg-type]
    return det, ref


def random_stream(rng: np.random.Generator, n_points: int, n: int) -> SampleBatch:
    """Interleaved points in time order: ramps, plateaus and noise, plus bad rows."""
    point = rng.integers(0, n_points, n).astype(np.int32)
    ts = T0 + np.cumsum(rng.integers(1, 6, n)).astype(float)
    rates = rng.choice([-2.0, 0.0, 0.0, 1.5, 3.0, 8.0], (n_points, 8))  # per minute
    phase = np.minimum(((ts - T0) / 120.0).astype(int) % 8, 7)
    value = np.round(rates[point, phase] * (ts - T0) / 60.0 + rng.normal(0, 0.3, n), 2)
    value[rng.random(n) < 0.03] = NAN
    value[rng.random(n) < 0.01] = -math.inf
    quality = np.where(rng.random(n) < 0.03, 4, 0)
    # Redeliveries of some rows right after them, with a wild value (first must win).
    again = rng.random(n) < 0.05
    order = np.argsort(np.r_[np.arange(n), np.flatnonzero(again) + 0.5], kind="stable")
    return SampleBatch.from_arrays(
        np.r_[point, point[again]][order], np.r_[ts, ts[again]][order],
        np.r_[value, value[again] + 1000.0][order], np.r_[quality, quality[again]][order],
    )


def split(batch: SampleBatch, cuts: Sequence[int]) -> list[SampleBatch]:
    bounds = [0, *sorted(cuts), len(batch)]
    return [
        SampleBatch.from_arrays(batch.point[a:b], batch.ts[a:b], batch.value[a:b],
                                batch.quality[a:b])
        for a, b in itertools.pairwise(bounds)
    ]


def shuffled(rng: np.random.Generator, batch: SampleBatch) -> SampleBatch:
    """The same rows in a random arrival order (what a batch of many messages looks like)."""
    order = rng.permutation(len(batch))
    return SampleBatch.from_arrays(batch.point[order], batch.ts[order], batch.value[order],
                                   batch.quality[order])


@pytest.mark.parametrize("seed", range(100))
def test_matches_per_sample_reference_on_random_series(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n_points = int(rng.integers(1, 5))
    det, ref = make_pair(random_config(rng, n_points))
    stream = random_stream(rng, n_points, int(rng.integers(50, 400)))
    cuts = rng.integers(0, len(stream), int(rng.integers(0, 12)))

    for part in split(stream, cuts.tolist()):
        # Shuffle inside each batch: rows of one batch are judged in ts order anyway.
        # (Rows late across batches are late in both.)
        part = shuffled(rng, part)
        assert_same(rows(det.update(part)), ref.update(part))

    assert (det.late_samples, det.skipped_samples) == (ref.late, ref.skipped)
    assert det.severity.tolist() == ref.code


def test_the_random_series_do_fire_and_clear() -> None:
    """Guard the oracle test against comparing empty outputs."""
    severities = []
    for seed in range(100):
        rng = np.random.default_rng(seed)
        n_points = int(rng.integers(1, 5))
        det, _ = make_pair(random_config(rng, n_points))
        severities += det.update(random_stream(rng, n_points, int(rng.integers(50, 400)))
                                 ).severity.tolist()

    assert severities.count(1) > 100
    assert severities.count(0) > 50


@pytest.mark.parametrize("seed", range(10))
def test_any_split_into_batches_gives_identical_changes(seed: int) -> None:
    rng = np.random.default_rng(1000 + seed)
    n_points = int(rng.integers(1, 8))
    config = random_config(rng, n_points)
    stream = random_stream(rng, n_points, 1200)
    whole, _ = make_pair(config)
    expected = rows(whole.update(stream))

    for attempt in range(3):
        det, _ = make_pair(config)
        n_cuts = int(rng.integers(1, 200)) if attempt else len(stream) - 1  # row by row
        cuts = rng.choice(np.arange(1, len(stream)), n_cuts, replace=False)
        got = [r for part in split(stream, cuts.tolist()) for r in rows(det.update(part))]
        assert sorted(got) == sorted(expected)  # bit-identical, values included
        assert (det.late_samples, det.skipped_samples) == (whole.late_samples,
                                                            whole.skipped_samples)


@pytest.mark.parametrize("seed", range(3))
def test_judging_on_a_cadence_gives_the_same_changes_at_most_that_much_later(
        seed: int) -> None:
    rng = np.random.default_rng(2000 + seed)
    config = random_config(rng, 4)
    stream = random_stream(rng, 4, 1500)
    parts = split(stream, sorted(rng.choice(np.arange(1, len(stream)), 150, replace=False)))
    plain, _ = make_pair(config)
    held = RateOfChangeDetector(config["limit"], on_delay_s=config["on_delay"],  # type: ignore[arg-type]
                                judge_every_s=30.0,
                                **{k: v for k, v in config.items()  # type: ignore[arg-type]
                                   if k not in ("limit", "on_delay")})
    expected: list[Row] = []
    got: list[Row] = []
    plain_worst = worst = 0.0
    for part in parts:
        now = float(np.nanmax(part.ts)) if np.isfinite(part.ts).any() else -math.inf
        judged = rows(plain.update(part))
        plain_worst = max([plain_worst, *(now - r[1] for r in judged)])
        expected += judged
        fresh = rows(held.update(part)) + rows(held.sweep(now))
        worst = max([worst, *(now - r[1] for r in fresh)])
        got += fresh
    got += rows(held.sweep(math.inf))

    assert sorted(got) == sorted(expected)
    assert len(expected) > 3
    span = max(float(np.nanmax(p.ts) - np.nanmin(p.ts)) for p in parts
               if np.isfinite(p.ts).any())
    assert worst <= plain_worst + 30.0 + span


def test_all_points_at_once_equals_points_one_by_one() -> None:
    rng = np.random.default_rng(42)
    config = random_config(rng, 6)
    stream = random_stream(rng, 6, 3000)
    together, _ = make_pair(config)
    expected = rows(together.update(stream))
    alone, _ = make_pair(config)
    got = []
    for p in range(6):
        mine = stream.point == p
        got += rows(alone.update(SampleBatch.from_arrays(
            stream.point[mine], stream.ts[mine], stream.value[mine], stream.quality[mine])))

    assert sorted(got) == sorted(expected)


# --- properties: nothing crashes, nothing fires without a reason ----------------------

sample_rows = awkward_rows(T0, points=3, span_s=600)


@settings(max_examples=200, deadline=None)
@given(batches=st.lists(sample_rows, max_size=6),
       min_samples=st.integers(2, 5), capacity=st.integers(5, 9),
       on_delay=st.sampled_from([0.0, 20.0]))
def test_any_rows_match_the_reference(
    batches: list[list[tuple[int, float, float, int]]], min_samples: int, capacity: int,
    on_delay: float,
) -> None:
    limit = np.array([0.9137, NAN, 3.0173])
    config = {"window_s": 120.0, "min_samples": min_samples, "min_span_s": 10.0,
              "clear_ratio": 0.5, "capacity": capacity}
    det = RateOfChangeDetector(limit, on_delay_s=on_delay, **config)  # type: ignore[arg-type]
    ref = Reference(limit, on_delay=on_delay, **config)  # type: ignore[arg-type]

    for batch_rows in batches:
        batch = SampleBatch.from_arrays(*zip(*batch_rows, strict=True)) if batch_rows \
            else SampleBatch.empty()
        changes = det.update(batch)
        assert_same(rows(changes), ref.update(batch))
        assert (np.diff(changes.ts) >= 0).all()
        assert set(changes.severity.tolist()) <= {0, 1}


@settings(max_examples=100, deadline=None)
@given(data=st.data(), n_batches=st.integers(1, 6))
def test_bad_late_and_duplicate_rows_never_fire_on_flat_data(
    data: st.DataObject, n_batches: int
) -> None:
    """Good rows are flat; everything else (NaN, inf, flags, late, re-sent) is wild."""
    det = RateOfChangeDetector([2.0, 2.0], min_samples=2, min_span_s=0.0)
    wild = st.one_of(st.floats(allow_nan=True, allow_infinity=True),
                     st.sampled_from([1e300, -1e300]))
    det.update(SampleBatch.from_arrays([0, 1], [T0, T0], [50.0, 50.0]))
    last = {0: T0, 1: T0}
    for _ in range(n_batches):
        good = [(p, last[p] + s) for p in (0, 1)
                for s in data.draw(st.lists(st.integers(1, 400), max_size=8, unique=True))]
        batch: list[tuple[int, float, float, int]] = [(p, t, 50.0, 0) for p, t in good]
        for _ in range(data.draw(st.integers(0, 10))):
            kind = data.draw(st.sampled_from(["nan_ts", "bad_value", "flag", "late", "again"]))
            p = data.draw(st.integers(0, 1))
            if kind == "nan_ts":
                batch.append((p, data.draw(st.sampled_from([NAN, math.inf])), 1e9, 0))
            elif kind == "bad_value":
                batch.append((p, last[p] + data.draw(st.integers(1, 400)),
                              data.draw(st.sampled_from([NAN, math.inf, -math.inf])), 0))
            elif kind == "flag":
                batch.append((p, last[p] + data.draw(st.integers(1, 400)), data.draw(wild),
                              data.draw(st.integers(1, 7))))
            elif kind == "late" or not good:
                batch.append((p, last[p] - data.draw(st.integers(0, 1000)), data.draw(wild), 0))
            else:  # a re-sent copy of a good row, arriving after it
                q, t = data.draw(st.sampled_from(good))
                batch.append((q, t, data.draw(wild), 0))
        order = data.draw(st.permutations(range(len(batch))))
        rows_in = resent_after_originals(batch, order)
        changes = det.update(SampleBatch.from_arrays(*zip(*rows_in, strict=True))
                             if rows_in else SampleBatch.empty())
        assert len(changes) == 0
        for p, t in good:
            last[p] = max(last[p], t)

    assert det.severity.tolist() == [0, 0]


def test_held_samples_are_judged_on_demand() -> None:
    ts, temp = incident(np.random.default_rng(3), 3.0)
    batch = SampleBatch.from_arrays([0] * ts.shape[0], ts, temp)
    plain = rows(hopper().update(batch))
    held = hopper(judge_every_s=86_400.0)

    assert rows(held.update(batch)) == []
    assert rows(held.judge_held()) == plain
    assert len(plain) > 0
    assert rows(held.judge_held()) == []
