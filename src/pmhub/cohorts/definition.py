"""The cohort definition format: versioned JSON or YAML, validated by pydantic.

It covers what OHDSI Circe definitions use in practice: concept sets (descendants through
concept_ancestor, exclusions, source codes mapped through source_to_concept_map), entry
events in any domain with first or all occurrences and required observation, inclusion
rules (at least / at most / exactly N events in a window around the index; age; sex;
measurement values), exit strategies, censoring events and era collapse.

Every problem is reported with its path (``inclusion_rules[0].criteria[1].window``), so
that a user can find it in the file.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from pmhub import documents
from pmhub.cohorts.errors import CohortDefinitionError, DefinitionVersionError

FORMAT_VERSION = 1
MAX_DEFINITION_BYTES = 1 << 20  # a definition is a few kilobytes; refuse anything absurd
MAX_DAYS = 36_500 * 2  # two centuries: any larger window is a typo
MAX_NESTING = 40  # levels of mappings and lists; criteria groups nest a few levels at most
# a large definition (hundreds of concepts) has a few thousand nodes; YAML aliases that
# expand beyond this are a bomb, not a definition
LIMITS = documents.Limits(
    max_bytes=MAX_DEFINITION_BYTES, max_depth=MAX_NESTING, max_aliases=500, max_nodes=200_000
)

Domain = Literal[
    "condition",
    "drug",
    "measurement",
    "procedure",
    "visit",
    "visit_detail",
    "observation",
    "death",
    "device",
    "specimen",
    "condition_era",
    "drug_era",
]
VALUE_DOMAINS = ("measurement", "observation")
# domains whose records carry no visit_occurrence_id (same_visit cannot apply)
VISITLESS_DOMAINS = ("death", "specimen", "condition_era", "drug_era")
ERA_DOMAINS = ("condition_era", "drug_era")  # derived tables: no type concept
Days = Annotated[int, Field(ge=-MAX_DAYS, le=MAX_DAYS)]
NonNegDays = Annotated[int, Field(ge=0, le=MAX_DAYS)]
ConceptId = Annotated[int, Field(ge=0, le=2_147_483_647)]
SEX_CONCEPTS = {"male": 8507, "female": 8532}


def _iso_date(value: Any) -> Any:
    """A date, or its ISO text YYYY-MM-DD (JSON has no dates); numbers and times are not."""
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        try:
            return dt.date.fromisoformat(value)
        except ValueError as error:
            raise ValueError(f"{value!r} is not a date ({error})") from None
    if isinstance(value, dt.datetime):
        raise ValueError("give a date (YYYY-MM-DD), not a date and time")
    return value  # a date passes; anything else fails the strict date check


IsoDate = Annotated[dt.date, BeforeValidator(_iso_date)]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


# --- concept sets -----------------------------------------------------------------------


class SourceCodes(Model):
    """Local source codes (e.g. KCD-7) mapped to standard concepts by source_to_concept_map."""

    vocabulary: Annotated[str, Field(min_length=1, max_length=20)]
    codes: Annotated[list[Annotated[str, Field(min_length=1, max_length=50)]], Field(min_length=1)]
    prefix: bool = False  # E11 also matches E11.9


class ConceptItem(Model):
    concept_id: ConceptId | None = None
    source_codes: SourceCodes | None = None
    include_descendants: bool = False
    exclude: bool = False

    @model_validator(mode="after")
    def _one_kind(self) -> ConceptItem:
        if (self.concept_id is None) == (self.source_codes is None):
            raise ValueError("give exactly one of concept_id or source_codes")
        return self


class ConceptSet(Model):
    id: Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_]{0,63}$")]
    name: Annotated[str, Field(max_length=200)] = ""
    items: Annotated[list[ConceptItem], Field(max_length=10_000)]

    @model_validator(mode="after")
    def _includes_something(self) -> ConceptSet:
        if not any(not item.exclude for item in self.items):
            raise ValueError("the concept set is empty: it includes no concept")
        return self


# --- events -----------------------------------------------------------------------------


class ValueRange(Model):
    min: float | None = None
    max: float | None = None

    model_config = ConfigDict(extra="forbid", frozen=True, strict=False, allow_inf_nan=False)

    @model_validator(mode="after")
    def _ordered(self) -> ValueRange:
        if self.min is None and self.max is None:
            raise ValueError("give min, max or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is above max {self.max}")
        return self


class DateRange(Model):
    """Records that start on or after ``min`` and on or before ``max`` (Circe's
    occurrenceStartDate); either bound may be left out."""

    min: IsoDate | None = None
    max: IsoDate | None = None

    @model_validator(mode="after")
    def _ordered(self) -> DateRange:
        if self.min is None and self.max is None:
            raise ValueError("give min, max or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is after max {self.max}")
        return self


class DateAdjustment(Model):
    """Circe's DateAdjustment: the event's dates moved before anything else reads them.
    The new start is ``start_with`` (the event's start or end) plus ``start_offset`` days,
    the new end likewise; an event whose new end falls before its new start is dropped."""

    start_with: Literal["start", "end"] = "start"
    start_offset: Days = 0
    end_with: Literal["start", "end"] = "end"
    end_offset: Days = 0


class Events(Model):
    """Records of one domain whose concept is in a concept set (death: any, if none given)."""

    domain: Domain
    concept_set: str | None = None
    first_occurrence: bool = False  # only each person's first such event, ever
    value: ValueRange | None = None  # value_as_number (measurement, observation)
    unit_concept_ids: list[ConceptId] | None = None
    # the record's type concept (condition_type_concept_id, …: Circe's conditionType, …)
    type_concept_ids: Annotated[list[ConceptId], Field(min_length=1)] | None = None
    # the concept of the record's visit (Circe's visitType): inpatient, emergency, …
    visit_concept_ids: Annotated[list[ConceptId], Field(min_length=1)] | None = None
    start_date: DateRange | None = None  # the record's own start date, before any adjustment
    date_adjustment: DateAdjustment | None = None

    @model_validator(mode="after")
    def _domain_fields(self) -> Events:
        if self.concept_set is None and self.domain != "death":
            raise ValueError(f"a {self.domain} criterion needs a concept_set")
        if (self.value is not None or self.unit_concept_ids) and self.domain not in VALUE_DOMAINS:
            raise ValueError(
                f"value and unit_concept_ids apply to {VALUE_DOMAINS}, not {self.domain}"
            )
        if self.visit_concept_ids and self.domain in VISITLESS_DOMAINS:
            raise ValueError(f"visit_concept_ids: {self.domain} records carry no visit")
        if self.type_concept_ids and self.domain in ERA_DOMAINS:
            raise ValueError(f"type_concept_ids: {self.domain} records have no type concept")
        return self


class Observation(Model):
    prior_days: NonNegDays = 0
    post_days: NonNegDays = 0


class Entry(Model):
    criteria: Annotated[list[Events], Field(min_length=1, max_length=100)]
    observation: Observation = Observation()
    limit: Literal["first", "all"] = "all"


# --- inclusion rules ---------------------------------------------------------------------


class Window(Model):
    """Days relative to the index event's start (or end); None is unbounded."""

    start: Days | None = None
    end: Days | None = None
    anchor: Literal["start", "end"] = "start"
    within_observation: bool = True  # Circe's default: only events in the index's period

    @model_validator(mode="after")
    def _ordered(self) -> Window:
        if self.start is not None and self.end is not None and self.end < self.start:
            raise ValueError(f"the window ends (day {self.end}) before it starts ({self.start})")
        return self


class Count(Model):
    at_least: Annotated[int, Field(ge=0, le=1_000_000)] | None = None
    at_most: Annotated[int, Field(ge=0, le=1_000_000)] | None = None
    exactly: Annotated[int, Field(ge=0, le=1_000_000)] | None = None
    # count distinct start dates, visits or concepts instead of records (Circe's isDistinct
    # and countColumn); only for events, not for a group's criteria
    distinct: Literal["start_date", "visit", "concept"] | None = None

    @model_validator(mode="after")
    def _one(self) -> Count:
        given = [v for v in (self.at_least, self.at_most, self.exactly) if v is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of at_least, at_most, exactly")
        return self


class Occurrences(Model):
    events: Events
    window: Window = Window()
    count: Count = Count(at_least=1)
    same_visit: bool = False  # only events of the index event's visit (Circe's RestrictVisit)

    @model_validator(mode="after")
    def _visit_domain(self) -> Occurrences:
        if self.same_visit and self.events.domain in VISITLESS_DOMAINS:
            raise ValueError(
                f"same_visit needs events that carry a visit; {self.events.domain} records do not"
            )
        return self


class Age(Model):
    """Age at the index date: calendar year of the index minus year of birth (as Circe)."""

    age: Annotated[dict[Literal["min", "max"], Annotated[int, Field(ge=0, le=150)]], Field()]

    @model_validator(mode="after")
    def _ordered(self) -> Age:
        low, high = self.age.get("min"), self.age.get("max")
        if low is None and high is None:
            raise ValueError("give min, max or both")
        if low is not None and high is not None and low > high:
            raise ValueError(f"age min {low} is above max {high}")
        return self


class Sex(Model):
    sex: Annotated[list[Literal["male", "female"] | ConceptId], Field(min_length=1)]

    def concept_ids(self) -> tuple[int, ...]:
        return tuple(sorted({SEX_CONCEPTS[s] if isinstance(s, str) else s for s in self.sex}))


class Race(Model):
    """person.race_concept_id is one of these (Circe's demographic race criterion)."""

    race: Annotated[list[ConceptId], Field(min_length=1, max_length=1000)]

    def concept_ids(self) -> tuple[int, ...]:
        return tuple(sorted(set(self.race)))


class Ethnicity(Model):
    """person.ethnicity_concept_id is one of these (Circe's demographic ethnicity)."""

    ethnicity: Annotated[list[ConceptId], Field(min_length=1, max_length=1000)]

    def concept_ids(self) -> tuple[int, ...]:
        return tuple(sorted(set(self.ethnicity)))


PERSON_CRITERIA = ("age", "sex", "race", "ethnicity")
CRITERION_KINDS = ("events", *PERSON_CRITERIA, "group")


def _criterion_kind(value: Any) -> str:
    if isinstance(value, dict):
        for key in CRITERION_KINDS:
            if key in value:
                return key
    if isinstance(value, Age):
        return "age"
    if isinstance(value, Sex):
        return "sex"
    if isinstance(value, Race):
        return "race"
    if isinstance(value, Ethnicity):
        return "ethnicity"
    if isinstance(value, Group):
        return "group"
    return "events"  # the most common kind gives the most useful errors


# how many of a group's criteria must hold: all, any, or a count (Circe's AT_LEAST/AT_MOST)
Match = Literal["all", "any"] | Count


def _reachable(match: Match, criteria: list[Any]) -> None:
    """A count of criteria a group cannot reach is a mistake, not an empty cohort."""
    if isinstance(match, Count):
        wanted = match.at_least if match.at_least is not None else match.exactly
        if wanted is not None and wanted > len(criteria):
            raise ValueError(
                f"match asks for {wanted} criteria to hold; the group has {len(criteria)}"
            )


def _plain_match(match: Match) -> Match:
    if isinstance(match, Count) and match.distinct is not None:
        raise ValueError("distinct counts events; a match counts criteria that hold")
    return match


class GroupBody(Model):
    match: Match = "all"
    criteria: Annotated[list[Criterion], Field(min_length=1, max_length=100)]

    _match = field_validator("match")(_plain_match)

    @model_validator(mode="after")
    def _count(self) -> GroupBody:
        _reachable(self.match, self.criteria)
        return self


class Group(Model):
    """A nested group of criteria (Circe's CriteriaGroup): ``{group: {match, criteria}}``."""

    group: GroupBody


Criterion = Annotated[
    Union[  # noqa: UP007 (a forward reference to Group: the | operator cannot take strings)
        Annotated[Occurrences, Tag("events")],
        Annotated[Age, Tag("age")],
        Annotated[Sex, Tag("sex")],
        Annotated[Race, Tag("race")],
        Annotated[Ethnicity, Tag("ethnicity")],
        Annotated["Group", Tag("group")],
    ],
    Discriminator(_criterion_kind),
]
Leaf = Occurrences | Age | Sex | Race | Ethnicity
PersonCriterion = Age | Sex | Race | Ethnicity
GroupBody.model_rebuild()
Group.model_rebuild()


class InclusionRule(Model):
    name: Annotated[str, Field(min_length=1, max_length=200)]
    match: Match = "all"
    criteria: Annotated[list[Criterion], Field(min_length=1, max_length=100)]

    _match = field_validator("match")(_plain_match)

    @model_validator(mode="after")
    def _count(self) -> InclusionRule:
        _reachable(self.match, self.criteria)
        return self


def leaves(criteria: list[Criterion], path: str) -> Iterator[tuple[str, Leaf]]:
    """Every criterion that is not a group, through nested groups, with its path."""
    for i, criterion in enumerate(criteria):
        if isinstance(criterion, Group):
            yield from leaves(criterion.group.criteria, f"{path}[{i}].group.criteria")
        else:
            yield f"{path}[{i}]", criterion


def rule_leaves(definition: Definition) -> Iterator[tuple[str, Leaf]]:
    for r, rule in enumerate(definition.inclusion_rules):
        yield from leaves(rule.criteria, f"inclusion_rules[{r}].criteria")


# --- exit, censoring, eras -----------------------------------------------------------------


class EndOfObservation(Model):
    type: Literal["end_of_observation"]


class FixedOffset(Model):
    type: Literal["fixed_offset"]
    anchor: Literal["start", "end"] = "start"
    days: NonNegDays


class ContinuousExposure(Model):
    """End of the era of a concept set's events that contains the index start: drug
    exposures (``continuous_exposure``) or events of any domain (``era_end``)."""

    type: Literal["continuous_exposure", "era_end"]
    concept_set: str
    domain: Domain = "drug"
    gap_days: NonNegDays = 0
    offset_days: NonNegDays = 0


Exit = Annotated[EndOfObservation | FixedOffset | ContinuousExposure, Field(discriminator="type")]


class Definition(Model):
    format_version: Literal[1]
    id: Annotated[int, Field(ge=1, le=2_147_483_647)]  # cohort_definition_id
    name: Annotated[str, Field(min_length=1, max_length=255)]
    description: Annotated[str, Field(max_length=10_000)] = ""
    concept_sets: Annotated[list[ConceptSet], Field(max_length=500)] = []
    entry: Entry
    inclusion_rules: Annotated[list[InclusionRule], Field(max_length=100)] = []
    limit: Literal["first", "all"] = "all"  # after the inclusion rules
    exit: Exit = EndOfObservation(type="end_of_observation")
    censoring: Annotated[list[Events], Field(max_length=100)] = []
    era_pad_days: NonNegDays = 0

    def concept_set(self, name: str) -> ConceptSet:
        return next(c for c in self.concept_sets if c.id == name)


# --- loading and error reporting -----------------------------------------------------------


_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _path(loc: tuple[int | str, ...]) -> str:
    """pydantic's location as the user's path: ``inclusion_rules[0].criteria[1].window``."""
    out = ""
    for i, part in enumerate(loc):
        if isinstance(part, int):
            out += f"[{part}]"
        elif i >= 2 and loc[i - 2] == "criteria" and part in CRITERION_KINDS and loc[0] != "entry":
            continue  # the discriminator's tag (events, age, sex, group) is not in the file
        elif _IDENTIFIER.fullmatch(part):
            out += f".{part}" if out else part
        # other parts name union members (literal['male','female'], constrained-int)
    return out or "(top level)"


def _problems(exc: ValidationError) -> list[str]:
    problems = []
    for err in exc.errors():
        msg = err["msg"].removeprefix("Value error, ")
        problems.append(f"{_path(tuple(err['loc']))}: {msg}")
    return problems


def _references(definition: Definition) -> list[str]:
    """Concept-set names must be defined once and exist where used."""
    problems = []
    names = [c.id for c in definition.concept_sets]
    for i, name in enumerate(names):
        if name in names[:i]:
            problems.append(f"concept_sets[{i}].id: concept set {name!r} is defined twice")
    known = set(names)

    def check(path: str, name: str | None) -> None:
        if name is not None and name not in known:
            problems.append(f"{path}: unknown concept set {name!r} (defined: {sorted(known)})")

    for i, events in enumerate(definition.entry.criteria):
        check(f"entry.criteria[{i}].concept_set", events.concept_set)
    for path, criterion in rule_leaves(definition):
        if isinstance(criterion, Occurrences):
            check(f"{path}.events.concept_set", criterion.events.concept_set)
    for i, events in enumerate(definition.censoring):
        check(f"censoring[{i}].concept_set", events.concept_set)
    if isinstance(definition.exit, ContinuousExposure):
        check("exit.concept_set", definition.exit.concept_set)
    return problems


def parse(data: object, *, source: str = "definition") -> Definition:
    """Validate a parsed JSON/YAML document; every problem names its path."""
    if not isinstance(data, dict):
        raise CohortDefinitionError(
            f"{source}: a cohort definition is a mapping, not {type(data).__name__}"
        )
    if _depth(data) > MAX_NESTING:
        raise CohortDefinitionError(
            f"{source}: nested more than {MAX_NESTING} levels deep; not a cohort definition"
        )
    version = data.get("format_version")
    if isinstance(version, int) and not isinstance(version, bool) and version > FORMAT_VERSION:
        raise DefinitionVersionError(
            f"{source}: format_version {version} is newer than this pmhub reads "
            f"(up to {FORMAT_VERSION})"
        )
    try:
        definition = Definition.model_validate(data)
    except ValidationError as exc:
        problems = _problems(exc)
        raise CohortDefinitionError(_summary(source, problems), problems) from None
    problems = _references(definition)
    if problems:
        raise CohortDefinitionError(_summary(source, problems), problems)
    return definition


def _depth(data: object) -> int:
    """How deeply mappings and lists nest (iteratively: hostile input cannot overflow)."""
    deepest, stack = 0, [(data, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, level)
            if level > MAX_NESTING:
                break
            values = item.values() if isinstance(item, dict) else item
            stack.extend((v, level + 1) for v in values)
    return deepest


def _summary(source: str, problems: list[str]) -> str:
    shown = "\n  ".join(problems[:20])
    more = f"\n  … and {len(problems) - 20} more" if len(problems) > 20 else ""
    return f"{source} is not a valid cohort definition:\n  {shown}{more}"


def loads(text: str | bytes, *, source: str = "definition") -> Definition:
    """Parse JSON or YAML text within :data:`LIMITS` (YAML's safe loader runs no code)."""
    return parse(
        documents.parse(text, source=source, error=CohortDefinitionError, limits=LIMITS),
        source=source,
    )


def load(path: Path) -> Definition:
    """A definition file; one larger than the limit is refused without being read."""
    try:
        raw = documents.read_bytes(
            path, error=CohortDefinitionError, limits=LIMITS, what="cohort definition"
        )
    except CohortDefinitionError as exc:
        raise CohortDefinitionError(
            exc.message, hint="Check the path; the examples are in pmhub/cohorts/library/."
        ) from None
    return loads(raw, source=str(path))


def dumps(definition: Definition) -> str:
    return json.dumps(definition.model_dump(mode="json", exclude_defaults=False), indent=2)


def canonical(definition: Definition) -> str:
    """The definition's canonical text: every field (defaults included), keys sorted, no
    spaces. Two files that mean the same definition (JSON or YAML, keys in any order,
    defaults written out or left out) have the same canonical text."""
    return json.dumps(
        definition.model_dump(mode="json"),
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )


def digest(definition: Definition) -> str:
    """SHA-256 of the canonical text, in hex: what the cohort_definition table records."""
    return hashlib.sha256(canonical(definition).encode("utf-8")).hexdigest()
