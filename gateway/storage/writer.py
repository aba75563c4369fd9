"""Writes alert changes, their audit events, notifications and quarantine rows to the
database off the ingest path.

The pipeline must never wait on a disk; but nothing may be lost either.  So writes go
through a bounded queue (a full queue slows ingestion down instead of dropping), are
retried with backoff while the database is unavailable, and :meth:`StoreWriter.close`
drains the queue before the service exits.

Order matters, not one transaction: alerts first, then their audit events, then the
notifications (the outbox), and only then is the dispatcher woken.  A crash between
two of these leaves an alert without its notification, never a notification about an
alert the store lacks; on restart the notification engine finds the alert's tiers
untold and decides the same notification again, under the same key.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence

from alerting import Alert, AlertStore, Outbox
from alerting.engine import EngineOutput
from alerting.workflow import AuditEvent
from gateway.ingest.mqtt_source import Backoff
from gateway.ingest.rejections import Rejection
from gateway.storage.quarantine_store import QuarantineStore

log = logging.getLogger(__name__)

_Item = tuple[Sequence[Alert], Sequence[Rejection], EngineOutput | None]
EventSink = Callable[[Sequence[AuditEvent]], Awaitable[None]]
"""Writes system audit events, ignoring keys already stored."""


class StoreWriter:
    """``outbox`` and ``events`` are optional so that a store-only writer (tests, tools)
    needs neither; ``on_enqueued`` is called after new notifications were stored, and
    ``on_saved`` with the alerts once they are in the store (the dashboard's live push:
    a browser told of an alert must find it when it asks the API)."""

    def __init__(self, alerts: AlertStore, quarantine: QuarantineStore, *,
                 outbox: Outbox | None = None, events: EventSink | None = None,
                 on_enqueued: Callable[[], None] | None = None,
                 on_saved: Callable[[Sequence[Alert]], None] | None = None,
                 max_backlog: int = 10_000) -> None:
        self._alerts = alerts
        self._quarantine = quarantine
        self._outbox = outbox
        self._events = events
        self._on_enqueued = on_enqueued
        self._on_saved = on_saved
        self.written_notifications = 0
        self._queue: asyncio.Queue[_Item | None] = asyncio.Queue(max_backlog)
        self.written_alerts = 0
        self.written_rejections = 0
        self.failures = 0
        self.unstorable = 0

    @property
    def backlog(self) -> int:
        return self._queue.qsize()

    async def submit(self, alerts: Sequence[Alert], rejections: Sequence[Rejection],
                     decided: EngineOutput | None = None) -> None:
        if alerts or rejections or decided:
            # AlertManager hands out copies, so these never change while queued.
            await self._queue.put((list(alerts), list(rejections), decided))

    async def close(self) -> None:
        """Ask :meth:`run` to finish once everything queued so far is written."""
        await self._queue.put(None)

    async def run(self) -> None:
        backoff = Backoff(0.2, 10.0)
        while True:
            first = await self._queue.get()
            if first is None:
                return
            items = [first]
            closing = False
            while not self._queue.empty() and len(items) < 500:
                more = self._queue.get_nowait()
                if more is None:
                    closing = True
                    break
                items.append(more)
            alerts = {a.id: a for batch, _, _ in items for a in batch}
            rejections = [r for _, batch, _ in items for r in batch]
            decided = EngineOutput()
            for _, _, out in items:
                if out is not None:
                    decided.extend(out)
            pending = self._storable(alerts.values())
            while True:
                try:
                    await self._alerts.save(pending)
                    await self._quarantine.save(rejections)
                    new = await self._write_decisions(decided)
                    break
                except Exception as exc:  # database down: keep the data, retry
                    self.failures += 1
                    delay = backoff.next_delay()
                    log.error("database write failed (%s: %s); retrying in %.1f s",
                              type(exc).__name__, exc, delay)
                    await asyncio.sleep(delay)
            backoff.reset()
            self.written_alerts += len(pending)
            self.written_rejections += len(rejections)
            self.written_notifications += new
            if new and self._on_enqueued is not None:
                self._on_enqueued()
            if pending and self._on_saved is not None:
                self._on_saved(pending)
            if closing:
                return

    async def _write_decisions(self, decided: EngineOutput) -> int:
        """Audit events, then the outbox; returns how many notifications were new.
        Both ignore what is already stored, so a retry after a partial write is safe."""
        if self._events is not None and decided.events:
            await self._events(decided.events)
        if self._outbox is None:
            return 0
        new = await self._outbox.enqueue(decided.notifications)
        await self._outbox.enqueue(decided.muted, muted=True)
        return len(new)


    def _storable(self, alerts: Iterable[Alert]) -> list[Alert]:
        """Alerts the store can hold; one it never could would block every later write
        if retried, so it is logged (with its title) and counted instead."""
        keep = []
        for alert in alerts:
            reason = self._alerts.unstorable_reason(alert)
            if reason is None:
                keep.append(alert)
            else:
                self.unstorable += 1
                log.error("alert %s cannot be stored and is dropped: %s (title: %s)",
                          alert.id, reason, alert.title)
        return keep
