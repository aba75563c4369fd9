"""The HTTP API (FastAPI): alerts, enterprises, quarantine, health, metrics, a page.

Routes read from the stores and from the live pipeline through :class:`ApiContext`,
which the service builds at start-up; nothing is global, so a test can mount the app
on any context.  Every route but health, metrics and the page's static files declares
who may call it through :class:`~gateway.api.access.Access` (users with roles scoped
by region or enterprise, :mod:`gateway.auth`), and lists only what the caller's scope
holds.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from typing import Annotated, Any, Literal

import sqlalchemy as sa
from fastapi import Depends, FastAPI, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.exceptions import HTTPException as StarletteHTTPException

from alerting import Alert, AlertQuery, AlertStore, HandlingStore, Outbox, SilenceStore
from gateway.api.access import Access, ApiError
from gateway.api.auth_routes import auth_router
from gateway.api.declared import declared_router
from gateway.api.handling import AlertBody, handling_router
from gateway.api.live import AlertHub, live_router
from gateway.api.notifications import notifications_router
from gateway.api.schemas import (
    AlertList,
    EnterpriseList,
    HealthBody,
    QuarantineList,
    auth_errors,
)
from gateway.api.series import series_router
from gateway.auth.principal import Principal
from gateway.auth.users import UserStore
from gateway.ingest.mqtt_source import MqttSource
from gateway.ingest.rejections import Reason, rejection_to_json
from gateway.ingest.timestamps import TimestampError, TimestampParser
from gateway.metrics import ServiceMetrics
from gateway.pipeline import Pipeline
from gateway.registry import Registry
from gateway.registry.models import EnterpriseSpec
from gateway.storage.declared_store import DeclaredStore
from gateway.storage.history import PointHistory
from gateway.storage.quarantine_store import QuarantineQuery, QuarantineStore

AlertState = Literal["firing", "acknowledged", "resolved", "closed"]


@dataclass
class ApiContext:
    registry: Registry
    engine: AsyncEngine
    alerts: AlertStore
    quarantine: QuarantineStore
    pipeline: Pipeline
    metrics: ServiceMetrics
    source: MqttSource | None = None
    started_at: float = field(default_factory=time.time)
    handling: HandlingStore | None = None
    """Workflow actions and audit trail; built on ``engine`` when not given."""
    silences: SilenceStore | None = None
    """Built on ``engine`` when not given."""
    on_handled: Callable[[Alert], Awaitable[None]] | None = None
    """Called with the updated alert after each workflow action, so the service can
    mirror its stage into the in-memory alert manager (and stop escalating)."""
    on_silences_changed: Callable[[], Awaitable[None]] | None = None
    """Called after a silence is created or expired, so the service reloads them."""
    outbox: Outbox | None = None
    """The notification outbox; built on ``engine`` when not given."""
    on_outbox_changed: Callable[[], None] | None = None
    """Called after a notification is put back to pending by hand; the service sets it
    to ``dispatcher.notify`` so the retry goes out at once, not at the next poll."""
    access: Access | None = None
    """Who may call what; built on ``engine`` (users table, no anonymous access) when
    not given."""
    hub: AlertHub | None = None
    """Live push of alert changes; the service publishes into it."""
    secure_cookie: bool = False
    """Mark the session cookie ``Secure`` (when served over HTTPS by a proxy)."""
    history: PointHistory | None = None
    """Minutes still open and raw windows of every point, for the history route."""
    declared: DeclaredStore | None = None
    """Production status declared through the API; built on ``engine`` when not given."""
    on_declared_changed: Callable[[], Awaitable[None]] | None = None
    """Called after a period is declared or withdrawn, so the service hands the live
    stops to the hidden-operation rule."""

    def __post_init__(self) -> None:
        if self.access is None:
            self.access = Access(UserStore(self.engine), self.registry)
        if self.hub is None:
            self.hub = AlertHub()
        if self.declared is None:
            self.declared = DeclaredStore(self.engine)
        if self.handling is None:
            self.handling = HandlingStore(self.engine)
        if self.silences is None:
            self.silences = SilenceStore(self.engine)
        if self.outbox is None:
            self.outbox = Outbox(self.engine)


def create_app(ctx: ApiContext) -> FastAPI:
    app = FastAPI(
        title="riskwatch",
        version="0.1.0",
        summary="Risk monitoring of dust-explosion and metallurgy enterprises",
    )
    assert ctx.access is not None
    assert ctx.hub is not None
    access = ctx.access
    parse_time = _TimeParam()

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return exc.response()

    # Every error carries a stable ``error`` code; FastAPI's own 422 keeps its list of
    # problems under ``detail`` (clients already read it there), its 404/405 their text.
    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"error": "invalid_request",
                             "detail": jsonable_encoder(exc.errors())}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code,
                                                                   f"http_{exc.status_code}")
        return JSONResponse({"error": code, "detail": exc.detail},
                            status_code=exc.status_code, headers=exc.headers)

    app.include_router(auth_router(access, secure_cookie=ctx.secure_cookie),
                       responses=auth_errors())
    # Every router's routes need a login: document the refusals once, here.
    app.include_router(live_router(ctx.hub, access), responses=auth_errors())
    app.include_router(handling_router(ctx), responses=auth_errors())
    app.include_router(notifications_router(ctx), responses=auth_errors())
    app.include_router(series_router(ctx, access=access, history=ctx.history),
                       responses=auth_errors(404))

    async def declared_changed() -> None:
        if ctx.on_declared_changed is not None:
            await ctx.on_declared_changed()

    assert ctx.declared is not None
    declared = ctx.declared
    app.include_router(declared_router(ctx, declared, on_changed=declared_changed),
                       responses=auth_errors(404))

    @app.get("/api/v1/alerts", tags=["alerts"], response_model=AlertList,
             responses=auth_errors())
    async def list_alerts(
        principal: Principal = Depends(access.user),
        enterprise: str | None = None,
        region: Annotated[str | None, Query(pattern=r"^\d{6}(\d{3})?$")] = None,
        kind: str | None = None,
        level: Annotated[int | None, Query(ge=1, le=4)] = None,
        state: AlertState | None = None,
        since: Annotated[str | None, Query(description="RFC 3339 or epoch ms")] = None,
        until: Annotated[str | None, Query(description="RFC 3339 or epoch ms")] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> dict[str, Any]:
        """Alerts newest first; ``since``/``until`` select alerts active in that range.

        Only alerts of the caller's area: a town user asking for its county gets its
        town's; asking for another area is 403 ``forbidden``."""
        region = access.region_filter(principal, region)
        if enterprise is not None and not access.sees_enterprise(principal, enterprise):
            raise ApiError(403, "forbidden", f"enterprise {enterprise} is outside your area")
        try:
            enterprise = principal.narrow_enterprise(enterprise)
        except PermissionError as exc:
            raise ApiError(403, "forbidden", str(exc)) from None
        query = AlertQuery(
            enterprise_id=enterprise, region=region, kind=kind, level=level, state=state,
            since=parse_time("since", since), until=parse_time("until", until),
            limit=limit, offset=offset,
        )
        items = await ctx.alerts.query(query)
        total = await ctx.alerts.count(query)
        return {"items": [a.to_json() for a in items], "total": total,
                "limit": limit, "offset": offset}

    @app.get("/api/v1/alerts/{alert_id}", tags=["alerts"], response_model=AlertBody,
             responses=auth_errors(404))
    async def get_alert(alert_id: str,
                        principal: Principal = Depends(access.user)) -> dict[str, Any]:
        alert = access.alert_or_404(principal, await ctx.alerts.get(alert_id), alert_id)
        return alert.to_json()

    @app.get("/api/v1/enterprises", tags=["registry"], response_model=EnterpriseList,
             responses=auth_errors())
    async def list_enterprises(
        principal: Principal = Depends(access.user),
        region: str | None = None,
        limit: Annotated[int, Query(ge=1, le=5000)] = 1000,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> dict[str, Any]:
        """Enterprises of the caller's area, in registry order, with their devices'
        liveness, open alert counts, declared periods and the meters' plant state."""
        if region is not None:
            access.region_filter(principal, region)  # 403 outside the area
        by_api: dict[str, list[dict[str, Any]]] = {}
        for p in await declared.list(include_withdrawn=False):
            by_api.setdefault(p.enterprise_id, []).append(
                {"state": p.state, "from": _iso(p.from_ts), "to": _iso(p.to_ts),
                 "reason": p.reason, "source": "api", "id": p.id})
        visible = [e for e in ctx.registry.spec.enterprises
                   if principal.sees(e.id, tuple(e.region))
                   and (region is None or region in e.region)]
        items = _enterprises(ctx, visible[offset:offset + limit])
        for e in items:
            e["declared"] += by_api.get(e["id"], [])
        return {"items": items, "total": len(visible), "limit": limit, "offset": offset}

    @app.get("/api/v1/quarantine", tags=["ingest"], response_model=QuarantineList,
             responses=auth_errors())
    async def list_quarantine(
        principal: Principal = Depends(access.user),
        enterprise: str | None = None,
        device: str | None = None,
        reason: Reason | None = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> dict[str, Any]:
        """Refused messages, newest first, with the reason and the payload sent.

        An enterprise sees its own; a regulator its area's; messages that name no
        registered enterprise only an administrator."""
        scoped = access.enterprise_filter(principal, enterprise)
        query = QuarantineQuery(
            enterprise_id=scoped if isinstance(scoped, str) else None,
            enterprise_ids=scoped if isinstance(scoped, tuple) else None, device_id=device,
            reason=reason.value if reason else None, limit=limit, offset=offset,
        )
        rows = await ctx.quarantine.query(query)
        return {"items": [_quarantine_json(r) for r in rows],
                "total": await ctx.quarantine.count(query), "limit": limit, "offset": offset}

    @app.get("/api/v1/health", tags=["operations"], response_model=HealthBody,
             responses={503: {"model": HealthBody, "description": "degraded"}})
    async def health() -> JSONResponse:
        body = await _health(ctx)
        return JSONResponse(body, status_code=200 if body["status"] == "ok" else 503)

    @app.get("/metrics", tags=["operations"], response_class=Response)
    async def metrics() -> Response:
        ctx.metrics.open_alerts.set(len(ctx.pipeline.alerts.open_alerts()))
        return Response(ctx.metrics.render(), media_type="text/plain; version=0.0.4")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index() -> HTMLResponse:
        page = resources.files("gateway").joinpath("static/index.html").read_text("utf-8")
        return HTMLResponse(page)

    static = resources.files("gateway").joinpath("static")
    app.mount("/static", StaticFiles(directory=str(static)), name="static")

    return app


class _TimeParam:
    """Query times in the contract's formats: RFC 3339 with offset or epoch ms."""

    def __init__(self) -> None:
        self._parser = TimestampParser()

    def __call__(self, name: str, raw: str | None) -> float | None:
        if raw is None:
            return None
        value: object = int(raw) if raw.lstrip("-").isdigit() else raw
        try:
            return self._parser.parse(value)
        except TimestampError as exc:
            raise ApiError(422, "invalid_time", f"{name}: {exc}") from None


def _enterprises(ctx: ApiContext, enterprises: list[EnterpriseSpec]) -> list[dict[str, Any]]:
    index = ctx.registry.index
    plant = _plant_states(ctx)
    last_seen = ctx.pipeline.device_last_seen()
    silent = ctx.pipeline.silence.silent
    statuses = ctx.pipeline.stats.last_status
    open_by_enterprise: dict[str, int] = {}
    for alert in ctx.pipeline.alerts.open_alerts():
        key = alert.subject.enterprise_id
        open_by_enterprise[key] = open_by_enterprise.get(key, 0) + 1
    out = []
    for enterprise in enterprises:
        devices = []
        for device in enterprise.devices:
            number = index.device_index[device.id]
            seen = float(last_seen[number])
            status = statuses.get(number)
            devices.append({
                "id": device.id,
                "kind": device.kind,
                "role": device.role,
                "expected_interval_s": device.expected_interval_s,
                "points": list(device.points),
                "last_seen": _iso(seen) if math.isfinite(seen) else None,
                "silent": bool(silent[number]),
                "status": None if status is None else {
                    "online": status.online, "ts": _iso(status.ts), "reason": status.reason,
                },
            })
        out.append({
            "id": enterprise.id,
            "name": enterprise.name,
            "industry": enterprise.industry,
            "region": enterprise.region,
            "timezone": enterprise.timezone,
            "declared": [
                {"state": p.state, "from": p.from_.isoformat(), "to": p.to.isoformat(),
                 "reason": p.reason, "source": "registry"}
                for p in enterprise.declared
            ],
            "plant_state": plant.get(enterprise.id),
            "supervisors": enterprise.supervisors,
            "open_alerts": open_by_enterprise.get(enterprise.id, 0),
            "devices": devices,
        })
    return out


PLANT_STATES = ("off", "standby", "production")
"""Codes of :mod:`detectors.plant_state` (0, 1, 2) as the API names them."""


def _plant_states(ctx: ApiContext) -> dict[str, dict[str, Any]]:
    """What each enterprise's meters say it is doing: the busiest meter's state and
    when it was read; enterprises whose meters have not reported yet are left out."""
    topo, plant = ctx.pipeline.topology, ctx.pipeline.plant
    states, last = plant.state, plant.last_ts
    ids = ctx.registry.index.enterprise_ids
    out: dict[str, dict[str, Any]] = {}
    for m in range(topo.n_meters):
        if not math.isfinite(float(last[m])):
            continue
        key = ids[int(topo.meter_enterprise[m])]
        code = int(states[m])
        seen = out.get(key)
        if seen is None or code > PLANT_STATES.index(seen["state"]):
            out[key] = {"state": PLANT_STATES[code], "at": _iso(float(last[m]))}
    return out


async def _health(ctx: ApiContext) -> dict[str, Any]:
    database = "ok"
    try:
        async with ctx.engine.connect() as conn:
            await conn.execute(sa.text("SELECT 1"))
    except Exception as exc:  # any driver error means the store is unusable
        database = f"error: {type(exc).__name__}"
    mqtt: dict[str, Any] = {"connected": None}
    if ctx.source is not None:
        mqtt = {
            "connected": ctx.source.connected.is_set(),
            "protocol": ctx.source.protocol,
            "connections": ctx.source.connections,
            "last_error": ctx.source.last_error,
        }
    stats = ctx.pipeline.stats
    healthy = database == "ok" and mqtt["connected"] is not False
    return {
        "status": "ok" if healthy else "degraded",
        "database": database,
        "mqtt": mqtt,
        "uptime_s": round(time.time() - ctx.started_at, 1),
        "messages": stats.messages,
        "samples": stats.samples,
        "quarantined": stats.rejected,
        "open_alerts": len(ctx.pipeline.alerts.open_alerts()),
        "enterprises": ctx.registry.index.n_enterprises,
        "devices": ctx.registry.index.n_devices,
    }


def _quarantine_json(rejection: Any) -> dict[str, Any]:
    body = rejection_to_json(rejection)
    body["received_at"] = _iso(rejection.received_at)
    return body


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")
