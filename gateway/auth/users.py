"""Users and login sessions in the service's database (tables of migration 0003).

Logging in checks the password (Argon2id, in a worker thread: it costs tens of
milliseconds of CPU and must not stall the event loop that ingests telemetry) and
creates a session whose random token is returned once and stored only as its SHA-256.
A request presenting the token is resolved to a :class:`Principal` by one indexed read.
Disabling a user or changing its password ends its sessions.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from alerting.schema import sessions_table, users_table
from alerting.timefmt import to_ms
from gateway.auth.passwords import Passwords
from gateway.auth.principal import ROLES, Principal, Role, check_scope

DEFAULT_SESSION_TTL_S = 12 * 3600.0
"""A monitoring-centre shift; the operator logs in again at the next one."""


class UserExists(ValueError):
    pass


class UserNotFound(LookupError):
    pass


@dataclass(frozen=True, slots=True)
class User:
    username: str
    display_name: str
    role: Role
    scope: str | None
    locale: str
    disabled: bool
    created_at: float

    def principal(self) -> Principal:
        return Principal(self.username, self.display_name, self.role, self.scope)

    def to_json(self) -> dict[str, Any]:
        return {"username": self.username, "display_name": self.display_name,
                "role": self.role, "scope": self.scope, "locale": self.locale,
                "disabled": self.disabled}


@dataclass(frozen=True, slots=True)
class Session:
    token: str
    """Shown once, to the client that logged in; the database has only its hash."""
    user: User
    expires_at: float


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _check_username(username: str) -> str:
    name = username.strip()
    if not name or len(name) > 64 or any(c.isspace() for c in name):
        raise ValueError("a username is 1-64 characters without spaces")
    return name


class UserStore:
    """CRUD of users, password checks and sessions, on the service's engine."""

    def __init__(self, engine: AsyncEngine, passwords: Passwords | None = None, *,
                 session_ttl_s: float = DEFAULT_SESSION_TTL_S) -> None:
        self._engine = engine
        self.passwords = passwords or Passwords()
        self.session_ttl_s = session_ttl_s
        self._decoy: str | None = None

    # --- users --------------------------------------------------------------------------

    async def create(self, username: str, password: str, role: Role, scope: str | None = None,
                     *, display_name: str | None = None, locale: str = "zh",
                     now: float | None = None) -> User:
        """A new user; ``ValueError`` (:class:`UserExists`, a bad scope, a weak
        password) says what is wrong."""
        name = _check_username(username)
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
        scope = check_scope(role, scope)
        if locale not in ("zh", "en"):
            raise ValueError("locale must be zh or en")
        hashed = await asyncio.to_thread(self.passwords.hash, password)
        at = to_ms(time.time() if now is None else now)
        row = {"username": name, "display_name": (display_name or name).strip()[:128],
               "password_hash": hashed, "role": role, "scope": scope, "locale": locale,
               "disabled": False, "created_at": at, "updated_at": at}
        async with self._engine.begin() as conn:
            exists = await conn.scalar(sa.select(users_table.c.username)
                                       .where(users_table.c.username == name))
            if exists is not None:
                raise UserExists(f"user {name!r} exists")
            await conn.execute(users_table.insert().values(**row))
        return _user(row)

    async def get(self, username: str) -> User | None:
        async with self._engine.connect() as conn:
            row = (await conn.execute(sa.select(users_table)
                                      .where(users_table.c.username == username))).first()
        return None if row is None else _user(row._mapping)

    async def list(self) -> list[User]:
        async with self._engine.connect() as conn:
            rows = await conn.execute(sa.select(users_table).order_by(users_table.c.username))
            return [_user(r._mapping) for r in rows]

    async def count(self) -> int:
        async with self._engine.connect() as conn:
            return int(await conn.scalar(sa.select(sa.func.count()).select_from(users_table))
                       or 0)

    async def update(self, username: str, *, display_name: str | None = None,
                     password: str | None = None, disabled: bool | None = None,
                     locale: str | None = None) -> User:
        """Change a user; a new password or disabling ends every session of theirs."""
        values: dict[str, Any] = {"updated_at": to_ms(time.time())}
        if display_name is not None:
            values["display_name"] = display_name.strip()[:128] or username
        if locale is not None:
            if locale not in ("zh", "en"):
                raise ValueError("locale must be zh or en")
            values["locale"] = locale
        if disabled is not None:
            values["disabled"] = disabled
        if password is not None:
            values["password_hash"] = await asyncio.to_thread(self.passwords.hash, password)
        async with self._engine.begin() as conn:
            done = await conn.execute(users_table.update()
                                      .where(users_table.c.username == username)
                                      .values(**values))
            if done.rowcount == 0:
                raise UserNotFound(f"no user {username!r}")
            if password is not None or disabled:
                await conn.execute(sessions_table.delete()
                                   .where(sessions_table.c.username == username))
        user = await self.get(username)
        assert user is not None
        return user

    # --- sessions -----------------------------------------------------------------------

    async def login(self, username: str, password: str, *, now: float | None = None
                    ) -> Session | None:
        """A new session, or ``None`` for a wrong name or password or a disabled user
        (which one is not told: that would help guessing)."""
        async with self._engine.connect() as conn:
            row = (await conn.execute(sa.select(users_table)
                                      .where(users_table.c.username == username.strip())
                                      )).first()
        if row is None:
            # Spend the same time as a real check, so timing does not reveal names.
            await asyncio.to_thread(self.passwords.verify, await self._decoy_hash(), password)
            return None
        mapping = row._mapping
        ok = await asyncio.to_thread(self.passwords.verify, mapping["password_hash"], password)
        if not ok or mapping["disabled"]:
            return None
        user = _user(mapping)
        if self.passwords.needs_rehash(mapping["password_hash"]):
            await self.update(user.username, password=password)
        at = time.time() if now is None else now
        token = secrets.token_urlsafe(32)
        expires = at + self.session_ttl_s
        async with self._engine.begin() as conn:
            await conn.execute(sessions_table.delete()
                               .where(sessions_table.c.expires_at <= to_ms(at)))
            await conn.execute(sessions_table.insert().values(
                token_hash=token_hash(token), username=user.username,
                created_at=to_ms(at), expires_at=to_ms(expires)))
        return Session(token, user, expires)

    async def resolve(self, token: str, *, now: float | None = None) -> User | None:
        """The live user holding ``token``, or ``None`` (unknown, expired, disabled)."""
        at = to_ms(time.time() if now is None else now)
        query = (sa.select(users_table)
                 .join(sessions_table, sessions_table.c.username == users_table.c.username)
                 .where(sessions_table.c.token_hash == token_hash(token),
                        sessions_table.c.expires_at > at,
                        users_table.c.disabled == sa.false()))
        async with self._engine.connect() as conn:
            row = (await conn.execute(query)).first()
        return None if row is None else _user(row._mapping)

    async def logout(self, token: str) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(sessions_table.delete()
                               .where(sessions_table.c.token_hash == token_hash(token)))

    async def _decoy_hash(self) -> str:
        if self._decoy is None:
            self._decoy = await asyncio.to_thread(self.passwords.hash,
                                                  secrets.token_urlsafe(16))
        return self._decoy


def _user(row: Any) -> User:
    return User(username=row["username"], display_name=row["display_name"],
                role=row["role"], scope=row["scope"], locale=row["locale"],
                disabled=bool(row["disabled"]), created_at=row["created_at"] / 1000.0)
