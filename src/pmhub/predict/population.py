"""The study population of a task at one site: who is at risk, from when, and the label.

Semantics (OHDSI PatientLevelPrediction's ``createStudyPopulation``, in this order):

1. the target cohort's entries (the first per person with ``first_entry_only``); with a
   fixed ``index_date``, the entries whose cohort period covers that day, indexed on it;
2. the observation period that holds the index; ``washout_days`` of it before the index;
3. the time at risk: ``start``/``end`` days from the cohort start or end, cut at the end
   of that observation period;
4. with ``remove_prior_outcome``, persons whose outcome started before the time at risk
   (within ``prior_outcome_days`` of the index, or ever) are left out;
5. the label: an outcome cohort start inside the time at risk (ends included);
6. a time at risk shorter than ``min_time_at_risk_days`` leaves the person out, unless
   they had the outcome and ``include_all_outcomes`` holds.

Every step's persons and outcomes are kept as the attrition table. Row-level data stays
in the site's process: what leaves it goes through :mod:`pmhub.predict.release`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from pmhub.cdm.backends import Backend
from pmhub.cohorts import service as cohorts
from pmhub.cohorts.engines import Engine
from pmhub.predict.errors import PredictError, TooFewEventsError
from pmhub.predict.task import LoadedTask, Task

GENDER_FEMALE = 8532
COLUMNS = (
    "row_id",
    "person_id",
    "index_date",
    "cohort_end",
    "tar_start",
    "tar_end",
    "days_at_risk",
    "outcome",
    "outcome_date",
    "age",
    "female",
)


@dataclass(frozen=True)
class Step:
    step: str
    persons: int
    outcomes: int | None  # None before the outcomes are labelled


@dataclass
class Population:
    """One row per person at risk (``COLUMNS``), in person order, and the attrition."""

    site: str
    frame: pd.DataFrame
    attrition: list[Step] = field(default_factory=list)
    reason: str = ""  # why the population is empty, when it is

    @property
    def persons(self) -> int:
        return len(self.frame)

    @property
    def outcomes(self) -> int:
        return int(self.frame["outcome"].sum())


def _days(n: int) -> pd.Timedelta:
    return pd.Timedelta(days=n)


def _entries(engine: Engine, task: Task, target_id: int) -> pd.DataFrame:
    rows = engine.cohort_rows(target_id)
    frame = pd.DataFrame(rows, columns=["cid", "person_id", "cohort_start", "cohort_end"])
    frame = frame.drop(columns="cid")
    frame["cohort_start"] = pd.to_datetime(frame["cohort_start"])
    frame["cohort_end"] = pd.to_datetime(frame["cohort_end"])
    frame = frame.sort_values(["person_id", "cohort_start"], kind="stable")
    if task.index_date is not None:
        day = pd.Timestamp(task.index_date)
        frame = frame[(frame["cohort_start"] <= day) & (frame["cohort_end"] >= day)].copy()
        frame["index_date"] = day
    else:
        frame["index_date"] = frame["cohort_start"]
    if task.first_entry_only:
        frame = frame.drop_duplicates("person_id", keep="first")
    return frame.reset_index(drop=True)


def _observation(backend: Backend, entries: pd.DataFrame) -> pd.DataFrame:
    """Each entry's observation period (the one holding its index), or none."""
    rows = backend.fetchall(
        "SELECT person_id, observation_period_start_date, observation_period_end_date "
        "FROM observation_period"
    )
    periods = pd.DataFrame(rows, columns=["person_id", "op_start", "op_end"])
    periods["op_start"] = pd.to_datetime(periods["op_start"])
    periods["op_end"] = pd.to_datetime(periods["op_end"])
    joined = entries.merge(periods, on="person_id", how="inner")
    holds = (joined["op_start"] <= joined["index_date"]) & (
        joined["op_end"] >= joined["index_date"]
    )
    joined = joined[holds].sort_values(["person_id", "op_start"], kind="stable")
    return joined.drop_duplicates("person_id", keep="first").reset_index(drop=True)


def _persons(backend: Backend) -> pd.DataFrame:
    rows = backend.fetchall("SELECT person_id, year_of_birth, gender_concept_id FROM person")
    return pd.DataFrame(rows, columns=["person_id", "year_of_birth", "gender_concept_id"])


def _outcome_starts(engine: Engine, outcome_id: int) -> pd.DataFrame:
    rows = engine.cohort_rows(outcome_id)
    frame = pd.DataFrame(rows, columns=["cid", "person_id", "o_start", "o_end"])
    frame["o_start"] = pd.to_datetime(frame["o_start"])
    return frame[["person_id", "o_start"]]


def _anchor(frame: pd.DataFrame, anchor: str) -> pd.Series:
    return frame["cohort_start" if anchor == "cohort_start" else "cohort_end"]


def _label(frame: pd.DataFrame, outcomes: pd.DataFrame, task: Task) -> pd.DataFrame:
    """Prior outcomes and the first outcome inside the time at risk, per person."""
    joined = frame[["person_id", "index_date", "tar_start", "tar_end"]].merge(
        outcomes, on="person_id", how="inner"
    )
    before = joined["o_start"] < joined["tar_start"]
    if task.prior_outcome_days is not None:
        before &= joined["o_start"] >= joined["index_date"] - _days(task.prior_outcome_days)
    inside = (joined["o_start"] >= joined["tar_start"]) & (joined["o_start"] <= joined["tar_end"])
    prior = set(joined.loc[before, "person_id"].tolist())
    inside_rows = joined.loc[inside, ["person_id", "o_start"]]
    first = pd.DataFrame(inside_rows.groupby("person_id")["o_start"].min()).reset_index()
    first.columns = pd.Index(["person_id", "outcome_date"])
    out = frame.merge(first, on="person_id", how="left")
    out["outcome_date"] = pd.to_datetime(out["outcome_date"])
    out["prior_outcome"] = out["person_id"].isin(prior)
    out["outcome"] = out["outcome_date"].notna().astype(np.int8)
    return out


def _step(steps: list[Step], name: str, frame: pd.DataFrame) -> None:
    outcomes = int(frame["outcome"].sum()) if "outcome" in frame else None
    steps.append(Step(name, int(frame["person_id"].nunique()), outcomes))


def build(
    backend: Backend, loaded: LoadedTask, site: str = "site", *, generate: bool = True
) -> Population:
    """Generate the task's cohorts at the site (unless told they are there) and build its
    study population."""
    engine = cohorts.as_engine(backend)
    if generate:
        cohorts.generate(loaded.target, engine)
        cohorts.generate(loaded.outcome, engine)
    task = loaded.task
    steps: list[Step] = []
    frame = _entries(engine, task, loaded.target.id)
    _step(steps, "target cohort entries", frame)
    if frame.empty:
        return _empty(site, steps, f"the target cohort {loaded.target.name!r} is empty here")
    frame = _observation(backend, frame)
    _step(steps, "observed at the index", frame)
    frame = frame[(frame["index_date"] - frame["op_start"]).dt.days >= task.washout_days]
    _step(steps, f"{task.washout_days} days observed before the index", frame)
    tar = task.time_at_risk
    frame = frame.assign(
        tar_start=_anchor(frame, tar.start_anchor) + _days(tar.start)
        if task.index_date is None
        else frame["index_date"] + _days(tar.start),
        tar_end=_anchor(frame, tar.end_anchor) + _days(tar.end)
        if task.index_date is None
        else frame["index_date"] + _days(tar.end),
    )
    frame["tar_end"] = frame[["tar_end", "op_end"]].min(axis=1)
    frame = _label(frame, _outcome_starts(engine, loaded.outcome.id), task)
    if task.remove_prior_outcome:
        frame = frame[~frame["prior_outcome"]]
        _step(steps, "no outcome before the time at risk", frame)
    frame["days_at_risk"] = (frame["tar_end"] - frame["tar_start"]).dt.days + 1
    long_enough = frame["days_at_risk"] >= task.min_time_at_risk_days
    if task.include_all_outcomes:
        long_enough |= (frame["outcome"] == 1) & (frame["days_at_risk"] >= 1)
    frame = frame[long_enough]
    _step(steps, f"at least {task.min_time_at_risk_days} days at risk", frame)
    frame = _demographics(frame, _persons(backend))
    return Population(site, frame[list(COLUMNS)], steps)


def _demographics(frame: pd.DataFrame, persons: pd.DataFrame) -> pd.DataFrame:
    out = frame.merge(persons, on="person_id", how="left")
    out["age"] = (out["index_date"].dt.year - out["year_of_birth"]).astype(float)
    out["female"] = (out["gender_concept_id"] == GENDER_FEMALE).astype(np.int8)
    out = out.sort_values("person_id", kind="stable").reset_index(drop=True)
    out["row_id"] = np.arange(len(out), dtype=np.int64)
    return out


def _empty(site: str, steps: list[Step], reason: str) -> Population:
    frame = pd.DataFrame({c: pd.Series(dtype="float64") for c in COLUMNS})
    return Population(site, frame, steps, reason)


def require_events(population: Population, minimum: int, what: str = "train") -> None:
    """Refuse a population too small to learn from, with its counts (shown to the site's
    own user; what leaves the site says only that it was too small)."""
    if population.persons == 0:
        raise PredictError(f"site {population.site!r}: no one is at risk ({population.reason})")
    check_events(
        f"site {population.site!r}", population.persons, population.outcomes, minimum, what
    )


def check_events(where: str, persons: int, events: int, minimum: int, what: str) -> None:
    if events < minimum or persons - events < minimum:
        raise TooFewEventsError(
            f"{where}: {events} outcomes among {persons} persons at risk, too few to {what} "
            f"(at least {minimum} outcomes and {minimum} persons without one are needed)"
        )


def index_dates(population: Population) -> list[dt.date]:
    return [d.date() for d in population.frame["index_date"]]
