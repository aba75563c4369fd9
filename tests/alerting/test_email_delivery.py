"""E-mail delivery end to end: outbox → dispatcher → EmailSender → a real SMTP server.

Everything on the way is real: the outbox on a SQLite file and on PostgreSQL
(``database_url``), the channel built by the factory from its routing configuration,
aiosmtplib talking SMTP over a loopback socket to aiosmtpd (``tests/smtp_server.py``).
Failures are induced by the server's answers, as a relay gives them: ``451`` to the
first ``DATA`` commands of each message (greylisting, a full queue), ``550`` for good.

The dispatcher runs on a clock the tests advance, with a backoff whose jitter is pinned
to its ceiling, so retry times are exact and nothing sleeps; one test runs the live loop
on the wall clock with a backoff of a few milliseconds instead.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator

import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from alerting.channels.config import EmailChannel, SmtpServer
from alerting.channels.factory import build_channel
from alerting.dispatcher import Dispatcher, Outcome, RetryPolicy
from alerting.manager import AlertManager
from alerting.messages import build_notification
from alerting.models import Condition, Subject
from alerting.notification import Channel, Notification
from alerting.outbox import Outbox, OutboxEntry
from tests.helpers import fresh_schema
from tests.smtp_server import Mailbox, parse, running_smtp

T0 = 1_795_478_400.0  # 2026-11-24T08:00:00+08:00: event time of the alerts
NOW = 1_780_000_000.0  # the dispatcher's clock, unrelated to event time
RECEIVER = "E370829001-duty"
TO = "duty@370829.example.cn"
GREYLISTED = "451 4.3.0 try again later"
ACCEPTED = "250 Message accepted"
POLICY = RetryPolicy(base_s=1.0, factor=2.0, cap_s=4.0, max_attempts=8)


@pytest.fixture
async def outbox(database_url: str) -> AsyncIterator[Outbox]:
    engine = create_async_engine(database_url)
    await fresh_schema(engine)
    try:
        yield Outbox(engine)
    finally:
        await engine.dispose()


@pytest.fixture
def relay() -> Iterator[tuple[Mailbox, SmtpServer]]:
    mailbox = Mailbox()
    with running_smtp(mailbox) as smtp:
        yield mailbox, smtp


class Clock:
    def __init__(self, t: float = NOW) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


class CeilingJitter(random.Random):
    """Always the longest wait the policy allows, so retry times are exact."""

    def uniform(self, a: float, b: float) -> float:
        return b


def notifications(count: int, *, to: str = TO) -> list[Notification]:
    """``count`` alerts of one enterprise (devices DC1, DC2, ...), one e-mail each."""
    conditions = []
    for i in range(1, count + 1):
        subject = Subject(
            enterprise_id="E370829001", enterprise_name="某某金属制品有限公司",
            industry="dust", region=("370000", "370800", "370829", "370829101"),
            timezone="Asia/Shanghai", device_id=f"DC{i}", device_kind="dust_collector",
            point="dp", point_kind="differential_pressure", unit="Pa")
        conditions.append(Condition(
            kind="threshold", subject=subject, active=True, level=2, started_at=T0,
            at=T0 + 30, evidence={"rule": "threshold", "band": "hihi",
                                  "value": 2150.0 + i, "limit": 2000.0},
            detail={"band": "hihi", "value": 2150.0 + i, "limit": 2000.0}))
    alerts = AlertManager().apply(conditions)
    assert len(alerts) == count
    return [build_notification([alert], receiver=RECEIVER, tier="enterprise",
                               channel=channel_name(to), reason="firing",
                               created_at=T0 + 60)
            for alert in alerts]


def channel_name(to: str) -> str:
    return "mail-" + to.split("@")[0]


def email_channels(smtp: SmtpServer, *addresses: str) -> dict[tuple[str, str], Channel]:
    """The receiver's e-mail channels as the service builds them from the routing file."""
    return {(RECEIVER, channel_name(to)): build_channel(
        EmailChannel(type="email", name=channel_name(to), to=[to]), smtp=smtp,
        sms_gateway=None, mqtt_publish=None) for to in addresses}


class Outcomes(Counter[str]):
    def __call__(self, outcome: Outcome, entry: OutboxEntry) -> None:
        self[outcome] += 1


def dispatcher(outbox: Outbox, smtp: SmtpServer, clock: Clock, outcomes: Outcomes,
               *addresses: str) -> Dispatcher:
    channels = email_channels(smtp, *(addresses or (TO,)))
    return Dispatcher(outbox, lambda r, c: channels.get((r, c)), now=clock, retry=POLICY,
                      rng=CeilingJitter(), concurrency=4, on_outcome=outcomes)


def message_id(n: Notification) -> str:
    return f"<{n.key}@riskwatch>"


async def stored(outbox: Outbox, n: Notification) -> OutboxEntry:
    entry = await outbox.get(n.key)
    assert entry is not None
    return entry


# --- temporary failures -----------------------------------------------------------------------

@pytest.mark.parametrize("failures", [1, 3])
async def test_greylisted_mail_is_retried_with_backoff_and_arrives_once(
        outbox: Outbox, relay: tuple[Mailbox, SmtpServer], failures: int) -> None:
    mailbox, smtp = relay
    mailbox.fail_data(failures, GREYLISTED)
    sent = notifications(3)
    assert await outbox.enqueue(sent) == [n.key for n in sent]
    clock, outcomes = Clock(), Outcomes()
    worker = dispatcher(outbox, smtp, clock, outcomes)

    retry_times = []
    for attempt in range(1, failures + 1):
        assert await worker.drain() == len(sent)
        entries = [await stored(outbox, n) for n in sent]
        assert {(e.state, e.attempts) for e in entries} == {("pending", attempt)}
        assert all(GREYLISTED in (e.last_error or "") for e in entries)
        [due] = {e.next_attempt_at for e in entries}
        assert due == clock.t + POLICY.ceiling(attempt)  # 1, 2, 4 s: the backoff
        assert await worker.drain() == 0  # not due yet: nothing is sent early
        retry_times.append(due - clock.t)
        clock.t = due
    assert await worker.drain() == len(sent)
    assert await worker.drain() == 0

    assert retry_times == [POLICY.ceiling(a) for a in range(1, failures + 1)]
    assert mailbox.accepted() == Counter({message_id(n): 1 for n in sent})  # exactly once
    for n in sent:
        assert mailbox.data_replies[message_id(n)] == [GREYLISTED] * failures + [ACCEPTED]
        entry = await stored(outbox, n)
        assert (entry.state, entry.attempts, entry.sent_at) == ("sent", failures + 1, clock.t)
        assert entry.lease_until is None
        assert GREYLISTED in (entry.last_error or "")  # the last failure, for the record
    assert outcomes == Counter({"retry": failures * len(sent), "sent": len(sent)})
    by_id = {parse(e)["Message-ID"]: e for e in mailbox.envelopes}
    for n in sent:
        envelope = by_id[message_id(n)]
        assert envelope.rcpt_tos == [TO]
        assert b"=?utf-8?" in envelope.original_content.split(b"\r\n\r\n", 1)[0].lower()
        mail = parse(envelope)
        assert mail["Subject"] == n.subject  # decoded back from RFC 2047
        assert mail["Subject"].startswith("【橙色预警】某某金属制品有限公司")
        assert mail.get_content().rstrip("\n") == n.body
    assert await outbox.counts() == {"pending": 0, "sent": 3, "dead": 0, "muted": 0}


async def test_the_live_loop_retries_on_the_wall_clock(
        outbox: Outbox, relay: tuple[Mailbox, SmtpServer]) -> None:
    """``run()`` as the service runs it: woken by ``notify``, sleeping until the next
    retry falls due (backoff of a few ms here), no simulated clock."""
    mailbox, smtp = relay
    mailbox.fail_data(2, GREYLISTED)
    sent = notifications(2)
    channels = email_channels(smtp, TO)
    worker = Dispatcher(outbox, lambda r, c: channels.get((r, c)), poll_s=0.5,
                        retry=RetryPolicy(base_s=0.02, factor=2.0, cap_s=0.05))
    task = asyncio.create_task(worker.run())
    try:
        await outbox.enqueue(sent)
        worker.notify()
        deadline = time.monotonic() + 20
        while (await outbox.counts())["sent"] < len(sent):
            assert time.monotonic() < deadline, await outbox.counts()
            await asyncio.sleep(0.02)
    finally:
        worker.stop()
        await asyncio.wait_for(task, 20)

    assert mailbox.accepted() == Counter({message_id(n): 1 for n in sent})
    for n in sent:
        entry = await stored(outbox, n)
        assert (entry.state, entry.attempts) == ("sent", 3)
        assert mailbox.data_replies[message_id(n)] == [GREYLISTED, GREYLISTED, ACCEPTED]


# --- permanent failures -----------------------------------------------------------------------

@pytest.mark.parametrize(("to", "answer", "reply"), [
    (TO, "550 5.7.1 Message refused by policy", "SMTP 550 5.7.1 Message refused by policy"),
    ("nobody@370829.example.cn", None, "nobody@370829.example.cn: 550 5.1.1 No such user"),
], ids=["data", "recipient"])
async def test_a_permanent_refusal_kills_the_notification_after_one_attempt(
        outbox: Outbox, relay: tuple[Mailbox, SmtpServer], to: str, answer: str | None,
        reply: str) -> None:
    mailbox, smtp = relay
    if answer is not None:
        mailbox.fail_data(5, answer)
    [n] = notifications(1, to=to)
    await outbox.enqueue([n])
    clock, outcomes = Clock(), Outcomes()
    worker = dispatcher(outbox, smtp, clock, outcomes, to)

    assert await worker.drain() == 1
    clock.t += POLICY.cap_s * 10
    assert await worker.drain() == 0  # dead rows are never claimed again

    entry = await stored(outbox, n)
    assert (entry.state, entry.attempts, entry.sent_at) == ("dead", 1, None)
    assert entry.last_error is not None
    assert entry.last_error.startswith("not retryable: email ")
    assert reply in entry.last_error  # the relay's own words, for whoever fixes it
    assert outcomes == Counter({"dead": 1})
    assert mailbox.envelopes == []
    if answer is not None:
        assert mailbox.data_replies == {message_id(n): [answer]}


async def test_a_dead_mail_retried_by_hand_after_the_fix_is_delivered_once(
        outbox: Outbox, relay: tuple[Mailbox, SmtpServer]) -> None:
    mailbox, smtp = relay
    mailbox.fail_data(1, "550 5.7.1 Message refused by policy")
    [n] = notifications(1)
    await outbox.enqueue([n])
    clock, outcomes = Clock(), Outcomes()
    worker = dispatcher(outbox, smtp, clock, outcomes)
    await worker.drain()
    assert (await stored(outbox, n)).state == "dead"

    mailbox.accept_all()  # the relay's policy was fixed
    clock.t += 3600
    retried = await outbox.retry_dead(n.key, clock.t)
    assert (retried.state, retried.attempts, retried.next_attempt_at) == ("pending", 0, clock.t)
    assert await worker.drain() == 1

    entry = await stored(outbox, n)
    assert (entry.state, entry.attempts, entry.sent_at) == ("sent", 1, clock.t)
    assert "550 5.7.1" in (entry.last_error or "")  # why it had died stays on record
    assert mailbox.accepted() == Counter({message_id(n): 1})
    assert parse(mailbox.envelopes[0])["Subject"] == n.subject
    assert outcomes == Counter({"dead": 1, "sent": 1})
