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
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from pmhub.cdm import schema as cdm_schema
from pmhub.cdm import spec
from pmhub.cdm.backends import Backend
from pmhub.errors import PmhubError
from pmhub.synth import omop, refdata
from pmhub.synth.chunk import simulate_chunk
from pmhub.synth.config import SynthConfig, make_config
from pmhub.synth.errors import InvalidSynthArgumentError, SynthLoadError

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
) -> LoadResult:
    """Generate the network whose sites are ``backends`` (named as in the site catalogue,
    in catalogue order) and write each site's tables into its CDW."""
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
        counts = _insert_all(config, backends, todo, names, progress)
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


def _insert_all(
    config: SynthConfig,
    backends: Mapping[str, Backend],
    todo: list[str],
    names: list[str],
    progress: Progress | None,
) -> dict[str, dict[str, int]]:
    counts: dict[str, dict[str, int]] = {name: {} for name in todo}

    def add(name: str, table: str, rows: int) -> None:
        counts[name][table] = counts[name].get(table, 0) + rows

    for name in todo:
        site = names.index(name)
        for table, data in omop.site_level(config, site).items():
            if table != "cdm_source":
                add(name, table, _insert(backends[name], table, data))
    for index in range(config.chunks):
        chunk = simulate_chunk(config, index)
        for name in todo:
            builder = omop.SiteTables(chunk, names.index(name), config)
            for table in omop.TABLES:
                add(name, table, _insert(backends[name], table, builder.build(table)))
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
