"""SilenceDetector: silence on the watermark, heartbeats, clearing, never-seen devices."""

from __future__ import annotations

import math

import numpy as np
import pytest

from detectors import SampleBatch, SilenceDetector

NAN = math.nan


def two_devices() -> SilenceDetector:
    """Points 0 and 1 on device 0 (every 10 s), point 2 on device 1 (every 60 s)."""
    return SilenceDetector(point_device=[0, 0, 1], expected_interval_s=[10.0, 60.0], k=3.0)


def samples(points: list[int], ts: list[float], quality: list[int] | None = None) -> SampleBatch:
    return SampleBatch.from_arrays(points, ts, [1.0] * len(points), quality)


def test_fires_after_k_intervals_with_last_seen_as_since() -> None:
    det = two_devices()
    det.update(samples([0, 1, 2], [1000.0, 1005.0, 1000.0]))

    assert len(det.sweep(1035.0)) == 0  # exactly 30 s: not yet more than 3 x 10 s
    changes = det.sweep(1036.0)

    assert changes.rule == "silence"
    assert changes.subject.tolist() == [0]
    assert changes.severity.tolist() == [1]
    assert changes.ts.tolist() == [1036.0]
    assert changes.since.tolist() == [1005.0]
    assert changes.limit.tolist() == [30.0]
    assert np.isnan(changes.value).all()
    assert det.silent.tolist() == [True, False]


def test_does_not_fire_while_data_keeps_coming() -> None:
    det = two_devices()

    fired = 0
    for ts in np.arange(0.0, 600.0, 10.0):
        det.update(samples([0, 2], [ts, ts]))
        fired += len(det.sweep(ts + 5.0))

    assert fired == 0


def test_heartbeat_counts_as_activity() -> None:
    det = two_devices()
    det.update(samples([0], [1000.0]))
    det.update(SampleBatch.from_arrays([], [], [], heartbeat_device=[0], heartbeat_ts=[1020.0]))

    assert len(det.sweep(1045.0)) == 0
    assert det.last_seen[0] == 1020.0
    assert det.sweep(1051.0).since.tolist() == [1020.0]


def test_flagged_data_is_alive_and_nan_ts_is_not() -> None:
    det = two_devices()

    det.update(samples([0, 1], [1000.0, NAN], quality=[4, 0]))

    assert det.last_seen[0] == 1000.0


def test_clears_when_data_arrives_and_repeated_sweeps_do_not_re_emit() -> None:
    det = two_devices()
    det.update(samples([0, 2], [1000.0, 1000.0]))
    assert det.sweep(1040.0).subject.tolist() == [0]
    assert len(det.sweep(1045.0)) == 0
    assert len(det.sweep(1050.0)) == 0

    back = det.update(samples([1, 0], [1052.0, 1051.0]))

    assert back.subject.tolist() == [0]
    assert back.severity.tolist() == [0]
    assert back.ts.tolist() == [1052.0]
    assert back.since.tolist() == [1052.0]
    assert np.isnan(back.limit).all()
    assert det.silent.tolist() == [False, False]
    assert len(det.sweep(1055.0)) == 0


def test_old_data_does_not_clear_a_silence() -> None:
    det = two_devices()
    det.update(samples([0], [1000.0]))
    det.sweep(1040.0)

    # A backfilled record from before the silence was declared: alive then, not now.
    late = det.update(samples([0], [1020.0]))

    assert len(late) == 0
    assert det.silent.tolist()[0] is True
    assert det.last_seen[0] == 1020.0


def test_never_seen_device_fires_k_intervals_after_first_sweep() -> None:
    det = two_devices()
    det.update(samples([0], [5000.0]))

    assert len(det.sweep(5000.0)) == 0  # watching starts: device 1 never reported
    det.update(samples([0], [5170.0]))
    assert len(det.sweep(5180.0)) == 0  # 180 s = 3 x 60 s: not yet
    changes = det.sweep(5185.0)

    assert changes.subject.tolist() == [1]
    assert changes.since.tolist() == [5000.0]
    assert changes.limit.tolist() == [180.0]
    assert math.isnan(det.last_seen[1])  # the API still sees "nothing since start"


def test_state_is_read_only_to_callers() -> None:
    det = two_devices()

    with pytest.raises(ValueError, match="read-only"):
        det.last_seen[0] = 1.0
    with pytest.raises(ValueError, match="read-only"):
        det.silent[0] = True


def test_nan_interval_is_never_silent() -> None:
    det = SilenceDetector(point_device=[0], expected_interval_s=[NAN])

    det.sweep(0.0)

    assert len(det.sweep(1e9)) == 0
