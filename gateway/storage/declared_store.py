"""Production status declared through the API (停产 periods), in the service's database.

The registry YAML holds the declarations known when it was written; enterprises and
regulators add new ones as they happen (an ordered shutdown, a holiday stop) through
``/api/v1/enterprises/{id}/declared``.  Both feed the hidden-operation rule: the
service hands the live ``stopped`` periods to :meth:`Pipeline.set_declared_stops` at
start and after every change.  A period is never deleted, only withdrawn, with who and
when.
"""

from __future__ import annotations

import builtins
import time
import uuid
from dataclasses import dataclass
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from alerting.schema import declared_periods_table as _t
from alerting.timefmt import to_ms

DeclaredState = Literal["stopped", "running"]


class PeriodNotFound(LookupError):
    pass


@dataclass(frozen=True, slots=True)
class DeclaredPeriod:
    id: str
    enterprise_id: str
    state: DeclaredState
    from_ts: float
    to_ts: float
    reason: str
    created_by: str
    created_at: float
    withdrawn_by: str | None = None
    withdrawn_at: float | None = None

    @property
    def withdrawn(self) -> bool:
        return self.withdrawn_at is not None


class DeclaredStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def create(self, enterprise_id: str, state: DeclaredState, from_ts: float,
                     to_ts: float, reason: str, created_by: str, *,
                     now: float | None = None) -> DeclaredPeriod:
        if not from_ts < to_ts:
            raise ValueError("a declared period must end after it starts")
        period = DeclaredPeriod(uuid.uuid4().hex, enterprise_id, state, from_ts, to_ts,
                                reason, created_by, time.time() if now is None else now)
        async with self._engine.begin() as conn:
            await conn.execute(_t.insert().values(
                id=period.id, enterprise_id=enterprise_id, state=state,
                from_ms=to_ms(from_ts), to_ms=to_ms(to_ts), reason=reason,
                created_by=created_by, created_at=to_ms(period.created_at)))
        return period

    async def list(self, *, enterprise_id: str | None = None,
                   include_withdrawn: bool = True) -> builtins.list[DeclaredPeriod]:
        """Periods by start, oldest first."""
        stmt = sa.select(_t).order_by(_t.c.from_ms, _t.c.id)
        if enterprise_id is not None:
            stmt = stmt.where(_t.c.enterprise_id == enterprise_id)
        if not include_withdrawn:
            stmt = stmt.where(_t.c.withdrawn_at.is_(None))
        async with self._engine.connect() as conn:
            return [_period(r._mapping) for r in await conn.execute(stmt)]

    async def get(self, period_id: str) -> DeclaredPeriod | None:
        async with self._engine.connect() as conn:
            row = (await conn.execute(sa.select(_t).where(_t.c.id == period_id))).first()
        return None if row is None else _period(row._mapping)

    async def withdraw(self, period_id: str, by: str, *, now: float | None = None
                       ) -> DeclaredPeriod:
        """Withdraw a period (a second withdrawal changes nothing)."""
        at = to_ms(time.time() if now is None else now)
        async with self._engine.begin() as conn:
            await conn.execute(_t.update().where(_t.c.id == period_id,
                                                 _t.c.withdrawn_at.is_(None))
                               .values(withdrawn_by=by, withdrawn_at=at))
        found = await self.get(period_id)
        if found is None:
            raise PeriodNotFound(f"no declared period {period_id!r}")
        return found

    async def stops(self) -> builtins.list[tuple[str, float, float, str]]:
        """The live ``stopped`` periods as the pipeline takes them."""
        return [(p.enterprise_id, p.from_ts, p.to_ts, p.reason)
                for p in await self.list(include_withdrawn=False) if p.state == "stopped"]


def _period(row: Any) -> DeclaredPeriod:
    return DeclaredPeriod(
        id=row["id"], enterprise_id=row["enterprise_id"], state=row["state"],
        from_ts=row["from_ms"] / 1000.0, to_ts=row["to_ms"] / 1000.0, reason=row["reason"],
        created_by=row["created_by"], created_at=row["created_at"] / 1000.0,
        withdrawn_by=row["withdrawn_by"],
        withdrawn_at=None if row["withdrawn_at"] is None else row["withdrawn_at"] / 1000.0)
