"""`riskwatch demo` keeps its promise: everything embedded, first alert within 60 s."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx

from gateway.demo import run_demo
from tests.helpers import eventually, free_port


async def test_demo_shows_its_first_alert_within_a_minute(tmp_path: Path) -> None:
    stop, started = asyncio.Event(), asyncio.Event()
    api_port, broker_port = free_port(), free_port()
    began = time.monotonic()
    demo = asyncio.create_task(run_demo(
        api_port=api_port, broker_port=broker_port, data_dir=tmp_path, stop=stop,
        started=started,
    ))
    try:
        await asyncio.wait_for(started.wait(), 30)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{api_port}") as client:
            page = await client.get("/")
            assert page.status_code == 200
            assert "<title>riskwatch" in page.text  # the dashboard shell

            async def first_alert() -> list[dict[str, Any]]:
                return list((await client.get("/api/v1/alerts")).json()["items"])

            alerts = await eventually(first_alert, within_s=60)
            elapsed = time.monotonic() - began
            assert elapsed < 60
            # The scripted incidents, not devices silent for want of a broker connection.
            assert {(a["kind"], a["device_id"]) for a in alerts} <= {
                ("threshold", "DC1"), ("device_offline", "GAS1"), ("threshold", "DC2")}
            assert alerts[0]["title"].startswith("【")  # Chinese title by default
            health = (await client.get("/api/v1/health")).json()
            assert health["mqtt"] == {"connected": True, "protocol": "3.1.1",
                                      "connections": 1, "last_error": None}
            assert health["samples"] > 0
    finally:
        stop.set()
        await asyncio.wait_for(demo, 30)
    assert (tmp_path / "riskwatch.sqlite3").exists()
