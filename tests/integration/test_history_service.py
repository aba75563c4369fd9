"""The live service keeps every point's history: closed minutes reach ``point_minutes``
on the sweep beat, open ones at shutdown."""

from __future__ import annotations

import time

import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from gateway.service import Service
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
