"""The dispatcher on a real outbox (SQLite file and PostgreSQL) with channels in memory.

Time is a simulated clock the test advances by hand; the only real waiting is the few
milliseconds asyncio needs to run the dispatcher's tasks.  The channels here stand in
for webhook/SMTP/robots (the end-to-end tests with real receivers live elsewhere): a
:class:`Receiver` records what arrived, by idempotency key, as a real receiver would.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from alerting.dispatcher import Dispatcher, Outcome, RetryPolicy
from alerting.notification import Channel, DeliveryError, Notification
from alerting.outbox import Outbox, OutboxEntry
from tests.alerting.test_outbox import NOW, note


@pytest.fixture
def outbox(engine: AsyncEngine) -> Outbox:
    return Outbox(engine)


class Clock:
    def __init__(self, t: float = NOW) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


class CeilingJitter(random.Random):
    """Always the longest wait the policy allows, so backoff times are exact."""

    def uniform(self, a: float, b: float) -> float:
        return b


@dataclass
class Receiver:
    """What arrived at the far end, in order, by idempotency key."""

    keys: list[str] = field(default_factory=list)

    def distinct(self) -> set[str]:
        return set(self.keys)  # what a receiver that drops repeated keys keeps


Behaviour = Callable[[Notification], Awaitable[None]]


class FakeChannel:
    """A channel whose sends succeed unless ``failures`` or ``behaviour`` say otherwise."""

    kind = "webhook"

    def __init__(self, receiver: Receiver, *, failures: dict[str, list[Exception]] | None = None,
                 behaviour: dict[str, Behaviour] | None = None) -> None:
        self.receiver = receiver
        self.failures = failures or {}
        self.behaviour = behaviour or {}
        self.calls: list[str] = []
        self.active = 0
        self.most_active = 0

    async def send(self, notification: Notification) -> None:
        self.calls.append(notification.key)
        self.active += 1
        self.most_active = max(self.most_active, self.active)
        try:
            await asyncio.sleep(0.001)
            planned = self.failures.get(notification.key)
            if planned:
                raise planned.pop(0)
            special = self.behaviour.get(notification.key)
            if special is not None:
                await special(notification)
            else:
                self.receiver.keys.append(notification.key)
        finally:
            self.active -= 1


def lookup(channel: Channel, receiver: str = "enterprise-E1",
           name: str = "ops-hook") -> Callable[[str, str], Channel | None]:
    return lambda r, c: channel if (r, c) == (receiver, name) else None


def dispatcher(outbox: Outbox, channel: Channel, clock: Clock, **options: object) -> Dispatcher:
    settings: dict[str, object] = {"rng": CeilingJitter(), "poll_s": 0.01}
    settings.update(options)
    return Dispatcher(outbox, lookup(channel), now=clock, **settings)  # type: ignore[arg-type]


async def until(condition: Callable[[], bool], within_s: float = 5.0) -> None:
    """Let the dispatcher's tasks run until ``condition`` holds (checked every 2 ms)."""
    deadline = time.monotonic() + within_s
    while True:
        if condition():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within_s} s")
        await asyncio.sleep(0.002)


async def entry(outbox: Outbox, n: Notification) -> OutboxEntry:
    found = await outbox.get(n.key)
    assert found is not None
    return found


# --- the retry policy alone -------------------------------------------------------------------

def test_backoff_doubles_from_five_seconds_up_to_ten_minutes() -> None:
    policy = RetryPolicy()

    assert [policy.ceiling(n) for n in range(1, 10)] == [
        5, 10, 20, 40, 80, 160, 320, 600, 600]
    assert policy.ceiling(10_000) == 600


def test_full_jitter_spreads_waits_below_the_ceiling_but_not_below_retry_after() -> None:
    policy, rng = RetryPolicy(), random.Random(7)

    waits = [policy.delay(4, rng) for _ in range(2000)]
    hinted = [policy.delay(4, rng, retry_after=30.0) for _ in range(200)]

    assert 0 <= min(waits) < 2
    assert 38 < max(waits) <= 40
    assert 15 < sum(waits) / len(waits) < 25
    assert min(hinted) == 30.0
    assert max(hinted) <= 40


def test_inconsistent_settings_are_refused(outbox: Outbox) -> None:
    with pytest.raises(ValueError, match="cap_s"):
        RetryPolicy(base_s=10, cap_s=5)
    with pytest.raises(ValueError, match="shorter than lease_s"):
        Dispatcher(outbox, lambda r, c: None, lease_s=30, send_timeout_s=30)


# --- sending and retrying ---------------------------------------------------------------------

async def test_due_notifications_are_sent_and_marked(outbox: Outbox) -> None:
    clock, receiver = Clock(), Receiver()
    notes = [note(i) for i in range(5)]
    await outbox.enqueue(notes)
    outcomes: list[tuple[Outcome, str]] = []

    tried = await dispatcher(outbox, FakeChannel(receiver), clock,
                             on_outcome=lambda o, e: outcomes.append((o, e.key))).drain()

    assert tried == 5
    assert sorted(receiver.keys) == sorted(n.key for n in notes)
    assert await outbox.counts() == {"pending": 0, "sent": 5, "dead": 0, "muted": 0}
    assert (await entry(outbox, notes[0])).sent_at == NOW
    assert sorted(outcomes) == sorted(("sent", n.key) for n in notes)


async def test_failures_are_retried_with_exponential_backoff(outbox: Outbox) -> None:
    clock, receiver = Clock(), Receiver()
    n = note(1)
    await outbox.enqueue([n])
    channel = FakeChannel(receiver, failures={n.key: [
        DeliveryError("HTTP 503"), DeliveryError("HTTP 502"), DeliveryError("connect refused")]})
    worker = dispatcher(outbox, channel, clock)
    schedule = []

    for wait in (0, 5, 10, 20):
        clock.advance(wait)
        assert await worker.drain() == 1
        assert await worker.drain() == 0  # the retry is not due yet
        schedule.append((await entry(outbox, n)).next_attempt_at - clock.t)

    sent = await entry(outbox, n)
    assert schedule[:3] == [5, 10, 20]
    assert (sent.state, sent.attempts, sent.last_error) == ("sent", 4, "connect refused")
    assert receiver.keys == [n.key]


async def test_the_receivers_retry_after_is_honoured(outbox: Outbox) -> None:
    clock, n = Clock(), note(1)
    await outbox.enqueue([n])
    channel = FakeChannel(Receiver(), failures={n.key: [
        DeliveryError("HTTP 429", retry_after=300.0)]})
    worker = dispatcher(outbox, channel, clock)

    await worker.drain()
    clock.advance(299)
    assert await worker.drain() == 0
    clock.advance(1)
    assert await worker.drain() == 1

    assert (await entry(outbox, n)).state == "sent"


async def test_a_non_retryable_failure_is_dead_at_once(
        outbox: Outbox, caplog: pytest.LogCaptureFixture) -> None:
    clock, n = Clock(), note(1)
    await outbox.enqueue([n])
    channel = FakeChannel(Receiver(), failures={n.key: [
        DeliveryError("HTTP 404 from the webhook", retryable=False)]})
    outcomes: list[Outcome] = []
    worker = dispatcher(outbox, channel, clock, on_outcome=lambda o, e: outcomes.append(o))

    await worker.drain()
    clock.advance(3600)
    await worker.drain()

    dead = await entry(outbox, n)
    assert (dead.state, dead.attempts) == ("dead", 1)
    assert dead.last_error == "not retryable: HTTP 404 from the webhook"
    assert channel.calls == [n.key]
    assert outcomes == ["dead"]
    assert n.key in caplog.text
    assert "enterprise-E1/ops-hook" in caplog.text


async def test_an_unknown_receiver_or_channel_is_dead_with_the_reason(outbox: Outbox) -> None:
    clock = Clock()
    stray = [note(1, receiver="town-370829101"), note(2, channel="dingtalk")]
    await outbox.enqueue(stray)
    channel = FakeChannel(Receiver())

    await dispatcher(outbox, channel, clock).drain()

    errors = [(await entry(outbox, n)).last_error for n in stray]
    assert errors == [
        "not retryable: no channel 'ops-hook' of receiver 'town-370829101' in the routing "
        "configuration",
        "not retryable: no channel 'dingtalk' of receiver 'enterprise-E1' in the routing "
        "configuration"]
    assert channel.calls == []


async def test_gives_up_after_max_attempts(outbox: Outbox) -> None:
    clock, n = Clock(), note(1)
    await outbox.enqueue([n])
    channel = FakeChannel(Receiver(), failures={n.key: [DeliveryError("HTTP 500")] * 5})
    worker = dispatcher(outbox, channel, clock, retry=RetryPolicy(max_attempts=3))

    for _ in range(5):
        await worker.drain()
        clock.advance(600)

    dead = await entry(outbox, n)
    assert (dead.state, dead.attempts, dead.last_error) == (
        "dead", 3, "gave up after 3 attempts: HTTP 500")
    assert len(channel.calls) == 3


async def test_gives_up_when_the_next_try_would_be_too_late(outbox: Outbox) -> None:
    clock, n = Clock(), note(1)
    await outbox.enqueue([n])
    channel = FakeChannel(Receiver(), failures={n.key: [DeliveryError("HTTP 500")] * 9})
    worker = dispatcher(outbox, channel, clock, retry=RetryPolicy(max_age_s=60))

    for _ in range(4):  # tries at 0, 20, 40, 60 s; the 4th retry would come at 100 s
        await worker.drain()
        clock.advance(20)

    dead = await entry(outbox, n)
    assert dead.state == "dead"
    assert dead.attempts == 4
    assert dead.last_error == "gave up after 60 s of trying: HTTP 500"


async def test_a_send_that_hangs_times_out_and_is_retried(outbox: Outbox) -> None:
    clock, receiver, n = Clock(), Receiver(), note(1)
    await outbox.enqueue([n])

    async def hang(_: Notification) -> None:
        await asyncio.Event().wait()

    channel = FakeChannel(receiver, behaviour={n.key: hang})
    await dispatcher(outbox, channel, clock, send_timeout_s=0.05).drain()

    retrying = await entry(outbox, n)
    assert (retrying.state, retrying.last_error, retrying.next_attempt_at) == (
        "pending", "no answer within 0.05 s", NOW + 5)


async def test_an_unexpected_error_is_retried_without_repeating_its_text(
        outbox: Outbox, caplog: pytest.LogCaptureFixture) -> None:
    clock, n = Clock(), note(1)
    await outbox.enqueue([n])
    channel = FakeChannel(Receiver(), failures={n.key: [
        RuntimeError("POST https://oapi.dingtalk.com/robot/send?access_token=SECRET")]})

    with caplog.at_level(logging.DEBUG):
        await dispatcher(outbox, channel, clock).drain()

    retrying = await entry(outbox, n)
    assert retrying.state == "pending"
    assert retrying.last_error == ("RuntimeError raised by the webhook channel (channels "
                                   "should raise DeliveryError)")
    assert "SECRET" not in caplog.text
    assert n.body not in caplog.text
    assert "1650.5" not in caplog.text


async def test_muted_notifications_are_never_sent(outbox: Outbox) -> None:
    clock, receiver = Clock(), Receiver()
    await outbox.enqueue([note(1)], muted=True)
    await outbox.enqueue([note(2)])

    await dispatcher(outbox, FakeChannel(receiver), clock).drain()
    clock.advance(86_400)
    await dispatcher(outbox, FakeChannel(receiver), clock).drain()

    assert receiver.keys == [note(2).key]
    assert (await entry(outbox, note(1))).state == "muted"


async def test_sends_in_flight_never_exceed_the_concurrency(outbox: Outbox) -> None:
    clock, receiver = Clock(), Receiver()
    notes = [note(i) for i in range(20)]
    await outbox.enqueue(notes)

    async def slow(n: Notification) -> None:  # long enough for every slot to fill
        await asyncio.sleep(0.03)
        receiver.keys.append(n.key)

    channel = FakeChannel(receiver, behaviour={n.key: slow for n in notes})

    await dispatcher(outbox, channel, clock, concurrency=3, batch=2).drain()

    assert channel.most_active == 3
    assert len(receiver.distinct()) == len(receiver.keys) == 20


# --- the running worker -----------------------------------------------------------------------

async def test_notify_wakes_the_worker_at_once(outbox: Outbox) -> None:
    clock, receiver = Clock(), Receiver()
    worker = dispatcher(outbox, FakeChannel(receiver), clock, poll_s=30.0)
    task = asyncio.create_task(worker.run())
    await asyncio.sleep(0.05)  # asleep until the next poll, half a minute away

    await outbox.enqueue([note(1)])
    worker.notify()

    await until(lambda: receiver.keys == [note(1).key], within_s=2.0)
    worker.stop()
    await asyncio.wait_for(task, 5)


async def test_the_worker_sends_retries_when_they_fall_due(outbox: Outbox) -> None:
    clock, receiver, n = Clock(), Receiver(), note(1)
    await outbox.enqueue([n])
    channel = FakeChannel(receiver, failures={n.key: [DeliveryError("HTTP 503")]})
    worker = dispatcher(outbox, channel, clock)
    task = asyncio.create_task(worker.run())

    await until(lambda: len(channel.calls) == 1)
    await asyncio.sleep(0.05)  # several polls: nothing is due before 5 s
    assert receiver.keys == []
    clock.advance(5)
    await until(lambda: receiver.keys == [n.key])

    worker.stop()
    await asyncio.wait_for(task, 5)
    assert (await entry(outbox, n)).state == "sent"


async def test_a_graceful_stop_finishes_and_records_the_sends_in_flight(
        outbox: Outbox) -> None:
    clock, receiver = Clock(), Receiver()
    notes = [note(i) for i in range(4)]
    await outbox.enqueue(notes)
    release = asyncio.Event()

    async def slow(n: Notification) -> None:
        await release.wait()
        receiver.keys.append(n.key)

    channel = FakeChannel(receiver, behaviour={n.key: slow for n in notes})
    worker = dispatcher(outbox, channel, clock, concurrency=2)
    task = asyncio.create_task(worker.run())
    await until(lambda: len(channel.calls) == 2)

    worker.stop()
    release.set()
    await asyncio.wait_for(task, 5)

    assert receiver.keys == [notes[0].key, notes[1].key]
    assert await outbox.counts() == {"pending": 2, "sent": 2, "dead": 0, "muted": 0}
    assert [e.lease_until for e in await outbox.pending()] == [None, None]


async def test_a_restart_in_the_middle_delivers_everything_once_but_the_unrecorded_one(
        outbox: Outbox, database_url: str) -> None:
    """A dispatcher dies with sends in flight; a new process on the same database
    finishes the job.  Only the notification that reached its receiver but was not yet
    marked sent is delivered twice, with the same idempotency key."""
    clock, receiver = Clock(), Receiver()
    notes = [note(i) for i in range(8)]
    await outbox.enqueue(notes)
    stuck = asyncio.Event()  # never set: these sends are in flight when the process dies

    async def delivered_then_stuck(n: Notification) -> None:
        receiver.keys.append(n.key)  # the receiver has it...
        await stuck.wait()           # ...but the dispatcher never hears back

    async def stuck_before_delivery(_: Notification) -> None:
        await stuck.wait()

    unrecorded = notes[2]
    first = FakeChannel(receiver, behaviour={
        unrecorded.key: delivered_then_stuck,
        notes[3].key: stuck_before_delivery, notes[4].key: stuck_before_delivery})
    worker = dispatcher(outbox, first, clock, concurrency=3, batch=3, lease_s=120)
    task = asyncio.create_task(worker.run())
    await until(lambda: first.active == 3 and len(receiver.keys) == 3)

    task.cancel()  # the process dies
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await outbox.counts() == {"pending": 6, "sent": 2, "dead": 0, "muted": 0}

    other_engine = create_async_engine(database_url)  # the restarted process
    try:
        restarted = dispatcher(Outbox(other_engine), FakeChannel(receiver), clock, lease_s=120)
        assert await restarted.drain() == 3  # the never-claimed ones go at once
        clock.advance(120)                    # the dead process's leases run out
        assert await restarted.drain() == 3
        assert await restarted.drain() == 0
    finally:
        await other_engine.dispose()

    copies = Counter(receiver.keys)
    assert copies[unrecorded.key] == 2
    assert all(copies[n.key] == 1 for n in notes if n is not unrecorded)
    assert receiver.distinct() == {n.key for n in notes}
    assert await outbox.counts() == {"pending": 0, "sent": 8, "dead": 0, "muted": 0}
    assert (await entry(outbox, notes[3])).attempts == 2


async def test_two_dispatchers_on_one_outbox_send_each_notification_once(
        outbox: Outbox, database_url: str) -> None:
    clock, receiver = Clock(), Receiver()
    await outbox.enqueue([note(i) for i in range(40)])
    other_engine = create_async_engine(database_url)
    try:
        workers = [dispatcher(outbox, FakeChannel(receiver), clock, concurrency=4, batch=3),
                   dispatcher(Outbox(other_engine), FakeChannel(receiver), clock,
                              concurrency=4, batch=3)]
        tasks = [asyncio.create_task(w.run()) for w in workers]
        await until(lambda: len(receiver.keys) >= 40)
        for w in workers:
            w.stop()
        await asyncio.wait_for(asyncio.gather(*tasks), 5)
    finally:
        await other_engine.dispose()

    assert sorted(receiver.keys) == sorted(note(i).key for i in range(40))
    assert await outbox.counts() == {"pending": 0, "sent": 40, "dead": 0, "muted": 0}
