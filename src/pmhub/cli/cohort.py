"""`pmhub cohort …`: definitions, cohorts, characterization, incidence, survival."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from pmhub.cli import common

if TYPE_CHECKING:
    from pmhub.cohorts.characterize import Table1
    from pmhub.cohorts.definition import Definition
    from pmhub.cohorts.federated import Combined
    from pmhub.cohorts.network import NetworkRun
    from pmhub.cohorts.service import OutcomeAnalysis


app = typer.Typer(
    help="Cohort definitions: validate, generate, characterize, incidence, survival.",
    no_args_is_help=True,
)

DefArgument = Annotated[
    str, typer.Argument(help="Definition file (JSON/YAML) or a library name, e.g. type2_diabetes.")
]
OptionalSite = Annotated[
    str | None, typer.Option("--site", "-s", help="Site name (see `pmhub sites list`).")
]
AllSites = Annotated[
    bool, typer.Option("--all-sites", help="Run at every registered site; show only aggregates.")
]
Replace = Annotated[
    bool,
    typer.Option(
        "--replace",
        help="Replace the rows of another definition recorded under the same cohort id.",
    ),
]


def _definition(reference: str) -> Definition:
    from pmhub.cohorts import definition, library

    return definition.load(library.resolve(reference))


def _one_place(site: str | None, all_sites: bool) -> None:
    if (site is None) == (not all_sites):
        raise typer.BadParameter("give either --site S or --all-sites")


def _writable(html: Path | None = None, plot: Path | None = None) -> None:
    """Refuse an output path that cannot be written before any cohort is generated."""
    from pmhub import outputs

    if plot is not None:
        if plot.suffix.lower() not in (".png", ".svg"):
            raise typer.BadParameter(f"--plot {plot} must end in .png or .svg")
        outputs.check(plot, what="plot")
    if html is not None:
        outputs.check(html, what="HTML report")


def _network(definition: Definition, outcome: Definition | None, replace: bool) -> NetworkRun:
    """Run across every site; print what the hub sees and the sites that did not answer."""
    from pmhub.cohorts import network

    run = network.run_across(
        definition, outcome, common.registry(), common.settings(), replace=replace
    )
    _print_network(run.combined)
    for failure in run.failures:
        common.err_console.print(f"[yellow]not reached:[/] {failure.describe()}", highlight=False)
    return run


def _finish(run: NetworkRun) -> None:
    """End a network verb with the partial exit code when a site did not answer."""
    error = run.partial()
    if error is not None:
        raise error


def _write_plot(plot: Path, data: bytes) -> None:
    from pmhub import outputs

    outputs.write_bytes(plot, data, what="plot")
    common.console.print(f"plot written to {plot}")


@app.command("list")
def cohort_list() -> None:
    """The example definitions shipped with pmhub."""
    from pmhub.cohorts import library

    table = Table("name", "id", "title")
    for name in library.names():
        definition = library.example(name)
        table.add_row(name, str(definition.id), definition.name)
    common.console.print(table)


@app.command("validate")
def cohort_validate(definition: DefArgument, site: OptionalSite = None) -> None:
    """Check a definition: format, concept ids and concept sets (against the site's
    vocabulary, or the shipped one)."""
    from pmhub.cohorts import service as cohorts_service

    parsed = _definition(definition)
    if site is None:
        resolved = cohorts_service.validate(parsed)
    else:
        with cohorts_service.open_engine(common.site(site)) as engine:
            resolved = cohorts_service.validate(parsed, engine)
    common.console.print(f"[green]valid[/]: {parsed.name} (cohort_definition_id {parsed.id})")
    for name, count in resolved.items():
        common.console.print(f"  concept set {name}: {count:,} concepts")


@app.command("run")
def cohort_run(
    definition: DefArgument,
    site: OptionalSite = None,
    all_sites: AllSites = False,
    html: Annotated[Path | None, typer.Option(help="Write the attrition report here.")] = None,
    replace: Replace = False,
) -> None:
    """Generate the cohort into the OMOP cohort table of one site, or of every site;
    show what each inclusion rule leaves (attrition)."""
    from pmhub.cohorts import released
    from pmhub.cohorts import report as cohorts_report
    from pmhub.cohorts import service as cohorts_service
    from pmhub.disclosure import note, primary

    _one_place(site, all_sites)
    parsed = _definition(definition)
    _writable(html)
    if site is None:
        run = _network(parsed, None, replace)
        _network_files(run, f"Attrition: {parsed.name}", "", html, None)
        _finish(run)
        return
    threshold = common.settings().small_cell_threshold
    with cohorts_service.open_engine(common.site(site)) as engine:
        result = cohorts_service.generate(parsed, engine, replace=replace)
        steps = cohorts_service.attrition(parsed, engine)
    common.console.print(
        f"site [bold]{site}[/] ({result.engine}): {result.name}: "
        f"{primary(result.rows, threshold)} cohort rows, "
        f"{primary(result.persons, threshold)} persons ({result.seconds:.2f} s)"
    )
    shown = released.attrition_rows(
        [(s.step, s.persons, s.events, s.persons_alone) for s in steps], threshold
    )
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
    common.console.print(table)
    common.console.print(note(threshold), style="dim")
    if html is not None:
        page = cohorts_report.render(
            title=f"Attrition: {parsed.name}", site=site, threshold=threshold, attrition=shown
        )
        cohorts_report.write(html, page)
        common.console.print(f"report written to {html}")


@app.command("export-parquet")
def cohort_export_parquet(
    folder: Annotated[Path, typer.Argument(help="Folder for <table>.parquet files.")],
    site: common.SiteOption,
) -> None:
    """Write a site's OMOP tables as Parquet: the folder a Spark site (spark:///FOLDER) reads."""
    from pmhub.cohorts import spark as cohorts_spark

    with common.site(site).connect() as backend:
        written = cohorts_spark.export_parquet(backend, folder)
    common.console.print(
        f"site [bold]{site}[/]: {len(written)} tables, {sum(written.values()):,} rows "
        f"written to {folder}; register it: `pmhub sites add NAME --cdw spark:///{folder}`"
    )


def _print_network(result: Combined) -> None:
    """What the hub shows: pooled counts from the sites' exact contributions, suppressed
    as one table of sites and strata."""
    from pmhub.disclosure import note

    common.console.print(
        f"cohort {result.definition_id} at {', '.join(result.sites)}: "
        f"{result.persons} persons in all"
    )
    if result.not_pooled:
        common.console.print(f"  pooled figures: {result.not_pooled}")
    by_site = Table("site", "persons", title="Persons by site")
    for name, count in result.persons_by_site.items():
        by_site.add_row(name, count.text())
    common.console.print(by_site)
    summary = Table("stratum", "persons (pooled)")
    for key, value in {**result.by_sex, **result.by_age}.items():
        summary.add_row(key, value.text())
    common.console.print(summary)
    if result.attrition:
        steps = Table("step", "persons", "events", title="Attrition (pooled)")
        for name, persons, events in result.attrition:
            steps.add_row(name, persons.text(), events.text())
        common.console.print(steps)
    if result.pooled_rate is not None:
        from pmhub.cohorts.released import pooled_rate_text

        common.console.print(pooled_rate_text(result.pooled_rate))
    if result.survival:
        interval = result.life_table.interval_days if result.life_table else 0
        points = ", ".join(
            f"{(i + 1) * interval} d: {s:.3f}" for i, s in enumerate(result.survival[:8])
        )
        common.console.print(f"pooled survival (life table, rounded counts): {points}")
    common.console.print(note(result.threshold), style="dim")


@app.command("characterize")
def cohort_characterize(
    definitions: Annotated[list[str], typer.Argument(help="One or more definitions.")],
    site: common.SiteOption,
    html: Annotated[Path | None, typer.Option(help="Write an HTML report here.")] = None,
    window: Annotated[int, typer.Option(min=0, max=36500, help="Days before the index.")] = 365,
    replace: Replace = False,
) -> None:
    """Table 1 of one or several cohorts at a site, with standardized mean differences."""
    from pmhub.cohorts import report as cohorts_report
    from pmhub.cohorts import service as cohorts_service
    from pmhub.disclosure import note

    parsed = [_definition(d) for d in definitions]
    _writable(html)
    threshold = common.settings().small_cell_threshold
    with cohorts_service.open_engine(common.site(site)) as engine:
        table1 = cohorts_service.characterize_at(engine, parsed, threshold, window, replace=replace)
    common.console.print(_table1(table1))
    common.console.print(note(threshold), style="dim")
    if html is not None:
        title = "Characterization: " + ", ".join(d.name for d in parsed)
        cohorts_report.write(
            html, cohorts_report.render(title=title, site=site, threshold=threshold, table1=table1)
        )
        common.console.print(f"report written to {html}")


def _table1(table1: Table1) -> Table:
    from pmhub.cohorts.released import table1_cell

    names = [f"{name} (n={n.text()})" for _, name, n in table1.cohorts]
    table = Table("", *names, *(["SMD"] * (len(names) - 1)), title="Table 1")
    for row in table1.rows:
        cells = [table1_cell(row.kind, cell) for cell in row.cells]
        smds = [f"{s:.3f}" if s is not None else "—" for s in row.smd]
        table.add_row(row.label, *cells, *smds)
    return table


TargetArgument = Annotated[str, typer.Argument(help="Target cohort definition (or library name).")]
OutcomeArgument = Annotated[
    str, typer.Argument(help="Outcome cohort definition (or library name).")
]


def _outcome_analysis(
    target: str,
    outcome: str,
    site: str | None,
    all_sites: bool,
    html: Path | None = None,
    plot: Path | None = None,
    *,
    replace: bool = False,
) -> tuple[OutcomeAnalysis, int] | None:
    """The target and outcome at one site (with the small-cell threshold), or None after
    printing what the hub sees of every site (and writing its report and plot; a site
    that did not answer ends the verb with the partial exit code)."""
    from pmhub.cohorts import service as cohorts_service

    _one_place(site, all_sites)
    target_def, outcome_def = _definition(target), _definition(outcome)
    _writable(html, plot)
    if site is None:
        run = _network(target_def, outcome_def, replace)
        _network_files(
            run, f"{outcome_def.name} after {target_def.name}", outcome_def.name, html, plot
        )
        _finish(run)
        return None
    threshold = common.settings().small_cell_threshold
    with cohorts_service.open_engine(common.site(site)) as engine:
        analysis = cohorts_service.outcome_at(
            engine, target_def, outcome_def, threshold, replace=replace
        )
    return analysis, threshold


def _network_files(
    run: NetworkRun, title: str, outcome: str, html: Path | None, plot: Path | None
) -> None:
    """The hub's report (pooled counts, rate, attrition and the pooled survival curve) and
    its survival plot, as released; the report names the sites that did not answer."""
    from pmhub.cohorts import report as cohorts_report
    from pmhub.cohorts import survival as cohorts_survival

    combined = run.combined

    curves = []
    if combined.life_table is not None and combined.life_table.at_risk:
        table = cohorts_survival.LifeTable(**combined.life_table.model_dump())
        curves.append(cohorts_survival.pooled_curve(table, "all sites", combined.threshold))
    if plot is not None:
        if not curves:
            common.console.print("no pooled survival to plot: no outcome, or too few at risk")
        else:
            fmt = plot.suffix.lower().lstrip(".")
            _write_plot(
                plot, cohorts_survival.plot(curves, "survival", fmt, title=title, outcome=outcome)
            )
    if html is not None:
        plots = (
            [
                (
                    "Pooled survival (life table)",
                    cohorts_survival.plot(curves, "survival", "svg", title=title, outcome=outcome),
                )
            ]
            if curves
            else []
        )
        steps = [(n, p.text(), e.text(), "—", "—") for n, p, e in combined.attrition]
        page = cohorts_report.render(
            title=f"{title}: all sites" if outcome else title,
            site=run.place(),
            threshold=combined.threshold,
            outcome=outcome,
            plots=plots,
            curves=curves,
            attrition=steps,
            network=combined,
        )
        cohorts_report.write(html, page)
        common.console.print(f"report written to {html}")


@app.command("incidence")
def cohort_incidence(
    target: TargetArgument,
    outcome: OutcomeArgument,
    site: OptionalSite = None,
    all_sites: AllSites = False,
    html: Annotated[Path | None, typer.Option(help="Write an HTML report here.")] = None,
    replace: Replace = False,
) -> None:
    """Incidence of the outcome after the target's start, per 1,000 person-years (exact CI)."""
    from pmhub.cohorts import report as cohorts_report
    from pmhub.cohorts.released import rate_cells
    from pmhub.disclosure import note

    found = _outcome_analysis(target, outcome, site, all_sites, html, replace=replace)
    if found is None:
        return
    analysis, threshold = found
    assert site is not None  # an analysis comes from one site
    target_def, outcome_def = analysis.target, analysis.outcome
    table = Table(
        "stratum", "level", "persons", "events", "person-years", "rate/1,000 PY", "95% CI"
    )
    for r in analysis.rates:
        table.add_row(r.stratum, r.level, *rate_cells(r))
    common.console.print(table)
    common.console.print(note(threshold), style="dim")
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
        common.console.print(f"report written to {html}")


@app.command("survival")
def cohort_survival(
    target: TargetArgument,
    outcome: OutcomeArgument,
    site: OptionalSite = None,
    all_sites: AllSites = False,
    plot: Annotated[Path | None, typer.Option(help="Write the KM plot (.png or .svg).")] = None,
    html: Annotated[Path | None, typer.Option(help="Write an HTML report here.")] = None,
    replace: Replace = False,
) -> None:
    """Kaplan–Meier survival and cumulative incidence of the outcome after the target start:
    from rounded counts, stopped where fewer than the threshold remain at risk."""
    from pmhub.cohorts import released
    from pmhub.cohorts import report as cohorts_report
    from pmhub.cohorts import survival as cohorts_survival
    from pmhub.disclosure import note

    found = _outcome_analysis(target, outcome, site, all_sites, html, plot, replace=replace)
    if found is None:
        return
    analysis, threshold = found
    assert site is not None  # an analysis comes from one site
    target_def, outcome_def = analysis.target, analysis.outcome
    curve = analysis.curve
    if curve is None:
        common.console.print(f"fewer than {threshold} subjects: the curve is suppressed")
        return
    for line in released.survival_lines(curve):
        common.console.print(f"  {line}")
    common.console.print(f"  {analysis.subjects} subjects, {analysis.events} events")
    competing = analysis.competing
    if competing is not None:
        at_year = competing.survival_at(365)
        if at_year is not None:
            common.console.print(
                f"  cumulative incidence at 365 days, death competing: {1 - at_year:.3f}"
            )
    common.console.print(note(threshold), style="dim")
    title = f"{outcome_def.name} after {target_def.name}"
    if plot is not None:
        fmt = plot.suffix.lower().lstrip(".")
        _write_plot(
            plot,
            cohorts_survival.plot([curve], "survival", fmt, title=title, outcome=outcome_def.name),
        )
    if html is not None:
        both = [curve, *([competing] if competing else [])]
        plots = [
            (
                "Kaplan–Meier survival",
                cohorts_survival.plot(
                    [curve], "survival", "svg", title=title, outcome=outcome_def.name
                ),
            ),
            (
                "Cumulative incidence (1 − KM; and Aalen–Johansen with death competing)",
                cohorts_survival.plot(
                    both, "incidence", "svg", title=title, outcome=outcome_def.name
                ),
            ),
        ]
        cohorts_report.write(
            html,
            cohorts_report.render(
                title=title,
                site=site,
                threshold=threshold,
                rates=analysis.rates,
                outcome=outcome_def.name,
                plots=plots,
                curves=both,
                summary=f"{analysis.subjects} subjects, {analysis.events} events.",
            ),
        )
        common.console.print(f"report written to {html}")
