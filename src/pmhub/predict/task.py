"""The prediction task format: versioned JSON or YAML, validated by pydantic.

A task names a target cohort and an outcome cohort (cohort definition files, or names
of the cohort library's examples) and the question asked of them, as OHDSI
PatientLevelPrediction puts it: among persons entering the target, who has the outcome
within the time at risk? The time at risk starts and ends at offsets (days) from the
target's cohort start or end; the covariates are read in look-back windows ending on the
index day (the cohort start, or a fixed calendar ``index_date`` for everyone in the
target cohort on that day).
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from pmhub import documents
from pmhub.cohorts import library
from pmhub.cohorts.definition import Definition, IsoDate
from pmhub.cohorts.definition import load as load_definition
from pmhub.cohorts.errors import CohortDefinitionError
from pmhub.predict.errors import TaskDefinitionError

FORMAT_VERSION = 1
MAX_TASK_BYTES = 256 * 1024  # a task is a few hundred bytes
MAX_DAYS = 36_500
Days = Annotated[int, Field(ge=-MAX_DAYS, le=MAX_DAYS)]
Window = Annotated[int, Field(ge=1, le=MAX_DAYS)]
Anchor = Literal["cohort_start", "cohort_end"]
CovariateDomain = Literal["demographics", "condition", "drug", "procedure", "measurement", "visit"]
ModelKind = Literal["lasso", "ridge", "lightgbm"]
Split = Literal["person", "time", "site"]
ALL_DOMAINS: tuple[CovariateDomain, ...] = (
    "demographics",
    "condition",
    "drug",
    "procedure",
    "measurement",
    "visit",
)


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class TimeAtRisk(Model):
    start: Days = 1
    start_anchor: Anchor = "cohort_start"
    end: Days = 365
    end_anchor: Anchor = "cohort_start"


class Covariates(Model):
    windows: list[Window] = Field([365, 30], min_length=1, max_length=6)
    domains: list[CovariateDomain] = Field(list(ALL_DOMAINS), min_length=1)
    ancestors: bool = True  # conditions, drugs, procedures also by their ancestors
    min_persons: int = Field(10, ge=1, le=1_000_000)  # rarer features are dropped

    @model_validator(mode="after")
    def _distinct(self) -> Covariates:
        if len(set(self.windows)) != len(self.windows):
            raise ValueError("windows: each look-back window once")
        if len(set(self.domains)) != len(self.domains):
            raise ValueError("domains: each domain once")
        return self


class ModelSettings(Model):
    kind: ModelKind = "lasso"
    seed: int = Field(42, ge=0, le=2**31 - 1)
    class_weight: Literal["balanced", "none"] = "balanced"
    folds: int = Field(3, ge=2, le=10)  # cross-validation by person for the search


class Validation(Model):
    split: Split = "person"
    test_share: float = Field(0.25, gt=0.05, lt=0.95)
    time_cutoff: IsoDate | None = None  # split=time: index on or after it is the test set
    test_site: str | None = None  # split=site: the held-out site (default: the last)
    bootstrap: int = Field(200, ge=0, le=5000)


class Task(Model):
    format_version: Literal[1] = 1
    name: str = Field(min_length=1, max_length=80, pattern=r"^[A-Za-z][A-Za-z0-9_\-]*$")
    description: str = Field("", max_length=2000)
    target: str = Field(min_length=1, max_length=500)
    outcome: str = Field(min_length=1, max_length=500)
    index_date: IsoDate | None = None
    time_at_risk: TimeAtRisk = TimeAtRisk()
    washout_days: int = Field(0, ge=0, le=MAX_DAYS)  # observation required before the index
    first_entry_only: bool = True
    remove_prior_outcome: bool = True
    prior_outcome_days: int | None = Field(None, ge=1, le=MAX_DAYS)  # None: all history
    min_time_at_risk_days: int = Field(1, ge=1, le=MAX_DAYS)
    include_all_outcomes: bool = True  # an outcome inside a short time at risk still counts
    min_events: int = Field(10, ge=1, le=1_000_000)
    covariates: Covariates = Field(default_factory=lambda: Covariates.model_validate({}))
    model: ModelSettings = Field(default_factory=lambda: ModelSettings.model_validate({}))
    validation: Validation = Field(default_factory=lambda: Validation.model_validate({}))

    @model_validator(mode="after")
    def _checks(self) -> Task:
        tar = self.time_at_risk
        if tar.start_anchor == tar.end_anchor and tar.end < tar.start:
            raise ValueError("time_at_risk: end comes before start")
        if self.index_date is not None and "cohort_end" in (tar.start_anchor, tar.end_anchor):
            raise ValueError("time_at_risk: a fixed index_date anchors on it, not on cohort_end")
        if self.validation.split == "time" and self.validation.time_cutoff is None:
            raise ValueError("validation.time_cutoff: a time split needs the cutoff date")
        return self


class LoadedTask:
    """A task with its two cohort definitions read."""

    def __init__(self, task: Task, target: Definition, outcome: Definition) -> None:
        if target.id == outcome.id:
            raise TaskDefinitionError(
                f"task {task.name!r}: target and outcome are the same cohort (id {target.id})"
            )
        self.task = task
        self.target = target
        self.outcome = outcome

    @property
    def name(self) -> str:
        return self.task.name


def _problems(exc: ValidationError) -> list[str]:
    out = []
    for err in exc.errors():
        path = ".".join(str(p) for p in err["loc"]) or "(top level)"
        out.append(f"{path}: {err['msg'].removeprefix('Value error, ')}")
    return out


def parse(data: object, *, source: str = "task") -> Task:
    if not isinstance(data, dict):
        raise TaskDefinitionError(f"{source}: a task is a mapping, not {type(data).__name__}")
    version = data.get("format_version")
    if isinstance(version, int) and not isinstance(version, bool) and version > FORMAT_VERSION:
        raise TaskDefinitionError(
            f"{source}: format_version {version} is newer than this pmhub reads "
            f"(up to {FORMAT_VERSION})",
            hint="Upgrade pmhub, or write the task in format_version 1.",
        )
    try:
        plain = _dates_as_text(data)
    except (TypeError, ValueError, RecursionError) as exc:  # no JSON form; a loop; absurd depth
        raise TaskDefinitionError(f"{source}: not a prediction task ({exc})") from None
    try:
        return Task.model_validate(plain)
    except ValidationError as exc:
        problems = _problems(exc)
        shown = "\n  ".join(problems[:20])
        raise TaskDefinitionError(
            f"{source} is not a valid prediction task:\n  {shown}", problems
        ) from None


def _dates_as_text(data: dict[str, Any]) -> dict[str, Any]:
    """YAML reads 2020-01-01 as a date, JSON as text: the strict model takes either."""
    return json.loads(json.dumps(data, default=_iso))  # type: ignore[no-any-return]


def _iso(value: object) -> str:
    if isinstance(value, dt.date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not allowed in a task")


def loads(text: str, *, source: str = "task") -> Task:
    """JSON or YAML within size, depth and alias limits (:mod:`pmhub.documents`)."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_TASK_BYTES:
        raise TaskDefinitionError(f"{source} is larger than {MAX_TASK_BYTES // 1024} KiB")
    limits = documents.Limits(max_bytes=MAX_TASK_BYTES, max_nodes=200_000)
    data = documents.parse(text, source=source, error=TaskDefinitionError, limits=limits)
    return parse(data, source=source)


def _definition(reference: str, folder: Path | None, role: str, task: str) -> Definition:
    candidate = Path(reference)
    if folder is not None and not candidate.is_absolute() and (folder / candidate).exists():
        candidate = folder / candidate
    path = candidate if candidate.exists() else library.resolve(reference)
    if not path.exists():
        raise TaskDefinitionError(
            f"task {task!r}: the {role} cohort {reference!r} is neither a file nor a library "
            f"example ({', '.join(library.names())})"
        )
    try:
        return load_definition(path)
    except CohortDefinitionError as exc:
        raise TaskDefinitionError(
            f"task {task!r}: the {role} cohort {path}: {exc.message}", exc.problems
        ) from None


def resolve(task: Task, folder: Path | None = None) -> LoadedTask:
    """Read the task's cohort definitions (paths relative to ``folder``, or library names)."""
    return LoadedTask(
        task,
        _definition(task.target, folder, "target", task.name),
        _definition(task.outcome, folder, "outcome", task.name),
    )


def path_of(reference: str | Path) -> Path:
    """The task file a reference names: a path, or an example task of the library."""
    path = Path(reference)
    if not path.exists():
        shipped = Path(__file__).parent / "library" / f"{reference}.yaml"
        if shipped.exists():
            return shipped
    return path.resolve()


def load(reference: str | Path) -> LoadedTask:
    """A task file, or the name of an example task shipped in pmhub/predict/library/."""
    path = path_of(reference)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise TaskDefinitionError(
            f"cannot read prediction task {path}: {exc.strerror}",
            hint="Give a task file, or an example task's name (pmhub/predict/library/).",
        ) from None
    if len(raw) > MAX_TASK_BYTES:
        raise TaskDefinitionError(f"{path} is larger than {MAX_TASK_BYTES // 1024} KiB")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise TaskDefinitionError(f"{path} is not UTF-8 text ({exc.reason})") from None
    return resolve(loads(text, source=str(path)), path.parent)
