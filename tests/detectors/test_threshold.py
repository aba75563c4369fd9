"""ThresholdDetector: limits, deadband, on-delay, skipped samples, batch equivalence."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pytest

from detectors import SampleBatch, ThresholdDetector
from tests.detectors.change_rows import rows

NAN = math.nan


def one_point(
    *,
    lo: float = NAN,
    hi: float = NAN,
    lolo: float = NAN,
    hihi: float = NAN,
    deadband: float = 0.0,
    on_delay_s: float = 0.0,
) -> ThresholdDetector:
    return ThresholdDetector([lo], [hi], [lolo], [hihi], [deadband], [on_delay_s])


def series(values: Sequence[float], *, step: float = 10.0, start: float = 0.0) -> SampleBatch:
    """Samples of point 0 at ``start, start + step, ...``."""
    ts = [start + i * step for i in range(len(values))]
    return SampleBatch.from_arrays([0] * len(values), ts, values)



def test_hi_crossing_fires_with_limit_and_since() -> None:
    det = one_point(hi=100.0)

    changes = det.update(series([90.0, 99.0, 101.0, 105.0]))

    assert changes.rule == "threshold"
    assert rows(changes) == [(0, 20.0, 20.0, 1, 101.0, 100.0)]
    assert det.severity.tolist() == [1]


def test_value_equal_to_limit_is_not_above_it() -> None:
    det = one_point(hi=100.0)

    assert len(det.update(series([100.0, 100.0]))) == 0


def test_on_delay_fires_at_first_sample_after_delay_with_run_start_as_since() -> None:
    det = one_point(hi=100.0, on_delay_s=25.0)

    # Run starts at 10; 20 and 30 are too early (10 s, 20 s); 40 is the first >= 25 s.
    changes = det.update(series([90.0, 101.0, 102.0, 103.0, 104.0, 105.0]))

    assert [(r[1], r[2], r[3]) for r in rows(changes)] == [(40.0, 10.0, 1)]


def test_on_delay_restarts_when_the_run_is_broken() -> None:
    det = one_point(hi=100.0, on_delay_s=15.0)

    # 101 at 0, 90 at 10 breaks the run, 101 at 20 and 30 is only 10 s: no alarm.
    assert len(det.update(series([101.0, 90.0, 101.0, 101.0]))) == 0
    # The run from 20 reaches 15 s at 40.
    changes = det.update(series([101.0], start=40.0))
    assert [(r[1], r[2], r[3]) for r in rows(changes)] == [(40.0, 20.0, 1)]


def test_deadband_holds_while_oscillating_and_clears_below_it() -> None:
    det = one_point(hi=100.0, deadband=5.0)

    holding = det.update(series([101.0, 96.0, 99.5, 95.0, 100.0, 97.0]))
    assert [r[3] for r in rows(holding)] == [1]

    cleared = det.update(series([94.9], start=60.0))
    assert rows(cleared) == [(0, 60.0, 60.0, 0, 94.9, -999.0)]


def test_escalation_to_hihi_keeps_the_excursion_start() -> None:
    det = one_point(hi=100.0, hihi=120.0, deadband=2.0)

    changes = det.update(series([90.0, 105.0, 110.0, 125.0, 110.0, 97.0]))

    assert rows(changes) == [
        (0, 10.0, 10.0, 1, 105.0, 100.0),
        (0, 30.0, 10.0, 2, 125.0, 120.0),
        (0, 40.0, 10.0, 1, 110.0, 100.0),
        (0, 50.0, 50.0, 0, 97.0, -999.0),
    ]


def test_low_bands_give_negative_codes() -> None:
    det = one_point(lo=300.0, lolo=100.0, deadband=10.0)

    changes = det.update(series([500.0, 290.0, 90.0, 105.0, 115.0, 305.0, 311.0]))

    assert [(r[1], r[2], r[3], r[5]) for r in rows(changes)] == [
        (10.0, 10.0, -1, 300.0),
        (20.0, 10.0, -2, 100.0),
        (40.0, 10.0, -1, 300.0),
        (60.0, 60.0, 0, -999.0),
    ]


def test_nan_limits_never_fire() -> None:
    det = one_point()

    assert len(det.update(series([-1e9, 0.0, 1e9, -1e300, 1e300]))) == 0
    assert det.severity.tolist() == [0]


def test_unjudgeable_samples_change_nothing_and_are_counted() -> None:
    det = one_point(hi=100.0)
    det.update(series([90.0], start=0.0))
    batch = SampleBatch.from_arrays(
        point=[0, 0, 0, 0, 0, 0, 0],
        ts=[10.0, 20.0, 30.0, NAN, 0.0, -5.0, 40.0],
        value=[NAN, math.inf, 150.0, 150.0, 150.0, 150.0, 95.0],
        quality=[0, 0, 4, 0, 0, 0, 0],  # 4: fault (D)
    )

    changes = det.update(batch)

    assert len(changes) == 0
    assert det.skipped_samples == 4  # NaN value, inf value, fault flag, NaN ts
    assert det.late_samples == 2  # ts 0 (already processed) and -5


def test_duplicates_keep_the_first_arrival_and_redelivery_is_late() -> None:
    det = one_point(hi=100.0)
    batch = SampleBatch.from_arrays([0, 0, 0], [10.0, 10.0, 20.0], [150.0, 50.0, 150.0])

    first = det.update(batch)
    again = det.update(batch)  # QoS 1 redelivery of the whole batch

    assert rows(first) == [(0, 10.0, 10.0, 1, 150.0, 100.0)]
    assert len(again) == 0
    assert det.late_samples == 1 + 3


def test_excursion_split_over_batches_matches_one_batch() -> None:
    values = [90.0, 101.0, 103.0, 99.0, 125.0, 130.0, 135.0, 110.0, 97.0]

    def make() -> ThresholdDetector:
        return one_point(hi=100.0, hihi=120.0, deadband=2.0, on_delay_s=15.0)

    whole = rows(make().update(series(values)))
    det = make()
    split: list[tuple[int, float, float, int, float, float]] = []
    for lo, hi in [(0, 2), (2, 5), (5, 6), (6, 9)]:
        split += rows(det.update(series(values[lo:hi], start=lo * 10.0)))

    assert whole == split
    assert [(r[1], r[2], r[3]) for r in whole] == [
        (30.0, 10.0, 1), (60.0, 10.0, 2), (70.0, 10.0, 1), (80.0, 80.0, 0),
    ]


def test_changes_are_sorted_by_ts_then_point() -> None:
    det = ThresholdDetector(
        lo=[NAN] * 3, hi=[1.0] * 3, lolo=[NAN] * 3, hihi=[NAN] * 3,
        deadband=[0.0] * 3, on_delay_s=[0.0] * 3,
    )
    batch = SampleBatch.from_arrays(
        point=[2, 1, 0, 2, 0], ts=[5.0, 5.0, 9.0, 1.0, 5.0], value=[0.0, 2.0, 0.0, 2.0, 2.0]
    )

    changes = det.update(batch)

    assert [(r[0], r[1], r[3]) for r in rows(changes)] == [
        (2, 1.0, 1), (0, 5.0, 1), (1, 5.0, 1), (2, 5.0, 0), (0, 9.0, 0),
    ]


def test_sweep_emits_nothing() -> None:
    det = one_point(hi=1.0)
    det.update(series([5.0]))

    assert len(det.sweep(1e12)) == 0


def test_bad_point_index_is_a_clear_error() -> None:
    det = one_point(hi=1.0)

    with pytest.raises(ValueError, match="out of range"):
        det.update(SampleBatch.from_arrays([1], [0.0], [0.0]))


# --- oracle: a per-sample reference, obviously correct and slow -----------------------

_PRIORITY = (("hihi", 2), ("hi", 1), ("lolo", -2), ("lo", -1))


class Reference:
    """Processes one sample at a time in (point, ts) order, exactly as specified."""

    def __init__(self, limits: dict[str, np.ndarray], deadband: np.ndarray,
                 on_delay: np.ndarray) -> None:
        self.limits = {k: v.tolist() for k, v in limits.items()}
        self.deadband = deadband.tolist()
        self.on_delay = on_delay.tolist()
        n = len(self.deadband)
        self.active = {k: [False] * n for k in self.limits}
        self.run_start = {k: [NAN] * n for k in self.limits}
        self.excursion = [NAN] * n
        self.code = [0] * n
        self.last_ts = [-math.inf] * n
        self.late = 0
        self.skipped = 0

    def update(self, batch: SampleBatch) -> list[tuple[int, float, float, int, float, float]]:
        out = []
        judged = []
        for i in range(len(batch)):
            p, t, v, q = (int(batch.point[i]), float(batch.ts[i]), float(batch.value[i]),
                          int(batch.quality[i]))
            if not (math.isfinite(t) and math.isfinite(v) and q == 0):
                self.skipped += 1
            else:
                judged.append((p, t, v))
        for p, t, v in sorted(judged, key=lambda r: (r[0], r[1])):  # stable
            if t <= self.last_ts[p]:
                self.late += 1
                continue
            self.last_ts[p] = t
            was_any = any(self.active[k][p] for k in self.limits)
            code = 0
            for name, band_code in reversed(_PRIORITY):
                limit, db = self.limits[name][p], self.deadband[p]
                if band_code > 0:
                    enter, leave = v > limit, v < limit - db
                else:
                    enter, leave = v < limit, v > limit + db
                was = self.active[name][p]
                now = True if enter else False if leave else was
                self.active[name][p] = now
                if now and not was:
                    self.run_start[name][p] = t
                if now and t - self.run_start[name][p] >= self.on_delay[p]:
                    code = band_code
            is_any = any(self.active[k][p] for k in self.limits)
            if is_any and not was_any:
                self.excursion[p] = t
            if code != self.code[p]:
                self.code[p] = code
                name = {c: n for n, c in _PRIORITY}.get(code)
                limit = -999.0 if name is None else self.limits[name][p]
                since = self.excursion[p] if code else t
                out.append((p, t, since, code, v, limit))
        out.sort(key=lambda r: (r[1], r[0]))
        return out


def random_setup(rng: np.random.Generator, n_points: int) -> tuple[
    dict[str, np.ndarray], np.ndarray, np.ndarray
]:
    def maybe_nan(values: np.ndarray) -> np.ndarray:
        return np.where(rng.random(n_points) < 0.2, NAN, values)

    limits = {
        "lolo": maybe_nan(rng.uniform(-30, -20, n_points)),
        "lo": maybe_nan(rng.uniform(-15, -5, n_points)),
        "hi": maybe_nan(rng.uniform(5, 15, n_points)),
        "hihi": maybe_nan(rng.uniform(20, 30, n_points)),
    }
    deadband = rng.choice([0.0, 1.0, 4.0], n_points)
    on_delay = rng.choice([0.0, 2.0, 5.0], n_points)
    return limits, deadband, on_delay


def random_batch(rng: np.random.Generator, n_points: int, n: int, t0: float) -> SampleBatch:
    point = rng.integers(0, n_points, n)
    ts = t0 + rng.integers(-3, 20, n).astype(float)  # ties, duplicates and late rows
    value = np.round(rng.normal(0, 18, n), 1)
    value[rng.random(n) < 0.05] = NAN
    value[rng.random(n) < 0.01] = math.inf
    ts[rng.random(n) < 0.02] = NAN
    quality = np.where(rng.random(n) < 0.05, 4, 0)
    # Exact redeliveries of some rows, appended in arrival order.
    again = rng.random(n) < 0.1
    return SampleBatch.from_arrays(
        np.r_[point, point[again]], np.r_[ts, ts[again]], np.r_[value, value[again]],
        np.r_[quality, quality[again]],
    )


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4, 5, 6, 7])
def test_matches_per_sample_reference_on_random_unsorted_batches(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n_points = int(rng.integers(1, 12))
    limits, deadband, on_delay = random_setup(rng, n_points)
    det = ThresholdDetector(limits["lo"], limits["hi"], limits["lolo"], limits["hihi"],
                            deadband, on_delay)
    ref = Reference(limits, deadband, on_delay)

    for step in range(12):
        batch = random_batch(rng, n_points, int(rng.integers(0, 60)), t0=step * 15.0)
        assert rows(det.update(batch)) == ref.update(batch)

    assert (det.late_samples, det.skipped_samples) == (ref.late, ref.skipped)
    assert det.severity.tolist() == ref.code


def test_all_points_at_once_equals_points_one_by_one() -> None:
    rng = np.random.default_rng(42)
    n_points = 6
    limits, deadband, on_delay = random_setup(rng, n_points)

    def make() -> ThresholdDetector:
        return ThresholdDetector(limits["lo"], limits["hi"], limits["lolo"], limits["hihi"],
                                 deadband, on_delay)

    batches = [random_batch(rng, n_points, 200, t0=k * 15.0) for k in range(5)]
    together = make()
    expected = [r for b in batches for r in rows(together.update(b))]
    alone = make()
    got = []
    for p in range(n_points):
        for b in batches:
            mine = b.point == p
            got += rows(alone.update(SampleBatch.from_arrays(
                b.point[mine], b.ts[mine], b.value[mine], b.quality[mine])))

    assert sorted(got, key=lambda r: (r[0], r[1])) == sorted(expected, key=lambda r: (r[0], r[1]))


def test_registries_beyond_16_bit_point_ids_sort_correctly() -> None:
    rng = np.random.default_rng(7)
    n_points = 70_000
    limits = {name: np.full(n_points, NAN) for name in ("lo", "lolo", "hihi")}
    limits["hi"] = np.full(n_points, 5.0)
    deadband, on_delay = np.zeros(n_points), np.zeros(n_points)
    det = ThresholdDetector(limits["lo"], limits["hi"], limits["lolo"], limits["hihi"],
                            deadband, on_delay)
    ref = Reference(limits, deadband, on_delay)
    # Ids that collide modulo 2**16 (3 and 65539) must stay separate points.
    point = rng.choice([3, 65_539, 69_999, 4], 300)
    batch = SampleBatch.from_arrays(point, rng.integers(0, 50, 300).astype(float),
                                    rng.normal(5, 3, 300))

    assert rows(det.update(batch)) == ref.update(batch)
