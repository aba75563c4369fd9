"""A replay of a short simulated recording fills ``point_minutes``, on SQLite and
PostgreSQL: every point the recording carries gets one row per minute, and every
sample is counted once."""

from __future__ import annotations

from pathlib import Path

import orjson
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.registry import Registry
from gateway.replay import ReplayOptions, replay_recording
from gateway.storage.history import PointHistory
from gateway.storage.point_minutes import PointMinuteStore
from simulators.basic import BasicSimulator

START = 1_795_478_400.0  # 2026-11-24T08:00:00+08:00, a minute boundary
MINUTES = 12


async def test_a_replay_fills_the_minute_table(
    engine: AsyncEngine, small_registry: Registry, tmp_path: Path
) -> None:
    recording = tmp_path / "rec.jsonl"
    with recording.open("wb") as out:
        for topic, payload in BasicSimulator(small_registry.spec, seed=5).messages(
                START, START + MINUTES * 60):
            out.write(orjson.dumps({"topic": topic, "payload": payload}) + b"\n")
    history = PointHistory(small_registry.index)

    report = replay_recording(small_registry, recording, tmp_path / "alerts.jsonl",
                              options=ReplayOptions(progress=False), history=history)
    written = await PointMinuteStore(engine).save(history.take_all(), small_registry.index)

    store = PointMinuteStore(engine)
    start_ms, end_ms = int(START * 1000), int((START + MINUTES * 60) * 1000)
    found = {}
    for enterprise in small_registry.index.enterprise_ids:
        found |= await store.query(enterprise, start_ms, end_ms)
    index = small_registry.index
    every_point = {(index.device_ids[index.point_device[p]], index.point_names[p])
                   for p in range(index.n_points)}
    assert set(found) == every_point
    assert written == sum(len(s.t) for s in found.values())
    assert sum(sum(s.count) for s in found.values()) == report.samples
    dp = found[("DC1", "dp")]
    assert dp.t == [start_ms + 60_000 * m for m in range(MINUTES)]
    assert all(low <= mean <= high for low, mean, high in zip(dp.min, dp.mean, dp.max,
                                                               strict=True))
