"""Routes of the notification outbox, for operators: who was told what, and resending.

Every notification the engine decides is a row of the outbox (:mod:`alerting.outbox`):
``pending`` until the dispatcher delivers it (``sent``) or gives up (``dead``), or
``muted`` when a silence matched.  These routes show those rows and let a person send a
``dead`` one again after fixing its receiver, which until now took SQL:

- ``GET /api/v1/notifications``: all of them, filtered by state, enterprise and alert;
- ``GET /api/v1/alerts/{id}/notifications``: one alert's, oldest first, muted included;
- ``POST /api/v1/notifications/{key}/retry``: ``dead`` → ``pending``, due now; the
  service's dispatcher is woken through :attr:`ApiContext.on_outbox_changed`.

Times are RFC 3339 in UTC (``Z``): apart from ``created_at`` (the engine's event time)
they are the dispatcher's bookkeeping, which belongs to no site's zone.  Errors have
the handling API's shape, ``{"error": <stable code>, "detail": <message>}``.

Regulators only (town, county, admin), each for its own area's enterprises: who was
told what is the supervisors' bookkeeping, not the enterprise's.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from alerting.outbox import NotDead, NotificationNotFound, Outbox, OutboxEntry, OutboxState
from alerting.timefmt import format_ts
from gateway.api.access import ApiError
from gateway.api.handling import ErrorBody
from gateway.auth.principal import Principal

if TYPE_CHECKING:
    from gateway.api.app import ApiContext

log = logging.getLogger(__name__)


# --- responses --------------------------------------------------------------------------

class NotificationBody(BaseModel):
    """One notification and where its delivery stands (a row of the outbox)."""

    key: str = Field(description="Idempotency key, also sent to the receiver (HTTP "
                     "Idempotency-Key, e-mail Message-ID, MQTT payload)")
    alert_ids: list[str] = Field(description="One alert, or several for a group digest")
    enterprise_id: str
    receiver: str = Field(description="Receiver name in the routing file")
    tier: str = Field(description="enterprise, town or county")
    channel: str = Field(description="Channel name within the receiver")
    reason: str = Field(description="firing, repeat, escalated, flapping, reopened, "
                        "resolved, closed or group")
    locale: str
    subject: str
    state: OutboxState
    attempts: int = Field(description="Sends tried since it was created or last retried "
                          "by hand")
    next_attempt_at: str | None = Field(description=(
        "When a pending notification is tried (again); null when it has not been tried "
        "yet (due at once) or is no longer pending"))
    last_error: str | None = Field(description=(
        "The latest failure (for a dead one, why it died); kept by a retry until the "
        "next attempt replaces it"))
    sent_at: str | None
    created_at: str = Field(description="When the engine decided it (event time)")


class NotificationList(BaseModel):
    items: list[NotificationBody]
    total: int
    limit: int
    offset: int


_ERROR_TEXT = {
    404: "Unknown notification or alert: ``{error, detail}``",
    409: "The notification is not dead (pending, sent or muted): ``{error, detail}``",
}


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": ErrorBody, "description": _ERROR_TEXT[code]} for code in codes}


_Limit = Annotated[int, Query(ge=1, le=1000)]
_Offset = Annotated[int, Query(ge=0)]


# --- routes -----------------------------------------------------------------------------

def notifications_router(ctx: ApiContext, *,
                         clock: Callable[[], float] = time.time) -> APIRouter:
    """The routes of this module on ``ctx``; ``clock`` is the time a retry falls due.

    The wall clock by default, which is the live dispatcher's clock; a retried row is
    due from the moment of the request.
    """
    outbox = ctx.outbox if ctx.outbox is not None else Outbox(ctx.engine)
    router = APIRouter()
    access = ctx.access
    assert access is not None

    @router.get("/api/v1/notifications", tags=["notifications"],
                summary="List notifications", response_model=NotificationList)
    async def list_notifications(
        principal: Principal = Depends(access.regulator),
        state: OutboxState | None = None,
        enterprise: str | None = None,
        alert: Annotated[str | None, Query(description=(
            "An alert id: notifications about it, alone or in a group digest"))] = None,
        limit: _Limit = 100,
        offset: _Offset = 0,
    ) -> Any:
        """Notifications newest first (by the time the engine decided them).

        ``state=dead`` lists what needs a person; ``state=pending`` what is waiting
        or being retried, with ``last_error`` and ``next_attempt_at``.
        """
        scoped = access.enterprise_filter(principal, enterprise)
        items = await outbox.find(state=state, enterprise_id=scoped, alert_id=alert,
                                  limit=limit, offset=offset)
        total = await outbox.count(state=state, enterprise_id=scoped, alert_id=alert)
        return {"items": [_notification_json(e) for e in items], "total": total,
                "limit": limit, "offset": offset}

    @router.get("/api/v1/alerts/{alert_id}/notifications", tags=["notifications"],
                summary="Who was told about an alert", response_model=NotificationList,
                responses=_errors(404))
    async def alert_notifications(alert_id: str,
                                  principal: Principal = Depends(access.regulator),
                                  limit: _Limit = 1000, offset: _Offset = 0) -> Any:
        """Every notification about the alert, oldest first, in every state: sent (and
        when), still pending (and why), dead (and why), muted by a silence."""
        access.alert_or_404(principal, await ctx.alerts.get(alert_id), alert_id)
        items = await outbox.find(alert_id=alert_id, order="oldest", limit=limit,
                                  offset=offset)
        total = await outbox.count(alert_id=alert_id)
        return {"items": [_notification_json(e) for e in items], "total": total,
                "limit": limit, "offset": offset}

    @router.post("/api/v1/notifications/{key}/retry", tags=["notifications"],
                 summary="Send a dead notification again", response_model=NotificationBody,
                 responses=_errors(404, 409))
    async def retry(key: str,
                    principal: Principal = Depends(access.regulator_writer)) -> Any:
        """Put a ``dead`` notification back to ``pending``, due now, with its attempts
        counted from zero again; the dispatcher is woken to send it.

        Fix the receiver (address, credential, routing file) first, or it dies again.
        ``last_error`` keeps why it died until the next attempt replaces it.  The key
        stays the same, so a receiver that got the message after all drops the copy.
        409 ``not_dead`` for a pending, sent or muted one; 404
        ``notification_not_found``.
        """
        found = await outbox.get(key)
        if found is None or not access.sees_enterprise(principal,
                                                        found.notification.enterprise_id):
            raise ApiError(404, "notification_not_found",
                           f"no notification with key {key!r}")
        try:
            entry = await outbox.retry_dead(key, clock())
        except NotificationNotFound as exc:
            return _error(404, "notification_not_found", str(exc))
        except NotDead as exc:
            return _error(409, "not_dead", str(exc))
        n = entry.notification
        # The outbox has no audit table of its own: the log is where the retry is seen.
        log.warning("dead notification %s to %s/%s put back to pending by hand (it died "
                    "of: %s)", key, n.receiver, n.channel, entry.last_error)
        _wake(ctx.on_outbox_changed)
        return _notification_json(entry)

    return router


# --- helpers ----------------------------------------------------------------------------

def _error(status: int, code: str, detail: str) -> JSONResponse:
    return ApiError(status, code, detail).response()


def _wake(hook: Callable[[], None] | None) -> None:
    """Tell the service the outbox changed; a failing hook is only logged, since the
    change is committed and the dispatcher finds the row at its next poll anyway."""
    if hook is None:
        return
    try:
        hook()
    except Exception:  # the hook is the service's; its failure is not the client's
        log.exception("on_outbox_changed hook failed after a committed change")


def _utc(epoch_s: float) -> str:
    return format_ts(epoch_s, "UTC").replace("+00:00", "Z")


def _notification_json(entry: OutboxEntry) -> dict[str, Any]:
    n = entry.notification
    due = entry.state == "pending" and entry.next_attempt_at > 0
    return {
        "key": n.key,
        "alert_ids": list(n.alert_ids),
        "enterprise_id": n.enterprise_id,
        "receiver": n.receiver,
        "tier": n.tier,
        "channel": n.channel,
        "reason": n.reason,
        "locale": n.locale,
        "subject": n.subject,
        "state": entry.state,
        "attempts": entry.attempts,
        "next_attempt_at": _utc(entry.next_attempt_at) if due else None,
        "last_error": entry.last_error,
        "sent_at": None if entry.sent_at is None else _utc(entry.sent_at),
        "created_at": _utc(n.created_at),
    }
