"""``riskwatch demo``: the whole product on one machine with nothing installed.

An in-process MQTT broker (amqtt, MQTT 3.1.1), the built-in sample registry, the basic
simulator publishing over MQTT with incidents on a five-minute cycle, SQLite in a
temporary folder, and the API with its dashboard.  The first alerts appear within a
minute: a dust-collector ΔP above its high-high limit, a gas detector going silent, a
hopper temperature above its limit.

The dashboard can be read without logging in (the demo listens on loopback only); to
act on alerts, log in as one of the demo users printed at start (:data:`DEMO_USERS`, one
per role), all with the same password, random per run unless given.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import tempfile
import time
from importlib import resources
from pathlib import Path

from amqtt.broker import Broker

from gateway.auth.principal import Role
from gateway.auth.users import UserStore
from gateway.config import Settings
from gateway.service import Service
from simulators.basic import BasicSimulator, Excursion, Incident, Outage
from simulators.live import publish_live

log = logging.getLogger(__name__)

CYCLE_S = 300.0
"""The incident script repeats every five minutes so the page stays lively."""


DEMO_USERS: tuple[tuple[str, Role, str | None, str], ...] = (
    ("admin", "admin", None, "平台管理员"),
    ("county", "county", "370829", "县应急管理局 值班员"),
    ("town101", "town", "370829101", "某某镇安监站 安全员"),
    ("E370829001", "enterprise", "E370829001", "某某金属制品有限公司 安全主管"),
)
"""(username, role, scope, display name) of the demo's users: one per role, scoped to
the sample registry's county, first town and first enterprise."""


async def create_demo_users(users: UserStore, password: str) -> list[str]:
    """The demo users that do not exist yet; their names."""
    made = []
    for name, role, scope, display in DEMO_USERS:
        if await users.get(name) is None:
            await users.create(name, password, role, scope, display_name=display)
            made.append(name)
    return made


def demo_registry_path() -> Path:
    return Path(str(resources.files("gateway").joinpath("samples/demo_registry.yaml")))


def demo_incidents(start: float, cycles: int = 288) -> list[Incident]:
    """The scripted incidents, relative to ``start`` (epoch s), for ``cycles`` cycles."""
    incidents: list[Incident] = []
    for cycle in range(cycles):
        t0 = start + cycle * CYCLE_S
        incidents += [
            Excursion("DC1", "dp", t0 + 8, t0 + 120, 2150.0),
            Outage("GAS1", t0 + 10, t0 + 100),
            Excursion("DC2", "hopper_temp", t0 + 40, t0 + 160, 64.5),
            Excursion("IF1-COOL", "pressure", t0 + 150, t0 + 240, 0.15),
        ]
    return incidents


async def run_demo(
    *,
    api_host: str = "127.0.0.1",
    api_port: int = 8000,
    broker_port: int = 1884,
    data_dir: Path | None = None,
    locale: str = "zh",
    password: str | None = None,
    stop: asyncio.Event | None = None,
    started: asyncio.Event | None = None,
) -> None:
    """Run until ``stop`` is set (or the task is cancelled)."""
    folder = data_dir or Path(tempfile.mkdtemp(prefix="riskwatch-demo-"))
    folder.mkdir(parents=True, exist_ok=True)
    for noisy in ("amqtt", "transitions"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    broker = Broker({
        "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{broker_port}"}},
        "plugins": {
            "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True},
        },
    })
    await broker.start()
    registry_path = demo_registry_path()
    settings = Settings(
        registry=registry_path,
        broker_url=f"mqtt://127.0.0.1:{broker_port}",
        db_url=f"sqlite+aiosqlite:///{folder / 'riskwatch.sqlite3'}",
        api_host=api_host,
        api_port=api_port,
        locale=locale,
        mqtt_client_id="riskwatch-demo",
        mqtt_protocol="3.1.1",  # amqtt speaks nothing newer
        sweep_interval_s=1.0,
        # Reading without a login only where nobody else can reach the page.
        api_anonymous_read=api_host in ("127.0.0.1", "localhost", "::1"),
    )
    service = Service(settings)
    start = time.time()
    simulator = BasicSimulator(service.registry.spec, seed=1, incidents=demo_incidents(start))
    service_task = asyncio.create_task(service.run(), name="service")
    publisher = asyncio.create_task(
        publish_live(simulator, "127.0.0.1", broker_port, start=start), name="simulator"
    )
    try:
        ready = asyncio.create_task(service.ready.wait())
        await asyncio.wait({ready, service_task}, return_when=asyncio.FIRST_COMPLETED)
        if service_task.done():
            service_task.result()
        assert service.users is not None
        password = password or secrets.token_urlsafe(9)
        made = await create_demo_users(service.users, password)
        print(f"riskwatch demo: open http://{api_host}:{service.api_port}/  "
              f"(data in {folder}; Ctrl-C stops)", flush=True)
        if made:
            print(f"  log in to act on alerts as {', '.join(made)} "
                  f"(admin, county, town, enterprise), password: {password}", flush=True)
        if started is not None:
            started.set()
        waiter = asyncio.create_task((stop or asyncio.Event()).wait())
        await asyncio.wait({waiter, service_task}, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        if service_task.done():
            service_task.result()
    finally:
        publisher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await publisher
        service.stop()
        with contextlib.suppress(asyncio.CancelledError):
            await service_task
        await broker.shutdown()
