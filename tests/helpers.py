"""Helpers shared by tests: real-server availability, ports, MQTT publishing, polling,
and a private Mosquitto that a test may stop and restart."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import orjson
import paho.mqtt.client as paho
import pytest
import sqlalchemy as sa
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from sqlalchemy.ext.asyncio import AsyncEngine

from alerting.migrate import migrate
from gateway.auth.principal import Role
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


class PrivateBroker:
    """A throwaway Mosquitto on a loopback port, for tests that must stop and restart it.

    The shared broker on 1883 has to stay up for every other test, so reconnect and
    session tests run their own.  Constructing one skips the test (or fails it under
    ``RISKWATCH_REQUIRE_SERVICES=1``) when the ``mosquitto`` binary is missing, so a
    fixture never gets as far as a broker it cannot start.
    """

    def __init__(self, folder: Path, port: int, *, persistence: bool = False,
                 extra_config: tuple[str, ...] = ()) -> None:
        """Write the config into ``folder`` (created if needed); call :meth:`start` to run.

        With ``persistence`` the broker keeps sessions and queued QoS 1 messages in
        ``folder`` across a restart, as a production broker would; without it a restart
        forgets every session, which is what a "broker came back empty" test wants.
        ``extra_config``: more ``mosquitto.conf`` lines, e.g. the queue limits of
        ``deploy/mosquitto/riskwatch.conf``.
        """
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not Path(binary).exists():
            unavailable("mosquitto binary not installed (apt-get install mosquitto)")
        self._binary = binary
        self.port = port
        folder.mkdir(parents=True, exist_ok=True)
        self._config = folder / "mosquitto.conf"
        lines = [f"listener {port} 127.0.0.1", "allow_anonymous true"]
        if persistence:
            lines += ["persistence true", f"persistence_location {folder}/"]
            # Started as root, mosquitto drops to its own user, who cannot write the
            # persistence file into a root-owned tmp folder.
            if os.geteuid() == 0:
                lines.append("user root")
        else:
            lines.append("persistence false")
        lines += extra_config
        self._config.write_text("\n".join(lines) + "\n", encoding="utf-8")
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Run the broker and return once it accepts connections (10 s at most)."""
        process = subprocess.Popen([self._binary, "-c", str(self._config)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self._process = process
        deadline = time.monotonic() + 10
        while not port_open("127.0.0.1", self.port, timeout=0.2):
            # Fail at once if it died (bad config, port taken), and never leave a
            # half-started broker behind for the next test to trip over.
            if process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"private mosquitto did not start on port {self.port}")
            time.sleep(0.05)

    def stop(self) -> None:
        """Terminate the broker and wait for it, so a restart can bind the port again."""
        if self._process is not None:
            self._process.terminate()
            self._process.wait(10)
            self._process = None


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


ADMIN_PASSWORD = "integration-admin-pw"


async def login_headers(svc: Service, username: str = "admin", role: Role = "admin",
                        scope: str | None = None) -> dict[str, str]:
    """A bearer token of ``username`` on a running service (made with ``role`` first)."""
    assert svc.users is not None, "the service is not running"
    if await svc.users.get(username) is None:
        await svc.users.create(username, ADMIN_PASSWORD, role, scope)
    session = await svc.users.login(username, ADMIN_PASSWORD)
    assert session is not None
    return {"Authorization": f"Bearer {session.token}"}


@asynccontextmanager
async def api(svc: Service, username: str = "admin", role: Role = "admin",
              scope: str | None = None) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client of the running service, logged in (as an admin by default)."""
    headers = await login_headers(svc, username, role, scope)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{svc.api_port}", timeout=5,
                                 headers=headers) as client:
        yield client


async def drop_everything(engine: AsyncEngine) -> None:
    """Drop every table of the test database (a PostgreSQL one is shared by a module)."""
    def drop(conn: sa.Connection) -> None:
        found = sa.MetaData()
        found.reflect(conn)
        found.drop_all(conn)

    async with engine.begin() as conn:
        await conn.run_sync(drop)


async def fresh_schema(engine: AsyncEngine) -> None:
    """An empty database at the newest migration."""
    await drop_everything(engine)
    await migrate(engine)
