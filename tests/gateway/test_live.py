"""Live push over Server-Sent Events, through a real uvicorn server on loopback.

(``httpx.ASGITransport`` buffers whole responses, so an endless stream needs a socket.)
Each caller's stream carries only the alerts of its area; a client that falls behind
is told to resync rather than holding the service's memory.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import orjson
import pytest
import uvicorn

from gateway.api.app import ApiContext, create_app
from gateway.api.live import QUEUE_LIMIT, AlertHub
from gateway.registry import Registry
from gateway.storage.db import open_engine
from tests.auth_helpers import api_context, bearer
from tests.gateway.test_authorization import alert
from tests.helpers import eventually, free_port, fresh_schema


@pytest.fixture
async def served(tmp_path: Path, small_registry: Registry
                 ) -> AsyncIterator[tuple[str, ApiContext]]:
    engine = open_engine(f"sqlite+aiosqlite:///{tmp_path / 'live.db'}")
    await fresh_schema(engine)
    ctx = api_context(engine, small_registry)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(ctx), host="127.0.0.1", port=port,
                                           lifespan="off", log_level="warning"))
    task = asyncio.create_task(server.serve())

    async def started() -> bool:
        return bool(server.started)

    await eventually(started, 10)
    try:
        yield f"http://127.0.0.1:{port}", ctx
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await engine.dispose()


async def events(response: httpx.Response, wanted: int) -> list[tuple[str, dict[str, object]]]:
    """The first ``wanted`` events of a stream (comment lines skipped)."""
    got: list[tuple[str, dict[str, object]]] = []
    name = ""
    async for line in response.aiter_lines():
        if line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: "):
            got.append((name, orjson.loads(line[6:])))
            if len(got) == wanted:
                return got
    return got


async def test_each_stream_carries_only_its_callers_alerts(
        served: tuple[str, ApiContext]) -> None:
    url, ctx = served
    assert ctx.access is not None
    hub = ctx.hub
    assert hub is not None
    town_a = await bearer(ctx.access, "town_a", "town", "370829101")
    ent_b = await bearer(ctx.access, "ent_b", "enterprise", "E320583002")
    async with httpx.AsyncClient(base_url=url, timeout=10) as http:
        async with http.stream("GET", "/api/v1/stream", headers=town_a) as a_stream, \
                http.stream("GET", "/api/v1/stream", headers=ent_b) as b_stream:
            assert a_stream.status_code == 200
            assert a_stream.headers["content-type"].startswith("text/event-stream")

            async def both_listening() -> bool:
                return hub.subscribers == 2

            await eventually(both_listening, 5)
            hub.publish([alert("B"), alert("A")])
            a_events = await asyncio.wait_for(events(a_stream, 2), 5)
            b_events = await asyncio.wait_for(events(b_stream, 2), 5)
        refused = await http.get("/api/v1/stream")
    assert [(name, body.get("id")) for name, body in a_events] == [
        ("hello", None), ("alert", "ALERTA")]
    assert [(name, body.get("id")) for name, body in b_events] == [
        ("hello", None), ("alert", "ALERTB")]
    assert a_events[1][1]["enterprise_id"] == "E370829001"
    assert refused.status_code == 401


async def test_a_slow_client_is_told_to_resync_and_its_backlog_dropped() -> None:
    hub = AlertHub()
    stream = hub.stream(lambda _: True, keepalive_s=5)
    assert b"event: hello" in await anext(stream)
    one = alert("A")
    hub.publish([one] * (QUEUE_LIMIT + 5))  # more than its queue holds
    assert b"event: resync" in await anext(stream)
    hub.publish([alert("B")])  # after the resync, changes flow again
    assert b"ALERTB" in await anext(stream)
    await stream.aclose()
    assert hub.subscribers == 0
