"""Cohort services that the CLI and the API call: validate, generate, read back."""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from pmhub.cdm import schema
from pmhub.cdm.backends import Backend, duckdb_path, is_spark
from pmhub.cdm.backends.duckdb import DuckDBBackend
from pmhub.cohorts import characterize, incidence, outcomes, planner, provenance, survival
from pmhub.cohorts import concepts as concept_sets
from pmhub.cohorts import query_model as q
from pmhub.cohorts.definition import Definition, digest
from pmhub.cohorts.engines import CohortRow, Engine, SqlEngine
from pmhub.cohorts.errors import CohortDefinitionError
from pmhub.disclosure import Count, Why, hidden, primary
from pmhub.disclosure.km import SafeCurve
from pmhub.errors import CdwNotInitialisedError
from pmhub.sites import Site

Place = Backend | Engine  # where a cohort runs: a CDW backend, or any engine


def as_engine(place: Place) -> Engine:
    """A backend's SQL engine (after checking its CDM schema), or the engine itself."""
    if isinstance(place, Backend):
        schema.require_cdm(place)
        return SqlEngine(place)
    return place


@contextmanager
def open_engine(site: Site) -> Iterator[Engine]:
    """The engine of a registered site: SQL on DuckDB or PostgreSQL, or a local Spark
    session over a Spark site's Parquet folder."""
    if is_spark(site.cdw_url):
        from pmhub.cohorts.spark import open_folder

        with open_folder(duckdb_path(site.cdw_url)) as engine:
            yield engine
        return
    _require_file(site)
    with site.connect() as backend:
        yield as_engine(backend)


def _require_file(site: Site) -> None:
    """A DuckDB site whose file is gone is not made anew (empty) by opening it."""
    if urlsplit(site.cdw_url).scheme.lower() != "duckdb":
        return
    path = duckdb_path(site.cdw_url)
    if not path.is_file():
        raise CdwNotInitialisedError(
            f"site {site.name!r}: its CDW {path} does not exist",
            hint=f"Create it with `pmhub cdm init --site {site.name}`, or correct the site's "
            "URL (`pmhub sites list`).",
        )


@dataclass(frozen=True)
class RunResult:
    definition_id: int
    name: str
    engine: str
    rows: int
    persons: int
    seconds: float


def build(definition: Definition, engine: Engine) -> q.Relation:
    """Resolve the concept sets on the engine's vocabulary and plan the query."""
    return planner.plan(definition, concept_sets.resolve(definition, engine))


def admit(definitions: list[Definition], engine: Engine, *, replace: bool = False) -> None:
    """Refuse, before anything is written, a definition whose id holds another
    definition's rows (unless ``replace``), or two definitions of one call sharing an id
    (the second would overwrite the first)."""
    seen: dict[int, str] = {}
    for definition in definitions:
        sha = digest(definition)
        if seen.setdefault(definition.id, sha) != sha:
            raise CohortDefinitionError(
                f"two of the definitions given share cohort_definition_id {definition.id}; "
                "the second would overwrite the first's rows",
                hint="Give each definition its own id.",
            )
        provenance.admit(provenance.of(definition, replace=replace), *engine.holding(definition.id))


def generate(definition: Definition, engine: Engine, *, replace: bool = False) -> RunResult:
    """Write the cohort's rows into the OMOP cohort table and record the definition in
    cohort_definition. Rerunning the same definition replaces its rows; another
    definition under the same id is refused unless ``replace`` (see provenance.py)."""
    started = time.perf_counter()
    rows = engine.write_cohort(
        provenance.of(definition, replace=replace), build(definition, engine)
    )
    persons = len({r[1] for r in engine.cohort_rows(definition.id)}) if rows else 0
    return RunResult(
        definition.id, definition.name, engine.name, rows, persons, time.perf_counter() - started
    )


@dataclass(frozen=True)
class AttritionStep:
    """Index events and persons left after the entry, then after each inclusion rule."""

    step: str
    persons: int
    events: int
    persons_alone: int  # persons with an entry event meeting this rule by itself


def attrition(definition: Definition, engine: Engine) -> list[AttritionStep]:
    """Circe's inclusion-rule report: what each rule, in order, leaves of the entry events
    (before the limit after the rules, the exit and the era collapse)."""
    relation = planner.attrition(definition, concept_sets.resolve(definition, engine))
    row = engine.rows(relation)[0]
    names = ["entry events", *(rule.name for rule in definition.inclusion_rules)]
    return [
        AttritionStep(
            name,
            int(row[f"persons_{k}"] or 0),
            int(row[f"events_{k}"] or 0),
            int(row[f"alone_{k}"] or 0),
        )
        for k, name in enumerate(names)
    ]


def generate_on(definition: Definition, place: Place, *, replace: bool = False) -> RunResult:
    return generate(definition, as_engine(place), replace=replace)


def cohort_rows(definition_id: int, backend: Backend) -> list[CohortRow]:
    return SqlEngine(backend).cohort_rows(definition_id)


@functools.cache
def _shipped_vocabulary() -> Path:
    """A throwaway DuckDB holding the shipped vocabulary, for checks without a site."""
    folder = Path(tempfile.mkdtemp(prefix="pmhub-vocab-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    path = folder / "vocabulary.duckdb"
    with DuckDBBackend(path) as backend:
        schema.init_cdm(backend, source_name="vocabulary", abbreviation="vocab", holder="pmhub")
    return path


def validate(definition: Definition, place: Place | None = None) -> dict[str, int]:
    """Check the concepts against a site's vocabulary (or the shipped one) and resolve the
    concept sets; return how many concepts each set resolves to."""
    if place is None:
        with DuckDBBackend(_shipped_vocabulary(), read_only=True) as shipped:
            return validate(definition, shipped)
    engine = SqlEngine(place) if isinstance(place, Backend) else place
    resolved = concept_sets.resolve(definition, engine)
    planner.plan(definition, resolved)  # the plan builds: every node checked its columns
    return {name: len(ids) for name, ids in resolved.items()}


# --- analyses the CLI and the API call ---------------------------------------------------


@dataclass(frozen=True)
class OutcomeAnalysis:
    target: Definition
    outcome: Definition
    rates: list[incidence.Rate]
    curve: SafeCurve | None  # None when suppressed: fewer subjects than the threshold
    competing: SafeCurve | None  # cumulative incidence with death competing
    life_table: survival.LifeTable
    subjects: Count
    events: Count


def characterize_at(
    place: Place,
    definitions: list[Definition],
    threshold: int,
    window_days: int = 365,
    *,
    replace: bool = False,
) -> characterize.Table1:
    """Generate each cohort at the site, then its Table 1 (small cells suppressed)."""
    engine = as_engine(place)
    admit(definitions, engine, replace=replace)
    for definition in definitions:
        generate(definition, engine, replace=replace)
    cohorts = [(d.id, d.name) for d in definitions]
    return characterize.characterize(engine, cohorts, threshold, window_days)


def outcome_at(
    place: Place,
    target: Definition,
    outcome: Definition,
    threshold: int,
    interval_days: int = 90,
    horizon_days: int = 3650,
    *,
    replace: bool = False,
) -> OutcomeAnalysis:
    """Generate target and outcome at the site; incidence, KM curve and life table."""
    engine = as_engine(place)
    admit([target, outcome], engine, replace=replace)
    generate(target, engine, replace=replace)
    generate(outcome, engine, replace=replace)
    frame = outcomes.time_at_risk(engine, target.id, outcome.id)
    subjects = primary(len(frame), threshold)
    curves = survival.safe_curves(frame, target.name, threshold) if subjects.value else None
    return OutcomeAnalysis(
        target,
        outcome,
        incidence.incidence(frame, threshold),
        curves[0] if curves else None,
        curves[1] if curves else None,
        survival.life_table(frame, interval_days, horizon_days, threshold),
        subjects,
        primary(int(frame["event"].sum()), threshold) if subjects.value else hidden(Why.SMALL),
    )
