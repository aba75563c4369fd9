"""The alert page in a real headless Chromium: an operator logs in through the form and
an alert published on the broker shows up on the board without a reload.

Debian's Chromium driven by Playwright (``executable_path=/usr/bin/chromium``; the
machines cannot download Playwright's own browser builds).  A screenshot is kept in
``artifacts/`` for a human to look at.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gateway.service import Service
from tests.helpers import ADMIN_PASSWORD, Publisher, now_ts
from tests.integration.conftest import ARTIFACTS

pytestmark = pytest.mark.integration



@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """The page does not depend on the store: SQLite is enough here."""
    return f"sqlite+aiosqlite:///{tmp_path / 'rw.sqlite3'}"


async def test_alert_appears_on_the_page(
    service: Service, publisher: Publisher, ids: dict[str, str], browser_page: Any
) -> None:
    page = browser_page
    assert service.users is not None
    await service.users.create("operator", ADMIN_PASSWORD, "admin")
    await page.goto(f"http://127.0.0.1:{service.api_port}/")
    await page.wait_for_selector("#login-form", timeout=10_000)
    await page.fill("#login-username", "operator")
    await page.fill("#login-password", ADMIN_PASSWORD)
    await page.click("#login-form button[type=submit]")
    await page.wait_for_selector("#alerts", state="attached", timeout=10_000)
    await page.wait_for_selector("#health:has-text('MQTT 已连接')", timeout=10_000)
    await page.evaluate("window.notReloaded = true")
    # Devices of the test registry report every second and have not reported yet, so
    # device-offline rows may already be there on a slow machine; no limit alarm is.
    assert await page.locator("#alerts tr", has_text="压差").count() == 0

    e1 = ids["e1"]
    publisher.send(f"rw/v1/{e1}/{e1}-DC1/telemetry", {"ts": now_ts(), "values": {"dp": 2150}})

    # The device goes silent after this one sample, so a newer offline row of the same
    # enterprise may come first: pick the limit alarm's row.
    row = page.locator("#alerts tr", has_text="测试金属制品有限公司").filter(has_text="压差")
    await row.first.wait_for(timeout=15_000)
    assert await row.first.locator(".lv2").inner_text() == "橙色"
    assert "压差" in await row.first.inner_text()
    assert "预警中" in await row.first.inner_text()
    assert await page.evaluate("window.notReloaded") is True
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "alert-page.png"), full_page=True)
