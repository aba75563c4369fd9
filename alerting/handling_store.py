"""People's handling of alerts, stored: one action, one transaction, one audit row.

:func:`alerting.workflow.decide` says whether an action is allowed; this module makes
the answer hold under concurrent requests.  Two operators pressing "acknowledge" on the
same alert at the same moment must not both succeed: the second must see the first's
stage and be told ``invalid_transition``.  So :meth:`HandlingStore.act` reads the alert,
decides and writes the new stage and the audit event in one transaction that holds the
alert's row for writing from the read on:

- PostgreSQL: ``SELECT .. FOR UPDATE`` locks the row; a concurrent ``act`` waits at its
  own ``SELECT`` until the first commits and then reads the new stage (READ COMMITTED
  re-reads a row it waited for).
- SQLite: ``BEGIN IMMEDIATE`` takes the database's write lock before the read (the
  driver would otherwise begin only at the first write, after a stale read).  SQLite
  has one writer at a time, so the read-decide-write runs alone; readers are not
  blocked (WAL), and a concurrent ``act`` waits up to the busy timeout.

A guarded ``UPDATE .. WHERE stage = <stage read>`` would also be correct, but it turns a
lost race into a retry loop; a lock gives the loser the plain, final answer.

The pipeline's :meth:`AlertStore.save <alerting.store.AlertStore.save>` never writes the
handling columns (``stage``, ``assignee``, ``acknowledged_at``, ``closed_at``), so this
is their only writer.  System events (resolved, escalated, silenced, ...) are recorded
with :meth:`HandlingStore.record_events`, idempotently by their deterministic key.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from alerting.models import Alert
from alerting.schema import alert_events_table, alerts_table
from alerting.store import AlertStoreError
from alerting.store import _from_row as _alert_from_row
from alerting.timefmt import from_ms, to_ms
from alerting.workflow import AuditEvent, Stage, contract_state, decide

__all__ = ["AlertNotFound", "HandlingStore"]

_a = alerts_table
_e = alert_events_table


class AlertNotFound(LookupError):
    """No alert has this id; the API answers 404."""

    def __init__(self, alert_id: str) -> None:
        super().__init__(f"no alert with id {alert_id!r}")
        self.alert_id = alert_id


class HandlingStore:
    """Workflow actions and the audit trail, through a borrowed engine."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._dialect = engine.dialect.name
        if self._dialect not in ("sqlite", "postgresql"):
            raise AlertStoreError(f"unsupported database dialect {self._dialect!r} "
                                  "(SQLite and PostgreSQL are)")

    async def act(self, alert_id: str, action: str, *, actor: str, at: float,
                  comment: str | None = None, assignee: str | None = None,
                  data: Mapping[str, Any] | None = None) -> tuple[Alert, AuditEvent]:
        """Take ``action`` on the alert at wall time ``at`` (epoch s) as ``actor``.

        Returns the alert as now stored and the audit event written with it.  Raises
        :class:`AlertNotFound` for an unknown id and
        :class:`~alerting.workflow.WorkflowError` (unchanged, nothing written) when the
        workflow refuses the action.
        """
        async with self._engine.begin() as conn:
            if self._dialect == "sqlite":
                # Must be the transaction's first statement: see the module docstring.
                await conn.exec_driver_sql("BEGIN IMMEDIATE")
            row = (await conn.execute(
                sa.select(_a).where(_a.c.id == alert_id).with_for_update())).first()
            if row is None:
                raise AlertNotFound(alert_id)
            before = _alert_from_row(row._mapping)
            stage = cast(Stage, before.stage)
            change = decide(alert_id, stage, action, actor=actor, at=at, comment=comment,
                            assignee=assignee, current_assignee=before.assignee,
                            acknowledged_at=before.acknowledged_at, data=data)
            # ``decide`` stamps ``closed_at`` on whatever leaves the alert closed, a
            # comment on a closed alert too; the moment of closing must not move.
            closed_at = (before.closed_at if stage == "closed" and change.stage == "closed"
                         else change.closed_at)
            values = {
                "stage": change.stage,
                "assignee": change.assignee,
                "acknowledged_at": _optional_ms(change.acknowledged_at),
                "closed_at": _optional_ms(closed_at),
                "state": contract_state(change.stage, before.resolved_at is not None),
                "updated_at": max(row._mapping["updated_at"], to_ms(at)),
            }
            updated = (await conn.execute(
                sa.update(_a).where(_a.c.id == alert_id).values(values).returning(*_a.c)
            )).one()
            event_row = _event_row(change.event)
            await conn.execute(sa.insert(_e).values(event_row))
        return _alert_from_row(updated._mapping), _event_from_row(event_row)

    async def record_events(self, events: Sequence[AuditEvent]) -> None:
        """Insert system events in one transaction, skipping keys already stored."""
        if not events:
            return
        async with self._engine.begin() as conn:
            await self.record_events_on(conn, events)

    async def record_events_on(self, conn: AsyncConnection,
                               events: Sequence[AuditEvent]) -> None:
        """:meth:`record_events` inside the caller's transaction on ``conn``.

        The service writes the engine's events together with the alerts and outbox rows
        they belong to, so a crash leaves all of them or none.  Events with a ``key``
        are recorded once however often they are written (``ON CONFLICT DO NOTHING``);
        events without one (people's actions) are always inserted.
        """
        rows: list[dict[str, Any]] = []
        seen: set[str] = set()
        for event in events:
            if event.key is not None:
                if event.key in seen:
                    continue
                seen.add(event.key)
            rows.append(_event_row(event))
        if not rows:
            return
        insert = (sqlite.insert(_e) if self._dialect == "sqlite" else postgresql.insert(_e))
        await conn.execute(insert.on_conflict_do_nothing(index_elements=[_e.c.key]), rows)

    async def history(self, alert_id: str) -> list[AuditEvent]:
        """The alert's audit trail, oldest first (by time, then by insertion).

        Empty for an id nobody wrote events for; whether the alert exists is the
        alert store's question.
        """
        stmt = sa.select(_e).where(_e.c.alert_id == alert_id).order_by(_e.c.at, _e.c.id)
        async with self._engine.connect() as conn:
            return [_event_from_row(dict(row._mapping)) for row in await conn.execute(stmt)]


def _event_row(event: AuditEvent) -> dict[str, Any]:
    try:
        data = orjson.loads(orjson.dumps(dict(event.data),
                                         option=orjson.OPT_SERIALIZE_NUMPY))
    except TypeError as exc:
        raise ValueError(f"data of {event.action} event of alert {event.alert_id} "
                         f"is not JSON: {exc}") from exc
    return {
        "key": event.key,
        "alert_id": event.alert_id,
        "at": to_ms(event.at),
        "actor": event.actor,
        "action": event.action,
        "from_stage": event.from_stage,
        "to_stage": event.to_stage,
        "comment": event.comment,
        "data": data,
    }


def _event_from_row(row: Mapping[str, Any]) -> AuditEvent:
    """An :class:`AuditEvent` as stored: millisecond time, plain JSON data."""
    return AuditEvent(
        alert_id=row["alert_id"],
        at=from_ms(row["at"]),
        actor=row["actor"],
        action=row["action"],
        from_stage=row["from_stage"],
        to_stage=row["to_stage"],
        comment=row["comment"],
        data=dict(row["data"] or {}),
        key=row["key"],
    )


def _optional_ms(epoch_s: float | None) -> int | None:
    return None if epoch_s is None else to_ms(epoch_s)
