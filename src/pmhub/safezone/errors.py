"""Errors of the data-use application, its committees, uploads and extraction
(exit codes 110-116), and of the workspace and the output checks (117-122).

Every one is raised before anything changes: an application's state is an immutable
value and an event that fails a check is never recorded; an upload that fails is never
stored; an extraction that fails leaves nothing in the workspace (an extraction folder
that already holds other output is privacy's ``OutputExistsError``).

A workspace operation that raises one of 117-122 has changed nothing: loads and saved
results are staged and renamed into place only when they are complete, and a refused or
failed query never touches the workspace. Missing and existing workspaces and files use
the platform's :class:`~pmhub.platform.errors.NotFoundError` and
:class:`~pmhub.platform.errors.ConflictError`.
"""

from __future__ import annotations

from pmhub.errors import PmhubError


class ApplicationInvalidError(PmhubError):
    """The application's body, or an event's payload, fails validation."""

    exit_code = 110
    hint = "Fix the fields named in the message; nothing was recorded."
    http_status = 422

    def __init__(self, message: str, problems: list[str] | None = None, **kw: str) -> None:
        self.problems = problems or [message]
        super().__init__(message, **kw)


class RoleDeniedError(PmhubError):
    """The actor lacks the role the step needs (or holds it for another site)."""

    exit_code = 111
    hint = "Ask someone who holds the role named in the message; nothing was recorded."
    http_status = 403


class StateTransitionError(PmhubError):
    """The step does not apply to the application in its state, or in its period of use."""

    exit_code = 112
    hint = (
        "See the application's state and the steps it allows (safezone/README.md); past "
        "its period of use an application can only expire, close or be revoked."
    )
    http_status = 409


class ReasonRequiredError(PmhubError):
    exit_code = 113
    hint = "Give the reason: a return, rejection, refusal, failure or revocation needs one."
    http_status = 422


class DrbError(PmhubError):
    """A committee vote or decision that the committee's policy does not allow."""

    exit_code = 114
    hint = "See the DRB policy (safezone/README.md): quorum, conflicts of interest, majority."
    http_status = 409


class UploadTooLargeError(PmhubError):
    exit_code = 115
    hint = (
        "Upload a smaller file (scan at a lower resolution, or print to PDF); nothing was stored."
    )
    http_status = 413


class UploadTypeError(PmhubError):
    exit_code = 116
    hint = (
        "Upload the IRB approval as a PDF, PNG or JPEG file as it was made: the content "
        "decides its type, not its name or the browser's content type. Nothing was stored."
    )
    http_status = 415


# --- 117-122 the workspace and output checking ----------------------------------------


class WorkspaceError(PmhubError):
    """A workspace name, table or file given is invalid, or a load cannot be read."""

    exit_code = 117
    hint = "Nothing in the workspace was changed; fix what the message names and try again."

    def __init__(self, message: str, *, hint: str | None = None, status: int | None = None):
        super().__init__(message, hint=hint)
        if status is not None:
            # only the sandbox's own failures (no worker could start) are not the caller's
            self.http_status = status  # type: ignore[misc]


class SqlRefusedError(WorkspaceError):
    """The SQL was refused before it ran: what it tried (``rule``) is not allowed here."""

    exit_code = 118
    hint = (
        "A workspace runs one read-only SELECT (or WITH … SELECT) over its own tables; "
        "files, settings, extensions and other databases are out of reach."
    )

    def __init__(self, message: str, *, rule: str, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.rule = rule


class QueryError(WorkspaceError):
    """DuckDB could not run the query (a syntax, name or type error, or bad data)."""

    exit_code = 119
    hint = "Fix the query as DuckDB's message says; `tables` lists the workspace's tables."


class QueryLimitError(WorkspaceError):
    """The query needed more memory, spill space or result size than a workspace allows."""

    exit_code = 120
    hint = (
        "Aggregate in SQL (GROUP BY), select fewer columns or add a filter; the worker was "
        "replaced and the workspace is unchanged."
    )
    http_status = 422

    def __init__(self, message: str, *, limit: str, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.limit = limit


class QueryTimeoutError(WorkspaceError):
    """The query ran past its wall-clock limit; its worker was killed and replaced."""

    exit_code = 121
    hint = (
        "Narrow the query (filters, fewer joins, a bounded recursion) or ask for a longer "
        "timeout; the workspace is unchanged."
    )
    http_status = 422


class SdcInputError(PmhubError):
    """An output to check (table, its declared columns, its evidence) is malformed."""

    exit_code = 122
    hint = (
        "Declare the table's dimension, count and magnitude columns as they are in the file; "
        "magnitude cells need their contributor evidence (see the safezone README)."
    )
