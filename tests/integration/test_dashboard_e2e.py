"""The whole loop in a real browser against the real service and Mosquitto.

An enterprise's safety officer logs in through the form, an over-limit reading is
published on the broker, the alert appears on the board without a reload (live push),
the officer opens it, sees the evidence chart, acknowledges it and finds the
acknowledgement with their name in the audit trail; a town regulator of another town
never sees it.  Screenshots of each step go to ``artifacts/`` for a human to look at.
"""

from __future__ import annotations

from typing import Any

import pytest

from gateway.service import Service
from tests.helpers import ADMIN_PASSWORD, Publisher, api, eventually, now_ts
from tests.integration.conftest import ARTIFACTS

pytestmark = pytest.mark.integration


async def log_in(page: Any, port: int, username: str) -> None:
    await page.goto(f"http://127.0.0.1:{port}/")
    await page.wait_for_selector("#login-form", timeout=10_000)
    await page.fill("#login-username", username)
    await page.fill("#login-password", ADMIN_PASSWORD)
    await page.click("#login-form button[type=submit]")
    await page.wait_for_selector("#alerts", state="attached", timeout=10_000)


async def test_log_in_see_it_live_acknowledge_and_find_it_in_the_audit_trail(
    service: Service, publisher: Publisher, ids: dict[str, str], browser_page: Any
) -> None:
    page, e1 = browser_page, ids["e1"]
    assert service.users is not None
    await service.users.create("officer", ADMIN_PASSWORD, "enterprise", e1,
                               display_name="安全主管 张三")
    await log_in(page, service.api_port or 0, "officer")
    await page.wait_for_selector("#health:has-text('MQTT 已连接')", timeout=10_000)
    await page.evaluate("window.notReloaded = true")
    ARTIFACTS.mkdir(exist_ok=True)

    publisher.send(f"rw/v1/{e1}/{e1}-DC1/telemetry", {"ts": now_ts(), "values": {"dp": 2150}})

    row = page.locator("#alerts tr", has_text="压差")
    await row.first.wait_for(timeout=15_000)
    assert await page.evaluate("window.notReloaded") is True  # pushed, not reloaded
    assert await row.first.locator(".lv2").inner_text() == "橙色"
    await page.screenshot(path=str(ARTIFACTS / "e2e-1-board.png"), full_page=True)

    await row.first.locator("a[href^='#/alerts/']").first.click()
    await page.wait_for_selector("#actions button[data-action=acknowledge]", timeout=10_000)
    await page.wait_for_selector("canvas", timeout=10_000)  # the evidence chart
    # An enterprise acknowledges and feeds back; dispatching and dismissing a false alarm
    # are the regulator's, so those buttons are not offered.
    for regulators_only in ("dispatch", "dismiss"):
        buttons = page.locator(f"#actions button[data-action={regulators_only}]")
        assert await buttons.count() == 0
    await page.fill("#action-comment", "已停机检查滤袋")
    await page.click("#actions button[data-action=acknowledge]")
    acknowledged = page.locator("#history tr", has_text="张三")
    await acknowledged.first.wait_for(timeout=10_000)
    assert "officer" in await acknowledged.first.inner_text()
    await page.screenshot(path=str(ARTIFACTS / "e2e-2-acknowledged.png"), full_page=True)

    async with api(service) as regulator:
        alerts = (await regulator.get("/api/v1/alerts", params={"enterprise": e1})).json()
    threshold = [a for a in alerts["items"] if a["kind"] == "threshold"]
    assert threshold[0]["stage"] == "acknowledged"


async def test_a_regulator_of_another_town_does_not_see_it(
    service: Service, publisher: Publisher, ids: dict[str, str], browser_page: Any
) -> None:
    page, e1 = browser_page, ids["e1"]
    assert service.users is not None
    await service.users.create("elsewhere", ADMIN_PASSWORD, "town", "320583102")
    await log_in(page, service.api_port or 0, "elsewhere")
    await page.wait_for_selector("#health:has-text('MQTT 已连接')", timeout=10_000)

    publisher.send(f"rw/v1/{e1}/{e1}-DC1/telemetry", {"ts": now_ts(), "values": {"dp": 2150}})
    async with api(service) as admin:  # wait until the alert exists for sure
        async def raised() -> bool:
            found = (await admin.get("/api/v1/alerts", params={"enterprise": e1})).json()
            return any(a["kind"] == "threshold" for a in found["items"])

        await eventually(raised, 15)
    await page.wait_for_timeout(1500)  # time for a push that must not come
    assert await page.locator("#alerts tr", has_text="压差").count() == 0
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "e2e-3-other-town.png"), full_page=True)

