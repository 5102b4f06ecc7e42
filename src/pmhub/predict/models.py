"""Models: L1/L2 logistic regression (scikit-learn) and gradient-boosted trees (LightGBM).

Each is fitted with a small hyper-parameter search by cross-validation over persons
(one row per person, folds stratified by outcome), scored by AUROC; class imbalance is
met by weights (``class_weight: balanced``), and the seed makes every fit repeatable.
Weighted fits are recalibrated on the training rows' out-of-fold predictions so that
the risks they report are probabilities again (weights shift the intercept).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, TypeAlias

import numpy as np
import scipy.sparse as sp

from pmhub.extras import require
from pmhub.predict.errors import ModelPackageError
from pmhub.predict.task import ModelSettings

Matrix: TypeAlias = Any  # a SciPy sparse matrix or a NumPy array (SciPy has no stubs)
C_GRID = (0.01, 0.03, 0.1, 0.3, 1.0)
TREE_GRID = ({"num_leaves": 7, "n_estimators": 200}, {"num_leaves": 15, "n_estimators": 400})


def logit(p: np.ndarray) -> np.ndarray:
    q = np.clip(p, 1e-9, 1 - 1e-9)
    return np.asarray(np.log(q / (1 - q)))


def expit(z: np.ndarray) -> np.ndarray:
    return np.asarray(1.0 / (1.0 + np.exp(-np.clip(z, -40, 40))))


@dataclass
class Fitted:
    """A fitted model: linear (coefficients, intercept) or a LightGBM booster as text.

    ``shift`` and ``scale`` map its raw score to a calibrated log-odds."""

    kind: str
    coef: np.ndarray | None = None
    intercept: float = 0.0
    booster: str | None = None
    shift: float = 0.0
    scale: float = 1.0
    params: dict[str, Any] = field(default_factory=dict)
    _booster: Any = None

    def score(self, x: Matrix) -> np.ndarray:
        """The raw log-odds before recalibration."""
        if self.coef is not None:
            return np.asarray(x @ self.coef).ravel() + self.intercept
        booster = self._load_booster()
        return np.asarray(booster.predict(x, raw_score=True), dtype=float)

    def predict(self, x: Matrix) -> np.ndarray:
        return expit(self.shift + self.scale * self.score(x))

    def _load_booster(self) -> Any:
        if self._booster is None:
            lgb = require("lightgbm")
            self._booster = lgb.Booster(model_str=self.booster)
        return self._booster

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "coef": None if self.coef is None else [float(c) for c in self.coef],
            "intercept": self.intercept,
            "booster": self.booster,
            "shift": self.shift,
            "scale": self.scale,
            "params": self.params,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Fitted:
        try:
            coef = data["coef"]
            return cls(
                kind=str(data["kind"]),
                coef=None if coef is None else np.asarray(coef, dtype=float),
                intercept=float(data["intercept"]),
                booster=data["booster"],
                shift=float(data["shift"]),
                scale=float(data["scale"]),
                params=dict(data.get("params", {})),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelPackageError(f"the model file is not a pmhub model ({exc})") from None


def _folds(y: np.ndarray, k: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    model_selection = require("sklearn.model_selection")
    splitter = model_selection.StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    return list(splitter.split(np.zeros(len(y)), y))


def _weights(y: np.ndarray, settings: ModelSettings) -> np.ndarray:
    if settings.class_weight == "none":
        return np.ones(len(y))
    positives = max(int(y.sum()), 1)
    negatives = max(len(y) - positives, 1)
    return np.where(y == 1, len(y) / (2 * positives), len(y) / (2 * negatives))


def _auroc(y: np.ndarray, score: np.ndarray) -> float:
    metrics = require("sklearn.metrics")
    if len(np.unique(y)) < 2:
        return 0.5
    return float(metrics.roc_auc_score(y, score))


def _linear(x: Matrix, y: np.ndarray, w: np.ndarray, c: float, penalty: str, seed: int) -> Fitted:
    linear_model = require("sklearn.linear_model")
    solver = "liblinear" if penalty == "l1" else "lbfgs"
    model = linear_model.LogisticRegression(
        l1_ratio=1.0 if penalty == "l1" else 0.0,
        C=c,
        solver=solver,
        max_iter=2000,
        random_state=seed,
    )
    model.fit(x, y, sample_weight=w)
    return Fitted(
        "lasso" if penalty == "l1" else "ridge",
        coef=np.asarray(model.coef_, dtype=float).ravel(),
        intercept=float(model.intercept_[0]),
        params={"C": c, "penalty": penalty},
    )


def _tree(x: Matrix, y: np.ndarray, w: np.ndarray, params: dict[str, Any], seed: int) -> Fitted:
    lgb = require("lightgbm")
    model = lgb.LGBMClassifier(
        learning_rate=0.05,
        min_child_samples=20,
        subsample=0.8,
        subsample_freq=1,
        colsample_bytree=0.8,
        reg_lambda=1.0,
        random_state=seed,
        n_jobs=1,
        verbose=-1,
        deterministic=True,
        force_row_wise=True,
        **params,
    )
    model.fit(x.astype(np.float64) if sp.issparse(x) else x, y, sample_weight=w)
    return Fitted("lightgbm", booster=model.booster_.model_to_string(), params=dict(params))


def _fit_one(x: Matrix, y: np.ndarray, w: np.ndarray, kind: str, grid: Any, seed: int) -> Fitted:
    if kind == "lightgbm":
        return _tree(x, y, w, grid, seed)
    return _linear(x, y, w, float(grid), "l1" if kind == "lasso" else "l2", seed)


def fit(x: Matrix, y: np.ndarray, settings: ModelSettings) -> Fitted:
    """Search the grid by cross-validation over persons, refit the best on all rows and
    recalibrate it on its out-of-fold predictions."""
    y = np.asarray(y, dtype=int)
    w = _weights(y, settings)
    grid: tuple[Any, ...] = TREE_GRID if settings.kind == "lightgbm" else C_GRID
    folds = _folds(y, settings.folds, settings.seed)
    best, best_auc, best_oof = grid[0], -1.0, np.zeros(len(y))
    for candidate in grid:
        oof = np.zeros(len(y))
        for train, test in folds:
            model = _fit_one(x[train], y[train], w[train], settings.kind, candidate, settings.seed)
            oof[test] = model.score(x[test])
        auc = _auroc(y, oof)
        if auc > best_auc + 1e-9:
            best, best_auc, best_oof = candidate, auc, oof
    final = _fit_one(x, y, w, settings.kind, best, settings.seed)
    final.shift, final.scale = recalibration(best_oof, y)
    final.params["cv_auroc"] = round(best_auc, 6)
    return final


def recalibration(score: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Platt's logistic recalibration of raw log-odds: (intercept, slope)."""
    intercept, slope = logistic_fit(score, y)
    if not (np.isfinite(intercept) and np.isfinite(slope)) or slope <= 0:
        return 0.0, 1.0
    return intercept, slope


def logistic_fit(
    x: np.ndarray, y: np.ndarray, offset: np.ndarray | None = None, *, slope: bool = True
) -> tuple[float, float]:
    """Maximum-likelihood logistic regression of y on x (one covariate), by Newton's method;
    with ``slope=False``, only the intercept beside ``offset`` (calibration in the large)."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    off = np.zeros(len(y)) if offset is None else np.asarray(offset, dtype=float)
    design = np.column_stack([np.ones(len(y)), x]) if slope else np.ones((len(y), 1))
    beta = np.zeros(design.shape[1])
    for _ in range(100):
        p = expit(off + design @ beta)
        gradient = design.T @ (y - p)
        hessian = design.T @ (design * (p * (1 - p))[:, None]) + 1e-10 * np.eye(len(beta))
        step = np.linalg.solve(hessian, gradient)
        beta += step
        if np.max(np.abs(step)) < 1e-10:
            break
    return (float(beta[0]), float(beta[1]) if slope else 1.0)


def dumps(model: Fitted) -> str:
    return json.dumps(model.to_json(), sort_keys=True)
