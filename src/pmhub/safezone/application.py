"""The data-use application (데이터 활용 신청) as an event-sourced state machine.

An application is the fold of its events: ``replay(events)`` applies each with the pure
``apply(state, event)``, which checks the event's kind against the current state, the
role recorded for the actor, the payload (a reason where one is needed, the site of a
per-site step) and the period of use, and returns a new state or raises a typed error
(the old state is an immutable value and stays as it was). ``act`` is what a service
calls: it finds the role the actor holds for the step (through the :class:`Actor`
protocol, so no platform class is needed here), builds the event and applies it.

Persistence is someone else's: an :class:`Event` is plain data (``to_json`` /
``Event.from_json``), and the same events replay to the same state anywhere.

Lifecycle (safezone/README.md draws it)::

    draft → submitted → irb_approved → drb_approved → sites_approved → extraction
          ↘ returned ↔ resubmitted ↗                 → pseudonymization → adequacy_review
                                                     → delivered → active → closed
    rejected (IRB, DRB, every site refused) · expired · revoked (with a reason)
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Annotated, Any, Literal, Protocol, get_args

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from pmhub.cdm import spec
from pmhub.cohorts import definition as cohort_format
from pmhub.cohorts.definition import Definition, IsoDate
from pmhub.cohorts.errors import CohortDefinitionError
from pmhub.privacy.policy import IDENTIFYING, TablePolicy
from pmhub.safezone import drb
from pmhub.safezone.errors import (
    ApplicationInvalidError,
    DrbError,
    ReasonRequiredError,
    RoleDeniedError,
    StateTransitionError,
)
from pmhub.safezone.upload import IrbDocument

# --- who ------------------------------------------------------------------------------

Role = Literal[
    "applicant",
    "project_member",
    "irb_reviewer",
    "drb_member",
    "steward",  # scoped to a site
    "pseudonymization_officer",
    "output_checker",
    "platform_admin",
    "auditor",
]
ROLES: tuple[str, ...] = get_args(Role)


class Actor(Protocol):
    """Anyone who acts on an application: the platform's users satisfy it."""

    @property
    def id(self) -> str: ...

    def has_role(self, role: str, site: str | None = None) -> bool:
        """Whether the actor holds ``role``; a steward holds it for named sites only."""
        ...


@dataclass(frozen=True)
class StaticActor:
    """An actor with a fixed set of roles (tests, demos, the CLI's local mode)."""

    id: str
    roles: frozenset[str] = frozenset()
    steward_of: frozenset[str] = frozenset()

    def has_role(self, role: str, site: str | None = None) -> bool:
        if role == "steward":
            return site is not None and site in self.steward_of
        return role in self.roles


# --- the body -------------------------------------------------------------------------

ApplicationId = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]  # a key name
SiteName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,39}$")]  # as pmhub.sites names them
PersonId = drb.MemberId
Identifier = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
Text = Annotated[str, Field(min_length=1, max_length=5000)]
MAX_BODY_BYTES = 2 << 20
MAX_PERIOD_DAYS = 3650  # ten years: a longer period of use is a typo

PERSON = "person_id"
COHORT_TABLE = "cohort"  # delivered with every extraction: who is in the cohort, and when
COHORT_COLUMNS = (PERSON, "cohort_start_date", "cohort_end_date")
# source values that name a patient, a visit, a clinician or a ward at the hospital
IDENTIFYING_SOURCE_VALUES = frozenset(
    {
        "person_source_value",
        "visit_source_value",
        "visit_detail_source_value",
        "provider_source_value",
        "care_site_source_value",
    }
)
EXCLUDED_TABLES = {
    "note": "free text is de-identified with `pmhub privacy deid-text`, not extracted",
    "note_nlp": "free text is de-identified with `pmhub privacy deid-text`, not extracted",
}


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


def _unique(values: list[str], what: str) -> list[str]:
    twice = sorted({v for v in values if values.count(v) > 1})
    if twice:
        raise ValueError(f"{what} named more than once: {twice}")
    return values


class Variable(_Model):
    """Columns of one OMOP table, for the cohort's persons; with ``concept_set`` (one of
    the cohort definition's concept sets) only the rows whose domain concept is in it."""

    table: Identifier
    columns: Annotated[list[Identifier], Field(min_length=1, max_length=200)]
    concept_set: Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_]{0,63}$")] | None = None

    @field_validator("columns")
    @classmethod
    def _distinct(cls, columns: list[str]) -> list[str]:
        return _unique(columns, "columns")


class Period(_Model):
    """The period of use, both days included (UTC)."""

    start: IsoDate
    end: IsoDate

    @model_validator(mode="after")
    def _ordered(self) -> Period:
        if self.end < self.start:
            raise ValueError(f"the period ends ({self.end}) before it starts ({self.start})")
        if (self.end - self.start).days > MAX_PERIOD_DAYS:
            raise ValueError(f"the period is longer than {MAX_PERIOD_DAYS} days")
        return self

    @property
    def starts_at(self) -> dt.datetime:
        return dt.datetime.combine(self.start, dt.time(), dt.UTC)

    @property
    def ends_at(self) -> dt.datetime:
        """The first moment after the period."""
        return dt.datetime.combine(self.end + dt.timedelta(days=1), dt.time(), dt.UTC)


class ApplicationBody(_Model):
    title: Annotated[str, Field(min_length=1, max_length=200)]
    purpose: Text
    research_plan: Annotated[str, Field(min_length=1, max_length=100_000)]
    sites: Annotated[list[SiteName], Field(min_length=1, max_length=50)]
    cohort: Definition
    variables: Annotated[list[Variable], Field(min_length=1, max_length=50)]
    period: Period
    members: Annotated[list[PersonId], Field(max_length=100)] = []
    irb_document: IrbDocument | None = None
    # per-table privacy rules over the defaults (pmhub.privacy's table policy format)
    privacy: dict[Identifier, TablePolicy] = {}

    @field_validator("sites")
    @classmethod
    def _distinct_sites(cls, sites: list[str]) -> list[str]:
        return _unique(sites, "sites")

    @field_validator("members")
    @classmethod
    def _distinct_members(cls, members: list[str]) -> list[str]:
        return _unique(members, "members")

    def extracted(self) -> dict[str, tuple[str, ...]]:
        """Every delivered table with its columns (person_id first, always)."""
        tables: dict[str, tuple[str, ...]] = {COHORT_TABLE: COHORT_COLUMNS}
        for v in self.variables:
            tables[v.table] = (PERSON, *(c for c in v.columns if c != PERSON))
        return tables


def concept_column(table: spec.Table) -> str | None:
    """The column holding a table's domain concept (condition_concept_id, …), if any."""
    for f in table.fields:
        stem = f.name.removesuffix("_concept_id")
        if f.is_concept_id and stem != f.name and table.name.startswith(stem):
            return f.name
    return None


def is_identifier(table: str, column: str) -> bool:
    """Whether a column identifies someone at the hospital: it never leaves the site as is."""
    if column == PERSON or column in IDENTIFYING_SOURCE_VALUES:
        return True
    return table != COHORT_TABLE and spec.table(table).field(column).is_wide_id


def _variable_problems(k: int, variable: Variable, cohort: Definition) -> list[str]:
    path = f"variables[{k}]"
    if variable.table in EXCLUDED_TABLES:
        return [
            f"{path}.table: {variable.table!r} is not extracted: {EXCLUDED_TABLES[variable.table]}"
        ]
    try:
        table = spec.table(variable.table)
    except KeyError:
        return [f"{path}.table: OMOP CDM v{spec.CDM_VERSION} has no table {variable.table!r}"]
    if table.schema != "CDM" or PERSON not in table.column_names:
        return [f"{path}.table: {table.name!r} is not a clinical table of persons"]
    problems = [
        f"{path}.columns: {table.name!r} has no column {c!r}"
        for c in variable.columns
        if c not in table.column_names
    ]
    if variable.concept_set is not None:
        if concept_column(table) is None:
            problems.append(f"{path}.concept_set: {table.name!r} has no domain concept column")
        if variable.concept_set not in {c.id for c in cohort.concept_sets}:
            problems.append(
                f"{path}.concept_set: the cohort definition has no concept set"
                f" {variable.concept_set!r}"
            )
    return problems


def _privacy_problems(body: ApplicationBody) -> list[str]:
    extracted = body.extracted()
    problems = []
    for name, rules in body.privacy.items():
        path = f"privacy.{name}"
        if name not in extracted:
            problems.append(f"{path}: the application extracts no table {name!r}")
            continue
        for column, rule in rules.columns.items():
            if column not in extracted[name]:
                problems.append(f"{path}.columns.{column}: not a requested column of {name!r}")
            elif is_identifier(name, column) and rule.action not in IDENTIFYING:
                problems.append(
                    f"{path}.columns.{column}: an identifier is dropped or pseudonymized,"
                    f" never {rule.action!r}"
                )
            if rule.hierarchy is not None and rule.hierarchy.file is not None:
                problems.append(f"{path}.columns.{column}.hierarchy: {_NO_FILES}")
        if rules.models.k_map is not None or any(
            t.hierarchy is not None and t.hierarchy.file is not None
            for t in rules.models.t_closeness
        ):
            problems.append(f"{path}.models: {_NO_FILES}")
    return problems


_NO_FILES = "an application names no files on the server; use a generated hierarchy type"


def check_body(body: ApplicationBody) -> None:
    """What the types alone cannot say: the cohort format's own checks, the variables
    against the CDM specification, the privacy rules against the variables."""
    problems: list[str] = []
    try:
        cohort_format.parse(body.cohort.model_dump(mode="json"), source="cohort")
    except CohortDefinitionError as exc:
        problems += [f"cohort.{p}" for p in exc.problems]
    tables = [v.table for v in body.variables]
    for k, variable in enumerate(body.variables):
        if variable.table in tables[:k]:
            problems.append(f"variables[{k}].table: {variable.table!r} is requested twice")
        problems += _variable_problems(k, variable, body.cohort)
    if not problems:
        problems += _privacy_problems(body)
    if problems:
        raise _invalid("the application", problems)


def _invalid(what: str, problems: list[str]) -> ApplicationInvalidError:
    shown = "\n  ".join(problems[:20])
    more = f"\n  … and {len(problems) - 20} more" if len(problems) > 20 else ""
    return ApplicationInvalidError(f"{what} is not valid:\n  {shown}{more}", problems)


def _path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _problems(exc: ValidationError, prefix: str = "") -> list[str]:
    return [
        f"{prefix}{_path(tuple(e['loc']))}: {e['msg'].removeprefix('Value error, ')}"
        for e in exc.errors()
    ]


def parse_body(data: object) -> ApplicationBody:
    """Validate an application body given as parsed JSON; every problem names its path."""
    if not isinstance(data, dict):
        raise ApplicationInvalidError(f"an application is a mapping, not {type(data).__name__}")
    data, problems = dict(data), []
    if isinstance(data.get("cohort"), dict):
        try:
            data["cohort"] = cohort_format.parse(data["cohort"], source="cohort")
        except CohortDefinitionError as exc:
            problems = [f"cohort.{p}" for p in exc.problems]
    try:
        body = ApplicationBody.model_validate(data)
    except ValidationError as exc:
        skip = ("cohort",) if problems else ()
        raise _invalid(
            "the application", problems + [p for p in _problems(exc) if not p.startswith(skip)]
        ) from None
    if problems:
        raise _invalid("the application", problems)
    check_body(body)
    return body


def loads_body(text: str | bytes) -> ApplicationBody:
    if len(text) > MAX_BODY_BYTES:
        raise ApplicationInvalidError(f"the application is larger than {MAX_BODY_BYTES >> 20} MiB")
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise ApplicationInvalidError(f"the application is not valid JSON: {exc}") from None
    return parse_body(data)


# --- events ---------------------------------------------------------------------------

EventKind = Literal[
    "drafted",
    "edited",
    "submitted",
    "returned",
    "resubmitted",
    "irb_approved",
    "irb_rejected",
    "drb_vote_cast",
    "drb_decided",
    "site_approved",
    "site_refused",
    "extraction_started",
    "extraction_finished",
    "extraction_failed",
    "pseudonymized",
    "adequacy_signed_off",
    "delivered",
    "activated",
    "closed",
    "expired",
    "revoked",
]
EVENT_KINDS: tuple[str, ...] = get_args(EventKind)


def _iso_datetime(value: Any) -> Any:
    """JSON has no datetimes: accept ISO 8601 text as stored events hold it."""
    if isinstance(value, str):
        try:
            return dt.datetime.fromisoformat(value)
        except ValueError as error:
            raise ValueError(f"{value!r} is not an ISO date and time ({error})") from None
    return value


class DrbRecord(_Model):
    """The committee's decision as recorded: the policy it was taken under and its outcome
    (replay recomputes the outcome from the votes and refuses a record that differs)."""

    policy: drb.DrbPolicy
    outcome: Literal["approved", "rejected"]


Detail = str | int


class Event(_Model):
    application_id: ApplicationId
    seq: Annotated[int, Field(ge=1)]
    kind: EventKind
    at: Annotated[AwareDatetime, BeforeValidator(_iso_datetime)]
    actor: PersonId
    role: Role
    reason: Annotated[str, Field(max_length=5000)] | None = None
    site: SiteName | None = None
    body: ApplicationBody | None = None
    vote: drb.Vote | None = None
    decision: DrbRecord | None = None
    details: Annotated[dict[Identifier, Detail], Field(max_length=50)] = {}

    def to_json(self) -> str:
        return self.model_dump_json()

    @classmethod
    def from_json(cls, text: str | bytes) -> Event:
        try:
            return cls.model_validate_json(text)
        except ValidationError as exc:
            raise _invalid("the stored event", _problems(exc)) from None


# --- the state ------------------------------------------------------------------------


class Status(StrEnum):
    DRAFT = "draft"
    SUBMITTED = "submitted"
    RETURNED = "returned"
    RESUBMITTED = "resubmitted"
    IRB_APPROVED = "irb_approved"
    DRB_APPROVED = "drb_approved"
    SITES_APPROVED = "sites_approved"
    EXTRACTION = "extraction"
    PSEUDONYMIZATION = "pseudonymization"
    ADEQUACY_REVIEW = "adequacy_review"
    DELIVERED = "delivered"
    ACTIVE = "active"
    CLOSED = "closed"
    EXPIRED = "expired"
    REVOKED = "revoked"
    REJECTED = "rejected"


class Phase(StrEnum):
    """Where one requested site stands."""

    REQUESTED = "requested"
    APPROVED = "approved"
    REFUSED = "refused"
    EXTRACTING = "extracting"
    FAILED = "failed"
    EXTRACTED = "extracted"
    PSEUDONYMIZED = "pseudonymized"
    SIGNED_OFF = "signed_off"


TERMINAL = frozenset({Status.CLOSED, Status.EXPIRED, Status.REVOKED, Status.REJECTED})
SITE_WORK = frozenset(
    {Status.SITES_APPROVED, Status.EXTRACTION, Status.PSEUDONYMIZATION, Status.ADEQUACY_REVIEW}
)
_PHASE_RANK = {
    Phase.APPROVED: 0,
    Phase.EXTRACTING: 1,
    Phase.FAILED: 1,
    Phase.EXTRACTED: 2,
    Phase.PSEUDONYMIZED: 3,
    Phase.SIGNED_OFF: 3,
}


@dataclass(frozen=True)
class SiteProgress:
    phase: Phase = Phase.REQUESTED
    steward: str | None = None  # who approved or refused it
    reason: str | None = None  # the last refusal or failure
    details: Mapping[str, Detail] = field(default_factory=dict)  # extraction's figures


@dataclass(frozen=True)
class Record:
    """Who did what, when and why: one per event, for the application's page."""

    seq: int
    kind: str
    at: dt.datetime
    actor: str
    role: str
    reason: str | None
    site: str | None


@dataclass(frozen=True)
class Application:
    id: str
    applicant: str
    body: ApplicationBody
    status: Status
    version: int  # events applied
    updated_at: dt.datetime
    sites: Mapping[str, SiteProgress]
    votes: tuple[drb.Vote, ...] = ()
    decision: drb.Decision | None = None
    history: tuple[Record, ...] = ()

    @property
    def team(self) -> frozenset[str]:
        """Who may work in the project's workspace."""
        return frozenset({self.applicant, *self.body.members})

    @property
    def approved_sites(self) -> tuple[str, ...]:
        return tuple(
            s for s, p in self.sites.items() if p.phase not in (Phase.REQUESTED, Phase.REFUSED)
        )


# --- the rules ------------------------------------------------------------------------

Payload = Literal["reason", "site", "body", "vote", "decision"]


@dataclass(frozen=True)
class Step:
    roles: tuple[Role, ...]
    before: frozenset[Status] | None  # None: only the first event (drafted)
    needs: frozenset[Payload] = frozenset()
    forward: bool = True  # refused once the period of use has ended
    own: bool = False  # an applicant may take it on their own application only
    independent: bool = False  # the applicant and the members may not take it


_SUBMITTED = frozenset({Status.SUBMITTED, Status.RESUBMITTED})
_OPEN = frozenset(Status) - TERMINAL
_REVIEWED = _OPEN - {Status.DRAFT}
_SITE: tuple[Role, ...] = ("steward", "platform_admin")
STEPS: dict[str, Step] = {
    "drafted": Step(("applicant",), None, frozenset({"body"}), forward=False),
    "edited": Step(
        ("applicant",), frozenset({Status.DRAFT, Status.RETURNED}), frozenset({"body"}), False, True
    ),
    "submitted": Step(("applicant",), frozenset({Status.DRAFT}), own=True),
    "returned": Step(
        ("irb_reviewer", "drb_member", "platform_admin"),
        _SUBMITTED | {Status.IRB_APPROVED},
        frozenset({"reason"}),
        forward=False,
        independent=True,
    ),
    "resubmitted": Step(("applicant",), frozenset({Status.RETURNED}), own=True),
    "irb_approved": Step(("irb_reviewer",), _SUBMITTED, independent=True),
    "irb_rejected": Step(
        ("irb_reviewer",), _SUBMITTED, frozenset({"reason"}), False, independent=True
    ),
    "drb_vote_cast": Step(
        ("drb_member",), frozenset({Status.IRB_APPROVED}), frozenset({"vote"}), independent=True
    ),
    "drb_decided": Step(
        ("drb_member", "platform_admin"),
        frozenset({Status.IRB_APPROVED}),
        frozenset({"decision"}),
        independent=True,
    ),
    "site_approved": Step(
        ("steward",), frozenset({Status.DRB_APPROVED}), frozenset({"site"}), independent=True
    ),
    "site_refused": Step(
        ("steward",),
        frozenset({Status.DRB_APPROVED}),
        frozenset({"site", "reason"}),
        False,
        independent=True,
    ),
    "extraction_started": Step(_SITE, SITE_WORK, frozenset({"site"})),
    "extraction_finished": Step(_SITE, SITE_WORK, frozenset({"site"})),
    "extraction_failed": Step(_SITE, SITE_WORK, frozenset({"site", "reason"}), forward=False),
    "pseudonymized": Step(_SITE, SITE_WORK, frozenset({"site"})),
    "adequacy_signed_off": Step(
        ("pseudonymization_officer",), SITE_WORK, frozenset({"site"}), independent=True
    ),
    "delivered": Step(("platform_admin",), frozenset({Status.ADEQUACY_REVIEW})),
    "activated": Step(("platform_admin",), frozenset({Status.DELIVERED})),
    "closed": Step(
        ("applicant", "platform_admin"),
        frozenset({Status.DRAFT, Status.RETURNED, Status.ACTIVE}),
        forward=False,
        own=True,
    ),
    "expired": Step(("platform_admin",), _REVIEWED, forward=False),
    "revoked": Step(
        ("platform_admin", "drb_member"), _REVIEWED, frozenset({"reason"}), forward=False
    ),
}
# which phase each per-site step needs, and what it leaves
SITE_STEPS: dict[str, tuple[frozenset[Phase], Phase]] = {
    "site_approved": (frozenset({Phase.REQUESTED}), Phase.APPROVED),
    "site_refused": (frozenset({Phase.REQUESTED}), Phase.REFUSED),
    # a job restarted after a crash records its start again
    "extraction_started": (
        frozenset({Phase.APPROVED, Phase.FAILED, Phase.EXTRACTING}),
        Phase.EXTRACTING,
    ),
    "extraction_finished": (frozenset({Phase.EXTRACTING}), Phase.EXTRACTED),
    "extraction_failed": (frozenset({Phase.EXTRACTING}), Phase.FAILED),
    "pseudonymized": (frozenset({Phase.EXTRACTED}), Phase.PSEUDONYMIZED),
    "adequacy_signed_off": (frozenset({Phase.PSEUDONYMIZED}), Phase.SIGNED_OFF),
}
# an IRB reviewer returns before the IRB approves, a DRB member after
_RETURNS_FROM: dict[str, frozenset[Status]] = {
    "irb_reviewer": _SUBMITTED,
    "drb_member": frozenset({Status.IRB_APPROVED}),
    "platform_admin": _SUBMITTED | {Status.IRB_APPROVED},
}


def _role_text(step: Step, site: str | None) -> str:
    where = f"site {site!r}" if site else "the site"
    return " or ".join(
        f"steward of {where}" if r == "steward" else r.replace("_", " ") for r in step.roles
    )


def _check_frame(state: Application | None, event: Event) -> None:
    """The event belongs here: this application, the next number, not earlier in time."""
    if state is None:
        if event.kind != "drafted" or event.seq != 1:
            raise StateTransitionError(
                f"an application starts with a 'drafted' event numbered 1, not {event.kind!r}"
                f" numbered {event.seq}"
            )
        return
    if event.application_id != state.id:
        raise StateTransitionError(
            f"event of application {event.application_id!r} applied to {state.id!r}"
        )
    if event.seq != state.version + 1:
        raise StateTransitionError(
            f"event {event.seq} of {state.id!r} out of order: the next is {state.version + 1}"
        )
    if event.at < state.updated_at:
        raise StateTransitionError(
            f"event {event.seq} ({event.at.isoformat()}) is earlier than the last step"
            f" ({state.updated_at.isoformat()})"
        )


def _check_payload(step: Step, event: Event) -> None:
    present = {
        "site": event.site is not None,
        "body": event.body is not None,
        "vote": event.vote is not None,
        "decision": event.decision is not None,
    }
    for name, given in present.items():
        if given != (name in step.needs):
            raise ApplicationInvalidError(
                f"a {event.kind!r} event {'needs' if not given else 'carries no'} {name}"
            )
    if "reason" in step.needs:
        _require_reason(event)


def _require_reason(event: Event) -> None:
    if event.reason is None or not event.reason.strip():
        raise ReasonRequiredError(f"a {event.kind!r} step needs a reason")


def _check_people(step: Step, state: Application, event: Event) -> None:
    if step.own and event.role == "applicant" and event.actor != state.applicant:
        raise RoleDeniedError(
            f"only the applicant ({state.applicant!r}) may take the {event.kind!r} step"
            f" on application {state.id!r}"
        )
    if step.independent and event.actor in state.team:
        raise RoleDeniedError(
            f"{event.actor!r} applies for {state.id!r} and may not review it ({event.kind!r})"
        )


def _check_period(step: Step, state: Application, event: Event) -> None:
    period = state.body.period
    if step.forward and event.at >= period.ends_at:
        raise StateTransitionError(
            f"the period of use of {state.id!r} ended on {period.end}; {event.kind!r} is refused"
        )
    if event.kind == "activated" and event.at < period.starts_at:
        raise StateTransitionError(f"the period of use of {state.id!r} begins on {period.start}")
    if event.kind == "expired" and event.at < period.ends_at:
        raise StateTransitionError(f"the period of use of {state.id!r} runs until {period.end}")


def apply(state: Application | None, event: Event) -> Application:
    """The state after ``event``, or a typed error saying why the event does not apply."""
    _check_frame(state, event)
    step = STEPS[event.kind]
    if event.role not in step.roles:
        raise RoleDeniedError(f"{event.kind!r} needs the role {_role_text(step, event.site)}")
    _check_payload(step, event)
    if state is None:
        return _drafted(event)
    if step.before is None or state.status not in step.before:
        raise StateTransitionError(
            f"application {state.id!r} is {state.status.value}; {event.kind!r} does not apply"
        )
    _check_people(step, state, event)
    _check_period(step, state, event)
    new = _EFFECTS[event.kind](state, event)
    record = Record(
        event.seq, event.kind, event.at, event.actor, event.role, event.reason, event.site
    )
    return replace(new, version=event.seq, updated_at=event.at, history=(*state.history, record))


def replay(events: Iterable[Event]) -> Application:
    state: Application | None = None
    for event in events:
        state = apply(state, event)
    if state is None:
        raise StateTransitionError("an application needs at least its 'drafted' event")
    return state


# --- effects --------------------------------------------------------------------------


def _drafted(event: Event) -> Application:
    assert event.body is not None
    check_body(event.body)
    record = Record(1, event.kind, event.at, event.actor, event.role, event.reason, None)
    return Application(
        id=event.application_id,
        applicant=event.actor,
        body=event.body,
        status=Status.DRAFT,
        version=1,
        updated_at=event.at,
        sites={s: SiteProgress() for s in event.body.sites},
        history=(record,),
    )


def _edited(state: Application, event: Event) -> Application:
    assert event.body is not None
    check_body(event.body)
    return replace(state, body=event.body, sites={s: SiteProgress() for s in event.body.sites})


def _submitted(status: Status) -> Callable[[Application, Event], Application]:
    def effect(state: Application, event: Event) -> Application:
        if state.body.irb_document is None:
            raise ApplicationInvalidError(
                f"application {state.id!r} has no IRB approval document",
                hint="Upload the IRB approval and attach it before submitting.",
            )
        return replace(state, status=status)

    return effect


def _to(status: Status) -> Callable[[Application, Event], Application]:
    def effect(state: Application, event: Event) -> Application:
        return replace(state, status=status)

    return effect


def _returned(state: Application, event: Event) -> Application:
    if state.status not in _RETURNS_FROM[event.role]:
        raise StateTransitionError(
            f"a {event.role.replace('_', ' ')} does not return an application that is"
            f" {state.status.value}"
        )
    return replace(state, status=Status.RETURNED, votes=(), decision=None)


def _vote(state: Application, event: Event) -> Application:
    assert event.vote is not None
    if event.vote.member != event.actor:
        raise RoleDeniedError(f"{event.actor!r} cannot cast {event.vote.member!r}'s vote")
    drb.check_vote(event.vote, state.votes)
    return replace(state, votes=(*state.votes, event.vote))


def _decided(state: Application, event: Event) -> Application:
    assert event.decision is not None
    decision = drb.decide(event.decision.policy, state.votes)
    if decision.outcome == "no_quorum":
        failed = "; ".join(str(r) for r in decision.failed)
        raise DrbError(f"the committee has no quorum on {state.id!r}: {failed}")
    if decision.outcome != event.decision.outcome:
        raise DrbError(
            f"the recorded outcome {event.decision.outcome!r} is not what the votes give"
            f" ({decision.explain()})"
        )
    if decision.outcome == "rejected":
        _require_reason(event)
        return replace(state, status=Status.REJECTED, decision=decision)
    return replace(state, status=Status.DRB_APPROVED, decision=decision)


def _site_step(state: Application, event: Event) -> Application:
    site = event.site
    assert site is not None
    if site not in state.sites:
        raise ApplicationInvalidError(
            f"site {site!r} is not requested by {state.id!r} (it asks for {list(state.sites)})"
        )
    before, after = SITE_STEPS[event.kind]
    progress = state.sites[site]
    if progress.phase not in before:
        raise StateTransitionError(
            f"site {site!r} of {state.id!r} is {progress.phase.value}; {event.kind!r} does not"
            " apply"
        )
    changed = replace(
        progress,
        phase=after,
        steward=event.actor if event.kind.startswith("site_") else progress.steward,
        reason=event.reason if after in (Phase.REFUSED, Phase.FAILED) else progress.reason,
        details={**progress.details, **event.details},
    )
    sites = {**state.sites, site: changed}
    return replace(state, sites=sites, status=site_status(sites))


def site_status(sites: Mapping[str, SiteProgress]) -> Status:
    """The application's status while its sites decide and work: the least advanced site."""
    phases = [p.phase for p in sites.values()]
    if Phase.REQUESTED in phases:
        return Status.DRB_APPROVED
    ranks = [_PHASE_RANK[p] for p in phases if p != Phase.REFUSED]
    if not ranks:
        return Status.REJECTED  # every site refused
    least = min(ranks)
    if least == 0:
        return Status.EXTRACTION if max(ranks) > 0 else Status.SITES_APPROVED
    return (Status.EXTRACTION, Status.PSEUDONYMIZATION, Status.ADEQUACY_REVIEW)[least - 1]


def _delivered(state: Application, event: Event) -> Application:
    waiting = [s for s in state.approved_sites if state.sites[s].phase is not Phase.SIGNED_OFF]
    if waiting:
        raise StateTransitionError(
            f"the releases of {waiting} are not signed off by the pseudonymization officer"
        )
    return replace(state, status=Status.DELIVERED)


_EFFECTS: dict[str, Callable[[Application, Event], Application]] = {
    "edited": _edited,
    "submitted": _submitted(Status.SUBMITTED),
    "returned": _returned,
    "resubmitted": _submitted(Status.RESUBMITTED),
    "irb_approved": _to(Status.IRB_APPROVED),
    "irb_rejected": _to(Status.REJECTED),
    "drb_vote_cast": _vote,
    "drb_decided": _decided,
    **{kind: _site_step for kind in SITE_STEPS},
    "delivered": _delivered,
    "activated": _to(Status.ACTIVE),
    "closed": _to(Status.CLOSED),
    "expired": _to(Status.EXPIRED),
    "revoked": _to(Status.REVOKED),
}


# --- acting ---------------------------------------------------------------------------


def role_for(actor: Actor, kind: str, site: str | None) -> Role:
    """The first role the step allows that the actor holds for the step's site (a steward
    only ever for a site; a role the platform scopes to a site, such as a hospital's own
    pseudonymization officer, for that site)."""
    step = STEPS[kind]
    for role in step.roles:
        if (role != "steward" or site is not None) and actor.has_role(role, site):
            return role
    raise RoleDeniedError(f"{actor.id!r} may not take {kind!r}: it needs {_role_text(step, site)}")


def _record(state: Application | None, policy: drb.DrbPolicy | None) -> DrbRecord | None:
    """The decision the votes give under ``policy`` (``apply`` refuses one without quorum)."""
    if policy is None:
        return None
    outcome = drb.decide(policy, state.votes if state else ()).outcome
    return DrbRecord(policy=policy, outcome="rejected" if outcome == "rejected" else "approved")


def act(
    state: Application | None,
    actor: Actor,
    kind: EventKind,
    *,
    at: dt.datetime,
    application_id: str | None = None,
    reason: str | None = None,
    site: str | None = None,
    body: ApplicationBody | None = None,
    vote: drb.Vote | None = None,
    drb_policy: drb.DrbPolicy | None = None,
    details: Mapping[str, Detail] | None = None,
) -> tuple[Event, Application]:
    """Take one step as ``actor``: the event to store, and the state it leads to."""
    role = role_for(actor, kind, site)
    fields: dict[str, Any] = {
        "application_id": application_id if state is None else state.id,
        "seq": state.version + 1 if state else 1,
        "kind": kind,
        "at": at,
        "actor": actor.id,
        "role": role,
        "reason": reason,
        "site": site,
        "body": body,
        "vote": vote,
        "decision": _record(state, drb_policy),
        "details": dict(details or {}),
    }
    try:
        event = Event.model_validate(fields)
    except ValidationError as exc:
        raise _invalid(f"the {kind!r} step", _problems(exc)) from None
    return event, apply(state, event)
