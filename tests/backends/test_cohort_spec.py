"""The cohort spec suite: one small dataset and the expected cohort per feature, run on
every engine (reference, DuckDB, PostgreSQL, Spark) with identical expectations."""

from __future__ import annotations

from typing import Any

import pytest

from pmhub.cohorts import service
from pmhub.cohorts.definition import Definition, parse
from pmhub.cohorts.errors import UnknownConceptError
from tests.backends.conftest import SpecSite, every_engine
from tests.backends.harness import cohort

# real concept ids of the shipped vocabulary
T2DM, T1DM, DM, GDM = 201826, 201254, 201820, 4024659
HBA1C, PERCENT, MG_DL = 3004410, 8554, 8840
METFORMIN, WARFARIN = 1503297, 1310149
AF, STROKE, CVA = 313217, 443454, 381316
ECHO, TTE = 4230911, 4335825
OUTPATIENT, INPATIENT = 9202, 9201
SMOKES = 42709996

PEOPLE = """
person
  person_id | year_of_birth | gender_concept_id
  1         | 1950          | 8507
  2         | 1960          | 8532
  3         | 1970          | 8507
  4         | 2005          | 8532

observation_period
  person_id | observation_period_start_date | observation_period_end_date
  1         | 2010-01-01                    | 2020-12-31
  2         | 2015-01-01                    | 2020-12-31
  3         | 2010-01-01                    | 2012-12-31
  3         | 2016-01-01                    | 2020-12-31
  4         | 2019-06-01                    | 2020-12-31
"""


def define(**parts: Any) -> Definition:
    data: dict[str, Any] = {
        "format_version": 1,
        "id": 7,
        "name": "spec",
        "concept_sets": [
            {"id": "t2dm", "items": [{"concept_id": T2DM}]},
            {"id": "hba1c", "items": [{"concept_id": HBA1C}]},
            {"id": "metformin", "items": [{"concept_id": METFORMIN}]},
            {"id": "stroke", "items": [{"concept_id": CVA, "include_descendants": True}]},
            {"id": "t1dm", "items": [{"concept_id": T1DM}]},
        ],
        "entry": {"criteria": [{"domain": "condition", "concept_set": "t2dm"}]},
    }
    data.update(parts)
    return parse(data)


def test_condition_entry_inside_observation_to_its_end(site: SpecSite) -> None:
    site.load(
        PEOPLE
        + """
condition_occurrence
  person_id | condition_concept_id | condition_start_date | condition_end_date
  1         | 201826               | 2012-03-01           | 2012-03-10
  2         | 201826               | 2014-05-01           |
  3         | 201826               | 2014-01-01           |
  3         | 201826               | 2017-02-01           |
  4         | 201254               | 2019-07-01           |
"""
    )
    # person 2's event precedes observation; person 3's 2014 event falls in a gap
    assert site.run(define()) == cohort(
        """
        subject | start      | end
        1       | 2012-03-01 | 2020-12-31
        3       | 2017-02-01 | 2020-12-31
        """
    )


def test_first_occurrence_and_required_prior_observation(site: SpecSite) -> None:
    site.load(
        PEOPLE
        + """
condition_occurrence
  person_id | condition_concept_id | condition_start_date
  1         | 201826               | 2010-03-01
  1         | 201826               | 2011-06-01
  2         | 201826               | 2016-02-01
  3         | 201826               | 2016-03-01
  3         | 201826               | 2017-03-01
"""
    )
    entry = {
        "criteria": [{"domain": "condition", "concept_set": "t2dm", "first_occurrence": True}],
        "observation": {"prior_days": 365},
    }
    # person 1's first ever event has 59 days of prior observation: no entry at all;
    # person 3's first event (2016-03) lacks a year in its period, the 2017 one is not first
    assert site.run(define(entry=entry, exit={"type": "fixed_offset", "days": 0})) == cohort(
        """
        subject | start      | end
        2       | 2016-02-01 | 2016-02-01
        """
    )


def test_entry_limit_first_keeps_the_earliest_qualifying_event(site: SpecSite) -> None:
    site.load(
        PEOPLE
        + """
condition_occurrence
  person_id | condition_concept_id | condition_start_date
  1         | 201826               | 2010-03-01
  1         | 201826               | 2011-06-01
  1         | 201826               | 2013-06-01
"""
    )
    entry = {
        "criteria": [{"domain": "condition", "concept_set": "t2dm"}],
        "observation": {"prior_days": 365},
        "limit": "first",
    }
    exit_ = {"type": "fixed_offset", "days": 30}
    assert site.run(define(entry=entry, exit=exit_)) == cohort(
        """
        subject | start      | end
        1       | 2011-06-01 | 2011-07-01
        """
    )
    entry["limit"] = "all"
    assert site.run(define(entry=entry, exit=exit_)) == cohort(
        """
        subject | start      | end
        1       | 2011-06-01 | 2011-07-01
        1       | 2013-06-01 | 2013-07-01
        """
    )


def test_descendants_and_exclusions(site: SpecSite) -> None:
    site.load(
        PEOPLE
        + """
condition_occurrence
  person_id | condition_concept_id | condition_start_date
  1         | 201826               | 2012-01-01
  2         | 201254               | 2016-01-01
  3         | 4024659              | 2017-01-01
  4         | 201820               | 2020-01-01
"""
    )
    sets = [
        {
            "id": "dm",
            "items": [
                {"concept_id": DM, "include_descendants": True},
                {"concept_id": T1DM, "exclude": True},
            ],
        }
    ]
    entry = {"criteria": [{"domain": "condition", "concept_set": "dm"}]}
    assert site.run(
        define(concept_sets=sets, entry=entry, exit={"type": "fixed_offset", "days": 1})
    ) == cohort(
        """
        subject | start      | end
        1       | 2012-01-01 | 2012-01-02
        3       | 2017-01-01 | 2017-01-02
        4       | 2020-01-01 | 2020-01-02
        """
    )


@every_engine
def test_kcd7_source_codes_map_to_standard_concepts(site: SpecSite) -> None:
    site.load(
        PEOPLE
        + """
condition_occurrence
  person_id | condition_concept_id | condition_start_date
  1         | 201826               | 2012-01-01
  2         | 201254               | 2016-01-01
  3         | 313217               | 2017-01-01
"""
    )
    sets = [
        {
            "id": "dm",
            "items": [{"source_codes": {"vocabulary": "KCD7", "codes": ["E1"], "prefix": True}}],
        },
        {"id": "af", "items": [{"source_codes": {"vocabulary": "KCD7", "codes": ["I48"]}}]},
    ]
    entry = {
        "criteria": [
            {"domain": "condition", "concept_set": "dm"},
            {"domain": "condition", "concept_set": "af"},
        ]
    }
    assert site.run(
        define(concept_sets=sets, entry=entry, exit={"type": "fixed_offset", "days": 0})
    ) == cohort(
        """
        subject | start      | end
        1       | 2012-01-01 | 2012-01-01
        2       | 2016-01-01 | 2016-01-01
        3       | 2017-01-01 | 2017-01-01
        """
    )


def test_measurement_entry_with_value_and_unit(site: SpecSite) -> None:
    site.load(
        PEOPLE
        + """
measurement
  person_id | measurement_concept_id | measurement_date | value_as_number | unit_concept_id
  1         | 3004410                | 2012-01-01       | 7.1             | 8554
  1         | 3004410                | 2012-02-01       | 6.4             | 8554
  2         | 3004410                | 2016-01-01       | 6.5             | 8554
  3         | 3004410                | 2017-01-01       | 8.0             | 8840
  3         | 3004410                | 2017-02-01       |                 | 8554
  4         | 3004410                | 2020-01-01       | 12.5            | 8554
"""
    )
    entry = {
        "criteria": [
            {
                "domain": "measurement",
                "concept_set": "hba1c",
                "value": {"min": 6.5, "max": 12},
                "unit_concept_ids": [PERCENT],
            }
        ]
    }
    assert site.run(define(entry=entry, exit={"type": "fixed_offset", "days": 0})) == cohort(
        """
        subject | start      | end
        1       | 2012-01-01 | 2012-01-01
        2       | 2016-01-01 | 2016-01-01
        """
    )


DRUGS = """
drug_exposure
  person_id | drug_concept_id | drug_exposure_start_date | drug_exposure_end_date | days_supply
  1         | 1503297         | 2012-01-01               | 2012-01-30             | 30
  1         | 1503297         | 2012-02-20               | 2012-03-20             | 30
  1         | 1503297         | 2012-06-01               | 2012-06-30             | 30
  2         | 1503297         | 2016-01-01               | 2016-01-30             | 30
  2         | 1310149         | 2016-01-15               | 2016-12-31             | 350
  3         | 1503297         | 2020-11-01               | 2021-03-01             | 120
"""


@every_engine
def test_continuous_drug_exposure_exit_with_allowed_gap(site: SpecSite) -> None:
    site.load(PEOPLE + DRUGS)
    entry = {"criteria": [{"domain": "drug", "concept_set": "metformin"}], "limit": "first"}
    exit_ = {"type": "continuous_exposure", "concept_set": "metformin", "gap_days": 30}
    # person 1: 21 days between the first two fills (within the gap), 73 before the third;
    # person 3's exposure runs past the end of observation, which caps it
    assert site.run(define(entry=entry, exit=exit_)) == cohort(
        """
        subject | start      | end
        1       | 2012-01-01 | 2012-03-20
        2       | 2016-01-01 | 2016-01-30
        3       | 2020-11-01 | 2020-12-31
        """
    )
    exit_ |= {"gap_days": 10, "offset_days": 7}
    assert site.run(define(entry=entry, exit=exit_)) == cohort(
        """
        subject | start      | end
        1       | 2012-01-01 | 2012-02-06
        2       | 2016-01-01 | 2016-02-06
        3       | 2020-11-01 | 2020-12-31
        """
    )


def test_era_end_exit_of_another_domain_and_no_containing_era(site: SpecSite) -> None:
    site.load(
        PEOPLE
        + DRUGS
        + """
condition_occurrence
  person_id | condition_concept_id | condition_start_date | condition_end_date
  1         | 201826               | 2012-01-10           | 2012-04-01
  2         | 201826               | 2017-01-01           | 2017-01-05
"""
    )
    exit_ = {"type": "era_end", "concept_set": "metformin", "domain": "drug", "gap_days": 30}
    # person 2's diagnosis lies in no metformin era: the period ends where it starts
    assert site.run(define(exit=exit_)) == cohort(
        """
        subject | start      | end
        1       | 2012-01-10 | 2012-03-20
        2       | 2017-01-01 | 2017-01-01
        """
    )


def test_fixed_offset_from_end_is_capped_by_observation(site: SpecSite) -> None:
    site.load(
        PEOPLE
        + """
condition_occurrence
  person_id | condition_concept_id | condition_start_date | condition_end_date
  1         | 201826               | 2012-01-01           | 2012-01-31
  3         | 201826               | 2012-12-01           | 2012-12-05
"""
    )
    exit_ = {"type": "fixed_offset", "anchor": "end", "days": 60}
    assert site.run(define(exit=exit_)) == cohort(
        """
        subject | start      | end
        1       | 2012-01-01 | 2012-03-31
        3       | 2012-12-01 | 2012-12-31
        """
    )


HBA1C_HISTORY = """
condition_occurrence
  person_id | condition_concept_id | condition_start_date
  1         | 201826               | 2012-06-01
  2         | 201826               | 2016-06-01
  3         | 201826               | 2017-06-01
  4         | 201826               | 2020-06-01

measurement
  person_id | measurement_concept_id | measurement_date | value_as_number
  1         | 3004410                | 2012-01-01       | 7.0
  1         | 3004410                | 2012-05-01       | 7.5
  2         | 3004410                | 2015-01-01       | 8.0
  3         | 3004410                | 2015-06-01       | 9.0
  3         | 3004410                | 2017-05-01       | 6.0
  4         | 3004410                | 2020-06-01       | 7.0
  4         | 3004410                | 2020-07-01       | 7.0
"""


def _rule(count: dict[str, Any], window: dict[str, Any], **events: Any) -> dict[str, Any]:
    spec = {"domain": "measurement", "concept_set": "hba1c", **events}
    return {"name": "hba1c", "criteria": [{"events": spec, "window": window, "count": count}]}


def _subjects(site: SpecSite, *rules: dict[str, Any], **parts: Any) -> list[int]:
    exit_ = {"type": "fixed_offset", "days": 0}
    return sorted(
        {r[0] for r in site.run(define(inclusion_rules=list(rules), exit=exit_, **parts))}
    )


def test_inclusion_at_least_at_most_exactly_in_a_window(site: SpecSite) -> None:
    site.load(PEOPLE + HBA1C_HISTORY)
    year_before = {"start": -365, "end": 0}
    assert _subjects(site, _rule({"at_least": 2}, year_before)) == [1]
    assert _subjects(site, _rule({"at_least": 1}, year_before)) == [1, 3, 4]
    assert _subjects(site, _rule({"exactly": 1}, year_before)) == [3, 4]
    assert _subjects(site, _rule({"at_most": 0}, {"start": -30, "end": 30})) == [1, 2, 3]
    assert _subjects(site, _rule({"at_least": 1}, {"end": -1})) == [1, 2, 3]
    # person 3's 2015 value lies in an earlier observation period: counted only on request
    high = {"min": 8.5}
    assert _subjects(site, _rule({"at_least": 1}, {"end": -1}, value=high)) == []
    unrestricted = {"end": -1, "within_observation": False}
    assert _subjects(site, _rule({"at_least": 1}, unrestricted, value=high)) == [3]


@every_engine
def test_inclusion_on_measurement_values_and_window_after_the_index(site: SpecSite) -> None:
    site.load(PEOPLE + HBA1C_HISTORY)
    high = _rule({"at_least": 1}, {"start": -365, "end": 0}, value={"min": 7.2})
    assert _subjects(site, high) == [1]
    after = _rule({"at_least": 1}, {"start": 1, "end": 60})
    assert _subjects(site, after) == [4]


@every_engine
def test_inclusion_age_sex_and_any_of(site: SpecSite) -> None:
    site.load(PEOPLE + HBA1C_HISTORY)
    adults = {"name": "adult", "criteria": [{"age": {"min": 18, "max": 60}}]}
    assert _subjects(site, adults) == [2, 3]
    women = {"name": "women", "criteria": [{"sex": ["female"]}]}
    assert _subjects(site, women) == [2, 4]
    assert _subjects(site, adults, women) == [2]
    either = {
        "name": "either",
        "match": "any",
        "criteria": [{"age": {"max": 20}}, {"sex": [8507]}],
    }
    assert _subjects(site, either) == [1, 3, 4]


def test_limit_after_inclusion_rules(site: SpecSite) -> None:
    site.load(
        PEOPLE
        + """
condition_occurrence
  person_id | condition_concept_id | condition_start_date
  1         | 201826               | 2011-01-01
  1         | 201826               | 2013-01-01
  1         | 201826               | 2015-01-01

measurement
  person_id | measurement_concept_id | measurement_date | value_as_number
  1         | 3004410                | 2012-12-01       | 7.0
  1         | 3004410                | 2014-12-01       | 7.0
"""
    )
    rule = _rule({"at_least": 1}, {"start": -60, "end": 0})
    exit_ = {"type": "fixed_offset", "days": 0}
    assert site.run(define(inclusion_rules=[rule], exit=exit_, limit="first")) == cohort(
        """
        subject | start      | end
        1       | 2013-01-01 | 2013-01-01
        """
    )


@every_engine
def test_censoring_ends_the_period_at_the_first_event_on_or_after_start(site: SpecSite) -> None:
    site.load(
        PEOPLE
        + """
condition_occurrence
  person_id | condition_concept_id | condition_start_date
  1         | 201826               | 2012-01-01
  1         | 443454               | 2011-01-01
  1         | 443454               | 2014-05-01
  1         | 381316               | 2013-05-01
  2         | 201826               | 2016-01-01
  3         | 201826               | 2017-01-01

death
  person_id | death_date
  3         | 2017-01-01
"""
    )
    censoring = [
        {"domain": "condition", "concept_set": "stroke"},
        {"domain": "death"},
    ]
    assert site.run(define(censoring=censoring)) == cohort(
        """
        subject | start      | end
        1       | 2012-01-01 | 2013-05-01
        2       | 2016-01-01 | 2020-12-31
        3       | 2017-01-01 | 2017-01-01
        """
    )


def test_era_collapse_with_pad(site: SpecSite) -> None:
    site.load(
        PEOPLE
        + """
condition_occurrence
  person_id | condition_concept_id | condition_start_date
  1         | 201826               | 2012-01-01
  1         | 201826               | 2012-01-20
  1         | 201826               | 2012-02-05
  1         | 201826               | 2012-04-01
  2         | 201826               | 2016-01-01
  2         | 201826               | 2016-01-01
"""
    )
    exit_ = {"type": "fixed_offset", "days": 10}
    assert site.run(define(exit=exit_)) == cohort(
        """
        subject | start      | end
        1       | 2012-01-01 | 2012-01-11
        1       | 2012-01-20 | 2012-01-30
        1       | 2012-02-05 | 2012-02-15
        1       | 2012-04-01 | 2012-04-11
        2       | 2016-01-01 | 2016-01-11
        """
    )
    assert site.run(define(exit=exit_, era_pad_days=9)) == cohort(
        """
        subject | start      | end
        1       | 2012-01-01 | 2012-02-15
        1       | 2012-04-01 | 2012-04-11
        2       | 2016-01-01 | 2016-01-11
        """
    )


def test_entry_in_every_domain(site: SpecSite) -> None:
    site.load(
        PEOPLE
        + """
visit_occurrence
  person_id | visit_concept_id | visit_start_date | visit_end_date
  1         | 9201             | 2012-01-01       | 2012-01-05
  1         | 9202             | 2012-02-01       | 2012-02-01

procedure_occurrence
  person_id | procedure_concept_id | procedure_date
  2         | 4335825              | 2016-01-01

observation
  person_id | observation_concept_id | observation_date | value_as_number
  3         | 42709996               | 2017-01-01       | 20

device_exposure
  person_id | device_concept_id | device_exposure_start_date | device_exposure_end_date
  4         | 4230911           | 2020-01-01                 | 2020-01-03

death
  person_id | death_date
  2         | 2018-01-01
"""
    )
    sets = [
        {"id": "inpatient", "items": [{"concept_id": INPATIENT}]},
        {"id": "echo", "items": [{"concept_id": ECHO, "include_descendants": True}]},
        {"id": "smokes", "items": [{"concept_id": SMOKES}]},
    ]
    entry = {
        "criteria": [
            {"domain": "visit", "concept_set": "inpatient"},
            {"domain": "procedure", "concept_set": "echo"},
            {"domain": "observation", "concept_set": "smokes", "value": {"min": 10}},
            {"domain": "device", "concept_set": "echo"},
            {"domain": "death"},
        ]
    }
    exit_ = {"type": "fixed_offset", "anchor": "end", "days": 0}
    assert site.run(define(concept_sets=sets, entry=entry, exit=exit_)) == cohort(
        """
        subject | start      | end
        1       | 2012-01-01 | 2012-01-05
        2       | 2016-01-01 | 2016-01-01
        2       | 2018-01-01 | 2018-01-01
        3       | 2017-01-01 | 2017-01-01
        4       | 2020-01-01 | 2020-01-03
        """
    )


@every_engine
def test_entry_in_visit_detail_specimen_and_era_tables(site: SpecSite) -> None:
    site.load(
        PEOPLE
        + """
visit_detail
  person_id | visit_detail_concept_id | visit_detail_start_date | visit_detail_end_date
  1         | 9201                    | 2012-01-02              | 2012-01-04
  1         | 9202                    | 2012-03-01              | 2012-03-01

specimen
  person_id | specimen_concept_id | specimen_date
  2         | 4230911             | 2016-05-01
  3         | 4230911             | 2014-01-01

condition_era
  person_id | condition_concept_id | condition_era_start_date | condition_era_end_date
  3         | 201826               | 2017-01-01               | 2018-06-30
  4         | 201254               | 2019-07-01               | 2019-08-01

drug_era
  person_id | drug_concept_id | drug_era_start_date | drug_era_end_date
  4         | 1503297         | 2020-02-01          | 2020-05-01
  1         | 1310149         | 2013-01-01          | 2013-02-01
"""
    )
    sets = [
        {"id": "inpatient", "items": [{"concept_id": INPATIENT}]},
        {"id": "echo", "items": [{"concept_id": ECHO, "include_descendants": True}]},
        {"id": "t2dm", "items": [{"concept_id": T2DM}]},
        {"id": "metformin", "items": [{"concept_id": METFORMIN}]},
    ]
    entry = {
        "criteria": [
            {"domain": "visit_detail", "concept_set": "inpatient"},
            {"domain": "specimen", "concept_set": "echo"},
            {"domain": "condition_era", "concept_set": "t2dm"},
            {"domain": "drug_era", "concept_set": "metformin"},
        ]
    }
    exit_ = {"type": "fixed_offset", "anchor": "end", "days": 0}
    # person 3's specimen falls in an observation gap; person 1's warfarin era and
    # person 4's type 1 era are in no set
    assert site.run(define(concept_sets=sets, entry=entry, exit=exit_)) == cohort(
        """
        subject | start      | end
        1       | 2012-01-02 | 2012-01-04
        2       | 2016-05-01 | 2016-05-01
        3       | 2017-01-01 | 2018-06-30
        4       | 2020-02-01 | 2020-05-01
        """
    )


@every_engine
def test_inclusion_on_race_and_ethnicity(site: SpecSite) -> None:
    site.load(
        """
person
  person_id | year_of_birth | gender_concept_id | race_concept_id | ethnicity_concept_id
  1         | 1950          | 8507              | 8515            | 38003564
  2         | 1960          | 8532              | 0               | 38003563
  3         | 1970          | 8507              | 0               | 0

observation_period
  person_id | observation_period_start_date | observation_period_end_date
  1         | 2010-01-01                    | 2020-12-31
  2         | 2010-01-01                    | 2020-12-31
  3         | 2010-01-01                    | 2020-12-31

condition_occurrence
  person_id | condition_concept_id | condition_start_date
  1         | 201826               | 2015-01-01
  2         | 201826               | 2015-01-01
  3         | 201826               | 2015-01-01
"""
    )
    asian = {"name": "asian", "criteria": [{"race": [8515]}]}
    assert _subjects(site, asian) == [1]
    no_race = {"name": "no race", "criteria": [{"race": [0]}]}
    hispanic = {"name": "hispanic", "criteria": [{"ethnicity": [38003563]}]}
    assert _subjects(site, no_race) == [2, 3]
    assert _subjects(site, no_race, hispanic) == [2]
    unknown = {
        "name": "unknown",
        "criteria": [{"group": {"match": "all", "criteria": [{"race": [0]}, {"ethnicity": [0]}]}}],
    }
    assert _subjects(site, unknown) == [3]
    native = {"name": "native", "criteria": [{"race": [8515, 8657]}]}  # 8657: not shipped
    with pytest.raises(
        UnknownConceptError, match=r"criteria\[0\]\.race\[1\]: unknown concept id 8657"
    ):
        _subjects(site, native)


@every_engine
def test_date_adjustment_moves_events_before_anything_reads_them(site: SpecSite) -> None:
    site.load(
        PEOPLE
        + """
condition_occurrence
  person_id | condition_concept_id | condition_start_date | condition_end_date
  1         | 201826               | 2012-03-01           | 2012-03-10
  2         | 201826               | 2016-01-01           | 2016-01-05
  3         | 201826               | 2012-12-20           |
"""
    )
    exit_ = {"type": "fixed_offset", "anchor": "end", "days": 0}
    after = {"start_with": "end", "start_offset": 1, "end_with": "end", "end_offset": 30}
    entry = {"criteria": [{"domain": "condition", "concept_set": "t2dm", "date_adjustment": after}]}
    # person 3's event has no end (its end is its start); its moved end is capped by the
    # end of the observation period
    assert site.run(define(entry=entry, exit=exit_)) == cohort(
        """
        subject | start      | end
        1       | 2012-03-11 | 2012-04-09
        2       | 2016-01-06 | 2016-02-04
        3       | 2012-12-21 | 2012-12-31
        """
    )
    inverted = {"start_offset": 10, "end_with": "start", "end_offset": 5}
    entry = {
        "criteria": [{"domain": "condition", "concept_set": "t2dm", "date_adjustment": inverted}]
    }
    assert site.run(define(entry=entry, exit=exit_)) == []


def test_window_anchored_at_the_index_end(site: SpecSite) -> None:
    site.load(
        PEOPLE
        + """
visit_occurrence
  person_id | visit_concept_id | visit_start_date | visit_end_date
  1         | 9201             | 2012-01-01       | 2012-01-20
  2         | 9201             | 2016-01-01       | 2016-01-02

measurement
  person_id | measurement_concept_id | measurement_date
  1         | 3004410                | 2012-01-25
  2         | 3004410                | 2016-01-25
"""
    )
    sets = [
        {"id": "inpatient", "items": [{"concept_id": INPATIENT}]},
        {"id": "hba1c", "items": [{"concept_id": HBA1C}]},
    ]
    entry = {"criteria": [{"domain": "visit", "concept_set": "inpatient"}]}
    rule = _rule({"at_least": 1}, {"start": 0, "end": 7, "anchor": "end"})
    exit_ = {"type": "fixed_offset", "days": 0}
    assert site.run(
        define(concept_sets=sets, entry=entry, inclusion_rules=[rule], exit=exit_)
    ) == cohort(
        """
        subject | start      | end
        1       | 2012-01-01 | 2012-01-01
        """
    )


def test_an_empty_cdw_gives_an_empty_cohort(site: SpecSite) -> None:
    site.load(PEOPLE)
    assert site.run(define()) == []


SAME_VISIT = """
visit_occurrence
  visit_occurrence_id | person_id | visit_concept_id | visit_start_date | visit_end_date
  10                  | 1         | 9201             | 2012-03-01       | 2012-03-10
  20                  | 2         | 9202             | 2016-05-01       | 2016-05-01
  21                  | 2         | 9202             | 2016-05-01       | 2016-05-01
  30                  | 3         | 9201             | 2017-02-01       | 2017-02-09

condition_occurrence
  person_id | condition_concept_id | condition_start_date | visit_occurrence_id
  1         | 201826               | 2012-03-01           | 10
  2         | 201826               | 2016-05-01           | 20
  3         | 201826               | 2017-02-01           | 30
  4         | 201826               | 2020-01-01           |

measurement
  person_id | measurement_concept_id | measurement_date | visit_occurrence_id
  1         | 3004410                | 2012-03-01       | 10
  2         | 3004410                | 2016-05-01       | 21
  3         | 3004410                | 2017-02-05       | 30
  4         | 3004410                | 2020-01-01       |
"""


@every_engine
def test_criteria_restricted_to_the_index_visit(site: SpecSite) -> None:
    site.load(PEOPLE + SAME_VISIT)

    def rule(count: dict[str, int], window: dict[str, Any]) -> dict[str, Any]:
        events = {"domain": "measurement", "concept_set": "hba1c"}
        criterion = {"events": events, "window": window, "count": count, "same_visit": True}
        return {"name": "same visit", "criteria": [criterion]}

    # person 2's HbA1c is the same day in another visit; person 4's events have no visit
    assert _subjects(site, rule({"at_least": 1}, {})) == [1, 3]
    assert _subjects(site, rule({"at_least": 1}, {"end": 0})) == [1]
    assert _subjects(site, rule({"at_most": 0}, {})) == [2, 4]


@every_engine
def test_nested_criteria_groups_all_any_at_least_at_most(site: SpecSite) -> None:
    site.load(PEOPLE + HBA1C_HISTORY)
    # at the index: person 1 is 62, male, HbA1c in the year before; 2 is 56, female,
    # none; 3 is 47, male, one; 4 is 15, female, one
    hba1c = {
        "events": {"domain": "measurement", "concept_set": "hba1c"},
        "window": {"start": -365, "end": 0},
    }
    three = [{"age": {"max": 60}}, {"sex": ["female"]}, hba1c]
    assert _subjects(
        site, {"name": "two of three", "match": {"at_least": 2}, "criteria": three}
    ) == [
        2,
        3,
        4,
    ]
    assert _subjects(site, {"name": "one at most", "match": {"at_most": 1}, "criteria": three}) == [
        1
    ]
    assert _subjects(site, {"name": "exactly 3", "match": {"exactly": 3}, "criteria": three}) == [4]
    nested = {
        "name": "girls, or older men or men with HbA1c",
        "match": "any",
        "criteria": [
            {"group": {"criteria": [{"sex": ["female"]}, {"age": {"max": 17}}]}},
            {
                "group": {
                    "criteria": [
                        {"sex": ["male"]},
                        {"group": {"match": "any", "criteria": [{"age": {"min": 60}}, hba1c]}},
                    ]
                }
            },
        ],
    }
    assert _subjects(site, nested) == [1, 3, 4]


@every_engine
def test_attrition_counts_events_and_persons_after_each_rule(site: SpecSite) -> None:
    site.load(
        PEOPLE
        + HBA1C_HISTORY
        + """
condition_occurrence
  person_id | condition_concept_id | condition_start_date
  1         | 201826               | 2013-06-01
"""
    )
    adults = {"name": "adult", "criteria": [{"age": {"min": 18}}]}
    measured = _rule({"at_least": 1}, {"start": -365, "end": 0})
    definition = define(inclusion_rules=[adults, measured])
    steps = [
        (s.step, s.persons, s.events, s.persons_alone)
        for s in service.attrition(definition, site.engine)
    ]
    # person 4 is 15; of person 1's two entries only the 2012 one has an HbA1c before it;
    # by itself the HbA1c rule holds for persons 1, 3 and 4
    assert steps == [("entry events", 4, 5, 4), ("adult", 3, 4, 3), ("hba1c", 2, 2, 3)]
    without_rules = service.attrition(define(), site.engine)
    assert [(s.step, s.persons, s.events) for s in without_rules] == [("entry events", 4, 5)]


@every_engine
def test_counting_distinct_days_or_visits_instead_of_records(site: SpecSite) -> None:
    site.load(
        PEOPLE
        + """
condition_occurrence
  person_id | condition_concept_id | condition_start_date
  1         | 201826               | 2012-06-01
  2         | 201826               | 2016-06-01
  3         | 201826               | 2017-06-01

measurement
  person_id | measurement_concept_id | measurement_date | visit_occurrence_id
  1         | 3004410                | 2012-05-01       | 5
  1         | 3004410                | 2012-05-01       | 6
  1         | 3004410                | 2012-05-20       | 6
  2         | 3004410                | 2016-05-01       | 7
  2         | 3004410                | 2016-05-01       | 7
  3         | 3004410                | 2017-05-01       |
  3         | 3004410                | 2017-05-02       |
"""
    )
    # records, distinct days, distinct visits: person 1 3/2/2, 2 2/1/1, 3 2/2/0
    window = {"start": -60, "end": 0}
    assert _subjects(site, _rule({"at_least": 2}, window)) == [1, 2, 3]
    assert _subjects(site, _rule({"at_least": 2, "distinct": "start_date"}, window)) == [1, 3]
    assert _subjects(site, _rule({"at_least": 2, "distinct": "visit"}, window)) == [1]
    assert _subjects(site, _rule({"exactly": 0, "distinct": "visit"}, window)) == [3]


@every_engine
def test_counting_distinct_concepts(site: SpecSite) -> None:
    site.load(
        PEOPLE
        + """
condition_occurrence
  person_id | condition_concept_id | condition_start_date
  1         | 201826               | 2012-06-01
  1         | 201254               | 2011-01-01
  1         | 201254               | 2011-02-01
  2         | 201826               | 2016-06-01
  2         | 201254               | 2015-03-01
  2         | 313217               | 2015-04-01
  3         | 201826               | 2017-06-01
"""
    )
    other = {"id": "other", "items": [{"concept_id": T1DM}, {"concept_id": AF}]}
    sets = [{"id": "t2dm", "items": [{"concept_id": T2DM}]}, other]

    def rule(count: dict[str, Any]) -> dict[str, Any]:
        spec = {"domain": "condition", "concept_set": "other"}
        return {"name": "other", "criteria": [{"events": spec, "count": count}]}

    # records / distinct concepts: person 1 2/1, person 2 2/2, person 3 0/0
    assert _subjects(site, rule({"at_least": 2}), concept_sets=sets) == [1, 2]
    assert _subjects(site, rule({"at_least": 2, "distinct": "concept"}), concept_sets=sets) == [2]
    assert _subjects(site, rule({"exactly": 1, "distinct": "concept"}), concept_sets=sets) == [1]


@every_engine
def test_events_of_a_visit_type_and_a_record_type(site: SpecSite) -> None:
    site.load(
        PEOPLE
        + """
visit_occurrence
  visit_occurrence_id | person_id | visit_concept_id | visit_start_date | visit_end_date
  11                  | 1         | 9201             | 2012-03-01       | 2012-03-05
  12                  | 2         | 9202             | 2016-01-01       | 2016-01-01
  13                  | 3         | 9201             | 2017-01-01       | 2017-01-02

condition_occurrence
  person_id | condition_concept_id | condition_start_date | visit_occurrence_id | type
  1         | 201826               | 2012-03-02           | 11                  | 32817
  2         | 201826               | 2016-01-01           | 12                  | 32817
  3         | 201826               | 2017-01-01           | 13                  | 32827
  4         | 201826               | 2019-07-01           |                     | 32817
"""
    )
    exit_ = {"type": "fixed_offset", "days": 0}

    def subjects(**attributes: Any) -> list[int]:
        entry = {"criteria": [{"domain": "condition", "concept_set": "t2dm", **attributes}]}
        return sorted({r[0] for r in site.run(define(entry=entry, exit=exit_))})

    assert subjects() == [1, 2, 3, 4]
    assert subjects(visit_concept_ids=[INPATIENT]) == [1, 3]
    assert subjects(type_concept_ids=[32817]) == [1, 2, 4]
    assert subjects(visit_concept_ids=[INPATIENT], type_concept_ids=[32817]) == [1]
    assert subjects(start_date={"min": "2016-01-01", "max": "2017-01-01"}) == [2, 3]
    assert subjects(start_date={"min": "2017-01-02"}) == [4]
    assert subjects(start_date={"max": "2016-01-01"}, type_concept_ids=[32817]) == [1, 2]
    entry = {"criteria": [{"domain": "visit", "concept_set": "inpatient"}]}
    inpatient_stays = {
        "name": "inpatient",
        "criteria": [
            {
                "events": {
                    "domain": "visit",
                    "concept_set": "inpatient",
                    "visit_concept_ids": [9201],
                },
                "same_visit": True,
            }
        ],
    }
    sets = [{"id": "inpatient", "items": [{"concept_id": INPATIENT}, {"concept_id": OUTPATIENT}]}]
    assert _subjects(site, inpatient_stays, concept_sets=sets, entry=entry) == [1, 3]
