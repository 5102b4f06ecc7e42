"""Hostile input to the data-use application, its committee, its uploads and extraction.

Each case asserts the typed error (class, exit code, a message) and that nothing
changed: the state is the same value, the stored events still replay to it, no document
is attached, no extraction folder appears.
"""

from __future__ import annotations

import datetime as dt
import io
import json
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from pmhub.cohorts import definition as cohort_format
from pmhub.errors import PmhubError
from pmhub.privacy.keys import ProjectKey
from pmhub.safezone import application as app
from pmhub.safezone import drb, extraction, upload
from pmhub.safezone.errors import (
    ApplicationInvalidError,
    DrbError,
    ReasonRequiredError,
    RoleDeniedError,
    StateTransitionError,
    UploadTooLargeError,
    UploadTypeError,
)
from pmhub.sites import Site
from tests.safezone.application_flow import (
    ADMIN,
    APPLICANT,
    AUDITOR,
    DRB_MEMBERS,
    IRB,
    MEMBER,
    OTHER_APPLICANT,
    STEWARDS,
    Story,
    body_document,
    vote,
)
from tests.safezone.test_upload import handmade_pdf, image_bytes

S = app.Status


def refused(
    story: Story, error: type[PmhubError], actor: app.Actor, kind: app.EventKind, **kw: Any
) -> PmhubError:
    """Try the step; it must fail with ``error`` and change nothing."""
    before, snapshot, stored = story.now, repr(story.now), list(story.events)
    at = kw.pop("at", None) or story.clock + dt.timedelta(hours=1)
    with pytest.raises(error) as caught:
        app.act(before, actor, kind, at=at, **kw)
    assert type(caught.value) is error
    assert caught.value.exit_code == error.exit_code
    assert caught.value.message.strip()
    assert story.now is before
    assert repr(story.now) == snapshot
    assert app.replay(stored) == before
    return caught.value


def unchecked_body(**changes: Any) -> app.ApplicationBody:
    """A body that passes the types but not the checks (what a forged event carries)."""
    document = body_document(**changes)
    document["cohort"] = cohort_format.parse(document["cohort"])
    return app.ApplicationBody.model_validate(document)


def invalid(document: dict[str, Any]) -> ApplicationInvalidError:
    with pytest.raises(ApplicationInvalidError) as caught:
        app.parse_body(document)
    assert caught.value.exit_code == 110
    return caught.value


# --- roles --------------------------------------------------------------------------------


def test_an_auditor_cannot_approve_for_the_irb() -> None:
    error = refused(Story().to(S.SUBMITTED), RoleDeniedError, AUDITOR, "irb_approved")
    assert "irb reviewer" in error.message


def test_a_steward_cannot_approve_another_hospitals_site() -> None:
    story = Story().to(S.DRB_APPROVED)
    steward = STEWARDS["chuncheon_univ"]
    refused(story, RoleDeniedError, steward, "site_approved", site="gangneung_general")


def test_another_applicant_cannot_edit_or_submit_the_application() -> None:
    story = Story().to(S.DRAFT)
    refused(story, RoleDeniedError, OTHER_APPLICANT, "submitted")
    refused(story, RoleDeniedError, OTHER_APPLICANT, "edited", body=story.now.body)


def test_a_member_of_the_project_cannot_vote_on_it_in_the_drb() -> None:
    story = Story().to(S.IRB_APPROVED)
    refused(story, RoleDeniedError, MEMBER, "drb_vote_cast", vote=vote(MEMBER.id))


def test_a_drb_member_cannot_cast_another_members_vote() -> None:
    story = Story().to(S.IRB_APPROVED)
    refused(story, RoleDeniedError, DRB_MEMBERS["drb1"], "drb_vote_cast", vote=vote("drb2"))


# --- states -------------------------------------------------------------------------------


def test_the_irb_cannot_approve_a_draft() -> None:
    refused(Story().to(S.DRAFT), StateTransitionError, IRB, "irb_approved")


def test_nothing_follows_a_revocation() -> None:
    story = Story().to(S.ACTIVE)
    story.do(ADMIN, "revoked", reason="data-use agreement broken")
    refused(story, StateTransitionError, ADMIN, "activated")


def test_a_stored_event_out_of_order_or_back_in_time_is_refused() -> None:
    story = Story().to(S.IRB_APPROVED)
    events = story.events
    with pytest.raises(StateTransitionError, match="out of order"):
        app.replay([events[0], events[2]])
    earlier = events[-1].model_copy(update={"seq": len(events) + 1, "at": events[0].at})
    with pytest.raises(StateTransitionError, match="earlier"):
        app.replay([*events, earlier])
    assert app.replay(events) == story.now


def test_an_extraction_of_a_revoked_application_is_refused(tmp_path: Path) -> None:
    story = Story(sites=("chuncheon_univ",)).to(S.SITES_APPROVED)
    story.do(ADMIN, "revoked", reason="the IRB withdrew its approval")
    site = Site(name="chuncheon_univ", cdw_url=f"duckdb:///{tmp_path / 'none.duckdb'}")
    key = ProjectKey(story.id, b"0123456789abcdef0123456789abcdef")
    with pytest.raises(StateTransitionError) as caught:
        extraction.extract_site(story.now, site, tmp_path / "out", key=key)
    assert caught.value.exit_code == 112
    assert list(tmp_path.iterdir()) == []


# --- reasons ------------------------------------------------------------------------------


def test_a_return_without_a_reason_is_refused() -> None:
    refused(Story().to(S.SUBMITTED), ReasonRequiredError, IRB, "returned")


@pytest.mark.parametrize("blank", ["", "   \n\t"])
def test_a_blank_reason_is_no_reason(blank: str) -> None:
    story = Story().to(S.DRB_APPROVED)
    refused(story, ReasonRequiredError, ADMIN, "revoked", reason=blank)
    steward = STEWARDS["chuncheon_univ"]
    refused(
        story, ReasonRequiredError, steward, "site_refused", site="chuncheon_univ", reason=blank
    )


def test_a_committee_rejection_without_a_reason_is_refused() -> None:
    story = Story().to(S.IRB_APPROVED)
    for member in DRB_MEMBERS.values():
        story.do(member, "drb_vote_cast", vote=vote(member.id, "reject"))
    refused(story, ReasonRequiredError, ADMIN, "drb_decided", drb_policy=drb.DrbPolicy())


# --- the committee ------------------------------------------------------------------------


def test_a_conflicted_member_voting_for_it_is_refused() -> None:
    story = Story().to(S.IRB_APPROVED)
    conflicted = vote("drb1", conflict_of_interest=True)
    error = refused(story, DrbError, DRB_MEMBERS["drb1"], "drb_vote_cast", vote=conflicted)
    assert "must abstain" in error.message


def test_a_member_cannot_vote_twice() -> None:
    story = Story().to(S.IRB_APPROVED)
    story.do(DRB_MEMBERS["drb1"], "drb_vote_cast", vote=vote("drb1"))
    refused(story, DrbError, DRB_MEMBERS["drb1"], "drb_vote_cast", vote=vote("drb1", "reject"))


def test_a_decision_without_quorum_names_the_rule_it_failed() -> None:
    story = Story().to(S.IRB_APPROVED)
    for name in ("drb1", "drb2", "drb3", "drb6"):
        story.do(DRB_MEMBERS[name], "drb_vote_cast", vote=vote(name))
    error = refused(story, DrbError, ADMIN, "drb_decided", drb_policy=drb.DrbPolicy())
    assert "quorum: members: failed (4 members counted; at least 5)" in error.message
    assert "data-subject representatives: failed" in error.message


# --- periods ------------------------------------------------------------------------------


def test_a_workspace_is_not_activated_after_the_period_of_use() -> None:
    story = Story().to(S.DELIVERED)
    late = story.now.body.period.ends_at + dt.timedelta(minutes=1)
    refused(story, StateTransitionError, ADMIN, "activated", at=late)


def test_an_application_whose_period_has_passed_cannot_be_submitted() -> None:
    story = Story().to(S.DRAFT)
    late = story.now.body.period.ends_at
    refused(story, StateTransitionError, APPLICANT, "submitted", at=late)


def test_a_time_without_a_zone_is_refused() -> None:
    story = Story().to(S.DRAFT)
    refused(story, ApplicationInvalidError, APPLICANT, "submitted", at=dt.datetime(2026, 3, 9))


# --- the body -----------------------------------------------------------------------------


def test_an_application_without_sites_is_refused() -> None:
    error = invalid(body_document(sites=[]))
    assert error.problems == ["sites: List should have at least 1 item after validation, not 0"]


def test_a_site_the_application_does_not_request_cannot_be_approved() -> None:
    story = Story().to(S.DRB_APPROVED)
    steward = STEWARDS["wonju_general"]
    error = refused(story, ApplicationInvalidError, steward, "site_approved", site="wonju_general")
    assert "not requested" in error.message


def test_unknown_omop_tables_and_columns_are_refused_even_in_a_forged_edit() -> None:
    variables = body_document()["variables"]
    variables[0]["columns"].append("social_security_number")
    variables.append({"table": "patients", "columns": ["name"]})
    story = Story().to(S.DRAFT)
    error = refused(
        story,
        ApplicationInvalidError,
        APPLICANT,
        "edited",
        body=unchecked_body(variables=variables),
    )
    assert error.problems == [  # type: ignore[attr-defined]
        "variables[0].columns: 'person' has no column 'social_security_number'",
        "variables[3].table: OMOP CDM v5.4 has no table 'patients'",
    ]


def test_free_text_notes_are_not_extracted() -> None:
    document = body_document()
    document["variables"].append({"table": "note", "columns": ["note_text"]})
    assert "free text" in invalid(document).message


def test_a_cohort_definition_that_fails_its_own_validation_is_refused() -> None:
    cohort = body_document()["cohort"]
    cohort["entry"]["criteria"][0]["concept_set"] = "no_such_set"
    cohort["inclusion_rules"][0]["criteria"][0]["age"] = {"min": "eighteen"}
    error = invalid(body_document(cohort=cohort))
    assert all(p.startswith("cohort.") for p in error.problems)
    assert any("age" in p for p in error.problems)


def test_an_unknown_concept_set_reference_is_caught_in_a_forged_edit() -> None:
    story = Story().to(S.DRAFT)
    variables = body_document()["variables"]
    variables[1]["concept_set"] = "insulin"
    error = refused(
        story,
        ApplicationInvalidError,
        APPLICANT,
        "edited",
        body=unchecked_body(variables=variables),
    )
    assert "no concept set 'insulin'" in error.message


@pytest.mark.parametrize(
    ("rules", "says"),
    [
        ({"person": {"columns": {"person_id": {"action": "keep"}}}}, "an identifier"),
        (
            {
                "person": {
                    "columns": {
                        "year_of_birth": {
                            "action": "generalize",
                            "hierarchy": {"file": "/etc/passwd"},
                        }
                    }
                }
            },
            "names no files",
        ),
        ({"visit_detail": {"columns": {}}}, "extracts no table"),
    ],
    ids=["kept-identifier", "server-file", "unrequested-table"],
)
def test_privacy_rules_that_would_leak_or_read_server_files_are_refused(
    rules: dict[str, Any], says: str
) -> None:
    assert says in invalid(body_document(privacy=rules)).message


def test_malformed_deep_or_oversized_json_is_refused() -> None:
    for text in ("{not json", "[" * 100_000 + "]" * 100_000, " " * (app.MAX_BODY_BYTES + 1)):
        with pytest.raises(ApplicationInvalidError):
            app.loads_body(text)
    with pytest.raises(ApplicationInvalidError, match="a mapping"):
        app.parse_body(json.loads('["a list"]'))


def test_submitting_without_the_irb_approval_is_refused() -> None:
    story = Story(irb_document=None).to(S.DRAFT)
    error = refused(story, ApplicationInvalidError, APPLICANT, "submitted")
    assert "IRB approval" in error.message


# --- uploads ------------------------------------------------------------------------------

HTML = b"<!DOCTYPE html><html><body><script>fetch('/api/tokens')</script></body></html>"


def png_with_zip() -> bytes:
    return image_bytes("PNG") + b"PK\x03\x04" + b"\0" * 30


def encrypted_pdf() -> bytes:
    return handmade_pdf().replace(b"/Root 1 0 R", b"/Root 1 0 R /Encrypt 9 0 R")


@pytest.mark.parametrize(
    ("data", "name", "says"),
    [
        (HTML, "approval.pdf", "it is HTML"),
        (b"%PDF-1.7\n" + HTML, "approval.pdf", "PDF trailer"),
        (b"MZ\x90\x00" + b"\0" * 100, "approval.pdf", "program"),
        (b"PK\x03\x04" + b"\0" * 100, "approval.docx", "ZIP"),
        (png_with_zip(), "scan.png", "after its end chunk"),
        (encrypted_pdf(), "approval.pdf", "encrypted"),
        (image_bytes("PNG")[:-20], "scan.png", "cut off"),
        (b"", "empty.pdf", "empty"),
    ],
    ids=[
        "html-as-pdf",
        "html-behind-pdf-header",
        "exe",
        "zip",
        "png-polyglot",
        "encrypted",
        "cut-png",
        "empty",
    ],
)
def test_uploads_that_are_not_what_they_claim_are_refused(
    data: bytes, name: str, says: str
) -> None:
    story = Story(irb_document=None).to(S.DRAFT)
    with pytest.raises(UploadTypeError) as caught:
        upload.check_irb_document(data, name)
    assert caught.value.exit_code == 116
    assert says in caught.value.message
    assert story.now.body.irb_document is None


def test_an_oversized_upload_is_refused_before_it_is_read_whole() -> None:
    big = io.BytesIO()
    Image.new("RGB", (16, 16)).save(big, format="PNG")
    stream = io.BytesIO(big.getvalue() + b"\0" * (upload.MAX_IRB_BYTES + 10))
    with pytest.raises(UploadTooLargeError) as caught:
        upload.read_capped(stream)
    assert (caught.value.exit_code, caught.value.http_status) == (115, 413)
    assert stream.tell() == upload.MAX_IRB_BYTES + 1
    with pytest.raises(UploadTooLargeError):
        upload.check_irb_document(b"%PDF-1.4" + b"\0" * upload.MAX_IRB_BYTES, "big.pdf")
