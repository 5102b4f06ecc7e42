"""Checks of the values given to service functions: type, length and shape, before any
write. Each failure is a :class:`PlatformInputError` naming the field."""

from __future__ import annotations

import datetime as dt
import enum
import re
import unicodedata
from typing import TypeVar

from pmhub.platform.errors import PlatformInputError

USERNAME = re.compile(r"[a-z][a-z0-9._-]{1,39}")
SLUG = re.compile(r"[a-z][a-z0-9_-]{1,39}")  # project ids, as folder names and key names
SITE = re.compile(r"[a-z][a-z0-9_]{0,39}")  # the site registry's rule
EMAIL = re.compile(r"[^@\s]{1,64}@[^@\s]{1,189}")

E = TypeVar("E", bound=enum.Enum)


def _show(value: object) -> str:
    shown = repr(value)
    return shown if len(shown) <= 40 else shown[:37] + "..."


def text(field: str, value: object, *, max_len: int, min_len: int = 1) -> str:
    """A one-line text without control characters."""
    if not isinstance(value, str):
        raise PlatformInputError(f"{field} must be text, not {type(value).__name__}")
    if not min_len <= len(value) <= max_len:
        raise PlatformInputError(f"{field} must have {min_len}-{max_len} characters")
    if any(unicodedata.category(ch).startswith("C") for ch in value):
        raise PlatformInputError(f"{field} holds control characters")
    return value


def pattern(field: str, value: object, rule: re.Pattern[str], shape: str) -> str:
    if not isinstance(value, str) or not rule.fullmatch(value):
        raise PlatformInputError(f"{field} {_show(value)} is not {shape}")
    return value


def username(value: object) -> str:
    return pattern("username", value, USERNAME, "2-40 lowercase letters, digits, '.', '_' or '-'")


def project_id(value: object) -> str:
    return pattern("project id", value, SLUG, "2-40 lowercase letters, digits, '_' or '-'")


def site(value: object) -> str:
    return pattern("site", value, SITE, "a site name (lowercase letters, digits, _)")


def email(value: object) -> str:
    return pattern("email", text("email", value, max_len=254), EMAIL, "an email address")


def choice(field: str, value: object, kind: type[E]) -> E:
    try:
        return kind(value)
    except (ValueError, TypeError):
        known = ", ".join(str(m.value) for m in kind)
        raise PlatformInputError(f"{field} {_show(value)} is not one of: {known}") from None


def flag(field: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise PlatformInputError(f"{field} must be true or false, not {_show(value)}")
    return value


def whole(field: str, value: object, *, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise PlatformInputError(f"{field} must be a whole number from {low} to {high}")
    return value


def duration(field: str, value: object, *, low: dt.timedelta, high: dt.timedelta) -> dt.timedelta:
    if not isinstance(value, dt.timedelta) or not low <= value <= high:
        raise PlatformInputError(f"{field} must be a duration from {low} to {high}")
    return value


def secret(field: str, value: object, *, max_len: int) -> str:
    """A password or token as given: any characters, bounded so hashing cannot be abused."""
    if not isinstance(value, str):
        raise PlatformInputError(f"{field} must be text")
    if len(value) > max_len:
        raise PlatformInputError(f"{field} is longer than {max_len} characters")
    return value
