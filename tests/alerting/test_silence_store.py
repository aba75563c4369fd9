"""Stored silences on a real SQLite file and PostgreSQL: made, listed, expired, kept."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from alerting.silence_store import SilenceNotFound, SilenceStore, new_silence_id
from alerting.silences import Silence
from tests.helpers import fresh_schema

T0 = 1_795_478_400.0  # 2026-11-24T08:00:00+08:00


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[SilenceStore]:
    engine = create_async_engine(database_url)
    await fresh_schema(engine)
    try:
        yield SilenceStore(engine)
    finally:
        await engine.dispose()


def silence(sid: str, starts: float, ends: float, *, created: float | None = None,
            **matchers: tuple[str, ...]) -> Silence:
    return Silence(id=sid, matchers=matchers or {"enterprise": ("E1",)}, starts_at=starts,
                   ends_at=ends, created_by="王五", comment="除尘器停机检修",
                   created_at=starts if created is None else created)


@pytest.fixture
async def three(store: SilenceStore) -> dict[str, Silence]:
    """Ended at T0, running from T0 - 60 to T0 + 3600, scheduled from T0 + 600."""
    made = [silence("ended", T0 - 7200, T0, created=T0 - 7200),
            silence("running", T0 - 60, T0 + 3600, created=T0 - 60),
            silence("scheduled", T0 + 600, T0 + 1200, created=T0 - 30)]
    return {s.id: await store.create(s) for s in made}


async def ids(store: SilenceStore, **kwargs: object) -> list[str]:
    return [s.id for s in await store.list(**kwargs)]  # type: ignore[arg-type]


async def test_create_then_get_round_trips(store: SilenceStore) -> None:
    made = silence(new_silence_id(), T0 + 0.0004, T0 + 3600.25, created=T0 - 1,
                   device=("DC1", "DC2"), level=("2",))

    stored = await store.create(made)

    assert stored.starts_at == T0  # millisecond resolution, as every stored time
    assert stored.matchers == {"device": ("DC1", "DC2"), "level": ("2",)}
    assert await store.get(made.id) == stored
    assert await store.get("nope") is None


async def test_an_id_is_used_once(store: SilenceStore) -> None:
    await store.create(silence("s1", T0, T0 + 60))

    with pytest.raises(sa.exc.IntegrityError):
        await store.create(silence("s1", T0, T0 + 120))


def test_new_ids_are_distinct_hex() -> None:
    a, b = new_silence_id(), new_silence_id()
    assert a != b
    assert len(a) == 32
    assert int(a, 16) >= 0


async def test_list_newest_created_first_with_pages(store: SilenceStore,
                                                    three: dict[str, Silence]) -> None:
    assert await ids(store) == ["scheduled", "running", "ended"]
    assert await ids(store, limit=1, offset=1) == ["running"]
    assert await store.count() == 3
    with pytest.raises(ValueError, match="limit"):
        await store.list(limit=0)


async def test_list_active_at_an_instant(store: SilenceStore,
                                         three: dict[str, Silence]) -> None:
    assert await ids(store, active_at=T0) == ["running"]  # "ended" ends at T0: half-open
    assert await ids(store, active_at=T0 + 600) == ["scheduled", "running"]
    assert await store.count(active_at=T0 - 60) == 2


async def test_list_without_expired_keeps_scheduled(store: SilenceStore,
                                                    three: dict[str, Silence]) -> None:
    assert await ids(store, include_expired=False, now=T0) == ["scheduled", "running"]
    assert await store.count(include_expired=False, now=T0 + 1200) == 1
    with pytest.raises(ValueError, match="now"):
        await store.list(include_expired=False)


async def test_expire_ends_a_running_silence_and_keeps_it(
    store: SilenceStore, three: dict[str, Silence]
) -> None:
    expired = await store.expire("running", actor=" 李四 ", at=T0 + 100)

    assert (expired.ends_at, expired.expired_by) == (T0 + 100, "李四")
    assert expired.starts_at == three["running"].starts_at
    assert not expired.active(T0 + 100)
    assert await store.get("running") == expired
    assert await ids(store) == ["scheduled", "running", "ended"]
    assert await ids(store, active_at=T0 + 100) == []


async def test_expiring_an_ended_silence_is_a_no_op(store: SilenceStore,
                                                     three: dict[str, Silence]) -> None:
    assert await store.expire("ended", actor="李四", at=T0 + 100) == three["ended"]
    first = await store.expire("running", actor="李四", at=T0 + 100)
    assert await store.expire("running", actor="赵六", at=T0 + 200) == first


async def test_expiring_a_scheduled_silence_cancels_it(store: SilenceStore,
                                                        three: dict[str, Silence]) -> None:
    cancelled = await store.expire("scheduled", actor="李四", at=T0 + 100)

    assert cancelled.starts_at == T0 + 600  # the schedule stays on record
    assert cancelled.ends_at == T0 + 100
    assert not any(cancelled.active(t) for t in (T0 + 100, T0 + 600, T0 + 900))
    assert await store.get("scheduled") == cancelled
    assert "scheduled" not in [s.id for s in await store.load_active(T0 + 100)]


async def test_expire_unknown_or_anonymous(store: SilenceStore,
                                           three: dict[str, Silence]) -> None:
    with pytest.raises(SilenceNotFound) as caught:
        await store.expire("nope", actor="李四", at=T0)
    assert isinstance(caught.value, LookupError)
    with pytest.raises(ValueError, match="name"):
        await store.expire("running", actor=" ", at=T0)
    assert await store.get("running") == three["running"]


async def test_load_active_gives_running_and_scheduled(store: SilenceStore,
                                                       three: dict[str, Silence]) -> None:
    assert [s.id for s in await store.load_active(T0)] == ["running", "scheduled"]
    assert [s.id for s in await store.load_active(T0 + 1200)] == ["running"]
    assert await store.load_active(T0 + 3600) == []
