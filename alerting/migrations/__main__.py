"""``python -m alerting.migrations``: run the alerting migrations by hand.

The service migrates at start-up by itself; this is for operators who want to do it
beforehand, look at the revision, or step back::

    python -m alerting.migrations --url postgresql+asyncpg://rw@db/riskwatch upgrade
    python -m alerting.migrations current
    python -m alerting.migrations downgrade 0001_alerts
    python -m alerting.migrations history

The URL defaults to ``RISKWATCH_DB_URL``, the service's own setting.  Developers add a
revision with ``revision -m "what" --rev-id 0003_what`` (``--autogenerate`` compares
:mod:`alerting.schema` with the database at ``--url`` as a starting point; the result
is then edited by hand to run on both SQLite and PostgreSQL).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys

from alembic import command
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from alerting.migrate import (
    MigrationError,
    alembic_config,
    current_revision,
    downgrade,
    migrate,
    run_locked,
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m alerting.migrations",
                                     description="Migrations of the riskwatch alert store.")
    parser.add_argument("--url", default=os.environ.get("RISKWATCH_DB_URL"),
                        help="SQLAlchemy async URL (default: $RISKWATCH_DB_URL)")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("upgrade", help="upgrade to a revision (default: head)")
    up.add_argument("revision", nargs="?", default="head")
    down = sub.add_parser("downgrade", help="downgrade to a revision ('base': drop all)")
    down.add_argument("revision")
    sub.add_parser("current", help="print the database's revision")
    sub.add_parser("history", help="list the revisions")
    stamp = sub.add_parser("stamp", help="record a revision without running anything")
    stamp.add_argument("revision")
    rev = sub.add_parser("revision", help="write a new revision file (developers)")
    rev.add_argument("-m", "--message", required=True)
    rev.add_argument("--rev-id", required=True, help="e.g. 0003_silence_index")
    rev.add_argument("--autogenerate", action="store_true")
    return parser


async def _run(args: argparse.Namespace) -> None:
    if args.command == "history":
        command.history(alembic_config(stdout=sys.stdout))
        return
    if not args.url:
        raise SystemExit("no database: pass --url or set RISKWATCH_DB_URL")
    engine = create_async_engine(args.url)
    try:
        if args.command == "upgrade":
            await migrate(engine, args.revision)
        elif args.command == "downgrade":
            await downgrade(engine, args.revision)
        elif args.command == "current":
            print(await current_revision(engine) or "(none)")
        elif args.command == "stamp":
            await run_locked(engine, lambda conn: command.stamp(
                alembic_config(conn), args.revision))
        elif args.command == "revision":
            await run_locked(engine, lambda conn: command.revision(
                alembic_config(conn, stdout=sys.stdout), message=args.message,
                rev_id=args.rev_id, autogenerate=args.autogenerate))
    finally:
        await engine.dispose()


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.url:
        logging.getLogger(__name__).info(
            "database %s", make_url(args.url).render_as_string(hide_password=True))
    try:
        asyncio.run(_run(args))
    except MigrationError as exc:
        raise SystemExit(f"error: {exc}") from exc


if __name__ == "__main__":
    main()
