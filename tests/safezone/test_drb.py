"""The DRB's decision: quorum and majority as a policy, conflicts recused, rules named."""

from __future__ import annotations

import random
from typing import cast

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from pmhub.safezone import drb
from pmhub.safezone.errors import DrbError


def member(
    k: int,
    choice: str = "approve",
    *,
    external: bool = False,
    represents_data_subjects: bool = False,
    conflict_of_interest: bool = False,
) -> drb.Vote:
    return drb.Vote(
        member=f"m{k}",
        choice=cast(drb.Choice, choice),
        external=external,
        represents_data_subjects=represents_data_subjects,
        conflict_of_interest=conflict_of_interest,
    )


def panel(choices: list[str]) -> list[drb.Vote]:
    """Members m0.. voting ``choices``: m0 and m1 external, m1 for the data subjects."""
    return [
        member(k, c, external=k < 2, represents_data_subjects=k == 1) for k, c in enumerate(choices)
    ]


def test_the_default_committee_approves_with_five_two_external_and_a_subject_voice() -> None:
    decision = drb.decide(drb.DrbPolicy(), panel(["approve"] * 4 + ["reject"]))
    assert decision.outcome == "approved"
    assert [r.met for r in decision.rules] == [True, True, True, True]
    assert "4 approve, 1 reject" in decision.explain()


def test_four_members_are_no_quorum_and_the_decision_names_the_rule() -> None:
    decision = drb.decide(drb.DrbPolicy(), panel(["approve"] * 4))
    assert decision.outcome == "no_quorum"
    assert [r.name for r in decision.failed] == ["quorum: members"]
    assert decision.failed[0].actual == "4 members counted"


def test_without_a_subject_representative_there_is_no_quorum() -> None:
    votes = [member(k, external=k < 2) for k in range(6)]
    decision = drb.decide(drb.DrbPolicy(), votes)
    assert [r.name for r in decision.failed] == ["quorum: data-subject representatives"]


def test_a_conflicted_member_abstains_and_counts_toward_nothing() -> None:
    votes = [*panel(["approve"] * 4), member(9, "abstain", conflict_of_interest=True)]
    decision = drb.decide(drb.DrbPolicy(), votes)
    assert (decision.outcome, decision.recused, decision.abstain) == ("no_quorum", 1, 0)


def test_a_conflicted_member_cannot_vote_for_or_against() -> None:
    with pytest.raises(DrbError, match="conflict of interest"):
        drb.decide(drb.DrbPolicy(), [*panel(["approve"] * 5), member(9, conflict_of_interest=True)])


def test_a_member_votes_once() -> None:
    with pytest.raises(DrbError, match="already voted"):
        drb.decide(drb.DrbPolicy(), [*panel(["approve"] * 5), member(0, "reject")])


def test_a_tie_is_not_a_simple_majority() -> None:
    decision = drb.decide(drb.DrbPolicy(), panel(["approve", "reject"] * 3))
    assert decision.outcome == "rejected"
    assert [r.name for r in decision.failed] == ["majority (simple)"]


@pytest.mark.parametrize(
    ("majority", "outcome"),
    [("simple", "approved"), ("two_thirds", "rejected"), ("unanimous", "rejected")],
)
def test_the_majority_rule_is_configurable(majority: drb.Majority, outcome: str) -> None:
    votes = panel(["approve", "approve", "approve", "reject", "reject"])  # 60 %
    assert drb.decide(drb.DrbPolicy(majority=majority), votes).outcome == outcome


def test_abstentions_can_be_left_out_of_the_quorum() -> None:
    votes = panel(["approve"] * 4 + ["abstain"])
    assert drb.decide(drb.DrbPolicy(), votes).outcome == "approved"
    strict = drb.DrbPolicy(abstentions_count_toward_quorum=False)
    assert drb.decide(strict, votes).outcome == "no_quorum"


def test_a_policy_whose_parts_outnumber_its_quorum_is_refused() -> None:
    with pytest.raises(ValidationError, match="outnumber"):
        drb.DrbPolicy(min_members=2, min_external=3)


# --- properties ---------------------------------------------------------------------------

policies = st.builds(
    drb.DrbPolicy,
    min_members=st.integers(1, 8),
    min_external=st.integers(0, 1),
    min_subject_representatives=st.integers(0, 1),
    majority=st.sampled_from(["simple", "two_thirds", "unanimous"]),
    abstentions_count_toward_quorum=st.booleans(),
)


@st.composite
def committees(draw: st.DrawFn) -> list[drb.Vote]:
    size = draw(st.integers(0, 12))
    votes = []
    for k in range(size):
        conflicted = draw(st.booleans()) and draw(st.booleans())
        choice = (
            "abstain" if conflicted else draw(st.sampled_from(["approve", "reject", "abstain"]))
        )
        votes.append(
            member(
                k,
                choice,
                external=draw(st.booleans()),
                represents_data_subjects=draw(st.booleans()),
                conflict_of_interest=conflicted,
            )
        )
    return votes


@given(policies, committees(), st.randoms())
def test_the_order_of_votes_does_not_matter(
    policy: drb.DrbPolicy, votes: list[drb.Vote], rng: random.Random
) -> None:
    shuffled = list(votes)
    rng.shuffle(shuffled)
    assert drb.decide(policy, shuffled) == drb.decide(policy, votes)


@given(policies, committees(), st.booleans(), st.booleans())
def test_conflicted_members_never_change_the_decision(
    policy: drb.DrbPolicy, votes: list[drb.Vote], external: bool, subjects: bool
) -> None:
    before = drb.decide(policy, votes)
    recused = member(
        99,
        "abstain",
        external=external,
        represents_data_subjects=subjects,
        conflict_of_interest=True,
    )
    after = drb.decide(policy, [*votes, recused])
    assert (after.outcome, after.rules) == (before.outcome, before.rules)
    assert after.recused == before.recused + 1


@given(policies, committees())
def test_the_outcome_follows_from_the_rules_it_lists(
    policy: drb.DrbPolicy, votes: list[drb.Vote]
) -> None:
    decision = drb.decide(policy, votes)
    *quorum, majority = decision.rules
    if decision.outcome == "approved":
        assert all(r.met for r in decision.rules)
    elif decision.outcome == "rejected":
        assert all(r.met for r in quorum)
        assert not majority.met
    else:
        assert not all(r.met for r in quorum)
    counted = [v for v in votes if not v.conflict_of_interest]
    if not policy.abstentions_count_toward_quorum:
        counted = [v for v in counted if v.choice != "abstain"]
    assert quorum[0].met == (len(counted) >= policy.min_members)
    assert decision.approve + decision.reject + decision.abstain + decision.recused == len(votes)


@given(policies, committees(), st.data())
def test_turning_a_rejection_into_an_approval_never_undoes_an_approval(
    policy: drb.DrbPolicy, votes: list[drb.Vote], data: st.DataObject
) -> None:
    rejections = [k for k, v in enumerate(votes) if v.choice == "reject"]
    if not rejections:
        return
    k = data.draw(st.sampled_from(rejections))
    changed = [*votes[:k], votes[k].model_copy(update={"choice": "approve"}), *votes[k + 1 :]]
    if drb.decide(policy, votes).outcome == "approved":
        assert drb.decide(policy, changed).outcome == "approved"


@given(committees())
def test_stricter_majorities_approve_less(votes: list[drb.Vote]) -> None:
    lenient = drb.DrbPolicy(min_members=1, min_external=0, min_subject_representatives=0)
    outcomes = {
        m: drb.decide(lenient.model_copy(update={"majority": m}), votes).outcome
        for m in ("simple", "two_thirds", "unanimous")
    }
    if outcomes["unanimous"] == "approved":
        assert outcomes["two_thirds"] == "approved"
    if outcomes["two_thirds"] == "approved":
        assert outcomes["simple"] == "approved"
