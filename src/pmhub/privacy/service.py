"""What the CLI verbs and the API call: anonymize a dataset, measure its risk.

``anonymize`` writes one file per table, ``report.json`` and ``report.html`` (the adequacy
review material, 적정성 검토 자료) and ``policy.yaml`` into ``out``, all or nothing.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import yaml

from pmhub.privacy import engine, linked, report
from pmhub.privacy.errors import EngineMemoryError, PolicyError, PrivacyError, PrivacyInputError
from pmhub.privacy.keys import KeyStore, ProjectKey
from pmhub.privacy.policy import Policy
from pmhub.privacy.policy import load as load_policy
from pmhub.privacy.qitable import COUNT, capped_product
from pmhub.privacy.risk import Risk, assess
from pmhub.privacy.sources import Source, connect, file_source, open_sources, staging
from pmhub.settings import Settings

SAMPLE_ROWS = 10


@dataclass
class Release:
    out: Path
    files: dict[str, Path]
    report: dict[str, Any]


def anonymize(
    input_path: Path,
    policy: Policy,
    out: Path,
    key: ProjectKey | None,
    *,
    output_format: str = "same",
    progress: engine.Progress = engine._nothing,
    memory_limit: str | None = None,
) -> Release:
    try:
        return _anonymize(input_path, policy, out, key, output_format, progress, memory_limit)
    except duckdb.OutOfMemoryException as exc:
        limit = f" (memory limit {memory_limit})" if memory_limit else ""
        raise EngineMemoryError(
            f"the release ran out of memory{limit}: {_first_line(exc)}"
        ) from exc
    except duckdb.Error as exc:
        raise PrivacyError(f"the query engine failed: {_first_line(exc)}") from exc


def _first_line(exc: Exception) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _anonymize(
    input_path: Path,
    policy: Policy,
    out: Path,
    key: ProjectKey | None,
    output_format: str,
    progress: engine.Progress,
    memory_limit: str | None,
) -> Release:
    engine.require_key(policy, key)
    started = time.perf_counter()
    con = connect(memory_limit)
    sources = open_sources(con, input_path, list(policy.tables))
    plans = {
        name: engine.plan_table(con, src, policy.tables[name], policy)
        for name, src in sources.items()
    }
    persons = linked.cascade(con, plans, policy)
    tables: dict[str, Any] = {}
    files: dict[str, Path] = {}
    with staging(out) as stage:
        for name, plan in plans.items():
            suffix = _suffix(plan.source, output_format)
            path = stage / f"{name}{suffix}"
            written = engine.stream_table(con, plan, policy, key, path, progress)
            achieved, risk_after = engine.verify(con, plan, path)
            if not achieved.models_hold:
                raise PrivacyError(
                    f"the release of table {name!r} failed its own verification: {achieved}",
                    hint="This is a bug in pmhub; nothing was released. Report it with the policy.",
                )
            tables[name] = table_report(con, plan, path, written, achieved, risk_after)
            files[name] = out / path.name
        document = release_report(policy, tables, time.perf_counter() - started)
        document["suppressed_persons"] = persons  # removed from every table linked by person
        (stage / "policy.yaml").write_text(policy_text(policy), encoding="utf-8")
        (stage / "report.json").write_text(
            json.dumps(document, ensure_ascii=False, indent=2, default=_plain), encoding="utf-8"
        )
        (stage / "report.html").write_text(report.render_html(document), encoding="utf-8")
    return Release(out, files, document)


def _suffix(source: Source, output_format: str) -> str:
    if output_format == "same":
        return ".parquet" if source.kind in ("parquet", "duckdb") else ".csv"
    if output_format not in ("csv", "parquet"):
        raise PrivacyInputError(f"output format must be csv or parquet, not {output_format!r}")
    return f".{output_format}"


def table_report(
    con: Any,
    plan: engine.TablePlan,
    path: Path,
    written: int,
    achieved: engine.Achieved,
    risk_after: Risk | None,
) -> dict[str, Any]:
    sample = con.execute(
        f"SELECT * FROM {file_source(con, plan.name, path, materialize=False).sql}"
        f" LIMIT {SAMPLE_ROWS}"
    ).df()
    recoding = plan.recoding
    return {
        "rows_in": plan.rows_in,
        "rows_out": written,
        "removed_with_suppressed_persons": plan.cascaded,
        "columns": {  # every input column, so the committee sees what was dropped unlisted
            c: plan.rules.columns[c].action if c in plan.rules.columns else "drop (unlisted)"
            for c in plan.source.columns
        },
        "quasi_identifiers": list(plan.hierarchies),
        "sensitive": plan.rules.sensitive,
        "models": [m.describe() for m in plan.models],
        "max_suppression": plan.rules.models.max_suppression,
        "suppression": plan.rules.suppression,
        "achieved": achieved.__dict__,
        "search": None
        if recoding is None
        else {
            "method": recoding.method,
            "levels": recoding.levels,
            "lattice_size": recoding.lattice_size,
            "checked": recoding.checked,
            "seconds": round(recoding.seconds, 4),
        },
        "utility": None if recoding is None else recoding.utility.as_dict(),
        "risk_before": _risk(engine.risk_before(plan)),
        "risk_after": _risk(risk_after),
        "suppressed_cells": {c: len(v) for c, v in plan.rare.items()},
        "sample_rows": sample.astype(object).where(sample.notna(), None).to_dict("records"),
    }


def _risk(risk: Risk | None) -> dict[str, object] | None:
    return None if risk is None else risk.as_dict()


def _plain(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    return str(value)


def policy_text(policy: Policy) -> str:
    return yaml.safe_dump(
        policy.model_dump(mode="json", exclude={"source"}), allow_unicode=True, sort_keys=False
    )


def release_report(policy: Policy, tables: dict[str, Any], seconds: float) -> dict[str, Any]:
    text = policy_text(policy)
    return {
        "title": "가명처리 적정성 검토 자료 (pseudonymization adequacy review)",
        "policy": {
            "name": policy.name,
            "version": policy.version,
            "project": policy.project,
            "sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
        },
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "seconds": round(seconds, 3),
        "tables": tables,
    }


def risk_of(
    input_path: Path,
    qis: Sequence[str],
    *,
    threshold: float = 0.2,
    population_size: int | None = None,
) -> Risk:
    """Re-identification risk of a table's quasi-identifier combination, as the data stands."""
    con = connect()
    source = file_source(con, "data", input_path, materialize=False)
    if not qis:
        raise PrivacyInputError("name at least one quasi-identifier column with --qi")
    missing = [q for q in qis if q not in source.columns]
    if missing:
        raise PrivacyInputError(
            f"the data has no column(s) {missing}; it has {source.columns[:20]}",
            hint="Name quasi-identifiers with --qi COL1,COL2 using the data's column names.",
        )
    counts = engine.qi_counts(con, source, list(qis))
    cells = capped_product([int(counts[q].nunique()) for q in qis])
    return assess(
        counts[COUNT].to_numpy(), threshold=threshold, population_size=population_size, cells=cells
    )


def key_for(policy: Policy, settings: Settings) -> ProjectKey | None:
    """The project key from the key store, when the policy pseudonymizes or shifts dates."""
    if not policy.needs_key:
        return None
    if not policy.project:
        raise PolicyError(
            f"policy {policy.name!r} pseudonymizes or shifts dates but names no project",
            hint="Add `project: NAME` to the policy; its key makes the pseudonyms.",
        )
    return KeyStore(settings).get(policy.project)


def anonymize_files(
    input_path: Path,
    policy_path: Path,
    out: Path,
    settings: Settings,
    *,
    output_format: str = "same",
    progress: engine.Progress = engine._nothing,
    memory_limit: str | None = None,
) -> Release:
    """What `pmhub privacy anonymize` does: load the policy, fetch its key, release."""
    loaded = load_policy(policy_path)
    return anonymize(
        input_path,
        loaded,
        out,
        key_for(loaded, settings),
        output_format=output_format,
        progress=progress,
        memory_limit=memory_limit,
    )
