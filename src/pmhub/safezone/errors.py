"""Errors of the data-use application, its committees, uploads and extraction
(exit codes 110-116; the workspace and output checks have 117-122).

Every one is raised before anything changes: an application's state is an immutable
value and an event that fails a check is never recorded; an upload that fails is never
stored; an extraction that fails leaves nothing in the workspace (an extraction folder
that already holds other output is privacy's ``OutputExistsError``).
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
