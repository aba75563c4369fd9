"""The dashboard's history of every point: what the service keeps and how it is written.

:class:`PointHistory` is fed every decoded sample batch, beside the pipeline (live and
in replay), and keeps two things in memory:

- one-minute aggregates (:class:`~gateway.storage.aggregates.MinuteAccumulator`),
  handed to the database once their minute is closed on the event-time watermark;
- the last :data:`RAW_DEPTH` raw samples of each point, for the live chart.  It is the
  pipeline's evidence ring (:class:`~detectors.window.RecentWindow`) with a deeper
  buffer: the evidence ring holds 16 samples, too few for a chart, and deepening that
  one would put 180 samples into every alert's evidence.

:class:`HistoryWriter` writes closed minutes through its own queue and task rather than
the alert :class:`~gateway.storage.writer.StoreWriter`: chart data must never delay an
alert or its notification, and a failing history write must not block them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from detectors.base import SampleBatch
from detectors.window import RecentWindow
from gateway.ingest.mqtt_source import Backoff
from gateway.registry import RegistryIndex
from gateway.storage.aggregates import DEFAULT_GRACE_S, MinuteAccumulator, MinuteRows, merge
from gateway.storage.point_minutes import PointMinuteStore

log = logging.getLogger(__name__)

RAW_DEPTH = 180
"""Raw samples kept per point: 30 minutes at the usual 10 s interval (3 hours of a
one-minute meter).  Memory: 16 bytes per sample, so 2.9 KB per point."""


class PointHistory:
    """Minute aggregates and raw windows of every point of ``index``."""

    def __init__(self, index: RegistryIndex, *, raw_depth: int = RAW_DEPTH,
                 grace_s: float = DEFAULT_GRACE_S) -> None:
        self.index = index
        self.minutes = MinuteAccumulator(index.n_points, grace_s=grace_s)
        self.raw = RecentWindow(index.n_points, depth=raw_depth)

    def observe(self, samples: SampleBatch) -> None:
        """Take a decoded batch (the one the pipeline processed)."""
        if len(samples):
            self.minutes.add(samples.point, samples.ts, samples.value)
            self.raw.update(samples)

    def take_closed(self, watermark: float) -> MinuteRows:
        """Minutes closed at ``watermark`` (event time), to write."""
        return self.minutes.take_closed(watermark)

    def take_all(self) -> MinuteRows:
        """Everything held, open minutes included (shutdown, end of a replay)."""
        return self.minutes.take_all()


class HistoryWriter:
    """Writes minute rows off the ingest path, retrying while the database is down.

    ``submit`` waits when ``max_backlog`` submissions are queued (a long outage slows
    ingestion rather than losing history, as the alert writer does); queued rows are
    merged before writing, so a backlog costs one upsert per (point, minute).
    """

    def __init__(self, store: PointMinuteStore, index: RegistryIndex, *,
                 max_backlog: int = 1_000) -> None:
        self._store = store
        self._index = index
        self._queue: asyncio.Queue[MinuteRows | None] = asyncio.Queue(max_backlog)
        self.written_rows = 0
        self.failures = 0

    @property
    def backlog(self) -> int:
        return self._queue.qsize()

    async def submit(self, rows: MinuteRows) -> None:
        if len(rows):
            await self._queue.put(rows)

    async def close(self) -> None:
        """Ask :meth:`run` to finish once everything queued so far is written."""
        await self._queue.put(None)

    async def run(self) -> None:
        backoff = Backoff(0.2, 10.0)
        closing = False
        while not closing:
            first = await self._queue.get()
            if first is None:
                return
            parts = [first]
            while not self._queue.empty():
                more = self._queue.get_nowait()
                if more is None:
                    closing = True
                    break
                parts.append(more)
            rows = merge(MinuteRows.concat(parts))
            while True:
                try:
                    self.written_rows += await self._store.save(rows, self._index)
                    break
                except Exception as exc:  # database down: keep the rows, retry
                    self.failures += 1
                    delay = backoff.next_delay()
                    log.error("history write failed (%s: %s); retrying in %.1f s",
                              type(exc).__name__, exc, delay)
                    await asyncio.sleep(delay)
            backoff.reset()


class HistoryRetention:
    """Deletes minute rows older than ``keep_s`` once every ``every_s``, for ever.

    Without it ``point_minutes`` grows by 1,440 rows per point a day (docs/history.md):
    a 10,000-point fleet adds 14 million rows a day.  Runs beside the writer on its own
    task; a failed prune (database down) is logged and tried again at the next turn,
    and the first turn comes at start-up, so a service that was off catches up.
    ``clock`` gives epoch seconds (the wall clock: the minutes of a live service are on
    it, a replay writes no history)."""

    def __init__(self, store: PointMinuteStore, *, keep_s: float, every_s: float = 3_600.0,
                 clock: Callable[[], float] = time.time) -> None:
        if not (keep_s > 0 and every_s > 0):
            raise ValueError("keep_s and every_s must be > 0")
        self._store, self.keep_s, self.every_s, self._clock = store, keep_s, every_s, clock
        self.deleted_rows = 0
        self.failures = 0

    async def prune_once(self) -> int:
        """Delete what is older than ``keep_s`` now; rows deleted (0 after a failure)."""
        before_ms = int((self._clock() - self.keep_s) * 1000.0)
        try:
            deleted = await self._store.prune(before_ms)
        except Exception as exc:  # the database is down: the next turn tries again
            self.failures += 1
            log.error("history retention failed (%s: %s); trying again in %.0f s",
                      type(exc).__name__, exc, self.every_s)
            return 0
        self.deleted_rows += deleted
        if deleted:
            log.info("history retention: deleted %d minute rows older than %.1f days",
                     deleted, self.keep_s / 86_400.0)
        return deleted

    async def run(self) -> None:
        while True:
            await self.prune_once()
            await asyncio.sleep(self.every_s)
