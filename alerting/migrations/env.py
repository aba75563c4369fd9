"""Alembic environment of the alerting tables: migrate the connection we are handed.

:func:`alerting.migrate.alembic_config` puts a synchronous connection (from the
service's async engine, through ``run_sync``) in ``config.attributes["connection"]``;
this file never opens one itself, so every path (the service's start-up, the tests,
``python -m alerting.migrations``) goes through the same lock and the same adoption of
``create_all``-era databases.  Online mode only: SQLite ALTERs need batch mode, which
reads the live table.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import context

from alerting.migrate import VERSION_TABLE
from alerting.schema import alerting_metadata


def include_name(name: str | None, type_: str, _parent_names: Any) -> bool:
    """Autogenerate looks at the alerting tables only: the database is shared with
    other packages (the gateway's quarantine), whose tables are not ours to drop."""
    return type_ != "table" or name in alerting_metadata.tables


def run_migrations(connection: sa.Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=alerting_metadata,
        version_table=VERSION_TABLE,
        render_as_batch=True,
        compare_type=True,
        compare_server_default=True,
        include_name=include_name,
    )
    # Inside the caller's transaction (it holds the migration lock) this neither
    # begins nor commits: the caller commits everything at once.
    with context.begin_transaction():
        context.run_migrations()


def main() -> None:
    if context.is_offline_mode():
        raise RuntimeError("the alerting migrations run online only (no --sql)")
    connection = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("no connection given: run the alerting migrations through "
                           "alerting.migrate (python -m alerting.migrations ...)")
    run_migrations(connection)


# Alembic executes this file with its context set up; anything else that imports it
# (pytest collecting doctests) must not run migrations.
if hasattr(context, "config"):
    main()
