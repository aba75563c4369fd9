"""The dashboard's pages in a real headless Chromium, against a small fake of the API.

A unit test of ``gateway/static/``: the static files as packaged, mounted with an
in-memory stand-in for the routes they call (login, alerts and their handling, the SSE
stream, enterprises, series, declared periods, silences, quarantine, health) on a
loopback uvicorn in the test's own event loop, so a test can push an alert into the
stream and watch the page. The end-to-end test against the real service and broker
is ``test_page.py``.

Debian's Chromium driven by Playwright, as in ``test_page.py``; screenshots go to
``artifacts/`` for a human to look at.
"""

from __future__ import annotations

import asyncio
import copy
import secrets
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from importlib import resources
from typing import Any

import orjson
import pytest
import uvicorn
from fastapi import Cookie, FastAPI, HTTPException
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles

from alerting.workflow import WorkflowError, contract_state, decide
from tests.helpers import unavailable
from tests.integration.conftest import ARTIFACTS, CHROMIUM_FLAGS

pytestmark = pytest.mark.integration

CST = timezone(timedelta(hours=8))
E1, E2 = "E370829001", "E370883003"
OPERATOR: dict[str, Any] = {"username": "wang", "display_name": "王五", "role": "county",
                            "scope": "370829", "read_only": False, "anonymous": False}
VIEWER: dict[str, Any] = {"username": "viewer", "display_name": "访客", "role": "admin",
                          "scope": None, "read_only": True, "anonymous": False}
ENTERPRISE_USER: dict[str, Any] = {"username": E1, "display_name": "示例五金 安全员",
                                   "role": "enterprise", "scope": E1, "read_only": False,
                                   "anonymous": False}
USERS = {"wang": OPERATOR, "viewer": VIEWER, E1: ENTERPRISE_USER}
PASSWORDS = {"wang": "correct horse", "viewer": "just looking", E1: "our own site"}
REGULATOR_ROLES = {"admin", "county", "town"}


def _iso(ts: float, tz: timezone = CST) -> str:
    return datetime.fromtimestamp(ts, tz).isoformat(timespec="milliseconds")


def make_alert(alert_id: str, *, level: int, enterprise: str = E1, kind: str = "threshold",
               title: str = "", detected: float | None = None) -> dict[str, Any]:
    """An alert as ``Alert.to_json`` writes it, with a threshold rule's evidence."""
    at = time.time() - 60 if detected is None else detected
    window = [[_iso(at - 300 + 20 * i, UTC), 800.0 + 60 * i] for i in range(16)]
    name = {E1: "嘉祥县示例五金制品有限公司", E2: "邹城县示例铸业有限公司"}[enterprise]
    return {
        "id": alert_id, "enterprise_id": enterprise, "device_id": f"{enterprise}-DC1",
        "point": "dp", "kind": kind, "level": level, "state": "firing",
        "started_at": _iso(at - 30), "detected_at": _iso(at), "resolved_at": None,
        "title": title or f"【预警】{name} {enterprise}-DC1 压差超上限",
        "evidence": {"rule": "threshold", "band": "hihi", "value": 1700.0, "limit": 1500.0,
                     "unit": "Pa", "limits": {"lolo": None, "lo": 450.0, "hi": 1300.0,
                                              "hihi": 1500.0},
                     "window": window},
        "region": ["370000", "370800", enterprise[1:7], enterprise[1:7] + "101"],
        "enterprise_name": name, "industry": "dust", "unit": "Pa", "timezone": "Asia/Shanghai",
        "stage": "pending", "assignee": None, "acknowledged_at": None, "closed_at": None,
    }


def make_enterprises(now: float) -> list[dict[str, Any]]:
    def device(dev_id: str, kind: str, seen: float | None) -> dict[str, Any]:
        return {"id": dev_id, "kind": kind, "role": None, "expected_interval_s": 30.0,
                "points": ["dp"], "last_seen": None if seen is None else _iso(seen, UTC),
                "silent": seen is None, "status": None}

    return [
        {"id": E1, "name": "嘉祥县示例五金制品有限公司", "industry": "dust",
         "region": ["370000", "370800", "370829", "370829101"], "timezone": "Asia/Shanghai",
         "declared": [{"state": "stopped", "from": _iso(now - 3600), "to": _iso(now + 86400),
                       "reason": "节假日停产"}],
         # The meter says production during the declared stop: 明停暗开 suspicion.
         "plant_state": {"state": "production", "at": _iso(now - 30, UTC)},
         "supervisors": [], "open_alerts": 1,
         "devices": [device(f"{E1}-DC1", "dust_collector", now - 10),
                     device(f"{E1}-M-L1", "meter", now - 20)]},
        {"id": E2, "name": "邹城县示例铸业有限公司", "industry": "metallurgy",
         "region": ["370000", "370800", "370883", "370883101"], "timezone": "Asia/Shanghai",
         "declared": [], "plant_state": {"state": "standby", "at": _iso(now - 45, UTC)},
         "supervisors": [], "open_alerts": 0,
         "devices": [device(f"{E2}-CW1", "cooling_water", None)]},
    ]


class FakeApi:
    """The routes the pages call, over in-memory data; ``push`` feeds the SSE stream."""

    def __init__(self) -> None:
        now = time.time()
        self.alerts = {a["id"]: a for a in [
            make_alert("a-red", level=1, detected=now - 120),
            make_alert("a-blue", level=4, enterprise=E2, kind="device_offline",
                       title="【蓝色预警】邹城县示例铸业有限公司 设备离线", detected=now - 600),
        ]}
        self.enterprises = make_enterprises(now)
        self.history: dict[str, list[dict[str, Any]]] = {}
        self.silences: list[dict[str, Any]] = []
        self.declared: list[dict[str, Any]] = []  # periods declared through the API
        self.sessions: dict[str, dict[str, Any]] = {}
        self._streams: list[asyncio.Queue[dict[str, Any]]] = []

    def push(self, alert: dict[str, Any]) -> None:
        self.alerts[alert["id"]] = alert
        for queue in self._streams:
            queue.put_nowait(alert)

    @property
    def streams(self) -> int:
        return len(self._streams)

    def user(self, token: str | None) -> dict[str, Any]:
        if token is None or token not in self.sessions:
            raise HTTPException(401)
        return self.sessions[token]

    def app(self) -> FastAPI:
        app = FastAPI()
        static = resources.files("gateway") / "static"
        app.mount("/static", StaticFiles(directory=str(static)), name="static")

        @app.exception_handler(HTTPException)
        async def error_body(_: Any, exc: HTTPException) -> JSONResponse:
            code = {401: "unauthenticated", 404: "not_found"}.get(exc.status_code, "error")
            return JSONResponse({"error": code, "detail": str(exc.detail)}, exc.status_code)

        @app.get("/", response_class=HTMLResponse)
        async def index() -> HTMLResponse:
            return HTMLResponse((static / "index.html").read_text("utf-8"))

        self._auth_routes(app)
        self._alert_routes(app)
        self._other_routes(app)
        self._declared_routes(app)
        return app

    def declare(self, enterprise_id: str, start: float, end: float, reason: str,
                by: str, state: str = "stopped") -> dict[str, Any]:
        """A period as ``POST .../declared`` answers it, kept with its enterprise."""
        period = {"id": f"d{len(self.declared) + 1}", "source": "api", "state": state,
                  "from": _iso(start), "to": _iso(end), "reason": reason, "created_by": by,
                  "created_at": _iso(time.time()), "withdrawn_by": None,
                  "withdrawn_at": None, "enterprise_id": enterprise_id}
        self.declared.append(period)
        return period

    def _declared_routes(self, app: FastAPI) -> None:
        def public(period: dict[str, Any]) -> dict[str, Any]:
            return {k: v for k, v in period.items() if k != "enterprise_id"}

        def invalid(detail: str) -> JSONResponse:
            return JSONResponse({"error": "invalid_period", "detail": detail}, 422)

        @app.get("/api/v1/enterprises/{enterprise_id}/declared")
        async def list_declared(enterprise_id: str,
                                rw_session: str | None = Cookie(None)) -> dict[str, Any]:
            self.user(rw_session)
            own = next(e for e in self.enterprises if e["id"] == enterprise_id)
            items = [{"id": None, "source": "registry", **p} for p in own["declared"]]
            items += [public(p) for p in self.declared if p["enterprise_id"] == enterprise_id]
            return {"items": items}

        @app.post("/api/v1/enterprises/{enterprise_id}/declared", status_code=201)
        async def declare(enterprise_id: str, body: dict[str, Any],
                          rw_session: str | None = Cookie(None)) -> Any:
            user = self.user(rw_session)
            try:
                start = datetime.fromisoformat(body["from"])
                end = datetime.fromisoformat(body["to"])
            except (KeyError, TypeError, ValueError) as exc:
                return invalid(str(exc))
            if start.tzinfo is None or end.tzinfo is None:
                return invalid("a time needs its UTC offset")
            if not start < end:
                return invalid("a declared period must end after it starts")
            if end - start > timedelta(days=366):
                return invalid("a declared period is at most 366 days")
            if end.timestamp() <= time.time():
                return invalid("a declared period must not be over already")
            period = self.declare(enterprise_id, start.timestamp(), end.timestamp(),
                                  body["reason"].strip(), user["display_name"],
                                  body.get("state", "stopped"))
            period["from"], period["to"] = body["from"], body["to"]  # as sent: checked
            return public(period)

        @app.delete("/api/v1/enterprises/{enterprise_id}/declared/{period_id}")
        async def withdraw(enterprise_id: str, period_id: str,
                           rw_session: str | None = Cookie(None)) -> Any:
            user = self.user(rw_session)
            if user["role"] not in REGULATOR_ROLES:
                return JSONResponse({"error": "forbidden",
                                     "detail": "only a regulator withdraws"}, 403)
            period = next(p for p in self.declared if p["id"] == period_id)
            period.update(withdrawn_by=user["display_name"], withdrawn_at=_iso(time.time()))
            return public(period)

    def _auth_routes(self, app: FastAPI) -> None:
        @app.post("/api/v1/auth/login")
        async def login(body: dict[str, str]) -> Response:
            name = body.get("username", "")
            if name not in USERS or PASSWORDS[name] != body.get("password"):
                return JSONResponse({"error": "bad_credentials", "detail": "wrong"}, 401)
            token = secrets.token_urlsafe(16)
            self.sessions[token] = USERS[name]
            response = JSONResponse({"token": token, "user": USERS[name]})
            response.set_cookie("rw_session", token, httponly=True, samesite="strict")
            return response

        @app.get("/api/v1/auth/me")
        async def me(rw_session: str | None = Cookie(None)) -> dict[str, Any]:
            return self.user(rw_session)

        @app.post("/api/v1/auth/logout", status_code=204)
        async def logout(rw_session: str | None = Cookie(None)) -> Response:
            self.sessions.pop(rw_session or "", None)
            response = Response(status_code=204)
            response.delete_cookie("rw_session")
            return response

    def _alert_routes(self, app: FastAPI) -> None:
        @app.get("/api/v1/alerts")
        async def alerts(rw_session: str | None = Cookie(None), enterprise: str | None = None,
                         level: int | None = None, state: str | None = None,
                         kind: str | None = None, limit: int = 100,
                         offset: int = 0) -> dict[str, Any]:
            self.user(rw_session)
            items = sorted(self.alerts.values(), key=lambda a: a["detected_at"], reverse=True)
            items = [a for a in items if (enterprise is None or a["enterprise_id"] == enterprise)
                     and (level is None or a["level"] == level)
                     and (state is None or a["state"] == state)
                     and (kind is None or a["kind"] == kind)]
            return {"items": items[offset:offset + limit], "total": len(items),
                    "limit": limit, "offset": offset}

        @app.get("/api/v1/alerts/{alert_id}")
        async def alert(alert_id: str, rw_session: str | None = Cookie(None)) -> dict[str, Any]:
            self.user(rw_session)
            if alert_id not in self.alerts:
                raise HTTPException(404, f"no alert with id {alert_id!r}")
            return self.alerts[alert_id]

        @app.get("/api/v1/alerts/{alert_id}/history")
        async def history(alert_id: str, rw_session: str | None = Cookie(None)) -> Any:
            self.user(rw_session)
            return {"items": self.history.get(alert_id, [])}

        @app.post("/api/v1/alerts/{alert_id}/{action}")
        async def act(alert_id: str, action: str, body: dict[str, Any],
                      rw_session: str | None = Cookie(None)) -> Any:
            user = self.user(rw_session)
            alert = self.alerts[alert_id]
            try:
                change = decide(alert_id, alert["stage"], action, actor=user["display_name"],
                                at=time.time(), comment=body.get("comment"),
                                assignee=body.get("assignee"), current_assignee=alert["assignee"])
            except WorkflowError as exc:
                status = 409 if exc.code == "invalid_transition" else 422
                return JSONResponse({"error": exc.code, "detail": str(exc)}, status)
            alert = {**alert, "stage": change.stage, "assignee": change.assignee,
                     "state": contract_state(change.stage, alert["resolved_at"] is not None)}
            self.alerts[alert_id] = alert
            e = change.event
            event = {"alert_id": alert_id, "at": _iso(e.at), "actor": e.actor,
                     "action": e.action, "from_stage": e.from_stage, "to_stage": e.to_stage,
                     "comment": e.comment, "data": dict(e.data)}
            self.history.setdefault(alert_id, []).append(event)
            return {"alert": alert, "event": event}

        @app.get("/api/v1/stream")
        async def stream(rw_session: str | None = Cookie(None)) -> StreamingResponse:
            self.user(rw_session)
            queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

            async def events() -> AsyncIterator[bytes]:
                self._streams.append(queue)
                try:
                    yield b"event: hello\ndata: {}\n\n"  # as the real stream does
                    while True:
                        alert = await queue.get()
                        yield b"event: alert\ndata: " + orjson.dumps(alert) + b"\n\n"
                finally:
                    self._streams.remove(queue)

            return StreamingResponse(events(), media_type="text/event-stream")

    def _other_routes(self, app: FastAPI) -> None:
        @app.get("/api/v1/health")
        async def health() -> dict[str, Any]:
            return {"status": "ok", "mqtt": {"connected": True}, "messages": 42,
                    "samples": 420, "quarantined": 1, "open_alerts": len(self.alerts)}

        @app.get("/api/v1/enterprises")
        async def enterprises(rw_session: str | None = Cookie(None)) -> dict[str, Any]:
            user = self.user(rw_session)
            items = copy.deepcopy(self.enterprises)
            if user["role"] == "enterprise":
                items = [e for e in items if e["id"] == user["scope"]]
            for e in items:  # as the service does: the live API periods join the registry's
                e["declared"] += [
                    {"state": p["state"], "from": p["from"], "to": p["to"],
                     "reason": p["reason"], "source": "api", "id": p["id"]}
                    for p in self.declared
                    if p["enterprise_id"] == e["id"] and p["withdrawn_at"] is None]
            return {"items": items}

        @app.get("/api/v1/enterprises/{enterprise_id}/series")
        async def series(enterprise_id: str, rw_session: str | None = Cookie(None),
                         since: int = 0, until: int = 0) -> dict[str, Any]:
            self.user(rw_session)
            t = list(range(since, until, max(60_000, (until - since) // 120)))
            power = [30.0 + (i % 20) for i in range(len(t))]
            dp = [900.0 + 10 * (i % 30) for i in range(len(t))]
            def one(device: str, point: str, unit: str, kind: str, values: list[float],
                    limits: dict[str, float]) -> dict[str, Any]:
                return {"device_id": device, "point": point, "unit": unit, "point_kind": kind,
                        "limits": limits, "t": t, "min": [v - 5 for v in values],
                        "mean": values, "max": [v + 5 for v in values], "last": values}
            return {"enterprise_id": enterprise_id, "resolution_s": 60, "series": [
                one(f"{enterprise_id}-M-L1", "p_kw", "kW", "power", power, {}),
                one(f"{enterprise_id}-DC1", "dp", "Pa", "differential_pressure", dp,
                    {"lo": 450.0, "hi": 1300.0})]}

        @app.get("/api/v1/silences")
        async def silences(rw_session: str | None = Cookie(None)) -> dict[str, Any]:
            self.user(rw_session)
            return {"items": self.silences, "total": len(self.silences), "limit": 200,
                    "offset": 0}

        @app.post("/api/v1/silences", status_code=201)
        async def create_silence(body: dict[str, Any],
                                 rw_session: str | None = Cookie(None)) -> dict[str, Any]:
            user = self.user(rw_session)
            now = time.time()
            silence = {"id": f"s{len(self.silences) + 1}",
                       "matchers": {k: [str(v)] for k, v in body["matchers"].items()},
                       "starts_at": _iso(now), "ends_at": _iso(now + body["duration_s"]),
                       "created_by": user["display_name"], "comment": body["comment"],
                       "created_at": _iso(now), "expired_by": None, "state": "active"}
            self.silences.insert(0, silence)
            return silence

        @app.delete("/api/v1/silences/{silence_id}")
        async def expire_silence(silence_id: str,
                                 rw_session: str | None = Cookie(None)) -> dict[str, Any]:
            user = self.user(rw_session)
            silence = next(s for s in self.silences if s["id"] == silence_id)
            silence.update(state="expired", ends_at=_iso(time.time()),
                           expired_by=user["display_name"])
            return silence

        @app.get("/api/v1/quarantine")
        async def quarantine(enterprise: str, rw_session: str | None = Cookie(None)) -> Any:
            self.user(rw_session)
            items = [] if enterprise != E1 else [{
                "reason": "unknown_point", "detail": "point 'dpp' is not in the registry",
                "topic": f"rw/v1/{E1}/{E1}-DC1/telemetry", "enterprise_id": E1,
                "device_id": f"{E1}-DC1", "received_at": _iso(time.time(), UTC),
                "payload": '{"ts": 1, "values": {"dpp": 3}}', "payload_encoding": "utf-8"}]
            return {"items": items, "limit": 50, "offset": 0}


@pytest.fixture
async def fake() -> AsyncIterator[tuple[FakeApi, str]]:
    """The fake API on a loopback port the OS picks; yields it and its base URL."""
    api = FakeApi()
    config = uvicorn.Config(api.app(), host="127.0.0.1", port=0, log_level="warning",
                            lifespan="off", timeout_graceful_shutdown=1)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    for _ in range(500):
        if server.started or task.done():
            break
        await asyncio.sleep(0.01)
    assert server.started, "uvicorn did not start"
    port = server.servers[0].sockets[0].getsockname()[1]
    yield api, f"http://127.0.0.1:{port}"
    server.should_exit = True
    await asyncio.wait_for(task, 10)


@pytest.fixture
async def page(chromium: str) -> AsyncIterator[Any]:
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        unavailable("playwright not installed (pip install -e '.[dev]')")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium,
                                                   headless=True, args=CHROMIUM_FLAGS)
        tab = await browser.new_page(viewport={"width": 1280, "height": 800})
        errors: list[str] = []
        tab.on("pageerror", lambda exc: errors.append(str(exc)))
        yield tab
        await browser.close()
        assert errors == [], f"uncaught errors in the page: {errors}"


async def log_in(page: Any, base: str, user: str = "wang") -> None:
    await page.goto(f"{base}/")
    await page.wait_for_selector("#login-form", timeout=10_000)
    await page.fill("#login-username", user)
    await page.fill("#login-password", PASSWORDS[user])
    await page.click("#login-form button[type=submit]")
    await page.wait_for_selector("#alerts tr", timeout=10_000)


async def shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / name), full_page=True)


async def test_login_form_posts_and_shows_the_board(fake: tuple[FakeApi, str], page: Any) -> None:
    api, base = fake
    await page.goto(f"{base}/")
    await page.wait_for_selector("#login-form", timeout=10_000)
    await page.fill("#login-username", "wang")
    await page.fill("#login-password", "wrong password")
    await page.click("#login-form button[type=submit]")
    await page.wait_for_selector(".notice.error:has-text('用户名或密码错误')")
    await shot(page, "dashboard-login.png")

    await page.fill("#login-password", PASSWORDS["wang"])
    await page.click("#login-form button[type=submit]")
    red = page.locator("#alerts tr", has_text="嘉祥县示例五金制品有限公司")
    await red.first.wait_for(timeout=10_000)
    assert await red.first.locator(".lv1").inner_text() == "红色"
    assert "预警中" in await red.first.inner_text()
    assert await page.locator("#alerts tr").count() == 2
    await page.wait_for_selector("#health:has-text('MQTT 已连接')")
    assert "王五" in await page.locator("#user").inner_text()
    # The session is the HttpOnly cookie: nothing the page scripts can read.
    assert "rw_session" not in await page.evaluate("document.cookie")
    assert len(api.sessions) == 1
    await shot(page, "dashboard-board.png")


async def test_pushed_alert_appears_without_reload(fake: tuple[FakeApi, str], page: Any) -> None:
    api, base = fake
    await log_in(page, base)
    await page.evaluate("window.notReloaded = true")
    for _ in range(200):  # the page opens the stream after login
        if api.streams:
            break
        await asyncio.sleep(0.05)
    assert api.streams == 1

    api.push(make_alert("a-new", level=2, title="【橙色预警】推送的新预警 压差超上限",
                        detected=time.time()))
    row = page.locator("#alerts tr", has_text="推送的新预警")
    await row.wait_for(timeout=10_000)
    assert await row.locator(".lv2").inner_text() == "橙色"
    assert await page.locator("#alerts tr").first.get_attribute("data-alert-id") == "a-new"
    assert "flash" in (await row.get_attribute("class") or "")
    assert await page.evaluate("window.notReloaded") is True

    # An update of a shown alert replaces its row instead of adding one.
    api.push({**api.alerts["a-new"], "stage": "acknowledged", "state": "acknowledged"})
    await page.wait_for_selector("#alerts tr[data-alert-id='a-new']:has-text('已确认')")
    assert await page.locator("#alerts tr").count() == 3
    await shot(page, "dashboard-pushed.png")


async def test_detail_draws_the_evidence_and_acts(fake: tuple[FakeApi, str], page: Any) -> None:
    api, base = fake
    await log_in(page, base)
    await page.goto(f"{base}/#/alerts/a-red")
    await page.wait_for_selector("#evidence-chart canvas", timeout=15_000)
    assert "压差超上限" in await page.locator("#alert-title").inner_text()
    # Only what the stage "pending" allows.
    offered = await page.locator("#actions button.action").evaluate_all(
        "buttons => buttons.map(b => b.dataset.action)")
    assert offered == ["acknowledge", "dispatch", "dismiss", "comment"]

    await page.click("#actions button[data-action=dispatch]")
    await page.wait_for_selector("#actions .notice.error:has-text('处置人')")
    await page.fill("#action-assignee", "张三")
    await page.click("#actions button[data-action=dispatch]")
    await page.wait_for_selector("#alert-stage:has-text('已派单')")
    await page.wait_for_selector("#history tr:has-text('张三')")
    assert api.alerts["a-red"]["assignee"] == "张三"
    offered = await page.locator("#actions button.action").evaluate_all(
        "buttons => buttons.map(b => b.dataset.action)")
    assert "feedback" in offered
    assert "acknowledge" not in offered
    await shot(page, "dashboard-detail.png")


async def test_read_only_viewer_sees_no_buttons(fake: tuple[FakeApi, str], page: Any) -> None:
    _, base = fake
    await log_in(page, base, user="viewer")
    assert await page.locator("#login-link").inner_text() == "登录"
    await page.goto(f"{base}/#/alerts/a-red")
    await page.wait_for_selector("#evidence-chart canvas", timeout=15_000)
    assert await page.locator("#actions button").count() == 0


async def test_english_switch_changes_texts_and_is_kept(
    fake: tuple[FakeApi, str], page: Any
) -> None:
    _, base = fake
    await log_in(page, base)
    await page.click("#lang")
    await page.wait_for_selector("#nav a:has-text('Alerts')")
    row = page.locator("#alerts tr[data-alert-id='a-red']")
    await page.wait_for_selector("#alerts tr[data-alert-id='a-red'] .lv1:has-text('Red')")
    assert "firing" in await row.inner_text()
    await page.wait_for_selector("#health:has-text('MQTT connected')")
    await page.reload()
    await page.wait_for_selector("#nav a:has-text('Enterprises')", timeout=10_000)
    assert await page.evaluate("document.documentElement.lang") == "en"
    await shot(page, "dashboard-english.png")
    await page.click("#lang")
    await page.wait_for_selector("#nav a:has-text('预警')")


async def test_enterprise_grid_and_page(fake: tuple[FakeApi, str], page: Any) -> None:
    api, base = fake
    await log_in(page, base)
    await page.goto(f"{base}/#/enterprises")
    await page.wait_for_selector("#enterprise-grid .card", timeout=10_000)
    cards = page.locator("#enterprise-grid .card")
    assert await cards.count() == 2
    first = page.locator(f".card[data-enterprise-id='{E1}']")
    assert "risk1" in (await first.get_attribute("class") or "")
    assert "在线" in await first.inner_text()
    assert "申报停产" in await first.inner_text()
    # The meter's verdict with its time, and the declared stop it contradicts flagged.
    plant = first.locator(".chip[data-plant]")
    assert await plant.get_attribute("data-plant") == "production"
    read_at = datetime.fromisoformat(api.enterprises[0]["plant_state"]["at"])
    text = await plant.inner_text()  # the clock of today's reading, on Shanghai's clock
    assert text.startswith("生产 ")
    assert text.endswith(read_at.astimezone(CST).strftime("%H:%M:%S"))
    assert "suspect" in (await first.get_attribute("class") or "")
    assert await first.locator(".chip.suspicion").inner_text() == "⚠ 疑似明停暗开"
    second = page.locator(f".card[data-enterprise-id='{E2}']")
    assert "risk4" in (await second.get_attribute("class") or "")
    assert "离线" in await second.inner_text()
    assert "待机" in await second.locator(".chip[data-plant]").inner_text()
    assert await second.locator(".chip.suspicion").count() == 0
    assert "suspect" not in (await second.get_attribute("class") or "")
    await shot(page, "dashboard-enterprises.png")

    await first.click()
    await page.wait_for_selector("#chart-power canvas", timeout=15_000)
    await page.wait_for_selector(f"#chart-{E1}-DC1 canvas")
    assert await page.locator("#declared tr", has_text="节假日停产").count() == 1
    assert await page.locator("#enterprise-head .chip.suspicion").count() == 1
    await shot(page, "dashboard-enterprise.png")


async def test_silence_created_and_expired(fake: tuple[FakeApi, str], page: Any) -> None:
    api, base = fake
    await log_in(page, base)
    await page.goto(f"{base}/#/silences")
    await page.wait_for_selector("#silence-form", timeout=10_000)
    await page.click("#silence-form button[type=submit]")  # the browser wants a reason
    assert api.silences == []
    await page.fill("#silence-form input[name=comment]", "除尘器停机检修")
    await page.click("#silence-form button[type=submit]")
    await page.wait_for_selector("#silence-form .notice.error:has-text('至少填写一个匹配条件')")
    await page.fill("#silence-form input[name=enterprise]", E1)
    await page.click("#silence-form button[type=submit]")
    row = page.locator("#silences tr[data-silence-id='s1']")
    await row.wait_for(timeout=10_000)
    assert api.silences[0]["matchers"] == {"enterprise": [E1]}
    assert api.silences[0]["created_by"] == "王五"
    await row.locator("button").click()
    await page.wait_for_selector("#silences tr[data-silence-id='s1']:has-text('已结束')")
    await shot(page, "dashboard-silences.png")


async def test_onboarding_shows_devices_and_refusals(fake: tuple[FakeApi, str], page: Any) -> None:
    _, base = fake
    await log_in(page, base)
    await page.goto(f"{base}/#/onboarding")
    section = page.locator(f"#onboarding section[data-enterprise-id='{E1}']")
    await section.locator(".quarantine").wait_for(timeout=10_000)
    assert "unknown_point" in await section.inner_text()
    assert "数据到达: 2/2" in await section.inner_text()
    other = page.locator(f"#onboarding section[data-enterprise-id='{E2}']")
    assert "没有被拒收的消息" in await other.inner_text()
    await shot(page, "dashboard-onboarding.png")


POWER_SPANS = """() => echarts.getInstanceByDom(document.querySelector('#chart-power'))
    .getOption().series[0].markArea.data.length"""


def local_input(ts: float) -> str:
    """A datetime-local value on the enterprise's clock (Asia/Shanghai)."""
    return datetime.fromtimestamp(ts, CST).strftime("%Y-%m-%dT%H:%M")


async def open_enterprise(page: Any, base: str) -> None:
    await page.goto(f"{base}/#/enterprises/{E1}")
    await page.wait_for_selector("#chart-power canvas", timeout=15_000)
    await page.wait_for_selector("#declared tr", timeout=10_000)


async def test_declaring_a_period_adds_it(fake: tuple[FakeApi, str], page: Any) -> None:
    api, base = fake
    await log_in(page, base)
    await open_enterprise(page, base)
    registry = page.locator("#declared tr[data-source=registry]")
    assert "登记" in await registry.inner_text()
    assert await registry.locator("button").count() == 0
    assert await page.evaluate(POWER_SPANS) == 1
    await page.wait_for_selector("#declared-form", state="visible")
    assert "Asia/Shanghai" in await page.locator("#declared-form").inner_text()

    start = time.time() + 2 * 86_400
    await page.fill("#declared-form input[name=from]", local_input(start))
    await page.fill("#declared-form input[name=to]", local_input(start + 3 * 86_400))
    await page.fill("#declared-form input[name=reason]", "春节停产")
    await page.click("#declared-form button[type=submit]")
    row = page.locator("#declared tr[data-source=api]", has_text="春节停产")
    await row.wait_for(timeout=10_000)
    assert len(api.declared) == 1
    sent = api.declared[0]
    # The wall time typed, on the enterprise's clock, with the offset written out.
    assert sent["from"] == local_input(start) + ":00+08:00"
    assert sent["state"] == "stopped"
    assert sent["created_by"] == "王五"
    assert "王五" in await row.inner_text()
    await page.wait_for_selector("#declared-message .notice.ok")
    # The chart's declared spans follow.
    for _ in range(100):
        if await page.evaluate(POWER_SPANS) == 2:
            break
        await asyncio.sleep(0.05)
    assert await page.evaluate(POWER_SPANS) == 2
    await shot(page, "dashboard-declared.png")


async def test_invalid_period_shows_the_detail(fake: tuple[FakeApi, str], page: Any) -> None:
    api, base = fake
    await log_in(page, base)
    await open_enterprise(page, base)
    await page.wait_for_selector("#declared-form", state="visible")
    start = time.time() + 86_400
    await page.fill("#declared-form input[name=from]", local_input(start))
    await page.fill("#declared-form input[name=to]", local_input(start - 3600))
    await page.fill("#declared-form input[name=reason]", "停产整顿")
    await page.click("#declared-form button[type=submit]")
    await page.wait_for_selector(
        "#declared-form .notice.error:has-text('must end after it starts')", timeout=10_000)
    assert api.declared == []
    # What was typed is kept, to be corrected.
    assert await page.input_value("#declared-form input[name=reason]") == "停产整顿"


async def test_only_regulators_withdraw(fake: tuple[FakeApi, str], page: Any) -> None:
    api, base = fake
    now = time.time()
    api.declare(E1, now + 3600, now + 7200, "设备检修停产", by="示例五金 安全员")
    await log_in(page, base, user=E1)
    await open_enterprise(page, base)
    row = page.locator("#declared tr[data-period-id='d1']")
    await row.wait_for(timeout=10_000)
    assert "设备检修停产" in await row.inner_text()
    # The enterprise may declare but not withdraw.
    await page.wait_for_selector("#declared-form", state="visible")
    assert await page.locator("#declared button.withdraw").count() == 0

    await page.context.clear_cookies()
    await log_in(page, base, user="wang")
    await open_enterprise(page, base)
    await row.wait_for(timeout=10_000)
    await row.locator("button.withdraw").click()
    await page.wait_for_selector("#declared tr.withdrawn[data-period-id='d1']", timeout=10_000)
    assert "王五" in await row.locator(".withdrawn-by").inner_text()
    assert await row.locator("button").count() == 0
    decoration = await row.locator("td.struck").first.evaluate(
        "td => getComputedStyle(td).textDecorationLine")
    assert decoration == "line-through"
    assert api.declared[0]["withdrawn_by"] == "王五"
    await shot(page, "dashboard-declared-withdrawn.png")
