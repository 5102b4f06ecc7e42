"""Generalization hierarchies: each leaf value has one label per level, level 0 the value.

A hierarchy is a tree: two leaves that share a label at one level share it at every level
above. The engine works on integer codes: ``codes(level)[leaf]`` is the index of the leaf's
label at that level and ``cover(level)[code]`` how many leaves that label covers (what
ARX's "Loss" metric needs). Hierarchies come from ARX-style CSV files (one row per leaf,
one column per level) or are generated: numeric bands, dates, postcode prefixes, KCD-7
categories and Korean city/county → province.
"""

from __future__ import annotations

import csv
import datetime as dt
import itertools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from pmhub import textcodec
from pmhub.privacy.errors import HierarchyError

TOP = "*"


@dataclass(frozen=True)
class Hierarchy:
    name: str
    rows: tuple[tuple[str, ...], ...]  # one row per leaf: leaf, level 1 label, ...
    _codes: list[np.ndarray] = field(init=False, repr=False, compare=False)
    _labels: list[np.ndarray] = field(init=False, repr=False, compare=False)
    _leaf_lookup: pd.Index = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        validate_rows(self.name, self.rows)
        codes, labels = [], []
        for level in range(len(self.rows[0])):
            level_codes, uniques = pd.factorize(pd.Series([r[level] for r in self.rows]))
            codes.append(level_codes.astype(np.int64))
            labels.append(np.asarray(uniques, dtype=object))
        object.__setattr__(self, "_codes", codes)
        object.__setattr__(self, "_labels", labels)
        object.__setattr__(self, "_leaf_lookup", pd.Index([r[0] for r in self.rows], dtype=object))

    @property
    def height(self) -> int:
        """Number of levels, the leaves included."""
        return len(self.rows[0])

    @property
    def size(self) -> int:
        return len(self.rows)

    def codes(self, level: int) -> np.ndarray:
        return self._codes[level]

    def labels(self, level: int) -> np.ndarray:
        return self._labels[level]

    def cover(self, level: int) -> np.ndarray:
        """Number of leaves under each label of ``level`` (indexed by code)."""
        return np.bincount(self._codes[level], minlength=len(self._labels[level]))

    def leaf_loss(self, level: int) -> np.ndarray:
        """ARX's loss of each leaf's label at ``level``: (covered leaves - 1) / (size - 1)."""
        if self.size <= 1:
            return np.zeros(self.size)
        covered = self.cover(level)[self._codes[level]]
        return np.asarray((covered - 1) / (self.size - 1), dtype=float)

    def leaf_values(self, leaves: np.ndarray) -> np.ndarray:
        return np.asarray(self._labels[0][self._codes[0][leaves]])

    def leaf_index(self, values: Iterable[str], column: str) -> np.ndarray:
        """The leaf index of every value; a value the hierarchy lacks is an error."""
        array = values if isinstance(values, np.ndarray) else np.asarray(list(values), dtype=object)
        found = self._leaf_lookup.get_indexer(pd.Index(array, dtype=object))
        if np.any(found < 0):
            missing = pd.unique(array[found < 0])
            sample = ", ".join(repr(v) for v in missing[:5])
            raise HierarchyError(
                f"hierarchy {self.name!r} of column {column!r} does not cover"
                f" {len(missing)} value(s), e.g. {sample}"
            )
        return np.asarray(found, dtype=np.int64)


def validate_rows(name: str, rows: Sequence[Sequence[str]]) -> None:
    if not rows:
        raise HierarchyError(f"hierarchy {name!r} is empty")
    width = len(rows[0])
    for number, row in enumerate(rows, start=1):
        if len(row) != width:
            raise HierarchyError(
                f"hierarchy {name!r} row {number} has {len(row)} levels, row 1 has {width}"
            )
        if any(not cell for cell in row):
            raise HierarchyError(f"hierarchy {name!r} row {number} has an empty label")
    leaves = [r[0] for r in rows]
    if len(set(leaves)) != len(leaves):
        dup = pd.Series(leaves)[pd.Series(leaves).duplicated()].iloc[0]
        raise HierarchyError(f"hierarchy {name!r} lists the value {dup!r} twice")
    check_tree(name, rows, width)


def check_tree(name: str, rows: Sequence[Sequence[str]], width: int) -> None:
    """A label must have one parent, otherwise generalizing could split a class."""
    for level in range(1, width - 1):
        parent: dict[str, str] = {}
        for row in rows:
            seen = parent.setdefault(row[level], row[level + 1])
            if seen != row[level + 1]:
                raise HierarchyError(
                    f"hierarchy {name!r}: label {row[level]!r} at level {level} has two"
                    f" parents ({seen!r} and {row[level + 1]!r}); a hierarchy must be a tree"
                )


def from_rows(name: str, rows: Iterable[Sequence[str]]) -> Hierarchy:
    return Hierarchy(name, tuple(tuple(str(c).strip() for c in r) for r in rows))


def load_csv(path: Path, name: str | None = None) -> Hierarchy:
    """An ARX hierarchy file: one row per value, one column per level, ';' or ',' separated."""
    try:
        text = path.read_text(encoding=textcodec.codec_of(path))
    except (OSError, UnicodeDecodeError) as exc:
        raise HierarchyError(f"cannot read hierarchy file {path}: {exc}") from exc
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        raise HierarchyError(f"hierarchy file {path} is empty")
    sep = ";" if ";" in lines[0] else ("\t" if "\t" in lines[0] else ",")
    return from_rows(name or path.stem, csv.reader(lines, delimiter=sep))


def flat(name: str, values: Iterable[str]) -> Hierarchy:
    """Keep or suppress: the value itself, or '*'."""
    return from_rows(name, ((v, TOP) for v in sorted(set(values))))


def _with_top(name: str, rows: Iterable[list[str]]) -> Hierarchy:
    return from_rows(name, ([*row, TOP] for row in rows))


def intervals(name: str, values: Iterable[str], widths: Sequence[int]) -> Hierarchy:
    """Numeric bands (e.g. ages in 5-, 10-, 20-year bands); each width divides the next."""
    for small, big in itertools.pairwise(widths):
        if small <= 0 or big % small:
            raise HierarchyError(
                f"hierarchy {name!r}: band widths {list(widths)} must be positive and each"
                " must divide the next, so that bands nest"
            )
    rows = []
    for value in sorted(set(values), key=_numeric_key(name)):
        number = int(float(value))
        rows.append([value] + [f"{number // w * w}-{number // w * w + w - 1}" for w in widths])
    return _with_top(name, rows)


def _numeric_key(name: str) -> Callable[[str], float]:
    def key(value: str) -> float:
        try:
            return float(value)
        except ValueError:
            raise HierarchyError(
                f"hierarchy {name!r} bands numbers, but the column holds {value!r}"
            ) from None

    return key


def dates(name: str, values: Iterable[str]) -> Hierarchy:
    """Day → month → year → '*' for ISO dates (YYYY-MM-DD)."""
    rows = []
    for value in sorted(set(values)):
        try:
            day = dt.date.fromisoformat(value[:10])
        except ValueError:
            raise HierarchyError(
                f"hierarchy {name!r} generalizes ISO dates (YYYY-MM-DD), not {value!r}"
            ) from None
        rows.append([value, f"{day:%Y-%m}", f"{day:%Y}"])
    return _with_top(name, rows)


def prefixes(name: str, values: Iterable[str], keep: Sequence[int]) -> Hierarchy:
    """Postcodes and similar: keep the first n characters, mask the rest with '*'."""
    if list(keep) != sorted(keep, reverse=True) or any(k < 0 for k in keep):
        raise HierarchyError(f"hierarchy {name!r}: prefix lengths {list(keep)} must decrease")
    rows = [[v] + [v[:k] + "*" * (len(v) - k) for k in keep] for v in sorted(set(values))]
    return _with_top(name, rows)


@dataclass(frozen=True)
class Chapter:
    first: str
    last: str
    chapter: str


@cache
def kcd_chapters() -> tuple[Chapter, ...]:
    text = resources.files("pmhub.privacy").joinpath("data/kcd7_chapters.csv").read_text("utf-8")
    return tuple(
        Chapter(r["first"], r["last"], r["chapter"]) for r in csv.DictReader(text.splitlines())
    )


def kcd_category(code: str) -> str:
    """KCD-7 (ICD-10 based) code → 3-character category: 'E11.9' and 'E119' → 'E11'."""
    category = code.replace(".", "").strip().upper()[:3]
    if len(category) != 3 or not category[0].isalpha() or not category[1:].isdigit():
        raise HierarchyError(f"{code!r} is not a KCD-7 code (letter and two digits, e.g. E11.9)")
    return category


def kcd_chapter(category: str) -> str:
    for chapter in kcd_chapters():
        if chapter.first <= category <= chapter.last:
            return f"{chapter.first}-{chapter.last}"
    raise HierarchyError(f"KCD-7 category {category!r} is in no chapter")


def kcd(name: str, values: Iterable[str]) -> Hierarchy:
    """KCD-7 code → 3-character category → chapter → '*'."""
    rows = []
    for value in sorted(set(values)):
        try:
            category = kcd_category(value)
            rows.append([value, category, kcd_chapter(category)])
        except HierarchyError as exc:
            raise HierarchyError(f"hierarchy {name!r}: {exc.message}") from None
    return _with_top(name, rows)


@dataclass(frozen=True)
class Regions:
    province_of: dict[str, str]  # "강원특별자치도 춘천시", unique bare "춘천시", short forms → 시도
    provinces: tuple[str, ...]
    short_names: dict[str, str]
    by_code: dict[str, str]  # 시도 code, current and former ("51", "42") → 시도
    bare: dict[str, tuple[str, ...]]  # every bare 시군구 name → the 시도 that have it


@cache
def regions() -> Regions:
    text = resources.files("pmhub.privacy").joinpath("data/regions.csv").read_text("utf-8")
    rows = list(csv.DictReader(text.splitlines()))
    bare: dict[str, set[str]] = {}
    province_of: dict[str, str] = {}
    by_code: dict[str, str] = {}
    for row in rows:
        for unit in row["sigungu"].split():
            bare.setdefault(unit, set()).add(row["sido"])
            province_of[f"{row['sido']} {unit}"] = row["sido"]
            province_of[f"{row['sido_short']} {unit}"] = row["sido"]
        province_of[row["sido"]] = row["sido"]
        by_code.update({c: row["sido"] for c in (row["code"], row["old_code"]) if c})
    for unit, sidos in bare.items():
        if len(sidos) == 1:  # "중구" is in six cities: only the full form says which
            province_of[unit] = next(iter(sidos))
    short = {row["sido_short"]: row["sido"] for row in rows}
    names = {unit: tuple(sorted(sidos)) for unit, sidos in bare.items()}
    return Regions(province_of, tuple(row["sido"] for row in rows), short, by_code, names)


def province(value: str, table: Regions, within: str | None = None) -> str | None:
    """The 시도 of a 시군구 name (bare, after its 시도 or its short name), of a 시도 name,
    or of an administrative code (2-digit 시도, 5-digit 시군구, 10-digit 법정동: the 시도
    is its first two digits, as pmhub's generator writes in location). An ambiguous bare
    name ("고성군", "중구") is read in ``within`` when that 시도 has it."""
    key = " ".join(value.split())
    if key.isdigit() and len(key) in (2, 5, 10):
        return table.by_code.get(key[:2])
    if key in table.province_of:
        return table.province_of[key]
    if within is not None and within in table.bare.get(key, ()):
        return within
    return None


def region(name: str, values: Iterable[str]) -> Hierarchy:
    """Korean city/county/district (시·군·구, optionally after its province), province or
    administrative code → province → '*'. Names that several provinces have (고성군 is
    in 강원 and 경남) are read in the one province every other value of the column lies
    in, if there is one: pmhub's own generated locations are all in Gangwon."""
    table = regions()
    distinct = sorted(set(values))
    known = {v: province(v, table) for v in distinct}
    found = {p for p in known.values() if p is not None}
    within = next(iter(found)) if len(found) == 1 else None
    rows = []
    for value in distinct:
        sido = known[value] or province(value, table, within)
        if sido is None:
            raise HierarchyError(_unknown_region(name, value, table))
        rows.append([value, sido])
    return _with_top(name, rows)


def _unknown_region(name: str, value: str, table: Regions) -> str:
    key = " ".join(value.split())
    if key in table.bare:
        places = " or ".join(f"'{p} {key}'" for p in table.bare[key])
        return (
            f"hierarchy {name!r}: {value!r} is in several provinces and the column's other "
            f"values lie in more than one; write it with its province ({places})"
        )
    return (
        f"hierarchy {name!r}: {value!r} is not a known city/county/district, province or "
        "administrative code"
    )


GENERATED: dict[str, Callable[..., Hierarchy]] = {
    "flat": flat,
    "interval": intervals,
    "date": dates,
    "prefix": prefixes,
    "kcd": kcd,
    "region": region,
}
