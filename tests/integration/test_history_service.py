"""The live service keeps every point's history: closed minutes reach ``point_minutes``
on the sweep beat, open ones at shutdown."""

from __future__ import annotations

import time

import numpy as np
import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from gateway.service import Service
from gateway.storage.aggregates import MinuteRows
from gateway.storage.point_minutes import MinuteSeries, PointMinuteStore
from tests.helpers import Publisher, eventually, now_ts

pytestmark = pytest.mark.integration


async def test_minutes_are_written_while_running_and_at_shutdown(
    service: Service, publisher: Publisher, ids: dict[str, str], database_url: str
) -> None:
    topic = f"rw/v1/{ids['e1']}/{ids['e1']}-DC1/telemetry"
    old = (time.time() - 300) // 60 * 60 + 1 - time.time()  # in a minute 5 minutes ago
    publisher.send(topic, {"records": [
        {"ts": now_ts(old), "values": {"dp": 700.0}},  # a closed minute
        {"ts": now_ts(old + 1), "values": {"dp": 720.0}},
        {"ts": now_ts(), "values": {"dp": 900.0}},  # the open minute
    ]})
    engine = create_async_engine(database_url)
    store = PointMinuteStore(engine)
    since_ms = int((time.time() - 3600) * 1000)
    until_ms = since_ms + 7_200_000

    async def dp() -> MinuteSeries | None:
        found = await store.query(ids["e1"], since_ms, until_ms)
        return found.get((f"{ids['e1']}-DC1", "dp"))

    try:
        closed = await eventually(dp)
        assert (closed.max, closed.count) == ([720.0], [2])

        service.stop()

        async def both() -> MinuteSeries | None:
            series = await dp()
            return series if series is not None and len(series.t) == 2 else None

        written = await eventually(both)
        assert written.last == [720.0, 900.0]
    finally:
        await engine.dispose()


async def test_the_service_deletes_history_older_than_its_retention(
    service: Service, database_url: str
) -> None:
    # The default keeps 30 days; rows 40 and 10 days old are written as a long-running
    # service would have, then the service's own retention takes its next turn.
    assert service.history_retention is not None
    assert service.history_retention.keep_s == 30 * 86_400.0
    index = service.registry.index
    day = 86_400.0
    minute = (time.time() // 60) * 60
    old, recent = minute - 40 * day, minute - 10 * day
    rows = MinuteRows(point=np.array([0, 0], dtype=np.intp),
                      minute=np.array([old, recent], dtype=np.int64),
                      min=np.array([1.0, 2.0]), sum=np.array([1.0, 2.0]),
                      count=np.array([1, 1], dtype=np.int64), max=np.array([1.0, 2.0]),
                      last_ts=np.array([old, recent]), last=np.array([1.0, 2.0]))
    engine = create_async_engine(database_url)
    store = PointMinuteStore(engine)
    try:
        await store.save(rows, index)

        await service.history_retention.prune_once()
        # Its turn at start-up may have run after the save too: one row gone in all.
        assert service.history_retention.deleted_rows == 1

        enterprise = index.enterprise_ids[int(index.point_enterprise[0])]
        found = await store.query(enterprise, int((old - day) * 1000), int(minute * 1000))
        [series] = found.values()
        assert series.t == [int(recent * 1000)]
    finally:
        await engine.dispose()
