"""Notifications end to end: telemetry on the real Mosquitto → alert → routing →
outbox → dispatcher → a real HTTP receiver and the enterprise's MQTT alerts topic;
escalation on the service's clock; a restart in the middle loses and repeats nothing.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from gateway.auth.passwords import FAST, Passwords
from gateway.config import Settings
from gateway.service import Service
from tests.helpers import Publisher, api, eventually, now_ts
from tests.http_receiver import Receiver, running_receiver
from tests.integration.conftest import REGISTRY

pytestmark = pytest.mark.integration

SECRET = "whsec-integration-4f2a"

ROUTING = """
defaults: {{group_wait_s: 0.2, group_interval_s: 1, repeat_interval_s: 3600}}
receivers:
  screen:
    tier: enterprise
    channels: [{{type: mqtt}}]
  duty-desk:
    tier: enterprise
    channels: [{{type: webhook, url: "{base}/desk", secret_env: RW_IT_WEBHOOK_SECRET}}]
  town-station:
    tier: town
    channels: [{{type: webhook, url: "{base}/town"}}]
route:
  receivers: [screen, duty-desk]
  routes:
    - match: {{region: ["370829101"]}}
      receivers: [town-station]
      escalation: {{town_after_s: 1.5}}
"""


@pytest.fixture(scope="module")
def http_receiver() -> Iterator[Receiver]:
    with running_receiver() as receiver:
        yield receiver


@pytest.fixture
def receiver(http_receiver: Receiver) -> Receiver:
    http_receiver.reset()
    return http_receiver


@pytest.fixture
def start(tmp_path: Path, mosquitto: tuple[str, int], ids: dict[str, str],
          database_url: str, receiver: Receiver, monkeypatch: pytest.MonkeyPatch,
          request: pytest.FixtureRequest) -> Callable[[], Any]:
    """Start a service (several times on the same database, for restarts); a test
    marked ``town_after(s)`` escalates to the town after ``s`` seconds."""
    monkeypatch.setenv("RW_IT_WEBHOOK_SECRET", SECRET)
    registry = tmp_path / "registry.yaml"
    registry.write_text(REGISTRY.format(**ids), encoding="utf-8")
    routing = tmp_path / "routing.yaml"
    marker = request.node.get_closest_marker("town_after")
    text = ROUTING.format(base=receiver.url(""))
    if marker is not None:
        text = text.replace("town_after_s: 1.5", f"town_after_s: {marker.args[0]}")
    routing.write_text(text, encoding="utf-8")
    settings = Settings(
        registry=registry, routing=routing,
        broker_url=f"mqtt://{mosquitto[0]}:{mosquitto[1]}",
        mqtt_client_id=f"rw-test-{ids['e1']}", mqtt_session_expiry_s=30,
        db_url=database_url, api_port=0, sweep_interval_s=0.2,
    )

    @asynccontextmanager
    async def running() -> AsyncIterator[Service]:
        svc = Service(settings, passwords=Passwords(FAST))
        task = asyncio.create_task(svc.run())
        await asyncio.wait_for(svc.ready.wait(), 15)
        assert svc.source is not None
        await asyncio.wait_for(svc.source.connected.wait(), 15)
        try:
            yield svc
        finally:
            svc.stop()
            await asyncio.wait_for(task, 20)

    return running


def fire(publisher: Publisher, ids: dict[str, str]) -> None:
    topic = f"rw/v1/{ids['e1']}/{ids['e1']}-DC1/telemetry"
    publisher.send(topic, {"ts": now_ts(), "values": {"dp": 800, "fan_run": 1}})
    publisher.send(topic, {"ts": now_ts(0.1), "values": {"dp": 2150.0}})


def on_path(receiver: Receiver, path: str) -> list[Any]:
    return [r for r in receiver.requests if r.path == path]


async def test_an_alert_reaches_desk_and_screen_then_escalates_to_the_town(
    start: Callable[[], Any], receiver: Receiver, publisher: Publisher,
    ids: dict[str, str], mosquitto: tuple[str, int],
) -> None:
    async with aiomqtt.Client(*mosquitto) as screen, start():
        await screen.subscribe(f"rw/v1/{ids['e1']}/alerts", qos=1)
        fire(publisher, ids)

        async def desk() -> list[Any]:
            return on_path(receiver, "/desk")

        [request] = await eventually(desk)
        body = request.json()
        assert body["reason"] == "firing"
        assert body["alerts"][0]["kind"] == "threshold"
        assert body["subject"].startswith("【橙色预警】")
        signed = f"{request.headers['x-riskwatch-timestamp']}.".encode() + request.body
        expected = hmac.new(SECRET.encode(), signed, hashlib.sha256).hexdigest()
        assert request.headers["x-riskwatch-signature"] == f"sha256={expected}"

        message = await asyncio.wait_for(anext(aiter(screen.messages)), 10)
        shown = json.loads(bytes(message.payload))  # type: ignore[arg-type]
        assert shown["receiver"] == "screen"
        assert [a["id"] for a in shown["alerts"]] == [a["id"] for a in body["alerts"]]

        async def town() -> list[Any]:  # the device_offline that follows may escalate too
            return [r for r in on_path(receiver, "/town")
                    if [a["kind"] for a in r.json()["alerts"]] == ["threshold"]]

        [escalated] = await eventually(town)
        assert escalated.json()["reason"] == "escalated"
        assert escalated.json()["tier"] == "town"


async def test_a_restart_while_the_receiver_is_down_delivers_each_notification_once(
    start: Callable[[], Any], receiver: Receiver, publisher: Publisher,
    ids: dict[str, str],
) -> None:
    receiver.fail_next(1000, 503)
    async with start() as first:
        fire(publisher, ids)

        async def tried() -> bool:
            return len(on_path(receiver, "/desk")) >= 1 and len(on_path(receiver, "/town")) >= 1

        await eventually(tried)
        alert_id = next(a["id"] for r in on_path(receiver, "/desk")
                        for a in r.json()["alerts"] if a["kind"] == "threshold")
        assert first.outbox is not None
        rows = [e for e in await first.outbox.query() if alert_id in e.notification.alert_ids]
        assert {(e.notification.receiver, e.state) for e in rows} == {
            ("screen", "sent"), ("duty-desk", "pending"), ("town-station", "pending")}
    receiver.reset()  # the receiver is back

    async with start() as second:
        async def delivered() -> bool:
            assert second.outbox is not None
            return (await second.outbox.counts())["pending"] == 0

        await eventually(delivered, within_s=30)
        # The device falls silent after the burst, so device_offline alerts follow;
        # the threshold alert's two failed notifications are the ones to follow here.
        about = [r for r in receiver.requests
                 if [a["kind"] for a in r.json()["alerts"]] == ["threshold"]]
        assert sorted(r.path for r in about) == ["/desk", "/town"]
        keys = [r.headers["idempotency-key"] for r in receiver.requests]
        assert len(keys) == len(set(keys))
        assert (await second.outbox.counts())["dead"] == 0
        # Nothing decided twice after the restart: the outbox has one row per decision.
        rows = await second.outbox.query()
        decisions = {(n.alert_ids, n.receiver, n.channel, n.reason)
                     for n in (e.notification for e in rows)}
        assert len(decisions) == len(rows)


async def first_desk_alert(receiver: Receiver) -> str:
    async def desk() -> list[str]:
        return [a["id"] for r in on_path(receiver, "/desk") for a in r.json()["alerts"]
                if a["kind"] == "threshold"]

    ids: list[str] = await eventually(desk)
    return ids[0]


@pytest.mark.town_after(6)
async def test_an_acknowledgement_through_the_api_stops_the_escalation(
    start: Callable[[], Any], receiver: Receiver, publisher: Publisher,
    ids: dict[str, str],
) -> None:
    # The enterprise's own duty officer answers, logged in with its enterprise scope.
    async with start() as svc, api(svc, "duty-officer", "enterprise", ids["e1"]) as client:
        fire(publisher, ids)
        alert_id = await first_desk_alert(receiver)

        answer = await client.post(f"/api/v1/alerts/{alert_id}/acknowledge",
                                   json={"comment": "已电话核实"})
        assert answer.status_code == 200, answer.text
        assert answer.json()["alert"]["state"] == "acknowledged"

        await asyncio.sleep(8)  # past the 6-s town limit
        # The device falls silent after the burst, so its device_offline alert (nobody
        # answers that one) may well reach the town; the acknowledged alert must not.
        told_town = [a["id"] for r in on_path(receiver, "/town") for a in r.json()["alerts"]]
        assert alert_id not in told_town
        history = (await client.get(f"/api/v1/alerts/{alert_id}/history")).json()["items"]
        actions = [(e["actor"], e["action"]) for e in history]
        assert ("system", "created") in actions
        assert ("duty-officer", "acknowledge") in actions
        assert ("system", "escalated") not in actions
        async with api(svc) as regulator:  # who was told is the regulators' to see
            told = (await regulator.get(f"/api/v1/alerts/{alert_id}/notifications")
                    ).json()["items"]
        assert {(n["receiver"], n["reason"], n["state"]) for n in told} == {
            ("screen", "firing", "sent"), ("duty-desk", "firing", "sent")}


async def test_a_silence_mutes_notifications_but_records_them(
    start: Callable[[], Any], receiver: Receiver, publisher: Publisher,
    ids: dict[str, str],
) -> None:
    async with start() as svc, api(svc) as client:
        made = await client.post("/api/v1/silences", json={
            "matchers": {"enterprise": [ids["e1"]]}, "duration_s": 3600,
            "created_by": "county-op", "comment": "停产检修"})
        assert made.status_code == 201, made.text
        fire(publisher, ids)
        assert svc.outbox is not None

        async def muted() -> list[Any]:
            assert svc.outbox is not None
            return [e for e in await svc.outbox.query(state="muted")
                    if e.notification.enterprise_id == ids["e1"]]

        rows = await eventually(muted)
        assert {e.notification.receiver for e in rows} >= {"screen", "duty-desk"}
        await asyncio.sleep(2.5)  # past the town limit too
        assert [r for r in receiver.requests
                if any(a["enterprise_id"] == ids["e1"] for a in r.json()["alerts"])] == []
        alert_id = rows[0].notification.alert_ids[0]
        history = (await client.get(f"/api/v1/alerts/{alert_id}/history")).json()["items"]
        assert "silenced" in {e["action"] for e in history}
