"""Covariates from the CDW in look-back windows, as a sparse matrix and a feature dictionary.

For every person at risk and every look-back window (days before the index, the index
day included) the site computes, in SQL on its own CDW:

- conditions, drugs and procedures by concept and, with ``ancestors``, by every ancestor
  (``concept_ancestor``): 1 when any record starts in the window;
- measurements by concept: the latest value, its trend (change per year from the earliest
  value in the window) and whether it was measured at all (the complement of a missing
  indicator: the value column holds the mean where nothing was measured);
- visits by visit concept: how many started in the window (as log(1 + count));
- demographics: age, sex, 5-year age band.

Features are keyed by text (``condition:313217:365``) so that every site computes the
same columns; the hub fixes the vocabulary (:mod:`pmhub.federation.dictionary`): features
that fewer than ``min_persons`` persons have, over all sites, are dropped, and value
features are standardised by the pooled mean and standard deviation.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import scipy.sparse as sp

from pmhub.cdm.backends import Backend
from pmhub.predict.population import Population
from pmhub.predict.task import Covariates

Kind = Literal["binary", "count", "value"]
INDEX_TABLE = "pmhub_predict_windows"
DOMAIN_TABLES = {  # domain → (table, concept column, date column)
    "condition": ("condition_occurrence", "condition_concept_id", "condition_start_date"),
    "drug": ("drug_exposure", "drug_concept_id", "drug_exposure_start_date"),
    "procedure": ("procedure_occurrence", "procedure_concept_id", "procedure_date"),
}
DOMAIN_WORDS = {"condition": "condition", "drug": "drug", "procedure": "procedure"}


@dataclass(frozen=True)
class Feature:
    key: str
    name: str  # in words: the concept's name, the window
    domain: str
    concept_id: int
    window: int  # look-back days (0 for demographics)
    kind: Kind
    mean: float = 0.0  # value features: standardised by these (pooled over sites)
    sd: float = 1.0


@dataclass
class FeatureDictionary:
    """The columns of the matrix, in order; the same at every site."""

    features: list[Feature]
    dropped: int = 0  # candidate features rarer than the threshold

    def __post_init__(self) -> None:
        self.position = {f.key: i for i, f in enumerate(self.features)}

    def __len__(self) -> int:
        return len(self.features)

    def names(self) -> list[str]:
        return [f.name for f in self.features]

    def to_json(self) -> dict[str, Any]:
        return {"features": [asdict(f) for f in self.features], "dropped": self.dropped}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FeatureDictionary:
        return cls([Feature(**f) for f in data["features"]], int(data.get("dropped", 0)))


@dataclass
class RawCovariates:
    """A site's covariates before the vocabulary is fixed: long rows (row, key, value)."""

    rows: int
    long: pd.DataFrame  # columns row_id, key, value (raw: counts and values untransformed)
    info: dict[str, Feature] = field(default_factory=dict)  # key → description

    def counts(self) -> pd.DataFrame:
        """Per key: persons with it, and for values their sum and sum of squares."""
        grouped = self.long.groupby("key")
        out = grouped["row_id"].nunique().rename("persons").to_frame()
        out["total"] = grouped["value"].sum()
        out["squares"] = grouped["value"].apply(lambda v: float((v.astype(float) ** 2).sum()))
        return out


# --- extraction --------------------------------------------------------------------------


def _windows_table(backend: Backend, population: Population, windows: Sequence[int]) -> None:
    frame = population.frame
    index = frame["index_date"].dt.date
    parts = [
        pa.table(
            {
                "row_id": pa.array(frame["row_id"].astype("int64")),
                "person_id": pa.array(frame["person_id"].astype("int64")),
                "window_days": pa.array(np.full(len(frame), w, dtype=np.int32)),
                "window_start": pa.array((frame["index_date"] - pd.Timedelta(days=w - 1)).dt.date),
                "index_date": pa.array(index),
            }
        )
        for w in windows
    ]
    table = pa.concat_tables(parts)
    backend.execute(f"DROP TABLE IF EXISTS {INDEX_TABLE}")
    backend.execute(
        f"CREATE TEMPORARY TABLE {INDEX_TABLE} (row_id BIGINT, person_id BIGINT, "
        "window_days INTEGER, window_start DATE, index_date DATE)"
    )
    backend.insert_batches(INDEX_TABLE, table.schema, table.to_batches())


def _fetch(backend: Backend, sql: str, columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame(backend.fetchall(sql), columns=columns)


def _events_sql(table: str, concept: str, date: str, ancestors: bool) -> str:
    base = (
        f"SELECT DISTINCT w.row_id, w.window_days, e.{concept} AS concept_id "
        f"FROM {INDEX_TABLE} w JOIN {table} e ON e.person_id = w.person_id "
        f"AND e.{date} >= w.window_start AND e.{date} <= w.index_date "
        f"WHERE e.{concept} <> 0"
    )
    if not ancestors:
        return base
    return (
        f"SELECT DISTINCT b.row_id, b.window_days, a.ancestor_concept_id AS concept_id "
        f"FROM ({base}) b JOIN concept_ancestor a ON a.descendant_concept_id = b.concept_id "
        "AND a.min_levels_of_separation > 0"
    )


def _events(backend: Backend, domain: str, ancestors: bool) -> pd.DataFrame:
    table, concept, date = DOMAIN_TABLES[domain]
    frames = []
    for group in (False, True) if ancestors else (False,):
        found = _fetch(
            backend, _events_sql(table, concept, date, group), ["row_id", "window", "concept"]
        )
        prefix = f"{domain}_group" if group else domain
        found["key"] = (
            prefix + ":" + found["concept"].astype(str) + ":" + found["window"].astype(str)
        )
        found["value"] = 1.0
        frames.append(found)
    return pd.concat(frames, ignore_index=True)


MEASUREMENT_SQL = f"""
SELECT row_id, window_days, concept_id, value, days, rank_last, rank_first FROM (
  SELECT w.row_id, w.window_days, m.measurement_concept_id AS concept_id,
         m.value_as_number AS value, w.index_date - m.measurement_date AS days,
         ROW_NUMBER() OVER (PARTITION BY w.row_id, w.window_days, m.measurement_concept_id
                            ORDER BY m.measurement_date DESC, m.measurement_id DESC) AS rank_last,
         ROW_NUMBER() OVER (PARTITION BY w.row_id, w.window_days, m.measurement_concept_id
                            ORDER BY m.measurement_date, m.measurement_id) AS rank_first
  FROM {INDEX_TABLE} w JOIN measurement m ON m.person_id = w.person_id
   AND m.measurement_date >= w.window_start AND m.measurement_date <= w.index_date
  WHERE m.measurement_concept_id <> 0 AND m.value_as_number IS NOT NULL
) ranked WHERE rank_last = 1 OR rank_first = 1
"""


def _measurements(backend: Backend) -> pd.DataFrame:
    found = _fetch(
        backend, MEASUREMENT_SQL, ["row_id", "window", "concept", "value", "days", "last", "first"]
    )
    found["value"] = found["value"].astype(float)
    found["days"] = found["days"].astype(float)
    finite = np.isfinite(found["value"])
    found = found[finite]
    last = found[found["last"] == 1].set_index(["row_id", "window", "concept"])
    first = found[found["first"] == 1].set_index(["row_id", "window", "concept"])
    first = first.reindex(last.index)
    span_years = (first["days"] - last["days"]) / 365.25
    trend = ((last["value"] - first["value"]) / span_years).where(span_years >= 30 / 365.25, 0.0)
    keyed = last.reset_index()
    suffix = ":" + keyed["concept"].astype(str) + ":" + keyed["window"].astype(str)
    value = pd.DataFrame(
        {"row_id": keyed["row_id"], "key": "measurement" + suffix, "value": keyed["value"]}
    )
    measured = value.assign(key="measured" + suffix, value=1.0)
    slope = pd.DataFrame(
        {"row_id": keyed["row_id"], "key": "measurement_trend" + suffix, "value": trend.to_numpy()}
    )
    slope = slope[slope["value"] != 0]
    return pd.concat([value, measured, slope], ignore_index=True)


VISIT_SQL = f"""
SELECT w.row_id, w.window_days, v.visit_concept_id, count(*) AS visits
FROM {INDEX_TABLE} w JOIN visit_occurrence v ON v.person_id = w.person_id
 AND v.visit_start_date >= w.window_start AND v.visit_start_date <= w.index_date
WHERE v.visit_concept_id <> 0
GROUP BY w.row_id, w.window_days, v.visit_concept_id
"""


def _visits(backend: Backend) -> pd.DataFrame:
    found = _fetch(backend, VISIT_SQL, ["row_id", "window", "concept", "value"])
    found["key"] = "visits:" + found["concept"].astype(str) + ":" + found["window"].astype(str)
    found["value"] = found["value"].astype(float)
    return found


def _demographics(population: Population) -> pd.DataFrame:
    frame = population.frame
    rows = frame["row_id"].to_numpy()
    age = frame["age"].to_numpy(dtype=float)
    band = (np.clip(age, 0, 95) // 5 * 5).astype(int)
    parts = [
        pd.DataFrame({"row_id": rows, "key": "age", "value": age}),
        pd.DataFrame({"row_id": rows, "key": "female", "value": frame["female"].astype(float)}),
        pd.DataFrame({"row_id": rows, "key": [f"age_band:{b}" for b in band], "value": 1.0}),
    ]
    out = pd.concat(parts, ignore_index=True)
    return out[out["value"] != 0]


def extract(backend: Backend, population: Population, settings: Covariates) -> RawCovariates:
    """Every candidate covariate of the population, computed on the site's CDW."""
    empty = pd.DataFrame(
        {
            "row_id": pd.Series(dtype="int64"),
            "key": pd.Series(dtype=str),
            "value": pd.Series(dtype=float),
        }
    )
    if population.persons == 0:
        return RawCovariates(0, empty)
    parts = [empty]
    domains = settings.domains
    if "demographics" in domains:
        parts.append(_demographics(population))
    sql_domains = [d for d in domains if d != "demographics"]
    if sql_domains:
        with backend.transaction():
            _windows_table(backend, population, settings.windows)
            for domain in sql_domains:
                if domain in DOMAIN_TABLES:
                    parts.append(_events(backend, domain, settings.ancestors))
                elif domain == "measurement":
                    parts.append(_measurements(backend))
                else:
                    parts.append(_visits(backend))
            backend.execute(f"DROP TABLE IF EXISTS {INDEX_TABLE}")
    long = pd.concat([p[["row_id", "key", "value"]] for p in parts], ignore_index=True)
    long["row_id"] = long["row_id"].astype("int64")
    long["value"] = long["value"].astype(float)
    # engines return rows in any order; sums of floats (the means) must not depend on it
    long = long.sort_values(["key", "row_id"], kind="stable").reset_index(drop=True)
    raw = RawCovariates(population.persons, long)
    raw.info = describe(backend, long["key"].unique().tolist())
    return raw


# --- names in words --------------------------------------------------------------------


def _parse_key(key: str) -> tuple[str, int, int]:
    parts = key.split(":")
    if len(parts) == 3:
        return parts[0], int(parts[1]), int(parts[2])
    return parts[0], 0, 0


def describe(backend: Backend | None, keys: Iterable[str]) -> dict[str, Feature]:
    """Each key's feature with its name in words (concept names from the site's
    vocabulary; the shipped vocabulary is the same at every site)."""
    parsed = {k: _parse_key(k) for k in keys}
    concepts = sorted({c for _, c, _ in parsed.values() if c})
    names = _concept_names(backend, concepts) if backend is not None else {}
    return {k: _feature(k, *parsed[k], names) for k in parsed}


def _concept_names(backend: Backend, concepts: list[int]) -> dict[int, str]:
    out: dict[int, str] = {}
    for start in range(0, len(concepts), 1000):
        chunk = concepts[start : start + 1000]
        marks = ", ".join("?" for _ in chunk)
        rows = backend.fetchall(
            f"SELECT concept_id, concept_name FROM concept WHERE concept_id IN ({marks})", chunk
        )
        out.update({int(c): str(n) for c, n in rows})
    return out


def _feature(key: str, prefix: str, concept: int, window: int, names: dict[int, str]) -> Feature:
    label = names.get(concept, f"concept {concept}")
    span = f"{window} days before the index"
    if prefix == "age":
        return Feature(key, "age at the index (years)", "demographics", 0, 0, "value")
    if prefix == "female":
        return Feature(key, "female", "demographics", 0, 0, "binary")
    if prefix == "age_band":
        start = int(key.split(":")[1])
        return Feature(key, f"age {start}-{start + 4}", "demographics", 0, 0, "binary")
    if prefix in DOMAIN_WORDS:
        return Feature(key, f"{label} ({prefix}, {span})", prefix, concept, window, "binary")
    if prefix.endswith("_group"):
        domain = prefix.removesuffix("_group")
        name = f"any {label} ({domain} or a descendant, {span})"
        return Feature(key, name, domain, concept, window, "binary")
    if prefix == "measurement":
        name = f"{label}: latest value ({span})"
        return Feature(key, name, "measurement", concept, window, "value")
    if prefix == "measurement_trend":
        name = f"{label}: change per year ({span})"
        return Feature(key, name, "measurement", concept, window, "value")
    if prefix == "measured":
        return Feature(key, f"{label} measured ({span})", "measurement", concept, window, "binary")
    if prefix == "visits":
        name = f"{label} visits, log(1 + count) ({span})"
        return Feature(key, name, "visit", concept, window, "count")
    return Feature(key, key, "other", concept, window, "value")


# --- the matrix --------------------------------------------------------------------------


def standardised(feature: Feature, persons: float, total: float, squares: float) -> Feature:
    """The feature with the mean and SD of its values (value features only)."""
    if feature.kind != "value" or persons <= 1:
        return feature
    mean = total / persons
    variance = max(squares / persons - mean * mean, 0.0)
    sd = math.sqrt(variance) if variance > 1e-12 else 1.0
    return Feature(**{**asdict(feature), "mean": float(mean), "sd": float(sd)})


def matrix(raw: RawCovariates, dictionary: FeatureDictionary) -> sp.csr_matrix:
    """The site's rows in the dictionary's columns: binary as 1, counts as log(1 + n),
    values standardised (absent: 0, the mean); features the site lacks stay 0."""
    long = raw.long[raw.long["key"].isin(dictionary.position)]
    cols = long["key"].map(dictionary.position).to_numpy(dtype=np.int64)
    values = long["value"].to_numpy(dtype=float).copy()
    kinds = np.array([f.kind for f in dictionary.features])
    means = np.array([f.mean for f in dictionary.features])
    sds = np.array([f.sd for f in dictionary.features])
    is_count = kinds[cols] == "count"
    is_value = kinds[cols] == "value"
    values[is_count] = np.log1p(values[is_count])
    values[is_value] = (values[is_value] - means[cols[is_value]]) / sds[cols[is_value]]
    shape = (raw.rows, len(dictionary))
    out = sp.csr_matrix(
        (values, (long["row_id"].to_numpy(dtype=np.int64), cols)), shape=shape, dtype=float
    )
    out.sum_duplicates()
    out.sort_indices()
    return out
