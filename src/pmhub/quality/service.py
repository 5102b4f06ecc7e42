"""The quality service: what `pmhub quality …` and the portal call.

``run_quality`` profiles a site's CDW and runs the checks, stores the run (exact counts, kept
at the site) and returns it; ``--out`` gets a shareable copy (small cells suppressed);
``write_report`` renders a site's stored run as one self-contained HTML file;
``write_comparison`` puts the latest runs of several sites side by side.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pmhub.cdm import schema
from pmhub.cdm.backends import Backend, duckdb_path
from pmhub.quality import definitions, engine, store, tuning
from pmhub.quality.catalog import read_catalog
from pmhub.quality.checks import checked_tables
from pmhub.quality.errors import (
    EmptyCdwError,
    QualityError,
    QualityOutputError,
    SiteWithoutCdwError,
)
from pmhub.quality.profiles import Profiler
from pmhub.quality.suppress import shareable
from pmhub.settings import Settings, load_settings
from pmhub.sites import Site, SiteRegistry

Progress = Callable[[str, int, int, str], None]  # (phase, done, total, what runs now)
MAX_TOP_N = 1000


@dataclass(frozen=True)
class QualityRun:
    document: dict[str, Any]
    path: Path  # where the run is stored under the home
    copy: Path | None  # the copy written to --out, if asked

    @property
    def run_id(self) -> str:
        return str(self.document["run_id"])

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [c for c in self.document["checks"] if c["status"] == engine.FAIL]


@contextmanager
def open_cdw(site: Site) -> Iterator[Backend]:
    """The site's CDW, refused clearly when it is missing, empty or of another CDM version."""
    if site.cdw_url.lower().startswith("duckdb:") and not duckdb_path(site.cdw_url).exists():
        raise SiteWithoutCdwError(
            f"site {site.name!r} has no CDW: {duckdb_path(site.cdw_url)} does not exist",
            hint=f"Create it with `pmhub cdm init --site {site.name}` and load data into it.",
        )
    with site.connect() as backend:
        schema.require_cdm(backend)
        yield backend


def _row_counts(backend: Backend) -> dict[str, int]:
    return {t.name: backend.count(t.name) for t in checked_tables()}


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def run_quality(
    site_name: str,
    *,
    settings: Settings | None = None,
    out_dir: Path | None = None,
    check_file: Path | None = None,
    as_of: dt.date | None = None,
    top_n: int = 20,
    progress: Progress | None = None,
) -> QualityRun:
    """Profile the site's CDW and run every check; store and return the run."""
    settings = settings or load_settings()
    _expect("site_name", site_name, str)
    _expect("out_dir", out_dir, Path, optional=True)
    _expect("check_file", check_file, Path, optional=True)
    _expect("as_of", as_of, dt.date, optional=True)
    if isinstance(top_n, bool) or not isinstance(top_n, int) or not 1 <= top_n <= MAX_TOP_N:
        raise QualityError(f"top_n must be a whole number from 1 to {MAX_TOP_N}, not {top_n!r}")
    site = SiteRegistry(settings).get(site_name)
    defs = definitions.load(check_file)  # a bad check file stops before the CDW is opened
    started = _now()
    as_of = as_of or started.date()
    seconds: dict[str, float] = {}
    with open_cdw(site) as backend:
        clock = time.perf_counter()
        counts = _row_counts(backend)
        if counts.get("person", 0) == 0:
            raise EmptyCdwError(f"site {site.name!r} has a CDM schema but no persons in its CDW")
        cdm = _cdm_source(backend)
        catalog = read_catalog(backend)
        tuning.prepare(backend)
        seconds["row counts"] = time.perf_counter() - clock
        profiler = Profiler(backend, counts, catalog, top_n=top_n)

        stop = tuning.Stop()

        def checks(on: Backend) -> engine.CheckRun:
            return engine.run_checks(
                on,
                defs,
                as_of=as_of,
                row_counts=counts,
                catalog=catalog,
                progress=stop.guard(_phase(progress, "checks")),
            )

        with tuning.second_connection(site, backend) as other:
            if other is None:  # one connection: one after the other
                profiles = profiler.run(_phase(progress, "profiles"))
                run = checks(backend)
            else:  # profiles and checks at once, each on its own connection
                with ThreadPoolExecutor(max_workers=1) as pool:
                    pending = pool.submit(checks, other)
                    try:
                        profiles = profiler.run(_phase(progress, "profiles"))
                        run = pending.result()
                    except BaseException:  # Ctrl-C or an error: do not wait for the checks
                        stop.now(other)
                        raise
        seconds.update({f"profile {k}": v for k, v in profiler.seconds.items()})
        seconds.update({f"checks {k}": v for k, v in run.seconds.items()})
    finished = _now()
    document = {
        "format": store.FORMAT,
        "run_id": started.strftime("%Y%m%dT%H%M%S%fZ"),
        "site": site.name,
        "site_title": site.title_en or site.title_ko or site.name,
        "site_title_ko": site.title_ko,
        "started_at": started.isoformat(timespec="seconds"),
        "finished_at": finished.isoformat(timespec="seconds"),
        "as_of": as_of.isoformat(),
        "check_file": defs.source,
        "cdm": cdm,
        "row_counts": counts,
        "summary": run.summary(),
        "checks": [r.to_json() for r in run.results],
        "profiles": profiles,
        "seconds": {k: round(v, 3) for k, v in seconds.items()},
    }
    home = settings.home_dir()
    path = store.save(home, document)
    copy = None
    if out_dir is not None:
        copy = out_dir / f"quality-{site.name}-{document['run_id']}.json"
        store.write_json(copy, shareable(document, settings.small_cell_threshold))
    return QualityRun(document, path, copy)


def export_run(
    site_name: str, path: Path, *, settings: Settings | None = None, run_id: str | None = None
) -> Path:
    """A stored run (the latest, or ``run_id``) as JSON that may leave the site: small cells
    suppressed (settings.small_cell_threshold), no CDW URL."""
    settings = settings or load_settings()
    _expect("path", path, Path)
    if path.suffix.lower() != ".json":
        raise QualityOutputError(f"{path} does not end in .json")
    document = load_run(site_name, settings=settings, run_id=run_id)
    store.write_json(path, shareable(document, settings.small_cell_threshold), make_folder=False)
    return path


def _expect(name: str, value: object, kind: type, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if not isinstance(value, kind):
        raise QualityError(
            f"{name} must be a {kind.__name__}, not {type(value).__name__} {str(value)[:40]!r}",
            hint="Pass the argument with the type the API documents.",
        )


def _phase(progress: Progress | None, phase: str) -> Callable[[int, int, str], None] | None:
    if progress is None:
        return None

    def report(done: int, total: int, what: str) -> None:
        progress(phase, done, total, what)

    return report


def _cdm_source(backend: Backend) -> dict[str, Any]:
    rows = backend.fetchall(
        "SELECT cdm_source_name, cdm_version, vocabulary_version, source_release_date "
        "FROM cdm_source"
    )
    name, version, vocabulary, released = rows[0] if rows else (None, None, None, None)
    return {
        "url": backend.url,
        "backend": backend.dialect.name,
        "source_name": name,
        "cdm_version": version,
        "vocabulary_version": vocabulary,
        "source_release_date": str(released) if released else None,
    }


def load_run(
    site_name: str, *, settings: Settings | None = None, run_id: str | None = None
) -> dict[str, Any]:
    """A stored run of a registered site: the one with ``run_id``, else the latest."""
    settings = settings or load_settings()
    _expect("site_name", site_name, str)
    _expect("run_id", run_id, str, optional=True)
    site = SiteRegistry(settings).get(site_name)
    return store.load_run(settings.home_path(), site.name, run_id)


def write_report(
    site_name: str,
    html: Path,
    *,
    settings: Settings | None = None,
    run_id: str | None = None,
    exact: bool = False,
) -> Path:
    """The site's run (the latest, or ``run_id``) as one self-contained HTML file, small
    cells suppressed; ``exact`` for the site-internal report of exact counts."""
    from pmhub.quality.report import render_site, write_html

    settings = settings or load_settings()
    _expect("html", html, Path)
    document = load_run(site_name, settings=settings, run_id=run_id)
    return write_html(html, render_site(document, settings.small_cell_threshold, exact=exact))


MAX_SITES = 20


def write_comparison(
    site_names: Sequence[str], html: Path, *, settings: Settings | None = None
) -> Path:
    """The latest runs of several sites side by side, small cells suppressed."""
    from pmhub.quality.compare import render_comparison
    from pmhub.quality.report import write_html

    settings = settings or load_settings()
    _expect("html", html, Path)
    if isinstance(site_names, str) or not all(isinstance(n, str) for n in site_names):
        raise QualityError("site_names must be a list of site names")
    names = list(dict.fromkeys(n.strip() for n in site_names if n.strip()))
    if not 2 <= len(names) <= MAX_SITES:
        raise QualityError(
            f"compare needs 2 to {MAX_SITES} different sites, not {len(names)}",
            hint="Name them with --sites A,B,C (see `pmhub sites list`).",
        )
    documents = [load_run(n, settings=settings) for n in names]
    return write_html(html, render_comparison(documents, settings.small_cell_threshold))


def list_runs(site_name: str, *, settings: Settings | None = None) -> list[dict[str, Any]]:
    """A registered site's runs in the index, oldest first."""
    settings = settings or load_settings()
    site = SiteRegistry(settings).get(site_name)
    return sorted(store.runs(settings.home_path(), site.name), key=lambda r: str(r["run_id"]))
