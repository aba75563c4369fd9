"""The live service end to end on the real Mosquitto: publish with paho, read the API.

Each test runs the whole service (MQTT source, pipeline, SQLite store, uvicorn API on
an ephemeral port) in the test's event loop and talks to it only from outside: paho
publishes on the broker, httpx reads the HTTP API.
"""

from __future__ import annotations

from typing import Any

import pytest

from gateway.service import Service
from tests.helpers import Publisher, api, eventually, now_ts

pytestmark = pytest.mark.integration

async def test_threshold_alert_fires_and_resolves_through_the_api(
    service: Service, publisher: Publisher, ids: dict[str, str]
) -> None:
    topic = f"rw/v1/{ids['e1']}/{ids['e1']}-DC1/telemetry"
    publisher.send(topic, {"ts": now_ts(), "values": {"dp": 800, "fan_run": 1}})
    publisher.send(topic, {"records": [
        {"ts": now_ts(0.1), "values": {"dp": 2150.0}},
        {"ts": now_ts(0.2), "values": {"dp": 2170.0}},
    ]})

    async with api(service) as client:
        async def firing() -> list[dict[str, Any]]:
            body = (await client.get("/api/v1/alerts",
                                     params={"enterprise": ids["e1"], "state": "firing"})).json()
            return list(body["items"])

        alerts = await eventually(firing)
        alert = alerts[0]
        assert alert["kind"] == "threshold"
        assert alert["point"] == "dp"
        assert alert["level"] == 2
        assert alert["title"].startswith("【橙色预警】测试金属制品有限公司")
        assert alert["evidence"]["limit"] == 2000
        assert alert["evidence"]["value"] == 2150
        assert 2150 in [value for _, value in alert["evidence"]["window"]]

        # Region filter reaches the alert from the county code; another county does not.
        by_county = (await client.get("/api/v1/alerts", params={"region": "370829"})).json()
        assert alert["id"] in [a["id"] for a in by_county["items"]]
        other = (await client.get("/api/v1/alerts", params={"region": "320583"})).json()
        assert alert["id"] not in [a["id"] for a in other["items"]]

        publisher.send(topic, {"ts": now_ts(0.5), "values": {"dp": 900.0}})

        async def resolved() -> dict[str, Any] | None:
            got = (await client.get(f"/api/v1/alerts/{alert['id']}")).json()
            return got if got["state"] == "resolved" else None

        done = await eventually(resolved)
        assert done["resolved_at"] is not None

        listing = (await client.get("/api/v1/enterprises")).json()["items"]
        mine = next(e for e in listing if e["id"] == ids["e1"])
        assert mine["devices"][0]["last_seen"] is not None


async def test_bad_input_is_quarantined_and_counted_never_crashing(
    service: Service, publisher: Publisher, ids: dict[str, str]
) -> None:
    e1, e2 = ids["e1"], ids["e2"]
    publisher.send(f"rw/v1/{e1}/{e1}-DC1/telemetry", b"{oops")
    publisher.send(f"rw/v1/{e1}/GHOST/telemetry", {"ts": now_ts(), "values": {"dp": 1}})
    publisher.send(f"rw/v1/{e2}/{e1}-DC1/telemetry", {"ts": now_ts(), "values": {"dp": 1}})
    publisher.send(f"rw/v1/{e1}/{e1}-DC1/telemetry", {"ts": now_ts(3600), "values": {"dp": 1}})
    publisher.send(f"rw/v1/{e1}/{e1}-DC1/telemetry", {"ts": now_ts(), "values": {"dp": "high"}})
    # The service keeps working after all that.
    publisher.send(f"rw/v1/{e1}/{e1}-DC1/telemetry", {"ts": now_ts(), "values": {"dp": 2500}})

    async with api(service) as client:
        async def quarantined() -> set[str]:
            items = (await client.get("/api/v1/quarantine", params={"limit": 50})).json()["items"]
            mine = {q["reason"] for q in items if q["enterprise_id"] in (e1, e2)}
            return mine if len(mine) == 5 else set()

        reasons = await eventually(quarantined)
        assert reasons == {"bad_json", "unknown_device", "device_enterprise_mismatch",
                           "future_timestamp", "bad_value"}

        async def alerted() -> list[Any]:
            return list((await client.get("/api/v1/alerts",
                                          params={"enterprise": e1})).json()["items"])

        assert (await eventually(alerted))[0]["level"] == 2

        metrics = (await client.get("/metrics")).text
        assert 'riskwatch_quarantined_total{reason="bad_json"}' in metrics
        health = await client.get("/api/v1/health")
        assert health.status_code == 200
        assert health.json()["mqtt"]["connected"] is True
        assert health.json()["quarantined"] >= 5  # the shared broker may carry others


async def test_silent_device_raises_device_offline(
    service: Service, publisher: Publisher, ids: dict[str, str]
) -> None:
    e2 = ids["e2"]
    publisher.send(f"rw/v1/{e2}/{e2}-GAS1/telemetry", {"ts": now_ts(), "values": {"co": 3.0}})
    async with api(service) as client:
        async def offline() -> list[Any]:
            items = (await client.get("/api/v1/alerts", params={
                "enterprise": e2, "kind": "device_offline"})).json()["items"]
            return [a for a in items if a["device_id"] == f"{e2}-GAS1"]

        alert = (await eventually(offline, within_s=20))[0]
        assert alert["level"] == 3
        assert "离线" in alert["title"]
        assert alert["evidence"]["timeout_s"] == 3.0

        publisher.send(f"rw/v1/{e2}/{e2}-GAS1/telemetry", {"ts": now_ts(), "values": {"co": 3.1}})

        async def back() -> bool:
            got = (await client.get(f"/api/v1/alerts/{alert['id']}")).json()
            return bool(got["state"] == "resolved")

        await eventually(back)
