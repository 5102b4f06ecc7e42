"""The versioned pseudonymization policy of a dataset (YAML).

One rule per column says what happens to it; the models say what the released table must
satisfy. A policy names a project (whose key pseudonymizes) and a version, and every
release records both. Example::

    name: diabetes-cohort-2026
    version: 3
    project: proj-2026-017
    tables:
      person:
        columns:
          person_id: {action: pseudonym}
          name: {action: drop}
          birth_date: {action: date_shift, max_days: 30}
          age: {action: generalize, hierarchy: {type: interval, widths: [5, 10, 20]}}
          sigungu: {action: generalize, hierarchy: {type: region}}
          diagnosis: {action: keep, sensitive: true}
        models: {k: 5, max_suppression: 0.01, l_diversity: [{column: diagnosis, l: 2}]}

A single table may be written without ``tables:`` (``columns:`` and ``models:`` at the top).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from pmhub import documents, textcodec
from pmhub.privacy.errors import PolicyError

Action = Literal[
    "drop",
    "pseudonym",
    "date_shift",
    "date_generalize",
    "generalize",
    "top_bottom",
    "round",
    "microaggregate",
    "suppress_cells",
    "keep",
]
IDENTIFYING: frozenset[str] = frozenset({"drop", "pseudonym"})
MAX_POLICY_BYTES = 1 << 20


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HierarchySpec(Strict):
    file: str | None = None
    type: Literal["flat", "interval", "date", "prefix", "kcd", "region"] | None = None
    widths: list[Annotated[int, Field(gt=0)]] | None = None
    keep: list[Annotated[int, Field(ge=0)]] | None = None

    @model_validator(mode="after")
    def _one_source(self) -> HierarchySpec:
        if (self.file is None) == (self.type is None):
            raise ValueError("give either a hierarchy file or a generated type, not both")
        if self.type == "interval" and not self.widths:
            raise ValueError("an interval hierarchy needs widths, e.g. [5, 10, 20]")
        if self.type == "prefix" and not self.keep:
            raise ValueError("a prefix hierarchy needs keep, e.g. [3, 1]")
        return self


class ColumnRule(Strict):
    action: Action
    sensitive: bool = False
    hierarchy: HierarchySpec | None = None
    level: Annotated[int, Field(ge=0)] | None = None
    min_level: Annotated[int, Field(ge=0)] | None = None
    max_level: Annotated[int, Field(ge=0)] | None = None
    namespace: str | None = None
    length: Annotated[int, Field(ge=16, le=64)] = 32
    person: str | None = None
    max_days: Annotated[int, Field(ge=1, le=3650)] = 30
    to: Literal["month", "year"] = "month"
    top: float | None = None
    bottom: float | None = None
    base: Annotated[float, Field(gt=0)] | None = None
    k: Annotated[int, Field(ge=2)] | None = None
    min_count: Annotated[int, Field(ge=2)] | None = None

    @model_validator(mode="after")
    def _parameters(self) -> ColumnRule:
        needs = {
            "generalize": ("hierarchy",),
            "round": ("base",),
            "microaggregate": ("k",),
            "suppress_cells": ("min_count",),
        }
        for name in needs.get(self.action, ()):
            if getattr(self, name) is None:
                raise ValueError(f"action {self.action!r} needs {name!r}")
        if self.action == "top_bottom" and self.top is None and self.bottom is None:
            raise ValueError("action 'top_bottom' needs top, bottom or both")
        if self.top is not None and self.bottom is not None and self.bottom > self.top:
            raise ValueError("bottom must not exceed top")
        return self


class DiversitySpec(Strict):
    column: str
    l: Annotated[int, Field(ge=1)]  # noqa: E741  # the model's own name for it
    variant: Literal["distinct", "entropy", "recursive"] = "distinct"
    c: Annotated[float, Field(gt=0)] = 3.0


class ClosenessSpec(Strict):
    column: str
    t: Annotated[float, Field(ge=0, le=1)]
    distance: Literal["equal", "hierarchical"] = "equal"
    hierarchy: HierarchySpec | None = None


class KMapSpec(Strict):
    k: Annotated[int, Field(ge=1)]
    population: str  # CSV/Parquet file of the population, with the QI columns


class ModelsSpec(Strict):
    k: Annotated[int, Field(ge=1)] | None = None
    l_diversity: list[DiversitySpec] = []
    t_closeness: list[ClosenessSpec] = []
    k_map: KMapSpec | None = None
    max_suppression: Annotated[float, Field(ge=0, le=1)] = 0.0


class SearchSpec(Strict):
    method: Literal["optimal", "mondrian"] = "optimal"
    metric: Literal["loss", "precision", "entropy"] = "loss"


class RiskSpec(Strict):
    threshold: Annotated[float, Field(gt=0, le=1)] = 0.2
    population_size: Annotated[int, Field(ge=1)] | None = None


class TablePolicy(Strict):
    columns: dict[str, ColumnRule]
    models: ModelsSpec = ModelsSpec()
    search: SearchSpec = SearchSpec()
    risk: RiskSpec = RiskSpec()
    suppression: Literal["mask", "remove"] = "mask"
    unlisted: Literal["error", "drop"] = "error"

    def names(self, action: str) -> list[str]:
        return [name for name, rule in self.columns.items() if rule.action == action]

    @property
    def quasi_identifiers(self) -> list[str]:
        return self.names("generalize")

    @property
    def sensitive(self) -> list[str]:
        listed = [name for name, rule in self.columns.items() if rule.sensitive]
        listed += [d.column for d in self.models.l_diversity]
        listed += [t.column for t in self.models.t_closeness]
        return list(dict.fromkeys(listed))

    @model_validator(mode="after")
    def _references(self) -> TablePolicy:
        for name in [d.column for d in self.models.l_diversity] + [
            t.column for t in self.models.t_closeness
        ]:
            rule = self.columns.get(name)
            if rule is None:
                raise ValueError(f"the models name column {name!r}, which has no rule")
            if rule.action in IDENTIFYING:
                raise ValueError(f"sensitive column {name!r} cannot be dropped or pseudonymized")
        return self


class Policy(Strict):
    name: str = Field(min_length=1, max_length=200)
    version: int | str
    project: str | None = None
    person_column: str = "person_id"
    tables: dict[str, TablePolicy]
    source: Path | None = None

    @property
    def needs_key(self) -> bool:
        return any(
            rule.action in ("pseudonym", "date_shift")
            for table in self.tables.values()
            for rule in table.columns.values()
        )

    def base_dir(self) -> Path:
        return self.source.parent if self.source else Path.cwd()


def parse(raw: Any, source: Path | None = None) -> Policy:
    if not isinstance(raw, dict):
        raise PolicyError("a policy is a YAML mapping with name, version and tables (or columns)")
    if "tables" not in raw and "columns" in raw:
        keys = ("columns", "models", "search", "risk", "suppression", "unlisted")
        single = {k: raw.pop(k) for k in keys if k in raw}
        raw["tables"] = {str(raw.get("dataset", "data")): single}
        raw.pop("dataset", None)
    try:
        return Policy.model_validate({**raw, "source": source})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise PolicyError(f"invalid policy{f' {source}' if source else ''}: {problems}") from exc


def load(path: Path) -> Policy:
    limits = documents.Limits(max_bytes=MAX_POLICY_BYTES)
    data = documents.read_bytes(path, error=PolicyError, limits=limits, what="policy")
    # UTF-8 (a byte-order mark dropped) or CP949, told apart as every verb does
    codec = "cp949" if textcodec.choose("auto", data, complete=True) == "cp949" else "utf-8-sig"
    try:
        decoded = data.decode(codec)
    except UnicodeDecodeError as exc:
        raise PolicyError(f"cannot read policy {path}: {exc}") from None
    raw = documents.parse_yaml(decoded, source=f"policy {path}", error=PolicyError, limits=limits)
    return parse(raw, path.resolve())
