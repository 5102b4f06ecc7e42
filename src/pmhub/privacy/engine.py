"""Anonymize tables under a policy: check, plan, search, stream out, verify.

1. check: every column the policy names exists, every data column has a rule, the key is
   there, date and number columns hold dates and numbers, hierarchies cover the values;
2. plan: count the distinct quasi-identifier rows (a DuckDB GROUP BY, so the table may be
   larger than memory) and search for the generalization (optimal lattice search, or
   Mondrian local recoding); precompute rare values and micro-aggregation groups;
3. stream: read the table in batches, transform each, write it into a staging folder;
4. verify: group the written release again and check every model on it; only then is the
   staging folder renamed to the output. Any error before that leaves no output.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from pmhub.privacy import hierarchy as hier
from pmhub.privacy import keys, mondrian, search, transforms
from pmhub.privacy.errors import (
    ColumnTypeError,
    KeyStoreError,
    PolicyError,
    PrivacyError,
)
from pmhub.privacy.keys import ProjectKey
from pmhub.privacy.metrics import Utility
from pmhub.privacy.models import (
    DistinctLDiversity,
    EntropyLDiversity,
    KAnonymity,
    KMap,
    Model,
    RecursiveCLDiversity,
    TCloseness,
    partition,
)
from pmhub.privacy.policy import ColumnRule, HierarchySpec, Policy, TablePolicy
from pmhub.privacy.qitable import COUNT, QiTable, as_text, capped_product, from_frame
from pmhub.privacy.risk import Risk, assess
from pmhub.privacy.sources import Source, file_source, quote

BATCH_ROWS = 50_000  # records per batch in Python: bounds its memory (300 MB below 200,000)
Progress = Callable[[str, int, int], None]


def _nothing(table: str, done: int, total: int) -> None:
    return None


@dataclass
class Recoding:
    """Released quasi-identifier labels per distinct raw QI row ('*' when suppressed)."""

    raw: pd.DataFrame  # QI columns (raw text) + released columns + __suppressed__
    levels: dict[str, int] | None
    method: str
    utility: Utility
    lattice_size: int = 0
    checked: int = 0
    seconds: float = 0.0
    # Full-domain only: the suppressed classes as keys of their label codes, so a batch is
    # recoded by hierarchy lookups instead of a join with every distinct row.
    suppressed_keys: np.ndarray | None = None


@dataclass
class TablePlan:
    name: str
    source: Source
    rules: TablePolicy
    hierarchies: dict[str, hier.Hierarchy]
    qi_table: QiTable | None
    models: list[Model]
    recoding: Recoding | None
    rare: dict[str, set[str]] = field(default_factory=dict)
    output_columns: list[str] = field(default_factory=list)
    timed: dict[str, bool] = field(default_factory=dict)  # date-shifted columns with a time
    # Linked by person to other tables of the extract (see :func:`cascade`):
    where: str = ""  # the filter that removes the persons suppressed anywhere
    cascaded: int = 0  # rows removed with them, beyond this table's own suppressed records
    original: Source | None = None  # the unfiltered table, when the plan was made again

    @property
    def masks(self) -> bool:
        """Do suppressed records stay in the release, masked ('*')?"""
        return self.rules.suppression == "mask" and not self.where

    @property
    def rows_in(self) -> int:
        return (self.original or self.source).rows


# --- checks -----------------------------------------------------------------------------


def check_columns(source: Source, rules: TablePolicy, person_column: str) -> list[str]:
    unknown = [c for c in rules.columns if c not in source.columns]
    if unknown:
        raise PolicyError(
            f"the policy of table {source.name!r} names column(s) {unknown} that the data"
            f" lacks (it has {source.columns[:20]})"
        )
    unlisted = [c for c in source.columns if c not in rules.columns]
    if unlisted and rules.unlisted == "error":
        raise PolicyError(
            f"table {source.name!r} has column(s) {unlisted} without a rule in the policy",
            hint="Give every column a rule (drop, keep, ...), or set `unlisted: drop`.",
        )
    for name, rule in rules.columns.items():
        if rule.action == "date_shift" and (rule.person or person_column) not in source.columns:
            raise PolicyError(
                f"column {name!r} is date-shifted per person, but table {source.name!r} has no"
                f" person column {(rule.person or person_column)!r}"
            )
    return [c for c in source.columns if c in rules.columns and rules.columns[c].action != "drop"]


def check_types(con: duckdb.DuckDBPyConnection, source: Source, rules: TablePolicy) -> None:
    """Dates must parse and numbers must be numbers in every row, before anything is written."""
    for name, rule in rules.columns.items():
        target = _expected_type(rule)
        if target is None:
            continue
        column = quote(name)
        cast = f"TRY_CAST(CAST({column} AS VARCHAR) AS {target})"
        if target == "TIMESTAMP":
            cast = timestamp_sql(column)
        rows = con.execute(
            f"SELECT DISTINCT CAST({column} AS VARCHAR) FROM {source.sql}"
            f" WHERE {column} IS NOT NULL AND {cast} IS NULL LIMIT 3"
        ).fetchall()
        if rows:
            kind = "dates" if target == "TIMESTAMP" else "numbers"
            sample = ", ".join(repr(r[0]) for r in rows)
            raise ColumnTypeError(
                f"column {name!r} of table {source.name!r} must hold {kind} for action"
                f" {rule.action!r}, but holds e.g. {sample}"
            )


def timestamp_sql(column: str) -> str:
    """A date or timestamp column, or text holding either, as a TIMESTAMP (NULL if neither)."""
    text = f"CAST({column} AS VARCHAR)"
    return f"coalesce(TRY_CAST({text} AS TIMESTAMP), CAST(TRY_CAST({text} AS DATE) AS TIMESTAMP))"


def timed_columns(
    con: duckdb.DuckDBPyConnection, source: Source, rules: TablePolicy
) -> dict[str, bool]:
    """Per date-shifted column: does any value carry a time of day (then times are written)?"""
    timed = {}
    for name in rules.names("date_shift"):
        stamp = timestamp_sql(quote(name))
        found = con.execute(
            f"SELECT coalesce(bool_or({stamp} <> date_trunc('day', {stamp})), false)"
            f" FROM {source.sql}"
        ).fetchall()
        timed[name] = bool(found[0][0])
    return timed


def _expected_type(rule: ColumnRule) -> str | None:
    if rule.action in ("date_shift", "date_generalize"):
        return "TIMESTAMP"
    if rule.action in ("top_bottom", "round", "microaggregate"):
        return "DOUBLE"
    if rule.action == "generalize" and rule.hierarchy and rule.hierarchy.type == "interval":
        return "DOUBLE"
    return None


def require_key(policy: Policy, key: ProjectKey | None) -> None:
    if policy.needs_key and key is None:
        raise KeyStoreError(
            f"policy {policy.name!r} pseudonymizes or shifts dates, which needs the key of"
            f" project {policy.project!r}"
        )
    if policy.needs_key and key is not None and policy.project and key.project != policy.project:
        raise KeyStoreError(
            f"the key is project {key.project!r}'s, but the policy is for {policy.project!r}"
        )


# --- hierarchies and the compact table --------------------------------------------------


def distinct_text(con: duckdb.DuckDBPyConnection, source: Source, column: str) -> list[str]:
    rows = con.execute(f"SELECT DISTINCT {source.text(column)} FROM {source.sql}").fetchall()
    return [str(r[0]) for r in rows]


def build_hierarchy(
    spec: HierarchySpec, name: str, values: list[str], base: Path
) -> hier.Hierarchy:
    if spec.file is not None:
        path = Path(spec.file)
        return hier.load_csv(path if path.is_absolute() else base / path, name)
    if spec.type == "interval":
        return hier.intervals(name, [v for v in values if v != ""], spec.widths or [])
    if spec.type == "prefix":
        return hier.prefixes(name, values, spec.keep or [])
    assert spec.type is not None
    return hier.GENERATED[spec.type](name, values)


def qi_counts(con: duckdb.DuckDBPyConnection, source: Source, columns: list[str]) -> pd.DataFrame:
    """Distinct rows of ``columns`` (as text) with their record counts, grouped by DuckDB."""
    if not columns:
        return pd.DataFrame({COUNT: [source.rows]})
    select = ", ".join(f"{source.text(c)} AS {quote(c)}" for c in columns)
    relation = con.sql(f"SELECT {select}, count(*) AS {COUNT} FROM {source.sql} GROUP BY ALL")
    assert relation is not None
    # Fetched in batches: DuckDB need not hold the whole result beside its spilled data.
    frame: pd.DataFrame = relation.to_arrow_reader(BATCH_ROWS).read_all().to_pandas()
    for column in columns:
        frame[column] = frame[column].astype(object)
    return frame


def build_models(
    con: duckdb.DuckDBPyConnection,
    rules: TablePolicy,
    hierarchies: dict[str, hier.Hierarchy],
    qis: list[str],
    base: Path,
) -> list[Model]:
    spec = rules.models
    models: list[Model] = []
    if spec.k is not None:
        models.append(KAnonymity(spec.k))
    kinds = {"distinct": DistinctLDiversity, "entropy": EntropyLDiversity}
    for div in spec.l_diversity:
        if div.variant == "recursive":
            models.append(RecursiveCLDiversity(div.column, div.l, div.c))
        else:
            models.append(kinds[div.variant](div.column, div.l))
    for close in spec.t_closeness:
        tree = None
        if close.hierarchy is not None:
            tree = build_hierarchy(close.hierarchy, close.column, [], base)
        models.append(TCloseness(close.column, close.t, close.distance, tree))
    if spec.k_map is not None:
        models.append(
            KMap(spec.k_map.k, population_table(con, spec.k_map.population, qis, hierarchies, base))
        )
    return models


def population_source(
    con: duckdb.DuckDBPyConnection, path_text: str, qis: list[str], base: Path
) -> Source:
    path = Path(path_text)
    source = file_source(con, "population", path if path.is_absolute() else base / path)
    missing = [q for q in qis if q not in source.columns]
    if missing:
        raise PolicyError(f"the k-map population table lacks the quasi-identifier(s) {missing}")
    return source


def population_table(
    con: duckdb.DuckDBPyConnection,
    path_text: str,
    qis: list[str],
    hierarchies: dict[str, hier.Hierarchy],
    base: Path,
) -> QiTable:
    source = population_source(con, path_text, qis, base)
    counts = qi_counts(con, source, qis)
    return from_frame(counts, qis, [hierarchies[q] for q in qis], count_column=COUNT)


# --- planning ---------------------------------------------------------------------------


def plan_table(
    con: duckdb.DuckDBPyConnection,
    source: Source,
    rules: TablePolicy,
    policy: Policy,
) -> TablePlan:
    output_columns = check_columns(source, rules, policy.person_column)
    check_types(con, source, rules)
    base = policy.base_dir()
    qis = rules.quasi_identifiers
    # A generated hierarchy must also cover the k-map population's values.
    sources = [source]
    if rules.models.k_map is not None:
        sources.append(population_source(con, rules.models.k_map.population, qis, base))
    hierarchies: dict[str, hier.Hierarchy] = {}
    for q in qis:
        spec = rules.columns[q].hierarchy
        assert spec is not None
        values = [] if spec.file else sorted({v for s in sources for v in distinct_text(con, s, q)})
        hierarchies[q] = build_hierarchy(spec, q, values, base)
    models = build_models(con, rules, hierarchies, qis, base)
    plan = TablePlan(source.name, source, rules, hierarchies, None, models, None)
    plan.output_columns = output_columns
    plan.timed = timed_columns(con, source, rules)
    if qis:
        search_plan(con, plan)
    elif models:
        raise PolicyError(
            f"table {source.name!r} has privacy models but no quasi-identifier to generalize",
            hint="Mark the quasi-identifiers with `action: generalize` and a hierarchy.",
        )
    plan.rare = rare_values(con, source, rules)
    return plan


def search_plan(
    con: duckdb.DuckDBPyConnection, plan: TablePlan, levels: dict[str, int] | None = None
) -> None:
    """Count the table's QI rows and find its recoding (at the given levels, if any)."""
    qis, rules = list(plan.hierarchies), plan.rules
    sensitive = [s for s in rules.sensitive if s not in qis]
    counts = qi_counts(con, plan.source, qis + sensitive)
    trees = [plan.hierarchies[q] for q in qis]
    plan.qi_table = from_frame(counts, qis, trees, sensitive, COUNT, grouped=True)
    plan.recoding = recode(plan.qi_table, rules, plan.models, levels)


def _bounds(
    table: QiTable, rules: TablePolicy, levels: dict[str, int] | None = None
) -> list[tuple[int, int]]:
    if levels is not None:
        return [(levels[q], levels[q]) for q in table.qis]
    bounds = []
    for q, h in zip(table.qis, table.hierarchies, strict=True):
        rule = rules.columns[q]
        low = rule.level if rule.level is not None else (rule.min_level or 0)
        high = rule.level if rule.level is not None else rule.max_level
        bounds.append((low, h.height - 1 if high is None else high))
    return bounds


def recode(
    table: QiTable, rules: TablePolicy, models: list[Model], levels: dict[str, int] | None = None
) -> Recoding:
    """The recoding found by the policy's search, or the one at ``levels`` (full-domain)."""
    spec = rules.models
    if rules.search.method == "mondrian":
        if any(isinstance(m, KMap) for m in models):
            raise PolicyError("k-map is checked on full-domain generalizations: use method optimal")
        found = mondrian.anonymize(table, models, spec.max_suppression)
        raw = raw_qis(table)
        for i, q in enumerate(table.qis):
            raw[f"__out__{q}"] = found.labels[:, i]
        raw["__suppressed__"] = found.suppressed
        return Recoding(
            raw.drop_duplicates(table.qis),
            None,
            "mondrian",
            found.utility,
            checked=found.partitions,
            seconds=found.seconds,
        )
    result = search.optimal(
        table, models, spec.max_suppression, rules.search.metric, _bounds(table, rules, levels)
    )
    suppressed = result.check.suppressed[result.check.part.ids]
    codes = [table.label_codes(i, lv) for i, lv in enumerate(result.levels)]
    keys = class_keys(codes, label_counts(table.hierarchies, result.levels))
    recoding = Recoding(
        pd.DataFrame(),
        result.levels_by_name(table),
        "optimal",
        result.utility,
        result.lattice_size,
        result.checked,
        result.seconds,
        None if keys is None else np.unique(keys[suppressed]),
    )
    if keys is None:  # too many label combinations for a key: join on the raw values
        raw = raw_qis(table)
        for i, q in enumerate(table.qis):
            labels = table.hierarchies[i].labels(result.levels[i])[codes[i]]
            raw[f"__out__{q}"] = np.where(suppressed, hier.TOP, labels)
        raw["__suppressed__"] = suppressed
        recoding.raw = raw.drop_duplicates(table.qis)
    return recoding


def label_counts(trees: list[hier.Hierarchy], levels: tuple[int, ...]) -> list[int]:
    return [len(h.labels(lv)) for h, lv in zip(trees, levels, strict=True)]


def class_keys(codes: list[np.ndarray], cards: list[int]) -> np.ndarray | None:
    """A class's mixed-radix key from its label codes (None if it could overflow)."""
    if capped_product(cards) >= 2**62:
        return None
    key = np.zeros(len(codes[0]) if codes else 0, dtype=np.int64)
    for column, card in zip(codes, cards, strict=True):
        key = key * card + column
    return key


def raw_qis(table: QiTable) -> pd.DataFrame:
    """Each distinct row's quasi-identifiers as the text the data holds."""
    return pd.DataFrame(
        {q: table.hierarchies[i].leaf_values(table.leaves[:, i]) for i, q in enumerate(table.qis)}
    )


def rare_values(
    con: duckdb.DuckDBPyConnection, source: Source, rules: TablePolicy
) -> dict[str, set[str]]:
    rare: dict[str, set[str]] = {}
    for name in rules.names("suppress_cells"):
        column = quote(name)
        limit = rules.columns[name].min_count
        rows = con.execute(
            f"SELECT CAST({column} AS VARCHAR) FROM {source.sql} WHERE {column} IS NOT NULL"
            f" GROUP BY 1 HAVING count(*) < {int(limit or 0)}"
        ).fetchall()
        rare[name] = {str(r[0]) for r in rows}
    return rare


# --- streaming out ----------------------------------------------------------------------


def keyed_sql(plan: TablePlan, policy: Policy) -> str:
    """Pseudonyms and shifted dates, computed by the query engine from the bound key."""
    source, parts = plan.source, []
    for name in plan.output_columns:
        rule = plan.rules.columns[name]
        if rule.action == "pseudonym":
            text = source.text(name, blank=False)
            expr = keys.pseudonym_sql(rule.namespace or name, text, rule.length)
            parts.append(f", {expr} AS {quote('__ps__' + name)}")
        elif rule.action == "date_shift":
            person = source.text(rule.person or policy.person_column)
            days = keys.offset_sql(transforms.DATE_SHIFT, person, rule.max_days)
            shape = "%Y-%m-%d %H:%M:%S" if plan.timed.get(name) else "%Y-%m-%d"
            shifted = f"strftime({timestamp_sql(quote(name))} + to_days({days}), '{shape}')"
            parts.append(f", {shifted} AS {quote('__ds__' + name)}")
    return "".join(parts)


RAW_ACTIONS = frozenset({"keep", "round", "top_bottom", "date_generalize", "suppress_cells"})


def select_sql(plan: TablePlan, policy: Policy, means: list[str] | None = None) -> str:
    """The batch query: the columns the transforms read, each QI as the same text the plan
    grouped, keyed columns, and for micro-aggregated columns their group means, joined by
    position from the tables :func:`group_means` made."""
    source, rules = plan.source, plan.rules
    raw = [quote(c) for c in plan.output_columns if rules.columns[c].action in RAW_ACTIONS]
    raw += [f"{source.text(q)} AS {quote('__qi__' + q)}" for q in rules.quasi_identifiers]
    columns = (", ".join(raw) + keyed_sql(plan, policy)).lstrip(", ") or "NULL AS __none__"
    aggregated = rules.names("microaggregate")
    if not aggregated:
        return f"SELECT {columns} FROM {source.sql} {plan.where}"
    assert means is not None
    joined = f"(SELECT * FROM {source.sql} {plan.where})"
    for name, table in zip(aggregated, means, strict=True):
        joined += f" POSITIONAL JOIN {table}"
        columns += f", {table}.__mean AS {quote('__mean__' + name)}"
    return f"SELECT {columns} FROM {joined}"


def group_means(con: duckdb.DuckDBPyConnection, plan: TablePlan) -> list[str]:
    """Per micro-aggregated column, a table of each record's group mean in record order.

    Records are sorted by value (ties by position) and cut into groups of k, the last
    group taking the remainder; missing values stay missing. The table holds only the
    position and the mean, so DuckDB sorts it out of core: a window over the whole
    records would have to hold them in memory.
    """
    tables = []
    for name in plan.rules.names("microaggregate"):
        k = int(plan.rules.columns[name].k or 2)
        value = f"TRY_CAST(CAST({quote(name)} AS VARCHAR) AS DOUBLE)"
        missing = "v IS NULL"
        rank = f"row_number() OVER (PARTITION BY {missing} ORDER BY v, __row) - 1"
        groups = f"greatest(count(*) OVER (PARTITION BY {missing}) // {k} - 1, 0)"
        table = f"__pmhub_means_{len(con.execute('SHOW TABLES').fetchall())}"
        con.execute(
            f"CREATE TEMP TABLE {table} AS SELECT __mean FROM ("
            f"SELECT __row, avg(v) OVER (PARTITION BY {missing}, g) AS __mean FROM ("
            f"SELECT __row, v, least(({rank}) // {k}, {groups}) AS g FROM ("
            # row_number() OVER () numbers the records in scan order (a streaming window)
            f"SELECT row_number() OVER () AS __row, {value} AS v"
            f" FROM {plan.source.sql} {plan.where}))) ORDER BY __row"
        )
        tables.append(table)
    return tables


def batches(
    con: duckdb.DuckDBPyConnection, sql: str, parameters: dict[str, bytes]
) -> Iterator[pd.DataFrame]:
    used = {name: value for name, value in parameters.items() if f"${name}" in sql}
    relation = con.sql(sql, params=used or None)
    assert relation is not None
    reader = relation.to_arrow_reader(BATCH_ROWS)
    for batch in reader:
        yield pd.DataFrame(
            {name: _column(batch.column(i)) for i, name in enumerate(batch.schema.names)}
        )


def _column(array: pa.Array[Any]) -> pd.Series:
    """Text as plain object arrays (fast to map and hash), other types as pandas makes them."""
    if pa.types.is_string(array.type) or pa.types.is_large_string(array.type):
        return pd.Series(array.to_numpy(zero_copy_only=False), dtype=object)
    return array.to_pandas()


def transform_batch(frame: pd.DataFrame, plan: TablePlan) -> pd.DataFrame:
    frame = apply_recoding(frame, plan)
    if "__suppressed__" in frame and not plan.masks:
        frame = frame[~frame["__suppressed__"].to_numpy(dtype=bool)]
    out: dict[str, Any] = {}
    for name in plan.output_columns:
        out[name] = transform_column(frame, name, plan)
    return pd.DataFrame(out, index=frame.index)


def apply_recoding(frame: pd.DataFrame, plan: TablePlan) -> pd.DataFrame:
    recoding = plan.recoding
    if recoding is None:
        return frame
    qis = list(plan.hierarchies)
    if recoding.suppressed_keys is not None and recoding.levels is not None:
        return recode_by_lookup(frame, plan, recoding.levels, recoding.suppressed_keys)
    keys = pd.DataFrame({q: frame["__qi__" + q].astype(object) for q in qis}, index=frame.index)
    merged = keys.merge(recoding.raw, on=qis, how="left", validate="many_to_one")
    if merged["__suppressed__"].isna().any():
        raise PrivacyError(f"table {plan.name!r} changed while it was being anonymized")
    merged.index = frame.index
    frame = frame.copy()
    for q in qis:
        frame[f"__out__{q}"] = merged[f"__out__{q}"]
    frame["__suppressed__"] = merged["__suppressed__"].astype(bool)
    return frame


def recode_by_lookup(
    frame: pd.DataFrame, plan: TablePlan, levels: dict[str, int], suppressed: np.ndarray
) -> pd.DataFrame:
    trees = [plan.hierarchies[q] for q in levels]
    codes = []
    for q, tree in zip(levels, trees, strict=True):
        leaves = tree.leaf_index(frame["__qi__" + q].to_numpy(dtype=object), q)
        codes.append(tree.codes(levels[q])[leaves])
    keys = class_keys(codes, label_counts(trees, tuple(levels.values())))
    assert keys is not None
    hidden = np.isin(keys, suppressed)
    frame = frame.copy()
    for (q, level), tree, column in zip(levels.items(), trees, codes, strict=True):
        frame["__out__" + q] = np.where(hidden, hier.TOP, tree.labels(level)[column])
    frame["__suppressed__"] = hidden
    return frame


COMPUTED = {
    "generalize": "__out__",
    "pseudonym": "__ps__",
    "date_shift": "__ds__",
    "microaggregate": "__mean__",
}


def transform_column(frame: pd.DataFrame, name: str, plan: TablePlan) -> pd.Series:
    rule = plan.rules.columns[name]
    action = rule.action
    computed = COMPUTED.get(action)
    if computed is not None:  # by the batch query or the recoding
        return frame[computed + name]
    values = frame[name]
    if action == "date_generalize":
        return transforms.generalize_dates(values, rule.to, name)
    if action == "top_bottom":
        return transforms.top_bottom(values, rule, name)
    if action == "round":
        return transforms.round_to(values, rule, name)
    if action == "suppress_cells":
        return transforms.suppress_rare(values, plan.rare[name])
    return values


class Writer:
    """Appends batches to one CSV or Parquet file with a schema fixed by the rules."""

    def __init__(self, path: Path, schema: pa.Schema) -> None:
        self.path = path
        self.schema = schema
        self._csv: pa_csv.CSVWriter | None = None
        self._parquet: pq.ParquetWriter | None = None
        if path.suffix == ".parquet":
            self._parquet = pq.ParquetWriter(str(path), schema)
        else:
            self._csv = pa_csv.CSVWriter(str(path), schema)

    def write(self, frame: pd.DataFrame) -> None:
        table = pa.Table.from_pandas(frame, schema=self.schema, preserve_index=False)
        if self._parquet is not None:
            self._parquet.write_table(table)
        elif self._csv is not None:
            self._csv.write_table(table)

    def close(self) -> None:
        if self._parquet is not None:
            self._parquet.close()
        if self._csv is not None:
            self._csv.close()


NUMERIC_ACTIONS = frozenset({"top_bottom", "round", "microaggregate"})


def output_schema(plan: TablePlan) -> pa.Schema:
    fields = []
    for name in plan.output_columns:
        action = plan.rules.columns[name].action
        fields.append(pa.field(name, pa.float64() if action in NUMERIC_ACTIONS else pa.string()))
    return pa.schema(fields)


def as_strings(frame: pd.DataFrame, schema: pa.Schema) -> pd.DataFrame:
    for f in schema:
        if f.type == pa.string():
            column = frame[f.name]
            frame[f.name] = as_text(column).where(column.notna(), None)
    return frame


def stream_table(
    con: duckdb.DuckDBPyConnection,
    plan: TablePlan,
    policy: Policy,
    key: ProjectKey | None,
    path: Path,
    progress: Progress = _nothing,
) -> int:
    schema = output_schema(plan)
    writer = Writer(path, schema)
    parameters = key.sql_parameters() if key is not None else {}
    written = 0
    means = group_means(con, plan)
    try:
        for frame in batches(con, select_sql(plan, policy, means), parameters):
            out = as_strings(transform_batch(frame, plan), schema)
            writer.write(out)
            written += len(out)
            progress(plan.name, written, plan.source.rows)
    finally:
        writer.close()
        for table in means:
            con.execute(f"DROP TABLE IF EXISTS {table}")
    return written


# --- verification -----------------------------------------------------------------------


@dataclass
class Achieved:
    records: int
    suppressed: int
    min_class: int | None
    classes: int
    models_hold: bool
    details: dict[str, float] = field(default_factory=dict)  # violating classes per model
    figures: dict[str, float | None] = field(default_factory=dict)  # achieved k, l, t per model


def verify(
    con: duckdb.DuckDBPyConnection, plan: TablePlan, path: Path
) -> tuple[Achieved, Risk | None]:
    """Group the written release and check every model on it, independently of the search."""
    out = file_source(con, plan.name, path, materialize=False)
    qis = list(plan.hierarchies)
    if not qis:
        return Achieved(out.rows, 0, None, 0, True), None
    assert plan.qi_table is not None
    sensitive = [s for s in plan.rules.sensitive if s not in qis]
    counts = qi_counts(con, out, qis + sensitive)
    budget = search.suppression_budget(plan.qi_table, plan.rules.models.max_suppression)
    # Suppressed records read '*' in every QI. So does a class generalized to the top of
    # every hierarchy, which is a class like any other: the all-'*' rows count as
    # suppressed only when the plan suppressed records.
    star = np.all([counts[q].to_numpy() == hier.TOP for q in qis], axis=0)
    expected = plan.recoding.utility.suppressed_records if plan.recoding else 0
    masked = star if expected > 0 and plan.masks else np.zeros(len(counts), dtype=bool)
    if np.all(masked):
        everything = plan.source.rows
        return Achieved(out.rows, everything, None, 0, everything <= budget), None
    kept = counts[~masked]
    flats = [hier.flat(q, kept[q]) for q in qis]
    table = from_frame(kept, qis, flats, sensitive, COUNT, grouped=True)
    models = verification_models(plan, table, qis)
    part = partition(table, tuple(0 for _ in qis))
    bad = np.zeros(part.classes, dtype=bool)
    details: dict[str, float] = {}
    figures: dict[str, float | None] = {}
    for model in models:
        flags = model.violations(table, part)
        bad |= flags
        details[model.describe()] = float(flags.sum())
        figure = model.achieved(table, part)
        figures[model.describe()] = figure if np.isfinite(figure) else None
    suppressed_rows = plan.source.rows - table.n
    achieved = Achieved(
        records=out.rows,
        suppressed=suppressed_rows,
        min_class=int(part.sizes.min()),
        classes=part.classes,
        models_hold=not bad.any() and suppressed_rows <= budget,
        details=details,
        figures=figures,
    )
    risk = assess(
        np.append(part.sizes, masked_rows(counts, masked)),
        threshold=plan.rules.risk.threshold,
        population_size=plan.rules.risk.population_size,
        cells=cell_space(plan.qi_table),
    )
    return achieved, risk


def masked_rows(counts: pd.DataFrame, masked: np.ndarray) -> int:
    return int(counts.loc[masked, COUNT].sum())


def cell_space(table: QiTable) -> int:
    return capped_product([h.size for h in table.hierarchies])


def verification_models(plan: TablePlan, table: QiTable, qis: list[str]) -> list[Model]:
    """The plan's models restated on the release's own values."""
    assert plan.qi_table is not None
    out: list[Model] = []
    for model in plan.models:
        if isinstance(model, TCloseness):
            source = plan.qi_table.sensitive[model.column]
            shares = (
                np.bincount(
                    source.codes, weights=plan.qi_table.counts, minlength=len(source.values)
                )
                / plan.qi_table.n
            )
            reference = tuple(
                (str(v), float(s)) for v, s in zip(source.values, shares, strict=True)
            )
            out.append(
                TCloseness(model.column, model.t, model.distance, model.hierarchy, reference)
            )
        elif isinstance(model, KMap):
            out.append(KMap(model.k, released_population(plan, model, table, qis)))
        else:
            out.append(model)
    return out


def released_population(plan: TablePlan, model: KMap, table: QiTable, qis: list[str]) -> QiTable:
    assert plan.recoding is not None
    assert plan.recoding.levels is not None
    people = model.population
    frame = pd.DataFrame(
        {
            q: people.hierarchies[i].labels(plan.recoding.levels[q])[
                people.label_codes(i, plan.recoding.levels[q])
            ]
            for i, q in enumerate(qis)
        }
    )
    frame[COUNT] = people.counts
    flats = [
        hier.flat(q, pd.concat([frame[q], pd.Series(table.hierarchies[i].labels(0))]))
        for i, q in enumerate(qis)
    ]
    return from_frame(frame, qis, flats, count_column=COUNT)


def risk_before(plan: TablePlan) -> Risk | None:
    if plan.qi_table is None or not plan.hierarchies:
        return None
    part = partition(plan.qi_table, tuple(0 for _ in plan.hierarchies))
    return assess(
        part.sizes,
        threshold=plan.rules.risk.threshold,
        population_size=plan.rules.risk.population_size,
        cells=cell_space(plan.qi_table),
    )
