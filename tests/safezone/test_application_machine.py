"""Random event sequences never reach an illegal state, and replay is deterministic.

Hypothesis drives one application with any step by anyone (wrong roles, wrong states,
missing reasons, other sites, late events) mixed with the next plausible step of the
happy path, so that runs reach every status. Each refused step must raise a typed
safe-zone error and leave the state as it was; each accepted one must move along an
edge of the lifecycle as the README draws it (written out here, independently of the
code's tables). At the end, the stored events replay to the same state, also after a
JSON round trip.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from pmhub.safezone import application as app
from pmhub.safezone import drb, errors

from .application_flow import (
    ADMIN,
    APPLICANT,
    AUDITOR,
    DRB_MEMBERS,
    IRB,
    MEMBER,
    NOBODY,
    OFFICER,
    OTHER_APPLICANT,
    SITES,
    STEWARDS,
    T0,
    body,
    vote,
)

S = app.Status
BODIES = (body(), body(sites=list(SITES[:2])))
ACTORS = (
    APPLICANT,
    OTHER_APPLICANT,
    MEMBER,
    IRB,
    ADMIN,
    OFFICER,
    AUDITOR,
    NOBODY,
    *STEWARDS.values(),
    *DRB_MEMBERS.values(),
)
REFUSALS = (
    errors.ApplicationInvalidError,
    errors.RoleDeniedError,
    errors.StateTransitionError,
    errors.ReasonRequiredError,
    errors.DrbError,
)
REASONS = (None, "", "   ", "the plan names no analysis")
_STEP = {S.DRB_APPROVED, S.REVOKED, S.EXPIRED}
EDGES: dict[S | None, set[S]] = {
    None: {S.DRAFT},
    S.DRAFT: {S.DRAFT, S.SUBMITTED, S.CLOSED},
    S.SUBMITTED: {S.RETURNED, S.IRB_APPROVED, S.REJECTED, S.REVOKED, S.EXPIRED},
    S.RETURNED: {S.RETURNED, S.RESUBMITTED, S.CLOSED, S.REVOKED, S.EXPIRED},
    S.RESUBMITTED: {S.RETURNED, S.IRB_APPROVED, S.REJECTED, S.REVOKED, S.EXPIRED},
    S.IRB_APPROVED: {S.IRB_APPROVED, S.RETURNED, S.REJECTED, *_STEP},
    S.DRB_APPROVED: {S.SITES_APPROVED, S.REJECTED, *_STEP},
    S.SITES_APPROVED: {S.EXTRACTION, S.REVOKED, S.EXPIRED},
    S.EXTRACTION: {S.EXTRACTION, S.PSEUDONYMIZATION, S.REVOKED, S.EXPIRED},
    S.PSEUDONYMIZATION: {S.PSEUDONYMIZATION, S.ADEQUACY_REVIEW, S.REVOKED, S.EXPIRED},
    S.ADEQUACY_REVIEW: {S.ADEQUACY_REVIEW, S.DELIVERED, S.REVOKED, S.EXPIRED},
    S.DELIVERED: {S.ACTIVE, S.REVOKED, S.EXPIRED},
    S.ACTIVE: {S.CLOSED, S.REVOKED, S.EXPIRED},
}
# who may take the steps that decide something, as the issue names them
DECIDERS = {
    "irb_approved": {"irb_reviewer"},
    "irb_rejected": {"irb_reviewer"},
    "drb_vote_cast": {"drb_member"},
    "site_approved": {"steward"},
    "site_refused": {"steward"},
    "adequacy_signed_off": {"pseudonymization_officer"},
    "activated": {"platform_admin"},
}
NEEDS_REASON = {"returned", "irb_rejected", "site_refused", "extraction_failed", "revoked"}
NEXT_AT_SITE: dict[app.Phase, tuple[app.EventKind, app.StaticActor]] = {
    app.Phase.APPROVED: ("extraction_started", ADMIN),
    app.Phase.FAILED: ("extraction_started", ADMIN),
    app.Phase.EXTRACTING: ("extraction_finished", ADMIN),
    app.Phase.EXTRACTED: ("pseudonymized", ADMIN),
    app.Phase.PSEUDONYMIZED: ("adequacy_signed_off", OFFICER),
}


class ApplicationMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.events: list[app.Event] = []
        self.state: app.Application | None = None
        self.clock = T0

    def attempt(self, actor: app.Actor, kind: app.EventKind, **payload: Any) -> None:
        before = self.state
        snapshot = repr(before)
        try:
            stored, after = app.act(
                before, actor, kind, at=self.clock, application_id="proj-1", **payload
            )
        except REFUSALS:
            assert self.state is before
            assert repr(before) == snapshot  # nothing changed
            return
        assert after.status in EDGES[before.status if before else None], (kind, after.status)
        self.events.append(stored)
        self.state = after
        event(f"reached {after.status.value}")

    @rule(days=st.floats(0, 40))
    def time_passes(self, days: float) -> None:
        self.clock += dt.timedelta(days=days)

    @rule(
        kind=st.sampled_from(app.EVENT_KINDS),
        actor=st.sampled_from(ACTORS),
        site=st.sampled_from((None, *SITES, "wonju_general")),
        reason=st.sampled_from(REASONS),
        which=st.integers(0, 1),
        choice=st.sampled_from(("approve", "reject", "abstain")),
        conflicted=st.booleans(),
    )
    def anyone_tries_anything(
        self,
        kind: app.EventKind,
        actor: app.StaticActor,
        site: str | None,
        reason: str | None,
        which: int,
        choice: drb.Choice,
        conflicted: bool,
    ) -> None:
        payload: dict[str, Any] = {"site": site, "reason": reason}
        if kind in ("drafted", "edited"):
            payload["body"] = BODIES[which]
        if kind == "drb_vote_cast":
            payload["vote"] = vote(actor.id, choice, conflict_of_interest=conflicted)
        if kind == "drb_decided":
            payload["drb_policy"] = drb.DrbPolicy(majority="simple" if which else "unanimous")
        self.attempt(actor, kind, **payload)

    @rule(data=st.data())
    def the_next_plausible_step(self, data: st.DataObject) -> None:
        state = self.state
        ending = data.draw(st.integers(0, 99))
        if state is None:
            self.attempt(APPLICANT, "drafted", body=data.draw(st.sampled_from(BODIES)))
        elif ending == 0:
            self.attempt(ADMIN, "revoked", reason="the data-use agreement was broken")
        elif ending == 1:
            self.clock = max(self.clock, state.body.period.ends_at)
            self.attempt(ADMIN, "expired")
        elif state.status in (S.DRAFT, S.RETURNED):
            self.attempt(APPLICANT, "submitted" if state.status == S.DRAFT else "resubmitted")
        elif state.status in (S.SUBMITTED, S.RESUBMITTED):
            returned = data.draw(st.integers(0, 4)) == 0
            self.attempt(IRB, "returned" if returned else "irb_approved", reason="unclear plan")
        elif state.status == S.IRB_APPROVED:
            self._committee(state, data)
        elif state.status == S.DRB_APPROVED:
            site = data.draw(
                st.sampled_from([s for s, p in state.sites.items() if p.phase == "requested"])
            )
            refused = data.draw(st.integers(0, 5)) == 0
            kind: app.EventKind = "site_refused" if refused else "site_approved"
            self.attempt(STEWARDS[site], kind, site=site, reason="no capacity")
        elif state.status in app.SITE_WORK:
            self._site_work(state, data)
        elif state.status == S.ADEQUACY_REVIEW:
            self.attempt(ADMIN, "delivered")
        elif state.status == S.DELIVERED:
            self.clock = max(self.clock, state.body.period.starts_at)
            self.attempt(ADMIN, "activated")
        elif state.status == S.ACTIVE:
            self.attempt(APPLICANT, "closed")

    def _committee(self, state: app.Application, data: st.DataObject) -> None:
        voted = {v.member for v in state.votes}
        waiting = [m for m in DRB_MEMBERS.values() if m.id not in voted]
        if len(voted) >= 5 and (not waiting or data.draw(st.booleans())):
            approvals = sum(v.choice == "approve" for v in state.votes)
            rejected = approvals <= len(state.votes) - approvals
            self.attempt(
                ADMIN,
                "drb_decided",
                drb_policy=drb.DrbPolicy(),
                reason="majority no" if rejected else None,
            )
            return
        member = data.draw(st.sampled_from(waiting))
        choices: tuple[drb.Choice, ...] = ("approve", "approve", "approve", "reject", "abstain")
        choice = data.draw(st.sampled_from(choices))
        self.attempt(member, "drb_vote_cast", vote=vote(member.id, choice))

    def _site_work(self, state: app.Application, data: st.DataObject) -> None:
        open_sites = [s for s in state.approved_sites if state.sites[s].phase in NEXT_AT_SITE]
        if not open_sites:
            self.attempt(ADMIN, "delivered")
            return
        site = data.draw(st.sampled_from(open_sites))
        kind, actor = NEXT_AT_SITE[state.sites[site].phase]
        failed = kind == "extraction_finished" and data.draw(st.integers(0, 4)) == 0
        self.attempt(actor, "extraction_failed" if failed else kind, site=site, reason="disk full")

    @invariant()
    def the_state_is_legal(self) -> None:
        state = self.state
        if state is None:
            assert self.events == []
            return
        assert state.version == len(self.events) == len(state.history)
        phases = {p.phase for p in state.sites.values()}
        if phases != {app.Phase.REQUESTED}:
            assert state.decision is not None
            assert state.decision.outcome == "approved"
        if state.status in app.SITE_WORK | {S.DELIVERED, S.ACTIVE}:
            assert app.Phase.REQUESTED not in phases
            assert state.approved_sites
        if state.status in (S.DELIVERED, S.ACTIVE):
            assert {state.sites[s].phase for s in state.approved_sites} == {app.Phase.SIGNED_OFF}

    @invariant()
    def every_record_was_taken_by_someone_entitled_with_reasons(self) -> None:
        if self.state is None:
            return
        team = self.state.team
        by_id = {a.id: a for a in ACTORS}
        for record in self.state.history:
            if record.kind in DECIDERS:
                assert record.role in DECIDERS[record.kind]
                assert record.actor not in team
            if record.role == "steward":
                assert by_id[record.actor].has_role("steward", record.site)
            if record.kind in NEEDS_REASON:
                assert record.reason is not None
                assert record.reason.strip()
            if record.kind == "activated":
                period = self.state.body.period
                assert period.starts_at <= record.at < period.ends_at

    def teardown(self) -> None:
        if self.state is None:
            return
        assert app.replay(self.events) == self.state
        stored = [e.to_json() for e in self.events]
        assert app.replay(app.Event.from_json(text) for text in stored) == self.state


ApplicationMachine.TestCase.settings = settings(
    max_examples=150,
    stateful_step_count=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestApplicationMachine = ApplicationMachine.TestCase
