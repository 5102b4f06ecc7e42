"""`pmhub privacy …`: pseudonymization, anonymity and note de-identification."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import TaskID
from rich.table import Table

from pmhub.cli import common

app = typer.Typer(
    help="Pseudonymize and anonymize data and notes (PIPC / health-data guidelines).",
    no_args_is_help=True,
)


@app.command("key-create")
def privacy_key_create(
    project: Annotated[str, typer.Option(help="Project whose pseudonyms the key makes.")],
) -> None:
    """Create a project's pseudonymization key in the key store (never shown, never replaced)."""
    from pmhub.privacy.keys import KeyStore

    path = KeyStore(common.settings()).create(project)
    common.console.print(
        f"created the key of project [bold]{project}[/] in {path.parent} (mode 600)"
    )


@app.command("anonymize")
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

    with common.progress() as bar:
        tasks: dict[str, TaskID] = {}

        def report(table: str, done: int, total: int) -> None:
            if table not in tasks:
                tasks[table] = bar.add_task(table, total=total)
            bar.update(tasks[table], completed=done)

        release = service.anonymize_files(
            input_path,
            policy_path,
            out,
            common.settings(),
            output_format=output_format,
            progress=report,
            memory_limit=memory_limit,
        )
    for name, table in release.report["tables"].items():
        achieved = table["achieved"]
        common.console.print(
            f"table [bold]{name}[/]: {table['rows_out']:,} rows, models hold:"
            f" {achieved['models_hold']}, suppressed {achieved['suppressed']:,},"
            f" smallest class {achieved['min_class']}"
        )
        if table["utility"]:
            common.console.print(
                f"  loss {table['utility']['loss']:.4f}; levels {table['search']['levels']}"
            )
    common.console.print(f"release and adequacy report written to {release.out}")


@app.command("risk")
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
        common.console.print_json(json.dumps(risk.as_dict()))
        return
    table = Table("measure", "highest", "average", f"records > {threshold:g}")
    for name, m in (("prosecutor", risk.prosecutor), ("journalist", risk.journalist)):
        table.add_row(name, f"{m.highest:.4f}", f"{m.average:.4f}", f"{m.share_above:.2%}")
    common.console.print(table)
    common.console.print(
        f"marketer {risk.marketer:.4f}; {risk.records:,} records in {risk.classes:,} classes;"
        f" sample uniques {risk.sample_uniques:,} ({risk.sample_unique_share:.2%});"
        f" estimated population uniques {risk.population_uniques_estimate:,.1f} ({risk.model})"
    )


@app.command("deid-text")
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
    from pmhub.privacy.keys import KeyStore
    from pmhub.privacy.text.notes import check_options, deidentify_notes

    check_options(mode, max_days)  # before the key store is opened
    key = KeyStore(common.settings()).get(project)
    release = deidentify_notes(
        input_path,
        out,
        key,
        mode="tag" if mode == "tag" else "surrogate",
        names_csv=names,
        max_days=max_days,
    )
    found = ", ".join(f"{k} {v:,}" for k, v in sorted(release.found.items())) or "none"
    common.console.print(f"{release.notes:,} notes de-identified ({found}) → {release.out}")


@app.command("evaluate-text")
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
    common.console.print(table)
