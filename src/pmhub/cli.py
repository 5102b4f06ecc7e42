"""The ``pmhub`` command: a thin front door; every verb calls a service function."""

from __future__ import annotations

import datetime as dt
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from pmhub import __version__
from pmhub.cdm import schema
from pmhub.cohorts import definition as cohorts_definition
from pmhub.cohorts import library as cohorts_library
from pmhub.errors import PmhubError
from pmhub.settings import Settings, load_settings

if TYPE_CHECKING:
    from pmhub.cohorts.characterize import Table1
    from pmhub.cohorts.federated import Combined
    from pmhub.cohorts.service import OutcomeAnalysis
from pmhub.sites import Site, SiteRegistry

if TYPE_CHECKING:
    from pmhub.ingest.service import IngestReport

app = typer.Typer(
    name="pmhub",
    help="pmhub — Precision Medicine Hub: OMOP CDWs for a hospital network.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
sites_app = typer.Typer(help="Register and list hospital sites.", no_args_is_help=True)
cdm_app = typer.Typer(
    help="Create and inspect a site's OMOP CDM v5.4 schema.", no_args_is_help=True
)
vocab_app = typer.Typer(
    help="Load the standard vocabulary into a site's CDW.", no_args_is_help=True
)
app.add_typer(sites_app, name="sites")
app.add_typer(cdm_app, name="cdm")
app.add_typer(vocab_app, name="vocab")

console = Console()
err_console = Console(stderr=True)

SiteOption = Annotated[
    str, typer.Option("--site", "-s", help="Site name (see `pmhub sites list`).")
]


def settings() -> Settings:
    return load_settings()


def registry() -> SiteRegistry:
    return SiteRegistry(settings())


def version_callback(value: bool) -> None:
    if value:
        console.print(f"pmhub {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks of errors.")] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=version_callback, is_eager=True, help="Print the version."
        ),
    ] = False,
) -> None:
    if debug:
        os.environ["PMHUB_DEBUG"] = "1"


# --- sites ------------------------------------------------------------------------------


@sites_app.command("add")
def sites_add(
    name: Annotated[str, typer.Argument(help="Short name: lowercase letters, digits, _.")],
    cdw: Annotated[
        str | None,
        typer.Option(
            help="CDW URL: duckdb:///path.duckdb, postgresql://… or spark:///parquet-folder "
            "(default: DuckDB in PMHUB_HOME)."
        ),
    ] = None,
    title_ko: Annotated[str, typer.Option(help="Korean title.")] = "",
    title_en: Annotated[str, typer.Option(help="English title.")] = "",
) -> None:
    """Register a hospital site and its CDW."""
    site = registry().add(name, cdw, title_ko=title_ko, title_en=title_en)
    console.print(f"added site [bold]{site.name}[/] → {site.cdw_url}")


@sites_app.command("list")
def sites_list() -> None:
    """List the registered sites."""
    sites = registry().list()
    if not sites:
        console.print("no sites yet; add one with `pmhub sites add NAME`")
        return
    table = Table("name", "title (ko)", "title (en)", "CDW")
    for site in sites:
        table.add_row(site.name, site.title_ko, site.title_en, site.cdw_url)
    console.print(table)


@sites_app.command("remove")
def sites_remove(name: Annotated[str, typer.Argument(help="Site name.")]) -> None:
    """Unregister a site. Its CDW is left as it is."""
    site = registry().remove(name)
    console.print(f"removed site [bold]{site.name}[/]; its CDW at {site.cdw_url} was kept")


# --- cdm --------------------------------------------------------------------------------


def _site(name: str) -> Site:
    return registry().get(name)


@cdm_app.command("init")
def cdm_init(site: SiteOption) -> None:
    """Create the OMOP CDM v5.4 schema and load the vocabulary subset (idempotent)."""
    entry = _site(site)
    with entry.connect() as backend:
        result = schema.init_cdm(
            backend,
            source_name=entry.title_en or entry.name,
            abbreviation=entry.name,
            holder=entry.title_ko or entry.title_en or entry.name,
        )
    made = len(result.created_tables)
    console.print(f"site [bold]{site}[/]: CDM v5.4 ready ({made} tables created)")
    if result.vocabulary_rows:
        console.print(
            f"  vocabulary subset loaded: {result.vocabulary_rows.get('concept', 0):,} concepts"
        )


@cdm_app.command("status")
def cdm_status(site: SiteOption) -> None:
    """Row counts per table and the CDM and vocabulary versions."""
    with _site(site).connect() as backend:
        result = schema.status(backend)
    table = Table("table", "rows", title=f"{site}: OMOP CDM {result.cdm_version}")
    for name, rows in result.rows.items():
        table.add_row(name, f"{rows:,}")
    console.print(table)
    console.print(f"vocabulary: {result.vocabulary_version}; CDW: {result.url}")


# --- vocab ------------------------------------------------------------------------------


@vocab_app.command("load")
def vocab_load(
    folder: Annotated[Path, typer.Argument(help="Unzipped Athena download (CONCEPT.csv, …).")],
    site: SiteOption,
) -> None:
    """Replace the site's vocabulary with a full Athena download (all tables or none)."""
    with _site(site).connect() as backend, _progress() as bar:
        tasks: dict[str, TaskID] = {}

        def report(table: str, done: int, total: int) -> None:
            if table not in tasks:
                tasks[table] = bar.add_task(table, total=total)
            bar.update(tasks[table], completed=done)

        result = schema.load_vocabulary(backend, folder, report)
    for table, rows in result.rows.items():
        console.print(f"  {table}: {rows:,} rows")
    console.print(f"site [bold]{site}[/]: vocabulary loaded from {result.source}")


# --- synth ------------------------------------------------------------------------------


@app.command("synth")
def synth(
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder (new or empty).")],
    sites: Annotated[int, typer.Option(help="Hospitals in the network (1-12).")] = 3,
    patients: Annotated[int, typer.Option(help="People in the population.")] = 1_000,
    years: Annotated[int, typer.Option(help="Years of history.")] = 10,
    seed: Annotated[int, typer.Option(help="Seed: the same seed gives the same bytes.")] = 20261122,
    fmt: Annotated[str, typer.Option("--format", "-f", help="omop | synthea-csv | fhir")] = "omop",
    end_year: Annotated[int, typer.Option(help="Last simulated calendar year.")] = 2025,
    overwrite: Annotated[bool, typer.Option(help="Replace a non-empty output folder.")] = False,
    force: Annotated[bool, typer.Option(help="Allow sizes above the documented limits.")] = False,
    workers: Annotated[
        int, typer.Option(help="Worker processes (output does not depend on it).")
    ] = 2,
) -> None:
    """Generate a synthetic Korean hospital network (Gangwon) with known ground truth."""
    from rich.progress import MofNCompleteColumn

    from pmhub.synth.service import generate

    columns = (TextColumn("{task.description:<22}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, console=err_console) as bar:
        task = bar.add_task("synth (chunks)", total=None)

        def report(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        result = generate(
            out,
            sites=sites,
            patients=patients,
            years=years,
            seed=seed,
            fmt=fmt,
            end_year=end_year,
            overwrite=overwrite,
            force=force,
            workers=workers,
            progress=report,
        )
    table = Table("file", "rows", title=f"pmhub synth: {result.format} in {result.folder}")
    for name, rows in sorted(result.rows.items()):
        table.add_row(name, f"{rows:,}")
    console.print(table)


# --- ingest ---------------------------------------------------------------------------


@app.command("ingest")
def ingest_command(
    path: Annotated[Path, typer.Argument(help="Export folder (or FHIR JSON/NDJSON file).")],
    site: SiteOption,
    fmt: Annotated[
        str, typer.Option("--format", "-f", help="synthea-csv, fhir or omop-csv.")
    ] = "synthea-csv",
    allow_quarantine: Annotated[
        bool,
        typer.Option(
            "--allow-quarantine", help="Exit 0 even when rows were set aside in quarantine."
        ),
    ] = False,
    encoding: Annotated[
        str, typer.Option(help="auto (UTF-8, UTF-8 with BOM or CP949), utf-8 or cp949.")
    ] = "auto",
) -> None:
    """Import source data into a site's CDW; print where every source row went."""
    from pmhub.ingest import ingest_site
    from pmhub.ingest.errors import RowsQuarantinedError

    def say(message: str) -> None:
        err_console.print(f"[dim]{message}…[/]", highlight=False)

    report = ingest_site(site, fmt, path, encoding=encoding, allow_quarantine=True, progress=say)
    _print_ingest(site, report)
    if report.quarantined and not allow_quarantine:
        raise RowsQuarantinedError(
            f"{report.quarantined:,} of {report.read:,} source rows were quarantined "
            f"(load {report.load_id}); the other {report.loaded:,} were loaded"
        )


def _print_ingest(site: str, report: IngestReport) -> None:
    files = Table("file", "read", "loaded", "quarantined", "encoding", title="source rows")
    for f in report.files:
        files.add_row(f.file, f"{f.read:,}", f"{f.loaded:,}", f"{f.quarantined:,}", f.encoding)
    files.add_row("total", f"{report.read:,}", f"{report.loaded:,}", f"{report.quarantined:,}", "")
    console.print(files)
    tables = Table("CDM table", "rows written", title="CDM rows")
    for name, rows in report.tables.items():
        tables.add_row(name, f"{rows:,}")
    console.print(tables)
    if report.reasons:
        reasons = Table("file", "field", "reason", "rows", title="quarantined (commonest)")
        for file, field, why, rows in report.reasons:
            reasons.add_row(file, field, why, f"{rows:,}")
        console.print(reasons)
    for name, rows in report.unmapped.items():
        console.print(f"  {name}: {rows:,} rows with codes no vocabulary maps (concept 0)")
    for name, why in report.ignored.items():
        console.print(f"  ignored {name}: {why}")
    state = "already loaded; nothing changed" if report.already_loaded else "loaded"
    console.print(
        f"site [bold]{site}[/]: load {report.load_id} {state} "
        f"(read {report.read:,} = loaded {report.loaded:,} + quarantined {report.quarantined:,})"
    )


# --- privacy ---------------------------------------------------------------------------

privacy_app = typer.Typer(
    help="Pseudonymize and anonymize data and notes (PIPC / health-data guidelines).",
    no_args_is_help=True,
)
app.add_typer(privacy_app, name="privacy")


@privacy_app.command("key-create")
def privacy_key_create(
    project: Annotated[str, typer.Option(help="Project whose pseudonyms the key makes.")],
) -> None:
    """Create a project's pseudonymization key in the key store (never shown, never replaced)."""
    from pmhub.privacy.keys import KeyStore

    path = KeyStore(settings()).create(project)
    console.print(f"created the key of project [bold]{project}[/] in {path.parent} (mode 600)")


@privacy_app.command("anonymize")
def privacy_anonymize(
    input_path: Annotated[
        Path, typer.Option("--input", help="CSV/Parquet file, folder of tables, or DuckDB file.")
    ],
    policy_path: Annotated[Path, typer.Option("--policy", help="Policy YAML.")],
    out: Annotated[Path, typer.Option(help="New folder for the release and its report.")],
    output_format: Annotated[str, typer.Option("--format", help="same, csv or parquet.")] = "same",
    memory_limit: Annotated[
        str | None, typer.Option(help="Query engine memory, e.g. 2GB; it spills beyond it.")
    ] = None,
) -> None:
    """Release a dataset under its policy: data files, report.json and report.html."""
    from pmhub.privacy import service

    with _progress() as bar:
        tasks: dict[str, TaskID] = {}

        def report(table: str, done: int, total: int) -> None:
            if table not in tasks:
                tasks[table] = bar.add_task(table, total=total)
            bar.update(tasks[table], completed=done)

        release = service.anonymize_files(
            input_path,
            policy_path,
            out,
            settings(),
            output_format=output_format,
            progress=report,
            memory_limit=memory_limit,
        )
    for name, table in release.report["tables"].items():
        achieved = table["achieved"]
        console.print(
            f"table [bold]{name}[/]: {table['rows_out']:,} rows, models hold:"
            f" {achieved['models_hold']}, suppressed {achieved['suppressed']:,},"
            f" smallest class {achieved['min_class']}"
        )
        if table["utility"]:
            console.print(
                f"  loss {table['utility']['loss']:.4f}; levels {table['search']['levels']}"
            )
    console.print(f"release and adequacy report written to {release.out}")


@privacy_app.command("risk")
def privacy_risk(
    input_path: Annotated[Path, typer.Option("--input", help="CSV or Parquet file.")],
    qi: Annotated[str, typer.Option(help="Quasi-identifier columns, comma-separated.")],
    threshold: Annotated[float, typer.Option(help="Risk threshold (0.2 = classes < 5).")] = 0.2,
    population_size: Annotated[
        int | None, typer.Option(help="People in the population the data is drawn from.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Re-identification risk (prosecutor, journalist, marketer) of the data as it stands."""
    import json

    from pmhub.privacy import service

    columns = [c.strip() for c in qi.split(",") if c.strip()]
    risk = service.risk_of(
        input_path, columns, threshold=threshold, population_size=population_size
    )
    if as_json:
        console.print_json(json.dumps(risk.as_dict()))
        return
    table = Table("measure", "highest", "average", f"records > {threshold:g}")
    for name, m in (("prosecutor", risk.prosecutor), ("journalist", risk.journalist)):
        table.add_row(name, f"{m.highest:.4f}", f"{m.average:.4f}", f"{m.share_above:.2%}")
    console.print(table)
    console.print(
        f"marketer {risk.marketer:.4f}; {risk.records:,} records in {risk.classes:,} classes;"
        f" sample uniques {risk.sample_uniques:,} ({risk.sample_unique_share:.2%});"
        f" estimated population uniques {risk.population_uniques_estimate:,.1f} ({risk.model})"
    )


@privacy_app.command("deid-text")
def privacy_deid_text(
    input_path: Annotated[
        Path,
        typer.Option(
            "--input", help="Notes CSV: note_id,person_id,note_date,note_title,note_text."
        ),
    ],
    out: Annotated[Path, typer.Option(help="New folder for notes.csv and summary.json.")],
    project: Annotated[str, typer.Option(help="Project whose key pseudonymizes and shifts dates.")],
    mode: Annotated[str, typer.Option(help="tag ([NAME]) or surrogate (made-up values).")] = "tag",
    names: Annotated[
        Path | None, typer.Option(help="CSV person_id,name of patients' and staff names.")
    ] = None,
    max_days: Annotated[int, typer.Option(help="Largest date shift in days.")] = 30,
) -> None:
    """De-identify Korean clinical notes: identifiers replaced, dates shifted per person."""
    from pmhub.privacy.errors import PrivacyInputError
    from pmhub.privacy.keys import KeyStore
    from pmhub.privacy.text.notes import deidentify_notes

    if mode not in ("tag", "surrogate"):
        raise PrivacyInputError(f"--mode must be tag or surrogate, not {mode!r}")
    if not 1 <= max_days <= 3650:
        raise PrivacyInputError(f"--max-days must be between 1 and 3650, not {max_days}")
    key = KeyStore(settings()).get(project)
    release = deidentify_notes(
        input_path,
        out,
        key,
        mode="tag" if mode == "tag" else "surrogate",
        names_csv=names,
        max_days=max_days,
    )
    found = ", ".join(f"{k} {v:,}" for k, v in sorted(release.found.items())) or "none"
    console.print(f"{release.notes:,} notes de-identified ({found}) → {release.out}")


@privacy_app.command("evaluate-text")
def privacy_evaluate_text(
    notes: Annotated[Path, typer.Option(help="Notes CSV.")],
    spans: Annotated[Path, typer.Option(help="Gold spans CSV: note_id,start,end,type,text.")],
) -> None:
    """Precision and recall of the note de-identifier per identifier type on gold spans."""
    from pmhub.privacy.text.evaluate import evaluate_deid

    scores = evaluate_deid(notes, spans)
    table = Table("type", "gold", "detected", "recall", "precision", "char coverage")
    for kind, s in scores.items():
        table.add_row(
            kind,
            f"{s['gold']:,}",
            f"{s['detected']:,}",
            f"{s['recall']:.4f}",
            f"{s['precision']:.4f}",
            f"{s['coverage']:.4f}",
        )
    console.print(table)


# --- quality ---------------------------------------------------------------------------

quality_app = typer.Typer(
    help="Data quality: Achilles-style profiles and DQD-style checks of a site's CDW.",
    no_args_is_help=True,
)
app.add_typer(quality_app, name="quality")

HtmlOption = Annotated[Path, typer.Option("--html", help="The HTML file to write.")]


def _as_of(text: str | None) -> dt.date | None:
    from pmhub.quality.errors import QualityError

    if text is None:
        return None
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise QualityError(
            f"--as-of {text[:40]!r} is not a date", hint="Write it as YYYY-MM-DD."
        ) from None


@quality_app.command("run")
def quality_run(
    site: SiteOption,
    out: Annotated[
        Path | None, typer.Option("--out", help="Also write the results JSON into this folder.")
    ] = None,
    checks: Annotated[
        Path | None, typer.Option("--checks", help="A check file (default: the shipped one).")
    ] = None,
    as_of: Annotated[
        str | None,
        typer.Option("--as-of", help="Dates after this day are implausible (default: today)."),
    ] = None,
    top: Annotated[int, typer.Option("--top", help="Most frequent concepts per table.")] = 20,
) -> None:
    """Profile the site's CDW and run every check; store the results."""
    from pmhub.quality import service

    with _count_progress() as bar:
        tasks: dict[str, TaskID] = {}

        def report(phase: str, done: int, total: int, what: str) -> None:
            if phase not in tasks:
                tasks[phase] = bar.add_task(phase, total=total, what="")
            bar.update(tasks[phase], completed=done, total=total, what=what)

        run = service.run_quality(
            site, out_dir=out, check_file=checks, as_of=_as_of(as_of), top_n=top, progress=report
        )
    table = Table("category", "passed", "failed", "not applicable", "could not run")
    for category, counts in run.document["summary"].items():
        table.add_row(
            category,
            str(counts["pass"]),
            f"[red]{counts['fail']}[/]" if counts["fail"] else "0",
            str(counts["not_applicable"]),
            str(counts["error"]),
        )
    console.print(table)
    for check in run.failed[:20]:
        console.print(
            f"  [red]failed[/] {check['id']}: {check['violated']:,} of {check['denominator']:,} "
            f"({check['pct_violated']:.2f} % > {check['threshold']:g} %)",
            highlight=False,
        )
    if len(run.failed) > 20:
        console.print(f"  … and {len(run.failed) - 20} more (see the report)")
    console.print(f"site [bold]{site}[/]: run {run.run_id} stored in {run.path}")
    if run.copy is not None:
        console.print(f"  copy: {run.copy}")


@quality_app.command("report")
def quality_report(
    site: SiteOption,
    html: HtmlOption,
    run: Annotated[str | None, typer.Option("--run", help="Run id (default: the latest).")] = None,
) -> None:
    """Write a site's stored run as one self-contained HTML report."""
    from pmhub.quality import service

    path = service.write_report(site, html, run_id=run)
    console.print(f"site [bold]{site}[/]: report written to {path}")


@quality_app.command("compare")
def quality_compare(
    sites: Annotated[str, typer.Option("--sites", help="Sites to compare: A,B,C.")],
    html: HtmlOption,
) -> None:
    """Put the latest runs of several sites side by side and highlight what differs."""
    from pmhub.quality import service

    path = service.write_comparison(sites.split(","), html)
    console.print(f"comparison of {sites} written to {path}")


@quality_app.command("export")
def quality_export(
    site: SiteOption,
    out: Annotated[Path, typer.Option("--out", help="The JSON file to write.")],
    run: Annotated[str | None, typer.Option("--run", help="Run id (default: the latest).")] = None,
) -> None:
    """Write a stored run for sharing outside the site: small cells suppressed."""
    from pmhub.quality import service

    path = service.export_run(site, out, run_id=run)
    console.print(f"site [bold]{site}[/]: shareable results written to {path}")


@quality_app.command("runs")
def quality_runs(site: SiteOption) -> None:
    """List a site's stored quality runs."""
    from pmhub.quality import service

    runs = service.list_runs(site)
    if not runs:
        console.print(f"site {site} has no quality run yet; run `pmhub quality run --site {site}`")
        return
    table = Table("run", "finished", "failed checks")
    for entry in runs:
        failed = sum(c.get("fail", 0) for c in entry.get("summary", {}).values())
        table.add_row(str(entry["run_id"]), str(entry["finished_at"]), str(failed))
    console.print(table)


def _count_progress() -> Progress:
    return Progress(
        TextColumn("{task.description:<10}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[what]}"),
        console=err_console,
        transient=False,
    )


# --- cohorts ----------------------------------------------------------------------------

cohort_app = typer.Typer(
    help="Cohort definitions: validate, generate, characterize, incidence, survival.",
    no_args_is_help=True,
)
app.add_typer(cohort_app, name="cohort")

DefArgument = Annotated[
    str, typer.Argument(help="Definition file (JSON/YAML) or a library name, e.g. type2_diabetes.")
]
OptionalSite = Annotated[
    str | None, typer.Option("--site", "-s", help="Site name (see `pmhub sites list`).")
]
AllSites = Annotated[
    bool, typer.Option("--all-sites", help="Run at every registered site; show only aggregates.")
]


def _definition(reference: str) -> cohorts_definition.Definition:
    return cohorts_definition.load(cohorts_library.resolve(reference))


def _one_place(site: str | None, all_sites: bool) -> None:
    if (site is None) == (not all_sites):
        raise typer.BadParameter("give either --site S or --all-sites")


@cohort_app.command("list")
def cohort_list() -> None:
    """The example definitions shipped with pmhub."""
    table = Table("name", "id", "title")
    for name in cohorts_library.names():
        definition = cohorts_library.example(name)
        table.add_row(name, str(definition.id), definition.name)
    console.print(table)


@cohort_app.command("validate")
def cohort_validate(definition: DefArgument, site: OptionalSite = None) -> None:
    """Check a definition: format, concept ids and concept sets (against the site's
    vocabulary, or the shipped one)."""
    from pmhub.cohorts import service as cohorts_service

    parsed = _definition(definition)
    if site is None:
        resolved = cohorts_service.validate(parsed)
    else:
        with cohorts_service.open_engine(_site(site)) as engine:
            resolved = cohorts_service.validate(parsed, engine)
    console.print(f"[green]valid[/]: {parsed.name} (cohort_definition_id {parsed.id})")
    for name, count in resolved.items():
        console.print(f"  concept set {name}: {count:,} concepts")


@cohort_app.command("run")
def cohort_run(
    definition: DefArgument,
    site: OptionalSite = None,
    all_sites: AllSites = False,
    html: Annotated[Path | None, typer.Option(help="Write the attrition report here.")] = None,
) -> None:
    """Generate the cohort into the OMOP cohort table of one site, or of every site;
    show what each inclusion rule leaves (attrition)."""
    from pmhub.cohorts import network as cohorts_network
    from pmhub.cohorts import report as cohorts_report
    from pmhub.cohorts import service as cohorts_service

    _one_place(site, all_sites)
    parsed = _definition(definition)
    if site is None:
        _print_network(cohorts_network.run_network(parsed, None, registry(), settings()))
        return
    threshold = settings().small_cell_threshold
    with cohorts_service.open_engine(_site(site)) as engine:
        result = cohorts_service.generate(parsed, engine)
        steps = cohorts_service.attrition(parsed, engine)
    console.print(
        f"site [bold]{site}[/] ({result.engine}): {result.name}: {result.rows:,} cohort rows, "
        f"{result.persons:,} persons ({result.seconds:.2f} s)"
    )
    shown = cohorts_report.attrition_rows(steps, threshold)
    table = Table(
        "step",
        "persons",
        "events",
        "% of persons kept",
        "meeting the rule alone",
        title="Attrition",
    )
    for row in shown:
        table.add_row(*row)
    console.print(table)
    if html is not None:
        page = cohorts_report.render(
            title=f"Attrition: {parsed.name}", site=site, threshold=threshold, attrition=shown
        )
        cohorts_report.write(html, page)
        console.print(f"report written to {html}")


@cohort_app.command("export-parquet")
def cohort_export_parquet(
    folder: Annotated[Path, typer.Argument(help="Folder for <table>.parquet files.")],
    site: SiteOption,
) -> None:
    """Write a site's OMOP tables as Parquet: the folder a Spark site (spark:///FOLDER) reads."""
    from pmhub.cohorts import spark as cohorts_spark

    with _site(site).connect() as backend:
        written = cohorts_spark.export_parquet(backend, folder)
    console.print(
        f"site [bold]{site}[/]: {len(written)} tables, {sum(written.values()):,} rows "
        f"written to {folder}; register it: `pmhub sites add NAME --cdw spark:///{folder}`"
    )


def _print_network(result: Combined) -> None:
    console.print(
        f"cohort {result.definition_id} at {', '.join(result.sites)}: "
        f"{result.persons:,} persons in all"
    )
    if result.persons_suppressed_at:
        suppressed = ", ".join(result.persons_suppressed_at)
        console.print(f"  (below the threshold, not counted: {suppressed})")
    summary = Table("stratum", "persons (sum of reported cells)")
    for key, value in {**result.by_sex, **result.by_age}.items():
        summary.add_row(key, f"{value:,}")
    console.print(summary)
    if result.attrition:
        steps = Table(
            "step", "persons", "events", "meeting the rule alone", title="Attrition (sums)"
        )
        for step in result.attrition:
            steps.add_row(
                step.step,
                f"{step.persons or 0:,}",
                f"{step.events or 0:,}",
                f"{step.persons_alone or 0:,}",
            )
        console.print(steps)
    if result.pooled_rate is not None:
        r = result.pooled_rate
        console.print(
            f"pooled incidence: {r.events} events / {r.person_years:,.1f} PY = "
            f"{r.rate:.2f} per 1,000 PY (95 % CI {r.lower:.2f}–{r.upper:.2f})"
            if r.rate is not None
            and r.lower is not None
            and r.upper is not None
            and r.person_years is not None
            else "pooled incidence: suppressed"
        )
    if result.survival:
        interval = result.life_table.interval_days if result.life_table else 0
        points = ", ".join(
            f"{(i + 1) * interval} d: {s:.3f}" for i, s in enumerate(result.survival[:8])
        )
        console.print(f"pooled survival (life table): {points}")


@cohort_app.command("characterize")
def cohort_characterize(
    definitions: Annotated[list[str], typer.Argument(help="One or more definitions.")],
    site: SiteOption,
    html: Annotated[Path | None, typer.Option(help="Write an HTML report here.")] = None,
    window: Annotated[int, typer.Option(min=0, max=36500, help="Days before the index.")] = 365,
) -> None:
    """Table 1 of one or several cohorts at a site, with standardized mean differences."""
    from pmhub.cohorts import report as cohorts_report
    from pmhub.cohorts import service as cohorts_service

    parsed = [_definition(d) for d in definitions]
    threshold = settings().small_cell_threshold
    with cohorts_service.open_engine(_site(site)) as engine:
        table1 = cohorts_service.characterize_at(engine, parsed, threshold, window)
    console.print(_table1(table1))
    if html is not None:
        title = "Characterization: " + ", ".join(d.name for d in parsed)
        cohorts_report.write(
            html, cohorts_report.render(title=title, site=site, threshold=threshold, table1=table1)
        )
        console.print(f"report written to {html}")


def _table1(table1: Table1) -> Table:
    threshold = table1.threshold
    names = [
        f"{name} (n={n if n is not None else '<' + str(threshold)})"
        for _, name, n in table1.cohorts
    ]
    table = Table("", *names, *(["SMD"] * (len(names) - 1)), title="Table 1")
    for row in table1.rows:
        cells = []
        for cell in row.cells:
            if cell.value is None:
                cells.append("0" if cell.n == 0 else f"<{threshold}")
            elif row.kind == "binary":
                cells.append(f"{cell.n:,} ({100 * cell.value:.1f}%)")
            else:
                cells.append(f"{cell.value:.1f} ({cell.sd or 0:.1f})")
        smds = [f"{s:.3f}" if s is not None else "—" for s in row.smd]
        table.add_row(row.label, *cells, *smds)
    return table


TargetArgument = Annotated[str, typer.Argument(help="Target cohort definition (or library name).")]
OutcomeArgument = Annotated[
    str, typer.Argument(help="Outcome cohort definition (or library name).")
]


def _outcome_analysis(
    target: str, outcome: str, site: str | None, all_sites: bool
) -> tuple[OutcomeAnalysis, int] | None:
    """The target and outcome at one site (with the small-cell threshold), or None after
    printing what the hub sees of every site."""
    from pmhub.cohorts import network as cohorts_network
    from pmhub.cohorts import service as cohorts_service

    _one_place(site, all_sites)
    target_def, outcome_def = _definition(target), _definition(outcome)
    if site is None:
        _print_network(cohorts_network.run_network(target_def, outcome_def, registry(), settings()))
        return None
    threshold = settings().small_cell_threshold
    with cohorts_service.open_engine(_site(site)) as engine:
        return cohorts_service.outcome_at(engine, target_def, outcome_def, threshold), threshold


@cohort_app.command("incidence")
def cohort_incidence(
    target: TargetArgument,
    outcome: OutcomeArgument,
    site: OptionalSite = None,
    all_sites: AllSites = False,
    html: Annotated[Path | None, typer.Option(help="Write an HTML report here.")] = None,
) -> None:
    """Incidence of the outcome after the target's start, per 1,000 person-years (exact CI)."""
    from pmhub.cohorts import report as cohorts_report

    found = _outcome_analysis(target, outcome, site, all_sites)
    if found is None:
        return
    analysis, threshold = found
    assert site is not None  # an analysis comes from one site
    target_def, outcome_def = analysis.target, analysis.outcome
    table = Table(
        "stratum", "level", "persons", "events", "person-years", "rate/1,000 PY", "95% CI"
    )
    for r in analysis.rates:
        table.add_row(
            r.stratum,
            r.level,
            "<" + str(threshold) if r.persons is None else f"{r.persons:,}",
            "<" + str(threshold) if r.events is None else f"{r.events:,}",
            "—" if r.person_years is None else f"{r.person_years:,.1f}",
            "—" if r.rate is None else f"{r.rate:.2f}",
            "—" if r.lower is None or r.upper is None else f"{r.lower:.2f}–{r.upper:.2f}",
        )
    console.print(table)
    if html is not None:
        cohorts_report.write(
            html,
            cohorts_report.render(
                title=f"Incidence of {outcome_def.name} in {target_def.name}",
                site=site,
                threshold=threshold,
                rates=analysis.rates,
                outcome=outcome_def.name,
            ),
        )
        console.print(f"report written to {html}")


@cohort_app.command("survival")
def cohort_survival(
    target: TargetArgument,
    outcome: OutcomeArgument,
    site: OptionalSite = None,
    all_sites: AllSites = False,
    plot: Annotated[Path | None, typer.Option(help="Write the KM plot (.png or .svg).")] = None,
    html: Annotated[Path | None, typer.Option(help="Write an HTML report here.")] = None,
) -> None:
    """Kaplan–Meier survival and cumulative incidence of the outcome after the target start."""
    from pmhub.cohorts import report as cohorts_report
    from pmhub.cohorts import survival as cohorts_survival

    if plot is not None and plot.suffix.lower() not in (".png", ".svg"):
        raise typer.BadParameter(f"--plot {plot} must end in .png or .svg")
    found = _outcome_analysis(target, outcome, site, all_sites)
    if found is None:
        return
    analysis, threshold = found
    assert site is not None  # an analysis comes from one site
    target_def, outcome_def = analysis.target, analysis.outcome
    curve = analysis.curve
    if curve is None:
        console.print(f"fewer than {threshold} subjects: the curve is suppressed")
        return
    for days in (365, 730, 1825):
        before = [s for t, s in zip(curve.times, curve.survival, strict=True) if t <= days]
        console.print(f"  survival at {days} days: {before[-1] if before else 1.0:.3f}")
    console.print(f"  {curve.subjects:,} subjects, {curve.events:,} events")
    competing = analysis.competing
    if competing is not None:
        at_year = [s for t, s in zip(competing.times, competing.survival, strict=True) if t <= 365]
        console.print(f"  cumulative incidence at 365 days, death competing: {1 - at_year[-1]:.3f}")
    if plot is not None:
        fmt = plot.suffix.lower().lstrip(".")
        plot.write_bytes(cohorts_survival.plot([curve], "survival", fmt))
        console.print(f"plot written to {plot}")
    if html is not None:
        plots = [
            ("Kaplan–Meier survival", cohorts_survival.plot([curve], "survival", "svg")),
            (
                "Cumulative incidence (1 − KM; and Aalen–Johansen with death competing)",
                cohorts_survival.plot(
                    [curve, *([competing] if competing else [])], "incidence", "svg"
                ),
            ),
        ]
        cohorts_report.write(
            html,
            cohorts_report.render(
                title=f"{outcome_def.name} after {target_def.name}",
                site=site,
                threshold=threshold,
                rates=analysis.rates,
                outcome=outcome_def.name,
                plots=plots,
            ),
        )
        console.print(f"report written to {html}")


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description:<22}"),
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=False,
    )


def main(argv: list[str] | None = None) -> None:
    """Entry point: user errors as one message and a stable exit code, no traceback."""
    try:
        app(args=argv, standalone_mode=False)
    except PmhubError as exc:
        if os.environ.get("PMHUB_DEBUG") == "1" or "--debug" in (argv or sys.argv):
            err_console.print_exception()
        err_console.print(f"[bold red]error:[/] {exc.message}", highlight=False)
        err_console.print(f"[yellow]hint:[/] {exc.hint}", highlight=False)
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        err_console.print("aborted")
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except Exception as exc:
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise
