"""Bring a database's alerting tables to the newest migration, from any number of processes.

The migrations are Alembic revisions shipped inside the package
(``alerting/migrations``); no ``alembic.ini`` is needed: :func:`alembic_config` builds
the configuration in code and hands Alembic the connection to use, so the service's own
:class:`~sqlalchemy.ext.asyncio.AsyncEngine` (SQLite or PostgreSQL) runs them.

Three things :func:`migrate` adds to a plain ``alembic upgrade head``:

- **Adoption of the ``create_all`` era.**  Before migrations, the alerts table was made
  by ``MetaData.create_all`` and no version was recorded.  Such a database is stamped
  at the first revision (whose table is exactly that one) and upgraded from there, so
  existing demo files keep their alerts.
- **One migrator at a time.**  Everything runs in one transaction that first takes a
  lock: ``pg_advisory_xact_lock`` on PostgreSQL, ``BEGIN IMMEDIATE`` (the database's
  write lock) on SQLite.  A second process starting at the same moment waits, then
  finds the database at head and does nothing.  Both databases have transactional DDL,
  so a migration that fails half-way leaves the schema as it was.  The lock also
  matters inside one process: Alembic keeps its running context in module globals, so
  two migrations interleaving at their awaits would mix up their steps.  (Migrating
  two *different* databases concurrently in one process is therefore not supported.)
- **Its own version table** (:data:`VERSION_TABLE`), so other packages sharing the
  database can have migrations of their own without mixing up revision histories.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TextIO, TypeVar

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.util import CommandError
from sqlalchemy.ext.asyncio import AsyncEngine

VERSION_TABLE = "alerting_alembic_version"
"""Where Alembic records the alerting schema's revision."""

BASELINE = "0001_alerts"
"""The revision whose schema equals what ``create_all`` made before migrations."""

SCRIPT_LOCATION = "alerting:migrations"

# Key of the PostgreSQL advisory lock (a signed 64-bit number): the first 8 bytes of
# SHA-256("riskwatch.alerting.migrate") with the top bit cleared.  Other users of
# advisory locks in the same database must pick other keys.
_PG_LOCK_KEY = 0x36D1_2526_68A8_3D39

# A column that only head-era alerts tables have: its presence without a version table
# means the tables were not made by the ``create_all`` era, and guessing is unsafe.
_HEAD_ONLY_ALERT_COLUMN = "stage"

T = TypeVar("T")


class MigrationError(RuntimeError):
    """The database's alerting schema is in a state migrations cannot safely take on."""


def alembic_config(connection: sa.Connection | None = None, *,
                   stdout: TextIO | None = None) -> Config:
    """Alembic configuration for the packaged migrations, running on ``connection``.

    ``connection`` (a synchronous one, e.g. inside ``AsyncConnection.run_sync``) is
    what ``env.py`` migrates; commands that touch no database (``history``) need none.
    """
    config = Config(stdout=stdout) if stdout is not None else Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    config.attributes["connection"] = connection
    return config


async def migrate(engine: AsyncEngine, revision: str = "head") -> None:
    """Upgrade the alerting tables to ``revision``; adopt a ``create_all``-era database.

    Safe to call at every start-up and from several processes at once (see the module
    docstring).  Raises :class:`MigrationError` when the tables exist but were not made
    by either migrations or the ``create_all`` era, or when the database is at a
    revision this release does not know (it was migrated by a newer one).
    """
    try:
        await run_locked(engine, lambda conn: upgrade_on(conn, revision))
    except CommandError as exc:  # e.g. a revision of a newer release: a rollback
        raise MigrationError(
            f"cannot migrate the alerting tables to {revision!r}: {exc} (was the "
            "database migrated by a newer riskwatch? run that release, or downgrade "
            "the database with it first)") from exc


async def downgrade(engine: AsyncEngine, revision: str) -> None:
    """Downgrade the alerting tables to ``revision`` (``"base"`` drops them all)."""
    await run_locked(
        engine, lambda conn: command.downgrade(alembic_config(conn), revision))


async def current_revision(engine: AsyncEngine) -> str | None:
    """The revision the database is at, or ``None`` (no alerting schema recorded)."""
    async with engine.connect() as conn:
        return await conn.run_sync(_current)


async def run_locked(engine: AsyncEngine, work: Callable[[sa.Connection], T]) -> T:
    """Run ``work`` on a connection inside one transaction that holds the migration lock.

    The transaction commits when ``work`` returns and rolls back if it raises.
    """
    def locked(conn: sa.Connection) -> T:
        hold_migration_lock(conn)
        return work(conn)

    async with engine.connect() as conn:
        result = await conn.run_sync(locked)
        await conn.commit()
    return result


def hold_migration_lock(connection: sa.Connection) -> None:
    """Take the migration lock for the rest of ``connection``'s transaction.

    Must be the transaction's first statement: on SQLite ``BEGIN IMMEDIATE`` opens it
    (the driver only begins on its own before data changes, so DDL would otherwise run
    outside any transaction).  The lock is released by commit or rollback.
    """
    dialect = connection.dialect.name
    if dialect == "postgresql":
        connection.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"),
                           {"key": _PG_LOCK_KEY})
    elif dialect == "sqlite":
        connection.exec_driver_sql("BEGIN IMMEDIATE")
    else:
        raise MigrationError(f"unsupported database dialect {dialect!r} "
                             "(SQLite and PostgreSQL are)")


def upgrade_on(connection: sa.Connection, revision: str = "head") -> None:
    """Adopt a ``create_all``-era database if this is one, then upgrade to ``revision``."""
    config = alembic_config(connection)
    if _is_create_all_era(connection):
        command.stamp(config, BASELINE)
    command.upgrade(config, revision)


def _is_create_all_era(connection: sa.Connection) -> bool:
    inspector = sa.inspect(connection)
    if inspector.has_table(VERSION_TABLE) or not inspector.has_table("alerts"):
        return False
    columns = {column["name"] for column in inspector.get_columns("alerts")}
    if _HEAD_ONLY_ALERT_COLUMN in columns:
        raise MigrationError(
            f"the alerts table has newer columns but no {VERSION_TABLE} table: it was "
            "not made by migrations; if it matches the newest schema, record that with "
            "'python -m alerting.migrations stamp head'")
    return True


def _current(connection: sa.Connection) -> str | None:
    context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
    return context.get_current_revision()
