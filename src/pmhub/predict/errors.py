"""Errors of patient-level prediction (exit codes 3-6; 7-9 are federated learning's)."""

from __future__ import annotations

from pmhub.errors import PmhubError


class PredictError(PmhubError):
    """A task that cannot run at a site: an empty cohort, no features, a bad split."""

    exit_code = 3
    hint = "Check the task's cohorts with `pmhub cohort run DEF --site S`."


class TaskDefinitionError(PredictError):
    """A task file or a feature table is malformed: each problem names its field."""

    exit_code = 4
    hint = "Fix the fields named above; the example tasks are in pmhub/predict/library/."

    def __init__(self, message: str, problems: list[str] | None = None, **kw: str) -> None:
        self.problems = problems or [message]
        super().__init__(message, **kw)


class TooFewEventsError(PredictError):
    """Too few outcomes (or non-outcomes) to train or to evaluate: refused with the counts."""

    exit_code = 5
    hint = (
        "Widen the time at risk, pool more sites, or lower min_events in the task "
        "(results from few events are not worth reporting)."
    )


class ModelPackageError(PredictError):
    """A model package that is missing, altered (a file's hash differs) or of another task."""

    exit_code = 6
    hint = "Train the model again with `pmhub predict train TASK --site S --out DIR`."
