"""The store writer: everything queued is written, an unstorable alert never blocks."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

from alerting import AlertManager, AlertQuery, AlertStore, Condition, Subject
from gateway.ingest.rejections import Reason, Rejection
from gateway.storage.db import open_engine
from gateway.storage.quarantine_store import QuarantineQuery, QuarantineStore
from gateway.storage.writer import StoreWriter

SUBJECT = Subject(enterprise_id="E1", enterprise_name="测试企业", industry="dust",
                  region=("370000", "370800", "370829"), timezone="Asia/Shanghai",
                  device_id="DC1", point="dp", point_kind="differential_pressure", unit="Pa")


def condition(point: str, at: float) -> Condition:
    return Condition(kind="threshold", subject=dataclasses.replace(SUBJECT, point=point),
                     active=True, level=3, started_at=at, at=at,
                     evidence={"value": 1600.0}, detail={"band": "hi", "value": 1600.0,
                                                         "limit": 1500.0})


async def test_drains_on_close_and_sets_aside_unstorable_alerts(tmp_path: Path) -> None:
    engine = open_engine(f"sqlite+aiosqlite:///{tmp_path / 'rw.sqlite3'}")
    alerts, quarantine = AlertStore(engine), QuarantineStore(engine)
    await alerts.create_schema()
    await quarantine.create_schema()
    writer = StoreWriter(alerts, quarantine)
    task = asyncio.create_task(writer.run())

    good = AlertManager().apply([condition("dp", 1_795_478_400.0)])
    bad = AlertManager().apply([condition("hopper_temp", 1_795_478_401.0)])
    bad[0].evidence["oops"] = object()  # not JSON: the store can never hold it
    rejection = Rejection(reason=Reason.BAD_JSON, detail="x", topic="rw/v1/E1/DC1/telemetry",
                          payload=b"{", received_at=1_795_478_400.0, enterprise_id="E1",
                          device_id="DC1")
    await writer.submit(bad, [])
    await writer.submit(good, [rejection])
    await writer.close()
    await asyncio.wait_for(task, 10)

    stored = await alerts.query(AlertQuery())
    assert [a.id for a in stored] == [good[0].id]
    assert writer.unstorable == 1
    rows = await quarantine.query(QuarantineQuery(enterprise_id="E1"))
    assert [r.reason for r in rows] == [Reason.BAD_JSON]
    await engine.dispose()


async def test_alerts_are_announced_only_once_stored(tmp_path: Path) -> None:
    engine = open_engine(f"sqlite+aiosqlite:///{tmp_path / 'rw.sqlite3'}")
    alerts, quarantine = AlertStore(engine), QuarantineStore(engine)
    await alerts.create_schema()
    await quarantine.create_schema()
    found_when_told: list[bool] = []

    def on_saved(saved: object) -> None:
        async def check() -> None:  # what a browser does on the push: ask the API
            stored = await alerts.query(AlertQuery())
            found_when_told.append([a.id for a in stored] == [a.id for a in good])
        pending.append(asyncio.ensure_future(check()))

    pending: list[asyncio.Future[None]] = []
    writer = StoreWriter(alerts, quarantine, on_saved=on_saved)
    task = asyncio.create_task(writer.run())
    good = AlertManager().apply([condition("dp", 1_795_478_400.0)])
    await writer.submit(good, [])
    await writer.submit([], [])  # nothing to store: nothing announced
    await writer.close()
    await asyncio.wait_for(task, 10)
    await asyncio.gather(*pending)

    assert found_when_told == [True]
    await engine.dispose()
