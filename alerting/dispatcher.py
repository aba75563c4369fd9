"""The dispatcher: sends what the outbox holds, retrying with backoff, never twice at once.

One asyncio worker per process (several processes may share an outbox: claims are
leased, see :mod:`alerting.outbox`).  It claims due notifications only for free sending
slots, so everything it holds is being sent; each send runs under a timeout shorter
than the lease, so no other dispatcher can claim a row while it is still being sent.

Results:

- sent: the row is marked ``sent``;
- a :class:`~alerting.notification.DeliveryError` that is retryable, a timeout or an
  unexpected exception: the row is retried after an exponential backoff with full
  jitter (:class:`RetryPolicy`), never sooner than the receiver's ``retry_after``;
- not retryable, no such receiver/channel, too many attempts or too old: ``dead``.

**Restarts.**  :meth:`Dispatcher.stop` is graceful: no new claims, sends in flight
finish and are recorded.  Cancelling :meth:`Dispatcher.run` (or a crash) abandons the
sends in flight; their rows stay leased until the lease expires and are then claimed
again by whichever dispatcher runs.  A send that reached the receiver but was not yet
recorded as sent is therefore sent a second time (at-least-once): that copy carries
the same idempotency key, by which the receiver drops it.

Logs name the key, receiver, channel and the ``DeliveryError`` message, never the
payload or the body (channels must keep secrets out of their messages); for other
exceptions only their type is logged, since their text is not ours to vouch for.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from alerting.notification import Channel, DeliveryError
from alerting.outbox import Outbox, OutboxEntry

log = logging.getLogger(__name__)

Outcome = Literal["sent", "retry", "dead"]
ChannelLookup = Callable[[str, str], Channel | None]
"""``(receiver, channel name) -> Channel``, or ``None`` when the routing configuration
has no such receiver or channel."""

_MIN_WAIT_S = 0.01  # never spin: a due row may be momentarily locked by another claimer


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """When to try again after a failed send, and when to give up.

    The n-th retry waits a uniformly random time in ``[0, min(cap_s, base_s *
    factor ** (n - 1))]`` ("full jitter": receivers recovering from an outage are not
    hit by every sender at the same instant), but at least the receiver's
    ``retry_after``.  A notification goes ``dead`` after ``max_attempts`` sends, or when
    its next try would fall more than ``max_age_s`` after its first.
    """

    base_s: float = 5.0
    factor: float = 2.0
    cap_s: float = 600.0
    max_attempts: int = 12
    max_age_s: float = 24 * 3600.0

    def __post_init__(self) -> None:
        if self.base_s <= 0 or self.factor < 1 or self.cap_s < self.base_s:
            raise ValueError("retry policy needs base_s > 0, factor >= 1, cap_s >= base_s")
        if self.max_attempts < 1 or self.max_age_s <= 0:
            raise ValueError("retry policy needs max_attempts >= 1 and max_age_s > 0")

    def ceiling(self, attempts: int) -> float:
        """Longest wait (s) after the ``attempts``-th failed send."""
        # The exponent is bounded so large attempt counts cannot overflow a float.
        exponent = min(max(attempts - 1, 0), 64)
        return float(min(self.cap_s, self.base_s * self.factor ** exponent))

    def delay(self, attempts: int, rng: random.Random,
              retry_after: float | None = None) -> float:
        """Seconds to wait after the ``attempts``-th failed send."""
        wait = rng.uniform(0.0, self.ceiling(attempts))
        return wait if retry_after is None else max(wait, retry_after)


@dataclass(frozen=True, slots=True)
class _Failure:
    message: str
    retryable: bool = True
    retry_after: float | None = None


class Dispatcher:
    """Sends the outbox's due notifications through their channels.

    :param outbox: where notifications wait.
    :param channel_for: finds the channel of a receiver (see :data:`ChannelLookup`).
    :param now: clock in epoch seconds (inject a simulated one in tests and replays).
    :param batch: most rows claimed by one query.
    :param concurrency: most sends in flight at once, over all receivers.
    :param retry: backoff and give-up rules.
    :param lease_s: how long a claim keeps other dispatchers away (s); after a crash,
        the abandoned rows are sent again once it has passed.
    :param send_timeout_s: a send taking longer fails (retryably); must be shorter than
        ``lease_s``.
    :param poll_s: longest sleep between looks at the outbox when not woken by
        :meth:`notify` (another process may have enqueued, a retry may fall due).
    :param rng: source of the jitter.
    :param on_outcome: called after each recorded result, e.g. to count it in metrics.
    """

    def __init__(self, outbox: Outbox, channel_for: ChannelLookup, *,
                 now: Callable[[], float] = time.time, batch: int = 32,
                 concurrency: int = 8, retry: RetryPolicy | None = None,
                 lease_s: float = 120.0, send_timeout_s: float = 60.0,
                 poll_s: float = 1.0, rng: random.Random | None = None,
                 on_outcome: Callable[[Outcome, OutboxEntry], None] | None = None) -> None:
        if batch < 1 or concurrency < 1:
            raise ValueError("batch and concurrency must be at least 1")
        if not 0 < send_timeout_s < lease_s:
            raise ValueError("send_timeout_s must be positive and shorter than lease_s, "
                             "or a slow send could be claimed and sent again meanwhile")
        if poll_s <= 0:
            raise ValueError("poll_s must be positive")
        self._outbox = outbox
        self._channel_for = channel_for
        self._now = now
        self._batch = batch
        self._concurrency = concurrency
        self._retry = retry or RetryPolicy()
        self._lease_s = lease_s
        self._send_timeout_s = send_timeout_s
        self._poll_s = poll_s
        self._rng = rng or random.Random()
        self._on_outcome = on_outcome
        self._wake = asyncio.Event()
        self._stopping = False
        self._in_flight: set[asyncio.Task[None]] = set()
        self._record_error: BaseException | None = None  # the first since drain began

    def notify(self) -> None:
        """New work was enqueued: look at the outbox now instead of at the next poll."""
        self._wake.set()

    def stop(self) -> None:
        """Graceful stop: claim nothing more, let :meth:`run` finish the sends in flight
        (each within ``send_timeout_s``), record them and return."""
        self._stopping = True
        self._wake.set()

    async def run(self) -> None:
        """Send due notifications until :meth:`stop` is called or the task is cancelled.

        Database errors are logged and retried at the next poll; they never end the
        loop.  Cancellation abandons the sends in flight (see the module docstring).
        A dispatcher runs once: after :meth:`stop`, make a new one.
        """
        try:
            while not self._stopping:
                self._wake.clear()
                try:
                    await self._fill()
                except Exception as exc:  # the database is down: keep trying
                    log.error("cannot claim notifications from the outbox: %s: %s",
                              type(exc).__name__, _first_line(exc))
                await self._idle()
            if self._in_flight:
                await asyncio.wait(self._in_flight)
        finally:
            await self._abandon_in_flight()

    async def drain(self) -> int:
        """Send everything due now, wait for the results, return how many were tried.

        Retries scheduled for later are left for later, so with a simulated clock a test
        drains, advances the clock and drains again.  Raises the first error of
        recording a result (e.g. the database went away) after the others settle.
        """
        self._record_error = None
        tried = 0
        try:
            while True:
                claimed = await self._fill()
                tried += claimed
                if not self._in_flight:
                    if claimed == 0:
                        break
                    continue
                await asyncio.wait(self._in_flight, return_when=asyncio.FIRST_COMPLETED)
        finally:  # only on an error or cancellation is anything still in flight
            await self._abandon_in_flight()
        if self._record_error is not None:
            raise self._record_error
        return tried

    # --- internals --------------------------------------------------------------------------

    async def _fill(self) -> int:
        """Claim due rows for the free slots and start sending them; how many were claimed.

        Claims again while a claim came back full and slots are free: more may be due.
        """
        total = 0
        while (wanted := min(self._concurrency - len(self._in_flight), self._batch)) > 0:
            entries = await self._outbox.claim_due(self._now(), wanted, self._lease_s)
            for entry in entries:
                task = asyncio.create_task(self._deliver(entry), name=f"notify-{entry.key}")
                self._in_flight.add(task)
                task.add_done_callback(functools.partial(self._settled, entry.key))
            total += len(entries)
            if len(entries) < wanted:
                break
        return total

    def _settled(self, key: str, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            if self._record_error is None:
                self._record_error = exc
            log.error("could not record the result of notification %s (it will be sent "
                      "again when its lease expires): %s: %s", key, type(exc).__name__,
                      _first_line(exc))

    async def _idle(self) -> None:
        """Sleep until woken, a slot frees, or the next row may fall due (≤ ``poll_s``)."""
        timeout = self._poll_s
        with contextlib.suppress(Exception):  # a failing database is reported by _fill
            due = await self._outbox.next_due()
            if due is not None:
                timeout = min(timeout, max(due - self._now(), _MIN_WAIT_S))
        wake = asyncio.create_task(self._wake.wait())
        try:
            await asyncio.wait({wake, *self._in_flight}, timeout=timeout,
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            wake.cancel()

    async def _abandon_in_flight(self) -> None:
        for task in self._in_flight:
            task.cancel()
        if self._in_flight:
            await asyncio.gather(*self._in_flight, return_exceptions=True)

    async def _deliver(self, entry: OutboxEntry) -> None:
        n = entry.notification
        channel = self._channel_for(n.receiver, n.channel)
        if channel is None:
            failure = _Failure(f"no channel {n.channel!r} of receiver {n.receiver!r} in the "
                               "routing configuration", retryable=False)
            await self._record_failure(entry, failure)
            return
        try:
            async with asyncio.timeout(self._send_timeout_s):
                await channel.send(n)
        except DeliveryError as exc:
            failure = _Failure(str(exc), exc.retryable, exc.retry_after)
        except TimeoutError:
            failure = _Failure(f"no answer within {self._send_timeout_s:g} s")
        except Exception as exc:
            failure = _Failure(f"{type(exc).__name__} raised by the {channel.kind} channel "
                               "(channels should raise DeliveryError)")
        else:
            if not await self._outbox.mark_sent(n.key, self._now()):
                log.warning("notification %s to %s/%s was sent but its row was no longer "
                            "pending (already sent under an expired lease?)", n.key,
                            n.receiver, n.channel)
            self._report("sent", entry)
            return
        await self._record_failure(entry, failure)

    async def _record_failure(self, entry: OutboxEntry, failure: _Failure) -> None:
        n = entry.notification
        now = self._now()
        retry_at: float | None = None
        if not failure.retryable:
            verdict = f"not retryable: {failure.message}"
        elif entry.attempts >= self._retry.max_attempts:
            verdict = f"gave up after {entry.attempts} attempts: {failure.message}"
        else:
            retry_at = now + self._retry.delay(entry.attempts, self._rng, failure.retry_after)
            first = now if entry.first_attempt_at is None else entry.first_attempt_at
            if retry_at - first > self._retry.max_age_s:
                verdict = (f"gave up after {now - first:.0f} s of trying: "
                           f"{failure.message}")
                retry_at = None
            else:
                verdict = failure.message
        if not await self._outbox.mark_failed(n.key, verdict, retry_at=retry_at,
                                              attempt=entry.attempts):
            log.info("notification %s: result of attempt %d not recorded, the row was "
                     "claimed again or settled meanwhile", n.key, entry.attempts)
            return
        if retry_at is None:
            log.error("notification %s to %s/%s is dead: %s", n.key, n.receiver, n.channel,
                      verdict)
            self._report("dead", entry)
        else:
            log.warning("notification %s to %s/%s failed (attempt %d), retrying in %.1f s: "
                        "%s", n.key, n.receiver, n.channel, entry.attempts, retry_at - now,
                        verdict)
            self._report("retry", entry)

    def _report(self, outcome: Outcome, entry: OutboxEntry) -> None:
        if self._on_outcome is not None:
            try:
                self._on_outcome(outcome, entry)
            except Exception:  # metrics must never stop deliveries
                log.exception("on_outcome callback failed")


def _first_line(exc: BaseException) -> str:
    text = str(exc)
    return text.splitlines()[0] if text else ""
