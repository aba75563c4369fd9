"""The handling and silence routes through the ASGI app, on SQLite and PostgreSQL.

Each test runs on a real SQLite file and on the real PostgreSQL (``database_url``), with
a freshly migrated schema, through ``httpx.ASGITransport`` (no sockets).  Alerts are
seeded in a given handling stage by the alert store, which writes a new alert whole.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from alerting import Alert, AlertStore, Subject, fingerprint
from alerting.silences import MATCHER_KEYS
from alerting.workflow import STAGES, TRANSITIONS, contract_state
from gateway.api.app import ApiContext, create_app
from gateway.registry import Registry
from gateway.storage.db import open_engine
from tests.auth_helpers import api_context, bearer
from tests.helpers import fresh_schema

T0 = 1_795_478_400.0  # 2026-11-24T08:00:00+08:00


@dataclass
class Api:
    http: httpx.AsyncClient
    alerts: AlertStore
    app: Any
    ctx: ApiContext
    handled: list[Alert] = field(default_factory=list)
    silences_changed: int = 0


@pytest.fixture
async def api(database_url: str, small_registry: Registry) -> AsyncIterator[Api]:
    engine = open_engine(database_url)
    await fresh_schema(engine)
    alerts = AlertStore(engine)
    ctx = api_context(engine, small_registry, alerts=alerts)
    app = create_app(ctx)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as http:
        assert ctx.access is not None
        http.headers.update(await bearer(ctx.access, "admin"))
        api = Api(http=http, alerts=alerts, app=app, ctx=ctx)

        async def on_handled(alert: Alert) -> None:
            api.handled.append(alert)

        async def on_silences_changed() -> None:
            api.silences_changed += 1

        ctx.on_handled, ctx.on_silences_changed = on_handled, on_silences_changed
        yield api
    await engine.dispose()


def make_alert(alert_id: str, *, stage: str = "pending",
               resolved_at: float | None = None) -> Alert:
    who = Subject(enterprise_id="E370829001", enterprise_name="某某金属制品有限公司",
                  industry="dust", region=("370000", "370800"), timezone="Asia/Shanghai",
                  device_id="DC1", point="dp")
    return Alert(
        id=alert_id, fingerprint=fingerprint("threshold", "E370829001", "DC1", "dp"),
        kind="threshold", subject=who, level=2,
        state=contract_state(stage, resolved_at is not None), started_at=T0,
        detected_at=T0 + 30, resolved_at=resolved_at, updated_at=T0 + 30,
        title="【橙色预警】某某金属制品有限公司 除尘器压差超上上限", evidence={}, stage=stage)


FULL = {"actor": "王五", "comment": "现场核实", "assignee": "张三"}


async def post(api: Api, alert_id: str, action: str, **body: Any) -> httpx.Response:
    return await api.http.post(f"/api/v1/alerts/{alert_id}/{action}", json=body)


# --- actions ------------------------------------------------------------------------------

async def test_every_action_from_every_stage(api: Api) -> None:
    await api.alerts.save([make_alert(f"{action}-{stage}", stage=stage)
                           for action in TRANSITIONS for stage in STAGES])
    expected, got = {}, {}
    for action, rule in TRANSITIONS.items():
        for stage in STAGES:
            response = await post(api, f"{action}-{stage}", action, **FULL)
            expected[action, stage] = 200 if stage in rule.sources else 409
            got[action, stage] = response.status_code
            if response.status_code == 409:
                assert response.json()["error"] == "invalid_transition"
                assert stage in response.json()["detail"]
            elif response.status_code == 200:
                target = rule.target or stage
                assert response.json()["alert"]["stage"] == target
                assert response.json()["event"]["to_stage"] == target
    assert got == expected
    assert len(api.handled) == list(expected.values()).count(200)


async def test_the_whole_loop_and_its_history(api: Api) -> None:
    await api.alerts.save([make_alert("A")])
    steps = [("acknowledge", {}, "acknowledged"),
             ("dispatch", {"assignee": "张三"}, "dispatched"),
             ("feedback", {"comment": "已清灰"}, "feedback"),
             ("reject", {"comment": "压差仍偏高"}, "dispatched"),
             ("feedback", {"comment": "已更换滤袋", "data": {"photos": ["p1.jpg"]}}, "feedback"),
             ("verify", {}, "verified"),
             ("close", {"comment": "销号"}, "closed")]
    before = time.time()
    for action, extra, stage in steps:
        response = await post(api, "A", action, actor="王五", **extra)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["alert"]["stage"] == stage
        assert body["alert"]["state"] == contract_state(stage, False)
        assert body["event"]["action"] == action
        assert api.handled[-1].stage == stage
        assert api.handled[-1].to_json() == body["alert"]  # the hook sees the updated alert

    closed = (await api.http.get("/api/v1/alerts/A")).json()
    assert closed["state"] == "closed"
    assert closed["assignee"] == "张三"
    assert closed["closed_at"].endswith("+08:00")
    items = (await api.http.get("/api/v1/alerts/A/history")).json()["items"]
    assert [e["action"] for e in items] == [action for action, _, _ in steps]
    assert [(e["from_stage"], e["to_stage"]) for e in items][:2] == [
        ("pending", "acknowledged"), ("acknowledged", "dispatched")]
    assert items[4]["data"] == {"photos": ["p1.jpg"]}
    assert items[3]["comment"] == "压差仍偏高"
    # The body says 王五; the audit trail records who is logged in.
    assert all(e["actor"] == "admin" and e["alert_id"] == "A" for e in items)
    assert items[0]["at"].endswith("+08:00")  # the alert's zone, like its own times
    assert items[0]["at"] == closed["acknowledged_at"]
    assert api.handled[0].acknowledged_at is not None
    assert before - 1 <= api.handled[0].acknowledged_at <= time.time() + 1  # wall clock


async def test_a_resolved_alert_is_resolved_until_closed(api: Api) -> None:
    await api.alerts.save([make_alert("R", resolved_at=T0 + 600)])

    acked = (await post(api, "R", "acknowledge", actor="王五")).json()["alert"]
    dismissed = (await post(api, "R", "dismiss", actor="王五", comment="误报")).json()["alert"]

    assert (acked["stage"], acked["state"]) == ("acknowledged", "resolved")
    assert (dismissed["stage"], dismissed["state"]) == ("closed", "closed")


@pytest.mark.parametrize(("action", "body", "code"), [
    ("dispatch", {"actor": "王五"}, "missing_assignee"),
    ("feedback", {"actor": "王五", "comment": "  "}, "missing_comment"),
    ("comment", {"actor": "王五"}, "missing_comment"),
])
async def test_refusals_by_the_workflow_are_422_with_a_code(
    api: Api, action: str, body: dict[str, Any], code: str
) -> None:
    await api.alerts.save([make_alert("A", stage="acknowledged"
                                      if action == "feedback" else "pending")])

    response = await api.http.post(f"/api/v1/alerts/A/{action}", json=body)

    assert response.status_code == 422
    assert response.json()["error"] == code
    assert response.json()["detail"]
    assert api.handled == []


@pytest.mark.parametrize(("path", "body"), [
    ("/api/v1/alerts/A/escalate", {"actor": "王五"}),  # not an action
    ("/api/v1/alerts/A/acknowledge", {"actor": "王五", "assigne": "张三"}),  # typo
    ("/api/v1/alerts/A/acknowledge", {"actor": "王" * 129}),
    ("/api/v1/alerts/A/comment", {"actor": "王五", "comment": "x" * 4001}),
    ("/api/v1/alerts/A/comment", {"actor": "王五", "comment": "c", "data": [1]}),
    ("/api/v1/alerts/A/comment", {"actor": "王五", "comment": "c",
                                  "data": {"blob": "x" * 20_000}}),
])
async def test_invalid_bodies_get_fastapis_422(api: Api, path: str,
                                                body: dict[str, Any]) -> None:
    await api.alerts.save([make_alert("A")])

    response = await api.http.post(path, json=body)

    assert response.status_code == 422
    assert isinstance(response.json()["detail"], list)  # FastAPI's validation format


async def test_unknown_alert_is_404(api: Api) -> None:
    for response in (await post(api, "nope", "acknowledge", actor="王五"),
                     await api.http.get("/api/v1/alerts/nope/history")):
        assert response.status_code == 404
        assert response.json() == {"error": "alert_not_found",
                                   "detail": "no alert with id 'nope'"}


async def test_a_failing_hook_does_not_fail_the_committed_action(api: Api) -> None:
    await api.alerts.save([make_alert("A")])

    async def broken(alert: Alert) -> None:
        raise RuntimeError("manager gone")

    api.ctx.on_handled = broken

    response = await post(api, "A", "acknowledge", actor="王五")

    assert response.status_code == 200  # stored; a retry would only be refused
    stored = await api.alerts.get("A")
    assert stored is not None
    assert stored.stage == "acknowledged"


# --- silences -----------------------------------------------------------------------------

def window(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"matchers": {"enterprise": "E370829001", "device": ["DC1"],
                                         "level": [2, "3"]},
                            "duration_s": 3600, "created_by": "王五",
                            "comment": "除尘器停机检修"}
    return {**body, **changes}


async def test_create_get_list_and_expire_a_silence(api: Api) -> None:
    created = await api.http.post("/api/v1/silences", json=window())
    assert created.status_code == 201, created.text
    silence = created.json()
    assert silence["matchers"] == {"enterprise": ["E370829001"], "device": ["DC1"],
                                   "level": ["2", "3"]}
    assert silence["state"] == "active"
    assert silence["starts_at"].endswith("+08:00")
    assert api.silences_changed == 1
    sid = silence["id"]
    assert (await api.http.get(f"/api/v1/silences/{sid}")).json() == silence

    later = await api.http.post("/api/v1/silences", json=window(
        starts_at=int((time.time() + 86_400) * 1000), duration_s=None,
        ends_at="2099-01-01T00:00:00+08:00"))
    assert later.json()["state"] == "scheduled"

    everything = (await api.http.get("/api/v1/silences", params={"state": "all"})).json()
    assert [s["id"] for s in everything["items"]] == [later.json()["id"], sid]
    assert (everything["total"], everything["limit"], everything["offset"]) == (2, 100, 0)
    active = (await api.http.get("/api/v1/silences", params={"state": "active"})).json()
    assert [s["id"] for s in active["items"]] == [sid]
    page = (await api.http.get("/api/v1/silences", params={"limit": 1, "offset": 1})).json()
    assert [s["id"] for s in page["items"]] == [sid]
    assert page["total"] == 2

    expired = await api.http.delete(f"/api/v1/silences/{sid}", params={"actor": "李四"})
    assert expired.status_code == 200
    assert (expired.json()["state"], expired.json()["expired_by"]) == ("expired", "admin")
    assert api.silences_changed == 3
    active = (await api.http.get("/api/v1/silences", params={"state": "active"})).json()
    assert active["items"] == []
    everything = (await api.http.get("/api/v1/silences")).json()
    assert sid in [s["id"] for s in everything["items"]]
    again = await api.http.delete(f"/api/v1/silences/{sid}", params={"actor": "赵六"})
    assert again.json()["expired_by"] == "admin"  # already ended: nothing changes


@pytest.mark.parametrize(("changes", "fragment"), [
    ({"matchers": {}}, "at least one matcher"),
    ({"matchers": {"enterprise": []}}, "at least one matcher"),
    ({"matchers": {"enterprise": "  "}}, "at least one matcher"),
    ({"matchers": {"site": "E1"}}, "unknown silence matcher"),
    ({"starts_at": "2099-01-02T00:00:00+08:00", "duration_s": None,
      "ends_at": "2099-01-01T00:00:00+08:00"}, "end after it starts"),
    ({"duration_s": None}, "ends_at or duration_s"),
    ({"ends_at": "2099-01-01T00:00:00+08:00"}, "ends_at or duration_s"),
    ({"starts_at": "2020-01-01T00:00:00+08:00"}, "future"),
    ({"starts_at": "yesterday"}, "starts_at"),
    ({"comment": ""}, "comment"),
])
async def test_silence_refusals_are_422_invalid_silence(
    api: Api, changes: dict[str, Any], fragment: str
) -> None:
    response = await api.http.post("/api/v1/silences", json=window(**changes))

    assert response.status_code == 422, response.text
    assert response.json()["error"] == "invalid_silence"
    assert fragment in response.json()["detail"]
    assert api.silences_changed == 0


@pytest.mark.parametrize("changes", [
    {"duration_s": -5}, {"matchers": ["E1"]}, {"extra": 1}, {"created_by": "x" * 129},
])
async def test_malformed_silence_bodies_get_fastapis_422(api: Api,
                                                          changes: dict[str, Any]) -> None:
    response = await api.http.post("/api/v1/silences", json=window(**changes))

    assert response.status_code == 422
    assert isinstance(response.json()["detail"], list)


async def test_unknown_silences_and_expiry_by_the_logged_in_user(api: Api) -> None:
    sid = (await api.http.post("/api/v1/silences", json=window())).json()["id"]

    for response in (await api.http.get("/api/v1/silences/nope"),
                     await api.http.delete("/api/v1/silences/nope", params={"actor": "李四"})):
        assert response.status_code == 404
        assert response.json()["error"] == "silence_not_found"
    assert (await api.http.get("/api/v1/silences", params={"state": "gone"})).status_code == 422
    assert (await api.http.get(f"/api/v1/silences/{sid}")).json()["state"] == "active"
    # No actor needed any more: the logged-in user is recorded, whatever the query says.
    expired = await api.http.delete(f"/api/v1/silences/{sid}", params={"actor": "冒名"})
    assert (expired.status_code, expired.json()["expired_by"]) == (200, "admin")


# --- schema -------------------------------------------------------------------------------

async def test_openapi_documents_the_routes_and_models(api: Api) -> None:
    schema = api.app.openapi()
    paths, models = schema["paths"], schema["components"]["schemas"]

    act = paths["/api/v1/alerts/{alert_id}/{action}"]["post"]
    action = next(p for p in act["parameters"] if p["name"] == "action")
    assert action["schema"]["enum"] == list(TRANSITIONS)
    assert act["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/ActionRequest")
    assert act["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/ActionResponse")
    assert {"404", "409", "422"} <= set(act["responses"])
    assert "logged-in user" in act["description"]
    assert paths["/api/v1/alerts/{alert_id}/history"]["get"]["responses"]["200"]
    assert set(paths["/api/v1/silences"]) == {"get", "post"}
    assert set(paths["/api/v1/silences/{silence_id}"]) == {"get", "delete"}
    assert "201" in paths["/api/v1/silences"]["post"]["responses"]
    for name in ("ActionRequest", "ActionResponse", "AlertBody", "EventBody", "ErrorBody",
                 "HistoryResponse", "SilenceRequest", "SilenceBody", "SilenceList"):
        assert name in models, name
    assert set(models["ActionRequest"]["properties"]) == {"actor", "comment", "assignee",
                                                          "data"}
    matchers = models["SilenceRequest"]["properties"]["matchers"]
    assert matchers["propertyNames"]["enum"] == list(MATCHER_KEYS)
