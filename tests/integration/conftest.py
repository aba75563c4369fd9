"""Fixtures for integration tests: a live service on the real broker, a publisher."""

from __future__ import annotations

import asyncio
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.auth.passwords import FAST, Passwords
from gateway.config import Settings
from gateway.service import Service
from tests.helpers import Publisher, unavailable

REGISTRY = """
enterprises:
  - id: {e1}
    name: 测试金属制品有限公司
    industry: dust
    region: ["370000", "370800", "370829", "370829101"]
    devices:
      - id: {e1}-DC1
        kind: dust_collector
        expected_interval_s: 1
        points:
          dp:
            {{ kind: differential_pressure, unit: Pa, lo: 300, hi: 1500, hihi: 2000,
              on_delay_s: 0, deadband: 20 }}
          fan_run: {{ kind: run_state }}
  - id: {e2}
    name: 测试铸造有限公司
    industry: metallurgy
    region: ["320000", "320500", "320583", "320583102"]
    devices:
      - id: {e2}-GAS1
        kind: gas_detector
        expected_interval_s: 1
        points:
          co: {{ kind: co, unit: ppm, hi: 25, hihi: 50 }}
"""


@pytest.fixture
def ids() -> dict[str, str]:
    tag = uuid.uuid4().hex[:6].upper()
    return {"e1": f"T{tag}A", "e2": f"T{tag}B"}


@pytest.fixture
async def service(
    tmp_path: Path, mosquitto: tuple[str, int], ids: dict[str, str], database_url: str
) -> AsyncIterator[Service]:
    registry = tmp_path / "registry.yaml"
    registry.write_text(REGISTRY.format(**ids), encoding="utf-8")
    settings = Settings(
        registry=registry,
        broker_url=f"mqtt://{mosquitto[0]}:{mosquitto[1]}",
        mqtt_client_id=f"rw-test-{ids['e1']}",
        mqtt_session_expiry_s=30,  # do not leave sessions behind on the shared broker
        db_url=database_url,
        api_port=0,
        sweep_interval_s=0.5,
    )
    svc = Service(settings, passwords=Passwords(FAST))
    task = asyncio.create_task(svc.run())
    await asyncio.wait_for(svc.ready.wait(), 15)
    assert svc.source is not None
    await asyncio.wait_for(svc.source.connected.wait(), 15)
    yield svc
    svc.stop()
    await asyncio.wait_for(task, 15)


@pytest.fixture
def publisher(mosquitto: tuple[str, int]) -> Iterator[Publisher]:
    pub = Publisher(*mosquitto)
    yield pub
    pub.close()


# --- a real browser: Debian's Chromium driven by Playwright --------------------------------

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture
def chromium() -> str:
    executable = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(executable).exists():
        unavailable("Chromium not installed (apt-get install chromium)")
    return executable


@pytest.fixture
async def browser_page(chromium: str) -> AsyncIterator[Any]:
    executable = chromium
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        unavailable("playwright not installed (pip install -e '.[dev]')")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=executable,
                                                   headless=True, args=CHROMIUM_FLAGS)
        page = await browser.new_page(viewport={"width": 1280, "height": 720})
        yield page
        await browser.close()
