"""Shared fixtures: the registry fixture and real servers.

Integration tests talk to real servers on loopback (Mosquitto on 1883, PostgreSQL on
5432, each test module on a throwaway database of its own).  When one is absent they
skip with the reason, unless ``RISKWATCH_REQUIRE_SERVICES=1`` (set by ``.ci/run``)
turns the skip into a failure, so CI can never pass by silently skipping the tests
that matter.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from gateway.registry import Registry, load_registry
from tests.helpers import fresh_schema, port_open, unavailable

FIXTURES = Path(__file__).parent / "fixtures"
MOSQUITTO = ("127.0.0.1", 1883)



@pytest.fixture
def small_registry_path() -> Path:
    return FIXTURES / "registry_small.yaml"


@pytest.fixture
def small_registry(small_registry_path: Path) -> Registry:
    return load_registry(small_registry_path)


@pytest.fixture
def mosquitto() -> tuple[str, int]:
    """The machine's Mosquitto broker (CI installs and starts it when missing)."""
    if not port_open(*MOSQUITTO):
        unavailable(f"no MQTT broker on {MOSQUITTO[0]}:{MOSQUITTO[1]} (install mosquitto)")
    return MOSQUITTO


PG_ADMIN_URL = os.environ.get("RISKWATCH_TEST_PG_URL",
                              "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres")
T = TypeVar("T")


def _run_in_thread(make: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine on its own loop in a worker thread, whatever loop is current here."""
    async def main() -> T:
        return await make()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, main()).result()


async def _admin(statement: str) -> None:
    engine = create_async_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT",
                                 connect_args={"timeout": 5})
    try:
        async with engine.connect() as conn:
            await conn.execute(sa.text(statement))
    finally:
        await engine.dispose()


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    """URL of a fresh PostgreSQL database for this module, dropped afterwards."""
    name = f"rw_test_{secrets.token_hex(6)}"
    try:
        _run_in_thread(lambda: _admin(f'CREATE DATABASE "{name}"'))
    except (OSError, TimeoutError, sa.exc.SQLAlchemyError) as exc:
        reason = (f"PostgreSQL unavailable at {make_url(PG_ADMIN_URL).render_as_string()}: "
                  f"{type(exc).__name__}: {exc}".splitlines()[0])
        unavailable(reason)
    try:
        yield make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        _run_in_thread(lambda: _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'alerts.db'}"
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on an empty database at the newest migration (SQLite and PostgreSQL)."""
    engine = create_async_engine(database_url)
    await fresh_schema(engine)
    try:
        yield engine
    finally:
        await engine.dispose()
