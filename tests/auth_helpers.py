"""API tests' context, users and logins: cheap password hashing, a token per role."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from alerting import AlertStore
from gateway.api.access import Access
from gateway.api.app import ApiContext
from gateway.auth.passwords import FAST, Passwords
from gateway.auth.principal import Principal, Role
from gateway.auth.users import UserStore
from gateway.metrics import ServiceMetrics
from gateway.pipeline import Pipeline
from gateway.registry import Registry
from gateway.storage.quarantine_store import QuarantineStore

PASSWORD = "correct-horse-battery"


def fast_access(engine: AsyncEngine, registry: Registry, *,
                anonymous: Principal | None = None) -> Access:
    """The API's access control with Argon2 at minimal cost, so tests log in quickly."""
    return Access(UserStore(engine, Passwords(FAST)), registry, anonymous=anonymous)


def api_context(engine: AsyncEngine, registry: Registry, *,
                alerts: AlertStore | None = None,
                quarantine: QuarantineStore | None = None) -> ApiContext:
    """What the service hands the API, on ``engine``, with :func:`fast_access`."""
    return ApiContext(registry=registry, engine=engine, alerts=alerts or AlertStore(engine),
                      quarantine=quarantine or QuarantineStore(engine),
                      pipeline=Pipeline(registry), metrics=ServiceMetrics(),
                      access=fast_access(engine, registry))


async def bearer(access: Access, username: str, role: Role = "admin",
                 scope: str | None = None) -> dict[str, str]:
    """Headers of a logged-in ``username`` (created with ``role`` and ``scope`` first
    when it does not exist)."""
    if await access.users.get(username) is None:
        await access.users.create(username, PASSWORD, role, scope)
    session = await access.users.login(username, PASSWORD)
    assert session is not None
    return {"Authorization": f"Bearer {session.token}"}
