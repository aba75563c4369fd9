"""The ``point_minutes`` table: one-minute aggregates of every point, for charts.

Rows come from :class:`~gateway.storage.aggregates.MinuteAccumulator` in batches (one
statement per batch of rows, never per sample) and are *upserted*: a minute written
before and now seen again (late samples, a restart in the middle of a minute) merges
into the stored row: min of the mins, max of the maxes, count-weighted mean, the
later ``last``.  So writing the same data in two parts gives the row writing it at
once would have, and nothing late is lost.

Both databases speak ``INSERT ... ON CONFLICT DO UPDATE`` with ``excluded``; only the
statement constructor differs, and the merge uses ``CASE`` rather than ``LEAST`` or
two-argument ``min`` so one expression serves both.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from alerting.schema import point_minutes_table as table
from gateway.registry import RegistryIndex
from gateway.storage.aggregates import MinuteRows

CHUNK_ROWS = 2_000
"""Rows per statement: large enough to amortize round trips, small enough to stay far
below PostgreSQL's 32,767 bind parameters should a driver inline them."""

PRUNE_STEP_MS = 600_000
"""Minutes of history deleted per transaction by :meth:`PointMinuteStore.prune`: ten
minutes of a 10,000-point fleet is 100,000 rows."""


@dataclass(slots=True)
class MinuteSeries:
    """One point's stored minutes in a range, oldest first; times in epoch ms."""

    t: list[int] = field(default_factory=list)
    min: list[float] = field(default_factory=list)
    mean: list[float] = field(default_factory=list)
    max: list[float] = field(default_factory=list)
    last: list[float] = field(default_factory=list)
    last_at: list[int] = field(default_factory=list)
    count: list[int] = field(default_factory=list)


class PointMinuteStore:
    """Upsert and range-read ``point_minutes`` through the service's shared engine.

    The table is created by the alerting migrations (``0004_point_minutes``), which
    :meth:`alerting.AlertStore.create_schema` runs at start-up."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def save(self, rows: MinuteRows, index: RegistryIndex) -> int:
        """Merge ``rows`` (unique per point and minute) into the table; returns how many
        were written.  ``index`` names the dense point ids of the rows."""
        if not len(rows):
            return 0
        records = _records(rows, index)
        async with self._engine.begin() as conn:
            statement = _upsert(conn.dialect.name)
            for chunk in _chunks(records, CHUNK_ROWS):
                await conn.execute(statement, chunk)
        return len(records)

    async def prune(self, before_ms: int, *, step_ms: int = PRUNE_STEP_MS) -> int:
        """Delete the minutes starting before ``before_ms``; returns how many rows.

        Oldest first, ``step_ms`` of minutes per transaction, so a large backlog (the
        first prune of a database kept for months) never holds one long transaction
        and locks, nor blocks the writer's upserts for long.  Each step starts at the
        oldest row left (an index lookup), so gaps in the history cost nothing."""
        c = table.c
        deleted = 0
        while True:
            async with self._engine.begin() as conn:
                oldest = (await conn.execute(sa.select(sa.func.min(c.minute_start)))).scalar()
                if oldest is None or oldest >= before_ms:
                    return deleted
                upto = min(int(oldest) + step_ms, before_ms)
                result = await conn.execute(sa.delete(table).where(c.minute_start < upto))
                deleted += max(result.rowcount or 0, 0)

    async def query(self, enterprise_id: str, since_ms: int, until_ms: int, *,
                    device_id: str | None = None, point: str | None = None,
                    ) -> dict[tuple[str, str], MinuteSeries]:
        """Minutes starting in ``[since_ms, until_ms)`` by (device id, point name)."""
        c = table.c
        stmt = (sa.select(c.device_id, c.point, c.minute_start, c.min, c.mean, c.max,
                          c.last, c.last_at, c.count)
                .where(c.enterprise_id == enterprise_id, c.minute_start >= since_ms,
                       c.minute_start < until_ms)
                .order_by(c.device_id, c.point, c.minute_start))
        if device_id is not None:
            stmt = stmt.where(c.device_id == device_id)
        if point is not None:
            stmt = stmt.where(c.point == point)
        found: dict[tuple[str, str], MinuteSeries] = {}
        async with self._engine.connect() as conn:
            result = await conn.stream(stmt)
            async for row in result.mappings():
                key = (row["device_id"], row["point"])
                series = found.get(key)
                if series is None:
                    series = found[key] = MinuteSeries()
                series.t.append(int(row["minute_start"]))
                series.min.append(float(row["min"]))
                series.mean.append(float(row["mean"]))
                series.max.append(float(row["max"]))
                series.last.append(float(row["last"]))
                series.last_at.append(int(row["last_at"]))
                series.count.append(int(row["count"]))
        return found


def _records(rows: MinuteRows, index: RegistryIndex) -> list[dict[str, Any]]:
    """Rows as statement parameters, converted column-wise (``tolist`` is C speed)."""
    device = index.point_device[rows.point].tolist()
    enterprise = index.point_enterprise[rows.point].tolist()
    names = index.point_names
    device_ids = index.device_ids
    enterprise_ids = index.enterprise_ids
    columns = zip(rows.point.tolist(), device, enterprise,
                  (rows.minute * 1000).tolist(), rows.min.tolist(), rows.mean.tolist(),
                  rows.max.tolist(), rows.last.tolist(),
                  np.rint(rows.last_ts * 1000.0).astype(np.int64).tolist(),
                  rows.count.tolist(), strict=True)
    return [
        {"device_id": device_ids[d], "point": names[p], "minute_start": minute,
         "enterprise_id": enterprise_ids[e], "min": low, "mean": mean, "max": high,
         "last": last, "last_at": last_at, "count": count}
        for p, d, e, minute, low, mean, high, last, last_at, count in columns
    ]


def _upsert(dialect: str) -> Any:
    """``INSERT ... ON CONFLICT (key) DO UPDATE`` merging aggregates, for ``dialect``."""
    if dialect == "postgresql":
        insert: Any = postgresql.insert(table)
    elif dialect == "sqlite":
        insert = sqlite.insert(table)
    else:
        raise ValueError(f"unsupported database dialect {dialect!r}")
    new = insert.excluded
    old = table.c
    newer = new.last_at >= old.last_at
    return insert.on_conflict_do_update(
        index_elements=[old.device_id, old.point, old.minute_start],
        set_={
            "enterprise_id": new.enterprise_id,
            "min": sa.case((new.min < old.min, new.min), else_=old.min),
            "max": sa.case((new.max > old.max, new.max), else_=old.max),
            "mean": (old.mean * old.count + new.mean * new.count) / (old.count + new.count),
            "last": sa.case((newer, new.last), else_=old.last),
            "last_at": sa.case((newer, new.last_at), else_=old.last_at),
            "count": old.count + new.count,
        },
    )


def _chunks(items: list[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]
