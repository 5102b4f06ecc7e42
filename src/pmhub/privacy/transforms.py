"""Record-level column transforms, applied batch by batch.

Each takes a column of one batch and returns the released column. The ones that need a
statistic of the whole column (rare values for cell suppression, group means for
micro-aggregation) get it precomputed by the engine, so a batch never needs the others.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from pmhub.privacy.errors import ColumnTypeError
from pmhub.privacy.keys import ProjectKey
from pmhub.privacy.policy import ColumnRule
from pmhub.privacy.qitable import as_text

DATE_SHIFT = "date-shift"


def pseudonymize(values: pd.Series, key: ProjectKey, namespace: str, length: int) -> pd.Series:
    """HMAC-SHA-256 of each value under the project key; missing stays missing."""
    text = as_text(values).to_numpy(dtype=object)
    present = values.notna().to_numpy()
    codes, uniques = pd.factorize(text)
    hashed = np.array([key.pseudonym(namespace, v, length) for v in uniques], dtype=object)
    out = hashed[codes] if len(uniques) else np.full(len(text), None, dtype=object)
    out[~present] = None
    return pd.Series(out, index=values.index, dtype=object)


@dataclass
class Offsets:
    """Per-person day offsets, derived from the key so every table of a person agrees."""

    key: ProjectKey
    max_days: int
    cache: dict[str, int] = field(default_factory=dict)

    def days(self, persons: pd.Series) -> np.ndarray:
        codes, uniques = pd.factorize(as_text(persons).to_numpy(dtype=object))
        cache = self.cache
        for person in uniques:
            if person not in cache:
                cache[person] = self.key.offset(DATE_SHIFT, person, self.max_days)
        days = np.array([cache[p] for p in uniques], dtype=np.int64)
        return days[codes] if len(uniques) else np.zeros(0, dtype=np.int64)


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


def shift_dates(values: pd.Series, persons: pd.Series, offsets: Offsets, column: str) -> pd.Series:
    parsed = parse_dates(values, column)
    shifted = parsed + pd.to_timedelta(offsets.days(persons), unit="D")
    return format_dates(shifted)


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
