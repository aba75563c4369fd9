"""Event-time clocks: what "now" means to the detectors.

Live, the watermark is the wall clock (a device that stops sending is silent in real
time).  In replay it is the latest event time seen, so a recording replays the same
alerts at any speed.  Sweeps run on a fixed grid of that clock (multiples of
``interval_s`` since the epoch) so that live and replay decide at the same instants.
"""

from __future__ import annotations

import math
import time


class WallClock:
    """Watermark for live ingestion: event time is assumed close to wall time."""

    def now(self) -> float:
        return time.time()


class DataClock:
    """Watermark for replay: the maximum accepted event time so far.

    Late (out-of-order) data never moves it backwards, so a backfilled hour does not
    re-open silence decisions already made.
    """

    def __init__(self) -> None:
        self._watermark = -math.inf

    def observe(self, ts: float) -> None:
        if ts > self._watermark:
            self._watermark = ts

    def now(self) -> float:
        return self._watermark


class SweepGrid:
    """Yields the sweep instants a moving watermark has passed.

    ``max_catch_up`` bounds the work after a jump in data time (a recording with a
    week-long hole): beyond it, intermediate instants are skipped and counted.
    """

    def __init__(self, interval_s: float, *, max_catch_up: int = 100_000) -> None:
        if interval_s <= 0:
            raise ValueError("sweep interval must be positive")
        self.interval_s = interval_s
        self._max_catch_up = max_catch_up
        self._next: float | None = None
        self.skipped = 0

    @property
    def next_due(self) -> float:
        """The next sweep instant (``inf`` before the clock has started)."""
        return math.inf if self._next is None else self._next

    def passed(self, now: float) -> list[float]:
        """Sweep instants in ``(previous now, now]``, oldest first."""
        if not math.isfinite(now):
            return []
        if self._next is None:
            self._next = math.floor(now / self.interval_s) * self.interval_s
        if now < self._next:
            return []
        count = int((now - self._next) // self.interval_s) + 1
        if count > self._max_catch_up:
            self.skipped += count - self._max_catch_up
            first = self._next + (count - self._max_catch_up) * self.interval_s
            count = self._max_catch_up
        else:
            first = self._next
        instants = [first + i * self.interval_s for i in range(count)]
        self._next = instants[-1] + self.interval_s
        return instants
