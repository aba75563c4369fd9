"""Writes alert changes and quarantine rows to the database off the ingest path.

The pipeline must never wait on a disk; but nothing may be lost either.  So writes go
through a bounded queue (a full queue slows ingestion down instead of dropping), are
retried with backoff while the database is unavailable, and :meth:`StoreWriter.close`
drains the queue before the service exits.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence

from alerting import Alert, AlertStore
from gateway.ingest.mqtt_source import Backoff
from gateway.ingest.rejections import Rejection
from gateway.storage.quarantine_store import QuarantineStore

log = logging.getLogger(__name__)

_Item = tuple[Sequence[Alert], Sequence[Rejection]]


class StoreWriter:
    def __init__(self, alerts: AlertStore, quarantine: QuarantineStore, *,
                 max_backlog: int = 10_000) -> None:
        self._alerts = alerts
        self._quarantine = quarantine
        self._queue: asyncio.Queue[_Item | None] = asyncio.Queue(max_backlog)
        self.written_alerts = 0
        self.written_rejections = 0
        self.failures = 0
        self.unstorable = 0

    @property
    def backlog(self) -> int:
        return self._queue.qsize()

    async def submit(self, alerts: Sequence[Alert], rejections: Sequence[Rejection]) -> None:
        if alerts or rejections:
            # AlertManager hands out copies, so these never change while queued.
            await self._queue.put((list(alerts), list(rejections)))

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
            alerts = {a.id: a for batch, _ in items for a in batch}
            rejections = [r for _, batch in items for r in batch]
            pending = self._storable(alerts.values())
            while True:
                try:
                    await self._alerts.save(pending)
                    await self._quarantine.save(rejections)
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
            if closing:
                return


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
