"""The live service: broker → decoder → pipeline → alerting → stores and notifiers,
plus the API, in one loop.

Everything runs as tasks of one asyncio loop.  The pipeline is synchronous and fast,
so it runs inline when the MQTT source flushes a batch; the notification engine
decides, on the same beat and on the sweep clock, who is told (routing, grouping,
escalation); database writes (alerts, audit events, the notification outbox) go
through the :class:`~gateway.storage.writer.StoreWriter` queue, and the
:class:`~alerting.dispatcher.Dispatcher` sends from the outbox.  Shutdown is ordered
so that nothing accepted is lost: stop the source, process what is buffered, drain the
writer, let the sends in flight finish, then stop the API.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Sequence

import httpx
import uvicorn
from sqlalchemy.exc import SQLAlchemyError

from alerting import Alert, AlertStore, Dispatcher, MigrationError, Outbox, OutboxEntry
from alerting.channels.config import channel_name
from alerting.dispatcher import Outcome
from alerting.engine import EngineOutput, NotificationEngine
from alerting.handling_store import HandlingStore
from alerting.routing import DEFAULT_ROUTING, RoutingConfig, RoutingTree
from alerting.silence_store import SilenceStore
from alerting.silences import Silence
from gateway.api.access import ANONYMOUS_VIEWER, Access
from gateway.api.app import ApiContext, create_app
from gateway.api.live import AlertHub
from gateway.auth.passwords import Passwords
from gateway.auth.users import UserStore
from gateway.config import Settings, redact_url
from gateway.ingest.decode import MessageDecoder
from gateway.ingest.mqtt_source import MqttSource
from gateway.ingest.rejections import Rejection
from gateway.metrics import ServiceMetrics
from gateway.notify import ChannelBook, ChannelSetupError
from gateway.pipeline import Pipeline
from gateway.registry import Registry, load_registry
from gateway.routing_file import RoutingError, load_routing
from gateway.storage.db import open_engine
from gateway.storage.declared_store import DeclaredStore
from gateway.storage.history import HistoryRetention, HistoryWriter, PointHistory
from gateway.storage.point_minutes import PointMinuteStore
from gateway.storage.quarantine_store import QuarantineStore
from gateway.storage.writer import StoreWriter

log = logging.getLogger(__name__)


class ServiceStartError(Exception):
    """The service cannot start: the message says what to fix (port, database)."""


class Service:
    """``await Service(settings).run()`` until :meth:`stop` is called."""

    def __init__(self, settings: Settings, registry: Registry | None = None, *,
                 passwords: Passwords | None = None) -> None:
        self.settings = settings
        self._passwords = passwords or Passwords()
        self.hub = AlertHub()
        """Live push to the dashboard: every changed alert goes through it."""
        self.users: UserStore | None = None
        """Users and sessions, on the service's database once :meth:`run` opened it."""
        self.registry = registry or load_registry(settings.registry)
        self.metrics = ServiceMetrics()
        self.pipeline = Pipeline(
            self.registry, locale=settings.locale,
            sweep_interval_s=settings.sweep_interval_s, silence_k=settings.silence_k,
        )
        self._decoder = MessageDecoder(self.registry.index, max_future_s=settings.max_future_s)
        self.history = PointHistory(self.registry.index)
        """Minute aggregates and raw windows of every point, for the dashboard's charts."""
        self._history_writer: HistoryWriter | None = None
        self.history_retention: HistoryRetention | None = None
        self.routing = _routing(settings)
        self._channel_types = {(name, channel_name(c)): c.type
                               for name, r in self.routing.receivers.items()
                               for c in r.channels}
        self._silences: list[Silence] = []
        self.notifications = NotificationEngine(RoutingTree(self.routing),
                                                silences=lambda: self._silences)
        self._stop = asyncio.Event()
        self.ready = asyncio.Event()
        self.api_port: int | None = None
        self.source: MqttSource | None = None
        self.outbox: Outbox | None = None
        self._silence_store: SilenceStore | None = None
        self.dispatcher: Dispatcher | None = None
        self._writer: StoreWriter | None = None
        self._declared: DeclaredStore | None = None

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        settings = self.settings
        engine = open_engine(settings.db_url)
        try:
            alert_store = AlertStore(engine)
            quarantine_store = QuarantineStore(engine)
            outbox = self.outbox = Outbox(engine)
            handling = HandlingStore(engine)
            silences = self._silence_store = SilenceStore(engine)
            now = time.time()
            try:
                await alert_store.create_schema()
                await quarantine_store.create_schema()
                restored = await alert_store.load_open()
                restored += await alert_store.load_resolved_since(
                    now - self.notifications.keep_resolved_s)
                told = await outbox.receivers_told([a.id for a in restored])
                self.set_silences(await silences.load_active(now))
            except (OSError, SQLAlchemyError, MigrationError) as exc:
                raise ServiceStartError(
                    f"cannot use the database {redact_url(settings.db_url)}: "
                    f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                ) from exc
            self.pipeline.alerts.restore(restored)
            if restored:
                log.info("restored %d open or recently resolved alerts from the store",
                         len(restored))
            self.source = MqttSource(
                settings.broker(), client_id=settings.mqtt_client_id,
                on_message=self._on_message, flush=self._flush,
                session_expiry_s=settings.mqtt_session_expiry_s,
                max_pending=settings.max_batch_samples, protocol=settings.mqtt_protocol,
            )
            http = httpx.AsyncClient()
            try:
                book = ChannelBook(self.routing, publish=self.source.publish, http=http)
            except ChannelSetupError as exc:
                await http.aclose()
                raise ServiceStartError(f"cannot set up notifications: {exc}") from exc
            if settings.notify:
                self.dispatcher = Dispatcher(outbox, book, on_outcome=self._count_outcome)
            writer = self._writer = StoreWriter(
                alert_store, quarantine_store, outbox=outbox, events=handling.record_events,
                on_enqueued=self.dispatcher.notify if self.dispatcher else None,
                on_saved=self.hub.publish)
            await writer.submit([], [], self.notifications.restore(restored, told, now))
            minutes = PointMinuteStore(engine)
            self._history_writer = HistoryWriter(minutes, self.registry.index)
            if settings.history_retention_days > 0:
                self.history_retention = HistoryRetention(
                    minutes, keep_s=settings.history_retention_days * 86_400.0)
            declared = self._declared = DeclaredStore(engine)
            await self._reload_declared()
            users = self.users = UserStore(engine, self._passwords,
                                           session_ttl_s=settings.session_ttl_s)
            if await users.count() == 0 and not settings.api_anonymous_read:
                log.warning("no users yet: nobody can log in to the API; add one with "
                            "`riskwatch users add NAME --role admin`")
            access = Access(users, self.registry,
                            anonymous=ANONYMOUS_VIEWER if settings.api_anonymous_read
                            else None)
            app = create_app(ApiContext(
                registry=self.registry, engine=engine, alerts=alert_store,
                quarantine=quarantine_store, pipeline=self.pipeline, metrics=self.metrics,
                source=self.source, handling=handling, silences=silences,
                on_handled=self.handled, on_silences_changed=self._reload_silences,
                outbox=outbox,
                on_outbox_changed=self.dispatcher.notify if self.dispatcher else None,
                access=access, hub=self.hub, secure_cookie=settings.api_secure_cookie,
                history=self.history, declared=declared,
                on_declared_changed=self._reload_declared,
            ))
            server = uvicorn.Server(uvicorn.Config(
                app, host=settings.api_host, port=settings.api_port, lifespan="off",
                log_level="warning", access_log=False,
            ))
            listener = _listen(settings.api_host, settings.api_port)
            try:
                await self._serve(server, listener, writer)
            finally:
                await http.aclose()
        finally:
            await engine.dispose()

    async def _serve(
        self, server: uvicorn.Server, listener: socket.socket, writer: StoreWriter
    ) -> None:
        assert self.source is not None
        writer_task = asyncio.create_task(writer.run(), name="store-writer")
        assert self._history_writer is not None
        history_task = asyncio.create_task(self._history_writer.run(), name="history-writer")
        api_task = asyncio.create_task(server.serve(sockets=[listener]), name="api")
        while not server.started:
            if api_task.done():
                api_task.result()  # surfaces "address already in use" and the like
                raise RuntimeError("API server stopped during start-up")
            await asyncio.sleep(0.02)
        self.api_port = server.servers[0].sockets[0].getsockname()[1]
        source_task = asyncio.create_task(self.source.run(), name="mqtt-source")
        sweep_task = asyncio.create_task(self._sweep_forever(), name="sweeper")
        dispatch_task = (asyncio.create_task(self.dispatcher.run(), name="dispatcher")
                         if self.dispatcher is not None else None)
        retention_task = (asyncio.create_task(self.history_retention.run(),
                                              name="history-retention")
                          if self.history_retention is not None else None)
        self.ready.set()
        log.info("riskwatch API on http://%s:%s", self.settings.api_host, self.api_port)
        stop_task = asyncio.create_task(self._stop.wait())
        await asyncio.wait({stop_task, source_task, sweep_task, writer_task, api_task,
                            history_task}, return_when=asyncio.FIRST_COMPLETED)
        try:
            for task in (source_task, sweep_task, retention_task):
                if task is None:
                    continue
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await self._flush()
            await self._publish(self.pipeline.drain(), [])  # held by bulk-judging rules
            await writer.close()
            await self._history_writer.submit(self.history.take_all())  # open minutes too
            await self._history_writer.close()
            await writer_task
            await history_task
            if dispatch_task is not None and self.dispatcher is not None:
                self.dispatcher.stop()  # sends in flight finish; the rest wait in the outbox
                await dispatch_task
        finally:
            server.should_exit = True
            await api_task
            stop_task.cancel()

    def _on_message(self, topic: str, payload: bytes) -> int:
        before = self._decoder.pending_samples
        self._decoder.feed(topic, payload, time.time())
        return max(1, self._decoder.pending_samples - before)

    async def _flush(self) -> None:
        decoded = self._decoder.take()
        if not decoded.messages:
            return
        self.metrics.observe_decoded(decoded)
        with self.metrics.batch_seconds.time():
            changed = self.pipeline.process(decoded)
        self.history.observe(decoded.samples)
        await self._publish(changed, decoded.rejections)

    async def _sweep_forever(self) -> None:
        while True:
            now = time.time()
            self.metrics.watermark.set(now)
            await self._publish(self.pipeline.advance(now), [], now)
            if self._history_writer is not None:
                await self._history_writer.submit(self.history.take_closed(now))
            due = min(self.pipeline.next_sweep_due, self.notifications.next_due)
            await asyncio.sleep(max(0.05, min(due, now + 60.0) - time.time()))

    async def handled(self, alert: Alert) -> None:
        """A person moved ``alert`` along its handling workflow (already stored): mirror
        it into the lifecycle and let the engine react (a response stops escalation;
        closing is announced)."""
        self.pipeline.alerts.set_handling(
            alert.id, stage=alert.stage, assignee=alert.assignee,
            acknowledged_at=alert.acknowledged_at, closed_at=alert.closed_at)
        assert self._writer is not None
        self.hub.publish([alert])
        await self._writer.submit([], [], self.notifications.observe([alert], time.time()))

    async def _reload_declared(self) -> None:
        """Hand the live declared stops (registry and API) to the hidden-operation rule."""
        assert self._declared is not None
        stops = await self._declared.stops()
        self.pipeline.set_declared_stops(stops)
        log.info("declared stops through the API: %d on record", len(stops))

    def set_silences(self, silences: Sequence[Silence]) -> None:
        """The silences in force (running or scheduled)."""
        self._silences = list(silences)

    async def _reload_silences(self) -> None:
        """A silence was created or expired through the API."""
        assert self._silence_store is not None
        self.set_silences(await self._silence_store.load_active(time.time()))

    async def _publish(self, changed: list[Alert], rejections: Sequence[Rejection],
                       now: float | None = None) -> None:
        assert self._writer is not None
        now = time.time() if now is None else now
        if changed:
            self.metrics.observe_alerts(changed, len(self.pipeline.alerts.open_alerts()))
            for alert in changed:
                log.info("alert %s %s L%d %s", alert.state, alert.kind, alert.level, alert.title)
        decided: EngineOutput = (self.notifications.observe(changed, now) if changed
                                 else self.notifications.tick(now))
        await self._writer.submit(changed, rejections, decided)
        self.metrics.store_backlog.set(self._writer.backlog)
        self.metrics.mqtt_connected.set(
            1 if self.source is not None and self.source.connected.is_set() else 0
        )


    def _count_outcome(self, outcome: Outcome, entry: OutboxEntry) -> None:
        n = entry.notification
        kind = self._channel_types.get((n.receiver, n.channel), "unknown")
        self.metrics.notifications.labels(kind, outcome).inc()


def _routing(settings: Settings) -> RoutingConfig:
    """The routing file's configuration, or the default (enterprise screens only)."""
    if settings.routing is None:
        return DEFAULT_ROUTING
    try:
        return load_routing(settings.routing)
    except RoutingError as exc:
        raise ServiceStartError(str(exc)) from exc


def _listen(host: str, port: int) -> socket.socket:
    """Bind the API socket ourselves, so "address in use" is a clear error here
    rather than a ``sys.exit`` deep inside uvicorn."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family, backlog=2048)
    except OSError as exc:
        raise ServiceStartError(
            f"cannot listen for the API on {host}:{port}: {exc.strerror or exc}"
        ) from exc
