"""The ``point_minutes`` store on real SQLite and PostgreSQL: upsert merges, range reads,
and the background writer."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from detectors.base import SampleBatch
from gateway.registry import Registry
from gateway.storage.aggregates import MinuteAccumulator, MinuteRows
from gateway.storage.history import HistoryRetention, HistoryWriter, PointHistory
from gateway.storage.point_minutes import CHUNK_ROWS, PointMinuteStore

T0 = 1_795_478_400.0  # a minute boundary
MS = int(T0 * 1000)
DP, TEMP, CO = 0, 1, 11  # DC1/dp, DC1/hopper_temp (E370829001), GD-CO1/co (E320583002)


def rows(point: list[int], ts: list[float], value: list[float]) -> MinuteRows:
    acc = MinuteAccumulator(12, grace_s=0)
    acc.add(np.array(point, dtype=np.intp), np.array(ts), np.array(value))
    return acc.take_all()


async def test_rows_are_written_and_read_back_per_point(
    engine: AsyncEngine, small_registry: Registry
) -> None:
    store = PointMinuteStore(engine)
    written = await store.save(rows([DP, DP, DP, TEMP, CO], [T0 + 1, T0 + 2, T0 + 61, T0 + 3, T0],
                                    [800.0, 900.0, 1000.0, 40.5, 5.0]), small_registry.index)

    found = await store.query("E370829001", MS, MS + 3_600_000)

    assert written == 4
    assert set(found) == {("DC1", "dp"), ("DC1", "hopper_temp")}
    dp = found[("DC1", "dp")]
    assert dp.t == [MS, MS + 60_000]
    assert (dp.min, dp.mean, dp.max, dp.last, dp.count) == (
        [800.0, 1000.0], [850.0, 1000.0], [900.0, 1000.0], [900.0, 1000.0], [2, 1])
    assert dp.last_at == [MS + 2000, MS + 61_000]
    only = await store.query("E370829001", MS + 60_000, MS + 120_000, device_id="DC1",
                             point="dp")
    assert list(only) == [("DC1", "dp")]
    assert only[("DC1", "dp")].t == [MS + 60_000]
    assert await store.query("E370829001", MS, MS + 3_600_000, point="nope") == {}


async def test_a_late_part_merges_into_the_stored_minute(
    engine: AsyncEngine, small_registry: Registry
) -> None:
    store = PointMinuteStore(engine)
    index = small_registry.index
    await store.save(rows([DP, DP], [T0 + 10, T0 + 30], [10.0, 20.0]), index)
    await store.save(rows([DP, DP], [T0 + 20, T0 + 5], [40.0, 1.0]), index)  # late part

    dp = (await store.query("E370829001", MS, MS + 60_000))[("DC1", "dp")]

    assert (dp.min, dp.max, dp.count, dp.last, dp.last_at) == (
        [1.0], [40.0], [4], [20.0], [MS + 30_000])
    assert dp.mean == [pytest.approx(17.75)]
    await store.save(rows([DP], [T0 + 59], [5.0]), index)  # now a newer last
    dp = (await store.query("E370829001", MS, MS + 60_000))[("DC1", "dp")]
    assert (dp.last, dp.last_at, dp.count) == ([5.0], [MS + 59_000], [5])


async def test_more_rows_than_one_statement_holds(
    engine: AsyncEngine, small_registry: Registry
) -> None:
    minutes = CHUNK_ROWS + 50
    ts = T0 + 60.0 * np.arange(minutes)
    store = PointMinuteStore(engine)

    assert await store.save(rows([CO] * minutes, ts.tolist(), [1.0] * minutes),
                            small_registry.index) == minutes
    found = await store.query("E320583002", MS, MS + minutes * 60_000)
    assert len(found[("GD-CO1", "co")].t) == minutes


async def test_the_writer_merges_its_backlog_and_drains_on_close(
    engine: AsyncEngine, small_registry: Registry
) -> None:
    index = small_registry.index
    history = PointHistory(index, grace_s=0)
    writer = HistoryWriter(PointMinuteStore(engine), index)
    history.observe(SampleBatch.from_arrays([DP, TEMP], [T0 + 1, T0 + 2], [1.0, 2.0]))
    await writer.submit(history.take_closed(T0 + 60))
    history.observe(SampleBatch.from_arrays([DP], [T0 + 3], [3.0]))  # late, same minute
    await writer.submit(history.take_closed(T0 + 120))
    await writer.close()

    await asyncio.wait_for(writer.run(), 10)

    found = await PointMinuteStore(engine).query("E370829001", MS, MS + 60_000)
    assert found[("DC1", "dp")].count == [2]
    assert found[("DC1", "dp")].max == [3.0]
    assert writer.written_rows == 2  # the backlog was merged into one row per minute
    assert history.raw.samples(DP) == ([T0 + 1, T0 + 3], [1.0, 3.0])


async def test_prune_deletes_the_minutes_before_the_cut_in_steps(
    engine: AsyncEngine, small_registry: Registry
) -> None:
    # Two hours of minutes of two points, with a gap of a day before the second hour.
    day = 86_400.0
    first = T0 + 60.0 * np.arange(60)
    second = T0 + day + 60.0 * np.arange(60)
    ts = np.concatenate((first, second)).tolist()
    store = PointMinuteStore(engine)
    index = small_registry.index
    await store.save(rows([DP] * 120 + [TEMP] * 120, ts + ts, [1.0] * 240), index)
    cut = MS + int(day * 1000) + 30 * 60_000  # half of the second hour survives

    deleted = await store.prune(cut, step_ms=7 * 60_000)

    assert deleted == 2 * 90
    found = await store.query("E370829001", MS, MS + int(2 * day * 1000))
    for key in (("DC1", "dp"), ("DC1", "hopper_temp")):
        assert found[key].t == [cut + i * 60_000 for i in range(30)]
    assert await store.prune(cut) == 0  # nothing left before the cut
    assert await store.prune(MS) == 0


async def test_retention_prunes_on_its_clock_and_survives_a_failing_database(
    engine: AsyncEngine, small_registry: Registry, caplog: pytest.LogCaptureFixture
) -> None:
    store = PointMinuteStore(engine)
    await store.save(rows([DP, DP], [T0, T0 + 3_600.0], [1.0, 2.0]), small_registry.index)
    now = [T0 + 2 * 3_600.0]
    retention = HistoryRetention(store, keep_s=1.5 * 3_600.0, clock=lambda: now[0])

    assert await retention.prune_once() == 1  # the first minute is 2 h old, the other 1 h
    now[0] += 3_600.0
    assert await retention.prune_once() == 1
    assert retention.deleted_rows == 2
    assert await store.query("E370829001", MS, MS + 7_200_000) == {}

    class Down(PointMinuteStore):
        async def prune(self, before_ms: int, *, step_ms: int = 0) -> int:
            raise OSError("connection refused")

    failing = HistoryRetention(Down(engine), keep_s=60.0, every_s=0.01)
    task = asyncio.create_task(failing.run())
    await asyncio.sleep(0.1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert failing.failures >= 2  # logged and tried again, the task alive
    assert "history retention failed (OSError: connection refused)" in caplog.text
    with pytest.raises(ValueError, match="keep_s and every_s must be > 0"):
        HistoryRetention(store, keep_s=0)
