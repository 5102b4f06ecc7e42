"""Straight into the sites' CDWs, the way OHDSI's Eunomia ships a ready CDM: the
generator's OMOP tables go through ``Backend.insert_batches``, one transaction per site.

Idempotent: a site remembers what it holds in the OMOP ``metadata`` table (name
``pmhub.synth``). The same network again is skipped; another synthetic network replaces
the old one; a CDW that holds data not made by pmhub synth is never touched.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import shutil
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from pmhub.cdm import schema as cdm_schema
from pmhub.cdm import spec
from pmhub.cdm.backends import Backend
from pmhub.errors import PmhubError
from pmhub.synth import omop, refdata, truth
from pmhub.synth.chunk import simulate_chunk
from pmhub.synth.config import SynthConfig, make_config
from pmhub.synth.errors import InvalidSynthArgumentError, SynthLoadError
from pmhub.synth.output import csv_bytes, header
from pmhub.synth.service import default_workers

MARKER = "pmhub.synth"
CLINICAL = (*omop.TABLES, "care_site", "provider")
# Tables cleared before a replacement: everything the generator writes, plus the marker.
CLEARED = (*CLINICAL,)
Progress = Callable[[int, int], None]


@dataclass
class LoadResult:
    loaded: dict[str, dict[str, int]] = field(default_factory=dict)  # site -> table -> rows
    skipped: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)


def marker_value(config: SynthConfig) -> str:
    return json.dumps(
        {
            "seed": config.seed,
            "patients": config.patients,
            "years": config.years,
            "sites": config.sites,
            "end_year": config.end_year,
        },
        sort_keys=True,
    )


def _existing(backend: Backend) -> str | None:
    rows = backend.fetchall("SELECT value_as_string FROM metadata WHERE name = ?", [MARKER])
    return str(rows[0][0]) if rows else None


def _decide(backend: Backend, name: str, wanted: str) -> str:
    """'skip', 'replace' or 'load' for one site."""
    try:
        cdm_schema.require_cdm(backend)
    except PmhubError as exc:
        raise SynthLoadError(f"site {name!r}: {exc.message}") from exc
    current = _existing(backend)
    if current == wanted:
        return "skip"
    if current is not None:
        return "replace"
    if backend.count("person") > 0:
        raise SynthLoadError(
            f"site {name!r} already holds {backend.count('person'):,} persons "
            "not made by pmhub synth",
            hint="Load synthetic data only into an empty CDW (or a new site); nothing was written.",
        )
    return "load"


def load_sites(
    backends: Mapping[str, Backend],
    *,
    patients: Any = 2_000,
    years: Any = 10,
    seed: Any = 20261122,
    end_year: Any = 2025,
    progress: Progress | None = None,
    truth_dir: Path | None = None,
) -> LoadResult:
    """Generate the network whose sites are ``backends`` (named as in the site catalogue,
    in catalogue order) and write each site's tables into its CDW. With ``truth_dir``, the
    files that do not belong in a CDW go there: the ground truth, and per site the notes'
    gold-standard spans and the identifiers (replacing what the folder held)."""
    names = list(backends)
    catalogue = [s.name for s in refdata.sites()]
    if not names or names != catalogue[: len(names)]:
        raise InvalidSynthArgumentError(
            "sites must be the first sites of the catalogue in order "
            f"({', '.join(catalogue[:3])}, ...), not {names}"
        )
    config = make_config(
        sites=len(names),
        patients=patients,
        years=years,
        seed=seed,
        end_year=end_year,
        max_sites=len(catalogue),
    )
    wanted = marker_value(config)
    if truth_dir is not None:
        _check_truth_dir(truth_dir)
    plan = {name: _decide(backends[name], name, wanted) for name in names}
    result = LoadResult(skipped=[n for n, p in plan.items() if p == "skip"])
    todo = [n for n in names if plan[n] != "skip"]
    if not todo:
        return result
    with contextlib.ExitStack() as stack:
        for name in todo:
            stack.enter_context(backends[name].transaction())
            if plan[name] == "replace":
                _clear(backends[name])
                result.replaced.append(name)
        sidecar = _Sidecar(truth_dir, config, names) if truth_dir is not None else None
        counts = _insert_all(config, backends, todo, names, progress, sidecar)
        if sidecar is not None:
            sidecar.finish()
        for name in todo:
            _mark(backends[name], wanted)
    result.loaded = counts
    return result


def _clear(backend: Backend) -> None:
    for table in CLEARED:
        backend.execute(f"DELETE FROM {table}")
    backend.execute("DELETE FROM metadata WHERE name = ?", [MARKER])


def _insert(backend: Backend, table: str, data: pa.Table) -> int:
    if data.num_rows == 0:
        return 0
    schema = spec.arrow_schema(spec.table(table))
    return backend.insert_batches(
        table, schema, data.cast(schema).to_batches(max_chunksize=200_000)
    )


@dataclass(frozen=True)
class _Job:
    """What a worker builds for one chunk: the OMOP tables of the sites to load and, with a
    sidecar, the files that do not belong in a CDW."""

    config: SynthConfig
    todo: tuple[int, ...]  # site indices to load
    sites: int
    sidecar: bool

    def __call__(self, index: int) -> tuple[dict[int, dict[str, pa.Table]], dict[str, bytes]]:
        truth_years = truth.index_years(self.config) if self.sidecar else ()
        chunk = simulate_chunk(self.config, index, truth_years)
        tables: dict[int, dict[str, pa.Table]] = {}
        files: dict[str, bytes] = {}
        for site in range(self.sites):
            if site not in self.todo and not self.sidecar:
                continue
            builder = omop.SiteTables(chunk, site, self.config)  # notes are made once
            if site in self.todo:
                tables[site] = {table: builder.build(table) for table in omop.TABLES}
            if self.sidecar:
                name = refdata.sites()[site].name
                person_ids = chunk.site_person[:, site].tolist()
                files.update(omop.note_files(name, builder.notes, person_ids))
                files[f"{name}/person_identifiers.csv"] = csv_bytes(omop.identifiers(chunk, site))
        if self.sidecar:
            files.update(truth.render(chunk, self.config))
        return tables, files


def _built(job: _Job, chunks: int, workers: int) -> Iterator[tuple[Any, dict[str, bytes]]]:
    """Each chunk's tables and files in chunk order; built in worker processes when there
    are several chunks (the same bytes either way)."""
    if workers <= 1 or chunks == 1:
        for index in range(chunks):
            yield job(index)
        return
    # forked workers only compute (numpy, Arrow); the parent alone uses the databases
    with ProcessPoolExecutor(max_workers=workers) as pool:
        yield from pool.map(job, range(chunks))


def _insert_all(
    config: SynthConfig,
    backends: Mapping[str, Backend],
    todo: list[str],
    names: list[str],
    progress: Progress | None,
    sidecar: _Sidecar | None,
) -> dict[str, dict[str, int]]:
    counts: dict[str, dict[str, int]] = {name: {} for name in todo}

    def add(name: str, table: str, rows: int) -> None:
        counts[name][table] = counts[name].get(table, 0) + rows

    for name in todo:
        site = names.index(name)
        for table, data in omop.site_level(config, site).items():
            if table != "cdm_source":
                add(name, table, _insert(backends[name], table, data))
    job = _Job(config, tuple(names.index(n) for n in todo), len(names), sidecar is not None)
    workers = default_workers()
    for index, (tables, files) in enumerate(_built(job, config.chunks, workers)):
        for name in todo:
            for table, data in tables[names.index(name)].items():
                add(name, table, _insert(backends[name], table, data))
        if sidecar is not None:
            sidecar.add(files)
        if progress is not None:
            progress(index + 1, config.chunks)
    return counts


def _mark(backend: Backend, value: str) -> None:
    rows = backend.fetchall("SELECT coalesce(max(metadata_id), 0) FROM metadata")
    backend.execute(
        "INSERT INTO metadata (metadata_id, metadata_concept_id, metadata_type_concept_id, "
        "name, value_as_string, metadata_date) VALUES (?, 0, 0, ?, ?, ?)",
        [int(rows[0][0]) + 1, MARKER, value, dt.date.today()],
    )


def _check_truth_dir(folder: Path) -> None:
    """The folder is replaced: refuse one that holds anything but an earlier ground truth."""
    resolved = folder.resolve()
    if resolved in (Path(resolved.anchor), Path.home().resolve()):
        raise InvalidSynthArgumentError(f"refusing to use {resolved} for the ground truth")
    if folder.exists() and not folder.is_dir():
        raise InvalidSynthArgumentError(f"{folder} exists and is not a folder")
    if (
        folder.is_dir()
        and any(folder.iterdir())
        and not (folder / truth.FOLDER / "summary.json").is_file()
    ):
        raise InvalidSynthArgumentError(
            f"{folder} is not empty and holds no earlier pmhub ground truth",
            hint="Give an empty or new folder for the ground truth; nothing was written.",
        )


class _Sidecar:
    """Ground truth, notes with their spans, and identifiers, next to the loaded CDWs."""

    def __init__(self, folder: Path, config: SynthConfig, names: list[str]) -> None:
        self.folder = folder
        self.config = config
        self.names = names
        if folder.exists():
            shutil.rmtree(folder)
        starts = dict(truth.headers())
        for name in names:
            starts.update(omop.note_headers(name))
            starts[f"{name}/person_identifiers.csv"] = header(omop.IDENTIFIER_COLUMNS)
        for rel, data in starts.items():
            path = folder / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)

    def _append(self, parts: dict[str, bytes]) -> None:
        for rel, data in parts.items():
            with (self.folder / rel).open("ab") as handle:
                handle.write(data)

    def add(self, files: dict[str, bytes]) -> None:
        self._append(files)

    def finish(self) -> None:
        truth.finish(self.folder, self.config)
