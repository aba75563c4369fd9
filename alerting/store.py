"""Durable alert store on SQLAlchemy 2 async: SQLite by default, PostgreSQL in production.

Alerts are written before anything is sent (DESIGN.md, outbox), keyed by their
deterministic id, so writing the same alert twice (a replay, a retry after a crash) is
an idempotent upsert.  Times are epoch milliseconds in ``BIGINT`` columns: integer
range predicates behave the same on both databases, unlike their timestamp types.
The region path is one ``|``-delimited string so a filter on any administrative level
(province, city, county, town) is a single ``LIKE``.

The tables are defined in :mod:`alerting.schema` and created and upgraded by the
migrations (:func:`alerting.migrate.migrate`); ``alerting_metadata`` and
``alerts_table`` are re-exported here for existing callers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from alerting.migrate import migrate
from alerting.models import ALERT_STATES, LEVEL_COLORS, OPEN_STATES, Alert, Subject
from alerting.schema import alerting_metadata, alerts_table
from alerting.timefmt import from_ms, to_ms

__all__ = ["AlertQuery", "AlertStore", "AlertStoreError", "alerting_metadata", "alerts_table"]

_REGION_SEP = "|"


class AlertStoreError(RuntimeError):
    """The store cannot work with this database (e.g. an unsupported dialect)."""


@dataclass(frozen=True)
class AlertQuery:
    """Filters of ``GET /api/v1/alerts`` (CONTRACT.md §4); ``None`` means any.

    ``region`` matches any level of the alert's region path (province to town code).
    ``since``/``until`` (epoch seconds) select alerts whose active interval
    ``[started_at, resolved_at or +inf)`` overlaps ``[since, until)``, i.e. everything
    that was going on at some moment of the range, including alerts still open.
    """

    enterprise_id: str | None = None
    region: str | None = None
    kind: str | None = None
    level: int | None = None
    state: str | None = None
    since: float | None = None
    until: float | None = None
    limit: int = 100
    offset: int = 0

    def __post_init__(self) -> None:
        if self.level is not None and self.level not in LEVEL_COLORS:
            raise ValueError(f"level filter must be 1..4, got {self.level!r}")
        if self.state is not None and self.state not in ALERT_STATES:
            raise ValueError(f"state filter must be one of {ALERT_STATES}, got {self.state!r}")
        if self.region is not None and (not self.region or _REGION_SEP in self.region):
            raise ValueError(f"region filter must be one non-empty code, got {self.region!r}")
        if self.limit < 1:
            raise ValueError(f"limit must be at least 1, got {self.limit}")
        if self.offset < 0:
            raise ValueError(f"offset must not be negative, got {self.offset}")


class AlertStore:
    """Reads and writes :class:`~alerting.models.Alert` rows through a borrowed engine.

    The engine belongs to the caller (it may be shared with other stores); use
    :meth:`connect` to have the store own one for the length of an ``async with``.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._dialect = engine.dialect.name
        if self._dialect not in ("sqlite", "postgresql"):
            raise AlertStoreError(f"unsupported database dialect {self._dialect!r} "
                                  "(SQLite and PostgreSQL are)")

    @classmethod
    @asynccontextmanager
    async def connect(cls, url: str, *, create_schema: bool = True) -> AsyncIterator[AlertStore]:
        """Open an engine for ``url``, yield a store on it, dispose the engine on exit."""
        engine = create_async_engine(url)
        try:
            store = cls(engine)
            if create_schema:
                await store.create_schema()
            yield store
        finally:
            await engine.dispose()

    async def create_schema(self) -> None:
        """Bring the alerting tables up to the newest migration (creating them if new).

        The name is from the ``create_all`` era; a database of that era is adopted and
        upgraded in place, see :func:`alerting.migrate.migrate`.
        """
        await migrate(self._engine)

    async def save(self, alerts: Sequence[Alert]) -> None:
        """Insert or update ``alerts`` by id, all in one transaction.

        The last write wins.  If the same id appears twice in ``alerts`` the later
        version is written, because one statement may not touch a row twice.
        ``ValueError`` (before any database access) means an alert can never be stored,
        so retrying is pointless; database errors are SQLAlchemy's and may be retried.
        """
        rows = list({alert.id: _to_row(alert) for alert in alerts}.values())
        if not rows:
            return
        async with self._engine.begin() as conn:
            await conn.execute(self._upsert(), rows)

    @staticmethod
    def unstorable_reason(alert: Alert) -> str | None:
        """Why :meth:`save` would refuse ``alert`` with ``ValueError``, or ``None``.

        Lets a writer set such an alert aside instead of retrying a batch forever.
        """
        try:
            _to_row(alert)
        except ValueError as exc:
            return str(exc)
        return None

    async def get(self, alert_id: str) -> Alert | None:
        """The alert with ``alert_id``, or ``None``."""
        async with self._engine.connect() as conn:
            row = (await conn.execute(
                sa.select(alerts_table).where(alerts_table.c.id == alert_id))).first()
        return None if row is None else _from_row(row._mapping)

    async def query(self, q: AlertQuery) -> list[Alert]:
        """Alerts matching ``q``, newest detected first, one page of ``q.limit``."""
        stmt = (sa.select(alerts_table).where(*_filters(q))
                .order_by(alerts_table.c.detected_at.desc(), alerts_table.c.id.desc())
                .limit(q.limit).offset(q.offset))
        return await self._fetch(stmt)

    async def count(self, q: AlertQuery) -> int:
        """How many alerts match ``q``, ignoring its ``limit`` and ``offset``."""
        stmt = sa.select(sa.func.count()).select_from(alerts_table).where(*_filters(q))
        async with self._engine.connect() as conn:
            return int((await conn.execute(stmt)).scalar_one())

    async def load_open(self) -> list[Alert]:
        """Firing and acknowledged alerts, earliest detected first, for a restart."""
        stmt = (sa.select(alerts_table).where(alerts_table.c.state.in_(OPEN_STATES))
                .order_by(alerts_table.c.detected_at, alerts_table.c.id))
        return await self._fetch(stmt)

    async def load_resolved_since(self, since: float) -> list[Alert]:
        """Resolved, not closed alerts that resolved at or after ``since`` (epoch s):
        after a restart they may still reopen, and their closing is still announced."""
        c = alerts_table.c
        stmt = (sa.select(alerts_table)
                .where(c.state == "resolved", c.resolved_at >= to_ms(since))
                .order_by(c.detected_at, c.id))
        return await self._fetch(stmt)

    async def _fetch(self, stmt: sa.Select[Any]) -> list[Alert]:
        async with self._engine.connect() as conn:
            result = await conn.execute(stmt)
            return [_from_row(row._mapping) for row in result]

    def _upsert(self) -> sa.Insert:
        """``INSERT .. ON CONFLICT (id) DO UPDATE``, atomic under concurrent writers.

        A new alert is inserted whole.  An existing one gets its condition side
        (:data:`_CONDITION_COLUMNS`) updated but keeps its handling columns
        (``stage``, ``assignee``, ``acknowledged_at``, ``closed_at``): people change
        those through the workflow, which writes them with their audit event, and a
        pipeline save carrying an older copy of the alert must not undo an operator's
        acknowledgement.
        """
        stmt = (sqlite.insert(alerts_table) if self._dialect == "sqlite"
                else postgresql.insert(alerts_table))
        updates: dict[str, Any] = {name: stmt.excluded[name] for name in _CONDITION_COLUMNS}
        # ``state`` joins both lives (workflow.contract_state): the stored stage with
        # the incoming condition, so an older copy cannot turn "acknowledged" back
        # into "firing" nor a closed alert into "resolved".
        stage = alerts_table.c.stage
        updates["state"] = sa.case(
            (stage == "closed", "closed"),
            (stmt.excluded.resolved_at.is_not(None), "resolved"),
            (stage == "pending", "firing"),
            else_="acknowledged")
        return stmt.on_conflict_do_update(index_elements=[alerts_table.c.id], set_=updates)


def _filters(q: AlertQuery) -> list[sa.ColumnElement[bool]]:
    c = alerts_table.c
    where: list[sa.ColumnElement[bool]] = []
    if q.enterprise_id is not None:
        where.append(c.enterprise_id == q.enterprise_id)
    if q.region is not None:
        where.append(c.region_path.contains(f"{_REGION_SEP}{q.region}{_REGION_SEP}",
                                            autoescape=True))
    if q.kind is not None:
        where.append(c.kind == q.kind)
    if q.level is not None:
        where.append(c.level == q.level)
    if q.state is not None:
        where.append(c.state == q.state)
    if q.until is not None:
        where.append(c.started_at < to_ms(q.until))
    if q.since is not None:
        where.append(sa.or_(c.resolved_at.is_(None), c.resolved_at > to_ms(q.since)))
    return where


def _region_path(region: Sequence[str]) -> str:
    """``("370000", "370800")`` -> ``"|370000|370800|"``."""
    for code in region:
        if not code or _REGION_SEP in code:
            raise ValueError(f"region code {code!r} is empty or contains {_REGION_SEP!r}")
    return _REGION_SEP + _REGION_SEP.join(region) + _REGION_SEP if region else ""


def _to_row(alert: Alert) -> dict[str, Any]:
    s = alert.subject
    return {
        "id": alert.id,
        "fingerprint": alert.fingerprint,
        "kind": alert.kind,
        "level": alert.level,
        "state": alert.state,
        "enterprise_id": s.enterprise_id,
        "enterprise_name": s.enterprise_name,
        "industry": s.industry,
        "region_path": _region_path(s.region),
        "timezone": s.timezone,
        "device_id": s.device_id,
        "device_kind": s.device_kind,
        "point": s.point,
        "point_kind": s.point_kind,
        "unit": s.unit,
        "started_at": to_ms(alert.started_at),
        "detected_at": to_ms(alert.detected_at),
        "resolved_at": None if alert.resolved_at is None else to_ms(alert.resolved_at),
        "updated_at": to_ms(alert.updated_at),
        "title": alert.title,
        "evidence": _json_safe(alert),
        "flapping": alert.flapping,
        "reopen_count": alert.reopen_count,
        "stage": alert.stage,
        "assignee": alert.assignee,
        "acknowledged_at": _optional_ms(alert.acknowledged_at),
        "closed_at": _optional_ms(alert.closed_at),
    }


_CONDITION_COLUMNS = (
    "fingerprint", "kind", "level", "enterprise_id", "enterprise_name",
    "industry", "region_path", "timezone", "device_id", "device_kind", "point",
    "point_kind", "unit", "started_at", "detected_at", "resolved_at", "updated_at",
    "title", "evidence", "flapping", "reopen_count",
)
"""What :meth:`AlertStore.save` updates on an existing alert: everything the detectors
and :class:`~alerting.manager.AlertManager` decide, none of the handling workflow
(``state``, which joins the two, is computed in the statement)."""


def _optional_ms(epoch_s: float | None) -> int | None:
    return None if epoch_s is None else to_ms(epoch_s)


def _optional_s(epoch_ms: int | None) -> float | None:
    return None if epoch_ms is None else from_ms(epoch_ms)


def _json_safe(alert: Alert) -> Any:
    """Evidence as plain JSON values, the same on every database.

    Goes through orjson, as the API does: NaN and infinities become ``null`` (JSON has
    none, and PostgreSQL would reject the row that ``json.dumps`` writes), tuples become
    lists and numpy scalars numbers, so what is read back equals what clients see.
    """
    try:
        return orjson.loads(orjson.dumps(alert.evidence, option=orjson.OPT_SERIALIZE_NUMPY))
    except TypeError as exc:
        raise ValueError(f"evidence of alert {alert.id} is not JSON: {exc}") from exc


def _from_row(row: sa.RowMapping) -> Alert:
    subject = Subject(
        enterprise_id=row["enterprise_id"],
        enterprise_name=row["enterprise_name"],
        industry=row["industry"],
        region=tuple(code for code in row["region_path"].split(_REGION_SEP) if code),
        timezone=row["timezone"],
        device_id=row["device_id"],
        device_kind=row["device_kind"],
        point=row["point"],
        point_kind=row["point_kind"],
        unit=row["unit"],
    )
    resolved = row["resolved_at"]
    return Alert(
        id=row["id"],
        fingerprint=row["fingerprint"],
        kind=row["kind"],
        subject=subject,
        level=int(row["level"]),
        state=row["state"],
        started_at=from_ms(row["started_at"]),
        detected_at=from_ms(row["detected_at"]),
        resolved_at=None if resolved is None else from_ms(resolved),
        updated_at=from_ms(row["updated_at"]),
        title=row["title"],
        evidence=dict(row["evidence"] or {}),
        stage=row["stage"],
        assignee=row["assignee"],
        flapping=bool(row["flapping"]),
        reopen_count=int(row["reopen_count"]),
        acknowledged_at=_optional_s(row["acknowledged_at"]),
        closed_at=_optional_s(row["closed_at"]),
    )
