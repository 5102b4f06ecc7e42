"""Prediction services the CLI (and later the API) call: train, evaluate, apply.

``train`` builds the task's population and covariates at each site (its own CDW), fixes
the feature dictionary from the sites' released counts, splits (by person, by time, or
leaving a site out), fits the model on the training rows, and evaluates it on the
held-out rows overall, per site and by sex and age band, with SHAP explanations. With
several sites it is the pooled model: the reference federated learning aims for.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from pmhub.cdm.backends import Backend
from pmhub.predict import (
    covariates,
    evaluate,
    explain,
    models,
    package,
    population,
    release,
    vocabulary,
)
from pmhub.predict.covariates import FeatureDictionary, RawCovariates
from pmhub.predict.errors import PredictError
from pmhub.predict.population import Population
from pmhub.predict.task import LoadedTask, Validation

EXPLAINED_ROWS = 2000  # SHAP on at most this many held-out rows (TreeSHAP is per row)


@dataclass
class SiteData:
    site: str
    population: Population
    raw: RawCovariates


def prepare(backend: Backend, loaded: LoadedTask, site: str) -> SiteData:
    """The site's population and candidate covariates (row-level: stays at the site)."""
    pop = population.build(backend, loaded, site)
    return SiteData(site, pop, covariates.extract(backend, pop, loaded.task.covariates))


def fix_dictionary(data: list[SiteData], loaded: LoadedTask, threshold: int) -> FeatureDictionary:
    releases = [release.feature_counts(d.raw, threshold) for d in data]
    info: dict[str, covariates.Feature] = {}
    for d in data:
        info.update(d.raw.info)
    return vocabulary.fix(releases, info, loaded.task.covariates.min_persons)


def split(data: SiteData, validation: Validation, seed: int, test_site: str | None) -> np.ndarray:
    """True for the site's held-out (test) rows."""
    frame = data.population.frame
    if validation.split == "site":
        return np.full(len(frame), data.site == test_site)
    if validation.split == "time":
        assert validation.time_cutoff is not None
        return np.asarray(frame["index_date"] >= pd.Timestamp(validation.time_cutoff))
    rng = np.random.default_rng([seed, _site_seed(data.site)])
    y = frame["outcome"].to_numpy()
    test = np.zeros(len(frame), dtype=bool)
    for label in (0, 1):  # stratified: the same share of outcomes in both parts
        rows = np.flatnonzero(y == label)
        chosen = rng.permutation(rows)[: round(len(rows) * validation.test_share)]
        test[chosen] = True
    return test


def _site_seed(site: str) -> int:
    return int.from_bytes(site.encode("utf-8")[:8].ljust(8, b"\0"), "little")


@dataclass
class TrainResult:
    task: str
    model: models.Fitted
    dictionary: FeatureDictionary
    test: evaluate.Metrics
    per_site: dict[str, evaluate.Metrics]
    groups: dict[str, dict[str, evaluate.Metrics]]
    importance: list[explain.Contribution]
    attrition: dict[str, list[dict[str, Any]]]
    train_persons: int
    train_outcomes: int
    seconds: dict[str, float] = field(default_factory=dict)
    test_predictions: dict[str, pd.DataFrame] = field(default_factory=dict)  # stays local

    def summary(self, threshold: int) -> dict[str, Any]:
        return {
            "task": self.task,
            "model": self.model.kind,
            "params": self.model.params,
            "features": len(self.dictionary),
            "features_dropped": self.dictionary.dropped,
            "train": {
                "persons": release.count(self.train_persons, threshold).text(),
                "outcomes": release.count(self.train_outcomes, threshold).text(),
            },
            "test": release.metrics(self.test, threshold),
            "per_site": {s: release.metrics(m, threshold) for s, m in self.per_site.items()},
            "groups": {
                g: {level: release.metrics(m, threshold) for level, m in levels.items()}
                for g, levels in self.groups.items()
            },
            "importance": [vars(c) for c in self.importance],
            "attrition": self.attrition,
            "seconds": self.seconds,
        }


def _stack(data: list[SiteData], dictionary: FeatureDictionary) -> sp.csr_matrix:
    return sp.vstack([covariates.matrix(d.raw, dictionary) for d in data], format="csr")


def train(loaded: LoadedTask, backends: dict[str, Backend], *, threshold: int = 10) -> TrainResult:
    """Train the task's model on the sites' training rows (one site: a local model; all:
    the pooled model) and evaluate it on their held-out rows."""
    if not backends:
        raise PredictError("no site to train on", hint="Give at least one site with --site.")
    task = loaded.task
    started = time.perf_counter()
    data = [prepare(backend, loaded, site) for site, backend in backends.items()]
    prepared = time.perf_counter()
    for d in data:
        if d.population.persons == 0:
            raise PredictError(f"site {d.site!r}: no one is at risk ({d.population.reason})")
    test_site = task.validation.test_site or (data[-1].site if len(data) > 1 else None)
    if task.validation.split == "site" and (test_site not in backends or len(data) < 2):
        raise PredictError(
            f"a site split needs two or more sites and a held-out site among them "
            f"(got {', '.join(backends)}; test_site {test_site!r})"
        )
    dictionary = fix_dictionary(data, loaded, threshold)
    if len(dictionary) == 0:
        raise PredictError(
            f"task {task.name!r}: no covariate is common enough to use "
            f"(min_persons {task.covariates.min_persons})",
            hint="Lower covariates.min_persons, add domains or windows, or pool more sites.",
        )
    x = _stack(data, dictionary)
    y = np.concatenate([d.population.frame["outcome"].to_numpy(dtype=int) for d in data])
    test = np.concatenate([split(d, task.validation, task.model.seed, test_site) for d in data])
    site_of = np.concatenate([np.full(d.population.persons, d.site) for d in data])
    population.check_events(
        "the training rows", int((~test).sum()), int(y[~test].sum()), task.min_events, "train"
    )
    model = models.fit(x[~test], y[~test], task.model)
    fitted = time.perf_counter()
    result = _assess(loaded, data, model, dictionary, x, y, test, site_of)
    result.seconds = {
        "prepare": round(prepared - started, 3),
        "fit": round(fitted - prepared, 3),
        "evaluate": round(time.perf_counter() - fitted, 3),
    }
    result.attrition = {d.site: release.attrition(d.population, threshold) for d in data}
    result.train_persons = int((~test).sum())
    result.train_outcomes = int(y[~test].sum())
    return result


def _assess(
    loaded: LoadedTask,
    data: list[SiteData],
    model: models.Fitted,
    dictionary: FeatureDictionary,
    x: sp.csr_matrix,
    y: np.ndarray,
    test: np.ndarray,
    site_of: np.ndarray,
) -> TrainResult:
    task = loaded.task
    if int(test.sum()) == 0:
        raise PredictError(f"task {task.name!r}: the split leaves no one to test on")
    p = model.predict(x[test])
    yt = y[test]
    frames = pd.concat([d.population.frame for d in data], ignore_index=True)
    held = frames[test]
    seed = task.model.seed
    groups = {
        "sex": np.where(held["female"].to_numpy() == 1, "female", "male"),
        "age": evaluate.age_band(held["age"].to_numpy(dtype=float)),
        "site": site_of[test],
    }
    per_site = {
        s: evaluate.evaluate(yt[site_of[test] == s], p[site_of[test] == s], bootstrap=0)
        for s in sorted(set(site_of[test].tolist()))
    }
    rng = np.random.default_rng(seed)
    rows = np.flatnonzero(test)
    explained = rng.permutation(rows)[:EXPLAINED_ROWS] if len(rows) > EXPLAINED_ROWS else rows
    values = explain.shap_values(model, x[np.sort(explained)], x[~test])
    predictions = {
        d.site: pd.DataFrame(
            {
                "person_id": held.loc[site_of[test] == d.site, "person_id"].to_numpy(),
                "outcome": yt[site_of[test] == d.site],
                "risk": p[site_of[test] == d.site],
            }
        )
        for d in data
    }
    return TrainResult(
        task=task.name,
        model=model,
        dictionary=dictionary,
        test=evaluate.evaluate(yt, p, bootstrap=task.validation.bootstrap, seed=seed),
        per_site=per_site,
        groups=evaluate.by_group(yt, p, groups, seed=seed),
        importance=explain.global_importance(values, dictionary),
        attrition={},
        train_persons=0,
        train_outcomes=0,
        test_predictions=predictions,
    )


@dataclass
class Validated:
    site: str
    metrics: evaluate.Metrics
    attrition: list[dict[str, Any]]
    missing_features: int  # dictionary features this site never has


def validate_at(folder: Path, backend: Backend, site: str, *, threshold: int = 10) -> Validated:
    """External validation: the packaged model applied to a site's whole population."""
    pkg = package.read(folder)
    data = prepare(backend, pkg.loaded, site)
    pop = data.population
    population.require_events(pop, pkg.loaded.task.min_events, "evaluate")
    x = covariates.matrix(data.raw, pkg.dictionary)
    present = set(data.raw.long["key"].unique().tolist())
    missing = sum(1 for f in pkg.dictionary.features if f.key not in present)
    y = pop.frame["outcome"].to_numpy(dtype=int)
    p = pkg.model.predict(x)
    seed = pkg.loaded.task.model.seed
    metrics = evaluate.evaluate(y, p, bootstrap=pkg.loaded.task.validation.bootstrap, seed=seed)
    return Validated(site, metrics, release.attrition(pop, threshold), missing)


def save(out: Path, loaded: LoadedTask, result: TrainResult, *, threshold: int = 10) -> Path:
    return package.write(out, loaded, result.model, result.dictionary, result.summary(threshold))
