"""``riskwatch users``: add, list, change and disable the people who log in.

The first administrator of a new installation has to come from somewhere that needs no
login: this command, run on the server against the service's database (``--db``, the
``db_url`` of ``--config``, ``RISKWATCH_DB_URL``, or the default SQLite file, in that
order).  Passwords are asked for at a hidden prompt, or read from standard input with
``--password-stdin`` for scripts; never from the command line, where ``ps`` and the
shell history would show them.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from gateway.cli_tools import fail
from gateway.config import ConfigError, Settings, load_settings, redact_url

if TYPE_CHECKING:
    from gateway.auth.users import UserStore

T = TypeVar("T")

users_app = typer.Typer(help="People who log in to the API and dashboard.",
                        no_args_is_help=True)

ConfigOption = Annotated[Path | None, typer.Option("--config", "-c",
                                                   help="YAML settings file (its db_url)")]
DbOption = Annotated[str | None, typer.Option("--db", help="SQLAlchemy URL of the store")]
ROLE_HELP = "admin, county, town or enterprise"
SCOPE_HELP = "county code (county), town code (town), enterprise id (enterprise)"


def _db_url(config: Path | None, db: str | None) -> str:
    if db:
        return db
    if config is not None:
        try:
            return load_settings(config).db_url
        except ConfigError as exc:
            raise fail(str(exc)) from None
    default = Settings.model_fields["db_url"].default
    return os.environ.get("RISKWATCH_DB_URL", str(default))


def _with_store(url: str, work: Callable[[UserStore], Awaitable[T]]) -> T:
    from alerting.migrate import migrate
    from gateway.auth.users import UserStore
    from gateway.storage.db import open_engine

    async def main() -> T:
        engine = open_engine(url)
        try:
            await migrate(engine)
            return await work(UserStore(engine))
        finally:
            await engine.dispose()

    try:
        return asyncio.run(main())
    except OSError as exc:
        raise fail(f"cannot use the database {redact_url(url)}: {exc}") from None


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    return str(typer.prompt("Password", hide_input=True, confirmation_prompt=True))


@users_app.command("add")
def add(
    username: Annotated[str, typer.Argument(help="Login name, no spaces")],
    role: Annotated[str, typer.Option(help=ROLE_HELP)],
    scope: Annotated[str | None, typer.Option(help=SCOPE_HELP)] = None,
    name: Annotated[str | None, typer.Option(help="Display name (e.g. 县应急局 王五)")] = None,
    password_stdin: Annotated[bool, typer.Option(help="Read the password from stdin")] = False,
    config: ConfigOption = None,
    db: DbOption = None,
) -> None:
    """Add a user."""
    from gateway.auth.principal import ROLES

    if role not in ROLES:
        raise fail(f"--role must be one of {', '.join(ROLES)}")
    url = _db_url(config, db)
    password = _password(password_stdin)

    async def work(store: UserStore) -> str:
        try:
            user = await store.create(username, password, role, scope,
                                      display_name=name)
        except ValueError as exc:
            raise fail(str(exc)) from None
        return f"added {user.username} ({user.role}{', ' + user.scope if user.scope else ''})"

    typer.echo(_with_store(url, work))


@users_app.command("list")
def list_users(config: ConfigOption = None, db: DbOption = None) -> None:
    """List users."""
    async def work(store: UserStore) -> list[str]:
        return [f"{u.username:<20} {u.role:<10} {u.scope or '-':<12} "
                f"{'disabled' if u.disabled else 'active':<8} {u.display_name}"
                for u in await store.list()]

    lines = _with_store(_db_url(config, db), work)
    typer.echo("\n".join(lines) if lines else "no users")


@users_app.command("passwd")
def passwd(
    username: Annotated[str, typer.Argument()],
    password_stdin: Annotated[bool, typer.Option(help="Read the password from stdin")] = False,
    config: ConfigOption = None,
    db: DbOption = None,
) -> None:
    """Set a user's password (ends its sessions)."""
    url = _db_url(config, db)
    password = _password(password_stdin)
    _change(url, username, "password changed", password=password)


@users_app.command("disable")
def disable(username: Annotated[str, typer.Argument()], config: ConfigOption = None,
            db: DbOption = None) -> None:
    """Disable a user (ends its sessions; audit records keep its name)."""
    _change(_db_url(config, db), username, "disabled", disabled=True)


@users_app.command("enable")
def enable(username: Annotated[str, typer.Argument()], config: ConfigOption = None,
           db: DbOption = None) -> None:
    """Enable a disabled user again."""
    _change(_db_url(config, db), username, "enabled", disabled=False)


def _change(url: str, username: str, done: str, **changes: Any) -> None:
    async def work(store: UserStore) -> str:
        from gateway.auth.users import UserNotFound
        try:
            await store.update(username, **changes)
        except (UserNotFound, ValueError) as exc:
            raise fail(str(exc)) from None
        return f"{username}: {done}"

    typer.echo(_with_store(url, work))
