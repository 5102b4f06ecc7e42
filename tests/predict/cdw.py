"""Little CDWs for prediction tests: OMOP rows written as ASCII tables (the spec suite's
harness), loaded into a DuckDB or PostgreSQL CDW."""

from __future__ import annotations

from pmhub.cdm.backends import Backend
from tests.backends import harness

AF, STROKE, HYPERTENSION = 313217, 381316, 320128
SBP, OUTPATIENT = 3004249, 9202


def load(backend: Backend, text: str) -> None:
    for name, rows in harness.parse(text).items():
        table = harness.arrow(name, rows)
        backend.insert_batches(name, table.schema, table.to_batches())


# Six persons with AF on 2015-01-01 (person 5 and 6 on 2020-06-01), observed 2010-2020:
#   1 stroke 2016-06-01 (inside the 5-year time at risk)      → outcome 1
#   2 no stroke                                                → outcome 0
#   3 stroke on the index day (before the time at risk, day 1) → removed (prior outcome)
#   4 stroke 2020-03-01 (after the time at risk ends)          → outcome 0
#   5 index 2020-06-01, 213 days at risk, no stroke            → removed (too short)
#   6 index 2020-06-01, stroke 2020-09-01                      → kept, outcome 1
NETWORK = """
person
person_id | year_of_birth | gender_concept_id
1         | 1950          | 8507
2         | 1955          | 8532
3         | 1950          | 8507
4         | 1960          | 8532
5         | 1945          | 8507
6         | 1940          | 8532

observation_period
person_id | observation_period_start_date | observation_period_end_date
1         | 2010-01-01                    | 2020-12-31
2         | 2010-01-01                    | 2020-12-31
3         | 2010-01-01                    | 2020-12-31
4         | 2010-01-01                    | 2020-12-31
5         | 2010-01-01                    | 2020-12-31
6         | 2010-01-01                    | 2020-12-31

condition_occurrence
person_id | condition_concept_id | condition_start_date
1         | 313217               | 2015-01-01
2         | 313217               | 2015-01-01
3         | 313217               | 2015-01-01
4         | 313217               | 2015-01-01
5         | 313217               | 2020-06-01
6         | 313217               | 2020-06-01
1         | 381316               | 2016-06-01
3         | 381316               | 2015-01-01
4         | 381316               | 2020-03-01
6         | 381316               | 2020-09-01
1         | 320128               | 2014-12-01
2         | 320128               | 2010-06-01

measurement
person_id | measurement_concept_id | measurement_date | value_as_number
1         | 3004249                | 2014-06-01       | 150
1         | 3004249                | 2014-12-20       | 130
2         | 3004249                | 2014-12-31       | 120

visit_occurrence
person_id | visit_concept_id | visit_start_date
1         | 9202             | 2014-12-01
1         | 9202             | 2014-12-20
2         | 9202             | 2013-01-01
"""
