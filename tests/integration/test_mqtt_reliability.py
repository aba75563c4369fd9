"""Reconnect and persistent sessions, on a private Mosquitto the test can restart.

The shared broker on 1883 must stay up for other tests, so these start their own
``mosquitto`` on a free loopback port (the Debian binary CI installs).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.auth.passwords import FAST, Passwords
from gateway.config import Settings
from gateway.service import Service
from tests.helpers import PrivateBroker, Publisher, api, eventually, free_port, now_ts

pytestmark = pytest.mark.integration

REGISTRY = """
enterprises:
  - id: E1
    name: 测试金属制品有限公司
    industry: dust
    region: ["370000", "370800", "370829"]
    devices:
      - id: DC1
        kind: dust_collector
        expected_interval_s: 60
        points:
          dp: { kind: differential_pressure, unit: Pa, hi: 1500, on_delay_s: 0 }
"""


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[PrivateBroker]:
    """Without persistence: a broker restart forgets every session, so the service must
    resubscribe on its own."""
    private = PrivateBroker(tmp_path, free_port())
    private.start()
    yield private
    private.stop()


def settings_for(tmp_path: Path, port: int) -> Settings:
    registry = tmp_path / "registry.yaml"
    registry.write_text(REGISTRY, encoding="utf-8")
    return Settings(
        registry=registry, broker_url=f"mqtt://127.0.0.1:{port}",
        mqtt_client_id="rw-reliability", db_url=f"sqlite+aiosqlite:///{tmp_path / 'rw.db'}",
        api_port=0, sweep_interval_s=0.5,
    )


async def start(settings: Settings) -> tuple[Service, asyncio.Task[None]]:
    service = Service(settings, passwords=Passwords(FAST))
    task = asyncio.create_task(service.run())
    await asyncio.wait_for(service.ready.wait(), 15)
    assert service.source is not None
    await asyncio.wait_for(service.source.connected.wait(), 15)
    return service, task


async def alert_count(service: Service) -> int:
    async with api(service) as client:
        return int((await client.get("/api/v1/alerts")).json()["total"])


async def test_reconnects_after_the_broker_restarts(
    tmp_path: Path, broker: PrivateBroker
) -> None:
    service, task = await start(settings_for(tmp_path, broker.port))
    assert service.source is not None
    broker.stop()
    await eventually(lambda: _async(not service.source.connected.is_set()), within_s=10)
    async with api(service) as client:
        assert (await client.get("/api/v1/health")).status_code == 503  # degraded, not dead
    broker.start()
    await eventually(lambda: _async(service.source.connected.is_set()), within_s=30)
    assert service.source.connections == 2

    publisher = Publisher("127.0.0.1", broker.port)
    publisher.send("rw/v1/E1/DC1/telemetry", {"ts": now_ts(), "values": {"dp": 1800}})
    publisher.close()
    assert await eventually(lambda: alert_count(service)) == 1
    service.stop()
    await asyncio.wait_for(task, 15)


async def test_messages_sent_while_the_service_is_down_are_not_lost(
    tmp_path: Path, broker: PrivateBroker
) -> None:
    settings = settings_for(tmp_path, broker.port)
    service, task = await start(settings)
    service.stop()
    await asyncio.wait_for(task, 15)

    # The persistent session keeps our QoS 1 subscription while we are away.
    publisher = Publisher("127.0.0.1", broker.port)
    publisher.send("rw/v1/E1/DC1/telemetry", {"ts": now_ts(), "values": {"dp": 1900}})
    publisher.close()

    service, task = await start(settings)
    assert await eventually(lambda: alert_count(service)) == 1
    service.stop()
    await asyncio.wait_for(task, 15)


async def _async(value: bool) -> bool:
    return value


async def test_auto_protocol_falls_back_to_311_on_a_broker_without_mqtt5() -> None:
    from amqtt.broker import Broker

    from gateway.config import BrokerAddress
    from gateway.ingest.mqtt_source import MqttSource

    port = free_port()
    broker = Broker({
        "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{port}"}},
        "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
    })
    await broker.start()
    received: list[str] = []

    async def flush() -> None:
        return None

    def on_message(topic: str, payload: bytes) -> int:
        received.append(topic)
        return 1

    source = MqttSource(BrokerAddress("127.0.0.1", port, False, None, None),
                        client_id="rw-fallback", on_message=on_message, flush=flush,
                        connect_timeout_s=1.0)
    task = asyncio.create_task(source.run())
    try:
        await asyncio.wait_for(source.connected.wait(), 15)
        assert source.protocol == "3.1.1"
        # paho blocks; the in-process broker needs this loop free meanwhile.
        def publish() -> None:
            publisher = Publisher("127.0.0.1", port, protocol="3.1.1")
            publisher.send("rw/v1/E1/DC1/telemetry", b"{}")
            publisher.close()

        await asyncio.to_thread(publish)
        await eventually(lambda: _async(bool(received)), within_s=10)
        assert received == ["rw/v1/E1/DC1/telemetry"]
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await broker.shutdown()


async def test_restart_restores_open_alerts_so_nothing_is_raised_twice(
    tmp_path: Path, broker: PrivateBroker
) -> None:
    settings = settings_for(tmp_path, broker.port)
    service, task = await start(settings)
    publisher = Publisher("127.0.0.1", broker.port)
    publisher.send("rw/v1/E1/DC1/telemetry", {"ts": now_ts(), "values": {"dp": 1800}})
    assert await eventually(lambda: alert_count(service)) == 1
    service.stop()
    await asyncio.wait_for(task, 15)

    service, task = await start(settings)
    publisher.send("rw/v1/E1/DC1/telemetry", {"ts": now_ts(1), "values": {"dp": 1850}})
    await eventually(lambda: _async(service.pipeline.stats.samples >= 1), within_s=10)
    assert service.pipeline.alerts.stats["deduplicated"] + service.pipeline.alerts.stats[
        "updated"] == 1
    assert await alert_count(service) == 1
    publisher.close()
    service.stop()
    await asyncio.wait_for(task, 15)
