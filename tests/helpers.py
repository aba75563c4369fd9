"""Helpers shared by tests: real-server availability, ports, MQTT publishing, polling."""

from __future__ import annotations

import asyncio
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import orjson
import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from gateway.service import Service

CST = timezone(timedelta(hours=8))


def services_required() -> bool:
    return os.environ.get("RISKWATCH_REQUIRE_SERVICES") == "1"


def unavailable(reason: str) -> None:
    """Skip the test, or fail it when CI requires the real services."""
    if services_required():
        pytest.fail(f"{reason} (RISKWATCH_REQUIRE_SERVICES=1)")
    pytest.skip(reason)


def port_open(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Publisher:
    """A paho client as an edge gateway would use it (MQTT 5 by default, QoS 1)."""

    def __init__(self, host: str, port: int, protocol: str = "5") -> None:
        version = MQTTProtocolVersion.MQTTv5 if protocol == "5" else MQTTProtocolVersion.MQTTv311
        self._client = paho.Client(CallbackAPIVersion.VERSION2,
                                   client_id=f"edge-{uuid.uuid4().hex[:8]}", protocol=version)
        self._client.connect(host, port)
        self._client.loop_start()

    def send(self, topic: str, payload: bytes | dict[str, Any]) -> None:
        body = payload if isinstance(payload, bytes) else orjson.dumps(payload)
        self._client.publish(topic, body, qos=1).wait_for_publish(timeout=5)

    def close(self) -> None:
        self._client.loop_stop()
        self._client.disconnect()


def now_ts(offset_s: float = 0.0) -> str:
    return datetime.fromtimestamp(time.time() + offset_s, CST).isoformat(timespec="milliseconds")


async def eventually(check: Callable[[], Awaitable[Any]], within_s: float = 15.0) -> Any:
    """Poll an async check until it returns something truthy."""
    deadline = time.monotonic() + within_s
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within_s} s (last: {result!r})")
        await asyncio.sleep(0.2)


def api(svc: Service) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=f"http://127.0.0.1:{svc.api_port}", timeout=5)
