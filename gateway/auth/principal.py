"""Who is asking, and what they may see: roles scoped by region code or enterprise.

Regulators work by administrative area: the county emergency-management bureau (县应急局)
oversees its county, a town safety station (乡镇/街道安监站) its town, an enterprise its
own site, and the platform's administrators everything.  So a user's scope is one code:

====================  ============================  ===================================
role                  ``scope``                     sees
====================  ============================  ===================================
``admin``             ``None``                      every enterprise
``county``            6-digit county code           enterprises whose region has it
``town``              9-digit town code             enterprises whose region has it
``enterprise``        enterprise id                 that enterprise only
====================  ============================  ===================================

An enterprise's region (CONTRACT.md §2) lists its codes from province to town, so "in
scope" is membership, and a town code begins with its county's code (GB/T 2260 and the
statistical division codes), which lets region *filters* be narrowed without the
registry.  The checks here are pure functions of the principal and the subject: the
API's dependencies call them on every route, and the tests call them directly.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

Role = Literal["admin", "county", "town", "enterprise"]
ROLES: tuple[Role, ...] = ("admin", "county", "town", "enterprise")

REGULATOR_ROLES: frozenset[Role] = frozenset({"admin", "county", "town"})
"""Roles that supervise others: dispatch, verify, close, silence."""

_SCOPE_PATTERNS: dict[Role, re.Pattern[str]] = {
    "county": re.compile(r"^\d{6}$"),
    "town": re.compile(r"^\d{9}$"),
    "enterprise": re.compile(r"^[A-Za-z0-9_.-]{1,64}$"),
}


class ScopeError(ValueError):
    """A role and scope that do not go together (e.g. a town user with a county code)."""


def check_scope(role: Role, scope: str | None) -> str | None:
    """``scope`` normalised for ``role``; :class:`ScopeError` says what is wrong."""
    if role == "admin":
        if scope:
            raise ScopeError("an admin has no scope (sees everything)")
        return None
    value = (scope or "").strip()
    if not _SCOPE_PATTERNS[role].fullmatch(value):
        wanted = {"county": "a 6-digit county code", "town": "a 9-digit town code",
                  "enterprise": "an enterprise id"}[role]
        raise ScopeError(f"a {role} user's scope must be {wanted}, got {scope!r}")
    return value


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller of one request."""

    username: str
    display_name: str
    role: Role
    scope: str | None
    read_only: bool = False
    """The demo's anonymous viewer: may read what its role sees, never act."""
    anonymous: bool = False

    @property
    def actor(self) -> str:
        """The name written into audit records: who, recognisably and uniquely."""
        if self.anonymous:
            return "anonymous"
        if self.display_name and self.display_name != self.username:
            return f"{self.display_name} ({self.username})"
        return self.username

    @property
    def is_regulator(self) -> bool:
        return self.role in REGULATOR_ROLES

    def sees(self, enterprise_id: str, region: Sequence[str]) -> bool:
        """Whether the enterprise ``enterprise_id`` in ``region`` is in scope."""
        if self.role == "admin":
            return True
        if self.role == "enterprise":
            return enterprise_id == self.scope
        return self.scope in region

    def sees_all(self, enterprises: Iterable[tuple[str, Sequence[str]]]) -> bool:
        return all(self.sees(e, r) for e, r in enterprises)

    def narrow_region(self, requested: str | None) -> str | None:
        """The region filter to apply for a request asking for ``requested``.

        A regulator's own code when it asked for nothing or for a wider area that holds
        it (a town user asking for its county sees its town); the requested code when
        it lies inside the scope; :class:`PermissionError` when it lies outside.
        ``None`` for admins and enterprise users (whose scope is not a region).
        """
        if self.role == "admin" or self.role == "enterprise":
            return requested
        assert self.scope is not None
        if requested is None or self.scope.startswith(requested):
            return self.scope
        if requested.startswith(self.scope):
            return requested
        raise PermissionError(f"region {requested} is outside your area {self.scope}")

    def narrow_enterprise(self, requested: str | None) -> str | None:
        """The enterprise filter for an enterprise user (always its own; asking for
        another is :class:`PermissionError`); others keep what they asked for."""
        if self.role != "enterprise":
            return requested
        if requested is not None and requested != self.scope:
            raise PermissionError(f"enterprise {requested} is not yours")
        return self.scope

    def region_in_scope(self, code: str) -> bool:
        """Whether every enterprise under region ``code`` is in scope (silence matchers:
        a town user may mute its town, not the county around it)."""
        if self.role == "admin":
            return True
        if self.role == "enterprise":
            return False
        assert self.scope is not None
        return code.startswith(self.scope)
