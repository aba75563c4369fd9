"""Routes of alert handling and silences: 推送 → 核实处置 → 反馈 → 核查 → 销号.

``POST /api/v1/alerts/{id}/{action}`` runs one workflow action through
:class:`~alerting.handling_store.HandlingStore` (row-locked, audited) and tells the
service through :attr:`ApiContext.on_handled` so its in-memory alert manager stops
escalating; ``GET /api/v1/alerts/{id}/history`` is the audit trail.  Silences are
created, listed and expired (never deleted) under ``/api/v1/silences``, and the service
reloads them through :attr:`ApiContext.on_silences_changed`.

Errors this module raises have one body shape, ``{"error": <stable code>, "detail":
<message>}``; a body or parameter that fails validation gets FastAPI's own 422 shape
(``{"detail": [{"loc": .., "msg": .., "type": ..}]}``).

Who may act (:mod:`gateway.api.access`): an enterprise user acknowledges, feeds back
and comments on its own alerts; regulators (town, county, admin) take every action on
their area's alerts and alone see and make silences, which must name enterprises or
regions of their area.  The actor recorded in the audit trail is the logged-in user;
an ``actor`` in the body is ignored.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator

from alerting.handling_store import AlertNotFound, HandlingStore
from alerting.models import DEFAULT_TIMEZONE
from alerting.silence_store import SilenceNotFound, SilenceStore, new_silence_id
from alerting.silences import MATCHER_KEYS, Silence
from alerting.timefmt import format_ts, to_ms
from alerting.workflow import Action, AuditEvent, WorkflowError
from gateway.api.access import ApiError, forbidden
from gateway.auth.principal import Principal
from gateway.ingest.timestamps import TimestampError, TimestampParser

if TYPE_CHECKING:
    from gateway.api.app import ApiContext

log = logging.getLogger(__name__)

MAX_NAME = 128
"""Characters of an actor, assignee or creator: the width of their columns."""
MAX_COMMENT = 4000
MAX_DATA_BYTES = 16_384
"""Size of an action's ``data`` as JSON: enough for photos' URLs, not for the photos."""

_ACTOR_NOTE = ("Ignored: the audit trail records the logged-in user.  Kept so older "
               "clients' requests are still accepted.")

ENTERPRISE_ACTIONS: frozenset[str] = frozenset({"acknowledge", "feedback", "comment"})
"""What an enterprise user may do to its own alerts: confirm it saw one, report what it
did, add a remark; dispatching, verifying and closing are the regulator's."""


# --- bodies -----------------------------------------------------------------------------

class ActionRequest(BaseModel):
    """Body of a workflow action."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"assignee": "张三", "comment": "请现场核实除尘器压差"}]})

    actor: str | None = Field(None, max_length=MAX_NAME, description=_ACTOR_NOTE)
    comment: str | None = Field(None, max_length=MAX_COMMENT, description=(
        "Required by feedback, reject, dismiss and comment."))
    assignee: str | None = Field(None, max_length=MAX_NAME, description=(
        "Who is sent to handle it; required by dispatch, kept by later actions."))
    data: dict[str, Any] | None = Field(None, description=(
        f"Free-form details kept with the audit event, at most {MAX_DATA_BYTES} bytes "
        "as JSON."))

    @field_validator("data")
    @classmethod
    def _data_is_small(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None and len(orjson.dumps(value)) > MAX_DATA_BYTES:
            raise ValueError(f"data is larger than {MAX_DATA_BYTES} bytes as JSON")
        return value


_MatcherValue = Annotated[str, Field(max_length=MAX_NAME)] | int
_TimeValue = Annotated[str, Field(max_length=64)] | int


class SilenceRequest(BaseModel):
    """Body of ``POST /api/v1/silences``: give ``ends_at`` or ``duration_s``."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"matchers": {"enterprise": "E370829001", "device": ["DC1", "DC2"]},
         "starts_at": "2026-11-24T20:00:00+08:00", "duration_s": 7200,
         "comment": "除尘器停机检修"}]})

    matchers: dict[str, _MatcherValue | Annotated[list[_MatcherValue], Field(max_length=500)]] = (
        Field(description=(
            "Labels every muted alert must carry; a key may list several values, any of "
            "which will do.  Keys: " + ", ".join(MATCHER_KEYS) + ".  ``region`` holds "
            "for any administrative level of the enterprise's region.  At least one."),
            json_schema_extra={"propertyNames": {"enum": list(MATCHER_KEYS)}}))
    starts_at: _TimeValue | None = Field(None, description="RFC 3339 with offset or epoch "
                                         "ms; default now")
    ends_at: _TimeValue | None = Field(None, description="RFC 3339 with offset or epoch ms")
    duration_s: float | None = Field(None, gt=0, description="Alternative to ends_at")
    created_by: str | None = Field(None, max_length=MAX_NAME, description=_ACTOR_NOTE)
    comment: str = Field(max_length=MAX_COMMENT, description="Why: shown with every "
                         "notification the silence mutes")


# --- responses --------------------------------------------------------------------------

class ErrorBody(BaseModel):
    error: str = Field(description="Stable code, e.g. alert_not_found, invalid_transition, "
                       "missing_comment, missing_assignee, missing_actor, invalid_silence")
    detail: str


class AlertBody(BaseModel):
    """CONTRACT.md §4 alert with its optional extension keys (``Alert.to_json``)."""

    model_config = ConfigDict(extra="allow")

    id: str
    enterprise_id: str
    device_id: str | None
    point: str | None
    kind: str
    level: int
    state: Literal["firing", "acknowledged", "resolved", "closed"]
    started_at: str
    detected_at: str
    resolved_at: str | None
    title: str
    evidence: dict[str, Any]
    stage: str
    assignee: str | None
    acknowledged_at: str | None
    closed_at: str | None


class EventBody(BaseModel):
    """One audit event; ``at`` in the alert's time zone, like the alert's own times."""

    alert_id: str
    at: str
    actor: str
    action: str
    from_stage: str | None
    to_stage: str | None
    comment: str | None
    data: dict[str, Any]


class ActionResponse(BaseModel):
    alert: AlertBody
    event: EventBody


class HistoryResponse(BaseModel):
    items: list[EventBody]


class SilenceBody(BaseModel):
    """A silence; times in the contract's default zone (Asia/Shanghai)."""

    id: str
    matchers: dict[str, list[str]]
    starts_at: str
    ends_at: str
    created_by: str
    comment: str
    created_at: str
    expired_by: str | None
    state: Literal["scheduled", "active", "expired"] = Field(
        description="At the time of the response")


class SilenceList(BaseModel):
    items: list[SilenceBody]
    total: int
    limit: int
    offset: int


_ERROR_TEXT = {
    404: "Unknown alert or silence: ``{error, detail}``",
    409: "The alert's stage does not allow the action: ``{error, detail}``",
    422: ("A request the workflow refuses: ``{error, detail}`` with a stable code; a body "
          "or parameter that fails validation gets FastAPI's ``{detail: [..]}`` instead"),
}


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": ErrorBody, "description": _ERROR_TEXT[code]} for code in codes}


# --- routes -----------------------------------------------------------------------------

def handling_router(ctx: ApiContext, *, clock: Callable[[], float] = time.time) -> APIRouter:
    """The routes of this module on ``ctx``; ``clock`` gives the wall time of actions."""
    handling = ctx.handling if ctx.handling is not None else HandlingStore(ctx.engine)
    silences = ctx.silences if ctx.silences is not None else SilenceStore(ctx.engine)
    router = APIRouter()
    times = TimestampParser()
    access = ctx.access
    assert access is not None

    async def silence_or_404(principal: Principal, silence_id: str) -> Silence:
        silence = await silences.get(silence_id)
        if silence is None or not access.matchers_in_scope(principal, silence.matchers):
            raise ApiError(404, "silence_not_found", f"no silence with id {silence_id!r}")
        return silence

    @router.post("/api/v1/alerts/{alert_id}/{action}", tags=["handling"],
                 summary="Take a handling action", response_model=ActionResponse,
                 responses=_errors(404, 409, 422),
                 description=(
                     "Take a handling action: acknowledge → dispatch → feedback → verify "
                     "(or reject, back to dispatched) → close; dismiss closes a false "
                     "alarm; comment at any stage.  409 `invalid_transition` when the "
                     "alert's stage does not allow it (another operator was first); 422 "
                     "`missing_comment`, `missing_assignee`, `missing_actor`.  "
                     + _ACTOR_NOTE))
    async def act(alert_id: str, action: Action, body: ActionRequest,
                  principal: Principal = Depends(access.writer)) -> Any:
        access.alert_or_404(principal, await ctx.alerts.get(alert_id), alert_id)
        if principal.role == "enterprise" and action not in ENTERPRISE_ACTIONS:
            raise forbidden(f"an enterprise may {', '.join(sorted(ENTERPRISE_ACTIONS))} "
                            f"its alerts; {action} is the regulator's")
        try:
            alert, event = await handling.act(
                alert_id, action, actor=principal.actor, at=clock(), comment=body.comment,
                assignee=body.assignee, data=body.data)
        except AlertNotFound as exc:
            return _error(404, "alert_not_found", str(exc))
        except WorkflowError as exc:
            return _error(409 if exc.code == "invalid_transition" else 422, exc.code,
                          str(exc))
        await _notify(ctx.on_handled, alert)
        tz = alert.subject.timezone
        return {"alert": alert.to_json(), "event": _event_json(event, tz)}

    @router.get("/api/v1/alerts/{alert_id}/history", tags=["handling"],
                summary="Audit trail of an alert", response_model=HistoryResponse,
                responses=_errors(404))
    async def history(alert_id: str, principal: Principal = Depends(access.user)) -> Any:
        """The alert's audit trail oldest first: people's actions and the system's."""
        alert = access.alert_or_404(principal, await ctx.alerts.get(alert_id), alert_id)
        tz = alert.subject.timezone
        return {"items": [_event_json(e, tz) for e in await handling.history(alert_id)]}

    @router.get("/api/v1/silences", tags=["silences"], summary="List silences",
                response_model=SilenceList)
    async def list_silences(
        principal: Principal = Depends(access.regulator),
        state: Annotated[Literal["active", "all"], Query(
            description="active: muting now; all: also scheduled and ended ones")] = "all",
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> Any:
        """Silences newest created first; expired ones stay listed under ``all``.
        A town or county user sees those that mute only its area."""
        now = clock()
        active_at = now if state == "active" else None
        if principal.role == "admin":
            items = await silences.list(active_at=active_at, limit=limit, offset=offset)
            total = await silences.count(active_at=active_at)
        else:  # silences are few: filter all of them by scope, then page
            every = await silences.list(active_at=active_at, limit=1_000_000)
            mine = [s for s in every if access.matchers_in_scope(principal, s.matchers)]
            items, total = mine[offset:offset + limit], len(mine)
        return {"items": [_silence_json(s, now) for s in items], "total": total,
                "limit": limit, "offset": offset}

    @router.post("/api/v1/silences", tags=["silences"], summary="Create a silence", status_code=201,
                 response_model=SilenceBody, responses=_errors(422))
    async def create_silence(
            body: SilenceRequest,
            principal: Principal = Depends(access.regulator_writer)) -> Any:
        """Mute notifications (not alerts) of matching alerts for a time window.

        422 ``invalid_silence``: no matcher, an unknown matcher key, an end not after
        the start or already past, neither or both of ``ends_at`` and ``duration_s``.
        403 ``forbidden`` when a town or county user's silence does not name
        enterprises or regions of its own area (it could mute others' alerts).
        """
        now = clock()
        try:
            silence = _new_silence(body, now, times, principal.actor)
        except ValueError as exc:
            return _error(422, "invalid_silence", str(exc))
        if not access.matchers_in_scope(principal, silence.matchers):
            raise forbidden("a silence of yours must name enterprises (enterprise) or "
                            "regions (region) of your area")
        stored = await silences.create(silence)
        await _notify(ctx.on_silences_changed)
        return _silence_json(stored, now)

    @router.get("/api/v1/silences/{silence_id}", tags=["silences"], summary="Get a silence",
                response_model=SilenceBody, responses=_errors(404))
    async def get_silence(silence_id: str,
                          principal: Principal = Depends(access.regulator)) -> Any:
        return _silence_json(await silence_or_404(principal, silence_id), clock())

    @router.delete("/api/v1/silences/{silence_id}", tags=["silences"], summary="Expire a silence",
                   response_model=SilenceBody, responses=_errors(404, 422))
    async def expire_silence(
        silence_id: str,
        principal: Principal = Depends(access.regulator_writer),
        actor: Annotated[str | None, Query(max_length=MAX_NAME, description=_ACTOR_NOTE)]
        = None,
    ) -> Any:
        """End a silence now; it is kept (listed under ``state=all``) with
        ``expired_by``.  Expiring one that has already ended changes nothing."""
        await silence_or_404(principal, silence_id)
        now = clock()
        try:
            silence = await silences.expire(silence_id, actor=principal.actor, at=now)
        except SilenceNotFound as exc:
            return _error(404, "silence_not_found", str(exc))
        await _notify(ctx.on_silences_changed)
        return _silence_json(silence, now)

    return router


# --- helpers ----------------------------------------------------------------------------

def _error(status: int, code: str, detail: str) -> JSONResponse:
    return ApiError(status, code, detail).response()


async def _notify(hook: Callable[..., Awaitable[None]] | None, *args: Any) -> None:
    """Run a service hook after a committed change.

    A failing hook is logged, not answered with 500: the change is stored, and a client
    retrying it would only be refused (the alert's stage has already moved on).
    """
    if hook is None:
        return
    try:
        await hook(*args)
    except Exception:  # the hook is the service's; its failure is not the client's
        log.exception("hook %s failed after a committed change",
                      getattr(hook, "__name__", hook))


def _event_json(event: AuditEvent, timezone: str) -> dict[str, Any]:
    return {
        "alert_id": event.alert_id,
        "at": format_ts(event.at, timezone),
        "actor": event.actor,
        "action": event.action,
        "from_stage": event.from_stage,
        "to_stage": event.to_stage,
        "comment": event.comment,
        "data": dict(event.data),
    }


def _silence_json(silence: Silence, now: float) -> dict[str, Any]:
    tz = DEFAULT_TIMEZONE
    # In stored milliseconds: a silence starting "now" is stored rounded, maybe up.
    now_ms = to_ms(now)
    state = ("expired" if to_ms(silence.ends_at) <= now_ms
             else "scheduled" if to_ms(silence.starts_at) > now_ms else "active")
    return {
        "id": silence.id,
        "matchers": {key: list(values) for key, values in silence.matchers.items()},
        "starts_at": format_ts(silence.starts_at, tz),
        "ends_at": format_ts(silence.ends_at, tz),
        "created_by": silence.created_by,
        "comment": silence.comment,
        "created_at": format_ts(silence.created_at, tz),
        "expired_by": silence.expired_by,
        "state": state,
    }


def _new_silence(body: SilenceRequest, now: float, times: TimestampParser,
                 created_by: str) -> Silence:
    """The silence a request asks for; ``ValueError`` says what is wrong with it."""
    if (body.ends_at is None) == (body.duration_s is None):
        raise ValueError("give either ends_at or duration_s")
    starts_at = now if body.starts_at is None else _parse_time(times, "starts_at",
                                                               body.starts_at)
    ends_at = (starts_at + body.duration_s if body.duration_s is not None
               else _parse_time(times, "ends_at", body.ends_at))
    matchers = {key: tuple(v for v in (str(x).strip() for x in
                                       (raw if isinstance(raw, list) else [raw])) if v)
                for key, raw in body.matchers.items()}
    silence = Silence(id=new_silence_id(), matchers=matchers, starts_at=starts_at,
                      ends_at=ends_at, created_by=created_by,
                      comment=body.comment.strip(), created_at=now)
    if silence.ends_at <= now:
        raise ValueError("a silence must end in the future")
    return silence


def _parse_time(times: TimestampParser, name: str, raw: str | int | None) -> float:
    try:
        return times.parse(raw)
    except TimestampError as exc:
        raise ValueError(f"{name}: {exc}") from None
