"""The platform's tables, as SQLAlchemy 2 typed declarative classes.

The migrations in ``migrations/versions/`` create exactly these tables (a test compares
them); change a class only together with a new revision. Times are stored as naive UTC
(both SQLite and PostgreSQL keep microseconds) and read back as aware UTC datetimes.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

ORGANISATION_KINDS = ("hospital", "company", "university", "data_center")
AUDIT_OUTCOMES = ("allowed", "denied")

# Named constraints let Alembic's SQLite batch mode alter tables in later revisions.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Aware UTC in Python, naive UTC in the database (the same on every backend)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("platform times must be timezone-aware")
        return value.astimezone(dt.UTC).replace(tzinfo=None)

    def process_result_value(
        self, value: dt.datetime | None, dialect: Dialect
    ) -> dt.datetime | None:
        return None if value is None else value.replace(tzinfo=dt.UTC)


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {dt.datetime: UTCDateTime, dict[str, Any]: JSON}


# --- revision 0001: people and audit ---------------------------------------------------


class Organisation(Base):
    __tablename__ = "organisations"
    __table_args__ = (CheckConstraint(_in("kind", ORGANISATION_KINDS), name="kind"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(80), unique=True)
    kind: Mapped[str] = mapped_column(String(20))
    site: Mapped[str | None] = mapped_column(String(40), unique=True)
    created_at: Mapped[dt.datetime]


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(40), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(254))
    organisation_id: Mapped[int | None] = mapped_column(ForeignKey("organisations.id"))
    password_hash: Mapped[str | None] = mapped_column(String(200))
    password_changed_at: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime]
    disabled_at: Mapped[dt.datetime | None]
    locked_until: Mapped[dt.datetime | None]


class RoleAssignment(Base):
    """A role held by a user, optionally limited to one site or one project."""

    __tablename__ = "role_assignments"
    __table_args__ = (
        CheckConstraint(
            "(scope_kind IS NULL AND scope IS NULL) OR "
            "(scope_kind IN ('site', 'project') AND scope IS NOT NULL)",
            name="scope",
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    role: Mapped[str] = mapped_column(String(40))
    scope_kind: Mapped[str | None] = mapped_column(String(10))
    scope: Mapped[str | None] = mapped_column(String(40))
    external: Mapped[bool] = mapped_column(Boolean, default=False)
    represents_data_subjects: Mapped[bool] = mapped_column(Boolean, default=False)
    granted_by: Mapped[str] = mapped_column(String(80))
    granted_at: Mapped[dt.datetime]
    revoked_by: Mapped[str | None] = mapped_column(String(80))
    revoked_at: Mapped[dt.datetime | None]


class ApiToken(Base):
    """A bearer token; only the SHA-256 of its secret is stored."""

    __tablename__ = "api_tokens"
    __table_args__ = (CheckConstraint("kind IN ('api', 'session')", name="kind"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    name: Mapped[str] = mapped_column(String(80))
    kind: Mapped[str] = mapped_column(String(10))
    secret_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime]
    expires_at: Mapped[dt.datetime]
    revoked_at: Mapped[dt.datetime | None]
    last_used_at: Mapped[dt.datetime | None]


class LoginAttempt(Base):
    """Every login try, kept for rate limiting, lockout and the record."""

    __tablename__ = "login_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(40), index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    source: Mapped[str | None] = mapped_column(String(64), index=True)
    at: Mapped[dt.datetime]
    outcome: Mapped[str] = mapped_column(String(20))


class AuditEntry(Base):
    """One link of the hash chain; ``seq`` is assigned under a lock, without gaps."""

    __tablename__ = "audit_entries"
    __table_args__ = (CheckConstraint(_in("outcome", AUDIT_OUTCOMES), name="outcome"),)

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    at: Mapped[dt.datetime]
    actor: Mapped[str] = mapped_column(String(80))
    action: Mapped[str] = mapped_column(String(60))
    target: Mapped[str] = mapped_column(String(200))
    outcome: Mapped[str] = mapped_column(String(10))
    details: Mapped[str] = mapped_column(Text)  # canonical JSON: hashed exactly as stored
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditCheckpoint(Base):
    """An Ed25519 signature over (seq, hash) of one entry; no foreign key, on purpose:
    a checkpoint must outlive a deleted entry so that the deletion shows."""

    __tablename__ = "audit_checkpoints"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    hash: Mapped[str] = mapped_column(String(64))
    at: Mapped[dt.datetime]
    key_id: Mapped[str] = mapped_column(String(16))
    signature: Mapped[str] = mapped_column(String(128))


# --- revision 0002: projects, applications, workspaces, outputs, jobs -----------------


class Project(Base):
    __tablename__ = "projects"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    organisation_id: Mapped[int | None] = mapped_column(ForeignKey("organisations.id"))
    created_by: Mapped[str] = mapped_column(String(80))
    created_at: Mapped[dt.datetime]


class Application(Base):
    """The current state of a data-use application; its history is in its events."""

    __tablename__ = "applications"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), index=True)
    applicant_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    state: Mapped[str] = mapped_column(String(30))
    last_seq: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime]
    updated_at: Mapped[dt.datetime]


class ApplicationEvent(Base):
    """Append-only: one row per thing that happened to an application."""

    __tablename__ = "application_events"
    __table_args__ = (UniqueConstraint("application_id", "seq", name="uq_application_events_seq"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    application_id: Mapped[int] = mapped_column(ForeignKey("applications.id"))
    seq: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(40))
    actor: Mapped[str] = mapped_column(String(80))
    at: Mapped[dt.datetime]
    reason: Mapped[str | None] = mapped_column(Text)
    payload: Mapped[dict[str, Any]]


class Workspace(Base):
    __tablename__ = "workspaces"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), unique=True)
    state: Mapped[str] = mapped_column(String(20))
    path: Mapped[str] = mapped_column(String(500))
    opens_at: Mapped[dt.datetime]
    closes_at: Mapped[dt.datetime]
    destroy_after: Mapped[dt.datetime]
    created_at: Mapped[dt.datetime]
    locked_at: Mapped[dt.datetime | None]
    destroyed_at: Mapped[dt.datetime | None]


class OutputRequest(Base):
    __tablename__ = "output_requests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), index=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id"))
    requested_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    file: Mapped[str] = mapped_column(String(500))
    kind: Mapped[str] = mapped_column(String(20))
    sha256: Mapped[str] = mapped_column(String(64))
    description: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(20))
    flags: Mapped[dict[str, Any]]
    created_at: Mapped[dt.datetime]
    decided_at: Mapped[dt.datetime | None]


class OutputReview(Base):
    """One checker's decision; a checker reviews a request at most once."""

    __tablename__ = "output_reviews"
    __table_args__ = (
        UniqueConstraint("output_request_id", "reviewer_id", name="uq_output_reviews_reviewer"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    output_request_id: Mapped[int] = mapped_column(ForeignKey("output_requests.id"))
    reviewer_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    decision: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str] = mapped_column(Text)
    at: Mapped[dt.datetime]


class Job(Base):
    """The platform's view of a long job: the job library runs it, this row shows it.

    ``key`` makes a retry find the job it already started instead of starting another.
    """

    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(40))
    application_id: Mapped[int | None] = mapped_column(ForeignKey("applications.id"))
    site: Mapped[str | None] = mapped_column(String(40))
    state: Mapped[str] = mapped_column(String(20))
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    payload: Mapped[dict[str, Any]]
    result: Mapped[dict[str, Any] | None]
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime]
    updated_at: Mapped[dt.datetime]
