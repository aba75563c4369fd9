"""The deviation rule through the pipeline: a slipping fan belt becomes an
``abnormal_condition`` alert with its baseline, direction and data window as evidence."""

from __future__ import annotations

import numpy as np

from detectors.base import SampleBatch
from gateway.ingest.decode import Decoded
from gateway.pipeline import Pipeline
from gateway.registry import load_registry_data

T0 = 1_795_478_400.0
HOUR = 3600.0


def test_a_slipping_belt_raises_an_abnormal_condition_with_its_baseline() -> None:
    registry = load_registry_data({"enterprises": [{
        "id": "E1", "name": "示例除尘企业", "industry": "dust", "region": ["370000"],
        "devices": [{"id": "DC1", "kind": "dust_collector", "expected_interval_s": 30,
                     "points": {"fan_run": {"kind": "run_state"},
                                "fan_current": {"kind": "current", "unit": "A"}}}]}]})
    pipeline = Pipeline(registry)
    index = registry.index
    run = index.device_points[index.device_index["DC1"]]["fan_run"]
    amps = index.device_points[index.device_index["DC1"]]["fan_current"]
    rng = np.random.default_rng(3)
    ts = T0 + np.arange(0.0, 15 * HOUR, 30.0)
    current = 120.0 + 6.0 * np.sin(ts / 900.0) + rng.normal(0.0, 0.5, ts.shape[0])
    slipped = ts >= T0 + 14 * HOUR
    current[slipped] *= 0.6
    alerts = []
    for start in range(0, ts.shape[0], 120):  # hour by hour, as batches arrive
        t = ts[start:start + 120]
        batch = SampleBatch.from_arrays(np.tile([run, amps], t.shape[0]), np.repeat(t, 2),
                                        np.column_stack((np.ones(t.shape[0]),
                                                         current[start:start + 120])).ravel())
        alerts += pipeline.process(Decoded(samples=batch))
        alerts += pipeline.advance(float(t[-1]))
    alerts += pipeline.drain()

    fired = [a for a in alerts if a.kind == "abnormal_condition" and a.state == "firing"]
    assert len(fired) == 1
    alert = fired[0]
    assert alert.subject.point == "fan_current"
    assert alert.started_at >= T0 + 14 * HOUR
    assert alert.evidence["direction"] == "low"
    assert alert.evidence["running_by"] == "fan_run"
    assert 110.0 < alert.evidence["baseline"]["centre"] < 130.0
    assert "24 h" in alert.evidence["baseline"]["method"]
    assert "偏离运行基线（偏低）" in alert.title
