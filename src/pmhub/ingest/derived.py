"""Derived tables, computed inside the CDW with SQL that DuckDB and PostgreSQL both run.

* condition_era: OHDSI's rule — occurrences of the same standard condition concept whose
  start falls within 30 days (the persistence window) of the previous occurrences' end
  are one era; an occurrence without an end lasts one day.
* drug_era: exposures rolled up to their RxNorm ingredient through concept_ancestor, an
  exposure lasting to its end date (else start + days_supply, else one day); exposures of
  the same ingredient with at most 30 days between them are one era. gap_days is the era's
  length less the days its exposures cover (overlaps counted once per exposure, floor 0).
* observation_period: for every person who has none from a source, one period from the
  earliest to the latest date of their visits and events (type 32827 'EHR encounter
  record'). pmhub remembers which periods it derived (``pmhub_derived_period``) and
  rebuilds only those, so periods that came from a source are never touched.

The eras are rebuilt whole on each load: they are a function of the CDW's events, so a
rebuild gives the same rows whatever was loaded before.
"""

from __future__ import annotations

from pmhub.cdm.backends import Backend

PERSISTENCE_DAYS = 30
PERIOD_TYPE = 32827

_EVENT_DATES = (
    ("visit_occurrence", "visit_start_date", "visit_end_date"),
    ("condition_occurrence", "condition_start_date", "condition_end_date"),
    ("drug_exposure", "drug_exposure_start_date", "drug_exposure_end_date"),
    ("procedure_occurrence", "procedure_date", "procedure_end_date"),
    ("measurement", "measurement_date", "measurement_date"),
    ("observation", "observation_date", "observation_date"),
    ("device_exposure", "device_exposure_start_date", "device_exposure_end_date"),
)


def _islands(source: str, keys: str) -> str:
    """Rows (keys, era_start, era_end, n, covered) of ``source`` (keys, s, e) merged when
    a start falls within the persistence window of every earlier end."""
    return f"""
WITH src AS ({source}),
ordered AS (
  SELECT src.*, max(e) OVER (PARTITION BY {keys} ORDER BY s, e
         ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS prev_end
  FROM src),
grouped AS (
  SELECT ordered.*, sum(CASE WHEN prev_end IS NOT NULL AND s <= prev_end + {PERSISTENCE_DAYS}
                         THEN 0 ELSE 1 END)
         OVER (PARTITION BY {keys} ORDER BY s, e ROWS UNBOUNDED PRECEDING) AS island
  FROM ordered)
SELECT {keys}, min(s) AS era_start, max(e) AS era_end, count(*) AS n,
       sum(e - s) AS covered
FROM grouped GROUP BY {keys}, island"""


def condition_era(backend: Backend) -> int:
    source = (
        "SELECT person_id, condition_concept_id AS concept_id, condition_start_date AS s, "
        "coalesce(condition_end_date, condition_start_date + 1) AS e "
        "FROM condition_occurrence WHERE condition_concept_id <> 0"
    )
    backend.execute("DELETE FROM condition_era")
    backend.execute(
        "INSERT INTO condition_era (condition_era_id, person_id, condition_concept_id, "
        "condition_era_start_date, condition_era_end_date, condition_occurrence_count) "
        "SELECT row_number() OVER (ORDER BY person_id, concept_id, era_start), person_id, "
        f"concept_id, era_start, era_end, n FROM ({_islands(source, 'person_id, concept_id')}"
        ") eras"
    )
    return backend.count("condition_era")


def drug_era(backend: Backend) -> int:
    source = (
        "SELECT d.person_id, ca.ancestor_concept_id AS concept_id, "
        "d.drug_exposure_start_date AS s, "
        "coalesce(CASE WHEN d.drug_exposure_end_date > d.drug_exposure_start_date "
        "THEN d.drug_exposure_end_date END, "
        "CASE WHEN d.days_supply > 0 THEN d.drug_exposure_start_date + d.days_supply END, "
        "d.drug_exposure_start_date + 1) AS e "
        "FROM drug_exposure d "
        "JOIN concept_ancestor ca ON ca.descendant_concept_id = d.drug_concept_id "
        "JOIN concept c ON c.concept_id = ca.ancestor_concept_id "
        "AND c.concept_class_id = 'Ingredient' AND c.standard_concept = 'S' "
        "AND c.vocabulary_id IN ('RxNorm', 'RxNorm Extension') "
        "WHERE d.drug_concept_id <> 0"
    )
    backend.execute("DELETE FROM drug_era")
    backend.execute(
        "INSERT INTO drug_era (drug_era_id, person_id, drug_concept_id, drug_era_start_date, "
        "drug_era_end_date, drug_exposure_count, gap_days) "
        "SELECT row_number() OVER (ORDER BY person_id, concept_id, era_start), person_id, "
        "concept_id, era_start, era_end, n, "
        "CASE WHEN (era_end - era_start) - covered > 0 "
        "THEN (era_end - era_start) - covered ELSE 0 END "
        f"FROM ({_islands(source, 'person_id, concept_id')}) eras"
    )
    return backend.count("drug_era")


def observation_period(backend: Backend) -> int:
    backend.execute(
        "DELETE FROM observation_period WHERE person_id IN "
        "(SELECT person_id FROM pmhub_derived_period)"
    )
    backend.execute("DELETE FROM pmhub_derived_period")
    dates = " UNION ALL ".join(
        f"SELECT person_id, {start} AS s, coalesce({end}, {start}) AS e FROM {table}"
        for table, start, end in _EVENT_DATES
    )
    rows = backend.fetchall(
        "SELECT coalesce(max(observation_period_id), 0) FROM observation_period"
    )
    base = int(rows[0][0])
    backend.execute(
        "INSERT INTO observation_period (observation_period_id, person_id, "
        "observation_period_start_date, observation_period_end_date, period_type_concept_id) "
        f"SELECT {base} + row_number() OVER (ORDER BY person_id), person_id, min(s), "
        f"CASE WHEN max(e) > max(s) THEN max(e) ELSE max(s) END, {PERIOD_TYPE} "
        f"FROM ({dates}) d WHERE person_id NOT IN (SELECT person_id FROM observation_period) "
        "GROUP BY person_id"
    )
    backend.execute(
        "INSERT INTO pmhub_derived_period (person_id) SELECT person_id FROM observation_period "
        f"WHERE observation_period_id > {base}"
    )
    return backend.count("observation_period")
