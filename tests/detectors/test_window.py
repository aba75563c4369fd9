"""RecentWindow keeps the last `depth` samples per point, oldest first."""

from __future__ import annotations

import numpy as np

from detectors.base import SampleBatch
from detectors.window import RecentWindow


def batch(points: list[int], values: list[float]) -> SampleBatch:
    return SampleBatch.from_arrays(point=points, ts=values, value=values)


def test_wraps_around_across_batches() -> None:
    window = RecentWindow(n_points=1, depth=3)
    window.update(batch([0, 0], [1.0, 2.0]))
    window.update(batch([0, 0], [3.0, 4.0]))
    assert window.samples(0) == ([2.0, 3.0, 4.0], [2.0, 3.0, 4.0])


def test_more_than_depth_in_one_batch_keeps_the_latest() -> None:
    window = RecentWindow(n_points=2, depth=2)
    window.update(batch([0, 1, 0, 0, 1, 0], [1.0, 10.0, 2.0, 3.0, 20.0, 4.0]))
    assert window.samples(0)[1] == [3.0, 4.0]
    assert window.samples(1)[1] == [10.0, 20.0]


def test_untouched_point_is_empty() -> None:
    window = RecentWindow(n_points=3, depth=4)
    window.update(batch([2], [5.0]))
    assert window.samples(0) == ([], [])


def test_matches_a_plain_list_reference_on_random_batches() -> None:
    rng = np.random.default_rng(11)
    window = RecentWindow(n_points=20, depth=5)
    reference: dict[int, list[float]] = {p: [] for p in range(20)}
    counter = 0.0
    for _ in range(50):
        size = int(rng.integers(0, 40))
        points = rng.integers(0, 20, size).tolist()
        values = []
        for p in points:
            counter += 1
            values.append(counter)
            reference[p].append(counter)
        window.update(batch(points, values))
    for p in range(20):
        assert window.samples(p)[1] == reference[p][-5:]
