"""Extraction at one site: the approved cohort's persons, the approved variables, the
approved privacy policy applied inside the site, and the adequacy report for sign-off.

``extract_site`` runs in the site's custody. It runs the cohort on the site's CDW (read
only: the site's cohort table is not touched), selects each requested table's columns
for the cohort's persons (and, with a concept set, only the rows of its concepts), writes
them as Parquet into a private scratch folder, and releases them through
:func:`pmhub.privacy.service.anonymize` under the project's key: person and record ids
become the project's pseudonyms (namespaced by site, so ids of two hospitals never
meet), dates are shifted per person, the identifying source values are dropped. Only
that release and its adequacy report (가명처리 적정성 검토 자료) reach ``out_dir``; the
scratch folder with the site's own ids is removed, and the key never leaves the process.

It is idempotent and resumable: everything is written into a staging folder beside
``out_dir`` and renamed into place last, with a marker holding the hash of its inputs
(the application's body, the site, its CDW, the effective policy, the key and the source
tables' row counts). A rerun with the same inputs returns the finished extraction
without touching the CDW again; a rerun after a crash finds no marker, removes what the
crashed run left and starts again; a lock keeps two runs of one site apart.

``deliver_site`` copies a signed-off release's tables into the project's workspace, the
same way (staged, renamed, marked).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pmhub.cdm import spec
from pmhub.cdm.backends import Backend
from pmhub.cohorts import concepts as concept_sets
from pmhub.cohorts import planner, sql
from pmhub.cohorts import query_model as q
from pmhub.cohorts.engines import SqlEngine
from pmhub.cohorts.service import as_engine
from pmhub.privacy import service as privacy
from pmhub.privacy.errors import OutputExistsError
from pmhub.privacy.keys import ProjectKey
from pmhub.privacy.policy import ColumnRule, Policy, TablePolicy
from pmhub.safezone.application import (
    COHORT_TABLE,
    IDENTIFYING_SOURCE_VALUES,
    PERSON,
    SITE_WORK,
    Application,
    Phase,
    Variable,
    concept_column,
    is_identifier,
)
from pmhub.safezone.errors import ApplicationInvalidError, StateTransitionError
from pmhub.sites import Site

Progress = Callable[[str, int, int], None]  # step, done, total (as pmhub.privacy reports)
FORMAT = 1  # of the marker; a new format makes every earlier extraction run again
MARKER = "extraction.json"
DATA = "data"  # the released tables and the adequacy report, inside out_dir
DATE_SHIFT_DAYS = 30
# a shifted birth date next to its own month and day would give the person's offset away
BIRTH_PARTS = frozenset({"month_of_birth", "day_of_birth"})
_COHORT_TYPES = {PERSON: "integer", "cohort_start_date": "date", "cohort_end_date": "date"}


def _nothing(step: str, done: int, total: int) -> None:
    """No progress wanted."""


@dataclass(frozen=True)
class ExtractionResult:
    site: str
    out: Path
    input_hash: str
    persons: int  # in the cohort at the site
    selected: dict[str, int]  # rows per table, before the privacy policy
    released: dict[str, int]  # rows per table in the release
    suppressed_persons: int
    report: Path  # the adequacy report (HTML) for the pseudonymization officer
    reused: bool  # a finished extraction of the same inputs was found

    def details(self) -> dict[str, str | int]:
        """What the extraction_finished and pseudonymized events record."""
        return {
            "input_hash": self.input_hash,
            "persons": self.persons,
            "rows_selected": sum(self.selected.values()),
            "rows_released": sum(self.released.values()),
            "suppressed_persons": self.suppressed_persons,
        }


# --- the policy -------------------------------------------------------------------------


def _namespace(table: str, column: str) -> str:
    """Ids of one entity share a namespace wherever they stand, so pseudonyms still join."""
    if column == PERSON:
        return "person"
    f = spec.table(table).field(column)
    return f.fk_table if f.fk_table else table


def _datatype(table: str, column: str) -> str:
    if table == COHORT_TABLE:
        return _COHORT_TYPES[column]
    return spec.table(table).field(column).datatype


def default_rule(table: str, column: str) -> ColumnRule:
    if column in IDENTIFYING_SOURCE_VALUES or column in BIRTH_PARTS:
        return ColumnRule(action="drop")
    if is_identifier(table, column):
        return ColumnRule(action="pseudonym")
    if _datatype(table, column) in ("date", "datetime"):
        return ColumnRule(action="date_shift", max_days=DATE_SHIFT_DAYS)
    return ColumnRule(action="keep")


def _at_site(table: str, column: str, rule: ColumnRule, site: str) -> ColumnRule:
    if rule.action != "pseudonym":
        return rule
    namespace = f"{site}/{rule.namespace or _namespace(table, column)}"
    return rule.model_copy(update={"namespace": namespace})


def _table_policy(
    table: str, columns: tuple[str, ...], override: TablePolicy | None, site: str
) -> TablePolicy:
    rules = {c: default_rule(table, c) for c in columns}
    if override is not None:
        rules.update(override.columns)
    rules = {c: _at_site(table, c, r, site) for c, r in rules.items()}
    if override is None:
        return TablePolicy(columns=rules)
    return override.model_copy(update={"columns": rules, "unlisted": "error"})


def site_policy(application: Application, site: str) -> Policy:
    """The approved privacy policy as it runs at ``site``: pmhub's defaults for every
    delivered column, the application's own rules over them."""
    body = application.body
    tables = {
        name: _table_policy(name, columns, body.privacy.get(name), site)
        for name, columns in body.extracted().items()
    }
    version = hashlib.sha256(body.model_dump_json().encode()).hexdigest()[:12]
    return Policy(
        name=f"{application.id} at {site}",
        version=version,
        project=application.id,
        person_column=PERSON,
        tables=tables,
    )


# --- what to select -----------------------------------------------------------------------


def _cohort_persons(cohort: q.Relation) -> q.Relation:
    return q.Distinct(q.Select(cohort, (("cohort_person_id", q.Col("subject_id")),)))


def _variable_relation(
    variable: Variable, columns: tuple[str, ...], persons: q.Relation, concepts: tuple[int, ...]
) -> q.Relation:
    table = spec.table(variable.table)
    filter_column = concept_column(table) if variable.concept_set else None
    read = columns if filter_column in (None, *columns) else (*columns, filter_column)
    source: q.Relation = q.Table(variable.table, tuple(c for c in read if c is not None))
    if filter_column is not None:
        source = q.Where(source, q.InValues(q.Col(filter_column), concepts))
    joined = q.Join(source, persons, q.eq(q.Col(PERSON), q.Col("cohort_person_id")))
    return q.Select(joined, tuple((c, q.Col(c)) for c in columns))


def selections(application: Application, engine: SqlEngine) -> dict[str, q.Relation]:
    """Each delivered table as a query on the site's CDW."""
    definition = application.body.cohort
    cohort = planner.plan(definition, concept_sets.resolve(definition, engine))
    persons = _cohort_persons(cohort)
    extracted = application.body.extracted()
    relations: dict[str, q.Relation] = {
        COHORT_TABLE: q.Select(
            cohort,
            (
                (PERSON, q.Col("subject_id")),
                ("cohort_start_date", q.Col("cohort_start_date")),
                ("cohort_end_date", q.Col("cohort_end_date")),
            ),
        )
    }
    for k, variable in enumerate(application.body.variables):
        concepts: tuple[int, ...] = ()
        if variable.concept_set is not None:
            concepts = concept_sets.resolve_set(
                definition.concept_set(variable.concept_set), engine, f"variables[{k}]"
            )
        relations[variable.table] = _variable_relation(
            variable, extracted[variable.table], persons, concepts
        )
    return relations


def _schema(table: str, columns: tuple[str, ...]) -> pa.Schema:
    if table == COHORT_TABLE:
        types = {
            PERSON: pa.int64(),
            "cohort_start_date": pa.date32(),
            "cohort_end_date": pa.date32(),
        }
    else:
        types = {f.name: spec.arrow_type(f) for f in spec.table(table).fields}
    return pa.schema([pa.field(c, types[c]) for c in columns])


def _fetch(engine: SqlEngine, relation: q.Relation, schema: pa.Schema) -> pa.Table:
    text = sql.select_sql(relation, engine.dialect)
    backend = engine.backend
    with backend.transaction():
        for statement in engine.dialect.setup:
            backend.execute(statement)
        fetched = backend.fetch_arrow(text)
    # both engines' own types (PostgreSQL's are inferred from Python values) become the
    # CDM specification's, so every site's release has the same schema; sorted on every
    # column, so that a rerun writes the same rows in the same order
    typed = fetched.rename_columns(schema.names).cast(schema)
    return typed.sort_by([(name, "ascending") for name in schema.names])


# --- the job ------------------------------------------------------------------------------


def _require_extractable(application: Application, site: str) -> None:
    if site not in application.sites:
        raise ApplicationInvalidError(f"application {application.id!r} does not request {site!r}")
    phase = application.sites[site].phase
    if application.status not in SITE_WORK or phase in (Phase.REQUESTED, Phase.REFUSED):
        raise StateTransitionError(
            f"application {application.id!r} is {application.status.value} and site {site!r}"
            f" is {phase.value}: only a site its steward approved is extracted"
        )


def _source_counts(backend: Backend, tables: list[str]) -> dict[str, int]:
    return {t: backend.count(t) for t in tables}


def input_hash(
    application: Application,
    backend: Backend,
    policy: Policy,
    key: ProjectKey,
    counts: dict[str, int],
) -> str:
    facts = {
        "format": FORMAT,
        "application": application.id,
        "body": application.body.model_dump(mode="json"),
        "cdw": backend.url,
        "policy": privacy.policy_text(policy),
        # a keyed digest of a constant: it changes with the key and tells nothing of it
        "key": key.pseudonym("pmhub.extraction", "key-check", 32),
        "counts": counts,
    }
    return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()


@contextlib.contextmanager
def _locked(out_dir: Path) -> Iterator[None]:
    """One run per output folder at a time; the lock dies with its process."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with open(out_dir.parent / f".{out_dir.name}.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _read_marker(folder: Path) -> dict[str, Any] | None:
    try:
        marker = json.loads((folder / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return marker if isinstance(marker, dict) else None


def _finished(out_dir: Path, digest: str) -> ExtractionResult | None:
    """The earlier extraction of the same inputs, if there is one."""
    if not out_dir.exists():
        return None
    marker = _read_marker(out_dir)
    if marker is None and out_dir.is_dir() and not any(out_dir.iterdir()):
        return None
    if marker is None or marker.get("input_hash") != digest:
        raise OutputExistsError(
            f"{out_dir} holds another extraction (of other inputs, or not one of pmhub's)",
            hint="Deliver into a new folder, or remove the old extraction if it is not needed.",
        )
    return _result(out_dir, marker, reused=True)


def _result(out_dir: Path, marker: dict[str, Any], *, reused: bool) -> ExtractionResult:
    return ExtractionResult(
        site=str(marker["site"]),
        out=out_dir,
        input_hash=str(marker["input_hash"]),
        persons=int(marker["persons"]),
        selected={str(k): int(v) for k, v in marker["selected"].items()},
        released={str(k): int(v) for k, v in marker["released"].items()},
        suppressed_persons=int(marker["suppressed_persons"]),
        report=out_dir / DATA / "report.html",
        reused=reused,
    )


def _clear_leftovers(out_dir: Path) -> None:
    """What a crashed run left beside ``out_dir`` (we hold the lock: no run is live)."""
    for stale in out_dir.parent.glob(f".{out_dir.name}.staging-*"):
        shutil.rmtree(stale, ignore_errors=True)


@contextlib.contextmanager
def _staged(out_dir: Path) -> Iterator[Path]:
    """A folder beside ``out_dir`` that becomes it only when the block succeeds."""
    stage = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.staging-", dir=out_dir.parent))
    try:
        yield stage
        if out_dir.exists():
            out_dir.rmdir()  # only an empty folder reaches here (see _finished)
        os.replace(stage, out_dir)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


@contextlib.contextmanager
def _scratch(root: Path | None, site: str, digest: str) -> Iterator[Path]:
    """The site-private folder for the rows before pseudonymization; always removed."""
    folder = (root or Path(tempfile.gettempdir())) / f"pmhub-extract-{site}-{digest[:16]}"
    shutil.rmtree(folder, ignore_errors=True)  # a crashed run's rows
    folder.mkdir(mode=0o700, parents=True)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def select_rows(
    application: Application, engine: SqlEngine, raw: Path, progress: Progress
) -> tuple[int, dict[str, int]]:
    """The cohort's persons and each delivered table's rows, as Parquet in ``raw`` (the
    site's own ids: ``raw`` must stay inside the site); the persons and rows per table."""
    progress("cohort", 0, 1)
    relations = selections(application, engine)
    progress("cohort", 1, 1)
    extracted = application.body.extracted()
    selected: dict[str, int] = {}
    persons = 0
    for k, (name, relation) in enumerate(relations.items()):
        progress("select", k, len(relations))
        table = _fetch(engine, relation, _schema(name, extracted[name]))
        pq.write_table(table, raw / f"{name}.parquet")
        selected[name] = table.num_rows
        if name == COHORT_TABLE:
            persons = int(pc.count_distinct(table[PERSON]).as_py())
    progress("select", len(relations), len(relations))
    return persons, selected


def extract_site(
    application: Application,
    site: Site,
    out_dir: Path,
    progress: Progress | None = None,
    *,
    key: ProjectKey,
    scratch: Path | None = None,
    memory_limit: str | None = None,
) -> ExtractionResult:
    """Extract and pseudonymize ``site``'s part of an approved application into
    ``out_dir`` (rerun freely: the same inputs give the finished extraction back)."""
    _require_extractable(application, site.name)
    report = progress or _nothing
    policy = site_policy(application, site.name)
    out_dir = Path(out_dir)
    with _locked(out_dir), site.connect() as backend:
        engine = as_engine(backend)
        assert isinstance(engine, SqlEngine)
        counts = _source_counts(backend, [v.table for v in application.body.variables])
        digest = input_hash(application, backend, policy, key, counts)
        done = _finished(out_dir, digest)
        if done is not None:
            report("done", 1, 1)
            return done
        _clear_leftovers(out_dir)
        with _scratch(scratch, site.name, digest) as raw, _staged(out_dir) as stage:
            persons, selected = select_rows(application, engine, raw, report)
            release = privacy.anonymize(
                raw,
                policy,
                stage / DATA,
                key,
                output_format="parquet",
                progress=lambda table, done, total: report(f"pseudonymize {table}", done, total),
                memory_limit=memory_limit,
            )
            marker = {
                "format": FORMAT,
                "input_hash": digest,
                "application": application.id,
                "site": site.name,
                "persons": persons,
                "selected": selected,
                "released": {t: r["rows_out"] for t, r in release.report["tables"].items()},
                "suppressed_persons": int(release.report.get("suppressed_persons") or 0),
            }
            (stage / MARKER).write_text(json.dumps(marker, indent=2), encoding="utf-8")
    report("done", 1, 1)
    return _result(out_dir, marker, reused=False)


def deliver_site(application: Application, site: str, extracted: Path, workspace: Path) -> Path:
    """Copy a signed-off release's tables into ``workspace/<site>/`` (idempotent)."""
    progress = application.sites.get(site)
    if progress is None or progress.phase is not Phase.SIGNED_OFF:
        phase = progress.phase.value if progress else "not requested"
        raise StateTransitionError(
            f"site {site!r} of {application.id!r} is {phase}: only a release the"
            " pseudonymization officer signed off is delivered"
        )
    marker = _read_marker(extracted)
    if marker is None or marker.get("site") != site:
        raise StateTransitionError(f"{extracted} holds no finished extraction of site {site!r}")
    target = workspace / site
    with _locked(target):
        if target.exists():
            held = _read_marker(target)
            if held is not None and held.get("input_hash") == marker["input_hash"]:
                return target
            raise OutputExistsError(f"{target} holds another delivery")
        _clear_leftovers(target)
        policy = site_policy(application, site)
        with _staged(target) as stage:
            for name, rules in policy.tables.items():
                released = pq.read_table(extracted / DATA / f"{name}.parquet")
                pq.write_table(_typed(name, released, rules), stage / f"{name}.parquet")
            (stage / MARKER).write_text(json.dumps(marker, indent=2), encoding="utf-8")
    return target


def _delivered_type(table: str, column: str, action: str) -> pa.DataType | None:
    if action == "keep":
        kept: pa.DataType = _schema(table, (column,)).field(0).type
        return kept
    if action == "date_shift":
        return pa.date32() if _datatype(table, column) == "date" else pa.timestamp("us")
    return None


def _typed(name: str, table: pa.Table, rules: TablePolicy) -> pa.Table:
    """The release holds kept values and shifted dates as text (as the privacy engine
    writes them); the workspace gets the CDM's types back wherever the values still fit."""
    columns = []
    for column_name in table.column_names:
        column = table[column_name]
        target = _delivered_type(name, column_name, rules.columns[column_name].action)
        if target is not None:
            with contextlib.suppress(pa.ArrowInvalid, pa.ArrowNotImplementedError):
                column = column.cast(target)
        columns.append(column)
    return pa.table(columns, names=table.column_names)
