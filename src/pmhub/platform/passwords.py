"""Password hashing: Argon2id (argon2-cffi's defaults, RFC 9106's low-memory profile)."""

from __future__ import annotations

import functools

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from pmhub.platform import validate
from pmhub.platform.errors import PlatformInputError

MIN_LENGTH = 12
MAX_LENGTH = 1024  # hashing cost grows with length; a bound keeps a login cheap to refuse


class Passwords:
    """Hash and check passwords with one Argon2id parameter set."""

    def __init__(self, hasher: PasswordHasher | None = None) -> None:
        self.hasher = hasher or PasswordHasher()

    @classmethod
    def fast(cls) -> Passwords:
        """Argon2id with a small cost, for tests only: the default costs ~0.1 s per check."""
        return cls(PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))

    @functools.cached_property
    def _dummy(self) -> str:
        # Checked when the user is unknown, so that both answers take the same time.
        return self.hasher.hash("pmhub: no such user, no such password")

    def hash(self, password: object) -> str:
        value = validate.secret("password", password, max_len=MAX_LENGTH)
        if len(value) < MIN_LENGTH:
            raise PlatformInputError(f"a password needs at least {MIN_LENGTH} characters")
        if value.strip() != value:
            raise PlatformInputError("a password may not begin or end with spaces")
        return self.hasher.hash(value)

    def verify(self, stored: str | None, password: str) -> bool:
        """Whether ``password`` matches ``stored`` (always False for a user without one)."""
        try:
            return self.hasher.verify(stored or self._dummy, password) and stored is not None
        except (VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, stored: str) -> bool:
        return self.hasher.check_needs_rehash(stored)


DEFAULT = Passwords()
