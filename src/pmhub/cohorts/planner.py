"""Plan a cohort definition into the query model.

The steps follow OHDSI Circe's cohort generation:

1. events of each entry criterion (``first_occurrence``: each person's first ever);
2. kept when inside an observation period with the required days before and after;
3. entry limit (first per person, or all);
4. inclusion rules: every rule must hold at the index event;
5. limit after the rules;
6. exit: end of observation, a fixed offset, or the end of an era (continuous drug
   exposure with an allowed gap) — never past the end of the observation period;
7. censoring: the first censoring event on or after the start ends the period;
8. overlapping periods (or ones within ``era_pad_days``) collapse into one.

Inclusion rules nest (Circe's criteria groups): a rule or group holds when all, any, at
least n or at most n of its criteria hold. A criterion with ``same_visit`` counts only
events whose visit_occurrence_id is the index event's (an index event without a visit,
such as a death, matches none). :func:`attrition` counts the index events and persons
left after each rule, in order.

Event dates: an event starts at its domain's start date and ends at its end date, or
(drugs) start + days_supply, or else its start date; an end before the start is read as
the start. Age is the index year minus the year of birth.
"""

from __future__ import annotations

from dataclasses import dataclass

from pmhub.cohorts import query_model as q
from pmhub.cohorts.concepts import ResolvedSets
from pmhub.cohorts.definition import (
    Age,
    ContinuousExposure,
    Count,
    Criterion,
    DateAdjustment,
    Definition,
    Ethnicity,
    Events,
    FixedOffset,
    Group,
    Match,
    Occurrences,
    PersonCriterion,
    Race,
    Sex,
    Window,
    rule_leaves,
)
from pmhub.cohorts.query_model import Col, Lit, col, eq, keep, lit_int, rename


@dataclass(frozen=True)
class DomainTable:
    table: str
    concept: str
    start: str
    end: str | None = None
    value: str | None = None
    unit: str | None = None
    days_supply: str | None = None
    visit: str | None = "visit_occurrence_id"
    type: str | None = None  # the record's type concept (provenance: EHR, claim, …)


DOMAINS = {
    "condition": DomainTable(
        "condition_occurrence",
        "condition_concept_id",
        "condition_start_date",
        "condition_end_date",
        type="condition_type_concept_id",
    ),
    "drug": DomainTable(
        "drug_exposure",
        "drug_concept_id",
        "drug_exposure_start_date",
        "drug_exposure_end_date",
        days_supply="days_supply",
        type="drug_type_concept_id",
    ),
    "measurement": DomainTable(
        "measurement",
        "measurement_concept_id",
        "measurement_date",
        value="value_as_number",
        unit="unit_concept_id",
        type="measurement_type_concept_id",
    ),
    "procedure": DomainTable(
        "procedure_occurrence",
        "procedure_concept_id",
        "procedure_date",
        "procedure_end_date",
        type="procedure_type_concept_id",
    ),
    "visit": DomainTable(
        "visit_occurrence",
        "visit_concept_id",
        "visit_start_date",
        "visit_end_date",
        type="visit_type_concept_id",
    ),
    "observation": DomainTable(
        "observation",
        "observation_concept_id",
        "observation_date",
        value="value_as_number",
        unit="unit_concept_id",
        type="observation_type_concept_id",
    ),
    "visit_detail": DomainTable(
        "visit_detail",
        "visit_detail_concept_id",
        "visit_detail_start_date",
        "visit_detail_end_date",
        type="visit_detail_type_concept_id",
    ),
    "death": DomainTable(
        "death", "cause_concept_id", "death_date", visit=None, type="death_type_concept_id"
    ),
    "specimen": DomainTable(
        "specimen",
        "specimen_concept_id",
        "specimen_date",
        visit=None,
        type="specimen_type_concept_id",
    ),
    "condition_era": DomainTable(
        "condition_era",
        "condition_concept_id",
        "condition_era_start_date",
        "condition_era_end_date",
        visit=None,
    ),
    "drug_era": DomainTable(
        "drug_era", "drug_concept_id", "drug_era_start_date", "drug_era_end_date", visit=None
    ),
    "device": DomainTable(
        "device_exposure",
        "device_concept_id",
        "device_exposure_start_date",
        "device_exposure_end_date",
        type="device_type_concept_id",
    ),
}
EVENT_COLUMNS = q.ERA_COLUMNS  # person_id, start_date, end_date
INDEX_COLUMNS = (*EVENT_COLUMNS, "visit_id", "op_start", "op_end")
# each person's first event: ties on the dates are broken by the visit (NULLs last)
FIRST_ORDER = ("start_date", "end_date", "visit_id")
OBSERVATION_PERIOD = q.Table(
    "observation_period",
    ("person_id", "observation_period_start_date", "observation_period_end_date"),
)
PERSON = q.Table(
    "person",
    ("person_id", "year_of_birth", "gender_concept_id", "race_concept_id", "ethnicity_concept_id"),
)


def _table(domain: DomainTable) -> q.Table:
    names = [domain.concept, domain.start, domain.end, domain.value, domain.unit]
    names += [domain.days_supply, domain.visit, domain.type]
    return q.Table(domain.table, ("person_id", *(n for n in names if n is not None)))


def _end_date(domain: DomainTable) -> q.Expr:
    start = col(domain.start)
    options: list[q.Expr] = []
    if domain.end is not None:
        options.append(col(domain.end))
    if domain.days_supply is not None:
        options.append(q.AddDays(start, col(domain.days_supply)))
    options.append(start)
    end = options[0] if len(options) == 1 else q.Coalesce(tuple(options))
    return end if end == start else q.Greatest((end, start))


def _filters(events: Events, domain: DomainTable, concepts: ResolvedSets) -> list[q.Expr]:
    preds: list[q.Expr] = []
    if events.concept_set is not None:
        preds.append(q.InValues(col(domain.concept), concepts[events.concept_set]))
    if events.value is not None and domain.value is not None:
        value = col(domain.value)
        if events.value.min is not None:
            preds.append(q.Cmp(">=", value, Lit(float(events.value.min), "float")))
        if events.value.max is not None:
            preds.append(q.Cmp("<=", value, Lit(float(events.value.max), "float")))
    if events.unit_concept_ids and domain.unit is not None:
        preds.append(q.InValues(col(domain.unit), tuple(sorted(set(events.unit_concept_ids)))))
    if events.start_date is not None:
        low, high = events.start_date.min, events.start_date.max
        if low is not None:
            preds.append(q.Cmp(">=", col(domain.start), Lit(low, "date")))
        if high is not None:
            preds.append(q.Cmp("<=", col(domain.start), Lit(high, "date")))
    if events.type_concept_ids and domain.type is not None:
        preds.append(q.InValues(col(domain.type), tuple(sorted(set(events.type_concept_ids)))))
    if events.visit_concept_ids:
        preds.append(q.InValues(col("v_concept"), tuple(sorted(set(events.visit_concept_ids)))))
    return preds


VISIT_OCCURRENCE = q.Table("visit_occurrence", ("visit_occurrence_id", "visit_concept_id"))


def _with_visit_concept(source: q.Relation, domain: DomainTable) -> q.Relation:
    """The record's visit's concept as ``v_concept`` (Circe's visitType criterion)."""
    assert domain.visit is not None
    if domain.table == "visit_occurrence":
        return q.Select(
            source, (*((c, col(c)) for c in source.columns), ("v_concept", col(domain.concept)))
        )
    visits = q.Select(
        VISIT_OCCURRENCE,
        (("v_id", col("visit_occurrence_id")), ("v_concept", col("visit_concept_id"))),
    )
    return q.Join(source, visits, eq(col(domain.visit), col("v_id")))


def first_per_person(source: q.Relation, order: tuple[str, ...]) -> q.Relation:
    numbered = q.RowNumber(source, ("person_id",), order, "rn")
    return keep(q.Where(numbered, eq(col("rn"), lit_int(1))), *source.columns)


def events(spec: Events, concepts: ResolvedSets) -> q.Relation:
    """person_id, start_date, end_date, visit_id, concept_id of the criterion's records."""
    domain = DOMAINS[spec.domain]
    source: q.Relation = _table(domain)
    if spec.visit_concept_ids:
        source = _with_visit_concept(source, domain)
    preds = _filters(spec, domain, concepts)
    if preds:
        source = q.Where(source, q.And(tuple(preds)))
    selected: q.Relation = q.Select(
        source,
        (
            ("person_id", col("person_id")),
            ("start_date", col(domain.start)),
            ("end_date", _end_date(domain)),
            ("visit_id", col(domain.visit) if domain.visit else lit_int(None)),
            ("concept_id", col(domain.concept)),
        ),
    )
    if spec.first_occurrence:  # the first by its recorded dates, as Circe
        selected = first_per_person(selected, FIRST_ORDER)
    if spec.date_adjustment is not None:
        selected = _adjusted(selected, spec.date_adjustment)
    return selected


def _adjusted(source: q.Relation, adjustment: DateAdjustment) -> q.Relation:
    """Dates moved as Circe's DateAdjustment; events whose end falls before the start go."""

    def moved(anchor: str, days: int) -> q.Expr:
        return q.AddDays(col(f"{anchor}_date"), lit_int(days))

    shifted = q.Select(
        source,
        (
            ("person_id", col("person_id")),
            ("start_date", moved(adjustment.start_with, adjustment.start_offset)),
            ("end_date", moved(adjustment.end_with, adjustment.end_offset)),
            ("visit_id", col("visit_id")),
            ("concept_id", col("concept_id")),
        ),
    )
    return q.Where(shifted, q.Cmp("<=", col("start_date"), col("end_date")))


def _union(relations: list[q.Relation]) -> q.Relation:
    return relations[0] if len(relations) == 1 else q.UnionAll(tuple(relations))


def entry_events(definition: Definition, concepts: ResolvedSets) -> q.Relation:
    """Index events: entry criteria inside an observation period, with its dates."""
    entry = definition.entry
    found = _union([events(c, concepts) for c in entry.criteria])
    periods = q.Select(
        OBSERVATION_PERIOD,
        (
            ("op_person", col("person_id")),
            ("op_start", col("observation_period_start_date")),
            ("op_end", col("observation_period_end_date")),
        ),
    )
    prior, post = entry.observation.prior_days, entry.observation.post_days
    on = q.And(
        (
            eq(col("person_id"), col("op_person")),
            q.Cmp("<=", q.AddDays(col("op_start"), lit_int(prior)), col("start_date")),
            q.Cmp("<=", q.AddDays(col("start_date"), lit_int(post)), col("op_end")),
        )
    )
    index: q.Relation = keep(q.Join(found, periods, on), *INDEX_COLUMNS)
    if entry.limit == "first":
        index = first_per_person(index, FIRST_ORDER)
    return q.Distinct(index)


# --- inclusion rules -------------------------------------------------------------------


def _window(criterion: Occurrences) -> q.Expr:
    window: Window = criterion.window
    anchor = col("start_date" if window.anchor == "start" else "end_date")
    event = col("e_start")
    preds: list[q.Expr] = []
    if window.start is not None:
        preds.append(q.Cmp(">=", event, q.AddDays(anchor, lit_int(window.start))))
    if window.end is not None:
        preds.append(q.Cmp("<=", event, q.AddDays(anchor, lit_int(window.end))))
    if window.within_observation:
        preds.append(q.Cmp(">=", event, col("op_start")))
        preds.append(q.Cmp("<=", event, col("op_end")))
    if criterion.same_visit:
        preds.append(eq(col("e_visit"), col("visit_id")))
    return q.And(tuple(preds)) if preds else Lit(True, "bool")


def _count_test(count: Count, n: q.Expr) -> q.Expr:
    if count.at_least is not None:
        return q.Cmp(">=", n, lit_int(count.at_least))
    if count.at_most is not None:
        return q.Cmp("<=", n, lit_int(count.at_most))
    return eq(n, lit_int(count.exactly))


def _age_test(age: Age) -> q.Expr:
    years = q.Sub(q.Year(col("start_date")), col("year_of_birth"))
    preds: list[q.Expr] = []
    if "min" in age.age:
        preds.append(q.Cmp(">=", years, lit_int(age.age["min"])))
    if "max" in age.age:
        preds.append(q.Cmp("<=", years, lit_int(age.age["max"])))
    return q.And(tuple(preds))


def _occurrences(definition: Definition) -> list[Occurrences]:
    return [c for _, c in rule_leaves(definition) if isinstance(c, Occurrences)]


def _with_person(index: q.Relation) -> q.Relation:
    person = q.Select(
        PERSON,
        (
            ("p_person", col("person_id")),
            ("year_of_birth", col("year_of_birth")),
            ("gender", col("gender_concept_id")),
            ("race", col("race_concept_id")),
            ("ethnicity", col("ethnicity_concept_id")),
        ),
    )
    joined = q.Join(index, person, eq(col("person_id"), col("p_person")))
    return keep(joined, *index.columns, "year_of_birth", "gender", "race", "ethnicity")


def _counted(index: q.Relation, found: list[Occurrences], concepts: ResolvedSets) -> q.Relation:
    """Index rows with n0, n1, … : how many events of each criterion fall in its window."""
    tagged = [
        q.Select(
            events(c.events, concepts),
            (
                ("e_person", col("person_id")),
                ("e_start", col("start_date")),
                ("e_visit", col("visit_id")),
                ("e_concept", col("concept_id")),
                ("crit", lit_int(i)),
            ),
        )
        for i, c in enumerate(found)
    ]
    windows = q.Or(
        tuple(q.And((eq(col("crit"), lit_int(i)), _window(c))) for i, c in enumerate(found))
    )
    on = q.And((eq(col("person_id"), col("e_person")), windows))
    joined = q.Join(index, _union(list(tagged)), on, how="left")
    counts = tuple((f"n{i}", _count_of(i, c.count)) for i, c in enumerate(found))
    return q.Aggregate(joined, index.columns, counts)


def _count_of(number: int, count: Count) -> q.Agg:
    """How many of the criterion's events matched: records, or distinct days, visits or
    concepts."""
    mine = eq(col("crit"), lit_int(number))
    if count.distinct == "start_date":
        return q.Agg("count_distinct", q.Case(mine, col("e_start"), Lit(None, "date")))
    if count.distinct == "visit":
        return q.Agg("count_distinct", q.Case(mine, col("e_visit"), lit_int(None)))
    if count.distinct == "concept":
        return q.Agg("count_distinct", q.Case(mine, col("e_concept"), lit_int(None)))
    return q.Agg("sum", q.Case(mine, lit_int(1), lit_int(0)))


def _criterion_test(criterion: Criterion, found: list[Occurrences]) -> q.Expr:
    if isinstance(criterion, Group):
        return _group_test(criterion.group.match, criterion.group.criteria, found)
    if isinstance(criterion, Occurrences):
        number = next(i for i, c in enumerate(found) if c is criterion)
        return _count_test(criterion.count, col(f"n{number}"))
    if isinstance(criterion, Age):
        return _age_test(criterion)
    if isinstance(criterion, Race):
        return q.InValues(col("race"), criterion.concept_ids())
    if isinstance(criterion, Ethnicity):
        return q.InValues(col("ethnicity"), criterion.concept_ids())
    assert isinstance(criterion, Sex)
    return q.InValues(col("gender"), criterion.concept_ids())


def _group_test(match: Match, criteria: list[Criterion], found: list[Occurrences]) -> q.Expr:
    """All, any, or a count of the criteria hold (no test here is ever NULL)."""
    tests = [_criterion_test(c, found) for c in criteria]
    if match == "all":
        return q.And(tuple(tests))
    if match == "any":
        return q.Or(tuple(tests))
    held: q.Expr = q.Case(tests[0], lit_int(1), lit_int(0))
    for test in tests[1:]:
        held = q.Add(held, q.Case(test, lit_int(1), lit_int(0)))
    return _count_test(match, held)


def _tested(
    definition: Definition, index: q.Relation, concepts: ResolvedSets
) -> tuple[q.Relation, list[q.Expr]]:
    """The index rows with what the rules read, and each rule's test."""
    source = index
    if any(isinstance(c, PersonCriterion) for _, c in rule_leaves(definition)):
        source = _with_person(source)
    found = _occurrences(definition)
    if found:
        source = _counted(source, found, concepts)
    tests = [_group_test(r.match, r.criteria, found) for r in definition.inclusion_rules]
    return source, tests


def qualified(definition: Definition, index: q.Relation, concepts: ResolvedSets) -> q.Relation:
    if not definition.inclusion_rules:
        return index
    source, tests = _tested(definition, index, concepts)
    return keep(q.Where(source, q.And(tuple(tests))), *INDEX_COLUMNS)


def attrition(definition: Definition, concepts: ResolvedSets) -> q.Relation:
    """One row: ``events_k`` and ``persons_k`` left after the entry (k = 0) and after
    rules 1..k in order (as Circe's inclusion-rule report), and ``alone_k``: persons with
    an entry event that meets rule k by itself (ATLAS's per-rule count; alone_0 counts
    every person). NULL sums mean none."""
    index = entry_events(definition, concepts)
    source, tests = _tested(definition, index, concepts)
    one, zero = lit_int(1), lit_int(0)
    passed = [q.Case(q.And(tuple(tests[:k])), one, zero) for k in range(1, len(tests) + 1)]
    alone = [q.Case(test, one, zero) for test in tests]
    flags = q.Select(
        source,
        (
            ("person_id", col("person_id")),
            ("pass0", one),
            ("only0", one),
            *((f"pass{k + 1}", p) for k, p in enumerate(passed)),
            *((f"only{k + 1}", a) for k, a in enumerate(alone)),
        ),
    )
    steps = range(len(tests) + 1)
    # per person: events passing (sum) and whether any passes (max); then their sums
    per_person = q.Aggregate(
        flags,
        ("person_id",),
        _per_step(steps, (("e", "sum", "pass"), ("p", "max", "pass"), ("o", "max", "only"))),
    )
    totals = _per_step(
        steps, (("events_", "sum", "e"), ("persons_", "sum", "p"), ("alone_", "sum", "o"))
    )
    return q.Aggregate(per_person, (), totals)


def _per_step(
    steps: range, spec: tuple[tuple[str, q.AggKind, str], ...]
) -> tuple[tuple[str, q.Agg], ...]:
    """``{name}{k} = kind({source}{k})`` for each step k and each (name, kind, source)."""
    return tuple(
        (f"{name}{k}", q.Agg(kind, col(f"{source}{k}")))
        for k in steps
        for name, kind, source in spec
    )


# --- exit, censoring, eras ---------------------------------------------------------------


def _exit_date(definition: Definition, index: q.Relation, concepts: ResolvedSets) -> q.Relation:
    """person_id, start_date, end_date with the exit strategy's end."""
    exit_ = definition.exit
    if isinstance(exit_, FixedOffset):
        anchor = col("start_date" if exit_.anchor == "start" else "end_date")
        end: q.Expr = q.Least((q.AddDays(anchor, lit_int(exit_.days)), col("op_end")))
        return q.Select(
            index,
            (("person_id", col("person_id")), ("start_date", col("start_date")), ("end_date", end)),
        )
    if isinstance(exit_, ContinuousExposure):
        return _era_exit(exit_, index, concepts)
    return q.Select(
        index,
        (
            ("person_id", col("person_id")),
            ("start_date", col("start_date")),
            ("end_date", col("op_end")),
        ),
    )


def _era_exit(exit_: ContinuousExposure, index: q.Relation, concepts: ResolvedSets) -> q.Relation:
    spec = Events(domain=exit_.domain, concept_set=exit_.concept_set)
    eras = rename(
        q.Eras(events(spec, concepts), exit_.gap_days),
        {"person_id": "x_person", "start_date": "x_start", "end_date": "x_end"},
    )
    on = q.And(
        (
            eq(col("person_id"), col("x_person")),
            q.Cmp("<=", col("x_start"), col("start_date")),
            q.Cmp("<=", col("start_date"), col("x_end")),
        )
    )
    joined = q.Join(index, eras, on, how="left")
    era_end = q.Coalesce((q.AddDays(col("x_end"), lit_int(exit_.offset_days)), col("start_date")))
    end = q.Least((era_end, col("op_end")))
    return q.Select(
        joined,
        (("person_id", col("person_id")), ("start_date", col("start_date")), ("end_date", end)),
    )


def _censored(definition: Definition, periods: q.Relation, concepts: ResolvedSets) -> q.Relation:
    if not definition.censoring:
        return periods
    found = _union([events(c, concepts) for c in definition.censoring])
    censors = q.Select(found, (("c_person", col("person_id")), ("c_start", col("start_date"))))
    on = q.And(
        (eq(col("person_id"), col("c_person")), q.Cmp(">=", col("c_start"), col("start_date")))
    )
    first = q.Aggregate(
        q.Join(periods, censors, on, how="left"),
        EVENT_COLUMNS,
        (("censor", q.Agg("min", col("c_start"))),),
    )
    end = q.Least((col("end_date"), col("censor")))
    return q.Select(
        first,
        (("person_id", col("person_id")), ("start_date", col("start_date")), ("end_date", end)),
    )


def plan(definition: Definition, concepts: ResolvedSets) -> q.Relation:
    """The cohort's rows: cohort_definition_id, subject_id, cohort_start_date, cohort_end_date."""
    index = qualified(definition, entry_events(definition, concepts), concepts)
    if definition.limit == "first":
        index = first_per_person(index, FIRST_ORDER)
    periods = _censored(definition, _exit_date(definition, index, concepts), concepts)
    eras = q.Eras(periods, definition.era_pad_days)
    return q.Select(
        eras,
        (
            ("cohort_definition_id", Lit(definition.id, "int")),
            ("subject_id", col("person_id")),
            ("cohort_start_date", col("start_date")),
            ("cohort_end_date", col("end_date")),
        ),
    )


__all__ = ["DOMAINS", "Col", "attrition", "entry_events", "events", "plan"]
