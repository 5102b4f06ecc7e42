"""The data-use application: its body, its lifecycle, and replay of its events."""

from __future__ import annotations

import json

import pytest

from pmhub.safezone import application as app
from pmhub.safezone import drb
from pmhub.safezone.errors import (
    ApplicationInvalidError,
    DrbError,
    RoleDeniedError,
    StateTransitionError,
)

from .application_flow import (
    ADMIN,
    APPLICANT,
    DRB_MEMBERS,
    IRB,
    OFFICER,
    SITES,
    STEWARDS,
    Story,
    body,
    body_document,
    vote,
)

S = app.Status


def status(story: Story) -> app.Status:
    """The status now (a call, so that a type checker does not hold on to an older one)."""
    return story.now.status


def test_a_body_from_json_is_validated_and_names_what_it_extracts() -> None:
    parsed = app.loads_body(json.dumps(body_document()))
    assert parsed.sites == list(SITES)
    assert parsed.extracted()["measurement"] == (
        "person_id",
        "measurement_date",
        "measurement_concept_id",
        "value_as_number",
    )
    assert parsed.extracted()["cohort"] == app.COHORT_COLUMNS
    assert parsed.period.ends_at.isoformat() == "2027-01-01T00:00:00+00:00"


def test_every_problem_of_a_body_is_reported_with_its_path() -> None:
    document = body_document(
        sites=["Bad Site"], period={"start": "2026-05-01", "end": "2026-04-01"}
    )
    document["variables"][1]["columns"].append("no_such_column")
    with pytest.raises(ApplicationInvalidError) as caught:
        app.parse_body(document)
    assert caught.value.problems == [
        "sites[0]: String should match pattern '^[a-z][a-z0-9_]{0,39}$'",
        "period: the period ends (2026-04-01) before it starts (2026-05-01)",
    ]
    document = body_document()
    document["variables"][1]["columns"].append("no_such_column")
    with pytest.raises(ApplicationInvalidError) as caught:
        app.parse_body(document)
    assert caught.value.problems == [
        "variables[1].columns: 'measurement' has no column 'no_such_column'"
    ]


def test_the_happy_path_records_who_did_what_when_and_why() -> None:
    story = Story().to(S.CLOSED)
    state = story.now
    assert state.version == len(story.events) == len(state.history)
    assert [r.kind for r in state.history][:3] == ["drafted", "submitted", "irb_approved"]
    assert state.history[2].actor == IRB.id
    assert state.history[2].role == "irb_reviewer"
    assert state.decision is not None
    assert state.decision.outcome == "approved"
    assert {p.phase for p in state.sites.values()} == {app.Phase.SIGNED_OFF}
    assert state.sites["chuncheon_univ"].steward == STEWARDS["chuncheon_univ"].id


def test_replay_is_deterministic_and_survives_a_json_round_trip() -> None:
    story = Story().to(S.ACTIVE)
    stored = [e.to_json() for e in story.events]
    assert app.replay(story.events) == story.now
    assert app.replay(app.Event.from_json(text) for text in stored) == story.now


def test_a_returned_application_is_edited_resubmitted_and_reviewed_again() -> None:
    story = Story().to(S.IRB_APPROVED)
    story.do(DRB_MEMBERS["drb1"], "drb_vote_cast", vote=vote("drb1"))
    story.do(DRB_MEMBERS["drb2"], "returned", reason="the variables exceed the purpose")
    assert story.now.votes == ()
    assert story.now.history[-1].reason == "the variables exceed the purpose"
    story.do(APPLICANT, "edited", body=body(variables=body_document()["variables"][:2]))
    story.do(APPLICANT, "resubmitted")
    assert status(story) == S.RESUBMITTED
    assert "condition_occurrence" not in story.now.body.extracted()
    story.do(IRB, "irb_approved")
    assert status(story) == S.IRB_APPROVED


def test_a_rejecting_committee_rejects_with_its_reason_and_rules() -> None:
    story = Story().to(S.IRB_APPROVED)
    for k, member in enumerate(DRB_MEMBERS.values()):
        story.do(member, "drb_vote_cast", vote=vote(member.id, "reject" if k < 4 else "approve"))
    story.do(ADMIN, "drb_decided", drb_policy=drb.DrbPolicy(), reason="the purpose is too broad")
    assert status(story) == S.REJECTED
    assert story.now.decision is not None
    assert [r.name for r in story.now.decision.failed] == ["majority (simple)"]


def test_the_recorded_outcome_must_be_what_the_votes_give() -> None:
    story = Story().to(S.IRB_APPROVED)
    for member in DRB_MEMBERS.values():
        story.do(member, "drb_vote_cast", vote=vote(member.id, "reject"))
    decided, _ = app.act(
        story.now, ADMIN, "drb_decided", at=story.tick(), drb_policy=drb.DrbPolicy(), reason="no"
    )
    forged = decided.model_copy(
        update={"decision": app.DrbRecord(policy=drb.DrbPolicy(), outcome="approved")}
    )
    with pytest.raises(DrbError, match="not what the votes give"):
        app.replay([*story.events, forged])


def test_sites_decide_independently_and_a_refused_site_drops_out() -> None:
    story = Story().to(S.DRB_APPROVED)
    story.do(STEWARDS["chuncheon_univ"], "site_approved", site="chuncheon_univ")
    assert status(story) == S.DRB_APPROVED  # two sites still to decide
    story.do(STEWARDS["gangneung_general"], "site_refused", site="gangneung_general", reason="IRB")
    story.do(STEWARDS["jeongseon_county"], "site_approved", site="jeongseon_county")
    assert status(story) == S.SITES_APPROVED
    assert story.now.approved_sites == ("chuncheon_univ", "jeongseon_county")
    for site in story.now.approved_sites:
        story.do(ADMIN, "extraction_started", site=site)
    assert status(story) == S.EXTRACTION
    with pytest.raises(StateTransitionError, match="refused"):
        app.act(story.now, ADMIN, "extraction_started", at=story.tick(), site="gangneung_general")


def test_every_site_refusing_rejects_the_application() -> None:
    story = Story().to(S.DRB_APPROVED)
    for site in SITES:
        story.do(STEWARDS[site], "site_refused", site=site, reason="no capacity this year")
    assert status(story) == S.REJECTED


def test_a_failed_extraction_is_started_again_and_a_restarted_job_records_its_start() -> None:
    story = Story(sites=("chuncheon_univ",)).to(S.SITES_APPROVED)
    story.do(ADMIN, "extraction_started", site="chuncheon_univ")
    story.do(ADMIN, "extraction_failed", site="chuncheon_univ", reason="CDW unreachable")
    assert story.now.sites["chuncheon_univ"].phase == app.Phase.FAILED
    assert story.now.sites["chuncheon_univ"].reason == "CDW unreachable"
    story.do(STEWARDS["chuncheon_univ"], "extraction_started", site="chuncheon_univ")
    story.do(ADMIN, "extraction_started", site="chuncheon_univ")  # the server restarted
    story.do(ADMIN, "extraction_finished", site="chuncheon_univ", details={"persons": 13})
    assert status(story) == S.PSEUDONYMIZATION
    assert story.now.sites["chuncheon_univ"].details == {"persons": 13}


def test_the_status_is_the_least_advanced_sites() -> None:
    story = Story().to(S.SITES_APPROVED)
    for site in SITES:
        story.do(ADMIN, "extraction_started", site=site)
        story.do(ADMIN, "extraction_finished", site=site)
    story.do(ADMIN, "pseudonymized", site=SITES[0])
    assert status(story) == S.PSEUDONYMIZATION
    for site in SITES[1:]:
        story.do(ADMIN, "pseudonymized", site=site)
    story.do(OFFICER, "adequacy_signed_off", site=SITES[0])
    assert status(story) == S.ADEQUACY_REVIEW
    with pytest.raises(StateTransitionError, match="not signed off"):
        app.act(story.now, ADMIN, "delivered", at=story.tick())


def test_expiry_waits_for_the_end_of_the_period_and_then_ends_everything() -> None:
    story = Story().to(S.ACTIVE)
    end = story.now.body.period.ends_at
    with pytest.raises(StateTransitionError, match="runs until"):
        app.act(story.now, ADMIN, "expired", at=story.tick())
    story.do(ADMIN, "expired", at=end)
    assert status(story) == S.EXPIRED
    with pytest.raises(StateTransitionError):
        app.act(story.now, APPLICANT, "closed", at=story.tick())


def test_a_revocation_needs_a_reason_and_stops_the_work() -> None:
    story = Story().to(S.EXTRACTION)
    story.do(DRB_MEMBERS["drb3"], "revoked", reason="the company broke the data-use agreement")
    assert status(story) == S.REVOKED


def test_an_applicant_withdraws_a_draft_but_not_anothers() -> None:
    story = Story().to(S.DRAFT)
    other = app.StaticActor("lee.company", frozenset({"applicant"}))
    with pytest.raises(RoleDeniedError, match="only the applicant"):
        app.act(story.now, other, "closed", at=story.tick())
    story.do(APPLICANT, "closed")
    assert status(story) == S.CLOSED


def test_a_steward_may_also_be_an_admin_and_acts_under_the_specific_role() -> None:
    both = app.StaticActor(
        "steward.admin", frozenset({"platform_admin"}), steward_of=frozenset({"chuncheon_univ"})
    )
    story = Story(sites=("chuncheon_univ",)).to(S.SITES_APPROVED)
    story.do(both, "extraction_started", site="chuncheon_univ")
    assert story.events[-1].role == "steward"


class SiteOfficer:
    """A hospital's own pseudonymization officer: the role holds for that site only."""

    id = "officer.chuncheon"

    def has_role(self, role: str, site: str | None = None) -> bool:
        return role == "pseudonymization_officer" and site == "chuncheon_univ"


def test_a_role_scoped_to_a_site_is_asked_for_with_the_steps_site() -> None:
    story = Story(sites=SITES[:2]).to(S.SITES_APPROVED)
    for site in SITES[:2]:
        for kind in ("extraction_started", "extraction_finished", "pseudonymized"):
            story.do(ADMIN, kind, site=site)
    story.do(SiteOfficer(), "adequacy_signed_off", site="chuncheon_univ")
    with pytest.raises(RoleDeniedError, match="pseudonymization officer"):
        app.act(story.now, SiteOfficer(), "adequacy_signed_off", at=story.tick(), site=SITES[1])
