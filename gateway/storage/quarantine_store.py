"""Durable quarantine: every refused message with its reason, for integrators.

An enterprise connecting a device reads this (through the API) to learn why its data
does not arrive.  Rows are append-only; retention is an operator decision (a later
``riskwatch`` command), so nothing here deletes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.ingest.rejections import Reason, Rejection

metadata = sa.MetaData()

quarantine_table = sa.Table(
    "quarantine",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True,
              autoincrement=True),
    sa.Column("received_at_ms", sa.BigInteger, nullable=False),
    sa.Column("reason", sa.String(32), nullable=False),
    sa.Column("detail", sa.Text, nullable=False),
    sa.Column("topic", sa.String(512), nullable=False),
    sa.Column("enterprise_id", sa.String(64)),
    sa.Column("device_id", sa.String(64)),
    sa.Column("payload", sa.LargeBinary, nullable=False),
    sa.Index("ix_quarantine_enterprise_device", "enterprise_id", "device_id"),
    sa.Index("ix_quarantine_received", "received_at_ms"),
)


@dataclass(frozen=True)
class QuarantineQuery:
    enterprise_id: str | None = None
    enterprise_ids: tuple[str, ...] | None = None
    """Any of these (a regulator's area); rows of no known enterprise never match."""
    device_id: str | None = None
    reason: str | None = None
    limit: int = 100
    offset: int = 0


class QuarantineStore:
    """Append and read quarantine rows through the shared engine."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def create_schema(self) -> None:
        async with self._engine.begin() as conn:
            await conn.run_sync(metadata.create_all)

    async def save(self, rejections: Sequence[Rejection]) -> None:
        if not rejections:
            return
        rows = [
            {
                "received_at_ms": round(r.received_at * 1000),
                "reason": r.reason.value,
                "detail": r.detail,
                "topic": r.topic,
                "enterprise_id": r.enterprise_id,
                "device_id": r.device_id,
                "payload": r.payload,
            }
            for r in rejections
        ]
        async with self._engine.begin() as conn:
            await conn.execute(quarantine_table.insert(), rows)

    async def count(self, q: QuarantineQuery) -> int:
        """How many rows :meth:`query` pages through (``limit``/``offset`` ignored)."""
        stmt = sa.select(sa.func.count()).select_from(quarantine_table).where(*_filters(q))
        async with self._engine.connect() as conn:
            return int((await conn.execute(stmt)).scalar_one())

    async def query(self, q: QuarantineQuery) -> list[Rejection]:
        stmt = (sa.select(quarantine_table).where(*_filters(q))
                .order_by(quarantine_table.c.id.desc()).limit(q.limit).offset(q.offset))
        async with self._engine.connect() as conn:
            rows = (await conn.execute(stmt)).mappings().all()
        return [
            Rejection(
                reason=Reason(row["reason"]),
                detail=row["detail"],
                topic=row["topic"],
                payload=bytes(row["payload"]),
                received_at=row["received_at_ms"] / 1000.0,
                enterprise_id=row["enterprise_id"],
                device_id=row["device_id"],
            )
            for row in rows
        ]


def _filters(q: QuarantineQuery) -> list[sa.ColumnElement[bool]]:
    c = quarantine_table.c
    where: list[sa.ColumnElement[bool]] = []
    if q.enterprise_id is not None:
        where.append(c.enterprise_id == q.enterprise_id)
    if q.enterprise_ids is not None:
        where.append(c.enterprise_id.in_(q.enterprise_ids))
    if q.device_id is not None:
        where.append(c.device_id == q.device_id)
    if q.reason is not None:
        where.append(c.reason == q.reason)
    return where
