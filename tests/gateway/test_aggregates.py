"""The minute accumulator on small arrays: every figure checked against a hand count."""

from __future__ import annotations

import numpy as np
import pytest

from gateway.storage.aggregates import MinuteAccumulator, MinuteRows, group_samples, merge

T0 = 1_795_478_400.0  # 2026-11-24T08:00:00+08:00, a minute boundary


def add(acc: MinuteAccumulator, point: list[int], ts: list[float], value: list[float]) -> None:
    acc.add(np.array(point, dtype=np.intp), np.array(ts, dtype=np.float64),
            np.array(value, dtype=np.float64))


def as_dicts(rows: MinuteRows) -> list[dict[str, float]]:
    return [
        {"point": int(rows.point[i]), "minute": int(rows.minute[i]) - T0,
         "min": float(rows.min[i]), "mean": float(rows.mean[i]), "max": float(rows.max[i]),
         "last": float(rows.last[i]), "last_ts": float(rows.last_ts[i]) - T0,
         "count": int(rows.count[i])}
        for i in range(len(rows))
    ]


def test_min_mean_max_last_per_point_and_minute() -> None:
    acc = MinuteAccumulator(3, grace_s=0)
    add(acc, [0, 0, 1, 0, 1, 0],
        [T0 + 1, T0 + 30, T0 + 5, T0 + 59, T0 + 61, T0 + 60],
        [4.0, 2.0, 10.0, 6.0, 11.0, 100.0])

    rows = as_dicts(acc.take_closed(T0 + 180))

    assert rows == [
        {"point": 0, "minute": 0, "min": 2.0, "mean": 4.0, "max": 6.0, "last": 6.0,
         "last_ts": 59.0, "count": 3},
        {"point": 0, "minute": 60, "min": 100.0, "mean": 100.0, "max": 100.0,
         "last": 100.0, "last_ts": 60.0, "count": 1},
        {"point": 1, "minute": 0, "min": 10.0, "mean": 10.0, "max": 10.0, "last": 10.0,
         "last_ts": 5.0, "count": 1},
        {"point": 1, "minute": 60, "min": 11.0, "mean": 11.0, "max": 11.0, "last": 11.0,
         "last_ts": 61.0, "count": 1},
    ]
    assert not len(acc.take_all())


def test_last_is_by_event_time_not_arrival() -> None:
    acc = MinuteAccumulator(1, grace_s=0)
    add(acc, [0, 0, 0], [T0 + 50, T0 + 10, T0 + 20], [5.0, 1.0, 2.0])
    add(acc, [0], [T0 + 40], [4.0])  # later batch, earlier sample: not the last

    [row] = as_dicts(acc.take_all())

    assert (row["last"], row["last_ts"], row["count"], row["mean"]) == (5.0, 50.0, 4, 3.0)


def test_nan_and_infinite_values_are_ignored() -> None:
    acc = MinuteAccumulator(2, grace_s=0)
    add(acc, [0, 0, 0, 1], [T0 + 1, T0 + 2, T0 + 3, T0 + 4],
        [1.0, float("nan"), float("inf"), float("nan")])

    rows = as_dicts(acc.take_all())

    assert [(r["point"], r["count"], r["max"], r["last"]) for r in rows] == [(0, 1, 1.0, 1.0)]


def test_duplicates_in_a_batch_count_once_and_the_last_received_wins() -> None:
    acc = MinuteAccumulator(1, grace_s=0)
    add(acc, [0, 0, 0, 0], [T0 + 10, T0 + 20, T0 + 10, T0 + 20], [1.0, 2.0, 1.0, 3.0])

    [row] = as_dicts(acc.take_all())

    assert (row["count"], row["min"], row["max"], row["last"], row["mean"]) == (
        2, 1.0, 3.0, 3.0, 2.0)


def test_a_minute_is_closed_only_after_the_grace() -> None:
    acc = MinuteAccumulator(1, grace_s=120)
    add(acc, [0], [T0 + 10], [1.0])

    assert not len(acc.take_closed(T0 + 60 + 119))
    assert len(acc.take_closed(T0 + 60 + 120)) == 1
    assert not len(acc.take_closed(T0 + 3600))


def test_late_samples_for_a_taken_minute_come_out_again_as_a_partial_row() -> None:
    acc = MinuteAccumulator(1, grace_s=0)
    add(acc, [0, 0], [T0 + 10, T0 + 70], [1.0, 7.0])
    first = as_dicts(acc.take_closed(T0 + 120))
    add(acc, [0], [T0 + 20], [3.0])  # late: minute 0 was already handed out
    add(acc, [0], [T0 + 130], [9.0])

    second = as_dicts(acc.take_closed(T0 + 179))

    assert [(r["minute"], r["count"], r["last"]) for r in first] == [(0, 1, 1.0), (60, 1, 7.0)]
    assert [(r["minute"], r["count"], r["last"]) for r in second] == [(0, 1, 3.0)]
    assert [(r["minute"], r["count"]) for r in as_dicts(acc.take_all())] == [(120, 1)]


def test_out_of_order_batches_give_the_same_rows_as_one_sorted_batch() -> None:
    rng = np.random.default_rng(7)
    n = 2_000
    point = rng.integers(0, 5, n).astype(np.intp)
    ts = T0 + rng.uniform(0, 600, n).round(3)
    value = rng.normal(50, 10, n)
    value[rng.integers(0, n, 20)] = np.nan

    whole = MinuteAccumulator(5, grace_s=0)
    order = np.lexsort((ts, point))
    whole.add(point[order], ts[order], value[order])
    expected = whole.take_all()

    pieces = MinuteAccumulator(5, grace_s=0)
    shuffled = rng.permutation(n)
    taken = []
    for i, chunk in enumerate(np.array_split(shuffled, 13)):
        pieces.add(point[chunk], ts[chunk], value[chunk])
        taken.append(pieces.take_closed(T0 + 60 * i))  # some minutes leave early
    got = merge(MinuteRows.concat([*taken, pieces.take_all()]))

    assert len(got) == len(expected) == 50
    for name in ("point", "minute", "count", "min", "max", "last", "last_ts"):
        np.testing.assert_array_equal(getattr(got, name), getattr(expected, name), name)
    np.testing.assert_allclose(got.mean, expected.mean)
    finite = np.isfinite(value)
    assert int(got.count.sum()) == int(finite.sum())


def test_pending_shows_open_minutes_without_taking_them() -> None:
    acc = MinuteAccumulator(2)
    add(acc, [0, 1, 0], [T0 + 1, T0 + 2, T0 + 65], [1.0, 2.0, 3.0])

    assert len(acc.pending()) == 3
    assert len(acc.take_all()) == 3
    assert not len(acc.pending())


def test_group_samples_of_an_empty_or_all_invalid_batch() -> None:
    empty = np.array([], dtype=np.intp)
    assert not len(group_samples(empty, np.array([]), np.array([])))
    assert not len(group_samples(np.array([0], dtype=np.intp), np.array([-5.0]),
                                 np.array([1.0])))


def test_negative_grace_is_refused() -> None:
    with pytest.raises(ValueError, match="grace_s"):
        MinuteAccumulator(1, grace_s=-1)
