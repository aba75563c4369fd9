"""Silences, stored: created by people through the API, ended early, never deleted.

A silence is evidence: a regulator reviewing a warning that nobody was told about must
find the silence that muted it, who made it and why.  So :meth:`SilenceStore.expire`
ends a silence by moving its ``ends_at`` back to the moment it was expired and naming
who did it (``expired_by``); the row stays.

Expiring a silence that has already ended is a **no-op** that returns it unchanged:
``DELETE`` is then safe to retry, and the record keeps the true end (a silence that
ran its course is not attributed to whoever clicked later).

Expiring one that has not started yet leaves it with ``ends_at`` before ``starts_at``,
a window that contains no instant; :class:`~alerting.silences.Silence` refuses such a
window when it is *made*, so rows like that are rebuilt without that check (see
:func:`_from_row`).  Its ``active`` is false at every time, which is what cancelling a
scheduled silence means, and its schedule stays on record.

``Silence.extra`` is not stored: the table has no column for it.
"""

from __future__ import annotations

import builtins
import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from alerting.schema import silences_table
from alerting.silences import Silence
from alerting.store import AlertStoreError
from alerting.timefmt import from_ms, to_ms

__all__ = ["SilenceNotFound", "SilenceStore", "new_silence_id"]

_s = silences_table


class SilenceNotFound(LookupError):
    """No silence has this id; the API answers 404."""

    def __init__(self, silence_id: str) -> None:
        super().__init__(f"no silence with id {silence_id!r}")
        self.silence_id = silence_id


def new_silence_id() -> str:
    """A fresh silence id: 32 hex digits of a random UUID.

    Silences are made by people, once each, so unlike alert ids they need no
    deterministic derivation; a random id cannot collide across API replicas.
    """
    return uuid.uuid4().hex


class SilenceStore:
    """Reads and writes :class:`~alerting.silences.Silence` rows through a borrowed engine."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        if engine.dialect.name not in ("sqlite", "postgresql"):
            raise AlertStoreError(f"unsupported database dialect {engine.dialect.name!r} "
                                  "(SQLite and PostgreSQL are)")

    async def create(self, silence: Silence) -> Silence:
        """Insert ``silence``; returns it as stored (times at millisecond resolution).

        An id already in use raises SQLAlchemy's ``IntegrityError``.
        """
        row = _to_row(silence)
        async with self._engine.begin() as conn:
            await conn.execute(sa.insert(_s).values(row))
        return _from_row(row)

    async def get(self, silence_id: str) -> Silence | None:
        """The silence with ``silence_id``, or ``None``."""
        async with self._engine.connect() as conn:
            row = (await conn.execute(sa.select(_s).where(_s.c.id == silence_id))).first()
        return None if row is None else _from_row(row._mapping)

    async def list(self, *, active_at: float | None = None, include_expired: bool = True,
                   now: float | None = None, limit: int = 100,
                   offset: int = 0) -> builtins.list[Silence]:
        """Silences newest created first, one page.

        ``active_at`` (epoch s) keeps those muting at that instant.  With
        ``include_expired=False`` those that have ended by ``now`` (default
        ``active_at``) are left out, scheduled ones stay.
        """
        if limit < 1 or offset < 0:
            raise ValueError(f"limit must be at least 1 and offset not negative, "
                             f"got {limit}, {offset}")
        stmt = (sa.select(_s).where(*_filters(active_at, include_expired, now))
                .order_by(_s.c.created_at.desc(), _s.c.id).limit(limit).offset(offset))
        async with self._engine.connect() as conn:
            return [_from_row(row._mapping) for row in await conn.execute(stmt)]

    async def count(self, *, active_at: float | None = None, include_expired: bool = True,
                    now: float | None = None) -> int:
        """How many silences :meth:`list` would give without ``limit`` and ``offset``."""
        stmt = (sa.select(sa.func.count()).select_from(_s)
                .where(*_filters(active_at, include_expired, now)))
        async with self._engine.connect() as conn:
            return int((await conn.execute(stmt)).scalar_one())

    async def expire(self, silence_id: str, *, actor: str, at: float) -> Silence:
        """End the silence at ``at`` (epoch s) on behalf of ``actor``; never deletes.

        Sets ``ends_at = min(ends_at, at)`` and ``expired_by``.  A silence that had
        already ended by ``at`` is returned unchanged (a no-op, see the module
        docstring).  Raises :class:`SilenceNotFound` for an unknown id.
        """
        if not actor.strip():
            raise ValueError("expiring a silence needs the name of who does it")
        at_ms = to_ms(at)
        async with self._engine.begin() as conn:
            # One guarded statement: of two concurrent expires the later one finds the
            # silence ended and changes nothing, on either database.
            await conn.execute(
                sa.update(_s).where(_s.c.id == silence_id, _s.c.ends_at > at_ms)
                .values(ends_at=at_ms, expired_by=actor.strip()))
            row = (await conn.execute(sa.select(_s).where(_s.c.id == silence_id))).first()
        if row is None:
            raise SilenceNotFound(silence_id)
        return _from_row(row._mapping)

    async def load_active(self, now: float) -> builtins.list[Silence]:
        """Silences that have not ended by ``now``: running ones and scheduled ones.

        Scheduled ones are included because the engine checks
        :meth:`Silence.active <alerting.silences.Silence.active>` at each decision's
        own time: a silence that starts in ten minutes must mute from then on without
        waiting for the service to reload.  Earliest start first.
        """
        stmt = (sa.select(_s).where(_s.c.ends_at > to_ms(now))
                .order_by(_s.c.starts_at, _s.c.id))
        async with self._engine.connect() as conn:
            return [_from_row(row._mapping) for row in await conn.execute(stmt)]


def _filters(active_at: float | None, include_expired: bool,
             now: float | None) -> list[sa.ColumnElement[bool]]:
    where: list[sa.ColumnElement[bool]] = []
    if active_at is not None:
        t = to_ms(active_at)
        where += [_s.c.starts_at <= t, _s.c.ends_at > t]
    if not include_expired:
        ref = now if now is not None else active_at
        if ref is None:
            raise ValueError("include_expired=False needs now (or active_at) to say "
                             "what has ended")
        where.append(_s.c.ends_at > to_ms(ref))
    return where


def _to_row(silence: Silence) -> dict[str, Any]:
    return {
        "id": silence.id,
        "matchers": {key: list(values) for key, values in silence.matchers.items()
                     if values},
        "starts_at": to_ms(silence.starts_at),
        "ends_at": to_ms(silence.ends_at),
        "created_by": silence.created_by,
        "comment": silence.comment,
        "created_at": to_ms(silence.created_at),
        "expired_by": silence.expired_by,
    }


def _from_row(row: Any) -> Silence:
    """Rebuild a stored silence, also one cancelled before it started.

    Such a row has ``ends_at <= starts_at``, which :class:`Silence` refuses to be
    *made* with; it is built with a valid end and then given its stored one, the way
    a frozen dataclass sets its own fields.  Every other check still runs.
    """
    starts_at, ends_at = from_ms(row["starts_at"]), from_ms(row["ends_at"])
    silence = Silence(
        id=row["id"],
        matchers={key: tuple(str(v) for v in values)
                  for key, values in dict(row["matchers"]).items()},
        starts_at=starts_at,
        ends_at=max(ends_at, starts_at + 0.001),
        created_by=row["created_by"],
        comment=row["comment"],
        created_at=from_ms(row["created_at"]),
        expired_by=row["expired_by"],
    )
    if ends_at <= starts_at:
        object.__setattr__(silence, "ends_at", ends_at)
    return silence
