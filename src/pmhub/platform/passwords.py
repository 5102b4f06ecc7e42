"""Password hashing: Argon2id (argon2-cffi's defaults, RFC 9106's low-memory profile)."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from pmhub.platform import validate
from pmhub.platform.errors import PlatformInputError

MIN_LENGTH = 12
MAX_LENGTH = 1024  # hashing cost grows with length; a bound keeps a login cheap to refuse

_hasher = PasswordHasher()
# Verified against when the user is unknown, so that both answers take the same time.
_DUMMY_HASH = _hasher.hash("pmhub: no such user, no such password")


def hash_password(password: object) -> str:
    value = validate.secret("password", password, max_len=MAX_LENGTH)
    if len(value) < MIN_LENGTH:
        raise PlatformInputError(f"a password needs at least {MIN_LENGTH} characters")
    if value.strip() != value or not value.strip():
        raise PlatformInputError("a password may not begin or end with spaces")
    return _hasher.hash(value)


def verify_password(stored: str | None, password: str) -> bool:
    """Whether ``password`` matches ``stored`` (always False for a user without one)."""
    try:
        return _hasher.verify(stored or _DUMMY_HASH, password) and stored is not None
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    return _hasher.check_needs_rehash(stored)
