"""Cadence: batches held until a span of event time has passed, then released joined."""

from __future__ import annotations

import math

import numpy as np
import pytest

from detectors.base import SampleBatch
from detectors.cadence import Cadence


def batch(ts: list[float], first_point: int = 0) -> SampleBatch:
    return SampleBatch.from_arrays([first_point + i for i in range(len(ts))], ts,
                                   [float(t) for t in ts])


def test_zero_holds_nothing() -> None:
    b = batch([5.0])
    assert Cadence(0.0).add(b) is b


def test_batches_are_released_joined_in_arrival_order_once_the_span_passes() -> None:
    c = Cadence(60.0)
    assert c.add(batch([10.0, 20.0])) is None  # first held: newest ts 20
    assert c.add(batch([70.0], first_point=5)) is None  # 50 s after it
    out = c.add(batch([15.0, 80.0], first_point=7))  # 60 s after it, late row first

    assert out is not None
    assert not c.holding
    assert out.point.tolist() == [0, 1, 5, 7, 8]
    assert out.ts.tolist() == [10.0, 20.0, 70.0, 15.0, 80.0]
    assert out.quality.tolist() == [0] * 5
    assert len(out.heartbeat_device) == 0


def test_the_watermark_releases_what_waits() -> None:
    c = Cadence(60.0)
    c.add(batch([100.0]))
    assert c.due(159.9) is None
    out = c.due(160.0)
    assert out is not None
    assert out.ts.tolist() == [100.0]
    assert c.due(1e12) is None
    assert c.release() is None


def test_a_row_cap_bounds_what_is_held() -> None:
    c = Cadence(3600.0, max_rows=4)
    assert c.add(batch([1.0, 2.0])) is None
    out = c.add(batch([3.0, 4.0]))
    assert out is not None
    assert len(out) == 4


def test_batches_without_finite_time_do_not_wait_forever() -> None:
    c = Cadence(60.0)
    out = c.add(batch([math.nan]))  # no time to wait out: released at once
    assert out is not None
    assert np.isnan(out.ts).all()
    c.add(batch([5.0]))
    out = c.add(batch([math.nan], first_point=3))  # held behind a timed batch, then out
    assert out is None
    assert c.due(65.0) is not None


def test_bad_arguments_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="every_s"):
        Cadence(-1.0)
    with pytest.raises(ValueError, match="every_s"):
        Cadence(math.inf)
