"""Every route × every role, against a policy written down independently of the code.

:func:`expected` states the access rules of docs/access.md as a plain function of
(role, whether the caller's area holds enterprise A); each route is called by each of
the seven users on A's resources.  The hand-picked table of ``test_authorization.py``
shows the interesting cases on both databases; this one leaves no combination out (on
SQLite: the rules do not depend on the database).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.gateway.test_authorization import (
    DECLARE,
    NEW_USER,
    PUBLIC,
    SILENCE_A,
    USERS,
    World,
    call,
    world,
)

__all__ = ["world"]  # the fixture, used by name


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'matrix.db'}"


SEES_A = {"admin", "county_a", "town_a", "ent_a"}

# (method, template, concrete path on A's resources, body)
ROUTES: list[tuple[str, str, str, dict[str, Any] | None]] = [
    ("GET", "/api/v1/alerts", "/api/v1/alerts", None),
    ("GET", "/api/v1/alerts/{alert_id}", "/api/v1/alerts/ALERTA", None),
    ("POST", "/api/v1/alerts/{alert_id}/{action}", "/api/v1/alerts/ALERTA/dispatch",
     {"assignee": "张三"}),
    ("GET", "/api/v1/alerts/{alert_id}/history", "/api/v1/alerts/ALERTA/history", None),
    ("GET", "/api/v1/alerts/{alert_id}/notifications",
     "/api/v1/alerts/ALERTA/notifications", None),
    ("GET", "/api/v1/notifications", "/api/v1/notifications", None),
    ("POST", "/api/v1/notifications/{key}/retry", "/api/v1/notifications/{NA}/retry", None),
    ("GET", "/api/v1/silences", "/api/v1/silences", None),
    ("POST", "/api/v1/silences", "/api/v1/silences", SILENCE_A),
    ("GET", "/api/v1/silences/{silence_id}", "/api/v1/silences/SILA", None),
    ("DELETE", "/api/v1/silences/{silence_id}", "/api/v1/silences/SILA", None),
    ("GET", "/api/v1/enterprises", "/api/v1/enterprises", None),
    ("GET", "/api/v1/quarantine", "/api/v1/quarantine", None),
    ("GET", "/api/v1/enterprises/{enterprise_id}/series",
     "/api/v1/enterprises/E370829001/series", None),
    ("GET", "/api/v1/enterprises/{enterprise_id}/declared",
     "/api/v1/enterprises/E370829001/declared", None),
    ("POST", "/api/v1/enterprises/{enterprise_id}/declared",
     "/api/v1/enterprises/E370829001/declared", DECLARE),
    ("DELETE", "/api/v1/enterprises/{enterprise_id}/declared/{period_id}",
     "/api/v1/enterprises/E370829001/declared/{NPA}", None),
    ("GET", "/api/v1/users", "/api/v1/users", None),
    ("POST", "/api/v1/users", "/api/v1/users", NEW_USER),
    ("PATCH", "/api/v1/users/{username}", "/api/v1/users/ent_b", {"display_name": "乙"}),
    ("GET", "/api/v1/auth/me", "/api/v1/auth/me", None),
]


def expected(user: str, method: str, template: str) -> int:
    """The status docs/access.md promises ``user`` for ``method template`` on A."""
    role = USERS[user][0]
    sees = user in SEES_A
    enterprise = role == "enterprise"
    created = 201 if method == "POST" and template in (
        "/api/v1/silences", "/api/v1/users", "/api/v1/enterprises/{enterprise_id}/declared"
    ) else 200
    if template.startswith("/api/v1/users"):
        return created if role == "admin" else 403
    if template in ("/api/v1/alerts", "/api/v1/enterprises", "/api/v1/quarantine",
                    "/api/v1/auth/me"):
        return 200  # lists narrowed to the area, never refused
    if template in ("/api/v1/notifications", "/api/v1/silences") and method == "GET":
        return 403 if enterprise else 200
    if template == "/api/v1/silences":  # creating one for A
        return 403 if enterprise or not sees else 201
    regulators_only = ("/notifications", "/retry", "/silences/{silence_id}",
                       "/declared/{period_id}")
    if template.endswith(regulators_only) and enterprise:
        return 403  # the role is refused before the resource is looked up
    if not sees:
        return 404  # outside the area: as if it did not exist
    if template.endswith("/{action}") and enterprise:
        return 403  # dispatching is the regulator's
    return created


CASES = [(user, method, template, path, body) for method, template, path, body in ROUTES
         for user in USERS]


@pytest.mark.parametrize(("user", "method", "template", "path", "body"), CASES,
                         ids=[f"{c[0]}-{c[1]}-{c[2]}" for c in CASES])
async def test_every_route_for_every_role(world: World, user: str, method: str,
                                          template: str, path: str,
                                          body: dict[str, Any] | None) -> None:
    response = await call(world, user, method, path, body)
    assert response.status_code == expected(user, method, template), response.text


def test_the_matrix_covers_every_route(world: World) -> None:
    documented = {(m.upper(), p) for p, item in world.app.openapi()["paths"].items()
                  if p not in PUBLIC for m in item}
    assert documented - {("GET", "/api/v1/stream")} == {(m, t) for m, t, _, _ in ROUTES}
