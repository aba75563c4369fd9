"""The notification outbox: every notification is stored before it is sent.

The engine decides *that* a notification goes out and calls :meth:`Outbox.enqueue`; the
:class:`~alerting.dispatcher.Dispatcher` later claims it, sends it and records the
result.  Because the row is written first, a crash loses nothing: a restarted
dispatcher finds the row still ``pending`` and sends it.  Because the row's primary key
is the notification's idempotency key, deciding the same notification twice (a replay,
a restart that re-evaluates open alerts) stores it once.

A row moves through these states::

    pending --(sent)--> sent
       |  ^
       |  +--(failed, retry later)--+
       +--(failed for good)--> dead
    muted                  (silenced when decided: recorded, never sent)

**Claiming.**  :meth:`Outbox.claim_due` gives a dispatcher due rows under a *lease*
(``lease_until``): until it expires nobody else claims them, so two dispatchers never
send the same row at the same time.  It is one ``UPDATE .. RETURNING`` statement; on
PostgreSQL its row selection is ``FOR UPDATE SKIP LOCKED``, so concurrent claimers skip
each other's rows instead of waiting for them or claiming them twice; SQLite runs one
writer at a time, which makes the same statement atomic there.  Claiming counts an
attempt, so a notification that crashes the process every time still runs out of
attempts.  If its holder dies, a lease simply expires and the row is claimed again:
that is the at-least-once window, which the idempotency key lets receivers close.

**Clocks.**  ``created_at`` is the engine's event time and part of the message; the
bookkeeping times (``next_attempt_at``, ``first_attempt_at``, ``lease_until``,
``sent_at``) are all the dispatcher's clock, so replays with a simulated clock and live
runs behave alike.  A new row is due at once (``next_attempt_at`` 0).

**Operators.**  :meth:`Outbox.find` and :meth:`Outbox.count` back the notifications API
(filter by state, enterprise and alert); :meth:`Outbox.retry_dead` puts a ``dead`` row
back to ``pending`` once a person has fixed the receiver.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast, get_args

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from alerting.notification import TIERS, Notification, Reason, Tier
from alerting.schema import OUTBOX_STATES, notifications_table
from alerting.timefmt import from_ms, to_ms

OutboxState = Literal["pending", "sent", "dead", "muted"]
Order = Literal["newest", "oldest"]

_REASONS: tuple[str, ...] = get_args(Reason)
_MAX_ERROR_CHARS = 2000
_t = notifications_table


class OutboxError(RuntimeError):
    """The outbox cannot work with this database (e.g. an unsupported dialect)."""


class NotificationNotFound(LookupError):
    """No notification is stored under this key; the API answers 404."""

    def __init__(self, key: str) -> None:
        super().__init__(f"no notification with key {key!r}")
        self.key = key


class NotDead(ValueError):
    """Only a ``dead`` notification can be retried by hand; the API answers 409.

    A ``pending`` one is retried by the dispatcher anyway, a ``sent`` one was delivered
    and a ``muted`` one was silenced on purpose: resending any of them by hand would
    send a message nobody decided to send.
    """

    def __init__(self, key: str, state: OutboxState) -> None:
        super().__init__(f"notification {key!r} is {state}, not dead: only dead "
                         "notifications can be retried")
        self.key = key
        self.state = state


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """A stored notification and where its delivery stands."""

    notification: Notification
    state: OutboxState
    attempts: int
    """Times it was claimed for sending (a claim whose holder died counts too)."""
    next_attempt_at: float
    """Epoch s (dispatcher clock) from which it may be claimed; 0 means at once."""
    first_attempt_at: float | None
    """When it was first claimed: the dispatcher gives up ``max_age`` after this."""
    lease_until: float | None
    """While in the future, a dispatcher holds it (is sending it)."""
    last_error: str | None
    sent_at: float | None

    @property
    def key(self) -> str:
        return self.notification.key


class Outbox:
    """Stores notifications and their delivery state through a borrowed engine."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._dialect = engine.dialect.name
        if self._dialect not in ("sqlite", "postgresql"):
            raise OutboxError(f"unsupported database dialect {self._dialect!r} "
                              "(SQLite and PostgreSQL are)")

    async def enqueue(self, notifications: Sequence[Notification], *,
                      muted: bool = False) -> list[str]:
        """Store ``notifications`` (``pending``, or ``muted`` if silenced); return the keys
        that were new.

        A key already stored is left alone whatever its state, so the same decision
        made twice is sent once.  ``ValueError`` (before any database access) means a
        notification can never be stored: unknown tier or reason, payload not JSON.
        """
        rows: dict[str, dict[str, Any]] = {}
        for n in notifications:  # one statement may not insert a key twice
            if n.key not in rows:
                rows[n.key] = _to_row(n, "muted" if muted else "pending")
        if not rows:
            return []
        insert = sqlite.insert(_t) if self._dialect == "sqlite" else postgresql.insert(_t)
        stmt = insert.on_conflict_do_nothing(index_elements=[_t.c.key]).returning(_t.c.key)
        async with self._engine.begin() as conn:
            stored = set((await conn.execute(stmt, list(rows.values()))).scalars())
        return [key for key in rows if key in stored]

    async def claim_due(self, now: float, limit: int, lease_s: float) -> list[OutboxEntry]:
        """Lease up to ``limit`` pending rows due at ``now`` for ``lease_s`` seconds.

        Oldest due first.  Each returned entry has its attempt already counted and
        ``lease_until`` set; nobody else can claim it before the lease ends.
        """
        if limit < 1:
            return []
        now_ms = to_ms(now)
        due = sa.and_(_t.c.state == "pending", _t.c.next_attempt_at <= now_ms,
                      sa.or_(_t.c.lease_until.is_(None), _t.c.lease_until <= now_ms))
        pick = (sa.select(_t.c.key).where(due)
                .order_by(_t.c.next_attempt_at, _t.c.created_at, _t.c.key).limit(limit))
        if self._dialect == "postgresql":
            # A materialized CTE runs the locking pick exactly once.  (As ``key IN
            # (subquery)`` the planner may rescan a LIMIT .. FOR UPDATE subquery for every
            # outer row, each rescan yielding further rows: the limit would not hold.)
            picked = (pick.with_for_update(skip_locked=True)
                      .cte("picked").prefix_with("MATERIALIZED"))
            chosen: sa.ColumnElement[bool] = _t.c.key == picked.c.key
        else:  # SQLite evaluates a plain IN subquery once; the statement is atomic
            chosen = _t.c.key.in_(pick.scalar_subquery())
        # ``due`` again on the updated rows: on PostgreSQL a row re-read after a
        # concurrent commit is claimed only if it is still due.
        stmt = (sa.update(_t).where(chosen, due)
                .values(lease_until=to_ms(now + lease_s), attempts=_t.c.attempts + 1,
                        first_attempt_at=sa.func.coalesce(_t.c.first_attempt_at, now_ms))
                .returning(*_t.c))
        async with self._engine.begin() as conn:
            entries = [_from_row(row._mapping) for row in await conn.execute(stmt)]
        entries.sort(key=lambda e: (e.next_attempt_at, e.notification.created_at, e.key))
        return entries

    async def mark_sent(self, key: str, at: float) -> bool:
        """Record that ``key`` was delivered at ``at``; ``False`` if it was not claimable.

        Delivery is a fact, so this wins even over a ``dead`` verdict that another
        dispatcher reached meanwhile; only ``muted`` rows are never marked.
        """
        stmt = (sa.update(_t).where(_t.c.key == key, _t.c.state.in_(("pending", "dead")))
                .values(state="sent", sent_at=to_ms(at), lease_until=None))
        return await self._update(stmt)

    async def mark_failed(self, key: str, error: str, *, retry_at: float | None,
                          attempt: int | None = None) -> bool:
        """Record a failed send: try again from ``retry_at``, or never (``None``: dead).

        ``attempt`` is the entry's :attr:`~OutboxEntry.attempts` when it was claimed;
        if given, the row is changed only if nobody claimed it since (a send that
        outlived its lease must not disturb the newer claim).  Returns whether the row
        changed.
        """
        where = [_t.c.key == key, _t.c.state == "pending"]
        if attempt is not None:
            where.append(_t.c.attempts == attempt)
        values: dict[str, Any] = {"last_error": error[:_MAX_ERROR_CHARS], "lease_until": None}
        if retry_at is None:
            values["state"] = "dead"
        else:
            values["next_attempt_at"] = to_ms(retry_at)
        return await self._update(sa.update(_t).where(*where).values(**values))

    async def get(self, key: str) -> OutboxEntry | None:
        """The entry stored under ``key``, or ``None``."""
        async with self._engine.connect() as conn:
            row = (await conn.execute(sa.select(_t).where(_t.c.key == key))).first()
        return None if row is None else _from_row(row._mapping)

    async def query(self, *, state: OutboxState | None = None,
                    enterprise_id: str | None = None, limit: int = 100,
                    offset: int = 0) -> list[OutboxEntry]:
        """Entries by state and enterprise, in the order they fall due."""
        if state is not None and state not in OUTBOX_STATES:
            raise ValueError(f"state must be one of {OUTBOX_STATES}, got {state!r}")
        where = []
        if state is not None:
            where.append(_t.c.state == state)
        if enterprise_id is not None:
            where.append(_t.c.enterprise_id == enterprise_id)
        stmt = (sa.select(_t).where(*where)
                .order_by(_t.c.next_attempt_at, _t.c.created_at, _t.c.key)
                .limit(limit).offset(offset))
        async with self._engine.connect() as conn:
            return [_from_row(row._mapping) for row in await conn.execute(stmt)]

    async def pending(self, *, enterprise_id: str | None = None,
                      limit: int = 100) -> list[OutboxEntry]:
        """Notifications still to be sent (some may be in flight), next due first."""
        return await self.query(state="pending", enterprise_id=enterprise_id, limit=limit)

    async def counts(self) -> dict[str, int]:
        """Number of rows in each state (every state present, zeros included)."""
        stmt = sa.select(_t.c.state, sa.func.count()).group_by(_t.c.state)
        async with self._engine.connect() as conn:
            found = {state: int(n) for state, n in await conn.execute(stmt)}
        return {state: found.get(state, 0) for state in OUTBOX_STATES}

    async def receivers_told(self, alert_ids: Collection[str], *,
                             since: float | None = None) -> dict[str, set[str]]:
        """Per alert of ``alert_ids``, the receivers the outbox holds a notification for.

        For the engine's restore after a restart (which tiers were already told); every
        state counts, ``muted`` too.  ``since`` (event time, epoch s) skips rows decided
        earlier, e.g. before the oldest open alert was detected.  The alert ids are
        matched here, not in SQL, because JSON arrays are queried differently on the
        two databases.
        """
        wanted = set(alert_ids)
        told: dict[str, set[str]] = {}
        if not wanted:
            return told
        stmt = sa.select(_t.c.alert_ids, _t.c.receiver)
        if since is not None:
            stmt = stmt.where(_t.c.created_at >= to_ms(since))
        async with self._engine.connect() as conn:
            for ids, receiver in await conn.execute(stmt):
                for alert_id in wanted.intersection(ids):
                    told.setdefault(alert_id, set()).add(receiver)
        return told

    async def find(self, *, state: OutboxState | None = None,
                   enterprise_id: str | Sequence[str] | None = None,
                   alert_id: str | None = None,
                   order: Order = "newest", limit: int = 100,
                   offset: int = 0) -> list[OutboxEntry]:
        """Entries by state, enterprise and alert, for people rather than the dispatcher.

        ``order`` is by ``created_at`` (the engine's event time), ``newest`` first for a
        list of everything, ``oldest`` first for one alert's timeline; the key breaks
        ties so pages never overlap.  ``alert_id`` matches a notification about that
        alert alone or within a ``group`` digest.
        """
        created = _t.c.created_at.desc() if order == "newest" else _t.c.created_at.asc()
        tie = _t.c.key.desc() if order == "newest" else _t.c.key.asc()
        stmt = (sa.select(_t).where(*self._filters(state, enterprise_id, alert_id))
                .order_by(created, tie).limit(limit).offset(offset))
        async with self._engine.connect() as conn:
            return [_from_row(row._mapping) for row in await conn.execute(stmt)]

    async def count(self, *, state: OutboxState | None = None,
                    enterprise_id: str | Sequence[str] | None = None,
                    alert_id: str | None = None) -> int:
        """How many entries :meth:`find` would page through with the same filters."""
        stmt = (sa.select(sa.func.count()).select_from(_t)
                .where(*self._filters(state, enterprise_id, alert_id)))
        async with self._engine.connect() as conn:
            return int((await conn.execute(stmt)).scalar_one())

    async def retry_dead(self, key: str, now: float) -> OutboxEntry:
        """Put the ``dead`` notification ``key`` back to ``pending``, due at ``now``.

        For after a person fixed what killed it (a receiver's address, a credential, the
        routing file).  Its attempts start again from zero, and so does the give-up
        clock (``first_attempt_at``): the retry policy would otherwise declare it dead
        again at once.  ``last_error`` is left as it was, so the reason it died stays
        visible until the next attempt records a new one (or, if that attempt succeeds,
        beside ``sent_at``).  The key is unchanged, so a receiver that got the message
        after all drops the copy.

        Raises :class:`NotificationNotFound` or :class:`NotDead`.  The state is checked
        in the ``UPDATE`` itself, so a row that another dispatcher marked ``sent``
        meanwhile is never put back.
        """
        stmt = (sa.update(_t).where(_t.c.key == key, _t.c.state == "dead")
                .values(state="pending", attempts=0, next_attempt_at=to_ms(now),
                        first_attempt_at=None, lease_until=None)
                .returning(*_t.c))
        async with self._engine.begin() as conn:
            row = (await conn.execute(stmt)).first()
            if row is not None:
                return _from_row(row._mapping)
            state = (await conn.execute(sa.select(_t.c.state)
                                        .where(_t.c.key == key))).scalar_one_or_none()
        if state is None:
            raise NotificationNotFound(key)
        raise NotDead(key, cast(OutboxState, state))

    def _filters(self, state: OutboxState | None, enterprise_id: str | Sequence[str] | None,
                 alert_id: str | None) -> list[sa.ColumnElement[bool]]:
        """``enterprise_id`` may be several ids (any of them: a regulator's area)."""
        if state is not None and state not in OUTBOX_STATES:
            raise ValueError(f"state must be one of {OUTBOX_STATES}, got {state!r}")
        where: list[sa.ColumnElement[bool]] = []
        if state is not None:
            where.append(_t.c.state == state)
        if isinstance(enterprise_id, str):
            where.append(_t.c.enterprise_id == enterprise_id)
        elif enterprise_id is not None:
            where.append(_t.c.enterprise_id.in_(list(enterprise_id)))
        if alert_id is not None:
            where.append(self._about_alert(alert_id))
        return where

    def _about_alert(self, alert_id: str) -> sa.ColumnElement[bool]:
        """``alert_ids`` (a JSON array) holds ``alert_id``, in each database's own terms.

        In SQL rather than in Python so that ``count`` and ``offset`` stay exact however
        many notifications there are.  PostgreSQL: JSONB containment (the column is
        ``json``, so it is cast); SQLite: ``json_each`` over the array.  Both compare
        whole elements, so ``A1`` never matches ``A10``.  Neither uses an index: the
        filter scans the rows that the other filters leave (the outbox keeps one row per
        message, which an operator's query can afford; an expression index would be a
        migration of its own).
        """
        if self._dialect == "postgresql":
            return sa.cast(_t.c.alert_ids, postgresql.JSONB).contains([alert_id])
        elements = sa.func.json_each(_t.c.alert_ids).table_valued("value")
        return sa.exists(sa.select(sa.literal(1)).select_from(elements)
                         .where(elements.c.value == alert_id))

    async def next_due(self) -> float | None:
        """Earliest time a pending row becomes claimable (its lease counted), or ``None``."""
        claimable = sa.case((_t.c.lease_until > _t.c.next_attempt_at, _t.c.lease_until),
                            else_=_t.c.next_attempt_at)
        stmt = sa.select(sa.func.min(claimable)).where(_t.c.state == "pending")
        async with self._engine.connect() as conn:
            earliest = (await conn.execute(stmt)).scalar_one()
        return None if earliest is None else from_ms(int(earliest))

    async def _update(self, stmt: sa.Update) -> bool:
        async with self._engine.begin() as conn:
            return bool((await conn.execute(stmt)).rowcount)


def _to_row(n: Notification, state: OutboxState) -> dict[str, Any]:
    if n.tier not in TIERS:
        raise ValueError(f"notification {n.key}: tier must be one of {TIERS}, got {n.tier!r}")
    if n.reason not in _REASONS:
        raise ValueError(f"notification {n.key}: reason must be one of {_REASONS}, "
                         f"got {n.reason!r}")
    return {
        "key": n.key,
        "alert_ids": list(n.alert_ids),
        "enterprise_id": n.enterprise_id,
        "receiver": n.receiver,
        "tier": n.tier,
        "channel": n.channel,
        "reason": n.reason,
        "locale": n.locale,
        "subject": n.subject,
        "body": n.body,
        "payload": _json_safe(n.key, "payload", n.payload),
        "extra": _json_safe(n.key, "extra", n.extra),
        "created_at": to_ms(n.created_at),
        "state": state,
        "attempts": 0,
        "next_attempt_at": 0,
    }


def _json_safe(key: str, name: str, value: Mapping[str, Any]) -> Any:
    """Plain JSON values, read back the same from both databases (as the alert store's
    evidence: NaN becomes ``null``, tuples lists, numpy scalars numbers)."""
    try:
        return orjson.loads(orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY))
    except TypeError as exc:
        raise ValueError(f"{name} of notification {key} is not JSON: {exc}") from exc


def _from_row(row: sa.RowMapping) -> OutboxEntry:
    notification = Notification(
        key=row["key"],
        alert_ids=tuple(row["alert_ids"]),
        enterprise_id=row["enterprise_id"],
        receiver=row["receiver"],
        tier=cast(Tier, row["tier"]),
        channel=row["channel"],
        reason=cast(Reason, row["reason"]),
        locale=row["locale"],
        subject=row["subject"],
        body=row["body"],
        payload=dict(row["payload"]),
        created_at=from_ms(row["created_at"]),
        extra=dict(row["extra"]),
    )
    return OutboxEntry(
        notification=notification,
        state=cast(OutboxState, row["state"]),
        attempts=int(row["attempts"]),
        next_attempt_at=from_ms(row["next_attempt_at"]),
        first_attempt_at=_optional_s(row["first_attempt_at"]),
        lease_until=_optional_s(row["lease_until"]),
        last_error=row["last_error"],
        sent_at=_optional_s(row["sent_at"]),
    )


def _optional_s(ms: int | None) -> float | None:
    return None if ms is None else from_ms(ms)
