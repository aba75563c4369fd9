"""Routes of declared production status (停产 periods): read, declare, withdraw.

``GET /api/v1/enterprises/{id}/declared`` lists the registry's declarations
(``source: registry``, read-only: they change with the registry file) and those made
through the API (``source: api``).  An enterprise declares its own stops, a regulator
those of its area's enterprises; only a regulator withdraws one, and a withdrawn period
stays listed with who withdrew it.  After each change the service hands the live stops
to the hidden-operation rule (:attr:`ApiContext.on_declared_changed`).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from alerting.timefmt import format_ts
from gateway.api.access import ApiError
from gateway.auth.principal import Principal
from gateway.ingest.timestamps import TimestampError, TimestampParser
from gateway.storage.declared_store import DeclaredPeriod, DeclaredStore, PeriodNotFound

if TYPE_CHECKING:
    from gateway.api.app import ApiContext

MAX_PERIOD_DAYS = 366


class DeclareRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"state": "stopped", "from": "2026-12-10T00:00:00+08:00",
         "to": "2026-12-20T00:00:00+08:00", "reason": "停产整顿"}]})

    state: Literal["stopped", "running"] = "stopped"
    from_: str | int = Field(alias="from", description="RFC 3339 with offset or epoch ms")
    to: str | int = Field(description="RFC 3339 with offset or epoch ms")
    reason: str = Field(min_length=1, max_length=500, description="e.g. 停产整顿, 春节停产")


class PeriodBody(BaseModel):
    id: str | None = Field(description="null for the registry's own declarations")
    source: Literal["registry", "api"]
    state: Literal["stopped", "running"]
    from_: str = Field(alias="from")
    to: str
    reason: str | None
    created_by: str | None = None
    created_at: str | None = None
    withdrawn_by: str | None = None
    withdrawn_at: str | None = None

    model_config = ConfigDict(populate_by_name=True)


class PeriodList(BaseModel):
    items: list[PeriodBody]


def declared_router(ctx: ApiContext, store: DeclaredStore, *,
                    on_changed: Callable[[], Awaitable[None]] | None = None,
                    clock: Callable[[], float] = time.time) -> APIRouter:
    router = APIRouter(tags=["registry"])
    access = ctx.access
    assert access is not None
    times = TimestampParser()

    @router.get("/api/v1/enterprises/{enterprise_id}/declared", response_model=PeriodList,
                summary="Declared production status periods of an enterprise")
    async def list_declared(enterprise_id: str,
                            principal: Principal = Depends(access.user)) -> Any:
        access.enterprise_or_404(principal, enterprise_id)
        spec = ctx.registry.enterprise(enterprise_id)
        items = [{"id": None, "source": "registry", "state": p.state,
                  "from": _iso(p.from_), "to": _iso(p.to), "reason": p.reason}
                 for p in spec.declared]
        items += [_period_json(p, spec.timezone)
                  for p in await store.list(enterprise_id=enterprise_id)]
        return {"items": items}

    @router.post("/api/v1/enterprises/{enterprise_id}/declared", response_model=PeriodBody,
                 status_code=201, summary="Declare a production status period",
                 responses={422: {"description": "invalid_period"}})
    async def declare(enterprise_id: str, body: DeclareRequest,
                      principal: Principal = Depends(access.writer)) -> Any:
        access.enterprise_or_404(principal, enterprise_id)
        try:
            start = times.parse(body.from_)
            end = times.parse(body.to)
        except TimestampError as exc:
            raise ApiError(422, "invalid_period", str(exc)) from None
        if not start < end:
            raise ApiError(422, "invalid_period", "a declared period must end after it "
                           "starts")
        if end - start > MAX_PERIOD_DAYS * 86_400:
            raise ApiError(422, "invalid_period", f"a declared period is at most "
                           f"{MAX_PERIOD_DAYS} days; declare a longer one in parts")
        if end <= clock():
            raise ApiError(422, "invalid_period", "a declared period must not be over "
                           "already: declarations are made ahead or while they last")
        period = await store.create(enterprise_id, body.state, start, end,
                                    body.reason.strip(), principal.actor, now=clock())
        if on_changed is not None:
            await on_changed()
        return _period_json(period, ctx.registry.enterprise(enterprise_id).timezone)

    @router.delete("/api/v1/enterprises/{enterprise_id}/declared/{period_id}",
                   response_model=PeriodBody, summary="Withdraw a declared period "
                   "(regulators)", responses={404: {"description": "period_not_found"}})
    async def withdraw(enterprise_id: str, period_id: str,
                       principal: Principal = Depends(access.regulator_writer)) -> Any:
        access.enterprise_or_404(principal, enterprise_id)
        found = await store.get(period_id)
        if found is None or found.enterprise_id != enterprise_id:
            raise ApiError(404, "period_not_found", f"no declared period {period_id!r}")
        try:
            period = await store.withdraw(period_id, principal.actor, now=clock())
        except PeriodNotFound as exc:
            raise ApiError(404, "period_not_found", str(exc)) from None
        if on_changed is not None:
            await on_changed()
        return _period_json(period, ctx.registry.enterprise(enterprise_id).timezone)

    return router


def _iso(value: datetime) -> str:
    return value.isoformat()


def _period_json(p: DeclaredPeriod, tz: str) -> dict[str, Any]:
    return {"id": p.id, "source": "api", "state": p.state, "from": format_ts(p.from_ts, tz),
            "to": format_ts(p.to_ts, tz), "reason": p.reason, "created_by": p.created_by,
            "created_at": format_ts(p.created_at, tz), "withdrawn_by": p.withdrawn_by,
            "withdrawn_at": None if p.withdrawn_at is None else format_ts(p.withdrawn_at, tz)}
