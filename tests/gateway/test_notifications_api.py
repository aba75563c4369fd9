"""The notification (outbox) routes through the ASGI app, on SQLite and PostgreSQL.

Each test runs on a real SQLite file and on the real PostgreSQL (``database_url``), with
a freshly migrated schema, through ``httpx.ASGITransport``.  Rows reach their states the
way the dispatcher moves them (claim, then mark sent or failed), not by writing SQL, so
the API is read against what production leaves in the table.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
import pytest

from alerting import AlertStore
from alerting.notification import Notification, Reason, notification_key
from alerting.outbox import Outbox
from gateway.api.app import ApiContext, create_app
from gateway.registry import Registry
from gateway.storage.db import open_engine
from tests.auth_helpers import api_context, bearer
from tests.gateway.test_handling_api import T0, make_alert
from tests.helpers import fresh_schema


@dataclass
class Api:
    http: httpx.AsyncClient
    outbox: Outbox
    alerts: AlertStore
    app: Any
    ctx: ApiContext
    woken: int = 0


@pytest.fixture
async def api(database_url: str, small_registry: Registry) -> AsyncIterator[Api]:
    engine = open_engine(database_url)
    await fresh_schema(engine)
    alerts = AlertStore(engine)
    ctx = api_context(engine, small_registry, alerts=alerts)
    assert ctx.outbox is not None  # built from the engine when not given
    app = create_app(ctx)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://api") as http:
        assert ctx.access is not None
        http.headers.update(await bearer(ctx.access, "admin"))
        api = Api(http=http, outbox=ctx.outbox, alerts=alerts, app=app, ctx=ctx)

        def wake() -> None:
            api.woken += 1

        ctx.on_outbox_changed = wake
        yield api
    await engine.dispose()


def note(alert_ids: tuple[str, ...], *, receiver: str = "E370829001-duty",
         channel: str = "email", enterprise_id: str = "E370829001", seq: int = 0,
         at: float = T0 + 60) -> Notification:
    reason: Reason = "group" if len(alert_ids) > 1 else "firing"
    return Notification(
        key=notification_key(list(alert_ids), receiver, channel, reason, seq),
        alert_ids=alert_ids, enterprise_id=enterprise_id, receiver=receiver,
        tier="enterprise", channel=channel, reason=reason, locale="zh",
        subject="【橙色预警】某某金属制品有限公司 除尘器压差超上上限", body="请核实处置并反馈。",
        payload={"alerts": [{"id": a} for a in alert_ids]}, created_at=at)


def keys(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [item["key"] for item in response.json()["items"]]


def utc(text: str) -> float:
    assert text.endswith("Z")
    return datetime.fromisoformat(text).timestamp()


@pytest.fixture
async def seeded(api: Api) -> dict[str, Notification]:
    """One of each state; "A1" is in three rows (one a digest), "A10" must not match it."""
    rows = {
        "sent": note(("A1",), at=T0 + 60),
        "dead": note(("A1",), channel="sms", at=T0 + 61),
        "digest": note(("A1", "A2"), receiver="town-370829101", at=T0 + 62),
        "pending": note(("A10",), at=T0 + 63),
        "muted": note(("A2",), receiver="county-370829", at=T0 + 64),
        "other": note(("B1",), receiver="E370829002-duty", enterprise_id="E370829002",
                      at=T0 + 65),
    }
    await api.alerts.save([make_alert(a) for a in ("A1", "A2", "A10", "B1", "Z")])
    tried = ("sent", "dead", "digest", "pending")
    await api.outbox.enqueue([rows[name] for name in tried])
    claimed = {e.key: e for e in await api.outbox.claim_due(time.time(), 100, 60)}
    assert set(claimed) == {rows[name].key for name in tried}
    for name in ("sent", "digest"):
        assert await api.outbox.mark_sent(rows[name].key, time.time())
    assert await api.outbox.mark_failed(rows["dead"].key, "SMTP 550 5.1.1 No such user",
                                        retry_at=None, attempt=1)
    assert await api.outbox.mark_failed(rows["pending"].key, "SMTP 451 4.3.0 try again later",
                                        retry_at=time.time() + 30, attempt=1)
    await api.outbox.enqueue([rows["other"]])  # never tried yet
    await api.outbox.enqueue([rows["muted"]], muted=True)
    return rows


# --- listing ------------------------------------------------------------------------------

async def test_list_is_newest_first_with_every_field(api: Api,
                                                     seeded: dict[str, Notification]) -> None:
    response = await api.http.get("/api/v1/notifications")

    body = response.json()
    order = ["other", "muted", "pending", "digest", "dead", "sent"]
    assert keys(response) == [seeded[name].key for name in order]
    assert (body["total"], body["limit"], body["offset"]) == (6, 100, 0)
    items = {item["key"]: item for item in body["items"]}
    dead = items[seeded["dead"].key]
    assert set(dead) == {"key", "alert_ids", "enterprise_id", "receiver", "tier", "channel",
                         "reason", "locale", "subject", "state", "attempts",
                         "next_attempt_at", "last_error", "sent_at", "created_at"}
    assert dead["alert_ids"] == ["A1"]
    assert (dead["state"], dead["attempts"], dead["channel"]) == ("dead", 1, "sms")
    assert dead["last_error"] == "SMTP 550 5.1.1 No such user"
    assert dead["next_attempt_at"] is None
    assert dead["sent_at"] is None
    assert dead["subject"] == "【橙色预警】某某金属制品有限公司 除尘器压差超上上限"
    assert dead["created_at"] == "2026-11-24T00:01:01Z"  # T0 + 61 s in UTC
    sent = items[seeded["sent"].key]
    assert sent["state"] == "sent"
    assert abs(utc(sent["sent_at"]) - time.time()) < 60
    pending = items[seeded["pending"].key]
    assert pending["state"] == "pending"
    assert pending["last_error"] == "SMTP 451 4.3.0 try again later"
    assert 0 < utc(pending["next_attempt_at"]) - time.time() <= 31
    muted = items[seeded["muted"].key]
    assert (muted["state"], muted["attempts"], muted["next_attempt_at"]) == ("muted", 0, None)
    assert items[seeded["digest"].key]["alert_ids"] == ["A1", "A2"]


async def test_list_filters_and_pages(api: Api, seeded: dict[str, Notification]) -> None:
    async def listed(**params: Any) -> tuple[list[str], int]:
        response = await api.http.get("/api/v1/notifications", params=params)
        return keys(response), response.json()["total"]

    def named(*names: str) -> list[str]:
        return [seeded[name].key for name in names]

    assert await listed(state="dead") == (named("dead"), 1)
    assert await listed(state="muted") == (named("muted"), 1)
    assert await listed(enterprise="E370829002") == (named("other"), 1)
    # The digest holds A1 among others; A10 is another alert, not a prefix match.
    assert await listed(alert="A1") == (named("digest", "dead", "sent"), 3)
    assert await listed(alert="A10") == (named("pending"), 1)
    assert await listed(alert="A1", state="sent") == (named("digest", "sent"), 2)
    assert await listed(alert="A1", enterprise="E370829002") == ([], 0)
    assert await listed(alert="nope") == ([], 0)
    assert await listed(alert="A1", limit=2, offset=1) == (named("dead", "sent"), 3)
    assert await listed(limit=2, offset=5) == (named("sent"), 6)
    assert await listed(offset=6) == ([], 6)


@pytest.mark.parametrize("params", [{"state": "failed"}, {"limit": 0}, {"limit": 1001},
                                    {"offset": -1}])
async def test_list_refuses_bad_parameters(api: Api, params: dict[str, Any]) -> None:
    response = await api.http.get("/api/v1/notifications", params=params)

    assert response.status_code == 422
    assert isinstance(response.json()["detail"], list)


async def test_who_was_told_about_an_alert(api: Api, seeded: dict[str, Notification]) -> None:
    response = await api.http.get("/api/v1/alerts/A2/notifications")

    assert keys(response) == [seeded["digest"].key, seeded["muted"].key]  # oldest first
    assert [i["state"] for i in response.json()["items"]] == ["sent", "muted"]
    assert response.json()["total"] == 2
    a1 = await api.http.get("/api/v1/alerts/A1/notifications", params={"limit": 2})
    assert keys(a1) == [seeded[name].key for name in ("sent", "dead")]
    assert a1.json()["total"] == 3
    untold = await api.http.get("/api/v1/alerts/Z/notifications")
    assert (keys(untold), untold.json()["total"]) == ([], 0)
    unknown = await api.http.get("/api/v1/alerts/nope/notifications")
    assert unknown.status_code == 404
    assert unknown.json() == {"error": "alert_not_found", "detail": "no alert with id 'nope'"}


# --- retry --------------------------------------------------------------------------------

async def test_retry_puts_a_dead_notification_back_due_now(
        api: Api, seeded: dict[str, Notification]) -> None:
    dead = seeded["dead"]
    before = time.time()

    response = await api.http.post(f"/api/v1/notifications/{dead.key}/retry")

    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["key"], body["state"], body["attempts"]) == (dead.key, "pending", 0)
    assert body["last_error"] == "SMTP 550 5.1.1 No such user"  # why it died, still shown
    assert before - 0.01 <= utc(body["next_attempt_at"]) <= time.time() + 0.01
    assert api.woken == 1
    stored = await api.outbox.get(dead.key)
    assert stored is not None
    assert (stored.state, stored.attempts, stored.first_attempt_at,
            stored.lease_until) == ("pending", 0, None, None)
    # The dispatcher claims it at once, as the first attempt of a fresh give-up clock.
    claimed = [e for e in await api.outbox.claim_due(time.time() + 0.01, 100, 60)
               if e.key == dead.key]
    assert [(e.attempts, e.last_error) for e in claimed] == [
        (1, "SMTP 550 5.1.1 No such user")]
    listed = await api.http.get("/api/v1/notifications", params={"state": "dead"})
    assert listed.json()["total"] == 0
    again = await api.http.post(f"/api/v1/notifications/{dead.key}/retry")
    assert (again.status_code, again.json()["error"]) == (409, "not_dead")


@pytest.mark.parametrize("name", ["sent", "pending", "muted"])
async def test_only_dead_notifications_are_retried(
        api: Api, seeded: dict[str, Notification], name: str) -> None:
    n = seeded[name]
    before = await api.outbox.get(n.key)

    response = await api.http.post(f"/api/v1/notifications/{n.key}/retry")

    assert response.status_code == 409
    assert response.json()["error"] == "not_dead"
    assert f"is {name}, not dead" in response.json()["detail"]
    assert await api.outbox.get(n.key) == before
    assert api.woken == 0


async def test_retrying_an_unknown_key_is_404(api: Api) -> None:
    response = await api.http.post("/api/v1/notifications/nope/retry")

    assert response.status_code == 404
    assert response.json() == {"error": "notification_not_found",
                               "detail": "no notification with key 'nope'"}
    assert api.woken == 0


async def test_a_failing_hook_does_not_fail_the_committed_retry(
        api: Api, seeded: dict[str, Notification]) -> None:
    def broken() -> None:
        raise RuntimeError("dispatcher gone")

    api.ctx.on_outbox_changed = broken

    response = await api.http.post(f"/api/v1/notifications/{seeded['dead'].key}/retry")

    assert response.status_code == 200
    stored = await api.outbox.get(seeded["dead"].key)
    assert stored is not None
    assert stored.state == "pending"


# --- schema -------------------------------------------------------------------------------

async def test_openapi_documents_the_routes(api: Api) -> None:
    schema = api.app.openapi()
    paths, models = schema["paths"], schema["components"]["schemas"]

    listing = paths["/api/v1/notifications"]["get"]
    assert {p["name"] for p in listing["parameters"]} == {"state", "enterprise", "alert",
                                                         "limit", "offset"}
    assert listing["responses"]["200"]["content"]["application/json"]["schema"][
        "$ref"].endswith("/NotificationList")
    per_alert = paths["/api/v1/alerts/{alert_id}/notifications"]["get"]
    assert "404" in per_alert["responses"]
    retry = paths["/api/v1/notifications/{key}/retry"]["post"]
    assert {"200", "404", "409"} <= set(retry["responses"])
    assert retry["responses"]["200"]["content"]["application/json"]["schema"][
        "$ref"].endswith("/NotificationBody")
    assert retry["responses"]["409"]["content"]["application/json"]["schema"][
        "$ref"].endswith("/ErrorBody")
    assert set(models["NotificationBody"]["properties"]) == {
        "key", "alert_ids", "enterprise_id", "receiver", "tier", "channel", "reason",
        "locale", "subject", "state", "attempts", "next_attempt_at", "last_error", "sent_at",
        "created_at"}
    assert models["NotificationBody"]["properties"]["state"]["enum"] == [
        "pending", "sent", "dead", "muted"]
    # The handling routes still resolve beside the new ones.
    assert "/api/v1/alerts/{alert_id}/{action}" in paths
