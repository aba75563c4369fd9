"""Who may call which route: every route, every role, every denied case, as a table.

The small registry has two enterprises in two counties: E370829001 (county 370829,
town 370829101, the "A" side) and E320583002 (county 320583, town 320583102, the "B"
side).  Each side has an alert, a silence and a dead notification; users of each role
and side call every route.  A route added later without a row here fails
:func:`test_every_api_route_is_in_the_table`, and one without an authentication
dependency fails :func:`test_every_route_refuses_a_caller_without_a_login`.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from alerting import Alert, Subject, fingerprint
from alerting.notification import Notification, notification_key
from alerting.outbox import Outbox
from alerting.silence_store import SilenceStore
from alerting.silences import Silence
from alerting.workflow import contract_state
from gateway.api.access import ANONYMOUS_VIEWER
from gateway.api.app import ApiContext, create_app
from gateway.ingest.rejections import Reason, Rejection
from gateway.registry import Registry
from gateway.storage.db import open_engine
from gateway.storage.declared_store import DeclaredStore
from tests.auth_helpers import api_context, bearer
from tests.helpers import fresh_schema

T0 = 1_795_478_400.0
SIDES = {
    "A": ("E370829001", ("370000", "370800", "370829", "370829101")),
    "B": ("E320583002", ("320000", "320500", "320583", "320583102")),
}
USERS: dict[str, tuple[Any, str | None]] = {
    "admin": ("admin", None),
    "county_a": ("county", "370829"), "county_b": ("county", "320583"),
    "town_a": ("town", "370829101"), "town_b": ("town", "320583102"),
    "ent_a": ("enterprise", "E370829001"), "ent_b": ("enterprise", "E320583002"),
}
PUBLIC = {"/api/v1/health", "/metrics", "/api/v1/auth/login", "/api/v1/auth/logout", "/"}


def alert(side: str, *, stage: str = "pending") -> Alert:
    enterprise, region = SIDES[side]
    who = Subject(enterprise_id=enterprise, enterprise_name=f"企业{side}", industry="dust",
                  region=region, timezone="Asia/Shanghai", device_id="DC1", point="dp")
    return Alert(id=f"ALERT{side}", fingerprint=fingerprint("threshold", enterprise, "DC1", "dp"),
                 kind="threshold", subject=who, level=2, state=contract_state(stage, False),
                 started_at=T0, detected_at=T0 + 30, resolved_at=None, updated_at=T0 + 30,
                 title=f"【橙色预警】企业{side} 除尘器压差超上上限", evidence={}, stage=stage)


def dead_note(side: str) -> Notification:
    enterprise, _ = SIDES[side]
    ids = (f"ALERT{side}",)
    return Notification(
        key=notification_key(list(ids), "desk", "sms", "firing", 0), alert_ids=ids,
        enterprise_id=enterprise, receiver="desk", tier="enterprise", channel="sms",
        reason="firing", locale="zh", subject="s", body="b", payload={}, created_at=T0)


@dataclass
class World:
    app: Any
    ctx: ApiContext
    headers: dict[str, dict[str, str]]
    notes: dict[str, str]


@pytest.fixture
async def world(database_url: str, small_registry: Registry) -> AsyncIterator[World]:
    engine = open_engine(database_url)
    await fresh_schema(engine)
    ctx = api_context(engine, small_registry)
    assert ctx.access is not None
    await ctx.quarantine.create_schema()
    await ctx.alerts.save([alert("A"), alert("B")])
    now = time.time()
    for side, (enterprise, _) in SIDES.items():
        await SilenceStore(engine).create(Silence(
            id=f"SIL{side}", matchers={"enterprise": (enterprise,)}, starts_at=now - 60,
            ends_at=now + 3600, created_by="admin", comment="检修", created_at=now - 60))
        await ctx.quarantine.save([Rejection(
            Reason.UNKNOWN_POINT, "payload.values.x: not a point",
            f"rw/v1/{enterprise}/DC1/telemetry", b'{"x": 1}', T0, enterprise, "DC1")])
    outbox = Outbox(engine)
    notes = {}
    for side in SIDES:
        note = dead_note(side)
        await outbox.enqueue([note])
        await outbox.mark_failed(note.key, "refused", retry_at=None)
        notes[side] = note.key
    declared = DeclaredStore(engine)
    for side, (enterprise, _) in SIDES.items():
        made = await declared.create(enterprise, "stopped", now + 86_400, now + 2 * 86_400,
                                     "停产整顿", "admin")
        notes[f"P{side}"] = made.id
    headers = {name: await bearer(ctx.access, name, role, scope)
               for name, (role, scope) in USERS.items()}
    yield World(create_app(ctx), ctx, headers, notes)
    await engine.dispose()


async def call(world: World, user: str | None, method: str, path: str,
               body: dict[str, Any] | None = None) -> httpx.Response:
    for key in ("A", "B", "PA", "PB"):  # {NA}: A's dead notification, {NPA}: A's period
        path = path.replace("{N" + key + "}", world.notes[key])
    headers = world.headers[user] if user else {}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=world.app),
                                 base_url="http://api", headers=headers) as http:
        return await http.request(method, path, json=body)


SILENCE_A = {"matchers": {"enterprise": "E370829001"}, "duration_s": 600, "comment": "检修"}
SILENCE_B = {"matchers": {"enterprise": "E320583002"}, "duration_s": 600, "comment": "检修"}
SILENCE_ANY = {"matchers": {"kind": "threshold"}, "duration_s": 600, "comment": "全部"}
SILENCE_COUNTY_A = {"matchers": {"region": "370829"}, "duration_s": 600, "comment": "全县"}
DECLARE = {"state": "stopped", "from": "2099-01-01T00:00:00+08:00",
           "to": "2099-01-05T00:00:00+08:00", "reason": "春节停产"}
NEW_USER = {"username": "new-town", "password": "long-enough-pw", "role": "town",
            "scope": "370829102"}

# (user, method, path, body, status): the denied cases, and enough allowed ones to show
# that each denial is about scope or role, not a broken route.
TABLE: list[tuple[str, str, str, dict[str, Any] | None, int]] = [
    # alerts: list and one alert
    ("ent_a", "GET", "/api/v1/alerts?enterprise=E320583002", None, 403),
    ("ent_a", "GET", "/api/v1/alerts?region=320583", None, 403),
    ("town_a", "GET", "/api/v1/alerts?region=320583", None, 403),
    ("town_a", "GET", "/api/v1/alerts?enterprise=E320583002", None, 403),
    ("county_b", "GET", "/api/v1/alerts?region=370829101", None, 403),
    ("town_a", "GET", "/api/v1/alerts?region=370829", None, 200),  # narrowed to its town
    ("ent_a", "GET", "/api/v1/alerts/ALERTB", None, 404),
    ("town_a", "GET", "/api/v1/alerts/ALERTB", None, 404),
    ("county_a", "GET", "/api/v1/alerts/ALERTB", None, 404),
    ("county_b", "GET", "/api/v1/alerts/ALERTA", None, 404),
    ("ent_b", "GET", "/api/v1/alerts/ALERTB", None, 200),
    # handling
    ("ent_a", "POST", "/api/v1/alerts/ALERTB/acknowledge", {}, 404),
    ("town_a", "POST", "/api/v1/alerts/ALERTB/acknowledge", {}, 404),
    ("county_b", "POST", "/api/v1/alerts/ALERTA/comment", {"comment": "x"}, 404),
    ("ent_a", "POST", "/api/v1/alerts/ALERTA/dispatch", {"assignee": "张三"}, 403),
    ("ent_a", "POST", "/api/v1/alerts/ALERTA/verify", {}, 403),
    ("ent_a", "POST", "/api/v1/alerts/ALERTA/close", {}, 403),
    ("ent_a", "POST", "/api/v1/alerts/ALERTA/dismiss", {"comment": "误报"}, 403),
    ("ent_a", "POST", "/api/v1/alerts/ALERTA/reject", {"comment": "x"}, 403),
    ("ent_a", "POST", "/api/v1/alerts/ALERTA/acknowledge", {}, 200),
    ("town_b", "POST", "/api/v1/alerts/ALERTB/dispatch", {"assignee": "张三"}, 200),
    ("ent_a", "GET", "/api/v1/alerts/ALERTB/history", None, 404),
    ("town_a", "GET", "/api/v1/alerts/ALERTB/history", None, 404),
    ("ent_b", "GET", "/api/v1/alerts/ALERTB/history", None, 200),
    # silences: regulators of the area only
    ("ent_a", "GET", "/api/v1/silences", None, 403),
    ("ent_a", "POST", "/api/v1/silences", SILENCE_A, 403),
    ("ent_a", "GET", "/api/v1/silences/SILA", None, 403),
    ("ent_a", "DELETE", "/api/v1/silences/SILA", None, 403),
    ("town_a", "POST", "/api/v1/silences", SILENCE_B, 403),
    ("town_a", "POST", "/api/v1/silences", SILENCE_ANY, 403),
    ("town_a", "POST", "/api/v1/silences", SILENCE_COUNTY_A, 403),  # wider than its town
    ("county_a", "POST", "/api/v1/silences", SILENCE_COUNTY_A, 201),
    ("town_a", "POST", "/api/v1/silences", SILENCE_A, 201),
    ("town_a", "GET", "/api/v1/silences/SILB", None, 404),
    ("county_b", "DELETE", "/api/v1/silences/SILA", None, 404),
    ("county_a", "GET", "/api/v1/silences/SILA", None, 200),
    # notifications: regulators of the area only
    ("ent_a", "GET", "/api/v1/notifications", None, 403),
    ("ent_a", "GET", "/api/v1/alerts/ALERTA/notifications", None, 403),
    ("ent_a", "POST", "/api/v1/notifications/{NA}/retry", None, 403),
    ("town_a", "GET", "/api/v1/notifications?enterprise=E320583002", None, 403),
    ("town_a", "GET", "/api/v1/alerts/ALERTB/notifications", None, 404),
    ("county_a", "POST", "/api/v1/notifications/{NB}/retry", None, 404),
    ("county_b", "POST", "/api/v1/notifications/{NB}/retry", None, 200),
    # registry and quarantine
    ("ent_a", "GET", "/api/v1/enterprises?region=320583", None, 403),
    ("town_b", "GET", "/api/v1/enterprises?region=370829", None, 403),
    ("ent_a", "GET", "/api/v1/quarantine?enterprise=E320583002", None, 403),
    ("county_a", "GET", "/api/v1/quarantine?enterprise=E320583002", None, 403),
    ("ent_a", "GET", "/api/v1/quarantine?enterprise=E370829001", None, 200),
    # point history
    ("ent_a", "GET", "/api/v1/enterprises/E320583002/series", None, 404),
    ("town_b", "GET", "/api/v1/enterprises/E370829001/series", None, 404),
    ("county_a", "GET", "/api/v1/enterprises/E370829001/series", None, 200),
    # declared production status: enterprises declare, regulators also withdraw
    ("ent_a", "GET", "/api/v1/enterprises/E320583002/declared", None, 404),
    ("ent_a", "POST", "/api/v1/enterprises/E320583002/declared", DECLARE, 404),
    ("town_b", "POST", "/api/v1/enterprises/E370829001/declared", DECLARE, 404),
    ("ent_a", "POST", "/api/v1/enterprises/E370829001/declared", DECLARE, 201),
    ("ent_a", "DELETE", "/api/v1/enterprises/E370829001/declared/{NPA}", None, 403),
    ("town_b", "DELETE", "/api/v1/enterprises/E370829001/declared/{NPA}", None, 404),
    ("county_b", "DELETE", "/api/v1/enterprises/E320583002/declared/{NPA}", None, 404),
    ("town_a", "DELETE", "/api/v1/enterprises/E370829001/declared/{NPA}", None, 200),
    ("county_a", "GET", "/api/v1/enterprises/E370829001/declared", None, 200),
    # users: administrators only
    ("county_a", "GET", "/api/v1/users", None, 403),
    ("town_a", "POST", "/api/v1/users", NEW_USER, 403),
    ("ent_a", "PATCH", "/api/v1/users/ent_b", {"disabled": True}, 403),
    ("admin", "POST", "/api/v1/users", NEW_USER, 201),
    ("admin", "PATCH", "/api/v1/users/ent_b", {"display_name": "乙"}, 200),
    # who am I, and the live stream (its scope is tested in test_live.py)
    ("ent_a", "GET", "/api/v1/auth/me", None, 200),
]


@pytest.mark.parametrize(("user", "method", "path", "body", "status"), TABLE,
                         ids=[f"{u}-{m}-{p}" for u, m, p, _, _ in TABLE])
async def test_the_table(world: World, user: str, method: str, path: str,
                         body: dict[str, Any] | None, status: int) -> None:
    response = await call(world, user, method, path, body)

    assert response.status_code == status, response.text
    if status in (401, 403, 404):
        assert set(response.json()) == {"error", "detail"}  # one error shape everywhere


def _route_templates(world: World) -> set[tuple[str, str]]:
    """Every documented route (routers are included lazily, so ``app.routes`` does not
    list them; the OpenAPI schema does)."""
    return {(method.upper(), path) for path, item in world.app.openapi()["paths"].items()
            if path not in PUBLIC for method in item}


def _template_of(path: str) -> str:
    path = path.split("?")[0]
    path = re.sub(r"/alerts/ALERT[AB]/(\w+)$", r"/alerts/{alert_id}/\1", path)
    path = re.sub(r"/alerts/ALERT[AB]/(acknowledge|dispatch|verify|close|dismiss|reject|"
                  r"comment|feedback)$", r"/alerts/{alert_id}/{action}", path)
    path = re.sub(r"/alerts/ALERT[AB]$", "/alerts/{alert_id}", path)
    path = re.sub(r"/silences/SIL[AB]$", "/silences/{silence_id}", path)
    path = re.sub(r"/enterprises/E\d+/series$", "/enterprises/{enterprise_id}/series", path)
    path = re.sub(r"/enterprises/E\d+/declared$", "/enterprises/{enterprise_id}/declared",
                  path)
    path = re.sub(r"/enterprises/E\d+/declared/\{NP[AB]\}$",
                  "/enterprises/{enterprise_id}/declared/{period_id}", path)
    path = re.sub(r"/notifications/\{N[AB]\}/retry$", "/notifications/{key}/retry", path)
    return re.sub(r"/users/[\w-]+$", "/users/{username}", path)


def test_every_api_route_is_in_the_table(world: World) -> None:
    covered = set()
    for _, method, path, _, _ in TABLE:
        template = _template_of(path)
        if template.endswith("/{alert_id}/history") or template.endswith(
                "/{alert_id}/notifications"):
            covered.add((method, template))
        elif "/alerts/{alert_id}/" in template:
            covered.add((method, "/api/v1/alerts/{alert_id}/{action}"))
        else:
            covered.add((method, template))
    untested = _route_templates(world) - covered - {("GET", "/api/v1/stream")}
    assert not untested, f"routes without a row in TABLE: {sorted(untested)}"


def _example_path(template: str) -> str:
    return (template.replace("{alert_id}", "ALERTA").replace("{action}", "acknowledge")
            .replace("{silence_id}", "SILA").replace("{key}", "{NA}")
            .replace("{username}", "ent_a").replace("{enterprise_id}", "E370829001")
            .replace("{period_id}", "{NPA}"))


async def test_every_route_refuses_a_caller_without_a_login(world: World) -> None:
    templates = sorted(_route_templates(world))
    assert len(templates) >= 15
    for method, template in templates:
        body = {} if method in ("POST", "PATCH") else None
        response = await call(world, None, method, _example_path(template), body)
        assert response.status_code == 401, (method, template, response.text)
        assert response.json()["error"] == "unauthenticated"


async def test_a_stale_or_forged_token_is_refused(world: World) -> None:
    world.headers["forged"] = {"Authorization": "Bearer not-a-real-token"}
    response = await call(world, "forged", "GET", "/api/v1/alerts")
    assert (response.status_code, response.json()["error"]) == (401, "unauthenticated")


async def test_lists_hold_only_the_callers_area(world: World) -> None:
    async def ids(user: str, path: str, key: str = "id") -> list[str]:
        response = await call(world, user, "GET", path)
        assert response.status_code == 200, response.text
        return sorted(item[key] for item in response.json()["items"])

    assert await ids("admin", "/api/v1/alerts") == ["ALERTA", "ALERTB"]
    for user, side in (("county_a", "A"), ("town_a", "A"), ("ent_a", "A"),
                       ("county_b", "B"), ("town_b", "B"), ("ent_b", "B")):
        enterprise = SIDES[side][0]
        assert await ids(user, "/api/v1/alerts") == [f"ALERT{side}"], user
        assert await ids(user, "/api/v1/enterprises") == [enterprise], user
        assert await ids(user, "/api/v1/quarantine", "enterprise_id") == [enterprise], user
        if not user.startswith("ent"):
            assert await ids(user, "/api/v1/silences") == [f"SIL{side}"], user
            assert await ids(user, "/api/v1/notifications", "enterprise_id") == [enterprise]


async def test_the_anonymous_viewer_reads_but_never_acts(world: World) -> None:
    assert world.ctx.access is not None
    world.ctx.access.anonymous = ANONYMOUS_VIEWER
    assert (await call(world, None, "GET", "/api/v1/alerts")).status_code == 200
    me = (await call(world, None, "GET", "/api/v1/auth/me")).json()
    assert (me["anonymous"], me["read_only"]) == (True, True)
    for method, path, body in (("POST", "/api/v1/alerts/ALERTA/acknowledge", {}),
                               ("POST", "/api/v1/silences", SILENCE_A),
                               ("POST", "/api/v1/users", NEW_USER)):
        response = await call(world, None, method, path, body)
        assert (response.status_code, response.json()["error"]) == (401, "unauthenticated")


async def test_login_logout_and_disabled_users(world: World) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=world.app),
                                 base_url="http://api") as http:
        wrong = await http.post("/api/v1/auth/login",
                                json={"username": "ent_a", "password": "wrong-password"})
        nobody = await http.post("/api/v1/auth/login",
                                 json={"username": "nobody", "password": "wrong-password"})
        assert wrong.json() == nobody.json()  # the answer does not reveal names
        assert (wrong.status_code, wrong.json()["error"]) == (401, "bad_credentials")

        from tests.auth_helpers import PASSWORD
        ok = await http.post("/api/v1/auth/login",
                             json={"username": "ent_a", "password": PASSWORD})
        assert ok.status_code == 200
        assert ok.json()["user"]["scope"] == "E370829001"
        assert "httponly" in ok.headers["set-cookie"].lower()
        assert (await http.get("/api/v1/auth/me")).json()["username"] == "ent_a"  # cookie
        assert (await http.post("/api/v1/auth/logout")).status_code == 204
        http.cookies.clear()
        assert (await http.get("/api/v1/auth/me",
                               headers={"Authorization": f"Bearer {ok.json()['token']}"})
                ).status_code == 401  # logged out: the token is dead

    disable = await call(world, "admin", "PATCH", "/api/v1/users/ent_b", {"disabled": True})
    assert disable.json()["disabled"] is True
    assert (await call(world, "ent_b", "GET", "/api/v1/alerts")).status_code == 401
    own = await call(world, "admin", "PATCH", "/api/v1/users/admin", {"disabled": True})
    assert (own.status_code, own.json()["error"]) == (422, "invalid_user")


async def test_the_openapi_schema_is_valid_and_documents_every_error_shape(
        world: World) -> None:
    from openapi_spec_validator import validate

    schema = world.app.openapi()
    validate(schema)  # raises on an invalid OpenAPI 3.1 document
    assert len(schema["paths"]) >= 15
    for path, item in schema["paths"].items():
        for method, op in item.items():
            where = f"{method.upper()} {path}"
            if path not in PUBLIC:
                assert "401" in op["responses"], f"{where}: 401 undocumented"
            ok = op["responses"].get("200") or op["responses"].get("201")
            if ok is None or path in ("/metrics", "/api/v1/stream"):
                continue  # 204, Prometheus text, an event stream
            body = ok["content"]["application/json"]["schema"]
            assert "$ref" in body, f"{where}: its answer has no schema"
    unknown = await call(world, "admin", "GET", "/api/v1/nothing-here")
    assert unknown.json() == {"error": "not_found", "detail": "Not Found"}
    invalid = await call(world, "admin", "GET", "/api/v1/alerts?level=9")
    assert invalid.json()["error"] == "invalid_request"
    assert isinstance(invalid.json()["detail"], list)
