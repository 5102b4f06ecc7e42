"""The data review committee (데이터심의위원회, DRB): votes, quorum and majority as a policy.

The MOHW health-data guideline asks for a committee with outside members and one who
speaks for the data subjects. Which composition counts as a quorum, and which majority
approves, differ between institutions, so they are a :class:`DrbPolicy`; the default is
five members taking part, two of them external, one representing data subjects, and a
simple majority of the votes cast.

A member with a declared conflict of interest must abstain (a vote otherwise is refused)
and is recused: their abstention counts toward nothing. Every decision lists each rule
with what it required and what the votes gave, so the record says which rule it met or
which it failed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from pmhub.safezone.errors import DrbError

Choice = Literal["approve", "reject", "abstain"]
Majority = Literal["simple", "two_thirds", "unanimous"]
Outcome = Literal["approved", "rejected", "no_quorum"]
MemberId = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,99}$")]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class Vote(_Model):
    """One member's vote; the member's standing (external, representing data subjects) is
    as the platform's committee roster has it when the vote is cast."""

    member: MemberId
    choice: Choice
    external: bool = False
    represents_data_subjects: bool = False
    conflict_of_interest: bool = False
    comment: Annotated[str, Field(max_length=5000)] = ""


class DrbPolicy(_Model):
    min_members: Annotated[int, Field(ge=1, le=100)] = 5
    min_external: Annotated[int, Field(ge=0, le=100)] = 2
    min_subject_representatives: Annotated[int, Field(ge=0, le=100)] = 1
    majority: Majority = "simple"
    # an abstaining member without a conflict is present and counts toward the quorum
    abstentions_count_toward_quorum: bool = True

    @model_validator(mode="after")
    def _consistent(self) -> DrbPolicy:
        if max(self.min_external, self.min_subject_representatives) > self.min_members:
            raise ValueError("a quorum's external or subject members cannot outnumber it")
        return self


@dataclass(frozen=True)
class RuleCheck:
    name: str
    required: str
    actual: str
    met: bool

    def __str__(self) -> str:
        return f"{self.name}: {'met' if self.met else 'failed'} ({self.actual}; {self.required})"


@dataclass(frozen=True)
class Decision:
    outcome: Outcome
    rules: tuple[RuleCheck, ...]
    approve: int
    reject: int
    abstain: int
    recused: int  # conflicted members, who abstained and count toward nothing

    @property
    def met(self) -> tuple[RuleCheck, ...]:
        return tuple(r for r in self.rules if r.met)

    @property
    def failed(self) -> tuple[RuleCheck, ...]:
        return tuple(r for r in self.rules if not r.met)

    def explain(self) -> str:
        return f"{self.outcome}: " + "; ".join(str(r) for r in self.rules)


def check_vote(vote: Vote, earlier: Sequence[Vote]) -> None:
    """Refuse a vote the committee's rules forbid, before it is recorded."""
    if vote.conflict_of_interest and vote.choice != "abstain":
        raise DrbError(
            f"member {vote.member!r} declared a conflict of interest and must abstain,"
            f" not {vote.choice}",
            hint="Record the vote as an abstention; a conflicted member is recused.",
        )
    if any(v.member == vote.member for v in earlier):
        raise DrbError(f"member {vote.member!r} has already voted on this application")


def _counted(votes: Sequence[Vote], policy: DrbPolicy) -> list[Vote]:
    """The members who count toward the quorum."""
    present = [v for v in votes if not v.conflict_of_interest]
    if policy.abstentions_count_toward_quorum:
        return present
    return [v for v in present if v.choice != "abstain"]


def _at_least(name: str, have: int, need: int, what: str) -> RuleCheck:
    return RuleCheck(name, f"at least {need}", f"{have} {what}", have >= need)


def _majority(policy: DrbPolicy, approve: int, reject: int) -> RuleCheck:
    cast = approve + reject
    if policy.majority == "simple":
        met, required = approve > reject, "more approvals than rejections"
    elif policy.majority == "two_thirds":
        met, required = cast > 0 and 3 * approve >= 2 * cast, "two thirds of the votes cast"
    else:
        met, required = approve > 0 and reject == 0, "every vote cast an approval"
    actual = f"{approve} approve, {reject} reject"
    return RuleCheck(f"majority ({policy.majority})", required, actual, met)


def decide(policy: DrbPolicy, votes: Sequence[Vote]) -> Decision:
    """The committee's decision on the votes cast, by the policy's rules."""
    for k, vote in enumerate(votes):
        check_vote(vote, votes[:k])
    counted = _counted(votes, policy)
    quorum = (
        _at_least("quorum: members", len(counted), policy.min_members, "members counted"),
        _at_least(
            "quorum: external members",
            sum(v.external for v in counted),
            policy.min_external,
            "external",
        ),
        _at_least(
            "quorum: data-subject representatives",
            sum(v.represents_data_subjects for v in counted),
            policy.min_subject_representatives,
            "representing data subjects",
        ),
    )
    approve = sum(v.choice == "approve" for v in votes)
    reject = sum(v.choice == "reject" for v in votes)
    majority = _majority(policy, approve, reject)
    if not all(r.met for r in quorum):
        outcome: Outcome = "no_quorum"
    else:
        outcome = "approved" if majority.met else "rejected"
    recused = sum(v.conflict_of_interest for v in votes)
    abstain = sum(v.choice == "abstain" for v in votes) - recused
    return Decision(outcome, (*quorum, majority), approve, reject, abstain, recused)
