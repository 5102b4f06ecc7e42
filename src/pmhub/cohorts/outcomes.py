"""Time at risk of a target cohort for an outcome cohort: the records incidence rates and
survival curves are computed from.

Each subject's first target entry is followed from its start to its end (the target
cohort's exit); the first outcome start on or after the target start, inside that time,
is the event. Subjects with an outcome before the target start are left out, as incident
(not prevalent) outcomes are counted.
"""

from __future__ import annotations

import pandas as pd

from pmhub.cohorts import query_model as q
from pmhub.cohorts.characterize import COHORT, _demographics, first_entries
from pmhub.cohorts.engines import Engine
from pmhub.cohorts.errors import CohortNotGeneratedError
from pmhub.cohorts.query_model import Lit, col, eq, lit_int


def _outcomes(definition_id: int) -> q.Relation:
    rows = q.Where(COHORT, eq(col("cohort_definition_id"), lit_int(definition_id)))
    return q.Select(rows, (("o_person", col("subject_id")), ("o_start", col("cohort_start_date"))))


DEATH = q.Table("death", ("person_id", "death_date"))


def _with_death(target: q.Relation) -> q.Relation:
    deaths = q.Aggregate(
        q.Select(DEATH, (("d_person", col("person_id")), ("d_date", col("death_date")))),
        ("d_person",),
        (("death_date", q.Agg("min", col("d_date"))),),
    )
    joined = q.Join(target, deaths, eq(col("person_id"), col("d_person")), how="left")
    return q.keep(joined, *target.columns, "death_date")


def time_at_risk_query(target_id: int, outcome_id: int) -> q.Relation:
    target = _with_death(_demographics(first_entries(target_id)))
    joined = q.Join(
        target, _outcomes(outcome_id), eq(col("person_id"), col("o_person")), how="left"
    )
    after = q.And((q.Cmp(">=", col("o_start"), col("start_date")),))
    before = q.Cmp("<", col("o_start"), col("start_date"))
    return q.Aggregate(
        joined,
        target.columns,
        (
            ("outcome_date", q.Agg("min", q.Case(after, col("o_start"), Lit(None, "date")))),
            ("prior_outcomes", q.Agg("sum", q.Case(before, lit_int(1), lit_int(0)))),
        ),
    )


def time_at_risk(engine: Engine, target_id: int, outcome_id: int) -> pd.DataFrame:
    """Per subject: start, end (exit or outcome), event (0/1), competing (death, 0/1),
    days, age, female."""
    relation = time_at_risk_query(target_id, outcome_id)
    frame = pd.DataFrame(engine.rows(relation), columns=list(relation.columns))
    if frame.empty:
        raise CohortNotGeneratedError(f"cohort {target_id} has no rows in this CDW")
    frame = frame[frame["prior_outcomes"].fillna(0) == 0].copy()
    start = pd.to_datetime(frame["start_date"])
    exit_ = pd.to_datetime(frame["end_date"])
    outcome = pd.to_datetime(frame["outcome_date"])
    death = pd.to_datetime(frame["death_date"])
    death = death.where(death >= start)  # a death recorded before the start is an error
    follow_up_end = exit_.where(death.isna() | (death > exit_), death)  # death ends it
    event = outcome.notna() & (outcome <= follow_up_end)
    frame["event"] = event.astype(int)
    # death without the outcome is a competing event (Aalen–Johansen), not a censoring
    frame["competing"] = (~event & death.notna() & (death <= exit_)).astype(int)
    frame["start"] = start
    frame["end"] = outcome.where(event, follow_up_end)
    # the index day counts: a subject followed from Jan 1 to Jan 1 contributes one day
    frame["days"] = (frame["end"] - start).dt.days + 1
    frame["age"] = frame["age"].astype(float)
    frame["female"] = (frame["gender"] == 8532).astype(int)
    # engines return rows in any order; sums of floats must not depend on it
    return frame.sort_values("person_id", kind="stable").reset_index(drop=True)
