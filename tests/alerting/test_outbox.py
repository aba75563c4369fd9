"""The notification outbox on a real SQLite file and a real PostgreSQL server.

Every test runs on both databases (``database_url`` fixture); the PostgreSQL database
is shared by the module, so each test starts by dropping what an earlier one left and
migrating afresh.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from alerting.notification import Notification, notification_key
from alerting.outbox import Outbox, OutboxEntry
from alerting.schema import notifications_table

T0 = 1_795_478_400.0  # 2026-11-24T08:00:00+08:00: event time of the decisions
NOW = 1_780_000_000.0  # the dispatcher's clock, deliberately unrelated to event time


@pytest.fixture
def outbox(engine: AsyncEngine) -> Outbox:
    return Outbox(engine)


def note(i: int, *, receiver: str = "enterprise-E1", channel: str = "ops-hook",
         **changes: Any) -> Notification:
    """The ``i``-th decision, created ``i`` seconds after T0 (so claims come in order)."""
    fields: dict[str, Any] = {
        "key": notification_key(f"A{i}", receiver, channel, "firing", 0),
        "alert_ids": (f"A{i}",),
        "enterprise_id": "E1",
        "receiver": receiver,
        "tier": "enterprise",
        "channel": channel,
        "reason": "firing",
        "locale": "zh",
        "subject": f"【黄色预警】某某金属制品有限公司 除尘器压差超上限 #{i}",
        "body": "**压差** 1650.5 Pa > 1500 Pa\n请立即核实处置。",
        "payload": {"alerts": [{"id": f"A{i}", "level": 3, "evidence": {
            "window": [[T0, 1600.0], [T0 + 10, 1650.5]], "limits": {"hi": 1500, "lo": None}}}],
            "receiver": receiver},
        "created_at": T0 + i + 0.125,
        "extra": {"group_window_s": 30, "mentions": ["13800000000"]},
    }
    fields.update(changes)
    return Notification(**fields)


def keys(entries: list[OutboxEntry]) -> list[str]:
    return [entry.key for entry in entries]


# --- enqueue --------------------------------------------------------------------------------

async def test_a_notification_round_trips_faithfully(outbox: Outbox) -> None:
    n = note(1)

    assert await outbox.enqueue([n]) == [n.key]

    entry = await outbox.get(n.key)
    assert entry is not None
    assert entry.notification == n
    assert (entry.state, entry.attempts, entry.next_attempt_at, entry.first_attempt_at,
            entry.lease_until, entry.last_error, entry.sent_at) == (
        "pending", 0, 0.0, None, None, None, None)


async def test_a_group_digest_with_no_extra_round_trips(outbox: Outbox) -> None:
    n = note(2, alert_ids=("A1", "A2", "A3"), reason="group", tier="county", locale="en",
             extra={})

    await outbox.enqueue([n])

    entry = await outbox.get(n.key)
    assert entry is not None
    assert entry.notification == n


async def test_the_same_notification_decided_twice_is_stored_once(outbox: Outbox) -> None:
    a, b, c = note(1), note(2), note(3)

    first = await outbox.enqueue([a, b])
    second = await outbox.enqueue([b, c, c])
    third = await outbox.enqueue([a], muted=True)

    assert (first, second, third) == ([a.key, b.key], [c.key], [])
    assert await outbox.counts() == {"pending": 3, "sent": 0, "dead": 0, "muted": 0}


async def test_a_repeated_key_keeps_its_first_version(outbox: Outbox) -> None:
    original = note(1)
    await outbox.enqueue([original, note(1, body="changed")])
    await outbox.enqueue([note(1, subject="changed again")])

    entry = await outbox.get(original.key)
    assert entry is not None
    assert entry.notification == original


async def test_muted_notifications_are_recorded_but_never_claimed(outbox: Outbox) -> None:
    await outbox.enqueue([note(1)], muted=True)

    assert await outbox.claim_due(NOW, 10, 60) == []
    assert await outbox.counts() == {"pending": 0, "sent": 0, "dead": 0, "muted": 1}
    assert await outbox.mark_sent(note(1).key, NOW) is False
    assert (await outbox.query(state="muted"))[0].notification == note(1)


async def test_unstorable_notifications_are_refused_before_any_write(outbox: Outbox) -> None:
    with pytest.raises(ValueError, match=r"payload of notification \w+ is not JSON"):
        await outbox.enqueue([note(1), note(2, payload={"x": object()})])
    with pytest.raises(ValueError, match="tier must be one of"):
        await outbox.enqueue([note(3, tier="province")])
    with pytest.raises(ValueError, match="reason must be one of"):
        await outbox.enqueue([note(4, reason="whim")])

    assert await outbox.counts() == {"pending": 0, "sent": 0, "dead": 0, "muted": 0}
    assert await outbox.enqueue([]) == []


# --- claim, lease, results -------------------------------------------------------------------

async def test_claims_lease_due_rows_oldest_first(outbox: Outbox) -> None:
    await outbox.enqueue([note(3), note(1), note(2)])

    first = await outbox.claim_due(NOW, 2, 60)
    second = await outbox.claim_due(NOW, 2, 60)
    third = await outbox.claim_due(NOW + 59.999, 2, 60)

    assert keys(first) == [note(1).key, note(2).key]
    assert keys(second) == [note(3).key]
    assert third == []
    assert [(e.attempts, e.lease_until, e.first_attempt_at) for e in first] == [
        (1, NOW + 60, NOW), (1, NOW + 60, NOW)]


async def test_a_claim_never_exceeds_its_limit(outbox: Outbox) -> None:
    # On PostgreSQL, a LIMIT .. FOR UPDATE subquery under ``IN`` was once rescanned per
    # row and claimed everything; the limit must hold for any number of due rows.
    await outbox.enqueue([note(i) for i in range(50)])

    claimed = await outbox.claim_due(NOW, 5, 60)

    assert keys(claimed) == [note(i).key for i in range(5)]
    assert (await outbox.counts())["pending"] == 50
    assert len(await outbox.claim_due(NOW, 100, 60)) == 45


async def test_an_expired_lease_is_claimed_again_as_a_new_attempt(outbox: Outbox) -> None:
    await outbox.enqueue([note(1)])
    await outbox.claim_due(NOW, 10, 60)  # its holder dies without recording anything

    again = await outbox.claim_due(NOW + 60, 10, 60)

    assert [(e.attempts, e.first_attempt_at, e.lease_until) for e in again] == [
        (2, NOW, NOW + 120)]


async def test_a_failed_row_is_due_again_at_its_retry_time(outbox: Outbox) -> None:
    await outbox.enqueue([note(1)])
    [entry] = await outbox.claim_due(NOW, 10, 60)

    assert await outbox.mark_failed(entry.key, "HTTP 503", retry_at=NOW + 10,
                                    attempt=entry.attempts)

    assert await outbox.claim_due(NOW + 9.999, 10, 60) == []
    assert await outbox.next_due() == NOW + 10
    [retried] = await outbox.claim_due(NOW + 10, 10, 60)
    assert (retried.attempts, retried.last_error, retried.first_attempt_at) == (
        2, "HTTP 503", NOW)


async def test_marked_sent_rows_are_done(outbox: Outbox) -> None:
    await outbox.enqueue([note(1)])
    [entry] = await outbox.claim_due(NOW, 10, 60)

    assert await outbox.mark_sent(entry.key, NOW + 0.5) is True
    assert await outbox.mark_sent(entry.key, NOW + 1) is False

    sent = await outbox.get(entry.key)
    assert sent is not None
    assert (sent.state, sent.sent_at, sent.lease_until) == ("sent", NOW + 0.5, None)
    assert await outbox.claim_due(NOW + 3600, 10, 60) == []
    assert await outbox.next_due() is None


async def test_failing_for_good_makes_a_row_dead(outbox: Outbox) -> None:
    await outbox.enqueue([note(1)])
    [entry] = await outbox.claim_due(NOW, 10, 60)

    await outbox.mark_failed(entry.key, "not retryable: HTTP 404", retry_at=None)

    dead = await outbox.get(entry.key)
    assert dead is not None
    assert (dead.state, dead.last_error, dead.lease_until) == (
        "dead", "not retryable: HTTP 404", None)
    assert await outbox.claim_due(NOW + 3600, 10, 60) == []
    assert keys(await outbox.query(state="dead")) == [entry.key]


async def test_a_stale_failure_does_not_disturb_a_newer_claim(outbox: Outbox) -> None:
    await outbox.enqueue([note(1)])
    [old] = await outbox.claim_due(NOW, 10, 60)  # a send that outlives its lease
    [new] = await outbox.claim_due(NOW + 61, 10, 60)

    assert await outbox.mark_failed(old.key, "late", retry_at=NOW + 62,
                                    attempt=old.attempts) is False

    current = await outbox.get(old.key)
    assert current is not None
    assert (current.attempts, current.lease_until, current.last_error) == (
        new.attempts, NOW + 121, None)


async def test_a_delivery_reported_late_wins_over_a_dead_verdict(outbox: Outbox) -> None:
    await outbox.enqueue([note(1)])
    [entry] = await outbox.claim_due(NOW, 10, 60)
    await outbox.mark_failed(entry.key, "not retryable: HTTP 410", retry_at=None)

    assert await outbox.mark_sent(entry.key, NOW + 1) is True

    sent = await outbox.get(entry.key)
    assert sent is not None
    assert sent.state == "sent"


async def test_queries_and_counts_for_the_api(outbox: Outbox) -> None:
    await outbox.enqueue([note(1), note(2), note(3, enterprise_id="E2")])
    await outbox.enqueue([note(4)], muted=True)
    [first, *_] = await outbox.claim_due(NOW, 1, 60)
    await outbox.mark_sent(first.key, NOW)

    assert await outbox.counts() == {"pending": 2, "sent": 1, "dead": 0, "muted": 1}
    assert keys(await outbox.pending()) == [note(2).key, note(3).key]
    assert keys(await outbox.pending(enterprise_id="E2")) == [note(3).key]
    assert keys(await outbox.query(limit=2, offset=1)) == [note(2).key, note(3).key]
    with pytest.raises(ValueError, match="state must be one of"):
        await outbox.query(state="lost")  # type: ignore[arg-type]


async def test_receivers_told_per_alert_for_a_restart(outbox: Outbox) -> None:
    await outbox.enqueue([note(1), note(1, receiver="town-370829101"),
                          note(2, alert_ids=("A1", "A2"), reason="group")])
    await outbox.enqueue([note(3, receiver="county-370829")], muted=True)

    told = await outbox.receivers_told(["A1", "A3", "A9"])
    recent = await outbox.receivers_told(["A1"], since=T0 + 2)

    assert told == {"A1": {"enterprise-E1", "town-370829101"},
                    "A3": {"county-370829"}}
    assert recent == {"A1": {"enterprise-E1"}}  # only the digest decided at T0 + 2.125
    assert await outbox.receivers_told([]) == {}


async def test_next_due_counts_leases(outbox: Outbox) -> None:
    assert await outbox.next_due() is None
    await outbox.enqueue([note(1)])
    assert await outbox.next_due() == 0.0

    await outbox.claim_due(NOW, 10, 60)

    assert await outbox.next_due() == NOW + 60


# --- concurrent claimers ----------------------------------------------------------------------

async def test_concurrent_claimers_get_disjoint_rows(outbox: Outbox, database_url: str) -> None:
    """Two engines (two pools, as two processes would have) claim in parallel."""
    await outbox.enqueue([note(i) for i in range(60)])
    other_engine = create_async_engine(database_url)
    others = Outbox(other_engine)
    claimed: list[list[str]] = [[], []]
    try:
        while True:
            a, b = await asyncio.gather(outbox.claim_due(NOW, 7, 60),
                                        others.claim_due(NOW, 7, 60))
            if not a and not b:
                break
            claimed[0] += keys(a)
            claimed[1] += keys(b)
    finally:
        await other_engine.dispose()

    assert not set(claimed[0]) & set(claimed[1])
    assert sorted(claimed[0] + claimed[1]) == sorted(note(i).key for i in range(60))
    assert claimed[0]
    assert claimed[1]


async def test_postgresql_claims_skip_rows_locked_by_another_claimer(
        engine: AsyncEngine, outbox: Outbox, database_url: str) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("SKIP LOCKED is PostgreSQL's; SQLite has one writer at a time")
    await outbox.enqueue([note(i) for i in range(6)])
    t = notifications_table
    other_engine = create_async_engine(database_url)
    try:
        async with other_engine.connect() as conn:  # a claimer mid-transaction
            locked = set((await conn.execute(
                sa.select(t.c.key).order_by(t.c.created_at).limit(3)
                .with_for_update())).scalars())

            claimed = await asyncio.wait_for(outbox.claim_due(NOW, 10, 60), timeout=5)

            await conn.rollback()
    finally:
        await other_engine.dispose()

    assert set(keys(claimed)) == {note(i).key for i in range(3, 6)}
    assert locked == {note(i).key for i in range(3)}
