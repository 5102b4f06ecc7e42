"""Synthea CSV exports (Synthea's CSV File Data Dictionary, v2.7 and v3.x layouts)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from pmhub.ingest import clinical
from pmhub.ingest.engine import Engine
from pmhub.ingest.errors import EmptyInputError, InputFormatError, InputNotFoundError
from pmhub.ingest.files import Header, SourceFile, fingerprint, folder_files, read_header
from pmhub.ingest.mapping import earlier_persons
from pmhub.ingest.plan import Plan
from pmhub.ingest.stage import restore_raw, stage_csv


def discover(path: Path, encoding: str) -> Plan:
    """The folder's files: those the ETL reads (fingerprinted) and those it ignores."""
    if not path.exists():
        raise InputNotFoundError(f"{path} does not exist")
    if not path.is_dir():
        raise InputFormatError(
            f"{path} is a file; a Synthea CSV export is a folder (patients.csv, …)",
            hint="Give the folder Synthea wrote (output/csv).",
        )
    plan = Plan(fmt="synthea-csv", root=path)
    wanted: dict[str, Path] = {}
    for file in folder_files(path, plan.ignored):
        stem = file.stem.lower()
        if file.suffix.lower() != ".csv":
            plan.ignored[file.name] = "not a CSV file"
        elif stem in clinical.COLUMNS:
            wanted[stem] = file
        elif stem in clinical.IGNORED_FILES:
            plan.ignored[file.name] = "not mapped to clinical tables by ETL-Synthea's conventions"
        else:
            plan.ignored[file.name] = "not a Synthea CSV file"
    # checksums on both cores (BLAKE3 releases the GIL), largest files first so that
    # the two threads finish together; the plan keeps the folder's order
    with ThreadPoolExecutor(max_workers=2) as pool:
        prints = {
            stem: pool.submit(fingerprint, file, file.name, encoding)
            for stem, file in sorted(wanted.items(), key=lambda item: -item[1].stat().st_size)
        }
        plan.sources.update((stem, prints[stem].result()) for stem in wanted)
    if not plan.sources:
        raise EmptyInputError(
            f"{path} holds none of Synthea's clinical CSV files "
            f"({', '.join(f'{n}.csv' for n in clinical.COLUMNS)})"
        )
    return plan


def stage(engine: Engine, plan: Plan) -> None:
    # Ids of other rows (an event's PATIENT and ENCOUNTER, an encounter's PATIENT, PROVIDER
    # and ORGANIZATION) are only joined on: staged as their hashes, unless earlier loads'
    # persons are to be looked up by them. The transform stages a file again with the
    # texts when a row of it is set aside (its reason quotes them).
    earlier = earlier_persons(engine, plan.load_id)
    for name, source in plan.sources.items():
        header = _header(source, name)
        # (all of a file's or none: the transform tells a hashed stage by its PATIENT)
        hashed = () if earlier else clinical.HASHED.get(name, ())
        # only the columns the transform reads (descriptions, costs and reasons are not)
        plan.staged[name] = stage_csv(
            engine,
            source,
            header,
            name,
            clinical.COLUMNS[name],
            hashed if set(hashed) <= set(header.columns) else (),
        )
        plan.delimiters[name] = header.delimiter


def _restage(engine: Engine, plan: Plan, name: str) -> None:
    """Stage ``name`` again with the texts of its ids (a row of it is set aside, and its
    reason quotes them): in file order, as the first time."""
    source = plan.sources[name]
    with engine.ordered():
        plan.staged[name] = stage_csv(
            engine, source, _header(source, name), name, clinical.COLUMNS[name]
        )


def transform(engine: Engine, plan: Plan, bases: dict[str, int], now: str) -> None:
    files = plan.file_names()
    clinical.Transform(
        engine,
        bases,
        now,
        present=set(plan.sources),
        delimiters=plan.delimiters,
        files=files,
        load_id=plan.load_id,
        restage=lambda name: _restage(engine, plan, name),
    ).run()
    for name, staged in plan.staged.items():
        restore_raw(engine, staged, files[name])


def publish_order(engine: Engine) -> list[str]:
    return list(clinical.PUBLISH_ORDER)


def derived(plan: Plan) -> list[str]:
    return ["observation_period", "condition_era", "drug_era"]


def _header(source: SourceFile, name: str) -> Header:
    expected = set(clinical.COLUMNS[name])
    header = read_header(source, expected)
    missing = [c for c in clinical.REQUIRED[name] if c not in header.columns]
    if name == "procedures" and "start" in missing and "date" in header.columns:
        missing.remove("start")  # Synthea 2.x
    if missing:
        raise InputFormatError(
            f"{source.name} lacks the column(s) {', '.join(c.upper() for c in missing)}; "
            f"its header is {', '.join(header.columns[:12])}"
        )
    return header
