"""The event store of data-use applications: append-only rows, one sequence per application.

What an event means is the safe zone's domain logic (``pmhub.safezone.application``); this
module only keeps events in order. An append names the sequence number it expects to
write (the number of events the caller's state was folded from, plus one): if another
writer got there first the append is refused with :class:`ConflictError`, so two reviewers
acting on the same stale state cannot both succeed. Appends run inside the caller's
``pf.db.write()`` transaction, so the event, the application's current state and the
audit entry of the step commit together.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from pmhub.platform import validate
from pmhub.platform.core import Platform
from pmhub.platform.errors import ConflictError, NotFoundError, PlatformInputError
from pmhub.platform.models import Application, ApplicationEvent, Project, User

MAX_PAYLOAD_BYTES = 256 * 1024
MAX_REASON = 4000


@dataclasses.dataclass(frozen=True)
class NewEvent:
    kind: str
    actor: str
    at: dt.datetime
    payload: dict[str, Any]
    reason: str | None = None


@dataclasses.dataclass(frozen=True)
class StoredEvent:
    application_id: int
    seq: int
    kind: str
    actor: str
    at: dt.datetime
    reason: str | None
    payload: dict[str, Any]


def _checked(event: NewEvent) -> NewEvent:
    if not isinstance(event, NewEvent):
        raise PlatformInputError("an event must be a NewEvent")
    validate.text("event kind", event.kind, max_len=40)
    validate.text("event actor", event.actor, max_len=80)
    if not isinstance(event.at, dt.datetime) or event.at.tzinfo is None:
        raise PlatformInputError("an event's time must be a datetime with a zone")
    if event.reason is not None and (
        not isinstance(event.reason, str) or len(event.reason) > MAX_REASON
    ):
        raise PlatformInputError(f"an event's reason must be a text of at most {MAX_REASON}")
    if not isinstance(event.payload, dict):
        raise PlatformInputError("an event's payload must be a JSON object")
    try:
        size = len(json.dumps(event.payload, allow_nan=False).encode())
    except (TypeError, ValueError) as exc:
        raise PlatformInputError(f"an event's payload is not plain JSON: {exc}") from exc
    if size > MAX_PAYLOAD_BYTES:
        raise PlatformInputError(f"an event's payload is {size} bytes; at most {MAX_PAYLOAD_BYTES}")
    return event


def start(
    session: Session, *, project_id: str, applicant_id: int, state: str, first: NewEvent
) -> StoredEvent:
    """A new application with its first event (seq 1)."""
    first = _checked(first)
    state = validate.text("application state", state, max_len=30)
    project_id = validate.project_id(project_id)
    applicant_id = validate.whole("applicant id", applicant_id, low=1, high=2**62)
    if session.get(Project, project_id) is None:
        raise NotFoundError(f"no project {project_id!r}")
    if session.get(User, applicant_id) is None:
        raise NotFoundError(f"no user with id {applicant_id}")
    row = Application(
        project_id=project_id,
        applicant_id=applicant_id,
        state=state,
        last_seq=0,
        created_at=first.at,
        updated_at=first.at,
    )
    session.add(row)
    session.flush()
    return append(session, row.id, expected_seq=1, event=first, state=state)


def append(
    session: Session, application_id: int, *, expected_seq: int, event: NewEvent, state: str
) -> StoredEvent:
    """Append ``event`` as number ``expected_seq`` and set the application's state."""
    event = _checked(event)
    validate.whole("application id", application_id, low=1, high=2**62)
    validate.whole("expected seq", expected_seq, low=1, high=2**31 - 1)
    state = validate.text("application state", state, max_len=30)
    app = session.get(Application, application_id)
    if app is None:
        raise NotFoundError(f"no application {application_id}")
    if app.last_seq + 1 != expected_seq:
        raise ConflictError(
            f"application {application_id} has {app.last_seq} events; this step was made "
            f"on a state of {expected_seq - 1} (someone acted first)"
        )
    session.add(
        ApplicationEvent(
            application_id=application_id,
            seq=expected_seq,
            kind=event.kind,
            actor=event.actor,
            at=event.at,
            reason=event.reason,
            payload=event.payload,
        )
    )
    app.last_seq, app.state, app.updated_at = expected_seq, state, event.at
    try:
        session.flush()
    except IntegrityError as exc:  # the unique (application, seq): a writer that raced us
        raise ConflictError(f"event {expected_seq} of application {application_id} exists") from exc
    return StoredEvent(
        application_id, expected_seq, event.kind, event.actor, event.at, event.reason, event.payload
    )


def events(pf: Platform, application_id: int) -> list[StoredEvent]:
    """Every event of an application, in order (the caller checks who may read them)."""
    validate.whole("application id", application_id, low=1, high=2**62)
    with pf.db.read() as session:
        if session.get(Application, application_id) is None:
            raise NotFoundError(f"no application {application_id}")
        rows = session.scalars(
            select(ApplicationEvent)
            .where(ApplicationEvent.application_id == application_id)
            .order_by(ApplicationEvent.seq)
        )
        return [
            StoredEvent(r.application_id, r.seq, r.kind, r.actor, r.at, r.reason, r.payload)
            for r in rows
        ]
