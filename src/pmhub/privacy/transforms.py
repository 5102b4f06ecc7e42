"""Record-level column transforms, applied batch by batch.

Each takes a column of one batch and returns the released column. The ones that need a
statistic of the whole column (rare values for cell suppression, group means for
micro-aggregation) get it precomputed by the engine, so a batch never needs the others.
"""

from __future__ import annotations

import pandas as pd

from pmhub.privacy.errors import ColumnTypeError
from pmhub.privacy.policy import ColumnRule
from pmhub.privacy.qitable import as_text

DATE_SHIFT = "date-shift"


def parse_dates(values: pd.Series, column: str) -> pd.Series:
    if pd.api.types.is_datetime64_any_dtype(values):
        return values
    text = values.astype(object).where(values.notna(), None)
    kind = pd.api.types.infer_dtype(text, skipna=True)
    if kind in ("date", "datetime", "datetime64"):  # DATE/TIMESTAMP columns of DuckDB, Parquet
        return pd.to_datetime(text, errors="coerce")
    parsed = pd.to_datetime(text, format="ISO8601", errors="coerce")
    bad = text.notna() & parsed.isna()
    if bad.any():
        sample = ", ".join(repr(v) for v in text[bad].head(3))
        raise ColumnTypeError(f"column {column!r} holds values that are not dates, e.g. {sample}")
    return parsed


def format_dates(parsed: pd.Series) -> pd.Series:
    has_time = bool((parsed.dropna() != parsed.dropna().dt.normalize()).any())
    text = parsed.dt.strftime("%Y-%m-%d %H:%M:%S" if has_time else "%Y-%m-%d")
    out: pd.Series = text.astype(object).where(parsed.notna(), None)
    return out


def generalize_dates(values: pd.Series, to: str, column: str) -> pd.Series:
    parsed = parse_dates(values, column)
    text = parsed.dt.strftime("%Y-%m" if to == "month" else "%Y")
    out: pd.Series = text.astype(object).where(parsed.notna(), None)
    return out


def numbers(values: pd.Series, column: str) -> pd.Series:
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        return values.astype(float)
    parsed = pd.to_numeric(values.astype(object).where(values.notna(), None), errors="coerce")
    bad = values.notna() & parsed.isna()
    if bad.any():
        sample = ", ".join(repr(v) for v in values[bad].head(3))
        raise ColumnTypeError(f"column {column!r} holds values that are not numbers, e.g. {sample}")
    return parsed.astype(float)


def top_bottom(values: pd.Series, rule: ColumnRule, column: str) -> pd.Series:
    return numbers(values, column).clip(lower=rule.bottom, upper=rule.top)


def round_to(values: pd.Series, rule: ColumnRule, column: str) -> pd.Series:
    assert rule.base is not None
    return (numbers(values, column) / rule.base).round() * rule.base


def suppress_rare(values: pd.Series, rare: set[str]) -> pd.Series:
    return values.where(~as_text(values).isin(rare) | values.isna(), None)
