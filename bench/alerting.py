"""Alerting throughput and notification latency, on SQLite and PostgreSQL (issue 5).

Two questions, each answered on every database asked for (``--db``):

1. **How many alert transitions per second get through the store and the outbox?**
   ``--alerts`` conditions over ``--enterprises`` enterprises go through
   :class:`~alerting.manager.AlertManager` and :class:`~alerting.engine.
   NotificationEngine` with a routing tree of the shape a county deploys (the
   enterprise's screen over MQTT and a duty-desk webhook; town stations and county
   bureaus by region; a maintenance silence on 2 % of the enterprises).  Each alert is
   created (orange), raised to red and resolved: three transitions.  Deciding is in
   memory and timed apart; what is timed is writing each batch the way
   :class:`~gateway.storage.writer.StoreWriter` writes it: :meth:`AlertStore.save`,
   :meth:`HandlingStore.record_events`, :meth:`Outbox.enqueue` of the notifications,
   then of the muted ones.  Batch sizes (``--batch-sizes``, alerts per batch) are
   reported one by one, because the per-transaction cost (commit, fsync, round trips)
   and the per-row cost (the upsert, JSON) weigh differently in each.  Separately,
   workflow actions through :meth:`HandlingStore.act` (acknowledge, dispatch, feedback,
   verify, close on distinct alerts), one at a time and from ``--tasks`` concurrent
   tasks.
2. **How long from "in the outbox" to "at the receiver"?**  A
   :class:`~alerting.dispatcher.Dispatcher` (the service's defaults: 8 sends in flight,
   claims of up to 32) sends through :class:`~alerting.channels.webhook.WebhookSender`
   channels (HMAC-signed, one shared pooled ``httpx`` client as in the service) to a
   real HTTP server on loopback (:class:`TimedReceiver`).  A burst of ``--burst``
   notifications over ``--receivers`` receivers is enqueued in one write, the
   dispatcher woken, and each notification's latency is its arrival minus the wake-up;
   then ``--fanouts`` single alerts, each to ``--fanout-receivers`` x
   ``--fanout-channels`` channels, one after the other.

SQLite runs as the service opens it (:func:`gateway.storage.db.open_engine`: WAL,
``synchronous=NORMAL``) on a file in a temporary folder; PostgreSQL on a throwaway
database ``rw_bench_<random>`` created next to ``RISKWATCH_TEST_PG_URL`` (default
``postgresql+asyncpg://postgres@127.0.0.1:5432/postgres``) and dropped afterwards;
when the server cannot be reached that database is skipped, with the reason printed.
``--sync-off`` adds a run of the store figures with commit durability off
(``synchronous=OFF``, ``synchronous_commit=off``), to tell fsync apart from the rest.

Run from the repository root::

    python -m bench.alerting            # both databases, about a minute

The functions :func:`run_transitions`, :func:`run_workflow` and :func:`run_fanout`
return their figures, so ``tests/bench/test_alerting_bench.py`` runs them with tiny
sizes as a smoke test.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import platform
import resource
import secrets
import socket
import sqlite3
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import sqlalchemy as sa
import uvicorn
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

if __package__ in (None, ""):  # run as a file: put the repository on the path
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from alerting.channels.config import WebhookChannel
from alerting.channels.webhook import WebhookSender
from alerting.dispatcher import Dispatcher, Outcome
from alerting.engine import EngineOutput, NotificationEngine
from alerting.handling_store import HandlingStore
from alerting.manager import AlertManager
from alerting.messages import build_notification
from alerting.migrate import migrate
from alerting.models import Alert, Condition, Subject
from alerting.notification import Channel, Notification
from alerting.outbox import Outbox, OutboxEntry
from alerting.routing import RoutingConfig, RoutingTree
from alerting.silences import Silence
from alerting.store import AlertStore
from alerting.timefmt import format_ts
from gateway.storage.db import open_engine

T0 = 1_795_478_400.0
"""2026-11-24T08:00:00+08:00: event time of the first alert."""

TZ = "Asia/Shanghai"
PROVINCE, CITY = "370000", "370800"
WEBHOOK_SECRET = "whsec-bench-7c1d"
"""Signs the webhook calls to the loopback receiver (HMAC costs what it costs live)."""

GROUP_STEPS: tuple[tuple[str, float], ...] = (
    ("create", 0.0),       # conditions fire, orange: alerts created, "created" events
    ("group flush", 30.0),  # group_wait over: screen and desk told
    ("raise", 60.0),       # same conditions, now red: alerts updated, "updated" events
    ("town", 600.0),       # orange's town limit: escalated to the town station
    ("resolve", 900.0),    # conditions clear: alerts resolved, told tiers hear of it
    ("county", 1800.0),    # orange's county limit (escalation goes on after resolving)
)
"""The writer batches of one group of alerts: (step, seconds after the group fired).
Steps with alert changes carry one transition per alert; the others are the engine's
timed decisions (a sweep's ``tick``), written the same way."""

TRANSITION_STEPS = frozenset({"create", "raise", "resolve"})
GROUP_STRIDE_S = 2000.0
"""Event time between groups: each group's timeline ends before the next begins, so the
enterprise-tier grouping never holds one group's alerts back for the next."""

ACTIONS: tuple[tuple[str, str | None, str | None], ...] = (
    ("acknowledge", None, None),
    ("dispatch", None, "inspector-07"),
    ("feedback", "除尘器滤袋破损，已停机更换，压差恢复正常", None),
    ("verify", None, None),
    ("close", None, None),
)
"""(action, comment, assignee): 推送 → 核实处置 → 反馈 → 核查 → 销号, the full handling
of one alert."""


# -- the fleet and its routing ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Fleet:
    """Enterprises spread over ``counties`` x ``towns`` of one city."""

    subjects: list[Subject]
    """One per enterprise: its dust collector's differential pressure (the point is
    replaced per alert)."""
    counties: list[str]
    towns: list[str]


def fleet(enterprises: int, *, counties: int = 5, towns_per_county: int = 4) -> Fleet:
    """``enterprises`` dust and metallurgy sites, round-robin over the towns."""
    county_codes = [f"3708{29 + c:02d}" for c in range(counties)]
    towns = [f"{county}{101 + t:03d}" for county in county_codes
             for t in range(towns_per_county)]
    subjects = []
    for i in range(enterprises):
        town = towns[i % len(towns)]
        dust = i % 2 == 0
        subjects.append(Subject(
            enterprise_id=f"E{i:05d}", enterprise_name=f"某某{'粉尘' if dust else '冶金'}企业{i}",
            industry="dust" if dust else "metallurgy",
            region=(PROVINCE, CITY, town[:6], town), timezone=TZ,
            device_id="DC1" if dust else "CW1",
            device_kind="dust_collector" if dust else "cooling_water",
            point="dp", point_kind="differential_pressure" if dust else "pressure",
            unit="Pa" if dust else "kPa"))
    return Fleet(subjects, county_codes, towns)


def routing_config(f: Fleet, base_url: str = "http://127.0.0.1:9") -> RoutingConfig:
    """The routing a county deployment writes: every alert to the enterprise's screen
    (MQTT) and the park's duty desk (webhook); per county a bureau (webhook and its
    wall screen), per town a station (webhook), matched by region; orange reaches the
    town after 10 min and the county after 30 min unanswered.  ``base_url`` only
    matters to senders; routing and deciding never contact it."""
    receivers: dict[str, Any] = {
        "screen": {"tier": "enterprise", "channels": [{"type": "mqtt"}]},
        "desk": {"tier": "enterprise", "channels": [
            {"type": "webhook", "url": f"{base_url}/desk"}]},
    }
    county_routes = []
    for county in f.counties:
        receivers[f"county-{county}"] = {"tier": "county", "channels": [
            {"type": "webhook", "name": "hook", "url": f"{base_url}/county/{county}"},
            {"type": "mqtt", "name": "wall", "topic": f"rw/v1/county/{county}/alerts"}]}
        town_routes = []
        for town in (t for t in f.towns if t.startswith(county)):
            receivers[f"town-{town}"] = {"tier": "town", "channels": [
                {"type": "webhook", "url": f"{base_url}/town/{town}"}]}
            town_routes.append({"match": {"region": [town]}, "receivers": [f"town-{town}"]})
        county_routes.append({"match": {"region": [county]},
                              "receivers": [f"county-{county}"], "routes": town_routes})
    return RoutingConfig.model_validate({
        "defaults": {"group_wait_s": 30, "group_interval_s": 300, "repeat_interval_s": 1800},
        "escalation": {1: {"town_after_s": 300, "county_after_s": 900},
                       2: {"town_after_s": 600, "county_after_s": 1800}},
        "receivers": receivers,
        "route": {"receivers": ["screen", "desk"], "routes": county_routes},
    })


def maintenance_silence(f: Fleet, share: float = 0.02) -> list[Silence]:
    """A silence on ``share`` of the enterprises for the whole run, so the muted path
    (outbox rows in state ``muted``, "silenced" events) is written too."""
    step = max(1, round(1 / share)) if share > 0 else 0
    muted = tuple(s.enterprise_id for s in f.subjects[::step]) if step else ()
    if not muted:
        return []
    return [Silence(id="bench-maintenance", matchers={"enterprise": muted},
                    starts_at=T0 - 3600, ends_at=T0 + 1e8, created_by="bench",
                    comment="检修窗口", created_at=T0 - 3600)]


def alert_subject(f: Fleet, i: int, *, point: str = "dp") -> Subject:
    """Subject of the ``i``-th alert: enterprise ``i mod n``, its own point (``point``
    and a number), so every alert has its own fingerprint and the enterprises of one
    batch are distinct."""
    base = f.subjects[i % len(f.subjects)]
    n = i // len(f.subjects)
    return Subject(base.enterprise_id, base.enterprise_name, base.industry, base.region,
                   base.timezone, base.device_id, base.device_kind,
                   point if n == 0 else f"{point}{n + 1}", base.point_kind, base.unit)


def firing(subject: Subject, *, started: float, at: float, level: int) -> Condition:
    """A threshold condition with the evidence the pipeline gives one (limits, a
    16-sample data window), so rows have their real size."""
    limit = 2000.0 if level == 1 else 1800.0
    value = limit + 150.0
    window = [[format_ts(at - 5.0 * (15 - k), TZ), round(value - 10.0 * (15 - k), 1)]
              for k in range(16)]
    return Condition(
        kind="threshold", subject=subject, active=True, level=level, started_at=started,
        at=at, evidence={
            "rule": "threshold", "band": "hihi" if level == 1 else "hi", "value": value,
            "limit": limit, "unit": subject.unit,
            "limits": {"lolo": None, "lo": 200.0, "hi": 1800.0, "hihi": 2000.0},
            "deadband": 20.0, "on_delay_s": 10.0, "sample_ts": format_ts(at, TZ),
            "excursion_started": format_ts(started, TZ), "window": window},
        detail={"band": "hihi" if level == 1 else "hi", "value": value, "limit": limit})


def cleared(subject: Subject, *, started: float, at: float) -> Condition:
    return Condition(kind="threshold", subject=subject, active=False, level=4,
                     started_at=started, at=at,
                     evidence={"rule": "threshold", "cleared_by": 1650.0,
                               "at": format_ts(at, TZ)})


# -- databases ----------------------------------------------------------------------------


async def fresh_schema(engine: AsyncEngine) -> None:
    """Drop every table and migrate to the head: each measurement starts empty, so batch
    sizes are compared on the same table sizes."""
    def drop(conn: sa.Connection) -> None:
        found = sa.MetaData()
        found.reflect(conn)
        found.drop_all(conn)

    async with engine.begin() as conn:
        await conn.run_sync(drop)
    await migrate(engine)


def bench_engine(url: str, *, sync_off: bool = False) -> AsyncEngine:
    """The engine the service opens for ``url`` (:func:`open_engine`); ``sync_off``
    turns commit durability off, to measure what fsync costs."""
    if not sync_off:
        return open_engine(url)
    if make_url(url).get_backend_name() == "sqlite":
        engine = open_engine(url)

        @event.listens_for(engine.sync_engine, "connect")
        def _no_sync(dbapi_connection: Any, _record: Any) -> None:  # after open_engine's
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA synchronous=OFF")
            cursor.close()

        return engine
    return create_async_engine(url, pool_pre_ping=True, connect_args={
        "server_settings": {"synchronous_commit": "off"}})


PG_ADMIN_URL = os.environ.get("RISKWATCH_TEST_PG_URL",
                              "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres")


async def _pg_admin(admin_url: str, statement: str) -> None:
    engine = create_async_engine(admin_url, isolation_level="AUTOCOMMIT",
                                 connect_args={"timeout": 5})
    try:
        async with engine.connect() as conn:
            await conn.execute(sa.text(statement))
    finally:
        await engine.dispose()


@asynccontextmanager
async def throwaway_pg(admin_url: str = PG_ADMIN_URL) -> AsyncIterator[str | None]:
    """URL of a new database ``rw_bench_<random>``, dropped on exit; ``None`` (and the
    reason printed) when PostgreSQL cannot be reached."""
    name = f"rw_bench_{secrets.token_hex(6)}"
    try:
        await _pg_admin(admin_url, f'CREATE DATABASE "{name}"')
    except (OSError, TimeoutError, sa.exc.SQLAlchemyError) as exc:
        where = make_url(admin_url).render_as_string()
        print(f"\nPostgreSQL unreachable at {where} ({type(exc).__name__}: "
              f"{str(exc).splitlines()[0] if str(exc) else ''}): skipped")
        yield None
        return
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        await _pg_admin(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def server_notes(engine: AsyncEngine) -> str:
    """The server's version and durability settings, for the figures' context."""
    if engine.dialect.name == "sqlite":
        return f"SQLite {sqlite3.sqlite_version}, WAL, synchronous=NORMAL"
    async with engine.connect() as conn:
        server = (await conn.execute(sa.text("SHOW server_version"))).scalar_one()
        sync = (await conn.execute(sa.text("SHOW synchronous_commit"))).scalar_one()
        fsync = (await conn.execute(sa.text("SHOW fsync"))).scalar_one()
    return f"PostgreSQL {server}, synchronous_commit={sync}, fsync={fsync}"


# -- 1. transitions through the store and the outbox --------------------------------------


@dataclass(slots=True)
class Stores:
    """What the service's writer writes to, on one engine."""

    alerts: AlertStore
    handling: HandlingStore
    outbox: Outbox

    @classmethod
    def on(cls, engine: AsyncEngine) -> Stores:
        return cls(AlertStore(engine), HandlingStore(engine), Outbox(engine))


WRITE_PARTS = ("alerts", "events", "outbox", "muted")


async def write_batch(stores: Stores, alerts: Sequence[Alert], decided: EngineOutput,
                      spent: dict[str, float]) -> int:
    """One batch, in :class:`~gateway.storage.writer.StoreWriter`'s order and calls:
    alerts, their audit events, the outbox, the muted rows (each its own transaction,
    as there).  Adds the seconds of each part to ``spent``; returns the new
    notifications.  The writer's queue is left out on purpose: it merges whatever
    queued up meanwhile, which would blur the batch size measured here."""
    t = time.perf_counter()
    await stores.alerts.save(alerts)
    t1 = time.perf_counter()
    await stores.handling.record_events(decided.events)
    t2 = time.perf_counter()
    new = await stores.outbox.enqueue(decided.notifications)
    t3 = time.perf_counter()
    await stores.outbox.enqueue(decided.muted, muted=True)
    t4 = time.perf_counter()
    for part, seconds in zip(WRITE_PARTS, (t1 - t, t2 - t1, t3 - t2, t4 - t3), strict=True):
        spent[part] += seconds
    return len(new)


@dataclass(slots=True)
class TransitionResult:
    """Figures of one :func:`run_transitions`."""

    batch_alerts: int
    alerts: int
    transitions: int
    notifications: int
    muted: int
    events: int
    batch_seconds: list[float]
    """Wall time of every writer batch (ticks included)."""
    decide_s: float
    """Manager and engine, in memory, not in ``write_s``."""
    spent: dict[str, float]

    @property
    def write_s(self) -> float:
        return sum(self.batch_seconds)

    @property
    def transitions_per_s(self) -> float:
        return self.transitions / self.write_s

    @property
    def notifications_per_s(self) -> float:
        return self.notifications / self.write_s


async def run_transitions(engine: AsyncEngine, f: Fleet, alerts: int, batch: int, *,
                          silences: Sequence[Silence] = ()) -> TransitionResult:
    """``alerts`` alerts, ``batch`` per group, through :data:`GROUP_STEPS` on a fresh
    schema: decide in memory (not timed), write each step's batch (timed)."""
    await fresh_schema(engine)
    stores = Stores.on(engine)
    manager = AlertManager("zh")
    notifier = NotificationEngine(RoutingTree(routing_config(f)), lambda: silences)
    spent = dict.fromkeys(WRITE_PARTS, 0.0)
    result = TransitionResult(batch, alerts, 0, 0, 0, 0, [], 0.0, spent)
    for g, first in enumerate(range(0, alerts, batch)):
        t = T0 + g * GROUP_STRIDE_S
        subjects = [alert_subject(f, i) for i in range(first, min(first + batch, alerts))]
        for step, offset in GROUP_STEPS:
            now = t + offset
            began = time.perf_counter()
            if step in TRANSITION_STEPS:
                if step == "resolve":
                    conditions = [cleared(s, started=t, at=now) for s in subjects]
                else:
                    level = 2 if step == "create" else 1
                    conditions = [firing(s, started=t, at=now, level=level)
                                  for s in subjects]
                changed = manager.apply(conditions)
                decided = notifier.observe(changed, now)
                result.transitions += len(changed)
            else:
                changed, decided = [], notifier.tick(now)
            result.decide_s += time.perf_counter() - began
            began = time.perf_counter()
            new = await write_batch(stores, changed, decided, spent)
            result.batch_seconds.append(time.perf_counter() - began)
            result.notifications += new
            result.muted += len(decided.muted)
            result.events += len(decided.events)
    return result


# -- workflow actions ---------------------------------------------------------------------


@dataclass(slots=True)
class WorkflowResult:
    tasks: int
    actions: int
    seconds: float
    latencies: list[float]

    @property
    def actions_per_s(self) -> float:
        return self.actions / self.seconds


async def seed_open_alerts(engine: AsyncEngine, f: Fleet, n: int, *, tag: str) -> list[str]:
    """``n`` firing alerts on points named after ``tag``, saved through the store (not
    timed); their ids."""
    t = T0 + 1e7
    alerts = AlertManager("zh").apply(
        firing(alert_subject(f, i, point=tag), started=t, at=t, level=1) for i in range(n))
    await AlertStore(engine).save(alerts)
    return [a.id for a in alerts]


async def run_workflow(engine: AsyncEngine, f: Fleet, alerts: int, tasks: int) -> WorkflowResult:
    """The full handling (:data:`ACTIONS`) of ``alerts`` fresh alerts through
    :meth:`HandlingStore.act`, from ``tasks`` concurrent tasks, each on its own alerts
    (one task: strictly one action after the other)."""
    ids = await seed_open_alerts(engine, f, alerts, tag=f"wf{tasks}-{secrets.token_hex(3)}")
    handling = HandlingStore(engine)
    latencies: list[float] = []

    async def handle(mine: list[str]) -> None:
        for alert_id in mine:
            for action, comment, assignee in ACTIONS:
                began = time.perf_counter()
                await handling.act(alert_id, action, actor="duty-officer", at=time.time(),
                                   comment=comment, assignee=assignee)
                latencies.append(time.perf_counter() - began)

    began = time.perf_counter()
    await asyncio.gather(*(handle(ids[k::tasks]) for k in range(tasks)))
    seconds = time.perf_counter() - began
    return WorkflowResult(tasks, len(latencies), seconds, latencies)


# -- 2. notification fan-out --------------------------------------------------------------


class TimedReceiver:
    """A webhook endpoint that notes when each request arrived (``time.perf_counter``,
    the clock the sender's side is timed with) under its ``Idempotency-Key``.

    The tests' receiver (``tests/http_receiver.py``) records requests but not their
    arrival time, and runs in a thread of its own; this one runs on the benchmark's
    event loop (:func:`serving`), so one clock times both ends and no hand-over of the
    GIL between threads (5 ms switch interval) adds to the latencies.  Its CPU work
    (HTTP parsing) still competes with the sender's, as a receiver on the same cores
    would."""

    def __init__(self) -> None:
        self.arrivals: dict[str, list[float]] = {}
        self.paths: Counter[str] = Counter()
        self.ports: list[int] = []

    def url(self, n: int, path: str) -> str:
        return f"http://127.0.0.1:{self.ports[n]}{path}"

    async def endpoint(self, request: Request) -> Response:
        await request.body()
        arrived = time.perf_counter()
        key = request.headers.get("idempotency-key", "")
        self.arrivals.setdefault(key, []).append(arrived)
        self.paths[request.url.path] += 1
        return Response(b'{"ok":true}', media_type="application/json")

    def copies(self, keys: Sequence[str]) -> Counter[int]:
        """How many of ``keys`` arrived 0, 1, 2, ... times."""
        return Counter(len(self.arrivals.get(k, ())) for k in keys)


@asynccontextmanager
async def serving(ports: int) -> AsyncIterator[TimedReceiver]:
    """A :class:`TimedReceiver` behind uvicorn (the server the tests' receiver uses),
    listening on ``ports`` ephemeral loopback ports, one per receiver: each receiver is
    its own origin, so the sender's pool keeps connections per receiver as it would."""
    receiver = TimedReceiver()
    app = Starlette(routes=[Route("/{path:path}", receiver.endpoint, methods=["POST"])])
    sockets = []
    for _ in range(ports):
        # IPPROTO_TCP, not the default 0: asyncio sets TCP_NODELAY only on sockets that
        # say TCP, and without it every response waits out a delayed ACK (~40 ms) for
        # its second segment, as it never would from a server that binds by itself.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.bind(("127.0.0.1", 0))
        sockets.append(sock)
        receiver.ports.append(sock.getsockname()[1])
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off",
                                           access_log=False))
    task = asyncio.create_task(server.serve(sockets=sockets))
    deadline = time.monotonic() + 10
    while not server.started:
        if task.done() or time.monotonic() > deadline:
            raise RuntimeError("the HTTP receiver did not start")
        await asyncio.sleep(0.01)
    try:
        yield receiver
    finally:
        server.should_exit = True
        await task
        for sock in sockets:
            sock.close()


@dataclass(slots=True)
class Delivery:
    """Latencies of one batch of notifications, from the dispatcher's wake-up."""

    keys: list[str]
    enqueue_s: float
    """Writing them to the outbox (one ``enqueue``), before the wake-up."""
    latencies: list[float]
    """Per notification: arrival at the receiver minus the wake-up."""
    all_sent_s: float
    """Wake-up until the dispatcher had recorded the last one as sent."""

    @property
    def last_arrival_s(self) -> float:
        return max(self.latencies)


@dataclass(slots=True)
class FanoutResult:
    burst: Delivery
    instant: Delivery | None
    """The same burst to channels that return at once (no HTTP): what the dispatcher
    and the outbox cost on their own."""
    fanouts: list[Delivery]
    copies: Counter[int]
    """Notifications by number of copies received, over all HTTP deliveries and the
    warm-up (all 1 when nothing was lost or sent twice)."""
    failures: Counter[str] = field(default_factory=Counter)
    """Dispatcher outcomes other than ``sent``."""

    @property
    def burst_per_s(self) -> float:
        return len(self.burst.keys) / self.burst.all_sent_s


class InstantChannel:
    """A channel whose send returns at once, noting the arrival like the receiver: the
    dispatcher's and the outbox's own cost, with the HTTP round trip taken out."""

    def __init__(self, arrivals: dict[str, list[float]]) -> None:
        self._arrivals = arrivals

    @property
    def kind(self) -> str:
        return "webhook"

    async def send(self, notification: Notification) -> None:
        self._arrivals.setdefault(notification.key, []).append(time.perf_counter())


class _Outcomes:
    """Counts the dispatcher's recorded results and wakes whoever waits for a number."""

    def __init__(self) -> None:
        self.sent = 0
        self.other: Counter[str] = Counter()
        self._target = 0
        self._reached = asyncio.Event()

    def __call__(self, outcome: Outcome, entry: OutboxEntry) -> None:
        if outcome == "sent":
            self.sent += 1
            if self.sent >= self._target:
                self._reached.set()
        else:
            self.other[outcome] += 1

    async def until(self, target: int, timeout_s: float = 120.0) -> None:
        self._target = target
        self._reached.clear()
        if self.sent < target:
            await asyncio.wait_for(self._reached.wait(), timeout_s)


def notifications_for(alert: Alert, targets: Sequence[tuple[str, str]]) -> list[Notification]:
    """One escalation notification of ``alert`` per (receiver, channel)."""
    return [build_notification([alert], receiver=r, tier="town", channel=c,
                               reason="escalated", created_at=alert.detected_at + 600.0)
            for r, c in targets]


async def run_fanout(engine: AsyncEngine, f: Fleet, *, burst: int, receivers: int,
                     fanouts: int, fanout_receivers: int, fanout_channels: int,
                     concurrency: int = 8, instant: bool = True) -> FanoutResult:
    """On a fresh schema, through one running :class:`Dispatcher`: a warm-up fan-out
    (not reported: a running service has its connections open), the burst to a
    :class:`TimedReceiver`, with ``instant`` the same burst to :class:`InstantChannel`
    receivers, then the single-alert fan-outs, each waiting for the previous one to be
    recorded as sent.  Every notification must be sent (else ``TimeoutError``)."""
    await fresh_schema(engine)
    outbox = Outbox(engine)
    ports = max(receivers, fanout_receivers)
    per_burst = math.ceil(burst / receivers)
    alerts = AlertManager("zh").apply(
        firing(alert_subject(f, i), started=T0, at=T0, level=1)
        for i in range(2 * per_burst + fanouts + 1))
    async with serving(ports) as receiver, httpx.AsyncClient() as http:
        senders: dict[tuple[str, str], Channel] = {}
        for r in range(ports):
            for c in range(max(1, fanout_channels)):
                name, channel = f"station-{r:02d}", f"hook{c}"
                config = WebhookChannel(type="webhook", name=channel,
                                        url=receiver.url(r, f"/{name}/{channel}"))
                senders[(name, channel)] = WebhookSender(config, secret=WEBHOOK_SECRET,
                                                         http=http)
        at_once = InstantChannel(receiver.arrivals)
        for r in range(receivers):
            senders[(f"instant-{r:02d}", "hook0")] = at_once
        outcomes = _Outcomes()
        dispatcher = Dispatcher(outbox, lambda r, c: senders.get((r, c)),
                                concurrency=concurrency, on_outcome=outcomes)
        running = asyncio.create_task(dispatcher.run())

        async def deliver(notes: list[Notification]) -> Delivery:
            began = time.perf_counter()
            await outbox.enqueue(notes)
            woken = time.perf_counter()
            dispatcher.notify()
            await outcomes.until(outcomes.sent + len(notes))
            done = time.perf_counter()
            keys = [n.key for n in notes]
            latencies = [receiver.arrivals[k][0] - woken for k in keys]
            return Delivery(keys, woken - began, latencies, done - woken)

        def burst_of(batch: Sequence[Alert], prefix: str) -> list[Notification]:
            targets = [(f"{prefix}-{r:02d}", "hook0") for r in range(receivers)]
            return [n for a in batch for n in notifications_for(a, targets)][:burst]

        fan_targets = [(f"station-{r:02d}", f"hook{c}") for r in range(fanout_receivers)
                       for c in range(fanout_channels)]
        try:
            warm = await deliver(notifications_for(alerts[-1], fan_targets))
            first = await deliver(burst_of(alerts[:per_burst], "station"))
            quick = (await deliver(burst_of(alerts[per_burst:2 * per_burst], "instant"))
                     if instant else None)
            singles = [await deliver(notifications_for(a, fan_targets))
                       for a in alerts[2 * per_burst:2 * per_burst + fanouts]]
        finally:
            dispatcher.stop()
            await running
        keys = warm.keys + first.keys + [k for d in singles for k in d.keys]
        return FanoutResult(first, quick, singles, receiver.copies(keys), outcomes.other)


# -- reporting ----------------------------------------------------------------------------


def pct(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=float), q)) if values else math.nan


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:,.2f}"


def best(runs: list[TransitionResult]) -> TransitionResult:
    return max(runs, key=lambda r: r.transitions_per_s)


def print_transitions(runs: list[TransitionResult]) -> None:
    r = best(runs)
    total = sum(r.spent.values())
    shares = ", ".join(f"{k} {v / total:.0%}" for k, v in r.spent.items())
    spread = ("" if len(runs) == 1 else "  (runs: " + ", ".join(
        f"{x.transitions_per_s:,.0f}" for x in runs) + ")")
    print(f"  {r.batch_alerts:>5} | {r.alerts:>6,} | {len(r.batch_seconds):>7,} | "
          f"{r.transitions_per_s:>10,.0f} | {r.notifications_per_s:>10,.0f} | "
          f"{r.events / r.write_s:>9,.0f} | {ms(pct(r.batch_seconds, 50)):>8} | "
          f"{ms(pct(r.batch_seconds, 99)):>8} | {r.decide_s / r.transitions * 1e6:>7.0f} | "
          f"{shares}{spread}")


def print_workflow(r: WorkflowResult) -> None:
    print(f"  {r.tasks:>5} | {r.actions:>7,} | {r.actions_per_s:>9,.0f} | "
          f"{ms(pct(r.latencies, 50)):>8} | {ms(pct(r.latencies, 99)):>8}")


def print_fanout(r: FanoutResult, *, receivers: int, concurrency: int) -> None:
    b = r.burst
    print(f"  burst: {len(b.keys):,} notifications over {receivers} receivers, enqueued in "
          f"{ms(b.enqueue_s)} ms (one write), dispatcher concurrency {concurrency}:")
    print(f"    latency p50 {ms(pct(b.latencies, 50))} ms, p99 {ms(pct(b.latencies, 99))} ms, "
          f"max {ms(b.last_arrival_s)} ms; all recorded sent after {ms(b.all_sent_s)} ms "
          f"= {r.burst_per_s:,.0f} notifications/s")
    if r.instant is not None:
        q = r.instant
        print(f"  the same burst to channels that return at once (dispatcher + outbox only): "
              f"p50 {ms(pct(q.latencies, 50))} ms, p99 {ms(pct(q.latencies, 99))} ms; all "
              f"sent after {ms(q.all_sent_s)} ms = {len(q.keys) / q.all_sent_s:,.0f}/s")
    if r.fanouts:
        lat = [x for d in r.fanouts for x in d.latencies]
        last = [d.last_arrival_s for d in r.fanouts]
        done = [d.all_sent_s for d in r.fanouts]
        enq = [d.enqueue_s for d in r.fanouts]
        print(f"  single-alert fan-out: {len(r.fanouts)} alerts x {len(r.fanouts[0].keys)} "
              f"channels (enqueue p50 {ms(pct(enq, 50))} ms):")
        print(f"    per notification p50 {ms(pct(lat, 50))} ms, p99 {ms(pct(lat, 99))} ms, "
              f"max {ms(max(lat))} ms; last of the alert's notifications p50 "
              f"{ms(pct(last, 50))} ms, p99 {ms(pct(last, 99))} ms; all recorded sent p50 "
              f"{ms(pct(done, 50))} ms")
    lost_or_twice = sum(n for copies, n in r.copies.items() if copies != 1)
    print(f"  received exactly once: {r.copies.get(1, 0):,} of {sum(r.copies.values()):,}"
          + (f"  (NOT once: {lost_or_twice})" if lost_or_twice else "")
          + (f"; other outcomes: {dict(r.failures)}" if r.failures else ""))


HEADER_TRANSITIONS = (
    "  alerts/ | alerts | writer  | transitions | notifs     | events/s  | batch    | batch   "
    " | decide  | write time by part\n"
    "    batch |        | batches |  /s         | enqueued/s |           | p50 ms   | p99 ms  "
    " | µs/tr.  |")


async def bench_database(label: str, url: str, args: argparse.Namespace) -> None:
    f = fleet(args.enterprises)
    silences = maintenance_silence(f)
    engine = bench_engine(url)
    try:
        await fresh_schema(engine)
        print(f"\n== {label}: {await server_notes(engine)} ==")
        print(f"1. alert transitions through the store and the outbox: {args.enterprises} "
              f"enterprises, each alert created (orange), raised to red and resolved = 3 "
              f"transitions; {len(GROUP_STEPS)} writer batches per group of alerts "
              f"({', '.join(s for s, _ in GROUP_STEPS)}); best of {args.repeats}")
        print(HEADER_TRANSITIONS)
        for batch in args.batch_sizes:
            n = min(args.alerts, batch * args.max_batches)
            runs = [await run_transitions(engine, f, n, batch, silences=silences)
                    for _ in range(args.repeats)]
            print_transitions(runs)
        last = runs[-1]
        print(f"  per alert: {last.notifications / last.alerts:.2f} notifications enqueued, "
              f"{last.muted / last.alerts:.2f} muted, {last.events / last.alerts:.2f} audit "
              f"events; batch p50/p99 are over all writer batches, ticks included")
        if args.sync_off:
            sync_off = bench_engine(url, sync_off=True)
            try:
                print("  the same with commit durability off (synchronous=OFF / "
                      "synchronous_commit=off):")
                for batch in args.batch_sizes:
                    n = min(args.alerts, batch * args.max_batches)
                    print_transitions([await run_transitions(sync_off, f, n, batch,
                                                             silences=silences)])
            finally:
                await sync_off.dispose()
        print(f"   workflow actions through HandlingStore.act ({args.workflow_alerts} alerts "
              f"x {len(ACTIONS)} actions: {', '.join(a[0] for a in ACTIONS)}):")
        print("  tasks | actions | actions/s | p50 ms   | p99 ms")
        for tasks in (1, args.tasks):
            print_workflow(await run_workflow(engine, f, args.workflow_alerts, tasks))
        print("2. notification fan-out, outbox -> dispatcher -> webhook -> loopback receiver "
              "(latency from the dispatcher's wake-up to the request's arrival):")
        fan = await run_fanout(engine, f, burst=args.burst, receivers=args.receivers,
                               fanouts=args.fanouts, fanout_receivers=args.fanout_receivers,
                               fanout_channels=args.fanout_channels,
                               concurrency=args.concurrency)
        print_fanout(fan, receivers=args.receivers, concurrency=args.concurrency)
    finally:
        await engine.dispose()


def versions() -> str:
    def v(name: str) -> str:
        try:
            return version(name)
        except Exception:  # not installed: say so rather than fail the benchmark
            return "absent"

    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (f"python {platform.python_version()}, SQLAlchemy {sa.__version__}, aiosqlite "
            f"{v('aiosqlite')} (SQLite {sqlite3.sqlite_version}), asyncpg {v('asyncpg')}, "
            f"httpx {v('httpx')}, uvicorn {v('uvicorn')}; CPUs: {os.cpu_count()} "
            f"({cpus} usable)")


def _sizes(text: str) -> list[int]:
    sizes = [int(x) for x in text.split(",") if x.strip()]
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError("batch sizes are positive integers, e.g. 1,10,100")
    return sizes


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="both")
    p.add_argument("--alerts", type=int, default=2000, help="alerts per batch-size run")
    p.add_argument("--enterprises", type=int, default=500)
    p.add_argument("--batch-sizes", type=_sizes, default=[1, 10, 100],
                   help="alerts per writer batch, comma-separated")
    p.add_argument("--max-batches", type=int, default=200,
                   help="groups per batch-size run at most (keeps batch size 1 short: "
                        "min(alerts, size x this) alerts)")
    p.add_argument("--repeats", type=int, default=1,
                   help="runs of each batch size; the best is reported")
    p.add_argument("--sync-off", action="store_true",
                   help="also run the store figures with commit durability off")
    p.add_argument("--workflow-alerts", type=int, default=200)
    p.add_argument("--tasks", type=int, default=8, help="concurrent workflow tasks")
    p.add_argument("--burst", type=int, default=1000)
    p.add_argument("--receivers", type=int, default=10)
    p.add_argument("--fanouts", type=int, default=20, help="single-alert fan-outs")
    p.add_argument("--fanout-receivers", type=int, default=10)
    p.add_argument("--fanout-channels", type=int, default=2)
    p.add_argument("--concurrency", type=int, default=8,
                   help="dispatcher sends in flight (the service's default is 8)")
    p.add_argument("--sqlite-dir", type=Path, default=None,
                   help="folder of the SQLite file (default: a temporary folder)")
    return p.parse_args(argv)


async def amain(args: argparse.Namespace) -> None:
    print(versions())
    began = time.perf_counter()
    if args.db in ("sqlite", "both"):
        with tempfile.TemporaryDirectory(prefix="rw_bench_", dir=args.sqlite_dir) as folder:
            path = Path(folder) / "alerts.db"
            await bench_database(f"SQLite ({path.parent})", f"sqlite+aiosqlite:///{path}",
                                 args)
    if args.db in ("postgresql", "both"):
        async with throwaway_pg() as url:
            if url is not None:
                await bench_database(f"PostgreSQL ({make_url(url).database})", url, args)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(f"\ntotal {time.perf_counter() - began:.1f} s; peak RSS {peak / 1024:.0f} MiB")


def main(argv: Sequence[str] | None = None) -> None:
    asyncio.run(amain(parse_args(argv)))


if __name__ == "__main__":
    main()
