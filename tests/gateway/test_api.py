"""The HTTP API on a real SQLite store, through FastAPI's ASGI app (no sockets)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from alerting import AlertManager, AlertStore, Condition, Subject
from gateway.api.app import create_app
from gateway.ingest.rejections import Reason, Rejection
from gateway.registry import Registry
from gateway.storage.db import open_engine
from gateway.storage.quarantine_store import QuarantineStore
from tests.auth_helpers import api_context, bearer

T0 = 1_795_478_400.0  # 2026-11-24T08:00:00+08:00


def subject(registry: Registry, device_id: str, point: str | None) -> Subject:
    enterprise, _ = registry.device(device_id)
    return Subject(enterprise_id=enterprise.id, enterprise_name=enterprise.name,
                   industry=enterprise.industry, region=tuple(enterprise.region),
                   timezone=enterprise.timezone, device_id=device_id, point=point)


@pytest.fixture
async def client(tmp_path: Path, small_registry: Registry) -> AsyncIterator[httpx.AsyncClient]:
    engine = open_engine(f"sqlite+aiosqlite:///{tmp_path / 'api.db'}")
    alerts, quarantine = AlertStore(engine), QuarantineStore(engine)
    await alerts.create_schema()
    await quarantine.create_schema()
    manager = AlertManager()
    dust = subject(small_registry, "DC1", "dp")
    metal = subject(small_registry, "GD-CO1", None)
    changed = manager.apply([
        Condition(kind="threshold", subject=dust, active=True, level=2, started_at=T0,
                  at=T0 + 30, evidence={}, detail={"band": "hihi", "value": 2100.0,
                                                   "limit": 2000.0}),
        Condition(kind="device_offline", subject=metal, active=True, level=3,
                  started_at=T0 + 3600, at=T0 + 3630, evidence={}, detail={}),
        Condition(kind="device_offline", subject=metal, active=False, level=3,
                  started_at=T0 + 3600, at=T0 + 7200, evidence={}),
    ])
    await alerts.save(changed)
    await quarantine.save([Rejection(Reason.UNKNOWN_POINT, "payload.values.x: not a point",
                                     "rw/v1/E370829001/DC1/telemetry", b'{"x": 1}', T0,
                                     "E370829001", "DC1")])
    ctx = api_context(engine, small_registry, alerts=alerts, quarantine=quarantine)
    transport = httpx.ASGITransport(app=create_app(ctx))
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as http:
        assert ctx.access is not None
        http.headers.update(await bearer(ctx.access, "admin"))
        yield http
    await engine.dispose()


async def ids(client: httpx.AsyncClient, **params: object) -> list[str]:
    response = await client.get("/api/v1/alerts", params=params)  # type: ignore[arg-type]
    assert response.status_code == 200, response.text
    return [f"{a['kind']}/{a['device_id']}" for a in response.json()["items"]]


async def test_alert_filters(client: httpx.AsyncClient) -> None:
    everything = ["device_offline/GD-CO1", "threshold/DC1"]  # newest detected first
    assert await ids(client) == everything
    assert await ids(client, enterprise="E370829001") == ["threshold/DC1"]
    assert await ids(client, region="320583") == ["device_offline/GD-CO1"]
    assert await ids(client, region="370000") == ["threshold/DC1"]
    assert await ids(client, kind="threshold") == ["threshold/DC1"]
    assert await ids(client, level=3) == ["device_offline/GD-CO1"]
    assert await ids(client, state="resolved") == ["device_offline/GD-CO1"]
    # Time range: alerts active at some moment of [since, until).
    assert await ids(client, since="2026-11-24T10:30:00+08:00") == ["threshold/DC1"]
    assert await ids(client, until=int((T0 + 10) * 1000)) == ["threshold/DC1"]
    assert await ids(client, limit=1, offset=1) == ["threshold/DC1"]


async def test_alert_json_is_the_contract_shape(client: httpx.AsyncClient) -> None:
    body = (await client.get("/api/v1/alerts", params={"kind": "threshold"})).json()
    alert = body["items"][0]
    assert body["total"] == 1
    for key in ("id", "enterprise_id", "device_id", "point", "kind", "level", "state",
                "started_at", "detected_at", "resolved_at", "title", "evidence"):
        assert key in alert
    assert alert["started_at"] == "2026-11-24T08:00:00+08:00"
    one = (await client.get(f"/api/v1/alerts/{alert['id']}")).json()
    assert one == alert


@pytest.mark.parametrize(
    ("params", "fragment"),
    [({"since": "yesterday"}, "since"), ({"level": 7}, "level"), ({"region": "37"}, "region"),
     ({"state": "open"}, "state"), ({"limit": 0}, "limit")],
)
async def test_bad_filters_are_clear_422s(
    client: httpx.AsyncClient, params: dict[str, object], fragment: str
) -> None:
    response = await client.get("/api/v1/alerts", params=params)  # type: ignore[arg-type]
    assert response.status_code == 422
    assert fragment in response.text


async def test_unknown_alert_is_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/alerts/nope")
    assert response.status_code == 404
    assert "nope" in response.json()["detail"]


async def test_enterprises_list_devices_and_open_alert_counts(
    client: httpx.AsyncClient,
) -> None:
    items = (await client.get("/api/v1/enterprises")).json()["items"]
    assert [e["id"] for e in items] == ["E370829001", "E320583002"]
    dc1 = items[0]["devices"][0]
    assert dc1 == {"id": "DC1", "kind": "dust_collector", "role": None,
                   "expected_interval_s": 10.0, "points": ["dp", "hopper_temp", "fan_run"],
                   "last_seen": None, "silent": False, "status": None}
    assert items[0]["declared"][0]["state"] == "stopped"
    only = (await client.get("/api/v1/enterprises", params={"region": "320583"})).json()
    assert [e["id"] for e in only["items"]] == ["E320583002"]


async def test_quarantine_health_metrics_page(client: httpx.AsyncClient) -> None:
    rows = (await client.get("/api/v1/quarantine", params={"device": "DC1"})).json()["items"]
    assert rows[0]["reason"] == "unknown_point"
    assert rows[0]["payload"] == '{"x": 1}'
    assert (await client.get("/api/v1/quarantine", params={"reason": "bogus"})).status_code == 422
    health = await client.get("/api/v1/health")
    assert health.status_code == 200
    assert health.json()["database"] == "ok"
    assert "riskwatch_samples_total" in (await client.get("/metrics")).text
    assert "<title>riskwatch" in (await client.get("/")).text  # the dashboard shell
    schema = (await client.get("/openapi.json")).json()
    assert "/api/v1/alerts" in schema["paths"]


async def test_enterprises_and_quarantine_page_with_a_total(client: httpx.AsyncClient) -> None:
    first = (await client.get("/api/v1/enterprises", params={"limit": 1})).json()
    second = (await client.get("/api/v1/enterprises", params={"limit": 1, "offset": 1})).json()
    assert (first["total"], len(first["items"]), len(second["items"])) == (2, 1, 1)
    assert first["items"][0]["id"] != second["items"][0]["id"]
    dust = (await client.get("/api/v1/enterprises", params={"region": "370829"})).json()
    assert [e["id"] for e in dust["items"]] == ["E370829001"]
    assert dust["total"] == 1
    quarantine = (await client.get("/api/v1/quarantine", params={"limit": 1})).json()
    assert (quarantine["total"], quarantine["limit"], len(quarantine["items"])) == (1, 1, 1)
