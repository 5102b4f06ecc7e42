"""`make demo`: build the demo hospital network and show what was built.

Each later capability adds its step here (synthetic data, ingest, quality, …), so that
one command shows the platform end to end.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

from pmhub import outputs
from pmhub.cdm import schema
from pmhub.cli.common import make_console
from pmhub.errors import PmhubError, SiteExistsError
from pmhub.settings import load_settings
from pmhub.sites import Site, SiteRegistry

if TYPE_CHECKING:
    from pmhub.cohorts.federated import Combined


@dataclass(frozen=True)
class DemoSite:
    name: str
    kind: str  # university | general | county
    title_ko: str
    title_en: str


NETWORK = (
    DemoSite("chuncheon_univ", "university", "춘천대학교병원", "Chuncheon University Hospital"),
    DemoSite(
        "gangneung_general", "general", "강릉지역종합병원", "Gangneung Regional General Hospital"
    ),
    DemoSite("jeongseon_county", "county", "정선군립병원", "Jeongseon County Hospital"),
)


def build_network(registry: SiteRegistry) -> list[Site]:
    sites = []
    for demo in NETWORK:
        try:
            site = registry.add(demo.name, title_ko=demo.title_ko, title_en=demo.title_en)
        except SiteExistsError:
            site = registry.get(demo.name)
        with site.connect() as backend:
            schema.init_cdm(
                backend, source_name=demo.title_en, abbreviation=demo.name, holder=demo.title_ko
            )
        sites.append(site)
    return sites


# Demo size: `make demo` stays under half a minute, and the example cohorts are not tiny
# (type 2 diabetes ~780, new metformin users ~430, atrial fibrillation ~90 persons).
DEMO_PATIENTS = 10_000
DEMO_YEARS = 10


def load_synthetic_data(sites: list[Site], seed: int, home: Path, console: Console) -> None:
    """Fill the sites' CDWs with the synthetic network (skipped when already loaded); its
    ground truth, notes' gold spans and identifiers go to PMHUB_HOME/synth/."""
    from pmhub.synth.load import load_sites

    backends = {site.name: site.connect() for site in sites}
    truth_dir = home / "synth" / f"seed-{seed}"
    try:
        result = load_sites(
            backends, patients=DEMO_PATIENTS, years=DEMO_YEARS, seed=seed, truth_dir=truth_dir
        )
    finally:
        for backend in backends.values():
            backend.close()
    for name in result.skipped:
        console.print(f"  {name}: synthetic data (seed {seed}) already loaded")
    for name, tables in result.loaded.items():
        verb = "replaced with" if name in result.replaced else "loaded"
        console.print(
            f"  {name}: {verb} {tables.get('person', 0):,} persons, "
            f"{tables.get('visit_occurrence', 0):,} visits, "
            f"{tables.get('measurement', 0):,} measurements"
        )
    if result.loaded:
        console.print(f"  ground truth, notes' gold spans and identifiers: {truth_dir}")


def cohorts_step(registry: SiteRegistry, console: Console) -> None:
    """The example cohorts across the network: the hub sees only suppressed aggregates."""
    from pmhub.cohorts import library, network
    from pmhub.disclosure import note

    table = Table(
        "target cohort",
        "outcome",
        "sites",
        "persons (hub view)",
        "pooled incidence of the outcome / 1,000 PY (95 % CI)",
        title="cohorts across the network (suppressed aggregates)",
    )
    overview = network.library_overview(registry, registry.settings)
    for (_, outcome), (name, combined) in zip(network.DEMO_STUDIES, overview, strict=True):
        table.add_row(
            name,
            library.example(outcome).name if outcome else "(none: a count only)",
            str(len(combined.sites)),
            combined.persons.text(),
            _pooled(combined),
        )
    console.print(table)
    console.print(note(registry.settings.small_cell_threshold), style="dim")


def _pooled(combined: Combined) -> str:
    """The pooled rate with its interval, or why it is not shown."""
    rate = combined.pooled_rate
    if rate is None:
        return combined.not_pooled or ""
    if rate.rate is None or rate.lower is None or rate.upper is None:
        return rate.reason or "not computable"
    return f"{rate.rate:.1f} ({rate.lower:.1f}–{rate.upper:.1f}; {rate.events} events)"


def summary(sites: list[Site]) -> tuple[Table, int]:
    """The sites' table, and how many person records the sites hold between them."""
    table = Table("site", "title", "CDW", "CDM", "concepts", "persons", title="pmhub demo network")
    records = 0
    for site in sites:
        with site.connect() as backend:
            status = schema.status(backend)
        records += status.rows["person"]
        table.add_row(
            site.name,
            f"{site.title_ko} / {site.title_en}",
            site.cdw_url,
            status.cdm_version,
            f"{status.rows['concept']:,}",
            f"{status.rows['person']:,}",
        )
    return table, records


def linkage_note(records: int, people: int) -> str:
    """Why the sites' persons add up to more than the population: one record per hospital."""
    return (
        f"{records:,} person records across the sites for {people:,} people: each hospital "
        "keeps its own record of a patient it has seen, so a person treated at two hospitals "
        "is counted once at each (no identifiers are shared between sites; linking them is "
        "the linkage layer's work)."
    )


def quality_step(sites: list[Site], home: Path) -> list[Path]:
    """Profile and check every site that holds persons; a report each, and a comparison."""
    from pmhub.quality import service

    with_data = []
    for site in sites:
        with site.connect() as backend:
            if backend.count("person") > 0:
                with_data.append(site.name)
    reports = []
    outputs.make_folder(home / "reports", what="demo reports folder")
    for name in with_data:
        service.run_quality(name)
        reports.append(service.write_report(name, home / "reports" / f"quality-{name}.html"))
    if len(with_data) > 1:
        reports.append(service.write_comparison(with_data, home / "reports" / "quality-sites.html"))
    return reports


def safezone_step(sites: list[Site], console: Console) -> None:
    """People of every role, and one project taken to a released output."""
    from pmhub.platform.core import open_platform
    from pmhub.safezone import demo as safezone_demo

    pf = open_platform(load_settings())
    try:
        everyone = safezone_demo.people([s.name for s in sites])
        made = safezone_demo.ensure_people(pf, everyone)
        done = safezone_demo.finished_project(pf, [s.name for s in sites])
    finally:
        pf.close()
    table = Table("user", "role", "scope", "password", title="demo users (safe zone)")
    for person in everyone:
        table.add_row(person.username, person.role, person.scope or "", person.password)
    console.print(table)
    if made:
        console.print(f"  {len(made)} demo users created")
    state = "finished now" if done["created"] else "already finished"
    console.print(
        f"  project {safezone_demo.PROJECT}: application {done['application_id']} {state}"
        " (IRB, DRB, three stewards, extraction, sign-off, a released output)"
    )


def serve(port: int, console: Console) -> None:
    """The service and a job worker, until Ctrl-C."""
    import subprocess

    console.print(
        f"serving the safe zone on http://127.0.0.1:{port} (API docs at /docs); "
        "sign in with a demo user above; Ctrl-C stops it"
    )
    worker = subprocess.Popen(
        [sys.executable, "-c", "from pmhub.cli import main; main(['worker'])"]
    )
    try:
        from pmhub.cli import main as cli

        cli(["serve", "--port", str(port)])
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        worker.terminate()
        worker.wait(timeout=30)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--home", type=Path, default=None, help="platform home (PMHUB_HOME)")
    parser.add_argument("--port", type=int, default=8765, help="port of the service")
    parser.add_argument(
        "--serve", action="store_true", help="then serve the safe zone until Ctrl-C"
    )
    args = parser.parse_args(argv)
    if args.home is not None:
        os.environ["PMHUB_HOME"] = str(args.home)
    console = make_console()
    try:
        registry = SiteRegistry(load_settings())
        console.print(f"building the demo network in {registry.settings.home_dir().resolve()}")
        sites = build_network(registry)
        console.print(
            f"synthetic network: {DEMO_PATIENTS:,} people, {DEMO_YEARS} years, "
            f"seed {registry.settings.seed}"
        )
        load_synthetic_data(sites, registry.settings.seed, registry.settings.home_dir(), console)
        cohorts_step(registry, console)
        table, records = summary(sites)
        console.print(table)
        if records:
            console.print(linkage_note(records, DEMO_PATIENTS))
        for report in quality_step(sites, registry.settings.home_dir()):
            console.print(f"data quality: {report}")
        safezone_step(sites, console)
    except PmhubError as exc:
        console.print(f"[bold red]error:[/] {exc.message}\n[yellow]hint:[/] {exc.hint}")
        return exc.exit_code
    console.print(
        "next: `source .venv/bin/activate` puts `pmhub` on PATH, then try "
        "`pmhub sites list`, `pmhub cdm status --site chuncheon_univ` or "
        "`pmhub cohort incidence atrial_fibrillation stroke --all-sites`"
    )
    if args.serve:
        serve(args.port, console)
    return 0


if __name__ == "__main__":
    sys.exit(main())
