"""Plain feature tables (CSV or Parquet, one row per person, a 0/1 label column): federated
learning on data that is not in a CDW. Each site reads only its own table."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pmhub.predict.errors import TaskDefinitionError

MAX_TABLE_BYTES = 2 << 30  # a feature table of a few million rows; refuse anything larger
MAX_COLUMNS = 5000


@dataclass
class SiteTable:
    site: str
    columns: list[str]  # feature columns, in the file's order
    x: np.ndarray  # rows × columns, float; NaN where a value is missing
    y: np.ndarray  # 0/1


def _read(path: Path) -> pa.Table:
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    try:
        size = path.stat().st_size
    except OSError as exc:
        raise TaskDefinitionError(f"cannot read feature table {path}: {exc.strerror}") from None
    if size > MAX_TABLE_BYTES:
        raise TaskDefinitionError(f"feature table {path} is larger than 2 GiB")
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            return pq.read_table(path)
        return pacsv.read_csv(path)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OSError) as exc:
        raise TaskDefinitionError(
            f"feature table {path} is not a readable CSV or Parquet file: {exc}",
            hint="Give one row per person with a header line, numeric features and a 0/1 label.",
        ) from None


def _label(table: pa.Table, label: str, path: Path) -> np.ndarray:
    if label not in table.column_names:
        raise TaskDefinitionError(
            f"feature table {path} has no label column {label!r} "
            f"(columns: {', '.join(table.column_names[:20])})",
            hint="Name the label column with --label.",
        )
    column = table.column(label)
    if column.null_count:
        raise TaskDefinitionError(
            f"{path}: the label {label!r} is empty in {column.null_count} rows"
        )
    if pa.types.is_boolean(column.type):
        values = column.to_numpy(zero_copy_only=False).astype(int)
    elif pa.types.is_integer(column.type) or pa.types.is_floating(column.type):
        values = column.to_numpy(zero_copy_only=False)
    else:
        raise TaskDefinitionError(f"{path}: the label {label!r} is {column.type}, not 0/1")
    bad = ~np.isin(values, (0, 1))
    if bad.any():
        raise TaskDefinitionError(
            f"{path}: the label {label!r} holds values other than 0 and 1 in {int(bad.sum())} rows"
        )
    return np.asarray(values, dtype=int)


def _features(table: pa.Table, label: str, path: Path) -> tuple[list[str], np.ndarray]:
    names = [n for n in table.column_names if n != label]
    if not names:
        raise TaskDefinitionError(f"{path}: no feature column beside the label")
    if len(names) > MAX_COLUMNS:
        raise TaskDefinitionError(f"{path}: {len(names)} feature columns (at most {MAX_COLUMNS})")
    out = np.empty((table.num_rows, len(names)))
    for j, name in enumerate(names):
        column = table.column(name)
        kind = column.type
        if not (
            pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind)
        ):
            raise TaskDefinitionError(
                f"{path}: feature {name!r} is {kind}, not a number",
                hint="Encode text and dates as numbers (one column per category) first.",
            )
        values = pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False)
        if np.isinf(values).any():
            raise TaskDefinitionError(f"{path}: feature {name!r} holds an infinite value")
        out[:, j] = values
    return names, out


def load(site: str, path: Path, label: str) -> SiteTable:
    table = _read(path)
    if table.num_rows == 0:
        raise TaskDefinitionError(f"feature table {path} has no rows")
    y = _label(table, label, path)
    columns, x = _features(table, label, path)
    return SiteTable(site, columns, x, y)


def held_out(y: np.ndarray, share: float, seed: int, site: str) -> np.ndarray:
    """True for the site's held-out rows: the same share of outcomes and non-outcomes."""
    rng = np.random.default_rng([seed, *site.encode("utf-8")[:16]])
    test = np.zeros(len(y), dtype=bool)
    for label in (0, 1):
        rows = np.flatnonzero(y == label)
        test[rng.permutation(rows)[: round(len(rows) * share)]] = True
    return test
