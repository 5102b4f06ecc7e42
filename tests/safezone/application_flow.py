"""A data-use application and the people who move it, for the application's tests.

``story(...)`` takes an application from drafting to any status along the happy path,
returning the stored events and the state, so each test starts where it needs to.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path
from typing import Any

import yaml

from pmhub.cohorts import definition as cohort_format
from pmhub.safezone import application as app
from pmhub.safezone import drb
from pmhub.safezone.upload import IrbDocument

LIBRARY = Path(cohort_format.__file__).parent / "library"
SITES = ("chuncheon_univ", "gangneung_general", "jeongseon_county")
T0 = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)
START, END = dt.date(2026, 4, 1), dt.date(2026, 12, 31)

APPLICANT = app.StaticActor("kim.researcher", frozenset({"applicant"}))
OTHER_APPLICANT = app.StaticActor("lee.company", frozenset({"applicant"}))
MEMBER = app.StaticActor("park.analyst", frozenset({"project_member", "drb_member"}))
IRB = app.StaticActor("choi.irb", frozenset({"irb_reviewer"}))
ADMIN = app.StaticActor("admin", frozenset({"platform_admin"}))
OFFICER = app.StaticActor("jung.officer", frozenset({"pseudonymization_officer"}))
AUDITOR = app.StaticActor("han.auditor", frozenset({"auditor"}))
NOBODY = app.StaticActor("anon")
STEWARDS = {
    s: app.StaticActor(f"steward.{s}", steward_of=frozenset({s})) for s in (*SITES, "wonju_general")
}
# five internal, two external, one of whom speaks for the data subjects
DRB_MEMBERS = {
    f"drb{k}": app.StaticActor(f"drb{k}", frozenset({"drb_member"})) for k in range(1, 8)
}
EXTERNAL = {"drb6", "drb7"}
SUBJECTS = {"drb7"}


def irb_document() -> IrbDocument:
    return IrbDocument(
        sha256=hashlib.sha256(b"irb").hexdigest(),
        filename="irb-approval.pdf",
        media_type="application/pdf",
        size=1234,
    )


def cohort_document(name: str = "type2_diabetes") -> dict[str, Any]:
    loaded = yaml.safe_load((LIBRARY / f"{name}.yaml").read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def body_document(**changes: Any) -> dict[str, Any]:
    """The JSON an applicant sends (parse with ``app.parse_body``)."""
    document: dict[str, Any] = {
        "title": "Type 2 diabetes and HbA1c trajectories",
        "purpose": "Describe HbA1c after a first type 2 diabetes diagnosis in Gangwon.",
        "research_plan": "Cohort of first T2DM diagnoses; HbA1c over five years; mixed models.",
        "sites": list(SITES),
        "cohort": cohort_document(),
        "variables": [
            {"table": "person", "columns": ["year_of_birth", "gender_concept_id"]},
            {
                "table": "measurement",
                "columns": ["measurement_date", "measurement_concept_id", "value_as_number"],
                "concept_set": "hba1c",
            },
            {
                "table": "condition_occurrence",
                "columns": ["condition_start_date", "condition_concept_id", "visit_occurrence_id"],
                "concept_set": "t2dm",
            },
        ],
        "period": {"start": START.isoformat(), "end": END.isoformat()},
        "members": [MEMBER.id],
        "irb_document": irb_document().model_dump(),
    }
    document.update(changes)
    return document


def body(**changes: Any) -> app.ApplicationBody:
    return app.parse_body(body_document(**changes))


def vote(member: str, choice: drb.Choice = "approve", **kw: Any) -> drb.Vote:
    return drb.Vote(
        member=member,
        choice=choice,
        external=member in EXTERNAL,
        represents_data_subjects=member in SUBJECTS,
        **kw,
    )


class Story:
    """The events of one application so far, and its state."""

    def __init__(
        self,
        application_id: str = "proj-2026-001",
        sites: tuple[str, ...] = SITES,
        **changes: Any,
    ) -> None:
        self.changes = changes  # to the body the applicant drafts
        self.events: list[app.Event] = []
        self.state: app.Application | None = None
        self.clock = T0
        self.id = application_id
        self.sites = sites

    @property
    def now(self) -> app.Application:
        assert self.state is not None
        return self.state

    def tick(self, days: float = 1) -> dt.datetime:
        self.clock += dt.timedelta(days=days)
        return self.clock

    def do(self, actor: app.Actor, kind: app.EventKind, **kw: Any) -> app.Application:
        at = kw.pop("at", None) or self.tick()
        self.clock = max(self.clock, at)
        event, self.state = app.act(self.state, actor, kind, at=at, application_id=self.id, **kw)
        self.events.append(event)
        return self.state

    def to(self, status: app.Status) -> Story:
        """Walk the happy path until the application is ``status``."""
        for step in _HAPPY:
            if self.state is not None and self.state.status == status:
                return self
            step(self)
        assert self.now.status == status, self.now.status
        return self


def _draft(s: Story) -> None:
    s.do(APPLICANT, "drafted", body=body(**{"sites": list(s.sites), **s.changes}))


def _votes(s: Story) -> None:
    for member in DRB_MEMBERS.values():
        s.do(member, "drb_vote_cast", vote=vote(member.id))
    s.do(ADMIN, "drb_decided", drb_policy=drb.DrbPolicy())


def _per_site(kind: app.EventKind, actor: Any = None) -> Any:
    def step(s: Story) -> None:
        for site in s.sites:
            who = actor or STEWARDS[site]
            s.do(who, kind, site=site, **({"details": {"rows": 10}} if "finished" in kind else {}))

    return step


_HAPPY = (
    _draft,
    lambda s: s.do(APPLICANT, "submitted"),
    lambda s: s.do(IRB, "irb_approved"),
    _votes,
    _per_site("site_approved"),
    _per_site("extraction_started", ADMIN),
    _per_site("extraction_finished", ADMIN),
    _per_site("pseudonymized", ADMIN),
    _per_site("adequacy_signed_off", OFFICER),
    lambda s: s.do(ADMIN, "delivered"),
    lambda s: s.do(
        ADMIN, "activated", at=max(s.tick(), app.Period(start=START, end=END).starts_at)
    ),
    lambda s: s.do(APPLICANT, "closed"),
)
