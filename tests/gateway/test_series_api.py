"""The series route, mounted alone on an app, against SQLite and PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncEngine

from detectors.base import SampleBatch
from gateway.api.access import ApiError
from gateway.api.series import series_router
from gateway.pipeline import Pipeline
from gateway.registry import Registry
from gateway.storage.history import PointHistory
from gateway.storage.point_minutes import PointMinuteStore

T0 = 1_795_478_400.0  # a minute boundary
MS = int(T0 * 1000)
DP, TEMP, FAN, CO = 0, 1, 2, 11
E1 = "E370829001"  # DC1 (dp, hopper_temp, fan_run), M-TOTAL (p_kw, e_kwh)


@dataclass
class Context:
    registry: Registry
    engine: AsyncEngine
    pipeline: Pipeline


@dataclass
class World:
    client: httpx.AsyncClient
    history: PointHistory
    store: PointMinuteStore
    registry: Registry


@pytest.fixture
async def world(engine: AsyncEngine, small_registry: Registry) -> AsyncIterator[World]:
    history = PointHistory(small_registry.index, grace_s=0)
    app = FastAPI()

    @app.exception_handler(ApiError)
    async def _error(_: Request, exc: ApiError) -> JSONResponse:
        return exc.response()

    app.include_router(series_router(Context(small_registry, engine,
                                             Pipeline(small_registry)), history=history))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield World(client, history, PointMinuteStore(engine), small_registry)


async def get(world: World, enterprise: str = E1, **params: str) -> httpx.Response:
    return await world.client.get(f"/api/v1/enterprises/{enterprise}/series", params=params)


async def test_minutes_come_from_the_table_and_the_open_minutes(world: World) -> None:
    world.history.observe(SampleBatch.from_arrays(
        [DP, DP, DP, TEMP], [T0 + 1, T0 + 2, T0 + 61, T0 + 5], [800.0, 900.0, 1000.0, 40.0]))
    await world.store.save(world.history.take_closed(T0 + 60), world.registry.index)
    # Still in memory: minute 1 of dp, and a late dp sample for the stored minute 0.
    world.history.observe(SampleBatch.from_arrays([DP], [T0 + 0.5], [500.0]))

    response = await get(world, since=str(MS), until=str(MS + 3_600_000))

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["enterprise_id"] == E1
    assert body["resolution_s"] == 60
    by_key = {(s["device_id"], s["point"]): s for s in body["series"]}
    assert list(by_key) == [("DC1", "dp"), ("DC1", "hopper_temp"), ("DC1", "fan_run"),
                            ("M-TOTAL", "p_kw"), ("M-TOTAL", "e_kwh")]
    dp = by_key[("DC1", "dp")]
    assert dp["t"] == [MS, MS + 60_000]
    assert dp["min"] == [500.0, 1000.0]
    assert dp["max"] == [900.0, 1000.0]
    assert dp["mean"] == [pytest.approx(733.333, abs=1e-3), 1000.0]
    assert dp["last"] == [900.0, 1000.0]  # the late sample is older than the last
    assert dp["count"] == [3, 1]
    assert dp["unit"] == "Pa"
    assert dp["point_kind"] == "differential_pressure"
    assert dp["limits"] == {"lolo": None, "lo": 300.0, "hi": 1500.0, "hihi": 2000.0}
    assert by_key[("DC1", "fan_run")]["limits"] is None
    assert by_key[("DC1", "fan_run")]["t"] == []
    assert by_key[("DC1", "hopper_temp")]["mean"] == [40.0]


async def test_filters_and_range(world: World) -> None:
    world.history.observe(SampleBatch.from_arrays(
        [DP, DP, TEMP], [T0 + 1, T0 + 3601, T0 + 2], [1.0, 2.0, 3.0]))
    await world.store.save(world.history.take_all(), world.registry.index)

    response = await get(world, device="DC1", point="dp",
                         since="2026-11-24T08:30:00+08:00", until="2026-11-24T10:00:00+08:00")

    assert response.status_code == 200, response.text
    [dp] = response.json()["series"]
    assert (dp["device_id"], dp["point"], dp["t"], dp["last"]) == (
        "DC1", "dp", [MS + 3_600_000], [2.0])
    other = (await get(world, "E320583002", point="p_kw", since=str(MS),
                       until=str(MS + 60_000))).json()["series"]
    assert [(s["device_id"], s["point"], s["t"]) for s in other] == [("M-FURNACE1", "p_kw", [])]


async def test_raw_samples_from_the_memory_window(world: World) -> None:
    world.history.observe(SampleBatch.from_arrays(
        [DP, DP, DP, TEMP], [T0 + 20, T0 + 10, T0 + 5000, T0 + 1], [2.0, 1.0, 9.0, 40.0]))

    response = await get(world, resolution="raw", device="DC1", since=str(MS),
                         until=str(MS + 3_600_000))

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["resolution_s"] == 0
    dp, temp, fan = body["series"]
    assert (dp["point"], dp["t"], dp["value"]) == ("dp", [MS + 10_000, MS + 20_000], [1.0, 2.0])
    assert (temp["t"], temp["value"]) == ([MS + 1000], [40.0])
    assert (fan["t"], fan["value"]) == ([], [])
    assert "mean" not in dp


async def test_default_range_is_the_last_six_hours(world: World) -> None:
    now = time.time()
    world.history.observe(SampleBatch.from_arrays(
        [CO, CO], [now - 7 * 3600, now - 60], [1.0, 2.0]))

    response = await get(world, "E320583002", resolution="raw", device="GD-CO1")

    [co] = response.json()["series"]
    assert co["value"] == [2.0]


@pytest.mark.parametrize(("enterprise", "params", "status", "code"), [
    ("E-NONE", {}, 404, "enterprise_not_found"),
    (E1, {"device": "GD-CO1"}, 404, "device_not_found"),  # another enterprise's
    (E1, {"device": "DC1", "point": "co"}, 404, "point_not_found"),
    (E1, {"since": "yesterday"}, 422, "invalid_time"),
    (E1, {"since": str(MS), "until": str(MS)}, 422, "invalid_time"),
    (E1, {"since": str(MS), "until": str(MS + 8 * 86_400_000)}, 422, "range_too_long"),
])
async def test_errors(world: World, enterprise: str, params: dict[str, str], status: int,
                      code: str) -> None:
    response = await get(world, enterprise, **params)

    assert response.status_code == status, response.text
    assert response.json()["error"] == code
    assert response.json()["detail"]


async def test_resolution_is_validated(world: World) -> None:
    response = await get(world, resolution="5m")

    assert response.status_code == 422
