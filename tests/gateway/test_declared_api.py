"""Declared production status (停产) through the API, and its effect on hidden operation.

The routes run through the ASGI app on SQLite and PostgreSQL; the effect is shown on a
real :class:`Pipeline` fed contract messages: production on a meter is nothing while
no stop is declared, and becomes a hidden-operation alert once a stop covering it is
declared through the API (the service's hook hands the stops over).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import pytest

from gateway.api.app import ApiContext, create_app
from gateway.ingest.decode import MessageDecoder
from gateway.pipeline import Pipeline
from gateway.registry import Registry
from gateway.storage.db import open_engine
from gateway.storage.declared_store import DeclaredStore
from tests.auth_helpers import api_context, bearer
from tests.helpers import fresh_schema

METAL = "E320583002"  # no declared stop in the registry
DUST = "E370829001"  # declared stopped 2026-11-20 .. 11-27 in the registry


@dataclass
class Api:
    http: httpx.AsyncClient
    ctx: ApiContext
    changed: list[int]


@pytest.fixture
async def api(database_url: str, small_registry: Registry) -> AsyncIterator[Api]:
    engine = open_engine(database_url)
    await fresh_schema(engine)
    ctx = api_context(engine, small_registry)
    assert ctx.access is not None
    await ctx.quarantine.create_schema()
    changed: list[int] = []

    async def hook() -> None:
        changed.append(1)

    ctx.on_declared_changed = hook
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(ctx)),
                                 base_url="http://api") as http:
        http.headers.update(await bearer(ctx.access, "ent_metal", "enterprise", METAL))
        yield Api(http, ctx, changed)
    await engine.dispose()


def period(**changes: Any) -> dict[str, Any]:
    now = time.time()
    body = {"state": "stopped", "from": int(now * 1000),
            "to": int((now + 7 * 86_400) * 1000), "reason": "停产整顿"}
    return {**body, **changes}


async def test_an_enterprise_declares_a_stop_and_a_regulator_withdraws_it(api: Api) -> None:
    made = await api.http.post(f"/api/v1/enterprises/{METAL}/declared", json=period())
    assert made.status_code == 201, made.text
    body = made.json()
    assert (body["source"], body["state"], body["reason"]) == ("api", "stopped", "停产整顿")
    assert body["created_by"] == "ent_metal"
    assert body["from"].endswith("+08:00")
    assert api.changed == [1]

    listed = (await api.http.get(f"/api/v1/enterprises/{METAL}/declared")).json()["items"]
    assert [p["id"] for p in listed] == [body["id"]]
    grid = (await api.http.get("/api/v1/enterprises")).json()["items"]
    assert [(d["source"], d["reason"]) for d in grid[0]["declared"]] == [("api", "停产整顿")]

    # Withdrawing is the regulator's: the enterprise may not take its word back.
    refused = await api.http.delete(f"/api/v1/enterprises/{METAL}/declared/{body['id']}")
    assert refused.status_code == 403
    assert api.ctx.access is not None
    town = await bearer(api.ctx.access, "town_metal", "town", "320583102")
    gone = await api.http.delete(f"/api/v1/enterprises/{METAL}/declared/{body['id']}",
                                 headers=town)
    assert gone.status_code == 200
    assert gone.json()["withdrawn_by"] == "town_metal"
    assert api.changed == [1, 1]
    kept = (await api.http.get(f"/api/v1/enterprises/{METAL}/declared")).json()["items"]
    assert kept[0]["withdrawn_at"] is not None  # withdrawn, never deleted
    grid = (await api.http.get("/api/v1/enterprises")).json()["items"]
    assert grid[0]["declared"] == []  # no longer in force


async def test_the_registrys_declarations_are_listed_read_only(
        api: Api, small_registry: Registry) -> None:
    assert api.ctx.access is not None
    county = await bearer(api.ctx.access, "county_dust", "county", "370829")
    items = (await api.http.get(f"/api/v1/enterprises/{DUST}/declared",
                                headers=county)).json()["items"]
    assert items == [{"id": None, "source": "registry", "state": "stopped",
                      "from": "2026-11-20T00:00:00+08:00", "to": "2026-11-27T00:00:00+08:00",
                      "reason": "停产整顿", "created_by": None, "created_at": None,
                      "withdrawn_by": None, "withdrawn_at": None}]


@pytest.mark.parametrize(("changes", "fragment"), [
    ({"to": 1_000}, "end after it starts"),
    ({"from": 1_000, "to": 2_000}, "over already"),
    ({"to": int((time.time() + 400 * 86_400) * 1000)}, "at most"),
    ({"from": "yesterday"}, "from"),
])
async def test_bad_periods_are_422_invalid_period(api: Api, changes: dict[str, Any],
                                                  fragment: str) -> None:
    response = await api.http.post(f"/api/v1/enterprises/{METAL}/declared",
                                   json=period(**changes))
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "invalid_period"
    assert api.changed == []


async def test_another_enterprises_declarations_do_not_exist_for_it(api: Api) -> None:
    for method in ("GET", "POST"):
        response = await api.http.request(method, f"/api/v1/enterprises/{DUST}/declared",
                                          json=period() if method == "POST" else None)
        assert response.status_code == 404


# --- the effect: hidden operation judges against stops declared through the API ---------

T0 = 1_796_083_200.0  # 2026-12-01T00:00:00+08:00, no registry stop for the metal site


def furnace_messages(pipeline: Pipeline, hours: float, kw: float, start: float) -> list[Any]:
    decoder = MessageDecoder(pipeline.registry.index, max_future_s=1e12)
    alerts = []
    for minute in range(int(hours * 60)):
        ts = start + minute * 60.0
        decoder.feed(f"rw/v1/{METAL}/M-FURNACE1/meter",
                     orjson.dumps({"ts": int(ts * 1000), "values": {"p_kw": kw}}), ts)
        if minute % 10 == 9:
            alerts += pipeline.process(decoder.take())
            alerts += pipeline.advance(ts)
    return alerts


async def test_production_in_a_stop_declared_through_the_api_is_hidden_operation(
        database_url: str, small_registry: Registry) -> None:
    engine = open_engine(database_url)
    await fresh_schema(engine)
    try:
        store = DeclaredStore(engine)
        pipeline = Pipeline(small_registry)
        # Two days of honest work and rest teach the meter its floor and level.
        for day in range(2):
            base = T0 + day * 86_400
            furnace_messages(pipeline, 8, 600.0, base + 8 * 3600)
            furnace_messages(pipeline, 1, 5.0, base + 17 * 3600)
        quiet = furnace_messages(pipeline, 3, 600.0, T0 + 2 * 86_400 + 8 * 3600)
        assert not [a for a in quiet if a.kind == "hidden_operation"]  # nothing declared

        stop_from = T0 + 3 * 86_400
        await store.create(METAL, "stopped", stop_from, stop_from + 5 * 86_400, "春节停产",
                           "ent_metal", now=stop_from - 3600)
        pipeline.set_declared_stops(await store.stops())  # what the service hook does
        night = furnace_messages(pipeline, 3, 600.0, stop_from + 20 * 3600)
        hidden = [a for a in night if a.kind == "hidden_operation"]
        assert len(hidden) == 1
        assert hidden[0].subject.enterprise_id == METAL
        assert hidden[0].evidence["declared"]["reason"] == "春节停产"
    finally:
        await engine.dispose()
