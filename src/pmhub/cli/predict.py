"""``pmhub predict train|evaluate`` and ``pmhub federate``: thin front doors over
pmhub.predict.service and pmhub.federation.run."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from pmhub.cli import common

if TYPE_CHECKING:
    from pmhub.cdm.backends import Backend

app = typer.Typer(help="Patient-level prediction: train and evaluate models on site CDWs.")

TaskArgument = Annotated[str, typer.Argument(help="A task file, or an example task's name.")]
SitesOption = Annotated[
    list[str], typer.Option("--site", "-s", help="A site (repeat for a pooled model).")
]


@contextlib.contextmanager
def _backends(names: list[str]) -> Iterator[dict[str, Backend]]:
    from pmhub.cdm.backends import is_spark
    from pmhub.predict.errors import PredictError

    opened: dict[str, Backend] = {}
    try:
        for name in names:
            site = common.site(name)
            if is_spark(site.cdw_url):
                raise PredictError(
                    f"site {name!r} is a Spark site; prediction reads DuckDB or PostgreSQL CDWs",
                    hint="Train on a SQL copy of the site, or export it to DuckDB first.",
                )
            opened[name] = site.connect()
        yield opened
    finally:
        for backend in opened.values():
            backend.close()


def _metrics_table(title: str, rows: dict[str, dict[str, Any]]) -> Table:
    table = Table(title=title)
    for column in ("", "persons", "outcomes", "AUROC (95% CI)", "AUPRC", "Brier", "cal. slope"):
        table.add_column(column)
    for name, m in rows.items():
        if "withheld" in m:
            table.add_row(name, m["persons"], m["outcomes"], m["withheld"], "", "", "")
            continue
        ci = (
            f" ({m['auroc_low']:.3f}-{m['auroc_high']:.3f})"
            if m.get("auroc_low") is not None
            else ""
        )
        table.add_row(
            name,
            str(m["persons"]),
            str(m["outcomes"]),
            f"{m['auroc']:.3f}{ci}",
            f"{m['auprc']:.3f}",
            f"{m['brier']:.4f}",
            f"{m['calibration_slope']:.2f}",
        )
    return table


@app.command("train")
def predict_train(
    task: TaskArgument,
    site: SitesOption,
    out: Annotated[Path, typer.Option("--out", help="The model package folder to write.")],
) -> None:
    """Train the task's model on one site (local) or several (pooled); write the package."""
    from pmhub.disclosure import note
    from pmhub.predict import service
    from pmhub.predict import task as tasks

    loaded = tasks.load(task)
    threshold = common.settings().small_cell_threshold
    with _backends(site) as backends:
        result = service.train(loaded, backends, threshold=threshold)
    service.save(out, loaded, result, threshold=threshold)
    summary = result.summary(threshold)
    rows = {"held out": summary["test"], **summary["per_site"]}
    common.console.print(_metrics_table(f"{loaded.name}: {result.model.kind}", rows))
    for contribution in result.importance[:10]:
        common.console.print(f"  {contribution.shap:7.3f}  {contribution.feature}")
    common.console.print(note(threshold), style="dim")
    common.console.print(f"model package: {out}")


@app.command("evaluate")
def predict_evaluate(
    package: Annotated[Path, typer.Argument(help="A model package folder.")],
    site: SitesOption,
) -> None:
    """External validation: the packaged model on each site's whole population."""
    from pmhub.disclosure import note
    from pmhub.predict import release, service

    threshold = common.settings().small_cell_threshold
    rows = {}
    with _backends(site) as backends:
        for name, backend in backends.items():
            validated = service.validate_at(package, backend, name, threshold=threshold)
            rows[name] = release.metrics(validated.metrics, threshold)
    common.console.print(_metrics_table(f"external validation of {package}", rows))
    common.console.print(note(threshold), style="dim")


def _tables(pairs: list[str]) -> dict[str, Path]:
    from pmhub.federation.errors import FederationError

    tables: dict[str, Path] = {}
    for pair in pairs:
        site, sep, file = pair.partition("=")
        if not sep or not site or not file:
            raise FederationError(
                f"--table {pair!r} is not SITE=FILE", hint="Write --table hospital_a=a.csv"
            )
        if site in tables:
            raise FederationError(f"site {site!r} is given twice")
        tables[site] = Path(file)
    return tables


def federate(
    task: Annotated[
        str | None, typer.Argument(help="A task (file or example) to federate over CDWs.")
    ] = None,
    site: Annotated[
        list[str] | None, typer.Option("--site", "-s", help="A site whose CDW takes part.")
    ] = None,
    table: Annotated[
        list[str] | None, typer.Option("--table", help="SITE=FILE: a site's feature table.")
    ] = None,
    label: Annotated[str, typer.Option("--label", help="The tables' 0/1 label column.")] = "",
    out: Annotated[Path, typer.Option("--out", help="The folder for report.json and logs.")] = Path(
        "federated"
    ),
    strategy: Annotated[str, typer.Option(help="fedavg, fedprox or fedadam.")] = "fedavg",
    rounds: Annotated[int, typer.Option(min=1, max=500)] = 10,
    seed: Annotated[int, typer.Option(min=0)] = 42,
) -> None:
    """Federated logistic regression with Flower (a SuperLink and one SuperNode per site on
    this machine), over sites' CDWs (TASK --site A --site B) or feature tables (--table
    SITE=FILE --label COLUMN); writes DIR/report.json with local, federated and pooled
    metrics on each site's held-out part."""
    from pmhub.federation import run
    from pmhub.federation.errors import FederationError

    settings = run.Settings(
        strategy=strategy,
        rounds=rounds,
        seed=seed,
        threshold=common.settings().small_cell_threshold,
    )
    if (task is None) == (not table):
        raise FederationError(
            "give a TASK with --site, or --table SITE=FILE with --label (one of the two)",
            hint="pmhub federate t2dm_death --site a --site b, or pmhub federate "
            "--table a=a.csv --table b=b.csv --label outcome",
        )
    if task is not None:
        urls = {name: common.site(name).cdw_url for name in site or []}
        report = run.federate_task(task, urls, out, settings)
    else:
        if not label:
            raise FederationError("--table needs --label COLUMN")
        report = run.federate_tables(_tables(table or []), label, out, settings)
    rows = Table(title=f"{strategy}, {rounds} rounds")
    for column in ("site", "local AUROC", "federated AUROC", "pooled AUROC"):
        rows.add_column(column)
    for name, metrics in report["sites"].items():
        cells = [metrics[k].get("auroc") for k in ("local", "federated", "pooled")]
        rows.add_row(name, *("(withheld)" if c is None else f"{c:.3f}" for c in cells))
    common.console.print(rows)
    dropped = report["federated"]["dropped"]
    if dropped:
        common.console.print(f"left out before the end: {', '.join(dropped)}", style="yellow")
    common.console.print(f"report: {out / 'report.json'}")
