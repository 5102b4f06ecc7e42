"""Import a source into a site's CDW: the function the CLI verb and the service job call.

A load runs in three phases. *Stage*: every input file is fingerprinted (BLAKE3,
encoding) and parsed into stage tables; unparseable lines go to quarantine. *Transform*:
set-based SQL validates rows (bad ones to quarantine with file, line, field and reason)
and builds the CDM rows with ids counted from the load's id bases. *Publish*: one
transaction per CDM table, each recorded in the load log; then the derived tables, the
accounting and cdm_source. The same input again is recognised by its checksums and
changes nothing; a load killed at any point resumes where it stopped, with the same ids.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import importlib
import shlex
import signal
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from pmhub import interrupts
from pmhub.cdm import schema
from pmhub.cdm.backends import Backend
from pmhub.ingest import derived, ledger
from pmhub.ingest.engine import STAGE, Engine
from pmhub.ingest.errors import (
    EncodingError,
    IngestError,
    InputNotFoundError,
    LoadInterruptedError,
    RowsQuarantinedError,
    UnknownFormatError,
)
from pmhub.ingest.plan import Plan

IMPORTERS = {"synthea-csv": "synthea", "fhir": "fhir", "omop-csv": "omop_csv"}
FORMATS = tuple(IMPORTERS)
Progress = Callable[[str], None]

_INT: pa.DataType = pa.int64()
_TEXT: pa.DataType = pa.string()
QUARANTINE_SCHEMA = pa.schema(
    [
        ("load_id", _INT),
        ("file", _TEXT),
        ("line", _INT),
        ("field", _TEXT),
        ("reason", _TEXT),
        ("raw", _TEXT),
    ]
)
PERSON_MAP_SCHEMA = pa.schema([("source_id", _TEXT), ("person_id", _INT), ("load_id", _INT)])


@dataclass
class FileAccount:
    file: str
    checksum: str  # "blake3:<hex>" (loads before 2026-12 kept "sha256:<hex>")
    bytes: int
    encoding: str
    read: int
    loaded: int
    quarantined: int
    seconds: float


@dataclass
class IngestReport:
    load_id: int
    format: str
    source: str
    files: list[FileAccount]
    tables: dict[str, int]  # CDM table → rows written by this load
    ignored: dict[str, str] = field(default_factory=dict)
    unmapped: dict[str, int] = field(default_factory=dict)  # CDM table → rows with concept 0
    reasons: list[tuple[str, str, str, int]] = field(default_factory=list)  # commonest
    seconds: float = 0.0
    already_loaded: bool = False
    resumed: bool = False
    # other loads that never finished but committed rows (see ``ledger.unfinished``)
    unfinished: list[dict[str, Any]] = field(default_factory=list)
    # FHIR: rows per stage table (one per resource type), [loaded, quarantined]
    stage_rows: dict[str, list[int]] = field(default_factory=dict)

    @property
    def read(self) -> int:
        return sum(f.read for f in self.files)

    @property
    def loaded(self) -> int:
        return sum(f.loaded for f in self.files)

    @property
    def quarantined(self) -> int:
        return sum(f.quarantined for f in self.files)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(read=self.read, loaded=self.loaded, quarantined=self.quarantined)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> IngestReport:
        files = [FileAccount(**_checksum_named(f)) for f in data["files"]]
        return cls(
            load_id=data["load_id"],
            format=data["format"],
            source=data["source"],
            files=files,
            tables=dict(data["tables"]),
            ignored=dict(data.get("ignored", {})),
            unmapped=dict(data.get("unmapped", {})),
            reasons=[tuple(r) for r in data.get("reasons", [])],
            seconds=float(data.get("seconds", 0.0)),
            stage_rows={str(k): list(v) for k, v in data.get("stage_rows", {}).items()},
        )


def ingest(
    backend: Backend,
    fmt: str,
    path: Path | str,
    *,
    encoding: str = "auto",
    progress: Progress | None = None,
    resume: str = "a load of the same input",
) -> IngestReport:
    """Load ``path`` (a ``fmt`` export) into the CDW behind ``backend``; return the
    accounting. Rows set aside are in ``pmhub_quarantine``; the caller decides whether
    quarantined rows make the command fail. A load stopped by a signal raises
    :class:`LoadInterruptedError`, whose message says to resume with ``resume``."""
    say = progress or (lambda _message: None)
    started = time.perf_counter()
    importer = _importer(fmt)
    path = _as_path(path)
    if not isinstance(encoding, str):
        raise EncodingError(f"the encoding must be a name such as utf-8, not {encoding!r}")
    schema.require_cdm(backend)
    ledger.ensure_tables(backend)
    say("checking input files")
    plan = importer.discover(path, encoding)
    key = plan.key()
    existing = ledger.find(backend, key)
    if existing is None and ledger.legacy_loads(backend):
        legacy = plan.legacy_key()  # the same input loaded before checksums were BLAKE3
        found = ledger.find(backend, legacy)
        if found is not None:
            key, existing = legacy, found
    if existing is not None and existing.status == "done" and existing.report:
        report = IngestReport.from_dict(existing.report)
        report.already_loaded = True
        return report
    load = ledger.begin(backend, key, fmt, str(path))
    resumed = load.status == "running" and bool(ledger.done_steps(backend, load.load_id))
    plan.load_id = load.load_id
    phase = ["starting"]

    def note(message: str) -> None:
        phase[0] = message
        say(message)

    try:
        tables, files, unmapped, reasons = _run(backend, importer, plan, load, note)
    except BaseException as exc:
        _stopped(backend, load.load_id, phase[0], exc, resume)
        if _from_database(exc):  # a value the checks let through, refused by the CDW
            raise IngestError(
                f"load {load.load_id} failed while {phase[0]}: {_first_line(exc)}",
                hint="The steps that committed are kept and the same input again resumes "
                "the load; the database refused a value pmhub's checks let through, so "
                "please report this message.",
            ) from exc
        raise
    report = IngestReport(
        load_id=load.load_id,
        format=fmt,
        source=str(path),
        files=files,
        tables=tables,
        ignored=plan.ignored,
        unmapped=unmapped,
        reasons=reasons,
        seconds=round(time.perf_counter() - started, 3),
        resumed=resumed,
        unfinished=[asdict(u) for u in ledger.unfinished(backend, load.load_id)],
        stage_rows=dict(plan.stage_rows),
    )
    _record_source(backend, fmt)
    ledger.finish(backend, load.load_id, report.to_dict())
    return report


Accounts = tuple[
    dict[str, int], list["FileAccount"], dict[str, int], list[tuple[str, str, str, int]]
]


def _run(backend: Backend, importer: Any, plan: Plan, load: ledger.Load, say: Progress) -> Accounts:
    """Stage, transform and publish a load; its rows written, files' accounts, unmapped
    rows and commonest reasons."""
    engine = Engine(backend)
    try:
        say("staging source files")
        importer.stage(engine, plan)
        engine.unordered()  # lines are numbered; nothing after staging reads row order
        say("mapping to OMOP")
        importer.transform(engine, plan, load.bases, _load_time(backend, load.load_id))
        order = importer.publish_order(engine)
        one_step = bool(getattr(importer, "ONE_STEP", False))
        tables = _publish(engine, load.load_id, order, say, one_step=one_step)
        tables.update(_derive(backend, load.load_id, importer.derived(plan), say))
        return tables, _accounting(engine, plan), _unmapped(engine), _reasons(engine)
    finally:
        engine.close()


def _from_database(exc: BaseException) -> bool:
    return type(exc).__module__.split(".")[0].lstrip("_") in ("duckdb", "psycopg")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _stopped(backend: Backend, load_id: int, phase: str, exc: BaseException, resume: str) -> None:
    """A load that ended early: marked interrupted (Ctrl-C, SIGTERM) or failed, with
    where it was. The step in flight was rolled back by its transaction; the committed
    ones stay and the same input resumes the load. A signal becomes
    :class:`LoadInterruptedError`; the layer's own errors and the database's refusals
    are re-raised by the caller as they are."""
    signum = interrupts.stopped_by(exc)
    status = "failed" if signum is None else "interrupted"
    why = _first_line(exc)
    # the connection may be in a failed transaction (PostgreSQL) or a broken one: the
    # marking is worth trying, and a load left 'running' is resumed all the same
    with contextlib.suppress(Exception):
        _reset(backend)
        ledger.stop(backend, load_id, status, why if signum is None else "signal", phase)
    if signum is not None:
        name = signal.Signals(signum).name
        raise LoadInterruptedError(
            f"load {load_id} interrupted ({name}) while {phase}; resume with {resume}",
            load_id=load_id,
            signum=signum,
        ) from None


def _reset(backend: Backend) -> None:
    """A connection fit to record the interruption: reopened if the interruption closed
    it (psycopg closes one on Ctrl-C in a statement), out of any transaction left open."""
    reopen = getattr(backend, "reopen", None)
    if callable(reopen):
        reopen()
    rollback = getattr(getattr(backend, "con", None), "rollback", None)
    if callable(rollback):
        with contextlib.suppress(Exception):
            rollback()


def _checksum_named(account: dict[str, Any]) -> dict[str, Any]:
    """A file's account as stored; those from before BLAKE3 named their SHA-256."""
    if "sha256" in account:
        account = {**account, "checksum": f"sha256:{account['sha256']}"}
        del account["sha256"]
    return account


def _as_path(path: object) -> Path:
    if isinstance(path, Path):
        return path
    if isinstance(path, str) and path.strip() and "\x00" not in path:
        return Path(path)
    raise InputNotFoundError(f"{path!r} is not a path to a file or folder")


def _importer(fmt: object) -> Any:
    """The module that reads ``fmt``: discover, stage, transform, publish_order, derived."""
    if not isinstance(fmt, str) or fmt not in IMPORTERS:
        raise UnknownFormatError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    return importlib.import_module(f"pmhub.ingest.{IMPORTERS[fmt]}")


def _load_time(backend: Backend, load_id: int) -> str:
    rows = backend.fetchall("SELECT started_at FROM pmhub_load_log WHERE load_id = ?", [load_id])
    started = rows[0][0]
    if isinstance(started, str):
        started = dt.datetime.fromisoformat(started)
    # a day's grace: an export written today in another time zone is not "in the future"
    return str((started + dt.timedelta(days=1)).isoformat(sep=" "))


def _publish(
    engine: Engine, load_id: int, order: list[str], say: Progress, *, one_step: bool
) -> dict[str, int]:
    """Quarantine, then the CDM tables: one committed step per table (or one for all)."""
    backend = engine.target
    done = ledger.done_steps(backend, load_id)
    if "quarantine" not in done:
        engine.run(
            f"CREATE OR REPLACE TABLE {STAGE}.out_quarantine AS SELECT "
            f"CAST({load_id} AS BIGINT) AS load_id, {_text('file')}, "
            f"CAST(line AS BIGINT) AS line, {_text('field')}, {_text('reason')}, {_text('raw')} "
            f"FROM {STAGE}.quarantine ORDER BY file, line"
        )
        with ledger.step(backend, load_id, "quarantine") as rows:
            backend.execute("DELETE FROM pmhub_quarantine WHERE load_id = ?", [load_id])
            rows.append(
                engine.copy_to_target("out_quarantine", "pmhub_quarantine", QUARANTINE_SCHEMA)
            )
    written: dict[str, int] = {}
    # one_step: every table's step inside one outer transaction (the inner ones join it)
    with backend.transaction() if one_step else nullcontext():
        for name in order:
            step = f"table:{name}"
            if step in done:
                written[name] = done[step]
                continue
            say(f"writing {name}")
            with ledger.step(backend, load_id, step) as rows:
                rows.append(engine.publish(f"out_{name}", name))
                if name == "person" and engine.has("out_person_map"):
                    engine.copy_to_target("out_person_map", "pmhub_person_map", PERSON_MAP_SCHEMA)
            written[name] = rows[0]
    return written


def _text(column: str) -> str:
    """PostgreSQL text cannot hold NUL: show it as U+FFFD (the raw bytes stay in the file)."""
    return f"replace({column}, chr(0), '\ufffd') AS {column}"


def _derive(backend: Backend, load_id: int, wanted: list[str], say: Progress) -> dict[str, int]:
    done = ledger.done_steps(backend, load_id)
    counts: dict[str, int] = {}
    functions = {
        "observation_period": derived.observation_period,
        "condition_era": derived.condition_era,
        "drug_era": derived.drug_era,
    }
    for name in wanted:
        step = f"derived:{name}"
        if step in done:
            counts[name] = done[step]
            continue
        say(f"deriving {name}")
        with ledger.step(backend, load_id, step) as rows:
            rows.append(functions[name](backend))
        counts[name] = rows[0]
    return counts


def _unmapped(engine: Engine) -> dict[str, int]:
    """Rows loaded with concept 0 (a code no vocabulary maps), per CDM table."""
    if not engine.has("routed"):
        return {}
    rows = engine.rows(
        f"SELECT target, count(*) FROM {STAGE}.routed WHERE concept_id = 0 GROUP BY target "
        "ORDER BY target"
    )
    return {str(r[0]): int(r[1]) for r in rows}


def _reasons(engine: Engine, limit: int = 10) -> list[tuple[str, str, str, int]]:
    """The commonest quarantine reasons: (file, field, reason, rows); reasons that quote a
    value are grouped by their first words."""
    rows = engine.rows(
        "SELECT file, coalesce(field, ''), split_part(reason, ':', 1) AS why, count(*) "
        f"FROM {STAGE}.quarantine GROUP BY ALL ORDER BY 4 DESC, 1, 2, 3 LIMIT {limit}"
    )
    return [(str(r[0]), str(r[1]), str(r[2]), int(r[3])) for r in rows]


def _accounting(engine: Engine, plan: Plan) -> list[FileAccount]:
    quarantined = dict(engine.rows(f"SELECT file, count(*) FROM {STAGE}.quarantine GROUP BY file"))
    accounts = []
    for name, source in plan.sources.items():
        staged = plan.staged[name]
        bad = int(quarantined.get(source.name, 0))
        _check_balance(engine, name, staged.read - bad)
        accounts.append(
            FileAccount(
                file=source.name,
                checksum=source.checksum,
                bytes=source.size,
                encoding=source.encoding,
                read=staged.read,
                loaded=staged.read - bad,
                quarantined=bad,
                seconds=round(staged.seconds, 3),
            )
        )
    if plan.present:  # many files feed each stage table (FHIR): check the totals
        for t in sorted(plan.present):
            good, bad = engine.rows(
                "SELECT count(*) FILTER (WHERE _rule IS NULL), "
                f"count(*) FILTER (WHERE _rule IS NOT NULL) FROM {STAGE}.v_{t}"
            )[0]
            plan.stage_rows[t] = [int(good), int(bad)]
        valid = sum(good for good, _ in plan.stage_rows.values())
        loaded = sum(a.loaded for a in accounts)
        if valid != loaded:
            raise AssertionError(f"accounting does not balance: {valid} valid != {loaded}")
    return accounts


def _check_balance(engine: Engine, name: str, loaded: int) -> None:
    """Every row read is loaded or quarantined: the validated table must agree."""
    if not engine.has(f"v_{name}"):
        return
    valid = int(engine.scalar(f"SELECT count(*) FROM {STAGE}.v_{name} WHERE _rule IS NULL"))
    if valid != loaded:
        raise AssertionError(f"accounting of {name} does not balance: {valid} != {loaded}")


def _record_source(backend: Backend, fmt: str) -> None:
    """Provenance in cdm_source: when the CDW last took source data, and from what."""
    with backend.transaction():
        backend.execute(
            "UPDATE cdm_source SET source_release_date = ?, cdm_etl_reference = ?",
            [dt.date.today(), f"pmhub ingest {fmt}"],
        )


def ingest_site(
    site: str,
    fmt: str,
    path: Path,
    *,
    encoding: str = "auto",
    allow_quarantine: bool = False,
    progress: Progress | None = None,
) -> IngestReport:
    """Import into a registered site; raise when rows were quarantined unless allowed.

    The load is committed either way: the error tells the caller (the CLI's exit code, a
    job's failed state) that the accounting needs a look.
    """
    from pmhub.settings import load_settings
    from pmhub.sites import SiteRegistry

    entry = SiteRegistry(load_settings()).get(site)
    command = ["pmhub", "ingest", "--site", site, "--format", str(fmt), str(path)]
    if encoding != "auto":
        command[-1:-1] = ["--encoding", str(encoding)]
    again = f"`{shlex.join(command)}`"
    with entry.connect() as backend:
        report = ingest(backend, fmt, path, encoding=encoding, progress=progress, resume=again)
    if report.quarantined and not allow_quarantine:
        raise RowsQuarantinedError(
            f"{report.quarantined:,} of {report.read:,} source rows were quarantined "
            f"(load {report.load_id}); the other {report.loaded:,} were loaded"
        )
    return report


def ingest_job(params: dict[str, Any]) -> dict[str, Any]:
    """The job the service starts: JSON-able parameters in, the accounting out.

    ``params``: site, format, path, and optionally encoding and allow_quarantine.
    """
    if not isinstance(params, dict):
        raise IngestError(f"job parameters must be an object, not {type(params).__name__}")
    missing = [k for k in ("site", "format", "path") if not params.get(k)]
    if missing:
        raise IngestError(
            f"job parameters lack {', '.join(missing)}",
            hint='Give {"site": NAME, "format": "synthea-csv|fhir|omop-csv", "path": PATH}.',
        )
    report = ingest_site(
        str(params["site"]),
        str(params["format"]),
        Path(str(params["path"])),
        encoding=str(params.get("encoding", "auto")),
        allow_quarantine=bool(params.get("allow_quarantine", False)),
    )
    return report.to_dict()
