"""Password hashing with Argon2id (argon2-cffi), the OWASP-recommended default.

One :class:`PasswordHasher` per service, built from settings: the cost parameters are
stored in every hash (PHC string), so raising them later still verifies old hashes and
:meth:`Passwords.needs_rehash` tells the login path to upgrade them.  Tests use
:data:`FAST` (minimal cost) so a table of logins does not take seconds.
"""

from __future__ import annotations

from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

MIN_PASSWORD = 8
MAX_PASSWORD = 256


@dataclass(frozen=True, slots=True)
class HashCost:
    time_cost: int = 3
    memory_kib: int = 65_536
    parallelism: int = 1


DEFAULT = HashCost()
"""argon2-cffi's RFC 9106 low-memory profile: about 50 ms and 64 MiB per login."""
FAST = HashCost(time_cost=1, memory_kib=8, parallelism=1)
"""For tests only: cheap enough to log in hundreds of times."""


class WeakPassword(ValueError):
    """A new password is refused (too short or too long); the message says why."""


class Passwords:
    """Hash new passwords and verify given ones against stored hashes."""

    def __init__(self, cost: HashCost = DEFAULT) -> None:
        self._hasher = PasswordHasher(time_cost=cost.time_cost, memory_cost=cost.memory_kib,
                                      parallelism=cost.parallelism)

    def hash(self, password: str) -> str:
        if len(password) < MIN_PASSWORD:
            raise WeakPassword(f"a password needs at least {MIN_PASSWORD} characters")
        if len(password) > MAX_PASSWORD:
            raise WeakPassword(f"a password has at most {MAX_PASSWORD} characters")
        return self._hasher.hash(password)

    def verify(self, stored: str, password: str) -> bool:
        """``True`` only for the right password; a corrupt stored hash is ``False``."""
        try:
            return self._hasher.verify(stored, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, stored: str) -> bool:
        try:
            return self._hasher.check_needs_rehash(stored)
        except InvalidHashError:
            return True
