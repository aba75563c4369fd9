"""Workflow actions and the audit trail, stored, on a real SQLite file and PostgreSQL.

Every test runs on both databases (``database_url``); the PostgreSQL database is shared
by the module, so each test starts from a freshly migrated schema.  The concurrency
tests use separate engines, i.e. separate connections, as two API workers would.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from alerting.handling_store import AlertNotFound, HandlingStore
from alerting.models import Alert, Subject, fingerprint
from alerting.schema import alerts_table
from alerting.store import AlertStore
from alerting.workflow import AuditEvent, WorkflowError, contract_state, system_event_key

T0 = 1_795_478_400.0  # 2026-11-24T08:00:00+08:00: event times of the alert
NOW = T0 + 3600.0  # wall time of people's actions


@pytest.fixture
def alerts(engine: AsyncEngine) -> AlertStore:
    return AlertStore(engine)


@pytest.fixture
def handling(engine: AsyncEngine) -> HandlingStore:
    return HandlingStore(engine)


def make_alert(alert_id: str = "A", *, stage: str = "pending",
               resolved_at: float | None = None) -> Alert:
    who = Subject(enterprise_id="E1", enterprise_name="某某金属制品有限公司", industry="dust",
                  region=("370000", "370800"), timezone="Asia/Shanghai", device_id="DC1",
                  point="dp")
    return Alert(
        id=alert_id, fingerprint=fingerprint("threshold", "E1", "DC1", "dp"),
        kind="threshold", subject=who, level=3,
        state=contract_state(stage, resolved_at is not None), started_at=T0,
        detected_at=T0 + 10, resolved_at=resolved_at,
        updated_at=T0 + 10 if resolved_at is None else resolved_at,
        title="【黄色预警】某某金属制品有限公司 除尘器压差超上限", evidence={"value": 1650.5},
        stage=stage,
    )


async def stage_of(engine: AsyncEngine, alert_id: str) -> str:
    async with engine.connect() as conn:
        return str((await conn.execute(sa.select(alerts_table.c.stage)
                                       .where(alerts_table.c.id == alert_id))).scalar_one())


# --- act ----------------------------------------------------------------------------------

async def test_acknowledge_updates_the_alert_and_writes_the_event(
    alerts: AlertStore, handling: HandlingStore
) -> None:
    await alerts.save([make_alert()])

    alert, event = await handling.act("A", "acknowledge", actor=" 王五 ", at=NOW + 0.0004,
                                      comment="收到", data={"via": "dashboard"})

    assert (alert.stage, alert.state) == ("acknowledged", "acknowledged")
    assert alert.acknowledged_at == NOW
    assert alert.updated_at == NOW  # later than the alert's own last change
    assert alert.closed_at is None
    assert event == AuditEvent(alert_id="A", at=NOW, actor="王五", action="acknowledge",
                               from_stage="pending", to_stage="acknowledged", comment="收到",
                               data={"via": "dashboard"})
    assert await alerts.get("A") == alert
    assert await handling.history("A") == [event]


async def test_the_whole_loop_with_a_rejection(alerts: AlertStore,
                                               handling: HandlingStore) -> None:
    await alerts.save([make_alert()])
    steps: list[tuple[str, dict[str, Any], str]] = [
        ("acknowledge", {}, "acknowledged"),
        ("dispatch", {"assignee": "张三"}, "dispatched"),
        ("feedback", {"comment": "已清灰"}, "feedback"),
        ("reject", {"comment": "压差仍偏高"}, "dispatched"),
        ("feedback", {"comment": "已更换滤袋"}, "feedback"),
        ("verify", {}, "verified"),
        ("close", {}, "closed"),
    ]
    for i, (action, extra, expected) in enumerate(steps):
        alert, _ = await handling.act("A", action, actor="op", at=NOW + i, **extra)
        assert alert.stage == expected
        assert alert.state == contract_state(expected, False)

    assert alert.assignee == "张三"  # kept by the actions after dispatch
    assert (alert.acknowledged_at, alert.closed_at) == (NOW, NOW + 6)
    history = await handling.history("A")
    assert [e.action for e in history] == [action for action, _, _ in steps]
    assert [e.to_stage for e in history] == [stage for _, _, stage in steps]
    assert history[1].data == {"assignee": "张三"}


async def test_state_of_a_resolved_alert_stays_resolved_until_closed(
    alerts: AlertStore, handling: HandlingStore
) -> None:
    await alerts.save([make_alert(resolved_at=T0 + 60)])

    acknowledged, _ = await handling.act("A", "acknowledge", actor="op", at=NOW)
    closed, _ = await handling.act("A", "dismiss", actor="op", at=NOW + 1,
                                   comment="误报: 传感器标定")

    assert acknowledged.state == "resolved"
    assert closed.state == "closed"
    assert closed.resolved_at == T0 + 60


async def test_an_action_earlier_than_the_last_change_keeps_updated_at(
    alerts: AlertStore, handling: HandlingStore
) -> None:
    await alerts.save([make_alert()])

    alert, _ = await handling.act("A", "comment", actor="op", at=T0, comment="看一下")

    assert alert.updated_at == T0 + 10


async def test_commenting_on_a_closed_alert_keeps_its_closing_time(
    alerts: AlertStore, handling: HandlingStore
) -> None:
    await alerts.save([make_alert(stage="verified")])
    await handling.act("A", "close", actor="op", at=NOW)

    alert, event = await handling.act("A", "comment", actor="op", at=NOW + 60,
                                      comment="补充: 已归档")

    assert (alert.stage, alert.closed_at) == ("closed", NOW)
    assert (event.from_stage, event.to_stage) == ("closed", "closed")


async def test_unknown_alert_is_alert_not_found(handling: HandlingStore) -> None:
    with pytest.raises(AlertNotFound) as caught:
        await handling.act("nope", "acknowledge", actor="op", at=NOW)

    assert isinstance(caught.value, LookupError)
    assert caught.value.alert_id == "nope"
    assert await handling.history("nope") == []


@pytest.mark.parametrize(("stage", "action", "extra", "code"), [
    ("closed", "acknowledge", {}, "invalid_transition"),
    ("pending", "verify", {}, "invalid_transition"),
    ("pending", "dispatch", {}, "missing_assignee"),
    ("acknowledged", "feedback", {"comment": "  "}, "missing_comment"),
])
async def test_a_refused_action_changes_nothing(
    alerts: AlertStore, handling: HandlingStore, stage: str, action: str,
    extra: dict[str, Any], code: str
) -> None:
    before = make_alert(stage=stage)
    await alerts.save([before])

    with pytest.raises(WorkflowError) as caught:
        await handling.act("A", action, actor="op", at=NOW, **extra)

    assert caught.value.code == code
    assert await alerts.get("A") == before
    assert await handling.history("A") == []


async def test_a_pipeline_save_after_an_action_keeps_the_stage(
    alerts: AlertStore, handling: HandlingStore
) -> None:
    fired = make_alert()
    await alerts.save([fired])
    await handling.act("A", "dispatch", actor="op", at=NOW, assignee="张三")

    await alerts.save([replace(fired, level=2, updated_at=T0 + 20)])  # an older copy

    stored = await alerts.get("A")
    assert stored is not None
    assert (stored.stage, stored.assignee, stored.level) == ("dispatched", "张三", 2)
    assert stored.state == "acknowledged"  # not the stale copy's "firing"


async def test_a_pipeline_save_of_a_resolved_copy_keeps_a_closed_alert_closed(
    alerts: AlertStore, handling: HandlingStore
) -> None:
    fired = make_alert()
    await alerts.save([fired])
    await handling.act("A", "dismiss", actor="op", at=NOW, comment="误报")

    await alerts.save([replace(fired, state="resolved", resolved_at=T0 + 30)])

    stored = await alerts.get("A")
    assert stored is not None
    assert (stored.state, stored.stage, stored.resolved_at) == ("closed", "closed", T0 + 30)


# --- concurrency --------------------------------------------------------------------------

async def test_two_concurrent_acknowledgements_one_wins(
    database_url: str, alerts: AlertStore, handling: HandlingStore
) -> None:
    await alerts.save([make_alert()])
    engines = [create_async_engine(database_url) for _ in range(2)]
    try:
        results = await asyncio.gather(
            *(HandlingStore(e).act("A", "acknowledge", actor=f"op{i}", at=NOW)
              for i, e in enumerate(engines)), return_exceptions=True)
    finally:
        for e in engines:
            await e.dispose()

    won = [r for r in results if isinstance(r, tuple)]
    lost = [r for r in results if isinstance(r, WorkflowError)]
    assert (len(won), len(lost)) == (1, 1), results
    assert lost[0].code == "invalid_transition"
    history = await handling.history("A")
    assert [e.actor for e in history] == [won[0][1].actor]


async def test_concurrent_comments_are_all_recorded(
    database_url: str, alerts: AlertStore, handling: HandlingStore
) -> None:
    await alerts.save([make_alert()])
    engines = [create_async_engine(database_url) for _ in range(4)]
    try:
        await asyncio.gather(*(HandlingStore(e).act("A", "comment", actor=f"op{i}",
                                                    at=NOW, comment=f"#{i}")
                               for i, e in enumerate(engines)))
    finally:
        for e in engines:
            await e.dispose()

    history = await handling.history("A")
    assert sorted(e.comment or "" for e in history) == ["#0", "#1", "#2", "#3"]


async def test_act_reads_the_stage_only_once_it_holds_the_row(
    database_url: str, engine: AsyncEngine, alerts: AlertStore
) -> None:
    """Another transaction holds the alert for writing; ``act`` waits, then sees its
    change.  Without the lock it would read ``pending`` and acknowledge a second time."""
    await alerts.save([make_alert()])
    other = create_async_engine(database_url)
    try:
        async with other.begin() as conn:
            if other.dialect.name == "sqlite":
                await conn.exec_driver_sql("BEGIN IMMEDIATE")
            await conn.execute(sa.select(alerts_table).where(alerts_table.c.id == "A")
                               .with_for_update())
            waiting = asyncio.ensure_future(
                HandlingStore(engine).act("A", "acknowledge", actor="late", at=NOW))
            await asyncio.sleep(0.5)
            assert not waiting.done()
            await conn.execute(sa.update(alerts_table).where(alerts_table.c.id == "A")
                               .values(stage="acknowledged", state="acknowledged"))
        with pytest.raises(WorkflowError) as caught:
            await waiting
    finally:
        await other.dispose()

    assert caught.value.code == "invalid_transition"
    assert await stage_of(engine, "A") == "acknowledged"


# --- system events and history ------------------------------------------------------------

def system(action: str, at: float, alert_id: str = "A") -> AuditEvent:
    return AuditEvent(alert_id=alert_id, at=at, actor="system", action=action,
                      data={"n": 1}, key=system_event_key(alert_id, action, at))


async def test_record_events_ignores_keys_already_stored(handling: HandlingStore) -> None:
    created, resolved = system("created", T0 + 10), system("resolved", T0 + 60)

    await handling.record_events([created, created])
    await handling.record_events([created, resolved])
    await handling.record_events([])

    assert await handling.history("A") == [created, resolved]


async def test_events_without_key_are_always_recorded(handling: HandlingStore) -> None:
    note = AuditEvent(alert_id="A", at=NOW, actor="op", action="comment", comment="再看")

    await handling.record_events([note, note])

    assert await handling.history("A") == [note, note]


async def test_history_is_ordered_by_time_then_insertion(
    alerts: AlertStore, handling: HandlingStore
) -> None:
    await alerts.save([make_alert()])
    _, acked = await handling.act("A", "acknowledge", actor="op", at=T0 + 30)
    late, created = system("escalated", T0 + 30), system("created", T0 + 10)

    await handling.record_events([late, created, system("created", T0 + 10, "B")])

    assert await handling.history("A") == [created, acked, late]


async def test_record_events_on_joins_the_callers_transaction(
    engine: AsyncEngine, handling: HandlingStore
) -> None:
    class Abort(Exception):
        pass

    async def write_then_fail() -> None:
        async with engine.begin() as conn:
            await handling.record_events_on(conn, [system("created", T0)])
            raise Abort

    with pytest.raises(Abort):
        await write_then_fail()
    async with engine.begin() as conn:
        await handling.record_events_on(conn, [system("resolved", T0 + 60)])

    assert [e.action for e in await handling.history("A")] == ["resolved"]
