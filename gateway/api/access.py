"""Authentication and scope checks for the API, as FastAPI dependencies.

Every route declares who may call it (``Depends(access.user)``, ``access.writer``,
``access.regulator``, ``access.admin``) and asks :class:`Access` what the caller may see,
so authorization is written once, here, and a route cannot forget it by accident: a
route without one of these dependencies is caught by the table-driven test that walks
the app's routes.

A caller presents the session token as the ``rw_session`` cookie (the browser, set at
login, ``HttpOnly``, ``SameSite=Lax``, so other sites' pages cannot post with it) or as
``Authorization: Bearer <token>`` (scripts).  With ``anonymous`` set (the demo, on
loopback) a caller without a token is a read-only viewer of everything.

Errors use the API's one shape, ``{"error": <stable code>, "detail": <message>}``:
401 ``unauthenticated``, 403 ``forbidden`` (a role that may not do this, or a filter
outside the caller's area), and 404 for a single resource outside the area, as if it
did not exist (an enterprise user must not learn which alert ids other enterprises
have).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse

from alerting import Alert
from gateway.auth.principal import Principal
from gateway.auth.users import UserStore
from gateway.registry import Registry

SESSION_COOKIE = "rw_session"

ANONYMOUS_VIEWER = Principal("anonymous", "anonymous", "admin", None, read_only=True,
                             anonymous=True)
"""The demo's caller without a token: sees everything, acts on nothing."""


class ApiError(Exception):
    """Answered as ``{"error": code, "detail": detail}`` with ``status``."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail = status, code, detail

    def response(self) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if self.status == 401 else None
        return JSONResponse({"error": self.code, "detail": self.detail},
                            status_code=self.status, headers=headers)


def forbidden(detail: str) -> ApiError:
    return ApiError(403, "forbidden", detail)


def request_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return request.cookies.get(SESSION_COOKIE) or None


class Access:
    """Who is calling, and the scope checks every route uses."""

    def __init__(self, users: UserStore, registry: Registry, *,
                 anonymous: Principal | None = None) -> None:
        self.users = users
        self.registry = registry
        self.anonymous = anonymous

    # --- dependencies -------------------------------------------------------------------

    async def user(self, request: Request) -> Principal:
        """Any authenticated caller (or the anonymous viewer where allowed)."""
        token = request_token(request)
        if token:
            found = await self.users.resolve(token)
            if found is not None:
                return found.principal()
            if self.anonymous is None:
                raise ApiError(401, "unauthenticated", "the session has expired or was "
                               "ended; log in again")
        if self.anonymous is not None:
            return self.anonymous
        raise ApiError(401, "unauthenticated", "log in first (POST /api/v1/auth/login)")

    async def writer(self, request: Request) -> Principal:
        """A caller who may change something: logged in, not the anonymous viewer."""
        principal = await self.user(request)
        if principal.read_only:
            raise ApiError(401, "unauthenticated", "log in to act; anonymous access is "
                           "read-only")
        return principal

    async def regulator(self, request: Request) -> Principal:
        """A county, town or admin user (enterprises do not see these routes)."""
        principal = await self.user(request)
        if not principal.is_regulator:
            raise forbidden("only regulators (county, town, admin) may use this")
        return principal

    async def regulator_writer(self, request: Request) -> Principal:
        principal = await self.writer(request)
        if not principal.is_regulator:
            raise forbidden("only regulators (county, town, admin) may do this")
        return principal

    async def admin(self, request: Request) -> Principal:
        principal = await self.writer(request)
        if principal.role != "admin":
            raise forbidden("only administrators may do this")
        return principal

    # --- scope --------------------------------------------------------------------------

    def region_of(self, enterprise_id: str) -> tuple[str, ...] | None:
        """The registry region of an enterprise, ``None`` when it is not registered."""
        try:
            return tuple(self.registry.enterprise(enterprise_id).region)
        except KeyError:
            return None

    def sees_enterprise(self, principal: Principal, enterprise_id: str) -> bool:
        region = self.region_of(enterprise_id)
        if region is None:  # unregistered: only its own user or an admin
            return principal.role == "admin" or (principal.role == "enterprise"
                                                 and principal.scope == enterprise_id)
        return principal.sees(enterprise_id, region)

    def sees_alert(self, principal: Principal, alert: Alert) -> bool:
        return principal.sees(alert.subject.enterprise_id, alert.subject.region)

    def enterprise_or_404(self, principal: Principal, enterprise_id: str) -> None:
        if self.region_of(enterprise_id) is None or not self.sees_enterprise(
                principal, enterprise_id):
            raise ApiError(404, "enterprise_not_found", f"no enterprise {enterprise_id!r}")

    def alert_or_404(self, principal: Principal, alert: Alert | None, alert_id: str) -> Alert:
        if alert is None or not self.sees_alert(principal, alert):
            raise ApiError(404, "alert_not_found", f"no alert with id {alert_id!r}")
        return alert

    def visible_enterprises(self, principal: Principal) -> tuple[str, ...]:
        return tuple(e.id for e in self.registry.spec.enterprises
                     if principal.sees(e.id, tuple(e.region)))

    def enterprise_filter(self, principal: Principal, requested: str | None
                          ) -> str | tuple[str, ...] | None:
        """What to filter rows keyed by enterprise id on: the requested one when in
        scope (else 403), all when an admin asks for none, the caller's own or its
        area's enterprises otherwise."""
        if requested is not None:
            if not self.sees_enterprise(principal, requested):
                raise forbidden(f"enterprise {requested} is outside your area")
            return requested
        if principal.role == "admin":
            return None
        if principal.role == "enterprise":
            assert principal.scope is not None
            return principal.scope
        return self.visible_enterprises(principal)

    def region_filter(self, principal: Principal, requested: str | None) -> str | None:
        """The region filter to apply (see :meth:`Principal.narrow_region`); an
        enterprise user may only name a code of its own region."""
        if principal.role == "enterprise" and requested is not None:
            if requested not in (self.region_of(principal.scope or "") or ()):
                raise forbidden(f"region {requested} is not your enterprise's")
            return requested
        try:
            return principal.narrow_region(requested)
        except PermissionError as exc:
            raise forbidden(str(exc)) from None

    def matchers_in_scope(self, principal: Principal,
                          matchers: Mapping[str, Sequence[str]]) -> bool:
        """Whether a silence with ``matchers`` mutes only enterprises in scope: an
        admin's may mute anything; others' must name enterprises or regions of theirs."""
        if principal.role == "admin":
            return True
        if principal.role == "enterprise":
            return False
        enterprises = matchers.get("enterprise")
        regions = matchers.get("region")
        if enterprises:
            return all(self.sees_enterprise(principal, e) for e in enterprises)
        if regions:
            return all(principal.region_in_scope(r) for r in regions)
        return False


def principal_json(principal: Principal) -> dict[str, Any]:
    return {"username": principal.username, "display_name": principal.display_name,
            "role": principal.role, "scope": principal.scope,
            "read_only": principal.read_only, "anonymous": principal.anonymous}
