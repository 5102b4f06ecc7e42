"""Errors of the data safe zone (exit codes 100-125).

100-110 are the data-use application, its committees, its uploads and its extraction
(application.py, drb.py, upload.py, extraction.py). Every one is raised before anything
changes: the application's state is an immutable value and an event that fails a check is
never recorded; an upload that fails is never stored; an extraction that fails leaves
nothing in the workspace.
"""

from __future__ import annotations

from pmhub.errors import PmhubError


class SafezoneError(PmhubError):
    exit_code = 100
    hint = "Nothing was changed; see `pmhub request show ID` for the application's state."


class ApplicationInvalidError(SafezoneError):
    """The application's body, or an event's payload, fails validation."""

    exit_code = 101
    hint = "Fix the fields named in the message; nothing was recorded."
    http_status = 422

    def __init__(self, message: str, problems: list[str] | None = None, **kw: str) -> None:
        self.problems = problems or [message]
        super().__init__(message, **kw)


class RoleDeniedError(SafezoneError):
    """The actor lacks the role the step needs (or holds it for another site)."""

    exit_code = 102
    hint = "Ask someone who holds the role named in the message; nothing was recorded."
    http_status = 403


class StateTransitionError(SafezoneError):
    """The step does not apply to the application in its current state."""

    exit_code = 103
    hint = "See the application's state and the steps it allows (safezone/README.md)."
    http_status = 409


class ReasonRequiredError(SafezoneError):
    exit_code = 104
    hint = "Give the reason (--reason TEXT): a return, rejection, refusal or revocation needs one."
    http_status = 422


class PeriodError(SafezoneError):
    """The period of use has ended (or not begun) for the step asked."""

    exit_code = 105
    hint = "An application past its period of use can only expire, close or be revoked."
    http_status = 409


class DrbError(SafezoneError):
    """A committee vote or decision that the committee's policy does not allow."""

    exit_code = 106
    hint = "See the DRB policy (safezone/README.md): quorum, conflicts of interest, majority."
    http_status = 409


class UploadError(SafezoneError):
    exit_code = 107
    hint = "Upload the IRB approval as a PDF, PNG or JPEG file; nothing was stored."
    http_status = 400


class UploadTooLargeError(UploadError):
    exit_code = 108
    hint = "Upload a smaller file (scan at a lower resolution, or print to PDF)."
    http_status = 413


class UploadTypeError(UploadError):
    exit_code = 109
    hint = (
        "Upload a PDF, PNG or JPEG file as it was made: the content decides its type, "
        "not its name or the browser's content type."
    )
    http_status = 415


class ExtractionError(SafezoneError):
    exit_code = 110
    hint = "Nothing was delivered; fix what the message names and run the extraction again."
    http_status = 409
