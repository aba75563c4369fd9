"""Alembic migrations of the alerting tables, on a real SQLite file and real PostgreSQL.

Each test starts from an empty database (the PostgreSQL one is shared by the module, so
the fixture drops whatever an earlier test left).  The strongest check is
``test_migrated_database_matches_the_models``: Alembic's autogenerate comparison finds
no difference between :mod:`alerting.schema` and what the migrations built, so the
models and the migrations cannot drift apart unnoticed.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from alerting.migrate import (
    BASELINE,
    VERSION_TABLE,
    MigrationError,
    alembic_config,
    current_revision,
    downgrade,
    migrate,
)
from alerting.migrations.__main__ import main as migrations_cli
from alerting.models import Alert, Subject, fingerprint
from alerting.schema import alerting_metadata, alerts_table
from alerting.store import AlertStore, _to_row
from tests.helpers import drop_everything

REPO = Path(__file__).resolve().parents[2]
T0 = 1_795_478_400.0  # 2026-11-24T08:00:00+08:00
HEAD = ScriptDirectory.from_config(alembic_config()).get_current_head()
TABLES = {"alerts", "alert_events", "notifications", "silences", "users", "api_sessions",
          "declared_periods",
          "point_minutes"}

# The alerts table exactly as ``alerting_metadata.create_all`` made it before
# migrations existed: what demo databases in the field contain.
LEGACY = sa.MetaData()
LEGACY_ALERTS = sa.Table(
    "alerts", LEGACY,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("fingerprint", sa.String(32), nullable=False, index=True),
    sa.Column("kind", sa.String(64), nullable=False),
    sa.Column("level", sa.SmallInteger, nullable=False),
    sa.Column("state", sa.String(16), nullable=False, index=True),
    sa.Column("enterprise_id", sa.String(64), nullable=False, index=True),
    sa.Column("enterprise_name", sa.Text, nullable=False),
    sa.Column("industry", sa.String(32), nullable=False),
    sa.Column("region_path", sa.String(255), nullable=False),
    sa.Column("timezone", sa.String(64), nullable=False),
    sa.Column("device_id", sa.String(64)),
    sa.Column("device_kind", sa.String(64)),
    sa.Column("point", sa.String(64)),
    sa.Column("point_kind", sa.String(64)),
    sa.Column("unit", sa.String(32)),
    sa.Column("started_at", sa.BigInteger, nullable=False),
    sa.Column("detected_at", sa.BigInteger, nullable=False, index=True),
    sa.Column("resolved_at", sa.BigInteger),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("evidence", sa.JSON, nullable=False),
)


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(database_url)
    await drop_everything(engine)
    try:
        yield engine
    finally:
        await engine.dispose()


async def table_names(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as conn:
        return set(await conn.run_sync(lambda c: sa.inspect(c).get_table_names()))


async def schema_differences(engine: AsyncEngine, metadata: sa.MetaData) -> list[Any]:
    def compare(conn: sa.Connection) -> list[Any]:
        context = MigrationContext.configure(conn, opts={
            "version_table": VERSION_TABLE, "compare_type": True,
            "compare_server_default": True})
        return list(compare_metadata(context, metadata))

    async with engine.connect() as conn:
        return await conn.run_sync(compare)


def make_alert(alert_id: str = "A1", title: str = "【黄色预警】压差超上限") -> Alert:
    who = Subject(enterprise_id="E1", enterprise_name="某某金属制品有限公司", industry="dust",
                  region=("370000", "370800", "370829", "370829101"),
                  timezone="Asia/Shanghai", device_id="DC1", device_kind="dust_collector",
                  point="dp", point_kind="differential_pressure", unit="Pa")
    return Alert(id=alert_id, fingerprint=fingerprint("threshold", "E1", "DC1", "dp"),
                 kind="threshold", subject=who, level=3, state="firing", started_at=T0,
                 detected_at=T0 + 10, resolved_at=None, updated_at=T0 + 10, title=title,
                 evidence={"rule": "threshold", "value": 1650.5, "limits": {"hi": 1500}})


def legacy_row(alert: Alert) -> dict[str, Any]:
    """``alert`` as the alerts table of the ``create_all`` era held it."""
    row = {name: value for name, value in _to_row(alert).items() if name in LEGACY_ALERTS.c}
    assert set(row) == set(LEGACY_ALERTS.c.keys())
    return row


# --- upgrade --------------------------------------------------------------------------------

async def test_fresh_database_is_upgraded_to_head_with_every_table(engine: AsyncEngine) -> None:
    await migrate(engine)

    assert await table_names(engine) == TABLES | {VERSION_TABLE}
    assert await current_revision(engine) == HEAD


async def test_migrated_database_matches_the_models(engine: AsyncEngine) -> None:
    await migrate(engine)

    assert await schema_differences(engine, alerting_metadata) == []


async def test_first_revision_is_exactly_the_create_all_era_table(engine: AsyncEngine) -> None:
    await migrate(engine, BASELINE)

    assert await table_names(engine) == {"alerts", VERSION_TABLE}
    assert await schema_differences(engine, LEGACY) == []


async def test_migrating_again_changes_nothing(engine: AsyncEngine) -> None:
    await migrate(engine)
    await AlertStore(engine).save([make_alert()])

    await migrate(engine)
    await AlertStore(engine).create_schema()

    assert await current_revision(engine) == HEAD
    assert await AlertStore(engine).get("A1") == make_alert()


async def test_create_all_era_database_is_adopted_and_keeps_its_rows(
        engine: AsyncEngine) -> None:
    async with engine.begin() as conn:  # what a release before migrations wrote
        await conn.run_sync(LEGACY.create_all)
        await conn.execute(sa.insert(LEGACY_ALERTS), [
            legacy_row(make_alert("A1")), legacy_row(make_alert("A2"))])
    store = AlertStore(engine)

    await store.create_schema()

    assert await current_revision(engine) == HEAD
    assert await schema_differences(engine, alerting_metadata) == []
    assert await store.get("A1") == make_alert("A1")
    async with engine.connect() as conn:
        rows = (await conn.execute(
            sa.select(alerts_table.c.id, alerts_table.c.stage, alerts_table.c.flapping,
                      alerts_table.c.reopen_count, alerts_table.c.assignee)
            .order_by(alerts_table.c.id))).all()
    assert [tuple(row) for row in rows] == [("A1", "pending", False, 0, None),
                                            ("A2", "pending", False, 0, None)]


async def test_tables_of_unknown_origin_are_refused(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:  # head-era tables, but no version recorded
        await conn.run_sync(alerting_metadata.create_all)

    with pytest.raises(MigrationError, match="not made by migrations"):
        await migrate(engine)


async def test_a_database_from_a_newer_release_is_refused_with_the_reason(
        engine: AsyncEngine) -> None:
    await migrate(engine)
    async with engine.begin() as conn:
        await conn.execute(sa.text(f"UPDATE {VERSION_TABLE} SET version_num = '0009_future'"))

    with pytest.raises(MigrationError, match=r"'0009_future'.*newer riskwatch"):
        await migrate(engine)


async def test_two_processes_migrating_at_once_both_succeed(
        engine: AsyncEngine, database_url: str) -> None:
    command = [sys.executable, "-m", "alerting.migrations", "--url", database_url, "upgrade"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    processes = [await asyncio.create_subprocess_exec(
        *command, cwd=REPO, env=env, stderr=asyncio.subprocess.PIPE) for _ in range(2)]

    outputs = await asyncio.gather(*(process.communicate() for process in processes))

    for process, (_, stderr) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, stderr.decode()
    ran = [stderr.decode().count("Running upgrade") for _, stderr in outputs]
    revisions = len(list((REPO / "alerting" / "migrations" / "versions").glob("0*.py")))
    assert sorted(ran) == [0, revisions]  # one did the work, the other found it done
    assert await current_revision(engine) == HEAD
    assert await schema_differences(engine, alerting_metadata) == []


async def test_concurrent_calls_in_one_process_are_serialised(engine: AsyncEngine) -> None:
    # Alembic keeps its running context in module globals: only the database lock
    # keeps two migrations of one process from interleaving their steps.
    await asyncio.gather(migrate(engine), migrate(engine), AlertStore(engine).create_schema())

    assert await current_revision(engine) == HEAD


async def test_a_failing_migration_leaves_the_schema_as_it_was(engine: AsyncEngine) -> None:
    await migrate(engine, BASELINE)
    async with engine.begin() as conn:  # makes 0002's CREATE TABLE notifications fail
        await conn.execute(sa.text("CREATE TABLE notifications (x INTEGER)"))

    with pytest.raises(sa.exc.DatabaseError):
        await migrate(engine)

    assert await current_revision(engine) == BASELINE
    assert await table_names(engine) == {"alerts", "notifications", VERSION_TABLE}
    async with engine.connect() as conn:
        columns = await conn.run_sync(lambda c: sa.inspect(c).get_columns("alerts"))
    assert "stage" not in {column["name"] for column in columns}


# --- downgrade ------------------------------------------------------------------------------

async def test_downgrade_to_base_drops_every_table_and_upgrade_rebuilds(
        engine: AsyncEngine) -> None:
    await migrate(engine)

    await downgrade(engine, "base")

    assert await table_names(engine) == {VERSION_TABLE}
    assert await current_revision(engine) is None
    await migrate(engine)
    assert await schema_differences(engine, alerting_metadata) == []


async def test_downgrade_to_the_first_revision_keeps_the_alerts(engine: AsyncEngine) -> None:
    await migrate(engine)
    await AlertStore(engine).save([make_alert()])

    await downgrade(engine, BASELINE)

    assert await table_names(engine) == {"alerts", VERSION_TABLE}
    assert await schema_differences(engine, LEGACY) == []
    async with engine.connect() as conn:
        rows = (await conn.execute(sa.select(LEGACY_ALERTS.c.id, LEGACY_ALERTS.c.title))).all()
    assert [tuple(row) for row in rows] == [("A1", make_alert().title)]


# --- the store and the new columns ----------------------------------------------------------

async def test_the_new_alert_fields_round_trip(engine: AsyncEngine) -> None:
    store = AlertStore(engine)
    await store.create_schema()
    alert = replace(make_alert(), stage="dispatched", assignee="张三", flapping=True,
                    reopen_count=2, acknowledged_at=T0 + 60.5, closed_at=None)

    await store.save([alert])

    assert await store.get(alert.id) == alert


async def test_saving_an_alert_again_updates_its_condition_but_not_its_handling(
        engine: AsyncEngine) -> None:
    store = AlertStore(engine)
    await store.create_schema()
    await store.save([make_alert()])
    async with engine.begin() as conn:  # an operator acknowledges (the workflow's write)
        await conn.execute(sa.update(alerts_table).values(
            stage="acknowledged", assignee="duty-officer", acknowledged_at=1))

    # the pipeline saves its own, older copy with a changed condition
    await store.save([replace(make_alert(title="【黄色预警】压差仍超上限"), flapping=True,
                              reopen_count=1)])

    stored = await store.get("A1")
    assert stored is not None
    assert (stored.title, stored.flapping, stored.reopen_count) == (
        "【黄色预警】压差仍超上限", True, 1)
    assert (stored.stage, stored.assignee, stored.acknowledged_at) == (
        "acknowledged", "duty-officer", 0.001)


async def test_system_events_are_unique_by_key_and_operator_events_are_not(
        engine: AsyncEngine) -> None:
    await migrate(engine)
    events = sa.table("alert_events", sa.column("key"), sa.column("alert_id"),
                      sa.column("at"), sa.column("actor"), sa.column("action"),
                      sa.column("data", sa.JSON))
    row = {"alert_id": "A1", "at": 1, "actor": "system", "action": "escalated", "data": {}}

    async with engine.begin() as conn:
        await conn.execute(sa.insert(events), [{**row, "key": None}, {**row, "key": None},
                                               {**row, "key": "k1"}])
    with pytest.raises(sa.exc.IntegrityError):
        async with engine.begin() as conn:
            await conn.execute(sa.insert(events), [{**row, "key": "k1"}])

    async with engine.connect() as conn:
        ids = (await conn.execute(sa.text("SELECT id FROM alert_events ORDER BY id"))).all()
    assert [i for (i,) in ids] == [1, 2, 3]  # autoincrementing on both databases


# --- the command line -----------------------------------------------------------------------

def test_command_line_upgrades_reports_and_downgrades(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"

    migrations_cli(["--url", url, "upgrade"])
    migrations_cli(["--url", url, "current"])
    migrations_cli(["--url", url, "downgrade", BASELINE])
    migrations_cli(["--url", url, "current"])

    assert capsys.readouterr().out.split() == [HEAD, BASELINE]
