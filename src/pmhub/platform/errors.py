"""Errors of the platform layer (exit codes 100-109).

Every service function checks its input and the caller's rights before it writes, and
writes inside one transaction, so each of these errors leaves the state as it was.
"""

from __future__ import annotations

from pmhub.errors import PmhubError


class PlatformError(PmhubError):
    exit_code = 100
    hint = "Nothing was changed; fix what the message names and try again."


class StateError(PlatformError):
    """The state database cannot be opened, migrated or read."""

    exit_code = 101
    hint = (
        "Check PMHUB_PLATFORM_URL (sqlite:///path/platform.db or "
        "postgresql://user@host:port/database) and that the database server runs."
    )
    http_status = 503


class PlatformInputError(PlatformError):
    """A value given to a service function is missing, of the wrong type or too long."""

    exit_code = 102
    hint = "Nothing was changed; correct the value named in the message."
    http_status = 422


class NotFoundError(PlatformError):
    exit_code = 103
    hint = "Check the name or id; `pmhub users list` shows the users and their roles."
    http_status = 404


class ConflictError(PlatformError):
    """The thing exists already, or someone changed it first."""

    exit_code = 104
    hint = "Nothing was changed; read the current state and try again."
    http_status = 409


class AuthenticationError(PlatformError):
    """Wrong password, or a token that is unknown, expired or revoked."""

    exit_code = 105
    hint = "Log in again, or ask a platform admin for a new token."
    http_status = 401


class LockedOutError(AuthenticationError):
    """Too many failed logins: the account (or the source) waits before the next try."""

    exit_code = 106
    hint = "Wait until the time in the message, or ask a platform admin to unlock the account."
    http_status = 429


class Forbidden(PlatformError):  # noqa: N818  # the name reads as the HTTP status it maps to
    """The principal is not allowed this action on this resource."""

    exit_code = 107
    hint = "Ask a platform admin for the role this action needs (`pmhub users grant`)."
    http_status = 403

    def __init__(self, message: str, *, rule: str, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.rule = rule


class AuditIntegrityError(PlatformError):
    """The audit trail does not verify: an entry was changed, removed, added or cut off."""

    exit_code = 108
    hint = (
        "Keep the state and the home as they are for investigation; compare with the last "
        "export (`pmhub audit verify --export DIR --public-key FILE`)."
    )
    http_status = 500


class AuditKeyError(PlatformError):
    """The checkpoint signing key is missing, unreadable or readable by others."""

    exit_code = 109
    hint = (
        "The key lives in PMHUB_HOME/keys/ and must be readable by its owner only "
        "(chmod 600); restore it from the backup taken when the home was created."
    )
    http_status = 500
